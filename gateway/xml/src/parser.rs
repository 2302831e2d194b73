//! The hardened parser: quick-xml's tokenizer below, our own tree, namespace resolution
//! and limits above.
//!
//! Invariants:
//! - A DOCTYPE is rejected outright, before anything in it is read as a declaration: a
//!   document with entity declarations gets [`XmlError::EntityDeclarationForbidden`], one
//!   pointing at external resources [`XmlError::ExternalReferenceForbidden`], any other
//!   [`XmlError::DtdForbidden`]. So no entity is ever expanded and nothing is fetched.
//! - Only the five predefined entities and character references are resolved; any other
//!   reference is [`XmlError::UndefinedEntity`].
//! - Each limit of [`Limits`] is checked before the construct that would exceed it is
//!   stored.
//! - Input must be UTF-8 (the SMEV profile); a declaration naming another encoding is an
//!   error rather than a silent misreading.

use crate::dom::{
    AttributeData, Document, ElementData, NameData, NodeData, NodeId, NodeSlot, NsDeclData, NsId,
    Span, Str, XMLNS_NS, XML_NS,
};
use crate::error::{LimitKind, Position, XmlError};
use crate::limits::Limits;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Parses `input` into a [`Document`], enforcing `limits`.
pub fn parse(input: &[u8], limits: &Limits) -> Result<Document, XmlError> {
    Parser::new(input, limits)?.run()
}

struct Parser<'a> {
    input: &'a [u8],
    /// Offset of `text` within `input` (after a BOM has been skipped).
    base: usize,
    text: &'a str,
    limits: &'a Limits,
    nodes: Vec<NodeSlot>,
    namespaces: Vec<Box<str>>,
    /// The document's string arena and tables (see [`Document`]).
    strings: String,
    attributes: Vec<AttributeData>,
    ns_decls: Vec<NsDeclData>,
    /// In-scope bindings (prefix in the arena), innermost last; `frames` marks where each
    /// open element's begin.
    bindings: Vec<(Str, NsId)>,
    frames: Vec<usize>,
    /// Open elements, innermost last.
    open: Vec<NodeId>,
    elements: usize,
    ns_decl_count: usize,
    root: Option<NodeId>,
    /// Character data being collected into the arena: where it starts there, and where
    /// it started in the input (for errors).
    pending_text: Option<u32>,
    pending_text_start: usize,
    seen_root_end: bool,
    /// Per-element scratch, reused: attribute names and values before resolution.
    scratch_attrs: Vec<(NameData, Str)>,
}

/// Most bytes reserved up front for each growing table of a document.
const PREALLOCATE: usize = 256 * 1024;

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// The first character of `s` that XML 1.0 does not allow, found by a byte scan: in
/// valid UTF-8 the only such characters are the C0 controls other than TAB, LF and CR
/// (single bytes) and U+FFFE / U+FFFF (`EF BF BE` / `EF BF BF`); surrogates cannot occur.
fn find_forbidden_char(s: &str) -> Option<char> {
    scan_text(s).err()
}

/// One pass over text: `Err` with the first character XML forbids, else `Ok` telling
/// whether a CR occurs (so line ends need normalising). Whole chunks are checked without
/// branches (the compiler vectorises the fold); only a chunk that may hold a forbidden
/// character or a CR is looked at byte by byte.
fn scan_text(s: &str) -> Result<bool, char> {
    let b = s.as_bytes();
    const CHUNK: usize = 32;
    let suspicious = |x: u8| (x < 0x20 && !matches!(x, b'\t' | b'\n')) | (x == 0xEF);
    let mut base = 0;
    let mut has_cr = false;
    for chunk in b.chunks(CHUNK) {
        if chunk.iter().fold(false, |acc, &x| acc | suspicious(x)) {
            for (j, &x) in chunk.iter().enumerate() {
                let i = base + j;
                if x == b'\r' {
                    has_cr = true;
                } else if x < 0x20 && !matches!(x, b'\t' | b'\n') {
                    return Err(x as char);
                } else if x == 0xEF
                    && i + 2 < b.len()
                    && b[i + 1] == 0xBF
                    && (b[i + 2] == 0xBE || b[i + 2] == 0xBF)
                {
                    return Err(s[i..].chars().next().unwrap_or('\u{FFFF}'));
                }
            }
        }
        base += chunk.len();
    }
    Ok(has_cr)
}

/// Appends `raw` to `out` with XML 1.0 line-end normalisation (CRLF and lone CR become LF).
fn push_normalized_eol(out: &mut String, raw: &str) {
    push_normalized_eol_known(out, raw, raw.contains('\r'));
}

/// [`push_normalized_eol`] when the caller already knows whether `raw` holds a CR.
fn push_normalized_eol_known(out: &mut String, raw: &str, has_cr: bool) {
    if !has_cr {
        out.push_str(raw);
        return;
    }
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' {
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
            out.push('\n');
        } else {
            out.push(c);
        }
    }
}

fn check_name(name: &str) -> Result<(), String> {
    // Fast path: the common ASCII name `[A-Za-z_][A-Za-z0-9_.-]*(:[A-Za-z_][A-Za-z0-9_.-]*)?`.
    let b = name.as_bytes();
    let start_ok = |c: u8| c.is_ascii_alphabetic() || c == b'_';
    let rest_ok = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-');
    if !b.is_empty() && start_ok(b[0]) {
        let mut colons = 0;
        let mut ok = true;
        let mut after_colon = false;
        for &c in &b[1..] {
            if c == b':' {
                colons += 1;
                after_colon = true;
            } else if after_colon {
                ok &= start_ok(c);
                after_colon = false;
            } else {
                ok &= rest_ok(c);
            }
        }
        if ok && colons <= 1 && !after_colon {
            return Ok(());
        }
    }
    check_name_slow(name)
}

fn check_name_slow(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    let mut parts = name.split(':');
    let first = parts.next().unwrap_or("");
    let second = parts.next();
    if parts.next().is_some() {
        return Err(format!("name '{name}' has more than one colon"));
    }
    for part in std::iter::once(first).chain(second) {
        let Some(c) = part.chars().next() else {
            return Err(format!("name '{name}' has an empty prefix or local part"));
        };
        if c.is_ascii_digit() || c == '-' || c == '.' {
            return Err(format!("name '{name}' starts with an invalid character"));
        }
        if part
            .chars()
            .any(|c| is_xml_space(c) || matches!(c, '<' | '>' | '&' | '"' | '\'' | '=' | '/'))
        {
            return Err(format!("name '{name}' contains an invalid character"));
        }
    }
    Ok(())
}

/// Classifies a DOCTYPE so that the error names the most specific danger in it.
fn doctype_error(doctype_body: &str, position: Position) -> XmlError {
    let upper = doctype_body.to_ascii_uppercase();
    let has_entity = upper.contains("<!ENTITY");
    // An external identifier before the internal subset, or inside an entity declaration.
    let head = upper.split('[').next().unwrap_or("");
    let external_dtd = head.contains("SYSTEM") || head.contains("PUBLIC");
    let external_entity = has_entity && (upper.contains("SYSTEM") || upper.contains("PUBLIC"));
    if external_entity || (external_dtd && !has_entity) {
        XmlError::ExternalReferenceForbidden { position }
    } else if has_entity {
        XmlError::EntityDeclarationForbidden { position }
    } else {
        XmlError::DtdForbidden { position }
    }
}

/// Finds a DOCTYPE in the prolog (before the first element) without trusting the tokenizer
/// with it; returns its offset and the text up to the end of the input prolog scan.
fn find_prolog_doctype(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'<' => {
                let rest = &text[i..];
                if rest.starts_with("<?") {
                    i += rest.find("?>").map_or(bytes.len(), |p| p + 2);
                } else if rest.starts_with("<!--") {
                    i += rest.find("-->").map_or(bytes.len(), |p| p + 3);
                } else if rest.len() >= 9 && rest.as_bytes()[..9].eq_ignore_ascii_case(b"<!DOCTYPE")
                {
                    return Some(i);
                } else {
                    return None;
                }
            }
            _ => return None,
        }
    }
    None
}

impl<'a> Parser<'a> {
    fn new(input: &'a [u8], limits: &'a Limits) -> Result<Self, XmlError> {
        if input.len() > limits.max_bytes {
            return Err(XmlError::LimitExceeded {
                kind: LimitKind::TotalBytes,
                max: limits.max_bytes,
                position: Position {
                    offset: limits.max_bytes,
                    line: 0,
                    column: 0,
                },
            });
        }
        let base = if input.starts_with(&[0xEF, 0xBB, 0xBF]) {
            3
        } else {
            0
        };
        if input.starts_with(&[0xFE, 0xFF]) || input.starts_with(&[0xFF, 0xFE]) {
            return Err(XmlError::Encoding {
                message: "UTF-16 input is not accepted; send UTF-8".into(),
                position: Position::locate(input, 0),
            });
        }
        // SIMD validation on the hot path; the standard library's only on failure, for
        // the exact position of the bad byte.
        let text = match simdutf8::basic::from_utf8(&input[base..]) {
            Ok(t) => t,
            Err(_) => {
                let e = std::str::from_utf8(&input[base..])
                    .err()
                    .map_or(0, |e| e.valid_up_to());
                return Err(XmlError::Encoding {
                    message: "invalid UTF-8 sequence".into(),
                    position: Position::locate(input, base + e),
                });
            }
        };
        if input.len() > (u32::MAX / 2) as usize {
            // Arena offsets are u32; no limit configuration may take us past them.
            return Err(XmlError::LimitExceeded {
                kind: LimitKind::TotalBytes,
                max: (u32::MAX / 2) as usize,
                position: Position::default(),
            });
        }
        Ok(Parser {
            input,
            base,
            text,
            limits,
            nodes: {
                // About one node per 24 input bytes in SOAP envelopes. The first guess is
                // capped: hostile input must not buy memory in proportion to its size
                // before its structure has been checked against the limits.
                let mut v = Vec::with_capacity(1 + (input.len() / 24).min(PREALLOCATE / 64));
                v.push(NodeSlot {
                    parent: None,
                    first_child: None,
                    last_child: None,
                    next_sibling: None,
                    data: NodeData::Document,
                });
                v
            },
            namespaces: vec!["".into()],
            // Names, text and values are at most the input's size (capped, as above).
            strings: String::with_capacity(input.len().min(PREALLOCATE)),
            attributes: Vec::with_capacity((input.len() / 64).min(PREALLOCATE / 64)),
            ns_decls: Vec::new(),
            bindings: Vec::new(),
            frames: Vec::new(),
            open: Vec::new(),
            elements: 0,
            ns_decl_count: 0,
            root: None,
            pending_text: None,
            pending_text_start: 0,
            seen_root_end: false,
            scratch_attrs: Vec::new(),
        })
    }

    fn pos(&self, offset_in_text: usize) -> Position {
        Position::locate(self.input, self.base + offset_in_text)
    }

    fn malformed(&self, offset_in_text: usize, message: impl Into<String>) -> XmlError {
        XmlError::Malformed {
            message: message.into(),
            position: self.pos(offset_in_text),
        }
    }

    fn forbidden_char(&self, at: usize, bad: char) -> XmlError {
        self.malformed(
            at,
            format!("character U+{:04X} is not allowed in XML", bad as u32),
        )
    }

    fn limit(&self, kind: LimitKind, max: usize, offset_in_text: usize) -> XmlError {
        XmlError::LimitExceeded {
            kind,
            max,
            position: self.pos(offset_in_text),
        }
    }

    fn intern(&mut self, uri: &str) -> NsId {
        if uri.is_empty() {
            return NsId::NONE;
        }
        // Documents use a handful of namespaces; a linear scan beats hashing here.
        if let Some(i) = self.namespaces.iter().rposition(|u| &**u == uri) {
            return NsId(i as u32);
        }
        self.namespaces.push(uri.into());
        NsId((self.namespaces.len() - 1) as u32)
    }

    /// Copies `s` into the arena.
    fn store(&mut self, s: &str) -> Str {
        let start = self.strings.len() as u32;
        self.strings.push_str(s);
        Str {
            start,
            end: self.strings.len() as u32,
        }
    }

    fn arena(&self, s: Str) -> &str {
        &self.strings[s.start as usize..s.end as usize]
    }

    fn store_name(&mut self, qname: &str) -> NameData {
        let local_start = qname.find(':').map_or(0, |i| i + 1) as u32;
        NameData {
            qname: self.store(qname),
            local_start,
        }
    }

    fn name_prefix(&self, n: &NameData) -> Option<&str> {
        (n.local_start > 0).then(|| {
            &self.strings[n.qname.start as usize..(n.qname.start + n.local_start - 1) as usize]
        })
    }

    fn name_local(&self, n: &NameData) -> &str {
        &self.strings[(n.qname.start + n.local_start) as usize..n.qname.end as usize]
    }

    fn resolve_prefix(&self, prefix: &str) -> Option<NsId> {
        if prefix == "xml" {
            return None; // handled by the caller (interned on demand)
        }
        self.bindings
            .iter()
            .rev()
            .find(|(p, _)| self.arena(*p) == prefix)
            .map(|(_, ns)| *ns)
    }

    fn append_child(&mut self, parent: NodeId, data: NodeData) -> NodeId {
        let id = NodeId(self.nodes.len() as u32);
        self.nodes.push(NodeSlot {
            parent: Some(parent),
            first_child: None,
            last_child: None,
            next_sibling: None,
            data,
        });
        let p = &mut self.nodes[parent.index()];
        match p.last_child {
            Some(last) => {
                p.last_child = Some(id);
                self.nodes[last.index()].next_sibling = Some(id);
            }
            None => {
                p.first_child = Some(id);
                p.last_child = Some(id);
            }
        }
        id
    }

    fn current_parent(&self) -> NodeId {
        self.open.last().copied().unwrap_or(Document::DOCUMENT_NODE)
    }

    fn flush_text(&mut self) {
        let Some(start) = self.pending_text.take() else {
            return;
        };
        if self.open.is_empty() {
            // Outside the document element only whitespace can have got here; drop it.
            self.strings.truncate(start as usize);
            return;
        }
        let text = Str {
            start,
            end: self.strings.len() as u32,
        };
        let parent = self.current_parent();
        self.append_child(parent, NodeData::Text(text));
    }

    /// Starts collecting character data at input offset `at`, if not already.
    fn begin_text(&mut self, at: usize) -> u32 {
        match self.pending_text {
            Some(start) => start,
            None => {
                let start = self.strings.len() as u32;
                self.pending_text = Some(start);
                self.pending_text_start = at;
                start
            }
        }
    }

    fn check_text_len(&self, start: u32, adding: usize) -> Result<(), XmlError> {
        if self.strings.len() - start as usize + adding > self.limits.max_text_len {
            return Err(self.limit(
                LimitKind::TextLength,
                self.limits.max_text_len,
                self.pending_text_start,
            ));
        }
        Ok(())
    }

    fn push_text(&mut self, at: usize, s: &str) -> Result<(), XmlError> {
        if self.open.is_empty() {
            if let Some(off) = s.find(|c: char| !is_xml_space(c)) {
                return Err(self.malformed(at + off, "text outside the document element"));
            }
            return Ok(());
        }
        let start = self.begin_text(at);
        self.check_text_len(start, s.len())?;
        let has_cr = scan_text(s).map_err(|bad| self.forbidden_char(at, bad))?;
        push_normalized_eol_known(&mut self.strings, s, has_cr);
        Ok(())
    }

    /// Resolves a `&name;` reference (name without `&` and `;`).
    fn resolve_reference(&self, name: &str, at: usize) -> Result<char, XmlError> {
        if let Some(num) = name.strip_prefix('#') {
            let code = if let Some(hex) = num.strip_prefix('x') {
                u32::from_str_radix(hex, 16).ok()
            } else if num.bytes().all(|b| b.is_ascii_digit()) {
                num.parse::<u32>().ok()
            } else {
                None
            };
            return match code.and_then(char::from_u32) {
                Some(c) if is_xml_char(c) => Ok(c),
                _ => Err(self.malformed(at, format!("invalid character reference '&{name};'"))),
            };
        }
        match name {
            "amp" => Ok('&'),
            "lt" => Ok('<'),
            "gt" => Ok('>'),
            "quot" => Ok('"'),
            "apos" => Ok('\''),
            _ => Err(XmlError::UndefinedEntity {
                name: name.to_string(),
                position: self.pos(at),
            }),
        }
    }

    /// Attribute-value normalisation (XML 1.0 §3.3.3 for CDATA attributes) into the
    /// arena: literal whitespace becomes a space, references are resolved (a `&#xA;` stays
    /// a newline).
    fn normalize_attribute_value(&mut self, raw: &str, at: usize) -> Result<Str, XmlError> {
        if raw.len() > self.limits.max_text_len {
            return Err(self.limit(LimitKind::TextLength, self.limits.max_text_len, at));
        }
        if let Some(bad) = find_forbidden_char(raw) {
            return Err(self.forbidden_char(at, bad));
        }
        if !raw.contains(['&', '<', '\t', '\r', '\n']) {
            return Ok(self.store(raw));
        }
        let start = self.strings.len() as u32;
        let mut rest = raw;
        while let Some(i) = rest.find(['&', '<', '\t', '\r', '\n']) {
            self.strings.push_str(&rest[..i]);
            let c = rest.as_bytes()[i];
            match c {
                b'&' => {
                    let tail = &rest[i + 1..];
                    let Some(end) = tail.find(';') else {
                        return Err(self.malformed(at, "unterminated reference in attribute value"));
                    };
                    let ch = self.resolve_reference(&tail[..end], at)?;
                    self.strings.push(ch);
                    rest = &tail[end + 1..];
                }
                b'<' => return Err(self.malformed(at, "'<' is not allowed in an attribute value")),
                b'\r' => {
                    self.strings.push(' ');
                    rest = rest[i + 1..].strip_prefix('\n').unwrap_or(&rest[i + 1..]);
                }
                _ => {
                    self.strings.push(' ');
                    rest = &rest[i + 1..];
                }
            }
        }
        self.strings.push_str(rest);
        Ok(Str {
            start,
            end: self.strings.len() as u32,
        })
    }

    fn start_element(
        &mut self,
        e: &BytesStart<'_>,
        start: usize,
        end: usize,
        empty: bool,
    ) -> Result<(), XmlError> {
        if self.seen_root_end {
            return Err(self.malformed(start, "a second document element"));
        }
        self.flush_text();
        if self.open.len() + 1 > self.limits.max_depth {
            return Err(self.limit(LimitKind::Depth, self.limits.max_depth, start));
        }
        if self.elements + 1 > self.limits.max_elements {
            return Err(self.limit(LimitKind::Elements, self.limits.max_elements, start));
        }
        self.elements += 1;
        let qname = e.name().0;
        if qname.len() > self.limits.max_name_len {
            return Err(self.limit(LimitKind::NameLength, self.limits.max_name_len, start));
        }
        check_name(qname).map_err(|m| self.malformed(start, m))?;

        // First pass: namespace declarations and raw attributes.
        let decls_start = self.ns_decls.len() as u32;
        let mut raw_attrs = std::mem::take(&mut self.scratch_attrs);
        raw_attrs.clear();
        let frame = self.bindings.len();
        for attr in e.attributes().with_checks(true) {
            let attr =
                attr.map_err(|err| self.malformed(start, format!("bad attribute: {err}")))?;
            let key = attr.key.0;
            if key.len() > self.limits.max_name_len {
                return Err(self.limit(LimitKind::NameLength, self.limits.max_name_len, start));
            }
            check_name(key).map_err(|m| self.malformed(start, m))?;
            let value = self.normalize_attribute_value(&attr.value, start)?;
            if key == "xmlns" || key.starts_with("xmlns:") {
                self.ns_decl_count += 1;
                if self.ns_decl_count > self.limits.max_namespace_declarations {
                    return Err(self.limit(
                        LimitKind::NamespaceDeclarations,
                        self.limits.max_namespace_declarations,
                        start,
                    ));
                }
                let prefix = key.strip_prefix("xmlns:").unwrap_or("");
                let uri_text = self.arena(value).to_string();
                // The URI lives in the namespace table; reclaim its arena copy.
                self.strings.truncate(value.start as usize);
                self.check_declaration(prefix, &uri_text, start)?;
                if prefix == "xml" {
                    continue; // a redundant but legal declaration of the fixed binding
                }
                let uri = self.intern(&uri_text);
                let prefix = self.store(prefix);
                self.ns_decls.push(NsDeclData { prefix, uri });
                self.bindings.push((prefix, uri));
            } else {
                if raw_attrs.len() + 1 > self.limits.max_attributes_per_element {
                    return Err(self.limit(
                        LimitKind::AttributesPerElement,
                        self.limits.max_attributes_per_element,
                        start,
                    ));
                }
                let name = self.store_name(key);
                raw_attrs.push((name, value));
            }
        }
        self.frames.push(frame);
        let decls_end = self.ns_decls.len() as u32;
        let name = self.store_name(qname);
        let ns = self.resolve_name(&name, true, start)?;
        let attrs_start = self.attributes.len();
        for &(aname, value) in &raw_attrs {
            let ans = self.resolve_name(&aname, false, start)?;
            let local = self.name_local(&aname);
            if self.attributes[attrs_start..]
                .iter()
                .any(|a| a.ns == ans && self.name_local(&a.name) == local)
            {
                return Err(XmlError::Namespace {
                    message: format!(
                        "attribute '{}' duplicates another attribute's expanded name",
                        self.arena(aname.qname)
                    ),
                    position: self.pos(start),
                });
            }
            self.attributes.push(AttributeData {
                name: aname,
                ns: ans,
                value,
            });
        }
        self.scratch_attrs = raw_attrs;
        let parent = self.current_parent();
        let span = Span {
            start: self.base + start,
            start_tag_end: self.base + end,
            end_tag_start: self.base + end,
            end: self.base + end,
        };
        let id = self.append_child(
            parent,
            NodeData::Element(ElementData {
                name,
                ns,
                ns_decls: (decls_start, decls_end),
                attributes: (attrs_start as u32, self.attributes.len() as u32),
                span,
            }),
        );
        if self.root.is_none() {
            self.root = Some(id);
        }
        if empty {
            self.close_scope();
            if self.open.is_empty() {
                self.seen_root_end = true;
            }
        } else {
            self.open.push(id);
        }
        Ok(())
    }

    fn check_declaration(&self, prefix: &str, value: &str, at: usize) -> Result<(), XmlError> {
        let err = |message: String| XmlError::Namespace {
            message,
            position: self.pos(at),
        };
        if prefix == "xmlns" {
            return Err(err("the prefix 'xmlns' cannot be declared".into()));
        }
        if prefix == "xml" && value != XML_NS {
            return Err(err(format!(
                "the prefix 'xml' can only be bound to {XML_NS}"
            )));
        }
        if prefix != "xml" && value == XML_NS {
            return Err(err(format!(
                "{XML_NS} can only be bound to the prefix 'xml'"
            )));
        }
        if value == XMLNS_NS {
            return Err(err(format!("{XMLNS_NS} cannot be declared")));
        }
        if !prefix.is_empty() && value.is_empty() {
            return Err(err(format!(
                "prefix '{prefix}' cannot be undeclared (xmlns:{prefix}=\"\" is not XML 1.0)"
            )));
        }
        Ok(())
    }

    /// The namespace of a stored element or attribute name. Reads the prefix in place
    /// from the arena (no copy); only the `xml` prefix needs the namespace table changed.
    fn resolve_name(
        &mut self,
        n: &NameData,
        is_element: bool,
        at: usize,
    ) -> Result<NsId, XmlError> {
        let resolved = match self.name_prefix(n) {
            Some("xml") => None,
            Some("xmlns") => {
                return Err(XmlError::Namespace {
                    message: "the prefix 'xmlns' cannot be used on an element or attribute".into(),
                    position: self.pos(at),
                })
            }
            Some(p) => Some(self.resolve_prefix(p).ok_or_else(|| XmlError::Namespace {
                message: format!("prefix '{p}' is not declared"),
                position: self.pos(at),
            })?),
            None if is_element => Some(self.resolve_prefix("").unwrap_or(NsId::NONE)),
            None => Some(NsId::NONE),
        };
        Ok(match resolved {
            Some(ns) => ns,
            None => self.intern(XML_NS),
        })
    }

    fn close_scope(&mut self) {
        if let Some(mark) = self.frames.pop() {
            self.bindings.truncate(mark);
        }
    }

    fn end_element(&mut self, start: usize, end: usize) -> Result<(), XmlError> {
        self.flush_text();
        let Some(id) = self.open.pop() else {
            return Err(self.malformed(start, "end tag without a start tag"));
        };
        if let NodeData::Element(e) = &mut self.nodes[id.index()].data {
            e.span.end_tag_start = self.base + start;
            e.span.end = self.base + end;
        }
        self.close_scope();
        if self.open.is_empty() {
            self.seen_root_end = true;
        }
        Ok(())
    }

    fn run(mut self) -> Result<Document, XmlError> {
        if let Some(at) = find_prolog_doctype(self.text) {
            // The declaration ends at the first '>' unless an internal subset ('[' before
            // it) runs to "]>"; only that text is classified.
            let rest = &self.text[at..];
            let first_gt = rest.find('>').unwrap_or(rest.len());
            let end = match rest[..first_gt].find('[') {
                Some(_) => rest.find("]>").map_or(rest.len(), |p| p + 2),
                None => first_gt,
            };
            let body = &rest[..end];
            return Err(doctype_error(body, self.pos(at)));
        }
        let text = self.text;
        let mut reader = Reader::from_str(text);
        {
            let config = reader.config_mut();
            config.check_end_names = true;
            config.check_comments = true;
            config.expand_empty_elements = false;
            config.trim_text(false);
            config.allow_dangling_amp = false;
            config.allow_unmatched_ends = false;
        }
        let mut first_event = true;
        loop {
            let start = reader.buffer_position() as usize;
            let event = match reader.read_event() {
                Ok(ev) => ev,
                Err(err) => {
                    let at = reader.error_position() as usize;
                    return Err(self.malformed(at, err.to_string()));
                }
            };
            let end = reader.buffer_position() as usize;
            match event {
                Event::Start(e) => self.start_element(&e, start, end, false)?,
                Event::Empty(e) => self.start_element(&e, start, end, true)?,
                Event::End(_) => self.end_element(start, end)?,
                Event::Text(t) => {
                    let raw = t.into_inner();
                    self.push_text(start, &raw)?;
                }
                Event::GeneralRef(r) => {
                    let name = r.into_inner();
                    let c = self.resolve_reference(&name, start)?;
                    if self.open.is_empty() {
                        return Err(self.malformed(start, "reference outside the document element"));
                    }
                    let text_start = self.begin_text(start);
                    self.check_text_len(text_start, c.len_utf8())?;
                    self.strings.push(c);
                }
                Event::CData(t) => {
                    if self.open.is_empty() {
                        return Err(self.malformed(start, "CDATA outside the document element"));
                    }
                    let raw = t.into_inner();
                    self.push_text(start, &raw)?;
                }
                Event::Comment(t) => {
                    self.flush_text();
                    let raw = t.into_inner();
                    if raw.len() > self.limits.max_text_len {
                        return Err(self.limit(
                            LimitKind::TextLength,
                            self.limits.max_text_len,
                            start,
                        ));
                    }
                    let comment_start = self.strings.len() as u32;
                    push_normalized_eol(&mut self.strings, &raw);
                    let comment = Str {
                        start: comment_start,
                        end: self.strings.len() as u32,
                    };
                    let parent = self.current_parent();
                    self.append_child(parent, NodeData::Comment(comment));
                }
                Event::PI(pi) => {
                    self.flush_text();
                    let target = pi.target();
                    if target.eq_ignore_ascii_case("xml") {
                        return Err(self
                            .malformed(start, "XML declaration not at the start of the document"));
                    }
                    check_name(target).map_err(|m| self.malformed(start, m))?;
                    if target.contains(':') {
                        return Err(self.malformed(
                            start,
                            "a processing instruction target cannot contain ':'",
                        ));
                    }
                    let content = pi.content();
                    if content.len() > self.limits.max_text_len {
                        return Err(self.limit(
                            LimitKind::TextLength,
                            self.limits.max_text_len,
                            start,
                        ));
                    }
                    let target = self.store(target);
                    let data_start = self.strings.len() as u32;
                    push_normalized_eol(
                        &mut self.strings,
                        content.trim_start_matches(is_xml_space),
                    );
                    let data = Str {
                        start: data_start,
                        end: self.strings.len() as u32,
                    };
                    let parent = self.current_parent();
                    self.append_child(parent, NodeData::ProcessingInstruction { target, data });
                }
                Event::Decl(d) => {
                    if !first_event {
                        return Err(self
                            .malformed(start, "XML declaration not at the start of the document"));
                    }
                    if let Ok(v) = d.version() {
                        if &*v != "1.0" {
                            return Err(self.malformed(
                                start,
                                format!("XML version {v} is not supported; use 1.0"),
                            ));
                        }
                    }
                    if let Some(Ok(enc)) = d.encoding() {
                        let enc = enc.to_ascii_lowercase();
                        if enc != "utf-8" && enc != "utf8" {
                            return Err(XmlError::Encoding {
                                message: format!(
                                    "declared encoding '{enc}' is not accepted; send UTF-8"
                                ),
                                position: self.pos(start),
                            });
                        }
                    }
                }
                Event::DocType(t) => {
                    let body = t.into_inner();
                    return Err(doctype_error(&body, self.pos(start)));
                }
                Event::Eof => break,
            }
            first_event = false;
        }
        self.flush_text();
        if !self.open.is_empty() {
            return Err(self.malformed(self.text.len(), "document ends inside an element"));
        }
        let Some(root) = self.root else {
            return Err(self.malformed(self.text.len(), "no document element"));
        };
        Ok(Document {
            nodes: self.nodes,
            namespaces: self.namespaces,
            root,
            strings: self.strings,
            attributes: self.attributes,
            ns_decls: self.ns_decls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_scan_finds_exactly_the_characters_xml_forbids() {
        for c in [
            '\u{0}', '\u{1}', '\u{8}', '\u{B}', '\u{C}', '\u{1F}', '\u{FFFE}', '\u{FFFF}',
        ] {
            let s = format!("ab{c}cd");
            assert_eq!(find_forbidden_char(&s), Some(c), "U+{:04X}", c as u32);
            assert!(!is_xml_char(c));
        }
        for c in [
            '\t',
            '\n',
            '\r',
            ' ',
            'Ж',
            '\u{D7FF}',
            '\u{E000}',
            '\u{FFFD}',
            '\u{10000}',
            '\u{10FFFF}',
            '\u{EFBF}',
        ] {
            let s = format!("ab{c}cd");
            assert_eq!(find_forbidden_char(&s), None, "U+{:04X}", c as u32);
            assert!(is_xml_char(c));
        }
    }
}
