//! The leader: proposals, replication and its flow control, commit, heartbeats, check-quorum,
//! read-index, and leader transfer.

use super::read_only::{ReadOnlyOption, ReadState};
use super::{Raft, RaftError};
use crate::raft::message::{ConfChange, Entry, EntryType, Message, MessageType, NONE, NodeId};
use crate::raft::progress::ProgressState;
use crate::raft::storage::{Storage, StorageError};

impl<S: Storage> Raft<S> {
    pub(super) fn step_leader(&mut self, m: Message) -> Result<(), RaftError> {
        match m.msg_type {
            MessageType::Beat => {
                for pr in self.prs.progress.values_mut() {
                    pr.resume_on_heartbeat = true;
                }
                let ctx = self.read_only.last_pending_request_ctx();
                self.bcast_heartbeat(ctx.unwrap_or_default());
            }
            MessageType::CheckQuorum => self.step_down_without_quorum(),
            MessageType::Propose => self.propose(m)?,
            MessageType::ReadIndex => self.handle_read_index(m),
            MessageType::AppendResponse => self.handle_append_response(m),
            MessageType::HeartbeatResponse => self.handle_heartbeat_response(m),
            MessageType::SnapStatus => {
                let Some(pr) = self.prs.progress.get_mut(&m.from) else {
                    return Ok(());
                };
                if pr.state == ProgressState::Snapshot {
                    if m.reject {
                        pr.pending_snapshot = 0;
                    }
                    pr.become_probe();
                    // Wait for the follower's answer (or the next heartbeat) before probing.
                    pr.probe_sent = true;
                }
            }
            MessageType::Unreachable => {
                if let Some(pr) = self.prs.progress.get_mut(&m.from)
                    && pr.state == ProgressState::Replicate
                {
                    pr.become_probe();
                }
            }
            MessageType::TransferLeader => self.handle_transfer_leader(m.from),
            _ => {}
        }
        Ok(())
    }

    fn propose(&mut self, mut m: Message) -> Result<(), RaftError> {
        assert!(!m.entries.is_empty(), "a proposal carries entries");
        if !self.prs.progress.contains_key(&self.id) || self.lead_transferee.is_some() {
            // Removed from the group, or handing leadership over: take nothing new.
            return Err(RaftError::ProposalDropped);
        }
        let last = self.raft_log.last_index();
        for (i, entry) in m.entries.iter_mut().enumerate() {
            if entry.entry_type != EntryType::ConfChange {
                continue;
            }
            if self.pending_conf_index > self.raft_log.applied {
                // One membership change at a time: this one becomes a no-op.
                *entry = Entry::default();
            } else {
                self.pending_conf_index = last + 1 + i as u64;
            }
        }
        self.append_entry(m.entries);
        self.bcast_append();
        Ok(())
    }

    /// Sends `to` the entries it needs, or a snapshot if they are compacted. Returns whether
    /// anything was sent.
    pub(super) fn send_append(&mut self, to: NodeId) -> bool {
        let Some(pr) = self.prs.progress.get(&to) else {
            return false;
        };
        if pr.is_paused() {
            return false;
        }
        let next = pr.next_idx;
        let term = self.raft_log.term(next - 1);
        let entries = self.raft_log.entries(next, Some(self.max_msg_size));
        match (term, entries) {
            (Ok(log_term), Ok(entries)) => {
                let mut m = Message::new(MessageType::Append, self.id, to);
                m.index = next - 1;
                m.log_term = log_term;
                m.commit = self.raft_log.committed;
                let pr = self.prs.progress.get_mut(&to).expect("checked above");
                if let Some(last) = entries.last().map(|e| e.index) {
                    match pr.state {
                        ProgressState::Replicate => {
                            pr.optimistic_update(last);
                            pr.inflights.add(last);
                        }
                        ProgressState::Probe => pr.probe_sent = true,
                        ProgressState::Snapshot => unreachable!("paused in the snapshot state"),
                    }
                }
                m.entries = entries;
                self.send(m);
                true
            }
            _ => self.send_snapshot(to),
        }
    }

    fn send_snapshot(&mut self, to: NodeId) -> bool {
        let pr = self.prs.progress.get(&to).expect("a known peer");
        if !pr.recent_active {
            // No snapshot (a big message) to a peer that may be down; wait until it answers.
            return false;
        }
        let snapshot = match self.raft_log.snapshot(pr.next_idx - 1) {
            Ok(snapshot) => snapshot,
            Err(StorageError::SnapshotTemporarilyUnavailable) => return false,
            Err(e) => panic!("the log is compacted but no snapshot is available: {e}"),
        };
        assert!(
            !snapshot.is_empty(),
            "a compacted log needs a non-empty snapshot (to {to}, next {}, first {}, last {}, term(next-1) {:?})",
            self.prs.progress[&to].next_idx,
            self.raft_log.first_index(),
            self.raft_log.last_index(),
            self.raft_log.term(self.prs.progress[&to].next_idx - 1)
        );
        let index = snapshot.metadata.index;
        let mut m = Message::new(MessageType::Snapshot, self.id, to);
        m.snapshot = Some(snapshot);
        self.prs
            .progress
            .get_mut(&to)
            .expect("a known peer")
            .become_snapshot(index);
        self.send(m);
        true
    }

    /// Sends appends to every follower that can take one, in id order.
    pub(super) fn bcast_append(&mut self) {
        let peers: Vec<NodeId> = self.prs.voters().filter(|&id| id != self.id).collect();
        for id in peers {
            self.send_append(id);
        }
    }

    fn bcast_heartbeat(&mut self, ctx: Vec<u8>) {
        let round = self.record_heartbeat_round();
        let peers: Vec<NodeId> = self.prs.voters().filter(|&id| id != self.id).collect();
        for id in peers {
            let pr = &self.prs.progress[&id];
            let mut m = Message::new(MessageType::Heartbeat, self.id, id);
            // Never more than the follower is known to have: it may lag, or its log may
            // differ beyond its match.
            m.commit = pr.matched.min(self.raft_log.committed);
            m.context = ctx.clone();
            m.round = round;
            self.send(m);
        }
    }

    fn step_down_without_quorum(&mut self) {
        if !self.quorum_active() {
            let term = self.term;
            self.become_follower(term, NONE);
        }
    }

    /// Check-quorum: whether a quorum (this node included) was heard from since the last
    /// check. Clears the marks for the next period.
    fn quorum_active(&mut self) -> bool {
        let self_id = self.id;
        let mut active = 0;
        for (&id, pr) in self.prs.progress.iter_mut() {
            if id == self_id || pr.recent_active {
                active += 1;
            }
            pr.recent_active = id == self_id;
        }
        active >= self.prs.quorum()
    }

    fn handle_append_response(&mut self, m: Message) {
        let Some(pr) = self.prs.progress.get_mut(&m.from) else {
            return;
        };
        pr.recent_active = true;
        if m.reject {
            let hint = if m.log_term > 0 {
                self.raft_log.find_conflict_by_term(m.reject_hint, m.log_term).0
            } else {
                m.reject_hint
            };
            let pr = self.prs.progress.get_mut(&m.from).expect("checked above");
            if pr.maybe_decr_to(m.index, hint) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.send_append(m.from);
            }
            return;
        }
        let was_paused = pr.is_paused();
        if !pr.maybe_update(m.index) {
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot if pr.matched >= pr.pending_snapshot => pr.become_probe(),
            ProgressState::Replicate => pr.inflights.free_to(m.index),
            ProgressState::Snapshot => {}
        }
        if self.maybe_commit() {
            self.release_pending_read_requests();
            self.bcast_commit();
        } else if was_paused {
            self.send_append(m.from);
        }
        // Keep the pipe full while the window allows.
        while self.send_append_with_entries(m.from) {}
        if self.lead_transferee == Some(m.from)
            && self.prs.progress[&m.from].matched == self.raft_log.last_index()
        {
            self.send_timeout_now(m.from);
        }
    }

    /// Like `send_append`, but only when there are entries to send.
    fn send_append_with_entries(&mut self, to: NodeId) -> bool {
        let Some(pr) = self.prs.progress.get(&to) else {
            return false;
        };
        if pr.next_idx > self.raft_log.last_index() || pr.state != ProgressState::Replicate {
            return false;
        }
        self.send_append(to)
    }

    fn handle_heartbeat_response(&mut self, m: Message) {
        let Some(pr) = self.prs.progress.get_mut(&m.from) else {
            return;
        };
        pr.recent_active = true;
        pr.acked_round = pr.acked_round.max(m.round);
        // A live follower whose appends (or their answers) were lost gets going again, once
        // per periodic heartbeat (see `Progress::resume_on_heartbeat`).
        if pr.resume_on_heartbeat {
            pr.resume_on_heartbeat = false;
            pr.probe_sent = false;
            if pr.state == ProgressState::Replicate && pr.inflights.full() {
                pr.inflights.free_first_one();
            }
            if pr.matched < self.raft_log.last_index() {
                self.send_append(m.from);
            }
        }
        if self.read_only.option != ReadOnlyOption::Safe && m.context.is_empty() {
            return;
        }
        let quorum = self.prs.quorum();
        let confirmed = match self.read_only.recv_ack(m.from, &m.context) {
            Some(acks) => acks.len() >= quorum,
            None => return,
        };
        if confirmed {
            for status in self.read_only.advance(&m.context) {
                self.answer_read(status.request, status.index);
            }
        }
    }

    /// ReadIndex (Raft thesis §6.4): record the commit index, confirm leadership with a
    /// heartbeat round (or the lease), then answer.
    fn handle_read_index(&mut self, m: Message) {
        if self.prs.progress.len() == 1 {
            let index = self.raft_log.committed;
            self.answer_read(m, index);
            return;
        }
        if !self.committed_entry_in_current_term() {
            // Until its no-op commits, this leader does not know the group's commit index.
            self.pending_read_requests.push(m);
            return;
        }
        let index = self.raft_log.committed;
        if self.read_only.option == ReadOnlyOption::LeaseBased && self.lease_valid() {
            self.answer_read(m, index);
            return;
        }
        let ctx = m.entries[0].data.clone();
        self.read_only.add_request(index, m);
        let self_id = self.id;
        self.read_only.recv_ack(self_id, &ctx);
        self.bcast_heartbeat(ctx);
    }

    fn release_pending_read_requests(&mut self) {
        if self.pending_read_requests.is_empty() || !self.committed_entry_in_current_term() {
            return;
        }
        for m in std::mem::take(&mut self.pending_read_requests) {
            self.handle_read_index(m);
        }
    }

    fn answer_read(&mut self, request: Message, index: u64) {
        let ctx = request
            .entries
            .first()
            .map(|e| e.data.clone())
            .unwrap_or_default();
        if request.from == NONE || request.from == self.id {
            self.read_states.push(ReadState {
                index,
                request_ctx: ctx,
            });
        } else {
            let mut answer = Message::new(MessageType::ReadIndexResponse, self.id, request.from);
            answer.index = index;
            answer.entries = request.entries;
            self.send(answer);
        }
    }

    /// §3.10 of the thesis: catch the transferee up, then tell it to campaign at once.
    fn handle_transfer_leader(&mut self, transferee: NodeId) {
        if !self.prs.progress.contains_key(&transferee) {
            return;
        }
        if let Some(current) = self.lead_transferee {
            if current == transferee {
                return;
            }
            self.lead_transferee = None;
        }
        if transferee == self.id {
            // Already the leader; a pending transfer (if any) was just cancelled.
            return;
        }
        // The transfer must finish within an election timeout.
        self.election_elapsed = 0;
        self.lead_transferee = Some(transferee);
        if self.prs.progress[&transferee].matched == self.raft_log.last_index() {
            self.send_timeout_now(transferee);
        } else {
            self.send_append(transferee);
        }
    }

    fn send_timeout_now(&mut self, to: NodeId) {
        self.send(Message::new(MessageType::TimeoutNow, self.id, to));
    }

    /// Proposes a membership change.
    pub fn propose_conf_change(&mut self, change: &ConfChange) -> Result<(), RaftError> {
        self.propose_conf_change_with_context(change, &[])
    }

    /// Proposes a membership change carrying the application's `context` in the entry.
    pub fn propose_conf_change_with_context(
        &mut self,
        change: &ConfChange,
        context: &[u8],
    ) -> Result<(), RaftError> {
        let mut m = Message::new(MessageType::Propose, self.id, NONE);
        m.entries = vec![Entry {
            entry_type: EntryType::ConfChange,
            data: change.encode_with_context(context),
            ..Default::default()
        }];
        self.step(m)
    }
}
