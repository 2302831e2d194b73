//! Operator monitoring over HTTP (docs/monitoring.md): `/health`, `/health/live`,
//! `/health/ready` with component checks; service health per information system and kind
//! under `/api/v1/monitoring`; the maintenance switch at `/api/v1/maintenance`.
//!
//! Cheapness invariant: one service-health answer is one store read (queue counters, and
//! partial indexes over pending messages, open overdue requests and recently closed
//! requests) plus the in-memory call activity the exchange records; nothing here takes
//! the store's writer except the readiness probe and the maintenance switch (and the
//! alert loop's flush of last-poll times, [`flush_activity`]).

use crate::rest::{Body, Problem};
use crate::server::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mezhved_core::clock::{from_ms, to_ms, xs_datetime};
use mezhved_core::monitoring::{
    assess, certificate_days_left, percentile, Assessment, Finding, Light, Maintenance, Measures,
};
use mezhved_store::{MonitoringSnapshot, NewEvent};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// At most this many closed requests — the most recent of the window — feed its
/// answer-time percentiles: enough for a p95 to within a fraction of a percent, and a
/// bounded read (each sample is a row lookup) however busy the region is.
pub const MAX_ANSWER_SAMPLES: usize = 4_000;

/// An instant (ms) as the answers write it: `xs:dateTime` in UTC.
pub(crate) fn time(ms: i64) -> String {
    xs_datetime(from_ms(ms))
}

fn store_problem(e: mezhved_store::StoreError) -> Problem {
    Problem {
        status: StatusCode::SERVICE_UNAVAILABLE,
        title: "Store failure",
        detail: e.to_string(),
    }
}

// --- service health ---

/// Answer times of a window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AnswerTimes {
    pub count: usize,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
}

fn answer_times(mut v: Vec<i64>) -> AnswerTimes {
    AnswerTimes {
        count: v.len(),
        p50_ms: percentile(&mut v, 50),
        p95_ms: percentile(&mut v, 95),
    }
}

/// One kind of information as seen from one system.
#[derive(Debug, Clone, Serialize)]
pub struct KindHealth {
    pub namespace: String,
    pub root_element: String,
    /// The registry's name of the kind (empty if it is no longer registered).
    pub name: String,
    /// `provider` when this system answers the kind, `consumer` when it only receives
    /// answers of it.
    pub role: &'static str,
    pub state: Light,
    pub rule: String,
    pub reasons: Vec<String>,
    /// The rules that fired, as values (the dashboard's Russian texts).
    #[serde(skip)]
    pub findings: Vec<(Light, Finding)>,
    /// The last GetRequest/GetResponse that took this kind's messages (selecting it, or
    /// none), as this node saw it or the stored last poll.
    pub last_drain_at: Option<String>,
    pub pending: u64,
    pub oldest_pending_at: Option<String>,
    pub oldest_pending_age_seconds: Option<i64>,
    pub overdue: u64,
    pub response_time: AnswerTimes,
}

/// One information system's health.
#[derive(Debug, Clone, Serialize)]
pub struct SystemHealth {
    pub mnemonic: String,
    pub participant: String,
    pub name: String,
    pub state: Light,
    pub rule: String,
    pub reasons: Vec<String>,
    /// The rules that fired, as values (the dashboard's Russian texts).
    #[serde(skip)]
    pub findings: Vec<(Light, Finding)>,
    pub last_poll_at: Option<String>,
    pub last_poll_age_seconds: Option<i64>,
    pub last_success_at: Option<String>,
    pub pending: u64,
    pub oldest_pending_at: Option<String>,
    pub oldest_pending_age_seconds: Option<i64>,
    pub calls: u64,
    pub faults: u64,
    pub rejections: u64,
    pub error_rate: Option<f64>,
    pub rejection_rate: Option<f64>,
    pub response_time: AnswerTimes,
    pub overdue: u64,
    pub certificate_days_left: Option<i64>,
    pub push: bool,
    pub kinds: Vec<KindHealth>,
    /// What the rules read (for the alert rules; not serialised).
    #[serde(skip)]
    pub measures: Measures,
}

/// Every system's health at one instant.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub at: String,
    pub window_seconds: u64,
    pub registry_version: u64,
    pub systems: Vec<SystemHealth>,
}

#[derive(Default)]
struct KindAcc {
    pending: u64,
    oldest: Option<i64>,
    overdue: u64,
    times: Vec<i64>,
}

/// The last store snapshot of the monitoring figures and when (gateway clock, ms) it was
/// read. Behind an async mutex, so that readers arriving together wait for one read
/// instead of each making their own.
#[derive(Debug, Default)]
pub struct SnapshotCache(tokio::sync::Mutex<Option<(i64, Arc<MonitoringSnapshot>)>>);

/// The store's figures at `now_ms`, read at most once per `snapshot_ttl_ms`: the queue
/// counters, oldest ages, overdue counts and answer times cost a few milliseconds under
/// load (up to `MAX_ANSWER_SAMPLES` rows), and a dashboard, a Prometheus scraper and the
/// alert loop may all ask within the same second.
async fn snapshot(
    state: &AppState,
    now_ms: i64,
    since: i64,
) -> Result<Arc<MonitoringSnapshot>, Problem> {
    let ttl = i64::try_from(state.config.monitoring.snapshot_ttl_ms).unwrap_or(i64::MAX);
    let read = || async {
        state
            .store
            .monitoring_snapshot(since, MAX_ANSWER_SAMPLES)
            .await
            .map(Arc::new)
            .map_err(store_problem)
    };
    if ttl == 0 {
        return read().await;
    }
    let mut cached = state.monitoring_cache.0.lock().await;
    if let Some((at, snap)) = cached.as_ref() {
        // (A clock set back makes the cached read too new: read again.)
        if (0..ttl).contains(&(now_ms - at)) {
            return Ok(snap.clone());
        }
    }
    let snap = read().await?;
    *cached = Some((now_ms, snap.clone()));
    Ok(snap)
}

/// Computes every system's health at `now_ms` (the REST answers and the alert rules).
pub async fn overview(state: &AppState, now_ms: i64) -> Result<Overview, Problem> {
    let m = &state.config.monitoring;
    let thresholds = m.thresholds();
    let window_ms = i64::try_from(m.window_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
    let since = now_ms.saturating_sub(window_ms);
    let snap = snapshot(state, now_ms, since).await?;
    let registry = state.registry.get();
    let monitor = state.exchange.monitor();
    // (system, namespace, root) → what the store says.
    let mut kinds: BTreeMap<(String, String, String), KindAcc> = BTreeMap::new();
    let key = |s: &str, ns: &str, r: &str| (s.to_string(), ns.to_string(), r.to_string());
    for q in &snap.queues {
        let k = kinds
            .entry(key(&q.recipient_system, &q.kind_namespace, &q.kind_root))
            .or_default();
        k.pending += q.pending;
        let q = q.clone();
        k.oldest = match (k.oldest, q.oldest_received_at_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    for o in &snap.overdue {
        kinds
            .entry(key(&o.recipient_system, &o.kind_namespace, &o.kind_root))
            .or_default()
            .overdue += o.overdue;
    }
    for t in &snap.answer_times {
        kinds
            .entry(key(&t.recipient_system, &t.kind_namespace, &t.kind_root))
            .or_default()
            .times
            .push(t.millis);
    }
    for k in &registry.data.kinds {
        kinds
            .entry(key(&k.provider_system, &k.namespace, &k.root_element))
            .or_default();
    }
    // Last poll and success: this node's memory, or a later flush (another node, or
    // before a restart).
    let stored: std::collections::HashMap<&str, &mezhved_store::SystemActivity> = snap
        .activity
        .iter()
        .map(|a| (a.system.as_str(), a))
        .collect();
    let later = |a: Option<i64>, b: Option<i64>| a.max(b);
    let age = |at: Option<i64>| at.map(|a| (now_ms - a).max(0));
    let mut systems = Vec::with_capacity(registry.data.systems.len());
    for s in &registry.data.systems {
        let mut activity = monitor.summary(&s.mnemonic, since);
        if let Some(a) = stored.get(s.mnemonic.as_str()) {
            activity.last_poll_ms = later(activity.last_poll_ms, a.last_poll_at_ms);
            activity.last_success_ms = later(activity.last_success_ms, a.last_success_at_ms);
        }
        let certificate_days_left = s
            .certificates
            .iter()
            .filter_map(|pem| certificate_days_left(pem.as_bytes(), now_ms))
            .min();
        // The polling rule looks at drains: when a GetRequest (for a provider's kinds) or
        // a GetResponse (for a consumer's) last took this kind's messages — a GetStatus
        // keeps nothing moving. This node's memory and every node's flushes, the later
        // wins; with no drain known anywhere (a store from before drains were kept), the
        // stored last poll stands in.
        let drains = monitor.drains(&s.mnemonic);
        let flushed: Vec<&mezhved_store::SystemDrain> = snap
            .drains
            .iter()
            .filter(|d| d.system == s.mnemonic)
            .collect();
        let stored_poll = stored
            .get(s.mnemonic.as_str())
            .and_then(|a| a.last_poll_at_ms);
        let nothing_known =
            drains == mezhved_core::monitoring::Drains::default() && flushed.is_empty();
        let covering = |queue: mezhved_store::Queue, ns: &str, root: &str| {
            if nothing_known {
                return stored_poll;
            }
            let from_store = flushed
                .iter()
                .filter(|d| {
                    d.queue == queue && d.kind.as_ref().is_none_or(|(n, r)| n == ns && r == root)
                })
                .map(|d| d.drained_at_ms)
                .max();
            drains.covering(queue, ns, root).max(from_store)
        };
        // The system's own silence: that of its most neglected kind with messages waiting.
        let mut silent: Option<Option<i64>> = None;
        let mut kind_reports = Vec::new();
        let (mut pending, mut oldest, mut overdue, mut times) =
            (0u64, None::<i64>, 0u64, Vec::new());
        for ((system, ns, root), acc) in kinds.range(key(&s.mnemonic, "", "")..) {
            if *system != s.mnemonic {
                break;
            }
            let registered = registry
                .data
                .kinds
                .iter()
                .find(|k| k.namespace == *ns && k.root_element == *root);
            let provider = registered.is_some_and(|k| k.provider_system == s.mnemonic);
            let queue = if provider {
                mezhved_store::Queue::Requests
            } else {
                mezhved_store::Queue::Responses
            };
            let drained = covering(queue, ns, root);
            let poll_age_ms = age(drained);
            if acc.pending > 0 {
                silent = Some(match (silent, poll_age_ms) {
                    (Some(None), _) | (_, None) => None,
                    (Some(Some(a)), Some(b)) => Some(a.max(b)),
                    (None, b) => b,
                });
            }
            let measures = Measures {
                pending: acc.pending,
                oldest_pending_age_ms: age(acc.oldest),
                poll_age_ms,
                overdue: acc.overdue,
                certificate_days_left,
                ..Measures::default()
            };
            let Assessment {
                state,
                rule,
                reasons,
                findings,
            } = assess(&measures, &thresholds);
            pending += acc.pending;
            overdue += acc.overdue;
            oldest = match (oldest, acc.oldest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            times.extend_from_slice(&acc.times);
            kind_reports.push(KindHealth {
                namespace: ns.clone(),
                root_element: root.clone(),
                name: registered.map(|k| k.name.clone()).unwrap_or_default(),
                role: if provider { "provider" } else { "consumer" },
                state,
                rule,
                reasons,
                findings,
                last_drain_at: drained.map(time),
                pending: acc.pending,
                oldest_pending_at: acc.oldest.map(time),
                oldest_pending_age_seconds: age(acc.oldest).map(|a| a / 1000),
                overdue: acc.overdue,
                response_time: answer_times(acc.times.clone()),
            });
        }
        let measures = Measures {
            pending,
            oldest_pending_age_ms: age(oldest),
            poll_age_ms: silent.unwrap_or_else(|| age(activity.last_poll_ms)),
            calls: activity.calls,
            faults: activity.faults,
            overdue,
            certificate_days_left,
        };
        let a = assess(&measures, &thresholds);
        let rate = |n: u64| mezhved_core::monitoring::error_rate(activity.calls, n);
        systems.push(SystemHealth {
            mnemonic: s.mnemonic.clone(),
            participant: s.participant.clone(),
            name: s.name.clone(),
            state: a.state,
            rule: a.rule,
            reasons: a.reasons,
            findings: a.findings,
            last_poll_at: activity.last_poll_ms.map(time),
            last_poll_age_seconds: age(activity.last_poll_ms).map(|a| a / 1000),
            last_success_at: activity.last_success_ms.map(time),
            pending,
            oldest_pending_at: oldest.map(time),
            oldest_pending_age_seconds: age(oldest).map(|a| a / 1000),
            calls: activity.calls,
            faults: activity.faults,
            rejections: activity.rejections,
            error_rate: rate(activity.faults),
            rejection_rate: rate(activity.rejections),
            response_time: answer_times(times),
            overdue,
            certificate_days_left,
            push: s.push_url.is_some(),
            kinds: kind_reports,
            measures,
        });
    }
    Ok(Overview {
        at: time(now_ms),
        window_seconds: m.window_seconds,
        registry_version: registry.data.version,
        systems,
    })
}

fn now_ms(state: &AppState) -> i64 {
    to_ms(state.clock.now())
}

async fn get_systems(State(state): State<Arc<AppState>>) -> Result<Json<Overview>, Problem> {
    Ok(Json(overview(&state, now_ms(&state)).await?))
}

async fn get_system(
    State(state): State<Arc<AppState>>,
    Path(mnemonic): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    let o = overview(&state, now_ms(&state)).await?;
    let s = o
        .systems
        .into_iter()
        .find(|s| s.mnemonic == mnemonic)
        .ok_or_else(|| Problem {
            status: StatusCode::NOT_FOUND,
            title: "Not found",
            detail: format!("no information system {mnemonic} is registered"),
        })?;
    Ok(Json(json!({
        "at": o.at,
        "window_seconds": o.window_seconds,
        "system": s,
    })))
}

async fn get_agencies(
    State(state): State<Arc<AppState>>,
) -> Result<Json<serde_json::Value>, Problem> {
    let o = overview(&state, now_ms(&state)).await?;
    let registry = state.registry.get();
    let agencies: Vec<serde_json::Value> = registry
        .data
        .participants
        .iter()
        .map(|p| {
            let systems: Vec<&SystemHealth> = o
                .systems
                .iter()
                .filter(|s| s.participant == p.mnemonic)
                .collect();
            let worst = systems.iter().max_by_key(|s| s.state);
            json!({
                "mnemonic": p.mnemonic,
                "name": p.name,
                "state": worst.map(|s| s.state).unwrap_or(Light::Green),
                "rule": worst
                    .filter(|s| s.state != Light::Green)
                    .map(|s| format!("{}: {}", s.mnemonic, s.rule)),
                "systems": systems.iter().map(|s| json!({
                    "mnemonic": s.mnemonic, "state": s.state, "rule": s.rule,
                })).collect::<Vec<_>>(),
                "pending": systems.iter().map(|s| s.pending).sum::<u64>(),
                "overdue": systems.iter().map(|s| s.overdue).sum::<u64>(),
                "calls": systems.iter().map(|s| s.calls).sum::<u64>(),
                "faults": systems.iter().map(|s| s.faults).sum::<u64>(),
            })
        })
        .collect();
    Ok(Json(json!({ "at": o.at, "agencies": agencies })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverdueParams {
    limit: Option<usize>,
}

async fn get_overdue(
    State(state): State<Arc<AppState>>,
    crate::rest::Params(p): crate::rest::Params<OverdueParams>,
) -> Result<Json<serde_json::Value>, Problem> {
    let limit = p.limit.unwrap_or(500).clamp(1, 5000);
    let now = now_ms(&state);
    let rows = state
        .store
        .overdue_requests(limit)
        .await
        .map_err(store_problem)?;
    let items: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "global_id": r.global_id,
                "consumer_system": r.sender_system,
                "provider_system": r.recipient_system,
                "kind_namespace": r.kind_namespace,
                "kind_root": r.kind_root,
                "received_at": time(r.received_at_ms),
                "due_at": r.due_at_ms.map(time),
                "overdue_at": time(r.overdue_at_ms),
                "overdue_seconds": r.due_at_ms.map(|d| (now - d).max(0) / 1000),
            })
        })
        .collect();
    Ok(Json(
        json!({ "at": time(now), "count": items.len(), "overdue": items }),
    ))
}

async fn get_alerts(
    State(state): State<Arc<AppState>>,
) -> Result<Json<serde_json::Value>, Problem> {
    let alerts = state.store.active_alerts().await.map_err(store_problem)?;
    let items: Vec<serde_json::Value> = alerts
        .into_iter()
        .map(|a| {
            json!({
                "rule": a.rule,
                "subject": a.subject,
                "opened_at": time(a.opened_at_ms),
                "value": a.value,
                "detail": a.detail,
            })
        })
        .collect();
    Ok(Json(json!({ "at": time(now_ms(&state)), "alerts": items })))
}

/// `/api/v1/monitoring/…` (operator token).
pub fn monitoring_router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/systems", get(get_systems))
        .route("/systems/{mnemonic}", get(get_system))
        .route("/agencies", get(get_agencies))
        .route("/overdue", get(get_overdue))
        .route("/alerts", get(get_alerts))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            crate::rest::require_operator,
        ))
}

// --- maintenance ---

/// The settings key of the maintenance switch.
pub const MAINTENANCE_KEY: &str = "maintenance";

/// Loads the stored switch into the exchange (at start).
pub async fn load_maintenance(state: &AppState) -> Result<(), mezhved_store::StoreError> {
    if let Some(text) = state.store.setting(MAINTENANCE_KEY.into()).await? {
        match serde_json::from_str::<Maintenance>(&text) {
            Ok(m) => {
                if m.enabled {
                    tracing::warn!(reason = %m.reason, "starting in maintenance mode: SOAP calls are refused");
                }
                state.exchange.monitor().set_maintenance(Some(m));
            }
            Err(e) => tracing::error!(error = %e, "the stored maintenance switch is unreadable"),
        }
    }
    Ok(())
}

fn maintenance_json(m: Option<Maintenance>) -> serde_json::Value {
    match m {
        Some(m) => json!({
            "enabled": m.enabled,
            "reason": m.reason,
            "since": time(m.since_ms),
        }),
        None => json!({ "enabled": false, "reason": "", "since": null }),
    }
}

async fn get_maintenance(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(maintenance_json(
        state.exchange.monitor().maintenance_setting(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceBody {
    enabled: bool,
    #[serde(default)]
    reason: String,
}

/// Why the maintenance switch was not changed.
#[derive(Debug)]
pub(crate) enum SwitchError {
    /// The request itself is wrong (the message names the field).
    Invalid(&'static str),
    Store(mezhved_store::StoreError),
    Internal(String),
}

/// Turns maintenance on or off: checks the reason, stores the setting with its
/// `operator.maintenance` event in one transaction, then applies it. The one path for
/// the REST switch and the dashboard's; `via` marks where it came from in the event.
pub(crate) async fn switch_maintenance(
    state: &AppState,
    enabled: bool,
    reason: &str,
    actor: &str,
    via: Option<&str>,
) -> Result<Maintenance, SwitchError> {
    let reason = reason.trim().to_string();
    if enabled && reason.is_empty() {
        return Err(SwitchError::Invalid(
            "reason: say why the gateway goes into maintenance (clients see it)",
        ));
    }
    if reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(SwitchError::Invalid(
            "reason: at most 500 characters, no control characters",
        ));
    }
    // One switch at a time: stored, journaled and applied in the same order.
    let _one_at_a_time = state.maintenance_lock.lock().await;
    let now = now_ms(state);
    let m = Maintenance {
        enabled,
        reason: reason.clone(),
        since_ms: now,
    };
    let mut body = serde_json::Map::new();
    body.insert("enabled".into(), enabled.into());
    body.insert("reason".into(), reason.into());
    if let Some(via) = via {
        body.insert("via".into(), via.into());
    }
    let event = NewEvent {
        at_ms: now,
        event_type: "operator.maintenance".into(),
        global_id: None,
        actor: actor.into(),
        body,
    };
    let value = serde_json::to_string(&m).map_err(|e| SwitchError::Internal(e.to_string()))?;
    state
        .store
        .put_setting(MAINTENANCE_KEY.into(), value, event)
        .await
        .map_err(SwitchError::Store)?;
    tracing::warn!(enabled = m.enabled, reason = %m.reason, actor, "maintenance switched");
    state.exchange.monitor().set_maintenance(Some(m.clone()));
    Ok(m)
}

async fn put_maintenance(
    State(state): State<Arc<AppState>>,
    Body(b): Body<MaintenanceBody>,
) -> Result<Json<serde_json::Value>, Problem> {
    match switch_maintenance(&state, b.enabled, &b.reason, "operator", None).await {
        Ok(m) => Ok(Json(maintenance_json(Some(m)))),
        Err(SwitchError::Invalid(detail)) => Err(Problem {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            title: "Invalid request",
            detail: detail.into(),
        }),
        Err(SwitchError::Store(e)) => Err(store_problem(e)),
        Err(SwitchError::Internal(e)) => Err(Problem {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Internal error",
            detail: e,
        }),
    }
}

/// `/api/v1/maintenance` (operator token).
pub fn maintenance_router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(get_maintenance).put(put_maintenance))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            crate::rest::require_operator,
        ))
}

// --- /health ---

/// A component's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Degraded,
    Down,
}

/// One component check: its status, what was measured, the limit it is judged by.
#[derive(Debug, Clone, Serialize)]
pub struct Component {
    pub status: Status,
    pub value: serde_json::Value,
    pub threshold: serde_json::Value,
    pub detail: String,
}

fn by_limits(value: u64, degraded_at: u64, down_at: u64) -> Status {
    if value >= down_at {
        Status::Down
    } else if value >= degraded_at {
        Status::Degraded
    } else {
        Status::Ok
    }
}

/// Every component check at `now_ms`.
pub async fn components(state: &AppState, now_ms: i64) -> BTreeMap<&'static str, Component> {
    let m = &state.config.monitoring;
    let mut out = BTreeMap::new();
    // The store: a real commit through the writer. Wall-clock latency is an observation
    // only; no decision about a message depends on it.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let probe = state.store.health_probe(now_ms).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    out.insert(
        "store",
        match probe {
            Ok(()) => Component {
                status: if latency_ms > m.commit_latency_degraded_ms {
                    Status::Degraded
                } else {
                    Status::Ok
                },
                value: json!({ "commit_latency_ms": latency_ms }),
                threshold: json!({ "degraded_above_ms": m.commit_latency_degraded_ms }),
                detail: "a probe row committed through the writer".into(),
            },
            Err(e) => Component {
                status: Status::Down,
                value: json!({ "commit_latency_ms": latency_ms }),
                threshold: json!({ "degraded_above_ms": m.commit_latency_degraded_ms }),
                detail: format!("the probe commit failed: {e}"),
            },
        },
    );
    // Free disk in the data directory.
    let disk = match rustix::fs::statvfs(&state.config.data_dir) {
        Ok(v) => {
            let free_mb = v.f_bavail.saturating_mul(v.f_frsize) / (1024 * 1024);
            Component {
                status: if free_mb < m.disk_free_down_mb {
                    Status::Down
                } else if free_mb < m.disk_free_degraded_mb {
                    Status::Degraded
                } else {
                    Status::Ok
                },
                value: json!({ "free_mb": free_mb }),
                threshold: json!({ "degraded_below_mb": m.disk_free_degraded_mb, "down_below_mb": m.disk_free_down_mb }),
                detail: state.config.data_dir.display().to_string(),
            }
        }
        Err(e) => Component {
            status: Status::Down,
            value: serde_json::Value::Null,
            threshold: json!({ "degraded_below_mb": m.disk_free_degraded_mb, "down_below_mb": m.disk_free_down_mb }),
            detail: format!("statvfs {}: {e}", state.config.data_dir.display()),
        },
    };
    out.insert("disk", disk);
    // The deadline timer: how far the earliest claimable deadline is past now.
    let timer = match state.store.next_deadline_at().await {
        Ok(next) => {
            let lag_s = next.map(|n| (now_ms - n).max(0) / 1000).unwrap_or(0) as u64;
            Component {
                status: by_limits(
                    lag_s,
                    m.timer_lag_degraded_seconds,
                    m.timer_lag_down_seconds,
                ),
                value: json!({ "lag_seconds": lag_s, "next_deadline_at": next.map(time) }),
                threshold: json!({ "degraded_at_seconds": m.timer_lag_degraded_seconds, "down_at_seconds": m.timer_lag_down_seconds }),
                detail: "the earliest due deadline row against now".into(),
            }
        }
        Err(e) => Component {
            status: Status::Down,
            value: serde_json::Value::Null,
            threshold: json!({ "degraded_at_seconds": m.timer_lag_degraded_seconds, "down_at_seconds": m.timer_lag_down_seconds }),
            detail: format!("cannot read the deadlines: {e}"),
        },
    };
    out.insert("timer", timer);
    // The gateway's signing certificate.
    let days = std::fs::read(&state.config.gateway_key.certificate)
        .ok()
        .and_then(|pem| certificate_days_left(&pem, now_ms));
    out.insert(
        "certificate",
        Component {
            status: match days {
                None => Status::Down,
                Some(d) if d < 0 => Status::Down,
                Some(d) if d < m.certificate_warn_days => Status::Degraded,
                Some(_) => Status::Ok,
            },
            value: json!({ "days_left": days }),
            threshold: json!({ "degraded_below_days": m.certificate_warn_days, "down_below_days": 0 }),
            detail: state.config.gateway_key.certificate.display().to_string(),
        },
    );
    // The production calendar for this year, in the segment's time zone.
    let calendar = match &state.exchange.settings().deadlines {
        Some(rules) => {
            let year = {
                use chrono::Datelike;
                chrono::DateTime::<chrono::Utc>::from(from_ms(now_ms))
                    .with_timezone(&rules.time_zone)
                    .year()
            };
            let cal = rules.calendar.get();
            let covered = cal.covers(year);
            Component {
                status: if covered {
                    Status::Ok
                } else {
                    Status::Degraded
                },
                value: json!({ "year": year, "covered_years": cal.years() }),
                threshold: json!({ "must_cover": year }),
                detail: if covered {
                    format!("the production calendar covers {year}")
                } else {
                    format!(
                        "no production calendar for {year}: deadlines count the Labour Code's holidays only, without the Government's transfers"
                    )
                },
            }
        }
        None => Component {
            status: Status::Degraded,
            value: serde_json::Value::Null,
            threshold: serde_json::Value::Null,
            detail: "deadlines are not configured".into(),
        },
    };
    out.insert("calendar", calendar);
    out
}

async fn health_report(state: &AppState) -> Response {
    let now = now_ms(state);
    let comps = components(state, now).await;
    let worst = comps.values().map(|c| c.status).max().unwrap_or(Status::Ok);
    let maintenance = state.exchange.monitor().maintenance();
    let ready = worst != Status::Down && maintenance.is_none();
    let body = json!({
        "status": worst,
        "ready": ready,
        "at": time(now),
        "registry_version": state.registry.get().data.version,
        "maintenance": maintenance_json(maintenance.or_else(|| state.exchange.monitor().maintenance_setting())),
        "components": comps,
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut r = (code, Json(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /health` and `GET /health/ready`: every component; 503 when one is down or
/// maintenance is on.
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    health_report(&state).await
}

/// `GET /health/live`: the process answers (no store access).
pub async fn live(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "at": time(now_ms(&state)) }))
}

/// `/health`, `/health/live`, `/health/ready` (open: probes carry no credentials).
pub fn health_router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/health", get(ready))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

/// Writes this node's last poll, last success and drains per system to the store (the alert loop
/// does, every interval), so they survive a restart and other nodes see them.
pub async fn flush_activity(state: &AppState) -> Result<(), mezhved_store::StoreError> {
    let activity: Vec<mezhved_store::SystemActivity> = state
        .exchange
        .monitor()
        .last_activity()
        .into_iter()
        .map(|(system, poll, success)| mezhved_store::SystemActivity {
            system,
            last_poll_at_ms: poll,
            last_success_at_ms: success,
        })
        .collect();
    let drains: Vec<mezhved_store::SystemDrain> = state
        .exchange
        .monitor()
        .all_drains()
        .into_iter()
        .map(|(system, queue, kind, at)| mezhved_store::SystemDrain {
            system,
            queue,
            kind,
            drained_at_ms: at,
        })
        .collect();
    if !drains.is_empty() {
        state.store.save_drains(drains).await?;
    }
    if activity.is_empty() {
        return Ok(());
    }
    state.store.save_activity(activity).await
}
