//! Where a command's writes go once it has computed them.
//!
//! [`WriteSink`] is the seam between the transaction layer and replication: today the
//! [`GroupCommitSink`] writes to the local engine, durably; with the multi-raft store, a sink
//! that proposes the batch to the region's raft group takes its place. Either way `write`
//! returns only when the batch is durable (fsync'd here; committed on a majority there).

use std::future::Future;
use std::sync::mpsc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::storage::{Engine, WriteBatch, WriteOptions};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    #[error("writing the batch failed: {0}")]
    Write(String),
    #[error("the store is shutting down")]
    ShuttingDown,
}

/// Applies batches atomically and durably.
pub trait WriteSink: Send + Sync + 'static {
    fn write(&self, batch: WriteBatch) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// Most batches folded into one engine write.
const MAX_BATCHES_PER_GROUP: usize = 512;

type Request = (WriteBatch, oneshot::Sender<Result<(), SinkError>>);

/// Writes batches to an engine from one thread, folding the batches that queue up while a
/// write is in flight into the next one: one fsync covers them all (group commit). Batches
/// are applied in the order they arrive.
pub struct GroupCommitSink {
    requests: mpsc::Sender<Option<Request>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl GroupCommitSink {
    pub fn start<E: Engine>(engine: E) -> Self {
        let (requests, inbox) = mpsc::channel::<Option<Request>>();
        let writer = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || write_groups(engine, inbox))
            .expect("spawning the group-commit thread");
        GroupCommitSink {
            requests,
            writer: Mutex::new(Some(writer)),
        }
    }

    /// Writes everything already queued, then stops; later writes fail with `ShuttingDown`.
    pub fn shutdown(&self) {
        if let Some(writer) = self.writer.lock().take() {
            let _ = self.requests.send(None);
            writer.join().expect("the group-commit thread panicked");
        }
    }
}

impl Drop for GroupCommitSink {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl WriteSink for GroupCommitSink {
    async fn write(&self, batch: WriteBatch) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (done, outcome) = oneshot::channel();
        self.requests
            .send(Some((batch, done)))
            .map_err(|_| SinkError::ShuttingDown)?;
        outcome.await.map_err(|_| SinkError::ShuttingDown)?
    }
}

fn write_groups<E: Engine>(engine: E, inbox: mpsc::Receiver<Option<Request>>) {
    let mut stopping = false;
    while !stopping {
        let Ok(first) = inbox.recv() else { return };
        let mut group = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Some(request) => group.push(request),
                None => stopping = true,
            }
            if group.len() < MAX_BATCHES_PER_GROUP && !stopping {
                next = inbox.try_recv().ok();
            }
        }
        if group.is_empty() {
            continue;
        }
        let mut merged = WriteBatch::new();
        let mut waiters = Vec::with_capacity(group.len());
        for (batch, done) in group {
            merged.extend(batch);
            waiters.push(done);
        }
        let outcome = engine
            .write(&merged, WriteOptions::SYNC)
            .map_err(|e| SinkError::Write(e.to_string()));
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "a group commit failed; none of its batches is written");
        }
        for done in waiters {
            let _ = done.send(outcome.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Cf, MemoryEngine};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_batches_all_land_in_order_per_writer() {
        let engine = MemoryEngine::new();
        let sink = std::sync::Arc::new(GroupCommitSink::start(engine.clone()));
        let mut tasks = Vec::new();
        for writer in 0..8u8 {
            let sink = sink.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..50u8 {
                    let mut batch = WriteBatch::new();
                    batch.put(Cf::Default, [writer], [i]);
                    sink.write(batch).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        for writer in 0..8u8 {
            assert_eq!(engine.get(Cf::Default, &[writer]).unwrap(), Some(vec![49]));
        }
        sink.shutdown();
        let mut batch = WriteBatch::new();
        batch.put(Cf::Default, b"late", b"x");
        assert_eq!(sink.write(batch).await, Err(SinkError::ShuttingDown));
    }
}
