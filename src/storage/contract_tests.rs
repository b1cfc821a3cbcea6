//! The engine contract: every scenario runs against both engines.

use super::*;

/// Runs a scenario once on a [`MemoryEngine`] and once on a fresh [`RocksEngine`].
fn on_both_engines(scenario: impl Fn(&dyn Fn() -> Box<dyn AnyEngine>)) {
    scenario(&|| Box::new(MemoryEngine::new()));
    let dirs = std::cell::RefCell::new(Vec::new());
    scenario(&|| {
        let dir = tempfile::tempdir().unwrap();
        let engine = RocksEngine::open(dir.path(), &RocksOptions::default()).unwrap();
        dirs.borrow_mut().push(dir);
        Box::new(engine)
    });
}

/// An object-safe view of an engine and its snapshots, so one scenario serves both types.
trait AnyEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn write(&self, batch: &WriteBatch) -> Result<()>;
    fn snapshot(&self) -> Box<dyn AnySnapshot>;
    fn put(&self, cf: Cf, key: &[u8], value: &[u8]) -> Result<()>;
    fn delete(&self, cf: Cf, key: &[u8]) -> Result<()>;
    fn scan(&self, cf: Cf, start: &[u8], limit: usize) -> Result<Vec<KvPair>>;
    /// Moves everything written to the engine's files (memtables to SSTs for RocksDB).
    fn flush(&self) -> Result<()>;
}

trait AnySnapshot {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn collect(&self, cf: Cf, opts: IterOptions) -> Result<Vec<KvPair>>;
    /// Seeks to each of `seeks` in turn and reads `steps` keys from there.
    fn cursor_walk(
        &self,
        cf: Cf,
        opts: IterOptions,
        seeks: &[&[u8]],
        steps: usize,
    ) -> Result<Vec<Vec<Vec<u8>>>>;
}

impl<E: Engine> AnyEngine for E {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        raw::raw_get(self, cf, key)
    }
    fn write(&self, batch: &WriteBatch) -> Result<()> {
        Engine::write(self, batch, WriteOptions::SYNC)
    }
    fn snapshot(&self) -> Box<dyn AnySnapshot> {
        Box::new(Engine::snapshot(self))
    }
    fn put(&self, cf: Cf, key: &[u8], value: &[u8]) -> Result<()> {
        raw::raw_put(self, cf, key, value)
    }
    fn delete(&self, cf: Cf, key: &[u8]) -> Result<()> {
        raw::raw_delete(self, cf, key)
    }
    fn scan(&self, cf: Cf, start: &[u8], limit: usize) -> Result<Vec<KvPair>> {
        raw::raw_scan(self, cf, start, limit)
    }
    fn flush(&self) -> Result<()> {
        Engine::flush(self)
    }
}

impl<S: Snapshot> AnySnapshot for S {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Snapshot::get(self, cf, key)
    }
    fn collect(&self, cf: Cf, opts: IterOptions) -> Result<Vec<KvPair>> {
        self.iter(cf, opts).collect()
    }
    fn cursor_walk(
        &self,
        cf: Cf,
        opts: IterOptions,
        seeks: &[&[u8]],
        steps: usize,
    ) -> Result<Vec<Vec<Vec<u8>>>> {
        let mut cursor = self.cursor(cf, opts);
        let mut walks = Vec::new();
        for seek in seeks {
            let mut walk = Vec::new();
            let mut valid = cursor.seek(seek)?;
            while valid && walk.len() < steps {
                assert_eq!(cursor.value(), b"v", "cursor values line up with keys");
                walk.push(cursor.key().to_vec());
                valid = cursor.next()?;
            }
            assert_eq!(valid, cursor.valid());
            walks.push(walk);
        }
        Ok(walks)
    }
}

fn kv(k: &[u8], v: &[u8]) -> KvPair {
    (k.to_vec(), v.to_vec())
}

fn keys(pairs: &[KvPair]) -> Vec<&[u8]> {
    pairs.iter().map(|(k, _)| k.as_slice()).collect()
}

#[test]
fn raw_get_returns_what_was_put() {
    on_both_engines(|open| {
        let engine = open();
        engine.put(Cf::Default, &[99], &[42]).unwrap();
        assert_eq!(engine.get(Cf::Default, &[99]).unwrap(), Some(vec![42]));
    });
}

#[test]
fn missing_key_is_not_found_not_an_error() {
    on_both_engines(|open| {
        let engine = open();
        assert_eq!(engine.get(Cf::Default, b"absent").unwrap(), None);
        // Deleting what is not there is fine too.
        engine.delete(Cf::Default, b"absent").unwrap();
    });
}

#[test]
fn same_key_in_two_column_families_is_two_values() {
    on_both_engines(|open| {
        let engine = open();
        engine.put(Cf::Default, &[99], &[42]).unwrap();
        engine.put(Cf::Write, &[99], &[44]).unwrap();
        assert_eq!(engine.get(Cf::Default, &[99]).unwrap(), Some(vec![42]));
        assert_eq!(engine.get(Cf::Write, &[99]).unwrap(), Some(vec![44]));
        assert_eq!(engine.get(Cf::Lock, &[99]).unwrap(), None);
        assert_eq!(engine.get(Cf::Raft, &[99]).unwrap(), None);
    });
}

#[test]
fn delete_makes_key_not_found() {
    on_both_engines(|open| {
        let engine = open();
        engine.put(Cf::Default, &[99], &[42]).unwrap();
        engine.delete(Cf::Default, &[99]).unwrap();
        assert_eq!(engine.get(Cf::Default, &[99]).unwrap(), None);
    });
}

#[test]
fn scan_returns_keys_in_order_from_start_up_to_limit() {
    on_both_engines(|open| {
        let engine = open();
        for k in [5u8, 1, 3, 2, 4] {
            engine.put(Cf::Default, &[k], &[k + 100]).unwrap();
        }
        let got = engine.scan(Cf::Default, &[1], 3).unwrap();
        assert_eq!(got, vec![kv(&[1], &[101]), kv(&[2], &[102]), kv(&[3], &[103])]);
        // Start between keys, and a limit past the end.
        let got = engine.scan(Cf::Default, &[2, 0], 10).unwrap();
        assert_eq!(keys(&got), vec![&[3u8][..], &[4], &[5]]);
        assert!(engine.scan(Cf::Default, &[1], 0).unwrap().is_empty());
        // Other column families are not mixed in.
        assert!(engine.scan(Cf::Write, &[], 10).unwrap().is_empty());
    });
}

#[test]
fn scan_sees_new_keys_and_skips_deleted_ones() {
    on_both_engines(|open| {
        let engine = open();
        for k in 1u8..=4 {
            engine.put(Cf::Default, &[k], &[k]).unwrap();
        }
        engine.put(Cf::Default, &[5], &[5]).unwrap();
        engine.delete(Cf::Default, &[3]).unwrap();
        let got = engine.scan(Cf::Default, &[1], 10).unwrap();
        assert_eq!(keys(&got), vec![&[1u8][..], &[2], &[4], &[5]]);
    });
}

#[test]
fn snapshot_taken_before_delete_still_sees_the_key() {
    on_both_engines(|open| {
        let engine = open();
        for k in 1u8..=5 {
            engine.put(Cf::Default, &[k], &[k]).unwrap();
        }
        let snapshot = engine.snapshot();
        engine.delete(Cf::Default, &[3]).unwrap();
        engine.put(Cf::Default, &[6], &[6]).unwrap();
        engine.put(Cf::Default, &[1], &[100]).unwrap();
        assert_eq!(snapshot.get(Cf::Default, &[3]).unwrap(), Some(vec![3]));
        assert_eq!(snapshot.get(Cf::Default, &[1]).unwrap(), Some(vec![1]));
        let got = snapshot.collect(Cf::Default, IterOptions::default()).unwrap();
        assert_eq!(keys(&got), vec![&[1u8][..], &[2], &[3], &[4], &[5]]);
        // The engine itself moved on.
        assert_eq!(engine.get(Cf::Default, &[3]).unwrap(), None);
    });
}

#[test]
fn batch_across_column_families_is_atomic_to_snapshots() {
    on_both_engines(|open| {
        let engine = open();
        engine.put(Cf::Lock, b"k", b"old-lock").unwrap();
        let before = engine.snapshot();
        let mut batch = WriteBatch::new();
        batch.put(Cf::Default, b"k", b"v");
        batch.put(Cf::Write, b"k", b"w");
        batch.delete(Cf::Lock, b"k");
        batch.put(Cf::Raft, b"log", b"entry");
        engine.write(&batch).unwrap();
        let after = engine.snapshot();
        assert_eq!(before.get(Cf::Default, b"k").unwrap(), None);
        assert_eq!(before.get(Cf::Lock, b"k").unwrap(), Some(b"old-lock".to_vec()));
        assert_eq!(after.get(Cf::Default, b"k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(after.get(Cf::Write, b"k").unwrap(), Some(b"w".to_vec()));
        assert_eq!(after.get(Cf::Lock, b"k").unwrap(), None);
        assert_eq!(after.get(Cf::Raft, b"log").unwrap(), Some(b"entry".to_vec()));
    });
}

#[test]
fn later_mutations_in_a_batch_win() {
    on_both_engines(|open| {
        let engine = open();
        let mut batch = WriteBatch::new();
        batch.put(Cf::Default, b"a", b"1");
        batch.delete(Cf::Default, b"a");
        batch.put(Cf::Default, b"b", b"1");
        batch.put(Cf::Default, b"b", b"2");
        engine.write(&batch).unwrap();
        assert_eq!(engine.get(Cf::Default, b"a").unwrap(), None);
        assert_eq!(engine.get(Cf::Default, b"b").unwrap(), Some(b"2".to_vec()));
    });
}

#[test]
fn delete_range_removes_exactly_the_half_open_range() {
    on_both_engines(|open| {
        let engine = open();
        for k in 1u8..=6 {
            engine.put(Cf::Write, &[k], &[k]).unwrap();
            engine.put(Cf::Default, &[k], &[k]).unwrap();
        }
        let mut batch = WriteBatch::new();
        batch.delete_range(Cf::Write, [2u8], [5u8]);
        // An empty or inverted range deletes nothing.
        batch.delete_range(Cf::Write, [6u8], [6u8]);
        batch.delete_range(Cf::Write, [6u8], [1u8]);
        engine.write(&batch).unwrap();
        let got = engine
            .snapshot()
            .collect(Cf::Write, IterOptions::default())
            .unwrap();
        assert_eq!(keys(&got), vec![&[1u8][..], &[5], &[6]]);
        // Only the named column family.
        assert_eq!(engine.scan(Cf::Default, &[], 10).unwrap().len(), 6);
    });
}

#[test]
fn iterators_respect_bounds_in_both_directions() {
    on_both_engines(|open| {
        let engine = open();
        for k in [b"a", b"b", b"c", b"d", b"e"] {
            engine.put(Cf::Default, k, k).unwrap();
        }
        let snapshot = engine.snapshot();
        let forward = snapshot
            .collect(Cf::Default, IterOptions::range(*b"b", *b"e"))
            .unwrap();
        assert_eq!(keys(&forward), vec![b"b", b"c", b"d"]);
        let reverse = snapshot
            .collect(Cf::Default, IterOptions::range(*b"b", *b"e").reverse())
            .unwrap();
        assert_eq!(keys(&reverse), vec![b"d", b"c", b"b"]);
        let reverse_all = snapshot
            .collect(Cf::Default, IterOptions::default().reverse())
            .unwrap();
        assert_eq!(keys(&reverse_all), vec![b"e", b"d", b"c", b"b", b"a"]);
        let upper_only = IterOptions {
            upper: Some(b"c".to_vec()),
            ..Default::default()
        };
        assert_eq!(
            keys(&snapshot.collect(Cf::Default, upper_only.clone()).unwrap()),
            vec![b"a", b"b"]
        );
        assert_eq!(
            keys(&snapshot.collect(Cf::Default, upper_only.reverse()).unwrap()),
            vec![b"b", b"a"]
        );
        // Bounds that select nothing, including inverted ones.
        assert!(
            snapshot
                .collect(Cf::Default, IterOptions::range(*b"x", *b"z"))
                .unwrap()
                .is_empty()
        );
        assert!(
            snapshot
                .collect(Cf::Default, IterOptions::range(*b"d", *b"b"))
                .unwrap()
                .is_empty()
        );
        assert!(
            snapshot
                .collect(Cf::Default, IterOptions::range(*b"d", *b"b").reverse())
                .unwrap()
                .is_empty()
        );
    });
}

#[test]
fn keys_order_bytewise_including_prefixes_and_high_bytes() {
    on_both_engines(|open| {
        let engine = open();
        let all: [&[u8]; 6] = [b"", b"\x00", b"a", b"a\x00", b"ab", b"\xff\xff"];
        for k in all.iter().rev() {
            engine.put(Cf::Default, k, b"v").unwrap();
        }
        let got = engine.scan(Cf::Default, b"", 100).unwrap();
        assert_eq!(keys(&got), all.to_vec());
    });
}

#[test]
fn rocks_engine_keeps_synced_writes_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = RocksEngine::open(dir.path(), &RocksOptions::default()).unwrap();
        raw::raw_put(&engine, Cf::Lock, b"k", b"v").unwrap();
        let mut batch = WriteBatch::new();
        batch.put(Cf::Raft, b"r", b"1");
        Engine::write(&engine, &batch, WriteOptions::SYNC).unwrap();
    }
    let engine = RocksEngine::open(dir.path(), &RocksOptions::default()).unwrap();
    assert_eq!(
        raw::raw_get(&engine, Cf::Lock, b"k").unwrap(),
        Some(b"v".to_vec())
    );
    assert_eq!(
        raw::raw_get(&engine, Cf::Raft, b"r").unwrap(),
        Some(b"1".to_vec())
    );
}

#[test]
fn rocks_engine_refuses_a_second_open_of_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _first = RocksEngine::open(dir.path(), &RocksOptions::default()).unwrap();
    let second = RocksEngine::open(dir.path(), &RocksOptions::default());
    assert!(
        matches!(second, Err(StorageError::Rocks(_))),
        "a held LOCK file must be an error"
    );
}

#[test]
fn cursors_seek_forward_and_back_within_bounds() {
    on_both_engines(|open| {
        let engine = open();
        for k in [b"a", b"c", b"e", b"g", b"i"] {
            engine.put(Cf::Write, k, b"v").unwrap();
        }
        engine.put(Cf::Default, b"b", b"v").unwrap();
        let snapshot = engine.snapshot();
        let walks = snapshot
            .cursor_walk(
                Cf::Write,
                IterOptions::range(*b"b", *b"h"),
                &[b"d", b"a", b"h", b"f", b"", b"c"],
                10,
            )
            .unwrap();
        let expect: [&[&[u8]]; 6] = [
            &[b"e", b"g"],
            &[b"c", b"e", b"g"],
            &[],
            &[b"g"],
            &[b"c", b"e", b"g"],
            &[b"c", b"e", b"g"],
        ];
        for (walk, expected) in walks.iter().zip(expect) {
            assert_eq!(walk, &expected.iter().map(|k| k.to_vec()).collect::<Vec<_>>());
        }
        let unbounded = snapshot
            .cursor_walk(Cf::Write, IterOptions::default(), &[b"h"], 1)
            .unwrap();
        assert_eq!(unbounded[0], vec![b"i".to_vec()]);
    });
}

#[test]
fn versions_only_cursors_end_with_the_key_and_others_see_every_key() {
    let version = |key: &[u8], ts: u8| [key, &[0, 0, 0, 0, 0, 0, 0, ts]].concat();
    on_both_engines(|open| {
        let engine = open();
        for (key, ts) in [(&b"apple"[..], 2), (b"apple", 1), (b"apricot", 1), (b"banana", 1)] {
            engine.put(Cf::Write, &version(key, ts), b"v").unwrap();
        }
        // Once from memtables, once from files (where RocksDB's prefix filters live).
        for flushed in [false, true] {
            if flushed {
                engine.flush().unwrap();
            }
            let snapshot = engine.snapshot();
            let versions = IterOptions {
                versions_only: true,
                ..IterOptions::default()
            };
            let walks = snapshot
                .cursor_walk(
                    Cf::Write,
                    versions,
                    &[&version(b"apple", 0), &version(b"aq", 0), &version(b"banana", 0)],
                    10,
                )
                .unwrap();
            let apples: Vec<Vec<u8>> = vec![version(b"apple", 1), version(b"apple", 2)];
            assert_eq!(walks[0], apples, "flushed: {flushed}");
            let no_walk: Vec<Vec<u8>> = Vec::new();
            assert_eq!(walks[1], no_walk, "a key without versions; flushed: {flushed}");
            assert_eq!(walks[2], vec![version(b"banana", 1)], "flushed: {flushed}");

            let across = snapshot
                .cursor_walk(Cf::Write, IterOptions::default(), &[&version(b"apple", 9)], 10)
                .unwrap();
            assert_eq!(
                across[0],
                vec![version(b"apricot", 1), version(b"banana", 1)],
                "a total-order seek crosses keys; flushed: {flushed}"
            );
        }
    });
}

#[test]
fn rocks_engine_estimates_a_range_from_its_files_and_memtables() {
    let dir = tempfile::tempdir().unwrap();
    let engine = RocksEngine::open(dir.path(), &RocksOptions::default()).unwrap();
    let write_keys = |prefix: u8| {
        let mut batch = WriteBatch::new();
        for i in 0..1_000u32 {
            let mut key = vec![prefix];
            key.extend_from_slice(&i.to_be_bytes());
            batch.put(Cf::Write, key, vec![7u8; 100]);
        }
        Engine::write(&engine, &batch, WriteOptions::NO_SYNC).unwrap();
    };
    write_keys(b'a');
    let unflushed = engine.approximate_range(b"", b"");
    assert!(
        unflushed.bytes >= 100_000,
        "memtables count for everything: {unflushed:?}"
    );
    assert_eq!(unflushed.keys, 1_000);
    Engine::flush(&engine).unwrap();
    write_keys(b'm');
    Engine::flush(&engine).unwrap();
    // Two files, one per prefix: a range holding one of them counts it alone.
    let left = engine.approximate_range(b"", b"m");
    let right = engine.approximate_range(b"m", b"");
    let all = engine.approximate_range(b"", b"");
    assert_eq!(left.keys, 1_000, "{left:?}");
    assert_eq!(right.keys, 1_000, "{right:?}");
    assert_eq!(all.keys, 2_000);
    // (Memtables' shares are rounded down.)
    assert!(
        all.bytes - (left.bytes + right.bytes) <= 2,
        "{left:?} {right:?} {all:?}"
    );
    assert!(left.bytes > 0 && right.bytes > 0);
    assert_eq!(engine.approximate_range(b"x", b"").keys, 0);
    assert!(engine.used_bytes() >= all.bytes);
}
