//! # Transactions: the interface every data command runs through
//!
//! The RESP layer sees the store only through [`TxnClient`] and [`Transaction`]: begin a
//! transaction, read at its snapshot, buffer writes, commit. Everything a Redis data command
//! does is one transaction, so a read-modify-write (`INCR`, `APPEND`, `MSETNX`) is atomic: if
//! another transaction committed a write to one of its keys after it began, its commit fails
//! with [`TxnError::WriteConflict`] and the caller runs it again from the start.
//!
//! The isolation this interface promises is **snapshot isolation**: reads see exactly the
//! transactions committed before `begin`, plus the transaction's own writes; a commit fails if
//! any key it writes was committed by another transaction after its `begin` (first committer
//! wins). Read-only transactions never fail to commit.
//!
//! A commit returns only after its writes are durable: for the local store, fsync'd to the
//! write-ahead log; for the Percolator store that replaces it, committed on a majority.
//!
//! ## Implementations
//!
//! - [`local::LocalTxnClient`]: a single-node store on one [`crate::storage::Engine`], with a
//!   committer thread that checks conflicts and group-commits batches. It keeps the seam that the
//!   Percolator client will fill: begin gives a start version and a snapshot; commit hands over a
//!   write set and waits until it is durable.
//!
//! ## Caveats
//!
//! - There is no Percolator yet: no MVCC history on disk, no locks, no timestamps from a TSO.
//!   Conflict detection uses an in-memory table of recent commits, which is enough on one node.

pub mod actions;
pub mod client;
pub mod commands;
pub mod key;
pub mod latches;
pub mod mvcc;
pub mod records;
pub mod server;
pub mod sink;

#[cfg(test)]
mod tests;

use std::future::Future;

use bytes::Bytes;

use crate::scheduler::tso::TimeStamp;
use crate::storage::StorageError;
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
    Storage(String),
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
    Storage(String),
    #[error("timestamp: {0}")]
    Timestamp(String),
    /// The store is shutting down and takes no more commits.
    #[error("the store is shutting down")]
    ShuttingDown,
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
            MvccError::Storage(message) if message.contains("shutting down") => TxnError::ShuttingDown,
            other => TxnError::Storage(other.to_string()),
        }
    }
}

impl From<StorageError> for TxnError {
    fn from(e: StorageError) -> Self {
        TxnError::Storage(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, TxnError>;

/// A key and its value.
pub type KvPair = (Bytes, Bytes);

/// Starts transactions. Cheap to clone; clones share the store.
pub trait TxnClient: Clone + Send + Sync + 'static {
    type Txn: Transaction;

    /// Begins a transaction that sees everything committed so far.
    fn begin(&self) -> impl Future<Output = Result<Self::Txn>> + Send;

    /// A timestamp later than every commit acknowledged so far (for `WATCH`).
    fn timestamp(&self) -> impl Future<Output = Result<TimeStamp>> + Send;
}

/// One transaction: snapshot reads, buffered writes, an all-or-nothing commit. Dropping it
/// without committing discards its writes.
pub trait Transaction: Send + 'static {
    /// The value of `key` as this transaction sees it (its own writes first).
    fn get(&mut self, key: &[u8]) -> impl Future<Output = Result<Option<Bytes>>> + Send;

    /// Buffers a write of `key`.
    fn put(&mut self, key: Bytes, value: Bytes);

    /// Buffers a delete of `key`.
    fn delete(&mut self, key: Bytes);

    /// Makes the commit fail with [`TxnError::WatchedKeyChanged`] if `key`'s value changed
    /// after `since`.
    fn watch(&mut self, key: Bytes, since: TimeStamp);

    /// Up to `limit` pairs with keys in `[start, end)` (`end = None`: to the last key), in key
    /// order, as this transaction sees them (its own writes merged in).
    fn scan(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<KvPair>>> + Send;

    /// Commits the buffered writes atomically and durably, or fails with nothing written.
    fn commit(self) -> impl Future<Output = Result<()>> + Send;
}
