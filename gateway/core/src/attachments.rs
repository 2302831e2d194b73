//! Attachments: received inline (base64 in `AttachmentContentList`) or as MTOM/XOP parts,
//! kept as files under `<data_dir>/attachments/` with their SHA-256 and size, never held
//! whole in memory, and deleted after Ack.
//!
//! Invariants:
//! - every file written for a call is removed if the call fails ([`FileGuard`]);
//! - the headers in the signed block (`AttachmentHeaderList`) and the contents must match
//!   one to one (`AttachmentContentMiscoordination` otherwise), so the signature's coverage
//!   of the headers extends to which contents travel;
//! - a file is referenced by the store from the commit that accepts its message until the
//!   Ack that deletes it; anything else in the directory is garbage ([`sweep`]).

use crate::envelope::XOP_NS;
use crate::error::ExchangeError;
use crate::exchange::{OutgoingFile, Settings};
use crate::xmlw::XmlWriter;
use base64::Engine as _;
use mezhved_dsig::smev_profile::BASIC_NS;
use mezhved_mime::ReceivedPart;
use mezhved_store::{Delivery, StoredAttachment};
use mezhved_xml::{Document, NodeId, NodeKind};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The attachment directory, relative to the data directory.
pub const DIR: &str = "attachments";

/// Removes the files it holds when dropped, unless disarmed.
#[derive(Debug, Default)]
pub struct FileGuard {
    paths: Vec<PathBuf>,
    armed: bool,
}

impl FileGuard {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        FileGuard { paths, armed: true }
    }
    pub fn add(&mut self, path: PathBuf) {
        self.paths.push(path);
    }
    /// The files now belong to the store.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for FileGuard {
    fn drop(&mut self) {
        if self.armed {
            for p in &self.paths {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// The attachments of one call, in the order of the signed headers.
#[derive(Debug, Default)]
pub struct IncomingAttachments {
    pub stored: Vec<StoredAttachment>,
}

impl IncomingAttachments {
    pub fn digests(&self) -> Vec<[u8; 32]> {
        self.stored.iter().map(|a| a.sha256).collect()
    }
    /// What the card records of each attachment: identity, size and checksum only.
    pub fn card_entries(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.stored
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "content_id": a.content_id,
                        "mime_type": a.mime_type,
                        "size": a.size,
                        "sha256": hex::encode(a.sha256),
                        "mtom": a.mtom,
                    })
                })
                .collect(),
        )
    }
}

fn children<'d>(
    doc: &'d Document,
    parent: NodeId,
    ns: &'d str,
    local: &'d str,
) -> impl Iterator<Item = NodeId> + 'd {
    doc.child_elements(parent)
        .filter(move |&c| doc.is_element(c, ns, local))
}

fn child(doc: &Document, parent: NodeId, ns: &str, local: &str) -> Option<NodeId> {
    children(doc, parent, ns, local).next()
}

fn pos(doc: &Document, id: NodeId) -> usize {
    doc.element(id).map(|e| e.span().start).unwrap_or(0)
}

/// A new, uniquely named file in the attachment directory.
fn new_file(data_dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let dir = data_dir.join(DIR);
    loop {
        let mut name = [0u8; 12];
        openssl::rand::rand_bytes(&mut name).map_err(std::io::Error::other)?;
        let path = dir.join(format!("inline-{}.bin", hex::encode(name)));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Path relative to the data directory, as the store keeps it.
fn relative(data_dir: &Path, path: &Path) -> Result<String, ExchangeError> {
    path.strip_prefix(data_dir)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|_| {
            ExchangeError::Internal(format!("{} is outside the data directory", path.display()))
        })
}

/// Decodes the base64 text of `content` into a file, a bounded chunk at a time.
fn decode_inline(
    doc: &Document,
    content: NodeId,
    settings: &Settings,
    guard: &mut FileGuard,
) -> Result<(PathBuf, u64, [u8; 32]), ExchangeError> {
    const CHUNK: usize = 64 * 1024;
    let (path, file) = new_file(&settings.data_dir)?;
    guard.add(path.clone());
    let mut out = std::io::BufWriter::new(file);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 4);
    let mut flush = |buf: &mut Vec<u8>, last: bool| -> Result<(), ExchangeError> {
        let take = if last { buf.len() } else { buf.len() / 4 * 4 };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&buf[..take])
            .map_err(|e| {
                ExchangeError::invalid(
                    pos(doc, content),
                    format!("attachment content is not base64: {e}"),
                )
            })?;
        size += decoded.len() as u64;
        if size > settings.max_attachment_bytes {
            return Err(ExchangeError::AttachmentSizeLimitExceeded {
                permitted: settings.max_attachment_bytes,
                real: size,
            });
        }
        hasher.update(&decoded);
        out.write_all(&decoded)?;
        buf.drain(..take);
        Ok(())
    };
    for c in doc.children(content) {
        if let NodeKind::Text(t) = doc.node(c).kind() {
            for b in t.bytes().filter(|b| !b.is_ascii_whitespace()) {
                buf.push(b);
                if buf.len() >= CHUNK {
                    flush(&mut buf, false)?;
                }
            }
        }
    }
    flush(&mut buf, true)?;
    let file = out
        .into_inner()
        .map_err(|e| ExchangeError::Internal(e.to_string()))?;
    file.sync_all()?;
    Ok((path, size, hasher.finalize().into()))
}

/// Matches the signed attachment headers with the contents (inline or MTOM parts) and
/// stores each as a file.
pub fn receive(
    doc: &Document,
    block: NodeId,
    content_list: Option<NodeId>,
    parts: &[ReceivedPart],
    settings: &Settings,
    guard: &mut FileGuard,
) -> Result<IncomingAttachments, ExchangeError> {
    let mut headers: Vec<(String, String, NodeId)> = Vec::new();
    if let Some(list) = child(doc, block, BASIC_NS, "AttachmentHeaderList") {
        for h in children(doc, list, BASIC_NS, "AttachmentHeader") {
            let id = child(doc, h, BASIC_NS, "contentId")
                .map(|e| doc.text(e).trim().to_string())
                .unwrap_or_default();
            let mime = child(doc, h, BASIC_NS, "MimeType")
                .map(|e| doc.text(e).trim().to_string())
                .unwrap_or_default();
            headers.push((id, mime, h));
        }
    }
    let mut contents: HashMap<String, NodeId> = HashMap::new();
    if let Some(list) = content_list {
        for c in children(doc, list, BASIC_NS, "AttachmentContent") {
            let id = child(doc, c, BASIC_NS, "Id")
                .map(|e| doc.text(e).trim().to_string())
                .unwrap_or_default();
            let content = child(doc, c, BASIC_NS, "Content").ok_or_else(|| {
                ExchangeError::invalid(
                    pos(doc, c),
                    format!("AttachmentContent \"{id}\" has no Content"),
                )
            })?;
            if contents.insert(id.clone(), content).is_some() {
                return Err(ExchangeError::AttachmentContentMiscoordination(format!(
                    "attachment content \"{id}\" appears twice"
                )));
            }
        }
    }
    let header_ids: HashSet<&str> = headers.iter().map(|(id, _, _)| id.as_str()).collect();
    if header_ids.len() != headers.len() {
        return Err(ExchangeError::AttachmentContentMiscoordination(
            "two attachment headers share a contentId".into(),
        ));
    }
    let content_ids: HashSet<&str> = contents.keys().map(String::as_str).collect();
    if header_ids != content_ids {
        let mut missing: Vec<&str> = header_ids.difference(&content_ids).copied().collect();
        let mut extra: Vec<&str> = content_ids.difference(&header_ids).copied().collect();
        missing.sort_unstable();
        extra.sort_unstable();
        return Err(ExchangeError::AttachmentContentMiscoordination(format!(
            "headers without content: {missing:?}; content without a header: {extra:?}"
        )));
    }
    let by_cid: HashMap<&str, &ReceivedPart> =
        parts.iter().map(|p| (p.content_id.as_str(), p)).collect();
    let mut used_parts: HashSet<&str> = HashSet::new();
    let mut stored = Vec::with_capacity(headers.len());
    let mut total = 0u64;
    for (id, mime, _) in &headers {
        let content = contents[id.as_str()];
        let include = child(doc, content, XOP_NS, "Include");
        let (path, size, sha256, mtom) = match include {
            Some(inc) => {
                let href = doc.attribute(inc, "", "href").unwrap_or_default();
                let cid = mezhved_mime::cid_from_href(href).ok_or_else(|| {
                    ExchangeError::invalid(
                        pos(doc, inc),
                        format!("xop:Include href \"{href}\" is not a cid: URL"),
                    )
                })?;
                let part = by_cid.get(cid.as_str()).ok_or_else(|| {
                    ExchangeError::AttachmentContentMiscoordination(format!(
                        "attachment \"{id}\" refers to MIME part <{cid}>, which the call does not carry"
                    ))
                })?;
                if !used_parts.insert(part.content_id.as_str()) {
                    return Err(ExchangeError::AttachmentContentMiscoordination(format!(
                        "MIME part <{cid}> is referenced twice"
                    )));
                }
                (part.path.clone(), part.size, part.sha256, true)
            }
            None => {
                let (path, size, sha) = decode_inline(doc, content, settings, guard)?;
                (path, size, sha, false)
            }
        };
        if size > settings.max_attachment_bytes {
            return Err(ExchangeError::AttachmentSizeLimitExceeded {
                permitted: settings.max_attachment_bytes,
                real: size,
            });
        }
        total += size;
        stored.push(StoredAttachment {
            content_id: id.clone(),
            mime_type: mime.clone(),
            size,
            sha256,
            path: relative(&settings.data_dir, &path)?,
            mtom,
        });
    }
    if total > settings.max_total_attachment_bytes {
        return Err(ExchangeError::AttachmentSizeLimitExceeded {
            permitted: settings.max_total_attachment_bytes,
            real: total,
        });
    }
    if let Some(unused) = parts
        .iter()
        .find(|p| !used_parts.contains(p.content_id.as_str()))
    {
        return Err(ExchangeError::AttachmentContentMiscoordination(format!(
            "MIME part <{}> is not referenced by any attachment",
            unused.content_id
        )));
    }
    Ok(IncomingAttachments { stored })
}

/// Makes the new directory entries durable before the commit that references them.
pub fn sync_dir(data_dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(data_dir.join(DIR))?.sync_all()
}

/// Writes the `AttachmentContentList` of a delivered message; returns the files to send
/// as MTOM parts (empty when everything went inline).
pub fn write_content_list(
    w: &mut XmlWriter,
    d: &Delivery,
    settings: &Settings,
) -> Result<Vec<OutgoingFile>, ExchangeError> {
    if d.attachments.is_empty() {
        return Ok(Vec::new());
    }
    let total: u64 = d.attachments.iter().map(|a| a.size).sum();
    let inline = d.attachments.iter().all(|a| !a.mtom) && total <= settings.inline_delivery_limit;
    let mut parts = Vec::new();
    w.open("ns2:AttachmentContentList", &[]);
    for a in &d.attachments {
        let path = settings.data_dir.join(&a.path);
        w.open("ns2:AttachmentContent", &[])
            .leaf("ns2:Id", &a.content_id)
            .open("ns2:Content", &[]);
        if inline {
            let mut bytes = Vec::with_capacity(a.size as usize);
            std::fs::File::open(&path)?.read_to_end(&mut bytes)?;
            w.text(&base64::engine::general_purpose::STANDARD.encode(&bytes));
        } else {
            w.empty(
                "xop:Include",
                &[
                    ("xmlns:xop", XOP_NS),
                    ("href", &mezhved_mime::href_from_cid(&a.content_id)),
                ],
            );
            parts.push(OutgoingFile {
                content_id: a.content_id.clone(),
                mime_type: a.mime_type.clone(),
                path,
            });
        }
        w.close("ns2:Content").close("ns2:AttachmentContent");
    }
    w.close("ns2:AttachmentContentList");
    Ok(parts)
}

/// Deletes acknowledged attachments' files (relative paths).
pub fn remove(data_dir: &Path, paths: &[String]) {
    for p in paths {
        if let Err(e) = std::fs::remove_file(data_dir.join(p)) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %p, error = %e, "cannot delete an acknowledged attachment");
            }
        }
    }
}

/// Deletes every file in the attachment directory the store does not reference (left by
/// a crash between receiving a file and committing, or between an Ack and the deletion).
pub fn sweep(data_dir: &Path, live: &[String]) -> std::io::Result<usize> {
    let live: HashSet<PathBuf> = live.iter().map(|p| data_dir.join(p)).collect();
    let mut removed = 0;
    let dir = data_dir.join(DIR);
    if !dir.exists() {
        return Ok(0);
    }
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.is_file() && !live.contains(&path) {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}
