//! A transaction over a map, for driving the sorted set code without a store. Deletes leave
//! tombstones, as MVCC deletes do until garbage collection, and scans count every entry they
//! pass, tombstones included.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use crate::percolator::{Result, ScanLimits, ScanPage, Transaction};
use crate::scheduler::tso::TimeStamp;

#[derive(Default)]
pub struct MapTxn {
    entries: BTreeMap<Bytes, Option<Bytes>>,
    /// Entries, live or deleted, that scans have passed.
    pub examined: usize,
}

impl Transaction for MapTxn {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.entries.get(key).cloned().flatten())
    }
    fn start_ts(&self) -> TimeStamp {
        TimeStamp::new(1)
    }
    fn put(&mut self, key: Bytes, value: Bytes) {
        self.entries.insert(key, Some(value));
    }
    fn delete(&mut self, key: Bytes) {
        self.entries.insert(key, None);
    }
    fn watch(&mut self, _: Bytes, _: TimeStamp) {}
    async fn scan_page(&mut self, start: &[u8], end: Option<&[u8]>, limits: ScanLimits) -> Result<ScanPage> {
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        let (mut pairs, mut resume, mut looked) = (Vec::new(), None, 0);
        for (key, value) in self.entries.range::<[u8], _>((Bound::Included(start), upper)) {
            if pairs.len() == limits.limit || looked == limits.examine {
                resume = Some(key.clone());
                break;
            }
            looked += 1;
            if let Some(value) = value {
                let head = limits.value_head.map_or(value.len(), |n| n.min(value.len()));
                pairs.push((key.clone(), value.slice(..head)));
            }
        }
        self.examined += looked;
        Ok(ScanPage { pairs, resume })
    }
}
