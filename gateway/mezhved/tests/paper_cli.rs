//! `mezhved paper register|answer` against a running gateway's operator API.

use mezhved_blackbox::*;
use serde_json::{json, Value};
use std::process::Command;

fn paper(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mezhved"))
        .arg("paper")
        .args(args)
        .env_remove("OPENSSL_CONF")
        .env_remove("MEZHVED_OPERATOR_TOKEN")
        .output()
        .expect("runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_and_answer_a_fax_request_from_the_command_line() {
    let gw = TestGateway::start().await;
    gw.clock.set(
        chrono::DateTime::parse_from_rfc3339("2026-12-02T08:00:00Z")
            .expect("time")
            .into(),
    );
    let dir = tempfile::tempdir().expect("tmp");
    let request = dir.path().join("request.json");
    std::fs::write(
        &request,
        json!({
            "channel": "fax",
            "sender_agency": "USZN",
            "kind_namespace": BIRTH_NS,
            "kind_root": BIRTH_ROOT,
            "service": { "name": "Child allowance", "registry_number": "4200000000161370001" },
            "legal_basis": [{ "act": "Federal Law of 27.07.2010 No. 210-FZ", "provision": "art. 7.2" }],
            "official": { "full_name": "Petrova A. S.", "position": "Specialist", "email": "petrova@example.gov.ru" },
            "sent_on": "2026-12-02",
            "received_at": "2026-12-02T07:30:00Z",
            "sender_registration": { "number": "USZN-F-1", "date": "2026-12-02" }
        })
        .to_string(),
    )
    .expect("write");
    let token = OPERATOR_TOKEN;
    let out = paper(&[
        "register",
        "--url",
        &gw.url,
        "--token",
        token,
        "--file",
        request.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let gid = made["global_id"].as_str().expect("id").to_string();

    let answer = dir.path().join("answer.json");
    std::fs::write(
        &answer,
        json!({ "answered_at": "2026-12-02T07:50:00Z", "outcome": "data" }).to_string(),
    )
    .expect("write");
    let args = [
        "answer",
        "--url",
        &gw.url,
        "--token",
        token,
        "--global-id",
        &gid,
        "--file",
        answer.to_str().expect("utf-8"),
    ];
    let out = paper(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answered: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(answered["late"], false);
    // A second answer: the gateway's 409 problem, exit status 2.
    let out = paper(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("409"));
    // A wrong token.
    let out = paper(&[
        "register",
        "--url",
        &gw.url,
        "--token",
        "nope",
        "--file",
        request.to_str().expect("utf-8"),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    gw.stop().await;
}
