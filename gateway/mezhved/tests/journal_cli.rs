//! `mezhved journal …` on the data directory a real gateway wrote: queries, proofs,
//! attestation, checkpoints, export, and `verify` catching a leaf edited behind SQL's back.

use mezhved_blackbox::*;
use mezhved_client as client;
use mezhved_journal::merkle;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn mezhved(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mezhved"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("OPENSSL_CONF")
        .env("USER", "test-auditor")
        .output()
        .expect("runs")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn hash(v: &Value) -> [u8; 32] {
    let b = hex::decode(v.as_str().expect("hex")).expect("hex");
    <[u8; 32]>::try_from(b.as_slice()).expect("32 bytes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_commands_on_a_real_gateways_data() {
    let gw = TestGateway::start().await;
    let consumer = gw.consumer();
    let provider = gw.provider();
    let sent = consumer
        .call(client::send_request(&gw.birth_request("cli-journal")))
        .await;
    expect_ok(&sent);
    let gid = sent.global_id().expect("id");
    expect_ok(&provider.call(client::get_request(None, gw.now())).await);
    expect_ok(
        &provider
            .call(client::ack(&gid, true, Some(("ZAGS-IN-501", gw.now()))))
            .await,
    );
    let data_dir = gw.data_dir.clone();
    // Stopping signs a last checkpoint.
    let tmp = gw.stop().await;

    let config = test_config(&data_dir);
    let config_path = data_dir.join("cli.toml");
    std::fs::write(
        &config_path,
        toml::to_string(&config).expect("config as TOML"),
    )
    .expect("write config");

    let ok = mezhved(&config_path, &["journal", "verify"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("the journal verifies"));

    let q = mezhved(
        &config_path,
        &["journal", "query", "--registration-number", "ZAGS-IN-501"],
    );
    assert_eq!(q.status.code(), Some(0), "{}", text(&q));
    let cards: Vec<Value> = String::from_utf8_lossy(&q.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect();
    assert_eq!(cards.len(), 1, "{}", text(&q));
    assert_eq!(cards[0]["global_id"], gid.as_str());
    let checksum = cards[0]["checksum"].as_str().expect("checksum").to_string();

    let att = mezhved(
        &config_path,
        &[
            "journal",
            "attest",
            "--global-id",
            &gid,
            "--checksum",
            &checksum,
        ],
    );
    assert_eq!(att.status.code(), Some(0), "{}", text(&att));
    let att: Value = serde_json::from_slice(&att.stdout).expect("JSON");
    assert_eq!(att["verdict"], "match");
    let m = &att["messages"][0];
    let proof: Vec<[u8; 32]> = m["inclusion_proof"]
        .as_array()
        .expect("proof")
        .iter()
        .map(hash)
        .collect();
    merkle::verify_inclusion(
        &merkle::leaf_hash(m["event"]["leaf"].as_str().expect("leaf").as_bytes()),
        m["event"]["seq"].as_u64().expect("seq"),
        m["checkpoint"]["size"].as_u64().expect("size"),
        &proof,
        &hash(&m["checkpoint"]["root"]),
    )
    .expect("proof verifies");
    let mut other = checksum.clone().into_bytes();
    other[0] = if other[0] == b'0' { b'1' } else { b'0' };
    let other = String::from_utf8(other).expect("ascii");
    let mismatch = mezhved(
        &config_path,
        &[
            "journal",
            "attest",
            "--global-id",
            &gid,
            "--checksum",
            &other,
        ],
    );
    assert_eq!(mismatch.status.code(), Some(1), "{}", text(&mismatch));

    let cp = mezhved(&config_path, &["journal", "checkpoint"]);
    assert_eq!(cp.status.code(), Some(0), "{}", text(&cp));
    let note = String::from_utf8_lossy(&cp.stdout).into_owned();
    let size: u64 = note
        .lines()
        .nth(1)
        .expect("size line")
        .parse()
        .expect("size");

    let incl = mezhved(
        &config_path,
        &[
            "journal",
            "proof",
            "inclusion",
            "--seq",
            "1",
            "--size",
            &size.to_string(),
        ],
    );
    assert_eq!(incl.status.code(), Some(0), "{}", text(&incl));
    let incl: Value = serde_json::from_slice(&incl.stdout).expect("JSON");
    let proof: Vec<[u8; 32]> = incl["proof"]
        .as_array()
        .expect("proof")
        .iter()
        .map(hash)
        .collect();
    merkle::verify_inclusion(
        &hash(&incl["leaf_hash"]),
        1,
        size,
        &proof,
        &hash(&incl["root"]),
    )
    .expect("inclusion proof verifies");
    let cons = mezhved(
        &config_path,
        &[
            "journal",
            "proof",
            "consistency",
            "--old",
            "2",
            "--new",
            &size.to_string(),
        ],
    );
    assert_eq!(cons.status.code(), Some(0), "{}", text(&cons));
    let cons: Value = serde_json::from_slice(&cons.stdout).expect("JSON");
    let proof: Vec<[u8; 32]> = cons["proof"]
        .as_array()
        .expect("proof")
        .iter()
        .map(hash)
        .collect();
    merkle::verify_consistency(
        2,
        size,
        &hash(&cons["old_root"]),
        &hash(&cons["new_root"]),
        &proof,
    )
    .expect("consistency proof verifies");

    let csv = mezhved(&config_path, &["journal", "export", "--format", "csv"]);
    assert_eq!(csv.status.code(), Some(0), "{}", text(&csv));
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    assert!(csv.starts_with("global_id,"), "{csv}");
    assert!(csv.contains(&gid), "{csv}");

    // The evaluation report over the same journal, as CSV and JSON.
    let report = mezhved(
        &config_path,
        &[
            "report",
            "--from",
            "2020-01-01",
            "--to",
            "2100-01-01",
            "--format",
            "csv",
        ],
    );
    assert_eq!(report.status.code(), Some(0), "{}", text(&report));
    let report_csv = String::from_utf8_lossy(&report.stdout).into_owned();
    assert!(report_csv.lines().count() >= 2, "{report_csv}");
    let report = mezhved(
        &config_path,
        &["report", "--from", "2020-01-01", "--to", "2100-01-01"],
    );
    assert_eq!(report.status.code(), Some(0), "{}", text(&report));
    let report: Value = serde_json::from_slice(&report.stdout).expect("report JSON");
    assert_eq!(report["totals"]["senders"]["requests"], 1, "{report}");

    // The CLI's queries are journaled too, under the user's name.
    let db = rusqlite::Connection::open(data_dir.join("mezhved.db")).expect("db");
    let cli_queries: i64 = db
        .query_row(
            "SELECT count(*) FROM journal_events WHERE type = 'auditor.query' AND actor = 'cli:test-auditor'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert!(cli_queries >= 6, "{cli_queries}");

    // Someone with the database file changes the receiver's registration number in the
    // journal, behind SQL's back (the append-only trigger dropped first).
    let seq: i64 = db
        .query_row(
            "SELECT seq FROM journal_events WHERE type = 'message.acknowledged'",
            [],
            |r| r.get(0),
        )
        .expect("the Ack event");
    db.execute_batch("DROP TRIGGER journal_events_no_update")
        .expect("drop trigger");
    db.execute(
        "UPDATE journal_events SET leaf = CAST(replace(CAST(leaf AS TEXT), 'ZAGS-IN-501', 'ZAGS-IN-502') AS BLOB) WHERE seq = ?1",
        [seq],
    )
    .expect("tamper");
    drop(db);
    let bad = mezhved(&config_path, &["journal", "verify"]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    let report = String::from_utf8_lossy(&bad.stdout);
    assert!(report.contains("DIVERGENCE"), "{}", text(&bad));
    assert!(
        report.contains(&format!("event {seq}")),
        "names the changed event {seq}: {}",
        text(&bad)
    );
    drop(tmp);
}
