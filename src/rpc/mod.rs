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
//! - [`convert`]: our types to and from their protobuf forms, refusing malformed input.
//!
//! Delivery contract: raft messages may be dropped (a full queue, a broken connection) and
//! the raft core retries; a snapshot's outcome is always reported back to the sending store.
//!
//! ## Caveats
//!
//! - Stores are addressed through a resolver the node supplies (today: the `peer_addr`s of
//!   `cluster.yaml`); the scheduler's store directory will take its place.
//! - The KV and scheduler services are not built yet.

pub mod convert;
pub mod kv;
pub mod router;
pub mod scheduler;
pub mod server;
pub mod transport;

#[cfg(test)]
mod tests;

/// The generated protobuf and gRPC code.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("ferrokv.raft");
}
