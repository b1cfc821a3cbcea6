//! The Raft log: what storage has persisted, plus the unstable tail not yet persisted.
//!
//! ```text
//!  snapshot/first_index ..... applied ... applying ..... committed ..... stabled ..... last_index
//!  |<------------------- storage ------------------------------------------>|<- unstable ->|
//! ```
//!
//! Invariants, asserted where they change: `applied <= applying <= committed <= last_index`;
//! `committed` never goes back; entries are contiguous; an entry's term never decreases along
//! the log. `applying` is what the application was handed to apply (an apply worker may still
//! be at it); `applied` is what it has finished.

use super::message::{Entry, Snapshot};
use super::storage::{Storage, StorageError, limit_size};

/// Entries (and possibly a snapshot) accepted but not yet persisted.
#[derive(Debug, Default)]
struct Unstable {
    /// A snapshot to persist, received from the leader.
    snapshot: Option<Snapshot>,
    /// Entries from index `offset` on.
    entries: Vec<Entry>,
    offset: u64,
}

pub struct RaftLog<S: Storage> {
    pub store: S,
    unstable: Unstable,
    /// The highest index known committed on a quorum.
    pub committed: u64,
    /// The highest index the application has applied. Invariant: `applied <= applying`.
    pub applied: u64,
    /// The highest index handed to the application for applying. Invariant:
    /// `applying <= committed`.
    pub applying: u64,
}

impl<S: Storage> RaftLog<S> {
    pub fn new(store: S) -> Self {
        let first = store.first_index().expect("storage answers first_index");
        let last = store.last_index().expect("storage answers last_index");
        RaftLog {
            store,
            unstable: Unstable {
                snapshot: None,
                entries: Vec::new(),
                offset: last + 1,
            },
            // Everything up to the snapshot is committed and applied.
            committed: first - 1,
            applied: first - 1,
            applying: first - 1,
        }
    }

    pub fn first_index(&self) -> u64 {
        match &self.unstable.snapshot {
            Some(snapshot) => snapshot.metadata.index + 1,
            None => self.store.first_index().expect("storage answers first_index"),
        }
    }

    pub fn last_index(&self) -> u64 {
        if let Some(last) = self.unstable.entries.last() {
            return last.index;
        }
        if let Some(snapshot) = &self.unstable.snapshot {
            return snapshot.metadata.index;
        }
        self.store.last_index().expect("storage answers last_index")
    }

    /// The highest index persisted (everything after it is unstable).
    pub fn stabled(&self) -> u64 {
        self.unstable.offset - 1
    }

    pub fn term(&self, index: u64) -> Result<u64, StorageError> {
        // The valid range is [first_index - 1, last_index].
        let dummy = self.first_index() - 1;
        if index < dummy {
            return Err(StorageError::Compacted);
        }
        if index > self.last_index() {
            return Err(StorageError::Unavailable);
        }
        if let Some(term) = self.unstable_term(index) {
            return Ok(term);
        }
        self.store.term(index)
    }

    fn unstable_term(&self, index: u64) -> Option<u64> {
        if index < self.unstable.offset {
            let snapshot = self.unstable.snapshot.as_ref()?;
            return (snapshot.metadata.index == index).then_some(snapshot.metadata.term);
        }
        self.unstable
            .entries
            .get((index - self.unstable.offset) as usize)
            .map(|e| e.term)
    }

    pub fn last_term(&self) -> u64 {
        self.term(self.last_index())
            .expect("the last index always has a term")
    }

    /// The term of `index`, or 0 if it is compacted or missing.
    pub fn term_or_zero(&self, index: u64) -> u64 {
        self.term(index).unwrap_or(0)
    }

    pub fn match_term(&self, index: u64, term: u64) -> bool {
        self.term(index).is_ok_and(|t| t == term)
    }

    /// Whether a log ending at (`last_index`, `term`) is at least as up to date as ours
    /// (Raft §5.4.1: later term wins, then longer log).
    pub fn is_up_to_date(&self, last_index: u64, term: u64) -> bool {
        term > self.last_term() || (term == self.last_term() && last_index >= self.last_index())
    }

    /// Entries `[low, high)`, at most `max_size` bytes but at least one.
    pub fn slice(&self, low: u64, high: u64, max_size: Option<u64>) -> Result<Vec<Entry>, StorageError> {
        if low >= high {
            return Ok(Vec::new());
        }
        if low < self.first_index() {
            return Err(StorageError::Compacted);
        }
        assert!(
            high <= self.last_index() + 1,
            "slice [{low}, {high}) past the last index"
        );
        let mut entries = Vec::new();
        if low < self.unstable.offset {
            let stored = self
                .store
                .entries(low, high.min(self.unstable.offset), max_size)?;
            // A short answer from storage means the size limit was reached.
            if (stored.len() as u64) < high.min(self.unstable.offset) - low {
                return Ok(stored);
            }
            entries = stored;
        }
        if high > self.unstable.offset {
            let from = (low.max(self.unstable.offset) - self.unstable.offset) as usize;
            let to = (high - self.unstable.offset) as usize;
            entries.extend_from_slice(&self.unstable.entries[from..to]);
        }
        Ok(limit_size(&entries, max_size))
    }

    /// Entries from `low` to the end, at most `max_size` bytes.
    pub fn entries(&self, low: u64, max_size: Option<u64>) -> Result<Vec<Entry>, StorageError> {
        if low > self.last_index() {
            return Ok(Vec::new());
        }
        self.slice(low, self.last_index() + 1, max_size)
    }

    /// Every entry still in the log (tests).
    pub fn all_entries(&self) -> Vec<Entry> {
        self.entries(self.first_index(), None).unwrap_or_default()
    }

    /// Appends entries after our log's end or overwriting a suffix of it; returns the new last
    /// index. Entries at or below `committed` must never be replaced.
    pub fn append(&mut self, entries: &[Entry]) -> u64 {
        let Some(first) = entries.first() else {
            return self.last_index();
        };
        assert!(
            first.index > self.committed,
            "appending at {} would overwrite committed entries (committed {})",
            first.index,
            self.committed
        );
        let after = first.index;
        let unstable = &mut self.unstable;
        if after == unstable.offset + unstable.entries.len() as u64 {
            unstable.entries.extend_from_slice(entries);
        } else if after <= unstable.offset {
            // Replacing persisted entries too: the unstable tail starts over here.
            unstable.offset = after;
            unstable.entries = entries.to_vec();
        } else {
            unstable.entries.truncate((after - unstable.offset) as usize);
            unstable.entries.extend_from_slice(entries);
        }
        self.last_index()
    }

    /// The follower's side of an append: if our entry at `index` has `log_term`, reconcile the
    /// entries after it with `entries` (dropping a conflicting suffix), advance the commit to
    /// at most the last new entry, and return the last new index. `None` if the log does not
    /// match at `index`.
    pub fn maybe_append(
        &mut self,
        index: u64,
        log_term: u64,
        committed: u64,
        entries: &[Entry],
    ) -> Option<u64> {
        if !self.match_term(index, log_term) {
            return None;
        }
        let last_new = index + entries.len() as u64;
        let conflict = self.find_conflict(entries);
        if conflict != 0 {
            assert!(
                conflict > self.committed,
                "entry {conflict} conflicts with a committed one"
            );
            let start = (conflict - (index + 1)) as usize;
            self.append(&entries[start..]);
        }
        self.commit_to(committed.min(last_new));
        Some(last_new)
    }

    /// The index of the first entry in `entries` whose term differs from ours, or the first one
    /// we do not have; 0 if we have them all.
    fn find_conflict(&self, entries: &[Entry]) -> u64 {
        entries
            .iter()
            .find(|e| !self.match_term(e.index, e.term))
            .map_or(0, |e| e.index)
    }

    /// For a rejected append at `index`: the largest index at or below it whose term is at
    /// most `term`, and that term. Lets the leader skip a whole term of mismatches at once.
    pub fn find_conflict_by_term(&self, index: u64, term: u64) -> (u64, u64) {
        let mut index = index.min(self.last_index());
        loop {
            match self.term(index) {
                Ok(t) if t > term => index -= 1,
                Ok(t) => return (index, t),
                Err(_) => return (index, 0),
            }
        }
    }

    pub fn commit_to(&mut self, committed: u64) {
        if committed > self.committed {
            assert!(
                committed <= self.last_index(),
                "commit {committed} is past the last index {}",
                self.last_index()
            );
            self.committed = committed;
        }
    }

    /// Commits up to `max_index` if that entry is of `term` (Raft §5.4.2: a leader counts
    /// replicas only for entries of its own term). Returns whether the commit moved.
    pub fn maybe_commit(&mut self, max_index: u64, term: u64) -> bool {
        if max_index > self.committed && self.term_or_zero(max_index) == term {
            self.commit_to(max_index);
            return true;
        }
        false
    }

    pub fn applied_to(&mut self, applied: u64) {
        if applied == 0 {
            return;
        }
        assert!(
            applied >= self.applied && applied <= self.committed,
            "applied {applied} must be in [{}, {}]",
            self.applied,
            self.committed
        );
        self.applied = applied;
        self.applying = self.applying.max(applied);
    }

    /// Records that the entries through `applying` were handed to the application, which
    /// reports them applied later ([`RaftLog::applied_to`]).
    pub fn applying_to(&mut self, applying: u64) {
        assert!(
            applying <= self.committed,
            "applying {applying} is past commit {}",
            self.committed
        );
        self.applying = self.applying.max(applying);
    }

    /// Committed entries not yet handed out for applying, at most `max_size` bytes.
    pub fn next_entries(&self, max_size: Option<u64>) -> Vec<Entry> {
        let low = self.applying.max(self.first_index() - 1) + 1;
        if self.committed + 1 > low {
            self.slice(low, self.committed + 1, max_size)
                .expect("committed entries after the snapshot are in the log")
        } else {
            Vec::new()
        }
    }

    pub fn has_next_entries(&self) -> bool {
        self.committed + 1 > self.applying.max(self.first_index() - 1) + 1
    }

    pub fn unstable_entries(&self) -> &[Entry] {
        &self.unstable.entries
    }

    pub fn unstable_snapshot(&self) -> Option<&Snapshot> {
        self.unstable.snapshot.as_ref()
    }

    /// The snapshot to send a lagging follower: the pending one, or storage's latest.
    pub fn snapshot(&self, request_index: u64) -> Result<Snapshot, StorageError> {
        if let Some(snapshot) = &self.unstable.snapshot {
            return Ok(snapshot.clone());
        }
        self.store.snapshot(request_index)
    }

    /// Entries up to (`index`, `term`) are persisted.
    pub fn stable_to(&mut self, index: u64, term: u64) {
        let Some(t) = self.unstable_term(index) else {
            return;
        };
        // Only if the entry was not replaced meanwhile.
        if t == term && index >= self.unstable.offset {
            let drop = (index + 1 - self.unstable.offset) as usize;
            self.unstable.entries.drain(..drop);
            self.unstable.offset = index + 1;
        }
    }

    /// The pending snapshot at `index` is persisted.
    pub fn stable_snap_to(&mut self, index: u64) {
        if self
            .unstable
            .snapshot
            .as_ref()
            .is_some_and(|s| s.metadata.index == index)
        {
            self.unstable.snapshot = None;
        }
    }

    /// Replaces the log with a snapshot from the leader.
    pub fn restore(&mut self, snapshot: Snapshot) {
        let index = snapshot.metadata.index;
        assert!(
            index >= self.committed,
            "restoring to {index}, below commit {}",
            self.committed
        );
        self.committed = index;
        self.unstable.offset = index + 1;
        self.unstable.entries.clear();
        self.unstable.snapshot = Some(snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::storage::MemStorage;

    fn log_with(terms: &[u64]) -> RaftLog<MemStorage> {
        let storage = MemStorage::new();
        let entries: Vec<Entry> = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| Entry::new(t, i as u64 + 1))
            .collect();
        storage.append(&entries);
        RaftLog::new(storage)
    }

    fn ents(pairs: &[(u64, u64)]) -> Vec<Entry> {
        pairs
            .iter()
            .map(|&(term, index)| Entry::new(term, index))
            .collect()
    }

    #[test]
    fn maybe_append_reconciles_a_conflicting_suffix() {
        let mut log = log_with(&[1, 2, 3]);
        log.commit_to(1);
        // Mismatch at the previous entry: nothing happens.
        assert_eq!(log.maybe_append(3, 2, 3, &ents(&[(4, 4)])), None);
        // Matching, with a conflict at index 3.
        assert_eq!(log.maybe_append(2, 2, 3, &ents(&[(4, 3), (4, 4)])), Some(4));
        let terms: Vec<u64> = log.all_entries().iter().map(|e| e.term).collect();
        assert_eq!(terms, vec![1, 2, 4, 4]);
        assert_eq!(log.committed, 3, "commit is capped at the last new entry");
        // Already-present entries change nothing; commit does not go back.
        assert_eq!(log.maybe_append(1, 1, 2, &ents(&[(2, 2)])), Some(2));
        assert_eq!(log.last_index(), 4);
        assert_eq!(log.committed, 3);
    }

    #[test]
    fn up_to_date_compares_term_then_length() {
        let log = log_with(&[1, 2, 2]);
        assert!(log.is_up_to_date(1, 3));
        assert!(log.is_up_to_date(3, 2));
        assert!(log.is_up_to_date(4, 2));
        assert!(!log.is_up_to_date(2, 2));
        assert!(!log.is_up_to_date(9, 1));
    }

    #[test]
    fn conflict_by_term_skips_whole_terms() {
        let log = log_with(&[1, 1, 2, 2, 5, 5]);
        assert_eq!(log.find_conflict_by_term(6, 3), (4, 2));
        assert_eq!(log.find_conflict_by_term(6, 5), (6, 5));
        assert_eq!(log.find_conflict_by_term(10, 1), (2, 1));
        assert_eq!(log.find_conflict_by_term(6, 0), (0, 0));
    }

    #[test]
    fn commit_only_by_current_term() {
        let mut log = log_with(&[1, 2]);
        assert!(!log.maybe_commit(2, 1));
        assert!(log.maybe_commit(2, 2));
        assert_eq!(log.committed, 2);
        assert!(!log.maybe_commit(1, 1), "commit never goes back");
    }

    #[test]
    fn unstable_entries_stabilise_and_next_entries_follow_commit_and_apply() {
        let mut log = log_with(&[1]);
        log.append(&ents(&[(2, 2), (2, 3)]));
        assert_eq!(log.unstable_entries().len(), 2);
        assert_eq!(log.stabled(), 1);
        log.stable_to(2, 1); // wrong term: ignored
        assert_eq!(log.stabled(), 1);
        // The driver persists, then reports it.
        log.store.append(&ents(&[(2, 2)]));
        log.stable_to(2, 2);
        assert_eq!(log.stabled(), 2);
        log.commit_to(3);
        assert_eq!(log.next_entries(None).len(), 3);
        log.applied_to(2);
        assert_eq!(log.next_entries(None).len(), 1);
        assert!(log.has_next_entries());
        log.applied_to(3);
        assert!(!log.has_next_entries());
    }

    #[test]
    #[should_panic(expected = "overwrite committed")]
    fn overwriting_committed_entries_is_a_bug() {
        let mut log = log_with(&[1, 1]);
        log.commit_to(2);
        log.append(&ents(&[(2, 2)]));
    }

    #[test]
    fn restore_from_a_snapshot_resets_the_log() {
        let mut log = log_with(&[1, 1]);
        let mut snapshot = Snapshot::default();
        snapshot.metadata.index = 10;
        snapshot.metadata.term = 3;
        log.restore(snapshot);
        assert_eq!((log.first_index(), log.last_index(), log.committed), (11, 10, 10));
        assert_eq!(log.term(10), Ok(3));
        assert_eq!(log.term(9), Err(StorageError::Compacted));
        log.append(&ents(&[(3, 11)]));
        assert_eq!(log.last_index(), 11);
    }
}
