//! Helpers shared by the integration tests.
#![allow(dead_code)]

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use mezhved_mime::{Multipart, ReadLimits, RelatedContentType};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub fn ct(boundary: &str, start: Option<&str>) -> RelatedContentType {
    RelatedContentType {
        boundary: boundary.to_owned(),
        start: start.map(str::to_owned),
        type_: Some("application/xop+xml".to_owned()),
        start_info: Some("text/xml".to_owned()),
    }
}

pub fn limits() -> ReadLimits {
    ReadLimits {
        max_root_bytes: 1 << 20,
        max_part_bytes: 16 << 20,
        max_total_bytes: 64 << 20,
        max_parts: 16,
        sync_files: false,
    }
}

/// The body as a stream of the given chunks.
pub fn chunked(
    body: &[u8],
    cuts: &[usize],
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
    let mut points: Vec<usize> = cuts.iter().map(|&c| c.min(body.len())).collect();
    points.push(0);
    points.push(body.len());
    points.sort_unstable();
    points.dedup();
    let chunks: Vec<Bytes> = points
        .windows(2)
        .map(|w| Bytes::copy_from_slice(&body[w[0]..w[1]]))
        .collect();
    futures_util::stream::iter(chunks.into_iter().map(Ok))
}

/// The body in `step`-byte chunks.
pub fn stepped(
    body: &[u8],
    step: usize,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
    let cuts: Vec<usize> = (1..body.len()).step_by(step.max(1)).collect();
    chunked(body, &cuts)
}

pub fn one_chunk(body: &[u8]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
    chunked(body, &[])
}

pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub async fn collect<S>(mut stream: S) -> std::io::Result<Vec<u8>>
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// One part as (content-id, content-type, bytes).
pub type PartContent = (Option<String>, String, Vec<u8>);

/// Content of every part, root first, checking each file's size and SHA-256.
pub fn contents(m: &Multipart) -> std::io::Result<Vec<PartContent>> {
    let mut out = vec![(
        m.root_content_id.clone(),
        m.root_content_type.clone(),
        m.root.to_vec(),
    )];
    for p in &m.parts {
        let data = std::fs::read(&p.path)?;
        assert_eq!(data.len() as u64, p.size, "size of {}", p.content_id);
        assert_eq!(sha256(&data), p.sha256, "sha256 of {}", p.content_id);
        out.push((Some(p.content_id.clone()), p.content_type.clone(), data));
    }
    Ok(out)
}

/// A multipart body built by hand: `parts` as (headers, data); the boundary `b`.
pub fn body(preamble: &[u8], b: &str, parts: &[(&str, &[u8])], epilogue: &[u8]) -> Vec<u8> {
    let mut out = preamble.to_vec();
    for (i, (headers, data)) in parts.iter().enumerate() {
        if i > 0 || !preamble.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{b}\r\n{headers}\r\n").as_bytes());
        out.extend_from_slice(data);
    }
    out.extend_from_slice(format!("\r\n--{b}--").as_bytes());
    out.extend_from_slice(epilogue);
    out
}
