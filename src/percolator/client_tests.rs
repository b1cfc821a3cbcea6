//! The transaction client against a cluster of one: commit paths, crash recovery through
//! readers, scans, garbage collection.

use super::*;
use crate::percolator::server::{TxnServer, test_server};
use crate::raftstore::driver::StoreDriver;
use crate::scheduler::tso::{EngineTsoStore, Tso, system_clock};
use crate::storage::MemoryEngine;

type Server = TxnServer<MemoryEngine>;

/// A client, its server and oracle, on a cluster of one (kept running by the driver).
struct Setup(
    PercolatorClient<Server>,
    Arc<Server>,
    TsoClient,
    StoreDriver<MemoryEngine>,
);

fn setup(config: ClientConfig) -> Setup {
    let engine = MemoryEngine::new();
    let tso = Arc::new(Tso::open(EngineTsoStore(engine.clone()), system_clock(), 3_000).unwrap());
    let tso = TsoClient::start(tso);
    let (server, driver) = test_server(engine, tso.clone());
    Setup(
        PercolatorClient::new(server.clone(), tso.clone(), config),
        server,
        tso,
        driver,
    )
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn put(client: &PercolatorClient<Server>, pairs: &[(&str, &str)]) {
    let mut txn = client.begin().await.unwrap();
    for (k, v) in pairs {
        txn.put(b(k), b(v));
    }
    txn.commit().await.unwrap();
}

async fn read(client: &PercolatorClient<Server>, key: &str) -> Option<Bytes> {
    client.begin().await.unwrap().get(key.as_bytes()).await.unwrap()
}

/// Prewrites `pairs` as a transaction would, then "crashes": returns its start_ts.
async fn prewrite_only(server: &Server, tso: &TsoClient, pairs: &[(&str, &str)], ttl_ms: u64) -> TimeStamp {
    let start_ts = tso.get_timestamp().await.unwrap();
    let request = PrewriteRequest {
        mutations: pairs
            .iter()
            .map(|(k, v)| Mutation::put(k.as_bytes(), v.as_bytes()))
            .collect(),
        primary: pairs[0].0.as_bytes().to_vec(),
        start_ts,
        lock_ttl_ms: ttl_ms,
    };
    server.kv_prewrite(request, false).await.unwrap();
    start_ts
}

#[test]
fn large_transactions_get_longer_lock_ttls() {
    assert_eq!(lock_ttl_ms(3_000, 1), 3_001);
    assert_eq!(lock_ttl_ms(3_000, 100_000), 103_000);
    assert_eq!(lock_ttl_ms(u64::MAX, 5), u64::MAX);
}

#[tokio::test]
async fn both_commit_paths_write_and_read_back() {
    for max_one_pc_keys in [0, 100] {
        let Setup(client, _, _, _driver) = setup(ClientConfig {
            max_one_pc_keys,
            ..ClientConfig::default()
        });
        put(&client, &[("a", "1"), ("b", "2"), ("c", "3")]).await;
        let mut txn = client.begin().await.unwrap();
        txn.delete(b("b"));
        txn.put(b("d"), b("4"));
        txn.commit().await.unwrap();
        let mut txn = client.begin().await.unwrap();
        let all = txn.scan(b"", None, 10).await.unwrap();
        let keys: Vec<&[u8]> = all.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(
            keys,
            vec![&b"a"[..], b"c", b"d"],
            "one_pc limit {max_one_pc_keys}"
        );
    }
}

#[tokio::test]
async fn scan_pages_merge_the_transactions_own_writes_up_to_where_they_stop() {
    let Setup(client, _, _, _driver) = setup(ClientConfig::default());
    put(
        &client,
        &[("a", "1"), ("b", "2"), ("c", "3"), ("e", "5"), ("f", "6")],
    )
    .await;
    let mut txn = client.begin().await.unwrap();
    txn.delete(b("b"));
    txn.put(b("d"), Bytes::from(vec![b'x'; 40]));
    txn.put(b("g"), b("7"));
    let limits = ScanLimits {
        limit: 2,
        examine: usize::MAX,
        value_head: Some(4),
    };
    let mut pages = Vec::new();
    let mut from = Bytes::new();
    loop {
        let page = txn.scan_page(&from, None, limits).await.unwrap();
        pages.push(page.pairs.clone());
        match page.resume {
            Some(resume) => from = resume,
            None => break,
        }
    }
    let pair = |k: &str, v: &str| (b(k), b(v));
    assert_eq!(
        pages,
        vec![
            vec![pair("a", "1"), pair("c", "3")],
            vec![pair("d", "xxxx"), pair("e", "5")],
            vec![pair("f", "6"), pair("g", "7")],
        ]
    );
    // Bounded by the keys looked at: the buffered delete of "b" does not count, the stored
    // "b" it hides does.
    let examine_two = ScanLimits {
        limit: 10,
        examine: 2,
        value_head: None,
    };
    let page = txn.scan_page(b"", None, examine_two).await.unwrap();
    assert_eq!(page.pairs, vec![pair("a", "1")]);
    assert_eq!(page.resume, Some(b("c")));
}

#[tokio::test]
async fn a_crash_after_prewrite_is_rolled_back_by_a_reader_once_the_lock_expires() {
    let Setup(client, server, tso, _driver) = setup(ClientConfig::default());
    put(&client, &[("p", "old-p"), ("s", "old-s")]).await;
    prewrite_only(&server, &tso, &[("p", "new-p"), ("s", "new-s")], 50).await;
    // The reader meets the secondary's lock, waits out the TTL, rolls the primary back,
    // and then cleans the lock it met.
    assert_eq!(read(&client, "s").await, Some(b("old-s")));
    assert_eq!(read(&client, "p").await, Some(b("old-p")));
    // Writers are not blocked any more either.
    put(&client, &[("p", "next")]).await;
    assert_eq!(read(&client, "p").await, Some(b("next")));
}

#[tokio::test]
async fn a_crash_after_the_primary_commit_is_completed_by_a_reader() {
    let Setup(client, server, tso, _driver) = setup(ClientConfig::default());
    let start_ts = prewrite_only(&server, &tso, &[("p", "new-p"), ("s", "new-s")], 60_000).await;
    let commit_ts = tso.get_timestamp().await.unwrap();
    server
        .kv_commit(vec![b"p".to_vec()], start_ts, commit_ts)
        .await
        .unwrap();
    // The secondary still holds its lock; a reader resolves it as committed at once
    // (no waiting for the long TTL).
    let began = Instant::now();
    assert_eq!(read(&client, "s").await, Some(b("new-s")));
    assert!(began.elapsed() < Duration::from_secs(5));
    let mut txn = client.begin().await.unwrap();
    let all = txn.scan(b"", None, 10).await.unwrap();
    assert_eq!(all, vec![(b("p"), b("new-p")), (b("s"), b("new-s"))]);
}

#[tokio::test]
async fn a_one_phase_request_naming_a_key_twice_commits_the_last_mutation() {
    let Setup(client, server, tso, _driver) = setup(ClientConfig::default());
    let start_ts = tso.get_timestamp().await.unwrap();
    let request = PrewriteRequest {
        mutations: vec![
            Mutation::put(&b"k"[..], &b"first"[..]),
            Mutation::put(&b"k"[..], &b"last"[..]),
        ],
        primary: b"k".to_vec(),
        start_ts,
        lock_ttl_ms: 1_000,
    };
    assert!(server.kv_prewrite(request, true).await.unwrap().is_some());
    assert_eq!(read(&client, "k").await, Some(b("last")));
}

/// A GC round whose age limit is past everything written so far (timestamps share a
/// millisecond, so wait for the next one).
async fn gc_now(client: &PercolatorClient<Server>) -> super::GcReport {
    tokio::time::sleep(Duration::from_millis(3)).await;
    client.gc(0).await.unwrap()
}

fn versions(server: &Server, key: &str) -> usize {
    let encoded = crate::percolator::key::Key::from_raw(key.as_bytes());
    crate::percolator::gc::version_count(&crate::storage::Engine::snapshot(server.engine()), &encoded)
        .unwrap()
}

#[tokio::test]
async fn gc_drops_old_versions_but_not_what_a_running_transaction_reads() {
    let Setup(client, server, tso, _driver) = setup(ClientConfig::default());
    for i in 0..5 {
        put(&client, &[("k", &i.to_string())]).await;
    }
    // The reader starts strictly after "4" committed (a one-phase commit picks its own
    // timestamp, which may otherwise be the oracle's next: the reader's start, and the safe
    // point would then keep "3" too).
    tso.get_timestamp().await.unwrap();
    let mut reader = client.begin().await.unwrap();
    for i in 5..10 {
        put(&client, &[("k", &i.to_string())]).await;
    }
    assert_eq!(versions(&server, "k"), 10);
    // The running reader holds the safe point below its start: only what it cannot see
    // goes (versions 0..=3), and it still reads "4".
    let report = gc_now(&client).await;
    assert_eq!(report.versions_removed, 4);
    assert_eq!(reader.get(b"k").await.unwrap(), Some(b("4")));
    drop(reader);
    let report = gc_now(&client).await;
    assert_eq!(report.versions_removed, 5);
    assert_eq!(versions(&server, "k"), 1);
    assert_eq!(read(&client, "k").await, Some(b("9")));
}

#[tokio::test]
async fn gc_settles_old_locks_through_their_primary_before_collecting() {
    let Setup(client, server, tso, _driver) = setup(ClientConfig::default());
    // A transaction committed its primary and died before its secondary.
    let start_ts = prewrite_only(&server, &tso, &[("p", "new-p"), ("s", "new-s")], 1).await;
    let commit_ts = tso.get_timestamp().await.unwrap();
    server
        .kv_commit(vec![b"p".to_vec()], start_ts, commit_ts)
        .await
        .unwrap();
    // Later writes bury the primary's commit record under newer versions.
    for i in 0..3 {
        put(&client, &[("p", &i.to_string())]).await;
    }
    let report = gc_now(&client).await;
    assert_eq!(report.locks_resolved, 1);
    // The secondary was committed (not rolled back) before its evidence was collected.
    assert_eq!(read(&client, "s").await, Some(b("new-s")));
    assert_eq!(versions(&server, "p"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_running_alongside_writers_and_readers_changes_nothing_they_see() {
    let Setup(client, server, _, _driver) = setup(ClientConfig::default());
    put(&client, &[("n", "0")]).await;
    let writer = {
        let client = client.clone();
        tokio::spawn(async move {
            for i in 1..=200u64 {
                let mut txn = client.begin().await.unwrap();
                let current = txn.get(b"n").await.unwrap().unwrap();
                let current: u64 = std::str::from_utf8(&current).unwrap().parse().unwrap();
                assert_eq!(current, i - 1);
                txn.put(b("n"), Bytes::from(i.to_string()));
                txn.commit().await.unwrap();
            }
        })
    };
    let collector = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut removed = 0;
            for _ in 0..20 {
                removed += gc_now(&client).await.versions_removed;
            }
            removed
        })
    };
    let mut last = 0;
    while last < 200 {
        let value: u64 = std::str::from_utf8(&read(&client, "n").await.unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert!(value >= last);
        last = value;
    }
    writer.await.unwrap();
    collector.await.unwrap();
    gc_now(&client).await;
    assert_eq!(versions(&server, "n"), 1);
    assert_eq!(read(&client, "n").await, Some(b("200")));
}

#[tokio::test]
async fn a_live_lock_makes_a_reader_time_out_rather_than_guess() {
    let Setup(client, server, tso, _driver) = setup(ClientConfig {
        lock_wait_budget_ms: 100,
        ..ClientConfig::default()
    });
    prewrite_only(&server, &tso, &[("k", "v")], 60_000).await;
    let mut txn = client.begin().await.unwrap();
    assert!(matches!(txn.get(b"k").await, Err(TxnError::LockTimeout { .. })));
}

#[tokio::test]
async fn first_committer_wins() {
    let Setup(client, _, _, _driver) = setup(ClientConfig::default());
    let mut first = client.begin().await.unwrap();
    let mut second = client.begin().await.unwrap();
    first.put(b("k"), b("first"));
    second.put(b("k"), b("second"));
    first.commit().await.unwrap();
    let err = second.commit().await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(read(&client, "k").await, Some(b("first")));
}

/// Snapshot isolation allows write skew: two transactions each read both keys and write a
/// different one. Watching what you read turns it into a conflict.
#[tokio::test]
async fn write_skew_is_allowed_without_watch_and_prevented_with_it() {
    for watch in [false, true] {
        let Setup(client, _, _, _driver) = setup(ClientConfig::default());
        put(&client, &[("x", "1"), ("y", "1")]).await;
        let since = client.timestamp().await.unwrap();
        let mut t1 = client.begin().await.unwrap();
        let mut t2 = client.begin().await.unwrap();
        for txn in [&mut t1, &mut t2] {
            assert_eq!(txn.get(b"x").await.unwrap(), Some(b("1")));
            assert_eq!(txn.get(b"y").await.unwrap(), Some(b("1")));
            if watch {
                txn.watch(b("x"), since);
                txn.watch(b("y"), since);
            }
        }
        t1.put(b("x"), b("0"));
        t2.put(b("y"), b("0"));
        t1.commit().await.unwrap();
        let second = t2.commit().await;
        if watch {
            assert!(
                matches!(second, Err(TxnError::WatchedKeyChanged { .. })),
                "{second:?}"
            );
        } else {
            second.unwrap();
            assert_eq!(read(&client, "x").await, Some(b("0")));
            assert_eq!(read(&client, "y").await, Some(b("0")));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_never_miss_a_one_phase_commit_below_their_timestamp() {
    let Setup(client, _, _, _driver) = setup(ClientConfig::default());
    put(&client, &[("k", "0")]).await;
    let writer = {
        let client = client.clone();
        tokio::spawn(async move {
            for i in 1..=300 {
                put(&client, &[("k", &i.to_string())]).await;
            }
        })
    };
    // A reader's value never goes backwards: each read's timestamp is later than the
    // previous one's, so it must see at least what the previous read saw.
    let mut last = 0;
    while last < 300 {
        let value: u64 = std::str::from_utf8(&read(&client, "k").await.unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert!(value >= last, "read {value} after {last}");
        last = value;
    }
    writer.await.unwrap();
}

/// A server that counts what its scans return.
struct CountingScans {
    server: Arc<Server>,
    scans: std::sync::atomic::AtomicUsize,
    entries: std::sync::atomic::AtomicUsize,
}

impl CountingScans {
    /// (scans, stored entries returned) since the last call.
    fn take(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.scans.swap(0, Relaxed), self.entries.swap(0, Relaxed))
    }
}

impl KvApi for CountingScans {
    async fn kv_get(&self, key: Vec<u8>, ts: TimeStamp) -> std::result::Result<Option<Vec<u8>>, MvccError> {
        self.server.kv_get(key, ts).await
    }
    async fn kv_scan(
        &self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limits: ScanLimits,
        ts: TimeStamp,
    ) -> std::result::Result<crate::percolator::commands::ScanOutput, MvccError> {
        use std::sync::atomic::Ordering::Relaxed;
        let output = self.server.kv_scan(start, end, limits, ts).await?;
        self.scans.fetch_add(1, Relaxed);
        self.entries.fetch_add(output.entries.len(), Relaxed);
        Ok(output)
    }
    async fn kv_prewrite(
        &self,
        request: PrewriteRequest,
        one_pc: bool,
    ) -> std::result::Result<Option<TimeStamp>, Vec<MvccError>> {
        self.server.kv_prewrite(request, one_pc).await
    }
    async fn kv_commit(
        &self,
        keys: Vec<Vec<u8>>,
        start_ts: TimeStamp,
        commit_ts: TimeStamp,
    ) -> std::result::Result<(), MvccError> {
        self.server.kv_commit(keys, start_ts, commit_ts).await
    }
    async fn kv_batch_rollback(
        &self,
        keys: Vec<Vec<u8>>,
        start_ts: TimeStamp,
    ) -> std::result::Result<(), MvccError> {
        self.server.kv_batch_rollback(keys, start_ts).await
    }
    async fn kv_check_txn_status(
        &self,
        primary: Vec<u8>,
        lock_ts: TimeStamp,
        current_ts: TimeStamp,
        rollback_if_not_exist: bool,
    ) -> std::result::Result<TxnStatus, MvccError> {
        self.server
            .kv_check_txn_status(primary, lock_ts, current_ts, rollback_if_not_exist)
            .await
    }
    async fn kv_resolve_lock(
        &self,
        start_ts: TimeStamp,
        commit_ts: Option<TimeStamp>,
        keys: Vec<Vec<u8>>,
    ) -> std::result::Result<(), MvccError> {
        self.server.kv_resolve_lock(start_ts, commit_ts, keys).await
    }
    async fn kv_scan_locks(
        &self,
        max_ts: TimeStamp,
        start: Vec<u8>,
        limit: usize,
    ) -> std::result::Result<Vec<LockInfo>, MvccError> {
        self.server.kv_scan_locks(max_ts, start, limit).await
    }
    async fn kv_gc(
        &self,
        safe_point: TimeStamp,
        start: Option<Vec<u8>>,
        limit_keys: usize,
    ) -> std::result::Result<(usize, Option<Vec<u8>>), MvccError> {
        self.server.kv_gc(safe_point, start, limit_keys).await
    }
}

/// A transaction's own buffered deletes cost stored reads only where its scan meets them:
/// after deleting the back half of 200 keys, a scan for the first key from the middle reads
/// one stored key, not the hundred deleted behind it (a transaction taking element after
/// element, as batched `SPOP`s do, would otherwise read quadratically); and a scan that starts
/// among the deletes reads on, twice as far each time, in a few rounds.
#[tokio::test]
async fn a_scan_reads_past_buffered_deletes_only_as_far_as_it_must() {
    let Setup(client, server, tso, _driver) = setup(ClientConfig::default());
    let keys: Vec<String> = (0..200).map(|i| format!("k{i:03}")).collect();
    let pairs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "v")).collect();
    put(&client, &pairs).await;
    let counting = Arc::new(CountingScans {
        server,
        scans: Default::default(),
        entries: Default::default(),
    });
    let client = PercolatorClient::new(counting.clone(), tso, ClientConfig::default());

    let mut txn = client.begin().await.unwrap();
    for key in &keys[100..] {
        txn.delete(b(key));
    }
    let found = txn.scan(b"k050", None, 1).await.unwrap();
    assert_eq!(found, vec![(b("k050"), b("v"))]);
    assert_eq!(counting.take(), (1, 1), "one scan, one stored key");

    for key in &keys[..100] {
        txn.delete(b(key));
    }
    txn.put(b("k150"), b("back"));
    let found = txn.scan(b"", None, 1).await.unwrap();
    assert_eq!(found, vec![(b("k150"), b("back"))]);
    let (scans, entries) = counting.take();
    assert!(scans <= 9, "{scans} scans");
    assert!(
        entries <= 2 * 151,
        "{entries} stored keys read to pass 150 deletes"
    );
}
