//! The Raw API (seed project 1): non-transactional get, put, delete and scan on one column
//! family of an engine.
//!
//! A missing key is "not found" (`Ok(None)`), never an error. The same key in two column
//! families is two independent values. Scans read a snapshot, so a scan never sees half of a
//! concurrent batch. Every write is synced before it returns.

use super::{Cf, Engine, IterOptions, KvPair, Result, WriteBatch, WriteOptions};

/// The value of `key` in `cf`, or `None` when there is none.
pub fn raw_get<E: Engine>(engine: &E, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
    engine.get(cf, key)
}

/// Sets `key` in `cf` to `value`, durably.
pub fn raw_put<E: Engine>(engine: &E, cf: Cf, key: &[u8], value: &[u8]) -> Result<()> {
    let mut batch = WriteBatch::new();
    batch.put(cf, key, value);
    engine.write(&batch, WriteOptions::SYNC)
}

/// Removes `key` from `cf`, durably. Removing a missing key is not an error.
pub fn raw_delete<E: Engine>(engine: &E, cf: Cf, key: &[u8]) -> Result<()> {
    let mut batch = WriteBatch::new();
    batch.delete(cf, key);
    engine.write(&batch, WriteOptions::SYNC)
}

/// At most `limit` pairs of `cf`, in key order, starting at `start` (inclusive).
pub fn raw_scan<E: Engine>(engine: &E, cf: Cf, start: &[u8], limit: usize) -> Result<Vec<KvPair>> {
    use super::Snapshot as _;
    let snapshot = engine.snapshot();
    snapshot.iter(cf, IterOptions::from(start)).take(limit).collect()
}
