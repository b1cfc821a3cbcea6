//! Where a store keeps each region's raft metadata: all in the `raft` column family, under
//! local keys that start with `0x01` (the scheduler's keys there start with `0x02`). The layout
//! is TinyKV's; region ids and indexes are big-endian, so a region's log is contiguous and in
//! index order.
//!
//! | key | bytes | value |
//! |---|---|---|
//! | raft log entry | `01 02 region:8 01 index:8` | an encoded [`Entry`] |
//! | raft state | `01 02 region:8 02` | `RaftLocalState` |
//! | apply state | `01 02 region:8 03` | `RaftApplyState` |
//! | region state | `01 03 region:8 01` | `RegionLocalState` |
//! | store ident | `01 01` | cluster id:8, store id:8 |

use super::meta::{DecodeError, Reader, Writer};
use crate::raft::{Entry, EntryType};

const LOCAL_PREFIX: u8 = 0x01;
const STORE_IDENT_SUFFIX: u8 = 0x01;
const REGION_RAFT_PREFIX: u8 = 0x02;
const REGION_META_PREFIX: u8 = 0x03;
const RAFT_LOG_SUFFIX: u8 = 0x01;
const RAFT_STATE_SUFFIX: u8 = 0x02;
const APPLY_STATE_SUFFIX: u8 = 0x03;
const REGION_STATE_SUFFIX: u8 = 0x01;

fn region_key(prefix: u8, region_id: u64, suffix: u8) -> Vec<u8> {
    let mut key = Vec::with_capacity(19);
    key.extend_from_slice(&[LOCAL_PREFIX, prefix]);
    key.extend_from_slice(&region_id.to_be_bytes());
    key.push(suffix);
    key
}

/// Where a store records which cluster it belongs to and its id.
pub fn store_ident_key() -> Vec<u8> {
    vec![LOCAL_PREFIX, STORE_IDENT_SUFFIX]
}

pub fn raft_log_key(region_id: u64, index: u64) -> Vec<u8> {
    let mut key = region_key(REGION_RAFT_PREFIX, region_id, RAFT_LOG_SUFFIX);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The keys of every log entry of a region: `[start, end)`.
pub fn raft_log_range(region_id: u64) -> (Vec<u8>, Vec<u8>) {
    (
        region_key(REGION_RAFT_PREFIX, region_id, RAFT_LOG_SUFFIX),
        region_key(REGION_RAFT_PREFIX, region_id, RAFT_LOG_SUFFIX + 1),
    )
}

pub fn raft_state_key(region_id: u64) -> Vec<u8> {
    region_key(REGION_RAFT_PREFIX, region_id, RAFT_STATE_SUFFIX)
}

pub fn apply_state_key(region_id: u64) -> Vec<u8> {
    region_key(REGION_RAFT_PREFIX, region_id, APPLY_STATE_SUFFIX)
}

pub fn region_state_key(region_id: u64) -> Vec<u8> {
    region_key(REGION_META_PREFIX, region_id, REGION_STATE_SUFFIX)
}

/// The keys of every region's state on this store: `[start, end)`.
pub fn region_state_range() -> (Vec<u8>, Vec<u8>) {
    (
        vec![LOCAL_PREFIX, REGION_META_PREFIX],
        vec![LOCAL_PREFIX, REGION_META_PREFIX + 1],
    )
}

/// The region id of a region state key, or `None` for any other key.
pub fn region_id_of_state_key(key: &[u8]) -> Option<u64> {
    match key {
        [LOCAL_PREFIX, REGION_META_PREFIX, id @ .., REGION_STATE_SUFFIX] if id.len() == 8 => {
            Some(u64::from_be_bytes(id.try_into().expect("8 bytes")))
        }
        _ => None,
    }
}

/// `type:u8 term:u64 index:u64 data_len:u32 data`.
pub fn encode_entry(entry: &Entry) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(21 + entry.data.len()));
    w.u8(match entry.entry_type {
        EntryType::Normal => 0,
        EntryType::ConfChange => 1,
    })
    .u64(entry.term)
    .u64(entry.index)
    .bytes(&entry.data);
    w.0
}

pub fn decode_entry(bytes: &[u8]) -> Result<Entry, DecodeError> {
    let mut r = Reader {
        bytes,
        what: "raft log entry",
    };
    let entry_type = match r.u8()? {
        0 => EntryType::Normal,
        1 => EntryType::ConfChange,
        _ => return Err(r.error("unknown entry type")),
    };
    let entry = Entry {
        entry_type,
        term: r.u64()?,
        index: r.u64()?,
        data: r.bytes()?,
    };
    r.finish(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_documented_bytes() {
        assert_eq!(raft_state_key(1), [1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(region_state_key(1), [1, 3, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
        assert_eq!(raft_log_key(1, 5).len(), 19);
        // A region's log sorts by index and sits inside its range.
        let (start, end) = raft_log_range(7);
        assert!(start <= raft_log_key(7, 0) && raft_log_key(7, u64::MAX) < end);
        assert!(raft_log_key(7, 9) < raft_log_key(7, 10));
        assert!(raft_log_key(7, u64::MAX) < raft_state_key(7));
        let (start, end) = region_state_range();
        assert!(start < region_state_key(0) && region_state_key(u64::MAX) < end);
        assert_eq!(region_id_of_state_key(&region_state_key(42)), Some(42));
        assert_eq!(region_id_of_state_key(&raft_state_key(42)), None);
    }

    #[test]
    fn entries_round_trip_and_malformed_ones_are_errors() {
        let entry = Entry {
            entry_type: EntryType::ConfChange,
            term: 3,
            index: 9,
            data: b"payload".to_vec(),
        };
        assert_eq!(decode_entry(&encode_entry(&entry)).unwrap(), entry);
        let bytes = encode_entry(&entry);
        assert!(decode_entry(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_entry(&[7; 21]).is_err());
    }
}
