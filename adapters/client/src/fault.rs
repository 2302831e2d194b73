//! Typed SMEV faults and the one decision every caller needs: is a failed call worth
//! repeating?
//!
//! Invariant: [`CallError::retryable`] is true only where repeating the *same* call (same
//! MessageID, same bytes) can succeed and cannot duplicate anything: the gateway is
//! idempotent by (system, MessageID), so a transport failure or the gateway's own failure
//! is retried, while a fault about the call's content never is.

use crate::{find, Reply, FAULTS_NS, SOAP11_NS};
use mezhved_xml::Document;

/// The fault detail elements of the SMEV 3 faults schema (protocol.md §6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FaultCode {
    SenderIsNotRegistered,
    SignatureVerificationFault,
    InvalidMessageIdFormat,
    StaleMessageId,
    MessageIsAlreadySent,
    AccessDenied,
    BusinessDataTypeIsNotSupported,
    UnknownMessageType,
    InvalidContent,
    RecipientIsNotFound,
    IncorrectResponseContentType,
    TargetMessageIsNotFound,
    AttachmentContentMiscoordination,
    AttachmentSizeLimitExceeded,
    QuoteLimitExceeded,
    DestinationOverflow,
    EndOfLifeReached,
    TransactionCodeInvalid,
    SmevFailure,
    /// The gateway is in maintenance: SOAP calls are refused for a while.
    Maintenance,
    /// A detail element this library does not know (a newer gateway).
    Other(String),
}

impl FaultCode {
    pub fn from_detail(local_name: &str) -> FaultCode {
        use FaultCode::*;
        match local_name {
            "SenderIsNotRegistered" => SenderIsNotRegistered,
            "SignatureVerificationFault" => SignatureVerificationFault,
            "InvalidMessageIdFormat" => InvalidMessageIdFormat,
            "StaleMessageId" => StaleMessageId,
            "MessageIsAlreadySent" => MessageIsAlreadySent,
            "AccessDenied" => AccessDenied,
            "BusinessDataTypeIsNotSupported" => BusinessDataTypeIsNotSupported,
            "UnknownMessageType" => UnknownMessageType,
            "InvalidContent" => InvalidContent,
            "RecipientIsNotFound" => RecipientIsNotFound,
            "IncorrectResponseContentType" => IncorrectResponseContentType,
            "TargetMessageIsNotFound" => TargetMessageIsNotFound,
            "AttachmentContentMiscoordination" => AttachmentContentMiscoordination,
            "AttachmentSizeLimitExceeded" => AttachmentSizeLimitExceeded,
            "QuoteLimitExceeded" => QuoteLimitExceeded,
            "DestinationOverflow" => DestinationOverflow,
            "EndOfLifeReached" => EndOfLifeReached,
            "TransactionCodeInvalid" => TransactionCodeInvalid,
            "SMEVFailure" => SmevFailure,
            "Maintenance" | "ServiceUnavailable" => Maintenance,
            other => Other(other.to_string()),
        }
    }

    /// The detail element's name.
    pub fn as_str(&self) -> &str {
        use FaultCode::*;
        match self {
            SenderIsNotRegistered => "SenderIsNotRegistered",
            SignatureVerificationFault => "SignatureVerificationFault",
            InvalidMessageIdFormat => "InvalidMessageIdFormat",
            StaleMessageId => "StaleMessageId",
            MessageIsAlreadySent => "MessageIsAlreadySent",
            AccessDenied => "AccessDenied",
            BusinessDataTypeIsNotSupported => "BusinessDataTypeIsNotSupported",
            UnknownMessageType => "UnknownMessageType",
            InvalidContent => "InvalidContent",
            RecipientIsNotFound => "RecipientIsNotFound",
            IncorrectResponseContentType => "IncorrectResponseContentType",
            TargetMessageIsNotFound => "TargetMessageIsNotFound",
            AttachmentContentMiscoordination => "AttachmentContentMiscoordination",
            AttachmentSizeLimitExceeded => "AttachmentSizeLimitExceeded",
            QuoteLimitExceeded => "QuoteLimitExceeded",
            DestinationOverflow => "DestinationOverflow",
            EndOfLifeReached => "EndOfLifeReached",
            TransactionCodeInvalid => "TransactionCodeInvalid",
            SmevFailure => "SMEVFailure",
            Maintenance => "Maintenance",
            Other(s) => s,
        }
    }
}

impl std::fmt::Display for FaultCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SOAP fault from the gateway, read into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmevFault {
    pub code: FaultCode,
    /// `soap:Server` (the gateway's side) rather than `soap:Client`.
    pub server: bool,
    /// `faultstring`.
    pub message: String,
    /// The code of a `SignatureVerificationFault` (e.g. `SignatureIsInvalid`).
    pub signature_code: Option<String>,
    /// `ValidationError`s of an `InvalidContent` fault: (`errorPosition`, text).
    pub validation_errors: Vec<(Option<String>, String)>,
    /// The HTTP status the fault came with.
    pub http_status: u16,
}

impl SmevFault {
    /// The fault in `reply`, if it is one.
    pub fn from_reply(reply: &Reply) -> Option<SmevFault> {
        let doc = reply.document().ok()?;
        let mut fault = SmevFault::from_document(&doc)?;
        fault.http_status = reply.status;
        Some(fault)
    }

    pub fn from_document(doc: &Document) -> Option<SmevFault> {
        let fault = doc
            .descendants(doc.root())
            .find(|&n| doc.is_element(n, SOAP11_NS, "Fault"))?;
        let child_text = |name: &str| {
            doc.child_elements(fault)
                .find(|&c| {
                    doc.element(c)
                        .map(|e| e.local_name() == name)
                        .unwrap_or(false)
                })
                .map(|c| doc.text(c).trim().to_string())
        };
        let faultcode = child_text("faultcode").unwrap_or_default();
        let message = child_text("faultstring").unwrap_or_default();
        let detail = doc.child_elements(fault).find(|&c| {
            doc.element(c)
                .map(|e| e.local_name() == "detail")
                .unwrap_or(false)
        });
        let code = detail
            .and_then(|d| doc.child_elements(d).next())
            .and_then(|first| doc.element(first).map(|e| e.local_name().to_string()))
            .map(|name| FaultCode::from_detail(&name))
            .unwrap_or_else(|| {
                if faultcode.ends_with("Server") {
                    FaultCode::SmevFailure
                } else {
                    FaultCode::Other(faultcode.clone())
                }
            });
        let signature_code = find(doc, FAULTS_NS, "SignatureVerificationFault").and_then(|outer| {
            doc.child_elements(outer)
                .find(|&c| doc.is_element(c, FAULTS_NS, "SignatureVerificationFault"))
                .map(|c| doc.text(c).trim().to_string())
        });
        let validation_errors = doc
            .descendants(doc.root())
            .filter(|&n| doc.is_element(n, FAULTS_NS, "ValidationError"))
            .map(|n| {
                (
                    doc.attribute(n, "", "errorPosition").map(str::to_string),
                    doc.text(n).trim().to_string(),
                )
            })
            .collect();
        Some(SmevFault {
            code,
            server: faultcode.ends_with("Server"),
            message,
            signature_code,
            validation_errors,
            http_status: 0,
        })
    }
}

impl std::fmt::Display for SmevFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(c) = &self.signature_code {
            write!(f, " ({c})")?;
        }
        for (pos, text) in &self.validation_errors {
            match pos {
                Some(p) => write!(f, "; {p}: {text}")?,
                None => write!(f, "; {text}")?,
            }
        }
        Ok(())
    }
}

/// Why a call did not give a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The gateway answered with a SOAP fault.
    #[error("fault {0}")]
    Fault(SmevFault),
    /// No answer: connection refused or reset, timeout, an HTTP error without a SOAP fault.
    #[error("transport: {0}")]
    Transport(String),
    /// An answer that is not what the operation returns, or whose gateway signature does
    /// not verify: never trusted, never acted upon.
    #[error("untrusted answer: {0}")]
    BadAnswer(String),
    /// Our own side could not build or sign the call.
    #[error("local: {0}")]
    Local(String),
}

impl CallError {
    /// Whether sending the very same call again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            CallError::Transport(_) => true,
            CallError::Fault(f) => matches!(
                f.code,
                FaultCode::SmevFailure
                    | FaultCode::Maintenance
                    | FaultCode::DestinationOverflow
                    | FaultCode::QuoteLimitExceeded
            ),
            // A forged or garbled answer says nothing about whether the call took effect;
            // repeating it is safe (idempotent) and the next answer may be sound.
            CallError::BadAnswer(_) => true,
            CallError::Local(_) => false,
        }
    }

    /// The fault code, if the gateway answered with a fault.
    pub fn fault_code(&self) -> Option<&FaultCode> {
        match self {
            CallError::Fault(f) => Some(&f.code),
            _ => None,
        }
    }
}

impl From<crate::ClientError> for CallError {
    fn from(e: crate::ClientError) -> Self {
        match e {
            crate::ClientError::Http(m) => CallError::Transport(m),
            crate::ClientError::Answer(m) => CallError::BadAnswer(m),
            crate::ClientError::Sign(e) => CallError::Local(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mezhved_xml::{parse, Limits};

    fn fault_doc(detail: &str, code: &str) -> Document {
        let xml = format!(
            "<s:Envelope xmlns:s=\"{SOAP11_NS}\"><s:Body><s:Fault><faultcode>{code}</faultcode><faultstring>why</faultstring><detail>{detail}</detail></s:Fault></s:Body></s:Envelope>"
        );
        parse(xml.as_bytes(), &Limits::default()).expect("parses")
    }

    #[test]
    fn reads_the_detail_the_signature_code_and_validation_errors() {
        let doc = fault_doc(
            &format!("<f:SignatureVerificationFault xmlns:f=\"{FAULTS_NS}\"><f:SignatureVerificationFault>SignatureIsInvalid</f:SignatureVerificationFault></f:SignatureVerificationFault>"),
            "soap:Client",
        );
        let f = SmevFault::from_document(&doc).expect("a fault");
        assert_eq!(f.code, FaultCode::SignatureVerificationFault);
        assert_eq!(f.signature_code.as_deref(), Some("SignatureIsInvalid"));
        assert!(!f.server);
        assert!(!CallError::Fault(f).retryable());

        let doc = fault_doc(
            &format!("<f:InvalidContent xmlns:f=\"{FAULTS_NS}\"><f:ValidationError errorPosition=\"/a\">missing</f:ValidationError><f:ValidationError>second</f:ValidationError></f:InvalidContent>"),
            "soap:Client",
        );
        let f = SmevFault::from_document(&doc).expect("a fault");
        assert_eq!(f.code, FaultCode::InvalidContent);
        assert_eq!(
            f.validation_errors,
            vec![
                (Some("/a".to_string()), "missing".to_string()),
                (None, "second".to_string())
            ]
        );
        assert!(f.to_string().contains("/a: missing"));
    }

    #[test]
    fn only_server_side_and_transport_failures_are_retried() {
        let server = SmevFault::from_document(&fault_doc(
            &format!("<f:SMEVFailure xmlns:f=\"{FAULTS_NS}\"/>"),
            "soap:Server",
        ))
        .expect("a fault");
        assert_eq!(server.code, FaultCode::SmevFailure);
        assert!(server.server);
        assert!(CallError::Fault(server).retryable());
        assert!(CallError::Transport("refused".into()).retryable());
        assert!(!CallError::Local("no key".into()).retryable());
        let unknown = FaultCode::from_detail("SomethingNew");
        assert_eq!(unknown, FaultCode::Other("SomethingNew".into()));
        for name in [
            "StaleMessageId",
            "AccessDenied",
            "InvalidContent",
            "MessageIsAlreadySent",
        ] {
            let f = SmevFault::from_document(&fault_doc(
                &format!("<f:{name} xmlns:f=\"{FAULTS_NS}\"/>"),
                "soap:Client",
            ))
            .expect("a fault");
            assert_eq!(f.code.as_str(), name);
            assert!(!CallError::Fault(f).retryable(), "{name}");
        }
    }

    #[test]
    fn a_non_fault_is_not_read_as_one() {
        let doc = parse(
            format!("<s:Envelope xmlns:s=\"{SOAP11_NS}\"><s:Body><x/></s:Body></s:Envelope>")
                .as_bytes(),
            &Limits::default(),
        )
        .expect("parses");
        assert!(SmevFault::from_document(&doc).is_none());
    }
}
