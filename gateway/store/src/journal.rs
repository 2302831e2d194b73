//! The journal inside the SQLite store: events as Merkle leaves, complete-subtree hashes,
//! checkpoints, and the auditor's card queries.
//!
//! Invariants:
//! - An event is appended by [`append`] inside the transaction of the change that causes
//!   it, so a rolled-back change leaves no event and a committed one always has its event.
//! - Leaf number `seq` is exactly the bytes in `journal_events.leaf`, [`encode_leaf`]'s
//!   canonical JSON; `seq` is dense from 0 (the next leaf is `max(seq) + 1`), so the Merkle
//!   tree of size `n` covers events `0..n`.
//! - Every complete subtree's hash is stored when it completes
//!   (`mezhved_journal::merkle::nodes_completed_by_append`), so appends, roots and proofs
//!   read O(log n) rows whatever the journal's size.
//! - Nothing here updates or deletes a journal row (the schema's triggers refuse it too).
//! - Leaves hold metadata only: a card's details never contain payload, attachments or
//!   search details (only their keyed hash).

use crate::model::*;
use crate::{Result, StoreError};
use mezhved_journal::merkle;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value};

/// The leaf format version, written into every leaf as `"v"`.
pub const LEAF_VERSION: u64 = 1;

/// Canonical JSON (RFC 8785, JCS, restricted to what the journal writes): objects with
/// members sorted by key, no whitespace, strings escaped as `serde_json` does (which
/// matches JCS), integers only. A float is refused: its text form is not stable across
/// implementations.
pub fn canonical_json(value: &Value, out: &mut Vec<u8>) -> Result<()> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                return Err(StoreError::Corrupt(format!(
                    "journal leaves hold integers only, not {n}"
                )));
            }
        }
        Value::String(s) => {
            serde_json::to_writer(&mut *out, s).map_err(|e| StoreError::Corrupt(e.to_string()))?
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // JCS sorts by UTF-16 code units; for the ASCII keys the journal writes that
            // is byte order.
            let mut keys: Vec<&String> = map.keys().collect();
            if keys.iter().all(|k| k.is_ascii()) {
                // For ASCII (every key the journal writes) UTF-16 order is byte order.
                keys.sort_unstable();
            } else {
                keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            }
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.push(b':');
                canonical_json(&map[k], out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// The hyphenated lower-case text of a global ID.
pub fn uuid_text(id: &GlobalId) -> String {
    let h: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `message.accepted` event of a card (a queued message's, or a paper registration's
/// with `queue` = `paper`): the card's routing facts and its details, metadata only.
pub fn message_accepted(card: &Card, queue: &str, actor: &str, at_ms: i64) -> NewEvent {
    let c = card;
    let mut body = Map::new();
    body.insert("queue".into(), queue.into());
    body.insert("sender_system".into(), c.sender_system.clone().into());
    body.insert(
        "sender_message_id".into(),
        c.sender_message_id.clone().into(),
    );
    body.insert("recipient_system".into(), c.recipient_system.clone().into());
    body.insert(
        "kind".into(),
        serde_json::json!({ "namespace": c.kind_namespace, "root": c.kind_root }),
    );
    if let Some(o) = &c.original_global_id {
        body.insert("original_global_id".into(), uuid_text(o).into());
    }
    body.insert("checksum".into(), hex(&c.checksum).into());
    body.insert("received_at".into(), c.received_at_ms.into());
    body.insert("status".into(), c.status.clone().into());
    body.insert("test".into(), c.test_message.into());
    body.insert("card".into(), c.details.clone());
    NewEvent {
        at_ms,
        event_type: "message.accepted".into(),
        global_id: Some(c.global_id),
        actor: actor.into(),
        body,
    }
}

/// The leaf bytes of event number `seq`: the event's body plus the common members
/// `v`, `seq`, `at` (ms since the epoch, UTC), `type`, `actor` and, for an event about a
/// message, `global_id`. Common members win over body members of the same name, and a
/// body's `global_id` is dropped when the event concerns no message (the leaf must agree
/// with the row's `global_id` column, which `verify` checks).
pub fn encode_leaf(seq: u64, event: &NewEvent) -> Result<Vec<u8>> {
    let mut map: Map<String, Value> = event.body.clone();
    map.remove("global_id");
    map.insert("v".into(), LEAF_VERSION.into());
    map.insert("seq".into(), seq.into());
    map.insert("at".into(), event.at_ms.into());
    map.insert("type".into(), event.event_type.clone().into());
    map.insert("actor".into(), event.actor.clone().into());
    if let Some(g) = &event.global_id {
        map.insert("global_id".into(), uuid_text(g).into());
    }
    let mut out = Vec::with_capacity(256);
    canonical_json(&Value::Object(map), &mut out)?;
    Ok(out)
}

/// The number of events (the tree size).
pub fn size(conn: &Connection) -> Result<u64> {
    let n: i64 = conn
        .prepare_cached("SELECT coalesce(max(seq) + 1, 0) FROM journal_events")?
        .query_row([], |r| r.get(0))?;
    Ok(n as u64)
}

fn node(conn: &Connection, level: u8, idx: u64) -> std::result::Result<Hash, StoreError> {
    let v: Option<Vec<u8>> = conn
        .prepare_cached("SELECT hash FROM journal_nodes WHERE level = ?1 AND idx = ?2")?
        .query_row(params![level, idx as i64], |r| r.get(0))
        .optional()?;
    match v {
        Some(v) => <[u8; 32]>::try_from(v.as_slice()).map_err(|_| {
            StoreError::Corrupt(format!("journal node ({level}, {idx}) is not 32 bytes"))
        }),
        None => Err(StoreError::Corrupt(format!(
            "journal node ({level}, {idx}) is missing"
        ))),
    }
}

impl From<merkle::MerkleError> for StoreError {
    fn from(e: merkle::MerkleError) -> Self {
        StoreError::InvalidRequest(e.to_string())
    }
}

/// Appends one event inside the caller's transaction; returns its `seq`.
pub fn append(tx: &Connection, event: &NewEvent) -> Result<u64> {
    let seq = size(tx)?;
    let leaf = encode_leaf(seq, event)?;
    let leaf_hash = merkle::leaf_hash(&leaf);
    tx.prepare_cached(
        "INSERT INTO journal_events (seq, at, type, global_id, actor, leaf)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        seq as i64,
        event.at_ms,
        event.event_type,
        event.global_id.as_ref().map(|g| &g[..]),
        event.actor,
        leaf
    ])?;
    let nodes =
        merkle::nodes_completed_by_append(seq, leaf_hash, |level, idx| node(tx, level, idx))?;
    let mut st =
        tx.prepare_cached("INSERT INTO journal_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")?;
    for (level, idx, hash) in nodes {
        st.execute(params![level, idx as i64, &hash[..]])?;
    }
    Ok(seq)
}

/// The root of the first `size` events.
pub fn root(conn: &Connection, size: u64) -> Result<Hash> {
    check_size(conn, size)?;
    merkle::root(size, |l, i| node(conn, l, i))
}

fn check_size(conn: &Connection, wanted: u64) -> Result<()> {
    let have = size(conn)?;
    if wanted > have {
        return Err(StoreError::InvalidRequest(format!(
            "the journal has {have} events, not {wanted}"
        )));
    }
    Ok(())
}

pub fn inclusion_proof(conn: &Connection, seq: u64, size: u64) -> Result<Vec<Hash>> {
    check_size(conn, size)?;
    merkle::inclusion_proof(seq, size, |l, i| node(conn, l, i))
}

pub fn consistency_proof(conn: &Connection, old: u64, new: u64) -> Result<Vec<Hash>> {
    check_size(conn, new)?;
    merkle::consistency_proof(old, new, |l, i| node(conn, l, i))
}

/// A `journal_events` row: seq, at, type, global_id, actor, leaf.
type EventRow = (i64, i64, String, Option<Vec<u8>>, String, Vec<u8>);

fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn to_event((seq, at, ty, gid, actor, leaf): EventRow) -> Result<JournalEvent> {
    Ok(JournalEvent {
        seq: seq as u64,
        at_ms: at,
        event_type: ty,
        global_id: gid
            .map(|g| {
                <[u8; 16]>::try_from(g.as_slice())
                    .map_err(|_| StoreError::Corrupt("journal global_id is not 16 bytes".into()))
            })
            .transpose()?,
        actor,
        leaf,
    })
}

/// Events `from..` (at most `limit`), in order.
pub fn events(conn: &Connection, from: u64, limit: usize) -> Result<Vec<JournalEvent>> {
    // No journal reaches 2^63 events; a position beyond is past the end, not negative.
    let Ok(from) = i64::try_from(from) else {
        return Ok(Vec::new());
    };
    let mut st = conn.prepare_cached(
        "SELECT seq, at, type, global_id, actor, leaf FROM journal_events
         WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = st
        .query_map(
            params![from, i64::try_from(limit).unwrap_or(i64::MAX)],
            event_from_row,
        )?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    rows.into_iter().map(to_event).collect()
}

/// Every event about one message, in order.
pub fn events_of(conn: &Connection, global_id: &GlobalId) -> Result<Vec<JournalEvent>> {
    let mut st = conn.prepare_cached(
        "SELECT seq, at, type, global_id, actor, leaf FROM journal_events
         WHERE global_id = ?1 ORDER BY seq",
    )?;
    let rows = st
        .query_map([&global_id[..]], event_from_row)?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    rows.into_iter().map(to_event).collect()
}

/// Stores a checkpoint after checking that its root is the tree's root at its size.
/// A checkpoint of a size already signed is not stored again: the first signed note for
/// a size is the one kept (any later one has the same root, or was refused above).
pub fn add_checkpoint(tx: &Connection, cp: &StoredCheckpoint) -> Result<()> {
    let actual = root(tx, cp.size)?;
    if actual != cp.root {
        return Err(StoreError::InvalidRequest(format!(
            "checkpoint root {} is not the journal's root {} at size {}",
            hex(&cp.root),
            hex(&actual),
            cp.size
        )));
    }
    let existing: Option<Vec<u8>> = tx
        .prepare_cached("SELECT root FROM journal_checkpoints WHERE size = ?1")?
        .query_row([cp.size as i64], |r| r.get(0))
        .optional()?;
    if existing.is_some() {
        return Ok(());
    }
    tx.prepare_cached(
        "INSERT INTO journal_checkpoints (size, root, made_at, note) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        cp.size as i64,
        &cp.root[..],
        cp.made_at_ms,
        cp.note
    ])?;
    Ok(())
}

/// Checkpoints with a size above `after` (all if `None`), in size order, at most `limit`.
pub fn checkpoints(
    conn: &Connection,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<StoredCheckpoint>> {
    let mut st = conn.prepare_cached(
        "SELECT size, root, made_at, note FROM journal_checkpoints
         WHERE size > ?1 ORDER BY size LIMIT ?2",
    )?;
    let after = match after.map(i64::try_from) {
        None => -1,
        Some(Ok(a)) => a,
        // Beyond any possible size: nothing comes after it.
        Some(Err(_)) => return Ok(Vec::new()),
    };
    let rows: Vec<(i64, Vec<u8>, i64, String)> = st
        .query_map(
            params![after, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?
        .collect::<std::result::Result<_, _>>()?;
    rows.into_iter().map(to_checkpoint).collect()
}

fn to_checkpoint(
    (size, root, made_at, note): (i64, Vec<u8>, i64, String),
) -> Result<StoredCheckpoint> {
    Ok(StoredCheckpoint {
        size: size as u64,
        root: <[u8; 32]>::try_from(root.as_slice())
            .map_err(|_| StoreError::Corrupt(format!("checkpoint {size}: root is not 32 bytes")))?,
        made_at_ms: made_at,
        note,
    })
}

pub fn latest_checkpoint(conn: &Connection) -> Result<Option<StoredCheckpoint>> {
    let row: Option<(i64, Vec<u8>, i64, String)> = conn
        .prepare_cached(
            "SELECT size, root, made_at, note FROM journal_checkpoints ORDER BY size DESC LIMIT 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    row.map(to_checkpoint).transpose()
}

/// The largest page a card query returns.
pub const MAX_PAGE: u32 = 1000;

/// The global IDs of the cards matching `filter`, in global-ID (time) order.
pub fn query_cards(conn: &Connection, filter: &CardFilter) -> Result<Vec<GlobalId>> {
    let mut sql = String::from("SELECT global_id FROM cards WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
        args.push(v);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    use rusqlite::types::Value as V;
    if let Some(v) = filter.from_ms {
        arg(&mut sql, " AND received_at >= ?", V::Integer(v));
    }
    if let Some(v) = filter.to_ms {
        arg(&mut sql, " AND received_at < ?", V::Integer(v));
    }
    if let Some(v) = &filter.agency {
        arg(
            &mut sql,
            " AND (sender_agency = ? OR recipient_agency = ?)",
            V::Text(v.clone()),
        );
    }
    if let Some(v) = &filter.system {
        arg(
            &mut sql,
            " AND (sender_system = ? OR recipient_system = ?)",
            V::Text(v.clone()),
        );
    }
    if let Some(v) = &filter.kind_namespace {
        arg(&mut sql, " AND kind_namespace = ?", V::Text(v.clone()));
    }
    if let Some(v) = &filter.kind_root {
        arg(&mut sql, " AND kind_root = ?", V::Text(v.clone()));
    }
    if let Some(v) = &filter.service {
        arg(&mut sql, " AND service_number = ?", V::Text(v.clone()));
    }
    if let Some(v) = &filter.legal_act {
        // `legal_acts` holds the acts one per line; match a whole line.
        arg(
            &mut sql,
            " AND instr(char(10) || legal_acts || char(10), char(10) || ? || char(10)) > 0",
            V::Text(v.clone()),
        );
    }
    if let Some(v) = &filter.status {
        arg(&mut sql, " AND status = ?", V::Text(v.clone()));
    }
    if let Some(v) = &filter.message_type {
        arg(
            &mut sql,
            " AND json_extract(details, '$.message_type') = ?",
            V::Text(v.clone()),
        );
    }
    if let Some(v) = filter.overdue_at_ms {
        arg(
            &mut sql,
            " AND due_at IS NOT NULL AND due_at <= ? AND closed_at IS NULL",
            V::Integer(v),
        );
    }
    if let Some(v) = &filter.global_id {
        arg(&mut sql, " AND global_id = ?", V::Blob(v.to_vec()));
    }
    if let Some(v) = &filter.sender_message_id {
        arg(&mut sql, " AND sender_message_id = ?", V::Text(v.clone()));
    }
    if let Some(v) = &filter.registration_number {
        arg(
            &mut sql,
            " AND (sender_registration_number = ? OR receiver_registration_number = ?)",
            V::Text(v.clone()),
        );
    }
    if let Some(v) = &filter.subject_hash {
        arg(&mut sql, " AND subject_hash = ?", V::Blob(v.to_vec()));
    }
    if let Some(v) = &filter.after {
        arg(&mut sql, " AND global_id > ?", V::Blob(v.to_vec()));
    }
    let limit = filter.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    arg(
        &mut sql,
        " ORDER BY global_id LIMIT ?",
        V::Integer(limit as i64),
    );
    let mut st = conn.prepare(&sql)?;
    let rows: Vec<Vec<u8>> = st
        .query_map(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    rows.into_iter()
        .map(|g| {
            <[u8; 16]>::try_from(g.as_slice())
                .map_err(|_| StoreError::Corrupt("card global_id is not 16 bytes".into()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_members_and_refuses_floats() {
        let mut out = Vec::new();
        canonical_json(
            &json!({"b": [1, "x\n", null], "a": {"d": true, "c": -5}}),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":{"c":-5,"d":true},"b":[1,"x\n",null]}"#
        );
        assert!(canonical_json(&json!({"f": 1.5}), &mut Vec::new()).is_err());
    }

    #[test]
    fn leaf_has_the_common_members() {
        let mut body = Map::new();
        body.insert("seq".into(), 99.into()); // a body cannot override the position
        body.insert("code".into(), "AccessDenied".into());
        let e = NewEvent {
            at_ms: 5,
            event_type: "message.rejected".into(),
            global_id: Some([0xab; 16]),
            actor: "SYS_A".into(),
            body,
        };
        let leaf = String::from_utf8(encode_leaf(7, &e).unwrap()).unwrap();
        assert_eq!(
            leaf,
            r#"{"actor":"SYS_A","at":5,"code":"AccessDenied","global_id":"abababab-abab-abab-abab-abababababab","seq":7,"type":"message.rejected","v":1}"#
        );
    }
}
