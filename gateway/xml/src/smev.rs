//! The SMEV transform (`urn://smev-gov-ru/xmldsig/transform`), protocol.md §4.
//!
//! It normalises an element subtree before digesting so that harmless rewrites by
//! intermediaries (prefix renaming, attribute order, pretty-printing) do not break a
//! signature:
//! - XML declaration, processing instructions and comments are dropped;
//! - text nodes made only of whitespace are dropped, other text is kept as is;
//! - every element is written with a start and an end tag;
//! - namespace prefixes are replaced by `ns1`, `ns2`, … numbered by one counter in document
//!   order of first use; the declaration goes on the element that first uses the namespace
//!   and is not repeated below it while in scope; declarations nothing uses vanish;
//! - attributes are sorted: namespace-qualified ones first, by namespace URI then local
//!   name, then unqualified ones by local name;
//! - text and attribute values are escaped as exclusive c14n escapes them.
//!
//! Elements in no namespace are written without a prefix; since every namespaced element
//! gets an `nsN` prefix the output never declares a default namespace, so no `xmlns=""`
//! is needed.
//!
//! Invariant: the output depends only on the infoset of the subtree (names, namespace
//! URIs, attribute values, non-whitespace text), never on prefixes or formatting.

use crate::dom::{Attribute, Document, NodeId, NodeKind, NsId, Visit};
use crate::error::XmlError;
use crate::escape;
use crate::limits::Limits;

/// The transform's algorithm URI.
pub const SMEV_TRANSFORM: &str = "urn://smev-gov-ru/xmldsig/transform";

/// Applies the transform to the subtree at `apex` (leaving out `exclude`), appending to `out`.
pub fn transform(doc: &Document, apex: NodeId, exclude: Option<NodeId>, out: &mut Vec<u8>) {
    let apex = if apex == Document::DOCUMENT_NODE {
        doc.root()
    } else {
        apex
    };
    let mut t = Transformer {
        doc,
        exclude,
        prefixes: Vec::new(),
        frames: Vec::new(),
        counter: 0,
        scratch_declared: Vec::new(),
        scratch_attrs: Vec::new(),
        scratch_prefixes: Vec::new(),
    };
    t.run(apex, out);
}

/// Parses `input` (with `limits`) and transforms its document element.
pub fn transform_bytes(input: &[u8], limits: &Limits) -> Result<Vec<u8>, XmlError> {
    let doc = crate::parse(input, limits)?;
    let mut out = Vec::with_capacity(input.len());
    transform(&doc, doc.root(), None, &mut out);
    Ok(out)
}

struct Transformer<'a> {
    doc: &'a Document,
    exclude: Option<NodeId>,
    /// Namespace → number of its `nsN` prefix, for declarations in scope; innermost last.
    prefixes: Vec<(NsId, u32)>,
    frames: Vec<usize>,
    counter: u32,
    scratch_declared: Vec<(NsId, u32)>,
    scratch_attrs: Vec<Attribute<'a>>,
    scratch_prefixes: Vec<Option<u32>>,
}

fn is_whitespace_only(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn push_prefix(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(b"ns");
    // Decimal digits without allocating: this runs twice per element.
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

impl<'a> Transformer<'a> {
    fn lookup(&self, ns: NsId) -> Option<u32> {
        self.prefixes
            .iter()
            .rev()
            .find(|(u, _)| *u == ns)
            .map(|(_, n)| *n)
    }

    /// The prefix number for `ns`, declaring it (recorded in `declared`) if not in scope.
    fn prefix_for(&mut self, ns: NsId, declared: &mut Vec<(NsId, u32)>) -> u32 {
        if let Some(n) = self.lookup(ns) {
            return n;
        }
        if let Some((_, n)) = declared.iter().find(|(u, _)| *u == ns) {
            return *n;
        }
        self.counter += 1;
        declared.push((ns, self.counter));
        self.counter
    }

    fn run(&mut self, apex: NodeId, out: &mut Vec<u8>) {
        let doc = self.doc;
        doc.walk(apex, self.exclude, |step| match step {
            Visit::Start(id) => self.start_tag(id, out),
            Visit::End(id) => self.end_tag(id, out),
            Visit::Leaf(id) => {
                if let NodeKind::Text(t) = doc.node(id).kind() {
                    if !is_whitespace_only(t) {
                        escape::text(out, t);
                    }
                }
            }
        });
    }

    fn start_tag(&mut self, id: NodeId, out: &mut Vec<u8>) {
        let doc = self.doc;
        let Some(e) = doc.element(id) else { return };
        let mut declared = std::mem::take(&mut self.scratch_declared);
        declared.clear();
        let element_prefix =
            (e.namespace() != NsId::NONE).then(|| self.prefix_for(e.namespace(), &mut declared));

        let mut attrs = std::mem::take(&mut self.scratch_attrs);
        attrs.clear();
        attrs.extend(e.attributes().iter());
        // Expanded names are unique per element, so an unstable sort is deterministic.
        attrs.sort_unstable_by(|a, b| {
            let (qa, qb) = (a.namespace() != NsId::NONE, b.namespace() != NsId::NONE);
            qb.cmp(&qa).then_with(|| {
                (doc.ns_uri(a.namespace()), a.local_name())
                    .cmp(&(doc.ns_uri(b.namespace()), b.local_name()))
            })
        });
        let attr_prefixes: Vec<Option<u32>> = attrs
            .iter()
            .map(|a| {
                (a.namespace() != NsId::NONE).then(|| self.prefix_for(a.namespace(), &mut declared))
            })
            .collect();

        out.push(b'<');
        if let Some(n) = element_prefix {
            push_prefix(out, n);
            out.push(b':');
        }
        out.extend_from_slice(e.local_name().as_bytes());
        for (ns, n) in &declared {
            out.extend_from_slice(b" xmlns:");
            push_prefix(out, *n);
            out.extend_from_slice(b"=\"");
            escape::attribute(out, doc.ns_uri(*ns));
            out.push(b'"');
        }
        for (a, p) in attrs.iter().zip(&attr_prefixes) {
            out.push(b' ');
            if let Some(n) = p {
                push_prefix(out, *n);
                out.push(b':');
            }
            out.extend_from_slice(a.local_name().as_bytes());
            out.extend_from_slice(b"=\"");
            escape::attribute(out, a.value());
            out.push(b'"');
        }
        out.push(b'>');
        self.frames.push(self.prefixes.len());
        self.prefixes.extend_from_slice(&declared);
        self.scratch_declared = declared;
        self.scratch_attrs = attrs;
        self.scratch_prefixes = attr_prefixes;
    }

    fn end_tag(&mut self, id: NodeId, out: &mut Vec<u8>) {
        let Some(e) = self.doc.element(id) else {
            return;
        };
        out.extend_from_slice(b"</");
        if e.namespace() != NsId::NONE {
            if let Some(n) = self.lookup(e.namespace()) {
                push_prefix(out, n);
                out.push(b':');
            }
        }
        out.extend_from_slice(e.local_name().as_bytes());
        out.push(b'>');
        if let Some(mark) = self.frames.pop() {
            self.prefixes.truncate(mark);
        }
    }
}
