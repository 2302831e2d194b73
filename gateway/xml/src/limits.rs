//! Hard limits on what the parser accepts. Every limit is checked *while* parsing, before
//! the memory for the offending construct is committed, so hostile input costs at most
//! the limits, never its own size multiplied.

/// Parser limits; [`Limits::default`] suits SOAP envelopes with inline attachments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input, in bytes.
    pub max_bytes: usize,
    /// Deepest element nesting (the root element is depth 1).
    pub max_depth: usize,
    /// Most attributes on one element (namespace declarations not counted).
    pub max_attributes_per_element: usize,
    /// Most elements in one document.
    pub max_elements: usize,
    /// Most namespace declarations in one document.
    pub max_namespace_declarations: usize,
    /// Longest text node (after merging adjacent character data) or attribute value, in bytes.
    pub max_text_len: usize,
    /// Longest element or attribute name, in bytes.
    pub max_name_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 * 1024 * 1024,
            max_depth: 128,
            max_attributes_per_element: 64,
            max_elements: 500_000,
            max_namespace_declarations: 10_000,
            max_text_len: 48 * 1024 * 1024,
            max_name_len: 1024,
        }
    }
}

impl Limits {
    /// Limits with no practical bound, for trusted input (e.g. our own canonical output).
    pub fn unbounded() -> Self {
        Limits {
            max_bytes: usize::MAX,
            max_depth: usize::MAX,
            max_attributes_per_element: usize::MAX,
            max_elements: usize::MAX,
            max_namespace_declarations: usize::MAX,
            max_text_len: usize::MAX,
            max_name_len: usize::MAX,
        }
    }
}
