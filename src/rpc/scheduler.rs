//! The scheduler over gRPC: [`SchedulerService`] serves a scheduler node's replica,
//! [`SchedulerRpcClient`] is the [`SchedulerApi`] every node uses, and
//! [`ReplicaGrpcTransport`] carries the replicas' raft messages.
//!
//! **Finding the leader.** The client knows every scheduler node's address (from
//! `cluster.yaml`). It sends to the replica it believes leads, follows a "not leader" answer's
//! hint, and otherwise tries the next node, with backoff, until its retry budget is spent;
//! then it fails with `Unavailable` naming what it tried. When the leader is this node's own
//! replica, it calls it in process.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::convert::{
    peer_from_proto, peer_to_proto, raft_message_from_proto, raft_message_to_proto, region_from_proto,
    region_to_proto,
};
use super::proto;
use super::proto::scheduler_client::SchedulerClient;
use super::proto::scheduler_server::Scheduler as SchedulerRpc;
use crate::raft::Message;
use crate::raftstore::meta::{Peer, Region, RegionEpoch};
use crate::raftstore::store::RaftMessage;
use crate::scheduler::board::{OperatorSummary, SchedulerStatus, SchedulerSummary};
use crate::scheduler::checkers::Step;
use crate::scheduler::replica::{ReplicaTransport, SchedulerError};
use crate::scheduler::service::{
    ClusterInfo, RegionInfo, RegionQuery, RegionRoute, RegionStats, Scheduler, SchedulerApi, StoreInfo,
    StoreState, StoreStats,
};
use crate::scheduler::state::StoreMeta;
use crate::scheduler::tso::TimeStamp;

fn error_to_proto(e: &SchedulerError) -> proto::SchedulerError {
    let (kind, leader) = match e {
        SchedulerError::NotLeader { leader } => (1, leader.unwrap_or(0)),
        SchedulerError::Stopped => (2, 0),
        SchedulerError::Storage(_) => (3, 0),
        SchedulerError::Unavailable(_) => (4, 0),
        SchedulerError::NotBootstrapped => (5, 0),
        SchedulerError::Refused(_) => (6, 0),
    };
    proto::SchedulerError {
        kind,
        leader,
        message: e.to_string(),
    }
}

fn error_from_proto(e: proto::SchedulerError) -> SchedulerError {
    match e.kind {
        1 => SchedulerError::NotLeader {
            leader: (e.leader != 0).then_some(e.leader),
        },
        2 => SchedulerError::Stopped,
        3 => SchedulerError::Storage(e.message),
        5 => SchedulerError::NotBootstrapped,
        6 => SchedulerError::Refused(e.message),
        _ => SchedulerError::Unavailable(e.message),
    }
}

fn store_to_proto(s: &StoreMeta) -> proto::StoreMeta {
    proto::StoreMeta {
        id: s.id,
        name: s.name.clone(),
        peer_addr: s.peer_addr.clone(),
        resp_addr: s.resp_addr.clone(),
    }
}

fn store_from_proto(s: proto::StoreMeta) -> StoreMeta {
    StoreMeta {
        id: s.id,
        name: s.name,
        peer_addr: s.peer_addr,
        resp_addr: s.resp_addr,
    }
}

fn check(error: Option<proto::SchedulerError>) -> Result<(), SchedulerError> {
    error.map_or(Ok(()), |e| Err(error_from_proto(e)))
}

fn bad_region(e: impl std::fmt::Display) -> SchedulerError {
    SchedulerError::Refused(format!("malformed region: {e}"))
}

fn route_from_proto(r: proto::RegionResponse) -> Result<Option<RegionRoute>, SchedulerError> {
    check(r.error)?;
    let Some(region) = r.region else {
        return Ok(None);
    };
    Ok(Some(RegionRoute {
        region: region_from_proto(region).map_err(bad_region)?,
        leader: r.leader.and_then(|l| peer_from_proto(Some(l), "leader").ok()),
    }))
}

fn route_to_proto(r: Result<Option<RegionRoute>, SchedulerError>) -> proto::RegionResponse {
    match r {
        Ok(route) => proto::RegionResponse {
            error: None,
            region: route.as_ref().map(|r| region_to_proto(&r.region)),
            leader: route.and_then(|r| r.leader).map(peer_to_proto),
        },
        Err(e) => proto::RegionResponse {
            error: Some(error_to_proto(&e)),
            ..Default::default()
        },
    }
}

fn store_stats_to_proto(s: StoreStats) -> proto::StoreStats {
    proto::StoreStats {
        region_count: s.region_count,
        leader_count: s.leader_count,
        capacity_bytes: s.capacity_bytes,
        available_bytes: s.available_bytes,
        used_bytes: s.used_bytes,
        auto_splits: s.auto_splits,
    }
}

fn store_stats_from_proto(s: proto::StoreStats) -> StoreStats {
    StoreStats {
        region_count: s.region_count,
        leader_count: s.leader_count,
        capacity_bytes: s.capacity_bytes,
        available_bytes: s.available_bytes,
        used_bytes: s.used_bytes,
        auto_splits: s.auto_splits,
    }
}

fn step_to_proto(step: &Step) -> proto::OperatorStep {
    let (kind, store, key) = match step {
        Step::AddPeer { store } => (1, *store, Vec::new()),
        Step::RemovePeer { store } => (2, *store, Vec::new()),
        Step::TransferLeader { store } => (3, *store, Vec::new()),
        Step::Split { key } => (4, 0, key.clone()),
    };
    proto::OperatorStep { kind, store, key }
}

fn step_from_proto(step: proto::OperatorStep) -> Result<Step, Status> {
    Ok(match step.kind {
        1 => Step::AddPeer { store: step.store },
        2 => Step::RemovePeer { store: step.store },
        3 => Step::TransferLeader { store: step.store },
        4 => Step::Split { key: step.key },
        other => {
            return Err(Status::invalid_argument(format!(
                "unknown operator step kind {other}"
            )));
        }
    })
}

fn status_to_proto(status: SchedulerStatus) -> proto::StatusResponse {
    proto::StatusResponse {
        error: None,
        leader: status.leader,
        schedulers: status
            .schedulers
            .into_iter()
            .map(|s| proto::SchedulerSummary {
                name: s.name,
                paused: s.paused,
                counters: s
                    .counters
                    .into_iter()
                    .map(|(name, value)| proto::Counter { name, value })
                    .collect(),
            })
            .collect(),
        operators: status
            .operators
            .into_iter()
            .map(|o| proto::OperatorSummary {
                region_id: o.region_id,
                scheduler: o.scheduler,
                steps: o.steps,
                step: o.step,
                age_ms: o.age_ms,
            })
            .collect(),
    }
}

fn status_from_proto(r: proto::StatusResponse) -> SchedulerStatus {
    SchedulerStatus {
        leader: r.leader,
        schedulers: r
            .schedulers
            .into_iter()
            .map(|s| SchedulerSummary {
                name: s.name,
                paused: s.paused,
                counters: s.counters.into_iter().map(|c| (c.name, c.value)).collect(),
            })
            .collect(),
        operators: r
            .operators
            .into_iter()
            .map(|o| OperatorSummary {
                region_id: o.region_id,
                scheduler: o.scheduler,
                steps: o.steps,
                step: o.step,
                age_ms: o.age_ms,
            })
            .collect(),
    }
}

fn region_stats_to_proto(s: &RegionStats) -> proto::RegionStats {
    proto::RegionStats {
        approximate_size: s.approximate_size,
        approximate_keys: s.approximate_keys,
        written_bytes: s.written_bytes,
        written_keys: s.written_keys,
        pending_peers: s.pending_peers.iter().copied().map(peer_to_proto).collect(),
        down_peers: s.down_peers.iter().copied().map(peer_to_proto).collect(),
    }
}

fn region_stats_from_proto(s: proto::RegionStats) -> RegionStats {
    let peers = |peers: Vec<proto::Peer>| {
        peers
            .into_iter()
            .filter_map(|p| peer_from_proto(Some(p), "region stats").ok())
            .collect()
    };
    RegionStats {
        approximate_size: s.approximate_size,
        approximate_keys: s.approximate_keys,
        written_bytes: s.written_bytes,
        written_keys: s.written_keys,
        pending_peers: peers(s.pending_peers),
        down_peers: peers(s.down_peers),
    }
}

fn store_state_to_proto(state: StoreState) -> u32 {
    match state {
        StoreState::Up => 1,
        StoreState::Disconnected => 2,
        StoreState::Down => 3,
        StoreState::Offline => 4,
        StoreState::Tombstone => 5,
    }
}

fn store_state_from_proto(state: u32) -> Result<StoreState, SchedulerError> {
    match state {
        1 => Ok(StoreState::Up),
        2 => Ok(StoreState::Disconnected),
        3 => Ok(StoreState::Down),
        4 => Ok(StoreState::Offline),
        5 => Ok(StoreState::Tombstone),
        other => Err(SchedulerError::Refused(format!("unknown store state {other}"))),
    }
}

fn region_query_to_proto(query: &RegionQuery) -> proto::RegionsRequest {
    match query {
        RegionQuery::Id(id) => proto::RegionsRequest {
            id: *id,
            ..Default::default()
        },
        RegionQuery::Key(key) => proto::RegionsRequest {
            by_key: true,
            key: key.clone(),
            ..Default::default()
        },
        RegionQuery::From { from, limit } => proto::RegionsRequest {
            key: from.clone(),
            limit: *limit as u64,
            ..Default::default()
        },
    }
}

fn region_query_from_proto(r: proto::RegionsRequest) -> RegionQuery {
    if r.id != 0 {
        RegionQuery::Id(r.id)
    } else if r.by_key {
        RegionQuery::Key(r.key)
    } else {
        RegionQuery::From {
            from: r.key,
            limit: usize::try_from(r.limit).unwrap_or(usize::MAX),
        }
    }
}

/// A replica's raft message in its wire form.
fn replica_message_to_proto(m: Message) -> proto::ReplicaMessage {
    let snapshot_data = m.snapshot.as_ref().map(|s| s.data.clone()).unwrap_or_default();
    let wrapped = RaftMessage {
        region_id: 0,
        from_peer: Peer {
            id: m.from,
            store_id: 0,
        },
        to_peer: Peer {
            id: m.to,
            store_id: 0,
        },
        epoch: RegionEpoch::default(),
        message: m,
    };
    proto::ReplicaMessage {
        message: Some(raft_message_to_proto(&wrapped)),
        snapshot_data,
    }
}

fn replica_message_from_proto(m: proto::ReplicaMessage) -> Result<Message, Status> {
    let wire = m
        .message
        .ok_or_else(|| Status::invalid_argument("a replica message without its message"))?;
    let is_snapshot = wire.message.as_ref().is_some_and(|m| m.snapshot.is_some());
    let data = is_snapshot.then_some(m.snapshot_data);
    raft_message_from_proto(wire, data)
        .map(|m| m.message)
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

/// The `Scheduler` service of a scheduler node.
pub struct SchedulerService {
    scheduler: Arc<Scheduler>,
}

impl SchedulerService {
    pub fn new(scheduler: Arc<Scheduler>) -> Self {
        SchedulerService { scheduler }
    }
}

#[tonic::async_trait]
impl SchedulerRpc for SchedulerService {
    async fn step(&self, request: Request<proto::ReplicaMessages>) -> Result<Response<proto::Done>, Status> {
        for m in request.into_inner().messages {
            self.scheduler.replica().step(replica_message_from_proto(m)?);
        }
        Ok(Response::new(proto::Done {}))
    }

    async fn tso(&self, request: Request<proto::TsoRequest>) -> Result<Response<proto::TsoResponse>, Status> {
        let reply = match self.scheduler.timestamps(request.into_inner().count).await {
            Ok(ts) => proto::TsoResponse {
                error: None,
                ts: ts.into_inner(),
            },
            Err(e) => proto::TsoResponse {
                error: Some(error_to_proto(&e)),
                ts: 0,
            },
        };
        Ok(Response::new(reply))
    }

    async fn alloc_ids(
        &self,
        request: Request<proto::AllocIdsRequest>,
    ) -> Result<Response<proto::AllocIdsResponse>, Status> {
        let reply = match self.scheduler.alloc_ids(request.into_inner().count).await {
            Ok(first) => proto::AllocIdsResponse { error: None, first },
            Err(e) => proto::AllocIdsResponse {
                error: Some(error_to_proto(&e)),
                first: 0,
            },
        };
        Ok(Response::new(reply))
    }

    async fn bootstrap(
        &self,
        request: Request<proto::BootstrapRequest>,
    ) -> Result<Response<proto::BootstrapResponse>, Status> {
        let r = request.into_inner();
        let region = r
            .first_region
            .ok_or_else(|| Status::invalid_argument("bootstrap without a first region"))
            .and_then(|region| {
                region_from_proto(region).map_err(|e| Status::invalid_argument(e.to_string()))
            })?;
        let stores = r.stores.into_iter().map(store_from_proto).collect();
        let reply = match self
            .scheduler
            .bootstrap(r.cluster_id, stores, region, r.next_id)
            .await
        {
            Ok(cluster_id) => proto::BootstrapResponse {
                error: None,
                cluster_id,
            },
            Err(e) => proto::BootstrapResponse {
                error: Some(error_to_proto(&e)),
                cluster_id: 0,
            },
        };
        Ok(Response::new(reply))
    }

    async fn cluster(
        &self,
        _: Request<proto::ClusterRequest>,
    ) -> Result<Response<proto::ClusterResponse>, Status> {
        let reply = match self.scheduler.cluster().await {
            Ok(info) => proto::ClusterResponse {
                error: None,
                cluster_id: info.cluster_id,
                stores: info.stores.iter().map(store_to_proto).collect(),
                first_region: info.first_region.as_ref().map(region_to_proto),
            },
            Err(e) => proto::ClusterResponse {
                error: Some(error_to_proto(&e)),
                ..Default::default()
            },
        };
        Ok(Response::new(reply))
    }

    async fn put_store(
        &self,
        request: Request<proto::PutStoreRequest>,
    ) -> Result<Response<proto::SchedulerResult>, Status> {
        let store = request
            .into_inner()
            .store
            .ok_or_else(|| Status::invalid_argument("put_store without a store"))?;
        let result = self.scheduler.put_store(store_from_proto(store)).await;
        Ok(Response::new(proto::SchedulerResult {
            error: result.err().as_ref().map(error_to_proto),
        }))
    }

    async fn region_by_key(
        &self,
        request: Request<proto::RegionByKeyRequest>,
    ) -> Result<Response<proto::RegionResponse>, Status> {
        let route = self.scheduler.region_by_key(request.into_inner().key).await;
        Ok(Response::new(route_to_proto(route)))
    }

    async fn region_by_id(
        &self,
        request: Request<proto::RegionByIdRequest>,
    ) -> Result<Response<proto::RegionResponse>, Status> {
        let route = self.scheduler.region_by_id(request.into_inner().id).await;
        Ok(Response::new(route_to_proto(route)))
    }

    async fn get_store(
        &self,
        request: Request<proto::GetStoreRequest>,
    ) -> Result<Response<proto::GetStoreResponse>, Status> {
        let reply = match self.scheduler.store(request.into_inner().id).await {
            Ok(store) => proto::GetStoreResponse {
                error: None,
                store: store.as_ref().map(store_to_proto),
            },
            Err(e) => proto::GetStoreResponse {
                error: Some(error_to_proto(&e)),
                store: None,
            },
        };
        Ok(Response::new(reply))
    }

    async fn store_heartbeat(
        &self,
        request: Request<proto::StoreHeartbeatRequest>,
    ) -> Result<Response<proto::SchedulerResult>, Status> {
        let r = request.into_inner();
        let store = r
            .store
            .ok_or_else(|| Status::invalid_argument("a store heartbeat without its store"))?;
        let stats = store_stats_from_proto(r.stats.unwrap_or_default());
        let result = self
            .scheduler
            .store_heartbeat(store_from_proto(store), stats)
            .await;
        Ok(Response::new(proto::SchedulerResult {
            error: result.err().as_ref().map(error_to_proto),
        }))
    }

    async fn region_heartbeat(
        &self,
        request: Request<proto::RegionHeartbeatRequest>,
    ) -> Result<Response<proto::SchedulerResult>, Status> {
        let r = request.into_inner();
        let region = r
            .region
            .ok_or_else(|| Status::invalid_argument("a heartbeat without its region"))
            .and_then(|region| {
                region_from_proto(region).map_err(|e| Status::invalid_argument(e.to_string()))
            })?;
        let leader = peer_from_proto(r.leader, "heartbeat leader")
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let stats = region_stats_from_proto(r.stats.unwrap_or_default());
        let result = self.scheduler.region_heartbeat(region, leader, stats).await;
        Ok(Response::new(proto::SchedulerResult {
            error: result.err().as_ref().map(error_to_proto),
        }))
    }

    async fn regions(
        &self,
        request: Request<proto::RegionsRequest>,
    ) -> Result<Response<proto::RegionsResponse>, Status> {
        let query = region_query_from_proto(request.into_inner());
        let reply = match self.scheduler.regions(query).await {
            Ok(regions) => proto::RegionsResponse {
                error: None,
                regions: regions
                    .into_iter()
                    .map(|info| proto::RegionInfo {
                        region: Some(region_to_proto(&info.region)),
                        leader: info.leader.map(peer_to_proto),
                        stats: info.stats.as_ref().map(region_stats_to_proto),
                    })
                    .collect(),
            },
            Err(e) => proto::RegionsResponse {
                error: Some(error_to_proto(&e)),
                regions: Vec::new(),
            },
        };
        Ok(Response::new(reply))
    }

    async fn stores(
        &self,
        _: Request<proto::StoresRequest>,
    ) -> Result<Response<proto::StoresResponse>, Status> {
        let reply = match self.scheduler.stores().await {
            Ok(stores) => proto::StoresResponse {
                error: None,
                stores: stores
                    .into_iter()
                    .map(|info| proto::StoreInfo {
                        store: Some(store_to_proto(&info.meta)),
                        state: store_state_to_proto(info.state),
                        stats: info.stats.map(store_stats_to_proto),
                    })
                    .collect(),
            },
            Err(e) => proto::StoresResponse {
                error: Some(error_to_proto(&e)),
                stores: Vec::new(),
            },
        };
        Ok(Response::new(reply))
    }
    async fn remove_store(
        &self,
        request: Request<proto::RemoveStoreRequest>,
    ) -> Result<Response<proto::SchedulerResult>, Status> {
        let result = self.scheduler.remove_store(request.into_inner().id).await;
        Ok(Response::new(proto::SchedulerResult {
            error: result.err().as_ref().map(error_to_proto),
        }))
    }

    async fn pause_scheduler(
        &self,
        request: Request<proto::PauseSchedulerRequest>,
    ) -> Result<Response<proto::SchedulerResult>, Status> {
        let r = request.into_inner();
        let result = self.scheduler.pause_scheduler(r.name, r.paused).await;
        Ok(Response::new(proto::SchedulerResult {
            error: result.err().as_ref().map(error_to_proto),
        }))
    }

    async fn run_operator(
        &self,
        request: Request<proto::RunOperatorRequest>,
    ) -> Result<Response<proto::SchedulerResult>, Status> {
        let r = request.into_inner();
        let steps = r
            .steps
            .into_iter()
            .map(step_from_proto)
            .collect::<Result<Vec<_>, _>>()?;
        let result = self.scheduler.run_operator(r.region_id, steps).await;
        Ok(Response::new(proto::SchedulerResult {
            error: result.err().as_ref().map(error_to_proto),
        }))
    }

    async fn status(
        &self,
        _: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusResponse>, Status> {
        let reply = match self.scheduler.status().await {
            Ok(status) => status_to_proto(status),
            Err(e) => proto::StatusResponse {
                error: Some(error_to_proto(&e)),
                ..Default::default()
            },
        };
        Ok(Response::new(reply))
    }
}

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
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .ok()?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    Some(SchedulerClient::new(endpoint.connect_lazy()))
}

/// See the module docs.
pub struct SchedulerRpcClient {
    /// This node's own replica, with its id, if it hosts one.
    local: Option<(u64, Arc<Scheduler>)>,
    /// Every scheduler node: replica id and address.
    nodes: Vec<(u64, String)>,
    leader: AtomicU64,
    clients: Mutex<HashMap<u64, SchedulerClient<Channel>>>,
    budget: Duration,
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
            budget,
        }
    }

    fn remote(&self, replica: u64) -> Option<SchedulerClient<Channel>> {
        if let Some(client) = self.clients.lock().get(&replica) {
            return Some(client.clone());
        }
        let addr = &self.nodes.iter().find(|(id, _)| *id == replica)?.1;
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .ok()?
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        let client = SchedulerClient::new(endpoint.connect_lazy());
        self.clients.lock().insert(replica, client.clone());
        Some(client)
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
        let deadline = Instant::now() + self.budget;
        let mut attempt = 0u32;
        let mut last_error = SchedulerError::Unavailable("no scheduler node configured".into());
        while !self.nodes.is_empty() {
            let replica = self.leader.load(Ordering::Relaxed);
            let result = match &self.local {
                Some((id, scheduler)) if *id == replica => local(scheduler.clone()).await,
                _ => match self.remote(replica) {
                    Some(client) => remote(client).await.map_err(|e| match e {
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
        self.call(
            "timestamps",
            |s| async move { s.timestamps(count).await },
            |mut c| async move {
                let r = c
                    .tso(proto::TsoRequest { count })
                    .await
                    .map_err(|s| unreachable(&s))?
                    .into_inner();
                check(r.error)?;
                Ok(TimeStamp::new(r.ts))
            },
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
        self.call(
            "run_operator",
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
