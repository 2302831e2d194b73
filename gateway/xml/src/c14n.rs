//! Exclusive XML Canonicalization 1.0 (<https://www.w3.org/TR/xml-exc-c14n/>), with and
//! without comments, with the InclusiveNamespaces PrefixList.
//!
//! The input is a parsed [`Document`]; the node set is an element subtree (a same-document
//! Reference `#id`) or the whole document (`URI=""`), optionally minus one subtree (the
//! enveloped-signature transform). Namespace nodes are rendered by the exclusive rule:
//! a prefix is written on an element that visibly uses it (or is listed in the
//! PrefixList) unless the nearest output ancestor already rendered the same binding.
//!
//! Invariant: output is a pure function of the node set: the same subtree gives the same
//! bytes wherever it stands, which is what makes a detached signature portable.

use crate::dom::{Document, NodeId, NodeKind, NsId, Visit};
use crate::escape;

/// The exclusive c14n algorithm URIs.
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub const EXC_C14N_WITH_COMMENTS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments";

/// Options of one exclusive canonicalisation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExcC14nOptions {
    pub with_comments: bool,
    /// Prefixes handled by inclusive rules; `#default` stands for the default namespace.
    pub inclusive_prefixes: Vec<String>,
}

impl ExcC14nOptions {
    pub fn with_comments(mut self, yes: bool) -> Self {
        self.with_comments = yes;
        self
    }
}

/// Canonicalises the subtree rooted at `apex` (an element, or
/// [`Document::DOCUMENT_NODE`] for the whole document), leaving out the subtree rooted at
/// `exclude`, and appends the octets to `out`.
pub fn canonicalize(
    doc: &Document,
    apex: NodeId,
    exclude: Option<NodeId>,
    options: &ExcC14nOptions,
    out: &mut Vec<u8>,
) {
    let mut c = Canonicalizer {
        doc,
        options,
        exclude,
        rendered: Vec::new(),
        frames: Vec::new(),
        inclusive: options
            .inclusive_prefixes
            .iter()
            .map(|p| if p == "#default" { "" } else { p.as_str() })
            .collect(),
        scratch_ns: Vec::new(),
        scratch_attrs: Vec::new(),
    };
    if apex == Document::DOCUMENT_NODE {
        c.document(out);
    } else {
        c.subtree(apex, out);
    }
}

/// Convenience: canonical bytes of the subtree at `apex`.
pub fn canonicalize_to_vec(doc: &Document, apex: NodeId, options: &ExcC14nOptions) -> Vec<u8> {
    let mut out = Vec::new();
    canonicalize(doc, apex, None, options, &mut out);
    out
}

struct Canonicalizer<'a> {
    doc: &'a Document,
    options: &'a ExcC14nOptions,
    exclude: Option<NodeId>,
    /// Namespace bindings rendered by output ancestors, innermost last.
    rendered: Vec<(&'a str, NsId)>,
    frames: Vec<usize>,
    inclusive: Vec<&'a str>,
    scratch_ns: Vec<(&'a str, NsId)>,
    scratch_attrs: Vec<crate::dom::Attribute<'a>>,
}

impl<'a> Canonicalizer<'a> {
    fn document(&mut self, out: &mut Vec<u8>) {
        let doc = self.doc;
        let root = doc.root();
        let mut after_root = false;
        for child in doc.children(Document::DOCUMENT_NODE) {
            if Some(child) == self.exclude {
                continue;
            }
            if child == root {
                self.subtree(child, out);
                after_root = true;
                continue;
            }
            let is_output = match doc.node(child).kind() {
                NodeKind::Comment(_) => self.options.with_comments,
                NodeKind::ProcessingInstruction { .. } => true,
                _ => false,
            };
            if !is_output {
                continue;
            }
            // C14N §2.1: a newline separates document-level nodes from the root element.
            if after_root {
                out.push(b'\n');
            }
            self.leaf(child, out);
            if !after_root {
                out.push(b'\n');
            }
        }
    }

    fn rendered_value(&self, prefix: &str) -> Option<NsId> {
        self.rendered
            .iter()
            .rev()
            .find(|(p, _)| *p == prefix)
            .map(|(_, ns)| *ns)
    }

    fn subtree(&mut self, apex: NodeId, out: &mut Vec<u8>) {
        let doc = self.doc;
        doc.walk(apex, self.exclude, |step| match step {
            Visit::Start(id) => self.start_tag(id, out),
            Visit::End(id) => self.end_tag(id, out),
            Visit::Leaf(id) => self.leaf(id, out),
        });
    }

    fn leaf(&self, id: NodeId, out: &mut Vec<u8>) {
        match self.doc.node(id).kind() {
            NodeKind::Text(t) => escape::text(out, t),
            NodeKind::Comment(c) => {
                if self.options.with_comments {
                    out.extend_from_slice(b"<!--");
                    out.extend_from_slice(c.as_bytes());
                    out.extend_from_slice(b"-->");
                }
            }
            NodeKind::ProcessingInstruction { target, data } => {
                out.extend_from_slice(b"<?");
                out.extend_from_slice(target.as_bytes());
                if !data.is_empty() {
                    out.push(b' ');
                    out.extend_from_slice(data.as_bytes());
                }
                out.extend_from_slice(b"?>");
            }
            NodeKind::Document | NodeKind::Element(_) => {}
        }
    }

    fn start_tag(&mut self, id: NodeId, out: &mut Vec<u8>) {
        let doc = self.doc;
        let Some(e) = doc.element(id) else { return };
        // Namespace nodes this element must render: those it visibly utilises, plus the
        // PrefixList ones in scope. Scratch vectors are reused across elements.
        let mut candidates = std::mem::take(&mut self.scratch_ns);
        candidates.clear();
        fn add<'b>(list: &mut Vec<(&'b str, NsId)>, p: &'b str, ns: NsId) {
            if p != "xml" && !list.iter().any(|(q, _)| *q == p) {
                list.push((p, ns));
            }
        }
        add(&mut candidates, e.prefix().unwrap_or(""), e.namespace());
        for a in e.attributes() {
            if let Some(p) = a.prefix() {
                add(&mut candidates, p, a.namespace());
            }
        }
        for &p in &self.inclusive {
            match doc.lookup_namespace(id, p) {
                Some(ns) => add(&mut candidates, p, ns),
                None if p.is_empty() => add(&mut candidates, "", NsId::NONE),
                None => {}
            }
        }
        candidates.retain(|(p, ns)| {
            let current = self.rendered_value(p);
            if p.is_empty() {
                current.unwrap_or(NsId::NONE) != *ns
            } else {
                current != Some(*ns)
            }
        });
        candidates.sort_unstable_by(|a, b| a.0.cmp(b.0));

        out.push(b'<');
        out.extend_from_slice(e.name().qname().as_bytes());
        for (p, ns) in &candidates {
            if p.is_empty() {
                out.extend_from_slice(b" xmlns=\"");
            } else {
                out.extend_from_slice(b" xmlns:");
                out.extend_from_slice(p.as_bytes());
                out.extend_from_slice(b"=\"");
            }
            escape::attribute(out, doc.ns_uri(*ns));
            out.push(b'"');
        }
        self.frames.push(self.rendered.len());
        self.rendered.extend_from_slice(&candidates);
        self.scratch_ns = candidates;

        let attrs = e.attributes();
        if attrs.len() == 1 {
            if let Some(a) = attrs.get(0) {
                write_attribute(out, &a);
            }
        } else if !attrs.is_empty() {
            let mut sorted = std::mem::take(&mut self.scratch_attrs);
            sorted.clear();
            sorted.extend(attrs.iter());
            // Expanded names are unique per element, so an unstable sort is deterministic.
            sorted.sort_unstable_by(|a, b| {
                (doc.ns_uri(a.namespace()), a.local_name())
                    .cmp(&(doc.ns_uri(b.namespace()), b.local_name()))
            });
            for a in &sorted {
                write_attribute(out, a);
            }
            self.scratch_attrs = sorted;
        }
        out.push(b'>');
    }

    fn end_tag(&mut self, id: NodeId, out: &mut Vec<u8>) {
        if let Some(e) = self.doc.element(id) {
            out.extend_from_slice(b"</");
            out.extend_from_slice(e.name().qname().as_bytes());
            out.push(b'>');
        }
        if let Some(mark) = self.frames.pop() {
            self.rendered.truncate(mark);
        }
    }
}

fn write_attribute(out: &mut Vec<u8>, a: &crate::dom::Attribute<'_>) {
    out.push(b' ');
    out.extend_from_slice(a.name().qname().as_bytes());
    out.extend_from_slice(b"=\"");
    escape::attribute(out, a.value());
    out.push(b'"');
}
