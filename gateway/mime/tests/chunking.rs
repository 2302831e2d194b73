//! Property: the reader's result does not depend on how the body is split into chunks,
//! and, when the generated parts are valid MIME (no delimiter inside), it is exactly
//! what was generated — including parts full of near-delimiter strings.

mod common;

use common::*;
use mezhved_mime::{read_multipart, Multipart, ReadLimits};
use proptest::prelude::*;
use std::path::Path;

const BOUNDARIES: [&str; 4] = [
    "b",
    "b0undary-X",
    "MIMEBoundary_0123456789abcdef",
    "uuid:0ca0e16e-feb1-426c-97d8-c4508ada5e82",
];

/// A fragment recipe: kind, random bytes, a length.
type Recipe = (u8, Vec<u8>, usize);

fn fragment((kind, random, n): &Recipe, b: &str) -> Vec<u8> {
    let delim = format!("\r\n--{b}");
    let dash = format!("--{b}");
    let bytes: Vec<u8> = match kind % 14 {
        0 | 1 => return random.clone(),
        2 => delim.as_bytes()[..n % delim.len()].to_vec(),
        3 => dash.clone().into_bytes(),
        4 => b.as_bytes().to_vec(),
        5 => format!("{delim}X").into_bytes(),
        6 => format!("{delim}-z").into_bytes(),
        7 => format!("{delim} \tz").into_bytes(),
        8 => b"\r".to_vec(),
        9 => b"\n".to_vec(),
        10 => b"\r\n".to_vec(),
        11 => b"-".to_vec(),
        // Transport padding beyond the recognised maximum: data, not a delimiter.
        12 => format!("{delim}{}\r\n", " ".repeat(70)).into_bytes(),
        _ => dash.as_bytes()[..n % dash.len()].to_vec(),
    };
    bytes
}

fn recipes() -> impl Strategy<Value = Vec<Recipe>> {
    prop::collection::vec(
        (
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..120),
            any::<usize>(),
        ),
        0..8,
    )
}

/// The reference rule: does `after` (what follows `--boundary`) make it a delimiter?
fn is_delimiter_tail(after: &[u8]) -> bool {
    if after.starts_with(b"--") {
        return true;
    }
    let pad = after
        .iter()
        .take_while(|&&c| c == b' ' || c == b'\t')
        .count();
    pad <= 64 && (after[pad..].starts_with(b"\r\n") || after[pad..].starts_with(b"\n"))
}

/// Whether `data`, followed by the real delimiter, contains no delimiter of its own.
fn data_is_clean(data: &[u8], b: &str) -> bool {
    let dash = format!("--{b}");
    let mut follow = data.to_vec();
    follow.extend_from_slice(format!("\r\n{dash}\r\n").as_bytes());
    if follow.starts_with(dash.as_bytes()) && is_delimiter_tail(&follow[dash.len()..]) {
        return false;
    }
    let delim = format!("\r\n{dash}");
    memchr::memmem::find_iter(&follow, delim.as_bytes())
        .take_while(|&i| i < data.len())
        .all(|i| !is_delimiter_tail(&follow[i + delim.len()..]))
}

/// Everything observable about an outcome, file contents included, paths excluded.
fn summary(result: Result<Multipart, mezhved_mime::MimeError>) -> String {
    match result {
        Err(e) => format!("error {e:?}"),
        Ok(m) => match contents(&m) {
            Ok(c) => format!("ok {c:?}"),
            Err(e) => format!("could not read the files: {e}"),
        },
    }
}

async fn run(body: &[u8], cuts: &[usize], start: Option<&str>, b: &str, dir: &Path) -> String {
    let limits = ReadLimits {
        max_parts: 64,
        ..limits()
    };
    let result = read_multipart(chunked(body, cuts), &ct(b, start), dir, &limits).await;
    let s = summary(result);
    for f in files_in(dir) {
        let _ = std::fs::remove_file(f);
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        // Integration tests have no lib.rs for proptest to file regressions next to.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn chunking_does_not_matter(
        b_index in 0..BOUNDARIES.len(),
        preamble in recipes(),
        parts in prop::collection::vec(recipes(), 1..5),
        root_pick in any::<usize>(),
        with_start in any::<bool>(),
        epilogue in prop::collection::vec(any::<u8>(), 0..50),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let b = BOUNDARIES[b_index];
        let dash = format!("--{b}");
        let preamble: Vec<u8> = preamble.iter().flat_map(|r| fragment(r, b)).collect();
        let datas: Vec<Vec<u8>> = parts
            .iter()
            .map(|p| p.iter().flat_map(|r| fragment(r, b)).collect())
            .collect();
        let root = if with_start { root_pick % datas.len() } else { 0 };

        let mut body = preamble.clone();
        if !preamble.is_empty() {
            body.extend_from_slice(b"\r\n");
        }
        for (i, data) in datas.iter().enumerate() {
            if i > 0 {
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(
                format!("{dash}\r\nContent-ID: <p{i}>\r\nContent-Type: t/{i}\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(data);
        }
        body.extend_from_slice(format!("\r\n{dash}--").as_bytes());
        body.extend_from_slice(&epilogue);
        body.extend_from_slice(format!("\r\n{dash}\r\nmore").as_bytes());

        let cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        let start = with_start.then(|| format!("p{root}"));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let dir = tempfile::tempdir()?;
        let (whole, random_cuts, bytewise) = rt.block_on(async {
            let whole = run(&body, &[], start.as_deref(), b, dir.path()).await;
            let random_cuts = run(&body, &cuts, start.as_deref(), b, dir.path()).await;
            let all: Vec<usize> = (1..body.len()).collect();
            let bytewise = run(&body, &all, start.as_deref(), b, dir.path()).await;
            (whole, random_cuts, bytewise)
        });
        prop_assert_eq!(&whole, &random_cuts);
        prop_assert_eq!(&whole, &bytewise);

        let preamble_clean = memchr::memmem::find(&body, dash.as_bytes()) == Some(
            preamble.len() + if preamble.is_empty() { 0 } else { 2 },
        );
        if preamble_clean && datas.iter().all(|d| data_is_clean(d, b)) {
            let mut expected = vec![(Some(format!("p{root}")), format!("t/{root}"), datas[root].clone())];
            for (i, data) in datas.iter().enumerate().filter(|&(i, _)| i != root) {
                expected.push((Some(format!("p{i}")), format!("t/{i}"), data.clone()));
            }
            prop_assert_eq!(whole, format!("ok {expected:?}"));
        }
    }
}
