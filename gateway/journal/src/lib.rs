//! Tamper-evident journal primitives for mezhved.
//!
//! - [`merkle`]: the RFC 6962 / RFC 9162 Merkle tree (SHA-256) over a caller-owned store
//!   of perfect-subtree nodes: appends, roots, inclusion and consistency proofs with
//!   O(log n) node lookups, their verifiers, and [`merkle::TreeBuilder`] for recomputing
//!   a whole log at speed.
//! - [`checkpoint`]: C2SP tlog-checkpoints (origin, size, root) in C2SP signed notes,
//!   signed with the gateway's ECDSA P-256, RSA or GOST R 34.10-2012 key.
//!
//! Everything a third party needs to check our proofs and checkpoints with any RFC 6962
//! implementation is specified in those two modules' documentation.

#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod merkle;
