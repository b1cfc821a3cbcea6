//! `RegionPeer`: one replica of a region, driving its raft group over the store's engine.
//!
//! The store's driver feeds a peer ticks and raft messages, proposes commands to it, and calls
//! [`RegionPeer::handle_ready`] after each batch of input. One `handle_ready`:
//!
//! 1. persists new log entries and the hard state in one synced write (the raft log is
//!    durable before any message that depends on it leaves, so a vote or an append
//!    acknowledgement is never forgotten by a crash);
//! 2. returns the messages for the driver to send;
//! 3. applies committed entries: each command's mutations and the new applied index go in one
//!    batch, so a crash between entries replays from a consistent point;
//! 4. answers the proposals those entries settle.
//!
//! A proposal is answered `Ok` only when its entry (same index, same term) is applied; that
//! entry was committed, so it is on a majority's fsync'd logs. A proposal whose log slot went to
//! another entry is answered [`RaftstoreError::StaleCommand`]: it was never applied. One that a
//! snapshot from a newer leader jumped over is answered [`RaftstoreError::Undetermined`]: the
//! snapshot holds its effects or not, and does not say which.
//!
//! Reads go through [`RegionPeer::read_index`]: the leader confirms with a quorum that it
//! still leads, and the read is released once everything committed at that point is applied,
//! so a deposed leader never serves a stale value.
//!
//! ## Caveats
//!
//! - Snapshots are built inline when the core asks (see `snap.rs`), not by a region worker.
//!   The leader proposes `CompactLog` every `raft_log_gc_tick_interval` ticks once
//!   `raft_log_gc_count_limit` applied entries are in the log; entries are deleted in the
//!   apply batch, not by a background worker.
//! - `ChangePeer` adds or removes one peer at a time; applying it updates the region (and
//!   `conf_ver`) in the same batch, and a peer that removes itself is destroyed after one more
//!   ready (so a leader's hand-over message still leaves). Splits do not exist yet.

use std::collections::VecDeque;

use super::cmd::{
    AdminCommand, CommandBody, CommandHeader, CommandResponse, CommandResult, Mutation, RaftCommand,
    RaftstoreError,
};
use super::meta::{Peer, Region, TruncatedState};
use super::peer_storage::{PeerStorage, PeerStorageError};
use crate::raft::{ConfChange, ConfChangeType, Config, EntryType, Message, RawNode, StateRole};
use crate::storage::{Cf, Engine, WriteBatch, WriteOptions};

/// Called once with the outcome of a proposal.
pub type Callback = Box<dyn FnOnce(CommandResult) + Send>;

/// Raft timing and limits for every peer of a store.
#[derive(Clone, Copy, Debug)]
pub struct PeerOptions {
    pub election_tick: usize,
    pub heartbeat_tick: usize,
    pub max_size_per_msg: u64,
    pub max_inflight_msgs: usize,
    /// How often (in ticks) a leader considers compacting its region's log.
    pub raft_log_gc_tick_interval: usize,
    /// A leader compacts the log once this many applied entries are still in it.
    pub raft_log_gc_count_limit: u64,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            election_tick: 10,
            heartbeat_tick: 2,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            raft_log_gc_tick_interval: 100,
            raft_log_gc_count_limit: 10_000,
        }
    }
}

struct PendingRead {
    ctx: Vec<u8>,
    /// The term the request was made in: a leader of a later term never answers it.
    term: u64,
    index: Option<u64>,
    callback: Callback,
}

struct Proposal {
    index: u64,
    term: u64,
    callback: Callback,
}

pub struct RegionPeer<E: Engine> {
    store_id: u64,
    me: Peer,
    engine: E,
    raft: RawNode<PeerStorage<E>>,
    /// Waiting proposals, in strictly increasing index order.
    proposals: VecDeque<Proposal>,
    options: PeerOptions,
    ticks_since_log_gc: usize,
    /// Reads waiting for their read index (`None`) or for it to be applied, by context.
    reads: VecDeque<PendingRead>,
    next_read_ctx: u64,
    /// A membership change removed this peer; it is destroyed at the end of the ready.
    removed: bool,
    destroyed: bool,
}

fn storage_error(e: PeerStorageError) -> RaftstoreError {
    match e {
        PeerStorageError::RegionNotFound(id) => RaftstoreError::RegionNotFound(id),
        other => RaftstoreError::Storage(other.to_string()),
    }
}

impl<E: Engine + Clone> RegionPeer<E> {
    /// Opens this store's peer of region `region_id` from the engine (after bootstrap, or on
    /// restart). `seed` drives the peer's election timeouts.
    pub fn open(
        store_id: u64,
        engine: E,
        region_id: u64,
        options: PeerOptions,
        seed: u64,
    ) -> Result<Self, RaftstoreError> {
        let storage = PeerStorage::open(engine.clone(), region_id).map_err(storage_error)?;
        let me = storage
            .region()
            .peer_on_store(store_id)
            .ok_or(RaftstoreError::RegionNotFound(region_id))?;
        Self::start(store_id, me, engine, storage, options, seed)
    }

    /// A peer `me` of region `region_id` that this store learned of from a message: it has no
    /// data until the leader sends a snapshot.
    pub fn uninitialized(
        store_id: u64,
        me: Peer,
        engine: E,
        region_id: u64,
        options: PeerOptions,
        seed: u64,
    ) -> Result<Self, RaftstoreError> {
        let storage = PeerStorage::uninitialized(engine.clone(), region_id).map_err(storage_error)?;
        Self::start(store_id, me, engine, storage, options, seed)
    }

    fn start(
        store_id: u64,
        me: Peer,
        engine: E,
        storage: PeerStorage<E>,
        options: PeerOptions,
        seed: u64,
    ) -> Result<Self, RaftstoreError> {
        let mut config = Config::new(
            me.id,
            Vec::new(),
            options.election_tick,
            options.heartbeat_tick,
            seed,
        );
        config.applied = storage.apply_state().applied_index;
        config.max_size_per_msg = options.max_size_per_msg;
        config.max_inflight_msgs = options.max_inflight_msgs;
        config.pre_vote = true;
        config.check_quorum = true;
        let raft = RawNode::new(&config, storage).map_err(|e| RaftstoreError::Storage(e.to_string()))?;
        Ok(RegionPeer {
            store_id,
            me,
            engine,
            raft,
            proposals: VecDeque::new(),
            options,
            ticks_since_log_gc: 0,
            reads: VecDeque::new(),
            next_read_ctx: 0,
            removed: false,
            destroyed: false,
        })
    }
}

impl<E: Engine> RegionPeer<E> {
    pub fn region(&self) -> &Region {
        self.storage().region()
    }

    pub fn peer(&self) -> Peer {
        self.me
    }

    /// The header of a command sent to this peer by a client whose view of the region is
    /// this peer's own: its region, epoch and term.
    pub fn command_header(&self) -> CommandHeader {
        CommandHeader {
            region_id: self.region().id,
            peer: self.me,
            epoch: self.region().epoch,
            term: self.term(),
        }
    }

    /// Whether a membership change removed this peer and its state is gone: the store drops
    /// it.
    pub fn is_destroyed(&self) -> bool {
        self.destroyed
    }

    pub fn is_leader(&self) -> bool {
        self.raft.raft.state == StateRole::Leader
    }

    /// The leader this peer knows of, if any.
    pub fn leader(&self) -> Option<Peer> {
        let lead = self.raft.raft.lead;
        self.region().peers.iter().copied().find(|p| p.id == lead)
    }

    pub fn term(&self) -> u64 {
        self.raft.raft.term
    }

    pub fn applied_index(&self) -> u64 {
        self.storage().apply_state().applied_index
    }

    pub fn storage(&self) -> &PeerStorage<E> {
        &self.raft.raft.raft_log.store
    }

    pub fn tick(&mut self) {
        self.raft.tick();
        self.ticks_since_log_gc += 1;
        if self.ticks_since_log_gc >= self.options.raft_log_gc_tick_interval {
            self.ticks_since_log_gc = 0;
            self.maybe_compact_log();
        }
    }

    /// On the leader: proposes compacting the log through the applied index once enough
    /// applied entries pile up. Followers compact when they apply the command; one that
    /// later needs the dropped entries gets a snapshot.
    fn maybe_compact_log(&mut self) {
        if !self.is_leader() {
            return;
        }
        let applied = self.applied_index();
        let truncated = self.storage().apply_state().truncated.index;
        if applied - truncated < self.options.raft_log_gc_count_limit {
            return;
        }
        let Ok(term) = self.raft.raft.raft_log.term(applied) else {
            return;
        };
        let command = RaftCommand {
            header: self.command_header(),
            body: CommandBody::Admin(AdminCommand::CompactLog { index: applied, term }),
        };
        let region_id = self.region().id;
        self.propose(
            command,
            Box::new(move |result| {
                if let Err(e) = result {
                    tracing::debug!(region = region_id, "log compaction not applied: {e}");
                }
            }),
        );
    }

    /// Starts an election now instead of waiting for the timeout.
    pub fn campaign(&mut self) {
        // Campaigning only fails for a node outside the group, which `open` ruled out.
        let _ = self.raft.campaign();
    }

    /// Hands leadership to `peer_id` (a no-op unless this peer leads).
    pub fn transfer_leader(&mut self, peer_id: u64) {
        self.raft.transfer_leader(peer_id);
    }

    /// Tells the core how sending a snapshot to `peer_id` ended. Until it hears, the leader
    /// sends that peer nothing but heartbeats, so the transport must always report.
    pub fn report_snapshot(&mut self, peer_id: u64, failed: bool) {
        self.raft.report_snapshot(peer_id, failed);
    }

    /// Tells the core a message to `peer_id` could not be sent, so it probes instead of
    /// streaming appends.
    pub fn report_unreachable(&mut self, peer_id: u64) {
        self.raft.report_unreachable(peer_id);
    }

    /// Steps a message from another peer of the region.
    pub fn step(&mut self, message: Message) {
        // Errors here are messages from peers the core does not know; dropping them is safe.
        let _ = self.raft.step(message);
    }

    /// Proposes `command`; `callback` gets the outcome once it is known: at once if the command
    /// is refused here, otherwise when its log slot is applied.
    pub fn propose(&mut self, command: RaftCommand, callback: Callback) {
        if let Err(e) = self.check_proposal(&command) {
            callback(Err(e));
            return;
        }
        let index = self.raft.raft.raft_log.last_index() + 1;
        let term = self.raft.raft.term;
        let proposed = match &command.body {
            CommandBody::Admin(AdminCommand::ChangePeer { change_type, peer }) => {
                let change = ConfChange {
                    change_type: *change_type,
                    node_id: peer.id,
                };
                self.raft
                    .propose_conf_change_with_context(&change, &command.encode())
            }
            _ => self.raft.propose(command.encode()),
        };
        if proposed.is_err() {
            callback(Err(self.not_leader()));
            return;
        }
        debug_assert_eq!(self.raft.raft.raft_log.last_index(), index);
        // This leader's log now ends at `index`: anything proposed earlier at `index` or above
        // lost its slot when another leader overwrote it.
        while self.proposals.back().is_some_and(|p| p.index >= index) {
            let stale = self.proposals.pop_back().expect("checked");
            (stale.callback)(Err(RaftstoreError::StaleCommand));
        }
        self.proposals.push_back(Proposal {
            index,
            term,
            callback,
        });
    }

    /// Asks for a linearizable read (ReadIndex, Raft thesis §6.4): `callback` hears
    /// `Readable` once this peer, confirmed as leader by a quorum after the request arrived,
    /// has applied everything committed at that moment. Refused like a write if this peer
    /// does not lead or the header's epoch is stale; `StaleCommand` if it loses leadership
    /// before the confirmation (the read may be retried).
    pub fn read_index(&mut self, header: CommandHeader, callback: Callback) {
        // The checks of a write with no keys: store, region, leadership, peer, term, epoch.
        let checked = self.check_proposal(&RaftCommand {
            header,
            body: CommandBody::Write(Vec::new()),
        });
        if let Err(e) = checked {
            callback(Err(e));
            return;
        }
        self.next_read_ctx += 1;
        let ctx = self.next_read_ctx.to_be_bytes().to_vec();
        self.raft.read_index(ctx.clone());
        self.reads.push_back(PendingRead {
            ctx,
            term: self.term(),
            index: None,
            callback,
        });
    }

    /// Answers the reads whose index is applied; fails the unconfirmed ones if this peer no
    /// longer leads (the core drops their requests).
    fn serve_reads(&mut self) {
        let applied = self.applied_index();
        let (leading, term) = (self.is_leader(), self.term());
        let mut waiting = VecDeque::with_capacity(self.reads.len());
        for read in self.reads.drain(..) {
            match read.index {
                Some(index) if index <= applied => (read.callback)(Ok(CommandResponse::Readable)),
                None if !leading || read.term != term => (read.callback)(Err(RaftstoreError::StaleCommand)),
                _ => waiting.push_back(read),
            }
        }
        self.reads = waiting;
    }

    fn not_leader(&self) -> RaftstoreError {
        RaftstoreError::NotLeader {
            region_id: self.region().id,
            leader: self.leader().filter(|p| p.id != self.me.id),
        }
    }

    /// TinyKV's `preProposeRaftCommand`, plus the key checks of a write.
    fn check_proposal(&self, command: &RaftCommand) -> Result<(), RaftstoreError> {
        let header = &command.header;
        if header.peer.store_id != self.store_id {
            return Err(RaftstoreError::StoreNotMatch {
                requested: header.peer.store_id,
                actual: self.store_id,
            });
        }
        if header.region_id != self.region().id {
            return Err(RaftstoreError::RegionNotFound(header.region_id));
        }
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        if header.peer.id != self.me.id {
            return Err(RaftstoreError::PeerNotMatch {
                requested: header.peer.id,
                actual: self.me.id,
            });
        }
        if header.term != 0 && self.term() > header.term + 1 {
            return Err(RaftstoreError::StaleCommand);
        }
        self.check_command(header, &command.body)?;
        if let CommandBody::Admin(AdminCommand::ChangePeer { peer, .. }) = &command.body {
            // At most one membership change in flight (the raft core's rule, checked here so
            // the proposer hears why).
            if self.raft.raft.pending_conf_index > self.raft.raft.raft_log.applied {
                return Err(RaftstoreError::InvalidCommand(format!(
                    "a membership change is already in progress (changing peer {})",
                    peer.id
                )));
            }
        }
        Ok(())
    }

    /// The checks a command must pass both when proposed and when applied: the region may have
    /// changed in between.
    fn check_command(&self, header: &CommandHeader, body: &CommandBody) -> Result<(), RaftstoreError> {
        let region = self.region();
        match body {
            CommandBody::Write(mutations) => {
                if header.epoch.version != region.epoch.version {
                    return Err(RaftstoreError::EpochNotMatch {
                        current: vec![region.clone()],
                    });
                }
                for m in mutations {
                    if matches!(
                        m,
                        Mutation::Put { cf: Cf::Raft, .. } | Mutation::Delete { cf: Cf::Raft, .. }
                    ) {
                        return Err(RaftstoreError::InvalidCommand(
                            "the raft column family holds the store's own metadata".into(),
                        ));
                    }
                    if !region.contains(m.key()) {
                        return Err(RaftstoreError::KeyNotInRegion {
                            key: m.key().to_vec(),
                            region_id: region.id,
                            start_key: region.start_key.clone(),
                            end_key: region.end_key.clone(),
                        });
                    }
                }
                Ok(())
            }
            CommandBody::Admin(AdminCommand::CompactLog { .. }) => Ok(()),
            CommandBody::Admin(AdminCommand::ChangePeer { change_type, peer }) => {
                if header.epoch.conf_ver != region.epoch.conf_ver {
                    return Err(RaftstoreError::EpochNotMatch {
                        current: vec![region.clone()],
                    });
                }
                let invalid = |why: &str| Err(RaftstoreError::InvalidCommand(why.to_string()));
                match change_type {
                    ConfChangeType::AddNode => {
                        if region
                            .peers
                            .iter()
                            .any(|p| p.id == peer.id || p.store_id == peer.store_id)
                        {
                            return invalid("the peer or its store is already in the region");
                        }
                    }
                    ConfChangeType::RemoveNode => {
                        if !region.peers.contains(peer) {
                            return invalid("the peer is not in the region");
                        }
                        if region.peers.len() == 1 {
                            return invalid("a region cannot remove its last peer");
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Persists, sends (by returning the messages), applies and answers whatever the raft
    /// core has ready. Storage failures are fatal to a store: the error is returned, and the
    /// peer must not be used afterwards.
    pub fn handle_ready(&mut self) -> Result<Vec<Message>, RaftstoreError> {
        if !self.raft.has_ready() {
            return Ok(Vec::new());
        }
        let mut ready = self.raft.ready();

        let mut batch = WriteBatch::new();
        let storage = &mut self.raft.raft.raft_log.store;
        if let Some(snapshot) = &ready.snapshot {
            storage
                .apply_snapshot(snapshot, &mut batch)
                .map_err(|e| RaftstoreError::Snapshot(e.to_string()))?;
        }
        storage.append(&ready.entries, &mut batch);
        if let Some(hard_state) = ready.hard_state {
            storage.set_hard_state(hard_state, &mut batch);
        }
        if !batch.is_empty() {
            self.engine.write(&batch, WriteOptions::SYNC)?;
        }
        let messages = std::mem::take(&mut ready.messages);
        for state in std::mem::take(&mut ready.read_states) {
            if let Some(read) = self.reads.iter_mut().find(|r| r.ctx == state.request_ctx) {
                read.index = Some(state.index);
            }
        }

        let mut answers = Vec::new();
        if let Some(last) = ready.committed_entries.last() {
            let last_index = last.index;
            let mut batch = WriteBatch::new();
            for entry in &ready.committed_entries {
                let result = match entry.entry_type {
                    EntryType::Normal if entry.data.is_empty() => None,
                    EntryType::Normal => Some(self.apply_command(&entry.data, &mut batch)),
                    EntryType::ConfChange => Some(self.apply_conf_change(&entry.data, &mut batch)),
                };
                answers.push((entry.index, entry.term, result));
            }
            let storage = &mut self.raft.raft.raft_log.store;
            storage.set_applied(last_index, &mut batch);
            // Not synced: the log is, and applying it again from the last synced applied index
            // gives the same state.
            self.engine.write(&batch, WriteOptions::NO_SYNC)?;
        }
        let snapshot_point = ready
            .snapshot
            .as_ref()
            .map(|s| (s.metadata.index, s.metadata.term));
        self.raft.advance(ready);
        if let Some((index, term)) = snapshot_point {
            self.settle_covered_by_snapshot(index, term);
        }
        for (index, term, result) in answers {
            self.answer(index, term, result);
        }
        self.serve_reads();
        if self.removed && !self.destroyed {
            return self.destroy(messages);
        }
        Ok(messages)
    }

    /// Destroys this peer because its region moved on without it: it was removed while it was
    /// away, and the region now has another peer on this store (see `Store::on_raft_message`).
    pub fn destroy_stale(&mut self) -> Result<(), RaftstoreError> {
        self.destroy(Vec::new()).map(|_| ())
    }

    /// Destroys a removed peer: one more ready for the messages its removal produced (a leader
    /// hands over to a successor), then its state goes. Waiting proposals are answered
    /// `Undetermined`: the group may still commit them without this peer.
    fn destroy(&mut self, mut messages: Vec<Message>) -> Result<Vec<Message>, RaftstoreError> {
        if self.raft.has_ready() {
            let mut ready = self.raft.ready();
            messages.append(&mut ready.messages);
        }
        let mut batch = WriteBatch::new();
        self.raft.raft.raft_log.store.destroy(&mut batch);
        self.engine.write(&batch, WriteOptions::SYNC)?;
        self.destroyed = true;
        let region_id = self.region().id;
        // Their entries may still commit in the group this peer left: the outcome is unknown.
        for proposal in self.proposals.drain(..) {
            (proposal.callback)(Err(RaftstoreError::Undetermined));
        }
        for read in self.reads.drain(..) {
            (read.callback)(Err(RaftstoreError::StaleCommand));
        }
        tracing::info!(
            region = region_id,
            peer = self.me.id,
            "peer removed from its region and destroyed"
        );
        Ok(messages)
    }

    fn apply_conf_change(&mut self, data: &[u8], batch: &mut WriteBatch) -> CommandResult {
        let region_id = self.region().id;
        let (change, context) = ConfChange::decode_with_context(data)
            .unwrap_or_else(|| panic!("region {region_id}: a malformed membership change in the log"));
        let command = RaftCommand::decode(context)
            .unwrap_or_else(|e| panic!("region {region_id}: a membership change without its command: {e}"));
        let CommandBody::Admin(AdminCommand::ChangePeer { change_type, peer }) = command.body else {
            panic!("region {region_id}: a membership change entry holds another command");
        };
        // Refused here, the change is not applied: raft's membership stays as it is.
        self.check_command(&command.header, &command.body)?;
        let mut region = self.region().clone();
        match change_type {
            ConfChangeType::AddNode => region.peers.push(peer),
            ConfChangeType::RemoveNode => region.peers.retain(|p| p.id != peer.id),
        }
        region.epoch.conf_ver += 1;
        self.raft.raft.raft_log.store.set_region(region, batch);
        self.raft.apply_conf_change(&change);
        if change_type == ConfChangeType::RemoveNode && peer.id == self.me.id {
            self.removed = true;
        }
        Ok(CommandResponse::Admin)
    }

    fn apply_command(&mut self, data: &[u8], batch: &mut WriteBatch) -> CommandResult {
        let command = RaftCommand::decode(data).unwrap_or_else(|e| {
            panic!(
                "region {}: an entry in the raft log is not a command: {e}",
                self.region().id
            )
        });
        self.check_command(&command.header, &command.body)?;
        match command.body {
            CommandBody::Write(mutations) => {
                for m in mutations {
                    match m {
                        Mutation::Put { cf, key, value } => batch.put(cf, key, value),
                        Mutation::Delete { cf, key } => batch.delete(cf, key),
                    }
                }
                Ok(CommandResponse::Written)
            }
            CommandBody::Admin(AdminCommand::ChangePeer { .. }) => {
                panic!(
                    "region {}: a membership change in a normal entry",
                    self.region().id
                )
            }
            CommandBody::Admin(AdminCommand::CompactLog { index, term }) => {
                let storage = &mut self.raft.raft.raft_log.store;
                // Only entries applied before this batch may go (the batch may still fail).
                let applied = storage.apply_state().applied_index;
                let truncated = storage.apply_state().truncated.index;
                if index > truncated && index <= applied {
                    storage.compact_to(TruncatedState { index, term }, batch);
                }
                Ok(CommandResponse::Admin)
            }
        }
    }

    /// Settles the proposals a snapshot through `(index, term)` covers. Their entries were
    /// applied or not on the leader, and the snapshot does not say which, except that a
    /// proposal from a later term than the snapshot's last entry cannot be in it.
    fn settle_covered_by_snapshot(&mut self, index: u64, term: u64) {
        while self.proposals.front().is_some_and(|p| p.index <= index) {
            let proposal = self.proposals.pop_front().expect("checked");
            let outcome = if proposal.term > term {
                RaftstoreError::StaleCommand
            } else {
                RaftstoreError::Undetermined
            };
            (proposal.callback)(Err(outcome));
        }
    }

    /// Settles the proposals up to the applied entry `(index, term)`.
    fn answer(&mut self, index: u64, term: u64, mut result: Option<CommandResult>) {
        while let Some(front) = self.proposals.front() {
            if front.index > index {
                break;
            }
            let proposal = self.proposals.pop_front().expect("checked");
            let outcome = if proposal.index == index && proposal.term == term {
                result.take().unwrap_or(Err(RaftstoreError::StaleCommand))
            } else {
                Err(RaftstoreError::StaleCommand)
            };
            (proposal.callback)(outcome);
        }
    }
}
