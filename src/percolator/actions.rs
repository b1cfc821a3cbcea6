//! Per-key Percolator actions: pure functions of a reader's view that append writes to an
//! [`MvccTxn`]. They do no I/O of their own; the commands in `commands.rs` loop over keys and
//! call them.

use super::MvccError;
use super::key::Key;
use super::mvcc::{CommitRecord, MvccReader, MvccTxn};
use super::records::{Lock, LockKind, SHORT_VALUE_MAX_BYTES, VALUE_HEAD_BYTES, Write, WriteKind};
use crate::scheduler::tso::TimeStamp;
use crate::storage::Snapshot;

/// What a mutation does to its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put(Vec<u8>),
    Delete,
    /// Changes nothing; the key is only locked and checked.
    Lock,
}

/// One change a transaction makes to one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mutation {
    pub key: Vec<u8>,
    pub op: Op,
    /// Also fail the prewrite if the key's value changed (a put or delete committed) after this
    /// timestamp, which may be earlier than the transaction's start. Redis `WATCH` uses it.
    pub unchanged_since: Option<TimeStamp>,
}

impl Mutation {
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Mutation {
            key: key.into(),
            op: Op::Put(value.into()),
            unchanged_since: None,
        }
    }

    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        Mutation {
            key: key.into(),
            op: Op::Delete,
            unchanged_since: None,
        }
    }

    /// Only checks that `key` did not change after `since`.
    pub fn check_unchanged(key: impl Into<Vec<u8>>, since: TimeStamp) -> Self {
        Mutation {
            key: key.into(),
            op: Op::Lock,
            unchanged_since: Some(since),
        }
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

/// How a prewrite finishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrewriteMode {
    /// Leave locks; a commit follows.
    TwoPhase,
    /// Write commit records at once (one-phase commit); no locks remain.
    OnePhase { commit_ts: TimeStamp },
}

/// Prewrites one key: checks for locks and newer writes, then locks it (or, in one-phase mode,
/// commits it).
pub fn prewrite_key<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    mutation: &Mutation,
    primary: &[u8],
    start_ts: TimeStamp,
    ttl_ms: u64,
    mode: PrewriteMode,
) -> Result<(), MvccError> {
    let raw = mutation.key();
    let key = Key::from_raw(raw);
    if let Some(lock) = reader.load_lock(&key)? {
        if lock.start_ts == start_ts && mode == PrewriteMode::TwoPhase {
            // A retried prewrite of our own: already done.
            return Ok(());
        }
        return Err(MvccError::KeyIsLocked(lock.info(raw)));
    }
    let conflict = |commit_ts: TimeStamp, write: &Write| MvccError::WriteConflict {
        key: raw.to_vec(),
        primary: primary.to_vec(),
        start_ts,
        conflict_start_ts: write.start_ts,
        conflict_commit_ts: commit_ts,
    };
    // Anything committed after our start (a later transaction won), or a record of this very
    // transaction, which was then rolled back and must not come back to life. A lock-only
    // mutation minds only the latter. A commit of another transaction at exactly our start
    // (a one-phase commit's own timestamp) is in our snapshot: no conflict, unless it carries
    // our rollback.
    if let Some((commit_ts, write)) = reader.seek_write(&key, TimeStamp::MAX)? {
        // A record of this transaction's own lies at or after its start.
        let ours = write.start_ts == start_ts || (commit_ts == start_ts && write.overlapped_rollback);
        let later = commit_ts > start_ts && mutation.op != Op::Lock;
        if ours || later {
            return Err(conflict(commit_ts, &write));
        }
    }
    if let Some(since) = mutation.unchanged_since
        && let Some((commit_ts, write)) = reader.latest_change(&key)?
        && commit_ts > since
    {
        return Err(conflict(commit_ts, &write));
    }

    let (kind, value) = match &mutation.op {
        Op::Put(value) => (LockKind::Put, Some(value.as_slice())),
        Op::Delete => (LockKind::Delete, None),
        Op::Lock => (LockKind::Lock, None),
    };
    let short_value = value
        .filter(|v| v.len() <= SHORT_VALUE_MAX_BYTES)
        .map(<[u8]>::to_vec);
    let mut value_head = None;
    if let Some(value) = value
        && short_value.is_none()
    {
        txn.put_value(&key, start_ts, value);
        value_head = Some(value[..VALUE_HEAD_BYTES].to_vec());
    }
    match mode {
        PrewriteMode::TwoPhase => {
            let mut lock = Lock::new(kind, primary.to_vec(), start_ts, ttl_ms);
            lock.short_value = short_value;
            lock.value_head = value_head;
            txn.put_lock(&key, &lock);
        }
        PrewriteMode::OnePhase { commit_ts } => {
            assert!(
                commit_ts > start_ts,
                "commit_ts {commit_ts} must follow start_ts {start_ts}"
            );
            if kind != LockKind::Lock {
                let mut write = Write::new(WriteKind::from_lock(kind), start_ts, short_value);
                write.value_head = value_head;
                txn.put_write(&key, commit_ts, &write);
            }
        }
    }
    Ok(())
}

/// Commits one key of the transaction that started at `start_ts`.
pub fn commit_key<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    raw: &[u8],
    start_ts: TimeStamp,
    commit_ts: TimeStamp,
) -> Result<(), MvccError> {
    let key = Key::from_raw(raw);
    if let Some(lock) = reader.load_lock(&key)?
        && lock.start_ts == start_ts
    {
        assert!(
            commit_ts > start_ts,
            "commit_ts {commit_ts} must follow start_ts {start_ts}"
        );
        txn.put_write(&key, commit_ts, &Write::committing(lock));
        txn.unlock_key(&key);
        return Ok(());
    }
    match reader.txn_commit_record(&key, start_ts)? {
        // Committed already: a retried commit is a success.
        CommitRecord::Committed { .. } => Ok(()),
        CommitRecord::RolledBack => Err(MvccError::RolledBack {
            key: raw.to_vec(),
            start_ts,
        }),
        // No lock and no record: the prewrite never happened or was rolled back and cleaned.
        // Saying "committed" here could acknowledge a transaction whose data is not there.
        CommitRecord::None => Err(MvccError::TxnLockNotFound {
            key: raw.to_vec(),
            start_ts,
        }),
    }
}

/// Rolls back one key of the transaction that started at `start_ts`, leaving a rollback record
/// so that a late prewrite of the same transaction fails.
pub fn rollback_key<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    raw: &[u8],
    start_ts: TimeStamp,
) -> Result<(), MvccError> {
    let key = Key::from_raw(raw);
    if let Some(lock) = reader.load_lock(&key)?
        && lock.start_ts == start_ts
    {
        if lock.kind == LockKind::Put && lock.short_value.is_none() {
            txn.delete_value(&key, start_ts);
        }
        txn.unlock_key(&key);
        put_rollback(txn, reader, &key, start_ts)?;
        return Ok(());
    }
    match reader.txn_commit_record(&key, start_ts)? {
        CommitRecord::Committed { commit_ts, .. } => Err(MvccError::Committed {
            key: raw.to_vec(),
            start_ts,
            commit_ts,
        }),
        CommitRecord::RolledBack => Ok(()),
        CommitRecord::None => {
            // Nothing of ours here (maybe another transaction's lock, which stays): the record
            // still protects against our prewrite arriving late.
            put_rollback(txn, reader, &key, start_ts)
        }
    }
}

/// Writes the rollback record of transaction `start_ts` on `key`. Where another transaction
/// committed the key at exactly `start_ts` (a one-phase commit picks its own timestamp, which
/// the oracle may also have given out as a start; see `server`), that record keeps its place
/// and carries the rollback as its `overlapped_rollback` flag instead.
fn put_rollback<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    key: &Key,
    start_ts: TimeStamp,
) -> Result<(), MvccError> {
    if let Some((commit_ts, mut write)) = reader.seek_write(key, start_ts)?
        && commit_ts == start_ts
        && write.start_ts != start_ts
    {
        if !write.overlapped_rollback {
            write.overlapped_rollback = true;
            txn.put_write(key, start_ts, &write);
        }
        return Ok(());
    }
    txn.put_write(key, start_ts, &Write::new(WriteKind::Rollback, start_ts, None));
    Ok(())
}

/// What `CheckTxnStatus` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    NoAction,
    /// The primary lock had expired; it was rolled back.
    TtlExpireRollback,
    /// There was no lock and no record; a rollback record was written.
    LockNotExistRollback,
}

/// The fate of a transaction, as its primary key tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnStatus {
    /// Still running: its primary lock lives for `ttl_ms` after its start.
    Locked {
        ttl_ms: u64,
    },
    Committed {
        commit_ts: TimeStamp,
    },
    RolledBack {
        action: Action,
    },
}

/// Decides a transaction's status from its primary key, rolling it back if its lock expired.
///
/// A primary with neither lock nor record is rolled back (a rollback record fences off a
/// prewrite still on its way) only with `rollback_if_not_exist`; otherwise the transaction
/// may simply not have prewritten its primary yet (prewrites of different regions run in
/// parallel), and it is reported as running (`Locked` with a zero TTL). TiKV's rule: a reader
/// sets it only once the lock it met has expired.
pub fn check_txn_status<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    primary: &[u8],
    lock_ts: TimeStamp,
    current_ts: TimeStamp,
    rollback_if_not_exist: bool,
) -> Result<TxnStatus, MvccError> {
    let key = Key::from_raw(primary);
    if let Some(lock) = reader.load_lock(&key)?
        && lock.start_ts == lock_ts
    {
        if lock.is_expired(current_ts) {
            rollback_key(txn, reader, primary, lock_ts)?;
            return Ok(TxnStatus::RolledBack {
                action: Action::TtlExpireRollback,
            });
        }
        return Ok(TxnStatus::Locked { ttl_ms: lock.ttl_ms });
    }
    match reader.txn_commit_record(&key, lock_ts)? {
        CommitRecord::Committed { commit_ts, .. } => Ok(TxnStatus::Committed { commit_ts }),
        CommitRecord::RolledBack => Ok(TxnStatus::RolledBack {
            action: Action::NoAction,
        }),
        CommitRecord::None if !rollback_if_not_exist => Ok(TxnStatus::Locked { ttl_ms: 0 }),
        CommitRecord::None => {
            put_rollback(txn, reader, &key, lock_ts)?;
            Ok(TxnStatus::RolledBack {
                action: Action::LockNotExistRollback,
            })
        }
    }
}
