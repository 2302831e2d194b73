//! Evaluation reports (Penza 7.2, Kuzbass 7.2) computed from the journal alone
//! (docs/reports.md has the definitions this module implements).
//!
//! Invariants:
//! - The only input is the journal's events in `seq` order ([`Evaluation::push`]), the
//!   period, the report's `as_of`, the production calendar and the time zone: no card
//!   table, no queue state, no clock. The same journal and parameters give the same
//!   report.
//! - Events after `as_of` are ignored, so a report "as of" a past instant is what a report
//!   made at that instant would have said.
//! - Streaming: leaves are parsed one at a time and dropped; state is kept only for the
//!   requests in scope (received in the period, not test, matching the filter), the
//!   registry's system → agency map, and per-agency rejection counters.
//! - Test messages (`test` true) count nowhere; a gateway rejection carries no test mark
//!   (the refused message was never read as a request), so rejections always count.

use crate::calendar::{Calendar, Warning};
use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use mezhved_store::JournalEvent;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use thiserror::Error;

/// Why a report could not be made.
#[derive(Debug, Error)]
pub enum ReportError {
    #[error("invalid report parameters: {0}")]
    Invalid(String),
    #[error("journal event {seq}: {message}")]
    Corrupt { seq: u64, message: String },
}

/// A half-year (Kuzbass 7.2: the evaluation is semiannual, due by the 15th of the month
/// after the half-year).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HalfYear {
    pub year: i32,
    /// 1 or 2.
    pub half: u8,
}

impl HalfYear {
    /// `2026H1` or `2026H2` (the `H` in either case).
    pub fn parse(text: &str) -> Result<HalfYear, ReportError> {
        let bad = || {
            ReportError::Invalid(format!(
                "half-year \"{text}\": expected YYYYH1 or YYYYH2, e.g. 2026H2"
            ))
        };
        let t = text.trim();
        let (y, h) = t
            .split_once(['H', 'h'])
            .filter(|(y, _)| y.len() == 4)
            .ok_or_else(bad)?;
        let year: i32 = y.parse().map_err(|_| bad())?;
        let half = match h {
            "1" => 1,
            "2" => 2,
            _ => return Err(bad()),
        };
        // The period's end and the due date must exist.
        NaiveDate::from_ymd_opt(year + 1, 1, 15).ok_or_else(bad)?;
        Ok(HalfYear { year, half })
    }

    pub fn label(&self) -> String {
        format!("{}H{}", self.year, self.half)
    }

    /// The first day of the half-year.
    pub fn from(&self) -> NaiveDate {
        let month = if self.half == 1 { 1 } else { 7 };
        NaiveDate::from_ymd_opt(self.year, month, 1).unwrap_or(NaiveDate::MIN)
    }

    /// The first day after the half-year (the period is `[from, to)`).
    pub fn to(&self) -> NaiveDate {
        if self.half == 1 {
            NaiveDate::from_ymd_opt(self.year, 7, 1)
        } else {
            NaiveDate::from_ymd_opt(self.year + 1, 1, 1)
        }
        .unwrap_or(NaiveDate::MAX)
    }

    /// The day by which the evaluation is due: the 15th of the month after.
    pub fn evaluation_due(&self) -> NaiveDate {
        let to = self.to();
        NaiveDate::from_ymd_opt(to.year(), to.month(), 15).unwrap_or(NaiveDate::MAX)
    }
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct ReportParams {
    /// The period `[from, to)` in local dates of `time_zone`.
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The instant the report is made "as of" (ms since the epoch); later events are
    /// ignored.
    pub as_of_ms: i64,
    pub time_zone: Tz,
    /// Only rows of this agency (participant mnemonic), and only requests it sent or
    /// was to answer.
    pub agency: Option<String>,
    /// Only requests of kinds with this root element.
    pub kind_root: Option<String>,
    /// Set when the period is a half-year (it then must equal the half-year's dates).
    pub half_year: Option<HalfYear>,
}

/// A share of a whole: `part / whole`, `None` when there is no whole.
fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| ((part as f64 / whole as f64) * 10_000.0).round() / 10_000.0)
}

/// The value of nearest rank `ceil(p/100 · n)` (1-based) in sorted `values`.
pub fn nearest_rank(sorted: &[i64], percent: u64) -> Option<i64> {
    let n = sorted.len() as u64;
    if n == 0 {
        return None;
    }
    let rank = (percent * n).div_ceil(100).clamp(1, n);
    sorted.get((rank - 1) as usize).copied()
}

/// The figures of one requesting agency (its requests sent in the period).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SenderFigures {
    /// Requests accepted from the agency (electronic and paper), test excluded.
    pub requests: u64,
    /// Of those, paper requests (`queue` = `paper` or `card.paper`).
    pub paper: u64,
    /// Requests accepted through SendRequest (not registered by the operator).
    pub send_requests_accepted: u64,
    /// SendRequests of the agency's systems the gateway refused (`message.rejected`).
    pub send_requests_rejected: u64,
    /// The refusals by fault name.
    pub rejections_by_code: BTreeMap<String, u64>,
    /// `accepted / (accepted + rejected)`; `None` without any SendRequest, or with a
    /// kind filter (a refusal names no kind).
    pub well_formed_share: Option<f64>,
}

/// The figures of one providing agency (for one kind or all of them).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProviderFigures {
    /// Requests received in the period (test excluded).
    pub requests: u64,
    pub paper: u64,
    /// Requests with a final answer by `as_of`.
    pub answered: u64,
    /// The on-time denominator: requests with a deadline that were answered, or whose
    /// deadline passed, by `as_of` (and were not closed without an answer).
    pub evaluated: u64,
    /// Answered before the deadline.
    pub answered_on_time: u64,
    /// Answered at or after the deadline.
    pub answered_late: u64,
    /// `answered_on_time / evaluated`.
    pub on_time_share: Option<f64>,
    /// Final answers with data.
    pub data: u64,
    /// Final answers that were rejections (any code, NO_DATA included).
    pub rejections: u64,
    /// Of those, NO_DATA.
    pub no_data: u64,
    pub rejections_by_code: BTreeMap<String, u64>,
    /// `data / answered`.
    pub data_share: Option<f64>,
    /// Working days from receipt to the final answer, nearest rank.
    pub median_working_days: Option<i64>,
    pub p95_working_days: Option<i64>,
    /// Deadline passed by `as_of`, no final answer by then.
    pub open_overdue: u64,
    /// Deadline not yet passed, no final answer.
    pub open_not_due: u64,
    /// Deadline closed without a final answer before it: by a clarification (restart
    /// policy) or by expiry at the request's EOL. Outside the on-time figures.
    pub closed_without_answer: u64,
    /// Requests that got no deadline (deadlines not configured). Outside the on-time
    /// figures.
    pub without_deadline: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SenderRow {
    pub agency: String,
    pub agency_name: Option<String>,
    #[serde(flatten)]
    pub figures: SenderFigures,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct KindRef {
    pub namespace: String,
    pub root: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderRow {
    pub agency: String,
    pub agency_name: Option<String>,
    /// `None`: the agency's total over all kinds (it precedes the agency's kind rows).
    pub kind: Option<KindRef>,
    #[serde(flatten)]
    pub figures: ProviderFigures,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HalfYearInfo {
    pub label: String,
    pub evaluation_due: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    pub senders: SenderFigures,
    pub providers: ProviderFigures,
}

/// An evaluation report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The period's first day (local date).
    pub from: String,
    /// The first day after the period.
    pub to: String,
    pub time_zone: String,
    /// The period as instants (ms), `[from_ms, to_ms)`.
    pub from_ms: i64,
    pub to_ms: i64,
    pub as_of: String,
    pub as_of_ms: i64,
    /// Whether `as_of` is at or after the period's end (later requests' deadlines may
    /// still be running either way).
    pub period_closed: bool,
    pub half_year: Option<HalfYearInfo>,
    pub agency: Option<String>,
    pub kind_root: Option<String>,
    /// Journal events read (the journal's size when the report was made).
    pub events_read: u64,
    /// Test requests received in the period and left out.
    pub test_requests_excluded: u64,
    pub senders: Vec<SenderRow>,
    pub providers: Vec<ProviderRow>,
    pub totals: Totals,
    /// Years the production calendar does not cover that answer times touched.
    pub warnings: Vec<Warning>,
}

/// A final answer to a request.
#[derive(Debug, Clone)]
struct FinalAnswer {
    at_ms: i64,
    data: bool,
    code: Option<String>,
}

/// What is kept per request in scope.
#[derive(Debug, Clone)]
struct RequestState {
    sender: String,
    provider: String,
    kind: (String, String),
    received_ms: i64,
    due_ms: Option<i64>,
    paper: bool,
    electronic: bool,
    answer: Option<FinalAnswer>,
    /// The deadline closed without a final answer (clarification, expiry).
    closed_ms: Option<i64>,
}

#[derive(Debug, Default)]
struct SenderAcc {
    requests: u64,
    paper: u64,
    accepted: u64,
    rejected: u64,
    codes: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct ProviderAcc {
    f: ProviderFigures,
    days: Vec<i64>,
}

/// A report in the making: push the journal's events in `seq` order, then [`finish`].
///
/// [`finish`]: Evaluation::finish
#[derive(Debug)]
pub struct Evaluation<'a> {
    params: ReportParams,
    calendar: &'a Calendar,
    from_ms: i64,
    to_ms: i64,
    /// System mnemonic → participant mnemonic, as the registry stands.
    systems: HashMap<String, String>,
    /// Participant mnemonic → name (the latest known; deleted participants keep theirs).
    names: HashMap<String, String>,
    kind_names: HashMap<(String, String), String>,
    requests: HashMap<String, RequestState>,
    rejected: BTreeMap<String, SenderAcc>,
    test_excluded: u64,
    events: u64,
}

fn str_of<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()
}

fn i64_of(v: &Value, path: &[&str]) -> Option<i64> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_i64()
}

fn bool_of(v: &Value, path: &[&str]) -> bool {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn local_date(ms: i64, tz: Tz) -> NaiveDate {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.with_timezone(&tz).date_naive())
        .unwrap_or(NaiveDate::MIN)
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

impl<'a> Evaluation<'a> {
    pub fn new(
        params: ReportParams,
        calendar: &'a Calendar,
    ) -> Result<Evaluation<'a>, ReportError> {
        if params.from >= params.to {
            return Err(ReportError::Invalid(format!(
                "the period [{}, {}) is empty: `to` is the first day after the period",
                params.from, params.to
            )));
        }
        if let Some(h) = params.half_year {
            if (h.from(), h.to()) != (params.from, params.to) {
                return Err(ReportError::Invalid(format!(
                    "half-year {} is [{}, {}), not [{}, {})",
                    h.label(),
                    h.from(),
                    h.to(),
                    params.from,
                    params.to
                )));
            }
        }
        let tz = params.time_zone;
        let from_ms = crate::calendar::start_of_day(params.from, tz).timestamp_millis();
        let to_ms = crate::calendar::start_of_day(params.to, tz).timestamp_millis();
        Ok(Evaluation {
            params,
            calendar,
            from_ms,
            to_ms,
            systems: HashMap::new(),
            names: HashMap::new(),
            kind_names: HashMap::new(),
            requests: HashMap::new(),
            rejected: BTreeMap::new(),
            test_excluded: 0,
            events: 0,
        })
    }

    fn in_period(&self, at_ms: i64) -> bool {
        at_ms >= self.from_ms && at_ms < self.to_ms
    }

    /// The agency a system belonged to when the registry stood as replayed so far; an
    /// unregistered system stands for itself.
    fn agency_of(&self, system: &str) -> String {
        self.systems
            .get(system)
            .cloned()
            .unwrap_or_else(|| system.to_string())
    }

    fn agency_wanted(&self, agency: &str) -> bool {
        self.params.agency.as_deref().is_none_or(|a| a == agency)
    }

    /// Takes the next event (in `seq` order).
    pub fn push(&mut self, event: &JournalEvent) -> Result<(), ReportError> {
        self.events += 1;
        if event.at_ms > self.params.as_of_ms {
            return Ok(());
        }
        // Only these types matter; the others are not even parsed.
        if !matches!(
            event.event_type.as_str(),
            "message.accepted" | "message.rejected" | "message.expired" | "registry.changed"
        ) {
            return Ok(());
        }
        let leaf: Value =
            serde_json::from_slice(&event.leaf).map_err(|e| ReportError::Corrupt {
                seq: event.seq,
                message: format!("the leaf is not JSON: {e}"),
            })?;
        match event.event_type.as_str() {
            "registry.changed" => self.registry_changed(&leaf),
            "message.rejected" => self.rejected(event, &leaf),
            "message.expired" => {
                if let Some(r) =
                    str_of(&leaf, &["global_id"]).and_then(|g| self.requests.get_mut(g))
                {
                    if r.answer.is_none() && r.closed_ms.is_none() {
                        r.closed_ms = Some(event.at_ms);
                    }
                }
            }
            _ => match str_of(&leaf, &["card", "message_type"]) {
                Some("REQUEST") => self.request(event, &leaf),
                Some("RESPONSE") => self.response(event, &leaf),
                _ => {}
            },
        }
        Ok(())
    }

    fn registry_changed(&mut self, leaf: &Value) {
        let Some(changes) = leaf.get("changes").and_then(Value::as_array) else {
            return;
        };
        for c in changes {
            let mnemonic = str_of(c, &["mnemonic"]).unwrap_or_default().to_string();
            match str_of(c, &["op"]) {
                Some("put_system") => {
                    if let Some(p) = str_of(c, &["participant"]) {
                        self.systems.insert(mnemonic, p.to_string());
                    }
                }
                Some("delete_system") => {
                    self.systems.remove(&mnemonic);
                }
                Some("put_participant") => {
                    if let Some(n) = str_of(c, &["name"]) {
                        self.names.insert(mnemonic, n.to_string());
                    }
                }
                Some("put_kind") => {
                    if let (Some(ns), Some(root), Some(name)) = (
                        str_of(c, &["namespace"]),
                        str_of(c, &["root_element"]),
                        str_of(c, &["name"]),
                    ) {
                        self.kind_names
                            .insert((ns.to_string(), root.to_string()), name.to_string());
                    }
                }
                _ => {}
            }
        }
    }

    fn rejected(&mut self, event: &JournalEvent, leaf: &Value) {
        if str_of(leaf, &["operation"]) != Some("SendRequest") || !self.in_period(event.at_ms) {
            return;
        }
        let agency = self.agency_of(&event.actor);
        if !self.agency_wanted(&agency) {
            return;
        }
        let acc = self.rejected.entry(agency).or_default();
        acc.rejected += 1;
        let code = str_of(leaf, &["code"]).unwrap_or("unknown").to_string();
        *acc.codes.entry(code).or_default() += 1;
    }

    fn request(&mut self, event: &JournalEvent, leaf: &Value) {
        let received_ms = i64_of(leaf, &["received_at"]).unwrap_or(event.at_ms);
        if !self.in_period(received_ms) {
            return;
        }
        let kind = (
            str_of(leaf, &["kind", "namespace"])
                .unwrap_or_default()
                .to_string(),
            str_of(leaf, &["kind", "root"])
                .unwrap_or_default()
                .to_string(),
        );
        if self
            .params
            .kind_root
            .as_deref()
            .is_some_and(|r| r != kind.1)
        {
            return;
        }
        if bool_of(leaf, &["test"]) {
            self.test_excluded += 1;
            return;
        }
        let sender_system = str_of(leaf, &["sender_system"]).unwrap_or(&event.actor);
        let sender = str_of(leaf, &["card", "sender_agency"])
            .map(str::to_string)
            .unwrap_or_else(|| self.agency_of(sender_system));
        let provider = str_of(leaf, &["card", "recipient_agency"])
            .map(str::to_string)
            .unwrap_or_else(|| self.agency_of(str_of(leaf, &["recipient_system"]).unwrap_or("")));
        if !(self.agency_wanted(&sender) || self.agency_wanted(&provider)) {
            return;
        }
        if let Some(name) = str_of(leaf, &["card", "kind_name"]).filter(|n| !n.is_empty()) {
            self.kind_names.insert(kind.clone(), name.to_string());
        }
        let Some(gid) = str_of(leaf, &["global_id"]) else {
            return;
        };
        let queue = str_of(leaf, &["queue"]).unwrap_or_default();
        self.requests.insert(
            gid.to_string(),
            RequestState {
                sender,
                provider,
                kind,
                received_ms,
                due_ms: i64_of(leaf, &["card", "due_at_ms"]),
                paper: queue == "paper" || bool_of(leaf, &["card", "paper"]),
                electronic: queue != "paper",
                answer: None,
                closed_ms: None,
            },
        );
    }

    fn response(&mut self, event: &JournalEvent, leaf: &Value) {
        let original = str_of(leaf, &["original_global_id"])
            .or_else(|| str_of(leaf, &["card", "original_global_id"]));
        let Some(r) = original.and_then(|g| self.requests.get_mut(g)) else {
            return;
        };
        if r.answer.is_some() {
            // Only the first final answer counts.
            return;
        }
        let at_ms = i64_of(leaf, &["received_at"]).unwrap_or(event.at_ms);
        if bool_of(leaf, &["card", "final"]) {
            r.answer = Some(FinalAnswer {
                at_ms,
                data: str_of(leaf, &["card", "response_kind"]) == Some("data"),
                code: str_of(leaf, &["card", "rejection_code"]).map(str::to_string),
            });
        } else if bool_of(leaf, &["card", "closes_deadline"]) && r.closed_ms.is_none() {
            r.closed_ms = Some(at_ms);
        }
    }

    /// The report.
    pub fn finish(self) -> Report {
        let tz = self.params.time_zone;
        let as_of = self.params.as_of_ms;
        let mut senders: BTreeMap<String, SenderAcc> = self.rejected;
        let mut providers: BTreeMap<(String, Option<(String, String)>), ProviderAcc> =
            BTreeMap::new();
        let mut total = ProviderAcc::default();
        let mut uncovered: BTreeSet<i32> = BTreeSet::new();
        // Deterministic order of the per-request loop (the answer-time lists are sorted
        // anyway; this keeps any future order-sensitive figure stable).
        let mut requests: Vec<RequestState> = self.requests.into_values().collect();
        requests.sort_by_key(|r| r.received_ms);
        let agency_filter = self.params.agency.as_deref();
        let wanted = |a: &str| agency_filter.is_none_or(|f| f == a);
        for r in &requests {
            if wanted(&r.sender) {
                let s = senders.entry(r.sender.clone()).or_default();
                s.requests += 1;
                s.paper += u64::from(r.paper);
                s.accepted += u64::from(r.electronic);
            }
            if !wanted(&r.provider) {
                continue;
            }
            let days = r.answer.as_ref().map(|a| {
                let (d0, d1) = (local_date(r.received_ms, tz), local_date(a.at_ms, tz));
                for y in d0.year()..=d1.year() {
                    if !self.calendar.covers(y) {
                        uncovered.insert(y);
                    }
                }
                self.calendar.working_days_between(d0, d1)
            });
            add_request(
                providers.entry((r.provider.clone(), None)).or_default(),
                r,
                as_of,
                days,
            );
            add_request(
                providers
                    .entry((r.provider.clone(), Some(r.kind.clone())))
                    .or_default(),
                r,
                as_of,
                days,
            );
            add_request(&mut total, r, as_of, days);
        }
        let name = |a: &str| self.names.get(a).cloned();
        let kind_ref = |k: &(String, String)| KindRef {
            namespace: k.0.clone(),
            root: k.1.clone(),
            name: self.kind_names.get(k).cloned(),
        };
        let kind_filtered = self.params.kind_root.is_some();
        let sender_figures = |s: &SenderAcc| SenderFigures {
            requests: s.requests,
            paper: s.paper,
            send_requests_accepted: s.accepted,
            send_requests_rejected: s.rejected,
            rejections_by_code: s.codes.clone(),
            well_formed_share: if kind_filtered {
                None
            } else {
                share(s.accepted, s.accepted + s.rejected)
            },
        };
        let mut sender_total = SenderAcc::default();
        let sender_rows: Vec<SenderRow> = senders
            .iter()
            .map(|(agency, s)| {
                sender_total.requests += s.requests;
                sender_total.paper += s.paper;
                sender_total.accepted += s.accepted;
                sender_total.rejected += s.rejected;
                for (c, n) in &s.codes {
                    *sender_total.codes.entry(c.clone()).or_default() += n;
                }
                SenderRow {
                    agency: agency.clone(),
                    agency_name: name(agency),
                    figures: sender_figures(s),
                }
            })
            .collect();
        let provider_rows: Vec<ProviderRow> = providers
            .into_iter()
            .map(|((agency, kind), acc)| ProviderRow {
                agency_name: name(&agency),
                agency,
                kind: kind.as_ref().map(kind_ref),
                figures: acc.figures(),
            })
            .collect();
        Report {
            from: self.params.from.to_string(),
            to: self.params.to.to_string(),
            time_zone: tz.name().to_string(),
            from_ms: self.from_ms,
            to_ms: self.to_ms,
            as_of: rfc3339(as_of),
            as_of_ms: as_of,
            period_closed: as_of >= self.to_ms,
            half_year: self.params.half_year.map(|h| HalfYearInfo {
                label: h.label(),
                evaluation_due: h.evaluation_due().to_string(),
            }),
            agency: self.params.agency.clone(),
            kind_root: self.params.kind_root.clone(),
            events_read: self.events,
            test_requests_excluded: self.test_excluded,
            senders: sender_rows,
            providers: provider_rows,
            totals: Totals {
                senders: sender_figures(&sender_total),
                providers: total.figures(),
            },
            warnings: uncovered
                .into_iter()
                .map(|year| Warning::NoCalendarData { year })
                .collect(),
        }
    }
}

fn add_request(acc: &mut ProviderAcc, r: &RequestState, as_of: i64, days: Option<i64>) {
    let f = &mut acc.f;
    f.requests += 1;
    f.paper += u64::from(r.paper);
    if let Some(a) = &r.answer {
        f.answered += 1;
        if a.data {
            f.data += 1;
        } else {
            f.rejections += 1;
            let code = a.code.clone().unwrap_or_else(|| "unknown".into());
            if code == "NO_DATA" {
                f.no_data += 1;
            }
            *f.rejections_by_code.entry(code).or_default() += 1;
        }
    }
    if let Some(d) = days {
        acc.days.push(d);
    }
    // The deadline figures.
    let closed_first = match (&r.answer, r.closed_ms) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(a), Some(c)) => c < a.at_ms,
    };
    if closed_first {
        f.closed_without_answer += 1;
        return;
    }
    let Some(due) = r.due_ms else {
        f.without_deadline += 1;
        return;
    };
    match &r.answer {
        Some(a) => {
            f.evaluated += 1;
            // As the gateway's `late` mark: the deadline instant itself (00:00 after the
            // last day) is late.
            if a.at_ms < due {
                f.answered_on_time += 1;
            } else {
                f.answered_late += 1;
            }
        }
        None if due <= as_of => {
            f.evaluated += 1;
            f.open_overdue += 1;
        }
        None => f.open_not_due += 1,
    }
}

impl ProviderAcc {
    fn figures(mut self) -> ProviderFigures {
        self.days.sort_unstable();
        let mut f = self.f;
        f.on_time_share = share(f.answered_on_time, f.evaluated);
        f.data_share = share(f.data, f.answered);
        f.median_working_days = nearest_rank(&self.days, 50);
        f.p95_working_days = nearest_rank(&self.days, 95);
        f
    }
}

/// The whole report from an iterator of events in `seq` order.
pub fn evaluate<I>(
    events: I,
    params: ReportParams,
    calendar: &Calendar,
) -> Result<Report, ReportError>
where
    I: IntoIterator<Item = JournalEvent>,
{
    let mut e = Evaluation::new(params, calendar)?;
    for event in events {
        e.push(&event)?;
    }
    Ok(e.finish())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mezhved_store::journal::encode_leaf;
    use mezhved_store::NewEvent;
    use serde_json::json;

    const TZ: Tz = crate::calendar::DEFAULT_TZ;

    fn ms(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    fn gid(n: u8) -> [u8; 16] {
        [n; 16]
    }

    fn gid_text(n: u8) -> String {
        mezhved_store::journal::uuid_text(&gid(n))
    }

    /// Builds journal events as the gateway writes them.
    #[derive(Default)]
    struct Journal {
        events: Vec<JournalEvent>,
    }

    impl Journal {
        fn push(&mut self, at: i64, ty: &str, global: Option<[u8; 16]>, actor: &str, body: Value) {
            let seq = self.events.len() as u64;
            let e = NewEvent {
                at_ms: at,
                event_type: ty.into(),
                global_id: global,
                actor: actor.into(),
                body: body.as_object().unwrap().clone(),
            };
            let leaf = encode_leaf(seq, &e).unwrap();
            self.events.push(JournalEvent {
                seq,
                at_ms: at,
                event_type: ty.into(),
                global_id: global,
                actor: actor.into(),
                leaf,
            });
        }

        fn registry(&mut self, at: i64) {
            self.push(
                at,
                "registry.changed",
                None,
                "registry-file",
                json!({"version": 1, "changes": [
                    {"op": "put_participant", "mnemonic": "USZN", "name": "Social Protection"},
                    {"op": "put_participant", "mnemonic": "ZAGS", "name": "Civil Registry"},
                    {"op": "put_system", "mnemonic": "USZN_IS", "participant": "USZN", "name": "u", "certificates": []},
                    {"op": "put_system", "mnemonic": "ZAGS_IS", "participant": "ZAGS", "name": "z", "certificates": []},
                ]}),
            );
        }

        fn request(&mut self, n: u8, at: &str, due: &str, test: bool, queue: &str) {
            let at = ms(at);
            self.push(
                at,
                "message.accepted",
                Some(gid(n)),
                "USZN_IS",
                json!({
                    "queue": queue, "sender_system": "USZN_IS", "recipient_system": "ZAGS_IS",
                    "kind": {"namespace": "urn:birth", "root": "BirthRecordRequest"},
                    "received_at": at, "test": test, "status": "requestIsQueued",
                    "card": {"message_type": "REQUEST", "sender_agency": "USZN",
                             "recipient_agency": "ZAGS", "due_at_ms": ms(due),
                             "kind_name": "Birth record", "paper": queue == "paper"},
                }),
            );
        }

        fn response(&mut self, n: u8, original: u8, at: &str, kind: &str, code: Option<&str>) {
            let at = ms(at);
            let fin = kind != "status";
            self.push(
                at,
                "message.accepted",
                Some(gid(n)),
                "ZAGS_IS",
                json!({
                    "queue": "responses", "sender_system": "ZAGS_IS", "recipient_system": "USZN_IS",
                    "kind": {"namespace": "urn:birth", "root": "BirthRecordRequest"},
                    "original_global_id": gid_text(original),
                    "received_at": at, "test": false, "status": "responseIsAcceptedBySmev",
                    "card": {"message_type": "RESPONSE", "final": fin, "response_kind": kind,
                             "rejection_code": code, "late": false, "closes_deadline": fin,
                             "original_global_id": gid_text(original)},
                }),
            );
        }

        fn rejected(&mut self, at: &str, actor: &str, operation: &str, code: &str) {
            self.push(
                ms(at),
                "message.rejected",
                None,
                actor,
                json!({"operation": operation, "code": code, "fault": "client"}),
            );
        }
    }

    fn cal() -> Calendar {
        Calendar::builtin_ru_federal().unwrap()
    }

    fn params(as_of: &str) -> ReportParams {
        ReportParams {
            from: NaiveDate::from_ymd_opt(2026, 7, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
            as_of_ms: ms(as_of),
            time_zone: TZ,
            agency: None,
            kind_root: None,
            half_year: Some(HalfYear::parse("2026H2").unwrap()),
        }
    }

    /// The hand-built journal. Dates (Moscow, UTC+3; 2026 federal calendar): the
    /// requests are received Wednesday 2026-12-02 10:00 (07:00Z) and due five working
    /// days later, by the end of Wednesday 2026-12-09 (2026-12-09T21:00Z).
    ///
    /// 1. 12-02 07:00Z: USZN_IS's first SendRequest is refused (InvalidContent), then
    ///    resent and accepted as request 1; answered with data 12-02 12:00Z (same day:
    ///    0 working days).
    /// 2. request 2: data on 12-04 (Fri) 09:00Z: 2 working days (Thu, Fri).
    /// 3. request 3: an intermediate status 12-03, then data on 12-08 (Tue) 09:00Z:
    ///    4 working days (Thu, Fri, Mon, Tue). The status changes nothing.
    /// 4. request 4: NO_DATA on 12-11 (Fri) 08:00Z: late; 7 working days (Thu 3, Fri 4,
    ///    Mon 7, Tue 8, Wed 9, Thu 10, Fri 11).
    /// 5. request 5: no answer: open overdue as of 12-15.
    /// 6. request 6: a test request, answered: excluded everywhere.
    ///
    /// Also outside the figures: a request received 2026-06-30 (before the period) and its
    /// answer; a SendResponse refusal (not a SendRequest); a second final answer to
    /// request 1.
    fn journal() -> Journal {
        let mut j = Journal::default();
        j.registry(ms("2026-01-01T00:00:00Z"));
        let due = "2026-12-09T21:00:00Z";
        j.request(
            9,
            "2026-06-30T07:00:00Z",
            "2026-07-07T21:00:00Z",
            false,
            "requests",
        );
        j.response(109, 9, "2026-07-01T07:00:00Z", "data", None);
        j.rejected(
            "2026-12-02T06:59:00Z",
            "USZN_IS",
            "SendRequest",
            "InvalidContent",
        );
        for n in 1..=5 {
            j.request(n, "2026-12-02T07:00:00Z", due, false, "requests");
        }
        j.request(6, "2026-12-02T07:00:00Z", due, true, "requests");
        j.response(101, 1, "2026-12-02T12:00:00Z", "data", None);
        j.response(201, 1, "2026-12-02T13:00:00Z", "rejection", Some("FAILURE"));
        j.response(103, 3, "2026-12-03T09:00:00Z", "status", None);
        j.response(102, 2, "2026-12-04T09:00:00Z", "data", None);
        j.response(106, 6, "2026-12-04T09:00:00Z", "rejection", Some("NO_DATA"));
        j.rejected(
            "2026-12-05T09:00:00Z",
            "ZAGS_IS",
            "SendResponse",
            "InvalidContent",
        );
        j.response(203, 3, "2026-12-08T09:00:00Z", "data", None);
        j.response(104, 4, "2026-12-11T08:00:00Z", "rejection", Some("NO_DATA"));
        j
    }

    #[test]
    fn hand_computed_figures() {
        let j = journal();
        let n = j.events.len() as u64;
        let r = evaluate(j.events, params("2026-12-15T12:00:00Z"), &cal()).unwrap();
        assert_eq!(r.events_read, n);
        assert_eq!(r.test_requests_excluded, 1);
        assert_eq!(r.from_ms, ms("2026-06-30T21:00:00Z"), "00:00 Moscow time");
        assert!(!r.period_closed);
        assert_eq!(
            r.half_year,
            Some(HalfYearInfo {
                label: "2026H2".into(),
                evaluation_due: "2027-01-15".into()
            })
        );

        // USZN sent 5 requests (the test one excluded), all through SendRequest; one
        // SendRequest refused: well-formed 5 / (5 + 1) = 0.8333.
        assert_eq!(r.senders.len(), 1);
        let s = &r.senders[0];
        assert_eq!(
            (s.agency.as_str(), s.agency_name.as_deref()),
            ("USZN", Some("Social Protection"))
        );
        assert_eq!(s.figures.requests, 5);
        assert_eq!(s.figures.paper, 0);
        assert_eq!(s.figures.send_requests_accepted, 5);
        assert_eq!(s.figures.send_requests_rejected, 1);
        assert_eq!(s.figures.rejections_by_code["InvalidContent"], 1);
        assert_eq!(s.figures.well_formed_share, Some(0.8333));

        // ZAGS: the agency total and one kind row, the same figures.
        assert_eq!(r.providers.len(), 2);
        assert!(r.providers[0].kind.is_none());
        assert_eq!(
            r.providers[1].kind.as_ref().and_then(|k| k.name.as_deref()),
            Some("Birth record")
        );
        assert_eq!(r.providers[0].figures, r.providers[1].figures);
        let f = &r.providers[0].figures;
        assert_eq!(f.requests, 5);
        // Answered: 1, 2, 3 (data), 4 (NO_DATA). Evaluated: those 4 plus the overdue 5.
        assert_eq!(f.answered, 4);
        assert_eq!(f.evaluated, 5);
        assert_eq!((f.answered_on_time, f.answered_late), (3, 1));
        assert_eq!(f.on_time_share, Some(0.6));
        // Data: 3 of 4 final answers; the rejection is NO_DATA (request 1's FAILURE
        // came after its first final answer and does not count).
        assert_eq!((f.data, f.rejections, f.no_data), (3, 1, 1));
        assert_eq!(f.rejections_by_code.get("FAILURE"), None);
        assert_eq!(f.data_share, Some(0.75));
        // Working days sorted: [0, 2, 4, 7]: median rank ceil(2) = 2 → 2; p95 rank
        // ceil(3.8) = 4 → 7.
        assert_eq!(f.median_working_days, Some(2));
        assert_eq!(f.p95_working_days, Some(7));
        assert_eq!((f.open_overdue, f.open_not_due), (1, 0));
        assert_eq!((f.closed_without_answer, f.without_deadline), (0, 0));
        assert_eq!(&r.totals.providers, f);
        assert_eq!(r.totals.senders, s.figures);
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn as_of_hides_later_events() {
        // As of 12-09 12:00Z: request 4's answer has not come and its deadline has not
        // passed (open, not due); neither has request 5's.
        let r = evaluate(journal().events, params("2026-12-09T12:00:00Z"), &cal()).unwrap();
        let f = &r.totals.providers;
        assert_eq!((f.answered, f.evaluated, f.answered_on_time), (3, 3, 3));
        assert_eq!((f.open_overdue, f.open_not_due), (0, 2));
        assert_eq!(f.on_time_share, Some(1.0));
        // The deadline instant itself is overdue.
        let r = evaluate(journal().events, params("2026-12-09T21:00:00Z"), &cal()).unwrap();
        assert_eq!(r.totals.providers.open_overdue, 2);
    }

    #[test]
    fn filters() {
        let mut p = params("2026-12-15T12:00:00Z");
        p.agency = Some("ZAGS".into());
        let r = evaluate(journal().events, p, &cal()).unwrap();
        assert!(r.senders.is_empty(), "ZAGS sent nothing");
        assert_eq!(r.providers[0].figures.requests, 5);
        let mut p = params("2026-12-15T12:00:00Z");
        p.kind_root = Some("Other".into());
        let r = evaluate(journal().events, p, &cal()).unwrap();
        assert_eq!(r.totals.providers.requests, 0);
        // The refusal names no kind: counted, but no share with a kind filter.
        assert_eq!(r.senders[0].figures.send_requests_rejected, 1);
        assert_eq!(r.senders[0].figures.well_formed_share, None);
    }

    #[test]
    fn paper_clarification_and_expiry() {
        let mut j = Journal::default();
        j.registry(0);
        let due = "2026-12-09T21:00:00Z";
        j.request(1, "2026-12-02T07:00:00Z", due, false, "paper");
        j.request(2, "2026-12-02T07:00:00Z", due, false, "requests");
        j.request(3, "2026-12-02T07:00:00Z", due, false, "requests");
        // Request 2: a clarification that closes the deadline (restart policy).
        let mut clarify = json!({
            "original_global_id": gid_text(2), "received_at": ms("2026-12-03T07:00:00Z"),
            "card": {"message_type": "RESPONSE", "final": false, "response_kind": "status",
                     "closes_deadline": true, "clarification": true},
        });
        clarify["test"] = false.into();
        j.push(
            ms("2026-12-03T07:00:00Z"),
            "message.accepted",
            Some(gid(102)),
            "ZAGS_IS",
            clarify,
        );
        // Request 3 expires undelivered.
        j.push(
            ms("2026-12-02T08:00:00Z"),
            "message.expired",
            Some(gid(3)),
            "gateway",
            json!({"due_at": 0}),
        );
        let r = evaluate(j.events, params("2026-12-15T00:00:00Z"), &cal()).unwrap();
        let s = &r.senders[0].figures;
        assert_eq!((s.requests, s.paper, s.send_requests_accepted), (3, 1, 2));
        assert_eq!(s.well_formed_share, Some(1.0));
        let f = &r.totals.providers;
        assert_eq!((f.requests, f.paper), (3, 1));
        assert_eq!(f.closed_without_answer, 2);
        assert_eq!(
            (f.evaluated, f.open_overdue),
            (1, 1),
            "only the paper request"
        );
    }

    #[test]
    fn half_years_and_ranks() {
        let h = HalfYear::parse("2026h1").unwrap();
        assert_eq!(h.from().to_string(), "2026-01-01");
        assert_eq!(h.to().to_string(), "2026-07-01");
        assert_eq!(h.evaluation_due().to_string(), "2026-07-15");
        let h = HalfYear::parse("2026H2").unwrap();
        assert_eq!(h.to().to_string(), "2027-01-01");
        assert_eq!(h.evaluation_due().to_string(), "2027-01-15");
        for bad in ["2026", "2026H3", "26H1", "2026-H1", "H2"] {
            assert!(HalfYear::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&[5], 95), Some(5));
        let v: Vec<i64> = (1..=20).collect();
        assert_eq!(nearest_rank(&v, 50), Some(10));
        assert_eq!(nearest_rank(&v, 95), Some(19));
        let mut p = params("2026-12-15T00:00:00Z");
        p.to = p.from;
        assert!(Evaluation::new(p, &cal()).is_err());
        let mut p = params("2026-12-15T00:00:00Z");
        p.to = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert!(Evaluation::new(p, &cal()).is_err(), "not the half-year");
    }
}
