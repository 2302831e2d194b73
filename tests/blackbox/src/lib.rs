//! The harness of the black-box tests: a real gateway (the same [`Gateway`] `mezhved
//! serve` runs) on 127.0.0.1:0 with a fresh data directory, the sample registry and the
//! test PKI, a clock the test moves, and signed SMEV clients for the sample systems.

#![forbid(unsafe_code)]

use mezhved_client::{Client, Outgoing, Reply, Request, RequestCard};
use mezhved_core::clock::{Clock, ManualClock};
use mezhved_dsig::crypto::SigningKey;
use mezhved_http::config::Config;
use mezhved_http::Gateway;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

pub const BIRTH_NS: &str = "urn://mezhved/demo/zags/birth-record/1.0";
pub const BIRTH_ROOT: &str = "BirthRecordRequest";
pub const CONSUMER_AGENCY: &str = "Social Protection Office of the Sample Region";
pub const PROVIDER_AGENCY: &str = "Civil Registry Office of the Sample Region";

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A test key: `keys/test-pki/<alg>/<name>.{key,cert}.pem`.
pub fn key(alg: &str, name: &str) -> Arc<SigningKey> {
    let _ = mezhved_dsig::gost::ensure_loaded();
    let dir = repo().join("keys/test-pki").join(alg);
    Arc::new(
        SigningKey::from_pem_files(
            &dir.join(format!("{name}.key.pem")),
            &dir.join(format!("{name}.cert.pem")),
        )
        .unwrap_or_else(|e| panic!("test key {alg}/{name}: {e}")),
    )
}

/// The wall clock at the start of a test (tests then move their own clock).
#[allow(clippy::disallowed_methods)]
pub fn wall_clock_now() -> SystemTime {
    SystemTime::now()
}

/// A configuration for a test gateway in `data_dir`.
pub fn test_config(data_dir: &Path) -> Config {
    let keys = repo().join("keys/test-pki");
    let mut c = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    c.gateway_key.key = keys.join("ecdsa/gateway.key.pem");
    c.gateway_key.certificate = keys.join("ecdsa/gateway.cert.pem");
    c.trust.dir = keys.join("trust");
    c.registry.file = repo().join("deploy/sample/registry.toml");
    c.server.listen = "127.0.0.1:0".into();
    c.server.shutdown_grace_seconds = 5;
    // Tests evaluate alerts themselves (`alerts::evaluate_once`) at their clock's time; the
    // background loop would add journal events at a moment no test controls.
    c.monitoring.alert_interval_seconds = 86_400;
    // Tests read the monitoring figures right after acting, at a clock that may not move.
    c.monitoring.snapshot_ttl_ms = 0;
    // sha256("test-operator-token")
    c.operator.token_sha256 =
        "21a41ec35ffe053418f5ebab652c9b4cb07a643a9100640d18b635e0df503928".into();
    // sha256("test-auditor-token")
    c.auditors = vec![mezhved_http::config::AuditorConfig {
        name: "auditor-kuznetsova".into(),
        token_sha256: "57d6cc542388f851e86b07b700b82c139cb61d88b7a0e76d34ac5d7278785931".into(),
    }];
    // The dashboard over plain HTTP: "test-operator-password", "test-auditor-password".
    c.dashboard.insecure_cookies = true;
    c.dashboard.users = vec![
        mezhved_http::config::DashboardUserConfig {
            name: "operator-ivanov".into(),
            role: "operator".into(),
            password_hash: "pbkdf2-sha256$210000$AjuRV0AlW2yL+cZt7cDa1Q==$6wd40qr4SNZp4bOJzwW9fD38dAVZVYsSPOmfhnHK8uI=".into(),
        },
        mezhved_http::config::DashboardUserConfig {
            name: "auditor-kuznetsova".into(),
            role: "auditor".into(),
            password_hash: "pbkdf2-sha256$210000$SOM5WGsrM+15CCx/t5rohQ==$h0RUUc1AUO/fM0N761sNJMpbE7Nt0F4qUXGpy4n3x6s=".into(),
        },
    ];
    c
}

/// A running test gateway.
#[derive(Debug)]
pub struct TestGateway {
    pub url: String,
    pub endpoint: String,
    pub clock: Arc<ManualClock>,
    pub data_dir: PathBuf,
    /// The running gateway's shared state (store, exchange, journal) for tests that act as
    /// a second node (e.g. a second deadline timer).
    pub state: Arc<mezhved_http::server::AppState>,
    _dir: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        Self::start_with(|_| {}).await
    }

    /// Starts with a configuration adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestGateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = test_config(dir.path());
        adjust(&mut config);
        let data_dir = config.data_dir.clone();
        let mut g = Self::start_in(config).await;
        g._dir = Some(dir);
        g.data_dir = data_dir;
        g
    }

    /// Starts on an explicit configuration (its data directory is kept).
    pub async fn start_in(config: Config) -> TestGateway {
        let clock = Arc::new(ManualClock::new(wall_clock_now()));
        let data_dir = config.data_dir.clone();
        let gateway = Gateway::open(config, clock.clone() as Arc<dyn Clock>)
            .await
            .unwrap_or_else(|e| panic!("gateway does not start: {e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = gateway.state.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            gateway
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
                .expect("gateway serves");
        });
        let url = format!("http://{addr}");
        TestGateway {
            endpoint: format!("{url}/smev/v1.1"),
            url,
            clock,
            data_dir,
            state,
            _dir: None,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// A deadline timer over this gateway's store, as a second node would run it; its
    /// `run_once` fires what is due at the test's clock.
    pub fn deadline_timer(&self, owner: &str) -> mezhved_core::deadlines::DeadlineRunner {
        mezhved_core::deadlines::DeadlineRunner::new(
            self.state.store.clone(),
            self.state.exchange.clone(),
            self.clock.clone(),
            owner.into(),
            self.data_dir.clone(),
        )
    }

    /// A signed client of one system.
    pub fn system(&self, alg: &str, name: &str) -> TestSystem {
        TestSystem {
            client: Client::new(&self.endpoint).expect("client"),
            key: key(alg, name),
        }
    }

    pub fn consumer(&self) -> TestSystem {
        self.system("ecdsa", "consumer-is")
    }
    pub fn provider(&self) -> TestSystem {
        self.system("ecdsa", "provider-is")
    }

    /// A valid birth-record request from the consumer, dated by the test clock.
    pub fn birth_request(&self, marker: &str) -> Request {
        let now = self.now();
        let today = chrono::DateTime::<chrono::Utc>::from(now)
            .date_naive()
            .to_string();
        Request {
            message_id: mezhved_client::message_id(now),
            content: format!(
                "<b:{BIRTH_ROOT} xmlns:b=\"{BIRTH_NS}\"><b:Surname>Ivanova</b:Surname><b:BirthDate>2019-05-14</b:BirthDate><b:Note>{marker}</b:Note></b:{BIRTH_ROOT}>"
            ),
            card: Some(RequestCard::complete(CONSUMER_AGENCY, PROVIDER_AGENCY, &today, "USZN-2026/0001").to_xml()),
            attachments: Vec::new(),
            reference_message_id: None,
            eol: None,
            test: false,
        }
    }

    /// Stops the gateway gracefully and waits until it has closed its store.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("gateway task");
        }
        self._dir.take()
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A system's signed client.
#[derive(Debug)]
pub struct TestSystem {
    pub client: Client,
    pub key: Arc<SigningKey>,
}

impl TestSystem {
    /// Signs and sends.
    pub async fn call(&self, call: Outgoing) -> Reply {
        let signed = call.sign(&*self.key).expect("sign");
        self.client.call(&signed).await.expect("HTTP call")
    }
    /// Sends as is (unsigned or pre-signed).
    pub async fn send_raw(&self, call: &Outgoing) -> Reply {
        self.client.call(call).await.expect("HTTP call")
    }
}

/// Asserts a reply is a fault with this detail element; returns the reply.
#[track_caller]
pub fn expect_fault(reply: &Reply, name: &str) {
    assert_eq!(
        reply.status,
        500,
        "expected a fault {name}, got HTTP {}: {}",
        reply.status,
        reply.text()
    );
    assert_eq!(reply.fault().as_deref(), Some(name), "{}", reply.text());
}

/// Asserts success; returns the reply.
#[track_caller]
pub fn expect_ok(reply: &Reply) {
    assert_eq!(reply.status, 200, "expected success: {}", reply.text());
    assert!(reply.fault().is_none(), "{}", reply.text());
}

/// Asserts a reply is a `soap:Client` fault with this detail element.
#[track_caller]
pub fn expect_client_fault(reply: &Reply, name: &str) {
    expect_fault(reply, name);
    assert_eq!(
        reply.fault_code().as_deref(),
        Some("soap:Client"),
        "{}",
        reply.text()
    );
}

/// The code of a `SignatureVerificationFault`: the text of the fault's own
/// `SignatureVerificationFault` child (the detail element has the same name).
pub fn signature_fault_code(reply: &Reply) -> Option<String> {
    let doc = reply.document().ok()?;
    let outer = mezhved_client::find(
        &doc,
        mezhved_client::FAULTS_NS,
        "SignatureVerificationFault",
    )?;
    let inner = doc
        .child_elements(outer)
        .find(|&c| doc.is_element(c, mezhved_client::FAULTS_NS, "SignatureVerificationFault"))?;
    Some(doc.text(inner).trim().to_string())
}

/// Asserts a `soap:Client` `SignatureVerificationFault` with this code.
#[track_caller]
pub fn expect_signature_fault(reply: &Reply, code: &str) {
    expect_client_fault(reply, "SignatureVerificationFault");
    assert_eq!(
        signature_fault_code(reply).as_deref(),
        Some(code),
        "{}",
        reply.text()
    );
}

/// The `ValidationError`s of an `InvalidContent` fault: (`errorPosition`, text).
pub fn validation_errors(reply: &Reply) -> Vec<(Option<String>, String)> {
    let Ok(doc) = reply.document() else {
        return Vec::new();
    };
    doc.descendants(doc.root())
        .filter(|&n| doc.is_element(n, mezhved_client::FAULTS_NS, "ValidationError"))
        .map(|n| {
            (
                doc.attribute(n, "", "errorPosition").map(str::to_string),
                doc.text(n).trim().to_string(),
            )
        })
        .collect()
}

/// What the gateway has written: row counts, card statuses and attachment files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub messages: i64,
    pub cards: i64,
    pub attachments: i64,
    /// (global ID hex, status, receiver registration) of every card, in key order.
    pub card_states: Vec<(String, String, Option<String>)>,
    /// (global ID hex, acknowledged, delivery count) of every message, in key order.
    pub message_states: Vec<(String, bool, i64)>,
    /// File names under `<data_dir>/attachments/`, sorted.
    pub files: Vec<String>,
    /// Journal events other than `message.rejected` (the one record a refusal leaves).
    pub journal_events_besides_rejections: i64,
}

impl TestGateway {
    /// The database file.
    pub fn database(&self) -> PathBuf {
        self.data_dir.join("mezhved.db")
    }

    /// The single number a query over the database returns (e.g. a `count(*)`), read on a
    /// connection of the test's own while the gateway runs.
    #[track_caller]
    pub fn count(&self, sql: &str) -> i64 {
        let db = rusqlite::Connection::open(self.database()).expect("open the database");
        db.query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Reads what is written, through a read-only connection of its own.
    pub fn written(&self) -> Written {
        let conn = rusqlite::Connection::open_with_flags(
            self.database(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .expect("open the database read-only");
        let count = |table: &str| -> i64 {
            conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap_or_else(|e| panic!("count {table}: {e}"))
        };
        let mut st = conn
            .prepare(
                "SELECT hex(global_id), status, receiver_registration_number FROM cards ORDER BY global_id",
            )
            .expect("prepare cards");
        let card_states = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query cards")
            .collect::<Result<Vec<_>, _>>()
            .expect("read cards");
        let mut st = conn
            .prepare(
                "SELECT hex(global_id), acked_at IS NOT NULL, delivery_count FROM messages ORDER BY global_id",
            )
            .expect("prepare messages");
        let message_states = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query messages")
            .collect::<Result<Vec<_>, _>>()
            .expect("read messages");
        let mut files: Vec<String> = match std::fs::read_dir(self.data_dir.join("attachments")) {
            Ok(dir) => dir
                .map(|e| {
                    e.expect("directory entry")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("read the attachment directory: {e}"),
        };
        files.sort();
        Written {
            messages: count("messages"),
            cards: count("cards"),
            attachments: count("attachments"),
            card_states,
            message_states,
            files,
            journal_events_besides_rejections: count(
                "journal_events WHERE type <> 'message.rejected'",
            ),
        }
    }

    /// Asserts nothing was written since `before`.
    #[track_caller]
    pub fn assert_nothing_written_since(&self, before: &Written) {
        let now = self.written();
        assert_eq!(
            &now, before,
            "a refused call must leave nothing written (but its rejection's journal event)"
        );
    }
}

/// The harness's operator token (its SHA-256 is in [`test_config`]).
pub const OPERATOR_TOKEN: &str = "test-operator-token";
pub const AUDITOR_TOKEN: &str = "test-auditor-token";

/// An answer of the REST API.
#[derive(Debug)]
pub struct ApiReply {
    pub status: u16,
    pub content_type: String,
    pub headers: hyper::HeaderMap,
    pub body: bytes::Bytes,
}

impl ApiReply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): HTTP {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts an RFC 9457 problem with this status; returns its `detail`.
    #[track_caller]
    pub fn expect_problem(&self, status: u16) -> String {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.content_type, "application/problem+json");
        let p = self.json();
        for field in ["type", "title", "detail"] {
            assert!(
                p[field].as_str().is_some_and(|s| !s.is_empty()),
                "problem field {field} missing: {p}"
            );
        }
        assert_eq!(p["status"].as_u64(), Some(u64::from(status)), "{p}");
        p["detail"].as_str().unwrap_or_default().to_string()
    }
}

/// A small HTTP client for the REST API.
#[derive(Debug, Clone)]
pub struct Api {
    http: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    base: String,
}

impl Api {
    pub fn new(base: &str) -> Api {
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(hyper_util::client::legacy::connect::HttpConnector::new());
        Api {
            http,
            base: base.to_string(),
        }
    }

    /// Sends `method path` with an optional bearer token and JSON body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> ApiReply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        self.send_with_headers(method, path, &headers, body).await
    }

    /// Sends `method path` with one header of the caller's (e.g. another
    /// `Authorization` scheme) and no body.
    pub async fn http_with_header(
        &self,
        method: &str,
        path: &str,
        name: &str,
        value: &str,
    ) -> ApiReply {
        self.send_with_headers(method, path, &[(name, value)], None)
            .await
    }

    /// Sends `method path` with these headers and an optional JSON body.
    pub async fn send_with_headers(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> ApiReply {
        use http_body_util::BodyExt;
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let bytes = match body {
            Some(b) => {
                request = request.header(hyper::header::CONTENT_TYPE, "application/json");
                bytes::Bytes::from(serde_json::to_vec(b).expect("JSON"))
            }
            None => bytes::Bytes::new(),
        };
        let request = request
            .body(http_body_util::Full::new(bytes))
            .expect("request");
        let response = self.http.request(request).await.expect("HTTP request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("HTTP body")
            .to_bytes();
        ApiReply {
            status,
            content_type,
            headers,
            body,
        }
    }

    /// As the operator.
    pub async fn operator(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> ApiReply {
        self.send(method, path, Some(OPERATOR_TOKEN), body).await
    }

    /// As the auditor (`auditor-kuznetsova`).
    pub async fn auditor(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> ApiReply {
        self.send(method, path, Some(AUDITOR_TOKEN), body).await
    }
}

impl TestGateway {
    /// A REST client of this gateway.
    pub fn api(&self) -> Api {
        Api::new(&self.url)
    }

    /// The journal's first 1000 events as an auditor reads them: (type, actor, leaf).
    pub async fn journal_events(&self) -> Vec<(String, String, String)> {
        let r = self
            .api()
            .auditor("GET", "/api/v1/journal/events?from=0&limit=1000", None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| {
                let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                (text("type"), text("actor"), text("leaf"))
            })
            .collect()
    }

    /// Registers (`Some`) or removes (`None`) a system's push endpoint through the
    /// registry API, as an operator would (docs/push.md); returns the API's answer.
    /// Plain `http://` URLs need `config.push.allow_plain_http` (see [`allow_plain_push`]).
    pub async fn set_push_url(&self, system: &str, url: Option<&str>) -> ApiReply {
        let api = self.api();
        let registry = api.operator("GET", "/api/v1/registry", None).await.json();
        let mut entry = registry["systems"]
            .as_array()
            .and_then(|systems| systems.iter().find(|s| s["mnemonic"] == system))
            .unwrap_or_else(|| panic!("system {system} is not registered: {registry}"))
            .clone();
        match url {
            Some(u) => entry["push_url"] = u.into(),
            None => {
                if let Some(o) = entry.as_object_mut() {
                    o.remove("push_url");
                }
            }
        }
        api.operator(
            "PUT",
            &format!("/api/v1/registry/systems/{system}"),
            Some(&entry),
        )
        .await
    }

    /// Wakes the gateway's push loop, e.g. after moving the clock past a retry time (the
    /// loop sleeps in real time; the clock decides what is due).
    pub fn wake_push(&self) {
        self.state.exchange.push_wake().notify_one();
    }
}

/// A configuration adjustment for push tests: plain `http://` endpoints on 127.0.0.1,
/// waits of 1 s doubling up to 60 s (of the test's clock), 5 s per POST.
pub fn allow_plain_push(c: &mut Config) {
    c.push.allow_plain_http = true;
    c.push.retry_base_seconds = 1;
    c.push.retry_max_seconds = 60;
    c.push.request_timeout_seconds = 5;
}

/// The exact `multipart/related` (MTOM) body and its content type the client would send
/// for `call` (for tests that then break it).
pub async fn mtom_bytes(call: &Outgoing) -> (String, Vec<u8>) {
    let parts = call
        .parts
        .iter()
        .map(|(cid, mime, data)| mezhved_mime::OutgoingPart {
            content_id: cid.clone(),
            content_type: mime.clone(),
            source: mezhved_mime::PartSource::Bytes(data.clone()),
        })
        .collect();
    let body = mezhved_mime::mtom_body(
        bytes::Bytes::from(call.envelope.clone()),
        "root@client",
        parts,
    )
    .expect("MTOM body");
    let chunks: Vec<bytes::Bytes> = futures_util::TryStreamExt::try_collect(body.stream)
        .await
        .expect("MTOM stream");
    (body.content_type, chunks.concat())
}

/// A self-signed certificate for 127.0.0.1 and its key: a TLS server's (`server`), or a
/// TLS client's.
pub fn self_signed_tls(
    server: bool,
) -> (
    openssl::x509::X509,
    openssl::pkey::PKey<openssl::pkey::Private>,
) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::extension::{
        BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    };
    use openssl::x509::{X509NameBuilder, X509};
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("curve");
    let key = PKey::from_ec_key(EcKey::generate(&group).expect("key")).expect("pkey");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "mezhved test TLS peer")
        .expect("CN");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("v3");
    let mut serial = BigNum::new().expect("bn");
    serial
        .rand(64, openssl::bn::MsbOption::MAYBE_ZERO, false)
        .expect("serial");
    b.set_serial_number(&serial.to_asn1_integer().expect("serial"))
        .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("time"))
        .expect("not before");
    b.set_not_after(&Asn1Time::days_from_now(2).expect("time"))
        .expect("not after");
    b.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
        .expect("bc");
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_cert_sign()
            .build()
            .expect("ku"),
    )
    .expect("ku");
    let mut eku = ExtendedKeyUsage::new();
    if server {
        eku.server_auth();
    } else {
        eku.client_auth();
    }
    b.append_extension(eku.build().expect("eku")).expect("eku");
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .build(&b.x509v3_context(None, None))
        .expect("san");
    b.append_extension(san).expect("san");
    b.sign(&key, MessageDigest::sha256()).expect("sign");
    (b.build(), key)
}

/// A TLS server's acceptor for `cert`.
pub fn tls_acceptor(
    cert: &openssl::x509::X509,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
) -> openssl::ssl::SslAcceptor {
    let mut a =
        openssl::ssl::SslAcceptor::mozilla_intermediate_v5(openssl::ssl::SslMethod::tls_server())
            .expect("acceptor");
    a.set_private_key(key).expect("key");
    a.set_certificate(cert).expect("certificate");
    a.build()
}

/// A TLS front for a plain-HTTP server at `target`, as an operator's proxy would be:
/// accepts TLS with `acceptor` on 127.0.0.1 and relays the bytes. Returns its address.
pub async fn tls_front(
    target: std::net::SocketAddr,
    acceptor: openssl::ssl::SslAcceptor,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = Arc::new(acceptor);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(ssl) = openssl::ssl::Ssl::new(acceptor.context()) else {
                    return;
                };
                let Ok(mut tls) = tokio_openssl::SslStream::new(ssl, tcp) else {
                    return;
                };
                if std::pin::Pin::new(&mut tls).accept().await.is_err() {
                    return;
                }
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    addr
}
