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
//! - [`kv`]: the KV service (the Percolator commands with a region context) and its client.
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
//! through a fresh route), except a one-phase commit, whose outcome is then unknown and is
//! learned from its primary key.
//!
//! ## Caveats
//!
//! - Store addresses come from the scheduler's store directory, refreshed every few seconds.
//! - Connections are plain TCP (no TLS, no authentication between nodes).

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

/// The generated protobuf and gRPC code.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("ferrokv.raft");
}
