//! The replicated scheduler: replicas over an in-process transport that can cut a replica off,
//! on engines that drop unsynced writes when "crashed".

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use super::replica::{ReplicaHandle, ReplicaOptions, ReplicaTransport, SchedulerError, SchedulerReplica};
use super::service::{
    RegionQuery, RegionStats, STORE_DISCONNECT_SECS, Scheduler, SchedulerApi, StoreState,
    store_heartbeat_interval,
};
use super::state::StoreMeta;
use super::tso::{TimeStamp, system_clock};
use crate::raft::Message;
use crate::raftstore::bootstrap::first_region;
use crate::raftstore::meta::Peer;
use crate::storage::CrashableEngine;

#[derive(Clone, Default)]
struct Net {
    handles: Arc<RwLock<HashMap<u64, ReplicaHandle>>>,
    cut: Arc<RwLock<HashSet<u64>>>,
}

struct NetTransport(Net);

impl ReplicaTransport for NetTransport {
    fn send(&mut self, message: Message) {
        let net = &self.0;
        let cut = net.cut.read();
        if cut.contains(&message.from) || cut.contains(&message.to) {
            return;
        }
        if let Some(handle) = net.handles.read().get(&message.to) {
            handle.step(message);
        }
    }
}

struct Group {
    net: Net,
    engines: HashMap<u64, CrashableEngine>,
    replicas: HashMap<u64, (SchedulerReplica, Arc<Scheduler>)>,
    size: u64,
    compact_every: u64,
}

impl Group {
    fn new(size: u64, compact_every: u64) -> Group {
        let mut group = Group {
            net: Net::default(),
            engines: (1..=size).map(|id| (id, CrashableEngine::new())).collect(),
            replicas: HashMap::new(),
            size,
            compact_every,
        };
        for id in 1..=size {
            group.start(id);
        }
        group
    }

    fn start(&mut self, id: u64) {
        let options = ReplicaOptions {
            id,
            peers: (1..=self.size).collect(),
            tick_ms: 10,
            election_tick: 10,
            heartbeat_tick: 2,
            compact_every: self.compact_every,
            seed: id,
        };
        let replica =
            SchedulerReplica::start(self.engines[&id].clone(), options, NetTransport(self.net.clone()))
                .expect("starting a replica");
        self.net.handles.write().insert(id, replica.handle().clone());
        let scheduler = Arc::new(Scheduler::new(replica.handle().clone(), system_clock(), 50));
        self.replicas.insert(id, (replica, scheduler));
    }

    /// Stops replica `id` as a power cut would: unsynced writes are lost.
    fn crash(&mut self, id: u64) {
        self.net.handles.write().remove(&id);
        if let Some((replica, _)) = self.replicas.remove(&id) {
            replica.stop();
        }
        let image = self.engines[&id].crash();
        self.engines.insert(id, image);
    }

    /// The ready leader, waiting for one.
    fn leader(&self) -> Arc<Scheduler> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some((_, s)) = self
                .replicas
                .values()
                .find(|(r, _)| r.handle().status().ready_leader)
            {
                return s.clone();
            }
            assert!(Instant::now() < deadline, "no scheduler leader within 20 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn leader_id(&self) -> u64 {
        let leader = self.leader();
        leader.replica().status().id
    }
}

/// Retries `call` at the current leader while the answer is "not the leader".
async fn at_leader<T, F, Fut>(group: &Group, mut call: F) -> T
where
    F: FnMut(Arc<Scheduler>) -> Fut,
    Fut: std::future::Future<Output = Result<T, SchedulerError>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match call(group.leader()).await {
            Ok(value) => return value,
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("scheduler request failed: {e}"),
        }
    }
}

fn store(id: u64) -> StoreMeta {
    StoreMeta {
        id,
        name: format!("n{id}"),
        peer_addr: format!("127.0.0.1:{}", 20_000 + id),
        resp_addr: format!("127.0.0.1:{}", 6_000 + id),
    }
}

async fn bootstrap(group: &Group, cluster_id: u64) -> u64 {
    let region = first_region(1, vec![Peer { id: 2, store_id: 1 }]);
    at_leader(group, |s| {
        let region = region.clone();
        async move { s.bootstrap(cluster_id, vec![store(1)], region, 3).await }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_one_serves_and_keeps_its_state_across_a_power_cut() {
    let mut group = Group::new(1, 1_000);
    assert_eq!(bootstrap(&group, 7).await, 7);
    // A second bootstrap (another node racing) learns the existing cluster.
    assert_eq!(bootstrap(&group, 8).await, 7);
    let first = at_leader(&group, |s| async move { s.alloc_ids(10).await }).await;
    assert!(
        first >= 3,
        "ids below the bootstrap's next id were handed out: {first}"
    );
    let mut last = TimeStamp::default();
    for _ in 0..200 {
        let ts = at_leader(&group, |s| async move { s.timestamps(1).await }).await;
        assert!(ts > last);
        last = ts;
    }
    group.crash(1);
    group.start(1);
    let info = at_leader(&group, |s| async move { s.cluster().await }).await;
    assert_eq!(info.cluster_id, 7);
    assert_eq!(info.stores, vec![store(1)]);
    let after = at_leader(&group, |s| async move { s.alloc_ids(1).await }).await;
    assert!(after >= first + 10, "an id range was handed out twice: {after}");
    let ts = at_leader(&group, |s| async move { s.timestamps(1).await }).await;
    assert!(
        ts > last,
        "a timestamp went back across a restart: {ts} after {last}"
    );
}

/// Timestamps keep increasing while the leader is crashed and another takes over, again and
/// again; every replica ends with the same state, also one that caught up by snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_never_go_back_across_leader_changes() {
    let mut group = Group::new(3, 20);
    bootstrap(&group, 5).await;
    let mut last = TimeStamp::default();
    let mut ids = HashSet::new();
    for round in 0..4 {
        for _ in 0..50 {
            let ts = at_leader(&group, |s| async move { s.timestamps(3).await }).await;
            assert!(ts > last, "round {round}: {ts} after {last}");
            last = ts;
            let id = at_leader(&group, |s| async move { s.alloc_ids(1).await }).await;
            assert!(ids.insert(id), "round {round}: id {id} handed out twice");
        }
        let old = group.leader_id();
        group.crash(old);
        let ts = at_leader(&group, |s| async move { s.timestamps(1).await }).await;
        assert!(ts > last, "the new leader went back: {ts} after {last}");
        last = ts;
        assert_ne!(group.leader_id(), old);
        group.start(old);
    }
    // Cut one replica off while the others move on past a compaction; it catches up.
    let lagging = (1..=3).find(|id| *id != group.leader_id()).unwrap();
    group.net.cut.write().insert(lagging);
    for _ in 0..60 {
        at_leader(&group, |s| async move { s.alloc_ids(1).await }).await;
    }
    group.net.cut.write().clear();
    at_leader(&group, |s| async move { s.alloc_ids(1).await }).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let states: Vec<Vec<u8>> = group
            .replicas
            .values()
            .map(|(r, _)| r.handle().read_local_blocking(|state| state.encode()).unwrap())
            .collect();
        if states.windows(2).all(|w| w[0] == w[1]) {
            break;
        }
        assert!(Instant::now() < deadline, "the replicas did not converge");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A store heartbeat with new addresses updates the directory (replicated); its counts are
/// kept by the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_heartbeats_update_addresses_and_liveness() {
    use super::service::StoreStats;
    let group = Group::new(1, 1_000);
    bootstrap(&group, 3).await;
    let moved = StoreMeta {
        resp_addr: "127.0.0.1:7777".into(),
        ..store(1)
    };
    let stats = StoreStats {
        region_count: 4,
        leader_count: 2,
        ..StoreStats::default()
    };
    at_leader(&group, |s| {
        let moved = moved.clone();
        async move { s.store_heartbeat(moved, stats).await }
    })
    .await;
    let found = at_leader(&group, |s| async move { s.store(1).await }).await;
    assert_eq!(found, Some(moved));
    let liveness = group.leader().store_liveness();
    assert_eq!(liveness[&1].stats, stats);
    // Store 1 just reported; any other has not, but this leader has only just begun.
    let stores = at_leader(&group, |s| async move { s.stores().await }).await;
    assert!(stores.iter().any(|info| info.meta.id == 1), "{stores:?}");
    for info in &stores {
        assert_eq!(info.state, StoreState::Up, "{info:?}");
        assert_eq!(info.stats, (info.meta.id == 1).then_some(stats));
    }
}

#[test]
fn a_store_is_disconnected_after_20_s_of_silence_and_down_after_the_configured_time() {
    let down = Duration::from_secs(1_800);
    let state = |secs| StoreState::after_silence(Duration::from_secs(secs), down);
    assert_eq!(state(0), StoreState::Up);
    assert_eq!(state(STORE_DISCONNECT_SECS), StoreState::Up);
    assert_eq!(state(STORE_DISCONNECT_SECS + 1), StoreState::Disconnected);
    assert_eq!(state(1_800), StoreState::Disconnected);
    assert_eq!(state(1_801), StoreState::Down);
    // A down time shorter than the disconnect time wins.
    assert_eq!(
        StoreState::after_silence(Duration::from_secs(5), Duration::from_secs(3)),
        StoreState::Down
    );
}

/// A live store reports three times within any configured down time (but at most once a
/// second, and at least every 10 s), so it is never counted `Down` between two reports.
#[test]
fn stores_report_three_times_within_the_down_time() {
    let every = |secs| store_heartbeat_interval(Duration::from_secs(secs));
    assert_eq!(every(1_800), Duration::from_secs(10));
    assert_eq!(every(30), Duration::from_secs(10));
    assert_eq!(every(9), Duration::from_secs(3));
    assert_eq!(every(3), Duration::from_secs(1));
    assert_eq!(every(1), Duration::from_secs(1));
    for secs in 3..100 {
        let down = Duration::from_secs(secs);
        let silent = store_heartbeat_interval(down) * 3;
        assert!(silent <= down, "{secs} s");
        assert_ne!(
            StoreState::after_silence(silent, down),
            StoreState::Down,
            "{secs} s"
        );
    }
}

/// The directory lists regions in key order from the one holding a key, by id and by key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_are_listed_in_key_order_with_their_leaders_reports() {
    let group = Group::new(1, 1_000);
    bootstrap(&group, 3).await;
    let first = at_leader(&group, |s| async move { s.region_by_id(1).await })
        .await
        .unwrap()
        .region;
    // Split region 1 at "m" as its leader would report it.
    let mut left = first.clone();
    left.end_key = b"m".to_vec();
    left.epoch.version += 1;
    let mut right = first.clone();
    right.id = 50;
    right.start_key = b"m".to_vec();
    right.epoch.version += 1;
    let leader = first.peers[0];
    let stats = RegionStats {
        approximate_size: 1_000,
        approximate_keys: 10,
        ..RegionStats::default()
    };
    for region in [left.clone(), right.clone()] {
        at_leader(&group, |s| {
            let region = region.clone();
            let stats = stats.clone();
            async move { s.region_heartbeat(region, leader, stats).await }
        })
        .await;
    }
    let list = |query: RegionQuery| {
        let group = &group;
        async move {
            at_leader(group, |s| {
                let query = query.clone();
                async move { s.regions(query).await }
            })
            .await
            .into_iter()
            .map(|info| (info.region.id, info.leader, info.stats))
            .collect::<Vec<_>>()
        }
    };
    let both = vec![
        (1, Some(leader), Some(stats.clone())),
        (50, Some(leader), Some(stats.clone())),
    ];
    assert_eq!(
        list(RegionQuery::From {
            from: vec![],
            limit: 10
        })
        .await,
        both
    );
    assert_eq!(
        list(RegionQuery::From {
            from: b"c".to_vec(),
            limit: 10
        })
        .await,
        both
    );
    assert_eq!(
        list(RegionQuery::From {
            from: b"q".to_vec(),
            limit: 10
        })
        .await,
        both[1..]
    );
    assert_eq!(
        list(RegionQuery::From {
            from: vec![],
            limit: 1
        })
        .await,
        both[..1]
    );
    assert_eq!(list(RegionQuery::Key(b"m".to_vec())).await, both[1..]);
    assert_eq!(list(RegionQuery::Id(1)).await, both[..1]);
    assert!(list(RegionQuery::Id(7)).await.is_empty());
}
