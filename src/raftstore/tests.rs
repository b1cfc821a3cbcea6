//! One region replicated by `RegionPeer`s on in-memory engines, with messages delivered by
//! hand: writes commit and apply on every replica, refusals name the reason, stale proposals
//! are never reported as applied, and a restarted peer resumes from its engine.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::cmd::{
    AdminCommand, CommandBody, CommandHeader, CommandResponse, CommandResult, Mutation, RaftCommand,
    RaftstoreError,
};
use super::inline_peer::InlinePeer;
use super::keys::raft_log_key;
use super::meta::{Peer, Region, RegionEpoch};
use super::peer::PeerOptions;
use super::peer_storage::PeerStorage;
use crate::raft::Message;
use crate::raft::Storage as _;
use crate::storage::{Cf, Engine, MemoryEngine, WriteBatch, WriteOptions};

const REGION: u64 = 1;

fn region(start: &[u8], end: &[u8]) -> Region {
    Region {
        id: REGION,
        start_key: start.to_vec(),
        end_key: end.to_vec(),
        epoch: RegionEpoch::INITIAL,
        peers: (1..=3).map(|i| Peer { id: i, store_id: i }).collect(),
    }
}

/// Three stores (store `i` holds peer `i`), each with its own engine.
struct Group {
    engines: Vec<MemoryEngine>,
    peers: Vec<Option<InlinePeer<MemoryEngine>>>,
    /// Peers whose messages, in and out, are dropped.
    cut: HashSet<u64>,
    options: PeerOptions,
}

impl Group {
    fn new(region: Region) -> Group {
        let engines: Vec<MemoryEngine> = (0..3).map(|_| MemoryEngine::new()).collect();
        for engine in &engines {
            let mut batch = WriteBatch::new();
            PeerStorage::<MemoryEngine>::write_initial_states(&region, &mut batch);
            engine.write(&batch, WriteOptions::SYNC).unwrap();
        }
        let mut group = Group {
            engines,
            peers: Vec::new(),
            cut: HashSet::new(),
            options: PeerOptions::default(),
        };
        group.peers = (1..=3).map(|id| Some(group.open(id))).collect();
        group
    }

    fn open(&self, id: u64) -> InlinePeer<MemoryEngine> {
        let engine = self.engines[(id - 1) as usize].clone();
        InlinePeer::open(id, engine, REGION, self.options, 1000 + id).unwrap()
    }

    fn peer(&mut self, id: u64) -> &mut InlinePeer<MemoryEngine> {
        self.peers[(id - 1) as usize].as_mut().expect("peer is running")
    }

    /// Handles every ready and delivers every message until the group is quiet.
    fn settle(&mut self) {
        for _ in 0..1000 {
            let mut messages: Vec<Message> = Vec::new();
            for peer in self.peers.iter_mut().flatten() {
                messages.extend(peer.handle_ready().unwrap());
            }
            if messages.is_empty() {
                return;
            }
            let mut snapshot_reports = Vec::new();
            for m in messages {
                let (from, to) = (m.from, m.to);
                let is_snapshot = m.snapshot.is_some();
                let target = self.peers[(to - 1) as usize].as_mut();
                let delivered = match target {
                    Some(peer) if !self.cut.contains(&from) && !self.cut.contains(&to) => {
                        peer.step(m);
                        true
                    }
                    _ => false,
                };
                if is_snapshot {
                    snapshot_reports.push((from, to, !delivered));
                }
            }
            for (from, to, failed) in snapshot_reports {
                if let Some(sender) = self.peers[(from - 1) as usize].as_mut() {
                    sender.report_snapshot(to, failed);
                }
            }
        }
        panic!("the group never settled");
    }

    fn tick(&mut self, ticks: usize) {
        for _ in 0..ticks {
            for peer in self.peers.iter_mut().flatten() {
                peer.tick();
            }
            self.settle();
        }
    }

    fn elect(&mut self, id: u64) {
        self.peer(id).campaign();
        self.settle();
        assert!(self.peer(id).is_leader(), "peer {id} did not win");
    }

    fn header(&mut self, id: u64) -> CommandHeader {
        let peer = self.peer(id);
        peer.command_header()
    }

    /// Proposes at peer `id`; the returned slot fills in when the outcome is known.
    fn propose(
        &mut self,
        id: u64,
        header: CommandHeader,
        body: CommandBody,
    ) -> Arc<Mutex<Option<CommandResult>>> {
        let slot = Arc::new(Mutex::new(None));
        let answer = slot.clone();
        self.peer(id).propose(
            RaftCommand { header, body },
            Box::new(move |result| {
                assert!(answer.lock().unwrap().replace(result).is_none(), "answered twice");
            }),
        );
        slot
    }

    fn put(&mut self, id: u64, key: &[u8], value: &[u8]) -> Arc<Mutex<Option<CommandResult>>> {
        let header = self.header(id);
        self.propose(id, header, put(key, value))
    }

    fn value_on(&self, store: u64, key: &[u8]) -> Option<Vec<u8>> {
        self.engines[(store - 1) as usize].get(Cf::Default, key).unwrap()
    }
}

fn put(key: &[u8], value: &[u8]) -> CommandBody {
    CommandBody::Write(vec![Mutation::Put {
        cf: Cf::Default,
        key: key.to_vec(),
        value: value.to_vec(),
    }])
}

fn outcome(slot: &Arc<Mutex<Option<CommandResult>>>) -> Option<CommandResult> {
    slot.lock().unwrap().clone()
}

#[test]
fn a_write_is_answered_after_it_applies_on_the_leader_and_reaches_every_replica() {
    let mut group = Group::new(region(b"", b""));
    group.elect(1);
    let slot = group.put(1, b"k", b"v");
    assert_eq!(
        outcome(&slot),
        None,
        "nothing is answered before the entry commits"
    );
    group.settle();
    assert_eq!(outcome(&slot), Some(Ok(CommandResponse::Written)));
    // Followers learn the commit index with the next append or heartbeat.
    group.tick(PeerOptions::default().heartbeat_tick);
    for store in 1..=3 {
        assert_eq!(group.value_on(store, b"k"), Some(b"v".to_vec()), "store {store}");
    }
    let applied = group.peer(1).applied_index();
    for id in 2..=3 {
        assert_eq!(group.peer(id).applied_index(), applied);
    }
}

#[test]
fn refusals_name_the_reason_and_write_nothing() {
    let mut group = Group::new(region(b"b", b"m"));
    group.elect(1);

    let to_follower = group.header(2);
    let slot = group.propose(2, to_follower, put(b"c", b"1"));
    assert_eq!(
        outcome(&slot),
        Some(Err(RaftstoreError::NotLeader {
            region_id: REGION,
            leader: Some(Peer { id: 1, store_id: 1 }),
        }))
    );

    let mut header = group.header(1);
    header.epoch.version += 1;
    let slot = group.propose(1, header, put(b"c", b"1"));
    assert!(matches!(
        outcome(&slot),
        Some(Err(RaftstoreError::EpochNotMatch { .. }))
    ));

    let header = group.header(1);
    let slot = group.propose(1, header, put(b"z", b"1"));
    assert!(matches!(
        outcome(&slot),
        Some(Err(RaftstoreError::KeyNotInRegion { .. }))
    ));

    let mut header = group.header(1);
    header.peer.store_id = 9;
    let slot = group.propose(1, header, put(b"c", b"1"));
    assert_eq!(
        outcome(&slot),
        Some(Err(RaftstoreError::StoreNotMatch {
            requested: 9,
            actual: 1
        }))
    );

    let header = group.header(1);
    let raft_cf = CommandBody::Write(vec![Mutation::Delete {
        cf: Cf::Raft,
        key: b"c".to_vec(),
    }]);
    let slot = group.propose(1, header, raft_cf);
    assert!(matches!(
        outcome(&slot),
        Some(Err(RaftstoreError::InvalidCommand(_)))
    ));

    let mut header = group.header(1);
    header.term = 0; // unchecked
    let slot = group.propose(1, header, put(b"c", b"1"));
    group.settle();
    assert_eq!(outcome(&slot), Some(Ok(CommandResponse::Written)));
    for key in [&b"z"[..], b"b"] {
        assert_eq!(group.value_on(1, key), None);
    }
}

#[test]
fn a_proposal_whose_slot_went_to_another_leader_is_stale_and_never_applied() {
    let mut group = Group::new(region(b"", b""));
    group.elect(1);
    let committed = group.put(1, b"before", b"1");
    group.settle();
    assert_eq!(outcome(&committed), Some(Ok(CommandResponse::Written)));

    // Peer 1 still believes it leads but is cut off: its proposal cannot commit.
    group.cut.insert(1);
    let lost = group.put(1, b"lost", b"1");
    group.settle();
    assert_eq!(outcome(&lost), None);

    // Once peer 1's lease is over the others elect one of themselves, whose first entry takes
    // the slot peer 1 proposed into.
    group.tick(PeerOptions::default().election_tick * 3);
    let new_leader = (2..=3)
        .find(|&id| group.peer(id).is_leader())
        .expect("peers 2 and 3 elect a leader");
    let winner = group.put(new_leader, b"winner", b"2");
    group.settle();
    assert_eq!(outcome(&winner), Some(Ok(CommandResponse::Written)));

    // Healed, peer 1 learns the new log: its proposal's slot holds another entry.
    group.cut.clear();
    group.tick(PeerOptions::default().heartbeat_tick * 2);
    assert_eq!(outcome(&lost), Some(Err(RaftstoreError::StaleCommand)));
    for store in 1..=3 {
        assert_eq!(group.value_on(store, b"lost"), None, "store {store}");
        assert_eq!(
            group.value_on(store, b"winner"),
            Some(b"2".to_vec()),
            "store {store}"
        );
    }
}

#[test]
fn a_restarted_peer_resumes_from_its_engine_and_catches_up() {
    let mut group = Group::new(region(b"", b""));
    group.elect(1);
    let first = group.put(1, b"a", b"1");
    group.tick(PeerOptions::default().heartbeat_tick);
    assert_eq!(outcome(&first), Some(Ok(CommandResponse::Written)));
    assert_eq!(group.value_on(3, b"a"), Some(b"1".to_vec()));
    let applied_before = group.peer(3).applied_index();
    let hard_state_before = group.peer(3).storage().raft_state().hard_state;

    // Peer 3 goes down; the other two still make a majority.
    group.peers[2] = None;
    let slots: Vec<_> = (0..5)
        .map(|i| group.put(1, format!("k{i}").as_bytes(), b"x"))
        .collect();
    group.settle();
    for slot in &slots {
        assert_eq!(outcome(slot), Some(Ok(CommandResponse::Written)));
    }
    assert_eq!(group.value_on(3, b"k0"), None);

    let restarted = group.open(3);
    assert_eq!(restarted.applied_index(), applied_before);
    assert_eq!(restarted.storage().raft_state().hard_state, hard_state_before);
    group.peers[2] = Some(restarted);
    group.tick(PeerOptions::default().heartbeat_tick * 2);
    for i in 0..5 {
        assert_eq!(group.value_on(3, format!("k{i}").as_bytes()), Some(b"x".to_vec()));
    }
    let leader_applied = group.peer(1).applied_index();
    assert_eq!(group.peer(3).applied_index(), leader_applied);
}

#[test]
fn compact_log_drops_applied_entries_on_every_replica() {
    let mut group = Group::new(region(b"", b""));
    group.elect(1);
    for i in 0..5 {
        group.put(1, format!("k{i}").as_bytes(), b"x");
    }
    group.tick(PeerOptions::default().heartbeat_tick);
    let applied = group.peer(1).applied_index();
    let term = group.peer(1).storage().term(applied - 1).unwrap();
    let header = group.header(1);
    let slot = group.propose(
        1,
        header,
        CommandBody::Admin(AdminCommand::CompactLog {
            index: applied - 1,
            term,
        }),
    );
    group.tick(PeerOptions::default().heartbeat_tick);
    assert_eq!(outcome(&slot), Some(Ok(CommandResponse::Admin)));
    for id in 1..=3 {
        let storage = group.peer(id).storage();
        assert_eq!(storage.apply_state().truncated.index, applied - 1, "peer {id}");
        assert_eq!(storage.first_index().unwrap(), applied);
        let engine = &group.engines[(id - 1) as usize];
        assert_eq!(
            engine.get(Cf::Raft, &raft_log_key(REGION, applied - 1)).unwrap(),
            None
        );
        assert!(
            engine
                .get(Cf::Raft, &raft_log_key(REGION, applied))
                .unwrap()
                .is_some()
        );
    }
    // The group keeps working on the compacted log.
    let after = group.put(1, b"after", b"y");
    group.tick(PeerOptions::default().heartbeat_tick);
    assert_eq!(outcome(&after), Some(Ok(CommandResponse::Written)));
    assert_eq!(group.value_on(2, b"after"), Some(b"y".to_vec()));
}

#[test]
fn a_peer_behind_the_compacted_log_catches_up_from_a_snapshot() {
    let mut group = Group::new(region(b"", b""));
    group.elect(1);
    let stale = group.put(1, b"gone-on-3", b"old");
    group.tick(PeerOptions::default().heartbeat_tick);
    assert_eq!(outcome(&stale), Some(Ok(CommandResponse::Written)));

    // Peer 3 goes down; the others write, delete, and compact the log past what 3 has.
    group.peers[2] = None;
    for i in 0..5 {
        group.put(1, format!("k{i}").as_bytes(), b"x");
    }
    let header = group.header(1);
    let delete = CommandBody::Write(vec![Mutation::Delete {
        cf: Cf::Default,
        key: b"gone-on-3".to_vec(),
    }]);
    group.propose(1, header, delete);
    group.settle();
    let applied = group.peer(1).applied_index();
    let term = group.peer(1).storage().term(applied).unwrap();
    let header = group.header(1);
    let compact = group.propose(
        1,
        header,
        CommandBody::Admin(AdminCommand::CompactLog { index: applied, term }),
    );
    group.settle();
    assert_eq!(outcome(&compact), Some(Ok(CommandResponse::Admin)));
    assert!(group.peer(1).storage().first_index().unwrap() > applied);

    let restarted = group.open(3);
    assert!(restarted.applied_index() < applied);
    group.peers[2] = Some(restarted);
    group.tick(PeerOptions::default().heartbeat_tick * 3);
    let leader_applied = group.peer(1).applied_index();
    let storage = group.peer(3).storage();
    assert_eq!(storage.apply_state().applied_index, leader_applied);
    assert!(
        storage.apply_state().truncated.index >= applied,
        "peer 3 took a snapshot instead of replaying the log"
    );
    for i in 0..5 {
        assert_eq!(group.value_on(3, format!("k{i}").as_bytes()), Some(b"x".to_vec()));
    }
    assert_eq!(
        group.value_on(3, b"gone-on-3"),
        None,
        "the snapshot replaced old data"
    );

    // Restarted again, peer 3 comes back from the snapshot's state, and keeps replicating.
    group.peers[2] = Some(group.open(3));
    let after = group.put(1, b"after", b"y");
    group.tick(PeerOptions::default().heartbeat_tick);
    assert_eq!(outcome(&after), Some(Ok(CommandResponse::Written)));
    assert_eq!(group.value_on(3, b"after"), Some(b"y".to_vec()));
}

#[test]
fn the_leader_compacts_the_log_once_enough_applied_entries_pile_up() {
    let mut group = Group::new(region(b"", b""));
    group.options = PeerOptions {
        raft_log_gc_tick_interval: 5,
        raft_log_gc_count_limit: 20,
        ..PeerOptions::default()
    };
    group.peers = (1..=3).map(|id| Some(group.open(id))).collect();
    group.elect(1);
    for i in 0..15 {
        group.put(1, format!("k{i}").as_bytes(), b"x");
    }
    group.tick(10);
    assert_eq!(
        group.peer(1).storage().apply_state().truncated.index,
        super::peer_storage::RAFT_INIT_LOG_INDEX,
        "below the limit nothing is compacted"
    );
    for i in 15..40 {
        group.put(1, format!("k{i}").as_bytes(), b"x");
    }
    group.tick(10);
    let applied = group.peer(1).applied_index();
    for id in 1..=3 {
        let truncated = group.peer(id).storage().apply_state().truncated.index;
        assert!(
            truncated + 20 > applied && truncated > 20,
            "peer {id}: truncated at {truncated}, applied {applied}"
        );
        assert_eq!(group.value_on(id, b"k39"), Some(b"x".to_vec()));
    }
}

#[test]
fn a_read_waits_for_a_quorum_to_confirm_the_leader_and_for_its_index_to_apply() {
    let mut group = Group::new(region(b"", b""));
    group.elect(1);
    group.put(1, b"k", b"v");
    group.settle();

    let read = |group: &mut Group, id: u64| {
        let slot = Arc::new(Mutex::new(None));
        let answer = slot.clone();
        let header = group.header(id);
        group.peer(id).read_index(
            header,
            Box::new(move |result| {
                assert!(answer.lock().unwrap().replace(result).is_none(), "answered twice");
            }),
        );
        slot
    };
    let slot = read(&mut group, 1);
    assert_eq!(
        outcome(&slot),
        None,
        "not before a heartbeat round confirms the leader"
    );
    group.settle();
    assert_eq!(outcome(&slot), Some(Ok(CommandResponse::Readable)));
    assert_eq!(group.value_on(1, b"k"), Some(b"v".to_vec()));

    let at_follower = read(&mut group, 2);
    assert!(matches!(
        outcome(&at_follower),
        Some(Err(RaftstoreError::NotLeader { .. }))
    ));

    // Cut off, the old leader cannot confirm itself; once it steps down the read is refused
    // (never served from what may be a stale state).
    group.cut.insert(1);
    let isolated = read(&mut group, 1);
    group.settle();
    assert_eq!(outcome(&isolated), None);
    group.tick(PeerOptions::default().election_tick * 3);
    assert!(!group.peer(1).is_leader());
    assert_eq!(outcome(&isolated), Some(Err(RaftstoreError::StaleCommand)));
}
