//! Key latches: holders of the same key's latch run one at a time.
//!
//! Two users:
//!
//! - The transaction server latches the keys of each command (prewrite, commit, rollback...)
//!   from reading its snapshot until its writes are applied, so commands on one key see each
//!   other's effects, as TiKV's scheduler does.
//! - The RESP layer latches the keys of a write command for its whole transaction. Percolator
//!   is optimistic: concurrent writers of one key conflict and the loser starts over, which
//!   under a hot key (twenty clients `INCR`ing one counter) wastes most attempts. With the
//!   latch, same-key writers on one node queue up in arrival order instead; the optimistic
//!   check stays as the safety net for writers the latch cannot see (other nodes).
//!
//! A latch covers every key that hashes to its slot. A command takes its slots in ascending
//! order, so two commands can never each hold a slot the other waits for.

use std::hash::{Hash, Hasher};

use tokio::sync::{Mutex, MutexGuard};

/// Latch slots per node; more slots, fewer unrelated keys sharing one.
pub const LATCH_SLOTS: usize = 65_536;

pub struct Latches {
    slots: Vec<Mutex<()>>,
}

/// Held latches; dropping it releases them.
pub struct LatchGuard<'a> {
    _held: Vec<MutexGuard<'a, ()>>,
}

impl Default for Latches {
    fn default() -> Self {
        Latches {
            slots: (0..LATCH_SLOTS).map(|_| Mutex::new(())).collect(),
        }
    }
}

impl Latches {
    /// Waits for the latches of all `keys` (tokio's mutex queues waiters fairly).
    pub async fn acquire<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> LatchGuard<'_> {
        let mut slots: Vec<usize> = keys.into_iter().map(|key| self.slot(key)).collect();
        slots.sort_unstable();
        slots.dedup();
        let mut held = Vec::with_capacity(slots.len());
        for slot in slots {
            held.push(self.slots[slot].lock().await);
        }
        LatchGuard { _held: held }
    }

    fn slot(&self, key: &[u8]) -> usize {
        // SipHash with fixed keys: the same key always lands in the same slot.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        (hasher.finish() % self.slots.len() as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn same_key_holders_never_overlap() {
        let latches = Arc::new(Latches::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..16 {
            let (latches, inside) = (latches.clone(), inside.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    // Overlapping key sets in different orders must not deadlock.
                    let keys: [&[u8]; 2] = if i % 2 == 0 { [b"a", b"b"] } else { [b"b", b"a"] };
                    let _guard = latches.acquire(keys).await;
                    assert_eq!(
                        inside.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two holders of one latch"
                    );
                    tokio::task::yield_now().await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_key_named_twice_takes_its_latch_once() {
        let latches = Latches::default();
        let _guard = latches.acquire([&b"k"[..], b"k"]).await;
    }
}
