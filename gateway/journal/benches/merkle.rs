//! Throughput of [`TreeBuilder`], the whole-log recomputation a verifier runs.
//!
//! Groups (throughput = leaves):
//! - `tree_builder/push_leaf_300b`: leaf hashing of 300-byte leaves plus the frontier
//!   update, i.e. the full per-leaf cost of recomputing a log (target: ≥ 1 M leaves/s);
//! - `tree_builder/push_hash`: the frontier update alone, on precomputed leaf hashes;
//! - `tree_builder/push_with_nodes_300b`: as the first, also reporting each completed node
//!   (what a verifier comparing stored nodes does, minus the store reads).
//!
//! Run: `cargo bench -p mezhved-journal --bench merkle`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mezhved_journal::merkle::{leaf_hash, TreeBuilder};

const LEAVES: u64 = 1 << 16;
const LEAF_LEN: usize = 300;

fn leaves() -> Vec<Vec<u8>> {
    (0..LEAVES)
        .map(|i| {
            let mut leaf = vec![0u8; LEAF_LEN];
            for (j, b) in leaf.iter_mut().enumerate() {
                *b = (i as usize).wrapping_mul(31).wrapping_add(j) as u8;
            }
            leaf
        })
        .collect()
}

fn tree_builder(c: &mut Criterion) {
    let leaves = leaves();
    let hashes: Vec<_> = leaves.iter().map(|l| leaf_hash(l)).collect();
    let mut group = c.benchmark_group("tree_builder");
    group.throughput(Throughput::Elements(LEAVES));

    group.bench_function("push_leaf_300b", |b| {
        b.iter_batched_ref(
            TreeBuilder::new,
            |builder| {
                for leaf in &leaves {
                    let _ = black_box(builder.push_leaf(leaf));
                }
                black_box(builder.root())
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("push_hash", |b| {
        b.iter_batched_ref(
            TreeBuilder::new,
            |builder| {
                for h in &hashes {
                    let _ = black_box(builder.push(*h));
                }
                black_box(builder.root())
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("push_with_nodes_300b", |b| {
        b.iter_batched_ref(
            TreeBuilder::new,
            |builder| {
                let mut acc = 0u8;
                for leaf in &leaves {
                    let _ = builder.push_with_nodes(leaf_hash(leaf), |_, _, h| acc ^= h[0]);
                }
                black_box(acc)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, tree_builder);
criterion_main!(benches);
