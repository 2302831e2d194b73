//! The local HTTP API the agency's system calls (JSON; errors are RFC 9457 problem
//! documents), and `/push`, where the gateway delivers.
//!
//! | route | what |
//! |---|---|
//! | `POST /api/v1/requests` | submit a request (idempotent by `client_ref`) |
//! | `GET /api/v1/requests[?status=&client_ref=&after=&limit=]` | requests, oldest first, cursor paging |
//! | `GET /api/v1/requests/{id}` | one request: status, registrations, reply, statuses |
//! | `GET /api/v1/inbox[?direction=&state=&after=&limit=]` | delivered requests and responses |
//! | `GET /api/v1/inbox/{id}` | one delivered message |
//! | `GET /api/v1/inbox/{id}/attachments/{content_id}` | an attachment's bytes |
//! | `POST /api/v1/inbox/{id}/answer` | answer a delivered request (data, rejection or status) |
//! | `POST /api/v1/inbox/{id}/done` | the agency has taken the message over |
//! | `GET /api/v1/stats` | counts per state |
//! | `GET /health` | liveness, the store, the gateway's last success and error |
//! | `POST /push` | the gateway pushes a message (signed: no token) |
//!
//! Invariant: input is checked completely before anything is written, so a refused call
//! writes nothing; a 202 (or 200 for a repeat) is sent only after the row and its files
//! are durable.

use crate::files::StagedFile;
use crate::store::{AnswerKind, Answered, NewAnswer, NewRequest, Submitted, REQUEST_STATUSES};
use crate::Inner;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use bytes::Bytes;
use mezhved_client::provider::Answer;
use mezhved_client::{Attachment, RequestCard};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    let api = Router::new()
        .route("/requests", post(submit).get(list_requests))
        .route("/requests/{id}", get(get_request))
        .route("/inbox", get(list_inbox))
        .route("/inbox/{id}", get(get_inbox))
        .route("/inbox/{id}/attachments/{content_id}", get(get_attachment))
        .route("/inbox/{id}/answer", post(answer))
        .route("/inbox/{id}/done", post(done))
        .route("/stats", get(stats))
        .layer(middleware::from_fn_with_state(inner.clone(), authorise));
    Router::new()
        .nest("/api/v1", api)
        .route("/health", get(health))
        .route("/push", post(crate::push::receive))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(inner.config.api.max_body_bytes))
        .with_state(inner)
}

// ---------------------------------------------------------------------------------------
// Problems.

/// An RFC 9457 problem document.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    /// More members (e.g. the ID of the row a conflict is about).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            title,
            detail: detail.into(),
            extra: serde_json::Map::new(),
        }
    }

    fn invalid(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request", detail)
    }

    fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "Not found", detail)
    }

    fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Problem {
        self.extra.insert(key.to_string(), value.into());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert(
            "type".into(),
            format!(
                "urn://mezhved/adapter/problems/{}",
                self.title.to_lowercase().replace(' ', "-")
            )
            .into(),
        );
        body.insert("title".into(), self.title.into());
        body.insert("status".into(), self.status.as_u16().into());
        body.insert("detail".into(), self.detail.into());
        body.extend(self.extra);
        let mut r = (self.status, Json(serde_json::Value::Object(body))).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mezhved-adapter\""),
            );
        }
        r
    }
}

impl From<crate::store::StoreError> for Problem {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Store failure",
            e.to_string(),
        )
    }
}

async fn not_found() -> Problem {
    Problem::not_found("no such route")
}

/// Reads a JSON body whatever its content type: a syntax error is 400, a wrong shape
/// (missing field, wrong type, unknown field) 422.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => Problem::new(
            StatusCode::BAD_REQUEST,
            "Invalid JSON",
            format!("the body is not JSON: {e}"),
        ),
        _ => Problem::invalid(format!("the body does not have the expected shape: {e}")),
    })
}

fn query<T: serde::de::DeserializeOwned>(
    q: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, Problem> {
    q.map(|Query(v)| v)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "Invalid query", e.body_text()))
}

fn id_param(raw: &str, what: &str) -> Result<i64, Problem> {
    raw.parse()
        .map_err(|_| Problem::not_found(format!("no {what} {raw}")))
}

async fn authorise(State(inner): State<Arc<Inner>>, request: Request, next: Next) -> Response {
    let Some(expected) = &inner.token_sha256 else {
        return next.run(request).await;
    };
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token {
        Some(t) if Sha256::digest(t.as_bytes()).as_slice() == expected.as_slice() => {
            next.run(request).await
        }
        Some(_) => Problem::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "the bearer token is not the adapter's",
        )
        .into_response(),
        None => Problem::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "the API requires a bearer token (api.token_sha256)",
        )
        .into_response(),
    }
}

/// A URL path segment holding `s` (percent-encoded).
pub(crate) fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Input checks.

/// Checks business XML: well-formed, one element with a namespace, nothing around it
/// (an XML declaration is dropped). Returns what goes into `MessagePrimaryContent`.
pub(crate) fn check_xml(field: &str, xml: &str) -> Result<String, String> {
    let mut body = xml.trim();
    if body.starts_with("<?xml") {
        body = body
            .find("?>")
            .map(|end| body[end + 2..].trim_start())
            .ok_or_else(|| format!("{field}: the XML declaration is not closed"))?;
    }
    if body.is_empty() {
        return Err(format!("{field} is empty"));
    }
    let doc = mezhved_xml::parse(body.as_bytes(), &mezhved_xml::Limits::default())
        .map_err(|e| format!("{field} is not well-formed XML: {e}"))?;
    let top = doc.children(mezhved_xml::Document::DOCUMENT_NODE).count();
    if top != 1 {
        return Err(format!(
            "{field} must be exactly one element (no comments or processing instructions around it)"
        ));
    }
    let root = doc.root();
    if doc.element_ns_uri(root).is_empty() {
        let name = doc
            .element(root)
            .map(|e| e.local_name().to_string())
            .unwrap_or_default();
        return Err(format!(
            "{field}: the element <{name}> must be in the namespace of its kind of information"
        ));
    }
    Ok(body.to_string())
}

/// An attachment in a JSON body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBody {
    pub content_id: String,
    pub mime_type: String,
    /// Base64 (standard alphabet; whitespace ignored).
    pub data: String,
}

fn check_header_value(what: &str, v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > 200 || v.chars().any(|c| c.is_control() || c == '<' || c == '>') {
        return Err(format!(
            "{what} \"{v}\" must be 1 to 200 characters without control characters, '<' or '>'"
        ));
    }
    Ok(())
}

fn decode_files(files: &[FileBody]) -> Result<Vec<(String, String, Vec<u8>)>, String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        check_header_value(&format!("files[{i}].content_id"), &f.content_id)?;
        if f.content_id.contains(char::is_whitespace) {
            return Err(format!("files[{i}].content_id must not contain spaces"));
        }
        check_header_value(&format!("files[{i}].mime_type"), &f.mime_type)?;
        if !seen.insert(f.content_id.as_str()) {
            return Err(format!(
                "files[{i}].content_id \"{}\" is used twice",
                f.content_id
            ));
        }
        let b64: String = f.data.split_whitespace().collect();
        let data = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("files[{i}].data is not base64: {e}"))?;
        out.push((f.content_id.clone(), f.mime_type.clone(), data));
    }
    Ok(out)
}

/// Writes files and syncs their directory (before the row that names them commits).
async fn stage(
    inner: &Inner,
    files: Vec<(String, String, Vec<u8>)>,
) -> Result<Vec<StagedFile>, Problem> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let dir = inner.store.files().clone();
    tokio::task::spawn_blocking(move || {
        let mut staged = Vec::with_capacity(files.len());
        for (cid, mime, data) in &files {
            match dir.write(cid, mime, data) {
                Ok(s) => staged.push(s),
                Err(e) => {
                    dir.remove(staged.iter().map(|s: &StagedFile| s.file.as_str()));
                    return Err(e);
                }
            }
        }
        if let Err(e) = dir.sync() {
            dir.remove(staged.iter().map(|s| s.file.as_str()));
            return Err(e);
        }
        Ok(staged)
    })
    .await
    .map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            e.to_string(),
        )
    })?
    .map_err(|e| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Store failure",
            format!("attachment file: {e}"),
        )
    })
}

// ---------------------------------------------------------------------------------------
// Requests.

/// The body of `POST /api/v1/requests`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// The agency's idempotency key: the same key again finds the same request.
    pub client_ref: String,
    /// The business XML: one element in the kind's namespace.
    pub content: String,
    /// The request card (210-FZ art. 7.2); `sender_registration` (and `sent_on`) are
    /// filled in by the adapter when absent.
    #[serde(default)]
    pub card: Option<RequestCard>,
    #[serde(default)]
    pub files: Vec<FileBody>,
    /// Send the files as MTOM parts (otherwise inline base64).
    #[serde(default)]
    pub mtom: bool,
    /// RFC 3339: undelivered after it, the request expires.
    #[serde(default)]
    pub eol: Option<String>,
    #[serde(default)]
    pub test: bool,
    /// The first request of a chain (e.g. the request a clarification was about).
    #[serde(default)]
    pub reference_message_id: Option<String>,
}

fn submitted_json(v: &crate::store::RequestView) -> serde_json::Value {
    json!({
        "id": v.id,
        "client_ref": v.client_ref,
        "message_id": v.message_id,
        "status": v.status,
        "sender_registration": v.sender_registration,
    })
}

async fn submit(State(inner): State<Arc<Inner>>, body: Bytes) -> Result<Response, Problem> {
    let body: SubmitBody = json_body(&body)?;
    let client_ref = body.client_ref.trim();
    if client_ref.is_empty() || client_ref.len() > 200 || client_ref.chars().any(char::is_control) {
        return Err(Problem::invalid(
            "client_ref must be 1 to 200 characters without control characters",
        ));
    }
    let content = check_xml("content", &body.content).map_err(Problem::invalid)?;
    let files = decode_files(&body.files).map_err(Problem::invalid)?;
    let eol_ms = body
        .eol
        .as_deref()
        .map(|e| {
            chrono::DateTime::parse_from_rfc3339(e)
                .map(|t| t.timestamp_millis())
                .map_err(|err| {
                    Problem::invalid(format!("eol \"{e}\" is not an RFC 3339 time: {err}"))
                })
        })
        .transpose()?;
    let reference = body
        .reference_message_id
        .as_deref()
        .map(|r| {
            r.parse::<uuid::Uuid>()
                .map(|u| u.hyphenated().to_string())
                .map_err(|e| Problem::invalid(format!("reference_message_id \"{r}\": {e}")))
        })
        .transpose()?;
    let body_sha256 = hex::encode(Sha256::digest(
        serde_json::to_vec(&body).map_err(|e| Problem::invalid(e.to_string()))?,
    ));
    let staged = stage(&inner, files).await?;
    let request = NewRequest {
        client_ref: client_ref.to_string(),
        body_sha256,
        message_id: inner.client.new_message_id().hyphenated().to_string(),
        created_at_ms: inner.now_ms(),
        content,
        card: body.card.clone(),
        reference_message_id: reference,
        eol_ms,
        test: body.test,
        mtom: body.mtom,
        files: staged.clone(),
        registration_prefix: inner.config.registration_prefix.clone(),
        today: inner.today(),
    };
    let outcome = match inner.store.submit(request).await {
        Ok(o) => o,
        Err(e) => {
            inner
                .store
                .files()
                .remove(staged.iter().map(|s| s.file.as_str()));
            return Err(e.into());
        }
    };
    match outcome {
        Submitted::Created(v) => {
            inner.sender_wake.notify_one();
            tracing::info!(id = v.id, client_ref = %v.client_ref, message_id = %v.message_id, "request queued");
            Ok((StatusCode::ACCEPTED, Json(submitted_json(&v))).into_response())
        }
        Submitted::Existing(v) => {
            inner
                .store
                .files()
                .remove(staged.iter().map(|s| s.file.as_str()));
            Ok((StatusCode::OK, Json(submitted_json(&v))).into_response())
        }
        Submitted::Conflict(v) => {
            inner
                .store
                .files()
                .remove(staged.iter().map(|s| s.file.as_str()));
            Err(Problem::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "client_ref \"{}\" was used for another request (id {}); a client_ref names one request",
                    v.client_ref, v.id
                ),
            )
            .with("id", v.id))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestsQuery {
    status: Option<String>,
    client_ref: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
}

fn limit(l: Option<usize>) -> Result<usize, Problem> {
    match l {
        None => Ok(DEFAULT_LIMIT),
        Some(l) if (1..=MAX_LIMIT).contains(&l) => Ok(l),
        Some(l) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "Invalid query",
            format!("limit {l} must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

fn page<T: Serialize>(
    items: Vec<T>,
    after: i64,
    id: impl Fn(&T) -> i64,
) -> Json<serde_json::Value> {
    let next_after = items.last().map(&id).unwrap_or(after);
    Json(json!({ "items": items, "next_after": next_after }))
}

async fn list_requests(
    State(inner): State<Arc<Inner>>,
    q: Result<Query<RequestsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let q = query(q)?;
    if let Some(s) = &q.status {
        if !REQUEST_STATUSES.contains(&s.as_str()) {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "Invalid query",
                format!(
                    "status \"{s}\" is not one of {}",
                    REQUEST_STATUSES.join(", ")
                ),
            ));
        }
    }
    let after = q.after.unwrap_or(0);
    let items = inner
        .store
        .requests(q.status, q.client_ref, after, limit(q.limit)?)
        .await?;
    Ok(page(items, after, |v| v.id))
}

async fn get_request(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
) -> Result<Json<crate::store::RequestView>, Problem> {
    let id = id_param(&id, "request")?;
    inner
        .store
        .request(id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no request {id}")))
}

// ---------------------------------------------------------------------------------------
// Inbox.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InboxQuery {
    direction: Option<String>,
    state: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
}

async fn list_inbox(
    State(inner): State<Arc<Inner>>,
    q: Result<Query<InboxQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let q = query(q)?;
    if let Some(d) = &q.direction {
        if d != "request" && d != "response" {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "Invalid query",
                format!("direction \"{d}\" is not request or response"),
            ));
        }
    }
    if let Some(s) = &q.state {
        if !["new", "dispatched", "answered", "done"].contains(&s.as_str()) {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "Invalid query",
                format!("state \"{s}\" is not one of new, dispatched, answered, done"),
            ));
        }
    }
    let after = q.after.unwrap_or(0);
    let items = inner
        .store
        .inbox(q.direction, q.state, after, limit(q.limit)?)
        .await?;
    Ok(page(items, after, |v| v.id))
}

async fn get_inbox(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
) -> Result<Json<crate::store::InboxView>, Problem> {
    let id = id_param(&id, "inbox item")?;
    inner
        .store
        .inbox_item(id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no inbox item {id}")))
}

async fn get_attachment(
    State(inner): State<Arc<Inner>>,
    Path((id, content_id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let id = id_param(&id, "inbox item")?;
    let Some((mime, file)) = inner.store.inbox_attachment(id, content_id.clone()).await? else {
        return Err(Problem::not_found(format!(
            "inbox item {id} has no attachment \"{content_id}\" (or it is done)"
        )));
    };
    let f = tokio::fs::File::open(inner.store.files().path(&file))
        .await
        .map_err(|e| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Store failure",
                e.to_string(),
            )
        })?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(f));
    let mut r = Response::new(body);
    if let Ok(v) = HeaderValue::from_str(&mime) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(r)
}

async fn done(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
) -> Result<Json<crate::store::InboxView>, Problem> {
    let id = id_param(&id, "inbox item")?;
    inner
        .store
        .mark_done(id, inner.now_ms())
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no inbox item {id}")))
}

/// The answer to a delivered request: exactly one of `data`, `reject`, `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub files: Vec<FileBody>,
    #[serde(default)]
    pub mtom: bool,
    #[serde(default)]
    pub reject: Option<RejectBody>,
    #[serde(default)]
    pub status: Option<StatusBody>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    /// `ACCESS_DENIED`, `NO_DATA`, `UNKNOWN_REQUEST_DESCRIPTION` or `FAILURE`.
    pub code: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// 2: clarification requested; other codes: intermediate statuses.
    pub code: i32,
    pub description: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

pub const REJECTION_CODES: &[&str] = &[
    "ACCESS_DENIED",
    "NO_DATA",
    "UNKNOWN_REQUEST_DESCRIPTION",
    "FAILURE",
];

impl AnswerBody {
    /// The provider SDK's [`Answer`], checked.
    pub fn into_answer(self) -> Result<Answer, String> {
        let given = [
            self.data.is_some(),
            self.reject.is_some(),
            self.status.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            return Err("an answer has exactly one of data, reject and status".into());
        }
        if !self.files.is_empty() && self.data.is_none() {
            return Err("files go only with data".into());
        }
        if let Some(data) = self.data {
            let content = check_xml("data", &data)?;
            let attachments = decode_files(&self.files)?
                .into_iter()
                .map(|(content_id, mime_type, data)| Attachment {
                    content_id,
                    mime_type,
                    data: Bytes::from(data),
                    mtom: self.mtom,
                })
                .collect();
            return Ok(Answer::Data {
                content,
                attachments,
            });
        }
        if let Some(r) = self.reject {
            if !REJECTION_CODES.contains(&r.code.as_str()) {
                return Err(format!(
                    "reject.code \"{}\" is not one of {}",
                    r.code,
                    REJECTION_CODES.join(", ")
                ));
            }
            return Ok(Answer::Reject {
                code: r.code,
                description: r.description,
            });
        }
        let s = self.status.ok_or("no answer")?;
        Ok(Answer::Status {
            code: s.code,
            description: s.description,
            parameters: s.parameters.into_iter().collect(),
        })
    }
}

pub(crate) fn answer_kind(a: &Answer) -> &'static str {
    match a {
        Answer::Data { .. } => "data",
        Answer::Reject { .. } => "rejection",
        Answer::Status { .. } => "status",
    }
}

/// Stages an answer's files and makes the row to insert. The digest that recognises a
/// repeated answer covers the content and every file's bytes.
pub(crate) async fn stage_answer(
    inner: &Inner,
    inbox_id: i64,
    answer: Answer,
    mtom: bool,
) -> Result<NewAnswer, Problem> {
    let mut digest = Sha256::new();
    let (kind, files) = match answer {
        Answer::Data {
            content,
            attachments,
        } => {
            digest.update(b"data\0");
            digest.update(content.as_bytes());
            let mut files = Vec::with_capacity(attachments.len());
            for a in attachments {
                digest.update(format!("\0{}\0{}\0{}\0", a.content_id, a.mime_type, a.mtom));
                digest.update(Sha256::digest(&a.data));
                files.push((a.content_id, a.mime_type, a.data.to_vec()));
            }
            (AnswerKind::Data(content), files)
        }
        Answer::Reject { code, description } => {
            digest.update(format!("rejection\0{code}\0{description}"));
            (AnswerKind::Rejection { code, description }, Vec::new())
        }
        Answer::Status {
            code,
            description,
            parameters,
        } => {
            digest.update(format!("status\0{code}\0{description}"));
            for (k, v) in &parameters {
                digest.update(format!("\0{k}\0{v}"));
            }
            (
                AnswerKind::Status {
                    code,
                    description,
                    parameters,
                },
                Vec::new(),
            )
        }
    };
    let staged = stage(inner, files).await?;
    Ok(NewAnswer {
        inbox_id,
        body_sha256: hex::encode(digest.finalize()),
        message_id: inner.client.new_message_id().hyphenated().to_string(),
        created_at_ms: inner.now_ms(),
        kind,
        mtom,
        files: staged,
    })
}

async fn answer(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let id = id_param(&id, "inbox item")?;
    let body: AnswerBody = json_body(&body)?;
    let mtom = body.mtom;
    let answer = body.into_answer().map_err(Problem::invalid)?;
    let staged = stage_answer(&inner, id, answer, mtom).await?;
    let files: Vec<String> = staged.files.iter().map(|f| f.file.clone()).collect();
    let outcome = match inner.store.answer(staged).await {
        Ok(o) => o,
        Err(e) => {
            inner.store.files().remove(files.iter().map(String::as_str));
            return Err(e.into());
        }
    };
    match outcome {
        Answered::Created(a) => {
            inner.sender_wake.notify_one();
            tracing::info!(inbox_id = id, answer_id = a.id, kind = %a.kind, "answer queued");
            Ok((StatusCode::ACCEPTED, Json(a)).into_response())
        }
        Answered::Existing(a) => Ok((StatusCode::OK, Json(a)).into_response()),
        Answered::Conflict(reason) => Err(Problem::new(StatusCode::CONFLICT, "Conflict", reason)),
        Answered::NotFound => Err(Problem::not_found(format!("no inbox item {id}"))),
    }
}

// ---------------------------------------------------------------------------------------

async fn stats(State(inner): State<Arc<Inner>>) -> Result<Json<crate::store::Stats>, Problem> {
    Ok(Json(inner.store.stats().await?))
}

async fn health(State(inner): State<Arc<Inner>>) -> Response {
    let gateway = inner.health.lock().map(|h| h.clone()).unwrap_or_default();
    match inner.store.ping().await {
        Ok(()) => Json(json!({
            "status": "ok",
            "system": inner.config.system,
            "gateway": gateway,
        }))
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "store": e.to_string(), "gateway": gateway })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_xml_is_one_namespaced_element() {
        let ok = check_xml(
            "content",
            "<?xml version=\"1.0\"?>\n<b:R xmlns:b=\"urn:x\"><b:A>1</b:A></b:R>",
        )
        .expect("valid");
        assert_eq!(ok, "<b:R xmlns:b=\"urn:x\"><b:A>1</b:A></b:R>");
        for (bad, why) in [
            ("<b:R xmlns:b=\"urn:x\">", "well-formed"),
            ("<R/>", "namespace"),
            ("<!-- c --><b:R xmlns:b=\"urn:x\"/>", "exactly one element"),
            ("", "empty"),
            ("text", "well-formed"),
        ] {
            let e = check_xml("content", bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn an_answer_has_exactly_one_form() {
        let body: AnswerBody =
            serde_json::from_str(r#"{"reject": {"code": "NO_DATA", "description": "none"}}"#)
                .expect("JSON");
        assert!(matches!(body.into_answer(), Ok(Answer::Reject { .. })));
        let body: AnswerBody = serde_json::from_str(
            r#"{"data": "<r:X xmlns:r=\"urn:x\"/>", "reject": {"code": "NO_DATA", "description": ""}}"#,
        )
        .expect("JSON");
        assert!(body.into_answer().is_err());
        let body: AnswerBody =
            serde_json::from_str(r#"{"reject": {"code": "MAYBE", "description": ""}}"#)
                .expect("JSON");
        assert!(body.into_answer().expect_err("bad code").contains("MAYBE"));
        let body: AnswerBody = serde_json::from_str(
            r#"{"status": {"code": 2, "description": "which year?", "parameters": {"field": "year"}}}"#,
        )
        .expect("JSON");
        match body.into_answer() {
            Ok(Answer::Status {
                code, parameters, ..
            }) => {
                assert_eq!(code, 2);
                assert_eq!(parameters, vec![("field".to_string(), "year".to_string())]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn content_ids_become_safe_path_segments() {
        assert_eq!(path_segment("scan 1/2.pdf"), "scan%201%2F2.pdf");
        assert_eq!(path_segment("a-b_c.d~e"), "a-b_c.d~e");
    }
}
