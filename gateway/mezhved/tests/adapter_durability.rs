//! Crash durability of the real `mezhved adapter` process against a real `mezhved serve`.
//!
//! One gateway runs throughout. Two adapters run as processes of their own — the
//! consumer's (USZN_IS) and the provider's (ZAGS_IS, callback mode, to a small HTTP
//! server in this test playing the registry office's system) — each with its own data
//! directory that lives through every round. In each round a submitter posts requests to
//! the consumer adapter's API as fast as it answers, each with its own `client_ref`; after
//! a seeded random delay the consumer adapter, the provider adapter or both are killed
//! with SIGKILL (fault injection, not a timing assertion), mid-stream: mid-submit,
//! mid-send, mid-poll, mid-callback. A submit that got no answer is repeated, with the same
//! `client_ref` and body, once the adapter is back — as an agency's system would.
//!
//! At the end every `client_ref` has exactly one request row, answered; the gateway holds
//! exactly one request per `client_ref` (under the MessageID the adapter fixed) and
//! exactly one answer to each; every delivered message was acknowledged; each adapter's
//! inbox holds each message once.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const ROUNDS: u64 = 10;
const BIRTH_NS: &str = "urn://mezhved/demo/zags/birth-record/1.0";
const BIRTH_ROOT: &str = "BirthRecordRequest";
const CONSUMER_AGENCY: &str = "Social Protection Office of the Sample Region";
const PROVIDER_AGENCY: &str = "Civil Registry Office of the Sample Region";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[allow(clippy::disallowed_methods)]
fn now() -> SystemTime {
    SystemTime::now()
}

#[allow(clippy::disallowed_methods)]
fn instant() -> Instant {
    Instant::now()
}

/// splitmix64: the kills are seeded by the round, so a failing run replays.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x6164_6170_7465_7221)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

// ---------------------------------------------------------------------------------------
// Processes.

struct Process {
    child: Option<Child>,
    /// The address it announced.
    url: String,
    _stdout: BufReader<ChildStdout>,
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(40);
    format!(
        "--- {} (tail) ---\n{}",
        log.display(),
        lines[from..].join("\n")
    )
}

impl Process {
    /// Starts `mezhved <args>` and reads the address from its first line, which starts
    /// with `announce`.
    fn start(args: &[&str], env: &[(&str, &str)], announce: &str, log: &Path) -> Process {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mezhved"));
        cmd.args(args);
        for (k, _) in std::env::vars_os() {
            if k.to_str().is_some_and(|k| k.starts_with("MEZHVED_")) {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        let mut child = cmd.spawn().expect("mezhved starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let read = stdout.read_line(&mut line).expect("read stdout");
        let url = line
            .trim()
            .strip_prefix(announce)
            .and_then(|rest| rest.split(' ').next())
            .map(str::to_string);
        let Some(url) = url.filter(|_| read > 0) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "mezhved {args:?} did not announce itself (stdout {line:?})\n{}",
                log_tail(log)
            );
        };
        Process {
            child: Some(child),
            url,
            _stdout: stdout,
        }
    }

    /// SIGKILL; panics if it had died by itself.
    fn kill(&mut self, log: &Path) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert_eq!(
            status.signal(),
            Some(9),
            "the process was not running when killed: {status}\n{}",
            log_tail(log)
        );
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(&mut self, log: &Path) {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        let deadline = instant() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                assert!(
                    status.success(),
                    "graceful stop ended with {status}\n{}",
                    log_tail(log)
                );
                return;
            }
            if instant() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no stop on SIGTERM\n{}", log_tail(log));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_gateway(data_dir: &Path, log: &Path) -> Process {
    let config = repo().join("deploy/sample/mezhved.toml");
    Process::start(
        &["serve", "--config", config.to_str().expect("path")],
        &[
            ("MEZHVED_DATA_DIR", data_dir.to_str().expect("path")),
            ("MEZHVED_SERVER__LISTEN", "127.0.0.1:0"),
            ("MEZHVED_LOG__LEVEL", "warn"),
            // A lease cut short by a killed adapter comes back after a second.
            ("MEZHVED_EXCHANGE__VISIBILITY_TIMEOUT_SECONDS", "1"),
        ],
        "mezhved listening on ",
        log,
    )
}

/// An adapter's configuration file.
fn adapter_toml(
    dir: &Path,
    endpoint: &str,
    system: &str,
    prefix: &str,
    key: &str,
    callback: Option<&str>,
) -> PathBuf {
    let keys = repo().join("keys/test-pki");
    let keys = keys.to_str().expect("path");
    let provider = match callback {
        Some(url) => format!(
            "[provider]\nenabled = true\nmode = \"callback\"\ncallback_url = \"{url}\"\ncallback_timeout_seconds = 5\nkinds = [{{ namespace = \"{BIRTH_NS}\", root_element = \"{BIRTH_ROOT}\" }}]\n"
        ),
        None => String::new(),
    };
    let text = format!(
        r#"data_dir = "{data}"
system = "{system}"
registration_prefix = "{prefix}"
shutdown_grace_seconds = 5

[gateway]
url = "{endpoint}"
trust_dir = "{keys}/trust"
certificate = "{keys}/ecdsa/gateway.cert.pem"
timeout_seconds = 5

[key]
key = "{keys}/ecdsa/{key}.key.pem"
certificate = "{keys}/ecdsa/{key}.cert.pem"

[api]
listen = "127.0.0.1:0"

[consumer]
poll_responses = {consumer}
poll_statuses = true

[retry]
base_delay_ms = 20
max_delay_ms = 200

[poll]
idle_min_ms = 10
idle_max_ms = 50

[log]
level = "warn"

{provider}"#,
        data = dir.join("data").display(),
        consumer = callback.is_none(),
    );
    std::fs::create_dir_all(dir).expect("adapter dir");
    let path = dir.join("adapter.toml");
    std::fs::write(&path, text).expect("write the adapter's configuration");
    path
}

fn start_adapter(config: &Path, log: &Path) -> Process {
    Process::start(
        &["adapter", "--config", config.to_str().expect("path")],
        &[],
        "mezhved adapter listening on ",
        log,
    )
}

// ---------------------------------------------------------------------------------------
// HTTP.

type Http = Client<HttpConnector, Full<Bytes>>;

fn http() -> Http {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

async fn call(
    http: &Http,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let request = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = http.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok((status, value))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "timeout".to_string())?
}

/// Every item of a paged list of an adapter.
async fn all(http: &Http, base: &str, path: &str) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut after = 0;
    let mut items = Vec::new();
    loop {
        let (status, page) = call(
            http,
            "GET",
            &format!("{base}{path}{sep}after={after}&limit=200"),
            None,
        )
        .await
        .expect("list");
        assert_eq!(status, 200, "{page}");
        let got = page["items"].as_array().cloned().unwrap_or_default();
        if got.is_empty() {
            return items;
        }
        after = page["next_after"].as_i64().expect("next_after");
        items.extend(got);
    }
}

/// The request body for `client_ref` (the same every time it is submitted).
fn submission(client_ref: &str, today: &str) -> Value {
    let mut card =
        mezhved_client::RequestCard::complete(CONSUMER_AGENCY, PROVIDER_AGENCY, today, "");
    card.sender_registration = None;
    json!({
        "client_ref": client_ref,
        "content": format!(
            "<b:{BIRTH_ROOT} xmlns:b=\"{BIRTH_NS}\"><b:Surname>Ivanova</b:Surname><b:BirthDate>2019-05-14</b:BirthDate><b:Note>{client_ref}</b:Note></b:{BIRTH_ROOT}>"
        ),
        "card": card,
    })
}

fn answer_for(marker: &str) -> String {
    format!(
        "<r:BirthRecordResponse xmlns:r=\"{BIRTH_NS}\"><r:RecordNumber>answer-{marker}</r:RecordNumber></r:BirthRecordResponse>"
    )
}

/// The registry office's system: answers every callback with the record.
struct Agency {
    url: String,
    calls: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Agency {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_agency() -> Agency {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/zags", listener.local_addr().expect("addr"));
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let c = c.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let c = c.clone();
                        async move {
                            c.fetch_add(1, Ordering::SeqCst);
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let payload: Value =
                                serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let content = payload["content"].as_str().unwrap_or("");
                            let start = content.find("Note>").map(|i| i + 5).unwrap_or(0);
                            let end = content[start..]
                                .find('<')
                                .map(|i| start + i)
                                .unwrap_or(start);
                            let answer = json!({ "data": answer_for(&content[start..end]) });
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(answer.to_string())))
                                    .expect("response"),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Agency { url, calls, task }
}

// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Ledger {
    /// client_ref → (row ID, MessageID) from the adapter's answers.
    rows: HashMap<String, (i64, String)>,
    /// Submits that got no answer (the adapter was killed): repeated after the restart.
    unanswered: Vec<String>,
    next: u64,
    resubmitted: u64,
    resubmitted_existing: u64,
    problems: Vec<String>,
}

fn lock(l: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records an adapter's answer to a submit of `client_ref`.
fn record(l: &mut Ledger, client_ref: &str, status: u16, body: &Value) {
    let (Some(id), Some(mid)) = (body["id"].as_i64(), body["message_id"].as_str()) else {
        l.problems
            .push(format!("{client_ref}: submit answered {status} {body}"));
        return;
    };
    if status != 202 && status != 200 {
        l.problems
            .push(format!("{client_ref}: submit answered {status} {body}"));
    }
    match l.rows.get(client_ref) {
        Some((first, first_mid)) if *first != id || first_mid != mid => l.problems.push(format!(
            "{client_ref} is row {first} ({first_mid}) and also row {id} ({mid})"
        )),
        Some(_) => {}
        None => {
            l.rows.insert(client_ref.to_string(), (id, mid.to_string()));
        }
    }
}

async fn resubmit(http: &Http, base: &str, ledger: &Mutex<Ledger>, today: &str) {
    let refs = std::mem::take(&mut lock(ledger).unanswered);
    for r in refs {
        let (status, body) = call(
            http,
            "POST",
            &format!("{base}/api/v1/requests"),
            Some(&submission(&r, today)),
        )
        .await
        .unwrap_or_else(|e| panic!("resubmit {r} to a running adapter: {e}"));
        let mut l = lock(ledger);
        l.resubmitted += 1;
        if status == 200 {
            l.resubmitted_existing += 1;
        }
        record(&mut l, &r, status, &body);
    }
}

async fn submitter(
    http: Http,
    base: String,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    today: String,
) {
    while !stop.load(Ordering::SeqCst) {
        let client_ref = {
            let mut l = lock(&ledger);
            l.next += 1;
            format!("dur-{}", l.next)
        };
        match call(
            &http,
            "POST",
            &format!("{base}/api/v1/requests"),
            Some(&submission(&client_ref, &today)),
        )
        .await
        {
            Ok((status, body)) => {
                record(&mut lock(&ledger), &client_ref, status, &body);
                // A steady stream rather than a flood: the debug build answers ~25 a second.
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            Err(_) => {
                // The adapter died under this submit: it may or may not have taken it.
                lock(&ledger).unanswered.push(client_ref);
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_requests_survive_sigkill_of_the_adapters_and_are_answered_exactly_once() {
    let started = instant();
    let tmp = tempfile::tempdir().expect("tempdir");
    let gw_log = tmp.path().join("gateway.log");
    let consumer_log = tmp.path().join("consumer.log");
    let provider_log = tmp.path().join("provider.log");
    let gw_data = tmp.path().join("gateway");
    let gateway = start_gateway(&gw_data, &gw_log);
    let endpoint = gateway.url.clone();
    let agency = start_agency().await;
    let consumer_config = adapter_toml(
        &tmp.path().join("uszn"),
        &endpoint,
        "USZN_IS",
        "USZN",
        "consumer-is",
        None,
    );
    let provider_config = adapter_toml(
        &tmp.path().join("zags"),
        &endpoint,
        "ZAGS_IS",
        "ZAGS",
        "provider-is",
        Some(&agency.url),
    );
    let today = chrono::DateTime::<chrono::Utc>::from(now())
        .date_naive()
        .to_string();
    let http = http();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut consumer: Option<Process> = None;
    let mut provider: Option<Process> = None;
    let mut kills = (0u32, 0u32);

    for round in 0..ROUNDS {
        let mut rng = Rng::new(round);
        if consumer.is_none() {
            consumer = Some(start_adapter(&consumer_config, &consumer_log));
        }
        if provider.is_none() {
            provider = Some(start_adapter(&provider_config, &provider_log));
        }
        let base = consumer.as_ref().map(|c| c.url.clone()).expect("consumer");
        resubmit(&http, &base, &ledger, &today).await;
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                tokio::spawn(submitter(
                    http.clone(),
                    base.clone(),
                    ledger.clone(),
                    stop.clone(),
                    today.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(60 + rng.below(400))).await;
        // Kill the consumer's adapter, the provider's, or both.
        let victim = round % 3;
        if victim != 1 {
            if let Some(mut c) = consumer.take() {
                c.kill(&consumer_log);
                kills.0 += 1;
            }
        }
        if victim != 0 {
            if let Some(mut p) = provider.take() {
                p.kill(&provider_log);
                kills.1 += 1;
            }
        }
        stop.store(true, Ordering::SeqCst);
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(15), t)
                .await
                .expect("the submitter stops")
                .expect("submitter");
        }
    }

    // Both back; the unanswered submits repeated; everything answered.
    let mut consumer = consumer.unwrap_or_else(|| start_adapter(&consumer_config, &consumer_log));
    let mut provider = provider.unwrap_or_else(|| start_adapter(&provider_config, &provider_log));
    resubmit(&http, &consumer.url, &ledger, &today).await;
    let total = lock(&ledger).rows.len();
    let deadline = instant() + Duration::from_secs(25);
    loop {
        let answered = all(&http, &consumer.url, "/api/v1/requests?status=answered")
            .await
            .len();
        if answered == total {
            break;
        }
        assert!(
            instant() < deadline,
            "only {answered} of {total} requests answered\n{}\n{}",
            log_tail(&consumer_log),
            log_tail(&provider_log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (taken, resubmitted, resubmitted_existing) = {
        let l = lock(&ledger);
        assert!(l.problems.is_empty(), "{:#?}", l.problems);
        (l.rows.clone(), l.resubmitted, l.resubmitted_existing)
    };
    let mut problems = Vec::new();
    // The consumer's adapter: one row per client_ref, each answered once.
    let rows = all(&http, &consumer.url, "/api/v1/requests").await;
    let mut by_ref: HashMap<String, &Value> = HashMap::new();
    for row in &rows {
        let r = row["client_ref"].as_str().unwrap_or("").to_string();
        if by_ref.insert(r.clone(), row).is_some() {
            problems.push(format!("{r} has two rows"));
        }
        if row["responses"].as_array().map(Vec::len) != Some(1) {
            problems.push(format!("{r}: responses {}", row["responses"]));
        }
    }
    for (r, (id, mid)) in &taken {
        match by_ref.get(r) {
            None => problems.push(format!("{r} was accepted (row {id}) but is gone")),
            Some(row) => {
                if row["id"] != *id || row["message_id"] != mid.as_str() {
                    problems.push(format!(
                        "{r}: the adapter answered row {id} {mid}, now {row}"
                    ));
                }
            }
        }
    }
    assert_eq!(rows.len(), total, "rows for client_refs nobody submitted");

    // The gateway: exactly one request per client_ref under its MessageID, one answer each,
    // everything acknowledged.
    let db =
        Connection::open_with_flags(gw_data.join("mezhved.db"), OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the gateway's database");
    let mut st = db
        .prepare(
            "SELECT sender_message_id FROM messages WHERE queue = 0 AND sender_system = 'USZN_IS'",
        )
        .expect("prepare");
    let at_gateway: Vec<String> = st
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let expected: HashSet<&str> = taken.values().map(|(_, m)| m.as_str()).collect();
    let found: HashSet<&str> = at_gateway.iter().map(String::as_str).collect();
    if at_gateway.len() != total || found != expected {
        problems.push(format!(
            "the gateway holds {} requests ({} distinct) for {total} client_refs; missing {:?}, unknown {:?}",
            at_gateway.len(),
            found.len(),
            expected.difference(&found).collect::<Vec<_>>(),
            found.difference(&expected).collect::<Vec<_>>()
        ));
    }
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).expect(sql) };
    let answers =
        count("SELECT count(*) FROM messages WHERE queue = 1 AND sender_system = 'ZAGS_IS'");
    if answers != total as i64 {
        problems.push(format!(
            "{answers} answers at the gateway for {total} requests"
        ));
    }
    let pending = count("SELECT count(*) FROM messages WHERE queue IN (0, 1) AND acked_at IS NULL");
    if pending != 0 {
        problems.push(format!(
            "{pending} messages not acknowledged at the gateway"
        ));
    }
    drop(st);
    drop(db);

    // The adapters' inboxes: each message once.
    let responses = all(&http, &consumer.url, "/api/v1/inbox?direction=response").await;
    let linked: HashSet<i64> = responses
        .iter()
        .filter_map(|r| r["request_id"].as_i64())
        .collect();
    if responses.len() != total || linked.len() != total {
        problems.push(format!(
            "{} responses ({} requests linked) for {total}",
            responses.len(),
            linked.len()
        ));
    }
    let requests = all(&http, &provider.url, "/api/v1/inbox?direction=request").await;
    let gids: HashSet<&str> = requests
        .iter()
        .filter_map(|r| r["global_id"].as_str())
        .collect();
    if requests.len() != total || gids.len() != total {
        problems.push(format!(
            "the provider holds {} requests ({} distinct) for {total}",
            requests.len(),
            gids.len()
        ));
    }
    if requests
        .iter()
        .any(|r| r["state"] != "answered" || r["acked"] != true)
    {
        problems.push("a provider request is not answered and acknowledged".into());
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(kills.0 >= 4 && kills.1 >= 4, "too few kills: {kills:?}");
    assert!(total >= 20, "too few requests to prove anything: {total}");

    // A graceful stop leaves nothing to redo.
    consumer.stop(&consumer_log);
    provider.stop(&provider_log);
    drop(gateway);
    println!(
        "adapter durability: {ROUNDS} rounds, {} consumer and {} provider SIGKILLs, {total} requests, \
         {} submits repeated after a kill ({} had been taken before the kill), {} callbacks for {total} requests, {:.1} s",
        kills.0,
        kills.1,
        resubmitted,
        resubmitted_existing,
        agency.calls.load(Ordering::SeqCst),
        started.elapsed().as_secs_f64()
    );
}
