//! The adapter sidecar: what an agency installs next to its information system so that
//! the system speaks plain local JSON and never deals with SOAP, XMLDSig, polling,
//! acknowledgements or retries.
//!
//! ```text
//!  agency IS ──JSON──▶ api.rs ──▶ store.rs (SQLite: outbox · inbox · files) ◀── poller.rs ◀── GetRequest/
//!      ▲                               │                    ▲                  GetResponse/GetStatus
//!      │ callback (dispatch.rs)        ▼                    │ push.rs ◀──────── POST /push (gateway)
//!      └────────────────────────── sender.rs ──SendRequest/SendResponse──▶ gateway
//! ```
//!
//! Invariants (each module says how it keeps its part):
//! - **Nothing accepted is lost.** A submit is answered 202 only after its row and files
//!   are durable (`synchronous=FULL`); an answer given by the agency likewise. A message
//!   delivered by the gateway is acknowledged (Ack, or the signed reply to a push) only
//!   after it is stored.
//! - **Nothing is sent twice.** An outbox row's MessageID is fixed when the row is
//!   inserted; every resend is the same call, which the gateway answers idempotently by
//!   (system, MessageID). A repeated submit with the same `client_ref` finds the first row.
//! - **Nothing is received twice.** The inbox is unique by global ID; the agency's own
//!   registration number (the third of triple registration) is assigned in the
//!   transaction that stores the message, so a redelivery — after a crash between store
//!   and Ack — is acknowledged again with the same number.
//! - **Retries are bounded in rate, not in number**: a retryable failure (gateway down,
//!   `SMEVFailure`, timeout, callback unreachable) pauses that loop with jittered
//!   exponential backoff; a non-retryable fault ends the row as `rejected` with the fault.
//! - **Verify before trust**: every answer and delivered message carries the gateway's
//!   signatures, checked (and pinned to the gateway's certificate when configured) before
//!   anything is stored.
//! - Time comes from an injected clock ([`ClockFn`]); waiting uses tokio's timer (which
//!   tests may pause).

#![forbid(unsafe_code)]

pub mod api;
pub mod config;
mod dispatch;
pub mod files;
mod poller;
mod push;
mod sender;
pub mod store;
mod work;

pub use config::{AdapterConfig, ConfigError, KindConfig, ProviderMode};
pub use mezhved_client::system::ClockFn;

use files::Files;
use mezhved_client::{GatewayVerifier, SystemClient};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::Store;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Setup(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Milliseconds since the Unix epoch.
pub fn to_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

pub fn from_ms(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

#[allow(clippy::disallowed_methods)]
fn wall_clock() -> SystemTime {
    SystemTime::now()
}

/// The real clock (what `mezhved adapter` runs with).
pub fn system_clock() -> ClockFn {
    Arc::new(wall_clock)
}

/// Every task selects on this to stop: set once, at shutdown.
#[derive(Debug, Clone)]
pub(crate) struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    pub(crate) fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes when shutdown begins.
    pub(crate) async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// The adapter's view of the gateway, for `/health`.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct GatewayHealth {
    pub last_success_at: Option<String>,
    pub last_error_at: Option<String>,
    pub last_error: Option<String>,
}

/// What every part shares.
pub(crate) struct Inner {
    pub(crate) config: AdapterConfig,
    pub(crate) store: Store,
    pub(crate) client: SystemClient,
    pub(crate) clock: ClockFn,
    pub(crate) sender_wake: Arc<Notify>,
    pub(crate) dispatch_wake: Arc<Notify>,
    pub(crate) health: Mutex<GatewayHealth>,
    pub(crate) time_zone: chrono_tz::Tz,
    /// SHA-256 of the API token, when one is required.
    pub(crate) token_sha256: Option<Vec<u8>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("system", &self.config.system)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Inner {
    pub(crate) fn now(&self) -> SystemTime {
        (self.clock)()
    }

    pub(crate) fn now_ms(&self) -> i64 {
        to_ms(self.now())
    }

    /// The agency's date today (its time zone), YYYY-MM-DD.
    pub(crate) fn today(&self) -> String {
        let utc: chrono::DateTime<chrono::Utc> = self.now().into();
        utc.with_timezone(&self.time_zone).date_naive().to_string()
    }

    pub(crate) fn gateway_ok(&self) {
        let now = store::rfc3339(self.now_ms());
        if let Ok(mut h) = self.health.lock() {
            h.last_success_at = Some(now);
        }
    }

    pub(crate) fn gateway_failed(&self, error: &str) {
        let now = store::rfc3339(self.now_ms());
        if let Ok(mut h) = self.health.lock() {
            h.last_error_at = Some(now);
            h.last_error = Some(error.to_string());
        }
    }

    pub(crate) fn callback_mode(&self) -> bool {
        self.config.provider.enabled && self.config.provider.mode == ProviderMode::Callback
    }
}

/// Loads the key, the trust store and the pinned certificate: everything `open` needs
/// besides the store. `mezhved adapter --check-config` runs this.
pub fn check_config(config: &AdapterConfig) -> Result<(), AdapterError> {
    config.validate()?;
    load_client(config, system_clock()).map(|_| ())
}

fn load_client(config: &AdapterConfig, clock: ClockFn) -> Result<SystemClient, AdapterError> {
    // GOST keys and certificates parse only with the engine loaded.
    if let Err(e) = mezhved_dsig::gost::ensure_loaded() {
        tracing::debug!(error = %e, "GOST engine not loaded");
    }
    let key =
        mezhved_dsig::crypto::SigningKey::from_pem_files(&config.key.key, &config.key.certificate)
            .map_err(|e| AdapterError::Setup(format!("key: {e}")))?;
    let pin = if config.gateway.certificate.as_os_str().is_empty() {
        None
    } else {
        Some(config.gateway.certificate.as_path())
    };
    let verifier = GatewayVerifier::from_files(&config.gateway.trust_dir, pin)
        .map_err(|e| AdapterError::Setup(format!("gateway.trust_dir/certificate: {e}")))?;
    let client = SystemClient::with_tls(
        &config.gateway.url,
        &config.gateway_tls(),
        Arc::new(key),
        Some(Arc::new(verifier)),
    )
    .map_err(|e| AdapterError::Setup(format!("gateway.url/tls: {e}")))?
    .with_clock(clock)
    .with_timeout(config.gateway_timeout());
    Ok(client)
}

/// An opened adapter: its store is open and its keys loaded; [`Adapter::serve`] runs it.
#[derive(Debug)]
pub struct Adapter {
    inner: Arc<Inner>,
}

impl Adapter {
    /// Opens with the real clock.
    pub async fn open(config: AdapterConfig) -> Result<Adapter, AdapterError> {
        Self::open_with_clock(config, system_clock()).await
    }

    /// Validates the configuration, loads the key and the trust store, opens (creating)
    /// the store and removes attachment files no row names. Once this returns, a call to
    /// the listener given to [`Adapter::serve`] is served: the adapter is ready.
    pub async fn open_with_clock(
        config: AdapterConfig,
        clock: ClockFn,
    ) -> Result<Adapter, AdapterError> {
        config.validate()?;
        let time_zone: chrono_tz::Tz = config
            .time_zone
            .parse()
            .map_err(|_| AdapterError::Setup(format!("time_zone {}", config.time_zone)))?;
        std::fs::create_dir_all(&config.data_dir)?;
        let files = Files::new(config.files_dir())?;
        let client = load_client(&config, clock.clone())?.with_attachment_dir(files.incoming_dir());
        let db = config.database_path();
        let store = tokio::task::spawn_blocking(move || Store::open(&db, files))
            .await
            .map_err(|e| AdapterError::Setup(e.to_string()))??;
        let token_sha256 = if config.api.token_sha256.is_empty() {
            None
        } else {
            Some(
                hex::decode(&config.api.token_sha256)
                    .map_err(|e| AdapterError::Setup(format!("api.token_sha256: {e}")))?,
            )
        };
        Ok(Adapter {
            inner: Arc::new(Inner {
                config,
                store,
                client,
                clock,
                sender_wake: Arc::new(Notify::new()),
                dispatch_wake: Arc::new(Notify::new()),
                health: Mutex::new(GatewayHealth::default()),
                time_zone,
                token_sha256,
            }),
        })
    }

    /// The system this adapter speaks for.
    pub fn system(&self) -> &str {
        &self.inner.config.system
    }

    /// The HTTP API alone (without the loops), e.g. to mount it elsewhere.
    pub fn router(&self) -> axum::Router {
        api::router(self.inner.clone())
    }

    /// Serves the API on `listener` and runs the sender, the poller and (callback mode)
    /// the dispatcher until `shutdown` completes; then stops polling, lets in-flight
    /// calls finish within `shutdown_grace_seconds`, and closes the store.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AdapterError> {
        let inner = self.inner;
        let grace = Duration::from_secs(inner.config.shutdown_grace_seconds);
        let (stop_tx, stop_rx) = watch::channel(false);
        let stop = Shutdown(stop_rx);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(sender::run(inner.clone(), stop.clone()));
        tasks.spawn(poller::run(inner.clone(), stop.clone()));
        if inner.callback_mode() {
            tasks.spawn(dispatch::run(inner.clone(), stop.clone()));
        }
        let addr = listener.local_addr()?;
        tracing::info!(%addr, system = %inner.config.system, "adapter serving");
        let app = api::router(inner.clone());
        let mut server_stop = stop.clone();
        tasks.spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { server_stop.wait().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the API server failed");
            }
        });
        shutdown.await;
        tracing::info!(
            grace_seconds = grace.as_secs(),
            "shutting down: polling stops, in-flight calls finish"
        );
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(grace, async {
            while let Some(r) = tasks.join_next().await {
                if let Err(e) = r {
                    if e.is_panic() {
                        tracing::error!(error = %e, "an adapter task panicked");
                    }
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("grace period over: unfinished calls are abandoned (they are repeated at the next start)");
            tasks.shutdown().await;
        }
        if let Err(e) = inner.store.checkpoint().await {
            tracing::warn!(error = %e, "final WAL checkpoint failed");
        }
        tracing::info!("adapter stopped");
        Ok(())
    }
}

/// Runs an adapter until `shutdown` completes: the library side of `mezhved adapter`.
pub async fn run(
    config: AdapterConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AdapterError> {
    Adapter::open(config).await?.serve(listener, shutdown).await
}
