//! The client side of the scheduler over gRPC: [`SchedulerRpcClient`], the [`SchedulerApi`]
//! every node uses, and [`ReplicaGrpcTransport`], which carries the scheduler replicas' raft
//! messages (the serving side and the message conversions are `rpc::scheduler`).
//!
//! **Finding the leader.** The client knows every scheduler node's address (from
//! `cluster.yaml`). It sends to the replica it believes leads, follows a "not leader" answer's
//! hint, and otherwise tries the next node, with backoff, until its retry budget is spent;
//! then it fails with `Unavailable` naming what it tried. When the leader is this node's own
//! replica, it calls it in process. A request not answered within [`REQUEST_TIMEOUT`] counts
//! as unanswered, except a manual operator's, which runs until its steps are done and is given
//! [`OPERATOR_TIMEOUT`]. A timestamp request also stops waiting as soon as this node's own
//! replica (if it hosts one) knows of another leader, and goes there: a leader cut off from
//! the others never answers, and the timestamps every write needs should wait only for the
//! election, not for the deadline on top of it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use super::convert::{peer_from_proto, peer_to_proto, region_from_proto, region_to_proto};
use super::proto;
use super::proto::scheduler_client::SchedulerClient;
use super::scheduler::{
    bad_region, check, region_query_to_proto, region_stats_from_proto, region_stats_to_proto,
    replica_message_to_proto, route_from_proto, status_from_proto, step_to_proto, store_from_proto,
    store_state_from_proto, store_stats_from_proto, store_stats_to_proto, store_to_proto,
};
use crate::raft::Message;
use crate::raftstore::meta::{Peer, Region};
use crate::scheduler::board::SchedulerStatus;
use crate::scheduler::checkers::Step;
use crate::scheduler::replica::{ReplicaTransport, SchedulerError};
use crate::scheduler::service::{
    ClusterInfo, RegionInfo, RegionQuery, RegionRoute, RegionStats, Scheduler, SchedulerApi, StoreInfo,
    StoreStats,
};
use crate::scheduler::state::StoreMeta;
use crate::scheduler::tso::TimeStamp;

/// How long a request to a scheduler node may go unanswered. The scheduler answers in
/// milliseconds (its writes are small raft proposals); a node that stops answering is tried
/// again after the others, so every second spent here is a second without timestamps.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a request waiting on a remote scheduler node checks whether this node's own
/// replica has seen another node take the lead, after a first wait of
/// [`LEADER_WATCH_GRACE`]: a leader that answers does so well within it, so a replica whose
/// view lags a heartbeat behind seldom sends a request away from a leader that is only slow
/// (it would come back on that leader's "not leader" hint).
const LEADER_WATCH_INTERVAL: Duration = Duration::from_millis(50);
const LEADER_WATCH_GRACE: Duration = Duration::from_millis(200);
/// How long a manual operator (`run_operator`) may take: longer than its steps' own limits
/// (20 s each), so that it is never asked twice because an answer was late.
pub const OPERATOR_TIMEOUT: Duration = Duration::from_secs(120);

/// Sends a replica's raft messages to the other scheduler nodes: a bounded queue and a task
/// per destination; a full queue drops (raft sends again).
pub struct ReplicaGrpcTransport {
    runtime: Handle,
    addrs: HashMap<u64, String>,
    queues: HashMap<u64, mpsc::Sender<Message>>,
}

const REPLICA_QUEUE: usize = 1_024;

impl ReplicaGrpcTransport {
    /// `addrs`: each other replica's id and `host:port`.
    pub fn new(runtime: Handle, addrs: HashMap<u64, String>) -> Self {
        ReplicaGrpcTransport {
            runtime,
            addrs,
            queues: HashMap::new(),
        }
    }
}

impl ReplicaTransport for ReplicaGrpcTransport {
    fn send(&mut self, message: Message) {
        let to = message.to;
        let Some(addr) = self.addrs.get(&to).cloned() else {
            return;
        };
        let queue = self.queues.entry(to).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(REPLICA_QUEUE);
            self.runtime.spawn(run_replica_link(addr, rx));
            tx
        });
        let _ = queue.try_send(message);
    }
}

async fn run_replica_link(addr: String, mut queue: mpsc::Receiver<Message>) {
    let mut client: Option<SchedulerClient<Channel>> = None;
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match queue.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        if client.is_none() {
            client = connect(&addr).await;
        }
        let Some(c) = client.as_mut() else {
            // Unreachable: drop the batch; raft resends.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let request = proto::ReplicaMessages {
            messages: batch.into_iter().map(replica_message_to_proto).collect(),
        };
        if c.step(request).await.is_err() {
            client = None;
        }
    }
}

async fn connect(addr: &str) -> Option<SchedulerClient<Channel>> {
    let endpoint = super::endpoint(addr).ok()?.timeout(REQUEST_TIMEOUT);
    Some(SchedulerClient::new(endpoint.connect_lazy()))
}

/// See the module docs.
pub struct SchedulerRpcClient {
    /// This node's own replica, with its id, if it hosts one.
    local: Option<(u64, Arc<Scheduler>)>,
    /// Every scheduler node: replica id and address.
    nodes: Vec<(u64, String)>,
    leader: AtomicU64,
    /// Channels by replica id and request timeout.
    clients: Mutex<HashMap<(u64, Duration), SchedulerClient<Channel>>>,
    /// Open timestamp streams by replica id (see [`Self::stream_timestamps`]).
    tso_links: Mutex<HashMap<u64, TsoLink>>,
    budget: Duration,
}

/// A request for timestamps on a stream: how many, and where the answer goes.
type TsoAsk = (u32, oneshot::Sender<Result<TimeStamp, SchedulerError>>);
type TsoLink = mpsc::UnboundedSender<TsoAsk>;

/// Runs one timestamp stream: sends each ask as it comes and hands the answers, which come in
/// order, to the asks in order. Ends when the stream fails or every sender is gone; asks still
/// waiting then fail (their answer channels are dropped), and the next ask opens a new stream.
async fn run_tso_stream(mut client: SchedulerClient<Channel>, mut asks: mpsc::UnboundedReceiver<TsoAsk>) {
    let (requests, outgoing) = mpsc::unbounded_channel();
    let mut waiting = VecDeque::new();
    // Opening the stream waits for the server's headers; asks are sent meanwhile.
    let opened = client.tso_stream(UnboundedReceiverStream::new(outgoing));
    tokio::pin!(opened);
    let mut answers: Option<Streaming<proto::TsoResponse>> = None;
    loop {
        tokio::select! {
            ask = asks.recv() => {
                let Some((count, answer)) = ask else { return };
                if requests.send(proto::TsoRequest { count }).is_err() {
                    return;
                }
                waiting.push_back(answer);
            }
            opened = &mut opened, if answers.is_none() => match opened {
                Ok(response) => answers = Some(response.into_inner()),
                Err(status) => {
                    tracing::debug!(error = %status, "timestamp stream could not open");
                    return;
                }
            },
            answer = async { answers.as_mut().expect("opened").message().await }, if answers.is_some() => {
                let Ok(Some(answer)) = answer else {
                    tracing::debug!("timestamp stream ended");
                    return;
                };
                let Some(waiter) = waiting.pop_front() else {
                    tracing::warn!("timestamp stream answered more than it was asked; reopening");
                    return;
                };
                let _ = waiter.send(check(answer.error).map(|()| TimeStamp::new(answer.ts)));
            }
        }
    }
}

/// The rpc error of a call that did not get an answer (the caller adds where it went).
fn unreachable(status: &Status) -> SchedulerError {
    SchedulerError::Unavailable(status.message().to_string())
}

impl SchedulerRpcClient {
    pub fn new(local: Option<(u64, Arc<Scheduler>)>, nodes: Vec<(u64, String)>, budget: Duration) -> Self {
        let first = local
            .as_ref()
            .map_or_else(|| nodes.first().map_or(0, |n| n.0), |l| l.0);
        SchedulerRpcClient {
            local,
            nodes,
            leader: AtomicU64::new(first),
            clients: Mutex::new(HashMap::new()),
            tso_links: Mutex::new(HashMap::new()),
            budget,
        }
    }

    fn remote(&self, replica: u64, timeout: Duration) -> Option<SchedulerClient<Channel>> {
        if let Some(client) = self.clients.lock().get(&(replica, timeout)) {
            return Some(client.clone());
        }
        let addr = &self.nodes.iter().find(|(id, _)| *id == replica)?.1;
        let endpoint = super::endpoint(addr).ok()?.timeout(timeout);
        let client = SchedulerClient::new(endpoint.connect_lazy());
        self.clients.lock().insert((replica, timeout), client.clone());
        Some(client)
    }

    /// `count` timestamps from `replica` over its timestamp stream, opened on first use and
    /// again after it broke. An answer not back within [`REQUEST_TIMEOUT`] closes the stream
    /// (a stream that lost one answer cannot be trusted with the next) and is `Unavailable`.
    async fn stream_timestamps(
        &self,
        replica: u64,
        client: SchedulerClient<Channel>,
        count: u32,
    ) -> Result<TimeStamp, SchedulerError> {
        let link = {
            let mut links = self.tso_links.lock();
            match links.get(&replica) {
                Some(link) if !link.is_closed() => link.clone(),
                _ => {
                    let (link, asks) = mpsc::unbounded_channel();
                    tokio::spawn(run_tso_stream(client, asks));
                    links.insert(replica, link.clone());
                    link
                }
            }
        };
        let (answer, answered) = oneshot::channel();
        if link.send((count, answer)).is_err() {
            return Err(SchedulerError::Unavailable("the timestamp stream closed".into()));
        }
        let forget_link = || {
            let mut links = self.tso_links.lock();
            if links.get(&replica).is_some_and(|l| l.same_channel(&link)) {
                links.remove(&replica);
            }
        };
        tokio::select! {
            answer = tokio::time::timeout(REQUEST_TIMEOUT, answered) => match answer {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(SchedulerError::Unavailable("the timestamp stream broke".into())),
                Err(_) => {
                    forget_link();
                    Err(SchedulerError::Unavailable(format!(
                        "no timestamps within {REQUEST_TIMEOUT:?}"
                    )))
                }
            },
            leader = self.another_leader_than(replica) => {
                forget_link();
                Err(SchedulerError::NotLeader { leader: Some(leader) })
            }
        }
    }

    /// Resolves once this node's own replica knows of a leader other than `replica`; never
    /// without a replica here. A request to a leader that was cut off from the others gets no
    /// answer, and waiting out [`REQUEST_TIMEOUT`] for it would add that much to the time
    /// without timestamps after the others have elected a new leader.
    async fn another_leader_than(&self, replica: u64) -> u64 {
        let Some((_, scheduler)) = &self.local else {
            return std::future::pending().await;
        };
        tokio::time::sleep(LEADER_WATCH_GRACE).await;
        loop {
            if let Some(leader) = scheduler.replica().status().leader.filter(|&l| l != replica) {
                return leader;
            }
            tokio::time::sleep(LEADER_WATCH_INTERVAL).await;
        }
    }

    fn next_after(&self, replica: u64) -> u64 {
        let position = self.nodes.iter().position(|(id, _)| *id == replica).unwrap_or(0);
        self.nodes[(position + 1) % self.nodes.len()].0
    }

    /// Runs a request at the leader, following hints and trying every node within the budget.
    async fn call<T, L, LF, R, RF>(&self, what: &str, local: L, remote: R) -> Result<T, SchedulerError>
    where
        L: Fn(Arc<Scheduler>) -> LF,
        LF: Future<Output = Result<T, SchedulerError>>,
        R: Fn(SchedulerClient<Channel>) -> RF,
        RF: Future<Output = Result<T, SchedulerError>>,
    {
        self.call_within(what, REQUEST_TIMEOUT, local, remote).await
    }

    /// [`Self::call`], each remote attempt given `timeout`.
    async fn call_within<T, L, LF, R, RF>(
        &self,
        what: &str,
        timeout: Duration,
        local: L,
        remote: R,
    ) -> Result<T, SchedulerError>
    where
        L: Fn(Arc<Scheduler>) -> LF,
        LF: Future<Output = Result<T, SchedulerError>>,
        R: Fn(SchedulerClient<Channel>) -> RF,
        RF: Future<Output = Result<T, SchedulerError>>,
    {
        self.call_at(what, timeout, local, |_, client| remote(client))
            .await
    }

    /// [`Self::call_within`] for a request whose remote side also needs to know which replica
    /// it is sent to.
    async fn call_at<T, L, LF, R, RF>(
        &self,
        what: &str,
        timeout: Duration,
        local: L,
        remote: R,
    ) -> Result<T, SchedulerError>
    where
        L: Fn(Arc<Scheduler>) -> LF,
        LF: Future<Output = Result<T, SchedulerError>>,
        R: Fn(u64, SchedulerClient<Channel>) -> RF,
        RF: Future<Output = Result<T, SchedulerError>>,
    {
        let deadline = Instant::now() + self.budget;
        let mut attempt = 0u32;
        let mut last_error = SchedulerError::Unavailable("no scheduler node configured".into());
        while !self.nodes.is_empty() {
            let replica = self.leader.load(Ordering::Relaxed);
            let result = match &self.local {
                Some((id, scheduler)) if *id == replica => local(scheduler.clone()).await,
                _ => match self.remote(replica, timeout) {
                    Some(client) => remote(replica, client).await.map_err(|e| match e {
                        SchedulerError::Unavailable(why) => {
                            let addr = self
                                .nodes
                                .iter()
                                .find(|(id, _)| *id == replica)
                                .map_or("?", |n| n.1.as_str());
                            SchedulerError::Unavailable(format!("{addr}: {why}"))
                        }
                        other => other,
                    }),
                    None => Err(SchedulerError::Unavailable(format!(
                        "unknown scheduler node {replica}"
                    ))),
                },
            };
            match result {
                Err(e) if e.is_retryable() && Instant::now() < deadline => {
                    let hinted = match &e {
                        SchedulerError::NotLeader { leader: Some(l) } if *l != replica => Some(*l),
                        _ => None,
                    };
                    let next = hinted.unwrap_or_else(|| self.next_after(replica));
                    let _ = self
                        .leader
                        .compare_exchange(replica, next, Ordering::Relaxed, Ordering::Relaxed);
                    if hinted.is_none() {
                        attempt += 1;
                        if attempt.is_multiple_of(3) || matches!(e, SchedulerError::NotBootstrapped) {
                            tracing::info!(request = what, error = %e, "waiting for the scheduler");
                        }
                        tokio::time::sleep(Duration::from_millis((10u64 << attempt.min(5)).min(300))).await;
                    }
                    last_error = e;
                }
                Err(e) if e.is_retryable() => {
                    return Err(SchedulerError::Unavailable(format!(
                        "{what}: no scheduler leader answered within {:?} (tried {}); last: {e}",
                        self.budget,
                        self.nodes
                            .iter()
                            .map(|(_, a)| a.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                other => return other,
            }
        }
        Err(last_error)
    }
}

impl SchedulerApi for SchedulerRpcClient {
    async fn timestamps(&self, count: u32) -> Result<TimeStamp, SchedulerError> {
        self.call_at(
            "timestamps",
            REQUEST_TIMEOUT,
            |s| async move { s.timestamps(count).await },
            |replica, client| self.stream_timestamps(replica, client, count),
        )
        .await
    }

    fn try_timestamps(&self, count: u32) -> Option<TimeStamp> {
        match &self.local {
            Some((id, scheduler)) if *id == self.leader.load(Ordering::Relaxed) => {
                scheduler.try_timestamps(count)
            }
            _ => None,
        }
    }

    async fn alloc_ids(&self, count: u64) -> Result<u64, SchedulerError> {
        self.call(
            "alloc_ids",
            |s| async move { s.alloc_ids(count).await },
            |mut c| async move {
                let r = c
                    .alloc_ids(proto::AllocIdsRequest { count })
                    .await
                    .map_err(|s| unreachable(&s))?
                    .into_inner();
                check(r.error)?;
                Ok(r.first)
            },
        )
        .await
    }

    async fn bootstrap(
        &self,
        cluster_id: u64,
        stores: Vec<StoreMeta>,
        first_region: Region,
        next_id: u64,
    ) -> Result<u64, SchedulerError> {
        self.call(
            "bootstrap",
            |s| {
                let (stores, region) = (stores.clone(), first_region.clone());
                async move { s.bootstrap(cluster_id, stores, region, next_id).await }
            },
            |mut c| {
                let request = proto::BootstrapRequest {
                    cluster_id,
                    stores: stores.iter().map(store_to_proto).collect(),
                    first_region: Some(region_to_proto(&first_region)),
                    next_id,
                };
                async move {
                    let r = c
                        .bootstrap(request)
                        .await
                        .map_err(|s| unreachable(&s))?
                        .into_inner();
                    check(r.error)?;
                    Ok(r.cluster_id)
                }
            },
        )
        .await
    }

    async fn cluster(&self) -> Result<ClusterInfo, SchedulerError> {
        self.call(
            "cluster",
            |s| async move { s.cluster().await },
            |mut c| async move {
                let r = c
                    .cluster(proto::ClusterRequest {})
                    .await
                    .map_err(|s| unreachable(&s))?
                    .into_inner();
                check(r.error)?;
                Ok(ClusterInfo {
                    cluster_id: r.cluster_id,
                    stores: r.stores.into_iter().map(store_from_proto).collect(),
                    first_region: r
                        .first_region
                        .map(region_from_proto)
                        .transpose()
                        .map_err(bad_region)?,
                })
            },
        )
        .await
    }

    async fn put_store(&self, store: StoreMeta) -> Result<(), SchedulerError> {
        self.call(
            "put_store",
            |s| {
                let store = store.clone();
                async move { s.put_store(store).await }
            },
            |mut c| {
                let request = proto::PutStoreRequest {
                    store: Some(store_to_proto(&store)),
                };
                async move {
                    let r = c
                        .put_store(request)
                        .await
                        .map_err(|s| unreachable(&s))?
                        .into_inner();
                    check(r.error)
                }
            },
        )
        .await
    }

    async fn region_by_key(&self, key: Vec<u8>) -> Result<Option<RegionRoute>, SchedulerError> {
        self.call(
            "region_by_key",
            |s| {
                let key = key.clone();
                async move { s.region_by_key(key).await }
            },
            |mut c| {
                let key = key.clone();
                async move {
                    let r = c
                        .region_by_key(proto::RegionByKeyRequest { key })
                        .await
                        .map_err(|s| unreachable(&s))?
                        .into_inner();
                    route_from_proto(r)
                }
            },
        )
        .await
    }

    async fn region_by_id(&self, id: u64) -> Result<Option<RegionRoute>, SchedulerError> {
        self.call(
            "region_by_id",
            |s| async move { s.region_by_id(id).await },
            |mut c| async move {
                let r = c
                    .region_by_id(proto::RegionByIdRequest { id })
                    .await
                    .map_err(|s| unreachable(&s))?
                    .into_inner();
                route_from_proto(r)
            },
        )
        .await
    }

    async fn store(&self, id: u64) -> Result<Option<StoreMeta>, SchedulerError> {
        self.call(
            "store",
            |s| async move { s.store(id).await },
            |mut c| async move {
                let r = c
                    .get_store(proto::GetStoreRequest { id })
                    .await
                    .map_err(|s| unreachable(&s))?
                    .into_inner();
                check(r.error)?;
                Ok(r.store.map(store_from_proto))
            },
        )
        .await
    }

    async fn store_heartbeat(&self, store: StoreMeta, stats: StoreStats) -> Result<(), SchedulerError> {
        self.call(
            "store_heartbeat",
            |s| {
                let store = store.clone();
                async move { s.store_heartbeat(store, stats).await }
            },
            |mut c| {
                let request = proto::StoreHeartbeatRequest {
                    store: Some(store_to_proto(&store)),
                    stats: Some(store_stats_to_proto(stats)),
                };
                async move {
                    let r = c
                        .store_heartbeat(request)
                        .await
                        .map_err(|s| unreachable(&s))?
                        .into_inner();
                    check(r.error)
                }
            },
        )
        .await
    }

    async fn region_heartbeat(
        &self,
        region: Region,
        leader: Peer,
        stats: RegionStats,
    ) -> Result<(), SchedulerError> {
        self.call(
            "region_heartbeat",
            |s| {
                let region = region.clone();
                let stats = stats.clone();
                async move { s.region_heartbeat(region, leader, stats).await }
            },
            |mut c| {
                let request = proto::RegionHeartbeatRequest {
                    region: Some(region_to_proto(&region)),
                    leader: Some(peer_to_proto(leader)),
                    stats: Some(region_stats_to_proto(&stats)),
                };
                async move {
                    let r = c
                        .region_heartbeat(request)
                        .await
                        .map_err(|s| unreachable(&s))?
                        .into_inner();
                    check(r.error)
                }
            },
        )
        .await
    }

    async fn regions(&self, query: RegionQuery) -> Result<Vec<RegionInfo>, SchedulerError> {
        self.call(
            "regions",
            |s| {
                let query = query.clone();
                async move { s.regions(query).await }
            },
            |mut c| {
                let request = region_query_to_proto(&query);
                async move {
                    let r = c
                        .regions(request)
                        .await
                        .map_err(|s| unreachable(&s))?
                        .into_inner();
                    check(r.error)?;
                    r.regions
                        .into_iter()
                        .map(|info| {
                            let region = info.region.ok_or_else(|| bad_region("missing"))?;
                            Ok(RegionInfo {
                                region: region_from_proto(region).map_err(bad_region)?,
                                leader: info.leader.and_then(|l| peer_from_proto(Some(l), "leader").ok()),
                                stats: info.stats.map(region_stats_from_proto),
                            })
                        })
                        .collect()
                }
            },
        )
        .await
    }

    async fn stores(&self) -> Result<Vec<StoreInfo>, SchedulerError> {
        self.call(
            "stores",
            |s| async move { s.stores().await },
            |mut c| async move {
                let r = c
                    .stores(proto::StoresRequest {})
                    .await
                    .map_err(|s| unreachable(&s))?
                    .into_inner();
                check(r.error)?;
                r.stores
                    .into_iter()
                    .map(|info| {
                        let meta = info
                            .store
                            .ok_or_else(|| SchedulerError::Refused("a store without its meta".into()))?;
                        Ok(StoreInfo {
                            meta: store_from_proto(meta),
                            state: store_state_from_proto(info.state)?,
                            stats: info.stats.map(store_stats_from_proto),
                        })
                    })
                    .collect()
            },
        )
        .await
    }

    async fn remove_store(&self, id: u64) -> Result<(), SchedulerError> {
        self.call(
            "remove_store",
            |s| async move { s.remove_store(id).await },
            |mut c| async move {
                let r = c
                    .remove_store(proto::RemoveStoreRequest { id })
                    .await
                    .map_err(|s| unreachable(&s))?
                    .into_inner();
                check(r.error)
            },
        )
        .await
    }

    async fn pause_scheduler(&self, name: String, paused: bool) -> Result<(), SchedulerError> {
        self.call(
            "pause_scheduler",
            |s| {
                let name = name.clone();
                async move { s.pause_scheduler(name, paused).await }
            },
            |mut c| {
                let request = proto::PauseSchedulerRequest {
                    name: name.clone(),
                    paused,
                };
                async move {
                    let r = c
                        .pause_scheduler(request)
                        .await
                        .map_err(|s| unreachable(&s))?
                        .into_inner();
                    check(r.error)
                }
            },
        )
        .await
    }

    async fn run_operator(&self, region_id: u64, steps: Vec<Step>) -> Result<(), SchedulerError> {
        self.call_within(
            "run_operator",
            OPERATOR_TIMEOUT,
            |s| {
                let steps = steps.clone();
                async move { s.run_operator(region_id, steps).await }
            },
            |mut c| {
                let request = proto::RunOperatorRequest {
                    region_id,
                    steps: steps.iter().map(step_to_proto).collect(),
                };
                async move {
                    let r = c
                        .run_operator(request)
                        .await
                        .map_err(|s| unreachable(&s))?
                        .into_inner();
                    check(r.error)
                }
            },
        )
        .await
    }

    async fn status(&self) -> Result<SchedulerStatus, SchedulerError> {
        self.call(
            "status",
            |s| async move { s.status().await },
            |mut c| async move {
                let r = c
                    .status(proto::StatusRequest {})
                    .await
                    .map_err(|s| unreachable(&s))?
                    .into_inner();
                check(r.error.clone())?;
                Ok(status_from_proto(r))
            },
        )
        .await
    }
}

#[tonic::async_trait]
impl super::kv::IdAllocator for SchedulerRpcClient {
    async fn alloc_ids(&self, count: u64) -> Result<u64, String> {
        SchedulerApi::alloc_ids(self, count)
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::SocketAddr;

    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinSet;

    use super::*;
    use crate::rpc::proto::scheduler_server::SchedulerServer;
    use crate::rpc::scheduler::SchedulerService;
    use crate::scheduler::replica::{ReplicaOptions, SchedulerReplica};
    use crate::scheduler::tso::system_clock;
    use crate::storage::MemoryEngine;

    struct Alone;

    impl ReplicaTransport for Alone {
        fn send(&mut self, _message: Message) {}
    }

    /// A scheduler group of one, replica `id`, in memory, and its service.
    fn scheduler_of_one(id: u64) -> (SchedulerReplica, Arc<Scheduler>) {
        let options = ReplicaOptions {
            id,
            peers: vec![id],
            tick_ms: 10,
            election_tick: 10,
            heartbeat_tick: 2,
            compact_every: 1_000,
            seed: id,
        };
        let replica = SchedulerReplica::start(MemoryEngine::new(), options, Alone).unwrap();
        let scheduler = Arc::new(Scheduler::new(replica.handle().clone(), system_clock(), 3_000));
        (replica, scheduler)
    }

    /// A scheduler group of one served over gRPC on loopback.
    async fn serve_scheduler() -> (SchedulerReplica, SocketAddr) {
        let (replica, scheduler) = scheduler_of_one(1);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(SchedulerServer::new(SchedulerService::new(scheduler)))
                .serve_with_incoming(crate::rpc::incoming(listener))
                .await;
        });
        (replica, addr)
    }

    /// A timestamp request sent to a node that never answers (a leader cut off from the
    /// others) moves to the leader this node's own replica knows of without waiting out the
    /// request deadline: with a retry budget shorter than that deadline, the call succeeds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_timestamp_request_leaves_a_silent_node_once_the_local_replica_knows_another_leader() {
        let (_replica, local) = scheduler_of_one(2);
        let deadline = Instant::now() + Duration::from_secs(10);
        while local.replica().status().leader != Some(2) {
            assert!(Instant::now() < deadline, "the replica of one never led");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Node 1 accepts connections and never says a word.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_addr = silent.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((connection, _)) = silent.accept().await {
                held.push(connection);
            }
        });
        let budget = REQUEST_TIMEOUT / 2;
        let client = SchedulerRpcClient::new(
            Some((2, local.clone())),
            vec![(1, silent_addr.to_string()), (2, "127.0.0.1:1".to_string())],
            budget,
        );
        client.leader.store(1, Ordering::Relaxed);
        let ts = client
            .timestamps(1)
            .await
            .expect("a timestamp from the known leader");
        assert!(ts > TimeStamp::default());
        assert_eq!(client.leader.load(Ordering::Relaxed), 2);
        held.abort();
    }

    /// A TCP relay to `to` whose connections can all be cut at once.
    struct Relay {
        addr: SocketAddr,
        links: Arc<Mutex<JoinSet<()>>>,
    }

    impl Relay {
        async fn start(to: SocketAddr) -> Relay {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let links = Arc::new(Mutex::new(JoinSet::new()));
            let accepted = links.clone();
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    accepted.lock().spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(to).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            });
            Relay { addr, links }
        }

        fn cut(&self) {
            self.links.lock().abort_all();
        }
    }

    /// Concurrent askers over the stream: every timestamp distinct, each asker's increasing,
    /// and all of them over one stream. When the connection breaks, the asks fail or are
    /// retried, and the next ones open a new stream whose timestamps keep increasing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn timestamps_come_over_one_stream_which_reopens_after_the_connection_breaks() {
        let (_replica, addr) = serve_scheduler().await;
        let relay = Relay::start(addr).await;
        let client = Arc::new(SchedulerRpcClient::new(
            None,
            vec![(1, relay.addr.to_string())],
            Duration::from_secs(10),
        ));
        let mut askers = JoinSet::new();
        for _ in 0..8 {
            let client = client.clone();
            askers.spawn(async move {
                let mut mine = Vec::new();
                for _ in 0..200 {
                    mine.push(client.timestamps(1).await.expect("a timestamp"));
                }
                mine
            });
        }
        let mut seen = HashSet::new();
        let mut newest = TimeStamp::default();
        while let Some(mine) = askers.join_next().await {
            let mine = mine.unwrap();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "an asker's timestamps went back"
            );
            newest = newest.max(*mine.last().unwrap());
            for ts in mine {
                assert!(seen.insert(ts), "{ts} handed out twice");
            }
        }
        assert_eq!(client.tso_links.lock().len(), 1);
        let first_link = client.tso_links.lock()[&1].clone();

        relay.cut();
        let deadline = Instant::now() + Duration::from_secs(10);
        let after = loop {
            match client.timestamps(5).await {
                Ok(ts) => break ts,
                Err(e) => assert!(Instant::now() < deadline, "no timestamps after the break: {e}"),
            }
        };
        assert!(after > newest, "{after} after {newest}");
        assert!(first_link.is_closed(), "the broken stream's task still runs");
        assert!(!client.tso_links.lock()[&1].same_channel(&first_link));
    }
}
