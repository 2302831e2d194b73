//! Reading a `multipart/related` (MTOM/XOP) body from a stream of chunks.
//!
//! Invariants:
//! - Memory: the root part is buffered, and never beyond `max_root_bytes`; every other
//!   part goes to its own file as it arrives. Apart from the root, what is held is one
//!   input chunk, the scanner's carry-over window (module `scan`), the
//!   header block of one part (at most [`MAX_HEADER_BYTES`](crate::MAX_HEADER_BYTES))
//!   and one [`WRITE_BUFFER`]-byte write buffer, whatever the size of the parts.
//! - Files: each non-root part gets a fresh file `part-<32 hex>.bin` in the given
//!   directory, created with `create_new` (never an existing file, mode 0600 on Unix);
//!   its size and SHA-256 are computed from exactly the bytes written.
//! - Durability: with `sync_files`, every file is `fsync`ed (and, on Unix, the
//!   directory too) before `read_multipart` returns `Ok`.
//! - No leftovers: if `read_multipart` returns an error, or its future is dropped
//!   before completing, every file it created is removed. After `Ok` the files belong
//!   to the caller (see [`Multipart::remove_files`]).
//! - Limits are checked before the bytes that would exceed them are buffered or
//!   written; `max_total_bytes` counts the body up to the end of the closing delimiter
//!   (the epilogue is never read: the stream is dropped there).

use crate::content_type::{validate_boundary, RelatedContentType};
use crate::error::MimeError;
use crate::scan::{Event, PartHeaders, Scanner};
use crate::unique::random_hex;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncWriteExt, BufWriter};

/// Capacity of the buffer in front of each part's file.
pub const WRITE_BUFFER: usize = 64 * 1024;

/// The media type of a part that has no `Content-Type` (RFC 2045 §5.2).
pub const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=us-ascii";

/// Bounds on what one body may make the reader spend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadLimits {
    /// Largest root (SOAP envelope) part, held in memory.
    pub max_root_bytes: usize,
    /// Largest non-root part, written to a file.
    pub max_part_bytes: u64,
    /// Largest body, preamble and delimiters included, up to the closing delimiter.
    pub max_total_bytes: u64,
    /// Most parts, the root included.
    pub max_parts: usize,
    /// `fsync` every file (and the directory) before returning.
    pub sync_files: bool,
}

impl Default for ReadLimits {
    /// 16 MiB root, 1 GiB per attachment, 2 GiB in all, 64 parts, files synced.
    fn default() -> Self {
        ReadLimits {
            max_root_bytes: 16 << 20,
            max_part_bytes: 1 << 30,
            max_total_bytes: 2 << 30,
            max_parts: 64,
            sync_files: true,
        }
    }
}

/// A non-root part, stored in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedPart {
    /// Without `<>`.
    pub content_id: String,
    /// As sent, or [`DEFAULT_CONTENT_TYPE`].
    pub content_type: String,
    /// The file holding exactly the part's bytes.
    pub path: PathBuf,
    pub size: u64,
    pub sha256: [u8; 32],
}

impl ReceivedPart {
    /// The SHA-256 in lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// A body that was read completely.
#[derive(Debug, Clone)]
pub struct Multipart {
    /// The root part's bytes (the SOAP envelope with `xop:Include`s).
    pub root: Bytes,
    /// The root part's `Content-Type`, as sent, or [`DEFAULT_CONTENT_TYPE`].
    pub root_content_type: String,
    /// The root part's `Content-ID` without `<>` (may be absent when there is no
    /// `start` parameter and the root is the first part).
    pub root_content_id: Option<String>,
    /// The other parts, in body order.
    pub parts: Vec<ReceivedPart>,
}

impl Multipart {
    /// The part with this Content-ID (without `<>`), e.g. from
    /// [`cid_from_href`](crate::cid_from_href).
    pub fn part(&self, content_id: &str) -> Option<&ReceivedPart> {
        self.parts.iter().find(|p| p.content_id == content_id)
    }

    /// Removes the parts' files (a file already gone is not an error). Tries every
    /// file and reports the first failure.
    pub async fn remove_files(&self) -> Result<(), MimeError> {
        let mut first_err = None;
        for part in &self.parts {
            match tokio::fs::remove_file(&part.path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    first_err.get_or_insert(MimeError::io(&part.path, e));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Reads a `multipart/related` body: the root part (the one whose Content-ID is
/// `ct.start`, or the first part if there is no `start`) into memory, every other part
/// into a new file in `dir`. See the module invariants for memory, files and cleanup.
///
/// A `start` that no part carries is [`MimeError::RootNotFound`]; a non-root part
/// without Content-ID is [`MimeError::MissingContentId`].
pub async fn read_multipart<S, E>(
    body: S,
    ct: &RelatedContentType,
    dir: &Path,
    limits: &ReadLimits,
) -> Result<Multipart, MimeError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    read_with_peak(body, ct, dir, limits).await.map(|(m, _)| m)
}

/// [`read_multipart`], also returning the scanner's largest buffer (for tests).
pub(crate) async fn read_with_peak<S, E>(
    body: S,
    ct: &RelatedContentType,
    dir: &Path,
    limits: &ReadLimits,
) -> Result<(Multipart, usize), MimeError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    validate_boundary(&ct.boundary)?;
    let mut session = Session {
        dir,
        limits,
        start: ct.start.as_deref(),
        current: None,
        root: None,
        parts: Vec::new(),
        seen: HashSet::new(),
        count: 0,
        cleanup: Cleanup {
            paths: Vec::new(),
            armed: true,
        },
    };
    let mut scanner = Scanner::new(&ct.boundary);
    match drive(body, &mut scanner, &mut session).await {
        Ok(()) => {
            let multipart = session.finish().await?;
            Ok((multipart, scanner.peak()))
        }
        Err(e) => {
            session.abort().await;
            Err(e)
        }
    }
}

async fn drive<S, E>(
    mut body: S,
    scanner: &mut Scanner,
    session: &mut Session<'_>,
) -> Result<(), MimeError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limit = session.limits.max_total_bytes;
    let mut received: u64 = 0;
    let mut over_total = false;
    let mut eof = false;
    loop {
        match scanner.next_event()? {
            Event::NeedMore => {
                if over_total {
                    return Err(MimeError::TotalTooLarge { limit });
                }
                if eof {
                    return Err(MimeError::MissingCloseDelimiter);
                }
                match body.next().await {
                    None => eof = true,
                    Some(Err(e)) => return Err(MimeError::Body(e.into())),
                    Some(Ok(chunk)) => {
                        // Feed only what fits under the total limit: if the closing
                        // delimiter is within it the body is fine, otherwise the
                        // scanner asks for more and the limit is reported.
                        let allowed = limit.saturating_sub(received);
                        let take =
                            usize::try_from(allowed).map_or(chunk.len(), |a| a.min(chunk.len()));
                        over_total = take < chunk.len();
                        received += take as u64;
                        scanner.push(&chunk[..take]);
                    }
                }
            }
            Event::PartStart(headers) => session.start_part(headers).await?,
            Event::Data(data) => session.data(&data).await?,
            Event::PartEnd => session.end_part().await?,
            Event::Done => return Ok(()),
        }
    }
}

struct Root {
    data: Vec<u8>,
    content_type: String,
    content_id: Option<String>,
}

struct FileSink {
    writer: BufWriter<tokio::fs::File>,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
    content_id: String,
    content_type: String,
}

enum Sink {
    Root(Root),
    File(Box<FileSink>),
}

/// Removes the listed files when dropped, unless disarmed. It is the last field of
/// [`Session`], so an open part file is closed before its removal.
struct Cleanup {
    paths: Vec<PathBuf>,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.armed {
            for path in &self.paths {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

struct Session<'a> {
    dir: &'a Path,
    limits: &'a ReadLimits,
    start: Option<&'a str>,
    current: Option<Sink>,
    root: Option<Root>,
    parts: Vec<ReceivedPart>,
    seen: HashSet<String>,
    count: usize,
    cleanup: Cleanup,
}

impl Session<'_> {
    async fn start_part(&mut self, headers: PartHeaders) -> Result<(), MimeError> {
        self.count += 1;
        if self.count > self.limits.max_parts {
            return Err(MimeError::TooManyParts {
                limit: self.limits.max_parts,
            });
        }
        if let Some(cid) = &headers.content_id {
            if !self.seen.insert(cid.clone()) {
                return Err(MimeError::DuplicateContentId {
                    content_id: cid.clone(),
                });
            }
        }
        let is_root = match self.start {
            Some(start) => headers.content_id.as_deref() == Some(start),
            None => headers.part == 0,
        };
        let content_type = headers
            .content_type
            .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned());
        if is_root {
            self.current = Some(Sink::Root(Root {
                data: Vec::new(),
                content_type,
                content_id: headers.content_id,
            }));
            return Ok(());
        }
        let content_id = headers
            .content_id
            .ok_or(MimeError::MissingContentId { part: headers.part })?;
        let (file, path) = create_part_file(self.dir, &mut self.cleanup)?;
        self.current = Some(Sink::File(Box::new(FileSink {
            writer: BufWriter::with_capacity(WRITE_BUFFER, file),
            path,
            hasher: Sha256::new(),
            size: 0,
            content_id,
            content_type,
        })));
        Ok(())
    }

    async fn data(&mut self, data: &[u8]) -> Result<(), MimeError> {
        match self.current.as_mut() {
            Some(Sink::Root(root)) => {
                let limit = self.limits.max_root_bytes;
                let needed = root.data.len() + data.len();
                if needed > limit {
                    return Err(MimeError::RootTooLarge { limit });
                }
                if needed > root.data.capacity() {
                    // Grow geometrically, but never past the limit.
                    let target = needed
                        .max(root.data.capacity().saturating_mul(2))
                        .min(limit);
                    root.data.reserve_exact(target - root.data.len());
                }
                root.data.extend_from_slice(data);
            }
            Some(Sink::File(part)) => {
                let limit = self.limits.max_part_bytes;
                let len = data.len() as u64;
                if part.size.saturating_add(len) > limit {
                    return Err(MimeError::PartTooLarge {
                        content_id: part.content_id.clone(),
                        limit,
                    });
                }
                part.hasher.update(data);
                part.writer
                    .write_all(data)
                    .await
                    .map_err(|e| MimeError::io(&part.path, e))?;
                part.size += len;
            }
            // The scanner hands out data only between PartStart and PartEnd.
            None => {}
        }
        Ok(())
    }

    async fn end_part(&mut self) -> Result<(), MimeError> {
        match self.current.take() {
            Some(Sink::Root(root)) => self.root = Some(root),
            Some(Sink::File(mut part)) => {
                let io = |e| MimeError::io(&part.path, e);
                part.writer.flush().await.map_err(io)?;
                if self.limits.sync_files {
                    part.writer.get_ref().sync_all().await.map_err(io)?;
                }
                drop(part.writer);
                self.parts.push(ReceivedPart {
                    content_id: part.content_id,
                    content_type: part.content_type,
                    path: part.path,
                    size: part.size,
                    sha256: part.hasher.finalize().into(),
                });
            }
            None => {}
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<Multipart, MimeError> {
        let Some(root) = self.root.take() else {
            return Err(match self.start {
                Some(start) => MimeError::RootNotFound {
                    start: start.to_owned(),
                },
                None => MimeError::NoParts,
            });
        };
        if self.limits.sync_files && !self.parts.is_empty() {
            sync_dir(self.dir).await?;
        }
        self.cleanup.armed = false;
        Ok(Multipart {
            root: Bytes::from(root.data),
            root_content_type: root.content_type,
            root_content_id: root.content_id,
            parts: std::mem::take(&mut self.parts),
        })
    }

    /// Lets an in-flight write of the open file finish, then closes it; dropping the
    /// session afterwards removes every file.
    async fn abort(mut self) {
        if let Some(Sink::File(mut part)) = self.current.take() {
            let _ = part.writer.get_mut().flush().await;
        }
    }
}

/// Creates the part's file and registers it with `cleanup` in one synchronous step: with
/// an asynchronous open, a read cancelled while the open ran on a blocking thread could
/// leave a file no cleanup knew about. Creating an empty file is one short syscall.
fn create_part_file(
    dir: &Path,
    cleanup: &mut Cleanup,
) -> Result<(tokio::fs::File, PathBuf), MimeError> {
    for _ in 0..16 {
        let path = dir.join(format!("part-{}.bin", random_hex()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(file) => {
                cleanup.paths.push(path.clone());
                return Ok((tokio::fs::File::from_std(file), path));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(MimeError::io(path, e)),
        }
    }
    Err(MimeError::io(
        dir,
        std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "no free file name after 16 attempts",
        ),
    ))
}

/// Makes the new directory entries durable.
async fn sync_dir(dir: &Path) -> Result<(), MimeError> {
    #[cfg(unix)]
    {
        let io = |e| MimeError::io(dir, e);
        tokio::fs::File::open(dir)
            .await
            .map_err(io)?
            .sync_all()
            .await
            .map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    const BOUNDARY: &str = "MIMEBoundary_big";
    const PART_BYTES: u64 = 64 << 20;
    const MAX_CHUNK: usize = 100_000;

    /// xorshift64: cheap deterministic bytes.
    fn fill(state: &mut u64, out: &mut [u8]) {
        for word in out.chunks_mut(8) {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            let bytes = state.to_le_bytes();
            word.copy_from_slice(&bytes[..word.len()]);
        }
    }

    /// A 64 MiB attachment generated on the fly in chunks of varying size, some ending
    /// in an almost-delimiter that the next chunk does not complete. The generator keeps
    /// a running SHA-256 of what it produced.
    #[tokio::test]
    async fn streams_a_64_mib_part_in_bounded_memory() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let hasher = Arc::new(Mutex::new(Sha256::new()));
        let head = format!(
            "--{BOUNDARY}\r\nContent-ID: <root>\r\n\r\n<Envelope/>\r\n--{BOUNDARY}\r\n\
             Content-ID: <big>\r\nContent-Type: application/octet-stream\r\n\r\n"
        );
        let near = format!("\r\n--{}", &BOUNDARY[..BOUNDARY.len() - 1]);
        struct Gen {
            rng: u64,
            sent: u64,
            n: u64,
            stage: u8,
        }
        let gen = Gen {
            rng: 0x9E37_79B9_7F4A_7C15,
            sent: 0,
            n: 0,
            stage: 0,
        };
        let h = Arc::clone(&hasher);
        let stream = futures_util::stream::unfold(gen, move |mut g| {
            let head = head.clone();
            let near = near.clone();
            let h = Arc::clone(&h);
            async move {
                let chunk = match g.stage {
                    0 => {
                        g.stage = 1;
                        Bytes::from(head)
                    }
                    1 => {
                        g.n += 1;
                        let size = (1 + (g.n * 7919) % MAX_CHUNK as u64).min(PART_BYTES - g.sent);
                        let mut buf = vec![0u8; size as usize];
                        fill(&mut g.rng, &mut buf);
                        if g.n % 3 == 0 && buf.len() > near.len() {
                            let at = buf.len() - near.len();
                            buf[at..].copy_from_slice(near.as_bytes());
                        }
                        g.sent += size;
                        if g.sent == PART_BYTES {
                            g.stage = 2;
                        }
                        if let Ok(mut h) = h.lock() {
                            h.update(&buf);
                        }
                        Bytes::from(buf)
                    }
                    2 => {
                        g.stage = 3;
                        Bytes::from(format!("\r\n--{BOUNDARY}--\r\n"))
                    }
                    _ => return None,
                };
                Some((Ok::<_, std::io::Error>(chunk), g))
            }
        });
        let ct = RelatedContentType {
            boundary: BOUNDARY.into(),
            start: None,
            type_: None,
            start_info: None,
        };
        let limits = ReadLimits {
            max_root_bytes: 1024,
            max_part_bytes: PART_BYTES,
            max_total_bytes: PART_BYTES + 1024,
            max_parts: 2,
            sync_files: false,
        };
        let (m, peak) = read_with_peak(Box::pin(stream), &ct, dir.path(), &limits).await?;
        let expected: [u8; 32] = hasher
            .lock()
            .map_err(|_| "poisoned")?
            .clone()
            .finalize()
            .into();
        assert_eq!(&m.root[..], b"<Envelope/>");
        assert_eq!(m.parts.len(), 1);
        assert_eq!(m.parts[0].size, PART_BYTES);
        assert_eq!(m.parts[0].sha256, expected);
        assert_eq!(std::fs::metadata(&m.parts[0].path)?.len(), PART_BYTES);
        // The scanner never held more than one chunk plus its window.
        assert!(peak <= MAX_CHUNK + 1024, "scanner buffer peaked at {peak}");
        m.remove_files().await?;
        Ok(())
    }
}
