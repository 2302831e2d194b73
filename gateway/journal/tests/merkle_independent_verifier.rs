//! Proofs produced by the crate, checked by an independent verifier written here from
//! RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency), hashing with the `sha2`
//! crate rather than the crate's OpenSSL hashing; plus negative cases that the crate's
//! own verifiers must refuse.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use mezhved_journal::merkle::{
    consistency_proof, inclusion_proof, nodes_completed_by_append, root, verify_consistency,
    verify_inclusion, Hash, MerkleError,
};
use sha2::{Digest, Sha256};

// ---- the independent verifier (RFC 9162 text, step by step) ---------------------------

fn rfc_leaf(data: &[u8]) -> Hash {
    let mut s = Sha256::new();
    s.update([0u8]);
    s.update(data);
    s.finalize().into()
}

fn rfc_hash_children(left: &Hash, right: &Hash) -> Hash {
    let mut s = Sha256::new();
    s.update([1u8]);
    s.update(left);
    s.update(right);
    s.finalize().into()
}

fn lsb(x: u64) -> bool {
    x & 1 == 1
}

/// RFC 9162 §2.1.3.2.
fn rfc_verify_inclusion(
    hash: &Hash,
    leaf_index: u64,
    tree_size: u64,
    path: &[Hash],
    root_hash: &Hash,
) -> bool {
    // 1.
    if leaf_index >= tree_size {
        return false;
    }
    // 2.
    let mut fnn = leaf_index;
    let mut sn = tree_size - 1;
    // 3.
    let mut r = *hash;
    // 4.
    for p in path {
        // a.
        if sn == 0 {
            return false;
        }
        // b.
        if lsb(fnn) || fnn == sn {
            r = rfc_hash_children(p, &r);
            if !lsb(fnn) {
                loop {
                    if lsb(fnn) || fnn == 0 {
                        break;
                    }
                    fnn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = rfc_hash_children(&r, p);
        }
        // c.
        fnn >>= 1;
        sn >>= 1;
    }
    // 5.
    sn == 0 && r == *root_hash
}

/// RFC 9162 §2.1.4.2, for 0 < first < second.
fn rfc_verify_consistency(
    first: u64,
    second: u64,
    first_hash: &Hash,
    second_hash: &Hash,
    consistency_path: &[Hash],
) -> bool {
    assert!(0 < first && first < second);
    // 1.
    if consistency_path.is_empty() {
        return false;
    }
    // 2.
    let mut path = consistency_path.to_vec();
    if first.count_ones() == 1 {
        path.insert(0, *first_hash);
    }
    // 3.
    let mut fnn = first - 1;
    let mut sn = second - 1;
    // 4.
    if lsb(fnn) {
        while lsb(fnn) {
            fnn >>= 1;
            sn >>= 1;
        }
    }
    // 5.
    let mut fr = path[0];
    let mut sr = path[0];
    // 6.
    for c in &path[1..] {
        if sn == 0 {
            return false;
        }
        if lsb(fnn) || fnn == sn {
            fr = rfc_hash_children(c, &fr);
            sr = rfc_hash_children(c, &sr);
            if !lsb(fnn) {
                while !(lsb(fnn) || fnn == 0) {
                    fnn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = rfc_hash_children(&sr, c);
        }
        fnn >>= 1;
        sn >>= 1;
    }
    // 7.
    fr == *first_hash && sr == *second_hash && sn == 0
}

// ---- a tree built with the crate ------------------------------------------------------

struct Tree {
    leaves: Vec<Hash>,
    nodes: HashMap<(u8, u64), Hash>,
}

impl Tree {
    fn new(size: u64) -> Self {
        let mut t = Tree {
            leaves: vec![],
            nodes: HashMap::new(),
        };
        for i in 0..size {
            let leaf = rfc_leaf(format!("entry {i}").as_bytes());
            let new = nodes_completed_by_append(i, leaf, |l, x| t.get(l, x)).unwrap();
            t.nodes.extend(new.into_iter().map(|(l, x, h)| ((l, x), h)));
            t.leaves.push(leaf);
        }
        t
    }

    fn get(&self, l: u8, x: u64) -> Result<Hash, MerkleError> {
        self.nodes
            .get(&(l, x))
            .copied()
            .ok_or(MerkleError::InvalidProof("missing node"))
    }

    fn root(&self, size: u64) -> Hash {
        root(size, |l, x| self.get(l, x)).unwrap()
    }

    fn inclusion(&self, index: u64, size: u64) -> Vec<Hash> {
        inclusion_proof(index, size, |l, x| self.get(l, x)).unwrap()
    }

    fn consistency(&self, old: u64, new: u64) -> Vec<Hash> {
        consistency_proof(old, new, |l, x| self.get(l, x)).unwrap()
    }
}

fn sizes() -> Vec<u64> {
    let mut s: Vec<u64> = (0..=10).map(|k| 1u64 << k).collect(); // 1, 2, 4, …, 1024
    s.extend([3, 5, 6, 7, 9, 13, 31, 33, 100, 255, 257, 1000, 1023, 1025]);
    s
}

fn indices(size: u64) -> Vec<u64> {
    let mut v = vec![0, 1, size / 2, size.saturating_sub(2), size - 1];
    v.retain(|&i| i < size);
    v.sort_unstable();
    v.dedup();
    v
}

fn olds(size: u64) -> Vec<u64> {
    let mut v = vec![1, 2, size / 2, size - 1, size];
    v.retain(|&o| 1 <= o && o <= size);
    v.sort_unstable();
    v.dedup();
    v
}

fn flipped(proof: &[Hash], i: usize, bit: usize) -> Vec<Hash> {
    let mut p = proof.to_vec();
    p[i][bit / 8] ^= 1 << (bit % 8);
    p
}

// ---- tests ----------------------------------------------------------------------------

#[test]
fn size_zero_has_no_proofs() {
    let t = Tree::new(0);
    assert_eq!(
        inclusion_proof(0, 0, |l, x| t.get(l, x)),
        Err(MerkleError::IndexOutOfRange { index: 0, size: 0 })
    );
    assert_eq!(
        consistency_proof(0, 0, |l, x| t.get(l, x)),
        Err(MerkleError::EmptyOldTree)
    );
    let empty = t.root(0);
    assert_eq!(empty, <[u8; 32]>::from(Sha256::digest(b"")));
    assert!(verify_inclusion(&empty, 0, 0, &[], &empty).is_err());
    assert!(!rfc_verify_inclusion(&empty, 0, 0, &[], &empty));
    assert_eq!(
        verify_consistency(0, 0, &empty, &empty, &[]),
        Err(MerkleError::EmptyOldTree)
    );
    let one = Tree::new(1);
    assert_eq!(
        verify_consistency(0, 1, &empty, &one.root(1), &[]),
        Err(MerkleError::EmptyOldTree)
    );
    assert_eq!(
        verify_consistency(2, 1, &empty, &one.root(1), &[]),
        Err(MerkleError::SizeDecreased { old: 2, new: 1 })
    );
}

#[test]
fn size_one() {
    let t = Tree::new(1);
    let r = t.root(1);
    assert_eq!(r, t.leaves[0]);
    let p = t.inclusion(0, 1);
    assert!(p.is_empty());
    assert!(rfc_verify_inclusion(&t.leaves[0], 0, 1, &p, &r));
    verify_inclusion(&t.leaves[0], 0, 1, &p, &r).unwrap();
    assert!(verify_inclusion(&t.leaves[0], 0, 1, &[r], &r).is_err());
    assert!(verify_inclusion(&t.leaves[0], 1, 1, &p, &r).is_err());
    assert!(t.consistency(1, 1).is_empty());
    verify_consistency(1, 1, &r, &r, &[]).unwrap();
    assert!(verify_consistency(1, 1, &r, &[0; 32], &[]).is_err());
    assert!(verify_consistency(1, 1, &r, &r, &[r]).is_err());
}

#[test]
fn inclusion_proofs_verify_independently_and_tampering_fails() {
    let big = Tree::new(1025);
    for size in sizes() {
        let r = big.root(size);
        for index in indices(size) {
            let leaf = big.leaves[index as usize];
            let proof = big.inclusion(index, size);
            assert!(
                rfc_verify_inclusion(&leaf, index, size, &proof, &r),
                "independent verifier refuses PATH({index}, {size})"
            );
            verify_inclusion(&leaf, index, size, &proof, &r).unwrap();

            let bad = |p: &[Hash], i: u64, n: u64, what: &str| {
                assert!(
                    verify_inclusion(&leaf, i, n, p, &r).is_err(),
                    "{what} accepted for PATH({index}, {size})"
                );
                assert!(
                    !rfc_verify_inclusion(&leaf, i, n, p, &r),
                    "{what}: independent"
                );
            };
            for i in 0..proof.len() {
                for bit in [0, 7, 100, 255] {
                    bad(&flipped(&proof, i, bit), index, size, "flipped bit");
                }
            }
            if !proof.is_empty() {
                bad(&proof[..proof.len() - 1], index, size, "truncated proof");
                bad(&proof[1..], index, size, "proof without its first hash");
            }
            let mut longer = proof.clone();
            longer.push([0; 32]);
            bad(&longer, index, size, "extended proof");
            let mut longer = proof.clone();
            longer.push(r);
            bad(&longer, index, size, "proof extended with the root");
            let mut longer = vec![leaf];
            longer.extend_from_slice(&proof);
            bad(&longer, index, size, "proof with a leading hash");
            // Another index: its leaf hash differs, or the path shape does.
            for other in [index ^ 1, index + 1, index.wrapping_sub(1)] {
                if other != index && other < size {
                    bad(&proof, other, size, "wrong index");
                }
            }
            bad(&proof, size, size, "index = size");
            // Wrong sizes that change the path length (a size ± 1 can keep the shape of
            // some paths, and the shape is all that a size contributes to verification).
            bad(&proof, index, size * 2, "size * 2");
            if index < size / 2 {
                bad(&proof, index, size / 2, "size / 2");
            }
            if size.is_power_of_two() {
                bad(&proof, index, size + 1, "size + 1 past a power of two");
            }
            let mut other_leaf = leaf;
            other_leaf[31] ^= 1;
            assert!(verify_inclusion(&other_leaf, index, size, &proof, &r).is_err());
            let mut other_root = r;
            other_root[0] ^= 0x80;
            assert!(verify_inclusion(&leaf, index, size, &proof, &other_root).is_err());
        }
    }
}

#[test]
fn consistency_proofs_verify_independently_and_tampering_fails() {
    let big = Tree::new(1025);
    for size in sizes() {
        let r2 = big.root(size);
        for old in olds(size) {
            let r1 = big.root(old);
            let proof = big.consistency(old, size);
            verify_consistency(old, size, &r1, &r2, &proof).unwrap();
            if old == size {
                assert!(proof.is_empty());
                assert_eq!(r1, r2);
                continue;
            }
            assert!(
                rfc_verify_consistency(old, size, &r1, &r2, &proof),
                "independent verifier refuses PROOF({old}, {size})"
            );

            let bad = |p: &[Hash], m: u64, n: u64, a: &Hash, b: &Hash, what: &str| {
                assert!(
                    verify_consistency(m, n, a, b, p).is_err(),
                    "{what} accepted for PROOF({old}, {size})"
                );
                if 0 < m && m < n {
                    assert!(
                        !rfc_verify_consistency(m, n, a, b, p),
                        "{what}: independent"
                    );
                }
            };
            for i in 0..proof.len() {
                for bit in [0, 9, 128, 255] {
                    bad(&flipped(&proof, i, bit), old, size, &r1, &r2, "flipped bit");
                }
            }
            bad(
                &proof[..proof.len() - 1],
                old,
                size,
                &r1,
                &r2,
                "truncated proof",
            );
            bad(
                &proof[1..],
                old,
                size,
                &r1,
                &r2,
                "proof without its first hash",
            );
            bad(&[], old, size, &r1, &r2, "empty proof");
            for extra in [[0; 32], r1, r2] {
                let mut longer = proof.clone();
                longer.push(extra);
                bad(&longer, old, size, &r1, &r2, "extended proof");
                let mut longer = vec![extra];
                longer.extend_from_slice(&proof);
                bad(&longer, old, size, &r1, &r2, "proof with a leading hash");
            }
            bad(&proof, old, size, &r2, &r1, "swapped roots");
            bad(&proof, old, size, &r1, &r1, "old root as new root");
            for other in [old + 1, old - 1, old ^ 2] {
                if other != old && other <= size {
                    bad(&proof, other, size, &r1, &r2, "wrong old size");
                }
            }
            bad(&proof, old, size * 2, &r1, &r2, "new size * 2");
            if size / 2 >= old {
                bad(&proof, old, size / 2, &r1, &r2, "new size / 2");
            }
        }
    }
}
