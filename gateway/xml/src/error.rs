//! Errors of the XML layer. Every error says where it happened (byte offset, line,
//! column) and, for a limit, which limit and its value, so a caller's fault message can
//! point at the exact spot.

use std::fmt;
use thiserror::Error;

/// A place in the input: byte offset from the start, 1-based line and column (the
/// column counts characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub offset: usize,
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// Computes line and column of `offset` in `input`. Only called on error paths.
    pub fn locate(input: &[u8], offset: usize) -> Self {
        let offset = offset.min(input.len());
        let before = &input[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        // Count characters, not bytes: continuation bytes of UTF-8 are 0b10xxxxxx.
        let column = before[line_start..]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count()
            + 1;
        Position {
            offset,
            line,
            column,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {} (byte {})",
            self.line, self.column, self.offset
        )
    }
}

/// Which configured limit was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    TotalBytes,
    Depth,
    AttributesPerElement,
    Elements,
    NamespaceDeclarations,
    TextLength,
    NameLength,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::TotalBytes => "total input size in bytes",
            LimitKind::Depth => "element nesting depth",
            LimitKind::AttributesPerElement => "attributes per element",
            LimitKind::Elements => "number of elements",
            LimitKind::NamespaceDeclarations => "number of namespace declarations",
            LimitKind::TextLength => "length of a text node or attribute value in bytes",
            LimitKind::NameLength => "length of a name in bytes",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum XmlError {
    #[error("limit exceeded at {position}: {kind} is limited to {max}")]
    LimitExceeded {
        kind: LimitKind,
        max: usize,
        position: Position,
    },
    #[error("document type declarations (DTD) are not accepted, at {position}")]
    DtdForbidden { position: Position },
    #[error("entity declarations are not accepted (entity expansion attacks), at {position}")]
    EntityDeclarationForbidden { position: Position },
    #[error(
        "external references (external DTD or external entity) are not accepted, at {position}"
    )]
    ExternalReferenceForbidden { position: Position },
    #[error("reference to undefined entity '&{name};' at {position} (only the five predefined entities and character references are allowed)")]
    UndefinedEntity { name: String, position: Position },
    #[error("input is not UTF-8 at {position}: {message}")]
    Encoding { message: String, position: Position },
    #[error("malformed XML at {position}: {message}")]
    Malformed { message: String, position: Position },
    #[error("namespace error at {position}: {message}")]
    Namespace { message: String, position: Position },
}

impl XmlError {
    /// Where the error happened.
    pub fn position(&self) -> Position {
        match self {
            XmlError::LimitExceeded { position, .. }
            | XmlError::DtdForbidden { position }
            | XmlError::EntityDeclarationForbidden { position }
            | XmlError::ExternalReferenceForbidden { position }
            | XmlError::UndefinedEntity { position, .. }
            | XmlError::Encoding { position, .. }
            | XmlError::Malformed { position, .. }
            | XmlError::Namespace { position, .. } => *position,
        }
    }
}
