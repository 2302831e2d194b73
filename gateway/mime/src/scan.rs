//! The synchronous heart of the reader: a push parser that turns arbitrarily chunked
//! body bytes into part events. It does no I/O, so the async driver in
//! [`reader`](crate::reader) and the tests can feed it however they like.
//!
//! Invariants:
//! - Chunking-independence: the sequence of events (with adjacent `Data` merged) is a
//!   function of the concatenated input only, never of how it was split.
//! - Bounded memory: `buf` holds at most one pushed chunk plus a carry-over window. In a
//!   body the window is shorter than `CRLF--boundary` plus bounded transport padding;
//!   in a header block it is at most [`MAX_HEADER_BYTES`]; in the preamble it is shorter
//!   than `--boundary` plus padding. A part's data is handed out as it is scanned and is
//!   never accumulated here.
//! - RFC 2046 framing: a delimiter inside the body is `CRLF--boundary`; the CRLF belongs
//!   to the delimiter, not to the part. A delimiter is only one if followed by `--`
//!   (close) or by optional space/tab padding and CRLF (or a bare LF); otherwise the
//!   bytes are data (in a part) or skipped (in the preamble).
//! - Tolerance: the first delimiter may appear anywhere in the preamble, with or without
//!   a CRLF before it; a part whose header block is directly followed by `--boundary`
//!   (no CRLF, RFC 2046's omitted `[CRLF *OCTET]`) is an empty part; header lines may end
//!   in CRLF or LF and may be folded.

use crate::content_type::strip_angle_brackets;
use crate::error::MimeError;
use bytes::{Buf, Bytes, BytesMut};
use memchr::memmem::Finder;

/// Largest header block of one part, its terminating empty line included.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Longest transport padding (spaces and tabs after a delimiter) recognised. Longer
/// padding makes the candidate a non-delimiter, which keeps the look-ahead bounded.
const MAX_PADDING: usize = 64;

/// The headers of one part that this crate looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartHeaders {
    /// Zero-based position of the part in the body.
    pub part: usize,
    pub content_type: Option<String>,
    /// Without `<>`; never empty.
    pub content_id: Option<String>,
}

#[derive(Debug)]
pub(crate) enum Event {
    /// Push more input (or, at the end of input, the body is truncated).
    NeedMore,
    /// A part's headers were read; its data follows.
    PartStart(PartHeaders),
    /// The next bytes of the current part's data (never empty).
    Data(Bytes),
    /// The current part is complete.
    PartEnd,
    /// The closing delimiter was read; everything after it is epilogue and ignored.
    Done,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Preamble,
    /// `line_start`: offset in `buf` of the first header line not yet examined.
    Headers {
        line_start: usize,
    },
    /// `at_start`: no byte of this part's data has been handed out yet.
    Body {
        at_start: bool,
    },
    /// After a part's terminating delimiter: `close` says whether it was the last.
    Ended {
        close: bool,
    },
    Done,
}

/// What follows `--boundary`.
#[derive(Debug, PartialEq, Eq)]
enum Tail {
    NeedMore,
    /// `--`: the closing delimiter.
    Close,
    /// Padding and line end of this many bytes: another part follows.
    Next(usize),
    NotDelimiter,
}

#[derive(Debug)]
pub(crate) struct Scanner {
    buf: BytesMut,
    state: State,
    /// `--boundary`.
    dash: Vec<u8>,
    dash_finder: Finder<'static>,
    /// `CRLF--boundary`.
    delim_len: usize,
    delim_finder: Finder<'static>,
    /// Index of the current (or next) part.
    part: usize,
    /// Largest `buf.len()` seen, for the memory-bound test.
    peak: usize,
}

impl Scanner {
    /// `boundary` must already be validated (non-empty).
    pub(crate) fn new(boundary: &str) -> Self {
        let mut dash = Vec::with_capacity(boundary.len() + 2);
        dash.extend_from_slice(b"--");
        dash.extend_from_slice(boundary.as_bytes());
        let mut delim = Vec::with_capacity(dash.len() + 2);
        delim.extend_from_slice(b"\r\n");
        delim.extend_from_slice(&dash);
        Scanner {
            buf: BytesMut::new(),
            state: State::Preamble,
            dash_finder: Finder::new(&dash).into_owned(),
            dash,
            delim_len: delim.len(),
            delim_finder: Finder::new(&delim).into_owned(),
            part: 0,
            peak: 0,
        }
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
        self.peak = self.peak.max(self.buf.len());
    }

    pub(crate) fn peak(&self) -> usize {
        self.peak
    }

    pub(crate) fn next_event(&mut self) -> Result<Event, MimeError> {
        loop {
            match self.state {
                State::Done => return Ok(Event::Done),
                State::Ended { close } => {
                    if close {
                        self.state = State::Done;
                        self.buf = BytesMut::new();
                    } else {
                        self.part += 1;
                        self.state = State::Headers { line_start: 0 };
                    }
                }
                State::Preamble => match self.dash_finder.find(&self.buf) {
                    Some(i) => match classify(&self.buf[i + self.dash.len()..]) {
                        Tail::NeedMore => {
                            self.buf.advance(i);
                            return Ok(Event::NeedMore);
                        }
                        Tail::Close => return Err(MimeError::NoParts),
                        Tail::Next(n) => {
                            self.buf.advance(i + self.dash.len() + n);
                            self.state = State::Headers { line_start: 0 };
                        }
                        Tail::NotDelimiter => self.buf.advance(i + 1),
                    },
                    None => {
                        let keep = self.buf.len().min(self.dash.len() - 1);
                        self.buf.advance(self.buf.len() - keep);
                        return Ok(Event::NeedMore);
                    }
                },
                State::Headers { line_start } => return self.headers(line_start),
                State::Body { at_start } => {
                    if let Some(event) = self.body(at_start) {
                        return Ok(event);
                    }
                }
            }
        }
    }

    fn headers(&mut self, mut pos: usize) -> Result<Event, MimeError> {
        let too_large = MimeError::HeadersTooLarge {
            part: self.part,
            limit: MAX_HEADER_BYTES,
        };
        loop {
            let Some(k) = memchr::memchr(b'\n', &self.buf[pos..]) else {
                if self.buf.len() > MAX_HEADER_BYTES {
                    return Err(too_large);
                }
                self.state = State::Headers { line_start: pos };
                return Ok(Event::NeedMore);
            };
            let end = pos + k + 1;
            if end > MAX_HEADER_BYTES {
                return Err(too_large);
            }
            let line = &self.buf[pos..pos + k];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                let headers = parse_headers(&self.buf[..pos], self.part)?;
                self.buf.advance(end);
                self.state = State::Body { at_start: true };
                return Ok(Event::PartStart(headers));
            }
            if line.starts_with(&self.dash) {
                return Err(MimeError::MalformedHeaders {
                    part: self.part,
                    reason: "a delimiter inside the header block (no empty line ends it)".into(),
                });
            }
            pos = end;
        }
    }

    /// One step in a part's data. `None`: the state changed, loop again.
    fn body(&mut self, at_start: bool) -> Option<Event> {
        if at_start {
            // RFC 2046 lets a part end right after its headers: `--boundary` with no
            // CRLF of its own (the header block's empty line was the last line).
            let n = self.buf.len().min(self.dash.len());
            if self.buf[..n] == self.dash[..n] {
                if n < self.dash.len() {
                    return Some(Event::NeedMore);
                }
                match classify(&self.buf[n..]) {
                    Tail::NeedMore => return Some(Event::NeedMore),
                    Tail::Close => return Some(self.end_part(n + 2, true)),
                    Tail::Next(len) => return Some(self.end_part(n + len, false)),
                    Tail::NotDelimiter => {}
                }
            }
            self.state = State::Body { at_start: false };
        }
        match self.delim_finder.find(&self.buf) {
            Some(i) => match (classify(&self.buf[i + self.delim_len..]), i) {
                // `CRLF--boundaryX…`: data. Hand out through the CR so the same
                // candidate is not found again.
                (Tail::NotDelimiter, _) => Some(Event::Data(self.buf.split_to(i + 1).freeze())),
                // Hand out the data before the candidate; it is decided next call.
                (_, i) if i > 0 => Some(Event::Data(self.buf.split_to(i).freeze())),
                (Tail::NeedMore, _) => Some(Event::NeedMore),
                (Tail::Close, _) => Some(self.end_part(self.delim_len + 2, true)),
                (Tail::Next(len), _) => Some(self.end_part(self.delim_len + len, false)),
            },
            None => {
                let keep = self.buf.len().min(self.delim_len - 1);
                let n = self.buf.len() - keep;
                if n == 0 {
                    Some(Event::NeedMore)
                } else {
                    Some(Event::Data(self.buf.split_to(n).freeze()))
                }
            }
        }
    }

    fn end_part(&mut self, consumed: usize, close: bool) -> Event {
        self.buf.advance(consumed);
        self.state = State::Ended { close };
        Event::PartEnd
    }
}

fn classify(rest: &[u8]) -> Tail {
    match rest.first() {
        None => return Tail::NeedMore,
        Some(b'-') => {
            return match rest.get(1) {
                None => Tail::NeedMore,
                Some(b'-') => Tail::Close,
                Some(_) => Tail::NotDelimiter,
            }
        }
        Some(_) => {}
    }
    let mut j = 0;
    while let Some(&b) = rest.get(j) {
        match b {
            b' ' | b'\t' => {
                j += 1;
                if j > MAX_PADDING {
                    return Tail::NotDelimiter;
                }
            }
            b'\n' => return Tail::Next(j + 1),
            b'\r' => {
                return match rest.get(j + 1) {
                    None => Tail::NeedMore,
                    Some(b'\n') => Tail::Next(j + 2),
                    Some(_) => Tail::NotDelimiter,
                }
            }
            _ => return Tail::NotDelimiter,
        }
    }
    Tail::NeedMore
}

/// Parses a header block (without its terminating empty line).
fn parse_headers(block: &[u8], part: usize) -> Result<PartHeaders, MimeError> {
    let malformed = |reason: &str| MimeError::MalformedHeaders {
        part,
        reason: reason.to_owned(),
    };
    let text = std::str::from_utf8(block).map_err(|_| malformed("not UTF-8"))?;
    let mut fields: Vec<(&str, String)> = Vec::new();
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let (_, value) = fields
                .last_mut()
                .ok_or_else(|| malformed("continuation line before any header"))?;
            value.push(' ');
            value.push_str(line.trim());
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed("header line without ':'"))?;
        let name = name.trim_end();
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(malformed("invalid header name"));
        }
        fields.push((name, value.trim().to_owned()));
    }

    let mut content_type = None;
    let mut content_id = None;
    let mut encoding = None;
    for (name, value) in fields {
        let slot = if name.eq_ignore_ascii_case("content-type") {
            &mut content_type
        } else if name.eq_ignore_ascii_case("content-id") {
            &mut content_id
        } else if name.eq_ignore_ascii_case("content-transfer-encoding") {
            &mut encoding
        } else {
            continue;
        };
        if slot.is_some() {
            return Err(malformed(&format!("header {name} given twice")));
        }
        *slot = Some(value);
    }
    if let Some(enc) = encoding {
        if !["binary", "8bit", "7bit"]
            .iter()
            .any(|ok| enc.eq_ignore_ascii_case(ok))
        {
            return Err(MimeError::UnsupportedTransferEncoding {
                part,
                encoding: enc,
            });
        }
    }
    let content_id = match content_id {
        Some(raw) => {
            let id = strip_angle_brackets(&raw);
            if id.is_empty() {
                return Err(malformed("empty Content-ID"));
            }
            Some(id.to_owned())
        }
        None => None,
    };
    Ok(PartHeaders {
        part,
        content_type: content_type.filter(|t| !t.is_empty()),
        content_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(input: &[u8], step: usize) -> Result<Vec<String>, MimeError> {
        let mut s = Scanner::new("b");
        let mut out: Vec<String> = Vec::new();
        let mut chunks = input.chunks(step.max(1));
        loop {
            match s.next_event()? {
                Event::NeedMore => match chunks.next() {
                    Some(c) => s.push(c),
                    None => return Err(MimeError::MissingCloseDelimiter),
                },
                Event::PartStart(h) => out.push(format!("start {:?}", h.content_id)),
                Event::Data(d) => {
                    let d = String::from_utf8_lossy(&d).into_owned();
                    match out.last_mut() {
                        Some(last) if last.starts_with("data ") => last.push_str(&d),
                        _ => out.push(format!("data {d}")),
                    }
                }
                Event::PartEnd => out.push("end".into()),
                Event::Done => return Ok(out),
            }
        }
    }

    #[test]
    fn classify_tails() {
        assert_eq!(classify(b""), Tail::NeedMore);
        assert_eq!(classify(b"-"), Tail::NeedMore);
        assert_eq!(classify(b"--"), Tail::Close);
        assert_eq!(classify(b"-x"), Tail::NotDelimiter);
        assert_eq!(classify(b"\r"), Tail::NeedMore);
        assert_eq!(classify(b"\r\n"), Tail::Next(2));
        assert_eq!(classify(b" \t\r\nX"), Tail::Next(4));
        assert_eq!(classify(b"\n"), Tail::Next(1));
        assert_eq!(classify(b"  "), Tail::NeedMore);
        assert_eq!(classify(b"x"), Tail::NotDelimiter);
        assert_eq!(classify(b"\rx"), Tail::NotDelimiter);
        assert_eq!(classify(&[b' '; 65]), Tail::NotDelimiter);
    }

    #[test]
    fn empty_parts_and_headerless_parts() {
        // Header block directly followed by the delimiter, no CRLF: an empty part.
        let body = b"--b\r\nContent-ID: <a>\r\n\r\n--b\r\n\r\nxyz\r\n--b--";
        for step in 1..body.len() {
            let ev = events(body, step).expect("parses");
            assert_eq!(
                ev,
                ["start Some(\"a\")", "end", "start None", "data xyz", "end"],
                "step {step}"
            );
        }
    }

    #[test]
    fn near_delimiters_are_data() {
        let body =
            b"pre--bx\r\n--b \t\r\nContent-ID: <a>\r\n\r\n\r\n--bX\r\n--b-y--b\r\n-\r\n--b--epi";
        for step in 1..body.len() {
            let ev = events(body, step).expect("parses");
            assert_eq!(
                ev,
                ["start Some(\"a\")", "data \r\n--bX\r\n--b-y--b\r\n-", "end"],
                "step {step}"
            );
        }
    }

    #[test]
    fn delimiter_in_headers_is_malformed() {
        let body = b"--b\r\nContent-ID: <a>\r\n--b--\r\n";
        assert!(matches!(
            events(body, 3),
            Err(MimeError::MalformedHeaders { part: 0, .. })
        ));
    }
}
