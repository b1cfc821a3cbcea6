//! An in-memory network of Raft nodes for scenario tests: messages are delivered at once, in
//! order, until none are left, unless a filter drops them. Filters: `cut` two nodes apart,
//! `isolate` one, `drop` a fraction of one direction, `ignore` a message type. Randomness
//! (for fractional drops) comes from a seed.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::raft::core::SplitMix64;
use crate::raft::{Config, MemStorage, Message, MessageType, NodeId, Raft};

/// A participant: a real node, or a black hole that swallows everything sent to it.
pub enum Peer {
    Node(Box<Raft<MemStorage>>),
    BlackHole,
}

impl Peer {
    pub fn raft(&mut self) -> &mut Raft<MemStorage> {
        match self {
            Peer::Node(raft) => raft,
            Peer::BlackHole => panic!("a black hole has no state"),
        }
    }
}

pub struct Network {
    pub peers: BTreeMap<NodeId, Peer>,
    pub storage: BTreeMap<NodeId, MemStorage>,
    dropped: HashMap<(NodeId, NodeId), f64>,
    ignored: HashSet<MessageType>,
    rng: SplitMix64,
}

/// The configuration the scenario tests use: election 10 ticks, heartbeat 1.
pub fn test_config(id: NodeId, peers: Vec<NodeId>, election: usize, heartbeat: usize) -> Config {
    Config::new(id, peers, election, heartbeat, 0x5eed ^ id)
}

pub fn new_raft(
    id: NodeId,
    peers: Vec<NodeId>,
    election: usize,
    heartbeat: usize,
    storage: MemStorage,
) -> Raft<MemStorage> {
    Raft::new(&test_config(id, peers, election, heartbeat), storage).unwrap()
}

impl Network {
    /// A network of `peers.len()` nodes with ids 1..=n; `None` makes a fresh node with the
    /// test configuration, `Some` takes the given peer.
    pub fn new(peers: Vec<Option<Peer>>) -> Self {
        Self::new_with(peers, |_| {})
    }

    /// Like [`Network::new`], adjusting each fresh node's configuration.
    pub fn new_with(peers: Vec<Option<Peer>>, adjust: impl Fn(&mut Config)) -> Self {
        let ids: Vec<NodeId> = (1..=peers.len() as u64).collect();
        let mut network = Network {
            peers: BTreeMap::new(),
            storage: BTreeMap::new(),
            dropped: HashMap::new(),
            ignored: HashSet::new(),
            rng: SplitMix64::new(42),
        };
        for (peer, &id) in peers.into_iter().zip(&ids) {
            let peer = match peer {
                Some(Peer::Node(raft)) => {
                    assert_eq!(raft.id, id, "a node built elsewhere must have the id of its slot");
                    Peer::Node(raft)
                }
                Some(Peer::BlackHole) => Peer::BlackHole,
                None => {
                    let storage = MemStorage::new_with_conf_state(ids.clone());
                    let mut config = test_config(id, ids.clone(), 10, 1);
                    adjust(&mut config);
                    network.storage.insert(id, storage.clone());
                    Peer::Node(Box::new(Raft::new(&config, storage).unwrap()))
                }
            };
            network.peers.insert(id, peer);
        }
        network
    }

    pub fn raft(&mut self, id: NodeId) -> &mut Raft<MemStorage> {
        self.peers.get_mut(&id).expect("a known peer").raft()
    }

    /// Delivers `msgs` and everything they cause, until the network is quiet.
    pub fn send(&mut self, msgs: Vec<Message>) {
        let mut queue: VecDeque<Message> = msgs.into();
        while let Some(m) = queue.pop_front() {
            let Some(Peer::Node(raft)) = self.peers.get_mut(&m.to) else {
                continue;
            };
            let _ = raft.step(m);
            let produced = std::mem::take(&mut raft.msgs);
            queue.extend(self.filter(produced));
        }
    }

    /// Steps a local message (such as `Hup`) on its node, then delivers what follows.
    pub fn trigger(&mut self, id: NodeId, msg_type: MessageType) {
        self.send(vec![Message::new(msg_type, id, id)]);
    }

    fn filter(&mut self, msgs: Vec<Message>) -> Vec<Message> {
        msgs.into_iter()
            .filter(|m| {
                if self.ignored.contains(&m.msg_type) {
                    return false;
                }
                let fraction = self.dropped.get(&(m.from, m.to)).copied().unwrap_or(0.0);
                fraction == 0.0 || (self.rng.next_u64() % 1_000_000) as f64 / 1_000_000.0 >= fraction
            })
            .collect()
    }

    /// Drops `fraction` (0.0 to 1.0) of the messages from `from` to `to`.
    pub fn drop(&mut self, from: NodeId, to: NodeId, fraction: f64) {
        self.dropped.insert((from, to), fraction);
    }

    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.drop(a, b, 1.0);
        self.drop(b, a, 1.0);
    }

    pub fn isolate(&mut self, id: NodeId) {
        let others: Vec<NodeId> = self.peers.keys().copied().filter(|&p| p != id).collect();
        for other in others {
            self.cut(id, other);
        }
    }

    pub fn ignore(&mut self, msg_type: MessageType) {
        self.ignored.insert(msg_type);
    }

    pub fn recover(&mut self) {
        self.dropped.clear();
        self.ignored.clear();
    }
}
