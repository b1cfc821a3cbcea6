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
    /// The `INFO ferrokv` fields about the node's store and scheduler replica.
    pub probe: NodeProbe,
}

/// Field/value pairs about a node's store and scheduler replica, computed when `INFO` asks.
#[derive(Clone, Default)]
pub struct NodeProbe(pub Option<Arc<ProbeFn>>);

/// What a [`NodeProbe`] calls.
pub type ProbeFn =
    dyn Fn() -> futures_util::future::BoxFuture<'static, Vec<(&'static str, String)>> + Send + Sync;

impl std::fmt::Debug for NodeProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "NodeProbe(..)"
        } else {
            "NodeProbe(none)"
        })
    }
}

impl NodeProbe {
    pub async fn fields(&self) -> Vec<(&'static str, String)> {
        match &self.0 {
            Some(probe) => probe().await,
            None => Vec::new(),
        }
    }
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
    /// Per command (`INFO commandstats`), by the command's name.
    pub commands: DashMap<&'static str, CommandStats>,
    /// Error replies by their first word (`INFO errorstats`), at most [`MAX_ERROR_KINDS`].
    pub errors: DashMap<String, AtomicU64>,
}

/// Distinct error kinds `INFO errorstats` tracks (Redis's limit); later kinds count only in
/// `total_error_replies`.
pub const MAX_ERROR_KINDS: usize = 128;

/// One command's counters, as Redis's `cmdstat_<name>` line has them.
#[derive(Default)]
pub struct CommandStats {
    /// Times it ran.
    pub calls: AtomicU64,
    /// Microseconds it ran for, in total.
    pub usec: AtomicU64,
    /// Times it was refused before running (wrong number of arguments).
    pub rejected: AtomicU64,
    /// Times it ran and answered an error.
    pub failed: AtomicU64,
}

impl Stats {
    /// `name` ran for `elapsed` (once per call; `calls` of a pipelined batch share its time).
    pub fn command_ran(&self, name: &'static str, calls: u64, elapsed: Duration, failed: u64) {
        // A shared (read) lock of the map's shard once the command has run before.
        let entry = match self.commands.get(name) {
            Some(entry) => entry,
            None => self.commands.entry(name).or_default().downgrade(),
        };
        entry.calls.fetch_add(calls, Ordering::Relaxed);
        entry.usec.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        entry.failed.fetch_add(failed, Ordering::Relaxed);
    }

    /// `name` was refused before it ran.
    pub fn command_rejected(&self, name: &'static str) {
        self.commands
            .entry(name)
            .or_default()
            .rejected
            .fetch_add(1, Ordering::Relaxed);
    }

    /// An error reply went out with `message`.
    pub fn error_replied(&self, message: &str) {
        self.error_replies.fetch_add(1, Ordering::Relaxed);
        let kind = message.split(' ').next().unwrap_or("ERR");
        if let Some(count) = self.errors.get(kind) {
            count.fetch_add(1, Ordering::Relaxed);
        } else if self.errors.len() < MAX_ERROR_KINDS {
            self.errors
                .entry(kind.to_string())
                .or_default()
                .fetch_add(1, Ordering::Relaxed);
        }
    }
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
