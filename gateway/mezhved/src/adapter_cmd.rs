//! `mezhved adapter --config adapter.toml`: the agency-side adapter sidecar
//! (`mezhved-adapter`, docs/adapter.md). `--check-config` loads and checks the
//! configuration, the key and the trust store without starting.

use clap::Args;
use mezhved_adapter::config::LogFormat;
use mezhved_adapter::{Adapter, AdapterConfig};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct AdapterArgs {
    /// The adapter's configuration file (TOML; see deploy/adapter/).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Check the configuration (and the key, trust store and gateway certificate it
    /// names) and exit.
    #[arg(long)]
    pub check_config: bool,
}

fn init_tracing(config: &AdapterConfig) {
    crate::gateway_cmd::init_stderr_tracing(
        &config.log.level,
        config.log.format == LogFormat::Json,
    );
}

/// `mezhved adapter`.
pub fn adapter(args: AdapterArgs, out: &mut dyn Write) -> Result<(), String> {
    let config = AdapterConfig::load(&args.config).map_err(|e| e.to_string())?;
    if args.check_config {
        mezhved_adapter::check_config(&config).map_err(|e| e.to_string())?;
        let _ = writeln!(
            out,
            "adapter configuration is valid: system {}, gateway {}, api {}, data {}, provider {}",
            config.system,
            config.gateway.url,
            config.api.listen,
            config.data_dir.display(),
            if config.provider.enabled {
                format!("{:?}", config.provider.mode).to_lowercase()
            } else {
                "off".into()
            }
        );
        return Ok(());
    }
    config.validate().map_err(|e| e.to_string())?;
    init_tracing(&config);
    crate::gateway_cmd::runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.api.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.api.listen))?;
        let system = config.system.clone();
        let adapter = Adapter::open(config).await.map_err(|e| e.to_string())?;
        if let Ok(addr) = listener.local_addr() {
            // Scripts and tests read this line: it comes once the store is open.
            println!("mezhved adapter listening on http://{addr} (system {system})");
        }
        adapter
            .serve(listener, crate::gateway_cmd::shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    })
}
