//! `PeerStorage`: one region peer's raft log and states on the store's engine, read by the raft
//! core through [`raft::Storage`](crate::raft::Storage).
//!
//! The log lives in the raft column family (see `keys.rs`); the raft state (hard state, last
//! index and term) beside it; the apply state (applied index, truncated state) and the region
//! state too, written in the same batch as the data they describe. The peer writes through
//! [`WriteBatch`]es its driver commits; reads go to the engine, so a change is visible once its
//! batch is written, before the driver calls `advance`.
//!
//! A region bootstrapped on this store starts with its log truncated at
//! [`RAFT_INIT_LOG_INDEX`] (term [`RAFT_INIT_LOG_TERM`]), as TinyKV's do: a peer that joins
//! later with an empty log can only be caught up by a snapshot, which carries the membership
//! (see the raft module docs).

use super::keys::{
    apply_state_key, decode_entry, encode_entry, raft_log_key, raft_log_range, raft_state_key,
    region_state_key,
};
use super::meta::{
    DecodeError, PeerState, RaftApplyState, RaftLocalState, Region, RegionLocalState, TruncatedState,
};
use super::snap::{DATA_CFS, SnapshotData, region_bounds};
use crate::raft::message::{Snapshot, SnapshotMetadata};
use crate::raft::storage::{RaftState, Storage, StorageError as RaftStorageError, limit_size};
use crate::raft::{ConfState, Entry, HardState};
use crate::storage::{Cf, Engine, IterOptions, Snapshot as _, StorageError, WriteBatch};

/// The index a bootstrapped region's log starts after.
pub const RAFT_INIT_LOG_INDEX: u64 = 5;
/// The term of that index.
pub const RAFT_INIT_LOG_TERM: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum PeerStorageError {
    #[error(transparent)]
    Engine(#[from] StorageError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("region {0} has no state on this store")]
    RegionNotFound(u64),
}

pub struct PeerStorage<E: Engine> {
    engine: E,
    region: Region,
    raft_state: RaftLocalState,
    apply_state: RaftApplyState,
}

impl<E: Engine> PeerStorage<E> {
    /// Writes the initial states of a region created on this store (by bootstrap or split).
    pub fn write_initial_states(region: &Region, batch: &mut WriteBatch) {
        let raft_state = RaftLocalState {
            hard_state: HardState {
                term: RAFT_INIT_LOG_TERM,
                vote: 0,
                commit: RAFT_INIT_LOG_INDEX,
            },
            last_index: RAFT_INIT_LOG_INDEX,
            last_term: RAFT_INIT_LOG_TERM,
        };
        let apply_state = RaftApplyState {
            applied_index: RAFT_INIT_LOG_INDEX,
            truncated: TruncatedState {
                index: RAFT_INIT_LOG_INDEX,
                term: RAFT_INIT_LOG_TERM,
            },
        };
        let region_state = RegionLocalState {
            state: PeerState::Normal,
            region: region.clone(),
        };
        batch.put(Cf::Raft, raft_state_key(region.id), raft_state.encode());
        batch.put(Cf::Raft, apply_state_key(region.id), apply_state.encode());
        batch.put(Cf::Raft, region_state_key(region.id), region_state.encode());
    }

    /// Loads the peer of region `region_id` from the engine.
    pub fn open(engine: E, region_id: u64) -> Result<Self, PeerStorageError> {
        let load = |key: Vec<u8>| engine.get(Cf::Raft, &key);
        let region_state =
            load(region_state_key(region_id))?.ok_or(PeerStorageError::RegionNotFound(region_id))?;
        let raft_state =
            load(raft_state_key(region_id))?.ok_or(PeerStorageError::RegionNotFound(region_id))?;
        let apply_state =
            load(apply_state_key(region_id))?.ok_or(PeerStorageError::RegionNotFound(region_id))?;
        let storage = PeerStorage {
            region: RegionLocalState::decode(&region_state)?.region,
            raft_state: RaftLocalState::decode(&raft_state)?,
            apply_state: RaftApplyState::decode(&apply_state)?,
            engine,
        };
        storage.check_invariants();
        Ok(storage)
    }

    /// The peer of a region this store learned of from a raft message: no range and no log.
    /// The leader brings it up to date with a snapshot. A hard state it persisted before a
    /// restart (its vote) is loaded, so it never votes twice in a term.
    pub fn uninitialized(engine: E, region_id: u64) -> Result<Self, PeerStorageError> {
        let mut raft_state = RaftLocalState::default();
        if let Some(bytes) = engine.get(Cf::Raft, &raft_state_key(region_id))? {
            raft_state.hard_state = RaftLocalState::decode(&bytes)?.hard_state;
        }
        Ok(PeerStorage {
            engine,
            region: Region {
                id: region_id,
                ..Region::default()
            },
            raft_state,
            apply_state: RaftApplyState::default(),
        })
    }

    /// Records a new region layout (a membership change was applied) in `batch`.
    pub fn set_region(&mut self, region: Region, batch: &mut WriteBatch) {
        let state = RegionLocalState {
            state: PeerState::Normal,
            region,
        };
        batch.put(Cf::Raft, region_state_key(state.region.id), state.encode());
        self.region = state.region;
    }

    /// Removes this peer (it was taken out of its region): its log and states, and the data of
    /// its range, go; a tombstone with the region as of the removal stays, so stale messages
    /// do not bring the peer back.
    pub fn destroy(&mut self, batch: &mut WriteBatch) {
        if self.is_initialized() {
            self.delete_region_data(&self.region, batch);
        }
        self.clear_meta(batch);
        let tombstone = RegionLocalState {
            state: PeerState::Tombstone,
            region: self.region.clone(),
        };
        batch.put(Cf::Raft, region_state_key(self.region.id), tombstone.encode());
    }

    fn check_invariants(&self) {
        let truncated = self.apply_state.truncated.index;
        assert!(
            truncated <= self.apply_state.applied_index && truncated <= self.raft_state.last_index,
            "region {}: truncated {truncated} is past applied {} or last {}",
            self.region.id,
            self.apply_state.applied_index,
            self.raft_state.last_index
        );
    }

    pub fn region(&self) -> &Region {
        &self.region
    }

    /// Whether the peer has a range and a log (it was bootstrapped, split off, or got a
    /// snapshot).
    pub fn is_initialized(&self) -> bool {
        !self.region.peers.is_empty()
    }

    pub fn apply_state(&self) -> RaftApplyState {
        self.apply_state
    }

    pub fn raft_state(&self) -> RaftLocalState {
        self.raft_state
    }

    /// Appends entries from the raft core (TinyKV's `Append`): entries at or below the
    /// truncated index are skipped, stored entries after the new last index are deleted (the
    /// leader replaced them), and the raft state moves to the new last entry.
    pub fn append(&mut self, entries: &[Entry], batch: &mut WriteBatch) {
        let first_keep = self.apply_state.truncated.index + 1;
        let entries: Vec<&Entry> = entries.iter().filter(|e| e.index >= first_keep).collect();
        let Some(last) = entries.last() else { return };
        for entry in &entries {
            batch.put(
                Cf::Raft,
                raft_log_key(self.region.id, entry.index),
                encode_entry(entry),
            );
        }
        let (new_last, new_last_term) = (last.index, last.term);
        if new_last < self.raft_state.last_index {
            batch.delete_range(
                Cf::Raft,
                raft_log_key(self.region.id, new_last + 1),
                raft_log_key(self.region.id, self.raft_state.last_index + 1),
            );
        }
        self.raft_state.last_index = new_last;
        self.raft_state.last_term = new_last_term;
        batch.put(Cf::Raft, raft_state_key(self.region.id), self.raft_state.encode());
    }

    pub fn set_hard_state(&mut self, hard_state: HardState, batch: &mut WriteBatch) {
        self.raft_state.hard_state = hard_state;
        batch.put(Cf::Raft, raft_state_key(self.region.id), self.raft_state.encode());
    }

    /// Records that entries up to `index` are applied (in the batch that applies them).
    pub fn set_applied(&mut self, index: u64, batch: &mut WriteBatch) {
        assert!(
            index >= self.apply_state.applied_index,
            "applied index went back to {index}"
        );
        self.apply_state.applied_index = index;
        batch.put(
            Cf::Raft,
            apply_state_key(self.region.id),
            self.apply_state.encode(),
        );
    }

    /// Compacts the log through `truncated` (a log GC command was applied): the state moves
    /// now, the entries are deleted in the same batch.
    pub fn compact_to(&mut self, truncated: TruncatedState, batch: &mut WriteBatch) {
        let old = self.apply_state.truncated.index;
        if truncated.index <= old {
            return;
        }
        assert!(
            truncated.index <= self.apply_state.applied_index,
            "compacting past applied"
        );
        batch.delete_range(
            Cf::Raft,
            raft_log_key(self.region.id, old + 1),
            raft_log_key(self.region.id, truncated.index + 1),
        );
        self.apply_state.truncated = truncated;
        batch.put(
            Cf::Raft,
            apply_state_key(self.region.id),
            self.apply_state.encode(),
        );
    }

    /// Replaces this peer's data and log with `snapshot` (TinyKV's `ApplySnapshot`): the data
    /// of the old and new ranges is cleared and the snapshot's written, the log is dropped, and
    /// the states move to the snapshot's index, all in `batch`.
    pub fn apply_snapshot(&mut self, snapshot: &Snapshot, batch: &mut WriteBatch) -> Result<(), DecodeError> {
        let data = SnapshotData::decode(&snapshot.data)?;
        if data.region.id != self.region.id {
            return Err(DecodeError {
                what: "region snapshot",
                detail: format!("for region {}, not {}", data.region.id, self.region.id),
            });
        }
        let (index, term) = (snapshot.metadata.index, snapshot.metadata.term);
        if self.is_initialized() {
            self.delete_region_data(&self.region, batch);
        }
        self.delete_region_data(&data.region, batch);
        let (start, end) = raft_log_range(self.region.id);
        batch.delete_range(Cf::Raft, start, end);
        for (cf, key, value) in &data.pairs {
            batch.put(*cf, key.clone(), value.clone());
        }

        self.raft_state.last_index = index;
        self.raft_state.last_term = term;
        self.raft_state.hard_state.commit = self.raft_state.hard_state.commit.max(index);
        self.apply_state = RaftApplyState {
            applied_index: index,
            truncated: TruncatedState { index, term },
        };
        self.region = data.region;
        let region_state = RegionLocalState {
            state: PeerState::Normal,
            region: self.region.clone(),
        };
        let id = self.region.id;
        batch.put(Cf::Raft, raft_state_key(id), self.raft_state.encode());
        batch.put(Cf::Raft, apply_state_key(id), self.apply_state.encode());
        batch.put(Cf::Raft, region_state_key(id), region_state.encode());
        Ok(())
    }

    /// Deletes, in `batch`, the data-CF keys of `region`'s range as the engine holds them now.
    fn delete_region_data(&self, region: &Region, batch: &mut WriteBatch) {
        let snapshot = self.engine.snapshot();
        for cf in DATA_CFS {
            for item in snapshot.iter(cf, region_bounds(region)) {
                let (key, _) = item.expect("reading region data from the engine");
                batch.delete(cf, key);
            }
        }
    }

    /// Deletes everything this peer stored: log, raft, apply and region states.
    pub fn clear_meta(&mut self, batch: &mut WriteBatch) {
        let (start, end) = raft_log_range(self.region.id);
        batch.delete_range(Cf::Raft, start, end);
        batch.delete(Cf::Raft, raft_state_key(self.region.id));
        batch.delete(Cf::Raft, apply_state_key(self.region.id));
        batch.delete(Cf::Raft, region_state_key(self.region.id));
        self.raft_state = RaftLocalState::default();
        self.apply_state = RaftApplyState::default();
    }

    fn truncated(&self) -> TruncatedState {
        self.apply_state.truncated
    }
}

impl<E: Engine> Storage for PeerStorage<E> {
    fn initial_state(&self) -> Result<RaftState, RaftStorageError> {
        Ok(RaftState {
            hard_state: self.raft_state.hard_state,
            conf_state: ConfState::new(self.region.peers.iter().map(|p| p.id).collect()),
        })
    }

    fn entries(&self, low: u64, high: u64, max_size: Option<u64>) -> Result<Vec<Entry>, RaftStorageError> {
        if low <= self.truncated().index {
            return Err(RaftStorageError::Compacted);
        }
        if high > self.raft_state.last_index + 1 {
            return Err(RaftStorageError::Unavailable);
        }
        if low >= high {
            return Ok(Vec::new());
        }
        let snapshot = self.engine.snapshot();
        let opts = IterOptions::range(
            raft_log_key(self.region.id, low),
            raft_log_key(self.region.id, high),
        );
        let mut entries = Vec::with_capacity((high - low).min(1024) as usize);
        for item in snapshot.iter(Cf::Raft, opts) {
            let (_, value) = item.expect("reading the raft log from the engine");
            let entry = decode_entry(&value).expect("a raft log entry written by this store");
            assert_eq!(entry.index, low + entries.len() as u64, "a hole in the raft log");
            entries.push(entry);
        }
        assert_eq!(
            entries.len() as u64,
            high - low,
            "raft log entries missing from the engine"
        );
        Ok(limit_size(&entries, max_size))
    }

    fn term(&self, index: u64) -> Result<u64, RaftStorageError> {
        let truncated = self.truncated();
        if index == truncated.index {
            return Ok(truncated.term);
        }
        if index < truncated.index {
            return Err(RaftStorageError::Compacted);
        }
        if index > self.raft_state.last_index {
            return Err(RaftStorageError::Unavailable);
        }
        if index == self.raft_state.last_index {
            return Ok(self.raft_state.last_term);
        }
        Ok(self.entries(index, index + 1, None)?[0].term)
    }

    fn first_index(&self) -> Result<u64, RaftStorageError> {
        Ok(self.truncated().index + 1)
    }

    fn last_index(&self) -> Result<u64, RaftStorageError> {
        Ok(self.raft_state.last_index)
    }

    /// The region as of the last applied entry: its data, read from one engine snapshot
    /// together with the apply state it matches (they are written in the same batches).
    fn snapshot(&self, _request_index: u64) -> Result<Snapshot, RaftStorageError> {
        if !self.is_initialized() {
            return Err(RaftStorageError::SnapshotTemporarilyUnavailable);
        }
        let id = self.region.id;
        let snap = self.engine.snapshot();
        let load = |key: Vec<u8>| {
            snap.get(Cf::Raft, &key)
                .expect("reading peer state from the engine")
                .unwrap_or_else(|| panic!("region {id}: state missing from the engine"))
        };
        let apply_state = RaftApplyState::decode(&load(apply_state_key(id))).expect("apply state");
        let region_state = RegionLocalState::decode(&load(region_state_key(id))).expect("region state");
        if region_state.state != PeerState::Normal {
            return Err(RaftStorageError::SnapshotTemporarilyUnavailable);
        }
        let index = apply_state.applied_index;
        let term = if index == apply_state.truncated.index {
            apply_state.truncated.term
        } else {
            decode_entry(&load(raft_log_key(id, index)))
                .expect("a raft log entry written by this store")
                .term
        };
        let data =
            SnapshotData::read(&snap, &region_state.region).expect("reading region data from the engine");
        Ok(Snapshot {
            metadata: SnapshotMetadata {
                index,
                term,
                conf_state: ConfState::new(region_state.region.peers.iter().map(|p| p.id).collect()),
            },
            data: data.encode(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raftstore::meta::{Peer, RegionEpoch};
    use crate::storage::{MemoryEngine, WriteOptions};

    fn region() -> Region {
        Region {
            id: 1,
            start_key: Vec::new(),
            end_key: Vec::new(),
            epoch: RegionEpoch::INITIAL,
            peers: vec![Peer { id: 1, store_id: 1 }],
        }
    }

    fn write(engine: &MemoryEngine, batch: WriteBatch) {
        engine.write(&batch, WriteOptions::SYNC).unwrap();
    }

    /// A peer whose log holds (term = index) entries 3..=5, truncated at 3 (TinyKV's fixture).
    fn storage_3_to_5() -> (MemoryEngine, PeerStorage<MemoryEngine>) {
        let engine = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        PeerStorage::<MemoryEngine>::write_initial_states(&region(), &mut batch);
        write(&engine, batch);
        let mut storage = PeerStorage::open(engine.clone(), 1).unwrap();
        storage.apply_state.truncated = TruncatedState { index: 3, term: 3 };
        storage.raft_state.last_index = 3;
        let mut batch = WriteBatch::new();
        storage.append(&[Entry::new(4, 4), Entry::new(5, 5)], &mut batch);
        write(&engine, batch);
        (engine, storage)
    }

    fn terms(storage: &PeerStorage<MemoryEngine>, low: u64, high: u64) -> Vec<u64> {
        storage
            .entries(low, high, None)
            .unwrap()
            .iter()
            .map(|e| e.term)
            .collect()
    }

    #[test]
    fn a_bootstrapped_region_starts_after_the_initial_index() {
        let engine = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        PeerStorage::<MemoryEngine>::write_initial_states(&region(), &mut batch);
        write(&engine, batch);
        let storage = PeerStorage::open(engine, 1).unwrap();
        assert!(storage.is_initialized());
        assert_eq!(storage.first_index().unwrap(), RAFT_INIT_LOG_INDEX + 1);
        assert_eq!(storage.last_index().unwrap(), RAFT_INIT_LOG_INDEX);
        assert_eq!(storage.term(RAFT_INIT_LOG_INDEX).unwrap(), RAFT_INIT_LOG_TERM);
        let state = storage.initial_state().unwrap();
        assert_eq!(state.hard_state.commit, RAFT_INIT_LOG_INDEX);
        assert_eq!(state.conf_state.voters, vec![1]);
        assert!(matches!(
            PeerStorage::open(MemoryEngine::new(), 1),
            Err(PeerStorageError::RegionNotFound(1))
        ));
    }

    #[test]
    fn term_is_known_from_the_truncated_index_on() {
        let (_, storage) = storage_3_to_5();
        assert_eq!(storage.term(2), Err(RaftStorageError::Compacted));
        assert_eq!(storage.term(3), Ok(3));
        assert_eq!(storage.term(4), Ok(4));
        assert_eq!(storage.term(5), Ok(5));
        assert_eq!(storage.term(6), Err(RaftStorageError::Unavailable));
    }

    #[test]
    fn entries_are_half_open_and_compacted_below_the_first_index() {
        let (_, storage) = storage_3_to_5();
        assert_eq!(storage.entries(2, 6, None), Err(RaftStorageError::Compacted));
        assert_eq!(storage.entries(3, 4, None), Err(RaftStorageError::Compacted));
        assert_eq!(terms(&storage, 4, 5), vec![4]);
        assert_eq!(terms(&storage, 4, 6), vec![4, 5]);
        assert_eq!(storage.entries(4, 7, None), Err(RaftStorageError::Unavailable));
        assert_eq!(
            storage.entries(4, 6, Some(0)).unwrap().len(),
            1,
            "a size limit still yields one entry"
        );
    }

    #[test]
    fn append_skips_compacted_entries_overwrites_conflicts_and_drops_the_rest() {
        // (entries to append as (term, index), expected terms of the log from index 4 on)
        type Case<'a> = (&'a [(u64, u64)], &'a [u64]);
        let cases: &[Case] = &[
            (&[(3, 3), (4, 4), (5, 5)], &[4, 5]),
            (&[(3, 3), (6, 4), (6, 5)], &[6, 6]),
            (&[(3, 3), (4, 4), (5, 5), (5, 6)], &[4, 5, 5]),
            (&[(2, 2), (3, 3), (4, 4), (5, 5)], &[4, 5]),
            (&[(6, 4)], &[6]),
            (&[(6, 5)], &[4, 6]),
            (&[(5, 6)], &[4, 5, 5]),
        ];
        for (entries, expected) in cases {
            let (engine, mut storage) = storage_3_to_5();
            let entries: Vec<Entry> = entries
                .iter()
                .map(|&(term, index)| Entry::new(term, index))
                .collect();
            let mut batch = WriteBatch::new();
            storage.append(&entries, &mut batch);
            write(&engine, batch);
            let last = storage.last_index().unwrap();
            assert_eq!(
                terms(&storage, 4, last + 1),
                expected.to_vec(),
                "appending {entries:?}"
            );
            // Nothing is left past the new last index.
            let (start, end) = raft_log_range(1);
            let stored = engine
                .snapshot()
                .iter(Cf::Raft, IterOptions::range(start, end))
                .count() as u64;
            assert_eq!(stored, last - 3, "appending {entries:?}");
        }
    }

    #[test]
    fn compaction_and_restart() {
        let (engine, mut storage) = storage_3_to_5();
        let mut batch = WriteBatch::new();
        storage.set_applied(5, &mut batch);
        storage.set_hard_state(
            HardState {
                term: 5,
                vote: 1,
                commit: 5,
            },
            &mut batch,
        );
        storage.compact_to(TruncatedState { index: 4, term: 4 }, &mut batch);
        write(&engine, batch);
        assert_eq!(storage.first_index().unwrap(), 5);
        assert_eq!(storage.term(4), Ok(4));
        assert_eq!(storage.entries(4, 6, None), Err(RaftStorageError::Compacted));
        let reopened = PeerStorage::open(engine, 1).unwrap();
        assert_eq!(reopened.apply_state(), storage.apply_state());
        assert_eq!(reopened.raft_state(), storage.raft_state());
        assert_eq!(terms(&reopened, 5, 6), vec![5]);
    }

    #[test]
    fn clear_meta_leaves_nothing_behind() {
        let (engine, mut storage) = storage_3_to_5();
        let mut batch = WriteBatch::new();
        storage.clear_meta(&mut batch);
        write(&engine, batch);
        assert_eq!(
            engine.snapshot().iter(Cf::Raft, IterOptions::default()).count(),
            0
        );
        assert!(
            !PeerStorage::<MemoryEngine>::uninitialized(engine, 9)
                .unwrap()
                .is_initialized()
        );
    }
}
