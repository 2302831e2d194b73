//! `mezhved bench --only adapters`: exchanges end to end through two adapters against
//! the same gateway driven directly, and an adapter's memory with a large outbox.
//!
//! - **Through adapters**: the consumer's agency system submits requests to its adapter's
//!   JSON API (`adapters_outstanding` at a time); the provider's adapter hands each to a
//!   callback server that answers with data at once; the run ends when every answer is
//!   in the consumer adapter's inbox. Each exchange is then durable three times (the
//!   gateway and both adapters, `synchronous=FULL`), and every gateway answer is verified
//!   by the adapters.
//! - **Direct**: the closed-loop signed exchange load of `--only exchange`, on a fresh
//!   gateway in the same run.
//! - **Outbox memory**: an adapter whose gateway is unreachable takes
//!   `adapters_queued` submissions; VmRSS after the first 10³ and after all of them.

use super::{mono, run_exchange_load, status_kb, Env, Host};
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mezhved_adapter::{Adapter, AdapterConfig, KindConfig, ProviderMode};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

type Http = Client<HttpConnector, Full<Bytes>>;

const BIRTH_NS: &str = super::BIRTH_NS;

fn adapter_config(env: &Env, dir: &Path, system: &str, key: &str, endpoint: &str) -> AdapterConfig {
    let keys = env.plan.repo.join("keys/test-pki");
    let mut c = AdapterConfig {
        data_dir: dir.to_path_buf(),
        system: system.into(),
        registration_prefix: system.trim_end_matches("_IS").into(),
        ..AdapterConfig::default()
    };
    c.gateway.url = endpoint.into();
    c.gateway.trust_dir = keys.join("trust");
    c.gateway.certificate = keys.join("ecdsa/gateway.cert.pem");
    c.key.key = keys.join(format!("ecdsa/{key}.key.pem"));
    c.key.certificate = keys.join(format!("ecdsa/{key}.cert.pem"));
    c.api.listen = "127.0.0.1:0".into();
    // As an agency would run it: an idle queue is polled every 20–200 ms; a busy one back
    // to back.
    c.poll.idle_min_ms = 20;
    c.poll.idle_max_ms = 200;
    c.retry.base_delay_ms = 50;
    c.retry.max_delay_ms = 1000;
    c.shutdown_grace_seconds = 5;
    c
}

async fn post_json(http: &Http, url: &str, body: &Value) -> Result<u16, String> {
    let req = hyper::Request::post(url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let resp = http.request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Ok(status)
}

async fn get_json(http: &Http, url: &str) -> Result<Value, String> {
    let req = hyper::Request::get(url)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = http.request(req).await.map_err(|e| e.to_string())?;
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

fn submission(i: u64, today: &str) -> Value {
    json!({
        "client_ref": format!("bench-{i}"),
        "content": format!(
            "<b:BirthRecordRequest xmlns:b=\"{BIRTH_NS}\"><b:Surname>Ivanova</b:Surname><b:BirthDate>2019-05-14</b:BirthDate><b:Note>bench {i}</b:Note></b:BirthRecordRequest>"
        ),
        "card": serde_json::to_value(mezhved_client::RequestCard {
            sender_registration: None,
            sent_on: None,
            ..mezhved_client::RequestCard::complete(
                super::CONSUMER_AGENCY,
                super::PROVIDER_AGENCY,
                today,
                "unused",
            )
        }).unwrap_or(Value::Null),
    })
}

fn today() -> String {
    chrono::DateTime::<chrono::Utc>::from(super::wall())
        .date_naive()
        .to_string()
}

/// Submits `ids` with `outstanding` in flight; every one must be accepted (202/200).
async fn submit_all(
    http: &Http,
    base: &str,
    ids: std::ops::Range<u64>,
    outstanding: usize,
) -> Result<(), String> {
    let next = Arc::new(AtomicU64::new(ids.start));
    let end = ids.end;
    let day = today();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..outstanding.max(1) {
        let (http, next, url, day) = (
            http.clone(),
            next.clone(),
            format!("{base}/api/v1/requests"),
            day.clone(),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    return Ok::<(), String>(());
                }
                let s = post_json(&http, &url, &submission(i, &day)).await?;
                if s != 202 && s != 200 {
                    return Err(format!("submit {i}: HTTP {s}"));
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    Ok(())
}

fn responses_in(stats: &Value) -> u64 {
    stats["inbox"]["response"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

/// Exchanges/s through two adapters, on a fresh gateway.
fn through_adapters(env: &Env, n: u64) -> Result<Value, String> {
    let host = Host::start(env, true, "adapters")?;
    let consumer_dir = env.tempdir("adapter-consumer")?;
    let provider_dir = env.tempdir("adapter-provider")?;
    let endpoint = host.endpoint.clone();
    let outstanding = env.plan.outstanding;
    let result = env.load.block_on(async {
        // The provider's agency system: answers every request with data at once.
        let callback = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
        let callback_addr = callback.local_addr().map_err(|e| e.to_string())?;
        let app = axum::Router::new().route(
            "/callback",
            post(|| async {
                axum::Json(json!({ "data": format!("<r:BirthRecordResponse xmlns:r=\"{BIRTH_NS}\"><r:RecordNumber>120199000012</r:RecordNumber></r:BirthRecordResponse>") }))
            }),
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |rx: &tokio::sync::watch::Receiver<bool>| {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let cb_stop = stopped(&stop_rx);
        let cb_task = tokio::spawn(async move {
            let _ = axum::serve(callback, app).with_graceful_shutdown(cb_stop).await;
        });

        let mut consumer_cfg = adapter_config(env, consumer_dir.path(), super::CONSUMER_SYSTEM, "consumer-is", &endpoint);
        consumer_cfg.consumer.poll_responses = true;
        consumer_cfg.consumer.poll_statuses = true;
        let mut provider_cfg = adapter_config(env, provider_dir.path(), super::PROVIDER_SYSTEM, "provider-is", &endpoint);
        provider_cfg.consumer.poll_responses = false;
        provider_cfg.consumer.poll_statuses = true;
        provider_cfg.provider.enabled = true;
        provider_cfg.provider.kinds = vec![KindConfig { namespace: BIRTH_NS.into(), root_element: super::BIRTH_ROOT.into() }];
        provider_cfg.provider.mode = ProviderMode::Callback;
        provider_cfg.provider.callback_url = format!("http://{callback_addr}/callback");
        let mut tasks = Vec::new();
        let mut bases = Vec::new();
        for cfg in [consumer_cfg, provider_cfg] {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
            bases.push(format!("http://{}", l.local_addr().map_err(|e| e.to_string())?));
            let adapter = Adapter::open(cfg).await.map_err(|e| e.to_string())?;
            tasks.push(tokio::spawn(adapter.serve(l, stopped(&stop_rx))));
        }
        let http: Http = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let consumer = bases[0].clone();
        // A short warm-up (connections, statement caches), not measured.
        let warm = (n / 20).clamp(10, 200);
        submit_all(&http, &consumer, 0..warm, outstanding).await?;
        wait_responses(&http, &consumer, warm, Duration::from_secs(120)).await?;
        let cpu0 = super::cpu_snapshot();
        let t0 = mono();
        submit_all(&http, &consumer, warm..warm + n, outstanding).await?;
        let submitted_s = (mono() - t0).as_secs_f64();
        wait_responses(&http, &consumer, warm + n, Duration::from_secs(600)).await?;
        let secs = (mono() - t0).as_secs_f64();
        let cpu = super::cpu_split(&cpu0, &super::cpu_snapshot());
        let _ = stop_tx.send(true);
        for t in tasks {
            t.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
        }
        let _ = cb_task.await;
        Ok::<Value, String>(json!({
            "exchanges": n,
            "seconds": super::round3(secs),
            "submit_seconds": super::round3(submitted_s),
            "exchanges_per_s": super::round1(n as f64 / secs),
            "outstanding": outstanding,
            // CPU seconds by thread group: the adapters and the agency run on the
            // `clients` runtime, the gateway on `gateway`.
            "cpu_seconds": cpu,
        }))
    });
    host.stop()?;
    result
}

async fn wait_responses(http: &Http, base: &str, n: u64, limit: Duration) -> Result<(), String> {
    let t0 = mono();
    loop {
        let stats = get_json(http, &format!("{base}/api/v1/stats")).await?;
        if responses_in(&stats) >= n {
            return Ok(());
        }
        if mono() - t0 > limit {
            return Err(format!(
                "only {} of {n} answers arrived in {limit:?}: {stats}",
                responses_in(&stats)
            ));
        }
        // Stats scan the adapter's tables: asked rarely, so the measurement does not load it.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// VmRSS of an adapter that cannot reach its gateway, as its outbox grows.
fn outbox_memory(env: &Env, n: u64) -> Result<Value, String> {
    let dir = env.tempdir("adapter-outbox")?;
    // A port nobody listens on: every send fails and is retried later.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let endpoint = format!(
        "http://{}/smev/v1.1",
        dead.local_addr().map_err(|e| e.to_string())?
    );
    drop(dead);
    let mut cfg = adapter_config(
        env,
        dir.path(),
        super::CONSUMER_SYSTEM,
        "consumer-is",
        &endpoint,
    );
    cfg.consumer.poll_responses = false;
    cfg.consumer.poll_statuses = false;
    cfg.retry.base_delay_ms = 5_000;
    cfg.retry.max_delay_ms = 60_000;
    let outstanding = env.plan.outstanding;
    env.load.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let base = format!("http://{}", l.local_addr().map_err(|e| e.to_string())?);
        let adapter = Adapter::open(cfg).await.map_err(|e| e.to_string())?;
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(adapter.serve(l, async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }));
        let http: Http = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let first = 1000.min(n);
        submit_all(&http, &base, 0..first, outstanding).await?;
        let rss_first = status_kb("VmRSS").unwrap_or(0);
        let t0 = mono();
        submit_all(&http, &base, first..n, outstanding).await?;
        let secs = (mono() - t0).as_secs_f64();
        let rss_all = status_kb("VmRSS").unwrap_or(0);
        let stats = get_json(&http, &format!("{base}/api/v1/stats")).await?;
        let queued = stats["requests"]["queued"].as_u64().unwrap_or(0);
        let _ = stop_tx.send(true);
        task.await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let db = std::fs::metadata(dir.path().join("adapter.db"))
            .map(|m| m.len())
            .unwrap_or(0);
        Ok(json!({
            "queued": queued,
            "submitted": n,
            "submit_per_s": super::round1((n - first) as f64 / secs.max(1e-9)),
            "rss_at_first_kb": rss_first,
            "rss_at_all_kb": rss_all,
            "rss_growth_mb": super::round1((rss_all as f64 - rss_first as f64) / 1024.0),
            "database_bytes": db,
        }))
    })
}

/// The whole part.
pub(super) fn phase(env: &Env, out: &mut dyn std::io::Write) -> Result<Value, String> {
    let n = env.plan.adapters_exchanges;
    let host = Host::start(env, true, "adapters-direct")?;
    let mut direct = run_exchange_load(env, &host.endpoint, true)?;
    host.stop()?;
    let direct = direct.json(None);
    let via = through_adapters(env, n)?;
    let d = direct["exchanges_per_s"].as_f64().unwrap_or(0.0);
    let a = via["exchanges_per_s"].as_f64().unwrap_or(0.0);
    let ratio = if d > 0.0 { a / d } else { 0.0 };
    let _ = writeln!(
        out,
        "adapters: {} exchanges through two adapters in {} s = {} exchanges/s; direct {} exchanges/s; ratio {:.3}",
        n,
        via["seconds"],
        via["exchanges_per_s"],
        direct["exchanges_per_s"],
        ratio
    );
    let _ = writeln!(
        out,
        "  CPU seconds through adapters: {}",
        via["cpu_seconds"]
    );
    let _ = writeln!(
        out,
        "  CPU µs per exchange, direct: {}",
        direct["cpu_us_per_exchange"]
    );
    let memory = outbox_memory(env, env.plan.adapters_queued)?;
    let _ = writeln!(
        out,
        "adapter outbox: {} queued (gateway unreachable), VmRSS {} kB at 10³ → {} kB (+{} MB), database {} bytes, {} submits/s",
        memory["queued"], memory["rss_at_first_kb"], memory["rss_at_all_kb"], memory["rss_growth_mb"], memory["database_bytes"], memory["submit_per_s"]
    );
    Ok(json!({
        "direct": direct,
        "through_adapters": via,
        "ratio": super::round3(ratio),
        "outbox": memory,
    }))
}
