//! MVCC garbage collection: dropping versions no reader can see any more.
//!
//! Every overwrite of a key leaves its previous version behind, so without GC a counter
//! incremented a million times keeps a million versions. GC runs against a **safe point**: a
//! timestamp at or below which no transaction reads any more. Transactions read at their
//! `start_ts`, so the safe point is below every running transaction's start (and, as a margin
//! for clients that are slow to finish, at least `life_time` in the past).
//!
//! A round has two phases, as in TiKV:
//!
//! 1. **Resolve old locks.** A lock at or below the safe point belongs to a transaction that
//!    is over (crashed, or its client gave up); its fate is settled through its primary
//!    (committed: commit the lock; otherwise: roll it back). This must come first: the commit
//!    record that phase 2 might delete is what tells a lock's fate.
//! 2. **Collect versions.** For each key, of the writes committed at or below the safe point
//!    the newest put stays (it is what readers at the safe point and later see); everything
//!    older goes, with the values it refers to; rollback and lock-only records at or below the
//!    safe point go too. If that newest change is a delete, it goes as well, with everything
//!    older: a reader at or above the safe point finds no version there, which reads as absent,
//!    as the delete did, so a deleted key leaves nothing behind. (No transaction starts below
//!    the safe point, so none can mistake the missing record for "no write since my start".
//!    A `WATCH` older than the safe point could: the RESP layer fails an `EXEC` whose watch is
//!    that old.)
//!
//! Collection writes only deletions of versions no reader needs, so it takes no latches:
//! concurrent commits only add versions above the safe point.
//!
//! A layer above may also declare whole keys dead with a [`GcFilter`]: keys it will never
//! read again (the RESP layer's fields of a replaced hash). All their versions go.

use super::MvccError;
use super::key::{Key, split_ts};
use super::mvcc::{MvccReader, MvccTxn};
use super::records::WriteKind;
use crate::scheduler::tso::TimeStamp;
use crate::storage::{Cf, IterOptions, Snapshot};

/// The newest value-changing commit of a key, as a [`GcFilter`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatestValue {
    pub commit_ts: TimeStamp,
    /// The value put, or `None` for a delete.
    pub value: Option<Vec<u8>>,
    /// A transaction holds a lock on the key: its fate is open.
    pub locked: bool,
}

/// Answers the newest committed change of a key, for a [`GcFilter`].
pub type LatestFn<'a> = dyn Fn(&[u8]) -> Result<Option<LatestValue>, MvccError> + 'a;

/// Lets the layer that owns a key layout tell GC which keys nobody will ever read again.
pub trait GcFilter: Send + Sync + 'static {
    /// Whether every version of `raw_key` may go. `latest` answers the newest committed change
    /// of any key (`None`: never written, or deleted and collected). Only keys whose fate was
    /// sealed at or below `safe_point` may be declared dead.
    fn is_dead(
        &self,
        raw_key: &[u8],
        safe_point: TimeStamp,
        latest: &LatestFn<'_>,
    ) -> Result<bool, MvccError>;
}

/// Deletes every version of `key` (a key a [`GcFilter`] declared dead).
fn gc_dead_key<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    key: &Key,
) -> Result<usize, MvccError> {
    let mut removed = 0;
    for entry in reader.writes_at_or_below(key, TimeStamp::MAX) {
        let (commit_ts, write) = entry?;
        txn.delete_write(key, commit_ts);
        if write.kind == WriteKind::Put && write.short_value.is_none() {
            txn.delete_value(key, write.start_ts);
        }
        removed += 1;
    }
    Ok(removed)
}

/// What [`GcFilter::is_dead`] is told about a key.
fn latest_value<S: Snapshot>(
    reader: &MvccReader<'_, S>,
    raw: &[u8],
) -> Result<Option<LatestValue>, MvccError> {
    let key = Key::from_raw(raw);
    let locked = reader.load_lock(&key)?.is_some();
    let Some((commit_ts, write)) = reader.latest_change(&key)? else {
        return Ok(locked.then_some(LatestValue {
            commit_ts: TimeStamp::MAX,
            value: None,
            locked,
        }));
    };
    let value = match write.kind {
        WriteKind::Put => Some(reader.load_value(&key, write)?),
        _ => None,
    };
    Ok(Some(LatestValue {
        commit_ts,
        value,
        locked,
    }))
}

/// Deletes the versions of `key` that a GC at `safe_point` collects; returns how many write
/// records it removes.
pub fn gc_key<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    key: &Key,
    safe_point: TimeStamp,
) -> Result<usize, MvccError> {
    let mut newest_seen = false;
    let mut removed = 0;
    for entry in reader.writes_at_or_below(key, safe_point) {
        let (commit_ts, write) = entry?;
        if !newest_seen && write.changes_value() {
            newest_seen = true;
            // The newest put stays; the newest delete goes, with all before it.
            if write.kind == WriteKind::Put {
                continue;
            }
        }
        txn.delete_write(key, commit_ts);
        if write.kind == WriteKind::Put && write.short_value.is_none() {
            txn.delete_value(key, write.start_ts);
        }
        removed += 1;
    }
    Ok(removed)
}

/// Collects the versions of up to `limit_keys` user keys from `start` (an encoded key,
/// inclusive) up to `upper` (encoded, exclusive; a region's end); returns the writes, the
/// number of write records removed, and where to continue (`None` when the range is done).
/// `region_start` (encoded) is where the region being collected begins.
///
/// The filter sees the newest change of keys inside the region only: a key elsewhere (a
/// collection's meta entry in another region) may be led by another store, or not be on this
/// one at all, so nothing here can tell its state; it is reported as changed just now, which
/// no filter may call sealed. (Found by the fault rig: list elements whose meta lived in a
/// region this store no longer held were declared orphans and collected.)
pub fn gc_range<S: Snapshot>(
    snapshot: &S,
    start: Option<Key>,
    region_start: &[u8],
    upper: Option<Vec<u8>>,
    limit_keys: usize,
    safe_point: TimeStamp,
    filter: Option<&dyn GcFilter>,
) -> Result<(MvccTxn, usize, Option<Key>), MvccError> {
    let reader = MvccReader::new(snapshot);
    let mut txn = MvccTxn::new();
    let mut removed = 0;
    let lower = start.as_ref().map(|k| k.as_encoded().to_vec());
    let mut cursor = snapshot.cursor(
        Cf::Write,
        IterOptions {
            lower: lower.clone(),
            upper: upper.clone(),
            ..Default::default()
        },
    );
    let storage = |e: crate::storage::StorageError| MvccError::Storage(e.into());
    let mut valid = cursor.seek(lower.as_deref().unwrap_or(&[])).map_err(storage)?;
    let mut keys = 0;
    while valid {
        let (key, _) = split_ts(cursor.key())?;
        if keys == limit_keys {
            return Ok((txn, removed, Some(key)));
        }
        let dead = match filter {
            Some(filter) => {
                let inside = |encoded: &[u8]| {
                    encoded >= region_start && upper.as_deref().is_none_or(|end| encoded < end)
                };
                let latest = |raw: &[u8]| {
                    if inside(Key::from_raw(raw).as_encoded()) {
                        latest_value(&reader, raw)
                    } else {
                        Ok(Some(LatestValue {
                            commit_ts: TimeStamp::MAX,
                            value: None,
                            locked: true,
                        }))
                    }
                };
                filter.is_dead(&key.to_raw()?, safe_point, &latest)?
            }
            None => false,
        };
        removed += if dead {
            gc_dead_key(&mut txn, &reader, &key)?
        } else {
            gc_key(&mut txn, &reader, &key, safe_point)?
        };
        keys += 1;
        valid = cursor.seek(&key.versions_end()).map_err(storage)?;
    }
    Ok((txn, removed, None))
}

/// How many write records a key has (tests and diagnostics).
pub fn version_count<S: Snapshot>(snapshot: &S, key: &Key) -> Result<usize, MvccError> {
    let reader = MvccReader::new(snapshot);
    reader
        .writes_at_or_below(key, TimeStamp::MAX)
        .try_fold(0, |n, entry| entry.map(|_| n + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::percolator::actions::{Mutation, PrewriteMode};
    use crate::percolator::commands::{self, PrewriteRequest};
    use crate::percolator::records::SHORT_VALUE_MAX_BYTES;
    use crate::storage::{Engine, MemoryEngine, WriteOptions};

    fn ts(n: u64) -> TimeStamp {
        TimeStamp::new(n)
    }

    fn apply(engine: &MemoryEngine, txn: MvccTxn) {
        engine.write(&txn.into_batch(), WriteOptions::NO_SYNC).unwrap();
    }

    fn commit(engine: &MemoryEngine, mutation: Mutation, start: u64, commit_ts: u64) {
        let request = PrewriteRequest {
            primary: mutation.key.clone(),
            mutations: vec![mutation],
            start_ts: ts(start),
            lock_ttl_ms: 1_000,
        };
        let txn = commands::prewrite(
            &engine.snapshot(),
            &request,
            PrewriteMode::OnePhase {
                commit_ts: ts(commit_ts),
            },
        )
        .unwrap();
        apply(engine, txn);
    }

    fn gc_all(engine: &MemoryEngine, safe_point: u64) -> usize {
        let (txn, removed, next) = gc_range(
            &engine.snapshot(),
            None,
            &[],
            None,
            usize::MAX,
            ts(safe_point),
            None,
        )
        .unwrap();
        assert!(next.is_none());
        apply(engine, txn);
        removed
    }

    fn count(engine: &MemoryEngine, key: &[u8]) -> usize {
        version_count(&engine.snapshot(), &Key::from_raw(key)).unwrap()
    }

    #[test]
    fn keeps_the_newest_version_at_the_safe_point_and_everything_above() {
        let engine = MemoryEngine::new();
        for i in 1..=5u64 {
            commit(
                &engine,
                Mutation::put(&b"k"[..], format!("v{i}").into_bytes()),
                i * 10,
                i * 10 + 1,
            );
        }
        assert_eq!(count(&engine, b"k"), 5);
        // Safe point 35: versions at 11, 21 go; 31 stays (newest at or below 35); 41, 51 stay.
        assert_eq!(gc_all(&engine, 35), 2);
        assert_eq!(count(&engine, b"k"), 3);
        let snapshot = engine.snapshot();
        for (read_ts, expected) in [(35, "v3"), (45, "v4"), (100, "v5")] {
            let value = commands::get(&snapshot, b"k", ts(read_ts)).unwrap();
            assert_eq!(value.as_deref(), Some(expected.as_bytes()), "read at {read_ts}");
        }
        // Collecting again finds nothing more.
        assert_eq!(gc_all(&engine, 35), 0);
    }

    #[test]
    fn a_delete_below_the_safe_point_goes_with_everything_older() {
        let engine = MemoryEngine::new();
        commit(&engine, Mutation::put(&b"k"[..], &b"a"[..]), 10, 11);
        commit(&engine, Mutation::delete(&b"k"[..]), 20, 21);
        commit(&engine, Mutation::put(&b"j"[..], &b"a"[..]), 10, 11);
        commit(&engine, Mutation::delete(&b"j"[..]), 20, 21);
        commit(&engine, Mutation::put(&b"j"[..], &b"b"[..]), 40, 41);
        // Safe point 30: "k" keeps nothing; "j" keeps only its put above the safe point.
        assert_eq!(gc_all(&engine, 30), 4);
        assert_eq!(count(&engine, b"k"), 0, "a deleted key leaves nothing behind");
        assert_eq!(count(&engine, b"j"), 1);
        let snapshot = engine.snapshot();
        for read_ts in [30, 35, 100] {
            assert_eq!(commands::get(&snapshot, b"k", ts(read_ts)).unwrap(), None);
        }
        assert_eq!(
            commands::get(&snapshot, b"j", ts(35)).unwrap(),
            None,
            "still deleted at 35"
        );
        assert_eq!(
            commands::get(&snapshot, b"j", ts(45)).unwrap().as_deref(),
            Some(&b"b"[..])
        );
        // A new write of the collected key is an ordinary first write.
        commit(&engine, Mutation::put(&b"k"[..], &b"c"[..]), 50, 51);
        assert_eq!(
            commands::get(&engine.snapshot(), b"k", ts(60))
                .unwrap()
                .as_deref(),
            Some(&b"c"[..])
        );
    }

    #[test]
    fn values_in_the_default_column_family_go_with_their_versions() {
        let engine = MemoryEngine::new();
        let long = vec![7u8; SHORT_VALUE_MAX_BYTES + 1];
        commit(&engine, Mutation::put(&b"k"[..], long.clone()), 10, 11);
        commit(&engine, Mutation::put(&b"k"[..], long.clone()), 20, 21);
        let defaults = |engine: &MemoryEngine| {
            engine
                .snapshot()
                .iter(Cf::Default, IterOptions::default())
                .count()
        };
        assert_eq!(defaults(&engine), 2);
        gc_all(&engine, 30);
        assert_eq!(defaults(&engine), 1);
        assert_eq!(
            commands::get(&engine.snapshot(), b"k", ts(30)).unwrap(),
            Some(long)
        );
    }

    #[test]
    fn rollback_records_at_or_below_the_safe_point_go() {
        let engine = MemoryEngine::new();
        commit(&engine, Mutation::put(&b"k"[..], &b"a"[..]), 10, 11);
        let txn = commands::batch_rollback(&engine.snapshot(), &[b"k".to_vec()], ts(15)).unwrap();
        apply(&engine, txn);
        let txn = commands::batch_rollback(&engine.snapshot(), &[b"k".to_vec()], ts(50)).unwrap();
        apply(&engine, txn);
        assert_eq!(count(&engine, b"k"), 3);
        // The rollback at 15 goes; the one at 50 is above the safe point and stays.
        assert_eq!(gc_all(&engine, 30), 1);
        assert_eq!(count(&engine, b"k"), 2);
    }

    #[test]
    fn ranges_resume_where_they_stopped() {
        let engine = MemoryEngine::new();
        for key in [&b"a"[..], b"b", b"c"] {
            commit(&engine, Mutation::put(key, &b"1"[..]), 10, 11);
            commit(&engine, Mutation::put(key, &b"2"[..]), 20, 21);
        }
        let (txn, removed, next) = gc_range(&engine.snapshot(), None, &[], None, 2, ts(30), None).unwrap();
        apply(&engine, txn);
        assert_eq!(removed, 2);
        let next = next.expect("one key left");
        assert_eq!(next.to_raw().unwrap(), b"c");
        let (txn, removed, next) =
            gc_range(&engine.snapshot(), Some(next), &[], None, 2, ts(30), None).unwrap();
        apply(&engine, txn);
        assert_eq!((removed, next), (1, None));
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;
    use crate::percolator::actions::{Mutation, PrewriteMode};
    use crate::percolator::commands::{self, PrewriteRequest};
    use crate::storage::{Engine, MemoryEngine, WriteOptions};

    /// Declares `dead:*` keys dead once `alive` was deleted at or below the safe point.
    struct DeadWhenAliveIsGone;

    impl GcFilter for DeadWhenAliveIsGone {
        fn is_dead(
            &self,
            raw_key: &[u8],
            safe_point: TimeStamp,
            latest: &LatestFn<'_>,
        ) -> Result<bool, MvccError> {
            if !raw_key.starts_with(b"dead:") {
                return Ok(false);
            }
            // Deleted below the safe point, or deleted and collected already.
            Ok(match latest(b"alive")? {
                Some(l) => l.value.is_none() && !l.locked && l.commit_ts <= safe_point,
                None => true,
            })
        }
    }

    fn commit(engine: &MemoryEngine, mutation: Mutation, start: u64) {
        let request = PrewriteRequest {
            primary: mutation.key.clone(),
            mutations: vec![mutation],
            start_ts: TimeStamp::new(start),
            lock_ttl_ms: 1_000,
        };
        let mode = PrewriteMode::OnePhase {
            commit_ts: TimeStamp::new(start + 1),
        };
        let txn = commands::prewrite(&engine.snapshot(), &request, mode).unwrap();
        engine.write(&txn.into_batch(), WriteOptions::NO_SYNC).unwrap();
    }

    #[test]
    fn a_filter_removes_every_version_of_keys_it_declares_dead() {
        let engine = MemoryEngine::new();
        commit(&engine, Mutation::put(&b"alive"[..], &b"1"[..]), 10);
        commit(&engine, Mutation::put(&b"dead:1"[..], &b"x"[..]), 20);
        let gc = |safe_point: u64| {
            let (txn, removed, _) = gc_range(
                &engine.snapshot(),
                None,
                &[],
                None,
                usize::MAX,
                TimeStamp::new(safe_point),
                Some(&DeadWhenAliveIsGone),
            )
            .unwrap();
            engine.write(&txn.into_batch(), WriteOptions::NO_SYNC).unwrap();
            removed
        };
        assert_eq!(gc(100), 0, "alive still exists");
        commit(&engine, Mutation::delete(&b"alive"[..]), 30);
        assert_eq!(gc(25), 0, "its deletion is above the safe point");
        assert_eq!(
            gc(100),
            3,
            "now dead:1 goes whole, and alive's delete and older version"
        );
        assert_eq!(
            version_count(&engine.snapshot(), &Key::from_raw(b"dead:1")).unwrap(),
            0
        );
    }

    #[test]
    fn a_filter_never_judges_by_keys_outside_the_region() {
        // `dead:1` is collected in a region of its own; `alive`, which decides its fate, lies
        // in another region, whose data this store may not hold: here it has none at all.
        let engine = MemoryEngine::new();
        commit(&engine, Mutation::put(&b"dead:1"[..], &b"x"[..]), 20);
        let region_start = Key::from_raw(b"d").as_encoded().to_vec();
        let (txn, removed, _) = gc_range(
            &engine.snapshot(),
            None,
            &region_start,
            None,
            usize::MAX,
            TimeStamp::new(100),
            Some(&DeadWhenAliveIsGone),
        )
        .unwrap();
        assert_eq!(removed, 0);
        assert!(txn.is_empty());
        // In one region with it, the missing `alive` does decide.
        let (_, removed, _) = gc_range(
            &engine.snapshot(),
            None,
            &[],
            None,
            usize::MAX,
            TimeStamp::new(100),
            Some(&DeadWhenAliveIsGone),
        )
        .unwrap();
        assert_eq!(removed, 1);
    }
}
