//! The sender: sends queued outbox rows — SendRequest for submitted requests,
//! SendResponse for the agency's answers — with bounded concurrency, woken by every new
//! row.
//!
//! Invariants:
//! - A row is sent under the MessageID fixed at its insert, with exactly the stored
//!   content, card and files: a resend (after a timeout, a crash, a restart) is the same
//!   call, and the gateway answers it with its first answer instead of queueing a second
//!   message.
//! - A row leaves the queue only by a recorded outcome: `sent` (global ID and the
//!   gateway's registration) or `rejected` (the fault, for a non-retryable one).
//!   Anything else — the gateway down, `SMEVFailure`, a timeout, a garbled answer, our
//!   own store failing after the gateway accepted — leaves it queued for a retry.

use crate::store::{FaultView, OutboxRow, RegistrationView, ValidationErrorView};
use crate::work::{self, Step};
use crate::{Inner, Shutdown};
use bytes::Bytes;
use mezhved_client::{Attachment, CallError, Request, ResponseContent};
use std::sync::Arc;
use tracing::Instrument as _;

pub(crate) async fn run(inner: Arc<Inner>, shutdown: Shutdown) {
    let queue = work::Queue {
        name: "outbox",
        concurrency: inner.config.sender.concurrency,
        wake: inner.sender_wake.clone(),
        backoff: (inner.config.retry_base(), inner.config.retry_max()),
    };
    let store = inner.store.clone();
    work::run(
        queue,
        shutdown,
        |limit| {
            let store = store.clone();
            async move { store.queued(limit).await }
        },
        |id| {
            let inner = inner.clone();
            async move { send(inner, id).await }
        },
    )
    .await
}

fn fault_view(e: &CallError) -> FaultView {
    match e {
        CallError::Fault(f) => FaultView {
            code: f.code.as_str().to_string(),
            message: f.message.clone(),
            signature_code: f.signature_code.clone(),
            validation_errors: f
                .validation_errors
                .iter()
                .map(|(position, text)| ValidationErrorView {
                    position: position.clone(),
                    text: text.clone(),
                })
                .collect(),
        },
        other => FaultView {
            code: "LocalFailure".into(),
            message: other.to_string(),
            signature_code: None,
            validation_errors: Vec::new(),
        },
    }
}

async fn attachments(inner: &Inner, row: &OutboxRow) -> Result<Vec<Attachment>, String> {
    let mut out = Vec::with_capacity(row.attachments.len());
    for (content_id, mime_type, file) in &row.attachments {
        let data = tokio::fs::read(inner.store.files().path(file))
            .await
            .map_err(|e| format!("attachment {content_id} (file {file}): {e}"))?;
        out.push(Attachment {
            content_id: content_id.clone(),
            mime_type: mime_type.clone(),
            data: Bytes::from(data),
            mtom: row.mtom,
        });
    }
    Ok(out)
}

async fn call(inner: &Inner, row: &OutboxRow) -> Result<mezhved_client::Accepted, CallError> {
    let message_id: uuid::Uuid = row
        .message_id
        .parse()
        .map_err(|e| CallError::Local(format!("stored MessageID {}: {e}", row.message_id)))?;
    let attachments = attachments(inner, row).await.map_err(CallError::Local)?;
    if row.operation == "request" {
        let request = Request {
            message_id,
            content: row.content.clone().unwrap_or_default(),
            card: row.card_xml.clone(),
            attachments,
            reference_message_id: row
                .reference_message_id
                .as_deref()
                .and_then(|r| r.parse().ok()),
            eol: row.eol_ms.map(crate::from_ms),
            test: row.test,
        };
        inner.client.send_request(&request).await
    } else {
        let content = match row.answer_kind.as_deref() {
            Some("data") => ResponseContent::Data(row.content.clone().unwrap_or_default()),
            Some("rejection") => ResponseContent::Rejection {
                code: row.answer_code.clone().unwrap_or_default(),
                description: row.answer_description.clone().unwrap_or_default(),
            },
            Some("status") => ResponseContent::Status {
                code: row
                    .answer_code
                    .as_deref()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or_default(),
                description: row.answer_description.clone().unwrap_or_default(),
                parameters: row.answer_parameters.clone(),
            },
            other => {
                return Err(CallError::Local(format!(
                    "stored answer kind {other:?} is unknown"
                )))
            }
        };
        let to = row.reply_to.clone().unwrap_or_default();
        inner
            .client
            .send_response(message_id, &to, &content, &attachments)
            .await
    }
}

async fn send(inner: Arc<Inner>, id: i64) -> Step {
    let row = match inner.store.outbox_row(id).await {
        Ok(Some(r)) => r,
        // Sent or rejected meanwhile.
        Ok(None) => return Step::Done,
        Err(e) => {
            tracing::error!(id, error = %e, "cannot read an outbox row");
            return Step::Retry;
        }
    };
    let span =
        tracing::info_span!("send", id, operation = %row.operation, message_id = %row.message_id);
    async move {
        let result = call(&inner, &row).await;
        let now = inner.now_ms();
        match result {
            Ok(accepted) => {
                inner.gateway_ok();
                let registration = accepted.registration.as_ref().map(RegistrationView::from);
                match inner
                    .store
                    .mark_sent(
                        id,
                        accepted.global_id.clone(),
                        accepted.status.clone(),
                        registration,
                        now,
                    )
                    .await
                {
                    Ok(()) => {
                        tracing::info!(global_id = %accepted.global_id, "accepted by the gateway");
                        Step::Done
                    }
                    Err(e) => {
                        // The resend will get the same answer (idempotent by MessageID).
                        tracing::error!(error = %e, "accepted, but not recorded; will resend");
                        Step::Retry
                    }
                }
            }
            Err(e) if e.retryable() => {
                inner.gateway_failed(&e.to_string());
                tracing::warn!(error = %e, "not sent; will retry");
                if let Err(se) = inner
                    .store
                    .mark_attempt_failed(id, e.to_string(), now)
                    .await
                {
                    tracing::error!(error = %se, "cannot record the attempt");
                }
                Step::Retry
            }
            Err(e) => {
                if matches!(e, CallError::Fault(_)) {
                    inner.gateway_ok();
                }
                let fault = fault_view(&e);
                tracing::warn!(code = %fault.code, error = %e, "rejected");
                match inner.store.mark_rejected(id, fault, now).await {
                    Ok(()) => Step::Done,
                    Err(se) => {
                        tracing::error!(error = %se, "cannot record the rejection");
                        Step::Retry
                    }
                }
            }
        }
    }
    .instrument(span)
    .await
}
