//! Message identifiers: checks on the sender's `MessageID` and the gateway's global IDs.
//!
//! # Time base
//!
//! Both kinds of ID count time the way RFC 4122/RFC 9562 UUIDs of versions 1 and 6 do: a
//! 60-bit number of 100-nanosecond ticks since 1582-10-15 00:00:00 UTC (the start of the
//! Gregorian calendar), see [`ticks_since_gregorian`]. Time is always passed in: nothing
//! here reads the clock.
//!
//! # The sender's `MessageID`
//!
//! [`check_sender_message_id`] enforces protocol.md §3: the `MessageID` a sender puts in
//! `SenderProvidedRequestData` must be a version 1 UUID written in the canonical
//! hyphenated form, and its timestamp must be close to the gateway's clock
//! (`InvalidMessageIdFormat` / `StaleMessageId` faults).
//!
//! # Global IDs (protocol.md §5)
//!
//! `MessageMetadata/MessageId` is assigned by the gateway. It must be unique across all
//! nodes of all regional segments and sort by issue time, so it is a UUID **version 6**
//! (RFC 9562 §5.6: the version 1 fields reordered so that the byte string sorts by time)
//! with the RFC variant, laid out as follows (octets numbered from 0, big-endian):
//!
//! | octets | bits | content |
//! |---|---|---|
//! | 0–3 | 32 | `time_high`: timestamp bits 59..28 |
//! | 4–5 | 16 | `time_mid`: timestamp bits 27..12 |
//! | 6–7 | 4 + 12 | version `0b0110` (6), then `time_low`: timestamp bits 11..0 |
//! | 8–9 | 2 + 14 | variant `0b10` (RFC), then `clock_seq` |
//! | 10 | 8 | `0x01`: layout marker / layout version 1 (its low bit is the multicast bit, which RFC 9562 §6.10 requires to be set in a node ID that is not a MAC address) |
//! | 11 | 8 | reserved, `0x00` |
//! | 12–13 | 16 | regional segment number (u16, big-endian) |
//! | 14–15 | 16 | node number within the segment (u16, big-endian) |
//!
//! * **timestamp** — 60 bits, 100 ns ticks since 1582-10-15 00:00:00 UTC. A
//!   [`GlobalIdGenerator`] never issues the same timestamp twice: it uses
//!   `max(now, previous + 1 tick)`, so its IDs are strictly increasing even when the clock
//!   stalls or steps back, and run slightly ahead of the clock only while more than ten
//!   million IDs a second are requested.
//! * **clock_seq** — 14 bits, a random value chosen by the caller when the generator is
//!   created (i.e. at process start). It separates two processes of the same node (e.g. an
//!   old one not yet stopped and a new one started after the clock was set back) that
//!   happen to reach the same timestamp.
//! * **node field** — octets 10–15: `01 00 SS SS NN NN`. Two generators with different
//!   (segment, node) pairs can never produce the same ID, whatever their clocks say.
//!
//! Ordering: IDs compare (as 16-byte strings, and as [`Uuid`] values, whose `Ord` is
//! byte-wise) first by timestamp, then by clock_seq, then by segment and node. Within one
//! generator, later IDs are always greater; a generator created with a `floor` (the
//! highest ID the node issued before a restart) only issues IDs greater than it.
//!
//! [`decode_global_id`] takes an ID apart again; it answers `None` for any UUID that is
//! not of this layout (not version 6, not the RFC variant, octet 10 ≠ `0x01` or
//! octet 11 ≠ `0x00`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::{Builder, Uuid, Variant};

/// 100 ns ticks from 1582-10-15 00:00:00 UTC to 1970-01-01 00:00:00 UTC.
pub const GREGORIAN_TO_UNIX_TICKS: u64 = 0x01B2_1DD2_1381_4000;

/// The largest timestamp a UUID of version 1 or 6 can hold (60 bits; year 5236).
pub const MAX_TICKS: u64 = (1 << 60) - 1;

const TICKS_PER_SECOND: u64 = 10_000_000;
const NANOS_PER_TICK: u32 = 100;

/// Octet 10 of a global ID: layout marker (multicast bit set; layout version 1).
pub const GLOBAL_ID_LAYOUT_MARKER: u8 = 0x01;

/// The number of 100 ns ticks from 1582-10-15 00:00:00 UTC to `t`, truncated to whole
/// ticks. Times before 1582-10-15 give 0; the result is not limited to 60 bits (callers
/// that put it into a UUID clamp it to [`MAX_TICKS`]).
pub fn ticks_since_gregorian(t: SystemTime) -> u64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => GREGORIAN_TO_UNIX_TICKS.saturating_add(duration_to_ticks_floor(after)),
        Err(e) => {
            // Before 1970: round towards the past, so that a later time never gets fewer
            // ticks than an earlier one.
            let before = e.duration();
            GREGORIAN_TO_UNIX_TICKS.saturating_sub(duration_to_ticks_ceil(before))
        }
    }
}

/// The instant `ticks` 100 ns ticks after 1582-10-15 00:00:00 UTC (inverse of
/// [`ticks_since_gregorian`] for whole ticks).
pub fn system_time_from_gregorian_ticks(ticks: u64) -> SystemTime {
    if ticks >= GREGORIAN_TO_UNIX_TICKS {
        let d = ticks_to_duration(ticks - GREGORIAN_TO_UNIX_TICKS);
        UNIX_EPOCH.checked_add(d).unwrap_or(UNIX_EPOCH)
    } else {
        let d = ticks_to_duration(GREGORIAN_TO_UNIX_TICKS - ticks);
        UNIX_EPOCH.checked_sub(d).unwrap_or(UNIX_EPOCH)
    }
}

fn duration_to_ticks_floor(d: Duration) -> u64 {
    let ticks = d.as_nanos() / u128::from(NANOS_PER_TICK);
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

fn duration_to_ticks_ceil(d: Duration) -> u64 {
    let ticks = d.as_nanos().div_ceil(u128::from(NANOS_PER_TICK));
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

fn ticks_to_duration(ticks: u64) -> Duration {
    // Sub-second remainder is < 10^7 ticks, i.e. < 10^9 ns: fits a u32.
    let nanos = (ticks % TICKS_PER_SECOND) as u32 * NANOS_PER_TICK;
    Duration::new(ticks / TICKS_PER_SECOND, nanos)
}

/// A time for messages: RFC 3339 in UTC when representable, the debug form otherwise.
fn display_time(t: SystemTime) -> String {
    let dt = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs())
            .ok()
            .and_then(|s| chrono::DateTime::from_timestamp(s, d.subsec_nanos())),
        Err(e) => {
            let d = e.duration();
            i64::try_from(d.as_secs()).ok().and_then(|s| {
                if d.subsec_nanos() == 0 {
                    chrono::DateTime::from_timestamp(-s, 0)
                } else {
                    chrono::DateTime::from_timestamp(-s - 1, 1_000_000_000 - d.subsec_nanos())
                }
            })
        }
    };
    match dt {
        Some(dt) => dt.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        None => format!("{t:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The sender's MessageID
// ---------------------------------------------------------------------------------------

/// Why a sender's `MessageID` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageIdError {
    /// Not a canonical hyphenated version 1 RFC 4122 UUID (→ `InvalidMessageIdFormat`).
    #[error("invalid MessageID: {0}")]
    InvalidFormat(String),
    /// A well-formed version 1 UUID whose timestamp lies outside the accepted window
    /// around `now` (→ `StaleMessageId`).
    #[error(
        "stale MessageID: issued at {}, the gateway's time is {}",
        display_time(*issued_at),
        display_time(*now)
    )]
    Stale {
        issued_at: SystemTime,
        now: SystemTime,
    },
}

/// Checks a sender's `MessageID` (protocol.md §3) and returns it parsed.
///
/// `text` must be exactly the 36-character canonical form
/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` of hexadecimal digits (either case, as the SMEV
/// schema's pattern allows; no braces, no `urn:uuid:` prefix, no surrounding whitespace —
/// callers trim the element text first if they want to tolerate it). The UUID must have
/// the RFC 4122 variant and version 1, otherwise [`MessageIdError::InvalidFormat`] says
/// which of these failed.
///
/// Its timestamp must lie within `[now - past_window, now + future_window]` (both ends
/// included), otherwise [`MessageIdError::Stale`].
pub fn check_sender_message_id(
    text: &str,
    now: SystemTime,
    past_window: Duration,
    future_window: Duration,
) -> Result<Uuid, MessageIdError> {
    let uuid = parse_canonical_uuid(text).map_err(MessageIdError::InvalidFormat)?;
    if uuid.get_variant() != Variant::RFC4122 {
        return Err(MessageIdError::InvalidFormat(format!(
            "wrong variant: {:?}, the RFC 4122 variant is required (the first hex digit \
             of the fourth group must be 8, 9, a or b)",
            uuid.get_variant()
        )));
    }
    let version = uuid.get_version_num();
    if version != 1 {
        return Err(MessageIdError::InvalidFormat(format!(
            "version {version}, not 1: the MessageID must be a time-based (version 1) UUID"
        )));
    }
    let issued = v1_ticks(&uuid);
    let now_ticks = ticks_since_gregorian(now);
    let earliest = now_ticks.saturating_sub(duration_to_ticks_floor(past_window));
    let latest = now_ticks.saturating_add(duration_to_ticks_floor(future_window));
    if issued < earliest || issued > latest {
        return Err(MessageIdError::Stale {
            issued_at: system_time_from_gregorian_ticks(issued),
            now,
        });
    }
    Ok(uuid)
}

/// Parses exactly the canonical hyphenated form; the error is a reason for a fault.
fn parse_canonical_uuid(text: &str) -> Result<Uuid, String> {
    const HYPHENS: [usize; 4] = [8, 13, 18, 23];
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return Err(format!(
            "not a UUID: {} characters, the canonical form \
             xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx has 36",
            text.chars().count()
        ));
    }
    let mut out = [0u8; 16];
    let mut nibbles = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        if HYPHENS.contains(&i) {
            if b != b'-' {
                return Err(format!(
                    "not a UUID: a hyphen is expected at position {} \
                     (form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
                    i + 1
                ));
            }
            continue;
        }
        let v = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => {
                return Err(format!(
                    "not a UUID: a hexadecimal digit is expected at position {}",
                    i + 1
                ))
            }
        };
        let slot = &mut out[nibbles / 2];
        *slot = (*slot << 4) | v;
        nibbles += 1;
    }
    Ok(Uuid::from_bytes(out))
}

/// The 60-bit timestamp of a version 1 UUID.
fn v1_ticks(uuid: &Uuid) -> u64 {
    let b = uuid.as_bytes();
    let time_low = u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let time_mid = u64::from(u16::from_be_bytes([b[4], b[5]]));
    let time_hi = u64::from(u16::from_be_bytes([b[6], b[7]]) & 0x0FFF);
    (time_hi << 48) | (time_mid << 32) | time_low
}

// ---------------------------------------------------------------------------------------
// Global IDs
// ---------------------------------------------------------------------------------------

/// Issues the gateway's global IDs for one (segment, node); see the module documentation
/// for the layout. Cheap, `Send + Sync`: one atomic word of state.
#[derive(Debug)]
pub struct GlobalIdGenerator {
    segment: u16,
    node: u16,
    clock_seq: u16,
    /// The smallest timestamp the next ID may carry (previous timestamp + 1).
    next_min: AtomicU64,
}

impl GlobalIdGenerator {
    /// A generator for `node` of regional `segment`.
    ///
    /// `clock_seq` should be random (it is masked to its low 14 bits). `floor` is the
    /// highest ID this node issued before (read from the store at start): every ID this
    /// generator issues is greater than it, whatever the clock says. A floor of another
    /// layout is honoured too (the next ID then compares greater byte-wise).
    pub fn new(segment: u16, node: u16, clock_seq: u16, floor: Option<Uuid>) -> Self {
        let next_min = floor.as_ref().map_or(0, min_ticks_above);
        if next_min > MAX_TICKS {
            tracing::error!(
                floor = %floor.unwrap_or_default(),
                "global ID floor is at the end of the 60-bit timestamp range; \
                 IDs can no longer be made greater than it"
            );
        }
        GlobalIdGenerator {
            segment,
            node,
            clock_seq: clock_seq & 0x3FFF,
            next_min: AtomicU64::new(next_min),
        }
    }

    pub fn segment(&self) -> u16 {
        self.segment
    }

    pub fn node(&self) -> u16 {
        self.node
    }

    /// The 14-bit clock sequence this generator puts in every ID.
    pub fn clock_seq(&self) -> u16 {
        self.clock_seq
    }

    /// The next ID: timestamp `max(ticks(now), previous + 1)`, so IDs of one generator are
    /// strictly increasing even when the clock stalls or steps back.
    ///
    /// The timestamp saturates at [`MAX_TICKS`] (year 5236); only a floor of a foreign
    /// layout at the very top of the range could make it reach that, and then IDs would
    /// repeat — this is logged.
    pub fn next(&self, now: SystemTime) -> Uuid {
        let now_ticks = ticks_since_gregorian(now).min(MAX_TICKS);
        let mut ticks = now_ticks;
        let update = self
            .next_min
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |next_min| {
                ticks = now_ticks.max(next_min).min(MAX_TICKS);
                Some(ticks + 1)
            });
        if let Err(next_min) = update {
            // Unreachable: the closure always returns Some.
            ticks = now_ticks.max(next_min).min(MAX_TICKS);
        }
        if ticks == MAX_TICKS {
            tracing::error!("global ID timestamp saturated at the end of its 60-bit range");
        }
        encode_global_id(ticks, self.clock_seq, self.segment, self.node)
    }
}

/// The smallest timestamp `t` such that a global ID with timestamp `t` (and any clock_seq
/// and node) is greater than `floor` as a byte string; may exceed [`MAX_TICKS`].
fn min_ticks_above(floor: &Uuid) -> u64 {
    let b = floor.as_bytes();
    let top48 = b[..6]
        .iter()
        .fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
    let version = b[6] >> 4;
    let low12 = (u64::from(b[6] & 0x0F) << 8) | u64::from(b[7]);
    match version.cmp(&6) {
        // Same first 48 bits and a smaller version nibble: already greater.
        std::cmp::Ordering::Less => top48 << 12,
        // Same first 64 bits would leave the order to clock_seq and node: one tick more.
        std::cmp::Ordering::Equal => ((top48 << 12) | low12) + 1,
        // A greater version nibble: the first 48 bits must be greater.
        std::cmp::Ordering::Greater => (top48 + 1) << 12,
    }
}

/// Builds a global ID; `clock_seq` is masked to 14 bits and `ticks` to 60.
pub fn encode_global_id(ticks: u64, clock_seq: u16, segment: u16, node: u16) -> Uuid {
    let [s0, s1] = segment.to_be_bytes();
    let [n0, n1] = node.to_be_bytes();
    let node_id = [GLOBAL_ID_LAYOUT_MARKER, 0x00, s0, s1, n0, n1];
    Builder::from_sorted_gregorian_timestamp(ticks & MAX_TICKS, clock_seq & 0x3FFF, &node_id)
        .into_uuid()
}

/// The parts of a global ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalIdParts {
    /// The issue time, to the 100 ns tick.
    pub issued_at: SystemTime,
    pub segment: u16,
    pub node: u16,
    pub clock_seq: u16,
}

/// Takes a global ID apart; `None` if it is not of our layout (version 6, RFC variant,
/// octet 10 = `0x01`, octet 11 = `0x00`).
pub fn decode_global_id(id: &Uuid) -> Option<GlobalIdParts> {
    let b = id.as_bytes();
    if id.get_version_num() != 6
        || id.get_variant() != Variant::RFC4122
        || b[10] != GLOBAL_ID_LAYOUT_MARKER
        || b[11] != 0
    {
        return None;
    }
    Some(GlobalIdParts {
        issued_at: system_time_from_gregorian_ticks(v6_ticks(id)),
        segment: u16::from_be_bytes([b[12], b[13]]),
        node: u16::from_be_bytes([b[14], b[15]]),
        clock_seq: u16::from_be_bytes([b[8], b[9]]) & 0x3FFF,
    })
}

/// The 60-bit timestamp of a version 6 UUID.
fn v6_ticks(uuid: &Uuid) -> u64 {
    let b = uuid.as_bytes();
    let top48 = b[..6]
        .iter()
        .fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
    let low12 = (u64::from(b[6] & 0x0F) << 8) | u64::from(b[7]);
    (top48 << 12) | low12
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    const HOUR: Duration = Duration::from_secs(3600);

    /// 2025-03-01T12:00:00Z.
    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_740_830_400)
    }

    fn v1_at(t: SystemTime, counter: u16) -> Uuid {
        Builder::from_gregorian_timestamp(ticks_since_gregorian(t), counter, &[1, 2, 3, 4, 5, 6])
            .into_uuid()
    }

    fn reason(r: Result<Uuid, MessageIdError>) -> String {
        match r {
            Err(MessageIdError::InvalidFormat(s)) => s,
            other => panic!("expected InvalidFormat, got {other:?}"),
        }
    }

    // ---- time base ----

    #[test]
    fn gregorian_offset_matches_uuid_crate() {
        assert_eq!(ticks_since_gregorian(UNIX_EPOCH), GREGORIAN_TO_UNIX_TICKS);
        // Cross-check with the uuid crate's own conversion.
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, 1_740_830_400, 123_456_700);
        let (ticks, _) = ts.to_gregorian();
        assert_eq!(
            ticks_since_gregorian(t0() + Duration::from_nanos(123_456_700)),
            ticks
        );
    }

    #[test]
    fn ticks_truncate_and_round_trip() {
        let t = t0() + Duration::from_nanos(150);
        let ticks = ticks_since_gregorian(t);
        assert_eq!(ticks, ticks_since_gregorian(t0()) + 1);
        assert_eq!(
            system_time_from_gregorian_ticks(ticks),
            t0() + Duration::from_nanos(100)
        );
        assert_eq!(
            system_time_from_gregorian_ticks(0),
            UNIX_EPOCH - Duration::from_secs(12_219_292_800)
        );
    }

    #[test]
    fn ticks_before_1970_and_before_1582() {
        let t = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(
            ticks_since_gregorian(t),
            GREGORIAN_TO_UNIX_TICKS - TICKS_PER_SECOND
        );
        // Sub-tick before 1970 rounds to the past, keeping the function monotonic.
        let t = UNIX_EPOCH - Duration::from_nanos(50);
        assert_eq!(ticks_since_gregorian(t), GREGORIAN_TO_UNIX_TICKS - 1);
        let start = UNIX_EPOCH - Duration::from_secs(12_219_292_800);
        assert_eq!(ticks_since_gregorian(start), 0);
        assert_eq!(ticks_since_gregorian(start - HOUR), 0);
    }

    // ---- sender MessageID ----

    #[test]
    fn accepts_fresh_v1_in_both_cases() {
        let id = v1_at(t0() - Duration::from_secs(10), 42);
        let lower = id.hyphenated().to_string();
        let upper = lower.to_uppercase();
        assert_eq!(check_sender_message_id(&lower, t0(), HOUR, HOUR), Ok(id));
        assert_eq!(check_sender_message_id(&upper, t0(), HOUR, HOUR), Ok(id));
    }

    #[test]
    fn accepts_real_smev_style_id() {
        // A v1 UUID as SMEV clients generate them; its time is 2017-09-01T10:04:35.5Z-ish.
        let text = "c7dd9a60-8ef8-11e7-9d43-00155d0a0b1f";
        let id = Uuid::parse_str(text).expect("valid");
        let (secs, _) = id.get_timestamp().expect("v1").to_unix();
        let now = UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(check_sender_message_id(text, now, HOUR, HOUR), Ok(id));
    }

    #[test]
    fn rejects_non_canonical_forms() {
        let id = v1_at(t0(), 1);
        let now = t0();
        let simple = id.simple().to_string();
        assert!(reason(check_sender_message_id(&simple, now, HOUR, HOUR)).contains("32 characters"));
        let braced = id.braced().to_string();
        assert!(reason(check_sender_message_id(&braced, now, HOUR, HOUR)).contains("38 characters"));
        let urn = id.urn().to_string();
        assert!(reason(check_sender_message_id(&urn, now, HOUR, HOUR)).starts_with("not a UUID"));
        let spaced = format!(" {} ", id.hyphenated());
        assert!(reason(check_sender_message_id(&spaced, now, HOUR, HOUR)).starts_with("not a UUID"));
        assert!(reason(check_sender_message_id("", now, HOUR, HOUR)).starts_with("not a UUID"));
        // Hyphen in the wrong place (36 chars).
        let s = id.hyphenated().to_string();
        let moved = format!("{}-{}{}", &s[..7], &s[7..8], &s[9..]);
        assert_eq!(moved.len(), 36);
        assert!(reason(check_sender_message_id(&moved, now, HOUR, HOUR)).contains("position 8"));
        // Non-hex digit.
        let bad = format!("g{}", &s[1..]);
        assert!(reason(check_sender_message_id(&bad, now, HOUR, HOUR)).contains("position 1"));
        // Multi-byte characters: length counted in characters in the message, no panic.
        let cyr = "а".repeat(18);
        assert_eq!(cyr.len(), 36);
        assert!(reason(check_sender_message_id(&cyr, now, HOUR, HOUR)).starts_with("not a UUID"));
    }

    #[test]
    fn rejects_wrong_variant() {
        let id = v1_at(t0(), 1);
        let mut b = *id.as_bytes();
        b[8] &= 0x3F; // NCS variant
        let s = Uuid::from_bytes(b).hyphenated().to_string();
        assert!(reason(check_sender_message_id(&s, t0(), HOUR, HOUR)).starts_with("wrong variant"));
        b[8] = (b[8] & 0x1F) | 0xC0; // Microsoft variant
        let s = Uuid::from_bytes(b).hyphenated().to_string();
        assert!(reason(check_sender_message_id(&s, t0(), HOUR, HOUR)).starts_with("wrong variant"));
    }

    #[test]
    fn rejects_other_versions() {
        let v4 = Builder::from_random_bytes([7; 16])
            .into_uuid()
            .hyphenated()
            .to_string();
        assert!(
            reason(check_sender_message_id(&v4, t0(), HOUR, HOUR)).starts_with("version 4, not 1")
        );
        let v6 = encode_global_id(ticks_since_gregorian(t0()), 1, 1, 1)
            .hyphenated()
            .to_string();
        assert!(
            reason(check_sender_message_id(&v6, t0(), HOUR, HOUR)).starts_with("version 6, not 1")
        );
        let nil = Uuid::nil().hyphenated().to_string();
        // The nil UUID fails on the variant first.
        assert!(check_sender_message_id(&nil, t0(), HOUR, HOUR).is_err());
    }

    #[test]
    fn window_bounds_are_inclusive() {
        let now = t0();
        let past = v1_at(now - HOUR, 0).hyphenated().to_string();
        let future = v1_at(now + HOUR, 0).hyphenated().to_string();
        assert!(check_sender_message_id(&past, now, HOUR, HOUR).is_ok());
        assert!(check_sender_message_id(&future, now, HOUR, HOUR).is_ok());

        let too_old_t = now - HOUR - Duration::from_micros(1);
        let too_old = v1_at(too_old_t, 0).hyphenated().to_string();
        assert_eq!(
            check_sender_message_id(&too_old, now, HOUR, HOUR),
            Err(MessageIdError::Stale {
                issued_at: too_old_t,
                now
            })
        );
        let too_new_t = now + HOUR + Duration::from_micros(1);
        let too_new = v1_at(too_new_t, 0).hyphenated().to_string();
        assert_eq!(
            check_sender_message_id(&too_new, now, HOUR, HOUR),
            Err(MessageIdError::Stale {
                issued_at: too_new_t,
                now
            })
        );
        // Asymmetric windows.
        let ahead = v1_at(now + Duration::from_secs(61), 0)
            .hyphenated()
            .to_string();
        assert!(check_sender_message_id(&ahead, now, HOUR, Duration::from_secs(60)).is_err());
        assert!(
            check_sender_message_id(&ahead, now, Duration::ZERO, Duration::from_secs(61)).is_ok()
        );
        // Huge windows saturate instead of overflowing.
        let max = Duration::MAX;
        assert!(check_sender_message_id(&past, now, max, max).is_ok());
    }

    #[test]
    fn stale_error_displays_times() {
        let e = MessageIdError::Stale {
            issued_at: UNIX_EPOCH + Duration::from_secs(1_500_000_000),
            now: t0(),
        };
        let s = e.to_string();
        assert!(s.contains("2017-07-14T02:40:00Z"), "{s}");
        assert!(s.contains("2025-03-01T12:00:00Z"), "{s}");
        let before = MessageIdError::Stale {
            issued_at: UNIX_EPOCH - Duration::from_millis(1500),
            now: t0(),
        };
        assert!(
            before.to_string().contains("1969-12-31T23:59:58.500Z"),
            "{before}"
        );
    }

    // ---- global IDs ----

    #[test]
    fn layout_is_as_documented() {
        let ticks = 0x0123_4567_89AB_CDEF & MAX_TICKS;
        let id = encode_global_id(ticks, 0x3ABC, 0x0A0B, 0x0C0D);
        let b = id.as_bytes();
        assert_eq!(&b[0..4], &[0x12, 0x34, 0x56, 0x78]); // ticks bits 59..28
        assert_eq!(&b[4..6], &[0x9A, 0xBC]); // bits 27..12
        assert_eq!(&b[6..8], &[0x6D, 0xEF]); // version 6 + bits 11..0
        assert_eq!(&b[8..10], &[0x80 | 0x3A, 0xBC]); // variant + clock_seq
        assert_eq!(&b[10..16], &[0x01, 0x00, 0x0A, 0x0B, 0x0C, 0x0D]);
        assert_eq!(id.get_version_num(), 6);
        assert_eq!(id.get_variant(), Variant::RFC4122);
        // The uuid crate reads the same timestamp back.
        let (t, counter) = id.get_timestamp().expect("v6").to_gregorian();
        assert_eq!((t, counter), (ticks, 0x3ABC));
        assert_eq!(id.get_node_id(), Some([0x01, 0x00, 0x0A, 0x0B, 0x0C, 0x0D]));
    }

    #[test]
    fn decode_round_trip() {
        let g = GlobalIdGenerator::new(77, 3, 0xFFFF, None);
        assert_eq!(g.clock_seq(), 0x3FFF);
        let now = t0() + Duration::from_nanos(987_654_300);
        let id = g.next(now);
        let p = decode_global_id(&id).expect("ours");
        assert_eq!(
            p,
            GlobalIdParts {
                issued_at: now,
                segment: 77,
                node: 3,
                clock_seq: 0x3FFF
            }
        );
        assert_eq!((g.segment(), g.node()), (77, 3));
    }

    #[test]
    fn decode_rejects_foreign_ids() {
        assert_eq!(decode_global_id(&Uuid::nil()), None);
        assert_eq!(decode_global_id(&Uuid::max()), None);
        assert_eq!(decode_global_id(&v1_at(t0(), 1)), None);
        assert_eq!(
            decode_global_id(&Builder::from_random_bytes([1; 16]).into_uuid()),
            None
        );
        // A v6 with a MAC-style node.
        let mac =
            Builder::from_sorted_gregorian_timestamp(5, 5, &[0x02, 0, 0, 0, 0, 1]).into_uuid();
        assert_eq!(decode_global_id(&mac), None);
        // Our layout with the reserved octet set.
        let mut b = *encode_global_id(5, 5, 5, 5).as_bytes();
        b[11] = 1;
        assert_eq!(decode_global_id(&Uuid::from_bytes(b)), None);
        // Our layout with a wrong variant.
        let mut b = *encode_global_id(5, 5, 5, 5).as_bytes();
        b[8] &= 0x3F;
        assert_eq!(decode_global_id(&Uuid::from_bytes(b)), None);
    }

    #[test]
    fn strictly_increasing_with_stalled_and_backward_clock() {
        let g = GlobalIdGenerator::new(1, 1, 0x1234, None);
        let mut prev = g.next(t0());
        let mut clock = t0();
        for i in 0..10_000u32 {
            // Stall for a while, then jump back an hour, then forward again.
            match i % 1000 {
                0..=499 => {}
                500 => clock -= HOUR,
                _ => clock += Duration::from_nanos(30),
            }
            let id = g.next(clock);
            assert!(id > prev, "{id} !> {prev} at step {i}");
            assert!(id.as_bytes() > prev.as_bytes());
            assert!(id.as_u128() > prev.as_u128());
            assert!(id.hyphenated().to_string() > prev.hyphenated().to_string());
            prev = id;
        }
        // After the clock has caught up the IDs follow it again.
        let later = t0() + 10 * HOUR;
        assert_eq!(
            decode_global_id(&g.next(later)).map(|p| p.issued_at),
            Some(later)
        );
    }

    #[test]
    fn stalled_clock_advances_by_one_tick() {
        let g = GlobalIdGenerator::new(1, 1, 0, None);
        let a = decode_global_id(&g.next(t0())).expect("ours");
        let b = decode_global_id(&g.next(t0())).expect("ours");
        let c = decode_global_id(&g.next(t0() - HOUR)).expect("ours");
        assert_eq!(a.issued_at, t0());
        assert_eq!(b.issued_at, t0() + Duration::from_nanos(100));
        assert_eq!(c.issued_at, t0() + Duration::from_nanos(200));
    }

    #[test]
    fn floor_is_respected() {
        let old = GlobalIdGenerator::new(1, 1, 0x3FFF, None);
        let floor = old.next(t0() + HOUR);
        // Restarted after the clock was set back, with a smaller clock_seq.
        let g = GlobalIdGenerator::new(1, 1, 0, Some(floor));
        let a = g.next(t0());
        assert!(a > floor);
        assert_eq!(
            decode_global_id(&a).map(|p| p.issued_at),
            Some(t0() + HOUR + Duration::from_nanos(100))
        );
        // A floor in the past does not hold the clock back.
        let g = GlobalIdGenerator::new(1, 1, 0, Some(floor));
        let far = t0() + 5 * HOUR;
        assert_eq!(
            decode_global_id(&g.next(far)).map(|p| p.issued_at),
            Some(far)
        );
    }

    #[test]
    fn foreign_floor_is_respected() {
        let ticks = ticks_since_gregorian(t0() + HOUR);
        let top = encode_global_id(ticks, 0, 0, 0);
        // Floors sharing the first 48 bits with a timestamp, with every version nibble.
        for version in 0u8..16 {
            let mut b = *top.as_bytes();
            b[6] = (version << 4) | (b[6] & 0x0F);
            b[8..].copy_from_slice(&[0xFF; 8]);
            let floor = Uuid::from_bytes(b);
            let g = GlobalIdGenerator::new(9, 9, 0, Some(floor));
            assert!(g.next(t0()) > floor, "version nibble {version}");
        }
        for floor in [
            Uuid::nil(),
            v1_at(t0() + HOUR, 3),
            Builder::from_random_bytes([0xEE; 16]).into_uuid(),
        ] {
            let g = GlobalIdGenerator::new(9, 9, 0, Some(floor));
            assert!(g.next(t0()) > floor, "{floor}");
        }
    }

    #[test]
    fn segments_and_nodes_never_collide() {
        let mut seen = HashSet::new();
        for segment in [0u16, 1, 2, 0xFFFF] {
            for node in [0u16, 1, 2, 0xFFFF] {
                // Same clock_seq and the same instant: only the node field differs.
                let g = GlobalIdGenerator::new(segment, node, 7, None);
                for _ in 0..3 {
                    assert!(seen.insert(g.next(t0())));
                }
            }
        }
        assert_eq!(seen.len(), 48);
    }

    #[test]
    fn concurrent_calls_give_distinct_increasing_ids() {
        let g = Arc::new(GlobalIdGenerator::new(2, 5, 11, None));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let g = Arc::clone(&g);
                std::thread::spawn(move || {
                    let mut ids = Vec::with_capacity(2000);
                    for _ in 0..2000 {
                        ids.push(g.next(t0()));
                    }
                    ids
                })
            })
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            let ids = h.join().expect("thread");
            assert!(ids.windows(2).all(|w| w[0] < w[1]));
            all.extend(ids);
        }
        assert_eq!(all.len(), 8000);
    }

    #[test]
    fn generator_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<GlobalIdGenerator>();
    }

    #[test]
    fn saturates_at_end_of_range() {
        let floor = encode_global_id(MAX_TICKS - 1, 0, 0, 0);
        let g = GlobalIdGenerator::new(0, 0, 0, Some(floor));
        let a = g.next(t0());
        assert!(a > floor);
        assert_eq!(v6_ticks(&a), MAX_TICKS);
        // Saturated: no panic, no wrap-around.
        assert_eq!(v6_ticks(&g.next(t0())), MAX_TICKS);
        let g = GlobalIdGenerator::new(0, 0, 0, Some(Uuid::max()));
        assert_eq!(v6_ticks(&g.next(t0())), MAX_TICKS);
    }

    proptest! {
        #[test]
        fn prop_encode_decode(ticks in 0u64..=MAX_TICKS, cs in any::<u16>(), seg in any::<u16>(), node in any::<u16>()) {
            let id = encode_global_id(ticks, cs, seg, node);
            let p = decode_global_id(&id).expect("ours");
            prop_assert_eq!(ticks_since_gregorian(p.issued_at), ticks);
            prop_assert_eq!((p.segment, p.node, p.clock_seq), (seg, node, cs & 0x3FFF));
            prop_assert_eq!(id, Builder::from_sorted_gregorian_timestamp(ticks, cs & 0x3FFF,
                &[1, 0, (seg >> 8) as u8, seg as u8, (node >> 8) as u8, node as u8]).into_uuid());
        }

        #[test]
        fn prop_order_follows_time(a in 0u64..=MAX_TICKS, b in 0u64..=MAX_TICKS,
                                   ca in any::<u16>(), cb in any::<u16>(),
                                   sa in any::<u16>(), sb in any::<u16>()) {
            prop_assume!(a != b);
            let ia = encode_global_id(a, ca, sa, 1);
            let ib = encode_global_id(b, cb, sb, 2);
            prop_assert_eq!(a < b, ia < ib);
        }

        #[test]
        fn prop_monotonic_under_any_clock(
            start in 0u64..1u64 << 40,
            steps in proptest::collection::vec(-1_000_000i64..1_000_000, 1..200),
            floor_offset in proptest::option::of(-1_000_000i64..1_000_000),
            seg in any::<u16>(), node in any::<u16>(), cs in any::<u16>(),
        ) {
            let base = t0() + Duration::from_nanos(start);
            let shift = |t: SystemTime, d: i64| if d >= 0 {
                t + Duration::from_nanos(d.unsigned_abs())
            } else {
                t - Duration::from_nanos(d.unsigned_abs())
            };
            let floor = floor_offset.map(|d| encode_global_id(
                ticks_since_gregorian(shift(base, d)), 0x3FFF, 0xFFFF, 0xFFFF));
            let g = GlobalIdGenerator::new(seg, node, cs, floor);
            let mut prev = floor;
            let mut clock = base;
            for d in steps {
                clock = shift(clock, d);
                let id = g.next(clock);
                if let Some(p) = prev {
                    prop_assert!(id > p);
                }
                let parts = decode_global_id(&id).expect("ours");
                prop_assert!(parts.issued_at >= system_time_from_gregorian_ticks(ticks_since_gregorian(clock)));
                prop_assert_eq!((parts.segment, parts.node, parts.clock_seq), (seg, node, cs & 0x3FFF));
                prev = Some(id);
            }
        }

        #[test]
        fn prop_message_id_window(offset_ms in -10_000i64..10_000, past_ms in 0u64..5_000, future_ms in 0u64..5_000) {
            let now = t0();
            let t = if offset_ms >= 0 {
                now + Duration::from_millis(offset_ms.unsigned_abs())
            } else {
                now - Duration::from_millis(offset_ms.unsigned_abs())
            };
            let text = v1_at(t, 9).hyphenated().to_string();
            let r = check_sender_message_id(&text, now, Duration::from_millis(past_ms), Duration::from_millis(future_ms));
            let inside = -(past_ms as i64) <= offset_ms && offset_ms <= future_ms as i64;
            prop_assert_eq!(r.is_ok(), inside);
        }

        #[test]
        fn prop_message_id_never_panics(s in "\\PC{0,40}") {
            let _ = check_sender_message_id(&s, t0(), HOUR, HOUR);
        }
    }
}
