//! The auditor's REST API under `/api/v1/journal` (docs/journal.md has every route).
//!
//! Invariants:
//! - Only auditor credentials (`[[auditors]]`, bearer tokens) reach these routes; the
//!   operator's token is refused (403) and so is everything else (401). Participant
//!   systems have no credential here at all.
//! - Every request is journaled as an `auditor.query` event (who, what, parameters,
//!   result count) before it is answered; if that fails, nothing is answered (503).
//! - Search details never enter a query's record: a `subject` given in a search is turned
//!   into its keyed hash first, and only the hash is journaled.

use crate::rest::{bearer_token, token_matches, Body, Params, Problem};
use crate::server::AppState;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use mezhved_core::card::{subject_hash, SearchDetail};
use mezhved_core::journal::{AttestTarget, JournalError, Verdict};
use mezhved_journal::merkle;
use mezhved_store::journal::{hex, uuid_text};
use mezhved_store::{Card, CardFilter, GlobalId, Hash, JournalEvent, Store, StoreError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The authenticated auditor.
#[derive(Debug, Clone)]
pub struct Auditor(pub String);

fn problem(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Problem {
    Problem {
        status,
        title,
        detail: detail.into(),
    }
}

impl From<JournalError> for Problem {
    fn from(e: JournalError) -> Self {
        match e {
            JournalError::Store(s) => s.into(),
            JournalError::Invalid(m) => problem(StatusCode::BAD_REQUEST, "Invalid request", m),
            other => problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Journal failure",
                other.to_string(),
            ),
        }
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidRequest(m) => problem(StatusCode::BAD_REQUEST, "Invalid request", m),
            StoreError::NotFound(m) => problem(StatusCode::NOT_FOUND, "Not found", m),
            other => problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Store failure",
                other.to_string(),
            ),
        }
    }
}

pub(crate) async fn require_auditor(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = match bearer_token(&request) {
        Some(t) => t.to_string(),
        None => {
            return problem(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "an auditor bearer token is required",
            )
            .into_response()
        }
    };
    if let Some(a) = state
        .config
        .auditors
        .iter()
        .find(|a| token_matches(&token, &a.token_sha256))
    {
        request.extensions_mut().insert(Auditor(a.name.clone()));
        return next.run(request).await;
    }
    if token_matches(&token, &state.config.operator.token_sha256) {
        return problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "the journal is read by auditors; the operator's credential does not open it",
        )
        .into_response();
    }
    problem(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "the auditor token is not valid",
    )
    .into_response()
}

/// Journals the query; the caller answers only on success.
pub(crate) async fn record(
    state: &AppState,
    auditor: &Auditor,
    query: &str,
    parameters: Value,
    results: Option<u64>,
) -> Result<(), Problem> {
    state
        .journal
        .record_query(&auditor.0, query, parameters, results)
        .await
        .map(|_| ())
        .map_err(|e| {
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Journal unavailable",
                format!("the query could not be journaled, so it is not answered: {e}"),
            )
        })
}

fn parse_uuid(what: &str, text: &str) -> Result<GlobalId, Problem> {
    uuid::Uuid::parse_str(text.trim())
        .map(|u| *u.as_bytes())
        .map_err(|e| {
            problem(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                format!("{what}: {e}"),
            )
        })
}

fn parse_hash(what: &str, text: &str) -> Result<Hash, Problem> {
    let bytes = ::hex::decode(text.trim()).map_err(|e| {
        problem(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            format!("{what}: {e}"),
        )
    })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        problem(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            format!("{what}: a SHA-256 is 64 hex digits"),
        )
    })
}

fn parse_time(what: &str, text: &str) -> Result<i64, Problem> {
    if let Ok(ms) = text.trim().parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    Err(problem(
        StatusCode::BAD_REQUEST,
        "Invalid request",
        format!("{what}: \"{text}\" is neither RFC 3339, YYYY-MM-DD nor milliseconds"),
    ))
}

/// A card search as the API takes it (query string or JSON body).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Search {
    pub from: Option<String>,
    pub to: Option<String>,
    pub agency: Option<String>,
    pub system: Option<String>,
    pub kind_namespace: Option<String>,
    pub kind_root: Option<String>,
    pub service: Option<String>,
    pub legal_act: Option<String>,
    pub status: Option<String>,
    pub message_type: Option<String>,
    /// `true`: past the reply deadline without a final answer, now.
    pub overdue: Option<bool>,
    pub global_id: Option<String>,
    pub sender_message_id: Option<String>,
    pub registration_number: Option<String>,
    pub subject_hash: Option<String>,
    /// Search details (JSON body only): hashed with the operator's key, never journaled.
    pub subject: Vec<SubjectDetail>,
    pub after: Option<String>,
    pub limit: Option<u32>,
    /// `ndjson` or `csv`: for `/export` only.
    pub format: Option<String>,
}

/// One search detail (name and value, as in the request card's `SearchDetails`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectDetail {
    pub name: String,
    pub value: String,
}

impl Search {
    /// The store's filter, and the parameters as journaled (the subject as its hash).
    pub fn to_filter(
        &self,
        subject_key: &[u8],
        now_ms: i64,
    ) -> Result<(CardFilter, Value), Problem> {
        let subject = if self.subject.is_empty() {
            self.subject_hash
                .as_deref()
                .map(|h| parse_hash("subject_hash", h))
                .transpose()?
        } else {
            if self.subject_hash.is_some() {
                return Err(problem(
                    StatusCode::BAD_REQUEST,
                    "Invalid request",
                    "give subject or subject_hash, not both",
                ));
            }
            let details: Vec<SearchDetail> = self
                .subject
                .iter()
                .map(|d| SearchDetail {
                    name: d.name.clone(),
                    value: d.value.clone(),
                })
                .collect();
            Some(subject_hash(subject_key, &details).map_err(|e| {
                problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Hash failure",
                    e.to_string(),
                )
            })?)
        };
        let filter = CardFilter {
            from_ms: self
                .from
                .as_deref()
                .map(|t| parse_time("from", t))
                .transpose()?,
            to_ms: self
                .to
                .as_deref()
                .map(|t| parse_time("to", t))
                .transpose()?,
            agency: self.agency.clone(),
            system: self.system.clone(),
            kind_namespace: self.kind_namespace.clone(),
            kind_root: self.kind_root.clone(),
            service: self.service.clone(),
            legal_act: self.legal_act.clone(),
            status: self.status.clone(),
            message_type: self.message_type.clone(),
            overdue_at_ms: self.overdue.filter(|o| *o).map(|_| now_ms),
            global_id: self
                .global_id
                .as_deref()
                .map(|g| parse_uuid("global_id", g))
                .transpose()?,
            sender_message_id: self.sender_message_id.clone(),
            registration_number: self.registration_number.clone(),
            subject_hash: subject,
            after: self
                .after
                .as_deref()
                .map(|g| parse_uuid("after", g))
                .transpose()?,
            limit: self.limit,
        };
        let mut recorded = json!({
            "from": filter.from_ms, "to": filter.to_ms, "agency": filter.agency,
            "system": filter.system, "kind_namespace": filter.kind_namespace,
            "kind_root": filter.kind_root, "service": filter.service,
            "legal_act": filter.legal_act, "status": filter.status,
            "message_type": filter.message_type, "overdue": self.overdue,
            "global_id": self.global_id, "sender_message_id": filter.sender_message_id,
            "registration_number": filter.registration_number,
            "subject_hash": filter.subject_hash.map(|h| hex(&h)),
            "after": self.after, "limit": filter.limit,
        });
        if let Some(map) = recorded.as_object_mut() {
            map.retain(|_, v| !v.is_null());
        }
        Ok((filter, recorded))
    }
}

/// A card as the API shows it.
pub fn card_json(c: &Card) -> Value {
    json!({
        "global_id": uuid_text(&c.global_id),
        "queue": c.queue.name(),
        "sender_system": c.sender_system,
        "sender_message_id": c.sender_message_id,
        "recipient_system": c.recipient_system,
        "kind": { "namespace": c.kind_namespace, "root": c.kind_root },
        "original_global_id": c.original_global_id.as_ref().map(uuid_text),
        "checksum": hex(&c.checksum),
        "received_at": rfc3339(c.received_at_ms),
        "status": c.status,
        "test": c.test_message,
        "details": c.details,
    })
}

pub fn event_json(e: &JournalEvent) -> Value {
    json!({
        "seq": e.seq,
        "at": rfc3339(e.at_ms),
        "type": e.event_type,
        "actor": e.actor,
        "global_id": e.global_id.as_ref().map(uuid_text),
        "leaf": String::from_utf8_lossy(&e.leaf),
        "leaf_hash": hex(&merkle::leaf_hash(&e.leaf)),
    })
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn now_ms(state: &AppState) -> i64 {
    mezhved_core::clock::to_ms(state.clock.now())
}

async fn search_cards(
    state: &AppState,
    auditor: &Auditor,
    query: &str,
    search: Search,
) -> Result<Json<Value>, Problem> {
    if search.format.is_some() {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "format is a parameter of /export",
        ));
    }
    let (filter, recorded) = search.to_filter(&state.subject_key, now_ms(state))?;
    let cards = state.store.query_cards(filter.clone()).await?;
    record(state, auditor, query, recorded, Some(cards.len() as u64)).await?;
    let limit = filter
        .limit
        .unwrap_or(100)
        .clamp(1, mezhved_store::journal::MAX_PAGE) as usize;
    let next = (cards.len() == limit)
        .then(|| cards.last().map(|c| uuid_text(&c.global_id)))
        .flatten();
    Ok(Json(json!({
        "cards": cards.iter().map(card_json).collect::<Vec<_>>(),
        "next": next,
    })))
}

async fn get_cards(
    State(state): State<Arc<AppState>>,
    Extension(auditor): Extension<Auditor>,
    Params(search): Params<Search>,
) -> Result<Json<Value>, Problem> {
    search_cards(&state, &auditor, "cards", search).await
}

async fn post_search(
    State(state): State<Arc<AppState>>,
    Extension(auditor): Extension<Auditor>,
    Body(search): Body<Search>,
) -> Result<Json<Value>, Problem> {
    search_cards(&state, &auditor, "search", search).await
}

async fn get_card(
    State(state): State<Arc<AppState>>,
    Extension(auditor): Extension<Auditor>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let gid = parse_uuid("global_id", &id)?;
    let card = state.store.card(gid).await?;
    let events = state.store.journal_events_of(gid).await?;
    record(
        &state,
        &auditor,
        "card",
        json!({ "global_id": id }),
        Some(card.is_some() as u64),
    )
    .await?;
    let card =
        card.ok_or_else(|| problem(StatusCode::NOT_FOUND, "Not found", format!("no card {id}")))?;
    Ok(Json(json!({
        "card": card_json(&card),
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    from: u64,
    #[serde(default = "default_events")]
    limit: usize,
}

fn default_events() -> usize {
    100
}

async fn get_events(
    State(state): State<Arc<AppState>>,
    Extension(auditor): Extension<Auditor>,
    Params(q): Params<EventsQuery>,
) -> Result<Json<Value>, Problem> {
    let limit = q.limit.clamp(1, 1000);
    let events = state.store.journal_events(q.from, limit).await?;
    let size = state.store.journal_size().await?;
    record(
        &state,
        &auditor,
        "events",
        json!({ "from": q.from, "limit": limit }),
        Some(events.len() as u64),
    )
    .await?;
    Ok(Json(json!({
        "size": size,
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
    })))
}

pub fn checkpoint_json(cp: &mezhved_store::StoredCheckpoint) -> Value {
    json!({
        "size": cp.size,
        "root": hex(&cp.root),
        "made_at": rfc3339(cp.made_at_ms),
        "note": cp.note,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointsQuery {
    after: Option<u64>,
    #[serde(default = "default_events")]
    limit: usize,
}

async fn get_checkpoints(
    State(state): State<Arc<AppState>>,
    Extension(auditor): Extension<Auditor>,
    Params(q): Params<CheckpointsQuery>,
) -> Result<Json<Value>, Problem> {
    let limit = q.limit.clamp(1, 1000);
    let cps = state.store.checkpoints(q.after, limit).await?;
    record(
        &state,
        &auditor,
        "checkpoints",
        json!({ "after": q.after, "limit": limit }),
        Some(cps.len() as u64),
    )
    .await?;
    Ok(Json(
        json!({ "checkpoints": cps.iter().map(checkpoint_json).collect::<Vec<_>>() }),
    ))
}

async fn get_latest_checkpoint(
    State(state): State<Arc<AppState>>,
    Extension(auditor): Extension<Auditor>,
) -> Result<Json<Value>, Problem> {
    let cp = state.store.latest_checkpoint().await?;
    record(
        &state,
        &auditor,
        "checkpoint",
        json!({}),
        Some(cp.is_some() as u64),
    )
    .await?;
    let cp = cp.ok_or_else(|| {
        problem(
            StatusCode::NOT_FOUND,
            "Not found",
            "no checkpoint has been signed yet",
        )
    })?;
    Ok(Json(checkpoint_json(&cp)))
}

/// `POST /checkpoints`: sign one now (if the journal grew). The one write an auditor can
/// cause; it adds a signature, never changes an event.
async fn post_checkpoint(
    State(state): State<Arc<AppState>>,
    Extension(auditor): Extension<Auditor>,
) -> Result<Json<Value>, Problem> {
    record(&state, &auditor, "checkpoint.sign", json!({}), None).await?;
    let cp = state.journal.checkpoint().await?;
    let cp = cp.ok_or_else(|| {
        problem(
            StatusCode::CONFLICT,
            "Empty journal",
            "the journal has no events to sign",
        )
    })?;
    Ok(Json(checkpoint_json(&cp)))
}

async fn get_key(
    State(state): State<Arc<AppState>>,
    Extension(auditor): Extension<Auditor>,
) -> Result<Json<Value>, Problem> {
    let verifier = state.journal.verifier()?;
    record(&state, &auditor, "key", json!({}), Some(1)).await?;
    Ok(Json(json!({
        "origin": state.journal.origin(),
        "vkey": verifier.vkey(),
        "certificate": state.journal.certificate_pem(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionQuery {
    seq: u64,
    size: Option<u64>,
}

/// An inclusion proof of event `seq` as REST and CLI answer it: the tree size (`None`:
/// the journal's size now), its root, the leaf and the audit path.
pub async fn inclusion_json(
    store: &dyn Store,
    seq: u64,
    size: Option<u64>,
) -> Result<(u64, Value), StoreError> {
    let size = match size {
        Some(s) => s,
        None => store.journal_size().await?,
    };
    let proof = store.inclusion_proof(seq, size).await?;
    let root = store.journal_root(size).await?;
    let event = store.journal_events(seq, 1).await?.into_iter().next();
    let body = json!({
        "seq": seq,
        "size": size,
        "root": hex(&root),
        "leaf_hash": event.as_ref().map(|e| hex(&merkle::leaf_hash(&e.leaf))),
        "leaf": event.as_ref().map(|e| String::from_utf8_lossy(&e.leaf).into_owned()),
        "proof": proof.iter().map(|h| hex(h)).collect::<Vec<_>>(),
    });
    Ok((size, body))
}

/// A consistency proof between sizes `old` and `new` (`None`: now) with both roots.
pub async fn consistency_json(
    store: &dyn Store,
    old: u64,
    new: Option<u64>,
) -> Result<(u64, Value), StoreError> {
    let new = match new {
        Some(s) => s,
        None => store.journal_size().await?,
    };
    let proof = store.consistency_proof(old, new).await?;
    let old_root = store.journal_root(old).await?;
    let new_root = store.journal_root(new).await?;
    let body = json!({
        "old": old,
        "new": new,
        "old_root": hex(&old_root),
        "new_root": hex(&new_root),
        "proof": proof.iter().map(|h| hex(h)).collect::<Vec<_>>(),
    });
    Ok((new, body))
}

async fn get_inclusion(
    State(state): State<Arc<AppState>>,
    Extension(auditor): Extension<Auditor>,
    Params(q): Params<InclusionQuery>,
) -> Result<Json<Value>, Problem> {
    let (size, body) = inclusion_json(&*state.store, q.seq, q.size).await?;
    record(
        &state,
        &auditor,
        "proof.inclusion",
        json!({ "seq": q.seq, "size": size }),
        Some(1),
    )
    .await?;
    Ok(Json(body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    old: u64,
    new: Option<u64>,
}

async fn get_consistency(
    State(state): State<Arc<AppState>>,
    Extension(auditor): Extension<Auditor>,
    Params(q): Params<ConsistencyQuery>,
) -> Result<Json<Value>, Problem> {
    let (new, body) = consistency_json(&*state.store, q.old, q.new).await?;
    record(
        &state,
        &auditor,
        "proof.consistency",
        json!({ "old": q.old, "new": new }),
        Some(1),
    )
    .await?;
    Ok(Json(body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttestBody {
    global_id: Option<String>,
    registration_number: Option<String>,
    /// The checksum of the copy the presenter holds (64 hex digits).
    checksum: String,
}

async fn post_attest(
    State(state): State<Arc<AppState>>,
    Extension(auditor): Extension<Auditor>,
    Body(body): Body<AttestBody>,
) -> Result<Json<Value>, Problem> {
    let checksum = parse_hash("checksum", &body.checksum)?;
    let target = match (&body.global_id, &body.registration_number) {
        (Some(g), None) => AttestTarget::GlobalId(parse_uuid("global_id", g)?),
        (None, Some(n)) if !n.trim().is_empty() => {
            AttestTarget::RegistrationNumber(n.trim().into())
        }
        _ => {
            return Err(problem(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                "name the message by exactly one of global_id or registration_number",
            ))
        }
    };
    let results = state.journal.attest(target, checksum).await?;
    record(
        &state,
        &auditor,
        "attest",
        json!({ "global_id": body.global_id, "registration_number": body.registration_number, "checksum": body.checksum }),
        Some(results.len() as u64),
    )
    .await?;
    Ok(Json(attestation_json(&results).1))
}

/// An attestation's answer (REST and CLI): the overall verdict (`unknown` when the
/// journal has no such message, `match` only if every message it names matches) and,
/// per message, the card, the registering event, a signed checkpoint and the proof.
pub fn attestation_json(results: &[mezhved_core::journal::Attested]) -> (Verdict, Value) {
    let verdict = if results.is_empty() {
        Verdict::Unknown
    } else if results.iter().all(|r| r.verdict == Verdict::Match) {
        Verdict::Match
    } else {
        Verdict::Mismatch
    };
    let body = json!({
        "verdict": verdict,
        "messages": results.iter().map(|r| json!({
            "verdict": r.verdict,
            "registered_checksum": hex(&r.registered_checksum),
            "card": card_json(&r.card),
            "event": event_json(&r.event),
            "checkpoint": checkpoint_json(&r.checkpoint),
            "inclusion_proof": r.inclusion_proof.iter().map(|h| hex(h)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    (verdict, body)
}

/// `GET /export?format=ndjson|csv&<filter>`: every matching card, streamed page by page.
/// Journaled when it begins (with its filter; the count is not known until the end).
async fn get_export(
    State(state): State<Arc<AppState>>,
    Extension(auditor): Extension<Auditor>,
    Params(mut search): Params<Search>,
) -> Result<Response, Problem> {
    let csv = match search.format.take().as_deref().unwrap_or("ndjson") {
        "ndjson" => false,
        "csv" => true,
        other => {
            return Err(problem(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                format!("format \"{other}\": ndjson or csv"),
            ))
        }
    };
    search.limit = Some(mezhved_store::journal::MAX_PAGE);
    let (filter, mut recorded) = search.to_filter(&state.subject_key, now_ms(&state))?;
    if let Some(m) = recorded.as_object_mut() {
        m.insert("format".into(), if csv { "csv" } else { "ndjson" }.into());
        m.remove("limit");
    }
    record(&state, &auditor, "export", recorded, None).await?;
    let store = state.store.clone();
    let header_line = csv.then(|| format!("{}\n", CSV_COLUMNS.join(",")));
    let stream =
        futures_util::stream::unfold((Some(filter), header_line), move |(filter, header)| {
            let store = store.clone();
            async move {
                if let Some(h) = header {
                    return Some((
                        Ok::<_, std::io::Error>(bytes::Bytes::from(h)),
                        (filter, None),
                    ));
                }
                let mut filter = filter?;
                let cards = match store.query_cards(filter.clone()).await {
                    Ok(c) => c,
                    Err(e) => {
                        return Some((Err(std::io::Error::other(e.to_string())), (None, None)))
                    }
                };
                if cards.is_empty() {
                    return None;
                }
                let mut out = String::new();
                for c in &cards {
                    if csv {
                        out.push_str(&csv_row(c));
                    } else {
                        out.push_str(&card_json(c).to_string());
                    }
                    out.push('\n');
                }
                let full = cards.len() as u32 == mezhved_store::journal::MAX_PAGE;
                filter.after = cards.last().map(|c| c.global_id);
                Some((Ok(bytes::Bytes::from(out)), (full.then_some(filter), None)))
            }
        });
    let mut response = axum::body::Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(if csv {
            "text/csv; charset=utf-8"
        } else {
            "application/x-ndjson"
        }),
    );
    Ok(response)
}

pub const CSV_COLUMNS: &[&str] = &[
    "global_id",
    "message_type",
    "queue",
    "received_at",
    "sender_agency",
    "sender_system",
    "sender_message_id",
    "recipient_agency",
    "recipient_system",
    "kind_namespace",
    "kind_root",
    "service_registry_number",
    "status",
    "checksum",
    "sender_registration_number",
    "receiver_registration_number",
    "test",
];

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

pub fn csv_row(c: &Card) -> String {
    let d = &c.details;
    let s = |p: &str| {
        d.pointer(p)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    [
        uuid_text(&c.global_id),
        s("/message_type"),
        c.queue.name().to_string(),
        rfc3339(c.received_at_ms),
        s("/sender_agency"),
        c.sender_system.clone(),
        c.sender_message_id.clone(),
        s("/recipient_agency"),
        c.recipient_system.clone(),
        c.kind_namespace.clone(),
        c.kind_root.clone(),
        s("/service/registry_number"),
        c.status.clone(),
        hex(&c.checksum),
        s("/sender_registration/number"),
        s("/receiver_registration/number"),
        c.test_message.to_string(),
    ]
    .iter()
    .map(|v| csv_field(v))
    .collect::<Vec<_>>()
    .join(",")
}

pub fn journal_router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/cards", get(get_cards))
        .route("/cards/{id}", get(get_card))
        .route("/search", post(post_search))
        .route("/export", get(get_export))
        .route("/events", get(get_events))
        .route("/checkpoints", get(get_checkpoints).post(post_checkpoint))
        .route("/checkpoint", get(get_latest_checkpoint))
        .route("/key", get(get_key))
        .route("/proof/inclusion", get(get_inclusion))
        .route("/proof/consistency", get(get_consistency))
        .route("/attest", post(post_attest))
        .route_layer(middleware::from_fn_with_state(state, require_auditor))
}
