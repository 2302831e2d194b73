//! The SOAP 1.1 endpoint: reads a call (plain `text/xml`, or MTOM `multipart/related`
//! with its parts streamed to files), hands it to the exchange, and writes the answer or
//! the fault. Transport problems (an oversize body, a broken MIME structure) become the
//! same faults as content problems, through [`ExchangeError::fault`].

use crate::server::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::BodyExt;
use mezhved_core::attachments;
use mezhved_core::error::ExchangeError;
use mezhved_core::exchange::{Answer, Call, OutgoingFile};
use mezhved_mime::{MimeError, OutgoingPart, PartSource, ReadLimits};
use std::sync::Arc;

pub(crate) const TEXT_XML: &str = "text/xml; charset=utf-8";
/// The Content-ID of the SOAP envelope in the gateway's MTOM bodies (answers and pushes).
pub(crate) const ROOT_CONTENT_ID: &str = "root.message@mezhved";

/// The MTOM parts of a delivered message's attachment files.
pub(crate) fn mtom_parts(parts: Vec<OutgoingFile>) -> Vec<OutgoingPart> {
    parts
        .into_iter()
        .map(|p| OutgoingPart {
            content_id: p.content_id,
            content_type: p.mime_type,
            source: PartSource::File(p.path),
        })
        .collect()
}

fn fault_response(e: &ExchangeError) -> Response {
    let fault = e.fault();
    tracing::info!(fault = fault.name, reason = %fault.string, "call refused");
    // Maintenance (docs/monitoring.md): the same SMEVFailure fault, but as 503 with a
    // Retry-After so clients and load balancers back off instead of failing over.
    let status = if matches!(e, ExchangeError::Maintenance(_)) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let mut r = (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_XML))],
        fault.envelope(),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("300"));
    }
    r
}

fn mime_error(e: MimeError) -> ExchangeError {
    match e {
        MimeError::PartTooLarge { limit, .. } | MimeError::TotalTooLarge { limit } => {
            ExchangeError::AttachmentSizeLimitExceeded {
                permitted: limit,
                // The reader stops at the limit: the real size is known only to exceed it.
                real: limit.saturating_add(1),
            }
        }
        MimeError::RootTooLarge { limit } => ExchangeError::invalid(
            limit,
            format!("the SOAP envelope is larger than {limit} bytes"),
        ),
        MimeError::Io { .. } => ExchangeError::Internal(e.to_string()),
        other => ExchangeError::invalid(0, format!("MTOM/XOP: {other}")),
    }
}

async fn read_call(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Call, ExchangeError> {
    let limits = &state.config.limits;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/xml");
    let related = mezhved_mime::parse_content_type(content_type).map_err(mime_error)?;
    match related {
        Some(ct) => {
            let stream = TryStreamExt::map_err(body.into_data_stream(), |e| {
                std::io::Error::other(e.to_string())
            });
            let multipart = mezhved_mime::read_multipart(
                stream,
                &ct,
                &state.config.data_dir.join(attachments::DIR),
                &ReadLimits {
                    max_root_bytes: limits.max_envelope_bytes as usize,
                    max_part_bytes: limits.max_attachment_bytes,
                    max_total_bytes: limits
                        .max_total_attachment_bytes
                        .saturating_add(limits.max_envelope_bytes),
                    max_parts: limits.max_attachments + 1,
                    sync_files: true,
                },
            )
            .await
            .map_err(mime_error)?;
            Ok(Call {
                envelope: multipart.root,
                parts: multipart.parts,
            })
        }
        None => {
            let limited = http_body_util::Limited::new(body, limits.max_envelope_bytes as usize);
            let bytes = limited.collect().await.map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ExchangeError::invalid(
                        limits.max_envelope_bytes as usize,
                        format!(
                            "the SOAP envelope is larger than {} bytes",
                            limits.max_envelope_bytes
                        ),
                    )
                } else {
                    ExchangeError::invalid(0, format!("the request body could not be read: {e}"))
                }
            })?;
            Ok(Call {
                envelope: bytes.to_bytes(),
                parts: Vec::new(),
            })
        }
    }
}

fn answer_response(answer: Answer) -> Response {
    if answer.parts.is_empty() {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_XML))],
            answer.envelope,
        )
            .into_response();
    }
    let parts = mtom_parts(answer.parts);
    match mezhved_mime::mtom_body(Bytes::from(answer.envelope), ROOT_CONTENT_ID, parts) {
        Ok(body) => {
            let mut response = Response::new(Body::from_stream(body.stream));
            if let Ok(v) = HeaderValue::from_str(&body.content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            if let Some(len) = body.content_length {
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
            response
        }
        Err(e) => fault_response(&ExchangeError::Internal(format!(
            "cannot open an attachment: {e}"
        ))),
    }
}

/// `POST <endpoint>`.
pub async fn endpoint(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Latency for /metrics: the real monotonic clock, observation only (no decision
    // depends on it), from the request's arrival to the answer's head.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let observe = |op, fault: Option<&str>| {
        if state.config.metrics.enabled {
            crate::metrics::record_call(op, fault, started.elapsed());
        }
    };
    let call = match read_call(&state, &headers, body).await {
        Ok(call) => call,
        Err(e) => {
            observe(None, Some(e.fault().name));
            return fault_response(&e);
        }
    };
    // The exchange runs in its own task: a client that hangs up must not cancel a call
    // halfway between the store's commit and the bookkeeping after it.
    let exchange = state.exchange.clone();
    let result = tokio::spawn(async move { exchange.handle_observed(call).await }).await;
    match result {
        Ok((op, Ok(answer))) => {
            observe(op, None);
            answer_response(answer)
        }
        Ok((op, Err(e))) => {
            observe(op, Some(e.fault().name));
            fault_response(&e)
        }
        Err(e) => {
            let e = ExchangeError::Internal(format!("the call's task failed: {e}"));
            observe(None, Some(e.fault().name));
            fault_response(&e)
        }
    }
}
