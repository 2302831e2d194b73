//! The adapter sidecar against the real gateway: an agency's system that speaks only
//! local JSON. The consumer's system submits through its adapter; the provider's adapter
//! hands the request to the agency (a callback to a small HTTP server playing the
//! agency's system, or the agency's own polling of the local API) and sends the answer;
//! the answer arrives in the consumer adapter's inbox and on its request row; the
//! gateway's journal binds the three registrations.
//!
//! Then the faults: the gateway stopped and restarted on the same address while requests
//! are submitted, the agency's callback unreachable, repeated submits, a request the
//! gateway refuses, bad input to the API, a pushed message verified, stored and
//! acknowledged once, and a redelivery acknowledged with the same registration number.
//! Each asserts, by counting at the gateway and in both adapters, that nothing submitted
//! was lost or duplicated.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use mezhved_adapter::config::{KindConfig, ProviderMode};
use mezhved_adapter::{Adapter, AdapterConfig};
use mezhved_blackbox::*;
use mezhved_client::{self as client, Attachment, RequestCard};
use mezhved_core::clock::{Clock, ManualClock};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Adapters.

fn adapter_config(
    endpoint: &str,
    data_dir: &Path,
    key_name: &str,
    system: &str,
    prefix: &str,
) -> AdapterConfig {
    let keys = repo().join("keys/test-pki");
    let mut c = AdapterConfig {
        data_dir: data_dir.to_path_buf(),
        system: system.into(),
        registration_prefix: prefix.into(),
        shutdown_grace_seconds: 5,
        ..AdapterConfig::default()
    };
    c.gateway.url = endpoint.into();
    c.gateway.trust_dir = keys.join("trust");
    c.gateway.certificate = keys.join("ecdsa/gateway.cert.pem");
    c.gateway.timeout_seconds = 5;
    c.key.key = keys.join(format!("ecdsa/{key_name}.key.pem"));
    c.key.certificate = keys.join(format!("ecdsa/{key_name}.cert.pem"));
    c.api.listen = "127.0.0.1:0".into();
    c.retry.base_delay_ms = 20;
    c.retry.max_delay_ms = 250;
    c.poll.idle_min_ms = 10;
    c.poll.idle_max_ms = 80;
    c
}

fn consumer_config(endpoint: &str, data_dir: &Path) -> AdapterConfig {
    adapter_config(endpoint, data_dir, "consumer-is", "USZN_IS", "USZN")
}

fn provider_config(endpoint: &str, data_dir: &Path, callback: Option<&str>) -> AdapterConfig {
    let mut c = adapter_config(endpoint, data_dir, "provider-is", "ZAGS_IS", "ZAGS");
    c.consumer.poll_responses = false;
    c.provider.enabled = true;
    c.provider.kinds = vec![KindConfig {
        namespace: BIRTH_NS.into(),
        root_element: BIRTH_ROOT.into(),
    }];
    match callback {
        Some(url) => {
            c.provider.mode = ProviderMode::Callback;
            c.provider.callback_url = url.into();
            c.provider.callback_timeout_seconds = 2;
        }
        None => c.provider.mode = ProviderMode::Queue,
    }
    c
}

/// An adapter running in this process, on the test gateway's clock.
struct Running {
    url: String,
    api: Api,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    async fn start(config: AdapterConfig, clock: &Arc<ManualClock>) -> Running {
        let clock = clock.clone();
        let adapter = Adapter::open_with_clock(config, Arc::new(move || clock.now()))
            .await
            .unwrap_or_else(|e| panic!("the adapter does not open: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            adapter
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
                .expect("the adapter serves");
        });
        Running {
            api: Api::new(&url),
            url,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("the adapter stops");
        }
    }

    #[track_caller]
    fn ok(reply: ApiReply, what: &str) -> Value {
        assert_eq!(reply.status, 200, "{what}: {}", reply.text());
        reply.json()
    }

    async fn get(&self, path: &str) -> Value {
        Self::ok(self.api.send("GET", path, None, None).await, path)
    }

    async fn post(&self, path: &str, body: &Value) -> ApiReply {
        self.api.send("POST", path, None, Some(body)).await
    }

    /// Every item of a paged list.
    async fn all(&self, path: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut after = 0;
        let mut items = Vec::new();
        loop {
            let page = self
                .get(&format!("{path}{sep}after={after}&limit=50"))
                .await;
            let got = page["items"].as_array().cloned().unwrap_or_default();
            if got.is_empty() {
                return items;
            }
            after = page["next_after"].as_i64().expect("next_after");
            items.extend(got);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Waits (polling briefly) until `check` holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn today(clock: &ManualClock) -> String {
    chrono::DateTime::<chrono::Utc>::from(clock.now())
        .date_naive()
        .to_string()
}

fn birth_content(marker: &str) -> String {
    format!(
        "<b:{BIRTH_ROOT} xmlns:b=\"{BIRTH_NS}\"><b:Surname>Ivanova</b:Surname><b:BirthDate>2019-05-14</b:BirthDate><b:Note>{marker}</b:Note></b:{BIRTH_ROOT}>"
    )
}

/// A complete card without the sender's registration: the adapter numbers it.
fn card(clock: &ManualClock) -> Value {
    let mut card = RequestCard::complete(CONSUMER_AGENCY, PROVIDER_AGENCY, &today(clock), "");
    card.sender_registration = None;
    serde_json::to_value(card).expect("card JSON")
}

fn submission(clock: &ManualClock, client_ref: &str, marker: &str) -> Value {
    json!({
        "client_ref": client_ref,
        "content": birth_content(marker),
        "card": card(clock),
    })
}

fn b64(data: &[u8]) -> String {
    use std::fmt::Write as _;
    // Standard base64 without a dependency of the test's own.
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                let _ = out.write_char(A[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The marker of a birth-record request (the text of its `Note`).
fn marker_of(xml: &str) -> String {
    let start = xml.find("Note>").map(|i| i + 5).unwrap_or(0);
    let end = xml[start..].find('<').map(|i| start + i).unwrap_or(start);
    xml[start..end].to_string()
}

fn answer_content(marker: &str) -> String {
    format!(
        "<r:BirthRecordResponse xmlns:r=\"{BIRTH_NS}\"><r:RecordNumber>answer-{marker}</r:RecordNumber></r:BirthRecordResponse>"
    )
}

// ---------------------------------------------------------------------------------------
// The agency's system behind the provider adapter's callback.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AgencyMode {
    /// Answer with the record at once.
    Answer,
    /// 503: the agency's system is failing.
    Fail,
}

#[derive(Clone)]
struct Agency {
    url: String,
    mode: Arc<Mutex<AgencyMode>>,
    /// Every callback payload received.
    calls: Arc<Mutex<Vec<Value>>>,
}

impl Agency {
    async fn start_on(listener: TcpListener) -> Agency {
        let agency = Agency {
            url: format!("http://{}/mezhved", listener.local_addr().expect("addr")),
            mode: Arc::new(Mutex::new(AgencyMode::Answer)),
            calls: Arc::new(Mutex::new(Vec::new())),
        };
        let a = agency.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let a = a.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let a = a.clone();
                        async move { Ok::<_, std::convert::Infallible>(a.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        agency
    }

    async fn handle(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<Full<Bytes>> {
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mode = *self.mode.lock().expect("mode");
        self.calls.lock().expect("calls").push(payload.clone());
        let (status, answer) = match mode {
            AgencyMode::Fail => (503, json!({"error": "records database down"})),
            AgencyMode::Answer => {
                let marker = marker_of(payload["content"].as_str().unwrap_or(""));
                (200, json!({ "data": answer_content(&marker) }))
            }
        };
        hyper::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(answer.to_string())))
            .expect("response")
    }

    fn set(&self, mode: AgencyMode) {
        *self.mode.lock().expect("mode") = mode;
    }

    fn calls(&self) -> Vec<Value> {
        self.calls.lock().expect("calls").clone()
    }
}

// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_travels_from_adapter_to_adapter_with_triple_registration() {
    let gw = TestGateway::start().await;
    let dirs = tempfile::tempdir().expect("tempdir");
    let agency = Agency::start_on(TcpListener::bind("127.0.0.1:0").await.expect("bind")).await;
    let provider = Running::start(
        provider_config(&gw.endpoint, &dirs.path().join("zags"), Some(&agency.url)),
        &gw.clock,
    )
    .await;
    let consumer = Running::start(
        consumer_config(&gw.endpoint, &dirs.path().join("uszn")),
        &gw.clock,
    )
    .await;

    // The consumer's system submits: content, card (no registration number of its own),
    // and a file.
    let file = b"scan of the application form".repeat(10);
    let mut body = submission(&gw.clock, "case-2026-001", "first-exchange");
    body["files"] = json!([{ "content_id": "application", "mime_type": "application/pdf", "data": b64(&file) }]);
    let submitted = consumer.post("/api/v1/requests", &body).await;
    assert_eq!(submitted.status, 202, "{}", submitted.text());
    let submitted = submitted.json();
    assert_eq!(submitted["status"], "queued");
    assert_eq!(submitted["client_ref"], "case-2026-001");
    let id = submitted["id"].as_i64().expect("id");
    let message_id = submitted["message_id"]
        .as_str()
        .expect("message id")
        .to_string();
    let sender_number = format!("USZN-OUT-{id}");
    assert_eq!(
        submitted["sender_registration"]["number"],
        sender_number.as_str()
    );

    // The same submit again is the same request.
    let again = consumer.post("/api/v1/requests", &body).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["id"], id);

    let path = format!("/api/v1/requests/{id}");
    eventually("the request is answered", || async {
        consumer.get(&path).await["status"] == "answered"
    })
    .await;
    let row = consumer.get(&path).await;
    assert_eq!(row["message_id"], message_id.as_str());
    let global_id = row["global_id"].as_str().expect("global id").to_string();
    assert_eq!(row["registration"]["global_id"], global_id.as_str());
    assert_eq!(
        row["registration"]["sender_registration"]["number"],
        sender_number.as_str()
    );
    assert!(row["registration"]["due_at"].is_string(), "{row}");
    assert_eq!(row["reply"]["kind"], "data");
    assert_eq!(row["late"], false);
    let reply_id = row["reply"]["inbox_id"].as_i64().expect("reply");

    // The answer in the consumer's inbox, registered by the consumer's adapter (stored
    // first, acknowledged to the gateway right after: wait for both).
    eventually("the answer is acknowledged", || async {
        consumer.get(&format!("/api/v1/inbox/{reply_id}")).await["acked"] == true
    })
    .await;
    let response = consumer.get(&format!("/api/v1/inbox/{reply_id}")).await;
    assert_eq!(response["direction"], "response");
    assert_eq!(response["request_id"], id);
    assert_eq!(response["original_message_id"], message_id.as_str());
    assert_eq!(
        response["content"],
        answer_content("first-exchange").as_str()
    );
    assert_eq!(response["acked"], true);
    let consumer_number = response["registration_number"]
        .as_str()
        .expect("number")
        .to_string();
    assert_eq!(consumer_number, format!("USZN-IN-{reply_id}"));
    let response_gid = response["global_id"].as_str().expect("gid").to_string();

    // The request in the provider's inbox: card, file, registration, the answer sent.
    // (Its Ack to the gateway may still be on the way while the answer already travels.)
    eventually("the provider acknowledged the request", || async {
        provider
            .all("/api/v1/inbox?direction=request")
            .await
            .iter()
            .all(|r| r["acked"] == true)
    })
    .await;
    let requests = provider.all("/api/v1/inbox?direction=request").await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request["global_id"], global_id.as_str());
    assert_eq!(request["state"], "answered");
    assert_eq!(request["acked"], true);
    assert_eq!(
        request["card"]["sender_registration"][0],
        sender_number.as_str()
    );
    assert_eq!(request["attachments"][0]["content_id"], "application");
    assert_eq!(request["attachments"][0]["size"], file.len());
    let provider_number = request["registration_number"]
        .as_str()
        .expect("number")
        .to_string();
    assert!(provider_number.starts_with("ZAGS-IN-"), "{provider_number}");
    assert_eq!(request["answers"][0]["global_id"], response_gid.as_str());
    // The agency's system got the request once, with the file's bytes.
    let calls = agency.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["global_id"], global_id.as_str());
    assert_eq!(calls[0]["attachments"][0]["data"], b64(&file).as_str());
    assert_eq!(calls[0]["registration_number"], provider_number.as_str());

    // The gateway's processing statuses reach both rows.
    eventually("the consumer learns its request was delivered", || async {
        consumer.get(&path).await["gateway_statuses"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["category"] == "underProcessing"))
    })
    .await;
    let inbox_path = format!("/api/v1/inbox/{}", request["id"]);
    eventually("the provider learns its answer was delivered", || async {
        provider.get(&inbox_path).await["answers"][0]["status"] == "delivered"
    })
    .await;

    // The journal binds the three registrations: the sender's number (the first), the
    // gateway's global ID and checksum (the second), the receiver's number (the third).
    let api = gw.api();
    let card = api
        .auditor("GET", &format!("/api/v1/journal/cards/{global_id}"), None)
        .await;
    assert_eq!(card.status, 200, "{}", card.text());
    let card = card.json();
    let details = &card["card"]["details"];
    assert_eq!(
        details["sender_registration"]["number"],
        sender_number.as_str()
    );
    assert_eq!(
        details["receiver_registration"]["number"],
        provider_number.as_str()
    );
    assert_eq!(
        card["card"]["checksum"],
        row["registration"]["checksum"]["hex"]
    );
    let types: Vec<&str> = card["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(types.contains(&"message.acknowledged"), "{types:?}");
    let rcard = api
        .auditor(
            "GET",
            &format!("/api/v1/journal/cards/{response_gid}"),
            None,
        )
        .await
        .json();
    assert_eq!(rcard["card"]["original_global_id"], global_id.as_str());
    assert_eq!(
        rcard["card"]["details"]["receiver_registration"]["number"],
        consumer_number.as_str()
    );

    // Exactly one message each way at the gateway.
    assert_eq!(
        gw.count("SELECT count(*) FROM messages WHERE queue = 0 AND sender_system = 'USZN_IS'"),
        1
    );
    assert_eq!(
        gw.count("SELECT count(*) FROM messages WHERE queue = 1 AND sender_system = 'ZAGS_IS'"),
        1
    );
    let stats = consumer.get("/api/v1/stats").await;
    assert_eq!(stats["requests"], json!({ "answered": 1 }), "{stats}");
    assert_eq!(stats["unacknowledged"], 0);

    // The consumer's system takes the answer over: its files go, the item stays.
    let done = consumer
        .post(&format!("/api/v1/inbox/{reply_id}/done"), &json!({}))
        .await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.json()["state"], "done");
    let news = consumer.all("/api/v1/inbox?state=new").await;
    assert!(news.is_empty(), "{news:?}");

    consumer.stop().await;
    provider.stop().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_in_queue_mode_asks_for_a_clarification_then_answers_with_a_file() {
    let gw = TestGateway::start().await;
    let dirs = tempfile::tempdir().expect("tempdir");
    let provider = Running::start(
        provider_config(&gw.endpoint, &dirs.path().join("zags"), None),
        &gw.clock,
    )
    .await;
    let consumer = Running::start(
        consumer_config(&gw.endpoint, &dirs.path().join("uszn")),
        &gw.clock,
    )
    .await;
    let submitted = consumer
        .post(
            "/api/v1/requests",
            &submission(&gw.clock, "case-queue", "queue-mode"),
        )
        .await;
    assert_eq!(submitted.status, 202, "{}", submitted.text());
    let id = submitted.json()["id"].as_i64().expect("id");

    // The agency's system polls its adapter for new requests.
    let new_requests = "/api/v1/inbox?direction=request&state=new";
    eventually("the request reaches the provider's inbox", || async {
        !provider.all(new_requests).await.is_empty()
    })
    .await;
    let item = provider.all(new_requests).await[0].clone();
    assert_eq!(
        item["content"].as_str().map(marker_of).as_deref(),
        Some("queue-mode")
    );
    let inbox_id = item["id"].as_i64().expect("id");
    let answer_path = format!("/api/v1/inbox/{inbox_id}/answer");

    // First a clarification (an intermediate status): the request stays open.
    let status = json!({ "status": { "code": 2, "description": "Which birth year?", "parameters": { "field": "year" } } });
    let queued = provider.post(&answer_path, &status).await;
    assert_eq!(queued.status, 202, "{}", queued.text());
    let path = format!("/api/v1/requests/{id}");
    eventually("the consumer sees the clarification", || async {
        consumer.get(&path).await["status"] == "clarification"
    })
    .await;
    let row = consumer.get(&path).await;
    assert_eq!(row["provider_status"]["code"], 2);
    assert_eq!(row["provider_status"]["parameters"]["field"], "year");

    // Then the data with a file, as MTOM.
    let file = vec![7u8; 5000];
    let data = json!({
        "data": answer_content("queue-mode"),
        "files": [{ "content_id": "extract", "mime_type": "application/pdf", "data": b64(&file) }],
        "mtom": true,
    });
    let queued = provider.post(&answer_path, &data).await;
    assert_eq!(queued.status, 202, "{}", queued.text());
    let answer_id = queued.json()["id"].as_i64().expect("answer id");
    // The same answer again is the same answer; another final answer is refused.
    let again = provider.post(&answer_path, &data).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["id"], answer_id);
    let other = provider
        .post(
            &answer_path,
            &json!({ "reject": { "code": "NO_DATA", "description": "none" } }),
        )
        .await;
    let detail = other.expect_problem(409);
    assert!(detail.contains("final answer"), "{detail}");

    eventually("the consumer's request is answered", || async {
        consumer.get(&path).await["status"] == "answered"
    })
    .await;
    let row = consumer.get(&path).await;
    assert_eq!(row["responses"].as_array().map(Vec::len), Some(2), "{row}");
    let reply = row["reply"]["inbox_id"].as_i64().expect("reply");
    let response = consumer.get(&format!("/api/v1/inbox/{reply}")).await;
    let url = response["attachments"][0]["url"]
        .as_str()
        .expect("url")
        .to_string();
    let bytes = consumer.api.send("GET", &url, None, None).await;
    assert_eq!(bytes.status, 200);
    assert_eq!(bytes.content_type, "application/pdf");
    assert_eq!(bytes.body.as_ref(), file.as_slice());
    // Taken over: the file is gone.
    let done = consumer
        .post(&format!("/api/v1/inbox/{reply}/done"), &json!({}))
        .await;
    assert_eq!(done.status, 200);
    consumer
        .api
        .send("GET", &url, None, None)
        .await
        .expect_problem(404);

    // One request and two answers (status, data) at the gateway; the provider's row
    // shows both answers sent.
    assert_eq!(
        gw.count("SELECT count(*) FROM messages WHERE queue = 1 AND sender_system = 'ZAGS_IS'"),
        2
    );
    let item = provider.get(&format!("/api/v1/inbox/{inbox_id}")).await;
    assert_eq!(item["state"], "answered");
    let kinds: Vec<&str> = item["answers"]
        .as_array()
        .expect("answers")
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["status", "data"]);
    consumer.stop().await;
    provider.stop().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_problem_and_nothing_is_written() {
    let gw = TestGateway::start().await;
    let dirs = tempfile::tempdir().expect("tempdir");
    let data_dir = dirs.path().join("uszn");
    let mut config = consumer_config(&gw.endpoint, &data_dir);
    // sha256("local-token")
    config.api.token_sha256 =
        "c7ec7c548f5992a239dc52fea748b808b408fe083c4625e9aa6ffe717343f9c1".into();
    let consumer = Running::start(config, &gw.clock).await;
    let api = &consumer.api;
    let post = |body: Value| async move {
        api.send("POST", "/api/v1/requests", Some("local-token"), Some(&body))
            .await
    };

    // Without the token: 401.
    api.send("GET", "/api/v1/stats", None, None)
        .await
        .expect_problem(401);
    api.send("GET", "/api/v1/stats", Some("wrong"), None)
        .await
        .expect_problem(401);
    // /health needs none.
    assert_eq!(api.send("GET", "/health", None, None).await.status, 200);

    // Not JSON.
    let raw = api
        .send_with_headers(
            "POST",
            "/api/v1/requests",
            &[("Authorization", "Bearer local-token")],
            None,
        )
        .await;
    assert!(raw.expect_problem(400).contains("not JSON"));
    let good = submission(&gw.clock, "ref-1", "bad-input");
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut b = good.clone();
                b.as_object_mut().expect("object").remove("client_ref");
                b
            },
            "client_ref",
        ),
        (
            {
                let mut b = good.clone();
                b["client_ref"] = json!("  ");
                b
            },
            "client_ref",
        ),
        (
            {
                let mut b = good.clone();
                b["content"] = json!("<b:Broken xmlns:b=\"urn:x\">");
                b
            },
            "well-formed",
        ),
        (
            {
                let mut b = good.clone();
                b["content"] = json!("<NoNamespace/>");
                b
            },
            "namespace",
        ),
        (
            {
                let mut b = good.clone();
                b["files"] =
                    json!([{ "content_id": "a", "mime_type": "text/plain", "data": "***" }]);
                b
            },
            "base64",
        ),
        (
            {
                let mut b = good.clone();
                b["files"] = json!([{ "content_id": "a", "mime_type": "text/plain", "data": "" }, { "content_id": "a", "mime_type": "text/plain", "data": "" }]);
                b
            },
            "twice",
        ),
        (
            {
                let mut b = good.clone();
                b["eol"] = json!("tomorrow");
                b
            },
            "eol",
        ),
        (
            {
                let mut b = good.clone();
                b["colour"] = json!("blue");
                b
            },
            "colour",
        ),
        (
            {
                let mut b = good.clone();
                b["card"]["sender_agency"] = json!(42);
                b
            },
            "shape",
        ),
    ];
    for (body, why) in cases {
        let r = post(body.clone()).await;
        let detail = r.expect_problem(422);
        assert!(detail.contains(why), "{why}: {detail}");
    }
    let stats = api
        .send("GET", "/api/v1/stats", Some("local-token"), None)
        .await
        .json();
    assert_eq!(stats["requests"], json!({}), "nothing was written: {stats}");
    let files: Vec<_> = std::fs::read_dir(data_dir.join("files"))
        .expect("files dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .collect();
    assert!(files.is_empty(), "no file was left: {files:?}");

    // A client_ref names one request: another body under it is a conflict.
    let r = post(good.clone()).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].clone();
    let mut other = good.clone();
    other["content"] = json!(birth_content("something else"));
    let conflict = post(other).await;
    conflict.expect_problem(409);
    assert_eq!(conflict.json()["id"], id);
    // Unknown rows and routes.
    api.send("GET", "/api/v1/requests/999", Some("local-token"), None)
        .await
        .expect_problem(404);
    api.send(
        "GET",
        "/api/v1/requests?status=lost",
        Some("local-token"),
        None,
    )
    .await
    .expect_problem(400);
    consumer.stop().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_gateway_refuses_ends_rejected_with_its_fault() {
    let gw = TestGateway::start().await;
    let dirs = tempfile::tempdir().expect("tempdir");
    let consumer = Running::start(
        consumer_config(&gw.endpoint, &dirs.path().join("uszn")),
        &gw.clock,
    )
    .await;
    let mut body = submission(&gw.clock, "no-legal-basis", "refused");
    body["card"]["legal_basis"] = json!([]);
    body["card"]["official_name"] = Value::Null;
    let r = consumer.post("/api/v1/requests", &body).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let path = format!("/api/v1/requests/{}", r.json()["id"]);
    eventually("the request is rejected", || async {
        consumer.get(&path).await["status"] == "rejected"
    })
    .await;
    let row = consumer.get(&path).await;
    assert_eq!(row["fault"]["code"], "InvalidContent", "{row}");
    let errors = row["fault"]["validation_errors"]
        .as_array()
        .expect("validation errors");
    assert!(errors.len() >= 2, "{row}");
    assert!(row["global_id"].is_null());
    assert_eq!(row["attempts"], 1, "a refusal is not retried: {row}");
    assert_eq!(
        gw.count("SELECT count(*) FROM messages WHERE sender_system = 'USZN_IS'"),
        0
    );
    consumer.stop().await;
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------
// A gateway that can be stopped and started again on the same address.

struct Node {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

async fn start_node(data_dir: &Path, clock: &Arc<ManualClock>, addr: SocketAddr) -> Node {
    let config = test_config(data_dir);
    let gateway = mezhved_http::Gateway::open(config, clock.clone() as Arc<dyn Clock>)
        .await
        .unwrap_or_else(|e| panic!("gateway does not start: {e}"));
    let listener = TcpListener::bind(addr)
        .await
        .expect("bind the same address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        gateway
            .serve(listener, async move {
                let _ = stopped.await;
            })
            .await
            .expect("gateway serves");
    });
    Node {
        stop: Some(stop),
        task: Some(task),
    }
}

impl Node {
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("gateway stops");
        }
    }
}

fn count_in(data_dir: &Path, sql: &str) -> i64 {
    let db = rusqlite::Connection::open(data_dir.join("mezhved.db")).expect("open the database");
    db.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_or_duplicated_when_the_gateway_and_the_callback_go_away() {
    let dirs = tempfile::tempdir().expect("tempdir");
    let gw_dir = dirs.path().join("gateway");
    let clock = Arc::new(ManualClock::new(wall_clock_now()));
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let endpoint = format!("http://{addr}/smev/v1.1");
    let mut node = Some(start_node(&gw_dir, &clock, addr).await);

    // The agency's system is not there at first: its address is reserved, nobody listens.
    let agency_addr = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let agency_url = format!("http://{agency_addr}/mezhved");
    let provider = Running::start(
        provider_config(&endpoint, &dirs.path().join("zags"), Some(&agency_url)),
        &clock,
    )
    .await;
    let consumer = Running::start(
        consumer_config(&endpoint, &dirs.path().join("uszn")),
        &clock,
    )
    .await;

    let mut ids: HashMap<String, i64> = HashMap::new();
    let submit = |n: usize| {
        let body = submission(&clock, &format!("fault-{n}"), &format!("fault-marker-{n}"));
        let api = consumer.api.clone();
        async move {
            let r = api
                .send("POST", "/api/v1/requests", None, Some(&body))
                .await;
            assert!(r.status == 202 || r.status == 200, "{}", r.text());
            (format!("fault-{n}"), r.json()["id"].as_i64().expect("id"))
        }
    };
    for n in 0..4 {
        let (r, id) = submit(n).await;
        ids.insert(r, id);
    }
    // These reach the gateway before it goes away. (The sender works on the oldest
    // `concurrency` queued rows; were these still queued, the rows checked below would
    // wait behind them instead of being tried.)
    for n in 0..4 {
        let id = ids[&format!("fault-{n}")];
        eventually("the first requests are sent", || async {
            consumer.get(&format!("/api/v1/requests/{id}")).await["status"] != "queued"
        })
        .await;
    }
    // The gateway goes away while requests keep coming.
    if let Some(n) = node.take() {
        n.stop().await;
    }
    for n in 4..8 {
        let (r, id) = submit(n).await;
        ids.insert(r, id);
    }
    // Submitted again (the agency's system retrying): the same rows.
    for n in [0, 5] {
        let (r, id) = submit(n).await;
        assert_eq!(ids[&r], id, "{r} resubmitted");
    }
    let down_id = ids["fault-6"];
    eventually("sending fails while the gateway is down", || async {
        let row = consumer.get(&format!("/api/v1/requests/{down_id}")).await;
        row["status"] == "queued" && row["attempts"].as_i64().unwrap_or(0) >= 2
    })
    .await;
    let health = consumer.get("/health").await;
    assert!(health["gateway"]["last_error"].is_string(), "{health}");

    // Back on the same address; more requests.
    node = Some(start_node(&gw_dir, &clock, addr).await);
    for n in 8..10 {
        let (r, id) = submit(n).await;
        ids.insert(r, id);
    }
    // The callback has been failing (unreachable) for the requests that arrived.
    eventually("the provider tried its unreachable callback", || async {
        provider
            .all("/api/v1/inbox?direction=request")
            .await
            .iter()
            .any(|i| i["dispatch_attempts"].as_i64().unwrap_or(0) >= 2 && i["state"] == "new")
    })
    .await;
    // The agency's system comes up, failing at first, then answering.
    let agency = Agency::start_on(TcpListener::bind(agency_addr).await.expect("rebind")).await;
    agency.set(AgencyMode::Fail);
    eventually("the failing agency is called", || async {
        !agency.calls().is_empty()
    })
    .await;
    agency.set(AgencyMode::Answer);

    let mut advanced = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answered = consumer.all("/api/v1/requests?status=answered").await.len();
        if answered == ids.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {answered} of {} answered",
            ids.len()
        );
        // A delivery whose answer was cut by the stop is leased until its visibility
        // timeout: move the gateway's clock past it once.
        if !advanced && tokio::time::Instant::now() + Duration::from_secs(12) > deadline {
            clock.advance(Duration::from_secs(301));
            advanced = true;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }

    // At the gateway: exactly one request per client_ref, under the MessageID the adapter
    // fixed, and exactly one answer to each.
    let rows = consumer.all("/api/v1/requests").await;
    assert_eq!(rows.len(), ids.len());
    for row in &rows {
        let mid = row["message_id"].as_str().expect("message id");
        assert_eq!(
            count_in(
                &gw_dir,
                &format!("SELECT count(*) FROM messages WHERE queue = 0 AND sender_system = 'USZN_IS' AND sender_message_id = '{mid}'"),
            ),
            1,
            "{row}"
        );
        assert_eq!(row["responses"].as_array().map(Vec::len), Some(1), "{row}");
    }
    assert_eq!(
        count_in(
            &gw_dir,
            "SELECT count(*) FROM messages WHERE queue = 0 AND sender_system = 'USZN_IS'"
        ),
        ids.len() as i64
    );
    assert_eq!(
        count_in(
            &gw_dir,
            "SELECT count(*) FROM messages WHERE queue = 1 AND sender_system = 'ZAGS_IS'"
        ),
        ids.len() as i64
    );
    // In the adapters: one response per request, one request per global ID.
    let responses = consumer.all("/api/v1/inbox?direction=response").await;
    let linked: HashSet<i64> = responses
        .iter()
        .filter_map(|r| r["request_id"].as_i64())
        .collect();
    assert_eq!(responses.len(), ids.len());
    assert_eq!(linked, ids.values().copied().collect::<HashSet<_>>());
    for r in &responses {
        let request = consumer
            .get(&format!("/api/v1/requests/{}", r["request_id"]))
            .await;
        let n = request["client_ref"]
            .as_str()
            .and_then(|c| c.strip_prefix("fault-"))
            .expect("client_ref");
        assert_eq!(
            r["content"].as_str(),
            Some(answer_content(&format!("fault-marker-{n}")).as_str()),
            "the answer belongs to its request"
        );
    }
    let requests = provider.all("/api/v1/inbox?direction=request").await;
    let gids: HashSet<&str> = requests
        .iter()
        .filter_map(|r| r["global_id"].as_str())
        .collect();
    assert_eq!(requests.len(), ids.len());
    assert_eq!(gids.len(), ids.len());
    assert!(requests
        .iter()
        .all(|r| r["state"] == "answered" && r["acked"] == true));
    let stats = provider.get("/api/v1/stats").await;
    assert_eq!(stats["unacknowledged"], 0, "{stats}");

    consumer.stop().await;
    provider.stop().await;
    if let Some(n) = node.take() {
        n.stop().await;
    }
}

// ---------------------------------------------------------------------------------------
// Push.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_message_is_stored_and_acknowledged_once_and_a_redelivery_keeps_its_number() {
    let gw = TestGateway::start().await;
    let dirs = tempfile::tempdir().expect("tempdir");
    let data_dir = dirs.path().join("zags");
    // This provider adapter only receives pushes: it polls nothing.
    let mut config = provider_config(&gw.endpoint, &data_dir, None);
    config.provider.poll = false;
    config.consumer.poll_statuses = false;
    let provider = Running::start(config.clone(), &gw.clock).await;
    let push = client::Client::new(&format!("{}/push", provider.url)).expect("client");
    let consumer = gw.consumer();

    // A request with an MTOM attachment; what the gateway pushes is the
    // GetRequestResponse it delivers, fetched here by a pull and replayed.
    let mut request = gw.birth_request("pushed-mtom");
    let scan = Bytes::from(vec![42u8; 3000]);
    request.attachments = vec![Attachment {
        content_id: "scan".into(),
        mime_type: "image/tiff".into(),
        data: scan.clone(),
        mtom: true,
    }];
    let sent = consumer.call(client::send_request(&request)).await;
    expect_ok(&sent);
    let gid = sent.global_id().expect("global id");
    let pulled = gw
        .provider()
        .call(client::get_request(None, gw.now()))
        .await;
    expect_ok(&pulled);
    assert!(
        !pulled.parts.is_empty(),
        "an MTOM attachment is delivered as MTOM"
    );
    let (content_type, body) = mtom_bytes(&client::Outgoing {
        envelope: pulled.envelope.to_vec(),
        parts: pulled
            .parts
            .iter()
            .map(|(cid, data)| (cid.clone(), "application/octet-stream".into(), data.clone()))
            .collect(),
    })
    .await;

    let reply = push
        .post_raw(&content_type, body.clone())
        .await
        .expect("push");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply
            .first_text(client::BASIC_NS, "AckTargetMessage")
            .as_deref(),
        Some(gid.as_str())
    );
    assert_eq!(
        reply.first_text(client::MZ_NS, "Number").as_deref(),
        Some("ZAGS-IN-1"),
        "{}",
        reply.text()
    );
    // Pushed again (the gateway did not get the reply): the same registration.
    let again = push
        .post_raw(&content_type, body.clone())
        .await
        .expect("push");
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(
        again.first_text(client::MZ_NS, "Number").as_deref(),
        Some("ZAGS-IN-1")
    );
    // A body changed in transit does not verify: refused, nothing stored.
    let tampered: Vec<u8> = String::from_utf8_lossy(&body)
        .replace("pushed-mtom", "pushed-MTOM")
        .into_bytes();
    let refused = push.post_raw(&content_type, tampered).await.expect("push");
    assert_eq!(refused.status, 400, "{}", refused.text());
    let refused = push
        .post_raw("text/xml", b"<not-soap/>".to_vec())
        .await
        .expect("push");
    assert_eq!(refused.status, 400, "{}", refused.text());
    let items = provider.all("/api/v1/inbox").await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["received_via"], "push");
    assert_eq!(items[0]["acked"], true);
    let url = items[0]["attachments"][0]["url"]
        .as_str()
        .expect("url")
        .to_string();
    let file = provider.api.send("GET", &url, None, None).await;
    assert_eq!(file.body, scan);

    // The reply is the Ack the gateway acts on: the receiver's registration reaches the
    // journal.
    expect_ok(
        &gw.provider()
            .send_raw(&client::Outgoing {
                envelope: reply.envelope.to_vec(),
                parts: Vec::new(),
            })
            .await,
    );
    let card = gw
        .api()
        .auditor("GET", &format!("/api/v1/journal/cards/{gid}"), None)
        .await
        .json();
    assert_eq!(
        card["card"]["details"]["receiver_registration"]["number"],
        "ZAGS-IN-1"
    );

    // A second request is pushed (plain text/xml) and stored, but the Ack never reaches
    // the gateway — as if the adapter died right after storing it.
    let second = gw.birth_request("pushed-then-lost");
    let sent = consumer.call(client::send_request(&second)).await;
    expect_ok(&sent);
    let gid2 = sent.global_id().expect("global id");
    let pulled = gw
        .provider()
        .call(client::get_request(None, gw.now()))
        .await;
    expect_ok(&pulled);
    assert!(pulled.parts.is_empty());
    let reply = push
        .post_raw("text/xml; charset=utf-8", pulled.envelope.to_vec())
        .await
        .expect("push");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.first_text(client::MZ_NS, "Number").as_deref(),
        Some("ZAGS-IN-2")
    );
    provider.stop().await;

    // The lease runs out; the adapter comes back polling; the gateway delivers the request
    // again; the adapter recognises it and acknowledges it with the number it gave.
    gw.clock.advance(Duration::from_secs(301));
    config.provider.poll = true;
    let provider = Running::start(config, &gw.clock).await;
    eventually("the redelivered request is acknowledged", || async {
        gw.count("SELECT count(*) FROM messages WHERE queue = 0 AND acked_at IS NOT NULL") == 2
    })
    .await;
    let card = gw
        .api()
        .auditor("GET", &format!("/api/v1/journal/cards/{gid2}"), None)
        .await
        .json();
    assert_eq!(
        card["card"]["details"]["receiver_registration"]["number"], "ZAGS-IN-2",
        "{card}"
    );
    assert_eq!(provider.all("/api/v1/inbox").await.len(), 2);
    provider.stop().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_push_delivery_the_gateway_delivers_to_both_adapters_without_polling() {
    let gw = TestGateway::start_with(allow_plain_push).await;
    let dirs = tempfile::tempdir().expect("tempdir");
    let agency = Agency::start_on(TcpListener::bind("127.0.0.1:0").await.expect("bind")).await;
    // Neither adapter polls for messages: the gateway pushes requests and responses.
    let mut zags = provider_config(&gw.endpoint, &dirs.path().join("zags"), Some(&agency.url));
    zags.provider.poll = false;
    let mut uszn = consumer_config(&gw.endpoint, &dirs.path().join("uszn"));
    uszn.consumer.poll_responses = false;
    let provider = Running::start(zags, &gw.clock).await;
    let consumer = Running::start(uszn, &gw.clock).await;
    for (system, adapter) in [("ZAGS_IS", &provider), ("USZN_IS", &consumer)] {
        let r = gw
            .set_push_url(system, Some(&format!("{}/push", adapter.url)))
            .await;
        assert!(r.status < 300, "{system}: {}", r.text());
    }

    let mut ids = Vec::new();
    for n in 0..3 {
        let r = consumer
            .post(
                "/api/v1/requests",
                &submission(
                    &gw.clock,
                    &format!("pushed-{n}"),
                    &format!("push-marker-{n}"),
                ),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.text());
        ids.push(r.json()["id"].as_i64().expect("id"));
    }
    eventually("every request is answered through pushes", || async {
        gw.wake_push();
        consumer.all("/api/v1/requests?status=answered").await.len() == ids.len()
    })
    .await;
    let requests = provider.all("/api/v1/inbox?direction=request").await;
    assert_eq!(requests.len(), ids.len());
    assert!(
        requests.iter().all(|r| r["received_via"] == "push"),
        "{requests:?}"
    );
    let responses = consumer.all("/api/v1/inbox?direction=response").await;
    assert_eq!(responses.len(), ids.len());
    assert!(
        responses.iter().all(|r| r["received_via"] == "push"),
        "{responses:?}"
    );
    // The gateway took each adapter's reply as the Ack: registrations on the cards, and
    // nothing left in any queue.
    for r in &requests {
        let card = gw
            .api()
            .auditor(
                "GET",
                &format!(
                    "/api/v1/journal/cards/{}",
                    r["global_id"].as_str().expect("gid")
                ),
                None,
            )
            .await
            .json();
        assert_eq!(
            card["card"]["details"]["receiver_registration"]["number"], r["registration_number"],
            "{card}"
        );
    }
    assert_eq!(
        gw.count("SELECT count(*) FROM messages WHERE queue IN (0, 1) AND acked_at IS NULL"),
        0
    );
    assert_eq!(agency.calls().len(), ids.len());
    consumer.stop().await;
    provider.stop().await;
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------
// The gateway behind an operator's TLS front.

/// Writes `cert` as PEM into `dir/name`.
fn pem_file(dir: &Path, name: &str, pem: Vec<u8>) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).expect("write PEM");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_adapter_trusts_only_its_roots_and_presents_its_client_certificate() {
    let gw = TestGateway::start().await;
    let dirs = tempfile::tempdir().expect("tempdir");
    let target: SocketAddr = gw
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("gateway address");
    let (server, server_key) = self_signed_tls(true);
    let (stranger, _) = self_signed_tls(true);
    let (client_cert, client_key) = self_signed_tls(false);
    let roots = pem_file(dirs.path(), "roots.pem", server.to_pem().expect("pem"));
    let other_roots = pem_file(dirs.path(), "other.pem", stranger.to_pem().expect("pem"));
    let client_pem = pem_file(
        dirs.path(),
        "client.pem",
        client_cert.to_pem().expect("pem"),
    );
    let client_key_pem = pem_file(
        dirs.path(),
        "client.key",
        client_key.private_key_to_pem_pkcs8().expect("pem"),
    );

    // The SDK through a TLS front: trusted roots work, other roots are a TLS failure
    // before anything is sent.
    let front = tls_front(target, tls_acceptor(&server, &server_key)).await;
    let url = format!("https://127.0.0.1:{}/smev/v1.1", front.port());
    let settings = |ca: &Path| mezhved_net::TlsSettings {
        ca_file: Some(ca.to_path_buf()),
        ..Default::default()
    };
    let key = key("ecdsa", "consumer-is");
    let sdk =
        client::SystemClient::with_tls(&url, &settings(&roots), key.clone(), None).expect("client");
    let accepted = sdk
        .send_request(&gw.birth_request("over-tls"))
        .await
        .expect("accepted over TLS");
    assert!(!accepted.global_id.is_empty(), "{accepted:?}");
    let stranger_sdk =
        client::SystemClient::with_tls(&url, &settings(&other_roots), key.clone(), None)
            .expect("client");
    let refused = stranger_sdk
        .send_request(&gw.birth_request("wrong-roots"))
        .await
        .expect_err("an untrusted certificate");
    assert!(refused.to_string().contains("TLS"), "{refused}");
    assert!(refused.to_string().contains("certificate"), "{refused}");
    // (The system's default roots do not know a self-signed front either.)
    assert!(client::SystemClient::new(&url, key.clone(), None)
        .expect("client")
        .send_request(&gw.birth_request("default-roots"))
        .await
        .is_err());
    assert_eq!(
        gw.count("SELECT count(*) FROM messages WHERE sender_system = 'USZN_IS'"),
        1
    );

    // A front that demands a client certificate chained to the operator's list.
    let mut strict =
        openssl::ssl::SslAcceptor::mozilla_intermediate_v5(openssl::ssl::SslMethod::tls_server())
            .expect("acceptor");
    strict.set_private_key(&server_key).expect("key");
    strict.set_certificate(&server).expect("certificate");
    let mut clients = openssl::x509::store::X509StoreBuilder::new().expect("store");
    clients.add_cert(client_cert.clone()).expect("client root");
    strict
        .set_verify_cert_store(clients.build())
        .expect("store");
    strict.set_verify(
        openssl::ssl::SslVerifyMode::PEER | openssl::ssl::SslVerifyMode::FAIL_IF_NO_PEER_CERT,
    );
    let strict_front = tls_front(target, strict.build()).await;
    let strict_url = format!("https://127.0.0.1:{}/smev/v1.1", strict_front.port());
    let anonymous =
        client::SystemClient::with_tls(&strict_url, &settings(&roots), key.clone(), None)
            .expect("client");
    assert!(anonymous
        .send_request(&gw.birth_request("no-client-cert"))
        .await
        .is_err());

    // The adapter, configured with the roots and its client certificate, sends through it.
    let mut config = consumer_config(&strict_url, &dirs.path().join("uszn"));
    config.gateway.tls_ca_file = roots.clone();
    config.gateway.tls_client_certificate = client_pem.clone();
    config.gateway.tls_client_key = client_key_pem.clone();
    config.validate().expect("a valid configuration");
    let consumer = Running::start(config, &gw.clock).await;
    let r = consumer
        .post(
            "/api/v1/requests",
            &submission(&gw.clock, "tls-1", "through-mtls"),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let path = format!("/api/v1/requests/{}", r.json()["id"]);
    eventually(
        "the request reaches the gateway over mutual TLS",
        || async { consumer.get(&path).await["global_id"].is_string() },
    )
    .await;
    assert_eq!(
        gw.count("SELECT count(*) FROM messages WHERE sender_system = 'USZN_IS'"),
        2
    );
    consumer.stop().await;

    // A client certificate without its key is a configuration error.
    let mut half = consumer_config(&strict_url, &dirs.path().join("half"));
    half.gateway.tls_client_certificate = client_pem;
    let problems = half.validate().expect_err("half a client identity");
    assert!(
        problems.to_string().contains("both or neither"),
        "{problems}"
    );
    // TLS settings with a plain http:// URL would be silently unused: refused.
    let mut plain = consumer_config(&gw.endpoint, &dirs.path().join("plain"));
    plain.gateway.tls_ca_file = roots;
    let problems = plain.validate().expect_err("TLS keys without TLS");
    assert!(problems.to_string().contains("https://"), "{problems}");
    gw.stop().await;
}
