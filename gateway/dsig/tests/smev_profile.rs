//! Every SMEV operation signed and verified at the place protocol.md §3 fixes for it.

mod common;

use common::*;
use mezhved_dsig::smev_profile::{sign_call, verify_call, Operation};
use mezhved_dsig::DsigError;
use mezhved_xml::Limits;

fn envelope(body: &str) -> Vec<u8> {
    format!(
        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns="urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1" xmlns:ns2="urn://x-artefacts-smev-gov-ru/services/message-exchange/types/basic/1.1"><soap:Body>{body}</soap:Body></soap:Envelope>"#
    )
    .into_bytes()
}

fn calls() -> Vec<(Operation, Vec<u8>)> {
    let selector = r#"<ns2:MessageTypeSelector Id="SIGNED_BY_CALLER"><ns2:Timestamp>2026-11-24T12:00:00.000+03:00</ns2:Timestamp></ns2:MessageTypeSelector>"#;
    let sig = "<ns:CallerInformationSystemSignature/>";
    vec![
        (Operation::SendRequest, fixture()),
        (
            Operation::GetRequest,
            envelope(&format!(
                "<ns:GetRequestRequest>{selector}{sig}</ns:GetRequestRequest>"
            )),
        ),
        (
            Operation::GetResponse,
            envelope(&format!(
                "<ns:GetResponseRequest>{selector}{sig}</ns:GetResponseRequest>"
            )),
        ),
        (
            Operation::Ack,
            envelope(&format!(
                r#"<ns:AckRequest><ns2:AckTargetMessage Id="SIGNED_BY_CALLER" accepted="true">6b0f5e2e-8a3c-11ee-b9d1-0242ac120002</ns2:AckTargetMessage>{sig}</ns:AckRequest>"#
            )),
        ),
        (
            Operation::GetStatus,
            envelope(&format!(
                r#"<ns:GetStatusRequest><ns2:Timestamp Id="SIGNED_BY_CALLER">2026-11-24T12:00:00.000+03:00</ns2:Timestamp>{sig}</ns:GetStatusRequest>"#
            )),
        ),
        (
            Operation::GetIncomingQueueStatistics,
            envelope(&format!(
                r#"<ns:GetIncomingQueueStatisticsRequest><ns2:Timestamp Id="SIGNED_BY_CALLER">2026-11-24T12:00:00.000+03:00</ns2:Timestamp>{sig}</ns:GetIncomingQueueStatisticsRequest>"#
            )),
        ),
        (
            Operation::SendResponse,
            envelope(&format!(
                r#"<ns:SendResponseRequest><ns:SenderProvidedResponseData Id="SIGNED_BY_CALLER"><ns:MessageID>1d2b7a10-8a3d-11ee-b9d1-0242ac120002</ns:MessageID><ns:To>eyJzaWQiOjF9</ns:To><ns:RequestRejected><ns:RejectionReasonCode>NO_DATA</ns:RejectionReasonCode><ns:RejectionReasonDescription>нет данных</ns:RejectionReasonDescription></ns:RequestRejected></ns:SenderProvidedResponseData>{sig}</ns:SendResponseRequest>"#
            )),
        ),
    ]
}

#[test]
fn every_operation_signs_and_verifies_at_its_place() {
    let key = key("gost", "consumer-is");
    for (op, call) in calls() {
        let signed = sign_call(&call, &Limits::default(), &key, None)
            .unwrap_or_else(|e| panic!("{op:?}: {e}"));
        let (found, v) = verify_call(&signed, &Limits::default(), &trust(), now())
            .unwrap_or_else(|e| panic!("{op:?}: {e}"));
        assert_eq!(found, op);
        let (_, local) = op.signed_block();
        assert!(
            String::from_utf8_lossy(&v.digested).starts_with(&format!("<ns1:{local}")),
            "{op:?}"
        );
    }
}

#[test]
fn a_signature_over_the_wrong_block_of_an_operation_is_refused() {
    // An Ack whose signature covers an element other than AckTargetMessage.
    let call = envelope(
        r#"<ns:AckRequest><ns2:AckTargetMessage Id="A" accepted="true">x</ns2:AckTargetMessage><ns:CallerInformationSystemSignature/></ns:AckRequest>"#,
    );
    let signed =
        sign_call(&call, &Limits::default(), &key("rsa", "consumer-is"), None).expect("signs");
    let moved = String::from_utf8(signed)
        .expect("utf-8")
        .replace(r#"<ns2:AckTargetMessage Id="A" accepted="true">x</ns2:AckTargetMessage>"#,
                 r#"<ns2:AckTargetMessage accepted="false">x</ns2:AckTargetMessage><ns:Extra><ns2:AckTargetMessage Id="A" accepted="true">x</ns2:AckTargetMessage></ns:Extra>"#);
    let e =
        verify_call(moved.as_bytes(), &Limits::default(), &trust(), now()).expect_err("wrapped");
    assert!(
        matches!(e, DsigError::IncorrectSignatureTarget { .. }),
        "{e}"
    );
}

#[test]
fn signing_needs_an_id_and_a_signature_container() {
    let no_id = envelope(
        r#"<ns:AckRequest><ns2:AckTargetMessage accepted="true">x</ns2:AckTargetMessage><ns:CallerInformationSystemSignature/></ns:AckRequest>"#,
    );
    let e =
        sign_call(&no_id, &Limits::default(), &key("rsa", "consumer-is"), None).expect_err("no Id");
    assert!(e.to_string().contains("no Id"), "{e}");
    let no_container = envelope(
        r#"<ns:AckRequest><ns2:AckTargetMessage Id="A" accepted="true">x</ns2:AckTargetMessage></ns:AckRequest>"#,
    );
    let e = sign_call(
        &no_container,
        &Limits::default(),
        &key("rsa", "consumer-is"),
        None,
    )
    .expect_err("no container");
    assert!(
        e.to_string().contains("CallerInformationSystemSignature"),
        "{e}"
    );
}
