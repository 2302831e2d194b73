//! The whole-journal verifier behind `mezhved journal verify`: one sequential pass over
//! the journal that recomputes the Merkle tree from the leaves and compares it with every
//! stored node and every stored checkpoint.
//!
//! What a clean report ([`VerifyReport::problems`] empty) establishes:
//! - `journal_events.seq` is dense from 0, and row `seq` holds the leaf of event `seq`
//!   (its `seq` member), whose `at`, `type`, `actor` and `global_id` members equal the
//!   row's index columns;
//! - every complete subtree's node in `journal_nodes` equals the node recomputed from the
//!   leaves (level 0 is the leaf hash), none is missing and none lies beyond the journal;
//! - every checkpoint's root equals the recomputed root at its size and its signed note
//!   verifies (`verify_note`, supplied by the caller, which must also check that the note
//!   states the row's size and root); so consecutive checkpoints are consistent with each
//!   other, and no checkpoint is larger than the journal.
//!
//! How it runs (what keeps it above a million events per second on two cores: see
//! `mezhved bench --only journal` and docs/performance.md, "Central journal"):
//! - one read transaction on the caller's connection, so every statement sees the same
//!   snapshot. Only the calling thread touches the connection (it is not `Sync`, and a
//!   second connection would be a second snapshot): it steps every statement;
//! - the events are streamed `ORDER BY seq` through one prepared statement, never held in
//!   memory beyond a few batches: the calling thread copies the rows into batches of
//!   2,048 (each batch's bytes into one buffer, three batches reused in turn) and hands
//!   them to one worker thread (`std::thread::scope`), which parses each leaf,
//!   checks the row's index columns against it and computes its leaf hash, and hands the
//!   batch back with one result per row. Everything else stays on the calling thread, in
//!   row order: the tree, the node merge join, the checkpoints and every report, so the
//!   divergences and their order are the same whatever the batch size (a test checks it);
//!   while the worker works on one batch the calling thread reads and checks the others;
//! - a leaf is scanned only as far as its top-level members, without allocating (leaves
//!   not in the writer's canonical form go to serde_json instead);
//! - the stored nodes are read by a merge join, not by lookups: one statement per level,
//!   `ORDER BY idx`, advanced in lockstep with [`merkle::TreeBuilder::push_with_nodes`],
//!   which completes each level's nodes in index order;
//! - the checkpoints are streamed by size and checked when the recomputed tree reaches
//!   their size.
//!
//! How divergences are reported: the first one first, at most [`MAX_PROBLEMS`] (the rest
//! are counted in [`VerifyReport::problems_omitted`]), and consequences are not repeated:
//! a recomputed node that differs from the stored one is reported only when its children
//! agreed with theirs (a changed leaf is reported once, not once per ancestor); a run of
//! rows holding other events' leaves (rows inserted, deleted and renumbered, or swapped) is
//! one divergence; a deleted row whose leaf hash is still in `journal_nodes` is reported as
//! missing and its stored leaf hash stands in for it, so the tree above it is still checked.
//! Checkpoints are always reported: they are the signed statements a third party holds.

use crate::journal::{hex, size as journal_size, uuid_text, LEAF_VERSION};
use crate::model::{Hash, StoredCheckpoint};
use crate::{Result, StoreError};
use mezhved_journal::merkle::{self, TreeBuilder};
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use std::borrow::Cow;
use std::fmt;
use std::sync::mpsc;

/// Divergences collected at most; later ones are only counted.
pub const MAX_PROBLEMS: usize = 20;

/// `progress` is called after every this many events (and once at the end).
pub const PROGRESS_EVERY: u64 = 65_536;

/// The highest level a node can have (a tree has fewer than 2^64 leaves).
const MAX_LEVEL: usize = 63;

/// The outcome of [`verify_journal`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Rows of `journal_events` read.
    pub events: u64,
    /// Stored nodes compared with the recomputed ones.
    pub nodes_checked: u64,
    /// Checkpoints whose note was verified and whose root was compared (or which were
    /// found beyond the journal's end).
    pub checkpoints_checked: u64,
    /// Pairs of consecutive checkpoints that both match the recomputed tree, which makes
    /// the later one an extension of the earlier one.
    pub consistent_pairs: u64,
    /// The divergences found, first one first, at most [`MAX_PROBLEMS`].
    pub problems: Vec<Divergence>,
    /// Divergences found after [`MAX_PROBLEMS`] were collected.
    pub problems_omitted: u64,
}

impl VerifyReport {
    /// True when nothing diverges.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.problems_omitted == 0
    }
}

/// One way the stored journal differs from what its own leaves and checkpoints imply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Divergence {
    /// Rows `first..=last` are absent. `leaf_hashes_kept`: their level-0 nodes are still
    /// stored (the rows were deleted after they were appended; the stored hashes stand in
    /// for them, so the tree above is still checked).
    EventsMissing {
        first: u64,
        last: u64,
        leaf_hashes_kept: bool,
    },
    /// A row the scan cannot use: a negative `seq`.
    BadRow { seq: i64, reason: String },
    /// Rows `first_row..=last_row` hold the leaves of events `first_row + offset ..=
    /// last_row + offset`.
    RowsShifted {
        first_row: u64,
        last_row: u64,
        offset: i64,
    },
    /// The leaf of an event is not a journal leaf (not JSON, a common member missing or of
    /// the wrong type, an unknown format version).
    LeafUnreadable { seq: u64, reason: String },
    /// An index column of row `seq` disagrees with the same member inside its leaf.
    ColumnDisagrees {
        seq: u64,
        column: &'static str,
        column_value: String,
        leaf_value: String,
    },
    /// The hash of the leaf of event `seq` is not the stored level-0 node.
    LeafChanged {
        seq: u64,
        stored: Hash,
        recomputed: Hash,
    },
    /// A stored interior node differs from the one recomputed from children that agree
    /// with their stored nodes.
    NodeDiffers {
        level: u8,
        idx: u64,
        stored: Hash,
        recomputed: Hash,
    },
    /// A complete subtree's node is not stored.
    NodeMissing { level: u8, idx: u64 },
    /// A stored node's hash is not 32 bytes.
    NodeMalformed { level: u8, idx: u64, length: usize },
    /// A stored node that no complete subtree of the journal has (a negative index).
    NodeUnexpected { level: u8, idx: i64 },
    /// Stored nodes of subtrees beyond the journal's end: `count` of them, `first` the one
    /// that would have completed first; `leaf_nodes_up_to` is the highest level-0 index
    /// among them.
    NodesBeyondEnd {
        events: u64,
        count: u64,
        first: (u8, u64),
        leaf_nodes_up_to: Option<u64>,
    },
    /// A checkpoint's root is not the recomputed root at its size. `last_good` is the
    /// largest smaller checkpoint that matched.
    CheckpointRootDiffers {
        size: u64,
        checkpoint: Hash,
        recomputed: Hash,
        last_good: Option<u64>,
    },
    /// A checkpoint's signed note does not verify (or does not state its size and root).
    CheckpointSignature { size: u64, reason: String },
    /// A checkpoint larger than the journal.
    CheckpointBeyondEnd { size: u64, events: u64 },
    /// A checkpoint above an event whose leaf hash is lost (row and level-0 node both
    /// gone): its root cannot be recomputed, so the journal no longer proves it.
    CheckpointUnverifiable { size: u64, lost_seq: u64 },
    /// A checkpoint row that cannot be read (negative size, root not 32 bytes).
    CheckpointMalformed { size: i64, reason: String },
}

impl Divergence {
    fn describe_range(first: u64, last: u64) -> String {
        if first == last {
            format!("event {first} is")
        } else {
            format!("events {first} to {last} are")
        }
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Divergence::EventsMissing {
                first,
                last,
                leaf_hashes_kept,
            } => {
                let what = Self::describe_range(*first, *last);
                let rows = if *first == 0 {
                    format!("the first row is {}", last + 1)
                } else {
                    format!("rows {} and {} are adjacent", first - 1, last + 1)
                };
                write!(f, "{what} missing ({rows}): ")?;
                if *leaf_hashes_kept {
                    write!(
                        f,
                        "rows were deleted after they were appended (their leaf hashes are \
                         still in journal_nodes)"
                    )
                } else {
                    write!(
                        f,
                        "rows were deleted and their leaf hashes too, so the tree above them \
                         cannot be recomputed"
                    )
                }
            }
            Divergence::BadRow { seq, reason } => write!(f, "row {seq}: {reason}"),
            Divergence::RowsShifted {
                first_row,
                last_row,
                offset,
            } => {
                let leaf_of = |row: u64| row as i128 + *offset as i128;
                if first_row == last_row {
                    write!(
                        f,
                        "rows out of order: row {first_row} holds the leaf of event {}",
                        leaf_of(*first_row)
                    )
                } else {
                    write!(
                        f,
                        "rows out of order: rows {first_row} to {last_row} hold the leaves of \
                         events {} to {} (rows were inserted, deleted or renumbered)",
                        leaf_of(*first_row),
                        leaf_of(*last_row)
                    )
                }
            }
            Divergence::LeafUnreadable { seq, reason } => {
                write!(f, "the leaf of event {seq} is not a journal leaf: {reason}")
            }
            Divergence::ColumnDisagrees {
                seq,
                column,
                column_value,
                leaf_value,
            } => write!(
                f,
                "event {seq}: an index column disagrees with the leaf: {column} is \
                 {column_value} in the row but {leaf_value} in the leaf (the row was edited)"
            ),
            Divergence::LeafChanged {
                seq,
                stored,
                recomputed,
            } => write!(
                f,
                "the leaf of event {seq} was changed after it was appended: it hashes to {}, \
                 the stored leaf hash is {}",
                hex(recomputed),
                hex(stored)
            ),
            Divergence::NodeDiffers {
                level,
                idx,
                stored,
                recomputed,
            } => write!(
                f,
                "stored node ({level}, {idx}) differs from the recomputed one: stored {}, \
                 recomputed {} (the node row was edited)",
                hex(stored),
                hex(recomputed)
            ),
            Divergence::NodeMissing { level, idx } => write!(
                f,
                "stored node ({level}, {idx}) is missing (it covers events {} to {})",
                idx << level,
                ((idx + 1) << level) - 1
            ),
            Divergence::NodeMalformed { level, idx, length } => {
                write!(f, "stored node ({level}, {idx}) is {length} bytes, not 32")
            }
            Divergence::NodeUnexpected { level, idx } => {
                write!(
                    f,
                    "stored node ({level}, {idx}) cannot exist (negative index)"
                )
            }
            Divergence::NodesBeyondEnd {
                events,
                count,
                first,
                leaf_nodes_up_to,
            } => {
                write!(
                    f,
                    "journal_nodes holds {count} node(s) beyond the journal's {events} events, \
                     the first ({}, {})",
                    first.0, first.1
                )?;
                match leaf_nodes_up_to {
                    Some(last) => write!(
                        f,
                        ": the journal had at least {} events (events from {events} to {last} \
                         were removed)",
                        last + 1
                    ),
                    None => write!(f, ": events after {events} were removed"),
                }
            }
            Divergence::CheckpointRootDiffers {
                size,
                checkpoint,
                recomputed,
                last_good,
            } => {
                write!(
                    f,
                    "checkpoint {size}: root differs from the recomputed root ({} signed, {} \
                     recomputed): ",
                    hex(checkpoint),
                    hex(recomputed)
                )?;
                match last_good {
                    Some(good) => write!(
                        f,
                        "events {good} to {} were changed (checkpoint {good} still matches)",
                        size.saturating_sub(1)
                    )?,
                    None => write!(f, "events below {size} were changed")?,
                }
                write!(f, ", or the checkpoint row was (see its signature)")
            }
            Divergence::CheckpointSignature { size, reason } => {
                write!(f, "checkpoint {size}: signature does not verify: {reason}")
            }
            Divergence::CheckpointBeyondEnd { size, events } => write!(
                f,
                "checkpoint {size} is larger than the journal, which has {events} events \
                 (events from {events} to {} were removed)",
                size - 1
            ),
            Divergence::CheckpointUnverifiable { size, lost_seq } => write!(
                f,
                "checkpoint {size} cannot be recomputed: the leaf of event {lost_seq} is lost \
                 (its row and its leaf hash were deleted)"
            ),
            Divergence::CheckpointMalformed { size, reason } => {
                write!(f, "checkpoint row {size}: {reason}")
            }
        }
    }
}

/// The members of a leaf the verifier checks (the rest of the leaf is skipped unparsed).
#[derive(Debug, serde::Deserialize)]
struct LeafHead<'a> {
    v: Option<u64>,
    seq: Option<u64>,
    at: Option<i64>,
    #[serde(rename = "type", borrow)]
    event_type: Option<Text<'a>>,
    #[serde(borrow)]
    actor: Option<Text<'a>>,
    #[serde(borrow)]
    global_id: Option<Text<'a>>,
}

/// A JSON string member of a leaf, as its UTF-8 bytes (borrowed when it has no escapes):
/// compared with a column's bytes, never needed as `str` unless shown.
struct Text<'a>(Cow<'a, [u8]>);

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v.as_bytes())))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.as_bytes().to_vec())))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.into_bytes())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A stored node as read: its hash, or the length of a blob that is not one.
type StoredNode = std::result::Result<Hash, usize>;

/// One level of `journal_nodes`, read in index order.
struct NodeCursor<'s> {
    rows: rusqlite::Rows<'s>,
    peeked: Option<(i64, StoredNode)>,
}

impl NodeCursor<'_> {
    fn advance(&mut self) -> Result<()> {
        self.peeked = match self.rows.next()? {
            None => None,
            Some(r) => {
                let idx: i64 = r.get(0)?;
                let node = match r.get_ref(1)? {
                    ValueRef::Blob(b) => <[u8; 32]>::try_from(b).map_err(|_| b.len()),
                    ValueRef::Text(t) => Err(t.len()),
                    _ => Err(0),
                };
                Some((idx, node))
            }
        };
        Ok(())
    }
}

/// The verifier's running state, apart from the statements it reads.
struct Checker {
    report: VerifyReport,
    /// The open run of rows holding other events' leaves: (index in `problems` if it was
    /// collected, its current values).
    run: Option<(Option<usize>, u64, u64, i64)>,
    /// Whether the recomputed frontier node at each level differs from its stored node.
    frontier_taint: [bool; MAX_LEVEL + 1],
    /// Whether the node just completed (the right child of the next one) differs.
    chain_taint: bool,
    /// A database error met inside the tree builder's callback.
    error: Option<StoreError>,
}

impl Checker {
    fn report(&mut self, d: Divergence) -> Option<usize> {
        if self.report.problems.len() < MAX_PROBLEMS {
            self.report.problems.push(d);
            Some(self.report.problems.len() - 1)
        } else {
            self.report.problems_omitted += 1;
            None
        }
    }

    /// Row `seq` holds the leaf of event `seq + offset` (`offset != 0`), or holds its own
    /// leaf (`offset == 0`, which closes a run).
    fn shifted(&mut self, seq: u64, offset: i64) {
        if let Some((slot, first, last, off)) = self.run {
            if offset == off && last + 1 == seq {
                self.run = Some((slot, first, seq, off));
                if let Some(i) = slot {
                    self.report.problems[i] = Divergence::RowsShifted {
                        first_row: first,
                        last_row: seq,
                        offset: off,
                    };
                }
                return;
            }
            self.run = None;
        }
        if offset != 0 {
            let slot = self.report(Divergence::RowsShifted {
                first_row: seq,
                last_row: seq,
                offset,
            });
            self.run = Some((slot, seq, seq, offset));
        }
    }

    /// Compares a recomputed node with the stored one (merge join on `cursor`).
    /// `leaf_explained`: for a level-0 node, a difference is already reported.
    fn check_node(
        &mut self,
        cursor: &mut NodeCursor<'_>,
        level: u8,
        idx: u64,
        recomputed: &Hash,
        leaf_explained: bool,
    ) -> Result<()> {
        // Stored nodes below `idx` were not produced by the recomputation: negative ones.
        while let Some((stored_idx, _)) = &cursor.peeked {
            if *stored_idx >= 0 && *stored_idx as u64 >= idx {
                break;
            }
            let stored_idx = *stored_idx;
            self.report(Divergence::NodeUnexpected {
                level,
                idx: stored_idx,
            });
            cursor.advance()?;
        }
        let stored = match &cursor.peeked {
            Some((i, node)) if *i >= 0 && *i as u64 == idx => {
                let node = *node;
                cursor.advance()?;
                Some(node)
            }
            _ => None,
        };
        self.report.nodes_checked += 1;
        let level_us = level as usize;
        let children_taint = if level == 0 {
            leaf_explained
        } else {
            self.frontier_taint[level_us - 1] || self.chain_taint
        };
        let taint = match stored {
            Some(Ok(h)) if h == *recomputed => false,
            Some(Ok(h)) => {
                if !children_taint {
                    self.report(if level == 0 {
                        Divergence::LeafChanged {
                            seq: idx,
                            stored: h,
                            recomputed: *recomputed,
                        }
                    } else {
                        Divergence::NodeDiffers {
                            level,
                            idx,
                            stored: h,
                            recomputed: *recomputed,
                        }
                    });
                }
                true
            }
            Some(Err(length)) => {
                self.report(Divergence::NodeMalformed { level, idx, length });
                true
            }
            None => {
                if !children_taint {
                    self.report(Divergence::NodeMissing { level, idx });
                }
                true
            }
        };
        if idx & 1 == 0 {
            // A left child: it waits in the frontier for its right sibling.
            self.frontier_taint[level_us] = taint;
        } else {
            self.chain_taint = taint;
        }
        Ok(())
    }
}

/// Parses the 36-character hyphenated UUID text of a leaf's `global_id`.
fn parse_uuid(b: &[u8]) -> Option<[u8; 16]> {
    /// Hex digit values; 0xff for anything else.
    const HEX: [u8; 256] = {
        let mut t = [0xffu8; 256];
        let mut i = 0;
        while i < 10 {
            t[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'a' as usize + i] = 10 + i as u8;
            t[b'A' as usize + i] = 10 + i as u8;
            i += 1;
        }
        t
    };
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut i = 0;
    while i < 36 {
        if matches!(i, 8 | 13 | 18 | 23) {
            i += 1;
            continue;
        }
        let (hi, lo) = (HEX[b[i] as usize], HEX[b[i + 1] as usize]);
        if (hi | lo) == 0xff {
            return None;
        }
        out[n] = hi << 4 | lo;
        n += 1;
        i += 2;
    }
    Some(out)
}

fn show(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(r) => r.to_string(),
        ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
        ValueRef::Blob(b) if b.len() == 16 => {
            let mut g = [0u8; 16];
            g.copy_from_slice(b);
            uuid_text(&g)
        }
        ValueRef::Blob(b) => format!("x'{}'", hex(b)),
    }
}

fn show_leaf<T: fmt::Debug>(v: &Option<T>) -> String {
    match v {
        Some(v) => format!("{v:?}"),
        None => "absent".into(),
    }
}

/// Checks the index columns of row `seq` against its leaf's members; appends what
/// disagrees to `problems`, in the order `at`, `type`, `actor`, `global_id`.
fn check_columns(
    problems: &mut Vec<Divergence>,
    seq: u64,
    head: &LeafHead<'_>,
    row: &EventRow,
    bytes: &[u8],
) {
    let at = row.at.value(bytes);
    if !matches!((at, head.at), (ValueRef::Integer(c), Some(l)) if c == l) {
        problems.push(Divergence::ColumnDisagrees {
            seq,
            column: "at",
            column_value: show(at),
            leaf_value: show_leaf(&head.at),
        });
    }
    for (value, column, leaf) in [
        (row.event_type, "type", &head.event_type),
        (row.actor, "actor", &head.actor),
    ] {
        let value = value.value(bytes);
        let same = match (value, leaf) {
            (ValueRef::Text(c), Some(l)) => c == &l.0[..],
            _ => false,
        };
        if !same {
            problems.push(Divergence::ColumnDisagrees {
                seq,
                column,
                column_value: show(value),
                leaf_value: show_leaf(leaf),
            });
        }
    }
    let gid = row.global_id.value(bytes);
    let same = match (gid, &head.global_id) {
        (ValueRef::Null, None) => true,
        (ValueRef::Blob(c), Some(l)) => parse_uuid(&l.0).is_some_and(|l| l[..] == *c),
        _ => false,
    };
    if !same {
        problems.push(Divergence::ColumnDisagrees {
            seq,
            column: "global_id",
            column_value: show(gid),
            leaf_value: show_leaf(&head.global_id),
        });
    }
}

/// Rows of `journal_events` per [`Batch`]: large enough that the hand-over costs nothing
/// per row, small enough (about a megabyte of leaves) to stay in cache between the threads.
const BATCH_ROWS: usize = 2048;

/// Batches in circulation: one being filled or checked by the calling thread, the others
/// queued for or being analysed by the worker.
const BATCHES: usize = 3;

/// A column value copied out of a row; text and blobs are ranges of [`Batch::bytes`].
#[derive(Debug, Clone, Copy)]
enum Column {
    Null,
    Integer(i64),
    Real(f64),
    Text(usize, usize),
    Blob(usize, usize),
}

impl Column {
    /// Copies `v` (its bytes to the end of `bytes`).
    fn copy(v: ValueRef<'_>, bytes: &mut Vec<u8>) -> Column {
        let mut range = |b: &[u8]| {
            let start = bytes.len();
            bytes.extend_from_slice(b);
            (start, bytes.len())
        };
        match v {
            ValueRef::Null => Column::Null,
            ValueRef::Integer(i) => Column::Integer(i),
            ValueRef::Real(r) => Column::Real(r),
            ValueRef::Text(t) => {
                let (s, e) = range(t);
                Column::Text(s, e)
            }
            ValueRef::Blob(b) => {
                let (s, e) = range(b);
                Column::Blob(s, e)
            }
        }
    }

    fn value(self, bytes: &[u8]) -> ValueRef<'_> {
        match self {
            Column::Null => ValueRef::Null,
            Column::Integer(i) => ValueRef::Integer(i),
            Column::Real(r) => ValueRef::Real(r),
            Column::Text(s, e) => ValueRef::Text(&bytes[s..e]),
            Column::Blob(s, e) => ValueRef::Blob(&bytes[s..e]),
        }
    }
}

/// A row of `journal_events` as copied into a [`Batch`].
#[derive(Debug)]
struct EventRow {
    seq: i64,
    at: Column,
    event_type: Column,
    global_id: Column,
    actor: Column,
    /// The leaf's range of [`Batch::bytes`] (empty if the column is neither text nor blob).
    leaf: (usize, usize),
}

/// What the worker found in a row with a non-negative `seq`.
#[derive(Debug)]
struct RowAnalysis {
    leaf_hash: Hash,
    /// The leaf's `seq` minus the row's (0 when the leaf has no `seq`, which
    /// [`parse_head`] refuses), or why the leaf is not a journal leaf.
    offset: std::result::Result<i64, String>,
    /// The end of this row's column divergences in [`Batch::problems`] (they start at the
    /// previous row's end).
    problems_end: usize,
}

/// Consecutive rows of `journal_events`, filled by the calling thread, analysed by the
/// worker ([`Batch::analyse`]) and checked by the calling thread, then reused.
#[derive(Debug, Default)]
struct Batch {
    /// The rows' text and blob bytes.
    bytes: Vec<u8>,
    rows: Vec<EventRow>,
    /// One per row with a non-negative `seq`, in order.
    analyses: Vec<RowAnalysis>,
    /// The rows' column divergences, in row order.
    problems: Vec<Divergence>,
}

impl Batch {
    /// Copies the next rows: `limit` of them, fewer only at the end.
    fn fill(&mut self, rows: &mut rusqlite::Rows<'_>, limit: usize) -> Result<()> {
        self.bytes.clear();
        self.rows.clear();
        while self.rows.len() < limit {
            let Some(row) = rows.next()? else {
                break;
            };
            let seq: i64 = row.get(0)?;
            let at = Column::copy(row.get_ref(1)?, &mut self.bytes);
            let event_type = Column::copy(row.get_ref(2)?, &mut self.bytes);
            let global_id = Column::copy(row.get_ref(3)?, &mut self.bytes);
            let actor = Column::copy(row.get_ref(4)?, &mut self.bytes);
            let leaf = match row.get_ref(5)? {
                ValueRef::Blob(b) | ValueRef::Text(b) => {
                    let start = self.bytes.len();
                    self.bytes.extend_from_slice(b);
                    (start, self.bytes.len())
                }
                _ => (0, 0),
            };
            self.rows.push(EventRow {
                seq,
                at,
                event_type,
                global_id,
                actor,
                leaf,
            });
        }
        Ok(())
    }

    /// The worker's part: parses each leaf, checks its row's columns and hashes it.
    fn analyse(&mut self) {
        let Batch {
            bytes,
            rows,
            analyses,
            problems,
        } = self;
        analyses.clear();
        problems.clear();
        for row in rows.iter() {
            let Ok(seq) = u64::try_from(row.seq) else {
                continue; // reported by the calling thread
            };
            let leaf = &bytes[row.leaf.0..row.leaf.1];
            let offset = parse_head(leaf).map(|head| {
                let leaf_seq = head.seq.unwrap_or(seq);
                let offset = (leaf_seq as i128 - seq as i128)
                    .clamp(i64::MIN as i128, i64::MAX as i128) as i64;
                if offset == 0 {
                    check_columns(problems, seq, &head, row, bytes);
                }
                offset
            });
            analyses.push(RowAnalysis {
                leaf_hash: merkle::leaf_hash(leaf),
                offset,
                problems_end: problems.len(),
            });
        }
    }
}

/// Reads a leaf's common members; the error is the reason it is not a journal leaf.
fn parse_head(leaf: &[u8]) -> std::result::Result<LeafHead<'_>, String> {
    let head = match scan_head(leaf) {
        Some(head) => head,
        // Not in the writer's form: serde_json decides (it decodes escapes and says what
        // is wrong).
        None => serde_json::from_slice(leaf).map_err(|e| e.to_string())?,
    };
    match head.v {
        Some(LEAF_VERSION) => {}
        Some(v) => return Err(format!("unknown leaf format version {v}")),
        None => return Err("no \"v\" member".into()),
    }
    if head.seq.is_none() {
        return Err("no \"seq\" member".into());
    }
    Ok(head)
}

/// The fast path of [`parse_head`], for leaves in the form the writer produces: one
/// object without whitespace between tokens, keys without escapes, unique common members
/// whose strings are printable ASCII without escapes and whose integers are plain. The other members' values are skipped by
/// their delimiters, not validated (their bytes are covered by the leaf hash, which is
/// what proves them; serde_json does not validate what it skips either). `None` for
/// anything else, which then goes to serde_json.
fn scan_head(leaf: &[u8]) -> Option<LeafHead<'_>> {
    let mut s = Scanner { b: leaf, i: 0 };
    let mut head = LeafHead {
        v: None,
        seq: None,
        at: None,
        event_type: None,
        actor: None,
        global_id: None,
    };
    fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
        if slot.is_some() {
            return None; // a duplicate member
        }
        *slot = Some(value);
        Some(())
    }
    s.eat(b'{')?;
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        loop {
            let key = s.plain_string()?;
            s.eat(b':')?;
            match key {
                b"v" => once(&mut head.v, s.uint()?)?,
                b"seq" => once(&mut head.seq, s.uint()?)?,
                b"at" => once(&mut head.at, s.int()?)?,
                b"type" => once(&mut head.event_type, s.text()?)?,
                b"actor" => once(&mut head.actor, s.text()?)?,
                b"global_id" => once(&mut head.global_id, s.text()?)?,
                _ => s.skip_value()?,
            }
            match s.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
    }
    (s.i == leaf.len()).then_some(head)
}

/// A cursor over a leaf's bytes for [`scan_head`].
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

/// Byte classes for skipping a container: 1 is `"`, 2 an opening bracket, 3 a closing one.
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'"' as usize] = 1;
    t[b'{' as usize] = 2;
    t[b'[' as usize] = 2;
    t[b'}' as usize] = 3;
    t[b']' as usize] = 3;
    t
};

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// The index of the next `"` or `\\` at or after `i` (eight bytes at a time).
    #[inline(always)]
    fn quote_or_backslash(&self, mut i: usize) -> Option<usize> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
        while let Some(chunk) = self.b.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let w = u64::from_le_bytes(w);
            // Exact for the lowest matching byte, which is the one wanted.
            let m = has_zero(w ^ (ONES * b'"' as u64)) | has_zero(w ^ (ONES * b'\\' as u64));
            if m != 0 {
                return Some(i + (m.trailing_zeros() / 8) as usize);
            }
            i += 8;
        }
        (i..self.b.len()).find(|&j| matches!(self.b[j], b'"' | b'\\'))
    }

    /// The index just after the string whose opening quote is at `i`.
    #[inline]
    fn string_end(&self, i: usize) -> Option<usize> {
        let mut j = i + 1;
        loop {
            let k = self.quote_or_backslash(j)?;
            if self.b[k] == b'"' {
                return Some(k + 1);
            }
            j = k + 2; // an escape: skip the escaped byte
        }
    }

    /// A string without escapes; its bytes.
    #[inline(always)]
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let end = self.quote_or_backslash(start)?;
        if self.b[end] != b'"' {
            return None;
        }
        self.i = end + 1;
        Some(&self.b[start..end])
    }

    /// A string value of printable ASCII without escapes.
    fn text(&mut self) -> Option<Text<'a>> {
        let s = self.plain_string()?;
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let mut chunks = s.chunks_exact(8);
        // A byte below 0x20 borrows into its high bit; a byte from 0x80 has it set.
        let bad = |w: u64| (w.wrapping_sub(ONES * 0x20) | w) & HIGHS != 0;
        for chunk in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            if bad(u64::from_le_bytes(w)) {
                return None;
            }
        }
        if chunks
            .remainder()
            .iter()
            .any(|&c| !(0x20..0x80).contains(&c))
        {
            return None;
        }
        Some(Text(Cow::Borrowed(s)))
    }

    /// A non-negative integer without leading zeros, fraction or exponent, of at most 19
    /// digits (so it cannot overflow; a `u64` of 20 digits goes to serde_json).
    fn uint(&mut self) -> Option<u64> {
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            v = v.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            self.i += 1;
        }
        let digits = self.i - start;
        if digits == 0 || digits > 19 || (digits > 1 && self.b[start] == b'0') {
            return None;
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(v)
    }

    fn int(&mut self) -> Option<i64> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let magnitude = i128::from(self.uint()?);
        i64::try_from(if negative { -magnitude } else { magnitude }).ok()
    }

    /// Skips any value by its delimiters.
    fn skip_value(&mut self) -> Option<()> {
        let b = self.b;
        match self.peek()? {
            b'"' => {
                self.i = self.string_end(self.i)?;
                Some(())
            }
            b'{' | b'[' => {
                let mut depth = 0usize;
                let mut i = self.i;
                while let Some(&c) = b.get(i) {
                    match CLASS[c as usize] {
                        0 => i += 1,
                        1 => i = self.string_end(i)?,
                        2 => {
                            depth += 1;
                            i += 1;
                        }
                        _ => {
                            depth -= 1;
                            i += 1;
                            if depth == 0 {
                                self.i = i;
                                return Some(());
                            }
                        }
                    }
                }
                None
            }
            _ => {
                let start = self.i;
                while !matches!(self.peek(), None | Some(b',' | b'}' | b']')) {
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }
}

/// A checkpoint row as read.
fn read_checkpoint(
    row: &rusqlite::Row<'_>,
) -> Result<std::result::Result<StoredCheckpoint, Divergence>> {
    let size: i64 = row.get(0)?;
    let root = match row.get_ref(1)? {
        ValueRef::Blob(b) => <[u8; 32]>::try_from(b).ok(),
        _ => None,
    };
    let made_at_ms: i64 = row.get(2)?;
    let note: String = row.get(3)?;
    Ok(match (u64::try_from(size), root) {
        (Ok(size), Some(root)) => Ok(StoredCheckpoint {
            size,
            root,
            made_at_ms,
            note,
        }),
        (Err(_), _) => Err(Divergence::CheckpointMalformed {
            size,
            reason: "negative size".into(),
        }),
        (_, None) => Err(Divergence::CheckpointMalformed {
            size,
            reason: "the root is not 32 bytes".into(),
        }),
    })
}

/// Verifies the whole journal (module docs). `verify_note` checks a checkpoint's signed
/// note (and that it states the row's size and root); `progress(done, total)` is called
/// every [`PROGRESS_EVERY`] events and at the end. Divergences are findings in the report;
/// an `Err` means the database could not be read.
///
/// Open `conn` with `SQLITE_OPEN_NO_MUTEX`: in SQLite's serialized mode every column read
/// takes the connection's mutex, which costs about a fifth of the run.
///
/// Runs a worker thread besides the calling one, which keeps `conn` (module docs).
pub fn verify_journal(
    conn: &Connection,
    verify_note: &dyn Fn(&StoredCheckpoint) -> std::result::Result<(), String>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport> {
    verify_in_batches(conn, BATCH_ROWS, verify_note, progress)
}

/// [`verify_journal`] with batches of `batch_rows` rows (at least 1): the report does not
/// depend on it, which the tests check with tiny batches.
fn verify_in_batches(
    conn: &Connection,
    batch_rows: usize,
    verify_note: &dyn Fn(&StoredCheckpoint) -> std::result::Result<(), String>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport> {
    let batch_rows = batch_rows.max(1);
    // One snapshot for every statement (declared first, so it is dropped last).
    let _snapshot = if conn.is_autocommit() {
        Some(conn.unchecked_transaction()?)
    } else {
        None
    };
    let total = journal_size(conn)?;
    let stored_max_level: i64 = conn.query_row(
        "SELECT coalesce(max(level), 0) FROM journal_nodes",
        [],
        |r| r.get(0),
    )?;
    let tree_max_level = if total == 0 {
        0
    } else {
        63 - total.leading_zeros() as i64
    };
    let levels = stored_max_level
        .max(tree_max_level)
        .clamp(0, MAX_LEVEL as i64) as usize
        + 1;

    let mut node_statements = (0..levels)
        .map(|_| conn.prepare("SELECT idx, hash FROM journal_nodes WHERE level = ?1 ORDER BY idx"))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut cursors = Vec::with_capacity(levels);
    for (level, st) in node_statements.iter_mut().enumerate() {
        let mut cursor = NodeCursor {
            rows: st.query([level as i64])?,
            peeked: None,
        };
        cursor.advance()?;
        cursors.push(cursor);
    }
    let mut checkpoint_statement =
        conn.prepare("SELECT size, root, made_at, note FROM journal_checkpoints ORDER BY size")?;
    let mut checkpoint_rows = checkpoint_statement.query([])?;
    let mut event_statement = conn
        .prepare("SELECT seq, at, type, global_id, actor, leaf FROM journal_events ORDER BY seq")?;
    let mut event_rows = event_statement.query([])?;

    let mut checker = Checker {
        report: VerifyReport::default(),
        run: None,
        frontier_taint: [false; MAX_LEVEL + 1],
        chain_taint: false,
        error: None,
    };
    let mut builder = TreeBuilder::new();
    // Events accounted for: rows read plus missing ones.
    let mut position: u64 = 0;
    // The first event whose leaf hash is lost: the tree cannot be recomputed from there.
    let mut lost: Option<u64> = None;
    let mut next_checkpoint = next_checkpoint(&mut checkpoint_rows, &mut checker)?;
    let mut cp_state = CheckpointState::default();

    check_checkpoints(
        &mut checker,
        &mut cp_state,
        &mut next_checkpoint,
        &mut checkpoint_rows,
        position,
        lost,
        &builder,
        verify_note,
    )?;
    // The pipeline: this thread steps the statements and checks the tree, the worker
    // parses and hashes the leaves of the batches in between (module docs).
    std::thread::scope(|scope| -> Result<()> {
        let (work_tx, work_rx) = mpsc::sync_channel::<Batch>(BATCHES);
        let (done_tx, done_rx) = mpsc::sync_channel::<Batch>(BATCHES);
        scope.spawn(move || {
            for mut batch in work_rx {
                batch.analyse();
                if done_tx.send(batch).is_err() {
                    break;
                }
            }
        });
        let worker_gone = || StoreError::Corrupt("the verifier's worker thread stopped".into());
        let mut free: Vec<Batch> = (0..BATCHES).map(|_| Batch::default()).collect();
        let mut in_flight = 0usize;
        let mut exhausted = false;
        loop {
            while !exhausted {
                let Some(mut batch) = free.pop() else {
                    break;
                };
                batch.fill(&mut event_rows, batch_rows)?;
                exhausted = batch.rows.len() < batch_rows;
                if batch.rows.is_empty() {
                    free.push(batch);
                    break;
                }
                work_tx.send(batch).map_err(|_| worker_gone())?;
                in_flight += 1;
            }
            if in_flight == 0 {
                return Ok(());
            }
            // Batches come back in the order they were sent (one worker, FIFO channels).
            let mut batch = done_rx.recv().map_err(|_| worker_gone())?;
            in_flight -= 1;
            let mut analyses = batch.analyses.drain(..);
            let mut problems = batch.problems.drain(..);
            let mut problems_done = 0;
            for row in &batch.rows {
                let Ok(seq) = u64::try_from(row.seq) else {
                    checker.report(Divergence::BadRow {
                        seq: row.seq,
                        reason: "negative seq".into(),
                    });
                    continue;
                };
                let analysis = analyses.next().ok_or_else(worker_gone)?;
                checker.report.events += 1;
                if seq > position {
                    // Rows `position..seq` are missing: their stored leaf hashes stand in
                    // for them while they exist.
                    let first_missing = position;
                    while position < seq && lost.is_none() {
                        let stored = match &cursors[0].peeked {
                            Some((i, Ok(h))) if *i >= 0 && *i as u64 == position => Some(*h),
                            _ => None,
                        };
                        match stored {
                            Some(h) => {
                                push(&mut builder, &mut cursors, &mut checker, h, false)?;
                                position += 1;
                                check_checkpoints(
                                    &mut checker,
                                    &mut cp_state,
                                    &mut next_checkpoint,
                                    &mut checkpoint_rows,
                                    position,
                                    lost,
                                    &builder,
                                    verify_note,
                                )?;
                            }
                            None => lost = Some(position),
                        }
                    }
                    checker.report(Divergence::EventsMissing {
                        first: first_missing,
                        last: seq - 1,
                        leaf_hashes_kept: lost.is_none(),
                    });
                    position = seq;
                    check_checkpoints(
                        &mut checker,
                        &mut cp_state,
                        &mut next_checkpoint,
                        &mut checkpoint_rows,
                        position,
                        lost,
                        &builder,
                        verify_note,
                    )?;
                }
                let misplaced = match analysis.offset {
                    Ok(offset) => {
                        checker.shifted(seq, offset);
                        for _ in problems_done..analysis.problems_end {
                            let d = problems.next().ok_or_else(worker_gone)?;
                            checker.report(d);
                        }
                        offset != 0
                    }
                    Err(reason) => {
                        checker.shifted(seq, 0);
                        checker.report(Divergence::LeafUnreadable { seq, reason });
                        false
                    }
                };
                problems_done = analysis.problems_end;
                if lost.is_none() {
                    push(
                        &mut builder,
                        &mut cursors,
                        &mut checker,
                        analysis.leaf_hash,
                        misplaced,
                    )?;
                }
                position += 1;
                check_checkpoints(
                    &mut checker,
                    &mut cp_state,
                    &mut next_checkpoint,
                    &mut checkpoint_rows,
                    position,
                    lost,
                    &builder,
                    verify_note,
                )?;
                if position % PROGRESS_EVERY == 0 {
                    progress(position, total.max(position));
                }
            }
            drop((analyses, problems));
            free.push(batch);
        }
    })?;
    // Checkpoints beyond the end.
    while let Some(cp) = next_checkpoint.take() {
        if let Ok(cp) = &cp {
            checker.report.checkpoints_checked += 1;
            if let Err(reason) = verify_note(cp) {
                checker.report(Divergence::CheckpointSignature {
                    size: cp.size,
                    reason,
                });
            }
            checker.report(Divergence::CheckpointBeyondEnd {
                size: cp.size,
                events: position,
            });
        }
        next_checkpoint = self::next_checkpoint(&mut checkpoint_rows, &mut checker)?;
    }
    // Stored nodes beyond the end (all of them were consumed by the recomputation
    // otherwise); after a lost leaf the rest of the tree was not recomputed.
    if lost.is_none() {
        let mut count = 0u64;
        // The node that would have completed first: the smallest end, the lowest level.
        let mut first: Option<(u128, u8, u64)> = None;
        let mut leaf_nodes_up_to = None;
        for (level, cursor) in cursors.iter_mut().enumerate() {
            while let Some((idx, _)) = cursor.peeked {
                match u64::try_from(idx) {
                    Ok(idx) => {
                        count += 1;
                        let end = (idx as u128 + 1) << level;
                        if first.is_none_or(|(f, _, _)| end < f) {
                            first = Some((end, level as u8, idx));
                        }
                        if level == 0 {
                            leaf_nodes_up_to = Some(idx);
                        }
                    }
                    Err(_) => {
                        checker.report(Divergence::NodeUnexpected {
                            level: level as u8,
                            idx,
                        });
                    }
                }
                cursor.advance()?;
            }
        }
        if let Some((_, level, idx)) = first {
            checker.report(Divergence::NodesBeyondEnd {
                events: position,
                count,
                first: (level, idx),
                leaf_nodes_up_to,
            });
        }
    }
    progress(position, total.max(position));
    Ok(checker.report)
}

/// Pushes a leaf hash and compares every node it completes with the stored one.
fn push(
    builder: &mut TreeBuilder,
    cursors: &mut [NodeCursor<'_>],
    checker: &mut Checker,
    leaf_hash: Hash,
    leaf_explained: bool,
) -> Result<()> {
    builder
        .push_with_nodes(leaf_hash, |level, idx, hash| {
            if checker.error.is_some() {
                return;
            }
            let result = match cursors.get_mut(level as usize) {
                Some(cursor) => checker.check_node(cursor, level, idx, hash, leaf_explained),
                // More levels than were prepared: only possible if rows appeared after
                // the size was read, which the snapshot rules out.
                None => Err(StoreError::Corrupt(format!(
                    "journal node level {level} was not expected"
                ))),
            };
            if let Err(e) = result {
                checker.error = Some(e);
            }
        })
        .map_err(StoreError::from)?;
    match checker.error.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[derive(Default)]
struct CheckpointState {
    /// The largest checkpoint that matched the recomputed tree.
    last_good: Option<u64>,
    /// Whether the previous checkpoint matched.
    previous_matched: bool,
}

fn next_checkpoint(
    rows: &mut rusqlite::Rows<'_>,
    checker: &mut Checker,
) -> Result<Option<std::result::Result<StoredCheckpoint, ()>>> {
    match rows.next()? {
        None => Ok(None),
        Some(row) => Ok(Some(read_checkpoint(row)?.map_err(|d| {
            checker.report(d);
        }))),
    }
}

/// Checks every checkpoint of size `position` or less (the recomputed tree has
/// `position` leaves unless `lost`).
#[allow(clippy::too_many_arguments)]
fn check_checkpoints(
    checker: &mut Checker,
    state: &mut CheckpointState,
    next: &mut Option<std::result::Result<StoredCheckpoint, ()>>,
    rows: &mut rusqlite::Rows<'_>,
    position: u64,
    lost: Option<u64>,
    builder: &TreeBuilder,
    verify_note: &dyn Fn(&StoredCheckpoint) -> std::result::Result<(), String>,
) -> Result<()> {
    loop {
        match next {
            None => return Ok(()),
            Some(Ok(cp)) if cp.size > position => return Ok(()),
            Some(Ok(cp)) => {
                checker.report.checkpoints_checked += 1;
                if let Err(reason) = verify_note(cp) {
                    checker.report(Divergence::CheckpointSignature {
                        size: cp.size,
                        reason,
                    });
                }
                match lost {
                    Some(lost_seq) if cp.size > lost_seq => {
                        checker.report(Divergence::CheckpointUnverifiable {
                            size: cp.size,
                            lost_seq,
                        });
                        state.previous_matched = false;
                    }
                    _ => {
                        // Not lost: the builder is at `position == cp.size`.
                        let recomputed = builder.root();
                        if recomputed == cp.root {
                            if state.previous_matched {
                                checker.report.consistent_pairs += 1;
                            }
                            state.previous_matched = true;
                            state.last_good = Some(cp.size);
                        } else {
                            checker.report(Divergence::CheckpointRootDiffers {
                                size: cp.size,
                                checkpoint: cp.root,
                                recomputed,
                                last_good: state.last_good,
                            });
                            state.previous_matched = false;
                        }
                    }
                }
            }
            Some(Err(())) => {}
        }
        *next = next_checkpoint(rows, checker)?;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn uuid_text_round_trips() {
        let g = [0x0f, 0xa1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff];
        assert_eq!(parse_uuid(uuid_text(&g).as_bytes()), Some(g));
        assert_eq!(parse_uuid(b"0FA10203-0405-0607-0809-0a0b0c0d0eff"), Some(g));
        assert_eq!(parse_uuid(b"0fa10203x0405-0607-0809-0a0b0c0d0eff"), None);
        assert_eq!(parse_uuid(b"0fa10203-0405-0607-0809-0a0b0c0d0ef"), None);
        assert_eq!(parse_uuid(b"0fa10203-0405-0607-0809-0a0b0c0d0efg"), None);
    }

    /// What serde_json makes of a leaf, for comparison with the fast path.
    /// `v`, `seq`, `at` and `actor` as read.
    type Members = (Option<u64>, Option<u64>, Option<i64>, Option<String>);

    fn slow(leaf: &str) -> Option<Members> {
        let h: LeafHead<'_> = serde_json::from_str(leaf).ok()?;
        Some((
            h.v,
            h.seq,
            h.at,
            h.actor
                .map(|a| String::from_utf8(a.0.into_owned()).unwrap()),
        ))
    }

    fn fast(leaf: &str) -> Option<Members> {
        let h = scan_head(leaf.as_bytes())?;
        Some((
            h.v,
            h.seq,
            h.at,
            h.actor
                .map(|a| String::from_utf8(a.0.into_owned()).unwrap()),
        ))
    }

    #[test]
    fn the_fast_leaf_scanner_agrees_with_serde_json_or_defers_to_it() {
        let event = crate::model::NewEvent {
            at_ms: -5,
            event_type: "message.accepted".into(),
            global_id: Some([7; 16]),
            actor: "SYS_A".into(),
            body: serde_json::json!({
                "card": { "a\"}]{[": ["x\\", { "seq": 99 }, [], {}], "n": -15 },
                "z": null, "b": true, "t": "tab\there"
            })
            .as_object()
            .unwrap()
            .clone(),
        };
        let leaf = crate::journal::encode_leaf(12, &event).unwrap();
        let text = std::str::from_utf8(&leaf).unwrap();
        let h = scan_head(&leaf).expect("the writer's form takes the fast path");
        assert_eq!((h.v, h.seq, h.at), (Some(1), Some(12), Some(-5)));
        assert_eq!(&h.event_type.unwrap().0[..], b"message.accepted");
        assert_eq!(&h.global_id.unwrap().0[..], uuid_text(&[7; 16]).as_bytes());
        assert!(matches!(h.actor, Some(Text(Cow::Borrowed(b"SYS_A")))));
        assert_eq!(fast(text), slow(text));
        // Whitespace goes to serde_json, which accepts it.
        let spaced = " { \"v\" : 1 ,\"seq\":3, \"x\" : [ -1.5e3 , {\"y\" : \"}\" } ] , \"at\":0 } ";
        assert_eq!(fast(spaced), None);
        let h = parse_head(spaced.as_bytes()).unwrap();
        assert_eq!((h.v, h.seq, h.at), (Some(1), Some(3), Some(0)));

        // Other forms go to serde_json, which decodes or refuses them.
        for leaf in [
            r#"{"v":1,"se\u0071":5}"#,              // an escaped key
            r#"{"v":1,"seq":5,"actor":"A\u0042"}"#, // an escaped common member
            r#"{"v":1,"seq":5,"seq":6}"#,           // a duplicate member
            r#"{"v":1,"seq":05}"#,                  // a leading zero
            r#"{"v":1,"seq":5.0}"#,                 // not an integer
            r#"{"v":1,"seq":"5"}"#,                 // a string
            r#"{"v":1,"seq":5}x"#,                  // trailing bytes
            r#"{"v":1,"seq":5"#,                    // cut short
            r#"[1]"#,
            "",
        ] {
            assert_eq!(fast(leaf), None, "{leaf}");
        }
        assert_eq!(slow(r#"{"v":1,"se\u0071":5}"#).unwrap().1, Some(5));
        assert_eq!(
            slow(r#"{"v":1,"seq":5,"actor":"A\u0042"}"#)
                .unwrap()
                .3
                .as_deref(),
            Some("AB")
        );
        assert!(parse_head(br#"{"v":1,"seq":5,"seq":6}"#)
            .unwrap_err()
            .contains("duplicate"));
        assert!(parse_head(br#"{"v":2,"seq":5}"#)
            .unwrap_err()
            .contains("version 2"));
        assert!(parse_head(br#"{"v":1}"#).unwrap_err().contains("seq"));
    }

    /// A journal of `n` events written straight into a new store's file, with checkpoints
    /// at `checkpoints` (notes `"ok"`), its triggers dropped for tampering.
    fn small_journal(dir: &tempfile::TempDir, n: u64, checkpoints: &[u64]) -> Connection {
        let path = dir.path().join("journal.db");
        crate::sqlite::SqliteStore::open(&path, Default::default())
            .unwrap()
            .close();
        let conn = Connection::open(&path).unwrap();
        for t in ["events", "nodes", "checkpoints"] {
            for op in ["update", "delete"] {
                conn.execute_batch(&format!("DROP TRIGGER journal_{t}_no_{op}"))
                    .unwrap();
            }
        }
        let mut builder = TreeBuilder::new();
        for seq in 0..n {
            let event = crate::model::NewEvent {
                at_ms: 1000 + seq as i64,
                event_type: "message.accepted".into(),
                global_id: (seq % 3 != 0).then_some([seq as u8; 16]),
                actor: format!("SYS_{}", seq % 5),
                body: serde_json::json!({ "note": format!("event {seq}"), "n": [seq, {}] })
                    .as_object()
                    .unwrap()
                    .clone(),
            };
            let leaf = crate::journal::encode_leaf(seq, &event).unwrap();
            conn.execute(
                "INSERT INTO journal_events (seq, at, type, global_id, actor, leaf)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![
                    seq as i64,
                    event.at_ms,
                    event.event_type,
                    event.global_id.map(|g| g.to_vec()),
                    event.actor,
                    leaf
                ],
            )
            .unwrap();
            let mut nodes = Vec::new();
            builder
                .push_with_nodes(merkle::leaf_hash(&leaf), |l, i, h| nodes.push((l, i, *h)))
                .unwrap();
            for (l, i, h) in nodes {
                conn.execute(
                    "INSERT INTO journal_nodes (level, idx, hash) VALUES (?1, ?2, ?3)",
                    rusqlite::params![l, i as i64, &h[..]],
                )
                .unwrap();
            }
            if checkpoints.contains(&(seq + 1)) {
                conn.execute(
                    "INSERT INTO journal_checkpoints (size, root, made_at, note)
                     VALUES (?1, ?2, 0, 'ok')",
                    rusqlite::params![seq as i64 + 1, &builder.root()[..]],
                )
                .unwrap();
            }
        }
        conn
    }

    fn run(conn: &Connection, batch_rows: usize) -> (VerifyReport, Vec<(u64, u64)>) {
        let mut calls = Vec::new();
        let report = verify_in_batches(
            conn,
            batch_rows,
            &|cp| match cp.note.as_str() {
                "ok" => Ok(()),
                other => Err(format!("note {other:?}")),
            },
            &mut |done, total| calls.push((done, total)),
        )
        .unwrap();
        (report, calls)
    }

    /// The report (its divergences and their order, the progress calls) does not depend on
    /// how the rows are cut into batches for the worker thread.
    #[test]
    fn batches_do_not_change_the_report() {
        let leaves_and_columns = "
            UPDATE journal_events SET leaf = CAST(replace(CAST(leaf AS TEXT), 'event 2',
                'Event 2') AS BLOB) WHERE seq = 2;
            UPDATE journal_events SET actor = 'X', at = 1.5 WHERE seq = 3;
            UPDATE journal_events SET type = 7, global_id = x'00' WHERE seq = 4;
            UPDATE journal_events SET leaf = 'not json' WHERE seq = 5;
            UPDATE journal_events SET leaf = '{\"v\":2,\"seq\":6}' WHERE seq = 6;
            UPDATE journal_events SET seq = -seq - 100 WHERE seq = 7;
            UPDATE journal_events SET seq = seq + 1000 WHERE seq IN (9, 10, 11, 12);
            UPDATE journal_events SET seq = seq - 1001 WHERE seq IN (1010, 1011, 1012);
            UPDATE journal_events SET seq = 12 WHERE seq = 1009;
            UPDATE journal_checkpoints SET note = 'forged' WHERE size = 16;";
        let rows_nodes_and_checkpoints = "
            DELETE FROM journal_events WHERE seq IN (17, 18);
            UPDATE journal_nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = 10;
            UPDATE journal_nodes SET hash = x'01' WHERE level = 0 AND idx = 23;
            INSERT INTO journal_nodes (level, idx, hash) VALUES (2, -1, zeroblob(32));
            UPDATE journal_checkpoints SET root = zeroblob(32) WHERE size = 24;
            DELETE FROM journal_events WHERE seq IN (30, 31);
            DELETE FROM journal_nodes WHERE level = 0 AND idx = 31;
            DELETE FROM journal_events WHERE seq > 42;
            INSERT INTO journal_checkpoints VALUES (60, zeroblob(32), 0, 'ok');";
        let many = "UPDATE journal_events SET actor = 'X' WHERE seq % 2 = 1;";
        let shifted = |first_row, last_row, offset| Divergence::RowsShifted {
            first_row,
            last_row,
            offset,
        };
        let lost = Divergence::EventsMissing {
            first: 30,
            last: 31,
            leaf_hashes_kept: false,
        };
        for (tampering, expected_problems, expect) in [
            (
                leaves_and_columns,
                19,
                vec![shifted(9, 11, 1), shifted(12, 12, -3)],
            ),
            (rows_nodes_and_checkpoints, 9, vec![lost]),
            (many, MAX_PROBLEMS, vec![]),
        ] {
            let dir = tempfile::TempDir::new().unwrap();
            let conn = small_journal(&dir, 45, &[8, 16, 24, 36, 45]);
            let (clean, _) = run(&conn, 4);
            assert!(clean.is_clean(), "{:#?}", clean.problems);
            assert_eq!((clean.events, clean.checkpoints_checked), (45, 5));
            conn.execute_batch(tampering).unwrap();
            let (expected, expected_calls) = run(&conn, usize::MAX);
            assert_eq!(
                expected.problems.len(),
                expected_problems,
                "{tampering}: {}",
                expected
                    .problems
                    .iter()
                    .map(|d| format!("\n{d}"))
                    .collect::<String>()
            );
            for d in expect {
                assert!(expected.problems.contains(&d), "{d:?}");
            }
            for batch_rows in [1, 2, 3, 5, 7, 16] {
                let (report, calls) = run(&conn, batch_rows);
                assert_eq!(report, expected, "{tampering}: batches of {batch_rows}");
                assert_eq!(calls, expected_calls);
            }
        }
    }

    #[test]
    fn consecutive_shifted_rows_are_one_divergence() {
        let mut checker = Checker {
            report: VerifyReport::default(),
            run: None,
            frontier_taint: [false; MAX_LEVEL + 1],
            chain_taint: false,
            error: None,
        };
        for (row, offset) in [(4, 0), (5, 1), (6, 1), (7, 0), (8, -2), (9, 3)] {
            checker.shifted(row, offset);
        }
        let shifted = |first_row, last_row, offset| Divergence::RowsShifted {
            first_row,
            last_row,
            offset,
        };
        assert_eq!(
            checker.report.problems,
            vec![shifted(5, 6, 1), shifted(8, 8, -2), shifted(9, 9, 3)]
        );
        assert_eq!(
            checker.report.problems[0].to_string(),
            "rows out of order: rows 5 to 6 hold the leaves of events 6 to 7 (rows were \
             inserted, deleted or renumbered)"
        );
    }
}
