//! Snapshots: sending them when the log is compacted, installing and ignoring them.

use super::network::{Network, new_raft};
use super::{msg, propose_to, read_messages};
use crate::raft::message::{ConfState, Snapshot, SnapshotMetadata};
use crate::raft::{MemStorage, MessageType, StateRole};

fn snapshot(index: u64, term: u64, voters: Vec<u64>) -> Snapshot {
    Snapshot {
        metadata: SnapshotMetadata {
            index,
            term,
            conf_state: ConfState::new(voters),
        },
        data: Vec::new(),
    }
}

#[test]
fn restoring_moves_the_log_to_the_snapshot_and_adopts_its_membership() {
    let mut r = new_raft(1, vec![1, 2], 10, 1, MemStorage::new_with_conf_state(vec![1, 2]));
    assert!(r.restore(snapshot(11, 11, vec![1, 2, 3])));
    assert_eq!(
        (
            r.raft_log.last_index(),
            r.raft_log.last_term(),
            r.raft_log.committed
        ),
        (11, 11, 11)
    );
    let voters: Vec<u64> = r.prs.voters().collect();
    assert_eq!(voters, vec![1, 2, 3]);
    // The same snapshot again is ignored.
    assert!(!r.restore(snapshot(11, 11, vec![1, 2, 3])));
}

#[test]
fn a_snapshot_at_or_below_the_commit_is_ignored() {
    let storage = super::storage_with_terms(vec![1, 2], &[1, 1, 1]);
    let mut r = new_raft(1, vec![1, 2], 10, 1, storage);
    r.raft_log.commit_to(3);
    assert!(!r.restore(snapshot(3, 1, vec![1, 2])));
    assert_eq!(r.raft_log.committed, 3);
    // A snapshot whose last entry we have just moves the commit.
    let mut r = new_raft(
        1,
        vec![1, 2],
        10,
        1,
        super::storage_with_terms(vec![1, 2], &[1, 1, 1]),
    );
    r.raft_log.commit_to(1);
    assert!(!r.restore(snapshot(2, 1, vec![1, 2])));
    assert_eq!(r.raft_log.committed, 2);
}

#[test]
fn the_leader_sends_a_snapshot_when_the_followers_entries_are_compacted() {
    let storage = MemStorage::new_with_conf_state(vec![1, 2]);
    let mut r = new_raft(1, vec![1, 2], 10, 1, storage.clone());
    r.restore(snapshot(11, 11, vec![1, 2]));
    storage.apply_snapshot(snapshot(11, 11, vec![1, 2])).unwrap();
    r.raft_log.stable_snap_to(11);
    r.become_candidate();
    r.become_leader();
    read_messages(&mut r);
    // Node 2 says its log ends before our first index.
    let mut reject = msg(MessageType::AppendResponse, 2, 1, r.term);
    reject.index = r.prs.progress[&2].next_idx - 1;
    reject.reject = true;
    reject.reject_hint = 0;
    r.prs.progress.get_mut(&2).unwrap().next_idx = r.raft_log.first_index();
    reject.index = r.raft_log.first_index() - 1;
    r.step(reject).unwrap();
    let sent = read_messages(&mut r);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].msg_type, MessageType::Snapshot);
    assert_eq!(sent[0].snapshot.as_ref().unwrap().metadata.index, 11);
}

#[test]
fn installing_a_snapshot_makes_its_sender_the_leader() {
    let mut r = new_raft(2, vec![1, 2], 10, 1, MemStorage::new_with_conf_state(vec![1, 2]));
    let mut m = msg(MessageType::Snapshot, 1, 2, 2);
    m.snapshot = Some(snapshot(11, 11, vec![1, 2]));
    r.step(m).unwrap();
    assert_eq!(r.lead, 1);
    let answers = read_messages(&mut r);
    assert_eq!(
        (answers[0].msg_type, answers[0].index),
        (MessageType::AppendResponse, 11)
    );
}

#[test]
fn a_slow_node_catches_up_through_a_snapshot() {
    let mut network = Network::new(vec![None, None, None]);
    network.trigger(1, MessageType::Hup);
    network.isolate(3);
    for _ in 0..100 {
        network.send(vec![propose_to(1, b"x")]);
    }
    // The leader persists and compacts its log.
    let leader_storage = network.storage[&1].clone();
    let leader = network.raft(1);
    leader_storage.append(leader.raft_log.unstable_entries());
    let (last, term) = (leader.raft_log.last_index(), leader.raft_log.last_term());
    leader.raft_log.stable_to(last, term);
    let applied = leader.raft_log.committed;
    leader.raft_log.applied_to(applied);
    leader_storage.set_conf_state(ConfState::new(vec![1, 2, 3]));
    leader_storage.compact(applied, b"state".to_vec()).unwrap();
    network.recover();
    // Node 3 becomes active again, then gets the snapshot and the rest.
    for _ in 0..2 {
        network.trigger(1, MessageType::Beat);
    }
    network.send(vec![propose_to(1, b"after")]);
    let leader_commit = network.raft(1).raft_log.committed;
    assert_eq!(network.raft(3).raft_log.committed, leader_commit);
    assert_eq!(network.raft(3).state, StateRole::Follower);
}

#[test]
fn a_follower_with_nothing_after_a_snapshot_reports_its_commit_for_compacted_probes() {
    // The follower installed a snapshot at 11; a probe at an index it has compacted (5) gets
    // its commit index back instead of a rejection it cannot compute.
    let mut r = new_raft(2, vec![1, 2], 10, 1, MemStorage::new_with_conf_state(vec![1, 2]));
    r.restore(snapshot(11, 11, vec![1, 2]));
    r.become_follower(12, 1);
    let mut probe = msg(MessageType::Append, 1, 2, 12);
    probe.index = 5;
    probe.log_term = 3;
    r.step(probe).unwrap();
    let answers = read_messages(&mut r);
    assert_eq!(answers.len(), 1);
    assert!(!answers[0].reject);
    assert_eq!(answers[0].index, 11);
}

#[test]
fn a_snapshot_temporarily_unavailable_is_retried_later() {
    let storage = MemStorage::new_with_conf_state(vec![1, 2]);
    storage.apply_snapshot(snapshot(11, 11, vec![1, 2])).unwrap();
    let mut r = new_raft(1, vec![1, 2], 10, 1, storage.clone());
    r.become_candidate();
    r.become_leader();
    read_messages(&mut r);
    storage.set_snapshot_unavailable(true);
    {
        let pr = r.prs.progress.get_mut(&2).unwrap();
        pr.next_idx = 5;
        pr.recent_active = true;
    }
    let mut reject = msg(MessageType::AppendResponse, 2, 1, r.term);
    reject.index = 4;
    reject.reject = true;
    r.step(reject).unwrap();
    assert!(
        read_messages(&mut r).is_empty(),
        "no snapshot to send yet, and no append possible"
    );
    assert_eq!(r.prs.progress[&2].next_idx, 1, "the probe did go back");
    // Once it is available, the next probe sends it.
    storage.set_snapshot_unavailable(false);
    let mut reject = msg(MessageType::AppendResponse, 2, 1, r.term);
    reject.index = 0;
    reject.reject = true;
    r.step(reject).unwrap();
    assert!(
        read_messages(&mut r)
            .iter()
            .any(|m| m.msg_type == MessageType::Snapshot)
    );
}
