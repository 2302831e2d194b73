//! Every error of the reader and of `parse_content_type`, each checked to leave no file
//! behind.

mod common;

use bytes::Bytes;
use common::*;
use mezhved_mime::{
    parse_content_type, read_multipart, MimeError, ReadLimits, RelatedContentType, MAX_HEADER_BYTES,
};
use std::path::Path;

const ROOT: &str = "Content-Type: application/xop+xml; type=\"text/xml\"\r\nContent-ID: <root>\r\n";

fn att(cid: &str) -> String {
    format!("Content-Type: application/octet-stream\r\nContent-ID: <{cid}>\r\n")
}

async fn read_err(
    body: &[u8],
    ct: &RelatedContentType,
    dir: &Path,
    limits: &ReadLimits,
) -> MimeError {
    // Every chunking must give the same error and leave nothing behind.
    let mut first: Option<String> = None;
    let mut last = None;
    for step in [body.len().max(1), 7, 1] {
        let err = match read_multipart(stepped(body, step), ct, dir, limits).await {
            Ok(m) => panic!("expected an error, got {m:?}"),
            Err(e) => e,
        };
        assert!(files_in(dir).is_empty(), "leftover files after {err}");
        let text = format!("{err:?}");
        match &first {
            None => first = Some(text),
            Some(f) => assert_eq!(f, &text, "step {step}"),
        }
        last = Some(err);
    }
    last.expect("at least one run")
}

#[test]
fn content_type_errors() {
    assert_eq!(
        parse_content_type("text/xml; charset=utf-8").ok(),
        Some(None)
    );
    assert_eq!(parse_content_type("").ok(), Some(None));
    assert!(matches!(
        parse_content_type("multipart/related; type=\"application/xop+xml\""),
        Err(MimeError::MissingBoundary)
    ));
    assert!(matches!(
        parse_content_type("multipart/related; boundary=\"abc"),
        Err(MimeError::MalformedContentType { .. })
    ));
    assert!(matches!(
        parse_content_type("multipart/related; boundary=a; BOUNDARY=b"),
        Err(MimeError::MalformedContentType { .. })
    ));
    assert!(matches!(
        parse_content_type("multipart/related; boundary=\"a\"x"),
        Err(MimeError::MalformedContentType { .. })
    ));
    assert!(matches!(
        parse_content_type("multipart/related; boundary=\"\""),
        Err(MimeError::MissingBoundary)
    ));
    assert!(matches!(
        parse_content_type(&format!("multipart/related; boundary={}", "x".repeat(201))),
        Err(MimeError::MalformedContentType { .. })
    ));
    assert!(matches!(
        parse_content_type("multipart/related; boundary=\"a\u{e9}\""),
        Err(MimeError::MalformedContentType { .. })
    ));
    assert!(matches!(
        "application/soap+xml".parse::<RelatedContentType>(),
        Err(MimeError::NotMultipartRelated)
    ));
}

#[tokio::test]
async fn invalid_boundary_in_struct() -> TestResult {
    let dir = tempfile::tempdir()?;
    let err = read_err(b"--\r\n\r\nx\r\n----", &ct("", None), dir.path(), &limits()).await;
    assert!(matches!(err, MimeError::MissingBoundary), "{err}");
    Ok(())
}

#[tokio::test]
async fn malformed_headers() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ct = ct("b", Some("root"));
    for headers in [
        "Content-ID <root>\r\n",
        " folded-first: x\r\n",
        "Content-ID: <root>\r\nContent-ID: <root>\r\n",
        "Content-ID: <>\r\n",
        "Bad Name: x\r\n",
    ] {
        let body = body(b"", "b", &[(headers, b"<x/>")], b"");
        let err = read_err(&body, &ct, dir.path(), &limits()).await;
        assert!(
            matches!(err, MimeError::MalformedHeaders { part: 0, .. }),
            "{headers:?}: {err}"
        );
    }
    // Non-UTF-8 header bytes.
    let mut body = b"--b\r\nContent-ID: <r\xffoot>\r\n\r\nx".to_vec();
    body.extend_from_slice(b"\r\n--b--");
    let err = read_err(&body, &ct, dir.path(), &limits()).await;
    assert!(matches!(err, MimeError::MalformedHeaders { .. }), "{err}");
    // Headers that never end before the next delimiter line.
    let err = read_err(
        b"--b\r\nContent-ID: <root>\r\n--b--\r\n",
        &ct,
        dir.path(),
        &limits(),
    )
    .await;
    assert!(matches!(err, MimeError::MalformedHeaders { .. }), "{err}");
    Ok(())
}

#[tokio::test]
async fn headers_too_large() -> TestResult {
    let dir = tempfile::tempdir()?;
    let long = format!("{ROOT}X-Pad: {}\r\n", "p".repeat(MAX_HEADER_BYTES));
    let body = body(b"", "b", &[(&long, b"<x/>")], b"");
    let err = read_err(&body, &ct("b", Some("root")), dir.path(), &limits()).await;
    assert!(
        matches!(err, MimeError::HeadersTooLarge { part: 0, limit } if limit == MAX_HEADER_BYTES),
        "{err}"
    );
    // An unterminated header block at the end of the body: too large, not truncated,
    // once it passes the limit.
    let mut body = b"--b\r\n".to_vec();
    body.extend(std::iter::repeat_n(b'h', MAX_HEADER_BYTES + 10));
    let err = read_err(&body, &ct("b", None), dir.path(), &limits()).await;
    assert!(matches!(err, MimeError::HeadersTooLarge { .. }), "{err}");
    Ok(())
}

#[tokio::test]
async fn unsupported_transfer_encoding() -> TestResult {
    let dir = tempfile::tempdir()?;
    let headers = format!("{}Content-Transfer-Encoding: base64\r\n", att("a"));
    let b64 = body(b"", "b", &[(ROOT, b"<x/>"), (&headers, b"QUJD")], b"");
    let err = read_err(&b64, &ct("b", Some("root")), dir.path(), &limits()).await;
    match err {
        MimeError::UnsupportedTransferEncoding { part, encoding } => {
            assert_eq!((part, encoding.as_str()), (1, "base64"));
        }
        other => panic!("{other}"),
    }
    // The accepted ones, in any case.
    for enc in ["binary", "8BIT", "7bit"] {
        let headers = format!("{}Content-Transfer-Encoding: {enc}\r\n", att("a"));
        let body = body(b"", "b", &[(ROOT, b"<x/>"), (&headers, b"ABC")], b"");
        let m = read_multipart(
            one_chunk(&body),
            &ct("b", Some("root")),
            dir.path(),
            &limits(),
        )
        .await?;
        m.remove_files().await?;
    }
    Ok(())
}

#[tokio::test]
async fn truncated_bodies() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ct = ct("b", Some("root"));
    let full = body(b"", "b", &[(ROOT, b"<x/>"), (&att("a"), &[7u8; 5000])], b"");
    // Every prefix that lacks the closing `--` is truncated (a file may already exist).
    for cut in [0, 3, 10, 60, 120, 2000, full.len() - 2, full.len() - 1] {
        let err = read_err(&full[..cut], &ct, dir.path(), &limits()).await;
        assert!(
            matches!(err, MimeError::MissingCloseDelimiter),
            "cut {cut}: {err}"
        );
    }
    // No delimiter at all.
    let err = read_err(b"just some text", &ct, dir.path(), &limits()).await;
    assert!(matches!(err, MimeError::MissingCloseDelimiter), "{err}");
    Ok(())
}

#[tokio::test]
async fn no_parts() -> TestResult {
    let dir = tempfile::tempdir()?;
    let err = read_err(
        b"preamble\r\n--b--\r\n",
        &ct("b", None),
        dir.path(),
        &limits(),
    )
    .await;
    assert!(matches!(err, MimeError::NoParts), "{err}");
    Ok(())
}

#[tokio::test]
async fn duplicate_content_id() -> TestResult {
    let dir = tempfile::tempdir()?;
    let body = body(
        b"",
        "b",
        &[(ROOT, b"<x/>"), (&att("a"), b"one"), (&att("a"), b"two")],
        b"",
    );
    let err = read_err(&body, &ct("b", Some("root")), dir.path(), &limits()).await;
    assert!(
        matches!(&err, MimeError::DuplicateContentId { content_id } if content_id == "a"),
        "{err}"
    );
    // An attachment reusing the root's Content-ID.
    let body2 = body_with_root_dup();
    let err = read_err(&body2, &ct("b", Some("root")), dir.path(), &limits()).await;
    assert!(matches!(err, MimeError::DuplicateContentId { .. }), "{err}");
    Ok(())
}

fn body_with_root_dup() -> Vec<u8> {
    body(
        b"",
        "b",
        &[(&att("x"), b"1"), (ROOT, b"<x/>"), (&att("root"), b"2")],
        b"",
    )
}

#[tokio::test]
async fn part_too_large_is_distinguishable() -> TestResult {
    let dir = tempfile::tempdir()?;
    let limits = ReadLimits {
        max_part_bytes: 1000,
        ..limits()
    };
    let body = body(
        b"",
        "b",
        &[
            (ROOT, b"<x/>"),
            (&att("ok"), &[1u8; 1000]),
            (&att("big"), &[2u8; 1001]),
        ],
        b"",
    );
    let err = read_err(&body, &ct("b", Some("root")), dir.path(), &limits).await;
    match err {
        MimeError::PartTooLarge { content_id, limit } => {
            assert_eq!((content_id.as_str(), limit), ("big", 1000));
        }
        other => panic!("{other}"),
    }
    Ok(())
}

#[tokio::test]
async fn root_too_large() -> TestResult {
    let dir = tempfile::tempdir()?;
    let limits = ReadLimits {
        max_root_bytes: 100,
        ..limits()
    };
    let ok = body(b"", "b", &[(ROOT, &[b'x'; 100])], b"");
    let m = read_multipart(one_chunk(&ok), &ct("b", None), dir.path(), &limits).await?;
    assert_eq!(m.root.len(), 100);
    let big = body(b"", "b", &[(ROOT, &[b'x'; 101])], b"");
    let err = read_err(&big, &ct("b", None), dir.path(), &limits).await;
    assert!(
        matches!(err, MimeError::RootTooLarge { limit: 100 }),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn total_too_large() -> TestResult {
    let dir = tempfile::tempdir()?;
    let body = body(
        b"",
        "b",
        &[(ROOT, b"<x/>"), (&att("a"), &[3u8; 300])],
        b"--epilogue",
    );
    // The limit counts through the closing delimiter, not the epilogue.
    let exact = body.len() as u64 - b"--epilogue".len() as u64;
    for step in [1, 5, body.len()] {
        let limits = ReadLimits {
            max_total_bytes: exact,
            ..limits()
        };
        let m = read_multipart(
            stepped(&body, step),
            &ct("b", Some("root")),
            dir.path(),
            &limits,
        )
        .await?;
        m.remove_files().await?;
    }
    let limits = ReadLimits {
        max_total_bytes: exact - 1,
        ..limits()
    };
    let err = read_err(&body, &ct("b", Some("root")), dir.path(), &limits).await;
    assert!(
        matches!(err, MimeError::TotalTooLarge { limit } if limit == exact - 1),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn too_many_parts() -> TestResult {
    let dir = tempfile::tempdir()?;
    let limits = ReadLimits {
        max_parts: 2,
        ..limits()
    };
    let two = body(b"", "b", &[(ROOT, b"<x/>"), (&att("a"), b"1")], b"");
    let m = read_multipart(one_chunk(&two), &ct("b", None), dir.path(), &limits).await?;
    m.remove_files().await?;
    let three = body(
        b"",
        "b",
        &[(ROOT, b"<x/>"), (&att("a"), b"1"), (&att("c"), b"2")],
        b"",
    );
    let err = read_err(&three, &ct("b", None), dir.path(), &limits).await;
    assert!(matches!(err, MimeError::TooManyParts { limit: 2 }), "{err}");
    Ok(())
}

#[tokio::test]
async fn root_not_found_and_missing_content_id() -> TestResult {
    let dir = tempfile::tempdir()?;
    let body1 = body(b"", "b", &[(ROOT, b"<x/>"), (&att("a"), b"1")], b"");
    let err = read_err(&body1, &ct("b", Some("other")), dir.path(), &limits()).await;
    assert!(
        matches!(&err, MimeError::RootNotFound { start } if start == "other"),
        "{err}"
    );

    let body2 = body(
        b"",
        "b",
        &[(ROOT, b"<x/>"), ("Content-Type: image/png\r\n", b"1")],
        b"",
    );
    let err = read_err(&body2, &ct("b", Some("root")), dir.path(), &limits()).await;
    assert!(
        matches!(err, MimeError::MissingContentId { part: 1 }),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn io_error_on_missing_dir() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("no-such-dir");
    let body = body(b"", "b", &[(ROOT, b"<x/>"), (&att("a"), b"1")], b"");
    let err = read_multipart(one_chunk(&body), &ct("b", None), &missing, &limits())
        .await
        .err()
        .ok_or("expected an error")?;
    match err {
        MimeError::Io { path, source } => {
            assert!(path.starts_with(&missing), "{}", path.display());
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other}"),
    }
    Ok(())
}

#[tokio::test]
async fn body_stream_error_removes_files() -> TestResult {
    let dir = tempfile::tempdir()?;
    let full = body(
        b"",
        "b",
        &[
            (ROOT, b"<x/>"),
            (&att("a"), &[1u8; 100_000]),
            (&att("c"), &[2u8; 100_000]),
        ],
        b"",
    );
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::copy_from_slice(&full[..150_000])),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "peer reset",
        )),
    ];
    let stream = futures_util::stream::iter(chunks);
    let err = read_multipart(
        stream,
        &ct("b", None),
        dir.path(),
        &ReadLimits {
            sync_files: true,
            ..limits()
        },
    )
    .await
    .err()
    .ok_or("expected an error")?;
    assert!(
        matches!(&err, MimeError::Body(e) if e.to_string() == "peer reset"),
        "{err}"
    );
    assert!(files_in(dir.path()).is_empty());
    Ok(())
}

/// A later part fails after earlier parts were completely written and synced: all of
/// them are removed.
#[tokio::test]
async fn no_leftover_files_after_late_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let keep = dir.path().join("unrelated.txt");
    std::fs::write(&keep, b"not ours")?;
    let limits = ReadLimits {
        max_part_bytes: 50_000,
        sync_files: true,
        ..limits()
    };
    let body = body(
        b"",
        "b",
        &[
            (ROOT, b"<x/>"),
            (&att("a"), &[1u8; 40_000]),
            (&att("c"), &[2u8; 40_000]),
            (&att("d"), &[3u8; 60_000]),
        ],
        b"",
    );
    for step in [body.len(), 4096, 1000] {
        let err = read_multipart(stepped(&body, step), &ct("b", None), dir.path(), &limits)
            .await
            .err()
            .ok_or("expected an error")?;
        assert!(matches!(err, MimeError::PartTooLarge { .. }), "{err}");
        assert_eq!(files_in(dir.path()), vec![keep.clone()]);
    }
    Ok(())
}

/// Dropping the read (e.g. the request was cancelled) removes the files too.
#[tokio::test]
async fn no_leftover_files_after_cancellation() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let stream = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let path = dir.path().to_owned();
    let task =
        tokio::spawn(async move { read_multipart(stream, &ct("b", None), &path, &limits()).await });
    let head = format!("--b\r\n{ROOT}\r\n<x/>\r\n--b\r\n{}\r\n", att("a"));
    tx.send(Ok(Bytes::from(head))).await?;
    tx.send(Ok(Bytes::from(vec![9u8; 300_000]))).await?;
    let mut waited = 0;
    while files_in(dir.path()).is_empty() {
        waited += 1;
        assert!(waited < 5000, "the reader never created its file");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    task.abort();
    assert!(task.await.is_err_and(|e| e.is_cancelled()));
    assert!(files_in(dir.path()).is_empty());
    drop(tx);
    Ok(())
}
