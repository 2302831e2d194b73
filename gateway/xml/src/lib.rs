//! XML for mezhved: a hardened parser, Exclusive XML Canonicalization 1.0 and the SMEV
//! transform.
//!
//! Architecture invariant: this crate is pure. It does no I/O, reads no clock and keeps
//! no global state; every function is a function of its arguments, which is what lets the
//! fuzz targets in `fuzz/` and the property tests drive it directly.
//!
//! Security invariant: [`parse`] never expands a declared entity and never reads a DTD;
//! every resource it spends is bounded by [`Limits`].

#![forbid(unsafe_code)]

pub mod c14n;
pub mod dom;
pub mod error;
mod escape;
pub mod fuzzing;
pub mod limits;
mod parser;
pub mod path;
pub mod smev;

pub use dom::{Attribute, Document, Element, NodeId, NodeKind, NsId, Span, Visit};
pub use error::{LimitKind, Position, XmlError};
pub use limits::Limits;
pub use parser::parse;
pub use path::{ElementPath, PathError};
