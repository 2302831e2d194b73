//! Writing an MTOM/XOP answer as a stream.
//!
//! Invariants:
//! - Files are never read whole: each is opened when the stream reaches it and read in
//!   chunks of at most [`READ_CHUNK`] bytes.
//! - `content_length` is exact: computed from the header texts, the in-memory parts and
//!   the files' sizes taken when [`mtom_body`] is called. A file whose size differs by
//!   the time it is streamed makes the stream fail (never a body of the wrong length).
//! - The boundary is `MIMEBoundary_` + 32 random hex digits, re-drawn if it occurs in
//!   the root or an in-memory part (files are not scanned; a random 128-bit value is
//!   relied on there).
//! - Header values are checked so that no caller-supplied text can inject a header or
//!   break the framing (no control characters, no `<`/`>` in a Content-ID).
//! - After the stream yields an error it ends.

use crate::unique::random_hex;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use tokio::io::AsyncReadExt;

/// Largest chunk read from a file.
pub const READ_CHUNK: usize = 64 * 1024;

/// In-memory segments shorter than this are merged with their neighbours, so the
/// stream does not yield a chunk per header line.
const COALESCE: usize = 16 * 1024;

/// The `Content-Type` of the root part.
pub const ROOT_PART_CONTENT_TYPE: &str = "application/xop+xml; charset=UTF-8; type=\"text/xml\"";

/// Where an outgoing part's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartSource {
    Bytes(Bytes),
    /// Read in chunks while streaming.
    File(PathBuf),
}

/// A part of an MTOM answer besides the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingPart {
    /// Without `<>`.
    pub content_id: String,
    pub content_type: String,
    pub source: PartSource,
}

/// The body stream of an MTOM answer.
pub struct MtomBody {
    /// The full `Content-Type` header value: `multipart/related` with `type`, `start`,
    /// `start-info` and `boundary`.
    pub content_type: String,
    pub stream: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>,
    /// Exact body length (always `Some` from [`mtom_body`]; `Option` so a caller can
    /// wrap other streams in the same type).
    pub content_length: Option<u64>,
}

impl fmt::Debug for MtomBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtomBody")
            .field("content_type", &self.content_type)
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

/// Builds the streaming body of an MTOM answer: `root_xml` as the root part
/// (`application/xop+xml`, Content-ID `root_content_id` without `<>`), then `parts` in
/// order. Errors (`InvalidInput`) on a bad or duplicate Content-ID or Content-Type, and
/// on a `File` source that cannot be stat'ed or is not a regular file.
pub fn mtom_body(
    root_xml: Bytes,
    root_content_id: &str,
    parts: Vec<OutgoingPart>,
) -> io::Result<MtomBody> {
    check_content_id(root_content_id)?;
    let mut seen = HashSet::new();
    seen.insert(root_content_id);
    let mut sources = Vec::with_capacity(parts.len());
    for part in &parts {
        check_content_id(&part.content_id)?;
        check_header_value("Content-Type", &part.content_type)?;
        if !seen.insert(&part.content_id) {
            return Err(invalid(format!(
                "duplicate Content-ID <{}>",
                part.content_id
            )));
        }
        sources.push(match &part.source {
            PartSource::Bytes(b) => Source::Bytes(b.clone()),
            PartSource::File(path) => {
                let meta = std::fs::metadata(path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
                if !meta.is_file() {
                    return Err(invalid(format!("{} is not a regular file", path.display())));
                }
                Source::File {
                    path: path.clone(),
                    len: meta.len(),
                }
            }
        });
    }

    let boundary = loop {
        let candidate = format!("MIMEBoundary_{}", random_hex());
        let finder = memchr::memmem::Finder::new(candidate.as_bytes());
        let clash = finder.find(&root_xml).is_some()
            || sources
                .iter()
                .any(|s| matches!(s, Source::Bytes(b) if finder.find(b).is_some()));
        if !clash {
            break candidate;
        }
    };

    let mut segments = Segments::default();
    segments.push_bytes(Bytes::from(format!(
        "--{boundary}\r\nContent-Type: {ROOT_PART_CONTENT_TYPE}\r\n\
         Content-Transfer-Encoding: binary\r\nContent-ID: <{root_content_id}>\r\n\r\n"
    )));
    segments.push_bytes(root_xml);
    for (part, source) in parts.iter().zip(sources) {
        segments.push_bytes(Bytes::from(format!(
            "\r\n--{boundary}\r\nContent-Type: {}\r\n\
             Content-Transfer-Encoding: binary\r\nContent-ID: <{}>\r\n\r\n",
            part.content_type, part.content_id
        )));
        match source {
            Source::Bytes(b) => segments.push_bytes(b),
            file @ Source::File { .. } => segments.push(file),
        }
    }
    segments.push_bytes(Bytes::from(format!("\r\n--{boundary}--\r\n")));

    let content_length = segments.0.iter().try_fold(0u64, |acc, s| {
        acc.checked_add(match s {
            Source::Bytes(b) => b.len() as u64,
            Source::File { len, .. } => *len,
        })
    });
    let content_type = format!(
        "multipart/related; type=\"application/xop+xml\"; start=\"<{}>\"; \
         start-info=\"text/xml\"; boundary=\"{boundary}\"",
        quote_escape(root_content_id)
    );
    let state = StreamState {
        segments: segments.0,
        open: None,
    };
    Ok(MtomBody {
        content_type,
        stream: Box::pin(futures_util::stream::unfold(state, next_chunk)),
        content_length,
    })
}

enum Source {
    Bytes(Bytes),
    File { path: PathBuf, len: u64 },
}

#[derive(Default)]
struct Segments(VecDeque<Source>);

impl Segments {
    fn push(&mut self, source: Source) {
        self.0.push_back(source);
    }

    /// Appends, merging small in-memory neighbours into one chunk.
    fn push_bytes(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        if let Some(Source::Bytes(last)) = self.0.back_mut() {
            if last.len() + bytes.len() <= COALESCE {
                let mut merged = BytesMut::with_capacity(last.len() + bytes.len());
                merged.extend_from_slice(last);
                merged.extend_from_slice(&bytes);
                *last = merged.freeze();
                return;
            }
        }
        self.0.push_back(Source::Bytes(bytes));
    }
}

struct OpenFile {
    file: tokio::fs::File,
    path: PathBuf,
    remaining: u64,
}

struct StreamState {
    segments: VecDeque<Source>,
    open: Option<OpenFile>,
}

async fn next_chunk(mut st: StreamState) -> Option<(io::Result<Bytes>, StreamState)> {
    loop {
        if let Some(open) = st.open.as_mut() {
            match read_file_chunk(open).await {
                Ok(Some(chunk)) => return Some((Ok(chunk), st)),
                Ok(None) => st.open = None,
                Err(e) => {
                    st.open = None;
                    st.segments.clear();
                    return Some((Err(e), st));
                }
            }
            continue;
        }
        match st.segments.pop_front()? {
            Source::Bytes(b) => return Some((Ok(b), st)),
            Source::File { path, len } => match tokio::fs::File::open(&path).await {
                Ok(file) => {
                    st.open = Some(OpenFile {
                        file,
                        path,
                        remaining: len,
                    })
                }
                Err(e) => {
                    st.segments.clear();
                    let e = io::Error::new(e.kind(), format!("{}: {e}", path.display()));
                    return Some((Err(e), st));
                }
            },
        }
    }
}

/// The next chunk of an open file; `None` once its announced length has been read
/// and the file has indeed ended there.
async fn read_file_chunk(open: &mut OpenFile) -> io::Result<Option<Bytes>> {
    if open.remaining == 0 {
        let mut probe = [0u8; 1];
        if open.file.read(&mut probe).await? != 0 {
            return Err(io::Error::other(format!(
                "{} grew while being sent",
                open.path.display()
            )));
        }
        return Ok(None);
    }
    let want = usize::try_from(open.remaining).map_or(READ_CHUNK, |r| r.min(READ_CHUNK));
    let mut buf = vec![0u8; want];
    let n = open.file.read(&mut buf).await?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{} shrank while being sent", open.path.display()),
        ));
    }
    buf.truncate(n);
    open.remaining -= n as u64;
    Ok(Some(Bytes::from(buf)))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn check_header_value(what: &str, value: &str) -> io::Result<()> {
    if value.trim().is_empty() {
        return Err(invalid(format!("empty {what}")));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(invalid(format!(
            "{what} contains a control character: {value:?}"
        )));
    }
    Ok(())
}

fn check_content_id(cid: &str) -> io::Result<()> {
    check_header_value("Content-ID", cid)?;
    if cid.contains(['<', '>']) || cid != cid.trim() {
        return Err(invalid(format!(
            "Content-ID {cid:?} must be given without <> and surrounding spaces"
        )));
    }
    Ok(())
}

/// Escapes `"` and `\` for a quoted-string parameter value.
fn quote_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
