//! Log replication and commit.

use super::network::{Network, Peer, new_raft};
use super::{msg, propose, propose_to, read_messages, storage_with_terms};
use crate::raft::{Entry, MemStorage, Message, MessageType, StateRole};

#[test]
fn the_leaders_own_progress_tracks_its_log() {
    let mut r = new_raft(1, vec![1, 2], 10, 1, MemStorage::new_with_conf_state(vec![1, 2]));
    r.become_candidate();
    r.become_leader();
    // The no-op is entry 1.
    assert_eq!((r.prs.progress[&1].matched, r.prs.progress[&1].next_idx), (1, 2));
    for i in 0..3 {
        r.step(propose(b"foo")).unwrap();
        let pr = &r.prs.progress[&1];
        assert_eq!((pr.matched, pr.next_idx), (i + 2, i + 3));
    }
}

#[test]
fn replication_and_commit_survive_a_leader_change() {
    let mut network = Network::new(vec![None, None, None]);
    network.trigger(1, MessageType::Hup);
    network.send(vec![propose_to(1, b"somedata")]);
    for id in 1..=3 {
        assert_eq!(network.raft(id).raft_log.committed, 2, "node {id}");
    }
    network.trigger(2, MessageType::Hup);
    network.send(vec![propose_to(2, b"more")]);
    for id in 1..=3 {
        let r = network.raft(id);
        assert_eq!(r.raft_log.committed, 4, "node {id}");
        let data: Vec<Vec<u8>> = r
            .raft_log
            .next_entries(None)
            .into_iter()
            .map(|e| e.data)
            .filter(|d| !d.is_empty())
            .collect();
        assert_eq!(data, vec![b"somedata".to_vec(), b"more".to_vec()]);
    }
}

#[test]
fn a_single_node_commits_alone() {
    let mut network = Network::new(vec![None]);
    network.trigger(1, MessageType::Hup);
    network.send(vec![propose_to(1, b"some data")]);
    network.send(vec![propose_to(1, b"some data")]);
    assert_eq!(network.raft(1).raft_log.committed, 3);
}

#[test]
fn entries_of_an_old_term_commit_once_the_new_leader_commits_its_no_op() {
    let mut network = Network::new(vec![None, None, None, None, None]);
    network.trigger(1, MessageType::Hup);
    // Only node 2 gets these.
    for other in [3, 4, 5] {
        network.cut(1, other);
    }
    network.send(vec![propose_to(1, b"some data")]);
    network.send(vec![propose_to(1, b"some data")]);
    assert_eq!(network.raft(1).raft_log.committed, 1);
    network.recover();
    // Entries proposed in a partition are not committed by heartbeats alone...
    network.ignore(MessageType::Append);
    network.trigger(1, MessageType::Beat);
    assert_eq!(network.raft(1).raft_log.committed, 1);
    network.recover();
    // ...but by node 2 winning and committing its no-op.
    network.trigger(2, MessageType::Hup);
    assert_eq!(network.raft(2).raft_log.committed, 4);
}

#[test]
fn a_lagging_follower_catches_up_through_heartbeats() {
    let mut network = Network::new(vec![None, None, None]);
    network.trigger(1, MessageType::Hup);
    network.isolate(1);
    network.send(vec![propose_to(1, b"x")]);
    network.send(vec![propose_to(1, b"x")]);
    network.recover();
    network.cut(1, 3);
    // Node 2 gets everything; node 3 is cut off from the leader.
    network.trigger(1, MessageType::Beat);
    network.send(vec![propose_to(1, b"x")]);
    assert_eq!(network.raft(3).raft_log.committed, 1);
    network.recover();
    // On the heartbeat answer the leader sees node 3 lag and sends it what it lacks.
    network.trigger(1, MessageType::Beat);
    let leader_commit = network.raft(1).raft_log.committed;
    assert_eq!(network.raft(3).raft_log.committed, leader_commit);
    assert_eq!(leader_commit, 4);
}

#[test]
fn a_deposed_leader_does_not_commit_its_divergent_tail_from_heartbeats() {
    let mut network = Network::new(vec![None, None, None]);
    network.trigger(1, MessageType::Hup);
    network.isolate(1);
    // Node 1 keeps proposing alone; none of it commits.
    for _ in 0..3 {
        network.send(vec![propose_to(1, b"lost")]);
    }
    // Nodes 2 and 3 move on without it.
    network.trigger(2, MessageType::Hup);
    network.send(vec![propose_to(2, b"kept")]);
    network.recover();
    // Heartbeats from the new leader carry min(node 1's match, commit) = 0; with appends lost,
    // node 1's divergent entries 2..4 must not become committed.
    network.ignore(MessageType::Append);
    network.trigger(2, MessageType::Beat);
    let r = network.raft(1);
    assert_eq!(r.state, StateRole::Follower);
    assert_eq!(r.raft_log.committed, 1);
}

#[test]
fn old_term_appends_are_ignored() {
    let mut network = Network::new(vec![None, None, None]);
    network.trigger(1, MessageType::Hup);
    network.trigger(2, MessageType::Hup);
    network.trigger(1, MessageType::Hup);
    // An append from term 2 reaching node 1 (leader at term 3).
    let mut stale = msg(MessageType::Append, 2, 1, 2);
    stale.entries = vec![Entry::new(2, 3)];
    network.send(vec![stale]);
    network.send(vec![propose_to(1, b"somedata")]);
    let terms: Vec<u64> = network
        .raft(1)
        .raft_log
        .all_entries()
        .iter()
        .map(|e| e.term)
        .collect();
    assert_eq!(terms, vec![1, 2, 3, 3]);
}

#[test]
fn proposals_commit_only_with_a_reachable_quorum() {
    let cases: Vec<(Vec<Option<Peer>>, bool)> = vec![
        (vec![None, None, None], true),
        (vec![None, None, Some(Peer::BlackHole)], true),
        (vec![None, Some(Peer::BlackHole), Some(Peer::BlackHole)], false),
        (
            vec![None, Some(Peer::BlackHole), Some(Peer::BlackHole), None],
            false,
        ),
        (
            vec![None, Some(Peer::BlackHole), Some(Peer::BlackHole), None, None],
            true,
        ),
    ];
    for (i, (peers, success)) in cases.into_iter().enumerate() {
        let mut network = Network::new(peers);
        network.trigger(1, MessageType::Hup);
        network.send(vec![propose_to(1, b"somedata")]);
        let committed = network.raft(1).raft_log.committed;
        assert_eq!(committed == 2, success, "case {i}: committed {committed}");
        if success {
            assert_eq!(network.raft(1).state, StateRole::Leader);
        }
    }
}

#[test]
fn the_follower_append_table() {
    // (prev index, prev term, leader commit, entries, want last index, want commit, reject)
    type Case = (u64, u64, u64, Vec<(u64, u64)>, u64, u64, bool);
    let cases: Vec<Case> = vec![
        (2, 3, 2, vec![], 2, 0, true),
        (3, 3, 3, vec![], 2, 0, true),
        (1, 1, 1, vec![], 2, 1, false),
        (0, 0, 1, vec![(2, 1)], 1, 1, false),
        (2, 2, 3, vec![], 2, 2, false),
        (2, 2, 3, vec![(2, 3)], 3, 3, false),
        (2, 2, 4, vec![(2, 3)], 3, 3, false),
        (1, 1, 4, vec![(2, 2)], 2, 2, false),
        (1, 1, 3, vec![], 2, 1, false),
        (1, 1, 3, vec![(2, 2)], 2, 2, false),
        (2, 2, 3, vec![], 2, 2, false),
        (2, 2, 4, vec![], 2, 2, false),
    ];
    for (i, (index, log_term, commit, entries, want_last, want_commit, want_reject)) in
        cases.into_iter().enumerate()
    {
        let storage = storage_with_terms(vec![1], &[1, 2]);
        let mut r = new_raft(1, vec![1], 10, 1, storage);
        r.become_follower(2, 0);
        let mut m = msg(MessageType::Append, 2, 1, 2);
        m.index = index;
        m.log_term = log_term;
        m.commit = commit;
        m.entries = entries.iter().map(|&(t, i)| Entry::new(t, i)).collect();
        r.step(m).unwrap();
        assert_eq!(r.raft_log.last_index(), want_last, "case {i}");
        assert_eq!(r.raft_log.committed, want_commit, "case {i}");
        let answers = read_messages(&mut r);
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].reject, want_reject, "case {i}");
    }
}

#[test]
fn the_leader_moves_next_past_what_it_sent() {
    let storage = storage_with_terms(vec![1, 2], &[1, 2, 3]);
    let mut r = new_raft(1, vec![1, 2], 10, 1, storage);
    r.load_hard_state_for_test(3, 0);
    r.become_candidate();
    r.become_leader();
    // Follower 2 is known to match through 2, so it is in Replicate.
    let pr = r.prs.progress.get_mut(&2).unwrap();
    pr.maybe_update(2);
    pr.become_replicate();
    r.step(propose(b"somedata")).unwrap();
    assert_eq!(
        r.prs.progress[&2].next_idx, 6,
        "3 old entries + no-op + proposal, then + 1"
    );
}

#[test]
fn flow_control_caps_messages_in_flight() {
    let storage = MemStorage::new_with_conf_state(vec![1, 2]);
    let mut config = super::network::test_config(1, vec![1, 2], 10, 1);
    config.max_inflight_msgs = 3;
    config.max_size_per_msg = 2048;
    let mut r = crate::raft::Raft::new(&config, storage).unwrap();
    r.become_candidate();
    r.become_leader();
    read_messages(&mut r);
    let pr = r.prs.progress.get_mut(&2).unwrap();
    pr.maybe_update(1);
    pr.become_replicate();
    for _ in 0..10 {
        r.step(propose(&[0u8; 1000])).unwrap();
    }
    let appends: Vec<_> = read_messages(&mut r)
        .into_iter()
        .filter(|m| m.msg_type == MessageType::Append && m.to == 2)
        .collect();
    assert_eq!(appends.len(), 3, "the window holds three messages");
    // An acknowledgement frees the window.
    let mut ack = msg(MessageType::AppendResponse, 2, 1, r.term);
    ack.index = appends[0].index + appends[0].entries.len() as u64;
    r.step(ack).unwrap();
    assert!(!read_messages(&mut r).is_empty());
}

#[test]
fn a_message_carries_at_most_max_size_bytes_but_at_least_one_entry() {
    let storage = MemStorage::new_with_conf_state(vec![1, 2]);
    let mut config = super::network::test_config(1, vec![1, 2], 10, 1);
    config.max_size_per_msg = 100;
    let mut r = crate::raft::Raft::new(&config, storage).unwrap();
    r.become_candidate();
    r.become_leader();
    let pr = r.prs.progress.get_mut(&2).unwrap();
    pr.maybe_update(1);
    pr.become_replicate();
    read_messages(&mut r);
    r.step(propose(&[0u8; 500])).unwrap();
    r.step(propose(&[0u8; 10])).unwrap();
    let appends: Vec<_> = read_messages(&mut r).into_iter().filter(|m| m.to == 2).collect();
    assert!(
        appends.iter().all(|m| m.entries.len() == 1),
        "{:?}",
        appends.iter().map(|m| m.entries.len()).collect::<Vec<_>>()
    );
}

/// A follower that is behind (its probe unanswered) is sent one more append per periodic
/// heartbeat it answers, not one per read-index heartbeat: reads may send heartbeats every
/// round, and each answer resending the probe would flood the follower (and read the log for
/// every message).
#[test]
fn read_index_heartbeats_do_not_resend_to_a_follower_that_is_behind() {
    let storage = MemStorage::new_with_conf_state(vec![1, 2, 3]);
    let config = super::network::test_config(1, vec![1, 2, 3], 10, 1);
    let mut r = crate::raft::Raft::new(&config, storage).unwrap();
    r.become_candidate();
    r.become_leader();
    // Follower 3 answers and commits the no-op; follower 2 never answers the probe.
    let noop = r.raft_log.last_index();
    let mut ack = msg(MessageType::AppendResponse, 3, 1, r.term);
    ack.index = noop;
    r.step(ack).unwrap();
    r.step(propose(b"x")).unwrap();
    read_messages(&mut r);
    assert!(
        r.prs.progress[&2].is_paused(),
        "the probe to 2 waits for its answer"
    );
    let appends_to_2 = |r: &mut crate::raft::Raft<MemStorage>| {
        read_messages(r)
            .into_iter()
            .filter(|m| m.msg_type == MessageType::Append && m.to == 2)
            .count()
    };

    // Ten read-index rounds, each heartbeat answered by both followers.
    for i in 0..10u64 {
        let mut read = Message::new(MessageType::ReadIndex, 1, 1);
        read.entries = vec![Entry {
            data: i.to_be_bytes().to_vec(),
            ..Default::default()
        }];
        r.step(read).unwrap();
        for beat in read_messages(&mut r) {
            assert_eq!(beat.msg_type, MessageType::Heartbeat);
            let mut answer = msg(MessageType::HeartbeatResponse, beat.to, 1, r.term);
            answer.context = beat.context.clone();
            answer.round = beat.round;
            r.step(answer).unwrap();
        }
        assert_eq!(appends_to_2(&mut r), 0, "read round {i} resent the probe");
    }
    assert_eq!(r.read_states.len(), 10, "every read was confirmed");

    // A periodic heartbeat's answer resends it, once.
    r.step(Message::new(MessageType::Beat, 1, 1)).unwrap();
    for beat in read_messages(&mut r) {
        let mut answer = msg(MessageType::HeartbeatResponse, beat.to, 1, r.term);
        answer.round = beat.round;
        r.step(answer.clone()).unwrap();
        r.step(answer).unwrap();
    }
    assert_eq!(appends_to_2(&mut r), 1);
}

/// A leader that defers commit broadcasts sends no append just to say the commit index moved
/// while a round's appends are still to come; when its messages are taken, each follower has
/// been told by exactly one append: one that carries new entries, or else one of its own.
#[test]
fn a_deferred_commit_broadcast_rides_on_the_rounds_appends() {
    let leader = |defer: bool| {
        let storage = MemStorage::new_with_conf_state(vec![1, 2, 3]);
        let mut config = super::network::test_config(1, vec![1, 2, 3], 10, 1);
        config.defer_commit_broadcast = defer;
        let mut r = crate::raft::Raft::new(&config, storage).unwrap();
        r.become_candidate();
        r.become_leader();
        for id in [2, 3] {
            let mut ack = msg(MessageType::AppendResponse, id, 1, r.term);
            ack.index = r.raft_log.last_index();
            r.step(ack).unwrap();
        }
        r.step(propose(b"x")).unwrap();
        read_messages(&mut r);
        // Follower 2 stores the entry: with the leader, a quorum.
        let entry = r.raft_log.last_index();
        let mut ack = msg(MessageType::AppendResponse, 2, 1, r.term);
        ack.index = entry;
        r.step(ack).unwrap();
        assert_eq!(r.raft_log.committed, entry);
        (r, entry)
    };
    // (entries, commit) of each append to follower 3.
    let appends_to_3 = |r: &mut crate::raft::Raft<MemStorage>| -> Vec<(usize, u64)> {
        read_messages(r)
            .into_iter()
            .filter(|m| m.msg_type == MessageType::Append && m.to == 3)
            .map(|m| (m.entries.len(), m.commit))
            .collect()
    };

    let (mut r, entry) = leader(false);
    assert_eq!(appends_to_3(&mut r), vec![(0, entry)], "told at once");

    let (mut r, entry) = leader(true);
    r.step(propose(b"y")).unwrap();
    r.announce_commit();
    assert_eq!(
        appends_to_3(&mut r),
        vec![(1, entry)],
        "one append: the new entry and the commit"
    );

    let (mut r, entry) = leader(true);
    assert!(r.msgs.iter().all(|m| m.to != 3), "nothing yet");
    r.announce_commit();
    assert_eq!(
        appends_to_3(&mut r),
        vec![(0, entry)],
        "no entries to carry it: an append of its own"
    );
    r.announce_commit();
    assert!(appends_to_3(&mut r).is_empty(), "told once");
}
