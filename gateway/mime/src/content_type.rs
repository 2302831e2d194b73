//! Parsing the `Content-Type` header of a `multipart/related` body (RFC 2387) and the
//! `cid:` URLs (RFC 2392) with which `xop:Include` points at a part.
//!
//! Invariants:
//! - Media type and parameter names compare ASCII-case-insensitively; values keep
//!   their case (a boundary is case-sensitive).
//! - A value may be a quoted string (backslash escapes honoured) or a bare token; a bare
//!   value runs to the next `;` and is trimmed, which also accepts the common
//!   non-conforming unquoted `boundary=uuid:…` and `start=<cid>`.
//! - A returned boundary is 1..=[`MAX_BOUNDARY_LEN`] printable ASCII characters and does
//!   not end in a space; a returned `start` is a Content-ID without its angle brackets.
//! - Parameters other than `boundary`, `start`, `type` and `start-info` are ignored;
//!   one of those four given twice is an error (it would make the body ambiguous).

use crate::error::MimeError;
use std::str::FromStr;

/// Longest boundary accepted. RFC 2046 allows 70 characters; some producers exceed it,
/// and the scanner's window grows with it, so the limit is generous but finite.
pub const MAX_BOUNDARY_LEN: usize = 200;

/// The parameters of a `multipart/related` `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelatedContentType {
    /// The `boundary` parameter, unquoted.
    pub boundary: String,
    /// The `start` parameter: the root part's Content-ID without `<>`.
    pub start: Option<String>,
    /// The `type` parameter (`application/xop+xml` for MTOM), as given.
    pub type_: Option<String>,
    /// The `start-info` parameter (`text/xml` for SOAP 1.1 over MTOM), as given.
    pub start_info: Option<String>,
}

impl FromStr for RelatedContentType {
    type Err = MimeError;

    /// Like [`parse_content_type`], but a media type other than `multipart/related` is
    /// [`MimeError::NotMultipartRelated`].
    fn from_str(header: &str) -> Result<Self, MimeError> {
        parse_content_type(header)?.ok_or(MimeError::NotMultipartRelated)
    }
}

/// Parses a `Content-Type` header value. `Ok(None)` if the media type is not
/// `multipart/related` (its parameters are then not looked at);
/// [`MimeError::MissingBoundary`] if it is but has no boundary.
pub fn parse_content_type(header: &str) -> Result<Option<RelatedContentType>, MimeError> {
    let (media, params) = match header.find(';') {
        Some(i) => (&header[..i], &header[i + 1..]),
        None => (header, ""),
    };
    if !media.trim().eq_ignore_ascii_case("multipart/related") {
        return Ok(None);
    }
    let mut boundary = None;
    let mut start = None;
    let mut type_ = None;
    let mut start_info = None;
    for (name, value) in parse_params(params)? {
        let slot = match name.to_ascii_lowercase().as_str() {
            "boundary" => &mut boundary,
            "start" => &mut start,
            "type" => &mut type_,
            "start-info" => &mut start_info,
            _ => continue,
        };
        if slot.is_some() {
            return Err(MimeError::malformed_ct(format!(
                "parameter {name:?} given twice"
            )));
        }
        *slot = Some(value);
    }
    let boundary = boundary.ok_or(MimeError::MissingBoundary)?;
    validate_boundary(&boundary)?;
    let start = match start {
        Some(s) => {
            let cid = strip_angle_brackets(&s);
            if cid.is_empty() {
                return Err(MimeError::malformed_ct("empty start parameter"));
            }
            Some(cid.to_owned())
        }
        None => None,
    };
    Ok(Some(RelatedContentType {
        boundary,
        start,
        type_,
        start_info,
    }))
}

/// Checks a boundary against the rules stated in the module invariants.
pub(crate) fn validate_boundary(boundary: &str) -> Result<(), MimeError> {
    if boundary.is_empty() {
        return Err(MimeError::MissingBoundary);
    }
    if boundary.len() > MAX_BOUNDARY_LEN {
        return Err(MimeError::malformed_ct(format!(
            "boundary longer than {MAX_BOUNDARY_LEN} characters"
        )));
    }
    if !boundary.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(MimeError::malformed_ct(
            "boundary contains a character that is not printable ASCII",
        ));
    }
    if boundary.ends_with(' ') {
        return Err(MimeError::malformed_ct("boundary ends with a space"));
    }
    Ok(())
}

/// `<id>` → `id`; anything else is returned trimmed.
pub(crate) fn strip_angle_brackets(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .map_or(s, str::trim)
}

/// Splits `; a=b; c="d"` into name/value pairs. Empty segments (`;;`, trailing `;`) and
/// segments without `=` are skipped.
fn parse_params(s: &str) -> Result<Vec<(String, String)>, MimeError> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        // Skip separators and whitespace before a name.
        while i < bytes.len() && (bytes[i] == b';' || bytes[i].is_ascii_whitespace()) {
            i += 1;
        }
        if i == bytes.len() {
            break;
        }
        let name_start = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b';' {
            i += 1;
        }
        let name = s[name_start..i].trim();
        if i == bytes.len() || bytes[i] == b';' {
            // A bare word without a value: ignore it.
            continue;
        }
        if name.is_empty() {
            return Err(MimeError::malformed_ct("parameter without a name"));
        }
        i += 1; // '='
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
            i += 1;
        }
        let value = if bytes.get(i) == Some(&b'"') {
            i += 1;
            let mut value = Vec::new();
            loop {
                match bytes.get(i) {
                    None => {
                        return Err(MimeError::malformed_ct(format!(
                            "unterminated quoted value of parameter {name:?}"
                        )))
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < bytes.len() => {
                        value.push(bytes[i + 1]);
                        i += 2;
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < bytes.len() && bytes[i] != b';' {
                return Err(MimeError::malformed_ct(format!(
                    "unexpected text after the quoted value of parameter {name:?}"
                )));
            }
            // The input is a &str and escapes only drop ASCII backslashes, so this
            // cannot fail; map it anyway rather than unwrap.
            String::from_utf8(value)
                .map_err(|_| MimeError::malformed_ct("parameter value is not UTF-8"))?
        } else {
            let value_start = i;
            while i < bytes.len() && bytes[i] != b';' {
                i += 1;
            }
            s[value_start..i].trim().to_owned()
        };
        out.push((name.to_owned(), value));
    }
    Ok(out)
}

/// The Content-ID a `cid:` URL (RFC 2392) points at, as used by `xop:Include href`:
/// `cid:a%40b` → `a@b`. `None` if `href` is not a `cid:` URL (scheme compared
/// case-insensitively), has a broken `%` escape, is not UTF-8 once decoded, or is empty.
pub fn cid_from_href(href: &str) -> Option<String> {
    let href = href.trim();
    let scheme = href.get(..4)?;
    if !scheme.eq_ignore_ascii_case("cid:") {
        return None;
    }
    let rest = &href.as_bytes()[4..];
    let mut out = Vec::with_capacity(rest.len());
    let mut i = 0;
    while i < rest.len() {
        if rest[i] == b'%' {
            let hi = hex_val(*rest.get(i + 1)?)?;
            let lo = hex_val(*rest.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(rest[i]);
            i += 1;
        }
    }
    let cid = String::from_utf8(out).ok()?;
    (!cid.is_empty()).then_some(cid)
}

/// The `cid:` URL for a Content-ID (given without `<>`), for writing `xop:Include
/// href`: every byte outside `A-Z a-z 0-9 - . _ ~ @ ! $ & ' ( ) * + , ; = :` is
/// percent-encoded. [`cid_from_href`] inverts it.
pub fn href_from_cid(content_id: &str) -> String {
    let mut out = String::with_capacity(content_id.len() + 4);
    out.push_str("cid:");
    for &b in content_id.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@!$&'()*+,;=:".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
