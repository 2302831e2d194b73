//! The one error type of the signature layer.
//!
//! Each variant is a distinct, matchable failure; [`DsigError::smev_code`] maps it to the
//! code of SMEV's `SignatureVerificationFault` (protocol.md §4). The gateway's fault
//! mapping calls that function and nothing else.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DsigError {
    #[error("XML error: {0}")]
    Xml(#[from] mezhved_xml::XmlError),
    #[error("no signature found at the expected place ({0})")]
    NoSignatureFound(String),
    #[error("more than one signature at the expected place ({0})")]
    AmbiguousSignature(String),
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    #[error("reference target not found: no element has Id \"{0}\"")]
    ReferenceNotFound(String),
    #[error("ambiguous Id \"{0}\": more than one attribute in the document carries it")]
    AmbiguousId(String),
    #[error("signature covers the wrong element: expected {expected}, found {found}")]
    IncorrectSignatureTarget { expected: String, found: String },
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    #[error("digest mismatch: the signed element was changed after signing")]
    DigestMismatch,
    #[error("signature value does not verify")]
    BadSignature,
    #[error("certificate missing from KeyInfo")]
    CertificateMissing,
    #[error("certificate cannot be parsed: {0}")]
    BadCertificate(String),
    #[error("certificate is not trusted: {0}")]
    Untrusted(String),
    #[error("certificate has expired (not after {0})")]
    CertificateExpired(String),
    #[error("certificate is not yet valid (not before {0})")]
    CertificateNotYetValid(String),
    #[error("certificate has been revoked")]
    CertificateRevoked,
    #[error("certificate key usage does not allow signing: {0}")]
    KeyUsage(String),
    #[error("key or certificate cannot be loaded: {0}")]
    Key(String),
    #[error("trust store: {0}")]
    TrustStore(String),
    #[error("GOST engine unavailable: {0}")]
    Engine(String),
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

/// The codes of SMEV's `SignatureVerificationFault` (protocol.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmevSignatureCode {
    NoSignatureFound,
    IncorrectSignatureTarget,
    SignatureIsInvalid,
    CertificateIsNotFound,
    CertificateIsExpired,
}

impl SmevSignatureCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSignatureFound => "NoSignatureFound",
            Self::IncorrectSignatureTarget => "IncorrectSignatureTarget",
            Self::SignatureIsInvalid => "SignatureIsInvalid",
            Self::CertificateIsNotFound => "CertificateIsNotFound",
            Self::CertificateIsExpired => "CertificateIsExpired",
        }
    }
}

impl DsigError {
    /// The SMEV fault code for this failure. `None` for failures that are ours, not the
    /// caller's (an engine that did not load, an OpenSSL internal error): those become
    /// `SMEVFailure`.
    pub fn smev_code(&self) -> Option<SmevSignatureCode> {
        use SmevSignatureCode as C;
        Some(match self {
            Self::NoSignatureFound(_) | Self::AmbiguousSignature(_) => C::NoSignatureFound,
            Self::ReferenceNotFound(_)
            | Self::AmbiguousId(_)
            | Self::IncorrectSignatureTarget { .. } => C::IncorrectSignatureTarget,
            Self::Xml(_)
            | Self::MalformedSignature(_)
            | Self::UnsupportedAlgorithm(_)
            | Self::DigestMismatch
            | Self::BadSignature
            | Self::CertificateRevoked
            | Self::KeyUsage(_) => C::SignatureIsInvalid,
            Self::CertificateMissing | Self::BadCertificate(_) | Self::Untrusted(_) => {
                C::CertificateIsNotFound
            }
            Self::CertificateExpired(_) | Self::CertificateNotYetValid(_) => {
                C::CertificateIsExpired
            }
            Self::Key(_) | Self::TrustStore(_) | Self::Engine(_) | Self::OpenSsl(_) => return None,
        })
    }
}
