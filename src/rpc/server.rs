//! The receiving side of node RPC: hands raft messages and snapshots to the local store.

use std::sync::{Arc, OnceLock};

use tonic::{Request, Response, Status, Streaming};

use super::convert::raft_message_from_proto;
use super::proto::raft_server::Raft;
use super::proto::{Done, RaftMessageBatch, SnapshotChunk};
use crate::raftstore::driver::StoreHandle;
use crate::storage::Engine;

/// The `Raft` service of a node.
pub struct RaftService<E: Engine> {
    /// Set once the store runs (a node serves RPC before its store starts: the scheduler's
    /// replicas must talk first).
    store: Arc<OnceLock<StoreHandle<E>>>,
    /// Largest snapshot accepted (its data is held in memory until whole).
    max_snapshot_bytes: usize,
}

impl<E: Engine> RaftService<E> {
    pub fn new(store: StoreHandle<E>, max_snapshot_bytes: usize) -> Self {
        let (service, slot) = Self::lazy(max_snapshot_bytes);
        let _ = slot.set(store);
        service
    }

    /// A service that refuses messages until its store is set in the returned slot.
    pub fn lazy(max_snapshot_bytes: usize) -> (Self, Arc<OnceLock<StoreHandle<E>>>) {
        let store = Arc::new(OnceLock::new());
        (
            RaftService {
                store: store.clone(),
                max_snapshot_bytes,
            },
            store,
        )
    }

    fn store(&self) -> Result<&StoreHandle<E>, Status> {
        self.store
            .get()
            .ok_or_else(|| Status::unavailable("the store is starting"))
    }
}

#[tonic::async_trait]
impl<E: Engine + Clone> Raft for RaftService<E> {
    async fn raft(&self, request: Request<Streaming<RaftMessageBatch>>) -> Result<Response<Done>, Status> {
        let mut stream = request.into_inner();
        while let Some(batch) = stream.message().await? {
            for message in batch.messages {
                let message = raft_message_from_proto(message, None)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
                self.store()?
                    .send_raft_message(message)
                    .map_err(|e| Status::unavailable(e.to_string()))?;
            }
        }
        Ok(Response::new(Done {}))
    }

    async fn snapshot(&self, request: Request<Streaming<SnapshotChunk>>) -> Result<Response<Done>, Status> {
        let mut stream = request.into_inner();
        let mut message = None;
        let mut data = Vec::new();
        while let Some(chunk) = stream.message().await? {
            if let Some(m) = chunk.message {
                if message.is_some() {
                    return Err(Status::invalid_argument(
                        "a snapshot stream names its message twice",
                    ));
                }
                message = Some(m);
            }
            if data.len() + chunk.data.len() > self.max_snapshot_bytes {
                return Err(Status::resource_exhausted(format!(
                    "snapshot larger than {} bytes",
                    self.max_snapshot_bytes
                )));
            }
            data.extend_from_slice(&chunk.data);
        }
        let message =
            message.ok_or_else(|| Status::invalid_argument("a snapshot stream without its message"))?;
        let message = raft_message_from_proto(message, Some(data))
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.store()?
            .send_raft_message(message)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(Done {}))
    }
}
