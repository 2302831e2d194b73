//! Alerts (docs/monitoring.md): the rules of [`mezhved_core::monitoring::alert_conditions`]
//! evaluated every `[monitoring] alert_interval_seconds` over the same service health the
//! REST API shows. An alert opens when its condition starts to hold and resolves itself
//! when it stops; both transitions are journal events (`alert.raised`, `alert.resolved`:
//! rule, subject, measured value — metadata only) written with the `alerts` table row in
//! one transaction, and each is POSTed as JSON to `[monitoring] webhook_url`.
//!
//! Invariant: the webhook never blocks an evaluation. Each transition is sent by its own
//! task with bounded retries and backoff; a lost webhook loses a notification, never an
//! alert (the table and the journal hold it).

use crate::server::AppState;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use mezhved_core::clock::{from_ms, to_ms, xs_datetime};
use mezhved_core::monitoring::{alert_conditions, plan_alerts, Condition, SystemMeasures};
use mezhved_store::{ActiveAlert, NewEvent};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// One alert transition, as journaled and as POSTed to the webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// `raised` or `resolved`.
    pub transition: &'static str,
    pub rule: String,
    pub subject: String,
    pub value: String,
    pub detail: String,
    pub at: String,
    /// The gateway (its journal origin) that raised it.
    pub gateway: String,
}

/// Whether `url` may receive alerts: `https://`, or `http://` on the loopback or when
/// explicitly allowed.
pub fn check_webhook_url(url: &str, allow_plain_http: bool) -> Result<(), String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("\"{url}\" is not a URL: {e}"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("\"{url}\" has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") => {
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback || allow_plain_http {
                Ok(())
            } else {
                Err("http:// only on the loopback, or with monitoring.webhook_allow_plain_http; use https://".into())
            }
        }
        _ => Err(format!("\"{url}\": the scheme must be https (or http)")),
    }
}

/// The measured condition of every alert rule at `now_ms`.
pub async fn conditions(state: &AppState, now_ms: i64) -> Result<Vec<Condition>, String> {
    let overview = crate::monitoring_api::overview(state, now_ms)
        .await
        .map_err(|p| p.detail)?;
    let systems: Vec<SystemMeasures> = overview
        .systems
        .into_iter()
        .map(|s| SystemMeasures {
            system: s.mnemonic,
            measures: s.measures,
        })
        .collect();
    let gateway_days = std::fs::read(&state.config.gateway_key.certificate)
        .ok()
        .and_then(|pem| mezhved_core::monitoring::certificate_days_left(&pem, now_ms));
    let checkpoint_age = state
        .store
        .latest_checkpoint()
        .await
        .map_err(|e| e.to_string())?
        .map(|c| (now_ms - c.made_at_ms).max(0));
    let interval = schedule_interval_ms(&state.config.journal.checkpoint_schedule, now_ms);
    Ok(alert_conditions(
        &systems,
        gateway_days,
        checkpoint_age,
        interval,
        &state.config.monitoring.thresholds(),
    ))
}

/// The time between two consecutive occurrences of a cron schedule after `now_ms`.
fn schedule_interval_ms(schedule: &str, now_ms: i64) -> Option<i64> {
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .build()
        .parse(schedule)
        .ok()?;
    let now = chrono::DateTime::<chrono::Utc>::from(from_ms(now_ms));
    let a = cron.find_next_occurrence(&now, false).ok()?;
    let b = cron.find_next_occurrence(&a, false).ok()?;
    Some((b - a).num_milliseconds())
}

/// Evaluates every rule once at `now_ms`: opens alerts for new conditions, resolves the
/// ones whose condition cleared, journals both, and hands each transition to the webhook
/// (in the background). Returns the transitions.
pub async fn evaluate_once(state: &Arc<AppState>, now_ms: i64) -> Result<Vec<Transition>, String> {
    let holding = conditions(state, now_ms).await?;
    let open: Vec<ActiveAlert> = state
        .store
        .active_alerts()
        .await
        .map_err(|e| e.to_string())?;
    let open_keys: Vec<(String, String)> = open
        .iter()
        .map(|a| (a.rule.clone(), a.subject.clone()))
        .collect();
    let (to_open, to_resolve) = plan_alerts(&open_keys, &holding);
    let gateway = state.config.journal_origin();
    let event = |kind: &str, rule: &str, subject: &str, value: &str| {
        let mut body = serde_json::Map::new();
        body.insert("rule".into(), rule.into());
        body.insert("subject".into(), subject.into());
        body.insert("value".into(), value.into());
        NewEvent {
            at_ms: now_ms,
            event_type: kind.into(),
            global_id: None,
            actor: "gateway".into(),
            body,
        }
    };
    let mut transitions = Vec::new();
    for c in to_open {
        let alert = ActiveAlert {
            rule: c.rule.clone(),
            subject: c.subject.clone(),
            opened_at_ms: now_ms,
            value: c.value.clone(),
            detail: c.detail.clone(),
        };
        let opened = state
            .store
            .open_alert(alert, event("alert.raised", &c.rule, &c.subject, &c.value))
            .await
            .map_err(|e| e.to_string())?;
        if opened {
            tracing::warn!(rule = %c.rule, subject = %c.subject, value = %c.value, detail = %c.detail, "alert raised");
            transitions.push(Transition {
                transition: "raised",
                rule: c.rule.clone(),
                subject: c.subject.clone(),
                value: c.value.clone(),
                detail: c.detail.clone(),
                at: xs_datetime(from_ms(now_ms)),
                gateway: gateway.clone(),
            });
        }
    }
    for (rule, subject) in to_resolve {
        let was = open.iter().find(|a| a.rule == rule && a.subject == subject);
        let value = was.map(|a| a.value.clone()).unwrap_or_default();
        let resolved = state
            .store
            .resolve_alert(
                rule.clone(),
                subject.clone(),
                event("alert.resolved", &rule, &subject, &value),
            )
            .await
            .map_err(|e| e.to_string())?;
        if resolved {
            tracing::info!(rule = %rule, subject = %subject, "alert resolved");
            transitions.push(Transition {
                transition: "resolved",
                detail: format!(
                    "cleared: {}",
                    was.map(|a| a.detail.as_str()).unwrap_or_default()
                ),
                rule,
                subject,
                value,
                at: xs_datetime(from_ms(now_ms)),
                gateway: gateway.clone(),
            });
        }
    }
    let m = &state.config.monitoring;
    if !m.webhook_url.is_empty() {
        for t in &transitions {
            let (url, payload) = (m.webhook_url.clone(), t.clone());
            let settings = WebhookSettings {
                allow_plain_http: m.webhook_allow_plain_http,
                max_attempts: m.webhook_max_attempts,
                retry_base: Duration::from_millis(m.webhook_retry_base_ms),
                timeout: Duration::from_secs(m.webhook_timeout_seconds),
            };
            tokio::spawn(async move { deliver(&url, &payload, &settings).await });
        }
    }
    Ok(transitions)
}

/// How the webhook is POSTed.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub allow_plain_http: bool,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub timeout: Duration,
}

/// POSTs one transition, retrying with doubling waits; true once a 2xx answered.
pub async fn deliver(url: &str, t: &Transition, s: &WebhookSettings) -> bool {
    let body = match serde_json::to_vec(t) {
        Ok(b) => b,
        Err(_) => return false,
    };
    let mut wait = s.retry_base;
    for attempt in 1..=s.max_attempts.max(1) {
        match tokio::time::timeout(s.timeout, post_json(url, &body, s.allow_plain_http)).await {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => {
                tracing::warn!(attempt, error = %e, rule = %t.rule, "alert webhook failed")
            }
            Err(_) => tracing::warn!(attempt, rule = %t.rule, "alert webhook timed out"),
        }
        if attempt < s.max_attempts {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(300));
        }
    }
    false
}

/// One POST of `body` (JSON) to `url` over its own connection: TLS by OpenSSL with peer
/// verification against the system roots for `https` (`mezhved_net`), plain only where
/// allowed.
async fn post_json(url: &str, body: &[u8], allow_plain_http: bool) -> Result<(), String> {
    check_webhook_url(url, allow_plain_http)?;
    let uri: Uri = url.parse().map_err(|e| format!("{e}"))?;
    let connector = mezhved_net::Connector::new(&mezhved_net::TlsSettings::default())
        .map_err(|e| e.to_string())?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector);
    let request = hyper::Request::post(uri)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| {
        match std::error::Error::source(&e).and_then(mezhved_net::connect_error) {
            Some(c) => c.message().to_string(),
            None => mezhved_net::error_chain(&e),
        }
    })?;
    let status = response.status();
    // Read (and drop) a bounded reply so the connection ends cleanly.
    let _ = http_body_util::Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}

/// Evaluates the rules every `[monitoring] alert_interval_seconds` until aborted.
pub fn start(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_secs(state.config.monitoring.alert_interval_seconds.max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: let the gateway settle for one interval first.
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = to_ms(state.clock.now());
            if let Err(e) = crate::monitoring_api::flush_activity(&state).await {
                tracing::warn!(error = %e, "could not save the systems' last poll times");
            }
            if let Err(e) = evaluate_once(&state, now).await {
                tracing::warn!(error = %e, "alert evaluation failed");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_https_or_loopback_http_unless_allowed() {
        assert!(check_webhook_url("https://alerts.example/hook", false).is_ok());
        assert!(check_webhook_url("http://127.0.0.1:9000/hook", false).is_ok());
        assert!(check_webhook_url("http://[::1]:9000/hook", false).is_ok());
        assert!(check_webhook_url("http://localhost/hook", false).is_ok());
        assert!(check_webhook_url("http://alerts.example/hook", false).is_err());
        assert!(check_webhook_url("http://alerts.example/hook", true).is_ok());
        assert!(check_webhook_url("ftp://alerts.example/hook", true).is_err());
    }

    #[test]
    fn the_interval_of_a_cron_schedule() {
        assert_eq!(schedule_interval_ms("0 */5 * * * *", 0), Some(300_000));
    }
}
