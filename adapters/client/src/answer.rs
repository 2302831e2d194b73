//! Reading the gateway's answers: checking the gateway's signatures on them
//! (`SMEVSignature`, and the enveloped signature of the `mz:Registration` header) and
//! turning them into plain values (an accepted call, a delivered message, a status).
//!
//! Invariant: with a [`GatewayVerifier`], nothing is returned from an answer whose
//! gateway signature does not verify against the trust store, and — when a gateway
//! certificate is pinned — was not made with exactly that certificate. The signed element
//! is pinned by path, so a signature over some other element (signature wrapping) fails.

use crate::fault::CallError;
use crate::{datetime_parse, find, RequestCard, BASIC_NS, MZ_NS, SOAP11_NS, TYPES_NS};
use base64::Engine as _;
use bytes::Bytes;
use mezhved_dsig::trust::TrustStore;
use mezhved_dsig::xmldsig::{verify_document, Expectation};
use mezhved_xml::c14n::{canonicalize_to_vec, ExcC14nOptions};
use mezhved_xml::{Document, ElementPath, NodeId};
use openssl::x509::X509;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

const XOP_NS: &str = "http://www.w3.org/2004/08/xop/include";

/// Checks the gateway's signatures on its answers.
#[derive(Debug)]
pub struct GatewayVerifier {
    trust: TrustStore,
    /// DER of the one certificate the gateway signs with, when pinned.
    pinned: Option<Vec<u8>>,
}

impl GatewayVerifier {
    pub fn new(trust: TrustStore, gateway_certificate: Option<&X509>) -> Result<Self, CallError> {
        let pinned = match gateway_certificate {
            Some(c) => Some(c.to_der().map_err(|e| CallError::Local(e.to_string()))?),
            None => None,
        };
        Ok(GatewayVerifier { trust, pinned })
    }

    /// A trust-store directory (as the gateway's `[trust] dir`) and, optionally, the
    /// gateway's certificate (PEM) to pin.
    pub fn from_files(
        trust_dir: &Path,
        gateway_certificate: Option<&Path>,
    ) -> Result<Self, CallError> {
        let trust = TrustStore::from_dir(trust_dir)
            .map_err(|e| CallError::Local(format!("trust store {}: {e}", trust_dir.display())))?;
        let cert = match gateway_certificate {
            Some(p) => {
                let pem = std::fs::read(p)
                    .map_err(|e| CallError::Local(format!("{}: {e}", p.display())))?;
                Some(
                    X509::from_pem(&pem)
                        .map_err(|e| CallError::Local(format!("{}: {e}", p.display())))?,
                )
            }
            None => None,
        };
        GatewayVerifier::new(trust, cert.as_ref())
    }

    fn check(&self, doc: &Document, expect: &Expectation, at: SystemTime) -> Result<(), CallError> {
        let verified = verify_document(doc, expect, &self.trust, at)
            .map_err(|e| CallError::BadAnswer(format!("gateway signature: {e}")))?;
        if let Some(pinned) = &self.pinned {
            let der = verified
                .certificate
                .to_der()
                .map_err(|e| CallError::BadAnswer(e.to_string()))?;
            if &der != pinned {
                return Err(CallError::BadAnswer(format!(
                    "signed by \"{}\", not by the gateway's certificate",
                    verified.signer.subject
                )));
            }
        }
        Ok(())
    }

    /// Verifies the answer's `SMEVSignature` (where the answer has one) and its
    /// registration header (where present).
    pub fn verify(&self, doc: &Document, at: SystemTime) -> Result<(), CallError> {
        let body = body_path();
        let first = body
            .resolve(doc)
            .ok()
            .and_then(|b| doc.child_elements(b).next())
            .ok_or_else(|| CallError::BadAnswer("no SOAP body".into()))?;
        let name = doc
            .element(first)
            .map(|e| e.local_name().to_string())
            .unwrap_or_default();
        let wrapper = body.child(Some(TYPES_NS), &name);
        let signed = match name.as_str() {
            "SendRequestResponse" | "SendResponseResponse" => Some((
                wrapper.child(Some(TYPES_NS), "SMEVSignature"),
                wrapper.child(Some(TYPES_NS), "MessageMetadata"),
            )),
            "GetRequestResponse" | "GetResponseResponse" => {
                let (message, item) = if name == "GetRequestResponse" {
                    ("RequestMessage", "Request")
                } else {
                    ("ResponseMessage", "Response")
                };
                if doc
                    .child_elements(first)
                    .any(|c| doc.is_element(c, TYPES_NS, message))
                {
                    let m = wrapper.child(Some(TYPES_NS), message);
                    Some((
                        m.child(Some(TYPES_NS), "SMEVSignature"),
                        m.child(Some(TYPES_NS), item),
                    ))
                } else {
                    None
                }
            }
            "GetStatusResponse" => {
                if doc
                    .child_elements(first)
                    .any(|c| doc.is_element(c, TYPES_NS, "SmevAsyncProcessingMessage"))
                {
                    let m = wrapper.child(Some(TYPES_NS), "SmevAsyncProcessingMessage");
                    Some((
                        m.child(Some(TYPES_NS), "SMEVSignature"),
                        m.child(Some(TYPES_NS), "AsyncProcessingStatusData"),
                    ))
                } else {
                    None
                }
            }
            // Unsigned in SMEV 3: they carry nothing to act upon.
            "AckResponse" | "GetIncomingQueueStatisticsResponse" => None,
            other => {
                return Err(CallError::BadAnswer(format!(
                    "unexpected answer element {other}"
                )))
            }
        };
        if let Some((parent, target)) = signed {
            self.check(
                doc,
                &Expectation {
                    signature_parent: parent,
                    target: Some(target),
                },
                at,
            )?;
        }
        if find(doc, MZ_NS, "Registration").is_some() {
            let reg = ElementPath::new(vec![])
                .child(Some(SOAP11_NS), "Envelope")
                .child(Some(SOAP11_NS), "Header")
                .child(Some(MZ_NS), "Registration");
            self.check(
                doc,
                &Expectation {
                    signature_parent: reg.clone(),
                    target: Some(reg),
                },
                at,
            )?;
        }
        Ok(())
    }
}

fn body_path() -> ElementPath {
    ElementPath::new(vec![])
        .child(Some(SOAP11_NS), "Envelope")
        .child(Some(SOAP11_NS), "Body")
}

/// The `mz:Registration` header: the central registration of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub global_id: String,
    /// `algorithm` and base64 value.
    pub checksum: (String, String),
    pub received_at: String,
    /// The reply deadline of a request.
    pub due_at: Option<String>,
    /// The sender's own registration (number, date), from the request card.
    pub sender_registration: Option<(String, String)>,
    /// A response that came after its request's deadline.
    pub late: bool,
}

impl Registration {
    pub fn from_document(doc: &Document) -> Option<Registration> {
        let reg = find(doc, MZ_NS, "Registration")?;
        let child = |parent: NodeId, name: &str| {
            doc.child_elements(parent)
                .find(|&c| doc.is_element(c, MZ_NS, name))
        };
        let text = |parent: NodeId, name: &str| {
            child(parent, name).map(|c| doc.text(c).trim().to_string())
        };
        let checksum = child(reg, "Checksum")?;
        Some(Registration {
            global_id: text(reg, "GlobalId")?,
            checksum: (
                doc.attribute(checksum, "", "algorithm")
                    .unwrap_or_default()
                    .to_string(),
                doc.text(checksum).trim().to_string(),
            ),
            received_at: text(reg, "ReceivedAt").unwrap_or_default(),
            due_at: text(reg, "DueAt"),
            sender_registration: child(reg, "SenderRegistration")
                .and_then(|s| Some((text(s, "Number")?, text(s, "Date")?))),
            late: text(reg, "Late").as_deref() == Some("true"),
        })
    }
}

/// A SendRequest/SendResponse the gateway accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The gateway's global ID (`MessageMetadata/MessageId`).
    pub global_id: String,
    /// `MessageMetadata/Status` (e.g. `requestIsQueued`).
    pub status: String,
    pub registration: Option<Registration>,
}

impl Accepted {
    pub fn from_document(doc: &Document) -> Result<Accepted, CallError> {
        let md = find(doc, TYPES_NS, "MessageMetadata")
            .ok_or_else(|| CallError::BadAnswer("no MessageMetadata in the answer".into()))?;
        let text = |name: &str| {
            doc.child_elements(md)
                .find(|&c| doc.is_element(c, TYPES_NS, name))
                .map(|c| doc.text(c).trim().to_string())
        };
        Ok(Accepted {
            global_id: text("MessageId")
                .ok_or_else(|| CallError::BadAnswer("no MessageId in the answer".into()))?,
            status: text("Status").unwrap_or_default(),
            registration: Registration::from_document(doc),
        })
    }
}

/// What a delivered message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// `MessagePrimaryContent`: the business element, as standalone canonical XML.
    Data(String),
    /// `RequestRejected`.
    Rejection { code: String, description: String },
    /// `RequestStatus` (an intermediate status, e.g. 2 = clarification needed).
    Status {
        code: i32,
        description: String,
        parameters: Vec<(String, String)>,
    },
}

/// Where a received attachment's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentData {
    Bytes(Bytes),
    /// An MTOM part streamed into a file ([`crate::Client::call_to_dir`]).
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedAttachment {
    pub content_id: String,
    pub mime_type: String,
    pub data: AttachmentData,
}

/// Which queue a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

/// A request or response delivered by GetRequest/GetResponse (or pushed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub direction: Direction,
    /// The gateway's global ID: what the Ack names.
    pub global_id: String,
    pub sender_system: String,
    pub sender_name: String,
    /// The sender's own MessageID.
    pub message_id: String,
    /// Requests: what the response's `To` must be.
    pub reply_to: Option<String>,
    /// Responses: the MessageID of the request answered.
    pub original_message_id: Option<String>,
    pub reference_message_id: Option<String>,
    /// The kind's human-readable name (`DetectedContentTypeName`).
    pub kind_name: Option<String>,
    pub content: Content,
    /// The request card, when the request carried one.
    pub card: Option<RequestCard>,
    pub attachments: Vec<ReceivedAttachment>,
    pub registration: Option<Registration>,
    pub test: bool,
}

impl Incoming {
    /// The message in a Get…Response (or a pushed one); `None` when the queue was empty.
    /// `parts` are the MTOM parts of the answer; `parts_are_paths` when they were
    /// streamed to files.
    pub fn from_document(
        doc: &Document,
        parts: &[(String, Bytes)],
        parts_are_paths: bool,
    ) -> Result<Option<Incoming>, CallError> {
        let bad = |m: &str| CallError::BadAnswer(m.to_string());
        let (direction, message, item, block) =
            if let Some(m) = find(doc, TYPES_NS, "RequestMessage") {
                (
                    Direction::Request,
                    m,
                    "Request",
                    "SenderProvidedRequestData",
                )
            } else if let Some(m) = find(doc, TYPES_NS, "ResponseMessage") {
                (
                    Direction::Response,
                    m,
                    "Response",
                    "SenderProvidedResponseData",
                )
            } else {
                return Ok(None);
            };
        let child = |parent: NodeId, ns: &str, name: &str| {
            doc.child_elements(parent)
                .find(|&c| doc.is_element(c, ns, name))
        };
        let text = |parent: NodeId, ns: &str, name: &str| {
            child(parent, ns, name).map(|c| doc.text(c).trim().to_string())
        };
        let item =
            child(message, TYPES_NS, item).ok_or_else(|| bad("no Request/Response element"))?;
        let block = child(item, TYPES_NS, block).ok_or_else(|| bad("no sender block"))?;
        let md =
            child(item, TYPES_NS, "MessageMetadata").ok_or_else(|| bad("no MessageMetadata"))?;
        let global_id = text(md, TYPES_NS, "MessageId").ok_or_else(|| bad("no MessageId"))?;
        let sender = child(md, TYPES_NS, "Sender");
        let content = if let Some(primary) = child(block, BASIC_NS, "MessagePrimaryContent") {
            let el = doc
                .child_elements(primary)
                .next()
                .ok_or_else(|| bad("empty MessagePrimaryContent"))?;
            let xml = canonicalize_to_vec(doc, el, &ExcC14nOptions::default());
            Content::Data(String::from_utf8(xml).map_err(|_| bad("content is not UTF-8"))?)
        } else if let Some(r) = child(block, TYPES_NS, "RequestRejected") {
            Content::Rejection {
                code: text(r, TYPES_NS, "RejectionReasonCode").unwrap_or_default(),
                description: text(r, TYPES_NS, "RejectionReasonDescription").unwrap_or_default(),
            }
        } else if let Some(s) = child(block, TYPES_NS, "RequestStatus") {
            Content::Status {
                code: text(s, TYPES_NS, "StatusCode")
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| bad("a RequestStatus without a numeric StatusCode"))?,
                description: text(s, TYPES_NS, "StatusDescription").unwrap_or_default(),
                parameters: doc
                    .child_elements(s)
                    .filter(|&c| doc.is_element(c, TYPES_NS, "StatusParameter"))
                    .map(|p| {
                        (
                            text(p, TYPES_NS, "Key").unwrap_or_default(),
                            text(p, TYPES_NS, "Value").unwrap_or_default(),
                        )
                    })
                    .collect(),
            }
        } else {
            return Err(bad("the message carries no content, rejection or status"));
        };
        let card = find(doc, MZ_NS, "RequestCard").map(|c| RequestCard::from_document(doc, c));
        // Headers (in the signed block) give the MIME types; the content list the bytes.
        let mut mime: Vec<(String, String)> = Vec::new();
        if let Some(list) = child(block, BASIC_NS, "AttachmentHeaderList") {
            for h in doc.child_elements(list) {
                mime.push((
                    text(h, BASIC_NS, "contentId").unwrap_or_default(),
                    text(h, BASIC_NS, "MimeType").unwrap_or_default(),
                ));
            }
        }
        let mut attachments = Vec::new();
        if let Some(list) = child(message, BASIC_NS, "AttachmentContentList") {
            for a in doc.child_elements(list) {
                let id = text(a, BASIC_NS, "Id").unwrap_or_default();
                let content = child(a, BASIC_NS, "Content")
                    .ok_or_else(|| bad("attachment without Content"))?;
                let data = if let Some(inc) = child(content, XOP_NS, "Include") {
                    let href = doc.attribute(inc, "", "href").unwrap_or_default();
                    let cid = mezhved_mime::cid_from_href(href).ok_or_else(|| {
                        CallError::BadAnswer(format!("xop:Include href {href} is not a cid: URL"))
                    })?;
                    let (_, bytes) = parts
                        .iter()
                        .find(|(c, _)| *c == cid)
                        .ok_or_else(|| CallError::BadAnswer(format!("no MTOM part {cid}")))?;
                    if parts_are_paths {
                        AttachmentData::File(PathBuf::from(
                            String::from_utf8_lossy(bytes).into_owned(),
                        ))
                    } else {
                        AttachmentData::Bytes(bytes.clone())
                    }
                } else {
                    let b64: String = doc.text(content).split_whitespace().collect();
                    AttachmentData::Bytes(Bytes::from(
                        base64::engine::general_purpose::STANDARD
                            .decode(b64)
                            .map_err(|e| CallError::BadAnswer(format!("attachment {id}: {e}")))?,
                    ))
                };
                let mime_type = mime
                    .iter()
                    .find(|(c, _)| *c == id)
                    .map(|(_, m)| m.clone())
                    .unwrap_or_else(|| "application/octet-stream".into());
                attachments.push(ReceivedAttachment {
                    content_id: id,
                    mime_type,
                    data,
                });
            }
        }
        Ok(Some(Incoming {
            direction,
            global_id,
            sender_system: sender
                .and_then(|s| text(s, TYPES_NS, "Mnemonic"))
                .unwrap_or_default(),
            sender_name: sender
                .and_then(|s| text(s, TYPES_NS, "HumanReadableName"))
                .unwrap_or_default(),
            message_id: text(block, TYPES_NS, "MessageID").unwrap_or_default(),
            reply_to: text(item, TYPES_NS, "ReplyTo"),
            original_message_id: text(item, TYPES_NS, "OriginalMessageId"),
            reference_message_id: text(block, TYPES_NS, "ReferenceMessageID"),
            kind_name: child(md, TYPES_NS, "SupplementaryData")
                .and_then(|s| text(s, TYPES_NS, "DetectedContentTypeName")),
            content,
            card,
            attachments,
            registration: Registration::from_document(doc),
            test: child(block, TYPES_NS, "TestMessage").is_some(),
        }))
    }
}

/// A processing status from GetStatus (the gateway's own: delivered, reminder, overdue,
/// expired, rejected…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusMessage {
    /// The MessageID of the message the status is about.
    pub original_message_id: String,
    pub category: String,
    pub details: String,
    pub timestamp: Option<SystemTime>,
}

impl StatusMessage {
    pub fn from_document(doc: &Document) -> Option<StatusMessage> {
        let s = find(doc, TYPES_NS, "AsyncProcessingStatus")?;
        let text = |name: &str| {
            doc.child_elements(s)
                .find(|&c| {
                    doc.element(c)
                        .map(|e| e.local_name() == name)
                        .unwrap_or(false)
                })
                .map(|c| doc.text(c).trim().to_string())
        };
        Some(StatusMessage {
            original_message_id: text("OriginalMessageId").unwrap_or_default(),
            category: text("StatusCategory").unwrap_or_default(),
            details: text("StatusDetails").unwrap_or_default(),
            timestamp: text("Timestamp").and_then(|t| datetime_parse(&t)),
        })
    }
}

impl RequestCard {
    /// Reads an `mz:RequestCard` element (what [`RequestCard::to_xml`] writes).
    pub fn from_document(doc: &Document, card: NodeId) -> RequestCard {
        let child = |parent: NodeId, name: &str| {
            doc.child_elements(parent)
                .find(|&c| doc.is_element(c, MZ_NS, name))
        };
        let text = |parent: NodeId, name: &str| {
            child(parent, name).map(|c| doc.text(c).trim().to_string())
        };
        let all = |parent: NodeId, name: &str| {
            doc.child_elements(parent)
                .filter(|&c| doc.is_element(c, MZ_NS, name))
                .collect::<Vec<_>>()
        };
        let service = child(card, "Service");
        let official = child(card, "Official");
        RequestCard {
            sender_agency: text(card, "SenderAgency"),
            recipient_agency: text(card, "RecipientAgency"),
            service_name: service.and_then(|s| text(s, "Name")),
            service_registry_number: service.and_then(|s| text(s, "RegistryNumber")),
            legal_basis: all(card, "LegalBasis")
                .into_iter()
                .map(|b| {
                    (
                        text(b, "Act").unwrap_or_default(),
                        text(b, "Provision").unwrap_or_default(),
                    )
                })
                .collect(),
            search_details: child(card, "SearchDetails")
                .map(|d| {
                    all(d, "Detail")
                        .into_iter()
                        .map(|x| {
                            (
                                doc.attribute(x, "", "name").unwrap_or_default().to_string(),
                                doc.text(x).trim().to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            reply_contact: text(card, "ReplyContact"),
            sent_on: text(card, "SentOn"),
            official_name: official.and_then(|o| text(o, "FullName")),
            official_position: official.and_then(|o| text(o, "Position")),
            official_phone: official.and_then(|o| text(o, "Phone")),
            official_email: official.and_then(|o| text(o, "Email")),
            consent: child(card, "SubjectConsent")
                .and_then(|c| text(c, "Obtained"))
                .map(|v| v == "true" || v == "1"),
            sender_registration: child(card, "SenderRegistration")
                .and_then(|s| Some((text(s, "Number")?, text(s, "Date")?))),
            restricted: child(card, "AccessRestriction").is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mezhved_xml::{parse, Limits};

    #[test]
    fn a_card_reads_back_what_it_wrote() {
        let mut card = RequestCard::complete("USZN", "ZAGS", "2026-12-01", "USZN-1 & <2>");
        card.restricted = true;
        card.search_details
            .push(("snils".into(), "112-233-445 95".into()));
        let xml = card.to_xml();
        let doc = parse(xml.as_bytes(), &Limits::default()).expect("parses");
        assert_eq!(RequestCard::from_document(&doc, doc.root()), card);
    }
}
