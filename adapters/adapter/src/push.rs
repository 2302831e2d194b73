//! Push receive: `POST /push` takes a message the gateway pushes — the body of a
//! `GetRequestResponse`/`GetResponseResponse`, as `text/xml` or MTOM — verifies it as a
//! polled one (`SystemClient::read_pushed`), stores it exactly like a polled message, and
//! answers 200 with the signed `AckRequest` (with `mz:ReceiverRegistration`) that
//! acknowledges it.
//!
//! Invariants: the Ack is returned only after the message is stored; a message pushed
//! again (the gateway did not get the reply) is recognised by global ID and acknowledged
//! with the same registration number; a body that does not verify is refused (4xx) and
//! leaves nothing written.

use crate::api::Problem;
use crate::store::Via;
use crate::Inner;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::sync::Arc;
use tracing::Instrument as _;

/// The envelope and MTOM parts of a pushed body (parts read into memory: a push is
/// bounded by `api.max_body_bytes`).
async fn read_body(
    inner: &Inner,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(Bytes, Vec<(String, Bytes)>), Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let related = mezhved_mime::parse_content_type(content_type).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "Invalid push",
            format!("Content-Type: {e}"),
        )
    })?;
    let Some(ct) = related else {
        return Ok((body, Vec::new()));
    };
    let dir = inner
        .store
        .files()
        .incoming_dir()
        .join(format!("push-{}", uuid::Uuid::new_v4().simple()));
    tokio::fs::create_dir_all(&dir).await.map_err(|e| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Store failure",
            e.to_string(),
        )
    })?;
    let stream = futures_util::stream::iter([Ok::<Bytes, std::io::Error>(body)]);
    let limit = inner.config.api.max_body_bytes as u64;
    let read = mezhved_mime::read_multipart(
        stream,
        &ct,
        &dir,
        &mezhved_mime::ReadLimits {
            max_root_bytes: inner.config.api.max_body_bytes,
            max_part_bytes: limit,
            max_total_bytes: limit,
            max_parts: 1000,
            sync_files: false,
        },
    )
    .await;
    let result = match read {
        Ok(m) => {
            let mut parts = Vec::with_capacity(m.parts.len());
            let mut failed = None;
            for p in &m.parts {
                match tokio::fs::read(&p.path).await {
                    Ok(data) => parts.push((p.content_id.clone(), Bytes::from(data))),
                    Err(e) => {
                        failed = Some(e.to_string());
                        break;
                    }
                }
            }
            match failed {
                None => Ok((m.root, parts)),
                Some(e) => Err(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Store failure",
                    e,
                )),
            }
        }
        Err(e) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "Invalid push",
            format!("the MTOM body cannot be read: {e}"),
        )),
    };
    let _ = tokio::fs::remove_dir_all(&dir).await;
    result
}

pub(crate) async fn receive(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let (envelope, parts) = read_body(&inner, &headers, body).await?;
    let message = match inner.client.read_pushed(&envelope, &parts) {
        Ok(Some(m)) => m,
        Ok(None) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "Invalid push",
                "the body carries no RequestMessage or ResponseMessage",
            ))
        }
        Err(e) => {
            tracing::warn!(error = %e, "a pushed message is refused");
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "Invalid push",
                format!("the pushed message does not verify: {e}"),
            ));
        }
    };
    let global_id = message.global_id.clone();
    let span = tracing::info_span!("push", %global_id, direction = ?message.direction);
    async move {
        let received = crate::poller::receive(&inner, message, Via::Push).await?;
        let ack = inner
            .client
            .signed_ack(
                &global_id,
                true,
                Some((
                    &received.registration_number,
                    crate::from_ms(received.registered_at_ms),
                )),
            )
            .map_err(|e| {
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal error",
                    format!("cannot sign the Ack: {e}"),
                )
            })?;
        // The reply is the Ack: from here on the gateway holds it as acknowledged (or
        // pushes it again, which finds it stored).
        inner
            .store
            .mark_acked(received.inbox_id, inner.now_ms())
            .await?;
        tracing::info!(
            inbox_id = received.inbox_id,
            registration_number = %received.registration_number,
            "pushed message stored; acknowledging"
        );
        let mut r = (StatusCode::OK, ack).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        );
        Ok(r)
    }
    .instrument(span)
    .await
}
