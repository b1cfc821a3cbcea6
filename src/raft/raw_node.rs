//! `RawNode`: the boundary between the Raft core and the code that does its I/O.
//!
//! The driver calls `tick()` on a timer and `step()` for each message from a peer, then asks
//! `has_ready()`. A [`Ready`] lists, in the order they must be handled:
//!
//! 1. `snapshot`, `entries` and `hard_state`: persist them (the snapshot first);
//! 2. `messages`: send them, only after step 1 is durable, except those
//!    [`RawNode::take_early_messages`] takes out first: a leader's appends may leave while its
//!    own write is under way;
//! 3. `committed_entries`: apply them to the state machine (conf changes through
//!    [`RawNode::apply_conf_change`]);
//! 4. `read_states`: serve the reads once `applied >= index`;
//!
//! and then calls [`RawNode::advance`] with the same `Ready`.
//!
//! A driver that applies on another thread calls [`RawNode::advance_append`] instead once
//! steps 1 and 2 are done and the committed entries are handed to its apply worker, and
//! [`RawNode::advance_apply_to`] when the worker reports them applied. Until then the core
//! counts them as not applied (no new membership change is accepted, and no campaign starts,
//! while a handed-out one is pending).

use super::core::read_only::ReadState;
use super::core::{Config, Raft, RaftError, SoftState, StateRole};
use super::message::{
    ConfChange, ConfState, Entry, EntryType, HardState, Message, MessageType, NONE, NodeId, Snapshot,
};
use super::progress::Progress;
use super::storage::Storage;

/// Everything the driver must do before calling `advance`.
#[derive(Debug, Default, PartialEq)]
pub struct Ready {
    /// Set when the leader or the role changed.
    pub soft_state: Option<SoftState>,
    /// Set when term, vote or commit changed: persist before sending messages.
    pub hard_state: Option<HardState>,
    pub read_states: Vec<ReadState>,
    /// Entries to persist.
    pub entries: Vec<Entry>,
    /// A snapshot to persist and apply.
    pub snapshot: Option<Snapshot>,
    /// Entries committed and not yet applied.
    pub committed_entries: Vec<Entry>,
    pub messages: Vec<Message>,
}

/// A Raft node with the `Ready`/`advance` interface.
pub struct RawNode<S: Storage> {
    pub raft: Raft<S>,
    prev_soft_state: SoftState,
    prev_hard_state: HardState,
}

/// A snapshot of a node's state, for status reports.
#[derive(Clone, Debug)]
pub struct Status {
    pub id: NodeId,
    pub hard_state: HardState,
    pub soft_state: SoftState,
    pub applied: u64,
    /// The followers' progress, when this node leads.
    pub progress: Option<Vec<(NodeId, Progress)>>,
}

impl<S: Storage> RawNode<S> {
    pub fn new(config: &Config, store: S) -> Result<Self, RaftError> {
        let raft = Raft::new(config, store)?;
        Ok(RawNode {
            prev_soft_state: raft.soft_state(),
            prev_hard_state: raft.hard_state(),
            raft,
        })
    }

    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Starts an election now.
    pub fn campaign(&mut self) -> Result<(), RaftError> {
        self.raft.step(Message::new(MessageType::Hup, self.raft.id, NONE))
    }

    /// Proposes `data` for the log. Fails with `ProposalDropped` unless this node leads.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(), RaftError> {
        self.propose_many(vec![data])
    }

    /// Proposes every one of `datas`, in order, as one proposal: the followers get them in one
    /// append message. Fails with `ProposalDropped` (and proposes none) unless this node leads.
    pub fn propose_many(&mut self, datas: Vec<Vec<u8>>) -> Result<(), RaftError> {
        let mut m = Message::new(MessageType::Propose, self.raft.id, NONE);
        m.entries = datas
            .into_iter()
            .map(|data| Entry {
                data,
                ..Default::default()
            })
            .collect();
        self.raft.step(m)
    }

    pub fn propose_conf_change(&mut self, change: &ConfChange) -> Result<(), RaftError> {
        self.raft.propose_conf_change(change)
    }

    /// A membership change whose entry also carries `context` (see [`conf_change_of`]).
    pub fn propose_conf_change_with_context(
        &mut self,
        change: &ConfChange,
        context: &[u8],
    ) -> Result<(), RaftError> {
        self.raft.propose_conf_change_with_context(change, context)
    }

    /// Applies a committed conf change entry; returns the new membership.
    pub fn apply_conf_change(&mut self, change: &ConfChange) -> ConfState {
        self.raft.apply_conf_change(change)
    }

    /// Steps a message from a peer. Local message types are refused: they have their own
    /// methods.
    pub fn step(&mut self, m: Message) -> Result<(), RaftError> {
        if m.msg_type.is_local() {
            return Err(RaftError::Config(format!(
                "{:?} is local and cannot come from a peer",
                m.msg_type
            )));
        }
        // A message from a node outside the membership is stepped too: it may carry a higher
        // term, or come from the leader of a membership this node has not applied yet.
        self.raft.step(m)
    }

    /// Asks the leader to hand leadership to `transferee`.
    pub fn transfer_leader(&mut self, transferee: NodeId) {
        let m = Message::new(MessageType::TransferLeader, transferee, NONE);
        let _ = self.raft.step(m);
    }

    /// Asks for a linearizable read point; the answer comes in a later `Ready`'s
    /// `read_states` with the same `ctx`.
    pub fn read_index(&mut self, ctx: Vec<u8>) {
        let mut m = Message::new(MessageType::ReadIndex, NONE, NONE);
        m.entries = vec![Entry {
            data: ctx,
            ..Default::default()
        }];
        let _ = self.raft.step(m);
    }

    pub fn report_unreachable(&mut self, id: NodeId) {
        let _ = self.raft.step(Message::new(MessageType::Unreachable, id, NONE));
    }

    pub fn report_snapshot(&mut self, id: NodeId, failed: bool) {
        let mut m = Message::new(MessageType::SnapStatus, id, NONE);
        m.reject = failed;
        let _ = self.raft.step(m);
    }

    pub fn has_ready(&self) -> bool {
        let raft = &self.raft;
        raft.soft_state() != self.prev_soft_state
            || (!raft.hard_state().is_empty() && raft.hard_state() != self.prev_hard_state)
            || !raft.read_states.is_empty()
            || !raft.raft_log.unstable_entries().is_empty()
            || raft.raft_log.unstable_snapshot().is_some()
            || raft.raft_log.has_next_entries()
            || !raft.msgs.is_empty()
            || raft.commit_unannounced()
    }

    /// What to do now. Call [`RawNode::advance`] with it once done.
    pub fn ready(&mut self) -> Ready {
        let raft = &mut self.raft;
        raft.announce_commit();
        let soft_state = raft.soft_state();
        let hard_state = raft.hard_state();
        Ready {
            soft_state: (soft_state != self.prev_soft_state).then_some(soft_state),
            hard_state: (hard_state != self.prev_hard_state && !hard_state.is_empty()).then_some(hard_state),
            read_states: std::mem::take(&mut raft.read_states),
            entries: raft.raft_log.unstable_entries().to_vec(),
            snapshot: raft.raft_log.unstable_snapshot().cloned(),
            committed_entries: raft.raft_log.next_entries(None),
            messages: std::mem::take(&mut raft.msgs),
        }
    }

    /// Takes out of `ready` the messages that may leave before its entries and hard state are
    /// durable: a leader's appends and heartbeats, when the ready changes neither its term nor
    /// its vote (Raft thesis §10.2.1: the leader writes its log in parallel with replicating
    /// it). This is safe because the leader counts its own copy of an entry only once a round
    /// has written it: an answer to these appends is stepped in a later round, after this one's
    /// write is durable, so a commit index never counts an entry the leader has not stored.
    /// Everything else (votes, answers to a leader, snapshots) waits for the write.
    pub fn take_early_messages(&self, ready: &mut Ready) -> Vec<Message> {
        let steady = ready
            .hard_state
            .is_none_or(|hs| hs.term == self.prev_hard_state.term && hs.vote == self.prev_hard_state.vote);
        if self.raft.state != StateRole::Leader || !steady || ready.snapshot.is_some() {
            return Vec::new();
        }
        let (early, late) = std::mem::take(&mut ready.messages)
            .into_iter()
            .partition(|m| matches!(m.msg_type, MessageType::Append | MessageType::Heartbeat));
        ready.messages = late;
        early
    }

    /// Records that `ready` was handled: persisted, sent and applied.
    pub fn advance(&mut self, ready: Ready) {
        let applied = ready.committed_entries.last().map(|e| e.index);
        self.advance_append(ready);
        if let Some(index) = applied {
            self.raft.raft_log.applied_to(index);
        }
    }

    /// Records that `ready` was persisted and sent, and that its committed entries were handed
    /// to the application, which reports them with [`RawNode::advance_apply_to`].
    pub fn advance_append(&mut self, ready: Ready) {
        if let Some(soft_state) = ready.soft_state {
            self.prev_soft_state = soft_state;
        }
        if let Some(hard_state) = ready.hard_state {
            self.prev_hard_state = hard_state;
        }
        let log = &mut self.raft.raft_log;
        if let Some(last) = ready.entries.last() {
            log.stable_to(last.index, last.term);
        }
        if let Some(snapshot) = &ready.snapshot {
            log.stable_snap_to(snapshot.metadata.index);
            log.applied_to(snapshot.metadata.index);
        }
        if let Some(last) = ready.committed_entries.last() {
            log.applying_to(last.index);
        }
    }

    /// Records that the application has applied every entry through `index`.
    pub fn advance_apply_to(&mut self, index: u64) {
        self.raft.raft_log.applied_to(index);
    }

    pub fn status(&self) -> Status {
        let raft = &self.raft;
        Status {
            id: raft.id,
            hard_state: raft.hard_state(),
            soft_state: raft.soft_state(),
            applied: raft.raft_log.applied,
            progress: (raft.soft_state().role == super::core::StateRole::Leader)
                .then(|| raft.prs.progress.iter().map(|(&id, p)| (id, p.clone())).collect()),
        }
    }
}

/// Whether an entry is a conf change, and which (any context after it is ignored).
pub fn conf_change_of(entry: &Entry) -> Option<ConfChange> {
    (entry.entry_type == EntryType::ConfChange)
        .then(|| ConfChange::decode_with_context(&entry.data))
        .flatten()
        .map(|(change, _)| change)
}
