//! A small deterministic PRNG (SplitMix64) and the derivation of independent streams.
//!
//! Written here rather than taken from a crate so that the demo's output depends on
//! nothing but this file: the same seed gives the same population and the same requests
//! whatever crate versions are in the lock file. Everything uses integer arithmetic, so
//! the results are the same on every platform.

/// SplitMix64 (Steele, Lea, Flood 2014): one 64-bit word of state, passes BigCrush.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output function: a bijective 64-bit mixer.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A 64-bit FNV-1a hash of a tag, to name streams.
pub(crate) fn tag(s: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// An independent stream for (seed, purpose, index): e.g. request `index` of a
    /// scenario, so that any request can be made without making the ones before it.
    pub(crate) fn derive(seed: u64, purpose: &str, index: u64) -> Rng {
        Rng::new(mix(
            mix(seed ^ tag(purpose)).wrapping_add(mix(index ^ GOLDEN))
        ))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// Uniform in `0..n` (`n > 0`; 0 when `n == 0`), by Lemire's multiply-shift with
    /// rejection, so without modulo bias.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// Uniform in `lo..=hi` (`lo` when `hi < lo`).
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi < lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// Uniform index into a slice of length `len`.
    pub(crate) fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// A random element of a slice, which must not be empty (callers pass constant
    /// tables or check first).
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// True with probability `per_10000 / 10000`.
    pub(crate) fn chance(&mut self, per_10000: u64) -> bool {
        self.below(10_000) < per_10000
    }

    /// An index chosen with the given integer weights (all zero: the first).
    pub(crate) fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        let mut r = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if r < w {
                return i;
            }
            r -= w;
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // The reference implementation (Vigna's splitmix64.c) seeded with 0.
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn below_and_range_stay_in_bounds() {
        let mut r = Rng::new(7);
        for n in [1u64, 2, 3, 10, 1000, u64::MAX] {
            for _ in 0..1000 {
                assert!(r.below(n) < n);
            }
        }
        assert_eq!(r.below(0), 0);
        for _ in 0..1000 {
            let v = r.range(5, 9);
            assert!((5..=9).contains(&v));
        }
        assert_eq!(r.range(9, 5), 9);
    }

    #[test]
    fn derived_streams_differ_and_repeat() {
        let a: Vec<u64> = (0..4).map(|i| Rng::derive(1, "x", i).next_u64()).collect();
        let b: Vec<u64> = (0..4).map(|i| Rng::derive(1, "x", i).next_u64()).collect();
        assert_eq!(a, b);
        assert_ne!(
            Rng::derive(1, "x", 0).next_u64(),
            Rng::derive(1, "y", 0).next_u64()
        );
        assert_ne!(
            Rng::derive(1, "x", 0).next_u64(),
            Rng::derive(2, "x", 0).next_u64()
        );
    }

    #[test]
    fn weighted_follows_weights() {
        let mut r = Rng::new(3);
        let mut counts = [0u32; 3];
        for _ in 0..10_000 {
            counts[r.weighted(&[1, 0, 3])] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((2_300..2_700).contains(&counts[0]), "{counts:?}");
    }
}
