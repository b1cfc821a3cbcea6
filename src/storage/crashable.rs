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
        }
    }

    /// The engine as a restarted process finds it.
    pub fn crash(&self) -> CrashableEngine {
        let live = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        for cf in Cf::ALL {
            for (key, value) in cf_contents(&self.durable, cf) {
                batch.put(cf, key, value);
            }
        }
        live.write(&batch, WriteOptions::SYNC).unwrap();
        CrashableEngine {
            live,
            durable: self.durable.clone(),
            unsynced: Arc::default(),
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
        self.write(&WriteBatch::new(), WriteOptions::SYNC)
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
