//! `mezhved demo`, the README's main command, run as a process for a bounded time (region
//! time sped up so that deadlines pass): afterwards the journal holds the expected mix of
//! outcomes, and what the gateway refused is exactly what the request stream made
//! defective. Then the demo is resumed, stopped with SIGINT like Ctrl-C, and nothing was
//! sent twice; the journal verifies. While it runs, its dashboard users log in.

use mezhved_demo::{DemoAnswer, Population, Provider, Scenario};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mezhved");
const POPULATION: usize = 3_000;

fn demo(dir: &Path, extra: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .args(["demo", "--plain", "--listen", "127.0.0.1:0", "--seed", "7"])
        .args(["--population", &POPULATION.to_string()])
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .env_remove("OPENSSL_CONF")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mezhved demo starts")
}

fn finish(child: std::process::Child) -> String {
    let out = child.wait_with_output().expect("demo output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "demo failed: {text}");
    text
}

/// One plain HTTP/1.1 exchange (the demo listens on loopback without TLS): the status,
/// the `Set-Cookie` name=value pairs and the body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    cookies: &[String],
    form: Option<&str>,
) -> (u16, Vec<String>, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the demo");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let body = form.unwrap_or("");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if form.is_some() {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    if !cookies.is_empty() {
        req.push_str(&format!("Cookie: {}\r\n", cookies.join("; ")));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("request");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    let set = head
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .map(|c| c.split(';').next().unwrap_or("").to_string())
        .collect();
    (status, set, body.to_string())
}

/// Logs in to the demo's dashboard as a user would, form and CSRF token included;
/// answers the page the login leads to.
fn dashboard_login(addr: &str, user: &str, password: &str) -> (String, Vec<String>) {
    let (status, pre, page) = http(addr, "GET", "/ui/login?lang=en", &[], None);
    assert_eq!(status, 200, "{page}");
    let marker = "name=\"csrf\" value=\"";
    let at = page.find(marker).expect("a CSRF field") + marker.len();
    let csrf = &page[at..at + page[at..].find('"').expect("end")];
    let form = format!("csrf={csrf}&lang=en&user={user}&password={password}");
    let (status, session, page) = http(addr, "POST", "/ui/login", &pre, Some(&form));
    assert_eq!(status, 303, "{user}: {page}");
    assert!(
        session.iter().any(|c| c.starts_with("mezhved_session=")),
        "{session:?}"
    );
    let location = if user.contains("auditor") {
        "/ui/journal?lang=en"
    } else {
        "/ui?lang=en"
    };
    let (status, _, page) = http(addr, "GET", location, &session, None);
    assert_eq!(status, 200, "{user}: {page}");
    (page, session)
}

fn query(db: &Path, sql: &str) -> i64 {
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("db");
    c.query_row(sql, [], |r| r.get(0)).expect(sql)
}

fn state(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("demo-state.json")).expect("state"))
        .expect("state json")
}

#[test]
fn the_demo_shows_every_outcome_resumes_without_duplicates_and_its_journal_verifies() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("demo");
    // 60 000x: a working week in about 12 s; late answers (6–10 working days) in ~25 s.
    let text = finish(demo(
        &dir,
        &["--speed", "60000", "--rate", "25", "--duration", "35"],
    ));
    assert!(text.contains("SOAP endpoint"), "{text}");
    assert!(text.contains("Journal API"), "{text}");
    assert!(text.contains("stopped."), "{text}");
    let db = dir.join("gateway/mezhved.db");
    let s = state(&dir);
    let submitted = s["next_index"].as_u64().expect("next_index");
    assert!(submitted >= 200, "{submitted} requests in 35 s at 25/s");

    // What the stream made defective, the gateway refused — no more, no fewer.
    let population = Arc::new(Population::generate(7, POPULATION));
    let scenario = Scenario::new(population.clone());
    // A stop can come between the adapter taking a request and the demo noting it: then
    // the adapter holds one more than `next_index` (the resumed demo sends it again under
    // the same client_ref, which the adapter recognises).
    let requests: Vec<_> = (0..=submitted).map(|i| scenario.request(i)).collect();
    let outbox = dir.join("adapters/uszn/adapter.db");
    let sent: Vec<u64> = {
        let c = Connection::open_with_flags(&outbox, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("adapter db");
        let mut st = c
            .prepare(
                "SELECT client_ref FROM outbox WHERE operation = 'request' AND state <> 'queued'",
            )
            .expect("query");
        let refs = st
            .query_map([], |r| r.get::<_, String>(0))
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect::<Vec<_>>();
        refs.iter()
            .map(|r| {
                r.rsplit('-')
                    .next()
                    .and_then(|i| i.parse().ok())
                    .expect("demo-<seed>-<i>")
            })
            .collect()
    };
    let defective = sent
        .iter()
        .filter(|&&i| requests[i as usize].defect.is_some())
        .count() as i64;
    assert!(defective >= 1, "the stream holds defective requests");
    let refused = query(
        &db,
        "SELECT count(*) FROM journal_events WHERE type = 'message.rejected'",
    );
    assert_eq!(
        refused, defective,
        "refused by the gateway = defective requests sent"
    );
    let accepted = query(&db, "SELECT count(*) FROM cards WHERE queue = 0");
    let held = query(
        &outbox,
        "SELECT count(*) FROM outbox WHERE operation = 'request'",
    );
    assert!(
        held == submitted as i64 || held == submitted as i64 + 1,
        "the office's adapter holds each submitted request once: {held} for {submitted}"
    );
    // The gateway has what the adapter sent; a stop may leave the last few queued there.
    assert_eq!(
        accepted + refused,
        query(
            &outbox,
            "SELECT count(*) FROM outbox WHERE operation = 'request' AND state <> 'queued'"
        )
    );

    // Every outcome the providers' models produce shows up in the journal's cards.
    let answers: Vec<DemoAnswer> = requests
        .iter()
        .filter(|r| r.defect.is_none())
        .map(|r| Provider::new(r.kind, population.clone()).answer(&r.content_xml))
        .collect();
    assert!(answers.iter().any(|a| matches!(a, DemoAnswer::Late { .. })));
    let count = |cond: &str| {
        query(
            &db,
            &format!(
                "SELECT count(*) FROM cards WHERE queue = 1 AND json_extract(details, '$.message_type') = 'RESPONSE' AND {cond}"
            ),
        )
    };
    let data = count("json_extract(details, '$.response_kind') = 'data'");
    let no_data = count("json_extract(details, '$.rejection_code') = 'NO_DATA'");
    let clarifications = count("json_extract(details, '$.clarification') = 1");
    let late = count("json_extract(details, '$.late') = 1");
    let overdue = query(
        &db,
        "SELECT count(*) FROM journal_events WHERE type = 'deadline.overdue'",
    );
    let reminders = query(
        &db,
        "SELECT count(*) FROM journal_events WHERE type = 'deadline.reminder'",
    );
    assert!(data * 2 > accepted, "mostly data: {data} of {accepted}");
    assert!(no_data >= 1, "NO_DATA answers");
    assert!(clarifications >= 1, "clarification requests");
    assert!(overdue >= 1, "requests went overdue");
    assert!(reminders >= 1, "reminders fired");
    assert!(late >= 1, "late answers were delivered marked late");
    // The three registrations of answered requests: the sender's, the gateway's, the
    // provider's own number (its adapter's prefix).
    let triple = query(
        &db,
        "SELECT count(*) FROM cards WHERE queue = 0 AND json_extract(details, '$.sender_registration.number') IS NOT NULL AND receiver_registration_number LIKE '%-IN-%'",
    );
    assert!(
        triple * 10 > accepted * 8,
        "{triple} of {accepted} fully registered"
    );

    // Resume; its dashboard users log in while it runs; stop it like Ctrl-C.
    let mut child = demo(&dir, &["--speed", "60000", "--rate", "25"]);
    let stdout = child.stdout.take().expect("stdout");
    let (found, dashboard) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut text = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.expect("demo output");
            if let Some(rest) = line.trim().strip_prefix("Dashboard") {
                let _ = found.send(rest.trim().to_string());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let line = dashboard
        .recv_timeout(Duration::from_secs(60))
        .expect("the demo names its dashboard");
    let addr = line
        .strip_prefix("http://")
        .and_then(|l| l.split_once("/ui"))
        .map(|(a, _)| a.to_string())
        .unwrap_or_else(|| panic!("a dashboard URL: {line}"));
    for (user, password) in [
        ("demo-operator", "demo-operator-password"),
        ("demo-auditor", "demo-auditor-password"),
    ] {
        assert!(line.contains(user) && line.contains(password), "{line}");
    }
    let (overview, session) = dashboard_login(&addr, "demo-operator", "demo-operator-password");
    for system in ["USZN_IS", "ZAGS_IS", "FNS_IS", "SFR_IS"] {
        assert!(
            overview.contains(&format!("data-system=\"{system}\" data-state=")),
            "{system} on the overview: {overview}"
        );
    }
    // Sessions last in real time, though the demo's region time runs 60 000x faster.
    std::thread::sleep(Duration::from_secs(3));
    let (status, _, page) = http(&addr, "GET", "/ui/agencies?lang=en", &session, None);
    assert_eq!(status, 200, "the operator's session outlived 3 s: {page}");
    let (cards, _) = dashboard_login(&addr, "demo-auditor", "demo-auditor-password");
    assert!(
        cards.contains("data-card="),
        "cards in the journal: {cards}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let text = finish(child) + &reader.join().expect("reader");
    assert!(text.contains("resumed: run 2"), "{text}");
    let s2 = state(&dir);
    assert_eq!(s2["runs"], 2);
    let resubmitted = s2["next_index"].as_u64().expect("next_index");
    assert!(
        resubmitted > submitted,
        "the stream went on from {submitted}"
    );
    assert!(
        s2["clock_ms"].as_i64() > s["clock_ms"].as_i64(),
        "region time went on"
    );
    // Nothing twice: one message per MessageID, and per request of the stream.
    let messages = query(&db, "SELECT count(*) FROM messages WHERE queue = 0");
    let distinct = query(
        &db,
        "SELECT count(DISTINCT sender_message_id) FROM messages WHERE queue = 0",
    );
    assert_eq!(messages, distinct);
    let refused = query(
        &db,
        "SELECT count(*) FROM journal_events WHERE type = 'message.rejected'",
    );
    let accepted = query(&db, "SELECT count(*) FROM cards WHERE queue = 0");
    let held = query(
        &outbox,
        "SELECT count(*) FROM outbox WHERE operation = 'request'",
    );
    assert!(
        held == resubmitted as i64 || held == resubmitted as i64 + 1,
        "each request of the stream was submitted exactly once: {held} for {resubmitted}"
    );
    let distinct_refs = query(
        &outbox,
        "SELECT count(DISTINCT client_ref) FROM outbox WHERE operation = 'request'",
    );
    assert_eq!(distinct_refs, held);
    assert_eq!(
        accepted + refused,
        query(
            &outbox,
            "SELECT count(*) FROM outbox WHERE operation = 'request' AND state <> 'queued'"
        ),
        "what the adapter sent reached the gateway exactly once"
    );

    let verify = Command::new(BIN)
        .args(["journal", "verify", "-c"])
        .arg(dir.join("mezhved.toml"))
        .env_remove("OPENSSL_CONF")
        .output()
        .expect("journal verify");
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}
