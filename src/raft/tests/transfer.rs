//! Leader transfer (thesis §3.10).

use super::network::Network;
use super::{msg, propose_to};
use crate::raft::{MessageType, RaftError, StateRole};

fn leader_of(network: &mut Network) -> u64 {
    let ids: Vec<u64> = network.peers.keys().copied().collect();
    ids.into_iter()
        .find(|&id| matches!(network.peers.get_mut(&id), Some(super::network::Peer::Node(r)) if r.state == StateRole::Leader))
        .unwrap_or(0)
}

fn transfer(network: &mut Network, leader: u64, to: u64) {
    network.send(vec![msg(MessageType::TransferLeader, to, leader, 0)]);
}

fn three_with_leader_1() -> Network {
    let mut network = Network::new(vec![None, None, None]);
    network.trigger(1, MessageType::Hup);
    network
}

#[test]
fn transfer_to_an_up_to_date_node_and_back() {
    let mut network = three_with_leader_1();
    transfer(&mut network, 1, 2);
    assert_eq!(leader_of(&mut network), 2);
    assert_eq!(network.raft(1).lead, 2);
    network.send(vec![propose_to(2, b"x")]);
    transfer(&mut network, 2, 1);
    assert_eq!(leader_of(&mut network), 1);
}

#[test]
fn a_transfer_asked_of_a_follower_is_forwarded_to_the_leader() {
    let mut network = three_with_leader_1();
    // The request reaches node 2, which forwards it to its leader.
    network.send(vec![msg(MessageType::TransferLeader, 2, 2, 0)]);
    assert_eq!(leader_of(&mut network), 2);
}

#[test]
fn a_slow_transferee_is_caught_up_first() {
    let mut network = three_with_leader_1();
    network.isolate(3);
    network.send(vec![propose_to(1, b"x")]);
    network.recover();
    assert!(network.raft(3).raft_log.last_index() < network.raft(1).raft_log.last_index());
    transfer(&mut network, 1, 3);
    assert_eq!(leader_of(&mut network), 3);
}

#[test]
fn a_transferee_that_needs_a_snapshot_gets_it_then_leads() {
    let mut network = three_with_leader_1();
    network.isolate(3);
    network.send(vec![propose_to(1, b"x")]);
    let storage = network.storage[&1].clone();
    let leader = network.raft(1);
    storage.append(leader.raft_log.unstable_entries());
    let (last, term) = (leader.raft_log.last_index(), leader.raft_log.last_term());
    leader.raft_log.stable_to(last, term);
    let applied = leader.raft_log.committed;
    leader.raft_log.applied_to(applied);
    storage.compact(applied, Vec::new()).unwrap();
    network.recover();
    // Node 3 must be heard from before a snapshot is sent to it.
    network.trigger(1, MessageType::Beat);
    // Node 3 persists the snapshot it received (a node with one pending cannot campaign).
    let snapshot = network
        .raft(3)
        .raft_log
        .unstable_snapshot()
        .cloned()
        .expect("a snapshot arrived");
    network.storage[&3].apply_snapshot(snapshot.clone()).unwrap();
    network.raft(3).raft_log.stable_snap_to(snapshot.metadata.index);
    transfer(&mut network, 1, 3);
    assert_eq!(leader_of(&mut network), 3);
}

#[test]
fn transfers_to_self_or_to_a_stranger_do_nothing() {
    let mut network = three_with_leader_1();
    transfer(&mut network, 1, 1);
    assert_eq!(leader_of(&mut network), 1);
    assert_eq!(network.raft(1).lead_transferee, None);
    transfer(&mut network, 1, 9);
    assert_eq!(network.raft(1).lead_transferee, None);
}

#[test]
fn proposals_are_refused_while_transferring_and_a_stuck_transfer_is_abandoned() {
    let mut network = three_with_leader_1();
    network.isolate(3);
    transfer(&mut network, 1, 3);
    assert_eq!(network.raft(1).lead_transferee, Some(3));
    assert_eq!(
        network.raft(1).step(propose_to(1, b"x")),
        Err(RaftError::ProposalDropped)
    );
    // An election timeout later the leader gives up and takes proposals again.
    for _ in 0..10 {
        network.raft(1).tick();
    }
    assert_eq!(network.raft(1).lead_transferee, None);
    assert_eq!(network.raft(1).state, StateRole::Leader);
    network.raft(1).step(propose_to(1, b"x")).unwrap();
}

#[test]
fn a_second_transfer_redirects_the_first() {
    let mut network = three_with_leader_1();
    network.isolate(3);
    transfer(&mut network, 1, 3);
    assert_eq!(network.raft(1).lead_transferee, Some(3));
    // Asking again for the same node changes nothing (the timer keeps running).
    network.raft(1).tick();
    transfer(&mut network, 1, 3);
    assert_eq!(network.raft(1).lead_transferee, Some(3));
    transfer(&mut network, 1, 2);
    assert_eq!(leader_of(&mut network), 2);
}

#[test]
fn a_higher_term_election_supersedes_a_pending_transfer() {
    let mut network = three_with_leader_1();
    network.isolate(3);
    transfer(&mut network, 1, 3);
    assert_eq!(network.raft(1).lead_transferee, Some(3));
    network.recover();
    network.trigger(2, MessageType::Hup);
    assert_eq!(leader_of(&mut network), 2);
    assert_eq!(network.raft(1).lead_transferee, None);
}

#[test]
fn removing_the_transferee_cancels_the_transfer() {
    let mut network = three_with_leader_1();
    network.isolate(3);
    transfer(&mut network, 1, 3);
    network.raft(1).apply_conf_change(&crate::raft::ConfChange {
        change_type: crate::raft::ConfChangeType::RemoveNode,
        node_id: 3,
    });
    assert_eq!(network.raft(1).lead_transferee, None);
}

#[test]
fn timeout_now_to_a_removed_node_does_nothing() {
    let mut network = three_with_leader_1();
    // Node 3 no longer counts itself a member.
    network.raft(3).apply_conf_change(&crate::raft::ConfChange {
        change_type: crate::raft::ConfChangeType::RemoveNode,
        node_id: 3,
    });
    let term = network.raft(1).term;
    network.send(vec![msg(MessageType::TimeoutNow, 1, 3, term)]);
    assert_eq!(network.raft(3).state, StateRole::Follower);
    assert_eq!(leader_of(&mut network), 1);
}

#[test]
fn transferring_back_to_the_leader_cancels_a_pending_transfer() {
    let mut network = three_with_leader_1();
    network.isolate(3);
    transfer(&mut network, 1, 3);
    assert_eq!(network.raft(1).lead_transferee, Some(3));
    transfer(&mut network, 1, 1);
    assert_eq!(network.raft(1).lead_transferee, None);
    assert_eq!(leader_of(&mut network), 1);
    network.raft(1).step(propose_to(1, b"accepted again")).unwrap();
}
