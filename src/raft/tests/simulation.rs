//! A seeded simulation of whole raft groups under faults, checking Raft's safety properties
//! after every tick and its liveness once the faults stop.
//!
//! Each seed drives 3 or 5 voters (plus one spare node that conf changes may add) for a few
//! thousand ticks: messages are delayed, reordered, duplicated and dropped (0–30%); partitions
//! change every few election timeouts; nodes crash and restart from what they persisted; logs
//! are compacted (so snapshots fly); clients propose, membership changes and leader transfers
//! happen at random. Checked throughout:
//!
//! - **Election safety**: at most one leader per term.
//! - **Log matching**: two logs with an entry of the same index and term agree on every entry
//!   up to it (after every tick for one seed in ten, every 25 ticks for the rest: it compares
//!   whole logs).
//! - **Leader completeness / commit stability**: an entry, once committed anywhere, is the
//!   entry every node commits at that index, forever.
//! - **State-machine safety**: every node applies exactly the committed sequence, in order.
//! - **Liveness after heal**: with faults gone, a leader emerges and a new proposal is applied
//!   everywhere within a bounded number of ticks.
//!
//! `RAFT_SIM_SEEDS=n` runs n seeds (default 1000) from `RAFT_SIM_FIRST_SEED` (default 0);
//! `RAFT_SIM_SEED=s` replays one seed. A failure names the seed to replay.

use std::collections::{BTreeMap, BTreeSet};

use crate::raft::core::SplitMix64;
use crate::raft::message::{ConfState, Snapshot};
use crate::raft::raw_node::conf_change_of;
use crate::raft::{
    ConfChange, ConfChangeType, Config, Entry, EntryType, HardState, MemStorage, Message, MessageType,
    NodeId, RawNode, StateRole, Storage,
};

const ELECTION_TICKS: usize = 10;
const HEARTBEAT_TICKS: usize = 2;
const FAULT_TICKS: u64 = 1_500;
const HEAL_TICKS: u64 = 600;

/// What one node has applied: (index, term, data) of every normal entry, in order.
type Applied = Vec<(u64, u64, Vec<u8>)>;

struct SimNode {
    storage: MemStorage,
    /// `None` while crashed.
    node: Option<RawNode<MemStorage>>,
    applied: Applied,
}

struct Sim {
    seed: u64,
    rng: SplitMix64,
    nodes: BTreeMap<NodeId, SimNode>,
    /// (delivery tick, message).
    in_flight: Vec<(u64, Message)>,
    now: u64,
    drop_fraction: f64,
    duplicate_fraction: f64,
    /// Nodes grouped by partition; `None` means fully connected.
    partition: Option<BTreeMap<NodeId, u8>>,
    /// The leader seen in each term.
    leaders: BTreeMap<u64, NodeId>,
    /// Every entry known committed, by index, with the term of the node that first reported
    /// it committed (at least the term it was committed in).
    committed: BTreeMap<u64, (Entry, u64)>,
    next_proposal: u64,
}

impl Sim {
    fn new(seed: u64, voters: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let initial: Vec<NodeId> = (1..=voters).collect();
        let mut nodes = BTreeMap::new();
        // One spare node that membership changes may bring in. The group is bootstrapped with
        // its log starting after an initial snapshot (TinyKV starts at index 5), so a node
        // that joins with an empty log can only be brought in by a snapshot, which carries
        // the membership; it is never fed the group's history from index 1 without it.
        for id in 1..=voters + 1 {
            let storage = MemStorage::new();
            if id <= voters {
                storage
                    .apply_snapshot(bootstrap_snapshot(initial.clone()))
                    .unwrap();
            }
            let mut sim_node = SimNode {
                storage,
                node: None,
                applied: Vec::new(),
            };
            sim_node.start(id, seed, seed);
            nodes.insert(id, sim_node);
        }
        let drop_fraction = (rng.next_u64() % 31) as f64 / 100.0;
        let duplicate_fraction = (rng.next_u64() % 11) as f64 / 100.0;
        Sim {
            seed,
            rng,
            nodes,
            in_flight: Vec::new(),
            now: 0,
            drop_fraction,
            duplicate_fraction,
            partition: None,
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            next_proposal: 0,
        }
    }

    fn chance(&mut self, fraction: f64) -> bool {
        (self.rng.next_u64() % 1_000_000) as f64 / 1_000_000.0 < fraction
    }

    fn connected(&self, a: NodeId, b: NodeId) -> bool {
        match &self.partition {
            None => true,
            Some(groups) => groups.get(&a) == groups.get(&b),
        }
    }

    fn fail(&self, what: String) -> ! {
        panic!(
            "simulation seed {} failed at tick {}: {what}\nreplay with RAFT_SIM_SEED={}",
            self.seed, self.now, self.seed
        );
    }

    /// One tick of the world: faults, clients, timers, deliveries, I/O, checks.
    fn step(&mut self, faults: bool) {
        self.now += 1;
        if faults {
            self.inject_faults();
        }
        self.maybe_propose();
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for &id in &ids {
            if let Some(node) = self.nodes.get_mut(&id).unwrap().node.as_mut() {
                node.tick();
            }
        }
        self.deliver();
        for &id in &ids {
            self.handle_ready(id);
        }
        self.check_leaders();
        // Comparing whole logs is the costly check: every tick for one seed in ten, every 25
        // ticks for the others.
        if self.seed.is_multiple_of(10) || self.now.is_multiple_of(25) {
            self.check_log_matching();
        }
    }

    fn inject_faults(&mut self) {
        // A new partition (or none) every few election timeouts.
        if self.now.is_multiple_of(ELECTION_TICKS as u64 * 4) {
            self.partition = if self.chance(0.5) {
                let groups = self
                    .nodes
                    .keys()
                    .map(|&id| (id, (self.rng.next_u64() % 2) as u8))
                    .collect();
                Some(groups)
            } else {
                None
            };
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let id = ids[(self.rng.next_u64() % ids.len() as u64) as usize];
        if self.chance(0.004) && self.nodes[&id].node.is_some() {
            self.nodes.get_mut(&id).unwrap().node = None;
        } else if self.chance(0.02) && self.nodes[&id].node.is_none() {
            let (run_seed, rng_seed) = (self.seed, self.seed ^ self.now);
            self.nodes.get_mut(&id).unwrap().start(id, run_seed, rng_seed);
        }
        if self.chance(0.01) {
            self.compact(id);
        }
        if self.chance(0.005) {
            self.change_membership();
        }
        if self.chance(0.005) {
            let target = ids[(self.rng.next_u64() % ids.len() as u64) as usize];
            if let Some(leader) = self.leader() {
                self.nodes
                    .get_mut(&leader)
                    .unwrap()
                    .node
                    .as_mut()
                    .unwrap()
                    .transfer_leader(target);
            }
        }
    }

    /// The node that leads the highest term, if one is running.
    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(&id, n)| n.node.as_ref().map(|node| (id, node)))
            .filter(|(_, node)| node.raft.state == StateRole::Leader)
            .max_by_key(|(_, node)| node.raft.term)
            .map(|(id, _)| id)
    }

    fn maybe_propose(&mut self) {
        if !self.chance(0.3) {
            return;
        }
        let Some(leader) = self.leader() else { return };
        self.next_proposal += 1;
        let data = format!("p{}", self.next_proposal).into_bytes();
        let _ = self
            .nodes
            .get_mut(&leader)
            .unwrap()
            .node
            .as_mut()
            .unwrap()
            .propose(data);
    }

    fn change_membership(&mut self) {
        let Some(leader) = self.leader() else { return };
        let all: Vec<NodeId> = self.nodes.keys().copied().collect();
        let node = self.nodes.get_mut(&leader).unwrap().node.as_mut().unwrap();
        let voters: BTreeSet<NodeId> = node.raft.prs.voters().collect();
        let outsiders: Vec<NodeId> = all.iter().copied().filter(|id| !voters.contains(id)).collect();
        let change = if let Some(&id) = outsiders.first() {
            ConfChange {
                change_type: ConfChangeType::AddNode,
                node_id: id,
            }
        } else {
            // Remove someone other than the leader, keeping at least three voters.
            let Some(&id) = voters.iter().find(|&&id| id != leader) else {
                return;
            };
            if voters.len() <= 3 {
                return;
            }
            ConfChange {
                change_type: ConfChangeType::RemoveNode,
                node_id: id,
            }
        };
        let _ = node.propose_conf_change(&change);
    }

    fn compact(&mut self, id: NodeId) {
        let sim_node = self.nodes.get_mut(&id).unwrap();
        let Some(node) = sim_node.node.as_ref() else {
            return;
        };
        let applied = node.raft.raft_log.applied;
        let first = sim_node.storage.first_index().unwrap();
        let last = sim_node.storage.last_index().unwrap();
        if applied < first || applied > last {
            return;
        }
        let voters: Vec<NodeId> = node.raft.prs.voters().collect();
        sim_node.storage.set_conf_state(ConfState::new(voters));
        let data = encode_applied(&sim_node.applied);
        let _ = sim_node.storage.compact(applied, data);
    }

    fn send(&mut self, m: Message) {
        if !self.connected(m.from, m.to) || self.chance(self.drop_fraction) {
            // A transport knows when a snapshot did not get through, and says so.
            if m.msg_type == MessageType::Snapshot {
                self.report_snapshot(m.from, m.to, true);
            }
            return;
        }
        let copies = if self.chance(self.duplicate_fraction) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = 1 + self.rng.next_u64() % 3;
            self.in_flight.push((self.now + delay, m.clone()));
        }
    }

    fn deliver(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.in_flight = later;
        for (_, m) in due {
            let (from, to, is_snapshot) = (m.from, m.to, m.msg_type == MessageType::Snapshot);
            let delivered = self.connected(from, to)
                && match self.nodes.get_mut(&to).and_then(|n| n.node.as_mut()) {
                    Some(node) => node.step(m).is_ok(),
                    None => false,
                };
            if is_snapshot {
                self.report_snapshot(from, to, !delivered);
            }
        }
    }

    fn report_snapshot(&mut self, from: NodeId, to: NodeId, failed: bool) {
        if let Some(node) = self.nodes.get_mut(&from).and_then(|n| n.node.as_mut()) {
            node.report_snapshot(to, failed);
        }
    }

    /// Persists, sends, applies, advances: what a real driver does with a `Ready`.
    fn handle_ready(&mut self, id: NodeId) {
        loop {
            let sim_node = self.nodes.get_mut(&id).unwrap();
            let Some(node) = sim_node.node.as_mut() else {
                return;
            };
            if !node.has_ready() {
                return;
            }
            let ready = node.ready();
            if let Some(snapshot) = &ready.snapshot {
                sim_node.storage.apply_snapshot(snapshot.clone()).unwrap();
                sim_node.applied = decode_applied(&snapshot.data);
            }
            sim_node.storage.append(&ready.entries);
            if let Some(hard_state) = ready.hard_state {
                sim_node.storage.set_hard_state(hard_state);
            }
            let mut conf_changes = Vec::new();
            for entry in &ready.committed_entries {
                match entry.entry_type {
                    EntryType::Normal if !entry.data.is_empty() => {
                        sim_node
                            .applied
                            .push((entry.index, entry.term, entry.data.clone()));
                    }
                    EntryType::ConfChange => conf_changes.push(entry.clone()),
                    _ => {}
                }
            }
            for entry in &conf_changes {
                if let Some(change) = conf_change_of(entry) {
                    node.apply_conf_change(&change);
                }
            }
            let committed = ready.committed_entries.clone();
            let messages = ready.messages.clone();
            let became_leader = ready.soft_state.is_some_and(|s| s.role == StateRole::Leader);
            let term = node.raft.term;
            node.advance(ready);
            self.check_committed(id, &committed, term);
            if became_leader {
                self.check_leader_completeness(id);
            }
            for m in messages {
                self.send(m);
            }
        }
    }

    fn check_committed(&mut self, id: NodeId, entries: &[Entry], term: u64) {
        for entry in entries {
            match self.committed.get(&entry.index).map(|(e, _)| e) {
                Some(known) if known != entry => self.fail(format!(
                    "node {id} committed {entry:?} at index {}, but {known:?} was committed there",
                    entry.index
                )),
                Some(_) => {}
                None => {
                    self.committed.insert(entry.index, (entry.clone(), term));
                }
            }
        }
        // The node's state machine is exactly the committed sequence.
        let applied = &self.nodes[&id].applied;
        for (index, term, data) in applied {
            let Some((known, _)) = self.committed.get(index) else {
                // Applied from a snapshot taken before this run's check saw the entry.
                continue;
            };
            if known.term != *term || known.data != *data {
                self.fail(format!(
                    "node {id} applied ({index}, {term}) which differs from the committed {known:?}"
                ));
            }
        }
        if applied.windows(2).any(|w| w[0].0 >= w[1].0) {
            self.fail(format!("node {id} applied entries out of order"));
        }
    }

    /// Leader completeness (§5.4): a leader of term T holds every entry committed in a term
    /// before T. Checked when a node becomes leader; a leader never loses entries after.
    fn check_leader_completeness(&self, id: NodeId) {
        let node = self.nodes[&id].node.as_ref().expect("a running leader");
        let log = &node.raft.raft_log;
        let first = log.first_index();
        for (index, (entry, commit_term)) in self.committed.range(first..) {
            if *commit_term >= node.raft.term {
                continue;
            }
            if log.term(*index).ok() != Some(entry.term) {
                self.fail(format!(
                    "leader {id} of term {} lacks {entry:?}, committed by term {commit_term}",
                    node.raft.term
                ));
            }
        }
    }

    fn check_leaders(&mut self) {
        let mut seen = Vec::new();
        for (&id, sim_node) in &self.nodes {
            if let Some(node) = &sim_node.node
                && node.raft.state == StateRole::Leader
            {
                seen.push((node.raft.term, id));
            }
        }
        for (term, id) in seen {
            match self.leaders.get(&term) {
                Some(&other) if other != id => {
                    self.fail(format!("two leaders in term {term}: {other} and {id}"))
                }
                _ => {
                    self.leaders.insert(term, id);
                }
            }
        }
    }

    fn check_log_matching(&mut self) {
        let logs: Vec<(NodeId, BTreeMap<u64, Entry>)> = self
            .nodes
            .iter()
            .filter_map(|(&id, n)| n.node.as_ref().map(|node| (id, node)))
            .map(|(id, node)| {
                (
                    id,
                    node.raft
                        .raft_log
                        .all_entries()
                        .into_iter()
                        .map(|e| (e.index, e))
                        .collect(),
                )
            })
            .collect();
        for (i, (a_id, a)) in logs.iter().enumerate() {
            for (b_id, b) in &logs[i + 1..] {
                // Find the highest index both have with the same term; all before it (that
                // both still hold) must be identical.
                let common = a
                    .iter()
                    .rev()
                    .find(|(index, entry)| b.get(index).is_some_and(|other| other.term == entry.term));
                let Some((&upto, _)) = common else { continue };
                for (index, entry) in a.range(..=upto) {
                    if let Some(other) = b.get(index)
                        && other != entry
                    {
                        self.fail(format!(
                            "log matching: nodes {a_id} and {b_id} agree at {upto} but differ at {index}"
                        ));
                    }
                }
            }
        }
    }

    /// Stops every fault, restarts every node, and checks that the group makes progress.
    fn heal_and_check_liveness(&mut self) {
        self.partition = None;
        self.drop_fraction = 0.0;
        self.duplicate_fraction = 0.0;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            if self.nodes[&id].node.is_none() {
                let (run_seed, rng_seed) = (self.seed, self.seed ^ self.now);
                self.nodes.get_mut(&id).unwrap().start(id, run_seed, rng_seed);
            }
        }
        let deadline = self.now + HEAL_TICKS;
        let marker = format!("final-{}", self.seed).into_bytes();
        let mut proposed = false;
        while self.now < deadline {
            self.step(false);
            let Some(leader) = self.leader() else { continue };
            let node = self.nodes.get_mut(&leader).unwrap().node.as_mut().unwrap();
            if !proposed || self.now.is_multiple_of(ELECTION_TICKS as u64 * 5) {
                proposed |= node.propose(marker.clone()).is_ok();
            }
            let voters: Vec<NodeId> = node.raft.prs.voters().collect();
            let everywhere = voters
                .iter()
                .all(|id| self.nodes[id].applied.iter().any(|(_, _, data)| *data == marker));
            if everywhere {
                return;
            }
        }
        let states: Vec<String> = self
            .nodes
            .iter()
            .map(|(id, n)| {
                let node = n.node.as_ref().unwrap();
                format!(
                    "{id}: {:?} term {} commit {} applied {} voters {:?}",
                    node.raft.state,
                    node.raft.term,
                    node.raft.raft_log.committed,
                    node.raft.raft_log.applied,
                    node.raft.prs.voters().collect::<Vec<_>>()
                )
            })
            .collect();
        self.fail(format!(
            "no progress {HEAL_TICKS} ticks after healing:\n{}",
            states.join("\n")
        ));
    }
}

impl SimNode {
    /// Starts (or restarts) the node from what its storage persisted. The run's seed picks the
    /// group's options (the same on every node, as in a real deployment); `rng_seed` the
    /// node's own randomness, fresh at each restart.
    fn start(&mut self, id: NodeId, run_seed: u64, rng_seed: u64) {
        let mut config = Config::new(id, Vec::new(), ELECTION_TICKS, HEARTBEAT_TICKS, rng_seed);
        config.pre_vote = (run_seed / 2).is_multiple_of(2);
        config.check_quorum = run_seed.is_multiple_of(3);
        config.max_inflight_msgs = 4;
        config.max_size_per_msg = 256;
        let snapshot: Snapshot = self.storage.snapshot(0).unwrap();
        self.applied = decode_applied(&snapshot.data);
        let hard_state: HardState = self.storage.hard_state();
        assert!(hard_state.commit <= self.storage.last_index().unwrap().max(snapshot.metadata.index));
        self.node = Some(RawNode::new(&config, self.storage.clone()).unwrap());
    }
}

/// Index and term of the initial snapshot every bootstrapped member starts from.
const BOOTSTRAP_INDEX: u64 = 5;

fn bootstrap_snapshot(voters: Vec<NodeId>) -> Snapshot {
    Snapshot {
        metadata: crate::raft::message::SnapshotMetadata {
            index: BOOTSTRAP_INDEX,
            term: BOOTSTRAP_INDEX,
            conf_state: ConfState::new(voters),
        },
        data: Vec::new(),
    }
}

fn encode_applied(applied: &Applied) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, term, data) in applied {
        out.extend_from_slice(&index.to_be_bytes());
        out.extend_from_slice(&term.to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(data);
    }
    out
}

fn decode_applied(mut bytes: &[u8]) -> Applied {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let index = u64::from_be_bytes(bytes[..8].try_into().unwrap());
        let term = u64::from_be_bytes(bytes[8..16].try_into().unwrap());
        let len = u32::from_be_bytes(bytes[16..20].try_into().unwrap()) as usize;
        out.push((index, term, bytes[20..20 + len].to_vec()));
        bytes = &bytes[20 + len..];
    }
    out
}

fn run_seed(seed: u64) {
    let voters = if seed.is_multiple_of(2) { 3 } else { 5 };
    let mut sim = Sim::new(seed, voters);
    while sim.now < FAULT_TICKS {
        sim.step(true);
    }
    sim.heal_and_check_liveness();
}

#[test]
fn seeded_simulation_keeps_raft_safe_and_live() {
    if let Ok(seed) = std::env::var("RAFT_SIM_SEED") {
        run_seed(seed.parse().expect("RAFT_SIM_SEED is a number"));
        return;
    }
    let number = |name: &str, default: u64| {
        std::env::var(name).ok().map_or(default, |s| {
            s.parse().unwrap_or_else(|_| panic!("{name} is a number"))
        })
    };
    let first = number("RAFT_SIM_FIRST_SEED", 0);
    let seeds = number("RAFT_SIM_SEEDS", 1000);
    for seed in first..first + seeds {
        run_seed(seed);
    }
}

#[test]
fn applied_state_round_trips_through_snapshot_data() {
    let applied: Applied = vec![(3, 1, b"a".to_vec()), (9, 2, Vec::new())];
    assert_eq!(decode_applied(&encode_applied(&applied)), applied);
}
