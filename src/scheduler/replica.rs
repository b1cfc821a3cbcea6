//! One replica of the scheduler's raft group: the [`SchedulerState`] replicated by our own
//! raft core on the scheduler nodes (as PD keeps its state in etcd).
//!
//! A replica is a thread that owns a [`RawNode`]; everything reaches it through its inbox
//! (raft messages from the other replicas, proposals, reads, stop) and it ticks every
//! `tick_ms`. Each round it persists what the ready asks (snapshot, entries, hard state: one
//! write batch, synced when it holds entries, a snapshot or a new term or vote), then sends the
//! messages, then applies the committed entries to its in-memory state and answers the
//! proposals among them.
//!
//! **The log.** The state is small and changes rarely (a timestamp bound every few seconds,
//! id ranges, stores, region layouts), so the log lives in memory ([`MemStorage`]) and on the
//! engine (column family `raft`, under [`SCHEDULER_PREFIX`]); a restart reads it back. Every
//! `compact_every` applied entries the replica writes its whole state as a snapshot and drops
//! the log below it; that snapshot is also what a lagging replica receives.
//!
//! **Leadership.** Proposals and reads are served only by a *ready* leader: one that has
//! applied an entry of its own term, so its state holds everything committed before it. The
//! group runs with check-quorum and pre-vote: a leader cut off from a majority steps down
//! within an election timeout, and no other replica can be elected before that, so a ready
//! leader's state is current (the lease argument of TiKV's local reads). Elsewhere requests
//! fail with [`SchedulerError::NotLeader`] and the leader the replica knows, if any.
//!
//! **Answers.** A proposal is answered when its entry applies in the term it was proposed in.
//! If the leader loses its term first, the proposal fails with `NotLeader` although its entry
//! may still commit: every scheduler command is safe to send again (the timestamp bound only
//! grows, an id range is merely skipped, stores and regions are upserts, and bootstrap answers
//! "already bootstrapped" with the cluster's id).
//!
//! Membership is the fixed list of scheduler nodes from `cluster.yaml`; the group has no
//! membership changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use super::SCHEDULER_PREFIX;
use super::state::{SchedulerCommand, SchedulerResponse, SchedulerState};
use crate::raft::message::Snapshot;
use crate::raft::{
    ConfState, Config, Entry, HardState, MemStorage, Message, RawNode, Ready, StateRole, Storage,
};
use crate::raftstore::keys::{decode_entry, encode_entry};
use crate::raftstore::meta::{DecodeError, Reader, Writer};
use crate::storage::{Cf, Engine, IterOptions, Snapshot as _, WriteBatch, WriteOptions};

/// Why a scheduler request was not served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// This replica is not the ready leader; `leader` is the replica id it believes leads.
    #[error("this scheduler replica is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    /// The replica stopped (the node is shutting down, or its engine failed).
    #[error("the scheduler replica is stopped")]
    Stopped,
    /// The engine failed.
    #[error("scheduler storage: {0}")]
    Storage(String),
    /// No scheduler replica answered in time.
    #[error("{0}")]
    Unavailable(String),
    /// The cluster is not bootstrapped yet.
    #[error("the cluster is not bootstrapped yet")]
    NotBootstrapped,
    /// The request was refused by the state machine or is malformed.
    #[error("{0}")]
    Refused(String),
}

impl SchedulerError {
    /// Whether asking again (perhaps another replica) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SchedulerError::NotLeader { .. }
                | SchedulerError::Unavailable(_)
                | SchedulerError::NotBootstrapped
        )
    }
}

/// How a replica sends raft messages to the other replicas. Must not block.
pub trait ReplicaTransport: Send + 'static {
    fn send(&mut self, message: Message);
}

/// The settings of one replica.
#[derive(Clone, Debug)]
pub struct ReplicaOptions {
    /// This replica's raft id: its position in `scheduler_nodes`, from 1.
    pub id: u64,
    /// Every replica's id.
    pub peers: Vec<u64>,
    pub tick_ms: u64,
    pub election_tick: usize,
    pub heartbeat_tick: usize,
    /// Snapshot the state and drop the log every this many applied entries.
    pub compact_every: u64,
    pub seed: u64,
}

/// Who leads, as this replica sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub id: u64,
    pub term: u64,
    /// The replica id of the leader, if known.
    pub leader: Option<u64>,
    /// This replica leads and has applied an entry of its term.
    pub ready_leader: bool,
}

type ReadFn = Box<dyn FnOnce(&SchedulerState) + Send>;

enum Inbox {
    Raft(Message),
    Propose(
        SchedulerCommand,
        oneshot::Sender<Result<SchedulerResponse, SchedulerError>>,
    ),
    Read(ReadFn, oneshot::Sender<SchedulerError>),
    /// A read of this replica's own state, leader or not.
    ReadLocal(ReadFn),
    Stop,
}

/// Talks to a running replica. Clones share it.
#[derive(Clone)]
pub struct ReplicaHandle {
    inbox: Sender<Inbox>,
    status: Arc<RwLock<ReplicaStatus>>,
}

impl ReplicaHandle {
    pub fn status(&self) -> ReplicaStatus {
        *self.status.read()
    }

    /// Hands a raft message from another replica to this one.
    pub fn step(&self, message: Message) {
        let _ = self.inbox.send(Inbox::Raft(message));
    }

    /// Queues a proposal of `command`; the receiver gets its answer.
    fn post_propose(
        &self,
        command: SchedulerCommand,
    ) -> Result<oneshot::Receiver<Result<SchedulerResponse, SchedulerError>>, SchedulerError> {
        let (tx, rx) = oneshot::channel();
        self.inbox
            .send(Inbox::Propose(command, tx))
            .map_err(|_| SchedulerError::Stopped)?;
        Ok(rx)
    }

    /// Proposes `command` and waits until it applies (at a ready leader only).
    pub async fn propose(&self, command: SchedulerCommand) -> Result<SchedulerResponse, SchedulerError> {
        self.post_propose(command)?
            .await
            .map_err(|_| SchedulerError::Stopped)?
    }

    /// [`ReplicaHandle::propose`] for a caller that may block (not on a tokio worker).
    pub fn propose_blocking(&self, command: SchedulerCommand) -> Result<SchedulerResponse, SchedulerError> {
        self.post_propose(command)?
            .blocking_recv()
            .map_err(|_| SchedulerError::Stopped)?
    }

    /// Queues `read` for the ready leader: the first receiver gets its value, or else the
    /// second why it did not run.
    #[allow(clippy::type_complexity)]
    fn post_read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&SchedulerState) -> T + Send + 'static,
    ) -> Result<(oneshot::Receiver<T>, oneshot::Receiver<SchedulerError>), SchedulerError> {
        let (value_tx, value_rx) = oneshot::channel();
        let (error_tx, error_rx) = oneshot::channel();
        let read: ReadFn = Box::new(move |state| {
            let _ = value_tx.send(read(state));
        });
        self.inbox
            .send(Inbox::Read(read, error_tx))
            .map_err(|_| SchedulerError::Stopped)?;
        Ok((value_rx, error_rx))
    }

    /// Runs `read` on the state at a ready leader (see the module docs on leadership).
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&SchedulerState) -> T + Send + 'static,
    ) -> Result<T, SchedulerError> {
        let (value, error) = self.post_read(read)?;
        match value.await {
            Ok(value) => Ok(value),
            Err(_) => Err(error.await.unwrap_or(SchedulerError::Stopped)),
        }
    }

    /// [`ReplicaHandle::read`] for a caller that may block.
    pub fn read_blocking<T: Send + 'static>(
        &self,
        read: impl FnOnce(&SchedulerState) -> T + Send + 'static,
    ) -> Result<T, SchedulerError> {
        let (value, error) = self.post_read(read)?;
        match value.blocking_recv() {
            Ok(value) => Ok(value),
            Err(_) => Err(error.blocking_recv().unwrap_or(SchedulerError::Stopped)),
        }
    }

    /// Runs `read` on this replica's own state, which may lag the leader's: for status
    /// reports and tests, never for answers that must be current.
    pub fn read_local_blocking<T: Send + 'static>(
        &self,
        read: impl FnOnce(&SchedulerState) -> T + Send + 'static,
    ) -> Result<T, SchedulerError> {
        let (value_tx, value_rx) = mpsc::channel();
        let read: ReadFn = Box::new(move |state| {
            let _ = value_tx.send(read(state));
        });
        self.inbox
            .send(Inbox::ReadLocal(read))
            .map_err(|_| SchedulerError::Stopped)?;
        value_rx.recv().map_err(|_| SchedulerError::Stopped)
    }
}

/// A running replica; [`SchedulerReplica::stop`] ends its thread.
pub struct SchedulerReplica {
    handle: ReplicaHandle,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl SchedulerReplica {
    /// Opens the replica's log on `engine` and starts its thread. A group of one campaigns at
    /// once.
    pub fn start<E: Engine>(
        engine: E,
        options: ReplicaOptions,
        transport: impl ReplicaTransport,
    ) -> Result<SchedulerReplica, SchedulerError> {
        let status = Arc::new(RwLock::new(ReplicaStatus {
            id: options.id,
            ..ReplicaStatus::default()
        }));
        let mut replica = Replica::open(engine, &options, transport, status.clone())?;
        if options.peers == [options.id] {
            let _ = replica.node.campaign();
        }
        let (inbox, rx) = mpsc::channel();
        let tick = Duration::from_millis(options.tick_ms.max(1));
        let thread = std::thread::Builder::new()
            .name(format!("scheduler-{}", options.id))
            .spawn(move || replica.run(rx, tick))
            .expect("spawning the scheduler replica thread");
        Ok(SchedulerReplica {
            handle: ReplicaHandle { inbox, status },
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn handle(&self) -> &ReplicaHandle {
        &self.handle
    }

    /// Stops the thread after what is already queued; requests after that fail with `Stopped`.
    pub fn stop(&self) {
        let _ = self.handle.inbox.send(Inbox::Stop);
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SchedulerReplica {
    fn drop(&mut self) {
        self.stop();
    }
}

// Keys under the scheduler prefix in the `raft` column family.
const HARD_STATE_KEY: &[u8] = &[SCHEDULER_PREFIX, b'r', b'h'];
const SNAPSHOT_KEY: &[u8] = &[SCHEDULER_PREFIX, b'r', b's'];
const LOG_PREFIX: &[u8] = &[SCHEDULER_PREFIX, b'r', b'l'];

fn log_key(index: u64) -> Vec<u8> {
    let mut key = LOG_PREFIX.to_vec();
    key.extend_from_slice(&index.to_be_bytes());
    key
}

fn encode_hard_state(hs: &HardState) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(24));
    w.u64(hs.term).u64(hs.vote).u64(hs.commit);
    w.0
}

fn decode_hard_state(bytes: &[u8]) -> Result<HardState, DecodeError> {
    let mut r = Reader {
        bytes,
        what: "scheduler hard state",
    };
    let hs = HardState {
        term: r.u64()?,
        vote: r.u64()?,
        commit: r.u64()?,
    };
    r.finish(hs)
}

fn encode_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    let meta = &snapshot.metadata;
    let mut w = Writer(Vec::new());
    w.u64(meta.index)
        .u64(meta.term)
        .u64(meta.conf_state.voters.len() as u64);
    for voter in &meta.conf_state.voters {
        w.u64(*voter);
    }
    w.bytes(&snapshot.data);
    w.0
}

fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
    let mut r = Reader {
        bytes,
        what: "scheduler snapshot",
    };
    let mut snapshot = Snapshot::default();
    snapshot.metadata.index = r.u64()?;
    snapshot.metadata.term = r.u64()?;
    let voters = r.u64()?;
    if voters > 16 {
        return Err(r.error("implausible voter count"));
    }
    let voters = (0..voters).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
    snapshot.metadata.conf_state = ConfState::new(voters);
    snapshot.data = r.bytes()?;
    r.finish(snapshot)
}

/// A proposal's id, carried in front of its command in the log entry.
fn encode_proposal(id: u64, command: &SchedulerCommand) -> Vec<u8> {
    let mut data = id.to_be_bytes().to_vec();
    data.extend_from_slice(&command.encode());
    data
}

struct Pending {
    term: u64,
    reply: oneshot::Sender<Result<SchedulerResponse, SchedulerError>>,
}

struct Replica<E: Engine, T: ReplicaTransport> {
    engine: E,
    node: RawNode<MemStorage>,
    storage: MemStorage,
    transport: T,
    state: SchedulerState,
    applied: u64,
    /// The highest log index written to the engine (entries above it on disk are stale).
    persisted_last: u64,
    compact_every: u64,
    next_proposal: u64,
    /// The term in which this replica, leading, applied an entry of its own term.
    ready_term: u64,
    pending: HashMap<u64, Pending>,
    status: Arc<RwLock<ReplicaStatus>>,
}

fn storage_error(e: impl std::fmt::Display) -> SchedulerError {
    SchedulerError::Storage(e.to_string())
}

impl<E: Engine, T: ReplicaTransport> Replica<E, T> {
    fn open(
        engine: E,
        options: &ReplicaOptions,
        transport: T,
        status: Arc<RwLock<ReplicaStatus>>,
    ) -> Result<Self, SchedulerError> {
        let storage = MemStorage::new_with_conf_state(options.peers.clone());
        let mut state = SchedulerState::default();
        let mut applied = 0;
        if let Some(raw) = engine.get(Cf::Raft, SNAPSHOT_KEY).map_err(storage_error)? {
            let snapshot = decode_snapshot(&raw).map_err(storage_error)?;
            state = SchedulerState::decode(&snapshot.data).map_err(storage_error)?;
            applied = snapshot.metadata.index;
            storage.apply_snapshot(snapshot).map_err(storage_error)?;
        }
        let mut end = LOG_PREFIX.to_vec();
        end.push(0xff);
        let mut entries = Vec::new();
        let snap = engine.snapshot();
        for item in snap.iter(Cf::Raft, IterOptions::range(LOG_PREFIX.to_vec(), end)) {
            let (_, value) = item.map_err(storage_error)?;
            let entry = decode_entry(&value).map_err(storage_error)?;
            if entry.index > applied {
                entries.push(entry);
            }
        }
        let persisted_last = entries.last().map_or(applied, |e| e.index);
        storage.append(&entries);
        if let Some(raw) = engine.get(Cf::Raft, HARD_STATE_KEY).map_err(storage_error)? {
            storage.set_hard_state(decode_hard_state(&raw).map_err(storage_error)?);
        }
        let mut config = Config::new(
            options.id,
            options.peers.clone(),
            options.election_tick,
            options.heartbeat_tick,
            options.seed,
        );
        config.applied = applied;
        config.pre_vote = true;
        config.check_quorum = true;
        let node = RawNode::new(&config, storage.clone()).map_err(storage_error)?;
        Ok(Replica {
            engine,
            node,
            storage,
            transport,
            state,
            applied,
            persisted_last,
            compact_every: options.compact_every.max(1),
            next_proposal: 1,
            ready_term: 0,
            pending: HashMap::new(),
            status,
        })
    }

    fn run(mut self, inbox: Receiver<Inbox>, tick: Duration) {
        let mut next_tick = Instant::now() + tick;
        loop {
            let timeout = next_tick.saturating_duration_since(Instant::now());
            let received = inbox.recv_timeout(timeout);
            let round_started = Instant::now();
            match received {
                Ok(Inbox::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(message) => {
                    self.handle(message);
                    // Take whatever else is queued before doing the round's I/O.
                    let mut stop = false;
                    while let Ok(message) = inbox.try_recv() {
                        if matches!(message, Inbox::Stop) {
                            stop = true;
                            break;
                        }
                        self.handle(message);
                    }
                    if stop {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() >= next_tick {
                self.node.tick();
                next_tick = Instant::now() + tick;
            }
            if let Err(e) = self.on_ready() {
                tracing::error!(error = %e, "the scheduler replica's storage failed; it stops");
                break;
            }
            let took = round_started.elapsed();
            if took >= Duration::from_millis(200) {
                tracing::warn!(took_ms = took.as_millis() as u64, "slow scheduler replica round");
            }
        }
        self.fail_pending();
        *self.status.write() = ReplicaStatus {
            id: self.node.raft.id,
            ..ReplicaStatus::default()
        };
    }

    fn is_ready_leader(&self) -> bool {
        self.status.read().ready_leader
    }

    fn not_leader(&self) -> SchedulerError {
        SchedulerError::NotLeader {
            leader: self.status.read().leader,
        }
    }

    fn handle(&mut self, message: Inbox) {
        match message {
            Inbox::Raft(message) => {
                let _ = self.node.step(message);
            }
            Inbox::Propose(command, reply) => {
                if !self.is_ready_leader() {
                    let _ = reply.send(Err(self.not_leader()));
                    return;
                }
                let id = self.next_proposal;
                self.next_proposal += 1;
                let term = self.node.raft.term;
                match self.node.propose(encode_proposal(id, &command)) {
                    Ok(()) => {
                        self.pending.insert(id, Pending { term, reply });
                    }
                    Err(_) => {
                        let _ = reply.send(Err(self.not_leader()));
                    }
                }
            }
            Inbox::Read(read, error) => {
                if self.is_ready_leader() {
                    read(&self.state);
                } else {
                    let _ = error.send(self.not_leader());
                }
            }
            Inbox::ReadLocal(read) => read(&self.state),
            Inbox::Stop => unreachable!("the run loop handles Stop"),
        }
    }

    fn on_ready(&mut self) -> Result<(), SchedulerError> {
        if !self.node.has_ready() {
            self.refresh_status();
            return Ok(());
        }
        let mut ready = self.node.ready();
        self.persist(&ready)?;
        for message in std::mem::take(&mut ready.messages) {
            self.transport.send(message);
        }
        if let Some(snapshot) = &ready.snapshot {
            self.state = SchedulerState::decode(&snapshot.data).map_err(storage_error)?;
            self.applied = snapshot.metadata.index;
        }
        let committed = std::mem::take(&mut ready.committed_entries);
        for entry in &committed {
            self.apply(entry);
        }
        ready.committed_entries = committed;
        self.node.advance(ready);
        self.refresh_status();
        self.maybe_compact()
    }

    /// Persists the ready's snapshot, entries and hard state in one batch.
    fn persist(&mut self, ready: &Ready) -> Result<(), SchedulerError> {
        let mut batch = WriteBatch::new();
        let mut must_sync = false;
        if let Some(snapshot) = &ready.snapshot {
            batch.put(Cf::Raft, SNAPSHOT_KEY, encode_snapshot(snapshot));
            batch.delete_range(Cf::Raft, log_key(0), log_key(u64::MAX));
            self.storage
                .apply_snapshot(snapshot.clone())
                .map_err(storage_error)?;
            self.persisted_last = snapshot.metadata.index;
            must_sync = true;
        }
        if let Some(last) = ready.entries.last() {
            for entry in &ready.entries {
                batch.put(Cf::Raft, log_key(entry.index), encode_entry(entry));
            }
            // A shorter log replaced a longer one: drop the stale tail on disk.
            for index in last.index + 1..=self.persisted_last {
                batch.delete(Cf::Raft, log_key(index));
            }
            self.persisted_last = last.index;
            self.storage.append(&ready.entries);
            must_sync = true;
        }
        if let Some(hs) = ready.hard_state {
            let old = self.storage.hard_state();
            must_sync |= hs.term != old.term || hs.vote != old.vote;
            batch.put(Cf::Raft, HARD_STATE_KEY, encode_hard_state(&hs));
            self.storage.set_hard_state(hs);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let options = if must_sync {
            WriteOptions::SYNC
        } else {
            WriteOptions::NO_SYNC
        };
        self.engine.write(&batch, options).map_err(storage_error)
    }

    fn apply(&mut self, entry: &Entry) {
        self.applied = entry.index;
        if entry.term == self.node.raft.term && self.node.raft.soft_state().role == StateRole::Leader {
            self.ready_term = entry.term;
        }
        if entry.data.len() < 8 {
            // A new leader's empty entry.
            return;
        }
        let (id, command) = entry.data.split_at(8);
        let id = u64::from_be_bytes(id.try_into().expect("8 bytes"));
        let response = match SchedulerCommand::decode(command) {
            Ok(command) => Ok(self.state.apply(&command)),
            Err(e) => {
                tracing::error!(index = entry.index, error = %e, "an undecodable scheduler command; skipped");
                Err(SchedulerError::Refused(e.to_string()))
            }
        };
        if let Some(pending) = self.pending.remove(&id) {
            if pending.term == entry.term {
                let _ = pending.reply.send(response);
            } else {
                self.pending.insert(id, pending);
            }
        }
    }

    fn refresh_status(&mut self) {
        let raft = &self.node.raft;
        let soft = raft.soft_state();
        let leader = (soft.leader_id != 0).then_some(soft.leader_id);
        let is_leader = soft.role == StateRole::Leader;
        let term = raft.term;
        let ready_leader = is_leader && self.ready_term == term;
        let new = ReplicaStatus {
            id: raft.id,
            term,
            leader,
            ready_leader,
        };
        let changed = *self.status.read() != new;
        if changed {
            *self.status.write() = new;
        }
        // Proposals of an older term will never be answered by their entry.
        if !self.pending.is_empty() && (!is_leader || self.pending.values().any(|p| p.term != term)) {
            let stale: Vec<u64> = self
                .pending
                .iter()
                .filter(|(_, p)| !is_leader || p.term != term)
                .map(|(&id, _)| id)
                .collect();
            for id in stale {
                if let Some(p) = self.pending.remove(&id) {
                    let _ = p.reply.send(Err(SchedulerError::NotLeader { leader }));
                }
            }
        }
    }

    fn maybe_compact(&mut self) -> Result<(), SchedulerError> {
        let first = self.storage.first_index().map_err(storage_error)?;
        if self.applied < first + self.compact_every {
            return Ok(());
        }
        let data = self.state.encode();
        self.storage
            .compact(self.applied, data.clone())
            .map_err(storage_error)?;
        let snapshot = self.storage.snapshot(self.applied).map_err(storage_error)?;
        let mut batch = WriteBatch::new();
        batch.put(Cf::Raft, SNAPSHOT_KEY, encode_snapshot(&snapshot));
        batch.delete_range(Cf::Raft, log_key(0), log_key(self.applied + 1));
        self.engine
            .write(&batch, WriteOptions::SYNC)
            .map_err(storage_error)
    }

    fn fail_pending(&mut self) {
        for (_, p) in self.pending.drain() {
            let _ = p.reply.send(Err(SchedulerError::Stopped));
        }
    }
}
