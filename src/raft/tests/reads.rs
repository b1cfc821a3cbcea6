//! Linearizable reads: ReadIndex and the lease.

use super::network::Network;
use super::{msg, propose_to};
use crate::raft::{Entry, Message, MessageType, ReadOnlyOption, ReadState, StateRole};

fn read_request(node: u64, ctx: &[u8]) -> Message {
    let mut m = msg(MessageType::ReadIndex, node, node, 0);
    m.entries = vec![Entry {
        data: ctx.to_vec(),
        ..Default::default()
    }];
    m
}

fn network(option: ReadOnlyOption) -> Network {
    Network::new_with(vec![None, None, None], |config| {
        config.read_only_option = option;
        config.check_quorum = option == ReadOnlyOption::LeaseBased;
        config.pre_vote = true;
    })
}

#[test]
fn read_index_on_the_leader_and_through_a_follower() {
    let mut network = network(ReadOnlyOption::Safe);
    network.trigger(1, MessageType::Hup);
    network.send(vec![propose_to(1, b"x")]);
    let committed = network.raft(1).raft_log.committed;
    network.send(vec![read_request(1, b"on-leader")]);
    assert_eq!(
        std::mem::take(&mut network.raft(1).read_states),
        vec![ReadState {
            index: committed,
            request_ctx: b"on-leader".to_vec()
        }]
    );
    network.send(vec![read_request(2, b"on-follower")]);
    assert_eq!(
        std::mem::take(&mut network.raft(2).read_states),
        vec![ReadState {
            index: committed,
            request_ctx: b"on-follower".to_vec()
        }]
    );
}

#[test]
fn a_new_leader_answers_reads_only_after_committing_its_no_op() {
    let mut network = network(ReadOnlyOption::Safe);
    network.trigger(1, MessageType::Hup);
    network.send(vec![propose_to(1, b"x")]);
    // Node 2 wins, but its no-op cannot commit yet (appends are lost).
    network.ignore(MessageType::Append);
    network.trigger(2, MessageType::Hup);
    assert_eq!(network.raft(2).state, StateRole::Leader);
    network.send(vec![read_request(2, b"early")]);
    assert!(
        network.raft(2).read_states.is_empty(),
        "no answer before the no-op commits"
    );
    network.recover();
    network.trigger(2, MessageType::Beat);
    let states = std::mem::take(&mut network.raft(2).read_states);
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].index, network.raft(2).raft_log.committed);
}

#[test]
fn read_index_on_a_deposed_leader_never_returns() {
    let mut network = network(ReadOnlyOption::Safe);
    network.trigger(1, MessageType::Hup);
    network.send(vec![propose_to(1, b"x")]);
    network.isolate(1);
    network.trigger(2, MessageType::Hup);
    network.send(vec![propose_to(2, b"newer")]);
    // Node 1 still believes it leads, but no quorum confirms it.
    assert_eq!(network.raft(1).state, StateRole::Leader);
    network.send(vec![read_request(1, b"stale?")]);
    for _ in 0..5 {
        network.trigger(1, MessageType::Beat);
    }
    assert!(
        network.raft(1).read_states.is_empty(),
        "a stale read would have been served"
    );
    // When it hears the new term it steps down and the request is dropped, not answered.
    network.recover();
    network.trigger(2, MessageType::Beat);
    assert_eq!(network.raft(1).state, StateRole::Follower);
    assert!(network.raft(1).read_states.is_empty());
    assert_eq!(network.raft(1).pending_read_count(), 0);
}

#[test]
fn lease_reads_are_immediate_while_the_lease_holds() {
    let mut network = network(ReadOnlyOption::LeaseBased);
    network.trigger(1, MessageType::Hup);
    network.send(vec![propose_to(1, b"x")]);
    // One heartbeat round acknowledged by a quorum starts the lease.
    network.trigger(1, MessageType::Beat);
    assert!(network.raft(1).lease_valid());
    // Cut off from everyone, the leader still serves reads at once, without messages...
    network.isolate(1);
    network.send(vec![read_request(1, b"leased")]);
    assert_eq!(network.raft(1).read_states.len(), 1);
}

#[test]
fn lease_reads_stop_when_the_lease_lapses() {
    let mut network = network(ReadOnlyOption::LeaseBased);
    network.trigger(1, MessageType::Hup);
    network.send(vec![propose_to(1, b"x")]);
    network.trigger(1, MessageType::Beat);
    network.isolate(1);
    // Time passes with no acknowledgements: within an election timeout the lease is gone.
    for _ in 0..9 {
        let r = network.raft(1);
        r.tick();
        r.msgs.clear();
    }
    let r = network.raft(1);
    assert!(
        !r.lease_valid(),
        "lease still valid after an election timeout without acks"
    );
    if r.state == StateRole::Leader {
        r.step(read_request(1, b"after lease")).unwrap();
        assert!(
            r.read_states.is_empty(),
            "without the lease a read waits for a heartbeat round"
        );
    }
}

#[test]
fn lease_is_void_during_a_leader_transfer() {
    let mut network = network(ReadOnlyOption::LeaseBased);
    network.trigger(1, MessageType::Hup);
    network.trigger(1, MessageType::Beat);
    assert!(network.raft(1).lease_valid());
    network.isolate(3);
    network.send(vec![msg(MessageType::TransferLeader, 3, 1, 0)]);
    assert_eq!(network.raft(1).lead_transferee, Some(3));
    assert!(!network.raft(1).lease_valid());
}
