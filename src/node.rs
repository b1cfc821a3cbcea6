//! Wiring one node: open the engine, start the store, serve RESP, shut down cleanly.
//!
//! A node keeps its RocksDB database in `<data_dir>/db`. It runs the multi-raft store (a raft
//! thread and an apply thread, `raftstore::driver`), the timestamp oracle, the Percolator
//! transaction server at the store's region leaders and its client, under the RESP server,
//! plus a task that garbage-collects old MVCC versions every `gc.interval_secs`.
//!
//! **A single node is a cluster of one.** On its first start the node bootstraps its store
//! (store 1 of a new cluster) with region 1, covering every key, whose only peer is here; its
//! raft group of one elects itself at once. Every write is a raft proposal, answered once it
//! is committed (the log fsync'd) and applied, exactly as in a cluster. A restart replays the
//! log from the applied index.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{ClusterConfig, ConfigError, NodeConfig};
use crate::percolator::client::{ClientConfig, PercolatorClient};
use crate::percolator::server::TxnServer;
use crate::raftstore::cmd::RaftstoreError;
use crate::raftstore::driver::{DriverOptions, StoreDriver};
use crate::raftstore::peer::PeerOptions;
use crate::resp::{NodeInfo, Server, serve};
use crate::scheduler::tso::{EngineTsoStore, Tso, TsoClient, TsoError, system_clock};
use crate::storage::{Engine, RocksEngine, RocksOptions, StorageError};

/// The transaction server as this node runs it.
pub type NodeTxnServer = TxnServer<RocksEngine>;
/// The client the RESP layer runs its commands through.
pub type NodeTxnClient = PercolatorClient<NodeTxnServer>;

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
    #[error("multi-node clusters are not supported yet: {count} nodes are configured, this build runs one")]
    MultiNode { count: usize },
    #[error("timestamp oracle: {0}")]
    Tso(#[from] TsoError),
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
    txn_server: Arc<NodeTxnServer>,
    driver: StoreDriver<RocksEngine>,
    gc_task: JoinHandle<()>,
    stop: oneshot::Sender<()>,
    server_task: JoinHandle<()>,
}

impl RunningNode {
    /// Opens the data directory and starts serving RESP.
    pub async fn start(options: NodeOptions) -> Result<Self, NodeError> {
        if options.cluster.nodes.len() > 1 {
            return Err(NodeError::MultiNode {
                count: options.cluster.nodes.len(),
            });
        }
        let node = &options.node;
        let db_path = node.data_dir.join("db");
        let engine =
            RocksEngine::open(&db_path, &RocksOptions::default()).map_err(|source| NodeError::Storage {
                path: db_path.clone(),
                source,
            })?;
        let tso = Arc::new(Tso::open(
            EngineTsoStore(engine.clone()),
            system_clock(),
            Tso::DEFAULT_WINDOW_MS,
        )?);
        let tso_client = TsoClient::start(tso);
        let store_error = |source| NodeError::Store {
            path: db_path.clone(),
            source,
        };
        let raft = &options.cluster.raft;
        let peer_options = PeerOptions {
            election_tick: raft.election_timeout_ticks as usize,
            heartbeat_tick: raft.heartbeat_ticks as usize,
            raft_log_gc_tick_interval: (options.cluster.raft_log_gc.tick_ms / raft.tick_ms.max(1)).max(1)
                as usize,
            raft_log_gc_count_limit: options.cluster.raft_log_gc.count_limit,
            ..PeerOptions::default()
        };
        let (driver, _ident) = StoreDriver::start_cluster_of_one(
            engine,
            new_cluster_id(),
            peer_options,
            DriverOptions {
                tick_ms: raft.tick_ms,
            },
            u64::from(std::process::id()),
        )
        .map_err(store_error)?;
        let txn_server = Arc::new(
            TxnServer::new(driver.handle().clone(), tso_client.clone())
                .with_gc_filter(crate::resp::HashFieldGcFilter),
        );
        let store = PercolatorClient::new(txn_server.clone(), tso_client, ClientConfig::default());
        let gc_task = tokio::spawn(run_gc(store.clone(), options.cluster.gc.clone()));
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
        let info = NodeInfo {
            node_name: node.name.clone(),
            config_file: options.config_file.clone(),
            data_dir: node.data_dir.clone(),
        };
        let server = Arc::new(Server::new(
            store.clone(),
            options.cluster.resp.clone(),
            info,
            resp_addr,
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        let server_task = tokio::spawn(serve(listener, server, async {
            let _ = stopped.await;
        }));
        tracing::info!(node = %node.name, %resp_addr, data_dir = %node.data_dir.display(), "ferrokv is ready");
        Ok(RunningNode {
            resp_addr,
            txn_server,
            driver,
            gc_task,
            stop,
            server_task,
        })
    }

    /// The address Redis clients connect to.
    pub fn resp_addr(&self) -> SocketAddr {
        self.resp_addr
    }

    /// Stops accepting, lets in-flight commands finish, then flushes and closes the database.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        let _ = self.stop.send(());
        let _ = self.server_task.await;
        // A GC round only deletes versions nobody reads; stopping it mid-round is harmless.
        self.gc_task.abort();
        let _ = self.gc_task.await;
        let txn_server = self.txn_server;
        let driver = self.driver;
        tokio::task::spawn_blocking(move || {
            driver.stop();
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

/// Collects old MVCC versions every `gc.interval_secs`.
async fn run_gc(store: NodeTxnClient, config: crate::config::GcConfig) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(config.interval_secs));
    interval.tick().await;
    loop {
        interval.tick().await;
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
