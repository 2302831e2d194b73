//! The embedded store: one SQLite database in WAL mode with `synchronous=FULL`.
//!
//! Invariants:
//! - **One writer.** Every mutation runs on a dedicated thread fed by a channel. The thread
//!   takes whatever commands are waiting (up to [`MAX_BATCH`]), runs each inside its own
//!   SAVEPOINT of one transaction, commits once, and only then answers each caller: many
//!   concurrent calls share one fsync (group commit) and none is answered before its
//!   effects are durable. A command that fails is rolled back to its savepoint alone.
//! - **Readers never block the writer**: WAL lets a small pool of read connections run
//!   alongside it, on tokio's blocking threads.
//! - **Erased means erased.** `secure_delete` overwrites freed content, and after payloads
//!   were deleted the writer truncates the WAL (`wal_checkpoint(TRUNCATE)`) within
//!   [`SqliteOptions::erase_interval`], so an acknowledged payload survives in no file.
//! - Migrations are numbered files applied in order, each in its own transaction, recorded
//!   in `PRAGMA user_version`.

use crate::model::*;
use crate::{Result, Store, StoreError};
use futures_util::future::BoxFuture;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Commands committed together at most.
pub const MAX_BATCH: usize = 256;

const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        include_str!("../migrations/0001_registry_queues_cards.sql"),
    ),
    (2, include_str!("../migrations/0002_queue_counters.sql")),
    (3, include_str!("../migrations/0003_journal.sql")),
    (4, include_str!("../migrations/0004_deadlines.sql")),
    (5, include_str!("../migrations/0005_push.sql")),
    (6, include_str!("../migrations/0006_monitoring.sql")),
    (7, include_str!("../migrations/0007_monitoring_indexes.sql")),
    (8, include_str!("../migrations/0008_system_drains.sql")),
];

/// Every (recipient, queue, kind) with pending messages, its count and its oldest
/// message's arrival, ordered by recipient and queue: the counters, then one seek per row
/// in the pending-age index (cost: the number of such rows, not the backlog).
fn pending_ages(c: &Connection) -> Result<Vec<(String, i64, QueueAge)>> {
    let counts: Vec<(String, i64, String, String, i64)> = c
        .prepare_cached(
            "SELECT recipient_system, queue, kind_namespace, kind_root, pending
             FROM queue_counters WHERE pending > 0
             ORDER BY recipient_system, queue, kind_namespace, kind_root",
        )?
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<std::result::Result<_, _>>()?;
    let mut oldest = c.prepare_cached(
        "SELECT min(received_at) FROM messages INDEXED BY messages_pending_age
         WHERE recipient_system = ?1 AND queue = ?2 AND kind_namespace = ?3
           AND kind_root = ?4 AND acked_at IS NULL",
    )?;
    let mut out = Vec::with_capacity(counts.len());
    for (system, queue, ns, root, pending) in counts {
        let at: Option<i64> = oldest.query_row(params![system, queue, ns, root], |r| r.get(0))?;
        out.push((
            system.clone(),
            queue,
            QueueAge {
                recipient_system: system,
                kind_namespace: ns,
                kind_root: root,
                pending: pending.max(0) as u64,
                oldest_received_at_ms: at,
            },
        ));
    }
    Ok(out)
}

fn min_some(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Read connections.
    pub readers: usize,
    /// How soon after payloads are deleted the WAL is truncated.
    pub erase_interval: Duration,
    /// Waiting for a lock held by another process (e.g. the CLI).
    pub busy_timeout: Duration,
    /// Append journal events with every change. Always true in `serve`; the benchmark
    /// turns it off to measure what the journal costs.
    pub journal: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            readers: 4,
            erase_interval: Duration::from_millis(500),
            busy_timeout: Duration::from_secs(5),
            journal: true,
        }
    }
}

type Reply = Box<dyn FnOnce(Result<()>) + Send>;
/// What a command did inside the shared transaction.
#[derive(Clone, Copy)]
struct Outcome {
    failed: bool,
    erased: bool,
}
/// A command: given the shared transaction it runs; given an error (the transaction
/// could not be opened) it only prepares that error as its answer.
type Job =
    Box<dyn FnOnce(std::result::Result<&Transaction<'_>, StoreError>) -> (Reply, Outcome) + Send>;

/// The embedded SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
    options: SqliteOptions,
}

fn open_connection(path: &Path, options: &SqliteOptions, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(options.busy_timeout)?;
    // Plans must not depend on bound values. Without this, SQLite marks a parameter of
    // the lease query and of `attachments_of` (an equality followed by ORDER BY) as
    // plan-relevant, so every new binding expires the statement and each execution
    // re-parses and re-plans it (`sqlite3Reprepare`), defeating `prepare_cached`: about
    // 15 % of the writer thread under load. The store runs no ANALYZE and no LIKE, so
    // value-dependent plans gain it nothing.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    // The writer runs a few dozen distinct statements (queues, cards, journal, deadlines);
    // with rusqlite's default cache of 16 they were evicted and prepared again, triggers
    // recompiled with them.
    conn.set_prepared_statement_cache_capacity(256);
    if !read_only {
        // Each command runs in a SAVEPOINT, so SQLite keeps a statement journal of the
        // pages it changes; past a small size it goes to a temporary file that is created
        // and deleted per transaction. It never needs to survive a crash (the WAL is the
        // transaction's own record), so it stays in memory.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
    }
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let current: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (number, sql) in MIGRATIONS {
        if *number <= current {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", number)?;
        tx.commit()?;
        tracing::info!(migration = number, "applied store migration");
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStore> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let mut conn = open_connection(path, &options, false)?;
        migrate(&mut conn)?;
        // A crash may have cut short the WAL truncation that follows an erasure (see
        // `writer_loop`); the recovered WAL may still hold acknowledged payloads in old
        // frames. Finish it now, before anything else runs.
        truncate_wal(&conn);
        let mut readers = Vec::with_capacity(options.readers.max(1));
        for _ in 0..options.readers.max(1) {
            readers.push(open_connection(path, &options, true)?);
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let erase_interval = options.erase_interval;
        let thread = std::thread::Builder::new()
            .name("mezhved-store-writer".into())
            .spawn(move || writer_loop(conn, rx, erase_interval))?;
        Ok(SqliteStore {
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(thread)),
            readers: Arc::new(Mutex::new(readers)),
            path: path.to_path_buf(),
            options,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting writes, lets the writer commit what it has, truncates the WAL and
    /// joins the writer thread.
    pub fn close(&self) {
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
        let handle = self.writer_thread.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// Runs `f` on the writer thread inside the shared transaction; answers after commit.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<(T, bool)> + Send + 'static,
    ) -> Result<T> {
        let (reply_tx, reply_rx) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |tx| match tx.and_then(f) {
            Ok((value, erased)) => (
                Box::new(move |committed: Result<()>| {
                    let _ = reply_tx.send(committed.map(|()| value));
                }),
                Outcome {
                    failed: false,
                    erased,
                },
            ),
            Err(e) => (
                Box::new(move |_| {
                    let _ = reply_tx.send(Err(e));
                }),
                Outcome {
                    failed: true,
                    erased: false,
                },
            ),
        });
        {
            let guard = self.writer.lock().map_err(|_| StoreError::Closed)?;
            let sender = guard.as_ref().ok_or(StoreError::Closed)?;
            sender.send(job).map_err(|_| StoreError::Closed)?;
        }
        reply_rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on a read connection on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let readers = self.readers.clone();
        let path = self.path.clone();
        let options = self.options.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.lock().ok().and_then(|mut r| r.pop());
            let conn = match conn {
                Some(c) => c,
                None => open_connection(&path, &options, true)?,
            };
            let result = f(&conn);
            if let Ok(mut r) = readers.lock() {
                if r.len() < options.readers.max(1) {
                    r.push(conn);
                }
            }
            result
        })
        .await
        .map_err(|e| StoreError::Database(format!("read task failed: {e}")))?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// The push loop's failure classes (`PushFailure::class` in mezhved-core), the only
/// values of the `class` label of `mezhved_push_failures_total`.
const PUSH_FAILURE_CLASSES: &[&str] = &[
    "url",
    "connect",
    "tls",
    "timeout",
    "protocol",
    "reply_too_large",
    "internal",
    "status",
    "fault",
    "invalid_ack",
    "wrong_signer",
    "wrong_message",
    "refused",
];

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Job>, erase_interval: Duration) {
    let mut erase_pending = false;
    // Wall-clock pacing of WAL truncation only; no decision about messages depends on it.
    #[allow(clippy::disallowed_methods)]
    let mut last_truncate = std::time::Instant::now();
    loop {
        let first = if erase_pending {
            match rx.recv_timeout(erase_interval) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(job) => Some(job),
                Err(_) => break,
            }
        };
        if let Some(first) = first {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            // Metrics (docs/metrics.md): how long one group commit holds the writer, BEGIN
            // to COMMIT's fsync, and how many commands shared it. Wall clock, observation only.
            metrics::histogram!("mezhved_store_batch_size").record(batch.len() as f64);
            #[allow(clippy::disallowed_methods)]
            let started = std::time::Instant::now();
            erase_pending |= run_batch(&mut conn, batch);
            metrics::histogram!("mezhved_store_commit_seconds")
                .record(started.elapsed().as_secs_f64());
        }
        #[allow(clippy::disallowed_methods)]
        let now = std::time::Instant::now();
        if erase_pending && now.duration_since(last_truncate) >= erase_interval {
            if truncate_wal(&conn) {
                erase_pending = false;
            }
            last_truncate = now;
        }
    }
    truncate_wal(&conn);
}

/// Returns whether the checkpoint completed (no reader held it back).
fn truncate_wal(conn: &Connection) -> bool {
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(busy) => busy == 0,
        Err(e) => {
            tracing::warn!(error = %e, "WAL checkpoint failed");
            false
        }
    }
}

/// Runs one group commit; returns whether any command erased payload.
fn run_batch(conn: &mut Connection, batch: Vec<Job>) -> bool {
    let size = batch.len();
    // IMMEDIATE: take the write lock at BEGIN, where the busy timeout applies. A deferred
    // transaction whose first command reads (accept's idempotency check) and then writes
    // gets SQLITE_BUSY at once, without waiting, if another connection holds the lock.
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!(error = %e, batch = size, "cannot begin a transaction");
            let message = e.to_string();
            for job in batch {
                let (reply, _) = job(Err(StoreError::Database(message.clone())));
                reply(Ok(()));
            }
            return false;
        }
    };
    let mut replies: Vec<Reply> = Vec::with_capacity(size);
    let mut erased = false;
    // Set when a failure undid the whole transaction (SQLite does that on I/O errors,
    // a full disk or no memory): then nothing of this batch may be reported as done.
    let mut lost: Option<String> = None;
    for (i, job) in batch.into_iter().enumerate() {
        if let Some(reason) = &lost {
            let (reply, _) = job(Err(StoreError::Database(reason.clone())));
            replies.push(reply);
            continue;
        }
        let sp = format!("c{i}");
        if let Err(e) = tx.execute_batch(&format!("SAVEPOINT {sp}")) {
            tracing::error!(error = %e, "cannot open a savepoint");
            let (reply, _) = job(Err(StoreError::Database(e.to_string())));
            replies.push(reply);
            continue;
        }
        let (reply, outcome) = job(Ok(&tx));
        if outcome.failed {
            if tx.is_autocommit() {
                lost = Some("the transaction was rolled back by the database".into());
            } else {
                // Undo this command alone; the others in the batch still commit.
                let _ = tx.execute_batch(&format!("ROLLBACK TO {sp}"));
            }
        }
        erased |= outcome.erased;
        if lost.is_none() {
            let _ = tx.execute_batch(&format!("RELEASE {sp}"));
        }
        replies.push(reply);
    }
    let committed = match &lost {
        Some(reason) => {
            drop(tx);
            Err(StoreError::Database(reason.clone()))
        }
        None => tx.commit().map_err(StoreError::from),
    };
    let failed = committed.as_ref().err().map(|e| e.to_string());
    if let Some(e) = &failed {
        tracing::error!(error = %e, batch = size, "group commit failed");
    }
    for reply in replies {
        reply(match &failed {
            None => Ok(()),
            Some(e) => Err(StoreError::Database(e.clone())),
        });
    }
    erased && failed.is_none()
}

fn blob16(v: Vec<u8>) -> Result<GlobalId> {
    v.try_into()
        .map_err(|_| StoreError::Corrupt("a global ID is not 16 bytes".into()))
}

fn blob32(v: Vec<u8>) -> Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| StoreError::Corrupt("a digest is not 32 bytes".into()))
}

fn queue_of(code: i64) -> Result<Queue> {
    Queue::from_code(code).ok_or_else(|| StoreError::Corrupt(format!("unknown queue {code}")))
}

fn read_registry(conn: &Connection) -> Result<RegistryData> {
    let version: i64 = conn.query_row("SELECT version FROM registry_version", [], |r| r.get(0))?;
    let mut data = RegistryData {
        version: version as u64,
        ..RegistryData::default()
    };
    let mut st =
        conn.prepare_cached("SELECT mnemonic, name FROM participants ORDER BY mnemonic")?;
    data.participants = st
        .query_map([], |r| {
            Ok(Participant {
                mnemonic: r.get(0)?,
                name: r.get(1)?,
            })
        })?
        .collect::<std::result::Result<_, _>>()?;
    let mut st = conn.prepare_cached(
        "SELECT mnemonic, participant, name, certificates, push_url FROM systems ORDER BY mnemonic",
    )?;
    let rows: Vec<(String, String, String, String, Option<String>)> = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<std::result::Result<_, _>>()?;
    for (mnemonic, participant, name, certs, push_url) in rows {
        let certificates = serde_json::from_str(&certs)
            .map_err(|e| StoreError::Corrupt(format!("certificates of {mnemonic}: {e}")))?;
        data.systems.push(InformationSystem {
            mnemonic,
            participant,
            name,
            certificates,
            push_url,
        });
    }
    let mut st = conn.prepare_cached(
        "SELECT namespace, root_element, name, provider_system, restricted, consent_required, description,
             reply_working_days
         FROM kinds ORDER BY namespace, root_element",
    )?;
    data.kinds = st
        .query_map([], |r| {
            Ok(KindOfInformation {
                namespace: r.get(0)?,
                root_element: r.get(1)?,
                name: r.get(2)?,
                provider_system: r.get(3)?,
                restricted: r.get(4)?,
                consent_required: r.get(5)?,
                description: r.get(6)?,
                reply_working_days: r.get(7)?,
            })
        })?
        .collect::<std::result::Result<_, _>>()?;
    let mut st = conn.prepare_cached(
        "SELECT consumer_system, namespace, root_element FROM grants
         ORDER BY consumer_system, namespace, root_element",
    )?;
    data.grants = st
        .query_map([], |r| {
            Ok(Grant {
                consumer_system: r.get(0)?,
                namespace: r.get(1)?,
                root_element: r.get(2)?,
            })
        })?
        .collect::<std::result::Result<_, _>>()?;
    Ok(data)
}

fn change_error(e: rusqlite::Error, what: &str) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::InvalidChange(format!(
                "{what}: it refers to something not registered, or something still refers to it"
            ))
        }
        other => other.into(),
    }
}

/// Applies one change; true when it changed something (a put of what is already there
/// changes nothing, so re-reading an unchanged registry file leaves the version alone).
fn apply_change(tx: &Transaction<'_>, change: &RegistryChange, at_ms: i64) -> Result<bool> {
    fn non_empty(what: &str, v: &str) -> Result<()> {
        if v.trim().is_empty() {
            return Err(StoreError::InvalidChange(format!(
                "{what} must not be empty"
            )));
        }
        Ok(())
    }
    let affected = match change {
        RegistryChange::PutParticipant(p) => {
            non_empty("participant mnemonic", &p.mnemonic)?;
            non_empty("participant name", &p.name)?;
            tx.execute(
                "INSERT INTO participants (mnemonic, name) VALUES (?1, ?2)
                 ON CONFLICT (mnemonic) DO UPDATE SET name = excluded.name
                 WHERE name IS NOT excluded.name",
                params![p.mnemonic, p.name],
            )
            .map_err(|e| change_error(e, &format!("participant {}", p.mnemonic)))?
        }
        RegistryChange::DeleteParticipant { mnemonic } => tx
            .execute("DELETE FROM participants WHERE mnemonic = ?1", [mnemonic])
            .map_err(|e| change_error(e, &format!("participant {mnemonic}")))?,
        RegistryChange::PutSystem(s) => {
            non_empty("system mnemonic", &s.mnemonic)?;
            non_empty("system name", &s.name)?;
            let certs = serde_json::to_string(&s.certificates)
                .map_err(|e| StoreError::InvalidChange(e.to_string()))?;
            let previous_push_url: Option<Option<String>> = tx
                .prepare_cached("SELECT push_url FROM systems WHERE mnemonic = ?1")?
                .query_row([&s.mnemonic], |r| r.get(0))
                .optional()?;
            let n = tx
                .execute(
                    "INSERT INTO systems (mnemonic, participant, name, certificates, push_url)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (mnemonic) DO UPDATE SET participant = excluded.participant,
                     name = excluded.name, certificates = excluded.certificates,
                     push_url = excluded.push_url
                 WHERE (participant, name, certificates, push_url)
                     IS NOT (excluded.participant, excluded.name, excluded.certificates,
                             excluded.push_url)",
                    params![s.mnemonic, s.participant, s.name, certs, s.push_url],
                )
                .map_err(|e| change_error(e, &format!("system {}", s.mnemonic)))?;
            if previous_push_url.flatten().is_some() != s.push_url.is_some() {
                sync_push_backlog(tx, &s.mnemonic, s.push_url.is_some(), at_ms)?;
            }
            n
        }
        RegistryChange::DeleteSystem { mnemonic } => {
            let n = tx
                .execute("DELETE FROM systems WHERE mnemonic = ?1", [mnemonic])
                .map_err(|e| change_error(e, &format!("system {mnemonic}")))?;
            sync_push_backlog(tx, mnemonic, false, at_ms)?;
            n
        }
        RegistryChange::PutKind(k) => {
            non_empty("kind namespace", &k.namespace)?;
            non_empty("kind root element", &k.root_element)?;
            non_empty("kind name", &k.name)?;
            tx.execute(
                "INSERT INTO kinds (namespace, root_element, name, provider_system, restricted,
                     consent_required, description, reply_working_days)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (namespace, root_element) DO UPDATE SET name = excluded.name,
                     provider_system = excluded.provider_system, restricted = excluded.restricted,
                     consent_required = excluded.consent_required, description = excluded.description,
                     reply_working_days = excluded.reply_working_days
                 WHERE (name, provider_system, restricted, consent_required, description,
                        reply_working_days)
                     IS NOT (excluded.name, excluded.provider_system, excluded.restricted,
                             excluded.consent_required, excluded.description,
                             excluded.reply_working_days)",
                params![
                    k.namespace,
                    k.root_element,
                    k.name,
                    k.provider_system,
                    k.restricted,
                    k.consent_required,
                    k.description,
                    k.reply_working_days
                ],
            )
            .map_err(|e| change_error(e, &format!("kind {{{}}}{}", k.namespace, k.root_element)))?
        }
        RegistryChange::DeleteKind {
            namespace,
            root_element,
        } => tx
            .execute(
                "DELETE FROM kinds WHERE namespace = ?1 AND root_element = ?2",
                [namespace, root_element],
            )
            .map_err(|e| change_error(e, &format!("kind {{{namespace}}}{root_element}")))?,
        RegistryChange::Grant(g) => tx
            .execute(
                "INSERT OR IGNORE INTO grants (consumer_system, namespace, root_element) VALUES (?1, ?2, ?3)",
                params![g.consumer_system, g.namespace, g.root_element],
            )
            .map_err(|e| {
                change_error(
                    e,
                    &format!("grant of {{{}}}{} to {}", g.namespace, g.root_element, g.consumer_system),
                )
            })?,
        RegistryChange::Revoke(g) => tx.execute(
            "DELETE FROM grants WHERE consumer_system = ?1 AND namespace = ?2 AND root_element = ?3",
            params![g.consumer_system, g.namespace, g.root_element],
        )?,
    };
    let deleting = matches!(
        change,
        RegistryChange::DeleteParticipant { .. }
            | RegistryChange::DeleteSystem { .. }
            | RegistryChange::DeleteKind { .. }
            | RegistryChange::Revoke(_)
    );
    if deleting && affected == 0 {
        return Err(StoreError::NotFound(format!(
            "{change:?} names nothing registered"
        )));
    }
    Ok(affected > 0)
}

/// A system that gets a push endpoint has its pending backlog pushed from now on; one that
/// loses it keeps its backlog in the pull queue only (so `push_next_at` is set exactly on
/// the pending messages of push systems). Messages that already fell back stay pulled.
fn sync_push_backlog(tx: &Transaction<'_>, system: &str, push: bool, at_ms: i64) -> Result<()> {
    if push {
        tx.prepare_cached(
            "UPDATE messages SET push_next_at = ?2
             WHERE recipient_system = ?1 AND queue IN (0, 1) AND acked_at IS NULL
               AND push_next_at IS NULL AND push_fallback_at IS NULL",
        )?
        .execute(params![system, at_ms])?;
    } else {
        tx.prepare_cached(
            "UPDATE messages SET push_next_at = NULL
             WHERE recipient_system = ?1 AND push_next_at IS NOT NULL AND acked_at IS NULL",
        )?
        .execute([system])?;
    }
    Ok(())
}

/// The `registry.changed` event: the effective changes, each certificate replaced by the
/// SHA-256 of its PEM text (the registry itself keeps the certificates).
fn registry_event(
    tx: &Transaction<'_>,
    actor: &str,
    at_ms: i64,
    version: i64,
    changes: &[&RegistryChange],
) -> Result<()> {
    let mut list = Vec::with_capacity(changes.len());
    for change in changes {
        let mut v = serde_json::to_value(change).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if let Some(certs) = v.get_mut("certificates").and_then(|c| c.as_array_mut()) {
            for c in certs.iter_mut() {
                let pem = c.as_str().unwrap_or_default();
                *c = format!(
                    "sha256:{}",
                    crate::journal::hex(&openssl::sha::sha256(pem.as_bytes()))
                )
                .into();
            }
        }
        list.push(v);
    }
    let mut body = serde_json::Map::new();
    body.insert("version".into(), version.into());
    body.insert("changes".into(), list.into());
    crate::journal::append(
        tx,
        &NewEvent {
            at_ms,
            event_type: "registry.changed".into(),
            global_id: None,
            actor: actor.into(),
            body,
        },
    )?;
    Ok(())
}

fn find_sent(conn: &Connection, sender: &str, message_id: &str) -> Result<Option<SentRecord>> {
    let row = conn
        .prepare_cached(
            "SELECT global_id, checksum, answer FROM messages
             WHERE sender_system = ?1 AND sender_message_id = ?2",
        )?
        .query_row([sender, message_id], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?, r.get(2)?))
        })
        .optional()?;
    row.map(|(g, c, answer)| {
        Ok(SentRecord {
            global_id: blob16(g)?,
            checksum: blob32(c)?,
            answer,
        })
    })
    .transpose()
}

/// The `message.accepted` event of a message: its whole card (metadata only).
fn accepted_event(m: &NewMessage) -> NewEvent {
    crate::journal::message_accepted(
        &m.card,
        m.card.queue.name(),
        &m.card.sender_system,
        m.card.received_at_ms,
    )
}

fn str_at<'a>(v: &'a serde_json::Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()
}

fn insert_message(tx: &Transaction<'_>, m: &NewMessage, journal: bool) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO messages (global_id, queue, sender_system, sender_message_id, recipient_system,
             kind_namespace, kind_root, content_namespace, content_root, original_global_id, checksum,
             received_at, eol, visible_at, payload, answer, push_next_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?12, ?14, ?15,
             -- Requests and responses for a system with a push endpoint are pushed at once
             -- (decided in this transaction, against the registry it sees).
             (SELECT ?12 FROM systems
              WHERE mnemonic = ?5 AND push_url IS NOT NULL AND ?2 IN (0, 1)))",
    )?
    .execute(params![
        &m.global_id[..],
        m.queue.code(),
        m.sender_system,
        m.sender_message_id,
        m.recipient_system,
        m.kind_namespace,
        m.kind_root,
        m.content_namespace,
        m.content_root,
        m.original_global_id.as_ref().map(|g| &g[..]),
        &m.checksum[..],
        m.received_at_ms,
        m.eol_ms,
        m.payload,
        m.answer,
    ])?;
    let mut st = tx.prepare_cached(
        "INSERT INTO attachments (global_id, position, content_id, mime_type, size, sha256, path, mtom)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (i, a) in m.attachments.iter().enumerate() {
        st.execute(params![
            &m.global_id[..],
            i as i64,
            a.content_id,
            a.mime_type,
            a.size as i64,
            &a.sha256[..],
            a.path,
            a.mtom
        ])?;
    }
    insert_card(tx, &m.card)?;
    if journal {
        crate::journal::append(tx, &accepted_event(m))?;
    }
    insert_lifecycle(tx, &m.global_id, &m.lifecycle, m.received_at_ms)?;
    if let (Some(original), Some(status)) = (&m.original_global_id, &m.original_status) {
        tx.prepare_cached("UPDATE cards SET status = ?2 WHERE global_id = ?1")?
            .execute(params![&original[..], status])?;
    }
    Ok(())
}

/// A message's deadline rows, and the deadlines it closes.
fn insert_lifecycle(
    tx: &Transaction<'_>,
    global_id: &GlobalId,
    lifecycle: &Lifecycle,
    now_ms: i64,
) -> Result<()> {
    let mut st =
        tx.prepare_cached("INSERT INTO deadlines (global_id, kind, due_at) VALUES (?1, ?2, ?3)")?;
    for d in &lifecycle.deadlines {
        st.execute(params![&global_id[..], d.kind.name(), d.due_at_ms])?;
    }
    if let Some(original) = &lifecycle.closes {
        close_deadlines(tx, original, now_ms)?;
    }
    Ok(())
}

/// The card row, with the columns auditors filter on copied from its details.
fn insert_card(tx: &Transaction<'_>, c: &Card) -> Result<()> {
    let d = &c.details;
    let legal_acts: Option<String> = d.get("legal_basis").and_then(|l| l.as_array()).map(|l| {
        l.iter()
            .filter_map(|b| b.get("act").and_then(|a| a.as_str()))
            .collect::<Vec<_>>()
            .join("\n")
    });
    let subject_hash: Option<Vec<u8>> = str_at(d, &["subject_hash"]).and_then(|h| {
        (0..h.len())
            .step_by(2)
            .map(|i| h.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
            .collect()
    });
    let due_at = d.get("due_at_ms").and_then(|v| v.as_i64());
    tx.prepare_cached(
        "INSERT INTO cards (global_id, queue, sender_system, sender_message_id, recipient_system,
             kind_namespace, kind_root, original_global_id, checksum, received_at, status,
             test_message, details, sender_agency, recipient_agency, service_number, legal_acts,
             subject_hash, sender_registration_number, due_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
             ?18, ?19, ?20)",
    )?
    .execute(params![
        &c.global_id[..],
        c.queue.code(),
        c.sender_system,
        c.sender_message_id,
        c.recipient_system,
        c.kind_namespace,
        c.kind_root,
        c.original_global_id.as_ref().map(|g| &g[..]),
        &c.checksum[..],
        c.received_at_ms,
        c.status,
        c.test_message,
        c.details.to_string(),
        str_at(d, &["sender_agency"]),
        str_at(d, &["recipient_agency"]),
        str_at(d, &["service", "registry_number"]),
        legal_acts,
        subject_hash,
        str_at(d, &["sender_registration", "number"]),
        due_at,
    ])?;
    Ok(())
}

/// A final answer closes the request's pending reply deadlines (a fired overdue row stays
/// fired: the answer was late) and marks its card closed, once.
fn close_deadlines(tx: &Transaction<'_>, request: &GlobalId, now_ms: i64) -> Result<()> {
    tx.prepare_cached(
        "UPDATE deadlines SET closed_at = ?2
         WHERE global_id = ?1 AND kind IN ('reminder', 'overdue')
           AND fired_at IS NULL AND closed_at IS NULL",
    )?
    .execute(params![&request[..], now_ms])?;
    tx.prepare_cached(
        "UPDATE cards SET closed_at = ?2 WHERE global_id = ?1 AND closed_at IS NULL",
    )?
    .execute(params![&request[..], now_ms])?;
    Ok(())
}

/// What firing a deadline reads from its card: queue, sender, sender's MessageID,
/// recipient, kind namespace and root.
type DeadlineCardRow = (i64, String, String, String, String, String);

fn claim_deadlines(
    tx: &Transaction<'_>,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<ClaimedDeadline>> {
    // Rows due now whose lease is free or lapsed (a node that claimed them died).
    let rows: Vec<(Vec<u8>, String, i64)> = tx
        .prepare_cached(
            "SELECT global_id, kind, due_at FROM deadlines INDEXED BY deadlines_pending
             WHERE fired_at IS NULL AND closed_at IS NULL AND due_at <= ?1
               AND (lease_until IS NULL OR lease_until <= ?1)
             ORDER BY due_at LIMIT ?2",
        )?
        .query_map(
            params![now_ms, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?
        .collect::<std::result::Result<_, _>>()?;
    let mut out = Vec::with_capacity(rows.len());
    let mut lease = tx.prepare_cached(
        "UPDATE deadlines SET lease_owner = ?3, lease_until = ?4 WHERE global_id = ?1 AND kind = ?2",
    )?;
    let mut info = tx.prepare_cached(
        "SELECT queue, sender_system, sender_message_id, recipient_system, kind_namespace, kind_root,
             json_extract(details, '$.channel') IS NOT NULL
         FROM cards WHERE global_id = ?1",
    )?;
    for (gid, kind, due) in rows {
        lease.execute(params![&gid[..], kind, owner, now_ms + lease_ms])?;
        let kind = DeadlineKind::from_name(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("deadline kind {kind}")))?;
        let card: Option<(DeadlineCardRow, bool)> = info
            .query_row([&gid[..]], |r| {
                Ok((
                    (
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ),
                    r.get(6)?,
                ))
            })
            .optional()?;
        let Some(((q, sender, smid, recipient, kns, kroot), paper)) = card else {
            return Err(StoreError::Corrupt("a deadline without a card".into()));
        };
        out.push(ClaimedDeadline {
            global_id: blob16(gid)?,
            kind,
            due_at_ms: due,
            queue: queue_of(q)?,
            sender_system: sender,
            sender_message_id: smid,
            recipient_system: recipient,
            kind_namespace: kns,
            kind_root: kroot,
            paper,
        });
    }
    Ok(out)
}

fn fire_deadline(
    tx: &Transaction<'_>,
    f: &DeadlineFiring,
    journal: bool,
) -> Result<(FireOutcome, bool)> {
    let fired = tx
        .prepare_cached(
            "UPDATE deadlines SET fired_at = ?4
             WHERE global_id = ?1 AND kind = ?2 AND lease_owner = ?3
               AND fired_at IS NULL AND closed_at IS NULL",
        )?
        .execute(params![&f.global_id[..], f.kind.name(), f.owner, f.now_ms])?;
    if fired == 0 {
        return Ok((FireOutcome::Skipped, false));
    }
    let mut attachments = Vec::new();
    let mut erased = false;
    match f.kind {
        DeadlineKind::Reminder => {}
        DeadlineKind::Overdue => {
            tx.prepare_cached("UPDATE cards SET overdue_at = ?2 WHERE global_id = ?1")?
                .execute(params![&f.global_id[..], f.now_ms])?;
        }
        DeadlineKind::Expiry => {
            // Undelivered (unacknowledged) past its EOL: the payload goes, the card says so.
            let pending = tx
                .prepare_cached(
                    "UPDATE messages SET acked_at = ?2, payload = NULL, push_next_at = NULL
                     WHERE global_id = ?1 AND acked_at IS NULL",
                )?
                .execute(params![&f.global_id[..], f.now_ms])?;
            if pending == 0 {
                // Acknowledged meanwhile: nothing expires.
                return Ok((FireOutcome::Skipped, false));
            }
            attachments = take_attachments(tx, &f.global_id)?;
            tx.prepare_cached("UPDATE cards SET status = 'expired' WHERE global_id = ?1")?
                .execute([&f.global_id[..]])?;
            // The reply deadlines of an expired request end with it.
            close_deadlines(tx, &f.global_id, f.now_ms)?;
            erased = true;
        }
    }
    for m in &f.statuses {
        insert_message(tx, m, journal)?;
    }
    if journal {
        crate::journal::append(tx, &f.event)?;
    }
    Ok((FireOutcome::Fired { attachments }, erased))
}

/// Deletes a finished message's attachment rows; returns their files (relative paths),
/// which the caller removes once the transaction is committed.
fn take_attachments(tx: &Transaction<'_>, global_id: &GlobalId) -> Result<Vec<String>> {
    let paths = attachments_of(tx, global_id)?
        .into_iter()
        .map(|a| a.path)
        .collect();
    tx.prepare_cached("DELETE FROM attachments WHERE global_id = ?1")?
        .execute([&global_id[..]])?;
    Ok(paths)
}

fn attachments_of(conn: &Connection, global_id: &[u8]) -> Result<Vec<StoredAttachment>> {
    let mut st = conn.prepare_cached(
        "SELECT content_id, mime_type, size, sha256, path, mtom FROM attachments
         WHERE global_id = ?1 ORDER BY position",
    )?;
    let rows: Vec<(String, String, i64, Vec<u8>, String, bool)> = st
        .query_map([global_id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<std::result::Result<_, _>>()?;
    rows.into_iter()
        .map(|(content_id, mime_type, size, sha, path, mtom)| {
            Ok(StoredAttachment {
                content_id,
                mime_type,
                size: size as u64,
                sha256: blob32(sha)?,
                path,
                mtom,
            })
        })
        .collect()
}

/// The columns a delivery reads, in [`LeaseRow`] order.
const LEASE_COLUMNS: &str =
    "seq, global_id, sender_system, sender_message_id, kind_namespace, kind_root,
    original_global_id, checksum, received_at, payload, delivery_count, first_delivered_at,
    (SELECT c.due_at FROM cards c WHERE c.global_id = messages.global_id),
    coalesce((SELECT json_extract(c.details, '$.late') FROM cards c
              WHERE c.global_id = messages.global_id), 0),
    queue, recipient_system, push_attempts";

/// One message row selected for delivery ([`LEASE_COLUMNS`]).
struct LeaseRow {
    seq: i64,
    global_id: Vec<u8>,
    sender_system: String,
    sender_message_id: String,
    kind_namespace: String,
    kind_root: String,
    original_global_id: Option<Vec<u8>>,
    checksum: Vec<u8>,
    received_at: i64,
    payload: Option<Vec<u8>>,
    delivery_count: i64,
    first_delivered_at: Option<i64>,
    due_at: Option<i64>,
    late: bool,
    queue: i64,
    recipient_system: String,
    push_attempts: i64,
}

fn lease_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LeaseRow> {
    Ok(LeaseRow {
        seq: r.get(0)?,
        global_id: r.get(1)?,
        sender_system: r.get(2)?,
        sender_message_id: r.get(3)?,
        kind_namespace: r.get(4)?,
        kind_root: r.get(5)?,
        original_global_id: r.get(6)?,
        checksum: r.get(7)?,
        received_at: r.get(8)?,
        payload: r.get(9)?,
        delivery_count: r.get(10)?,
        first_delivered_at: r.get(11)?,
        due_at: r.get(12)?,
        late: r.get(13)?,
        queue: r.get(14)?,
        recipient_system: r.get(15)?,
        push_attempts: r.get(16)?,
    })
}

/// Whether [`lease`] would find a message: the same conditions, on a read connection.
fn any_visible(c: &Connection, req: &LeaseRequest) -> Result<bool> {
    let found = match &req.selector {
        None => c
            .prepare_cached(
                "SELECT 1 FROM messages INDEXED BY messages_pending
                 WHERE recipient_system = ?1 AND queue = ?2 AND visible_at <= ?3 AND acked_at IS NULL
                 LIMIT 1",
            )?
            .exists(params![req.recipient_system, req.queue.code(), req.now_ms])?,
        Some((ns, root)) => c
            .prepare_cached(
                "SELECT 1 FROM messages INDEXED BY messages_pending
                 WHERE recipient_system = ?1 AND queue = ?2 AND visible_at <= ?3 AND acked_at IS NULL
                   AND ((content_namespace = ?4 AND content_root = ?5)
                        OR (kind_namespace = ?4 AND kind_root = ?5))
                 LIMIT 1",
            )?
            .exists(params![req.recipient_system, req.queue.code(), req.now_ms, ns, root])?,
    };
    Ok(found)
}

fn lease(tx: &Transaction<'_>, req: &LeaseRequest, journal: bool) -> Result<Option<Delivery>> {
    let row = match &req.selector {
        None => tx
            .prepare_cached(&format!(
                "SELECT {LEASE_COLUMNS} FROM messages INDEXED BY messages_pending
                 WHERE recipient_system = ?1 AND queue = ?2 AND visible_at <= ?3 AND acked_at IS NULL
                 ORDER BY visible_at, seq LIMIT 1"
            ))?
            .query_row(
                params![req.recipient_system, req.queue.code(), req.now_ms],
                lease_row,
            )
            .optional()?,
        Some((ns, root)) => tx
            .prepare_cached(&format!(
                "SELECT {LEASE_COLUMNS} FROM messages INDEXED BY messages_pending
                 WHERE recipient_system = ?1 AND queue = ?2 AND visible_at <= ?3 AND acked_at IS NULL
                   AND ((content_namespace = ?4 AND content_root = ?5)
                        OR (kind_namespace = ?4 AND kind_root = ?5))
                 ORDER BY visible_at, seq LIMIT 1"
            ))?
            .query_row(
                params![req.recipient_system, req.queue.code(), req.now_ms, ns, root],
                lease_row,
            )
            .optional()?,
    };
    let Some(row) = row else {
        return Ok(None);
    };
    hand_out(
        tx,
        row,
        req.now_ms,
        req.now_ms + req.visibility_ms,
        None,
        journal,
    )
    .map(Some)
}

/// Hands out a selected message: leases it until `visible_until`, counts the delivery,
/// journals it (`message.delivered`; with `channel: push` and the attempt's number for a
/// push attempt) and reads its attachments.
fn hand_out(
    tx: &Transaction<'_>,
    row: LeaseRow,
    now_ms: i64,
    visible_until: i64,
    push_attempt: Option<u32>,
    journal: bool,
) -> Result<Delivery> {
    let payload = row
        .payload
        .ok_or_else(|| StoreError::Corrupt("a pending message has no payload".into()))?;
    let queue = queue_of(row.queue)?;
    let first = row.first_delivered_at.unwrap_or(now_ms);
    tx.prepare_cached(
        "UPDATE messages SET visible_at = ?2, delivery_count = delivery_count + 1,
             first_delivered_at = ?3 WHERE seq = ?1",
    )?
    .execute(params![row.seq, visible_until, first])?;
    if push_attempt.is_some() {
        // The attempt holds the message until the lease ends; if it never reports back
        // (the node died), it is due again then.
        tx.prepare_cached(
            "UPDATE messages SET push_next_at = ?2, push_attempts = push_attempts + 1
             WHERE seq = ?1",
        )?
        .execute(params![row.seq, visible_until])?;
    }
    let gid = blob16(row.global_id)?;
    if journal {
        let mut body = serde_json::Map::new();
        body.insert("queue".into(), queue.name().into());
        body.insert("delivery".into(), (row.delivery_count + 1).into());
        body.insert("visible_again_at".into(), visible_until.into());
        if let Some(attempt) = push_attempt {
            body.insert("channel".into(), "push".into());
            body.insert("attempt".into(), attempt.into());
        }
        crate::journal::append(
            tx,
            &NewEvent {
                at_ms: now_ms,
                event_type: "message.delivered".into(),
                global_id: Some(gid),
                actor: row.recipient_system.clone(),
                body,
            },
        )?;
    }
    let attachments = attachments_of(tx, &gid)?;
    Ok(Delivery {
        global_id: gid,
        queue,
        sender_system: row.sender_system,
        sender_message_id: row.sender_message_id,
        recipient_system: row.recipient_system,
        kind_namespace: row.kind_namespace,
        kind_root: row.kind_root,
        original_global_id: row.original_global_id.map(blob16).transpose()?,
        checksum: blob32(row.checksum)?,
        received_at_ms: row.received_at,
        payload,
        attachments,
        delivery_count: (row.delivery_count + 1) as u32,
        first_delivered_at_ms: first,
        due_at_ms: row.due_at,
        late: row.late,
        push_attempt: push_attempt.unwrap_or(0),
    })
}

/// The `message.push_failed` / `message.push_fallback` event of a message.
fn push_event(
    global_id: GlobalId,
    recipient: &str,
    at_ms: i64,
    fallback: bool,
    body: serde_json::Map<String, serde_json::Value>,
) -> NewEvent {
    NewEvent {
        at_ms,
        event_type: if fallback {
            "message.push_fallback"
        } else {
            "message.push_failed"
        }
        .into(),
        global_id: Some(global_id),
        actor: "gateway".into(),
        body: {
            let mut b = body;
            b.insert("recipient_system".into(), recipient.into());
            b
        },
    }
}

fn claim_push(tx: &Transaction<'_>, claim: &PushClaim, journal: bool) -> Result<PushClaimed> {
    let mut out = PushClaimed::default();
    let lease_end = claim.now_ms + claim.lease_ms;
    for (system, room) in &claim.systems {
        if *room == 0 {
            continue;
        }
        let rows: Vec<LeaseRow> = tx
            .prepare_cached(&format!(
                "SELECT {LEASE_COLUMNS} FROM messages INDEXED BY messages_push
                 WHERE recipient_system = ?1 AND push_next_at IS NOT NULL AND acked_at IS NULL
                   AND push_next_at <= ?2 AND visible_at <= ?2
                 ORDER BY push_next_at, seq LIMIT ?3"
            ))?
            .query_map(
                params![
                    system,
                    claim.now_ms,
                    i64::try_from(*room).unwrap_or(i64::MAX)
                ],
                lease_row,
            )?
            .collect::<std::result::Result<_, _>>()?;
        for row in rows {
            let attempts = u32::try_from(row.push_attempts).unwrap_or(u32::MAX);
            if attempts >= claim.max_attempts {
                // The last allowed attempt never reported back (its lease lapsed): the
                // message goes to the pull queue, as after any last failure.
                tx.prepare_cached(
                    "UPDATE messages SET push_next_at = NULL, push_fallback_at = ?2,
                         push_last_error = ?3
                     WHERE seq = ?1",
                )?
                .execute(params![
                    row.seq,
                    claim.now_ms,
                    format!("attempt {attempts} did not finish (the gateway stopped during it)")
                ])?;
                let gid = blob16(row.global_id)?;
                if journal {
                    let mut body = serde_json::Map::new();
                    body.insert("queue".into(), queue_of(row.queue)?.name().into());
                    body.insert("attempts".into(), attempts.into());
                    body.insert("error".into(), "interrupted".into());
                    crate::journal::append(
                        tx,
                        &push_event(gid, &row.recipient_system, claim.now_ms, true, body),
                    )?;
                }
                out.fallen_back.push(gid);
                continue;
            }
            out.deliveries.push(hand_out(
                tx,
                row,
                claim.now_ms,
                lease_end,
                Some(attempts.saturating_add(1)),
                journal,
            )?);
        }
    }
    Ok(out)
}

fn push_failed(tx: &Transaction<'_>, f: &PushAttemptFailed, journal: bool) -> Result<bool> {
    // Only the latest attempt of a pending message reports; the lease it holds is
    // released (`visible_at` back to now) unless a pull leased the message after it lapsed.
    // SET expressions read the row as it was, so `push_next_at` in the CASE is the lease's
    // end.
    let n = tx
        .prepare_cached(
            "UPDATE messages SET push_last_error = ?3, push_next_at = ?4,
                 push_fallback_at = CASE WHEN ?4 IS NULL THEN ?5 ELSE push_fallback_at END,
                 visible_at = CASE WHEN visible_at = push_next_at THEN ?5 ELSE visible_at END
             WHERE global_id = ?1 AND recipient_system = ?2 AND acked_at IS NULL
               AND push_next_at IS NOT NULL AND push_attempts = ?6",
        )?
        .execute(params![
            &f.global_id[..],
            f.recipient_system,
            f.error,
            f.retry_at_ms,
            f.now_ms,
            f.attempt
        ])?;
    if n == 0 {
        return Ok(false);
    }
    if journal {
        let mut body = serde_json::Map::new();
        body.insert("queue".into(), f.queue.name().into());
        body.insert("error".into(), f.error_class.clone().into());
        match f.retry_at_ms {
            Some(at) => {
                body.insert("attempt".into(), f.attempt.into());
                body.insert("retry_at".into(), at.into());
            }
            None => {
                body.insert("attempts".into(), f.attempt.into());
            }
        }
        crate::journal::append(
            tx,
            &push_event(
                f.global_id,
                &f.recipient_system,
                f.now_ms,
                f.retry_at_ms.is_none(),
                body,
            ),
        )?;
    }
    Ok(true)
}

fn ack(tx: &Transaction<'_>, cmd: &AckCommand, journal: bool) -> Result<(AckOutcome, bool)> {
    let event = |event_type: &str, body: serde_json::Map<String, serde_json::Value>| NewEvent {
        at_ms: cmd.now_ms,
        event_type: event_type.into(),
        global_id: Some(cmd.global_id),
        actor: cmd.recipient_system.clone(),
        body,
    };
    let row: Option<(i64, Option<i64>)> = tx
        .prepare_cached(
            "SELECT seq, acked_at FROM messages WHERE global_id = ?1 AND recipient_system = ?2",
        )?
        .query_row(params![&cmd.global_id[..], cmd.recipient_system], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((seq, acked_at)) = row else {
        return Ok((AckOutcome::NotFound, false));
    };
    if acked_at.is_some() {
        return Ok((AckOutcome::AlreadyAcknowledged, false));
    }
    if !cmd.accepted {
        tx.prepare_cached("UPDATE messages SET visible_at = ?2 WHERE seq = ?1")?
            .execute(params![seq, cmd.now_ms])?;
        if journal {
            crate::journal::append(tx, &event("message.released", serde_json::Map::new()))?;
        }
        return Ok((AckOutcome::Released, false));
    }
    tx.prepare_cached(
        "UPDATE messages SET acked_at = ?2, payload = NULL, push_next_at = NULL WHERE seq = ?1",
    )?
    .execute(params![seq, cmd.now_ms])?;
    let attachments = take_attachments(tx, &cmd.global_id)?;
    // Delivered in time: its EOL no longer matters.
    tx.prepare_cached(
        "UPDATE deadlines SET closed_at = ?2
         WHERE global_id = ?1 AND kind = 'expiry' AND fired_at IS NULL AND closed_at IS NULL",
    )?
    .execute(params![&cmd.global_id[..], cmd.now_ms])?;
    let (number, at) = match &cmd.receiver_registration {
        Some(r) => (Some(r.number.as_str()), Some(r.registered_at_ms)),
        None => (None, None),
    };
    tx.prepare_cached(
        "UPDATE cards SET status = ?2,
             receiver_registration_number = coalesce(?3, receiver_registration_number),
             receiver_registered_at = coalesce(?4, receiver_registered_at)
         WHERE global_id = ?1",
    )?
    .execute(params![&cmd.global_id[..], cmd.acked_status, number, at])?;
    if journal {
        let mut body = serde_json::Map::new();
        body.insert("status".into(), cmd.acked_status.clone().into());
        if let Some(r) = &cmd.receiver_registration {
            body.insert(
                "receiver_registration".into(),
                serde_json::json!({ "number": r.number, "registered_at": r.registered_at_ms }),
            );
        }
        crate::journal::append(tx, &event("message.acknowledged", body))?;
    }
    for m in &cmd.then_enqueue {
        insert_message(tx, m, journal)?;
    }
    Ok((AckOutcome::Acknowledged { attachments }, true))
}

fn message_info(conn: &Connection, global_id: &[u8]) -> Result<Option<MessageInfo>> {
    let row = conn
        .prepare_cached(
            "SELECT m.queue, m.sender_system, m.sender_message_id, m.recipient_system,
                 m.kind_namespace, m.kind_root, m.original_global_id, m.acked_at IS NOT NULL,
                 m.received_at, c.due_at, c.closed_at
             FROM messages m LEFT JOIN cards c ON c.global_id = m.global_id
             WHERE m.global_id = ?1",
        )?
        .query_row([global_id], |r| {
            Ok((
                (
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ),
                r.get::<_, Option<Vec<u8>>>(6)?,
                r.get::<_, bool>(7)?,
                r.get::<_, i64>(8)?,
                r.get::<_, Option<i64>>(9)?,
                r.get::<_, Option<i64>>(10)?,
            ))
        })
        .optional()?;
    let Some(((q, sender, smid, recipient, kns, kroot), orig, acked, received, due, closed)) = row
    else {
        return Ok(None);
    };
    Ok(Some(MessageInfo {
        global_id: blob16(global_id.to_vec())?,
        queue: queue_of(q)?,
        sender_system: sender,
        sender_message_id: smid,
        recipient_system: recipient,
        kind_namespace: kns,
        kind_root: kroot,
        original_global_id: orig.map(blob16).transpose()?,
        acknowledged: acked,
        received_at_ms: received,
        due_at_ms: due,
        closed_at_ms: closed,
    }))
}

fn card(conn: &Connection, global_id: &[u8]) -> Result<Option<Card>> {
    let row = conn
        .prepare_cached(
            "SELECT queue, sender_system, sender_message_id, recipient_system, kind_namespace,
                 kind_root, original_global_id, checksum, received_at, status, test_message,
                 receiver_registration_number, receiver_registered_at, details
             FROM cards WHERE global_id = ?1",
        )?
        .query_row([global_id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<Vec<u8>>>(6)?,
                r.get::<_, Vec<u8>>(7)?,
                r.get::<_, i64>(8)?,
                r.get::<_, String>(9)?,
                r.get::<_, bool>(10)?,
                r.get::<_, Option<String>>(11)?,
                r.get::<_, Option<i64>>(12)?,
                r.get::<_, String>(13)?,
            ))
        })
        .optional()?;
    let Some((
        q,
        sender,
        smid,
        recipient,
        kns,
        kroot,
        orig,
        checksum,
        received,
        status,
        test,
        rnum,
        rat,
        details,
    )) = row
    else {
        return Ok(None);
    };
    let mut details: serde_json::Value = serde_json::from_str(&details)
        .map_err(|e| StoreError::Corrupt(format!("card details: {e}")))?;
    if let (Some(obj), Some(number)) = (details.as_object_mut(), rnum) {
        obj.insert(
            "receiver_registration".into(),
            serde_json::json!({ "number": number, "registered_at_ms": rat }),
        );
    }
    Ok(Some(Card {
        global_id: blob16(global_id.to_vec())?,
        queue: queue_of(q)?,
        sender_system: sender,
        sender_message_id: smid,
        recipient_system: recipient,
        kind_namespace: kns,
        kind_root: kroot,
        original_global_id: orig.map(blob16).transpose()?,
        checksum: blob32(checksum)?,
        received_at_ms: received,
        status,
        test_message: test,
        details,
    }))
}

impl Store for SqliteStore {
    fn registry(&self) -> BoxFuture<'_, Result<RegistryData>> {
        // One read transaction: the version and the content come from the same snapshot.
        Box::pin(self.read(|c| {
            let tx = c.unchecked_transaction()?;
            read_registry(&tx)
        }))
    }

    fn registry_version(&self) -> BoxFuture<'_, Result<u64>> {
        Box::pin(self.read(|c| {
            let v: i64 = c.query_row("SELECT version FROM registry_version", [], |r| r.get(0))?;
            Ok(v as u64)
        }))
    }

    fn change_registry(
        &self,
        actor: String,
        at_ms: i64,
        changes: Vec<RegistryChange>,
    ) -> BoxFuture<'_, Result<u64>> {
        let journal = self.options.journal;
        Box::pin(self.write(move |tx| {
            let mut effective = Vec::new();
            for change in &changes {
                if apply_change(tx, change, at_ms)? {
                    effective.push(change);
                }
            }
            if !effective.is_empty() {
                tx.execute("UPDATE registry_version SET version = version + 1", [])?;
            }
            let v: i64 = tx.query_row("SELECT version FROM registry_version", [], |r| r.get(0))?;
            if journal && !effective.is_empty() {
                registry_event(tx, &actor, at_ms, v, &effective)?;
            }
            Ok((v as u64, false))
        }))
    }

    fn find_sent<'a>(
        &'a self,
        sender_system: &'a str,
        sender_message_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<SentRecord>>> {
        let (s, m) = (sender_system.to_string(), sender_message_id.to_string());
        Box::pin(self.read(move |c| find_sent(c, &s, &m)))
    }

    fn accept(&self, message: NewMessage) -> BoxFuture<'_, Result<AcceptOutcome>> {
        let journal = self.options.journal;
        Box::pin(self.write(move |tx| {
            // Checked again inside the writer: two identical calls racing see one winner.
            if let Some(prev) = find_sent(tx, &message.sender_system, &message.sender_message_id)? {
                return Ok((AcceptOutcome::Duplicate(prev), false));
            }
            insert_message(tx, &message, journal)?;
            Ok((AcceptOutcome::Accepted, false))
        }))
    }

    fn lease(&self, request: LeaseRequest) -> BoxFuture<'_, Result<Option<Delivery>>> {
        let journal = self.options.journal;
        Box::pin(async move {
            // Most polls find their queue empty: a read connection says so without taking
            // a turn of the single writer (and its fsync). A message committed just after
            // the look is found by the next poll, as it would be had it come a moment later.
            let probe = request.clone();
            if !self.read(move |c| any_visible(c, &probe)).await? {
                return Ok(None);
            }
            self.write(move |tx| Ok((lease(tx, &request, journal)?, false)))
                .await
        })
    }

    fn take(
        &self,
        request: LeaseRequest,
        acked_status: String,
    ) -> BoxFuture<'_, Result<Option<Delivery>>> {
        let journal = self.options.journal;
        Box::pin(async move {
            let probe = request.clone();
            if !self.read(move |c| any_visible(c, &probe)).await? {
                return Ok(None);
            }
            self.write(move |tx| {
                let Some(d) = lease(tx, &request, journal)? else {
                    return Ok((None, false));
                };
                let (_, erased) = ack(
                    tx,
                    &AckCommand {
                        recipient_system: request.recipient_system.clone(),
                        global_id: d.global_id,
                        accepted: true,
                        receiver_registration: None,
                        now_ms: request.now_ms,
                        then_enqueue: Vec::new(),
                        acked_status,
                    },
                    journal,
                )?;
                Ok((Some(d), erased))
            })
            .await
        })
    }

    fn ack(&self, command: AckCommand) -> BoxFuture<'_, Result<AckOutcome>> {
        let journal = self.options.journal;
        Box::pin(self.write(move |tx| ack(tx, &command, journal)))
    }

    fn message_info(&self, global_id: GlobalId) -> BoxFuture<'_, Result<Option<MessageInfo>>> {
        Box::pin(self.read(move |c| message_info(c, &global_id)))
    }

    fn queue_counts<'a>(
        &'a self,
        recipient_system: &'a str,
    ) -> BoxFuture<'a, Result<Vec<QueueCount>>> {
        let r = recipient_system.to_string();
        Box::pin(self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT queue, kind_namespace, kind_root, pending FROM queue_counters
                 WHERE recipient_system = ?1 AND pending > 0
                 ORDER BY queue, kind_namespace, kind_root",
            )?;
            let rows: Vec<(i64, String, String, i64)> = st
                .query_map([&r], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect::<std::result::Result<_, _>>()?;
            rows.into_iter()
                .map(|(q, ns, root, n)| {
                    Ok(QueueCount {
                        queue: queue_of(q)?,
                        kind_namespace: ns,
                        kind_root: root,
                        pending: n as u64,
                    })
                })
                .collect()
        }))
    }

    fn highest_global_id(&self) -> BoxFuture<'_, Result<Option<GlobalId>>> {
        Box::pin(self.read(|c| {
            let v: Option<Vec<u8>> =
                c.query_row("SELECT max(global_id) FROM messages", [], |r| r.get(0))?;
            v.map(blob16).transpose()
        }))
    }

    fn card(&self, global_id: GlobalId) -> BoxFuture<'_, Result<Option<Card>>> {
        Box::pin(self.read(move |c| card(c, &global_id)))
    }

    fn live_attachment_paths(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(self.read(|c| {
            let mut st = c.prepare_cached("SELECT path FROM attachments")?;
            let rows = st
                .query_map([], |r| r.get(0))?
                .collect::<std::result::Result<Vec<String>, _>>()?;
            Ok(rows)
        }))
    }

    fn journal_append(&self, events: Vec<NewEvent>) -> BoxFuture<'_, Result<Vec<u64>>> {
        Box::pin(self.write(move |tx| {
            let seqs = events
                .iter()
                .map(|e| crate::journal::append(tx, e))
                .collect::<Result<Vec<u64>>>()?;
            Ok((seqs, false))
        }))
    }

    fn journal_size(&self) -> BoxFuture<'_, Result<u64>> {
        Box::pin(self.read(crate::journal::size))
    }

    fn journal_root(&self, size: u64) -> BoxFuture<'_, Result<Hash>> {
        Box::pin(self.read(move |c| crate::journal::root(c, size)))
    }

    fn journal_events(&self, from: u64, limit: usize) -> BoxFuture<'_, Result<Vec<JournalEvent>>> {
        Box::pin(self.read(move |c| crate::journal::events(c, from, limit)))
    }

    fn journal_events_of(&self, global_id: GlobalId) -> BoxFuture<'_, Result<Vec<JournalEvent>>> {
        Box::pin(self.read(move |c| crate::journal::events_of(c, &global_id)))
    }

    fn inclusion_proof(&self, seq: u64, size: u64) -> BoxFuture<'_, Result<Vec<Hash>>> {
        Box::pin(self.read(move |c| crate::journal::inclusion_proof(c, seq, size)))
    }

    fn consistency_proof(&self, old: u64, new: u64) -> BoxFuture<'_, Result<Vec<Hash>>> {
        Box::pin(self.read(move |c| crate::journal::consistency_proof(c, old, new)))
    }

    fn add_checkpoint(&self, checkpoint: StoredCheckpoint) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.write(move |tx| {
            crate::journal::add_checkpoint(tx, &checkpoint)?;
            Ok(((), false))
        }))
    }

    fn checkpoints(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<StoredCheckpoint>>> {
        Box::pin(self.read(move |c| crate::journal::checkpoints(c, after, limit)))
    }

    fn latest_checkpoint(&self) -> BoxFuture<'_, Result<Option<StoredCheckpoint>>> {
        Box::pin(self.read(crate::journal::latest_checkpoint))
    }

    fn metrics_snapshot(&self) -> BoxFuture<'_, Result<crate::MetricsSnapshot>> {
        Box::pin(self.read(move |c| {
            // The counters are a handful of rows per (system, queue, kind); the oldest
            // message of each is one seek in the pending-age index (migration 0007).
            let mut queues: Vec<crate::QueueDepth> = Vec::new();
            for (system, q, oldest) in pending_ages(c)? {
                let queue = queue_of(q)?;
                match queues.last_mut() {
                    Some(last) if last.recipient_system == system && last.queue == queue => {
                        last.pending += oldest.pending;
                        last.oldest_received_at_ms =
                            min_some(last.oldest_received_at_ms, oldest.oldest_received_at_ms);
                    }
                    _ => queues.push(crate::QueueDepth {
                        recipient_system: system,
                        queue,
                        pending: oldest.pending,
                        oldest_received_at_ms: oldest.oldest_received_at_ms,
                    }),
                }
            }
            // Open past due: the overdue deadline fired and no final answer closed the
            // card. The partial index of migration 0006 holds exactly these cards, so the
            // count costs as much as there are overdue requests, not the history.
            let overdue: i64 = c
                .prepare_cached(
                    "SELECT count(*) FROM cards
                     WHERE overdue_at IS NOT NULL AND closed_at IS NULL",
                )?
                .query_row([], |r| r.get(0))?;
            Ok(crate::MetricsSnapshot {
                queues,
                overdue: overdue.max(0) as u64,
                journal_size: crate::journal::size(c)?,
                latest_checkpoint_ms: crate::journal::latest_checkpoint(c)?.map(|k| k.made_at_ms),
            })
        }))
    }

    fn query_cards(&self, filter: CardFilter) -> BoxFuture<'_, Result<Vec<Card>>> {
        Box::pin(self.read(move |c| {
            let ids = crate::journal::query_cards(c, &filter)?;
            let mut cards = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(card) = card(c, &id)? {
                    cards.push(card);
                }
            }
            Ok(cards)
        }))
    }

    fn next_deadline_at(&self) -> BoxFuture<'_, Result<Option<i64>>> {
        Box::pin(self.read(|c| {
            // The earliest instant at which a pending row can be claimed: its due time, or
            // the end of its current lease.
            let v: Option<i64> = c
                .prepare_cached(
                    "SELECT min(max(due_at, coalesce(lease_until, 0)))
                     FROM (SELECT due_at, lease_until FROM deadlines INDEXED BY deadlines_pending
                           WHERE fired_at IS NULL AND closed_at IS NULL
                           ORDER BY due_at LIMIT 1000)",
                )?
                .query_row([], |r| r.get(0))?;
            Ok(v)
        }))
    }

    fn claim_deadlines(
        &self,
        owner: String,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<ClaimedDeadline>>> {
        Box::pin(
            self.write(move |tx| {
                Ok((claim_deadlines(tx, &owner, now_ms, lease_ms, limit)?, false))
            }),
        )
    }

    fn fire_deadlines(
        &self,
        firings: Vec<DeadlineFiring>,
    ) -> BoxFuture<'_, Result<Vec<FireOutcome>>> {
        let journal = self.options.journal;
        let kinds: Vec<DeadlineKind> = firings.iter().map(|f| f.kind).collect();
        Box::pin(async move {
            let out = self
                .write(move |tx| {
                    let mut erased = false;
                    let mut out = Vec::with_capacity(firings.len());
                    for f in &firings {
                        let (outcome, e) = fire_deadline(tx, f, journal)?;
                        erased |= e;
                        out.push(outcome);
                    }
                    Ok((out, erased))
                })
                .await?;
            // Counted once committed, and only those this node fired (docs/metrics.md).
            for (kind, outcome) in kinds.iter().zip(&out) {
                if matches!(outcome, FireOutcome::Fired { .. }) {
                    metrics::counter!("mezhved_deadline_firings_total", "kind" => kind.name())
                        .increment(1);
                }
            }
            Ok(out)
        })
    }

    fn claim_push(&self, claim: PushClaim) -> BoxFuture<'_, Result<PushClaimed>> {
        let journal = self.options.journal;
        Box::pin(async move {
            let claimed = self
                .write(move |tx| Ok((claim_push(tx, &claim, journal)?, false)))
                .await?;
            // Each leased delivery is one POST attempt about to be made (docs/metrics.md).
            if !claimed.deliveries.is_empty() {
                metrics::counter!("mezhved_push_attempts_total")
                    .increment(claimed.deliveries.len() as u64);
            }
            Ok(claimed)
        })
    }

    fn next_push_at(&self, systems: Vec<String>) -> BoxFuture<'_, Result<Option<i64>>> {
        Box::pin(self.read(move |c| {
            let mut st = c.prepare_cached(
                // The earliest instant one of the system's messages can be claimed: its due
                // time, or the end of the lease (push or pull) that holds it.
                "SELECT min(max(push_next_at, visible_at))
                 FROM (SELECT push_next_at, visible_at FROM messages INDEXED BY messages_push
                       WHERE recipient_system = ?1 AND push_next_at IS NOT NULL
                         AND acked_at IS NULL
                       ORDER BY push_next_at LIMIT 1000)",
            )?;
            let mut earliest: Option<i64> = None;
            for system in &systems {
                let at: Option<i64> = st.query_row([system], |r| r.get(0))?;
                earliest = match (earliest, at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            Ok(earliest)
        }))
    }

    fn push_failed(&self, failure: PushAttemptFailed) -> BoxFuture<'_, Result<bool>> {
        let journal = self.options.journal;
        // The class is one of the push loop's fixed names; anything else counts as
        // `other`, so the label stays bounded (docs/metrics.md).
        let class = PUSH_FAILURE_CLASSES
            .iter()
            .find(|c| **c == failure.error_class)
            .copied()
            .unwrap_or("other");
        Box::pin(async move {
            let recorded = self
                .write(move |tx| Ok((push_failed(tx, &failure, journal)?, false)))
                .await?;
            metrics::counter!("mezhved_push_failures_total", "class" => class).increment(1);
            Ok(recorded)
        })
    }

    fn push_state(&self, global_id: GlobalId) -> BoxFuture<'_, Result<Option<PushState>>> {
        Box::pin(self.read(move |c| {
            let row = c
                .prepare_cached(
                    "SELECT push_attempts, push_next_at, push_last_error, push_fallback_at,
                         acked_at IS NOT NULL
                     FROM messages WHERE global_id = ?1",
                )?
                .query_row([&global_id[..]], |r| {
                    Ok(PushState {
                        attempts: r.get(0)?,
                        next_at_ms: r.get(1)?,
                        last_error: r.get(2)?,
                        fallback_at_ms: r.get(3)?,
                        acknowledged: r.get(4)?,
                    })
                })
                .optional()?;
            Ok(row)
        }))
    }

    fn claim_job_slot(
        &self,
        job: String,
        slot_ms: i64,
        node: String,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<bool>> {
        Box::pin(self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO job_slots (job, slot, node, started_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![job, slot_ms, node, now_ms])?;
            Ok((n == 1, false))
        }))
    }

    fn finish_job_slot(
        &self,
        job: String,
        slot_ms: i64,
        now_ms: i64,
        outcome: String,
    ) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.write(move |tx| {
            tx.prepare_cached(
                "UPDATE job_slots SET finished_at = ?3, outcome = ?4 WHERE job = ?1 AND slot = ?2",
            )?
            .execute(params![job, slot_ms, now_ms, outcome])?;
            Ok(((), false))
        }))
    }

    fn purge_finished_messages(&self, before_ms: i64, limit: usize) -> BoxFuture<'_, Result<u64>> {
        Box::pin(self.write(move |tx| {
            // Only rows whose payload is already gone; the `answer` kept for identical
            // resends goes with them, so `before_ms` must be older than the MessageID
            // staleness window.
            let n = tx
                .prepare_cached(
                    "DELETE FROM messages WHERE seq IN (
                         SELECT seq FROM messages
                         WHERE acked_at IS NOT NULL AND acked_at < ?1 AND payload IS NULL
                         LIMIT ?2)",
                )?
                .execute(params![before_ms, i64::try_from(limit).unwrap_or(i64::MAX)])?;
            Ok((n as u64, n > 0))
        }))
    }

    fn health_probe(&self, now_ms: i64) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.write(move |tx| {
            tx.prepare_cached("INSERT OR REPLACE INTO health_probe (id, at) VALUES (1, ?1)")?
                .execute([now_ms])?;
            Ok(((), false))
        }))
    }

    fn setting(&self, key: String) -> BoxFuture<'_, Result<Option<String>>> {
        Box::pin(self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT value FROM settings WHERE key = ?1")?
                    .query_row([&key], |r| r.get(0))
                    .optional()?,
            )
        }))
    }

    fn put_setting(
        &self,
        key: String,
        value: String,
        event: NewEvent,
    ) -> BoxFuture<'_, Result<()>> {
        let journal = self.options.journal;
        Box::pin(self.write(move |tx| {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO settings (key, value, changed_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![key, value, event.at_ms])?;
            if journal {
                crate::journal::append(tx, &event)?;
            }
            Ok(((), false))
        }))
    }

    fn monitoring_snapshot(
        &self,
        since_ms: i64,
        max_answers: usize,
    ) -> BoxFuture<'_, Result<MonitoringSnapshot>> {
        Box::pin(self.read(move |c| {
            // Per (system, kind), over its queues.
            let mut queues: Vec<QueueAge> = Vec::new();
            let mut by_kind: std::collections::HashMap<(String, String, String), usize> =
                std::collections::HashMap::new();
            for (_, _, age) in pending_ages(c)? {
                let key = (
                    age.recipient_system.clone(),
                    age.kind_namespace.clone(),
                    age.kind_root.clone(),
                );
                match by_kind.get(&key) {
                    Some(&i) => {
                        queues[i].pending += age.pending;
                        queues[i].oldest_received_at_ms =
                            min_some(queues[i].oldest_received_at_ms, age.oldest_received_at_ms);
                    }
                    None => {
                        by_kind.insert(key, queues.len());
                        queues.push(age);
                    }
                }
            }
            let overdue = c
                .prepare_cached(
                    "SELECT recipient_system, kind_namespace, kind_root, count(*)
                     FROM cards INDEXED BY cards_overdue_open
                     WHERE overdue_at IS NOT NULL AND closed_at IS NULL
                     GROUP BY recipient_system, kind_namespace, kind_root",
                )?
                .query_map([], |r| {
                    Ok(OverdueCount {
                        recipient_system: r.get(0)?,
                        kind_namespace: r.get(1)?,
                        kind_root: r.get(2)?,
                        overdue: r.get::<_, i64>(3)?.max(0) as u64,
                    })
                })?
                .collect::<std::result::Result<_, _>>()?;
            let answer_times = c
                .prepare_cached(
                    "SELECT recipient_system, kind_namespace, kind_root, closed_at - received_at
                     FROM cards INDEXED BY cards_closed
                     WHERE closed_at IS NOT NULL AND closed_at >= ?1
                     ORDER BY closed_at DESC LIMIT ?2",
                )?
                .query_map(
                    params![since_ms, i64::try_from(max_answers).unwrap_or(i64::MAX)],
                    |r| {
                        Ok(AnswerTime {
                            recipient_system: r.get(0)?,
                            kind_namespace: r.get(1)?,
                            kind_root: r.get(2)?,
                            millis: r.get(3)?,
                        })
                    },
                )?
                .collect::<std::result::Result<_, _>>()?;
            let activity = c
                .prepare_cached(
                    "SELECT system, last_poll_at, last_success_at FROM system_activity",
                )?
                .query_map([], |r| {
                    Ok(SystemActivity {
                        system: r.get(0)?,
                        last_poll_at_ms: r.get(1)?,
                        last_success_at_ms: r.get(2)?,
                    })
                })?
                .collect::<std::result::Result<_, _>>()?;
            let drains = c
                .prepare_cached(
                    "SELECT system, queue, kind_namespace, kind_root, drained_at FROM system_drains",
                )?
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })?
                .collect::<std::result::Result<Vec<_>, _>>()?
                .into_iter()
                .filter_map(|(system, q, ns, root, at)| {
                    Some(SystemDrain {
                        system,
                        queue: Queue::from_code(q)?,
                        kind: (!(ns.is_empty() && root.is_empty())).then_some((ns, root)),
                        drained_at_ms: at,
                    })
                })
                .collect();
            Ok(MonitoringSnapshot {
                activity,
                drains,
                queues,
                overdue,
                answer_times,
            })
        }))
    }

    fn save_activity(&self, activity: Vec<SystemActivity>) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.write(move |tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO system_activity (system, last_poll_at, last_success_at)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT (system) DO UPDATE SET
                     last_poll_at = CASE WHEN excluded.last_poll_at IS NULL THEN last_poll_at
                         ELSE max(coalesce(last_poll_at, excluded.last_poll_at), excluded.last_poll_at) END,
                     last_success_at = CASE WHEN excluded.last_success_at IS NULL THEN last_success_at
                         ELSE max(coalesce(last_success_at, excluded.last_success_at), excluded.last_success_at) END",
            )?;
            for a in &activity {
                st.execute(params![a.system, a.last_poll_at_ms, a.last_success_at_ms])?;
            }
            Ok(((), false))
        }))
    }

    fn save_drains(&self, drains: Vec<SystemDrain>) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.write(move |tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO system_drains (system, queue, kind_namespace, kind_root, drained_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (system, queue, kind_namespace, kind_root) DO UPDATE SET
                     drained_at = max(drained_at, excluded.drained_at)",
            )?;
            for d in &drains {
                let (ns, root) = d.kind.clone().unwrap_or_default();
                st.execute(params![d.system, d.queue.code(), ns, root, d.drained_at_ms])?;
            }
            Ok(((), false))
        }))
    }

    fn overdue_requests(&self, limit: usize) -> BoxFuture<'_, Result<Vec<OverdueRequest>>> {
        type Row = (
            Vec<u8>,
            String,
            String,
            String,
            String,
            i64,
            Option<i64>,
            i64,
        );
        Box::pin(self.read(move |c| {
            let rows: Vec<Row> = c
                .prepare_cached(
                    "SELECT global_id, sender_system, recipient_system, kind_namespace,
                         kind_root, received_at, due_at, overdue_at
                     FROM cards INDEXED BY cards_overdue_open
                     WHERE overdue_at IS NOT NULL AND closed_at IS NULL
                     ORDER BY overdue_at, global_id LIMIT ?1",
                )?
                .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                })?
                .collect::<std::result::Result<_, _>>()?;
            rows.into_iter()
                .map(|(g, s, r, ns, root, received, due, overdue)| {
                    Ok(OverdueRequest {
                        global_id: crate::journal::uuid_text(&blob16(g)?),
                        sender_system: s,
                        recipient_system: r,
                        kind_namespace: ns,
                        kind_root: root,
                        received_at_ms: received,
                        due_at_ms: due,
                        overdue_at_ms: overdue,
                    })
                })
                .collect()
        }))
    }

    fn active_alerts(&self) -> BoxFuture<'_, Result<Vec<ActiveAlert>>> {
        Box::pin(self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT rule, subject, opened_at, value, detail FROM alerts
                 ORDER BY opened_at, rule, subject",
            )?
            .query_map([], |r| {
                Ok(ActiveAlert {
                    rule: r.get(0)?,
                    subject: r.get(1)?,
                    opened_at_ms: r.get(2)?,
                    value: r.get(3)?,
                    detail: r.get(4)?,
                })
            })?
            .collect::<std::result::Result<_, _>>()?)
        }))
    }

    fn open_alert(&self, alert: ActiveAlert, event: NewEvent) -> BoxFuture<'_, Result<bool>> {
        let journal = self.options.journal;
        Box::pin(self.write(move |tx| {
            let n = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO alerts (rule, subject, opened_at, value, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    alert.rule,
                    alert.subject,
                    alert.opened_at_ms,
                    alert.value,
                    alert.detail
                ])?;
            if n == 1 && journal {
                crate::journal::append(tx, &event)?;
            }
            Ok((n == 1, false))
        }))
    }

    fn resolve_alert(
        &self,
        rule: String,
        subject: String,
        event: NewEvent,
    ) -> BoxFuture<'_, Result<bool>> {
        let journal = self.options.journal;
        Box::pin(self.write(move |tx| {
            let n = tx
                .prepare_cached("DELETE FROM alerts WHERE rule = ?1 AND subject = ?2")?
                .execute(params![rule, subject])?;
            if n == 1 && journal {
                crate::journal::append(tx, &event)?;
            }
            Ok((n == 1, false))
        }))
    }

    fn record_paper(
        &self,
        card: Card,
        lifecycle: Lifecycle,
        event: NewEvent,
    ) -> BoxFuture<'_, Result<()>> {
        let journal = self.options.journal;
        Box::pin(self.write(move |tx| {
            if let Some(original) = &lifecycle.closes {
                // One answer per request: checked in the writer, so two racing answers
                // see one winner.
                let closed: Option<Option<i64>> = tx
                    .prepare_cached("SELECT closed_at FROM cards WHERE global_id = ?1")?
                    .query_row([&original[..]], |r| r.get(0))
                    .optional()?;
                match closed {
                    None => return Err(StoreError::NotFound("the request has no card".into())),
                    Some(Some(_)) => {
                        return Err(StoreError::InvalidRequest(
                            "the request already has a final answer".into(),
                        ))
                    }
                    Some(None) => {}
                }
            }
            insert_card(tx, &card)?;
            if journal {
                crate::journal::append(tx, &event)?;
            }
            insert_lifecycle(tx, &card.global_id, &lifecycle, card.received_at_ms)?;
            Ok(((), false))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database made before the queue counters existed gets counters that match its
    /// backlog when it is opened by this version.
    #[tokio::test]
    async fn migration_2_counts_the_existing_backlog() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(MIGRATIONS[0].1).expect("migration 1");
            conn.pragma_update(None, "user_version", 1)
                .expect("version");
            for (i, (queue, acked)) in [(0, None), (0, None), (0, Some(5)), (1, None)]
                .into_iter()
                .enumerate()
            {
                conn.execute(
                    "INSERT INTO messages (global_id, queue, sender_system, sender_message_id,
                         recipient_system, kind_namespace, kind_root, content_namespace,
                         content_root, checksum, received_at, visible_at, acked_at, answer)
                     VALUES (?1, ?2, 'A', ?3, 'B', 'urn:k', 'K', 'urn:k', 'K', x'00', 1, 1, ?4, x'00')",
                    params![vec![i as u8; 16], queue, format!("m{i}"), acked],
                )
                .expect("insert");
            }
        }
        let store = SqliteStore::open(&path, SqliteOptions::default()).expect("migrates");
        let counts = store.queue_counts("B").await.expect("counts");
        let pending: Vec<(Queue, u64)> = counts.iter().map(|c| (c.queue, c.pending)).collect();
        assert_eq!(pending, vec![(Queue::Requests, 2), (Queue::Responses, 1)]);
        store.close();
    }

    /// A database made before monitoring gets the probe, settings and alerts tables and
    /// the monitoring indexes; its backlog shows in the snapshot, and alert transitions
    /// are journaled once each.
    #[tokio::test]
    async fn migration_6_adds_monitoring_to_an_existing_database() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).expect("open");
            for (number, sql) in &MIGRATIONS[..5] {
                conn.execute_batch(sql).expect("old migration");
                conn.pragma_update(None, "user_version", number)
                    .expect("version");
            }
            for (i, received) in [(0u8, 500i64), (1, 200)] {
                conn.execute(
                    "INSERT INTO messages (global_id, queue, sender_system, sender_message_id,
                         recipient_system, kind_namespace, kind_root, content_namespace,
                         content_root, checksum, received_at, visible_at, payload, answer)
                     VALUES (?1, 0, 'A', ?2, 'B', 'urn:k', 'K', 'urn:k', 'K', ?3, ?4, 1,
                         x'00', x'00')",
                    params![vec![i; 16], format!("m{i}"), vec![7u8; 32], received],
                )
                .expect("insert");
            }
        }
        let store = SqliteStore::open(&path, SqliteOptions::default()).expect("migrates");
        let snap = store.monitoring_snapshot(0, 10).await.expect("snapshot");
        assert_eq!(
            snap.queues,
            [QueueAge {
                recipient_system: "B".into(),
                kind_namespace: "urn:k".into(),
                kind_root: "K".into(),
                pending: 2,
                oldest_received_at_ms: Some(200),
            }]
        );
        assert!(snap.overdue.is_empty() && snap.answer_times.is_empty());
        assert!(snap.activity.is_empty());
        let seen = |poll: Option<i64>, success: Option<i64>| SystemActivity {
            system: "B".into(),
            last_poll_at_ms: poll,
            last_success_at_ms: success,
        };
        store
            .save_activity(vec![seen(Some(50), Some(40))])
            .await
            .expect("save");
        // An older flush (another node) does not move it back; a newer one does.
        store
            .save_activity(vec![seen(Some(30), None)])
            .await
            .expect("save");
        store
            .save_activity(vec![seen(None, Some(60))])
            .await
            .expect("save");
        let snap = store.monitoring_snapshot(0, 10).await.expect("snapshot");
        assert_eq!(snap.activity, [seen(Some(50), Some(60))]);
        store.health_probe(1_000).await.expect("probe");
        store.health_probe(2_000).await.expect("probe again");
        let event = |t: &str| NewEvent {
            at_ms: 3_000,
            event_type: t.into(),
            global_id: None,
            actor: "gateway".into(),
            body: serde_json::Map::new(),
        };
        assert_eq!(
            store.setting("maintenance".into()).await.expect("read"),
            None
        );
        store
            .put_setting(
                "maintenance".into(),
                "{}".into(),
                event("operator.maintenance"),
            )
            .await
            .expect("put");
        assert_eq!(
            store
                .setting("maintenance".into())
                .await
                .expect("read")
                .as_deref(),
            Some("{}")
        );
        let alert = ActiveAlert {
            rule: "queue.age".into(),
            subject: "B".into(),
            opened_at_ms: 3_000,
            value: "3600s".into(),
            detail: "old".into(),
        };
        assert!(store
            .open_alert(alert.clone(), event("alert.raised"))
            .await
            .expect("open"));
        assert!(!store
            .open_alert(alert.clone(), event("alert.raised"))
            .await
            .expect("open twice"));
        assert_eq!(store.active_alerts().await.expect("list"), [alert]);
        for expected in [true, false] {
            assert_eq!(
                store
                    .resolve_alert("queue.age".into(), "B".into(), event("alert.resolved"))
                    .await
                    .expect("resolve"),
                expected
            );
        }
        assert!(store.active_alerts().await.expect("list").is_empty());
        // The switch, one raise and one resolution.
        assert_eq!(store.journal_size().await.expect("size"), 3);
        store.close();
    }

    /// A database made before push delivery opens with every system pull-only and every
    /// message unpushed; giving a system an endpoint then pushes its pending backlog only.
    #[tokio::test]
    async fn migration_5_adds_push_bookkeeping_to_an_existing_database() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).expect("open");
            for (number, sql) in &MIGRATIONS[..4] {
                conn.execute_batch(sql).expect("old migration");
                conn.pragma_update(None, "user_version", number)
                    .expect("version");
            }
            conn.execute_batch(
                "INSERT INTO participants VALUES ('P', 'Agency');
                 INSERT INTO systems VALUES ('B', 'P', 'System B', '[]');",
            )
            .expect("registry");
            for (i, acked) in [None, Some(5)].into_iter().enumerate() {
                conn.execute(
                    "INSERT INTO messages (global_id, queue, sender_system, sender_message_id,
                         recipient_system, kind_namespace, kind_root, content_namespace,
                         content_root, checksum, received_at, visible_at, acked_at, payload,
                         answer)
                     VALUES (?1, 0, 'A', ?2, 'B', 'urn:k', 'K', 'urn:k', 'K', ?3, 1, 1, ?4,
                         x'00', x'00')",
                    params![vec![i as u8; 16], format!("m{i}"), vec![7u8; 32], acked],
                )
                .expect("insert");
            }
        }
        let store = SqliteStore::open(&path, SqliteOptions::default()).expect("migrates");
        let registry = store.registry().await.expect("registry");
        assert_eq!(registry.systems[0].push_url, None);
        let state = store
            .push_state([0; 16])
            .await
            .expect("state")
            .expect("row");
        assert_eq!((state.attempts, state.next_at_ms), (0, None));

        let mut b = registry.systems[0].clone();
        b.push_url = Some("https://b.example/push".into());
        store
            .change_registry("test".into(), 10, vec![RegistryChange::PutSystem(b)])
            .await
            .expect("put");
        let pending = store.push_state([0; 16]).await.expect("state");
        assert_eq!(
            pending.and_then(|s| s.next_at_ms),
            Some(10),
            "backlog pushed"
        );
        let acked = store.push_state([1; 16]).await.expect("state");
        assert_eq!(acked.and_then(|s| s.next_at_ms), None, "acknowledged stays");
        let claimed = store
            .claim_push(PushClaim {
                systems: vec![("B".into(), 4)],
                now_ms: 10,
                lease_ms: 1_000,
                max_attempts: 3,
            })
            .await
            .expect("claim");
        assert_eq!(claimed.deliveries.len(), 1);
        assert_eq!(claimed.deliveries[0].push_attempt, 1);
        store.close();
    }
}
