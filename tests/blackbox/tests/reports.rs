//! The evaluation report (`GET /api/v1/reports/evaluation`, docs/reports.md) over real
//! exchanges through the gateway, on an injected clock.
//!
//! Dates (as tests/deadlines.rs): requests received Wednesday 2026-12-02 10:00 Moscow
//! time (07:00Z) are due by the end of Wednesday 2026-12-09 (2026-12-09T21:00Z).
//!
//! The journal the test makes, and the figures by hand:
//! - USZN_IS sends a request without a card: refused (InvalidContent); PFR_IS sends one it
//!   has no grant for: refused (AccessDenied).
//! - USZN_IS then sends four requests: A, B, C, and T marked TestMessage.
//! - ZAGS_IS answers A with data the same day (on time, 0 working days), T with data
//!   (excluded with T), and B with NO_DATA on 2026-12-10T22:00Z, i.e. 2026-12-11 01:00
//!   Moscow time: late, 7 working days (Dec 3, 4, 7, 8, 9, 10, 11). C gets no answer.
//! - The report is made as of 2026-12-11T12:00Z for [2026-12-01, 2027-01-01):
//!   USZN: 3 requests, 3 accepted SendRequests + 1 refused: well-formed 0.75. PFR: 0
//!   requests, 1 refused: 0.0. ZAGS: 3 received, 2 answered, 3 evaluated (A, B and the
//!   overdue C), 1 on time: 0.3333; data 1 of 2 answers: 0.5, NO_DATA 1; answer times
//!   [0, 7]: median (rank 1) 0, p95 (rank 2) 7; open overdue 1.

use mezhved_blackbox::*;
use mezhved_client::{self as client, ResponseContent};
use serde_json::Value;
use std::time::SystemTime;

fn t(text: &str) -> SystemTime {
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .into()
}

const RECEIVED: &str = "2026-12-02T07:00:00Z";
const REPORT: &str = "/api/v1/reports/evaluation?from=2026-12-01&to=2027-01-01";

/// Sends `request` from `consumer`; the provider fetches and acknowledges it. Returns the
/// ReplyTo of the delivered request.
async fn delivered(gw: &TestGateway, request: &client::Request) -> String {
    let sent = gw.consumer().call(client::send_request(request)).await;
    expect_ok(&sent);
    let gid = sent.global_id().expect("id");
    let provider = gw.provider();
    let got = provider.call(client::get_request(None, gw.now())).await;
    expect_ok(&got);
    assert_eq!(got.global_id().as_deref(), Some(gid.as_str()));
    expect_ok(
        &provider
            .call(client::ack(&gid, true, Some(("ZAGS-IN-1", gw.now()))))
            .await,
    );
    got.reply_to().expect("ReplyTo")
}

async fn answer(gw: &TestGateway, reply_to: &str, content: ResponseContent) {
    let r = gw
        .provider()
        .call(client::send_response(
            client::message_id(gw.now()),
            reply_to,
            &content,
            &[],
        ))
        .await;
    expect_ok(&r);
}

fn data() -> ResponseContent {
    ResponseContent::Data(format!(
        "<r:BirthRecordResponse xmlns:r=\"{BIRTH_NS}\"><r:RecordNumber>1</r:RecordNumber></r:BirthRecordResponse>"
    ))
}

fn row<'a>(rows: &'a Value, agency: &str, with_kind: bool) -> &'a Value {
    rows.as_array()
        .expect("rows")
        .iter()
        .find(|r| r["agency"] == agency && r["kind"].is_null() != with_kind)
        .unwrap_or_else(|| panic!("no row for {agency} in {rows}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_report_from_the_journal() {
    let gw = TestGateway::start().await;
    gw.clock.set(t(RECEIVED));

    // Two refusals by the gateway.
    let mut no_card = gw.birth_request("no-card");
    no_card.card = None;
    expect_client_fault(
        &gw.consumer().call(client::send_request(&no_card)).await,
        "InvalidContent",
    );
    let mut no_grant = gw.birth_request("no-grant");
    no_grant.card = Some(
        client::RequestCard::complete(
            "Pension Fund Branch of the Sample Region",
            PROVIDER_AGENCY,
            "2026-12-02",
            "PFR-1",
        )
        .to_xml(),
    );
    expect_client_fault(
        &gw.system("ecdsa", "second-consumer-is")
            .call(client::send_request(&no_grant))
            .await,
        "AccessDenied",
    );

    let a = delivered(&gw, &gw.birth_request("A")).await;
    let b = delivered(&gw, &gw.birth_request("B")).await;
    let _c = delivered(&gw, &gw.birth_request("C")).await;
    let mut test_request = gw.birth_request("T");
    test_request.test = true;
    let test_reply_to = delivered(&gw, &test_request).await;

    gw.clock.set(t("2026-12-02T12:00:00Z"));
    answer(&gw, &a, data()).await;
    answer(&gw, &test_reply_to, data()).await;
    gw.clock.set(t("2026-12-10T22:00:00Z"));
    answer(
        &gw,
        &b,
        ResponseContent::Rejection {
            code: "NO_DATA".into(),
            description: "no such record".into(),
        },
    )
    .await;
    gw.clock.set(t("2026-12-11T12:00:00Z"));

    let api = gw.api();
    let reply = api.auditor("GET", REPORT, None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let r = reply.json();
    assert_eq!(r["from"], "2026-12-01");
    assert_eq!(r["to"], "2027-01-01");
    assert_eq!(r["time_zone"], "Europe/Moscow");
    assert_eq!(r["as_of"], "2026-12-11T12:00:00.000Z");
    assert_eq!(r["test_requests_excluded"], 1);

    let uszn = row(&r["senders"], "USZN", false);
    assert_eq!(uszn["agency_name"], CONSUMER_AGENCY);
    assert_eq!(uszn["requests"], 3, "{uszn}");
    assert_eq!(uszn["send_requests_accepted"], 3);
    assert_eq!(uszn["send_requests_rejected"], 1);
    assert_eq!(uszn["rejections_by_code"]["InvalidContent"], 1);
    assert_eq!(uszn["well_formed_share"], 0.75);
    let pfr = row(&r["senders"], "PFR", false);
    assert_eq!(pfr["requests"], 0);
    assert_eq!(pfr["rejections_by_code"]["AccessDenied"], 1);
    assert_eq!(pfr["well_formed_share"], 0.0);

    let zags = row(&r["providers"], "ZAGS", false);
    assert_eq!(zags["agency_name"], PROVIDER_AGENCY);
    for (field, want) in [
        ("requests", 3),
        ("answered", 2),
        ("evaluated", 3),
        ("answered_on_time", 1),
        ("answered_late", 1),
        ("data", 1),
        ("rejections", 1),
        ("no_data", 1),
        ("median_working_days", 0),
        ("p95_working_days", 7),
        ("open_overdue", 1),
        ("open_not_due", 0),
    ] {
        assert_eq!(zags[field], want, "{field} in {zags}");
    }
    assert_eq!(zags["on_time_share"], 0.3333);
    assert_eq!(zags["data_share"], 0.5);
    let kind = row(&r["providers"], "ZAGS", true);
    assert_eq!(kind["kind"]["root"], BIRTH_ROOT);
    assert_eq!(kind["kind"]["name"], "Birth record");
    assert_eq!(kind["requests"], 3);
    assert_eq!(r["totals"]["providers"]["open_overdue"], 1);
    assert_eq!(r["totals"]["senders"]["send_requests_rejected"], 2);

    // As of before B's answer and C's deadline: nothing overdue yet.
    let early = api
        .auditor("GET", &format!("{REPORT}&as_of=2026-12-09T12:00:00Z"), None)
        .await
        .json();
    let zags = row(&early["providers"], "ZAGS", false);
    assert_eq!(
        (&zags["answered"], &zags["open_overdue"]),
        (&1.into(), &0.into())
    );
    assert_eq!(zags["open_not_due"], 2);

    // The same as a half-year, CSV and HTML.
    let csv = api
        .auditor(
            "GET",
            "/api/v1/reports/evaluation?half_year=2026H2&format=csv",
            None,
        )
        .await;
    assert_eq!(csv.status, 200, "{}", csv.text());
    assert_eq!(csv.content_type, "text/csv; charset=utf-8");
    let text = csv.text();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(mezhved_http::report_api::CSV_COLUMNS.join(",").as_str())
    );
    assert!(text.starts_with("from,to,role,agency,agency_name,kind_namespace,kind_root,"));
    assert!(
        text.contains("2026-07-01,2027-01-01,sender,USZN,"),
        "{text}"
    );
    let html = api
        .auditor(
            "GET",
            "/api/v1/reports/evaluation?half_year=2026H2&format=html",
            None,
        )
        .await;
    assert_eq!(html.status, 200);
    assert_eq!(html.content_type, "text/html; charset=utf-8");
    let page = html.text();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("Доля в срок") && page.contains("Share on time"));
    assert!(page.contains("2027-01-15"), "the Kuzbass due date");
    assert!(!page.contains("<script"));

    // Credentials and parameters.
    api.operator("GET", REPORT, None).await.expect_problem(403);
    api.send("GET", REPORT, None, None)
        .await
        .expect_problem(401);
    api.auditor("GET", "/api/v1/reports/evaluation?from=2026-12-01", None)
        .await
        .expect_problem(400);
    api.auditor("GET", &format!("{REPORT}&colour=red"), None)
        .await
        .expect_problem(400);

    // Every report request was journaled, with its parameters.
    let events = api
        .auditor("GET", "/api/v1/journal/events?from=0&limit=1000", None)
        .await
        .json();
    let queries: Vec<Value> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "auditor.query")
        .map(|e| serde_json::from_str(e["leaf"].as_str().expect("leaf")).expect("JSON"))
        .filter(|l: &Value| l["query"] == "report.evaluation")
        .collect();
    assert_eq!(queries.len(), 4, "{queries:?}");
    assert_eq!(queries[0]["actor"], "auditor-kuznetsova");
    assert_eq!(queries[0]["parameters"]["from"], "2026-12-01");
    assert_eq!(queries[0]["parameters"]["format"], "json");
    assert_eq!(
        queries[0]["results"], 4,
        "rows: USZN and PFR; ZAGS and its one kind"
    );
    assert_eq!(queries[2]["parameters"]["half_year"], "2026H2");
    gw.stop().await;
}
