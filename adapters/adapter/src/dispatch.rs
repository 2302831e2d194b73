//! Callback mode: each new received request is POSTed as JSON to the agency's
//! `provider.callback_url`; the agency answers at once (`{"data": …}`, `{"reject": …}`,
//! `{"status": …}`, read into the provider SDK's [`Answer`]) or with 202 (it answers later
//! through `POST /api/v1/inbox/{id}/answer`).
//!
//! Invariants:
//! - A request is handed over at least once: it stays `new` until the callback answered
//!   2xx; an unreachable callback, a 5xx, a timeout or an unreadable answer is retried
//!   with backoff. (A crash after the callback answered but before the answer was stored
//!   calls it again: the payload carries the global ID, so the agency can recognise it.)
//! - An answer becomes an outbox SendResponse row in one transaction with the request's
//!   new state; from there the sender sends it once, under its own fixed MessageID.

use crate::api::{answer_kind, stage_answer, AnswerBody};
use crate::store::{Answered, InboxView};
use crate::work::{self, Step};
use crate::{Inner, Shutdown};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mezhved_client::provider::Answer;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

type Http = Client<HttpConnector, Full<Bytes>>;

pub(crate) async fn run(inner: Arc<Inner>, shutdown: Shutdown) {
    let http: Http = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let queue = work::Queue {
        name: "callback",
        concurrency: inner.config.provider.callback_concurrency,
        wake: inner.dispatch_wake.clone(),
        backoff: (inner.config.retry_base(), inner.config.retry_max()),
    };
    let store = inner.store.clone();
    work::run(
        queue,
        shutdown,
        |limit| {
            let store = store.clone();
            async move { store.undispatched(limit).await }
        },
        |id| {
            let inner = inner.clone();
            let http = http.clone();
            async move { dispatch(inner, http, id).await }
        },
    )
    .await
}

/// What the callback receives: the inbox item, its attachments' bytes (base64) and where
/// to answer later.
async fn payload(inner: &Inner, item: &InboxView) -> Result<serde_json::Value, String> {
    let mut value = serde_json::to_value(item).map_err(|e| e.to_string())?;
    let files = inner
        .store
        .inbox_attachments(item.id)
        .await
        .map_err(|e| e.to_string())?;
    let mut attachments = Vec::with_capacity(files.len());
    for (content_id, mime_type, file) in files {
        let data = tokio::fs::read(inner.store.files().path(&file))
            .await
            .map_err(|e| format!("attachment {content_id}: {e}"))?;
        attachments.push(serde_json::json!({
            "content_id": content_id,
            "mime_type": mime_type,
            "size": data.len(),
            "data": base64::engine::general_purpose::STANDARD.encode(&data),
        }));
    }
    value["attachments"] = serde_json::Value::Array(attachments);
    value["answer_url"] = format!("/api/v1/inbox/{}/answer", item.id).into();
    Ok(value)
}

/// What the callback said.
enum Reply {
    Answer(Answer, bool),
    Later,
}

async fn post(inner: &Inner, http: &Http, body: Vec<u8>) -> Result<Reply, String> {
    let request = hyper::Request::post(inner.config.provider.callback_url.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let timeout = Duration::from_secs(inner.config.provider.callback_timeout_seconds);
    let exchange = async {
        let response = http.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    let (status, body) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer in {timeout:?}"))??;
    match status.as_u16() {
        202 | 204 => Ok(Reply::Later),
        200 | 201 => {
            let answer: AnswerBody = serde_json::from_slice(&body)
                .map_err(|e| format!("HTTP {status} with an unreadable answer: {e}"))?;
            let mtom = answer.mtom;
            let answer = answer
                .into_answer()
                .map_err(|e| format!("HTTP {status} with an invalid answer: {e}"))?;
            Ok(Reply::Answer(answer, mtom))
        }
        _ => {
            let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            Err(format!("HTTP {status}: {text}"))
        }
    }
}

async fn dispatch(inner: Arc<Inner>, http: Http, id: i64) -> Step {
    let item = match inner.store.inbox_item(id).await {
        Ok(Some(item)) if item.state == "new" => item,
        Ok(_) => return Step::Done,
        Err(e) => {
            tracing::error!(id, error = %e, "cannot read a received request");
            return Step::Retry;
        }
    };
    let span = tracing::info_span!("callback", inbox_id = id, global_id = %item.global_id);
    async move {
        let result = match payload(&inner, &item).await {
            Ok(p) => match serde_json::to_vec(&p) {
                Ok(body) => post(&inner, &http, body).await,
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(Reply::Later) => match inner.store.mark_dispatched(id).await {
                Ok(()) => {
                    tracing::info!("handed to the agency; it answers later");
                    Step::Done
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot record the hand-over");
                    Step::Retry
                }
            },
            Ok(Reply::Answer(answer, mtom)) => {
                let kind = answer_kind(&answer);
                let staged = match stage_answer(&inner, id, answer, mtom).await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::error!(error = %e.detail, "cannot store the answer's files");
                        return Step::Retry;
                    }
                };
                match inner.store.answer(staged).await {
                    Ok(Answered::Created(a)) | Ok(Answered::Existing(a)) => {
                        tracing::info!(answer_id = a.id, kind, "answered by the callback");
                        if kind == "status" {
                            if let Err(e) = inner.store.mark_dispatched(id).await {
                                tracing::error!(error = %e, "cannot record the hand-over");
                            }
                        }
                        inner.sender_wake.notify_one();
                        Step::Done
                    }
                    Ok(Answered::Conflict(reason)) => {
                        // Answered meanwhile through the API: that answer stands.
                        tracing::warn!(%reason, "the callback's answer is not used");
                        let _ = inner.store.mark_dispatched(id).await;
                        Step::Done
                    }
                    Ok(Answered::NotFound) => Step::Done,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot store the answer");
                        Step::Retry
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "callback failed; will retry");
                if let Err(se) = inner.store.mark_dispatch_failed(id, e).await {
                    tracing::error!(error = %se, "cannot record the failed callback");
                }
                Step::Retry
            }
        }
    }
    .instrument(span)
    .await
}
