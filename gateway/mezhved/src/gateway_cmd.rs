//! `mezhved serve`, `mezhved check-config` and `mezhved registry …`: the commands that
//! run or administer a gateway. They read the same configuration file, through the same
//! [`Config::load`] and [`Config::validate`].
//!
//! `registry` works on the store directly (SQLite allows a second process; it waits for
//! the gateway's writer) — the running gateway picks the change up within its
//! `registry.reload_interval_ms`. The REST API under `/api/v1/registry` does the same
//! over HTTP for remote operators.

use clap::{Args, Subcommand};
use mezhved_core::clock::SystemClock;
use mezhved_core::registry::{RegistryFile, RegistryHandle};
use mezhved_http::config::LogFormat;
use mezhved_http::Config;
use mezhved_store::sqlite::{SqliteOptions, SqliteStore};
use mezhved_store::{Grant, RegistryChange, Store};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Configuration file (TOML). Without it, defaults and MEZHVED_* variables only.
    #[arg(long, short, env = "MEZHVED_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Print the registry as JSON.
    Show(ConfigArgs),
    /// Apply a registry file (TOML, as `registry.file`) as upserts.
    Apply {
        #[command(flatten)]
        config: ConfigArgs,
        file: PathBuf,
    },
    /// Apply a JSON list of changes (the body of `POST /api/v1/registry/changes`).
    Changes {
        #[command(flatten)]
        config: ConfigArgs,
        file: PathBuf,
    },
    /// Grant a consumer system a kind of information.
    Grant {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long)]
        system: String,
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        root_element: String,
    },
    /// Revoke a grant.
    Revoke {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long)]
        system: String,
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        root_element: String,
    },
}

pub(crate) fn load(args: &ConfigArgs) -> Result<Config, String> {
    Config::load(args.config.as_deref(), std::env::vars()).map_err(|e| e.to_string())
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// `mezhved check-config`: exit 0 and a summary, or 2 and every problem.
pub fn check_config(args: ConfigArgs, out: &mut dyn Write) -> Result<(), String> {
    let config = load(&args)?;
    config.validate().map_err(|e| e.to_string())?;
    // GOST certificates parse only with the engine loaded (as `serve` does).
    let _ = mezhved_dsig::gost::ensure_loaded();
    if !config.registry.file.as_os_str().is_empty() {
        let file = RegistryFile::load(&config.registry.file).map_err(|e| e.to_string())?;
        let base = config
            .registry
            .file
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        let changes = file.to_changes(&base).map_err(|e| e.to_string())?;
        mezhved_core::registry::check_push_urls(&changes, config.push.allow_plain_http)
            .map_err(|e| format!("registry: {e}"))?;
        for c in &changes {
            if let RegistryChange::PutSystem(s) = c {
                for pem in &s.certificates {
                    mezhved_core::registry::certificate_fingerprint(pem)
                        .map_err(|e| format!("registry: system {}: {e}", s.mnemonic))?;
                }
            }
        }
    }
    mezhved_dsig::trust::TrustStore::from_dir(&config.trust.dir)
        .map_err(|e| format!("trust.dir: {e}"))?;
    mezhved_dsig::crypto::SigningKey::from_pem_files(
        &config.gateway_key.key,
        &config.gateway_key.certificate,
    )
    .map_err(|e| format!("gateway_key: {e}"))?;
    let _ = writeln!(
        out,
        "configuration is valid: listen {}, data {}, segment {}, node {}",
        config.server.listen,
        config.data_dir.display(),
        config.segment,
        config.node
    );
    Ok(())
}

fn init_tracing(config: &Config) {
    init_stderr_tracing(&config.log.level, config.log.format == LogFormat::Json);
}

/// Structured logs to stderr: `MEZHVED_LOG` or `level` as the filter, JSON lines or text.
pub(crate) fn init_stderr_tracing(level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEZHVED_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Completes at Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("interrupted"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

/// `mezhved serve`.
pub fn serve(args: ConfigArgs) -> Result<(), String> {
    let config = load(&args)?;
    config.validate().map_err(|e| e.to_string())?;
    init_tracing(&config);
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.server.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.server.listen))?;
        let gateway = mezhved_http::Gateway::open(config, Arc::new(SystemClock))
            .await
            .map_err(|e| e.to_string())?;
        if let Ok(addr) = listener.local_addr() {
            // Scripts (and tests) read this line to find the port, so it comes only once
            // the store is open and the registry loaded: a call made after it is served.
            println!("mezhved listening on http://{addr}/smev/v1.1 (WSDL: ?wsdl)");
        }
        gateway
            .serve(listener, shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    })
}

/// `mezhved registry …`.
pub fn registry(command: RegistryCommand, out: &mut dyn Write) -> Result<(), String> {
    let args = match &command {
        RegistryCommand::Show(c)
        | RegistryCommand::Apply { config: c, .. }
        | RegistryCommand::Changes { config: c, .. }
        | RegistryCommand::Grant { config: c, .. }
        | RegistryCommand::Revoke { config: c, .. } => c.clone(),
    };
    let config = load(&args)?;
    let _ = mezhved_dsig::gost::ensure_loaded();
    runtime()?.block_on(async move {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| e.to_string())?;
        let store = SqliteStore::open(
            &config.database_path(),
            SqliteOptions {
                readers: 1,
                ..SqliteOptions::default()
            },
        )
        .map_err(|e| e.to_string())?;
        let handle = RegistryHandle::load(&store)
            .await
            .map_err(|e| e.to_string())?;
        handle.set_plain_http_push(config.push.allow_plain_http);
        let changes = match command {
            RegistryCommand::Show(_) => {
                let data = store.registry().await.map_err(|e| e.to_string())?;
                let text = serde_json::to_string_pretty(&data).map_err(|e| e.to_string())?;
                let _ = writeln!(out, "{text}");
                return Ok(());
            }
            RegistryCommand::Apply { file, .. } => {
                let f = RegistryFile::load(&file).map_err(|e| e.to_string())?;
                let base = file.parent().map(|p| p.to_path_buf()).unwrap_or_default();
                f.to_changes(&base).map_err(|e| e.to_string())?
            }
            RegistryCommand::Changes { file, .. } => {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?
            }
            RegistryCommand::Grant {
                system,
                namespace,
                root_element,
                ..
            } => vec![RegistryChange::Grant(Grant {
                consumer_system: system,
                namespace,
                root_element,
            })],
            RegistryCommand::Revoke {
                system,
                namespace,
                root_element,
                ..
            } => vec![RegistryChange::Revoke(Grant {
                consumer_system: system,
                namespace,
                root_element,
            })],
        };
        let version = handle
            .change(
                &store,
                "cli",
                mezhved_core::clock::to_ms(mezhved_core::clock::Clock::now(&SystemClock)),
                changes,
            )
            .await
            .map_err(|e| e.to_string())?;
        let _ = writeln!(out, "registry version {version}");
        store.close();
        Ok(())
    })
}
