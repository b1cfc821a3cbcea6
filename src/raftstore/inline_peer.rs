//! A peer and an apply side of its own, for tests that drive a single region by hand.

use super::apply::Applier;
use super::cmd::RaftstoreError;
use super::peer::{PeerOptions, RegionPeer};
use crate::raft::Message;
use crate::storage::{Engine, WriteBatch};

/// A peer and an apply side of its own, run one after the other on the caller's thread: the
/// whole pipeline, for tests that drive a single region by hand.
pub struct InlinePeer<E: Engine + Clone> {
    pub peer: RegionPeer<E>,
    pub applier: Applier<E>,
    engine: E,
}

impl<E: Engine + Clone> InlinePeer<E> {
    pub fn open(
        store_id: u64,
        engine: E,
        region_id: u64,
        options: PeerOptions,
        seed: u64,
    ) -> Result<Self, RaftstoreError> {
        let peer = RegionPeer::open(store_id, engine.clone(), region_id, options, seed)?;
        let mut applier = Applier::new(engine.clone());
        applier.apply(peer.register_task().into_iter().collect())?;
        Ok(InlinePeer {
            peer,
            applier,
            engine,
        })
    }

    /// Persists, sends (by returning the messages), applies and answers whatever is ready.
    pub fn handle_ready(&mut self) -> Result<Vec<Message>, RaftstoreError> {
        let mut batch = WriteBatch::new();
        let Some(mut ready) = self.peer.collect_ready(&mut batch) else {
            if !batch.is_empty() {
                self.engine.write(&batch, crate::storage::WriteOptions::SYNC)?;
            }
            return Ok(Vec::new());
        };
        let mut messages = std::mem::take(&mut ready.early);
        // As the store's driver does: entries already durable are applied before the write,
        // and their results followed after the round.
        let mut results = match ready.early_apply.take() {
            Some(task) => self.applier.apply(vec![task])?,
            None => Vec::new(),
        };
        self.engine.write(&batch, crate::storage::WriteOptions::SYNC)?;
        let (late, mut tasks) = self.peer.on_persisted(ready);
        messages.extend(late);
        loop {
            for result in results {
                let (more_messages, more_tasks) = self.peer.on_apply_result(result);
                messages.extend(more_messages);
                tasks.extend(more_tasks);
            }
            if tasks.is_empty() {
                return Ok(messages);
            }
            results = self.applier.apply(std::mem::take(&mut tasks))?;
        }
    }
}

impl<E: Engine + Clone> std::ops::Deref for InlinePeer<E> {
    type Target = RegionPeer<E>;
    fn deref(&self) -> &RegionPeer<E> {
        &self.peer
    }
}

impl<E: Engine + Clone> std::ops::DerefMut for InlinePeer<E> {
    fn deref_mut(&mut self) -> &mut RegionPeer<E> {
        &mut self.peer
    }
}
