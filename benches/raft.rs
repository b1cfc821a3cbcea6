//! Proposals committed per second through a 3-node raft group in memory, and the heap
//! allocations each proposal costs. The group is driven the way a store drives it: tick,
//! step, take the `Ready`, persist to `MemStorage`, deliver messages, apply, advance.
//!
//!     cargo bench --bench raft

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrokv::raft::message::{ConfState, Snapshot, SnapshotMetadata};
use ferrokv::raft::{Config, MemStorage, Message, NodeId, RawNode, StateRole};

/// Counts allocations, so the benchmark can report them per proposal.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Group {
    nodes: BTreeMap<NodeId, (RawNode<MemStorage>, MemStorage)>,
    in_flight: VecDeque<Message>,
    leader: NodeId,
}

impl Group {
    fn new() -> Self {
        let voters = vec![1, 2, 3];
        let mut nodes = BTreeMap::new();
        for &id in &voters {
            let storage = MemStorage::new();
            storage
                .apply_snapshot(Snapshot {
                    metadata: SnapshotMetadata {
                        index: 5,
                        term: 5,
                        conf_state: ConfState::new(voters.clone()),
                    },
                    data: Vec::new(),
                })
                .unwrap();
            let mut config = Config::new(id, Vec::new(), 10, 2, id);
            config.max_inflight_msgs = 256;
            nodes.insert(id, (RawNode::new(&config, storage.clone()).unwrap(), storage));
        }
        let mut group = Group {
            nodes,
            in_flight: VecDeque::new(),
            leader: 1,
        };
        group.nodes.get_mut(&1).unwrap().0.campaign().unwrap();
        group.settle();
        assert_eq!(group.nodes[&1].0.raft.state, StateRole::Leader);
        group
    }

    /// Handles every `Ready` and delivers every message until the group is quiet.
    fn settle(&mut self) {
        loop {
            let mut busy = false;
            for (node, storage) in self.nodes.values_mut() {
                while node.has_ready() {
                    busy = true;
                    let ready = node.ready();
                    storage.append(&ready.entries);
                    if let Some(hard_state) = ready.hard_state {
                        storage.set_hard_state(hard_state);
                    }
                    self.in_flight.extend(ready.messages.iter().cloned());
                    node.advance(ready);
                }
            }
            while let Some(m) = self.in_flight.pop_front() {
                busy = true;
                self.nodes.get_mut(&m.to).unwrap().0.step(m).unwrap();
            }
            if !busy {
                return;
            }
        }
    }

    fn commit_batch(&mut self, proposals: usize) {
        let before = self.nodes[&self.leader].0.raft.raft_log.committed;
        let leader = &mut self.nodes.get_mut(&self.leader).unwrap().0;
        for _ in 0..proposals {
            leader.propose(vec![0u8; 64]).unwrap();
        }
        self.settle();
        let after = self.nodes[&self.leader].0.raft.raft_log.committed;
        assert_eq!(after - before, proposals as u64);
        // Keep memory flat: compact what every node applied.
        for (node, storage) in self.nodes.values() {
            let applied = node.raft.raft_log.applied;
            if applied > storage.first_index_for_bench() + 4096 {
                storage.compact(applied, Vec::new()).unwrap();
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut group = Group::new();
    // Allocations per proposal, measured once outside criterion's timing.
    group.commit_batch(1_000);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    group.commit_batch(10_000);
    let per_proposal = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / 10_000.0;
    println!(
        "raft: {per_proposal:.1} allocations per proposal (3 nodes, 64-byte entries, batches of 10,000)"
    );

    let mut benches = c.benchmark_group("raft");
    for batch in [1usize, 100] {
        benches.throughput(Throughput::Elements(batch as u64));
        benches.bench_function(format!("commit {batch} proposals, 3 nodes"), |b| {
            b.iter(|| group.commit_batch(batch));
        });
    }
    benches.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
