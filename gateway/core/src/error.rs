//! The exchange layer's one error type and the one place that turns it into a SOAP fault
//! (protocol.md §6). Nothing else in the gateway knows fault codes.
//!
//! Invariant: an operation that returns an error has written nothing (the store call that
//! would have written is the last step and is atomic; files received before it are
//! removed by the caller's guard).

use crate::xmlw::XmlWriter;
use mezhved_dsig::error::DsigError;
use mezhved_store::StoreError;
use mezhved_xml::XmlError;
use thiserror::Error;

pub const FAULTS_NS: &str =
    "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/faults/1.1";

/// One problem found in the content (a `ValidationError` of `InvalidContent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentError {
    /// Byte offset in the request where the problem was found.
    pub position: usize,
    pub message: String,
}

#[derive(Debug, Error)]
pub enum ExchangeError {
    /// The body is not well-formed XML, breaks a parser limit, or is not a SMEV call.
    #[error("invalid content: {}", first_message(.0))]
    InvalidContent(Vec<ContentError>),
    #[error("signature verification failed: {0}")]
    Signature(#[source] DsigError),
    #[error("the signer is not a registered information system: {0}")]
    SenderIsNotRegistered(String),
    #[error("MessageID is not a UUID version 1: {0}")]
    InvalidMessageIdFormat(String),
    #[error("MessageID is stale: {0}")]
    StaleMessageId(String),
    #[error("a different message was already sent with MessageID {0}")]
    MessageIsAlreadySent(String),
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error("no kind of information is registered for {{{namespace}}}{local_name}")]
    BusinessDataTypeIsNotSupported {
        namespace: String,
        local_name: String,
    },
    #[error("unknown message type: {0}")]
    UnknownMessageType(String),
    #[error("recipient not found: {0}")]
    RecipientIsNotFound(String),
    #[error("incorrect response content: {0}")]
    IncorrectResponseContentType(String),
    #[error("target message not found: {0}")]
    TargetMessageIsNotFound(String),
    #[error("attachments do not match their headers: {0}")]
    AttachmentContentMiscoordination(String),
    #[error("attachments total {real} bytes, more than the permitted {permitted}")]
    AttachmentSizeLimitExceeded { permitted: u64, real: u64 },
    #[error("the message's end of life has passed: {0}")]
    EndOfLifeReached(String),
    /// Our own failure: `soap:Server`, `SMEVFailure`.
    #[error("gateway failure: {0}")]
    Internal(String),
    /// The operator switched maintenance mode on (docs/monitoring.md): `soap:Server`,
    /// `SMEVFailure`, answered with HTTP 503 and `Retry-After`.
    #[error("the gateway is in maintenance mode, try again later: {0}")]
    Maintenance(String),
}

fn first_message(v: &[ContentError]) -> &str {
    v.first().map(|e| e.message.as_str()).unwrap_or("")
}

impl ExchangeError {
    pub fn invalid(position: usize, message: impl Into<String>) -> Self {
        ExchangeError::InvalidContent(vec![ContentError {
            position,
            message: message.into(),
        }])
    }
}

impl From<XmlError> for ExchangeError {
    fn from(e: XmlError) -> Self {
        let position = match &e {
            XmlError::LimitExceeded { position, .. }
            | XmlError::DtdForbidden { position }
            | XmlError::EntityDeclarationForbidden { position }
            | XmlError::ExternalReferenceForbidden { position }
            | XmlError::UndefinedEntity { position, .. }
            | XmlError::Encoding { position, .. }
            | XmlError::Malformed { position, .. }
            | XmlError::Namespace { position, .. } => position.offset,
        };
        ExchangeError::invalid(position, e.to_string())
    }
}

impl From<DsigError> for ExchangeError {
    fn from(e: DsigError) -> Self {
        match e {
            DsigError::Xml(x) => x.into(),
            e if e.smev_code().is_none() => ExchangeError::Internal(e.to_string()),
            e => ExchangeError::Signature(e),
        }
    }
}

impl From<StoreError> for ExchangeError {
    fn from(e: StoreError) -> Self {
        ExchangeError::Internal(format!("store: {e}"))
    }
}

impl From<std::io::Error> for ExchangeError {
    fn from(e: std::io::Error) -> Self {
        ExchangeError::Internal(format!("I/O: {e}"))
    }
}

/// Who is at fault (SOAP 1.1 faultcode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCode {
    Client,
    Server,
}

/// A SOAP fault ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: FaultCode,
    /// The fault detail element's local name (namespace [`FAULTS_NS`]).
    pub name: &'static str,
    pub string: String,
    /// The detail element, complete.
    pub detail: Vec<u8>,
}

impl Fault {
    /// The whole SOAP 1.1 envelope carrying this fault.
    pub fn envelope(&self) -> Vec<u8> {
        let mut w = XmlWriter::with_capacity(512 + self.detail.len());
        w.open(
            "soap:Envelope",
            &[("xmlns:soap", mezhved_dsig::smev_profile::SOAP11_NS)],
        )
        .open("soap:Body", &[])
        .open("soap:Fault", &[])
        .leaf(
            "faultcode",
            match self.code {
                FaultCode::Client => "soap:Client",
                FaultCode::Server => "soap:Server",
            },
        )
        .leaf("faultstring", &self.string)
        .open("detail", &[])
        .raw(&self.detail)
        .close("detail")
        .close("soap:Fault")
        .close("soap:Body")
        .close("soap:Envelope");
        w.into_bytes()
    }
}

/// The detail element `<f:{name} xmlns:f="…">…</f:{name}>`.
fn detail(
    name: &str,
    code: Option<&str>,
    description: Option<&str>,
    body: impl FnOnce(&mut XmlWriter),
) -> Vec<u8> {
    let mut w = XmlWriter::with_capacity(256);
    let tag = format!("f:{name}");
    // Code and Description come from basic:SmevFault, so they are in the basic namespace;
    // each fault's own fields are in the faults namespace.
    if code.is_some() || description.is_some() {
        w.open(
            &tag,
            &[
                ("xmlns:f", FAULTS_NS),
                ("xmlns:b", mezhved_dsig::smev_profile::BASIC_NS),
            ],
        );
    } else {
        w.open(&tag, &[("xmlns:f", FAULTS_NS)]);
    }
    if let Some(c) = code {
        w.leaf("b:Code", c);
    }
    if let Some(d) = description {
        w.leaf("b:Description", d);
    }
    body(&mut w);
    w.close(&tag);
    w.into_bytes()
}

impl ExchangeError {
    /// The fault this error is answered with. The only mapping from errors to faults.
    pub fn fault(&self) -> Fault {
        use ExchangeError as E;
        let string = self.to_string();
        // Elements of type basic:Void carry nothing; basic:SmevFault ones carry Code and
        // Description before their own fields.
        let void = |name: &'static str| Fault {
            code: FaultCode::Client,
            name,
            string: string.clone(),
            detail: detail(name, None, None, |_| {}),
        };
        let smev_fault =
            |name: &'static str, code: FaultCode, body: &dyn Fn(&mut XmlWriter)| Fault {
                code,
                name,
                string: string.clone(),
                detail: detail(name, Some(name), Some(&string), |w| body(w)),
            };
        match self {
            E::InvalidContent(errors) => smev_fault("InvalidContent", FaultCode::Client, &|w| {
                for e in errors {
                    let pos = e.position.min(i32::MAX as usize).to_string();
                    w.open("f:ValidationError", &[("errorPosition", &pos)])
                        .text(&e.message)
                        .close("f:ValidationError");
                }
            }),
            E::Signature(e) => {
                let code = e
                    .smev_code()
                    .map(|c| c.as_str())
                    .unwrap_or("SignatureIsInvalid");
                smev_fault("SignatureVerificationFault", FaultCode::Client, &|w| {
                    w.leaf("f:SignatureVerificationFault", code);
                })
            }
            E::SenderIsNotRegistered(_) => void("SenderIsNotRegistered"),
            E::InvalidMessageIdFormat(_) => void("InvalidMessageIdFormat"),
            E::StaleMessageId(_) => void("StaleMessageId"),
            E::MessageIsAlreadySent(_) => void("MessageIsAlreadySent"),
            E::AccessDenied(_) => void("AccessDenied"),
            E::BusinessDataTypeIsNotSupported {
                namespace,
                local_name,
            } => smev_fault("BusinessDataTypeIsNotSupported", FaultCode::Client, &|w| {
                w.leaf("f:RootElementLocalName", local_name)
                    .leaf("f:RootElementNamespaceURI", namespace);
            }),
            E::UnknownMessageType(_) => void("UnknownMessageType"),
            E::RecipientIsNotFound(_) => void("RecipientIsNotFound"),
            E::IncorrectResponseContentType(_) => void("IncorrectResponseContentType"),
            E::TargetMessageIsNotFound(_) => void("TargetMessageIsNotFound"),
            E::AttachmentContentMiscoordination(_) => void("AttachmentContentMiscoordination"),
            E::AttachmentSizeLimitExceeded { permitted, real } => {
                smev_fault("AttachmentSizeLimitExceeded", FaultCode::Client, &|w| {
                    w.leaf("f:PermittedTotalAttachmentSize", &permitted.to_string())
                        .leaf("f:RealTotalAttachmentSize", &real.to_string());
                })
            }
            E::EndOfLifeReached(_) => void("EndOfLifeReached"),
            E::Internal(_) | E::Maintenance(_) => Fault {
                code: FaultCode::Server,
                name: "SMEVFailure",
                string,
                detail: detail("SMEVFailure", None, None, |_| {}),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_faults_and_the_server_fault() {
        let f = ExchangeError::AccessDenied("x".into()).fault();
        assert_eq!(f.code, FaultCode::Client);
        assert_eq!(f.name, "AccessDenied");
        let f = ExchangeError::Internal("disk".into()).fault();
        assert_eq!(f.code, FaultCode::Server);
        assert_eq!(f.name, "SMEVFailure");
        let env = String::from_utf8(
            ExchangeError::InvalidContent(vec![
                ContentError {
                    position: 3,
                    message: "a<b".into(),
                },
                ContentError {
                    position: 9,
                    message: "c".into(),
                },
            ])
            .fault()
            .envelope(),
        )
        .expect("utf-8");
        assert!(env.contains("<faultcode>soap:Client</faultcode>"), "{env}");
        assert!(
            env.contains("<f:ValidationError errorPosition=\"3\">a&lt;b</f:ValidationError>"),
            "{env}"
        );
        assert!(
            env.contains("<f:ValidationError errorPosition=\"9\">c</f:ValidationError>"),
            "{env}"
        );
    }
}
