//! The demo agencies' own information systems, as they would sit behind their adapters:
//! the providers answer the adapter's callbacks from adapters/demo's models, and the
//! social-protection office submits its stream of requests and reads the answers — all
//! through the adapters' local JSON APIs, exactly as a real agency system would.
//!
//! Invariants:
//! - A provider's answer depends only on the request's content (the models are
//!   deterministic), so an answer promised with 202 and lost in a stop is recomputed
//!   from the adapter's inbox when the demo resumes ([`AgencyServer::resume_pending`]).
//! - Late answers and the final answers after a clarification are given at a time of the
//!   region's clock computed with the production calendar from the request's receipt:
//!   always after the 5-working-day deadline for late ones.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mezhved_adapter::{AdapterConfig, KindConfig, ProviderMode};
use mezhved_core::calendar::{due, Calendar};
use mezhved_core::clock::{Clock, ScaledClock};
use mezhved_demo::{Agency, DemoAnswer, DemoKind, DemoRequest, Population, Provider, Scenario};
use serde_json::{json, Value};
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;

/// A small JSON client for the adapters' local APIs.
#[derive(Debug, Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    pub fn new() -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    async fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let mut req = hyper::Request::builder().method(method).uri(url);
        let bytes = match body {
            Some(b) => {
                req = req.header(hyper::header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(b).map_err(|e| e.to_string())?)
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(bytes)).map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(Duration::from_secs(30), self.client.request(req))
            .await
            .map_err(|_| format!("{url}: no answer in 30 s"))?
            .map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or(Value::String(String::from_utf8_lossy(&body).into_owned()))
        };
        Ok((status, value))
    }

    pub async fn get(&self, url: &str) -> Result<(u16, Value), String> {
        self.send("GET", url, None).await
    }

    pub async fn post(&self, url: &str, body: &Value) -> Result<(u16, Value), String> {
        self.send("POST", url, Some(body)).await
    }
}

/// The adapter configuration of one demo agency.
pub fn adapter_config(
    repo: &Path,
    dir: &Path,
    agency: &Agency,
    endpoint: &str,
    provides: Option<DemoKind>,
    callback_url: Option<&str>,
    listen: &str,
) -> AdapterConfig {
    let keys = repo.join("keys/test-pki");
    let slug = agency.mnemonic.to_lowercase();
    let mut c = AdapterConfig {
        data_dir: dir.join("adapters").join(&slug),
        system: agency.system.into(),
        registration_prefix: agency.mnemonic.into(),
        ..AdapterConfig::default()
    };
    c.gateway.url = endpoint.into();
    c.gateway.trust_dir = keys.join("trust");
    c.gateway.certificate = keys.join("ecdsa/gateway.cert.pem");
    c.key.key = keys.join(format!("demo/{slug}-is.key.pem"));
    c.key.certificate = keys.join(format!("demo/{slug}-is.cert.pem"));
    c.api.listen = listen.into();
    c.poll.idle_min_ms = 20;
    c.poll.idle_max_ms = 500;
    c.retry.base_delay_ms = 200;
    c.retry.max_delay_ms = 5_000;
    c.shutdown_grace_seconds = 5;
    match provides {
        Some(kind) => {
            c.consumer.poll_responses = false;
            c.consumer.poll_statuses = true;
            c.provider.enabled = true;
            c.provider.kinds = vec![KindConfig {
                namespace: kind.namespace().into(),
                root_element: kind.request_root().into(),
            }];
            c.provider.mode = ProviderMode::Callback;
            c.provider.callback_url = callback_url.unwrap_or_default().into();
        }
        None => {
            c.consumer.poll_responses = true;
            c.consumer.poll_statuses = true;
            c.provider.enabled = false;
        }
    }
    c
}

/// The adapter API's answer body for a model's answer (`None`: no immediate answer).
fn answer_body(a: &DemoAnswer) -> Value {
    match a {
        DemoAnswer::Data(xml) => json!({ "data": xml }),
        DemoAnswer::NoData { description } => {
            json!({ "reject": { "code": "NO_DATA", "description": description } })
        }
        DemoAnswer::Reject { code, description } => {
            json!({ "reject": { "code": code.as_str(), "description": description } })
        }
        DemoAnswer::Clarify {
            description,
            parameters,
        } => {
            let params: serde_json::Map<String, Value> = parameters
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            json!({ "status": { "code": 2, "description": description, "parameters": params } })
        }
        DemoAnswer::Late { then, .. } => answer_body(then),
    }
}

/// What closes a request after a clarification: the provider cannot answer without
/// the details it asked for, so it refuses; the consumer may send a new request.
fn after_clarification() -> Value {
    json!({ "reject": {
        "code": "UNKNOWN_REQUEST_DESCRIPTION",
        "description": "Сведения для однозначной идентификации не представлены; направьте новый запрос со СНИЛС"
    }})
}

/// A provider agency's information system.
#[derive(Debug, Clone)]
pub struct AgencyServer {
    inner: Arc<AgencyInner>,
}

#[derive(Debug)]
struct AgencyInner {
    provider: Provider,
    clock: Arc<ScaledClock>,
    calendar: Calendar,
    http: Http,
    adapter: Mutex<String>,
    /// Inbox IDs with an answer scheduled by this run.
    scheduled: Mutex<std::collections::HashSet<i64>>,
}

impl AgencyServer {
    pub fn new(
        kind: DemoKind,
        population: Arc<Population>,
        clock: Arc<ScaledClock>,
        http: Http,
    ) -> AgencyServer {
        AgencyServer {
            inner: Arc::new(AgencyInner {
                provider: Provider::new(kind, population),
                clock,
                calendar: Calendar::builtin_ru_federal().unwrap_or_else(|_| Calendar::empty()),
                http,
                adapter: Mutex::new(String::new()),
                scheduled: Mutex::new(Default::default()),
            }),
        }
    }

    pub fn set_adapter(&self, url: String) {
        if let Ok(mut a) = self.inner.adapter.lock() {
            *a = url;
        }
    }

    fn adapter(&self) -> String {
        self.inner
            .adapter
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    pub async fn serve(
        self,
        listener: TcpListener,
        stop: impl Future<Output = ()> + Send + 'static,
    ) {
        let app = Router::new()
            .route("/callback", post(callback))
            .with_state(self);
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "an agency server failed");
        }
    }

    /// When (region time) a deferred answer is due for a request received at `received`.
    fn at_working_days(&self, received: SystemTime, days: u32, hour: u32) -> SystemTime {
        let d = due(
            received.into(),
            days,
            chrono_tz::Europe::Moscow,
            &self.inner.calendar,
        );
        // `at` is 00:00 after the last day: answer during the next working morning.
        SystemTime::from(d.at) + Duration::from_secs(u64::from(hour) * 3600)
    }

    /// Schedules an answer at region time `at` (answered at once if that has passed).
    fn schedule(&self, inbox_id: i64, at: SystemTime, body: Value) {
        if let Ok(mut s) = self.inner.scheduled.lock() {
            if !s.insert(inbox_id) {
                return;
            }
        }
        let me = self.clone();
        tokio::spawn(async move {
            let now = me.inner.clock.now();
            if let Ok(wait) = at.duration_since(now) {
                tokio::time::sleep(me.inner.clock.real_wait(wait)).await;
            }
            let url = format!("{}/api/v1/inbox/{inbox_id}/answer", me.adapter());
            let mut pause = Duration::from_millis(200);
            for _ in 0..20 {
                match me.inner.http.post(&url, &body).await {
                    Ok((s, _)) if (200..300).contains(&s) || s == 409 => return,
                    Ok((s, v)) => {
                        tracing::warn!(status = s, answer = %v, "the adapter refused a deferred answer")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "a deferred answer could not be given; retrying")
                    }
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        });
    }

    /// The request was just handed over: the immediate answer, scheduling what comes later.
    fn handle(&self, inbox_id: i64, content: &str, received: SystemTime) -> (StatusCode, Value) {
        let answer = self.inner.provider.answer(content);
        match &answer {
            DemoAnswer::Late {
                delay_working_days,
                then,
            } => {
                let at = self.at_working_days(received, *delay_working_days, 10);
                self.schedule(inbox_id, at, answer_body(then));
                (StatusCode::ACCEPTED, json!({ "later": at_text(at) }))
            }
            DemoAnswer::Clarify { .. } => {
                let at = self.at_working_days(received, 2, 11);
                self.schedule(inbox_id, at, after_clarification());
                (StatusCode::OK, answer_body(&answer))
            }
            other => (StatusCode::OK, answer_body(other)),
        }
    }

    /// Requests handed over but not finally answered (a stop came first): their answers
    /// are computed again and scheduled.
    pub async fn resume_pending(&self) {
        let mut after = 0i64;
        loop {
            let url = format!(
                "{}/api/v1/inbox?direction=request&state=dispatched&after={after}&limit=500",
                self.adapter()
            );
            let Ok((200, page)) = self.inner.http.get(&url).await else {
                return;
            };
            let items = page["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                return;
            }
            for item in &items {
                let (Some(id), Some(content)) = (item["id"].as_i64(), item["content"].as_str())
                else {
                    continue;
                };
                let received = received_at(item).unwrap_or_else(|| self.inner.clock.now());
                let answer = self.inner.provider.answer(content);
                match answer {
                    DemoAnswer::Late {
                        delay_working_days,
                        then,
                    } => self.schedule(
                        id,
                        self.at_working_days(received, delay_working_days, 10),
                        answer_body(&then),
                    ),
                    DemoAnswer::Clarify { .. } => self.schedule(
                        id,
                        self.at_working_days(received, 2, 11),
                        after_clarification(),
                    ),
                    other => self.schedule(id, received, answer_body(&other)),
                }
            }
            after = page["next_after"].as_i64().unwrap_or(after);
        }
    }
}

fn received_at(item: &Value) -> Option<SystemTime> {
    let t = item["registration"]["received_at"]
        .as_str()
        .or_else(|| item["registered_at"].as_str())?;
    mezhved_client::datetime_parse(t)
}

fn at_text(t: SystemTime) -> String {
    mezhved_core::clock::xs_datetime(t)
}

async fn callback(State(agency): State<AgencyServer>, Json(item): Json<Value>) -> Response {
    let (Some(id), Some(content)) = (item["id"].as_i64(), item["content"].as_str()) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": "a request without id or content" })),
        )
            .into_response();
    };
    let received = received_at(&item).unwrap_or_else(|| agency.inner.clock.now());
    let (status, body) = agency.handle(id, content, received);
    (status, Json(body)).into_response()
}

/// The request card of a scenario request, as the adapter's submit API takes it.
pub fn card_json(r: &DemoRequest, today: &str) -> Value {
    json!({
        "sender_agency": r.sender_agency,
        "recipient_agency": r.recipient_agency,
        "service_name": r.service.name,
        "service_registry_number": r.service.registry_number,
        "legal_basis": r.legal_basis,
        "search_details": r.search_details,
        "reply_contact": r.reply_contact,
        "sent_on": today,
        "official_name": r.official.full_name,
        "official_position": r.official.position,
        "official_phone": r.official.phone,
        "official_email": r.official.email,
        "consent": r.consent.as_ref().map(|_| true),
        "sender_registration": [r.sender_registration, today],
        "restricted": r.access_restricted,
    })
}

/// The social-protection office's system: submits the stream, reads the answers.
#[derive(Debug, Clone)]
pub struct ConsumerDriver {
    scenario: Arc<Scenario>,
    seed: u64,
    adapter: String,
    clock: Arc<ScaledClock>,
    http: Http,
}

impl ConsumerDriver {
    pub fn new(
        scenario: Scenario,
        seed: u64,
        adapter: String,
        clock: Arc<ScaledClock>,
        http: Http,
    ) -> ConsumerDriver {
        ConsumerDriver {
            scenario: Arc::new(scenario),
            seed,
            adapter,
            clock,
            http,
        }
    }

    /// Submits requests from `from` at `rate` per second (up to `limit` in all); the
    /// index of the next one goes to `progress` once the adapter has accepted each.
    pub async fn run(
        self,
        from: u64,
        rate: f64,
        limit: Option<u64>,
        progress: tokio::sync::watch::Sender<u64>,
        stop: impl Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut i = from;
        let url = format!("{}/api/v1/requests", self.adapter);
        loop {
            if limit.is_some_and(|l| i >= l) {
                stop.await;
                return;
            }
            tokio::select! {
                () = &mut stop => return,
                _ = tick.tick() => {}
            }
            let request = self.scenario.request(i);
            let today = crate::demo::clock_text(self.clock.now())[..10].to_string();
            let body = json!({
                "client_ref": format!("demo-{}-{i}", self.seed),
                "content": request.content_xml,
                "card": card_json(&request, &today),
            });
            // An adapter that cannot take it now (it is starting, or its disk is full)
            // gets the same request again: the client_ref makes that safe.
            let mut pause = Duration::from_millis(100);
            loop {
                let sent = tokio::select! {
                    () = &mut stop => return,
                    r = self.http.post(&url, &body) => r,
                };
                match sent {
                    Ok((s, _)) if s == 200 || s == 202 => break,
                    Ok((s, v)) if (400..500).contains(&s) => {
                        tracing::error!(status = s, problem = %v, index = i, "the adapter refused a demo request; skipping it");
                        break;
                    }
                    Ok((s, v)) => {
                        tracing::warn!(status = s, answer = %v, "submit failed; retrying")
                    }
                    Err(e) => tracing::warn!(error = %e, "submit failed; retrying"),
                }
                tokio::select! {
                    () = &mut stop => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            i += 1;
            let _ = progress.send(i);
        }
    }

    /// Reads the answers arriving at the office's adapter and marks them taken.
    pub async fn read_answers(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let url = format!(
                "{}/api/v1/inbox?direction=response&state=new&limit=200",
                self.adapter
            );
            let items = match self.http.get(&url).await {
                Ok((200, page)) => page["items"].as_array().cloned().unwrap_or_default(),
                _ => Vec::new(),
            };
            for item in &items {
                if let Some(id) = item["id"].as_i64() {
                    let _ = self
                        .http
                        .post(
                            &format!("{}/api/v1/inbox/{id}/done", self.adapter),
                            &json!({}),
                        )
                        .await;
                }
            }
            if items.is_empty() {
                tokio::select! {
                    () = &mut stop => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}
