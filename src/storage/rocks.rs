//! The RocksDB engine: one database, one column family per [`Cf`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBCompressionType, DBRawIteratorWithThreadMode,
    Options, ReadOptions, SliceTransform,
};

use super::{
    Cf, Cursor, Direction, Engine, EngineIter, IterOptions, KvPair, Mutation, Result, Snapshot, StorageError,
    WriteBatch, WriteOptions,
};

/// Sizing of a [`RocksEngine`]. The defaults suit a small machine (2 cores, a few GiB for the
/// database); a production node raises the cache and the buffers.
#[derive(Clone, Debug)]
pub struct RocksOptions {
    /// Shared LRU block cache for all column families.
    pub block_cache_bytes: usize,
    /// Size of one memtable before it is flushed.
    pub write_buffer_bytes: usize,
    /// Flush and compaction threads.
    pub max_background_jobs: i32,
    /// Open file handles RocksDB may keep (-1 for unlimited).
    pub max_open_files: i32,
}

impl Default for RocksOptions {
    fn default() -> Self {
        RocksOptions {
            block_cache_bytes: 128 << 20,
            write_buffer_bytes: 32 << 20,
            max_background_jobs: 2,
            max_open_files: 1024,
        }
    }
}

/// An [`Engine`] on RocksDB. Cloning shares the database.
#[derive(Clone)]
pub struct RocksEngine {
    db: Arc<DB>,
    path: PathBuf,
}

impl RocksEngine {
    /// Opens (creating if needed) the database at `path` with every column family.
    pub fn open(path: impl AsRef<Path>, sizing: &RocksOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&path).map_err(|source| StorageError::Io {
            path: path.display().to_string(),
            source,
        })?;

        let cache = Cache::new_lru_cache(sizing.block_cache_bytes)?;
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(sizing.max_background_jobs);
        db_opts.set_max_open_files(sizing.max_open_files);
        // Keep RocksDB's own log files from piling up in the data directory.
        db_opts.set_keep_log_file_num(4);

        let descriptors =
            Cf::ALL.map(|cf| ColumnFamilyDescriptor::new(cf.name(), cf_options(cf, sizing, &cache)));
        let db = DB::open_cf_descriptors(&db_opts, &path, descriptors)?;
        Ok(RocksEngine {
            db: Arc::new(db),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        cf_handle(&self.db, cf)
    }

    fn cf_property(&self, cf: Cf, name: &str) -> u64 {
        self.db
            .property_int_value_cf(self.cf(cf), name)
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// What the data column families take: table files plus memtables.
    pub fn used_bytes(&self) -> u64 {
        DATA_CFS
            .iter()
            .chain(&[Cf::Raft])
            .map(|&cf| {
                self.cf_property(cf, "rocksdb.total-sst-files-size")
                    + self.cf_property(cf, "rocksdb.cur-size-all-mem-tables")
            })
            .sum()
    }

    /// An estimate of the data stored in the key range `[start, end)` (an empty `end`: no
    /// bound), from the engine's metadata alone: no data is read. Each table file counts whole
    /// when its key range lies inside, half when it straddles a bound; memtables count in
    /// proportion to the range's share of the files (wholly when the range is everything).
    /// `keys` counts write-CF entries: committed versions, not distinct user keys.
    pub fn approximate_range(&self, start: &[u8], end: &[u8]) -> RangeEstimate {
        let mut inside = RangeEstimate::default();
        let mut total_bytes = 0u64;
        for file in self.db.live_files().unwrap_or_default() {
            let Some(cf) = DATA_CFS.iter().find(|cf| cf.name() == file.column_family_name) else {
                continue;
            };
            let size = file.size as u64;
            total_bytes += size;
            let (Some(first), Some(last)) = (&file.start_key, &file.end_key) else {
                continue;
            };
            let disjoint = last.as_slice() < start || (!end.is_empty() && first.as_slice() >= end);
            if disjoint {
                continue;
            }
            let contained = first.as_slice() >= start && (end.is_empty() || last.as_slice() < end);
            let share = |n: u64| if contained { n } else { n / 2 };
            inside.bytes += share(size);
            if *cf == Cf::Write {
                inside.keys += share(file.num_entries);
            }
        }
        let everything = start.is_empty() && end.is_empty();
        let file_bytes = inside.bytes;
        let memtables = |name: &str, cfs: &[Cf]| -> u64 {
            let all: u64 = cfs.iter().map(|&cf| self.cf_property(cf, name)).sum();
            if everything {
                all
            } else if total_bytes == 0 {
                0
            } else {
                (u128::from(all) * u128::from(file_bytes) / u128::from(total_bytes)) as u64
            }
        };
        inside.bytes += memtables("rocksdb.cur-size-all-mem-tables", &DATA_CFS);
        inside.keys += memtables("rocksdb.num-entries-active-mem-table", &[Cf::Write])
            + memtables("rocksdb.num-entries-imm-mem-tables", &[Cf::Write]);
        inside
    }
}

/// The column families that hold user data (not the raft log and states).
const DATA_CFS: [Cf; 3] = [Cf::Default, Cf::Lock, Cf::Write];

/// See [`RocksEngine::approximate_range`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeEstimate {
    pub bytes: u64,
    pub keys: u64,
}

fn cf_handle(db: &DB, cf: Cf) -> &rocksdb::ColumnFamily {
    db.cf_handle(cf.name())
        .expect("every column family is created when the engine opens")
}

fn cf_options(cf: Cf, sizing: &RocksOptions, cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    if cf != Cf::Raft {
        // Point reads dominate the data column families; the raft log is read by range.
        table.set_bloom_filter(10.0, false);
    }
    let mut opts = Options::default();
    if cf == Cf::Write {
        // Reading a key's versions seeks to the key; a bloom filter of version prefixes lets
        // that seek skip every file and memtable that has no version of it (see
        // `IterOptions::versions_only`), as TiKV does for its write column family.
        opts.set_prefix_extractor(SliceTransform::create(
            "ferrokv.version_prefix",
            |key| super::version_prefix(key).unwrap_or(key),
            Some(|key| super::version_prefix(key).is_some()),
        ));
        opts.set_memtable_prefix_bloom_ratio(0.1);
    }
    opts.set_block_based_table_factory(&table);
    opts.set_write_buffer_size(sizing.write_buffer_bytes);
    opts.set_level_compaction_dynamic_level_bytes(true);
    opts.set_compression_type(DBCompressionType::Lz4);
    opts.set_bottommost_compression_type(DBCompressionType::Zstd);
    opts
}

impl Engine for RocksEngine {
    type Snapshot = RocksSnapshot;

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    fn write(&self, batch: &WriteBatch, opts: WriteOptions) -> Result<()> {
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for mutation in batch.mutations() {
            match mutation {
                Mutation::Put { cf, key, value } => rocks_batch.put_cf(self.cf(*cf), key, value),
                Mutation::Delete { cf, key } => rocks_batch.delete_cf(self.cf(*cf), key),
                Mutation::DeleteRange { cf, start, end } => {
                    if start < end {
                        rocks_batch.delete_range_cf(self.cf(*cf), start, end)
                    }
                }
            }
        }
        let mut write_opts = rocksdb::WriteOptions::default();
        write_opts.set_sync(opts.sync);
        Ok(self.db.write_opt(rocks_batch, &write_opts)?)
    }

    fn snapshot(&self) -> RocksSnapshot {
        RocksSnapshot(SnapshotCell::new(self.db.clone(), |db| db.snapshot()))
    }

    fn sync_wal(&self) -> Result<()> {
        // With RocksDB's default automatic WAL flushing, this is SyncWAL: the log file is
        // fsync'd outside the write queue, so concurrent writes go on.
        Ok(self.db.flush_wal(true)?)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush_wal(true)?;
        for cf in Cf::ALL {
            self.db.flush_cf(self.cf(cf))?;
        }
        Ok(())
    }
}

type DbSnapshot<'a> = rocksdb::SnapshotWithThreadMode<'a, DB>;

self_cell::self_cell!(
    /// A RocksDB snapshot together with the database it pins, so it can be moved and kept.
    struct SnapshotCell {
        owner: Arc<DB>,
        #[covariant]
        dependent: DbSnapshot,
    }
);

/// A point-in-time view of a [`RocksEngine`].
pub struct RocksSnapshot(SnapshotCell);

impl Snapshot for RocksSnapshot {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let db = self.0.borrow_owner();
        Ok(self.0.borrow_dependent().get_cf(cf_handle(db, cf), key)?)
    }

    fn iter(&self, cf: Cf, opts: IterOptions) -> EngineIter<'_> {
        let db = self.0.borrow_owner();
        let read_opts = read_options(&opts);
        let mut raw = self
            .0
            .borrow_dependent()
            .raw_iterator_cf_opt(cf_handle(db, cf), read_opts);
        match opts.direction {
            Direction::Forward => raw.seek_to_first(),
            Direction::Reverse => raw.seek_to_last(),
        }
        Box::new(RocksIter {
            raw,
            direction: opts.direction,
            done: false,
        })
    }

    fn cursor(&self, cf: Cf, opts: IterOptions) -> Box<dyn Cursor + Send + '_> {
        let db = self.0.borrow_owner();
        let read_opts = read_options(&opts);
        let raw = self
            .0
            .borrow_dependent()
            .raw_iterator_cf_opt(cf_handle(db, cf), read_opts);
        Box::new(RocksCursor { raw })
    }
}

/// RocksDB's read options for `opts`. Every iterator but a `versions_only` one reads in total
/// order: with a prefix extractor configured, RocksDB would otherwise be free to skip keys of
/// other prefixes.
fn read_options(opts: &IterOptions) -> ReadOptions {
    let mut read_opts = ReadOptions::default();
    if let Some(lower) = opts.lower.clone() {
        read_opts.set_iterate_lower_bound(lower);
    }
    if let Some(upper) = opts.upper.clone() {
        read_opts.set_iterate_upper_bound(upper);
    }
    if opts.versions_only {
        read_opts.set_prefix_same_as_start(true);
    } else {
        read_opts.set_total_order_seek(true);
    }
    read_opts
}

struct RocksCursor<'a> {
    raw: DBRawIteratorWithThreadMode<'a, DB>,
}

impl Cursor for RocksCursor<'_> {
    fn seek(&mut self, key: &[u8]) -> Result<bool> {
        self.raw.seek(key);
        self.raw.status()?;
        Ok(self.raw.valid())
    }

    fn next(&mut self) -> Result<bool> {
        if self.raw.valid() {
            self.raw.next();
        }
        self.raw.status()?;
        Ok(self.raw.valid())
    }

    fn valid(&self) -> bool {
        self.raw.valid()
    }

    fn key(&self) -> &[u8] {
        self.raw.key().expect("a valid cursor")
    }

    fn value(&self) -> &[u8] {
        self.raw.value().expect("a valid cursor")
    }
}

struct RocksIter<'a> {
    raw: DBRawIteratorWithThreadMode<'a, DB>,
    direction: Direction,
    /// Set once the iterator has ended or reported an error.
    done: bool,
}

impl Iterator for RocksIter<'_> {
    type Item = Result<KvPair>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if !self.raw.valid() {
            self.done = true;
            return self.raw.status().err().map(|e| Err(e.into()));
        }
        let pair = match (self.raw.key(), self.raw.value()) {
            (Some(k), Some(v)) => (k.to_vec(), v.to_vec()),
            _ => unreachable!("a valid iterator has a key and a value"),
        };
        match self.direction {
            Direction::Forward => self.raw.next(),
            Direction::Reverse => self.raw.prev(),
        }
        Some(Ok(pair))
    }
}
