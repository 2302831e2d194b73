//! Reply deadlines and message lifetimes through the real gateway, on an injected clock
//! (no sleeps): the deadline in the registration header, the reminder, overdue statuses to
//! both sides, a late answer still delivered and marked late, answers that close the
//! deadline, clarification policies, EOL expiry, a restart after deadlines passed, and two
//! timers over one store firing each row exactly once.
//!
//! Dates: a request received Wednesday 2026-12-02 10:00 Moscow time (07:00 UTC) is due by
//! the end of the fifth working day after, Wednesday 2026-12-09, 24:00 Moscow time
//! (2026-12-09T21:00Z); the reminder comes at the start of that last day (2026-12-08T21:00Z).

use mezhved_blackbox::*;
use mezhved_client::{self as client, ResponseContent, TYPES_NS};
use std::time::{Duration, SystemTime};

fn t(text: &str) -> SystemTime {
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .into()
}

const RECEIVED: &str = "2026-12-02T07:00:00Z";
const REMINDER: &str = "2026-12-08T21:00:00Z";
const DUE: &str = "2026-12-09T21:00:00Z";

/// Sends one request at RECEIVED; the provider fetches and acknowledges it. Returns the
/// global ID and the ReplyTo of the delivered request.
async fn received_request(gw: &TestGateway, marker: &str) -> (String, String) {
    let consumer = gw.consumer();
    let provider = gw.provider();
    let sent = consumer
        .call(client::send_request(&gw.birth_request(marker)))
        .await;
    expect_ok(&sent);
    let gid = sent.global_id().expect("id");
    let got = provider.call(client::get_request(None, gw.now())).await;
    expect_ok(&got);
    assert_eq!(got.global_id().as_deref(), Some(gid.as_str()));
    let reply_to = got.reply_to().expect("ReplyTo");
    expect_ok(
        &provider
            .call(client::ack(&gid, true, Some(("ZAGS-IN-1", gw.now()))))
            .await,
    );
    (gid, reply_to)
}

/// Every status in `system`'s status queue, in order (GetStatus consumes them).
async fn statuses(gw: &TestGateway, system: &TestSystem) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let r = system.call(client::get_status(gw.now())).await;
        expect_ok(&r);
        match r.first_text(TYPES_NS, "StatusCategory") {
            Some(c) => out.push(c),
            None => return out,
        }
    }
}

fn data(gw: &TestGateway, reply_to: &str) -> client::Outgoing {
    client::send_response(
        client::message_id(gw.now()),
        reply_to,
        &ResponseContent::Data(format!(
            "<r:BirthRecordResponse xmlns:r=\"{BIRTH_NS}\"><r:RecordNumber>1</r:RecordNumber></r:BirthRecordResponse>"
        )),
        &[],
    )
}

fn status(gw: &TestGateway, reply_to: &str, code: i32) -> client::Outgoing {
    client::send_response(
        client::message_id(gw.now()),
        reply_to,
        &ResponseContent::Status {
            code,
            description: "status".into(),
            parameters: Vec::new(),
        },
        &[],
    )
}

async fn event_types(gw: &TestGateway, gid: &str) -> Vec<String> {
    let card = gw
        .api()
        .auditor("GET", &format!("/api/v1/journal/cards/{gid}"), None)
        .await
        .json();
    card["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminder_overdue_and_a_late_answer() {
    let gw = TestGateway::start().await;
    gw.clock.set(t(RECEIVED));
    let consumer = gw.consumer();
    let provider = gw.provider();
    let sent = consumer
        .call(client::send_request(&gw.birth_request("deadline-1")))
        .await;
    expect_ok(&sent);
    let gid = sent.global_id().expect("id");
    let due = sent
        .first_text(client::MZ_NS, "DueAt")
        .expect("DueAt header");
    assert_eq!(t(&due), t(DUE), "{due}");
    let got = provider.call(client::get_request(None, gw.now())).await;
    assert_eq!(
        got.first_text(client::MZ_NS, "DueAt").map(|d| t(&d)),
        Some(t(DUE)),
        "the provider sees the deadline"
    );
    let reply_to = got.reply_to().expect("ReplyTo");
    expect_ok(
        &provider
            .call(client::ack(&gid, true, Some(("ZAGS-IN-1", gw.now()))))
            .await,
    );

    let timer = gw.deadline_timer("second-node");
    gw.clock.set(t(REMINDER) - Duration::from_millis(1));
    assert_eq!(timer.run_once().await.expect("run"), 0, "nothing due yet");
    gw.clock.set(t(REMINDER));
    assert_eq!(timer.run_once().await.expect("run"), 1, "the reminder");
    assert_eq!(statuses(&gw, &provider).await, ["deadlineReminder"]);

    gw.clock.set(t(DUE) - Duration::from_millis(1));
    assert_eq!(timer.run_once().await.expect("run"), 0);
    gw.clock.set(t(DUE));
    assert_eq!(timer.run_once().await.expect("run"), 1, "overdue");
    assert_eq!(timer.run_once().await.expect("run"), 0, "fires once");
    assert_eq!(statuses(&gw, &provider).await, ["deadlineOverdue"]);
    let consumer_statuses = statuses(&gw, &consumer).await;
    assert!(
        consumer_statuses.contains(&"deadlineOverdue".to_string()),
        "{consumer_statuses:?}"
    );
    let overdue = gw
        .api()
        .auditor("GET", "/api/v1/journal/cards?overdue=true", None)
        .await
        .json();
    assert_eq!(overdue["cards"][0]["global_id"], gid.as_str(), "{overdue}");

    // The answer comes a day late: accepted, delivered, marked late; the deadline closes.
    gw.clock.advance(Duration::from_secs(24 * 3600));
    let answered = provider.call(data(&gw, &reply_to)).await;
    expect_ok(&answered);
    assert_eq!(
        answered.first_text(client::MZ_NS, "Late").as_deref(),
        Some("true")
    );
    let fetched = consumer.call(client::get_response(None, gw.now())).await;
    expect_ok(&fetched);
    assert_eq!(
        fetched.first_text(client::MZ_NS, "Late").as_deref(),
        Some("true")
    );
    let overdue = gw
        .api()
        .auditor("GET", "/api/v1/journal/cards?overdue=true", None)
        .await
        .json();
    assert_eq!(overdue["cards"].as_array().map(Vec::len), Some(0), "closed");
    let types = event_types(&gw, &gid).await;
    for want in ["message.accepted", "deadline.reminder", "deadline.overdue"] {
        assert!(types.iter().any(|t| t == want), "{want} in {types:?}");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_answer_closes_the_deadline_an_intermediate_status_does_not() {
    let gw = TestGateway::start().await;
    gw.clock.set(t(RECEIVED));
    let provider = gw.provider();
    let (_, in_progress) = received_request(&gw, "closes-1").await;
    let (_, answered) = received_request(&gw, "closes-2").await;
    expect_ok(&provider.call(status(&gw, &in_progress, 1)).await);
    expect_ok(&provider.call(data(&gw, &answered)).await);
    gw.clock.set(t(DUE) + Duration::from_secs(1));
    let timer = gw.deadline_timer("second-node");
    // The request with only an intermediate status: reminder and overdue. The answered
    // one: nothing.
    assert_eq!(timer.run_once().await.expect("run"), 2);
    assert_eq!(
        statuses(&gw, &provider).await,
        ["deadlineReminder", "deadlineOverdue"]
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clarification_restarts_or_continues_by_policy() {
    for (policy, fired) in [("restart", 0), ("continue", 2)] {
        let gw = TestGateway::start_with(|c| c.deadlines.clarification = policy.into()).await;
        gw.clock.set(t(RECEIVED));
        let provider = gw.provider();
        let (_, reply_to) = received_request(&gw, "clarify").await;
        let asked = provider
            .call(status(
                &gw,
                &reply_to,
                mezhved_core::deadlines::CLARIFICATION_STATUS_CODE,
            ))
            .await;
        expect_ok(&asked);
        gw.clock.set(t(DUE) + Duration::from_secs(1));
        let timer = gw.deadline_timer("second-node");
        assert_eq!(timer.run_once().await.expect("run"), fired, "{policy}");
        gw.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undelivered_message_expires_at_its_eol() {
    let gw = TestGateway::start().await;
    gw.clock.set(t(RECEIVED));
    let consumer = gw.consumer();
    let provider = gw.provider();
    let mut request = gw.birth_request("expires");
    request.eol = Some(t(RECEIVED) + Duration::from_secs(3600));
    let sent = consumer.call(client::send_request(&request)).await;
    expect_ok(&sent);
    let gid = sent.global_id().expect("id");
    gw.clock.set(t(RECEIVED) + Duration::from_secs(3601));
    let timer = gw.deadline_timer("second-node");
    assert_eq!(timer.run_once().await.expect("run"), 1);
    let none = provider.call(client::get_request(None, gw.now())).await;
    expect_ok(&none);
    assert!(!none.has_message(), "expired messages are not delivered");
    assert_eq!(statuses(&gw, &consumer).await, ["messageExpired"]);
    let types = event_types(&gw, &gid).await;
    assert!(types.iter().any(|t| t == "message.expired"), "{types:?}");
    // Its reply deadline ended with it.
    gw.clock.set(t(DUE) + Duration::from_secs(1));
    assert_eq!(timer.run_once().await.expect("run"), 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_that_passed_while_the_gateway_was_down_fire_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = test_config(dir.path());
    let gw = TestGateway::start_in(config.clone()).await;
    gw.clock.set(t(RECEIVED));
    let (gid, _) = received_request(&gw, "restart").await;
    gw.stop().await;

    let gw = TestGateway::start_in(config).await;
    gw.clock.set(t(DUE) + Duration::from_secs(7 * 24 * 3600));
    let timer = gw.deadline_timer("after-restart");
    assert_eq!(
        timer.run_once().await.expect("run"),
        2,
        "reminder and overdue"
    );
    let types = event_types(&gw, &gid).await;
    assert!(types.iter().any(|t| t == "deadline.overdue"), "{types:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_timers_over_one_store_fire_each_row_exactly_once() {
    let gw = TestGateway::start().await;
    gw.clock.set(t(RECEIVED));
    let consumer = gw.consumer();
    const N: usize = 60;
    for i in 0..N {
        expect_ok(
            &consumer
                .call(client::send_request(
                    &gw.birth_request(&format!("pair-{i}")),
                ))
                .await,
        );
    }
    gw.clock.set(t(DUE) + Duration::from_secs(1));
    let (a, b) = (gw.deadline_timer("node-a"), gw.deadline_timer("node-b"));
    let (fa, fb) = tokio::join!(a.run_once(), b.run_once());
    let (fa, fb) = (fa.expect("a"), fb.expect("b"));
    // Plus whatever the gateway's own timer fired meanwhile: together exactly 2 per request.
    assert_eq!(
        gw.count("SELECT count(*) FROM deadlines WHERE fired_at IS NOT NULL"),
        2 * N as i64
    );
    assert_eq!(
        gw.count("SELECT count(*) FROM journal_events WHERE type = 'deadline.overdue'"),
        N as i64
    );
    assert_eq!(
        gw.count("SELECT count(*) FROM journal_events WHERE type = 'deadline.reminder'"),
        N as i64
    );
    assert!(fa + fb <= 2 * N, "{fa} + {fb}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_with_a_shorter_term_by_law_gets_its_own_deadline() {
    let gw = TestGateway::start().await;
    gw.clock.set(t(RECEIVED));
    let kind = serde_json::json!({
        "namespace": BIRTH_NS,
        "root_element": BIRTH_ROOT,
        "name": "Birth record",
        "provider_system": "ZAGS_IS",
        "description": "State registration of a birth",
        "reply_working_days": 3
    });
    let put = gw
        .api()
        .operator("PUT", "/api/v1/registry/kinds", Some(&kind))
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    let sent = gw
        .consumer()
        .call(client::send_request(&gw.birth_request("three-days")))
        .await;
    expect_ok(&sent);
    // Thursday 3, Friday 4, Monday 7 December: due by the end of Monday, Moscow time.
    assert_eq!(
        sent.first_text(client::MZ_NS, "DueAt").map(|d| t(&d)),
        Some(t("2026-12-07T21:00:00Z"))
    );
    gw.stop().await;
}
