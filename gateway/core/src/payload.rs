//! What a queued message carries until it is acknowledged: the sender's signed block and
//! signature, byte-for-byte, plus the few facts the delivery needs. Encoded as a short
//! sequence of length-prefixed fields (the store treats it as opaque bytes).

use mezhved_xml::{Document, NodeId};

const VERSION: u8 = 1;

/// The delivery material of one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredPayload {
    /// `SenderProvidedRequestData`/`SenderProvidedResponseData` as signed, made standalone
    /// (see [`standalone_element`]).
    pub block: Vec<u8>,
    /// The sender's `ds:Signature`, standalone.
    pub signature: Vec<u8>,
    /// `HumanReadableName` of the sending system at acceptance.
    pub sender_name: String,
    /// For a response: the MessageID the consumer gave its request.
    pub original_message_id: String,
    /// For a response: the request's TransactionCode, if any.
    pub original_transaction_code: String,
    /// The sender's registration (number, date) from the request card, if any.
    pub sender_registration: Option<(String, String)>,
}

fn put(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

fn take<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = input.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return None;
    }
    let (field, rest) = rest.split_at(len);
    *input = rest;
    Some(field)
}

impl StoredPayload {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.block.len() + self.signature.len() + 256);
        out.push(VERSION);
        put(&mut out, &self.block);
        put(&mut out, &self.signature);
        put(&mut out, self.sender_name.as_bytes());
        put(&mut out, self.original_message_id.as_bytes());
        put(&mut out, self.original_transaction_code.as_bytes());
        match &self.sender_registration {
            Some((n, d)) => {
                out.push(1);
                put(&mut out, n.as_bytes());
                put(&mut out, d.as_bytes());
            }
            None => out.push(0),
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<StoredPayload> {
        let (&version, mut input) = bytes.split_first()?;
        if version != VERSION {
            return None;
        }
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
        let block = take(&mut input)?.to_vec();
        let signature = take(&mut input)?.to_vec();
        let sender_name = text(take(&mut input)?)?;
        let original_message_id = text(take(&mut input)?)?;
        let original_transaction_code = text(take(&mut input)?)?;
        let (&flag, mut rest) = input.split_first()?;
        let sender_registration = if flag == 1 {
            let n = text(take(&mut rest)?)?;
            let d = text(take(&mut rest)?)?;
            Some((n, d))
        } else {
            None
        };
        Some(StoredPayload {
            block,
            signature,
            sender_name,
            original_message_id,
            original_transaction_code,
            sender_registration,
        })
    }
}

/// The bytes of element `id` exactly as they stand in `input`, with the namespace
/// declarations it inherits from its ancestors added to its start tag, so that it can be
/// embedded anywhere and still mean the same. Exclusive c14n (and the SMEV transform
/// after it) render only the namespaces an element visibly uses, wherever they were
/// declared, so the digest of the block is unchanged.
pub fn standalone_element(doc: &Document, input: &[u8], id: NodeId) -> Vec<u8> {
    let Some(e) = doc.element(id) else {
        return Vec::new();
    };
    let span = e.span();
    let own: Vec<&str> = e.namespace_declarations().map(|d| d.prefix()).collect();
    let mut extra = Vec::new();
    for (prefix, ns) in doc.in_scope_namespaces(id) {
        if own.contains(&prefix) {
            continue;
        }
        if prefix.is_empty() {
            extra.extend_from_slice(b" xmlns=\"");
        } else {
            extra.extend_from_slice(b" xmlns:");
            extra.extend_from_slice(prefix.as_bytes());
            extra.extend_from_slice(b"=\"");
        }
        crate::xmlw::escape_attr(doc.ns_uri(ns), &mut extra);
        extra.push(b'"');
    }
    let name_end = span.start + 1 + e.name().qname().len();
    let mut out = Vec::with_capacity(span.end - span.start + extra.len());
    out.extend_from_slice(&input[span.start..name_end]);
    out.extend_from_slice(&extra);
    out.extend_from_slice(&input[name_end..span.end]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mezhved_xml::{c14n, parse, Limits};

    #[test]
    fn payload_round_trips() {
        let p = StoredPayload {
            block: b"<a/>".to_vec(),
            signature: b"<ds:Signature/>".to_vec(),
            sender_name: "IS".into(),
            original_message_id: "x".into(),
            original_transaction_code: String::new(),
            sender_registration: Some(("N-1".into(), "2026-11-30".into())),
        };
        assert_eq!(StoredPayload::decode(&p.encode()), Some(p.clone()));
        let mut none = p;
        none.sender_registration = None;
        assert_eq!(StoredPayload::decode(&none.encode()), Some(none));
        assert_eq!(StoredPayload::decode(b"\x01\x00\x00\x00\x09ab"), None);
    }

    #[test]
    fn standalone_element_keeps_the_canonical_form() {
        let xml =
            br#"<r xmlns="urn:d" xmlns:a="urn:a" xmlns:b="urn:b"><a:x b:k="1"><y>t</y></a:x></r>"#;
        let limits = Limits::default();
        let doc = parse(xml, &limits).expect("parses");
        let x = doc.child_elements(doc.root()).next().expect("child");
        let alone = standalone_element(&doc, xml, x);
        let doc2 = parse(&alone, &limits).expect("standalone parses");
        let opts = c14n::ExcC14nOptions::default();
        let mut a = Vec::new();
        c14n::canonicalize(&doc, x, None, &opts, &mut a);
        let mut b = Vec::new();
        c14n::canonicalize(&doc2, doc2.root(), None, &opts, &mut b);
        assert_eq!(a, b);
        assert!(alone.starts_with(b"<a:x xmlns=\"urn:d\" xmlns:a=\"urn:a\" xmlns:b=\"urn:b\" b:k"));
    }
}
