//! # Transactions: Percolator, server and client
//!
//! The RESP layer sees the store only through [`TxnClient`] and [`Transaction`]: begin a
//! transaction, read at its snapshot, buffer writes, commit. Every Redis data command is one
//! transaction (`EXEC` runs all its commands in one), so a read-modify-write (`INCR`, `APPEND`,
//! `MSETNX`) is atomic: if another transaction committed one of its keys after it began, its
//! commit fails with [`TxnError::WriteConflict`] and the caller runs it again from the start.
//!
//! **Isolation: snapshot isolation.** A transaction reads exactly the transactions committed
//! before its `start_ts`, plus its own writes; its commit fails if any key it writes was
//! committed by another transaction after its start (first committer wins). Write skew is
//! possible. [`Transaction::watch`] closes that gap for chosen keys: the commit also fails if a
//! watched key's value changed after the watch timestamp, which is what Redis `WATCH` needs.
//!
//! **Durability.** A commit returns only after its writes are durable: every command's writes
//! are one raft proposal to the region holding its keys, answered once the entry is committed
//! (fsync'd on a majority of the region's stores) and applied.
//!
//! ## The pieces, TiKV's way
//!
//! - Data layout: [`key`] (memcomparable keys with inverted timestamps), [`records`] (`Lock`
//!   and `Write` byte layouts), [`mvcc`] (`MvccTxn` write buffer, `MvccReader`).
//! - [`actions`]: prewrite, commit, rollback and check-status of *one key*; pure functions.
//! - [`commands`]: Get, Prewrite, Commit, Scan, CheckTxnStatus, BatchRollback, ResolveLock,
//!   looping over keys against one snapshot and returning their writes.
//! - [`server`]: runs commands at the region leaders of this node's store, under [`latches`],
//!   and proposes their writes to the region's raft group; one-phase commit with in-memory
//!   locks; the [`server::KvApi`] clients call.
//! - [`client`]: the coordinator: snapshot reads, buffered writes, one- or two-phase commit,
//!   lock resolution with backoff; and garbage-collection rounds ([`gc`]).
//!
//! ## Caveats
//!
//! - One store, one region: every transaction's keys are in the local region, so most commit in
//!   one phase. Routing to other nodes' regions, and prewrites split by region, are not built
//!   yet.
//! - Garbage collection ([`gc`]) keeps, per key, the newest put at the safe point (a key
//!   deleted below it keeps nothing); the safe point is node-local (the scheduler will own it
//!   once there are several nodes).
//! - Async commit is not implemented (the lock record has room for its fields).

pub mod actions;
pub mod client;
pub mod commands;
pub mod gc;
pub mod key;
pub mod latches;
pub mod mvcc;
pub mod records;
pub mod server;

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod tests;

use std::future::Future;

use bytes::Bytes;

use crate::raftstore::cmd::RaftstoreError;
use crate::scheduler::tso::TimeStamp;
use crate::storage::{SharedStorageError, StorageError};
use records::LockInfo;

/// Errors of the MVCC layer and its commands, per key. Cloneable, so one per key can be
/// reported.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MvccError {
    /// A lock of another transaction, which may commit at or below the read timestamp, is in
    /// the way. Resolve it (through its primary) and try again.
    #[error("key {:?} is locked by transaction {} (primary {:?})", String::from_utf8_lossy(&.0.key), .0.start_ts, String::from_utf8_lossy(&.0.primary))]
    KeyIsLocked(LockInfo),
    /// Another transaction committed the key at or after this one's start.
    #[error(
        "write conflict on {:?}: transaction {start_ts} lost to {conflict_start_ts}, committed at {conflict_commit_ts}",
        String::from_utf8_lossy(key)
    )]
    WriteConflict {
        key: Vec<u8>,
        primary: Vec<u8>,
        start_ts: TimeStamp,
        conflict_start_ts: TimeStamp,
        conflict_commit_ts: TimeStamp,
    },
    /// A rollback of a transaction that already committed.
    #[error("transaction {start_ts} already committed at {commit_ts}")]
    Committed {
        key: Vec<u8>,
        start_ts: TimeStamp,
        commit_ts: TimeStamp,
    },
    /// A commit of a transaction that was rolled back.
    #[error("transaction {start_ts} was rolled back")]
    RolledBack { key: Vec<u8>, start_ts: TimeStamp },
    /// A commit of a key the transaction holds no lock on and has no record for.
    #[error("transaction {start_ts} holds no lock on {:?}", String::from_utf8_lossy(key))]
    TxnLockNotFound { key: Vec<u8>, start_ts: TimeStamp },
    #[error("malformed MVCC data: {0}")]
    BadFormat(String),
    #[error("storage: {0}")]
    Storage(SharedStorageError),
    /// The region's store refused or could not finish the command (not the leader, a stale
    /// epoch, an outcome it cannot tell...).
    #[error("region: {0}")]
    Region(RaftstoreError),
    /// The timestamp oracle could not be asked.
    #[error("timestamp: {0}")]
    Timestamp(String),
}

/// Errors a transaction reports.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// Another transaction committed `key` at or after this one's start. Retry from the start.
    #[error(
        "write conflict on key {key:?}: committed at {conflict_commit_ts}, after this transaction began at {start_ts}"
    )]
    WriteConflict {
        key: Bytes,
        start_ts: TimeStamp,
        conflict_commit_ts: TimeStamp,
    },
    /// A key the transaction watches changed after the watch. Not retried: for Redis this is
    /// an `EXEC` that answers nil.
    #[error("watched key {key:?} changed")]
    WatchedKeyChanged { key: Bytes },
    /// Another transaction's lock stayed in the way for the whole wait budget.
    #[error("key {key:?} stayed locked by a running transaction")]
    LockTimeout { key: Bytes },
    /// The transaction was rolled back by others (its locks expired) before it committed.
    /// Retry from the start.
    #[error("{0}")]
    Aborted(String),
    #[error("storage: {0}")]
    Storage(SharedStorageError),
    #[error("timestamp: {0}")]
    Timestamp(String),
    /// The store is shutting down and takes no more commits.
    #[error("the store is shutting down")]
    ShuttingDown,
    /// The data could not be reached (no leader for its region within the retry budget, or
    /// a refusal that retrying cannot fix). Nothing was written.
    #[error("unavailable: {0}")]
    Unavailable(RaftstoreError),
    /// The commit may or may not have happened (its proposal's fate is unknown): the client
    /// must read to find out.
    #[error("the transaction's outcome is unknown")]
    Undetermined,
    /// Malformed data in the store (or a bug): not retried.
    #[error("{0}")]
    Internal(String),
}

impl TxnError {
    /// Whether running the same transaction again from `begin` may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TxnError::WriteConflict { .. } | TxnError::Aborted(_))
    }
}

impl From<MvccError> for TxnError {
    fn from(e: MvccError) -> Self {
        match e {
            MvccError::WriteConflict {
                key,
                start_ts,
                conflict_commit_ts,
                ..
            } => TxnError::WriteConflict {
                key: Bytes::from(key),
                start_ts,
                conflict_commit_ts,
            },
            MvccError::Storage(e) => TxnError::Storage(e),
            MvccError::Region(RaftstoreError::StoreStopped) => TxnError::ShuttingDown,
            MvccError::Region(RaftstoreError::Undetermined) => TxnError::Undetermined,
            MvccError::Region(e) => TxnError::Unavailable(e),
            MvccError::Timestamp(e) => TxnError::Timestamp(e),
            other => TxnError::Internal(other.to_string()),
        }
    }
}

impl From<StorageError> for TxnError {
    fn from(e: StorageError) -> Self {
        TxnError::Storage(e.into())
    }
}

pub type Result<T> = std::result::Result<T, TxnError>;

/// A key and its value.
pub type KvPair = (Bytes, Bytes);

/// How much of a key range one scan reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanLimits {
    /// At most this many pairs are returned.
    pub limit: usize,
    /// At most this many stored keys are looked at: those returned, and those a snapshot does
    /// not see (deleted, or with only rolled-back versions) whose records garbage collection
    /// has yet to remove. So a scan over a range of recent deletes does bounded work, and says
    /// where to go on.
    pub examine: usize,
    /// `Some(n)`: each value is cut to its first `n` bytes; with `n` at most
    /// [`records::VALUE_HEAD_BYTES`] no value stored apart from its record is read (`Some(0)`:
    /// keys only).
    pub value_head: Option<usize>,
}

impl ScanLimits {
    /// Up to `limit` whole pairs, however many deleted keys lie between them.
    pub fn pairs(limit: usize) -> Self {
        ScanLimits {
            limit,
            examine: usize::MAX,
            value_head: None,
        }
    }

    /// At most `examine` stored keys looked at, returning the first `value_head` bytes of
    /// each value.
    pub fn heads(examine: usize, value_head: usize) -> Self {
        ScanLimits {
            limit: examine,
            examine,
            value_head: Some(value_head),
        }
    }

    /// `value` as this scan returns it.
    pub fn cut(&self, value: Bytes) -> Bytes {
        match self.value_head {
            Some(n) if n < value.len() => value.slice(..n),
            _ => value,
        }
    }
}

/// One page of a scan: pairs in key order, and where the range's next page starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    pub pairs: Vec<KvPair>,
    /// `None`: nothing of the range is left after these pairs.
    pub resume: Option<Bytes>,
}

/// Starts transactions. Cheap to clone; clones share the store.
pub trait TxnClient: Clone + Send + Sync + 'static {
    type Txn: Commit + 'static;

    /// Begins a transaction that sees everything committed so far.
    fn begin(&self) -> impl Future<Output = Result<Self::Txn>> + Send;

    /// A timestamp later than every commit acknowledged so far (for `WATCH`).
    fn timestamp(&self) -> impl Future<Output = Result<TimeStamp>> + Send;
}

/// What a transaction does before it commits: snapshot reads and buffered writes. Implemented
/// by transactions ([`Commit`]) and by views of one that map its keys (the RESP layer's
/// numbered databases).
pub trait Transaction: Send {
    /// The value of `key` as this transaction sees it (its own writes first).
    fn get(&mut self, key: &[u8]) -> impl Future<Output = Result<Option<Bytes>>> + Send;

    /// The timestamp the transaction reads at; unique among transactions.
    fn start_ts(&self) -> TimeStamp;

    /// Buffers a write of `key`.
    fn put(&mut self, key: Bytes, value: Bytes);

    /// Buffers a delete of `key`.
    fn delete(&mut self, key: Bytes);

    /// Makes the commit fail with [`TxnError::WatchedKeyChanged`] if `key`'s value changed
    /// after `since`.
    fn watch(&mut self, key: Bytes, since: TimeStamp);

    /// Pairs with keys in `[start, end)` (`end = None`: to the last key), in key order, as this
    /// transaction sees them (its own writes merged in), within `limits`.
    fn scan_page(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        limits: ScanLimits,
    ) -> impl Future<Output = Result<ScanPage>> + Send;

    /// Up to `limit` whole pairs with keys in `[start, end)`: [`scan_page`](Self::scan_page)
    /// with [`ScanLimits::pairs`].
    fn scan(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<KvPair>>> + Send {
        let page = self.scan_page(start, end, ScanLimits::pairs(limit));
        async move { Ok(page.await?.pairs) }
    }
}

/// One transaction: snapshot reads, buffered writes, an all-or-nothing commit. Dropping it
/// without committing discards its writes.
pub trait Commit: Transaction {
    /// Commits the buffered writes atomically and durably, or fails with nothing written.
    fn commit(self) -> impl Future<Output = Result<()>> + Send;
}
