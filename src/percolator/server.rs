//! The transaction server: runs Percolator commands for clients, at the region leaders of this
//! node's store.
//!
//! Each write command finds the region of its keys, asks the store whether this node leads it
//! and is ready to serve (an entry of its term applied, so its engine holds everything
//! committed before), takes the latches of its keys, reads the engine, computes its writes with
//! the pure functions of `commands.rs`, and proposes them to the region's raft group as one
//! command under the term it checked (a leader change in between makes the proposal fail
//! rather than commit what was computed from an old state). The latches are released only once
//! the writes are applied, so the next command on the same key sees them. Reads take no
//! latches: they wait for a ReadIndex confirmation (see `raftstore::peer`) and then read the
//! engine.
//!
//! **One-phase commit.** A transaction whose keys all live here may prewrite and commit in one
//! step: no locks are written, only commit records. The subtlety is the commit timestamp. It
//! must be fixed *after* the transaction is visible to readers as "in progress", above every
//! read that may already have missed it. So the server first puts in-memory locks on the keys
//! (readers at or above the transaction's start wait for them), then picks `commit_ts`, then
//! writes, then lifts the memory locks. A reader whose timestamp is below `commit_ts` never
//! needed to see the write; one at or above it found the memory lock and waited.
//!
//! The server picks `commit_ts` itself, as TiKV does for its one-phase and async commits,
//! rather than asking the oracle (a round trip to the scheduler's leader, often on another
//! node): one above `max_ts`, the highest timestamp any read on this node has used, and above
//! the transaction's start. Every read raises `max_ts` before it looks for memory locks, and a
//! commit reads `max_ts` after placing its own, so a read either waits for the commit or is
//! below its timestamp. Reads at an earlier leader of the region are not in `max_ts`: the first
//! one-phase commit of each term of this node's leadership takes its timestamp from the oracle
//! and raises `max_ts` to it, which is above every timestamp handed out before this node led
//! (`synced_terms`). Only timestamps the oracle issued reach `max_ts`, so a commit's is at
//! most one above the oracle's latest: any transaction that starts after the reply reads it.
//!
//! A computed `commit_ts` may equal another transaction's `start_ts` (the oracle may hand out
//! the very next timestamp). That commit is in the transaction's snapshot, so it is no write
//! conflict for it; and rolling the transaction back on the key keeps the commit record,
//! flagged, where its rollback record would have gone (see `actions::put_rollback`).
//!
//! [`KvApi`] is the interface clients call: implemented here in process, and by an RPC client
//! of a remote node later.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use parking_lot::RwLock;
use tokio::sync::Notify;

use super::actions::{PrewriteMode, TxnStatus};
use super::commands::{self, PrewriteRequest, ScanOutput};
use super::gc::GcFilter;
use super::key::Key;
use super::latches::Latches;
use super::mvcc::MvccTxn;
use super::records::LockInfo;
use super::{MvccError, ScanLimits};
use crate::raftstore::cmd::{CommandBody, CommandHeader, RaftCommand, RaftstoreError};
use crate::raftstore::driver::{RegionView, StoreHandle};
use crate::scheduler::tso::{TimeStamp, TsoClient};
use crate::storage::{self, Engine};

/// A scan that looked at this many stored keys yields its tokio worker before it returns: a
/// transaction making many long scans (over keys deleted lately, say) would otherwise hold
/// the worker, and every connection queued on it, for as long as all of them take.
const YIELD_AFTER_EXAMINED: usize = 1_024;

/// The Percolator operations a client needs. Keys and values are raw user bytes.
pub trait KvApi: Send + Sync + 'static {
    /// The value of `key` at `ts`, or `KeyIsLocked`.
    fn kv_get(
        &self,
        key: Vec<u8>,
        ts: TimeStamp,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, MvccError>> + Send;

    /// Keys of `[start, end)` at `ts` within `limits`, with per-key lock errors. A region's
    /// server scans only the region's share of the range: its `resume` is `None` once it
    /// reaches the region's end, and a client continues in the next region.
    fn kv_scan(
        &self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limits: ScanLimits,
        ts: TimeStamp,
    ) -> impl Future<Output = Result<ScanOutput, MvccError>> + Send;

    /// Prewrites every mutation, or (with `one_pc`) commits them at once and returns the
    /// commit timestamp. On failure, the error of every failing key; nothing is written.
    fn kv_prewrite(
        &self,
        request: PrewriteRequest,
        one_pc: bool,
    ) -> impl Future<Output = Result<Option<TimeStamp>, Vec<MvccError>>> + Send;

    fn kv_commit(
        &self,
        keys: Vec<Vec<u8>>,
        start_ts: TimeStamp,
        commit_ts: TimeStamp,
    ) -> impl Future<Output = Result<(), MvccError>> + Send;

    fn kv_batch_rollback(
        &self,
        keys: Vec<Vec<u8>>,
        start_ts: TimeStamp,
    ) -> impl Future<Output = Result<(), MvccError>> + Send;

    /// The fate of transaction `lock_ts` from its primary (see `actions::check_txn_status`
    /// for `rollback_if_not_exist`).
    fn kv_check_txn_status(
        &self,
        primary: Vec<u8>,
        lock_ts: TimeStamp,
        current_ts: TimeStamp,
        rollback_if_not_exist: bool,
    ) -> impl Future<Output = Result<TxnStatus, MvccError>> + Send;

    /// Commits (`Some(commit_ts)`) or rolls back the locks of transaction `start_ts` on `keys`
    /// (all its locks when `keys` is empty).
    fn kv_resolve_lock(
        &self,
        start_ts: TimeStamp,
        commit_ts: Option<TimeStamp>,
        keys: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<(), MvccError>> + Send;

    /// Up to `limit` locks of transactions that started at or below `max_ts`, from `start`.
    fn kv_scan_locks(
        &self,
        max_ts: TimeStamp,
        start: Vec<u8>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<LockInfo>, MvccError>> + Send;

    /// Garbage-collects the versions of up to `limit_keys` keys from `start` (an encoded key;
    /// `None` for the first) at `safe_point`; returns the write records removed and where to
    /// continue (`None` when done). See `gc.rs`.
    fn kv_gc(
        &self,
        safe_point: TimeStamp,
        start: Option<Vec<u8>>,
        limit_keys: usize,
    ) -> impl Future<Output = Result<(usize, Option<Vec<u8>>), MvccError>> + Send;
}

impl<K: KvApi> KvApi for Arc<K> {
    fn kv_get(
        &self,
        key: Vec<u8>,
        ts: TimeStamp,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, MvccError>> + Send {
        (**self).kv_get(key, ts)
    }
    fn kv_scan(
        &self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limits: ScanLimits,
        ts: TimeStamp,
    ) -> impl Future<Output = Result<ScanOutput, MvccError>> + Send {
        (**self).kv_scan(start, end, limits, ts)
    }
    fn kv_prewrite(
        &self,
        request: PrewriteRequest,
        one_pc: bool,
    ) -> impl Future<Output = Result<Option<TimeStamp>, Vec<MvccError>>> + Send {
        (**self).kv_prewrite(request, one_pc)
    }
    fn kv_commit(
        &self,
        keys: Vec<Vec<u8>>,
        start_ts: TimeStamp,
        commit_ts: TimeStamp,
    ) -> impl Future<Output = Result<(), MvccError>> + Send {
        (**self).kv_commit(keys, start_ts, commit_ts)
    }
    fn kv_batch_rollback(
        &self,
        keys: Vec<Vec<u8>>,
        start_ts: TimeStamp,
    ) -> impl Future<Output = Result<(), MvccError>> + Send {
        (**self).kv_batch_rollback(keys, start_ts)
    }
    fn kv_check_txn_status(
        &self,
        primary: Vec<u8>,
        lock_ts: TimeStamp,
        current_ts: TimeStamp,
        rollback_if_not_exist: bool,
    ) -> impl Future<Output = Result<TxnStatus, MvccError>> + Send {
        (**self).kv_check_txn_status(primary, lock_ts, current_ts, rollback_if_not_exist)
    }
    fn kv_resolve_lock(
        &self,
        start_ts: TimeStamp,
        commit_ts: Option<TimeStamp>,
        keys: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<(), MvccError>> + Send {
        (**self).kv_resolve_lock(start_ts, commit_ts, keys)
    }
    fn kv_scan_locks(
        &self,
        max_ts: TimeStamp,
        start: Vec<u8>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<LockInfo>, MvccError>> + Send {
        (**self).kv_scan_locks(max_ts, start, limit)
    }
    fn kv_gc(
        &self,
        safe_point: TimeStamp,
        start: Option<Vec<u8>>,
        limit_keys: usize,
    ) -> impl Future<Output = Result<(usize, Option<Vec<u8>>), MvccError>> + Send {
        (**self).kv_gc(safe_point, start, limit_keys)
    }
}

/// A one-phase commit's claim on a key: its start timestamp, and how to wake readers.
type MemoryLock = (TimeStamp, Arc<Notify>);

/// In-memory locks of one-phase commits in flight (see the module docs).
#[derive(Default)]
pub struct MemoryLocks {
    table: RwLock<BTreeMap<Vec<u8>, MemoryLock>>,
}

/// Lifts a one-phase commit's memory locks when dropped, waking the readers that wait.
pub struct MemoryLockGuard<'a> {
    locks: &'a MemoryLocks,
    keys: Vec<Vec<u8>>,
    notify: Arc<Notify>,
}

impl Drop for MemoryLockGuard<'_> {
    fn drop(&mut self) {
        let mut table = self.locks.table.write();
        for key in &self.keys {
            table.remove(key);
        }
        drop(table);
        self.notify.notify_waiters();
    }
}

impl MemoryLocks {
    /// Locks `keys` for the transaction `start_ts`. The caller holds their latches, so no
    /// other memory lock is on them.
    pub fn lock(&self, keys: Vec<Vec<u8>>, start_ts: TimeStamp) -> MemoryLockGuard<'_> {
        let notify = Arc::new(Notify::new());
        let mut table = self.table.write();
        for key in &keys {
            let previous = table.insert(key.clone(), (start_ts, notify.clone()));
            assert!(
                previous.is_none(),
                "two memory locks on one key: latches were not held"
            );
        }
        MemoryLockGuard {
            locks: self,
            keys,
            notify,
        }
    }

    /// Waits until no memory lock that a read at `ts` must respect remains in `[start, end)`
    /// (`end = None`: to the last key; a point read passes `start..=start`).
    async fn wait_clear(&self, start: &[u8], end: Bound<&[u8]>, ts: TimeStamp) {
        loop {
            let blocking = {
                let table = self.table.read();
                table
                    .range::<[u8], _>((Bound::Included(start), end))
                    .find(|(_, (start_ts, _))| *start_ts <= ts)
                    .map(|(key, (_, notify))| (key.clone(), notify.clone()))
            };
            let Some((key, notify)) = blocking else { return };
            let notified = notify.notified();
            tokio::pin!(notified);
            // Register, then check that this very lock is still held: if it was lifted in
            // between (and the key perhaps locked again by the next commit, with its own
            // wake-up), nobody will notify the old one, so look again instead of waiting.
            notified.as_mut().enable();
            let still_held = self
                .table
                .read()
                .get(&key)
                .is_some_and(|(_, current)| Arc::ptr_eq(current, &notify));
            if still_held {
                notified.await;
            }
        }
    }
}

/// The transaction server on one store. See the module docs.
pub struct TxnServer<E: Engine> {
    store: StoreHandle<E>,
    latches: Latches,
    memory_locks: MemoryLocks,
    /// The highest timestamp a read here has used, or the oracle gave a one-phase commit
    /// (see the module docs).
    max_ts: AtomicU64,
    /// Region id → the term of this node's leadership in which a one-phase commit took its
    /// timestamp from the oracle: from then on, `max_ts` is above every read of the region.
    synced_terms: DashMap<u64, u64>,
    tso: TsoClient,
    gc_filter: Option<Box<dyn GcFilter>>,
    /// How long a read barrier may wait for its region (a leader cut off from its quorum
    /// holds it until it hears of a new term).
    region_timeout: std::time::Duration,
}

/// See [`TxnServer::with_region_timeout`].
pub const DEFAULT_REGION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// A region's leader snapshot for a write command: what to read, and the header to propose
/// the command's writes with.
struct WriteContext<S> {
    snapshot: S,
    header: CommandHeader,
}

fn region_error(e: RaftstoreError) -> MvccError {
    MvccError::Region(e)
}

impl<E: Engine> TxnServer<E> {
    pub fn new(store: StoreHandle<E>, tso: TsoClient) -> Self {
        TxnServer {
            store,
            latches: Latches::default(),
            memory_locks: MemoryLocks::default(),
            max_ts: AtomicU64::new(0),
            synced_terms: DashMap::new(),
            tso,
            gc_filter: None,
            region_timeout: DEFAULT_REGION_TIMEOUT,
        }
    }

    /// Bounds how long a read waits for its region's raft group to confirm the leader: past
    /// it, the read fails retryably (it changed nothing).
    pub fn with_region_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.region_timeout = timeout;
        self
    }

    /// Lets garbage collection drop keys the layer above will never read again.
    pub fn with_gc_filter(mut self, filter: impl GcFilter) -> Self {
        self.gc_filter = Some(Box::new(filter));
        self
    }

    pub fn store(&self) -> &StoreHandle<E> {
        &self.store
    }

    pub fn engine(&self) -> &E {
        self.store.engine()
    }

    /// The region on this store holding the user key `raw`.
    fn region_of(&self, raw: &[u8]) -> Result<RegionView, MvccError> {
        let encoded = Key::from_raw(raw);
        self.store.region_for_key(encoded.as_encoded()).ok_or_else(|| {
            region_error(RaftstoreError::KeyNotInRegion {
                key: encoded.as_encoded().to_vec(),
                region_id: 0,
                start_key: Vec::new(),
                end_key: Vec::new(),
            })
        })
    }

    /// Where the region holding `raw` ends, as a user key (`None`: it runs to the end).
    fn region_end(&self, raw: &[u8]) -> Result<Option<Vec<u8>>, MvccError> {
        let view = self.region_of(raw)?;
        if view.region.end_key.is_empty() {
            return Ok(None);
        }
        Key::from_encoded(view.region.end_key.clone()).to_raw().map(Some)
    }

    /// Waits until a read of the region holding `raw` is linearizable: the leader has
    /// confirmed its leadership and applied everything committed when the read arrived. A
    /// snapshot taken after this sees every write acknowledged before it was called.
    async fn read_barrier(&self, raw: &[u8]) -> Result<(), MvccError> {
        let view = self.region_of(raw)?;
        if view.reads_locally() {
            return Ok(());
        }
        let header = CommandHeader {
            region_id: view.region.id,
            peer: view.peer,
            epoch: view.region.epoch,
            term: 0,
        };
        match tokio::time::timeout(self.region_timeout, self.store.read_index(header)).await {
            Ok(result) => result.map_err(region_error)?,
            Err(_) => {
                return Err(region_error(RaftstoreError::NotLeader {
                    region_id: view.region.id,
                    leader: None,
                }));
            }
        };
        Ok(())
    }

    /// A linearizable snapshot of the region holding `raw` (see [`TxnServer::read_barrier`]).
    async fn read_snapshot(&self, raw: &[u8]) -> Result<E::Snapshot, MvccError> {
        self.read_barrier(raw).await?;
        Ok(self.store.engine().snapshot())
    }

    /// The leader's snapshot and proposal header for a write to the region holding `raw`.
    /// Call with the command's latches held.
    async fn write_context(&self, raw: &[u8]) -> Result<WriteContext<E::Snapshot>, MvccError> {
        let view = self.region_of(raw)?;
        let header = self
            .store
            .leader_header(view.region.id)
            .await
            .map_err(region_error)?;
        Ok(WriteContext {
            snapshot: self.store.engine().snapshot(),
            header,
        })
    }

    /// Records a read at `ts`; call before looking for memory locks (see the module docs).
    fn observe_read(&self, ts: TimeStamp) {
        // `MAX` reads "the latest" and is no timestamp the oracle issued: a commit above it
        // would be above every read to come.
        if ts != TimeStamp::MAX {
            self.max_ts.fetch_max(ts.into_inner(), Ordering::SeqCst);
        }
    }

    /// The commit timestamp of a one-phase commit proposed under `header`, whose memory locks
    /// are in place (see the module docs).
    async fn one_phase_commit_ts(
        &self,
        header: &CommandHeader,
        start_ts: TimeStamp,
    ) -> Result<TimeStamp, MvccError> {
        if self
            .synced_terms
            .get(&header.region_id)
            .is_some_and(|term| *term == header.term)
        {
            let above = self.max_ts.load(Ordering::SeqCst).max(start_ts.into_inner());
            return Ok(TimeStamp::new(above + 1));
        }
        // This node has led the region since before `header.term`'s leadership was checked, so
        // the oracle's answer is above every timestamp a read at an earlier leader used.
        let ts = self
            .tso
            .get_timestamp()
            .await
            .map_err(|e| MvccError::Timestamp(e.to_string()))?;
        self.max_ts.fetch_max(ts.into_inner(), Ordering::SeqCst);
        self.synced_terms.insert(header.region_id, header.term);
        Ok(ts)
    }

    /// Proposes a command's writes to its region and waits until they are applied.
    async fn apply(&self, header: CommandHeader, txn: MvccTxn) -> Result<(), MvccError> {
        if txn.is_empty() {
            return Ok(());
        }
        let mutations = txn
            .into_batch()
            .mutations()
            .iter()
            .map(|m| match m {
                storage::Mutation::Put { cf, key, value } => crate::raftstore::cmd::Mutation::Put {
                    cf: *cf,
                    key: key.clone(),
                    value: value.clone(),
                },
                storage::Mutation::Delete { cf, key } => crate::raftstore::cmd::Mutation::Delete {
                    cf: *cf,
                    key: key.clone(),
                },
                storage::Mutation::DeleteRange { .. } => unreachable!("MVCC writes no range deletes"),
            })
            .collect();
        // No timeout here: the command's latches must stay held until its writes are
        // applied or refused, or the next command on its keys would compute from a state
        // without them while they may still commit.
        self.store
            .propose(RaftCommand {
                header,
                body: CommandBody::Write(mutations),
            })
            .await
            .map(|_| ())
            .map_err(region_error)
    }
}

/// The smaller of two exclusive ends (`None` is unbounded).
fn clamp_end(end: Option<Vec<u8>>, region_end: Option<Vec<u8>>) -> Option<Vec<u8>> {
    match (end, region_end) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The first key a command touches, which picks its region.
fn first_key(keys: &[Vec<u8>]) -> &[u8] {
    keys.first().map_or(&[], Vec::as_slice)
}

impl<E: Engine> KvApi for TxnServer<E> {
    async fn kv_get(&self, key: Vec<u8>, ts: TimeStamp) -> Result<Option<Vec<u8>>, MvccError> {
        self.read_barrier(&key).await?;
        self.observe_read(ts);
        // A one-phase commit lifts its memory locks only once its writes are applied, so the
        // snapshot is taken after the wait.
        self.memory_locks
            .wait_clear(&key, Bound::Included(&key), ts)
            .await;
        commands::get(&self.store.engine().snapshot(), &key, ts)
    }

    async fn kv_scan(
        &self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limits: ScanLimits,
        ts: TimeStamp,
    ) -> Result<ScanOutput, MvccError> {
        self.read_barrier(&start).await?;
        // Only this region's keys: the rest of the engine may belong to regions led elsewhere.
        // Its end is read once, after the barrier, and reported when it cuts the range short.
        let region_end = self.region_end(&start)?;
        let cut = region_end.clone().filter(|r| end.as_ref().is_none_or(|e| r < e));
        let end = clamp_end(end, region_end);
        let upper = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        self.observe_read(ts);
        self.memory_locks.wait_clear(&start, upper, ts).await;
        let mut output = commands::scan(
            &self.store.engine().snapshot(),
            &start,
            end.as_deref(),
            limits,
            ts,
        )?;
        output.region_end = cut;
        if output.examined >= YIELD_AFTER_EXAMINED {
            // The scan ran on a tokio worker without a pause; let the worker's other tasks
            // (every client's connection) have their turn before this one scans again.
            tokio::task::yield_now().await;
        }
        Ok(output)
    }

    async fn kv_prewrite(
        &self,
        request: PrewriteRequest,
        one_pc: bool,
    ) -> Result<Option<TimeStamp>, Vec<MvccError>> {
        // A request may name a key twice (the last mutation wins); lock it once.
        let keys: Vec<Vec<u8>> = request
            .mutations
            .iter()
            .map(|m| m.key.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let _latches = self.latches.acquire(keys.iter().map(Vec::as_slice)).await;
        let context = self.write_context(first_key(&keys)).await.map_err(|e| vec![e])?;
        if !one_pc {
            let txn = commands::prewrite(&context.snapshot, &request, PrewriteMode::TwoPhase)?;
            self.apply(context.header, txn).await.map_err(|e| vec![e])?;
            return Ok(None);
        }
        let _memory_locks = self.memory_locks.lock(keys, request.start_ts);
        let commit_ts = self
            .one_phase_commit_ts(&context.header, request.start_ts)
            .await
            .map_err(|e| vec![e])?;
        let txn = commands::prewrite(&context.snapshot, &request, PrewriteMode::OnePhase { commit_ts })?;
        self.apply(context.header, txn).await.map_err(|e| vec![e])?;
        Ok(Some(commit_ts))
    }

    async fn kv_commit(
        &self,
        keys: Vec<Vec<u8>>,
        start_ts: TimeStamp,
        commit_ts: TimeStamp,
    ) -> Result<(), MvccError> {
        let _latches = self.latches.acquire(keys.iter().map(Vec::as_slice)).await;
        let context = self.write_context(first_key(&keys)).await?;
        let txn = commands::commit(&context.snapshot, &keys, start_ts, commit_ts)?;
        self.apply(context.header, txn).await
    }

    async fn kv_batch_rollback(&self, keys: Vec<Vec<u8>>, start_ts: TimeStamp) -> Result<(), MvccError> {
        let _latches = self.latches.acquire(keys.iter().map(Vec::as_slice)).await;
        let context = self.write_context(first_key(&keys)).await?;
        let txn = commands::batch_rollback(&context.snapshot, &keys, start_ts)?;
        self.apply(context.header, txn).await
    }

    async fn kv_check_txn_status(
        &self,
        primary: Vec<u8>,
        lock_ts: TimeStamp,
        current_ts: TimeStamp,
        rollback_if_not_exist: bool,
    ) -> Result<TxnStatus, MvccError> {
        let _latches = self.latches.acquire([primary.as_slice()]).await;
        let context = self.write_context(&primary).await?;
        let (status, txn) = commands::check_txn_status(
            &context.snapshot,
            &primary,
            lock_ts,
            current_ts,
            rollback_if_not_exist,
        )?;
        self.apply(context.header, txn).await?;
        Ok(status)
    }

    async fn kv_resolve_lock(
        &self,
        start_ts: TimeStamp,
        commit_ts: Option<TimeStamp>,
        keys: Vec<Vec<u8>>,
    ) -> Result<(), MvccError> {
        let keys = if keys.is_empty() {
            let snapshot = self.read_snapshot(&[]).await?;
            commands::locked_keys_of(&snapshot, start_ts, usize::MAX)?
        } else {
            keys
        };
        let _latches = self.latches.acquire(keys.iter().map(Vec::as_slice)).await;
        let context = self.write_context(first_key(&keys)).await?;
        let txn = commands::resolve_lock(&context.snapshot, &keys, start_ts, commit_ts)?;
        self.apply(context.header, txn).await
    }

    async fn kv_scan_locks(
        &self,
        max_ts: TimeStamp,
        start: Vec<u8>,
        limit: usize,
    ) -> Result<Vec<LockInfo>, MvccError> {
        let snapshot = self.read_snapshot(&start).await?;
        let end = self.region_end(&start)?;
        let reader = super::mvcc::MvccReader::new(&snapshot);
        reader
            .scan_locks(&start, end.as_deref(), |lock| lock.start_ts <= max_ts, limit)?
            .into_iter()
            .map(|(key, lock)| Ok(lock.info(&key.to_raw()?)))
            .collect()
    }

    async fn kv_gc(
        &self,
        safe_point: TimeStamp,
        start: Option<Vec<u8>>,
        limit_keys: usize,
    ) -> Result<(usize, Option<Vec<u8>>), MvccError> {
        let start = start.map(super::key::Key::from_encoded);
        let raw_start = match &start {
            Some(key) => key.to_raw()?,
            None => Vec::new(),
        };
        let context = self.write_context(&raw_start).await?;
        let region = self.region_of(&raw_start)?.region;
        let upper = (!region.end_key.is_empty()).then_some(region.end_key);
        let filter = self.gc_filter.as_deref();
        let (txn, removed, next) = super::gc::gc_range(
            &context.snapshot,
            start,
            &region.start_key,
            upper,
            limit_keys,
            safe_point,
            filter,
        )?;
        self.apply(context.header, txn).await?;
        Ok((removed, next.map(|key| key.as_encoded().to_vec())))
    }
}

/// A transaction server on a cluster of one over an in-memory engine, for tests: the driver
/// must outlive the server's use.
#[cfg(test)]
pub(crate) fn test_server(
    engine: crate::storage::MemoryEngine,
    tso: TsoClient,
) -> (
    Arc<TxnServer<crate::storage::MemoryEngine>>,
    crate::raftstore::driver::StoreDriver<crate::storage::MemoryEngine>,
) {
    use crate::raftstore::driver::{DriverOptions, StoreDriver};
    let (driver, _) = StoreDriver::start_cluster_of_one(
        engine,
        1,
        crate::raftstore::peer::PeerOptions::default(),
        DriverOptions { tick_ms: 10 },
        1,
    )
    .expect("starting a test store");
    let server = Arc::new(TxnServer::new(driver.handle().clone(), tso));
    (server, driver)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A key locked again by the next one-phase commit right after its previous lock was
    /// lifted must not strand a reader on the old lock's (never again notified) wake-up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_are_not_stranded_when_a_key_is_locked_again_at_once() {
        let locks = Arc::new(MemoryLocks::default());
        // The writer relocks at once on its own thread, so a reader between seeing a lock and
        // registering for its wake-up often finds the key locked again by the next commit.
        let writer = {
            let locks = locks.clone();
            std::thread::spawn(move || {
                for ts in 1..=2_000_000u64 {
                    let guard = locks.lock(vec![b"x".to_vec()], TimeStamp::new(ts));
                    std::hint::spin_loop();
                    drop(guard);
                }
            })
        };
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let locks = locks.clone();
                tokio::spawn(async move {
                    for _ in 0..50_000 {
                        let read = locks.wait_clear(b"x", Bound::Included(&b"x"[..]), TimeStamp::MAX);
                        // A liveness bound, not a performance one: every wait ends by the
                        // time the writer's short locks are done.
                        tokio::time::timeout(Duration::from_secs(20), read)
                            .await
                            .expect("a reader waited on a lock that was already gone");
                    }
                })
            })
            .collect();
        for reader in readers {
            reader.await.unwrap();
        }
        writer.join().unwrap();
    }

    /// A long scan lets the worker's other tasks run before its caller goes on: on a
    /// single-threaded runtime, a task spawned before two long scans runs between them.
    #[tokio::test]
    async fn a_long_scan_yields_the_worker() {
        use super::super::actions::Mutation;
        use crate::scheduler::tso::{EngineTsoStore, Tso, system_clock};
        let engine = crate::storage::MemoryEngine::new();
        let tso = TsoClient::start(Tso::open(EngineTsoStore(engine.clone()), system_clock(), 3_000).unwrap());
        let (server, _driver) = test_server(engine, tso.clone());
        let start_ts = tso.get_timestamp().await.unwrap();
        let keys: Vec<String> = (0..YIELD_AFTER_EXAMINED).map(|i| format!("k{i:05}")).collect();
        let request = PrewriteRequest {
            mutations: keys.iter().map(|k| Mutation::put(k.as_bytes(), b"v")).collect(),
            primary: keys[0].as_bytes().to_vec(),
            start_ts,
            lock_ttl_ms: 3_000,
        };
        server.kv_prewrite(request, true).await.unwrap();

        let ts = tso.get_timestamp().await.unwrap();
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let other = tokio::spawn({
            let ran = ran.clone();
            async move { ran.store(true, Ordering::SeqCst) }
        });
        let mut seen_between = Vec::new();
        for _ in 0..2 {
            let output = server
                .kv_scan(Vec::new(), None, ScanLimits::pairs(usize::MAX), ts)
                .await
                .unwrap();
            assert_eq!(output.entries.len(), keys.len());
            seen_between.push(ran.load(Ordering::SeqCst));
        }
        assert_eq!(
            seen_between,
            [true, true],
            "the other task ran after the first scan"
        );
        other.await.unwrap();
    }

    /// Counts the oracle's answers.
    struct CountingTso {
        tso: crate::scheduler::tso::Tso,
        asked: Arc<AtomicU64>,
    }

    impl crate::scheduler::tso::TsoProvider for CountingTso {
        async fn request_timestamps(&self, count: u32) -> Result<TimeStamp, crate::scheduler::tso::TsoError> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            self.tso.get_timestamps(count)
        }
    }

    /// After the first of its term, a one-phase commit takes no timestamp from the oracle, and
    /// its commit timestamp is above every read made before it, also one at a timestamp above
    /// the transaction's start: that read keeps its answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_one_phase_commit_follows_every_earlier_read_without_the_oracle() {
        use super::super::actions::Mutation;
        use crate::scheduler::tso::{EngineTsoStore, Tso, system_clock};
        let engine = crate::storage::MemoryEngine::new();
        let asked = Arc::new(AtomicU64::new(0));
        let tso = TsoClient::start(CountingTso {
            tso: Tso::open(EngineTsoStore(engine.clone()), system_clock(), 3_000).unwrap(),
            asked: asked.clone(),
        });
        let (server, _driver) = test_server(engine, tso.clone());
        let one_pc = |key: &str, start_ts: TimeStamp| PrewriteRequest {
            mutations: vec![Mutation::put(key.as_bytes().to_vec(), b"v".to_vec())],
            primary: key.as_bytes().to_vec(),
            start_ts,
            lock_ttl_ms: 3_000,
        };

        let start = tso.get_timestamp().await.unwrap();
        let first = server
            .kv_prewrite(one_pc("a", start), true)
            .await
            .unwrap()
            .unwrap();
        assert!(first > start);

        // Transaction `start` began before a read at `read`, which found no `b`.
        let start = tso.get_timestamp().await.unwrap();
        let read = tso.get_timestamp().await.unwrap();
        assert_eq!(server.kv_get(b"b".to_vec(), read).await.unwrap(), None);
        let before = asked.load(Ordering::SeqCst);
        let commit = server
            .kv_prewrite(one_pc("b", start), true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            asked.load(Ordering::SeqCst),
            before,
            "the commit asked the oracle"
        );
        assert!(commit > read, "committed at {commit}, after a read at {read}");
        assert_eq!(server.kv_get(b"b".to_vec(), read).await.unwrap(), None);
        assert_eq!(
            server.kv_get(b"b".to_vec(), commit).await.unwrap(),
            Some(b"v".to_vec())
        );
        // And the oracle's next timestamp reads it.
        let later = tso.get_timestamp().await.unwrap();
        assert_eq!(
            server.kv_get(b"b".to_vec(), later).await.unwrap(),
            Some(b"v".to_vec())
        );
    }
}
