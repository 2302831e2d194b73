//! The loop behind the sender and the dispatcher: take the oldest due rows, work on up to
//! `concurrency` at once, and pause the whole loop with jittered exponential backoff
//! after a retryable failure.
//!
//! Why one pause for the loop rather than a timer per row: a retryable failure almost
//! always means the other side (the gateway, the agency's callback) is down, and every
//! row would fail the same way; one pause keeps the order of the rows and does not hammer
//! a peer that is coming back. The pause ends early when a row succeeds.
//!
//! Invariant: a row is worked on by one task at a time; work that was started is awaited
//! (or abandoned at the end of the grace period) before the loop returns.

use crate::store::StoreError;
use crate::Shutdown;
use mezhved_client::provider::Backoff;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What working on one row came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Finished (sent, rejected, answered…): the row left the queue.
    Done,
    /// Failed in a way worth repeating: the row stays, the loop pauses.
    Retry,
}

pub(crate) struct Queue {
    pub name: &'static str,
    pub concurrency: usize,
    pub wake: Arc<Notify>,
    pub backoff: (Duration, Duration),
}

pub(crate) async fn run<C, CF, W, WF>(q: Queue, mut shutdown: Shutdown, candidates: C, work: W)
where
    C: Fn(usize) -> CF,
    CF: Future<Output = Result<Vec<i64>, StoreError>>,
    W: Fn(i64) -> WF,
    WF: Future<Output = Step> + Send + 'static,
{
    let mut inflight: tokio::task::JoinSet<(i64, Step)> = tokio::task::JoinSet::new();
    // Row IDs in flight, by task (a panicking task still frees its row).
    let mut busy: HashMap<tokio::task::Id, i64> = HashMap::new();
    let mut backoff = Backoff::new(q.backoff.0, q.backoff.1);
    let mut paused_until: Option<Instant> = None;
    loop {
        if shutdown.is_set() {
            break;
        }
        let now = Instant::now();
        if paused_until.is_some_and(|t| t <= now) {
            paused_until = None;
        }
        let free = q.concurrency.saturating_sub(inflight.len());
        if free > 0 && paused_until.is_none() {
            match candidates(free + busy.len()).await {
                Ok(ids) => {
                    let taken: Vec<i64> = ids
                        .into_iter()
                        .filter(|id| !busy.values().any(|b| b == id))
                        .take(free)
                        .collect();
                    for id in taken {
                        let job = work(id);
                        let handle = inflight.spawn(async move { (id, job.await) });
                        busy.insert(handle.id(), id);
                    }
                }
                Err(e) => {
                    tracing::error!(queue = q.name, error = %e, "cannot read the queue");
                    paused_until = Some(now + backoff.next_delay());
                }
            }
        }
        tokio::select! {
            _ = q.wake.notified() => {}
            Some(joined) = inflight.join_next_with_id(), if !inflight.is_empty() => {
                settle(&q, joined, &mut busy, &mut backoff, &mut paused_until);
            }
            _ = sleep_until(paused_until), if paused_until.is_some() => {}
            _ = shutdown.wait() => break,
        }
    }
    // Stopping: what was started finishes (the caller bounds this by the grace period).
    while let Some(joined) = inflight.join_next_with_id().await {
        settle(&q, joined, &mut busy, &mut backoff, &mut paused_until);
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn settle(
    q: &Queue,
    joined: Result<(tokio::task::Id, (i64, Step)), tokio::task::JoinError>,
    busy: &mut HashMap<tokio::task::Id, i64>,
    backoff: &mut Backoff,
    paused_until: &mut Option<Instant>,
) {
    match joined {
        Ok((task, (_, Step::Done))) => {
            busy.remove(&task);
            backoff.reset();
            *paused_until = None;
        }
        Ok((task, (id, Step::Retry))) => {
            busy.remove(&task);
            let delay = backoff.next_delay();
            tracing::debug!(
                queue = q.name,
                id,
                ?delay,
                "pausing after a retryable failure"
            );
            *paused_until = Some(Instant::now() + delay);
        }
        Err(e) => {
            // A panicking job: its row stays as it was and is taken up again later.
            let id = busy.remove(&e.id());
            tracing::error!(queue = q.name, ?id, error = %e, "a job failed");
            *paused_until = Some(Instant::now() + backoff.next_delay());
        }
    }
}
