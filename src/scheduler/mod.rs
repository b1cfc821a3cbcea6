//! # The scheduler (placement driver)
//!
//! The cluster's single source of timestamps today; ids, cluster metadata, heartbeats and the
//! balance schedulers join it as the multi-raft store arrives.
//!
//! - [`tso`]: the timestamp oracle. Every transaction's `start_ts` and `commit_ts` comes from
//!   here: 64-bit, physical milliseconds << 18 | logical counter, strictly increasing for all
//!   callers and across restarts. [`tso::TsoClient`] batches concurrent requests into one call.
//!
//! ## Caveats
//!
//! - The scheduler runs inside the node's process and keeps its state in the node's engine
//!   (column family `raft`, under the `SCHEDULER_PREFIX` keys). It is not replicated yet.

pub mod tso;

/// Keys the scheduler stores in the `raft` column family start with this byte; raft's own keys
/// start with others.
pub const SCHEDULER_PREFIX: u8 = 0x02;
