//! `RegionPeer`: the raft side of one replica of a region, over the store's engine.
//!
//! The store's driver feeds a peer ticks and raft messages, proposes commands to it, and then
//! runs a round over all its peers:
//!
//! 1. [`RegionPeer::collect_ready`] puts the peer's new log entries and hard state into the
//!    store's one write batch for the round (group commit across regions);
//! 2. the driver writes that batch, synced if any peer needs it (new entries, or a new term or
//!    vote; a round that only moved commit indexes skips the fsync);
//! 3. [`RegionPeer::on_persisted`] gives back the messages to send (only now: the raft log is
//!    durable before any message that depends on it leaves, so a vote or an append
//!    acknowledgement is never forgotten by a crash; a leader's appends and heartbeats alone
//!    leave in step 1, as [`PeerReady::early`], since its own copy counts only once written)
//!    and the committed entries as an apply task;
//! 4. the apply side (`apply.rs`) applies the task and reports back through
//!    [`RegionPeer::on_apply_result`], which follows membership changes and log compaction
//!    and releases reads.
//!
//! A proposal is answered `Ok` only when its entry (same index, same term) is applied; that
//! entry was committed, so it is on a majority's fsync'd logs. A proposal whose log slot went to
//! another entry is answered [`RaftstoreError::StaleCommand`]: it was never applied. One that a
//! snapshot from a newer leader jumped over is answered [`RaftstoreError::Undetermined`]: the
//! snapshot holds its effects or not, and does not say which.
//!
//! Reads go through [`RegionPeer::read_index`]: the leader confirms with a quorum that it
//! still leads (or relies on its lease), and the read is released once everything committed
//! at that point is applied, so a deposed leader never serves a stale value. A new leader
//! serves nothing before an entry of its own term is applied ([`RegionPeer::is_ready_leader`]):
//! until then its engine may lack entries committed by its predecessors.
//!
//! A ready that carries a snapshot is held: the apply side installs the snapshot (after
//! everything handed to it before), and only then are the ready's messages sent and the raft
//! core advanced.
//!
//! ## Caveats
//!
//! - Snapshots are built by the store's region worker when the core asks (see `snap.rs` and
//!   `driver.rs`; inline where there is no worker, as in the deterministic tests). The leader
//!   proposes `CompactLog` every `raft_log_gc_tick_interval` ticks once
//!   `raft_log_gc_count_limit` applied entries are in the log; the raft side deletes the
//!   entries in its next round once the apply side has applied the command.
//! - `ChangePeer` adds or removes one peer at a time. A peer that removes itself sends one more
//!   round of messages (a leader's hand-over) and is then destroyed by the apply side.

use std::collections::VecDeque;

use super::apply::{AdminResult, ApplyResult, ApplyTask, check_command};
use super::cmd::{
    AdminCommand, CommandBody, CommandHeader, CommandResponse, CommandResult, RaftCommand, RaftstoreError,
};
use super::meta::{Peer, RaftLocalState, Region, TruncatedState};
use super::peer_storage::{PeerStorage, PeerStorageError, SnapshotGenerator};
use crate::raft::{
    ConfChange, ConfChangeType, Config, Entry, Message, RawNode, Ready, StateRole, Storage as _,
};
use crate::storage::{Engine, WriteBatch};

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
    /// The region version the read was asked under: a split since voids it (the key may be
    /// another region's now, led elsewhere).
    version: u64,
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

/// A peer's ready, taken in [`RegionPeer::collect_ready`] and finished in
/// [`RegionPeer::on_persisted`].
pub struct PeerReady {
    ready: Ready,
    /// Whether the round's write must be synced for this peer.
    pub must_sync: bool,
    /// Messages that may leave before the round's write is durable: a leader's appends and
    /// heartbeats (see [`RawNode::take_early_messages`]).
    pub early: Vec<Message>,
    /// Committed entries that an earlier round already made durable here, which the caller
    /// may hand to the apply side before this round's write (see
    /// [`RegionPeer::collect_ready`]); if it leaves them, [`RegionPeer::on_persisted`] returns
    /// them first.
    pub early_apply: Option<ApplyTask>,
    /// The last of those entries' index.
    early_applying: Option<u64>,
}

/// A ready whose snapshot the apply side is installing.
struct HeldReady {
    ready: Ready,
    raft_state: RaftLocalState,
}

pub struct RegionPeer<E: Engine> {
    store_id: u64,
    me: Peer,
    raft: RawNode<PeerStorage<E>>,
    /// Waiting proposals, in strictly increasing index order.
    proposals: VecDeque<Proposal>,
    /// Write commands checked and waiting for the round's one proposal (see [`Self::propose`]).
    queued: Vec<(RaftCommand, Callback)>,
    options: PeerOptions,
    ticks_since_log_gc: usize,
    /// Reads checked and waiting for the round's one read index request (see
    /// [`Self::read_index`]); their `ctx` is set when it is asked.
    queued_reads: Vec<PendingRead>,
    /// Reads waiting for their read index (`None`) or for it to be applied, by context.
    reads: VecDeque<PendingRead>,
    next_read_ctx: u64,
    /// The term of the last entry the apply side applied.
    applied_term: u64,
    /// The hard state last written, to tell whether a round must sync.
    persisted_hard_state: crate::raft::HardState,
    /// A snapshot being installed by the apply side.
    held: Option<HeldReady>,
    /// A log compaction applied but whose entries this side has not deleted yet.
    pending_compaction: Option<TruncatedState>,
    /// Regions split off this one that the store has yet to create peers for (and whether the
    /// apply side wrote their initial state).
    splits: Vec<(Region, bool)>,
    /// A membership change removed this peer: it is destroyed after its next messages leave.
    removed: bool,
    /// The apply side was asked to destroy this peer.
    destroying: bool,
    /// The apply side destroyed this peer; the store drops it.
    destroyed: bool,
    /// When a message from each other peer last arrived (for reporting down peers).
    heard: std::collections::HashMap<u64, std::time::Instant>,
    created: std::time::Instant,
}

/// How long a leader may go without a message from a peer before reporting it down.
pub const PEER_DOWN_SECS: u64 = 60;

/// How one region's replication looks from this store's peer (region heartbeats and `INFO`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerHealth {
    /// When leading: peers so far behind that they need a snapshot (their next entry is
    /// compacted away here, or a snapshot is on its way to them).
    pub pending_peers: Vec<Peer>,
    /// When leading: peers not heard from for [`PEER_DOWN_SECS`].
    pub down_peers: Vec<Peer>,
    /// Entries committed but not yet applied here.
    pub apply_lag: u64,
    /// When leading: how many entries the furthest-behind peer lacks of this log.
    pub follower_lag: u64,
}

fn storage_error(e: PeerStorageError) -> RaftstoreError {
    match e {
        PeerStorageError::RegionNotFound(id) => RaftstoreError::RegionNotFound(id),
        PeerStorageError::Engine(e) => e.into(),
        PeerStorageError::Decode(e) => RaftstoreError::Corrupt(e),
    }
}

impl<E: Engine + Clone> RegionPeer<E> {
    /// Opens this store's peer of region `region_id` from the engine (after bootstrap, or on
    /// restart). `seed` drives the peer's election timeouts. The apply side must be given
    /// [`RegionPeer::register_task`] before any task of this peer.
    pub fn open(
        store_id: u64,
        engine: E,
        region_id: u64,
        options: PeerOptions,
        seed: u64,
    ) -> Result<Self, RaftstoreError> {
        let storage = PeerStorage::open(engine, region_id).map_err(storage_error)?;
        let me = storage
            .region()
            .peer_on_store(store_id)
            .ok_or(RaftstoreError::RegionNotFound(region_id))?;
        Self::start(store_id, me, storage, options, seed)
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
        let storage = PeerStorage::uninitialized(engine, region_id).map_err(storage_error)?;
        Self::start(store_id, me, storage, options, seed)
    }

    fn start(
        store_id: u64,
        me: Peer,
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
        let applied = storage.apply_state().applied_index;
        config.applied = applied;
        config.max_size_per_msg = options.max_size_per_msg;
        config.max_inflight_msgs = options.max_inflight_msgs;
        config.pre_vote = true;
        config.check_quorum = true;
        config.defer_commit_broadcast = true;
        let applied_term = if storage.is_initialized() {
            storage.term(applied).map_err(|e| {
                RaftstoreError::Corrupt(super::meta::DecodeError {
                    what: "raft log",
                    detail: format!("no term for the applied index {applied}: {e}"),
                })
            })?
        } else {
            0
        };
        let persisted_hard_state = storage.raft_state().hard_state;
        let raft =
            RawNode::new(&config, storage).map_err(|e| RaftstoreError::InvalidCommand(e.to_string()))?;
        Ok(RegionPeer {
            store_id,
            me,
            raft,
            proposals: VecDeque::new(),
            queued: Vec::new(),
            options,
            ticks_since_log_gc: 0,
            queued_reads: Vec::new(),
            reads: VecDeque::new(),
            next_read_ctx: 0,
            applied_term,
            persisted_hard_state,
            held: None,
            pending_compaction: None,
            splits: Vec::new(),
            removed: false,
            destroying: false,
            destroyed: false,
            heard: std::collections::HashMap::new(),
            created: std::time::Instant::now(),
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

    /// The task that starts the apply side for this peer, if it has data to apply to.
    pub fn register_task(&self) -> Option<ApplyTask> {
        let storage = self.storage();
        storage.is_initialized().then(|| ApplyTask::Register {
            region: storage.region().clone(),
            peer_id: self.me.id,
            apply_state: storage.apply_state(),
            applied_term: self.applied_term,
        })
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

    /// The regions split off this one since the last call, for the store to start peers of.
    pub fn take_splits(&mut self) -> Vec<(Region, bool)> {
        std::mem::take(&mut self.splits)
    }

    /// Whether the apply side destroyed this peer: the store drops it.
    pub fn is_destroyed(&self) -> bool {
        self.destroyed
    }

    /// Whether this peer is on its way out (removed, or being destroyed).
    pub fn is_removed(&self) -> bool {
        self.removed || self.destroying || self.destroyed
    }

    pub fn is_leader(&self) -> bool {
        self.raft.raft.state == StateRole::Leader
    }

    /// Whether this peer leads and has applied an entry of its own term, so its engine holds
    /// everything committed before its term: only then may it serve reads or compute writes
    /// from its engine.
    pub fn is_ready_leader(&self) -> bool {
        self.is_leader() && self.applied_term == self.term() && !self.is_removed()
    }

    /// The leader this peer knows of, if any.
    pub fn leader(&self) -> Option<Peer> {
        let lead = self.raft.raft.lead;
        self.region().peers.iter().copied().find(|p| p.id == lead)
    }

    pub fn term(&self) -> u64 {
        self.raft.raft.term
    }

    /// The highest index the apply side reported applied.
    pub fn applied_index(&self) -> u64 {
        self.storage().apply_state().applied_index
    }

    pub fn storage(&self) -> &PeerStorage<E> {
        &self.raft.raft.raft_log.store
    }

    /// Has snapshots built by `generator` (the store's region worker) instead of inline.
    pub fn set_snapshot_generator(&mut self, generator: SnapshotGenerator) {
        self.raft.raft.raft_log.store.set_snapshot_generator(generator);
    }

    /// Hands over a snapshot the region worker built (or `None`: it could not).
    pub fn set_generated_snapshot(&mut self, snapshot: Option<crate::raft::message::Snapshot>) {
        self.raft.raft.raft_log.store.set_generated_snapshot(snapshot);
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
        self.heard.insert(message.from, std::time::Instant::now());
        // Errors here are messages from peers the core does not know; dropping them is safe.
        let _ = self.raft.step(message);
    }

    /// See [`PeerHealth`].
    pub fn health(&self) -> PeerHealth {
        let raft = &self.raft.raft;
        let mut health = PeerHealth {
            apply_lag: raft.raft_log.committed.saturating_sub(raft.raft_log.applied),
            ..PeerHealth::default()
        };
        if !self.is_leader() {
            return health;
        }
        let first = raft.raft_log.first_index();
        let last = raft.raft_log.last_index();
        let down_after = std::time::Duration::from_secs(PEER_DOWN_SECS);
        for peer in self.region().peers.iter().filter(|p| p.id != self.me.id) {
            if let Some(progress) = raft.prs.progress.get(&peer.id) {
                health.follower_lag = health.follower_lag.max(last.saturating_sub(progress.matched));
                if progress.state == crate::raft::progress::ProgressState::Snapshot
                    || progress.matched + 1 < first
                {
                    health.pending_peers.push(*peer);
                }
            }
            let heard = self.heard.get(&peer.id).copied().unwrap_or(self.created);
            if heard.elapsed() > down_after {
                health.down_peers.push(*peer);
            }
        }
        health
    }

    /// Proposes `command`; `callback` gets the outcome once it is known: at once if the command
    /// is refused here, otherwise when its log slot is applied.
    ///
    /// A write command waits in `queued` until the round collects this peer's ready
    /// ([`Self::collect_ready`]), so that every write of a round goes to the raft core as one
    /// proposal: one append message per follower per round, not one per command. An admin
    /// command first sends the queued writes on, so the log keeps the order of arrival.
    pub fn propose(&mut self, command: RaftCommand, callback: Callback) {
        if let Err(e) = self.check_proposal(&command) {
            callback(Err(e));
            return;
        }
        if matches!(command.body, CommandBody::Write(_)) {
            self.queued.push((command, callback));
            return;
        }
        self.propose_queued();
        let index = self.raft.raft.raft_log.last_index() + 1;
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
        match proposed {
            Ok(()) => self.track_proposals(index, vec![callback]),
            Err(_) => callback(Err(self.not_leader())),
        }
    }

    /// Proposes the queued write commands as one batch of entries. Each is checked again: the
    /// round may have changed the leadership or the epoch since it was queued.
    fn propose_queued(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        let mut datas = Vec::with_capacity(self.queued.len());
        let mut callbacks = Vec::with_capacity(self.queued.len());
        for (command, callback) in std::mem::take(&mut self.queued) {
            match self.check_proposal(&command) {
                Ok(()) => {
                    datas.push(command.encode());
                    callbacks.push(callback);
                }
                Err(e) => callback(Err(e)),
            }
        }
        if datas.is_empty() {
            return;
        }
        let index = self.raft.raft.raft_log.last_index() + 1;
        match self.raft.propose_many(datas) {
            Ok(()) => self.track_proposals(index, callbacks),
            Err(_) => {
                for callback in callbacks {
                    callback(Err(self.not_leader()));
                }
            }
        }
    }

    /// Records the callbacks of entries just appended from `first` on, in this term.
    fn track_proposals(&mut self, first: u64, callbacks: Vec<Callback>) {
        let term = self.raft.raft.term;
        debug_assert_eq!(
            self.raft.raft.raft_log.last_index(),
            first + callbacks.len() as u64 - 1
        );
        // This leader's log now ends with these entries: anything proposed earlier at `first`
        // or above lost its slot when another leader overwrote it.
        while self.proposals.back().is_some_and(|p| p.index >= first) {
            let stale = self.proposals.pop_back().expect("checked");
            (stale.callback)(Err(RaftstoreError::StaleCommand));
        }
        for (i, callback) in callbacks.into_iter().enumerate() {
            self.proposals.push_back(Proposal {
                index: first + i as u64,
                term,
                callback,
            });
        }
    }

    /// Asks for a linearizable read (ReadIndex, Raft thesis §6.4): `callback` hears
    /// `Readable` once this peer, confirmed as leader by a quorum after the request arrived,
    /// has applied everything committed at that moment. Refused like a write if this peer
    /// does not lead or the header's epoch is stale; `StaleCommand` if it loses leadership
    /// before the confirmation (the read may be retried).
    ///
    /// Like writes, the reads of a round wait in `queued_reads` until the round collects this
    /// peer's ready and then share one request to the raft core: one heartbeat per follower
    /// per round confirms them all. The commit index the core records then is at least the
    /// one each read arrived under, and the heartbeats leave after every one arrived.
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
        self.queued_reads.push(PendingRead {
            ctx: Vec::new(),
            version: header.epoch.version,
            term: self.term(),
            index: None,
            callback,
        });
    }

    /// Asks the raft core for one read index on behalf of every queued read. Reads queued
    /// in a term this peer no longer leads in hear `StaleCommand` (they may be retried).
    fn ask_queued_reads(&mut self) {
        if self.queued_reads.is_empty() {
            return;
        }
        let (leading, term) = (self.is_leader(), self.term());
        self.next_read_ctx += 1;
        let ctx = self.next_read_ctx.to_be_bytes().to_vec();
        let mut asked = false;
        for mut read in std::mem::take(&mut self.queued_reads) {
            if !leading || read.term != term {
                (read.callback)(Err(RaftstoreError::StaleCommand));
                continue;
            }
            read.ctx = ctx.clone();
            self.reads.push_back(read);
            asked = true;
        }
        if asked {
            self.raft.read_index(ctx);
        }
    }

    /// Answers the reads whose index is applied; fails the unconfirmed ones if this peer no
    /// longer leads (the core drops their requests).
    fn serve_reads(&mut self) {
        let applied = self.applied_index();
        let (leading, term) = (self.is_leader(), self.term());
        let version = self.region().epoch.version;
        let mut waiting = VecDeque::with_capacity(self.reads.len());
        let mut split_away = Vec::new();
        for read in self.reads.drain(..) {
            match read.index {
                Some(_) if read.version != version => split_away.push(read.callback),
                Some(index) if index <= applied => (read.callback)(Ok(CommandResponse::Readable)),
                None if !leading || read.term != term => (read.callback)(Err(RaftstoreError::StaleCommand)),
                _ => waiting.push_back(read),
            }
        }
        self.reads = waiting;
        for callback in split_away {
            callback(Err(RaftstoreError::EpochNotMatch {
                current: vec![self.region().clone()],
            }));
        }
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
        if self.is_removed() {
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
        // A command computed under one term must not be proposed in another: in between, a
        // leader of another term may have committed what the command did not see.
        if header.term != 0 && header.term != self.term() {
            return Err(RaftstoreError::StaleCommand);
        }
        check_command(self.region(), header, &command.body)?;
        if let CommandBody::Admin(AdminCommand::ChangePeer { peer, .. }) = &command.body {
            // At most one membership change in flight, counted until the apply side reports
            // it applied (the raft core's rule, checked here so the proposer hears why).
            if self.raft.raft.pending_conf_index > self.applied_index() {
                return Err(RaftstoreError::InvalidCommand(format!(
                    "a membership change is already in progress (changing peer {})",
                    peer.id
                )));
            }
        }
        Ok(())
    }

    /// Step 1 of a round: takes what the raft core has ready and writes its log entries and
    /// hard state into `batch`. `None` if there is nothing, or the peer is waiting for the
    /// apply side.
    pub fn collect_ready(&mut self, batch: &mut WriteBatch) -> Option<PeerReady> {
        if self.destroying || self.destroyed {
            let region_id = self.region().id;
            for (_, callback) in self.queued.drain(..) {
                callback(Err(RaftstoreError::RegionNotFound(region_id)));
            }
            for read in self.queued_reads.drain(..) {
                (read.callback)(Err(RaftstoreError::RegionNotFound(region_id)));
            }
            return None;
        }
        self.propose_queued();
        self.ask_queued_reads();
        if self.held.is_some() {
            return None;
        }
        if let Some(truncated) = self.pending_compaction.take() {
            self.raft.raft.raft_log.store.compact_to(truncated, batch);
        }
        if !self.raft.has_ready() {
            return None;
        }
        let mut ready = self.raft.ready();
        if ready.snapshot.is_some() {
            // The apply side writes the snapshot, the entries after it and the hard state.
            return Some(PeerReady {
                ready,
                must_sync: false,
                early: Vec::new(),
                early_apply: None,
                early_applying: None,
            });
        }
        let storage = &mut self.raft.raft.raft_log.store;
        storage.append(&ready.entries, batch);
        let mut must_sync = !ready.entries.is_empty();
        if let Some(hard_state) = ready.hard_state {
            storage.set_hard_state(hard_state, batch);
            must_sync |= hard_state.term != self.persisted_hard_state.term
                || hard_state.vote != self.persisted_hard_state.vote;
            self.persisted_hard_state = hard_state;
        }
        let early = self.raft.take_early_messages(&mut ready);
        // Committed entries this log already holds durably (a leader's entries that followers
        // acknowledged, a follower's entries whose commit it just learned) need not wait for
        // this round's write and fsync: they go to the apply side now, so a client's reply
        // does not wait for the fsync of the entries proposed after its own. Only those of
        // this round's own entries (a one-voter region commits on append) wait. The apply
        // side may then write an applied index before the round writes the commit index that
        // covers it; `PeerStorage::open` mends that after a crash.
        let stable = self.raft.raft.raft_log.stabled();
        let durable = ready.committed_entries.partition_point(|e| e.index <= stable);
        let (mut early_apply, mut early_applying) = (None, None);
        if durable > 0 {
            let entries: Vec<Entry> = ready.committed_entries.drain(..durable).collect();
            early_applying = Some(entries[durable - 1].index);
            early_apply = Some(self.hand_out(entries));
        }
        Some(PeerReady {
            ready,
            must_sync,
            early,
            early_apply,
            early_applying,
        })
    }

    /// Step 3 of a round, once the batch is written: the messages to send now, and the tasks
    /// for the apply side.
    pub fn on_persisted(&mut self, ready: PeerReady) -> (Vec<Message>, Vec<ApplyTask>) {
        let mut tasks: Vec<ApplyTask> = ready.early_apply.into_iter().collect();
        if let Some(last) = ready.early_applying {
            self.raft.raft.raft_log.applying_to(last);
        }
        let mut ready = ready.ready;
        self.note_read_states(&mut ready);
        if let Some(snapshot) = ready.snapshot.clone() {
            let storage = self.storage();
            let raft_state = storage.raft_state_after_snapshot(&snapshot, ready.hard_state, &ready.entries);
            let task = ApplyTask::Snapshot {
                region_id: self.region().id,
                peer_id: self.me.id,
                snapshot,
                raft_state,
                entries: ready.entries.clone(),
            };
            self.held = Some(HeldReady { ready, raft_state });
            return (Vec::new(), vec![task]);
        }
        let messages = std::mem::take(&mut ready.messages);
        tasks.extend(self.hand_out_committed(&mut ready));
        self.raft.advance_append(ready);
        self.serve_reads();
        tasks.extend(self.maybe_destroy());
        (messages, tasks)
    }

    fn note_read_states(&mut self, ready: &mut Ready) {
        for state in std::mem::take(&mut ready.read_states) {
            for read in self.reads.iter_mut().filter(|r| r.ctx == state.request_ctx) {
                read.index = Some(state.index);
            }
        }
    }

    /// The committed entries of `ready` as an apply task (see [`RegionPeer::hand_out`]).
    fn hand_out_committed(&mut self, ready: &mut Ready) -> Option<ApplyTask> {
        let entries = std::mem::take(&mut ready.committed_entries);
        (!entries.is_empty()).then(|| self.hand_out(entries))
    }

    /// Committed `entries` (at least one) as an apply task, with the callbacks of the
    /// proposals they settle; proposals whose slot another entry took hear `StaleCommand` now.
    fn hand_out(&mut self, entries: Vec<Entry>) -> ApplyTask {
        let last = entries[entries.len() - 1].index;
        let first = entries[0].index;
        let mut callbacks = Vec::new();
        while self.proposals.front().is_some_and(|p| p.index <= last) {
            let proposal = self.proposals.pop_front().expect("checked");
            let entry = (proposal.index >= first).then(|| &entries[(proposal.index - first) as usize]);
            match entry {
                Some(entry) if entry.term == proposal.term => {
                    callbacks.push((proposal.index, proposal.callback))
                }
                _ => (proposal.callback)(Err(RaftstoreError::StaleCommand)),
            }
        }
        ApplyTask::Entries {
            region_id: self.region().id,
            entries,
            callbacks,
        }
    }

    /// Once a removal's last messages are out: asks the apply side to destroy this peer.
    /// Waiting proposals are answered `Undetermined` (the group may still commit them without
    /// this peer), waiting reads `StaleCommand`.
    fn maybe_destroy(&mut self) -> Option<ApplyTask> {
        if !self.removed || self.destroying {
            return None;
        }
        Some(self.destroy_task())
    }

    /// Asks the apply side to destroy this peer because its region moved on without it: it
    /// was removed while it was away, and the region now has another peer on this store (see
    /// `Store::on_raft_message`).
    pub fn destroy_task(&mut self) -> ApplyTask {
        self.destroying = true;
        for proposal in self.proposals.drain(..) {
            (proposal.callback)(Err(RaftstoreError::Undetermined));
        }
        let region_id = self.region().id;
        for (_, callback) in self.queued.drain(..) {
            callback(Err(RaftstoreError::RegionNotFound(region_id)));
        }
        for read in self.queued_reads.drain(..).chain(self.reads.drain(..)) {
            (read.callback)(Err(RaftstoreError::StaleCommand));
        }
        tracing::info!(
            region = self.region().id,
            peer = self.me.id,
            "destroying a removed peer"
        );
        ApplyTask::Destroy {
            region_id: self.region().id,
            region: self.region().clone(),
        }
    }

    /// Follows what the apply side did: returns messages to send now and further tasks.
    pub fn on_apply_result(&mut self, result: ApplyResult) -> (Vec<Message>, Vec<ApplyTask>) {
        match result {
            ApplyResult::Applied {
                applied_index,
                applied_term,
                admin,
                ..
            } => {
                for admin in admin {
                    match admin {
                        AdminResult::ChangePeer { change, region } => {
                            let removes_me = change.change_type == ConfChangeType::RemoveNode
                                && change.node_id == self.me.id;
                            self.raft.raft.raft_log.store.set_region(region);
                            self.raft.apply_conf_change(&change);
                            if removes_me {
                                self.removed = true;
                            }
                        }
                        AdminResult::CompactLog { truncated } => {
                            let newer = self.pending_compaction.is_none_or(|t| t.index < truncated.index);
                            if newer {
                                self.pending_compaction = Some(truncated);
                            }
                        }
                        AdminResult::Split { left, right, created } => {
                            self.raft.raft.raft_log.store.set_region(left);
                            self.splits.push((right, created));
                        }
                    }
                }
                if applied_index > self.raft.raft.raft_log.applied {
                    self.raft.advance_apply_to(applied_index);
                }
                if applied_index >= self.applied_index() {
                    self.applied_term = applied_term;
                }
                self.raft.raft.raft_log.store.set_applied(applied_index);
                self.serve_reads();
                // With nothing left to send (a leader's hand-over would be), go at once.
                let tasks = if self.raft.has_ready() {
                    Vec::new()
                } else {
                    self.maybe_destroy().into_iter().collect()
                };
                (Vec::new(), tasks)
            }
            ApplyResult::SnapshotApplied {
                region, apply_state, ..
            } => {
                let held = self
                    .held
                    .take()
                    .expect("a snapshot applied that this peer asked for");
                let mut ready = held.ready;
                let snapshot = ready.snapshot.as_ref().expect("a held ready has a snapshot");
                let (index, term) = (snapshot.metadata.index, snapshot.metadata.term);
                self.raft.raft.raft_log.store.on_snapshot_applied(
                    region,
                    apply_state,
                    held.raft_state,
                    &ready.entries,
                );
                self.persisted_hard_state = held.raft_state.hard_state;
                self.applied_term = term;
                let messages = std::mem::take(&mut ready.messages);
                let mut tasks = Vec::new();
                tasks.extend(self.hand_out_committed(&mut ready));
                self.raft.advance_append(ready);
                self.settle_covered_by_snapshot(index, term);
                self.serve_reads();
                (messages, tasks)
            }
            ApplyResult::Destroyed { .. } => {
                self.destroyed = true;
                (Vec::new(), Vec::new())
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
}
