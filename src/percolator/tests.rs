//! The Percolator behaviours, key by key, on an in-memory engine. These follow the scenarios
//! of TinyKV's 4A/4B/4C suites, in our API; the helpers are named after what they assert.

use super::actions::{Action, Mutation, PrewriteMode, TxnStatus};
use super::commands::{self, PrewriteRequest};
use super::key::Key;
use super::mvcc::{CommitRecord, MvccReader};
use super::records::{self, Lock, LockKind, SHORT_VALUE_MAX_BYTES, WriteKind};
use super::{MvccError, ScanLimits};
use crate::scheduler::tso::TimeStamp;
use crate::storage::{Cf, Engine, IterOptions, MemoryEngine, Snapshot, WriteOptions};

fn ts(n: u64) -> TimeStamp {
    TimeStamp::new(n)
}

struct Store {
    engine: MemoryEngine,
}

impl Store {
    fn new() -> Self {
        Store {
            engine: MemoryEngine::new(),
        }
    }

    fn apply(&self, txn: super::mvcc::MvccTxn) {
        self.engine
            .write(&txn.into_batch(), WriteOptions::NO_SYNC)
            .unwrap();
    }

    fn prewrite(&self, mutations: Vec<Mutation>, primary: &[u8], start: u64) -> Result<(), Vec<MvccError>> {
        let request = PrewriteRequest {
            mutations,
            primary: primary.to_vec(),
            start_ts: ts(start),
            lock_ttl_ms: 3_000,
        };
        let txn = commands::prewrite(&self.engine.snapshot(), &request, PrewriteMode::TwoPhase)?;
        self.apply(txn);
        Ok(())
    }

    fn must_prewrite_put(&self, key: &[u8], value: &[u8], primary: &[u8], start: u64) {
        self.prewrite(vec![put(key, value)], primary, start).unwrap();
    }

    fn must_prewrite_delete(&self, key: &[u8], primary: &[u8], start: u64) {
        self.prewrite(vec![Mutation::delete(key)], primary, start)
            .unwrap();
    }

    fn commit(&self, keys: &[&[u8]], start: u64, commit: u64) -> Result<(), MvccError> {
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        let txn = commands::commit(&self.engine.snapshot(), &keys, ts(start), ts(commit))?;
        self.apply(txn);
        Ok(())
    }

    fn must_commit(&self, key: &[u8], start: u64, commit: u64) {
        self.commit(&[key], start, commit).unwrap();
    }

    /// Put committed in one go.
    fn must_put(&self, key: &[u8], value: &[u8], start: u64, commit: u64) {
        self.must_prewrite_put(key, value, key, start);
        self.must_commit(key, start, commit);
    }

    fn must_delete(&self, key: &[u8], start: u64, commit: u64) {
        self.must_prewrite_delete(key, key, start);
        self.must_commit(key, start, commit);
    }

    fn rollback(&self, keys: &[&[u8]], start: u64) -> Result<(), MvccError> {
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        let txn = commands::batch_rollback(&self.engine.snapshot(), &keys, ts(start))?;
        self.apply(txn);
        Ok(())
    }

    fn get(&self, key: &[u8], at: u64) -> Result<Option<Vec<u8>>, MvccError> {
        commands::get(&self.engine.snapshot(), key, ts(at))
    }

    fn must_get(&self, key: &[u8], at: u64) -> Option<Vec<u8>> {
        self.get(key, at).unwrap()
    }

    fn lock(&self, key: &[u8]) -> Option<Lock> {
        MvccReader::new(&self.engine.snapshot())
            .load_lock(&Key::from_raw(key))
            .unwrap()
    }

    fn must_locked(&self, key: &[u8], start: u64) -> Lock {
        let lock = self.lock(key).expect("a lock");
        assert_eq!(lock.start_ts, ts(start));
        lock
    }

    fn must_unlocked(&self, key: &[u8]) {
        assert_eq!(self.lock(key), None);
    }

    fn record(&self, key: &[u8], start: u64) -> CommitRecord {
        MvccReader::new(&self.engine.snapshot())
            .txn_commit_record(&Key::from_raw(key), ts(start))
            .unwrap()
    }

    fn must_committed_at(&self, key: &[u8], start: u64, commit: u64) {
        match self.record(key, start) {
            CommitRecord::Committed { commit_ts, .. } => assert_eq!(commit_ts, ts(commit)),
            other => panic!("expected a commit at {commit}, got {other:?}"),
        }
    }

    fn must_rolled_back(&self, key: &[u8], start: u64) {
        assert_eq!(self.record(key, start), CommitRecord::RolledBack);
    }

    fn check_txn_status(&self, primary: &[u8], lock_ts: TimeStamp, current: TimeStamp) -> TxnStatus {
        let (status, txn) =
            commands::check_txn_status(&self.engine.snapshot(), primary, lock_ts, current, true).unwrap();
        self.apply(txn);
        status
    }

    fn resolve(&self, start: u64, commit: Option<u64>) {
        let snapshot = self.engine.snapshot();
        let keys = commands::locked_keys_of(&snapshot, ts(start), usize::MAX).unwrap();
        let txn = commands::resolve_lock(&snapshot, &keys, ts(start), commit.map(ts)).unwrap();
        self.apply(txn);
    }

    /// Entries per column family: (default, lock, write).
    fn counts(&self) -> (usize, usize, usize) {
        let snapshot = self.engine.snapshot();
        let count = |cf| snapshot.iter(cf, IterOptions::default()).count();
        (count(Cf::Default), count(Cf::Lock), count(Cf::Write))
    }
}

fn put(key: &[u8], value: &[u8]) -> Mutation {
    Mutation::put(key, value)
}

// ---- 4A: reading versions ----

#[test]
fn read_sees_the_newest_version_committed_at_or_below_its_timestamp() {
    let store = Store::new();
    store.must_put(b"k", b"v42", 40, 42);
    store.must_put(b"k", b"v52", 50, 52);
    assert_eq!(store.must_get(b"k", 41), None, "too early");
    assert_eq!(
        store.must_get(b"k", 42).as_deref(),
        Some(&b"v42"[..]),
        "commit ts is inclusive"
    );
    assert_eq!(
        store.must_get(b"k", 51).as_deref(),
        Some(&b"v42"[..]),
        "not yet overwritten"
    );
    assert_eq!(
        store.must_get(b"k", 52).as_deref(),
        Some(&b"v52"[..]),
        "overwritten"
    );
    assert_eq!(store.must_get(b"missing", 100), None);
}

#[test]
fn a_delete_hides_older_versions_from_later_reads_only() {
    let store = Store::new();
    store.must_put(b"k", b"v", 40, 42);
    store.must_delete(b"k", 60, 66);
    store.must_put(b"k", b"again", 110, 120);
    assert_eq!(store.must_get(b"k", 65).as_deref(), Some(&b"v"[..]));
    assert_eq!(store.must_get(b"k", 66), None);
    assert_eq!(store.must_get(b"k", 100), None);
    assert_eq!(store.must_get(b"k", 122).as_deref(), Some(&b"again"[..]));
}

#[test]
fn rollback_and_lock_records_are_skipped_by_reads() {
    let store = Store::new();
    store.must_put(b"k", b"v", 10, 11);
    store.must_prewrite_put(b"k", b"never", b"k", 20);
    store.rollback(&[b"k"], 20).unwrap();
    store
        .prewrite(vec![Mutation::check_unchanged(&b"k"[..], ts(11))], b"k", 30)
        .unwrap();
    store.must_commit(b"k", 30, 31);
    assert_eq!(store.must_get(b"k", 100).as_deref(), Some(&b"v"[..]));
}

#[test]
fn commit_record_lookup_finds_this_transactions_record_only() {
    let store = Store::new();
    store.must_put(b"k", b"a", 10, 15);
    store.must_put(b"k", b"b", 20, 25);
    store.must_committed_at(b"k", 10, 15);
    store.must_committed_at(b"k", 20, 25);
    assert_eq!(store.record(b"k", 12), CommitRecord::None);
    assert_eq!(store.record(b"other", 10), CommitRecord::None);
    let latest = MvccReader::new(&store.engine.snapshot())
        .seek_write(&Key::from_raw(b"k"), TimeStamp::MAX)
        .unwrap()
        .unwrap();
    assert_eq!((latest.0, latest.1.start_ts), (ts(25), ts(20)));
}

#[test]
fn long_values_go_to_the_default_column_family_short_ones_inline() {
    let store = Store::new();
    let long = vec![7u8; SHORT_VALUE_MAX_BYTES + 1];
    store.must_put(b"short", b"tiny", 10, 11);
    assert_eq!(store.counts(), (0, 0, 1));
    store.must_put(b"long", &long, 20, 21);
    assert_eq!(store.counts(), (1, 0, 2));
    assert_eq!(store.must_get(b"long", 30), Some(long));
}

// ---- 4B: get, prewrite, commit ----

#[test]
fn get_is_blocked_only_by_locks_at_or_below_its_timestamp() {
    let store = Store::new();
    store.must_put(b"k", b"old", 10, 11);
    store.must_prewrite_put(b"k", b"new", b"p", 200);
    assert_eq!(
        store.must_get(b"k", 55).as_deref(),
        Some(&b"old"[..]),
        "the lock is newer than the read"
    );
    match store.get(b"k", 300) {
        Err(MvccError::KeyIsLocked(info)) => {
            assert_eq!(
                (info.key, info.primary, info.start_ts),
                (b"k".to_vec(), b"p".to_vec(), ts(200))
            );
        }
        other => panic!("expected KeyIsLocked, got {other:?}"),
    }
}

#[test]
fn empty_prewrite_writes_nothing() {
    let store = Store::new();
    store.prewrite(vec![], b"p", 100).unwrap();
    assert_eq!(store.counts(), (0, 0, 0));
}

#[test]
fn prewrite_locks_with_primary_kind_ts_and_ttl() {
    let store = Store::new();
    store.must_prewrite_put(b"k", b"42", b"p", 100);
    let lock = store.must_locked(b"k", 100);
    assert_eq!(
        (lock.kind, lock.primary.as_slice(), lock.ttl_ms),
        (LockKind::Put, &b"p"[..], 3_000)
    );
    assert_eq!(lock.short_value.as_deref(), Some(&b"42"[..]));
    assert_eq!(store.counts(), (0, 1, 0));
}

#[test]
fn prewrite_on_a_locked_key_fails_and_changes_nothing() {
    let store = Store::new();
    store.must_prewrite_put(b"k", b"a", b"k", 100);
    let errors = store
        .prewrite(vec![put(b"k", b"b"), put(b"free", b"x")], b"free", 101)
        .unwrap_err();
    assert!(matches!(&errors[..], [MvccError::KeyIsLocked(info)] if info.start_ts == ts(100)));
    store.must_unlocked(b"free");
    assert_eq!(store.counts(), (0, 1, 0));
}

#[test]
fn prewrite_conflicts_with_a_write_committed_at_or_after_its_start() {
    let store = Store::new();
    store.must_put(b"k", b"v", 99, 101);
    let errors = store.prewrite(vec![put(b"k", b"late")], b"k", 100).unwrap_err();
    assert!(
        matches!(&errors[..], [MvccError::WriteConflict { conflict_commit_ts, .. }] if *conflict_commit_ts == ts(101))
    );
    store.must_unlocked(b"k");
    // A write committed before the start is no conflict.
    store.must_put(b"j", b"v", 80, 90);
    store.must_prewrite_put(b"j", b"ok", b"j", 100);
}

#[test]
fn prewrites_of_different_keys_do_not_interfere() {
    let store = Store::new();
    store.must_prewrite_put(b"a", b"1", b"a", 100);
    store.must_prewrite_put(b"b", b"2", b"b", 101);
    store.must_locked(b"a", 100);
    store.must_locked(b"b", 101);
}

#[test]
fn within_one_prewrite_the_last_mutation_of_a_key_wins() {
    let store = Store::new();
    store
        .prewrite(
            vec![
                put(b"k", b"first"),
                Mutation::delete(&b"d"[..]),
                put(b"k", b"second"),
                put(b"d", b"revived"),
            ],
            b"k",
            100,
        )
        .unwrap();
    assert_eq!(store.counts(), (0, 2, 0));
    assert_eq!(
        store.must_locked(b"k", 100).short_value.as_deref(),
        Some(&b"second"[..])
    );
    assert_eq!(store.must_locked(b"d", 100).kind, LockKind::Put);
}

#[test]
fn prewrite_is_idempotent_for_its_own_transaction() {
    let store = Store::new();
    store.must_prewrite_put(b"k", b"v", b"k", 100);
    store.must_prewrite_put(b"k", b"v", b"k", 100);
    assert_eq!(store.counts(), (0, 1, 0));
}

#[test]
fn empty_commit_is_fine() {
    let store = Store::new();
    store.commit(&[], 100, 110).unwrap();
    assert_eq!(store.counts(), (0, 0, 0));
}

#[test]
fn commit_replaces_the_lock_with_a_write_record() {
    let store = Store::new();
    store.must_prewrite_put(b"k", b"v", b"k", 100);
    store.must_commit(b"k", 100, 110);
    store.must_unlocked(b"k");
    store.must_committed_at(b"k", 100, 110);
    assert_eq!(store.counts(), (0, 0, 1));
    let (_, write) = MvccReader::new(&store.engine.snapshot())
        .seek_write(&Key::from_raw(b"k"), TimeStamp::MAX)
        .unwrap()
        .unwrap();
    assert_eq!((write.kind, write.start_ts), (WriteKind::Put, ts(100)));
}

#[test]
fn commit_keeps_older_versions() {
    let store = Store::new();
    store.must_put(b"k", b"old", 50, 60);
    store.must_put(b"k", b"new", 100, 110);
    assert_eq!(store.counts(), (0, 0, 2));
    assert_eq!(store.must_get(b"k", 70).as_deref(), Some(&b"old"[..]));
}

#[test]
fn commit_of_several_keys_leaves_other_transactions_alone() {
    let store = Store::new();
    store
        .prewrite(vec![put(b"a", b"1"), put(b"b", b"2"), put(b"c", b"3")], b"a", 100)
        .unwrap();
    store.must_prewrite_put(b"other", b"x", b"other", 101);
    store.commit(&[b"a", b"b", b"c", b"a"], 100, 110).unwrap();
    for key in [&b"a"[..], b"b", b"c"] {
        store.must_committed_at(key, 100, 110);
    }
    store.must_locked(b"other", 101);
}

#[test]
fn commit_after_rollback_fails() {
    let store = Store::new();
    store.must_prewrite_put(b"k", b"v", b"k", 100);
    store.rollback(&[b"k"], 100).unwrap();
    assert!(matches!(
        store.commit(&[b"k"], 100, 110),
        Err(MvccError::RolledBack { .. })
    ));
    assert_eq!(store.must_get(b"k", 200), None);
}

#[test]
fn commit_where_another_transaction_holds_the_lock_fails() {
    let store = Store::new();
    store.must_prewrite_put(b"k", b"v", b"k", 90);
    assert!(matches!(
        store.commit(&[b"k"], 100, 110),
        Err(MvccError::TxnLockNotFound { .. })
    ));
    store.must_locked(b"k", 90);
}

#[test]
fn commit_of_an_already_committed_key_succeeds_and_changes_nothing() {
    let store = Store::new();
    store.must_put(b"k", b"v", 100, 110);
    let before = store.counts();
    store.commit(&[b"k"], 100, 110).unwrap();
    assert_eq!(store.counts(), before);
}

/// TinyKV lets a commit without any prewrite succeed; we refuse it, because answering
/// "committed" for a transaction whose data is not there could acknowledge a lost write.
#[test]
fn commit_without_prewrite_is_refused() {
    let store = Store::new();
    assert!(matches!(
        store.commit(&[b"k"], 100, 110),
        Err(MvccError::TxnLockNotFound { .. })
    ));
    assert_eq!(store.counts(), (0, 0, 0));
}

// ---- 4C: rollback, check_txn_status, resolve_lock, scan ----

#[test]
fn empty_rollback_is_fine() {
    let store = Store::new();
    store.rollback(&[], 100).unwrap();
    assert_eq!(store.counts(), (0, 0, 0));
}

#[test]
fn rollback_removes_lock_and_value_and_leaves_a_record() {
    let store = Store::new();
    let long = vec![1u8; SHORT_VALUE_MAX_BYTES + 10];
    store.must_prewrite_put(b"k", &long, b"k", 100);
    assert_eq!(store.counts(), (1, 1, 0));
    store.rollback(&[b"k", b"k"], 100).unwrap();
    assert_eq!(store.counts(), (0, 0, 1));
    store.must_rolled_back(b"k", 100);
}

#[test]
fn rollback_without_prewrite_still_leaves_a_record_so_a_late_prewrite_fails() {
    let store = Store::new();
    store.rollback(&[b"k"], 100).unwrap();
    store.must_rolled_back(b"k", 100);
    let errors = store.prewrite(vec![put(b"k", b"late")], b"k", 100).unwrap_err();
    assert!(matches!(&errors[..], [MvccError::WriteConflict { .. }]));
    store.must_unlocked(b"k");
}

/// A one-phase commit picks its own timestamp, which may be another transaction's start.
/// Rolling that transaction back keeps the commit record (overwriting it would lose the
/// committed value) and flags it, which fences off the transaction's late prewrite.
#[test]
fn a_rollback_keeps_another_transactions_commit_at_its_start() {
    let store = Store::new();
    // Transaction 90 committed `k` at 100, the start of transaction 100.
    store.must_put(b"k", b"v", 90, 100);
    let status = store.check_txn_status(b"k", ts(100), ts(200));
    assert_eq!(
        status,
        TxnStatus::RolledBack {
            action: Action::LockNotExistRollback
        }
    );
    store.must_committed_at(b"k", 90, 100);
    assert_eq!(store.must_get(b"k", 100).as_deref(), Some(&b"v"[..]));
    store.must_rolled_back(b"k", 100);
    // Known now: a second check or rollback changes nothing.
    assert_eq!(
        store.check_txn_status(b"k", ts(100), ts(200)),
        TxnStatus::RolledBack {
            action: Action::NoAction
        }
    );
    store.rollback(&[b"k"], 100).unwrap();
    let errors = store.prewrite(vec![put(b"k", b"late")], b"k", 100).unwrap_err();
    assert!(matches!(&errors[..], [MvccError::WriteConflict { .. }]));
    store.must_committed_at(b"k", 90, 100);
    assert_eq!(store.must_get(b"k", 150).as_deref(), Some(&b"v"[..]));
}

/// A transaction that starts at exactly another's commit timestamp reads that commit, so the
/// commit is no conflict for it.
#[test]
fn a_commit_at_a_transactions_start_is_in_its_snapshot_not_a_conflict() {
    let store = Store::new();
    store.must_put(b"k", b"v", 90, 100);
    assert_eq!(store.must_get(b"k", 100).as_deref(), Some(&b"v"[..]));
    store.must_prewrite_put(b"k", b"w", b"k", 100);
    store.must_commit(b"k", 100, 110);
    assert_eq!(store.must_get(b"k", 110).as_deref(), Some(&b"w"[..]));
}

#[test]
fn rollback_of_a_committed_transaction_fails() {
    let store = Store::new();
    store.must_put(b"k", b"v", 100, 110);
    assert!(
        matches!(store.rollback(&[b"k"], 100), Err(MvccError::Committed { commit_ts, .. }) if commit_ts == ts(110))
    );
    assert_eq!(store.must_get(b"k", 200).as_deref(), Some(&b"v"[..]));
}

#[test]
fn a_second_rollback_changes_nothing() {
    let store = Store::new();
    store.must_prewrite_put(b"k", b"v", b"k", 100);
    store.rollback(&[b"k"], 100).unwrap();
    let before = store.counts();
    store.rollback(&[b"k"], 100).unwrap();
    assert_eq!(store.counts(), before);
}

#[test]
fn rollback_keeps_another_transactions_lock() {
    let store = Store::new();
    store.must_prewrite_put(b"k", b"theirs", b"k", 80);
    store.rollback(&[b"k"], 100).unwrap();
    store.must_locked(b"k", 80);
    store.must_rolled_back(b"k", 100);
}

fn lock_ts(physical_ms: u64) -> TimeStamp {
    TimeStamp::compose(physical_ms, 7)
}

#[test]
fn check_txn_status_rolls_back_an_expired_primary() {
    let store = Store::new();
    let start = lock_ts(5_000);
    let request = PrewriteRequest {
        mutations: vec![put(b"p", b"v")],
        primary: b"p".to_vec(),
        start_ts: start,
        lock_ttl_ms: 8,
    };
    store.apply(commands::prewrite(&store.engine.snapshot(), &request, PrewriteMode::TwoPhase).unwrap());
    let status = store.check_txn_status(b"p", start, lock_ts(6_000));
    assert_eq!(
        status,
        TxnStatus::RolledBack {
            action: Action::TtlExpireRollback
        }
    );
    store.must_unlocked(b"p");
    assert_eq!(store.record(b"p", start.into_inner()), CommitRecord::RolledBack);
}

#[test]
fn check_txn_status_leaves_a_live_lock_and_reports_its_ttl() {
    let store = Store::new();
    let start = lock_ts(5_000);
    let request = PrewriteRequest {
        mutations: vec![put(b"p", b"v")],
        primary: b"p".to_vec(),
        start_ts: start,
        lock_ttl_ms: 60_000,
    };
    store.apply(commands::prewrite(&store.engine.snapshot(), &request, PrewriteMode::TwoPhase).unwrap());
    let before = store.counts();
    assert_eq!(
        store.check_txn_status(b"p", start, lock_ts(6_000)),
        TxnStatus::Locked { ttl_ms: 60_000 }
    );
    assert_eq!(store.counts(), before);
}

#[test]
fn check_txn_status_reports_rolled_back_and_committed_transactions() {
    let store = Store::new();
    let (first, second) = (lock_ts(5_000), lock_ts(5_001));
    store.rollback(&[b"p"], first.into_inner()).unwrap();
    // A later transaction's lock on the same key does not confuse the answer.
    store.must_prewrite_put(b"p", b"v", b"p", lock_ts(5_500).into_inner());
    assert_eq!(
        store.check_txn_status(b"p", first, lock_ts(6_000)),
        TxnStatus::RolledBack {
            action: Action::NoAction
        }
    );
    store.must_put(b"q", b"v", second.into_inner(), lock_ts(5_002).into_inner());
    assert_eq!(
        store.check_txn_status(b"q", second, lock_ts(6_000)),
        TxnStatus::Committed {
            commit_ts: lock_ts(5_002)
        }
    );
}

#[test]
fn check_txn_status_without_lock_or_record_rolls_back() {
    let store = Store::new();
    let start = lock_ts(5_000);
    assert_eq!(
        store.check_txn_status(b"p", start, lock_ts(6_000)),
        TxnStatus::RolledBack {
            action: Action::LockNotExistRollback
        }
    );
    assert_eq!(store.record(b"p", start.into_inner()), CommitRecord::RolledBack);
}

#[test]
fn resolve_commits_or_rolls_back_exactly_one_transactions_locks() {
    let store = Store::new();
    store
        .prewrite(vec![put(b"3", b"a"), put(b"7", b"b")], b"3", 100)
        .unwrap();
    store.must_prewrite_put(b"200", b"other", b"200", 110);
    store.resolve(100, Some(120));
    store.must_committed_at(b"3", 100, 120);
    store.must_committed_at(b"7", 100, 120);
    store.must_locked(b"200", 110);

    store.resolve(110, None);
    store.must_rolled_back(b"200", 110);
    store.must_unlocked(b"200");
    // Nothing left to resolve: no change.
    let before = store.counts();
    store.resolve(100, Some(120));
    store.resolve(110, None);
    assert_eq!(store.counts(), before);
}

/// Keys 1, 3, 4, 120, 199 at ts 99; 150 put at 99, deleted at 101, put again at 116; 5 locked.
fn scan_fixture() -> Store {
    let store = Store::new();
    for (key, value) in [
        (&b"1"[..], &b"v1"[..]),
        (b"3", b"v3"),
        (b"4", b"v4"),
        (b"120", b"v120"),
        (b"199", b"v199"),
    ] {
        store.must_put(key, value, 90, 99);
    }
    store.must_put(b"150", b"first", 90, 99);
    store.must_delete(b"150", 100, 101);
    store.must_put(b"150", b"second", 110, 116);
    store.must_prewrite_put(b"5", b"locked", b"5", 97);
    store
}

fn keys_of(entries: &[commands::ScanEntry]) -> Vec<&[u8]> {
    entries.iter().map(|(k, _)| k.as_slice()).collect()
}

/// Up to `limit` whole entries.
fn scan_pairs(
    snapshot: &impl Snapshot,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
    at: TimeStamp,
) -> Vec<commands::ScanEntry> {
    commands::scan(snapshot, start, end, ScanLimits::pairs(limit), at)
        .unwrap()
        .entries
}

#[test]
fn scan_reads_keys_in_order_with_limit_and_bounds() {
    let store = scan_fixture();
    let snapshot = store.engine.snapshot();
    let all = scan_pairs(&snapshot, b"", None, 100, ts(100));
    assert_eq!(
        keys_of(&all),
        vec![&b"1"[..], b"120", b"150", b"199", b"3", b"4", b"5"]
    );
    assert_eq!(all[0].1.as_deref().unwrap(), b"v1");
    assert!(matches!(&all[6].1, Err(MvccError::KeyIsLocked(info)) if info.start_ts == ts(97)));
    assert!(scan_pairs(&snapshot, b"200", Some(b"3"), 100, ts(100)).is_empty());
    assert!(scan_pairs(&snapshot, b"", None, 0, ts(100)).is_empty());
    let limited = commands::scan(&snapshot, b"13", None, ScanLimits::pairs(3), ts(100)).unwrap();
    assert_eq!(keys_of(&limited.entries), vec![&b"150"[..], b"199", b"3"]);
    assert_eq!(limited.resume.as_deref(), Some(&b"4"[..]), "the next stored key");
    let bounded = commands::scan(&snapshot, b"1", Some(b"150"), ScanLimits::pairs(100), ts(100)).unwrap();
    assert_eq!(keys_of(&bounded.entries), vec![&b"1"[..], b"120"]);
    assert_eq!(bounded.resume, None, "the range is exhausted");
}

#[test]
fn a_scan_examining_a_bounded_number_of_keys_steps_over_deletes_a_page_at_a_time() {
    let store = Store::new();
    for i in 0..10u8 {
        store.must_put(&[b'k', i], b"v", 10, 11);
    }
    for i in 0..8u8 {
        store.must_delete(&[b'k', i], 20, 21);
    }
    let snapshot = store.engine.snapshot();
    let limits = ScanLimits {
        limit: 100,
        examine: 3,
        value_head: None,
    };
    let mut from = b"k".to_vec();
    let mut pages = Vec::new();
    loop {
        let page = commands::scan(&snapshot, &from, None, limits, ts(30)).unwrap();
        assert!(page.examined <= 3, "{page:?}");
        pages.push(
            keys_of(&page.entries)
                .iter()
                .map(|k| k.to_vec())
                .collect::<Vec<_>>(),
        );
        match page.resume {
            Some(resume) => from = resume,
            None => break,
        }
    }
    // Eight deleted keys and two live ones, three looked at per page.
    let empty: Vec<Vec<u8>> = Vec::new();
    assert_eq!(
        pages,
        vec![empty.clone(), empty, vec![vec![b'k', 8]], vec![vec![b'k', 9]]]
    );
    // At an earlier timestamp the deleted keys are live: the same bound returns them.
    let early = commands::scan(&snapshot, b"k", None, limits, ts(15)).unwrap();
    assert_eq!(early.entries.len(), 3);
    assert_eq!(early.resume, Some(vec![b'k', 3]));
}

#[test]
fn a_scan_of_value_heads_reads_long_values_from_their_records_alone() {
    let store = Store::new();
    let long: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    store.must_put(b"long", &long, 10, 11);
    store.must_put(b"short", b"tiny", 10, 11);
    store.must_prewrite_put(b"pending", &long, b"pending", 12);
    store.must_commit(b"pending", 12, 13);
    // Remove the long values from CF default: a scan that needs them fails, one that wants
    // only their heads does not notice.
    let mut txn = super::mvcc::MvccTxn::new();
    txn.delete_value(&Key::from_raw(b"long"), ts(10));
    txn.delete_value(&Key::from_raw(b"pending"), ts(12));
    store.apply(txn);
    let snapshot = store.engine.snapshot();
    let heads = commands::scan(&snapshot, b"", None, ScanLimits::heads(10, 9), ts(20)).unwrap();
    let values: Vec<Vec<u8>> = heads.entries.into_iter().map(|(_, v)| v.unwrap()).collect();
    assert_eq!(
        values,
        vec![long[..9].to_vec(), long[..9].to_vec(), b"tiny".to_vec()]
    );
    let keys_only = commands::scan(&snapshot, b"", None, ScanLimits::heads(10, 0), ts(20)).unwrap();
    assert!(
        keys_only
            .entries
            .iter()
            .all(|(_, v)| v.as_ref().unwrap().is_empty())
    );
    assert!(matches!(
        scan_pairs(&snapshot, b"long", None, 1, ts(20))[0].1,
        Err(MvccError::BadFormat(_))
    ));
    // Past the head kept in the record, the value itself is needed.
    let wide = ScanLimits::heads(1, records::VALUE_HEAD_BYTES + 1);
    assert!(
        commands::scan(&snapshot, b"long", None, wide, ts(20))
            .unwrap()
            .entries[0]
            .1
            .is_err()
    );
}

#[test]
fn a_scan_agrees_with_point_reads_however_many_versions_a_key_has() {
    // Key i has i versions (puts, deletes, rollbacks), so some keys are stepped over and
    // others sought past, at every timestamp.
    let store = Store::new();
    let mut at = 10;
    for i in 0..12u8 {
        for v in 0..i {
            let key = [b'k', i];
            match v % 4 {
                0 | 1 => store.must_put(&key, &[v], at, at + 1),
                2 => store.must_delete(&key, at, at + 1),
                _ => store.rollback(&[&key], at).unwrap(),
            }
            at += 2;
        }
    }
    let snapshot = store.engine.snapshot();
    for read_at in (10..at + 2).step_by(3) {
        let scanned = scan_pairs(&snapshot, b"", None, 100, ts(read_at));
        let expected: Vec<(Vec<u8>, Vec<u8>)> = (0..12u8)
            .filter_map(|i| Some((vec![b'k', i], store.must_get(&[b'k', i], read_at)?)))
            .collect();
        let scanned: Vec<(Vec<u8>, Vec<u8>)> = scanned.into_iter().map(|(k, v)| (k, v.unwrap())).collect();
        assert_eq!(scanned, expected, "at {read_at}");
    }
}

#[test]
fn scan_sees_each_key_as_of_its_timestamp() {
    let store = scan_fixture();
    let snapshot = store.engine.snapshot();
    let value_at = |at: u64| {
        let entries = scan_pairs(&snapshot, b"150", Some(b"151"), 10, ts(at));
        entries.into_iter().next().map(|(_, v)| v.unwrap())
    };
    assert_eq!(value_at(100).as_deref(), Some(&b"first"[..]));
    assert_eq!(value_at(105), None, "deleted at 101");
    assert_eq!(value_at(120).as_deref(), Some(&b"second"[..]));
    // Before the lock's start, the locked key simply does not exist yet.
    let early = scan_pairs(&snapshot, b"5", None, 10, ts(96));
    assert!(early.is_empty());
}

#[test]
fn one_phase_commit_writes_records_without_locks() {
    let store = Store::new();
    store.must_put(b"old", b"v", 10, 11);
    let request = PrewriteRequest {
        mutations: vec![put(b"a", b"1"), Mutation::delete(&b"old"[..])],
        primary: b"a".to_vec(),
        start_ts: ts(20),
        lock_ttl_ms: 3_000,
    };
    let txn = commands::prewrite(
        &store.engine.snapshot(),
        &request,
        PrewriteMode::OnePhase { commit_ts: ts(21) },
    )
    .unwrap();
    store.apply(txn);
    store.must_unlocked(b"a");
    store.must_committed_at(b"a", 20, 21);
    assert_eq!(store.must_get(b"a", 21).as_deref(), Some(&b"1"[..]));
    assert_eq!(store.must_get(b"old", 21), None);
    assert_eq!(store.must_get(b"old", 20).as_deref(), Some(&b"v"[..]));
}

#[test]
fn check_unchanged_fails_only_on_a_value_change_after_its_timestamp() {
    let store = Store::new();
    store.must_put(b"w", b"1", 10, 11);
    let check = |since: u64, start: u64| {
        store.prewrite(vec![Mutation::check_unchanged(&b"w"[..], ts(since))], b"w", start)
    };
    // Changed at 11, after a watch at 5: conflict.
    assert!(matches!(
        check(5, 30).unwrap_err()[..],
        [MvccError::WriteConflict { .. }]
    ));
    // Unchanged since 12: fine, and it only takes a lock.
    check(12, 30).unwrap();
    assert_eq!(store.must_locked(b"w", 30).kind, LockKind::Lock);
    store.must_commit(b"w", 30, 31);
    // A lock record is not a change.
    check(12, 40).unwrap();
}

#[test]
fn a_written_and_watched_key_fails_on_a_change_before_the_start_too() {
    let store = Store::new();
    store.must_put(b"w", b"1", 10, 20);
    let mut mutation = Mutation::put(&b"w"[..], &b"2"[..]);
    mutation.unchanged_since = Some(ts(15));
    // Committed at 20: before this start (30) but after the watch (15).
    assert!(store.prewrite(vec![mutation.clone()], b"w", 30).is_err());
    mutation.unchanged_since = Some(ts(25));
    store.prewrite(vec![mutation], b"w", 30).unwrap();
}
