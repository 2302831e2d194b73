//! The central journal through the real gateway: triple registration, attestation, the
//! auditor's API and its access rules, journaled queries, and the rule that the journal
//! holds metadata only (no payload, no attachment, no search details).

use bytes::Bytes;
use mezhved_blackbox::*;
use mezhved_client::{self as client, Attachment, ResponseContent};
use mezhved_journal::merkle;
use serde_json::{json, Value};

fn hex32(v: &Value) -> [u8; 32] {
    let bytes = hex::decode(v.as_str().expect("hex string")).expect("hex");
    <[u8; 32]>::try_from(bytes.as_slice()).expect("32 bytes")
}

/// A full exchange with inline and MTOM attachments; returns (request id, response id).
async fn exchange(gw: &TestGateway, marker: &str) -> (String, String) {
    let consumer = gw.consumer();
    let provider = gw.provider();
    let mut request = gw.birth_request(&format!("{marker}-payload"));
    request.attachments = vec![
        Attachment {
            content_id: "form".into(),
            mime_type: "application/pdf".into(),
            data: Bytes::from(format!("{marker}-inline-attachment").repeat(20)),
            mtom: false,
        },
        Attachment {
            content_id: "scan".into(),
            mime_type: "image/tiff".into(),
            data: Bytes::from(format!("{marker}-mtom-attachment").repeat(2000)),
            mtom: true,
        },
    ];
    let sent = consumer.call(client::send_request(&request)).await;
    expect_ok(&sent);
    let request_id = sent.global_id().expect("id");
    let got = provider.call(client::get_request(None, gw.now())).await;
    expect_ok(&got);
    let reply_to = got.reply_to().expect("ReplyTo");
    expect_ok(
        &provider
            .call(client::ack(
                &request_id,
                true,
                Some(("ZAGS-IN-77", gw.now())),
            ))
            .await,
    );
    let answer = client::send_response(
        client::message_id(gw.now()),
        &reply_to,
        &ResponseContent::Data(format!(
            "<r:BirthRecordResponse xmlns:r=\"{BIRTH_NS}\"><r:RecordNumber>{marker}-answer</r:RecordNumber></r:BirthRecordResponse>"
        )),
        &[],
    );
    let response_sent = provider.call(answer).await;
    expect_ok(&response_sent);
    let response_id = response_sent.global_id().expect("response id");
    let fetched = consumer.call(client::get_response(None, gw.now())).await;
    expect_ok(&fetched);
    expect_ok(
        &consumer
            .call(client::ack(
                &response_id,
                true,
                Some(("USZN-IN-5", gw.now())),
            ))
            .await,
    );
    (request_id, response_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triple_registration_and_attestation() {
    let gw = TestGateway::start().await;
    let (request_id, response_id) = exchange(&gw, "triple").await;
    let api = gw.api();

    let card = api
        .auditor("GET", &format!("/api/v1/journal/cards/{request_id}"), None)
        .await;
    assert_eq!(card.status, 200, "{}", card.text());
    let card = card.json();
    // The three registrations: the sender's (from the request card), the central one
    // (global ID and checksum), the receiver's (from its Ack).
    assert_eq!(card["card"]["global_id"], request_id.as_str());
    assert_eq!(
        card["card"]["details"]["sender_registration"]["number"],
        "USZN-2026/0001"
    );
    assert_eq!(
        card["card"]["details"]["receiver_registration"]["number"],
        "ZAGS-IN-77"
    );
    let checksum = card["card"]["checksum"]
        .as_str()
        .expect("checksum")
        .to_string();
    let types: Vec<&str> = card["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        [
            "message.accepted",
            "message.delivered",
            "message.acknowledged"
        ],
        "{card}"
    );
    let acked = &card["events"][2];
    let leaf: Value = serde_json::from_str(acked["leaf"].as_str().expect("leaf")).expect("JSON");
    assert_eq!(leaf["receiver_registration"]["number"], "ZAGS-IN-77");

    // The copy the provider holds matches; a changed copy does not; an unknown ID is unknown.
    let ok = api
        .auditor(
            "POST",
            "/api/v1/journal/attest",
            Some(&json!({ "global_id": request_id, "checksum": checksum })),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let ok = ok.json();
    assert_eq!(ok["verdict"], "match");
    // Its proof holds against the signed checkpoint it comes with.
    let m = &ok["messages"][0];
    let leaf_bytes = m["event"]["leaf"]
        .as_str()
        .expect("leaf")
        .as_bytes()
        .to_vec();
    let proof: Vec<[u8; 32]> = m["inclusion_proof"]
        .as_array()
        .expect("proof")
        .iter()
        .map(hex32)
        .collect();
    merkle::verify_inclusion(
        &merkle::leaf_hash(&leaf_bytes),
        m["event"]["seq"].as_u64().expect("seq"),
        m["checkpoint"]["size"].as_u64().expect("size"),
        &proof,
        &hex32(&m["checkpoint"]["root"]),
    )
    .expect("the attestation's proof verifies");
    let note = m["checkpoint"]["note"].as_str().expect("note");
    assert!(note.contains("\n\n\u{2014} "), "a signed note: {note}");

    let mut wrong = hex::decode(&checksum).expect("hex");
    wrong[0] ^= 1;
    let bad = api
        .auditor(
            "POST",
            "/api/v1/journal/attest",
            Some(&json!({ "global_id": request_id, "checksum": hex::encode(&wrong) })),
        )
        .await
        .json();
    assert_eq!(bad["verdict"], "mismatch");
    assert_eq!(bad["messages"][0]["registered_checksum"], checksum.as_str());

    // By the receiver's registration number too.
    let by_number = api
        .auditor(
            "POST",
            "/api/v1/journal/attest",
            Some(&json!({ "registration_number": "ZAGS-IN-77", "checksum": checksum })),
        )
        .await
        .json();
    assert_eq!(by_number["verdict"], "match", "{by_number}");

    let unknown = api
        .auditor(
            "POST",
            "/api/v1/journal/attest",
            Some(&json!({ "global_id": uuid::Uuid::new_v4().to_string(), "checksum": checksum })),
        )
        .await
        .json();
    assert_eq!(unknown["verdict"], "unknown");

    // The response has its own card, pointing at the request.
    let rcard = api
        .auditor("GET", &format!("/api/v1/journal/cards/{response_id}"), None)
        .await
        .json();
    assert_eq!(rcard["card"]["original_global_id"], request_id.as_str());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_payload_attachment_or_search_detail_reaches_the_journal() {
    let gw = TestGateway::start().await;
    exchange(&gw, "MARKER-7f3a").await;
    exchange(&gw, "MARKER-9c1d").await;
    // Sign a checkpoint so that the checkpoint table has content too.
    let cp = gw
        .api()
        .auditor("POST", "/api/v1/journal/checkpoints", None)
        .await;
    assert_eq!(cp.status, 200, "{}", cp.text());
    let dir = gw.data_dir.clone();
    let data_dir = gw.stop().await;

    let db = rusqlite::Connection::open(dir.join("mezhved.db")).expect("db");
    let mut texts = Vec::new();
    for sql in [
        "SELECT CAST(leaf AS TEXT) FROM journal_events",
        "SELECT details FROM cards",
        "SELECT note FROM journal_checkpoints",
        "SELECT hex(hash) FROM journal_nodes",
    ] {
        let mut st = db.prepare(sql).expect("prepare");
        let rows: Vec<String> = st
            .query_map([], |r| r.get::<_, String>(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        texts.extend(rows);
    }
    assert!(texts.len() > 10, "the journal has content");
    let all = texts.join("\n");
    for needle in ["MARKER-7f3a", "MARKER-9c1d", "Ivanova", "2019-05-14"] {
        assert!(!all.contains(needle), "{needle} is in the journal");
    }
    // Nor in any file of the data directory (database, WAL, attachments) once stopped.
    for entry in walk(&dir) {
        let bytes = std::fs::read(&entry).expect("read");
        for needle in ["MARKER-7f3a", "MARKER-9c1d"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} found in {}",
                entry.display()
            );
        }
    }
    drop(data_dir);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_auditors_read_the_journal_and_every_query_is_journaled() {
    let gw = TestGateway::start().await;
    exchange(&gw, "access").await;
    let api = gw.api();

    // Nobody without a credential; the operator is not an auditor; an auditor is not the
    // operator; a participant system has no credential here (a made-up bearer, Basic).
    let none = api.send("GET", "/api/v1/journal/cards", None, None).await;
    assert_eq!(none.status, 401);
    assert!(none.headers.contains_key("www-authenticate"));
    let op = api.operator("GET", "/api/v1/journal/cards", None).await;
    assert_eq!(op.status, 403, "{}", op.text());
    let aud = api.auditor("GET", "/api/v1/registry", None).await;
    assert_eq!(aud.status, 403, "{}", aud.text());
    let forged = api
        .send("GET", "/api/v1/journal/cards", Some("USZN_IS"), None)
        .await;
    assert_eq!(forged.status, 401);
    let basic = api
        .http_with_header(
            "GET",
            "/api/v1/journal/events",
            "Authorization",
            "Basic VVNaTl9JUzp4",
        )
        .await;
    assert_eq!(basic.status, 401);

    // A query with filters; its record names the auditor, the filter and the count.
    let found = api
        .auditor(
            "GET",
            "/api/v1/journal/cards?agency=USZN&message_type=REQUEST&service=4200000000161370001",
            None,
        )
        .await;
    assert_eq!(found.status, 200, "{}", found.text());
    let found = found.json();
    assert_eq!(found["cards"].as_array().map(Vec::len), Some(1), "{found}");

    let events = api
        .auditor("GET", "/api/v1/journal/events?from=0&limit=1000", None)
        .await
        .json();
    let queries: Vec<&Value> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "auditor.query")
        .collect();
    let leaf: Value =
        serde_json::from_str(queries[0]["leaf"].as_str().expect("leaf")).expect("JSON");
    assert_eq!(leaf["actor"], "auditor-kuznetsova");
    assert_eq!(leaf["query"], "cards");
    assert_eq!(leaf["results"], 1);
    assert_eq!(leaf["parameters"]["agency"], "USZN");
    // The denied attempts were not answered, so they are not queries of the journal.
    assert_eq!(queries.len(), 1, "{events}");

    // Searching by the person: the details are hashed with the operator's key; the record
    // of the search holds the hash only.
    let by_subject = api
        .auditor(
            "POST",
            "/api/v1/journal/search",
            Some(&json!({ "subject": [
                { "name": "birth_date", "value": "2019-05-14" },
                { "name": "surname", "value": "Ivanova" }
            ]})),
        )
        .await;
    assert_eq!(by_subject.status, 200, "{}", by_subject.text());
    let by_subject = by_subject.json();
    assert_eq!(by_subject["cards"].as_array().map(Vec::len), Some(1));
    let other = api
        .auditor(
            "POST",
            "/api/v1/journal/search",
            Some(&json!({ "subject": [{ "name": "surname", "value": "Smirnov" }] })),
        )
        .await
        .json();
    assert_eq!(other["cards"].as_array().map(Vec::len), Some(0));
    let events = api
        .auditor("GET", "/api/v1/journal/events?from=0&limit=1000", None)
        .await;
    let text = events.text();
    assert!(
        !text.contains("Ivanova") && !text.contains("Smirnov"),
        "{text}"
    );

    // Export as NDJSON and CSV.
    let nd = api
        .auditor("GET", "/api/v1/journal/export?format=ndjson", None)
        .await;
    assert_eq!(nd.status, 200);
    assert_eq!(nd.content_type, "application/x-ndjson");
    let lines: Vec<Value> = nd
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON line"))
        .collect();
    assert!(lines.len() >= 2, "request, response and statuses");
    let csv = api
        .auditor(
            "GET",
            "/api/v1/journal/export?format=csv&message_type=REQUEST",
            None,
        )
        .await;
    assert_eq!(csv.status, 200);
    let text = csv.text();
    let mut rows = text.lines();
    assert!(rows
        .next()
        .expect("header")
        .starts_with("global_id,message_type"));
    assert_eq!(rows.count(), 1);

    // Bad input is a problem document.
    let bad = api
        .auditor("GET", "/api/v1/journal/cards?from=yesterday", None)
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.content_type, "application/problem+json");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_by_the_gateway_are_journaled_with_their_code() {
    let gw = TestGateway::start().await;
    // The sample registry gives this system no grant for birth records.
    let pfr = gw.system("ecdsa", "second-consumer-is");
    let mut request = gw.birth_request("no-grant");
    let today = chrono::DateTime::<chrono::Utc>::from(gw.now())
        .date_naive()
        .to_string();
    request.card = Some(
        client::RequestCard::complete(
            "Pension Fund Branch of the Sample Region",
            PROVIDER_AGENCY,
            &today,
            "PFR-1",
        )
        .to_xml(),
    );
    let refused = pfr.call(client::send_request(&request)).await;
    expect_client_fault(&refused, "AccessDenied");
    let events = gw
        .api()
        .auditor("GET", "/api/v1/journal/events?from=0&limit=1000", None)
        .await
        .json();
    let rejected: Vec<Value> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "message.rejected")
        .map(|e| serde_json::from_str(e["leaf"].as_str().expect("leaf")).expect("JSON"))
        .collect();
    assert_eq!(rejected.len(), 1, "{events}");
    assert_eq!(rejected[0]["actor"], "PFR_IS");
    assert_eq!(rejected[0]["code"], "AccessDenied");
    assert_eq!(
        rejected[0]["sender_message_id"],
        request.message_id.to_string().as_str()
    );
    gw.stop().await;
}
