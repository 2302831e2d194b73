//! Requests that travelled on paper or by fax, registered by the operator so that their
//! deadlines and the journal cover them.

use mezhved_blackbox::*;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

fn t(text: &str) -> SystemTime {
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .into()
}

fn paper_request() -> Value {
    json!({
        "channel": "paper",
        "sender_agency": "USZN",
        "kind_namespace": BIRTH_NS,
        "kind_root": BIRTH_ROOT,
        "service": { "name": "Assignment of the monthly child allowance", "registry_number": "4200000000161370001" },
        "legal_basis": [{ "act": "Federal Law of 27.07.2010 No. 210-FZ", "provision": "art. 7.2 part 1" }],
        "official": { "full_name": "Petrova Anna Sergeevna", "position": "Chief specialist", "phone": "+7 (3842) 00-00-00" },
        "sent_on": "2026-12-01",
        "received_at": "2026-12-02T07:00:00Z",
        "sender_registration": { "number": "USZN-P-17", "date": "2026-12-01" }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paper_request_gets_a_deadline_a_journal_record_and_one_answer() {
    let gw = TestGateway::start().await;
    gw.clock.set(t("2026-12-02T08:00:00Z"));
    let api = gw.api();

    let made = api
        .operator("POST", "/api/v1/paper/requests", Some(&paper_request()))
        .await;
    assert_eq!(made.status, 201, "{}", made.text());
    let made = made.json();
    let gid = made["global_id"].as_str().expect("id").to_string();
    assert_eq!(
        t(made["due_at"].as_str().expect("due")),
        t("2026-12-09T21:00:00Z")
    );

    let card = api
        .auditor("GET", &format!("/api/v1/journal/cards/{gid}"), None)
        .await
        .json();
    assert_eq!(card["card"]["details"]["channel"], "paper");
    assert_eq!(
        card["card"]["details"]["sender_registration"]["number"],
        "USZN-P-17"
    );
    let leaf: Value =
        serde_json::from_str(card["events"][0]["leaf"].as_str().expect("leaf")).expect("JSON");
    assert_eq!(leaf["type"], "message.accepted");
    assert_eq!(leaf["queue"], "paper");
    assert_eq!(leaf["actor"], "operator");

    // The deadline passes: journaled as overdue; nobody polls for statuses.
    gw.clock.set(t("2026-12-09T21:00:00Z"));
    let timer = gw.deadline_timer("second-node");
    assert_eq!(timer.run_once().await.expect("run"), 1);
    let types: Vec<String> = api
        .auditor("GET", &format!("/api/v1/journal/cards/{gid}"), None)
        .await
        .json()["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(types.contains(&"deadline.overdue".to_string()), "{types:?}");

    // The answer comes later: registered, marked late; a second answer is refused.
    gw.clock.advance(Duration::from_secs(3600));
    let answer = json!({
        "answered_at": "2026-12-09T22:00:00Z",
        "outcome": "rejection",
        "rejection_code": "NO_DATA",
        "receiver_registration": { "number": "ZAGS-P-3", "date": "2026-12-03" }
    });
    let path = format!("/api/v1/paper/requests/{gid}/answer");
    let answered = api.operator("POST", &path, Some(&answer)).await;
    assert_eq!(answered.status, 201, "{}", answered.text());
    assert_eq!(answered.json()["late"], true);
    let again = api.operator("POST", &path, Some(&answer)).await;
    assert_eq!(again.status, 409, "{}", again.text());
    assert_eq!(again.content_type, "application/problem+json");
    let overdue = api
        .auditor("GET", "/api/v1/journal/cards?overdue=true", None)
        .await
        .json();
    assert_eq!(overdue["cards"].as_array().map(Vec::len), Some(0), "closed");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paper_registrations_are_refused_with_every_problem_and_write_nothing() {
    let gw = TestGateway::start().await;
    gw.clock.set(t("2026-12-02T08:00:00Z"));
    let api = gw.api();
    let before = gw.written();
    let mut bad = paper_request();
    bad["official"] = json!({ "full_name": "", "position": "Chief specialist" });
    bad["kind_root"] = json!("NoSuchKind");
    bad["sender_agency"] = json!("NOBODY");
    let refused = api
        .operator("POST", "/api/v1/paper/requests", Some(&bad))
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text());
    let detail = refused.json()["detail"].as_str().unwrap_or("").to_string();
    for want in [
        "official.full_name",
        "phone or an e-mail",
        "NOBODY is not registered",
        "NoSuchKind",
    ] {
        assert!(detail.contains(want), "{want}: {detail}");
    }
    let mut unknown_field = paper_request();
    unknown_field["colour"] = json!("red");
    let r = api
        .operator("POST", "/api/v1/paper/requests", Some(&unknown_field))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let unknown = api
        .operator(
            "POST",
            &format!("/api/v1/paper/requests/{}/answer", uuid::Uuid::new_v4()),
            Some(&json!({ "answered_at": "2026-12-02T09:00:00Z", "outcome": "data" })),
        )
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    // Only the operator registers paper requests.
    let auditor = api
        .auditor("POST", "/api/v1/paper/requests", Some(&paper_request()))
        .await;
    assert_eq!(auditor.status, 403);
    gw.assert_nothing_written_since(&before);
    gw.stop().await;
}
