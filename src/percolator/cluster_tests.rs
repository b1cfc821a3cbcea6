//! Transactions on a three-store cluster (the raftstore's in-process harness) while
//! leadership moves: a transaction server on every store, clients sent to whichever store
//! leads.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use super::actions::TxnStatus;
use super::client::{ClientConfig, PercolatorClient};
use super::commands::{PrewriteRequest, ScanOutput};
use super::records::LockInfo;
use super::server::{KvApi, TxnServer};
use super::{Commit, MvccError, ScanLimits, Transaction, TxnClient, TxnError};
use crate::raftstore::cluster_tests::Cluster;
use crate::raftstore::peer::PeerOptions;
use crate::scheduler::tso::{EngineTsoStore, TimeStamp, Tso, TsoClient, system_clock};
use crate::storage::{CrashableEngine, MemoryEngine};

const REGION: u64 = 1;

/// Sends every command to the store whose peer leads region 1 now (any store while none
/// does): the stores' own errors send the client back here.
struct AtLeader {
    servers: HashMap<u64, Arc<TxnServer<CrashableEngine>>>,
}

impl AtLeader {
    fn pick(&self) -> &Arc<TxnServer<CrashableEngine>> {
        self.servers
            .values()
            .find(|s| s.store().region_by_id(REGION).is_some_and(|v| v.is_leader))
            .unwrap_or_else(|| self.servers.values().next().expect("a server"))
    }
}

impl KvApi for AtLeader {
    async fn kv_get(&self, key: Vec<u8>, ts: TimeStamp) -> Result<Option<Vec<u8>>, MvccError> {
        self.pick().kv_get(key, ts).await
    }
    async fn kv_scan(
        &self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limits: ScanLimits,
        ts: TimeStamp,
    ) -> Result<ScanOutput, MvccError> {
        self.pick().kv_scan(start, end, limits, ts).await
    }
    async fn kv_prewrite(
        &self,
        request: PrewriteRequest,
        one_pc: bool,
    ) -> Result<Option<TimeStamp>, Vec<MvccError>> {
        self.pick().kv_prewrite(request, one_pc).await
    }
    async fn kv_commit(
        &self,
        keys: Vec<Vec<u8>>,
        start_ts: TimeStamp,
        commit_ts: TimeStamp,
    ) -> Result<(), MvccError> {
        self.pick().kv_commit(keys, start_ts, commit_ts).await
    }
    async fn kv_batch_rollback(&self, keys: Vec<Vec<u8>>, start_ts: TimeStamp) -> Result<(), MvccError> {
        self.pick().kv_batch_rollback(keys, start_ts).await
    }
    async fn kv_check_txn_status(
        &self,
        primary: Vec<u8>,
        lock_ts: TimeStamp,
        current_ts: TimeStamp,
        rollback_if_not_exist: bool,
    ) -> Result<TxnStatus, MvccError> {
        self.pick()
            .kv_check_txn_status(primary, lock_ts, current_ts, rollback_if_not_exist)
            .await
    }
    async fn kv_resolve_lock(
        &self,
        start_ts: TimeStamp,
        commit_ts: Option<TimeStamp>,
        keys: Vec<Vec<u8>>,
    ) -> Result<(), MvccError> {
        self.pick().kv_resolve_lock(start_ts, commit_ts, keys).await
    }
    async fn kv_scan_locks(
        &self,
        max_ts: TimeStamp,
        start: Vec<u8>,
        limit: usize,
    ) -> Result<Vec<LockInfo>, MvccError> {
        self.pick().kv_scan_locks(max_ts, start, limit).await
    }
    async fn kv_gc(
        &self,
        safe_point: TimeStamp,
        start: Option<Vec<u8>>,
        limit_keys: usize,
    ) -> Result<(usize, Option<Vec<u8>>), MvccError> {
        self.pick().kv_gc(safe_point, start, limit_keys).await
    }
}

async fn read_counter(client: &PercolatorClient<AtLeader>) -> Result<u64, TxnError> {
    let mut txn = client.begin().await?;
    let value = txn.get(b"counter").await?;
    Ok(value.map_or(0, |v| std::str::from_utf8(&v).unwrap().parse().unwrap()))
}

/// Concurrent one-phase `INCR`s (read, add one, commit) and reads while leadership of the
/// region moves between the stores every few milliseconds: the in-memory locks of one-phase
/// commit live with the leader, so a new leader must not serve what an old one may still be
/// committing. No increment acknowledged is lost, none is applied twice, and no read ever
/// sees the counter go back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_transfers_during_one_phase_increments_lose_nothing_and_reads_never_go_back() {
    let cluster = Cluster::new(3, 42, PeerOptions::default());
    let tso = Tso::open(EngineTsoStore(MemoryEngine::new()), system_clock(), 3_000).unwrap();
    let tso = TsoClient::start(tso);
    let servers: HashMap<u64, Arc<TxnServer<CrashableEngine>>> = (1..=3)
        .map(|store_id| {
            let handle = cluster.handle(store_id).expect("store running");
            (store_id, Arc::new(TxnServer::new(handle, tso.clone())))
        })
        .collect();
    let client = PercolatorClient::new(Arc::new(AtLeader { servers }), tso, ClientConfig::default());

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let unknown = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (client, acked, unknown) = (client.clone(), acked.clone(), unknown.clone());
            tokio::spawn(async move {
                for _ in 0..100 {
                    loop {
                        let mut txn = client.begin().await.unwrap();
                        let value = match txn.get(b"counter").await {
                            Ok(v) => v.map_or(0u64, |v| std::str::from_utf8(&v).unwrap().parse().unwrap()),
                            Err(_) => continue,
                        };
                        txn.put(
                            Bytes::from_static(b"counter"),
                            Bytes::from((value + 1).to_string()),
                        );
                        match txn.commit().await {
                            Ok(()) => {
                                acked.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Err(TxnError::Undetermined) => {
                                unknown.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            // Conflicts, aborts and an unavailable leader: try again.
                            Err(_) => continue,
                        }
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let mut last = 0;
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(value) = read_counter(&client).await {
                        assert!(value >= last, "a read went back from {last} to {value}");
                        last = value;
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect();
    let transfers = {
        let handles: Vec<_> = (1..=3).map(|s| cluster.handle(s).unwrap()).collect();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut moves = 0u64;
            let mut target = 1u64;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(30)).await;
                target = target % 3 + 1;
                // Peer ids equal store ids in the harness's region.
                for handle in &handles {
                    let _ = handle.transfer_leader(REGION, target);
                }
                moves += 1;
            }
            moves
        })
    };
    for writer in writers {
        writer.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let moves = transfers.await.unwrap();
    for reader in readers {
        assert!(reader.await.unwrap() > 0, "a reader never read");
    }
    let acked = acked.load(Ordering::Relaxed);
    let unknown = unknown.load(Ordering::Relaxed);
    let total = loop {
        if let Ok(total) = read_counter(&client).await {
            break total;
        }
    };
    let term = (1..=3)
        .filter_map(|s| cluster.handle(s)?.region_by_id(REGION))
        .map(|v| v.term)
        .max()
        .unwrap();
    eprintln!("{acked} increments acknowledged, {unknown} unknown, {moves} transfers asked, term {term}");
    assert!(
        term > 5,
        "leadership hardly moved (term {term} after {moves} transfers)"
    );
    assert!(
        total >= acked && total <= acked + unknown,
        "counter {total} after {acked} acknowledged increments ({unknown} with unknown outcome)"
    );
    cluster.shutdown();
}
