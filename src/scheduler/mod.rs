//! # The scheduler (placement driver)
//!
//! The cluster's source of timestamps and ids, and its directory of stores and regions; the
//! placement work (heartbeats, balance, operators) grows around it.
//!
//! - [`tso`]: the timestamp oracle. Every transaction's `start_ts` and `commit_ts` comes from
//!   here: 64-bit, physical milliseconds << 18 | logical counter, strictly increasing for all
//!   callers and across restarts. [`tso::TsoClient`] batches concurrent requests into one call.
//! - [`state`]: the scheduler's replicated state as a deterministic state machine: the
//!   timestamp bound, the id allocator, the stores and the region directory (with TinyKV's
//!   epoch rules for region reports), with its encoding.
//!
//! ## Caveats
//!
//! - The scheduler runs inside the node's process and keeps its state in the node's engine
//!   (column family `raft`, under the `SCHEDULER_PREFIX` keys). It is not replicated yet:
//!   [`state`] is the state machine its raft group will replicate, not yet driven by one.
//! - It uses the region types of `raftstore::meta` (an arrow pointing down the layer table).

pub mod state;
pub mod tso;

/// Keys the scheduler stores in the `raft` column family start with this byte; raft's own keys
/// start with others.
pub const SCHEDULER_PREFIX: u8 = 0x02;
