//! Helpers both store test files use (each test file compiles this module on its own, so
//! an item one of them leaves unused is not dead).
#![allow(dead_code)]

use mezhved_store::sqlite::{SqliteOptions, SqliteStore};
use mezhved_store::{AckCommand, GlobalId, LeaseRequest, Queue};
use std::path::PathBuf;
use tempfile::TempDir;

/// A fixed "now": 2023-11-14T22:13:20Z.
pub const T0: i64 = 1_700_000_000_000;
pub const KIND_NS: &str = "urn:mezhved:test:kinds";
pub const KIND_ROOT: &str = "PassportRequest";

pub fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("store.db")
}

pub fn open(dir: &TempDir) -> SqliteStore {
    SqliteStore::open(&db_path(dir), SqliteOptions::default()).expect("open the store")
}

/// A global ID that sorts like `n`.
pub fn gid(n: u128) -> GlobalId {
    n.to_be_bytes()
}

pub fn digest(n: u128, salt: u8) -> [u8; 32] {
    let mut d = [salt; 32];
    d[16..].copy_from_slice(&n.to_be_bytes());
    d
}

pub fn lease_req(recipient: &str, queue: Queue, now_ms: i64) -> LeaseRequest {
    LeaseRequest {
        recipient_system: recipient.into(),
        queue,
        selector: None,
        now_ms,
        visibility_ms: 30_000,
    }
}

pub fn ack_cmd(recipient: &str, global_id: GlobalId, accepted: bool, now_ms: i64) -> AckCommand {
    AckCommand {
        recipient_system: recipient.into(),
        global_id,
        accepted,
        receiver_registration: None,
        now_ms,
        then_enqueue: Vec::new(),
        acked_status: "delivered".into(),
    }
}
