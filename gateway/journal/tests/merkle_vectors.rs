//! Known-answer tests: the RFC 6962 test data of Google's certificate-transparency /
//! transparency-dev Merkle implementation.
//!
//! Source of the expected values (hex only; no code copied): github.com/transparency-dev/merkle,
//! file `proof/verify_test.go` (variables `leaves`, `roots`, `inclusionProofs`,
//! `consistencyProofs`), as stored at commit 02194e9afb6c1d95b5381350007963aa70fff472. The
//! same values appear in certificate-transparency's C++ `merkle_tree_test.cc`.
//! In that file inclusion vectors name leaves 1-based; here indices are 0-based.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use mezhved_journal::merkle::{
    consistency_proof, empty_root, inclusion_proof, leaf_hash, nodes_completed_by_append, root,
    verify_consistency, verify_inclusion, Hash, MerkleError, TreeBuilder,
};

const LEAVES: [&[u8]; 8] = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
];

/// Roots of the trees of the first 1..=8 leaves.
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (0-based leaf index, tree size, audit path).
const INCLUSION: [(u64, u64, &[&str]); 5] = [
    (0, 1, &[]),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// (old size, new size, consistency proof).
const CONSISTENCY: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

const EMPTY_ROOT: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn h(hex: &str) -> Hash {
    assert_eq!(hex.len(), 64);
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn hs(hexes: &[&str]) -> Vec<Hash> {
    hexes.iter().map(|x| h(x)).collect()
}

fn store() -> HashMap<(u8, u64), Hash> {
    let mut nodes = HashMap::new();
    for (i, leaf) in LEAVES.iter().enumerate() {
        let new = nodes_completed_by_append(i as u64, leaf_hash(leaf), |l, x| {
            nodes
                .get(&(l, x))
                .copied()
                .ok_or(MerkleError::InvalidProof("missing"))
        })
        .unwrap();
        nodes.extend(new.into_iter().map(|(l, x, h)| ((l, x), h)));
    }
    nodes
}

fn lookup(
    nodes: &HashMap<(u8, u64), Hash>,
) -> impl FnMut(u8, u64) -> Result<Hash, MerkleError> + '_ {
    |l, x| {
        nodes
            .get(&(l, x))
            .copied()
            .ok_or(MerkleError::InvalidProof("missing"))
    }
}

#[test]
fn empty_tree_root() {
    assert_eq!(empty_root(), h(EMPTY_ROOT));
    assert_eq!(TreeBuilder::new().root(), h(EMPTY_ROOT));
}

#[test]
fn roots_of_sizes_1_to_8() {
    let nodes = store();
    let mut builder = TreeBuilder::new();
    for (i, want) in ROOTS.iter().enumerate() {
        builder.push_leaf(LEAVES[i]).unwrap();
        assert_eq!(
            root(i as u64 + 1, lookup(&nodes)).unwrap(),
            h(want),
            "size {}",
            i + 1
        );
        assert_eq!(builder.root(), h(want), "builder size {}", i + 1);
    }
}

#[test]
fn inclusion_proofs() {
    let nodes = store();
    for (index, size, want) in INCLUSION {
        let got = inclusion_proof(index, size, lookup(&nodes)).unwrap();
        assert_eq!(got, hs(want), "PATH({index}, {size})");
        let leaf = leaf_hash(LEAVES[index as usize]);
        verify_inclusion(&leaf, index, size, &got, &h(ROOTS[size as usize - 1])).unwrap();
    }
}

#[test]
fn consistency_proofs() {
    let nodes = store();
    for (old, new, want) in CONSISTENCY {
        let got = consistency_proof(old, new, lookup(&nodes)).unwrap();
        assert_eq!(got, hs(want), "PROOF({old}, {new})");
        let (r1, r2) = (h(ROOTS[old as usize - 1]), h(ROOTS[new as usize - 1]));
        verify_consistency(old, new, &r1, &r2, &got).unwrap();
    }
}
