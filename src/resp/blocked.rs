//! Clients blocked in `BLPOP` and its siblings, and how they are woken.
//!
//! A blocked client's pop is an ordinary transaction, tried again whenever an element may have
//! arrived: at once when a command of this node pushed onto a list ([`BlockedClients::wake`]),
//! and every [`POLL_INTERVAL`] for pushes made through other nodes. Per key, the clients of
//! this node are served in the order they blocked: only a key's first waiter tries to pop from
//! it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// How often a blocked client looks again without a wake-up from this node (for pushes that
/// went through another node).
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The queues of blocked clients, per key.
#[derive(Default)]
pub struct BlockedClients {
    queues: Mutex<HashMap<Bytes, VecDeque<u64>>>,
    next_id: AtomicU64,
    pushed: Notify,
    /// Blocked connections by client id, with how to end their wait (`CLIENT UNBLOCK`).
    unblockers: Mutex<HashMap<u64, tokio::sync::oneshot::Sender<Unblock>>>,
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
    /// Queues connection `client` on `keys`; it leaves every queue when the returned waiter
    /// is dropped.
    pub fn block(&self, client: u64, keys: &[Bytes]) -> Waiter<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut queues = self.queues.lock();
        for key in keys {
            queues.entry(key.clone()).or_default().push_back(id);
        }
        drop(queues);
        let (unblock, unblocked) = tokio::sync::oneshot::channel();
        self.unblockers.lock().insert(client, unblock);
        Waiter {
            clients: self,
            id,
            client,
            keys: keys.to_vec(),
            unblocked,
        }
    }

    /// Ends the wait of connection `client` if it is blocked; whether it was.
    pub fn unblock(&self, client: u64, how: Unblock) -> bool {
        match self.unblockers.lock().remove(&client) {
            Some(unblock) => unblock.send(how).is_ok(),
            None => false,
        }
    }

    /// Tells blocked clients that a list may have grown.
    pub fn wake(&self) {
        self.pushed.notify_waiters();
    }

    /// How many clients are blocked now (`INFO clients` `blocked_clients`).
    pub fn count(&self) -> usize {
        let queues = self.queues.lock();
        let mut ids: Vec<u64> = queues.values().flatten().copied().collect();
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
}

impl Waiter<'_> {
    /// The keys (in the client's order) whose queue this client leads: the ones it may pop.
    pub fn turn(&self) -> Vec<Bytes> {
        let queues = self.clients.queues.lock();
        self.keys
            .iter()
            .filter(|key| queues.get(*key).and_then(|q| q.front()) == Some(&self.id))
            .cloned()
            .collect()
    }

    /// Waits for a wake-up, or `limit`, whichever comes first; `Some` if `CLIENT UNBLOCK`
    /// ended the wait.
    pub async fn wait(&mut self, limit: Duration) -> Option<Unblock> {
        let pushed = self.clients.pushed.notified();
        tokio::pin!(pushed);
        if let Ok(how) = self.unblocked.try_recv() {
            return Some(how);
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
                queue.retain(|id| *id != self.id);
                if queue.is_empty() {
                    queues.remove(key);
                }
            }
        }
        drop(queues);
        // The next in line may have an element waiting for it.
        self.clients.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_serves_its_waiters_in_the_order_they_blocked() {
        let clients = BlockedClients::default();
        let a = Bytes::from_static(b"a");
        let b = Bytes::from_static(b"b");
        let first = clients.block(1, std::slice::from_ref(&a));
        let second = clients.block(2, &[a.clone(), b.clone()]);
        assert_eq!(first.turn(), vec![a.clone()]);
        assert_eq!(second.turn(), vec![b.clone()], "second in line on a, first on b");
        assert_eq!(clients.count(), 2);
        drop(first);
        assert_eq!(second.turn(), vec![a, b]);
        drop(second);
        assert_eq!(clients.count(), 0);
        assert!(clients.queues.lock().is_empty());
    }
}
