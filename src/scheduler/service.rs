//! The scheduler's requests, as the leader replica serves them, and [`SchedulerApi`]: what
//! stores and clients ask of the scheduler, wherever it runs.
//!
//! [`Scheduler`] serves on a replica ([`super::replica`]): writes are proposals, reads run on
//! the ready leader's state. Timestamps come from a [`Tso`] that the leader opens once per
//! term over the replicated bound: opening it proposes a bound above everything any earlier
//! leader could have issued (the old bound is in the state the new leader applied), so
//! timestamps never go back across a leader change; extending the bound is a proposal too.
//!
//! Which store leads each region is soft state, as in PD: region heartbeats update it in the
//! leader's memory and it is not replicated (a new scheduler leader learns it from the next
//! heartbeats; meanwhile clients try the region's peers). A heartbeat whose layout differs from
//! the directory's is proposed, and the state machine keeps only the newest epoch.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::board::{
    ADMIN, Board, OperatorExecutor, OperatorSummary, SCHEDULERS, SHOWN, SPLIT_CHECKER, SchedulerStatus,
    SchedulerSummary,
};
use super::checkers::Step;
use super::replica::{ReplicaHandle, SchedulerError};
use super::state::{Removal, SchedulerCommand, SchedulerResponse, SchedulerState, StoreMeta};
use super::tso::{Clock, TimeStamp, Tso, TsoError, TsoProvider, TsoStore};
use crate::raftstore::meta::{Peer, Region};

/// A region and the peer that last reported itself its leader, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionRoute {
    pub region: Region,
    pub leader: Option<Peer>,
}

/// The cluster's identity and members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    /// Zero while the cluster is not bootstrapped.
    pub cluster_id: u64,
    pub stores: Vec<StoreMeta>,
    /// Region 1 as the directory has it (for a store deciding whether to create it).
    pub first_region: Option<Region>,
}

/// What stores and clients ask of the scheduler: served in process by [`Scheduler`], and over
/// gRPC by the node's scheduler client.
pub trait SchedulerApi: Send + Sync + 'static {
    /// Reserves `count` consecutive timestamps; returns the last.
    fn timestamps(&self, count: u32) -> impl Future<Output = Result<TimeStamp, SchedulerError>> + Send;
    /// The same without waiting, when this process's replica leads and its oracle's window is
    /// open; `None` otherwise (call [`SchedulerApi::timestamps`]).
    fn try_timestamps(&self, _count: u32) -> Option<TimeStamp> {
        None
    }
    /// Reserves `count` consecutive ids; returns the first.
    fn alloc_ids(&self, count: u64) -> impl Future<Output = Result<u64, SchedulerError>> + Send;
    /// Makes the cluster unless it exists; returns its id either way.
    fn bootstrap(
        &self,
        cluster_id: u64,
        stores: Vec<StoreMeta>,
        first_region: Region,
        next_id: u64,
    ) -> impl Future<Output = Result<u64, SchedulerError>> + Send;
    fn cluster(&self) -> impl Future<Output = Result<ClusterInfo, SchedulerError>> + Send;
    fn put_store(&self, store: StoreMeta) -> impl Future<Output = Result<(), SchedulerError>> + Send;
    /// The region holding the encoded key `key`.
    fn region_by_key(
        &self,
        key: Vec<u8>,
    ) -> impl Future<Output = Result<Option<RegionRoute>, SchedulerError>> + Send;
    fn region_by_id(
        &self,
        id: u64,
    ) -> impl Future<Output = Result<Option<RegionRoute>, SchedulerError>> + Send;
    fn store(&self, id: u64) -> impl Future<Output = Result<Option<StoreMeta>, SchedulerError>> + Send;
    /// A store's periodic report: its addresses and how many regions it holds and leads.
    fn store_heartbeat(
        &self,
        store: StoreMeta,
        stats: StoreStats,
    ) -> impl Future<Output = Result<(), SchedulerError>> + Send;
    /// A region leader's report of its region.
    fn region_heartbeat(
        &self,
        region: Region,
        leader: Peer,
        stats: RegionStats,
    ) -> impl Future<Output = Result<(), SchedulerError>> + Send;
    /// Regions as the directory and their leaders' last reports have them (`CLUSTER REGIONS`).
    fn regions(
        &self,
        query: RegionQuery,
    ) -> impl Future<Output = Result<Vec<RegionInfo>, SchedulerError>> + Send;
    /// Every store with its state and last report (`CLUSTER STORES`).
    fn stores(&self) -> impl Future<Output = Result<Vec<StoreInfo>, SchedulerError>> + Send;
    /// Starts moving every replica off store `id`; it becomes `Offline`, then `Tombstone` once
    /// empty (`CLUSTER STORE DELETE`).
    fn remove_store(&self, id: u64) -> impl Future<Output = Result<(), SchedulerError>> + Send;
    /// Pauses or resumes a scheduler by name (`CLUSTER SCHEDULER PAUSE|RESUME`).
    fn pause_scheduler(
        &self,
        name: String,
        paused: bool,
    ) -> impl Future<Output = Result<(), SchedulerError>> + Send;
    /// The schedulers and their operators (`CLUSTER SCHEDULER`).
    fn status(&self) -> impl Future<Output = Result<SchedulerStatus, SchedulerError>> + Send;
    /// Runs `steps` on a region as a manual operator on the scheduler's leader, one operator
    /// per region at a time like the schedulers' own; done when every step is.
    fn run_operator(
        &self,
        region_id: u64,
        steps: Vec<Step>,
    ) -> impl Future<Output = Result<(), SchedulerError>> + Send;
}

impl<S: SchedulerApi> SchedulerApi for Arc<S> {
    fn timestamps(&self, count: u32) -> impl Future<Output = Result<TimeStamp, SchedulerError>> + Send {
        (**self).timestamps(count)
    }
    fn try_timestamps(&self, count: u32) -> Option<TimeStamp> {
        (**self).try_timestamps(count)
    }
    fn alloc_ids(&self, count: u64) -> impl Future<Output = Result<u64, SchedulerError>> + Send {
        (**self).alloc_ids(count)
    }
    fn bootstrap(
        &self,
        cluster_id: u64,
        stores: Vec<StoreMeta>,
        first_region: Region,
        next_id: u64,
    ) -> impl Future<Output = Result<u64, SchedulerError>> + Send {
        (**self).bootstrap(cluster_id, stores, first_region, next_id)
    }
    fn cluster(&self) -> impl Future<Output = Result<ClusterInfo, SchedulerError>> + Send {
        (**self).cluster()
    }
    fn put_store(&self, store: StoreMeta) -> impl Future<Output = Result<(), SchedulerError>> + Send {
        (**self).put_store(store)
    }
    fn region_by_key(
        &self,
        key: Vec<u8>,
    ) -> impl Future<Output = Result<Option<RegionRoute>, SchedulerError>> + Send {
        (**self).region_by_key(key)
    }
    fn region_by_id(
        &self,
        id: u64,
    ) -> impl Future<Output = Result<Option<RegionRoute>, SchedulerError>> + Send {
        (**self).region_by_id(id)
    }
    fn store(&self, id: u64) -> impl Future<Output = Result<Option<StoreMeta>, SchedulerError>> + Send {
        (**self).store(id)
    }
    fn region_heartbeat(
        &self,
        region: Region,
        leader: Peer,
        stats: RegionStats,
    ) -> impl Future<Output = Result<(), SchedulerError>> + Send {
        (**self).region_heartbeat(region, leader, stats)
    }
    fn regions(
        &self,
        query: RegionQuery,
    ) -> impl Future<Output = Result<Vec<RegionInfo>, SchedulerError>> + Send {
        (**self).regions(query)
    }
    fn stores(&self) -> impl Future<Output = Result<Vec<StoreInfo>, SchedulerError>> + Send {
        (**self).stores()
    }
    fn remove_store(&self, id: u64) -> impl Future<Output = Result<(), SchedulerError>> + Send {
        (**self).remove_store(id)
    }
    fn pause_scheduler(
        &self,
        name: String,
        paused: bool,
    ) -> impl Future<Output = Result<(), SchedulerError>> + Send {
        (**self).pause_scheduler(name, paused)
    }
    fn status(&self) -> impl Future<Output = Result<SchedulerStatus, SchedulerError>> + Send {
        (**self).status()
    }
    fn run_operator(
        &self,
        region_id: u64,
        steps: Vec<Step>,
    ) -> impl Future<Output = Result<(), SchedulerError>> + Send {
        (**self).run_operator(region_id, steps)
    }
    fn store_heartbeat(
        &self,
        store: StoreMeta,
        stats: StoreStats,
    ) -> impl Future<Output = Result<(), SchedulerError>> + Send {
        (**self).store_heartbeat(store, stats)
    }
}

/// What a store reports about itself in its heartbeat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub region_count: u64,
    pub leader_count: u64,
    /// The size of the file system holding the store's data, and what is free on it.
    pub capacity_bytes: u64,
    pub available_bytes: u64,
    /// What the store's engine takes on disk and in memtables.
    pub used_bytes: u64,
    /// Regions this store's split checker has split since the node started.
    pub auto_splits: u64,
}

/// The last heartbeat of a store, as the leader replica saw it (soft state).
#[derive(Clone, Copy, Debug)]
pub struct StoreLiveness {
    pub at: Instant,
    pub stats: StoreStats,
}

/// A region's size as its leader estimates it (see `storage::Engine::approximate_range`),
/// what was written to it, and which peers lag or are silent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegionStats {
    pub approximate_size: u64,
    pub approximate_keys: u64,
    /// Bytes and write-CF keys written through the leader since its previous heartbeat.
    pub written_bytes: u64,
    pub written_keys: u64,
    /// Peers that need a snapshot to catch up (`raftstore::peer::PeerHealth`).
    pub pending_peers: Vec<Peer>,
    /// Peers the leader has not heard from for `raftstore::peer::PEER_DOWN_SECS`.
    pub down_peers: Vec<Peer>,
}

/// Which regions [`SchedulerApi::regions`] lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegionQuery {
    /// Up to `limit` regions in key order, from the one holding the encoded key `from`.
    From {
        from: Vec<u8>,
        limit: usize,
    },
    Id(u64),
    /// The region holding the encoded key.
    Key(Vec<u8>),
}

/// A region with what its leader last reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    pub region: Region,
    pub leader: Option<Peer>,
    /// `None` until a leader has reported to this scheduler leader.
    pub stats: Option<RegionStats>,
}

/// `scheduler.max_store_down_time_secs` unless configured: half an hour, as in PD.
pub const DEFAULT_MAX_STORE_DOWN_SECS: u64 = 1_800;

/// Seconds without a store heartbeat after which a store is [`StoreState::Disconnected`]
/// (stores report at least every 10 s: [`store_heartbeat_interval`]).
pub const STORE_DISCONNECT_SECS: u64 = 20;

/// How often a store reports itself when nothing changed: every 10 s, or, under a short
/// `scheduler.max_store_down_time_secs`, often enough that a live store misses three reports
/// before it could count as `Down` (never more often than every second).
pub fn store_heartbeat_interval(max_down: Duration) -> Duration {
    (max_down / 3).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// A store's state, from how long ago it last reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreState {
    /// Reported within [`STORE_DISCONNECT_SECS`].
    Up,
    /// Silent for longer: a slow, paused or cut-off node; nothing is moved off it yet.
    Disconnected,
    /// Silent for longer than `scheduler.max_store_down_time_secs`: its replicas are to be
    /// replaced elsewhere.
    Down,
    /// Being removed (`CLUSTER STORE DELETE`): its replicas move away, whatever its heartbeats.
    Offline,
    /// Removed: empty, and never given a replica again.
    Tombstone,
}

impl StoreState {
    /// The state of a store last heard from `silent` ago.
    pub fn after_silence(silent: Duration, max_down: Duration) -> StoreState {
        if silent > max_down {
            StoreState::Down
        } else if silent > Duration::from_secs(STORE_DISCONNECT_SECS) {
            StoreState::Disconnected
        } else {
            StoreState::Up
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StoreState::Up => "Up",
            StoreState::Disconnected => "Disconnected",
            StoreState::Down => "Down",
            StoreState::Offline => "Offline",
            StoreState::Tombstone => "Tombstone",
        }
    }
}

/// A store with its state and its last report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreInfo {
    pub meta: StoreMeta,
    pub state: StoreState,
    /// `None` until it has reported to this scheduler leader.
    pub stats: Option<StoreStats>,
}

/// Hands out a scheduler's timestamps to a [`super::tso::TsoClient`].
pub struct SchedulerTso<S: SchedulerApi>(pub S);

impl<S: SchedulerApi> TsoProvider for SchedulerTso<S> {
    async fn request_timestamps(&self, count: u32) -> Result<TimeStamp, TsoError> {
        self.0
            .timestamps(count)
            .await
            .map_err(|e| TsoError::Scheduler(e.to_string()))
    }

    fn try_request_timestamps(&self, count: u32) -> Option<TimeStamp> {
        self.0.try_timestamps(count)
    }
}

/// The timestamp bound kept in the replicated state.
struct ReplicatedBound(ReplicaHandle);

impl TsoStore for ReplicatedBound {
    fn load_bound_ms(&self) -> Result<Option<u64>, TsoError> {
        let bound = self
            .0
            .read_blocking(|state: &SchedulerState| state.tso_bound_ms)
            .map_err(|e| TsoError::Scheduler(e.to_string()))?;
        Ok(Some(bound))
    }

    fn save_bound_ms(&self, bound_ms: u64) -> Result<(), TsoError> {
        match self.0.propose_blocking(SchedulerCommand::AdvanceTso { bound_ms }) {
            Ok(SchedulerResponse::TsoBound { bound_ms: saved }) if saved >= bound_ms => Ok(()),
            Ok(other) => Err(TsoError::Scheduler(format!("unexpected answer {other:?}"))),
            Err(e) => Err(TsoError::Scheduler(e.to_string())),
        }
    }
}

/// See the module docs.
pub struct Scheduler {
    replica: ReplicaHandle,
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    window_ms: u64,
    /// The oracle of the term this replica leads, opened on the first request of the term.
    tso: Mutex<Option<(u64, Arc<Tso>)>>,
    /// Serializes opening the oracle.
    opening: tokio::sync::Mutex<()>,
    /// Region id → the peer that last reported leading it, and its report.
    leaders: Mutex<HashMap<u64, (Peer, RegionStats)>>,
    /// Store id → its last heartbeat.
    stores: Mutex<HashMap<u64, StoreLiveness>>,
    /// The term this replica leads (or last led) and when it noticed: a store it has not
    /// heard from yet has been silent since then, as far as it knows.
    leading_since: Mutex<(u64, Instant)>,
    max_store_down: Duration,
    /// Replicas a region should have; a store is not removed if fewer stores would be left.
    max_replicas: usize,
    /// This node's name, for `CLUSTER SCHEDULER`'s `leader`.
    node_name: String,
    board: Arc<Board>,
    /// Runs manual operators (set by the node once its operator runner exists).
    executor: std::sync::OnceLock<Arc<dyn OperatorExecutor>>,
}

impl Scheduler {
    pub fn new(replica: ReplicaHandle, clock: Clock, window_ms: u64) -> Self {
        Scheduler {
            replica,
            clock: Arc::from(clock),
            window_ms,
            tso: Mutex::new(None),
            opening: tokio::sync::Mutex::new(()),
            leaders: Mutex::new(HashMap::new()),
            stores: Mutex::new(HashMap::new()),
            leading_since: Mutex::new((0, Instant::now())),
            max_store_down: Duration::from_secs(DEFAULT_MAX_STORE_DOWN_SECS),
            max_replicas: 3,
            node_name: String::new(),
            board: Arc::default(),
            executor: std::sync::OnceLock::new(),
        }
    }

    /// The replica count regions should have (`replication.max_replicas`).
    pub fn with_max_replicas(mut self, max_replicas: usize) -> Self {
        self.max_replicas = max_replicas;
        self
    }

    /// The name this node goes by in `cluster.yaml`.
    pub fn with_node_name(mut self, name: &str) -> Self {
        self.node_name = name.to_string();
        self
    }

    pub fn max_replicas(&self) -> usize {
        self.max_replicas
    }

    /// The operators this replica's runner has under way, and their counters.
    pub fn board(&self) -> &Arc<Board> {
        &self.board
    }

    /// Where manual operators run (the node's operator runner).
    pub fn set_executor(&self, executor: Arc<dyn OperatorExecutor>) {
        let _ = self.executor.set(executor);
    }

    /// The schedulers paused, as the replicated state has them.
    pub async fn paused(&self) -> Result<std::collections::BTreeSet<String>, SchedulerError> {
        self.replica.read(|state| state.paused.clone()).await
    }

    /// Marks `Offline` store `id`, which holds no replica any more, `Tombstone`.
    pub async fn bury_store(&self, id: u64) -> Result<(), SchedulerError> {
        match self.propose(SchedulerCommand::BuryStore { id }).await? {
            SchedulerResponse::Done => Ok(()),
            other => Err(SchedulerError::Refused(format!("{other:?}"))),
        }
    }

    /// How long a store may be silent before it is [`StoreState::Down`].
    pub fn with_max_store_down(mut self, max_store_down: Duration) -> Self {
        self.max_store_down = max_store_down;
        self
    }

    /// When this replica began leading its current term (as first noticed).
    fn leading_since(&self) -> Instant {
        let term = self.replica.status().term;
        let mut since = self.leading_since.lock();
        if since.0 != term {
            *since = (term, Instant::now());
        }
        since.1
    }

    pub fn replica(&self) -> &ReplicaHandle {
        &self.replica
    }

    /// The last heartbeat of every store that sent one to this leader.
    pub fn store_liveness(&self) -> HashMap<u64, StoreLiveness> {
        self.stores.lock().clone()
    }

    async fn propose(&self, command: SchedulerCommand) -> Result<SchedulerResponse, SchedulerError> {
        self.replica.propose(command).await
    }

    /// The oracle for the current term, opening it if needed.
    async fn term_tso(&self) -> Result<Arc<Tso>, SchedulerError> {
        let status = self.replica.status();
        if !status.ready_leader {
            return Err(SchedulerError::NotLeader {
                leader: status.leader,
            });
        }
        if let Some((term, tso)) = &*self.tso.lock()
            && *term == status.term
        {
            return Ok(tso.clone());
        }
        let _opening = self.opening.lock().await;
        if let Some((term, tso)) = &*self.tso.lock()
            && *term == status.term
        {
            return Ok(tso.clone());
        }
        let store = ReplicatedBound(self.replica.clone());
        let clock = self.clock.clone();
        let window_ms = self.window_ms;
        let tso = tokio::task::spawn_blocking(move || Tso::open(store, Box::new(move || clock()), window_ms))
            .await
            .map_err(|e| SchedulerError::Unavailable(e.to_string()))?
            .map_err(|e| SchedulerError::Unavailable(e.to_string()))?;
        let tso = Arc::new(tso);
        *self.tso.lock() = Some((status.term, tso.clone()));
        Ok(tso)
    }

    fn route(&self, region: Option<Region>) -> Option<RegionRoute> {
        region.map(|region| {
            let leader = self
                .leaders
                .lock()
                .get(&region.id)
                .map(|(leader, _)| *leader)
                .filter(|l| region.peers.contains(l));
            RegionRoute { region, leader }
        })
    }

    fn info(&self, region: Region) -> RegionInfo {
        let report = self.leaders.lock().get(&region.id).cloned();
        let leader = report
            .as_ref()
            .map(|(leader, _)| *leader)
            .filter(|l| region.peers.contains(l));
        RegionInfo {
            leader,
            stats: report.map(|(_, stats)| stats),
            region,
        }
    }
}

/// Starts extending the oracle's persisted window in the background when it runs low, so
/// that callers on tokio workers keep finding timestamps without waiting for a persist.
fn extend_ahead(tso: &Arc<Tso>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if !tso.claim_extension() {
        return;
    }
    let tso = tso.clone();
    runtime.spawn_blocking(move || {
        if let Err(e) = tso.extend_ahead() {
            tracing::debug!(error = %e, "extending the timestamp window ahead failed");
        }
    });
}

fn tso_failure(e: TsoError) -> SchedulerError {
    SchedulerError::Unavailable(e.to_string())
}

impl SchedulerApi for Scheduler {
    async fn timestamps(&self, count: u32) -> Result<TimeStamp, SchedulerError> {
        let tso = self.term_tso().await?;
        let term = self.replica.status().term;
        let ts = match tso.try_get_timestamps(count).map_err(tso_failure)? {
            Some(ts) => {
                extend_ahead(&tso);
                ts
            }
            None => tokio::task::spawn_blocking(move || tso.get_timestamps(count))
                .await
                .map_err(|e| SchedulerError::Unavailable(e.to_string()))?
                .map_err(tso_failure)?,
        };
        // A leader deposed meanwhile must not hand out what the next leader may repeat.
        let status = self.replica.status();
        if !status.ready_leader || status.term != term {
            return Err(SchedulerError::NotLeader {
                leader: status.leader,
            });
        }
        Ok(ts)
    }

    fn try_timestamps(&self, count: u32) -> Option<TimeStamp> {
        let status = self.replica.status();
        if !status.ready_leader {
            return None;
        }
        let tso = match &*self.tso.lock() {
            Some((term, tso)) if *term == status.term => tso.clone(),
            _ => return None,
        };
        let ts = tso.try_get_timestamps(count).ok().flatten();
        extend_ahead(&tso);
        let ts = ts?;
        // As in `timestamps`: a leader deposed meanwhile hands out nothing.
        let after = self.replica.status();
        (after.ready_leader && after.term == status.term).then_some(ts)
    }

    async fn alloc_ids(&self, count: u64) -> Result<u64, SchedulerError> {
        match self.propose(SchedulerCommand::AllocIds { count }).await? {
            SchedulerResponse::Ids { first, .. } => Ok(first),
            other => Err(SchedulerError::Refused(format!("unexpected answer {other:?}"))),
        }
    }

    async fn bootstrap(
        &self,
        cluster_id: u64,
        stores: Vec<StoreMeta>,
        first_region: Region,
        next_id: u64,
    ) -> Result<u64, SchedulerError> {
        let command = SchedulerCommand::Bootstrap {
            cluster_id,
            stores,
            first_region,
            next_id,
        };
        match self.propose(command).await? {
            SchedulerResponse::Bootstrapped => Ok(cluster_id),
            SchedulerResponse::AlreadyBootstrapped { cluster_id } => Ok(cluster_id),
            other => Err(SchedulerError::Refused(format!("unexpected answer {other:?}"))),
        }
    }

    async fn cluster(&self) -> Result<ClusterInfo, SchedulerError> {
        self.replica
            .read(|state| ClusterInfo {
                cluster_id: state.cluster_id,
                stores: state.stores.values().cloned().collect(),
                first_region: state.regions.get(&1).cloned(),
            })
            .await
    }

    async fn put_store(&self, store: StoreMeta) -> Result<(), SchedulerError> {
        match self.propose(SchedulerCommand::PutStore(store)).await? {
            SchedulerResponse::StorePut => Ok(()),
            SchedulerResponse::NotBootstrapped => Err(SchedulerError::NotBootstrapped),
            SchedulerResponse::StoreNameTaken { name, store_id } => Err(SchedulerError::Refused(format!(
                "the name {name:?} belongs to store {store_id}"
            ))),
            other => Err(SchedulerError::Refused(format!("unexpected answer {other:?}"))),
        }
    }

    async fn region_by_key(&self, key: Vec<u8>) -> Result<Option<RegionRoute>, SchedulerError> {
        let region = self
            .replica
            .read(move |state| state.region_by_key(&key).cloned())
            .await?;
        Ok(self.route(region))
    }

    async fn region_by_id(&self, id: u64) -> Result<Option<RegionRoute>, SchedulerError> {
        let region = self
            .replica
            .read(move |state| state.regions.get(&id).cloned())
            .await?;
        Ok(self.route(region))
    }

    async fn store(&self, id: u64) -> Result<Option<StoreMeta>, SchedulerError> {
        self.replica
            .read(move |state| state.stores.get(&id).cloned())
            .await
    }

    async fn store_heartbeat(&self, store: StoreMeta, stats: StoreStats) -> Result<(), SchedulerError> {
        let known = {
            let id = store.id;
            self.replica
                .read(move |state| state.stores.get(&id).cloned())
                .await?
        };
        if known.as_ref() != Some(&store) {
            self.put_store(store.clone()).await?;
        }
        self.leading_since();
        self.stores.lock().insert(
            store.id,
            StoreLiveness {
                at: Instant::now(),
                stats,
            },
        );
        Ok(())
    }

    async fn region_heartbeat(
        &self,
        region: Region,
        leader: Peer,
        stats: RegionStats,
    ) -> Result<(), SchedulerError> {
        let known = {
            let id = region.id;
            self.replica
                .read(move |state| state.regions.get(&id).cloned())
                .await?
        };
        if known.as_ref() != Some(&region) {
            match self.propose(SchedulerCommand::PutRegion(region.clone())).await? {
                SchedulerResponse::RegionPut => {}
                // An older layout than the directory's: its leader claim is old too.
                SchedulerResponse::RegionStale { .. } => return Ok(()),
                SchedulerResponse::NotBootstrapped => return Err(SchedulerError::NotBootstrapped),
                other => return Err(SchedulerError::Refused(format!("unexpected answer {other:?}"))),
            }
        }
        self.leaders.lock().insert(region.id, (leader, stats));
        Ok(())
    }

    async fn regions(&self, query: RegionQuery) -> Result<Vec<RegionInfo>, SchedulerError> {
        let regions = self
            .replica
            .read(move |state| match query {
                RegionQuery::Id(id) => state.regions.get(&id).cloned().into_iter().collect(),
                RegionQuery::Key(key) => state.region_by_key(&key).cloned().into_iter().collect(),
                RegionQuery::From { from, limit } => state.regions_from(&from, limit),
            })
            .await?;
        Ok(regions.into_iter().map(|region| self.info(region)).collect())
    }

    async fn stores(&self) -> Result<Vec<StoreInfo>, SchedulerError> {
        let stores = self
            .replica
            .read(|state| {
                state
                    .stores
                    .values()
                    .map(|s| (s.clone(), state.removals.get(&s.id).copied()))
                    .collect::<Vec<_>>()
            })
            .await?;
        let since = self.leading_since();
        let now = Instant::now();
        let heard = self.stores.lock();
        Ok(stores
            .into_iter()
            .map(|(meta, removal)| {
                let last = heard.get(&meta.id);
                let silent = now.saturating_duration_since(last.map_or(since, |l| l.at));
                StoreInfo {
                    state: match removal {
                        Some(Removal::Offline) => StoreState::Offline,
                        Some(Removal::Tombstone) => StoreState::Tombstone,
                        None => StoreState::after_silence(silent, self.max_store_down),
                    },
                    stats: last.map(|l| l.stats),
                    meta,
                }
            })
            .collect())
    }

    async fn remove_store(&self, id: u64) -> Result<(), SchedulerError> {
        let (serving, known) = self
            .replica
            .read(move |state| {
                let serving = state
                    .stores
                    .keys()
                    .filter(|s| !state.removals.contains_key(s))
                    .count();
                let serving_id = state.stores.contains_key(&id) && !state.removals.contains_key(&id);
                (serving, serving_id)
            })
            .await?;
        // (Unknown and already removed stores are refused by the state machine.)
        if known && serving <= self.max_replicas {
            return Err(SchedulerError::Refused(format!(
                "removing store {id} would leave {} stores for {} replicas of each region",
                serving - 1,
                self.max_replicas
            )));
        }
        match self.propose(SchedulerCommand::RemoveStore { id }).await? {
            SchedulerResponse::Done => Ok(()),
            SchedulerResponse::StoreNotFound { id } => {
                Err(SchedulerError::Refused(format!("unknown store {id}")))
            }
            SchedulerResponse::StoreRemoval { id, removal } => Err(SchedulerError::Refused(format!(
                "store {id} is already {}",
                match removal {
                    Removal::Offline => "being removed (Offline)",
                    Removal::Tombstone => "removed (Tombstone)",
                }
            ))),
            other => Err(SchedulerError::Refused(format!("unexpected answer {other:?}"))),
        }
    }

    async fn pause_scheduler(&self, name: String, paused: bool) -> Result<(), SchedulerError> {
        if !SCHEDULERS.contains(&name.as_str()) {
            return Err(SchedulerError::Refused(format!(
                "unknown scheduler '{name}' (schedulers: {})",
                SCHEDULERS.join(", ")
            )));
        }
        match self
            .propose(SchedulerCommand::PauseScheduler { name, paused })
            .await?
        {
            SchedulerResponse::Done => Ok(()),
            other => Err(SchedulerError::Refused(format!("unexpected answer {other:?}"))),
        }
    }

    async fn status(&self) -> Result<SchedulerStatus, SchedulerError> {
        let paused = self.paused().await?;
        let splits: u64 = self.stores.lock().values().map(|l| l.stats.auto_splits).sum();
        let schedulers = SHOWN
            .iter()
            .map(|name| {
                let counters = if *name == SPLIT_CHECKER {
                    vec![("splits".to_string(), splits)]
                } else {
                    let c = self.board.counters(name);
                    vec![
                        ("created".to_string(), c.created),
                        ("finished".to_string(), c.finished),
                        ("cancelled".to_string(), c.cancelled),
                        ("timed_out".to_string(), c.timed_out),
                    ]
                };
                SchedulerSummary {
                    name: name.to_string(),
                    paused: *name != ADMIN && paused.contains(*name),
                    counters,
                }
            })
            .collect();
        let operators = self
            .board
            .running()
            .into_iter()
            .map(|(region_id, running)| OperatorSummary {
                region_id,
                scheduler: running.scheduler.to_string(),
                steps: running.steps.iter().map(super::board::describe).collect(),
                step: running.step as u64,
                age_ms: running.started.elapsed().as_millis() as u64,
            })
            .collect();
        Ok(SchedulerStatus {
            leader: self.node_name.clone(),
            schedulers,
            operators,
        })
    }

    async fn run_operator(&self, region_id: u64, steps: Vec<Step>) -> Result<(), SchedulerError> {
        let status = self.replica.status();
        if !status.ready_leader {
            return Err(SchedulerError::NotLeader {
                leader: status.leader,
            });
        }
        let executor = self
            .executor
            .get()
            .ok_or_else(|| SchedulerError::Unavailable("the operator runner is starting".into()))?;
        executor
            .run(ADMIN, region_id, steps)
            .await
            .map_err(SchedulerError::Refused)
    }
}
