//! The KV service over gRPC: [`KvService`] serves the Percolator commands of `proto/kv.proto`
//! with the node's transaction server, and `kv_client::KvRpcClient` sends them to one remote
//! store.
//!
//! Every request names its region (id, epoch, peer). The service answers `RegionNotFound`
//! when this store has no peer of it, `EpochNotMatch` (with the region as this store has it)
//! when the epochs differ, and `KeyNotInRegion` when the request's first key is not in it;
//! only then does the transaction server run the command (which checks leadership itself).
//!
//! Errors travel as `KvError { kind, ... }`; the kinds are the constants below, each with
//! the fields it uses. A kind this code does not know decodes as a remote failure.
//!
//! `Get`, `Prewrite` and `Commit`, the commands every `GET`, `SET` and `EXEC` forwarded to
//! another node send, also travel over `BatchCommands`: one stream per pair of nodes, each
//! command run in a task of its own as it arrives and answered under its id as soon as it is
//! done, the answers ready at one moment sharing a message.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use futures_util::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{ConvertError, peer_from_proto, peer_to_proto, region_from_proto, region_to_proto};
use super::proto;
use super::proto::kv_server::Kv;
use crate::percolator::actions::{Action, Mutation, Op, TxnStatus};
use crate::percolator::commands::PrewriteRequest;
use crate::percolator::key::Key;
use crate::percolator::records::LockInfo;
use crate::percolator::server::{KvApi, TxnServer};
use crate::percolator::{MvccError, ScanLimits};
use crate::raftstore::cmd::RaftstoreError;
use crate::raftstore::meta::{Peer, RegionEpoch};
use crate::scheduler::tso::TimeStamp;
use crate::storage::Engine;

const KEY_IS_LOCKED: u32 = 1;
const WRITE_CONFLICT: u32 = 2;
const COMMITTED: u32 = 3;
const ROLLED_BACK: u32 = 4;
const TXN_LOCK_NOT_FOUND: u32 = 5;
const BAD_FORMAT: u32 = 6;
const STORAGE: u32 = 7;
const TIMESTAMP: u32 = 8;
const NOT_LEADER: u32 = 20;
const REGION_NOT_FOUND: u32 = 21;
const KEY_NOT_IN_REGION: u32 = 22;
const EPOCH_NOT_MATCH: u32 = 23;
const STALE_COMMAND: u32 = 24;
const UNDETERMINED: u32 = 25;
const STORE_NOT_MATCH: u32 = 26;
const PEER_NOT_MATCH: u32 = 27;
const INVALID_COMMAND: u32 = 28;
const REGION_OTHER: u32 = 29;
const LEADER_NOT_READY: u32 = 31;
const STORE_STOPPED: u32 = 32;

/// Where a request is routed: the region and the peer believed to lead it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionContext {
    pub region_id: u64,
    pub epoch: RegionEpoch,
    pub peer: Peer,
}

pub(super) fn context_to_proto(ctx: &RegionContext) -> proto::Context {
    proto::Context {
        region_id: ctx.region_id,
        epoch: Some(proto::RegionEpoch {
            conf_ver: ctx.epoch.conf_ver,
            version: ctx.epoch.version,
        }),
        peer: Some(peer_to_proto(ctx.peer)),
    }
}

fn context_from_proto(ctx: Option<proto::Context>) -> Result<RegionContext, ConvertError> {
    let ctx = ctx.ok_or_else(|| ConvertError {
        what: "kv request",
        detail: "no region context".into(),
    })?;
    let epoch = ctx.epoch.unwrap_or_default();
    Ok(RegionContext {
        region_id: ctx.region_id,
        epoch: RegionEpoch {
            conf_ver: epoch.conf_ver,
            version: epoch.version,
        },
        peer: peer_from_proto(ctx.peer, "region context")?,
    })
}

pub(super) fn ts(v: u64) -> TimeStamp {
    TimeStamp::new(v)
}

pub fn error_to_proto(e: &MvccError) -> proto::KvError {
    let mut p = proto::KvError {
        message: e.to_string(),
        ..Default::default()
    };
    match e {
        MvccError::KeyIsLocked(lock) => {
            p.kind = KEY_IS_LOCKED;
            p.key = lock.key.clone();
            p.primary = lock.primary.clone();
            p.start_ts = lock.start_ts.into_inner();
            p.ttl_ms = lock.ttl_ms;
        }
        MvccError::WriteConflict {
            key,
            primary,
            start_ts,
            conflict_start_ts,
            conflict_commit_ts,
        } => {
            p.kind = WRITE_CONFLICT;
            p.key = key.clone();
            p.primary = primary.clone();
            p.start_ts = start_ts.into_inner();
            p.other_ts = conflict_start_ts.into_inner();
            p.commit_ts = conflict_commit_ts.into_inner();
        }
        MvccError::Committed {
            key,
            start_ts,
            commit_ts,
        } => {
            p.kind = COMMITTED;
            p.key = key.clone();
            p.start_ts = start_ts.into_inner();
            p.commit_ts = commit_ts.into_inner();
        }
        MvccError::RolledBack { key, start_ts } => {
            p.kind = ROLLED_BACK;
            p.key = key.clone();
            p.start_ts = start_ts.into_inner();
        }
        MvccError::TxnLockNotFound { key, start_ts } => {
            p.kind = TXN_LOCK_NOT_FOUND;
            p.key = key.clone();
            p.start_ts = start_ts.into_inner();
        }
        MvccError::BadFormat(_) => p.kind = BAD_FORMAT,
        MvccError::Storage(_) => p.kind = STORAGE,
        MvccError::Timestamp(_) => p.kind = TIMESTAMP,
        MvccError::Region(region) => match region {
            RaftstoreError::NotLeader { region_id, leader } => {
                p.kind = NOT_LEADER;
                p.region_id = *region_id;
                p.leader = leader.map(peer_to_proto);
            }
            RaftstoreError::RegionNotFound(id) => {
                p.kind = REGION_NOT_FOUND;
                p.region_id = *id;
            }
            RaftstoreError::KeyNotInRegion {
                key,
                region_id,
                start_key,
                end_key,
            } => {
                p.kind = KEY_NOT_IN_REGION;
                p.key = key.clone();
                p.region_id = *region_id;
                p.start_key = start_key.clone();
                p.end_key = end_key.clone();
            }
            RaftstoreError::EpochNotMatch { current } => {
                p.kind = EPOCH_NOT_MATCH;
                p.regions = current.iter().map(region_to_proto).collect();
            }
            RaftstoreError::StaleCommand => p.kind = STALE_COMMAND,
            RaftstoreError::Undetermined => p.kind = UNDETERMINED,
            RaftstoreError::StoreNotMatch { requested, actual } => {
                p.kind = STORE_NOT_MATCH;
                p.requested = *requested;
                p.actual = *actual;
            }
            RaftstoreError::PeerNotMatch { requested, actual } => {
                p.kind = PEER_NOT_MATCH;
                p.requested = *requested;
                p.actual = *actual;
            }
            RaftstoreError::InvalidCommand(_) => p.kind = INVALID_COMMAND,
            RaftstoreError::LeaderNotReady { region_id } => {
                p.kind = LEADER_NOT_READY;
                p.region_id = *region_id;
            }
            RaftstoreError::StoreStopped => p.kind = STORE_STOPPED,
            _ => p.kind = REGION_OTHER,
        },
    }
    p
}

pub fn error_from_proto(p: proto::KvError) -> MvccError {
    let region = |e| MvccError::Region(e);
    match p.kind {
        KEY_IS_LOCKED => MvccError::KeyIsLocked(LockInfo {
            key: p.key,
            primary: p.primary,
            start_ts: ts(p.start_ts),
            ttl_ms: p.ttl_ms,
        }),
        WRITE_CONFLICT => MvccError::WriteConflict {
            key: p.key,
            primary: p.primary,
            start_ts: ts(p.start_ts),
            conflict_start_ts: ts(p.other_ts),
            conflict_commit_ts: ts(p.commit_ts),
        },
        COMMITTED => MvccError::Committed {
            key: p.key,
            start_ts: ts(p.start_ts),
            commit_ts: ts(p.commit_ts),
        },
        ROLLED_BACK => MvccError::RolledBack {
            key: p.key,
            start_ts: ts(p.start_ts),
        },
        TXN_LOCK_NOT_FOUND => MvccError::TxnLockNotFound {
            key: p.key,
            start_ts: ts(p.start_ts),
        },
        BAD_FORMAT => MvccError::BadFormat(p.message),
        TIMESTAMP => MvccError::Timestamp(p.message),
        NOT_LEADER => region(RaftstoreError::NotLeader {
            region_id: p.region_id,
            leader: p.leader.and_then(|l| peer_from_proto(Some(l), "leader").ok()),
        }),
        REGION_NOT_FOUND => region(RaftstoreError::RegionNotFound(p.region_id)),
        KEY_NOT_IN_REGION => region(RaftstoreError::KeyNotInRegion {
            key: p.key,
            region_id: p.region_id,
            start_key: p.start_key,
            end_key: p.end_key,
        }),
        EPOCH_NOT_MATCH => region(RaftstoreError::EpochNotMatch {
            current: p
                .regions
                .into_iter()
                .filter_map(|r| region_from_proto(r).ok())
                .collect(),
        }),
        STALE_COMMAND => region(RaftstoreError::StaleCommand),
        UNDETERMINED => region(RaftstoreError::Undetermined),
        STORE_NOT_MATCH => region(RaftstoreError::StoreNotMatch {
            requested: p.requested,
            actual: p.actual,
        }),
        PEER_NOT_MATCH => region(RaftstoreError::PeerNotMatch {
            requested: p.requested,
            actual: p.actual,
        }),
        INVALID_COMMAND => region(RaftstoreError::InvalidCommand(p.message)),
        LEADER_NOT_READY => region(RaftstoreError::LeaderNotReady {
            region_id: p.region_id,
        }),
        STORE_STOPPED => region(RaftstoreError::StoreStopped),
        // Storage failures and anything newer than this code: the remote node failed.
        _ => region(RaftstoreError::Remote(p.message)),
    }
}

pub(super) fn mutation_to_proto(m: &Mutation) -> proto::Mutation {
    let (op, value) = match &m.op {
        Op::Put(value) => (1, value.clone()),
        Op::Delete => (2, Vec::new()),
        Op::Lock => (3, Vec::new()),
    };
    proto::Mutation {
        key: m.key.clone(),
        op,
        value,
        unchanged_since: m.unchanged_since.map_or(0, TimeStamp::into_inner),
    }
}

fn mutation_from_proto(m: proto::Mutation) -> Result<Mutation, ConvertError> {
    let op = match m.op {
        1 => Op::Put(m.value),
        2 => Op::Delete,
        3 => Op::Lock,
        other => {
            return Err(ConvertError {
                what: "mutation",
                detail: format!("unknown op {other}"),
            });
        }
    };
    Ok(Mutation {
        key: m.key,
        op,
        unchanged_since: (m.unchanged_since != 0).then(|| ts(m.unchanged_since)),
    })
}

fn invalid(e: ConvertError) -> Status {
    Status::invalid_argument(e.to_string())
}

/// Hands out fresh ids (the scheduler's allocator), for the regions and peers of a split.
#[tonic::async_trait]
pub trait IdAllocator: Send + Sync + 'static {
    /// Reserves `count` consecutive ids; returns the first.
    async fn alloc_ids(&self, count: u64) -> Result<u64, String>;
}

/// Splits the region holding the encoded key `encoded` at it, proposing the split at `store`,
/// which must lead the region; new region and peer ids come from `ids`. Returns the id of the
/// region that starts at the key (at once if one already does).
pub async fn propose_split<E: Engine>(
    store: &crate::raftstore::driver::StoreHandle<E>,
    ids: &dyn IdAllocator,
    encoded: Vec<u8>,
) -> Result<u64, MvccError> {
    let view = store
        .region_for_key(&encoded)
        .ok_or(MvccError::Region(RaftstoreError::RegionNotFound(0)))?;
    if view.region.start_key == encoded {
        return Ok(view.region.id);
    }
    let header = store
        .leader_header(view.region.id)
        .await
        .map_err(MvccError::Region)?;
    let count = view.region.peers.len() as u64 + 1;
    let first = ids
        .alloc_ids(count)
        .await
        .map_err(|e| MvccError::Region(RaftstoreError::Remote(e)))?;
    let command = crate::raftstore::cmd::RaftCommand {
        header,
        body: crate::raftstore::cmd::CommandBody::Admin(crate::raftstore::cmd::AdminCommand::Split {
            split_key: encoded,
            new_region_id: first,
            new_peer_ids: (first + 1..first + count).collect(),
        }),
    };
    store.propose(command).await.map_err(MvccError::Region)?;
    Ok(first)
}

/// What the `Kv` service serves with, once the store runs.
pub struct KvBackend<E: Engine> {
    pub server: Arc<TxnServer<E>>,
    pub ids: Arc<dyn IdAllocator>,
}

/// The `Kv` service of a node.
pub struct KvService<E: Engine> {
    /// Set once the store runs.
    slot: Arc<OnceLock<KvBackend<E>>>,
}

impl<E: Engine> Clone for KvService<E> {
    fn clone(&self) -> Self {
        KvService {
            slot: self.slot.clone(),
        }
    }
}

/// The answers of one `BatchCommands` stream.
type AnswerStream = Pin<Box<dyn Stream<Item = Result<proto::BatchCommandsResponse, Status>> + Send>>;

impl<E: Engine + Clone> KvService<E> {
    /// Runs one command of a batch stream, as its unary call would.
    async fn answer(&self, command: proto::BatchCommand) -> proto::BatchAnswer {
        use proto::batch_answer::Response as Answer;
        use proto::batch_command::Request as Command;
        let refused = |status: Status| {
            Answer::Refused(proto::Refusal {
                code: status.code() as i32,
                message: status.message().to_string(),
            })
        };
        let response = match command.request {
            Some(Command::Get(request)) => match self.get(Request::new(request)).await {
                Ok(response) => Answer::Get(response.into_inner()),
                Err(status) => refused(status),
            },
            Some(Command::Prewrite(request)) => match self.prewrite(Request::new(request)).await {
                Ok(response) => Answer::Prewrite(response.into_inner()),
                Err(status) => refused(status),
            },
            Some(Command::Commit(request)) => match self.commit(Request::new(request)).await {
                Ok(response) => Answer::Commit(response.into_inner()),
                Err(status) => refused(status),
            },
            None => refused(Status::invalid_argument("a batch command without a request")),
        };
        proto::BatchAnswer {
            id: command.id,
            response: Some(response),
        }
    }
}

impl<E: Engine> KvService<E> {
    /// A service that answers "unavailable" until its backend is set in the returned slot.
    pub fn lazy() -> (Self, Arc<OnceLock<KvBackend<E>>>) {
        let slot = Arc::new(OnceLock::new());
        (KvService { slot: slot.clone() }, slot)
    }

    fn server(&self) -> Result<&Arc<TxnServer<E>>, Status> {
        self.backend().map(|b| &b.server)
    }

    fn backend(&self) -> Result<&KvBackend<E>, Status> {
        self.slot
            .get()
            .ok_or_else(|| Status::unavailable("the store is starting"))
    }

    /// Splits the region holding the user key `key` at it (see [`propose_split`]).
    async fn split_at(&self, key: &[u8]) -> Result<u64, MvccError> {
        let backend = self
            .backend()
            .map_err(|s| MvccError::Region(RaftstoreError::Remote(s.message().into())))?;
        let encoded = Key::from_raw(key).as_encoded().to_vec();
        propose_split(backend.server.store(), backend.ids.as_ref(), encoded).await
    }

    /// Checks that the request's region is here, at its epoch, and holds `key` (a user key).
    fn check(&self, ctx: Option<proto::Context>, key: &[u8]) -> Result<Result<(), MvccError>, Status> {
        let ctx = context_from_proto(ctx).map_err(invalid)?;
        let store = self.server()?.store();
        let Some(view) = store.region_by_id(ctx.region_id) else {
            return Ok(Err(MvccError::Region(RaftstoreError::RegionNotFound(
                ctx.region_id,
            ))));
        };
        if view.region.epoch != ctx.epoch {
            return Ok(Err(MvccError::Region(RaftstoreError::EpochNotMatch {
                current: vec![view.region],
            })));
        }
        let encoded = Key::from_raw(key);
        if !view.region.contains(encoded.as_encoded()) {
            return Ok(Err(MvccError::Region(RaftstoreError::KeyNotInRegion {
                key: encoded.as_encoded().to_vec(),
                region_id: view.region.id,
                start_key: view.region.start_key.clone(),
                end_key: view.region.end_key.clone(),
            })));
        }
        Ok(Ok(()))
    }
}

fn first(keys: &[Vec<u8>]) -> &[u8] {
    keys.first().map_or(&[], Vec::as_slice)
}

fn result_of(r: Result<(), MvccError>) -> proto::Result {
    proto::Result {
        error: r.err().as_ref().map(error_to_proto),
    }
}

#[tonic::async_trait]
impl<E: Engine + Clone> Kv for KvService<E> {
    type BatchCommandsStream = AnswerStream;

    async fn batch_commands(
        &self,
        request: Request<Streaming<proto::BatchCommandsRequest>>,
    ) -> Result<Response<AnswerStream>, Status> {
        let mut inbound = request.into_inner();
        let (answers, answered) = mpsc::unbounded_channel();
        let service = self.clone();
        // Reads commands until the client closes its side or the stream breaks; the answer
        // stream ends once every command read has been answered.
        tokio::spawn(async move {
            while let Ok(Some(batch)) = inbound.message().await {
                for command in batch.commands {
                    let (service, answers) = (service.clone(), answers.clone());
                    tokio::spawn(async move {
                        let _ = answers.send(service.answer(command).await);
                    });
                }
            }
        });
        let stream = futures_util::stream::unfold(answered, |mut answered| async move {
            let first = answered.recv().await?;
            let mut batch = vec![first];
            while let Ok(more) = answered.try_recv() {
                batch.push(more);
            }
            Some((Ok(proto::BatchCommandsResponse { answers: batch }), answered))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn split_region(
        &self,
        request: Request<proto::SplitRegionRequest>,
    ) -> Result<Response<proto::SplitRegionResponse>, Status> {
        let key = request.into_inner().key;
        let reply = match self.split_at(&key).await {
            Ok(region_id) => proto::SplitRegionResponse {
                error: None,
                region_id,
            },
            Err(e) => proto::SplitRegionResponse {
                error: Some(error_to_proto(&e)),
                region_id: 0,
            },
        };
        Ok(Response::new(reply))
    }

    async fn transfer_leader(
        &self,
        request: Request<proto::TransferLeaderRequest>,
    ) -> Result<Response<proto::Result>, Status> {
        let r = request.into_inner();
        let store = self.server()?.store();
        let result = match store.region_by_id(r.region_id) {
            None => Err(RaftstoreError::RegionNotFound(r.region_id)),
            Some(view) if !view.is_leader => Err(RaftstoreError::NotLeader {
                region_id: r.region_id,
                leader: None,
            }),
            Some(view) => match view.region.peers.iter().find(|p| p.store_id == r.to_store) {
                None => Err(RaftstoreError::InvalidCommand(format!(
                    "store {} has no peer of region {}",
                    r.to_store, r.region_id
                ))),
                Some(peer) if *peer == view.peer => Ok(()),
                Some(peer) => store.transfer_leader(r.region_id, peer.id),
            },
        };
        Ok(Response::new(proto::Result {
            error: result.err().map(|e| error_to_proto(&MvccError::Region(e))),
        }))
    }

    async fn change_peer(
        &self,
        request: Request<proto::ChangePeerRequest>,
    ) -> Result<Response<proto::Result>, Status> {
        let r = request.into_inner();
        let peer = peer_from_proto(r.peer, "peer").map_err(invalid)?;
        let store = self.server()?.store();
        let change_type = if r.remove {
            crate::raft::ConfChangeType::RemoveNode
        } else {
            crate::raft::ConfChangeType::AddNode
        };
        let result = match store.leader_header(r.region_id).await {
            Ok(header) => store
                .propose(crate::raftstore::cmd::RaftCommand {
                    header,
                    body: crate::raftstore::cmd::CommandBody::Admin(
                        crate::raftstore::cmd::AdminCommand::ChangePeer { change_type, peer },
                    ),
                })
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        Ok(Response::new(proto::Result {
            error: result.err().map(|e| error_to_proto(&MvccError::Region(e))),
        }))
    }

    async fn get(&self, request: Request<proto::GetRequest>) -> Result<Response<proto::GetResponse>, Status> {
        let r = request.into_inner();
        if let Err(e) = self.check(r.context, &r.key)? {
            return Ok(Response::new(proto::GetResponse {
                error: Some(error_to_proto(&e)),
                ..Default::default()
            }));
        }
        let reply = match self.server()?.kv_get(r.key, ts(r.ts)).await {
            Ok(value) => proto::GetResponse {
                error: None,
                found: value.is_some(),
                value: value.unwrap_or_default(),
            },
            Err(e) => proto::GetResponse {
                error: Some(error_to_proto(&e)),
                ..Default::default()
            },
        };
        Ok(Response::new(reply))
    }

    async fn scan(
        &self,
        request: Request<proto::ScanRequest>,
    ) -> Result<Response<proto::ScanResponse>, Status> {
        let r = request.into_inner();
        if let Err(e) = self.check(r.context, &r.start)? {
            return Ok(Response::new(proto::ScanResponse {
                error: Some(error_to_proto(&e)),
                ..Default::default()
            }));
        }
        let end = r.has_end.then_some(r.end);
        let limits = ScanLimits {
            limit: usize::try_from(r.limit).unwrap_or(usize::MAX),
            // 0, the field's default, is no bound (a scan that may look at nothing is never sent).
            examine: match r.examine {
                0 => usize::MAX,
                n => usize::try_from(n).unwrap_or(usize::MAX),
            },
            value_head: r
                .has_value_head
                .then(|| usize::try_from(r.value_head).unwrap_or(usize::MAX)),
        };
        let reply = match self.server()?.kv_scan(r.start, end, limits, ts(r.ts)).await {
            Ok(output) => proto::ScanResponse {
                error: None,
                examined: output.examined as u64,
                has_resume: output.resume.is_some(),
                resume: output.resume.unwrap_or_default(),
                has_region_end: output.region_end.is_some(),
                region_end: output.region_end.unwrap_or_default(),
                items: output
                    .entries
                    .into_iter()
                    .map(|(key, value)| match value {
                        Ok(value) => proto::ScanItem {
                            key,
                            value,
                            error: None,
                        },
                        Err(e) => proto::ScanItem {
                            key,
                            value: Vec::new(),
                            error: Some(error_to_proto(&e)),
                        },
                    })
                    .collect(),
            },
            Err(e) => proto::ScanResponse {
                error: Some(error_to_proto(&e)),
                ..Default::default()
            },
        };
        Ok(Response::new(reply))
    }

    async fn prewrite(
        &self,
        request: Request<proto::PrewriteRequest>,
    ) -> Result<Response<proto::PrewriteResponse>, Status> {
        let r = request.into_inner();
        let mutations = r
            .mutations
            .into_iter()
            .map(mutation_from_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let first_key = mutations.first().map(|m| m.key.clone()).unwrap_or_default();
        if let Err(e) = self.check(r.context, &first_key)? {
            return Ok(Response::new(proto::PrewriteResponse {
                errors: vec![error_to_proto(&e)],
                commit_ts: 0,
            }));
        }
        let request = PrewriteRequest {
            mutations,
            primary: r.primary,
            start_ts: ts(r.start_ts),
            lock_ttl_ms: r.lock_ttl_ms,
        };
        let reply = match self.server()?.kv_prewrite(request, r.one_pc).await {
            Ok(commit_ts) => proto::PrewriteResponse {
                errors: Vec::new(),
                commit_ts: commit_ts.map_or(0, TimeStamp::into_inner),
            },
            Err(errors) => proto::PrewriteResponse {
                errors: errors.iter().map(error_to_proto).collect(),
                commit_ts: 0,
            },
        };
        Ok(Response::new(reply))
    }

    async fn commit(
        &self,
        request: Request<proto::CommitRequest>,
    ) -> Result<Response<proto::Result>, Status> {
        let r = request.into_inner();
        if let Err(e) = self.check(r.context, first(&r.keys))? {
            return Ok(Response::new(result_of(Err(e))));
        }
        let result = self
            .server()?
            .kv_commit(r.keys, ts(r.start_ts), ts(r.commit_ts))
            .await;
        Ok(Response::new(result_of(result)))
    }

    async fn batch_rollback(
        &self,
        request: Request<proto::BatchRollbackRequest>,
    ) -> Result<Response<proto::Result>, Status> {
        let r = request.into_inner();
        if let Err(e) = self.check(r.context, first(&r.keys))? {
            return Ok(Response::new(result_of(Err(e))));
        }
        let result = self.server()?.kv_batch_rollback(r.keys, ts(r.start_ts)).await;
        Ok(Response::new(result_of(result)))
    }

    async fn check_txn_status(
        &self,
        request: Request<proto::CheckTxnStatusRequest>,
    ) -> Result<Response<proto::CheckTxnStatusResponse>, Status> {
        let r = request.into_inner();
        let failed = |e: MvccError| proto::CheckTxnStatusResponse {
            error: Some(error_to_proto(&e)),
            ..Default::default()
        };
        if let Err(e) = self.check(r.context, &r.primary)? {
            return Ok(Response::new(failed(e)));
        }
        let reply = match self
            .server()?
            .kv_check_txn_status(
                r.primary,
                ts(r.lock_ts),
                ts(r.current_ts),
                r.rollback_if_not_exist,
            )
            .await
        {
            Ok(TxnStatus::Locked { ttl_ms }) => proto::CheckTxnStatusResponse {
                status: 1,
                ttl_ms,
                ..Default::default()
            },
            Ok(TxnStatus::Committed { commit_ts }) => proto::CheckTxnStatusResponse {
                status: 2,
                commit_ts: commit_ts.into_inner(),
                ..Default::default()
            },
            Ok(TxnStatus::RolledBack { action }) => proto::CheckTxnStatusResponse {
                status: 3,
                action: match action {
                    Action::NoAction => 0,
                    Action::TtlExpireRollback => 1,
                    Action::LockNotExistRollback => 2,
                },
                ..Default::default()
            },
            Err(e) => failed(e),
        };
        Ok(Response::new(reply))
    }

    async fn resolve_lock(
        &self,
        request: Request<proto::ResolveLockRequest>,
    ) -> Result<Response<proto::Result>, Status> {
        let r = request.into_inner();
        if let Err(e) = self.check(r.context, first(&r.keys))? {
            return Ok(Response::new(result_of(Err(e))));
        }
        let commit_ts = (r.commit_ts != 0).then(|| ts(r.commit_ts));
        let result = self
            .server()?
            .kv_resolve_lock(ts(r.start_ts), commit_ts, r.keys)
            .await;
        Ok(Response::new(result_of(result)))
    }

    async fn scan_locks(
        &self,
        request: Request<proto::ScanLocksRequest>,
    ) -> Result<Response<proto::ScanLocksResponse>, Status> {
        let r = request.into_inner();
        if let Err(e) = self.check(r.context, &r.start)? {
            return Ok(Response::new(proto::ScanLocksResponse {
                error: Some(error_to_proto(&e)),
                locks: Vec::new(),
            }));
        }
        let reply = match self
            .server()?
            .kv_scan_locks(ts(r.max_ts), r.start, r.limit as usize)
            .await
        {
            Ok(locks) => proto::ScanLocksResponse {
                error: None,
                locks: locks
                    .into_iter()
                    .map(|l| proto::LockInfo {
                        key: l.key,
                        primary: l.primary,
                        start_ts: l.start_ts.into_inner(),
                        ttl_ms: l.ttl_ms,
                    })
                    .collect(),
            },
            Err(e) => proto::ScanLocksResponse {
                error: Some(error_to_proto(&e)),
                locks: Vec::new(),
            },
        };
        Ok(Response::new(reply))
    }

    async fn gc(&self, request: Request<proto::GcRequest>) -> Result<Response<proto::GcResponse>, Status> {
        let r = request.into_inner();
        let start = r.has_start.then_some(r.start);
        let raw_start = match &start {
            Some(encoded) => match Key::from_encoded(encoded.clone()).to_raw() {
                Ok(raw) => raw,
                Err(e) => {
                    return Ok(Response::new(proto::GcResponse {
                        error: Some(error_to_proto(&e)),
                        ..Default::default()
                    }));
                }
            },
            None => Vec::new(),
        };
        if let Err(e) = self.check(r.context, &raw_start)? {
            return Ok(Response::new(proto::GcResponse {
                error: Some(error_to_proto(&e)),
                ..Default::default()
            }));
        }
        let reply = match self
            .server()?
            .kv_gc(ts(r.safe_point), start, r.limit_keys as usize)
            .await
        {
            Ok((removed, next)) => proto::GcResponse {
                error: None,
                removed: removed as u64,
                has_next: next.is_some(),
                next: next.unwrap_or_default(),
            },
            Err(e) => proto::GcResponse {
                error: Some(error_to_proto(&e)),
                ..Default::default()
            },
        };
        Ok(Response::new(reply))
    }
}
