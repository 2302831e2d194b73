//! Absolute element paths by expanded name, e.g.
//! `/{http://schemas.xmlsoap.org/soap/envelope/}Envelope/{...}Body/{urn:x}Request`.
//!
//! A step may omit the `{namespace}` to match a local name in any namespace, and `{}`
//! means "no namespace". Resolution demands exactly one match at every step: an element
//! that appears twice where one is expected is an ambiguity, never "take the first",
//! because "the first" is what signature-wrapping attacks exploit.

use crate::dom::{Document, NodeId};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// `None` matches any namespace.
    pub namespace: Option<String>,
    pub local_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementPath {
    pub steps: Vec<Step>,
}

/// Why a path did not resolve to exactly one element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    NotFound { at_step: usize },
    Ambiguous { at_step: usize },
}

impl ElementPath {
    pub fn new(steps: Vec<Step>) -> Self {
        ElementPath { steps }
    }

    /// Parses `/step/step/...` where a step is `local` or `{ns}local`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let rest = s
            .strip_prefix('/')
            .ok_or_else(|| format!("element path '{s}' must start with '/'"))?;
        let mut steps = Vec::new();
        let mut remaining = rest;
        while !remaining.is_empty() {
            let (namespace, after_ns) = if let Some(r) = remaining.strip_prefix('{') {
                let end = r
                    .find('}')
                    .ok_or_else(|| format!("unclosed '{{' in element path '{s}'"))?;
                (Some(r[..end].to_string()), &r[end + 1..])
            } else {
                (None, remaining)
            };
            let (local, next) = match after_ns.find('/') {
                Some(i) => (&after_ns[..i], &after_ns[i + 1..]),
                None => (after_ns, ""),
            };
            if local.is_empty() || local.contains(['{', '}', ':']) {
                return Err(format!("bad step '{local}' in element path '{s}'"));
            }
            steps.push(Step {
                namespace,
                local_name: local.to_string(),
            });
            remaining = next;
        }
        if steps.is_empty() {
            return Err("empty element path".into());
        }
        Ok(ElementPath { steps })
    }

    /// A path extended by one more step.
    pub fn child(&self, namespace: Option<&str>, local_name: &str) -> Self {
        let mut steps = self.steps.clone();
        steps.push(Step {
            namespace: namespace.map(str::to_string),
            local_name: local_name.to_string(),
        });
        ElementPath { steps }
    }

    fn matches(doc: &Document, id: NodeId, step: &Step) -> bool {
        match doc.element(id) {
            Some(e) => {
                e.local_name() == step.local_name
                    && step
                        .namespace
                        .as_deref()
                        .is_none_or(|ns| doc.ns_uri(e.namespace()) == ns)
            }
            None => false,
        }
    }

    /// The single element this path names in `doc`.
    pub fn resolve(&self, doc: &Document) -> Result<NodeId, PathError> {
        let mut current = Document::DOCUMENT_NODE;
        for (i, step) in self.steps.iter().enumerate() {
            let mut found = None;
            for c in doc.children(current) {
                if Self::matches(doc, c, step) {
                    if found.is_some() {
                        return Err(PathError::Ambiguous { at_step: i });
                    }
                    found = Some(c);
                }
            }
            current = found.ok_or(PathError::NotFound { at_step: i })?;
        }
        Ok(current)
    }
}

impl fmt::Display for ElementPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            f.write_str("/")?;
            if let Some(ns) = &s.namespace {
                write!(f, "{{{ns}}}")?;
            }
            f.write_str(&s.local_name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse, Limits};

    #[test]
    fn resolves_exactly_one_element() {
        let doc = parse(
            br#"<a xmlns="urn:a"><b/><c xmlns="urn:c"/><c/><d><e/></d></a>"#,
            &Limits::default(),
        )
        .expect("parses");
        let p = ElementPath::parse("/{urn:a}a/d/{urn:a}e").expect("path");
        let e = p.resolve(&doc).expect("resolves");
        assert!(doc.is_element(e, "urn:a", "e"));
        assert_eq!(
            ElementPath::parse("/a/c").expect("path").resolve(&doc),
            Err(PathError::Ambiguous { at_step: 1 })
        );
        let c = ElementPath::parse("/a/{urn:c}c")
            .expect("path")
            .resolve(&doc);
        assert!(c.is_ok());
        assert_eq!(
            ElementPath::parse("/a/{urn:x}b")
                .expect("path")
                .resolve(&doc),
            Err(PathError::NotFound { at_step: 1 })
        );
        assert_eq!(p.to_string(), "/{urn:a}a/d/{urn:a}e");
        assert!(ElementPath::parse("a/b").is_err());
        assert!(ElementPath::parse("/{urn:a").is_err());
    }
}
