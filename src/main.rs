//! The `ferrokv` binary: parse flags, load the configuration, run a node until SIGINT/SIGTERM.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ferrokv::config::ClusterConfig;
use ferrokv::node::{NodeOptions, RunningNode};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: a request allocates and frees many small buffers and
/// hands some to other threads (raft, apply); under `redis-benchmark -t set` glibc spent about
/// an eighth of the process's CPU in malloc, free and consolidation, and SET throughput rose by
/// about a third with mimalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Redis-protocol server on a transactional, replicated key-value store.
///
/// With no arguments, runs a complete single-node database on 127.0.0.1:6379 with its data in
/// ./ferrokv-data.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Cluster configuration file (see cluster.yaml in the repository for an example).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Which node of the configuration this process is (needed when it lists several).
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// Address to accept Redis clients on (overrides the node's resp_addr IP).
    #[arg(long, value_name = "IP")]
    bind: Option<IpAddr>,
    /// Port to accept Redis clients on (overrides the node's resp_addr port).
    #[arg(long)]
    port: Option<u16>,
    /// Port other nodes reach this node on (overrides the node's peer_addr port; 0 picks a
    /// free one, for a single node).
    #[arg(long)]
    peer_port: Option<u16>,
    /// Where the node keeps its data (overrides the node's data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive such as
    /// "ferrokv=debug". RUST_LOG, when set, wins.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cli.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let options = match options(&cli) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("ferrokv: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ferrokv: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrokv: {e}");
            ExitCode::FAILURE
        }
    }
}

fn options(cli: &Cli) -> Result<NodeOptions, Box<dyn std::error::Error>> {
    let cluster = match &cli.config {
        Some(path) => ClusterConfig::load(path)?,
        None => ClusterConfig::default(),
    };
    let mut node = cluster.node(cli.node.as_deref())?.clone();
    if let Some(ip) = cli.bind {
        node.resp_addr.set_ip(ip);
    }
    if let Some(port) = cli.port {
        node.resp_addr.set_port(port);
    }
    if let Some(port) = cli.peer_port {
        node.peer_addr.set_port(port);
    }
    if let Some(dir) = &cli.data_dir {
        node.data_dir = dir.clone();
    }
    let mut cluster = cluster;
    if let Some(entry) = cluster.nodes.iter_mut().find(|n| n.name == node.name) {
        *entry = node.clone();
    }
    Ok(NodeOptions {
        cluster,
        node,
        config_file: cli.config.clone(),
    })
}

async fn run(options: NodeOptions) -> Result<(), Box<dyn std::error::Error>> {
    // Handlers go in before the node listens: once a client can connect, SIGTERM is a clean
    // shutdown, never the default kill.
    let shutdown = shutdown_signal()?;
    let node = RunningNode::start(options).await?;
    node.run_until(shutdown).await?;
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers now; the future completes on the first signal.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        }
    })
}
