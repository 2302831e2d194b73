//! The crate's store-backed tree against a naive model written straight from RFC 9162's
//! recursive definitions (§2.1.1 MTH, §2.1.3.1 PATH, §2.1.4.1 PROOF/SUBPROOF) over a Vec
//! of leaf hashes, with an in-memory HashMap as the node store filled only through
//! `nodes_completed_by_append`.

#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::collections::HashMap;

use mezhved_journal::merkle::{
    consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash,
    nodes_completed_by_append, root, verify_consistency, verify_inclusion, Hash, MerkleError,
    TreeBuilder,
};
use proptest::prelude::*;

// ---- the naive model ------------------------------------------------------------------

/// Largest power of two strictly below n (n >= 2).
fn k_of(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn mth(d: &[Hash]) -> Hash {
    match d.len() {
        0 => empty_root(),
        1 => d[0],
        n => {
            let k = k_of(n);
            node_hash(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
    let n = d.len();
    if n == 1 {
        return vec![];
    }
    let k = k_of(n);
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth(d)] };
    }
    let k = k_of(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

// ---- the store ------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum TestErr {
    Merkle(MerkleError),
    /// A lookup of a node that is not stored, or not complete at the size asked about.
    BadLookup(u8, u64),
}

impl From<MerkleError> for TestErr {
    fn from(e: MerkleError) -> Self {
        Self::Merkle(e)
    }
}

struct Store {
    nodes: HashMap<(u8, u64), Hash>,
    leaves: Vec<Hash>,
    lookups: Cell<usize>,
}

impl Store {
    fn build(leaves: &[Hash]) -> Self {
        let mut store = Store {
            nodes: HashMap::new(),
            leaves: vec![],
            lookups: Cell::new(0),
        };
        for &h in leaves {
            store.append(h);
        }
        store
    }

    fn append(&mut self, h: Hash) {
        let size = self.leaves.len() as u64;
        let nodes = self.nodes.clone();
        let new = nodes_completed_by_append(size, h, |l, i| {
            nodes.get(&(l, i)).copied().ok_or(TestErr::BadLookup(l, i))
        })
        .unwrap();
        for (l, i, h) in new {
            assert!(self.nodes.insert((l, i), h).is_none(), "node rewritten");
        }
        self.leaves.push(h);
    }

    /// A lookup for questions about the tree of `size` leaves: refuses nodes that are not
    /// complete within the first `size` leaves.
    fn at(&self, size: u64) -> impl FnMut(u8, u64) -> Result<Hash, TestErr> + '_ {
        move |l, i| {
            self.lookups.set(self.lookups.get() + 1);
            let end = (i + 1)
                .checked_mul(1u64 << l)
                .ok_or(TestErr::BadLookup(l, i))?;
            if end > size {
                return Err(TestErr::BadLookup(l, i));
            }
            self.nodes
                .get(&(l, i))
                .copied()
                .ok_or(TestErr::BadLookup(l, i))
        }
    }

    fn take_lookups(&self) -> usize {
        self.lookups.replace(0)
    }
}

fn bits(n: u64) -> usize {
    (64 - n.leading_zeros()) as usize
}

fn leaves(n: usize, seed: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| {
            let len = (seed as usize + i) % 7;
            let bytes: Vec<u8> = (0..len)
                .map(|j| (seed >> (j % 8)) as u8 ^ i as u8)
                .collect();
            leaf_hash(&bytes)
        })
        .collect()
}

// ---- checks ---------------------------------------------------------------------------

fn check_root(store: &Store, n: usize) {
    store.take_lookups();
    let got = root(n as u64, store.at(n as u64)).unwrap();
    assert_eq!(got, mth(&store.leaves[..n]), "root({n})");
    assert!(store.take_lookups() <= bits(n as u64));
}

fn check_inclusion(store: &Store, m: usize, n: usize) {
    store.take_lookups();
    let got = inclusion_proof(m as u64, n as u64, store.at(n as u64)).unwrap();
    assert_eq!(got, path(m, &store.leaves[..n]), "PATH({m}, {n})");
    assert!(
        store.take_lookups() <= 2 * bits(n as u64),
        "lookups for PATH({m}, {n})"
    );
    let r = mth(&store.leaves[..n]);
    verify_inclusion(&store.leaves[m], m as u64, n as u64, &got, &r).unwrap();
}

fn check_consistency(store: &Store, m: usize, n: usize) {
    store.take_lookups();
    let got = consistency_proof(m as u64, n as u64, store.at(n as u64)).unwrap();
    let want = if m == n {
        vec![]
    } else {
        subproof(m, &store.leaves[..n], true)
    };
    assert_eq!(got, want, "PROOF({m}, {n})");
    assert!(
        store.take_lookups() <= 3 * bits(n as u64),
        "lookups for PROOF({m}, {n})"
    );
    let (r1, r2) = (mth(&store.leaves[..m]), mth(&store.leaves[..n]));
    verify_consistency(m as u64, n as u64, &r1, &r2, &got).unwrap();
}

fn check_builder(all: &[Hash], store: &Store) {
    let mut builder = TreeBuilder::new();
    assert_eq!(builder.root(), empty_root());
    for (n, &h) in all.iter().enumerate() {
        let mut formed = vec![];
        builder
            .push_with_nodes(h, |l, i, h| formed.push((l, i, *h)))
            .unwrap();
        for (l, i, h) in &formed {
            assert_eq!(store.nodes.get(&(*l, *i)), Some(h), "node ({l}, {i})");
        }
        assert_eq!(builder.size(), n as u64 + 1);
        assert_eq!(builder.root(), mth(&all[..=n]));
        let resumed = TreeBuilder::from_store(n as u64 + 1, store.at(n as u64 + 1)).unwrap();
        assert_eq!(resumed.root(), builder.root());
    }
    assert_eq!(store.nodes.len(), {
        let mut b = TreeBuilder::new();
        let mut count = 0;
        for &h in all {
            b.push_with_nodes(h, |_, _, _| count += 1).unwrap();
        }
        count
    });
}

#[test]
fn exhaustive_up_to_70() {
    let all = leaves(70, 7);
    let store = Store::build(&all);
    for n in 0..=70 {
        check_root(&store, n);
        for m in 0..n {
            check_inclusion(&store, m, n);
        }
        for m in 1..=n {
            check_consistency(&store, m, n);
        }
    }
    check_builder(&all, &store);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn matches_the_rfc_definitions(
        size in 0usize..=300,
        seed in any::<u64>(),
        picks in prop::collection::vec((any::<u16>(), any::<u16>()), 1..24),
    ) {
        let all = leaves(size, seed);
        let store = Store::build(&all);
        check_builder(&all, &store);
        for (a, b) in picks {
            let n = a as usize % (size + 1);
            check_root(&store, n);
            if n > 0 {
                check_inclusion(&store, b as usize % n, n);
                check_consistency(&store, 1 + b as usize % n, n);
            }
        }
    }
}

#[test]
fn range_errors_come_before_any_lookup() {
    let mut never = |l: u8, i: u64| -> Result<Hash, TestErr> { Err(TestErr::BadLookup(l, i)) };
    assert_eq!(
        inclusion_proof(0, 0, &mut never),
        Err(TestErr::Merkle(MerkleError::IndexOutOfRange {
            index: 0,
            size: 0
        }))
    );
    assert_eq!(
        inclusion_proof(5, 5, &mut never),
        Err(TestErr::Merkle(MerkleError::IndexOutOfRange {
            index: 5,
            size: 5
        }))
    );
    assert_eq!(
        consistency_proof(3, 2, &mut never),
        Err(TestErr::Merkle(MerkleError::SizeDecreased {
            old: 3,
            new: 2
        }))
    );
    assert_eq!(
        consistency_proof(0, 4, &mut never),
        Err(TestErr::Merkle(MerkleError::EmptyOldTree))
    );
    assert_eq!(consistency_proof(4, 4, &mut never), Ok(vec![]));
    assert_eq!(root(0, &mut never), Ok(empty_root()));
    assert_eq!(
        nodes_completed_by_append(u64::MAX, [0; 32], &mut never),
        Err(TestErr::Merkle(MerkleError::TreeFull))
    );
}

#[test]
fn lookup_errors_propagate() {
    let mut fail = |l: u8, i: u64| -> Result<Hash, TestErr> { Err(TestErr::BadLookup(l, i)) };
    assert_eq!(root(3, &mut fail), Err(TestErr::BadLookup(0, 2)));
    assert!(inclusion_proof(0, 2, &mut fail).is_err());
    assert!(consistency_proof(1, 3, &mut fail).is_err());
    assert_eq!(
        nodes_completed_by_append(1, [0; 32], &mut fail),
        Err(TestErr::BadLookup(0, 0))
    );
    assert!(TreeBuilder::from_store(5, &mut fail).is_err());
}

#[test]
fn huge_sizes_use_few_lookups() {
    // A synthetic store whose every node hash is derived from its address: enough to
    // check the lookup counts and that nothing overflows near 2^64.
    let calls = Cell::new(0usize);
    let lookup = |l: u8, i: u64| -> Result<Hash, TestErr> {
        calls.set(calls.get() + 1);
        let mut h = [0u8; 32];
        h[0] = l;
        h[1..9].copy_from_slice(&i.to_be_bytes());
        Ok(h)
    };
    for size in [
        u64::MAX,
        u64::MAX - 1,
        1 << 63,
        (1 << 63) + 1,
        0x5555_5555_5555_5555,
    ] {
        calls.set(0);
        for index in [0, size / 3, size - 1] {
            let p = inclusion_proof(index, size, lookup).unwrap();
            assert!(p.len() <= 64);
            let c = calls.replace(0);
            assert!(c <= 128, "{index} {size}: {c}");
        }
        for old in [1, size / 2, size - 1, size] {
            consistency_proof(old, size, lookup).unwrap();
            assert!(calls.replace(0) <= 192);
        }
        root(size, lookup).unwrap();
        assert!(calls.replace(0) <= 64);
        let b = TreeBuilder::from_store(size, lookup).unwrap();
        assert_eq!(b.root(), root(size, lookup).unwrap());
    }
    let mut full = TreeBuilder::from_store(u64::MAX, lookup).unwrap();
    assert_eq!(full.push([0; 32]), Err(MerkleError::TreeFull));
    let mut almost = TreeBuilder::from_store(u64::MAX - 1, lookup).unwrap();
    almost.push([0; 32]).unwrap();
    assert_eq!(almost.size(), u64::MAX);
}
