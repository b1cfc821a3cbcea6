//! The accept loop, the state all connections share, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::admin::ClusterAdmin;
use super::blocked::BlockedClients;
use super::combiner::Combiner;
use super::connection::Connection;
use super::scan_cursors::ScanCursors;
use super::session::ClientHandle;
use crate::config::RespConfig;
use crate::percolator::TxnClient;
use crate::percolator::latches::Latches;

/// Facts about this node that `INFO` reports.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    pub node_name: String,
    pub config_file: Option<PathBuf>,
    pub data_dir: PathBuf,
    /// The oldest a `WATCH` may be when its `EXEC` starts, in milliseconds: half of
    /// `gc.life_time_secs`. Garbage collection removes delete records below its safe point,
    /// which is at least `life_time` old, so an older watch could miss a deletion.
    pub watch_horizon_ms: u64,
}

/// Counters `INFO stats` reports.
#[derive(Default)]
pub struct Stats {
    pub connections_received: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub commands_processed: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    pub error_replies: AtomicU64,
    /// Keys the expiry sweeper deleted (`INFO stats` `expired_keys`).
    pub expired_keys: AtomicU64,
}

/// What every connection of a RESP server shares.
pub struct Server<C: TxnClient> {
    pub store: C,
    pub config: RespConfig,
    pub node: NodeInfo,
    pub stats: Stats,
    /// Connected clients by id.
    pub clients: DashMap<u64, Arc<ClientHandle>>,
    pub cursors: ScanCursors,
    /// Serialize same-key write commands on this node (see `latches`).
    pub latches: Latches,
    /// Runs concurrent writes of one key together (see `combiner`).
    pub combiner: Combiner,
    /// Clients blocked in `BLPOP` and its siblings (see `blocked`).
    pub blocked: BlockedClients,
    /// Encoding parameters set with `CONFIG SET` (they have no effect; see
    /// `cmd::server::ENCODING_PARAMETERS`).
    pub encoding_settings: parking_lot::Mutex<std::collections::HashMap<&'static str, String>>,
    pub started: Instant,
    /// The address the listener is bound to.
    pub local_addr: SocketAddr,
    /// A 40-hex-digit id of this process, as Redis's `run_id`.
    pub run_id: String,
    /// The cluster's administration (`CLUSTER REGIONS`...), where there is a cluster.
    pub admin: Option<Arc<dyn ClusterAdmin>>,
    next_client_id: AtomicU64,
    connected: AtomicUsize,
}

impl<C: TxnClient> Server<C> {
    pub fn new(store: C, config: RespConfig, node: NodeInfo, local_addr: SocketAddr) -> Self {
        Server {
            store,
            config,
            node,
            stats: Stats::default(),
            clients: DashMap::new(),
            cursors: ScanCursors::default(),
            latches: Latches::default(),
            combiner: Combiner::default(),
            blocked: BlockedClients::default(),
            encoding_settings: Default::default(),
            started: Instant::now(),
            local_addr,
            run_id: make_run_id(),
            admin: None,
            next_client_id: AtomicU64::new(1),
            connected: AtomicUsize::new(0),
        }
    }

    /// Serves `CLUSTER`'s administration subcommands from `admin`.
    pub fn with_admin(mut self, admin: Arc<dyn ClusterAdmin>) -> Self {
        self.admin = Some(admin);
        self
    }

    pub fn connected_clients(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }
}

fn make_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    // Two independently seeded hashes give 128 random bits; Redis's run_id is 160, shown as hex.
    let mut out = String::new();
    for _ in 0..3 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()));
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out.truncate(40);
    out
}

/// Accepts connections on `listener` until `shutdown` completes, then stops accepting, lets
/// every connection finish the command it is running (up to `shutdown_grace_ms`), and returns.
pub async fn serve<C: TxnClient>(
    listener: TcpListener,
    server: Arc<Server<C>>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let tracker = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (socket, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: keep serving those already connected,
                // and try again shortly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        server.stats.connections_received.fetch_add(1, Ordering::Relaxed);
        if server.connected.fetch_add(1, Ordering::AcqRel) >= server.config.max_clients {
            server.connected.fetch_sub(1, Ordering::AcqRel);
            server.stats.connections_rejected.fetch_add(1, Ordering::Relaxed);
            tracker.spawn(refuse(socket));
            continue;
        }
        let server = server.clone();
        let stop = stop_rx.clone();
        tracker.spawn(async move {
            let id = server.next_client_id.fetch_add(1, Ordering::Relaxed);
            match Connection::new(socket, addr, id, server.clone()) {
                Ok(connection) => connection.run(stop).await,
                Err(e) => tracing::debug!(%addr, error = %e, "connection setup failed"),
            }
            server.connected.fetch_sub(1, Ordering::AcqRel);
        });
    }
    drop(listener);
    tracing::info!(
        connections = server.connected_clients(),
        "shutting down: no new connections"
    );
    let _ = stop_tx.send(true);
    tracker.close();
    let grace = Duration::from_millis(server.config.shutdown_grace_ms);
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!("connections still busy after the shutdown grace period; closing them");
    }
}

/// Tells a client over the limit why, as Redis does, and closes.
async fn refuse(mut socket: TcpStream) {
    let _ = socket.write_all(b"-ERR max number of clients reached\r\n").await;
    let _ = socket.shutdown().await;
}
