//! The scheduler over gRPC, serving side: [`SchedulerService`] serves a scheduler node's
//! replica; the conversions between the scheduler's types and their protobuf forms are here
//! too. The client every node uses, [`SchedulerRpcClient`], and the replicas' message
//! transport, [`ReplicaGrpcTransport`], are in `rpc::scheduler_client` (re-exported here).

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::convert::{
    peer_from_proto, peer_to_proto, raft_message_from_proto, raft_message_to_proto, region_from_proto,
    region_to_proto,
};
use super::proto;
use super::proto::scheduler_server::Scheduler as SchedulerRpc;
use crate::raft::Message;
use crate::raftstore::meta::{Peer, RegionEpoch};
use crate::raftstore::store::RaftMessage;
use crate::scheduler::board::{OperatorSummary, SchedulerStatus, SchedulerSummary};
use crate::scheduler::checkers::Step;
use crate::scheduler::replica::SchedulerError;
use crate::scheduler::service::{
    RegionQuery, RegionRoute, RegionStats, Scheduler, SchedulerApi, StoreState, StoreStats,
};
use crate::scheduler::state::StoreMeta;

async fn tso_reply(scheduler: &Scheduler, count: u32) -> proto::TsoResponse {
    match scheduler.timestamps(count).await {
        Ok(ts) => proto::TsoResponse {
            error: None,
            ts: ts.into_inner(),
        },
        Err(e) => proto::TsoResponse {
            error: Some(error_to_proto(&e)),
            ts: 0,
        },
    }
}

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

pub(super) fn error_from_proto(e: proto::SchedulerError) -> SchedulerError {
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

pub(super) fn store_to_proto(s: &StoreMeta) -> proto::StoreMeta {
    proto::StoreMeta {
        id: s.id,
        name: s.name.clone(),
        peer_addr: s.peer_addr.clone(),
        resp_addr: s.resp_addr.clone(),
    }
}

pub(super) fn store_from_proto(s: proto::StoreMeta) -> StoreMeta {
    StoreMeta {
        id: s.id,
        name: s.name,
        peer_addr: s.peer_addr,
        resp_addr: s.resp_addr,
    }
}

pub(super) fn check(error: Option<proto::SchedulerError>) -> Result<(), SchedulerError> {
    error.map_or(Ok(()), |e| Err(error_from_proto(e)))
}

pub(super) fn bad_region(e: impl std::fmt::Display) -> SchedulerError {
    SchedulerError::Refused(format!("malformed region: {e}"))
}

pub(super) fn route_from_proto(r: proto::RegionResponse) -> Result<Option<RegionRoute>, SchedulerError> {
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

pub(super) fn store_stats_to_proto(s: StoreStats) -> proto::StoreStats {
    proto::StoreStats {
        region_count: s.region_count,
        leader_count: s.leader_count,
        capacity_bytes: s.capacity_bytes,
        available_bytes: s.available_bytes,
        used_bytes: s.used_bytes,
        auto_splits: s.auto_splits,
    }
}

pub(super) fn store_stats_from_proto(s: proto::StoreStats) -> StoreStats {
    StoreStats {
        region_count: s.region_count,
        leader_count: s.leader_count,
        capacity_bytes: s.capacity_bytes,
        available_bytes: s.available_bytes,
        used_bytes: s.used_bytes,
        auto_splits: s.auto_splits,
    }
}

pub(super) fn step_to_proto(step: &Step) -> proto::OperatorStep {
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

pub(super) fn status_from_proto(r: proto::StatusResponse) -> SchedulerStatus {
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

pub(super) fn region_stats_to_proto(s: &RegionStats) -> proto::RegionStats {
    proto::RegionStats {
        approximate_size: s.approximate_size,
        approximate_keys: s.approximate_keys,
        written_bytes: s.written_bytes,
        written_keys: s.written_keys,
        pending_peers: s.pending_peers.iter().copied().map(peer_to_proto).collect(),
        down_peers: s.down_peers.iter().copied().map(peer_to_proto).collect(),
    }
}

pub(super) fn region_stats_from_proto(s: proto::RegionStats) -> RegionStats {
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

pub(super) fn store_state_from_proto(state: u32) -> Result<StoreState, SchedulerError> {
    match state {
        1 => Ok(StoreState::Up),
        2 => Ok(StoreState::Disconnected),
        3 => Ok(StoreState::Down),
        4 => Ok(StoreState::Offline),
        5 => Ok(StoreState::Tombstone),
        other => Err(SchedulerError::Refused(format!("unknown store state {other}"))),
    }
}

pub(super) fn region_query_to_proto(query: &RegionQuery) -> proto::RegionsRequest {
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
pub(super) fn replica_message_to_proto(m: Message) -> proto::ReplicaMessage {
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
        let reply = tso_reply(&self.scheduler, request.into_inner().count).await;
        Ok(Response::new(reply))
    }

    type TsoStreamStream = Pin<Box<dyn Stream<Item = Result<proto::TsoResponse, Status>> + Send>>;

    /// Answers each request of the stream in order, one at a time (the asking node's batcher
    /// has one request out at a time anyway); a request the scheduler cannot serve gets its
    /// error in the answer, and the stream stays open.
    async fn tso_stream(
        &self,
        request: Request<Streaming<proto::TsoRequest>>,
    ) -> Result<Response<Self::TsoStreamStream>, Status> {
        let scheduler = self.scheduler.clone();
        let answers = request.into_inner().then(move |request| {
            let scheduler = scheduler.clone();
            async move { Ok(tso_reply(&scheduler, request?.count).await) }
        });
        Ok(Response::new(Box::pin(answers)))
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

pub use super::scheduler_client::{ReplicaGrpcTransport, SchedulerRpcClient};
