//! An engine for crash tests: in memory, and losing on a simulated crash every write that was
//! not synced, as a power cut loses the unsynced tail of RocksDB's write-ahead log. A
//! `kill -9` cannot show a missing fsync (the page cache survives it); this engine can.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{Cf, Engine, IterOptions, MemoryEngine, Result, Snapshot as _, WriteBatch, WriteOptions};

/// An engine that loses, on [`CrashableEngine::crash`], every write made since the last
/// synced one — what a power cut does to RocksDB's write-ahead log tail.
#[derive(Clone)]
pub struct CrashableEngine {
    live: MemoryEngine,
    durable: MemoryEngine,
    unsynced: Arc<Mutex<Vec<WriteBatch>>>,
    /// How long a `sync_wal` takes, like a real fsync: only what was written before it began
    /// is durable when it returns.
    sync_delay: std::time::Duration,
}

impl Default for CrashableEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl CrashableEngine {
    pub fn new() -> Self {
        CrashableEngine {
            live: MemoryEngine::new(),
            durable: MemoryEngine::new(),
            unsynced: Arc::default(),
            sync_delay: std::time::Duration::ZERO,
        }
    }

    /// An engine whose `sync_wal` takes `delay` (writes made meanwhile are not covered).
    pub fn with_sync_delay(delay: std::time::Duration) -> Self {
        CrashableEngine {
            sync_delay: delay,
            ..Self::new()
        }
    }

    /// The engine as a restarted process finds it: what was synced at this instant, in an
    /// engine of its own (writes still arriving at this one do not reach it), like a machine
    /// that lost power now.
    pub fn crash(&self) -> CrashableEngine {
        let _writes = self.unsynced.lock().unwrap();
        let mut batch = WriteBatch::new();
        for cf in Cf::ALL {
            for (key, value) in cf_contents(&self.durable, cf) {
                batch.put(cf, key, value);
            }
        }
        let live = MemoryEngine::new();
        live.write(&batch, WriteOptions::SYNC).unwrap();
        let durable = MemoryEngine::new();
        durable.write(&batch, WriteOptions::SYNC).unwrap();
        CrashableEngine {
            live,
            durable,
            unsynced: Arc::default(),
            sync_delay: self.sync_delay,
        }
    }
}

impl Engine for CrashableEngine {
    type Snapshot = <MemoryEngine as Engine>::Snapshot;

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.live.get(cf, key)
    }

    fn write(&self, batch: &WriteBatch, opts: WriteOptions) -> Result<()> {
        let mut unsynced = self.unsynced.lock().unwrap();
        self.live.write(batch, opts)?;
        if opts.sync {
            // A sync makes everything written before it durable too, as a WAL fsync does.
            for earlier in unsynced.drain(..) {
                self.durable.write(&earlier, WriteOptions::SYNC)?;
            }
            self.durable.write(batch, WriteOptions::SYNC)?;
        } else {
            unsynced.push(batch.clone());
        }
        Ok(())
    }

    fn snapshot(&self) -> Self::Snapshot {
        self.live.snapshot()
    }

    fn sync_wal(&self) -> Result<()> {
        if self.sync_delay.is_zero() {
            return self.write(&WriteBatch::new(), WriteOptions::SYNC);
        }
        // What is written when the fsync starts is what it makes durable, once it is done.
        let covered = self.unsynced.lock().unwrap().len();
        std::thread::sleep(self.sync_delay);
        let mut unsynced = self.unsynced.lock().unwrap();
        for batch in unsynced.drain(..covered) {
            self.durable.write(&batch, WriteOptions::SYNC)?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.write(&WriteBatch::new(), WriteOptions::SYNC)
    }
}

/// Every key and value of `cf` in `engine`, in order.
pub fn cf_contents(engine: &impl Engine, cf: Cf) -> BTreeMap<Vec<u8>, Vec<u8>> {
    engine
        .snapshot()
        .iter(cf, IterOptions::default())
        .map(|item| item.expect("reading an in-memory engine"))
        .collect()
}
