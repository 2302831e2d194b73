//! Periodic jobs (checkpoint signing, retention, certificate expiry, calendar reload, the
//! semiannual report). tokio-cron-scheduler fires them on every node; [`run_slot`] makes
//! each scheduled slot run once in the whole cluster.
//!
//! Invariant: a slot `(job, scheduled instant)` runs only on the node whose insert of the
//! slot row won (one transaction); the row records the node, when it ran and how it ended.
//! A node that finds the row taken does nothing. Per-message deadlines are not jobs: they
//! are rows fired by the deadline timer (`deadlines.rs`).

use mezhved_store::{Store, StoreError};
use std::future::Future;

/// Runs `f` for the slot `(job, slot_ms)` unless another node (or an earlier run) took it;
/// returns the recorded outcome, or `None` when the slot was taken elsewhere.
pub async fn run_slot<F, Fut>(
    store: &dyn Store,
    job: &str,
    slot_ms: i64,
    node: &str,
    now_ms: i64,
    f: F,
) -> Result<Option<String>, StoreError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    if !store
        .claim_job_slot(job.into(), slot_ms, node.into(), now_ms)
        .await?
    {
        tracing::debug!(job, slot_ms, "slot taken by another node");
        return Ok(None);
    }
    let outcome = match f().await {
        Ok(done) => done,
        Err(e) => {
            tracing::error!(job, error = %e, "periodic job failed");
            format!("failed: {e}")
        }
    };
    store
        .finish_job_slot(job.into(), slot_ms, now_ms, outcome.clone())
        .await?;
    tracing::info!(job, outcome = %outcome, "periodic job ran");
    Ok(Some(outcome))
}

/// The scheduled instant a firing belongs to: the latest occurrence of `schedule` at or
/// before `now` (two nodes firing the same schedule compute the same slot).
pub fn slot_of(schedule: &croner::Cron, now: chrono::DateTime<chrono::Utc>) -> Option<i64> {
    schedule
        .find_previous_occurrence(&now, true)
        .ok()
        .map(|t| t.timestamp_millis())
}
