//! The MVCC layer over a storage snapshot: [`MvccTxn`] collects a command's writes, and
//! [`MvccReader`] answers questions about locks, versions and commit records.
//!
//! Layout (see `key.rs` and `records.rs` for the bytes):
//!
//! | column family | key | value |
//! |---|---|---|
//! | `lock` | `encode(key)` | [`Lock`] |
//! | `write` | `encode(key) ++ !commit_ts` (rollback: `!start_ts`) | [`Write`] |
//! | `default` | `encode(key) ++ !start_ts` | the value, when too big to be short |

use super::key::{Key, split_ts, split_ts_ref};
use super::records::{Lock, VALUE_HEAD_BYTES, Write, WriteKind};
use super::{MvccError, ScanLimits};
use crate::scheduler::tso::TimeStamp;
use std::cell::{RefCell, RefMut};

use crate::storage::{Cf, Cursor, IterOptions, Snapshot, WriteBatch};

/// Cursor steps a scan takes over a key's other versions before it seeks past them instead: a
/// step is a pointer move, a seek a search of every level of the memtables and files, and most
/// keys have one or a few versions (TiKV's scanner does the same).
const STEPS_BEFORE_SEEK: usize = 4;

/// The writes one command makes, applied later as one atomic batch.
#[derive(Debug, Default)]
pub struct MvccTxn {
    batch: WriteBatch,
}

impl MvccTxn {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put_lock(&mut self, key: &Key, lock: &Lock) {
        self.batch.put(Cf::Lock, key.as_encoded(), lock.to_bytes());
    }

    pub fn unlock_key(&mut self, key: &Key) {
        self.batch.delete(Cf::Lock, key.as_encoded());
    }

    pub fn put_value(&mut self, key: &Key, start_ts: TimeStamp, value: &[u8]) {
        self.batch.put(Cf::Default, key.append_ts(start_ts), value);
    }

    pub fn delete_value(&mut self, key: &Key, start_ts: TimeStamp) {
        self.batch.delete(Cf::Default, key.append_ts(start_ts));
    }

    pub fn put_write(&mut self, key: &Key, commit_ts: TimeStamp, write: &Write) {
        self.batch
            .put(Cf::Write, key.append_ts(commit_ts), write.to_bytes());
    }

    pub fn delete_write(&mut self, key: &Key, commit_ts: TimeStamp) {
        self.batch.delete(Cf::Write, key.append_ts(commit_ts));
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    pub fn into_batch(self) -> WriteBatch {
        self.batch
    }
}

/// A scan's result per user key: the value, or the error (a lock) that kept it from being read.
pub type ScanEntry = (Vec<u8>, Result<Vec<u8>, MvccError>);

/// What one scan of a snapshot read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScanOutput {
    pub entries: Vec<ScanEntry>,
    /// Stored keys looked at, returned or not.
    pub examined: usize,
    /// The (user) key the range's next page starts at; `None`: the range is exhausted.
    pub resume: Option<Vec<u8>>,
    /// Set by a region leader that served only part of the range: the (user) key its region
    /// ends at, where the next region's share starts. The caller continues from here, never
    /// from its own idea of the region's end: the region may have split since it looked.
    pub region_end: Option<Vec<u8>>,
}

/// What the write column family says about one transaction on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitRecord {
    Committed {
        commit_ts: TimeStamp,
        write: Write,
    },
    RolledBack,
    /// Neither committed nor rolled back (it may still hold a lock).
    None,
}

/// Reads MVCC data from a snapshot.
pub struct MvccReader<'a, S: Snapshot> {
    snapshot: &'a S,
    /// One cursor over the write column family, shared by every lookup of this reader:
    /// creating an engine iterator costs far more than a seek, and a command that prewrites or
    /// commits many keys looks up each of them. Created on first use.
    write_cursor: RefCell<Option<Box<dyn Cursor + Send + 'a>>>,
}

/// The write records of one key at or below a timestamp, newest first, read through the
/// reader's shared cursor (so only one may be alive at a time per reader).
pub struct WriteVersions<'r, 'a> {
    cursor: RefMut<'r, Option<Box<dyn Cursor + Send + 'a>>>,
    key: Key,
    /// Where to seek on the first call; afterwards the cursor steps.
    seek_to: Option<Vec<u8>>,
    done: bool,
}

impl Iterator for WriteVersions<'_, '_> {
    type Item = Result<(TimeStamp, Write), MvccError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let cursor = self.cursor.as_mut().expect("created by writes_at_or_below");
        let moved = match self.seek_to.take() {
            Some(target) => cursor.seek(&target),
            None => cursor.next(),
        };
        let item = (|| {
            if !moved.map_err(storage)? {
                return Ok(None);
            }
            let (key, commit_ts) = split_ts(cursor.key())?;
            if key != self.key {
                return Ok(None);
            }
            Ok(Some((commit_ts, Write::parse(cursor.value())?)))
        })();
        match item {
            Ok(Some(version)) => Some(Ok(version)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

fn storage(e: crate::storage::StorageError) -> MvccError {
    MvccError::Storage(e.into())
}

impl<'a, S: Snapshot> MvccReader<'a, S> {
    pub fn new(snapshot: &'a S) -> Self {
        MvccReader {
            snapshot,
            write_cursor: RefCell::new(None),
        }
    }

    pub fn load_lock(&self, key: &Key) -> Result<Option<Lock>, MvccError> {
        match self.snapshot.get(Cf::Lock, key.as_encoded()).map_err(storage)? {
            Some(bytes) => Lock::parse(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Every write record of `key` with `commit_ts <= ts`, newest first.
    ///
    /// # Panics
    ///
    /// If another `WriteVersions` of this reader is still alive.
    pub fn writes_at_or_below(&self, key: &Key, ts: TimeStamp) -> WriteVersions<'_, 'a> {
        let mut cursor = self.write_cursor.borrow_mut();
        if cursor.is_none() {
            let versions = IterOptions {
                versions_only: true,
                ..IterOptions::default()
            };
            *cursor = Some(self.snapshot.cursor(Cf::Write, versions));
        }
        WriteVersions {
            cursor,
            key: key.clone(),
            seek_to: Some(key.append_ts(ts)),
            done: false,
        }
    }

    /// The newest write record of `key` with `commit_ts <= ts`, of any kind.
    pub fn seek_write(&self, key: &Key, ts: TimeStamp) -> Result<Option<(TimeStamp, Write)>, MvccError> {
        self.writes_at_or_below(key, ts).next().transpose()
    }

    /// The newest write record of `key` that changed its value (a put or a delete).
    pub fn latest_change(&self, key: &Key) -> Result<Option<(TimeStamp, Write)>, MvccError> {
        for entry in self.writes_at_or_below(key, TimeStamp::MAX) {
            let (commit_ts, write) = entry?;
            if write.changes_value() {
                return Ok(Some((commit_ts, write)));
            }
        }
        Ok(None)
    }

    /// The value of `key` visible at `ts`: from the newest put or delete committed at or below
    /// `ts`. Locks are not consulted.
    pub fn get(&self, key: &Key, ts: TimeStamp) -> Result<Option<Vec<u8>>, MvccError> {
        for entry in self.writes_at_or_below(key, ts) {
            let (_, write) = entry?;
            match write.kind {
                WriteKind::Put => return self.load_value(key, write).map(Some),
                WriteKind::Delete => return Ok(None),
                WriteKind::Rollback | WriteKind::Lock => continue,
            }
        }
        Ok(None)
    }

    /// The value a put record refers to.
    pub fn load_value(&self, key: &Key, write: Write) -> Result<Vec<u8>, MvccError> {
        if let Some(value) = write.short_value {
            return Ok(value);
        }
        self.snapshot
            .get(Cf::Default, &key.append_ts(write.start_ts))
            .map_err(storage)?
            .ok_or_else(|| {
                MvccError::BadFormat(format!("the value of a put at {} is missing", write.start_ts))
            })
    }

    /// Whether the transaction that started at `start_ts` committed or rolled back on `key`.
    pub fn txn_commit_record(&self, key: &Key, start_ts: TimeStamp) -> Result<CommitRecord, MvccError> {
        for entry in self.writes_at_or_below(key, TimeStamp::MAX) {
            let (commit_ts, write) = entry?;
            // Commit records of this transaction are at or above its start_ts.
            if commit_ts < start_ts {
                break;
            }
            if write.start_ts == start_ts {
                return Ok(if write.kind == WriteKind::Rollback {
                    CommitRecord::RolledBack
                } else {
                    CommitRecord::Committed { commit_ts, write }
                });
            }
            // Another transaction's commit in the place of this one's rollback record.
            if commit_ts == start_ts && write.overlapped_rollback {
                return Ok(CommitRecord::RolledBack);
            }
        }
        Ok(CommitRecord::None)
    }

    /// Up to `limit` locks in `[start, end)` (user keys; `end = None` is unbounded) for which
    /// `filter` holds.
    pub fn scan_locks(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        filter: impl Fn(&Lock) -> bool,
        limit: usize,
    ) -> Result<Vec<(Key, Lock)>, MvccError> {
        let opts = IterOptions {
            lower: Some(Key::from_raw(start).as_encoded().to_vec()),
            upper: end.map(|end| Key::from_raw(end).as_encoded().to_vec()),
            ..Default::default()
        };
        let mut out = Vec::new();
        for entry in self.snapshot.iter(Cf::Lock, opts) {
            if out.len() >= limit {
                break;
            }
            let (encoded, bytes) = entry.map_err(storage)?;
            let lock = Lock::parse(&bytes)?;
            if filter(&lock) {
                out.push((Key::from_encoded(encoded), lock));
            }
        }
        Ok(out)
    }

    /// User keys in `[start, end)` with their values at `ts`, within `limits`. A key locked by
    /// a transaction that may commit at or below `ts` yields an error for that key instead of
    /// failing the scan. Deleted keys are skipped, but count as examined.
    pub fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        ts: TimeStamp,
        limits: ScanLimits,
    ) -> Result<ScanOutput, MvccError> {
        let lower = Key::from_raw(start).as_encoded().to_vec();
        let upper = end.map(|end| Key::from_raw(end).as_encoded().to_vec());
        let bounds = IterOptions {
            lower: Some(lower.clone()),
            upper,
            ..Default::default()
        };
        let mut locks = self.snapshot.cursor(Cf::Lock, bounds.clone());
        let mut writes = self.snapshot.cursor(Cf::Write, bounds);
        let mut locks_valid = locks.seek(&lower).map_err(storage)?;
        let mut writes_valid = writes.seek(&lower).map_err(storage)?;
        let mut out = ScanOutput::default();
        loop {
            let write_key = if writes_valid {
                Some(split_ts(writes.key())?.0)
            } else {
                None
            };
            let lock_key = locks_valid.then(|| Key::from_encoded(locks.key().to_vec()));
            let current = match (&lock_key, &write_key) {
                (None, None) => break,
                (Some(k), None) | (None, Some(k)) => k.clone(),
                (Some(l), Some(w)) => l.min(w).clone(),
            };
            if out.entries.len() >= limits.limit || out.examined >= limits.examine {
                out.resume = Some(current.to_raw()?);
                break;
            }
            out.examined += 1;
            let mut blocked = None;
            if lock_key.as_ref() == Some(&current) {
                let lock = Lock::parse(locks.value())?;
                if lock.blocks_read_at(ts) {
                    blocked = Some(MvccError::KeyIsLocked(lock.info(&current.to_raw()?)));
                }
                locks_valid = locks.next().map_err(storage)?;
            }
            if write_key.as_ref() == Some(&current) {
                // The cursor is at `current`'s newest version: versions above `ts` and the
                // ones left after the visible one are stepped over, and sought past only when
                // there are many (see `STEPS_BEFORE_SEEK`).
                if let Some(error) = blocked {
                    out.entries.push((current.to_raw()?, Err(error)));
                } else {
                    let mut steps = 0;
                    while writes_valid {
                        let (key, commit_ts) = split_ts_ref(writes.key())?;
                        if key != current.as_encoded() {
                            break;
                        }
                        if commit_ts > ts {
                            writes_valid = if steps < STEPS_BEFORE_SEEK {
                                steps += 1;
                                writes.next()
                            } else {
                                writes.seek(&current.append_ts(ts))
                            }
                            .map_err(storage)?;
                            continue;
                        }
                        let write = Write::parse(writes.value())?;
                        match write.kind {
                            WriteKind::Put => {
                                let value = self.load_value_head(&current, write, limits.value_head);
                                out.entries.push((current.to_raw()?, value));
                                break;
                            }
                            WriteKind::Delete => break,
                            WriteKind::Rollback | WriteKind::Lock => {
                                writes_valid = writes.next().map_err(storage)?
                            }
                        }
                    }
                }
                let mut steps = 0;
                while writes_valid && split_ts_ref(writes.key())?.0 == current.as_encoded() {
                    if steps == STEPS_BEFORE_SEEK {
                        writes_valid = writes.seek(&current.versions_end()).map_err(storage)?;
                        break;
                    }
                    steps += 1;
                    writes_valid = writes.next().map_err(storage)?;
                }
            } else if let Some(error) = blocked {
                out.entries.push((current.to_raw()?, Err(error)));
            }
        }
        Ok(out)
    }

    /// The first `head` bytes (`None`: all) of the value a put record refers to, read from
    /// the record alone when it keeps enough of the value.
    fn load_value_head(
        &self,
        key: &Key,
        mut write: Write,
        head: Option<usize>,
    ) -> Result<Vec<u8>, MvccError> {
        let Some(n) = head else {
            return self.load_value(key, write);
        };
        if let Some(mut value) = write.short_value.take() {
            value.truncate(n);
            return Ok(value);
        }
        if n <= VALUE_HEAD_BYTES
            && let Some(mut value_head) = write.value_head.take()
        {
            value_head.truncate(n);
            return Ok(value_head);
        }
        let mut value = self.load_value(key, write)?;
        value.truncate(n);
        Ok(value)
    }
}
