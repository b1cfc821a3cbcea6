//! Stepping a message: term rules common to every role, elections and votes, then the
//! role-specific handlers.

use super::{CampaignKind, Raft, RaftError, StateRole};
use crate::raft::message::{CAMPAIGN_TRANSFER, Message, MessageType, NONE};
use crate::raft::storage::Storage;

impl<S: Storage> Raft<S> {
    /// Advances the state machine with one message.
    pub fn step(&mut self, m: Message) -> Result<(), RaftError> {
        if m.term == 0 {
            // A local message, or one forwarded without a term.
        } else if m.term > self.term {
            if matches!(m.msg_type, MessageType::RequestVote | MessageType::RequestPreVote) {
                let forced = m.context == CAMPAIGN_TRANSFER;
                let in_lease =
                    self.check_quorum && self.lead != NONE && self.election_elapsed < self.election_timeout;
                if in_lease && !forced {
                    // We heard from a live leader less than an election timeout ago: this
                    // candidate cannot win legitimately, so it gets no answer and no term.
                    return Ok(());
                }
            }
            match m.msg_type {
                // A pre-vote never changes a term; a granted pre-vote answer carries the term
                // the candidate will take if it wins.
                MessageType::RequestPreVote => {}
                MessageType::RequestPreVoteResponse if !m.reject => {}
                _ => {
                    let lead = if matches!(
                        m.msg_type,
                        MessageType::Append | MessageType::Heartbeat | MessageType::Snapshot
                    ) {
                        m.from
                    } else {
                        NONE
                    };
                    self.become_follower(m.term, lead);
                }
            }
        } else if m.term < self.term {
            match m.msg_type {
                // A stale leader (cut off and come back, or a stale message) learns the newer
                // term from the answer and steps down.
                MessageType::Heartbeat | MessageType::Append => {
                    let mut answer = Message::new(MessageType::AppendResponse, self.id, m.from);
                    answer.term = self.term;
                    self.send(answer);
                }
                MessageType::RequestPreVote => {
                    let mut answer = Message::new(MessageType::RequestPreVoteResponse, self.id, m.from);
                    answer.term = self.term;
                    answer.reject = true;
                    self.send(answer);
                }
                _ => {}
            }
            return Ok(());
        }

        match m.msg_type {
            MessageType::Hup => {
                self.hup(false);
                Ok(())
            }
            MessageType::RequestVote | MessageType::RequestPreVote => {
                self.handle_vote_request(m);
                Ok(())
            }
            _ => match self.state {
                StateRole::Leader => self.step_leader(m),
                StateRole::Candidate | StateRole::PreCandidate => self.step_candidate(m),
                StateRole::Follower => self.step_follower(m),
            },
        }
    }

    /// Starts an election (or, with `transfer`, the one a leader transfer asked for).
    pub(super) fn hup(&mut self, transfer: bool) {
        if self.state == StateRole::Leader {
            return;
        }
        if !self.promotable() {
            return;
        }
        if self.has_unapplied_conf_change() {
            // The membership this node would lead under is not settled yet.
            return;
        }
        let kind = if transfer {
            CampaignKind::Transfer
        } else if self.pre_vote {
            CampaignKind::PreElection
        } else {
            CampaignKind::Election
        };
        self.campaign(kind);
    }

    fn campaign(&mut self, kind: CampaignKind) {
        let (vote_type, term) = if kind == CampaignKind::PreElection {
            self.become_pre_candidate();
            // Ask about the term we would take, without taking it.
            (MessageType::RequestPreVote, self.term + 1)
        } else {
            self.become_candidate();
            (MessageType::RequestVote, self.term)
        };
        let self_id = self.id;
        self.votes.insert(self_id, true);
        if self.prs.tally(&self.votes) == Some(true) {
            // A group of one wins at once.
            if kind == CampaignKind::PreElection {
                self.campaign(CampaignKind::Election);
            } else {
                self.become_leader();
            }
            return;
        }
        let last_index = self.raft_log.last_index();
        let last_term = self.raft_log.last_term();
        let voters: Vec<_> = self.prs.voters().filter(|&id| id != self_id).collect();
        for id in voters {
            let mut m = Message::new(vote_type, self_id, id);
            m.term = term;
            m.index = last_index;
            m.log_term = last_term;
            if kind == CampaignKind::Transfer {
                m.context = CAMPAIGN_TRANSFER.to_vec();
            }
            self.send(m);
        }
    }

    /// Grants a vote (§5.2, §5.4.1) if this node has not voted for someone else in the term
    /// and the candidate's log is at least as up to date as its own.
    fn handle_vote_request(&mut self, m: Message) {
        let response_type = m.msg_type.vote_response();
        let can_vote = self.vote == m.from
            || (self.vote == NONE && self.lead == NONE)
            || (m.msg_type == MessageType::RequestPreVote && m.term > self.term);
        let mut answer = Message::new(response_type, self.id, m.from);
        if can_vote && self.raft_log.is_up_to_date(m.index, m.log_term) {
            // Answer in the candidate's term, so that it counts the vote; a granted pre-vote
            // changes nothing here.
            answer.term = m.term;
            if m.msg_type == MessageType::RequestVote {
                self.election_elapsed = 0;
                self.vote = m.from;
            }
        } else {
            answer.term = self.term;
            answer.reject = true;
        }
        self.send(answer);
    }

    /// Counts a vote answer; returns the outcome once decided.
    pub(super) fn poll(&mut self, from: u64, granted: bool) -> Option<bool> {
        self.votes.insert(from, granted);
        self.prs.tally(&self.votes)
    }

    /// Campaigns after a pre-vote won (used by the candidate handler).
    pub(super) fn campaign_after_pre_vote(&mut self) {
        self.campaign(CampaignKind::Election);
    }
}
