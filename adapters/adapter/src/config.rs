//! The adapter's configuration: one TOML file, every key with a default, checked by
//! [`AdapterConfig::validate`] — the same code path `mezhved adapter --check-config` runs.
//!
//! Relative paths are relative to the directory of the configuration file. There are no
//! environment overrides: an adapter runs beside a gateway whose `MEZHVED_*` variables
//! must not leak into it.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid adapter configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdapterConfig {
    /// The adapter's database (`adapter.db`) and attachment files (`files/`).
    pub data_dir: PathBuf,
    /// The information system's mnemonic in the gateway's registry (e.g. `USZN_IS`).
    pub system: String,
    /// The agency's own registration numbers: `<prefix>-OUT-<n>` for requests it sends
    /// (the first of triple registration), `<prefix>-IN-<n>` for messages it receives (the
    /// third).
    pub registration_prefix: String,
    /// The agency's time zone: the date of its registrations (`SentOn`,
    /// `SenderRegistration/Date`).
    pub time_zone: String,
    /// How long in-flight calls may take to finish after SIGTERM.
    pub shutdown_grace_seconds: u64,
    pub gateway: GatewayConfig,
    pub key: KeyConfig,
    pub api: ApiConfig,
    pub consumer: ConsumerConfig,
    pub provider: ProviderConfig,
    pub sender: SenderConfig,
    pub retry: RetryConfig,
    pub poll: PollConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// The gateway's SOAP endpoint, e.g. `http://127.0.0.1:7575/smev/v1.1`.
    pub url: String,
    /// Trust store directory (CA certificates and CRLs) for the gateway's signatures.
    pub trust_dir: PathBuf,
    /// The gateway's certificate (PEM): only answers signed with exactly this certificate
    /// are accepted. Empty: any certificate the trust store accepts.
    pub certificate: PathBuf,
    /// Every SOAP call is bounded by this.
    pub timeout_seconds: u64,
    /// For an `https://` URL: PEM roots that the gateway's TLS certificate must chain to
    /// (empty: the system's default roots).
    pub tls_ca_file: PathBuf,
    /// A client certificate chain and its key (PEM), where the gateway's front asks for
    /// one (mutual TLS); both or neither.
    pub tls_client_certificate: PathBuf,
    pub tls_client_key: PathBuf,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KeyConfig {
    /// PEM private key of the information system (signs every call).
    pub key: PathBuf,
    /// PEM certificate of that key (registered for the system at the gateway).
    pub certificate: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// The local API (and `/push`) address.
    pub listen: String,
    /// SHA-256 (hex) of the bearer token `/api/v1/*` requires; empty: no token (listen on
    /// a loopback address only).
    pub token_sha256: String,
    /// The largest request body (JSON with base64 files, or a pushed MTOM message).
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerConfig {
    /// Poll GetResponse for answers to this system's requests (off for a system the
    /// gateway pushes responses to only).
    pub poll_responses: bool,
    /// Poll GetStatus for the gateway's processing statuses (delivered, reminder,
    /// overdue, expired); they concern the system as consumer and as provider.
    pub poll_statuses: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProviderMode {
    /// Each new request is POSTed to `callback_url`.
    Callback,
    /// The agency lists requests and answers through the local API.
    Queue,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KindConfig {
    pub namespace: String,
    pub root_element: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderConfig {
    /// This system provides data: requests are received (polled or pushed), handed to
    /// the agency (`mode`) and answered.
    pub enabled: bool,
    /// Poll GetRequest for the kinds below; off for a system the gateway pushes to only.
    pub poll: bool,
    /// The kinds to poll, one GetRequest each; empty: one GetRequest for any kind.
    pub kinds: Vec<KindConfig>,
    pub mode: ProviderMode,
    /// `callback` mode: where each new request is POSTed.
    pub callback_url: String,
    pub callback_timeout_seconds: u64,
    /// Callbacks in flight at once.
    pub callback_concurrency: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SenderConfig {
    /// SendRequest/SendResponse calls in flight at once.
    pub concurrency: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// The first pause after a failed call (or callback); doubled, with jitter, per attempt.
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PollConfig {
    /// The pause after an empty poll; doubled (with jitter) while the queues stay empty.
    pub idle_min_ms: u64,
    pub idle_max_ms: u64,
    /// Get… calls in flight at once per queue while it holds messages (each message is
    /// stored and acknowledged by the call that fetched it).
    pub concurrency: usize,
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
    /// A tracing filter, e.g. `info` or `mezhved_adapter=debug,info`.
    pub level: String,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        AdapterConfig {
            data_dir: PathBuf::from("adapter-data"),
            system: String::new(),
            registration_prefix: String::new(),
            time_zone: "Europe/Moscow".into(),
            shutdown_grace_seconds: 10,
            gateway: GatewayConfig::default(),
            key: KeyConfig::default(),
            api: ApiConfig::default(),
            consumer: ConsumerConfig::default(),
            provider: ProviderConfig::default(),
            sender: SenderConfig::default(),
            retry: RetryConfig::default(),
            poll: PollConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            url: "http://127.0.0.1:7575/smev/v1.1".into(),
            trust_dir: PathBuf::from("trust"),
            certificate: PathBuf::new(),
            timeout_seconds: 60,
            tls_ca_file: PathBuf::new(),
            tls_client_certificate: PathBuf::new(),
            tls_client_key: PathBuf::new(),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:7600".into(),
            token_sha256: String::new(),
            max_body_bytes: 64 << 20,
        }
    }
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            poll_responses: true,
            poll_statuses: true,
        }
    }
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            enabled: false,
            poll: true,
            kinds: Vec::new(),
            mode: ProviderMode::Queue,
            callback_url: String::new(),
            callback_timeout_seconds: 30,
            callback_concurrency: 4,
        }
    }
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig { concurrency: 4 }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            base_delay_ms: 500,
            max_delay_ms: 60_000,
        }
    }
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            idle_min_ms: 200,
            idle_max_ms: 5_000,
            concurrency: 4,
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

impl AdapterConfig {
    /// Reads the file and resolves relative paths against its directory.
    pub fn load(path: &Path) -> Result<AdapterConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut config = AdapterConfig::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        config.resolve_paths(&base);
        Ok(config)
    }

    /// Parses TOML text (paths are left as written).
    pub fn from_toml(text: &str) -> Result<AdapterConfig, String> {
        toml::from_str(text).map_err(|e: toml::de::Error| e.to_string())
    }

    /// Makes relative paths relative to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if !p.as_os_str().is_empty() && p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data_dir);
        fix(&mut self.gateway.trust_dir);
        fix(&mut self.gateway.certificate);
        fix(&mut self.gateway.tls_ca_file);
        fix(&mut self.gateway.tls_client_certificate);
        fix(&mut self.gateway.tls_client_key);
        fix(&mut self.key.key);
        fix(&mut self.key.certificate);
    }

    /// TLS towards the gateway (an `https://` URL).
    pub fn gateway_tls(&self) -> mezhved_net::TlsSettings {
        let set = |p: &PathBuf| (!p.as_os_str().is_empty()).then(|| p.clone());
        mezhved_net::TlsSettings {
            ca_file: set(&self.gateway.tls_ca_file),
            client_certificate: set(&self.gateway.tls_client_certificate),
            client_key: set(&self.gateway.tls_client_key),
        }
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("adapter.db")
    }

    pub fn files_dir(&self) -> PathBuf {
        self.data_dir.join("files")
    }

    pub fn gateway_timeout(&self) -> Duration {
        Duration::from_secs(self.gateway.timeout_seconds)
    }

    pub fn retry_base(&self) -> Duration {
        Duration::from_millis(self.retry.base_delay_ms)
    }

    pub fn retry_max(&self) -> Duration {
        Duration::from_millis(self.retry.max_delay_ms)
    }

    /// The kinds GetRequest is called for (`None`: any kind).
    pub fn provider_selectors(&self) -> Vec<Option<(String, String)>> {
        if self.provider.kinds.is_empty() {
            vec![None]
        } else {
            self.provider
                .kinds
                .iter()
                .map(|k| Some((k.namespace.clone(), k.root_element.clone())))
                .collect()
        }
    }

    /// Every problem, each naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.data_dir.as_os_str().is_empty() {
            problems.push("data_dir must not be empty".to_string());
        }
        if self.system.trim().is_empty() {
            problems.push("system (the information system's mnemonic) must be set".into());
        }
        let prefix = &self.registration_prefix;
        if prefix.trim().is_empty() {
            problems.push("registration_prefix must be set (the agency's own numbering)".into());
        } else if prefix.len() > 64 || prefix.chars().any(|c| c.is_control() || c == '<') {
            problems.push(
                "registration_prefix must be at most 64 characters, without control characters or '<'"
                    .into(),
            );
        }
        if self.time_zone.parse::<chrono_tz::Tz>().is_err() {
            problems.push(format!(
                "time_zone \"{}\" is not an IANA time zone name",
                self.time_zone
            ));
        }
        match self.gateway.url.parse::<hyper::Uri>() {
            Ok(u) if u.scheme_str() == Some("http") || u.scheme_str() == Some("https") => {}
            _ => problems.push(format!(
                "gateway.url \"{}\" must be an http(s) URL",
                self.gateway.url
            )),
        }
        let tls_set = [
            &self.gateway.tls_ca_file,
            &self.gateway.tls_client_certificate,
            &self.gateway.tls_client_key,
        ]
        .iter()
        .any(|p| !p.as_os_str().is_empty());
        if tls_set && !self.gateway.url.starts_with("https://") {
            problems.push(
                "gateway.tls_*: set for an https:// gateway.url only (this one is not TLS)".into(),
            );
        }
        if self.gateway.tls_client_certificate.as_os_str().is_empty()
            != self.gateway.tls_client_key.as_os_str().is_empty()
        {
            problems.push(
                "gateway.tls_client_certificate and gateway.tls_client_key: both or neither".into(),
            );
        }
        if self.gateway.trust_dir.as_os_str().is_empty() {
            problems.push("gateway.trust_dir must be set".into());
        }
        if self.gateway.timeout_seconds == 0 {
            problems.push("gateway.timeout_seconds must be at least 1".into());
        }
        if self.key.key.as_os_str().is_empty() || self.key.certificate.as_os_str().is_empty() {
            problems.push("key.key and key.certificate must both be set".into());
        }
        if self.api.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(format!(
                "api.listen \"{}\" must be an address:port",
                self.api.listen
            ));
        }
        let token = &self.api.token_sha256;
        if !token.is_empty() && (token.len() != 64 || hex::decode(token).is_err()) {
            problems.push("api.token_sha256 must be 64 hexadecimal digits (or empty)".into());
        }
        if self.api.max_body_bytes < 1024 {
            problems.push("api.max_body_bytes must be at least 1024".into());
        }
        if self.provider.enabled {
            for (i, k) in self.provider.kinds.iter().enumerate() {
                if k.namespace.trim().is_empty() || k.root_element.trim().is_empty() {
                    problems.push(format!(
                        "provider.kinds[{i}]: namespace and root_element must both be set"
                    ));
                }
            }
            if self.provider.mode == ProviderMode::Callback {
                match self.provider.callback_url.parse::<hyper::Uri>() {
                    Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => {}
                    _ => problems.push(format!(
                        "provider.callback_url \"{}\" must be an http URL in callback mode",
                        self.provider.callback_url
                    )),
                }
                if self.provider.callback_timeout_seconds == 0 {
                    problems.push("provider.callback_timeout_seconds must be at least 1".into());
                }
                if self.provider.callback_concurrency == 0 {
                    problems.push("provider.callback_concurrency must be at least 1".into());
                }
            }
        }
        if self.sender.concurrency == 0 {
            problems.push("sender.concurrency must be at least 1".into());
        }
        if self.retry.base_delay_ms == 0 || self.retry.max_delay_ms < self.retry.base_delay_ms {
            problems
                .push("retry.base_delay_ms must be positive and at most retry.max_delay_ms".into());
        }
        if self.poll.idle_min_ms == 0 || self.poll.idle_max_ms < self.poll.idle_min_ms {
            problems.push("poll.idle_min_ms must be positive and at most poll.idle_max_ms".into());
        }
        if !(1..=64).contains(&self.poll.concurrency) {
            problems.push("poll.concurrency must be between 1 and 64".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AdapterConfig {
        let mut c = AdapterConfig::from_toml(
            r#"
            system = "USZN_IS"
            registration_prefix = "USZN"
            [key]
            key = "k.pem"
            certificate = "c.pem"
            "#,
        )
        .expect("parses");
        c.resolve_paths(Path::new("/etc/adapter"));
        c
    }

    #[test]
    fn defaults_fill_what_the_file_leaves_out_and_paths_follow_the_file() {
        let c = sample();
        c.validate().expect("valid");
        assert_eq!(c.key.key, PathBuf::from("/etc/adapter/k.pem"));
        assert_eq!(c.data_dir, PathBuf::from("/etc/adapter/adapter-data"));
        assert_eq!(c.provider.mode, ProviderMode::Queue);
        assert_eq!(c.provider_selectors(), vec![None]);
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        let mut c = sample();
        c.system.clear();
        c.provider.enabled = true;
        c.provider.mode = ProviderMode::Callback;
        c.api.token_sha256 = "abc".into();
        c.retry.max_delay_ms = 1;
        let Err(ConfigError::Invalid(problems)) = c.validate() else {
            panic!("invalid")
        };
        let text = problems.join("\n");
        for key in [
            "system",
            "provider.callback_url",
            "api.token_sha256",
            "retry.base_delay_ms",
        ] {
            assert!(text.contains(key), "{key} not named in {text}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = AdapterConfig::from_toml("sytem = \"X\"").expect_err("unknown key");
        assert!(e.contains("sytem"), "{e}");
        let e = AdapterConfig::from_toml("[provider]\nmode = \"push\"").expect_err("bad mode");
        assert!(e.contains("push") || e.contains("variant"), "{e}");
    }
}
