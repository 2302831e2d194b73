//! `mezhved report`: the evaluation report (docs/reports.md) on the local data directory,
//! the same one `serve` uses (it may be running). Computed from the journal alone, with
//! the configured production calendar and time zone, and journaled as an
//! `auditor.query` (`report.evaluation`) by `cli:<user>` before it is printed.

use crate::gateway_cmd::{load, runtime, ConfigArgs};
use clap::Args;
use mezhved_core::clock::{Clock, SystemClock};
use mezhved_core::journal::Journal;
use mezhved_dsig::crypto::SigningKey;
use mezhved_http::report_api::{self, Format, ReportQuery};
use mezhved_store::sqlite::{SqliteOptions, SqliteStore};
use std::io::Write;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The period's first day (YYYY-MM-DD, local date).
    #[arg(long, requires = "to", conflicts_with = "half_year")]
    pub from: Option<String>,
    /// The first day after the period (YYYY-MM-DD): the period is [from, to).
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// A half-year instead of --from/--to, e.g. 2026H2 (Kuzbass 7.2).
    #[arg(long, required_unless_present = "from")]
    pub half_year: Option<String>,
    /// Report as of this instant (RFC 3339, ms, or YYYY-MM-DD local midnight); default now.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Only this agency's rows (participant mnemonic).
    #[arg(long)]
    pub agency: Option<String>,
    /// Only requests of kinds with this root element.
    #[arg(long)]
    pub kind_root: Option<String>,
    /// json, csv or html.
    #[arg(long, default_value = "json")]
    pub format: String,
}

fn actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

/// `mezhved report …`.
pub fn report(args: ReportArgs, out: &mut dyn Write) -> Result<(), String> {
    let config = load(&args.config)?;
    let rules = mezhved_http::server::deadline_rules(&config).map_err(|e| e.to_string())?;
    let calendar = rules.calendar.get();
    let query = ReportQuery {
        from: args.from,
        to: args.to,
        half_year: args.half_year,
        as_of: args.as_of,
        agency: args.agency,
        kind_root: args.kind_root,
        format: Some(args.format),
    };
    let now = mezhved_core::clock::to_ms(SystemClock.now());
    let (params, format, recorded) = query.params(now, rules.time_zone).map_err(|p| p.detail)?;
    let _ = mezhved_dsig::gost::ensure_loaded();
    let path = config.database_path();
    if !path.is_file() {
        return Err(format!("no database at {}", path.display()));
    }
    let store = Arc::new(
        SqliteStore::open(
            &path,
            SqliteOptions {
                readers: 1,
                ..SqliteOptions::default()
            },
        )
        .map_err(|e| e.to_string())?,
    );
    let key = Arc::new(
        SigningKey::from_pem_files(&config.gateway_key.key, &config.gateway_key.certificate)
            .map_err(|e| e.to_string())?,
    );
    let journal = Journal::new(
        store.clone(),
        key,
        config.journal_origin(),
        Arc::new(SystemClock),
    );
    let result = runtime()?.block_on(async {
        let report = report_api::compute(&*store, params, &calendar)
            .await
            .map_err(|p| p.detail)?;
        journal
            .record_query(
                &actor(),
                "report.evaluation",
                recorded,
                Some(report_api::rows(&report)),
            )
            .await
            .map_err(|e| format!("the report could not be journaled, so it is not shown: {e}"))?;
        Ok::<_, String>(report)
    });
    store.close();
    let report = result?;
    let text = match format {
        Format::Json => serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n",
        Format::Csv => report_api::csv(&report),
        Format::Html => report_api::html(&report),
    };
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())
}
