//! Same-key write commands of different clients, run together in one transaction.
//!
//! Writes to one key cannot run side by side: each would conflict with the other, so they take
//! the key's latch in turn, and each then waits for its own raft round (one fsync) before the
//! next may start. A key that every client writes (a counter, a hot flag) would get one write
//! per fsync. Instead, the first writer of a key becomes its *runner*; writers that arrive while
//! it runs queue behind it, and when it is done it hands the whole queue to the first of them,
//! who runs the queued commands as **one** transaction, in arrival order, and answers each
//! client with its own command's reply. So a hot key gets as many writes per fsync as clients
//! wait for it.
//!
//! Each command still takes effect atomically and exactly once, in an order consistent with
//! when its client sent it: the batch commits as a whole at a point inside every one of its
//! commands' request/reply intervals, which is what a client of Redis can observe. A command
//! that fails (wrong type, overflow) gets its error and writes nothing; the others apply, as
//! in `EXEC`.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::cmd::{DataCommand, run_in_transaction};
use super::reply::Reply;
use super::server::Server;
use crate::percolator::TxnClient;

/// Most commands one runner takes in one transaction.
const MAX_BATCH_COMMANDS: usize = 256;

/// A queued command and how to reach its client.
struct Waiting {
    command: DataCommand,
    reply: oneshot::Sender<Reply>,
    /// Makes this client the key's next runner, with the batch to run (its own command first).
    promote: Option<oneshot::Sender<Vec<Waiting>>>,
}

/// The per-key queues. See the module docs.
#[derive(Default)]
pub struct Combiner {
    /// Keys with a runner, and the commands waiting for the next turn.
    queues: Mutex<HashMap<Bytes, VecDeque<Waiting>>>,
}

/// Hands the key on when its runner is done, also if the runner's task is cancelled midway
/// (its connection closed at shutdown): the queue never stalls behind a runner that is gone.
struct Handoff<'a> {
    combiner: &'a Combiner,
    key: Bytes,
}

impl Drop for Handoff<'_> {
    fn drop(&mut self) {
        self.combiner.hand_off(&self.key);
    }
}

impl Combiner {
    /// Runs `command`, a write of `key` alone, with the other writes of `key` waiting at the
    /// same time; returns its reply.
    pub async fn run<C: TxnClient>(&self, key: Bytes, command: DataCommand, server: &Server<C>) -> Reply {
        let (reply, answer) = oneshot::channel();
        let (promote, promoted) = oneshot::channel();
        let waiting = Waiting {
            command,
            reply,
            promote: Some(promote),
        };
        let batch = {
            let mut queues = self.queues.lock();
            match queues.get_mut(&key) {
                Some(queue) => {
                    queue.push_back(waiting);
                    None
                }
                None => {
                    queues.insert(key.clone(), VecDeque::new());
                    Some(vec![waiting])
                }
            }
        };
        let mut answer = answer;
        let batch = match batch {
            Some(batch) => batch,
            None => {
                tokio::select! {
                    biased;
                    reply = &mut answer => return reply.unwrap_or_else(|_| cancelled()),
                    batch = promoted => match batch {
                        Ok(batch) => batch,
                        // The runner dropped this client's turn without answering: only at
                        // shutdown.
                        Err(_) => return answer.await.unwrap_or_else(|_| cancelled()),
                    },
                }
            }
        };
        {
            let _handoff = Handoff {
                combiner: self,
                key: key.clone(),
            };
            let (commands, replies): (Vec<DataCommand>, Vec<oneshot::Sender<Reply>>) =
                batch.into_iter().map(|w| (w.command, w.reply)).unzip();
            let results = {
                let _latch = server.latches.acquire([key.as_ref()]).await;
                run_in_transaction(&commands, server).await
            };
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        answer.await.unwrap_or_else(|_| cancelled())
    }

    /// Gives the key to the first waiting client with up to a batch of the queue, or frees
    /// it when nobody waits.
    fn hand_off(&self, key: &Bytes) {
        let mut queues = self.queues.lock();
        loop {
            let Some(queue) = queues.get_mut(key) else { return };
            if queue.is_empty() {
                queues.remove(key);
                return;
            }
            let take = queue.len().min(MAX_BATCH_COMMANDS);
            let mut batch: Vec<Waiting> = queue.drain(..take).collect();
            let promote = batch[0].promote.take().expect("a queued command can be promoted");
            match promote.send(batch) {
                Ok(()) => return,
                // That client is gone (its connection closed); its command was never run.
                // Drop it and give the rest to the next one.
                Err(mut batch) => {
                    batch.remove(0);
                    let queue = queues.get_mut(key).expect("still held");
                    for waiting in batch.into_iter().rev() {
                        queue.push_front(waiting);
                    }
                }
            }
        }
    }
}

fn cancelled() -> Reply {
    Reply::Error("ERR the server is shutting down".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key whose promoted client is gone still moves on to the next waiting client.
    #[test]
    fn a_gone_client_is_skipped_at_hand_off() {
        let combiner = Combiner::default();
        let key = Bytes::from_static(b"k");
        let (gone_reply, _) = oneshot::channel();
        let (gone_promote, gone_promoted) = oneshot::channel();
        drop(gone_promoted);
        let (reply, _answer) = oneshot::channel();
        let (promote, mut promoted) = oneshot::channel();
        let get = || {
            DataCommand::parse(
                crate::resp::cmd::table::lookup(b"get").unwrap(),
                crate::resp::cmd::table::Family::Strings,
                std::slice::from_ref(&key),
                crate::resp::cmd::DbScope { db: 0, databases: 16 },
            )
            .unwrap()
        };
        combiner.queues.lock().insert(
            key.clone(),
            VecDeque::from([
                Waiting {
                    command: get(),
                    reply: gone_reply,
                    promote: Some(gone_promote),
                },
                Waiting {
                    command: get(),
                    reply,
                    promote: Some(promote),
                },
            ]),
        );
        combiner.hand_off(&key);
        let batch = promoted.try_recv().expect("the live client was promoted");
        assert_eq!(batch.len(), 1);
        assert!(combiner.queues.lock()[&key].is_empty());
        combiner.hand_off(&key);
        assert!(!combiner.queues.lock().contains_key(&key));
    }
}
