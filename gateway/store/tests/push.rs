//! Push bookkeeping of the SQLite store (docs/push.md): which messages are pushed, the
//! lease an attempt holds, retries, the fallback to pull (after the last failure, and when
//! the last attempt was lost), and the registry's endpoint changes reaching the backlog.
//! Times are fixed milliseconds, as in the other store tests.

mod common;
use common::*;
use mezhved_store::*;
use serde_json::json;
use tempfile::TempDir;

const LEASE: i64 = 40_000;

fn system(mnemonic: &str, push_url: Option<&str>) -> InformationSystem {
    InformationSystem {
        mnemonic: mnemonic.into(),
        participant: "P".into(),
        name: format!("System {mnemonic}"),
        certificates: Vec::new(),
        push_url: push_url.map(str::to_string),
    }
}

/// SYS_B pushes; SYS_C pulls.
async fn registry(store: &dyn Store) {
    store
        .change_registry(
            "test".into(),
            T0,
            vec![
                RegistryChange::PutParticipant(Participant {
                    mnemonic: "P".into(),
                    name: "Agency".into(),
                }),
                RegistryChange::PutSystem(system("SYS_A", None)),
                RegistryChange::PutSystem(system("SYS_B", Some("https://b.example/push"))),
                RegistryChange::PutSystem(system("SYS_C", None)),
            ],
        )
        .await
        .expect("registry");
}

/// Message `n` to `recipient` in `queue`, received at T0 + n.
fn message(n: u128, recipient: &str, queue: Queue) -> NewMessage {
    let card = Card {
        global_id: gid(n),
        queue,
        sender_system: "SYS_A".into(),
        sender_message_id: format!("msg-{n}"),
        recipient_system: recipient.into(),
        kind_namespace: KIND_NS.into(),
        kind_root: KIND_ROOT.into(),
        original_global_id: None,
        checksum: digest(n, 1),
        received_at_ms: T0 + n as i64,
        status: "requestIsQueued".into(),
        test_message: false,
        details: json!({}),
    };
    NewMessage {
        global_id: gid(n),
        queue,
        sender_system: "SYS_A".into(),
        sender_message_id: format!("msg-{n}"),
        recipient_system: recipient.into(),
        kind_namespace: KIND_NS.into(),
        kind_root: KIND_ROOT.into(),
        content_namespace: KIND_NS.into(),
        content_root: KIND_ROOT.into(),
        original_global_id: None,
        checksum: digest(n, 1),
        received_at_ms: T0 + n as i64,
        eol_ms: None,
        payload: format!("<PassportRequest n=\"{n}\"/>").into_bytes(),
        attachments: Vec::new(),
        answer: Vec::new(),
        card,
        original_status: None,
        lifecycle: Default::default(),
    }
}

fn claim(systems: &[(&str, usize)], now_ms: i64) -> PushClaim {
    PushClaim {
        systems: systems.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
        now_ms,
        lease_ms: LEASE,
        max_attempts: 3,
    }
}

fn failed(n: u128, attempt: u32, now_ms: i64, retry_at_ms: Option<i64>) -> PushAttemptFailed {
    PushAttemptFailed {
        global_id: gid(n),
        recipient_system: "SYS_B".into(),
        queue: Queue::Requests,
        attempt,
        now_ms,
        error: "HTTP 503 from the endpoint".into(),
        error_class: "status".into(),
        retry_at_ms,
    }
}

async fn state(store: &dyn Store, n: u128) -> PushState {
    store
        .push_state(gid(n))
        .await
        .expect("push state")
        .expect("a message row")
}

async fn event_types(store: &dyn Store, n: u128) -> Vec<String> {
    store
        .journal_events_of(gid(n))
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

#[tokio::test]
async fn requests_and_responses_for_a_push_system_are_due_at_once_statuses_and_pull_systems_are_not(
) {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    registry(&store).await;
    for m in [
        message(1, "SYS_B", Queue::Requests),
        message(2, "SYS_B", Queue::Responses),
        message(3, "SYS_B", Queue::Statuses),
        message(4, "SYS_C", Queue::Requests),
    ] {
        store.accept(m).await.expect("accept");
    }
    assert_eq!(state(&store, 1).await.next_at_ms, Some(T0 + 1));
    assert_eq!(state(&store, 2).await.next_at_ms, Some(T0 + 2));
    assert_eq!(
        state(&store, 3).await.next_at_ms,
        None,
        "statuses are pulled"
    );
    assert_eq!(state(&store, 4).await.next_at_ms, None, "SYS_C pulls");
    assert_eq!(
        store
            .next_push_at(vec!["SYS_B".into(), "SYS_C".into()])
            .await
            .expect("next"),
        Some(T0 + 1)
    );

    // Room for one: the earliest due.
    let now = T0 + 10;
    let first = store
        .claim_push(claim(&[("SYS_B", 1), ("SYS_C", 4)], now))
        .await
        .expect("claim");
    assert!(first.fallen_back.is_empty());
    let ids: Vec<GlobalId> = first.deliveries.iter().map(|d| d.global_id).collect();
    assert_eq!(ids, vec![gid(1)]);
    let d = &first.deliveries[0];
    assert_eq!((d.push_attempt, d.delivery_count), (1, 1));
    assert_eq!(d.queue, Queue::Requests);
    assert_eq!(d.payload, b"<PassportRequest n=\"1\"/>");
    // In flight: no pull takes it, and it is due again only when the lease ends.
    assert!(store
        .lease(lease_req("SYS_B", Queue::Requests, now))
        .await
        .expect("lease")
        .is_none());
    let s = state(&store, 1).await;
    assert_eq!((s.attempts, s.next_at_ms), (1, Some(now + LEASE)));
    let second = store
        .claim_push(claim(&[("SYS_B", 4)], now))
        .await
        .expect("claim");
    let ids: Vec<GlobalId> = second.deliveries.iter().map(|d| d.global_id).collect();
    assert_eq!(ids, vec![gid(2)], "the response, not the leased request");
    assert_eq!(second.deliveries[0].queue, Queue::Responses);
    assert_eq!(
        store
            .next_push_at(vec!["SYS_B".into()])
            .await
            .expect("next"),
        Some(now + LEASE)
    );
    let types = event_types(&store, 1).await;
    assert_eq!(types, ["message.accepted", "message.delivered"]);
}

#[tokio::test]
async fn a_failed_attempt_releases_the_message_until_its_retry_and_stale_reports_are_ignored() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    registry(&store).await;
    store
        .accept(message(1, "SYS_B", Queue::Requests))
        .await
        .expect("accept");
    let now = T0 + 100;
    store
        .claim_push(claim(&[("SYS_B", 4)], now))
        .await
        .expect("claim");
    // A report of another attempt than the latest changes nothing.
    assert!(!store
        .push_failed(failed(1, 2, now, Some(now + 5_000)))
        .await
        .expect("stale"));
    assert!(store
        .push_failed(failed(1, 1, now + 1, Some(now + 5_000)))
        .await
        .expect("recorded"));
    let s = state(&store, 1).await;
    assert_eq!(s.attempts, 1);
    assert_eq!(s.next_at_ms, Some(now + 5_000));
    assert_eq!(s.last_error.as_deref(), Some("HTTP 503 from the endpoint"));
    assert_eq!(s.fallback_at_ms, None);
    // Not due before its retry.
    assert!(store
        .claim_push(claim(&[("SYS_B", 4)], now + 4_999))
        .await
        .expect("claim")
        .deliveries
        .is_empty());
    // Between attempts a pull may take it (at least once), and its lease then holds the
    // push back until it ends.
    let pulled = store
        .lease(lease_req("SYS_B", Queue::Requests, now + 2))
        .await
        .expect("lease")
        .expect("visible between attempts");
    assert_eq!(pulled.push_attempt, 0);
    assert!(store
        .claim_push(claim(&[("SYS_B", 4)], now + 5_000))
        .await
        .expect("claim")
        .deliveries
        .is_empty());
    assert_eq!(
        store
            .next_push_at(vec!["SYS_B".into()])
            .await
            .expect("next"),
        Some(now + 2 + 30_000),
        "the pull's lease"
    );
    let again = store
        .claim_push(claim(&[("SYS_B", 4)], now + 2 + 30_000))
        .await
        .expect("claim");
    assert_eq!(again.deliveries[0].push_attempt, 2);
    assert_eq!(again.deliveries[0].delivery_count, 3);
    let types = event_types(&store, 1).await;
    assert_eq!(
        types,
        [
            "message.accepted",
            "message.delivered",
            "message.push_failed",
            "message.delivered",
            "message.delivered"
        ]
    );
}

#[tokio::test]
async fn the_last_failure_falls_back_to_pull_and_push_stops() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    registry(&store).await;
    store
        .accept(message(1, "SYS_B", Queue::Requests))
        .await
        .expect("accept");
    let now = T0 + 100;
    store
        .claim_push(claim(&[("SYS_B", 4)], now))
        .await
        .expect("claim");
    assert!(store
        .push_failed(failed(1, 1, now + 1, None))
        .await
        .expect("recorded"));
    let s = state(&store, 1).await;
    assert_eq!((s.next_at_ms, s.fallback_at_ms), (None, Some(now + 1)));
    assert!(store
        .claim_push(claim(&[("SYS_B", 4)], now + 10_000_000))
        .await
        .expect("claim")
        .deliveries
        .is_empty());
    assert_eq!(
        store
            .next_push_at(vec!["SYS_B".into()])
            .await
            .expect("next"),
        None
    );
    // Visible to a pull at once.
    let pulled = store
        .lease(lease_req("SYS_B", Queue::Requests, now + 1))
        .await
        .expect("lease");
    assert_eq!(pulled.map(|d| d.global_id), Some(gid(1)));
    let types = event_types(&store, 1).await;
    assert_eq!(
        types,
        [
            "message.accepted",
            "message.delivered",
            "message.push_fallback",
            "message.delivered"
        ]
    );
    let events = store.journal_events_of(gid(1)).await.expect("events");
    let leaf: serde_json::Value =
        serde_json::from_slice(&events[2].leaf).expect("the leaf is JSON");
    assert_eq!(leaf["attempts"], 1);
    assert_eq!(leaf["error"], "status", "the class, not the text");
}

#[tokio::test]
async fn a_lost_last_attempt_falls_back_when_its_lease_lapses() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    registry(&store).await;
    store
        .accept(message(1, "SYS_B", Queue::Requests))
        .await
        .expect("accept");
    let mut now = T0 + 100;
    for attempt in 1..=3u32 {
        let c = store
            .claim_push(claim(&[("SYS_B", 4)], now))
            .await
            .expect("claim");
        assert_eq!(c.deliveries[0].push_attempt, attempt);
        // The node "dies": nothing is reported; the lease lapses.
        now += LEASE;
    }
    let c = store
        .claim_push(claim(&[("SYS_B", 4)], now))
        .await
        .expect("claim");
    assert!(c.deliveries.is_empty());
    assert_eq!(c.fallen_back, vec![gid(1)]);
    let s = state(&store, 1).await;
    assert_eq!(
        (s.attempts, s.next_at_ms, s.fallback_at_ms),
        (3, None, Some(now))
    );
    assert!(s.last_error.unwrap_or_default().contains("did not finish"));
}

#[tokio::test]
async fn an_ack_ends_pushing_and_endpoint_changes_reach_the_backlog() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    registry(&store).await;
    for n in 1..=3 {
        store
            .accept(message(n, "SYS_C", Queue::Requests))
            .await
            .expect("accept");
    }
    // SYS_C gets an endpoint: its pending backlog is pushed from then on.
    store
        .ack(ack_cmd("SYS_C", gid(3), true, T0 + 50))
        .await
        .expect("ack");
    store
        .change_registry(
            "test".into(),
            T0 + 60,
            vec![RegistryChange::PutSystem(system(
                "SYS_C",
                Some("https://c.example/"),
            ))],
        )
        .await
        .expect("put");
    assert_eq!(state(&store, 1).await.next_at_ms, Some(T0 + 60));
    assert_eq!(state(&store, 3).await.next_at_ms, None, "acknowledged");
    let c = store
        .claim_push(claim(&[("SYS_C", 4)], T0 + 60))
        .await
        .expect("claim");
    assert_eq!(c.deliveries.len(), 2);
    store
        .ack(ack_cmd("SYS_C", gid(1), true, T0 + 61))
        .await
        .expect("ack");
    let s = state(&store, 1).await;
    assert!(s.acknowledged);
    assert_eq!(s.next_at_ms, None);
    // A late report of the acknowledged attempt changes nothing.
    assert!(!store
        .push_failed(PushAttemptFailed {
            recipient_system: "SYS_C".into(),
            ..failed(1, 1, T0 + 62, Some(T0 + 70))
        })
        .await
        .expect("ignored"));
    // The endpoint is removed: the rest is pulled only.
    store
        .change_registry(
            "test".into(),
            T0 + 70,
            vec![RegistryChange::PutSystem(system("SYS_C", None))],
        )
        .await
        .expect("put");
    assert_eq!(state(&store, 2).await.next_at_ms, None);
    assert_eq!(
        store
            .next_push_at(vec!["SYS_C".into()])
            .await
            .expect("next"),
        None
    );
    let registry = store.registry().await.expect("registry");
    let c = registry
        .systems
        .iter()
        .find(|s| s.mnemonic == "SYS_C")
        .expect("SYS_C");
    assert_eq!(c.push_url, None);
    let b = registry
        .systems
        .iter()
        .find(|s| s.mnemonic == "SYS_B")
        .expect("SYS_B");
    assert_eq!(b.push_url.as_deref(), Some("https://b.example/push"));
}
