//! The SMEV transform against each rule of protocol.md §4, one test per rule, plus a
//! property: the output depends on the infoset only, never on prefixes or formatting.

use mezhved_xml::smev::transform_bytes;
use mezhved_xml::Limits;
use proptest::prelude::*;

fn t(input: &str) -> String {
    String::from_utf8(transform_bytes(input.as_bytes(), &Limits::default()).expect("parses"))
        .expect("utf-8")
}

#[test]
fn drops_declaration_processing_instructions_and_comments() {
    assert_eq!(
        t("<?xml version=\"1.0\" encoding=\"UTF-8\"?><?pi x?><a xmlns=\"urn:a\"><?pi y?>x<!-- c -->y</a><!-- after -->"),
        r#"<ns1:a xmlns:ns1="urn:a">xy</ns1:a>"#
    );
}

#[test]
fn drops_whitespace_only_text_and_keeps_other_text_verbatim() {
    assert_eq!(
        t("<a xmlns=\"urn:a\">\n  <b>  x  y </b>\n\t<c>\r\n</c>\n</a>"),
        r#"<ns1:a xmlns:ns1="urn:a"><ns1:b>  x  y </ns1:b><ns1:c></ns1:c></ns1:a>"#
    );
}

#[test]
fn writes_empty_elements_with_start_and_end_tags() {
    assert_eq!(
        t("<a xmlns='urn:a'><b/></a>"),
        r#"<ns1:a xmlns:ns1="urn:a"><ns1:b></ns1:b></ns1:a>"#
    );
}

#[test]
fn renames_prefixes_in_order_of_first_use_and_declares_once_in_scope() {
    assert_eq!(
        t(
            r#"<x:a xmlns:x="urn:1" xmlns:y="urn:2" xmlns:unused="urn:3"><y:b><x:c/><y:d/></y:b></x:a>"#
        ),
        r#"<ns1:a xmlns:ns1="urn:1"><ns2:b xmlns:ns2="urn:2"><ns1:c></ns1:c><ns2:d></ns2:d></ns2:b></ns1:a>"#
    );
}

#[test]
fn a_namespace_out_of_scope_gets_a_new_number_on_next_use() {
    // One counter for the whole document: the declaration made on the first <b> is out of
    // scope in its sibling, which declares the namespace again under the next number.
    assert_eq!(
        t(r#"<a xmlns="urn:a"><b xmlns="urn:b"/><b xmlns="urn:b"/></a>"#),
        r#"<ns1:a xmlns:ns1="urn:a"><ns2:b xmlns:ns2="urn:b"></ns2:b><ns3:b xmlns:ns3="urn:b"></ns3:b></ns1:a>"#
    );
}

#[test]
fn sorts_attributes_qualified_first_by_namespace_then_local_name() {
    assert_eq!(
        t(
            r#"<a xmlns="urn:e" xmlns:p="urn:z" xmlns:q="urn:y" z="1" p:b="2" q:c="3" b="4" p:a="5"/>"#
        ),
        r#"<ns1:a xmlns:ns1="urn:e" xmlns:ns2="urn:y" xmlns:ns3="urn:z" ns2:c="3" ns3:a="5" ns3:b="2" b="4" z="1"></ns1:a>"#
    );
}

#[test]
fn element_in_no_namespace_has_no_prefix_and_attribute_namespace_is_declared_where_used() {
    assert_eq!(
        t(r#"<a xmlns:p="urn:p"><b p:x="1"><p:c/></b></a>"#),
        r#"<a><b xmlns:ns1="urn:p" ns1:x="1"><ns1:c></ns1:c></b></a>"#
    );
}

#[test]
fn escapes_like_exclusive_c14n() {
    assert_eq!(
        t("<a xmlns='urn:a' v='&amp;&lt;&gt;&quot;&apos;&#9;&#10;&#13;'>&amp;&lt;&gt;\"'&#13;</a>"),
        "<ns1:a xmlns:ns1=\"urn:a\" v=\"&amp;&lt;>&quot;'&#x9;&#xA;&#xD;\">&amp;&lt;&gt;\"'&#xD;</ns1:a>"
    );
}

/// A small infoset: elements with a namespace (or none), attributes, text children.
#[derive(Debug, Clone)]
struct El {
    ns: Option<usize>,
    name: usize,
    attrs: Vec<(Option<usize>, usize, String)>,
    children: Vec<Child>,
}

#[derive(Debug, Clone)]
enum Child {
    El(El),
    Text(String),
}

const NS: [&str; 4] = ["urn:one", "urn:two", "http://x.example/3", "urn:four"];
const NAMES: [&str; 4] = ["a", "b", "Item", "value"];

fn arb_el() -> impl Strategy<Value = El> {
    let leaf = (
        prop::option::of(0..NS.len()),
        0..NAMES.len(),
        prop::collection::vec(
            (
                prop::option::of(0..NS.len()),
                0..NAMES.len(),
                "[a-z0-9 ]{0,6}",
            ),
            0..3,
        ),
    )
        .prop_map(|(ns, name, attrs)| El {
            ns,
            name,
            attrs,
            children: vec![],
        });
    leaf.prop_recursive(4, 24, 4, |inner| {
        (
            prop::option::of(0..NS.len()),
            0..NAMES.len(),
            prop::collection::vec(
                (
                    prop::option::of(0..NS.len()),
                    0..NAMES.len(),
                    "[a-z0-9 ]{0,6}",
                ),
                0..3,
            ),
            prop::collection::vec(
                prop_oneof![
                    inner.prop_map(Child::El),
                    "[a-z ]{1,5}".prop_map(Child::Text)
                ],
                0..4,
            ),
        )
            .prop_map(|(ns, name, attrs, children)| El {
                ns,
                name,
                attrs,
                children,
            })
    })
}

/// Serialises the infoset with a given prefix scheme: `style` picks prefixes, whether the
/// default namespace is used, where declarations go and how much whitespace is added.
fn write(el: &El, style: u8, depth: usize, indent_allowed: bool, out: &mut String) {
    let prefix = |ns: usize| format!("p{}{}", style, ns);
    // Indentation is only added where it forms a whitespace-only text node of its own.
    let pretty = style % 2 == 1;
    let indent = format!("\n{}", "  ".repeat(depth));
    let has_text = el.children.iter().any(|c| matches!(c, Child::Text(_)));
    if pretty && indent_allowed {
        out.push_str(&indent);
    }
    out.push('<');
    let qname = match el.ns {
        Some(_) if style >= 2 => NAMES[el.name].to_string(), // default namespace style
        Some(ns) => format!("{}:{}", prefix(ns), NAMES[el.name]),
        None => NAMES[el.name].to_string(),
    };
    out.push_str(&qname);
    match el.ns {
        Some(ns) if style >= 2 => out.push_str(&format!(" xmlns=\"{}\"", NS[ns])),
        Some(ns) => out.push_str(&format!(" xmlns:{}=\"{}\"", prefix(ns), NS[ns])),
        None if style >= 2 => out.push_str(" xmlns=\"\""),
        None => {}
    }
    // Redundant declarations that nothing uses must not matter.
    if style == 3 {
        out.push_str(" xmlns:junk=\"urn:junk\"");
    }
    let mut seen = std::collections::HashSet::new();
    let mut attrs = el.attrs.clone();
    if style % 2 == 1 {
        attrs.reverse();
    }
    let mut declared = std::collections::HashSet::new();
    for (ns, name, value) in &attrs {
        if !seen.insert((*ns, *name)) {
            continue;
        }
        match ns {
            Some(ns) => {
                let p = format!("a{}{}", style, ns);
                if declared.insert(*ns) {
                    out.push_str(&format!(" xmlns:{p}=\"{}\"", NS[*ns]));
                }
                out.push_str(&format!(" {p}:{}=\"{}\"", NAMES[*name], value));
            }
            None => out.push_str(&format!(" {}=\"{}\"", NAMES[*name], value)),
        }
    }
    out.push('>');
    for c in &el.children {
        match c {
            Child::El(e) => write(e, style, depth + 1, !has_text, out),
            Child::Text(t) => out.push_str(t),
        }
    }
    if pretty && !has_text && !el.children.is_empty() {
        out.push_str(&indent);
    }
    out.push_str(&format!("</{qname}>"));
}

fn dedup_attrs(el: &mut El) {
    let mut seen = std::collections::HashSet::new();
    el.attrs.retain(|(ns, name, _)| seen.insert((*ns, *name)));
    for c in &mut el.children {
        if let Child::El(e) = c {
            dedup_attrs(e);
        }
    }
}

/// A whitespace-only generated text would be dropped in every style alike, but adjacent
/// text children merge into one node; keep generated text non-blank so that the styles
/// differ in formatting only.
fn has_blank_text(el: &El) -> bool {
    el.children.iter().any(|c| match c {
        Child::Text(t) => t.trim().is_empty(),
        Child::El(e) => has_blank_text(e),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn output_depends_on_the_infoset_only(mut el in arb_el()) {
        dedup_attrs(&mut el);
        prop_assume!(!has_blank_text(&el));
        let mut reference = None;
        for style in 0..4u8 {
            let mut doc = String::new();
            write(&el, style, 0, false, &mut doc);
            let out = transform_bytes(doc.as_bytes(), &Limits::default())
                .map_err(|e| TestCaseError::fail(format!("{e}: {doc}")))?;
            // The output is itself well-formed and a fixed point of the transform.
            let again = transform_bytes(&out, &Limits::default())
                .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&out))))?;
            prop_assert_eq!(&again, &out);
            match &reference {
                None => reference = Some(out),
                Some(r) => prop_assert_eq!(r, &out, "style {} of {}", style, doc),
            }
        }
    }
}
