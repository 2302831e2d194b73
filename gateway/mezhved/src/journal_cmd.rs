//! `mezhved journal …`: the auditor's commands on the local data directory (the same
//! database `serve` uses, which may be running: SQLite's WAL lets both work).
//!
//! Every query is journaled as an `auditor.query` event whose actor is `cli:<user>`, like
//! the REST API's, before its answer is printed. `verify` only reads.

use crate::gateway_cmd::{load, runtime, ConfigArgs};
use clap::{Args, Subcommand};
use mezhved_core::clock::SystemClock;
use mezhved_core::journal::{AttestTarget, Journal, Verdict};
use mezhved_dsig::crypto::SigningKey;
use mezhved_http::journal_api::{card_json, consistency_json, inclusion_json, Search};
use mezhved_journal::checkpoint::NoteVerifier;
use mezhved_store::journal::hex;
use mezhved_store::sqlite::{SqliteOptions, SqliteStore};
use mezhved_store::Store;
use serde_json::json;
use std::io::Write;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Cards matching a filter, one JSON object per line.
    Query(QueryArgs),
    /// Every card matching a filter, as NDJSON or CSV.
    Export {
        #[command(flatten)]
        query: QueryArgs,
        /// ndjson or csv.
        #[arg(long, default_value = "ndjson")]
        format: String,
    },
    /// Recompute the whole Merkle tree from the stored events, check every stored node and
    /// checkpoint; exit 1 at the first divergence, reported precisely.
    Verify(ConfigArgs),
    /// Inclusion or consistency proof (JSON).
    #[command(subcommand)]
    Proof(ProofCommand),
    /// Sign a checkpoint now (if the journal grew) and print it.
    Checkpoint(ConfigArgs),
    /// Does a copy's checksum match what the journal registered? Exit 0 match, 1 mismatch
    /// or unknown.
    Attest {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(
            long,
            conflicts_with = "registration_number",
            required_unless_present = "registration_number"
        )]
        global_id: Option<String>,
        #[arg(long)]
        registration_number: Option<String>,
        /// SHA-256 (64 hex digits) of the copy.
        #[arg(long)]
        checksum: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProofCommand {
    Inclusion {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long)]
        seq: u64,
        /// Tree size (default: the journal's size now).
        #[arg(long)]
        size: Option<u64>,
    },
    Consistency {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long)]
        old: u64,
        #[arg(long)]
        new: Option<u64>,
    },
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Received at or after (RFC 3339, YYYY-MM-DD or ms).
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long)]
    pub agency: Option<String>,
    #[arg(long)]
    pub system: Option<String>,
    #[arg(long)]
    pub kind_namespace: Option<String>,
    #[arg(long)]
    pub kind_root: Option<String>,
    /// Public service register number.
    #[arg(long)]
    pub service: Option<String>,
    #[arg(long)]
    pub legal_act: Option<String>,
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub message_type: Option<String>,
    #[arg(long)]
    pub overdue: bool,
    #[arg(long)]
    pub global_id: Option<String>,
    #[arg(long)]
    pub sender_message_id: Option<String>,
    #[arg(long)]
    pub registration_number: Option<String>,
    #[arg(long)]
    pub subject_hash: Option<String>,
    #[arg(long)]
    pub after: Option<String>,
    #[arg(long)]
    pub limit: Option<u32>,
}

impl QueryArgs {
    fn search(&self) -> Search {
        Search {
            from: self.from.clone(),
            to: self.to.clone(),
            agency: self.agency.clone(),
            system: self.system.clone(),
            kind_namespace: self.kind_namespace.clone(),
            kind_root: self.kind_root.clone(),
            service: self.service.clone(),
            legal_act: self.legal_act.clone(),
            status: self.status.clone(),
            message_type: self.message_type.clone(),
            overdue: self.overdue.then_some(true),
            global_id: self.global_id.clone(),
            sender_message_id: self.sender_message_id.clone(),
            registration_number: self.registration_number.clone(),
            subject_hash: self.subject_hash.clone(),
            after: self.after.clone(),
            limit: self.limit,
            ..Search::default()
        }
    }
}

/// What a command failed with: bad usage or environment (exit 2) or a negative finding
/// (exit 1: divergence, mismatch).
#[derive(Debug)]
pub enum JournalFailure {
    Usage(String),
    Finding(String),
}

fn usage(e: impl std::fmt::Display) -> JournalFailure {
    JournalFailure::Usage(e.to_string())
}

fn now_ms() -> i64 {
    mezhved_core::clock::to_ms(mezhved_core::clock::Clock::now(&SystemClock))
}

fn actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

struct Opened {
    store: Arc<SqliteStore>,
    journal: Journal,
    subject_key: Vec<u8>,
}

fn open(config: &mezhved_http::Config) -> Result<Opened, JournalFailure> {
    let _ = mezhved_dsig::gost::ensure_loaded();
    let path = config.database_path();
    if !path.is_file() {
        return Err(usage(format!("no database at {}", path.display())));
    }
    let store = Arc::new(
        SqliteStore::open(
            &path,
            SqliteOptions {
                readers: 1,
                ..SqliteOptions::default()
            },
        )
        .map_err(usage)?,
    );
    let key = Arc::new(
        SigningKey::from_pem_files(&config.gateway_key.key, &config.gateway_key.certificate)
            .map_err(usage)?,
    );
    let subject_key = std::fs::read(config.subject_key_path()).unwrap_or_default();
    let journal = Journal::new(
        store.clone(),
        key,
        config.journal_origin(),
        Arc::new(SystemClock),
    );
    Ok(Opened {
        store,
        journal,
        subject_key,
    })
}

fn config_of(command: &JournalCommand) -> &ConfigArgs {
    match command {
        JournalCommand::Query(q) | JournalCommand::Export { query: q, .. } => &q.config,
        JournalCommand::Verify(c) | JournalCommand::Checkpoint(c) => c,
        JournalCommand::Attest { config, .. } => config,
        JournalCommand::Proof(ProofCommand::Inclusion { config, .. })
        | JournalCommand::Proof(ProofCommand::Consistency { config, .. }) => config,
    }
}

/// `mezhved journal …`.
pub fn journal(command: JournalCommand, out: &mut dyn Write) -> Result<(), JournalFailure> {
    let config = load(config_of(&command)).map_err(usage)?;
    if let JournalCommand::Verify(_) = command {
        return verify(&config, out);
    }
    let opened = open(&config)?;
    let result = runtime()
        .map_err(usage)?
        .block_on(async { run(command, &opened, out).await });
    opened.store.close();
    result
}

async fn run(
    command: JournalCommand,
    o: &Opened,
    out: &mut dyn Write,
) -> Result<(), JournalFailure> {
    let w = |out: &mut dyn Write, line: String| writeln!(out, "{line}").map_err(usage);
    match command {
        JournalCommand::Query(q) => {
            let (filter, recorded) = q
                .search()
                .to_filter(&o.subject_key, now_ms())
                .map_err(|p| usage(p.detail))?;
            let cards = o.store.query_cards(filter).await.map_err(usage)?;
            o.journal
                .record_query(&actor(), "cards", recorded, Some(cards.len() as u64))
                .await
                .map_err(usage)?;
            for c in &cards {
                w(out, card_json(c).to_string())?;
            }
        }
        JournalCommand::Export { query, format } => {
            let csv = match format.as_str() {
                "ndjson" => false,
                "csv" => true,
                other => return Err(usage(format!("--format {other}: ndjson or csv"))),
            };
            let mut search = query.search();
            search.limit = Some(mezhved_store::journal::MAX_PAGE);
            let (mut filter, mut recorded) = search
                .to_filter(&o.subject_key, now_ms())
                .map_err(|p| usage(p.detail))?;
            if let Some(m) = recorded.as_object_mut() {
                m.insert("format".into(), format.clone().into());
                m.remove("limit");
            }
            o.journal
                .record_query(&actor(), "export", recorded, None)
                .await
                .map_err(usage)?;
            if csv {
                w(out, mezhved_http::journal_api::CSV_COLUMNS.join(","))?;
            }
            loop {
                let cards = o.store.query_cards(filter.clone()).await.map_err(usage)?;
                for c in &cards {
                    w(
                        out,
                        if csv {
                            mezhved_http::journal_api::csv_row(c)
                        } else {
                            card_json(c).to_string()
                        },
                    )?;
                }
                if (cards.len() as u32) < mezhved_store::journal::MAX_PAGE {
                    break;
                }
                filter.after = cards.last().map(|c| c.global_id);
            }
        }
        JournalCommand::Checkpoint(_) => {
            o.journal
                .record_query(&actor(), "checkpoint.sign", json!({}), None)
                .await
                .map_err(usage)?;
            match o.journal.checkpoint().await.map_err(usage)? {
                Some(cp) => write!(out, "{}", cp.note).map_err(usage)?,
                None => return Err(usage("the journal is empty: nothing to sign")),
            }
        }
        JournalCommand::Proof(ProofCommand::Inclusion { seq, size, .. }) => {
            let (size, body) = inclusion_json(&*o.store, seq, size).await.map_err(usage)?;
            o.journal
                .record_query(
                    &actor(),
                    "proof.inclusion",
                    json!({"seq": seq, "size": size}),
                    Some(1),
                )
                .await
                .map_err(usage)?;
            w(out, body.to_string())?;
        }
        JournalCommand::Proof(ProofCommand::Consistency { old, new, .. }) => {
            let (new, body) = consistency_json(&*o.store, old, new).await.map_err(usage)?;
            o.journal
                .record_query(
                    &actor(),
                    "proof.consistency",
                    json!({"old": old, "new": new}),
                    Some(1),
                )
                .await
                .map_err(usage)?;
            w(out, body.to_string())?;
        }
        JournalCommand::Attest {
            global_id,
            registration_number,
            checksum,
            ..
        } => {
            let sum = ::hex::decode(checksum.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                .ok_or_else(|| usage("--checksum: 64 hex digits"))?;
            let target = match (&global_id, &registration_number) {
                (Some(g), _) => AttestTarget::GlobalId(
                    *uuid::Uuid::parse_str(g)
                        .map_err(|e| usage(format!("--global-id: {e}")))?
                        .as_bytes(),
                ),
                (None, Some(n)) => AttestTarget::RegistrationNumber(n.clone()),
                (None, None) => return Err(usage("--global-id or --registration-number")),
            };
            let results = o.journal.attest(target, sum).await.map_err(usage)?;
            o.journal
                .record_query(
                    &actor(),
                    "attest",
                    json!({"global_id": global_id, "registration_number": registration_number, "checksum": checksum}),
                    Some(results.len() as u64),
                )
                .await
                .map_err(usage)?;
            let (verdict, body) = mezhved_http::journal_api::attestation_json(&results);
            w(out, body.to_string())?;
            if verdict != Verdict::Match {
                return Err(JournalFailure::Finding(format!("attestation: {verdict:?}")));
            }
        }
        // Handled by `journal` before the store is opened for writing.
        JournalCommand::Verify(_) => return Err(usage("verify runs on a read-only connection")),
    }
    Ok(())
}

fn verify(config: &mezhved_http::Config, out: &mut dyn Write) -> Result<(), JournalFailure> {
    let _ = mezhved_dsig::gost::ensure_loaded();
    let path = config.database_path();
    if !path.is_file() {
        return Err(usage(format!("no database at {}", path.display())));
    }
    let conn = rusqlite::Connection::open_with_flags(
        &path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(usage)?;
    let cert = std::fs::read(&config.gateway_key.certificate).map_err(usage)?;
    let cert = openssl::x509::X509::from_pem(&cert).map_err(usage)?;
    let verifier =
        NoteVerifier::from_certificate(&config.journal_origin(), &cert).map_err(usage)?;
    let check_note = |cp: &mezhved_store::StoredCheckpoint| -> Result<(), String> {
        let parsed = verifier.verify(&cp.note).map_err(|e| e.to_string())?;
        if parsed.size != cp.size || parsed.root != cp.root {
            return Err(format!(
                "the signed note says size {} root {}, the row says size {} root {}",
                parsed.size,
                hex(&parsed.root),
                cp.size,
                hex(&cp.root)
            ));
        }
        Ok(())
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} verifying [{bar:40}] {pos}/{len} events ({per_sec}, {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    // Only to tell the user how long it took.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let report =
        mezhved_store::verify::verify_journal(&conn, &check_note, &mut progress).map_err(usage)?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    writeln!(
        out,
        "{} events, {} stored nodes and {} checkpoints checked in {:.2} s",
        report.events, report.nodes_checked, report.checkpoints_checked, seconds
    )
    .map_err(usage)?;
    if report.problems.is_empty() {
        writeln!(
            out,
            "the journal verifies: every event, node and checkpoint agrees"
        )
        .map_err(usage)?;
        return Ok(());
    }
    for p in &report.problems {
        writeln!(out, "DIVERGENCE: {p}").map_err(usage)?;
    }
    Err(JournalFailure::Finding(format!(
        "the journal does not verify: {} problem(s), the first: {}",
        report.problems.len(),
        report.problems[0]
    )))
}
