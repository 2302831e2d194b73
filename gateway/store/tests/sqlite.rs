//! Integration tests of the embedded SQLite store through the `Store` trait.
//!
//! Every test has its own temporary directory. Times are fixed milliseconds passed in as
//! arguments (`now_ms`), so lease visibility never depends on the wall clock; the only
//! waits are for the writer's background WAL truncation (bounded polling) and for a
//! command to stay blocked behind another connection's write lock.

mod common;
use common::*;
use mezhved_store::sqlite::{SqliteOptions, SqliteStore, MAX_BATCH};
use mezhved_store::*;
use serde_json::json;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn open_shared(dir: &TempDir) -> Arc<SqliteStore> {
    Arc::new(open(dir))
}

fn card_of(m: &NewMessage) -> Card {
    Card {
        global_id: m.global_id,
        queue: m.queue,
        sender_system: m.sender_system.clone(),
        sender_message_id: m.sender_message_id.clone(),
        recipient_system: m.recipient_system.clone(),
        kind_namespace: m.kind_namespace.clone(),
        kind_root: m.kind_root.clone(),
        original_global_id: m.original_global_id,
        checksum: m.checksum,
        received_at_ms: m.received_at_ms,
        status: "accepted".into(),
        test_message: false,
        details: json!({ "payload_size": m.payload.len(), "attachments": m.attachments.len() }),
    }
}

/// A request from SYS_A to SYS_B numbered `n`, with its card; `edit` adjusts it before
/// the card is derived from it.
fn message(n: u128, edit: impl FnOnce(&mut NewMessage)) -> NewMessage {
    let mut m = NewMessage {
        global_id: gid(n),
        queue: Queue::Requests,
        sender_system: "SYS_A".into(),
        sender_message_id: format!("msg-{n}"),
        recipient_system: "SYS_B".into(),
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
        card: Card {
            global_id: gid(n),
            queue: Queue::Requests,
            sender_system: String::new(),
            sender_message_id: String::new(),
            recipient_system: String::new(),
            kind_namespace: String::new(),
            kind_root: String::new(),
            original_global_id: None,
            checksum: [0; 32],
            received_at_ms: 0,
            status: String::new(),
            test_message: false,
            details: json!({}),
        },
        original_status: None,
        lifecycle: Default::default(),
    };
    edit(&mut m);
    m.card = card_of(&m);
    m
}

fn attachment(n: u128, i: usize) -> StoredAttachment {
    StoredAttachment {
        content_id: format!("att-{n}-{i}@mezhved"),
        mime_type: "application/pdf".into(),
        size: 1000 + i as u64,
        sha256: digest(n, i as u8),
        path: format!("attachments/{n:032x}/{i}"),
        mtom: i % 2 == 0,
    }
}

fn participant(mnemonic: &str) -> Participant {
    Participant {
        mnemonic: mnemonic.into(),
        name: format!("Agency {mnemonic}"),
    }
}

fn system(mnemonic: &str, participant: &str) -> InformationSystem {
    InformationSystem {
        mnemonic: mnemonic.into(),
        participant: participant.into(),
        name: format!("System {mnemonic}"),
        certificates: vec![format!(
            "-----BEGIN CERTIFICATE-----\n{mnemonic}\n-----END CERTIFICATE-----\n"
        )],
        push_url: None,
    }
}

fn kind(root: &str, provider: &str) -> KindOfInformation {
    KindOfInformation {
        namespace: KIND_NS.into(),
        root_element: root.into(),
        name: format!("Kind {root}"),
        provider_system: provider.into(),
        restricted: true,
        consent_required: false,
        description: "a test kind".into(),
        reply_working_days: None,
    }
}

fn grant(consumer: &str, root: &str) -> Grant {
    Grant {
        consumer_system: consumer.into(),
        namespace: KIND_NS.into(),
        root_element: root.into(),
    }
}

/// P1 owns SYS_A, P2 owns SYS_B; SYS_B provides PassportRequest, granted to SYS_A.
fn base_registry() -> Vec<RegistryChange> {
    vec![
        RegistryChange::PutParticipant(participant("P1")),
        RegistryChange::PutParticipant(participant("P2")),
        RegistryChange::PutSystem(system("SYS_A", "P1")),
        RegistryChange::PutSystem(system("SYS_B", "P2")),
        RegistryChange::PutKind(kind(KIND_ROOT, "SYS_B")),
        RegistryChange::Grant(grant("SYS_A", KIND_ROOT)),
    ]
}

fn base_registry_data(version: u64) -> RegistryData {
    RegistryData {
        version,
        participants: vec![participant("P1"), participant("P2")],
        systems: vec![system("SYS_A", "P1"), system("SYS_B", "P2")],
        kinds: vec![kind(KIND_ROOT, "SYS_B")],
        grants: vec![grant("SYS_A", KIND_ROOT)],
    }
}

fn expect_invalid(result: Result<u64>, what: &str) -> String {
    match result {
        Err(StoreError::InvalidChange(msg)) => {
            assert!(
                !msg.trim().is_empty(),
                "{what}: InvalidChange without a message"
            );
            msg
        }
        other => panic!("{what}: expected InvalidChange, got {other:?}"),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The files of `dir` (the database, its WAL and shared-memory index) holding `marker`.
fn files_containing(dir: &Path, marker: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).expect("list the database directory") {
        let path = entry.expect("directory entry").path();
        if path.is_file() && contains(&std::fs::read(&path).expect("read a file"), marker) {
            hits.push(path);
        }
    }
    hits
}

fn database_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list the database directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A second, independent connection to the database (what another process would have).
fn raw_connection(dir: &TempDir) -> rusqlite::Connection {
    rusqlite::Connection::open(db_path(dir)).expect("open a raw connection")
}

fn count(conn: &rusqlite::Connection, sql: &str, param: &str) -> i64 {
    conn.query_row(sql, [param], |r| r.get(0))
        .expect("count rows")
}

/// Polls every future once, so each `write` has handed its command to the writer thread,
/// without waiting for any of them.
async fn poll_each_once<T>(futures: &mut [Pin<Box<dyn Future<Output = T> + Send + '_>>]) {
    std::future::poll_fn(|cx| {
        for f in futures.iter_mut() {
            assert!(
                f.as_mut().poll(cx).is_pending(),
                "a command finished while the writer was meant to be blocked"
            );
        }
        Poll::Ready(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 1. Registry
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn registry_round_trip_and_version_per_change() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    assert_eq!(
        store.registry().await.expect("registry"),
        RegistryData::default()
    );
    assert_eq!(store.registry_version().await.expect("version"), 0);

    let v1 = store
        .change_registry("test".into(), 0, base_registry())
        .await
        .expect("base");
    assert_eq!(v1, 1, "one change_registry call is one version");
    assert_eq!(store.registry_version().await.expect("version"), 1);
    assert_eq!(
        store.registry().await.expect("registry"),
        base_registry_data(1)
    );

    // Re-applying the same registry (a restart re-reads an unchanged file) changes nothing
    // and leaves the version alone.
    let again = store
        .change_registry("test".into(), 0, base_registry())
        .await
        .expect("again");
    assert_eq!(again, 1, "an unchanged registry is the same version");

    // Puts are upserts; a call that changes something bumps the version once.
    let mut renamed = participant("P1");
    renamed.name = "Renamed agency".into();
    let mut k = kind(KIND_ROOT, "SYS_B");
    k.consent_required = true;
    k.restricted = false;
    k.description = "updated".into();
    let mut s = system("SYS_A", "P1");
    s.certificates.push("second certificate".into());
    let v2 = store
        .change_registry(
            "test".into(),
            0,
            vec![
                RegistryChange::PutParticipant(renamed.clone()),
                RegistryChange::PutKind(k.clone()),
                RegistryChange::PutSystem(s.clone()),
                RegistryChange::PutKind(kind("DriverLicense", "SYS_A")),
                RegistryChange::Grant(grant("SYS_B", "DriverLicense")),
                // Granting twice is not an error.
                RegistryChange::Grant(grant("SYS_A", KIND_ROOT)),
            ],
        )
        .await
        .expect("second change");
    assert_eq!(v2, 2);
    let expected = RegistryData {
        version: 2,
        participants: vec![renamed, participant("P2")],
        systems: vec![s, system("SYS_B", "P2")],
        kinds: vec![kind("DriverLicense", "SYS_A"), k],
        grants: vec![grant("SYS_A", KIND_ROOT), grant("SYS_B", "DriverLicense")],
    };
    assert_eq!(store.registry().await.expect("registry"), expected);

    // Deletions in dependency order succeed.
    let v3 = store
        .change_registry(
            "test".into(),
            0,
            vec![
                RegistryChange::Revoke(grant("SYS_B", "DriverLicense")),
                RegistryChange::DeleteKind {
                    namespace: KIND_NS.into(),
                    root_element: "DriverLicense".into(),
                },
            ],
        )
        .await
        .expect("third change");
    assert_eq!(v3, 3);
    let mut expected = expected;
    expected.version = 3;
    expected.kinds.remove(0);
    expected.grants.pop();
    assert_eq!(store.registry().await.expect("registry"), expected);
    assert_eq!(store.registry_version().await.expect("version"), 3);
}

#[tokio::test]
async fn registry_referential_errors_are_invalid_changes() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    store
        .change_registry("test".into(), 0, base_registry())
        .await
        .expect("base");
    let before = store.registry().await.expect("registry");

    let msg = expect_invalid(
        store
            .change_registry(
                "test".into(),
                0,
                vec![RegistryChange::PutSystem(system("SYS_X", "NO_SUCH_AGENCY"))],
            )
            .await,
        "system of an unknown participant",
    );
    assert!(msg.contains("SYS_X"), "the message names the system: {msg}");

    let msg = expect_invalid(
        store
            .change_registry(
                "test".into(),
                0,
                vec![RegistryChange::Grant(grant("SYS_A", "NoSuchKind"))],
            )
            .await,
        "grant of an unknown kind",
    );
    assert!(
        msg.contains("NoSuchKind"),
        "the message names the kind: {msg}"
    );

    expect_invalid(
        store
            .change_registry(
                "test".into(),
                0,
                vec![RegistryChange::Grant(grant("NO_SUCH_SYS", KIND_ROOT))],
            )
            .await,
        "grant to an unknown system",
    );
    expect_invalid(
        store
            .change_registry(
                "test".into(),
                0,
                vec![RegistryChange::PutKind(kind("Orphan", "NO_SUCH_SYS"))],
            )
            .await,
        "kind of an unknown provider",
    );

    let msg = expect_invalid(
        store
            .change_registry(
                "test".into(),
                0,
                vec![RegistryChange::DeleteSystem {
                    mnemonic: "SYS_B".into(),
                }],
            )
            .await,
        "deleting a kind's provider",
    );
    assert!(msg.contains("SYS_B"), "the message names the system: {msg}");
    expect_invalid(
        store
            .change_registry(
                "test".into(),
                0,
                vec![RegistryChange::DeleteParticipant {
                    mnemonic: "P1".into(),
                }],
            )
            .await,
        "deleting a participant that owns a system",
    );
    expect_invalid(
        store
            .change_registry(
                "test".into(),
                0,
                vec![RegistryChange::DeleteKind {
                    namespace: KIND_NS.into(),
                    root_element: KIND_ROOT.into(),
                }],
            )
            .await,
        "deleting a granted kind",
    );
    expect_invalid(
        store
            .change_registry(
                "test".into(),
                0,
                vec![RegistryChange::PutParticipant(Participant {
                    mnemonic: " ".into(),
                    name: "blank".into(),
                })],
            )
            .await,
        "blank mnemonic",
    );

    assert_eq!(
        store.registry().await.expect("registry"),
        before,
        "no failed change wrote anything or bumped the version"
    );
}

#[tokio::test]
async fn registry_batch_is_all_or_none() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    store
        .change_registry("test".into(), 0, base_registry())
        .await
        .expect("base");
    let before = store.registry().await.expect("registry");

    // Valid changes first, the failing one last: none of them may stay.
    let result = store
        .change_registry(
            "test".into(),
            0,
            vec![
                RegistryChange::PutParticipant(participant("P3")),
                RegistryChange::PutSystem(system("SYS_C", "P3")),
                RegistryChange::PutKind(kind("Certificate", "SYS_C")),
                RegistryChange::Revoke(grant("SYS_A", KIND_ROOT)),
                RegistryChange::Grant(grant("SYS_C", "NoSuchKind")),
            ],
        )
        .await;
    expect_invalid(result, "batch ending in a bad grant");
    assert_eq!(store.registry().await.expect("registry"), before);
    assert_eq!(store.registry_version().await.expect("version"), 1);

    // The same with a NotFound at the end.
    let result = store
        .change_registry(
            "test".into(),
            0,
            vec![
                RegistryChange::PutParticipant(participant("P3")),
                RegistryChange::DeleteParticipant {
                    mnemonic: "NOBODY".into(),
                },
            ],
        )
        .await;
    assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
    assert_eq!(store.registry().await.expect("registry"), before);

    // And the valid part alone then applies, as version 2.
    let v = store
        .change_registry(
            "test".into(),
            0,
            vec![
                RegistryChange::PutParticipant(participant("P3")),
                RegistryChange::PutSystem(system("SYS_C", "P3")),
            ],
        )
        .await
        .expect("valid part");
    assert_eq!(v, 2);
    let reg = store.registry().await.expect("registry");
    assert_eq!(reg.version, 2);
    assert_eq!(reg.participants.len(), 3);
    assert_eq!(reg.systems.len(), 3);
}

#[tokio::test]
async fn registry_deleting_something_unknown_is_not_found() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    store
        .change_registry("test".into(), 0, base_registry())
        .await
        .expect("base");
    let unknown = [
        RegistryChange::DeleteParticipant {
            mnemonic: "NOBODY".into(),
        },
        RegistryChange::DeleteSystem {
            mnemonic: "NO_SYS".into(),
        },
        RegistryChange::DeleteKind {
            namespace: KIND_NS.into(),
            root_element: "NoSuchKind".into(),
        },
        RegistryChange::Revoke(grant("SYS_B", KIND_ROOT)),
    ];
    for change in unknown {
        let result = store
            .change_registry("test".into(), 0, vec![change.clone()])
            .await;
        assert!(
            matches!(result, Err(StoreError::NotFound(_))),
            "{change:?}: {result:?}"
        );
    }
    assert_eq!(store.registry_version().await.expect("version"), 1);
}

/// `registry()` is one snapshot: its version and its content belong to the same commit,
/// even while changes are committed concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registry_read_is_one_snapshot_under_concurrent_changes() {
    const CHANGES: u64 = 300;
    let dir = TempDir::new().expect("tempdir");
    let store = open_shared(&dir);
    let base = store
        .change_registry("test".into(), 0, base_registry())
        .await
        .expect("base");

    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for k in 1..=CHANGES {
                let v = store
                    .change_registry(
                        "test".into(),
                        0,
                        vec![RegistryChange::PutParticipant(Participant {
                            mnemonic: "P_STRESS".into(),
                            name: format!("n{k}"),
                        })],
                    )
                    .await
                    .expect("change");
                assert_eq!(v, base + k);
            }
        })
    };
    let mut readers = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        readers.push(tokio::spawn(async move {
            let mut reads = 0u64;
            loop {
                let reg = store.registry().await.expect("registry");
                let stress = reg.participants.iter().find(|p| p.mnemonic == "P_STRESS");
                match stress {
                    None => assert_eq!(reg.version, base, "{reg:?}"),
                    Some(p) => assert_eq!(
                        p.name,
                        format!("n{}", reg.version - base),
                        "version {} read with the content of another version",
                        reg.version
                    ),
                }
                reads += 1;
                if reg.version == base + CHANGES {
                    return reads;
                }
            }
        }));
    }
    writer.await.expect("writer task");
    for r in readers {
        assert!(r.await.expect("reader task") > 0);
    }
}

// ---------------------------------------------------------------------------------------
// 2. Accept and idempotency
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn accept_then_same_sender_message_id_is_a_duplicate_of_the_first() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    let first = message(1, |m| m.attachments = vec![attachment(1, 0)]);
    assert_eq!(
        store.accept(first.clone()).await.expect("accept"),
        AcceptOutcome::Accepted
    );
    let first_record = SentRecord {
        global_id: first.global_id,
        checksum: first.checksum,
        answer: first.answer.clone(),
    };

    // Same (sender system, MessageID), everything else different.
    let resend = message(2, |m| {
        m.sender_message_id = first.sender_message_id.clone();
        m.attachments = vec![attachment(2, 0)];
    });
    assert_ne!(resend.checksum, first.checksum);
    assert_ne!(resend.answer, first.answer);
    assert_eq!(
        store.accept(resend.clone()).await.expect("accept again"),
        AcceptOutcome::Duplicate(first_record.clone())
    );
    assert_eq!(
        store
            .find_sent("SYS_A", &first.sender_message_id)
            .await
            .expect("find_sent"),
        Some(first_record)
    );
    assert_eq!(
        store.find_sent("SYS_A", "msg-2").await.expect("find_sent"),
        None
    );
    assert_eq!(
        store
            .find_sent("SYS_B", &first.sender_message_id)
            .await
            .expect("find_sent"),
        None,
        "the MessageID is scoped by the sender system"
    );

    // The duplicate wrote nothing.
    assert_eq!(
        store.message_info(resend.global_id).await.expect("info"),
        None
    );
    assert_eq!(store.card(resend.global_id).await.expect("card"), None);
    assert_eq!(
        store.live_attachment_paths().await.expect("paths"),
        vec![attachment(1, 0).path]
    );

    // The same MessageID from another sender system is another message.
    let other_sender = message(3, |m| {
        m.sender_system = "SYS_C".into();
        m.sender_message_id = first.sender_message_id.clone();
    });
    assert_eq!(
        store.accept(other_sender).await.expect("accept"),
        AcceptOutcome::Accepted
    );

    let info = store
        .message_info(first.global_id)
        .await
        .expect("info")
        .expect("the first message");
    assert_eq!(
        info,
        MessageInfo {
            global_id: first.global_id,
            queue: Queue::Requests,
            sender_system: "SYS_A".into(),
            sender_message_id: first.sender_message_id.clone(),
            recipient_system: "SYS_B".into(),
            kind_namespace: KIND_NS.into(),
            kind_root: KIND_ROOT.into(),
            original_global_id: None,
            acknowledged: false,
            received_at_ms: first.received_at_ms,
            due_at_ms: None,
            closed_at_ms: None,
        }
    );
    assert_eq!(
        store.card(first.global_id).await.expect("card"),
        Some(first.card.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_accepts_have_exactly_one_winner() {
    let dir = TempDir::new().expect("tempdir");
    let store = open_shared(&dir);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64u128 {
        let store = store.clone();
        // Each attempt has its own global ID, checksum and answer: the winner's must be
        // what every loser is told.
        let m = message(1000 + i, |m| m.sender_message_id = "same-message-id".into());
        tasks.spawn(async move {
            let id = m.global_id;
            (id, store.accept(m).await.expect("accept"))
        });
    }
    let mut winners = Vec::new();
    let mut duplicates = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("task") {
            (id, AcceptOutcome::Accepted) => winners.push(id),
            (_, AcceptOutcome::Duplicate(record)) => duplicates.push(record),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one acceptance");
    assert_eq!(duplicates.len(), 63);
    let winner = winners[0];
    let n = u128::from_be_bytes(winner);
    let expected = SentRecord {
        global_id: winner,
        checksum: digest(n, 0xC5),
        answer: format!("<SendRequestResponse n=\"{n}\"/>").into_bytes(),
    };
    assert!(duplicates.iter().all(|d| *d == expected), "{duplicates:?}");
    assert_eq!(
        store
            .find_sent("SYS_A", "same-message-id")
            .await
            .expect("find_sent"),
        Some(expected)
    );
    assert_eq!(
        store.highest_global_id().await.expect("highest"),
        Some(winner)
    );
    let counts = store.queue_counts("SYS_B").await.expect("counts");
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].pending, 1);
}

// ---------------------------------------------------------------------------------------
// 3. Group commit
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn group_commit_of_500_concurrent_accepts() {
    const N: u128 = 500;
    let dir = TempDir::new().expect("tempdir");
    let store = open_shared(&dir);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 1..=N {
        let store = store.clone();
        tasks.spawn(async move {
            let m = message(n, |m| m.attachments = vec![attachment(n, 0)]);
            store.accept(m).await
        });
    }
    while let Some(joined) = tasks.join_next().await {
        assert_eq!(
            joined.expect("task").expect("accept"),
            AcceptOutcome::Accepted
        );
    }
    for n in 1..=N {
        let info = store
            .message_info(gid(n))
            .await
            .expect("info")
            .unwrap_or_else(|| panic!("message {n} is missing"));
        assert_eq!(info.sender_message_id, format!("msg-{n}"));
        assert!(!info.acknowledged);
        assert!(store.card(gid(n)).await.expect("card").is_some());
    }
    assert_eq!(
        store.highest_global_id().await.expect("highest"),
        Some(gid(N))
    );
    assert_eq!(
        store.queue_counts("SYS_B").await.expect("counts"),
        vec![QueueCount {
            queue: Queue::Requests,
            kind_namespace: KIND_NS.into(),
            kind_root: KIND_ROOT.into(),
            pending: N as u64,
        }]
    );
    assert_eq!(
        store.live_attachment_paths().await.expect("paths").len(),
        N as usize
    );
}

/// An accept whose card cannot be written (its card's global ID is already taken) after
/// its message and attachment rows were: the savepoint must take those back too.
fn colliding_accept(n: u128, taken: GlobalId) -> NewMessage {
    let mut m = message(n, |m| {
        m.sender_message_id = format!("colliding-{n}");
        m.attachments = vec![attachment(n, 0), attachment(n, 1)];
    });
    m.card.global_id = taken;
    m
}

fn assert_left_no_row(conn: &rusqlite::Connection, m: &NewMessage) {
    let smid = m.sender_message_id.as_str();
    assert_eq!(
        count(
            conn,
            "SELECT count(*) FROM messages WHERE sender_message_id = ?1",
            smid
        ),
        0,
        "{smid}: messages row"
    );
    assert_eq!(
        count(
            conn,
            "SELECT count(*) FROM cards WHERE sender_message_id = ?1",
            smid
        ),
        0,
        "{smid}: card row"
    );
    for a in &m.attachments {
        assert_eq!(
            count(
                conn,
                "SELECT count(*) FROM attachments WHERE path = ?1",
                &a.path
            ),
            0,
            "{smid}: attachment row {}",
            a.path
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn failing_accepts_among_concurrent_ones_fail_alone() {
    let dir = TempDir::new().expect("tempdir");
    let store = open_shared(&dir);
    let existing = message(1, |_| ());
    store.accept(existing.clone()).await.expect("existing");

    let mut tasks = tokio::task::JoinSet::new();
    let mut failing = Vec::new();
    for n in 2..=301u128 {
        let m = if n % 50 == 0 {
            let m = colliding_accept(n, existing.global_id);
            failing.push(m.clone());
            m
        } else {
            message(n, |m| m.attachments = vec![attachment(n, 0)])
        };
        let store = store.clone();
        tasks.spawn(async move { (n, store.accept(m).await) });
    }
    while let Some(joined) = tasks.join_next().await {
        let (n, result) = joined.expect("task");
        if n % 50 == 0 {
            assert!(
                matches!(result, Err(StoreError::Database(_))),
                "{n}: {result:?}"
            );
        } else {
            assert_eq!(result.expect("accept"), AcceptOutcome::Accepted, "{n}");
        }
    }
    assert_eq!(failing.len(), 6);

    let conn = raw_connection(&dir);
    for m in &failing {
        assert_left_no_row(&conn, m);
        assert_eq!(
            store
                .find_sent("SYS_A", &m.sender_message_id)
                .await
                .expect("find_sent"),
            None
        );
        assert_eq!(store.message_info(m.global_id).await.expect("info"), None);
    }
    for n in (2..=301u128).filter(|n| n % 50 != 0) {
        assert!(
            store.message_info(gid(n)).await.expect("info").is_some(),
            "{n}"
        );
    }
    // The existing message's card is untouched.
    assert_eq!(
        store.card(existing.global_id).await.expect("card"),
        Some(existing.card.clone())
    );
    let live = store.live_attachment_paths().await.expect("paths");
    assert_eq!(live.len(), 300 - 6);
    assert_eq!(
        store.queue_counts("SYS_B").await.expect("counts")[0].pending,
        1 + 300 - 6
    );
}

/// Another connection (the CLI, another process) holds the write lock: the writer waits
/// for it (busy timeout) instead of failing, and what queued up meanwhile is committed as
/// one batch, in which the failing commands fail alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_wait_for_another_connections_lock_then_commit_as_one_batch() {
    const N: u128 = 200;
    let dir = TempDir::new().expect("tempdir");
    let store = open_shared(&dir);
    let existing = message(1, |_| ());
    store.accept(existing.clone()).await.expect("existing");

    let other = raw_connection(&dir);
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");

    // The first command reads (idempotency check) and then writes: it must wait for the
    // lock rather than fail. Staying pending while the lock is held is the point.
    let mut blocked = store.accept(message(2, |_| ()));
    if let Ok(result) = tokio::time::timeout(Duration::from_millis(300), &mut blocked).await {
        panic!("an accept finished while another connection held the write lock: {result:?}");
    }

    // The writer is now stuck on the lock; everything sent meanwhile queues up and forms
    // the next batch (N < MAX_BATCH), with failing commands in its middle.
    assert!((N as usize) < MAX_BATCH);
    let mut messages = Vec::new();
    for n in 100..100 + N {
        messages.push(if n % 40 == 0 {
            colliding_accept(n, existing.global_id)
        } else {
            message(n, |m| m.attachments = vec![attachment(n, 0)])
        });
    }
    let mut futures: Vec<Pin<Box<dyn Future<Output = Result<AcceptOutcome>> + Send + '_>>> =
        messages.iter().map(|m| store.accept(m.clone())).collect();
    poll_each_once(&mut futures).await;

    other.execute_batch("ROLLBACK").expect("release the lock");
    assert_eq!(
        blocked.await.expect("the blocked accept"),
        AcceptOutcome::Accepted
    );
    let results = futures_util::future::join_all(futures).await;

    let conn = raw_connection(&dir);
    let mut failed = 0;
    for (m, result) in messages.iter().zip(results) {
        if m.sender_message_id.starts_with("colliding-") {
            assert!(
                matches!(result, Err(StoreError::Database(_))),
                "{}: {result:?}",
                m.sender_message_id
            );
            assert_left_no_row(&conn, m);
            failed += 1;
        } else {
            assert_eq!(
                result.expect("accept"),
                AcceptOutcome::Accepted,
                "{}",
                m.sender_message_id
            );
            assert!(store
                .message_info(m.global_id)
                .await
                .expect("info")
                .is_some());
        }
    }
    assert_eq!(failed, 5);
    assert_eq!(
        store.queue_counts("SYS_B").await.expect("counts")[0].pending,
        2 + N as u64 - 5
    );
}

// ---------------------------------------------------------------------------------------
// 4. Lease and Ack
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn lease_is_oldest_first_per_recipient_and_queue() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    // Received out of acceptance order; two at the same millisecond (acceptance order
    // breaks the tie).
    let m_late = message(1, |m| m.received_at_ms = T0 + 300);
    let m_early = message(2, |m| m.received_at_ms = T0 + 100);
    let m_tie_a = message(3, |m| m.received_at_ms = T0 + 200);
    let m_tie_b = message(4, |m| m.received_at_ms = T0 + 200);
    let other_queue = message(5, |m| {
        m.queue = Queue::Responses;
        m.received_at_ms = T0;
    });
    let other_recipient = message(6, |m| {
        m.recipient_system = "SYS_C".into();
        m.received_at_ms = T0;
    });
    for m in [
        &m_late,
        &m_early,
        &m_tie_a,
        &m_tie_b,
        &other_queue,
        &other_recipient,
    ] {
        assert_eq!(
            store.accept(m.clone()).await.expect("accept"),
            AcceptOutcome::Accepted
        );
    }

    let now = T0 + 1_000;
    let mut order = Vec::new();
    while let Some(d) = store
        .lease(lease_req("SYS_B", Queue::Requests, now))
        .await
        .expect("lease")
    {
        assert_eq!(d.recipient_system, "SYS_B");
        assert_eq!(d.queue, Queue::Requests);
        order.push(d.global_id);
    }
    assert_eq!(
        order,
        vec![
            m_early.global_id,
            m_tie_a.global_id,
            m_tie_b.global_id,
            m_late.global_id
        ]
    );

    // SYS_B's other queue, and SYS_C's message, are untouched.
    let d = store
        .lease(lease_req("SYS_B", Queue::Responses, now))
        .await
        .expect("lease")
        .expect("the response");
    assert_eq!(d.global_id, other_queue.global_id);
    assert_eq!(d.delivery_count, 1);
    let d = store
        .lease(lease_req("SYS_C", Queue::Requests, now))
        .await
        .expect("lease")
        .expect("SYS_C's message");
    assert_eq!(d.global_id, other_recipient.global_id);
    assert_eq!(d.delivery_count, 1, "no other recipient leased it before");
    assert!(store
        .lease(lease_req("SYS_C", Queue::Requests, now))
        .await
        .expect("lease")
        .is_none());
    assert!(store
        .lease(lease_req("SYS_NOBODY", Queue::Requests, now + 10_000_000))
        .await
        .expect("lease")
        .is_none());
}

#[tokio::test]
async fn leased_message_is_invisible_until_visibility_expires() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    let m = message(7, |m| {
        m.attachments = vec![attachment(7, 0), attachment(7, 1)];
        m.original_global_id = Some(gid(99));
    });
    store.accept(m.clone()).await.expect("accept");

    let t1 = T0 + 1_000;
    let first = store
        .lease(LeaseRequest {
            visibility_ms: 30_000,
            ..lease_req("SYS_B", Queue::Requests, t1)
        })
        .await
        .expect("lease")
        .expect("the message");
    assert_eq!(first.global_id, m.global_id);
    assert_eq!(first.payload, m.payload);
    assert_eq!(first.attachments, m.attachments);
    assert_eq!(first.sender_system, m.sender_system);
    assert_eq!(first.sender_message_id, m.sender_message_id);
    assert_eq!(first.kind_namespace, KIND_NS);
    assert_eq!(first.kind_root, KIND_ROOT);
    assert_eq!(first.original_global_id, Some(gid(99)));
    assert_eq!(first.checksum, m.checksum);
    assert_eq!(first.received_at_ms, m.received_at_ms);
    assert_eq!(first.delivery_count, 1);
    assert_eq!(first.first_delivered_at_ms, t1);

    for now in [t1, t1 + 1, t1 + 29_999] {
        assert!(
            store
                .lease(lease_req("SYS_B", Queue::Requests, now))
                .await
                .expect("lease")
                .is_none(),
            "visible again at {now}"
        );
    }

    let t2 = t1 + 30_000;
    let second = store
        .lease(lease_req("SYS_B", Queue::Requests, t2))
        .await
        .expect("lease")
        .expect("visible again");
    assert_eq!(second.global_id, m.global_id);
    assert_eq!(second.delivery_count, 2);
    assert_eq!(second.first_delivered_at_ms, t1, "the first delivery stays");
    assert_eq!(second.payload, m.payload);
    assert_eq!(second.attachments, m.attachments);
    assert!(store
        .lease(lease_req("SYS_B", Queue::Requests, t2 + 29_999))
        .await
        .expect("lease")
        .is_none());
}

#[tokio::test]
async fn lease_selector_matches_content_root_or_kind() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    // A response: its kind is the request's, its content root its own.
    let alpha = message(1, |m| {
        m.queue = Queue::Responses;
        m.content_namespace = "urn:content".into();
        m.content_root = "Alpha".into();
    });
    let beta = message(2, |m| {
        m.queue = Queue::Responses;
        m.kind_root = "OtherKind".into();
        m.content_namespace = "urn:content".into();
        m.content_root = "Beta".into();
    });
    store.accept(alpha.clone()).await.expect("accept");
    store.accept(beta.clone()).await.expect("accept");
    let now = T0 + 1_000;
    let select = |ns: &str, root: &str| LeaseRequest {
        selector: Some((ns.into(), root.into())),
        ..lease_req("SYS_B", Queue::Responses, now)
    };

    // Namespace and local name must match together, of the same root.
    for (ns, root) in [
        ("urn:content", KIND_ROOT),
        (KIND_NS, "Alpha"),
        ("urn:other", "Beta"),
        ("urn:content", "Gamma"),
    ] {
        assert!(
            store
                .lease(select(ns, root))
                .await
                .expect("lease")
                .is_none(),
            "{{{ns}}}{root} matched"
        );
    }
    // By content root, skipping the older message.
    let d = store
        .lease(select("urn:content", "Beta"))
        .await
        .expect("lease")
        .expect("beta by content root");
    assert_eq!(d.global_id, beta.global_id);
    // By kind.
    let d = store
        .lease(select(KIND_NS, KIND_ROOT))
        .await
        .expect("lease")
        .expect("alpha by kind");
    assert_eq!(d.global_id, alpha.global_id);
    assert!(store
        .lease(select(KIND_NS, KIND_ROOT))
        .await
        .expect("lease")
        .is_none());

    // Visible again: by kind "OtherKind" and by content root "Alpha".
    let later = now + 30_000;
    let d = store
        .lease(LeaseRequest {
            now_ms: later,
            ..select(KIND_NS, "OtherKind")
        })
        .await
        .expect("lease")
        .expect("beta by kind");
    assert_eq!(d.global_id, beta.global_id);
    let d = store
        .lease(LeaseRequest {
            now_ms: later,
            ..select("urn:content", "Alpha")
        })
        .await
        .expect("lease")
        .expect("alpha by content root");
    assert_eq!(d.global_id, alpha.global_id);
    assert_eq!(d.delivery_count, 2);
}

#[tokio::test]
async fn ack_releases_acknowledges_and_updates_the_card() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    let m = message(11, |m| {
        m.attachments = vec![attachment(11, 0), attachment(11, 1)]
    });
    let neighbour = message(12, |m| m.attachments = vec![attachment(12, 0)]);
    store.accept(m.clone()).await.expect("accept");
    store.accept(neighbour.clone()).await.expect("accept");

    let t1 = T0 + 1_000;
    let d = store
        .lease(lease_req("SYS_B", Queue::Requests, t1))
        .await
        .expect("lease")
        .expect("m");
    assert_eq!(d.global_id, m.global_id);

    // A negative Ack makes it visible at once, long before its lease would expire.
    let t2 = t1 + 5;
    assert_eq!(
        store
            .ack(ack_cmd("SYS_B", m.global_id, false, t2))
            .await
            .expect("ack"),
        AckOutcome::Released
    );
    // Both are visible at t2 now (the neighbour was never leased).
    let mut visible = Vec::new();
    while let Some(d) = store
        .lease(lease_req("SYS_B", Queue::Requests, t2))
        .await
        .expect("lease")
    {
        visible.push(d);
    }
    assert_eq!(visible.len(), 2, "{visible:?}");
    let d = visible
        .iter()
        .find(|d| d.global_id == m.global_id)
        .expect("the released message is visible at once");
    assert_eq!(d.delivery_count, 2);
    assert_eq!(d.first_delivered_at_ms, t1);

    // Only its recipient may Ack it; an unknown ID is not found.
    assert_eq!(
        store
            .ack(ack_cmd("SYS_A", m.global_id, true, t2))
            .await
            .expect("ack"),
        AckOutcome::NotFound
    );
    assert_eq!(
        store
            .ack(ack_cmd("SYS_B", gid(424_242), true, t2))
            .await
            .expect("ack"),
        AckOutcome::NotFound
    );
    assert!(
        !store
            .message_info(m.global_id)
            .await
            .expect("info")
            .expect("m")
            .acknowledged
    );

    let t3 = t2 + 10;
    let registration = ReceiverRegistration {
        number: "IN-2023/42".into(),
        registered_at_ms: t3 - 1,
    };
    let outcome = store
        .ack(AckCommand {
            receiver_registration: Some(registration.clone()),
            acked_status: "delivered".into(),
            ..ack_cmd("SYS_B", m.global_id, true, t3)
        })
        .await
        .expect("ack");
    assert_eq!(
        outcome,
        AckOutcome::Acknowledged {
            attachments: vec![attachment(11, 0).path, attachment(11, 1).path]
        }
    );

    // Never leased again, whatever the time: only the neighbour comes back.
    let far = t3 + 1_000_000_000;
    for now in [far, far + 1_000_000, far + 2_000_000] {
        let d = store
            .lease(lease_req("SYS_B", Queue::Requests, now))
            .await
            .expect("lease")
            .expect("the neighbour");
        assert_eq!(d.global_id, neighbour.global_id, "at {now}");
        assert!(store
            .lease(lease_req("SYS_B", Queue::Requests, now))
            .await
            .expect("lease")
            .is_none());
    }

    for accepted in [true, false] {
        assert_eq!(
            store
                .ack(ack_cmd("SYS_B", m.global_id, accepted, far))
                .await
                .expect("ack"),
            AckOutcome::AlreadyAcknowledged
        );
    }

    let info = store
        .message_info(m.global_id)
        .await
        .expect("info")
        .expect("m");
    assert!(info.acknowledged);
    assert_eq!(
        store.live_attachment_paths().await.expect("paths"),
        vec![attachment(12, 0).path],
        "only the unacknowledged neighbour's attachment is live"
    );

    let card = store.card(m.global_id).await.expect("card").expect("card");
    assert_eq!(card.status, "delivered");
    assert_eq!(
        card.details["receiver_registration"],
        json!({ "number": "IN-2023/42", "registered_at_ms": t3 - 1 })
    );
    assert_eq!(card.details["payload_size"], json!(m.payload.len()));
    assert_eq!(card.sender_message_id, m.sender_message_id);
    assert_eq!(card.checksum, m.checksum);
    // The neighbour's card is not touched.
    assert_eq!(
        store.card(neighbour.global_id).await.expect("card"),
        Some(neighbour.card.clone())
    );

    // The idempotency record survives the Ack.
    assert_eq!(
        store
            .find_sent("SYS_A", &m.sender_message_id)
            .await
            .expect("find_sent")
            .map(|r| r.global_id),
        Some(m.global_id)
    );
}

#[tokio::test]
async fn ack_enqueues_its_messages_only_when_it_takes_effect() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    let request = message(21, |_| ());
    store.accept(request.clone()).await.expect("accept");
    let status = |n: u128| {
        message(n, |s| {
            s.queue = Queue::Statuses;
            s.sender_system = "GATEWAY".into();
            s.sender_message_id = format!("status-{n}");
            s.recipient_system = "SYS_A".into();
            s.original_global_id = Some(request.global_id);
        })
    };
    let now = T0 + 1_000;
    let with_status = |recipient: &str, id: GlobalId, accepted: bool, n: u128| AckCommand {
        then_enqueue: vec![status(n)],
        ..ack_cmd(recipient, id, accepted, now)
    };

    // Not found, wrong recipient, released: nothing enqueued.
    for (recipient, id, accepted, n) in [
        ("SYS_B", gid(555), true, 31),
        ("SYS_C", request.global_id, true, 32),
        ("SYS_B", request.global_id, false, 33),
    ] {
        let outcome = store
            .ack(with_status(recipient, id, accepted, n))
            .await
            .expect("ack");
        assert_ne!(
            std::mem::discriminant(&outcome),
            std::mem::discriminant(&AckOutcome::Acknowledged {
                attachments: Vec::new()
            })
        );
        assert_eq!(store.message_info(gid(n)).await.expect("info"), None, "{n}");
    }
    assert!(store
        .queue_counts("SYS_A")
        .await
        .expect("counts")
        .is_empty());

    // The Ack that takes effect enqueues its status in the same transaction.
    assert_eq!(
        store
            .ack(with_status("SYS_B", request.global_id, true, 34))
            .await
            .expect("ack"),
        AckOutcome::Acknowledged {
            attachments: Vec::new()
        }
    );
    assert_eq!(
        store.queue_counts("SYS_A").await.expect("counts"),
        vec![QueueCount {
            queue: Queue::Statuses,
            kind_namespace: KIND_NS.into(),
            kind_root: KIND_ROOT.into(),
            pending: 1
        }]
    );
    let d = store
        .lease(lease_req("SYS_A", Queue::Statuses, now))
        .await
        .expect("lease")
        .expect("the status");
    assert_eq!(d.global_id, gid(34));
    assert_eq!(d.original_global_id, Some(request.global_id));
    assert!(store.card(gid(34)).await.expect("card").is_some());

    // A repeated Ack enqueues nothing more.
    assert_eq!(
        store
            .ack(with_status("SYS_B", request.global_id, true, 35))
            .await
            .expect("ack"),
        AckOutcome::AlreadyAcknowledged
    );
    assert_eq!(store.message_info(gid(35)).await.expect("info"), None);
    assert_eq!(
        store.queue_counts("SYS_A").await.expect("counts")[0].pending,
        1
    );
}

#[tokio::test]
async fn accepting_an_answer_updates_the_original_card_status() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    let request = message(1, |_| ());
    store.accept(request.clone()).await.expect("accept");
    let response = message(2, |m| {
        m.queue = Queue::Responses;
        m.sender_system = "SYS_B".into();
        m.recipient_system = "SYS_A".into();
        m.original_global_id = Some(request.global_id);
        m.original_status = Some("answered".into());
    });
    store.accept(response.clone()).await.expect("accept");
    assert_eq!(
        store
            .card(request.global_id)
            .await
            .expect("card")
            .expect("card")
            .status,
        "answered"
    );
    let response_card = store
        .card(response.global_id)
        .await
        .expect("card")
        .expect("card");
    assert_eq!(response_card, response.card);
    assert_eq!(response_card.original_global_id, Some(request.global_id));
}

// ---------------------------------------------------------------------------------------
// 5. Payload erasure
// ---------------------------------------------------------------------------------------

const MARKER: &[u8] = b"MEZHVED-ERASE-ME-0c7f3a9e51d2";

/// A 64 KiB payload made of the marker, accepted, leased and acknowledged; returns the
/// card as it was before the Ack.
async fn accept_lease_and_ack_marked(store: &SqliteStore, dir: &Path) -> Card {
    let payload: Vec<u8> = MARKER.iter().copied().cycle().take(64 * 1024).collect();
    let m = message(77, |m| {
        m.payload = payload;
        m.attachments = vec![attachment(77, 0)];
    });
    assert!(!contains(&m.answer, MARKER));
    assert!(!contains(m.card.details.to_string().as_bytes(), MARKER));
    store.accept(m.clone()).await.expect("accept");
    let card = store.card(m.global_id).await.expect("card").expect("card");

    // The scan does see the payload while it is stored.
    assert!(
        !files_containing(dir, MARKER).is_empty(),
        "the marker is not found in any file before the Ack: {:?}",
        database_files(dir)
    );

    let now = T0 + 1_000;
    let d = store
        .lease(lease_req("SYS_B", Queue::Requests, now))
        .await
        .expect("lease")
        .expect("the marked message");
    assert_eq!(d.payload, m.payload);
    let outcome = store
        .ack(AckCommand {
            receiver_registration: Some(ReceiverRegistration {
                number: "IN-77".into(),
                registered_at_ms: now,
            }),
            ..ack_cmd("SYS_B", m.global_id, true, now + 1)
        })
        .await
        .expect("ack");
    assert_eq!(
        outcome,
        AckOutcome::Acknowledged {
            attachments: vec![attachment(77, 0).path]
        }
    );
    card
}

/// The card row survives the erasure and holds no payload.
fn assert_card_kept_without_marker(dir: &TempDir, before: &Card) {
    let conn = raw_connection(dir);
    let (smid, status, details): (String, String, String) = conn
        .query_row(
            "SELECT sender_message_id, status, details FROM cards WHERE global_id = ?1",
            [&before.global_id[..]],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("the card row");
    assert_eq!(smid, before.sender_message_id);
    assert_eq!(status, "delivered");
    assert!(!contains(details.as_bytes(), MARKER));
    let payload_left: i64 = conn
        .query_row(
            "SELECT count(*) FROM messages WHERE payload IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("count payloads");
    assert_eq!(payload_left, 0);
}

#[tokio::test]
async fn acknowledged_payload_is_in_no_file_after_close() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    let card = accept_lease_and_ack_marked(&store, dir.path()).await;
    store.close();
    let hits = files_containing(dir.path(), MARKER);
    assert!(
        hits.is_empty(),
        "the acknowledged payload survives in {hits:?} (files: {:?})",
        database_files(dir.path())
    );
    drop(store);

    assert_card_kept_without_marker(&dir, &card);
    let store = open(&dir);
    let after = store
        .card(card.global_id)
        .await
        .expect("card")
        .expect("the card after reopening");
    assert_eq!(after.status, "delivered");
    assert_eq!(after.details["receiver_registration"]["number"], "IN-77");
    assert_eq!(
        Card {
            status: card.status.clone(),
            details: card.details.clone(),
            ..after.clone()
        },
        card,
        "the card is otherwise unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_payload_is_erased_from_all_files_while_open() {
    let dir = TempDir::new().expect("tempdir");
    let store = SqliteStore::open(
        &db_path(&dir),
        SqliteOptions {
            erase_interval: Duration::from_millis(50),
            ..Default::default()
        },
    )
    .expect("open");
    let card = accept_lease_and_ack_marked(&store, dir.path()).await;

    // Waiting for the writer's background WAL truncation, not asserting a timing: up to
    // ~5 s in 10 ms steps.
    let mut hits = files_containing(dir.path(), MARKER);
    for _ in 0..500 {
        if hits.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        hits = files_containing(dir.path(), MARKER);
    }
    assert!(
        hits.is_empty(),
        "the acknowledged payload still survives in {hits:?} (files: {:?})",
        database_files(dir.path())
    );

    let after = store
        .card(card.global_id)
        .await
        .expect("card")
        .expect("the card stays");
    assert_eq!(after.global_id, card.global_id);
    assert!(!contains(after.details.to_string().as_bytes(), MARKER));
    assert_card_kept_without_marker(&dir, &card);
    // The store keeps working.
    store.accept(message(78, |_| ())).await.expect("accept");
}

// ---------------------------------------------------------------------------------------
// 6. Reopen
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn reopening_keeps_data_and_registry() {
    let dir = TempDir::new().expect("tempdir");
    let (registry, acked, pending) = {
        let store = open(&dir);
        store
            .change_registry("test".into(), 0, base_registry())
            .await
            .expect("base");
        store
            .change_registry(
                "test".into(),
                0,
                vec![RegistryChange::PutParticipant(participant("P3"))],
            )
            .await
            .expect("second");
        for n in [5u128, 900, 17] {
            store
                .accept(message(n, |m| m.attachments = vec![attachment(n, 0)]))
                .await
                .expect("accept");
        }
        let d = store
            .lease(lease_req("SYS_B", Queue::Requests, T0 + 1_000))
            .await
            .expect("lease")
            .expect("message 5");
        assert_eq!(d.global_id, gid(5));
        store
            .ack(ack_cmd("SYS_B", gid(5), true, T0 + 1_001))
            .await
            .expect("ack");
        // Leased but not acknowledged: the lease survives too.
        let d = store
            .lease(lease_req("SYS_B", Queue::Requests, T0 + 2_000))
            .await
            .expect("lease")
            .expect("message 17");
        assert_eq!(d.global_id, gid(17));
        let registry = store.registry().await.expect("registry");
        store.close();
        (registry, gid(5), gid(17))
    };
    assert_eq!(registry.version, 2);

    let conn = raw_connection(&dir);
    let user_version: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    drop(conn);

    for round in 0..2 {
        let store = open(&dir);
        assert_eq!(
            store.registry().await.expect("registry"),
            registry,
            "{round}"
        );
        assert_eq!(store.registry_version().await.expect("version"), 2);
        assert_eq!(
            store.highest_global_id().await.expect("highest"),
            Some(gid(900))
        );
        assert!(
            store
                .message_info(acked)
                .await
                .expect("info")
                .expect("acked")
                .acknowledged
        );
        assert!(
            !store
                .message_info(pending)
                .await
                .expect("info")
                .expect("pending")
                .acknowledged
        );
        assert_eq!(
            store.find_sent("SYS_A", "msg-5").await.expect("find_sent"),
            Some(SentRecord {
                global_id: gid(5),
                checksum: digest(5, 0xC5),
                answer: b"<SendRequestResponse n=\"5\"/>".to_vec(),
            })
        );
        assert_eq!(
            store.accept(message(5, |_| ())).await.expect("resend"),
            AcceptOutcome::Duplicate(SentRecord {
                global_id: gid(5),
                checksum: digest(5, 0xC5),
                answer: b"<SendRequestResponse n=\"5\"/>".to_vec(),
            })
        );
        let mut live = store.live_attachment_paths().await.expect("paths");
        live.sort();
        assert_eq!(live, vec![attachment(17, 0).path, attachment(900, 0).path]);
        assert_eq!(
            store.queue_counts("SYS_B").await.expect("counts")[0].pending,
            2
        );
        // Message 17 is still leased until T0 + 32_000: 900 comes first, then nothing.
        if round == 0 {
            let d = store
                .lease(lease_req("SYS_B", Queue::Requests, T0 + 3_000))
                .await
                .expect("lease")
                .expect("message 900");
            assert_eq!(d.global_id, gid(900));
            assert!(store
                .lease(lease_req("SYS_B", Queue::Requests, T0 + 3_000))
                .await
                .expect("lease")
                .is_none());
        }
        store.close();
    }

    let conn = raw_connection(&dir);
    let again: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(again, user_version, "no migration ran again");
    assert!(user_version >= 1);
}

#[tokio::test]
async fn highest_global_id_of_an_empty_store_is_none() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    assert_eq!(store.highest_global_id().await.expect("highest"), None);
    store.accept(message(3, |_| ())).await.expect("accept");
    store.accept(message(2, |_| ())).await.expect("accept");
    assert_eq!(
        store.highest_global_id().await.expect("highest"),
        Some(gid(3))
    );
}

// ---------------------------------------------------------------------------------------
// 7. Queue counts and live attachments
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn queue_counts_per_queue_and_kind_and_live_attachment_paths() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    let mut n = 0u128;
    let mut next = |edit: &dyn Fn(&mut NewMessage)| {
        n += 1;
        let k = n;
        message(k, |m| {
            m.attachments = vec![attachment(k, 0)];
            edit(m);
        })
    };
    let mut all = Vec::new();
    for _ in 0..3 {
        all.push(next(&|_| ()));
    }
    for _ in 0..2 {
        all.push(next(&|m| m.kind_root = "DriverLicense".into()));
    }
    all.push(next(&|m| m.queue = Queue::Responses));
    all.push(next(&|m| m.queue = Queue::Statuses));
    all.push(next(&|m| m.recipient_system = "SYS_C".into()));
    for m in &all {
        store.accept(m.clone()).await.expect("accept");
    }
    let qc = |queue, root: &str, pending| QueueCount {
        queue,
        kind_namespace: KIND_NS.into(),
        kind_root: root.into(),
        pending,
    };
    assert_eq!(
        store.queue_counts("SYS_B").await.expect("counts"),
        vec![
            qc(Queue::Requests, "DriverLicense", 2),
            qc(Queue::Requests, KIND_ROOT, 3),
            qc(Queue::Responses, KIND_ROOT, 1),
            qc(Queue::Statuses, KIND_ROOT, 1),
        ]
    );
    assert_eq!(
        store.queue_counts("SYS_C").await.expect("counts"),
        vec![qc(Queue::Requests, KIND_ROOT, 1)]
    );
    assert!(store
        .queue_counts("SYS_Z")
        .await
        .expect("counts")
        .is_empty());
    let mut live = store.live_attachment_paths().await.expect("paths");
    live.sort();
    let mut expected: Vec<String> = all.iter().map(|m| m.attachments[0].path.clone()).collect();
    expected.sort();
    assert_eq!(live, expected);

    // A leased message is still pending; an acknowledged one is not, and its attachment
    // is garbage.
    let now = T0 + 1_000;
    let first = store
        .lease(lease_req("SYS_B", Queue::Requests, now))
        .await
        .expect("lease")
        .expect("a request");
    assert_eq!(first.global_id, all[0].global_id);
    assert_eq!(
        store.queue_counts("SYS_B").await.expect("counts")[1],
        qc(Queue::Requests, KIND_ROOT, 3)
    );
    store
        .ack(ack_cmd("SYS_B", all[0].global_id, true, now))
        .await
        .expect("ack");
    store
        .ack(ack_cmd("SYS_B", all[3].global_id, true, now))
        .await
        .expect("ack an unleased message");
    assert_eq!(
        store.queue_counts("SYS_B").await.expect("counts"),
        vec![
            qc(Queue::Requests, "DriverLicense", 1),
            qc(Queue::Requests, KIND_ROOT, 2),
            qc(Queue::Responses, KIND_ROOT, 1),
            qc(Queue::Statuses, KIND_ROOT, 1),
        ]
    );
    let mut live = store.live_attachment_paths().await.expect("paths");
    live.sort();
    let mut expected: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 0 && *i != 3)
        .map(|(_, m)| m.attachments[0].path.clone())
        .collect();
    expected.sort();
    assert_eq!(live, expected);
}

/// Queue depths and oldest ages for `/metrics` (per recipient and queue) and for the
/// monitoring API (per recipient and kind) from the same pending-age index: each sums
/// and takes the oldest over the other dimension, and acknowledged messages leave both.
#[tokio::test]
async fn queue_ages_per_queue_and_per_kind_come_from_one_index() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    // SYS_B: two requests of the main kind (n=1 the oldest), one of another kind, and
    // a response of the main kind (another queue), older than all of them.
    let messages = [
        message(2, |_| {}),
        message(1, |m| m.received_at_ms = T0 + 100),
        message(3, |m| {
            m.kind_root = "OtherRequest".into();
            m.received_at_ms = T0 + 50;
        }),
        message(4, |m| {
            m.queue = Queue::Responses;
            m.received_at_ms = T0 + 10;
        }),
        message(5, |m| {
            m.recipient_system = "SYS_C".into();
            m.received_at_ms = T0 + 7;
        }),
    ];
    for m in messages {
        assert_eq!(
            store.accept(m).await.expect("accept"),
            AcceptOutcome::Accepted
        );
    }
    let depths = |s: &MetricsSnapshot| {
        s.queues
            .iter()
            .map(|q| {
                (
                    q.recipient_system.clone(),
                    q.queue,
                    q.pending,
                    q.oldest_received_at_ms,
                )
            })
            .collect::<Vec<_>>()
    };
    let m = store.metrics_snapshot().await.expect("metrics");
    assert_eq!(
        depths(&m),
        [
            ("SYS_B".to_string(), Queue::Requests, 3, Some(T0 + 2)),
            ("SYS_B".to_string(), Queue::Responses, 1, Some(T0 + 10)),
            ("SYS_C".to_string(), Queue::Requests, 1, Some(T0 + 7)),
        ]
    );
    let ages = |s: &MonitoringSnapshot| {
        let mut v = s
            .queues
            .iter()
            .map(|q| {
                (
                    q.recipient_system.clone(),
                    q.kind_root.clone(),
                    q.pending,
                    q.oldest_received_at_ms,
                )
            })
            .collect::<Vec<_>>();
        v.sort();
        v
    };
    let snap = store.monitoring_snapshot(0, 10).await.expect("snapshot");
    assert_eq!(
        ages(&snap),
        [
            (
                "SYS_B".to_string(),
                "OtherRequest".to_string(),
                1,
                Some(T0 + 50)
            ),
            ("SYS_B".to_string(), KIND_ROOT.to_string(), 3, Some(T0 + 2)),
            ("SYS_C".to_string(), KIND_ROOT.to_string(), 1, Some(T0 + 7)),
        ]
    );
    // The oldest request is taken and acknowledged: the next one is the oldest.
    let leased = store
        .lease(lease_req("SYS_B", Queue::Requests, T0 + 1_000))
        .await
        .expect("lease")
        .expect("a message");
    assert_eq!(leased.global_id, gid(2));
    store
        .ack(ack_cmd("SYS_B", gid(2), true, T0 + 1_001))
        .await
        .expect("ack");
    let m = store.metrics_snapshot().await.expect("metrics");
    assert_eq!(
        depths(&m)[0],
        ("SYS_B".to_string(), Queue::Requests, 2, Some(T0 + 50))
    );
    let snap = store.monitoring_snapshot(0, 10).await.expect("snapshot");
    assert_eq!(
        ages(&snap)[1],
        ("SYS_B".to_string(), KIND_ROOT.to_string(), 2, Some(T0 + 10))
    );
}
