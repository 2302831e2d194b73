//! Entry points shared by the cargo-fuzz targets (`gateway/xml/fuzz`) and the tests that
//! replay their committed corpora, so both run exactly the same code.
//!
//! Each function must never panic, whatever the input; it asserts the properties that
//! must hold for every input that parses.

use crate::c14n::{self, ExcC14nOptions};
use crate::{parse, smev, Document, Limits};

fn fuzz_limits() -> Limits {
    Limits {
        max_bytes: 1 << 20,
        max_depth: 64,
        max_attributes_per_element: 64,
        max_elements: 20_000,
        max_namespace_declarations: 1_000,
        max_text_len: 1 << 20,
        max_name_len: 256,
    }
}

/// Parser: any input either parses or returns an error; never panics.
pub fn parse_target(data: &[u8]) -> Option<Document> {
    parse(data, &fuzz_limits()).ok()
}

/// Canonicalisation: canonical output re-parses, and canonicalising it again is a fixed
/// point (c14n is idempotent).
pub fn c14n_target(data: &[u8]) {
    let Some(doc) = parse_target(data) else {
        return;
    };
    for with_comments in [false, true] {
        let opts = ExcC14nOptions::default().with_comments(with_comments);
        let once = c14n::canonicalize_to_vec(&doc, doc.root(), &opts);
        let Ok(again) = parse(&once, &Limits::unbounded()) else {
            panic!(
                "canonical output does not parse: {}",
                String::from_utf8_lossy(&once)
            );
        };
        let twice = c14n::canonicalize_to_vec(&again, again.root(), &opts);
        assert_eq!(once, twice, "exclusive c14n is not idempotent");
    }
}

/// SMEV transform: output re-parses and transforming it again is a fixed point.
///
/// Except for documents with `xml:*` attributes: the transform gives the XML namespace an
/// `nsN` prefix like any other (as the Java reference does), which is digestible but not
/// well-formed XML, so such output is not re-parsed.
pub fn smev_target(data: &[u8]) {
    let Some(doc) = parse_target(data) else {
        return;
    };
    let mut once = Vec::new();
    smev::transform(&doc, doc.root(), None, &mut once);
    if doc.ns_id(crate::dom::XML_NS).is_some() {
        return;
    }
    let Ok(again) = parse(&once, &Limits::unbounded()) else {
        panic!(
            "SMEV transform output does not parse: {}",
            String::from_utf8_lossy(&once)
        );
    };
    let mut twice = Vec::new();
    smev::transform(&again, again.root(), None, &mut twice);
    assert_eq!(once, twice, "SMEV transform is not idempotent");
}
