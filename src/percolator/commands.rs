//! Percolator commands: each reads one snapshot, loops over its keys calling the per-key
//! actions, and returns its answer together with the writes to apply as one batch. Running
//! them under latches and applying their writes is the server's job (`server.rs`).

use super::actions::{self, Mutation, PrewriteMode, TxnStatus};
use super::key::Key;
use super::mvcc::{MvccReader, MvccTxn};
pub use super::mvcc::{ScanEntry, ScanOutput};
use super::{MvccError, ScanLimits};
use crate::scheduler::tso::TimeStamp;
use crate::storage::Snapshot;

/// A prewrite request: every mutation of a transaction (or of one region's share of it).
#[derive(Clone, Debug)]
pub struct PrewriteRequest {
    pub mutations: Vec<Mutation>,
    pub primary: Vec<u8>,
    pub start_ts: TimeStamp,
    pub lock_ttl_ms: u64,
}

/// A key read: `Ok(None)` when absent; `KeyIsLocked` when a lock that may commit at or below
/// `ts` is in the way.
pub fn get<S: Snapshot>(snapshot: &S, raw: &[u8], ts: TimeStamp) -> Result<Option<Vec<u8>>, MvccError> {
    let reader = MvccReader::new(snapshot);
    let key = Key::from_raw(raw);
    if let Some(lock) = reader.load_lock(&key)?
        && lock.blocks_read_at(ts)
    {
        return Err(MvccError::KeyIsLocked(lock.info(raw)));
    }
    reader.get(&key, ts)
}

/// Prewrites every mutation. If any key fails, the errors of all failing keys are returned and
/// nothing is written.
pub fn prewrite<S: Snapshot>(
    snapshot: &S,
    request: &PrewriteRequest,
    mode: PrewriteMode,
) -> Result<MvccTxn, Vec<MvccError>> {
    let reader = MvccReader::new(snapshot);
    let mut txn = MvccTxn::new();
    let mut errors = Vec::new();
    // With two mutations of one key, the last one wins.
    let mut last_of_key = std::collections::HashMap::new();
    for (i, mutation) in request.mutations.iter().enumerate() {
        last_of_key.insert(mutation.key(), i);
    }
    for (i, mutation) in request.mutations.iter().enumerate() {
        if last_of_key[mutation.key()] != i {
            continue;
        }
        if let Err(e) = actions::prewrite_key(
            &mut txn,
            &reader,
            mutation,
            &request.primary,
            request.start_ts,
            request.lock_ttl_ms,
            mode,
        ) {
            errors.push(e);
        }
    }
    if errors.is_empty() { Ok(txn) } else { Err(errors) }
}

/// Commits `keys` of the transaction `start_ts` at `commit_ts`, all or none.
pub fn commit<S: Snapshot>(
    snapshot: &S,
    keys: &[Vec<u8>],
    start_ts: TimeStamp,
    commit_ts: TimeStamp,
) -> Result<MvccTxn, MvccError> {
    let reader = MvccReader::new(snapshot);
    let mut txn = MvccTxn::new();
    let mut seen = std::collections::HashSet::new();
    for key in keys {
        if seen.insert(key) {
            actions::commit_key(&mut txn, &reader, key, start_ts, commit_ts)?;
        }
    }
    Ok(txn)
}

/// Rolls back `keys` of the transaction `start_ts`, all or none.
pub fn batch_rollback<S: Snapshot>(
    snapshot: &S,
    keys: &[Vec<u8>],
    start_ts: TimeStamp,
) -> Result<MvccTxn, MvccError> {
    let reader = MvccReader::new(snapshot);
    let mut txn = MvccTxn::new();
    let mut seen = std::collections::HashSet::new();
    for key in keys {
        if seen.insert(key) {
            actions::rollback_key(&mut txn, &reader, key, start_ts)?;
        }
    }
    Ok(txn)
}

pub fn check_txn_status<S: Snapshot>(
    snapshot: &S,
    primary: &[u8],
    lock_ts: TimeStamp,
    current_ts: TimeStamp,
    rollback_if_not_exist: bool,
) -> Result<(TxnStatus, MvccTxn), MvccError> {
    let reader = MvccReader::new(snapshot);
    let mut txn = MvccTxn::new();
    let status = actions::check_txn_status(
        &mut txn,
        &reader,
        primary,
        lock_ts,
        current_ts,
        rollback_if_not_exist,
    )?;
    Ok((status, txn))
}

/// The keys that transaction `start_ts` still holds locks on (at most `limit`).
pub fn locked_keys_of<S: Snapshot>(
    snapshot: &S,
    start_ts: TimeStamp,
    limit: usize,
) -> Result<Vec<Vec<u8>>, MvccError> {
    let reader = MvccReader::new(snapshot);
    reader
        .scan_locks(&[], None, |lock| lock.start_ts == start_ts, limit)?
        .into_iter()
        .map(|(key, _)| key.to_raw())
        .collect()
}

/// Commits (`commit_ts = Some`) or rolls back (`None`) the locks transaction `start_ts` holds on
/// `keys`. Keys it holds no lock on are left as they are.
pub fn resolve_lock<S: Snapshot>(
    snapshot: &S,
    keys: &[Vec<u8>],
    start_ts: TimeStamp,
    commit_ts: Option<TimeStamp>,
) -> Result<MvccTxn, MvccError> {
    let reader = MvccReader::new(snapshot);
    let mut txn = MvccTxn::new();
    for raw in keys {
        let key = Key::from_raw(raw);
        match reader.load_lock(&key)? {
            Some(lock) if lock.start_ts == start_ts => match commit_ts {
                Some(commit_ts) => actions::commit_key(&mut txn, &reader, raw, start_ts, commit_ts)?,
                None => actions::rollback_key(&mut txn, &reader, raw, start_ts)?,
            },
            _ => {}
        }
    }
    Ok(txn)
}

pub fn scan<S: Snapshot>(
    snapshot: &S,
    start: &[u8],
    end: Option<&[u8]>,
    limits: ScanLimits,
    ts: TimeStamp,
) -> Result<ScanOutput, MvccError> {
    MvccReader::new(snapshot).scan(start, end, ts, limits)
}
