//! A single-node transactional store on one engine.
//!
//! User keys live as they are in the `default` column family. Transactions are optimistic:
//!
//! - `begin` reads the store's *commit version* (a counter of commit groups) as the
//!   transaction's start version, and only then takes an engine snapshot. A snapshot taken
//!   after reading the version may include more commits than the version says, never fewer;
//!   the only cost of that is a spurious conflict, never a missed one.
//! - `commit` sends the write set to the *committer*, one thread that owns every write. It
//!   drains whatever commits are waiting, rejects each one that writes a key committed after
//!   its start version (or written by an earlier commit in the same group), writes the rest as
//!   one synced batch, and only then bumps the commit version and records the new version of
//!   each written key. One fsync covers the whole group, which is what lets many concurrent
//!   clients commit durably at the rate of the disk's flushes rather than one each.
//!
//! The table of recent commit versions (`key -> version`) is pruned of entries no running
//! transaction could conflict with: those at or below the oldest running start version.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::{KvPair, Result, Transaction, TxnClient, TxnError};
use crate::storage::{Cf, Engine, IterOptions, Snapshot, WriteBatch, WriteOptions};

/// Most commits the committer folds into one batch.
const MAX_COMMITS_PER_GROUP: usize = 512;
/// The recent-commit table is pruned when it grows past this many keys.
const PRUNE_THRESHOLD_KEYS: usize = 16_384;

/// A client of the local store. Clones share it.
pub struct LocalTxnClient<E: Engine> {
    shared: Arc<Shared<E>>,
}

impl<E: Engine> Clone for LocalTxnClient<E> {
    fn clone(&self) -> Self {
        LocalTxnClient {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<E: Engine> {
    engine: E,
    /// Number of commit groups made visible so far. Invariant: every batch counted here is
    /// fully in the engine.
    commit_version: AtomicU64,
    /// Start versions of running transactions, with how many run at each.
    running: Mutex<BTreeMap<u64, usize>>,
    to_committer: mpsc::Sender<CommitterMsg>,
    committer: Mutex<Option<JoinHandle<()>>>,
}

enum CommitterMsg {
    Commit(CommitRequest),
    Stop,
}

struct CommitRequest {
    start_version: u64,
    writes: BTreeMap<Bytes, Option<Bytes>>,
    done: oneshot::Sender<Result<()>>,
}

impl<E: Engine + Clone> LocalTxnClient<E> {
    /// Starts the store on `engine`, with its committer thread.
    pub fn start(engine: E) -> Self {
        let (to_committer, inbox) = mpsc::channel();
        let shared = Arc::new(Shared {
            engine: engine.clone(),
            commit_version: AtomicU64::new(0),
            running: Mutex::new(BTreeMap::new()),
            to_committer,
            committer: Mutex::new(None),
        });
        let committer = Committer {
            shared: Arc::downgrade(&shared),
            engine,
            recent: HashMap::new(),
        };
        let handle = std::thread::Builder::new()
            .name("committer".into())
            .spawn(move || committer.run(inbox))
            .expect("spawning the committer thread");
        *shared.committer.lock() = Some(handle);
        LocalTxnClient { shared }
    }
}

impl<E: Engine> LocalTxnClient<E> {
    /// Finishes every commit already sent, stops the committer, and flushes the engine.
    /// Commits after this fail with [`TxnError::ShuttingDown`].
    pub fn shutdown(&self) -> Result<()> {
        let handle = self.shared.committer.lock().take();
        if let Some(handle) = handle {
            let _ = self.shared.to_committer.send(CommitterMsg::Stop);
            handle.join().expect("the committer thread panicked");
        }
        self.shared.engine.flush()?;
        Ok(())
    }

    /// The engine under the store (for tests and diagnostics).
    pub fn engine(&self) -> &E {
        &self.shared.engine
    }
}

impl<E: Engine> TxnClient for LocalTxnClient<E> {
    type Txn = LocalTxn<E>;

    async fn begin(&self) -> Result<LocalTxn<E>> {
        let start_version = {
            // Registering under the same lock the committer prunes under keeps it from
            // pruning a version this transaction still needs.
            let mut running = self.shared.running.lock();
            let version = self.shared.commit_version.load(Ordering::Acquire);
            *running.entry(version).or_insert(0) += 1;
            version
        };
        let snapshot = self.shared.engine.snapshot();
        Ok(LocalTxn {
            shared: self.shared.clone(),
            start_version,
            snapshot: Some(snapshot),
            writes: BTreeMap::new(),
        })
    }
}

/// A transaction of the local store.
pub struct LocalTxn<E: Engine> {
    shared: Arc<Shared<E>>,
    start_version: u64,
    /// Taken at `begin`; released as soon as the transaction stops reading (at commit).
    snapshot: Option<E::Snapshot>,
    /// Buffered writes: `Some(value)` puts, `None` deletes.
    writes: BTreeMap<Bytes, Option<Bytes>>,
}

impl<E: Engine> Drop for LocalTxn<E> {
    fn drop(&mut self) {
        let mut running = self.shared.running.lock();
        let count = running
            .get_mut(&self.start_version)
            .expect("a running transaction is registered");
        *count -= 1;
        if *count == 0 {
            running.remove(&self.start_version);
        }
    }
}

impl<E: Engine> LocalTxn<E> {
    fn snapshot(&self) -> &E::Snapshot {
        // Only `commit`, which consumes the transaction, releases the snapshot.
        self.snapshot
            .as_ref()
            .expect("a transaction reads only before it commits")
    }
}

impl<E: Engine> Transaction for LocalTxn<E> {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>> {
        if let Some(buffered) = self.writes.get(key) {
            return Ok(buffered.clone());
        }
        Ok(self.snapshot().get(Cf::Default, key)?.map(Bytes::from))
    }

    fn put(&mut self, key: Bytes, value: Bytes) {
        self.writes.insert(key, Some(value));
    }

    fn delete(&mut self, key: Bytes) {
        self.writes.insert(key, None);
    }

    async fn scan(&mut self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<KvPair>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let opts = IterOptions {
            lower: Some(start.to_vec()),
            upper: end.map(<[u8]>::to_vec),
            ..Default::default()
        };
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        let mut buffered = self
            .writes
            .range::<[u8], _>((Bound::Included(start), upper))
            .peekable();
        let mut stored = self.snapshot().iter(Cf::Default, opts).peekable();
        let mut out = Vec::with_capacity(limit.min(1024));
        // Merge the snapshot with the buffered writes; a buffered write shadows the stored key.
        while out.len() < limit {
            let take_buffered = match (stored.peek(), buffered.peek()) {
                (None, None) => break,
                (Some(Err(_)), _) => {
                    let Some(Err(e)) = stored.next() else {
                        unreachable!()
                    };
                    return Err(e.into());
                }
                (Some(Ok((stored_key, _))), Some((buffered_key, _))) => {
                    if stored_key.as_slice() == buffered_key.as_ref() {
                        stored.next();
                        true
                    } else {
                        buffered_key.as_ref() < stored_key.as_slice()
                    }
                }
                (None, Some(_)) => true,
                (Some(Ok(_)), None) => false,
            };
            if take_buffered {
                let (key, value) = buffered.next().expect("peeked");
                if let Some(value) = value {
                    out.push((key.clone(), value.clone()));
                }
            } else {
                let (key, value) = stored.next().expect("peeked")?;
                out.push((Bytes::from(key), Bytes::from(value)));
            }
        }
        Ok(out)
    }

    async fn commit(mut self) -> Result<()> {
        // Holding the snapshot through the wait would pin old data for nothing.
        self.snapshot = None;
        if self.writes.is_empty() {
            return Ok(());
        }
        let (done, outcome) = oneshot::channel();
        let request = CommitRequest {
            start_version: self.start_version,
            writes: std::mem::take(&mut self.writes),
            done,
        };
        self.shared
            .to_committer
            .send(CommitterMsg::Commit(request))
            .map_err(|_| TxnError::ShuttingDown)?;
        outcome.await.map_err(|_| TxnError::ShuttingDown)?
    }
}

/// The one thread that writes. See the module docs.
struct Committer<E: Engine> {
    /// Weak, so that the store's last client going away ends the thread.
    shared: std::sync::Weak<Shared<E>>,
    engine: E,
    /// The commit version of the last commit of each recently written key.
    recent: HashMap<Bytes, u64>,
}

impl<E: Engine> Committer<E> {
    fn run(mut self, inbox: mpsc::Receiver<CommitterMsg>) {
        let mut stopping = false;
        while !stopping {
            let Ok(first) = inbox.recv() else { return };
            let mut group = Vec::new();
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    CommitterMsg::Commit(request) => group.push(request),
                    CommitterMsg::Stop => stopping = true,
                }
                if group.len() < MAX_COMMITS_PER_GROUP {
                    next = inbox.try_recv().ok();
                }
            }
            if !group.is_empty() {
                self.commit_group(group);
            }
        }
    }

    fn commit_group(&mut self, group: Vec<CommitRequest>) {
        let mut batch = WriteBatch::new();
        let mut written: HashSet<Bytes> = HashSet::new();
        let mut accepted = Vec::with_capacity(group.len());
        // Rejections are sent after the group is written, so that a rejected transaction
        // that starts over sees the commit it lost to.
        let mut rejected = Vec::new();
        for request in group {
            match self.find_conflict(&request, &written) {
                Some(conflict) => rejected.push((request.done, conflict)),
                None => {
                    for (key, value) in &request.writes {
                        match value {
                            Some(value) => batch.put(Cf::Default, key.as_ref(), value.as_ref()),
                            None => batch.delete(Cf::Default, key.as_ref()),
                        }
                        written.insert(key.clone());
                    }
                    accepted.push(request.done);
                }
            }
        }
        if !accepted.is_empty() {
            self.write_group(&batch, written, accepted);
        }
        for (done, conflict) in rejected {
            let _ = done.send(Err(conflict));
        }
    }

    fn write_group(
        &mut self,
        batch: &WriteBatch,
        written: HashSet<Bytes>,
        accepted: Vec<oneshot::Sender<Result<()>>>,
    ) {
        if let Err(e) = self.engine.write(batch, WriteOptions::SYNC) {
            tracing::error!(error = %e, "commit batch failed; its transactions are not committed");
            for done in accepted {
                let _ = done.send(Err(TxnError::CommitFailed(e.to_string())));
            }
            return;
        }
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        // The batch is in the engine before the version that announces it.
        let version = shared.commit_version.fetch_add(1, Ordering::AcqRel) + 1;
        for key in written {
            self.recent.insert(key, version);
        }
        for done in accepted {
            let _ = done.send(Ok(()));
        }
        if self.recent.len() > PRUNE_THRESHOLD_KEYS {
            let horizon = {
                let running = shared.running.lock();
                let current = shared.commit_version.load(Ordering::Acquire);
                running
                    .keys()
                    .next()
                    .map_or(current, |&oldest| oldest.min(current))
            };
            self.recent.retain(|_, &mut v| v > horizon);
        }
    }

    fn find_conflict(&self, request: &CommitRequest, written_in_group: &HashSet<Bytes>) -> Option<TxnError> {
        request.writes.keys().find_map(|key| {
            let conflict_version = if written_in_group.contains(key) {
                // Committed earlier in this very group, so after this transaction began.
                Some(u64::MAX)
            } else {
                self.recent
                    .get(key)
                    .copied()
                    .filter(|&v| v > request.start_version)
            };
            conflict_version.map(|conflict_version| TxnError::WriteConflict {
                key: key.clone(),
                start_version: request.start_version,
                conflict_version,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryEngine;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    async fn put_committed(client: &LocalTxnClient<MemoryEngine>, key: &str, value: &str) {
        let mut txn = client.begin().await.unwrap();
        txn.put(b(key), b(value));
        txn.commit().await.unwrap();
    }

    #[tokio::test]
    async fn reads_see_committed_writes_and_own_writes() {
        let client = LocalTxnClient::start(MemoryEngine::new());
        put_committed(&client, "a", "1").await;
        let mut txn = client.begin().await.unwrap();
        assert_eq!(txn.get(b"a").await.unwrap(), Some(b("1")));
        txn.put(b("a"), b("2"));
        txn.delete(b("b"));
        assert_eq!(txn.get(b"a").await.unwrap(), Some(b("2")));
        assert_eq!(txn.get(b"b").await.unwrap(), None);
        txn.commit().await.unwrap();
        let mut txn = client.begin().await.unwrap();
        assert_eq!(txn.get(b"a").await.unwrap(), Some(b("2")));
    }

    #[tokio::test]
    async fn snapshot_does_not_see_later_commits() {
        let client = LocalTxnClient::start(MemoryEngine::new());
        put_committed(&client, "a", "1").await;
        let mut reader = client.begin().await.unwrap();
        put_committed(&client, "a", "2").await;
        assert_eq!(reader.get(b"a").await.unwrap(), Some(b("1")));
    }

    #[tokio::test]
    async fn first_committer_wins_on_the_same_key() {
        let client = LocalTxnClient::start(MemoryEngine::new());
        let mut first = client.begin().await.unwrap();
        let mut second = client.begin().await.unwrap();
        first.put(b("k"), b("first"));
        second.put(b("k"), b("second"));
        first.commit().await.unwrap();
        let err = second.commit().await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        let mut txn = client.begin().await.unwrap();
        assert_eq!(txn.get(b"k").await.unwrap(), Some(b("first")));
    }

    #[tokio::test]
    async fn disjoint_writers_and_readers_do_not_conflict() {
        let client = LocalTxnClient::start(MemoryEngine::new());
        let mut one = client.begin().await.unwrap();
        let mut two = client.begin().await.unwrap();
        let mut reader = client.begin().await.unwrap();
        one.put(b("x"), b("1"));
        two.put(b("y"), b("2"));
        reader.get(b"x").await.unwrap();
        one.commit().await.unwrap();
        two.commit().await.unwrap();
        reader.commit().await.unwrap();
    }

    #[tokio::test]
    async fn scan_merges_buffered_writes_in_order() {
        let client = LocalTxnClient::start(MemoryEngine::new());
        for (k, v) in [("a", "1"), ("c", "3"), ("e", "5")] {
            put_committed(&client, k, v).await;
        }
        let mut txn = client.begin().await.unwrap();
        txn.put(b("b"), b("2"));
        txn.put(b("c"), b("33"));
        txn.delete(b("e"));
        txn.put(b("f"), b("6"));
        let all = txn.scan(b"", None, 100).await.unwrap();
        let expect: Vec<KvPair> = [("a", "1"), ("b", "2"), ("c", "33"), ("f", "6")]
            .iter()
            .map(|(k, v)| (b(k), b(v)))
            .collect();
        assert_eq!(all, expect);
        assert_eq!(
            txn.scan(b"b", Some(b"f"), 100).await.unwrap(),
            expect[1..3].to_vec()
        );
        assert_eq!(txn.scan(b"", None, 2).await.unwrap(), expect[..2].to_vec());
        assert!(txn.scan(b"", None, 0).await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_read_modify_write_with_retry_loses_no_update() {
        let client = LocalTxnClient::start(MemoryEngine::new());
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let mut conflicts = 0;
                for _ in 0..100 {
                    loop {
                        let mut txn = client.begin().await.unwrap();
                        let n: u64 = match txn.get(b"n").await.unwrap() {
                            Some(v) => std::str::from_utf8(&v).unwrap().parse().unwrap(),
                            None => 0,
                        };
                        txn.put(b("n"), Bytes::from((n + 1).to_string()));
                        match txn.commit().await {
                            Ok(()) => break,
                            Err(e) if e.is_retryable() => conflicts += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                conflicts
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let mut txn = client.begin().await.unwrap();
        assert_eq!(txn.get(b"n").await.unwrap(), Some(b("800")));
    }

    #[tokio::test]
    async fn prune_keeps_what_a_running_transaction_needs() {
        let client = LocalTxnClient::start(MemoryEngine::new());
        let mut old = client.begin().await.unwrap();
        put_committed(&client, "hot", "1").await;
        // Enough other commits to trigger pruning several times over.
        for i in 0..(PRUNE_THRESHOLD_KEYS + 100) {
            let mut txn = client.begin().await.unwrap();
            txn.put(Bytes::from(format!("k{i}")), b("v"));
            txn.commit().await.unwrap();
        }
        old.put(b("hot"), b("stale"));
        assert!(old.commit().await.unwrap_err().is_retryable());
    }

    #[tokio::test]
    async fn commits_after_shutdown_fail_cleanly() {
        let client = LocalTxnClient::start(MemoryEngine::new());
        put_committed(&client, "a", "1").await;
        client.shutdown().unwrap();
        let mut txn = client.begin().await.unwrap();
        assert_eq!(txn.get(b"a").await.unwrap(), Some(b("1")));
        txn.put(b("a"), b("2"));
        assert!(matches!(txn.commit().await, Err(TxnError::ShuttingDown)));
    }
}
