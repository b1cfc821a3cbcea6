//! The transaction coordinator: the client side of Percolator.
//!
//! A [`PercolatorTxn`] takes its `start_ts` from the oracle, reads at that snapshot, and
//! buffers its writes. On commit:
//!
//! - **One phase**, when allowed (the keys live on one store and there are not too many): the
//!   server checks and commits everything at once and picks `commit_ts` itself.
//! - **Two phases** otherwise: prewrite every key with the first key as primary; take
//!   `commit_ts` from the oracle; commit the primary (the transaction is committed the moment
//!   that is durable); then commit the secondaries. A crash between the phases leaves locks
//!   that readers resolve through the primary (see below).
//!
//! **Meeting a lock.** A read that finds a lock of another transaction asks the primary for
//! that transaction's fate (`CheckTxnStatus`, which also rolls back an expired primary) and
//! then commits or rolls back the lock it met (`ResolveLock`). If the owner is alive, the reader
//! backs off and tries again, up to a time budget.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use super::actions::{Mutation, Op, TxnStatus};
use super::commands::PrewriteRequest;
use super::records::LockInfo;
use super::server::KvApi;
use super::{Commit, KvPair, MvccError, Result, ScanLimits, ScanPage, Transaction, TxnClient, TxnError};
use crate::raftstore::cmd::RaftstoreError;
use crate::scheduler::tso::{TimeStamp, TsoClient};

/// Tunables of the coordinator.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// How long a transaction's locks protect it after its start before others may roll it
    /// back.
    pub lock_ttl_ms: u64,
    /// Commit in one phase when the transaction has at most this many keys (0: never).
    pub max_one_pc_keys: usize,
    /// How long a read or prewrite keeps waiting for a live lock to go away.
    pub lock_wait_budget_ms: u64,
    /// How long a request keeps being sent again while its region has no ready leader (an
    /// election, a leader transfer, a split).
    pub region_retry_budget_ms: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            lock_ttl_ms: 3_000,
            max_one_pc_keys: 4_096,
            lock_wait_budget_ms: 10_000,
            region_retry_budget_ms: 10_000,
        }
    }
}

/// Starts Percolator transactions against a [`KvApi`]. Clones share everything.
pub struct PercolatorClient<K: KvApi> {
    kv: Arc<K>,
    tso: TsoClient,
    config: Arc<ClientConfig>,
    /// The newest timestamp this client has seen from the oracle: a lower bound for every
    /// timestamp it will be handed.
    last_ts: Arc<std::sync::atomic::AtomicU64>,
    /// Start timestamps of the transactions running through this client, with how many run
    /// at each; garbage collection stays below the oldest.
    running: Arc<Mutex<BTreeMap<TimeStamp, usize>>>,
}

impl<K: KvApi> Clone for PercolatorClient<K> {
    fn clone(&self) -> Self {
        PercolatorClient {
            kv: self.kv.clone(),
            tso: self.tso.clone(),
            config: self.config.clone(),
            running: self.running.clone(),
            last_ts: self.last_ts.clone(),
        }
    }
}

/// What one garbage-collection round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub safe_point: TimeStamp,
    pub locks_resolved: usize,
    pub versions_removed: usize,
}

/// Locks and keys handled per call in a GC round.
const GC_BATCH: usize = 1_024;

impl<K: KvApi> PercolatorClient<K> {
    pub fn new(kv: Arc<K>, tso: TsoClient, config: ClientConfig) -> Self {
        PercolatorClient {
            kv,
            tso,
            config: Arc::new(config),
            running: Arc::new(Mutex::new(BTreeMap::new())),
            last_ts: Arc::default(),
        }
    }

    /// The timestamp at or below which no transaction of this client reads: below every
    /// running transaction's start, and at least `life_time_ms` in the past.
    pub async fn safe_point(&self, life_time_ms: u64) -> Result<TimeStamp> {
        let now = self.fetch_timestamp().await?;
        let by_age = TimeStamp::compose(now.physical().saturating_sub(life_time_ms), 0);
        let oldest_running = self.running.lock().keys().next().copied();
        Ok(oldest_running.map_or(by_age, |oldest| by_age.min(oldest.prev())))
    }

    /// One round of MVCC garbage collection (see `gc.rs`): resolve the locks of transactions
    /// that started at or below the safe point, then drop the versions no reader needs.
    pub async fn gc(&self, life_time_ms: u64) -> Result<GcReport> {
        let mut safe_point = self.safe_point(life_time_ms).await?;
        let mut report = GcReport::default();
        let mut start = Vec::new();
        loop {
            let locks = self
                .retry_region(|| self.kv.kv_scan_locks(safe_point, start.clone(), GC_BATCH))
                .await?;
            let done = locks.len() < GC_BATCH;
            for lock in &locks {
                if resolve_lock(self, lock).await? {
                    report.locks_resolved += 1;
                } else {
                    // Still alive against all odds (a huge TTL): collect only below it, so its
                    // fate stays readable from its primary.
                    safe_point = safe_point.min(lock.start_ts.prev());
                }
            }
            match locks.last() {
                Some(last) if !done => {
                    start = last.key.clone();
                    start.push(0);
                }
                _ => break,
            }
        }
        report.safe_point = safe_point;
        let mut next = None;
        loop {
            let (removed, resume) = self
                .retry_region(|| self.kv.kv_gc(safe_point, next.clone(), GC_BATCH))
                .await?;
            report.versions_removed += removed;
            match resume {
                Some(resume) => next = Some(resume),
                None => return Ok(report),
            }
        }
    }

    pub fn kv(&self) -> &Arc<K> {
        &self.kv
    }

    /// A timestamp from the oracle, remembered as the newest seen.
    async fn fetch_timestamp(&self) -> Result<TimeStamp> {
        let ts = self.tso.get_timestamp().await.map_err(tso_error)?;
        self.last_ts
            .fetch_max(ts.into_inner(), std::sync::atomic::Ordering::AcqRel);
        Ok(ts)
    }

    /// Runs `call` again, with backoff, while it fails with a region error that retrying can
    /// fix (no leader yet, a stale epoch...), within the region retry budget.
    async fn retry_region<T, F, Fut>(&self, mut call: F) -> std::result::Result<T, MvccError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, MvccError>>,
    {
        let since = Instant::now();
        let budget = Duration::from_millis(self.config.region_retry_budget_ms);
        let mut attempt = 0;
        loop {
            match call().await {
                Err(MvccError::Region(e)) if e.is_retryable() && since.elapsed() < budget => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }
}

fn tso_error(e: impl std::fmt::Display) -> TxnError {
    TxnError::Timestamp(e.to_string())
}

impl<K: KvApi> TxnClient for PercolatorClient<K> {
    type Txn = PercolatorTxn<K>;

    async fn begin(&self) -> Result<PercolatorTxn<K>> {
        // Counted as running from below its start timestamp before asking for it: a garbage
        // collection that reads the running set meanwhile must not put its safe point above
        // a start timestamp handed out before its own "now".
        let floor = TimeStamp::new(self.last_ts.load(std::sync::atomic::Ordering::Acquire));
        *self.running.lock().entry(floor).or_insert(0) += 1;
        let start_ts = self.fetch_timestamp().await;
        let mut running = self.running.lock();
        if let Some(count) = running.get_mut(&floor) {
            *count -= 1;
            if *count == 0 {
                running.remove(&floor);
            }
        }
        let start_ts = start_ts?;
        *running.entry(start_ts).or_insert(0) += 1;
        drop(running);
        Ok(PercolatorTxn {
            client: self.clone(),
            start_ts,
            writes: BTreeMap::new(),
            reads: HashMap::new(),
            watches: BTreeMap::new(),
        })
    }

    async fn timestamp(&self) -> Result<TimeStamp> {
        self.tso.get_timestamp().await.map_err(tso_error)
    }
}

/// One Percolator transaction. See the module docs.
pub struct PercolatorTxn<K: KvApi> {
    client: PercolatorClient<K>,
    start_ts: TimeStamp,
    /// Buffered writes: `Some` puts, `None` deletes.
    writes: BTreeMap<Bytes, Option<Bytes>>,
    /// Values read so far. A read at `start_ts` never changes (no commit below it can appear
    /// once read), so a key read twice costs one store read.
    reads: HashMap<Bytes, Option<Bytes>>,
    /// Keys whose value must not have changed after the given timestamp.
    watches: BTreeMap<Bytes, TimeStamp>,
}

impl<K: KvApi> Drop for PercolatorTxn<K> {
    fn drop(&mut self) {
        let mut running = self.client.running.lock();
        if let Some(count) = running.get_mut(&self.start_ts) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.start_ts);
            }
        }
    }
}

impl<K: KvApi> PercolatorTxn<K> {
    /// Resolves a lock met at `key`: finds its transaction's fate, then commits or rolls back
    /// the lock. Returns `false` if the owner is still running (the caller should back off).
    async fn resolve(&self, lock: &LockInfo) -> Result<bool> {
        resolve_lock(&self.client, lock).await
    }

    /// Waits out (or resolves) `lock`, within the budget that started at `since`.
    async fn handle_lock(&self, lock: &LockInfo, since: Instant, attempt: &mut u32) -> Result<()> {
        if self.resolve(lock).await? {
            return Ok(());
        }
        if since.elapsed() > Duration::from_millis(self.client.config.lock_wait_budget_ms) {
            return Err(TxnError::LockTimeout {
                key: Bytes::copy_from_slice(&lock.key),
            });
        }
        *attempt += 1;
        tokio::time::sleep(backoff(*attempt)).await;
        Ok(())
    }

    fn mutations(&self) -> Vec<Mutation> {
        let mut mutations: BTreeMap<&Bytes, Mutation> = BTreeMap::new();
        for (key, value) in &self.writes {
            let op = match value {
                Some(value) => Op::Put(value.to_vec()),
                None => Op::Delete,
            };
            mutations.insert(
                key,
                Mutation {
                    key: key.to_vec(),
                    op,
                    unchanged_since: None,
                },
            );
        }
        for (key, since) in &self.watches {
            mutations
                .entry(key)
                .or_insert_with(|| Mutation::check_unchanged(key.to_vec(), *since))
                .unchanged_since = Some(*since);
        }
        mutations.into_values().collect()
    }

    /// Maps a prewrite's per-key errors to the transaction's error, resolving locks in the way.
    /// `Ok(())` means "try the prewrite again".
    async fn handle_prewrite_errors(
        &self,
        errors: Vec<MvccError>,
        since: Instant,
        attempt: &mut u32,
    ) -> Result<()> {
        for error in &errors {
            if let MvccError::WriteConflict {
                key,
                start_ts,
                conflict_commit_ts,
                ..
            } = error
            {
                let key = Bytes::copy_from_slice(key);
                if self.watches.contains_key(&key) {
                    return Err(TxnError::WatchedKeyChanged { key });
                }
                return Err(TxnError::WriteConflict {
                    key,
                    start_ts: *start_ts,
                    conflict_commit_ts: *conflict_commit_ts,
                });
            }
        }
        for error in errors {
            match error {
                MvccError::KeyIsLocked(lock) => self.handle_lock(&lock, since, attempt).await?,
                MvccError::Region(e)
                    if e.is_retryable()
                        && since.elapsed()
                            < Duration::from_millis(self.client.config.region_retry_budget_ms) =>
                {
                    *attempt += 1;
                    tokio::time::sleep(backoff(*attempt)).await;
                    return Ok(());
                }
                other => return Err(other.into()),
            }
        }
        Ok(())
    }

    /// A one-phase commit whose outcome is unknown (its answer was lost): asks the primary.
    /// No lock and no record means it never applied; the check then writes a rollback record,
    /// so the request cannot apply later either. Only a definite answer is reported as one.
    async fn learn_one_phase_outcome(&self, primary: &[u8]) -> Result<()> {
        let current_ts = self.client.fetch_timestamp().await?;
        let status = self
            .client
            .retry_region(|| {
                self.client
                    .kv
                    .kv_check_txn_status(primary.to_vec(), self.start_ts, current_ts, true)
            })
            .await;
        match status {
            Ok(TxnStatus::Committed { .. }) => Ok(()),
            Ok(TxnStatus::RolledBack { .. }) => Err(TxnError::Aborted(format!(
                "transaction {} did not commit (its node failed before applying it)",
                self.start_ts
            ))),
            Ok(TxnStatus::Locked { .. }) | Err(_) => Err(TxnError::Undetermined),
        }
    }

    async fn two_phase_commit(&self, request: PrewriteRequest) -> Result<()> {
        let kv = &self.client.kv;
        let since = Instant::now();
        let mut attempt = 0;
        loop {
            match kv.kv_prewrite(request.clone(), false).await {
                Ok(_) => break,
                Err(errors) => self.handle_prewrite_errors(errors, since, &mut attempt).await?,
            }
        }
        self.commit_prewritten(&request).await
    }

    /// The second phase: commit the primary (the transaction commits when that is durable),
    /// then the secondaries.
    async fn commit_prewritten(&self, request: &PrewriteRequest) -> Result<()> {
        let kv = &self.client.kv;
        let commit_ts = self.client.tso.get_timestamp().await.map_err(tso_error)?;
        let keys: Vec<Vec<u8>> = request.mutations.iter().map(|m| m.key.clone()).collect();
        let (primary, secondaries) = keys.split_first().expect("a prewrite has keys");
        // A commit is idempotent, so one whose answer was lost is sent again until the
        // primary answers: the client learns the outcome and never rolls back a commit that
        // may have applied.
        let since = Instant::now();
        let mut attempt = 0;
        let committed = loop {
            let result = self
                .client
                .retry_region(|| kv.kv_commit(vec![primary.clone()], self.start_ts, commit_ts))
                .await;
            match result {
                Err(ref e)
                    if is_undetermined(e)
                        && since.elapsed()
                            < Duration::from_millis(self.client.config.region_retry_budget_ms) =>
                {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                other => break other,
            }
        };
        if let Err(e) = committed {
            if matches!(e, MvccError::Region(_)) {
                // The commit's fate is not known here: never roll back what may have committed,
                // and never claim it failed.
                tracing::warn!(start_ts = %self.start_ts, error = %e, "the primary's commit outcome is unknown");
                return Err(TxnError::Undetermined);
            }
            // The primary was rolled back under us (our locks outlived their TTL): the
            // transaction is aborted. Clean up what is left of it.
            let _ = kv.kv_batch_rollback(keys.clone(), self.start_ts).await;
            return Err(match e {
                MvccError::RolledBack { .. } | MvccError::TxnLockNotFound { .. } => {
                    TxnError::Aborted(format!(
                        "transaction {} was rolled back before it committed",
                        self.start_ts
                    ))
                }
                other => other.into(),
            });
        }
        // Committed. A failure from here on leaves locks that readers resolve as committed.
        if !secondaries.is_empty()
            && let Err(e) = self
                .client
                .retry_region(|| kv.kv_commit(secondaries.to_vec(), self.start_ts, commit_ts))
                .await
        {
            tracing::warn!(start_ts = %self.start_ts, error = %e, "committing secondaries failed; readers will resolve them");
        }
        Ok(())
    }
}

/// Resolves a lock (see [`PercolatorTxn::resolve`]), for any caller holding a client.
async fn resolve_lock<K: KvApi>(client: &PercolatorClient<K>, lock: &LockInfo) -> Result<bool> {
    let current_ts = client.tso.get_timestamp().await.map_err(tso_error)?;
    // A primary with no lock and no record may just not be prewritten yet: roll it back only
    // once the lock we met has expired (TiKV's `rollback_if_not_exist`).
    let expired = current_ts.physical() >= lock.start_ts.physical().saturating_add(lock.ttl_ms);
    let status = client
        .retry_region(|| {
            client
                .kv
                .kv_check_txn_status(lock.primary.clone(), lock.start_ts, current_ts, expired)
        })
        .await?;
    let commit_ts = match status {
        TxnStatus::Locked { .. } => return Ok(false),
        TxnStatus::Committed { commit_ts } => Some(commit_ts),
        TxnStatus::RolledBack { .. } => None,
    };
    client
        .retry_region(|| {
            client
                .kv
                .kv_resolve_lock(lock.start_ts, commit_ts, vec![lock.key.clone()])
        })
        .await?;
    Ok(true)
}

/// The lock TTL for a transaction of `keys` keys: the base, plus a millisecond per key, so
/// that a large transaction still committing is not taken for a crashed one.
fn lock_ttl_ms(base_ms: u64, keys: usize) -> u64 {
    base_ms.saturating_add(keys as u64)
}

/// 2, 4, 8... milliseconds, capped at 100.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((2u64 << attempt.min(6)).min(100))
}

impl<K: KvApi> Transaction for PercolatorTxn<K> {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>> {
        if let Some(buffered) = self.writes.get(key) {
            return Ok(buffered.clone());
        }
        if let Some(read) = self.reads.get(key) {
            return Ok(read.clone());
        }
        let since = Instant::now();
        let mut attempt = 0;
        loop {
            let read = self
                .client
                .retry_region(|| self.client.kv.kv_get(key.to_vec(), self.start_ts))
                .await;
            match read {
                Ok(value) => {
                    let value = value.map(Bytes::from);
                    self.reads.insert(Bytes::copy_from_slice(key), value.clone());
                    return Ok(value);
                }
                Err(MvccError::KeyIsLocked(lock)) => self.handle_lock(&lock, since, &mut attempt).await?,
                Err(other) => return Err(other.into()),
            }
        }
    }

    fn start_ts(&self) -> TimeStamp {
        self.start_ts
    }

    fn put(&mut self, key: Bytes, value: Bytes) {
        self.writes.insert(key, Some(value));
    }

    fn delete(&mut self, key: Bytes) {
        self.writes.insert(key, None);
    }

    fn watch(&mut self, key: Bytes, since: TimeStamp) {
        self.watches.insert(key, since);
    }

    async fn scan_page(&mut self, start: &[u8], end: Option<&[u8]>, limits: ScanLimits) -> Result<ScanPage> {
        if limits.limit == 0 || limits.examine == 0 {
            return Ok(ScanPage {
                pairs: Vec::new(),
                resume: Some(Bytes::copy_from_slice(start)),
            });
        }
        // Stored keys merged with this transaction's buffered writes. A buffered delete
        // shadows a stored key only where the stored scan meets it, so a page that comes out
        // short reads on from where the stored scan stopped, twice as far each time: reading
        // ahead by every buffered delete in the range instead would make a transaction that
        // takes one element after another (batched `SPOP`s) read all its earlier deletes past
        // the one it wants each time, quadratic work.
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        let mut merged: BTreeMap<Bytes, Bytes> = BTreeMap::new();
        let mut from = Bytes::copy_from_slice(start);
        let mut ask = limits.limit;
        let mut resume = loop {
            let stored_limits = ScanLimits {
                limit: ask.max(limits.limit - merged.len()),
                ..limits
            };
            ask = ask.saturating_mul(2);
            let (stored, resume) = self.scan_stored(&from, end, stored_limits).await?;
            merged.extend(stored);
            // Buffered writes count up to where the stored scan stopped; later ones are the
            // next round's, or the next page's.
            let stop = resume.as_deref().map_or(upper, Bound::Excluded);
            for (key, value) in self.writes.range::<[u8], _>((Bound::Included(&from[..]), stop)) {
                match value {
                    Some(value) => merged.insert(key.clone(), limits.cut(value.clone())),
                    None => merged.remove(key),
                };
            }
            match resume {
                // An examine budget bounds one stored scan: a short page then says where to
                // go on, as the budget's contract allows.
                Some(next) if merged.len() < limits.limit && limits.examine == usize::MAX => from = next,
                resume => break resume,
            }
        };
        // Every key below `resume` is accounted for, so the first `limit` are a page.
        if let Some(cut) = merged.keys().nth(limits.limit).cloned() {
            merged.split_off(&cut);
            resume = Some(cut);
        }
        Ok(ScanPage {
            pairs: merged.into_iter().collect(),
            resume,
        })
    }
}

impl<K: KvApi> Commit for PercolatorTxn<K> {
    async fn commit(self) -> Result<()> {
        let mutations = self.mutations();
        if mutations.is_empty() {
            return Ok(());
        }
        let ttl_ms = lock_ttl_ms(self.client.config.lock_ttl_ms, mutations.len());
        let request = PrewriteRequest {
            primary: mutations[0].key.clone(),
            mutations,
            start_ts: self.start_ts,
            lock_ttl_ms: ttl_ms,
        };
        if request.mutations.len() > self.client.config.max_one_pc_keys {
            return self.two_phase_commit(request).await;
        }
        let since = Instant::now();
        let mut attempt = 0;
        loop {
            match self.client.kv.kv_prewrite(request.clone(), true).await {
                Ok(Some(_)) => return Ok(()),
                // The keys span regions: prewritten in two phases; commit them.
                Ok(None) => return self.commit_prewritten(&request).await,
                Err(errors) if errors.iter().any(is_undetermined) => {
                    return self.learn_one_phase_outcome(&request.primary).await;
                }
                Err(errors) => self.handle_prewrite_errors(errors, since, &mut attempt).await?,
            }
        }
    }
}

fn is_undetermined(e: &MvccError) -> bool {
    matches!(e, MvccError::Region(RaftstoreError::Undetermined))
}

impl<K: KvApi> PercolatorTxn<K> {
    /// Stored pairs of `[start, end)` at `start_ts` within `limits`, resolving any locks met,
    /// and where the next page starts.
    async fn scan_stored(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limits: ScanLimits,
    ) -> Result<(Vec<KvPair>, Option<Bytes>)> {
        let since = Instant::now();
        let mut attempt = 0;
        loop {
            let output = self
                .client
                .retry_region(|| {
                    self.client
                        .kv
                        .kv_scan(start.to_vec(), end.map(<[u8]>::to_vec), limits, self.start_ts)
                })
                .await?;
            let mut pairs = Vec::with_capacity(output.entries.len());
            let mut blocked = None;
            for (key, value) in output.entries {
                match value {
                    Ok(value) => pairs.push((Bytes::from(key), Bytes::from(value))),
                    Err(MvccError::KeyIsLocked(lock)) => {
                        blocked = Some(lock);
                        break;
                    }
                    Err(other) => return Err(other.into()),
                }
            }
            match blocked {
                None => return Ok((pairs, output.resume.map(Bytes::from))),
                Some(lock) => self.handle_lock(&lock, since, &mut attempt).await?,
            }
        }
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
