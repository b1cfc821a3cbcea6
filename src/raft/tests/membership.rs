//! Membership changes, one node at a time.

use super::network::new_raft;
use super::{msg, propose, read_messages};
use crate::raft::{ConfChange, ConfChangeType, EntryType, MemStorage, MessageType, RawNode};

fn add(node_id: u64) -> ConfChange {
    ConfChange {
        change_type: ConfChangeType::AddNode,
        node_id,
    }
}

fn remove(node_id: u64) -> ConfChange {
    ConfChange {
        change_type: ConfChangeType::RemoveNode,
        node_id,
    }
}

#[test]
fn adding_and_removing_nodes_changes_the_voters() {
    let mut r = new_raft(1, vec![1], 10, 1, MemStorage::new_with_conf_state(vec![1]));
    let state = r.apply_conf_change(&add(2));
    assert_eq!(state.voters, vec![1, 2]);
    // Twice is once.
    r.apply_conf_change(&add(2));
    assert_eq!(r.prs.progress.len(), 2);
    assert_eq!(r.apply_conf_change(&remove(2)).voters, vec![1]);
    assert!(r.apply_conf_change(&remove(1)).voters.is_empty());
}

#[test]
fn removing_a_node_can_commit_what_was_waiting_for_it() {
    let mut r = new_raft(1, vec![1, 2], 10, 1, MemStorage::new_with_conf_state(vec![1, 2]));
    r.become_candidate();
    r.become_leader();
    // Node 2 acknowledges the no-op only.
    let mut ack = msg(MessageType::AppendResponse, 2, 1, r.term);
    ack.index = 1;
    r.step(ack).unwrap();
    r.step(propose(b"waiting")).unwrap();
    read_messages(&mut r);
    assert_eq!(r.raft_log.committed, 1, "node 2 has not stored it");
    r.apply_conf_change(&remove(2));
    assert_eq!(r.raft_log.committed, 2, "alone, node 1 is the quorum");
}

#[test]
fn only_one_conf_change_is_pending_at_a_time() {
    let mut r = new_raft(1, vec![1, 2], 10, 1, MemStorage::new_with_conf_state(vec![1, 2]));
    r.become_candidate();
    r.become_leader();
    r.propose_conf_change(&add(3)).unwrap();
    r.propose_conf_change(&add(4)).unwrap();
    let entries = r.raft_log.all_entries();
    let kinds: Vec<EntryType> = entries.iter().map(|e| e.entry_type).collect();
    assert_eq!(
        kinds,
        vec![EntryType::Normal, EntryType::ConfChange, EntryType::Normal]
    );
    assert!(entries[2].data.is_empty(), "the second change became a no-op");
}

#[test]
fn raw_node_proposals_and_conf_changes_append_entries_of_their_kinds() {
    let storage = MemStorage::new_with_conf_state(vec![1]);
    let config = super::network::test_config(1, vec![1], 10, 1);
    let mut node = RawNode::new(&config, storage.clone()).unwrap();
    node.campaign().unwrap();
    let mut proposed = false;
    let last_index = loop {
        let ready = node.ready();
        storage.append(&ready.entries);
        if !proposed && ready.soft_state.is_some_and(|s| s.leader_id == 1) {
            node.propose(b"somedata".to_vec()).unwrap();
            node.propose_conf_change(&add(1)).unwrap();
            proposed = true;
        }
        node.advance(ready);
        let last_index = storage.last_index_for_test();
        if proposed && last_index >= 3 {
            break last_index;
        }
    };
    let entries = storage.all_entries();
    assert_eq!(entries[last_index as usize - 2].data, b"somedata");
    assert_eq!(entries[last_index as usize - 1].entry_type, EntryType::ConfChange);
    assert_eq!(entries[last_index as usize - 1].data, add(1).encode());
}

#[test]
fn adding_the_same_node_twice_does_not_break_a_later_add() {
    let storage = MemStorage::new_with_conf_state(vec![1]);
    let config = super::network::test_config(1, vec![1], 10, 1);
    let mut node = RawNode::new(&config, storage.clone()).unwrap();
    node.campaign().unwrap();
    let apply_all = |node: &mut RawNode<MemStorage>| loop {
        if !node.has_ready() {
            break;
        }
        let ready = node.ready();
        storage.append(&ready.entries);
        for entry in &ready.committed_entries {
            if let Some(change) = crate::raft::raw_node::conf_change_of(entry) {
                node.apply_conf_change(&change);
            }
        }
        node.advance(ready);
    };
    apply_all(&mut node);
    for change in [add(1), add(1), add(2)] {
        node.propose_conf_change(&change).unwrap();
        apply_all(&mut node);
    }
    let voters: Vec<u64> = node.raft.prs.voters().collect();
    assert_eq!(voters, vec![1, 2]);
    let changes: Vec<ConfChange> = storage
        .all_entries()
        .iter()
        .filter_map(crate::raft::raw_node::conf_change_of)
        .collect();
    assert_eq!(changes, vec![add(1), add(1), add(2)]);
}

#[test]
fn a_leader_that_removes_itself_hands_over_and_steps_down() {
    let mut network = super::network::Network::new(vec![None, None, None]);
    network.trigger(1, MessageType::Hup);
    network.send(vec![super::propose_to(1, b"x")]);
    network.raft(1).apply_conf_change(&remove(1));
    assert_eq!(network.raft(1).state, crate::raft::StateRole::Follower);
    let handover: Vec<_> = read_messages(network.raft(1))
        .into_iter()
        .filter(|m| m.msg_type == MessageType::TimeoutNow)
        .collect();
    assert_eq!(handover.len(), 1, "a caught-up member is told to campaign");
    let successor = handover[0].to;
    for id in [2, 3] {
        network.raft(id).apply_conf_change(&remove(1));
    }
    network.send(handover);
    assert_eq!(network.raft(successor).state, crate::raft::StateRole::Leader);
}
