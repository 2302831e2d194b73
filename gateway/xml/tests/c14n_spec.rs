//! The examples of the W3C Canonical XML 1.0 (§3) and Exclusive XML Canonicalization
//! (§2.2) recommendations, byte for byte.
//!
//! The C14N 1.0 examples are written for inclusive canonicalisation of documents with
//! DTDs. Our parser refuses DTDs, so each such example is checked twice: the original is
//! refused with its specific error, and the same document without its DTD is
//! canonicalised exclusively (expected outputs in `c14n-spec/*.exc`, also checked against
//! lxml by the interoperability suite).

use mezhved_xml::c14n::{canonicalize, canonicalize_to_vec, ExcC14nOptions};
use mezhved_xml::{parse, Document, ElementPath, Limits, XmlError};
use std::path::PathBuf;

fn spec(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c14n-spec")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn document_c14n(input: &[u8], with_comments: bool) -> String {
    let doc = parse(input, &Limits::default()).expect("parses");
    let mut out = Vec::new();
    canonicalize(
        &doc,
        Document::DOCUMENT_NODE,
        None,
        &ExcC14nOptions::default().with_comments(with_comments),
        &mut out,
    );
    String::from_utf8(out).expect("utf-8")
}

fn text(name: &str) -> String {
    String::from_utf8(spec(name)).expect("utf-8")
}

#[test]
fn example_3_1_pis_comments_and_outside_of_document_element() {
    assert!(matches!(
        parse(&spec("3.1-pis-comments.original.xml"), &Limits::default()),
        Err(XmlError::ExternalReferenceForbidden { .. })
    ));
    let input = spec("3.1-pis-comments.xml");
    assert_eq!(document_c14n(&input, false), text("3.1-pis-comments.exc"));
    assert_eq!(
        document_c14n(&input, true),
        text("3.1-pis-comments.exc-with-comments")
    );
}

#[test]
fn example_3_2_whitespace_in_document_content() {
    assert_eq!(
        document_c14n(&spec("3.2-whitespace.xml"), false),
        text("3.2-whitespace.exc")
    );
}

#[test]
fn example_3_3_start_and_end_tags() {
    assert!(matches!(
        parse(&spec("3.3-tags.original.xml"), &Limits::default()),
        Err(XmlError::DtdForbidden { .. })
    ));
    assert_eq!(
        document_c14n(&spec("3.3-tags.xml"), false),
        text("3.3-tags.exc")
    );
}

#[test]
fn example_3_4_character_modifications_and_references() {
    assert!(matches!(
        parse(&spec("3.4-chars.original.xml"), &Limits::default()),
        Err(XmlError::DtdForbidden { .. })
    ));
    assert_eq!(
        document_c14n(&spec("3.4-chars.xml"), false),
        text("3.4-chars.exc")
    );
}

#[test]
fn example_3_5_entity_references_are_refused() {
    assert!(matches!(
        parse(&spec("3.5-entities.original.xml"), &Limits::default()),
        Err(XmlError::ExternalReferenceForbidden { .. })
    ));
}

#[test]
fn example_3_6_utf8_encoding() {
    assert!(matches!(
        parse(&spec("3.6-utf8.original.xml"), &Limits::default()),
        Err(XmlError::Encoding { .. })
    ));
    assert_eq!(
        document_c14n(&spec("3.6-utf8.xml"), false),
        text("3.6-utf8.exc")
    );
}

#[test]
fn exclusive_example_2_2_same_output_in_both_contexts() {
    let expected = text("exc-2.2.elem2.exc");
    for (file, path) in [
        ("exc-2.2-a.xml", "/{foo:bar}local/{http://example.net}elem2"),
        (
            "exc-2.2-b.xml",
            "/{http://foo.example}pdu/{http://example.net}elem2",
        ),
    ] {
        let doc = parse(&spec(file), &Limits::default()).expect("parses");
        let elem2 = ElementPath::parse(path)
            .expect("path")
            .resolve(&doc)
            .expect("elem2");
        let out = canonicalize_to_vec(&doc, elem2, &ExcC14nOptions::default());
        assert_eq!(String::from_utf8(out).expect("utf-8"), expected, "{file}");
    }
}

#[test]
fn inclusive_namespaces_prefix_list_renders_listed_prefixes() {
    let doc = parse(
        br#"<r xmlns="urn:d" xmlns:a="urn:a" xmlns:b="urn:b"><x:e xmlns:x="urn:x"><f/></x:e></r>"#,
        &Limits::default(),
    )
    .expect("parses");
    let e = ElementPath::parse("/r/e")
        .expect("path")
        .resolve(&doc)
        .expect("e");
    let plain = canonicalize_to_vec(&doc, e, &ExcC14nOptions::default());
    assert_eq!(
        String::from_utf8(plain).expect("utf-8"),
        r#"<x:e xmlns:x="urn:x"><f xmlns="urn:d"></f></x:e>"#
    );
    let listed = canonicalize_to_vec(
        &doc,
        e,
        &ExcC14nOptions {
            with_comments: false,
            inclusive_prefixes: vec!["a".into(), "#default".into(), "zz".into()],
        },
    );
    // `a` and the default namespace are in scope and listed: rendered on the apex and
    // not repeated below; `b` is not listed; `zz` is not in scope.
    assert_eq!(
        String::from_utf8(listed).expect("utf-8"),
        r#"<x:e xmlns="urn:d" xmlns:a="urn:a" xmlns:x="urn:x"><f></f></x:e>"#
    );
}

#[test]
fn default_namespace_is_undeclared_only_when_an_output_ancestor_declared_one() {
    let doc = parse(
        br#"<a xmlns="urn:a"><b xmlns=""><c/></b></a>"#,
        &Limits::default(),
    )
    .expect("parses");
    let root = canonicalize_to_vec(&doc, doc.root(), &ExcC14nOptions::default());
    assert_eq!(
        String::from_utf8(root).expect("utf-8"),
        r#"<a xmlns="urn:a"><b xmlns=""><c></c></b></a>"#
    );
    let b = ElementPath::parse("/a/b")
        .expect("path")
        .resolve(&doc)
        .expect("b");
    let sub = canonicalize_to_vec(&doc, b, &ExcC14nOptions::default());
    assert_eq!(String::from_utf8(sub).expect("utf-8"), "<b><c></c></b>");
}

#[test]
fn excluded_subtree_leaves_no_trace_but_its_surrounding_text() {
    let doc = parse(
        br#"<a><b>x</b> <s:Sig xmlns:s="urn:s"><v/></s:Sig></a>"#,
        &Limits::default(),
    )
    .expect("parses");
    let sig = ElementPath::parse("/a/Sig")
        .expect("path")
        .resolve(&doc)
        .expect("sig");
    let mut out = Vec::new();
    canonicalize(
        &doc,
        Document::DOCUMENT_NODE,
        Some(sig),
        &ExcC14nOptions::default(),
        &mut out,
    );
    assert_eq!(String::from_utf8(out).expect("utf-8"), "<a><b>x</b> </a>");
}
