//! Wiring one node: open the engine, join the cluster, start the store, serve RESP and node
//! RPC, shut down cleanly.
//!
//! A node keeps its RocksDB database in `<data_dir>/db`. Start-up, in order:
//!
//! 1. **Scheduler replica.** If the node is one of `scheduler_nodes`, it starts its replica of
//!    the scheduler's raft group (`scheduler::replica`; replica ids are positions in that list).
//! 2. **Node RPC** on `peer_addr` (gRPC): the scheduler service (on scheduler nodes), the raft
//!    message and snapshot streams, and the KV service; the last two answer "starting" until
//!    the store runs.
//! 3. **Joining.** The node asks the scheduler (retrying, with progress in the log, for up to
//!    `scheduler.startup_timeout_secs`) for the cluster. The first node to find it empty
//!    bootstraps it: every configured node gets a store id (1, 2, ... in file order) and
//!    region 1, covering every key, gets replicas on the first min(`max_replicas`, nodes)
//!    stores. A node with no store ident on disk takes the id of its name and, if it holds a
//!    replica of region 1 and the region is still as first laid out, writes region 1's initial
//!    state with its ident (one synced batch). A node whose ident names another cluster, or
//!    whose name the scheduler gives to another store, refuses to start.
//! 4. **Store and clients.** The multi-raft store (raft, apply and region threads,
//!    `raftstore::driver`) with the gRPC transport, the transaction server at its region
//!    leaders, the router that sends each command to its region's leader (this store, or
//!    another over gRPC) with the region cache, the timestamp client, the RESP server, the
//!    heartbeat task (store and region reports), the split checker, and the MVCC GC task, the
//!    expiry sweeper (`resp::expiry`) and the operator runner (`rpc::operators`, scheduler
//!    nodes only), all three of which work only on the node whose scheduler replica leads.
//!
//! **A single node is a cluster of one.** With no configuration the node is the only node
//! and the only scheduler replica: both raft groups elect themselves at once, and every write
//! is a raft proposal answered once committed (the log fsync'd) and applied, exactly as in a
//! cluster. A restart replays the log from the applied index.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{ClusterConfig, ConfigError, NodeConfig};
use crate::percolator::client::{ClientConfig, PercolatorClient};
use crate::percolator::server::TxnServer;
use crate::raftstore::bootstrap::{StoreIdent, bootstrap_store, first_region, load_ident};
use crate::raftstore::cmd::RaftstoreError;
use crate::raftstore::driver::{DriverOptions, StoreDriver, WriteFlow};
use crate::raftstore::meta::{Peer, Region, RegionEpoch};
use crate::raftstore::peer::PeerOptions;
use crate::raftstore::split_check;
use crate::raftstore::store::Store;
use crate::resp::{NodeInfo, Server, serve};
use crate::rpc::admin::Admin;
use crate::rpc::kv::{KvBackend, KvService};
use crate::rpc::operators::OperatorRunner;
use crate::rpc::proto::kv_server::KvServer;
use crate::rpc::proto::raft_server::RaftServer;
use crate::rpc::proto::scheduler_server::SchedulerServer;
use crate::rpc::router::Router;
use crate::rpc::scheduler::{ReplicaGrpcTransport, SchedulerRpcClient, SchedulerService};
use crate::rpc::server::RaftService;
use crate::rpc::transport::{GrpcTransport, StoreStatusSink};
use crate::scheduler::replica::{ReplicaOptions, SchedulerError, SchedulerReplica};
use crate::scheduler::service::{
    ClusterInfo, RegionStats, Scheduler, SchedulerApi, SchedulerTso, StoreStats,
};
use crate::scheduler::state::StoreMeta;
use crate::scheduler::tso::{Tso, TsoClient, system_clock};
use crate::storage::{Engine, RocksEngine, RocksOptions, StorageError};

/// The transaction server as this node runs it.
pub type NodeTxnServer = TxnServer<RocksEngine>;
/// The scheduler client of a node.
pub type NodeScheduler = Arc<SchedulerRpcClient>;
/// What the node's transaction client calls: the router to region leaders.
pub type NodeRouter = Router<RocksEngine, NodeScheduler>;
/// The client the RESP layer runs its commands through.
pub type NodeTxnClient = PercolatorClient<NodeRouter>;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the database in {path}: {source}")]
    Storage {
        path: PathBuf,
        #[source]
        source: StorageError,
    },
    #[error(
        "cannot listen on {addr}: {source} (is another server, such as redis-server, using it? pick another port with --port)"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the scheduler: {0}")]
    Scheduler(#[from] SchedulerError),
    #[error(
        "no scheduler leader reachable after {waited_secs} s (scheduler nodes: {nodes}); start them, or check their peer_addr: {last_error}"
    )]
    SchedulerUnreachable {
        waited_secs: u64,
        nodes: String,
        last_error: SchedulerError,
    },
    #[error(
        "the data directory {path} belongs to cluster {found}, but the scheduler's cluster is {expected}: point data_dir at this cluster's directory, or empty it"
    )]
    OtherCluster {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    #[error(
        "the scheduler gives node name {name:?} to store {store_id}, but this data directory is store {local}"
    )]
    StoreMismatch { name: String, store_id: u64, local: u64 },
    #[error("the store in {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: RaftstoreError,
    },
    #[error("shutdown: flushing the database: {0}")]
    Shutdown(#[source] StorageError),
}

/// What a node starts from.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub cluster: ClusterConfig,
    /// Which of `cluster.nodes` this process is, after command-line overrides.
    pub node: NodeConfig,
    /// The file the configuration came from, if any (reported by `INFO`).
    pub config_file: Option<PathBuf>,
}

/// A started node.
pub struct RunningNode {
    resp_addr: SocketAddr,
    peer_addr: SocketAddr,
    txn_server: Arc<NodeTxnServer>,
    driver: StoreDriver<RocksEngine>,
    replica: Option<SchedulerReplica>,
    tasks: Vec<JoinHandle<()>>,
    stop: oneshot::Sender<()>,
    server_task: JoinHandle<()>,
    rpc_stop: oneshot::Sender<()>,
    rpc_task: JoinHandle<()>,
}

/// Snapshots larger than this are refused by the receiving side.
const MAX_SNAPSHOT_BYTES: usize = 4 << 30;

impl RunningNode {
    /// Opens the data directory, joins (or makes) the cluster and starts serving.
    pub async fn start(options: NodeOptions) -> Result<Self, NodeError> {
        let node = options.node.clone();
        let cluster = &options.cluster;
        let db_path = node.data_dir.join("db");
        let engine =
            RocksEngine::open(&db_path, &RocksOptions::default()).map_err(|source| NodeError::Storage {
                path: db_path.clone(),
                source,
            })?;
        let raft = &cluster.raft;
        let runtime = tokio::runtime::Handle::current();

        // 1. The scheduler replica, on scheduler nodes.
        let scheduler_nodes: Vec<(u64, String)> = cluster
            .scheduler_nodes()
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u64 + 1, n.peer_addr.to_string()))
            .collect();
        let my_replica_id = cluster
            .scheduler_nodes()
            .iter()
            .position(|n| n.name == node.name)
            .map(|i| i as u64 + 1);
        let (replica, local_scheduler) = match my_replica_id {
            Some(id) => {
                let others: HashMap<u64, String> = scheduler_nodes
                    .iter()
                    .filter(|(other, _)| *other != id)
                    .cloned()
                    .collect();
                let replica = SchedulerReplica::start(
                    engine.clone(),
                    ReplicaOptions {
                        id,
                        peers: scheduler_nodes.iter().map(|(id, _)| *id).collect(),
                        tick_ms: raft.tick_ms,
                        election_tick: raft.election_timeout_ticks as usize,
                        heartbeat_tick: raft.heartbeat_ticks as usize,
                        compact_every: 10_000,
                        seed: u64::from(std::process::id()) ^ id,
                    },
                    ReplicaGrpcTransport::new(runtime.clone(), others),
                )?;
                let scheduler = Arc::new(
                    Scheduler::new(replica.handle().clone(), system_clock(), Tso::DEFAULT_WINDOW_MS)
                        .with_max_store_down(Duration::from_secs(cluster.scheduler.max_store_down_time_secs))
                        .with_max_replicas(cluster.replication.max_replicas)
                        .with_node_name(&node.name),
                );
                (Some(replica), Some((id, scheduler)))
            }
            None => (None, None),
        };

        // 2. Node RPC.
        let (raft_service, store_slot) = RaftService::lazy(MAX_SNAPSHOT_BYTES);
        let (kv_service, kv_slot) = KvService::lazy();
        let peer_listener = TcpListener::bind(node.peer_addr)
            .await
            .map_err(|source| NodeError::Bind {
                addr: node.peer_addr,
                source,
            })?;
        let peer_addr = peer_listener.local_addr().map_err(|source| NodeError::Bind {
            addr: node.peer_addr,
            source,
        })?;
        let (rpc_stop, rpc_stopped) = oneshot::channel::<()>();
        let rpc_task = {
            let router = tonic::transport::Server::builder()
                .add_service(
                    RaftServer::new(raft_service).max_decoding_message_size(crate::rpc::MAX_MESSAGE_BYTES),
                )
                .add_service(
                    KvServer::new(kv_service).max_decoding_message_size(crate::rpc::MAX_MESSAGE_BYTES),
                )
                .add_optional_service(
                    local_scheduler
                        .as_ref()
                        .map(|(_, s)| SchedulerServer::new(SchedulerService::new(s.clone()))),
                );
            tokio::spawn(async move {
                let incoming = crate::rpc::incoming(peer_listener);
                let shutdown = async {
                    let _ = rpc_stopped.await;
                };
                if let Err(e) = router.serve_with_incoming_shutdown(incoming, shutdown).await {
                    tracing::error!(error = %e, "node RPC server failed");
                }
            })
        };
        let budget = Duration::from_secs(cluster.scheduler.startup_timeout_secs.clamp(1, 10));
        let scheduler: NodeScheduler = Arc::new(SchedulerRpcClient::new(
            local_scheduler.clone(),
            scheduler_nodes.clone(),
            budget,
        ));

        // 3. Joining.
        let ident = join_cluster(&options, peer_addr, &engine, &scheduler, &db_path).await?;
        tracing::info!(
            cluster = ident.cluster_id,
            store = ident.store_id,
            "joined the cluster"
        );

        // 4. The store and its clients.
        let store_addrs: Arc<RwLock<HashMap<u64, String>>> = Arc::default();
        refresh_store_addrs(&scheduler, &store_addrs).await;
        let status = Arc::new(StoreStatusSink::<RocksEngine>::default());
        let resolver = {
            let addrs = store_addrs.clone();
            Arc::new(move |store_id: u64| addrs.read().get(&store_id).cloned())
        };
        let transport = GrpcTransport::new(runtime.clone(), resolver, status.clone());
        let peer_options = PeerOptions {
            election_tick: raft.election_timeout_ticks as usize,
            heartbeat_tick: raft.heartbeat_ticks as usize,
            raft_log_gc_tick_interval: (cluster.raft_log_gc.tick_ms / raft.tick_ms.max(1)).max(1) as usize,
            raft_log_gc_count_limit: cluster.raft_log_gc.count_limit,
            ..PeerOptions::default()
        };
        let store_error = |source| NodeError::Store {
            path: db_path.clone(),
            source,
        };
        let store = Store::open(
            ident.store_id,
            engine.clone(),
            transport,
            peer_options,
            u64::from(std::process::id()),
        )
        .map_err(store_error)?;
        let solo_regions: Vec<u64> = store
            .regions()
            .filter(|r| r.peers.len() == 1)
            .map(|r| r.id)
            .collect();
        let driver = StoreDriver::start(
            store,
            engine,
            DriverOptions {
                tick_ms: raft.tick_ms,
            },
        );
        status.attach(driver.handle().clone());
        let _ = store_slot.set(driver.handle().clone());
        // A region of one elects itself at once; let nobody in before it can serve.
        for region_id in solo_regions {
            driver
                .handle()
                .wait_leader_ready(region_id, Duration::from_secs(30))
                .map_err(store_error)?;
        }
        let tso_client = TsoClient::start(SchedulerTso(scheduler.clone()));
        let txn_server = Arc::new(
            TxnServer::new(driver.handle().clone(), tso_client.clone())
                .with_gc_filter(crate::resp::HashFieldGcFilter),
        );
        let _ = kv_slot.set(KvBackend {
            server: txn_server.clone(),
            ids: scheduler.clone(),
        });
        let router = Arc::new(Router::new(txn_server.clone(), scheduler.clone()));
        let client = PercolatorClient::new(router, tso_client, ClientConfig::default());
        let gc_runner = replica.as_ref().map(|r| r.handle().clone());
        let mut tasks = vec![tokio::spawn(run_gc(
            client.clone(),
            cluster.gc.clone(),
            gc_runner,
        ))];

        let listener = TcpListener::bind(node.resp_addr)
            .await
            .map_err(|source| NodeError::Bind {
                addr: node.resp_addr,
                source,
            })?;
        let resp_addr = listener.local_addr().map_err(|source| NodeError::Bind {
            addr: node.resp_addr,
            source,
        })?;
        let splits = Arc::new(AtomicU64::new(0));
        tasks.push(tokio::spawn(run_split_checker(
            driver.handle().clone(),
            scheduler.clone(),
            cluster.region.clone(),
            splits.clone(),
        )));
        tasks.push(tokio::spawn(run_heartbeats(
            driver.handle().clone(),
            scheduler.clone(),
            store_addrs,
            StoreMeta {
                id: ident.store_id,
                name: node.name.clone(),
                peer_addr: peer_addr.to_string(),
                resp_addr: resp_addr.to_string(),
            },
            splits,
            crate::scheduler::service::store_heartbeat_interval(Duration::from_secs(
                cluster.scheduler.max_store_down_time_secs,
            )),
        )));
        let info = NodeInfo {
            node_name: node.name.clone(),
            config_file: options.config_file.clone(),
            data_dir: node.data_dir.clone(),
            watch_horizon_ms: cluster.gc.life_time_secs * 1_000 / 2,
            probe: node_probe(
                driver.handle().clone(),
                replica.as_ref().map(|r| r.handle().clone()),
                cluster.scheduler_nodes().iter().map(|n| n.name.clone()).collect(),
            ),
        };
        let server = Arc::new(
            Server::new(client, cluster.resp.clone(), info, resp_addr)
                .with_admin(Arc::new(Admin::new(scheduler.clone()))),
        );
        if let Some((_, local)) = &local_scheduler {
            let runner = OperatorRunner::new(
                local.clone(),
                Admin::new(scheduler.clone()),
                Duration::from_millis(cluster.scheduler.schedule_interval_ms),
            );
            tasks.push(tokio::spawn(runner.run()));
        }
        let sweeper_runner = replica.as_ref().map(|r| r.handle().clone());
        tasks.push(tokio::spawn(watch_runtime()));
        tasks.push(tokio::spawn(crate::resp::expiry::run_sweeper(
            server.clone(),
            move || sweeper_runner.as_ref().is_some_and(|r| r.status().ready_leader),
        )));
        let (stop, stopped) = oneshot::channel::<()>();
        let server_task = tokio::spawn(serve(listener, server, async {
            let _ = stopped.await;
        }));
        tasks.shrink_to_fit();
        tracing::info!(node = %node.name, %resp_addr, %peer_addr, data_dir = %node.data_dir.display(), "ferrokv is ready");
        Ok(RunningNode {
            resp_addr,
            peer_addr,
            txn_server,
            driver,
            replica,
            tasks,
            stop,
            server_task,
            rpc_stop,
            rpc_task,
        })
    }

    /// The address Redis clients connect to.
    pub fn resp_addr(&self) -> SocketAddr {
        self.resp_addr
    }

    /// The address other nodes connect to.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// Stops accepting, lets in-flight commands finish, then flushes and closes the database.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        let _ = self.stop.send(());
        let _ = self.server_task.await;
        // A GC round only deletes versions nobody reads; stopping it mid-round is harmless.
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
        // Other nodes' raft streams never end by themselves: stop serving them outright.
        let _ = self.rpc_stop.send(());
        self.rpc_task.abort();
        let _ = self.rpc_task.await;
        let txn_server = self.txn_server;
        let driver = self.driver;
        let replica = self.replica;
        tokio::task::spawn_blocking(move || {
            driver.stop();
            if let Some(replica) = replica {
                replica.stop();
            }
            txn_server.engine().flush()
        })
        .await
        .expect("the store shutdown task panicked")
        .map_err(NodeError::Shutdown)?;
        tracing::info!("ferrokv stopped; the database is flushed and closed");
        Ok(())
    }

    /// Runs until `signal` completes, then shuts down.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<(), NodeError> {
        signal.await;
        self.shutdown().await
    }
}

/// `INFO ferrokv`: this node's store (regions held and led, those whose leader has not yet
/// applied an entry of its term, peers its leaders count pending or down, the largest
/// committed-but-unapplied gap of its peers, the most entries a follower of one of its leaders
/// lacks), and its scheduler replica (whether it hosts one, which
/// scheduler node leads as far as it knows).
fn node_probe(
    store: crate::raftstore::driver::StoreHandle<RocksEngine>,
    replica: Option<crate::scheduler::replica::ReplicaHandle>,
    scheduler_nodes: Vec<String>,
) -> crate::resp::NodeProbe {
    crate::resp::NodeProbe(Some(Arc::new(move || {
        let (store, replica, scheduler_nodes) = (store.clone(), replica.clone(), scheduler_nodes.clone());
        Box::pin(async move {
            let views = store.regions();
            let health = store.health().await;
            let leaders = views.iter().filter(|v| v.is_leader).count();
            let not_ready = views.iter().filter(|v| v.is_leader && !v.is_ready_leader).count();
            let pending: usize = health.values().map(|h| h.pending_peers.len()).sum();
            let down: usize = health.values().map(|h| h.down_peers.len()).sum();
            let lag = health.values().map(|h| h.apply_lag).max().unwrap_or(0);
            let follower_lag = health.values().map(|h| h.follower_lag).max().unwrap_or(0);
            let mut fields = vec![
                ("ferrokv_store_id", store.store_id().to_string()),
                ("ferrokv_regions", views.len().to_string()),
                ("ferrokv_leaders", leaders.to_string()),
                ("ferrokv_leaders_not_ready", not_ready.to_string()),
                ("ferrokv_pending_peers", pending.to_string()),
                ("ferrokv_down_peers", down.to_string()),
                ("ferrokv_max_apply_lag", lag.to_string()),
                ("ferrokv_max_follower_lag", follower_lag.to_string()),
                (
                    "ferrokv_scheduler_replica",
                    u8::from(replica.is_some()).to_string(),
                ),
            ];
            if let Some(replica) = &replica {
                let status = replica.status();
                let leader = status
                    .leader
                    .and_then(|id| scheduler_nodes.get(id as usize - 1).cloned())
                    .unwrap_or_default();
                fields.push(("ferrokv_scheduler_leader", leader));
                fields.push(("ferrokv_scheduler_term", status.term.to_string()));
            }
            fields
        }) as futures_util::future::BoxFuture<'static, _>
    })))
}

/// Step 3 of the module docs: the store's ident, bootstrapping the cluster or the store if
/// they are new.
async fn join_cluster(
    options: &NodeOptions,
    peer_addr: SocketAddr,
    engine: &RocksEngine,
    scheduler: &NodeScheduler,
    db_path: &std::path::Path,
) -> Result<StoreIdent, NodeError> {
    let store_error = |source| NodeError::Store {
        path: db_path.to_path_buf(),
        source,
    };
    let local = load_ident(engine).map_err(store_error)?;
    let info = cluster_info(options, scheduler).await?;
    let info = if info.cluster_id == 0 {
        let (stores, region, next_id) = initial_layout(&options.cluster);
        let cluster_id = scheduler
            .bootstrap(new_cluster_id(), stores, region, next_id)
            .await?;
        tracing::info!(cluster = cluster_id, "the cluster is bootstrapped");
        cluster_info(options, scheduler).await?
    } else {
        info
    };
    let name = &options.node.name;
    let mine = info.stores.iter().find(|s| &s.name == name).cloned();
    if let Some(ident) = local {
        if ident.cluster_id != info.cluster_id {
            return Err(NodeError::OtherCluster {
                path: options.node.data_dir.clone(),
                found: ident.cluster_id,
                expected: info.cluster_id,
            });
        }
        if let Some(store) = &mine
            && store.id != ident.store_id
        {
            return Err(NodeError::StoreMismatch {
                name: name.clone(),
                store_id: store.id,
                local: ident.store_id,
            });
        }
        update_store(options, peer_addr, scheduler, ident.store_id).await?;
        return Ok(ident);
    }
    let store_id = match mine {
        Some(store) => store.id,
        None => scheduler.alloc_ids(1).await?,
    };
    update_store(options, peer_addr, scheduler, store_id).await?;
    let ident = StoreIdent {
        cluster_id: info.cluster_id,
        store_id,
    };
    // Region 1's first replicas create it; anyone else gets it from its leader.
    let first = info
        .first_region
        .filter(|r| r.epoch == RegionEpoch::INITIAL && r.peer_on_store(store_id).is_some());
    bootstrap_store(engine, ident, first.as_ref()).map_err(store_error)?;
    Ok(ident)
}

/// Registers (or updates) this node's store and addresses.
async fn update_store(
    options: &NodeOptions,
    peer_addr: SocketAddr,
    scheduler: &NodeScheduler,
    store_id: u64,
) -> Result<(), NodeError> {
    let node = &options.node;
    scheduler
        .put_store(StoreMeta {
            id: store_id,
            name: node.name.clone(),
            peer_addr: peer_addr.to_string(),
            resp_addr: node.resp_addr.to_string(),
        })
        .await?;
    Ok(())
}

/// The cluster as the scheduler has it, retrying until a leader answers or the start-up
/// timeout passes.
async fn cluster_info(options: &NodeOptions, scheduler: &NodeScheduler) -> Result<ClusterInfo, NodeError> {
    let since = Instant::now();
    let timeout = Duration::from_secs(options.cluster.scheduler.startup_timeout_secs);
    loop {
        match scheduler.cluster().await {
            Ok(info) => return Ok(info),
            Err(e) if e.is_retryable() && since.elapsed() < timeout => {
                tracing::info!(waited_secs = since.elapsed().as_secs(), error = %e, "waiting for a scheduler leader");
            }
            Err(e) => {
                return Err(NodeError::SchedulerUnreachable {
                    waited_secs: since.elapsed().as_secs(),
                    nodes: options
                        .cluster
                        .scheduler_nodes()
                        .iter()
                        .map(|n| format!("{} ({})", n.name, n.peer_addr))
                        .collect::<Vec<_>>()
                        .join(", "),
                    last_error: e,
                });
            }
        }
    }
}

/// The first layout of a cluster: every configured node a store (ids 1.. in file order),
/// region 1 over every key with replicas on the first min(max_replicas, nodes) stores.
fn initial_layout(cluster: &ClusterConfig) -> (Vec<StoreMeta>, Region, u64) {
    let stores: Vec<StoreMeta> = cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| StoreMeta {
            id: i as u64 + 1,
            name: n.name.clone(),
            peer_addr: n.peer_addr.to_string(),
            resp_addr: n.resp_addr.to_string(),
        })
        .collect();
    let replicas = cluster.replication.max_replicas.min(stores.len()) as u64;
    let first_peer = stores.len() as u64 + 1;
    let peers = (0..replicas)
        .map(|i| Peer {
            id: first_peer + i,
            store_id: i + 1,
        })
        .collect();
    (stores, first_region(1, peers), first_peer + replicas)
}

async fn refresh_store_addrs(scheduler: &NodeScheduler, addrs: &RwLock<HashMap<u64, String>>) {
    if let Ok(info) = scheduler.cluster().await {
        let mut addrs = addrs.write();
        for store in info.stores {
            addrs.insert(store.id, store.peer_addr);
        }
    }
}

/// The size of the file system holding `path` and what an unprivileged writer may still use
/// of it; zeros where it cannot be read.
fn disk_space(path: &std::path::Path) -> (u64, u64) {
    match nix::sys::statvfs::statvfs(path) {
        Ok(fs) => {
            let unit = fs.fragment_size();
            (fs.blocks() * unit, fs.blocks_available() * unit)
        }
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the data directory's file system size");
            (0, 0)
        }
    }
}

/// Every second: report the regions this store leads to the scheduler (with their estimated
/// sizes) when they changed, each at least every 10 s; report the store itself (regions,
/// leaders, disk) when that changed and at least every `store_every`; and refresh the store
/// addresses the raft transport uses.
async fn run_heartbeats(
    store: crate::raftstore::driver::StoreHandle<RocksEngine>,
    scheduler: NodeScheduler,
    addrs: Arc<RwLock<HashMap<u64, String>>>,
    me: StoreMeta,
    splits: Arc<AtomicU64>,
    store_every: Duration,
) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    let mut store_reported_at: Option<Instant> = None;
    let mut reported: HashMap<u64, (Region, Peer)> = HashMap::new();
    // What each region had been written at its last heartbeat.
    let mut reported_flow: HashMap<u64, WriteFlow> = HashMap::new();
    let mut reported_counts: Option<(u64, u64)> = None;
    let mut round = 0u64;
    loop {
        interval.tick().await;
        round += 1;
        let health = store.health().await;
        for view in store.regions() {
            if !view.is_leader {
                continue;
            }
            let report = (view.region.clone(), view.peer);
            // Unchanged reports go out every 10 s; changes at once.
            if reported.get(&view.region.id) == Some(&report) && !round.is_multiple_of(10) {
                continue;
            }
            let estimate = store
                .engine()
                .approximate_range(&view.region.start_key, &view.region.end_key);
            let written = store.written(view.region.id);
            let since = written.since(reported_flow.get(&view.region.id).copied().unwrap_or_default());
            let stats = RegionStats {
                approximate_size: estimate.bytes,
                approximate_keys: estimate.keys,
                written_bytes: since.bytes,
                written_keys: since.keys,
                pending_peers: health
                    .get(&view.region.id)
                    .map(|h| h.pending_peers.clone())
                    .unwrap_or_default(),
                down_peers: health
                    .get(&view.region.id)
                    .map(|h| h.down_peers.clone())
                    .unwrap_or_default(),
            };
            match scheduler
                .region_heartbeat(view.region.clone(), view.peer, stats)
                .await
            {
                Ok(()) => {
                    reported.insert(view.region.id, report);
                    reported_flow.insert(view.region.id, written);
                }
                Err(e) => tracing::debug!(region = view.region.id, error = %e, "region heartbeat failed"),
            }
        }
        if round.is_multiple_of(5) {
            refresh_store_addrs(&scheduler, &addrs).await;
        }
        // Every `store_every`, and at once when the store's region or leader count changed.
        let views = store.regions();
        let counts = (
            views.len() as u64,
            views.iter().filter(|v| v.is_leader).count() as u64,
        );
        let due = store_reported_at.is_none_or(|at| at.elapsed() >= store_every);
        if due || reported_counts != Some(counts) {
            let (capacity_bytes, available_bytes) = disk_space(store.engine().path());
            let stats = StoreStats {
                region_count: counts.0,
                leader_count: counts.1,
                capacity_bytes,
                available_bytes,
                used_bytes: store.engine().used_bytes(),
                auto_splits: splits.load(Ordering::Relaxed),
            };
            match scheduler.store_heartbeat(me.clone(), stats).await {
                Ok(()) => {
                    reported_counts = Some(counts);
                    store_reported_at = Some(Instant::now());
                }
                Err(e) => tracing::debug!(error = %e, "store heartbeat failed"),
            }
        }
    }
}

/// Every `region.split_check_interval_secs`: splits each region this store leads whose estimated size is
/// over `region.max_size_bytes`, at the key found by `raftstore::split_check`.
/// Skips its rounds while `CLUSTER SCHEDULER PAUSE split-checker` holds (asked of the
/// scheduler once per round, and only when some region is over the limit); counts its splits
/// in `splits`, which store heartbeats report.
async fn run_split_checker(
    store: crate::raftstore::driver::StoreHandle<RocksEngine>,
    ids: NodeScheduler,
    config: crate::config::RegionConfig,
    splits: Arc<AtomicU64>,
) {
    let mut interval = tokio::time::interval(Duration::from_secs(config.split_check_interval_secs.max(1)));
    interval.tick().await;
    // What each region had been written when it was last read; at the first round, the regions
    // led here then count as read.
    let mut checked: Option<HashMap<u64, WriteFlow>> = None;
    loop {
        interval.tick().await;
        let mut paused: Option<bool> = None;
        let views = store.regions();
        let checked = checked.get_or_insert_with(|| {
            views
                .iter()
                .filter(|v| v.is_leader)
                .map(|v| (v.region.id, store.written(v.region.id)))
                .collect()
        });
        checked.retain(|id, _| views.iter().any(|v| v.region.id == *id));
        for view in views {
            if !view.is_ready_leader {
                continue;
            }
            // A region new here (split off, or its lead moved here) is read once: the estimate
            // below cannot see into the memtables, so the right half of a split whose data
            // is still all in memory would estimate at nothing and never split again.
            let last_read = checked.get(&view.region.id).copied();
            let new_here = last_read.is_none();
            let estimate = store
                .engine()
                .approximate_range(&view.region.start_key, &view.region.end_key);
            let written = store.written(view.region.id);
            let fresh = written.since(last_read.unwrap_or_default());
            if !new_here
                && estimate.bytes <= config.max_size_bytes
                && fresh.bytes < config.max_size_bytes / 16
            {
                continue;
            }
            if paused.is_none() {
                paused = Some(match ids.status().await {
                    Ok(status) => status
                        .schedulers
                        .iter()
                        .any(|s| s.name == crate::scheduler::board::SPLIT_CHECKER && s.paused),
                    Err(e) => {
                        tracing::debug!(error = %e, "split checker: no scheduler status; skipping the round");
                        true
                    }
                });
            }
            if paused == Some(true) {
                break;
            }
            let engine = store.engine().clone();
            let region = view.region.clone();
            let (split_size, max_size) = (config.split_size_bytes, config.max_size_bytes);
            checked.insert(view.region.id, written);
            let found = tokio::task::spawn_blocking(move || {
                split_check::find_split_keys(
                    &engine.snapshot(),
                    &region,
                    split_size,
                    max_size,
                    MAX_SPLITS_PER_CHECK,
                )
            })
            .await;
            let keys = match found {
                Ok(Ok(keys)) => keys,
                Ok(Err(e)) => {
                    tracing::warn!(region = view.region.id, error = %e, "split check failed");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(region = view.region.id, error = %e, "split check failed");
                    continue;
                }
            };
            // From the last key to the first: each split leaves the left part in the region
            // this store leads already, ready for the next one.
            for key in keys.into_iter().rev() {
                match split_at(&store, ids.as_ref(), key).await {
                    Ok(new_region) => {
                        splits.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            region = view.region.id,
                            new_region,
                            estimated_bytes = estimate.bytes,
                            "split a region over region.max_size_bytes"
                        )
                    }
                    Err(e) => {
                        tracing::warn!(region = view.region.id, error = %e, "automatic split failed; will retry");
                        break;
                    }
                }
            }
        }
    }
}

/// Most split keys one check of a region acts on; a region still too big after them is split
/// further at the next check.
const MAX_SPLITS_PER_CHECK: usize = 32;

/// Splits the region holding `key` at it. The store's own picture of the region may trail the
/// split just applied by a moment (its epoch is updated once the raft thread hears of it), so
/// a refusal for a stale epoch is retried a few times.
async fn split_at(
    store: &crate::raftstore::driver::StoreHandle<RocksEngine>,
    ids: &dyn crate::rpc::kv::IdAllocator,
    key: Vec<u8>,
) -> Result<u64, crate::percolator::MvccError> {
    let mut attempt = 0;
    loop {
        match crate::rpc::kv::propose_split(store, ids, key.clone()).await {
            Err(crate::percolator::MvccError::Region(e)) if e.is_retryable() && attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => return other,
        }
    }
}

/// Collects old MVCC versions every `gc.interval_secs`, on the node whose scheduler replica
/// leads (one collector for the cluster; the others skip their rounds).
async fn run_gc(
    store: NodeTxnClient,
    config: crate::config::GcConfig,
    replica: Option<crate::scheduler::replica::ReplicaHandle>,
) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(config.interval_secs));
    interval.tick().await;
    loop {
        interval.tick().await;
        if !replica.as_ref().is_some_and(|r| r.status().ready_leader) {
            continue;
        }
        match store.gc(config.life_time_secs * 1_000).await {
            Ok(report) if report.versions_removed > 0 || report.locks_resolved > 0 => {
                tracing::info!(
                    safe_point = %report.safe_point,
                    versions_removed = report.versions_removed,
                    locks_resolved = report.locks_resolved,
                    "MVCC garbage collection"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "MVCC garbage collection failed; will retry"),
        }
    }
}

/// An id for a new cluster: the clock and the process id, so two clusters started apart never
/// share one.
fn new_cluster_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 48)
}

/// Logs when this node's tokio workers were too busy to run a task for a long stretch: the
/// raft transport runs on them, so a stall this long makes followers campaign.
async fn watch_runtime() {
    const PERIOD: Duration = Duration::from_millis(100);
    const STALL: Duration = Duration::from_millis(300);
    let mut last = Instant::now();
    loop {
        tokio::time::sleep(PERIOD).await;
        let late = last.elapsed().saturating_sub(PERIOD);
        if late >= STALL {
            tracing::warn!(
                late_ms = late.as_millis() as u64,
                "the tokio workers were stalled"
            );
        }
        last = Instant::now();
    }
}
