//! The poller: GetResponse (consumer), GetRequest per configured kind (provider) and
//! GetStatus, until each queue is empty, then a pause that grows while they stay empty.
//!
//! Invariants:
//! - A delivered message is acknowledged only after [`receive`] stored it; the Ack
//!   carries the agency's registration number and time (`mz:ReceiverRegistration`) as
//!   stored, so an Ack repeated after a crash or a failed Ack carries the same ones.
//! - A message stored but not acknowledged (the Ack failed, the process died) is
//!   acknowledged by the next round; if its lease ran out first, the gateway delivers it
//!   again and [`receive`] recognises it by global ID.
//! - At shutdown no new call starts; a message already fetched is stored and acknowledged.

use crate::files::StagedFile;
use crate::store::{Received, StoreError, Unacked, Via};
use crate::{Inner, Shutdown};
use mezhved_client::provider::Backoff;
use mezhved_client::{AttachmentData, CallError, Direction, FaultCode, Incoming};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

/// Messages taken from one queue before the others get their turn.
const BATCH: usize = 50;

pub(crate) async fn run(inner: Arc<Inner>, mut shutdown: Shutdown) {
    let poll = &inner.config.poll;
    let mut idle = Backoff::new(
        Duration::from_millis(poll.idle_min_ms),
        Duration::from_millis(poll.idle_max_ms),
    );
    let mut errors = Backoff::new(inner.config.retry_base(), inner.config.retry_max());
    let selectors = inner.config.provider_selectors();
    loop {
        if shutdown.is_set() {
            return;
        }
        let mut got = false;
        let mut failed = acknowledge_pending(&inner, &shutdown).await.is_err();
        if inner.config.consumer.poll_responses && !failed {
            match drain_parallel(&inner, &shutdown, None, Direction::Response).await {
                Ok(n) => got |= n > 0,
                Err(()) => failed = true,
            }
        }
        if inner.config.provider.enabled && inner.config.provider.poll && !failed {
            for kind in &selectors {
                let k = kind.as_ref().map(|(n, r)| (n.as_str(), r.as_str()));
                match drain_parallel(&inner, &shutdown, k, Direction::Request).await {
                    Ok(n) => got |= n > 0,
                    Err(()) => {
                        failed = true;
                        break;
                    }
                }
            }
        }
        if inner.config.consumer.poll_statuses && !failed {
            let n = inner.config.poll.concurrency.max(1);
            let polled = match statuses(&inner, &shutdown, 1).await {
                Ok(0) => Ok(0),
                Ok(first) => futures_util::future::join_all(
                    (0..n).map(|_| statuses(&inner, &shutdown, BATCH)),
                )
                .await
                .into_iter()
                .try_fold(first, |total, r| r.map(|k| total + k)),
                Err(()) => Err(()),
            };
            match polled {
                Ok(n) => got |= n > 0,
                Err(()) => failed = true,
            }
        }
        let pause = if failed {
            idle.reset();
            errors.next_delay()
        } else if got {
            idle.reset();
            errors.reset();
            continue;
        } else {
            errors.reset();
            idle.next_delay()
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.wait() => return,
        }
    }
}

fn note(inner: &Inner, e: &CallError) {
    if e.retryable() {
        inner.gateway_failed(&e.to_string());
    } else {
        inner.gateway_ok();
    }
}

/// [`drain`] with up to `poll.concurrency` calls in flight: the queue's round trips
/// overlap (each message is still stored before it is acknowledged, by the call that got
/// it). One call looks first, so an empty queue costs one call, not `concurrency`.
async fn drain_parallel(
    inner: &Inner,
    shutdown: &Shutdown,
    kind: Option<(&str, &str)>,
    direction: Direction,
) -> Result<usize, ()> {
    let first = drain(inner, shutdown, kind, direction, 1).await?;
    let n = inner.config.poll.concurrency.max(1);
    if first == 0 || n == 1 {
        return if first == 0 {
            Ok(0)
        } else {
            drain(inner, shutdown, kind, direction, BATCH)
                .await
                .map(|k| k + first)
        };
    }
    let results = futures_util::future::join_all(
        (0..n).map(|_| drain(inner, shutdown, kind, direction, BATCH)),
    )
    .await;
    let mut total = first;
    let mut failed = false;
    for r in results {
        match r {
            Ok(k) => total += k,
            Err(()) => failed = true,
        }
    }
    if failed {
        Err(())
    } else {
        Ok(total)
    }
}

/// Takes messages from one queue until it is empty (or a batch was taken).
async fn drain(
    inner: &Inner,
    shutdown: &Shutdown,
    kind: Option<(&str, &str)>,
    direction: Direction,
    limit: usize,
) -> Result<usize, ()> {
    let mut n = 0;
    while n < limit && !shutdown.is_set() {
        let polled = match direction {
            Direction::Request => inner.client.get_request(kind).await,
            Direction::Response => inner.client.get_response(kind).await,
        };
        let message = match polled {
            Ok(Some(m)) => m,
            Ok(None) => {
                inner.gateway_ok();
                return Ok(n);
            }
            Err(e) => {
                note(inner, &e);
                tracing::warn!(?direction, error = %e, "polling failed");
                return Err(());
            }
        };
        inner.gateway_ok();
        n += 1;
        let global_id = message.global_id.clone();
        let span = tracing::info_span!("receive", %global_id, ?direction);
        let received = match receive(inner, message, Via::Poll)
            .instrument(span.clone())
            .await
        {
            Ok(r) => r,
            Err(e) => {
                // Not acknowledged: the gateway delivers it again after its lease.
                tracing::error!(%global_id, error = %e, "cannot store a delivered message");
                return Err(());
            }
        };
        let stored = Unacked {
            inbox_id: received.inbox_id,
            global_id: global_id.clone(),
            registration_number: received.registration_number,
            registered_at_ms: received.registered_at_ms,
        };
        acknowledge(inner, &stored).instrument(span).await?;
    }
    Ok(n)
}

/// Stores a delivered (polled or pushed) message and its attachments; wakes the
/// dispatcher for a new request.
pub(crate) async fn receive(
    inner: &Inner,
    mut message: Incoming,
    via: Via,
) -> Result<Received, StoreError> {
    let files = inner.store.files().clone();
    let attachments = std::mem::take(&mut message.attachments);
    let staged = tokio::task::spawn_blocking(move || -> Result<Vec<StagedFile>, StoreError> {
        let mut staged = Vec::with_capacity(attachments.len());
        let mut result = Ok(());
        for a in &attachments {
            let s = match &a.data {
                AttachmentData::Bytes(b) => files.write(&a.content_id, &a.mime_type, b),
                AttachmentData::File(p) => files.adopt(&a.content_id, &a.mime_type, p),
            };
            match s {
                Ok(s) => staged.push(s),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let result = result.and_then(|()| {
            if staged.is_empty() {
                Ok(())
            } else {
                files.sync()
            }
        });
        if let Err(e) = result {
            files.remove(staged.iter().map(|s| s.file.as_str()));
            for a in &attachments {
                if let AttachmentData::File(p) = &a.data {
                    let _ = std::fs::remove_file(p);
                }
            }
            return Err(e.into());
        }
        Ok(staged)
    })
    .await
    .map_err(|e| StoreError::Worker(e.to_string()))??;
    let received = inner
        .store
        .receive(
            message,
            via,
            inner.now_ms(),
            inner.config.registration_prefix.clone(),
            staged,
        )
        .await?;
    if received.new {
        tracing::info!(
            inbox_id = received.inbox_id,
            registration_number = %received.registration_number,
            "stored"
        );
        if received.direction == Direction::Request && inner.callback_mode() {
            inner.dispatch_wake.notify_one();
        }
    } else {
        tracing::info!(
            inbox_id = received.inbox_id,
            "delivered again; acknowledged with the same registration"
        );
    }
    Ok(received)
}

/// Acknowledges a stored message with its registration.
async fn acknowledge(inner: &Inner, r: &Unacked) -> Result<(), ()> {
    let global_id = r.global_id.as_str();
    let at = crate::from_ms(r.registered_at_ms);
    match inner
        .client
        .ack(global_id, true, Some((&r.registration_number, at)))
        .await
    {
        Ok(()) => {
            inner.gateway_ok();
            mark_acked(inner, r.inbox_id).await
        }
        Err(CallError::Fault(f)) if f.code == FaultCode::TargetMessageIsNotFound => {
            // Nothing left to acknowledge (it expired, or the gateway purged it).
            inner.gateway_ok();
            tracing::warn!(%global_id, error = %f, "the gateway no longer holds the message");
            mark_acked(inner, r.inbox_id).await
        }
        Err(e) => {
            note(inner, &e);
            tracing::warn!(%global_id, error = %e, "Ack failed; repeated later");
            if let Err(se) = inner.store.mark_ack_failed(r.inbox_id, e.to_string()).await {
                tracing::error!(error = %se, "cannot record the failed Ack");
            }
            Err(())
        }
    }
}

async fn mark_acked(inner: &Inner, inbox_id: i64) -> Result<(), ()> {
    inner
        .store
        .mark_acked(inbox_id, inner.now_ms())
        .await
        .map_err(|e| tracing::error!(error = %e, "cannot record the Ack"))
}

/// Acknowledges what was stored but not acknowledged (a failed Ack, a crash).
async fn acknowledge_pending(inner: &Inner, shutdown: &Shutdown) -> Result<(), ()> {
    let pending = inner
        .store
        .unacked(BATCH)
        .await
        .map_err(|e| tracing::error!(error = %e, "cannot read unacknowledged messages"))?;
    for u in pending {
        if shutdown.is_set() {
            break;
        }
        acknowledge(inner, &u).await?;
    }
    Ok(())
}

/// Takes processing statuses until there are none.
async fn statuses(inner: &Inner, shutdown: &Shutdown, limit: usize) -> Result<usize, ()> {
    let mut n = 0;
    while n < limit && !shutdown.is_set() {
        match inner.client.get_status().await {
            Ok(Some(s)) => {
                inner.gateway_ok();
                n += 1;
                tracing::info!(original_message_id = %s.original_message_id, category = %s.category, "status");
                // A status is consumed by the GetStatus that returned it (protocol.md):
                // if this write fails it is lost, so it is logged in full.
                if let Err(e) = inner.store.store_status(s.clone(), inner.now_ms()).await {
                    tracing::error!(error = %e, status = ?s, "cannot store a status");
                    return Err(());
                }
            }
            Ok(None) => {
                inner.gateway_ok();
                return Ok(n);
            }
            Err(e) => {
                note(inner, &e);
                tracing::warn!(error = %e, "GetStatus failed");
                return Err(());
            }
        }
    }
    Ok(n)
}
