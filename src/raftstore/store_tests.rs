//! Three `Store`s on in-memory engines, joined by an in-process transport: two regions elect
//! their own leaders and replicate independently, routing drops what is not for a store, and a
//! store reopened on its engine finds its regions again.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use super::cmd::{
    AdminCommand, CommandBody, CommandHeader, CommandResponse, CommandResult, Mutation, RaftCommand,
    RaftstoreError,
};
use super::meta::{Peer, Region, RegionEpoch};
use super::peer::PeerOptions;
use super::store::{InlineStore, RaftMessage, Store, Transport, Unreachable};
use crate::raft::ConfChangeType;
use crate::storage::{Cf, Engine, MemoryEngine};

type Queue = Arc<Mutex<VecDeque<RaftMessage>>>;

/// Queues every message on one shared queue; stores in `down` are unreachable.
struct QueueTransport {
    queue: Queue,
    down: Arc<Mutex<HashSet<u64>>>,
}

impl Transport for QueueTransport {
    fn send(&mut self, message: RaftMessage) -> Result<(), Unreachable> {
        let store_id = message.to_peer.store_id;
        if self.down.lock().unwrap().contains(&store_id) {
            return Err(Unreachable { store_id });
        }
        self.queue.lock().unwrap().push_back(message);
        Ok(())
    }
}

struct Cluster {
    engines: Vec<MemoryEngine>,
    stores: Vec<Option<InlineStore<MemoryEngine, QueueTransport>>>,
    queue: Queue,
    down: Arc<Mutex<HashSet<u64>>>,
}

fn region(id: u64, start: &[u8], end: &[u8]) -> Region {
    Region {
        id,
        start_key: start.to_vec(),
        end_key: end.to_vec(),
        epoch: RegionEpoch::INITIAL,
        // Peer ids are unique across regions: region r's peer on store s is 10 * r + s.
        peers: (1..=3)
            .map(|s| Peer {
                id: 10 * id + s,
                store_id: s,
            })
            .collect(),
    }
}

impl Cluster {
    /// Regions 1 (`[.., "m")`) and 2 (`["m", ..)`) on stores 1 to 3; store 4 starts empty.
    fn new() -> Cluster {
        let engines: Vec<MemoryEngine> = (0..4).map(|_| MemoryEngine::new()).collect();
        for engine in &engines[..3] {
            for r in [region(1, b"", b"m"), region(2, b"m", b"")] {
                Store::<MemoryEngine, QueueTransport>::bootstrap_region(engine, &r).unwrap();
            }
        }
        let mut cluster = Cluster {
            engines,
            stores: Vec::new(),
            queue: Queue::default(),
            down: Arc::default(),
        };
        cluster.stores = (1..=4).map(|s| Some(cluster.open(s))).collect();
        cluster
    }

    fn open(&self, store_id: u64) -> InlineStore<MemoryEngine, QueueTransport> {
        let transport = QueueTransport {
            queue: self.queue.clone(),
            down: self.down.clone(),
        };
        let engine = self.engines[(store_id - 1) as usize].clone();
        InlineStore::open(store_id, engine, transport, PeerOptions::default(), store_id).unwrap()
    }

    fn store(&mut self, store_id: u64) -> &mut InlineStore<MemoryEngine, QueueTransport> {
        self.stores[(store_id - 1) as usize]
            .as_mut()
            .expect("store is up")
    }

    fn settle(&mut self) {
        for _ in 0..1000 {
            for store in self.stores.iter_mut().flatten() {
                store.handle_readies().unwrap();
            }
            let messages: Vec<RaftMessage> = self.queue.lock().unwrap().drain(..).collect();
            if messages.is_empty() {
                return;
            }
            for m in messages {
                if let Some(store) = self.stores[(m.to_peer.store_id - 1) as usize].as_mut() {
                    store.on_raft_message(m);
                }
            }
        }
        panic!("the cluster never settled");
    }

    /// Hands every queued message to its store, without running any round.
    fn deliver(&mut self) {
        let messages: Vec<RaftMessage> = self.queue.lock().unwrap().drain(..).collect();
        for m in messages {
            if let Some(store) = self.stores[(m.to_peer.store_id - 1) as usize].as_mut() {
                store.on_raft_message(m);
            }
        }
    }

    fn tick(&mut self, ticks: usize) {
        for _ in 0..ticks {
            for store in self.stores.iter_mut().flatten() {
                store.tick();
            }
            self.settle();
        }
    }

    /// The queued messages of `msg_type` for the region, asserting there is exactly one for
    /// each store other than `leader`.
    fn one_per_follower(
        &self,
        leader: u64,
        region_id: u64,
        msg_type: crate::raft::MessageType,
    ) -> Vec<RaftMessage> {
        let sent: Vec<RaftMessage> = self
            .queue
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.region_id == region_id && m.message.msg_type == msg_type)
            .cloned()
            .collect();
        let mut followers: Vec<u64> = sent.iter().map(|m| m.to_peer.store_id).collect();
        followers.sort_unstable();
        let expected: Vec<u64> = (1..=3).filter(|&s| s != leader).collect();
        assert_eq!(followers, expected, "one {msg_type:?} per follower: {sent:?}");
        sent
    }

    fn leader_of(&self, region_id: u64) -> Option<u64> {
        self.stores
            .iter()
            .flatten()
            .find(|s| s.peer(region_id).is_some_and(|p| p.is_leader()))
            .map(|s| s.store_id())
    }

    /// Proposes `body` at `store_id`'s peer of the region (a made-up header if it has none);
    /// the returned slot fills in with the outcome.
    fn propose(
        &mut self,
        store_id: u64,
        region_id: u64,
        body: CommandBody,
    ) -> Arc<Mutex<Option<CommandResult>>> {
        let store = self.store(store_id);
        let header = match store.peer(region_id) {
            Some(peer) => peer.command_header(),
            None => CommandHeader {
                region_id,
                peer: Peer { id: 0, store_id },
                ..CommandHeader::default()
            },
        };
        let slot = Arc::new(Mutex::new(None));
        let answer = slot.clone();
        store.propose(
            RaftCommand { header, body },
            Box::new(move |result| *answer.lock().unwrap() = Some(result)),
        );
        slot
    }

    fn put(
        &mut self,
        store_id: u64,
        region_id: u64,
        key: &[u8],
        value: &[u8],
    ) -> Arc<Mutex<Option<CommandResult>>> {
        let body = CommandBody::Write(vec![Mutation::Put {
            cf: Cf::Default,
            key: key.to_vec(),
            value: value.to_vec(),
        }]);
        self.propose(store_id, region_id, body)
    }

    fn change_peer(
        &mut self,
        store_id: u64,
        region_id: u64,
        change_type: ConfChangeType,
        peer: Peer,
    ) -> Arc<Mutex<Option<CommandResult>>> {
        let body = CommandBody::Admin(AdminCommand::ChangePeer { change_type, peer });
        self.propose(store_id, region_id, body)
    }

    fn value_on(&self, store_id: u64, key: &[u8]) -> Option<Vec<u8>> {
        self.engines[(store_id - 1) as usize]
            .get(Cf::Default, key)
            .unwrap()
    }
}

#[test]
fn each_region_elects_its_own_leader_and_replicates_its_own_keys() {
    let mut cluster = Cluster::new();
    assert_eq!(cluster.store(1).region_ids().collect::<Vec<_>>(), vec![1, 2]);
    cluster.tick(PeerOptions::default().election_tick * 3);
    let leader_1 = cluster.leader_of(1).expect("region 1 has a leader");
    let leader_2 = cluster.leader_of(2).expect("region 2 has a leader");

    let a = cluster.put(leader_1, 1, b"apple", b"1");
    let z = cluster.put(leader_2, 2, b"zebra", b"2");
    cluster.tick(PeerOptions::default().heartbeat_tick);
    assert_eq!(a.lock().unwrap().clone(), Some(Ok(CommandResponse::Written)));
    assert_eq!(z.lock().unwrap().clone(), Some(Ok(CommandResponse::Written)));
    for store in 1..=3 {
        assert_eq!(cluster.value_on(store, b"apple"), Some(b"1".to_vec()));
        assert_eq!(cluster.value_on(store, b"zebra"), Some(b"2".to_vec()));
    }

    // A key routed to the wrong region is refused by that region.
    let wrong = cluster.put(leader_1, 1, b"zoo", b"3");
    assert!(matches!(
        wrong.lock().unwrap().clone(),
        Some(Err(RaftstoreError::KeyNotInRegion { region_id: 1, .. }))
    ));
    let unknown = cluster.put(1, 9, b"k", b"v");
    assert_eq!(
        unknown.lock().unwrap().clone(),
        Some(Err(RaftstoreError::RegionNotFound(9)))
    );
}

/// The writes proposed to a leader in one round reach each follower as one append message
/// carrying all of them, and each proposer hears its own outcome.
#[test]
fn the_writes_of_one_round_go_out_as_one_append_per_follower() {
    let mut cluster = Cluster::new();
    cluster.tick(PeerOptions::default().election_tick * 3);
    let leader = cluster.leader_of(1).expect("region 1 has a leader");
    cluster.settle();
    let keys: Vec<Vec<u8>> = (0..10).map(|i| format!("k{i}").into_bytes()).collect();
    let slots: Vec<_> = keys.iter().map(|k| cluster.put(leader, 1, k, b"v")).collect();
    cluster.store(leader).handle_readies().unwrap();
    let appends = cluster.one_per_follower(leader, 1, crate::raft::MessageType::Append);
    for append in &appends {
        assert_eq!(append.message.entries.len(), keys.len());
    }
    cluster.tick(PeerOptions::default().heartbeat_tick);
    for (key, slot) in keys.iter().zip(&slots) {
        assert_eq!(slot.lock().unwrap().clone(), Some(Ok(CommandResponse::Written)));
        for store in 1..=3 {
            assert_eq!(cluster.value_on(store, key), Some(b"v".to_vec()));
        }
    }
}

/// The reads asked of a leader in one round share one heartbeat per follower, are answered
/// only once a follower confirmed it, and every one of them is answered.
#[test]
fn the_reads_of_one_round_share_one_heartbeat_per_follower() {
    let mut cluster = Cluster::new();
    cluster.tick(PeerOptions::default().election_tick * 3);
    let leader = cluster.leader_of(1).expect("region 1 has a leader");
    cluster.settle();
    let slots: Vec<_> = (0..10)
        .map(|_| {
            let slot = Arc::new(Mutex::new(None));
            let answer = slot.clone();
            let store = cluster.store(leader);
            let header = store.peer(1).unwrap().command_header();
            store.read_index(
                header,
                Box::new(move |result: CommandResult| *answer.lock().unwrap() = Some(result)),
            );
            slot
        })
        .collect();
    cluster.store(leader).handle_readies().unwrap();
    cluster.one_per_follower(leader, 1, crate::raft::MessageType::Heartbeat);
    assert!(
        slots.iter().all(|slot| slot.lock().unwrap().is_none()),
        "no read is answered before a follower confirms the lead"
    );
    cluster.settle();
    for slot in &slots {
        assert_eq!(slot.lock().unwrap().clone(), Some(Ok(CommandResponse::Readable)));
    }

    // Reads queued in a term the peer no longer leads in are refused, not confirmed.
    let header = cluster.store(leader).peer(1).unwrap().command_header();
    let late = Arc::new(Mutex::new(None));
    let answer = late.clone();
    cluster.store(leader).read_index(
        header,
        Box::new(move |result: CommandResult| *answer.lock().unwrap() = Some(result)),
    );
    let term = cluster.store(leader).peer(1).unwrap().term();
    let follower = (1..=3).find(|&s| s != leader).unwrap();
    let mut beat = crate::raft::Message::new(crate::raft::MessageType::Heartbeat, 10 + follower, 10 + leader);
    beat.term = term + 1;
    cluster.store(leader).on_raft_message(RaftMessage {
        region_id: 1,
        from_peer: Peer {
            id: 10 + follower,
            store_id: follower,
        },
        to_peer: Peer {
            id: 10 + leader,
            store_id: leader,
        },
        epoch: RegionEpoch::INITIAL,
        message: beat,
    });
    cluster.store(leader).handle_readies().unwrap();
    assert_eq!(
        late.lock().unwrap().clone(),
        Some(Err(RaftstoreError::StaleCommand))
    );
}

#[test]
fn messages_not_for_a_store_are_dropped() {
    let mut cluster = Cluster::new();
    cluster.tick(PeerOptions::default().election_tick * 3);
    let leader = cluster.leader_of(1).unwrap();
    let follower = (1..=3).find(|&s| s != leader).unwrap();
    let term = cluster.store(follower).peer(1).unwrap().term();
    // A heartbeat from a later term moves the receiver to that term if it is stepped.
    let mut beat = crate::raft::Message::new(crate::raft::MessageType::Heartbeat, 10 + leader, 10 + follower);
    beat.term = term + 10;
    let envelope = |region_id, to_peer| RaftMessage {
        region_id,
        from_peer: Peer {
            id: 10 + leader,
            store_id: leader,
        },
        to_peer,
        epoch: RegionEpoch::INITIAL,
        message: beat.clone(),
    };
    let store = cluster.store(follower);
    // Another store's peer, an unknown region, another peer id of this region.
    store.on_raft_message(envelope(
        1,
        Peer {
            id: 10 + follower,
            store_id: 9,
        },
    ));
    store.on_raft_message(envelope(
        7,
        Peer {
            id: 10 + follower,
            store_id: follower,
        },
    ));
    store.on_raft_message(envelope(
        1,
        Peer {
            id: 99,
            store_id: follower,
        },
    ));
    assert_eq!(cluster.store(follower).peer(1).unwrap().term(), term);
    // The same message, addressed right, is stepped.
    let store = cluster.store(follower);
    store.on_raft_message(envelope(
        1,
        Peer {
            id: 10 + follower,
            store_id: follower,
        },
    ));
    assert_eq!(cluster.store(follower).peer(1).unwrap().term(), term + 10);
}

#[test]
fn a_reopened_store_finds_its_regions_and_catches_up() {
    let mut cluster = Cluster::new();
    cluster.tick(PeerOptions::default().election_tick * 3);
    let leader = cluster.leader_of(2).unwrap();
    let restarted = (1..=3).find(|&s| s != leader).unwrap();

    cluster.stores[(restarted - 1) as usize] = None;
    cluster.down.lock().unwrap().insert(restarted);
    let written = cluster.put(leader, 2, b"while-down", b"x");
    cluster.tick(PeerOptions::default().heartbeat_tick);
    assert_eq!(
        written.lock().unwrap().clone(),
        Some(Ok(CommandResponse::Written))
    );
    assert_eq!(cluster.value_on(restarted, b"while-down"), None);

    cluster.down.lock().unwrap().clear();
    let store = cluster.open(restarted);
    assert_eq!(store.region_ids().collect::<Vec<_>>(), vec![1, 2]);
    cluster.stores[(restarted - 1) as usize] = Some(store);
    cluster.tick(PeerOptions::default().heartbeat_tick * 3);
    assert_eq!(cluster.value_on(restarted, b"while-down"), Some(b"x".to_vec()));
}

#[test]
fn a_region_adds_a_peer_on_a_new_store_and_removes_its_leader() {
    let mut cluster = Cluster::new();
    assert_eq!(cluster.store(4).region_ids().count(), 0);
    cluster.tick(PeerOptions::default().election_tick * 3);
    let leader = cluster.leader_of(1).unwrap();
    cluster.put(leader, 1, b"before", b"1");
    cluster.tick(PeerOptions::default().heartbeat_tick);

    // A peer on a store that already has one is refused.
    let duplicate = cluster.change_peer(
        leader,
        1,
        ConfChangeType::AddNode,
        Peer {
            id: 99,
            store_id: leader,
        },
    );
    assert!(matches!(
        duplicate.lock().unwrap().clone(),
        Some(Err(RaftstoreError::InvalidCommand(_)))
    ));

    let new_peer = Peer { id: 14, store_id: 4 };
    let added = cluster.change_peer(leader, 1, ConfChangeType::AddNode, new_peer);
    let second = cluster.change_peer(
        leader,
        1,
        ConfChangeType::RemoveNode,
        Peer {
            id: 10 + leader,
            store_id: leader,
        },
    );
    assert!(
        matches!(
            second.lock().unwrap().clone(),
            Some(Err(RaftstoreError::InvalidCommand(_)))
        ),
        "one membership change at a time"
    );
    cluster.tick(PeerOptions::default().heartbeat_tick * 5);
    assert_eq!(added.lock().unwrap().clone(), Some(Ok(CommandResponse::Admin)));
    // Store 4 got a peer, then the region's data by snapshot.
    let peer = cluster.store(4).peer(1).expect("store 4 hosts region 1");
    assert_eq!(peer.region().epoch.conf_ver, 2);
    assert!(peer.region().peers.contains(&new_peer));
    assert_eq!(cluster.value_on(4, b"before"), Some(b"1".to_vec()));
    let after = cluster.put(leader, 1, b"after", b"2");
    cluster.tick(PeerOptions::default().heartbeat_tick);
    assert_eq!(after.lock().unwrap().clone(), Some(Ok(CommandResponse::Written)));
    assert_eq!(cluster.value_on(4, b"after"), Some(b"2".to_vec()));
    assert!(cluster.store(4).peer(2).is_none(), "region 2 is untouched");

    // The leader removes its own peer: it hands over, and its store forgets the region.
    let removed_peer = Peer {
        id: 10 + leader,
        store_id: leader,
    };
    let stale_epoch = cluster.store(leader).peer(1).unwrap().region().epoch;
    let removed = cluster.change_peer(leader, 1, ConfChangeType::RemoveNode, removed_peer);
    cluster.tick(PeerOptions::default().election_tick * 3);
    assert_eq!(removed.lock().unwrap().clone(), Some(Ok(CommandResponse::Admin)));
    assert!(cluster.store(leader).peer(1).is_none());
    assert_eq!(
        cluster.value_on(leader, b"before"),
        None,
        "a removed peer's data is deleted"
    );
    let new_leader = cluster.leader_of(1).expect("the others elect a leader");
    assert_ne!(new_leader, leader);
    let last = cluster.put(new_leader, 1, b"last", b"3");
    cluster.tick(PeerOptions::default().heartbeat_tick);
    assert_eq!(last.lock().unwrap().clone(), Some(Ok(CommandResponse::Written)));
    assert_eq!(cluster.value_on(4, b"last"), Some(b"3".to_vec()));

    // A stale message does not bring the removed peer back, and neither does a restart.
    let mut beat = crate::raft::Message::new(
        crate::raft::MessageType::Heartbeat,
        10 + new_leader,
        removed_peer.id,
    );
    beat.term = cluster.store(new_leader).peer(1).unwrap().term();
    cluster.store(leader).on_raft_message(RaftMessage {
        region_id: 1,
        from_peer: Peer {
            id: 10 + new_leader,
            store_id: new_leader,
        },
        to_peer: removed_peer,
        epoch: stale_epoch,
        message: beat,
    });
    assert!(cluster.store(leader).peer(1).is_none());
    let reopened = cluster.open(leader);
    assert_eq!(reopened.region_ids().collect::<Vec<_>>(), vec![2]);
}

/// TinyKV's `TestOneSplit3B`, by hand: a split through raft bumps the version, leaves the
/// region with the left half, and starts a new region on every replica's store, which elects
/// a leader and takes writes of its half; commands under the old epoch, or for keys now in
/// the other half, are refused.
#[test]
fn a_split_starts_a_new_region_on_every_replica() {
    let mut cluster = Cluster::new();
    cluster.tick(PeerOptions::default().election_tick * 3);
    let leader = cluster.leader_of(2).expect("region 2 has a leader");
    let old = cluster.store(leader).peer(2).unwrap().command_header();
    for key in [&b"n"[..], b"t", b"x"] {
        cluster.put(leader, 2, key, b"before");
    }
    cluster.tick(PeerOptions::default().heartbeat_tick);

    // Region 2 is ["m", ..): split it at "t" into 2 = ["m", "t") and 5 = ["t", ..).
    let split = CommandBody::Admin(AdminCommand::Split {
        split_key: b"t".to_vec(),
        new_region_id: 5,
        new_peer_ids: vec![51, 52, 53],
    });
    let outcome = cluster.propose(leader, 2, split);
    cluster.tick(PeerOptions::default().heartbeat_tick);
    assert_eq!(outcome.lock().unwrap().clone(), Some(Ok(CommandResponse::Admin)));
    for store_id in 1..=3 {
        let store = cluster.store(store_id);
        let left = store.peer(2).unwrap().region().clone();
        let right = store
            .peer(5)
            .expect("the new region has a peer on every replica")
            .region()
            .clone();
        assert_eq!(
            (left.start_key.as_slice(), left.end_key.as_slice()),
            (&b"m"[..], &b"t"[..])
        );
        assert_eq!(
            (right.start_key.as_slice(), right.end_key.as_slice()),
            (&b"t"[..], &b""[..])
        );
        assert_eq!(left.epoch.version, old.epoch.version + 1);
        assert_eq!(right.epoch, left.epoch);
        assert_eq!(right.peer_on_store(store_id).map(|p| p.id), Some(50 + store_id));
    }
    assert!(
        cluster.store(4).peer(5).is_none(),
        "store 4 held no replica of region 2"
    );

    // The new region has a leader at once (its parent's leader campaigned) and takes writes
    // of its half; the data written before the split is there on every replica.
    cluster.tick(PeerOptions::default().heartbeat_tick);
    let right_leader = cluster.leader_of(5).expect("region 5 has a leader");
    let put = cluster.put(right_leader, 5, b"zz", b"after");
    cluster.tick(PeerOptions::default().heartbeat_tick);
    assert_eq!(put.lock().unwrap().clone(), Some(Ok(CommandResponse::Written)));
    for store_id in 1..=3 {
        assert_eq!(cluster.value_on(store_id, b"x"), Some(b"before".to_vec()));
        assert_eq!(cluster.value_on(store_id, b"zz"), Some(b"after".to_vec()));
    }

    // Stale routing is refused: the old epoch, and a key of the other half.
    let body = CommandBody::Write(vec![Mutation::Put {
        cf: Cf::Default,
        key: b"o".to_vec(),
        value: b"stale".to_vec(),
    }]);
    let stale = Arc::new(Mutex::new(None));
    let answer = stale.clone();
    cluster.store(leader).propose(
        RaftCommand {
            header: CommandHeader { term: 0, ..old },
            body,
        },
        Box::new(move |result| *answer.lock().unwrap() = Some(result)),
    );
    assert!(matches!(
        stale.lock().unwrap().clone(),
        Some(Err(RaftstoreError::EpochNotMatch { .. }))
    ));
    let left_leader = cluster.leader_of(2).expect("region 2 still has a leader");
    let outside = cluster.put(left_leader, 2, b"zzz", b"wrong region");
    assert!(matches!(
        outside.lock().unwrap().clone(),
        Some(Err(RaftstoreError::KeyNotInRegion { .. }))
    ));
    // A split key outside the region, or a wrong number of new peers, is refused too.
    let bad = cluster.propose(
        left_leader,
        2,
        CommandBody::Admin(AdminCommand::Split {
            split_key: b"z".to_vec(),
            new_region_id: 6,
            new_peer_ids: vec![61, 62, 63],
        }),
    );
    assert!(matches!(
        bad.lock().unwrap().clone(),
        Some(Err(RaftstoreError::InvalidCommand(_)))
    ));

    // After a restart every store opens both halves from its engine.
    for store_id in 1..=3u64 {
        let reopened = cluster.open(store_id);
        cluster.stores[(store_id - 1) as usize] = Some(reopened);
        let store = cluster.store(store_id);
        assert_eq!(store.region_ids().collect::<Vec<_>>(), vec![1, 2, 5]);
        assert_eq!(store.peer(5).unwrap().region().start_key, b"t".to_vec());
        assert_eq!(store.peer(2).unwrap().region().end_key, b"t".to_vec());
    }
}

#[test]
fn a_leader_reports_how_far_behind_its_followers_are() {
    let mut cluster = Cluster::new();
    cluster.tick(PeerOptions::default().election_tick * 3);
    let leader = cluster.leader_of(2).unwrap();
    let health = cluster.store(leader).peer(2).unwrap().health();
    assert_eq!(health.follower_lag, 0, "{health:?}");
    assert!(
        health.pending_peers.is_empty() && health.down_peers.is_empty(),
        "{health:?}"
    );

    let behind = (1..=3).find(|&s| s != leader).unwrap();
    cluster.stores[(behind - 1) as usize] = None;
    cluster.down.lock().unwrap().insert(behind);
    for i in 0..5u8 {
        cluster.put(leader, 2, &[b'n', i], b"x");
    }
    cluster.tick(PeerOptions::default().heartbeat_tick);
    let health = cluster.store(leader).peer(2).unwrap().health();
    assert!(health.follower_lag >= 5, "{health:?}");
    assert_eq!(health.apply_lag, 0, "the leader applied what it committed");
    // A follower does not judge its peers.
    let other = (1..=3).find(|&s| s != leader && s != behind).unwrap();
    assert_eq!(cluster.store(other).peer(2).unwrap().health().follower_lag, 0);

    cluster.down.lock().unwrap().clear();
    let store = cluster.open(behind);
    cluster.stores[(behind - 1) as usize] = Some(store);
    cluster.tick(PeerOptions::default().heartbeat_tick * 3);
    let health = cluster.store(leader).peer(2).unwrap().health();
    assert_eq!(health.follower_lag, 0, "caught up: {health:?}");
}

/// A write the followers acknowledged is applied, and answered, before the leader's round
/// writes and fsyncs the entries proposed after it: the round hands it to the apply side
/// first.
#[test]
fn acknowledged_entries_are_applied_before_the_round_writes_newer_ones() {
    let mut cluster = Cluster::new();
    cluster.tick(PeerOptions::default().election_tick * 3);
    let leader = cluster.leader_of(1).expect("region 1 has a leader");
    cluster.settle();
    let first = cluster.put(leader, 1, b"a", b"1");
    cluster.store(leader).handle_readies().unwrap();
    // The followers store the entry and acknowledge it; the leader steps their answers.
    cluster.deliver();
    for follower in (1..=3).filter(|&s| s != leader) {
        cluster.store(follower).handle_readies().unwrap();
    }
    cluster.deliver();
    let second = cluster.put(leader, 1, b"b", b"2");
    let InlineStore { store, applier } = cluster.store(leader);
    let mut round = store.collect_readies();
    assert!(round.must_sync, "the round writes the second entry");
    let early = store.take_early_apply(&mut round);
    assert_eq!(early.len(), 1, "the acknowledged entry goes out before the write");
    let results = applier.apply(early).unwrap();
    assert_eq!(first.lock().unwrap().clone(), Some(Ok(CommandResponse::Written)));
    assert_eq!(second.lock().unwrap().clone(), None);
    assert_eq!(cluster.value_on(leader, b"a"), Some(b"1".to_vec()));
    assert_eq!(cluster.value_on(leader, b"b"), None);
    // The round then goes on as usual, and the second write commits too.
    cluster.engines[(leader - 1) as usize]
        .write(&round.batch, crate::storage::WriteOptions::SYNC)
        .unwrap();
    let InlineStore { store, applier } = cluster.store(leader);
    store.on_round_persisted(round);
    store.on_apply_results(results);
    let tasks = store.take_apply_tasks();
    let results = applier.apply(tasks).unwrap();
    store.on_apply_results(results);
    cluster.tick(PeerOptions::default().heartbeat_tick);
    assert_eq!(second.lock().unwrap().clone(), Some(Ok(CommandResponse::Written)));
    for store in 1..=3 {
        assert_eq!(cluster.value_on(store, b"a"), Some(b"1".to_vec()));
        assert_eq!(cluster.value_on(store, b"b"), Some(b"2".to_vec()));
    }
}
