//! The demo's live summary, read from the gateway's own database (read-only): what was
//! accepted, refused, answered and how, what went overdue, and the exchange rate. The
//! demo's state (stream position, region time) is saved at every tick, so even a killed
//! demo resumes close to where it was.

use crate::demo::{clock_text, save_state, DemoState};
use crate::demo_agency::Http;
use mezhved_core::clock::{to_ms, Clock, ScaledClock};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Counts at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Requests the gateway accepted.
    pub accepted: i64,
    /// Calls the gateway refused (faults of authenticated senders).
    pub rejected: i64,
    /// Responses by form.
    pub data: i64,
    pub no_data: i64,
    pub refused: i64,
    pub clarifications: i64,
    pub late: i64,
    /// Requests whose deadline passed unanswered.
    pub overdue: i64,
    /// Requests still waiting at a provider's queue.
    pub queued: i64,
    /// Messages of every kind (requests, responses, statuses) the gateway accepted.
    pub messages: i64,
    pub journal_events: i64,
}

impl Snapshot {
    pub fn line(&self, at: &str) -> String {
        format!(
            "{at} | requests {} accepted, {} refused by the gateway | answers: {} data, {} no data, {} refused, {} clarification | {} late, {} overdue | {} queued | journal {}",
            self.accepted,
            self.rejected,
            self.data,
            self.no_data,
            self.refused,
            self.clarifications,
            self.late,
            self.overdue,
            self.queued,
            self.journal_events
        )
    }
}

/// Reads snapshots.
#[derive(Debug, Clone)]
pub struct Summary {
    db: PathBuf,
}

impl Summary {
    pub fn open(db: &Path, _consumer_adapter: String, _http: Http) -> Summary {
        Summary {
            db: db.to_path_buf(),
        }
    }

    pub async fn snapshot(&self) -> Snapshot {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || read(&db).unwrap_or_default())
            .await
            .unwrap_or_default()
    }
}

pub fn read(db: &Path) -> rusqlite::Result<Snapshot> {
    let c = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(Duration::from_secs(2))?;
    let one = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
    let mut s = Snapshot {
        accepted: one("SELECT count(*) FROM cards WHERE queue = 0")?,
        rejected: one("SELECT count(*) FROM journal_events WHERE type = 'message.rejected'")?,
        overdue: one("SELECT count(*) FROM journal_events WHERE type = 'deadline.overdue'")?,
        queued: one("SELECT count(*) FROM messages WHERE acked_at IS NULL AND queue = 0")?,
        messages: one("SELECT count(*) FROM cards")?,
        journal_events: one("SELECT coalesce(max(seq), 0) FROM journal_events")?,
        ..Snapshot::default()
    };
    c.query_row(
        "SELECT
            coalesce(sum(json_extract(details, '$.response_kind') = 'data'), 0),
            coalesce(sum(json_extract(details, '$.rejection_code') = 'NO_DATA'), 0),
            coalesce(sum(json_extract(details, '$.response_kind') = 'rejection'
                         AND coalesce(json_extract(details, '$.rejection_code'), '') <> 'NO_DATA'), 0),
            coalesce(sum(json_extract(details, '$.clarification') = 1), 0),
            coalesce(sum(json_extract(details, '$.late') = 1), 0)
         FROM cards WHERE queue = 1 AND json_extract(details, '$.message_type') = 'RESPONSE'",
        [],
        |r| {
            s.data = r.get(0)?;
            s.no_data = r.get(1)?;
            s.refused = r.get(2)?;
            s.clarifications = r.get(3)?;
            s.late = r.get(4)?;
            Ok(())
        },
    )?;
    Ok(s)
}

/// Prints the summary (a redrawn line, or a line every 5 s with `plain`) and saves the
/// demo's state at every tick. Never returns.
pub async fn report_loop(
    summary: Summary,
    clock: Arc<ScaledClock>,
    plain: bool,
    progress: tokio::sync::watch::Receiver<u64>,
    dir: PathBuf,
    mut state: DemoState,
) {
    let bar = if plain {
        None
    } else {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        Some(b)
    };
    let every = if plain {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(1)
    };
    let mut tick = tokio::time::interval(every);
    let mut previous: Option<(std::time::Instant, i64)> = None;
    loop {
        tick.tick().await;
        let snap = summary.snapshot().await;
        #[allow(clippy::disallowed_methods)]
        let now = std::time::Instant::now();
        let rate = match previous {
            Some((t, m)) => {
                let secs = now.duration_since(t).as_secs_f64();
                if secs > 0.0 {
                    (snap.messages - m) as f64 / secs
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        previous = Some((now, snap.messages));
        let submitted = *progress.borrow();
        let line = format!(
            "submitted {submitted} | {} | {rate:.1} messages/s",
            snap.line(&clock_text(clock.now()))
        );
        match &bar {
            Some(b) => b.set_message(line),
            None => println!("{line}"),
        }
        state.next_index = submitted;
        state.clock_ms = to_ms(clock.now());
        if let Err(e) = save_state(&dir, &state) {
            tracing::warn!(error = %e, "the demo's state could not be saved");
        }
    }
}
