//! The gateway's periodic jobs on tokio-cron-scheduler. Every node schedules them; each
//! slot runs once in the cluster ([`mezhved_core::jobs::run_slot`]).

use crate::server::{AppState, ServerError};
use mezhved_core::clock::to_ms;
use mezhved_store::NewEvent;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio_cron_scheduler::{Job, JobScheduler};

type JobFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;
pub type JobBody = Arc<dyn Fn(Arc<AppState>) -> JobFuture + Send + Sync>;

/// The jobs and their schedules (cron with seconds).
pub fn jobs(state: &AppState) -> Vec<(&'static str, String, JobBody)> {
    let j = &state.config.jobs;
    vec![
        (
            "journal-checkpoint",
            state.config.journal.checkpoint_schedule.clone(),
            Arc::new(|s: Arc<AppState>| -> JobFuture { Box::pin(checkpoint(s)) }),
        ),
        (
            "retention",
            j.retention_schedule.clone(),
            Arc::new(|s: Arc<AppState>| -> JobFuture { Box::pin(retention(s)) }),
        ),
        (
            "certificate-expiry",
            j.certificate_check_schedule.clone(),
            Arc::new(|s: Arc<AppState>| -> JobFuture { Box::pin(certificates(s)) }),
        ),
        (
            "calendar-reload",
            j.calendar_reload_schedule.clone(),
            Arc::new(|s: Arc<AppState>| -> JobFuture { Box::pin(calendar(s)) }),
        ),
        (
            "evaluation-report",
            j.evaluation_report_schedule.clone(),
            Arc::new(|s: Arc<AppState>| -> JobFuture { Box::pin(evaluation_report(s)) }),
        ),
    ]
}

/// Runs one job's slot now (what the scheduler calls; tests call it directly).
pub async fn run_job(
    state: Arc<AppState>,
    name: &str,
    slot_ms: i64,
    body: JobBody,
) -> Result<Option<String>, mezhved_store::StoreError> {
    let now = to_ms(state.clock.now());
    let node = state.node_name.clone();
    let store = state.store.clone();
    mezhved_core::jobs::run_slot(&*store, name, slot_ms, &node, now, move || body(state)).await
}

/// Schedules every job and starts the scheduler.
pub async fn start(state: Arc<AppState>) -> Result<JobScheduler, ServerError> {
    let e = |e: tokio_cron_scheduler::JobSchedulerError| ServerError::Scheduler(e.to_string());
    let scheduler = JobScheduler::new().await.map_err(e)?;
    for (name, schedule, body) in jobs(&state) {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .build()
            .parse(&schedule)
            .map_err(|err| ServerError::Scheduler(format!("{name}: {err}")))?;
        let cron = Arc::new(cron);
        let state = state.clone();
        let job = Job::new_async(schedule.as_str(), move |_id, _scheduler| {
            let (state, body, cron) = (state.clone(), body.clone(), cron.clone());
            Box::pin(async move {
                let now = chrono::DateTime::<chrono::Utc>::from(state.clock.now());
                let Some(slot) = mezhved_core::jobs::slot_of(&cron, now) else {
                    return;
                };
                if let Err(err) = run_job(state, name, slot, body).await {
                    tracing::error!(job = name, error = %err, "periodic job could not run");
                }
            })
        })
        .map_err(e)?;
        scheduler.add(job).await.map_err(e)?;
    }
    scheduler.start().await.map_err(e)?;
    Ok(scheduler)
}

async fn checkpoint(state: Arc<AppState>) -> Result<String, String> {
    match state.journal.checkpoint().await {
        Ok(Some(cp)) => Ok(format!("checkpoint at size {}", cp.size)),
        Ok(None) => Ok("journal empty".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Deletes the queue rows of messages finished (acknowledged or expired) longer ago than
/// the retention period. Their payloads were erased when they finished; this removes the
/// rest of the row (routing facts, the answer kept for identical resends).
async fn retention(state: Arc<AppState>) -> Result<String, String> {
    let days = i64::from(state.config.jobs.retention_days);
    let before = to_ms(state.clock.now()) - days * 24 * 3600 * 1000;
    let mut total = 0u64;
    loop {
        let n = state
            .store
            .purge_finished_messages(before, 10_000)
            .await
            .map_err(|e| e.to_string())?;
        total += n;
        if n < 10_000 {
            return Ok(format!("purged {total} finished messages"));
        }
    }
}

/// Warns about certificates (the gateway's and every registered system's) that expire
/// within the warning period: a log line and a `certificate.expiring` journal event.
async fn certificates(state: Arc<AppState>) -> Result<String, String> {
    let now = state.clock.now();
    let days = state.config.jobs.certificate_warning_days;
    let horizon =
        openssl::asn1::Asn1Time::from_unix((to_ms(now) / 1000) + i64::from(days) * 24 * 3600)
            .map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    let mut check = |owner: &str, pem: &[u8]| {
        if let Ok(cert) = openssl::x509::X509::from_pem(pem) {
            if cert.not_after() < horizon {
                found.push((
                    owner.to_string(),
                    format!("{:?}", cert.subject_name()),
                    cert.not_after().to_string(),
                ));
            }
        }
    };
    if let Ok(pem) = std::fs::read(&state.config.gateway_key.certificate) {
        check("gateway", &pem);
    }
    for system in &state.registry.get().data.systems {
        for pem in &system.certificates {
            check(&system.mnemonic, pem.as_bytes());
        }
    }
    let mut events = Vec::new();
    for (owner, subject, not_after) in &found {
        tracing::warn!(owner = %owner, subject = %subject, not_after = %not_after, "certificate expires soon");
        let mut body = serde_json::Map::new();
        body.insert("owner".into(), owner.clone().into());
        body.insert("subject".into(), subject.clone().into());
        body.insert("not_after".into(), not_after.clone().into());
        body.insert("warning_days".into(), days.into());
        events.push(NewEvent {
            at_ms: to_ms(now),
            event_type: "certificate.expiring".into(),
            global_id: None,
            actor: "gateway".into(),
            body,
        });
    }
    if !events.is_empty() {
        state
            .store
            .journal_append(events)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(format!(
        "{} certificate(s) expire within {days} days",
        found.len()
    ))
}

/// Re-reads the production calendar files, so a new year or a regional holiday applies
/// without a restart.
async fn calendar(state: Arc<AppState>) -> Result<String, String> {
    let calendar = crate::server::load_calendar(&state.config).map_err(|e| e.to_string())?;
    let years = calendar.years();
    match state.exchange.settings().deadlines.as_ref() {
        Some(rules) => {
            rules.calendar.set(calendar);
            Ok(format!("calendar reloaded: years {years:?}"))
        }
        None => Ok("no deadline rules".into()),
    }
}

/// The semiannual evaluation (Kuzbass: every half-year, by the 15th of the month after):
/// the report of the last finished half-year, from the journal alone, written to
/// `<data_dir>/reports/<YYYYHn>.{json,csv,html}` and recorded as a `report.generated`
/// journal event with the files' SHA-256. Running it again for the same half-year
/// rewrites the files from the same journal.
pub async fn evaluation_report(state: Arc<AppState>) -> Result<String, String> {
    use mezhved_core::report::{HalfYear, ReportParams};
    let now = state.clock.now();
    let rules = state
        .exchange
        .settings()
        .deadlines
        .as_ref()
        .ok_or("no deadline rules")?;
    let today = chrono::DateTime::<chrono::Utc>::from(now)
        .with_timezone(&rules.time_zone)
        .date_naive();
    use chrono::Datelike;
    // The half-year that ended last.
    let half = if today.month() >= 7 {
        HalfYear {
            year: today.year(),
            half: 1,
        }
    } else {
        HalfYear {
            year: today.year() - 1,
            half: 2,
        }
    };
    let params = ReportParams {
        from: half.from(),
        to: half.to(),
        as_of_ms: to_ms(now),
        time_zone: rules.time_zone,
        agency: None,
        kind_root: None,
        half_year: Some(half),
    };
    let calendar = rules.calendar.get();
    let report = crate::report_api::compute(&*state.store, params, &calendar)
        .await
        .map_err(|p| p.detail)?;
    let dir = state.config.data_dir.join("reports");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let label = half.label();
    let json = serde_json::to_vec_pretty(&report).map_err(|e| e.to_string())?;
    let files = [
        (format!("{label}.json"), json),
        (
            format!("{label}.csv"),
            crate::report_api::csv(&report).into_bytes(),
        ),
        (
            format!("{label}.html"),
            crate::report_api::html(&report).into_bytes(),
        ),
    ];
    let mut hashes = serde_json::Map::new();
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).map_err(|e| format!("{name}: {e}"))?;
        hashes.insert(
            name.clone(),
            hex::encode(openssl::sha::sha256(bytes)).into(),
        );
    }
    let mut body = serde_json::Map::new();
    body.insert("half_year".into(), label.clone().into());
    body.insert("files".into(), hashes.into());
    state
        .store
        .journal_append(vec![NewEvent {
            at_ms: to_ms(now),
            event_type: "report.generated".into(),
            global_id: None,
            actor: "gateway".into(),
            body,
        }])
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("evaluation {label} written to {}", dir.display()))
}
