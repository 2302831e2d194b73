//! Crash durability of the real `mezhved serve` process.
//!
//! One data directory lives through a loop of rounds. Each round starts the binary,
//! resends what the previous kill left unanswered, then lets consumer tasks send
//! SendRequests as fast as they can (each with a unique marker string in its content, some
//! with an inline attachment holding the marker, a few with an MTOM attachment too) while,
//! in some rounds, the provider drains its queue with GetRequest + Ack — and kills the
//! process with SIGKILL after a seeded random delay (fault injection, not a timing
//! assertion).
//!
//! After every kill, a copy of the database (what the next start recovers) must hold every
//! answered message whole and consistent, and the data files must no longer hold the marker
//! of any message acknowledged by an earlier process. After every restart, an unanswered
//! request resent byte for byte must succeed — with the committed global ID if the database
//! had it — and an answered one resent must get its very first answer again.
//!
//! At the end the queue is drained: every message was delivered and acknowledged exactly
//! once (a redelivery is allowed only when the Ack went unanswered), nothing unknown or
//! duplicated was delivered, the queue and the attachment directory are empty, the
//! database is consistent, and after a graceful stop no file of the data directory holds
//! any marker.

use bytes::Bytes;
use mezhved_client::{self as client, Attachment, Client, Outgoing, Reply, Request, RequestCard};
use mezhved_client::{BASIC_NS, TYPES_NS};
use mezhved_dsig::crypto::SigningKey;
use rusqlite::{Connection, OpenFlags};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const ROUNDS: u64 = 24;
const MARK: &str = "MZMARK";
const BIRTH_NS: &str = "urn://mezhved/demo/zags/birth-record/1.0";
const BIRTH_ROOT: &str = "BirthRecordRequest";
const CONSUMER_AGENCY: &str = "Social Protection Office of the Sample Region";
const PROVIDER_AGENCY: &str = "Civil Registry Office of the Sample Region";
const CONSUMER_SYSTEM: &str = "USZN_IS";
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

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

fn key(name: &str) -> Arc<SigningKey> {
    let dir = repo().join("keys/test-pki/ecdsa");
    Arc::new(
        SigningKey::from_pem_files(
            &dir.join(format!("{name}.key.pem")),
            &dir.join(format!("{name}.cert.pem")),
        )
        .unwrap_or_else(|e| panic!("test key {name}: {e}")),
    )
}

/// splitmix64: the fault injection is seeded by the round, so a failing round replays.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x6D65_7A68_7665_6421)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Every marker token (`MZMARK` and the alphanumerics after it) in `data`.
fn markers_in(data: &[u8], out: &mut HashSet<String>) {
    let pat = MARK.as_bytes();
    let mut i = 0;
    while i + pat.len() <= data.len() {
        if data[i] == pat[0] && data[i..].starts_with(pat) {
            let start = i + pat.len();
            let end = data[start..]
                .iter()
                .position(|b| !b.is_ascii_alphanumeric())
                .map_or(data.len(), |p| start + p);
            out.insert(String::from_utf8_lossy(&data[i..end]).into_owned());
            i = end;
        } else {
            i += 1;
        }
    }
}

/// Marker tokens in every file under `dir`, with the files that hold each.
fn scan_dir(dir: &Path) -> HashMap<String, Vec<PathBuf>> {
    let mut found: HashMap<String, Vec<PathBuf>> = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            // A file may vanish between listing and reading (none should: the gateway is
            // not running when this is called).
            let Ok(data) = std::fs::read(&path) else {
                continue;
            };
            let mut tokens = HashSet::new();
            markers_in(&data, &mut tokens);
            for t in tokens {
                found.entry(t).or_default().push(path.clone());
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------------------
// The gateway process.

struct Gateway {
    child: Option<Child>,
    endpoint: String,
    _stdout: BufReader<ChildStdout>,
}

impl Gateway {
    fn start(data_dir: &Path, log: &Path) -> Gateway {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mezhved"));
        cmd.arg("serve")
            .arg("--config")
            .arg(repo().join("deploy/sample/mezhved.toml"));
        for (k, _) in std::env::vars_os() {
            if k.to_str().is_some_and(|k| k.starts_with("MEZHVED_")) {
                cmd.env_remove(k);
            }
        }
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("gateway log");
        cmd.env("MEZHVED_DATA_DIR", data_dir)
            .env("MEZHVED_SERVER__LISTEN", "127.0.0.1:0")
            .env("MEZHVED_LOG__LEVEL", "warn")
            // A lease cut short by a kill comes back after a second, not five minutes.
            .env("MEZHVED_EXCHANGE__VISIBILITY_TIMEOUT_SECONDS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        let mut child = cmd.spawn().expect("mezhved serve starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let read = stdout.read_line(&mut line).expect("read stdout");
        let endpoint = line
            .trim()
            .strip_prefix("mezhved listening on ")
            .and_then(|rest| rest.split(' ').next())
            .map(str::to_string);
        let Some(endpoint) = endpoint.filter(|_| read > 0) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "mezhved serve did not announce its address (stdout {line:?})\n{}",
                log_tail(log)
            );
        };
        Gateway {
            child: Some(child),
            endpoint,
            _stdout: stdout,
        }
    }

    /// SIGKILL; panics if the process had already died by itself.
    fn kill(&mut self, log: &Path) {
        let mut child = self.child.take().expect("running gateway");
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert_eq!(
            status.signal(),
            Some(9),
            "the gateway was not running when killed: {status}\n{}",
            log_tail(log)
        );
    }

    /// SIGTERM, then waits for the graceful exit.
    fn stop(&mut self, log: &Path) {
        let mut child = self.child.take().expect("running gateway");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        let deadline = instant() + Duration::from_secs(30);
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
                panic!("the gateway did not stop on SIGTERM\n{}", log_tail(log));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(40);
    format!("--- gateway log (tail) ---\n{}", lines[from..].join("\n"))
}

// ---------------------------------------------------------------------------------------
// What the clients did.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Plain,
    Inline,
    /// An inline and an MTOM attachment.
    Mtom,
}

struct Sent {
    marker: String,
    message_id: String,
    shape: Shape,
    attachments: Vec<Attachment>,
    /// The signed call, resent byte for byte.
    call: Outgoing,
    /// Global ID, whole answer envelope and round of the first successful answer.
    answer: Option<(String, Bytes, u64)>,
    /// The global ID the database held for it after a kill, while it was unanswered.
    committed_unanswered: Option<String>,
    /// The global ID it was delivered under.
    delivered: Option<String>,
}

#[derive(Default)]
struct Stats {
    kills: u64,
    answered_at_once: u64,
    resent: u64,
    resent_committed: u64,
    identical_resends: u64,
    deliveries: u64,
    redeliveries: u64,
    acks: u64,
    acks_unanswered: u64,
    drain_rounds: u64,
    markers_seen_after_kill: u64,
}

#[derive(Default)]
struct Ledger {
    sent: Vec<Sent>,
    by_marker: HashMap<String, usize>,
    by_message_id: HashMap<String, usize>,
    by_gid: HashMap<String, usize>,
    /// Requests whose last attempt got no answer: resent after the restart.
    unanswered: Vec<usize>,
    /// Deliveries seen by the provider, per global ID.
    deliveries: HashMap<String, u32>,
    /// Successful Acks per global ID, and the round of the first.
    acks: HashMap<String, (u32, u64)>,
    /// Delivered and acknowledged, but the Ack got no answer (a kill).
    ack_unknown: HashSet<String>,
    problems: Vec<String>,
    stats: Stats,
}

impl Ledger {
    fn problem(&mut self, p: String) {
        self.problems.push(p);
    }

    fn add(&mut self, s: Sent) -> usize {
        let idx = self.sent.len();
        self.by_marker.insert(s.marker.clone(), idx);
        self.by_message_id.insert(s.message_id.clone(), idx);
        self.sent.push(s);
        idx
    }

    /// A success answer to a SendRequest (first or resent).
    fn answered(&mut self, idx: usize, gid: String, envelope: Bytes, round: u64) {
        let marker = self.sent[idx].marker.clone();
        if let Some(other) = self.by_gid.get(&gid) {
            if *other != idx {
                let other = self.sent[*other].marker.clone();
                self.problem(format!(
                    "{marker} and {other} were both answered with global ID {gid}"
                ));
            }
        }
        self.by_gid.insert(gid.clone(), idx);
        let s = &self.sent[idx];
        let mut found = Vec::new();
        if let Some((first, _, _)) = &s.answer {
            if *first != gid {
                found.push(format!(
                    "{marker} answered first with {first}, later with {gid}"
                ));
            }
        }
        if let Some(committed) = &s.committed_unanswered {
            if *committed != gid {
                found.push(format!(
                    "{marker} was committed as {committed} before a kill, but its resend was answered with {gid}"
                ));
            }
        }
        if let Some(delivered) = &s.delivered {
            if *delivered != gid {
                found.push(format!(
                    "{marker} was delivered as {delivered} but answered with {gid}"
                ));
            }
        }
        if s.answer.is_none() {
            self.sent[idx].answer = Some((gid, envelope, round));
        }
        for p in found {
            self.problem(p);
        }
    }

    /// A GetRequest answer carrying a message.
    fn delivered(&mut self, gid: &str, reply: &Reply) {
        self.stats.deliveries += 1;
        let count = self.deliveries.entry(gid.to_string()).or_insert(0);
        *count += 1;
        if *count > 1 {
            self.stats.redeliveries += 1;
            if !self.ack_unknown.contains(gid) {
                self.problem(format!(
                    "{gid} was delivered again although no Ack of it was lost"
                ));
            }
        }
        if self.acks.contains_key(gid) {
            self.problem(format!("{gid} was delivered again after a successful Ack"));
        }
        let text = reply.text();
        let mut tokens = HashSet::new();
        markers_in(text.as_bytes(), &mut tokens);
        let marker = tokens.into_iter().next();
        let Some(idx) = marker.as_ref().and_then(|m| self.by_marker.get(m)).copied() else {
            self.problem(format!("{gid} delivered with an unknown marker {marker:?}"));
            return;
        };
        let mut found = Vec::new();
        {
            let s = &self.sent[idx];
            if let Some(prev) = &s.delivered {
                if prev != gid {
                    found.push(format!(
                        "{} delivered twice, as {prev} and as {gid}",
                        s.marker
                    ));
                }
            }
            if let Some((answered, _, _)) = &s.answer {
                if answered != gid {
                    found.push(format!(
                        "{} answered as {answered} but delivered as {gid}",
                        s.marker
                    ));
                }
            }
            if !text.contains(&s.message_id) {
                found.push(format!(
                    "{gid}: the delivery lacks MessageID {}",
                    s.message_id
                ));
            }
            match s.shape {
                Shape::Plain => {
                    if !reply.parts.is_empty() || text.contains("AttachmentContentList") {
                        found.push(format!("{gid}: attachments appeared on a plain message"));
                    }
                }
                Shape::Inline => {
                    let contents = reply.all_texts(BASIC_NS, "Content");
                    let expected = vec![base64(&s.attachments[0].data)];
                    if !reply.parts.is_empty() || contents != expected {
                        found.push(format!("{gid}: the inline attachment differs"));
                    }
                }
                Shape::Mtom => {
                    let parts: HashMap<&str, &Bytes> =
                        reply.parts.iter().map(|(c, d)| (c.as_str(), d)).collect();
                    for a in &s.attachments {
                        if parts.get(a.content_id.as_str()) != Some(&&a.data) {
                            found.push(format!(
                                "{gid}: attachment {} differs or is missing",
                                a.content_id
                            ));
                        }
                    }
                    if parts.len() != s.attachments.len() {
                        found.push(format!("{gid}: {} MTOM parts", parts.len()));
                    }
                }
            }
        }
        self.sent[idx].delivered = Some(gid.to_string());
        for p in found {
            self.problem(p);
        }
    }

    fn acked(&mut self, gid: &str, round: u64) {
        self.stats.acks += 1;
        self.ack_unknown.remove(gid);
        let e = self.acks.entry(gid.to_string()).or_insert((0, round));
        e.0 += 1;
    }

    fn check(&mut self, when: &str, log: &Path) {
        if !self.problems.is_empty() {
            let shown: Vec<&String> = self.problems.iter().take(25).collect();
            panic!(
                "{when}: {} problem(s):\n{}\n{}",
                self.problems.len(),
                shown
                    .iter()
                    .map(|s| format!("  - {s}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                log_tail(log)
            );
        }
    }
}

type Shared = Arc<Mutex<Ledger>>;

fn lock(l: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    l.lock().expect("ledger lock")
}

async fn call(client: &Client, call: &Outgoing) -> Result<Reply, String> {
    match tokio::time::timeout(CALL_TIMEOUT, client.call(call)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
    }
}

/// The reply's global ID when it is a success; the reason otherwise.
fn success_gid(reply: &Reply) -> Result<String, String> {
    if reply.status != 200 || reply.fault().is_some() {
        return Err(format!("HTTP {}: {}", reply.status, reply.text()));
    }
    reply
        .global_id()
        .ok_or_else(|| format!("no global ID in {}", reply.text()))
}

fn success(reply: &Reply) -> Result<(), String> {
    if reply.status != 200 || reply.fault().is_some() {
        return Err(format!("HTTP {}: {}", reply.status, reply.text()));
    }
    Ok(())
}

fn birth_request(marker: &str, shape: Shape, at: SystemTime) -> Request {
    let today = chrono::DateTime::<chrono::Utc>::from(at)
        .date_naive()
        .to_string();
    let mut attachments = Vec::new();
    if shape != Shape::Plain {
        attachments.push(Attachment {
            content_id: "form".into(),
            mime_type: "application/pdf".into(),
            data: Bytes::from(format!("application form {marker};").repeat(6)),
            mtom: false,
        });
    }
    if shape == Shape::Mtom {
        let mut data = format!("scan {marker} begins;").into_bytes();
        data.extend((0..16_000u32).map(|i| (i * 7 % 251) as u8));
        data.extend_from_slice(format!(";scan {marker} ends").as_bytes());
        attachments.push(Attachment {
            content_id: "scan".into(),
            mime_type: "image/tiff".into(),
            data: Bytes::from(data),
            mtom: true,
        });
    }
    Request {
        message_id: client::message_id(at),
        content: format!(
            "<b:{BIRTH_ROOT} xmlns:b=\"{BIRTH_NS}\"><b:Surname>Ivanova</b:Surname><b:BirthDate>2019-05-14</b:BirthDate><b:Note>{marker}</b:Note></b:{BIRTH_ROOT}>"
        ),
        card: Some(
            RequestCard::complete(CONSUMER_AGENCY, PROVIDER_AGENCY, &today, "USZN-2026/0001")
                .to_xml(),
        ),
        attachments,
        reference_message_id: None,
        eol: None,
        test: false,
    }
}

// ---------------------------------------------------------------------------------------
// Client tasks.

/// A consumer sending new requests until `stop`.
async fn sender(
    client: Client,
    key: Arc<SigningKey>,
    ledger: Shared,
    stop: Arc<AtomicBool>,
    round: u64,
    task: u64,
) {
    let mut rng = Rng::new(round * 1000 + task + 1);
    let mut seq = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let marker = format!("{MARK}r{round:02}t{task}s{seq:04}");
        seq += 1;
        let shape = match rng.below(10) {
            0..=5 => Shape::Plain,
            6..=8 => Shape::Inline,
            _ => Shape::Mtom,
        };
        let request = birth_request(&marker, shape, now());
        let signed = client::send_request(&request)
            .sign(&*key)
            .expect("sign a request");
        let idx = lock(&ledger).add(Sent {
            marker: marker.clone(),
            message_id: request.message_id.to_string(),
            shape,
            attachments: request.attachments.clone(),
            call: signed.clone(),
            answer: None,
            committed_unanswered: None,
            delivered: None,
        });
        let result = call(&client, &signed).await;
        let mut l = lock(&ledger);
        match result.and_then(|r| success_gid(&r).map(|g| (g, r.envelope))) {
            Ok((gid, envelope)) => {
                l.stats.answered_at_once += 1;
                l.answered(idx, gid, envelope, round);
            }
            Err(e) => {
                l.unanswered.push(idx);
                if !stop.load(Ordering::SeqCst) {
                    l.problem(format!("{marker}: SendRequest failed before the kill: {e}"));
                }
                break;
            }
        }
    }
}

/// The provider: GetRequest + Ack, one message at a time, until `stop` — or, without a
/// stop flag, until the queue answers empty.
async fn drainer(
    client: Client,
    key: Arc<SigningKey>,
    ledger: Shared,
    stop: Option<Arc<AtomicBool>>,
    round: u64,
) {
    let stopped = || stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
    while !stopped() {
        let get = client::get_request(None, now())
            .sign(&*key)
            .expect("sign GetRequest");
        let reply = match call(&client, &get).await {
            Ok(r) => r,
            Err(e) => {
                if !stopped() {
                    lock(&ledger).problem(format!("GetRequest failed before the kill: {e}"));
                }
                return;
            }
        };
        if let Err(e) = success(&reply) {
            lock(&ledger).problem(format!("GetRequest: {e}"));
            return;
        }
        if !reply.has_message() {
            if stop.is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let Some(gid) = reply.global_id() else {
            lock(&ledger).problem("a delivery without a global ID".into());
            return;
        };
        lock(&ledger).delivered(&gid, &reply);
        let ack = client::ack(&gid, true, None).sign(&*key).expect("sign Ack");
        match call(&client, &ack).await {
            Ok(r) => match success(&r) {
                Ok(()) => lock(&ledger).acked(&gid, round),
                Err(e) => {
                    lock(&ledger).problem(format!("Ack of {gid}: {e}"));
                    return;
                }
            },
            Err(e) => {
                let mut l = lock(&ledger);
                l.ack_unknown.insert(gid.clone());
                l.stats.acks_unanswered += 1;
                if !stopped() {
                    l.problem(format!("Ack of {gid} failed before the kill: {e}"));
                }
                return;
            }
        }
    }
}

/// Resends `items` (4 at a time). `identical`: answered ones, whose answer must repeat
/// byte for byte; otherwise unanswered ones, which must now succeed.
async fn resend(client: &Client, ledger: &Shared, items: Vec<usize>, identical: bool, round: u64) {
    let queue = Arc::new(Mutex::new(items));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (client, ledger, queue) = (client.clone(), ledger.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(idx) = queue.lock().expect("queue").pop() else {
                    break;
                };
                let (signed, marker) = {
                    let l = lock(&ledger);
                    (l.sent[idx].call.clone(), l.sent[idx].marker.clone())
                };
                let result = call(&client, &signed).await;
                let mut l = lock(&ledger);
                match result.and_then(|r| success_gid(&r).map(|g| (g, r.envelope))) {
                    Ok((gid, envelope)) if identical => {
                        l.stats.identical_resends += 1;
                        let first = l.sent[idx].answer.as_ref().map(|a| a.1.clone());
                        if first.as_ref() != Some(&envelope) {
                            l.problem(format!(
                                "{marker}: an identical resend did not get the first answer again"
                            ));
                        }
                        l.answered(idx, gid, envelope, round);
                    }
                    Ok((gid, envelope)) => {
                        l.stats.resent += 1;
                        if l.sent[idx].committed_unanswered.is_some() {
                            l.stats.resent_committed += 1;
                        }
                        l.answered(idx, gid, envelope, round);
                    }
                    Err(e) => l.problem(format!("{marker}: resend failed after restart: {e}")),
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("resend task");
    }
}

/// Pending messages in the provider's queues.
async fn pending(client: &Client, provider: &SigningKey) -> u64 {
    let stats = client::queue_statistics(now())
        .sign(provider)
        .expect("sign statistics");
    let reply = call(client, &stats).await.expect("queue statistics");
    success(&reply).expect("queue statistics");
    let doc = reply.document().expect("statistics document");
    doc.descendants(doc.root())
        .filter(|&n| doc.is_element(n, TYPES_NS, "QueueStatistics"))
        .map(|n| {
            doc.attribute(n, "", "pendingMessageNumber")
                .and_then(|v| v.parse::<u64>().ok())
                .expect("pendingMessageNumber")
        })
        .sum()
}

/// After a start: the gateway answers, the unanswered are resent, some answered ones are
/// resent to check they get their first answer.
async fn recover(client: &Client, provider: &SigningKey, ledger: &Shared, round: u64) {
    // Readiness: the address is printed before the store is open; calls wait in the
    // listen backlog until it is.
    pending(client, provider).await;
    let unanswered = std::mem::take(&mut lock(ledger).unanswered);
    resend(client, ledger, unanswered, false, round).await;
    let again: Vec<usize> = {
        let l = lock(ledger);
        let mut rng = Rng::new(0xA5A5 + round);
        let answered: Vec<usize> = (0..l.sent.len())
            .filter(|&i| l.sent[i].answer.is_some())
            .collect();
        let mut pick: Vec<usize> = answered
            .iter()
            .copied()
            .filter(|&i| l.sent[i].answer.as_ref().is_some_and(|a| a.2 + 1 == round))
            .take(40)
            .collect();
        for _ in 0..4 {
            if !answered.is_empty() {
                pick.push(answered[rng.below(answered.len() as u64) as usize]);
            }
        }
        pick
    };
    resend(client, ledger, again, true, round).await;
}

// ---------------------------------------------------------------------------------------
// The database, as the next start finds it.

#[derive(Debug)]
struct Row {
    gid: String,
    queue: i64,
    sender: String,
    message_id: String,
    acked: bool,
    has_payload: bool,
    delivery_count: i64,
    original: Option<String>,
}

struct Snapshot {
    rows: Vec<Row>,
    /// Card status per global ID.
    cards: HashMap<String, String>,
    /// (global ID, path, size).
    attachments: Vec<(String, String, i64)>,
}

fn uuid_text(blob: Vec<u8>) -> String {
    uuid::Uuid::from_slice(&blob)
        .expect("16-byte global ID")
        .hyphenated()
        .to_string()
}

fn snapshot(conn: &Connection) -> Snapshot {
    let mut st = conn
        .prepare(
            "SELECT global_id, queue, sender_system, sender_message_id, acked_at IS NOT NULL,
                    payload IS NOT NULL, delivery_count, original_global_id
             FROM messages ORDER BY seq",
        )
        .expect("messages query");
    let rows = st
        .query_map([], |r| {
            Ok(Row {
                gid: uuid_text(r.get(0)?),
                queue: r.get(1)?,
                sender: r.get(2)?,
                message_id: r.get(3)?,
                acked: r.get(4)?,
                has_payload: r.get(5)?,
                delivery_count: r.get(6)?,
                original: r.get::<_, Option<Vec<u8>>>(7)?.map(uuid_text),
            })
        })
        .expect("messages")
        .collect::<Result<Vec<_>, _>>()
        .expect("messages rows");
    let mut st = conn
        .prepare("SELECT global_id, status FROM cards")
        .expect("cards query");
    let cards = st
        .query_map([], |r| Ok((uuid_text(r.get(0)?), r.get(1)?)))
        .expect("cards")
        .collect::<Result<HashMap<_, _>, _>>()
        .expect("cards rows");
    let mut st = conn
        .prepare("SELECT global_id, path, size FROM attachments")
        .expect("attachments query");
    let attachments = st
        .query_map([], |r| Ok((uuid_text(r.get(0)?), r.get(1)?, r.get(2)?)))
        .expect("attachments")
        .collect::<Result<Vec<_>, _>>()
        .expect("attachments rows");
    Snapshot {
        rows,
        cards,
        attachments,
    }
}

/// Reads a copy of the database and its WAL, as a restart would recover them, without
/// touching the originals.
fn snapshot_after_crash(data_dir: &Path, scratch: &Path) -> Snapshot {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch).expect("scratch dir");
    for suffix in ["", "-wal"] {
        let from = data_dir.join(format!("mezhved.db{suffix}"));
        if from.exists() {
            std::fs::copy(&from, scratch.join(format!("mezhved.db{suffix}"))).expect("copy db");
        }
    }
    let conn = Connection::open(scratch.join("mezhved.db")).expect("open the copy");
    let s = snapshot(&conn);
    drop(conn);
    let _ = std::fs::remove_dir_all(scratch);
    s
}

/// The invariants of one database state, whatever the clients know: nothing half-present.
fn check_consistency(s: &Snapshot, data_dir: &Path, problems: &mut Vec<String>) {
    let by_gid: HashMap<&str, &Row> = s.rows.iter().map(|r| (r.gid.as_str(), r)).collect();
    let mut statuses: HashMap<&str, u32> = HashMap::new();
    for r in &s.rows {
        if r.acked == r.has_payload {
            problems.push(format!(
                "message {} (queue {}): acknowledged={} but payload present={}",
                r.gid, r.queue, r.acked, r.has_payload
            ));
        }
        if !s.cards.contains_key(&r.gid) {
            problems.push(format!("message {} has no card", r.gid));
        }
        if r.queue == 2 {
            if let Some(o) = &r.original {
                *statuses.entry(o.as_str()).or_insert(0) += 1;
            }
        }
    }
    for gid in s.cards.keys() {
        if !by_gid.contains_key(gid.as_str()) {
            problems.push(format!("card {gid} has no message row"));
        }
    }
    for (gid, path, size) in &s.attachments {
        match by_gid.get(gid.as_str()) {
            None => problems.push(format!("attachment {path} of unknown message {gid}")),
            Some(r) if r.acked => problems.push(format!(
                "attachment {path} still recorded for acknowledged message {gid}"
            )),
            Some(_) => {}
        }
        match std::fs::metadata(data_dir.join(path)) {
            Ok(m) if m.len() as i64 == *size => {}
            Ok(m) => problems.push(format!(
                "attachment file {path} of {gid} has {} bytes, the store says {size}",
                m.len()
            )),
            Err(e) => problems.push(format!("attachment file {path} of {gid}: {e}")),
        }
    }
    for r in s.rows.iter().filter(|r| r.queue == 0) {
        // Ack and its underProcessing status commit together.
        let n = statuses.get(r.gid.as_str()).copied().unwrap_or(0);
        let expected = u32::from(r.acked);
        if n != expected {
            problems.push(format!(
                "request {} (acknowledged={}) has {n} status messages",
                r.gid, r.acked
            ));
        }
        if r.acked && s.cards.get(&r.gid).map(String::as_str) != Some("delivered") {
            problems.push(format!(
                "acknowledged request {} has card status {:?}",
                r.gid,
                s.cards.get(&r.gid)
            ));
        }
    }
}

/// What the clients know against the database. `at_end`: everything was resent and drained.
fn check_against_ledger(s: &Snapshot, l: &mut Ledger, at_end: bool) {
    let mut problems = Vec::new();
    let requests: HashMap<&str, &Row> = s
        .rows
        .iter()
        .filter(|r| r.queue == 0 && r.sender == CONSUMER_SYSTEM)
        .map(|r| (r.message_id.as_str(), r))
        .collect();
    for r in requests.values() {
        if !l.by_message_id.contains_key(&r.message_id) {
            problems.push(format!("the database holds an unknown request {}", r.gid));
        }
    }
    let mut committed = Vec::new();
    for (idx, sent) in l.sent.iter().enumerate() {
        let row = requests.get(sent.message_id.as_str());
        match (row, &sent.answer) {
            (None, Some((gid, _, _))) => problems.push(format!(
                "{} was answered ({gid}) but is not in the database",
                sent.marker
            )),
            (Some(row), Some((gid, _, _))) if row.gid != *gid => problems.push(format!(
                "{} was answered with {gid} but the database has {}",
                sent.marker, row.gid
            )),
            (Some(row), None) => committed.push((idx, row.gid.clone())),
            (None, None) if at_end => problems.push(format!("{} was never accepted", sent.marker)),
            _ => {}
        }
        if let (Some(row), Some((gid, _, _))) = (row, &sent.answer) {
            if l.acks.contains_key(gid) && !row.acked {
                problems.push(format!("{gid} was acknowledged but the database says not"));
            }
            if at_end && !row.acked {
                problems.push(format!("{gid} ({}) is still pending", sent.marker));
            }
            if at_end && row.delivery_count < 1 {
                problems.push(format!("{gid} was acknowledged but never delivered"));
            }
        }
    }
    for (idx, gid) in committed {
        match &l.sent[idx].committed_unanswered {
            Some(prev) if *prev != gid => problems.push(format!(
                "{} committed as {prev}, later as {gid}",
                l.sent[idx].marker
            )),
            _ => l.sent[idx].committed_unanswered = Some(gid),
        }
    }
    l.problems.extend(problems);
}

// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_messages_survive_sigkill_and_are_delivered_exactly_once() {
    let started = instant();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir = tmp.path().join("data");
    let scratch = tmp.path().join("scratch");
    let log = tmp.path().join("gateway.log");
    let consumer = key("consumer-is");
    let provider = key("provider-is");
    let ledger: Shared = Arc::new(Mutex::new(Ledger::default()));

    for round in 0..ROUNDS {
        let mut rng = Rng::new(round);
        let mut gw = Gateway::start(&data_dir, &log);
        let http = Client::new(&gw.endpoint).expect("client");
        recover(&http, &provider, &ledger, round).await;
        lock(&ledger).check(&format!("round {round}, after the restart"), &log);

        // Every fourth round only drains; every third only sends; the others do both.
        let senders = if round % 4 == 3 { 0 } else { 2 + rng.below(3) };
        let drain = round % 3 != 0 || senders == 0;
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for task in 0..senders {
            tasks.push(tokio::spawn(sender(
                http.clone(),
                consumer.clone(),
                ledger.clone(),
                stop.clone(),
                round,
                task,
            )));
        }
        if drain {
            lock(&ledger).stats.drain_rounds += 1;
            tasks.push(tokio::spawn(drainer(
                http.clone(),
                provider.clone(),
                ledger.clone(),
                Some(stop.clone()),
                round,
            )));
        }
        let delay = Duration::from_millis(5 + rng.below(146));
        tokio::time::sleep(delay).await;
        stop.store(true, Ordering::SeqCst);
        gw.kill(&log);
        for t in tasks {
            tokio::time::timeout(CALL_TIMEOUT, t)
                .await
                .expect("client task ends after the kill")
                .expect("client task");
        }
        drop(http);

        // The crash state: every answered message whole, nothing half-present.
        let snap = snapshot_after_crash(&data_dir, &scratch);
        let found = scan_dir(&data_dir);
        let mut l = lock(&ledger);
        l.stats.kills += 1;
        let mut problems = Vec::new();
        check_consistency(&snap, &data_dir, &mut problems);
        l.problems.extend(problems);
        check_against_ledger(&snap, &mut l, false);
        let mut seen = 0;
        let mut leaked = Vec::new();
        for s in &l.sent {
            let Some((gid, _, _)) = &s.answer else {
                continue;
            };
            match l.acks.get(gid) {
                None if found.contains_key(&s.marker) => seen += 1,
                // Acknowledged under an earlier process: its start finished the erasure.
                Some((_, acked_round)) if *acked_round < round => {
                    if let Some(files) = found.get(&s.marker) {
                        leaked.push(format!(
                            "{} (acknowledged in round {acked_round}) is still in {files:?} after the kill in round {round}",
                            s.marker
                        ));
                    }
                }
                _ => {}
            }
        }
        l.stats.markers_seen_after_kill += seen;
        l.problems.extend(leaked);
        l.check(&format!("round {round}, after the kill ({delay:?})"), &log);
    }

    // Final: restart, resend, drain everything.
    let mut gw = Gateway::start(&data_dir, &log);
    let http = Client::new(&gw.endpoint).expect("client");
    recover(&http, &provider, &ledger, ROUNDS).await;
    lock(&ledger).check("after the last restart", &log);
    let deadline = instant() + Duration::from_secs(30);
    loop {
        drainer(http.clone(), provider.clone(), ledger.clone(), None, ROUNDS).await;
        lock(&ledger).check("final drain", &log);
        // Leases cut short by the last kill come back after the visibility timeout.
        if pending(&http, &provider).await == 0 {
            break;
        }
        assert!(instant() < deadline, "the queue does not drain");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let empty = client::get_request(None, now())
        .sign(&*provider)
        .expect("sign GetRequest");
    let reply = call(&http, &empty).await.expect("GetRequest");
    assert!(!reply.has_message(), "queue not empty: {}", reply.text());
    let attachments_dir = data_dir.join("attachments");
    let left: Vec<PathBuf> = std::fs::read_dir(&attachments_dir)
        .expect("attachment dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(left.is_empty(), "attachment files left: {left:?}");
    // Acknowledged long ago or just now: the idempotency record still answers.
    let sample: Vec<usize> = {
        let l = lock(&ledger);
        let mut rng = Rng::new(0xF1AA);
        (0..30)
            .map(|_| rng.below(l.sent.len() as u64) as usize)
            .collect()
    };
    resend(&http, &ledger, sample, true, ROUNDS).await;
    lock(&ledger).check("identical resends after the drain", &log);
    drop(http);
    gw.stop(&log);

    // No marker of any acknowledged message in any file.
    let found = scan_dir(&data_dir);
    let mut l = lock(&ledger);
    let mut leaked: Vec<String> = found
        .iter()
        .map(|(m, files)| format!("{m} found in {files:?} after the graceful stop"))
        .collect();
    leaked.sort();
    l.problems.extend(leaked);

    // The database, read-only: consistent, everything acknowledged exactly once.
    let db = data_dir.join("mezhved.db");
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the database read-only");
    let snap = snapshot(&conn);
    drop(conn);
    let mut problems = Vec::new();
    check_consistency(&snap, &data_dir, &mut problems);
    l.problems.extend(problems);
    check_against_ledger(&snap, &mut l, true);
    let acked_rows: HashSet<&str> = snap
        .rows
        .iter()
        .filter(|r| r.acked)
        .map(|r| r.gid.as_str())
        .collect();
    let mut problems = Vec::new();
    let mut resolved_by_db = 0;
    for s in &l.sent {
        let Some((gid, _, _)) = &s.answer else {
            problems.push(format!("{} never answered", s.marker));
            continue;
        };
        if !snap.cards.contains_key(gid) {
            problems.push(format!("{gid}: the card is gone"));
        }
        match l.acks.get(gid).map(|a| a.0).unwrap_or(0) {
            1 => {}
            // Its only Ack went unanswered and it never came back: the Ack had committed.
            0 if l.ack_unknown.contains(gid) && acked_rows.contains(gid.as_str()) => {
                resolved_by_db += 1
            }
            n => problems.push(format!("{gid} ({}) acknowledged {n} times", s.marker)),
        }
        if s.delivered.is_none() {
            problems.push(format!("{gid} ({}) never delivered", s.marker));
        }
    }
    for gid in l.deliveries.keys() {
        if !l.by_gid.contains_key(gid) {
            problems.push(format!("{gid} delivered but never answered to a sender"));
        }
    }
    l.problems.extend(problems);
    l.check("at the end", &log);

    // The journal survived 20+ SIGKILLs whole: every event, stored node and checkpoint
    // (signed at each graceful stop) agrees with the tree recomputed from the leaves.
    let mut verify = Command::new(env!("CARGO_BIN_EXE_mezhved"));
    verify
        .args(["journal", "verify", "--config"])
        .arg(repo().join("deploy/sample/mezhved.toml"));
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("MEZHVED_")) {
            verify.env_remove(k);
        }
    }
    let verified = verify
        .env("MEZHVED_DATA_DIR", &data_dir)
        .output()
        .expect("mezhved journal verify runs");
    assert!(
        verified.status.success(),
        "journal verify after the kills: {}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );

    let st = &l.stats;
    assert!(st.kills >= 20, "only {} kills", st.kills);
    assert!(
        st.markers_seen_after_kill > 0,
        "the marker scan never saw a pending message's marker: it would prove nothing"
    );
    println!(
        "durability: {} rounds, {} SIGKILLs ({} with the provider draining); {} requests: {} answered at once, \
         {} resent after a kill ({} of them already committed), {} identical resends; \
         {} deliveries ({} redeliveries), {} Acks ({} unanswered by a kill, {} of those found \
         committed); {} pending markers seen on disk after kills; no marker after the stop; {:.1} s",
        ROUNDS,
        st.kills,
        st.drain_rounds,
        l.sent.len(),
        st.answered_at_once,
        st.resent,
        st.resent_committed,
        st.identical_resends,
        st.deliveries,
        st.redeliveries,
        st.acks,
        st.acks_unanswered,
        resolved_by_db,
        st.markers_seen_after_kill,
        started.elapsed().as_secs_f64(),
    );
}
