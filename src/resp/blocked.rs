//! Clients blocked in `BLPOP`, `BZPOPMIN` and their siblings, and how they are woken.
//!
//! A blocked client's pop is an ordinary transaction, tried again whenever an element may have
//! arrived: at once when a command of this node pushed onto a list or added to a sorted set
//! ([`BlockedClients::wake_and_settle`]), and every [`POLL_INTERVAL`] for pushes made through
//! other nodes. Per key, the clients of this node are served in the order their commands
//! arrived (the kernel's receive time, see [`super::arrival`]; not the order their connection
//! tasks happened to run): only a key's first waiter tries to pop from it.
//!
//! As in Redis, a push is answered only after the clients it woke have taken their turn: the
//! pushing command waits (at most [`SETTLE_LIMIT`]) until each first waiter of a key it filled
//! has finished an attempt. So a client that pushes and then reads sees what the blocked
//! clients took, a `WATCH`ed key they change is changed before the push returns, and chains
//! (a `BLMOVE` feeding another) run through before the first push returns. A waiter whose
//! attempt is under way may have read before the push: it is waited for until its next attempt.
//! A waiter whose attempt has committed and is itself waiting for others (a chain) is not
//! waited for, which keeps circular chains from waiting on each other.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::arrival::Arrival;

/// How often a blocked client looks again without a wake-up from this node (for pushes that
/// went through another node).
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The longest a push waits for the blocked clients it woke (see the module docs).
pub const SETTLE_LIMIT: Duration = Duration::from_secs(1);

/// The queues of blocked clients, per key: waiter ids, by when their commands arrived.
#[derive(Default)]
pub struct BlockedClients {
    queues: Mutex<HashMap<Bytes, VecDeque<(Arrival, u64)>>>,
    next_id: AtomicU64,
    pushed: Notify,
    /// How many wake-ups there have been, so a waiter notices one that came during its attempt.
    wakes: AtomicU64,
    /// Each waiter's attempts: how many finished, and whether one is running.
    progress: Mutex<HashMap<u64, Progress>>,
    /// Notified when a waiter finishes an attempt or leaves.
    settled: Notify,
    /// Blocked connections by client id, with how to end their wait (`CLIENT UNBLOCK`).
    unblockers: Mutex<HashMap<u64, tokio::sync::oneshot::Sender<Unblock>>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    attempts: u64,
    state: AttemptState,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum AttemptState {
    #[default]
    Idle,
    /// Reading and writing: it may have read before a push that came meanwhile.
    Running,
    /// Committed, and waiting for the clients its own push woke.
    Settling,
}

tokio::task_local! {
    /// The blocked waiter whose attempt the current task runs, if any.
    static ATTEMPT_OF: u64;
}

/// How `CLIENT UNBLOCK` ends a wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unblock {
    /// As if the timeout had passed.
    Timeout,
    /// With the error `-UNBLOCKED`.
    Error,
}

impl BlockedClients {
    /// Queues connection `client` on `keys`, behind the waiters whose commands arrived before
    /// `arrived` and ahead of any that arrived later; it leaves every queue when the returned
    /// waiter is dropped.
    pub fn block(&self, client: u64, keys: &[Bytes], arrived: Arrival) -> Waiter<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut queues = self.queues.lock();
        for key in keys {
            let queue = queues.entry(key.clone()).or_default();
            let place = queue.partition_point(|(at, _)| *at <= arrived);
            queue.insert(place, (arrived, id));
        }
        drop(queues);
        self.progress.lock().insert(id, Progress::default());
        let (unblock, unblocked) = tokio::sync::oneshot::channel();
        self.unblockers.lock().insert(client, unblock);
        Waiter {
            clients: self,
            id,
            client,
            keys: keys.to_vec(),
            unblocked,
            wakes_seen: 0,
        }
    }

    /// Ends the wait of connection `client` if it is blocked; whether it was.
    pub fn unblock(&self, client: u64, how: Unblock) -> bool {
        match self.unblockers.lock().remove(&client) {
            Some(unblock) => unblock.send(how).is_ok(),
            None => false,
        }
    }

    /// Every key some client waits for.
    pub fn waited_keys(&self) -> Vec<Bytes> {
        self.queues.lock().keys().cloned().collect()
    }

    /// Tells blocked clients that a list or sorted set may have grown.
    pub fn wake(&self) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.pushed.notify_waiters();
    }

    /// Wakes blocked clients after a commit that filled `keys`, and waits until the first
    /// waiter of each of those keys has made an attempt since (or left), at most
    /// [`SETTLE_LIMIT`].
    pub async fn wake_and_settle(&self, keys: &[Bytes]) {
        // This task may itself be a waiter's attempt, now committed: it waits for others.
        let myself = ATTEMPT_OF.try_with(|id| *id).ok();
        if let Some(id) = myself
            && let Some(p) = self.progress.lock().get_mut(&id)
        {
            p.state = AttemptState::Settling;
        }
        // Each waiter to wait for, with the attempt count that means it has had its turn.
        let pending: Vec<(u64, u64)> = {
            let queues = self.queues.lock();
            let progress = self.progress.lock();
            let mut pending: Vec<(u64, u64)> = keys
                .iter()
                .filter_map(|key| Some(queues.get(key)?.front()?.1))
                .filter_map(|id| {
                    let p = progress.get(&id)?;
                    match p.state {
                        AttemptState::Idle => Some((id, p.attempts + 1)),
                        AttemptState::Running => Some((id, p.attempts + 2)),
                        AttemptState::Settling => None,
                    }
                })
                .collect();
            pending.sort_unstable();
            pending.dedup();
            pending
        };
        self.wake();
        if pending.is_empty() {
            return;
        }
        let deadline = Instant::now() + SETTLE_LIMIT;
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let done = {
                let progress = self.progress.lock();
                pending
                    .iter()
                    .all(|(id, enough)| progress.get(id).is_none_or(|p| p.attempts >= *enough))
            };
            if done || tokio::time::timeout_at(deadline.into(), settled).await.is_err() {
                return;
            }
        }
    }

    /// How many clients are blocked now (`INFO clients` `blocked_clients`).
    pub fn count(&self) -> usize {
        let queues = self.queues.lock();
        let mut ids: Vec<u64> = queues.values().flatten().map(|(_, id)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }
}

/// A client's place in the queues of its keys.
pub struct Waiter<'a> {
    clients: &'a BlockedClients,
    id: u64,
    client: u64,
    keys: Vec<Bytes>,
    unblocked: tokio::sync::oneshot::Receiver<Unblock>,
    /// The wake-up count when the last attempt began.
    wakes_seen: u64,
}

impl Waiter<'_> {
    /// Runs `attempt`, one try to pop, marked as this waiter's (see the module docs).
    pub async fn attempt<F: std::future::Future>(&mut self, attempt: F) -> F::Output {
        self.wakes_seen = self.clients.wakes.load(Ordering::SeqCst);
        self.set_state(AttemptState::Running);
        let output = ATTEMPT_OF.scope(self.id, attempt).await;
        if let Some(p) = self.clients.progress.lock().get_mut(&self.id) {
            p.state = AttemptState::Idle;
            p.attempts += 1;
        }
        self.clients.settled.notify_waiters();
        output
    }

    fn set_state(&self, state: AttemptState) {
        if let Some(p) = self.clients.progress.lock().get_mut(&self.id) {
            p.state = state;
        }
    }

    /// The keys (in the client's order) whose queue this client leads: the ones it may pop.
    pub fn turn(&self) -> Vec<Bytes> {
        let queues = self.clients.queues.lock();
        self.keys
            .iter()
            .filter(|key| queues.get(*key).and_then(|q| q.front()).map(|(_, id)| *id) == Some(self.id))
            .cloned()
            .collect()
    }

    /// Waits for a wake-up, or `limit`, whichever comes first; `Some` if `CLIENT UNBLOCK`
    /// ended the wait.
    pub async fn wait(&mut self, limit: Duration) -> Option<Unblock> {
        let pushed = self.clients.pushed.notified();
        tokio::pin!(pushed);
        pushed.as_mut().enable();
        if let Ok(how) = self.unblocked.try_recv() {
            return Some(how);
        }
        // A wake-up that came during the last attempt: look again at once.
        let wakes = self.clients.wakes.load(Ordering::SeqCst);
        if wakes != self.wakes_seen {
            self.wakes_seen = wakes;
            return None;
        }
        tokio::select! {
            how = &mut self.unblocked => how.ok(),
            _ = tokio::time::timeout(limit, pushed) => None,
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.clients.unblockers.lock().remove(&self.client);
        let mut queues = self.clients.queues.lock();
        for key in &self.keys {
            if let Some(queue) = queues.get_mut(key) {
                queue.retain(|(_, id)| *id != self.id);
                if queue.is_empty() {
                    queues.remove(key);
                }
            }
        }
        drop(queues);
        self.clients.progress.lock().remove(&self.id);
        self.clients.settled.notify_waiters();
        // The next in line may have an element waiting for it.
        self.clients.wake();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_push_returns_once_the_woken_waiter_has_tried_after_it() {
        let clients = Arc::new(BlockedClients::default());
        let key = Bytes::from_static(b"k");
        let mut waiter = clients.block(1, std::slice::from_ref(&key), Arrival::now());
        let settle = |clients: &Arc<BlockedClients>| {
            let clients = clients.clone();
            let key = key.clone();
            tokio::spawn(async move { clients.wake_and_settle(&[key]).await })
        };
        // An idle waiter: the push waits for its next attempt.
        let push = settle(&clients);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!push.is_finished(), "the waiter has not tried yet");
        waiter.attempt(async {}).await;
        tokio::time::timeout(Duration::from_millis(100), push)
            .await
            .expect("settled by the attempt")
            .unwrap();
        // A waiter mid-attempt may have read before the push: one more attempt is needed.
        let mut push = None;
        waiter
            .attempt(async {
                push = Some(settle(&clients));
                tokio::time::sleep(Duration::from_millis(30)).await;
            })
            .await;
        let push = push.expect("pushed during the attempt");
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!push.is_finished(), "the attempt under way does not count");
        waiter.attempt(async {}).await;
        tokio::time::timeout(Duration::from_millis(100), push)
            .await
            .expect("settled by the next attempt")
            .unwrap();
        // Without waiters a push does not wait at all.
        drop(waiter);
        tokio::time::timeout(Duration::from_millis(50), settle(&clients))
            .await
            .expect("nothing to wait for")
            .unwrap();
    }

    #[test]
    fn each_key_serves_its_waiters_in_the_order_they_blocked() {
        let clients = BlockedClients::default();
        let a = Bytes::from_static(b"a");
        let b = Bytes::from_static(b"b");
        let first = clients.block(1, std::slice::from_ref(&a), Arrival::now());
        let second = clients.block(2, &[a.clone(), b.clone()], Arrival::now());
        assert_eq!(first.turn(), vec![a.clone()]);
        assert_eq!(second.turn(), vec![b.clone()], "second in line on a, first on b");
        assert_eq!(clients.count(), 2);
        drop(first);
        assert_eq!(second.turn(), vec![a, b]);
        drop(second);
        assert_eq!(clients.count(), 0);
        assert!(clients.queues.lock().is_empty());
    }

    #[test]
    fn a_command_that_arrived_earlier_queues_ahead_of_one_that_blocked_first() {
        let clients = BlockedClients::default();
        let a = Bytes::from_static(b"a");
        let (early, late) = (Arrival::from_nanos(1_000), Arrival::from_nanos(2_000));
        let registered_first = clients.block(1, std::slice::from_ref(&a), late);
        assert_eq!(registered_first.turn(), vec![a.clone()]);
        // Its connection task ran second, but its command came in first.
        let arrived_first = clients.block(2, std::slice::from_ref(&a), early);
        let tie = clients.block(3, std::slice::from_ref(&a), late);
        assert_eq!(arrived_first.turn(), vec![a.clone()]);
        assert!(registered_first.turn().is_empty());
        drop(arrived_first);
        assert_eq!(
            registered_first.turn(),
            vec![a.clone()],
            "a tie keeps the blocking order"
        );
        assert!(tie.turn().is_empty());
        drop(registered_first);
        assert_eq!(tie.turn(), vec![a]);
    }
}
