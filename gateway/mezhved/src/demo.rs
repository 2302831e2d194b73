//! `mezhved demo`: a living region on one machine. It starts the gateway on the embedded
//! SQLite store, the four demo agencies' adapters (the social-protection office as
//! consumer; the civil registry, the tax office and the social fund as providers), the
//! agencies' own information systems (adapters/demo's models behind small HTTP servers),
//! and a stream of requests; it prints a live summary until Ctrl-C or `--duration`.
//!
//! Invariants:
//! - Time runs `--speed` times faster than the wall clock (one hour per second by
//!   default) for the gateway and every adapter alike, so reply deadlines, reminders and
//!   overdue answers happen within minutes. The demo's clock time is saved at every stop
//!   and a resumed demo continues from it: deadlines stay consistent across runs.
//! - Request `i` of the stream is submitted with the idempotency key `demo-<seed>-<i>`,
//!   and the next `i` is saved only after the adapter accepted it; a resumed demo (or a
//!   crash) therefore re-submits at most the last request, which the adapter recognises:
//!   nothing is sent twice.
//! - Everything persistent lives under `--data-dir`: the gateway's database and
//!   configuration (`mezhved.toml`, usable with every other `mezhved` command), each
//!   adapter's database, the demo's state (`demo-state.json`) and its log (`demo.log`).

use crate::demo_agency::{self, AgencyServer, ConsumerDriver, Http};
use clap::Args;
use mezhved_core::clock::{to_ms, Clock, ScaledClock};
use mezhved_demo::{DemoKind, Population, Scenario};
use mezhved_http::server::Gateway;
use mezhved_http::Config;
use mezhved_store::sqlite::SqliteOptions;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub const OPERATOR_TOKEN: &str = "demo-operator-token";
pub const AUDITOR_TOKEN: &str = "demo-auditor-token";
/// The demo's dashboard users (name, password): known, like the tokens, because the demo
/// listens on loopback only and holds nothing but its own fictional region.
pub const DASHBOARD_OPERATOR: (&str, &str) = ("demo-operator", "demo-operator-password");
pub const DASHBOARD_AUDITOR: (&str, &str) = ("demo-auditor", "demo-auditor-password");
const STATE_FILE: &str = "demo-state.json";

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Where everything is kept (created; reused to resume).
    #[arg(long, default_value = "demo-data")]
    pub data_dir: PathBuf,
    /// The gateway's address.
    #[arg(long, default_value = "127.0.0.1:7575")]
    pub listen: String,
    /// The seed of the fake population and of the request stream.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Requests per second sent by the social-protection office.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// How much faster than the wall clock the region's time runs.
    #[arg(long, default_value_t = 3600)]
    pub speed: u32,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Stop submitting after this many requests in all (the demo keeps running until the
    /// answers are in, Ctrl-C or --duration).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Citizens in the fake population.
    #[arg(long, default_value_t = 20_000)]
    pub population: usize,
    /// Start over: remove the previous demo's data first.
    #[arg(long)]
    pub fresh: bool,
    /// One summary line every few seconds instead of a redrawn status line.
    #[arg(long)]
    pub plain: bool,
    /// The repository (keys/, deploy/demo/); default: found from the current directory.
    #[arg(long)]
    pub repo: Option<PathBuf>,
}

/// What a demo remembers between runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DemoState {
    pub seed: u64,
    pub population: usize,
    /// The next request index of the stream.
    pub next_index: u64,
    /// The region's clock (Unix ms) when the demo last stopped.
    pub clock_ms: i64,
    /// How many times the demo has run on this data.
    pub runs: u32,
}

fn locate_repo(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let marker = Path::new("deploy/demo/registry.toml");
    let mut dir = std::env::current_dir().map_err(|e| e.to_string())?;
    loop {
        if dir.join(marker).is_file() {
            return Ok(dir);
        }
        if !dir.pop() {
            break;
        }
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if built.join(marker).is_file() {
        return Ok(built);
    }
    Err("cannot find the repository (deploy/demo/registry.toml); pass --repo".into())
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// The demo registry with absolute certificate paths, and a push endpoint for the social
/// fund's system (so the demo shows push delivery next to polling).
fn write_registry(repo: &Path, dir: &Path, sfr_push: &str) -> Result<PathBuf, String> {
    let source = repo.join("deploy/demo/registry.toml");
    let text =
        std::fs::read_to_string(&source).map_err(|e| format!("{}: {e}", source.display()))?;
    let mut doc: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", source.display()))?;
    let base = source.parent().unwrap_or(Path::new("."));
    if let Some(toml::Value::Array(systems)) = doc.get_mut("system") {
        for s in systems.iter_mut() {
            let Some(t) = s.as_table_mut() else { continue };
            if let Some(toml::Value::Array(certs)) = t.get_mut("certificates") {
                for c in certs.iter_mut() {
                    if let Some(p) = c.as_str() {
                        *c = toml::Value::String(base.join(p).to_string_lossy().into_owned());
                    }
                }
            }
            if t.get("mnemonic").and_then(|m| m.as_str()) == Some("SFR_IS") {
                t.insert("push_url".into(), toml::Value::String(sfr_push.into()));
            }
        }
    }
    let out = dir.join("registry.toml");
    let body = format!(
        "# Written by `mezhved demo` from deploy/demo/registry.toml at every start.\n{}",
        toml::to_string(&doc).map_err(|e| e.to_string())?
    );
    std::fs::write(&out, body).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

/// The gateway's configuration, written to `<data_dir>/mezhved.toml` so that every other
/// command (`mezhved journal verify -c …`, `mezhved report -c …`) works on the demo.
fn write_gateway_config(
    repo: &Path,
    dir: &Path,
    listen: &str,
    registry: &Path,
    speed: u32,
) -> Result<Config, String> {
    let keys = repo.join("keys/test-pki");
    let mut c = Config {
        data_dir: dir.join("gateway"),
        ..Config::default()
    };
    c.server.listen = listen.into();
    c.gateway_key.key = keys.join("ecdsa/gateway.key.pem");
    c.gateway_key.certificate = keys.join("ecdsa/gateway.cert.pem");
    c.trust.dir = keys.join("trust");
    c.registry.file = registry.to_path_buf();
    // Region time runs `speed` times faster: give leases and MessageIDs the same real
    // margins they have at normal speed.
    let speed = u64::from(speed.max(1));
    c.exchange.visibility_timeout_seconds = (30 * speed).max(300);
    c.exchange.message_id_past_seconds = (3600 * speed).max(86_400);
    c.exchange.message_id_future_seconds = (5 * speed).max(300);
    // Idempotency records must outlive the MessageID window.
    c.jobs.retention_days = c.jobs.retention_days.max(
        u32::try_from(
            (c.exchange.message_id_past_seconds + c.exchange.message_id_future_seconds) / 86_400
                + 1,
        )
        .unwrap_or(u32::MAX),
    );
    // Monitoring thresholds are in region time too: an adapter idle for half a real
    // second has not "stopped polling".
    let m = &mut c.monitoring;
    // The rate window at most a week of region time (the configuration's bound).
    m.window_seconds = m.window_seconds.saturating_mul(speed).min(604_800);
    for v in [
        &mut m.poll_yellow_seconds,
        &mut m.poll_red_seconds,
        &mut m.queue_age_yellow_seconds,
        &mut m.queue_age_red_seconds,
        &mut m.timer_lag_degraded_seconds,
        &mut m.timer_lag_down_seconds,
    ] {
        *v = v.saturating_mul(speed);
    }
    // One store read of the monitoring figures per real second, not per region second.
    m.snapshot_ttl_ms = m.snapshot_ttl_ms.saturating_mul(speed).min(60_000);
    c.push.allow_plain_http = true;
    c.push.retry_base_seconds = speed.min(3600);
    c.push.retry_max_seconds = (60 * speed).min(86_400);
    c.log.level = "warn".into();
    c.operator.token_sha256 = sha256_hex(OPERATOR_TOKEN);
    c.auditors = vec![mezhved_http::config::AuditorConfig {
        name: "demo-auditor".into(),
        token_sha256: sha256_hex(AUDITOR_TOKEN),
    }];
    // The dashboard over plain http on loopback, with sessions that last as long in real
    // time as they would in a real region (the gateway measures them on region time).
    let d = &mut c.dashboard;
    d.enabled = true;
    d.insecure_cookies = true;
    d.session_idle_seconds = d.session_idle_seconds.saturating_mul(speed);
    d.session_max_seconds = d.session_max_seconds.saturating_mul(speed);
    let mut users = Vec::new();
    for ((name, password), role) in [
        (DASHBOARD_OPERATOR, "operator"),
        (DASHBOARD_AUDITOR, "auditor"),
    ] {
        users.push(mezhved_http::config::DashboardUserConfig {
            name: name.into(),
            role: role.into(),
            password_hash: mezhved_http::dashboard::auth::hash_password(
                password,
                mezhved_http::dashboard::auth::MIN_ITERATIONS,
            )
            .map_err(|e| e.to_string())?,
        });
    }
    d.users = users;
    c.validate().map_err(|e| e.to_string())?;
    let path = dir.join("mezhved.toml");
    let body = format!(
        "# Written by `mezhved demo` at every start: the demo gateway's configuration.\n# Use it with other commands, e.g. `mezhved journal verify -c {}`.\n{}",
        path.display(),
        toml::to_string(&c).map_err(|e| e.to_string())?
    );
    std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(c)
}

fn load_state(dir: &Path) -> Result<Option<DemoState>, String> {
    let p = dir.join(STATE_FILE);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| format!("{}: {e}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

/// Written to a temporary file and renamed: a crash leaves the old state or the new one.
pub fn save_state(dir: &Path, state: &DemoState) -> Result<(), String> {
    let p = dir.join(STATE_FILE);
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let body = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
    let mut f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(&body)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &p).map_err(|e| format!("{}: {e}", p.display()))
}

/// Removes a previous demo's data, refusing a directory that is not one.
fn wipe(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        return Ok(());
    }
    let empty = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .next()
        .is_none();
    if !empty && !dir.join(STATE_FILE).exists() && !dir.join("mezhved.toml").exists() {
        return Err(format!(
            "{} is not a demo's data directory (no {STATE_FILE}); refusing to remove it",
            dir.display()
        ));
    }
    std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

fn init_log(dir: &Path) -> Result<(), String> {
    let path = dir.join("demo.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEZHVED_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,mezhved=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Arc::new(file))
        .try_init();
    Ok(())
}

async fn bind(addr: &str) -> Result<(TcpListener, SocketAddr), String> {
    let l = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let a = l.local_addr().map_err(|e| e.to_string())?;
    Ok((l, a))
}

/// `mezhved demo`.
pub fn run(args: DemoArgs, out: &mut dyn Write) -> Result<(), String> {
    if !(args.rate > 0.0 && args.rate <= 10_000.0) {
        return Err("--rate must be in (0, 10000] requests per second".into());
    }
    let repo = locate_repo(args.repo.as_deref())?;
    if args.fresh {
        wipe(&args.data_dir)?;
    }
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("{}: {e}", args.data_dir.display()))?;
    let data_dir = args
        .data_dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", args.data_dir.display()))?;
    init_log(&data_dir)?;
    let runtime = crate::gateway_cmd::runtime()?;
    runtime.block_on(run_async(args, repo, data_dir, out))
}

async fn run_async(
    args: DemoArgs,
    repo: PathBuf,
    dir: PathBuf,
    out: &mut dyn Write,
) -> Result<(), String> {
    let previous = load_state(&dir)?;
    let mut state = match previous {
        Some(s) => {
            if s.seed != args.seed || s.population != args.population {
                return Err(format!(
                    "{} holds a demo with seed {} and population {}; resume with those, or start over with --fresh",
                    dir.display(),
                    s.seed,
                    s.population
                ));
            }
            s
        }
        None => DemoState {
            seed: args.seed,
            population: args.population,
            next_index: 0,
            clock_ms: to_ms(mezhved_core::clock::SystemClock.now()),
            runs: 0,
        },
    };
    state.runs += 1;
    let resumed = state.runs > 1;
    let clock = Arc::new(ScaledClock::new(
        mezhved_core::clock::from_ms(state.clock_ms),
        args.speed,
    ));
    let clock_fn: mezhved_adapter::ClockFn = {
        let c = clock.clone();
        Arc::new(move || c.now())
    };

    // Every listener first: the registry names the social fund adapter's push endpoint.
    let (gateway_listener, gateway_addr) = bind(&args.listen).await?;
    let mut adapter_listeners = Vec::new();
    for _ in mezhved_demo::AGENCIES {
        adapter_listeners.push(bind("127.0.0.1:0").await?);
    }
    let mut agency_listeners = Vec::new();
    for _ in DemoKind::ALL {
        agency_listeners.push(bind("127.0.0.1:0").await?);
    }
    let sfr_index = mezhved_demo::AGENCIES
        .iter()
        .position(|a| a.system == "SFR_IS")
        .ok_or("the demo has no social fund")?;
    let sfr_push = format!("http://{}/push", adapter_listeners[sfr_index].1);
    let registry = write_registry(&repo, &dir, &sfr_push)?;
    let config = write_gateway_config(
        &repo,
        &dir,
        &gateway_addr.to_string(),
        &registry,
        args.speed,
    )?;
    let gateway = Gateway::open_with(config.clone(), clock.clone(), SqliteOptions::default())
        .await
        .map_err(|e| format!("the gateway does not start: {e}"))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |rx: &watch::Receiver<bool>| {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let gateway_task = tokio::spawn(gateway.serve(gateway_listener, stopped(&stop_rx)));
    let endpoint = format!("http://{gateway_addr}/smev/v1.1");

    let population = Arc::new(Population::generate(args.seed, args.population));
    // The providers' own information systems.
    let http = Http::new();
    let mut agency_urls = Vec::new();
    let mut agency_tasks = Vec::new();
    for (kind, (listener, addr)) in DemoKind::ALL.into_iter().zip(agency_listeners) {
        let server = AgencyServer::new(kind, population.clone(), clock.clone(), http.clone());
        agency_urls.push((kind, format!("http://{addr}/callback"), server.clone()));
        agency_tasks.push(tokio::spawn(server.serve(listener, stopped(&stop_rx))));
    }
    // The adapters.
    let mut adapter_urls = Vec::new();
    let mut adapter_tasks = Vec::new();
    for (agency, (listener, addr)) in mezhved_demo::AGENCIES.into_iter().zip(adapter_listeners) {
        let kind = DemoKind::ALL
            .into_iter()
            .find(|k| k.provider().system == agency.system);
        let callback = kind.and_then(|k| {
            agency_urls
                .iter()
                .find(|(kk, _, _)| *kk == k)
                .map(|(_, u, _)| u.clone())
        });
        let cfg = demo_agency::adapter_config(
            &repo,
            &dir,
            agency,
            &endpoint,
            kind,
            callback.as_deref(),
            &addr.to_string(),
        );
        let adapter = mezhved_adapter::Adapter::open_with_clock(cfg, clock_fn.clone())
            .await
            .map_err(|e| format!("the {} adapter does not start: {e}", agency.mnemonic))?;
        adapter_urls.push((agency, format!("http://{addr}")));
        adapter_tasks.push(tokio::spawn(adapter.serve(listener, stopped(&stop_rx))));
    }
    let adapter_url = |system: &str| {
        adapter_urls
            .iter()
            .find(|(a, _)| a.system == system)
            .map(|(_, u)| u.clone())
            .unwrap_or_default()
    };
    for (kind, _, server) in &agency_urls {
        server.set_adapter(adapter_url(kind.provider().system));
        // Answers promised (202) before a stop are found in the adapter and given again.
        server.resume_pending().await;
    }

    let base = format!("http://{gateway_addr}");
    writeln!(
        out,
        "mezhved demo: a region on one machine (seed {}, {} citizens, time x{}{})",
        args.seed,
        args.population,
        args.speed,
        if resumed {
            format!(", resumed: run {}", state.runs)
        } else {
            String::new()
        }
    )
    .map_err(|e| e.to_string())?;
    let lines = [
        format!("  SOAP endpoint     {endpoint}   (WSDL: {endpoint}?wsdl)"),
        format!("  Journal API       {base}/api/v1/journal/cards   (Authorization: Bearer {AUDITOR_TOKEN})"),
        format!("  Evaluation report {base}/api/v1/reports/evaluation?format=html   (auditor)"),
        format!("  Registry          {base}/api/v1/registry   (Authorization: Bearer {OPERATOR_TOKEN})"),
        format!("  Health            {base}/health   ·   metrics {base}/metrics (Prometheus)"),
        format!("  Monitoring        {base}/api/v1/monitoring/systems   (operator token; alerts: /api/v1/monitoring/alerts)"),
        format!(
            "  Dashboard         {base}/ui   (operator {} / {}, auditor {} / {})",
            DASHBOARD_OPERATOR.0, DASHBOARD_OPERATOR.1, DASHBOARD_AUDITOR.0, DASHBOARD_AUDITOR.1
        ),
        format!("  Adapters          {}", adapter_urls.iter().map(|(a, u)| format!("{} {u}/api/v1/stats", a.mnemonic)).collect::<Vec<_>>().join(" · ")),
        format!("  Data              {}   (e.g. mezhved journal verify -c {}/mezhved.toml)", dir.display(), dir.display()),
        "  Ctrl-C stops; the same command resumes.".to_string(),
    ];
    for l in lines {
        writeln!(out, "{l}").map_err(|e| e.to_string())?;
    }
    let _ = out.flush();

    let scenario = Scenario::new(population.clone());
    let driver = ConsumerDriver::new(
        scenario,
        args.seed,
        adapter_url("USZN_IS"),
        clock.clone(),
        http.clone(),
    );
    let (progress_tx, progress_rx) = watch::channel(state.next_index);
    let limit = args.requests;
    let driver_task = tokio::spawn(driver.clone().run(
        state.next_index,
        args.rate,
        limit,
        progress_tx,
        stopped(&stop_rx),
    ));
    let reader_task = tokio::spawn(driver.clone().read_answers(stopped(&stop_rx)));

    let summary = crate::demo_summary::Summary::open(
        &config.database_path(),
        adapter_url("USZN_IS"),
        http.clone(),
    );
    let report = crate::demo_summary::report_loop(
        summary.clone(),
        clock.clone(),
        args.plain,
        progress_rx.clone(),
        dir.clone(),
        state.clone(),
    );
    let deadline = async {
        match args.duration {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = crate::gateway_cmd::shutdown_signal() => {}
        () = deadline => {}
        () = report => {}
    }

    // Stop: the stream first (its position is saved), then everything else at once.
    let _ = stop_tx.send(true);
    let _ = driver_task.await;
    let _ = reader_task.await;
    state.next_index = *progress_rx.borrow();
    for t in adapter_tasks {
        if let Ok(Err(e)) = t.await {
            tracing::error!(error = %e, "an adapter stopped with an error");
        }
    }
    for t in agency_tasks {
        let _ = t.await;
    }
    match gateway_task.await {
        Ok(Err(e)) => return Err(format!("the gateway stopped with an error: {e}")),
        Err(e) => return Err(format!("the gateway task failed: {e}")),
        Ok(Ok(())) => {}
    }
    state.clock_ms = to_ms(clock.now());
    save_state(&dir, &state)?;
    let last = summary.snapshot().await;
    writeln!(out, "\nstopped. {}", last.line(&clock_text(clock.now())))
        .map_err(|e| e.to_string())?;
    writeln!(
        out,
        "resume: the same command continues at request {} on {}",
        state.next_index,
        clock_text(clock.now())
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}

pub(crate) fn clock_text(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.with_timezone(&chrono_tz::Europe::Moscow)
        .format("%Y-%m-%d %H:%M MSK")
        .to_string()
}
