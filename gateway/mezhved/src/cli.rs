//! `mezhved` subcommands.
//!
//! - `dsig sign` / `dsig verify`: sign an element of an XML file by Id, verify a
//!   signature at a given place against a trust store. Agencies use these to check their
//!   own messages; the interoperability tests use them to face independent tools.
//! - `xml c14n` / `xml smev-transform`: print the canonical form of an element, the exact
//!   octets a signature digests, which is what one needs when a digest does not match.
//!
//! Exit codes: 0 success, 1 the signature (or document) is invalid, 2 usage or I/O error.

use clap::{Args, Parser, Subcommand, ValueEnum};
use mezhved_dsig::crypto::{DigestAlgorithm, SigningKey};
use mezhved_dsig::smev_profile;
use mezhved_dsig::trust::TrustStore;
use mezhved_dsig::xmldsig::{self, Expectation, Placement, SignOptions, Transforms};
use mezhved_dsig::DsigError;
use mezhved_xml::c14n::{self, ExcC14nOptions};
use mezhved_xml::{smev, Document, ElementPath, Limits, NodeId};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Parser)]
#[command(name = "mezhved", version, about = "Interdepartmental message gateway")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// XML signatures: sign and verify.
    #[command(subcommand)]
    Dsig(DsigCommand),
    /// XML canonical forms, as signatures digest them.
    #[command(subcommand)]
    Xml(XmlCommand),
    /// Run the gateway.
    Serve(crate::gateway_cmd::ConfigArgs),
    /// Check a configuration file (and the files it names) without starting.
    CheckConfig(crate::gateway_cmd::ConfigArgs),
    /// Administer the registry of participants, systems, kinds of information and grants.
    #[command(subcommand)]
    Registry(crate::gateway_cmd::RegistryCommand),
    /// The central journal: auditor queries, export, proofs, checkpoints, attestation and
    /// whole-journal verification (see docs/journal.md).
    #[command(subcommand)]
    Journal(crate::journal_cmd::JournalCommand),
    /// Requests that arrived on paper or by fax: register them and their answers (operator).
    #[command(subcommand)]
    Paper(crate::paper_cmd::PaperCommand),
    /// Evaluation report per agency and kind of information for a period, from the
    /// journal alone (see docs/reports.md).
    Report(crate::report_cmd::ReportArgs),
    /// The web dashboard: make a password hash for `[[dashboard.users]]` (see
    /// docs/dashboard.md).
    #[command(subcommand)]
    Dashboard(crate::dashboard_cmd::DashboardCommand),
    /// Load-test the exchange core in-process over loopback (see docs/performance.md).
    Bench(crate::bench::BenchArgs),
    /// Run the agency-side adapter sidecar: a local JSON API over a durable outbox and
    /// inbox that signs, sends, polls, acknowledges and retries (see docs/adapter.md).
    Adapter(crate::adapter_cmd::AdapterArgs),
    /// A living region on one machine: the gateway, four demo agencies behind their
    /// adapters, and a stream of requests, with a live summary (resumable).
    Demo(crate::demo::DemoArgs),
}

#[derive(Debug, Subcommand)]
pub enum DsigCommand {
    /// Sign an element of an XML file.
    Sign(SignArgs),
    /// Verify a signature of an XML file.
    Verify(VerifyArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TransformsArg {
    /// exc-c14n then the SMEV transform (SMEV 3 profile)
    Smev,
    /// exc-c14n only (plain XMLDSig)
    ExcC14n,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DigestArg {
    Sha256,
    Gost256,
    Gost512,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Sign a SMEV call: find its operation's signed block and put the signature into
    /// its `CallerInformationSystemSignature` (no --id/--container needed).
    #[arg(long, conflicts_with_all = ["id", "container", "enveloped", "transforms"])]
    pub smev: bool,
    /// Private key (PEM, PKCS#8).
    #[arg(long)]
    pub key: PathBuf,
    /// The key's certificate (PEM); goes into KeyInfo.
    #[arg(long)]
    pub cert: PathBuf,
    /// Id of the element to sign; without it (with --enveloped) the whole document.
    #[arg(long)]
    pub id: Option<String>,
    /// Path of the element that receives the detached signature, e.g.
    /// `/Envelope/Body/SendRequestRequest/CallerInformationSystemSignature`.
    #[arg(long, conflicts_with = "enveloped")]
    pub container: Option<String>,
    /// Put the signature inside the signed element (enveloped-signature transform).
    #[arg(long)]
    pub enveloped: bool,
    #[arg(long, value_enum, default_value = "smev")]
    pub transforms: TransformsArg,
    /// Reference digest; default: the one that goes with the key.
    #[arg(long, value_enum)]
    pub digest: Option<DigestArg>,
    /// Output file; default standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Input XML file.
    pub input: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Trust store directory (PEM anchors, intermediates and CRLs).
    #[arg(long)]
    pub trust: PathBuf,
    /// Verify a SMEV call at the place its operation fixes (instead of
    /// --signature-parent/--target).
    #[arg(long, conflicts_with_all = ["signature_parent", "target"])]
    pub smev: bool,
    /// Path of the element whose `ds:Signature` child is verified.
    #[arg(long, required_unless_present = "smev")]
    pub signature_parent: Option<String>,
    /// Path of the element the signature must cover; omit for `URI=""`.
    #[arg(long)]
    pub target: Option<String>,
    /// Check certificates at this time (RFC 3339 or Unix seconds) instead of now.
    #[arg(long)]
    pub at: Option<String>,
    /// Print the digested octets instead of the JSON summary.
    #[arg(long)]
    pub print_digested: bool,
    pub input: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum XmlCommand {
    /// Exclusive XML canonicalisation of an element (default: the document element).
    C14n(C14nArgs),
    /// The SMEV transform of an element (default: the document element).
    SmevTransform(SelectArgs),
}

#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Select the element with this Id.
    #[arg(long, conflicts_with = "path")]
    pub id: Option<String>,
    /// Select the element at this path.
    #[arg(long)]
    pub path: Option<String>,
    pub input: PathBuf,
}

#[derive(Debug, Args)]
pub struct C14nArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    #[arg(long)]
    pub with_comments: bool,
    /// InclusiveNamespaces PrefixList (space separated; `#default` for the default namespace).
    #[arg(long, default_value = "")]
    pub inclusive_prefixes: String,
    /// Canonicalise the whole document (including comments and PIs around the root).
    #[arg(long, conflicts_with_all = ["id", "path"])]
    pub document: bool,
}

/// A failure of a command, with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Xml(#[from] mezhved_xml::XmlError),
    #[error(transparent)]
    Dsig(#[from] DsigError),
    /// A negative finding (a journal divergence, an attestation mismatch): exit 1.
    #[error("{0}")]
    Finding(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Io { .. } => 2,
            CliError::Dsig(e) if e.smev_code().is_none() => 2,
            CliError::Xml(_) | CliError::Dsig(_) | CliError::Finding(_) => 1,
        }
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn parse_path(s: &str) -> Result<ElementPath, CliError> {
    ElementPath::parse(s).map_err(CliError::Usage)
}

fn parse_time(s: &str) -> Result<SystemTime, CliError> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(UNIX_EPOCH + Duration::from_secs(secs));
    }
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| CliError::Usage(format!("--at '{s}': {e}")))?;
    let secs = u64::try_from(t.timestamp())
        .map_err(|_| CliError::Usage(format!("--at '{s}' is before 1970")))?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Runs a command; returns the exit code. Errors are written to `err` (and, for
/// `dsig verify`, a JSON verdict to `out`).
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let result = match cli.command {
        Command::Dsig(DsigCommand::Sign(a)) => sign(a, out),
        Command::Dsig(DsigCommand::Verify(a)) => verify(a, out),
        Command::Xml(XmlCommand::C14n(a)) => c14n_cmd(a, out),
        Command::Xml(XmlCommand::SmevTransform(a)) => smev_cmd(a, out),
        Command::Serve(a) => crate::gateway_cmd::serve(a).map_err(CliError::Usage),
        Command::CheckConfig(a) => {
            crate::gateway_cmd::check_config(a, out).map_err(CliError::Usage)
        }
        Command::Registry(c) => crate::gateway_cmd::registry(c, out).map_err(CliError::Usage),
        Command::Bench(a) => crate::bench::run(a, out).map_err(CliError::Usage),
        Command::Report(a) => crate::report_cmd::report(a, out).map_err(CliError::Usage),
        Command::Dashboard(c) => crate::dashboard_cmd::dashboard(c, out).map_err(CliError::Usage),
        Command::Paper(c) => crate::paper_cmd::paper(c, out).map_err(CliError::Usage),
        Command::Adapter(a) => crate::adapter_cmd::adapter(a, out).map_err(CliError::Usage),
        Command::Demo(a) => crate::demo::run(a, out).map_err(CliError::Usage),
        Command::Journal(c) => crate::journal_cmd::journal(c, out).map_err(|e| match e {
            crate::journal_cmd::JournalFailure::Usage(m) => CliError::Usage(m),
            crate::journal_cmd::JournalFailure::Finding(m) => CliError::Finding(m),
        }),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            // Best effort: if stderr is gone there is nobody to tell.
            let _ = writeln!(err, "mezhved: {e}");
            e.exit_code()
        }
    }
}

fn sign(a: SignArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let key = SigningKey::from_pem_files(&a.key, &a.cert)?;
    let xml = read(&a.input)?;
    let digest = a.digest.map(|d| match d {
        DigestArg::Sha256 => DigestAlgorithm::Sha256,
        DigestArg::Gost256 => DigestAlgorithm::Gost2012_256,
        DigestArg::Gost512 => DigestAlgorithm::Gost2012_512,
    });
    if a.smev {
        let signed = smev_profile::sign_call(&xml, &Limits::default(), &key, digest)?;
        return write_output(a.output, &signed, out);
    }
    let (placement, transforms) = if a.enveloped {
        let t = match a.transforms {
            TransformsArg::Smev => Transforms::EnvelopedSmev,
            TransformsArg::ExcC14n => Transforms::Enveloped,
        };
        (Placement::Enveloped { id: a.id }, t)
    } else {
        let id =
            a.id.ok_or_else(|| CliError::Usage("a detached signature needs --id".into()))?;
        let container = a.container.ok_or_else(|| {
            CliError::Usage("a detached signature needs --container (or use --enveloped)".into())
        })?;
        let t = match a.transforms {
            TransformsArg::Smev => Transforms::Smev,
            TransformsArg::ExcC14n => Transforms::ExcC14n,
        };
        (
            Placement::Detached {
                id,
                container: parse_path(&container)?,
            },
            t,
        )
    };
    let signed = xmldsig::sign(
        &xml,
        &Limits::default(),
        &key,
        &placement,
        &SignOptions { transforms, digest },
    )?;
    write_output(a.output, &signed, out)
}

fn write_output(path: Option<PathBuf>, bytes: &[u8], out: &mut dyn Write) -> Result<(), CliError> {
    match path {
        Some(path) => std::fs::write(&path, bytes).map_err(|source| CliError::Io {
            path: path.display().to_string(),
            source,
        }),
        None => out.write_all(bytes).map_err(|source| CliError::Io {
            path: "<stdout>".into(),
            source,
        }),
    }
}

fn verify(a: VerifyArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let trust = TrustStore::from_dir(&a.trust)?;
    let xml = read(&a.input)?;
    let expect = if a.smev {
        let doc = mezhved_xml::parse(&xml, &Limits::default())?;
        smev_profile::Operation::detect(&doc)?.expectation()
    } else {
        let parent = a
            .signature_parent
            .as_deref()
            .ok_or_else(|| CliError::Usage("--signature-parent or --smev is required".into()))?;
        Expectation {
            signature_parent: parse_path(parent)?,
            target: a.target.as_deref().map(parse_path).transpose()?,
        }
    };
    let at = match &a.at {
        Some(s) => parse_time(s)?,
        // The command line is an edge: without --at, "now" means the real clock.
        #[allow(clippy::disallowed_methods)]
        None => SystemTime::now(),
    };
    let io = |source| CliError::Io {
        path: "<stdout>".into(),
        source,
    };
    match xmldsig::verify(&xml, &Limits::default(), &expect, &trust, at) {
        Ok(v) => {
            if a.print_digested {
                out.write_all(&v.digested).map_err(io)?;
            } else {
                let summary = serde_json::json!({
                    "valid": true,
                    "signer": v.signer.subject,
                    "issuer": v.signer.issuer,
                    "serial": v.signer.serial_hex,
                    "certificate_sha256": v.signer.sha256_fingerprint_hex,
                    "signature_algorithm": v.signature_algorithm.uri(),
                    "digest_algorithm": v.digest_algorithm.uri(),
                    "transforms": format!("{:?}", v.transforms),
                });
                writeln!(out, "{summary}").map_err(io)?;
            }
            Ok(())
        }
        Err(e) => {
            let summary = serde_json::json!({
                "valid": false,
                "code": e.smev_code().map(|c| c.as_str()),
                "error": e.to_string(),
            });
            writeln!(out, "{summary}").map_err(io)?;
            Err(e.into())
        }
    }
}

fn select(doc: &Document, s: &SelectArgs) -> Result<NodeId, CliError> {
    if let Some(id) = &s.id {
        // The same Id rules as signing and verifying, so what is printed is what they digest.
        return xmldsig::find_by_id(doc, id).map_err(|e| CliError::Usage(e.to_string()));
    }
    if let Some(p) = &s.path {
        return parse_path(p)?
            .resolve(doc)
            .map_err(|e| CliError::Usage(format!("path {p}: {e:?}")));
    }
    Ok(doc.root())
}

fn c14n_cmd(a: C14nArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let xml = read(&a.select.input)?;
    let doc = mezhved_xml::parse(&xml, &Limits::default())?;
    let apex = if a.document {
        Document::DOCUMENT_NODE
    } else {
        select(&doc, &a.select)?
    };
    let options = ExcC14nOptions {
        with_comments: a.with_comments,
        inclusive_prefixes: a
            .inclusive_prefixes
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect(),
    };
    let mut bytes = Vec::with_capacity(xml.len());
    c14n::canonicalize(&doc, apex, None, &options, &mut bytes);
    out.write_all(&bytes).map_err(|source| CliError::Io {
        path: "<stdout>".into(),
        source,
    })
}

fn smev_cmd(a: SelectArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let xml = read(&a.input)?;
    let doc = mezhved_xml::parse(&xml, &Limits::default())?;
    let apex = select(&doc, &a)?;
    let mut bytes = Vec::with_capacity(xml.len());
    smev::transform(&doc, apex, None, &mut bytes);
    out.write_all(&bytes).map_err(|source| CliError::Io {
        path: "<stdout>".into(),
        source,
    })
}
