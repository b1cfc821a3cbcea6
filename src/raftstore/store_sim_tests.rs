//! Seeded chaos for one region moving between four `Store`s: while writes flow, the leader
//! adds a peer on the store that has none or removes one, stores crash (losing unsynced
//! writes) and restart, messages are lost and reordered. At the end every store that is a
//! member holds the same data, including every acknowledged write, and no write answered as
//! refused.
//!
//! `RAFTSTORE_STORE_SIM_SEEDS=n` runs n seeds (default 100); `RAFTSTORE_STORE_SIM_SEED=s`
//! replays one.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::cmd::{AdminCommand, CommandBody, Mutation, RaftCommand};
use super::meta::{Peer, Region, RegionEpoch};
use super::peer::PeerOptions;
use super::sim_tests::{Rng, Slot, check_outcomes, env_number};
use super::store::{InlineStore, RaftMessage, Store, Transport, Unreachable};
use crate::raft::ConfChangeType;
use crate::storage::Cf;
use crate::storage::{CrashableEngine, cf_contents};

const REGION: u64 = 1;
const STORES: u64 = 4;
const STEPS: u64 = 1200;

type Queue = Arc<Mutex<VecDeque<RaftMessage>>>;

struct QueueTransport(Queue);

impl Transport for QueueTransport {
    fn send(&mut self, message: RaftMessage) -> Result<(), Unreachable> {
        self.0.lock().unwrap().push_back(message);
        Ok(())
    }
}

struct Sim {
    rng: Rng,
    engines: Vec<CrashableEngine>,
    stores: Vec<Option<InlineStore<CrashableEngine, QueueTransport>>>,
    queue: Queue,
    proposals: Vec<(Vec<u8>, Vec<u8>, Slot)>,
    next_peer_id: u64,
    membership_changes: Vec<Slot>,
    crashes: u64,
}

fn options() -> PeerOptions {
    PeerOptions {
        raft_log_gc_tick_interval: 8,
        raft_log_gc_count_limit: 30,
        ..PeerOptions::default()
    }
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let region = Region {
            id: REGION,
            start_key: Vec::new(),
            end_key: Vec::new(),
            epoch: RegionEpoch::INITIAL,
            peers: (1..=3).map(|s| Peer { id: s, store_id: s }).collect(),
        };
        let engines: Vec<CrashableEngine> = (0..STORES).map(|_| CrashableEngine::new()).collect();
        for engine in &engines[..3] {
            Store::<CrashableEngine, QueueTransport>::bootstrap_region(engine, &region).unwrap();
        }
        let mut sim = Sim {
            rng: Rng(seed),
            engines,
            stores: Vec::new(),
            queue: Queue::default(),
            proposals: Vec::new(),
            next_peer_id: 10,
            membership_changes: Vec::new(),
            crashes: 0,
        };
        sim.stores = (1..=STORES).map(|s| Some(sim.open(s))).collect();
        sim
    }

    fn open(&mut self, store_id: u64) -> InlineStore<CrashableEngine, QueueTransport> {
        let engine = self.engines[(store_id - 1) as usize].clone();
        let seed = self.rng.next();
        InlineStore::open(
            store_id,
            engine,
            QueueTransport(self.queue.clone()),
            options(),
            seed,
        )
        .unwrap()
    }

    fn pump(&mut self, lossy: bool) {
        for store in self.stores.iter_mut().flatten() {
            store.handle_readies().unwrap();
        }
        let mut messages: Vec<RaftMessage> = self.queue.lock().unwrap().drain(..).collect();
        if lossy {
            for i in (1..messages.len()).rev() {
                let j = self.rng.below(i as u64 + 1) as usize;
                messages.swap(i, j);
            }
        }
        for m in messages {
            if lossy && self.rng.chance(10) {
                continue;
            }
            if let Some(store) = self.stores[(m.to_peer.store_id - 1) as usize].as_mut() {
                store.on_raft_message(m);
            }
        }
    }

    fn leader(&self) -> Option<u64> {
        let leaders: Vec<u64> = self
            .stores
            .iter()
            .flatten()
            .filter(|s| s.peer(REGION).is_some_and(|p| p.is_leader()))
            .map(|s| s.store_id())
            .collect();
        leaders.last().copied()
    }

    fn propose(&mut self, store_id: u64, body: CommandBody) -> Slot {
        let store = self.stores[(store_id - 1) as usize].as_mut().unwrap();
        let peer = store.peer(REGION).unwrap();
        let header = peer.command_header();
        let slot: Slot = Arc::new(Mutex::new(None));
        let answer = slot.clone();
        store.propose(
            RaftCommand { header, body },
            Box::new(move |result| {
                assert!(answer.lock().unwrap().replace(result).is_none(), "answered twice");
            }),
        );
        slot
    }

    fn put(&mut self, n: u64) {
        let Some(leader) = self.leader() else { return };
        let key = format!("key-{n:05}").into_bytes();
        let value = format!("value-{n}").into_bytes();
        let body = CommandBody::Write(vec![Mutation::Put {
            cf: Cf::Default,
            key: key.clone(),
            value: value.clone(),
        }]);
        let slot = self.propose(leader, body);
        self.proposals.push((key, value, slot));
    }

    /// Adds a peer on the store without one, or removes a random member (never below three).
    fn change_membership(&mut self) {
        let Some(leader) = self.leader() else { return };
        let region = self.stores[(leader - 1) as usize]
            .as_ref()
            .unwrap()
            .peer(REGION)
            .unwrap()
            .region()
            .clone();
        let (change_type, peer) = if region.peers.len() < STORES as usize {
            let store_id = (1..=STORES)
                .find(|s| region.peer_on_store(*s).is_none())
                .expect("a store without a peer");
            self.next_peer_id += 1;
            (
                ConfChangeType::AddNode,
                Peer {
                    id: self.next_peer_id,
                    store_id,
                },
            )
        } else {
            let victim = region.peers[self.rng.below(region.peers.len() as u64) as usize];
            (ConfChangeType::RemoveNode, victim)
        };
        let slot = self.propose(
            leader,
            CommandBody::Admin(AdminCommand::ChangePeer { change_type, peer }),
        );
        self.membership_changes.push(slot);
    }

    fn step(&mut self, n: u64) {
        let roll = self.rng.below(100);
        if roll < 45 {
            for store in self.stores.iter_mut().flatten() {
                store.tick();
            }
        } else if roll < 85 {
            self.put(n);
        } else if roll < 89 {
            self.change_membership();
        } else if roll < 91 {
            let id = self.rng.below(STORES) + 1;
            let up = self.stores.iter().flatten().count() as u64;
            if self.stores[(id - 1) as usize].is_some() && up == STORES {
                self.stores[(id - 1) as usize] = None;
                self.crashes += 1;
                let engine = &mut self.engines[(id - 1) as usize];
                *engine = engine.crash();
            }
        } else if roll < 95
            && let Some(id) = (1..=STORES).find(|&id| self.stores[(id - 1) as usize].is_none())
        {
            let store = self.open(id);
            self.stores[(id - 1) as usize] = Some(store);
        }
        self.pump(true);
    }

    fn heal(&mut self) {
        for id in 1..=STORES {
            if self.stores[(id - 1) as usize].is_none() {
                let store = self.open(id);
                self.stores[(id - 1) as usize] = Some(store);
            }
        }
        for _ in 0..options().election_tick * 20 {
            for store in self.stores.iter_mut().flatten() {
                store.tick();
            }
            for _ in 0..4 {
                self.pump(false);
            }
        }
    }

    fn data(&self, store_id: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
        cf_contents(&self.engines[(store_id - 1) as usize], Cf::Default)
    }
}

/// (acknowledged writes, membership changes applied)
fn run(seed: u64) -> (u64, u64) {
    let mut sim = Sim::new(seed);
    for n in 0..STEPS {
        sim.step(n);
    }
    sim.heal();
    let leader = sim
        .leader()
        .unwrap_or_else(|| panic!("seed {seed}: no leader after healing"));
    sim.put(STEPS);
    sim.heal();

    let region = sim.stores[(leader - 1) as usize]
        .as_ref()
        .unwrap()
        .peer(REGION)
        .unwrap()
        .region()
        .clone();
    let members: Vec<u64> = region.peers.iter().map(|p| p.store_id).collect();
    let applied: Vec<u64> = members
        .iter()
        .map(|&s| {
            let store = sim.stores[(s - 1) as usize].as_ref().unwrap();
            let peer = store
                .peer(REGION)
                .unwrap_or_else(|| panic!("seed {seed}: member store {s} has no peer"));
            assert_eq!(
                peer.region(),
                &region,
                "seed {seed}: store {s} disagrees on the region"
            );
            peer.applied_index()
        })
        .collect();
    assert!(
        applied.iter().all(|&a| a == applied[0]),
        "seed {seed}: members {members:?} stopped at {applied:?}"
    );
    let data = sim.data(members[0]);
    for &s in &members[1..] {
        assert!(
            sim.data(s) == data,
            "seed {seed}: store {s} differs from store {}",
            members[0]
        );
    }
    let acknowledged = check_outcomes(seed, &sim.proposals, &data).acknowledged;
    let changes = sim
        .membership_changes
        .iter()
        .filter(|slot| matches!(slot.lock().unwrap().as_ref(), Some(Ok(_))))
        .count() as u64;
    (acknowledged, changes)
}

#[test]
fn seeded_membership_chaos_keeps_members_identical_and_acknowledged_writes() {
    if let Some(seed) = env_number("RAFTSTORE_STORE_SIM_SEED") {
        eprintln!("seed {seed}: {:?}", run(seed));
        return;
    }
    let (mut acknowledged, mut changes) = (0, 0);
    for seed in 0..env_number("RAFTSTORE_STORE_SIM_SEEDS").unwrap_or(100) {
        let (a, c) = run(seed);
        acknowledged += a;
        changes += c;
    }
    eprintln!("acknowledged writes {acknowledged}, membership changes applied {changes}");
    assert!(acknowledged > 0 && changes > 0);
}
