//! Followers and candidates: accepting appends, heartbeats and snapshots, counting votes.

use super::read_only::ReadState;
use super::{Raft, RaftError, StateRole};
use crate::raft::message::{Message, MessageType, NONE, Snapshot};
use crate::raft::progress::Progress;
use crate::raft::storage::Storage;

impl<S: Storage> Raft<S> {
    pub(super) fn step_follower(&mut self, m: Message) -> Result<(), RaftError> {
        match m.msg_type {
            MessageType::Propose => return Err(RaftError::ProposalDropped),
            MessageType::Append => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_append_entries(m);
            }
            MessageType::Heartbeat => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_heartbeat(m);
            }
            MessageType::Snapshot => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_snapshot(m);
            }
            MessageType::TransferLeader | MessageType::ReadIndex => {
                if self.lead == NONE {
                    return Err(RaftError::ProposalDropped);
                }
                let mut forwarded = m;
                forwarded.to = self.lead;
                self.send(forwarded);
            }
            MessageType::TimeoutNow => self.hup(true),
            MessageType::ReadIndexResponse => {
                let request_ctx = m.entries.first().map(|e| e.data.clone()).unwrap_or_default();
                self.read_states.push(ReadState {
                    index: m.index,
                    request_ctx,
                });
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) fn step_candidate(&mut self, m: Message) -> Result<(), RaftError> {
        match m.msg_type {
            MessageType::Propose => return Err(RaftError::ProposalDropped),
            // A leader of this term exists: follow it.
            MessageType::Append => {
                self.become_follower(m.term, m.from);
                self.handle_append_entries(m);
            }
            MessageType::Heartbeat => {
                self.become_follower(m.term, m.from);
                self.handle_heartbeat(m);
            }
            MessageType::Snapshot => {
                self.become_follower(m.term, m.from);
                self.handle_snapshot(m);
            }
            MessageType::RequestPreVoteResponse | MessageType::RequestVoteResponse => {
                let expected = match self.state {
                    StateRole::PreCandidate => MessageType::RequestPreVoteResponse,
                    _ => MessageType::RequestVoteResponse,
                };
                if m.msg_type != expected {
                    return Ok(());
                }
                match self.poll(m.from, !m.reject) {
                    Some(true) if self.state == StateRole::PreCandidate => self.campaign_after_pre_vote(),
                    Some(true) => {
                        self.become_leader();
                        self.bcast_append();
                    }
                    Some(false) => {
                        let term = self.term;
                        self.become_follower(term, NONE);
                    }
                    None => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// §5.3: accept entries after a matching (`index`, `log_term`), or say where to back up to.
    fn handle_append_entries(&mut self, m: Message) {
        let mut answer = Message::new(MessageType::AppendResponse, self.id, m.from);
        if m.index < self.raft_log.committed {
            // Already committed here (and maybe compacted, so its term is unknown): tell the
            // leader how far we are instead of failing the match.
            answer.index = self.raft_log.committed;
            self.send(answer);
            return;
        }
        match self
            .raft_log
            .maybe_append(m.index, m.log_term, m.commit, &m.entries)
        {
            Some(last_new) => answer.index = last_new,
            None => {
                // Point the leader at the last entry that could match: at most our last
                // index, and with a term no greater than the one it tried.
                let hint = m.index.min(self.raft_log.last_index());
                let (hint_index, hint_term) = self.raft_log.find_conflict_by_term(hint, m.log_term);
                answer.index = m.index;
                answer.reject = true;
                answer.reject_hint = hint_index;
                answer.log_term = hint_term;
            }
        }
        self.send(answer);
    }

    fn handle_heartbeat(&mut self, m: Message) {
        // The leader sends min(our match, its commit), so this never passes our log.
        self.raft_log.commit_to(m.commit.min(self.raft_log.last_index()));
        let mut answer = Message::new(MessageType::HeartbeatResponse, self.id, m.from);
        answer.context = m.context;
        answer.round = m.round;
        self.send(answer);
    }

    fn handle_snapshot(&mut self, m: Message) {
        let Some(snapshot) = m.snapshot else { return };
        let mut answer = Message::new(MessageType::AppendResponse, self.id, m.from);
        answer.index = if self.restore(snapshot) {
            self.raft_log.last_index()
        } else {
            self.raft_log.committed
        };
        self.send(answer);
    }

    /// Installs a snapshot unless it is stale. Returns whether it was installed.
    pub fn restore(&mut self, snapshot: Snapshot) -> bool {
        let meta = &snapshot.metadata;
        if meta.index <= self.raft_log.committed {
            return false;
        }
        if self.raft_log.match_term(meta.index, meta.term) {
            // We have the snapshot's last entry: just commit up to it.
            self.raft_log.commit_to(meta.index);
            return false;
        }
        let voters = meta.conf_state.voters.clone();
        self.raft_log.restore(snapshot);
        let next = self.raft_log.last_index() + 1;
        self.prs.progress.clear();
        for id in voters {
            let mut pr = Progress::new(next, self.prs.max_inflight);
            if id == self.id {
                pr.matched = next - 1;
            }
            self.prs.progress.insert(id, pr);
        }
        true
    }
}
