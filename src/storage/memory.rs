//! An in-memory engine: one ordered map per column family, behind a lock.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::RwLock;

use super::{
    Cf, Cursor, Direction, Engine, EngineIter, IterOptions, Mutation, Result, Snapshot, WriteBatch,
    WriteOptions,
};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// The four maps. Snapshots share them through `Arc`; a write after a snapshot copies the map it
/// touches (see [`Arc::make_mut`]).
#[derive(Clone, Default)]
struct Maps([Arc<Map>; 4]);

/// An engine that keeps everything in memory. Same semantics as [`super::RocksEngine`] except
/// durability: everything is lost when it is dropped. `sync` is accepted and ignored.
#[derive(Clone, Default)]
pub struct MemoryEngine {
    maps: Arc<RwLock<Maps>>,
}

impl MemoryEngine {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Engine for MemoryEngine {
    type Snapshot = MemorySnapshot;

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.maps.read().0[cf as usize].get(key).cloned())
    }

    fn write(&self, batch: &WriteBatch, _opts: WriteOptions) -> Result<()> {
        // One write lock for the whole batch makes it atomic to readers and snapshots.
        let mut maps = self.maps.write();
        for mutation in batch.mutations() {
            match mutation {
                Mutation::Put { cf, key, value } => {
                    Arc::make_mut(&mut maps.0[*cf as usize]).insert(key.clone(), value.clone());
                }
                Mutation::Delete { cf, key } => {
                    let map = &mut maps.0[*cf as usize];
                    if map.contains_key(key) {
                        Arc::make_mut(map).remove(key);
                    }
                }
                Mutation::DeleteRange { cf, start, end } => {
                    if start >= end {
                        continue;
                    }
                    let map = Arc::make_mut(&mut maps.0[*cf as usize]);
                    let doomed: Vec<Vec<u8>> = map
                        .range::<[u8], _>((Bound::Included(&start[..]), Bound::Excluded(&end[..])))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for key in doomed {
                        map.remove(&key);
                    }
                }
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> MemorySnapshot {
        MemorySnapshot {
            maps: self.maps.read().clone(),
        }
    }

    fn sync_wal(&self) -> Result<()> {
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

/// A frozen copy (by reference count) of a [`MemoryEngine`]'s maps.
pub struct MemorySnapshot {
    maps: Maps,
}

impl Snapshot for MemorySnapshot {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.maps.0[cf as usize].get(key).cloned())
    }

    fn iter(&self, cf: Cf, opts: IterOptions) -> EngineIter<'_> {
        let lower = opts.lower.as_deref().map_or(Bound::Unbounded, Bound::Included);
        let upper = opts.upper.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        if let (Bound::Included(l), Bound::Excluded(u)) = (lower, upper)
            && l >= u
        {
            // BTreeMap::range panics on an inverted range; an empty one is what callers mean.
            return Box::new(std::iter::empty());
        }
        let range = self.maps.0[cf as usize].range::<[u8], _>((lower, upper));
        let pairs = range.map(|(k, v)| Ok((k.clone(), v.clone())));
        match opts.direction {
            Direction::Forward => Box::new(pairs),
            Direction::Reverse => Box::new(pairs.rev()),
        }
    }

    fn cursor(&self, cf: Cf, opts: IterOptions) -> Box<dyn Cursor + Send + '_> {
        Box::new(MemoryCursor {
            map: &self.maps.0[cf as usize],
            opts,
            prefix: None,
            current: None,
        })
    }
}

struct MemoryCursor<'a> {
    map: &'a Map,
    opts: IterOptions,
    /// For a `versions_only` cursor, the prefix of the last seek's target.
    prefix: Option<Vec<u8>>,
    current: Option<(&'a Vec<u8>, &'a Vec<u8>)>,
}

impl MemoryCursor<'_> {
    fn settle(&mut self, from: Bound<&[u8]>) -> bool {
        self.current = self
            .map
            .range::<[u8], _>((from, Bound::Unbounded))
            .next()
            .filter(|(k, _)| self.opts.contains(k))
            .filter(|(k, _)| {
                self.prefix
                    .as_deref()
                    .is_none_or(|prefix| super::version_prefix(k) == Some(prefix))
            });
        self.current.is_some()
    }
}

impl Cursor for MemoryCursor<'_> {
    fn seek(&mut self, key: &[u8]) -> Result<bool> {
        if self.opts.versions_only {
            self.prefix = super::version_prefix(key).map(<[u8]>::to_vec);
        }
        let lower = self.opts.lower.clone();
        let key = match &lower {
            Some(lower) if lower.as_slice() > key => lower.as_slice(),
            _ => key,
        };
        Ok(self.settle(Bound::Included(key)))
    }

    fn next(&mut self) -> Result<bool> {
        let Some((key, _)) = self.current else {
            return Ok(false);
        };
        Ok(self.settle(Bound::Excluded(key.as_slice())))
    }

    fn valid(&self) -> bool {
        self.current.is_some()
    }

    fn key(&self) -> &[u8] {
        self.current.expect("a valid cursor").0
    }

    fn value(&self) -> &[u8] {
        self.current.expect("a valid cursor").1
    }
}
