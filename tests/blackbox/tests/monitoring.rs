//! Operator monitoring through the real gateway on an injected clock (no sleeps;
//! docs/monitoring.md): a provider that stops polling turns red with the rule that says
//! so, an ageing queue turns yellow then red, certificates near their end turn systems
//! yellow and the gateway's health degraded; `/health` components (calendar, timer lag);
//! maintenance mode refuses SOAP calls with a clear 503 fault while reads keep working,
//! is journaled and survives a restart; alerts open and resolve themselves, each
//! journaled and POSTed to a webhook; only the operator reaches these routes.

use axum::routing::post;
use mezhved_blackbox::*;
use mezhved_client as client;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const PROVIDER: &str = "ZAGS_IS";
const CONSUMER: &str = "USZN_IS";

fn t(text: &str) -> SystemTime {
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .into()
}

fn ms(t: SystemTime) -> i64 {
    mezhved_core::clock::to_ms(t)
}

async fn system(gw: &TestGateway, mnemonic: &str) -> serde_json::Value {
    let r = gw
        .api()
        .operator(
            "GET",
            &format!("/api/v1/monitoring/systems/{mnemonic}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["system"].clone()
}

/// The consumer sends one request; returns its global ID.
async fn send_one(gw: &TestGateway, marker: &str) -> String {
    let sent = gw
        .consumer()
        .call(client::send_request(&gw.birth_request(marker)))
        .await;
    expect_ok(&sent);
    sent.global_id().expect("global ID")
}

async fn journal_types(gw: &TestGateway) -> Vec<(String, String)> {
    gw.journal_events()
        .await
        .into_iter()
        .map(|(ty, _, leaf)| (ty, leaf))
        .collect()
}

#[tokio::test]
async fn a_provider_that_stops_polling_turns_red_and_an_old_queue_yellow_then_red() {
    let gw = TestGateway::start().await;
    let provider = gw.provider();
    // The provider polls once (nothing waits), then goes silent.
    expect_ok(&provider.call(client::get_request(None, gw.now())).await);
    let s = system(&gw, PROVIDER).await;
    assert_eq!(s["state"], "green", "{s}");
    assert!(s["last_poll_at"].is_string(), "{s}");

    let gid = send_one(&gw, "stopped polling").await;
    gw.clock.advance(Duration::from_secs(16 * 60));
    let s = system(&gw, PROVIDER).await;
    assert_eq!(s["state"], "red", "{s}");
    assert_eq!(
        s["rule"], "red: no poll for 16 min while 1 message waits",
        "{s}"
    );
    assert_eq!(s["pending"], 1);
    assert_eq!(s["oldest_pending_age_seconds"], 16 * 60);
    let kind = s["kinds"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["root_element"] == BIRTH_ROOT))
        .expect("the birth-record kind")
        .clone();
    assert_eq!(
        (
            kind["role"].as_str(),
            kind["state"].as_str(),
            kind["pending"].as_u64()
        ),
        (Some("provider"), Some("red"), Some(1)),
        "{kind}"
    );
    // The overview and the agencies' aggregate say the same.
    let all = gw
        .api()
        .operator("GET", "/api/v1/monitoring/systems", None)
        .await
        .json();
    let listed = all["systems"]
        .as_array()
        .and_then(|v| v.iter().find(|x| x["mnemonic"] == PROVIDER))
        .expect("listed")
        .clone();
    assert_eq!(listed["state"], "red");
    let agencies = gw
        .api()
        .operator("GET", "/api/v1/monitoring/agencies", None)
        .await
        .json();
    let zags = agencies["agencies"]
        .as_array()
        .and_then(|v| v.iter().find(|a| a["mnemonic"] == "ZAGS"))
        .expect("ZAGS")
        .clone();
    assert_eq!(zags["state"], "red", "{zags}");
    assert!(
        zags["rule"]
            .as_str()
            .is_some_and(|r| r.starts_with("ZAGS_IS: red")),
        "{zags}"
    );

    // It polls again and takes the message without acknowledging it: polling is fine,
    // but the queue is 16 minutes old — yellow by age.
    let got = provider.call(client::get_request(None, gw.now())).await;
    expect_ok(&got);
    let s = system(&gw, PROVIDER).await;
    assert_eq!(s["state"], "yellow", "{s}");
    assert_eq!(
        s["rule"],
        "yellow: the oldest message has waited 16 min (limit 10 min)"
    );
    // An hour later, still unacknowledged: red by age.
    gw.clock.advance(Duration::from_secs(45 * 60));
    expect_ok(&provider.call(client::get_request(None, gw.now())).await);
    let s = system(&gw, PROVIDER).await;
    assert_eq!(s["state"], "red", "{s}");
    assert_eq!(
        s["rule"],
        "red: the oldest message has waited 1 h 1 min (limit 1 h)"
    );
    // Acknowledged: the queue is empty and the system green again.
    expect_ok(
        &provider
            .call(client::ack(&gid, true, Some(("ZAGS-IN-7", gw.now()))))
            .await,
    );
    let s = system(&gw, PROVIDER).await;
    assert_eq!(
        (s["state"].as_str(), s["pending"].as_u64()),
        (Some("green"), Some(0)),
        "{s}"
    );
    // Calls in the window (15 min): the last GetRequest and the Ack.
    assert_eq!(s["calls"], 2, "{s}");
    // An unknown system is a 404 problem.
    gw.api()
        .operator("GET", "/api/v1/monitoring/systems/NOPE", None)
        .await
        .expect_problem(404);
}

#[tokio::test]
async fn certificates_near_their_end_turn_systems_yellow_and_degrade_health() {
    let gw = TestGateway::start().await;
    // The test PKI's certificates end on 2056-11-23 (keys/gen.sh): 13 days before.
    gw.clock.set(t("2056-11-10T12:00:00Z"));
    let s = system(&gw, CONSUMER).await;
    assert_eq!(s["state"], "yellow", "{s}");
    assert_eq!(s["certificate_days_left"], 13);
    assert_eq!(
        s["rule"],
        "yellow: a registered certificate expires in 13 days (warning below 30)"
    );
    let h = gw.api().send("GET", "/health/ready", None, None).await;
    let body = h.json();
    assert_eq!(
        body["components"]["certificate"]["status"], "degraded",
        "{body}"
    );
    assert_eq!(body["components"]["certificate"]["value"]["days_left"], 13);
    assert_eq!(
        body["components"]["certificate"]["threshold"]["degraded_below_days"],
        30
    );
    // Degraded is still ready (unless another component is down, e.g. a full disk).
    let down = body["components"]
        .as_object()
        .expect("components")
        .values()
        .any(|c| c["status"] == "down");
    assert_eq!(h.status, if down { 503 } else { 200 }, "{body}");
    // Past the end: red, and the gateway's own certificate is down.
    gw.clock.set(t("2056-12-01T00:00:00Z"));
    let s = system(&gw, CONSUMER).await;
    assert_eq!(
        (s["state"].as_str(), s["rule"].as_str()),
        (
            Some("red"),
            Some("red: a registered certificate has expired")
        )
    );
    let h = gw.api().send("GET", "/health/ready", None, None).await;
    assert_eq!(h.status, 503);
    assert_eq!(h.json()["components"]["certificate"]["status"], "down");
    assert_eq!(h.json()["ready"], false);
}

#[tokio::test]
async fn health_reports_each_component_the_calendar_and_the_timer_lag() {
    let gw = TestGateway::start().await;
    gw.clock.set(t("2026-12-02T07:00:00Z"));
    let api = gw.api();
    let live = api.send("GET", "/health/live", None, None).await;
    assert_eq!(
        (live.status, live.json()["status"].as_str()),
        (200, Some("ok"))
    );
    let h = api.send("GET", "/health", None, None).await.json();
    for c in ["store", "disk", "timer", "certificate", "calendar"] {
        assert!(h["components"][c]["status"].is_string(), "{c}: {h}");
    }
    assert_eq!(h["components"]["store"]["status"], "ok", "{h}");
    assert!(h["components"]["store"]["value"]["commit_latency_ms"].is_u64());
    assert!(h["components"]["disk"]["value"]["free_mb"].is_u64());
    assert_eq!(h["components"]["calendar"]["status"], "ok");
    assert_eq!(h["components"]["calendar"]["value"]["year"], 2026);
    assert_eq!(h["components"]["timer"]["value"]["lag_seconds"], 0);
    assert_eq!(h["maintenance"]["enabled"], false);
    assert!(h["registry_version"].is_u64());

    // A request's deadlines; ten days later nobody fired them: the timer lags.
    send_one(&gw, "timer lag").await;
    gw.clock.set(t("2026-12-19T07:00:00Z"));
    let h = api.send("GET", "/health/ready", None, None).await;
    let body = h.json();
    let timer = &body["components"]["timer"];
    assert_eq!(timer["status"], "down", "{body}");
    assert!(
        timer["value"]["lag_seconds"]
            .as_u64()
            .is_some_and(|l| l > 600),
        "{timer}"
    );
    assert_eq!(h.status, 503);
    // A timer fires them: no lag.
    gw.deadline_timer("second-node")
        .run_once()
        .await
        .expect("fires");
    let h = api.send("GET", "/health", None, None).await.json();
    assert_eq!(h["components"]["timer"]["status"], "ok", "{h}");

    // In 2028 no production calendar is loaded: degraded, naming the year.
    gw.clock.set(t("2028-03-01T09:00:00Z"));
    let h = api.send("GET", "/health", None, None).await.json();
    let cal = &h["components"]["calendar"];
    assert_eq!(cal["status"], "degraded", "{cal}");
    assert_eq!(cal["value"]["year"], 2028);
    assert!(
        cal["detail"].as_str().is_some_and(|d| d.contains("2028")),
        "{cal}"
    );
}

#[tokio::test]
async fn maintenance_refuses_soap_calls_keeps_reads_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = TestGateway::start_in(test_config(dir.path())).await;
    let api = gw.api();
    let off = api
        .operator("GET", "/api/v1/maintenance", None)
        .await
        .json();
    assert_eq!(off["enabled"], false);
    // A reason is required to switch it on.
    api.operator(
        "PUT",
        "/api/v1/maintenance",
        Some(&serde_json::json!({ "enabled": true })),
    )
    .await
    .expect_problem(422);
    let on = api
        .operator(
            "PUT",
            "/api/v1/maintenance",
            Some(&serde_json::json!({ "enabled": true, "reason": "database upgrade until 22:00" })),
        )
        .await;
    assert_eq!(on.status, 200, "{}", on.text());
    assert_eq!(on.json()["enabled"], true);

    let refused = gw
        .consumer()
        .call(client::send_request(&gw.birth_request("in maintenance")))
        .await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.fault().as_deref(), Some("SMEVFailure"));
    let text = refused.text();
    assert!(
        text.contains("<faultcode>soap:Server</faultcode>"),
        "{text}"
    );
    assert!(
        text.contains("maintenance mode") && text.contains("database upgrade until 22:00"),
        "{text}"
    );
    let raw = api
        .send_with_headers("POST", "/smev/v1.1", &[("Content-Type", "text/xml")], None)
        .await;
    assert_eq!(raw.status, 503);
    assert_eq!(
        raw.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("300")
    );
    // WSDL, REST reads, the journal API and administration keep working.
    assert_eq!(
        api.send("GET", "/smev/v1.1?wsdl", None, None).await.status,
        200
    );
    assert_eq!(
        api.operator("GET", "/api/v1/registry", None).await.status,
        200
    );
    assert_eq!(
        api.operator("GET", "/api/v1/monitoring/systems", None)
            .await
            .status,
        200
    );
    assert_eq!(
        api.send("GET", "/health/live", None, None).await.status,
        200
    );
    let ready = api.send("GET", "/health/ready", None, None).await;
    assert_eq!(ready.status, 503);
    assert_eq!(
        ready.json()["maintenance"]["reason"],
        "database upgrade until 22:00"
    );
    let events = journal_types(&gw).await;
    let switched: Vec<_> = events
        .iter()
        .filter(|(ty, _)| ty == "operator.maintenance")
        .collect();
    assert_eq!(switched.len(), 1, "{events:?}");
    assert!(
        switched[0].1.contains("\"actor\":\"operator\""),
        "{}",
        switched[0].1
    );
    assert!(switched[0].1.contains("database upgrade until 22:00"));

    // A restart keeps it on.
    gw.stop().await;
    let gw = TestGateway::start_in(test_config(dir.path())).await;
    let api = gw.api();
    let still = gw
        .consumer()
        .call(client::send_request(&gw.birth_request("after restart")))
        .await;
    assert_eq!(still.status, 503, "{}", still.text());
    assert_eq!(
        api.operator("GET", "/api/v1/maintenance", None)
            .await
            .json()["enabled"],
        true
    );
    // Off again: calls work.
    let off = api
        .operator(
            "PUT",
            "/api/v1/maintenance",
            Some(&serde_json::json!({ "enabled": false, "reason": "done" })),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.text());
    send_one(&gw, "after maintenance").await;
    let events = journal_types(&gw).await;
    assert_eq!(
        events
            .iter()
            .filter(|(ty, _)| ty == "operator.maintenance")
            .count(),
        2
    );
    gw.stop().await;
}

/// A webhook receiver on 127.0.0.1: every POSTed JSON goes to the channel.
async fn webhook() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let tx = Arc::new(tx);
    let app = axum::Router::new().route(
        "/hook",
        post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), rx)
}

/// The next `n` webhook posts about `subject` (others, e.g. the gateway's checkpoint, are
/// skipped).
async fn posts_about(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    subject: &str,
    n: usize,
) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while out.len() < n {
        let v = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a webhook post in time")
            .expect("the channel is open");
        if v["subject"] == subject {
            out.push(v);
        }
    }
    out
}

#[tokio::test]
async fn alerts_open_journal_and_post_then_resolve_themselves() {
    let (url, mut posts) = webhook().await;
    let gw = TestGateway::start_with(|c| {
        c.monitoring.webhook_url = url.clone();
        c.monitoring.webhook_retry_base_ms = 10;
    })
    .await;
    let provider = gw.provider();
    expect_ok(&provider.call(client::get_request(None, gw.now())).await);
    let gid = send_one(&gw, "alerting").await;
    // Nothing is wrong yet.
    let none = mezhved_http::alerts::evaluate_once(&gw.state, ms(gw.now()))
        .await
        .expect("evaluates");
    assert!(none.iter().all(|t| t.subject != PROVIDER), "{none:?}");

    gw.clock.advance(Duration::from_secs(61 * 60));
    let raised = mezhved_http::alerts::evaluate_once(&gw.state, ms(gw.now()))
        .await
        .expect("evaluates");
    let mut ours: Vec<(&str, &str)> = raised
        .iter()
        .filter(|t| t.subject == PROVIDER)
        .map(|t| (t.transition, t.rule.as_str()))
        .collect();
    ours.sort();
    assert_eq!(
        ours,
        [("raised", "queue.age"), ("raised", "system.not_polling")]
    );
    // Evaluating again changes nothing: an open alert is not raised twice.
    let again = mezhved_http::alerts::evaluate_once(&gw.state, ms(gw.now()))
        .await
        .expect("evaluates");
    assert!(again.iter().all(|t| t.subject != PROVIDER), "{again:?}");

    let listed = gw
        .api()
        .operator("GET", "/api/v1/monitoring/alerts", None)
        .await
        .json();
    let open: Vec<&serde_json::Value> = listed["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["subject"] == PROVIDER)
        .collect();
    assert_eq!(open.len(), 2, "{listed}");
    assert!(open.iter().any(|a| a["rule"] == "system.not_polling"
        && a["detail"] == "no poll for 1 h 1 min while 1 message waits"
        && a["value"] == "3660s"));
    let mut got = posts_about(&mut posts, PROVIDER, 2).await;
    got.sort_by_key(|v| v["rule"].as_str().unwrap_or_default().to_string());
    assert_eq!(got[0]["transition"], "raised");
    assert_eq!(got[0]["rule"], "queue.age");
    assert_eq!(got[1]["rule"], "system.not_polling");
    assert_eq!(got[1]["value"], "3660s");

    // The provider comes back: takes and acknowledges the message. Both resolve.
    let taken = provider.call(client::get_request(None, gw.now())).await;
    expect_ok(&taken);
    expect_ok(
        &provider
            .call(client::ack(&gid, true, Some(("ZAGS-IN-9", gw.now()))))
            .await,
    );
    let resolved = mezhved_http::alerts::evaluate_once(&gw.state, ms(gw.now()))
        .await
        .expect("evaluates");
    let mut ours: Vec<(&str, &str)> = resolved
        .iter()
        .filter(|t| t.subject == PROVIDER)
        .map(|t| (t.transition, t.rule.as_str()))
        .collect();
    ours.sort();
    assert_eq!(
        ours,
        [
            ("resolved", "queue.age"),
            ("resolved", "system.not_polling")
        ]
    );
    let listed = gw
        .api()
        .operator("GET", "/api/v1/monitoring/alerts", None)
        .await
        .json();
    assert!(
        listed["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .all(|a| a["subject"] != PROVIDER),
        "{listed}"
    );
    let got = posts_about(&mut posts, PROVIDER, 2).await;
    assert!(got.iter().all(|v| v["transition"] == "resolved"), "{got:?}");

    // The journal has both transitions of both alerts, metadata only.
    let events = journal_types(&gw).await;
    let of = |ty: &str| {
        events
            .iter()
            .filter(|(t, leaf)| t == ty && leaf.contains(PROVIDER))
            .count()
    };
    assert_eq!(
        (of("alert.raised"), of("alert.resolved")),
        (2, 2),
        "{events:?}"
    );
    assert!(events
        .iter()
        .filter(|(t, _)| t.starts_with("alert."))
        .all(|(_, leaf)| !leaf.contains("Ivanova")));
}

#[tokio::test]
async fn only_the_operator_reaches_monitoring_and_maintenance() {
    let gw = TestGateway::start().await;
    let api = gw.api();
    for path in [
        "/api/v1/monitoring/systems",
        "/api/v1/monitoring/systems/ZAGS_IS",
        "/api/v1/monitoring/agencies",
        "/api/v1/monitoring/overdue",
        "/api/v1/monitoring/alerts",
        "/api/v1/maintenance",
    ] {
        api.send("GET", path, None, None).await.expect_problem(401);
        api.auditor("GET", path, None).await.expect_problem(403);
        assert_eq!(api.operator("GET", path, None).await.status, 200, "{path}");
    }
    let body = serde_json::json!({ "enabled": true, "reason": "x" });
    api.send("PUT", "/api/v1/maintenance", None, Some(&body))
        .await
        .expect_problem(401);
    api.auditor("PUT", "/api/v1/maintenance", Some(&body))
        .await
        .expect_problem(403);
    // Probes need no credential.
    assert_eq!(
        api.send("GET", "/health/live", None, None).await.status,
        200
    );
}

#[tokio::test]
async fn overdue_requests_are_listed_and_counted_per_provider() {
    let gw = TestGateway::start().await;
    gw.clock.set(t("2026-12-02T07:00:00Z"));
    let gid = send_one(&gw, "overdue").await;
    // Past the reply deadline (2026-12-09T21:00Z), fired by a timer.
    gw.clock.set(t("2026-12-10T08:00:00Z"));
    gw.deadline_timer("second-node")
        .run_once()
        .await
        .expect("fires");
    let list = gw
        .api()
        .operator("GET", "/api/v1/monitoring/overdue", None)
        .await
        .json();
    assert_eq!(list["count"], 1, "{list}");
    let o = &list["overdue"][0];
    assert_eq!(o["global_id"], gid.as_str());
    assert_eq!(o["provider_system"], PROVIDER);
    assert_eq!(o["consumer_system"], CONSUMER);
    assert_eq!(o["due_at"], "2026-12-09T21:00:00.000Z");
    assert_eq!(o["overdue_seconds"], 11 * 3600);
    let s = system(&gw, PROVIDER).await;
    assert_eq!(s["overdue"], 1, "{s}");
    assert!(
        s["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .any(|r| r == "yellow: 1 request is overdue"),
        "{s}"
    );
}

#[tokio::test]
async fn the_last_poll_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = TestGateway::start_in(test_config(dir.path())).await;
    gw.clock.set(t("2026-12-02T07:00:00Z"));
    expect_ok(
        &gw.provider()
            .call(client::get_request(None, gw.now()))
            .await,
    );
    assert_eq!(
        system(&gw, PROVIDER).await["last_poll_at"],
        "2026-12-02T07:00:00.000Z"
    );
    gw.stop().await;
    let gw = TestGateway::start_in(test_config(dir.path())).await;
    gw.clock.set(t("2026-12-02T07:20:00Z"));
    let s = system(&gw, PROVIDER).await;
    assert_eq!(s["last_poll_at"], "2026-12-02T07:00:00.000Z", "{s}");
    assert_eq!(s["last_poll_age_seconds"], 20 * 60);
    gw.stop().await;
}

#[tokio::test]
async fn a_provider_draining_one_kind_but_not_another_turns_red_for_the_neglected_one() {
    const MARRIAGE_NS: &str = "urn://mezhved/demo/zags/marriage-record/1.0";
    const MARRIAGE_ROOT: &str = "MarriageRecordRequest";
    let gw = TestGateway::start().await;
    gw.clock.set(t("2026-12-02T07:00:00Z"));
    // A second kind of the provider's.
    let kind = serde_json::json!({
        "namespace": MARRIAGE_NS, "root_element": MARRIAGE_ROOT, "name": "Marriage record",
        "provider_system": PROVIDER, "restricted": false, "consent_required": false,
        "description": "State registration of a marriage",
    });
    let r = gw
        .api()
        .operator("PUT", "/api/v1/registry/kinds", Some(&kind))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let provider = gw.provider();
    expect_ok(&provider.call(client::get_request(None, gw.now())).await);
    send_one(&gw, "neglected").await;
    // For a quarter of an hour it asks for statuses and drains marriage records only.
    for _ in 0..4 {
        gw.clock.advance(Duration::from_secs(5 * 60));
        let now = gw.now();
        expect_ok(
            &provider
                .call(client::get_request(Some((MARRIAGE_NS, MARRIAGE_ROOT)), now))
                .await,
        );
        expect_ok(&provider.call(client::get_status(now)).await);
    }
    gw.clock.advance(Duration::from_secs(60));
    let s = system(&gw, PROVIDER).await;
    // It polled a minute ago, yet birth records have not been taken for 21 minutes.
    assert_eq!(s["last_poll_age_seconds"], 60, "{s}");
    assert_eq!(s["state"], "red", "{s}");
    assert_eq!(
        s["rule"], "red: no poll for 21 min while 1 message waits",
        "{s}"
    );
    let kinds = s["kinds"].as_array().expect("kinds");
    let kind = |root: &str| {
        kinds
            .iter()
            .find(|k| k["root_element"] == root)
            .unwrap_or_else(|| panic!("{root} in {s}"))
            .clone()
    };
    let birth = kind(BIRTH_ROOT);
    assert_eq!(birth["state"], "red", "{birth}");
    assert_eq!(
        birth["last_drain_at"], "2026-12-02T07:00:00.000Z",
        "{birth}"
    );
    let marriage = kind(MARRIAGE_ROOT);
    assert_eq!(marriage["state"], "green", "{marriage}");
    assert_eq!(marriage["last_drain_at"], "2026-12-02T07:20:00.000Z");

    // A drain of every kind takes the birth record: no longer silent.
    expect_ok(&provider.call(client::get_request(None, gw.now())).await);
    let s = system(&gw, PROVIDER).await;
    assert!(!s["rule"].as_str().unwrap_or("").contains("no poll"), "{s}");
    let birth = s["kinds"]
        .as_array()
        .expect("kinds")
        .iter()
        .find(|k| k["root_element"] == BIRTH_ROOT)
        .cloned()
        .expect("birth");
    assert_eq!(
        birth["last_drain_at"], "2026-12-02T07:21:00.000Z",
        "{birth}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn one_store_read_serves_every_reader_for_the_snapshot_interval() {
    let gw = TestGateway::start_with(|c| c.monitoring.snapshot_ttl_ms = 1000).await;
    gw.clock.set(t("2026-12-02T07:00:00Z"));
    assert_eq!(system(&gw, PROVIDER).await["pending"], 0);
    send_one(&gw, "cached").await;
    // Within the interval every reader gets the figures of the first read …
    gw.clock.advance(Duration::from_millis(999));
    assert_eq!(system(&gw, PROVIDER).await["pending"], 0);
    let r = gw
        .api()
        .operator("GET", "/api/v1/monitoring/systems", None)
        .await;
    let listed = r.json()["systems"]
        .as_array()
        .expect("systems")
        .iter()
        .find(|s| s["mnemonic"] == PROVIDER)
        .cloned()
        .expect("the provider");
    assert_eq!(listed["pending"], 0, "{listed}");
    // … and the next read after it sees the message.
    gw.clock.advance(Duration::from_millis(1));
    assert_eq!(system(&gw, PROVIDER).await["pending"], 1);
    // A clock set back reads again rather than trusting a read from its future.
    send_one(&gw, "after").await;
    gw.clock.set(t("2026-12-02T06:59:00Z"));
    assert_eq!(system(&gw, PROVIDER).await["pending"], 2);
    gw.stop().await;
}

#[tokio::test]
async fn only_a_drain_of_its_own_queue_keeps_a_provider_polling_and_drains_outlive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = TestGateway::start_in(test_config(dir.path())).await;
    gw.clock.set(t("2026-12-02T07:00:00Z"));
    let provider = gw.provider();
    expect_ok(&provider.call(client::get_request(None, gw.now())).await);
    send_one(&gw, "waiting").await;
    // For 16 minutes the provider fetches answers (GetResponse) but never requests.
    for _ in 0..4 {
        gw.clock.advance(Duration::from_secs(4 * 60));
        expect_ok(&provider.call(client::get_response(None, gw.now())).await);
    }
    let s = system(&gw, PROVIDER).await;
    assert_eq!(s["state"], "red", "{s}");
    assert_eq!(
        s["rule"], "red: no poll for 16 min while 1 message waits",
        "{s}"
    );
    // The drains are flushed with the activity and read back after a restart: the
    // silence is still counted from 07:00, though this node has just seen a GetStatus.
    mezhved_http::monitoring_api::flush_activity(&gw.state)
        .await
        .expect("flush");
    gw.stop().await;
    let gw = TestGateway::start_in(test_config(dir.path())).await;
    gw.clock.set(t("2026-12-02T07:20:00Z"));
    expect_ok(&gw.provider().call(client::get_status(gw.now())).await);
    let s = system(&gw, PROVIDER).await;
    assert_eq!(
        s["rule"], "red: no poll for 20 min while 1 message waits",
        "{s}"
    );
    let birth = s["kinds"]
        .as_array()
        .expect("kinds")
        .iter()
        .find(|k| k["root_element"] == BIRTH_ROOT)
        .cloned()
        .expect("birth");
    assert_eq!(
        birth["last_drain_at"], "2026-12-02T07:00:00.000Z",
        "{birth}"
    );
    gw.stop().await;
}
