//! The one error type of this crate. Every variant names what went wrong precisely
//! enough for the caller to pick a fault code: limits carry the limit that was hit, part
//! errors carry the part's zero-based position in the body (or its Content-ID).

use std::path::PathBuf;
use thiserror::Error;

/// Everything that can go wrong while parsing a `Content-Type` header, reading a
/// `multipart/related` body or writing one.
///
/// When [`read_multipart`](crate::read_multipart) returns any of these, every file it
/// created has already been removed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MimeError {
    /// The `Content-Type` is not `multipart/related` (only from
    /// [`RelatedContentType::from_str`](crate::RelatedContentType)).
    #[error("Content-Type is not multipart/related")]
    NotMultipartRelated,
    /// `multipart/related` without a `boundary` parameter.
    #[error("multipart/related Content-Type has no boundary parameter")]
    MissingBoundary,
    /// The `Content-Type` header is `multipart/related` but its parameters are not
    /// well-formed (unterminated quoted string, duplicate parameter, invalid boundary…).
    #[error("malformed multipart/related Content-Type: {reason}")]
    MalformedContentType { reason: String },
    /// The header block of a part is not well-formed.
    #[error("malformed headers in MIME part #{part}: {reason}")]
    MalformedHeaders { part: usize, reason: String },
    /// The header block of a part is longer than [`MAX_HEADER_BYTES`](crate::MAX_HEADER_BYTES).
    #[error("headers of MIME part #{part} exceed {limit} bytes")]
    HeadersTooLarge { part: usize, limit: usize },
    /// A part other than the root has no `Content-ID`, so nothing could reference it.
    #[error("MIME part #{part} has no Content-ID")]
    MissingContentId { part: usize },
    /// A `Content-Transfer-Encoding` other than `binary`, `8bit` or `7bit`.
    #[error("MIME part #{part} has unsupported Content-Transfer-Encoding {encoding:?} (only binary, 8bit, 7bit)")]
    UnsupportedTransferEncoding { part: usize, encoding: String },
    /// Two parts carry the same `Content-ID`.
    #[error("duplicate Content-ID <{content_id}>")]
    DuplicateContentId { content_id: String },
    /// The body stream ended before the closing delimiter `--boundary--` (truncated
    /// body, or no delimiter at all).
    #[error("multipart body ended before its closing delimiter")]
    MissingCloseDelimiter,
    /// The first delimiter of the body is already the closing one.
    #[error("multipart body has no parts")]
    NoParts,
    /// `start` names a Content-ID that no part carries.
    #[error("no MIME part has the start Content-ID <{start}>")]
    RootNotFound { start: String },
    /// A non-root part is larger than `max_part_bytes`.
    #[error("MIME part <{content_id}> exceeds {limit} bytes")]
    PartTooLarge { content_id: String, limit: u64 },
    /// The root part is larger than `max_root_bytes`.
    #[error("root MIME part exceeds {limit} bytes")]
    RootTooLarge { limit: usize },
    /// The body up to its closing delimiter is larger than `max_total_bytes`.
    #[error("multipart body exceeds {limit} bytes")]
    TotalTooLarge { limit: u64 },
    /// More parts (root included) than `max_parts`.
    #[error("multipart body has more than {limit} parts")]
    TooManyParts { limit: usize },
    /// Creating, writing, syncing or removing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The body stream itself reported an error (e.g. the client went away).
    #[error("error reading the request body: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl MimeError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        MimeError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn malformed_ct(reason: impl Into<String>) -> Self {
        MimeError::MalformedContentType {
            reason: reason.into(),
        }
    }
}
