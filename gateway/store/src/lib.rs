//! The gateway's storage seam: one trait, [`Store`], whose methods are shaped by what the
//! exchange core needs ("accept this message and its card in one transaction", "lease the
//! next message for this system"), never by SQL. The embedded implementation is
//! [`sqlite::SqliteStore`]; a PostgreSQL one implements the same trait with leases taken by
//! `UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED)`.
//!
//! Invariants every implementation keeps:
//! - a method returns only after its effects are durable (committed, fsync'd);
//! - every mutating method is one transaction: a failure leaves nothing written;
//! - idempotency by (sender system, sender MessageID): accepting the same pair twice
//!   reports the first acceptance instead of writing anything;
//! - a message's payload and attachment rows exist only until it is acknowledged; the card
//!   (metadata only) stays.

#![forbid(unsafe_code)]

pub mod journal;
pub mod model;
pub mod sqlite;
pub mod verify;

pub use model::*;

use futures_util::future::BoxFuture;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error("the store is closed")]
    Closed,
    #[error("invalid registry change: {0}")]
    InvalidChange(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The caller asked for something that cannot be (a proof beyond the journal's size).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The storage operations of the gateway.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// The registry as it is now.
    fn registry(&self) -> BoxFuture<'_, Result<RegistryData>>;
    /// The registry's version (bumped by every change), cheap to poll.
    fn registry_version(&self) -> BoxFuture<'_, Result<u64>>;
    /// Applies changes atomically (all or none) and journals them as made by `actor`;
    /// returns the new version.
    fn change_registry(
        &self,
        actor: String,
        at_ms: i64,
        changes: Vec<RegistryChange>,
    ) -> BoxFuture<'_, Result<u64>>;

    /// What the sender was answered when it sent this MessageID before.
    fn find_sent<'a>(
        &'a self,
        sender_system: &'a str,
        sender_message_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<SentRecord>>>;
    /// Enqueues a message and writes its card (and a status change of the card it
    /// answers) in one transaction, unless the (sender, MessageID) pair is already known.
    fn accept(&self, message: NewMessage) -> BoxFuture<'_, Result<AcceptOutcome>>;
    /// Leases the oldest visible matching message for `visibility_ms`.
    fn lease(&self, request: LeaseRequest) -> BoxFuture<'_, Result<Option<Delivery>>>;
    /// Leases the oldest visible matching message and acknowledges it in the same
    /// transaction, with no receiver registration (processing statuses, which SMEV
    /// clients cannot acknowledge: the call that returns one consumes it).
    fn take(
        &self,
        request: LeaseRequest,
        acked_status: String,
    ) -> BoxFuture<'_, Result<Option<Delivery>>>;
    /// Acknowledges (or releases) a delivered message.
    fn ack(&self, command: AckCommand) -> BoxFuture<'_, Result<AckOutcome>>;
    /// Routing facts of a message, without its payload.
    fn message_info(&self, global_id: GlobalId) -> BoxFuture<'_, Result<Option<MessageInfo>>>;
    /// Pending messages per queue and kind for a recipient.
    fn queue_counts<'a>(
        &'a self,
        recipient_system: &'a str,
    ) -> BoxFuture<'a, Result<Vec<QueueCount>>>;
    /// The highest global ID ever stored (the generator's floor after a restart).
    fn highest_global_id(&self) -> BoxFuture<'_, Result<Option<GlobalId>>>;
    /// The card of a message.
    fn card(&self, global_id: GlobalId) -> BoxFuture<'_, Result<Option<Card>>>;
    /// Attachment paths (relative to the data directory) still referenced by a message
    /// that is not acknowledged: everything else in the attachment area is garbage.
    fn live_attachment_paths(&self) -> BoxFuture<'_, Result<Vec<String>>>;

    // --- the journal (module `journal`): append-only events as Merkle leaves ---

    /// Appends events that no queue change causes (a rejected call, an auditor's query)
    /// in one transaction; returns their `seq`s.
    fn journal_append(&self, events: Vec<NewEvent>) -> BoxFuture<'_, Result<Vec<u64>>>;
    /// The number of events (the tree size).
    fn journal_size(&self) -> BoxFuture<'_, Result<u64>>;
    /// The Merkle root of the first `size` events.
    fn journal_root(&self, size: u64) -> BoxFuture<'_, Result<Hash>>;
    /// Events `from..`, at most `limit`.
    fn journal_events(&self, from: u64, limit: usize) -> BoxFuture<'_, Result<Vec<JournalEvent>>>;
    /// Every event about one message.
    fn journal_events_of(&self, global_id: GlobalId) -> BoxFuture<'_, Result<Vec<JournalEvent>>>;
    /// RFC 9162 inclusion proof of event `seq` in the tree of `size`.
    fn inclusion_proof(&self, seq: u64, size: u64) -> BoxFuture<'_, Result<Vec<Hash>>>;
    /// RFC 9162 consistency proof between tree sizes `old` and `new`.
    fn consistency_proof(&self, old: u64, new: u64) -> BoxFuture<'_, Result<Vec<Hash>>>;
    /// Stores a signed checkpoint, refused unless its root is the journal's root at its size.
    fn add_checkpoint(&self, checkpoint: StoredCheckpoint) -> BoxFuture<'_, Result<()>>;
    /// Checkpoints larger than `after`, smallest first.
    fn checkpoints(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<StoredCheckpoint>>>;
    fn latest_checkpoint(&self) -> BoxFuture<'_, Result<Option<StoredCheckpoint>>>;
    /// Cards matching an auditor's filter, in global-ID order (one page).
    fn query_cards(&self, filter: CardFilter) -> BoxFuture<'_, Result<Vec<Card>>>;

    // --- deadlines (rows written with their messages; fired once) ---

    /// When the next pending deadline can be claimed (its due time or its lease's end).
    fn next_deadline_at(&self) -> BoxFuture<'_, Result<Option<i64>>>;
    /// Leases up to `limit` rows due at `now_ms` to `owner` for `lease_ms`.
    fn claim_deadlines(
        &self,
        owner: String,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<ClaimedDeadline>>>;
    /// Fires claimed rows in one transaction; a row no longer pending or leased by another
    /// owner is skipped.
    fn fire_deadlines(
        &self,
        firings: Vec<DeadlineFiring>,
    ) -> BoxFuture<'_, Result<Vec<FireOutcome>>>;
    // --- push delivery (docs/push.md) ---

    /// Leases, for each listed system, up to its room of messages (requests and responses
    /// addressed to it) whose next push attempt is due and which no pull holds, earliest
    /// due first; counts each attempt and journals it as a `message.delivered` (channel
    /// `push`). A due message already at `max_attempts` falls back to pull instead.
    fn claim_push(&self, claim: PushClaim) -> BoxFuture<'_, Result<PushClaimed>>;
    /// When the next push attempt for one of `systems` can be claimed (its due time, or
    /// the end of the lease that holds it).
    fn next_push_at(&self, systems: Vec<String>) -> BoxFuture<'_, Result<Option<i64>>>;
    /// Records a failed attempt (retry time or fallback, last error, journal event) if it
    /// is still the message's latest attempt and the message is not acknowledged; returns
    /// whether it did.
    fn push_failed(&self, failure: PushAttemptFailed) -> BoxFuture<'_, Result<bool>>;
    /// The push bookkeeping of a message (`None`: no such message row).
    fn push_state(&self, global_id: GlobalId) -> BoxFuture<'_, Result<Option<PushState>>>;

    // --- requests outside the electronic exchange (paper, fax) ---

    /// Records a request or answer that travelled on paper: its card, its journal event
    /// and its deadlines (or the deadlines it closes), in one transaction. No queue row:
    /// nothing is delivered electronically. Refused if the global ID exists.
    fn record_paper(
        &self,
        card: Card,
        lifecycle: Lifecycle,
        event: NewEvent,
    ) -> BoxFuture<'_, Result<()>>;

    // --- periodic jobs ---

    /// Takes the slot `(job, slot_ms)` for `node`; false if another node (or an earlier
    /// run) already took it. A slot runs once in the whole cluster.
    fn claim_job_slot(
        &self,
        job: String,
        slot_ms: i64,
        node: String,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<bool>>;
    /// Records how a slot's run ended.
    fn finish_job_slot(
        &self,
        job: String,
        slot_ms: i64,
        now_ms: i64,
        outcome: String,
    ) -> BoxFuture<'_, Result<()>>;
    /// Deletes the queue rows of messages acknowledged or expired before `before_ms` (their
    /// payload is already gone; cards and journal stay); returns how many.
    fn purge_finished_messages(&self, before_ms: i64, limit: usize) -> BoxFuture<'_, Result<u64>>;

    // --- operator monitoring (docs/monitoring.md) ---

    /// Rewrites the one probe row through the writer (the readiness check's proof that the
    /// store commits).
    fn health_probe(&self, now_ms: i64) -> BoxFuture<'_, Result<()>>;
    /// A durable operator setting (e.g. `maintenance`), as stored.
    fn setting(&self, key: String) -> BoxFuture<'_, Result<Option<String>>>;
    /// Stores a setting and journals its change in one transaction.
    fn put_setting(&self, key: String, value: String, event: NewEvent)
        -> BoxFuture<'_, Result<()>>;
    /// Queue depths and ages per (recipient, kind), open overdue counts, and the answer
    /// times of requests closed since `since_ms` (at most `max_answers`, newest first).
    fn monitoring_snapshot(
        &self,
        since_ms: i64,
        max_answers: usize,
    ) -> BoxFuture<'_, Result<MonitoringSnapshot>>;
    /// Keeps the later of the stored and the given last poll / last success per system.
    fn save_activity(&self, activity: Vec<SystemActivity>) -> BoxFuture<'_, Result<()>>;
    /// Moves each (system, queue, kind) drain time forward to the given one.
    fn save_drains(&self, drains: Vec<SystemDrain>) -> BoxFuture<'_, Result<()>>;
    /// Open overdue requests, earliest overdue first.
    fn overdue_requests(&self, limit: usize) -> BoxFuture<'_, Result<Vec<OverdueRequest>>>;
    /// The alerts open now.
    fn active_alerts(&self) -> BoxFuture<'_, Result<Vec<ActiveAlert>>>;
    /// Opens an alert and journals `event`, unless one is open for its (rule, subject);
    /// returns whether it opened.
    fn open_alert(&self, alert: ActiveAlert, event: NewEvent) -> BoxFuture<'_, Result<bool>>;
    /// Resolves the open alert of (rule, subject) and journals `event`; returns whether
    /// one was open.
    fn resolve_alert(
        &self,
        rule: String,
        subject: String,
        event: NewEvent,
    ) -> BoxFuture<'_, Result<bool>>;

    /// What `/metrics` reports about this store at scrape time (docs/metrics.md): pending
    /// messages per (recipient, queue) from the trigger-kept counters, the oldest pending
    /// message of each, requests open past their reply deadline (overdue fired, no final
    /// answer), the journal's size and the latest checkpoint's time. Reads only; its cost
    /// grows with the backlog and the overdue count, never with the history.
    fn metrics_snapshot(&self) -> BoxFuture<'_, Result<MetricsSnapshot>>;
}

/// A pending queue as `/metrics` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    pub recipient_system: String,
    pub queue: Queue,
    pub pending: u64,
    /// When its oldest pending message was received (ms, UTC).
    pub oldest_received_at_ms: Option<i64>,
}

/// [`Store::metrics_snapshot`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub queues: Vec<QueueDepth>,
    /// Requests whose overdue deadline fired and that no final answer closed.
    pub overdue: u64,
    pub journal_size: u64,
    /// The latest signed checkpoint's time (ms, UTC).
    pub latest_checkpoint_ms: Option<i64>,
}
