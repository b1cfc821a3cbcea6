//! The store's driver: the threads that run a [`Store`] for real, and the [`StoreHandle`] the
//! rest of the node talks to it through.
//!
//! **Threads.** Each store runs three threads of its own, never tokio workers (a blocking fsync
//! there would stall every connection):
//!
//! - the *raft thread* owns the `Store` and every peer's raft state. It waits on one inbox for
//!   raft messages, proposals, read requests and apply results, with a timeout for the next
//!   tick (`tick_ms`); then it runs a round: step what arrived, gather every peer's ready
//!   (sending the leaders' appends, and handing the committed entries the log already held
//!   durably to the apply thread), write all their log entries and hard states in **one**
//!   batch (synced if any peer needs it: group commit across regions), send the other
//!   messages, and hand the remaining committed entries to the apply thread.
//! - the *apply thread* owns the [`Applier`]: it applies what it is handed, in order, runs the
//!   proposers' callbacks after each write, and sends the results back to the raft thread.
//! - the *region worker* builds the snapshots the raft core asks for (reading an engine
//!   snapshot of the region's data and apply state) and hands them back to the raft thread.
//!
//! A leader's appends (and heartbeats) leave *before* the round's batch is written, so the
//! followers write and fsync the entries while the leader fsyncs its own copy: a write waits for
//! about one fsync, not two in a row. The leader still never counts an entry as stored before it
//! is: the followers' answers are stepped in a later round, after this round's write returned
//! (see `RawNode::take_early_messages`). Every other message (votes, a follower's
//! acknowledgements, snapshots) leaves only after the write is durable.
//!
//! **Handles.** [`StoreHandle`] is cheap to clone and `Send`: it posts to the raft thread's
//! inbox and awaits a oneshot answer. It also keeps a view of the store's regions (range,
//! epoch, peers, leadership, term), refreshed by the raft thread after each round that changed
//! any, for routing a key to its region without a round trip, and for two fast paths:
//!
//! - a write command's proposal header comes from the view when it shows this store as the
//!   region's ready leader. If the view is stale, the header's term is: the proposal is then
//!   refused (`StaleCommand`), never committed from a state the command did not see.
//! - a read of a region whose only voter is this store is served from the engine at once: no
//!   other leader can exist, and every write acknowledged so far was applied here first. Other
//!   regions read through ReadIndex.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use super::apply::{Applier, ApplyResult, ApplyTask};
use super::bootstrap::{StoreIdent, bootstrap_store, first_region, load_ident};
use super::cmd::{CommandBody, CommandHeader, CommandResult, Mutation, RaftCommand, RaftstoreError};
use super::meta::Peer;
use super::meta::Region;
use super::peer::PeerOptions;
use super::peer::{Callback, PeerHealth};
use super::store::NoTransport;
use super::store::{RaftMessage, Store, Transport};
use crate::storage::{Cf, Engine, WriteOptions};

/// Most inbox messages handled before a round runs, so a flood of input cannot starve it.
const MAX_MESSAGES_PER_ROUND: usize = 4_096;
/// A round that takes this long is logged: followers wait a whole election timeout (one
/// second by default) before they campaign, so rounds near it cost leaderships.
const SLOW_ROUND: Duration = Duration::from_millis(200);

/// Where a round's time went, for the slow-round warning: stepping the inbox's messages
/// (and ticking), collecting the readies (which reads the entries sent to followers), writing
/// the batch, syncing it. The rest is sending and handing out.
#[derive(Default)]
struct RoundPhases {
    step: Duration,
    /// Per kind of message: how many, and how long they took together.
    by_kind: Vec<(MsgKind, usize, Duration)>,
    collect: Duration,
    write: Duration,
    sync: Duration,
}

impl RoundPhases {
    fn note(&mut self, kind: MsgKind, took: Duration) {
        match self.by_kind.iter_mut().find(|(k, _, _)| *k == kind) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 += took;
            }
            None => self.by_kind.push((kind, 1, took)),
        }
    }

    /// The kinds of message handled, the costliest first: `kind ×count ms`.
    fn by_kind_summary(&self) -> String {
        let mut kinds = self.by_kind.clone();
        kinds.sort_by_key(|k| std::cmp::Reverse(k.2));
        let parts: Vec<String> = kinds
            .iter()
            .map(|(kind, count, took)| format!("{kind} ×{count} {}ms", took.as_millis()))
            .collect();
        parts.join(", ")
    }
}

/// What an inbox message is, for the slow-round warning.
#[derive(Clone, Copy, PartialEq)]
enum MsgKind {
    Raft(crate::raft::MessageType),
    Local(&'static str),
}

impl std::fmt::Display for MsgKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MsgKind::Raft(msg_type) => write!(f, "raft {msg_type:?}"),
            MsgKind::Local(what) => f.write_str(what),
        }
    }
}

impl StoreMsg {
    fn kind(&self) -> MsgKind {
        let local = match self {
            StoreMsg::Raft(m) => return MsgKind::Raft(m.message.msg_type),
            StoreMsg::Propose(..) => "propose",
            StoreMsg::ReadIndex(..) => "read index",
            StoreMsg::LeaderHeader(..) => "leader header",
            StoreMsg::Campaign(_) => "campaign",
            StoreMsg::TransferLeader { .. } => "transfer leader",
            StoreMsg::SnapshotGenerated(..) => "snapshot generated",
            StoreMsg::SnapshotStatus { .. } => "snapshot status",
            StoreMsg::ApplyResults(_) => "apply results",
            StoreMsg::Health(_) => "health",
            StoreMsg::Stop => "stop",
        };
        MsgKind::Local(local)
    }
}

/// What the raft thread's inbox carries.
enum StoreMsg {
    Raft(RaftMessage),
    Propose(RaftCommand, Callback),
    ReadIndex(CommandHeader, Callback),
    /// The header a write command computed now may propose with, if this store's peer of the
    /// region is a leader ready to serve (see `RegionPeer::is_ready_leader`).
    LeaderHeader(u64, HeaderCallback),
    Campaign(u64),
    /// Asks the leader of a region to hand leadership to one of its peers.
    TransferLeader {
        region_id: u64,
        to_peer: u64,
    },
    /// The region worker built a snapshot of a region (or could not).
    SnapshotGenerated(u64, Option<crate::raft::message::Snapshot>),
    /// How sending a snapshot to a peer of a region ended.
    SnapshotStatus {
        region_id: u64,
        to_peer: u64,
        failed: bool,
    },
    ApplyResults(Vec<ApplyResult>),
    /// Every region's replication health, by region id.
    Health(HealthCallback),
    Stop,
}

type HealthCallback = Box<dyn FnOnce(HashMap<u64, PeerHealth>) + Send>;

type HeaderCallback = Box<dyn FnOnce(Result<CommandHeader, RaftstoreError>) + Send>;

/// A region as the handle's view holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionView {
    pub region: Region,
    /// This store's peer of the region.
    pub peer: Peer,
    /// Whether this store's peer led the region at the last refresh.
    pub is_leader: bool,
    /// Whether it led and had applied an entry of its term (see
    /// `RegionPeer::is_ready_leader`).
    pub is_ready_leader: bool,
    /// The peer's term at the last refresh.
    pub term: u64,
}

impl RegionView {
    /// The header of a command proposed under this view.
    fn header(&self) -> CommandHeader {
        CommandHeader {
            region_id: self.region.id,
            peer: self.peer,
            epoch: self.region.epoch,
            term: self.term,
        }
    }

    /// Whether a read may be served here without asking the raft thread (see the module
    /// docs).
    pub fn reads_locally(&self) -> bool {
        self.is_ready_leader && self.region.peers.len() == 1
    }
}

/// Talks to a running store's raft thread. See the module docs.
#[derive(Clone)]
pub struct StoreHandle<E: Engine> {
    inbox: Sender<StoreMsg>,
    engine: E,
    store_id: u64,
    /// Regions by start key.
    regions: Arc<RwLock<BTreeMap<Vec<u8>, RegionView>>>,
    /// What this store's proposals wrote, by region.
    flows: Arc<Mutex<HashMap<u64, WriteFlow>>>,
}

/// Data written through a store's proposals to one region since the store started: the
/// keys and values of its mutations, and how many of them went to the write column family
/// (one per committed or rolled back version). Counted at the proposing leader once the
/// write is applied; the split checker and region heartbeats look at how it grows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteFlow {
    pub bytes: u64,
    pub keys: u64,
}

impl WriteFlow {
    fn of(mutations: &[Mutation]) -> WriteFlow {
        let mut flow = WriteFlow::default();
        for m in mutations {
            match m {
                Mutation::Put { cf, key, value } => {
                    flow.bytes += (key.len() + value.len()) as u64;
                    flow.keys += u64::from(*cf == Cf::Write);
                }
                Mutation::Delete { cf, key } => {
                    flow.bytes += key.len() as u64;
                    flow.keys += u64::from(*cf == Cf::Write);
                }
            }
        }
        flow
    }

    /// What was written since `earlier`.
    pub fn since(self, earlier: WriteFlow) -> WriteFlow {
        WriteFlow {
            bytes: self.bytes.saturating_sub(earlier.bytes),
            keys: self.keys.saturating_sub(earlier.keys),
        }
    }
}

/// The running threads of a store; dropping it does not stop them, [`StoreDriver::stop`] does.
pub struct StoreDriver<E: Engine> {
    handle: StoreHandle<E>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// How the raft thread is paced.
#[derive(Clone, Copy, Debug)]
pub struct DriverOptions {
    pub tick_ms: u64,
}

impl<E: Engine + Clone> StoreDriver<E> {
    /// Starts the raft and apply threads for `store`. Regions with this store as their only
    /// member campaign at once (a cluster of one need not wait out an election timeout).
    pub fn start<T: Transport + Send + 'static>(
        mut store: Store<E, T>,
        engine: E,
        options: DriverOptions,
    ) -> Self {
        let (inbox, raft_rx) = mpsc::channel::<StoreMsg>();
        let (apply_tx, apply_rx) = mpsc::channel::<Vec<ApplyTask>>();
        let regions = Arc::new(RwLock::new(BTreeMap::new()));
        let store_id = store.store_id();
        let solo: Vec<u64> = store
            .regions()
            .filter(|r| r.peers.len() == 1)
            .map(|r| r.id)
            .collect();
        for region_id in solo {
            if let Some(peer) = store.peer_mut(region_id) {
                peer.campaign();
            }
        }
        let results = inbox.clone();
        let (snapshot_requests, snapshot_rx) = mpsc::channel::<u64>();
        let snapshot_requests = Mutex::new(snapshot_requests);
        store.set_snapshot_generator(Arc::new(move |region_id| {
            let _ = snapshot_requests.lock().send(region_id);
        }));
        let region_thread = {
            let engine = engine.clone();
            let inbox = inbox.clone();
            std::thread::Builder::new()
                .name(format!("region-{store_id}"))
                .spawn(move || run_region_worker(engine, snapshot_rx, inbox))
                .expect("spawning the region worker")
        };
        let raft_thread = {
            let engine = engine.clone();
            let regions = regions.clone();
            std::thread::Builder::new()
                .name(format!("raft-{store_id}"))
                .spawn(move || run_raft(store, engine, raft_rx, apply_tx, regions, options))
                .expect("spawning the raft thread")
        };
        let apply_thread = {
            let applier = Applier::new(engine.clone());
            std::thread::Builder::new()
                .name(format!("apply-{store_id}"))
                .spawn(move || run_apply(applier, apply_rx, results))
                .expect("spawning the apply thread")
        };
        StoreDriver {
            handle: StoreHandle {
                inbox,
                engine,
                store_id,
                regions,
                flows: Arc::default(),
            },
            threads: Mutex::new(vec![raft_thread, apply_thread, region_thread]),
        }
    }

    /// Opens the store on `engine` as a cluster of one, bootstrapping it first if it is new:
    /// store 1 of a cluster `new_cluster_id`, holding region 1 (every key) with its only peer
    /// here. Returns the running driver and the store's ident.
    pub fn start_cluster_of_one(
        engine: E,
        new_cluster_id: u64,
        peer_options: PeerOptions,
        options: DriverOptions,
        seed: u64,
    ) -> Result<(Self, StoreIdent), RaftstoreError> {
        let ident = match load_ident(&engine)? {
            Some(ident) => ident,
            None => {
                let ident = StoreIdent {
                    cluster_id: new_cluster_id,
                    store_id: 1,
                };
                let region = first_region(1, vec![Peer { id: 1, store_id: 1 }]);
                bootstrap_store(&engine, ident, Some(&region))?;
                tracing::info!(cluster = ident.cluster_id, "bootstrapped a new cluster of one");
                ident
            }
        };
        let store = Store::open(ident.store_id, engine.clone(), NoTransport, peer_options, seed)?;
        let region_ids: Vec<u64> = store.regions().map(|r| r.id).collect();
        let driver = Self::start(store, engine, options);
        // Its regions elect themselves at once; let nobody in before they can serve.
        for region_id in region_ids {
            driver
                .handle
                .wait_leader_ready(region_id, Duration::from_secs(30))?;
        }
        Ok((driver, ident))
    }

    pub fn handle(&self) -> &StoreHandle<E> {
        &self.handle
    }

    /// Stops both threads after the work already in their queues; requests after that fail
    /// with `StoreStopped`.
    pub fn stop(&self) {
        let threads = std::mem::take(&mut *self.threads.lock());
        if threads.is_empty() {
            return;
        }
        let _ = self.handle.inbox.send(StoreMsg::Stop);
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a store thread panicked");
            }
        }
    }
}

impl<E: Engine> Drop for StoreDriver<E> {
    fn drop(&mut self) {
        let threads = std::mem::take(&mut *self.threads.lock());
        if !threads.is_empty() {
            let _ = self.handle.inbox.send(StoreMsg::Stop);
            for thread in threads {
                let _ = thread.join();
            }
        }
    }
}

/// A callback that completes a oneshot channel.
fn reply_to(sender: oneshot::Sender<CommandResult>) -> Callback {
    Box::new(move |result| {
        let _ = sender.send(result);
    })
}

impl<E: Engine> StoreHandle<E> {
    pub fn store_id(&self) -> u64 {
        self.store_id
    }

    pub fn engine(&self) -> &E {
        &self.engine
    }

    fn post(&self, message: StoreMsg) -> Result<(), RaftstoreError> {
        self.inbox.send(message).map_err(|_| RaftstoreError::StoreStopped)
    }

    /// Proposes `command`; resolves once it is applied (or refused). If the store stops
    /// after taking the proposal, its outcome is `Undetermined`.
    pub async fn propose(&self, command: RaftCommand) -> CommandResult {
        let flow = match &command.body {
            CommandBody::Write(mutations) => Some((command.header.region_id, WriteFlow::of(mutations))),
            CommandBody::Admin(_) => None,
        };
        let (sender, answer) = oneshot::channel();
        self.post(StoreMsg::Propose(command, reply_to(sender)))?;
        let result = answer.await.map_err(|_| RaftstoreError::Undetermined)?;
        if let (Ok(_), Some((region_id, flow))) = (&result, flow) {
            let mut flows = self.flows.lock();
            let total = flows.entry(region_id).or_default();
            total.bytes += flow.bytes;
            total.keys += flow.keys;
        }
        result
    }

    /// Every region's replication health on this store (see [`PeerHealth`]).
    pub async fn health(&self) -> HashMap<u64, PeerHealth> {
        let (sender, answer) = oneshot::channel();
        let callback: HealthCallback = Box::new(move |health| {
            let _ = sender.send(health);
        });
        if self.post(StoreMsg::Health(callback)).is_err() {
            return HashMap::new();
        }
        answer.await.unwrap_or_default()
    }

    /// What this store's proposals have written to `region_id` since it started.
    pub fn written(&self, region_id: u64) -> WriteFlow {
        self.flows.lock().get(&region_id).copied().unwrap_or_default()
    }

    /// Waits until a read of the region under `header` is linearizable here (ReadIndex).
    pub async fn read_index(&self, header: CommandHeader) -> CommandResult {
        let (sender, answer) = oneshot::channel();
        self.post(StoreMsg::ReadIndex(header, reply_to(sender)))?;
        answer.await.map_err(|_| RaftstoreError::StoreStopped)?
    }

    /// The header a write command may propose with, if this store leads the region and has
    /// applied an entry of its term (`LeaderNotReady` while it has not). From the view when it
    /// says so, from the raft thread otherwise.
    pub async fn leader_header(&self, region_id: u64) -> Result<CommandHeader, RaftstoreError> {
        if let Some(view) = self.region_by_id(region_id)
            && view.is_ready_leader
        {
            return Ok(view.header());
        }
        let (sender, answer) = oneshot::channel();
        self.post(StoreMsg::LeaderHeader(
            region_id,
            Box::new(move |header| {
                let _ = sender.send(header);
            }),
        ))?;
        answer.await.map_err(|_| RaftstoreError::StoreStopped)?
    }

    /// Blocks until this store leads `region_id` and is ready to serve, or `timeout` passes.
    /// For start-up, before any client is let in.
    pub fn wait_leader_ready(&self, region_id: u64, timeout: Duration) -> Result<(), RaftstoreError> {
        let deadline = Instant::now() + timeout;
        loop {
            let (sender, answer) = mpsc::channel();
            self.post(StoreMsg::LeaderHeader(
                region_id,
                Box::new(move |header| {
                    let _ = sender.send(header);
                }),
            ))?;
            let error = match answer.recv() {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => e,
                Err(_) => RaftstoreError::StoreStopped,
            };
            if !error.is_retryable() || Instant::now() >= deadline {
                return Err(error);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Delivers a raft message from another store.
    pub fn send_raft_message(&self, message: RaftMessage) -> Result<(), RaftstoreError> {
        self.post(StoreMsg::Raft(message))
    }

    /// Reports how sending a snapshot to `to_peer` of `region_id` ended (for transports that
    /// deliver snapshots after `send` returned).
    pub fn report_snapshot(&self, region_id: u64, to_peer: u64, failed: bool) {
        let _ = self.post(StoreMsg::SnapshotStatus {
            region_id,
            to_peer,
            failed,
        });
    }

    /// Asks this store's peer of `region_id`, if it leads, to hand leadership to `to_peer`
    /// (raft's leader transfer: the target is brought up to date, then told to campaign; the
    /// old leader stops taking proposals meanwhile).
    pub fn transfer_leader(&self, region_id: u64, to_peer: u64) -> Result<(), RaftstoreError> {
        self.post(StoreMsg::TransferLeader { region_id, to_peer })
    }

    /// Makes this store's peer of `region_id` campaign now.
    pub fn campaign(&self, region_id: u64) -> Result<(), RaftstoreError> {
        self.post(StoreMsg::Campaign(region_id))
    }

    /// The region `region_id` on this store, as of the last refresh.
    pub fn region_by_id(&self, region_id: u64) -> Option<RegionView> {
        self.regions
            .read()
            .values()
            .find(|view| view.region.id == region_id)
            .cloned()
    }

    /// The region on this store whose range holds `key`, as of the last refresh.
    pub fn region_for_key(&self, key: &[u8]) -> Option<RegionView> {
        let regions = self.regions.read();
        let (_, view) = regions
            .range::<[u8], _>((std::ops::Bound::Unbounded, std::ops::Bound::Included(key)))
            .next_back()?;
        view.region.contains(key).then(|| view.clone())
    }

    /// Every region on this store, as of the last refresh.
    pub fn regions(&self) -> Vec<RegionView> {
        self.regions.read().values().cloned().collect()
    }
}

fn run_raft<E: Engine + Clone, T: Transport>(
    mut store: Store<E, T>,
    engine: E,
    inbox: Receiver<StoreMsg>,
    apply: Sender<Vec<ApplyTask>>,
    regions: Arc<RwLock<BTreeMap<Vec<u8>, RegionView>>>,
    options: DriverOptions,
) {
    let tick = Duration::from_millis(options.tick_ms.max(1));
    let mut next_tick = Instant::now() + tick;
    let mut view_signature = Vec::new();
    let _ = apply.send(store.take_apply_tasks());
    'rounds: loop {
        let timeout = next_tick.saturating_duration_since(Instant::now());
        let first = match inbox.recv_timeout(timeout) {
            Ok(message) => Some(message),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let round_started = Instant::now();
        let mut phases = RoundPhases::default();
        let mut handled = 0;
        let mut next = first;
        while let Some(message) = next.take() {
            let kind = message.kind();
            let started = Instant::now();
            match message {
                StoreMsg::Stop => break 'rounds,
                other => handle(&mut store, other),
            }
            phases.note(kind, started.elapsed());
            handled += 1;
            if handled < MAX_MESSAGES_PER_ROUND {
                next = inbox.try_recv().ok();
            }
        }
        if Instant::now() >= next_tick {
            store.tick();
            next_tick = Instant::now() + tick;
        }
        let stepped = Instant::now();
        phases.step = stepped - round_started;
        let mut round = store.collect_readies();
        // Entries already durable here go to the apply side while the batch is written.
        if !hand_to_apply(&apply, store.take_early_apply(&mut round), store.store_id()) {
            break;
        }
        let collected = Instant::now();
        phases.collect = collected - stepped;
        let written_mutations = round.batch.len();
        if !round.batch.is_empty() {
            // Written unsynced, then the log synced on its own: the apply thread's writes, which
            // need no fsync, do not queue behind this one's.
            let written = engine.write(&round.batch, WriteOptions::NO_SYNC).and_then(|()| {
                phases.write = collected.elapsed();
                if round.must_sync {
                    let synced = engine.sync_wal();
                    phases.sync = collected.elapsed() - phases.write;
                    synced
                } else {
                    Ok(())
                }
            });
            if let Err(e) = written {
                // The log can no longer be made durable: nothing more may be acknowledged.
                tracing::error!(store = store.store_id(), error = %e, "writing the raft log failed; the store stops");
                break;
            }
        }
        store.on_round_persisted(round);
        if !hand_to_apply(&apply, store.take_apply_tasks(), store.store_id()) {
            break;
        }
        refresh_view(&store, &regions, &mut view_signature);
        let took = round_started.elapsed();
        if took >= SLOW_ROUND {
            let ms = |d: Duration| d.as_millis() as u64;
            tracing::warn!(
                store = store.store_id(),
                took_ms = ms(took),
                messages = handled,
                step_ms = ms(phases.step),
                collect_ms = ms(phases.collect),
                write_ms = ms(phases.write),
                sync_ms = ms(phases.sync),
                handled = %phases.by_kind_summary(),
                mutations = written_mutations,
                "slow raft round: peers may miss heartbeats"
            );
        }
    }
    drop(apply);
    tracing::debug!(store = store.store_id(), "raft thread stopped");
}

/// Sends `tasks` (if any) to the apply thread; `false` if it is gone, and the store must stop.
fn hand_to_apply(apply: &Sender<Vec<ApplyTask>>, tasks: Vec<ApplyTask>, store_id: u64) -> bool {
    if tasks.is_empty() || apply.send(tasks).is_ok() {
        return true;
    }
    tracing::error!(store = store_id, "the apply thread is gone; the store stops");
    false
}

fn handle<E: Engine + Clone, T: Transport>(store: &mut Store<E, T>, message: StoreMsg) {
    match message {
        StoreMsg::Raft(message) => store.on_raft_message(message),
        StoreMsg::Propose(command, callback) => store.propose(command, callback),
        StoreMsg::ReadIndex(header, callback) => store.read_index(header, callback),
        StoreMsg::LeaderHeader(region_id, reply) => {
            let answer = match store.peer(region_id) {
                None => Err(RaftstoreError::RegionNotFound(region_id)),
                Some(peer) if peer.is_ready_leader() => Ok(peer.command_header()),
                Some(peer) if peer.is_leader() => Err(RaftstoreError::LeaderNotReady { region_id }),
                Some(peer) => Err(RaftstoreError::NotLeader {
                    region_id,
                    leader: peer.leader().filter(|l| l.id != peer.peer().id),
                }),
            };
            reply(answer);
        }
        StoreMsg::Campaign(region_id) => {
            if let Some(peer) = store.peer_mut(region_id) {
                peer.campaign();
            }
        }
        StoreMsg::Health(callback) => {
            let health = store
                .region_ids()
                .filter_map(|id| store.peer(id).map(|p| (id, p.health())))
                .collect();
            callback(health);
        }
        StoreMsg::TransferLeader { region_id, to_peer } => {
            if let Some(peer) = store.peer_mut(region_id) {
                peer.transfer_leader(to_peer);
            }
        }
        StoreMsg::SnapshotGenerated(region_id, snapshot) => {
            if let Some(peer) = store.peer_mut(region_id) {
                peer.set_generated_snapshot(snapshot);
            }
        }
        StoreMsg::SnapshotStatus {
            region_id,
            to_peer,
            failed,
        } => {
            if let Some(peer) = store.peer_mut(region_id) {
                peer.report_snapshot(to_peer, failed);
            }
        }
        StoreMsg::ApplyResults(results) => store.on_apply_results(results),
        StoreMsg::Stop => unreachable!("handled by the loop"),
    }
}

/// Publishes the store's regions to the handles when their ranges, epochs or leadership
/// changed since the last round.
fn refresh_view<E: Engine + Clone, T: Transport>(
    store: &Store<E, T>,
    regions: &RwLock<BTreeMap<Vec<u8>, RegionView>>,
    signature: &mut Vec<(u64, u64, u64, u64, bool, bool)>,
) {
    let current: Vec<(u64, u64, u64, u64, bool, bool)> = store
        .region_ids()
        .filter_map(|id| store.peer(id))
        .filter(|p| p.storage().is_initialized() && !p.is_removed())
        .map(|p| {
            let r = p.region();
            (
                r.id,
                r.epoch.conf_ver,
                r.epoch.version,
                p.term(),
                p.is_leader(),
                p.is_ready_leader(),
            )
        })
        .collect();
    if current == *signature {
        return;
    }
    for now in &current {
        let (id, _, _, term, _, ready) = *now;
        let was_ready = signature.iter().any(|old| old.0 == id && old.5);
        if ready && !was_ready {
            tracing::info!(region = id, store = store.store_id(), term, "leading region");
        } else if !ready && was_ready {
            tracing::info!(
                region = id,
                store = store.store_id(),
                term,
                "no longer leading region"
            );
        }
    }
    let view = store
        .region_ids()
        .filter_map(|id| store.peer(id))
        .filter(|p| p.storage().is_initialized() && !p.is_removed())
        .map(|p| {
            (
                p.region().start_key.clone(),
                RegionView {
                    region: p.region().clone(),
                    peer: p.peer(),
                    is_leader: p.is_leader(),
                    is_ready_leader: p.is_ready_leader(),
                    term: p.term(),
                },
            )
        })
        .collect();
    *regions.write() = view;
    *signature = current;
}

/// The region worker: builds the snapshots peers ask for, off the raft thread, and hands them
/// back. It stops when the raft thread (and with it every generator) is gone.
fn run_region_worker<E: Engine>(engine: E, requests: Receiver<u64>, inbox: Sender<StoreMsg>) {
    while let Ok(region_id) = requests.recv() {
        let snapshot = super::peer_storage::generate_snapshot(&engine, region_id);
        if let Some(snapshot) = &snapshot {
            tracing::debug!(
                region = region_id,
                index = snapshot.metadata.index,
                bytes = snapshot.data.len(),
                "snapshot generated"
            );
        }
        if inbox
            .send(StoreMsg::SnapshotGenerated(region_id, snapshot))
            .is_err()
        {
            break;
        }
    }
}

fn run_apply<E: Engine>(mut applier: Applier<E>, tasks: Receiver<Vec<ApplyTask>>, results: Sender<StoreMsg>) {
    while let Ok(mut batch) = tasks.recv() {
        while let Ok(more) = tasks.try_recv() {
            batch.extend(more);
        }
        match applier.apply(batch) {
            Ok(applied) => {
                if !applied.is_empty() && results.send(StoreMsg::ApplyResults(applied)).is_err() {
                    break;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "applying committed entries failed; the store stops");
                let _ = results.send(StoreMsg::Stop);
                break;
            }
        }
    }
    tracing::debug!("apply thread stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raftstore::cmd::{CommandBody, Mutation};
    use crate::storage::{Cf, CrashableEngine};

    fn start(engine: CrashableEngine) -> StoreDriver<CrashableEngine> {
        StoreDriver::start_cluster_of_one(
            engine,
            7,
            PeerOptions::default(),
            DriverOptions { tick_ms: 10 },
            1,
        )
        .expect("starting the store")
        .0
    }

    async fn put(handle: &StoreHandle<CrashableEngine>, key: Vec<u8>) -> CommandResult {
        let header = handle.leader_header(1).await?;
        handle
            .propose(RaftCommand {
                header,
                body: CommandBody::Write(vec![Mutation::Put {
                    cf: Cf::Default,
                    key,
                    value: b"v".to_vec(),
                }]),
            })
            .await
    }

    /// Every write acknowledged before a power cut is there after the restart: the driver
    /// acknowledges only what its synced log holds (the engine drops every unsynced write
    /// when it "crashes", which a `kill -9` cannot show). The power goes while 8 writers are
    /// busy; what counts is each acknowledgement that arrived before that instant.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn acknowledged_writes_survive_a_power_cut() {
        // Syncs take a while, as on a disk, so an acknowledgement that ran ahead of its fsync
        // would show.
        let engine = CrashableEngine::with_sync_delay(Duration::from_millis(1));
        let driver = start(engine.clone());
        let handle = driver.handle().clone();
        // The acknowledgements seen before the cut; `None` once the power is gone.
        let acknowledged: Arc<Mutex<Option<Vec<Vec<u8>>>>> = Arc::new(Mutex::new(Some(Vec::new())));
        let writers: Vec<_> = (0..8u8)
            .map(|writer| {
                let handle = handle.clone();
                let acknowledged = acknowledged.clone();
                tokio::spawn(async move {
                    for i in 0..400u32 {
                        let key = format!("w{writer}-{i}").into_bytes();
                        if put(&handle, key.clone()).await.is_ok()
                            && let Some(keys) = acknowledged.lock().as_mut()
                        {
                            keys.push(key);
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(60)).await;
        let (restarted, acknowledged) = {
            let mut slot = acknowledged.lock();
            (engine.crash(), slot.take().expect("one cut"))
        };
        for writer in writers {
            writer.await.unwrap();
        }
        driver.stop();
        assert!(
            acknowledged.len() > 50,
            "only {} writes before the cut",
            acknowledged.len()
        );
        let driver = start(restarted.clone());
        for key in &acknowledged {
            assert_eq!(
                restarted.get(Cf::Default, key).unwrap(),
                Some(b"v".to_vec()),
                "acknowledged key {} lost",
                String::from_utf8_lossy(key)
            );
        }
        // And the store goes on taking writes.
        put(driver.handle(), b"after".to_vec()).await.unwrap();
    }
}
