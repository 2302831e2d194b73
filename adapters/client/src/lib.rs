//! The agency side of SMEV 3 calls: envelope builders for every operation, signing with
//! the information system's key (`CallerInformationSystemSignature`), an HTTP client that
//! sends plain or MTOM calls, and a reader for the gateway's answers and faults.
//!
//! Invariant: the builders write exactly the element order and namespaces of the SMEV 3
//! 1.1 schemas, so what they produce validates against them; time and MessageIDs are
//! given by the caller (tests pin them).

#![forbid(unsafe_code)]

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use mezhved_dsig::smev_profile;
pub use mezhved_dsig::smev_profile::{BASIC_NS, SOAP11_NS, TYPES_NS};
use mezhved_dsig::xmldsig::Signer;
use mezhved_xml::{parse, Document, Limits, NodeId};
use std::path::Path;
use std::pin::Pin;
use std::time::SystemTime;
use uuid::Uuid;

pub const MZ_NS: &str = "urn://mezhved/ext/1.0";
pub const FAULTS_NS: &str =
    "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/faults/1.1";
const XOP_NS: &str = "http://www.w3.org/2004/08/xop/include";

pub mod answer;
pub mod fault;
pub mod provider;
pub mod system;

pub use answer::{
    Accepted, AttachmentData, Content, Direction, GatewayVerifier, Incoming, ReceivedAttachment,
    Registration, StatusMessage,
};
pub use fault::{CallError, FaultCode, SmevFault};
pub use system::SystemClient;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("signing: {0}")]
    Sign(#[from] mezhved_dsig::error::DsigError),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("answer: {0}")]
    Answer(String),
}

/// A transport failure, with what TCP or TLS said when connecting failed.
fn transport_error(e: hyper_util::client::legacy::Error) -> ClientError {
    match std::error::Error::source(&e).and_then(mezhved_net::connect_error) {
        Some(c) if c.is_tls() => ClientError::Http(format!("TLS: {}", c.message())),
        Some(c) => ClientError::Http(c.message().to_string()),
        None => ClientError::Http(mezhved_net::error_chain(&e)),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Reads an `xs:dateTime` with a zone (as the gateway writes them).
pub fn datetime_parse(s: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| SystemTime::from(d.with_timezone(&chrono::Utc)))
}

/// `xs:dateTime` (UTC, milliseconds).
pub fn datetime(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A MessageID: UUID version 1 with the time `at` and a random node.
pub fn message_id(at: SystemTime) -> Uuid {
    let d = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, d.as_secs(), d.subsec_nanos());
    let random = Uuid::new_v4();
    let mut node = [0u8; 6];
    node.copy_from_slice(&random.as_bytes()[10..16]);
    node[0] |= 0x01;
    let mut id = *Uuid::new_v1(ts, &node).as_bytes();
    // Clock sequence from the random UUID too, so two IDs in one tick differ.
    id[8] = (id[8] & 0xC0) | (random.as_bytes()[8] & 0x3F);
    id[9] = random.as_bytes()[9];
    Uuid::from_bytes(id)
}

/// The request card (210-FZ art. 7.2) as `mz:RequestCard` XML; fields are public so tests
/// can break them one at a time.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestCard {
    pub sender_agency: Option<String>,
    pub recipient_agency: Option<String>,
    pub service_name: Option<String>,
    pub service_registry_number: Option<String>,
    pub legal_basis: Vec<(String, String)>,
    pub search_details: Vec<(String, String)>,
    pub reply_contact: Option<String>,
    pub sent_on: Option<String>,
    pub official_name: Option<String>,
    pub official_position: Option<String>,
    pub official_phone: Option<String>,
    pub official_email: Option<String>,
    pub consent: Option<bool>,
    pub sender_registration: Option<(String, String)>,
    pub restricted: bool,
}

impl RequestCard {
    /// A complete card dated `sent_on` (YYYY-MM-DD).
    pub fn complete(
        sender_agency: &str,
        recipient_agency: &str,
        sent_on: &str,
        registration_number: &str,
    ) -> Self {
        RequestCard {
            sender_agency: Some(sender_agency.into()),
            recipient_agency: Some(recipient_agency.into()),
            service_name: Some("Assignment of the monthly child allowance".into()),
            service_registry_number: Some("4200000000161370001".into()),
            legal_basis: vec![(
                "Federal Law of 27.07.2010 No. 210-FZ".into(),
                "art. 7.2 part 1".into(),
            )],
            search_details: vec![
                ("surname".into(), "Ivanova".into()),
                ("birth_date".into(), "2019-05-14".into()),
            ],
            reply_contact: Some("uszn@example.gov.ru".into()),
            sent_on: Some(sent_on.into()),
            official_name: Some("Petrova Anna Sergeevna".into()),
            official_position: Some("Chief specialist".into()),
            official_phone: Some("+7 (3842) 00-00-00".into()),
            official_email: Some("petrova@example.gov.ru".into()),
            consent: Some(true),
            sender_registration: Some((registration_number.into(), sent_on.into())),
            restricted: false,
        }
    }

    pub fn to_xml(&self) -> String {
        let mut s = format!("<mz:RequestCard xmlns:mz=\"{MZ_NS}\">");
        let leaf = |s: &mut String, name: &str, v: &Option<String>| {
            if let Some(v) = v {
                s.push_str(&format!("<mz:{name}>{}</mz:{name}>", esc(v)));
            }
        };
        leaf(&mut s, "SenderAgency", &self.sender_agency);
        leaf(&mut s, "RecipientAgency", &self.recipient_agency);
        if self.service_name.is_some() || self.service_registry_number.is_some() {
            s.push_str("<mz:Service>");
            leaf(&mut s, "Name", &self.service_name);
            leaf(&mut s, "RegistryNumber", &self.service_registry_number);
            s.push_str("</mz:Service>");
        }
        for (act, provision) in &self.legal_basis {
            s.push_str(&format!(
                "<mz:LegalBasis><mz:Act>{}</mz:Act><mz:Provision>{}</mz:Provision></mz:LegalBasis>",
                esc(act),
                esc(provision)
            ));
        }
        if !self.search_details.is_empty() {
            s.push_str("<mz:SearchDetails>");
            for (n, v) in &self.search_details {
                s.push_str(&format!(
                    "<mz:Detail name=\"{}\">{}</mz:Detail>",
                    esc(n),
                    esc(v)
                ));
            }
            s.push_str("</mz:SearchDetails>");
        }
        leaf(&mut s, "ReplyContact", &self.reply_contact);
        leaf(&mut s, "SentOn", &self.sent_on);
        if self.official_name.is_some() || self.official_position.is_some() {
            s.push_str("<mz:Official>");
            leaf(&mut s, "FullName", &self.official_name);
            leaf(&mut s, "Position", &self.official_position);
            leaf(&mut s, "Phone", &self.official_phone);
            leaf(&mut s, "Email", &self.official_email);
            s.push_str("</mz:Official>");
        }
        if let Some(c) = self.consent {
            s.push_str(&format!(
                "<mz:SubjectConsent><mz:Obtained>{c}</mz:Obtained></mz:SubjectConsent>"
            ));
        }
        if let Some((n, d)) = &self.sender_registration {
            s.push_str(&format!(
                "<mz:SenderRegistration><mz:Number>{}</mz:Number><mz:Date>{}</mz:Date></mz:SenderRegistration>",
                esc(n),
                esc(d)
            ));
        }
        if self.restricted {
            s.push_str("<mz:AccessRestriction>restricted</mz:AccessRestriction>");
        }
        s.push_str("</mz:RequestCard>");
        s
    }
}

/// An attachment to send.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub content_id: String,
    pub mime_type: String,
    pub data: Bytes,
    /// As an MTOM part (otherwise inline base64).
    pub mtom: bool,
}

/// A call ready to send: the (signed) envelope and its MTOM parts.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub envelope: Vec<u8>,
    pub parts: Vec<(String, String, Bytes)>,
}

fn envelope(body: &str) -> String {
    format!(
        "<soap:Envelope xmlns:soap=\"{SOAP11_NS}\" xmlns:ns=\"{TYPES_NS}\" xmlns:ns2=\"{BASIC_NS}\"><soap:Header/><soap:Body>{body}</soap:Body></soap:Envelope>"
    )
}

fn envelope_with_header(header: &str, body: &str) -> String {
    format!(
        "<soap:Envelope xmlns:soap=\"{SOAP11_NS}\" xmlns:ns=\"{TYPES_NS}\" xmlns:ns2=\"{BASIC_NS}\"><soap:Header>{header}</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
    )
}

fn attachment_xml(attachments: &[Attachment]) -> (String, String, Vec<(String, String, Bytes)>) {
    if attachments.is_empty() {
        return (String::new(), String::new(), Vec::new());
    }
    let mut headers = String::from("<ns2:AttachmentHeaderList>");
    let mut contents = String::from("<ns2:AttachmentContentList>");
    let mut parts = Vec::new();
    for a in attachments {
        headers.push_str(&format!(
            "<ns2:AttachmentHeader><ns2:contentId>{}</ns2:contentId><ns2:MimeType>{}</ns2:MimeType></ns2:AttachmentHeader>",
            esc(&a.content_id),
            esc(&a.mime_type)
        ));
        contents.push_str(&format!(
            "<ns2:AttachmentContent><ns2:Id>{}</ns2:Id><ns2:Content>",
            esc(&a.content_id)
        ));
        if a.mtom {
            contents.push_str(&format!(
                "<xop:Include xmlns:xop=\"{XOP_NS}\" href=\"{}\"/>",
                esc(&mezhved_mime::href_from_cid(&a.content_id))
            ));
            parts.push((a.content_id.clone(), a.mime_type.clone(), a.data.clone()));
        } else {
            contents.push_str(&base64::engine::general_purpose::STANDARD.encode(&a.data));
        }
        contents.push_str("</ns2:Content></ns2:AttachmentContent>");
    }
    headers.push_str("</ns2:AttachmentHeaderList>");
    contents.push_str("</ns2:AttachmentContentList>");
    (headers, contents, parts)
}

/// What a SendRequest carries.
#[derive(Debug, Clone)]
pub struct Request {
    pub message_id: Uuid,
    /// The business content: one element in the kind's namespace.
    pub content: String,
    /// `mz:RequestCard` XML (or anything else for BusinessProcessMetadata), if any.
    pub card: Option<String>,
    pub attachments: Vec<Attachment>,
    pub reference_message_id: Option<Uuid>,
    pub eol: Option<SystemTime>,
    pub test: bool,
}

/// An unsigned SendRequest.
pub fn send_request(r: &Request) -> Outgoing {
    let (headers, contents, parts) = attachment_xml(&r.attachments);
    let mut block = format!(
        "<ns:SenderProvidedRequestData Id=\"SIGNED_BY_CONSUMER\"><ns:MessageID>{}</ns:MessageID>",
        r.message_id
    );
    if let Some(re) = r.reference_message_id {
        block.push_str(&format!(
            "<ns:ReferenceMessageID>{re}</ns:ReferenceMessageID>"
        ));
    }
    if let Some(eol) = r.eol {
        block.push_str(&format!("<ns:EOL>{}</ns:EOL>", datetime(eol)));
    }
    block.push_str(&format!(
        "<ns2:MessagePrimaryContent>{}</ns2:MessagePrimaryContent>",
        r.content
    ));
    block.push_str(&headers);
    if let Some(card) = &r.card {
        block.push_str(&format!(
            "<ns:BusinessProcessMetadata>{card}</ns:BusinessProcessMetadata>"
        ));
    }
    if r.test {
        block.push_str("<ns:TestMessage/>");
    }
    block.push_str("</ns:SenderProvidedRequestData>");
    let body = format!(
        "<ns:SendRequestRequest>{block}{contents}<ns:CallerInformationSystemSignature/></ns:SendRequestRequest>"
    );
    Outgoing {
        envelope: envelope(&body).into_bytes(),
        parts,
    }
}

/// What a SendResponse carries.
#[derive(Debug, Clone)]
pub enum ResponseContent {
    Data(String),
    Rejection {
        code: String,
        description: String,
    },
    Status {
        code: i32,
        description: String,
        parameters: Vec<(String, String)>,
    },
}

/// An unsigned SendResponse to the request whose `ReplyTo` was `to`.
pub fn send_response(
    message_id: Uuid,
    to: &str,
    content: &ResponseContent,
    attachments: &[Attachment],
) -> Outgoing {
    let (headers, contents, parts) = attachment_xml(attachments);
    let mut block = format!(
        "<ns:SenderProvidedResponseData Id=\"SIGNED_BY_PROVIDER\"><ns:MessageID>{message_id}</ns:MessageID><ns:To>{}</ns:To>",
        esc(to)
    );
    match content {
        ResponseContent::Data(xml) => {
            block.push_str(&format!("<ns2:MessagePrimaryContent>{xml}</ns2:MessagePrimaryContent>{headers}"));
        }
        ResponseContent::Rejection { code, description } => block.push_str(&format!(
            "<ns:RequestRejected><ns:RejectionReasonCode>{}</ns:RejectionReasonCode><ns:RejectionReasonDescription>{}</ns:RejectionReasonDescription></ns:RequestRejected>",
            esc(code),
            esc(description)
        )),
        ResponseContent::Status { code, description, parameters } => {
            block.push_str(&format!("<ns:RequestStatus><ns:StatusCode>{code}</ns:StatusCode>"));
            for (k, v) in parameters {
                block.push_str(&format!(
                    "<ns:StatusParameter><ns:Key>{}</ns:Key><ns:Value>{}</ns:Value></ns:StatusParameter>",
                    esc(k),
                    esc(v)
                ));
            }
            block.push_str(&format!("<ns:StatusDescription>{}</ns:StatusDescription></ns:RequestStatus>", esc(description)));
        }
    }
    block.push_str("</ns:SenderProvidedResponseData>");
    let body = format!(
        "<ns:SendResponseRequest>{block}{contents}<ns:CallerInformationSystemSignature/></ns:SendResponseRequest>"
    );
    Outgoing {
        envelope: envelope(&body).into_bytes(),
        parts,
    }
}

fn selector_xml(selector: Option<(&str, &str)>, now: SystemTime) -> String {
    let mut s = String::from("<ns2:MessageTypeSelector Id=\"SIGNED_BY_CALLER\">");
    if let Some((ns, root)) = selector {
        s.push_str(&format!(
            "<ns2:NamespaceURI>{}</ns2:NamespaceURI><ns2:RootElementLocalName>{}</ns2:RootElementLocalName>",
            esc(ns),
            esc(root)
        ));
    }
    s.push_str(&format!(
        "<ns2:Timestamp>{}</ns2:Timestamp></ns2:MessageTypeSelector>",
        datetime(now)
    ));
    s
}

/// An unsigned GetRequest.
pub fn get_request(selector: Option<(&str, &str)>, now: SystemTime) -> Outgoing {
    let body = format!(
        "<ns:GetRequestRequest>{}<ns:CallerInformationSystemSignature/></ns:GetRequestRequest>",
        selector_xml(selector, now)
    );
    Outgoing {
        envelope: envelope(&body).into_bytes(),
        parts: Vec::new(),
    }
}

/// An unsigned GetResponse.
pub fn get_response(selector: Option<(&str, &str)>, now: SystemTime) -> Outgoing {
    let body = format!(
        "<ns:GetResponseRequest>{}<ns:CallerInformationSystemSignature/></ns:GetResponseRequest>",
        selector_xml(selector, now)
    );
    Outgoing {
        envelope: envelope(&body).into_bytes(),
        parts: Vec::new(),
    }
}

/// An unsigned Ack, with the receiver's registration header when given.
pub fn ack(global_id: &str, accepted: bool, registration: Option<(&str, SystemTime)>) -> Outgoing {
    let body = format!(
        "<ns:AckRequest><ns2:AckTargetMessage Id=\"SIGNED_BY_CALLER\" accepted=\"{accepted}\">{}</ns2:AckTargetMessage><ns:CallerInformationSystemSignature/></ns:AckRequest>",
        esc(global_id)
    );
    let env = match registration {
        Some((number, at)) => envelope_with_header(
            &format!(
                "<mz:ReceiverRegistration xmlns:mz=\"{MZ_NS}\"><mz:Number>{}</mz:Number><mz:RegisteredAt>{}</mz:RegisteredAt></mz:ReceiverRegistration>",
                esc(number),
                datetime(at)
            ),
            &body,
        ),
        None => envelope(&body),
    };
    Outgoing {
        envelope: env.into_bytes(),
        parts: Vec::new(),
    }
}

/// An unsigned GetStatus.
pub fn get_status(now: SystemTime) -> Outgoing {
    let body = format!(
        "<ns:GetStatusRequest><ns2:Timestamp Id=\"SIGNED_BY_CALLER\">{}</ns2:Timestamp><ns:CallerInformationSystemSignature/></ns:GetStatusRequest>",
        datetime(now)
    );
    Outgoing {
        envelope: envelope(&body).into_bytes(),
        parts: Vec::new(),
    }
}

/// An unsigned GetIncomingQueueStatistics.
pub fn queue_statistics(now: SystemTime) -> Outgoing {
    let body = format!(
        "<ns:GetIncomingQueueStatisticsRequest><ns2:Timestamp Id=\"SIGNED_BY_CALLER\">{}</ns2:Timestamp><ns:CallerInformationSystemSignature/></ns:GetIncomingQueueStatisticsRequest>",
        datetime(now)
    );
    Outgoing {
        envelope: envelope(&body).into_bytes(),
        parts: Vec::new(),
    }
}

impl Outgoing {
    /// Signs the call's block with `key` into `CallerInformationSystemSignature`.
    pub fn sign(mut self, key: &dyn Signer) -> Result<Outgoing, ClientError> {
        self.envelope = smev_profile::sign_call(&self.envelope, &Limits::default(), key, None)?;
        Ok(self)
    }
}

/// An answer from the gateway.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    /// The SOAP envelope (the root part of an MTOM answer).
    pub envelope: Bytes,
    /// MTOM parts: (Content-ID, bytes).
    pub parts: Vec<(String, Bytes)>,
}

impl Reply {
    pub fn document(&self) -> Result<Document, ClientError> {
        parse(&self.envelope, &Limits::default()).map_err(|e| ClientError::Answer(e.to_string()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.envelope).into_owned()
    }
    /// The fault detail element's local name, if this is a fault.
    pub fn fault(&self) -> Option<String> {
        let doc = self.document().ok()?;
        let fault = doc
            .descendants(doc.root())
            .find(|&n| doc.is_element(n, SOAP11_NS, "Fault"))?;
        let detail = doc.child_elements(fault).find(|&c| {
            doc.element(c)
                .map(|e| e.local_name() == "detail")
                .unwrap_or(false)
        })?;
        let first = doc.child_elements(detail).next()?;
        doc.element(first).map(|e| e.local_name().to_string())
    }
    /// The `faultcode` text.
    pub fn fault_code(&self) -> Option<String> {
        self.first_text("", "faultcode")
    }
    /// Text of the first element with this namespace ("" = none) and local name.
    pub fn first_text(&self, ns: &str, local: &str) -> Option<String> {
        let doc = self.document().ok()?;
        let n = find(&doc, ns, local)?;
        Some(doc.text(n).trim().to_string())
    }
    /// Texts of every element with this name.
    pub fn all_texts(&self, ns: &str, local: &str) -> Vec<String> {
        let Ok(doc) = self.document() else {
            return Vec::new();
        };
        doc.descendants(doc.root())
            .filter(|&n| doc.is_element(n, ns, local))
            .map(|n| doc.text(n).trim().to_string())
            .collect()
    }
    /// `MessageMetadata/MessageId` (the global ID).
    pub fn global_id(&self) -> Option<String> {
        self.first_text(TYPES_NS, "MessageId")
    }
    /// `ReplyTo` of a delivered request.
    pub fn reply_to(&self) -> Option<String> {
        self.first_text(TYPES_NS, "ReplyTo")
    }
    /// Whether a Get… answer carried a message.
    pub fn has_message(&self) -> bool {
        self.first_text(TYPES_NS, "MessageId").is_some()
    }
}

pub fn find(doc: &Document, ns: &str, local: &str) -> Option<NodeId> {
    doc.descendants(doc.root())
        .find(|&n| doc.is_element(n, ns, local))
}

/// The bytes of a [`StreamedPart`], produced while the call is being sent.
pub type PartStream = Pin<Box<dyn futures_util::Stream<Item = std::io::Result<Bytes>> + Send>>;

/// An MTOM part of a call whose bytes are produced while the call is sent (read from a
/// file in chunks, made by a generator), never collected in memory.
pub struct StreamedPart {
    /// Without `<>`; must match the `xop:Include` of the envelope.
    pub content_id: String,
    pub mime_type: String,
    /// The exact number of bytes `stream` yields, when known: the call then carries a
    /// `Content-Length`; otherwise it is sent with chunked transfer encoding. A stream
    /// that yields a different number of bytes fails the call.
    pub length: Option<u64>,
    pub stream: PartStream,
}

impl std::fmt::Debug for StreamedPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamedPart")
            .field("content_id", &self.content_id)
            .field("mime_type", &self.mime_type)
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

type StreamingBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// An HTTP client for one endpoint (keep-alive pooled).
#[derive(Debug, Clone)]
pub struct Client {
    http: HyperClient<mezhved_net::Connector, Full<Bytes>>,
    /// For calls with streamed parts ([`Client::call_streamed`]); its own pool.
    streaming: HyperClient<mezhved_net::Connector, StreamingBody>,
    endpoint: hyper::Uri,
}

impl Client {
    /// A client of `endpoint` (`http://` or `https://`); TLS trusts the system's roots.
    pub fn new(endpoint: &str) -> Result<Client, ClientError> {
        Client::with_tls(endpoint, &mezhved_net::TlsSettings::default())
    }

    /// A client of `endpoint` with TLS as `tls` says: its own roots (a gateway with a
    /// certificate from the operator's CA) and a client certificate where the gateway's
    /// front asks for one. `http://` endpoints connect in clear.
    pub fn with_tls(endpoint: &str, tls: &mezhved_net::TlsSettings) -> Result<Client, ClientError> {
        let endpoint = endpoint
            .parse()
            .map_err(|e| ClientError::Http(format!("{endpoint}: {e}")))?;
        let connector =
            mezhved_net::Connector::new(tls).map_err(|e| ClientError::Http(e.to_string()))?;
        let http = HyperClient::builder(TokioExecutor::new()).build(connector.clone());
        let streaming = HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(Client {
            http,
            streaming,
            endpoint,
        })
    }

    /// Sends a call as MTOM with `parts` streamed as they are produced: memory use does
    /// not grow with their size. `envelope` is the (signed) SOAP envelope, whose
    /// `xop:Include`s name the parts. Parts of an MTOM answer are streamed into files
    /// under `dir` as [`Client::call_to_dir`] does (into a temporary directory and read
    /// back, as [`Client::call`] does, when `dir` is `None`).
    pub async fn call_streamed(
        &self,
        envelope: &[u8],
        parts: Vec<StreamedPart>,
        dir: Option<&Path>,
    ) -> Result<Reply, ClientError> {
        use futures_util::{StreamExt as _, TryStreamExt as _};
        const ROOT_CID: &str = "root@client";
        let boundary = format!("MIMEBoundary_{}", Uuid::new_v4().simple());
        if memchr_in(envelope, boundary.as_bytes()) {
            // A random 128-bit value in the envelope: not by chance.
            return Err(ClientError::Http(
                "the envelope contains the MIME boundary".into(),
            ));
        }
        let mut head = format!(
            "--{boundary}\r\nContent-Type: {}\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{ROOT_CID}>\r\n\r\n",
            mezhved_mime::ROOT_PART_CONTENT_TYPE
        )
        .into_bytes();
        head.extend_from_slice(envelope);
        let mut length = Some(head.len() as u64);
        let mut pieces: Vec<PartStream> = vec![Box::pin(futures_util::stream::once(
            futures_util::future::ready(Ok(Bytes::from(head))),
        ))];
        for part in parts {
            for (what, value) in [
                ("Content-ID", &part.content_id),
                ("Content-Type", &part.mime_type),
            ] {
                if value
                    .chars()
                    .any(|c| c.is_control() || c == '<' || c == '>')
                {
                    return Err(ClientError::Http(format!(
                        "{what} \"{value}\" of a part cannot be sent in a MIME header"
                    )));
                }
            }
            let header = Bytes::from(format!(
                "\r\n--{boundary}\r\nContent-Type: {}\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{}>\r\n\r\n",
                part.mime_type, part.content_id
            ));
            length = match (length, part.length) {
                (Some(l), Some(p)) => l.checked_add(header.len() as u64 + p),
                _ => None,
            };
            pieces.push(Box::pin(futures_util::stream::once(
                futures_util::future::ready(Ok(header)),
            )));
            pieces.push(part.stream);
        }
        let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
        length = length.and_then(|l| l.checked_add(tail.len() as u64));
        pieces.push(Box::pin(futures_util::stream::once(
            futures_util::future::ready(Ok(tail)),
        )));
        let frames = futures_util::stream::iter(pieces)
            .flatten()
            .map_ok(hyper::body::Frame::data);
        let body = http_body_util::combinators::UnsyncBoxBody::new(
            http_body_util::StreamBody::new(frames),
        );
        let content_type = format!(
            "multipart/related; type=\"application/xop+xml\"; start=\"<{ROOT_CID}>\"; start-info=\"text/xml\"; boundary=\"{boundary}\""
        );
        let mut request = hyper::Request::post(self.endpoint.clone())
            .header(hyper::header::CONTENT_TYPE, content_type)
            .header("SOAPAction", "\"\"");
        if let Some(l) = length {
            request = request.header(hyper::header::CONTENT_LENGTH, l);
        }
        let request = request
            .body(body)
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let response = self
            .streaming
            .request(request)
            .await
            .map_err(transport_error)?;
        read_reply(response, dir).await
    }

    /// Sends a call; MTOM answers have their parts read into memory (tests), so use
    /// [`Client::call_to_dir`] for large ones.
    pub async fn call(&self, call: &Outgoing) -> Result<Reply, ClientError> {
        self.call_inner(call, None).await
    }

    /// Sends a call; parts of an MTOM answer are streamed into files under `dir` and
    /// returned as their paths (as UTF-8 bytes).
    pub async fn call_to_dir(&self, call: &Outgoing, dir: &Path) -> Result<Reply, ClientError> {
        self.call_inner(call, Some(dir)).await
    }

    async fn call_inner(&self, call: &Outgoing, dir: Option<&Path>) -> Result<Reply, ClientError> {
        let (content_type, body) = if call.parts.is_empty() {
            (
                "text/xml; charset=utf-8".to_string(),
                Bytes::from(call.envelope.clone()),
            )
        } else {
            let parts = call
                .parts
                .iter()
                .map(|(cid, mime, data)| mezhved_mime::OutgoingPart {
                    content_id: cid.clone(),
                    content_type: mime.clone(),
                    source: mezhved_mime::PartSource::Bytes(data.clone()),
                })
                .collect();
            let mtom =
                mezhved_mime::mtom_body(Bytes::from(call.envelope.clone()), "root@client", parts)
                    .map_err(|e| ClientError::Http(e.to_string()))?;
            let chunks: Vec<Bytes> = futures_util::TryStreamExt::try_collect(mtom.stream)
                .await
                .map_err(|e: std::io::Error| ClientError::Http(e.to_string()))?;
            (mtom.content_type, Bytes::from(chunks.concat()))
        };
        let request = hyper::Request::post(self.endpoint.clone())
            .header(hyper::header::CONTENT_TYPE, content_type)
            .header("SOAPAction", "\"\"")
            .body(Full::new(body))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let response = self.http.request(request).await.map_err(transport_error)?;
        read_reply(response, dir).await
    }

    /// Sends raw bytes with a content type (for malformed-input tests).
    pub async fn post_raw(&self, content_type: &str, body: Vec<u8>) -> Result<Reply, ClientError> {
        let request = hyper::Request::post(self.endpoint.clone())
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = response.status().as_u16();
        let envelope = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        Ok(Reply {
            status,
            content_type: String::new(),
            envelope,
            parts: Vec::new(),
        })
    }
}

/// `haystack` contains `needle`.
fn memchr_in(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Reads the gateway's answer: the envelope, and the parts of an MTOM answer streamed
/// into files under `dir` (or read into memory when `dir` is `None`).
async fn read_reply(
    response: hyper::Response<hyper::body::Incoming>,
    dir: Option<&Path>,
) -> Result<Reply, ClientError> {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if let Some(ct) = mezhved_mime::parse_content_type(&content_type)
        .map_err(|e| ClientError::Answer(e.to_string()))?
    {
        let tmp;
        let target = match dir {
            Some(d) => d.to_path_buf(),
            None => {
                tmp = std::env::temp_dir().join(format!("mezhved-client-{}", Uuid::new_v4()));
                std::fs::create_dir_all(&tmp).map_err(|e| ClientError::Answer(e.to_string()))?;
                tmp.clone()
            }
        };
        let stream =
            futures_util::TryStreamExt::map_err(response.into_body().into_data_stream(), |e| {
                std::io::Error::other(e.to_string())
            });
        let multipart = mezhved_mime::read_multipart(
            stream,
            &ct,
            &target,
            &mezhved_mime::ReadLimits {
                max_root_bytes: 64 << 20,
                max_part_bytes: u64::MAX / 4,
                max_total_bytes: u64::MAX / 2,
                max_parts: 1000,
                sync_files: false,
            },
        )
        .await
        .map_err(|e| ClientError::Answer(e.to_string()))?;
        let mut parts = Vec::new();
        for p in multipart.parts {
            if dir.is_some() {
                parts.push((
                    p.content_id,
                    Bytes::from(p.path.to_string_lossy().into_owned()),
                ));
            } else {
                let data =
                    std::fs::read(&p.path).map_err(|e| ClientError::Answer(e.to_string()))?;
                let _ = std::fs::remove_file(&p.path);
                parts.push((p.content_id, Bytes::from(data)));
            }
        }
        if dir.is_none() {
            let _ = std::fs::remove_dir_all(&target);
        }
        return Ok(Reply {
            status,
            content_type,
            envelope: multipart.root,
            parts,
        });
    }
    let envelope = response
        .into_body()
        .collect()
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?
        .to_bytes();
    Ok(Reply {
        status,
        content_type,
        envelope,
        parts: Vec::new(),
    })
}
