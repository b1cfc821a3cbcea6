//! Scenario tests of the Raft core, after the Raft paper's sections and TinyKV's raft suites,
//! plus what those lack (pre-vote, check-quorum, ReadIndex, leases), and a seeded simulation.

// Scenario tables read best as literal tuples.
#![allow(clippy::type_complexity)]

mod election;
mod membership;
mod network;
mod paper;
mod raw_node;
mod reads;
mod replication;
mod simulation;
mod snapshot;
mod transfer;

use super::{Entry, MemStorage, Message, MessageType, Raft};

/// A storage holding entries 1.. with the given terms (and the voters given).
pub fn storage_with_terms(voters: Vec<u64>, terms: &[u64]) -> MemStorage {
    let storage = MemStorage::new_with_conf_state(voters);
    let entries: Vec<Entry> = terms
        .iter()
        .enumerate()
        .map(|(i, &term)| Entry::new(term, i as u64 + 1))
        .collect();
    storage.append(&entries);
    storage
}

pub fn read_messages(raft: &mut Raft<MemStorage>) -> Vec<Message> {
    std::mem::take(&mut raft.msgs)
}

pub fn msg(msg_type: MessageType, from: u64, to: u64, term: u64) -> Message {
    let mut m = Message::new(msg_type, from, to);
    m.term = term;
    m
}

pub fn propose(data: &[u8]) -> Message {
    let mut m = Message::new(MessageType::Propose, 1, 1);
    m.entries = vec![Entry {
        data: data.to_vec(),
        ..Default::default()
    }];
    m
}

/// Makes `raft` (a fresh candidate-able node) leader of a 1-node view and commits its no-op,
/// persisting everything to `storage`, as the paper tests' setup does.
pub fn commit_noop_entry(raft: &mut Raft<MemStorage>, storage: &MemStorage) {
    assert_eq!(
        raft.state,
        super::StateRole::Leader,
        "only a leader commits its no-op"
    );
    raft.msgs.clear();
    let peers: Vec<u64> = raft.prs.voters().filter(|&id| id != raft.id).collect();
    for id in peers {
        let mut m = msg(MessageType::AppendResponse, id, raft.id, raft.term);
        m.index = raft.raft_log.last_index();
        raft.step(m).unwrap();
    }
    raft.msgs.clear();
    storage.append(raft.raft_log.unstable_entries());
    let (last, term) = (raft.raft_log.last_index(), raft.raft_log.last_term());
    raft.raft_log.applied_to(raft.raft_log.committed);
    raft.raft_log.stable_to(last, term);
}

pub fn propose_to(id: u64, data: &[u8]) -> Message {
    let mut m = propose(data);
    m.from = id;
    m.to = id;
    m
}
