//! The Raft paper, section by section ("In Search of an Understandable Consensus Algorithm",
//! extended version). Each test names the rule it checks.

use super::network::{Network, new_raft};
use super::{commit_noop_entry, msg, propose, read_messages, storage_with_terms};
use crate::raft::{Entry, MemStorage, MessageType, StateRole};

fn three() -> Vec<u64> {
    vec![1, 2, 3]
}

/// §5.1: a node that sees a higher term adopts it and becomes a follower, whatever it was.
#[test]
fn higher_term_makes_any_role_a_follower() {
    for role in [StateRole::Follower, StateRole::Candidate, StateRole::Leader] {
        let mut r = new_raft(1, three(), 10, 1, MemStorage::new_with_conf_state(three()));
        match role {
            StateRole::Follower => r.become_follower(1, 2),
            StateRole::Candidate => r.become_candidate(),
            _ => {
                r.become_candidate();
                r.become_leader();
            }
        }
        r.step(msg(MessageType::Append, 2, 1, 2)).unwrap();
        assert_eq!((r.term, r.state), (2, StateRole::Follower), "{role:?}");
        assert_eq!(r.lead, 2, "an append names its sender the leader");
    }
}

/// §5.1: a stale message (lower term) is ignored.
#[test]
fn stale_append_is_ignored() {
    let mut r = new_raft(1, three(), 10, 1, MemStorage::new_with_conf_state(three()));
    r.become_follower(2, 2);
    r.step(msg(MessageType::Append, 3, 1, 1)).unwrap();
    assert_eq!((r.term, r.lead), (2, 2));
    // It answers with its term so a stale leader can learn it.
    let answers = read_messages(&mut r);
    assert!(answers.iter().all(|m| m.term == 2));
}

/// §5.2: nodes start as followers at term 0.
#[test]
fn start_as_follower() {
    let r = new_raft(1, three(), 10, 1, MemStorage::new_with_conf_state(three()));
    assert_eq!((r.state, r.term), (StateRole::Follower, 0));
}

/// §5.2: a leader sends heartbeats (no entries, index and log term 0) to every follower.
#[test]
fn leader_broadcasts_heartbeats() {
    let mut r = new_raft(1, three(), 10, 1, MemStorage::new_with_conf_state(three()));
    r.become_candidate();
    r.become_leader();
    read_messages(&mut r);
    r.tick();
    let mut heartbeats = read_messages(&mut r);
    heartbeats.sort_by_key(|m| m.to);
    assert_eq!(heartbeats.len(), 2);
    for (m, to) in heartbeats.iter().zip([2, 3]) {
        assert_eq!(
            (m.msg_type, m.to, m.term, m.index, m.log_term),
            (MessageType::Heartbeat, to, 1, 0, 0)
        );
        assert!(m.entries.is_empty());
    }
}

/// §5.2: at the election timeout a follower or candidate starts an election: term + 1, votes
/// for itself, asks everyone.
#[test]
fn election_timeout_starts_an_election() {
    for start_as_candidate in [false, true] {
        let mut r = new_raft(1, three(), 10, 1, MemStorage::new_with_conf_state(three()));
        if start_as_candidate {
            r.become_candidate();
        } else {
            r.become_follower(1, 2);
        }
        let before = r.term;
        for _ in 0..20 {
            r.tick();
        }
        assert_eq!((r.term, r.state, r.vote), (before + 1, StateRole::Candidate, 1));
        let mut votes = read_messages(&mut r);
        votes.sort_by_key(|m| m.to);
        let to: Vec<u64> = votes.iter().map(|m| m.to).collect();
        assert_eq!(to, vec![2, 3]);
        assert!(
            votes
                .iter()
                .all(|m| m.msg_type == MessageType::RequestVote && m.term == before + 1)
        );
    }
}

/// §5.2: a candidate wins with a majority, loses with a majority against, else waits.
#[test]
fn election_outcome_in_one_round() {
    let cases: &[(usize, &[(u64, bool)], StateRole)] = &[
        (1, &[], StateRole::Leader),
        (3, &[(2, true), (3, true)], StateRole::Leader),
        (3, &[(2, true)], StateRole::Leader),
        (
            5,
            &[(2, true), (3, true), (4, true), (5, true)],
            StateRole::Leader,
        ),
        (5, &[(2, true), (3, true)], StateRole::Leader),
        (3, &[(2, false), (3, false)], StateRole::Follower),
        (5, &[(2, false), (3, false), (4, false)], StateRole::Follower),
        (3, &[], StateRole::Candidate),
        (5, &[(2, true)], StateRole::Candidate),
        (5, &[(2, false), (3, false)], StateRole::Candidate),
    ];
    for (size, votes, expected) in cases {
        let ids: Vec<u64> = (1..=*size as u64).collect();
        let mut r = new_raft(1, ids.clone(), 10, 1, MemStorage::new_with_conf_state(ids));
        r.step(msg(MessageType::Hup, 1, 1, 0)).unwrap();
        for &(from, granted) in *votes {
            let mut m = msg(MessageType::RequestVoteResponse, from, 1, r.term);
            m.reject = !granted;
            r.step(m).unwrap();
        }
        assert_eq!(r.state, *expected, "size {size}, votes {votes:?}");
        assert_eq!(r.term, 1);
    }
}

/// §5.2: at most one vote per term, first come first served.
#[test]
fn one_vote_per_term() {
    let cases = [
        (0, 2, false),
        (0, 3, false),
        (2, 2, false),
        (3, 3, false),
        (2, 3, true),
        (3, 2, true),
    ];
    for (voted, candidate, rejected) in cases {
        let mut r = new_raft(1, three(), 10, 1, MemStorage::new_with_conf_state(three()));
        r.term = 1;
        r.vote = voted;
        r.step(msg(MessageType::RequestVote, candidate, 1, 1)).unwrap();
        let answers = read_messages(&mut r);
        assert_eq!(answers.len(), 1);
        assert_eq!(
            answers[0].reject, rejected,
            "voted {voted}, candidate {candidate}"
        );
    }
}

/// §5.2: a candidate that hears from a leader of its term (or later) steps back.
#[test]
fn candidate_falls_back_to_a_leader_of_its_term() {
    for term in [1, 2] {
        let mut r = new_raft(1, three(), 10, 1, MemStorage::new_with_conf_state(three()));
        r.step(msg(MessageType::Hup, 1, 1, 0)).unwrap();
        assert_eq!(r.state, StateRole::Candidate);
        r.step(msg(MessageType::Append, 2, 1, term)).unwrap();
        assert_eq!((r.state, r.term), (StateRole::Follower, term));
    }
}

/// §5.2: election timeouts are random in [et, 2et): over many rounds every value shows up.
#[test]
fn election_timeout_is_randomized() {
    for start_as_candidate in [false, true] {
        let mut r = new_raft(1, three(), 10, 1, MemStorage::new_with_conf_state(three()));
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..500 {
            if start_as_candidate {
                r.become_follower(r.term + 1, 2);
                r.become_candidate();
            } else {
                r.become_follower(r.term + 1, 2);
            }
            read_messages(&mut r);
            let mut elapsed = 0;
            while read_messages(&mut r).is_empty() {
                r.tick();
                elapsed += 1;
            }
            seen.insert(elapsed);
        }
        for timeout in 11..20 {
            assert!(
                seen.contains(&timeout),
                "timeout {timeout} never happened: {seen:?}"
            );
        }
        assert!(seen.iter().all(|&t| (10..20).contains(&t)), "{seen:?}");
    }
}

/// §5.2: randomized timeouts make it unlikely that several nodes time out together.
#[test]
fn timeouts_rarely_conflict() {
    timeouts_rarely_conflict_for(false);
    timeouts_rarely_conflict_for(true);
}

fn timeouts_rarely_conflict_for(candidates: bool) {
    let size = 5u64;
    let ids: Vec<u64> = (1..=size).collect();
    let mut rafts: Vec<_> = ids
        .iter()
        .map(|&id| {
            new_raft(
                id,
                ids.clone(),
                10,
                1,
                MemStorage::new_with_conf_state(ids.clone()),
            )
        })
        .collect();
    let mut conflicts = 0;
    for round in 0..1000 {
        for r in &mut rafts {
            r.become_follower(r.term.max(round) + 1, 0);
            if candidates {
                r.become_candidate();
            }
            read_messages(r);
        }
        let mut fired = 0;
        while fired == 0 {
            for r in &mut rafts {
                r.tick();
                if !read_messages(r).is_empty() {
                    fired += 1;
                }
            }
        }
        if fired > 1 {
            conflicts += 1;
        }
    }
    assert!(
        conflicts < 300,
        "{conflicts} of 1000 elections started on several nodes at once"
    );
}

/// §5.3: a proposal is appended and sent to every follower after (index, term) of the entry
/// before it; it is unstable until persisted.
#[test]
fn leader_starts_replication() {
    let storage = MemStorage::new_with_conf_state(three());
    let mut r = new_raft(1, three(), 10, 1, storage.clone());
    r.become_candidate();
    r.become_leader();
    commit_noop_entry(&mut r, &storage);
    let last = r.raft_log.last_index();
    r.step(propose(b"some data")).unwrap();
    assert_eq!(r.raft_log.last_index(), last + 1);
    assert_eq!(r.raft_log.committed, last);
    let mut appends = read_messages(&mut r);
    appends.sort_by_key(|m| m.to);
    for (m, to) in appends.iter().zip([2, 3]) {
        assert_eq!(
            (m.msg_type, m.to, m.index, m.log_term, m.commit),
            (MessageType::Append, to, last, 1, last)
        );
        assert_eq!(m.entries.len(), 1);
        assert_eq!(m.entries[0].data, b"some data");
    }
    assert_eq!(r.raft_log.unstable_entries().len(), 1);
}

/// §5.3: once a majority stores an entry it is committed and applied, and the next appends
/// carry the new commit index.
#[test]
fn leader_commits_and_announces() {
    let storage = MemStorage::new_with_conf_state(three());
    let mut r = new_raft(1, three(), 10, 1, storage.clone());
    r.become_candidate();
    r.become_leader();
    commit_noop_entry(&mut r, &storage);
    let last = r.raft_log.last_index();
    r.step(propose(b"some data")).unwrap();
    for m in read_messages(&mut r) {
        let mut ack = msg(MessageType::AppendResponse, m.to, 1, m.term);
        ack.index = m.index + m.entries.len() as u64;
        r.step(ack).unwrap();
    }
    assert_eq!(r.raft_log.committed, last + 1);
    let committed = r.raft_log.next_entries(None);
    assert_eq!(committed.last().unwrap().data, b"some data");
    let mut announcements = read_messages(&mut r);
    announcements.sort_by_key(|m| m.to);
    assert!(
        announcements
            .iter()
            .all(|m| m.msg_type == MessageType::Append && m.commit == last + 1)
    );
}

/// §5.3: an entry commits only when a majority has it.
#[test]
fn commit_needs_a_majority() {
    let cases: &[(u64, &[u64], bool)] = &[
        (1, &[], true),
        (3, &[], false),
        (3, &[2], true),
        (3, &[2, 3], true),
        (5, &[], false),
        (5, &[2], false),
        (5, &[2, 3], true),
        (5, &[2, 3, 4, 5], true),
    ];
    for (size, acceptors, committed) in cases {
        let ids: Vec<u64> = (1..=*size).collect();
        let storage = MemStorage::new_with_conf_state(ids.clone());
        let mut r = new_raft(1, ids, 10, 1, storage.clone());
        r.become_candidate();
        r.become_leader();
        commit_noop_entry(&mut r, &storage);
        let last = r.raft_log.last_index();
        r.step(propose(b"data")).unwrap();
        for m in read_messages(&mut r) {
            if acceptors.contains(&m.to) {
                let mut ack = msg(MessageType::AppendResponse, m.to, 1, m.term);
                ack.index = m.index + m.entries.len() as u64;
                r.step(ack).unwrap();
            }
        }
        assert_eq!(
            r.raft_log.committed > last,
            *committed,
            "size {size}, acceptors {acceptors:?}"
        );
    }
}

/// §5.3: committing an entry commits the entries before it, including earlier leaders'.
#[test]
fn commit_includes_earlier_entries() {
    let cases: &[&[u64]] = &[&[], &[2], &[1, 1], &[1, 2]];
    for terms in cases {
        let storage = storage_with_terms(three(), terms);
        let mut r = new_raft(1, three(), 10, 1, storage);
        r.term = 2;
        r.become_candidate();
        r.become_leader();
        r.step(propose(b"data")).unwrap();
        for m in read_messages(&mut r) {
            let mut ack = msg(MessageType::AppendResponse, m.to, 1, m.term);
            ack.index = m.index + m.entries.len() as u64;
            r.step(ack).unwrap();
        }
        let last = terms.len() as u64 + 2;
        assert_eq!(r.raft_log.committed, last, "earlier terms {terms:?}");
        assert_eq!(r.raft_log.next_entries(None).len() as u64, last);
    }
}

/// §5.3: a follower commits (and hands to the application) up to the leader's commit.
#[test]
fn follower_commits_what_the_leader_committed() {
    let cases: &[(Vec<Entry>, u64)] = &[
        (vec![Entry::new(1, 1)], 1),
        (vec![Entry::new(1, 1), Entry::new(1, 2)], 2),
        (vec![Entry::new(1, 1), Entry::new(1, 2)], 1),
    ];
    for (entries, commit) in cases {
        let mut r = new_raft(1, three(), 10, 1, MemStorage::new_with_conf_state(three()));
        r.become_follower(1, 2);
        let mut m = msg(MessageType::Append, 2, 1, 1);
        m.entries = entries.clone();
        m.commit = *commit;
        r.step(m).unwrap();
        assert_eq!(r.raft_log.committed, *commit);
        assert_eq!(
            r.raft_log.next_entries(None),
            entries[..*commit as usize].to_vec()
        );
    }
}

/// §5.3: a follower rejects an append whose previous entry it does not have.
#[test]
fn follower_checks_the_previous_entry() {
    let cases = [
        (0, 0, false),
        (1, 1, false),
        (2, 2, false),
        (1, 2, true),
        (3, 3, true),
    ];
    for (term, index, rejected) in cases {
        let storage = storage_with_terms(three(), &[1, 2]);
        let mut r = new_raft(1, three(), 10, 1, storage);
        r.raft_log.commit_to(1);
        r.become_follower(2, 2);
        let mut m = msg(MessageType::Append, 2, 1, 2);
        m.log_term = term;
        m.index = index;
        r.step(m).unwrap();
        let answers = read_messages(&mut r);
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].reject, rejected, "prev ({index}, {term})");
    }
}

/// §5.3: a follower drops a conflicting suffix and appends what it lacks.
#[test]
fn follower_reconciles_its_log() {
    let cases: &[(u64, u64, &[(u64, u64)], &[u64], &[(u64, u64)])] = &[
        (2, 2, &[(3, 3)], &[1, 2, 3], &[(3, 3)]),
        (1, 1, &[(3, 2), (4, 3)], &[1, 3, 4], &[(3, 2), (4, 3)]),
        (0, 0, &[(1, 1)], &[1, 2], &[]),
        (0, 0, &[(3, 1)], &[3], &[(3, 1)]),
    ];
    for (index, term, entries, want_terms, want_unstable) in cases {
        let storage = storage_with_terms(three(), &[1, 2]);
        let mut r = new_raft(1, three(), 10, 1, storage);
        r.become_follower(2, 2);
        let mut m = msg(MessageType::Append, 2, 1, 2);
        m.log_term = *term;
        m.index = *index;
        m.entries = entries.iter().map(|&(t, i)| Entry::new(t, i)).collect();
        r.step(m).unwrap();
        let terms: Vec<u64> = r.raft_log.all_entries().iter().map(|e| e.term).collect();
        assert_eq!(&terms, want_terms);
        let unstable: Vec<(u64, u64)> = r
            .raft_log
            .unstable_entries()
            .iter()
            .map(|e| (e.term, e.index))
            .collect();
        assert_eq!(&unstable, want_unstable);
    }
}

/// §5.3, figure 7: a new leader brings every kind of divergent follower log in line with its
/// own.
#[test]
fn leader_brings_divergent_logs_in_line() {
    let leader_terms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: &[&[u64]] = &[
        &[1, 1, 1, 4, 4, 5, 5, 6, 6],
        &[1, 1, 1, 4],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
        &[1, 1, 1, 4, 4, 4, 4],
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    ];
    for follower_terms in followers {
        let ids = three();
        let leader_storage = storage_with_terms(ids.clone(), &leader_terms);
        let mut leader = new_raft(1, ids.clone(), 10, 1, leader_storage);
        leader.load_hard_state_for_test(8, leader_terms.len() as u64);
        let follower_storage = storage_with_terms(ids.clone(), follower_terms);
        let mut follower = new_raft(2, ids.clone(), 10, 1, follower_storage);
        follower.load_hard_state_for_test(7, 0);
        // Node 3 is down; it votes (so the leader wins) and is then cut off.
        let mut network = Network::new(vec![
            Some(super::network::Peer::Node(Box::new(leader))),
            Some(super::network::Peer::Node(Box::new(follower))),
            Some(super::network::Peer::BlackHole),
        ]);
        network.trigger(1, MessageType::Hup);
        let mut vote = msg(MessageType::RequestVoteResponse, 3, 1, network.raft(1).term);
        vote.reject = false;
        network.send(vec![vote]);
        network.send(vec![propose(b"")]);
        let leader_log = network.raft(1).raft_log.all_entries();
        let follower_log = network.raft(2).raft_log.all_entries();
        assert_eq!(leader_log, follower_log, "follower {follower_terms:?}");
    }
}

/// §5.4.1: a vote request carries the candidate's last index and term.
#[test]
fn vote_request_carries_the_last_entry() {
    for (entries, term) in [
        (vec![Entry::new(1, 1)], 2),
        (vec![Entry::new(1, 1), Entry::new(2, 2)], 3),
    ] {
        let mut r = new_raft(1, three(), 10, 1, MemStorage::new_with_conf_state(three()));
        let mut m = msg(MessageType::Append, 2, 1, term - 1);
        m.entries = entries.clone();
        r.step(m).unwrap();
        read_messages(&mut r);
        for _ in 0..20 {
            r.tick();
        }
        let mut votes = read_messages(&mut r);
        votes.sort_by_key(|m| m.to);
        assert_eq!(votes.len(), 2);
        let last = entries.last().unwrap();
        for (v, to) in votes.iter().zip([2, 3]) {
            assert_eq!(
                (v.msg_type, v.to, v.term, v.index, v.log_term),
                (MessageType::RequestVote, to, term, last.index, last.term)
            );
        }
    }
}

/// §5.4.1: a voter refuses a candidate whose log is less up to date than its own.
#[test]
fn voter_requires_an_up_to_date_log() {
    let cases: &[(&[u64], u64, u64, bool)] = &[
        (&[1], 1, 1, false),
        (&[1], 1, 2, false),
        (&[1, 1], 1, 1, true),
        (&[1], 2, 1, false),
        (&[1], 2, 2, false),
        (&[1, 1], 2, 1, false),
        (&[2], 1, 1, true),
        (&[2], 1, 2, true),
        (&[2, 1], 1, 1, true),
    ];
    for (terms, log_term, index, rejected) in cases {
        let storage = storage_with_terms(vec![1, 2], terms);
        let mut r = new_raft(1, vec![1, 2], 10, 1, storage);
        let mut m = msg(MessageType::RequestVote, 2, 1, 3);
        m.log_term = *log_term;
        m.index = *index;
        r.step(m).unwrap();
        let answers = read_messages(&mut r);
        assert_eq!(answers.len(), 1);
        assert_eq!(
            answers[0].reject, *rejected,
            "log {terms:?} vs ({index}, {log_term})"
        );
    }
}

/// §5.4.2: a leader commits an entry of an earlier term only by committing one of its own.
#[test]
fn leader_counts_replicas_only_in_its_own_term() {
    for (index, committed) in [(1, 0), (2, 0), (3, 3)] {
        let storage = storage_with_terms(three(), &[1, 2]);
        let mut r = new_raft(1, three(), 10, 1, storage);
        r.load_hard_state_for_test(2, 0);
        r.become_candidate();
        r.become_leader();
        read_messages(&mut r);
        let mut ack = msg(MessageType::AppendResponse, 2, 1, r.term);
        ack.index = index;
        r.step(ack).unwrap();
        assert_eq!(r.raft_log.committed, committed, "acked through {index}");
    }
}
