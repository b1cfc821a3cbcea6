//! # Storage: the engine every other layer writes through
//!
//! An [`Engine`] is an ordered key-value store split into four column families (see [`Cf`]):
//!
//! | column family | holds |
//! |---|---|
//! | `default` | user values (raw API), and later Percolator's values at `(key, start_ts)` |
//! | `lock`    | Percolator locks, one per user key |
//! | `write`   | Percolator commit records at `(key, commit_ts)` |
//! | `raft`    | raft log entries and raft hard state |
//!
//! What an engine promises:
//!
//! - **Atomic batches.** A [`WriteBatch`] may touch several column families; after a crash either
//!   all of it is there or none of it is.
//! - **Durability on request.** With [`WriteOptions::sync`] set, `write` returns only after the
//!   batch is on stable storage (RocksDB: the WAL is fsync'd). Without it, a crash may lose the
//!   latest batches, but never part of one.
//! - **Point-in-time snapshots.** A [`Snapshot`] sees exactly the batches written before it was
//!   taken, for as long as it lives, whatever is written afterwards.
//! - **Bounded iterators**, forward or reverse, over `[lower, upper)` of one column family of a
//!   snapshot, yielding keys in byte order (reverse order when asked).
//!
//! Two engines implement the trait: [`RocksEngine`] (the real one, on RocksDB) and
//! [`MemoryEngine`] (an ordered map, for tests and simulations). One contract suite
//! (`contract_tests`) runs the same scenarios against both.
//!
//! The [`raw`] module is the simplest user of an engine: the seed project's Raw API.
//!
//! ## Caveats
//!
//! - `MemoryEngine` copies a column family's map on the first write after a snapshot of it
//!   was taken (copy on write), so it is meant for tests, not for large data.
//! - Values are returned as owned `Vec<u8>`; pinned slices would save a copy on hot reads.

mod crashable;
mod memory;
pub mod raw;
mod rocks;

#[cfg(test)]
mod contract_tests;

pub use crashable::{CrashableEngine, cf_contents};
pub use memory::MemoryEngine;
pub use rocks::{RocksEngine, RocksOptions};

use std::fmt;

/// A column family. Keys in different column families never collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    Default,
    Lock,
    Write,
    Raft,
}

impl Cf {
    /// Every column family, in a fixed order (the index of each is `cf as usize`).
    pub const ALL: [Cf; 4] = [Cf::Default, Cf::Lock, Cf::Write, Cf::Raft];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Default => "default",
            Cf::Lock => "lock",
            Cf::Write => "write",
            Cf::Raft => "raft",
        }
    }

    /// Parses a column family name as the Raw API's callers spell it.
    pub fn from_name(name: &str) -> Option<Cf> {
        Cf::ALL.into_iter().find(|cf| cf.name() == name)
    }
}

impl fmt::Display for Cf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB reported an error (I/O, corruption, a held lock on the directory...).
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("i/o error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// A storage error that several waiters can each be handed (the layers above report one
/// engine failure to every request it affects).
#[derive(Debug, Clone)]
pub struct SharedStorageError(pub std::sync::Arc<StorageError>);

impl PartialEq for SharedStorageError {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SharedStorageError {}

impl fmt::Display for SharedStorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<StorageError> for SharedStorageError {
    fn from(e: StorageError) -> Self {
        SharedStorageError(std::sync::Arc::new(e))
    }
}

/// One change inside a [`WriteBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    Put {
        cf: Cf,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        cf: Cf,
        key: Vec<u8>,
    },
    /// Deletes every key in `[start, end)`.
    DeleteRange {
        cf: Cf,
        start: Vec<u8>,
        end: Vec<u8>,
    },
}

/// A set of changes applied atomically, in order, by [`Engine::write`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    mutations: Vec<Mutation>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.mutations.push(Mutation::Put {
            cf,
            key: key.into(),
            value: value.into(),
        });
    }

    pub fn delete(&mut self, cf: Cf, key: impl Into<Vec<u8>>) {
        self.mutations.push(Mutation::Delete { cf, key: key.into() });
    }

    pub fn delete_range(&mut self, cf: Cf, start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) {
        self.mutations.push(Mutation::DeleteRange {
            cf,
            start: start.into(),
            end: end.into(),
        });
    }

    /// Appends every change of `other` after this batch's own.
    pub fn extend(&mut self, other: WriteBatch) {
        self.mutations.extend(other.mutations);
    }

    pub fn is_empty(&self) -> bool {
        self.mutations.is_empty()
    }

    pub fn len(&self) -> usize {
        self.mutations.len()
    }

    pub fn mutations(&self) -> &[Mutation] {
        &self.mutations
    }
}

/// How a batch is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Return only after the batch is on stable storage (fsync of the write-ahead log).
    pub sync: bool,
}

impl WriteOptions {
    pub const SYNC: WriteOptions = WriteOptions { sync: true };
    pub const NO_SYNC: WriteOptions = WriteOptions { sync: false };
}

/// Which way an iterator walks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direction {
    #[default]
    Forward,
    Reverse,
}

/// How many bytes at the end of a [`Cf::Write`] key are its version (a timestamp). The rest is
/// the key's *prefix*: every version of one key shares it, and engines may index it (RocksDB
/// keeps a bloom filter of prefixes per file and per memtable, so a [`IterOptions::versions_only`]
/// seek skips whatever cannot hold the key).
pub const VERSION_SUFFIX_BYTES: usize = 8;

/// The part of `key` that [`IterOptions::versions_only`] cursors stay within: all but its
/// version suffix, or `None` for a key too short to have one.
pub fn version_prefix(key: &[u8]) -> Option<&[u8]> {
    key.len().checked_sub(VERSION_SUFFIX_BYTES).map(|end| &key[..end])
}

/// The bounds and direction of an iterator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IterOptions {
    /// Inclusive lower bound; `None` is the first key.
    pub lower: Option<Vec<u8>>,
    /// Exclusive upper bound; `None` is past the last key.
    pub upper: Option<Vec<u8>>,
    pub direction: Direction,
    /// A cursor that reads only the versions of one key after each seek (keys ending in a
    /// [`VERSION_SUFFIX_BYTES`] version): after a seek it ends where the target's
    /// [`version_prefix`] ends. The engine may then skip files and memtables whose filters
    /// rule the prefix out, which a seek across keys cannot.
    pub versions_only: bool,
}

impl IterOptions {
    /// Forward from `lower` (inclusive) to the end.
    pub fn from(lower: impl Into<Vec<u8>>) -> Self {
        IterOptions {
            lower: Some(lower.into()),
            ..Default::default()
        }
    }

    /// Forward over `[lower, upper)`.
    pub fn range(lower: impl Into<Vec<u8>>, upper: impl Into<Vec<u8>>) -> Self {
        IterOptions {
            lower: Some(lower.into()),
            upper: Some(upper.into()),
            direction: Direction::Forward,
            versions_only: false,
        }
    }

    pub fn reverse(mut self) -> Self {
        self.direction = Direction::Reverse;
        self
    }

    /// Whether `key` lies inside the bounds.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.lower.as_deref().is_none_or(|lower| key >= lower)
            && self.upper.as_deref().is_none_or(|upper| key < upper)
    }
}

/// A key and its value, as iterators yield them.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// An iterator over a snapshot. It yields an error at most once, then ends.
pub type EngineIter<'a> = Box<dyn Iterator<Item = Result<KvPair>> + Send + 'a>;

/// A forward cursor over one column family of a snapshot, within bounds. Unlike an
/// [`EngineIter`] it can jump: [`Cursor::seek`] repositions it at the first key at or after a
/// given key, which is how MVCC readers skip a user key's older versions.
pub trait Cursor {
    /// Positions at the first key `>= key` within the bounds; returns whether there is one.
    fn seek(&mut self, key: &[u8]) -> Result<bool>;
    /// Moves to the next key; returns whether there is one.
    fn next(&mut self) -> Result<bool>;
    fn valid(&self) -> bool;
    /// The current key. Only while [`Cursor::valid`].
    fn key(&self) -> &[u8];
    /// The current value. Only while [`Cursor::valid`].
    fn value(&self) -> &[u8];
}

/// A point-in-time, read-only view of an engine. It owns what it needs, so it can outlive the
/// borrow of the engine that made it.
pub trait Snapshot: Send + Sync + 'static {
    /// The value of `key` in `cf` as of the snapshot, or `None` if it is absent.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Iterates `cf` within `opts`' bounds, in `opts`' direction.
    fn iter(&self, cf: Cf, opts: IterOptions) -> EngineIter<'_>;

    /// A forward cursor over `cf` within `opts`' bounds (`opts.direction` is ignored), not yet
    /// positioned: call [`Cursor::seek`] first.
    fn cursor(&self, cf: Cf, opts: IterOptions) -> Box<dyn Cursor + Send + '_>;
}

/// An ordered, column-family key-value engine. See the module docs for its contract.
pub trait Engine: Send + Sync + 'static {
    type Snapshot: Snapshot;

    /// The latest value of `key` in `cf`.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Applies `batch` atomically; with `opts.sync`, durably before returning.
    fn write(&self, batch: &WriteBatch, opts: WriteOptions) -> Result<()>;

    /// A consistent view of everything written so far.
    fn snapshot(&self) -> Self::Snapshot;

    /// Makes every write so far durable (an fsync of the write-ahead log), without holding
    /// up writes that arrive meanwhile: a writer that needs durability writes unsynced and
    /// then calls this, so writers that do not need it never queue behind its fsync.
    fn sync_wal(&self) -> Result<()>;

    /// Makes every write so far durable (fsync of the WAL, flush of memtables). Called on
    /// clean shutdown.
    fn flush(&self) -> Result<()>;
}
