//! The gateway process: [`run`] wires the store, registry, trust store, gateway key and
//! exchange together and serves them until `shutdown` resolves.
//!
//! Shutdown invariant: when `shutdown` resolves the listener stops accepting, in-flight
//! calls get [`ServerConfig::shutdown_grace_seconds`](crate::config::ServerConfig) to
//! finish, and the store's writer commits what it holds before the process ends. A call
//! is answered only after its commit, so an answered call is never lost; an unanswered
//! one is retried by its sender and recognised by its MessageID. The push loop stops
//! claiming at the same moment and its POSTs in flight finish (an Ack that arrives then
//! is applied) before the store closes; a push cut short is retried after the restart.

use crate::config::{Config, Revocation};
use crate::{journal_api, report_api, rest, schemas, soap};
use axum::routing::{get, post};
use axum::Router;
use mezhved_core::clock::Clock;
use mezhved_core::deadlines::{ClarificationPolicy, DeadlineRules, DeadlineRunner};
use mezhved_core::exchange::{Exchange, Settings};
use mezhved_core::journal::Journal;
use mezhved_core::push::{PushRunner, PushTransport};
use mezhved_core::registry::{check_push_urls, RegistryError, RegistryFile, RegistryHandle};
use mezhved_dsig::crypto::SigningKey;
use mezhved_dsig::trust::{RevocationPolicy, TrustStore};
use mezhved_store::sqlite::{SqliteOptions, SqliteStore};
use mezhved_store::Store;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;

#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("store: {0}")]
    Store(#[from] mezhved_store::StoreError),
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    #[error("gateway key or trust store: {0}")]
    Keys(#[from] mezhved_dsig::error::DsigError),
    #[error("exchange: {0}")]
    Exchange(#[from] mezhved_core::error::ExchangeError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("subject key {path}: {message}")]
    SubjectKey { path: String, message: String },
    #[error("scheduler: {0}")]
    Scheduler(String),
    #[error("production calendar: {0}")]
    Calendar(#[from] mezhved_core::calendar::CalendarError),
    #[error(transparent)]
    Push(#[from] crate::push::PushTransportError),
}

/// The built-in federal calendar, then the configured files (later files win).
pub fn load_calendar(config: &Config) -> Result<mezhved_core::calendar::Calendar, ServerError> {
    let mut texts = vec![(
        "builtin:ru-federal.toml".to_string(),
        mezhved_core::calendar::BUILTIN_RU_FEDERAL.to_string(),
    )];
    for f in &config.deadlines.calendars {
        texts.push((f.display().to_string(), std::fs::read_to_string(f)?));
    }
    let refs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(l, t)| (l.as_str(), t.as_str()))
        .collect();
    Ok(mezhved_core::calendar::Calendar::from_toml_strs(&refs)?)
}

/// The deadline rules `config` describes.
pub fn deadline_rules(config: &Config) -> Result<DeadlineRules, ServerError> {
    let calendar = load_calendar(config)?;
    let d = &config.deadlines;
    Ok(DeadlineRules {
        reply_working_days: d.reply_working_days,
        reminder_working_days_before: d.reminder_working_days_before,
        time_zone: d
            .time_zone
            .parse()
            .map_err(|_| ServerError::Io(std::io::Error::other("bad deadlines.time_zone")))?,
        calendar: Arc::new(mezhved_core::deadlines::CalendarHandle::new(calendar)),
        clarification: if d.clarification == "continue" {
            ClarificationPolicy::Continue
        } else {
            ClarificationPolicy::Restart
        },
    })
}

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub exchange: Arc<Exchange>,
    pub store: Arc<dyn Store>,
    pub registry: Arc<RegistryHandle>,
    pub journal: Arc<Journal>,
    /// This process's name in deadline leases and job slots (unique per start).
    pub node_name: String,
    /// The operator's key for the keyed hash of search details.
    pub subject_key: Vec<u8>,
    pub clock: Arc<dyn Clock>,
    /// The last monitoring snapshot (`[monitoring] snapshot_ttl_ms`).
    pub monitoring_cache: crate::monitoring_api::SnapshotCache,
    /// Held across storing the maintenance switch and applying it, so that the switch in
    /// force is always the last one journaled.
    pub maintenance_lock: tokio::sync::Mutex<()>,
}

/// Reads the subject key, making it (32 random bytes, mode 0600) if it does not exist.
fn load_subject_key(path: &std::path::Path) -> Result<Vec<u8>, ServerError> {
    let err = |message: String| ServerError::SubjectKey {
        path: path.display().to_string(),
        message,
    };
    match std::fs::read(path) {
        Ok(k) if k.len() >= 32 => return Ok(k),
        Ok(k) => return Err(err(format!("{} bytes; at least 32 are needed", k.len()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e.to_string())),
    }
    let mut key = vec![0u8; 32];
    openssl::rand::rand_bytes(&mut key).map_err(|e| err(e.to_string()))?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| err(e.to_string()))?;
    f.write_all(&key)
        .and_then(|()| f.sync_all())
        .map_err(|e| err(e.to_string()))?;
    tracing::info!(path = %path.display(), "made a new subject key for the journal's keyed hashes");
    Ok(key)
}

/// Everything [`run`] builds before it serves; `mezhved bench` builds one too.
#[derive(Debug)]
pub struct Gateway {
    pub state: Arc<AppState>,
    sqlite: Arc<SqliteStore>,
    /// How this node POSTs pushes (HTTPS over OpenSSL; docs/push.md).
    push_transport: Arc<dyn PushTransport>,
}

impl Gateway {
    /// Opens the store, applies the registry file, loads keys and trust, and sweeps
    /// attachment files no message references.
    pub async fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Gateway, ServerError> {
        Self::open_with(config, clock, SqliteOptions::default()).await
    }

    /// [`Gateway::open`] with the store's options chosen by the caller: the benchmark
    /// turns the journal off this way to measure what it costs. `serve` never does.
    pub async fn open_with(
        config: Config,
        clock: Arc<dyn Clock>,
        store_options: SqliteOptions,
    ) -> Result<Gateway, ServerError> {
        config.validate()?;
        if config.metrics.enabled {
            // Before anything records (the store's writer does from its first commit).
            crate::metrics::install();
        }
        // GOST certificates and keys parse only once the engine is loaded; an
        // installation without the engine still serves RSA and ECDSA.
        if let Err(e) = mezhved_dsig::gost::ensure_loaded() {
            tracing::warn!(error = %e, "GOST engine not loaded: GOST signatures will be refused");
        }
        std::fs::create_dir_all(&config.data_dir)?;
        let sqlite = Arc::new(SqliteStore::open(&config.database_path(), store_options)?);
        let store: Arc<dyn Store> = sqlite.clone();
        if !config.registry.file.as_os_str().is_empty() {
            let file = RegistryFile::load(&config.registry.file)?;
            let base = config
                .registry
                .file
                .parent()
                .map(|p| p.to_path_buf())
                .unwrap_or_default();
            let changes = file.to_changes(&base)?;
            check_push_urls(&changes, config.push.allow_plain_http)?;
            if !changes.is_empty() {
                store
                    .change_registry(
                        "registry-file".into(),
                        mezhved_core::clock::to_ms(clock.now()),
                        changes,
                    )
                    .await?;
            }
        }
        let registry = Arc::new(RegistryHandle::load(&*store).await?);
        registry.set_plain_http_push(config.push.allow_plain_http);
        let push_transport = Arc::new(crate::push::HttpsPushTransport::new(&config.push)?);
        let trust = TrustStore::from_dir(&config.trust.dir)?.with_revocation_policy(
            match config.trust.revocation {
                Revocation::RequireCrl => RevocationPolicy::RequireCrl,
                Revocation::UseCrlIfPresent => RevocationPolicy::UseCrlIfPresent,
            },
        );
        let key = Arc::new(SigningKey::from_pem_files(
            &config.gateway_key.key,
            &config.gateway_key.certificate,
        )?);
        let subject_key = load_subject_key(&config.subject_key_path())?;
        let live = store.live_attachment_paths().await?;
        let swept = mezhved_core::attachments::sweep(&config.data_dir, &live)?;
        if swept > 0 {
            tracing::info!(
                files = swept,
                "removed attachment files no message references"
            );
        }
        let settings = Settings {
            limits: config.xml_limits(),
            message_id_past: Duration::from_secs(config.exchange.message_id_past_seconds),
            message_id_future: Duration::from_secs(config.exchange.message_id_future_seconds),
            visibility_timeout: Duration::from_secs(config.exchange.visibility_timeout_seconds),
            max_attachment_bytes: config.limits.max_attachment_bytes,
            max_total_attachment_bytes: config.limits.max_total_attachment_bytes,
            inline_delivery_limit: config.limits.inline_delivery_limit,
            data_dir: config.data_dir.clone(),
            broker_name: config.exchange.broker_name.clone(),
            delivery_statuses: config.exchange.delivery_statuses,
            subject_key: subject_key.clone(),
            deadlines: Some(deadline_rules(&config)?),
        };
        let journal = Arc::new(Journal::new(
            store.clone(),
            key.clone(),
            config.journal_origin(),
            clock.clone(),
        ));
        let exchange = Exchange::new(
            store.clone(),
            registry.clone(),
            Arc::new(trust),
            key,
            config.segment,
            config.node,
            clock.clone(),
            settings,
        )
        .await?;
        let config_segment_node = (config.segment, config.node);
        let gateway = Gateway {
            state: Arc::new(AppState {
                config,
                exchange: Arc::new(exchange),
                store,
                registry,
                journal,
                node_name: format!(
                    "node-{}-{}-{}",
                    config_segment_node.0,
                    config_segment_node.1,
                    uuid::Uuid::new_v4().simple()
                ),
                subject_key,
                clock,
                monitoring_cache: Default::default(),
                maintenance_lock: Default::default(),
            }),
            sqlite,
            push_transport,
        };
        // The operator's maintenance switch survives restarts (docs/monitoring.md).
        crate::monitoring_api::load_maintenance(&gateway.state).await?;
        Ok(gateway)
    }

    /// The same gateway with signature checks and signing switched off, for the
    /// benchmark's "no crypto" run. Must be called before serving.
    pub fn disable_signatures_for_bench(&mut self) -> Result<(), ServerError> {
        let state = Arc::get_mut(&mut self.state).ok_or_else(|| {
            ServerError::Io(std::io::Error::other("the gateway is already serving"))
        })?;
        let exchange = Arc::get_mut(&mut state.exchange).ok_or_else(|| {
            ServerError::Io(std::io::Error::other("the exchange is already shared"))
        })?;
        exchange.disable_signatures_for_bench();
        Ok(())
    }

    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// Serves until `shutdown` resolves, then drains and closes the store.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let grace = Duration::from_secs(self.state.config.server.shutdown_grace_seconds);
        let app = self.router();
        let registry = self.state.registry.clone();
        let store = self.state.store.clone();
        let push_wake = self.state.exchange.push_wake();
        let interval = Duration::from_millis(self.state.config.registry.reload_interval_ms);
        let reloader = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match registry.refresh(&*store).await {
                    Ok(true) => {
                        tracing::info!(version = registry.get().version(), "registry reloaded");
                        // A system may have gained a push endpoint (and a backlog to push).
                        push_wake.notify_one();
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "registry reload failed"),
                }
            }
        });
        let scheduler = crate::jobs::start(self.state.clone()).await?;
        // Alert rules, evaluated periodically (docs/monitoring.md).
        let alerts = crate::alerts::start(self.state.clone());
        // This node's deadline timer; its name in leases is unique per process.
        let (timer_stop, timer_stopped) = tokio::sync::oneshot::channel::<()>();
        let timer = DeadlineRunner::new(
            self.state.store.clone(),
            self.state.exchange.clone(),
            self.state.clock.clone(),
            self.state.node_name.clone(),
            self.state.config.data_dir.clone(),
        );
        let timer = tokio::spawn(timer.run(async move {
            let _ = timer_stopped.await;
        }));
        // This node's push loop (docs/push.md).
        let (push_stop, push_stopped) = tokio::sync::oneshot::channel::<()>();
        let mut push_stop = Some(push_stop);
        let pusher = PushRunner::new(
            self.state.exchange.clone(),
            self.state.clock.clone(),
            self.push_transport.clone(),
            self.state.config.push.settings(),
        );
        let pusher = tokio::spawn(pusher.run(async move {
            let _ = push_stopped.await;
        }));
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "serving");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        // The peer address reaches handlers that need it (the dashboard's login throttle).
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop_rx.await;
        });
        let mut server = std::pin::pin!(std::future::IntoFuture::into_future(server));
        tokio::select! {
            r = &mut server => r?,
            () = shutdown => {
                tracing::info!(grace_seconds = grace.as_secs(), "shutting down: finishing in-flight calls");
                let _ = stop_tx.send(());
                // No new pushes either; the ones in flight finish alongside the calls.
                if let Some(stop) = push_stop.take() {
                    let _ = stop.send(());
                }
                match tokio::time::timeout(grace, &mut server).await {
                    Ok(r) => r?,
                    Err(_) => tracing::warn!("grace period over: unfinished calls are dropped unanswered"),
                }
            }
        }
        reloader.abort();
        alerts.abort();
        // The systems' last poll times outlive this process (docs/monitoring.md).
        if let Err(e) = crate::monitoring_api::flush_activity(&self.state).await {
            tracing::warn!(error = %e, "could not save the systems' last poll times");
        }
        let _ = timer_stop.send(());
        let _ = timer.await;
        // (Already told to stop unless the server ended by itself.) Its attempts in flight
        // apply their Acks through the store, so it ends before the store closes.
        if let Some(stop) = push_stop.take() {
            let _ = stop.send(());
        }
        let _ = pusher.await;
        let mut scheduler = scheduler;
        if let Err(e) = scheduler.shutdown().await {
            tracing::warn!(error = %e, "scheduler did not stop cleanly");
        }
        // A last checkpoint, so that what was journaled before the stop is signed.
        if let Err(e) = self.state.journal.checkpoint().await {
            tracing::warn!(error = %e, "final journal checkpoint failed");
        }
        self.sqlite.close();
        tracing::info!("stopped");
        Ok(())
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/smev/v1.1", post(soap::endpoint).get(schemas::wsdl))
        .route("/schemas/{*path}", get(schemas::schema))
        .merge(crate::monitoring_api::health_router())
        .merge(metrics_router(&state))
        .nest("/api/v1/registry", rest::registry_router(state.clone()))
        .nest("/api/v1/paper", rest::paper_router(state.clone()))
        .nest(
            "/api/v1/monitoring",
            crate::monitoring_api::monitoring_router(state.clone()),
        )
        .nest(
            "/api/v1/maintenance",
            crate::monitoring_api::maintenance_router(state.clone()),
        )
        .nest(
            "/api/v1/journal",
            journal_api::journal_router(state.clone()),
        )
        .nest("/api/v1/reports", report_api::report_router(state.clone()))
        .merge(dashboard_router(&state))
        .with_state(state)
}

/// The web dashboard under `/ui` when `[dashboard] enabled` (docs/dashboard.md).
fn dashboard_router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    if state.config.dashboard.enabled {
        Router::new()
            .route(
                "/ui/",
                get(|| async { crate::dashboard::redirect("/ui", &[]) }),
            )
            .nest("/ui", crate::dashboard::router(state.clone()))
    } else {
        Router::new()
    }
}

/// `GET /metrics` when `[metrics] enabled` (docs/metrics.md).
fn metrics_router(state: &AppState) -> Router<Arc<AppState>> {
    if state.config.metrics.enabled {
        Router::new().route("/metrics", get(crate::metrics::endpoint))
    } else {
        Router::new()
    }
}

/// Runs the gateway: the library side of `mezhved serve`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    clock: Arc<dyn Clock>,
) -> Result<(), ServerError> {
    Gateway::open(config, clock)
        .await?
        .serve(listener, shutdown)
        .await
}
