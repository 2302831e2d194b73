//! A read-only document tree built by [`crate::parse`].
//!
//! Invariants: namespace prefixes are resolved at parse time (every element and attribute
//! carries its namespace URI), attribute values are normalised as XML 1.0 §3.3.3 says,
//! line ends are normalised (§2.11), adjacent character data (text, references, CDATA) is
//! merged into one text node, and whitespace outside the document element is dropped.
//! Every element remembers the byte span of its markup in the parsed input, so callers
//! can splice new content into the original bytes without re-serialising (the bytes a
//! sender signed stay the bytes we pass on).

/// The XML namespace, bound to the `xml` prefix by definition.
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// The namespace of namespace declarations; never bound to a prefix.
pub const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// Index of a node in its [`Document`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub(crate) u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Index of an interned namespace URI; [`NsId::NONE`] is "no namespace".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NsId(pub(crate) u32);

impl NsId {
    pub const NONE: NsId = NsId(0);
}

/// A range of [`Document`]'s string arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Str {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

/// A qualified name as stored: its text and where the local part starts in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NameData {
    pub(crate) qname: Str,
    /// Byte index in the qname where the local part starts (0 when there is no prefix).
    pub(crate) local_start: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttributeData {
    pub(crate) name: NameData,
    pub(crate) ns: NsId,
    pub(crate) value: Str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NsDeclData {
    pub(crate) prefix: Str,
    pub(crate) uri: NsId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ElementData {
    pub(crate) name: NameData,
    pub(crate) ns: NsId,
    /// Ranges of [`Document`]'s declaration and attribute tables.
    pub(crate) ns_decls: (u32, u32),
    pub(crate) attributes: (u32, u32),
    pub(crate) span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeData {
    Document,
    Element(ElementData),
    Text(Str),
    Comment(Str),
    ProcessingInstruction { target: Str, data: Str },
}

/// A qualified name as written, with the split between prefix and local part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Name<'a> {
    qname: &'a str,
    local_start: usize,
}

impl<'a> Name<'a> {
    pub fn qname(&self) -> &'a str {
        self.qname
    }
    pub fn local_name(&self) -> &'a str {
        &self.qname[self.local_start..]
    }
    /// The prefix, `None` when unprefixed.
    pub fn prefix(&self) -> Option<&'a str> {
        if self.local_start == 0 {
            None
        } else {
            Some(&self.qname[..self.local_start - 1])
        }
    }
}

/// An attribute (namespace declarations are kept apart, in
/// [`Element::namespace_declarations`]).
#[derive(Debug, Clone, Copy)]
pub struct Attribute<'a> {
    doc: &'a Document,
    data: &'a AttributeData,
}

impl<'a> Attribute<'a> {
    pub fn name(&self) -> Name<'a> {
        self.doc.name(&self.data.name)
    }
    pub fn local_name(&self) -> &'a str {
        self.name().local_name()
    }
    pub fn prefix(&self) -> Option<&'a str> {
        self.name().prefix()
    }
    pub fn namespace(&self) -> NsId {
        self.data.ns
    }
    pub fn value(&self) -> &'a str {
        self.doc.str(self.data.value)
    }
}

/// The attributes of one element, in document order.
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    doc: &'a Document,
    data: &'a [AttributeData],
}

impl<'a> Attributes<'a> {
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn get(&self, i: usize) -> Option<Attribute<'a>> {
        let doc = self.doc;
        self.data.get(i).map(|data| Attribute { doc, data })
    }
    pub fn iter(&self) -> AttributeIter<'a> {
        AttributeIter {
            doc: self.doc,
            inner: self.data.iter(),
        }
    }
}

impl<'a> IntoIterator for Attributes<'a> {
    type Item = Attribute<'a>;
    type IntoIter = AttributeIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over [`Attributes`].
#[derive(Debug, Clone)]
pub struct AttributeIter<'a> {
    doc: &'a Document,
    inner: std::slice::Iter<'a, AttributeData>,
}

impl<'a> Iterator for AttributeIter<'a> {
    type Item = Attribute<'a>;
    fn next(&mut self) -> Option<Attribute<'a>> {
        let doc = self.doc;
        self.inner.next().map(|data| Attribute { doc, data })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for AttributeIter<'_> {}

/// A namespace declaration as written on an element: `xmlns="uri"` has the empty prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespaceDeclaration<'a> {
    prefix: &'a str,
    uri: NsId,
}

impl<'a> NamespaceDeclaration<'a> {
    /// The declared prefix; empty for the default namespace.
    pub fn prefix(&self) -> &'a str {
        self.prefix
    }
    pub fn uri(&self) -> NsId {
        self.uri
    }
}

/// Byte offsets of an element's markup in the parsed input: `start..start_tag_end` is the
/// start tag (or the whole empty-element tag), `end_tag_start..end` the end tag; for an
/// empty-element tag `start_tag_end == end_tag_start == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub start_tag_end: usize,
    pub end_tag_start: usize,
    pub end: usize,
}

impl Span {
    /// Whether the element was written as `<a/>`.
    pub fn is_empty_element_tag(&self) -> bool {
        self.start_tag_end == self.end
    }
}

/// An element of a [`Document`].
#[derive(Debug, Clone, Copy)]
pub struct Element<'a> {
    doc: &'a Document,
    data: &'a ElementData,
}

impl<'a> Element<'a> {
    pub fn name(&self) -> Name<'a> {
        self.doc.name(&self.data.name)
    }
    pub fn local_name(&self) -> &'a str {
        self.name().local_name()
    }
    pub fn prefix(&self) -> Option<&'a str> {
        self.name().prefix()
    }
    pub fn namespace(&self) -> NsId {
        self.data.ns
    }
    pub fn attributes(&self) -> Attributes<'a> {
        let (a, b) = self.data.attributes;
        Attributes {
            doc: self.doc,
            data: &self.doc.attributes[a as usize..b as usize],
        }
    }
    pub fn namespace_declarations(&self) -> impl Iterator<Item = NamespaceDeclaration<'a>> + 'a {
        let doc = self.doc;
        let (a, b) = self.data.ns_decls;
        doc.ns_decls[a as usize..b as usize]
            .iter()
            .map(move |d| NamespaceDeclaration {
                prefix: doc.str(d.prefix),
                uri: d.uri,
            })
    }
    pub fn span(&self) -> Span {
        self.data.span
    }
}

/// One step of [`Document::walk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    Start(NodeId),
    End(NodeId),
    Leaf(NodeId),
}

/// What a node is.
#[derive(Debug, Clone, Copy)]
pub enum NodeKind<'a> {
    Document,
    Element(Element<'a>),
    Text(&'a str),
    Comment(&'a str),
    ProcessingInstruction { target: &'a str, data: &'a str },
}

/// The tree links of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeSlot {
    pub(crate) parent: Option<NodeId>,
    pub(crate) first_child: Option<NodeId>,
    pub(crate) last_child: Option<NodeId>,
    pub(crate) next_sibling: Option<NodeId>,
    pub(crate) data: NodeData,
}

/// A node of a [`Document`].
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    doc: &'a Document,
    slot: &'a NodeSlot,
}

impl<'a> Node<'a> {
    pub fn kind(&self) -> NodeKind<'a> {
        let doc = self.doc;
        match &self.slot.data {
            NodeData::Document => NodeKind::Document,
            NodeData::Element(data) => NodeKind::Element(Element { doc, data }),
            NodeData::Text(s) => NodeKind::Text(doc.str(*s)),
            NodeData::Comment(s) => NodeKind::Comment(doc.str(*s)),
            NodeData::ProcessingInstruction { target, data } => NodeKind::ProcessingInstruction {
                target: doc.str(*target),
                data: doc.str(*data),
            },
        }
    }
    pub fn parent(&self) -> Option<NodeId> {
        self.slot.parent
    }
    pub fn as_element(&self) -> Option<Element<'a>> {
        match &self.slot.data {
            NodeData::Element(data) => Some(Element {
                doc: self.doc,
                data,
            }),
            _ => None,
        }
    }
}

/// A parsed document. Node 0 is the document node; [`Document::root`] is its element.
///
/// Storage invariant: every string of the document (names, text, attribute values,
/// prefixes) lives in one arena, and attributes and declarations in two tables, so a
/// document is a handful of allocations however many nodes it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub(crate) nodes: Vec<NodeSlot>,
    pub(crate) namespaces: Vec<Box<str>>,
    pub(crate) root: NodeId,
    pub(crate) strings: String,
    pub(crate) attributes: Vec<AttributeData>,
    pub(crate) ns_decls: Vec<NsDeclData>,
}

impl Document {
    pub const DOCUMENT_NODE: NodeId = NodeId(0);

    /// The document element.
    pub fn root(&self) -> NodeId {
        self.root
    }

    pub(crate) fn str(&self, s: Str) -> &str {
        &self.strings[s.start as usize..s.end as usize]
    }

    pub(crate) fn name(&self, n: &NameData) -> Name<'_> {
        Name {
            qname: self.str(n.qname),
            local_start: n.local_start as usize,
        }
    }

    pub(crate) fn slot(&self, id: NodeId) -> &NodeSlot {
        &self.nodes[id.index()]
    }

    pub fn node(&self, id: NodeId) -> Node<'_> {
        Node {
            doc: self,
            slot: &self.nodes[id.index()],
        }
    }

    /// The element at `id`, `None` if that node is not an element.
    pub fn element(&self, id: NodeId) -> Option<Element<'_>> {
        self.node(id).as_element()
    }

    /// All nodes with their ids, in document order.
    pub fn nodes_iter(&self) -> impl Iterator<Item = (NodeId, Node<'_>)> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .map(move |(i, slot)| (NodeId(i as u32), Node { doc: self, slot }))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// The namespace URI behind an [`NsId`] ("" for none).
    pub fn ns_uri(&self, ns: NsId) -> &str {
        &self.namespaces[ns.0 as usize]
    }

    /// The [`NsId`] of a URI, if any node of this document uses it.
    pub fn ns_id(&self, uri: &str) -> Option<NsId> {
        if uri.is_empty() {
            return Some(NsId::NONE);
        }
        self.namespaces
            .iter()
            .position(|u| &**u == uri)
            .map(|i| NsId(i as u32))
    }

    /// Namespace URI of the element at `id` ("" for none or for a non-element).
    pub fn element_ns_uri(&self, id: NodeId) -> &str {
        self.element(id).map_or("", |e| self.ns_uri(e.namespace()))
    }

    /// Whether the element at `id` has this namespace URI and local name.
    pub fn is_element(&self, id: NodeId, ns_uri: &str, local_name: &str) -> bool {
        match self.element(id) {
            Some(e) => e.local_name() == local_name && self.ns_uri(e.namespace()) == ns_uri,
            None => false,
        }
    }

    pub fn children(&self, id: NodeId) -> Children<'_> {
        Children {
            doc: self,
            next: self.slot(id).first_child,
        }
    }

    /// The element children of `id`.
    pub fn child_elements(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.children(id).filter(|c| self.element(*c).is_some())
    }

    /// Element children of `id` with the given expanded name.
    pub fn children_named<'a>(
        &'a self,
        id: NodeId,
        ns_uri: &'a str,
        local_name: &'a str,
    ) -> impl Iterator<Item = NodeId> + 'a {
        self.children(id)
            .filter(move |c| self.is_element(*c, ns_uri, local_name))
    }

    pub fn parent(&self, id: NodeId) -> Option<NodeId> {
        self.slot(id).parent
    }

    /// `id` and all nodes below it, in document order.
    pub fn descendants(&self, id: NodeId) -> Descendants<'_> {
        Descendants {
            doc: self,
            top: id,
            next: Some(id),
        }
    }

    /// Walks the subtree at `apex` in document order, leaving out the subtree at
    /// `exclude`: `Start`/`End` around each element's content, `Leaf` for other nodes.
    /// Iterative, so nesting depth is bounded by the parser's limit, not the stack's.
    pub fn walk(&self, apex: NodeId, exclude: Option<NodeId>, mut visit: impl FnMut(Visit)) {
        let mut stack = vec![(apex, false)];
        while let Some((id, leaving)) = stack.pop() {
            if leaving {
                visit(Visit::End(id));
                continue;
            }
            if Some(id) == exclude {
                continue;
            }
            if matches!(self.slot(id).data, NodeData::Element(_)) {
                visit(Visit::Start(id));
                stack.push((id, true));
                let first = stack.len();
                stack.extend(self.children(id).map(|c| (c, false)));
                stack[first..].reverse();
            } else {
                visit(Visit::Leaf(id));
            }
        }
    }

    /// Whether `ancestor` is `node` or one of its ancestors.
    pub fn is_ancestor_or_self(&self, ancestor: NodeId, node: NodeId) -> bool {
        let mut cur = Some(node);
        while let Some(n) = cur {
            if n == ancestor {
                return true;
            }
            cur = self.slot(n).parent;
        }
        false
    }

    /// Depth of an element: the document element is 1.
    pub fn depth(&self, id: NodeId) -> usize {
        let mut d = 0;
        let mut cur = self.slot(id).parent;
        while let Some(n) = cur {
            d += 1;
            cur = self.slot(n).parent;
        }
        d
    }

    /// The concatenated text of the element's direct text children.
    pub fn text(&self, id: NodeId) -> String {
        let mut s = String::new();
        for c in self.children(id) {
            if let NodeData::Text(t) = self.slot(c).data {
                s.push_str(self.str(t));
            }
        }
        s
    }

    /// The value of the attribute with this namespace URI ("" for none) and local name.
    pub fn attribute(&self, id: NodeId, ns_uri: &str, local_name: &str) -> Option<&str> {
        let e = self.element(id)?;
        e.attributes()
            .iter()
            .find(|a| a.local_name() == local_name && self.ns_uri(a.namespace()) == ns_uri)
            .map(|a| a.value())
    }

    /// The namespace bound to `prefix` ("" = default) in scope at element `id`.
    /// `None` when unbound (the default namespace unbound or undeclared gives `None`).
    pub fn lookup_namespace(&self, id: NodeId, prefix: &str) -> Option<NsId> {
        if prefix == "xml" {
            return self.ns_id(XML_NS);
        }
        let mut cur = Some(id);
        while let Some(n) = cur {
            if let Some(e) = self.element(n) {
                if let Some(d) = e.namespace_declarations().find(|d| d.prefix() == prefix) {
                    return if d.uri() == NsId::NONE {
                        None
                    } else {
                        Some(d.uri())
                    };
                }
            }
            cur = self.slot(n).parent;
        }
        None
    }

    /// The namespace bindings in scope at element `id` (nearest declaration wins),
    /// excluding the implicit `xml` binding and undeclared defaults, sorted by prefix.
    pub fn in_scope_namespaces(&self, id: NodeId) -> Vec<(&str, NsId)> {
        let mut seen: Vec<(&str, NsId)> = Vec::new();
        let mut cur = Some(id);
        while let Some(n) = cur {
            if let Some(e) = self.element(n) {
                for d in e.namespace_declarations() {
                    if !seen.iter().any(|(p, _)| *p == d.prefix()) {
                        seen.push((d.prefix(), d.uri()));
                    }
                }
            }
            cur = self.slot(n).parent;
        }
        seen.retain(|(_, u)| *u != NsId::NONE);
        seen.sort_by(|a, b| a.0.cmp(b.0));
        seen
    }

    /// A readable path of the element, e.g. `/soap:Envelope/soap:Body/ns:SendRequestRequest`.
    pub fn path(&self, id: NodeId) -> String {
        let mut parts = Vec::new();
        let mut cur = Some(id);
        while let Some(n) = cur {
            if let Some(e) = self.element(n) {
                parts.push(e.name().qname().to_string());
            }
            cur = self.slot(n).parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }
}

#[derive(Debug)]
pub struct Children<'a> {
    doc: &'a Document,
    next: Option<NodeId>,
}

impl Iterator for Children<'_> {
    type Item = NodeId;
    fn next(&mut self) -> Option<NodeId> {
        let cur = self.next?;
        self.next = self.doc.slot(cur).next_sibling;
        Some(cur)
    }
}

/// Pre-order traversal of a subtree.
#[derive(Debug)]
pub struct Descendants<'a> {
    doc: &'a Document,
    top: NodeId,
    next: Option<NodeId>,
}

impl Iterator for Descendants<'_> {
    type Item = NodeId;
    fn next(&mut self) -> Option<NodeId> {
        let cur = self.next?;
        let node = self.doc.slot(cur);
        self.next = if let Some(c) = node.first_child {
            Some(c)
        } else {
            let mut n = cur;
            loop {
                if n == self.top {
                    break None;
                }
                let nn = self.doc.slot(n);
                if let Some(s) = nn.next_sibling {
                    break Some(s);
                }
                match nn.parent {
                    Some(p) => n = p,
                    None => break None,
                }
            }
        };
        Some(cur)
    }
}
