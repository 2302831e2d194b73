//! Unpredictable names: boundaries for written bodies and file names for received parts.
//!
//! The randomness comes from `std`'s `RandomState`, whose SipHash keys are seeded from
//! the operating system's generator (per thread, then stepped per instance); hashing a
//! process-wide counter with a fresh instance gives 128 bits that differ on every call
//! and cannot be guessed from outside. Uniqueness of files is still enforced by
//! `create_new`, never assumed.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// 32 lowercase hex digits.
pub(crate) fn random_hex() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let state = RandomState::new();
    let mut out = [0u8; 16];
    for (lane, half) in out.chunks_mut(8).enumerate() {
        let mut h = state.build_hasher();
        h.write_u64(n);
        h.write_usize(lane);
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    hex::encode(out)
}

#[cfg(test)]
mod tests {
    use super::random_hex;
    use std::collections::HashSet;

    #[test]
    fn distinct_and_well_formed() {
        let all: HashSet<String> = (0..1000).map(|_| random_hex()).collect();
        assert_eq!(all.len(), 1000);
        assert!(all
            .iter()
            .all(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit())));
    }
}
