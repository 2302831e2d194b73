//! The RFC 6962 / RFC 9162 Merkle tree (SHA-256) over a caller-owned store of the nodes of
//! perfect subtrees.
//!
//! # Hashes (RFC 9162 §2.1.1, identical to RFC 6962 §2.1)
//!
//! - `H` is SHA-256; every hash is 32 bytes.
//! - Leaf hash: `H(0x00 || leaf bytes)` ([`leaf_hash`]).
//! - Interior node hash: `H(0x01 || left || right)` ([`node_hash`]).
//! - Root of the empty tree: `H("")` = `e3b0c442…b855` ([`empty_root`]).
//! - The root of `n > 0` leaves is the RFC's `MTH(D[0:n])`: with `k` the largest power of
//!   two strictly below `n`, `MTH(D[0:n]) = H(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`, and the
//!   root of one leaf is its leaf hash. No leaf is ever duplicated to fill a level.
//!
//! # Storage model
//!
//! A node is addressed by `(level, index)` and covers leaves
//! `[index · 2^level, (index + 1) · 2^level)`; level-0 nodes are leaf hashes. Only nodes of
//! *perfect* (complete) subtrees are ever stored, and a stored node never changes once
//! written: appending leaf `n` completes node `(0, n)` and, while the index is odd, its
//! parent (combined with the left sibling, which was completed earlier) —
//! [`nodes_completed_by_append`] lists exactly those. The caller owns the storage (e.g. a
//! SQLite table keyed by `(level, index)`) and hands every function here a `lookup`
//! closure; lookups are only ever made for nodes that are complete at the tree size
//! in question, so a store that is missing one is corrupt.
//!
//! The hash of a non-perfect range `[a, a + len)` (which in RFC 9162's recursion always has
//! `a` aligned to a multiple of the largest power of two ≤ `len`) is folded from the
//! perfect pieces given by the binary decomposition of `len`, right to left, so [`root`],
//! [`inclusion_proof`] and [`consistency_proof`] make O(log n) lookups.
//!
//! # Proofs
//!
//! - [`inclusion_proof`] returns RFC 9162 §2.1.3.1 `PATH(m, D[0:n])` (the RFC 6962 audit
//!   path), deepest sibling first, exactly as the RFC's recursive definition concatenates
//!   it. It is verified by RFC 9162 §2.1.3.2, implemented by [`verify_inclusion`].
//! - [`consistency_proof`] returns RFC 9162 §2.1.4.1 `PROOF(m, D[0:n]) =
//!   SUBPROOF(m, D[0:n], true)`, in the RFC's order. It is verified by RFC 9162 §2.1.4.2,
//!   implemented by [`verify_consistency`].
//! - Conventions outside the RFC's `0 < m < n`: a consistency proof between equal sizes is
//!   empty and verifies iff the two roots are equal; a consistency proof *from size 0* is not
//!   defined by RFC 9162 and is refused on both sides with [`MerkleError::EmptyOldTree`]
//!   (every tree is trivially an extension of the empty tree, so a client holding a size-0
//!   checkpoint needs no proof). An inclusion proof needs `index < size` (so never for
//!   size 0).
//!
//! # Errors
//!
//! Functions that read the store take a `lookup: FnMut(u8, u64) -> Result<Hash, E>` and
//! return `Result<_, E>` with `E: From<MerkleError>`, so the caller's own error type
//! carries both its storage failures and range errors (e.g. a `#[from] MerkleError`
//! variant). A range error is returned before any lookup is made.

use openssl::sha::Sha256;

/// A SHA-256 hash: a leaf hash, an interior node hash or a root.
pub type Hash = [u8; 32];

/// Highest level a stored node can have: a tree has at most `2^64 - 1` leaves, so its
/// largest perfect subtree has `2^63`.
const MAX_LEVEL: usize = 63;

/// Why a tree operation or a proof verification failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// An inclusion proof was asked for (or checked against) a leaf the tree does not have.
    #[error("leaf index {index} is not below the tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// A consistency proof from a larger tree to a smaller one.
    #[error("old tree size {old} is larger than the new tree size {new}")]
    SizeDecreased { old: u64, new: u64 },
    /// A consistency proof from the empty tree, which RFC 9162 does not define.
    #[error("consistency proofs from an empty tree (size 0) are not defined by RFC 9162")]
    EmptyOldTree,
    /// An append to a tree that already has `2^64 - 1` leaves.
    #[error("the tree is full (2^64 - 1 leaves)")]
    TreeFull,
    /// The proof does not prove what it was checked against (the reason is diagnostic).
    #[error("the proof does not verify: {0}")]
    InvalidProof(&'static str),
}

/// `H(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(&[0x00]);
    h.update(leaf);
    h.finish()
}

/// `H(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    // The low-level context, not `openssl::sha::sha256`: in OpenSSL 3 the one-shot
    // `SHA256()` fetches the algorithm from the provider on every call, which costs more
    // than hashing 65 bytes.
    let mut h = Sha256::new();
    h.update(&buf);
    h.finish()
}

/// The root of the empty tree, `H("")`.
pub fn empty_root() -> Hash {
    Sha256::new().finish()
}

/// The largest power of two strictly below `n`; `n` must be at least 2.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Bits `0..=bit` of a `u64` set.
fn mask_through(bit: u32) -> u64 {
    u64::MAX >> (63 - bit)
}

/// `MTH(D[start:start+len])`, `len > 0`, `start` a multiple of the largest power of two
/// `<= len`: folded right to left from the perfect pieces of `len`'s binary decomposition
/// (one lookup per set bit of `len`).
fn range_hash<E, L>(start: u64, len: u64, lookup: &mut L) -> Result<Hash, E>
where
    L: FnMut(u8, u64) -> Result<Hash, E>,
{
    debug_assert!(len > 0);
    debug_assert!(start % (1u64 << (63 - len.leading_zeros())) == 0);
    let mut acc: Option<Hash> = None;
    let mut rest = len;
    while rest != 0 {
        let bit = rest.trailing_zeros();
        // The piece for `bit` starts after all the (larger, further left) higher pieces.
        let piece_start = start + (len & !mask_through(bit));
        let piece = lookup(bit as u8, piece_start >> bit)?;
        acc = Some(match acc {
            None => piece,
            Some(right) => node_hash(&piece, &right),
        });
        rest &= rest - 1;
    }
    // `len > 0`, so the loop ran at least once.
    Ok(acc.unwrap_or_else(empty_root))
}

/// The nodes to store when leaf number `size_before` (0-based) with hash `leaf_hash` is
/// appended to a tree of `size_before` leaves: `(0, size_before, leaf_hash)` followed by
/// each parent `(level, index, hash)` that the append completes, bottom up. The left
/// siblings are read with `lookup` (amortised one lookup per append, at most 63).
pub fn nodes_completed_by_append<E, L>(
    size_before: u64,
    leaf_hash: Hash,
    mut lookup: L,
) -> Result<Vec<(u8, u64, Hash)>, E>
where
    E: From<MerkleError>,
    L: FnMut(u8, u64) -> Result<Hash, E>,
{
    if size_before == u64::MAX {
        return Err(MerkleError::TreeFull.into());
    }
    let mut out = Vec::with_capacity(1 + size_before.trailing_ones() as usize);
    out.push((0, size_before, leaf_hash));
    let (mut level, mut index, mut hash) = (0u8, size_before, leaf_hash);
    while index & 1 == 1 {
        let left = lookup(level, index - 1)?;
        hash = node_hash(&left, &hash);
        index >>= 1;
        level += 1;
        out.push((level, index, hash));
    }
    Ok(out)
}

/// The root `MTH(D[0:size])` of the first `size` leaves ([`empty_root`] for 0), from the
/// perfect subtrees of `size`'s binary decomposition (one lookup per set bit of `size`).
pub fn root<E, L>(size: u64, mut lookup: L) -> Result<Hash, E>
where
    L: FnMut(u8, u64) -> Result<Hash, E>,
{
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(0, size, &mut lookup)
}

/// RFC 9162 §2.1.3.1 `PATH(index, D[0:size])`: the inclusion proof (audit path) of leaf
/// `index` in the tree of `size` leaves, in the RFC's order (the leaf's sibling first, the
/// root's child last). O(log size) lookups.
pub fn inclusion_proof<E, L>(index: u64, size: u64, mut lookup: L) -> Result<Vec<Hash>, E>
where
    E: From<MerkleError>,
    L: FnMut(u8, u64) -> Result<Hash, E>,
{
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size }.into());
    }
    // Walk down from the root; the recursion appends each level's sibling *after* the
    // deeper part of the path, so the hashes collected top-down are reversed at the end.
    let mut path = Vec::with_capacity(64);
    let (mut start, mut n, mut m) = (0u64, size, index);
    while n > 1 {
        let k = split_point(n);
        if m < k {
            path.push(range_hash(start + k, n - k, &mut lookup)?);
            n = k;
        } else {
            path.push(range_hash(start, k, &mut lookup)?);
            start += k;
            m -= k;
            n -= k;
        }
    }
    path.reverse();
    Ok(path)
}

/// RFC 9162 §2.1.4.1 `PROOF(old, D[0:new])`: the consistency proof from the tree of `old`
/// leaves to the tree of `new` leaves, in the RFC's order. Empty for `old == new`;
/// [`MerkleError::EmptyOldTree`] for `old == 0` (module docs). O(log new) lookups.
pub fn consistency_proof<E, L>(old: u64, new: u64, mut lookup: L) -> Result<Vec<Hash>, E>
where
    E: From<MerkleError>,
    L: FnMut(u8, u64) -> Result<Hash, E>,
{
    if old > new {
        return Err(MerkleError::SizeDecreased { old, new }.into());
    }
    if old == 0 {
        return Err(MerkleError::EmptyOldTree.into());
    }
    // SUBPROOF(m, D[start:start+n], b), unrolled: as for PATH, each level's hash is
    // appended after the deeper part, so collect top-down and reverse.
    let mut proof = Vec::with_capacity(64);
    let (mut start, mut n, mut m, mut whole) = (0u64, new, old, true);
    while m != n {
        let k = split_point(n);
        if m <= k {
            proof.push(range_hash(start + k, n - k, &mut lookup)?);
            n = k;
        } else {
            proof.push(range_hash(start, k, &mut lookup)?);
            start += k;
            m -= k;
            n -= k;
            whole = false;
        }
    }
    // SUBPROOF(m, D[m], b): nothing if this subtree is the whole old tree (b = true, whose
    // root the verifier already has), else MTH(D[m]).
    if !whole {
        proof.push(range_hash(start, m, &mut lookup)?);
    }
    proof.reverse();
    Ok(proof)
}

/// RFC 9162 §2.1.3.2: checks that `proof` proves leaf `index` with hash `leaf_hash` is in
/// the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    // Step 1.
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    // Steps 2 and 3.
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf_hash;
    // Step 4.
    for p in proof {
        if sn == 0 {
            return Err(MerkleError::InvalidProof("the inclusion proof is too long"));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 5.
    if sn != 0 {
        return Err(MerkleError::InvalidProof(
            "the inclusion proof is too short",
        ));
    }
    if r != *root {
        return Err(MerkleError::InvalidProof(
            "the inclusion proof leads to a different root",
        ));
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: checks that `proof` proves the tree of `new_size` leaves with root
/// `new_root` extends the tree of `old_size` leaves with root `old_root`. Equal sizes need
/// an empty proof and equal roots; `old_size == 0` is [`MerkleError::EmptyOldTree`].
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::SizeDecreased {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 {
        return Err(MerkleError::EmptyOldTree);
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(MerkleError::InvalidProof(
                "a consistency proof between equal sizes must be empty",
            ));
        }
        if old_root != new_root {
            return Err(MerkleError::InvalidProof(
                "different roots for the same tree size",
            ));
        }
        return Ok(());
    }
    // Step 1.
    let Some((first, rest)) = proof.split_first() else {
        return Err(MerkleError::InvalidProof("the consistency proof is empty"));
    };
    // Step 2: for a power-of-two old size the old root is itself the first node, so the
    // iteration starts from it and continues over the whole proof.
    let (seed, rest) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        (first, rest)
    };
    // Step 3.
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    // Step 4.
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 5.
    let (mut fr, mut sr) = (*seed, *seed);
    // Step 6.
    for c in rest {
        if sn == 0 {
            return Err(MerkleError::InvalidProof(
                "the consistency proof is too long",
            ));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 7.
    if sn != 0 {
        return Err(MerkleError::InvalidProof(
            "the consistency proof is too short",
        ));
    }
    if fr != *old_root {
        return Err(MerkleError::InvalidProof(
            "the consistency proof leads to a different old root",
        ));
    }
    if sr != *new_root {
        return Err(MerkleError::InvalidProof(
            "the consistency proof leads to a different new root",
        ));
    }
    Ok(())
}

/// Streaming recomputation of a tree from its leaf hashes, in order, keeping only the
/// O(log n) frontier (the roots of the perfect subtrees of the size's binary
/// decomposition). It yields every node it completes, which are exactly the nodes a store
/// built with [`nodes_completed_by_append`] holds, so a verifier can compare each stored
/// node with the recomputed one and report the first divergence.
#[derive(Clone)]
pub struct TreeBuilder {
    size: u64,
    /// `frontier[level]` is the perfect subtree at that level, valid iff bit `level` of
    /// `size` is set.
    frontier: [Hash; MAX_LEVEL + 1],
}

impl Default for TreeBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for TreeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeBuilder")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl TreeBuilder {
    /// An empty tree.
    pub fn new() -> Self {
        Self {
            size: 0,
            frontier: [[0; 32]; MAX_LEVEL + 1],
        }
    }

    /// Resumes at `size` leaves from the stored perfect subtrees of `size`'s binary
    /// decomposition (one lookup per set bit of `size`).
    pub fn from_store<E, L>(size: u64, mut lookup: L) -> Result<Self, E>
    where
        L: FnMut(u8, u64) -> Result<Hash, E>,
    {
        let mut builder = Self::new();
        let mut rest = size;
        while rest != 0 {
            let bit = rest.trailing_zeros();
            let start = size & !mask_through(bit);
            builder.frontier[bit as usize] = lookup(bit as u8, start >> bit)?;
            rest &= rest - 1;
        }
        builder.size = size;
        Ok(builder)
    }

    /// The number of leaves pushed (or resumed from).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf_hash: Hash) -> Result<(), MerkleError> {
        self.push_with_nodes(leaf_hash, |_, _, _| {})
    }

    /// Hashes `leaf` ([`leaf_hash`]), appends it and returns its leaf hash.
    pub fn push_leaf(&mut self, leaf: &[u8]) -> Result<Hash, MerkleError> {
        let hash = leaf_hash(leaf);
        self.push(hash)?;
        Ok(hash)
    }

    /// Appends a leaf hash and calls `on_node(level, index, hash)` for each node it
    /// completes, bottom up: the same nodes, in the same order, as
    /// [`nodes_completed_by_append`].
    pub fn push_with_nodes<F>(&mut self, leaf_hash: Hash, mut on_node: F) -> Result<(), MerkleError>
    where
        F: FnMut(u8, u64, &Hash),
    {
        if self.size == u64::MAX {
            return Err(MerkleError::TreeFull);
        }
        let (mut level, mut index, mut hash) = (0usize, self.size, leaf_hash);
        on_node(0, index, &hash);
        while index & 1 == 1 {
            hash = node_hash(&self.frontier[level], &hash);
            index >>= 1;
            level += 1;
            on_node(level as u8, index, &hash);
        }
        // `size < 2^64 - 1`, so the completed subtree has at most 2^63 leaves.
        self.frontier[level] = hash;
        self.size += 1;
        Ok(())
    }

    /// The root `MTH(D[0:size])` of the leaves pushed so far ([`empty_root`] if none).
    pub fn root(&self) -> Hash {
        let mut acc: Option<Hash> = None;
        let mut rest = self.size;
        while rest != 0 {
            let piece = &self.frontier[rest.trailing_zeros() as usize];
            acc = Some(match acc {
                None => *piece,
                Some(right) => node_hash(piece, &right),
            });
            rest &= rest - 1;
        }
        acc.unwrap_or_else(empty_root)
    }
}
