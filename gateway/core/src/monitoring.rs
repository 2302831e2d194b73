//! Operator monitoring, the pure part (docs/monitoring.md): what the exchange records about
//! each system's calls ([`Monitor`], in memory, one short lock per call), the maintenance
//! switch the exchange obeys, and the rules that turn measurements into a traffic light
//! ([`assess`]) and into alert conditions ([`alert_conditions`], [`plan_alerts`]).
//!
//! Architecture invariant: no I/O and no clock here. Every function takes `now_ms`; the
//! HTTP layer reads the store and the injected clock, then calls these rules, so they are
//! unit-tested with plain numbers.

use mezhved_store::Queue;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, RwLock};

/// How many recent call outcomes are kept per system (older ones fall off; the window
/// rates are computed over what is kept and inside the window).
const OUTCOMES_PER_SYSTEM: usize = 4096;

/// What happened to one call of a system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Answered with a fault.
    Fault,
    /// A SendRequest/SendResponse refused (journaled as `message.rejected`): also a fault.
    Rejected,
}

/// How many kinds' last drains are kept per system: a GetResponse may select any
/// namespace and root, so the map is bounded (the least recent falls off).
const KIND_DRAINS_PER_SYSTEM: usize = 256;

/// What a call does for the polling rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll<'a> {
    /// Not a Get… call.
    No,
    /// GetStatus or GetIncomingQueueStatistics: the system is alive, but no queue is
    /// drained by it.
    Look,
    /// GetRequest (the requests queue) or GetResponse (the responses queue): drains every
    /// kind of that queue (`None`) or the selected one.
    Drain {
        queue: Queue,
        selector: Option<(&'a str, &'a str)>,
    },
}

#[derive(Debug, Default, Clone)]
struct Activity {
    last_poll_ms: Option<i64>,
    last_success_ms: Option<i64>,
    outcomes: VecDeque<(i64, Outcome)>,
    drains: Drains,
}

/// When a system last drained its queues: per queue, without a selector (every kind)
/// and per kind selected. Only answered GetRequest/GetResponse calls count.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drains {
    pub every_kind_ms: HashMap<Queue, i64>,
    pub kinds: HashMap<(Queue, String, String), i64>,
}

impl Drains {
    /// The last drain of `queue` that took messages of this kind.
    pub fn covering(&self, queue: Queue, namespace: &str, root: &str) -> Option<i64> {
        let selected = self
            .kinds
            .get(&(queue, namespace.to_string(), root.to_string()))
            .copied();
        self.every_kind_ms.get(&queue).copied().max(selected)
    }

    fn record(&mut self, queue: Queue, selector: Option<(&str, &str)>, now_ms: i64) {
        match selector {
            None => {
                self.every_kind_ms.insert(queue, now_ms);
            }
            // A selector of nothing selects no kind of the registry.
            Some(("", "")) => {}
            Some((ns, root)) => {
                let key = (queue, ns.to_string(), root.to_string());
                if let Some(at) = self.kinds.get_mut(&key) {
                    *at = now_ms;
                    return;
                }
                if self.kinds.len() >= KIND_DRAINS_PER_SYSTEM {
                    if let Some(oldest) = self
                        .kinds
                        .iter()
                        .min_by_key(|(_, at)| **at)
                        .map(|(k, _)| k.clone())
                    {
                        self.kinds.remove(&oldest);
                    }
                }
                self.kinds.insert(key, now_ms);
            }
        }
    }
}

/// The operator's maintenance switch as the exchange sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Maintenance {
    pub enabled: bool,
    pub reason: String,
    /// When it was last switched (ms).
    pub since_ms: i64,
}

/// What one system did recently (a copy, taken under the lock).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivitySummary {
    pub last_poll_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    pub calls: u64,
    pub faults: u64,
    pub rejections: u64,
}

/// Per-system call activity and the maintenance switch, shared by the exchange (which
/// records) and the monitoring API (which reads). Since the process started: a restart
/// forgets the last poll, which the rules treat as "never polled since the start".
#[derive(Debug, Default)]
pub struct Monitor {
    activity: Mutex<HashMap<String, Activity>>,
    maintenance: RwLock<Option<Maintenance>>,
}

impl Monitor {
    /// Records an authenticated call of `system`. Any Get… call is a poll (the system is
    /// alive); an answered GetRequest/GetResponse also drains its queue, for every kind or
    /// the selected one.
    pub fn record(&self, system: &str, poll: Poll<'_>, outcome: Outcome, now_ms: i64) {
        let Ok(mut map) = self.activity.lock() else {
            return;
        };
        let a = match map.get_mut(system) {
            Some(a) => a,
            None => map.entry(system.to_string()).or_default(),
        };
        if poll != Poll::No {
            a.last_poll_ms = Some(now_ms);
        }
        if let (Poll::Drain { queue, selector }, Outcome::Ok) = (poll, outcome) {
            a.drains.record(queue, selector, now_ms);
        }
        if outcome == Outcome::Ok {
            a.last_success_ms = Some(now_ms);
        }
        if a.outcomes.len() >= OUTCOMES_PER_SYSTEM {
            a.outcomes.pop_front();
        }
        a.outcomes.push_back((now_ms, outcome));
    }

    /// What `system` did, its rates counted over calls since `since_ms`.
    pub fn summary(&self, system: &str, since_ms: i64) -> ActivitySummary {
        let Ok(map) = self.activity.lock() else {
            return ActivitySummary::default();
        };
        let Some(a) = map.get(system) else {
            return ActivitySummary::default();
        };
        let mut s = ActivitySummary {
            last_poll_ms: a.last_poll_ms,
            last_success_ms: a.last_success_ms,
            ..ActivitySummary::default()
        };
        for (at, o) in a.outcomes.iter().rev() {
            if *at < since_ms {
                break;
            }
            s.calls += 1;
            match o {
                Outcome::Ok => {}
                Outcome::Fault => s.faults += 1,
                Outcome::Rejected => {
                    s.faults += 1;
                    s.rejections += 1;
                }
            }
        }
        s
    }

    /// When `system` last drained its queues, per queue and kind, as this node saw it.
    pub fn drains(&self, system: &str) -> Drains {
        let Ok(map) = self.activity.lock() else {
            return Drains::default();
        };
        map.get(system)
            .map(|a| a.drains.clone())
            .unwrap_or_default()
    }

    /// Every system's drains, for a flush to the store: (system, queue, selected kind or
    /// `None` for every kind, when).
    #[allow(clippy::type_complexity)]
    pub fn all_drains(&self) -> Vec<(String, Queue, Option<(String, String)>, i64)> {
        let Ok(map) = self.activity.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (system, a) in map.iter() {
            for (q, at) in &a.drains.every_kind_ms {
                out.push((system.clone(), *q, None, *at));
            }
            for ((q, ns, root), at) in &a.drains.kinds {
                out.push((system.clone(), *q, Some((ns.clone(), root.clone())), *at));
            }
        }
        out
    }

    /// Every system's last poll and last success, for a flush to the store.
    pub fn last_activity(&self) -> Vec<(String, Option<i64>, Option<i64>)> {
        let Ok(map) = self.activity.lock() else {
            return Vec::new();
        };
        map.iter()
            .map(|(s, a)| (s.clone(), a.last_poll_ms, a.last_success_ms))
            .collect()
    }

    /// The switch, if it is on.
    pub fn maintenance(&self) -> Option<Maintenance> {
        self.maintenance
            .read()
            .ok()
            .and_then(|m| m.clone())
            .filter(|m| m.enabled)
    }

    /// The switch as last set (on or off), if it ever was.
    pub fn maintenance_setting(&self) -> Option<Maintenance> {
        self.maintenance.read().ok().and_then(|m| m.clone())
    }

    pub fn set_maintenance(&self, m: Option<Maintenance>) {
        if let Ok(mut g) = self.maintenance.write() {
            *g = m;
        }
    }
}

/// The traffic light.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Light {
    Green,
    Yellow,
    Red,
}

/// The thresholds of the rules (`[monitoring]` in the configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    pub poll_yellow_ms: i64,
    pub poll_red_ms: i64,
    pub queue_age_yellow_ms: i64,
    pub queue_age_red_ms: i64,
    pub error_rate_yellow: f64,
    pub error_rate_red: f64,
    /// Fewer calls than this in the window never colour by error rate.
    pub error_rate_min_calls: u64,
    pub overdue_yellow: u64,
    pub overdue_red: u64,
    pub certificate_warn_days: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            poll_yellow_ms: 5 * 60_000,
            poll_red_ms: 15 * 60_000,
            queue_age_yellow_ms: 10 * 60_000,
            queue_age_red_ms: 60 * 60_000,
            error_rate_yellow: 0.05,
            error_rate_red: 0.25,
            error_rate_min_calls: 10,
            overdue_yellow: 1,
            overdue_red: 10,
            certificate_warn_days: 30,
        }
    }
}

/// What the rules look at for one system (or one system and kind).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measures {
    pub pending: u64,
    pub oldest_pending_age_ms: Option<i64>,
    /// Since its last Get… call; `None`: none since the gateway started.
    pub poll_age_ms: Option<i64>,
    pub calls: u64,
    pub faults: u64,
    pub overdue: u64,
    /// The soonest-expiring registered certificate (negative: expired).
    pub certificate_days_left: Option<i64>,
}

/// The light and the rules that set it, worst first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    pub state: Light,
    /// The deciding rule, e.g. `red: no poll for 15 min while 3 messages wait`.
    pub rule: String,
    /// Every rule that fired (the deciding one first).
    pub reasons: Vec<String>,
    /// The same rules as values, worst first, for texts in other languages.
    #[serde(skip)]
    pub findings: Vec<(Light, Finding)>,
}

/// One rule that fired, with what it measured: the English text of the REST answers and
/// alerts and the Russian text of the dashboard are both made from it.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// Queued messages and no Get… call for `silent_ms` (`since_start`: none since the
    /// gateway started, and the queue has aged that long).
    NoPoll {
        silent_ms: i64,
        since_start: bool,
        pending: u64,
    },
    QueueAge {
        age_ms: i64,
        limit_ms: i64,
    },
    CertificateExpired,
    CertificateExpiring {
        days: i64,
        warn_days: i64,
    },
    ErrorRate {
        rate: f64,
        calls: u64,
    },
    Overdue {
        count: u64,
    },
}

impl Finding {
    pub fn english(&self) -> String {
        match self {
            Finding::NoPoll {
                silent_ms,
                since_start,
                pending,
            } => {
                let waiting = plural(*pending, "message waits", "messages wait");
                if *since_start {
                    format!(
                        "no poll since the gateway started ({}) while {waiting}",
                        human_duration(*silent_ms)
                    )
                } else {
                    format!("no poll for {} while {waiting}", human_duration(*silent_ms))
                }
            }
            Finding::QueueAge { age_ms, limit_ms } => format!(
                "the oldest message has waited {} (limit {})",
                human_duration(*age_ms),
                human_duration(*limit_ms)
            ),
            Finding::CertificateExpired => "a registered certificate has expired".into(),
            Finding::CertificateExpiring { days, warn_days } => format!(
                "a registered certificate expires in {days} days (warning below {warn_days})"
            ),
            Finding::ErrorRate { rate, calls } => {
                format!("{:.0}% of {calls} calls faulted", rate * 100.0)
            }
            Finding::Overdue { count } => {
                plural(*count, "request is overdue", "requests are overdue")
            }
        }
    }

    /// The dashboard's Russian text (numbers after a colon, so no plural forms are needed).
    pub fn russian(&self) -> String {
        match self {
            Finding::NoPoll {
                silent_ms,
                since_start,
                pending,
            } => {
                if *since_start {
                    format!(
                        "нет опроса с запуска шлюза ({}), сообщений в очереди: {pending}",
                        human_duration_ru(*silent_ms)
                    )
                } else {
                    format!(
                        "нет опроса {}, сообщений в очереди: {pending}",
                        human_duration_ru(*silent_ms)
                    )
                }
            }
            Finding::QueueAge { age_ms, limit_ms } => format!(
                "старейшее сообщение ждёт {} (предел {})",
                human_duration_ru(*age_ms),
                human_duration_ru(*limit_ms)
            ),
            Finding::CertificateExpired => "истёк зарегистрированный сертификат".into(),
            Finding::CertificateExpiring { days, warn_days } => format!(
                "до истечения зарегистрированного сертификата дней: {days} (предупреждение при менее чем {warn_days})"
            ),
            Finding::ErrorRate { rate, calls } => {
                format!("ошибкой завершились {:.0}% из вызовов: {calls}", rate * 100.0)
            }
            Finding::Overdue { count } => format!("просрочено запросов: {count}"),
        }
    }
}

impl Light {
    pub fn english(self) -> &'static str {
        match self {
            Light::Green => "green",
            Light::Yellow => "yellow",
            Light::Red => "red",
        }
    }

    pub fn russian(self) -> &'static str {
        match self {
            Light::Green => "зелёный",
            Light::Yellow => "жёлтый",
            Light::Red => "красный",
        }
    }
}

/// What a green light says, in English and Russian.
pub const ALL_WELL: (&str, &str) = (
    "polling, queue, certificates, errors and deadlines within limits",
    "опрос, очередь, сертификаты, ошибки и сроки в норме",
);

/// `95 s` → `1 min 35 s`, `3 h 2 min`, `2 d 4 h`: the way an operator reads an age.
pub fn human_duration(ms: i64) -> String {
    duration_in(ms, ["s", "min", "h", "d"])
}

/// [`human_duration`] with Russian units: `1 мин 35 с`, `3 ч 2 мин`, `2 сут 4 ч`.
pub fn human_duration_ru(ms: i64) -> String {
    duration_in(ms, ["с", "мин", "ч", "сут"])
}

fn duration_in(ms: i64, [sec, min, hour, day]: [&str; 4]) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => format!("{s} {sec}"),
        60..=3599 if s % 60 == 0 => format!("{} {min}", s / 60),
        60..=3599 => format!("{} {min} {} {sec}", s / 60, s % 60),
        3600..=86_399 if (s % 3600) / 60 == 0 => format!("{} {hour}", s / 3600),
        3600..=86_399 => format!("{} {hour} {} {min}", s / 3600, (s % 3600) / 60),
        _ if (s % 86_400) / 3600 == 0 => format!("{} {day}", s / 86_400),
        _ => format!("{} {day} {} {hour}", s / 86_400, (s % 86_400) / 3600),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The error rate of a window, if there were enough calls to judge.
pub fn error_rate(calls: u64, faults: u64) -> Option<f64> {
    (calls > 0).then(|| faults as f64 / calls as f64)
}

/// The traffic light of one system or (system, kind).
pub fn assess(m: &Measures, t: &Thresholds) -> Assessment {
    let mut found: Vec<(Light, Finding)> = Vec::new();
    if m.pending > 0 {
        // Not polled for a while, or never since the start while the queue has aged as long.
        let silent_ms = m
            .poll_age_ms
            .or(m.oldest_pending_age_ms.filter(|_| m.poll_age_ms.is_none()));
        if let Some(silent) = silent_ms {
            let f = Finding::NoPoll {
                silent_ms: silent,
                since_start: m.poll_age_ms.is_none(),
                pending: m.pending,
            };
            if silent >= t.poll_red_ms {
                found.push((Light::Red, f));
            } else if silent >= t.poll_yellow_ms {
                found.push((Light::Yellow, f));
            }
        }
        if let Some(age) = m.oldest_pending_age_ms {
            if age >= t.queue_age_red_ms {
                found.push((
                    Light::Red,
                    Finding::QueueAge {
                        age_ms: age,
                        limit_ms: t.queue_age_red_ms,
                    },
                ));
            } else if age >= t.queue_age_yellow_ms {
                found.push((
                    Light::Yellow,
                    Finding::QueueAge {
                        age_ms: age,
                        limit_ms: t.queue_age_yellow_ms,
                    },
                ));
            }
        }
    }
    if let Some(days) = m.certificate_days_left {
        if days < 0 {
            found.push((Light::Red, Finding::CertificateExpired));
        } else if days < t.certificate_warn_days {
            found.push((
                Light::Yellow,
                Finding::CertificateExpiring {
                    days,
                    warn_days: t.certificate_warn_days,
                },
            ));
        }
    }
    if m.calls >= t.error_rate_min_calls {
        if let Some(rate) = error_rate(m.calls, m.faults) {
            let f = Finding::ErrorRate {
                rate,
                calls: m.calls,
            };
            if rate >= t.error_rate_red {
                found.push((Light::Red, f));
            } else if rate >= t.error_rate_yellow {
                found.push((Light::Yellow, f));
            }
        }
    }
    if m.overdue > 0 {
        let f = Finding::Overdue { count: m.overdue };
        if m.overdue >= t.overdue_red {
            found.push((Light::Red, f));
        } else if m.overdue >= t.overdue_yellow {
            found.push((Light::Yellow, f));
        }
    }
    // Worst first; among equals, the order above (polling, queue, certificate, errors,
    // overdue) — the most actionable cause first.
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    let reasons: Vec<String> = found
        .iter()
        .map(|(l, f)| format!("{}: {}", l.english(), f.english()))
        .collect();
    match found.first() {
        None => Assessment {
            state: Light::Green,
            rule: format!("green: {}", ALL_WELL.0),
            reasons,
            findings: found,
        },
        Some((state, _)) => Assessment {
            state: *state,
            rule: reasons[0].clone(),
            reasons,
            findings: found,
        },
    }
}

/// The rule of an assessment in Russian (the dashboard's `?lang=ru`).
pub fn rule_russian(state: Light, findings: &[(Light, Finding)]) -> String {
    match findings.first() {
        None => format!("{}: {}", state.russian(), ALL_WELL.1),
        Some((l, f)) => format!("{}: {}", l.russian(), f.russian()),
    }
}

/// The `p`-th percentile (0..=100, nearest rank) of `values`, sorted in place.
pub fn percentile(values: &mut [i64], p: u32) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = (u64::from(p.min(100)) * values.len() as u64)
        .div_ceil(100)
        .max(1);
    values.get(rank as usize - 1).copied()
}

/// Days from `now_ms` to a certificate's `notAfter` (negative once expired), read from PEM.
pub fn certificate_days_left(pem: &[u8], now_ms: i64) -> Option<i64> {
    let cert = openssl::x509::X509::from_pem(pem).ok()?;
    let now = openssl::asn1::Asn1Time::from_unix(now_ms.div_euclid(1000)).ok()?;
    let diff = now.diff(cert.not_after()).ok()?;
    // `diff` splits into whole days and the remaining seconds (same sign); a certificate
    // with hours left and zero days is "0 days", an expired one negative.
    let days = i64::from(diff.days);
    Some(if diff.secs < 0 && days == 0 { -1 } else { days })
}

// --- alerts ---

/// A condition that holds now (an alert should be open for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    /// `system.not_polling`, `queue.age`, `overdue.growth`, `error_rate`,
    /// `certificate.expiring`, `checkpoint.overdue`.
    pub rule: String,
    /// A system mnemonic, or `gateway`.
    pub subject: String,
    /// The measured value, as text.
    pub value: String,
    pub detail: String,
}

/// One system's measurements, as the alert rules read them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SystemMeasures {
    pub system: String,
    pub measures: Measures,
}

/// Every alert condition that holds: per system (stopped polling, queue age, overdue
/// growth, error-rate spike, certificate expiry), the gateway's own certificate, and the
/// journal's checkpoint age against twice its schedule.
pub fn alert_conditions(
    systems: &[SystemMeasures],
    gateway_certificate_days_left: Option<i64>,
    checkpoint_age_ms: Option<i64>,
    checkpoint_interval_ms: Option<i64>,
    t: &Thresholds,
) -> Vec<Condition> {
    let mut out = Vec::new();
    let mut push = |rule: &str, subject: &str, value: String, detail: String| {
        out.push(Condition {
            rule: rule.into(),
            subject: subject.into(),
            value,
            detail,
        })
    };
    for s in systems {
        let m = &s.measures;
        if m.pending > 0 {
            let silent = m.poll_age_ms.or(m.oldest_pending_age_ms);
            if let Some(silent) = silent.filter(|v| *v >= t.poll_red_ms) {
                push(
                    "system.not_polling",
                    &s.system,
                    format!("{}s", silent / 1000),
                    format!(
                        "no poll for {} while {}",
                        human_duration(silent),
                        plural(m.pending, "message waits", "messages wait")
                    ),
                );
            }
            if let Some(age) = m.oldest_pending_age_ms.filter(|a| *a >= t.queue_age_red_ms) {
                push(
                    "queue.age",
                    &s.system,
                    format!("{}s", age / 1000),
                    format!(
                        "the oldest of {} pending messages has waited {}",
                        m.pending,
                        human_duration(age)
                    ),
                );
            }
        }
        if m.overdue >= t.overdue_yellow.max(1) {
            push(
                "overdue.growth",
                &s.system,
                m.overdue.to_string(),
                plural(m.overdue, "request is overdue", "requests are overdue"),
            );
        }
        if m.calls >= t.error_rate_min_calls {
            if let Some(rate) = error_rate(m.calls, m.faults).filter(|r| *r >= t.error_rate_red) {
                push(
                    "error_rate",
                    &s.system,
                    format!("{rate:.3}"),
                    format!("{} of {} calls faulted", m.faults, m.calls),
                );
            }
        }
        if let Some(days) = m
            .certificate_days_left
            .filter(|d| *d < t.certificate_warn_days)
        {
            push(
                "certificate.expiring",
                &s.system,
                days.to_string(),
                if days < 0 {
                    "a registered certificate has expired".into()
                } else {
                    format!("a registered certificate expires in {days} days")
                },
            );
        }
    }
    if let Some(days) = gateway_certificate_days_left.filter(|d| *d < t.certificate_warn_days) {
        push(
            "certificate.expiring",
            "gateway",
            days.to_string(),
            format!("the gateway's signing certificate expires in {days} days"),
        );
    }
    if let (Some(age), Some(interval)) = (checkpoint_age_ms, checkpoint_interval_ms) {
        if age > 2 * interval {
            push(
                "checkpoint.overdue",
                "gateway",
                format!("{}s", age / 1000),
                format!(
                    "the latest signed checkpoint is {} old (schedule every {})",
                    human_duration(age),
                    human_duration(interval)
                ),
            );
        }
    }
    out
}

/// What to open and what to resolve, given the alerts open now (rule, subject) and the
/// conditions that hold.
pub fn plan_alerts<'a>(
    open: &[(String, String)],
    holding: &'a [Condition],
) -> (Vec<&'a Condition>, Vec<(String, String)>) {
    let to_open = holding
        .iter()
        .filter(|c| !open.iter().any(|(r, s)| *r == c.rule && *s == c.subject))
        .collect();
    let to_resolve = open
        .iter()
        .filter(|(r, s)| !holding.iter().any(|c| c.rule == *r && c.subject == *s))
        .cloned()
        .collect();
    (to_open, to_resolve)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn a_system_that_stopped_polling_with_a_queue_is_red_and_says_why() {
        let m = Measures {
            pending: 3,
            oldest_pending_age_ms: Some(16 * MIN),
            poll_age_ms: Some(15 * MIN),
            ..Measures::default()
        };
        let a = assess(&m, &Thresholds::default());
        assert_eq!(a.state, Light::Red);
        assert_eq!(a.rule, "red: no poll for 15 min while 3 messages wait");
        assert!(a.reasons[1].starts_with("yellow: the oldest message has waited 16 min"));
    }

    #[test]
    fn an_idle_system_with_an_empty_queue_is_green_whatever_its_silence() {
        let m = Measures {
            poll_age_ms: Some(10 * 24 * 60 * MIN),
            ..Measures::default()
        };
        let a = assess(&m, &Thresholds::default());
        assert_eq!(a.state, Light::Green);
        assert!(a.reasons.is_empty());
    }

    #[test]
    fn queue_age_turns_yellow_then_red() {
        let t = Thresholds::default();
        let mut m = Measures {
            pending: 1,
            oldest_pending_age_ms: Some(11 * MIN),
            // Polling all the time (e.g. filtered by another kind), yet the queue ages.
            poll_age_ms: Some(0),
            ..Measures::default()
        };
        let a = assess(&m, &t);
        assert_eq!(
            (a.state, a.rule.as_str()),
            (
                Light::Yellow,
                "yellow: the oldest message has waited 11 min (limit 10 min)"
            )
        );
        m.oldest_pending_age_ms = Some(61 * MIN);
        assert_eq!(assess(&m, &t).state, Light::Red);
    }

    #[test]
    fn never_polled_since_start_counts_the_queue_age_as_silence() {
        let m = Measures {
            pending: 1,
            oldest_pending_age_ms: Some(20 * MIN),
            poll_age_ms: None,
            ..Measures::default()
        };
        let a = assess(&m, &Thresholds::default());
        assert_eq!(a.state, Light::Red);
        assert!(
            a.rule.contains("no poll since the gateway started"),
            "{}",
            a.rule
        );
    }

    #[test]
    fn certificates_errors_and_overdue() {
        let t = Thresholds::default();
        let cert = |d| Measures {
            certificate_days_left: Some(d),
            ..Measures::default()
        };
        assert_eq!(assess(&cert(45), &t).state, Light::Green);
        assert_eq!(assess(&cert(29), &t).state, Light::Yellow);
        assert_eq!(assess(&cert(-1), &t).state, Light::Red);
        let errors = |calls, faults| Measures {
            calls,
            faults,
            ..Measures::default()
        };
        // Too few calls to judge.
        assert_eq!(assess(&errors(4, 4), &t).state, Light::Green);
        assert_eq!(assess(&errors(20, 2), &t).state, Light::Yellow);
        let a = assess(&errors(20, 10), &t);
        assert_eq!(
            (a.state, a.rule.as_str()),
            (Light::Red, "red: 50% of 20 calls faulted")
        );
        let overdue = |n| Measures {
            overdue: n,
            ..Measures::default()
        };
        assert_eq!(assess(&overdue(1), &t).rule, "yellow: 1 request is overdue");
        assert_eq!(assess(&overdue(10), &t).state, Light::Red);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v: Vec<i64> = (1..=100).rev().collect();
        assert_eq!(percentile(&mut v, 50), Some(50));
        assert_eq!(percentile(&mut v, 95), Some(95));
        assert_eq!(percentile(&mut [7], 95), Some(7));
        assert_eq!(percentile(&mut [], 50), None);
    }

    #[test]
    fn the_rules_read_in_russian_too() {
        let t = Thresholds::default();
        let silent = Measures {
            pending: 3,
            poll_age_ms: Some(16 * 60_000),
            oldest_pending_age_ms: Some(61 * 60_000),
            ..Measures::default()
        };
        let a = assess(&silent, &t);
        assert_eq!(
            rule_russian(a.state, &a.findings),
            "красный: нет опроса 16 мин, сообщений в очереди: 3"
        );
        assert_eq!(
            a.findings[1].1.russian(),
            "старейшее сообщение ждёт 1 ч 1 мин (предел 1 ч)"
        );
        let well = assess(&Measures::default(), &t);
        assert_eq!(
            rule_russian(well.state, &well.findings),
            "зелёный: опрос, очередь, сертификаты, ошибки и сроки в норме"
        );
        assert_eq!(
            human_duration_ru(2 * 86_400_000 + 4 * 3_600_000),
            "2 сут 4 ч"
        );
        // Every English reason is its finding's English text.
        for ((l, f), r) in a.findings.iter().zip(&a.reasons) {
            assert_eq!(*r, format!("{}: {}", l.english(), f.english()));
        }
    }

    #[test]
    fn durations_read_like_an_operator_says_them() {
        assert_eq!(human_duration(59_000), "59 s");
        assert_eq!(human_duration(15 * MIN), "15 min");
        assert_eq!(human_duration(95_000), "1 min 35 s");
        assert_eq!(human_duration(182 * MIN), "3 h 2 min");
        assert_eq!(human_duration(52 * 60 * MIN), "2 d 4 h");
    }

    #[test]
    fn alerts_open_for_new_conditions_and_resolve_for_cleared_ones() {
        let t = Thresholds::default();
        let stopped = SystemMeasures {
            system: "ZAGS".into(),
            measures: Measures {
                pending: 2,
                oldest_pending_age_ms: Some(70 * MIN),
                poll_age_ms: Some(20 * MIN),
                ..Measures::default()
            },
        };
        let held = alert_conditions(&[stopped], Some(400), Some(11 * MIN), Some(5 * MIN), &t);
        let rules: Vec<_> = held
            .iter()
            .map(|c| (c.rule.as_str(), c.subject.as_str()))
            .collect();
        assert_eq!(
            rules,
            [
                ("system.not_polling", "ZAGS"),
                ("queue.age", "ZAGS"),
                ("checkpoint.overdue", "gateway")
            ]
        );
        let open = vec![
            ("queue.age".to_string(), "ZAGS".to_string()),
            ("error_rate".to_string(), "USZN".to_string()),
        ];
        let (to_open, to_resolve) = plan_alerts(&open, &held);
        assert_eq!(to_open.len(), 2);
        assert_eq!(to_resolve, [("error_rate".to_string(), "USZN".to_string())]);
        // Ten minutes of checkpoint age under a five-minute schedule is not yet overdue.
        assert!(alert_conditions(&[], Some(400), Some(10 * MIN), Some(5 * MIN), &t).is_empty());
        // The gateway's certificate.
        let c = alert_conditions(&[], Some(12), None, None, &t);
        assert_eq!(c[0].rule, "certificate.expiring");
        assert_eq!(c[0].value, "12");
    }

    #[test]
    fn the_monitor_keeps_polls_successes_and_windowed_rates() {
        let m = Monitor::default();
        m.record("A", Poll::Look, Outcome::Ok, 1_000);
        m.record("A", Poll::No, Outcome::Rejected, 2_000);
        m.record("A", Poll::No, Outcome::Fault, 3_000);
        let s = m.summary("A", 0);
        assert_eq!(
            (
                s.last_poll_ms,
                s.last_success_ms,
                s.calls,
                s.faults,
                s.rejections
            ),
            (Some(1_000), Some(1_000), 3, 2, 1)
        );
        assert_eq!(m.summary("A", 2_500).calls, 1);
        assert_eq!(m.summary("B", 0), ActivitySummary::default());
        assert!(m.maintenance().is_none());
        m.set_maintenance(Some(Maintenance {
            enabled: true,
            reason: "upgrade".into(),
            since_ms: 5,
        }));
        assert_eq!(m.maintenance().map(|x| x.reason), Some("upgrade".into()));
        m.set_maintenance(Some(Maintenance {
            enabled: false,
            reason: String::new(),
            since_ms: 6,
        }));
        assert!(m.maintenance().is_none());
        assert!(m.maintenance_setting().is_some());
    }

    #[test]
    fn drains_cover_every_kind_or_the_selected_one_of_their_queue_and_stay_bounded() {
        let m = Monitor::default();
        let drain = |selector| Poll::Drain {
            queue: Queue::Requests,
            selector,
        };
        assert_eq!(m.drains("P"), Drains::default());
        // Looking at statuses keeps a system alive but drains nothing.
        m.record("P", Poll::Look, Outcome::Ok, 1_000);
        let d = m.drains("P");
        assert_eq!(d.covering(Queue::Requests, "ns", "A"), None);
        // A selected drain covers its kind only; a failed one covers nothing.
        m.record("P", drain(Some(("ns", "A"))), Outcome::Ok, 2_000);
        m.record("P", drain(Some(("ns", "B"))), Outcome::Fault, 2_500);
        let d = m.drains("P");
        assert_eq!(d.covering(Queue::Requests, "ns", "A"), Some(2_000));
        assert_eq!(d.covering(Queue::Requests, "ns", "B"), None);
        // A drain of the responses queue says nothing about requests.
        m.record(
            "P",
            Poll::Drain {
                queue: Queue::Responses,
                selector: None,
            },
            Outcome::Ok,
            2_800,
        );
        let d = m.drains("P");
        assert_eq!(d.covering(Queue::Requests, "ns", "B"), None);
        assert_eq!(d.covering(Queue::Responses, "ns", "B"), Some(2_800));
        // An unselected drain covers every kind; a later selected one moves its kind on.
        m.record("P", drain(None), Outcome::Ok, 3_000);
        m.record("P", drain(Some(("ns", "A"))), Outcome::Ok, 4_000);
        let d = m.drains("P");
        assert_eq!(d.covering(Queue::Requests, "ns", "A"), Some(4_000));
        assert_eq!(d.covering(Queue::Requests, "ns", "B"), Some(3_000));
        assert_eq!(m.summary("P", 0).last_poll_ms, Some(4_000));
        assert_eq!(m.all_drains().len(), 3, "every kind of two queues, and A");
        // Any number of selectors keeps at most the bound, the most recent ones.
        for i in 0..1_000 {
            let root = i.to_string();
            let poll = Poll::Drain {
                queue: Queue::Requests,
                selector: Some(("junk", root.as_str())),
            };
            m.record("P", poll, Outcome::Ok, 10_000 + i);
        }
        let d = m.drains("P");
        assert_eq!(d.kinds.len(), KIND_DRAINS_PER_SYSTEM);
        assert_eq!(d.covering(Queue::Requests, "junk", "999"), Some(10_999));
        assert_eq!(
            d.covering(Queue::Requests, "junk", "0"),
            Some(3_000),
            "fell off: every-kind drain"
        );
    }
}
