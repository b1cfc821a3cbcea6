//! Seeded chaos for one region on three stores: messages dropped, duplicated and reordered,
//! partitions, log compaction (explicit and automatic, so lagging peers need snapshots), and stores crashed and
//! restarted with every write they had not synced thrown away. Linearizable reads are
//! checked as they are released: the reading peer must hold every write acknowledged before
//! the read was asked for. At the end the network heals and every store must hold exactly the acknowledged
//! writes that applied, and nothing that was answered as stale or refused.
//!
//! `RAFTSTORE_SIM_SEEDS=n` runs n seeds (default 200); `RAFTSTORE_SIM_SEED=s` replays one.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use super::cmd::{AdminCommand, CommandBody, CommandResult, Mutation, RaftCommand, RaftstoreError};
use super::inline_peer::InlinePeer;
use super::meta::{Peer, Region, RegionEpoch};
use super::peer::PeerOptions;
use super::peer_storage::PeerStorage;
use crate::raft::Message;
use crate::raft::Storage as _;
use crate::storage::{Cf, CrashableEngine, Engine, WriteBatch, WriteOptions, cf_contents};

const REGION: u64 = 1;
const STORES: u64 = 3;
const STEPS: u64 = 1500;

/// SplitMix64: small, seedable, good enough to pick actions.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(super) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub(super) type Slot = Arc<Mutex<Option<CommandResult>>>;

struct Sim {
    rng: Rng,
    engines: Vec<CrashableEngine>,
    peers: Vec<Option<InlinePeer<CrashableEngine>>>,
    in_flight: Vec<Message>,
    /// Stores cut off from the others.
    isolated: HashSet<u64>,
    /// Every proposal: key, value, and where its outcome lands.
    proposals: Vec<(Vec<u8>, Vec<u8>, Slot)>,
    restarts: u64,
    crashes: u64,
    reads_served: Arc<Mutex<u64>>,
    snapshots_delivered: u64,
}

/// What a run exercised, so the test can insist the chaos happened.
#[derive(Debug, Default)]
struct Tally {
    acknowledged: u64,
    refused: u64,
    unanswered: u64,
    crashes: u64,
    snapshots: u64,
    reads: u64,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let region = Region {
            id: REGION,
            start_key: Vec::new(),
            end_key: Vec::new(),
            epoch: RegionEpoch::INITIAL,
            peers: (1..=STORES).map(|i| Peer { id: i, store_id: i }).collect(),
        };
        let engines: Vec<CrashableEngine> = (0..STORES).map(|_| CrashableEngine::new()).collect();
        for engine in &engines {
            let mut batch = WriteBatch::new();
            PeerStorage::<CrashableEngine>::write_initial_states(&region, &mut batch);
            engine.write(&batch, WriteOptions::SYNC).unwrap();
        }
        let mut sim = Sim {
            rng: Rng(seed),
            engines,
            peers: Vec::new(),
            in_flight: Vec::new(),
            isolated: HashSet::new(),
            proposals: Vec::new(),
            restarts: 0,
            crashes: 0,
            reads_served: Arc::default(),
            snapshots_delivered: 0,
        };
        sim.peers = (1..=STORES).map(|id| Some(sim.open(id))).collect();
        sim
    }

    fn open(&mut self, id: u64) -> InlinePeer<CrashableEngine> {
        self.restarts += 1;
        let engine = self.engines[(id - 1) as usize].clone();
        let seed = self.rng.next() ^ self.restarts;
        let options = PeerOptions {
            raft_log_gc_tick_interval: 8,
            raft_log_gc_count_limit: 30,
            ..PeerOptions::default()
        };
        InlinePeer::open(id, engine, REGION, options, seed).unwrap()
    }

    fn pump(&mut self, lossy: bool) {
        for peer in self.peers.iter_mut().flatten() {
            self.in_flight.extend(peer.handle_ready().unwrap());
        }
        let mut messages = std::mem::take(&mut self.in_flight);
        if lossy {
            // Reorder by swapping random pairs.
            for i in (1..messages.len()).rev() {
                let j = self.rng.below(i as u64 + 1) as usize;
                messages.swap(i, j);
            }
        }
        // Like a real transport, tell the sender how each snapshot went.
        let mut snapshot_reports = Vec::new();
        for m in messages {
            let (from, to, is_snapshot) = (m.from, m.to, m.snapshot.is_some());
            let delivered = self.deliver(m, lossy);
            if is_snapshot {
                self.snapshots_delivered += u64::from(delivered);
                snapshot_reports.push((from, to, !delivered));
            }
        }
        for (from, to, failed) in snapshot_reports {
            if let Some(sender) = self.peers[(from - 1) as usize].as_mut() {
                sender.report_snapshot(to, failed);
            }
        }
    }

    /// Delivers `m` unless the network or a crash loses it; says whether it arrived.
    fn deliver(&mut self, m: Message, lossy: bool) -> bool {
        if self.isolated.contains(&m.from) || self.isolated.contains(&m.to) {
            return false;
        }
        if lossy && self.rng.chance(10) {
            return false;
        }
        let duplicate = lossy && self.rng.chance(5);
        let Some(peer) = self.peers[(m.to - 1) as usize].as_mut() else {
            return false;
        };
        if duplicate {
            peer.step(m.clone());
        }
        peer.step(m);
        true
    }

    /// One of the peers that believe they lead (after a partition there may be two).
    fn random_leader(&mut self) -> Option<u64> {
        let leaders: Vec<u64> = (1..=STORES)
            .filter(|&id| {
                self.peers[(id - 1) as usize]
                    .as_ref()
                    .is_some_and(|p| p.is_leader())
            })
            .collect();
        leaders
            .get(self.rng.below(leaders.len().max(1) as u64) as usize)
            .copied()
    }

    fn propose(&mut self, n: u64) {
        let Some(id) = self.random_leader() else { return };
        let peer = self.peers[(id - 1) as usize].as_mut().unwrap();
        let key = format!("key-{n:05}").into_bytes();
        let value = format!("value-{n}-at-{id}").into_bytes();
        let slot: Slot = Arc::new(Mutex::new(None));
        let answer = slot.clone();
        let header = peer.command_header();
        let body = CommandBody::Write(vec![Mutation::Put {
            cf: Cf::Default,
            key: key.clone(),
            value: value.clone(),
        }]);
        peer.propose(
            RaftCommand { header, body },
            Box::new(move |result| {
                assert!(answer.lock().unwrap().replace(result).is_none(), "answered twice");
            }),
        );
        self.proposals.push((key, value, slot));
    }

    /// A linearizable read at a random leader: when it is released, that peer's engine must
    /// hold every write acknowledged before the read was asked for.
    fn read(&mut self) {
        let Some(id) = self.random_leader() else { return };
        let acknowledged: Vec<(Vec<u8>, Vec<u8>)> = self
            .proposals
            .iter()
            .filter(|(_, _, slot)| matches!(slot.lock().unwrap().as_ref(), Some(Ok(_))))
            .map(|(key, value, _)| (key.clone(), value.clone()))
            .collect();
        let engine = self.engines[(id - 1) as usize].clone();
        let served = self.reads_served.clone();
        let peer = self.peers[(id - 1) as usize].as_mut().unwrap();
        let header = peer.command_header();
        peer.read_index(
            header,
            Box::new(move |result| {
                if result.is_ok() {
                    for (key, value) in &acknowledged {
                        assert_eq!(
                            engine.get(Cf::Default, key).unwrap().as_ref(),
                            Some(value),
                            "a released read missed the acknowledged write {}",
                            String::from_utf8_lossy(key)
                        );
                    }
                    *served.lock().unwrap() += 1;
                }
            }),
        );
    }

    /// Has a leader compact its log through what it applied, so lagging and restarted peers
    /// need snapshots.
    fn compact_log(&mut self) {
        let Some(peer) = self.peers.iter_mut().flatten().find(|p| p.is_leader()) else {
            return;
        };
        let index = peer.applied_index();
        let Ok(term) = peer.storage().term(index) else {
            return;
        };
        let header = peer.command_header();
        let body = CommandBody::Admin(AdminCommand::CompactLog { index, term });
        peer.propose(RaftCommand { header, body }, Box::new(|_| {}));
    }

    fn step(&mut self, n: u64) {
        let roll = self.rng.below(100);
        if roll < 40 {
            for peer in self.peers.iter_mut().flatten() {
                peer.tick();
            }
        } else if roll < 80 {
            self.propose(n);
        } else if roll < 83 {
            // Crash a store, unless that would leave fewer than a majority up.
            let id = self.rng.below(STORES) + 1;
            let up = self.peers.iter().flatten().count() as u64;
            if self.peers[(id - 1) as usize].is_some() && up > STORES / 2 + 1 {
                self.peers[(id - 1) as usize] = None;
                self.crashes += 1;
                let engine = &mut self.engines[(id - 1) as usize];
                *engine = engine.crash();
            }
        } else if roll < 88 {
            let down: Vec<u64> = (1..=STORES)
                .filter(|&id| self.peers[(id - 1) as usize].is_none())
                .collect();
            if let Some(&id) = down.first() {
                let peer = self.open(id);
                self.peers[(id - 1) as usize] = Some(peer);
            }
        } else if roll < 93 {
            self.compact_log();
        } else if roll < 95 {
            self.read();
        } else if roll < 96 {
            self.isolated.clear();
            if self.rng.chance(50) {
                self.isolated.insert(self.rng.below(STORES) + 1);
            }
        }
        self.pump(true);
    }

    /// Heals everything and lets the group converge.
    fn heal(&mut self) {
        self.isolated.clear();
        for id in 1..=STORES {
            if self.peers[(id - 1) as usize].is_none() {
                let peer = self.open(id);
                self.peers[(id - 1) as usize] = Some(peer);
            }
        }
        for _ in 0..PeerOptions::default().election_tick * 20 {
            for peer in self.peers.iter_mut().flatten() {
                peer.tick();
            }
            for _ in 0..4 {
                self.pump(false);
            }
        }
    }

    fn data(&self, id: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
        cf_contents(&self.engines[(id - 1) as usize], Cf::Default)
    }
}

fn run(seed: u64) -> Tally {
    let mut sim = Sim::new(seed);
    sim.peers[0].as_mut().unwrap().campaign();
    for n in 0..STEPS {
        sim.step(n);
    }
    sim.heal();
    // A final write through whoever leads proves the group is live again.
    let leader = (1..=STORES)
        .find(|&id| sim.peers[(id - 1) as usize].as_ref().unwrap().is_leader())
        .unwrap_or_else(|| panic!("seed {seed}: no leader after healing"));
    let before = sim.proposals.len();
    sim.propose(STEPS);
    assert_eq!(
        sim.proposals.len(),
        before + 1,
        "seed {seed}: the leader took no proposal"
    );
    sim.heal();

    let applied: Vec<u64> = (1..=STORES)
        .map(|id| sim.peers[(id - 1) as usize].as_ref().unwrap().applied_index())
        .collect();
    assert!(
        applied.iter().all(|&a| a == applied[0]),
        "seed {seed}: replicas stopped at different indexes {applied:?} (leader {leader})"
    );
    let data = sim.data(1);
    for id in 2..=STORES {
        assert!(
            sim.data(id) == data,
            "seed {seed}: store {id} differs from store 1"
        );
    }
    let outcomes = check_outcomes(seed, &sim.proposals, &data);
    Tally {
        acknowledged: outcomes.acknowledged,
        refused: outcomes.refused,
        unanswered: outcomes.unanswered,
        crashes: sim.crashes,
        snapshots: sim.snapshots_delivered,
        reads: *sim.reads_served.lock().unwrap(),
    }
}

/// How the writes of a run were answered.
pub(super) struct Outcomes {
    pub(super) acknowledged: u64,
    pub(super) refused: u64,
    pub(super) unanswered: u64,
}

/// Checks each write's answer against the final `data`: acknowledged ones are there, refused
/// ones are not (unanswered or undetermined ones may be either), and the last write, made
/// after healing, was acknowledged.
pub(super) fn check_outcomes(
    seed: u64,
    proposals: &[(Vec<u8>, Vec<u8>, Slot)],
    data: &BTreeMap<Vec<u8>, Vec<u8>>,
) -> Outcomes {
    let mut outcomes = Outcomes {
        acknowledged: 0,
        refused: 0,
        unanswered: 0,
    };
    for (key, value, slot) in proposals {
        match slot.lock().unwrap().as_ref() {
            Some(Ok(_)) => {
                outcomes.acknowledged += 1;
                assert_eq!(
                    data.get(key),
                    Some(value),
                    "seed {seed}: acknowledged write {} lost",
                    String::from_utf8_lossy(key)
                );
            }
            // Unanswered (its peer crashed first) or undetermined: either outcome is fine.
            None | Some(Err(RaftstoreError::Undetermined)) => outcomes.unanswered += 1,
            Some(Err(e)) => {
                outcomes.refused += 1;
                assert!(
                    !data.contains_key(key),
                    "seed {seed}: {} was answered {e} but applied",
                    String::from_utf8_lossy(key)
                );
            }
        }
    }
    let last = &proposals.last().unwrap().2;
    assert!(
        matches!(last.lock().unwrap().as_ref(), Some(Ok(_))),
        "seed {seed}: the write after healing did not commit"
    );
    assert!(outcomes.acknowledged > 0, "seed {seed}: nothing was acknowledged");
    outcomes
}

/// A number from the environment, for seed counts and replays.
pub(super) fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

#[test]
fn seeded_chaos_keeps_every_acknowledged_write_and_nothing_else() {
    if let Some(seed) = env_number("RAFTSTORE_SIM_SEED") {
        eprintln!("seed {seed}: {:?}", run(seed));
        return;
    }
    let mut total = Tally::default();
    for seed in 0..env_number("RAFTSTORE_SIM_SEEDS").unwrap_or(200) {
        let tally = run(seed);
        total.acknowledged += tally.acknowledged;
        total.refused += tally.refused;
        total.unanswered += tally.unanswered;
        total.crashes += tally.crashes;
        total.snapshots += tally.snapshots;
        total.reads += tally.reads;
    }
    eprintln!("all seeds: {total:?}");
    // The runs must have met what they are meant to survive.
    assert!(
        total.crashes > 0
            && total.refused > 0
            && total.unanswered > 0
            && total.snapshots > 0
            && total.reads > 0,
        "{total:?}"
    );
}
