//! Reply deadlines and message lifetimes: the rules that set them and the timer loop that
//! fires them (docs/deadlines.md).
//!
//! Invariants:
//! - Deadlines are rows, written by the store in the transaction that stores the message
//!   (`NewMessage::lifecycle`); nothing about a deadline lives only in memory.
//! - One timer loop per node sleeps until the earliest pending row is due (or until it is
//!   woken because an earlier one was added), claims what is due with a lease, and fires
//!   each claimed row in one transaction with its statuses and journal event. A row fires
//!   at most once even with several nodes: the store fires only rows still pending and
//!   leased by the firing node. A node that dies after claiming leaves a lease that lapses,
//!   and another node (or itself after a restart) fires the row then.
//! - After a restart, everything that came due while the gateway was down is due now and
//!   fires on the first pass.
//! - Only a final answer (data or rejection) closes a reply deadline; a late answer is
//!   still delivered, marked late.

use crate::calendar::{self, Calendar};
use crate::clock::{from_ms, to_ms, Clock};
use crate::exchange::Exchange;
use mezhved_store::{
    ClaimedDeadline, DeadlineFiring, DeadlineKind, FireOutcome, NewDeadline, NewEvent, Store,
    StoreError,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;

/// What happens to a request's deadline when its provider asks for clarification
/// (an intermediate status with [`CLARIFICATION_STATUS_CODE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClarificationPolicy {
    /// The clarification ends the request's deadline (closed, not overdue); the consumer's
    /// follow-up request, which refers to the original, gets a deadline of its own. This is
    /// the reading of Kuzbass 5.5 where the request "cannot be executed" as sent.
    Restart,
    /// The clarification changes nothing: the original deadline keeps running.
    Continue,
}

/// `RequestStatus/StatusCode` of a provider asking for more information.
pub const CLARIFICATION_STATUS_CODE: i32 = 2;

/// The production calendar in use; the calendar-reload job swaps it without a restart.
#[derive(Debug)]
pub struct CalendarHandle(std::sync::RwLock<Arc<Calendar>>);

impl CalendarHandle {
    pub fn new(calendar: Calendar) -> CalendarHandle {
        CalendarHandle(std::sync::RwLock::new(Arc::new(calendar)))
    }
    pub fn get(&self) -> Arc<Calendar> {
        match self.0.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
    pub fn set(&self, calendar: Calendar) {
        match self.0.write() {
            Ok(mut c) => *c = Arc::new(calendar),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(calendar),
        }
    }
}

/// The deadline rules of a segment.
#[derive(Debug, Clone)]
pub struct DeadlineRules {
    /// The reply term when the kind of information sets none (210-FZ art. 7.2 part 3: 5).
    pub reply_working_days: u32,
    /// A reminder this many working days before the deadline (0: none).
    pub reminder_working_days_before: u32,
    pub time_zone: chrono_tz::Tz,
    pub calendar: Arc<CalendarHandle>,
    pub clarification: ClarificationPolicy,
}

/// A request's reply deadline as computed at receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyDeadline {
    pub working_days: u32,
    /// The last day (local date in the segment's time zone).
    pub date: chrono::NaiveDate,
    /// The end of that day.
    pub at: SystemTime,
    pub reminder_at: Option<SystemTime>,
}

impl DeadlineRules {
    /// The reply deadline of a request received at `received`.
    pub fn reply_deadline(&self, received: SystemTime, kind_days: Option<u32>) -> ReplyDeadline {
        let working_days = kind_days.unwrap_or(self.reply_working_days).max(1);
        let receipt = chrono::DateTime::<chrono::Utc>::from(received);
        let cal = self.calendar.get();
        let due = calendar::due(receipt, working_days, self.time_zone, &cal);
        for w in &due.warnings {
            tracing::warn!(warning = %w, "reply deadline computed without a production calendar");
        }
        let reminder_at = (self.reminder_working_days_before > 0)
            .then(|| {
                calendar::reminder(
                    &due,
                    self.reminder_working_days_before,
                    self.time_zone,
                    &cal,
                )
            })
            .map(SystemTime::from)
            .filter(|r| *r > received);
        ReplyDeadline {
            working_days,
            date: due.date,
            at: due.at.into(),
            reminder_at,
        }
    }

    /// The rows a request gets: reminder, overdue and, with an EOL, expiry.
    pub fn rows(deadline: Option<&ReplyDeadline>, eol_ms: Option<i64>) -> Vec<NewDeadline> {
        let mut rows = Vec::new();
        if let Some(d) = deadline {
            if let Some(r) = d.reminder_at {
                rows.push(NewDeadline {
                    kind: DeadlineKind::Reminder,
                    due_at_ms: to_ms(r),
                });
            }
            rows.push(NewDeadline {
                kind: DeadlineKind::Overdue,
                due_at_ms: to_ms(d.at),
            });
        }
        if let Some(eol) = eol_ms {
            rows.push(NewDeadline {
                kind: DeadlineKind::Expiry,
                due_at_ms: eol,
            });
        }
        rows
    }
}

/// One node's deadline timer.
pub struct DeadlineRunner {
    store: Arc<dyn Store>,
    exchange: Arc<Exchange>,
    clock: Arc<dyn Clock>,
    /// This node's name in leases (unique per process).
    owner: String,
    lease: Duration,
    batch: usize,
    data_dir: PathBuf,
    /// Woken when a message with an earlier deadline than the loop sleeps for is stored.
    wake: Arc<Notify>,
}

impl std::fmt::Debug for DeadlineRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadlineRunner")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// The longest the loop sleeps without looking (another node may have added rows, or a
/// lease lapsed).
pub const MAX_IDLE: Duration = Duration::from_secs(30);

impl DeadlineRunner {
    pub fn new(
        store: Arc<dyn Store>,
        exchange: Arc<Exchange>,
        clock: Arc<dyn Clock>,
        owner: String,
        data_dir: PathBuf,
    ) -> DeadlineRunner {
        let wake = exchange.deadline_wake();
        DeadlineRunner {
            store,
            exchange,
            clock,
            owner,
            lease: Duration::from_secs(60),
            batch: 1000,
            data_dir,
            wake,
        }
    }

    /// Claims and fires everything due at the clock's now, batch after batch; returns how
    /// many rows this node fired.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let mut fired = 0;
        loop {
            let now = self.clock.now();
            let claimed = self
                .store
                .claim_deadlines(
                    self.owner.clone(),
                    to_ms(now),
                    self.lease.as_millis() as i64,
                    self.batch,
                )
                .await?;
            let n = claimed.len();
            if n == 0 {
                return Ok(fired);
            }
            let firings: Vec<DeadlineFiring> =
                claimed.iter().map(|c| self.firing(c, now)).collect();
            let outcomes = self.store.fire_deadlines(firings).await?;
            for (c, o) in claimed.iter().zip(outcomes) {
                if let FireOutcome::Fired { attachments } = o {
                    fired += 1;
                    tracing::info!(
                        global_id = %crate::exchange::gid_string(&c.global_id),
                        kind = c.kind.name(),
                        "deadline fired"
                    );
                    crate::attachments::remove(&self.data_dir, &attachments);
                }
            }
            if n < self.batch {
                return Ok(fired);
            }
        }
    }

    fn firing(&self, c: &ClaimedDeadline, now: SystemTime) -> DeadlineFiring {
        let kind = (c.kind_namespace.as_str(), c.kind_root.as_str());
        let due = crate::clock::xs_datetime(from_ms(c.due_at_ms));
        let status = |system: &str, category: &str, details: &str| {
            self.exchange.status_message(
                now,
                system,
                &c.global_id,
                &c.sender_message_id,
                category,
                details,
                kind,
            )
        };
        let (mut statuses, event_type) = match c.kind {
            DeadlineKind::Reminder => (
                vec![status(
                    &c.recipient_system,
                    "deadlineReminder",
                    &format!("the reply to this request is due by {due}"),
                )],
                "deadline.reminder",
            ),
            DeadlineKind::Overdue => (
                vec![
                    status(
                        &c.recipient_system,
                        "deadlineOverdue",
                        &format!("the reply to this request was due by {due} and is overdue"),
                    ),
                    status(
                        &c.sender_system,
                        "deadlineOverdue",
                        &format!("the provider's reply was due by {due} and is overdue"),
                    ),
                ],
                "deadline.overdue",
            ),
            DeadlineKind::Expiry => (
                // The sender learns its message was never received; a gateway status has
                // no status of its own.
                if c.sender_system == self.exchange.broker_name() {
                    Vec::new()
                } else {
                    vec![status(
                        &c.sender_system,
                        "messageExpired",
                        &format!("the message was not received by its EOL {due} and was removed"),
                    )]
                },
                "message.expired",
            ),
        };
        if c.paper {
            // Registered from paper: the facts go to the journal, no one polls for statuses.
            statuses.clear();
        }
        let mut body = serde_json::Map::new();
        body.insert("due_at".into(), c.due_at_ms.into());
        body.insert("queue".into(), c.queue.name().into());
        body.insert("sender_system".into(), c.sender_system.clone().into());
        body.insert("recipient_system".into(), c.recipient_system.clone().into());
        body.insert(
            "kind".into(),
            serde_json::json!({ "namespace": c.kind_namespace, "root": c.kind_root }),
        );
        DeadlineFiring {
            global_id: c.global_id,
            kind: c.kind,
            owner: self.owner.clone(),
            now_ms: to_ms(now),
            statuses,
            event: NewEvent {
                at_ms: to_ms(now),
                event_type: event_type.into(),
                global_id: Some(c.global_id),
                actor: "gateway".into(),
                body,
            },
        }
    }

    /// The timer loop: fire what is due, sleep until the next row is due (at most
    /// [`MAX_IDLE`]) or until woken, until `stop` resolves.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        loop {
            // Registered before looking, so a wake-up between the look and the sleep is kept.
            let woken = self.wake.notified();
            let mut woken = std::pin::pin!(woken);
            woken.as_mut().enable();
            if let Err(e) = self.run_once().await {
                tracing::error!(error = %e, "firing deadlines failed; retrying");
            }
            let wait = match self.store.next_deadline_at().await {
                Ok(Some(at)) => {
                    let now = to_ms(self.clock.now());
                    self.clock
                        .real_wait(Duration::from_millis(u64::try_from(at - now).unwrap_or(0)))
                        .min(MAX_IDLE)
                }
                Ok(None) => MAX_IDLE,
                Err(e) => {
                    tracing::error!(error = %e, "reading the next deadline failed");
                    Duration::from_secs(1)
                }
            };
            if wait.is_zero() {
                // Due now but claimed by another node whose lease has not lapsed, or more
                // than one batch: look again without spinning hot.
                tokio::task::yield_now().await;
            }
            tokio::select! {
                () = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
                () = woken => {}
                () = &mut stop => return,
            }
        }
    }
}
