//! Where signatures stand in the SMEV 3 message-exchange calls (protocol.md §3).
//!
//! Each operation's request carries one signed block (with an `Id`) and, after it, a
//! `CallerInformationSystemSignature` element holding the detached `ds:Signature`. This
//! table is the single place that knows those positions: the gateway verifies incoming
//! calls against it (the "expected place" of the signature-wrapping defence) and agency
//! tools sign with it.

use crate::crypto::DigestAlgorithm;
use crate::error::DsigError;
use crate::trust::TrustStore;
use crate::xmldsig::{self, Expectation, Placement, SignOptions, Signer, Transforms, Verified};
use mezhved_xml::{parse, Document, ElementPath, Limits, NodeId};
use std::time::SystemTime;

pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const TYPES_NS: &str = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1";
pub const BASIC_NS: &str =
    "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/basic/1.1";
const CONTAINER: &str = "CallerInformationSystemSignature";

/// `/soap:Envelope/soap:Body` (SOAP 1.1).
fn body_path() -> ElementPath {
    ElementPath::new(vec![])
        .child(Some(SOAP11_NS), "Envelope")
        .child(Some(SOAP11_NS), "Body")
}

/// The signed operations of the SMEV 3 message-exchange service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    SendRequest,
    SendResponse,
    GetRequest,
    GetResponse,
    Ack,
    GetStatus,
    GetIncomingQueueStatistics,
}

impl Operation {
    pub const ALL: [Operation; 7] = [
        Operation::SendRequest,
        Operation::SendResponse,
        Operation::GetRequest,
        Operation::GetResponse,
        Operation::Ack,
        Operation::GetStatus,
        Operation::GetIncomingQueueStatistics,
    ];

    /// Local name of the operation's request element (namespace [`TYPES_NS`]).
    pub fn request_element(self) -> &'static str {
        match self {
            Operation::SendRequest => "SendRequestRequest",
            Operation::SendResponse => "SendResponseRequest",
            Operation::GetRequest => "GetRequestRequest",
            Operation::GetResponse => "GetResponseRequest",
            Operation::Ack => "AckRequest",
            Operation::GetStatus => "GetStatusRequest",
            Operation::GetIncomingQueueStatistics => "GetIncomingQueueStatisticsRequest",
        }
    }

    /// Namespace and local name of the block the caller signs.
    pub fn signed_block(self) -> (&'static str, &'static str) {
        match self {
            Operation::SendRequest => (TYPES_NS, "SenderProvidedRequestData"),
            Operation::SendResponse => (TYPES_NS, "SenderProvidedResponseData"),
            Operation::GetRequest | Operation::GetResponse => (BASIC_NS, "MessageTypeSelector"),
            Operation::Ack => (BASIC_NS, "AckTargetMessage"),
            Operation::GetStatus | Operation::GetIncomingQueueStatistics => (BASIC_NS, "Timestamp"),
        }
    }

    pub fn from_request_element(local_name: &str) -> Option<Operation> {
        Operation::ALL
            .into_iter()
            .find(|op| op.request_element() == local_name)
    }

    /// `/soap:Envelope/soap:Body/ns:<Operation>Request`.
    pub fn request_path(self) -> ElementPath {
        body_path().child(Some(TYPES_NS), self.request_element())
    }

    /// Where the caller's signature must stand and what it must cover.
    pub fn expectation(self) -> Expectation {
        let request = self.request_path();
        let (ns, local) = self.signed_block();
        Expectation {
            signature_parent: request.child(Some(TYPES_NS), CONTAINER),
            target: Some(request.child(Some(ns), local)),
        }
    }

    /// The operation of a SOAP 1.1 envelope: the single element in its Body.
    pub fn detect(doc: &Document) -> Result<Operation, DsigError> {
        let body = body_path().resolve(doc).map_err(|e| {
            DsigError::MalformedSignature(format!("not a SOAP 1.1 envelope: {e:?}"))
        })?;
        let children: Vec<NodeId> = doc.child_elements(body).collect();
        let [only] = children[..] else {
            return Err(DsigError::MalformedSignature(format!(
                "the SOAP Body must hold exactly one element, it holds {}",
                children.len()
            )));
        };
        let e = doc
            .element(only)
            .ok_or_else(|| DsigError::MalformedSignature("empty Body".into()))?;
        if doc.ns_uri(e.namespace()) != TYPES_NS {
            return Err(DsigError::MalformedSignature(format!(
                "{} is not a SMEV 1.1 message-exchange operation",
                doc.path(only)
            )));
        }
        Operation::from_request_element(e.local_name()).ok_or_else(|| {
            DsigError::MalformedSignature(format!("unknown operation {}", e.local_name()))
        })
    }
}

/// Signs a SMEV call in place: finds the operation's signed block, signs it with the SMEV
/// transform chain and puts the signature into its (present, empty)
/// `CallerInformationSystemSignature`.
pub fn sign_call(
    envelope: &[u8],
    limits: &Limits,
    key: &dyn Signer,
    digest: Option<DigestAlgorithm>,
) -> Result<Vec<u8>, DsigError> {
    let doc = parse(envelope, limits)?;
    let op = Operation::detect(&doc)?;
    let expect = op.expectation();
    let target_path = expect
        .target
        .as_ref()
        .ok_or_else(|| DsigError::MalformedSignature("operation without a signed block".into()))?;
    let target = target_path
        .resolve(&doc)
        .map_err(|e| DsigError::MalformedSignature(format!("{target_path}: {e:?}")))?;
    let id = doc.attribute(target, "", "Id").ok_or_else(|| {
        DsigError::MalformedSignature(format!(
            "{} has no Id attribute to reference",
            doc.path(target)
        ))
    })?;
    expect.signature_parent.resolve(&doc).map_err(|_| {
        DsigError::MalformedSignature(format!(
            "{} is missing: add an empty element there to receive the signature",
            expect.signature_parent
        ))
    })?;
    xmldsig::sign(
        envelope,
        limits,
        key,
        &Placement::Detached {
            id: id.to_string(),
            container: expect.signature_parent,
        },
        &SignOptions {
            transforms: Transforms::Smev,
            digest,
        },
    )
}

/// Verifies the caller's signature of a SMEV call at the place its operation fixes.
pub fn verify_call(
    envelope: &[u8],
    limits: &Limits,
    trust: &TrustStore,
    at: SystemTime,
) -> Result<(Operation, Verified), DsigError> {
    let doc = parse(envelope, limits)?;
    let op = Operation::detect(&doc)?;
    let verified = xmldsig::verify_document(&doc, &op.expectation(), trust, at)?;
    Ok((op, verified))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_round_trips_through_its_name_and_has_distinct_paths() {
        for op in Operation::ALL {
            assert_eq!(
                Operation::from_request_element(op.request_element()),
                Some(op)
            );
            let e = op.expectation();
            let target = e.target.expect("every call has a signed block");
            assert_ne!(target, e.signature_parent);
            assert!(target
                .to_string()
                .starts_with(&op.request_path().to_string()));
        }
        assert_eq!(Operation::from_request_element("Nope"), None);
    }

    #[test]
    fn detect_refuses_what_is_not_a_single_smev_operation() {
        let limits = Limits::default();
        let cases: [&[u8]; 4] = [
            b"<a/>",
            br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>"#,
            br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><x:AckRequest xmlns:x="urn:other"/></s:Body></s:Envelope>"#,
            br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><x:AckRequest xmlns:x="urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1"/><x:AckRequest xmlns:x="urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1"/></s:Body></s:Envelope>"#,
        ];
        for c in cases {
            let doc = parse(c, &limits).expect("parses");
            assert!(
                Operation::detect(&doc).is_err(),
                "{}",
                String::from_utf8_lossy(c)
            );
        }
        let ack = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><x:AckRequest xmlns:x="urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1"/></s:Body></s:Envelope>"#;
        let doc = parse(ack, &limits).expect("parses");
        assert_eq!(Operation::detect(&doc).expect("ack"), Operation::Ack);
    }
}
