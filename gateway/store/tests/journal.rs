//! Integration tests of the central journal in the SQLite store: which commands append
//! which events, roots and proofs against an independent RFC 6962 computation,
//! checkpoints, the auditor's card queries, the append-only triggers, and the whole-journal
//! verifier against a tampered database file.
//!
//! Every test has its own temporary directory; times are fixed milliseconds. Tampering is
//! done the way an attacker with the file would: a plain SQLite connection that drops the
//! protecting triggers first.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use mezhved_journal::merkle;
use mezhved_store::journal::{encode_leaf, hex};
use mezhved_store::sqlite::SqliteStore;
use mezhved_store::verify::{verify_journal, Divergence, VerifyReport};
use mezhved_store::*;
use rusqlite::{params, Connection};
use serde_json::{json, Value};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A request numbered `n` from `sender` to `recipient` whose card has `details`.
fn message(n: u128, sender: &str, recipient: &str, details: Value) -> NewMessage {
    let card = Card {
        global_id: gid(n),
        queue: Queue::Requests,
        sender_system: sender.into(),
        sender_message_id: format!("msg-{n}"),
        recipient_system: recipient.into(),
        kind_namespace: KIND_NS.into(),
        kind_root: KIND_ROOT.into(),
        original_global_id: None,
        checksum: digest(n, 0xC5),
        received_at_ms: T0 + n as i64,
        status: "accepted".into(),
        test_message: false,
        details,
    };
    NewMessage {
        global_id: gid(n),
        queue: Queue::Requests,
        sender_system: sender.into(),
        sender_message_id: format!("msg-{n}"),
        recipient_system: recipient.into(),
        kind_namespace: KIND_NS.into(),
        kind_root: KIND_ROOT.into(),
        content_namespace: KIND_NS.into(),
        content_root: KIND_ROOT.into(),
        original_global_id: None,
        checksum: digest(n, 0xC5),
        received_at_ms: T0 + n as i64,
        eol_ms: None,
        payload: format!("<PassportRequest n=\"{n}\"/>").into_bytes(),
        attachments: Vec::new(),
        answer: format!("<SendRequestResponse n=\"{n}\"/>").into_bytes(),
        card,
        original_status: None,
        lifecycle: Default::default(),
    }
}

fn pem(mnemonic: &str) -> String {
    format!("-----BEGIN CERTIFICATE-----\n{mnemonic}\n-----END CERTIFICATE-----\n")
}

fn system(mnemonic: &str, participant: &str) -> InformationSystem {
    InformationSystem {
        mnemonic: mnemonic.into(),
        participant: participant.into(),
        name: format!("System {mnemonic}"),
        certificates: vec![pem(mnemonic)],
        push_url: None,
    }
}

fn base_registry() -> Vec<RegistryChange> {
    vec![
        RegistryChange::PutParticipant(Participant {
            mnemonic: "P1".into(),
            name: "Agency P1".into(),
        }),
        RegistryChange::PutParticipant(Participant {
            mnemonic: "P2".into(),
            name: "Agency P2".into(),
        }),
        RegistryChange::PutSystem(system("SYS_A", "P1")),
        RegistryChange::PutSystem(system("SYS_B", "P2")),
    ]
}

fn event(i: u64) -> NewEvent {
    let mut body = serde_json::Map::new();
    body.insert("n".into(), i.into());
    body.insert("note".into(), format!("event {i}").into());
    NewEvent {
        at_ms: T0 + i as i64,
        event_type: if i % 3 == 0 {
            "auditor.query"
        } else {
            "message.rejected"
        }
        .into(),
        global_id: (i % 2 == 0).then(|| gid(1000 + i as u128)),
        actor: format!("SYS_{}", i % 5),
        body,
    }
}

async fn all_events(store: &SqliteStore) -> Vec<JournalEvent> {
    store.journal_events(0, 100_000).await.expect("events")
}

fn leaf_json(e: &JournalEvent) -> Value {
    serde_json::from_slice(&e.leaf).expect("a leaf is JSON")
}

fn assert_dense(events: &[JournalEvent]) {
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let dense: Vec<u64> = (0..events.len() as u64).collect();
    assert_eq!(seqs, dense, "seqs are dense from 0");
}

/// RFC 6962 `MTH`, computed naively from the leaves (independent of the merkle module).
fn naive_mth(leaves: &[Vec<u8>]) -> [u8; 32] {
    match leaves.len() {
        0 => openssl::sha::sha256(b""),
        1 => {
            let mut b = vec![0u8];
            b.extend_from_slice(&leaves[0]);
            openssl::sha::sha256(&b)
        }
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            let mut b = vec![1u8];
            b.extend_from_slice(&naive_mth(&leaves[..k]));
            b.extend_from_slice(&naive_mth(&leaves[k..]));
            openssl::sha::sha256(&b)
        }
    }
}

/// RFC 6962 `PATH(m, D[n])`, naively.
fn naive_path(m: usize, leaves: &[Vec<u8>]) -> Vec<[u8; 32]> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
    if m < k {
        let mut p = naive_path(m, &leaves[..k]);
        p.push(naive_mth(&leaves[k..]));
        p
    } else {
        let mut p = naive_path(m - k, &leaves[k..]);
        p.push(naive_mth(&leaves[..k]));
        p
    }
}

// --- checkpoints signed with a test "signature" --------------------------------------

const NOTE_KEY: &[u8] = b"journal test key";

fn note_body(size: u64, root: &Hash) -> String {
    format!("test.mezhved/journal\n{size}\n{}\n", hex(root))
}

fn mac(body: &str) -> String {
    let mut b = NOTE_KEY.to_vec();
    b.extend_from_slice(body.as_bytes());
    hex(&openssl::sha::sha256(&b))
}

fn signed_note(size: u64, root: &Hash) -> String {
    let body = note_body(size, root);
    let sig = mac(&body);
    format!("{body}\n— test {sig}\n")
}

/// What `mezhved journal verify` does with a real note: the signature verifies and the
/// note states the row's size and root.
fn check_note(cp: &StoredCheckpoint) -> std::result::Result<(), String> {
    let (body, sig) = cp.note.split_once("\n— test ").ok_or("not a signed note")?;
    if sig.trim_end() != mac(body) {
        return Err("the signature does not match".into());
    }
    if body != note_body(cp.size, &cp.root) {
        return Err("the note does not state the row's size and root".into());
    }
    Ok(())
}

async fn checkpoint(store: &SqliteStore, size: u64) -> StoredCheckpoint {
    let root = store.journal_root(size).await.expect("root");
    StoredCheckpoint {
        size,
        root,
        made_at_ms: T0 + size as i64,
        note: signed_note(size, &root),
    }
}

// --- the tamper fixture -------------------------------------------------------------

const EVENTS: u64 = 300;
const CHECKPOINTS: [u64; 3] = [100, 200, 300];

/// A closed store holding events `0..300` and checkpoints at 100, 200 and 300.
async fn fixture() -> TempDir {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(100) {
        let seqs = store
            .journal_append(chunk.iter().map(|i| event(*i)).collect())
            .await
            .expect("append");
        assert_eq!(seqs, chunk.to_vec());
        let cp = checkpoint(&store, seqs[seqs.len() - 1] + 1).await;
        store.add_checkpoint(cp).await.expect("checkpoint");
    }
    store.close();
    dir
}

/// A connection with the journal's triggers dropped, as an attacker would have.
fn attacker(dir: &TempDir) -> Connection {
    let conn = Connection::open(db_path(dir)).expect("open the file");
    for t in [
        "journal_events_no_update",
        "journal_events_no_delete",
        "journal_nodes_no_update",
        "journal_nodes_no_delete",
        "journal_checkpoints_no_update",
        "journal_checkpoints_no_delete",
    ] {
        conn.execute_batch(&format!("DROP TRIGGER IF EXISTS {t}"))
            .expect("drop a trigger");
    }
    conn
}

fn verify(dir: &TempDir) -> VerifyReport {
    let conn =
        Connection::open_with_flags(db_path(dir), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open read-only");
    let mut calls = Vec::new();
    let report = verify_journal(&conn, &check_note, &mut |done, total| {
        calls.push((done, total))
    })
    .expect("the verifier runs");
    assert!(!calls.is_empty(), "progress is reported at the end");
    report
}

fn leaf_of(conn: &Connection, seq: u64) -> Vec<u8> {
    conn.query_row(
        "SELECT leaf FROM journal_events WHERE seq = ?1",
        [seq as i64],
        |r| r.get(0),
    )
    .expect("a leaf")
}

fn set_leaf(conn: &Connection, seq: u64, leaf: &[u8]) {
    conn.execute(
        "UPDATE journal_events SET leaf = ?2 WHERE seq = ?1",
        params![seq as i64, leaf],
    )
    .expect("set a leaf");
}

fn node_of(conn: &Connection, level: u8, idx: u64) -> Option<Hash> {
    conn.query_row(
        "SELECT hash FROM journal_nodes WHERE level = ?1 AND idx = ?2",
        params![level, idx as i64],
        |r| r.get::<_, Vec<u8>>(0),
    )
    .ok()
    .map(|v| v.try_into().expect("32 bytes"))
}

fn set_node(conn: &Connection, level: u8, idx: u64, hash: &Hash) {
    conn.execute(
        "UPDATE journal_nodes SET hash = ?3 WHERE level = ?1 AND idx = ?2",
        params![level, idx as i64, &hash[..]],
    )
    .expect("set a node");
}

/// Event 150's leaf with one byte of its body changed ("event 150" → "Event 150").
fn edited_leaf(conn: &Connection) -> Vec<u8> {
    let mut leaf = leaf_of(conn, 150);
    let at = leaf
        .windows(9)
        .position(|w| w == b"event 150")
        .expect("the note");
    leaf[at] = b'E';
    leaf
}

fn root_differs(size: u64, last_good: Option<u64>) -> impl Fn(&Divergence) -> bool {
    move |d| {
        matches!(d, Divergence::CheckpointRootDiffers { size: s, last_good: g, .. }
            if *s == size && *g == last_good)
    }
}

fn assert_problems(report: &VerifyReport, expected: &[&dyn Fn(&Divergence) -> bool]) {
    let text: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(report.problems.len(), expected.len(), "problems: {text:#?}");
    for (i, (p, e)) in report.problems.iter().zip(expected).enumerate() {
        assert!(
            e(p),
            "problem {i} is not the expected one: {p:?}\nall: {text:#?}"
        );
    }
    assert_eq!(report.problems_omitted, 0);
}

// ---------------------------------------------------------------------------------------
// Which commands append which events
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn queue_and_registry_commands_append_their_events() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    assert_eq!(store.journal_size().await.expect("size"), 0);

    // registry.changed, with certificates replaced by their fingerprints.
    store
        .change_registry("operator".into(), 0, base_registry())
        .await
        .expect("registry");
    let events = all_events(&store).await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (e.seq, e.event_type.as_str(), e.actor.as_str(), e.global_id),
        (0, "registry.changed", "operator", None)
    );
    let leaf = leaf_json(e);
    let text = String::from_utf8(e.leaf.clone()).expect("utf-8");
    assert_eq!(leaf["version"], 1);
    assert_eq!(leaf["changes"].as_array().expect("changes").len(), 4);
    let fingerprint = format!(
        "sha256:{}",
        hex(&openssl::sha::sha256(pem("SYS_A").as_bytes()))
    );
    assert_eq!(leaf["changes"][2]["certificates"], json!([fingerprint]));
    assert!(
        !text.contains("BEGIN CERTIFICATE"),
        "no certificate text: {text}"
    );

    // A change that changes nothing, and failing changes, append nothing.
    store
        .change_registry("operator".into(), 0, base_registry())
        .await
        .expect("a no-op change");
    let failing = vec![
        RegistryChange::PutParticipant(Participant {
            mnemonic: "P3".into(),
            name: "Agency P3".into(),
        }),
        RegistryChange::PutSystem(system("SYS_X", "NO_SUCH_AGENCY")),
    ];
    assert!(matches!(
        store.change_registry("operator".into(), 0, failing).await,
        Err(StoreError::InvalidChange(_))
    ));
    assert!(store
        .change_registry(
            "operator".into(),
            0,
            vec![RegistryChange::DeleteSystem {
                mnemonic: "NO_SUCH".into()
            }]
        )
        .await
        .is_err());
    assert_eq!(store.journal_size().await.expect("size"), 1);

    // accept → message.accepted (its whole card); a duplicate appends nothing.
    let m = message(7, "SYS_A", "SYS_B", json!({ "sender_agency": "P1" }));
    assert_eq!(
        store.accept(m.clone()).await.expect("accept"),
        AcceptOutcome::Accepted
    );
    assert!(matches!(
        store.accept(m.clone()).await.expect("accept"),
        AcceptOutcome::Duplicate(_)
    ));
    // lease → message.delivered; Ack(false) → message.released; lease again; Ack(true)
    // with the receiver's registration → message.acknowledged.
    let t1 = T0 + 1_000;
    store
        .lease(lease_req("SYS_B", Queue::Requests, t1))
        .await
        .expect("lease")
        .expect("m");
    assert_eq!(
        store
            .ack(ack_cmd("SYS_B", m.global_id, false, t1 + 1))
            .await
            .expect("ack"),
        AckOutcome::Released
    );
    store
        .lease(lease_req("SYS_B", Queue::Requests, t1 + 2))
        .await
        .expect("lease")
        .expect("m");
    // Failing or ineffective acks append nothing.
    assert_eq!(
        store
            .ack(ack_cmd("SYS_B", gid(424_242), true, t1 + 3))
            .await
            .expect("ack"),
        AckOutcome::NotFound
    );
    assert_eq!(
        store
            .ack(ack_cmd("SYS_A", m.global_id, true, t1 + 3))
            .await
            .expect("ack"),
        AckOutcome::NotFound
    );
    let mut ack = ack_cmd("SYS_B", m.global_id, true, t1 + 4);
    ack.receiver_registration = Some(ReceiverRegistration {
        number: "IN-77".into(),
        registered_at_ms: t1 + 3,
    });
    assert!(matches!(
        store.ack(ack.clone()).await.expect("ack"),
        AckOutcome::Acknowledged { .. }
    ));
    assert_eq!(
        store.ack(ack).await.expect("ack"),
        AckOutcome::AlreadyAcknowledged
    );

    let events = all_events(&store).await;
    assert_dense(&events);
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "registry.changed",
            "message.accepted",
            "message.delivered",
            "message.released",
            "message.delivered",
            "message.acknowledged"
        ]
    );
    let of_m = store
        .journal_events_of(m.global_id)
        .await
        .expect("events of m");
    assert_eq!(of_m, events[1..].to_vec());
    for e in &events[1..] {
        let leaf = leaf_json(e);
        assert_eq!(e.global_id, Some(m.global_id));
        assert_eq!(leaf["global_id"], "00000000-0000-0000-0000-000000000007");
        assert_eq!(leaf["seq"], e.seq);
        assert_eq!(leaf["type"], e.event_type.as_str());
        assert_eq!(leaf["actor"], e.actor.as_str());
        assert_eq!(leaf["at"], e.at_ms);
        assert_eq!(leaf["v"], 1);
    }
    let accepted = leaf_json(&events[1]);
    assert_eq!(events[1].actor, "SYS_A");
    assert_eq!(accepted["card"]["sender_agency"], "P1");
    assert_eq!(accepted["checksum"], hex(&m.checksum));
    assert!(
        !String::from_utf8_lossy(&events[1].leaf).contains("PassportRequest n="),
        "no payload in the journal"
    );
    assert_eq!(leaf_json(&events[2])["delivery"], 1);
    assert_eq!(leaf_json(&events[4])["delivery"], 2);
    assert_eq!(events[3].actor, "SYS_B");
    let acked = leaf_json(&events[5]);
    assert_eq!(acked["status"], "delivered");
    assert_eq!(
        acked["receiver_registration"],
        json!({ "number": "IN-77", "registered_at": t1 + 3 })
    );

    // journal_append of arbitrary events, one transaction, dense seqs.
    let seqs = store
        .journal_append(vec![event(0), event(1), event(2)])
        .await
        .expect("append");
    assert_eq!(seqs, vec![6, 7, 8]);
    let events = all_events(&store).await;
    assert_dense(&events);
    assert_eq!(events[7].event_type, "message.rejected");
    assert_eq!(leaf_json(&events[7])["note"], "event 1");
    assert_eq!(events[7].global_id, None);
    store.close();

    let report = verify(&dir);
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert_eq!(report.events, 9);
}

// ---------------------------------------------------------------------------------------
// Roots and proofs
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn roots_and_proofs_agree_with_an_independent_rfc6962_computation() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    assert_eq!(
        store.journal_root(0).await.expect("empty root"),
        naive_mth(&[])
    );
    let n = 37u64;
    store
        .journal_append((0..n).map(event).collect())
        .await
        .expect("append");
    let leaves: Vec<Vec<u8>> = all_events(&store)
        .await
        .into_iter()
        .map(|e| e.leaf)
        .collect();
    assert_eq!(leaves.len() as u64, n);
    for size in [1u64, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, 36, 37] {
        let root = store.journal_root(size).await.expect("root");
        assert_eq!(root, naive_mth(&leaves[..size as usize]), "root of {size}");
        for seq in 0..size {
            let proof = store.inclusion_proof(seq, size).await.expect("inclusion");
            assert_eq!(
                proof,
                naive_path(seq as usize, &leaves[..size as usize]),
                "path of {seq} in {size}"
            );
            merkle::verify_inclusion(
                &merkle::leaf_hash(&leaves[seq as usize]),
                seq,
                size,
                &proof,
                &root,
            )
            .expect("the inclusion proof verifies");
        }
    }
    for old in 1..=n {
        let old_root = naive_mth(&leaves[..old as usize]);
        for new in old..=n {
            let proof = store
                .consistency_proof(old, new)
                .await
                .expect("consistency");
            merkle::verify_consistency(
                old,
                new,
                &old_root,
                &naive_mth(&leaves[..new as usize]),
                &proof,
            )
            .unwrap_or_else(|e| panic!("consistency {old} → {new}: {e}"));
        }
    }
    // Beyond the journal: refused.
    assert!(matches!(
        store.journal_root(n + 1).await,
        Err(StoreError::InvalidRequest(_))
    ));
    assert!(store.inclusion_proof(n, n).await.is_err());
    assert!(store.inclusion_proof(0, n + 1).await.is_err());
    assert!(store.consistency_proof(3, n + 1).await.is_err());
    assert!(store.consistency_proof(5, 4).await.is_err());
    store.close();
}

#[tokio::test]
async fn add_checkpoint_checks_the_root_and_size_and_is_idempotent() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    store
        .journal_append((0..10).map(event).collect())
        .await
        .expect("append");
    let good = checkpoint(&store, 7).await;

    let mut wrong = good.clone();
    wrong.root[0] ^= 1;
    assert!(matches!(
        store.add_checkpoint(wrong).await,
        Err(StoreError::InvalidRequest(_))
    ));
    let mut beyond = good.clone();
    beyond.size = 11;
    assert!(matches!(
        store.add_checkpoint(beyond).await,
        Err(StoreError::InvalidRequest(_))
    ));
    assert_eq!(store.latest_checkpoint().await.expect("latest"), None);

    store
        .add_checkpoint(good.clone())
        .await
        .expect("the right one");
    store
        .add_checkpoint(good.clone())
        .await
        .expect("again: a no-op");
    let ten = checkpoint(&store, 10).await;
    store.add_checkpoint(ten.clone()).await.expect("size 10");
    assert_eq!(
        store.checkpoints(None, 10).await.expect("all"),
        vec![good.clone(), ten.clone()]
    );
    assert_eq!(
        store.checkpoints(Some(7), 10).await.expect("after 7"),
        vec![ten.clone()]
    );
    assert_eq!(store.latest_checkpoint().await.expect("latest"), Some(ten));
    store.close();
}

// ---------------------------------------------------------------------------------------
// The auditor's card queries
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn query_cards_filters_and_pages() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    let details = |agency_from: &str, agency_to: &str, service: &str, acts: &[&str], n: u32| {
        json!({
            "message_type": if n % 2 == 0 { "REQUEST" } else { "RESPONSE" },
            "sender_agency": agency_from,
            "recipient_agency": agency_to,
            "service": { "registry_number": service },
            "legal_basis": acts.iter().map(|a| json!({ "act": a, "article": "5" })).collect::<Vec<_>>(),
            "subject_hash": hex(&[n as u8; 32]),
            "sender_registration": { "number": format!("OUT-{n}"), "date": "2024-01-01" },
        })
    };
    let messages = [
        message(
            1,
            "SYS_A",
            "SYS_B",
            details("P1", "P2", "S-100", &["Law 1"], 1),
        ),
        message(
            2,
            "SYS_A",
            "SYS_B",
            details("P1", "P2", "S-100", &["Law 1", "Law 2"], 2),
        ),
        message(
            3,
            "SYS_B",
            "SYS_A",
            details("P2", "P1", "S-200", &["Law 2"], 3),
        ),
        message(4, "SYS_C", "SYS_B", details("P3", "P2", "S-300", &[], 4)),
        message(
            5,
            "SYS_A",
            "SYS_C",
            details("P1", "P3", "S-100", &["Law 3"], 5),
        ),
    ];
    for m in &messages {
        store.accept(m.clone()).await.expect("accept");
    }
    // Message 2 is acknowledged with the receiver's registration number.
    store
        .lease(lease_req("SYS_B", Queue::Requests, T0 + 100))
        .await
        .expect("lease")
        .expect("1");
    store
        .lease(lease_req("SYS_B", Queue::Requests, T0 + 100))
        .await
        .expect("lease")
        .expect("2");
    let mut ack = ack_cmd("SYS_B", gid(2), true, T0 + 101);
    ack.receiver_registration = Some(ReceiverRegistration {
        number: "IN-2".into(),
        registered_at_ms: T0 + 101,
    });
    ack.acked_status = "registered".into();
    store.ack(ack).await.expect("ack");

    let ids = |cards: Vec<Card>| -> Vec<u128> {
        cards
            .iter()
            .map(|c| u128::from_be_bytes(c.global_id))
            .collect()
    };
    let q = |f: CardFilter| {
        let store = &store;
        async move { ids(store.query_cards(f).await.expect("query")) }
    };
    assert_eq!(q(CardFilter::default()).await, vec![1, 2, 3, 4, 5]);
    // Period: [from, to).
    assert_eq!(
        q(CardFilter {
            from_ms: Some(T0 + 2),
            to_ms: Some(T0 + 4),
            ..Default::default()
        })
        .await,
        vec![2, 3]
    );
    assert_eq!(
        q(CardFilter {
            agency: Some("P3".into()),
            ..Default::default()
        })
        .await,
        vec![4, 5]
    );
    assert_eq!(
        q(CardFilter {
            system: Some("SYS_C".into()),
            ..Default::default()
        })
        .await,
        vec![4, 5]
    );
    assert_eq!(
        q(CardFilter {
            kind_namespace: Some(KIND_NS.into()),
            kind_root: Some(KIND_ROOT.into()),
            ..Default::default()
        })
        .await,
        vec![1, 2, 3, 4, 5]
    );
    assert!(q(CardFilter {
        kind_root: Some("Other".into()),
        ..Default::default()
    })
    .await
    .is_empty());
    assert_eq!(
        q(CardFilter {
            service: Some("S-100".into()),
            ..Default::default()
        })
        .await,
        vec![1, 2, 5]
    );
    assert_eq!(
        q(CardFilter {
            legal_act: Some("Law 2".into()),
            ..Default::default()
        })
        .await,
        vec![2, 3]
    );
    assert_eq!(
        q(CardFilter {
            status: Some("registered".into()),
            ..Default::default()
        })
        .await,
        vec![2]
    );
    assert_eq!(
        q(CardFilter {
            message_type: Some("RESPONSE".into()),
            ..Default::default()
        })
        .await,
        vec![1, 3, 5]
    );
    assert_eq!(
        q(CardFilter {
            registration_number: Some("OUT-4".into()),
            ..Default::default()
        })
        .await,
        vec![4]
    );
    assert_eq!(
        q(CardFilter {
            registration_number: Some("IN-2".into()),
            ..Default::default()
        })
        .await,
        vec![2]
    );
    assert_eq!(
        q(CardFilter {
            subject_hash: Some([3; 32]),
            ..Default::default()
        })
        .await,
        vec![3]
    );
    assert_eq!(
        q(CardFilter {
            sender_message_id: Some("msg-5".into()),
            ..Default::default()
        })
        .await,
        vec![5]
    );
    assert_eq!(
        q(CardFilter {
            global_id: Some(gid(4)),
            ..Default::default()
        })
        .await,
        vec![4]
    );
    // Filters combine.
    assert_eq!(
        q(CardFilter {
            agency: Some("P1".into()),
            service: Some("S-100".into()),
            message_type: Some("REQUEST".into()),
            ..Default::default()
        })
        .await,
        vec![2]
    );
    // Pages of two, following `after`.
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = q(CardFilter {
            after,
            limit: Some(2),
            ..Default::default()
        })
        .await;
        if page.is_empty() {
            break;
        }
        after = page.last().map(|n| gid(*n));
        pages.push(page);
    }
    assert_eq!(pages, vec![vec![1, 2], vec![3, 4], vec![5]]);
    // A returned card is the whole card, with the receiver's registration.
    let card = store
        .query_cards(CardFilter {
            global_id: Some(gid(2)),
            ..Default::default()
        })
        .await
        .expect("query")
        .pop()
        .expect("card 2");
    assert_eq!(card.details["receiver_registration"]["number"], "IN-2");
    assert_eq!(card.details["service"]["registry_number"], "S-100");
    store.close();
}

// ---------------------------------------------------------------------------------------
// The schema refuses updates and deletes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn triggers_refuse_update_and_delete_of_journal_rows() {
    let dir = fixture().await;
    let conn = Connection::open(db_path(&dir)).expect("open");
    for sql in [
        "UPDATE journal_events SET actor = 'x' WHERE seq = 3",
        "UPDATE journal_events SET seq = 1000 WHERE seq = 299",
        "DELETE FROM journal_events WHERE seq = 299",
        "DELETE FROM journal_events",
        "UPDATE journal_nodes SET hash = x'00' WHERE level = 0 AND idx = 0",
        "DELETE FROM journal_nodes WHERE level = 0 AND idx = 299",
        "UPDATE journal_checkpoints SET note = 'x' WHERE size = 100",
        "DELETE FROM journal_checkpoints WHERE size = 300",
    ] {
        let err = conn.execute(sql, []).expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    // Appending rows directly is not refused by the schema (that is the writer's job),
    // but nothing above changed anything.
    drop(conn);
    let report = verify(&dir);
    assert!(report.is_clean(), "{:#?}", report.problems);
}

// ---------------------------------------------------------------------------------------
// The verifier against a tampered file
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn untampered_journal_verifies() {
    let dir = fixture().await;
    let report = verify(&dir);
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert_eq!(report.events, EVENTS);
    // Every complete subtree: 2n - popcount(n) nodes.
    assert_eq!(
        report.nodes_checked,
        2 * EVENTS - EVENTS.count_ones() as u64
    );
    assert_eq!(report.checkpoints_checked, CHECKPOINTS.len() as u64);
    assert_eq!(report.consistent_pairs, CHECKPOINTS.len() as u64 - 1);

    // An empty journal verifies too.
    let empty = TempDir::new().expect("tempdir");
    open(&empty).close();
    let report = verify(&empty);
    assert!(report.is_clean());
    assert_eq!((report.events, report.nodes_checked), (0, 0));
}

/// (a) One byte of one leaf changed.
#[tokio::test]
async fn tamper_a_leaf_byte_is_caught_at_that_event() {
    let dir = fixture().await;
    let original = {
        let conn = attacker(&dir);
        let original = leaf_of(&conn, 150);
        set_leaf(&conn, 150, &edited_leaf(&conn));
        original
    };
    let report = verify(&dir);
    assert_problems(
        &report,
        &[
            &|d| matches!(d, Divergence::LeafChanged { seq: 150, .. }),
            &root_differs(200, Some(100)),
            &root_differs(300, Some(100)),
        ],
    );
    assert!(
        report.problems[0]
            .to_string()
            .starts_with("the leaf of event 150 was changed after it was appended"),
        "{}",
        report.problems[0]
    );

    // A proof from the store still leads the *original* leaf to the signed root, and the
    // changed leaf nowhere.
    let store = open(&dir);
    let cp = store.checkpoints(None, 10).await.expect("checkpoints")[1].clone();
    assert_eq!(cp.size, 200);
    let changed = store.journal_events(150, 1).await.expect("event")[0]
        .leaf
        .clone();
    assert_ne!(changed, original);
    let proof = store.inclusion_proof(150, cp.size).await.expect("proof");
    assert!(
        merkle::verify_inclusion(&merkle::leaf_hash(&changed), 150, cp.size, &proof, &cp.root)
            .is_err()
    );
    merkle::verify_inclusion(
        &merkle::leaf_hash(&original),
        150,
        cp.size,
        &proof,
        &cp.root,
    )
    .expect("the original leaf is what the checkpoint signed");
    store.close();
}

/// (b) A leaf changed and its level-0 node and every stored ancestor recomputed to match:
/// the stored tree is self-consistent, only the signed checkpoints catch it.
#[tokio::test]
async fn tamper_b_leaf_with_recomputed_nodes_is_caught_by_the_checkpoints() {
    let dir = fixture().await;
    {
        let conn = attacker(&dir);
        let leaf = edited_leaf(&conn);
        set_leaf(&conn, 150, &leaf);
        let (mut level, mut idx, mut hash) = (0u8, 150u64, merkle::leaf_hash(&leaf));
        set_node(&conn, 0, 150, &hash);
        loop {
            let sibling = node_of(&conn, level, idx ^ 1);
            let Some(sibling) = sibling else { break };
            hash = if idx & 1 == 0 {
                merkle::node_hash(&hash, &sibling)
            } else {
                merkle::node_hash(&sibling, &hash)
            };
            level += 1;
            idx >>= 1;
            if node_of(&conn, level, idx).is_none() {
                break;
            }
            set_node(&conn, level, idx, &hash);
        }
        assert!(level >= 6, "ancestors up to level {level} were rewritten");
    }
    let report = verify(&dir);
    assert_problems(
        &report,
        &[&root_differs(200, Some(100)), &root_differs(300, Some(100))],
    );
    assert!(
        report.problems[0]
            .to_string()
            .contains("events 100 to 199 were changed (checkpoint 100 still matches)"),
        "{}",
        report.problems[0]
    );
}

/// (c) A row deleted in the middle; its leaf hash is still stored.
#[tokio::test]
async fn tamper_c_deleted_row_is_named() {
    let dir = fixture().await;
    attacker(&dir)
        .execute("DELETE FROM journal_events WHERE seq = 150", [])
        .expect("delete");
    let report = verify(&dir);
    assert_problems(
        &report,
        &[&|d| {
            *d == Divergence::EventsMissing {
                first: 150,
                last: 150,
                leaf_hashes_kept: true,
            }
        }],
    );
    assert!(
        report.problems[0]
            .to_string()
            .starts_with("event 150 is missing (rows 149 and 151 are adjacent)"),
        "{}",
        report.problems[0]
    );
    assert_eq!(
        report.checkpoints_checked, 3,
        "the tree above it still checks"
    );
}

/// (c′) Rows deleted together with their leaf hashes: the checkpoints above are lost.
#[tokio::test]
async fn tamper_c_deleted_rows_and_leaf_hashes_are_named() {
    let dir = fixture().await;
    {
        let conn = attacker(&dir);
        conn.execute("DELETE FROM journal_events WHERE seq IN (150, 151)", [])
            .expect("delete rows");
        conn.execute(
            "DELETE FROM journal_nodes WHERE level = 0 AND idx = 151",
            [],
        )
        .expect("delete a node");
    }
    let report = verify(&dir);
    assert_problems(
        &report,
        &[
            &|d| {
                *d == Divergence::EventsMissing {
                    first: 150,
                    last: 151,
                    leaf_hashes_kept: false,
                }
            },
            &|d| {
                *d == Divergence::CheckpointUnverifiable {
                    size: 200,
                    lost_seq: 151,
                }
            },
            &|d| {
                *d == Divergence::CheckpointUnverifiable {
                    size: 300,
                    lost_seq: 151,
                }
            },
        ],
    );
}

/// (d) The last rows deleted, below the last checkpoint.
#[tokio::test]
async fn tamper_d_truncation_below_a_checkpoint() {
    let dir = fixture().await;
    attacker(&dir)
        .execute("DELETE FROM journal_events WHERE seq >= 250", [])
        .expect("truncate");
    let report = verify(&dir);
    assert_problems(
        &report,
        &[
            &|d| {
                *d == Divergence::CheckpointBeyondEnd {
                    size: 300,
                    events: 250,
                }
            },
            &|d| {
                matches!(
                    d,
                    Divergence::NodesBeyondEnd {
                        events: 250,
                        first: (0, 250),
                        leaf_nodes_up_to: Some(299),
                        ..
                    }
                )
            },
        ],
    );
    assert!(
        report.problems[0]
            .to_string()
            .starts_with("checkpoint 300 is larger than the journal"),
        "{}",
        report.problems[0]
    );

    // A careful attacker deletes the nodes as well: the checkpoint still tells.
    attacker(&dir)
        .execute(
            "DELETE FROM journal_nodes WHERE ((idx + 1) << level) > 250",
            [],
        )
        .expect("delete nodes");
    let report = verify(&dir);
    assert_problems(
        &report,
        &[&|d| {
            *d == Divergence::CheckpointBeyondEnd {
                size: 300,
                events: 250,
            }
        }],
    );
}

/// (e) A forged row inserted in the middle, later rows renumbered.
#[tokio::test]
async fn tamper_e_inserted_row_and_renumbered_rows() {
    let dir = fixture().await;
    {
        let conn = attacker(&dir);
        // Two steps, so the primary key never collides.
        conn.execute(
            "UPDATE journal_events SET seq = -seq - 1 WHERE seq >= 150",
            [],
        )
        .expect("renumber");
        conn.execute("UPDATE journal_events SET seq = -seq WHERE seq < 0", [])
            .expect("renumber");
        let forged = event(10_000);
        conn.execute(
            "INSERT INTO journal_events (seq, at, type, global_id, actor, leaf)
             VALUES (150, ?1, ?2, ?3, ?4, ?5)",
            params![
                forged.at_ms,
                forged.event_type,
                forged.global_id.map(|g| g.to_vec()),
                forged.actor,
                encode_leaf(150, &forged).expect("leaf")
            ],
        )
        .expect("insert");
    }
    let report = verify(&dir);
    assert_problems(
        &report,
        &[
            &|d| matches!(d, Divergence::LeafChanged { seq: 150, .. }),
            &|d| {
                *d == Divergence::RowsShifted {
                    first_row: 151,
                    last_row: 300,
                    offset: -1,
                }
            },
            &root_differs(200, Some(100)),
            &root_differs(300, Some(100)),
        ],
    );
    assert!(
        report.problems[1]
            .to_string()
            .starts_with("rows out of order: rows 151 to 300 hold the leaves of events 150 to 299"),
        "{}",
        report.problems[1]
    );
}

/// (f) Two rows' leaves swapped.
#[tokio::test]
async fn tamper_f_swapped_leaves() {
    let dir = fixture().await;
    {
        let conn = attacker(&dir);
        let (a, b) = (leaf_of(&conn, 120), leaf_of(&conn, 130));
        set_leaf(&conn, 120, &b);
        set_leaf(&conn, 130, &a);
    }
    let report = verify(&dir);
    let shifted = |row: u64, offset: i64| {
        move |d: &Divergence| {
            *d == Divergence::RowsShifted {
                first_row: row,
                last_row: row,
                offset,
            }
        }
    };
    assert_problems(
        &report,
        &[
            &shifted(120, 10),
            &shifted(130, -10),
            &root_differs(200, Some(100)),
            &root_differs(300, Some(100)),
        ],
    );
    assert_eq!(
        report.problems[0].to_string(),
        "rows out of order: row 120 holds the leaf of event 130"
    );
}

/// (g) An index column changed, the leaf left alone.
#[tokio::test]
async fn tamper_g_index_columns() {
    let dir = fixture().await;
    {
        let conn = attacker(&dir);
        conn.execute(
            "UPDATE journal_events SET type = 'message.accepted' WHERE seq = 42",
            [],
        )
        .expect("type");
        conn.execute(
            "UPDATE journal_events SET actor = 'SYS_Z' WHERE seq = 43",
            [],
        )
        .expect("actor");
        conn.execute(
            "UPDATE journal_events SET global_id = NULL WHERE seq = 44",
            [],
        )
        .expect("global_id");
        conn.execute("UPDATE journal_events SET at = at + 1 WHERE seq = 45", [])
            .expect("at");
    }
    let report = verify(&dir);
    let column = |seq: u64, name: &'static str| {
        move |d: &Divergence| {
            matches!(d, Divergence::ColumnDisagrees { seq: s, column, .. }
                if *s == seq && *column == name)
        }
    };
    assert_problems(
        &report,
        &[
            &column(42, "type"),
            &column(43, "actor"),
            &column(44, "global_id"),
            &column(45, "at"),
        ],
    );
    assert_eq!(
        report.problems[0].to_string(),
        "event 42: an index column disagrees with the leaf: type is \"message.accepted\" in \
         the row but \"auditor.query\" in the leaf (the row was edited)"
    );
}

/// (h) A checkpoint's root or note changed.
#[tokio::test]
async fn tamper_h_checkpoint_root_or_note() {
    let dir = fixture().await;
    {
        let conn = attacker(&dir);
        conn.execute(
            "UPDATE journal_checkpoints SET root = ?1 WHERE size = 200",
            [&[7u8; 32][..]],
        )
        .expect("root");
        conn.execute(
            "UPDATE journal_checkpoints SET note = replace(note, 'journal', 'jOurnal')
             WHERE size = 300",
            [],
        )
        .expect("note");
    }
    let report = verify(&dir);
    assert_problems(
        &report,
        &[
            // The note still states the old root.
            &|d| matches!(d, Divergence::CheckpointSignature { size: 200, .. }),
            &root_differs(200, Some(100)),
            &|d| matches!(d, Divergence::CheckpointSignature { size: 300, .. }),
        ],
    );
    assert!(
        report.problems[2]
            .to_string()
            .starts_with("checkpoint 300: signature does not verify"),
        "{}",
        report.problems[2]
    );
    assert_eq!(
        report.consistent_pairs, 0,
        "200 does not match, so no pair is consistent"
    );
}

/// A stored interior node changed: reported as that node, nothing above it.
#[tokio::test]
async fn tamper_stored_node_is_named() {
    let dir = fixture().await;
    set_node(&attacker(&dir), 2, 5, &[9; 32]);
    let report = verify(&dir);
    assert_problems(
        &report,
        &[&|d| {
            matches!(
                d,
                Divergence::NodeDiffers {
                    level: 2,
                    idx: 5,
                    ..
                }
            )
        }],
    );
    assert!(report.problems[0]
        .to_string()
        .starts_with("stored node (2, 5) differs from the recomputed one"));
}

/// Many divergences: the first ones are kept, the rest counted.
#[tokio::test]
async fn problems_are_capped() {
    let dir = fixture().await;
    attacker(&dir)
        .execute(
            "UPDATE journal_events SET actor = 'X' WHERE seq % 7 = 0",
            [],
        )
        .expect("actors");
    let report = verify(&dir);
    assert_eq!(report.problems.len(), mezhved_store::verify::MAX_PROBLEMS);
    assert_eq!(
        report.problems.len() as u64 + report.problems_omitted,
        EVENTS.div_ceil(7)
    );
    assert!(matches!(
        report.problems[0],
        Divergence::ColumnDisagrees {
            seq: 0,
            column: "actor",
            ..
        }
    ));
}
