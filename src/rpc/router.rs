//! [`Router`]: the [`KvApi`] a node's transaction client calls. It sends each command to the
//! store that leads the region of its keys: this node's own transaction server when this
//! store leads it (no RPC), another node's over gRPC otherwise.
//!
//! **The region cache.** Regions by start key, each with the peer last known to lead it,
//! filled from the scheduler on a miss and corrected by what stores answer: `NotLeader` with a
//! hint moves the leader; `NotLeader` without one, or an unreachable store, moves it to the
//! next peer; `EpochNotMatch` replaces the region with the layouts the store reported;
//! `RegionNotFound` and `KeyNotInRegion` drop the entry. The router itself sends each request
//! once and returns the error: the transaction client retries retryable region errors with
//! bounded backoff, and the next attempt uses the corrected cache.
//!
//! **Commands over several regions.** Keys are grouped by region, and the groups run in
//! parallel. A prewrite that fails for good (a conflict, not a lock to resolve or a region to
//! retry) rolls back the groups that succeeded, so a multi-region prewrite is all or nothing
//! like a single-region one. One-phase commit is used only when every key is in one region;
//! otherwise the router prewrites in two phases and answers `Ok(None)` so that the client
//! commits. Scans, lock scans and garbage collection continue region after region.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::ops::Bound;
use std::sync::Arc;

use futures_util::future::join_all;
use parking_lot::{Mutex, RwLock};

use super::kv::RegionContext;
use super::kv_client::{KvRpcClient, context_for};
use crate::percolator::actions::TxnStatus;
use crate::percolator::commands::{PrewriteRequest, ScanOutput};
use crate::percolator::key::Key;
use crate::percolator::records::LockInfo;
use crate::percolator::server::{KvApi, TxnServer};
use crate::percolator::{MvccError, ScanLimits};
use crate::raftstore::cmd::RaftstoreError;
use crate::raftstore::meta::{Peer, Region};
use crate::scheduler::service::SchedulerApi;
use crate::scheduler::tso::TimeStamp;
use crate::storage::Engine;

/// Where one region's request goes.
enum Target {
    Local,
    Remote(Box<(KvRpcClient, RegionContext)>),
}

#[derive(Clone, Debug)]
struct Cached {
    region: Region,
    leader: Peer,
}

/// See the module docs.
pub struct Router<E: Engine, S: SchedulerApi> {
    local: Arc<TxnServer<E>>,
    scheduler: S,
    /// Regions by start key (encoded).
    cache: RwLock<BTreeMap<Vec<u8>, Cached>>,
    clients: Mutex<HashMap<u64, (String, KvRpcClient)>>,
}

fn region_error(e: RaftstoreError) -> MvccError {
    MvccError::Region(e)
}

fn raw_of(encoded: &[u8]) -> Result<Vec<u8>, MvccError> {
    Key::from_encoded(encoded.to_vec()).to_raw()
}

impl<E: Engine, S: SchedulerApi> Router<E, S> {
    pub fn new(local: Arc<TxnServer<E>>, scheduler: S) -> Self {
        Router {
            local,
            scheduler,
            cache: RwLock::new(BTreeMap::new()),
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn local(&self) -> &Arc<TxnServer<E>> {
        &self.local
    }

    pub fn scheduler(&self) -> &S {
        &self.scheduler
    }

    fn cached(&self, encoded: &[u8]) -> Option<Cached> {
        let cache = self.cache.read();
        let (_, c) = cache
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(encoded)))
            .next_back()?;
        c.region.contains(encoded).then(|| c.clone())
    }

    fn insert(&self, region: Region, leader: Peer) {
        let mut cache = self.cache.write();
        let overlapping: Vec<Vec<u8>> = cache
            .iter()
            .filter(|(_, c)| {
                let r = &c.region;
                (region.end_key.is_empty() || r.start_key < region.end_key)
                    && (r.end_key.is_empty() || r.end_key > region.start_key)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in overlapping {
            cache.remove(&key);
        }
        cache.insert(region.start_key.clone(), Cached { region, leader });
    }

    fn forget(&self, region_id: u64) {
        self.cache.write().retain(|_, c| c.region.id != region_id);
    }

    /// The region holding the encoded key, and where its leader is.
    async fn locate(&self, encoded: &[u8]) -> Result<(Region, Target), MvccError> {
        let store = self.local.store();
        if let Some(view) = store.region_for_key(encoded)
            && view.is_leader
        {
            return Ok((view.region, Target::Local));
        }
        let cached = match self.cached(encoded) {
            Some(c) => c,
            None => {
                let route = self
                    .scheduler
                    .region_by_key(encoded.to_vec())
                    .await
                    .map_err(|e| region_error(RaftstoreError::Remote(e.to_string())))?
                    .ok_or_else(|| region_error(RaftstoreError::RegionNotFound(0)))?;
                let leader = route
                    .leader
                    .or_else(|| route.region.peers.first().copied())
                    .ok_or_else(|| region_error(RaftstoreError::RegionNotFound(route.region.id)))?;
                self.insert(route.region.clone(), leader);
                Cached {
                    region: route.region,
                    leader,
                }
            }
        };
        if cached.leader.store_id == store.store_id() {
            return Ok((cached.region, Target::Local));
        }
        let client = self.client(cached.leader.store_id).await?;
        let ctx = context_for(&cached.region, cached.leader);
        Ok((cached.region, Target::Remote(Box::new((client, ctx)))))
    }

    async fn client(&self, store_id: u64) -> Result<KvRpcClient, MvccError> {
        if let Some((_, client)) = self.clients.lock().get(&store_id) {
            return Ok(client.clone());
        }
        let meta = self
            .scheduler
            .store(store_id)
            .await
            .map_err(|e| region_error(RaftstoreError::Remote(e.to_string())))?
            .ok_or_else(|| {
                region_error(RaftstoreError::StoreUnreachable {
                    store_id,
                    reason: "the scheduler does not know it".into(),
                })
            })?;
        let client = KvRpcClient::new(store_id, &meta.peer_addr)?;
        self.clients
            .lock()
            .insert(store_id, (meta.peer_addr, client.clone()));
        Ok(client)
    }

    /// Corrects the cache from an error a request to `region` got.
    fn learn(&self, region: &Region, error: &MvccError) {
        let MvccError::Region(e) = error else { return };
        match e {
            RaftstoreError::NotLeader {
                leader: Some(leader), ..
            } => self.insert(region.clone(), *leader),
            RaftstoreError::NotLeader { leader: None, .. } | RaftstoreError::StoreUnreachable { .. } => {
                self.next_peer(region)
            }
            RaftstoreError::EpochNotMatch { current } => {
                self.forget(region.id);
                for r in current {
                    if let Some(leader) = r.peers.first().copied() {
                        self.insert(r.clone(), leader);
                    }
                }
            }
            RaftstoreError::RegionNotFound(_) | RaftstoreError::KeyNotInRegion { .. } => {
                self.forget(region.id)
            }
            _ => {}
        }
    }

    fn next_peer(&self, region: &Region) {
        let Some(cached) = self.cached(&region.start_key) else {
            return;
        };
        if cached.region.id != region.id || cached.region.peers.is_empty() {
            return;
        }
        let peers = &cached.region.peers;
        let position = peers.iter().position(|p| *p == cached.leader).unwrap_or(0);
        let next = peers[(position + 1) % peers.len()];
        self.insert(cached.region.clone(), next);
    }

    /// Runs `call` at the region of the encoded key, learning from its error.
    async fn at<T, F, Fut>(&self, encoded: &[u8], call: F) -> Result<(Region, T), MvccError>
    where
        F: FnOnce(Target) -> Fut,
        Fut: Future<Output = Result<T, MvccError>>,
    {
        let (region, target) = self.locate(encoded).await?;
        match call(target).await {
            Ok(value) => Ok((region, value)),
            Err(e) => {
                self.learn(&region, &e);
                Err(e)
            }
        }
    }

    /// Groups user keys by region (in key order).
    async fn group(&self, keys: &[Vec<u8>]) -> Result<Vec<(Region, Vec<Vec<u8>>)>, MvccError> {
        let mut groups: Vec<(Region, Vec<Vec<u8>>)> = Vec::new();
        for key in keys {
            let encoded = Key::from_raw(key);
            if let Some((region, keys)) = groups.last_mut()
                && region.contains(encoded.as_encoded())
            {
                keys.push(key.clone());
                continue;
            }
            if let Some((region, keys)) = groups.iter_mut().find(|(r, _)| r.contains(encoded.as_encoded())) {
                let _ = region;
                keys.push(key.clone());
                continue;
            }
            let (region, _) = self.locate(encoded.as_encoded()).await?;
            groups.push((region, vec![key.clone()]));
        }
        Ok(groups)
    }

    async fn commit_group(
        &self,
        keys: Vec<Vec<u8>>,
        start_ts: TimeStamp,
        commit_ts: TimeStamp,
    ) -> Result<(), MvccError> {
        let first = Key::from_raw(&keys[0]);
        self.at(first.as_encoded(), |target| async move {
            match target {
                Target::Local => self.local.kv_commit(keys, start_ts, commit_ts).await,
                Target::Remote(r) => r.0.commit(&r.1, keys, start_ts, commit_ts).await,
            }
        })
        .await
        .map(|_| ())
    }

    async fn rollback_group(&self, keys: Vec<Vec<u8>>, start_ts: TimeStamp) -> Result<(), MvccError> {
        let first = Key::from_raw(&keys[0]);
        self.at(first.as_encoded(), |target| async move {
            match target {
                Target::Local => self.local.kv_batch_rollback(keys, start_ts).await,
                Target::Remote(r) => r.0.batch_rollback(&r.1, keys, start_ts).await,
            }
        })
        .await
        .map(|_| ())
    }

    async fn resolve_group(
        &self,
        start_ts: TimeStamp,
        commit_ts: Option<TimeStamp>,
        keys: Vec<Vec<u8>>,
    ) -> Result<(), MvccError> {
        let first = Key::from_raw(keys.first().map_or(&[][..], Vec::as_slice));
        self.at(first.as_encoded(), |target| async move {
            match target {
                Target::Local => self.local.kv_resolve_lock(start_ts, commit_ts, keys).await,
                Target::Remote(r) => r.0.resolve_lock(&r.1, start_ts, commit_ts, keys).await,
            }
        })
        .await
        .map(|_| ())
    }

    async fn prewrite_group(
        &self,
        request: PrewriteRequest,
        one_pc: bool,
    ) -> Result<Option<TimeStamp>, Vec<MvccError>> {
        let first = Key::from_raw(&request.mutations[0].key);
        let (region, target) = self.locate(first.as_encoded()).await.map_err(|e| vec![e])?;
        let result = match target {
            Target::Local => self.local.kv_prewrite(request, one_pc).await,
            Target::Remote(r) => r.0.prewrite(&r.1, request, one_pc).await,
        };
        if let Err(errors) = &result {
            for e in errors {
                self.learn(&region, e);
            }
        }
        result
    }
}

/// The first error of several parallel calls, or success.
fn all_ok(results: Vec<Result<(), MvccError>>) -> Result<(), MvccError> {
    results.into_iter().collect()
}

/// Whether a prewrite error is final: not a lock to resolve or a region error to retry.
fn is_final(e: &MvccError) -> bool {
    match e {
        MvccError::KeyIsLocked(_) => false,
        MvccError::Region(r) => !r.is_retryable(),
        _ => true,
    }
}

impl<E: Engine, S: SchedulerApi> KvApi for Router<E, S> {
    async fn kv_get(&self, key: Vec<u8>, ts: TimeStamp) -> Result<Option<Vec<u8>>, MvccError> {
        let encoded = Key::from_raw(&key);
        self.at(encoded.as_encoded(), |target| async move {
            match target {
                Target::Local => self.local.kv_get(key, ts).await,
                Target::Remote(r) => r.0.get(&r.1, key, ts).await,
            }
        })
        .await
        .map(|(_, v)| v)
    }

    async fn kv_scan(
        &self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limits: ScanLimits,
        ts: TimeStamp,
    ) -> Result<ScanOutput, MvccError> {
        let mut out = ScanOutput::default();
        let mut from = start;
        loop {
            let share = ScanLimits {
                limit: limits.limit - out.entries.len(),
                examine: limits.examine - out.examined,
                ..limits
            };
            let (_, page) = {
                let from = from.clone();
                let end = end.clone();
                let encoded = Key::from_raw(&from);
                self.at(encoded.as_encoded(), |target| async move {
                    match target {
                        Target::Local => self.local.kv_scan(from, end, share, ts).await,
                        Target::Remote(r) => r.0.scan(&r.1, from, end, share, ts).await,
                    }
                })
                .await?
            };
            let locked = page.entries.iter().any(|(_, v)| v.is_err());
            out.entries.extend(page.entries);
            out.examined += page.examined;
            if page.resume.is_some() || locked {
                out.resume = page.resume;
                return Ok(out);
            }
            // Where the serving leader's region ended, as it says: the region we looked up may
            // have split since, and continuing from its old end would skip keys.
            let Some(next) = page.region_end else {
                return Ok(out);
            };
            if end.as_ref().is_some_and(|end| *end <= next) {
                return Ok(out);
            }
            if out.entries.len() >= limits.limit || out.examined >= limits.examine {
                out.resume = Some(next);
                return Ok(out);
            }
            from = next;
        }
    }

    async fn kv_prewrite(
        &self,
        request: PrewriteRequest,
        one_pc: bool,
    ) -> Result<Option<TimeStamp>, Vec<MvccError>> {
        let keys: Vec<Vec<u8>> = request.mutations.iter().map(|m| m.key.clone()).collect();
        let groups = self.group(&keys).await.map_err(|e| vec![e])?;
        if groups.len() <= 1 {
            return self.prewrite_group(request, one_pc).await;
        }
        // Several regions: two phases, the groups in parallel.
        let mut by_region: HashMap<u64, PrewriteRequest> = HashMap::new();
        let mut region_of_key = HashMap::new();
        for (region, keys) in &groups {
            for key in keys {
                region_of_key.insert(key.clone(), region.id);
            }
        }
        for mutation in &request.mutations {
            let region = region_of_key[&mutation.key];
            by_region
                .entry(region)
                .or_insert_with(|| PrewriteRequest {
                    mutations: Vec::new(),
                    primary: request.primary.clone(),
                    start_ts: request.start_ts,
                    lock_ttl_ms: request.lock_ttl_ms,
                })
                .mutations
                .push(mutation.clone());
        }
        let requests: Vec<PrewriteRequest> = by_region.into_values().collect();
        let results = join_all(requests.iter().cloned().map(|r| self.prewrite_group(r, false))).await;
        let mut errors = Vec::new();
        let mut succeeded = Vec::new();
        for (request, result) in requests.into_iter().zip(results) {
            match result {
                Ok(_) => succeeded.push(request),
                Err(e) => errors.extend(e),
            }
        }
        if errors.is_empty() {
            return Ok(None);
        }
        if errors.iter().any(is_final) {
            let start_ts = request.start_ts;
            let rollbacks = succeeded.into_iter().map(|r| {
                let keys = r.mutations.into_iter().map(|m| m.key).collect();
                self.rollback_group(keys, start_ts)
            });
            for result in join_all(rollbacks).await {
                if let Err(e) = result {
                    tracing::warn!(%start_ts, error = %e, "rolling back a failed prewrite; its locks will expire");
                }
            }
        }
        Err(errors)
    }

    async fn kv_commit(
        &self,
        keys: Vec<Vec<u8>>,
        start_ts: TimeStamp,
        commit_ts: TimeStamp,
    ) -> Result<(), MvccError> {
        let groups = self.group(&keys).await?;
        let calls = groups
            .into_iter()
            .map(|(_, keys)| self.commit_group(keys, start_ts, commit_ts));
        all_ok(join_all(calls).await)
    }

    async fn kv_batch_rollback(&self, keys: Vec<Vec<u8>>, start_ts: TimeStamp) -> Result<(), MvccError> {
        let groups = self.group(&keys).await?;
        let calls = groups
            .into_iter()
            .map(|(_, keys)| self.rollback_group(keys, start_ts));
        all_ok(join_all(calls).await)
    }

    async fn kv_check_txn_status(
        &self,
        primary: Vec<u8>,
        lock_ts: TimeStamp,
        current_ts: TimeStamp,
        rollback_if_not_exist: bool,
    ) -> Result<TxnStatus, MvccError> {
        let encoded = Key::from_raw(&primary);
        self.at(encoded.as_encoded(), |target| async move {
            match target {
                Target::Local => {
                    self.local
                        .kv_check_txn_status(primary, lock_ts, current_ts, rollback_if_not_exist)
                        .await
                }
                Target::Remote(r) => {
                    r.0.check_txn_status(&r.1, primary, lock_ts, current_ts, rollback_if_not_exist)
                        .await
                }
            }
        })
        .await
        .map(|(_, status)| status)
    }

    async fn kv_resolve_lock(
        &self,
        start_ts: TimeStamp,
        commit_ts: Option<TimeStamp>,
        keys: Vec<Vec<u8>>,
    ) -> Result<(), MvccError> {
        if keys.is_empty() {
            return self.resolve_group(start_ts, commit_ts, keys).await;
        }
        let groups = self.group(&keys).await?;
        let calls = groups
            .into_iter()
            .map(|(_, keys)| self.resolve_group(start_ts, commit_ts, keys));
        all_ok(join_all(calls).await)
    }

    async fn kv_scan_locks(
        &self,
        max_ts: TimeStamp,
        start: Vec<u8>,
        limit: usize,
    ) -> Result<Vec<LockInfo>, MvccError> {
        let mut out = Vec::new();
        let mut from = start;
        loop {
            let want = limit - out.len();
            let (region, locks) = {
                let from = from.clone();
                let encoded = Key::from_raw(&from);
                self.at(encoded.as_encoded(), |target| async move {
                    match target {
                        Target::Local => self.local.kv_scan_locks(max_ts, from, want).await,
                        Target::Remote(r) => r.0.scan_locks(&r.1, max_ts, from, want).await,
                    }
                })
                .await?
            };
            out.extend(locks);
            if out.len() >= limit || region.end_key.is_empty() {
                return Ok(out);
            }
            from = raw_of(&region.end_key)?;
        }
    }

    async fn kv_gc(
        &self,
        safe_point: TimeStamp,
        start: Option<Vec<u8>>,
        limit_keys: usize,
    ) -> Result<(usize, Option<Vec<u8>>), MvccError> {
        let at = start.clone().unwrap_or_default();
        let (region, (removed, next)) = self
            .at(&at, |target| async move {
                match target {
                    Target::Local => self.local.kv_gc(safe_point, start, limit_keys).await,
                    Target::Remote(r) => r.0.gc(&r.1, safe_point, start, limit_keys).await,
                }
            })
            .await?;
        // Past this region's end, the next region continues.
        let next = next.or_else(|| (!region.end_key.is_empty()).then(|| region.end_key.clone()));
        Ok((removed, next))
    }
}
