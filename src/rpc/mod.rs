//! # Node RPC: gRPC between nodes
//!
//! Stores talk to each other over gRPC (tonic and prost; the `.proto` files are in `proto/`,
//! compiled at build time with the protoc that the `protoc-bin-vendored` crate ships).
//!
//! - [`transport`]: `GrpcTransport`, the network [`Transport`](crate::raftstore::store::Transport)
//!   of a store: one long-lived stream of raft message batches per destination store, and each
//!   snapshot on a stream of its own, in chunks of at most 1 MiB, so raft messages never wait
//!   behind a snapshot.
//! - [`server`]: the receiving side, handing what arrives to the local store.
//! - [`kv`]: the KV service (the Percolator commands with a region context) and its client;
//!   reads, prewrites and commits travel over one `BatchCommands` stream per pair of nodes.
//! - [`router`]: the `KvApi` a node's transaction client calls: each command goes to its
//!   region's leader (this node's own server, or another node's over gRPC), with a region
//!   cache corrected by the stores' answers.
//! - [`scheduler`]: the scheduler service on scheduler nodes; [`scheduler_client`]: the
//!   client every node uses (following "not leader" hints) and the transport of the scheduler
//!   replicas' raft traffic.
//! - [`admin`]: the cluster administration of `CLUSTER`'s subcommands, from any node.
//! - [`operators`]: the operator runner, on the node leading the scheduler: the placement
//!   decisions of `scheduler::checkers` carried out step by step through [`admin`].
//! - [`convert`]: our types to and from their protobuf forms, refusing malformed input.
//!
//! Delivery contract: raft messages may be dropped (a full queue, a broken connection) and
//! the raft core retries; a snapshot's outcome is always reported back to the sending store.
//! A KV request whose answer is lost reports the store unreachable (the client retries
//! through a fresh route), except a one-phase commit that may have been sent, whose outcome
//! is then unknown and is learned from its primary key. The node's gRPC server sets
//! `TCP_NODELAY` on every connection it accepts ([`incoming`]), and its raft and KV services
//! (and the KV client) take messages of any size ([`MAX_MESSAGE_BYTES`]).
//!
//! **Dead peers are noticed in seconds.** Every connection to another node ([`endpoint`])
//! pings it over HTTP/2 every [`KEEPALIVE_INTERVAL`] and counts it broken when a ping goes
//! unanswered for [`KEEPALIVE_TIMEOUT`], failing the requests in flight on it. Without this, a
//! request sent to a node that was cut off by the network or stopped (`SIGSTOP`) waits for TCP
//! to give up, which takes minutes, and every client whose command is forwarded there waits
//! with it. KV requests also have an overall deadline ([`kv_client::KV_REQUEST_TIMEOUT`]) for
//! a node that answers pings but not the request.
//!
//! ## Caveats
//!
//! - Store addresses come from the scheduler's store directory, refreshed every few seconds.
//! - Connections are plain TCP (no TLS, no authentication between nodes).

use std::time::Duration;

use tonic::transport::Endpoint;
use tonic::transport::server::TcpIncoming;

pub mod admin;
pub mod convert;
pub mod kv;
pub mod kv_client;
pub mod operators;
pub mod router;
pub mod scheduler;
pub mod scheduler_client;
pub mod server;
pub mod transport;

#[cfg(test)]
mod tests;

/// The largest KV or raft message a node accepts from another (a request, a batch of
/// answers, a batch of raft messages). gRPC's default, 4 MiB, refused a forwarded `SET` or
/// `GET` of a larger value, and worse, a raft batch carrying its log entry: the stream broke,
/// was opened again and sent the same batch, and the region took no more writes. Nodes of one
/// cluster trust each other, and the size of a value is bounded where it enters, by the RESP
/// layer's limit on bulk strings.
pub const MAX_MESSAGE_BYTES: usize = usize::MAX;

/// How long connecting to another node may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a connection to another node is probed (also while idle).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// How long a probe may go unanswered before the connection counts as broken.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The endpoint of another node's gRPC server at `addr` (`host:port`), with the connect
/// timeout and keepalive every connection between nodes uses.
pub fn endpoint(addr: &str) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true))
}

/// The connections another node opens to this one's gRPC server on `listener`, with
/// `TCP_NODELAY` set on each. A server given its own listener applies none of its builder's
/// socket options, and without it an answer (a KV reply, a batch of timestamps) written while
/// the last one is unacknowledged waits for the peer's delayed ACK: up to 40 ms on Linux.
pub fn incoming(listener: tokio::net::TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// The generated protobuf and gRPC code.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("ferrokv.raft");
}
