//! Region snapshots: what a leader sends a follower whose next entry was compacted away.
//!
//! The data is the region (range, epoch, peers) and every key-value pair of its range in the
//! data column families (`default`, `lock`, `write`), read from one engine snapshot together
//! with the apply state it matches. Encoding: `region count (cf key value)*` with the
//! primitives of `meta.rs`.
//!
//! Snapshots are built in memory when the raft core asks for one, and sent whole inside the raft
//! message: fine for the regions a split checker keeps small, and the seam where a region worker
//! and a chunked stream will go.

use super::meta::{DecodeError, Reader, Region, Writer, put_region, read_region};
use crate::storage::{Cf, IterOptions, Result as StorageResult, Snapshot as EngineSnapshot};

/// The column families a region's data lives in (the raft column family is the store's own).
pub const DATA_CFS: [Cf; 3] = [Cf::Default, Cf::Lock, Cf::Write];

/// More pairs than this is corrupt input, not a snapshot.
const MAX_PAIRS: u64 = 1 << 32;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotData {
    pub region: Region,
    pub pairs: Vec<(Cf, Vec<u8>, Vec<u8>)>,
}

/// The bounds of `region`'s range, for iterating its data.
pub fn region_bounds(region: &Region) -> IterOptions {
    if region.end_key.is_empty() {
        IterOptions::from(region.start_key.clone())
    } else {
        IterOptions::range(region.start_key.clone(), region.end_key.clone())
    }
}

impl SnapshotData {
    /// Reads `region`'s data from an engine snapshot.
    pub fn read(snapshot: &impl EngineSnapshot, region: &Region) -> StorageResult<SnapshotData> {
        let mut pairs = Vec::new();
        for cf in DATA_CFS {
            for item in snapshot.iter(cf, region_bounds(region)) {
                let (key, value) = item?;
                pairs.push((cf, key, value));
            }
        }
        Ok(SnapshotData {
            region: region.clone(),
            pairs,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let size: usize = self.pairs.iter().map(|(_, k, v)| k.len() + v.len() + 9).sum();
        let mut w = Writer(Vec::with_capacity(size + 64));
        put_region(&mut w, &self.region);
        w.u64(self.pairs.len() as u64);
        for (cf, key, value) in &self.pairs {
            w.u8(*cf as u8).bytes(key).bytes(value);
        }
        w.0
    }

    /// The region a snapshot is of, read from the head of its encoding without decoding the
    /// data.
    pub fn region_of(bytes: &[u8]) -> Result<Region, DecodeError> {
        let mut r = Reader {
            bytes,
            what: "region snapshot",
        };
        read_region(&mut r)
    }

    pub fn decode(bytes: &[u8]) -> Result<SnapshotData, DecodeError> {
        let mut r = Reader {
            bytes,
            what: "region snapshot",
        };
        let region = read_region(&mut r)?;
        let count = r.u64()?;
        if count > MAX_PAIRS {
            return Err(r.error("implausible pair count"));
        }
        let mut pairs = Vec::with_capacity(count.min(4096) as usize);
        for _ in 0..count {
            let cf = match Cf::ALL.get(r.u8()? as usize) {
                Some(&cf) if DATA_CFS.contains(&cf) => cf,
                _ => return Err(r.error("not a data column family")),
            };
            let key = r.bytes()?;
            if !region.contains(&key) {
                return Err(r.error("a key outside the region"));
            }
            pairs.push((cf, key, r.bytes()?));
        }
        r.finish(SnapshotData { region, pairs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raftstore::meta::{Peer, RegionEpoch};
    use crate::storage::{Engine, MemoryEngine, WriteBatch, WriteOptions};

    fn region() -> Region {
        Region {
            id: 3,
            start_key: b"b".to_vec(),
            end_key: b"d".to_vec(),
            epoch: RegionEpoch::INITIAL,
            peers: vec![Peer { id: 1, store_id: 1 }],
        }
    }

    #[test]
    fn reads_only_the_region_and_its_data_cfs_and_round_trips() {
        let engine = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        for cf in Cf::ALL {
            for key in [&b"a"[..], b"b", b"c\xff", b"d"] {
                batch.put(cf, key, cf.name());
            }
        }
        engine.write(&batch, WriteOptions::SYNC).unwrap();
        let data = SnapshotData::read(&engine.snapshot(), &region()).unwrap();
        let keys: Vec<(Cf, &[u8])> = data.pairs.iter().map(|(cf, k, _)| (*cf, &k[..])).collect();
        assert_eq!(
            keys,
            vec![
                (Cf::Default, &b"b"[..]),
                (Cf::Default, b"c\xff"),
                (Cf::Lock, b"b"),
                (Cf::Lock, b"c\xff"),
                (Cf::Write, b"b"),
                (Cf::Write, b"c\xff"),
            ]
        );
        assert_eq!(SnapshotData::decode(&data.encode()).unwrap(), data);
    }

    #[test]
    fn malformed_snapshots_are_errors() {
        let data = SnapshotData {
            region: region(),
            pairs: vec![(Cf::Write, b"c".to_vec(), b"v".to_vec())],
        };
        let good = data.encode();
        for len in 0..good.len() {
            assert!(SnapshotData::decode(&good[..len]).is_err(), "truncated to {len}");
        }
        let outside = SnapshotData {
            region: region(),
            pairs: vec![(Cf::Write, b"z".to_vec(), Vec::new())],
        };
        assert_eq!(
            SnapshotData::decode(&outside.encode()).unwrap_err().detail,
            "a key outside the region"
        );
        let raft_cf = SnapshotData {
            region: region(),
            pairs: vec![(Cf::Raft, b"c".to_vec(), Vec::new())],
        };
        assert_eq!(
            SnapshotData::decode(&raft_cf.encode()).unwrap_err().detail,
            "not a data column family"
        );
    }
}
