//! The adapter's durable store: SQLite in WAL mode with `synchronous=FULL`, numbered
//! migrations (`migrations/*.sql`, applied by `PRAGMA user_version`), one connection.
//!
//! Invariants:
//! - Every method that changes something is atomic (its own savepoint), and returns only
//!   after the transaction holding it committed: a 202 to the agency or an Ack to the
//!   gateway is given only after that.
//! - One writer: the connection belongs to one thread, which takes the methods' work from
//!   a channel and runs whatever has queued up in one transaction — one fsync for many
//!   (group commit), never a weaker `synchronous`. A method that fails rolls back its own
//!   savepoint only. The database is opened in exclusive locking mode, so a second adapter
//!   on the same data directory fails at start instead of sharing the outbox.
//! - A delivered message is stored once per global ID; its registration number is
//!   assigned in the transaction that stores it, so a redelivery finds the same number.
//! - An outbox row's MessageID is fixed when the row is inserted.

use crate::files::{Files, StagedFile};
use mezhved_client::{Content, Direction, Incoming, Registration, RequestCard, StatusMessage};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::mpsc;

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_outbox_inbox.sql"),
    include_str!("../migrations/0002_link_indexes.sql"),
];

/// The status of an outbox row as the API shows it: the send's state until the gateway
/// accepted it, then what happened next.
const STATUS_EXPR: &str =
    "CASE WHEN state = 'sent' AND outcome IS NOT NULL THEN outcome ELSE state END";

/// Every status an outbox row can show.
pub const REQUEST_STATUSES: &[&str] = &[
    "queued",
    "sent",
    "rejected",
    "delivered",
    "clarification",
    "answered",
    "refused",
    "expired",
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("file: {0}")]
    Io(#[from] std::io::Error),
    #[error("stored data: {0}")]
    Corrupt(String),
    #[error("the store's worker failed: {0}")]
    Worker(String),
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// RFC 3339 (UTC, milliseconds) of a time in milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn opt_time(ms: Option<i64>) -> Option<String> {
    ms.map(rfc3339)
}

// ---------------------------------------------------------------------------------------
// Views: what the API shows (and what some columns hold as JSON).

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberDate {
    pub number: String,
    pub date: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksumView {
    pub algorithm: String,
    /// Base64, as in `mz:Registration/mz:Checksum`.
    pub value: String,
    /// The same bytes in hex, as the journal and its attestation API show them.
    pub hex: String,
}

/// The gateway's registration of a message (`mz:Registration`): the second of triple
/// registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationView {
    pub global_id: String,
    pub checksum: ChecksumView,
    pub received_at: String,
    pub due_at: Option<String>,
    pub sender_registration: Option<NumberDate>,
    pub late: bool,
}

impl From<&Registration> for RegistrationView {
    fn from(r: &Registration) -> Self {
        use base64::Engine as _;
        let hex = base64::engine::general_purpose::STANDARD
            .decode(&r.checksum.1)
            .map(hex::encode)
            .unwrap_or_default();
        RegistrationView {
            global_id: r.global_id.clone(),
            checksum: ChecksumView {
                algorithm: r.checksum.0.clone(),
                value: r.checksum.1.clone(),
                hex,
            },
            received_at: r.received_at.clone(),
            due_at: r.due_at.clone(),
            sender_registration: r.sender_registration.as_ref().map(|(n, d)| NumberDate {
                number: n.clone(),
                date: d.clone(),
            }),
            late: r.late,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationErrorView {
    pub position: Option<String>,
    pub text: String,
}

/// A non-retryable refusal of the gateway (or of this adapter before the call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultView {
    pub code: String,
    pub message: String,
    pub signature_code: Option<String>,
    pub validation_errors: Vec<ValidationErrorView>,
}

/// A provider's intermediate status (`RequestStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    pub code: i32,
    pub description: String,
    pub parameters: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionView {
    pub code: String,
    pub description: String,
}

/// A processing status from the gateway (GetStatus).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayStatusView {
    pub category: String,
    pub details: Option<String>,
    pub timestamp: Option<String>,
    pub received_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplyView {
    pub inbox_id: i64,
    pub global_id: String,
    /// `data`, `rejection` or `status`.
    pub kind: String,
    pub late: bool,
}

/// A request the agency submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestView {
    pub id: i64,
    pub client_ref: String,
    pub message_id: String,
    pub status: String,
    pub created_at: String,
    pub attempts: i64,
    pub last_attempt_at: Option<String>,
    pub last_error: Option<String>,
    /// The agency's own registration (the first of triple registration).
    pub sender_registration: Option<NumberDate>,
    pub global_id: Option<String>,
    pub registration: Option<RegistrationView>,
    pub sent_at: Option<String>,
    pub gateway_message_status: Option<String>,
    pub fault: Option<FaultView>,
    /// The last final answer, or the last status if none is final yet.
    pub reply: Option<ReplyView>,
    pub late: bool,
    pub provider_status: Option<StatusView>,
    pub last_gateway_status: Option<String>,
    pub delivered_at: Option<String>,
    pub overdue_at: Option<String>,
    pub expired_at: Option<String>,
    /// Inbox IDs of every response to it.
    pub responses: Vec<i64>,
    pub gateway_statuses: Vec<GatewayStatusView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachmentView {
    pub content_id: String,
    pub mime_type: String,
    pub size: i64,
    pub url: String,
}

/// An answer the agency gave to a received request (an outbox SendResponse row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnswerView {
    pub id: i64,
    pub inbox_id: i64,
    pub message_id: String,
    pub kind: String,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub status: String,
    pub created_at: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub global_id: Option<String>,
    pub registration: Option<RegistrationView>,
    pub sent_at: Option<String>,
    pub fault: Option<FaultView>,
}

/// A delivered request or response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboxView {
    pub id: i64,
    pub direction: String,
    pub global_id: String,
    /// The agency's own registration of it (the third of triple registration).
    pub registration_number: String,
    pub registered_at: String,
    pub received_via: String,
    pub acked: bool,
    pub acked_at: Option<String>,
    pub sender_system: String,
    pub sender_name: Option<String>,
    pub message_id: String,
    pub reply_to: Option<String>,
    pub original_message_id: Option<String>,
    pub reference_message_id: Option<String>,
    pub kind_name: Option<String>,
    /// The business XML (data).
    pub content: Option<String>,
    pub rejection: Option<RejectionView>,
    pub status: Option<StatusView>,
    pub card: Option<RequestCard>,
    pub registration: Option<RegistrationView>,
    pub late: bool,
    pub test: bool,
    /// Responses: the request row (`/api/v1/requests/{id}`) they answer.
    pub request_id: Option<i64>,
    pub state: String,
    pub dispatch_attempts: i64,
    pub dispatch_error: Option<String>,
    pub last_gateway_status: Option<String>,
    pub overdue_at: Option<String>,
    pub done_at: Option<String>,
    pub attachments: Vec<AttachmentView>,
    /// Requests: the answers given to it.
    pub answers: Vec<AnswerView>,
    /// Requests: the gateway's statuses about it (reminder, overdue).
    pub gateway_statuses: Vec<GatewayStatusView>,
}

// ---------------------------------------------------------------------------------------
// Commands.

/// A request to insert into the outbox.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub client_ref: String,
    pub body_sha256: String,
    pub message_id: String,
    pub created_at_ms: i64,
    pub content: String,
    pub card: Option<RequestCard>,
    pub reference_message_id: Option<String>,
    pub eol_ms: Option<i64>,
    pub test: bool,
    pub mtom: bool,
    pub files: Vec<StagedFile>,
    /// `<prefix>-OUT-<id>` becomes the card's `SenderRegistration/Number` when absent.
    pub registration_prefix: String,
    /// The agency's date today (YYYY-MM-DD): `SentOn` and `SenderRegistration/Date` when
    /// absent.
    pub today: String,
}

#[derive(Debug)]
pub enum Submitted {
    Created(Box<RequestView>),
    /// The same client_ref with the same body: the row made the first time.
    Existing(Box<RequestView>),
    /// The same client_ref with another body.
    Conflict(Box<RequestView>),
}

/// An answer to insert into the outbox.
#[derive(Debug, Clone)]
pub struct NewAnswer {
    pub inbox_id: i64,
    pub body_sha256: String,
    pub message_id: String,
    pub created_at_ms: i64,
    pub kind: AnswerKind,
    pub mtom: bool,
    pub files: Vec<StagedFile>,
}

/// What an answer carries: the same three forms as a delivered message's content.
pub type AnswerKind = Content;

/// Whether an answer closes its request (data or a rejection; a status does not).
pub fn is_final(kind: &AnswerKind) -> bool {
    !matches!(kind, Content::Status { .. })
}

/// The columns a content is stored in: kind, data XML, code, description, parameters.
type ContentColumns = (
    &'static str,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn content_columns(c: &Content) -> Result<ContentColumns, StoreError> {
    Ok(match c {
        Content::Data(xml) => ("data", Some(xml.clone()), None, None, None),
        Content::Rejection { code, description } => (
            "rejection",
            None,
            Some(code.clone()),
            Some(description.clone()),
            None,
        ),
        Content::Status {
            code,
            description,
            parameters,
        } => {
            let map: BTreeMap<&str, &str> = parameters
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            (
                "status",
                None,
                Some(code.to_string()),
                Some(description.clone()),
                Some(serde_json::to_string(&map)?),
            )
        }
    })
}

#[derive(Debug)]
pub enum Answered {
    Created(Box<AnswerView>),
    Existing(Box<AnswerView>),
    /// Not allowed: the reason.
    Conflict(String),
    NotFound,
}

/// An outbox row as the sender needs it.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub operation: String,
    pub message_id: String,
    pub content: Option<String>,
    pub card_xml: Option<String>,
    pub reference_message_id: Option<String>,
    pub eol_ms: Option<i64>,
    pub test: bool,
    pub mtom: bool,
    pub reply_to: Option<String>,
    pub answer_kind: Option<String>,
    pub answer_code: Option<String>,
    pub answer_description: Option<String>,
    pub answer_parameters: Vec<(String, String)>,
    /// (content ID, MIME type, file name).
    pub attachments: Vec<(String, String, String)>,
}

/// What [`Store::receive`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub inbox_id: i64,
    pub registration_number: String,
    pub registered_at_ms: i64,
    /// False: this global ID was stored before (a redelivery).
    pub new: bool,
    pub direction: Direction,
}

/// A stored message not yet acknowledged to the gateway.
#[derive(Debug, Clone)]
pub struct Unacked {
    pub inbox_id: i64,
    pub global_id: String,
    pub registration_number: String,
    pub registered_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Poll,
    Push,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Requests submitted, per status.
    pub requests: BTreeMap<String, i64>,
    /// Answers given to received requests, per status.
    pub answers: BTreeMap<String, i64>,
    /// Delivered messages per direction and state.
    pub inbox: BTreeMap<String, BTreeMap<String, i64>>,
    /// Stored but not yet acknowledged to the gateway.
    pub unacknowledged: i64,
}

// ---------------------------------------------------------------------------------------

/// `execute` and `query_row` through the connection's statement cache: the adapter runs
/// the same few dozen statements all day, and preparing them again each time cost more
/// than running them.
trait Cached {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn query_row_cached<
        T,
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    >(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
    fn query_row_cached<
        T,
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    >(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// What a job hands back once its transaction's fate is known.
type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A method's work on the writer's connection.
struct Job {
    run: Box<dyn FnOnce(&mut Connection) -> Deliver + Send>,
    /// Must run outside a transaction (e.g. a WAL checkpoint).
    alone: bool,
}

/// The most jobs one transaction takes.
const MAX_BATCH: usize = 512;

/// The writer thread: batches of jobs, each batch one transaction.
fn writer(mut conn: Connection, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let (alone, together): (Vec<Job>, Vec<Job>) = batch.into_iter().partition(|j| j.alone);
        if !together.is_empty() {
            let begun = conn.execute_batch("BEGIN IMMEDIATE");
            let mut delivers = Vec::with_capacity(together.len());
            let mut skipped = Vec::new();
            let mut lost = false;
            if begun.is_ok() {
                for job in together {
                    if lost {
                        skipped.push(job);
                        continue;
                    }
                    delivers.push((job.run)(&mut conn));
                    // An I/O error or a full disk makes SQLite roll the whole transaction
                    // back: what the batch did so far is gone, and the rest must not run
                    // outside a transaction.
                    lost = conn.is_autocommit();
                }
            }
            let outcome = match begun {
                Err(e) => Err(format!("cannot begin a transaction: {e}")),
                Ok(()) if lost => Err("the transaction was rolled back by the database".into()),
                Ok(()) => conn
                    .execute_batch("COMMIT")
                    .map_err(|e| format!("commit failed: {e}")),
            };

            if outcome.is_err() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            for d in delivers {
                d(outcome.clone());
            }
            // Never ran: their callers learn the batch failed (dropping the job does).
            drop(skipped);
        }
        for job in alone {
            ((job.run)(&mut conn))(Ok(()));
        }
    }
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    files: Files,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row_cached("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::Corrupt(format!(
            "the database is at schema version {version}, newer than this adapter ({known})"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

impl Store {
    /// Opens (creating) the database, applies migrations, takes the exclusive lock and
    /// removes attachment files no row names.
    pub fn open(db: &Path, files: Files) -> Result<Store, StoreError> {
        let mut conn = Connection::open(db)?;
        // Exclusive before WAL: the lock is held for the connection's life, and WAL then
        // needs no shared memory.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_millis(100))?;
        conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;")
            .map_err(|e| {
                StoreError::Corrupt(format!(
                    "{}: {e} (is another adapter running on this data directory?)",
                    db.display()
                ))
            })?;
        migrate(&mut conn)?;
        conn.set_prepared_statement_cache_capacity(256);
        let referenced: HashSet<String> = {
            let mut st = conn.prepare("SELECT file FROM attachments")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let swept = files.sweep(&referenced)?;
        if swept > 0 {
            tracing::info!(files = swept, "removed attachment files no row names");
        }
        let (jobs, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("adapter-store".into())
            .spawn(move || writer(conn, rx))?;
        Ok(Store { jobs, files })
    }

    pub fn files(&self) -> &Files {
        &self.files
    }

    /// Runs `f` on the writer's connection; its result once its transaction committed.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.submit_job(f, false).await
    }

    async fn submit_job<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
        alone: bool,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            run: Box::new(move |c: &mut Connection| {
                let result = f(c);
                Box::new(move |commit: Result<(), String>| {
                    let _ = tx.send(match commit {
                        Ok(()) => result,
                        Err(e) => Err(StoreError::Worker(e)),
                    });
                }) as Deliver
            }),
            alone,
        };
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Worker("the store's writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Worker("the store's writer dropped a job".into()))?
    }

    /// Flushes the WAL into the database (at a graceful stop).
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        self.submit_job(
            |c| {
                c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
                Ok(())
            },
            true,
        )
        .await
    }

    // ------------------------------------------------------------------ submit & send

    /// Inserts a request (or finds the one with its client_ref).
    pub async fn submit(&self, r: NewRequest) -> Result<Submitted, StoreError> {
        self.call(move |c| {
            let tx = c.savepoint()?;
            let existing: Option<(i64, String)> = tx
                .query_row_cached(
                    "SELECT id, body_sha256 FROM outbox WHERE client_ref = ?1",
                    [&r.client_ref],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            if let Some((id, sha)) = existing {
                let view = Box::new(request_view(&tx, id)?);
                return Ok(if sha == r.body_sha256 {
                    Submitted::Existing(view)
                } else {
                    Submitted::Conflict(view)
                });
            }
            tx.execute_cached(
                "INSERT INTO outbox (operation, client_ref, body_sha256, message_id, created_at, content,
                                     reference_message_id, eol, test, mtom, state)
                 VALUES ('request', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'queued')",
                params![
                    r.client_ref,
                    r.body_sha256,
                    r.message_id,
                    r.created_at_ms,
                    r.content,
                    r.reference_message_id,
                    r.eol_ms,
                    r.test,
                    r.mtom
                ],
            )?;
            let id = tx.last_insert_rowid();
            if let Some(mut card) = r.card {
                if card.sender_registration.is_none() {
                    card.sender_registration = Some((
                        format!("{}-OUT-{id}", r.registration_prefix),
                        r.today.clone(),
                    ));
                }
                if card.sent_on.is_none() {
                    card.sent_on = Some(r.today.clone());
                }
                let (number, date) = card.sender_registration.clone().unwrap_or_default();
                tx.execute_cached(
                    "UPDATE outbox SET card_json = ?2, card_xml = ?3, sender_registration_number = ?4,
                                       sender_registration_date = ?5 WHERE id = ?1",
                    params![id, serde_json::to_string(&card)?, card.to_xml(), number, date],
                )?;
            }
            insert_attachments(&tx, "outbox_id", id, &r.files)?;
            let view = request_view(&tx, id)?;
            tx.commit()?;
            Ok(Submitted::Created(Box::new(view)))
        })
        .await
    }

    /// IDs of queued outbox rows, oldest first.
    pub async fn queued(&self, limit: usize) -> Result<Vec<i64>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id FROM outbox WHERE state = 'queued' ORDER BY id LIMIT ?1",
            )?;
            let rows = st.query_map([limit as i64], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// A queued row to send (`None` when it is no longer queued).
    pub async fn outbox_row(&self, id: i64) -> Result<Option<OutboxRow>, StoreError> {
        self.call(move |c| {
            let row = c
                .query_row_cached(
                    "SELECT operation, message_id, content, card_xml, reference_message_id, eol, test, mtom,
                            reply_to, answer_kind, answer_code, answer_description, answer_parameters
                     FROM outbox WHERE id = ?1 AND state = 'queued'",
                    [id],
                    |r| {
                        Ok((OutboxRow {
                            id,
                            operation: r.get(0)?,
                            message_id: r.get(1)?,
                            content: r.get(2)?,
                            card_xml: r.get(3)?,
                            reference_message_id: r.get(4)?,
                            eol_ms: r.get(5)?,
                            test: r.get(6)?,
                            mtom: r.get(7)?,
                            reply_to: r.get(8)?,
                            answer_kind: r.get(9)?,
                            answer_code: r.get(10)?,
                            answer_description: r.get(11)?,
                            answer_parameters: Vec::new(),
                            attachments: Vec::new(),
                        }, r.get::<_, Option<String>>(12)?))
                    },
                )
                .optional()?;
            let Some((mut row, params)) = row else {
                return Ok(None);
            };
            if let Some(p) = params {
                let map: BTreeMap<String, String> = serde_json::from_str(&p)?;
                row.answer_parameters = map.into_iter().collect();
            }
            let mut st = c.prepare_cached(
                "SELECT content_id, mime_type, file FROM attachments WHERE outbox_id = ?1 ORDER BY position",
            )?;
            row.attachments = st
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            Ok(Some(row))
        })
        .await
    }

    /// The gateway accepted the row: records its global ID and registration; its
    /// attachment files are no longer needed.
    pub async fn mark_sent(
        &self,
        id: i64,
        global_id: String,
        message_status: String,
        registration: Option<RegistrationView>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let files = self
            .call(move |c| {
                let tx = c.savepoint()?;
                let registration = registration
                    .map(|r| serde_json::to_string(&r))
                    .transpose()?;
                tx.execute_cached(
                    "UPDATE outbox SET state = 'sent', global_id = ?2, gateway_message_status = ?3,
                            registration = ?4, sent_at = ?5, attempts = attempts + 1,
                            last_attempt_at = ?5, last_error = NULL
                     WHERE id = ?1 AND state = 'queued'",
                    params![id, global_id, message_status, registration, now_ms],
                )?;
                let files = take_attachments(&tx, "outbox_id", id)?;
                tx.commit()?;
                Ok(files)
            })
            .await?;
        self.files.remove(files.iter().map(String::as_str));
        Ok(())
    }

    /// A failed attempt that will be repeated.
    pub async fn mark_attempt_failed(
        &self,
        id: i64,
        error: String,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        self.call(move |c| {
            Ok(c.query_row_cached(
                "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?2, last_error = ?3
                 WHERE id = ?1 RETURNING attempts",
                params![id, now_ms, error],
                |r| r.get(0),
            )?)
        })
        .await
    }

    /// The gateway refused the row for good.
    pub async fn mark_rejected(
        &self,
        id: i64,
        fault: FaultView,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let files = self
            .call(move |c| {
                let tx = c.savepoint()?;
                tx.execute_cached(
                    "UPDATE outbox SET state = 'rejected', fault = ?2, attempts = attempts + 1,
                            last_attempt_at = ?3, last_error = ?4
                     WHERE id = ?1 AND state = 'queued'",
                    params![
                        id,
                        serde_json::to_string(&fault)?,
                        now_ms,
                        format!("{}: {}", fault.code, fault.message)
                    ],
                )?;
                let files = take_attachments(&tx, "outbox_id", id)?;
                tx.commit()?;
                Ok(files)
            })
            .await?;
        self.files.remove(files.iter().map(String::as_str));
        Ok(())
    }

    // ------------------------------------------------------------------ receive

    /// Stores a delivered message with the agency's registration number, or finds it
    /// stored before (then `files` are removed: the first copy's are kept).
    pub async fn receive(
        &self,
        m: Incoming,
        via: Via,
        now_ms: i64,
        registration_prefix: String,
        files: Vec<StagedFile>,
    ) -> Result<Received, StoreError> {
        let (received, drop_files) = self
            .call(move |c| {
                let tx = c.savepoint()?;
                let existing: Option<(i64, String, i64)> = tx
                    .query_row_cached(
                        "SELECT id, registration_number, registered_at FROM inbox WHERE global_id = ?1",
                        [&m.global_id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
                if let Some((id, number, at)) = existing {
                    return Ok((
                        Received {
                            inbox_id: id,
                            registration_number: number,
                            registered_at_ms: at,
                            new: false,
                            direction: m.direction,
                        },
                        files,
                    ));
                }
                let direction = match m.direction {
                    Direction::Request => "request",
                    Direction::Response => "response",
                };
                let (kind, content, code, description, parameters) = content_columns(&m.content)?;
                let registration = m.registration.as_ref().map(RegistrationView::from);
                let late = registration.as_ref().is_some_and(|r| r.late);
                tx.execute_cached(
                    "INSERT INTO inbox (direction, global_id, registered_at, received_via, sender_system,
                        sender_name, message_id, reply_to, original_message_id, reference_message_id,
                        kind_name, content_kind, content, code, description, parameters, card_json,
                        registration, late, test, state)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                        ?18, ?19, ?20, 'new')",
                    params![
                        direction,
                        m.global_id,
                        now_ms,
                        match via {
                            Via::Poll => "poll",
                            Via::Push => "push",
                        },
                        m.sender_system,
                        m.sender_name,
                        m.message_id,
                        m.reply_to,
                        m.original_message_id,
                        m.reference_message_id,
                        m.kind_name,
                        kind,
                        content,
                        code,
                        description,
                        parameters,
                        m.card.as_ref().map(serde_json::to_string).transpose()?,
                        registration.as_ref().map(serde_json::to_string).transpose()?,
                        late,
                        m.test
                    ],
                )?;
                let id = tx.last_insert_rowid();
                let number = format!("{registration_prefix}-IN-{id}");
                tx.execute_cached(
                    "UPDATE inbox SET registration_number = ?2 WHERE id = ?1",
                    params![id, number],
                )?;
                insert_attachments(&tx, "inbox_id", id, &files)?;
                if m.direction == Direction::Response {
                    if let Some(original) = &m.original_message_id {
                        link_response(&tx, id, original, &m.content, late)?;
                    }
                }
                tx.commit()?;
                Ok((
                    Received {
                        inbox_id: id,
                        registration_number: number,
                        registered_at_ms: now_ms,
                        new: true,
                        direction: m.direction,
                    },
                    Vec::new(),
                ))
            })
            .await?;
        self.files
            .remove(drop_files.iter().map(|f| f.file.as_str()));
        Ok(received)
    }

    pub async fn unacked(&self, limit: usize) -> Result<Vec<Unacked>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, global_id, registration_number, registered_at FROM inbox
                 WHERE acked_at IS NULL ORDER BY id LIMIT ?1",
            )?;
            let rows = st.query_map([limit as i64], |r| {
                Ok(Unacked {
                    inbox_id: r.get(0)?,
                    global_id: r.get(1)?,
                    registration_number: r.get(2)?,
                    registered_at_ms: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn mark_acked(&self, inbox_id: i64, now_ms: i64) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute_cached(
                "UPDATE inbox SET acked_at = ?2, ack_attempts = ack_attempts + 1, ack_error = NULL
                 WHERE id = ?1 AND acked_at IS NULL",
                params![inbox_id, now_ms],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn mark_ack_failed(&self, inbox_id: i64, error: String) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute_cached(
                "UPDATE inbox SET ack_attempts = ack_attempts + 1, ack_error = ?2 WHERE id = ?1",
                params![inbox_id, error],
            )?;
            Ok(())
        })
        .await
    }

    /// Records a processing status and applies it to the row it is about.
    pub async fn store_status(&self, s: StatusMessage, now_ms: i64) -> Result<(), StoreError> {
        self.call(move |c| {
            let tx = c.savepoint()?;
            let outbox: Option<i64> = tx
                .query_row_cached(
                    "SELECT id FROM outbox WHERE message_id = ?1",
                    [&s.original_message_id],
                    |r| r.get(0),
                )
                .optional()?;
            let inbox: Option<i64> = if outbox.is_none() {
                tx.query_row_cached(
                    "SELECT id FROM inbox WHERE message_id = ?1 AND direction = 'request' ORDER BY id LIMIT 1",
                    [&s.original_message_id],
                    |r| r.get(0),
                )
                .optional()?
            } else {
                None
            };
            let timestamp = s.timestamp.map(crate::to_ms);
            tx.execute_cached(
                "INSERT INTO statuses (original_message_id, category, details, timestamp, received_at, outbox_id, inbox_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![s.original_message_id, s.category, s.details, timestamp, now_ms, outbox, inbox],
            )?;
            let at = timestamp.unwrap_or(now_ms);
            if let Some(id) = outbox {
                tx.execute_cached(
                    "UPDATE outbox SET last_gateway_status = ?2 WHERE id = ?1",
                    params![id, s.category],
                )?;
                match s.category.as_str() {
                    "underProcessing" | "responseIsDelivered" => {
                        advance(&tx, id, "delivered")?;
                        tx.execute_cached(
                            "UPDATE outbox SET delivered_at = coalesce(delivered_at, ?2) WHERE id = ?1",
                            params![id, at],
                        )?;
                    }
                    "deadlineOverdue" => {
                        tx.execute_cached(
                            "UPDATE outbox SET overdue_at = coalesce(overdue_at, ?2) WHERE id = ?1",
                            params![id, at],
                        )?;
                    }
                    "messageExpired" => {
                        advance(&tx, id, "expired")?;
                        tx.execute_cached(
                            "UPDATE outbox SET expired_at = coalesce(expired_at, ?2) WHERE id = ?1",
                            params![id, at],
                        )?;
                    }
                    _ => {}
                }
            } else if let Some(id) = inbox {
                tx.execute_cached(
                    "UPDATE inbox SET last_gateway_status = ?2 WHERE id = ?1",
                    params![id, s.category],
                )?;
                if s.category == "deadlineOverdue" {
                    tx.execute_cached(
                        "UPDATE inbox SET overdue_at = coalesce(overdue_at, ?2) WHERE id = ?1",
                        params![id, at],
                    )?;
                }
            } else {
                tracing::info!(original_message_id = %s.original_message_id, category = %s.category,
                    "a status about a message this adapter does not know");
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    // ------------------------------------------------------------------ provider side

    /// New received requests (for the callback), oldest first.
    pub async fn undispatched(&self, limit: usize) -> Result<Vec<i64>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id FROM inbox WHERE direction = 'request' AND state = 'new' ORDER BY id LIMIT ?1",
            )?;
            let rows = st.query_map([limit as i64], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// The callback took the request and will answer through the API.
    pub async fn mark_dispatched(&self, inbox_id: i64) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute_cached(
                "UPDATE inbox SET state = 'dispatched', dispatch_attempts = dispatch_attempts + 1,
                        dispatch_error = NULL WHERE id = ?1 AND state = 'new'",
                [inbox_id],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn mark_dispatch_failed(
        &self,
        inbox_id: i64,
        error: String,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute_cached(
                "UPDATE inbox SET dispatch_attempts = dispatch_attempts + 1, dispatch_error = ?2 WHERE id = ?1",
                params![inbox_id, error],
            )?;
            Ok(())
        })
        .await
    }

    /// Inserts an answer to a received request as an outbox SendResponse row.
    pub async fn answer(&self, a: NewAnswer) -> Result<Answered, StoreError> {
        let (answered, drop_files) = self
            .call(move |c| {
                let tx = c.savepoint()?;
                let inbox: Option<(String, Option<String>, String)> = tx
                    .query_row_cached(
                        "SELECT direction, reply_to, state FROM inbox WHERE id = ?1",
                        [a.inbox_id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
                let Some((direction, reply_to, state)) = inbox else {
                    return Ok((Answered::NotFound, a.files));
                };
                let Some(reply_to) = reply_to.filter(|_| direction == "request") else {
                    return Ok((
                        Answered::Conflict(format!(
                            "inbox item {} is a {direction}, not a request: it cannot be answered",
                            a.inbox_id
                        )),
                        a.files,
                    ));
                };
                let same: Option<i64> = tx
                    .query_row_cached(
                        "SELECT id FROM outbox WHERE inbox_id = ?1 AND body_sha256 = ?2",
                        params![a.inbox_id, a.body_sha256],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(id) = same {
                    return Ok((Answered::Existing(Box::new(answer_view(&tx, id)?)), a.files));
                }
                let final_answer: Option<i64> = tx
                    .query_row_cached(
                        "SELECT id FROM outbox WHERE inbox_id = ?1 AND final = 1",
                        [a.inbox_id],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(id) = final_answer {
                    return Ok((
                        Answered::Conflict(format!(
                            "request {} already has its final answer (answer {id}); a request gets one final answer",
                            a.inbox_id
                        )),
                        a.files,
                    ));
                }
                let (kind, content, code, description, parameters) = content_columns(&a.kind)?;
                tx.execute_cached(
                    "INSERT INTO outbox (operation, body_sha256, message_id, created_at, content, mtom,
                        inbox_id, reply_to, answer_kind, answer_code, answer_description, answer_parameters,
                        final, state)
                     VALUES ('response', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'queued')",
                    params![
                        a.body_sha256,
                        a.message_id,
                        a.created_at_ms,
                        content,
                        a.mtom,
                        a.inbox_id,
                        reply_to,
                        kind,
                        code,
                        description,
                        parameters,
                        is_final(&a.kind)
                    ],
                )?;
                let id = tx.last_insert_rowid();
                insert_attachments(&tx, "outbox_id", id, &a.files)?;
                let new_state = if is_final(&a.kind) {
                    "answered"
                } else if state == "new" {
                    "dispatched"
                } else {
                    state.as_str()
                };
                tx.execute_cached(
                    "UPDATE inbox SET state = ?2 WHERE id = ?1 AND state <> 'done'",
                    params![a.inbox_id, new_state],
                )?;
                let view = answer_view(&tx, id)?;
                tx.commit()?;
                Ok((Answered::Created(Box::new(view)), Vec::new()))
            })
            .await?;
        self.files
            .remove(drop_files.iter().map(|f| f.file.as_str()));
        Ok(answered)
    }

    /// The agency is done with a delivered message: its attachment files go.
    pub async fn mark_done(
        &self,
        inbox_id: i64,
        now_ms: i64,
    ) -> Result<Option<InboxView>, StoreError> {
        let (view, files) = self
            .call(move |c| {
                let tx = c.savepoint()?;
                let n = tx.execute_cached(
                    "UPDATE inbox SET state = 'done', done_at = coalesce(done_at, ?2) WHERE id = ?1",
                    params![inbox_id, now_ms],
                )?;
                if n == 0 {
                    return Ok((None, Vec::new()));
                }
                let files = take_attachments(&tx, "inbox_id", inbox_id)?;
                let view = inbox_view(&tx, inbox_id)?;
                tx.commit()?;
                Ok((view, files))
            })
            .await?;
        self.files.remove(files.iter().map(String::as_str));
        Ok(view)
    }

    // ------------------------------------------------------------------ reads

    pub async fn request(&self, id: i64) -> Result<Option<RequestView>, StoreError> {
        self.call(move |c| {
            let tx = c.savepoint()?;
            let known: Option<i64> = tx
                .query_row_cached(
                    "SELECT id FROM outbox WHERE id = ?1 AND operation = 'request'",
                    [id],
                    |r| r.get(0),
                )
                .optional()?;
            known.map(|id| request_view(&tx, id)).transpose()
        })
        .await
    }

    /// Requests, oldest first, after the cursor `after` (an ID).
    pub async fn requests(
        &self,
        status: Option<String>,
        client_ref: Option<String>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<RequestView>, StoreError> {
        self.call(move |c| {
            let tx = c.savepoint()?;
            let ids: Vec<i64> = {
                let sql = format!(
                    "SELECT id FROM outbox WHERE operation = 'request' AND id > ?1
                       AND (?2 IS NULL OR {STATUS_EXPR} = ?2) AND (?3 IS NULL OR client_ref = ?3)
                     ORDER BY id LIMIT ?4"
                );
                let mut st = tx.prepare_cached(&sql)?;
                let rows = st.query_map(params![after, status, client_ref, limit as i64], |r| {
                    r.get(0)
                })?;
                rows.collect::<Result<_, _>>()?
            };
            ids.into_iter().map(|id| request_view(&tx, id)).collect()
        })
        .await
    }

    pub async fn inbox_item(&self, id: i64) -> Result<Option<InboxView>, StoreError> {
        self.call(move |c| {
            let tx = c.savepoint()?;
            inbox_view(&tx, id)
        })
        .await
    }

    pub async fn inbox(
        &self,
        direction: Option<String>,
        state: Option<String>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<InboxView>, StoreError> {
        self.call(move |c| {
            let tx = c.savepoint()?;
            let ids: Vec<i64> = {
                let mut st = tx.prepare_cached(
                    "SELECT id FROM inbox WHERE id > ?1 AND (?2 IS NULL OR direction = ?2)
                       AND (?3 IS NULL OR state = ?3) ORDER BY id LIMIT ?4",
                )?;
                let rows =
                    st.query_map(params![after, direction, state, limit as i64], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(v) = inbox_view(&tx, id)? {
                    out.push(v);
                }
            }
            Ok(out)
        })
        .await
    }

    /// (MIME type, file name) of an inbox item's attachment.
    pub async fn inbox_attachment(
        &self,
        inbox_id: i64,
        content_id: String,
    ) -> Result<Option<(String, String)>, StoreError> {
        self.call(move |c| {
            Ok(c.query_row_cached(
                "SELECT mime_type, file FROM attachments WHERE inbox_id = ?1 AND content_id = ?2",
                params![inbox_id, content_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })
        .await
    }

    /// (content ID, MIME type, file name) of every attachment of an inbox item.
    pub async fn inbox_attachments(
        &self,
        inbox_id: i64,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare_cached(
                "SELECT content_id, mime_type, file FROM attachments WHERE inbox_id = ?1 ORDER BY position",
            )?;
            let rows = st.query_map([inbox_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn stats(&self) -> Result<Stats, StoreError> {
        self.call(|c| {
            let mut stats = Stats {
                requests: BTreeMap::new(),
                answers: BTreeMap::new(),
                inbox: BTreeMap::new(),
                unacknowledged: 0,
            };
            let sql =
                format!("SELECT operation, {STATUS_EXPR}, count(*) FROM outbox GROUP BY 1, 2");
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (op, status, n) = row?;
                let map = if op == "request" {
                    &mut stats.requests
                } else {
                    &mut stats.answers
                };
                map.insert(status, n);
            }
            let mut st = c.prepare("SELECT direction, state, count(*) FROM inbox GROUP BY 1, 2")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (direction, state, n) = row?;
                stats.inbox.entry(direction).or_default().insert(state, n);
            }
            stats.unacknowledged = c.query_row_cached(
                "SELECT count(*) FROM inbox WHERE acked_at IS NULL",
                [],
                |r| r.get(0),
            )?;
            Ok(stats)
        })
        .await
    }

    /// The store answers (for `/health`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call(|c| {
            c.query_row_cached("SELECT 1", [], |r| r.get::<_, i64>(0))?;
            Ok(())
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Helpers inside a transaction.

fn insert_attachments(
    tx: &Connection,
    owner: &str,
    id: i64,
    files: &[StagedFile],
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO attachments ({owner}, position, content_id, mime_type, file, size) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    );
    let mut st = tx.prepare_cached(&sql)?;
    for (i, f) in files.iter().enumerate() {
        st.execute(params![
            id,
            i as i64,
            f.content_id,
            f.mime_type,
            f.file,
            f.size as i64
        ])?;
    }
    Ok(())
}

/// Deletes the attachment rows of a row; returns their file names (to remove after commit).
fn take_attachments(tx: &Connection, owner: &str, id: i64) -> Result<Vec<String>, StoreError> {
    let sql = format!("DELETE FROM attachments WHERE {owner} = ?1 RETURNING file");
    let mut st = tx.prepare_cached(&sql)?;
    let rows = st.query_map([id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn outcome_rank(outcome: Option<&str>) -> u8 {
    match outcome {
        None => 0,
        Some("delivered") => 1,
        Some("clarification") => 2,
        Some(_) => 3,
    }
}

/// Moves an outbox row's outcome forward (never back: a late "delivered" status does not
/// undo an answer).
fn advance(tx: &Connection, id: i64, outcome: &str) -> Result<bool, StoreError> {
    let current: Option<String> =
        tx.query_row_cached("SELECT outcome FROM outbox WHERE id = ?1", [id], |r| {
            r.get(0)
        })?;
    let now = outcome_rank(current.as_deref());
    if now >= 3 || outcome_rank(Some(outcome)) <= now {
        return Ok(false);
    }
    tx.execute_cached(
        "UPDATE outbox SET outcome = ?2 WHERE id = ?1",
        params![id, outcome],
    )?;
    Ok(true)
}

/// A response arrived: link it to our request row (OriginalMessageId = our MessageID) and
/// move the row's outcome.
fn link_response(
    tx: &Connection,
    inbox_id: i64,
    original_message_id: &str,
    content: &Content,
    late: bool,
) -> Result<(), StoreError> {
    let request: Option<i64> = tx
        .query_row_cached(
            "SELECT id FROM outbox WHERE message_id = ?1 AND operation = 'request'",
            [original_message_id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(id) = request else {
        tracing::info!(%original_message_id, "a response to a request this adapter did not send");
        return Ok(());
    };
    tx.execute_cached(
        "UPDATE inbox SET outbox_id = ?2 WHERE id = ?1",
        params![inbox_id, id],
    )?;
    match content {
        Content::Data(_) | Content::Rejection { .. } => {
            let outcome = if matches!(content, Content::Data(_)) {
                "answered"
            } else {
                "refused"
            };
            advance(tx, id, outcome)?;
            tx.execute_cached(
                "UPDATE outbox SET reply_inbox_id = ?2, late = late OR ?3 WHERE id = ?1",
                params![id, inbox_id, late],
            )?;
        }
        Content::Status {
            code,
            description,
            parameters,
        } => {
            let status = StatusView {
                code: *code,
                description: description.clone(),
                parameters: parameters.iter().cloned().collect(),
            };
            tx.execute_cached(
                "UPDATE outbox SET provider_status = ?2,
                        reply_inbox_id = CASE WHEN outcome IN ('answered', 'refused') THEN reply_inbox_id ELSE ?3 END
                 WHERE id = ?1",
                params![id, serde_json::to_string(&status)?, inbox_id],
            )?;
            // 2: the provider asks for a clarification (docs/deadlines.md).
            if *code == 2 {
                advance(tx, id, "clarification")?;
            }
        }
    }
    Ok(())
}

fn json_col<T: serde::de::DeserializeOwned>(v: Option<String>) -> Result<Option<T>, StoreError> {
    v.map(|s| serde_json::from_str(&s).map_err(StoreError::from))
        .transpose()
}

fn gateway_statuses(
    tx: &Connection,
    column: &str,
    id: i64,
) -> Result<Vec<GatewayStatusView>, StoreError> {
    let sql = format!(
        "SELECT category, details, timestamp, received_at FROM statuses WHERE {column} = ?1 ORDER BY id"
    );
    let mut st = tx.prepare_cached(&sql)?;
    let rows = st.query_map([id], |r| {
        Ok(GatewayStatusView {
            category: r.get(0)?,
            details: r.get(1)?,
            timestamp: opt_time(r.get(2)?),
            received_at: rfc3339(r.get(3)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn request_view(tx: &Connection, id: i64) -> Result<RequestView, StoreError> {
    let sql = format!(
        "SELECT client_ref, message_id, {STATUS_EXPR}, created_at, attempts, last_attempt_at, last_error,
                sender_registration_number, sender_registration_date, global_id, registration, sent_at,
                gateway_message_status, fault, reply_inbox_id, late, provider_status, last_gateway_status,
                delivered_at, overdue_at, expired_at
         FROM outbox WHERE id = ?1"
    );
    let (mut view, registration, fault, provider_status, reply_inbox) =
        tx.query_row_cached(&sql, [id], |r| {
            let number: Option<String> = r.get(7)?;
            let date: Option<String> = r.get(8)?;
            Ok((
                RequestView {
                    id,
                    client_ref: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    message_id: r.get(1)?,
                    status: r.get(2)?,
                    created_at: rfc3339(r.get(3)?),
                    attempts: r.get(4)?,
                    last_attempt_at: opt_time(r.get(5)?),
                    last_error: r.get(6)?,
                    sender_registration: number.map(|number| NumberDate {
                        number,
                        date: date.unwrap_or_default(),
                    }),
                    global_id: r.get(9)?,
                    registration: None,
                    sent_at: opt_time(r.get(11)?),
                    gateway_message_status: r.get(12)?,
                    fault: None,
                    reply: None,
                    late: r.get(15)?,
                    provider_status: None,
                    last_gateway_status: r.get(17)?,
                    delivered_at: opt_time(r.get(18)?),
                    overdue_at: opt_time(r.get(19)?),
                    expired_at: opt_time(r.get(20)?),
                    responses: Vec::new(),
                    gateway_statuses: Vec::new(),
                },
                r.get::<_, Option<String>>(10)?,
                r.get::<_, Option<String>>(13)?,
                r.get::<_, Option<String>>(16)?,
                r.get::<_, Option<i64>>(14)?,
            ))
        })?;
    view.registration = json_col(registration)?;
    view.fault = json_col(fault)?;
    view.provider_status = json_col(provider_status)?;
    if let Some(inbox_id) = reply_inbox {
        view.reply = tx
            .query_row_cached(
                "SELECT global_id, content_kind, late FROM inbox WHERE id = ?1",
                [inbox_id],
                |r| {
                    Ok(ReplyView {
                        inbox_id,
                        global_id: r.get(0)?,
                        kind: r.get(1)?,
                        late: r.get(2)?,
                    })
                },
            )
            .optional()?;
    }
    let mut st = tx.prepare_cached("SELECT id FROM inbox WHERE outbox_id = ?1 ORDER BY id")?;
    view.responses = st
        .query_map([id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    view.gateway_statuses = gateway_statuses(tx, "outbox_id", id)?;
    Ok(view)
}

fn answer_view(tx: &Connection, id: i64) -> Result<AnswerView, StoreError> {
    let sql = format!(
        "SELECT inbox_id, message_id, answer_kind, final, {STATUS_EXPR}, created_at, attempts, last_error,
                global_id, registration, sent_at, fault
         FROM outbox WHERE id = ?1"
    );
    let (mut view, registration, fault) = tx.query_row_cached(&sql, [id], |r| {
        Ok((
            AnswerView {
                id,
                inbox_id: r.get(0)?,
                message_id: r.get(1)?,
                kind: r.get(2)?,
                is_final: r.get(3)?,
                status: r.get(4)?,
                created_at: rfc3339(r.get(5)?),
                attempts: r.get(6)?,
                last_error: r.get(7)?,
                global_id: r.get(8)?,
                registration: None,
                sent_at: opt_time(r.get(10)?),
                fault: None,
            },
            r.get::<_, Option<String>>(9)?,
            r.get::<_, Option<String>>(11)?,
        ))
    })?;
    view.registration = json_col(registration)?;
    view.fault = json_col(fault)?;
    Ok(view)
}

fn inbox_view(tx: &Connection, id: i64) -> Result<Option<InboxView>, StoreError> {
    let row = tx
        .query_row_cached(
            "SELECT direction, global_id, registration_number, registered_at, received_via, acked_at,
                    sender_system, sender_name, message_id, reply_to, original_message_id,
                    reference_message_id, kind_name, content_kind, content, code, description, parameters,
                    card_json, registration, late, test, outbox_id, state, dispatch_attempts,
                    dispatch_error, last_gateway_status, overdue_at, done_at
             FROM inbox WHERE id = ?1",
            [id],
            |r| {
                let acked_at: Option<i64> = r.get(5)?;
                Ok((
                    InboxView {
                        id,
                        direction: r.get(0)?,
                        global_id: r.get(1)?,
                        registration_number: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                        registered_at: rfc3339(r.get(3)?),
                        received_via: r.get(4)?,
                        acked: acked_at.is_some(),
                        acked_at: opt_time(acked_at),
                        sender_system: r.get(6)?,
                        sender_name: r.get(7)?,
                        message_id: r.get(8)?,
                        reply_to: r.get(9)?,
                        original_message_id: r.get(10)?,
                        reference_message_id: r.get(11)?,
                        kind_name: r.get(12)?,
                        content: r.get(14)?,
                        rejection: None,
                        status: None,
                        card: None,
                        registration: None,
                        late: r.get(20)?,
                        test: r.get(21)?,
                        request_id: r.get(22)?,
                        state: r.get(23)?,
                        dispatch_attempts: r.get(24)?,
                        dispatch_error: r.get(25)?,
                        last_gateway_status: r.get(26)?,
                        overdue_at: opt_time(r.get(27)?),
                        done_at: opt_time(r.get(28)?),
                        attachments: Vec::new(),
                        answers: Vec::new(),
                        gateway_statuses: Vec::new(),
                    },
                    r.get::<_, String>(13)?,
                    r.get::<_, Option<String>>(15)?,
                    r.get::<_, Option<String>>(16)?,
                    r.get::<_, Option<String>>(17)?,
                    r.get::<_, Option<String>>(18)?,
                    r.get::<_, Option<String>>(19)?,
                ))
            },
        )
        .optional()?;
    let Some((mut view, kind, code, description, parameters, card, registration)) = row else {
        return Ok(None);
    };
    match kind.as_str() {
        "rejection" => {
            view.rejection = Some(RejectionView {
                code: code.unwrap_or_default(),
                description: description.unwrap_or_default(),
            })
        }
        "status" => {
            view.status = Some(StatusView {
                code: code.and_then(|c| c.parse().ok()).unwrap_or_default(),
                description: description.unwrap_or_default(),
                parameters: json_col(parameters)?.unwrap_or_default(),
            })
        }
        _ => {}
    }
    view.card = json_col(card)?;
    view.registration = json_col(registration)?;
    {
        let mut st = tx.prepare_cached(
            "SELECT content_id, mime_type, size FROM attachments WHERE inbox_id = ?1 ORDER BY position",
        )?;
        view.attachments = st
            .query_map([id], |r| {
                let content_id: String = r.get(0)?;
                Ok(AttachmentView {
                    url: format!(
                        "/api/v1/inbox/{id}/attachments/{}",
                        crate::api::path_segment(&content_id)
                    ),
                    content_id,
                    mime_type: r.get(1)?,
                    size: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
    }
    if view.direction == "request" {
        let ids: Vec<i64> = {
            let mut st =
                tx.prepare_cached("SELECT id FROM outbox WHERE inbox_id = ?1 ORDER BY id")?;
            let rows = st.query_map([id], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for a in ids {
            view.answers.push(answer_view(tx, a)?);
        }
    }
    view.gateway_statuses = gateway_statuses(tx, "inbox_id", id)?;
    Ok(Some(view))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mezhved_client::StatusMessage;

    fn open(dir: &Path) -> Store {
        Store::open(
            &dir.join("adapter.db"),
            Files::new(dir.join("files")).expect("files"),
        )
        .expect("store")
    }

    fn incoming(global_id: &str, direction: Direction, content: Content) -> Incoming {
        Incoming {
            direction,
            global_id: global_id.into(),
            sender_system: "ZAGS_IS".into(),
            sender_name: "Civil registry".into(),
            message_id: format!("m-{global_id}"),
            reply_to: Some(format!("mezhved:reply:{global_id}")),
            original_message_id: Some("our-message".into()),
            reference_message_id: None,
            kind_name: None,
            content,
            card: None,
            attachments: Vec::new(),
            registration: None,
            test: false,
        }
    }

    fn request(client_ref: &str, body: &str) -> NewRequest {
        NewRequest {
            client_ref: client_ref.into(),
            body_sha256: body.into(),
            message_id: "our-message".into(),
            created_at_ms: 1,
            content: "<b:R xmlns:b=\"urn:x\"/>".into(),
            card: Some(RequestCard::default()),
            reference_message_id: None,
            eol_ms: None,
            test: false,
            mtom: false,
            files: Vec::new(),
            registration_prefix: "USZN".into(),
            today: "2026-12-01".into(),
        }
    }

    #[tokio::test]
    async fn a_redelivery_finds_the_number_the_first_delivery_got() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let m = incoming("g-1", Direction::Request, Content::Data("<x/>".into()));
        let first = store
            .receive(m.clone(), Via::Poll, 1000, "ZAGS".into(), Vec::new())
            .await
            .expect("stored");
        assert!(first.new);
        assert_eq!(
            first.registration_number,
            format!("ZAGS-IN-{}", first.inbox_id)
        );
        let again = store
            .receive(m, Via::Push, 5000, "ZAGS".into(), Vec::new())
            .await
            .expect("found");
        assert!(!again.new);
        assert_eq!(again.registration_number, first.registration_number);
        assert_eq!(again.registered_at_ms, 1000);
        assert_eq!(store.unacked(10).await.expect("unacked").len(), 1);
        store.mark_acked(first.inbox_id, 6000).await.expect("acked");
        assert!(store.unacked(10).await.expect("unacked").is_empty());
    }

    #[tokio::test]
    async fn a_client_ref_names_one_request_and_its_outcome_only_moves_forward() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let Submitted::Created(v) = store.submit(request("r-1", "a")).await.expect("submit") else {
            panic!("created")
        };
        let number = format!("USZN-OUT-{}", v.id);
        assert_eq!(
            v.sender_registration.as_ref().map(|s| s.number.as_str()),
            Some(number.as_str())
        );
        assert!(
            matches!(store.submit(request("r-1", "a")).await, Ok(Submitted::Existing(e)) if e.id == v.id)
        );
        assert!(
            matches!(store.submit(request("r-1", "b")).await, Ok(Submitted::Conflict(e)) if e.id == v.id)
        );
        store
            .mark_sent(v.id, "g-req".into(), "requestIsQueued".into(), None, 2)
            .await
            .expect("sent");
        let status = |category: &str| StatusMessage {
            original_message_id: "our-message".into(),
            category: category.into(),
            details: String::new(),
            timestamp: None,
        };
        store
            .store_status(status("underProcessing"), 3)
            .await
            .expect("status");
        assert_eq!(
            store
                .request(v.id)
                .await
                .expect("read")
                .expect("row")
                .status,
            "delivered"
        );
        // The answer arrives; a late "delivered" status does not undo it.
        store
            .receive(
                incoming("g-resp", Direction::Response, Content::Data("<x/>".into())),
                Via::Poll,
                4,
                "USZN".into(),
                Vec::new(),
            )
            .await
            .expect("response stored");
        store
            .store_status(status("underProcessing"), 5)
            .await
            .expect("status");
        store
            .store_status(status("deadlineOverdue"), 6)
            .await
            .expect("status");
        let row = store.request(v.id).await.expect("read").expect("row");
        assert_eq!(row.status, "answered");
        assert_eq!(row.reply.as_ref().map(|r| r.kind.as_str()), Some("data"));
        assert!(row.overdue_at.is_some());
        assert_eq!(row.gateway_statuses.len(), 3);
        assert_eq!(row.responses.len(), 1);
    }
}
