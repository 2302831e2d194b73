//! The gateway's configuration: one TOML file, every key with a default, overridable from
//! the environment, and checked by [`Config::validate`] — the same code path that
//! `mezhved check-config` runs.
//!
//! Environment overrides: `MEZHVED_<KEY>` for a top-level key and
//! `MEZHVED_<SECTION>__<KEY>` inside a section (e.g. `MEZHVED_SERVER__LISTEN=0.0.0.0:8080`,
//! `MEZHVED_EXCHANGE__VISIBILITY_TIMEOUT_SECONDS=60`). A value is read as a TOML value when
//! it parses as one (numbers, booleans), otherwise as a string. A `MEZHVED_<NAME>` without
//! `__` that names no top-level key (`MEZHVED_LOG`, the log filter; `MEZHVED_CONFIG`; a
//! test harness's `MEZHVED_BIN`) is not configuration and is left alone; a name with `__`
//! is always configuration, so a misspelt section or key is refused rather than ignored.
//!
//! Relative paths are relative to the directory of the configuration file.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {name}: {message}")]
    Environment { name: String, message: String },
    #[error("invalid configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database and attachment files live.
    pub data_dir: PathBuf,
    /// Regional segment and node numbers, carried by every global ID.
    pub segment: u16,
    pub node: u16,
    pub server: ServerConfig,
    pub log: LogConfig,
    pub gateway_key: KeyConfig,
    pub trust: TrustConfig,
    pub registry: RegistryConfig,
    pub exchange: ExchangeConfig,
    pub limits: LimitsConfig,
    pub operator: OperatorConfig,
    pub journal: JournalConfig,
    pub deadlines: DeadlinesConfig,
    pub jobs: JobsConfig,
    pub push: PushConfig,
    /// `GET /metrics` (Prometheus text format; docs/metrics.md).
    pub metrics: MetricsConfig,
    /// Health, service health, alerts, maintenance (docs/monitoring.md).
    pub monitoring: MonitoringConfig,
    /// Auditors: read-only access to `/api/v1/journal`, each with its own name (journaled
    /// with every query) and token.
    pub auditors: Vec<AuditorConfig>,
    /// The operator's and auditor's web dashboard under `/ui` (docs/dashboard.md).
    pub dashboard: DashboardConfig,
}

/// `[dashboard]`: the web dashboard's users and sessions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// Serve `/ui` at all.
    pub enabled: bool,
    /// Cookies without `Secure`, for plain-HTTP tests and the local demo only.
    pub insecure_cookies: bool,
    /// A session ends after this long without a request.
    pub session_idle_seconds: u64,
    /// And this long after login in any case.
    pub session_max_seconds: u64,
    /// Count failed logins against the first `X-Forwarded-For` address instead of the
    /// peer: only behind a proxy that sets the header (anyone else could forge it).
    pub trust_forwarded_for: bool,
    pub users: Vec<DashboardUserConfig>,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            enabled: true,
            insecure_cookies: false,
            session_idle_seconds: 30 * 60,
            session_max_seconds: 12 * 3600,
            trust_forwarded_for: false,
            users: Vec::new(),
        }
    }
}

/// `[[dashboard.users]]`: one person who logs in to the dashboard.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardUserConfig {
    pub name: String,
    /// `operator` or `auditor`.
    pub role: String,
    /// `pbkdf2-sha256$<iterations>$<salt>$<hash>` (`mezhved dashboard hash-password`).
    pub password_hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    /// The endpoint address written into the served WSDL; empty: taken from the request's
    /// Host header.
    pub public_url: String,
    /// How long in-flight calls may take to finish after SIGTERM.
    pub shutdown_grace_seconds: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `mezhved=debug,info`.
    pub level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KeyConfig {
    /// PEM private key the gateway signs its answers with (SMEVSignature).
    pub key: PathBuf,
    /// PEM certificate (chain) of that key.
    pub certificate: PathBuf,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Revocation {
    RequireCrl,
    UseCrlIfPresent,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// Directory of trusted CA certificates and CRLs.
    pub dir: PathBuf,
    pub revocation: Revocation,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Registry file applied (as upserts) at start; empty: none.
    pub file: PathBuf,
    /// How often changes made elsewhere (CLI, other nodes) are picked up.
    pub reload_interval_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExchangeConfig {
    pub message_id_past_seconds: u64,
    pub message_id_future_seconds: u64,
    pub visibility_timeout_seconds: u64,
    pub broker_name: String,
    pub delivery_statuses: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// A SOAP envelope (the root part of an MTOM call) larger than this is refused.
    pub max_envelope_bytes: u64,
    pub max_attachment_bytes: u64,
    pub max_total_attachment_bytes: u64,
    pub max_attachments: usize,
    /// Delivered attachments go inline (base64) up to this total, as MTOM beyond.
    pub inline_delivery_limit: u64,
    pub max_xml_depth: usize,
    pub max_xml_elements: usize,
    pub max_attributes_per_element: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OperatorConfig {
    /// SHA-256 (hex) of the operator's bearer token for `/api/v1/registry`; empty: the
    /// administrative API is disabled.
    pub token_sha256: String,
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `GET /metrics` (and record the process's metrics).
    pub enabled: bool,
    /// SHA-256 (hex) of the bearer token a scraper must send; empty: open (scrapers
    /// usually sit on an internal network, and the metrics carry no message data).
    pub token_sha256: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            token_sha256: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// The checkpoints' origin line and signing key name (C2SP tlog-checkpoint); empty:
    /// `mezhved.local/segment-<segment>`.
    pub origin: String,
    /// When checkpoints are signed (cron with seconds: `sec min hour day month weekday`),
    /// if the journal grew since the last one.
    pub checkpoint_schedule: String,
    /// The operator's key for the keyed hash of search details: a file holding at least 32
    /// bytes. Empty: `<data_dir>/subject.key`, made from OpenSSL's random generator at the
    /// first start. Losing it makes old hashes unsearchable; changing it too.
    pub subject_key: PathBuf,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            origin: String::new(),
            checkpoint_schedule: "0 */5 * * * *".into(),
            subject_key: PathBuf::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeadlinesConfig {
    /// The reply term in working days where the kind of information sets none (210-FZ
    /// art. 7.2 part 3).
    pub reply_working_days: u32,
    /// A reminder to the provider this many working days before the deadline; 0: none.
    pub reminder_working_days_before: u32,
    /// The segment's time zone: the receipt date and the end of the last day are local.
    pub time_zone: String,
    /// Production calendar files applied after the built-in federal calendar
    /// (schemas/calendars/ru-federal.toml): more years, regional holidays, corrections.
    pub calendars: Vec<PathBuf>,
    /// `restart` or `continue`: what a provider's clarification request does to the
    /// deadline (docs/deadlines.md).
    pub clarification: String,
}

impl Default for DeadlinesConfig {
    fn default() -> Self {
        DeadlinesConfig {
            reply_working_days: 5,
            reminder_working_days_before: 1,
            time_zone: "Europe/Moscow".into(),
            calendars: Vec::new(),
            clarification: "restart".into(),
        }
    }
}

/// Periodic jobs: schedules are cron with seconds (`sec min hour day month weekday`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    pub retention_schedule: String,
    /// Queue rows of messages finished longer ago than this are deleted (payloads went at
    /// Ack or expiry; cards and journal stay). Must exceed the MessageID staleness window.
    pub retention_days: u32,
    pub certificate_check_schedule: String,
    pub certificate_warning_days: u32,
    pub calendar_reload_schedule: String,
    /// The semiannual evaluation report (Kuzbass: by the 15th of the month after the
    /// half-year).
    pub evaluation_report_schedule: String,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            retention_schedule: "0 30 3 * * *".into(),
            retention_days: 7,
            certificate_check_schedule: "0 0 7 * * *".into(),
            certificate_warning_days: 30,
            calendar_reload_schedule: "0 0 4 * * *".into(),
            evaluation_report_schedule: "0 0 6 15 1,7 *".into(),
        }
    }
}

/// Push delivery to systems that registered a `push_url` (docs/push.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Attempts per message; after the last failed one the message falls back to the pull
    /// queue (GetRequest/GetResponse) and is not pushed again.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; doubled after each further one (jittered
    /// into the upper half of each wait).
    pub retry_base_seconds: u64,
    /// The longest wait between two attempts.
    pub retry_max_seconds: u64,
    /// One POST, from connecting to the end of the endpoint's reply.
    pub request_timeout_seconds: u64,
    /// POSTs in flight at once on this node.
    pub max_in_flight: usize,
    /// POSTs in flight at once to one system, so one dead endpoint cannot hold every slot.
    pub max_in_flight_per_system: usize,
    /// PEM file of the CA certificates endpoints' server certificates must chain to;
    /// empty: the system's default roots.
    pub ca_file: PathBuf,
    /// Allow plain `http://` endpoints (tests and local demos only; the registry refuses
    /// them otherwise).
    pub allow_plain_http: bool,
    /// The endpoint's reply (an Ack) is read up to this size; a longer one is a failure.
    pub max_reply_bytes: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            max_attempts: 8,
            retry_base_seconds: 5,
            retry_max_seconds: 300,
            request_timeout_seconds: 30,
            max_in_flight: 16,
            max_in_flight_per_system: 4,
            ca_file: PathBuf::new(),
            allow_plain_http: false,
            max_reply_bytes: 1 << 20,
        }
    }
}

impl PushConfig {
    /// The settings of the push loop.
    pub fn settings(&self) -> mezhved_core::push::PushSettings {
        use std::time::Duration;
        mezhved_core::push::PushSettings {
            max_attempts: self.max_attempts,
            retry_base: Duration::from_secs(self.retry_base_seconds),
            retry_max: Duration::from_secs(self.retry_max_seconds),
            request_timeout: Duration::from_secs(self.request_timeout_seconds),
            max_in_flight: self.max_in_flight,
            max_in_flight_per_system: self.max_in_flight_per_system,
            allow_plain_http: self.allow_plain_http,
        }
    }

    fn problems(&self, problems: &mut Vec<String>) {
        if !(1..=100).contains(&self.max_attempts) {
            problems.push("push.max_attempts must be 1 to 100".into());
        }
        if self.retry_base_seconds == 0 || self.retry_max_seconds < self.retry_base_seconds {
            problems.push(
                "push.retry_base_seconds must be positive and at most push.retry_max_seconds"
                    .into(),
            );
        }
        if !(1..=600).contains(&self.request_timeout_seconds) {
            problems.push("push.request_timeout_seconds must be 1 to 600".into());
        }
        if !(1..=1024).contains(&self.max_in_flight) {
            problems.push("push.max_in_flight must be 1 to 1024".into());
        }
        if self.max_in_flight_per_system == 0 || self.max_in_flight_per_system > self.max_in_flight
        {
            problems.push("push.max_in_flight_per_system must be 1 to push.max_in_flight".into());
        }
        if !self.ca_file.as_os_str().is_empty() && !self.ca_file.is_file() {
            problems.push(format!(
                "push.ca_file: {} is not a readable file",
                self.ca_file.display()
            ));
        }
        if self.max_reply_bytes < 4096 {
            problems.push("push.max_reply_bytes must be at least 4096".into());
        }
    }
}

/// `[monitoring]`: thresholds of the service-health rules and alerts, the readiness
/// checks' limits, and the alert webhook (docs/monitoring.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringConfig {
    /// The window of error and rejection rates and answer times.
    pub window_seconds: u64,
    /// A system with waiting messages and no Get… call for this long is yellow / red.
    pub poll_yellow_seconds: u64,
    pub poll_red_seconds: u64,
    /// The oldest waiting message's age that makes a queue yellow / red.
    pub queue_age_yellow_seconds: u64,
    pub queue_age_red_seconds: u64,
    /// Faulted share of a system's calls in the window that makes it yellow / red.
    pub error_rate_yellow: f64,
    pub error_rate_red: f64,
    /// Fewer calls than this in the window never colour by error rate.
    pub error_rate_min_calls: u64,
    /// Open overdue requests that make a system yellow / red.
    pub overdue_yellow: u64,
    pub overdue_red: u64,
    /// A certificate with fewer days left is a warning (yellow, alert, degraded).
    pub certificate_warn_days: i64,
    /// Readiness: the probe commit's latency above which the store is degraded.
    pub commit_latency_degraded_ms: u64,
    /// Readiness: free space in the data directory below which it is degraded / down.
    pub disk_free_degraded_mb: u64,
    pub disk_free_down_mb: u64,
    /// Readiness: how far the earliest due deadline may be past now before the timer
    /// loop is degraded / down.
    pub timer_lag_degraded_seconds: u64,
    pub timer_lag_down_seconds: u64,
    /// How often the alert rules are evaluated.
    pub alert_interval_seconds: u64,
    /// Where each alert transition is POSTed as JSON; empty: nowhere.
    pub webhook_url: String,
    /// Allow an `http://` webhook outside the loopback (otherwise https only).
    pub webhook_allow_plain_http: bool,
    /// Attempts per transition (waits double from `webhook_retry_base_ms`).
    pub webhook_max_attempts: u32,
    pub webhook_retry_base_ms: u64,
    pub webhook_timeout_seconds: u64,
    /// How long (ms of the gateway's clock) one read of the store's monitoring figures
    /// serves every reader — the REST API, the dashboard, the alert rules — so that any
    /// number of pollers costs the exchange one read per interval; 0 reads every time.
    pub snapshot_ttl_ms: u64,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        MonitoringConfig {
            window_seconds: 900,
            poll_yellow_seconds: 300,
            poll_red_seconds: 900,
            queue_age_yellow_seconds: 600,
            queue_age_red_seconds: 3600,
            error_rate_yellow: 0.05,
            error_rate_red: 0.25,
            error_rate_min_calls: 10,
            overdue_yellow: 1,
            overdue_red: 10,
            certificate_warn_days: 30,
            commit_latency_degraded_ms: 500,
            disk_free_degraded_mb: 1024,
            disk_free_down_mb: 100,
            timer_lag_degraded_seconds: 60,
            timer_lag_down_seconds: 600,
            alert_interval_seconds: 30,
            webhook_url: String::new(),
            webhook_allow_plain_http: false,
            webhook_max_attempts: 5,
            webhook_retry_base_ms: 2000,
            webhook_timeout_seconds: 10,
            snapshot_ttl_ms: 1000,
        }
    }
}

impl MonitoringConfig {
    /// The rules' thresholds.
    pub fn thresholds(&self) -> mezhved_core::monitoring::Thresholds {
        let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        mezhved_core::monitoring::Thresholds {
            poll_yellow_ms: ms(self.poll_yellow_seconds),
            poll_red_ms: ms(self.poll_red_seconds),
            queue_age_yellow_ms: ms(self.queue_age_yellow_seconds),
            queue_age_red_ms: ms(self.queue_age_red_seconds),
            error_rate_yellow: self.error_rate_yellow,
            error_rate_red: self.error_rate_red,
            error_rate_min_calls: self.error_rate_min_calls,
            overdue_yellow: self.overdue_yellow,
            overdue_red: self.overdue_red,
            certificate_warn_days: self.certificate_warn_days,
        }
    }

    fn problems(&self, problems: &mut Vec<String>) {
        let mut pair = |yellow: &str, red: &str, low: u64, high: u64| {
            if low == 0 || high < low {
                problems.push(format!(
                    "monitoring.{yellow} must be positive and at most monitoring.{red}"
                ));
            }
        };
        pair(
            "poll_yellow_seconds",
            "poll_red_seconds",
            self.poll_yellow_seconds,
            self.poll_red_seconds,
        );
        pair(
            "queue_age_yellow_seconds",
            "queue_age_red_seconds",
            self.queue_age_yellow_seconds,
            self.queue_age_red_seconds,
        );
        pair(
            "overdue_yellow",
            "overdue_red",
            self.overdue_yellow,
            self.overdue_red,
        );
        if !(self.error_rate_yellow > 0.0
            && self.error_rate_yellow <= self.error_rate_red
            && self.error_rate_red <= 1.0)
        {
            problems.push(
                "monitoring.error_rate_yellow and error_rate_red: 0 < yellow ≤ red ≤ 1".into(),
            );
        }
        if !(60..=7 * 86_400).contains(&self.window_seconds) {
            problems.push("monitoring.window_seconds must be 60 to 604800".into());
        }
        if !(1..=3650).contains(&self.certificate_warn_days) {
            problems.push("monitoring.certificate_warn_days must be 1 to 3650".into());
        }
        if self.disk_free_down_mb > self.disk_free_degraded_mb {
            problems.push(
                "monitoring.disk_free_down_mb must be at most monitoring.disk_free_degraded_mb"
                    .into(),
            );
        }
        if self.timer_lag_degraded_seconds == 0
            || self.timer_lag_down_seconds < self.timer_lag_degraded_seconds
        {
            problems.push("monitoring.timer_lag_degraded_seconds must be positive and at most monitoring.timer_lag_down_seconds".into());
        }
        if !(1..=86_400).contains(&self.alert_interval_seconds) {
            problems.push("monitoring.alert_interval_seconds must be 1 to 86400".into());
        }
        if self.snapshot_ttl_ms > 60_000 {
            problems.push(
                "monitoring.snapshot_ttl_ms must be at most 60000 (figures a minute old)".into(),
            );
        }
        if !(1..=20).contains(&self.webhook_max_attempts) {
            problems.push("monitoring.webhook_max_attempts must be 1 to 20".into());
        }
        if !(1..=300).contains(&self.webhook_timeout_seconds) {
            problems.push("monitoring.webhook_timeout_seconds must be 1 to 300".into());
        }
        if !self.webhook_url.is_empty() {
            if let Err(e) =
                crate::alerts::check_webhook_url(&self.webhook_url, self.webhook_allow_plain_http)
            {
                problems.push(format!("monitoring.webhook_url: {e}"));
            }
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditorConfig {
    pub name: String,
    /// SHA-256 (hex) of the auditor's bearer token.
    pub token_sha256: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            segment: 1,
            node: 1,
            server: ServerConfig::default(),
            log: LogConfig::default(),
            gateway_key: KeyConfig::default(),
            trust: TrustConfig::default(),
            registry: RegistryConfig::default(),
            exchange: ExchangeConfig::default(),
            limits: LimitsConfig::default(),
            operator: OperatorConfig::default(),
            journal: JournalConfig::default(),
            deadlines: DeadlinesConfig::default(),
            jobs: JobsConfig::default(),
            push: PushConfig::default(),
            metrics: MetricsConfig::default(),
            monitoring: MonitoringConfig::default(),
            auditors: Vec::new(),
            dashboard: DashboardConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:7575".into(),
            public_url: String::new(),
            shutdown_grace_seconds: 10,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl Default for KeyConfig {
    fn default() -> Self {
        KeyConfig {
            key: PathBuf::from("keys/gateway.key.pem"),
            certificate: PathBuf::from("keys/gateway.cert.pem"),
        }
    }
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig {
            dir: PathBuf::from("trust"),
            revocation: Revocation::RequireCrl,
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            file: PathBuf::new(),
            reload_interval_ms: 1000,
        }
    }
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        ExchangeConfig {
            message_id_past_seconds: 24 * 3600,
            message_id_future_seconds: 300,
            visibility_timeout_seconds: 300,
            broker_name: "mezhved".into(),
            delivery_statuses: true,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_envelope_bytes: 16 << 20,
            max_attachment_bytes: 2 << 30,
            max_total_attachment_bytes: 4 << 30,
            max_attachments: 100,
            inline_delivery_limit: 1 << 20,
            max_xml_depth: 128,
            max_xml_elements: 500_000,
            max_attributes_per_element: 64,
        }
    }
}

/// Sets `value` at `path` in a TOML table, creating sections on the way.
fn set_path(root: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, sections) = path.split_last().ok_or("empty key")?;
    let mut table = root;
    for s in sections {
        let entry = table
            .entry(s.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| format!("{s} is not a section"))?;
    }
    table.insert(last.clone(), value);
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    }
}

impl Config {
    /// Reads the file (if given), applies the environment overrides in `env` (pairs of
    /// name and value; pass `std::env::vars()`), and resolves relative paths.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (mut table, base) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?;
                let table: toml::Table =
                    text.parse()
                        .map_err(|e: toml::de::Error| ConfigError::Parse {
                            path: p.display().to_string(),
                            message: e.to_string(),
                        })?;
                let base = p
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("."));
                (table, base)
            }
            None => (toml::Table::new(), PathBuf::from(".")),
        };
        let scalar_keys = Config::top_level_scalar_keys();
        let mut overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| {
                let Some(rest) = k.strip_prefix("MEZHVED_") else {
                    return false;
                };
                rest.contains("__") || scalar_keys.contains(&rest.to_ascii_lowercase())
            })
            .collect();
        overrides.sort();
        for (name, raw) in overrides {
            let key: Vec<String> = name["MEZHVED_".len()..]
                .split("__")
                .map(|s| s.to_ascii_lowercase())
                .collect();
            set_path(&mut table, &key, parse_env_value(&raw)).map_err(|message| {
                ConfigError::Environment {
                    name: name.clone(),
                    message,
                }
            })?;
        }
        let origin = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(defaults)".into());
        let mut config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: origin,
                    message: e.to_string(),
                })?;
        config.resolve_paths(&base);
        Ok(config)
    }

    /// The top-level keys that hold a value rather than a section (`data_dir`, `segment`,
    /// ...): the only names `MEZHVED_<NAME>` without `__` can set.
    fn top_level_scalar_keys() -> Vec<String> {
        match toml::Value::try_from(Config::default()) {
            Ok(toml::Value::Table(t)) => t
                .into_iter()
                .filter(|(_, v)| !v.is_table())
                .map(|(k, _)| k)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The journal's origin (checkpoint key name).
    pub fn journal_origin(&self) -> String {
        if self.journal.origin.is_empty() {
            format!("mezhved.local/segment-{}", self.segment)
        } else {
            self.journal.origin.clone()
        }
    }

    /// Where the subject key lives.
    pub fn subject_key_path(&self) -> PathBuf {
        if self.journal.subject_key.as_os_str().is_empty() {
            self.data_dir.join("subject.key")
        } else {
            self.journal.subject_key.clone()
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if !p.as_os_str().is_empty() && p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data_dir);
        fix(&mut self.journal.subject_key);
        for f in &mut self.deadlines.calendars {
            fix(f);
        }
        fix(&mut self.gateway_key.key);
        fix(&mut self.gateway_key.certificate);
        fix(&mut self.trust.dir);
        fix(&mut self.registry.file);
        fix(&mut self.push.ca_file);
    }

    /// Every problem, each naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        for (i, u) in self.dashboard.users.iter().enumerate() {
            if u.name.trim().is_empty() {
                problems.push(format!("dashboard.users[{i}].name must not be empty"));
            } else if u.name.trim() != u.name
                || u.name.chars().count() > 256
                || u.name.chars().any(char::is_control)
            {
                problems.push(format!(
                    "dashboard.users[{i}].name: at most 256 characters, no control characters, no spaces around it"
                ));
            }
            if crate::dashboard::auth::Role::parse(&u.role).is_none() {
                problems.push(format!(
                    "dashboard.users[{i}].role must be \"operator\" or \"auditor\""
                ));
            }
            if let Err(e) = crate::dashboard::auth::parse_hash(&u.password_hash) {
                problems.push(format!("dashboard.users[{i}].password_hash: {e}"));
            }
            if self.dashboard.users[..i].iter().any(|o| o.name == u.name) {
                problems.push(format!("dashboard.users[{i}].name is given twice"));
            }
        }
        if self.dashboard.session_idle_seconds == 0 || self.dashboard.session_max_seconds == 0 {
            problems.push(
                "dashboard.session_idle_seconds and session_max_seconds must be positive".into(),
            );
        }
        if self.data_dir.as_os_str().is_empty() {
            problems.push("data_dir must not be empty".to_string());
        }
        if !self.journal.origin.is_empty()
            && (self.journal.origin.contains(char::is_whitespace)
                || self.journal.origin.contains('+'))
        {
            problems.push(
                "journal.origin must contain no spaces and no '+' (it is the checkpoint key name)"
                    .into(),
            );
        }
        for (key, schedule) in [
            (
                "journal.checkpoint_schedule",
                &self.journal.checkpoint_schedule,
            ),
            ("jobs.retention_schedule", &self.jobs.retention_schedule),
            (
                "jobs.certificate_check_schedule",
                &self.jobs.certificate_check_schedule,
            ),
            (
                "jobs.calendar_reload_schedule",
                &self.jobs.calendar_reload_schedule,
            ),
            (
                "jobs.evaluation_report_schedule",
                &self.jobs.evaluation_report_schedule,
            ),
        ] {
            if let Err(e) = croner::parser::CronParser::builder()
                .seconds(croner::parser::Seconds::Required)
                .build()
                .parse(schedule)
            {
                problems.push(format!("{key} \"{schedule}\": {e}"));
            }
        }
        if u64::from(self.jobs.retention_days) * 24 * 3600
            <= self.exchange.message_id_past_seconds + self.exchange.message_id_future_seconds
        {
            problems.push(
                "jobs.retention_days must exceed the MessageID staleness window (exchange.message_id_past_seconds), or identical resends would be taken as new".into(),
            );
        }
        let d = &self.deadlines;
        if d.reply_working_days == 0 || d.reply_working_days > 60 {
            problems.push("deadlines.reply_working_days must be 1 to 60".into());
        }
        if d.reminder_working_days_before >= d.reply_working_days {
            problems.push(
                "deadlines.reminder_working_days_before must be below deadlines.reply_working_days"
                    .into(),
            );
        }
        if d.time_zone.parse::<chrono_tz::Tz>().is_err() {
            problems.push(format!(
                "deadlines.time_zone \"{}\" is not an IANA time zone (e.g. Europe/Moscow)",
                d.time_zone
            ));
        }
        if !["restart", "continue"].contains(&d.clarification.as_str()) {
            problems.push(format!(
                "deadlines.clarification \"{}\": restart or continue",
                d.clarification
            ));
        }
        for (i, f) in d.calendars.iter().enumerate() {
            if !f.is_file() {
                problems.push(format!(
                    "deadlines.calendars[{i}]: {} is not a readable file",
                    f.display()
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, a) in self.auditors.iter().enumerate() {
            if a.name.trim().is_empty() {
                problems.push(format!("auditors[{i}].name must not be empty"));
            } else if !names.insert(a.name.as_str()) || a.name == "operator" {
                problems.push(format!("auditors[{i}].name \"{}\" is used twice", a.name));
            }
            if hex::decode(&a.token_sha256).map(|h| h.len()) != Ok(32) {
                problems.push(format!("auditors[{i}].token_sha256 must be 64 hex digits"));
            }
            if a.token_sha256
                .eq_ignore_ascii_case(&self.operator.token_sha256)
            {
                problems.push(format!("auditors[{i}] must not share the operator's token"));
            }
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(format!(
                "server.listen \"{}\" is not an address:port",
                self.server.listen
            ));
        }
        let url = &self.server.public_url;
        if !url.is_empty() && !url.starts_with("http://") && !url.starts_with("https://") {
            problems.push("server.public_url must start with http:// or https://".into());
        }
        for (key, path) in [
            ("gateway_key.key", &self.gateway_key.key),
            ("gateway_key.certificate", &self.gateway_key.certificate),
        ] {
            if !path.is_file() {
                problems.push(format!("{key}: {} is not a readable file", path.display()));
            }
        }
        if !self.trust.dir.is_dir() {
            problems.push(format!(
                "trust.dir: {} is not a directory",
                self.trust.dir.display()
            ));
        }
        if !self.registry.file.as_os_str().is_empty() && !self.registry.file.is_file() {
            problems.push(format!(
                "registry.file: {} is not a readable file",
                self.registry.file.display()
            ));
        }
        if self.registry.reload_interval_ms == 0 {
            problems.push("registry.reload_interval_ms must be positive".into());
        }
        if self.exchange.visibility_timeout_seconds == 0 {
            problems.push("exchange.visibility_timeout_seconds must be positive".into());
        }
        if self.exchange.message_id_past_seconds == 0 {
            problems.push("exchange.message_id_past_seconds must be positive".into());
        }
        if self.exchange.broker_name.trim().is_empty() {
            problems.push("exchange.broker_name must not be empty".into());
        }
        let l = &self.limits;
        if l.max_envelope_bytes < 4096 {
            problems.push("limits.max_envelope_bytes must be at least 4096".into());
        }
        if l.max_attachment_bytes == 0 || l.max_total_attachment_bytes < l.max_attachment_bytes {
            problems.push(
                "limits.max_total_attachment_bytes must be at least limits.max_attachment_bytes (> 0)"
                    .into(),
            );
        }
        if l.inline_delivery_limit > l.max_envelope_bytes / 2 {
            problems.push("limits.inline_delivery_limit must be at most half of limits.max_envelope_bytes (base64 grows it by a third)".into());
        }
        if l.max_attachments == 0
            || l.max_xml_depth < 16
            || l.max_xml_elements < 1000
            || l.max_attributes_per_element < 8
        {
            problems.push("limits: max_attachments > 0, max_xml_depth ≥ 16, max_xml_elements ≥ 1000, max_attributes_per_element ≥ 8".into());
        }
        self.push.problems(&mut problems);
        self.monitoring.problems(&mut problems);
        let t = &self.operator.token_sha256;
        if !t.is_empty() && (t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit())) {
            problems.push(
                "operator.token_sha256 must be 64 hex digits (the SHA-256 of the token)".into(),
            );
        }
        let t = &self.metrics.token_sha256;
        if !t.is_empty() && (t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit())) {
            problems.push(
                "metrics.token_sha256 must be empty or 64 hex digits (the SHA-256 of the token)"
                    .into(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("mezhved.db")
    }

    /// The XML parser limits for calls.
    pub fn xml_limits(&self) -> mezhved_xml::Limits {
        mezhved_xml::Limits {
            max_bytes: self.limits.max_envelope_bytes as usize,
            max_depth: self.limits.max_xml_depth,
            max_elements: self.limits.max_xml_elements,
            max_attributes_per_element: self.limits.max_attributes_per_element,
            ..mezhved_xml::Limits::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_and_relative_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("mezhved.toml");
        std::fs::write(
            &file,
            "data_dir = \"d\"\n[server]\nlisten = \"127.0.0.1:1\"\n",
        )
        .expect("write");
        let c = Config::load(
            Some(&file),
            [
                (
                    "MEZHVED_SERVER__LISTEN".to_string(),
                    "127.0.0.1:9".to_string(),
                ),
                (
                    "MEZHVED_EXCHANGE__VISIBILITY_TIMEOUT_SECONDS".into(),
                    "7".into(),
                ),
                ("MEZHVED_SEGMENT".into(), "42".into()),
                ("OTHER".into(), "x".into()),
                // Not configuration: the log filter and a test harness's variable.
                ("MEZHVED_LOG".into(), "debug".into()),
                ("MEZHVED_BIN".into(), "/x/mezhved".into()),
                ("MEZHVED_CONFIG".into(), "elsewhere.toml".into()),
            ],
        )
        .expect("loads");
        assert_eq!(c.server.listen, "127.0.0.1:9");
        assert_eq!(c.exchange.visibility_timeout_seconds, 7);
        assert_eq!(c.segment, 42);
        assert_eq!(c.data_dir, dir.path().join("d"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[server]\nlisten_on = 1\n").expect("write");
        let e = Config::load(Some(&file), []).expect_err("unknown key");
        assert!(e.to_string().contains("listen_on"), "{e}");
        // A name with `__` is configuration: a misspelt section is refused, not ignored.
        let e = Config::load(
            None,
            [("MEZHVED_SERVRE__LISTEN".into(), "127.0.0.1:1".into())],
        )
        .expect_err("misspelt section");
        assert!(e.to_string().contains("servre"), "{e}");
        let c = Config {
            server: ServerConfig {
                listen: "nowhere".into(),
                ..ServerConfig::default()
            },
            ..Config::default()
        };
        let e = c.validate().expect_err("invalid").to_string();
        assert!(e.contains("server.listen"), "{e}");
        let c = Config {
            journal: JournalConfig {
                origin: "has space".into(),
                checkpoint_schedule: "every five minutes".into(),
                ..JournalConfig::default()
            },
            operator: OperatorConfig {
                token_sha256: "ab".repeat(32),
            },
            auditors: vec![
                AuditorConfig {
                    name: "a".into(),
                    token_sha256: "ab".repeat(32),
                },
                AuditorConfig {
                    name: "a".into(),
                    token_sha256: "xyz".into(),
                },
            ],
            ..Config::default()
        };
        let e = c.validate().expect_err("invalid").to_string();
        for want in [
            "journal.origin",
            "journal.checkpoint_schedule",
            "auditors[0] must not share the operator's token",
            "auditors[1].name \"a\" is used twice",
            "auditors[1].token_sha256",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
        // The default schedule parses.
        assert!(!Config::default()
            .validate()
            .map_err(|e| e.to_string())
            .err()
            .unwrap_or_default()
            .contains("checkpoint_schedule"));
        assert!(e.contains("gateway_key.key"), "{e}");
        assert!(e.contains("trust.dir"), "{e}");
    }

    #[test]
    fn push_section_defaults_and_problems_name_their_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[push]\nmax_attempts = 3\nallow_plain_http = true\nca_file = \"ca.pem\"\n",
        )
        .expect("write");
        let c = Config::load(Some(&file), []).expect("loads");
        assert_eq!(c.push.max_attempts, 3);
        assert!(c.push.allow_plain_http);
        assert_eq!(
            c.push.ca_file,
            dir.path().join("ca.pem"),
            "relative to the file"
        );
        assert_eq!(c.push.retry_base_seconds, 5, "default");
        let settings = c.push.settings();
        assert_eq!(settings.max_in_flight, 16);
        assert_eq!(settings.max_in_flight_per_system, 4);

        let c = Config {
            push: PushConfig {
                max_attempts: 0,
                retry_base_seconds: 10,
                retry_max_seconds: 5,
                request_timeout_seconds: 0,
                max_in_flight: 2,
                max_in_flight_per_system: 3,
                ca_file: dir.path().join("missing.pem"),
                allow_plain_http: false,
                max_reply_bytes: 10,
            },
            ..Config::default()
        };
        let e = c.validate().expect_err("invalid").to_string();
        for want in [
            "push.max_attempts",
            "push.retry_base_seconds",
            "push.request_timeout_seconds",
            "push.max_in_flight_per_system",
            "push.ca_file",
            "push.max_reply_bytes",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn metrics_section_defaults_and_a_bad_token_hash_is_named() {
        let d = MetricsConfig::default();
        assert!(d.enabled);
        assert!(d.token_sha256.is_empty(), "open by default");
        let c = Config {
            metrics: MetricsConfig {
                enabled: true,
                token_sha256: "not-hex".into(),
            },
            ..Config::default()
        };
        let e = c.validate().expect_err("invalid").to_string();
        assert!(e.contains("metrics.token_sha256"), "{e}");
    }

    #[test]
    fn monitoring_section_defaults_and_problems_name_their_keys() {
        let dir = std::env::temp_dir();
        let mut c = Config {
            data_dir: dir.clone(),
            ..Config::default()
        };
        let keys = |c: &Config| match c.validate() {
            Err(ConfigError::Invalid(p)) => p
                .into_iter()
                .filter(|p| p.starts_with("monitoring."))
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        assert!(keys(&c).is_empty(), "{:?}", keys(&c));
        assert_eq!(c.monitoring.thresholds().poll_red_ms, 900_000);
        c.monitoring.poll_yellow_seconds = 1000;
        c.monitoring.error_rate_red = 1.5;
        c.monitoring.disk_free_down_mb = 5000;
        c.monitoring.webhook_url = "http://alerts.example/hook".into();
        let p = keys(&c).join("; ");
        for want in [
            "monitoring.poll_yellow_seconds must be positive and at most monitoring.poll_red_seconds",
            "monitoring.error_rate_yellow",
            "monitoring.disk_free_down_mb",
            "monitoring.webhook_url: http:// only on the loopback",
        ] {
            assert!(p.contains(want), "{want}: {p}");
        }
        c.monitoring = MonitoringConfig {
            webhook_url: "http://alerts.example/hook".into(),
            webhook_allow_plain_http: true,
            ..MonitoringConfig::default()
        };
        assert!(keys(&c).is_empty(), "{:?}", keys(&c));
    }
}
