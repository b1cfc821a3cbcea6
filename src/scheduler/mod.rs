//! # The scheduler (placement driver)
//!
//! The cluster's source of timestamps and ids, its directory of stores and regions (kept by
//! heartbeats), and its placement decisions. The decisions and the record of operators live
//! here; the operator runner that carries them out step by step, through requests to region
//! leaders, is `rpc::operators` (it needs the node's RPC clients), started on every scheduler
//! node and working only where the replica leads.
//!
//! - [`tso`]: the timestamp oracle. Every transaction's `start_ts` and `commit_ts` comes from
//!   here: 64-bit, physical milliseconds << 18 | logical counter, strictly increasing for all
//!   callers and across restarts. [`tso::TsoClient`] batches concurrent requests into one call.
//! - [`state`]: the scheduler's replicated state as a deterministic state machine: the
//!   timestamp bound, the id allocator, the stores and the region directory (with TinyKV's
//!   epoch rules for region reports), with its encoding.
//! - [`replica`]: one replica of the scheduler's raft group (our raft core on a thread of its
//!   own, its log in the node's engine under [`SCHEDULER_PREFIX`]), hosted by each of the
//!   `scheduler_nodes`.
//! - [`checkers`]: the placement decisions (replica checker, balance-region, balance-leader)
//!   as pure functions over a snapshot of the cluster; `rpc::operators` runs them.
//! - [`board`]: the scheduler names, and the leader's soft picture of the operators it runs
//!   and what each scheduler has done (`CLUSTER SCHEDULER`).
//! - [`service`]: the requests the leader replica serves (timestamps from an oracle over the
//!   replicated bound, ids, bootstrap, stores, regions, heartbeats) and [`service::SchedulerApi`],
//!   the interface stores and clients use, in process or over gRPC.
//!
//! ## Caveats
//!
//! - It uses the region types of `raftstore::meta` (an arrow pointing down the layer table).

pub mod board;
pub mod checkers;
pub mod replica;
#[cfg(test)]
mod replica_tests;
pub mod service;
pub mod state;
pub mod tso;

/// Keys the scheduler stores in the `raft` column family start with this byte; raft's own keys
/// start with others.
pub const SCHEDULER_PREFIX: u8 = 0x02;
