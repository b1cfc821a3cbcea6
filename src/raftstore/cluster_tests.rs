//! The in-process cluster harness: real store drivers (raft, apply and region-worker threads)
//! on engines that lose every unsynced write when a store "crashes", connected by an
//! in-process transport whose filters drop messages at random (seeded) or cut the cluster in
//! two. Scenarios in the style of TinyKV's project 2B/2C: clients write while the network
//! misbehaves and stores crash, and at the end every acknowledged write is on every replica.
//! Each scenario prints its seed on failure; `RAFTSTORE_CLUSTER_SEED` replays one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use super::bootstrap::{StoreIdent, bootstrap_store, first_region};
use super::cmd::{CommandBody, CommandHeader, Mutation, RaftCommand, RaftstoreError};
use super::driver::{DriverOptions, StoreDriver, StoreHandle};
use super::meta::Peer;
use super::peer::PeerOptions;
use super::sim_tests::Rng;
use super::store::{RaftMessage, Store, Transport, Unreachable};
use crate::storage::{Cf, CrashableEngine, Engine};

const REGION: u64 = 1;

/// What the network does to messages between stores.
#[derive(Default)]
struct Filters {
    /// Percent of messages dropped.
    drop_percent: u64,
    /// Percent of messages delivered twice.
    duplicate_percent: u64,
    /// Percent of messages held back for up to `delay_max_ms` (so they also arrive out of
    /// order).
    delay_percent: u64,
    delay_max_ms: u64,
    /// Messages between the two sides are dropped.
    partition: Option<HashSet<u64>>,
}

/// Delivers messages between the stores of a cluster, through the filters.
struct Router {
    stores: RwLock<HashMap<u64, StoreHandle<CrashableEngine>>>,
    filters: Mutex<Filters>,
    rng: Mutex<Rng>,
}

impl Router {
    fn passes(&self, from: u64, to: u64) -> bool {
        let filters = self.filters.lock();
        if let Some(side) = &filters.partition
            && side.contains(&from) != side.contains(&to)
        {
            return false;
        }
        filters.drop_percent == 0 || self.rng.lock().below(100) >= filters.drop_percent
    }

    /// How many copies of a message to deliver, and after how long.
    fn fate(&self) -> (usize, Option<Duration>) {
        let filters = self.filters.lock();
        let mut rng = self.rng.lock();
        let copies = if filters.duplicate_percent > 0 && rng.below(100) < filters.duplicate_percent {
            2
        } else {
            1
        };
        let delay = (filters.delay_percent > 0 && rng.below(100) < filters.delay_percent)
            .then(|| Duration::from_millis(rng.below(filters.delay_max_ms.max(1)) + 1));
        (copies, delay)
    }
}

struct InProcTransport {
    store_id: u64,
    router: Arc<Router>,
}

impl Transport for InProcTransport {
    fn send(&mut self, message: RaftMessage) -> Result<(), Unreachable> {
        let to = message.to_peer.store_id;
        if !self.router.passes(self.store_id, to) {
            // Lost on the way, as far as the sender can tell.
            return Ok(());
        }
        let (copies, delay) = self.router.fate();
        let Some(store) = self.router.stores.read().get(&to).cloned() else {
            return Err(Unreachable { store_id: to });
        };
        if let Some(delay) = delay {
            // Delivered later, behind messages sent after it.
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                for _ in 0..copies {
                    let _ = store.send_raft_message(message.clone());
                }
            });
            return Ok(());
        }
        for _ in 1..copies {
            let _ = store.send_raft_message(message.clone());
        }
        store
            .send_raft_message(message)
            .map_err(|_| Unreachable { store_id: to })
    }
}

pub(crate) struct Cluster {
    seed: u64,
    engines: Vec<CrashableEngine>,
    drivers: HashMap<u64, StoreDriver<CrashableEngine>>,
    router: Arc<Router>,
    options: PeerOptions,
}

impl Cluster {
    /// `n` stores, each holding a peer of region 1 (every key), all started.
    pub(crate) fn new(n: u64, seed: u64, options: PeerOptions) -> Cluster {
        let region = first_region(REGION, (1..=n).map(|s| Peer { id: s, store_id: s }).collect());
        let engines = (1..=n)
            .map(|store_id| {
                let engine = CrashableEngine::new();
                let ident = StoreIdent {
                    cluster_id: 1,
                    store_id,
                };
                bootstrap_store(&engine, ident, Some(&region)).unwrap();
                engine
            })
            .collect();
        let mut cluster = Cluster {
            seed,
            engines,
            drivers: HashMap::new(),
            router: Arc::new(Router {
                stores: RwLock::default(),
                filters: Mutex::default(),
                rng: Mutex::new(Rng(seed)),
            }),
            options,
        };
        for store_id in 1..=n {
            cluster.start(store_id);
        }
        cluster
    }

    fn start(&mut self, store_id: u64) {
        let engine = self.engines[(store_id - 1) as usize].clone();
        let transport = InProcTransport {
            store_id,
            router: self.router.clone(),
        };
        let seed = self.seed.wrapping_mul(31).wrapping_add(store_id);
        let store = Store::open(store_id, engine.clone(), transport, self.options, seed).unwrap();
        let driver = StoreDriver::start(store, engine, DriverOptions { tick_ms: 10 });
        self.router
            .stores
            .write()
            .insert(store_id, driver.handle().clone());
        self.drivers.insert(store_id, driver);
    }

    /// Stops `store_id` and throws away every write it had not synced: a power cut.
    fn crash(&mut self, store_id: u64) {
        // The power goes first: whatever the store does while stopping is lost.
        let engine = &mut self.engines[(store_id - 1) as usize];
        *engine = engine.crash();
        self.router.stores.write().remove(&store_id);
        if let Some(driver) = self.drivers.remove(&store_id) {
            driver.stop();
        }
    }

    pub(crate) fn handle(&self, store_id: u64) -> Option<StoreHandle<CrashableEngine>> {
        self.router.stores.read().get(&store_id).cloned()
    }

    /// Writes `key = value` through whichever store leads, retrying while the region has no
    /// ready leader; `false` if the outcome stayed unknown or no leader came within the
    /// deadline.
    async fn put(&self, key: &[u8], value: &[u8], deadline: Instant) -> bool {
        let body = CommandBody::Write(vec![Mutation::Put {
            cf: Cf::Default,
            key: key.to_vec(),
            value: value.to_vec(),
        }]);
        self.propose_at(Some(key), REGION, body, deadline).await
    }

    /// Proposes `body` to the region holding `key` (or, with no key, to `region_id`) through
    /// whichever store leads it, retrying while it has no ready leader or the epoch moved;
    /// `false` if the outcome stayed unknown or no leader came within the deadline.
    async fn propose_at(
        &self,
        key: Option<&[u8]>,
        region_id: u64,
        body: CommandBody,
        deadline: Instant,
    ) -> bool {
        let mut attempt = 0u64;
        while Instant::now() < deadline {
            attempt += 1;
            let store_id = attempt % self.engines.len() as u64 + 1;
            let Some(handle) = self.handle(store_id) else {
                continue;
            };
            let region = match key {
                Some(key) => handle.region_for_key(key).map(|v| v.region.id),
                None => Some(region_id),
            };
            let header = match region {
                Some(region) => handle.leader_header(region).await,
                None => Err(RaftstoreError::RegionNotFound(0)),
            };
            let header = match header {
                Ok(header) => header,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            };
            let command = RaftCommand {
                header,
                body: body.clone(),
            };
            // A leader cut off from its quorum holds a proposal until it hears of a new
            // term; past the deadline its outcome is unknown.
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, handle.propose(command)).await {
                Ok(Ok(_)) => return true,
                Ok(Err(RaftstoreError::Undetermined)) | Err(_) => return false,
                Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        false
    }

    /// The region `region_id` as its leader has it, waiting for one.
    async fn leader_view(&self, region_id: u64) -> super::driver::RegionView {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let view = (1..=self.engines.len() as u64)
                .filter_map(|s| self.handle(s)?.region_by_id(region_id))
                .find(|v| v.is_ready_leader);
            if let Some(view) = view {
                return view;
            }
            assert!(
                Instant::now() < deadline,
                "seed {}: region {region_id} has no leader",
                self.seed
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until every store's engine holds every pair of `expected`.
    async fn wait_converged(&self, expected: &HashMap<Vec<u8>, Vec<u8>>) {
        self.wait_converged_on(false, expected).await;
    }

    /// The stores of region 1's members, as its ready leader has them now.
    fn members(&self) -> Option<Vec<u64>> {
        (1..=self.engines.len() as u64)
            .filter_map(|s| self.handle(s)?.region_by_id(REGION))
            .find(|v| v.is_ready_leader)
            .map(|v| v.region.peers.iter().map(|p| p.store_id).collect())
    }

    /// Waits until the engines of every store (or, with `members_only`, of region 1's members
    /// as its leader has them at each look: a membership change may still be committing)
    /// hold every pair of `expected`.
    async fn wait_converged_on(&self, members_only: bool, expected: &HashMap<Vec<u8>, Vec<u8>>) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut stores: Vec<u64> = (1..=self.engines.len() as u64).collect();
        loop {
            if members_only && let Some(members) = self.members() {
                stores = members;
            }
            let lagging: Vec<(u64, usize)> = self
                .engines
                .iter()
                .enumerate()
                .filter(|(i, _)| stores.contains(&(*i as u64 + 1)))
                .map(|(i, engine)| {
                    let missing = expected
                        .iter()
                        .filter(|(k, v)| engine.get(Cf::Default, k).unwrap().as_ref() != Some(*v))
                        .count();
                    (i as u64 + 1, missing)
                })
                .filter(|(_, missing)| *missing > 0)
                .collect();
            if lagging.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "seed {}: stores (id, missing acknowledged writes) never caught up: {lagging:?}",
                self.seed
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) fn shutdown(self) {
        for (_, driver) in self.drivers {
            driver.stop();
        }
    }
}

/// Which seed to run: the replayed one, or `default`.
fn seed_or(default: u64) -> u64 {
    super::sim_tests::env_number("RAFTSTORE_CLUSTER_SEED").unwrap_or(default)
}

/// The knobs of one generic scenario (TinyKV's `GenericTest`).
struct Scenario {
    stores: u64,
    clients: u64,
    unreliable: bool,
    partitions: bool,
    crash: bool,
    /// A random minority of the stores is down (power cut) through each round after the
    /// first, and comes back after it.
    crash_minority: bool,
    /// Messages are also duplicated, delayed and reordered.
    chaotic_delivery: bool,
    log_gc_limit: Option<u64>,
    /// Peers of region 1 are removed and added back while clients write.
    conf_change: bool,
    /// The keyspace is split while clients write.
    split: bool,
    rounds: u64,
    round_ms: u64,
}

/// Clients write their own keys while the network and the stores misbehave; after each round
/// the cluster heals, and every acknowledged write must be on every store.
async fn run(scenario: Scenario, seed: u64) {
    let mut options = PeerOptions::default();
    if let Some(limit) = scenario.log_gc_limit {
        options.raft_log_gc_count_limit = limit;
        options.raft_log_gc_tick_interval = 5;
    }
    let mut cluster = Cluster::new(scenario.stores, seed, options);
    let mut rng = Rng(seed ^ 0xC1A0);
    let mut acknowledged: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    // Stores crashed for the coming round.
    let mut down: Vec<u64> = Vec::new();
    for round in 0..scenario.rounds {
        {
            let mut filters = cluster.router.filters.lock();
            filters.drop_percent = if scenario.unreliable { 10 } else { 0 };
            if scenario.chaotic_delivery {
                filters.duplicate_percent = 5;
                filters.delay_percent = 10;
                filters.delay_max_ms = 30;
            }
            filters.partition = scenario.partitions.then(|| {
                (1..=scenario.stores)
                    .filter(|_| rng.chance(2))
                    .collect::<HashSet<u64>>()
            });
        }
        let deadline = Instant::now() + Duration::from_millis(scenario.round_ms);
        let shared = Arc::new(cluster);
        let admin = (scenario.conf_change || scenario.split).then(|| {
            let cluster = shared.clone();
            let (conf_change, split, stores, clients) = (
                scenario.conf_change,
                scenario.split,
                scenario.stores,
                scenario.clients,
            );
            let mut rng = Rng(seed ^ round.wrapping_mul(7919));
            tokio::spawn(async move {
                let mut changes = 0u64;
                let mut next_id = 1_000 + round * 1_000;
                let mut splits = 0u64;
                while Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(60)).await;
                    if split && splits < clients {
                        // Each split cuts between two clients' keys of this round.
                        let split_key = format!("r{round} c{}", splits + 1).into_bytes();
                        let Some(handle) = cluster.handle(1) else { continue };
                        let Some(view) = handle.region_for_key(&split_key) else {
                            continue;
                        };
                        if view.region.start_key == split_key {
                            splits += 1;
                            continue;
                        }
                        let new_peer_ids = view
                            .region
                            .peers
                            .iter()
                            .map(|_| {
                                next_id += 1;
                                next_id
                            })
                            .collect();
                        next_id += 1;
                        let body = CommandBody::Admin(super::cmd::AdminCommand::Split {
                            split_key: split_key.clone(),
                            new_region_id: next_id,
                            new_peer_ids,
                        });
                        let until = Instant::now() + Duration::from_secs(2);
                        if cluster.propose_at(Some(&split_key), 0, body, until).await {
                            splits += 1;
                        }
                    }
                    if conf_change {
                        let view = cluster.leader_view(REGION).await;
                        let store = rng.below(stores) + 1;
                        let member = view.region.peer_on_store(store);
                        let (change_type, peer) = match member {
                            // Keep a majority of the original three at least.
                            Some(peer) if view.region.peers.len() > 3 => {
                                (crate::raft::ConfChangeType::RemoveNode, peer)
                            }
                            Some(_) => continue,
                            None => {
                                next_id += 1;
                                (
                                    crate::raft::ConfChangeType::AddNode,
                                    Peer {
                                        id: next_id,
                                        store_id: store,
                                    },
                                )
                            }
                        };
                        let body =
                            CommandBody::Admin(super::cmd::AdminCommand::ChangePeer { change_type, peer });
                        let until = Instant::now() + Duration::from_secs(2);
                        if cluster.propose_at(None, REGION, body, until).await {
                            changes += 1;
                        }
                    }
                }
                (changes, splits)
            })
        });
        let clients: Vec<_> = (0..scenario.clients)
            .map(|client| {
                let cluster = shared.clone();
                tokio::spawn(async move {
                    let mut done = Vec::new();
                    let mut j = 0u64;
                    while Instant::now() < deadline {
                        let key = format!("r{round} c{client} {j:08}").into_bytes();
                        let value = format!("x {client} {j} y").into_bytes();
                        // A write whose outcome stays unknown is not counted either way.
                        if cluster.put(&key, &value, deadline + Duration::from_secs(5)).await {
                            done.push((key, value));
                        }
                        j += 1;
                    }
                    done
                })
            })
            .collect();
        for client in clients {
            acknowledged.extend(client.await.unwrap());
        }
        if let Some(admin) = admin {
            let (changes, splits) = admin.await.unwrap();
            assert!(
                !scenario.conf_change || changes > 0,
                "seed {seed}: no membership change went through in round {round}"
            );
            assert!(
                !scenario.split || splits > 0,
                "seed {seed}: no split went through in round {round}"
            );
        }
        cluster = Arc::into_inner(shared).expect("every client is done");
        *cluster.router.filters.lock() = Filters::default();
        if scenario.crash {
            for store_id in 1..=scenario.stores {
                cluster.crash(store_id);
            }
            for store_id in 1..=scenario.stores {
                cluster.start(store_id);
            }
        }
        for store_id in std::mem::take(&mut down) {
            cluster.start(store_id);
        }
        // With membership changes, only the region's members hold its data.
        cluster
            .wait_converged_on(scenario.conf_change, &acknowledged)
            .await;
        if scenario.crash_minority && round + 1 < scenario.rounds {
            let minority = (scenario.stores - 1) / 2;
            while (down.len() as u64) < minority {
                let store_id = rng.below(scenario.stores) + 1;
                if !down.contains(&store_id) {
                    down.push(store_id);
                }
            }
            for &store_id in &down {
                cluster.crash(store_id);
            }
        }
    }
    assert!(
        acknowledged.len() as u64 >= scenario.rounds * scenario.clients,
        "seed {seed}: only {} writes acknowledged",
        acknowledged.len()
    );
    if let Some(limit) = scenario.log_gc_limit {
        // The log stays bounded: applied - truncated <= 2 x the limit on every store.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for (i, engine) in cluster.engines.iter().enumerate() {
            // A store the region was moved off has no log of it.
            let Ok(storage) = super::peer_storage::PeerStorage::open(engine.clone(), REGION) else {
                continue;
            };
            let state = storage.apply_state();
            assert!(
                state.applied_index - state.truncated.index <= 2 * limit,
                "seed {seed}: store {} keeps {} applied entries in its log",
                i + 1,
                state.applied_index - state.truncated.index
            );
        }
    }
    cluster.shutdown();
}

fn scenario() -> Scenario {
    Scenario {
        stores: 3,
        clients: 1,
        unreliable: false,
        partitions: false,
        crash: false,
        crash_minority: false,
        chaotic_delivery: false,
        log_gc_limit: None,
        conf_change: false,
        split: false,
        rounds: 2,
        round_ms: 600,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_one_client() {
    run(scenario(), seed_or(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_on_five_stores() {
    run(
        Scenario {
            stores: 5,
            clients: 5,
            ..scenario()
        },
        seed_or(2),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreliable_network_crashes_and_log_compaction() {
    run(
        Scenario {
            clients: 4,
            unreliable: true,
            crash: true,
            log_gc_limit: Some(50),
            ..scenario()
        },
        seed_or(3),
    )
    .await;
}

/// TinyKV's `TestPersistPartitionUnreliable2B`-like: a minority of the stores is powered off
/// through each round while clients write over a network that drops, duplicates, delays and
/// reorders messages; the stores that come back catch up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_restart_of_a_minority_on_a_chaotic_network() {
    run(
        Scenario {
            stores: 5,
            clients: 3,
            unreliable: true,
            chaotic_delivery: true,
            crash_minority: true,
            rounds: 3,
            ..scenario()
        },
        seed_or(9),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_and_crash_restart_of_all() {
    run(
        Scenario {
            stores: 5,
            clients: 3,
            partitions: true,
            crash: true,
            rounds: 3,
            ..scenario()
        },
        seed_or(4),
    )
    .await;
}

/// TinyKV's `TestOnePartition2B`: a leader cut off in the minority commits nothing, the
/// majority elects another and goes on; once healed, the old leader has the new writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_in_the_minority_commits_nothing() {
    let seed = seed_or(5);
    let cluster = Cluster::new(5, seed, PeerOptions::default());
    let deadline = Instant::now() + Duration::from_secs(10);
    assert!(cluster.put(b"k1", b"v1", deadline).await, "seed {seed}");
    let leader = (1..=5u64)
        .find(|&s| {
            cluster
                .handle(s)
                .and_then(|h| h.region_by_id(REGION))
                .is_some_and(|v| v.is_leader)
        })
        .expect("a leader");
    let follower = leader % 5 + 1;
    cluster.router.filters.lock().partition = Some([leader, follower].into_iter().collect());
    // The old leader may still think it leads; a write there never commits.
    let old = cluster.handle(leader).unwrap();
    let view = old.region_by_id(REGION).unwrap();
    let stuck = old.propose(RaftCommand {
        header: CommandHeader {
            region_id: REGION,
            peer: view.peer,
            epoch: view.region.epoch,
            term: 0,
        },
        body: CommandBody::Write(vec![Mutation::Put {
            cf: Cf::Default,
            key: b"k1".to_vec(),
            value: b"minority".to_vec(),
        }]),
    });
    let stuck = tokio::time::timeout(Duration::from_millis(1_500), stuck).await;
    assert!(
        !matches!(stuck, Ok(Ok(_))),
        "seed {seed}: a write in the minority was acknowledged"
    );
    // The majority elects a leader of its own and takes writes.
    let deadline = Instant::now() + Duration::from_secs(10);
    assert!(cluster.put(b"k1", b"changed", deadline).await, "seed {seed}");
    *cluster.router.filters.lock() = Filters::default();
    let expected: HashMap<Vec<u8>, Vec<u8>> = [(b"k1".to_vec(), b"changed".to_vec())].into();
    cluster.wait_converged(&expected).await;
    cluster.shutdown();
}

/// TinyKV's `TestConfChangeUnreliable3B`, in short: peers of the region are removed and added
/// back (with new peer ids, catching up by snapshot) while clients write over a lossy network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_under_load() {
    run(
        Scenario {
            stores: 5,
            clients: 3,
            unreliable: true,
            conf_change: true,
            log_gc_limit: Some(100),
            rounds: 3,
            round_ms: 1_000,
            ..scenario()
        },
        seed_or(6),
    )
    .await;
}

/// TinyKV's `TestSplitUnreliable3B`, in short: the keyspace splits between clients' keys while
/// they write, stale proposals are refused and retried, and every store ends with every
/// acknowledged write, through crashes of every store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_under_load() {
    run(
        Scenario {
            clients: 4,
            unreliable: true,
            crash: true,
            split: true,
            rounds: 3,
            round_ms: 1_000,
            ..scenario()
        },
        seed_or(8),
    )
    .await;
}

/// Seeds that found bugs in `splits_under_load`: seed 7 restarted an uninitialized peer of a
/// split region with a commit index beyond its empty log; seed 32 had such a peer write its
/// empty-log raft state over the split's initial one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_under_load_regressions() {
    for seed in [7, 32] {
        run(
            Scenario {
                clients: 4,
                unreliable: true,
                crash: true,
                split: true,
                rounds: 3,
                round_ms: 1_000,
                ..scenario()
            },
            seed,
        )
        .await;
    }
}
