//! `mezhved bench`: the exchange core under load, measured in one process.
//!
//! The gateway runs in-process ([`Gateway::open`] on a temporary data directory with the
//! sample registry and the test PKI's ECDSA keys) on its own tokio runtime (threads
//! `mz-gw`), served on 127.0.0.1:0. Simulated consumer and provider systems run on a second
//! runtime (threads `mz-load`) and talk HTTP/1.1 over loopback with keep-alive connections
//! ([`mezhved_client::Client`], one connection per simulated system):
//!
//! - a **consumer** sends SendRequest while fewer than `--outstanding` exchanges are open,
//!   then polls GetResponse and acknowledges what it gets; an exchange is complete when a
//!   consumer's Ack of a response is answered;
//! - a **provider** polls GetRequest, acknowledges the request, then answers it with
//!   SendResponse.
//!
//! A poll that finds nothing waits (1 ms, doubling up to 16 ms) before the next one.
//! Every call is signed by the simulated system (ECDSA P-256, SMEV profile); answers are
//! not verified by the clients.
//!
//! In the same run it measures the yardsticks of the issue's targets: a bare hyper server
//! echoing the same bodies (same client, same concurrency), and the crypto bound (OpenSSL
//! ECDSA sign and verify rates on all cores × the signature operations of one exchange).
//! The memory parts (1 GiB MTOM attachment, 10⁶ queued messages) run in a fresh child
//! process each, so their RSS figures are not inflated by the load runs before them.
//!
//! The `journal` part measures the central journal's four targets in one run: the signed
//! load on fresh gateways with the journal off ([`Gateway::open_with`]) and on, pair by
//! pair (off, on, off, on, …); a database prefilled directly with SQLite with synthetic
//! `message.accepted` leaves and their Merkle nodes (10⁷ by default), on which it times
//! `journal verify` (read-only connection), random inclusion and consistency proofs
//! (the [`Store`] trait, and a few over REST) and the signed load, compared with the same
//! load over a journal of 10⁴ events. The gateway opens the prefilled database as it is
//! and appends from there.
//!
//! The `deadlines` part copies one request accepted over HTTP (card, queue row) into
//! databases prefilled directly with SQLite: 10⁶ (and 10³) pending deadline rows due in 30
//! days, on which a gateway is opened and served with no traffic in a fresh child process
//! (`--deadlines-idle-dir`): the process's CPU over the window, its RSS, and timer passes
//! timed one by one; then 10⁵ overdue and 10⁵ reminder rows all due, fired by one
//! [`DeadlineRunner::run_once`] on an opened, unserved gateway (deadlines/s, CPU per row).
//!
//! The bench is an edge of the program like the command line: it reads the real clock
//! (`wall`, `mono`) to pace and time calls.

use bytes::Bytes;
use clap::{Args, ValueEnum};
use http_body_util::BodyExt as _;
use mezhved_client::{
    self as client, Attachment, Client, Outgoing, Reply, Request, RequestCard, ResponseContent,
    StreamedPart, TYPES_NS,
};
use mezhved_core::clock::{to_ms, SystemClock};
use mezhved_core::deadlines::DeadlineRunner;
use mezhved_dsig::crypto::SigningKey;
use mezhved_http::config::{AuditorConfig, Config};
use mezhved_http::Gateway;
use mezhved_store::sqlite::{SqliteOptions, SqliteStore};
use mezhved_store::{AckCommand, DeadlineKind, LeaseRequest, NewEvent, NewMessage, Queue, Store};
use serde_json::{json, Value};
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::io::{Read as _, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

mod adapters;

const BIRTH_NS: &str = "urn://mezhved/demo/zags/birth-record/1.0";
const BIRTH_ROOT: &str = "BirthRecordRequest";
const CONSUMER_AGENCY: &str = "Social Protection Office of the Sample Region";
const PROVIDER_AGENCY: &str = "Civil Registry Office of the Sample Region";
const CONSUMER_SYSTEM: &str = "USZN_IS";
const PROVIDER_SYSTEM: &str = "ZAGS_IS";
const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// Signatures of one complete exchange (SendRequest, GetRequest, Ack, SendResponse,
/// GetResponse, Ack), counted from `gateway/core/src/exchange.rs` and the client:
/// every call is signed by its caller (6); the gateway signs two per answer that carries
/// a message (SendRequestResponse, SendResponseResponse and both deliveries: the
/// `SMEVSignature` and the enveloped signature of the `mz:Registration` header) and
/// nothing in an Ack answer (8); it verifies every call (6). The clients verify nothing.
const CLIENT_SIGNS: u64 = 6;
const GATEWAY_SIGNS: u64 = 8;
const GATEWAY_VERIFIES: u64 = 6;
const CLIENT_VERIFIES: u64 = 0;

/// The issue's targets.
const TARGET_SIGNED_VS_BOUND: f64 = 0.60;
const TARGET_NOCRYPTO_VS_ECHO: f64 = 0.50;
const TARGET_P99_MS: f64 = 5.0;
const TARGET_MTOM_RSS_MB: f64 = 64.0;
const TARGET_QUEUED_RSS_MB: f64 = 500.0;
const TARGET_ADAPTERS_VS_DIRECT: f64 = 0.50;
const TARGET_MONITORING_VS_WITHOUT: f64 = 0.95;
/// "Flat": the growth stays within SQLite's page cache and allocator slack.
const TARGET_ADAPTER_OUTBOX_GROWTH_MB: f64 = 16.0;

/// One part of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// OpenSSL ECDSA sign and verify rates on all cores: the crypto bound.
    Crypto,
    /// Signed exchanges, closed loop: the maximum rate.
    Exchange,
    /// The bare hyper echo and the gateway with signature checks off, same load.
    Echo,
    /// SendRequest latency under a paced load at half the maximum rate.
    Latency,
    /// One SendRequest with a large MTOM attachment, delivered to a file.
    Mtom,
    /// A backlog of queued messages: memory, and one GetRequest + Ack against it.
    Queued,
    /// The central journal: what appending costs the exchange, `journal verify`, proofs
    /// and the exchange over a journal of 10⁷ events.
    Journal,
    /// Reply deadlines: the idle timer loop over 10⁶ pending rows (CPU, memory), and
    /// firing rows that are due (deadlines/s).
    Deadlines,
    /// Exchanges end to end through two adapters vs. direct calls, and an adapter's
    /// memory with 10⁵ queued outgoing messages.
    Adapters,
    /// Exchange throughput with `/metrics`, the monitoring API and the `/ui` page polled every
    /// second vs. without, on the same gateway (issue 8).
    Monitoring,
}

/// How `queued` fills the backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueueVia {
    /// SendRequest over HTTP, from `consumers + providers` connections, to a gateway
    /// with signature checks off; then the gateway is reopened on the same data with
    /// signatures on for the GetRequest + Ack.
    Http,
    /// `Store::accept` directly, from 512 tasks at once (group commit), with copies of
    /// one message accepted over HTTP.
    Store,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The repository root (for deploy/sample/registry.toml and keys/test-pki); searched
    /// upwards from here.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Simulated consumer systems (concurrent connections). Default 8 (quick: 2).
    #[arg(long)]
    pub consumers: Option<usize>,
    /// Simulated provider systems (concurrent connections). Default 8 (quick: 2).
    #[arg(long)]
    pub providers: Option<usize>,
    /// Open exchanges at most (consumers stop sending beyond). Default 2 × (consumers +
    /// providers).
    #[arg(long)]
    pub outstanding: Option<usize>,
    /// Measured seconds of each load run. Default 10 (quick: 1).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Unmeasured seconds before each load run. Default 2 (quick: 0.3).
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Parts to run, comma separated. Default: all.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Part>,
    /// Size of the MTOM attachment in MiB. Default 1024 (quick: 4).
    #[arg(long)]
    pub attachment_mb: Option<u64>,
    /// Messages in the backlog of the `queued` part. Default 1000000 (quick: 2000).
    #[arg(long)]
    pub queued: Option<u64>,
    /// How the backlog is filled.
    #[arg(long, value_enum, default_value = "http")]
    pub queued_via: QueueVia,
    /// Measured seconds of the paced latency run. Default 5 (quick: 1).
    #[arg(long)]
    pub latency_seconds: Option<f64>,
    /// Exchanges/s of the paced run. Default: half the measured maximum.
    #[arg(long)]
    pub latency_rate: Option<f64>,
    /// Seconds of each crypto measurement. Default 2 (quick: 0.25).
    #[arg(long)]
    pub crypto_seconds: Option<f64>,
    /// Also write every figure, the targets and pass/miss as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Small everything: a smoke run (well under 30 s in a debug build). The figures
    /// mean nothing.
    #[arg(long)]
    pub quick: bool,
    /// Run the memory parts (mtom, queued) in this process, not in a fresh child.
    #[arg(long)]
    pub in_process: bool,
    /// Where temporary data directories go. Default: the system's temporary directory.
    #[arg(long)]
    pub tmp: Option<PathBuf>,
    /// Events prefilled into the large journal (verify, proofs, the exchange over it).
    /// Default 10000000 (quick: 10000).
    #[arg(long)]
    pub journal_events: Option<u64>,
    /// Events prefilled into the small journal the large one's exchange rate is compared
    /// with. Default 10000 (quick: 100).
    #[arg(long)]
    pub journal_baseline_events: Option<u64>,
    /// Pairs of load runs (journal off, then on) that measure what appending costs.
    /// Default 2 (quick: 1).
    #[arg(long)]
    pub journal_pairs: Option<usize>,
    /// Measured seconds of each load run of the journal part. Default 5 (quick: 1).
    #[arg(long)]
    pub journal_seconds: Option<f64>,
    /// Random inclusion proofs, and as many consistency proofs, timed on the large
    /// journal. Default 1000 (quick: 50).
    #[arg(long)]
    pub journal_proofs: Option<usize>,
    /// Pending deadline rows (due in 30 days) the idle timer loop runs over. Default
    /// 1000000 (quick: 2000).
    #[arg(long)]
    pub deadlines_pending: Option<u64>,
    /// Pending deadline rows of the small idle run its memory is compared with. Default
    /// 1000 (quick: 100).
    #[arg(long)]
    pub deadlines_baseline_pending: Option<u64>,
    /// Deadline rows due now, fired per kind (overdue, reminder). Default 100000 (quick:
    /// 1000).
    #[arg(long)]
    pub deadlines_due: Option<u64>,
    /// Measured seconds of each idle run of the deadlines part. Default 10 (quick: 1).
    #[arg(long)]
    pub deadlines_idle_seconds: Option<f64>,
    /// Internal: only the idle run, on this prefilled data directory (the deadlines
    /// part's child process).
    #[arg(long, hide = true)]
    pub deadlines_idle_dir: Option<PathBuf>,
    /// Exchanges sent through the two adapters (`adapters`).
    #[arg(long)]
    pub adapters_exchanges: Option<u64>,
    /// Requests queued in an adapter whose gateway is unreachable (`adapters`).
    #[arg(long)]
    pub adapters_queued: Option<u64>,
}

/// The arguments with their defaults resolved.
#[derive(Debug, Clone)]
struct Plan {
    repo: PathBuf,
    tmp: PathBuf,
    consumers: usize,
    providers: usize,
    outstanding: usize,
    duration: Duration,
    warmup: Duration,
    parts: Vec<Part>,
    attachment_bytes: u64,
    queued: u64,
    queued_via: QueueVia,
    latency_duration: Duration,
    latency_rate: Option<f64>,
    crypto_duration: Duration,
    quick: bool,
    in_process: bool,
    cores: usize,
    journal_events: u64,
    journal_baseline_events: u64,
    journal_pairs: usize,
    journal_duration: Duration,
    journal_proofs: usize,
    deadlines_pending: u64,
    deadlines_baseline_pending: u64,
    deadlines_due: u64,
    deadlines_idle: Duration,
    adapters_exchanges: u64,
    adapters_queued: u64,
}

impl Plan {
    fn new(a: &BenchArgs) -> Result<Plan, String> {
        let q = a.quick;
        let secs = |v: Option<f64>, full: f64, quick: f64, what: &str| {
            let s = v.unwrap_or(if q { quick } else { full });
            if s.is_finite() && s >= 0.0 {
                Ok(Duration::from_secs_f64(s))
            } else {
                Err(format!("--{what} must be a non-negative number of seconds"))
            }
        };
        let consumers = a.consumers.unwrap_or(if q { 2 } else { 8 }).max(1);
        let providers = a.providers.unwrap_or(if q { 2 } else { 8 }).max(1);
        let parts = if a.only.is_empty() {
            vec![
                Part::Crypto,
                Part::Exchange,
                Part::Echo,
                Part::Latency,
                Part::Mtom,
                Part::Queued,
                Part::Journal,
                Part::Deadlines,
                Part::Adapters,
                Part::Monitoring,
            ]
        } else {
            a.only.clone()
        };
        Ok(Plan {
            repo: find_repo(&a.repo)?,
            tmp: a.tmp.clone().unwrap_or_else(std::env::temp_dir),
            consumers,
            providers,
            outstanding: a.outstanding.unwrap_or(2 * (consumers + providers)).max(1),
            duration: secs(a.duration, 10.0, 1.0, "duration")?,
            warmup: secs(a.warmup, 2.0, 0.3, "warmup")?,
            parts,
            attachment_bytes: a.attachment_mb.unwrap_or(if q { 4 } else { 1024 }) << 20,
            queued: a.queued.unwrap_or(if q { 2000 } else { 1_000_000 }),
            queued_via: a.queued_via,
            latency_duration: secs(a.latency_seconds, 5.0, 1.0, "latency-seconds")?,
            latency_rate: a.latency_rate,
            crypto_duration: secs(a.crypto_seconds, 2.0, 0.25, "crypto-seconds")?,
            quick: q,
            in_process: a.in_process,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            journal_events: a
                .journal_events
                .unwrap_or(if q { 10_000 } else { 10_000_000 }),
            journal_baseline_events: a.journal_baseline_events.unwrap_or(if q {
                100
            } else {
                10_000
            }),
            journal_pairs: a.journal_pairs.unwrap_or(if q { 1 } else { 2 }).max(1),
            journal_duration: secs(a.journal_seconds, 5.0, 1.0, "journal-seconds")?,
            journal_proofs: a.journal_proofs.unwrap_or(if q { 50 } else { 1000 }).max(1),
            deadlines_pending: a
                .deadlines_pending
                .unwrap_or(if q { 2000 } else { 1_000_000 }),
            deadlines_baseline_pending: a.deadlines_baseline_pending.unwrap_or(if q {
                100
            } else {
                1000
            }),
            deadlines_due: a
                .deadlines_due
                .unwrap_or(if q { 1000 } else { 100_000 })
                .max(1),
            deadlines_idle: secs(
                a.deadlines_idle_seconds,
                10.0,
                1.0,
                "deadlines-idle-seconds",
            )?,
            adapters_exchanges: a
                .adapters_exchanges
                .unwrap_or(if q { 200 } else { 5_000 })
                .max(1),
            adapters_queued: a
                .adapters_queued
                .unwrap_or(if q { 2_000 } else { 100_000 })
                .max(1),
        })
    }

    fn runs(&self, p: Part) -> bool {
        self.parts.contains(&p)
    }
}

fn find_repo(start: &Path) -> Result<PathBuf, String> {
    let start = start
        .canonicalize()
        .map_err(|e| format!("--repo {}: {e}", start.display()))?;
    start
        .ancestors()
        .find(|d| d.join("deploy/sample/registry.toml").is_file() && d.join("keys/test-pki").is_dir())
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            format!(
                "{} is not inside the repository (no deploy/sample/registry.toml and keys/test-pki above it): give --repo",
                start.display()
            )
        })
}

// ---------------------------------------------------------------------------------------
// Clock, memory, CPU

/// The wall clock (MessageIDs, timestamps in calls).
#[allow(clippy::disallowed_methods)]
fn wall() -> SystemTime {
    SystemTime::now()
}

/// The monotonic clock (every duration the bench reports).
#[allow(clippy::disallowed_methods)]
fn mono() -> Instant {
    Instant::now()
}

fn sleep_until(t: Instant) {
    let now = mono();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`).
fn status_kb(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0: `5` > `/proc/self/clear_refs`);
/// whether it worked.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Samples `VmRSS` every 5 ms on its own thread until stopped; the largest value seen.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl RssSampler {
    fn start() -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("mz-rss".into())
            .spawn(move || {
                let mut max = 0;
                while !flag.load(Ordering::Relaxed) {
                    max = max.max(status_kb("VmRSS").unwrap_or(0));
                    std::thread::sleep(Duration::from_millis(5));
                }
                max.max(status_kb("VmRSS").unwrap_or(0))
            })
            .ok();
        RssSampler { stop, thread }
    }
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

/// CPU time per thread (from `/proc/self/task/*/stat`) and of the whole process, in
/// clock ticks (100 per second on Linux).
#[derive(Debug, Default)]
struct CpuSnapshot {
    threads: BTreeMap<u32, (String, u64)>,
    process: u64,
    /// Busy ticks of the whole machine (`/proc/stat`), all CPUs.
    machine: u64,
}

const TICKS_PER_SECOND: f64 = 100.0;

fn stat_ticks(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After the command: field 3 (state) is index 0; utime (14) and stime (15).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

fn cpu_snapshot() -> CpuSnapshot {
    let mut snap = CpuSnapshot::default();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for entry in dir.flatten() {
            let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Some(t) = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|s| stat_ticks(&s))
            {
                snap.threads.insert(tid, t);
            }
        }
    }
    snap.machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().next()?.strip_prefix("cpu ")?.to_string();
            let v: Vec<u64> = line
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal
            Some([0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum())
        })
        .unwrap_or(0);
    snap.process = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| stat_ticks(&s))
        .map_or(0, |(_, t)| t);
    snap
}

pub(crate) fn thread_group(comm: &str) -> &'static str {
    if comm.starts_with("mz-gw") {
        "gateway"
    } else if comm.starts_with("mezhved-store") {
        "store_writer"
    } else if comm.starts_with("mz-load") || comm.starts_with("mz-pace") {
        "clients"
    } else if comm.starts_with("mz-echo") {
        "echo_server"
    } else if comm.starts_with("adapter-store") {
        "adapter_store_writers"
    } else {
        "other"
    }
}

/// CPU seconds per thread group between two snapshots (threads that ended in between
/// count under `other`, from the process total).
fn cpu_split(a: &CpuSnapshot, b: &CpuSnapshot) -> BTreeMap<&'static str, f64> {
    let mut split: BTreeMap<&'static str, f64> = BTreeMap::new();
    let mut named = 0u64;
    for (tid, (comm, ticks)) in &b.threads {
        let before = a.threads.get(tid).map_or(0, |(_, t)| *t);
        let d = ticks.saturating_sub(before);
        named += d;
        *split.entry(thread_group(comm)).or_default() += d as f64 / TICKS_PER_SECOND;
    }
    let total = b.process.saturating_sub(a.process);
    *split.entry("other").or_default() += total.saturating_sub(named) as f64 / TICKS_PER_SECOND;
    split.insert("total", total as f64 / TICKS_PER_SECOND);
    // What other processes on the machine used meanwhile: a noisy neighbour shows here.
    let machine = b.machine.saturating_sub(a.machine);
    split.insert(
        "other_processes",
        machine.saturating_sub(total) as f64 / TICKS_PER_SECOND,
    );
    split
}

// ---------------------------------------------------------------------------------------
// Latency samples

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    SendRequest,
    GetRequest,
    GetRequestEmpty,
    AckRequest,
    SendResponse,
    GetResponse,
    GetResponseEmpty,
    AckResponse,
    Echo,
}

impl Op {
    const ALL: [Op; 9] = [
        Op::SendRequest,
        Op::GetRequest,
        Op::GetRequestEmpty,
        Op::AckRequest,
        Op::SendResponse,
        Op::GetResponse,
        Op::GetResponseEmpty,
        Op::AckResponse,
        Op::Echo,
    ];
    fn name(self) -> &'static str {
        match self {
            Op::SendRequest => "send_request",
            Op::GetRequest => "get_request",
            Op::GetRequestEmpty => "get_request_empty",
            Op::AckRequest => "ack_request",
            Op::SendResponse => "send_response",
            Op::GetResponse => "get_response",
            Op::GetResponseEmpty => "get_response_empty",
            Op::AckResponse => "ack_response",
            Op::Echo => "echo",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
    /// Signatures the gateway makes answering this call.
    fn gateway_signs(self) -> u64 {
        match self {
            Op::SendRequest | Op::GetRequest | Op::SendResponse | Op::GetResponse => 2,
            _ => 0,
        }
    }
}

/// The measured window of a run: only calls answered inside it count.
#[derive(Debug, Clone, Copy)]
struct Window {
    from: Instant,
    to: Instant,
}

impl Window {
    fn contains(&self, t: Instant) -> bool {
        t >= self.from && t <= self.to
    }
    fn seconds(&self) -> f64 {
        (self.to - self.from).as_secs_f64()
    }
}

#[derive(Debug)]
struct Stats {
    /// Microseconds, per [`Op`].
    samples: Vec<Vec<u32>>,
    exchanges: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            samples: vec![Vec::new(); Op::ALL.len()],
            exchanges: 0,
            errors: 0,
            first_error: None,
        }
    }
    fn record(&mut self, w: &Window, op: Op, started: Instant, done: Instant) {
        if w.contains(done) {
            let us = (done - started).as_micros().min(u32::MAX as u128) as u32;
            self.samples[op.index()].push(us);
        }
    }
    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }
    fn merge(&mut self, other: Stats) {
        for (mine, theirs) in self.samples.iter_mut().zip(other.samples) {
            mine.extend(theirs);
        }
        self.exchanges += other.exchanges;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
    fn count(&self, op: Op) -> u64 {
        self.samples[op.index()].len() as u64
    }
    fn calls(&self) -> u64 {
        Op::ALL.iter().map(|&op| self.count(op)).sum()
    }
    fn empty_polls(&self) -> u64 {
        self.count(Op::GetRequestEmpty) + self.count(Op::GetResponseEmpty)
    }
}

/// Count, mean and percentiles (nearest rank) of microsecond samples, in milliseconds.
fn summary(samples: &mut [u32]) -> Value {
    if samples.is_empty() {
        return json!({ "count": 0, "p50_ms": null, "p90_ms": null, "p99_ms": null, "max_ms": null, "mean_ms": null });
    }
    samples.sort_unstable();
    let n = samples.len();
    let at = |q: f64| {
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        samples[rank - 1] as f64 / 1000.0
    };
    let mean = samples.iter().map(|&s| s as f64).sum::<f64>() / n as f64 / 1000.0;
    json!({
        "count": n,
        "p50_ms": round3(at(0.50)),
        "p90_ms": round3(at(0.90)),
        "p99_ms": round3(at(0.99)),
        "max_ms": round3(samples[n - 1] as f64 / 1000.0),
        "mean_ms": round3(mean),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

// ---------------------------------------------------------------------------------------
// The gateway, the echo server, the simulated systems

/// What every part needs: the repository, the systems' keys.
#[derive(Debug)]
struct Env {
    plan: Plan,
    consumer_key: Arc<SigningKey>,
    provider_key: Arc<SigningKey>,
    /// `ds:Signature` elements holding only the certificate, for the no-crypto run.
    consumer_fake: Arc<str>,
    provider_fake: Arc<str>,
    load: tokio::runtime::Runtime,
}

fn runtime(name: &str, threads: usize) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the {name} runtime: {e}"))
}

fn load_key(repo: &Path, name: &str) -> Result<(Arc<SigningKey>, Arc<str>), String> {
    let dir = repo.join("keys/test-pki/ecdsa");
    let cert_path = dir.join(format!("{name}.cert.pem"));
    let key = SigningKey::from_pem_files(&dir.join(format!("{name}.key.pem")), &cert_path)
        .map_err(|e| format!("test key ecdsa/{name}: {e}"))?;
    let pem =
        std::fs::read_to_string(&cert_path).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    // The first certificate's base64 body, as in KeyInfo.
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let fake = format!(
        "<ds:Signature xmlns:ds=\"{DSIG_NS}\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"
    );
    Ok((Arc::new(key), fake.into()))
}

impl Env {
    fn new(plan: Plan) -> Result<Env, String> {
        let (consumer_key, consumer_fake) = load_key(&plan.repo, "consumer-is")?;
        let (provider_key, provider_fake) = load_key(&plan.repo, "provider-is")?;
        let load = runtime("mz-load", plan.cores)?;
        Ok(Env {
            plan,
            consumer_key,
            provider_key,
            consumer_fake,
            provider_fake,
            load,
        })
    }

    fn tempdir(&self, what: &str) -> Result<tempfile::TempDir, String> {
        tempfile::Builder::new()
            .prefix(&format!("mezhved-bench-{what}-"))
            .tempdir_in(&self.plan.tmp)
            .map_err(|e| format!("temporary directory in {}: {e}", self.plan.tmp.display()))
    }

    fn config(&self, data_dir: &Path) -> Config {
        let keys = self.plan.repo.join("keys/test-pki");
        let mut c = Config {
            data_dir: data_dir.to_path_buf(),
            ..Config::default()
        };
        c.gateway_key.key = keys.join("ecdsa/gateway.key.pem");
        c.gateway_key.certificate = keys.join("ecdsa/gateway.cert.pem");
        c.trust.dir = keys.join("trust");
        c.registry.file = self.plan.repo.join("deploy/sample/registry.toml");
        c.server.listen = "127.0.0.1:0".into();
        c.server.shutdown_grace_seconds = 5;
        // The monitoring part polls the operator's API with it.
        c.operator.token_sha256 =
            hex::encode(sha2::Sha256::digest(BENCH_OPERATOR_TOKEN.as_bytes()));
        // … and the dashboard's overview page, as a logged-in operator over plain http.
        c.dashboard.insecure_cookies = true;
        c.dashboard.users = vec![mezhved_http::config::DashboardUserConfig {
            name: BENCH_DASHBOARD_USER.0.into(),
            role: "operator".into(),
            password_hash: bench_dashboard_hash().to_string(),
        }];
        c
    }

    fn consumer(&self, endpoint: &str, signed: bool) -> Result<System, String> {
        System::new(
            endpoint,
            if signed {
                Signing::Key(self.consumer_key.clone())
            } else {
                Signing::Fake(self.consumer_fake.clone())
            },
        )
    }

    fn provider(&self, endpoint: &str, signed: bool) -> Result<System, String> {
        System::new(
            endpoint,
            if signed {
                Signing::Key(self.provider_key.clone())
            } else {
                Signing::Fake(self.provider_fake.clone())
            },
        )
    }
}

/// A gateway served on its own runtime.
struct Host {
    rt: tokio::runtime::Runtime,
    endpoint: String,
    /// `http://127.0.0.1:<port>`.
    base: String,
    store: Arc<dyn Store>,
    config: Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
    dir: Option<tempfile::TempDir>,
    open_seconds: f64,
}

impl Host {
    fn start(env: &Env, signatures: bool, what: &str) -> Result<Host, String> {
        let dir = env.tempdir(what)?;
        Host::start_in(env, signatures, dir)
    }

    /// Opens and serves a gateway on `dir` (kept, and handed back by [`Host::stop`]).
    fn start_in(env: &Env, signatures: bool, dir: tempfile::TempDir) -> Result<Host, String> {
        Host::start_with(env, signatures, dir, SqliteOptions::default(), false)
    }

    /// [`Host::start_in`] with the store's options (the journal off:
    /// [`Gateway::open_with`]) and, if `auditor`, the bench's auditor
    /// ([`BENCH_AUDITOR_TOKEN`]) configured for `/api/v1/journal`.
    fn start_with(
        env: &Env,
        signatures: bool,
        dir: tempfile::TempDir,
        store_options: SqliteOptions,
        auditor: bool,
    ) -> Result<Host, String> {
        let rt = runtime("mz-gw", env.plan.cores)?;
        let mut config = env.config(dir.path());
        if auditor {
            config.auditors.push(AuditorConfig {
                name: BENCH_AUDITOR.into(),
                token_sha256: hex::encode(sha2::Sha256::digest(BENCH_AUDITOR_TOKEN.as_bytes())),
            });
        }
        let t0 = mono();
        let mut gateway = rt
            .block_on(Gateway::open_with(
                config.clone(),
                Arc::new(SystemClock),
                store_options,
            ))
            .map_err(|e| format!("the gateway does not open: {e}"))?;
        let open_seconds = (mono() - t0).as_secs_f64();
        if !signatures {
            gateway
                .disable_signatures_for_bench()
                .map_err(|e| e.to_string())?;
        }
        let store = gateway.state.store.clone();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = rt.spawn(async move {
            gateway
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
                .map_err(|e| e.to_string())
        });
        Ok(Host {
            rt,
            endpoint: format!("http://{addr}/smev/v1.1"),
            base: format!("http://{addr}"),
            store,
            config,
            stop: Some(stop),
            task: Some(task),
            dir: Some(dir),
            open_seconds,
        })
    }

    /// Stops serving, closes the store; hands back the data directory.
    fn stop(mut self) -> Result<tempfile::TempDir, String> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            self.rt
                .block_on(t)
                .map_err(|e| format!("the gateway task failed: {e}"))??;
        }
        self.dir
            .take()
            .ok_or_else(|| "the data directory is gone".to_string())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = self.rt.block_on(t);
        }
    }
}

/// How a simulated system signs its calls.
#[derive(Debug, Clone)]
enum Signing {
    /// Really (SMEV profile, its ECDSA key).
    Key(Arc<SigningKey>),
    /// Not at all: a `ds:Signature` with only the certificate (the gateway's
    /// no-signature path identifies the caller by it).
    Fake(Arc<str>),
}

/// A simulated information system: its own keep-alive connection and key.
#[derive(Debug, Clone)]
struct System {
    client: Client,
    signing: Signing,
}

impl System {
    fn new(endpoint: &str, signing: Signing) -> Result<System, String> {
        Ok(System {
            client: Client::new(endpoint).map_err(|e| e.to_string())?,
            signing,
        })
    }

    fn prepare(&self, call: Outgoing) -> Result<Outgoing, String> {
        match &self.signing {
            Signing::Key(k) => call.sign(&**k).map_err(|e| format!("signing: {e}")),
            Signing::Fake(sig) => Ok(with_fake_signature(call, sig)),
        }
    }

    /// Sends; an answer other than HTTP 200 is an error. Returns when it was sent and
    /// answered.
    async fn call(&self, call: &Outgoing) -> Result<(Reply, Instant, Instant), String> {
        let t0 = mono();
        let reply = self.client.call(call).await.map_err(|e| e.to_string())?;
        let t1 = mono();
        check(&reply)?;
        Ok((reply, t0, t1))
    }
}

fn check(reply: &Reply) -> Result<(), String> {
    if reply.status == 200 {
        return Ok(());
    }
    let text = reply.text();
    Err(format!(
        "HTTP {}: {} {}",
        reply.status,
        reply.fault().unwrap_or_default(),
        text.chars().take(300).collect::<String>()
    ))
}

fn with_fake_signature(mut call: Outgoing, signature: &str) -> Outgoing {
    const EMPTY: &str = "<ns:CallerInformationSystemSignature/>";
    let text = String::from_utf8_lossy(&call.envelope).replacen(
        EMPTY,
        &format!(
            "<ns:CallerInformationSystemSignature>{signature}</ns:CallerInformationSystemSignature>"
        ),
        1,
    );
    call.envelope = text.into_bytes();
    call
}

/// A birth-record request like the black-box tests send, dated now.
fn birth_request(marker: u64) -> Request {
    let now = wall();
    let today = chrono::DateTime::<chrono::Utc>::from(now)
        .date_naive()
        .to_string();
    Request {
        message_id: client::message_id(now),
        content: format!(
            "<b:{BIRTH_ROOT} xmlns:b=\"{BIRTH_NS}\"><b:Surname>Ivanova</b:Surname><b:BirthDate>2019-05-14</b:BirthDate><b:Note>bench {marker}</b:Note></b:{BIRTH_ROOT}>"
        ),
        card: Some(
            RequestCard::complete(CONSUMER_AGENCY, PROVIDER_AGENCY, &today, "USZN-2026/0001")
                .to_xml(),
        ),
        attachments: Vec::new(),
        reference_message_id: None,
        eol: None,
        test: false,
    }
}

fn birth_response(reply_to: &str) -> Outgoing {
    client::send_response(
        client::message_id(wall()),
        reply_to,
        &ResponseContent::Data(format!(
            "<r:BirthRecordResponse xmlns:r=\"{BIRTH_NS}\"><r:RecordNumber>120199000012</r:RecordNumber></r:BirthRecordResponse>"
        )),
        &[],
    )
}

/// The message a Get… answer delivered: its global ID and ReplyTo (one parse).
struct Delivered {
    global_id: String,
    reply_to: Option<String>,
}

fn delivered(reply: &Reply) -> Result<Option<Delivered>, String> {
    let doc = reply.document().map_err(|e| e.to_string())?;
    let Some(id) = client::find(&doc, TYPES_NS, "MessageId") else {
        return Ok(None);
    };
    Ok(Some(Delivered {
        global_id: doc.text(id).trim().to_string(),
        reply_to: client::find(&doc, TYPES_NS, "ReplyTo").map(|n| doc.text(n).trim().to_string()),
    }))
}

/// Shared state of one load run.
#[derive(Debug)]
struct Load {
    stop: AtomicBool,
    /// Exchanges sent and not yet acknowledged by a consumer.
    outstanding: AtomicI64,
    cap: i64,
    /// Consumers send SendRequests (not in the paced run, whose sender is separate).
    sends: bool,
    window: Window,
    marker: AtomicU64,
}

/// Waiting after a poll that found nothing.
struct Backoff(Duration);

impl Backoff {
    const MIN: Duration = Duration::from_millis(1);
    const MAX: Duration = Duration::from_millis(16);
    fn new() -> Backoff {
        Backoff(Backoff::MIN)
    }
    fn reset(&mut self) {
        self.0 = Backoff::MIN;
    }
    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Backoff::MAX);
    }
}

async fn consumer(sys: System, load: Arc<Load>) -> Stats {
    let w = load.window;
    let mut st = Stats::new();
    let mut idle = Backoff::new();
    while !load.stop.load(Ordering::Relaxed) {
        let mut progressed = false;
        if load.sends {
            if load.outstanding.fetch_add(1, Ordering::AcqRel) < load.cap {
                let marker = load.marker.fetch_add(1, Ordering::Relaxed);
                let sent = match sys.prepare(client::send_request(&birth_request(marker))) {
                    Ok(call) => sys.call(&call).await,
                    Err(e) => Err(e),
                };
                match sent {
                    Ok((_, t0, t1)) => {
                        st.record(&w, Op::SendRequest, t0, t1);
                        progressed = true;
                    }
                    Err(e) => {
                        load.outstanding.fetch_sub(1, Ordering::AcqRel);
                        st.error(e);
                    }
                }
            } else {
                load.outstanding.fetch_sub(1, Ordering::AcqRel);
            }
        }
        match poll_response(&sys, &load, &mut st).await {
            Ok(got) => progressed |= got,
            Err(e) => st.error(e),
        }
        if progressed {
            idle.reset();
        } else {
            idle.wait().await;
        }
    }
    st
}

/// GetResponse and, if it delivered something, Ack: whether it did.
async fn poll_response(sys: &System, load: &Load, st: &mut Stats) -> Result<bool, String> {
    let w = load.window;
    let call = sys.prepare(client::get_response(None, wall()))?;
    let (reply, t0, t1) = sys.call(&call).await?;
    let Some(d) = delivered(&reply)? else {
        st.record(&w, Op::GetResponseEmpty, t0, t1);
        return Ok(false);
    };
    st.record(&w, Op::GetResponse, t0, t1);
    let ack = sys.prepare(client::ack(&d.global_id, true, None))?;
    let (_, a0, a1) = sys.call(&ack).await?;
    st.record(&w, Op::AckResponse, a0, a1);
    load.outstanding.fetch_sub(1, Ordering::AcqRel);
    if w.contains(a1) {
        st.exchanges += 1;
    }
    Ok(true)
}

async fn provider(sys: System, load: Arc<Load>) -> Stats {
    let mut st = Stats::new();
    let mut idle = Backoff::new();
    while !load.stop.load(Ordering::Relaxed) {
        match serve_request(&sys, &load, &mut st).await {
            Ok(true) => idle.reset(),
            Ok(false) => idle.wait().await,
            Err(e) => {
                st.error(e);
                idle.wait().await;
            }
        }
    }
    st
}

/// GetRequest; if it delivered a request: Ack, then SendResponse. Whether it did.
async fn serve_request(sys: &System, load: &Load, st: &mut Stats) -> Result<bool, String> {
    let w = load.window;
    let call = sys.prepare(client::get_request(None, wall()))?;
    let (reply, t0, t1) = sys.call(&call).await?;
    let Some(d) = delivered(&reply)? else {
        st.record(&w, Op::GetRequestEmpty, t0, t1);
        return Ok(false);
    };
    st.record(&w, Op::GetRequest, t0, t1);
    let reply_to = d
        .reply_to
        .ok_or_else(|| format!("request {} delivered without ReplyTo", d.global_id))?;
    let ack = sys.prepare(client::ack(&d.global_id, true, None))?;
    let (_, a0, a1) = sys.call(&ack).await?;
    st.record(&w, Op::AckRequest, a0, a1);
    let answer = sys.prepare(birth_response(&reply_to))?;
    let (_, s0, s1) = sys.call(&answer).await?;
    st.record(&w, Op::SendResponse, s0, s1);
    Ok(true)
}

/// The result of a closed-loop run.
#[derive(Debug)]
struct RunResult {
    stats: Stats,
    window: Window,
    cpu: BTreeMap<&'static str, f64>,
}

impl RunResult {
    fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.window.seconds()
    }
    fn exchanges_per_s(&self) -> f64 {
        self.per_second(self.stats.exchanges)
    }
    fn calls_per_s(&self) -> f64 {
        self.per_second(self.stats.calls())
    }
    fn json(&mut self, crypto: Option<&CryptoResult>) -> Value {
        let s = &mut self.stats;
        let calls = s.calls();
        let empty = s.empty_polls();
        let seconds = self.window.seconds();
        let exchanges = s.exchanges;
        let mut ops = serde_json::Map::new();
        for op in Op::ALL {
            if op == Op::Echo && s.count(op) == 0 {
                continue;
            }
            ops.insert(op.name().into(), summary(&mut s.samples[op.index()]));
        }
        let per_exchange = |v: f64| {
            if exchanges > 0 {
                Value::from(round1(v * 1e6 / exchanges as f64))
            } else {
                Value::Null
            }
        };
        let cpu: serde_json::Map<String, Value> = self
            .cpu
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(round3(*v))))
            .collect();
        let cpu_per_exchange: serde_json::Map<String, Value> = self
            .cpu
            .iter()
            .filter(|(k, _)| **k != "other_processes")
            .map(|(k, v)| (k.to_string(), per_exchange(*v)))
            .collect();
        let mut out = json!({
            "seconds": round3(seconds),
            "exchanges": exchanges,
            "exchanges_per_s": round1(exchanges as f64 / seconds),
            "calls": calls,
            "calls_per_s": round1(calls as f64 / seconds),
            "useful_calls_per_s": round1((calls - empty) as f64 / seconds),
            "empty_polls": empty,
            "calls_per_exchange": if exchanges > 0 { Value::from(round3(calls as f64 / exchanges as f64)) } else { Value::Null },
            "errors": s.errors,
            "first_error": s.first_error,
            "ops": ops,
            "cpu_seconds": cpu,
            "cpu_us_per_exchange": cpu_per_exchange,
        });
        if let Some(c) = crypto {
            // The crypto work this run really did (every call signed by its caller and
            // verified by the gateway, empty polls included; the gateway's signatures
            // per answer), at the measured single-core costs.
            let gateway_signs: u64 = Op::ALL
                .iter()
                .map(|&op| s.count(op) * op.gateway_signs())
                .sum();
            let crypto_seconds =
                (calls + gateway_signs) as f64 * c.sign_us / 1e6 + calls as f64 * c.verify_us / 1e6;
            let total_cpu = self.cpu.get("total").copied().unwrap_or(0.0);
            out["crypto_us_per_exchange"] = json!({
                "clients": round1(CLIENT_SIGNS as f64 * c.sign_us),
                "gateway": round1(GATEWAY_SIGNS as f64 * c.sign_us + GATEWAY_VERIFIES as f64 * c.verify_us),
            });
            out["crypto_work"] = json!({
                "client_signs": calls,
                "gateway_signs": gateway_signs,
                "gateway_verifies": calls,
                "cpu_seconds": round3(crypto_seconds),
                "share_of_process_cpu": if total_cpu > 0.0 { Value::from(round3(crypto_seconds / total_cpu)) } else { Value::Null },
            });
        }
        out
    }
}

/// Runs `consumers` and `providers` against `endpoint` for warm-up + duration.
fn run_exchange_load(env: &Env, endpoint: &str, signed: bool) -> Result<RunResult, String> {
    run_exchange_load_for(env, endpoint, signed, env.plan.duration)
}

/// [`run_exchange_load`] measured for `duration` (after the plan's warm-up).
fn run_exchange_load_for(
    env: &Env,
    endpoint: &str,
    signed: bool,
    duration: Duration,
) -> Result<RunResult, String> {
    let p = &env.plan;
    let start = mono();
    let window = Window {
        from: start + p.warmup,
        to: start + p.warmup + duration,
    };
    let load = Arc::new(Load {
        stop: AtomicBool::new(false),
        outstanding: AtomicI64::new(0),
        cap: p.outstanding as i64,
        sends: true,
        window,
        marker: AtomicU64::new(0),
    });
    let mut tasks = Vec::new();
    for _ in 0..p.consumers {
        let sys = env.consumer(endpoint, signed)?;
        tasks.push(env.load.spawn(consumer(sys, load.clone())));
    }
    for _ in 0..p.providers {
        let sys = env.provider(endpoint, signed)?;
        tasks.push(env.load.spawn(provider(sys, load.clone())));
    }
    let stats = finish_load(env, &load, tasks)?;
    Ok(stats)
}

/// Waits through the window (taking CPU snapshots at its ends), stops the tasks and
/// merges their samples.
fn finish_load(
    env: &Env,
    load: &Load,
    tasks: Vec<tokio::task::JoinHandle<Stats>>,
) -> Result<RunResult, String> {
    sleep_until(load.window.from);
    let c0 = cpu_snapshot();
    sleep_until(load.window.to);
    let c1 = cpu_snapshot();
    load.stop.store(true, Ordering::Relaxed);
    let mut stats = Stats::new();
    for t in tasks {
        stats.merge(
            env.load
                .block_on(t)
                .map_err(|e| format!("a simulated system failed: {e}"))?,
        );
    }
    Ok(RunResult {
        stats,
        window: load.window,
        cpu: cpu_split(&c0, &c1),
    })
}

// ---------------------------------------------------------------------------------------
// Crypto bound

#[derive(Debug, Clone)]
struct CryptoResult {
    threads: usize,
    signs_per_s: f64,
    verifies_per_s: f64,
    /// Single-core cost of one operation (threads / all-core rate).
    sign_us: f64,
    verify_us: f64,
    single_thread_sign_us: f64,
    single_thread_verify_us: f64,
    bound: f64,
}

/// Operations per second of `f` on `threads` threads for `d`.
fn rate(
    threads: usize,
    d: Duration,
    f: &(dyn Fn() -> Result<(), String> + Sync),
) -> Result<f64, String> {
    let t0 = mono();
    let deadline = t0 + d;
    let counts: Vec<Result<u64, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                std::thread::Builder::new()
                    .name("mz-crypto".into())
                    .spawn_scoped(s, || {
                        let mut n = 0u64;
                        while mono() < deadline {
                            for _ in 0..8 {
                                f()?;
                            }
                            n += 8;
                        }
                        Ok(n)
                    })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err("a crypto thread panicked".into())),
                Err(e) => Err(format!("cannot start a thread: {e}")),
            })
            .collect()
    });
    let elapsed = (mono() - t0).as_secs_f64();
    let mut total = 0;
    for c in counts {
        total += c?;
    }
    Ok(total as f64 / elapsed)
}

fn phase_crypto(env: &Env) -> Result<CryptoResult, String> {
    let p = &env.plan;
    let key = env.consumer_key.clone();
    let public = key
        .certificate()
        .public_key()
        .map_err(|e| format!("public key: {e}"))?;
    // A canonical SignedInfo of the size the gateway and the clients sign (one Reference,
    // SMEV transforms): what one signature operation hashes.
    let data = format!(
        "<ds:SignedInfo xmlns:ds=\"{DSIG_NS}\"><ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"></ds:CanonicalizationMethod><ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256\"></ds:SignatureMethod><ds:Reference URI=\"#SIGNED_BY_CONSUMER\"><ds:Transforms><ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"></ds:Transform><ds:Transform Algorithm=\"urn://smev-gov-ru/xmldsig/transform\"></ds:Transform></ds:Transforms><ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"></ds:DigestMethod><ds:DigestValue>q2HvHq3nCqvU7r2D0Ew0XSKpD3tCq0K3b5l5c7b0Zc8=</ds:DigestValue></ds:Reference></ds:SignedInfo>"
    )
    .into_bytes();
    let signature = key.sign(&data).map_err(|e| e.to_string())?;
    let alg = key.algorithm();
    let sign = || key.sign(&data).map(drop).map_err(|e| e.to_string());
    let verify =
        || mezhved_dsig::crypto::verify(alg, &public, &data, &signature).map_err(|e| e.to_string());
    let threads = p.cores;
    let single = p.crypto_duration / 2;
    let single_sign = rate(1, single, &sign)?;
    let single_verify = rate(1, single, &verify)?;
    let signs_per_s = rate(threads, p.crypto_duration, &sign)?;
    let verifies_per_s = rate(threads, p.crypto_duration, &verify)?;
    let signs = (CLIENT_SIGNS + GATEWAY_SIGNS) as f64;
    let verifies = (GATEWAY_VERIFIES + CLIENT_VERIFIES) as f64;
    let bound = 1.0 / (signs / signs_per_s + verifies / verifies_per_s);
    Ok(CryptoResult {
        threads,
        signs_per_s,
        verifies_per_s,
        sign_us: threads as f64 * 1e6 / signs_per_s,
        verify_us: threads as f64 * 1e6 / verifies_per_s,
        single_thread_sign_us: 1e6 / single_sign,
        single_thread_verify_us: 1e6 / single_verify,
        bound,
    })
}

impl CryptoResult {
    fn json(&self) -> Value {
        json!({
            "algorithm": "ECDSA P-256 / SHA-256 (OpenSSL, mezhved_dsig::crypto)",
            "threads": self.threads,
            "signs_per_s": round1(self.signs_per_s),
            "verifies_per_s": round1(self.verifies_per_s),
            "sign_us_per_core": round3(self.sign_us),
            "verify_us_per_core": round3(self.verify_us),
            "single_thread_sign_us": round3(self.single_thread_sign_us),
            "single_thread_verify_us": round3(self.single_thread_verify_us),
            "signs_per_exchange": { "clients": CLIENT_SIGNS, "gateway": GATEWAY_SIGNS, "total": CLIENT_SIGNS + GATEWAY_SIGNS },
            "verifies_per_exchange": { "clients": CLIENT_VERIFIES, "gateway": GATEWAY_VERIFIES, "total": CLIENT_VERIFIES + GATEWAY_VERIFIES },
            "bound_exchanges_per_s": round1(self.bound),
        })
    }
}

// ---------------------------------------------------------------------------------------
// The bare echo server

fn start_echo(
    rt: &tokio::runtime::Runtime,
) -> Result<(String, tokio::sync::oneshot::Sender<()>), String> {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(async move {
        loop {
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(_) => continue,
                },
                _ = &mut stopped => break,
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        let mut response = hyper::Response::new(http_body_util::Full::new(body));
                        response.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("text/xml; charset=utf-8"),
                        );
                        Ok::<_, hyper::Error>(response)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((format!("http://{addr}/echo"), stop))
}

async fn echo_caller(
    client: Client,
    bodies: Arc<Vec<Outgoing>>,
    first: usize,
    load: Arc<Load>,
) -> Stats {
    let w = load.window;
    let mut st = Stats::new();
    let mut i = first;
    while !load.stop.load(Ordering::Relaxed) {
        let body = &bodies[i % bodies.len()];
        i += 1;
        let t0 = mono();
        match client.call(body).await {
            Ok(r) if r.status == 200 && r.envelope.len() == body.envelope.len() => {
                st.record(&w, Op::Echo, t0, mono());
            }
            Ok(r) => st.error(format!(
                "echo: HTTP {}, {} bytes",
                r.status,
                r.envelope.len()
            )),
            Err(e) => st.error(e.to_string()),
        }
    }
    st
}

/// The six calls of one exchange as the no-crypto run sends them.
fn exchange_bodies(env: &Env) -> Result<Vec<Outgoing>, String> {
    let c = Signing::Fake(env.consumer_fake.clone());
    let p = Signing::Fake(env.provider_fake.clone());
    let fake = |s: &Signing, call: Outgoing| match s {
        Signing::Fake(sig) => Ok(with_fake_signature(call, sig)),
        Signing::Key(_) => Err("unreachable".to_string()),
    };
    let gid = "1f0c5d4e-8a3b-6c2d-8e1f-010000010001";
    let reply_to = format!("mezhved:reply:{gid}");
    Ok(vec![
        fake(&c, client::send_request(&birth_request(0)))?,
        fake(&p, client::get_request(None, wall()))?,
        fake(&p, client::ack(gid, true, None))?,
        fake(&p, birth_response(&reply_to))?,
        fake(&c, client::get_response(None, wall()))?,
        fake(&c, client::ack(gid, true, None))?,
    ])
}

fn run_echo(env: &Env) -> Result<RunResult, String> {
    let p = &env.plan;
    let rt = runtime("mz-echo", p.cores)?;
    let (endpoint, stop) = start_echo(&rt)?;
    let bodies = Arc::new(exchange_bodies(env)?);
    let start = mono();
    let window = Window {
        from: start + p.warmup,
        to: start + p.warmup + p.duration,
    };
    let load = Arc::new(Load {
        stop: AtomicBool::new(false),
        outstanding: AtomicI64::new(0),
        cap: 0,
        sends: false,
        window,
        marker: AtomicU64::new(0),
    });
    let mut tasks = Vec::new();
    for i in 0..p.consumers + p.providers {
        let client = Client::new(&endpoint).map_err(|e| e.to_string())?;
        tasks.push(
            env.load
                .spawn(echo_caller(client, bodies.clone(), i, load.clone())),
        );
    }
    let result = finish_load(env, &load, tasks);
    let _ = stop.send(());
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

// ---------------------------------------------------------------------------------------
// Paced latency

fn phase_latency(env: &Env, rate_per_s: f64) -> Result<Value, String> {
    let p = &env.plan;
    let host = Host::start(env, true, "latency")?;
    let rate_per_s = rate_per_s.max(1.0);
    let interval = Duration::from_secs_f64(1.0 / rate_per_s);
    let total = p.warmup + p.latency_duration;
    let n = (total.as_secs_f64() * rate_per_s).ceil() as usize;
    // Signed ahead, so the paced sender does nothing but send.
    let sender = env.consumer(&host.endpoint, true)?;
    let mut calls = Vec::with_capacity(n);
    for i in 0..n {
        calls.push(sender.prepare(client::send_request(&birth_request(i as u64)))?);
    }
    let start = mono() + Duration::from_millis(50);
    let window = Window {
        from: start + p.warmup,
        to: start + total + Duration::from_secs(2),
    };
    let load = Arc::new(Load {
        stop: AtomicBool::new(false),
        outstanding: AtomicI64::new(0),
        cap: 0,
        sends: false,
        window,
        marker: AtomicU64::new(0),
    });
    let mut pollers = Vec::new();
    for _ in 0..p.consumers {
        let sys = env.consumer(&host.endpoint, true)?;
        pollers.push(env.load.spawn(consumer(sys, load.clone())));
    }
    for _ in 0..p.providers {
        let sys = env.provider(&host.endpoint, true)?;
        pollers.push(env.load.spawn(provider(sys, load.clone())));
    }
    let c0 = cpu_snapshot();
    let client = sender.client.clone();
    // The paced sender: this thread sleeps to each send time (the OS timer, to tens of
    // µs; tokio's timer rounds up to the next millisecond) and hands the call to a
    // runtime of its own, so the send waits neither for a timer tick nor behind the
    // pollers' signing on the load runtime: that delay would be the load generator's,
    // not the gateway's.
    let pace = runtime("mz-pace", 1)?;
    let mut inflight = Vec::with_capacity(calls.len());
    for (i, call) in calls.into_iter().enumerate() {
        let at = start + interval * i as u32;
        sleep_until(at);
        let c = client.clone();
        inflight.push(pace.spawn(async move {
            let sent = mono();
            let r = c.call(&call).await;
            let done = mono();
            (
                at,
                sent,
                done,
                r.map_err(|e| e.to_string()).and_then(|r| check(&r)),
            )
        }));
    }
    let mut results = Vec::with_capacity(inflight.len());
    for h in inflight {
        if let Ok(x) = pace.block_on(h) {
            results.push(x);
        }
    }
    drop(pace);
    let sends_done = mono();
    let c1 = cpu_snapshot();
    load.stop.store(true, Ordering::Relaxed);
    let mut polls = Stats::new();
    for t in pollers {
        polls.merge(env.load.block_on(t).map_err(|e| e.to_string())?);
    }
    host.stop()?;
    let measured_from = start + p.warmup;
    let mut from_schedule = Vec::new();
    let mut service = Vec::new();
    let mut errors = 0u64;
    let mut first_error = None;
    let mut lateness = Vec::new();
    for (at, sent, done, r) in &results {
        if *at < measured_from {
            continue;
        }
        if let Err(e) = r {
            errors += 1;
            first_error.get_or_insert_with(|| e.clone());
            continue;
        }
        lateness.push((*sent - *at).as_micros().min(u32::MAX as u128) as u32);
        from_schedule.push((*done - *at).as_micros().min(u32::MAX as u128) as u32);
        service.push((*done - *sent).as_micros().min(u32::MAX as u128) as u32);
    }
    let measured_seconds = p.latency_duration.as_secs_f64();
    let mut ops = serde_json::Map::new();
    for op in Op::ALL {
        if op == Op::SendRequest || op == Op::Echo {
            continue;
        }
        ops.insert(op.name().into(), summary(&mut polls.samples[op.index()]));
    }
    let cpu = cpu_split(&c0, &c1);
    let elapsed = (sends_done - start).as_secs_f64().max(1e-9);
    Ok(json!({
        "target_exchanges_per_s": round1(rate_per_s),
        "seconds": round3(measured_seconds),
        "send_requests": from_schedule.len(),
        "send_requests_per_s": round1(from_schedule.len() as f64 / measured_seconds),
        "exchanges_completed": polls.exchanges,
        "send_request": summary(&mut from_schedule),
        "send_request_service": summary(&mut service),
        "send_lateness": summary(&mut lateness),
        "errors": errors + polls.errors,
        "first_error": first_error.or(polls.first_error),
        "ops": ops,
        "cpu_utilisation": round3(cpu.get("total").copied().unwrap_or(0.0) / elapsed / p.cores as f64),
    }))
}

// ---------------------------------------------------------------------------------------
// MTOM

/// A deterministic pseudo-random byte stream of `len` bytes, hashed as it is produced.
fn generator(len: u64, hasher: Arc<Mutex<sha2::Sha256>>) -> client::PartStream {
    const CHUNK: u64 = 256 * 1024;
    Box::pin(futures_util::stream::unfold(
        (0u64, 0x9E37_79B9_7F4A_7C15u64),
        move |(sent, mut x)| {
            let hasher = hasher.clone();
            async move {
                if sent >= len {
                    return None;
                }
                let n = CHUNK.min(len - sent) as usize;
                let mut buf = vec![0u8; n];
                for word in buf.chunks_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let b = x.to_le_bytes();
                    word.copy_from_slice(&b[..word.len()]);
                }
                hasher
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .update(&buf);
                Some((Ok(Bytes::from(buf)), (sent + n as u64, x)))
            }
        },
    ))
}

fn sha256_file(path: &Path) -> Result<[u8; 32], String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

fn phase_mtom(env: &Env) -> Result<Value, String> {
    let size = env.plan.attachment_bytes;
    let host = Host::start(env, true, "mtom")?;
    let consumer = env.consumer(&host.endpoint, true)?;
    let provider = env.provider(&host.endpoint, true)?;
    let download = env.tempdir("mtom-download")?;
    // Warm both connections and the trust store's caches, so the baseline includes them.
    let warm = consumer.prepare(client::get_response(None, wall()))?;
    env.load.block_on(consumer.call(&warm))?;
    let warm = provider.prepare(client::get_status(wall()))?;
    env.load.block_on(provider.call(&warm))?;

    let rss_before = status_kb("VmRSS").unwrap_or(0);
    let hwm_before = status_kb("VmHWM").unwrap_or(0);
    let hwm_reset = reset_peak_rss();
    let hwm_after_reset = status_kb("VmHWM").unwrap_or(0);
    let sampler = RssSampler::start();

    let mut request = birth_request(1);
    request.attachments = vec![Attachment {
        content_id: "scan-large".into(),
        mime_type: "application/octet-stream".into(),
        data: Bytes::new(),
        mtom: true,
    }];
    let call = consumer.prepare(client::send_request(&request))?;
    let hasher = Arc::new(Mutex::new(sha2::Sha256::new()));
    let part = StreamedPart {
        content_id: "scan-large".into(),
        mime_type: "application/octet-stream".into(),
        length: Some(size),
        stream: generator(size, hasher.clone()),
    };
    let t0 = mono();
    let sent = env
        .load
        .block_on(
            consumer
                .client
                .call_streamed(&call.envelope, vec![part], None),
        )
        .map_err(|e| format!("SendRequest with {size} bytes: {e}"))?;
    let t1 = mono();
    check(&sent)?;
    let sent_digest: [u8; 32] =
        std::mem::take(&mut *hasher.lock().unwrap_or_else(|e| e.into_inner()))
            .finalize()
            .into();

    let get = provider.prepare(client::get_request(None, wall()))?;
    let got = env
        .load
        .block_on(provider.client.call_to_dir(&get, download.path()))
        .map_err(|e| format!("GetRequest: {e}"))?;
    let t2 = mono();
    check(&got)?;
    let d = delivered(&got)?.ok_or("GetRequest delivered nothing")?;
    let (_, path) = got
        .parts
        .first()
        .ok_or("the delivery carries no MTOM part")?;
    let path = PathBuf::from(String::from_utf8_lossy(path).into_owned());
    let received = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
    let got_digest = sha256_file(&path)?;
    let t3 = mono();
    let ack = provider.prepare(client::ack(&d.global_id, true, None))?;
    env.load.block_on(provider.call(&ack))?;
    let t4 = mono();
    let rss_peak = sampler.finish();
    let hwm_after = status_kb("VmHWM").unwrap_or(0);
    let rss_after = status_kb("VmRSS").unwrap_or(0);
    let _ = std::fs::remove_file(&path);
    host.stop()?;
    let mb = size as f64 / 1e6;
    let growth_kb = rss_peak.saturating_sub(rss_before);
    let hwm_growth_kb = if hwm_reset {
        hwm_after.saturating_sub(hwm_after_reset.max(rss_before))
    } else {
        hwm_after.saturating_sub(hwm_before)
    };
    Ok(json!({
        "attachment_bytes": size,
        "sha256_match": sent_digest == got_digest && received == size,
        "received_bytes": received,
        "upload_seconds": round3((t1 - t0).as_secs_f64()),
        "upload_mb_per_s": round1(mb / (t1 - t0).as_secs_f64()),
        "download_seconds": round3((t2 - t1).as_secs_f64()),
        "download_mb_per_s": round1(mb / (t2 - t1).as_secs_f64()),
        "verify_seconds": round3((t3 - t2).as_secs_f64()),
        "ack_seconds": round3((t4 - t3).as_secs_f64()),
        "rss_before_kb": rss_before,
        "rss_peak_sampled_kb": rss_peak,
        "rss_after_kb": rss_after,
        "rss_growth_kb": growth_kb,
        "rss_growth_mb": round1(growth_kb as f64 / 1024.0),
        "vm_hwm_before_kb": hwm_before,
        "vm_hwm_reset": hwm_reset,
        "vm_hwm_after_reset_kb": hwm_after_reset,
        "vm_hwm_after_kb": hwm_after,
        "vm_hwm_growth_kb": hwm_growth_kb,
    }))
}

// ---------------------------------------------------------------------------------------
// A backlog of queued messages

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn phase_queued(env: &Env) -> Result<Value, String> {
    let n = env.plan.queued;
    let rss_start = status_kb("VmRSS").unwrap_or(0);
    let t0 = mono();
    let (host, via) = match env.plan.queued_via {
        QueueVia::Store => {
            let host = Host::start(env, true, "queued")?;
            enqueue_via_store(env, &host, n)?;
            (host, "store")
        }
        QueueVia::Http => {
            let nocrypto = Host::start(env, false, "queued")?;
            enqueue_via_http(env, &nocrypto, n)?;
            let dir = nocrypto.stop()?;
            (Host::start_in(env, true, dir)?, "http")
        }
    };
    let enqueue_seconds = (mono() - t0).as_secs_f64();
    let rss_after_enqueue = status_kb("VmRSS").unwrap_or(0);
    let hwm_after_enqueue = status_kb("VmHWM").unwrap_or(0);
    let db = host.config.database_path();
    let db_bytes = file_size(&db);
    let wal_bytes = file_size(&PathBuf::from(format!("{}-wal", db.display())));

    // GetRequest + Ack against the backlog, a few times.
    let provider = env.provider(&host.endpoint, true)?;
    let mut get_us = Vec::new();
    let mut ack_us = Vec::new();
    let mut both_us = Vec::new();
    for _ in 0..5 {
        let get = provider.prepare(client::get_request(None, wall()))?;
        let (reply, g0, g1) = env.load.block_on(provider.call(&get))?;
        let d = delivered(&reply)?.ok_or("GetRequest found nothing in the backlog")?;
        let ack = provider.prepare(client::ack(&d.global_id, true, None))?;
        let (_, a0, a1) = env.load.block_on(provider.call(&ack))?;
        get_us.push((g1 - g0).as_micros() as u32);
        ack_us.push((a1 - a0).as_micros() as u32);
        both_us.push(((g1 - g0) + (a1 - a0)).as_micros() as u32);
    }
    let first_get_ack_ms = both_us.first().map(|&u| u as f64 / 1000.0);
    let stats = provider.prepare(client::queue_statistics(wall()))?;
    let (reply, s0, s1) = env.load.block_on(provider.call(&stats))?;
    let pending: Vec<String> = reply
        .document()
        .ok()
        .map(|doc| {
            doc.descendants(doc.root())
                .filter_map(|n| {
                    doc.attribute(n, "", "pendingMessageNumber")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    // Reopening the gateway on the backlog (what a restart costs).
    let dir = host.stop()?;
    let reopened = Host::start_in(env, true, dir)?;
    let reopen_seconds = reopened.open_seconds;
    reopened.stop()?;
    let rss_end = status_kb("VmRSS").unwrap_or(0);
    let hwm_end = status_kb("VmHWM").unwrap_or(0);
    Ok(json!({
        "messages": n,
        "via": via,
        "enqueue_seconds": round3(enqueue_seconds),
        "enqueue_per_s": round1(n as f64 / enqueue_seconds),
        "database_bytes": db_bytes,
        "wal_bytes": wal_bytes,
        "rss_start_kb": rss_start,
        "rss_after_enqueue_kb": rss_after_enqueue,
        "vm_hwm_after_enqueue_kb": hwm_after_enqueue,
        "rss_end_kb": rss_end,
        "vm_hwm_kb": hwm_end,
        "vm_hwm_mb": round1(hwm_end as f64 / 1024.0),
        "get_request": summary(&mut get_us),
        "ack": summary(&mut ack_us),
        "get_request_plus_ack": summary(&mut both_us),
        "first_get_request_plus_ack_ms": first_get_ack_ms,
        "queue_statistics_ms": round3((s1 - s0).as_secs_f64() * 1000.0),
        "queue_statistics_pending": pending,
        "reopen_seconds": round3(reopen_seconds),
    }))
}

/// Fills the backlog through `Store::accept`, from many tasks at once (group commit),
/// with copies of one message accepted over HTTP (its payload, card and answer; a new
/// global ID and MessageID each).
fn enqueue_via_store(env: &Env, host: &Host, n: u64) -> Result<(), String> {
    let consumer = env.consumer(&host.endpoint, true)?;
    let call = consumer.prepare(client::send_request(&birth_request(0)))?;
    let (reply, _, _) = env.load.block_on(consumer.call(&call))?;
    let store = host.store.clone();
    let gid_text = reply
        .global_id()
        .ok_or("SendRequest answered without a global ID")?;
    let gid = *uuid::Uuid::parse_str(&gid_text)
        .map_err(|e| e.to_string())?
        .as_bytes();
    let template = env.load.block_on(async {
        let card = store
            .card(gid)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no card for the template")?;
        let now = to_ms(wall());
        let delivery = store
            .lease(LeaseRequest {
                recipient_system: PROVIDER_SYSTEM.into(),
                queue: Queue::Requests,
                selector: None,
                now_ms: now,
                visibility_ms: 60_000,
            })
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the template is not queued")?;
        store
            .ack(AckCommand {
                recipient_system: PROVIDER_SYSTEM.into(),
                global_id: delivery.global_id,
                accepted: true,
                receiver_registration: None,
                now_ms: now,
                then_enqueue: Vec::new(),
                acked_status: "delivered".into(),
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((card, delivery))
    })?;
    let template = Arc::new((template.0, template.1, reply.envelope.to_vec()));
    let ids = Arc::new(mezhved_core::ids::GlobalIdGenerator::new(
        1,
        0xbe,
        (std::process::id() & 0x3fff) as u16,
        None,
    ));
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..512 {
        let (store, template, ids, next) =
            (store.clone(), template.clone(), ids.clone(), next.clone());
        tasks.push(env.load.spawn(async move {
            loop {
                if next.fetch_add(1, Ordering::Relaxed) >= n {
                    return Ok::<_, String>(());
                }
                let (card, delivery, answer) = &*template;
                let now = wall();
                let global = ids.next(now);
                let gid = *global.as_bytes();
                let message_id = client::message_id(now).to_string();
                let mut card = card.clone();
                card.global_id = gid;
                card.sender_message_id = message_id.clone();
                card.received_at_ms = to_ms(now);
                if let Some(d) = card.details.as_object_mut() {
                    d.insert(
                        "global_id".into(),
                        Value::from(global.hyphenated().to_string()),
                    );
                }
                let message = NewMessage {
                    global_id: gid,
                    queue: Queue::Requests,
                    sender_system: CONSUMER_SYSTEM.into(),
                    sender_message_id: message_id,
                    recipient_system: PROVIDER_SYSTEM.into(),
                    kind_namespace: delivery.kind_namespace.clone(),
                    kind_root: delivery.kind_root.clone(),
                    content_namespace: delivery.kind_namespace.clone(),
                    content_root: delivery.kind_root.clone(),
                    original_global_id: None,
                    checksum: delivery.checksum,
                    received_at_ms: to_ms(now),
                    eol_ms: None,
                    payload: delivery.payload.clone(),
                    attachments: Vec::new(),
                    answer: answer.clone(),
                    card,
                    original_status: None,
                    lifecycle: Default::default(),
                };
                store.accept(message).await.map_err(|e| e.to_string())?;
            }
        }));
    }
    for t in tasks {
        env.load.block_on(t).map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Fills the backlog with SendRequests over HTTP (signature checks off).
fn enqueue_via_http(env: &Env, host: &Host, n: u64) -> Result<(), String> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..(env.plan.consumers + env.plan.providers) {
        let sys = env.consumer(&host.endpoint, false)?;
        let next = next.clone();
        tasks.push(env.load.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, String>(());
                }
                let call = sys.prepare(client::send_request(&birth_request(i)))?;
                sys.call(&call).await?;
            }
        }));
    }
    for t in tasks {
        env.load.block_on(t).map_err(|e| e.to_string())??;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The central journal

/// The auditor the journal part configures, to time proofs over REST.
const BENCH_AUDITOR: &str = "bench-auditor";
const BENCH_AUDITOR_TOKEN: &str = "mezhved-bench-auditor-token";

/// The issue's journal targets.
const TARGET_JOURNAL_COST: f64 = 0.90;
const TARGET_VERIFY_EVENTS_PER_S: f64 = 1e6;
const TARGET_PROOF_MS: f64 = 1.0;
const TARGET_JOURNAL_SCALE: f64 = 0.80;

/// Events per prefill batch (made on the producer thread, written on this one), and per
/// prefill transaction.
const PREFILL_BATCH: u64 = 4096;
const PREFILL_COMMIT_EVERY: u64 = 1 << 20;
/// Disk space a prefilled event takes at most (≈ 800 bytes measured), for the
/// free-space check before the prefill.
const PREFILL_BYTES_PER_EVENT: u64 = 900;
/// Milliseconds between two prefilled events (they end a minute before the bench).
const PREFILL_STEP_MS: i64 = 5;

/// xorshift64*: deterministic pseudo-random numbers for proofs and synthetic leaves.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `lo..=hi` (the modulo bias is negligible for the ranges used).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        out
    }
}

/// Free bytes for unprivileged users on the file system holding `dir` (`df -Pk`).
fn free_bytes(dir: &Path) -> Option<u64> {
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(dir)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kb: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn gb(bytes: u64) -> f64 {
    round1(bytes as f64 / 1e9)
}

/// Makes synthetic `message.accepted` events shaped like the gateway's (docs/journal.md,
/// `accepted_event` in the store), body ≈ 430 bytes: a SendRequest's, its card cut short,
/// with a fresh global ID, MessageID, checksum and registration number each, time-ordered global
/// IDs (node 2, so they never collide with the gateway's node 1) and times `PREFILL_STEP_MS`
/// apart.
#[derive(Debug)]
struct LeafMaker {
    event: NewEvent,
    rng: Rng,
    first_ms: i64,
}

impl LeafMaker {
    fn new(first_ms: i64) -> LeafMaker {
        let body = json!({
            "queue": Queue::Requests.name(),
            "sender_system": CONSUMER_SYSTEM,
            "sender_message_id": "",
            "recipient_system": PROVIDER_SYSTEM,
            "kind": { "namespace": BIRTH_NS, "root": BIRTH_ROOT },
            "checksum": "",
            "received_at": 0,
            "status": "requestIsQueued",
            "test": false,
            // A card cut to its sender's registration: the leaf is then about the mean
            // size of the leaves the gateway appends in the exchange (≈ 540 bytes:
            // `message.accepted` ≈ 900, `message.delivered` ≈ 200,
            // `message.acknowledged` ≈ 160).
            "card": { "sender_registration": { "number": "" } },
        });
        let body = match body {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        LeafMaker {
            event: NewEvent {
                at_ms: 0,
                event_type: "message.accepted".into(),
                global_id: None,
                actor: CONSUMER_SYSTEM.into(),
                body,
            },
            rng: Rng(0x5EED_0F1E_AF01),
            first_ms,
        }
    }

    /// Event `seq`: its time, global ID and leaf.
    fn make(&mut self, seq: u64) -> Result<(i64, [u8; 16], Vec<u8>), String> {
        let at = self.first_ms + seq as i64 * PREFILL_STEP_MS;
        let when = std::time::UNIX_EPOCH + Duration::from_millis(at.max(0) as u64);
        let gid = *mezhved_core::ids::encode_global_id(
            mezhved_core::ids::ticks_since_gregorian(when),
            (seq & 0x3fff) as u16,
            1,
            2,
        )
        .as_bytes();
        let checksum = hex::encode(self.rng.bytes32());
        let b = &mut self.event.body;
        b.insert(
            "sender_message_id".into(),
            client::message_id(when).to_string().into(),
        );
        b.insert("checksum".into(), checksum.into());
        b.insert("received_at".into(), at.into());
        b.insert(
            "card".into(),
            json!({ "sender_registration": { "number": format!("USZN-2026/{seq:08}") } }),
        );
        self.event.at_ms = at;
        self.event.global_id = Some(gid);
        let leaf = mezhved_store::journal::encode_leaf(seq, &self.event)
            .map_err(|e| format!("encoding leaf {seq}: {e}"))?;
        Ok((at, gid, leaf))
    }
}

/// Events made on the producer thread: `(seq, at, global ID, leaf)` and the nodes they
/// complete.
struct PrefillBatch {
    rows: Vec<(u64, i64, [u8; 16], Vec<u8>)>,
    nodes: Vec<(u8, u64, [u8; 32])>,
}

#[derive(Debug)]
struct Prefill {
    events: u64,
    seconds: f64,
    leaf_bytes: u64,
    database_bytes: u64,
    root: [u8; 32],
}

impl Prefill {
    fn json(&self) -> Value {
        json!({
            "events": self.events,
            "seconds": round3(self.seconds),
            "events_per_s": round1(self.events as f64 / self.seconds.max(1e-9)),
            "mean_leaf_bytes": if self.events > 0 { Value::from(round1(self.leaf_bytes as f64 / self.events as f64)) } else { Value::Null },
            "database_bytes": self.database_bytes,
            "root": hex::encode(self.root),
        })
    }
}

/// Makes the gateway's database at `db` ([`SqliteStore::open`], then closed) and appends
/// `n` synthetic events with every complete subtree's node, as the store would have
/// appended them one by one, but in a few big transactions with `synchronous=OFF` and no
/// rollback journal (setup, not measured). Leaves the database in WAL mode; the
/// connection is handed back still open, so the database's `-wal` and `-shm` files stay
/// (a read-only connection needs them).
fn prefill_journal(db: &Path, n: u64) -> Result<(Prefill, rusqlite::Connection), String> {
    let store = SqliteStore::open(db, SqliteOptions::default())
        .map_err(|e| format!("{}: {e}", db.display()))?;
    store.close();
    drop(store);
    let t0 = mono();
    let sql = |e: rusqlite::Error| format!("prefilling {}: {e}", db.display());
    let mut conn = rusqlite::Connection::open(db).map_err(sql)?;
    conn.pragma_update(None, "journal_mode", "OFF")
        .map_err(sql)?;
    conn.pragma_update(None, "synchronous", "OFF")
        .map_err(sql)?;
    conn.pragma_update(None, "cache_size", -262_144)
        .map_err(sql)?;
    let have: i64 = conn
        .query_row("SELECT count(*) FROM journal_events", [], |r| r.get(0))
        .map_err(sql)?;
    if have != 0 {
        return Err(format!(
            "{} already holds {have} journal events",
            db.display()
        ));
    }
    let first_ms = to_ms(wall()) - 60_000 - n as i64 * PREFILL_STEP_MS;
    let (tx, rx) = std::sync::mpsc::sync_channel::<PrefillBatch>(8);
    let producer = std::thread::Builder::new()
        .name("mz-prefill".into())
        .spawn(move || -> Result<[u8; 32], String> {
            let mut tree = mezhved_journal::merkle::TreeBuilder::new();
            let mut maker = LeafMaker::new(first_ms);
            let mut seq = 0;
            while seq < n {
                let end = (seq + PREFILL_BATCH).min(n);
                let mut batch = PrefillBatch {
                    rows: Vec::with_capacity((end - seq) as usize),
                    nodes: Vec::with_capacity(2 * (end - seq) as usize + 64),
                };
                for s in seq..end {
                    let (at, gid, leaf) = maker.make(s)?;
                    let hash = mezhved_journal::merkle::leaf_hash(&leaf);
                    tree.push_with_nodes(hash, |level, idx, h| batch.nodes.push((level, idx, *h)))
                        .map_err(|e| e.to_string())?;
                    batch.rows.push((s, at, gid, leaf));
                }
                if tx.send(batch).is_err() {
                    return Err("the prefill writer stopped".into());
                }
                seq = end;
            }
            Ok(tree.root())
        })
        .map_err(|e| format!("cannot start the prefill thread: {e}"))?;
    let mut leaf_bytes = 0u64;
    let mut written = 0u64;
    let mut write = || -> Result<(), rusqlite::Error> {
        let mut batches = rx.iter().peekable();
        while batches.peek().is_some() {
            let txn = conn.transaction()?;
            {
                let mut events = txn.prepare(
                    "INSERT INTO journal_events (seq, at, type, global_id, actor, leaf)
                     VALUES (?1, ?2, 'message.accepted', ?3, ?4, ?5)",
                )?;
                let mut nodes = txn
                    .prepare("INSERT INTO journal_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")?;
                let mut in_txn = 0;
                while in_txn < PREFILL_COMMIT_EVERY {
                    let Some(batch) = batches.next() else {
                        break;
                    };
                    for (seq, at, gid, leaf) in &batch.rows {
                        events.execute(rusqlite::params![
                            *seq as i64,
                            at,
                            &gid[..],
                            CONSUMER_SYSTEM,
                            leaf
                        ])?;
                        leaf_bytes += leaf.len() as u64;
                    }
                    for (level, idx, hash) in &batch.nodes {
                        nodes.execute(rusqlite::params![level, *idx as i64, &hash[..]])?;
                    }
                    in_txn += batch.rows.len() as u64;
                    written += batch.rows.len() as u64;
                }
            }
            txn.commit()?;
        }
        Ok(())
    };
    let wrote = write();
    // Unblocks the producer if the writer stopped early.
    drop(rx);
    let root = producer
        .join()
        .map_err(|_| "the prefill thread panicked".to_string())?;
    wrote.map_err(sql)?;
    let root = root?;
    if written != n {
        return Err(format!("prefilled {written} events, not {n}"));
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql)?;
    conn.pragma_update(None, "cache_size", -2000).map_err(sql)?;
    let seconds = (mono() - t0).as_secs_f64();
    Ok((
        Prefill {
            events: n,
            seconds,
            leaf_bytes,
            database_bytes: file_size(db),
            root,
        },
        conn,
    ))
}

/// `mezhved_store::verify::verify_journal` over a read-only connection to `db`.
fn time_verify(db: &Path) -> Result<Value, String> {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("{}: {e}", db.display()))?;
    let mut calls = 0u64;
    let t0 = mono();
    let report = mezhved_store::verify::verify_journal(&conn, &|_| Ok(()), &mut |_, _| {
        calls += 1;
    })
    .map_err(|e| format!("journal verify: {e}"))?;
    let seconds = (mono() - t0).as_secs_f64();
    Ok(json!({
        "events": report.events,
        "nodes_checked": report.nodes_checked,
        "checkpoints_checked": report.checkpoints_checked,
        "seconds": round3(seconds),
        "events_per_s": round1(report.events as f64 / seconds.max(1e-9)),
        "clean": report.is_clean(),
        "first_problem": report.problems.first().map(|p| p.to_string()),
        "progress_calls": calls,
    }))
}

/// Random inclusion proofs (`seq` and `size` uniform, `seq < size ≤ n`) and consistency
/// proofs (`0 < old < new ≤ n`, uniform) through the [`Store`] trait, one at a time;
/// then a few of each over REST (`/api/v1/journal/proof/…`, the auditor's bearer token),
/// whose handler also journals the query (one committed write each).
fn time_proofs(env: &Env, host: &Host, n: u64, count: usize) -> Result<Value, String> {
    let store = host.store.clone();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut inclusion = Vec::with_capacity(count);
    let mut consistency = Vec::with_capacity(count);
    let mut inclusion_hashes = 0usize;
    let mut consistency_hashes = 0usize;
    for _ in 0..count {
        let seq = rng.range(0, n - 1);
        let size = rng.range(seq + 1, n);
        let t0 = mono();
        let proof = env
            .load
            .block_on(store.inclusion_proof(seq, size))
            .map_err(|e| format!("inclusion proof of {seq} in {size}: {e}"))?;
        inclusion.push((mono() - t0).as_micros().min(u32::MAX as u128) as u32);
        inclusion_hashes += proof.len();
    }
    for _ in 0..count {
        let old = rng.range(1, n - 1);
        let new = rng.range(old + 1, n);
        let t0 = mono();
        let proof = env
            .load
            .block_on(store.consistency_proof(old, new))
            .map_err(|e| format!("consistency proof {old} → {new}: {e}"))?;
        consistency.push((mono() - t0).as_micros().min(u32::MAX as u128) as u32);
        consistency_hashes += proof.len();
    }
    let rest_count = (count / 20).clamp(1, 50);
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>();
    let mut rest_inclusion = Vec::with_capacity(rest_count);
    let mut rest_consistency = Vec::with_capacity(rest_count);
    for i in 0..2 * rest_count {
        let path = if i % 2 == 0 {
            let seq = rng.range(0, n - 1);
            format!("proof/inclusion?seq={seq}&size={}", rng.range(seq + 1, n))
        } else {
            let old = rng.range(1, n - 1);
            format!("proof/consistency?old={old}&new={}", rng.range(old + 1, n))
        };
        let uri = format!("{}/api/v1/journal/{path}", host.base);
        let request = hyper::Request::get(&uri)
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {BENCH_AUDITOR_TOKEN}"),
            )
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let t0 = mono();
        let (status, body) = env.load.block_on(async {
            let response = http
                .request(request)
                .await
                .map_err(|e| format!("{uri}: {e}"))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{uri}: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, body))
        })?;
        let us = (mono() - t0).as_micros().min(u32::MAX as u128) as u32;
        if status != hyper::StatusCode::OK {
            return Err(format!(
                "{uri}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ));
        }
        if i % 2 == 0 {
            rest_inclusion.push(us);
        } else {
            rest_consistency.push(us);
        }
    }
    Ok(json!({
        "at_size": n,
        "via": "Store::inclusion_proof / Store::consistency_proof (a read connection on a blocking thread), one at a time",
        "inclusion": summary(&mut inclusion),
        "consistency": summary(&mut consistency),
        "mean_inclusion_hashes": round1(inclusion_hashes as f64 / count as f64),
        "mean_consistency_hashes": round1(consistency_hashes as f64 / count as f64),
        "rest": {
            "inclusion": summary(&mut rest_inclusion),
            "consistency": summary(&mut rest_consistency),
        },
    }))
}

/// One signed closed-loop load run of the journal part, on `host`.
fn journal_load(env: &Env, host: &Host) -> Result<Value, String> {
    let mut r = run_exchange_load_for(env, &host.endpoint, true, env.plan.journal_duration)?;
    Ok(r.json(None))
}

/// What the gateway itself appended after `from` (the load's events): counts and mean
/// leaf sizes by type.
fn appended_events(db: &Path, from: u64) -> Result<Value, String> {
    let sql = |e: rusqlite::Error| format!("{}: {e}", db.display());
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    let mut st = conn
        .prepare(
            "SELECT type, count(*), avg(length(leaf)) FROM journal_events WHERE seq >= ?1
             GROUP BY type ORDER BY type",
        )
        .map_err(sql)?;
    let rows: Vec<(String, i64, f64)> = st
        .query_map([from as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(sql)?
        .collect::<Result<_, _>>()
        .map_err(sql)?;
    let mut by_type = serde_json::Map::new();
    let mut events = 0;
    let mut bytes = 0.0;
    for (ty, count, mean) in rows {
        events += count;
        bytes += count as f64 * mean;
        by_type.insert(
            ty,
            json!({ "events": count, "mean_leaf_bytes": round1(mean) }),
        );
    }
    Ok(json!({
        "from_seq": from,
        "events": events,
        "mean_leaf_bytes": if events > 0 { Value::from(round1(bytes / events as f64)) } else { Value::Null },
        "by_type": by_type,
    }))
}

fn phase_journal(env: &Env, out: &mut dyn Write) -> Result<Value, String> {
    let p = &env.plan;
    let large = p.journal_events.max(2);
    let small = p.journal_baseline_events.max(2);
    let free_before = free_bytes(&p.tmp);
    let needed = (large + small) * PREFILL_BYTES_PER_EVENT + (1 << 30);
    let _ = writeln!(
        out,
        "journal: {} free in {} ({} events need about {} GB); load runs {:.1} s measured after {:.1} s warm-up",
        free_before.map_or("? bytes".into(), |b| format!("{} GB", gb(b))),
        p.tmp.display(),
        large,
        gb(large * PREFILL_BYTES_PER_EVENT),
        p.journal_duration.as_secs_f64(),
        p.warmup.as_secs_f64()
    );
    if let Some(free) = free_before {
        if free < needed {
            return Err(format!(
                "the journal part needs about {} GB in {} and {} GB are free: give --tmp elsewhere or fewer --journal-events",
                gb(needed),
                p.tmp.display(),
                gb(free)
            ));
        }
    }
    let _ = out.flush();

    // 1. What appending costs: journal off, then on, on fresh gateways, pair by pair.
    let mut pairs = Vec::new();
    let mut runs = Vec::new();
    let mut ratios = Vec::new();
    for pair in 0..p.journal_pairs {
        let mut rates = [0.0f64; 2];
        let mut neighbours = [0.0f64; 2];
        for (i, journal) in [false, true].into_iter().enumerate() {
            let what = if journal { "journal-on" } else { "journal-off" };
            let host = Host::start_with(
                env,
                true,
                env.tempdir(what)?,
                SqliteOptions {
                    journal,
                    ..SqliteOptions::default()
                },
                false,
            )?;
            let mut v = journal_load(env, &host)?;
            host.stop()?;
            rates[i] = v["exchanges_per_s"].as_f64().unwrap_or(0.0);
            neighbours[i] = v["cpu_seconds"]["other_processes"].as_f64().unwrap_or(0.0);
            v["journal"] = Value::from(journal);
            v["pair"] = Value::from(pair + 1);
            runs.push(v);
        }
        let ratio = if rates[0] > 0.0 {
            Some(rates[1] / rates[0])
        } else {
            None
        };
        ratios.extend(ratio);
        let _ = writeln!(
            out,
            "journal cost, pair {} (off, then on; fresh gateways): {:.1} exchanges/s without the journal, {:.1} with it: ratio {} (other processes used {:.2} / {:.2} CPU s meanwhile)",
            pair + 1,
            rates[0],
            rates[1],
            ratio.map_or("–".into(), |r| format!("{r:.3}")),
            neighbours[0],
            neighbours[1]
        );
        let _ = out.flush();
        pairs.push(json!({
            "order": ["off", "on"],
            "off_exchanges_per_s": round1(rates[0]),
            "on_exchanges_per_s": round1(rates[1]),
            "ratio": ratio.map(round3),
        }));
    }
    let mean = |v: &[f64]| {
        if v.is_empty() {
            None
        } else {
            Some(v.iter().sum::<f64>() / v.len() as f64)
        }
    };
    let rate_of = |journal: bool| -> Vec<f64> {
        runs.iter()
            .filter(|r| r["journal"].as_bool() == Some(journal))
            .filter_map(|r| r["exchanges_per_s"].as_f64())
            .collect()
    };
    let cpu_of = |journal: bool, group: &str| -> Vec<f64> {
        runs.iter()
            .filter(|r| r["journal"].as_bool() == Some(journal))
            .filter_map(|r| r["cpu_us_per_exchange"][group].as_f64())
            .collect()
    };
    let ratio_mean = mean(&ratios);
    let cpu_off = mean(&cpu_of(false, "total"));
    let cpu_on = mean(&cpu_of(true, "total"));
    // What the ratio would be if the process were CPU-bound: less sensitive to what other
    // processes on the machine do than the throughput ratio.
    let cpu_ratio = match (cpu_off, cpu_on) {
        (Some(off), Some(on)) if on > 0.0 => Some(off / on),
        _ => None,
    };
    let cost = json!({
        "pairs": pairs,
        "ratio_mean": ratio_mean.map(round3),
        "cpu_ratio": cpu_ratio.map(round3),
        "off_mean_exchanges_per_s": mean(&rate_of(false)).map(round1),
        "on_mean_exchanges_per_s": mean(&rate_of(true)).map(round1),
        "cpu_us_per_exchange": {
            "off": { "total": cpu_off.map(round1), "store_writer": mean(&cpu_of(false, "store_writer")).map(round1) },
            "on": { "total": cpu_on.map(round1), "store_writer": mean(&cpu_of(true, "store_writer")).map(round1) },
        },
        "runs": runs,
    });
    let _ = writeln!(
        out,
        "journal cost: mean ratio {}; CPU µs per exchange: total {} off / {} on (ratio {}), store writer {} / {}",
        t(&cost["ratio_mean"]),
        t(&cost["cpu_us_per_exchange"]["off"]["total"]),
        t(&cost["cpu_us_per_exchange"]["on"]["total"]),
        t(&cost["cpu_ratio"]),
        t(&cost["cpu_us_per_exchange"]["off"]["store_writer"]),
        t(&cost["cpu_us_per_exchange"]["on"]["store_writer"])
    );

    // 4 (small side). The exchange over a small prefilled journal.
    let small_dir = env.tempdir("journal-small")?;
    let small_db = env.config(small_dir.path()).database_path();
    let (small_prefill, conn) = prefill_journal(&small_db, small)?;
    drop(conn);
    let host = Host::start_with(env, true, small_dir, SqliteOptions::default(), false)?;
    let small_open = host.open_seconds;
    let mut small_run = journal_load(env, &host)?;
    drop(host.stop()?);
    let small_rate = small_run["exchanges_per_s"].as_f64();
    small_run["journal_events_before"] = Value::from(small);
    small_run["open_seconds"] = Value::from(round3(small_open));
    let _ = writeln!(
        out,
        "journal scale: {} events prefilled in {:.2} s; exchange over them: {} exchanges/s, {} errors",
        small,
        small_prefill.seconds,
        t(&small_run["exchanges_per_s"]),
        t(&small_run["errors"])
    );
    let _ = out.flush();

    // The large journal: prefill, verify, the exchange over it, proofs.
    let large_dir = env.tempdir("journal-large")?;
    let large_db = env.config(large_dir.path()).database_path();
    let _ = writeln!(
        out,
        "journal: prefilling {large} events into {} …",
        large_db.display()
    );
    let _ = out.flush();
    let (large_prefill, conn) = prefill_journal(&large_db, large)?;
    let free_after = free_bytes(&p.tmp);
    let _ = writeln!(
        out,
        "journal: prefilled {} events in {:.1} s ({:.0} events/s): database {} GB, mean leaf {} bytes; {} GB free now",
        large,
        large_prefill.seconds,
        large as f64 / large_prefill.seconds.max(1e-9),
        gb(large_prefill.database_bytes),
        t(&large_prefill.json()["mean_leaf_bytes"]),
        free_after.map_or("?".into(), |b| gb(b).to_string())
    );
    let _ = out.flush();
    let verify = time_verify(&large_db)?;
    drop(conn);
    let _ = writeln!(
        out,
        "journal verify: {} events and {} nodes in {} s = {} events/s, clean: {}{}",
        t(&verify["events"]),
        t(&verify["nodes_checked"]),
        t(&verify["seconds"]),
        t(&verify["events_per_s"]),
        t(&verify["clean"]),
        verify["first_problem"]
            .as_str()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    let _ = out.flush();

    let host = Host::start_with(env, true, large_dir, SqliteOptions::default(), true)?;
    let large_open = host.open_seconds;
    let mut large_run = journal_load(env, &host)?;
    let large_rate = large_run["exchanges_per_s"].as_f64();
    large_run["journal_events_before"] = Value::from(large);
    large_run["open_seconds"] = Value::from(round3(large_open));
    let _ = writeln!(
        out,
        "journal scale: exchange over {} events: {} exchanges/s, {} errors (gateway opened in {:.2} s)",
        large,
        t(&large_run["exchanges_per_s"]),
        t(&large_run["errors"]),
        large_open
    );
    let _ = out.flush();
    let size = env
        .load
        .block_on(host.store.journal_size())
        .map_err(|e| e.to_string())?;
    let appended = appended_events(&large_db, large)?;
    let proofs = time_proofs(env, &host, size, p.journal_proofs)?;
    drop(host.stop()?);
    let _ = writeln!(
        out,
        "journal proofs at {} events ({} each, Store trait): inclusion p50 {} p99 {} max {} ms ({} hashes); consistency p50 {} p99 {} max {} ms ({} hashes); over REST: inclusion p50 {} ms, consistency p50 {} ms",
        size,
        p.journal_proofs,
        t(&proofs["inclusion"]["p50_ms"]),
        t(&proofs["inclusion"]["p99_ms"]),
        t(&proofs["inclusion"]["max_ms"]),
        t(&proofs["mean_inclusion_hashes"]),
        t(&proofs["consistency"]["p50_ms"]),
        t(&proofs["consistency"]["p99_ms"]),
        t(&proofs["consistency"]["max_ms"]),
        t(&proofs["mean_consistency_hashes"]),
        t(&proofs["rest"]["inclusion"]["p50_ms"]),
        t(&proofs["rest"]["consistency"]["p50_ms"])
    );
    let scale_ratio = match (large_rate, small_rate) {
        (Some(l), Some(s)) if s > 0.0 => Some(l / s),
        _ => None,
    };
    let cpu_total = |v: &Value| v["cpu_us_per_exchange"]["total"].as_f64();
    let scale_cpu_ratio = match (cpu_total(&small_run), cpu_total(&large_run)) {
        (Some(s), Some(l)) if l > 0.0 => Some(s / l),
        _ => None,
    };
    let _ = writeln!(
        out,
        "journal scale: {} / {} exchanges/s = {} (CPU µs per exchange {} / {}: ratio {}; other processes used {} / {} CPU s meanwhile); the gateway appended {} events over the large journal (mean leaf {} bytes)",
        t(&large_run["exchanges_per_s"]),
        t(&small_run["exchanges_per_s"]),
        scale_ratio.map_or("–".into(), |r| format!("{r:.3}")),
        t(&large_run["cpu_us_per_exchange"]["total"]),
        t(&small_run["cpu_us_per_exchange"]["total"]),
        scale_cpu_ratio.map_or("–".into(), |r| format!("{r:.3}")),
        t(&large_run["cpu_seconds"]["other_processes"]),
        t(&small_run["cpu_seconds"]["other_processes"]),
        t(&appended["events"]),
        t(&appended["mean_leaf_bytes"])
    );
    Ok(json!({
        "events_large": large,
        "events_small": small,
        "tmp": p.tmp.display().to_string(),
        "free_bytes_before": free_before,
        "free_bytes_after_prefill": free_after,
        "load_seconds": p.journal_duration.as_secs_f64(),
        "cost": cost,
        "prefill": { "small": small_prefill.json(), "large": large_prefill.json() },
        "verify": verify,
        "proofs": proofs,
        "scale": {
            "small": small_run,
            "large": large_run,
            "ratio": scale_ratio.map(round3),
            "cpu_ratio": scale_cpu_ratio.map(round3),
            "appended_over_large": appended,
        },
    }))
}

// ---------------------------------------------------------------------------------------
// Deadlines

/// The issue's deadline targets.
const TARGET_DEADLINE_IDLE_CORE_PCT: f64 = 1.0;
const TARGET_DEADLINE_FIRE_PER_S: f64 = 50_000.0;
/// Rows per transaction of the deadline prefill.
const DEADLINE_PREFILL_COMMIT_EVERY: u64 = 100_000;
/// Timer passes (`run_once` + `next_deadline_at`, nothing due) the idle run times one by
/// one after its window (quick: a tenth); enough that CPU ticks (10 ms) resolve one.
const DEADLINE_PROBE_PASSES: usize = 1000;
/// The SQLite page cache of one connection (the default `cache_size`, -2000 KiB): the
/// store has `SqliteOptions::readers` of them plus the writer's. What the database may
/// hold in memory of its own, whatever the number of rows.
const SQLITE_DEFAULT_CACHE_KIB: f64 = 2000.0;

/// A request accepted over HTTP (signed), whose rows the prefill copies: its card, its
/// queue row, and a fresh data directory's database holding it (registry, journal).
struct DeadlineTemplate {
    _dir: tempfile::TempDir,
    db: PathBuf,
    gid_text: String,
    card: Vec<(String, rusqlite::types::Value)>,
    message: Vec<(String, rusqlite::types::Value)>,
    /// The deadline rows the gateway gave the template request: `(kind, due in ms from
    /// receipt)`.
    own_deadlines: Vec<(String, i64)>,
}

/// One row of `table` by its global ID, column by column.
fn row_of(
    conn: &rusqlite::Connection,
    table: &str,
    gid: &[u8],
) -> Result<Vec<(String, rusqlite::types::Value)>, String> {
    let sql = |e: rusqlite::Error| format!("reading the template {table} row: {e}");
    let mut st = conn
        .prepare(&format!("SELECT * FROM {table} WHERE global_id = ?1"))
        .map_err(sql)?;
    let names: Vec<String> = st.column_names().map(|s| s.to_string()).collect();
    let values: Vec<rusqlite::types::Value> = st
        .query_row([gid], |r| {
            (0..names.len()).map(|i| r.get(i)).collect::<Result<_, _>>()
        })
        .map_err(sql)?;
    Ok(names.into_iter().zip(values).collect())
}

fn value_bytes(v: &rusqlite::types::Value) -> usize {
    use rusqlite::types::Value as V;
    match v {
        V::Null => 0,
        V::Integer(_) | V::Real(_) => 8,
        V::Text(s) => s.len(),
        V::Blob(b) => b.len(),
    }
}

/// The bytes of a row's values (integers as 8).
fn row_bytes(row: &[(String, rusqlite::types::Value)]) -> usize {
    row.iter().map(|(_, v)| value_bytes(v)).sum()
}

fn deadline_template(env: &Env) -> Result<DeadlineTemplate, String> {
    let host = Host::start(env, true, "deadlines-template")?;
    let consumer = env.consumer(&host.endpoint, true)?;
    let call = consumer.prepare(client::send_request(&birth_request(0)))?;
    let (reply, _, _) = env.load.block_on(consumer.call(&call))?;
    check(&reply)?;
    let gid_text = reply
        .global_id()
        .ok_or("SendRequest answered without a global ID")?;
    let gid = *uuid::Uuid::parse_str(&gid_text)
        .map_err(|e| e.to_string())?
        .as_bytes();
    let dir = host.stop()?;
    let db = env.config(dir.path()).database_path();
    let conn = rusqlite::Connection::open(&db).map_err(|e| format!("{}: {e}", db.display()))?;
    let card = row_of(&conn, "cards", &gid)?;
    let message = row_of(&conn, "messages", &gid)?;
    let received: i64 = conn
        .query_row(
            "SELECT received_at FROM cards WHERE global_id = ?1",
            [&gid[..]],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    let own_deadlines = conn
        .prepare("SELECT kind, due_at FROM deadlines WHERE global_id = ?1 ORDER BY due_at")
        .and_then(|mut st| {
            st.query_map([&gid[..]], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? - received))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| e.to_string())?;
    drop(conn);
    Ok(DeadlineTemplate {
        _dir: dir,
        db,
        gid_text,
        card,
        message,
        own_deadlines,
    })
}

/// When the prefilled requests were received and their deadline rows are due.
#[derive(Debug, Clone, Copy)]
struct DeadlineSchedule {
    kind: DeadlineKind,
    /// Receipt of request 0; request `i` is received `i` ms later.
    first_received_ms: i64,
    /// Due time of request 0's row; request `i`'s is `i` ms later.
    first_due_ms: i64,
}

/// A copy of the template's database (`VACUUM INTO` `db`) plus `n` requests like the
/// template's, each with its card, its queue row (delivered and acknowledged: the provider
/// has it and the reply is awaited) and one deadline row of `schedule.kind`, written
/// directly with SQLite in big transactions with `synchronous=OFF` and no rollback journal
/// (setup, not measured). Global IDs are time-ordered, node 3 (the gateway is node 1).
fn prefill_deadlines(
    template: &DeadlineTemplate,
    db: &Path,
    n: u64,
    schedule: DeadlineSchedule,
) -> Result<Value, String> {
    use rusqlite::types::Value as V;
    let t0 = mono();
    let sql = |e: rusqlite::Error| format!("prefilling {}: {e}", db.display());
    if let Some(dir) = db.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    rusqlite::Connection::open(&template.db)
        .and_then(|c| c.execute("VACUUM INTO ?1", [db.display().to_string()]))
        .map_err(sql)?;
    let mut conn = rusqlite::Connection::open(db).map_err(sql)?;
    conn.pragma_update(None, "journal_mode", "OFF")
        .map_err(sql)?;
    conn.pragma_update(None, "synchronous", "OFF")
        .map_err(sql)?;
    conn.pragma_update(None, "cache_size", -262_144)
        .map_err(sql)?;
    let insert = |table: &str, cols: &[&(String, V)]| {
        format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            cols.iter()
                .map(|(c, _)| c.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            (1..=cols.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let card_cols: Vec<&(String, V)> = template.card.iter().collect();
    // `seq` is the queue's order: SQLite assigns it.
    let message_cols: Vec<&(String, V)> = template
        .message
        .iter()
        .filter(|(c, _)| c != "seq")
        .collect();
    let card_sql = insert("cards", &card_cols);
    let message_sql = insert("messages", &message_cols);
    let details = template
        .card
        .iter()
        .find(|(c, _)| c == "details")
        .and_then(|(_, v)| match v {
            V::Text(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let mut card_values: Vec<V> = card_cols.iter().map(|(_, v)| v.clone()).collect();
    let mut message_values: Vec<V> = message_cols.iter().map(|(_, v)| v.clone()).collect();
    let kind = schedule.kind.name();
    let mut i = 0u64;
    while i < n {
        let txn = conn.transaction().map_err(sql)?;
        {
            let mut cards = txn.prepare(&card_sql).map_err(sql)?;
            let mut messages = txn.prepare(&message_sql).map_err(sql)?;
            let mut deadlines = txn
                .prepare("INSERT INTO deadlines (global_id, kind, due_at) VALUES (?1, ?2, ?3)")
                .map_err(sql)?;
            let end = (i + DEADLINE_PREFILL_COMMIT_EVERY).min(n);
            while i < end {
                let received = schedule.first_received_ms + i as i64;
                let due = schedule.first_due_ms + i as i64;
                let when = std::time::UNIX_EPOCH + Duration::from_millis(received.max(0) as u64);
                let global = mezhved_core::ids::encode_global_id(
                    mezhved_core::ids::ticks_since_gregorian(when),
                    (i & 0x3fff) as u16,
                    1,
                    3,
                );
                let gid = global.as_bytes().to_vec();
                let message_id = client::message_id(when).to_string();
                for (v, (col, _)) in card_values.iter_mut().zip(&card_cols) {
                    match col.as_str() {
                        "global_id" => *v = V::Blob(gid.clone()),
                        "sender_message_id" => *v = V::Text(message_id.clone()),
                        "received_at" => *v = V::Integer(received),
                        "due_at" => *v = V::Integer(due),
                        "details" => {
                            *v = V::Text(
                                details
                                    .replace(&template.gid_text, &global.hyphenated().to_string()),
                            )
                        }
                        _ => {}
                    }
                }
                for (v, (col, _)) in message_values.iter_mut().zip(&message_cols) {
                    match col.as_str() {
                        "global_id" => *v = V::Blob(gid.clone()),
                        "sender_message_id" => *v = V::Text(message_id.clone()),
                        "received_at" | "visible_at" => *v = V::Integer(received),
                        "delivery_count" => *v = V::Integer(1),
                        "first_delivered_at" => *v = V::Integer(received + 500),
                        "acked_at" => *v = V::Integer(received + 1000),
                        "payload" => *v = V::Null,
                        _ => {}
                    }
                }
                cards
                    .execute(rusqlite::params_from_iter(card_values.iter()))
                    .map_err(sql)?;
                messages
                    .execute(rusqlite::params_from_iter(message_values.iter()))
                    .map_err(sql)?;
                deadlines
                    .execute(rusqlite::params![gid, kind, due])
                    .map_err(sql)?;
                i += 1;
            }
        }
        txn.commit().map_err(sql)?;
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql)?;
    drop(conn);
    let seconds = (mono() - t0).as_secs_f64();
    Ok(json!({
        "requests": n,
        "kind": kind,
        "seconds": round3(seconds),
        "rows_per_s": round1(n as f64 / seconds.max(1e-9)),
        "database_bytes": file_size(db),
    }))
}

/// `VmRSS`, `RssAnon`, `RssFile` and `VmHWM` now, in kB.
fn memory_kb() -> Value {
    json!({
        "rss": status_kb("VmRSS"),
        "anon": status_kb("RssAnon"),
        "file": status_kb("RssFile"),
        "hwm": status_kb("VmHWM"),
    })
}

/// Counts in the database at `db` (read-only): deadline rows pending (the template
/// request's own two among them, due in about a week), pending and due now, fired; status
/// messages; journal size.
fn deadline_counts(db: &Path) -> Result<Value, String> {
    let sql = |e: rusqlite::Error| format!("{}: {e}", db.display());
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    let one = |q: &str| -> Result<i64, String> { conn.query_row(q, [], |r| r.get(0)).map_err(sql) };
    Ok(json!({
        "pending": one("SELECT count(*) FROM deadlines WHERE fired_at IS NULL AND closed_at IS NULL")?,
        "due_now": one(&format!("SELECT count(*) FROM deadlines WHERE fired_at IS NULL AND closed_at IS NULL AND due_at <= {}", to_ms(wall())))?,
        "fired": one("SELECT count(*) FROM deadlines WHERE fired_at IS NOT NULL")?,
        "status_messages": one(&format!("SELECT count(*) FROM messages WHERE queue = {}", Queue::Statuses.code()))?,
        "journal_events": one("SELECT coalesce(max(seq) + 1, 0) FROM journal_events")?,
    }))
}

/// The gateway opened on `data_dir` and served (its deadline timer loop running) with no
/// traffic: the process's CPU over `window` after `settle`, and its memory before opening,
/// after opening and after the window. Then, with the gateway still serving, timer passes
/// timed one by one (what the loop does each time it looks; nothing is due).
fn deadlines_idle(env: &Env, data_dir: &Path) -> Result<Value, String> {
    let p = &env.plan;
    let settle = if p.quick {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(1)
    };
    let before_open = memory_kb();
    let hwm_reset = reset_peak_rss();
    let rt = runtime("mz-gw", p.cores)?;
    let config = env.config(data_dir);
    let t0 = mono();
    let gateway = rt
        .block_on(Gateway::open(config, Arc::new(SystemClock)))
        .map_err(|e| format!("the gateway does not open: {e}"))?;
    let open_seconds = (mono() - t0).as_secs_f64();
    let after_open = memory_kb();
    let store = gateway.state.store.clone();
    let exchange = gateway.state.exchange.clone();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = rt.spawn(async move {
        gateway
            .serve(listener, async move {
                let _ = stopped.await;
            })
            .await
            .map_err(|e| e.to_string())
    });
    std::thread::sleep(settle);
    let a = cpu_snapshot();
    let w0 = mono();
    std::thread::sleep(p.deadlines_idle);
    let b = cpu_snapshot();
    let window = (mono() - w0).as_secs_f64();
    let after_idle = memory_kb();
    let split = cpu_split(&a, &b);
    let pct = |s: f64| round3(s / window.max(1e-9) * 100.0);
    let core_pct = pct(split.get("total").copied().unwrap_or(0.0));
    let by_group: serde_json::Map<String, Value> = split
        .iter()
        .filter(|(k, _)| **k != "other_processes")
        .map(|(k, v)| (k.to_string(), Value::from(pct(*v))))
        .collect();

    // What one look of the loop costs with every row pending and none due.
    let runner = Arc::new(DeadlineRunner::new(
        store.clone(),
        exchange,
        Arc::new(SystemClock),
        "mz-bench-probe".into(),
        data_dir.to_path_buf(),
    ));
    let passes = if p.quick {
        DEADLINE_PROBE_PASSES / 10
    } else {
        DEADLINE_PROBE_PASSES
    };
    let mut pass_us = Vec::with_capacity(passes);
    let mut next_at = None;
    let c0 = cpu_snapshot();
    for _ in 0..passes {
        let (runner, store) = (runner.clone(), store.clone());
        let s = mono();
        let (fired, next) = rt
            .block_on(rt.spawn(async move {
                let fired = runner.run_once().await?;
                Ok::<_, mezhved_store::StoreError>((fired, store.next_deadline_at().await?))
            }))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        pass_us.push((mono() - s).as_micros() as u32);
        if fired != 0 {
            return Err(format!("{fired} deadlines fired in the idle run"));
        }
        next_at = next;
    }
    let c1 = cpu_snapshot();
    let probe_split = cpu_split(&c0, &c1);
    let pass_cpu_us = (probe_split.get("total").copied().unwrap_or(0.0)
        - probe_split.get("clients").copied().unwrap_or(0.0))
        * 1e6
        / passes as f64;
    drop(runner);
    drop(store);
    let _ = stop.send(());
    rt.block_on(task)
        .map_err(|e| format!("the gateway task failed: {e}"))??;
    let max_idle = mezhved_core::deadlines::MAX_IDLE.as_secs_f64();
    Ok(json!({
        "open_seconds": round3(open_seconds),
        "settle_seconds": settle.as_secs_f64(),
        "window_seconds": round3(window),
        "cpu_seconds": split,
        "core_pct": core_pct,
        "core_pct_by_thread_group": by_group,
        "memory_kb": {
            "before_open": before_open,
            "after_open": after_open,
            "after_idle": after_idle,
            "hwm_reset": hwm_reset,
        },
        "timer_pass": {
            "passes": passes,
            "wall": summary(&mut pass_us),
            "cpu_us_per_pass": round1(pass_cpu_us),
            "max_idle_seconds": max_idle,
            "core_pct_at_one_pass_per_max_idle": round3(pass_cpu_us / 1e6 / max_idle * 100.0),
            "next_deadline_in_s": next_at.map(|at| round1((at - to_ms(wall())) as f64 / 1000.0)),
        },
    }))
}

/// [`deadlines_idle`] on `data_dir` in a fresh child process (`mezhved bench
/// --deadlines-idle-dir`), so its memory is the gateway's alone (not the prefill's, not
/// the runs before); in this process with `--in-process`.
fn deadlines_idle_isolated(env: &Env, data_dir: &Path) -> Result<Value, String> {
    let plan = &env.plan;
    if plan.in_process {
        let mut v = deadlines_idle(env, data_dir)?;
        v["own_process"] = Value::from(false);
        return Ok(v);
    }
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the mezhved binary: {e}"))?;
    let json_file = tempfile::Builder::new()
        .prefix("mezhved-bench-child-")
        .suffix(".json")
        .tempfile_in(&plan.tmp)
        .map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("bench")
        .arg("--in-process")
        .args(["--only", "deadlines"])
        .arg("--repo")
        .arg(&plan.repo)
        .arg("--tmp")
        .arg(&plan.tmp)
        .arg("--json")
        .arg(json_file.path())
        .arg("--deadlines-idle-dir")
        .arg(data_dir)
        .args([
            "--deadlines-idle-seconds",
            &plan.deadlines_idle.as_secs_f64().to_string(),
        ]);
    if plan.quick {
        cmd.arg("--quick");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run the deadlines child: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the deadlines child failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = std::fs::read_to_string(json_file.path()).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let mut v = v
        .get("deadlines_idle")
        .cloned()
        .ok_or("the deadlines child reported nothing")?;
    v["own_process"] = Value::from(true);
    Ok(v)
}

/// Opens a gateway on `dir` (not served: no timer loop of its own) and times one
/// `DeadlineRunner::run_once` over everything due, as the timer loop's first pass after a
/// restart would; `n` rows are due.
fn deadlines_fire(env: &Env, dir: &Path, n: u64) -> Result<Value, String> {
    let config = env.config(dir);
    let db = config.database_path();
    let before = deadline_counts(&db)?;
    let rt = runtime("mz-gw", env.plan.cores)?;
    let gateway = rt
        .block_on(Gateway::open(config, Arc::new(SystemClock)))
        .map_err(|e| format!("the gateway does not open: {e}"))?;
    let journal_before = rt
        .block_on(gateway.state.store.journal_size())
        .map_err(|e| e.to_string())?;
    let runner = DeadlineRunner::new(
        gateway.state.store.clone(),
        gateway.state.exchange.clone(),
        Arc::new(SystemClock),
        "mz-bench-firing".into(),
        dir.to_path_buf(),
    );
    let a = cpu_snapshot();
    let t0 = mono();
    let fired = rt
        .block_on(rt.spawn(async move { runner.run_once().await }))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("firing: {e}"))?;
    let seconds = (mono() - t0).as_secs_f64();
    let b = cpu_snapshot();
    drop(gateway);
    drop(rt);
    let split = cpu_split(&a, &b);
    let per_row = |s: f64| round1(s * 1e6 / (fired.max(1) as f64));
    let cpu_us_per_row: serde_json::Map<String, Value> = split
        .iter()
        .filter(|(k, _)| **k != "other_processes" && **k != "clients")
        .map(|(k, v)| (k.to_string(), Value::from(per_row(*v))))
        .collect();
    let after = deadline_counts(&db)?;
    let statuses = f(&after, &["status_messages"]).unwrap_or(0.0)
        - f(&before, &["status_messages"]).unwrap_or(0.0);
    Ok(json!({
        "due": n,
        "fired": fired,
        "seconds": round3(seconds),
        "deadlines_per_s": round1(fired as f64 / seconds.max(1e-9)),
        "cpu_seconds": split,
        "cpu_us_per_row": cpu_us_per_row,
        "status_messages_per_row": round3(statuses / fired.max(1) as f64),
        "pending_after": after["pending"],
        "due_after": after["due_now"],
        "appended": appended_events(&db, journal_before)?,
    }))
}

const BENCH_OPERATOR_TOKEN: &str = "mezhved-bench-operator-token";
const BENCH_DASHBOARD_USER: (&str, &str) = ("bench-operator", "bench-operator-password");

/// The bench operator's password hash, made once per process (PBKDF2 is slow on purpose).
fn bench_dashboard_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        mezhved_http::dashboard::auth::hash_password(
            BENCH_DASHBOARD_USER.1,
            mezhved_http::dashboard::auth::MIN_ITERATIONS,
        )
        .unwrap_or_default()
    })
}

/// Logs in to the dashboard through its form (the pre-session cookie and CSRF token
/// first); answers the `Cookie` header of the session.
async fn dashboard_session(
    http: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<Bytes>,
    >,
    base: &str,
) -> Result<String, String> {
    let cookies_of = |h: &hyper::HeaderMap| -> Vec<String> {
        h.get_all(hyper::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .map(str::to_string)
            .collect()
    };
    let r = http
        .request(
            hyper::Request::get(format!("{base}/ui/login"))
                .body(http_body_util::Full::new(Bytes::new()))
                .map_err(|e| e.to_string())?,
        )
        .await
        .map_err(|e| format!("/ui/login: {e}"))?;
    let pre = cookies_of(r.headers()).join("; ");
    let page = r
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let page = String::from_utf8_lossy(&page);
    let marker = "name=\"csrf\" value=\"";
    let at = page.find(marker).ok_or("no CSRF field on /ui/login")? + marker.len();
    let csrf = &page[at..at + page[at..].find('"').ok_or("no CSRF value")?];
    let form = format!(
        "csrf={csrf}&user={}&password={}",
        BENCH_DASHBOARD_USER.0, BENCH_DASHBOARD_USER.1
    );
    let r = http
        .request(
            hyper::Request::post(format!("{base}/ui/login"))
                .header(hyper::header::COOKIE, pre)
                .header(
                    hyper::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(http_body_util::Full::new(Bytes::from(form)))
                .map_err(|e| e.to_string())?,
        )
        .await
        .map_err(|e| format!("POST /ui/login: {e}"))?;
    cookies_of(r.headers())
        .into_iter()
        .find(|c| c.starts_with("mezhved_session="))
        .ok_or_else(|| format!("the dashboard login answered {}", r.status()))
}

/// What the pollers of the monitoring part saw.
#[derive(Debug, Default)]
struct PollStats {
    polls: u64,
    errors: u64,
    first_error: Option<String>,
    micros: Vec<u32>,
    bytes: u64,
}

/// One GET of `path` as the bench operator (its token and its dashboard session);
/// answers the body's length, or why it failed (a status other than 2xx included).
async fn operator_get(
    http: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<Bytes>,
    >,
    base: &str,
    path: &str,
    session: &str,
) -> Result<u64, String> {
    let uri = format!("{base}{path}");
    let request = hyper::Request::get(&uri)
        .header(
            hyper::header::AUTHORIZATION,
            format!("Bearer {BENCH_OPERATOR_TOKEN}"),
        )
        .header(hyper::header::COOKIE, session)
        .body(http_body_util::Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    match http.request(request).await {
        Ok(response) if response.status().is_success() => response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().len() as u64)
            .map_err(|e| e.to_string()),
        Ok(response) => Err(format!("{uri}: HTTP {}", response.status())),
        Err(e) => Err(format!("{uri}: {e}")),
    }
}

/// GETs each of `paths` on `base` once a second until `stop` (the dashboard's overview
/// page with a session, its API, and a Prometheus scraper).
async fn poll_monitoring(
    base: String,
    paths: Vec<&'static str>,
    stop: Arc<AtomicBool>,
) -> PollStats {
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    let mut stats = PollStats::default();
    let session = match dashboard_session(&http, &base).await {
        Ok(s) => s,
        Err(e) => {
            stats.errors += 1;
            stats.first_error = Some(e);
            return stats;
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        for path in &paths {
            let t0 = mono();
            let result = operator_get(&http, &base, path, &session).await;
            stats.polls += 1;
            match result {
                Ok(n) => {
                    stats.bytes += n;
                    stats
                        .micros
                        .push((mono() - t0).as_micros().min(u32::MAX as u128) as u32);
                }
                Err(e) => {
                    stats.errors += 1;
                    stats.first_error.get_or_insert(e);
                }
            }
        }
    }
    stats
}

/// What one poll costs, on the database the load left behind and with the load stopped:
/// process CPU per GET of each path (back to back, so one store read serves a second of
/// them, as `[monitoring] snapshot_ttl_ms` intends), and per store read of the figures
/// themselves (what a poll costs when nobody else polled within the interval).
fn poll_costs(
    env: &Env,
    host: &Host,
    paths: &[&'static str],
    out: &mut dyn Write,
) -> Result<Value, String> {
    const GETS: u32 = 200;
    const READS: u32 = 30;
    let base = host.base.clone();
    let owned: Vec<&'static str> = paths.to_vec();
    let per_path = env.load.block_on(async move {
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<Bytes>>();
        let session = dashboard_session(&http, &base).await?;
        let mut costs = Vec::new();
        for path in owned {
            let before = cpu_snapshot();
            for _ in 0..GETS {
                operator_get(&http, &base, path, &session).await?;
            }
            let after = cpu_snapshot();
            let ticks = after.process.saturating_sub(before.process) as f64;
            costs.push((path, ticks / TICKS_PER_SECOND * 1e6 / f64::from(GETS)));
        }
        Ok::<_, String>(costs)
    })?;
    let since = to_ms(wall()) - 900_000;
    let store = host.store.clone();
    let (snapshot_us, metrics_us) = host.rt.block_on(async move {
        let before = cpu_snapshot();
        for _ in 0..READS {
            store
                .monitoring_snapshot(since, mezhved_http::monitoring_api::MAX_ANSWER_SAMPLES)
                .await
                .map_err(|e| e.to_string())?;
        }
        let middle = cpu_snapshot();
        for _ in 0..READS {
            store.metrics_snapshot().await.map_err(|e| e.to_string())?;
        }
        let after = cpu_snapshot();
        let us = |a: &CpuSnapshot, b: &CpuSnapshot| {
            b.process.saturating_sub(a.process) as f64 / TICKS_PER_SECOND * 1e6 / f64::from(READS)
        };
        Ok::<_, String>((us(&before, &middle), us(&middle, &after)))
    })?;
    let mut v = serde_json::Map::new();
    for (path, us) in &per_path {
        let _ = writeln!(out, "monitoring: {path} costs {us:.0} µs of CPU per GET");
        v.insert((*path).to_string(), Value::from(round1(*us)));
    }
    let _ = writeln!(
        out,
        "monitoring: one store read of the figures {snapshot_us:.0} µs, of the /metrics gauges {metrics_us:.0} µs"
    );
    v.insert(
        "monitoring_snapshot_read".into(),
        Value::from(round1(snapshot_us)),
    );
    v.insert(
        "metrics_snapshot_read".into(),
        Value::from(round1(metrics_us)),
    );
    Ok(Value::Object(v))
}

/// Monitoring's cost to the exchange (issue 8): the signed closed-loop load on one
/// gateway, alternately with and without a poller that GETs `/metrics`,
/// `/api/v1/monitoring/systems` and the dashboard's `/ui` overview every second.
fn phase_monitoring(env: &Env, out: &mut dyn Write) -> Result<Value, String> {
    let p = &env.plan;
    let pairs = if p.quick { 1 } else { 2 };
    let host = Host::start(env, true, "monitoring")?;
    let paths = vec!["/metrics", "/api/v1/monitoring/systems", "/ui"];
    let mut runs = Vec::new();
    let mut ratios = Vec::new();
    let mut pair_values = Vec::new();
    for pair in 0..pairs {
        // Off then on, then on then off: a drift (the database growing) cancels out.
        let order = if pair % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let mut rates = [0.0f64; 2];
        for polled in order {
            let stop = Arc::new(AtomicBool::new(false));
            let poller = polled.then(|| {
                env.load.spawn(poll_monitoring(
                    host.base.clone(),
                    paths.clone(),
                    stop.clone(),
                ))
            });
            let mut r = run_exchange_load(env, &host.endpoint, true)?;
            stop.store(true, Ordering::Relaxed);
            let mut v = r.json(None);
            if let Some(poller) = poller {
                let mut s = env
                    .load
                    .block_on(poller)
                    .map_err(|e| format!("the monitoring poller failed: {e}"))?;
                v["polls"] = json!({
                    "paths": paths,
                    "polls": s.polls,
                    "errors": s.errors,
                    "first_error": s.first_error,
                    "mean_bytes": if s.polls > s.errors { Value::from(s.bytes / (s.polls - s.errors)) } else { Value::Null },
                    "latency": summary(&mut s.micros),
                });
            }
            v["polled"] = Value::from(polled);
            v["pair"] = Value::from(pair + 1);
            rates[usize::from(polled)] = v["exchanges_per_s"].as_f64().unwrap_or(0.0);
            runs.push(v);
        }
        let ratio = (rates[0] > 0.0).then(|| rates[1] / rates[0]);
        ratios.extend(ratio);
        let _ = writeln!(
            out,
            "monitoring, pair {} ({}): {:.1} exchanges/s unpolled, {:.1} with /metrics, /api/v1/monitoring/systems and the /ui overview polled every second: ratio {}",
            pair + 1,
            if order[0] { "polled first" } else { "unpolled first" },
            rates[0],
            rates[1],
            ratio.map_or("–".into(), |r| format!("{r:.3}"))
        );
        let _ = out.flush();
        pair_values.push(json!({
            "unpolled_exchanges_per_s": round1(rates[0]),
            "polled_exchanges_per_s": round1(rates[1]),
            "ratio": ratio.map(round3),
        }));
    }
    let costs = poll_costs(env, &host, &paths, out)?;
    host.stop()?;
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let ratio_mean = mean(&ratios);
    let cpu_of = |polled: bool| -> Vec<f64> {
        runs.iter()
            .filter(|r| r["polled"].as_bool() == Some(polled))
            .filter_map(|r| r["cpu_us_per_exchange"]["total"].as_f64())
            .collect()
    };
    let (cpu_off, cpu_on) = (mean(&cpu_of(false)), mean(&cpu_of(true)));
    // The ratio if the gateway were CPU-bound: less sensitive than the rates to what other
    // processes on the machine do meanwhile.
    let cpu_ratio = match (cpu_off, cpu_on) {
        (Some(off), Some(on)) if on > 0.0 => Some(off / on),
        _ => None,
    };
    let _ = writeln!(
        out,
        "monitoring: mean ratio {}; CPU µs per exchange {} unpolled / {} polled (ratio {})",
        ratio_mean.map_or("–".into(), |r| format!("{r:.3}")),
        cpu_off.map_or("–".into(), |c| format!("{c:.0}")),
        cpu_on.map_or("–".into(), |c| format!("{c:.0}")),
        cpu_ratio.map_or("–".into(), |r| format!("{r:.3}"))
    );
    Ok(json!({
        "poll_costs": costs,
        "pairs": pair_values,
        "ratio_mean": ratio_mean.map(round3),
        "cpu_ratio": cpu_ratio.map(round3),
        "cpu_us_per_exchange": { "unpolled": cpu_off.map(round1), "polled": cpu_on.map(round1) },
        "runs": runs,
    }))
}

fn phase_deadlines(env: &Env, out: &mut dyn Write) -> Result<Value, String> {
    let p = &env.plan;
    let _ = writeln!(
        out,
        "deadlines: {} and {} pending rows idle {:.1} s each; {} due rows fired per kind",
        p.deadlines_baseline_pending,
        p.deadlines_pending,
        p.deadlines_idle.as_secs_f64(),
        p.deadlines_due
    );
    let _ = out.flush();
    let template = deadline_template(env)?;
    // What a prefilled request takes on disk: its rows (the queue row keeps the signed
    // answer, the idempotency record), plus a third for indexes and page slack.
    let per_request = (row_bytes(&template.card) + row_bytes(&template.message)) as u64 * 4 / 3;
    let largest = p
        .deadlines_pending
        .max(p.deadlines_baseline_pending)
        .max(p.deadlines_due);
    let needed = largest * per_request + (1 << 30);
    let free_before = free_bytes(&p.tmp);
    if let Some(free) = free_before {
        if free < needed {
            return Err(format!(
                "the deadlines part needs about {} GB in {} and {} GB are free: give --tmp elsewhere or fewer --deadlines-pending",
                gb(needed),
                p.tmp.display(),
                gb(free)
            ));
        }
    }
    let now = to_ms(wall());
    const DAY_MS: i64 = 86_400_000;

    // 1. Idle with pending rows due in 30 days and later, small and large.
    let mut idle = serde_json::Map::new();
    for (label, n) in [
        ("small", p.deadlines_baseline_pending),
        ("large", p.deadlines_pending),
    ] {
        let dir = env.tempdir(&format!("deadlines-idle-{label}"))?;
        let db = env.config(dir.path()).database_path();
        let prefill = prefill_deadlines(
            &template,
            &db,
            n,
            DeadlineSchedule {
                kind: DeadlineKind::Overdue,
                first_received_ms: now - DAY_MS,
                first_due_ms: now + 30 * DAY_MS,
            },
        )?;
        let mut v = deadlines_idle_isolated(env, dir.path())?;
        let counts = deadline_counts(&db)?;
        if f(&counts, &["fired"]) != Some(0.0) {
            return Err(format!("deadlines fired in the idle run: {counts}"));
        }
        v["pending"] = Value::from(n);
        v["prefill"] = prefill;
        v["counts_after"] = counts;
        let mem = &v["memory_kb"];
        let _ = writeln!(
            out,
            "deadlines idle, {n} pending (prefilled in {} s, database {} bytes): {} % of one core over {} s ({}); RSS {} kB before opening, {} kB after, {} kB after the window (anon {}, file {}); one timer pass {} µs CPU ({} ms wall p50) = {} % of a core at one pass per {} s",
            t(&v["prefill"]["seconds"]),
            t(&v["prefill"]["database_bytes"]),
            t(&v["core_pct"]),
            t(&v["window_seconds"]),
            v["core_pct_by_thread_group"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            t(&mem["before_open"]["rss"]),
            t(&mem["after_open"]["rss"]),
            t(&mem["after_idle"]["rss"]),
            t(&mem["after_idle"]["anon"]),
            t(&mem["after_idle"]["file"]),
            t(&v["timer_pass"]["cpu_us_per_pass"]),
            t(&v["timer_pass"]["wall"]["p50_ms"]),
            t(&v["timer_pass"]["core_pct_at_one_pass_per_max_idle"]),
            t(&v["timer_pass"]["max_idle_seconds"])
        );
        let _ = out.flush();
        drop(dir);
        idle.insert(label.into(), v);
    }
    let rss = |label: &str, at: &str| f(&idle[label]["memory_kb"][at]["rss"], &[]);
    let growth = |label: &str| match (rss(label, "after_idle"), rss(label, "before_open")) {
        (Some(a), Some(b)) => Some(a - b),
        _ => None,
    };
    let rss_diff_mb = match (rss("large", "after_idle"), rss("small", "after_idle")) {
        // `+ 0.0` turns a rounded -0.0 into 0.0.
        (Some(l), Some(s)) => Some(round1((l - s) / 1024.0) + 0.0),
        _ => None,
    };
    let page_cache_bound_mb =
        round1((SqliteOptions::default().readers + 1) as f64 * SQLITE_DEFAULT_CACHE_KIB / 1024.0);
    let _ = writeln!(
        out,
        "deadlines memory: RSS after the idle window {} kB with {} pending, {} kB with {}: {} MB more (growth from before opening: {} / {} kB); the SQLite page caches hold at most {} MB",
        t(&Value::from(rss("large", "after_idle"))),
        p.deadlines_pending,
        t(&Value::from(rss("small", "after_idle"))),
        p.deadlines_baseline_pending,
        t(&Value::from(rss_diff_mb)),
        t(&Value::from(growth("large"))),
        t(&Value::from(growth("small"))),
        page_cache_bound_mb
    );

    // 2. Firing: everything due, one kind at a time.
    let mut firing = serde_json::Map::new();
    for kind in [DeadlineKind::Overdue, DeadlineKind::Reminder] {
        let dir = env.tempdir(&format!("deadlines-fire-{}", kind.name()))?;
        let db = env.config(dir.path()).database_path();
        let n = p.deadlines_due;
        let prefill = prefill_deadlines(
            &template,
            &db,
            n,
            DeadlineSchedule {
                kind,
                first_received_ms: now - 10 * DAY_MS,
                first_due_ms: now - 2 * 3_600_000 - n as i64,
            },
        )?;
        let mut v = deadlines_fire(env, dir.path(), n)?;
        if v["fired"].as_u64() != Some(n) {
            return Err(format!(
                "{} of {n} {} deadlines fired",
                t(&v["fired"]),
                kind.name()
            ));
        }
        v["prefill"] = prefill;
        let _ = writeln!(
            out,
            "deadlines firing, {n} {} rows due: {} fired in {} s = {} deadlines/s; CPU µs per row: {}; {} status messages and {} journal events per row",
            kind.name(),
            t(&v["fired"]),
            t(&v["seconds"]),
            t(&v["deadlines_per_s"]),
            v["cpu_us_per_row"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            t(&v["status_messages_per_row"]),
            f(&v["appended"], &["events"]).map_or("–".into(), |e| format!("{:.3}", e / n.max(1) as f64))
        );
        let _ = out.flush();
        drop(dir);
        firing.insert(kind.name().into(), v);
    }
    Ok(json!({
        "pending_large": p.deadlines_pending,
        "pending_small": p.deadlines_baseline_pending,
        "due": p.deadlines_due,
        "idle_seconds": p.deadlines_idle.as_secs_f64(),
        "tmp": p.tmp.display().to_string(),
        "free_bytes_before": free_before,
        "template": {
            "card_columns": template.card.len(),
            "card_bytes": row_bytes(&template.card),
            "message_bytes": row_bytes(&template.message),
            "message_bytes_prefilled": row_bytes(&template.message) - template.message.iter().find(|(c, _)| c == "payload").map_or(0, |(_, v)| value_bytes(v)),
            "own_deadlines": template.own_deadlines.iter().map(|(k, d)| json!({ "kind": k, "due_after_receipt_ms": d })).collect::<Vec<_>>(),
        },
        "idle": idle,
        "memory": {
            "rss_after_idle_large_minus_small_mb": rss_diff_mb,
            "rss_growth_large_kb": growth("large"),
            "rss_growth_small_kb": growth("small"),
            "sqlite_page_cache_bound_mb": page_cache_bound_mb,
        },
        "firing": firing,
    }))
}

// ---------------------------------------------------------------------------------------
// The report

/// Runs a memory part in a fresh child process (`mezhved bench --only <part>
/// --in-process`), so its RSS is its own; returns the child's JSON for the part.
fn in_child(plan: &Plan, part: Part, args: &BenchArgs) -> Result<Value, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the mezhved binary: {e}"))?;
    let json_file = tempfile::Builder::new()
        .prefix("mezhved-bench-child-")
        .suffix(".json")
        .tempfile_in(&plan.tmp)
        .map_err(|e| e.to_string())?;
    let name = match part {
        Part::Mtom => "mtom",
        _ => "queued",
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("bench")
        .arg("--in-process")
        .args(["--only", name])
        .arg("--repo")
        .arg(&plan.repo)
        .arg("--tmp")
        .arg(&plan.tmp)
        .arg("--json")
        .arg(json_file.path())
        .args([
            "--attachment-mb",
            &(plan.attachment_bytes >> 20).to_string(),
        ])
        .args(["--queued", &plan.queued.to_string()])
        .args(["--consumers", &plan.consumers.to_string()])
        .args(["--providers", &plan.providers.to_string()])
        .args([
            "--queued-via",
            match args.queued_via {
                QueueVia::Store => "store",
                QueueVia::Http => "http",
            },
        ]);
    if plan.quick {
        cmd.arg("--quick");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run the {name} child: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the {name} child failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = std::fs::read_to_string(json_file.path()).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    Ok(v.get(name).cloned().unwrap_or(Value::Null))
}

fn target(
    name: &str,
    what: &str,
    measured: Option<f64>,
    unit: &str,
    limit: f64,
    at_least: bool,
    note: &str,
) -> Value {
    let met = measured.map(|m| if at_least { m >= limit } else { m < limit });
    json!({
        "name": name,
        "target": what,
        "limit": limit,
        "unit": unit,
        "measured": measured.map(round3),
        "met": met,
        "note": note,
    })
}

fn f(v: &Value, path: &[&str]) -> Option<f64> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    v.as_f64()
}

/// A JSON value as text, strings without quotes.
fn t(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "–".into(),
        other => other.to_string(),
    }
}

fn print_run(out: &mut dyn Write, title: &str, v: &Value) {
    let _ = writeln!(
        out,
        "{title}: {} exchanges/s, {} calls/s ({} useful), {} calls/exchange, {} errors{}",
        t(&v["exchanges_per_s"]),
        t(&v["calls_per_s"]),
        t(&v["useful_calls_per_s"]),
        t(&v["calls_per_exchange"]),
        t(&v["errors"]),
        v["first_error"]
            .as_str()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    print_ops(out, &v["ops"]);
    if let Some(cpu) = v["cpu_us_per_exchange"].as_object() {
        let parts: Vec<String> = cpu.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "  CPU µs per exchange: {}", parts.join(", "));
    }
    let _ = writeln!(
        out,
        "  CPU seconds in the window: this process {}, other processes {}",
        t(&v["cpu_seconds"]["total"]),
        t(&v["cpu_seconds"]["other_processes"])
    );
    if let Some(c) = v.get("crypto_work") {
        let _ = writeln!(
            out,
            "  crypto work: {} client signs, {} gateway signs, {} gateway verifies ≈ {} CPU s = {} of the process CPU",
            t(&c["client_signs"]), t(&c["gateway_signs"]), t(&c["gateway_verifies"]), t(&c["cpu_seconds"]), t(&c["share_of_process_cpu"])
        );
    }
}

fn print_ops(out: &mut dyn Write, ops: &Value) {
    if let Some(ops) = ops.as_object() {
        let _ = writeln!(
            out,
            "  {:<20} {:>8} {:>9} {:>9} {:>9}",
            "op", "count", "p50 ms", "p99 ms", "max ms"
        );
        for (name, s) in ops {
            if s["count"].as_u64() == Some(0) {
                continue;
            }
            let _ = writeln!(
                out,
                "  {:<20} {:>8} {:>9} {:>9} {:>9}",
                name,
                t(&s["count"]),
                t(&s["p50_ms"]),
                t(&s["p99_ms"]),
                t(&s["max_ms"])
            );
        }
    }
}

/// `mezhved bench`.
pub fn run(args: BenchArgs, out: &mut dyn Write) -> Result<(), String> {
    let plan = Plan::new(&args)?;
    let env = Env::new(plan.clone())?;
    if let Some(dir) = &args.deadlines_idle_dir {
        // The deadlines part's child: the idle run alone.
        let v = json!({ "deadlines_idle": deadlines_idle(&env, dir)? });
        if let Some(path) = &args.json {
            let text = serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?;
            std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
        }
        return Ok(());
    }
    let mut report = serde_json::Map::new();
    let _ = writeln!(
        out,
        "mezhved bench: {} cores, {} consumers, {} providers, {} open exchanges at most, {:.1} s measured after {:.1} s warm-up{}",
        plan.cores,
        plan.consumers,
        plan.providers,
        plan.outstanding,
        plan.duration.as_secs_f64(),
        plan.warmup.as_secs_f64(),
        if plan.quick { " (quick: the figures mean nothing)" } else { "" }
    );
    report.insert(
        "config".into(),
        json!({
            "cores": plan.cores,
            "consumers": plan.consumers,
            "providers": plan.providers,
            "outstanding": plan.outstanding,
            "duration_s": plan.duration.as_secs_f64(),
            "warmup_s": plan.warmup.as_secs_f64(),
            "latency_s": plan.latency_duration.as_secs_f64(),
            "crypto_s": plan.crypto_duration.as_secs_f64(),
            "attachment_bytes": plan.attachment_bytes,
            "queued": plan.queued,
            "queued_via": format!("{:?}", plan.queued_via).to_lowercase(),
            "quick": plan.quick,
            "parts": plan.parts.iter().map(|p| format!("{p:?}").to_lowercase()).collect::<Vec<_>>(),
            "journal_events": plan.journal_events,
            "journal_baseline_events": plan.journal_baseline_events,
            "journal_pairs": plan.journal_pairs,
            "journal_s": plan.journal_duration.as_secs_f64(),
            "journal_proofs": plan.journal_proofs,
            "deadlines_pending": plan.deadlines_pending,
            "deadlines_baseline_pending": plan.deadlines_baseline_pending,
            "deadlines_due": plan.deadlines_due,
            "deadlines_idle_s": plan.deadlines_idle.as_secs_f64(),
            "build": if cfg!(debug_assertions) { "debug" } else { "release" },
            "repo": plan.repo.display().to_string(),
        }),
    );

    let mut crypto = None;
    if plan.runs(Part::Crypto) || plan.runs(Part::Exchange) {
        let c = phase_crypto(&env)?;
        let _ = writeln!(
            out,
            "crypto (ECDSA P-256, {} threads): {:.0} signs/s, {:.0} verifies/s ({:.1} / {:.1} µs per core; one thread alone {:.1} / {:.1} µs); per exchange {} signs ({} clients + {} gateway) and {} verifies (gateway) → bound {:.1} exchanges/s",
            c.threads, c.signs_per_s, c.verifies_per_s, c.sign_us, c.verify_us,
            c.single_thread_sign_us, c.single_thread_verify_us,
            CLIENT_SIGNS + GATEWAY_SIGNS, CLIENT_SIGNS, GATEWAY_SIGNS, GATEWAY_VERIFIES, c.bound
        );
        report.insert("crypto".into(), c.json());
        crypto = Some(c);
    }

    let mut max_rate = None;
    if plan.runs(Part::Exchange) {
        let host = Host::start(&env, true, "signed")?;
        let mut r = run_exchange_load(&env, &host.endpoint, true)?;
        host.stop()?;
        max_rate = Some(r.exchanges_per_s());
        let v = r.json(crypto.as_ref());
        print_run(out, "signed exchanges", &v);
        report.insert("exchange_signed".into(), v);
    }

    if plan.runs(Part::Echo) {
        let mut echo = run_echo(&env)?;
        let echo_calls = echo.calls_per_s();
        let mut ev = echo.json(None);
        ev["calls_per_s"] = Value::from(round1(echo_calls));
        let _ = writeln!(
            out,
            "bare hyper echo (same client, {} connections, the no-crypto run's six bodies): {} calls/s, errors {}",
            plan.consumers + plan.providers,
            t(&ev["calls_per_s"]),
            t(&ev["errors"])
        );
        print_ops(out, &ev["ops"]);
        let host = Host::start(&env, false, "nocrypto")?;
        let mut r = run_exchange_load(&env, &host.endpoint, false)?;
        host.stop()?;
        let nv = r.json(None);
        print_run(out, "exchanges with signature checks off", &nv);
        report.insert("echo".into(), ev);
        report.insert("exchange_nocrypto".into(), nv);
    }

    if plan.runs(Part::Latency) {
        let rate = match (plan.latency_rate, max_rate) {
            (Some(r), _) => r,
            (None, Some(m)) => m / 2.0,
            (None, None) => {
                // The maximum first: a short closed-loop run.
                let host = Host::start(&env, true, "max")?;
                let r = run_exchange_load(&env, &host.endpoint, true)?;
                host.stop()?;
                r.exchanges_per_s() / 2.0
            }
        };
        let v = phase_latency(&env, rate)?;
        let _ = writeln!(
            out,
            "paced at {} exchanges/s ({} SendRequests in {} s, {} exchanges completed): SendRequest p50 {} ms, p99 {} ms, max {} ms (from the scheduled send; service time p99 {} ms); CPU {}",
            t(&v["target_exchanges_per_s"]), t(&v["send_requests"]), t(&v["seconds"]), t(&v["exchanges_completed"]),
            t(&v["send_request"]["p50_ms"]), t(&v["send_request"]["p99_ms"]), t(&v["send_request"]["max_ms"]),
            t(&v["send_request_service"]["p99_ms"]), t(&v["cpu_utilisation"])
        );
        print_ops(out, &v["ops"]);
        report.insert("latency".into(), v);
    }

    for part in [Part::Mtom, Part::Queued] {
        if !plan.runs(part) {
            continue;
        }
        let key = if part == Part::Mtom { "mtom" } else { "queued" };
        let (mut v, isolated) = if plan.in_process {
            let v = if part == Part::Mtom {
                phase_mtom(&env)?
            } else {
                phase_queued(&env)?
            };
            (v, false)
        } else {
            (in_child(&plan, part, &args)?, true)
        };
        v["own_process"] = Value::from(isolated);
        if part == Part::Mtom {
            let _ = writeln!(
                out,
                "MTOM {} bytes: SHA-256 match {}; upload {} s ({} MB/s), download to a file {} s ({} MB/s); RSS {} kB before, {} kB peak (+{} MB); VmHWM {} → {} kB (reset: {})",
                t(&v["attachment_bytes"]), t(&v["sha256_match"]), t(&v["upload_seconds"]), t(&v["upload_mb_per_s"]),
                t(&v["download_seconds"]), t(&v["download_mb_per_s"]), t(&v["rss_before_kb"]), t(&v["rss_peak_sampled_kb"]),
                t(&v["rss_growth_mb"]), t(&v["vm_hwm_before_kb"]), t(&v["vm_hwm_after_kb"]), t(&v["vm_hwm_reset"])
            );
        } else {
            let _ = writeln!(
                out,
                "queued {} messages via {} in {} s ({}/s); database {} bytes; RSS {} kB, VmHWM {} kB; GetRequest+Ack {} ms (first {} ms); queue statistics {} ms; reopen {} s",
                t(&v["messages"]), t(&v["via"]), t(&v["enqueue_seconds"]), t(&v["enqueue_per_s"]), t(&v["database_bytes"]),
                t(&v["rss_after_enqueue_kb"]), t(&v["vm_hwm_kb"]), t(&v["get_request_plus_ack"]["p50_ms"]),
                t(&v["first_get_request_plus_ack_ms"]), t(&v["queue_statistics_ms"]), t(&v["reopen_seconds"])
            );
        }
        report.insert(key.into(), v);
    }

    if plan.runs(Part::Journal) {
        let v = phase_journal(&env, out)?;
        report.insert("journal".into(), v);
    }

    if plan.runs(Part::Deadlines) {
        let v = phase_deadlines(&env, out)?;
        report.insert("deadlines".into(), v);
    }

    if plan.runs(Part::Adapters) {
        let v = adapters::phase(&env, out)?;
        report.insert("adapters".into(), v);
    }

    if plan.runs(Part::Monitoring) {
        let v = phase_monitoring(&env, out)?;
        report.insert("monitoring".into(), v);
    }

    let r = Value::Object(report.clone());
    let bound = f(&r, &["crypto", "bound_exchanges_per_s"]);
    let signed = f(&r, &["exchange_signed", "exchanges_per_s"]);
    let nocrypto = f(&r, &["exchange_nocrypto", "calls_per_s"]);
    let echo = f(&r, &["echo", "calls_per_s"]);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let mtom_ok = r["mtom"]["sha256_match"].as_bool();
    let targets = vec![
        target(
            "signed_exchanges_vs_crypto_bound",
            "signed ECDSA exchanges/s ≥ 60 % of the crypto bound",
            ratio(signed, bound),
            "ratio",
            TARGET_SIGNED_VS_BOUND,
            true,
            "exchange_signed.exchanges_per_s / crypto.bound_exchanges_per_s",
        ),
        target(
            "nocrypto_calls_vs_echo",
            "calls/s with signature checks off ≥ 50 % of the bare echo",
            ratio(nocrypto, echo),
            "ratio",
            TARGET_NOCRYPTO_VS_ECHO,
            true,
            "exchange_nocrypto.calls_per_s / echo.calls_per_s",
        ),
        target(
            "send_request_p99_at_half_rate",
            "p99 SendRequest < 5 ms at half the maximum rate",
            f(&r, &["latency", "send_request", "p99_ms"]),
            "ms",
            TARGET_P99_MS,
            false,
            "latency.send_request.p99_ms (from the scheduled send time)",
        ),
        target(
            "mtom_rss_growth",
            "a 1 GiB MTOM attachment passes with RSS growth < 64 MB",
            match mtom_ok {
                Some(false) => None,
                _ => f(&r, &["mtom", "rss_growth_mb"]),
            },
            "MiB",
            TARGET_MTOM_RSS_MB,
            false,
            "mtom.rss_growth_mb (peak sampled VmRSS − VmRSS before); null if the SHA-256 did not match",
        ),
        target(
            "queued_rss",
            "10⁶ queued messages with RSS < 500 MB",
            f(&r, &["queued", "vm_hwm_mb"]),
            "MiB",
            TARGET_QUEUED_RSS_MB,
            false,
            "queued.vm_hwm_mb (peak RSS of the process that enqueued and served them)",
        ),
        target(
            "journal_append_cost",
            "appending with Merkle maintenance cuts exchange throughput by at most 10 % (with / without ≥ 0.90)",
            f(&r, &["journal", "cost", "ratio_mean"]),
            "ratio",
            TARGET_JOURNAL_COST,
            true,
            "journal.cost.ratio_mean: mean over journal.cost.pairs (journal off, then on, fresh gateways each) of on / off exchanges/s",
        ),
        target(
            "journal_verify_rate",
            "`journal verify` ≥ 1 M events/s",
            match r["journal"]["verify"]["clean"].as_bool() {
                Some(false) => None,
                _ => f(&r, &["journal", "verify", "events_per_s"]),
            },
            "events/s",
            TARGET_VERIFY_EVENTS_PER_S,
            true,
            "journal.verify.events_per_s over journal.events_large events (read-only connection, the database in the page cache); null if it did not verify clean",
        ),
        target(
            "journal_proof_p99",
            "an inclusion or consistency proof < 1 ms at 10⁷ events",
            match (
                f(&r, &["journal", "proofs", "inclusion", "p99_ms"]),
                f(&r, &["journal", "proofs", "consistency", "p99_ms"]),
            ) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            },
            "ms",
            TARGET_PROOF_MS,
            false,
            "the larger of journal.proofs.inclusion.p99_ms and journal.proofs.consistency.p99_ms (Store trait, at journal.proofs.at_size events)",
        ),
        target(
            "journal_scale",
            "exchange throughput with 10⁷ journal events ≥ 80 % of that with 10⁴",
            f(&r, &["journal", "scale", "ratio"]),
            "ratio",
            TARGET_JOURNAL_SCALE,
            true,
            "journal.scale.large.exchanges_per_s / journal.scale.small.exchanges_per_s (journal.events_large vs journal.events_small prefilled events)",
        ),
        target(
            "deadlines_idle_cpu",
            "with 10⁶ pending deadlines the idle timer loop uses < 1 % of a core",
            f(&r, &["deadlines", "idle", "large", "core_pct"]),
            "% of one core",
            TARGET_DEADLINE_IDLE_CORE_PCT,
            false,
            "deadlines.idle.large.core_pct: CPU of the whole gateway process (every thread) over deadlines.idle_seconds of serving with no traffic, deadlines.pending_large rows pending (due in 30 days and later)",
        ),
        target(
            "deadlines_idle_memory",
            "memory does not grow with the number of pending deadlines beyond the database's own",
            f(&r, &["deadlines", "memory", "rss_after_idle_large_minus_small_mb"]),
            "MiB",
            f(&r, &["deadlines", "memory", "sqlite_page_cache_bound_mb"]).unwrap_or(0.0),
            false,
            "deadlines.memory.rss_after_idle_large_minus_small_mb: VmRSS after the idle window with deadlines.pending_large minus with deadlines.pending_small pending rows (fresh processes); the limit is the SQLite page caches' bound (connections × 2000 KiB)",
        ),
        target(
            "deadlines_firing_overdue",
            "firing throughput ≥ 50,000 deadlines/s (overdue: two statuses and a journal event each)",
            f(&r, &["deadlines", "firing", "overdue", "deadlines_per_s"]),
            "deadlines/s",
            TARGET_DEADLINE_FIRE_PER_S,
            true,
            "deadlines.firing.overdue.deadlines_per_s: DeadlineRunner::run_once over deadlines.due overdue rows all due",
        ),
        target(
            "deadlines_firing_reminder",
            "firing throughput ≥ 50,000 deadlines/s (reminder: one status and a journal event each)",
            f(&r, &["deadlines", "firing", "reminder", "deadlines_per_s"]),
            "deadlines/s",
            TARGET_DEADLINE_FIRE_PER_S,
            true,
            "deadlines.firing.reminder.deadlines_per_s: DeadlineRunner::run_once over deadlines.due reminder rows all due",
        ),
        target(
            "adapters_vs_direct",
            "exchanges/s end to end through two adapters ≥ 50 % of the same run's direct client-to-gateway rate",
            f(&r, &["adapters", "ratio"]),
            "ratio",
            TARGET_ADAPTERS_VS_DIRECT,
            true,
            "adapters.through_adapters.exchanges_per_s / adapters.direct.exchanges_per_s",
        ),
        target(
            "adapter_outbox_memory",
            "an adapter holds 10⁵ queued outgoing messages with flat memory",
            f(&r, &["adapters", "outbox", "rss_growth_mb"]),
            "MiB",
            TARGET_ADAPTER_OUTBOX_GROWTH_MB,
            false,
            "adapters.outbox.rss_growth_mb: VmRSS with adapters.outbox.queued requests queued minus with 10³ (the gateway unreachable)",
        ),
        target(
            "monitoring_overhead",
            "exchange throughput with /metrics scraped and the dashboard (page and API) polled every second ≥ 95 % of that without",
            f(&r, &["monitoring", "ratio_mean"]),
            "ratio",
            TARGET_MONITORING_VS_WITHOUT,
            true,
            "monitoring.ratio_mean: mean over monitoring.pairs (same gateway, alternating order) of polled / unpolled exchanges/s",
        ),
    ];
    let _ = writeln!(out, "targets:");
    for tg in &targets {
        let verdict = match tg["met"].as_bool() {
            Some(true) => "met ",
            Some(false) => "MISS",
            None => "n/a ",
        };
        let _ = writeln!(
            out,
            "  [{verdict}] {}: {}",
            t(&tg["target"]),
            t(&tg["measured"])
        );
    }
    report.insert("targets".into(), Value::Array(targets));
    if let Some(path) = &args.json {
        let text =
            serde_json::to_string_pretty(&Value::Object(report)).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
