//! Same-key write commands of different clients, run together in one transaction.
//!
//! Writes to one key cannot run side by side: each would conflict with the other, so they take
//! the key's latch in turn, and each then waits for its own raft round (one fsync) before the
//! next may start. A key that every client writes (a counter, a hot flag, the list every
//! worker pushes to) would get one write per fsync. Instead, the first writer of a key becomes
//! its *runner*; writers that arrive while it runs queue behind it, and when it is done it
//! hands the whole queue to the first of them, who runs the queued commands as **one**
//! transaction, in arrival order, and answers each client with its own commands' replies. So a
//! hot key gets as many writes per fsync as clients wait for it.
//!
//! What a client queues is a *unit*: one command, or a pipelined batch whose commands all write
//! that one key (`redis-benchmark -P 16 -t lpush`). A unit's commands stay together and in
//! their order, so a pipeline still runs back to back, now in the same transaction as other
//! clients' writes of the key instead of one pipeline per fsync.
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

/// Most commands one runner takes in one transaction (a longer first unit is taken whole).
const MAX_BATCH_COMMANDS: usize = 256;

/// A queued unit (see the module docs) and how to reach its client.
struct Waiting {
    commands: Vec<DataCommand>,
    replies: oneshot::Sender<Vec<Reply>>,
    /// Makes this client the key's next runner, with the batch to run (its own unit first).
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
    /// Runs `commands`, each a write of `key` alone, in their order, with the other writes of
    /// `key` waiting at the same time; returns their replies.
    pub async fn run<C: TxnClient>(
        &self,
        key: Bytes,
        commands: Vec<DataCommand>,
        server: &Server<C>,
    ) -> Vec<Reply> {
        let count = commands.len();
        let (replies, answer) = oneshot::channel();
        let (promote, promoted) = oneshot::channel();
        let waiting = Waiting {
            commands,
            replies,
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
                    replies = &mut answer => return replies.unwrap_or_else(|_| cancelled(count)),
                    batch = promoted => match batch {
                        Ok(batch) => batch,
                        // The runner dropped this client's turn without answering: only at
                        // shutdown.
                        Err(_) => return answer.await.unwrap_or_else(|_| cancelled(count)),
                    },
                }
            }
        };
        {
            let _handoff = Handoff {
                combiner: self,
                key: key.clone(),
            };
            let mut commands = Vec::new();
            let mut units = Vec::with_capacity(batch.len());
            for waiting in batch {
                units.push((waiting.commands.len(), waiting.replies));
                commands.extend(waiting.commands);
            }
            let results = {
                let _latch = server.latches.acquire([key.as_ref()]).await;
                run_in_transaction(&commands, server).await
            };
            let mut results = results.into_iter();
            for (count, replies) in units {
                let _ = replies.send(results.by_ref().take(count).collect());
            }
        }
        answer.await.unwrap_or_else(|_| cancelled(count))
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
            let mut commands = queue[0].commands.len();
            let take = 1 + queue
                .iter()
                .skip(1)
                .take_while(|waiting| {
                    commands += waiting.commands.len();
                    commands <= MAX_BATCH_COMMANDS
                })
                .count();
            let mut batch: Vec<Waiting> = queue.drain(..take).collect();
            let promote = batch[0].promote.take().expect("a queued command can be promoted");
            match promote.send(batch) {
                Ok(()) => return,
                // That client is gone (its connection closed); its unit was never run.
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

fn cancelled(count: usize) -> Vec<Reply> {
    vec![Reply::Error("ERR the server is shutting down".into()); count]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(key: &Bytes) -> DataCommand {
        DataCommand::parse(
            crate::resp::cmd::table::lookup(b"get").unwrap(),
            crate::resp::cmd::table::Family::Strings,
            std::slice::from_ref(key),
            crate::resp::cmd::DbScope { db: 0, databases: 16 },
        )
        .unwrap()
    }

    /// A queued unit of `commands` copies of one command, with the receiver its promotion
    /// arrives on.
    fn unit(key: &Bytes, commands: usize) -> (Waiting, oneshot::Receiver<Vec<Waiting>>) {
        let (replies, _) = oneshot::channel();
        let (promote, promoted) = oneshot::channel();
        let waiting = Waiting {
            commands: (0..commands).map(|_| get(key)).collect(),
            replies,
            promote: Some(promote),
        };
        (waiting, promoted)
    }

    /// A key whose promoted client is gone still moves on to the next waiting client.
    #[test]
    fn a_gone_client_is_skipped_at_hand_off() {
        let combiner = Combiner::default();
        let key = Bytes::from_static(b"k");
        let (gone, gone_promoted) = unit(&key, 1);
        drop(gone_promoted);
        let (live, mut promoted) = unit(&key, 1);
        combiner
            .queues
            .lock()
            .insert(key.clone(), VecDeque::from([gone, live]));
        combiner.hand_off(&key);
        let batch = promoted.try_recv().expect("the live client was promoted");
        assert_eq!(batch.len(), 1);
        assert!(combiner.queues.lock()[&key].is_empty());
        combiner.hand_off(&key);
        assert!(!combiner.queues.lock().contains_key(&key));
    }

    /// A hand-off takes whole units, in order, while their commands fit in one batch; a first
    /// unit longer than a batch still goes whole.
    #[test]
    fn a_hand_off_takes_whole_units_up_to_the_batch_limit() {
        let combiner = Combiner::default();
        let key = Bytes::from_static(b"k");
        let (first, mut first_promoted) = unit(&key, MAX_BATCH_COMMANDS - 20);
        let (second, _second_promoted) = unit(&key, 16);
        let (third, mut third_promoted) = unit(&key, 16);
        let (fourth, mut fourth_promoted) = unit(&key, MAX_BATCH_COMMANDS + 1);
        combiner
            .queues
            .lock()
            .insert(key.clone(), VecDeque::from([first, second, third, fourth]));

        combiner.hand_off(&key);
        let batch = first_promoted.try_recv().expect("the first unit's client runs");
        let sizes: Vec<usize> = batch.iter().map(|w| w.commands.len()).collect();
        assert_eq!(
            sizes,
            [MAX_BATCH_COMMANDS - 20, 16],
            "the third would pass the limit"
        );

        combiner.hand_off(&key);
        let batch = third_promoted
            .try_recv()
            .expect("the third unit's client runs next");
        assert_eq!(batch.len(), 1, "the fourth does not fit behind it");
        assert!(fourth_promoted.try_recv().is_err());

        combiner.hand_off(&key);
        let batch = fourth_promoted.try_recv().expect("an oversized unit runs alone");
        assert_eq!(batch[0].commands.len(), MAX_BATCH_COMMANDS + 1);
    }
}
