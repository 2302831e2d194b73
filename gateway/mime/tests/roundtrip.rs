//! Writing with `mtom_body` and reading back with `read_multipart`; content types,
//! `cid:` URLs and the reader's tolerance of real-world variations.

mod common;

use bytes::Bytes;
use common::*;
use mezhved_mime::{
    cid_from_href, href_from_cid, mtom_body, parse_content_type, read_multipart, OutgoingPart,
    PartSource, ReadLimits, RelatedContentType, DEFAULT_CONTENT_TYPE, ROOT_PART_CONTENT_TYPE,
};

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn mtom_round_trip() -> TestResult {
    let src = tempfile::tempdir()?;
    let dst = tempfile::tempdir()?;
    let big = pseudo_random(1_500_000, 7);
    let big_path = src.path().join("big.bin");
    std::fs::write(&big_path, &big)?;
    let empty_path = src.path().join("empty.bin");
    std::fs::write(&empty_path, b"")?;
    let root = Bytes::from_static(
        b"<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>\
          <xop:Include xmlns:xop=\"http://www.w3.org/2004/08/xop/include\" href=\"cid:a%40x\"/>\
          </soap:Body></soap:Envelope>",
    );
    let tricky = Bytes::from_static(b"\r\n--MIMEBoundary_\r\n--\r\n\r\n");
    let parts = vec![
        OutgoingPart {
            content_id: "a@x".into(),
            content_type: "application/pdf".into(),
            source: PartSource::File(big_path.clone()),
        },
        OutgoingPart {
            content_id: "tricky@x".into(),
            content_type: "application/octet-stream".into(),
            source: PartSource::Bytes(tricky.clone()),
        },
        OutgoingPart {
            content_id: "empty-file@x".into(),
            content_type: "text/plain".into(),
            source: PartSource::File(empty_path),
        },
        OutgoingPart {
            content_id: "empty-bytes@x".into(),
            content_type: "text/plain".into(),
            source: PartSource::Bytes(Bytes::new()),
        },
    ];
    let out = mtom_body(root.clone(), "root@x", parts)?;
    let content_type = out.content_type.clone();
    let content_length = out.content_length;
    let wire = collect(out.stream).await?;
    assert_eq!(content_length, Some(wire.len() as u64));

    let ct = parse_content_type(&content_type)?.ok_or("not multipart/related")?;
    assert_eq!(ct.start.as_deref(), Some("root@x"));
    assert_eq!(ct.type_.as_deref(), Some("application/xop+xml"));
    assert_eq!(ct.start_info.as_deref(), Some("text/xml"));
    assert!(ct.boundary.starts_with("MIMEBoundary_"));

    let limits = ReadLimits {
        sync_files: true,
        ..limits()
    };
    let mut expected = None;
    for step in [wire.len(), 65_536, 1000, 77] {
        let m = read_multipart(stepped(&wire, step), &ct, dst.path(), &limits).await?;
        assert_eq!(m.root, root);
        assert_eq!(m.root_content_type, ROOT_PART_CONTENT_TYPE);
        assert_eq!(m.root_content_id.as_deref(), Some("root@x"));
        let href_cid = cid_from_href("cid:a%40x").ok_or("bad href")?;
        let a = m.part(&href_cid).ok_or("no part a@x")?;
        assert_eq!(a.size, big.len() as u64);
        assert_eq!(a.sha256, sha256(&big));
        assert_eq!(a.content_type, "application/pdf");
        let got = contents(&m)?;
        let ids: Vec<_> = got
            .iter()
            .map(|(id, _, _)| id.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            ids,
            ["root@x", "a@x", "tricky@x", "empty-file@x", "empty-bytes@x"]
        );
        assert_eq!(got[1].2, big);
        assert_eq!(got[2].2, tricky.to_vec());
        assert!(got[3].2.is_empty() && got[4].2.is_empty());
        for p in &m.parts {
            let name = p.path.file_name().and_then(|n| n.to_str()).ok_or("name")?;
            assert!(
                name.starts_with("part-") && name.ends_with(".bin"),
                "{name}"
            );
            assert_eq!(p.path.parent(), Some(dst.path()));
        }
        let summary: Vec<_> = m
            .parts
            .iter()
            .map(|p| (p.content_id.clone(), p.size, p.sha256_hex()))
            .collect();
        match &expected {
            None => expected = Some(summary),
            Some(e) => assert_eq!(e, &summary),
        }
        m.remove_files().await?;
        assert!(files_in(dst.path()).is_empty());
    }
    Ok(())
}

#[tokio::test]
async fn writer_layout() -> TestResult {
    let out = mtom_body(
        Bytes::from_static(b"<r/>"),
        "root",
        vec![OutgoingPart {
            content_id: "a".into(),
            content_type: "image/png".into(),
            source: PartSource::Bytes(Bytes::from_static(b"PNG")),
        }],
    )?;
    let ct = parse_content_type(&out.content_type)?.ok_or("ct")?;
    let b = ct.boundary;
    let wire = String::from_utf8(collect(out.stream).await?)?;
    assert_eq!(
        wire,
        format!(
            "--{b}\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"text/xml\"\r\n\
             Content-Transfer-Encoding: binary\r\nContent-ID: <root>\r\n\r\n<r/>\
             \r\n--{b}\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: binary\r\n\
             Content-ID: <a>\r\n\r\nPNG\r\n--{b}--\r\n"
        )
    );
    assert_eq!(out.content_length, Some(wire.len() as u64));
    // Two bodies never share a boundary.
    let other = mtom_body(Bytes::from_static(b"<r/>"), "root", Vec::new())?;
    assert_ne!(
        parse_content_type(&other.content_type)?
            .ok_or("ct")?
            .boundary,
        b
    );
    Ok(())
}

#[tokio::test]
async fn writer_refuses_bad_input() -> TestResult {
    let part = |cid: &str, ct: &str| OutgoingPart {
        content_id: cid.into(),
        content_type: ct.into(),
        source: PartSource::Bytes(Bytes::new()),
    };
    let root = Bytes::from_static(b"<r/>");
    for (root_cid, parts) in [
        ("", vec![]),
        ("<root>", vec![]),
        ("ro\r\not", vec![]),
        ("root", vec![part("a", "text/plain\r\nX-Injected: 1")]),
        ("root", vec![part("a", "")]),
        ("root", vec![part("a", "x/y"), part("a", "x/y")]),
        ("root", vec![part("root", "x/y")]),
    ] {
        let err = mtom_body(root.clone(), root_cid, parts)
            .err()
            .ok_or("accepted")?;
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::InvalidInput,
            "{root_cid:?}: {err}"
        );
    }
    let dir = tempfile::tempdir()?;
    let not_file = OutgoingPart {
        content_id: "d".into(),
        content_type: "x/y".into(),
        source: PartSource::File(dir.path().to_owned()),
    };
    assert!(mtom_body(root.clone(), "root", vec![not_file]).is_err());
    let missing = OutgoingPart {
        content_id: "m".into(),
        content_type: "x/y".into(),
        source: PartSource::File(dir.path().join("missing")),
    };
    let err = mtom_body(root, "root", vec![missing])
        .err()
        .ok_or("accepted")?;
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    Ok(())
}

/// A file that changes size between `mtom_body` and streaming fails the stream instead
/// of sending a body that contradicts Content-Length.
#[tokio::test]
async fn writer_detects_file_size_change() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("f.bin");
    for (before, after) in [
        (1000usize, 1001usize),
        (1000, 999),
        (0, 1),
        (200_000, 150_000),
    ] {
        std::fs::write(&path, vec![1u8; before])?;
        let out = mtom_body(
            Bytes::from_static(b"<r/>"),
            "root",
            vec![OutgoingPart {
                content_id: "f".into(),
                content_type: "x/y".into(),
                source: PartSource::File(path.clone()),
            }],
        )?;
        std::fs::write(&path, vec![1u8; after])?;
        assert!(collect(out.stream).await.is_err(), "{before} -> {after}");
    }
    Ok(())
}

#[test]
fn content_type_variants() -> TestResult {
    let parsed = parse_content_type(
        "Multipart/Related ; TYPE=\"application/xop+xml\";start=\"<root.message@cxf.apache.org>\"; \
         start-info=\"text/xml\";Boundary=\"uuid:0ca0e16e-feb1-426c-97d8-c4508ada5e82\"",
    )?
    .ok_or("none")?;
    assert_eq!(
        parsed,
        RelatedContentType {
            boundary: "uuid:0ca0e16e-feb1-426c-97d8-c4508ada5e82".into(),
            start: Some("root.message@cxf.apache.org".into()),
            type_: Some("application/xop+xml".into()),
            start_info: Some("text/xml".into()),
        }
    );
    // Unquoted values, including the non-conforming `:` and `<>`, and other parameters.
    let parsed = parse_content_type(
        "multipart/related;boundary=MIMEBoundary_abc:1;type=application/xop+xml;start=<0.urn:uuid:1@apache.org>; charset=UTF-8;",
    )?
    .ok_or("none")?;
    assert_eq!(parsed.boundary, "MIMEBoundary_abc:1");
    assert_eq!(parsed.start.as_deref(), Some("0.urn:uuid:1@apache.org"));
    assert_eq!(parsed.start_info, None);
    // Escapes in quoted strings, `;` inside quotes.
    let parsed =
        parse_content_type(r#"multipart/related; boundary="a\"b;c"; start="x""#)?.ok_or("none")?;
    assert_eq!(parsed.boundary, "a\"b;c");
    assert_eq!(parsed.start.as_deref(), Some("x"));
    let via_from_str: RelatedContentType = "multipart/related; boundary=q".parse()?;
    assert_eq!(via_from_str.boundary, "q");
    Ok(())
}

#[test]
fn cid_urls() {
    assert_eq!(
        cid_from_href("cid:foo4@bar.net").as_deref(),
        Some("foo4@bar.net")
    );
    assert_eq!(cid_from_href(" CID:a%40b%2Fc ").as_deref(), Some("a@b/c"));
    assert_eq!(cid_from_href("cid:%D1%84").as_deref(), Some("\u{444}"));
    assert_eq!(cid_from_href("cid:"), None);
    assert_eq!(cid_from_href("cid:%4"), None);
    assert_eq!(cid_from_href("cid:%zz"), None);
    assert_eq!(cid_from_href("cid:%FF"), None);
    assert_eq!(cid_from_href("mid:a@b"), None);
    assert_eq!(cid_from_href("http://x"), None);
    assert_eq!(cid_from_href("ci"), None);
    assert_eq!(href_from_cid("a b@c/d%"), "cid:a%20b@c%2Fd%25");
    for cid in ["1.urn:uuid:0ca0e16e@apache.org", "a b<>%\"#?\u{444}", "x"] {
        assert_eq!(cid_from_href(&href_from_cid(cid)).as_deref(), Some(cid));
    }
}

/// What real producers send: a preamble, LF-only header lines, folded headers, transport
/// padding after a delimiter, a root that is not first, a part without headers before
/// its data, and an epilogue.
#[tokio::test]
async fn reader_tolerance() -> TestResult {
    let dir = tempfile::tempdir()?;
    let wire: &[u8] = b"This is a preamble.\r\n\
        --bb  \t\r\n\
        content-id:\n <att1>\n\
        CONTENT-TYPE: image/jpeg\n\
        X-Other: whatever\n\
        \n\
        JPEG\r\n\
        --bb\r\n\
        Content-Type: application/xop+xml;\r\n\ttype=\"text/xml\"\r\n\
        Content-ID: <root>\r\n\
        \r\n\
        <Envelope/>\r\n\
        --bb\r\n\
        Content-ID: att2\r\n\
        \r\n\
        --bb--\r\nepilogue --bb\r\n garbage";
    let ct = ct("bb", Some("root"));
    for step in 1..40 {
        let m = read_multipart(stepped(wire, step), &ct, dir.path(), &limits()).await?;
        assert_eq!(&m.root[..], b"<Envelope/>");
        assert_eq!(
            m.root_content_type,
            "application/xop+xml; type=\"text/xml\""
        );
        let got = contents(&m)?;
        assert_eq!(
            got[1],
            (Some("att1".into()), "image/jpeg".into(), b"JPEG".to_vec())
        );
        assert_eq!(
            got[2],
            (Some("att2".into()), DEFAULT_CONTENT_TYPE.into(), Vec::new())
        );
        m.remove_files().await?;
    }
    // The first delimiter with no CRLF before it, right at the start, and without start.
    let wire = b"--bb\r\n\r\n<r/>\r\n--bb--";
    let m = read_multipart(
        one_chunk(wire),
        &common::ct("bb", None),
        dir.path(),
        &limits(),
    )
    .await?;
    assert_eq!((&m.root[..], m.root_content_id), (&b"<r/>"[..], None));
    // A CRLF before the first delimiter is the preamble's; text glued to it is tolerated.
    let wire = b"\r\n--bb\r\n\r\n<r/>\r\n--bb--";
    let m = read_multipart(
        one_chunk(wire),
        &common::ct("bb", None),
        dir.path(),
        &limits(),
    )
    .await?;
    assert_eq!(&m.root[..], b"<r/>");
    let wire = b"junk--bb\r\n\r\n<r/>\r\n--bb--";
    let m = read_multipart(
        one_chunk(wire),
        &common::ct("bb", None),
        dir.path(),
        &limits(),
    )
    .await?;
    assert_eq!(&m.root[..], b"<r/>");
    Ok(())
}
