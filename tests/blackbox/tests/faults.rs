//! Every way a call is refused, through the real gateway: the exact SOAP fault (detail
//! element, `soap:Client`/`soap:Server`, the signature code), and — for every refused
//! SendRequest/SendResponse — proof that nothing was written: the database's messages,
//! cards and attachments are as they were, and no file was left in the attachment area.

use bytes::Bytes;
use mezhved_blackbox::*;
use mezhved_client::{self as client, Attachment, Outgoing, RequestCard, ResponseContent};
use std::time::Duration;

const PFR_AGENCY: &str = "Pension Fund Branch of the Sample Region";

/// Replaces the one occurrence of `from` in an envelope.
#[track_caller]
fn edit(mut call: Outgoing, from: &str, to: &str) -> Outgoing {
    let text = String::from_utf8(call.envelope).expect("UTF-8 envelope");
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} must occur exactly once in {text}"
    );
    call.envelope = text.replacen(from, to, 1).into_bytes();
    call
}

fn signed(system: &TestSystem, call: Outgoing) -> Outgoing {
    call.sign(&*system.key).expect("sign")
}

fn today(gw: &TestGateway) -> String {
    chrono::DateTime::<chrono::Utc>::from(gw.now())
        .date_naive()
        .to_string()
}

fn inline(id: &str, data: Vec<u8>) -> Attachment {
    Attachment {
        content_id: id.into(),
        mime_type: "application/octet-stream".into(),
        data: Bytes::from(data),
        mtom: false,
    }
}

fn mtom(id: &str, data: Vec<u8>) -> Attachment {
    Attachment {
        mtom: true,
        ..inline(id, data)
    }
}

/// A request delivered to the provider: (global ID, ReplyTo).
async fn delivered_request(gw: &TestGateway, marker: &str) -> (String, String) {
    let sent = gw
        .consumer()
        .call(client::send_request(&gw.birth_request(marker)))
        .await;
    expect_ok(&sent);
    let got = gw
        .provider()
        .call(client::get_request(None, gw.now()))
        .await;
    expect_ok(&got);
    (
        got.global_id().expect("a request was delivered"),
        got.reply_to().expect("ReplyTo"),
    )
}

fn data_response(gw: &TestGateway, to: &str) -> Outgoing {
    client::send_response(
        client::message_id(gw.now()),
        to,
        &ResponseContent::Data(format!(
            "<r:BirthRecordResponse xmlns:r=\"{BIRTH_NS}\"><r:RecordNumber>1</r:RecordNumber></r:BirthRecordResponse>"
        )),
        &[],
    )
}

// 1. Signatures -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_calls_are_refused_with_no_signature_found() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let before = gw.written();

    let unsigned = consumer
        .send_raw(&client::send_request(&gw.birth_request("unsigned")))
        .await;
    expect_signature_fault(&unsigned, "NoSignatureFound");
    gw.assert_nothing_written_since(&before);

    // Every operation requires it, not only the sending ones.
    let get = gw
        .provider()
        .send_raw(&client::get_request(None, gw.now()))
        .await;
    expect_signature_fault(&get, "NoSignatureFound");
    let ack = consumer
        .send_raw(&client::ack(&uuid::Uuid::new_v4().to_string(), true, None))
        .await;
    expect_signature_fault(&ack, "NoSignatureFound");
    let response = gw
        .provider()
        .send_raw(&data_response(&gw, "mezhved:reply:nothing"))
        .await;
    expect_signature_fault(&response, "NoSignatureFound");
    gw.assert_nothing_written_since(&before);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_changed_after_signing_is_signature_is_invalid() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let before = gw.written();
    let call = signed(
        &consumer,
        client::send_request(&gw.birth_request("tamper-me")),
    );
    // One byte of the business content inside the signed block.
    let tampered = edit(call, "tamper-me", "tamper-mE");
    let reply = consumer.send_raw(&tampered).await;
    expect_signature_fault(&reply, "SignatureIsInvalid");
    gw.assert_nothing_written_since(&before);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_over_the_wrong_element_is_incorrect_signature_target() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let before = gw.written();

    // Signed, then the Id moved from the block to an element inside it: the Reference
    // now resolves to MessagePrimaryContent, not to SenderProvidedRequestData.
    let call = signed(&consumer, client::send_request(&gw.birth_request("moved")));
    let moved = edit(
        edit(
            call,
            "<ns:SenderProvidedRequestData Id=\"SIGNED_BY_CONSUMER\">",
            "<ns:SenderProvidedRequestData Id=\"elsewhere\">",
        ),
        "<ns2:MessagePrimaryContent>",
        "<ns2:MessagePrimaryContent Id=\"SIGNED_BY_CONSUMER\">",
    );
    let reply = consumer.send_raw(&moved).await;
    expect_signature_fault(&reply, "IncorrectSignatureTarget");
    gw.assert_nothing_written_since(&before);

    // Signed, then the Id removed from the block: the Reference resolves to nothing.
    let call = signed(&consumer, client::send_request(&gw.birth_request("gone")));
    let gone = edit(
        call,
        "<ns:SenderProvidedRequestData Id=\"SIGNED_BY_CONSUMER\">",
        "<ns:SenderProvidedRequestData>",
    );
    let reply = consumer.send_raw(&gone).await;
    expect_signature_fault(&reply, "IncorrectSignatureTarget");

    // Signed, then a second element given the same Id (signature wrapping).
    let call = signed(&consumer, client::send_request(&gw.birth_request("twice")));
    let twice = edit(
        call,
        "<ns2:MessagePrimaryContent>",
        "<ns2:MessagePrimaryContent Id=\"SIGNED_BY_CONSUMER\">",
    );
    let reply = consumer.send_raw(&twice).await;
    expect_signature_fault(&reply, "IncorrectSignatureTarget");
    gw.assert_nothing_written_since(&before);
    gw.stop().await;
}

// 2. Certificates -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_certificate_of_no_registered_system_is_sender_is_not_registered() {
    let gw = TestGateway::start().await;
    let before = gw.written();
    // Issued by trusted CAs, but deploy/sample/registry.toml registers neither: PFR_IS
    // has only the ECDSA and RSA second-consumer certificates, and no system has the
    // gateway's.
    for (alg, name) in [("gost", "second-consumer-is"), ("rsa", "gateway")] {
        let system = gw.system(alg, name);
        let reply = system
            .call(client::send_request(&gw.birth_request("unregistered")))
            .await;
        expect_client_fault(&reply, "SenderIsNotRegistered");
        gw.assert_nothing_written_since(&before);
        let get = system.call(client::get_request(None, gw.now())).await;
        expect_client_fault(&get, "SenderIsNotRegistered");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_certificate_is_not_found() {
    let gw = TestGateway::start().await;
    let before = gw.written();
    for name in ["rogue-is", "rogue-gost-is"] {
        let rogue = gw.system("rogue", name);
        let reply = rogue
            .call(client::send_request(&gw.birth_request("rogue")))
            .await;
        expect_signature_fault(&reply, "CertificateIsNotFound");
        gw.assert_nothing_written_since(&before);
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_certificate_is_expired() {
    let gw = TestGateway::start().await;
    let before = gw.written();
    for alg in ["ecdsa", "rsa", "gost"] {
        let expired = gw.system(alg, "expired");
        let reply = expired
            .call(client::send_request(&gw.birth_request("expired")))
            .await;
        expect_signature_fault(&reply, "CertificateIsExpired");
        gw.assert_nothing_written_since(&before);
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_signature_is_invalid() {
    let gw = TestGateway::start().await;
    let before = gw.written();
    // DsigError::CertificateRevoked maps to SignatureIsInvalid (gateway/dsig/src/error.rs).
    for alg in ["ecdsa", "rsa", "gost"] {
        let revoked = gw.system(alg, "revoked");
        let reply = revoked
            .call(client::send_request(&gw.birth_request("revoked")))
            .await;
        expect_signature_fault(&reply, "SignatureIsInvalid");
        assert!(
            reply.text().contains("revoked"),
            "the reason is in the description: {}",
            reply.text()
        );
        gw.assert_nothing_written_since(&before);
    }
    gw.stop().await;
}

// 3. Algorithms -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_and_gost_signed_requests_are_accepted() {
    let gw = TestGateway::start().await;
    let provider = gw.provider();
    let before = gw.written();
    let signers = [
        ("rsa", "consumer-is"),
        ("gost", "consumer-is"),
        ("gost", "consumer-is-512"),
    ];
    for (i, (alg, name)) in signers.iter().enumerate() {
        let system = gw.system(alg, name);
        let marker = format!("signed-with-{alg}-{name}");
        let mut request = gw.birth_request(&marker);
        let number = format!("USZN-2026/{}", 100 + i);
        request.card = Some(
            RequestCard::complete(CONSUMER_AGENCY, PROVIDER_AGENCY, &today(&gw), &number).to_xml(),
        );
        let sent = system.call(client::send_request(&request)).await;
        expect_ok(&sent);
        let gid = sent.global_id().expect("global ID");

        // Delivered to the provider with the sender's own signature.
        let got = provider.call(client::get_request(None, gw.now())).await;
        expect_ok(&got);
        assert_eq!(got.global_id().as_deref(), Some(gid.as_str()));
        assert!(got.text().contains(&marker));
        assert!(got.text().contains("SenderInformationSystemSignature"));
        expect_ok(&provider.call(client::ack(&gid, true, None)).await);
    }
    let after = gw.written();
    assert_eq!(
        after.messages - before.messages,
        3 + 3,
        "3 requests, 3 statuses"
    );
    gw.stop().await;
}

// 4. Routing ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_grant_is_access_denied() {
    let gw = TestGateway::start().await;
    let pfr = gw.system("ecdsa", "second-consumer-is");
    let before = gw.written();
    let mut request = gw.birth_request("no-grant");
    request.card =
        Some(RequestCard::complete(PFR_AGENCY, PROVIDER_AGENCY, &today(&gw), "PFR-1").to_xml());
    let reply = pfr.call(client::send_request(&request)).await;
    expect_client_fault(&reply, "AccessDenied");
    gw.assert_nothing_written_since(&before);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kind_is_business_data_type_is_not_supported() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let before = gw.written();
    let mut request = gw.birth_request("unknown-kind");
    request.content = "<d:DeathRecordRequest xmlns:d=\"urn://mezhved/demo/zags/death-record/1.0\"><d:Surname>Ivanov</d:Surname></d:DeathRecordRequest>".into();
    let reply = consumer.call(client::send_request(&request)).await;
    expect_client_fault(&reply, "BusinessDataTypeIsNotSupported");
    assert_eq!(
        reply
            .first_text(client::FAULTS_NS, "RootElementLocalName")
            .as_deref(),
        Some("DeathRecordRequest")
    );
    assert_eq!(
        reply
            .first_text(client::FAULTS_NS, "RootElementNamespaceURI")
            .as_deref(),
        Some("urn://mezhved/demo/zags/death-record/1.0")
    );
    gw.assert_nothing_written_since(&before);

    // The same local name in another namespace is another kind.
    let mut request = gw.birth_request("other-namespace");
    request.content = format!(
        "<b:{BIRTH_ROOT} xmlns:b=\"urn://elsewhere\"><b:Surname>I</b:Surname></b:{BIRTH_ROOT}>"
    );
    let reply = consumer.call(client::send_request(&request)).await;
    expect_client_fault(&reply, "BusinessDataTypeIsNotSupported");
    assert_eq!(
        reply
            .first_text(client::FAULTS_NS, "RootElementNamespaceURI")
            .as_deref(),
        Some("urn://elsewhere")
    );
    gw.assert_nothing_written_since(&before);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_request_for_a_kind_the_caller_does_not_provide_is_unknown_message_type() {
    let gw = TestGateway::start().await;
    expect_ok(
        &gw.consumer()
            .call(client::send_request(&gw.birth_request("waiting")))
            .await,
    );
    let before = gw.written();
    // The consumer asks for requests of a kind ZAGS_IS provides.
    let reply = gw
        .consumer()
        .call(client::get_request(Some((BIRTH_NS, BIRTH_ROOT)), gw.now()))
        .await;
    expect_client_fault(&reply, "UnknownMessageType");
    // The provider asks for a kind that is not registered at all.
    let reply = gw
        .provider()
        .call(client::get_request(
            Some(("urn://nowhere", "NothingRequest")),
            gw.now(),
        ))
        .await;
    expect_client_fault(&reply, "UnknownMessageType");
    // Nothing was leased by the refused calls.
    gw.assert_nothing_written_since(&before);
    gw.stop().await;
}

// 5. MessageID --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_id_that_is_not_a_version_1_uuid_is_invalid_message_id_format() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let before = gw.written();
    let v4 = uuid::Uuid::new_v4().to_string();
    for bad in ["not-a-uuid", v4.as_str()] {
        let request = gw.birth_request("bad-id");
        let call = edit(
            client::send_request(&request),
            &format!("<ns:MessageID>{}</ns:MessageID>", request.message_id),
            &format!("<ns:MessageID>{bad}</ns:MessageID>"),
        );
        let reply = consumer.call(call).await;
        expect_client_fault(&reply, "InvalidMessageIdFormat");
        gw.assert_nothing_written_since(&before);
    }
    // SendResponse checks its MessageID the same way.
    let (_, reply_to) = delivered_request(&gw, "for-a-bad-response-id").await;
    let before = gw.written();
    let response = data_response(&gw, &reply_to);
    let text = String::from_utf8(response.envelope.clone()).expect("UTF-8");
    let start = text.find("<ns:MessageID>").expect("MessageID") + "<ns:MessageID>".len();
    let id = &text[start..start + 36];
    let call = edit(response.clone(), id, &v4);
    let reply = gw.provider().call(call).await;
    expect_client_fault(&reply, "InvalidMessageIdFormat");
    gw.assert_nothing_written_since(&before);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_day_old_message_id_is_stale() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let before = gw.written();
    let mut request = gw.birth_request("stale");
    request.message_id = client::message_id(gw.now() - Duration::from_secs(3 * 24 * 3600));
    let reply = consumer.call(client::send_request(&request)).await;
    expect_client_fault(&reply, "StaleMessageId");
    gw.assert_nothing_written_since(&before);

    // Too far in the future (beyond the clock-skew window) is stale as well.
    let mut request = gw.birth_request("future");
    request.message_id = client::message_id(gw.now() + Duration::from_secs(3600));
    let reply = consumer.call(client::send_request(&request)).await;
    expect_client_fault(&reply, "StaleMessageId");
    gw.assert_nothing_written_since(&before);

    // A fresh ID that the gateway's clock later overtakes by three days is stale too.
    let request = gw.birth_request("stale-later");
    gw.clock.advance(Duration::from_secs(3 * 24 * 3600));
    let reply = consumer.call(client::send_request(&request)).await;
    expect_client_fault(&reply, "StaleMessageId");
    gw.assert_nothing_written_since(&before);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_message_id_is_already_sent_but_an_identical_resend_gets_the_same_answer() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let mut request = gw.birth_request("first");
    request.attachments = vec![
        inline("form", b"application form".repeat(10)),
        mtom("scan", vec![7u8; 50_000]),
    ];
    let first_call = signed(&consumer, client::send_request(&request));
    let first = consumer.send_raw(&first_call).await;
    expect_ok(&first);
    let after_first = gw.written();
    assert_eq!(after_first.files.len(), 2, "{after_first:?}");

    // A different message under the same MessageID: refused, and its files removed.
    let mut different = request.clone();
    different.content = different.content.replace("first", "second");
    let reply = consumer.call(client::send_request(&different)).await;
    expect_client_fault(&reply, "MessageIsAlreadySent");
    gw.assert_nothing_written_since(&after_first);

    // Different attachments under the same MessageID are a different message too.
    let mut other_attachment = request.clone();
    other_attachment.attachments[1] = mtom("scan", vec![8u8; 50_000]);
    let reply = consumer.call(client::send_request(&other_attachment)).await;
    expect_client_fault(&reply, "MessageIsAlreadySent");
    gw.assert_nothing_written_since(&after_first);

    // The identical resend (re-sent as is, and re-signed) gets the very same bytes, and
    // writes nothing either.
    let again = consumer.send_raw(&first_call).await;
    expect_ok(&again);
    assert_eq!(again.envelope, first.envelope);
    let resigned = consumer.call(client::send_request(&request)).await;
    expect_ok(&resigned);
    assert_eq!(resigned.envelope, first.envelope);
    gw.assert_nothing_written_since(&after_first);

    // The same rule for SendResponse: a second, different response under a used
    // MessageID is refused; the identical one gets its first answer.
    let got = gw
        .provider()
        .call(client::get_request(None, gw.now()))
        .await;
    let reply_to = got.reply_to().expect("ReplyTo");
    let response_id = client::message_id(gw.now());
    let status = |code: i32| {
        client::send_response(
            response_id,
            &reply_to,
            &ResponseContent::Status {
                code,
                description: "in progress".into(),
                parameters: Vec::new(),
            },
            &[],
        )
    };
    let first_status = gw.provider().call(status(1)).await;
    expect_ok(&first_status);
    let after_status = gw.written();
    let conflict = gw.provider().call(status(2)).await;
    expect_client_fault(&conflict, "MessageIsAlreadySent");
    let resent = gw.provider().call(status(1)).await;
    expect_ok(&resent);
    assert_eq!(resent.envelope, first_status.envelope);
    gw.assert_nothing_written_since(&after_status);

    // The same MessageID from another system is that system's own ID: not a conflict
    // (here refused only because PFR_IS has no grant).
    let pfr = gw.system("ecdsa", "second-consumer-is");
    let reply = pfr.call(client::send_request(&different)).await;
    expect_client_fault(&reply, "AccessDenied");
    gw.assert_nothing_written_since(&after_status);
    gw.stop().await;
}

// 6. Request card -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_card_is_invalid_content() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let before = gw.written();
    let mut request = gw.birth_request("no-card");
    request.card = None;
    let reply = consumer.call(client::send_request(&request)).await;
    expect_client_fault(&reply, "InvalidContent");
    let errors = validation_errors(&reply);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].0.is_some(), "errorPosition: {errors:?}");
    assert!(
        errors[0].1.contains("request card is missing"),
        "{errors:?}"
    );
    gw.assert_nothing_written_since(&before);

    // Something else in BusinessProcessMetadata is not a card either.
    let mut request = gw.birth_request("foreign-card");
    request.card = Some("<x:Other xmlns:x=\"urn://other\">x</x:Other>".into());
    let reply = consumer.call(client::send_request(&request)).await;
    expect_client_fault(&reply, "InvalidContent");
    assert_eq!(validation_errors(&reply).len(), 1, "{}", reply.text());
    gw.assert_nothing_written_since(&before);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_missing_several_items_lists_every_violation() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let before = gw.written();
    let mut card = RequestCard::complete(CONSUMER_AGENCY, PROVIDER_AGENCY, &today(&gw), "N-1");
    card.sender_agency = None;
    card.sent_on = None;
    card.official_phone = None;
    card.official_email = None;
    let mut request = gw.birth_request("incomplete-card");
    request.card = Some(card.to_xml());
    let call = signed(&consumer, client::send_request(&request));
    let reply = consumer.send_raw(&call).await;
    expect_client_fault(&reply, "InvalidContent");
    let errors = validation_errors(&reply);
    assert!(errors.len() >= 3, "{errors:?}");
    let envelope_len = call.envelope.len();
    for (position, message) in &errors {
        let p: usize = position
            .as_deref()
            .unwrap_or_else(|| panic!("no errorPosition on {message}"))
            .parse()
            .expect("errorPosition is an int");
        assert!(p > 0 && p < envelope_len, "{p} for {message}");
    }
    for item in ["SenderAgency", "SentOn", "Official"] {
        assert!(
            errors.iter().any(|(_, m)| m.contains(item)),
            "no violation names {item}: {errors:?}"
        );
    }
    assert!(
        errors
            .iter()
            .any(|(_, m)| m.contains("phone or e-mail is required")),
        "{errors:?}"
    );
    gw.assert_nothing_written_since(&before);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_recipient_agency_is_a_violation() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let before = gw.written();
    let mut request = gw.birth_request("wrong-recipient");
    request.card =
        Some(RequestCard::complete(CONSUMER_AGENCY, PFR_AGENCY, &today(&gw), "N-2").to_xml());
    let reply = consumer.call(client::send_request(&request)).await;
    expect_client_fault(&reply, "InvalidContent");
    let errors = validation_errors(&reply);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].1.contains("RecipientAgency"), "{errors:?}");
    assert!(errors[0].0.is_some());
    gw.assert_nothing_written_since(&before);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_refused_after_the_attachments_were_written_leaves_no_file() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let before = gw.written();
    let mut request = gw.birth_request("card-after-files");
    request.card = None;
    request.attachments = vec![
        inline("form", b"inline bytes".repeat(100)),
        mtom("scan", vec![1u8; 200_000]),
        mtom("photo", vec![2u8; 10_000]),
    ];
    let reply = consumer.call(client::send_request(&request)).await;
    expect_client_fault(&reply, "InvalidContent");
    gw.assert_nothing_written_since(&before);
    assert!(before.files.is_empty());
    gw.stop().await;
}

// 7. Input ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_envelope_is_invalid_content() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let before = gw.written();
    let mut call = signed(&consumer, client::send_request(&gw.birth_request("cut")));
    let half = call.envelope.len() / 2;
    call.envelope.truncate(half);
    let reply = consumer.send_raw(&call).await;
    expect_client_fault(&reply, "InvalidContent");
    assert_eq!(validation_errors(&reply).len(), 1, "{}", reply.text());

    let reply = consumer
        .client
        .post_raw("text/xml; charset=utf-8", b"not XML at all".to_vec())
        .await
        .expect("HTTP");
    expect_client_fault(&reply, "InvalidContent");

    // An MTOM call cut off in the middle of its attachment: the part already streamed to
    // a file is removed.
    let mut request = gw.birth_request("cut-mtom");
    request.attachments = vec![mtom("scan", vec![9u8; 100_000])];
    let call = signed(&consumer, client::send_request(&request));
    let (content_type, body) = mtom_bytes(&call).await;
    let reply = consumer
        .client
        .post_raw(&content_type, body[..body.len() - 50_000].to_vec())
        .await
        .expect("HTTP");
    expect_client_fault(&reply, "InvalidContent");
    assert!(reply.text().contains("MTOM"), "{}", reply.text());
    gw.assert_nothing_written_since(&before);

    // A SOAP 1.2 envelope is not a SOAP 1.1 call.
    let call = signed(&consumer, client::send_request(&gw.birth_request("soap12")));
    let soap12 = edit(
        call,
        client::SOAP11_NS,
        "http://www.w3.org/2003/05/soap-envelope",
    );
    let reply = consumer.send_raw(&soap12).await;
    expect_client_fault(&reply, "InvalidContent");

    // Well-formed, but not a SMEV operation.
    let reply = consumer
        .client
        .post_raw(
            "text/xml; charset=utf-8",
            format!(
                "<soap:Envelope xmlns:soap=\"{}\"><soap:Body><x:Hello xmlns:x=\"urn://x\"/></soap:Body></soap:Envelope>",
                client::SOAP11_NS
            )
            .into_bytes(),
        )
        .await
        .expect("HTTP");
    expect_client_fault(&reply, "InvalidContent");
    gw.assert_nothing_written_since(&before);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doctype_with_an_entity_is_invalid_content() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let before = gw.written();
    let call = signed(
        &consumer,
        client::send_request(&gw.birth_request("ENTITY-REFERENCE")),
    );
    let text = String::from_utf8(call.envelope).expect("UTF-8");
    let doc = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE soap:Envelope [<!ENTITY e \"expanded\">]>{}",
        text.replacen("ENTITY-REFERENCE", "&e;", 1)
    )
    .into_bytes();
    let reply = consumer
        .client
        .post_raw("text/xml; charset=utf-8", doc)
        .await
        .expect("HTTP");
    expect_client_fault(&reply, "InvalidContent");
    let errors = validation_errors(&reply);
    assert_eq!(errors.len(), 1, "{errors:?}");
    gw.assert_nothing_written_since(&before);

    // The billion-laughs shape is refused the same way, before any expansion.
    let bomb = format!(
        "<!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]><soap:Envelope xmlns:soap=\"{}\"><soap:Body>&c;</soap:Body></soap:Envelope>",
        client::SOAP11_NS
    );
    let reply = consumer
        .client
        .post_raw("text/xml; charset=utf-8", bomb.into_bytes())
        .await
        .expect("HTTP");
    expect_client_fault(&reply, "InvalidContent");
    gw.assert_nothing_written_since(&before);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_over_the_size_limit_is_invalid_content() {
    let gw = TestGateway::start_with(|c| {
        c.limits.max_envelope_bytes = 8192;
        c.limits.inline_delivery_limit = 4096;
    })
    .await;
    let consumer = gw.consumer();
    let before = gw.written();
    let big = "x".repeat(12_000);
    let reply = consumer
        .call(client::send_request(&gw.birth_request(&big)))
        .await;
    expect_client_fault(&reply, "InvalidContent");
    assert!(
        reply.text().contains("larger than 8192"),
        "{}",
        reply.text()
    );
    gw.assert_nothing_written_since(&before);

    // As the root part of an MTOM call, with a (small) attachment.
    let mut request = gw.birth_request(&big);
    request.attachments = vec![mtom("scan", vec![3u8; 1000])];
    let reply = consumer.call(client::send_request(&request)).await;
    expect_client_fault(&reply, "InvalidContent");
    gw.assert_nothing_written_since(&before);

    // Just under the limit is fine.
    expect_ok(
        &consumer
            .call(client::send_request(&gw.birth_request("small")))
            .await,
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_over_the_size_limit_is_attachment_size_limit_exceeded() {
    let gw = TestGateway::start_with(|c| {
        c.limits.max_attachment_bytes = 4096;
        c.limits.max_total_attachment_bytes = 5000;
    })
    .await;
    let consumer = gw.consumer();
    let before = gw.written();

    // One MTOM part over the per-attachment limit.
    let mut request = gw.birth_request("big-mtom");
    request.attachments = vec![mtom("scan", vec![5u8; 10_000])];
    let reply = consumer.call(client::send_request(&request)).await;
    expect_client_fault(&reply, "AttachmentSizeLimitExceeded");
    gw.assert_nothing_written_since(&before);

    // One inline attachment over the per-attachment limit.
    let mut request = gw.birth_request("big-inline");
    request.attachments = vec![inline("scan", vec![5u8; 10_000])];
    let reply = consumer.call(client::send_request(&request)).await;
    expect_client_fault(&reply, "AttachmentSizeLimitExceeded");
    assert_eq!(
        reply
            .first_text(client::FAULTS_NS, "PermittedTotalAttachmentSize")
            .as_deref(),
        Some("4096")
    );
    gw.assert_nothing_written_since(&before);

    // Each within the limit, together over the total.
    let mut request = gw.birth_request("big-total");
    request.attachments = vec![inline("a", vec![1u8; 3000]), mtom("b", vec![2u8; 3000])];
    let reply = consumer.call(client::send_request(&request)).await;
    expect_client_fault(&reply, "AttachmentSizeLimitExceeded");
    assert_eq!(
        reply
            .first_text(client::FAULTS_NS, "PermittedTotalAttachmentSize")
            .as_deref(),
        Some("5000")
    );
    assert_eq!(
        reply
            .first_text(client::FAULTS_NS, "RealTotalAttachmentSize")
            .as_deref(),
        Some("6000")
    );
    gw.assert_nothing_written_since(&before);

    // A SendResponse's attachments obey the same limits.
    let (_, reply_to) = delivered_request(&gw, "answer-with-a-big-file").await;
    let before = gw.written();
    let response = client::send_response(
        client::message_id(gw.now()),
        &reply_to,
        &ResponseContent::Data(format!(
            "<r:BirthRecordResponse xmlns:r=\"{BIRTH_NS}\"><r:RecordNumber>1</r:RecordNumber></r:BirthRecordResponse>"
        )),
        &[mtom("copy", vec![9u8; 10_000])],
    );
    let reply = gw.provider().call(response).await;
    expect_client_fault(&reply, "AttachmentSizeLimitExceeded");
    gw.assert_nothing_written_since(&before);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachment_headers_and_contents_that_do_not_match_are_miscoordination() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let before = gw.written();

    // A header without content: the content list (outside the signed block) dropped.
    let mut request = gw.birth_request("header-only");
    request.attachments = vec![inline("form", b"form".repeat(20))];
    let call = signed(&consumer, client::send_request(&request));
    let text = String::from_utf8(call.envelope.clone()).expect("UTF-8");
    let start = text.find("<ns2:AttachmentContentList>").expect("list");
    let end = text.find("</ns2:AttachmentContentList>").expect("list end")
        + "</ns2:AttachmentContentList>".len();
    let without = Outgoing {
        envelope: format!("{}{}", &text[..start], &text[end..]).into_bytes(),
        parts: Vec::new(),
    };
    let reply = consumer.send_raw(&without).await;
    expect_client_fault(&reply, "AttachmentContentMiscoordination");
    gw.assert_nothing_written_since(&before);

    // Content without a header: a content list added after signing.
    let call = signed(
        &consumer,
        client::send_request(&gw.birth_request("content-only")),
    );
    let extra = edit(
        call,
        "</ns:SenderProvidedRequestData>",
        "</ns:SenderProvidedRequestData><ns2:AttachmentContentList><ns2:AttachmentContent><ns2:Id>smuggled</ns2:Id><ns2:Content>c211Z2dsZWQ=</ns2:Content></ns2:AttachmentContent></ns2:AttachmentContentList>",
    );
    let reply = consumer.send_raw(&extra).await;
    expect_client_fault(&reply, "AttachmentContentMiscoordination");
    gw.assert_nothing_written_since(&before);

    // An MTOM part that no attachment refers to.
    let mut call = signed(
        &consumer,
        client::send_request(&gw.birth_request("stray-part")),
    );
    call.parts.push((
        "stray".into(),
        "application/octet-stream".into(),
        Bytes::from(vec![4u8; 5000]),
    ));
    let reply = consumer.send_raw(&call).await;
    expect_client_fault(&reply, "AttachmentContentMiscoordination");
    gw.assert_nothing_written_since(&before);

    // A signed xop:Include whose MIME part the call does not carry.
    let mut request = gw.birth_request("missing-part");
    request.attachments = vec![
        inline("form", b"form".repeat(20)),
        mtom("scan", vec![6u8; 5000]),
    ];
    let mut call = signed(&consumer, client::send_request(&request));
    call.parts.clear();
    let reply = consumer.send_raw(&call).await;
    expect_client_fault(&reply, "AttachmentContentMiscoordination");
    gw.assert_nothing_written_since(&before);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_past_end_of_life_is_end_of_life_reached() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let before = gw.written();
    let mut request = gw.birth_request("too-late");
    request.eol = Some(gw.now() - Duration::from_secs(60));
    request.attachments = vec![mtom("scan", vec![1u8; 4000])];
    let reply = consumer.call(client::send_request(&request)).await;
    expect_client_fault(&reply, "EndOfLifeReached");
    gw.assert_nothing_written_since(&before);

    // A future EOL is accepted; the same one, once the clock passed it, is not.
    let mut request = gw.birth_request("in-time");
    request.eol = Some(gw.now() + Duration::from_secs(3600));
    expect_ok(&consumer.call(client::send_request(&request)).await);
    let accepted = gw.written();
    let mut late = request.clone();
    late.message_id = client::message_id(gw.now() + Duration::from_secs(7200));
    gw.clock.advance(Duration::from_secs(7200));
    let reply = consumer.call(client::send_request(&late)).await;
    expect_client_fault(&reply, "EndOfLifeReached");
    gw.assert_nothing_written_since(&accepted);
    gw.stop().await;
}

// 8. Responses and Acks -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_from_a_system_that_was_not_addressed_is_recipient_is_not_found() {
    let gw = TestGateway::start().await;
    let (_, reply_to) = delivered_request(&gw, "answer-me").await;
    let before = gw.written();

    // The consumer answers its own request.
    let reply = gw.consumer().call(data_response(&gw, &reply_to)).await;
    expect_client_fault(&reply, "RecipientIsNotFound");
    gw.assert_nothing_written_since(&before);

    // A third system answers it, with an attachment.
    let pfr = gw.system("ecdsa", "second-consumer-is");
    let response = client::send_response(
        client::message_id(gw.now()),
        &reply_to,
        &ResponseContent::Data(format!(
            "<r:BirthRecordResponse xmlns:r=\"{BIRTH_NS}\"><r:RecordNumber>2</r:RecordNumber></r:BirthRecordResponse>"
        )),
        &[mtom("letter", vec![1u8; 3000]), inline("note", b"note".to_vec())],
    );
    let reply = pfr.call(response).await;
    expect_client_fault(&reply, "RecipientIsNotFound");
    gw.assert_nothing_written_since(&before);

    // The addressee may.
    expect_ok(&gw.provider().call(data_response(&gw, &reply_to)).await);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_to_nothing_is_recipient_is_not_found() {
    let gw = TestGateway::start().await;
    let (request_gid, reply_to) = delivered_request(&gw, "exists").await;
    let before = gw.written();
    let provider = gw.provider();
    let unknown = format!("mezhved:reply:{}", uuid::Uuid::new_v4());
    for to in [unknown.as_str(), "nonsense", request_gid.as_str(), ""] {
        let reply = provider.call(data_response(&gw, to)).await;
        expect_client_fault(&reply, "RecipientIsNotFound");
        gw.assert_nothing_written_since(&before);
    }
    // A response is not something to answer: its global ID as a ReplyTo names nothing.
    let answered = provider.call(data_response(&gw, &reply_to)).await;
    expect_ok(&answered);
    let response_gid = answered.global_id().expect("response global ID");
    let after = gw.written();
    let reply = provider
        .call(data_response(&gw, &format!("mezhved:reply:{response_gid}")))
        .await;
    expect_client_fault(&reply, "RecipientIsNotFound");
    gw.assert_nothing_written_since(&after);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_of_an_unknown_or_someone_elses_message_is_target_message_is_not_found() {
    let gw = TestGateway::start().await;
    let (request_gid, _) = delivered_request(&gw, "ack-me").await;
    let before = gw.written();

    let unknown = uuid::Uuid::new_v4().to_string();
    for target in [unknown.as_str(), "not-an-id"] {
        let reply = gw.provider().call(client::ack(target, true, None)).await;
        expect_client_fault(&reply, "TargetMessageIsNotFound");
    }
    // The request was delivered to ZAGS_IS: neither its sender nor a third system may
    // acknowledge (or release) it.
    for accepted in [true, false] {
        let reply = gw
            .consumer()
            .call(client::ack(&request_gid, accepted, Some(("X-1", gw.now()))))
            .await;
        expect_client_fault(&reply, "TargetMessageIsNotFound");
        let reply = gw
            .system("ecdsa", "second-consumer-is")
            .call(client::ack(&request_gid, accepted, None))
            .await;
        expect_client_fault(&reply, "TargetMessageIsNotFound");
    }
    gw.assert_nothing_written_since(&before);
    // Its addressee may.
    expect_ok(
        &gw.provider()
            .call(client::ack(&request_gid, true, None))
            .await,
    );
    gw.stop().await;
}

// The fault envelope itself -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_is_a_soap_1_1_fault_with_one_typed_detail() {
    let gw = TestGateway::start().await;
    let reply = gw
        .consumer()
        .send_raw(&client::send_request(&gw.birth_request("x")))
        .await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.content_type.starts_with("text/xml"),
        "{}",
        reply.content_type
    );
    let doc = reply.document().expect("the fault parses");
    let fault = client::find(&doc, client::SOAP11_NS, "Fault").expect("soap:Fault");
    let names: Vec<String> = doc
        .child_elements(fault)
        .filter_map(|c| doc.element(c).map(|e| e.local_name().to_string()))
        .collect();
    assert_eq!(names, ["faultcode", "faultstring", "detail"]);
    let detail = doc.child_elements(fault).nth(2).expect("detail");
    assert_eq!(doc.child_elements(detail).count(), 1);
    let typed = doc.child_elements(detail).next().expect("typed detail");
    assert_eq!(doc.element_ns_uri(typed), client::FAULTS_NS);
    assert!(reply
        .first_text("", "faultstring")
        .is_some_and(|s| !s.is_empty()));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_own_failure_is_smev_failure_from_the_server_and_writes_nothing() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let before = gw.written();
    // The attachment area becomes unusable: a file where the directory was.
    let area = gw.data_dir.join("attachments");
    std::fs::remove_dir(&area).expect("the attachment area is empty");
    std::fs::write(&area, b"not a directory").expect("block the attachment area");
    for attachment in [
        inline("form", b"form".repeat(10)),
        mtom("scan", vec![1u8; 3000]),
    ] {
        let mut request = gw.birth_request("no-room");
        request.attachments = vec![attachment];
        let reply = consumer.call(client::send_request(&request)).await;
        expect_fault(&reply, "SMEVFailure");
        assert_eq!(
            reply.fault_code().as_deref(),
            Some("soap:Server"),
            "{}",
            reply.text()
        );
    }
    std::fs::remove_file(&area).expect("unblock");
    std::fs::create_dir(&area).expect("restore the attachment area");
    gw.assert_nothing_written_since(&before);
    // The caller retries (as SMEVFailure tells it to) and succeeds.
    let mut request = gw.birth_request("retried");
    request.attachments = vec![inline("form", b"form".repeat(10))];
    expect_ok(&consumer.call(client::send_request(&request)).await);
    gw.stop().await;
}
