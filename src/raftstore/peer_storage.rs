//! `PeerStorage`: one region peer's raft log and states on the store's engine, read by the raft
//! core through [`raft::Storage`](crate::raft::Storage), and the encoders the apply side uses
//! for the states it owns.
//!
//! The log lives in the raft column family (see `keys.rs`); the raft state (hard state, last
//! index and term) beside it. The raft side of a peer writes those two, through the store's
//! shared [`WriteBatch`] of each round. The apply state (applied index, truncated state) and
//! the region state belong to the apply side (`apply.rs`), written in the same batch as the
//! data they describe; the raft side keeps copies, updated from the apply results. Reads of
//! the log go to an in-memory cache of recent entries first and to the engine otherwise, so
//! replicating what was just appended never touches RocksDB.
//!
//! A region bootstrapped on this store starts with its log truncated at
//! [`RAFT_INIT_LOG_INDEX`] (term [`RAFT_INIT_LOG_TERM`]), as TinyKV's do: a peer that joins
//! later with an empty log can only be caught up by a snapshot, which carries the membership
//! (see the raft module docs).

use std::collections::VecDeque;

use super::cmd::RaftstoreError;
use super::keys::{
    apply_state_key, decode_entry, encode_entry, raft_log_key, raft_log_range, raft_state_key,
    region_state_key,
};
use super::meta::{
    DecodeError, PeerState, RaftApplyState, RaftLocalState, Region, RegionLocalState, TruncatedState,
};
use super::snap::{DATA_CFS, SnapshotData, region_bounds};
use crate::raft::message::{Snapshot, SnapshotMetadata};
use crate::raft::storage::{RaftState, Storage, StorageError as RaftStorageError};
use crate::raft::{ConfState, Entry, HardState};
use crate::storage::{Cf, Engine, IterOptions, Snapshot as _, StorageError, WriteBatch, WriteOptions};

/// The index a bootstrapped region's log starts after.
pub const RAFT_INIT_LOG_INDEX: u64 = 5;
/// The term of that index.
pub const RAFT_INIT_LOG_TERM: u64 = 5;

/// Most entries kept in a peer's entry cache.
const ENTRY_CACHE_MAX_ENTRIES: usize = 4_096;
/// Most bytes of entry data kept in a peer's entry cache.
const ENTRY_CACHE_MAX_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PeerStorageError {
    #[error(transparent)]
    Engine(#[from] StorageError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("region {0} has no state on this store")]
    RegionNotFound(u64),
}

/// Entries collected up to a size limit, as `raft::storage::limit_size` cuts them: while their total
/// size is within `max_size`, and always at least one.
struct SizeLimited {
    entries: Vec<Entry>,
    size: u64,
    max_size: Option<u64>,
}

impl SizeLimited {
    fn new(max_size: Option<u64>) -> Self {
        SizeLimited {
            entries: Vec::new(),
            size: 0,
            max_size,
        }
    }

    /// Takes `entry` if it fits; whether it did (once one does not, none after it may).
    fn push(&mut self, entry: Entry) -> bool {
        self.size += entry.size();
        if self.max_size.is_some_and(|max| self.size > max) && !self.entries.is_empty() {
            return false;
        }
        self.entries.push(entry);
        true
    }
}

/// The most recent entries of a peer's log, contiguous, ending at the last persisted one.
#[derive(Default)]
struct EntryCache {
    entries: VecDeque<Entry>,
    bytes: u64,
}

impl EntryCache {
    /// Records entries just appended (they replace any cached entry from their first index on).
    fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        match self.entries.front() {
            Some(front)
                if first.index >= front.index && first.index <= front.index + self.entries.len() as u64 =>
            {
                let keep = (first.index - front.index) as usize;
                while self.entries.len() > keep {
                    let dropped = self.entries.pop_back().expect("non-empty");
                    self.bytes -= dropped.size();
                }
            }
            _ => self.clear(),
        }
        for entry in entries {
            self.bytes += entry.size();
            self.entries.push_back(entry.clone());
        }
        while self.entries.len() > ENTRY_CACHE_MAX_ENTRIES || self.bytes > ENTRY_CACHE_MAX_BYTES {
            let dropped = self.entries.pop_front().expect("non-empty");
            self.bytes -= dropped.size();
        }
    }

    /// Forgets entries through `index` (compacted).
    fn compact_to(&mut self, index: u64) {
        while self.entries.front().is_some_and(|e| e.index <= index) {
            let dropped = self.entries.pop_front().expect("non-empty");
            self.bytes -= dropped.size();
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// `[low, high)`, cut to `max_size` as `raft::storage::limit_size` would, if the cache holds all of it.
    fn slice(&self, low: u64, high: u64, max_size: Option<u64>) -> Option<Vec<Entry>> {
        let front = self.entries.front()?.index;
        if low < front || high > front + self.entries.len() as u64 {
            return None;
        }
        let mut taken = SizeLimited::new(max_size);
        for entry in self
            .entries
            .range((low - front) as usize..(high - front) as usize)
        {
            if !taken.push(entry.clone()) {
                break;
            }
        }
        Some(taken.entries)
    }
}

/// Asks the store's region worker to build a snapshot of a region.
pub type SnapshotGenerator = std::sync::Arc<dyn Fn(u64) + Send + Sync>;

/// Where a snapshot built off the raft thread stands.
#[derive(Default)]
enum GeneratedSnapshot {
    #[default]
    Idle,
    Generating,
    Ready(Snapshot),
}

pub struct PeerStorage<E: Engine> {
    engine: E,
    /// Builds snapshots off the raft thread; `None` builds them inline (tests, tools).
    snapshot_generator: Option<SnapshotGenerator>,
    generated: std::cell::RefCell<GeneratedSnapshot>,
    /// The region as of the last membership change the raft side heard of.
    region: Region,
    raft_state: RaftLocalState,
    /// The raft side's copy of the apply state: the applied index the apply side last
    /// reported, and the truncated state whose log entries this side has deleted.
    apply_state: RaftApplyState,
    cache: EntryCache,
}

/// Writes the initial states of a region created on a store (by bootstrap or split).
pub fn write_initial_states(region: &Region, batch: &mut WriteBatch) {
    PeerStorage::<crate::storage::MemoryEngine>::write_initial_states(region, batch);
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
        batch.put(Cf::Raft, raft_state_key(region.id), raft_state.encode());
        write_apply_state(region.id, &initial_apply_state(), batch);
        write_region_state(region, batch);
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
        let mut storage = PeerStorage {
            region: RegionLocalState::decode(&region_state)?.region,
            raft_state: RaftLocalState::decode(&raft_state)?,
            apply_state: RaftApplyState::decode(&apply_state)?,
            engine,
            snapshot_generator: None,
            generated: Default::default(),
            cache: EntryCache::default(),
        };
        // A split writes the new region's initial states from the apply thread while the
        // raft thread may still run an uninitialized peer of that region (created by a message
        // from the new region's leader), whose next round writes its raft state with an empty
        // log over the split's. Its term and vote are the newest and stay; the log is the
        // split's: everything through the truncation point, which is applied.
        let truncated = storage.apply_state.truncated;
        if storage.raft_state.last_index < truncated.index {
            tracing::info!(
                region = region_id,
                last_index = storage.raft_state.last_index,
                truncated = truncated.index,
                "raft state written by an uninitialized peer of a split region; its log starts at the split"
            );
            storage.raft_state.last_index = truncated.index;
            storage.raft_state.last_term = truncated.term;
            storage.raft_state.hard_state.commit = storage.raft_state.hard_state.commit.max(truncated.index);
        }
        // Entries the log held durably go to the apply side before the round that records
        // their commit index is written (see `RegionPeer::collect_ready`); a crash between
        // leaves an applied index past the commit index. What was applied was committed.
        let applied = storage.apply_state.applied_index;
        if applied > storage.raft_state.hard_state.commit && applied <= storage.raft_state.last_index {
            storage.raft_state.hard_state.commit = applied;
        }
        storage.check_invariants();
        Ok(storage)
    }

    /// The peer of a region this store learned of from a raft message: no range and no log.
    /// The leader brings it up to date with a snapshot. A hard state it persisted before a
    /// restart (its vote) is loaded, so it never votes twice in a term.
    pub fn uninitialized(engine: E, region_id: u64) -> Result<Self, PeerStorageError> {
        let mut raft_state = RaftLocalState::default();
        if let Some(bytes) = engine.get(Cf::Raft, &raft_state_key(region_id))? {
            // Only the term and the vote of an earlier life of this region here must be kept
            // (never vote twice in a term). Its commit index pointed into a log this peer no
            // longer has (say, a split's initial state whose unsynced region state a crash
            // lost); the leader tells the new peer its commit index again.
            let earlier = RaftLocalState::decode(&bytes)?.hard_state;
            raft_state.hard_state = HardState { commit: 0, ..earlier };
        }
        Ok(PeerStorage {
            engine,
            region: Region {
                id: region_id,
                ..Region::default()
            },
            raft_state,
            apply_state: RaftApplyState::default(),
            snapshot_generator: None,
            generated: Default::default(),
            cache: EntryCache::default(),
        })
    }

    /// Builds snapshots through `generator` from now on (see `Storage::snapshot`).
    pub fn set_snapshot_generator(&mut self, generator: SnapshotGenerator) {
        self.snapshot_generator = Some(generator);
    }

    /// A snapshot the region worker built, for the next time the raft core asks (`None`: it
    /// could not, and the next ask starts over).
    pub fn set_generated_snapshot(&mut self, snapshot: Option<Snapshot>) {
        *self.generated.borrow_mut() = match snapshot {
            Some(snapshot) => GeneratedSnapshot::Ready(snapshot),
            None => GeneratedSnapshot::Idle,
        };
    }

    /// Adopts a new region layout the apply side wrote (a membership change was applied).
    pub fn set_region(&mut self, region: Region) {
        self.region = region;
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
        let skip = entries.iter().take_while(|e| e.index < first_keep).count();
        let entries = &entries[skip..];
        let Some(last) = entries.last() else { return };
        for entry in entries {
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
        self.cache.append(entries);
        self.raft_state.last_index = new_last;
        self.raft_state.last_term = new_last_term;
        batch.put(Cf::Raft, raft_state_key(self.region.id), self.raft_state.encode());
    }

    pub fn set_hard_state(&mut self, hard_state: HardState, batch: &mut WriteBatch) {
        self.raft_state.hard_state = hard_state;
        batch.put(Cf::Raft, raft_state_key(self.region.id), self.raft_state.encode());
    }

    /// Records the applied index the apply side reported.
    pub fn set_applied(&mut self, index: u64) {
        self.apply_state.applied_index = self.apply_state.applied_index.max(index);
    }

    /// Follows a log compaction the apply side applied: the entries through `truncated` are
    /// deleted (in `batch`) and forgotten.
    pub fn compact_to(&mut self, truncated: TruncatedState, batch: &mut WriteBatch) {
        let old = self.apply_state.truncated.index;
        if truncated.index <= old {
            return;
        }
        batch.delete_range(
            Cf::Raft,
            raft_log_key(self.region.id, old + 1),
            raft_log_key(self.region.id, truncated.index + 1),
        );
        self.apply_state.truncated = truncated;
        self.cache.compact_to(truncated.index);
    }

    /// The raft state after installing `snapshot` and appending `entries` after it, with
    /// `hard_state` (the snapshot's ready's) if it changed.
    pub fn raft_state_after_snapshot(
        &self,
        snapshot: &Snapshot,
        hard_state: Option<HardState>,
        entries: &[Entry],
    ) -> RaftLocalState {
        let mut state = self.raft_state;
        if let Some(hard_state) = hard_state {
            state.hard_state = hard_state;
        }
        state.hard_state.commit = state.hard_state.commit.max(snapshot.metadata.index);
        match entries.last() {
            Some(last) => {
                state.last_index = last.index;
                state.last_term = last.term;
            }
            None => {
                state.last_index = snapshot.metadata.index;
                state.last_term = snapshot.metadata.term;
            }
        }
        state
    }

    /// Adopts what the apply side wrote for a snapshot (see [`write_snapshot`]).
    pub fn on_snapshot_applied(
        &mut self,
        region: Region,
        apply_state: RaftApplyState,
        raft_state: RaftLocalState,
        entries: &[Entry],
    ) {
        self.region = region;
        self.apply_state = apply_state;
        self.raft_state = raft_state;
        self.cache.clear();
        self.cache.append(entries);
    }

    fn truncated(&self) -> TruncatedState {
        self.apply_state.truncated
    }
}

/// The apply state of a region created on this store (by bootstrap or split).
pub fn initial_apply_state() -> RaftApplyState {
    RaftApplyState {
        applied_index: RAFT_INIT_LOG_INDEX,
        truncated: TruncatedState {
            index: RAFT_INIT_LOG_INDEX,
            term: RAFT_INIT_LOG_TERM,
        },
    }
}

/// Writes, in `batch`, the initial states of `region`, just split off on this store, unless
/// the store already holds that region's data (it got a snapshot of it from the new region's
/// leader first): returns whether it wrote them. A vote the store's uninitialized peer of the
/// region may have cast is kept, so it never votes twice in a term.
pub fn write_split_region(
    engine: &impl Engine,
    region: &Region,
    batch: &mut WriteBatch,
) -> Result<bool, RaftstoreError> {
    if let Some(bytes) = engine.get(Cf::Raft, &region_state_key(region.id))? {
        let existing = RegionLocalState::decode(&bytes).map_err(RaftstoreError::Corrupt)?;
        if existing.state != PeerState::Tombstone && !existing.region.peers.is_empty() {
            return Ok(false);
        }
    }
    write_initial_states(region, batch);
    if let Some(bytes) = engine.get(Cf::Raft, &raft_state_key(region.id))? {
        let voted = RaftLocalState::decode(&bytes)
            .map_err(RaftstoreError::Corrupt)?
            .hard_state;
        if voted.term > RAFT_INIT_LOG_TERM {
            let state = RaftLocalState {
                hard_state: HardState {
                    term: voted.term,
                    vote: voted.vote,
                    commit: RAFT_INIT_LOG_INDEX,
                },
                last_index: RAFT_INIT_LOG_INDEX,
                last_term: RAFT_INIT_LOG_TERM,
            };
            batch.put(Cf::Raft, raft_state_key(region.id), state.encode());
        }
    }
    Ok(true)
}

/// Writes a region's apply state into `batch`.
pub fn write_apply_state(region_id: u64, state: &RaftApplyState, batch: &mut WriteBatch) {
    batch.put(Cf::Raft, apply_state_key(region_id), state.encode());
}

/// Writes a live region's layout into `batch`.
pub fn write_region_state(region: &Region, batch: &mut WriteBatch) {
    let state = RegionLocalState {
        state: PeerState::Normal,
        region: region.clone(),
    };
    batch.put(Cf::Raft, region_state_key(region.id), state.encode());
}

/// Deletes a removed peer, in `batch`: its log and states, and (if it had any) the data of its
/// range; a tombstone with the region as of the removal stays, so stale messages do not bring
/// the peer back.
pub fn write_destroy(
    engine: &impl Engine,
    region: &Region,
    initialized: bool,
    batch: &mut WriteBatch,
) -> Result<(), StorageError> {
    if initialized {
        delete_region_data(engine, region, batch)?;
    }
    let (start, end) = raft_log_range(region.id);
    batch.delete_range(Cf::Raft, start, end);
    batch.delete(Cf::Raft, raft_state_key(region.id));
    batch.delete(Cf::Raft, apply_state_key(region.id));
    let tombstone = RegionLocalState {
        state: PeerState::Tombstone,
        region: region.clone(),
    };
    batch.put(Cf::Raft, region_state_key(region.id), tombstone.encode());
    Ok(())
}

/// Deletes, in `batch`, the data-CF keys of `region`'s range as `engine` holds them now
/// (key by key: a range delete has no upper bound to use for the last region).
pub fn delete_region_data(
    engine: &impl Engine,
    region: &Region,
    batch: &mut WriteBatch,
) -> Result<(), StorageError> {
    let snapshot = engine.snapshot();
    for cf in DATA_CFS {
        for item in snapshot.iter(cf, region_bounds(region)) {
            let (key, _) = item?;
            batch.delete(cf, key);
        }
    }
    Ok(())
}

/// Replaces a peer's data and log with `snapshot` (TinyKV's `ApplySnapshot`) in one synced
/// write: the data of the old range (`old_region`, if the peer had one) and of the new one is
/// cleared and the snapshot's written, the log is replaced by `entries`, and the raft, apply
/// and region states move to the snapshot. Returns the new region and apply state.
pub fn write_snapshot(
    engine: &impl Engine,
    region_id: u64,
    old_region: Option<&Region>,
    snapshot: &Snapshot,
    raft_state: RaftLocalState,
    entries: &[Entry],
) -> Result<(Region, RaftApplyState), RaftstoreError> {
    let data = SnapshotData::decode(&snapshot.data).map_err(|e| RaftstoreError::Snapshot(e.to_string()))?;
    if data.region.id != region_id {
        return Err(RaftstoreError::Snapshot(format!(
            "a snapshot of region {} sent to region {region_id}",
            data.region.id
        )));
    }
    let (index, term) = (snapshot.metadata.index, snapshot.metadata.term);
    let mut batch = WriteBatch::new();
    if let Some(old) = old_region {
        delete_region_data(engine, old, &mut batch)?;
    }
    delete_region_data(engine, &data.region, &mut batch)?;
    let (start, end) = raft_log_range(region_id);
    batch.delete_range(Cf::Raft, start, end);
    for (cf, key, value) in data.pairs {
        batch.put(cf, key, value);
    }
    for entry in entries {
        batch.put(
            Cf::Raft,
            raft_log_key(region_id, entry.index),
            encode_entry(entry),
        );
    }
    let apply_state = RaftApplyState {
        applied_index: index,
        truncated: TruncatedState { index, term },
    };
    batch.put(Cf::Raft, raft_state_key(region_id), raft_state.encode());
    write_apply_state(region_id, &apply_state, &mut batch);
    write_region_state(&data.region, &mut batch);
    engine.write(&batch, WriteOptions::SYNC)?;
    Ok((data.region, apply_state))
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
        if let Some(entries) = self.cache.slice(low, high, max_size) {
            return Ok(entries);
        }
        // Read only as far as the size limit: a follower far behind asks from deep in the log,
        // and reading all the rest for each message it is sent would cost the whole log each
        // time (seconds of the raft thread with a large log).
        let snapshot = self.engine.snapshot();
        let opts = IterOptions::range(
            raft_log_key(self.region.id, low),
            raft_log_key(self.region.id, high),
        );
        let mut taken = SizeLimited::new(max_size);
        for item in snapshot.iter(Cf::Raft, opts) {
            let (_, value) = item.expect("reading the raft log from the engine");
            let entry = decode_entry(&value).expect("a raft log entry written by this store");
            assert_eq!(
                entry.index,
                low + taken.entries.len() as u64,
                "a hole in the raft log"
            );
            if !taken.push(entry) {
                return Ok(taken.entries);
            }
        }
        assert_eq!(
            taken.entries.len() as u64,
            high - low,
            "raft log entries missing from the engine"
        );
        Ok(taken.entries)
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

    /// A snapshot of the region for a follower behind the compacted log. With a generator
    /// (the store's region worker), the first call asks it to build one and answers
    /// "temporarily unavailable"; once [`PeerStorage::set_generated_snapshot`] has it, the
    /// next call hands it out (if it is recent enough). Without one, it is built here.
    fn snapshot(&self, request_index: u64) -> Result<Snapshot, RaftStorageError> {
        if !self.is_initialized() {
            return Err(RaftStorageError::SnapshotTemporarilyUnavailable);
        }
        let Some(generator) = &self.snapshot_generator else {
            return generate_snapshot(&self.engine, self.region.id)
                .ok_or(RaftStorageError::SnapshotTemporarilyUnavailable);
        };
        let mut state = self.generated.borrow_mut();
        match std::mem::replace(&mut *state, GeneratedSnapshot::Idle) {
            GeneratedSnapshot::Ready(snapshot) if snapshot.metadata.index >= request_index => Ok(snapshot),
            GeneratedSnapshot::Generating => {
                *state = GeneratedSnapshot::Generating;
                Err(RaftStorageError::SnapshotTemporarilyUnavailable)
            }
            // Nothing yet, or one too old for this follower: build a new one.
            _ => {
                *state = GeneratedSnapshot::Generating;
                generator(self.region.id);
                Err(RaftStorageError::SnapshotTemporarilyUnavailable)
            }
        }
    }
}

/// Builds a snapshot of `region_id` as of its last applied entry: its data, read from one
/// engine snapshot together with the apply state it matches (they are written in the same
/// batches). `None` if the region is not (or no longer) a live region on this engine.
pub fn generate_snapshot(engine: &impl Engine, region_id: u64) -> Option<Snapshot> {
    let snap = engine.snapshot();
    let load = |key: Vec<u8>| match snap.get(Cf::Raft, &key) {
        Ok(value) => value,
        Err(e) => {
            tracing::error!(region = region_id, "reading a snapshot's state: {e}");
            None
        }
    };
    let apply_state = RaftApplyState::decode(&load(apply_state_key(region_id))?).ok()?;
    let region_state = RegionLocalState::decode(&load(region_state_key(region_id))?).ok()?;
    if region_state.state != PeerState::Normal {
        return None;
    }
    let index = apply_state.applied_index;
    let term = if index == apply_state.truncated.index {
        apply_state.truncated.term
    } else {
        decode_entry(&load(raft_log_key(region_id, index))?).ok()?.term
    };
    let data = match SnapshotData::read(&snap, &region_state.region) {
        Ok(data) => data,
        Err(e) => {
            tracing::error!(region = region_id, "reading a snapshot's data: {e}");
            return None;
        }
    };
    Some(Snapshot {
        metadata: SnapshotMetadata {
            index,
            term,
            conf_state: ConfState::new(region_state.region.peers.iter().map(|p| p.id).collect()),
        },
        data: data.encode(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::storage::limit_size;
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

    /// A freshly bootstrapped region's engine, and a peer storage opened on it.
    fn bootstrapped() -> (MemoryEngine, PeerStorage<MemoryEngine>) {
        let engine = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        PeerStorage::<MemoryEngine>::write_initial_states(&region(), &mut batch);
        write(&engine, batch);
        let storage = PeerStorage::open(engine.clone(), 1).unwrap();
        (engine, storage)
    }

    /// A peer whose log holds (term = index) entries 3..=5, truncated at 3 (TinyKV's fixture).
    fn storage_3_to_5() -> (MemoryEngine, PeerStorage<MemoryEngine>) {
        let (engine, mut storage) = bootstrapped();
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
        let (_, storage) = bootstrapped();
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
    fn an_applied_index_past_the_stored_commit_index_raises_it_on_open() {
        // Entries durable in the log are applied before the round that writes their commit
        // index; a crash can keep the apply state and lose that round's write.
        let (engine, mut storage) = bootstrapped();
        let mut batch = WriteBatch::new();
        let entries: Vec<Entry> = (6..=8).map(|index| Entry::new(6, index)).collect();
        storage.append(&entries, &mut batch);
        let apply_state = RaftApplyState {
            applied_index: 7,
            ..storage.apply_state()
        };
        write_apply_state(1, &apply_state, &mut batch);
        write(&engine, batch);
        let reopened = PeerStorage::open(engine.clone(), 1).unwrap();
        assert_eq!(reopened.raft_state().hard_state.commit, 7);
        assert_eq!(reopened.initial_state().unwrap().hard_state.commit, 7);
        // A commit index at or past the applied one stays.
        let mut batch = WriteBatch::new();
        let mut storage = reopened;
        let hard_state = HardState {
            commit: 8,
            ..storage.raft_state().hard_state
        };
        storage.set_hard_state(hard_state, &mut batch);
        write(&engine, batch);
        assert_eq!(
            PeerStorage::open(engine, 1)
                .unwrap()
                .raft_state()
                .hard_state
                .commit,
            8
        );
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
        storage.set_applied(5);
        storage.set_hard_state(
            HardState {
                term: 5,
                vote: 1,
                commit: 5,
            },
            &mut batch,
        );
        storage.compact_to(TruncatedState { index: 4, term: 4 }, &mut batch);
        // The apply side writes the apply state (here by hand).
        write_apply_state(1, &storage.apply_state(), &mut batch);
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
    fn destroy_leaves_only_a_tombstone() {
        let (engine, storage) = storage_3_to_5();
        let mut batch = WriteBatch::new();
        batch.put(Cf::Write, b"k".to_vec(), b"v".to_vec());
        write(&engine, batch);
        let mut batch = WriteBatch::new();
        write_destroy(&engine, storage.region(), true, &mut batch).unwrap();
        write(&engine, batch);
        let raft_keys: Vec<Vec<u8>> = engine
            .snapshot()
            .iter(Cf::Raft, IterOptions::default())
            .map(|item| item.unwrap().0)
            .collect();
        assert_eq!(raft_keys, vec![region_state_key(1)]);
        let state =
            RegionLocalState::decode(&engine.get(Cf::Raft, &region_state_key(1)).unwrap().unwrap()).unwrap();
        assert_eq!(state.state, PeerState::Tombstone);
        assert_eq!(engine.get(Cf::Write, b"k").unwrap(), None);
    }

    /// Entries are cut to the size limit the same way from the cache and from the engine, and
    /// the engine is read only as far as the limit: a follower far behind is sent its entries
    /// without the rest of the log being read for each message.
    #[test]
    fn entries_are_cut_to_the_size_limit_and_read_no_further() {
        let (engine, mut cached) = bootstrapped();
        let first = cached.last_index().unwrap() + 1;
        let log: Vec<Entry> = (0..20u64)
            .map(|i| {
                let mut entry = Entry::new(6, first + i);
                entry.data = vec![b'x'; (i as usize % 7) * 10];
                entry
            })
            .collect();
        let mut batch = WriteBatch::new();
        cached.append(&log, &mut batch);
        write(&engine, batch);
        let from_engine = PeerStorage::open(engine.clone(), 1).unwrap();
        let end = first + log.len() as u64;
        for max_size in [
            None,
            Some(0),
            Some(24),
            Some(60),
            Some(200),
            Some(500),
            Some(u64::MAX),
        ] {
            let expected = limit_size(&log, max_size);
            assert_eq!(
                cached.entries(first, end, max_size).unwrap(),
                expected,
                "{max_size:?}"
            );
            assert_eq!(
                from_engine.entries(first, end, max_size).unwrap(),
                expected,
                "{max_size:?}"
            );
        }
        // A hole past the limit is never reached (a read of the whole range would stop on it).
        let mut batch = WriteBatch::new();
        batch.delete(Cf::Raft, raft_log_key(1, end - 2));
        write(&engine, batch);
        let from_engine = PeerStorage::open(engine, 1).unwrap();
        assert_eq!(
            from_engine.entries(first, end, Some(100)).unwrap(),
            limit_size(&log, Some(100))
        );
    }

    #[test]
    fn recent_entries_are_read_from_the_cache() {
        let (engine, mut storage) = storage_3_to_5();
        // Take the entries out from under the storage: reads still find them in the cache.
        let (start, end) = raft_log_range(1);
        let mut batch = WriteBatch::new();
        batch.delete_range(Cf::Raft, start, end);
        write(&engine, batch);
        assert_eq!(terms(&storage, 4, 6), vec![4, 5]);
        // A conflicting append replaces the cached tail, and compaction drops the head.
        let mut batch = WriteBatch::new();
        storage.append(&[Entry::new(7, 5), Entry::new(7, 6)], &mut batch);
        write(&engine, batch);
        assert_eq!(terms(&storage, 4, 7), vec![4, 7, 7]);
        let mut batch = WriteBatch::new();
        storage.set_applied(5);
        storage.compact_to(TruncatedState { index: 4, term: 4 }, &mut batch);
        write(&engine, batch);
        assert_eq!(terms(&storage, 5, 7), vec![7, 7]);
        assert_eq!(storage.entries(4, 7, None), Err(RaftStorageError::Compacted));
    }
}
