//! Active expiry: the sweeper that deletes keys once their deadline has passed.
//!
//! An expired key is already absent to every command (`keyspace::read_entry`); the sweeper is
//! what gives its storage back without anyone reading it. It walks the expiry index (entries
//! ordered by deadline, see `keyspace`) from the oldest deadline, a bounded batch per
//! transaction: for each entry due at the transaction's instant, it deletes the key if the key
//! still has that deadline and drops the index entry either way (a key rewritten since has a
//! new entry, or none). A batch that conflicts with a client's write of one of its keys fails
//! whole and runs again next round. Hash fields of a deleted hash are left to MVCC GC, as for
//! `DEL`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::db::{DbIndex, InDb};
use super::error::CommandResult;
use super::keyspace::{delete_key, expired_index_range, now_ms, parse_expiry_index_key, read_raw_entry};
use super::server::Server;
use crate::percolator::{Commit, Transaction, TxnClient};

/// Index entries one sweep transaction takes at most.
pub const SWEEP_BATCH: usize = 256;
/// The pause between sweeps when the last one found nothing more due.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Keys deleted because their deadline had passed.
    pub expired: u64,
    /// Index entries examined (and dropped).
    pub examined: usize,
}

/// One sweep transaction over at most `batch` due index entries, taken from the `databases`
/// in turn.
pub async fn sweep_once<C: TxnClient>(store: &C, databases: usize, batch: usize) -> CommandResult<Sweep> {
    let mut txn = store.begin().await?;
    let now = now_ms(&txn);
    let mut sweep = Sweep::default();
    for db in 0..databases {
        if sweep.examined == batch {
            break;
        }
        let txn = &mut InDb::new(&mut txn, db as DbIndex);
        let (start, end) = expired_index_range(now);
        let due = txn.scan(&start, Some(&end), batch - sweep.examined).await?;
        sweep.examined += due.len();
        for (index_key, _) in due {
            if let Some((deadline, key)) = parse_expiry_index_key(&index_key) {
                let key = key.to_vec();
                if let Some(entry) = read_raw_entry(txn, &key).await?
                    && entry.expires_at == Some(deadline)
                    && entry.is_expired(now)
                {
                    delete_key(txn, &key);
                    sweep.expired += 1;
                }
            }
            txn.delete(index_key);
        }
    }
    if sweep.examined > 0 {
        txn.commit().await?;
    }
    Ok(sweep)
}

/// Sweeps while `active()` says this node is the one to (one sweeper per cluster, like GC),
/// back to back while batches come back full, every [`SWEEP_INTERVAL`] otherwise. Runs until
/// its task is aborted.
pub async fn run_sweeper<C: TxnClient>(server: Arc<Server<C>>, active: impl Fn() -> bool) {
    loop {
        if !active() {
            tokio::time::sleep(SWEEP_INTERVAL).await;
            continue;
        }
        match sweep_once(&server.store, server.config.databases, SWEEP_BATCH).await {
            Ok(sweep) => {
                server
                    .stats
                    .expired_keys
                    .fetch_add(sweep.expired, Ordering::Relaxed);
                if sweep.examined < SWEEP_BATCH {
                    tokio::time::sleep(SWEEP_INTERVAL).await;
                }
            }
            Err(e) => {
                // Usually a client wrote one of the keys meanwhile; the next round retries.
                tracing::debug!(error = %e, "expiry sweep failed; will retry");
                tokio::time::sleep(SWEEP_INTERVAL).await;
            }
        }
    }
}
