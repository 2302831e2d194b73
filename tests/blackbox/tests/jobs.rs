//! Periodic jobs on an injected clock: a slot runs once even when two nodes fire it, the
//! retention purge, certificate-expiry warnings, and a calendar reload that changes the
//! next deadline without a restart.

use mezhved_blackbox::*;
use mezhved_client::{self as client};
use mezhved_http::jobs::{jobs, run_job};
use std::time::{Duration, SystemTime};

fn t(text: &str) -> SystemTime {
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .into()
}

fn body(gw: &TestGateway, name: &str) -> mezhved_http::jobs::JobBody {
    jobs(&gw.state)
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, b)| b)
        .expect("the job exists")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_runs_once_and_retention_purges_finished_messages() {
    let gw = TestGateway::start().await;
    gw.clock.set(t("2026-12-02T07:00:00Z"));
    let consumer = gw.consumer();
    let provider = gw.provider();
    let sent = consumer
        .call(client::send_request(&gw.birth_request("retention")))
        .await;
    let gid = sent.global_id().expect("id");
    expect_ok(&provider.call(client::get_request(None, gw.now())).await);
    expect_ok(&provider.call(client::ack(&gid, true, None)).await);
    let pending = consumer
        .call(client::send_request(&gw.birth_request("still-pending")))
        .await;
    expect_ok(&pending);
    let messages = |gw: &TestGateway| gw.count("SELECT count(*) FROM messages");
    let before = messages(&gw);

    // Six days later nothing is old enough; eight days later the acknowledged request
    // (and the acknowledged delivery status) go, the pending one stays, cards stay.
    gw.clock.advance(Duration::from_secs(6 * 24 * 3600));
    let slot = 1_000;
    let first = run_job(gw.state.clone(), "retention", slot, body(&gw, "retention"))
        .await
        .expect("runs");
    assert_eq!(first.as_deref(), Some("purged 0 finished messages"));
    // The same slot fired on a second node: taken, nothing runs.
    let again = run_job(gw.state.clone(), "retention", slot, body(&gw, "retention"))
        .await
        .expect("runs");
    assert_eq!(again, None);
    assert_eq!(
        gw.count("SELECT count(*) FROM job_slots WHERE job = 'retention'"),
        1
    );

    gw.clock.advance(Duration::from_secs(2 * 24 * 3600));
    let purged = run_job(
        gw.state.clone(),
        "retention",
        slot + 1,
        body(&gw, "retention"),
    )
    .await
    .expect("runs")
    .expect("ran");
    assert!(purged.starts_with("purged "), "{purged}");
    assert!(messages(&gw) < before, "{purged}");
    assert_eq!(
        gw.count(&format!(
            "SELECT count(*) FROM messages WHERE global_id = x'{}'",
            gid.replace('-', "")
        )),
        0
    );
    assert_eq!(
        gw.count("SELECT count(*) FROM messages WHERE acked_at IS NULL AND queue = 0"),
        1,
        "the pending request stays"
    );
    assert!(gw.count("SELECT count(*) FROM cards") >= 2, "cards stay");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_expiring_soon_are_warned_about() {
    let gw = TestGateway::start().await;
    let job = body(&gw, "certificate-expiry");
    // Today nothing expires within 30 days.
    let now = run_job(gw.state.clone(), "certificate-expiry", 1, job.clone())
        .await
        .expect("runs")
        .expect("ran");
    assert!(now.starts_with("0 certificate(s)"), "{now}");
    // The test PKI's certificates end on 2056-11-23.
    gw.clock.set(t("2056-11-01T00:00:00Z"));
    let later = run_job(gw.state.clone(), "certificate-expiry", 2, job)
        .await
        .expect("runs")
        .expect("ran");
    assert!(!later.starts_with("0 "), "{later}");
    assert!(
        gw.count("SELECT count(*) FROM journal_events WHERE type = 'certificate.expiring' AND json_extract(leaf, '$.owner') = 'gateway'"
        ) == 1
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_calendar_moves_the_next_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let overlay = dir.path().join("region.toml");
    let write = |non_working: &str| {
        std::fs::write(
            &overlay,
            format!(
                "name = \"test-region\"\nkind = \"overlay\"\n[[year]]\nyear = 2026\nsource = \"test\"\nnon_working = [{non_working}]\n"
            ),
        )
        .expect("write overlay");
    };
    write("");
    let mut config = test_config(&dir.path().join("data"));
    config.deadlines.calendars = vec![overlay.clone()];
    let gw = TestGateway::start_in(config).await;
    gw.clock.set(t("2026-12-02T07:00:00Z"));
    let consumer = gw.consumer();
    let due = |reply: &client::Reply| reply.first_text(client::MZ_NS, "DueAt").map(|d| t(&d));

    let first = consumer
        .call(client::send_request(&gw.birth_request("calendar-1")))
        .await;
    assert_eq!(due(&first), Some(t("2026-12-09T21:00:00Z")));

    // The region declares Monday 2026-12-07 a holiday; the reload applies it.
    write("\"2026-12-07\"");
    let reloaded = run_job(
        gw.state.clone(),
        "calendar-reload",
        1,
        body(&gw, "calendar-reload"),
    )
    .await
    .expect("runs")
    .expect("ran");
    assert!(reloaded.contains("2026"), "{reloaded}");
    let second = consumer
        .call(client::send_request(&gw.birth_request("calendar-2")))
        .await;
    assert_eq!(due(&second), Some(t("2026-12-10T21:00:00Z")));
    gw.stop().await;
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_semiannual_evaluation_is_written_and_journaled() {
    let gw = TestGateway::start().await;
    gw.clock.set(t("2026-12-02T07:00:00Z"));
    let consumer = gw.consumer();
    expect_ok(
        &consumer
            .call(client::send_request(&gw.birth_request("half-year")))
            .await,
    );
    // On 15 January the report of the second half of 2026 is due.
    gw.clock.set(t("2027-01-15T03:00:00Z"));
    let done = run_job(
        gw.state.clone(),
        "evaluation-report",
        1,
        body(&gw, "evaluation-report"),
    )
    .await
    .expect("runs")
    .expect("ran");
    assert!(done.contains("2026H2"), "{done}");
    let dir = gw.data_dir.join("reports");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("2026H2.json")).expect("json written"))
            .expect("JSON");
    assert_eq!(json["totals"]["senders"]["requests"], 1, "{json}");
    assert_eq!(json["totals"]["providers"]["open_overdue"], 1, "{json}");
    assert!(std::fs::read_to_string(dir.join("2026H2.html"))
        .expect("html")
        .contains("<table"));
    assert!(dir.join("2026H2.csv").is_file());
    assert_eq!(
        gw.count("SELECT count(*) FROM journal_events WHERE type = 'report.generated' AND json_extract(leaf, '$.half_year') = '2026H2'"
        ),
        1
    );
    gw.stop().await;
}
