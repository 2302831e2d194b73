//! MTOM/XOP (`multipart/related`) for SOAP calls: a streaming reader that keeps the
//! root XML part in memory (bounded) and streams every other part to a file, hashing it
//! as it goes; and a streaming writer for MTOM answers.
//!
//! Reading: [`parse_content_type`] the request's `Content-Type`, then
//! [`read_multipart`] its body; resolve each `xop:Include href` with
//! [`cid_from_href`] and [`Multipart::part`]. Writing: [`mtom_body`], with
//! [`href_from_cid`] for the `xop:Include`s in the root.
//!
//! Crate invariants:
//! - An attachment is never held whole in memory, on either side: the reader's memory
//!   is bounded by `max_root_bytes` plus a constant (scanner window, header block,
//!   write buffer) plus one input chunk; the writer reads files in
//!   [`READ_CHUNK`]-byte pieces.
//! - Parsing does not depend on how the body is split into chunks.
//! - On any error the reader leaves no file behind in the target directory.
//! - No `unsafe`, no clock, no environment: everything is a function of the arguments
//!   (and of the files and randomness for names/boundaries).
//! - Only `binary`, `8bit` and `7bit` transfer encodings are accepted (MTOM sends
//!   binary); anything else is refused, never silently passed through undecoded.

#![forbid(unsafe_code)]

mod content_type;
mod error;
mod reader;
mod scan;
mod unique;
mod writer;

pub use content_type::{
    cid_from_href, href_from_cid, parse_content_type, RelatedContentType, MAX_BOUNDARY_LEN,
};
pub use error::MimeError;
pub use reader::{
    read_multipart, Multipart, ReadLimits, ReceivedPart, DEFAULT_CONTENT_TYPE, WRITE_BUFFER,
};
pub use scan::MAX_HEADER_BYTES;
pub use writer::{
    mtom_body, MtomBody, OutgoingPart, PartSource, READ_CHUNK, ROOT_PART_CONTENT_TYPE,
};
