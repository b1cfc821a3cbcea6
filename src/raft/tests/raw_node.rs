//! The `Ready`/`advance` interface: start, restart, restart from a snapshot.

use crate::raft::message::{ConfState, Snapshot, SnapshotMetadata};
use crate::raft::{Entry, HardState, MemStorage, RawNode, StateRole};

fn config(id: u64) -> crate::raft::Config {
    super::network::test_config(id, vec![id], 10, 1)
}

#[test]
fn start_campaign_propose_and_commit_with_nothing_left() {
    let storage = MemStorage::new_with_conf_state(vec![1]);
    let mut node = RawNode::new(&config(1), storage.clone()).unwrap();
    node.campaign().unwrap();
    let ready = node.ready();
    assert_eq!(ready.soft_state.map(|s| s.role), Some(StateRole::Leader));
    assert_eq!(
        ready.hard_state,
        Some(HardState {
            term: 1,
            vote: 1,
            commit: 1
        })
    );
    assert_eq!(ready.entries.len(), 1, "the no-op");
    assert_eq!(
        ready.committed_entries, ready.entries,
        "a group of one commits at once"
    );
    storage.append(&ready.entries);
    node.advance(ready);
    node.propose(b"foo".to_vec()).unwrap();
    let ready = node.ready();
    assert_eq!(ready.entries.len(), 1);
    assert_eq!(ready.entries, ready.committed_entries);
    assert_eq!(ready.entries[0].data, b"foo");
    storage.append(&ready.entries);
    node.advance(ready);
    assert!(!node.has_ready(), "nothing left after advance");
}

#[test]
fn restart_hands_back_committed_but_unapplied_entries_only() {
    let storage = MemStorage::new_with_conf_state(vec![1]);
    storage.append(&[Entry::new(1, 1), Entry::new(1, 2)]);
    storage.set_hard_state(HardState {
        term: 1,
        vote: 0,
        commit: 1,
    });
    let mut node = RawNode::new(&config(1), storage).unwrap();
    let ready = node.ready();
    assert_eq!(ready.committed_entries, vec![Entry::new(1, 1)]);
    assert!(ready.entries.is_empty(), "nothing new to persist");
    assert_eq!(ready.hard_state, None, "the hard state did not change");
    node.advance(ready);
    assert!(!node.has_ready());
}

#[test]
fn restart_from_a_snapshot_applies_only_what_follows_it() {
    let storage = MemStorage::new();
    storage
        .apply_snapshot(Snapshot {
            metadata: SnapshotMetadata {
                index: 2,
                term: 1,
                conf_state: ConfState::new(vec![1, 2]),
            },
            data: Vec::new(),
        })
        .unwrap();
    storage.append(&[Entry::new(1, 3)]);
    storage.set_hard_state(HardState {
        term: 1,
        vote: 0,
        commit: 3,
    });
    let mut node = RawNode::new(&config(1), storage).unwrap();
    let ready = node.ready();
    assert_eq!(ready.committed_entries, vec![Entry::new(1, 3)]);
    assert!(ready.entries.is_empty());
    node.advance(ready);
    assert!(!node.has_ready());
    let voters: Vec<u64> = node.raft.prs.voters().collect();
    assert_eq!(voters, vec![1, 2], "membership comes from the snapshot");
}

#[test]
fn configuration_errors_are_reported() {
    let storage = MemStorage::new();
    let mut bad = config(1);
    bad.election_tick = 1;
    assert!(RawNode::new(&bad, storage.clone()).is_err());
    let mut bad = config(0);
    bad.id = 0;
    assert!(RawNode::new(&bad, storage.clone()).is_err());
    let mut bad = config(1);
    bad.read_only_option = crate::raft::ReadOnlyOption::LeaseBased;
    assert!(RawNode::new(&bad, storage).is_err(), "a lease needs check-quorum");
}

#[test]
fn peers_cannot_send_local_messages() {
    let mut node = RawNode::new(&config(1), MemStorage::new_with_conf_state(vec![1])).unwrap();
    let hup = crate::raft::Message::new(crate::raft::MessageType::Hup, 2, 1);
    assert!(node.step(hup).is_err());
    assert_eq!(node.raft.state, StateRole::Follower);
}

/// Persists what `ready` asks to (entries and hard state).
fn persist(storage: &MemStorage, ready: &crate::raft::Ready) {
    storage.append(&ready.entries);
    if let Some(hard_state) = ready.hard_state {
        storage.set_hard_state(hard_state);
    }
}

#[test]
fn only_a_leaders_appends_may_leave_before_its_write_and_it_counts_itself_after() {
    use crate::raft::MessageType;
    let voters = vec![1, 2, 3];
    let storages: Vec<MemStorage> = (0..3)
        .map(|_| MemStorage::new_with_conf_state(voters.clone()))
        .collect();
    let mut nodes: Vec<RawNode<MemStorage>> = (1..=3)
        .map(|id| {
            let config = super::network::test_config(id, voters.clone(), 10, 1);
            RawNode::new(&config, storages[id as usize - 1].clone()).unwrap()
        })
        .collect();

    // An election: nothing a candidate or a voter sends may leave before its write.
    nodes[0].campaign().unwrap();
    let mut in_flight = Vec::new();
    for _ in 0..4 {
        for (i, node) in nodes.iter_mut().enumerate() {
            if !node.has_ready() || node.raft.state == StateRole::Leader {
                continue;
            }
            let mut ready = node.ready();
            assert!(
                node.take_early_messages(&mut ready).is_empty(),
                "node {} is not a leader",
                i + 1
            );
            persist(&storages[i], &ready);
            in_flight.extend(std::mem::take(&mut ready.messages));
            node.advance(ready);
        }
        for m in in_flight.drain(..) {
            nodes[m.to as usize - 1].step(m).unwrap();
        }
    }
    assert_eq!(nodes[0].raft.state, StateRole::Leader);

    // The new leader's first ready: its no-op entry, and appends that may leave at once.
    let mut ready = nodes[0].ready();
    assert_eq!(ready.entries.len(), 1);
    let early = nodes[0].take_early_messages(&mut ready);
    assert_eq!(early.len(), 2, "one append per follower: {early:?}");
    assert!(
        early
            .iter()
            .all(|m| m.msg_type == MessageType::Append && m.entries.len() == 1)
    );
    assert!(
        ready.messages.iter().all(|m| m.msg_type != MessageType::Append),
        "nothing is sent twice"
    );

    // The followers store the entry and answer before the leader's own write is done; their
    // answers are not early messages.
    let mut answers = Vec::new();
    for m in early {
        let i = m.to as usize - 1;
        nodes[i].step(m).unwrap();
        let mut follower_ready = nodes[i].ready();
        assert!(nodes[i].take_early_messages(&mut follower_ready).is_empty());
        persist(&storages[i], &follower_ready);
        answers.extend(std::mem::take(&mut follower_ready.messages));
        nodes[i].advance(follower_ready);
    }
    assert!(
        answers
            .iter()
            .all(|m| m.msg_type == MessageType::AppendResponse && !m.reject)
    );

    // The leader's write completes, then (the next round) it steps the answers and commits.
    persist(&storages[0], &ready);
    nodes[0].advance(ready);
    let last = nodes[0].raft.raft_log.last_index();
    assert!(
        nodes[0].raft.raft_log.committed < last,
        "not committed before the answers"
    );
    for m in answers {
        nodes[0].step(m).unwrap();
    }
    assert_eq!(nodes[0].raft.raft_log.committed, last);
    let ready = nodes[0].ready();
    assert_eq!(ready.committed_entries.len(), 1, "the no-op is committed");
}
