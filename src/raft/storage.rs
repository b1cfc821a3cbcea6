//! The persisted log, as the Raft core reads it, and an in-memory implementation.
//!
//! The core never writes storage: the application persists what a `Ready` hands it and then
//! calls `advance`. Storage answers questions about what is already persisted.

use std::sync::Arc;

use parking_lot::RwLock;

use super::message::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The index was compacted away (it is at or before the snapshot).
    #[error("log compacted")]
    Compacted,
    /// The index is past the last entry.
    #[error("log unavailable")]
    Unavailable,
    /// A snapshot older than the one already there.
    #[error("snapshot out of date")]
    SnapshotOutOfDate,
    /// The snapshot is being generated; ask again later.
    #[error("snapshot temporarily unavailable")]
    SnapshotTemporarilyUnavailable,
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// What a node restarts from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftState {
    pub hard_state: HardState,
    pub conf_state: ConfState,
}

/// Read access to the persisted log.
///
/// Contract: entries are contiguous from `first_index()` to `last_index()`; `term(i)` works for
/// `first_index() - 1 <= i <= last_index()` (the entry before the first is the snapshot's, whose
/// term is kept) and answers `Compacted` below, `Unavailable` above.
pub trait Storage {
    fn initial_state(&self) -> Result<RaftState>;

    /// Entries `[low, high)`, at most `max_size` bytes in total but always at least one.
    fn entries(&self, low: u64, high: u64, max_size: Option<u64>) -> Result<Vec<Entry>>;

    fn term(&self, index: u64) -> Result<u64>;

    /// The index of the first entry still in the log (the snapshot's index + 1).
    fn first_index(&self) -> Result<u64>;

    fn last_index(&self) -> Result<u64>;

    /// The latest snapshot, at least as recent as `request_index`.
    fn snapshot(&self, request_index: u64) -> Result<Snapshot>;
}

#[derive(Default)]
struct MemCore {
    hard_state: HardState,
    /// The snapshot the log starts after (index and term of its last entry).
    snapshot: Snapshot,
    /// Entries after the snapshot, contiguous.
    entries: Vec<Entry>,
    /// Set to make `snapshot()` answer "temporarily unavailable" (tests).
    snapshot_unavailable: bool,
}

/// Storage in memory: for tests and simulations. Cloning shares it.
#[derive(Clone, Default)]
pub struct MemStorage {
    core: Arc<RwLock<MemCore>>,
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// A storage whose group starts with `voters` (as if a snapshot at index 0 said so).
    pub fn new_with_conf_state(voters: Vec<u64>) -> Self {
        let storage = MemStorage::new();
        storage.core.write().snapshot.metadata.conf_state = ConfState::new(voters);
        storage
    }

    pub fn set_hard_state(&self, hard_state: HardState) {
        self.core.write().hard_state = hard_state;
    }

    pub fn hard_state(&self) -> HardState {
        self.core.read().hard_state
    }

    pub fn set_conf_state(&self, conf_state: ConfState) {
        self.core.write().snapshot.metadata.conf_state = conf_state;
    }

    /// Appends entries, replacing any stored entries from the first new index on.
    pub fn append(&self, entries: &[Entry]) {
        let Some(first_new) = entries.first() else { return };
        let mut core = self.core.write();
        let first = core.snapshot.metadata.index + 1;
        assert!(
            first_new.index <= first + core.entries.len() as u64,
            "appending entries after {} leaves a gap after {}",
            first_new.index,
            first + core.entries.len() as u64 - 1
        );
        // Entries at or before the snapshot are already covered by it.
        let skip = first.saturating_sub(first_new.index) as usize;
        let entries = &entries[skip.min(entries.len())..];
        let Some(first_new) = entries.first() else { return };
        core.entries.truncate((first_new.index - first) as usize);
        core.entries.extend_from_slice(entries);
    }

    /// Replaces everything with `snapshot`.
    pub fn apply_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        let mut core = self.core.write();
        if snapshot.metadata.index < core.snapshot.metadata.index {
            return Err(StorageError::SnapshotOutOfDate);
        }
        core.hard_state.commit = core.hard_state.commit.max(snapshot.metadata.index);
        core.hard_state.term = core.hard_state.term.max(snapshot.metadata.term);
        core.entries.clear();
        core.snapshot = snapshot;
        Ok(())
    }

    /// Discards entries up to and including `index` (which must be stored), making a snapshot
    /// point there with the current membership and `data`.
    pub fn compact(&self, index: u64, data: Vec<u8>) -> Result<()> {
        let mut core = self.core.write();
        let snap_index = core.snapshot.metadata.index;
        if index <= snap_index {
            return Err(StorageError::Compacted);
        }
        let last = snap_index + core.entries.len() as u64;
        assert!(index <= last, "compacting to {index} past the last index {last}");
        let position = (index - snap_index - 1) as usize;
        let term = core.entries[position].term;
        core.entries.drain(..=position);
        core.snapshot.metadata.index = index;
        core.snapshot.metadata.term = term;
        core.snapshot.data = data;
        Ok(())
    }

    pub fn set_snapshot_unavailable(&self, unavailable: bool) {
        self.core.write().snapshot_unavailable = unavailable;
    }

    /// The first stored index (benchmarks).
    pub fn first_index_for_bench(&self) -> u64 {
        Storage::first_index(self).expect("memory storage always answers")
    }

    /// The last stored index (tests).
    pub fn last_index_for_test(&self) -> u64 {
        Storage::last_index(self).expect("memory storage always answers")
    }

    /// Every stored entry (tests).
    pub fn all_entries(&self) -> Vec<Entry> {
        self.core.read().entries.clone()
    }

    pub fn snapshot_metadata(&self) -> SnapshotMetadata {
        self.core.read().snapshot.metadata.clone()
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<RaftState> {
        let core = self.core.read();
        Ok(RaftState {
            hard_state: core.hard_state,
            conf_state: core.snapshot.metadata.conf_state.clone(),
        })
    }

    fn entries(&self, low: u64, high: u64, max_size: Option<u64>) -> Result<Vec<Entry>> {
        let core = self.core.read();
        let first = core.snapshot.metadata.index + 1;
        let last = first + core.entries.len() as u64 - 1;
        if low < first {
            return Err(StorageError::Compacted);
        }
        if high > last + 1 {
            return Err(StorageError::Unavailable);
        }
        let slice = &core.entries[(low - first) as usize..(high - first) as usize];
        Ok(limit_size(slice, max_size))
    }

    fn term(&self, index: u64) -> Result<u64> {
        let core = self.core.read();
        let snap = &core.snapshot.metadata;
        if index == snap.index {
            return Ok(snap.term);
        }
        if index < snap.index {
            return Err(StorageError::Compacted);
        }
        core.entries
            .get((index - snap.index - 1) as usize)
            .map(|e| e.term)
            .ok_or(StorageError::Unavailable)
    }

    fn first_index(&self) -> Result<u64> {
        Ok(self.core.read().snapshot.metadata.index + 1)
    }

    fn last_index(&self) -> Result<u64> {
        let core = self.core.read();
        Ok(core.snapshot.metadata.index + core.entries.len() as u64)
    }

    fn snapshot(&self, _request_index: u64) -> Result<Snapshot> {
        let core = self.core.read();
        if core.snapshot_unavailable {
            return Err(StorageError::SnapshotTemporarilyUnavailable);
        }
        Ok(core.snapshot.clone())
    }
}

/// The longest prefix of `entries` within `max_size` bytes, but at least one entry.
pub fn limit_size(entries: &[Entry], max_size: Option<u64>) -> Vec<Entry> {
    let Some(max_size) = max_size else {
        return entries.to_vec();
    };
    let mut size = 0;
    let count = entries
        .iter()
        .take_while(|e| {
            size += e.size();
            size <= max_size
        })
        .count();
    entries[..count.max(1).min(entries.len())].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range.map(|i| Entry::new(term, i)).collect()
    }

    fn storage_with_3_to_5() -> MemStorage {
        let storage = MemStorage::new();
        storage.append(&entries(1..=5, 1));
        storage.compact(2, vec![]).unwrap();
        storage.append(&[Entry::new(3, 3), Entry::new(4, 4), Entry::new(5, 5)]);
        storage
    }

    #[test]
    fn term_covers_the_snapshot_index_and_reports_compacted_and_unavailable() {
        let storage = storage_with_3_to_5();
        assert_eq!(storage.term(1), Err(StorageError::Compacted));
        assert_eq!(storage.term(2), Ok(1));
        assert_eq!(storage.term(3), Ok(3));
        assert_eq!(storage.term(5), Ok(5));
        assert_eq!(storage.term(6), Err(StorageError::Unavailable));
    }

    #[test]
    fn entries_are_half_open_and_size_limited_to_at_least_one() {
        let storage = storage_with_3_to_5();
        assert_eq!(storage.entries(2, 4, None), Err(StorageError::Compacted));
        assert_eq!(storage.entries(3, 4, None).unwrap().len(), 1);
        assert_eq!(storage.entries(3, 6, None).unwrap().len(), 3);
        assert_eq!(storage.entries(3, 7, None), Err(StorageError::Unavailable));
        assert_eq!(storage.entries(3, 6, Some(0)).unwrap().len(), 1);
        assert_eq!(storage.entries(3, 6, Some(48)).unwrap().len(), 2);
    }

    #[test]
    fn append_overwrites_a_conflicting_suffix_and_skips_compacted_entries() {
        let storage = storage_with_3_to_5();
        storage.append(&[Entry::new(6, 4), Entry::new(6, 5), Entry::new(6, 6)]);
        let terms: Vec<u64> = storage.all_entries().iter().map(|e| e.term).collect();
        assert_eq!(terms, vec![3, 6, 6, 6]);
        storage.append(&[Entry::new(1, 1), Entry::new(1, 2), Entry::new(7, 3)]);
        let terms: Vec<u64> = storage.all_entries().iter().map(|e| e.term).collect();
        assert_eq!(terms, vec![7], "entries after a replaced one are gone");
        assert_eq!(storage.last_index().unwrap(), 3);
    }

    #[test]
    fn compact_and_snapshots() {
        let storage = storage_with_3_to_5();
        assert_eq!(storage.compact(2, vec![]), Err(StorageError::Compacted));
        storage.compact(4, b"state".to_vec()).unwrap();
        assert_eq!(storage.first_index().unwrap(), 5);
        let snapshot = storage.snapshot(0).unwrap();
        assert_eq!((snapshot.metadata.index, snapshot.metadata.term), (4, 4));
        let mut older = snapshot.clone();
        older.metadata.index = 3;
        assert_eq!(
            storage.apply_snapshot(older),
            Err(StorageError::SnapshotOutOfDate)
        );
        storage.set_snapshot_unavailable(true);
        assert_eq!(
            storage.snapshot(0),
            Err(StorageError::SnapshotTemporarilyUnavailable)
        );
    }
}
