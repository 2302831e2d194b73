//! REST/JSON: registry administration under `/api/v1/registry` (operator credential) and
//! a liveness probe. Errors are RFC 9457 problem documents.
//!
//! Every change goes through [`RegistryHandle::change`], so it is validated, stored in one
//! transaction and in effect for the next call on this node (other nodes pick it up within
//! their reload interval).

use crate::server::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use mezhved_core::registry::RegistryError;
use mezhved_store::{
    Grant, InformationSystem, KindOfInformation, Participant, RegistryChange, StoreError,
};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// A JSON request body whose rejection is a problem document.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(Problem {
                status: e.status(),
                title: "Invalid request body",
                detail: e.body_text(),
            }),
        }
    }
}

/// A query string whose rejection (unknown parameter, bad value) is a problem document.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Params<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Problem> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Params(v)),
            Err(e) => Err(Problem {
                status: StatusCode::BAD_REQUEST,
                title: "Invalid request",
                detail: e.body_text(),
            }),
        }
    }
}

/// An RFC 9457 problem.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": format!("urn://mezhved/problems/{}", self.title.to_lowercase().replace(' ', "-")),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut r = (self.status, Json(body)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        // RFC 9110 §15.5.2: a 401 must name the scheme it wants.
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"mezhved\""),
            );
        }
        r
    }
}

impl From<RegistryError> for Problem {
    fn from(e: RegistryError) -> Self {
        let (status, title) = match &e {
            RegistryError::Store(StoreError::NotFound(_)) => (StatusCode::NOT_FOUND, "Not found"),
            RegistryError::Store(StoreError::InvalidChange(_))
            | RegistryError::Certificate { .. }
            | RegistryError::Invalid(_)
            | RegistryError::File { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "Invalid registry change")
            }
            RegistryError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Store failure"),
        };
        Problem {
            status,
            title,
            detail: e.to_string(),
        }
    }
}

/// The bearer token of a request, if it carries one.
pub(crate) fn bearer_token(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        // The scheme's name is case-insensitive (RFC 9110 §11.1).
        .and_then(|(scheme, token)| scheme.eq_ignore_ascii_case("Bearer").then_some(token))
        .map(str::trim)
}

/// Constant-time comparison of a token's SHA-256 with a configured hex hash (an empty
/// hash matches nothing).
pub(crate) fn token_matches(token: &str, expected_sha256_hex: &str) -> bool {
    let Ok(want) = hex::decode(expected_sha256_hex) else {
        return false;
    };
    let got = openssl::sha::sha256(token.as_bytes());
    want.len() == got.len() && openssl::memcmp::eq(&got, &want)
}

fn operator_allowed(state: &AppState, request: &Request) -> Result<(), Problem> {
    let expected = &state.config.operator.token_sha256;
    let unauthorized = |detail: &str| Problem {
        status: StatusCode::UNAUTHORIZED,
        title: "Unauthorized",
        detail: detail.into(),
    };
    if expected.is_empty() {
        return Err(Problem {
            status: StatusCode::FORBIDDEN,
            title: "Forbidden",
            detail: "the administrative API is disabled: set operator.token_sha256".into(),
        });
    }
    let token = bearer_token(request)
        .ok_or_else(|| unauthorized("an operator bearer token is required"))?;
    if token_matches(token, expected) {
        Ok(())
    } else if state
        .config
        .auditors
        .iter()
        .any(|a| token_matches(token, &a.token_sha256))
    {
        Err(Problem {
            status: StatusCode::FORBIDDEN,
            title: "Forbidden",
            detail: "an auditor's credential is read-only and does not open operator endpoints"
                .into(),
        })
    } else {
        Err(unauthorized("the operator token is not valid"))
    }
}

pub(crate) async fn require_operator(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    match operator_allowed(&state, &request) {
        Ok(()) => next.run(request).await,
        Err(p) => p.into_response(),
    }
}

async fn apply(
    state: &AppState,
    changes: Vec<RegistryChange>,
) -> Result<Json<serde_json::Value>, Problem> {
    let summary: Vec<String> = changes.iter().map(describe).collect();
    let version = state
        .registry
        .change(
            &*state.store,
            "operator",
            mezhved_core::clock::to_ms(state.clock.now()),
            changes,
        )
        .await?;
    tracing::info!(version, changes = ?summary, "registry changed by the operator");
    // A system may have gained a push endpoint: its backlog is due now.
    state.exchange.push_wake().notify_one();
    Ok(Json(json!({ "version": version })))
}

fn describe(c: &RegistryChange) -> String {
    match c {
        RegistryChange::PutParticipant(p) => format!("put participant {}", p.mnemonic),
        RegistryChange::DeleteParticipant { mnemonic } => format!("delete participant {mnemonic}"),
        RegistryChange::PutSystem(s) => format!("put system {}", s.mnemonic),
        RegistryChange::DeleteSystem { mnemonic } => format!("delete system {mnemonic}"),
        RegistryChange::PutKind(k) => format!("put kind {{{}}}{}", k.namespace, k.root_element),
        RegistryChange::DeleteKind {
            namespace,
            root_element,
        } => format!("delete kind {{{namespace}}}{root_element}"),
        RegistryChange::Grant(g) => format!(
            "grant {{{}}}{} to {}",
            g.namespace, g.root_element, g.consumer_system
        ),
        RegistryChange::Revoke(g) => format!(
            "revoke {{{}}}{} from {}",
            g.namespace, g.root_element, g.consumer_system
        ),
    }
}

fn mismatch(what: &str, path: &str, body: &str) -> Problem {
    Problem {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        title: "Invalid registry change",
        detail: format!("the {what} in the path ({path}) and in the body ({body}) differ"),
    }
}

async fn get_registry(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::to_value(&state.registry.get().data).unwrap_or_default())
}

async fn post_changes(
    State(state): State<Arc<AppState>>,
    Body(changes): Body<Vec<RegistryChange>>,
) -> Result<Json<serde_json::Value>, Problem> {
    apply(&state, changes).await
}

async fn put_participant(
    State(state): State<Arc<AppState>>,
    Path(mnemonic): Path<String>,
    Body(p): Body<Participant>,
) -> Result<Json<serde_json::Value>, Problem> {
    if p.mnemonic != mnemonic {
        return Err(mismatch("mnemonic", &mnemonic, &p.mnemonic));
    }
    apply(&state, vec![RegistryChange::PutParticipant(p)]).await
}

async fn delete_participant(
    State(state): State<Arc<AppState>>,
    Path(mnemonic): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    apply(&state, vec![RegistryChange::DeleteParticipant { mnemonic }]).await
}

async fn put_system(
    State(state): State<Arc<AppState>>,
    Path(mnemonic): Path<String>,
    Body(s): Body<InformationSystem>,
) -> Result<Json<serde_json::Value>, Problem> {
    if s.mnemonic != mnemonic {
        return Err(mismatch("mnemonic", &mnemonic, &s.mnemonic));
    }
    apply(&state, vec![RegistryChange::PutSystem(s)]).await
}

async fn delete_system(
    State(state): State<Arc<AppState>>,
    Path(mnemonic): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    apply(&state, vec![RegistryChange::DeleteSystem { mnemonic }]).await
}

#[derive(Debug, Deserialize)]
struct KindKey {
    namespace: String,
    root_element: String,
}

async fn put_kind(
    State(state): State<Arc<AppState>>,
    Body(k): Body<KindOfInformation>,
) -> Result<Json<serde_json::Value>, Problem> {
    apply(&state, vec![RegistryChange::PutKind(k)]).await
}

async fn delete_kind(
    State(state): State<Arc<AppState>>,
    Params(k): Params<KindKey>,
) -> Result<Json<serde_json::Value>, Problem> {
    apply(
        &state,
        vec![RegistryChange::DeleteKind {
            namespace: k.namespace,
            root_element: k.root_element,
        }],
    )
    .await
}

async fn post_grant(
    State(state): State<Arc<AppState>>,
    Body(g): Body<Grant>,
) -> Result<Json<serde_json::Value>, Problem> {
    apply(&state, vec![RegistryChange::Grant(g)]).await
}

async fn delete_grant(
    State(state): State<Arc<AppState>>,
    Params(g): Params<Grant>,
) -> Result<Json<serde_json::Value>, Problem> {
    apply(&state, vec![RegistryChange::Revoke(g)]).await
}

pub fn registry_router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(get_registry))
        .route("/changes", post(post_changes))
        .route(
            "/participants/{mnemonic}",
            put(put_participant).delete(delete_participant),
        )
        .route("/systems/{mnemonic}", put(put_system).delete(delete_system))
        .route("/kinds", put(put_kind).delete(delete_kind))
        .route("/grants", post(post_grant).delete(delete_grant))
        .route_layer(middleware::from_fn_with_state(state, require_operator))
}

// --- paper and fax requests (operator) ---

impl From<mezhved_core::paper::PaperError> for Problem {
    fn from(e: mezhved_core::paper::PaperError) -> Self {
        use mezhved_core::paper::PaperError as P;
        let (status, title) = match &e {
            P::Invalid(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid paper registration",
            ),
            P::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            P::Conflict(_) => (StatusCode::CONFLICT, "Already answered"),
            P::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "Store failure"),
        };
        Problem {
            status,
            title,
            detail: e.to_string(),
        }
    }
}

/// `POST /api/v1/paper/requests`: a request that arrived on paper or by fax.
async fn post_paper_request(
    State(state): State<Arc<AppState>>,
    Body(request): Body<mezhved_core::paper::PaperRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), Problem> {
    let now = state.clock.now();
    let registered = state
        .exchange
        .register_paper(request, "operator", now)
        .await?;
    tracing::info!(global_id = %registered.global_id, "paper request registered by the operator");
    Ok((StatusCode::CREATED, Json(json!(registered))))
}

/// `POST /api/v1/paper/requests/{global_id}/answer`: its answer.
async fn post_paper_answer(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Body(answer): Body<mezhved_core::paper::PaperAnswer>,
) -> Result<(StatusCode, Json<serde_json::Value>), Problem> {
    let gid = uuid::Uuid::parse_str(id.trim()).map_err(|e| Problem {
        status: StatusCode::BAD_REQUEST,
        title: "Invalid request",
        detail: format!("global_id: {e}"),
    })?;
    let now = state.clock.now();
    let registered = state
        .exchange
        .answer_paper(*gid.as_bytes(), answer, "operator", now)
        .await?;
    tracing::info!(global_id = %registered.global_id, "paper answer registered by the operator");
    Ok((StatusCode::CREATED, Json(json!(registered))))
}

pub fn paper_router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/requests", post(post_paper_request))
        .route("/requests/{id}/answer", post(post_paper_answer))
        .route_layer(middleware::from_fn_with_state(state, require_operator))
}
