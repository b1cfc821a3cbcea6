//! Elections: who wins, with what term, and how pre-vote and check-quorum keep a healthy
//! group from being disrupted.

use super::network::{Network, Peer, new_raft};
use super::{msg, read_messages, storage_with_terms};
use crate::raft::{MemStorage, MessageType, StateRole};

#[test]
fn a_leader_needs_a_quorum() {
    // (peers, which are black holes, expected state of node 1)
    let cases: &[(usize, &[usize], StateRole)] = &[
        (3, &[], StateRole::Leader),
        (3, &[3], StateRole::Leader),
        (3, &[2, 3], StateRole::Candidate),
        (4, &[3, 4], StateRole::Candidate),
        (5, &[4, 5], StateRole::Leader),
    ];
    for (size, down, expected) in cases {
        let peers = (1..=*size)
            .map(|i| down.contains(&i).then_some(Peer::BlackHole))
            .collect();
        let mut network = Network::new(peers);
        network.trigger(1, MessageType::Hup);
        let r = network.raft(1);
        assert_eq!((r.state, r.term), (*expected, 1), "size {size}, down {down:?}");
    }
}

#[test]
fn each_node_in_turn_can_win() {
    let mut network = Network::new(vec![None, None, None]);
    for campaigner in 1..=3 {
        network.trigger(campaigner, MessageType::Hup);
        for id in 1..=3 {
            let r = network.raft(id);
            let expected = if id == campaigner {
                StateRole::Leader
            } else {
                StateRole::Follower
            };
            assert_eq!(r.state, expected, "campaigner {campaigner}, node {id}");
        }
    }
}

/// Node 1 won term 1 (node 2 has its entry); node 3 won term 2 with the votes of nodes 4 and
/// 5, which got none of its log. Node 1's first campaign fails (a quorum voted in term 2),
/// its second wins, and its log overwrites node 3's uncommitted entry everywhere.
#[test]
fn a_leader_overwrites_newer_uncommitted_entries_after_two_campaigns() {
    let ids = vec![1, 2, 3, 4, 5];
    let setups: [(&[u64], u64, u64); 5] =
        [(&[1], 1, 0), (&[1], 1, 0), (&[2], 2, 3), (&[], 2, 3), (&[], 2, 3)];
    let peers = setups
        .iter()
        .enumerate()
        .map(|(i, (terms, term, vote))| {
            let mut r = new_raft(
                i as u64 + 1,
                ids.clone(),
                10,
                1,
                storage_with_terms(ids.clone(), terms),
            );
            r.load_hard_state_for_test(*term, 0);
            r.vote = *vote;
            Some(Peer::Node(Box::new(r)))
        })
        .collect();
    let mut network = Network::new(peers);
    network.trigger(1, MessageType::Hup);
    assert_eq!(
        (network.raft(1).state, network.raft(1).term),
        (StateRole::Follower, 2)
    );
    network.trigger(1, MessageType::Hup);
    assert_eq!(
        (network.raft(1).state, network.raft(1).term),
        (StateRole::Leader, 3)
    );
    for id in 1..=5 {
        let terms: Vec<u64> = network
            .raft(id)
            .raft_log
            .all_entries()
            .iter()
            .map(|e| e.term)
            .collect();
        assert_eq!(terms, vec![1, 3], "node {id}");
    }
}

#[test]
fn any_role_grants_a_vote_in_a_higher_term() {
    for role in [StateRole::Follower, StateRole::Candidate, StateRole::Leader] {
        let mut r = new_raft(
            1,
            vec![1, 2, 3],
            10,
            1,
            MemStorage::new_with_conf_state(vec![1, 2, 3]),
        );
        r.term = 1;
        match role {
            StateRole::Follower => r.become_follower(1, 3),
            StateRole::Candidate => r.become_candidate(),
            _ => {
                r.become_candidate();
                r.become_leader();
            }
        }
        read_messages(&mut r);
        let term = r.term + 1;
        let mut vote = msg(MessageType::RequestVote, 2, 1, term);
        vote.log_term = term;
        vote.index = 42;
        r.step(vote).unwrap();
        let answers = read_messages(&mut r);
        assert_eq!(answers.len(), 1, "{role:?}");
        assert!(!answers[0].reject);
        assert_eq!(
            (r.state, r.term, r.vote, r.lead),
            (StateRole::Follower, term, 2, 0)
        );
    }
}

#[test]
fn a_single_node_elects_itself() {
    let mut network = Network::new(vec![None]);
    network.trigger(1, MessageType::Hup);
    assert_eq!(network.raft(1).state, StateRole::Leader);
}

#[test]
fn campaigning_as_leader_changes_nothing() {
    let mut network = Network::new(vec![None]);
    network.trigger(1, MessageType::Hup);
    let term = network.raft(1).term;
    network.trigger(1, MessageType::Hup);
    assert_eq!(
        (network.raft(1).state, network.raft(1).term),
        (StateRole::Leader, term)
    );
}

#[test]
fn dueling_candidates_the_shorter_log_loses() {
    let mut network = Network::new(vec![None, None, None]);
    network.cut(1, 3);
    network.trigger(1, MessageType::Hup);
    network.trigger(3, MessageType::Hup);
    // Node 1 won with node 2; node 3 lost (node 2 had voted for 1 already).
    assert_eq!(network.raft(1).state, StateRole::Leader);
    assert_eq!(network.raft(3).state, StateRole::Candidate);
    network.recover();
    // Node 3 campaigns again with a higher term; its log lacks the leader's no-op, so it
    // loses, but it deposed the leader with its term.
    network.trigger(3, MessageType::Hup);
    for (id, state) in [
        (1, StateRole::Follower),
        (2, StateRole::Follower),
        (3, StateRole::Follower),
    ] {
        assert_eq!(
            (network.raft(id).state, network.raft(id).term),
            (state, 2),
            "node {id}"
        );
    }
    assert_eq!(network.raft(1).raft_log.last_index(), 1);
    assert_eq!(network.raft(3).raft_log.last_index(), 0);
}

#[test]
fn an_isolated_candidate_concedes_after_healing() {
    let mut network = Network::new(vec![None, None, None]);
    network.isolate(1);
    network.trigger(1, MessageType::Hup);
    network.trigger(3, MessageType::Hup);
    assert_eq!(network.raft(1).state, StateRole::Candidate);
    assert_eq!(network.raft(3).state, StateRole::Leader);
    network.recover();
    // The leader's next heartbeat makes node 1 a follower of the newer term...
    network.trigger(3, MessageType::Beat);
    network.send(vec![super::propose_to(3, b"force")]);
    assert_eq!(network.raft(1).state, StateRole::Follower);
    let leader_log = network.raft(3).raft_log.all_entries();
    assert_eq!(
        network.raft(1).raft_log.all_entries(),
        leader_log,
        "...and its log catches up"
    );
}

#[test]
fn a_split_vote_is_resolved_by_the_next_round() {
    let mut network = Network::new(vec![None, None, None]);
    network.trigger(1, MessageType::Hup);
    network.isolate(1);
    // Nodes 2 and 3 both campaign at once and each votes for itself.
    for id in [2, 3] {
        let r = network.raft(id);
        r.become_follower(r.term + 1, 0);
        r.become_candidate();
    }
    assert_eq!(network.raft(2).state, StateRole::Candidate);
    assert_eq!(network.raft(3).state, StateRole::Candidate);
    network.trigger(2, MessageType::Hup);
    assert_eq!(network.raft(2).state, StateRole::Leader);
    assert_eq!(network.raft(3).state, StateRole::Follower);
}

#[test]
fn a_follower_that_timed_out_makes_the_leader_step_down_through_its_answer() {
    let mut network = Network::new(vec![None, None, None]);
    network.trigger(1, MessageType::Hup);
    let term = network.raft(1).term;
    // Node 3 times out on its own (its messages lost) and raises its term.
    network.isolate(3);
    network.trigger(3, MessageType::Hup);
    network.recover();
    assert_eq!(network.raft(3).term, term + 1);
    // The leader's heartbeat reaches node 3, whose answer carries the higher term.
    let mut heartbeat = msg(MessageType::Heartbeat, 1, 3, term);
    heartbeat.commit = 0;
    network.send(vec![heartbeat]);
    assert_eq!(network.raft(1).state, StateRole::Follower);
    assert_eq!(network.raft(1).term, term + 1);
}

#[test]
fn only_the_leader_beats() {
    for role in [StateRole::Leader, StateRole::Candidate, StateRole::Follower] {
        let mut r = new_raft(
            1,
            vec![1, 2, 3],
            10,
            1,
            MemStorage::new_with_conf_state(vec![1, 2, 3]),
        );
        match role {
            StateRole::Leader => {
                r.become_candidate();
                r.become_leader();
            }
            StateRole::Candidate => r.become_candidate(),
            _ => r.become_follower(1, 2),
        }
        read_messages(&mut r);
        r.step(msg(MessageType::Beat, 1, 1, 0)).unwrap();
        let heartbeats = read_messages(&mut r);
        let expected = if role == StateRole::Leader { 2 } else { 0 };
        assert_eq!(heartbeats.len(), expected, "{role:?}");
        assert!(heartbeats.iter().all(|m| m.msg_type == MessageType::Heartbeat));
    }
}

// ---- pre-vote and check-quorum (what TinyKV's suite lacks) ----

fn with_pre_vote_and_check_quorum() -> Network {
    Network::new_with(vec![None, None, None], |config| {
        config.pre_vote = true;
        config.check_quorum = true;
    })
}

#[test]
fn pre_vote_keeps_a_returning_partitioned_node_from_disrupting_the_leader() {
    let mut network = Network::new_with(vec![None, None, None], |config| config.pre_vote = true);
    network.trigger(1, MessageType::Hup);
    let term = network.raft(1).term;
    network.isolate(3);
    // The group moves on without node 3.
    network.send(vec![super::propose_to(1, b"while 3 was away")]);
    // Cut off, node 3 keeps timing out; pre-vote never gets a majority, so its term stays.
    for _ in 0..5 {
        network.trigger(3, MessageType::Hup);
    }
    assert_eq!(network.raft(3).term, term);
    assert_eq!(network.raft(3).state, StateRole::PreCandidate);
    network.recover();
    network.trigger(3, MessageType::Hup);
    assert_eq!(
        network.raft(1).state,
        StateRole::Leader,
        "the leader was not disturbed"
    );
    assert_eq!(network.raft(1).term, term);
    // The heartbeat brings node 3 back as a follower.
    network.trigger(1, MessageType::Beat);
    assert_eq!(network.raft(3).state, StateRole::Follower);
}

#[test]
fn without_pre_vote_a_returning_node_does_disrupt() {
    let mut network = Network::new(vec![None, None, None]);
    network.trigger(1, MessageType::Hup);
    let term = network.raft(1).term;
    network.isolate(3);
    network.trigger(3, MessageType::Hup);
    network.trigger(3, MessageType::Hup);
    network.recover();
    network.trigger(3, MessageType::Hup);
    assert!(network.raft(1).term > term, "the higher term reached the leader");
    assert_eq!(network.raft(1).state, StateRole::Follower);
}

#[test]
fn check_quorum_makes_a_minority_leader_step_down() {
    let mut network = with_pre_vote_and_check_quorum();
    network.trigger(1, MessageType::Hup);
    assert_eq!(network.raft(1).state, StateRole::Leader);
    network.isolate(1);
    // Two election timeouts without hearing from anyone.
    for _ in 0..2 * 10 + 1 {
        network.raft(1).tick();
        network.raft(1).msgs.clear();
    }
    assert_eq!(network.raft(1).state, StateRole::Follower);
}

#[test]
fn check_quorum_keeps_a_leader_that_hears_from_a_quorum() {
    let mut network = with_pre_vote_and_check_quorum();
    network.trigger(1, MessageType::Hup);
    network.isolate(3);
    for _ in 0..5 * 10 {
        let r = network.raft(1);
        r.tick();
        let msgs = std::mem::take(&mut r.msgs);
        network.send(msgs);
    }
    assert_eq!(network.raft(1).state, StateRole::Leader);
}

#[test]
fn check_quorum_followers_ignore_votes_while_their_leader_is_alive() {
    let mut network = with_pre_vote_and_check_quorum();
    network.trigger(1, MessageType::Hup);
    let term = network.raft(1).term;
    // Node 3 asks for votes at a higher term (as a node that missed heartbeats would).
    let mut vote = msg(MessageType::RequestVote, 3, 2, term + 1);
    vote.index = 100;
    vote.log_term = term + 1;
    let follower = network.raft(2);
    follower.step(vote).unwrap();
    assert_eq!(follower.term, term, "a follower in its lease ignores the request");
    assert_eq!(follower.vote, 1, "its vote of this term stands");
    assert!(read_messages(follower).is_empty(), "and it does not even answer");
}

#[test]
fn a_candidate_adopts_the_term_of_a_heartbeat_or_append_from_the_leader() {
    for msg_type in [MessageType::Heartbeat, MessageType::Append] {
        let mut network = Network::new(vec![None, None, None]);
        network.trigger(1, MessageType::Hup);
        // Node 3, cut off, campaigns at a higher term and stays a candidate.
        network.isolate(3);
        network.trigger(3, MessageType::Hup);
        network.trigger(3, MessageType::Hup);
        network.recover();
        let r3 = network.raft(3);
        assert_eq!(r3.state, StateRole::Candidate);
        let term = r3.term;
        // A message from a leader at the candidate's term makes it a follower of that leader.
        r3.step(msg(msg_type, 1, 3, term)).unwrap();
        assert_eq!(
            (r3.state, r3.term, r3.lead),
            (StateRole::Follower, term, 1),
            "{msg_type:?}"
        );
    }
}

/// The vote table: whether a node grants a vote, by its state, its vote so far, and how the
/// candidate's last entry (index, term) compares with its log of [(1,2), (2,2)].
#[test]
fn the_vote_request_table() {
    for state in [StateRole::Follower, StateRole::Candidate] {
        // (candidate's last index, last term, already voted for, rejected)
        let cases = [
            (0, 0, 0, true),
            (0, 1, 0, true),
            (0, 2, 0, true),
            (0, 3, 0, false),
            (1, 0, 0, true),
            (1, 1, 0, true),
            (1, 2, 0, true),
            (1, 3, 0, false),
            (2, 0, 0, true),
            (2, 1, 0, true),
            (2, 2, 0, false),
            (2, 3, 0, false),
            (3, 0, 0, true),
            (3, 1, 0, true),
            (3, 2, 0, false),
            (3, 3, 0, false),
            (3, 2, 2, false),
            (3, 2, 1, true),
            (3, 3, 1, true),
        ];
        for (index, log_term, voted, rejected) in cases {
            let storage = storage_with_terms(vec![1, 2, 3], &[2, 2]);
            let mut r = new_raft(1, vec![1, 2, 3], 10, 1, storage);
            r.load_hard_state_for_test(2, 0);
            if state == StateRole::Candidate {
                r.state = StateRole::Candidate;
            }
            r.vote = voted;
            let mut m = msg(MessageType::RequestVote, 2, 1, 2);
            m.index = index;
            m.log_term = log_term;
            r.step(m).unwrap();
            let answers = read_messages(&mut r);
            assert_eq!(answers.len(), 1);
            assert_eq!(
                answers[0].reject, rejected,
                "{state:?}: ({index}, {log_term}) voted {voted}"
            );
        }
    }
}
