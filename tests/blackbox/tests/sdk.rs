//! The client library and the provider SDK against the real gateway: typed answers and
//! faults, verification of the gateway's signatures, and a provider `Runner` answering
//! through a `Handler`.

use mezhved_blackbox::*;
use mezhved_client::provider::{Answer, Handler, HandlerError, Polled, Runner, RunnerConfig};
use mezhved_client::{
    CallError, Content, Direction, FaultCode, GatewayVerifier, Incoming, SystemClient,
};
use mezhved_core::clock::Clock as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const BIRTH_NS: &str = "urn://mezhved/demo/zags/birth-record/1.0";

fn verifier(pinned: &str) -> Arc<GatewayVerifier> {
    let keys = repo().join("keys/test-pki");
    Arc::new(
        GatewayVerifier::from_files(&keys.join("trust"), Some(&keys.join(pinned)))
            .expect("verifier"),
    )
}

fn system_client(g: &TestGateway, name: &str) -> SystemClient {
    let clock = g.clock.clone();
    SystemClient::new(
        &g.endpoint,
        key("ecdsa", name),
        Some(verifier("ecdsa/gateway.cert.pem")),
    )
    .expect("client")
    .with_clock(Arc::new(move || clock.now()))
}

/// Answers birth-record requests with a record, or fails on demand.
struct Registry {
    fail: Arc<AtomicBool>,
    seen: Arc<AtomicUsize>,
}

impl Handler for Registry {
    async fn handle(&self, request: &Incoming) -> Result<Answer, HandlerError> {
        self.seen.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(HandlerError("the records database is down".into()));
        }
        let Content::Data(xml) = &request.content else {
            return Ok(Answer::Reject {
                code: "UNKNOWN_REQUEST_DESCRIPTION".into(),
                description: "not a data request".into(),
            });
        };
        assert!(xml.contains("Ivanova"), "{xml}");
        let card = request
            .card
            .as_ref()
            .expect("the request card reaches the provider");
        assert_eq!(card.sender_agency.as_deref(), Some(CONSUMER_AGENCY));
        Ok(Answer::data(format!(
            "<b:BirthRecordResponse xmlns:b=\"{BIRTH_NS}\"><b:RecordNumber>120199000123</b:RecordNumber></b:BirthRecordResponse>"
        )))
    }
}

fn request_date(g: &TestGateway) -> String {
    chrono::DateTime::<chrono::Utc>::from(g.now())
        .date_naive()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_and_provider_exchange_through_the_sdk_with_verified_answers() {
    let g = TestGateway::start().await;
    let consumer = system_client(&g, "consumer-is");
    let request = g.birth_request("sdk");
    let accepted = consumer.send_request(&request).await.expect("accepted");
    let reg = accepted.registration.clone().expect("registration header");
    assert_eq!(reg.global_id, accepted.global_id);
    assert!(reg.due_at.is_some(), "a request gets its reply deadline");
    assert_eq!(
        reg.sender_registration,
        Some(("USZN-2026/0001".to_string(), request_date(&g)))
    );
    // The same call again: the gateway's idempotency, seen through the typed API.
    let again = consumer.send_request(&request).await.expect("repeat");
    assert_eq!(again.global_id, accepted.global_id);

    let fail = Arc::new(AtomicBool::new(true));
    let seen = Arc::new(AtomicUsize::new(0));
    let handler = Registry {
        fail: fail.clone(),
        seen: seen.clone(),
    };
    let config = RunnerConfig {
        kinds: vec![(BIRTH_NS.into(), "BirthRecordRequest".into())],
        registration_prefix: "ZAGS-IN".into(),
        ..RunnerConfig::default()
    };
    let runner = Runner::new(system_client(&g, "provider-is"), handler, config);
    let kind = Some((BIRTH_NS, "BirthRecordRequest"));
    // A failing handler leaves the request queued: nothing is acknowledged.
    match runner.poll_once(kind).await.expect("poll") {
        Polled::HandlerFailed { global_id, .. } => assert_eq!(global_id, accepted.global_id),
        other => panic!("{other:?}"),
    }
    let pending = "SELECT count(*) FROM messages WHERE acked_at IS NULL AND queue = 0";
    assert_eq!(g.count(pending), 1);
    assert_eq!(runner.poll_once(kind).await.expect("poll"), Polled::Empty);
    // After the visibility timeout the gateway delivers it again; now it is answered.
    fail.store(false, Ordering::SeqCst);
    g.clock.advance(Duration::from_secs(301));
    let (registration, response_gid) = match runner.poll_once(kind).await.expect("poll") {
        Polled::Answered {
            global_id,
            registration,
            response_global_id,
        } => {
            assert_eq!(global_id, accepted.global_id);
            (registration, response_global_id)
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert!(registration.starts_with("ZAGS-IN-"), "{registration}");
    assert_eq!(g.count(pending), 0);
    let card_registration = g.count(&format!(
        "SELECT count(*) FROM cards WHERE receiver_registration_number = '{registration}'"
    ));
    assert_eq!(
        card_registration, 1,
        "the provider's own number is on the card"
    );

    // The consumer receives the verified, typed answer.
    let response = consumer
        .get_response(None)
        .await
        .expect("get")
        .expect("a response");
    assert_eq!(response.direction, Direction::Response);
    assert_eq!(response.global_id, response_gid);
    assert_eq!(response.sender_system, "ZAGS_IS");
    assert_eq!(
        response.original_message_id.as_deref(),
        Some(request.message_id.to_string().as_str())
    );
    match &response.content {
        Content::Data(xml) => assert!(xml.contains("120199000123"), "{xml}"),
        other => panic!("{other:?}"),
    }
    consumer
        .ack(&response.global_id, true, Some(("USZN-IN-1", g.now())))
        .await
        .expect("ack");
    assert!(consumer.get_response(None).await.expect("get").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_typed_and_only_transport_failures_are_retryable() {
    let g = TestGateway::start().await;
    let consumer = system_client(&g, "consumer-is");
    let mut request = g.birth_request("fault");
    request.content = "<x:Unknown xmlns:x=\"urn:nobody\"/>".into();
    let err = consumer.send_request(&request).await.expect_err("a fault");
    assert_eq!(
        err.fault_code(),
        Some(&FaultCode::BusinessDataTypeIsNotSupported),
        "{err}"
    );
    assert!(!err.retryable());

    let mut bad_card = g.birth_request("card");
    bad_card.card = Some(
        mezhved_client::RequestCard {
            sender_agency: Some("USZN".into()),
            ..Default::default()
        }
        .to_xml(),
    );
    match consumer.send_request(&bad_card).await.expect_err("a fault") {
        CallError::Fault(f) => {
            assert_eq!(f.code, FaultCode::InvalidContent);
            assert!(f.validation_errors.len() >= 5, "{f}");
            assert!(!f.server);
        }
        other => panic!("{other:?}"),
    }

    // Unregistered key: the gateway refuses it.
    let rogue = SystemClient::new(
        &g.endpoint,
        key("rogue", "rogue-is"),
        Some(verifier("ecdsa/gateway.cert.pem")),
    )
    .expect("client");
    let err = rogue
        .send_request(&g.birth_request("rogue"))
        .await
        .expect_err("refused");
    assert!(matches!(err, CallError::Fault(_)), "{err}");
    assert!(!err.retryable());

    // Nobody listening: a retryable transport error.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}/smev/v1.1", listener.local_addr().expect("addr"));
    drop(listener);
    let nowhere = SystemClient::new(&dead, key("ecdsa", "consumer-is"), None)
        .expect("client")
        .with_timeout(Duration::from_secs(5));
    let err = nowhere
        .send_request(&g.birth_request("dead"))
        .await
        .expect_err("no gateway");
    assert!(matches!(err, CallError::Transport(_)), "{err}");
    assert!(err.retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_not_signed_by_the_pinned_gateway_certificate_are_refused() {
    let g = TestGateway::start().await;
    // Pinned to another (valid, trusted) certificate: the gateway's own answer is refused.
    let wrong_pin = SystemClient::new(
        &g.endpoint,
        key("ecdsa", "consumer-is"),
        Some(verifier("ecdsa/provider-is.cert.pem")),
    )
    .expect("client");
    let err = wrong_pin
        .send_request(&g.birth_request("pin"))
        .await
        .expect_err("refused");
    assert!(matches!(err, CallError::BadAnswer(_)), "{err}");

    // A delivered message altered after the gateway signed it fails verification, and
    // so does a registration header whose deadline was moved.
    let consumer = system_client(&g, "consumer-is");
    consumer
        .send_request(&g.birth_request("tamper"))
        .await
        .expect("accepted");
    let provider = g.provider();
    let reply = provider
        .call(mezhved_client::get_request(None, g.now()))
        .await;
    expect_ok(&reply);
    let text = reply.text();
    let v = verifier("ecdsa/gateway.cert.pem");
    let limits = mezhved_xml::Limits::default();
    let doc = mezhved_xml::parse(text.as_bytes(), &limits).expect("parses");
    v.verify(&doc, g.now())
        .expect("the untouched delivery verifies");
    let tampered = text.replace("Ivanova", "Petrova");
    assert_ne!(tampered, text);
    let doc = mezhved_xml::parse(tampered.as_bytes(), &limits).expect("parses");
    assert!(matches!(
        v.verify(&doc, g.now()),
        Err(CallError::BadAnswer(_))
    ));
    let due = mezhved_client::find(&doc, mezhved_client::MZ_NS, "DueAt");
    assert!(due.is_some());
    let original_doc = mezhved_xml::parse(text.as_bytes(), &limits).expect("parses");
    let due_text = original_doc
        .text(mezhved_client::find(&original_doc, mezhved_client::MZ_NS, "DueAt").expect("due"));
    let moved = text.replace(&due_text, "2099-01-01T00:00:00.000Z");
    let doc = mezhved_xml::parse(moved.as_bytes(), &limits).expect("parses");
    let err = v
        .verify(&doc, g.now())
        .expect_err("header tampering is caught");
    assert!(matches!(err, CallError::BadAnswer(_)), "{err}");
    // Read through the typed reader, the untouched delivery is a request with a card.
    let incoming = Incoming::from_document(&original_doc, &[], false)
        .expect("reads")
        .expect("a message");
    assert_eq!(incoming.direction, Direction::Request);
    assert!(incoming.reply_to.is_some());
    assert_eq!(
        incoming.card.and_then(|c| c.recipient_agency).as_deref(),
        Some(PROVIDER_AGENCY)
    );
}
