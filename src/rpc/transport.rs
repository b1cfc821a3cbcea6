//! `GrpcTransport`: how a store's raft thread sends to other stores.
//!
//! [`Transport::send`] runs on the raft thread and never blocks: it puts the message on the
//! destination store's bounded queue (a full queue drops it and reports the store
//! unreachable, which makes the raft core probe instead of streaming) and returns. Per
//! destination store, a task on the node's tokio runtime keeps one `Raft` stream open and
//! reconnects with backoff when the stream breaks (messages in flight then are lost; raft
//! sends again). The stream's body is the queue itself: the HTTP/2 client polls it and takes
//! what is queued as one batch, so a message passes through no task of ours on its way out. A store cut off by the network
//! breaks the stream within seconds by keepalive (see [`super::endpoint`]), so the stream is
//! fresh when it is back.
//!
//! A snapshot goes on a stream of its own, in chunks of at most [`SNAPSHOT_CHUNK_BYTES`], and
//! its outcome (delivered, or not) is reported back to the store through [`StatusSink`].

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;

use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_stream::Stream;

use super::convert::raft_message_to_proto;
use super::proto;
use super::proto::raft_client::RaftClient;
use crate::raft::MessageType;
use crate::raftstore::store::{RaftMessage, Transport, Unreachable};

/// Largest piece of snapshot data in one chunk.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Messages queued for one store before new ones are dropped.
const QUEUE_MESSAGES: usize = 4_096;
/// Most messages in one batch on the wire.
const MAX_BATCH_MESSAGES: usize = 256;
/// Longest wait between reconnection attempts.
const MAX_RECONNECT_BACKOFF_MS: u64 = 1_000;

/// Where a store listens: its `host:port`, if known.
pub type Resolver = Arc<dyn Fn(u64) -> Option<String> + Send + Sync>;

/// Where the transport reports what happened to messages after `send` returned.
pub trait StatusSink: Send + Sync + 'static {
    /// A snapshot for `to_peer` of `region_id` was delivered (`failed = false`) or not.
    fn snapshot_status(&self, region_id: u64, to_peer: u64, failed: bool);
}

/// See the module docs.
pub struct GrpcTransport {
    runtime: Handle,
    resolver: Resolver,
    status: Arc<dyn StatusSink>,
    queues: HashMap<u64, mpsc::Sender<RaftMessage>>,
    last_drop_log: HashMap<u64, std::time::Instant>,
}

impl GrpcTransport {
    pub fn new(runtime: Handle, resolver: Resolver, status: Arc<dyn StatusSink>) -> Self {
        GrpcTransport {
            runtime,
            resolver,
            status,
            queues: HashMap::new(),
            last_drop_log: HashMap::new(),
        }
    }

    fn queue(&mut self, store_id: u64) -> &mpsc::Sender<RaftMessage> {
        let closed = self.queues.get(&store_id).is_some_and(|q| q.is_closed());
        if closed {
            self.queues.remove(&store_id);
        }
        self.queues.entry(store_id).or_insert_with(|| {
            let (sender, receiver) = mpsc::channel(QUEUE_MESSAGES);
            self.runtime
                .spawn(run_connection(store_id, self.resolver.clone(), receiver));
            sender
        })
    }
}

impl Transport for GrpcTransport {
    fn send(&mut self, message: RaftMessage) -> Result<(), Unreachable> {
        let store_id = message.to_peer.store_id;
        if message.message.msg_type == MessageType::Snapshot {
            let (resolver, status) = (self.resolver.clone(), self.status.clone());
            self.runtime.spawn(send_snapshot(message, resolver, status));
            return Ok(());
        }
        self.queue(store_id).try_send(message).map_err(|_| {
            // Raft sends again; a full queue means the connection task cannot keep up.
            let now = std::time::Instant::now();
            if self
                .last_drop_log
                .get(&store_id)
                .is_none_or(|t| now.duration_since(*t) >= Duration::from_secs(1))
            {
                self.last_drop_log.insert(store_id, now);
                tracing::warn!(
                    store = store_id,
                    "raft messages dropped: the queue to the store is full"
                );
            }
            Unreachable { store_id }
        })
    }

    fn reports_snapshots_later(&self) -> bool {
        true
    }
}

async fn connect(store_id: u64, resolver: &Resolver) -> Option<RaftClient<tonic::transport::Channel>> {
    let addr = resolver(store_id)?;
    let endpoint = match super::endpoint(&addr) {
        Ok(endpoint) => endpoint,
        Err(e) => {
            tracing::warn!(store = store_id, %addr, error = %e, "bad store address");
            return None;
        }
    };
    match endpoint.connect().await {
        Ok(channel) => Some(RaftClient::new(channel)),
        Err(e) => {
            tracing::debug!(store = store_id, %addr, error = %e, "cannot connect to store");
            None
        }
    }
}

/// Keeps a stream of raft message batches open to `store_id` for as long as its queue lives.
async fn run_connection(store_id: u64, resolver: Resolver, queue: mpsc::Receiver<RaftMessage>) {
    let queue = Arc::new(Mutex::new(queue));
    let mut backoff_ms = 10;
    loop {
        let Some(mut client) = connect(store_id, &resolver).await else {
            // Nobody to send to: drop what is queued (raft sends again) and wait a little.
            {
                let mut queue = queue.lock();
                while queue.try_recv().is_ok() {}
                if queue.is_closed() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
            backoff_ms = (backoff_ms * 2).min(MAX_RECONNECT_BACKOFF_MS);
            continue;
        };
        backoff_ms = 10;
        let outcome = client.raft(Batches { queue: queue.clone() }).await;
        // The stream ends when the queue closes (the transport is gone), or breaks.
        if queue.lock().is_closed() {
            return;
        }
        if let Err(status) = outcome {
            tracing::debug!(store = store_id, error = %status, "raft stream to store ended");
        }
    }
}

/// The body of a `Raft` stream: each item is what the queue holds when polled, up to
/// [`MAX_BATCH_MESSAGES`]. It ends when the queue closes. After a stream breaks, the queue is
/// polled by the next one.
struct Batches {
    queue: Arc<Mutex<mpsc::Receiver<RaftMessage>>>,
}

impl Stream for Batches {
    type Item = proto::RaftMessageBatch;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut queue = self.queue.lock();
        let Some(first) = std::task::ready!(queue.poll_recv(cx)) else {
            return Poll::Ready(None);
        };
        let mut messages = vec![raft_message_to_proto(&first)];
        while messages.len() < MAX_BATCH_MESSAGES {
            match queue.try_recv() {
                Ok(next) => messages.push(raft_message_to_proto(&next)),
                Err(_) => break,
            }
        }
        Poll::Ready(Some(proto::RaftMessageBatch { messages }))
    }
}

/// Sends one snapshot message in chunks and reports how it went.
async fn send_snapshot(message: RaftMessage, resolver: Resolver, status: Arc<dyn StatusSink>) {
    let (region_id, to_peer, store_id) = (message.region_id, message.to_peer.id, message.to_peer.store_id);
    let delivered = match connect(store_id, &resolver).await {
        Some(mut client) => {
            let data = message
                .message
                .snapshot
                .as_ref()
                .map(|s| s.data.clone())
                .unwrap_or_default();
            let mut chunks = Vec::with_capacity(data.len() / SNAPSHOT_CHUNK_BYTES + 1);
            let mut first = Some(raft_message_to_proto(&message));
            let mut pieces = data.chunks(SNAPSHOT_CHUNK_BYTES).peekable();
            if pieces.peek().is_none() {
                chunks.push(proto::SnapshotChunk {
                    message: first.take(),
                    data: Vec::new(),
                });
            }
            for piece in pieces {
                chunks.push(proto::SnapshotChunk {
                    message: first.take(),
                    data: piece.to_vec(),
                });
            }
            match client.snapshot(tokio_stream::iter(chunks)).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::info!(region = region_id, store = store_id, error = %e, "sending a snapshot failed");
                    false
                }
            }
        }
        None => false,
    };
    status.snapshot_status(region_id, to_peer, !delivered);
}

/// Reports snapshot outcomes to a store whose handle exists only once its driver runs (the
/// driver needs the transport first): set it with [`StoreStatusSink::attach`].
pub struct StoreStatusSink<E: crate::storage::Engine> {
    store: std::sync::OnceLock<crate::raftstore::driver::StoreHandle<E>>,
}

impl<E: crate::storage::Engine> Default for StoreStatusSink<E> {
    fn default() -> Self {
        StoreStatusSink {
            store: std::sync::OnceLock::new(),
        }
    }
}

impl<E: crate::storage::Engine> StoreStatusSink<E> {
    pub fn attach(&self, store: crate::raftstore::driver::StoreHandle<E>) {
        let _ = self.store.set(store);
    }
}

impl<E: crate::storage::Engine + Clone> StatusSink for StoreStatusSink<E> {
    fn snapshot_status(&self, region_id: u64, to_peer: u64, failed: bool) {
        match self.store.get() {
            Some(store) => store.report_snapshot(region_id, to_peer, failed),
            None => tracing::warn!(region = region_id, "a snapshot outcome before the store started"),
        }
    }
}
