//! Writing the demo content XML, and reading a request's content back (quick-xml).
//!
//! The content is written compactly (no whitespace between elements), with one prefix
//! bound on the root to the kind's namespace. The reader accepts any prefixes or a
//! default namespace, and gives the leaf elements of a document whose elements are all
//! in one namespace as (path, text) pairs; anything else is an error the provider
//! answers with `UNKNOWN_REQUEST_DESCRIPTION`.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// Appends `text` to `out` with the characters XML text may not hold literally escaped.
pub(crate) fn escape_into(out: &mut String, text: &str) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(ch),
        }
    }
}

/// A minimal writer of element-only content in one namespace.
#[derive(Debug)]
pub(crate) struct Writer {
    out: String,
    prefix: &'static str,
    open: Vec<&'static str>,
}

impl Writer {
    /// Opens the root element `name`, binding `prefix` to `namespace`.
    pub(crate) fn new(prefix: &'static str, namespace: &str, name: &'static str) -> Writer {
        let mut out = String::with_capacity(1024);
        out.push_str(&format!("<{prefix}:{name} xmlns:{prefix}=\"{namespace}\">"));
        Writer {
            out,
            prefix,
            open: vec![name],
        }
    }

    pub(crate) fn open(&mut self, name: &'static str) -> &mut Self {
        self.out.push_str(&format!("<{}:{name}>", self.prefix));
        self.open.push(name);
        self
    }

    pub(crate) fn close(&mut self) -> &mut Self {
        if let Some(name) = self.open.pop() {
            self.out.push_str(&format!("</{}:{name}>", self.prefix));
        }
        self
    }

    pub(crate) fn leaf(&mut self, name: &'static str, text: &str) -> &mut Self {
        self.out.push_str(&format!("<{}:{name}>", self.prefix));
        escape_into(&mut self.out, text);
        self.out.push_str(&format!("</{}:{name}>", self.prefix));
        self
    }

    pub(crate) fn leaf_opt(&mut self, name: &'static str, text: Option<&str>) -> &mut Self {
        if let Some(t) = text {
            self.leaf(name, t);
        }
        self
    }

    pub(crate) fn empty(&mut self, name: &'static str) -> &mut Self {
        self.out.push_str(&format!("<{}:{name}/>", self.prefix));
        self
    }

    /// Closes every open element and returns the document.
    pub(crate) fn finish(mut self) -> String {
        while !self.open.is_empty() {
            self.close();
        }
        self.out
    }
}

/// A request's content read back: the root's local name and its leaf elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flat {
    pub root: String,
    /// (path below the root, e.g. `Person/Surname`; trimmed text), in document order.
    pub leaves: Vec<(String, String)>,
}

impl Flat {
    /// The text of the one leaf at `path`, if present.
    pub(crate) fn get(&self, path: &str) -> Option<&str> {
        self.leaves
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v.as_str())
    }
}

/// Deepest nesting accepted below the root.
const MAX_DEPTH: usize = 8;
/// Most leaves accepted.
const MAX_LEAVES: usize = 64;

/// Reads `xml`, whose elements must all be in `namespace`, into its leaves. Comments,
/// processing instructions and the XML declaration are skipped; a DOCTYPE, text beside
/// child elements, a repeated leaf, or a second root are errors.
pub(crate) fn read_flat(xml: &str, namespace: &str) -> Result<Flat, String> {
    let mut reader = NsReader::from_str(xml);
    {
        let config = reader.config_mut();
        config.check_end_names = true;
        config.trim_text(false);
    }
    let mut root: Option<String> = None;
    let mut stack: Vec<String> = Vec::new();
    // Per open element: its text so far and whether it has child elements.
    let mut texts: Vec<(String, bool)> = Vec::new();
    let mut leaves: Vec<(String, String)> = Vec::new();
    let mut finished = false;
    loop {
        let (resolved, event) = reader
            .read_resolved_event()
            .map_err(|e| format!("the content is not well-formed XML: {e}"))?;
        let in_ns = matches!(resolved, ResolveResult::Bound(ns) if ns.as_ref() == namespace);
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let local = e.local_name().as_ref().to_owned();
                if !in_ns {
                    return Err(format!(
                        "element {local} is not in the namespace {namespace}"
                    ));
                }
                if finished {
                    return Err("more than one root element".to_owned());
                }
                if root.is_none() {
                    root = Some(local);
                    if empty {
                        finished = true;
                    } else {
                        texts.push((String::new(), false));
                    }
                    continue;
                }
                if let Some(parent) = texts.last_mut() {
                    if !parent.0.trim().is_empty() {
                        return Err(format!("text beside the element {local}"));
                    }
                    parent.1 = true;
                }
                stack.push(local);
                if stack.len() > MAX_DEPTH {
                    return Err("the content is nested too deeply".to_owned());
                }
                if empty {
                    add_leaf(&mut leaves, stack.join("/"), String::new())?;
                    stack.pop();
                } else {
                    texts.push((String::new(), false));
                }
            }
            Event::End(_) => {
                let (text, has_children) = texts.pop().unwrap_or_default();
                if texts.is_empty() {
                    finished = true;
                    continue;
                }
                if !has_children {
                    add_leaf(&mut leaves, stack.join("/"), text.trim().to_owned())?;
                } else if !text.trim().is_empty() {
                    return Err(format!("text beside child elements in {}", stack.join("/")));
                }
                stack.pop();
            }
            Event::Text(t) => {
                let raw = t.xml10_content();
                push_text(&mut texts, &raw, finished)?;
            }
            Event::CData(t) => {
                let raw = t.xml10_content();
                push_text(&mut texts, &raw, finished)?;
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    Ok(None) => match r.as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        other => return Err(format!("unknown entity &{other};")),
                    },
                    Err(e) => return Err(format!("bad character reference: {e}")),
                };
                push_text(&mut texts, c.encode_utf8(&mut [0u8; 4]), finished)?;
            }
            Event::DocType(_) => return Err("a DOCTYPE is not allowed".to_owned()),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    match root {
        Some(root) if finished => Ok(Flat { root, leaves }),
        _ => Err("the content has no complete root element".to_owned()),
    }
}

fn push_text(texts: &mut [(String, bool)], s: &str, finished: bool) -> Result<(), String> {
    match texts.last_mut() {
        Some(t) => {
            t.0.push_str(s);
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None if finished => Err("text after the root element".to_owned()),
        None => Err("text before the root element".to_owned()),
    }
}

fn add_leaf(leaves: &mut Vec<(String, String)>, path: String, text: String) -> Result<(), String> {
    if leaves.iter().any(|(p, _)| *p == path) {
        return Err(format!("element {path} is repeated"));
    }
    if leaves.len() >= MAX_LEAVES {
        return Err("too many elements".to_owned());
    }
    leaves.push((path, text));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "urn:x";

    #[test]
    fn writes_and_reads_back() {
        let mut w = Writer::new("x", NS, "Req");
        w.leaf("A", "a < b & c")
            .open("P")
            .leaf("S", "Ёлкин")
            .empty("E");
        let xml = w.finish();
        assert_eq!(
            xml,
            "<x:Req xmlns:x=\"urn:x\"><x:A>a &lt; b &amp; c</x:A><x:P><x:S>Ёлкин</x:S><x:E/></x:P></x:Req>"
        );
        let f = read_flat(&xml, NS).expect("reads");
        assert_eq!(f.root, "Req");
        assert_eq!(f.get("A"), Some("a < b & c"));
        assert_eq!(f.get("P/S"), Some("Ёлкин"));
        assert_eq!(f.get("P/E"), Some(""));
        assert_eq!(f.get("S"), None);
    }

    #[test]
    fn reads_default_namespace_references_and_whitespace() {
        let xml = "<?xml version=\"1.0\"?>\n<!-- c --><Req xmlns=\"urn:x\">\n  <A> &#x41;&#66;&apos; </A>\n  <B><![CDATA[<b>]]></B>\n</Req>\n";
        let f = read_flat(xml, NS).expect("reads");
        assert_eq!(f.get("A"), Some("AB'"));
        assert_eq!(f.get("B"), Some("<b>"));
    }

    #[test]
    fn rejects_what_a_request_cannot_be() {
        for (xml, want) in [
            ("<Req xmlns=\"urn:y\"/>", "not in the namespace"),
            (
                "<x:Req xmlns:x=\"urn:x\"><A xmlns=\"\">1</A></x:Req>",
                "not in the namespace",
            ),
            ("<Req xmlns=\"urn:x\"><A>1</A><A>2</A></Req>", "repeated"),
            ("<Req xmlns=\"urn:x\">t<A>1</A></Req>", "text beside"),
            (
                "<Req xmlns=\"urn:x\"><A>1</A></Req><Req xmlns=\"urn:x\"/>",
                "more than one root",
            ),
            ("<Req xmlns=\"urn:x\"><A>1</B></Req>", "well-formed"),
            ("<!DOCTYPE Req><Req xmlns=\"urn:x\"/>", "DOCTYPE"),
            ("<Req xmlns=\"urn:x\"><A>&ent;</A></Req>", "unknown entity"),
            ("", "no complete root"),
            ("<Req xmlns=\"urn:x\">", "no complete root"),
        ] {
            match read_flat(xml, NS) {
                Ok(f) => panic!("{xml} was read: {f:?}"),
                Err(e) => assert!(e.contains(want), "{xml}: {e}"),
            }
        }
    }
}
