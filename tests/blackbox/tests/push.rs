//! Push delivery through the real gateway (docs/push.md): a small HTTP(S) server on
//! 127.0.0.1 plays a system's push endpoint and answers each POST as its script says —
//! a failure of some kind, or a signed Ack built with `mezhved_client` exactly as an
//! adapter would. Time is the injected clock: after a failed attempt the test moves the
//! clock past the retry and wakes the push loop; the only real waits are short polls for
//! the loop's tasks to finish.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mezhved_blackbox::*;
use mezhved_client::{self as client, Attachment, ResponseContent, TYPES_NS};
use mezhved_dsig::crypto::SigningKey;
use mezhved_store::PushState;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// What the endpoint answers to one POST.
#[derive(Clone)]
enum Answer {
    /// This HTTP status, with a short text body.
    Status(u16),
    /// 200 with a body that is not XML.
    Garbage,
    /// 500 with a SOAP fault.
    Fault,
    /// 200 with an Ack signed by `key` for the pushed message (`other`: for that ID
    /// instead), with the receiver registration number `number`.
    Ack {
        key: Arc<SigningKey>,
        accepted: bool,
        other: Option<String>,
        number: &'static str,
    },
    /// Holds the reply until `gate` is notified, then answers `then`.
    Held {
        gate: Arc<tokio::sync::Notify>,
        then: Box<Answer>,
    },
}

fn ack_by(key: &Arc<SigningKey>, number: &'static str) -> Answer {
    Answer::Ack {
        key: key.clone(),
        accepted: true,
        other: None,
        number,
    }
}

/// One POST as the endpoint received it.
#[derive(Debug, Clone)]
struct Received {
    content_type: String,
    soap_action: String,
    global_id: String,
    attempt: String,
    body: Bytes,
}

/// When the endpoint registers what it received (the `RegisteredAt` of its Acks).
const REGISTERED_AT: &str = "2026-12-02T08:00:00Z";

struct Endpoint {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Endpoint {
    /// Serves on `listener`, answering the n-th POST with `script[n]` (the last entry
    /// repeats), over TLS when `tls` is given.
    fn start(
        listener: tokio::net::TcpListener,
        script: Vec<Answer>,
        tls: Option<openssl::ssl::SslAcceptor>,
    ) -> Endpoint {
        let addr = listener.local_addr().expect("address");
        let hits = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let tls = tls.map(Arc::new);
        let (h, r) = (hits.clone(), received.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (hits, received, script, tls) =
                    (h.clone(), r.clone(), script.clone(), tls.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        answer(request, hits.clone(), received.clone(), script.clone())
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = http
                                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                                .await;
                        }
                        Some(acceptor) => {
                            let ssl = openssl::ssl::Ssl::new(acceptor.context()).expect("ssl");
                            let mut stream =
                                tokio_openssl::SslStream::new(ssl, tcp).expect("TLS stream");
                            if Pin::new(&mut stream).accept().await.is_err() {
                                // The gateway refused our certificate: nothing to serve.
                                return;
                            }
                            let _ = http
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Endpoint {
            addr,
            hits,
            received,
            task,
        }
    }

    /// A plain HTTP endpoint on a fresh port.
    async fn plain(script: Vec<Answer>) -> Endpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Endpoint::start(listener, script, None)
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}/smev/push", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}

async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    hits: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Vec<Answer>>,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (content_type, soap_action, global_id, attempt) = (
        header("content-type"),
        header("soapaction"),
        header("x-mezhved-global-id"),
        header("x-mezhved-attempt"),
    );
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let n = hits.fetch_add(1, Ordering::SeqCst);
    received.lock().expect("lock").push(Received {
        content_type,
        soap_action,
        global_id: global_id.clone(),
        attempt,
        body,
    });
    let mut step = script
        .get(n)
        .or(script.last())
        .cloned()
        .unwrap_or(Answer::Status(503));
    if let Answer::Held { gate, then } = step {
        gate.notified().await;
        step = *then;
    }
    let (status, body) = match step {
        Answer::Held { .. } => (500, Bytes::from_static(b"held twice")),
        Answer::Status(s) => (s, Bytes::from_static(b"temporarily unavailable")),
        Answer::Garbage => (200, Bytes::from_static(b"OK, thanks! <<<not xml")),
        Answer::Fault => (
            500,
            Bytes::from_static(
                b"<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>the records system is down</faultstring></soap:Fault></soap:Body></soap:Envelope>",
            ),
        ),
        Answer::Ack {
            key,
            accepted,
            other,
            number,
        } => {
            let target = other.unwrap_or(global_id);
            let at: SystemTime = chrono::DateTime::parse_from_rfc3339(REGISTERED_AT)
                .expect("time")
                .into();
            let signed = client::ack(&target, accepted, Some((number, at)))
                .sign(&*key)
                .expect("sign the Ack");
            (200, Bytes::from(signed.envelope))
        }
    };
    Ok(hyper::Response::builder()
        .status(status)
        .header("content-type", "text/xml; charset=utf-8")
        .body(Full::new(body))
        .expect("response"))
}

fn gid_bytes(gid: &str) -> [u8; 16] {
    *uuid::Uuid::parse_str(gid).expect("a UUID").as_bytes()
}

async fn push_state(gw: &TestGateway, gid: &str) -> PushState {
    gw.state
        .store
        .push_state(gid_bytes(gid))
        .await
        .expect("push state")
        .expect("the message")
}

/// Polls (10 ms steps, 10 s at most) until the message's push state satisfies `done`.
async fn wait_for(
    gw: &TestGateway,
    gid: &str,
    what: &str,
    done: impl Fn(&PushState) -> bool,
) -> PushState {
    let mut last = push_state(gw, gid).await;
    for _ in 0..1000 {
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        last = push_state(gw, gid).await;
    }
    panic!("{what}: still {last:?}");
}

/// Waits for attempt `n` to have failed with an error containing `error`.
async fn failed_attempt(gw: &TestGateway, gid: &str, n: u32, error: &str) -> PushState {
    wait_for(
        gw,
        gid,
        &format!("attempt {n} failing with {error:?}"),
        |s| s.attempts == n && s.last_error.as_deref().is_some_and(|e| e.contains(error)),
    )
    .await
}

/// Moves the clock past any retry wait (at most 60 s in these tests) and wakes the loop.
fn next_attempt(gw: &TestGateway) {
    gw.clock.advance(Duration::from_secs(61));
    gw.wake_push();
}

/// Lets the loop run a little and checks that the endpoint was not called again.
async fn assert_no_more_posts(gw: &TestGateway, endpoint: &Endpoint, expected: usize) {
    for _ in 0..3 {
        gw.clock.advance(Duration::from_secs(3600));
        gw.wake_push();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(endpoint.hits(), expected, "push stopped");
}

async fn event_types(gw: &TestGateway, gid: &str) -> Vec<String> {
    gw.state
        .store
        .journal_events_of(gid_bytes(gid))
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

/// The consumer sends a birth-record request; returns its global ID.
async fn send(gw: &TestGateway, marker: &str) -> String {
    let sent = gw
        .consumer()
        .call(client::send_request(&gw.birth_request(marker)))
        .await;
    expect_ok(&sent);
    sent.global_id().expect("a global ID")
}

/// The gateway's SMEVSignature over the delivered message verifies with the test trust
/// store: what was pushed is the signed pull answer.
fn assert_signed_delivery(gw: &TestGateway, envelope: &[u8], wrapper: &str, message: &str) {
    use mezhved_xml::path::ElementPath;
    let doc = mezhved_xml::parse(envelope, &mezhved_xml::Limits::default()).expect("XML");
    let soap = "http://schemas.xmlsoap.org/soap/envelope/";
    let item = if message == "RequestMessage" {
        "Request"
    } else {
        "Response"
    };
    let base = ElementPath::new(vec![])
        .child(Some(soap), "Envelope")
        .child(Some(soap), "Body")
        .child(Some(TYPES_NS), wrapper)
        .child(Some(TYPES_NS), message);
    let trust = mezhved_dsig::trust::TrustStore::from_dir(&repo().join("keys/test-pki/trust"))
        .expect("trust");
    let verified = mezhved_dsig::xmldsig::verify_document(
        &doc,
        &mezhved_dsig::xmldsig::Expectation {
            signature_parent: base.child(Some(TYPES_NS), "SMEVSignature"),
            target: Some(base.child(Some(TYPES_NS), item)),
        },
        &trust,
        gw.now(),
    )
    .expect("the gateway's signature verifies");
    assert!(
        verified.signer.subject.contains("gateway"),
        "{}",
        verified.signer.subject
    );
}

/// The text of the first element `{ns}local` of an envelope.
fn text_in(envelope: &[u8], ns: &str, local: &str) -> Option<String> {
    let doc = mezhved_xml::parse(envelope, &mezhved_xml::Limits::default()).ok()?;
    let n = client::find(&doc, ns, local)?;
    Some(doc.text(n).trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_pushed_until_the_endpoint_acknowledges_it() {
    let gw = TestGateway::start_with(allow_plain_push).await;
    let provider_key = gw.provider().key;
    // Attempt 1 finds no server on the port; then the endpoint answers 500, then
    // something that is not XML, then an Ack for another message, then the right Ack.
    let reserved = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = reserved.local_addr().expect("address");
    drop(reserved);
    let url = format!("http://{addr}/smev/push");
    expect_ok_api(&gw.set_push_url("ZAGS_IS", Some(&url)).await);

    let gid = send(&gw, "pushed-1").await;
    failed_attempt(&gw, &gid, 1, "cannot connect").await;

    let endpoint = Endpoint::start(
        tokio::net::TcpListener::bind(addr).await.expect("rebind"),
        vec![
            Answer::Status(500),
            Answer::Garbage,
            Answer::Ack {
                key: provider_key.clone(),
                accepted: true,
                other: Some("6b0f0b2e-0000-6000-8000-000000000001".into()),
                number: "ZAGS-WRONG",
            },
            ack_by(&provider_key, "ZAGS-PUSH-77"),
        ],
        None,
    );
    next_attempt(&gw);
    failed_attempt(&gw, &gid, 2, "HTTP 500").await;
    next_attempt(&gw);
    failed_attempt(&gw, &gid, 3, "not a valid Ack").await;
    next_attempt(&gw);
    let s = failed_attempt(&gw, &gid, 4, "not for the pushed message").await;
    assert!(!s.acknowledged);
    next_attempt(&gw);
    let s = wait_for(&gw, &gid, "the Ack applied", |s| s.acknowledged).await;
    assert_eq!(s.attempts, 5, "attempts recorded");
    assert_eq!(s.fallback_at_ms, None);
    assert_eq!(endpoint.hits(), 4, "attempt 1 never reached it");

    // What was POSTed: the signed GetRequestResponse a pull gets, with its headers.
    let posts = endpoint.received();
    for (i, p) in posts.iter().enumerate() {
        assert_eq!(p.content_type, "text/xml; charset=utf-8");
        assert_eq!(p.soap_action, "\"urn:GetRequest\"");
        assert_eq!(p.global_id, gid);
        assert_eq!(p.attempt, (i + 2).to_string());
        assert_eq!(
            text_in(&p.body, TYPES_NS, "MessageId").as_deref(),
            Some(gid.as_str())
        );
        assert_eq!(
            text_in(&p.body, client::MZ_NS, "GlobalId").as_deref(),
            Some(gid.as_str()),
            "the mz:Registration header"
        );
        assert!(String::from_utf8_lossy(&p.body).contains("pushed-1"));
        assert!(text_in(&p.body, TYPES_NS, "ReplyTo").is_some());
    }
    assert_signed_delivery(&gw, &posts[3].body, "GetRequestResponse", "RequestMessage");

    // Acknowledged once, through the Ack path: receiver registration on the card, the
    // sender's `underProcessing` status, and nothing left to pull or push.
    let card = gw
        .state
        .store
        .card(gid_bytes(&gid))
        .await
        .expect("card")
        .expect("a card");
    assert_eq!(card.status, "delivered");
    assert_eq!(
        card.details["receiver_registration"]["number"], "ZAGS-PUSH-77",
        "{}",
        card.details
    );
    let types = event_types(&gw, &gid).await;
    let count = |t: &str| types.iter().filter(|x| *x == t).count();
    assert_eq!(count("message.delivered"), 5, "{types:?}");
    assert_eq!(count("message.push_failed"), 4, "{types:?}");
    assert_eq!(count("message.acknowledged"), 1, "{types:?}");
    assert_eq!(
        types.last().map(String::as_str),
        Some("message.acknowledged")
    );
    let status = gw.consumer().call(client::get_status(gw.now())).await;
    assert_eq!(
        status.first_text(TYPES_NS, "StatusCategory").as_deref(),
        Some("underProcessing")
    );
    let pulled = gw
        .provider()
        .call(client::get_request(None, gw.now()))
        .await;
    expect_ok(&pulled);
    assert!(!pulled.has_message(), "{}", pulled.text());
    assert_no_more_posts(&gw, &endpoint, 4).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_last_failed_attempt_the_message_falls_back_to_pull() {
    let gw = TestGateway::start_with(|c| {
        allow_plain_push(c);
        c.push.max_attempts = 3;
    })
    .await;
    let endpoint = Endpoint::plain(vec![Answer::Status(503), Answer::Fault]).await;
    expect_ok_api(
        &gw.set_push_url("ZAGS_IS", Some(&endpoint.url("http")))
            .await,
    );
    let gid = send(&gw, "fallback-1").await;
    failed_attempt(&gw, &gid, 1, "HTTP 503").await;
    next_attempt(&gw);
    failed_attempt(&gw, &gid, 2, "the records system is down").await;
    next_attempt(&gw);
    let s = wait_for(&gw, &gid, "the fallback", |s| s.fallback_at_ms.is_some()).await;
    assert_eq!((s.attempts, s.next_at_ms), (3, None));
    assert!(!s.acknowledged);
    assert_eq!(endpoint.hits(), 3);
    assert_no_more_posts(&gw, &endpoint, 3).await;
    let types = event_types(&gw, &gid).await;
    assert!(
        types.contains(&"message.push_fallback".to_string()),
        "{types:?}"
    );

    // The provider pulls it like any message, and acknowledges it.
    let provider = gw.provider();
    let got = provider.call(client::get_request(None, gw.now())).await;
    expect_ok(&got);
    assert_eq!(got.global_id().as_deref(), Some(gid.as_str()));
    expect_ok(
        &provider
            .call(client::ack(&gid, true, Some(("ZAGS-PULL-1", gw.now()))))
            .await,
    );
    assert!(push_state(&gw, &gid).await.acknowledged);
    assert_eq!(endpoint.hits(), 3);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_with_an_mtom_attachment_is_pushed_to_the_consumer() {
    let gw = TestGateway::start_with(allow_plain_push).await;
    let consumer = gw.consumer();
    let provider = gw.provider();
    let endpoint = Endpoint::plain(vec![ack_by(&consumer.key, "USZN-PUSH-5")]).await;
    expect_ok_api(
        &gw.set_push_url("USZN_IS", Some(&endpoint.url("http")))
            .await,
    );

    // The provider still pulls; only the consumer pushes.
    let gid = send(&gw, "consumer-push").await;
    let got = provider.call(client::get_request(None, gw.now())).await;
    assert_eq!(got.global_id().as_deref(), Some(gid.as_str()));
    let reply_to = got.reply_to().expect("ReplyTo");
    expect_ok(&provider.call(client::ack(&gid, true, None)).await);
    let pdf = Bytes::from(vec![0x25u8; 4096]);
    let answered = provider
        .call(client::send_response(
            client::message_id(gw.now()),
            &reply_to,
            &ResponseContent::Data(format!(
                "<r:BirthRecordResponse xmlns:r=\"{BIRTH_NS}\"><r:RecordNumber>120199000012</r:RecordNumber></r:BirthRecordResponse>"
            )),
            &[Attachment {
                content_id: "record-scan@zags".into(),
                mime_type: "application/pdf".into(),
                data: pdf.clone(),
                mtom: true,
            }],
        ))
        .await;
    expect_ok(&answered);
    let response_id = answered.global_id().expect("response ID");
    let s = wait_for(&gw, &response_id, "the response pushed", |s| s.acknowledged).await;
    assert_eq!(s.attempts, 1);
    assert_eq!(endpoint.hits(), 1);
    let post = &endpoint.received()[0];
    assert_eq!(post.soap_action, "\"urn:GetResponse\"");
    assert!(
        post.content_type.starts_with("multipart/related"),
        "{}",
        post.content_type
    );
    let body = String::from_utf8_lossy(&post.body);
    assert!(body.contains("GetResponseResponse") && body.contains("xop:Include"));
    assert!(body.contains("120199000012"));
    assert!(
        post.body.windows(pdf.len()).any(|w| w == &pdf[..]),
        "the attachment travels as a MIME part"
    );
    let card = gw
        .state
        .store
        .card(gid_bytes(&response_id))
        .await
        .expect("card")
        .expect("a card");
    assert_eq!(card.status, "responseIsDelivered");
    assert_eq!(
        card.details["receiver_registration"]["number"],
        "USZN-PUSH-5"
    );
    // The responder learns the consumer received it, as after a pulled Ack.
    let status = provider.call(client::get_status(gw.now())).await;
    assert_eq!(
        status.first_text(TYPES_NS, "StatusCategory").as_deref(),
        Some("responseIsDelivered")
    );
    let none = consumer.call(client::get_response(None, gw.now())).await;
    assert!(!none.has_message(), "{}", none.text());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_signed_by_anyone_but_the_recipient_acknowledges_nothing() {
    let gw = TestGateway::start_with(|c| {
        allow_plain_push(c);
        c.push.max_attempts = 3;
    })
    .await;
    let consumer_key = gw.consumer().key;
    let provider_key = gw.provider().key;
    let rogue_key = key("rogue", "rogue-is");
    let endpoint = Endpoint::plain(vec![
        // Another registered system's valid signature …
        ack_by(&consumer_key, "USZN-1"),
        // … an untrusted certificate's …
        ack_by(&rogue_key, "ROGUE-1"),
        // … and the recipient itself refusing the message.
        Answer::Ack {
            key: provider_key.clone(),
            accepted: false,
            other: None,
            number: "ZAGS-NO",
        },
    ])
    .await;
    expect_ok_api(
        &gw.set_push_url("ZAGS_IS", Some(&endpoint.url("http")))
            .await,
    );
    let gid = send(&gw, "wrong-signer").await;
    let s = failed_attempt(
        &gw,
        &gid,
        1,
        "signed by USZN_IS, not by the recipient ZAGS_IS",
    )
    .await;
    assert!(!s.acknowledged);
    next_attempt(&gw);
    failed_attempt(&gw, &gid, 2, "not a valid Ack").await;
    next_attempt(&gw);
    let s = wait_for(&gw, &gid, "the fallback", |s| s.fallback_at_ms.is_some()).await;
    assert!(s.last_error.unwrap_or_default().contains("refused"));
    assert!(!s.acknowledged);
    let card = gw
        .state
        .store
        .card(gid_bytes(&gid))
        .await
        .expect("card")
        .expect("a card");
    assert_eq!(card.status, "requestIsQueued");
    assert!(card.details.get("receiver_registration").is_none());
    let types = event_types(&gw, &gid).await;
    assert!(
        !types.contains(&"message.acknowledged".to_string()),
        "{types:?}"
    );
    // The consumer's "Ack" did not touch the consumer's own queue either: nothing of the
    // consumer was acknowledged in its name (it has nothing pending at all).
    let events = gw
        .state
        .store
        .journal_events_of(gid_bytes(&gid))
        .await
        .expect("events");
    let failed: Vec<serde_json::Value> = events
        .iter()
        .filter(|e| e.event_type.starts_with("message.push_"))
        .map(|e| serde_json::from_slice(&e.leaf).expect("JSON leaf"))
        .collect();
    let classes: Vec<&str> = failed
        .iter()
        .map(|e| e["error"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(classes, ["wrong_signer", "invalid_ack", "refused"]);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_endpoints_are_refused_unless_allowed() {
    // Through the registry API, with the default configuration.
    let gw = TestGateway::start().await;
    let r = gw
        .set_push_url("ZAGS_IS", Some("http://127.0.0.1:9/smev/push"))
        .await;
    let detail = r.expect_problem(422);
    assert!(
        detail.contains("ZAGS_IS") && detail.contains("allow_plain_http"),
        "{detail}"
    );
    let r = gw
        .set_push_url("ZAGS_IS", Some("https://user:pw@zags.example/push"))
        .await;
    assert!(r.expect_problem(422).contains("password"));
    expect_ok_api(
        &gw.set_push_url("ZAGS_IS", Some("https://zags.example/smev/push"))
            .await,
    );
    let registry = gw
        .api()
        .operator("GET", "/api/v1/registry", None)
        .await
        .json();
    let zags = registry["systems"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["mnemonic"] == "ZAGS_IS"))
        .cloned()
        .expect("ZAGS_IS");
    assert_eq!(zags["push_url"], "https://zags.example/smev/push");
    gw.stop().await;

    // Through the registry file at start.
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = std::fs::read_to_string(repo().join("deploy/sample/registry.toml"))
        .expect("sample registry");
    let keys = repo().join("keys");
    let file = dir.path().join("registry.toml");
    std::fs::write(
        &file,
        sample
            .replace("../../keys", &keys.display().to_string())
            .replace(
                "participant = \"ZAGS\"\n",
                "participant = \"ZAGS\"\npush_url = \"http://127.0.0.1:9/smev/push\"\n",
            ),
    )
    .expect("write the registry");
    let mut config = test_config(&dir.path().join("data"));
    config.registry.file = file.clone();
    let clock = Arc::new(mezhved_core::clock::ManualClock::new(wall_clock_now()));
    let e = mezhved_http::Gateway::open(config.clone(), clock.clone())
        .await
        .expect_err("plain http refused");
    let e = e.to_string();
    assert!(
        e.contains("ZAGS_IS") && e.contains("push_url") && e.contains("allow_plain_http"),
        "{e}"
    );
    config.push.allow_plain_http = true;
    let g = mezhved_http::Gateway::open(config, clock)
        .await
        .expect("allowed for tests");
    let zags = g.state.registry.get();
    assert_eq!(
        zags.system("ZAGS_IS").and_then(|s| s.push_url.as_deref()),
        Some("http://127.0.0.1:9/smev/push")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_over_https_trusts_only_the_configured_roots() {
    let (trusted, trusted_key) = self_signed_tls(true);
    let (stranger, stranger_key) = self_signed_tls(true);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("push-ca.pem");
    std::fs::write(&ca_file, trusted.to_pem().expect("PEM")).expect("write the CA file");
    // Plain http stays refused here: the default configuration but for the roots.
    let gw = TestGateway::start_with(|c| {
        c.push.ca_file = ca_file.clone();
        c.push.retry_base_seconds = 1;
        c.push.retry_max_seconds = 60;
    })
    .await;
    let provider_key = gw.provider().key;
    let listen = || async {
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
    };
    let good = Endpoint::start(
        listen().await,
        vec![ack_by(&provider_key, "ZAGS-TLS-1")],
        Some(tls_acceptor(&trusted, &trusted_key)),
    );
    let bad = Endpoint::start(
        listen().await,
        vec![ack_by(&provider_key, "ZAGS-TLS-0")],
        Some(tls_acceptor(&stranger, &stranger_key)),
    );

    // A certificate that does not chain to the configured roots: no POST is made.
    expect_ok_api(&gw.set_push_url("ZAGS_IS", Some(&bad.url("https"))).await);
    let gid = send(&gw, "over-tls").await;
    let s = failed_attempt(&gw, &gid, 1, "TLS handshake").await;
    assert!(!s.acknowledged);
    assert_eq!(bad.hits(), 0);
    let types = event_types(&gw, &gid).await;
    assert!(types.contains(&"message.push_failed".to_string()));

    // The operator points the system at its real endpoint: the retry goes there.
    expect_ok_api(&gw.set_push_url("ZAGS_IS", Some(&good.url("https"))).await);
    next_attempt(&gw);
    let s = wait_for(&gw, &gid, "acknowledged over TLS", |s| s.acknowledged).await;
    assert_eq!(s.attempts, 2);
    assert_eq!(good.hits(), 1);
    let post = &good.received()[0];
    assert_eq!(post.global_id, gid);
    assert_signed_delivery(&gw, &post.body, "GetRequestResponse", "RequestMessage");
    let card = gw
        .state
        .store
        .card(gid_bytes(&gid))
        .await
        .expect("card")
        .expect("a card");
    assert_eq!(
        card.details["receiver_registration"]["number"],
        "ZAGS-TLS-1"
    );
    gw.stop().await;
}

/// Asserts a 2xx answer of the registry API.
#[track_caller]
fn expect_ok_api(r: &ApiReply) {
    assert!(
        (200..300).contains(&r.status),
        "HTTP {}: {}",
        r.status,
        r.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_holds_only_its_own_slots() {
    let gw = TestGateway::start_with(|c| {
        allow_plain_push(c);
        c.push.max_in_flight = 2;
        c.push.max_in_flight_per_system = 1;
    })
    .await;
    let consumer = gw.consumer();
    let provider = gw.provider();
    let gate = Arc::new(tokio::sync::Notify::new());
    let zags = Endpoint::plain(vec![
        Answer::Held {
            gate: gate.clone(),
            then: Box::new(ack_by(&provider.key, "ZAGS-SLOW")),
        },
        ack_by(&provider.key, "ZAGS-FAST"),
    ])
    .await;
    let uszn = Endpoint::plain(vec![ack_by(&consumer.key, "USZN-1")]).await;
    expect_ok_api(&gw.set_push_url("ZAGS_IS", Some(&zags.url("http"))).await);
    expect_ok_api(&gw.set_push_url("USZN_IS", Some(&uszn.url("http"))).await);
    let first = send(&gw, "slow-1").await;
    wait_for(&gw, &first, "the first push in flight", |s| s.attempts == 1).await;
    let second = send(&gw, "slow-2").await;
    let third = send(&gw, "slow-3").await;

    // ZAGS_IS's endpoint holds its one slot: its other requests wait (and may be
    // pulled meanwhile); the consumer's pushes still go.
    let got = provider.call(client::get_request(None, gw.now())).await;
    assert_eq!(got.global_id().as_deref(), Some(second.as_str()));
    expect_ok(&provider.call(client::ack(&second, true, None)).await);
    let answered = provider
        .call(client::send_response(
            client::message_id(gw.now()),
            &got.reply_to().expect("ReplyTo"),
            &ResponseContent::Status {
                code: 1,
                description: "in progress".into(),
                parameters: Vec::new(),
            },
            &[],
        ))
        .await;
    expect_ok(&answered);
    let response = answered.global_id().expect("response ID");
    wait_for(&gw, &response, "the response pushed meanwhile", |s| {
        s.acknowledged
    })
    .await;
    assert_eq!(zags.hits(), 1, "one POST at a time to ZAGS_IS");
    assert_eq!(push_state(&gw, &third).await.attempts, 0);

    gate.notify_one();
    wait_for(&gw, &first, "the held push acknowledged", |s| {
        s.acknowledged
    })
    .await;
    let s = wait_for(&gw, &third, "the next one pushed", |s| s.acknowledged).await;
    assert_eq!(s.attempts, 1);
    assert_eq!(zags.hits(), 2);
    assert_eq!(uszn.hits(), 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_arriving_after_shutdown_began_is_still_applied() {
    let gw = TestGateway::start_with(allow_plain_push).await;
    let gate = Arc::new(tokio::sync::Notify::new());
    let endpoint = Endpoint::plain(vec![Answer::Held {
        gate: gate.clone(),
        then: Box::new(ack_by(&gw.provider().key, "ZAGS-LATE-1")),
    }])
    .await;
    expect_ok_api(
        &gw.set_push_url("ZAGS_IS", Some(&endpoint.url("http")))
            .await,
    );
    let gid = send(&gw, "in-flight-at-shutdown").await;
    wait_for(&gw, &gid, "the push in flight", |s| s.attempts == 1).await;
    for _ in 0..500 {
        if endpoint.hits() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(endpoint.hits(), 1);

    let data_dir = gw.data_dir.clone();
    let stopping = tokio::spawn(gw.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !stopping.is_finished(),
        "the gateway waits for the push in flight"
    );
    gate.notify_one();
    let _dir = stopping.await.expect("stopped");

    let store = mezhved_store::sqlite::SqliteStore::open(
        &data_dir.join("mezhved.db"),
        mezhved_store::sqlite::SqliteOptions::default(),
    )
    .expect("reopen the store");
    let s = mezhved_store::Store::push_state(&store, gid_bytes(&gid))
        .await
        .expect("state")
        .expect("the message");
    assert!(s.acknowledged, "{s:?}");
    let card = mezhved_store::Store::card(&store, gid_bytes(&gid))
        .await
        .expect("card")
        .expect("a card");
    assert_eq!(
        card.details["receiver_registration"]["number"],
        "ZAGS-LATE-1"
    );
    store.close();
}
