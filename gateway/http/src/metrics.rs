//! `GET /metrics`: the gateway's metrics in the Prometheus text format (docs/metrics.md).
//!
//! Two sources, one page:
//! - **Process metrics** (counters and histograms: calls, latency, messages, pushes,
//!   deadline firings, the store's group commits) are recorded through the `metrics`
//!   facade into one Prometheus recorder, installed globally once per process
//!   ([`install`]). A process that runs several gateways (the black-box tests, the
//!   benchmark) shares them; `mezhved serve` runs one.
//! - **Gateway gauges** (queue depths and oldest message age, overdue requests, journal
//!   size, checkpoint age) are read from *this* gateway's store at scrape time
//!   ([`Store::metrics_snapshot`](mezhved_store::Store::metrics_snapshot): the
//!   trigger-kept queue counters, never a count of the backlog per call) and written
//!   after the process metrics, so each gateway's page describes that gateway.
//!
//! Architecture invariant: **labels are bounded.** Every label value comes from a fixed
//! list ([`OPERATIONS`], [`FAULTS`], queue names, deadline kinds, push failure classes) or
//! from the registry (system mnemonics, kinds' names); anything else is `unknown`/`other`.
//! A flood of calls with garbage or unknown kinds of information therefore adds no series.

use crate::server::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use mezhved_dsig::smev_profile::Operation;
use mezhved_store::Queue;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Values of the `operation` label: the seven SMEV operations, and `unknown` for a call
/// that is not recognisably one of them.
pub const OPERATIONS: [&str; 8] = [
    "SendRequest",
    "SendResponse",
    "GetRequest",
    "GetResponse",
    "Ack",
    "GetStatus",
    "GetIncomingQueueStatistics",
    "unknown",
];

/// Values of the `fault` label: the SMEV faults of protocol.md §6 the gateway answers
/// with (`ExchangeError::fault` is the only mapping), and `none` for an answered call.
pub const FAULTS: [&str; 18] = [
    "none",
    "InvalidContent",
    "SignatureVerificationFault",
    "SenderIsNotRegistered",
    "InvalidMessageIdFormat",
    "StaleMessageId",
    "MessageIsAlreadySent",
    "AccessDenied",
    "BusinessDataTypeIsNotSupported",
    "UnknownMessageType",
    "RecipientIsNotFound",
    "IncorrectResponseContentType",
    "TargetMessageIsNotFound",
    "AttachmentContentMiscoordination",
    "AttachmentSizeLimitExceeded",
    "EndOfLifeReached",
    "SMEVFailure",
    "other",
];

/// Exchange latency buckets (seconds): a poll answered from a read connection takes well
/// under a millisecond, a signed SendRequest a few milliseconds, a group commit under
/// load tens.
const CALL_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Group commit latency buckets (seconds): one fsync is 0.1–10 ms on most disks.
const COMMIT_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// Commands per group commit (the writer takes at most `MAX_BATCH` = 256).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle). Metrics
/// recorded before it are dropped, so the gateway calls it first thing when it opens.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = [
            ("mezhved_call_duration_seconds", CALL_BUCKETS),
            ("mezhved_store_commit_seconds", COMMIT_BUCKETS),
            ("mezhved_store_batch_size", BATCH_BUCKETS),
        ]
        .into_iter()
        .fold(PrometheusBuilder::new(), |b, (name, buckets)| {
            b.set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)
                .unwrap_or_else(|_| unreachable!("bucket lists are not empty"))
        });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed: /metrics shows only gauges");
        }
        describe();
        // Families a dashboard graphs from the start, at zero until their first event (a
        // series that appears later makes `rate()` miss its first increments).
        for outcome in ["accepted", "rejected"] {
            metrics::counter!("mezhved_responses_total", "outcome" => outcome).increment(0);
            metrics::counter!("mezhved_requests_total", "kind" => "other", "outcome" => outcome)
                .increment(0);
        }
        metrics::counter!("mezhved_push_attempts_total").increment(0);
        for kind in ["reminder", "overdue", "expiry"] {
            metrics::counter!("mezhved_deadline_firings_total", "kind" => kind).increment(0);
        }
        // Histogram samples wait in buffers until drained; a process nobody scrapes must
        // not grow them. A thread, not a task: it outlives any one runtime (tests start many).
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            });
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        "mezhved_calls_total",
        Unit::Count,
        "SOAP calls by operation and answer (fault code, or none)"
    );
    describe_histogram!(
        "mezhved_call_duration_seconds",
        Unit::Seconds,
        "SOAP call latency from the request's arrival to the answer, by operation"
    );
    describe_counter!(
        "mezhved_requests_total",
        Unit::Count,
        "SendRequest messages accepted or rejected, by the registry's kind of information (other: not registered)"
    );
    describe_counter!(
        "mezhved_responses_total",
        Unit::Count,
        "SendResponse messages accepted or rejected"
    );
    describe_counter!(
        "mezhved_push_attempts_total",
        Unit::Count,
        "push deliveries attempted (POSTs to a system's endpoint)"
    );
    describe_counter!(
        "mezhved_push_failures_total",
        Unit::Count,
        "push attempts that failed, by class"
    );
    describe_counter!(
        "mezhved_deadline_firings_total",
        Unit::Count,
        "reply deadlines fired by this process, by kind (reminder, overdue, expiry)"
    );
    describe_histogram!(
        "mezhved_store_commit_seconds",
        Unit::Seconds,
        "SQLite group commit latency: BEGIN to COMMIT (fsync included)"
    );
    describe_histogram!(
        "mezhved_store_batch_size",
        Unit::Count,
        "commands committed together by one SQLite group commit"
    );
}

/// The `operation` label of an operation.
pub fn operation_label(op: Option<Operation>) -> &'static str {
    match op {
        Some(Operation::SendRequest) => "SendRequest",
        Some(Operation::SendResponse) => "SendResponse",
        Some(Operation::GetRequest) => "GetRequest",
        Some(Operation::GetResponse) => "GetResponse",
        Some(Operation::Ack) => "Ack",
        Some(Operation::GetStatus) => "GetStatus",
        Some(Operation::GetIncomingQueueStatistics) => "GetIncomingQueueStatistics",
        None => "unknown",
    }
}

/// The `fault` label of a fault's name (`None`: answered).
pub fn fault_label(fault: Option<&str>) -> &'static str {
    match fault {
        None => "none",
        Some(name) => FAULTS
            .iter()
            .find(|f| **f == name)
            .copied()
            .unwrap_or("other"),
    }
}

/// Records one SOAP call: its count by operation and fault, and its latency.
pub fn record_call(op: Option<Operation>, fault: Option<&str>, elapsed: Duration) {
    let operation = operation_label(op);
    metrics::counter!("mezhved_calls_total", "operation" => operation, "fault" => fault_label(fault))
        .increment(1);
    metrics::histogram!("mezhved_call_duration_seconds", "operation" => operation)
        .record(elapsed.as_secs_f64());
}

/// `GET /metrics`.
pub async fn endpoint(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let expected = &state.config.metrics.token_sha256;
    if !expected.is_empty() {
        let allowed = crate::rest::bearer_token(&request)
            .is_some_and(|t| crate::rest::token_matches(t, expected));
        if !allowed {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
                "a metrics bearer token is required\n",
            )
                .into_response();
        }
    }
    let mut text = install().render();
    match gateway_gauges(&state).await {
        Ok(gauges) => text.push_str(&gauges),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the store could not be read");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the store could not be read: {e}\n"),
            )
                .into_response();
        }
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// A label value escaped for the text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

/// This gateway's gauges, from one read of its store.
async fn gateway_gauges(state: &AppState) -> Result<String, mezhved_store::StoreError> {
    let now_ms = mezhved_core::clock::to_ms(state.clock.now());
    let snapshot = state.store.metrics_snapshot().await?;
    let registry = state.registry.get();
    // Every registered system's three queues, at zero unless pending; a queue of a system
    // the registry no longer knows is summed into `other`.
    let queues = [Queue::Requests, Queue::Responses, Queue::Statuses];
    let mut depth: BTreeMap<(String, &'static str), (u64, Option<i64>)> = BTreeMap::new();
    for system in &registry.data.systems {
        for q in queues {
            depth.insert((system.mnemonic.clone(), q.name()), (0, None));
        }
    }
    for q in &snapshot.queues {
        let system = if registry.system(&q.recipient_system).is_some() {
            q.recipient_system.clone()
        } else {
            "other".to_string()
        };
        let entry = depth.entry((system, q.queue.name())).or_insert((0, None));
        entry.0 += q.pending;
        entry.1 = match (entry.1, q.oldest_received_at_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let mut out = String::with_capacity(256 + depth.len() * 160);
    family(
        &mut out,
        "mezhved_queue_depth",
        "messages pending (not acknowledged) per recipient system and queue",
    );
    for ((system, queue), (pending, _)) in &depth {
        let _ = writeln!(
            out,
            "mezhved_queue_depth{{system=\"{}\",queue=\"{queue}\"}} {pending}",
            escape(system)
        );
    }
    family(
        &mut out,
        "mezhved_queue_oldest_age_seconds",
        "age of the oldest pending message per recipient system and queue (0: empty)",
    );
    for ((system, queue), (_, oldest)) in &depth {
        let age = oldest.map_or(0.0, |at| (now_ms - at).max(0) as f64 / 1000.0);
        let _ = writeln!(
            out,
            "mezhved_queue_oldest_age_seconds{{system=\"{}\",queue=\"{queue}\"}} {age}",
            escape(system)
        );
    }
    family(
        &mut out,
        "mezhved_overdue_requests",
        "requests open past their reply deadline",
    );
    let _ = writeln!(out, "mezhved_overdue_requests {}", snapshot.overdue);
    family(
        &mut out,
        "mezhved_journal_events",
        "events in the central journal (the Merkle log's size)",
    );
    let _ = writeln!(out, "mezhved_journal_events {}", snapshot.journal_size);
    family(
        &mut out,
        "mezhved_checkpoint_age_seconds",
        "seconds since the latest signed journal checkpoint (-1: none yet)",
    );
    let age = snapshot
        .latest_checkpoint_ms
        .map_or(-1.0, |at| (now_ms - at).max(0) as f64 / 1000.0);
    let _ = writeln!(out, "mezhved_checkpoint_age_seconds {age}");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(operation_label(None), "unknown");
        for op in Operation::ALL {
            assert!(OPERATIONS.contains(&operation_label(Some(op))));
        }
        assert_eq!(fault_label(None), "none");
        assert_eq!(fault_label(Some("AccessDenied")), "AccessDenied");
        assert_eq!(fault_label(Some("made up")), "other");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn every_fault_the_exchange_answers_with_is_listed() {
        use mezhved_core::error::ExchangeError as E;
        let errors = [
            E::InvalidContent(Vec::new()),
            E::SenderIsNotRegistered(String::new()),
            E::InvalidMessageIdFormat(String::new()),
            E::StaleMessageId(String::new()),
            E::MessageIsAlreadySent(String::new()),
            E::AccessDenied(String::new()),
            E::BusinessDataTypeIsNotSupported {
                namespace: String::new(),
                local_name: String::new(),
            },
            E::UnknownMessageType(String::new()),
            E::RecipientIsNotFound(String::new()),
            E::IncorrectResponseContentType(String::new()),
            E::TargetMessageIsNotFound(String::new()),
            E::AttachmentContentMiscoordination(String::new()),
            E::AttachmentSizeLimitExceeded {
                permitted: 1,
                real: 2,
            },
            E::EndOfLifeReached(String::new()),
            E::Internal(String::new()),
        ];
        for e in errors {
            let name = e.fault().name;
            assert_eq!(fault_label(Some(name)), name);
        }
    }
}
