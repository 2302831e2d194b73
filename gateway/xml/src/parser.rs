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
    Attribute, Document, Element, Name, NamespaceDeclaration, Node, NodeId, NodeKind, NsId, Span,
    XMLNS_NS, XML_NS,
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
    nodes: Vec<Node>,
    namespaces: Vec<Box<str>>,
    /// In-scope bindings, innermost last; `frames` marks where each open element's begin.
    bindings: Vec<(Box<str>, NsId)>,
    frames: Vec<usize>,
    /// Open elements, innermost last.
    open: Vec<NodeId>,
    elements: usize,
    ns_decl_count: usize,
    root: Option<NodeId>,
    pending_text: String,
    pending_text_start: usize,
    seen_root_end: bool,
}

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
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let x = b[i];
        if x < 0x20 && !matches!(x, b'\t' | b'\n' | b'\r') {
            return Some(x as char);
        }
        if x == 0xEF
            && i + 2 < b.len()
            && b[i + 1] == 0xBF
            && (b[i + 2] == 0xBE || b[i + 2] == 0xBF)
        {
            return s[i..].chars().next();
        }
        i += 1;
    }
    None
}

/// Appends `raw` to `out` with XML 1.0 line-end normalisation (CRLF and lone CR become LF).
fn push_normalized_eol(out: &mut String, raw: &str) {
    if !raw.contains('\r') {
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
        let text = std::str::from_utf8(&input[base..]).map_err(|e| XmlError::Encoding {
            message: format!("invalid UTF-8 sequence: {e}"),
            position: Position::locate(input, base + e.valid_up_to()),
        })?;
        Ok(Parser {
            input,
            base,
            text,
            limits,
            nodes: vec![Node {
                parent: None,
                first_child: None,
                last_child: None,
                next_sibling: None,
                kind: NodeKind::Document,
            }],
            namespaces: vec!["".into()],
            bindings: Vec::new(),
            frames: Vec::new(),
            open: Vec::new(),
            elements: 0,
            ns_decl_count: 0,
            root: None,
            pending_text: String::new(),
            pending_text_start: 0,
            seen_root_end: false,
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

    fn resolve_prefix(&self, prefix: &str) -> Option<NsId> {
        if prefix == "xml" {
            return None; // handled by the caller (interned on demand)
        }
        self.bindings
            .iter()
            .rev()
            .find(|(p, _)| &**p == prefix)
            .map(|(_, ns)| *ns)
    }

    fn append_child(&mut self, parent: NodeId, kind: NodeKind) -> NodeId {
        let id = NodeId(self.nodes.len() as u32);
        self.nodes.push(Node {
            parent: Some(parent),
            first_child: None,
            last_child: None,
            next_sibling: None,
            kind,
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
        if self.pending_text.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.pending_text);
        if self.open.is_empty() {
            // Outside the document element only whitespace can have got here; drop it.
            return;
        }
        let parent = self.current_parent();
        self.append_child(parent, NodeKind::Text(text.into_boxed_str()));
    }

    fn push_text(&mut self, at: usize, s: &str) -> Result<(), XmlError> {
        if self.pending_text.is_empty() {
            self.pending_text_start = at;
        }
        if self.open.is_empty() {
            if let Some(off) = s.find(|c: char| !is_xml_space(c)) {
                return Err(self.malformed(at + off, "text outside the document element"));
            }
            return Ok(());
        }
        if self.pending_text.len() + s.len() > self.limits.max_text_len {
            return Err(self.limit(
                LimitKind::TextLength,
                self.limits.max_text_len,
                self.pending_text_start,
            ));
        }
        if let Some(bad) = find_forbidden_char(s) {
            return Err(self.malformed(
                at,
                format!("character U+{:04X} is not allowed in XML", bad as u32),
            ));
        }
        push_normalized_eol(&mut self.pending_text, s);
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

    /// Attribute-value normalisation (XML 1.0 §3.3.3 for CDATA attributes): literal
    /// whitespace becomes a space, references are resolved (a `&#xA;` stays a newline).
    fn normalize_attribute_value(&self, raw: &str, at: usize) -> Result<String, XmlError> {
        if raw.len() > self.limits.max_text_len {
            return Err(self.limit(LimitKind::TextLength, self.limits.max_text_len, at));
        }
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(i) = rest.find(['&', '<', '\t', '\r', '\n']) {
            out.push_str(&rest[..i]);
            let c = rest.as_bytes()[i];
            match c {
                b'&' => {
                    let tail = &rest[i + 1..];
                    let Some(end) = tail.find(';') else {
                        return Err(self.malformed(at, "unterminated reference in attribute value"));
                    };
                    out.push(self.resolve_reference(&tail[..end], at)?);
                    rest = &tail[end + 1..];
                }
                b'<' => return Err(self.malformed(at, "'<' is not allowed in an attribute value")),
                b'\r' => {
                    out.push(' ');
                    rest = rest[i + 1..].strip_prefix('\n').unwrap_or(&rest[i + 1..]);
                }
                _ => {
                    out.push(' ');
                    rest = &rest[i + 1..];
                }
            }
        }
        out.push_str(rest);
        if let Some(bad) = find_forbidden_char(&out) {
            return Err(self.malformed(
                at,
                format!("character U+{:04X} is not allowed in XML", bad as u32),
            ));
        }
        Ok(out)
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
        let mut decls: Vec<NamespaceDeclaration> = Vec::new();
        let mut raw_attrs: Vec<(Name, String)> = Vec::new();
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
                self.check_declaration(prefix, &value, start)?;
                if prefix == "xml" {
                    continue; // a redundant but legal declaration of the fixed binding
                }
                let uri = self.intern(&value);
                decls.push(NamespaceDeclaration {
                    prefix: prefix.into(),
                    uri,
                });
            } else {
                if raw_attrs.len() + 1 > self.limits.max_attributes_per_element {
                    return Err(self.limit(
                        LimitKind::AttributesPerElement,
                        self.limits.max_attributes_per_element,
                        start,
                    ));
                }
                raw_attrs.push((Name::new(key), value));
            }
        }
        self.frames.push(self.bindings.len());
        for d in &decls {
            self.bindings.push((d.prefix.clone(), d.uri));
        }
        let name = Name::new(qname);
        let ns = self.resolve_name(name.prefix(), true, start)?;
        let mut attributes = Vec::with_capacity(raw_attrs.len());
        for (aname, value) in raw_attrs {
            let ans = match aname.prefix() {
                None => NsId::NONE,
                p => self.resolve_name(p, false, start)?,
            };
            if attributes
                .iter()
                .any(|a: &Attribute| a.ns == ans && a.local_name() == aname.local_name())
            {
                return Err(XmlError::Namespace {
                    message: format!(
                        "attribute '{}' duplicates another attribute's expanded name",
                        aname.qname()
                    ),
                    position: self.pos(start),
                });
            }
            attributes.push(Attribute {
                name: aname,
                ns: ans,
                value: value.into_boxed_str(),
            });
        }
        let parent = self.current_parent();
        let span = Span {
            start: self.base + start,
            start_tag_end: self.base + end,
            end_tag_start: self.base + end,
            end: self.base + end,
        };
        let id = self.append_child(
            parent,
            NodeKind::Element(Element {
                name,
                ns,
                ns_decls: decls,
                attributes,
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

    fn resolve_name(
        &mut self,
        prefix: Option<&str>,
        is_element: bool,
        at: usize,
    ) -> Result<NsId, XmlError> {
        match prefix {
            Some("xml") => Ok(self.intern(XML_NS)),
            Some("xmlns") => Err(XmlError::Namespace {
                message: "the prefix 'xmlns' cannot be used on an element or attribute".into(),
                position: self.pos(at),
            }),
            Some(p) => self.resolve_prefix(p).ok_or_else(|| XmlError::Namespace {
                message: format!("prefix '{p}' is not declared"),
                position: self.pos(at),
            }),
            None if is_element => Ok(self.resolve_prefix("").unwrap_or(NsId::NONE)),
            None => Ok(NsId::NONE),
        }
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
        if let NodeKind::Element(e) = &mut self.nodes[id.index()].kind {
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
                    let mut buf = [0u8; 4];
                    let s: &str = c.encode_utf8(&mut buf);
                    if self.pending_text.is_empty() {
                        self.pending_text_start = start;
                    }
                    if self.pending_text.len() + s.len() > self.limits.max_text_len {
                        return Err(self.limit(
                            LimitKind::TextLength,
                            self.limits.max_text_len,
                            self.pending_text_start,
                        ));
                    }
                    self.pending_text.push_str(s);
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
                    let mut s = String::with_capacity(raw.len());
                    push_normalized_eol(&mut s, &raw);
                    let parent = self.current_parent();
                    self.append_child(parent, NodeKind::Comment(s.into_boxed_str()));
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
                    let mut data = String::with_capacity(content.len());
                    push_normalized_eol(&mut data, content.trim_start_matches(is_xml_space));
                    let target: Box<str> = target.into();
                    let parent = self.current_parent();
                    self.append_child(
                        parent,
                        NodeKind::ProcessingInstruction {
                            target,
                            data: data.into_boxed_str(),
                        },
                    );
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
