//! The client side of the KV service: [`KvRpcClient`] sends the Percolator commands of
//! `proto/kv.proto` to one remote store, and decodes its answers and errors (the encodings are
//! in `kv`, next to the service).

use std::time::Duration;

use tonic::{Response, Status};

use super::kv::{RegionContext, context_to_proto, error_from_proto, mutation_to_proto, ts};
use super::proto;
use super::proto::kv_client::KvClient;
use crate::percolator::actions::{Action, TxnStatus};
use crate::percolator::commands::{PrewriteRequest, ScanOutput};
use crate::percolator::records::LockInfo;
use crate::percolator::{MvccError, ScanLimits};
use crate::raftstore::cmd::RaftstoreError;
use crate::raftstore::meta::{Peer, Region};
use crate::scheduler::tso::TimeStamp;

/// How long a KV request to another store may go unanswered. A dead or unreachable store is
/// noticed sooner, by keepalive (see the module docs of `rpc`); this bounds a store that
/// answers pings but not the request, such as a deposed leader whose proposal waits for a
/// majority it cannot reach.
pub const KV_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends KV requests to one remote store.
#[derive(Clone)]
pub struct KvRpcClient {
    store_id: u64,
    client: KvClient<tonic::transport::Channel>,
}

/// A failed call: the request never reached the store, or its answer never came back (then
/// it may have been served).
fn transport_error(store_id: u64, status: &Status) -> MvccError {
    MvccError::Region(RaftstoreError::StoreUnreachable {
        store_id,
        reason: status.message().to_string(),
    })
}

impl KvRpcClient {
    /// A client of the store at `addr` (`host:port`); connects lazily.
    pub fn new(store_id: u64, addr: &str) -> Result<Self, MvccError> {
        let endpoint = super::endpoint(addr)
            .map_err(|e| {
                MvccError::Region(RaftstoreError::StoreUnreachable {
                    store_id,
                    reason: e.to_string(),
                })
            })?
            .timeout(KV_REQUEST_TIMEOUT);
        Ok(KvRpcClient {
            store_id,
            client: KvClient::new(endpoint.connect_lazy()),
        })
    }

    pub async fn get(
        &self,
        ctx: &RegionContext,
        key: Vec<u8>,
        at: TimeStamp,
    ) -> Result<Option<Vec<u8>>, MvccError> {
        let request = proto::GetRequest {
            context: Some(context_to_proto(ctx)),
            key,
            ts: at.into_inner(),
        };
        let r = self
            .client
            .clone()
            .get(request)
            .await
            .map_err(|s| transport_error(self.store_id, &s))?
            .into_inner();
        match r.error {
            Some(e) => Err(error_from_proto(e)),
            None => Ok(r.found.then_some(r.value)),
        }
    }

    pub async fn scan(
        &self,
        ctx: &RegionContext,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limits: ScanLimits,
        at: TimeStamp,
    ) -> Result<ScanOutput, MvccError> {
        let request = proto::ScanRequest {
            context: Some(context_to_proto(ctx)),
            start,
            has_end: end.is_some(),
            end: end.unwrap_or_default(),
            limit: limits.limit as u64,
            ts: at.into_inner(),
            examine: limits.examine as u64,
            has_value_head: limits.value_head.is_some(),
            value_head: limits.value_head.unwrap_or_default() as u64,
        };
        let r = self
            .client
            .clone()
            .scan(request)
            .await
            .map_err(|s| transport_error(self.store_id, &s))?
            .into_inner();
        if let Some(e) = r.error {
            return Err(error_from_proto(e));
        }
        Ok(ScanOutput {
            entries: r
                .items
                .into_iter()
                .map(|item| match item.error {
                    Some(e) => (item.key, Err(error_from_proto(e))),
                    None => (item.key, Ok(item.value)),
                })
                .collect(),
            examined: usize::try_from(r.examined).unwrap_or(usize::MAX),
            resume: r.has_resume.then_some(r.resume),
            region_end: r.has_region_end.then_some(r.region_end),
        })
    }

    /// A prewrite. A one-phase prewrite whose answer is lost after it may have been sent has
    /// an unknown outcome (it may have committed): it fails with `Undetermined`, never
    /// "unreachable".
    pub async fn prewrite(
        &self,
        ctx: &RegionContext,
        request: PrewriteRequest,
        one_pc: bool,
    ) -> Result<Option<TimeStamp>, Vec<MvccError>> {
        let request = proto::PrewriteRequest {
            context: Some(context_to_proto(ctx)),
            mutations: request.mutations.iter().map(mutation_to_proto).collect(),
            primary: request.primary,
            start_ts: request.start_ts.into_inner(),
            lock_ttl_ms: request.lock_ttl_ms,
            one_pc,
        };
        let r = match self.client.clone().prewrite(request).await {
            Ok(r) => r.into_inner(),
            Err(status) if one_pc && !super::never_sent(&status) => {
                return Err(vec![MvccError::Region(RaftstoreError::Undetermined)]);
            }
            Err(status) => return Err(vec![transport_error(self.store_id, &status)]),
        };
        if !r.errors.is_empty() {
            return Err(r.errors.into_iter().map(error_from_proto).collect());
        }
        Ok((r.commit_ts != 0).then(|| ts(r.commit_ts)))
    }

    pub async fn commit(
        &self,
        ctx: &RegionContext,
        keys: Vec<Vec<u8>>,
        start_ts: TimeStamp,
        commit_ts: TimeStamp,
    ) -> Result<(), MvccError> {
        let request = proto::CommitRequest {
            context: Some(context_to_proto(ctx)),
            keys,
            start_ts: start_ts.into_inner(),
            commit_ts: commit_ts.into_inner(),
        };
        let r = self.client.clone().commit(request).await;
        self.unit(r)
    }

    fn unit(&self, r: Result<Response<proto::Result>, Status>) -> Result<(), MvccError> {
        match r {
            Ok(r) => match r.into_inner().error {
                Some(e) => Err(error_from_proto(e)),
                None => Ok(()),
            },
            Err(status) => Err(transport_error(self.store_id, &status)),
        }
    }

    pub async fn batch_rollback(
        &self,
        ctx: &RegionContext,
        keys: Vec<Vec<u8>>,
        start_ts: TimeStamp,
    ) -> Result<(), MvccError> {
        let request = proto::BatchRollbackRequest {
            context: Some(context_to_proto(ctx)),
            keys,
            start_ts: start_ts.into_inner(),
        };
        let r = self.client.clone().batch_rollback(request).await;
        self.unit(r)
    }

    pub async fn check_txn_status(
        &self,
        ctx: &RegionContext,
        primary: Vec<u8>,
        lock_ts: TimeStamp,
        current_ts: TimeStamp,
        rollback_if_not_exist: bool,
    ) -> Result<TxnStatus, MvccError> {
        let request = proto::CheckTxnStatusRequest {
            context: Some(context_to_proto(ctx)),
            primary,
            lock_ts: lock_ts.into_inner(),
            current_ts: current_ts.into_inner(),
            rollback_if_not_exist,
        };
        let r = self
            .client
            .clone()
            .check_txn_status(request)
            .await
            .map_err(|s| transport_error(self.store_id, &s))?
            .into_inner();
        if let Some(e) = r.error {
            return Err(error_from_proto(e));
        }
        match r.status {
            1 => Ok(TxnStatus::Locked { ttl_ms: r.ttl_ms }),
            2 => Ok(TxnStatus::Committed {
                commit_ts: ts(r.commit_ts),
            }),
            3 => Ok(TxnStatus::RolledBack {
                action: match r.action {
                    1 => Action::TtlExpireRollback,
                    2 => Action::LockNotExistRollback,
                    _ => Action::NoAction,
                },
            }),
            other => Err(MvccError::Region(RaftstoreError::Remote(format!(
                "unknown transaction status {other}"
            )))),
        }
    }

    pub async fn resolve_lock(
        &self,
        ctx: &RegionContext,
        start_ts: TimeStamp,
        commit_ts: Option<TimeStamp>,
        keys: Vec<Vec<u8>>,
    ) -> Result<(), MvccError> {
        let request = proto::ResolveLockRequest {
            context: Some(context_to_proto(ctx)),
            start_ts: start_ts.into_inner(),
            commit_ts: commit_ts.map_or(0, TimeStamp::into_inner),
            keys,
        };
        let r = self.client.clone().resolve_lock(request).await;
        self.unit(r)
    }

    pub async fn scan_locks(
        &self,
        ctx: &RegionContext,
        max_ts: TimeStamp,
        start: Vec<u8>,
        limit: usize,
    ) -> Result<Vec<LockInfo>, MvccError> {
        let request = proto::ScanLocksRequest {
            context: Some(context_to_proto(ctx)),
            max_ts: max_ts.into_inner(),
            start,
            limit: limit as u64,
        };
        let r = self
            .client
            .clone()
            .scan_locks(request)
            .await
            .map_err(|s| transport_error(self.store_id, &s))?
            .into_inner();
        if let Some(e) = r.error {
            return Err(error_from_proto(e));
        }
        Ok(r.locks
            .into_iter()
            .map(|l| LockInfo {
                key: l.key,
                primary: l.primary,
                start_ts: ts(l.start_ts),
                ttl_ms: l.ttl_ms,
            })
            .collect())
    }

    pub async fn gc(
        &self,
        ctx: &RegionContext,
        safe_point: TimeStamp,
        start: Option<Vec<u8>>,
        limit_keys: usize,
    ) -> Result<(usize, Option<Vec<u8>>), MvccError> {
        let request = proto::GcRequest {
            context: Some(context_to_proto(ctx)),
            safe_point: safe_point.into_inner(),
            has_start: start.is_some(),
            start: start.unwrap_or_default(),
            limit_keys: limit_keys as u64,
        };
        let r = self
            .client
            .clone()
            .gc(request)
            .await
            .map_err(|s| transport_error(self.store_id, &s))?
            .into_inner();
        if let Some(e) = r.error {
            return Err(error_from_proto(e));
        }
        Ok((r.removed as usize, r.has_next.then_some(r.next)))
    }
}

/// The region a request goes to, as a context.
pub fn context_for(region: &Region, leader: Peer) -> RegionContext {
    RegionContext {
        region_id: region.id,
        epoch: region.epoch,
        peer: leader,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::percolator::actions::Mutation;
    use crate::raftstore::meta::RegionEpoch;

    fn context() -> RegionContext {
        RegionContext {
            region_id: 1,
            epoch: RegionEpoch {
                conf_ver: 1,
                version: 1,
            },
            peer: Peer { id: 1, store_id: 2 },
        }
    }

    fn request() -> PrewriteRequest {
        PrewriteRequest {
            mutations: vec![Mutation::put(b"k".to_vec(), b"v".to_vec())],
            primary: b"k".to_vec(),
            start_ts: TimeStamp::new(10),
            lock_ttl_ms: 3_000,
        }
    }

    async fn prewrite_to(addr: &str, one_pc: bool) -> Vec<MvccError> {
        let client = KvRpcClient::new(2, addr).expect("client");
        let outcome = tokio::time::timeout(
            KV_REQUEST_TIMEOUT + Duration::from_secs(10),
            client.prewrite(&context(), request(), one_pc),
        )
        .await
        .expect("a request to a silent store must fail, not hang");
        outcome.expect_err("nothing serves this address")
    }

    fn is_unreachable(errors: &[MvccError]) -> bool {
        matches!(
            errors,
            [MvccError::Region(RaftstoreError::StoreUnreachable {
                store_id: 2,
                ..
            })]
        )
    }

    #[tokio::test]
    async fn a_one_phase_commit_that_could_not_connect_was_never_sent() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let errors = prewrite_to(&addr, true).await;
        assert!(is_unreachable(&errors), "{errors:?}");
    }

    /// A store that accepts the connection and then never answers, like a stopped process or
    /// a node whose replies the network drops: the request fails within the keepalive and
    /// request limits, and a one-phase commit's outcome is unknown (it may have been served).
    #[tokio::test]
    async fn a_request_to_a_silent_store_fails_and_a_one_phase_commit_is_undetermined() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let held = tokio::spawn(async move {
            let mut connections = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.push(stream);
            }
        });
        let errors = prewrite_to(&addr, true).await;
        assert!(
            matches!(
                errors.as_slice(),
                [MvccError::Region(RaftstoreError::Undetermined)]
            ),
            "{errors:?}"
        );
        let errors = prewrite_to(&addr, false).await;
        assert!(is_unreachable(&errors), "{errors:?}");
        held.abort();
    }
}
