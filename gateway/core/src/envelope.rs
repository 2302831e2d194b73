//! The gateway's own SOAP answers: envelopes, `MessageMetadata`, the `mz:Registration`
//! header, and the gateway's signatures over them (`SMEVSignature`, and an enveloped
//! signature inside the registration header).

use crate::clock::xs_datetime;
use crate::error::ExchangeError;
use crate::xmlw::XmlWriter;
use mezhved_dsig::smev_profile::{BASIC_NS, SOAP11_NS, TYPES_NS};
use mezhved_dsig::xmldsig::{self, Placement, SignOptions, Signer, Transforms};
use mezhved_xml::{ElementPath, Limits};
use std::time::SystemTime;

pub const MZ_NS: &str = "urn://mezhved/ext/1.0";
pub const XOP_NS: &str = "http://www.w3.org/2004/08/xop/include";

/// The namespace declarations every answer carries on its Envelope.
pub fn open_envelope(w: &mut XmlWriter) {
    w.open(
        "soap:Envelope",
        &[
            ("xmlns:soap", SOAP11_NS),
            ("xmlns:ns", TYPES_NS),
            ("xmlns:ns2", BASIC_NS),
        ],
    );
}

/// `MessageMetadata` fields (protocol.md §3).
#[derive(Debug, Clone)]
pub struct Metadata<'a> {
    pub id: &'a str,
    pub message_id: &'a str,
    pub message_type: &'a str,
    pub sender_mnemonic: &'a str,
    pub sender_name: &'a str,
    pub sending_timestamp: SystemTime,
    pub broker: &'a str,
    pub destination: &'a str,
    pub recipient: Option<(&'a str, &'a str)>,
    pub content_type_name: Option<&'a str>,
    pub delivery_timestamp: Option<SystemTime>,
    pub status: Option<&'a str>,
}

pub fn write_metadata(w: &mut XmlWriter, m: &Metadata<'_>) {
    let attrs: &[(&str, &str)] = if m.id.is_empty() {
        &[]
    } else {
        &[("Id", m.id)]
    };
    w.open("ns:MessageMetadata", attrs)
        .leaf("ns:MessageId", m.message_id)
        .leaf("ns:MessageType", m.message_type)
        .open("ns:Sender", &[])
        .leaf("ns:Mnemonic", m.sender_mnemonic)
        .leaf("ns:HumanReadableName", m.sender_name)
        .close("ns:Sender")
        .leaf("ns:SendingTimestamp", &xs_datetime(m.sending_timestamp))
        .leaf("ns:MessageBroker", m.broker)
        .leaf("ns:DestinationName", m.destination);
    if let Some((mnemonic, name)) = m.recipient {
        w.open("ns:Recipient", &[])
            .leaf("ns:Mnemonic", mnemonic)
            .leaf("ns:HumanReadableName", name)
            .close("ns:Recipient");
    }
    w.open("ns:SupplementaryData", &[]);
    if let Some(name) = m.content_type_name {
        w.leaf("ns:DetectedContentTypeName", name);
    }
    w.leaf("ns:InteractionType", "OIV2OIV")
        .close("ns:SupplementaryData");
    if let Some(t) = m.delivery_timestamp {
        w.leaf("ns:DeliveryTimestamp", &xs_datetime(t));
    }
    if let Some(s) = m.status {
        w.leaf("ns:Status", s);
    }
    w.close("ns:MessageMetadata");
}

/// The `mz:Registration` header (protocol.md §5).
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    pub id: &'a str,
    pub global_id: &'a str,
    pub checksum: &'a [u8; 32],
    pub received_at: SystemTime,
    /// The reply deadline (requests).
    pub due_at: Option<SystemTime>,
    pub sender_registration: Option<(&'a str, &'a str)>,
    /// The message (a response) arrived after its request's deadline.
    pub late: bool,
}

pub const CHECKSUM_ALGORITHM: &str = "urn://mezhved/checksum/sha256-v1";

/// The header, standalone (it declares what it uses) and signed by the gateway with an
/// enveloped signature, so it can be placed in any envelope unchanged.
pub fn signed_registration(
    r: &Registration<'_>,
    key: Option<&dyn Signer>,
    limits: &Limits,
) -> Result<Vec<u8>, ExchangeError> {
    use base64::Engine as _;
    let mut w = XmlWriter::with_capacity(1024);
    w.open("mz:Registration", &[("xmlns:mz", MZ_NS), ("Id", r.id)])
        .leaf("mz:GlobalId", r.global_id)
        .open("mz:Checksum", &[("algorithm", CHECKSUM_ALGORITHM)])
        .text(&base64::engine::general_purpose::STANDARD.encode(r.checksum))
        .close("mz:Checksum")
        .leaf("mz:ReceivedAt", &xs_datetime(r.received_at));
    if let Some(due) = r.due_at {
        w.leaf("mz:DueAt", &xs_datetime(due));
    }
    if let Some((number, date)) = r.sender_registration {
        w.open("mz:SenderRegistration", &[])
            .leaf("mz:Number", number)
            .leaf("mz:Date", date)
            .close("mz:SenderRegistration");
    }
    if r.late {
        w.leaf("mz:Late", "true");
    }
    w.close("mz:Registration");
    let xml = w.into_bytes();
    match key {
        None => Ok(xml),
        Some(key) => Ok(xmldsig::sign(
            &xml,
            limits,
            key,
            &Placement::Enveloped {
                id: Some(r.id.to_string()),
            },
            &SignOptions {
                transforms: Transforms::Enveloped,
                digest: None,
            },
        )?),
    }
}

/// Signs the element with Id `id` and puts the detached signature into the (present,
/// empty) element at `container` (`SMEVSignature`).
pub fn sign_detached(
    envelope: Vec<u8>,
    id: &str,
    container: &[(&str, &str)],
    key: Option<&dyn Signer>,
    limits: &Limits,
) -> Result<Vec<u8>, ExchangeError> {
    let Some(key) = key else {
        return Ok(envelope);
    };
    let mut path = ElementPath::new(vec![])
        .child(Some(SOAP11_NS), "Envelope")
        .child(Some(SOAP11_NS), "Body");
    for (ns, local) in container {
        path = path.child(Some(ns), local);
    }
    Ok(xmldsig::sign(
        &envelope,
        limits,
        key,
        &Placement::Detached {
            id: id.to_string(),
            container: path,
        },
        &SignOptions::smev(),
    )?)
}

/// An answer with an empty body element, e.g. `<ns:AckResponse/>`.
pub fn empty_answer(local_name: &str) -> Vec<u8> {
    let mut w = XmlWriter::with_capacity(256);
    open_envelope(&mut w);
    w.open("soap:Body", &[])
        .empty(&format!("ns:{local_name}"), &[])
        .close("soap:Body")
        .close("soap:Envelope");
    w.into_bytes()
}
