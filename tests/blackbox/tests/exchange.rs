//! An agency's day through the real gateway: a consumer asks, the provider picks the
//! request up, registers and acknowledges it, answers; the consumer picks the answer up
//! and acknowledges it. With data, with a rejection, with an intermediate status, with
//! inline and MTOM attachments, and with every step repeated to show idempotency.

use bytes::Bytes;
use mezhved_blackbox::*;
use mezhved_client::{self as client, Attachment, ResponseContent, TYPES_NS};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_answered_with_data_and_acknowledged_on_both_sides() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let provider = gw.provider();

    let request = gw.birth_request("marker-data-1");
    let sent = consumer.call(client::send_request(&request)).await;
    expect_ok(&sent);
    let global_id = sent.global_id().expect("a global ID");
    assert_eq!(
        sent.first_text(TYPES_NS, "Status").as_deref(),
        Some("requestIsQueued")
    );
    assert_eq!(
        sent.first_text(client::MZ_NS, "GlobalId").as_deref(),
        Some(global_id.as_str())
    );
    assert!(sent.first_text(client::MZ_NS, "Checksum").is_some());
    assert_eq!(
        sent.first_text(client::MZ_NS, "Number").as_deref(),
        Some("USZN-2026/0001")
    );

    // The identical resend gets the very same answer.
    let again = consumer.call(client::send_request(&request)).await;
    expect_ok(&again);
    assert_eq!(again.envelope, sent.envelope);

    let got = provider.call(client::get_request(None, gw.now())).await;
    expect_ok(&got);
    assert_eq!(got.global_id().as_deref(), Some(global_id.as_str()));
    assert!(got.text().contains("marker-data-1"));
    let reply_to = got.reply_to().expect("ReplyTo");

    let acked = provider
        .call(client::ack(
            &global_id,
            true,
            Some(("ZAGS-IN-77", gw.now())),
        ))
        .await;
    expect_ok(&acked);
    // Nothing more to get; a second Ack is harmless.
    let empty = provider.call(client::get_request(None, gw.now())).await;
    expect_ok(&empty);
    assert!(!empty.has_message(), "{}", empty.text());
    expect_ok(&provider.call(client::ack(&global_id, true, None)).await);

    let answer = client::send_response(
        client::message_id(gw.now()),
        &reply_to,
        &ResponseContent::Data(format!(
            "<r:BirthRecordResponse xmlns:r=\"{BIRTH_NS}\"><r:RecordNumber>120199000012</r:RecordNumber></r:BirthRecordResponse>"
        )),
        &[],
    );
    let response_sent = provider.call(answer).await;
    expect_ok(&response_sent);
    let response_id = response_sent.global_id().expect("response global ID");

    let fetched = consumer.call(client::get_response(None, gw.now())).await;
    expect_ok(&fetched);
    assert_eq!(fetched.global_id().as_deref(), Some(response_id.as_str()));
    assert!(fetched.text().contains("120199000012"));
    assert_eq!(
        fetched.first_text(TYPES_NS, "OriginalMessageId").as_deref(),
        Some(request.message_id.to_string().as_str())
    );
    expect_ok(
        &consumer
            .call(client::ack(
                &response_id,
                true,
                Some(("USZN-IN-5", gw.now())),
            ))
            .await,
    );
    let none = consumer.call(client::get_response(None, gw.now())).await;
    assert!(!none.has_message());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_and_intermediate_status_reach_the_consumer() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let provider = gw.provider();
    expect_ok(
        &consumer
            .call(client::send_request(&gw.birth_request("m")))
            .await,
    );
    let got = provider
        .call(client::get_request(Some((BIRTH_NS, BIRTH_ROOT)), gw.now()))
        .await;
    let gid = got.global_id().expect("delivered");
    let reply_to = got.reply_to().expect("ReplyTo");
    expect_ok(&provider.call(client::ack(&gid, true, None)).await);

    let status = client::send_response(
        client::message_id(gw.now()),
        &reply_to,
        &ResponseContent::Status {
            code: 3,
            description: "clarification requested: the birth date is ambiguous".into(),
            parameters: vec![("field".into(), "BirthDate".into())],
        },
        &[],
    );
    expect_ok(&provider.call(status).await);
    let rejection = client::send_response(
        client::message_id(gw.now()),
        &reply_to,
        &ResponseContent::Rejection {
            code: "NO_DATA".into(),
            description: "no birth record matches".into(),
        },
        &[],
    );
    expect_ok(&provider.call(rejection).await);

    let first = consumer.call(client::get_response(None, gw.now())).await;
    assert!(
        first.text().contains("clarification requested"),
        "{}",
        first.text()
    );
    expect_ok(
        &consumer
            .call(client::ack(&first.global_id().expect("id"), true, None))
            .await,
    );
    let second = consumer.call(client::get_response(None, gw.now())).await;
    assert_eq!(
        second
            .first_text(TYPES_NS, "RejectionReasonCode")
            .as_deref(),
        Some("NO_DATA")
    );
    expect_ok(
        &consumer
            .call(client::ack(&second.global_id().expect("id"), true, None))
            .await,
    );

    // The processing statuses went to the consumer's status queue.
    let st = consumer.call(client::get_status(gw.now())).await;
    expect_ok(&st);
    assert_eq!(
        st.first_text(TYPES_NS, "StatusCategory").as_deref(),
        Some("underProcessing")
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_and_mtom_attachments_travel_intact_and_are_deleted_after_ack() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let provider = gw.provider();
    let inline = Bytes::from(b"inline scan of the application form".repeat(50));
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let big = Bytes::from(big);
    let mut request = gw.birth_request("with-attachments");
    request.attachments = vec![
        Attachment {
            content_id: "form".into(),
            mime_type: "application/pdf".into(),
            data: inline.clone(),
            mtom: false,
        },
        Attachment {
            content_id: "scan".into(),
            mime_type: "image/tiff".into(),
            data: big.clone(),
            mtom: true,
        },
    ];
    expect_ok(&consumer.call(client::send_request(&request)).await);
    let attachments_dir = gw.data_dir.join("attachments");
    assert_eq!(std::fs::read_dir(&attachments_dir).expect("dir").count(), 2);

    let got = provider.call(client::get_request(None, gw.now())).await;
    expect_ok(&got);
    // One attachment arrived as MTOM, so the delivery is MTOM: both as parts.
    let parts: std::collections::HashMap<_, _> = got.parts.iter().cloned().collect();
    assert_eq!(parts.get("scan"), Some(&big));
    assert_eq!(parts.get("form"), Some(&inline));
    let gid = got.global_id().expect("id");
    expect_ok(&provider.call(client::ack(&gid, true, None)).await);
    assert_eq!(
        std::fs::read_dir(&attachments_dir).expect("dir").count(),
        0,
        "files deleted after Ack"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_request_is_redelivered_after_the_visibility_timeout() {
    let gw = TestGateway::start_with(|c| c.exchange.visibility_timeout_seconds = 60).await;
    let consumer = gw.consumer();
    let provider = gw.provider();
    expect_ok(
        &consumer
            .call(client::send_request(&gw.birth_request("redeliver")))
            .await,
    );
    let first = provider.call(client::get_request(None, gw.now())).await;
    let gid = first.global_id().expect("delivered");
    assert!(!provider
        .call(client::get_request(None, gw.now()))
        .await
        .has_message());
    gw.clock.advance(Duration::from_secs(61));
    let again = provider.call(client::get_request(None, gw.now())).await;
    assert_eq!(again.global_id().as_deref(), Some(gid.as_str()));
    // Ack(false) hands it back at once.
    expect_ok(&provider.call(client::ack(&gid, false, None)).await);
    let third = provider.call(client::get_request(None, gw.now())).await;
    assert_eq!(third.global_id().as_deref(), Some(gid.as_str()));
    gw.stop().await;
}
