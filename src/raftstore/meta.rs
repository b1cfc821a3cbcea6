//! The metadata a store keeps per region, and its byte encodings.
//!
//! All integers are big-endian; byte strings are length-prefixed with a u32. The encodings are
//! private to this store (peers exchange them only inside snapshots), and every decoder rejects
//! truncated or trailing input with an error instead of guessing.

use crate::raft::HardState;

/// Errors decoding stored metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}: {detail}")]
pub struct DecodeError {
    pub what: &'static str,
    pub detail: String,
}

/// A region's version numbers. `conf_ver` grows with every membership change, `version` with
/// every split or merge; a request carrying an older epoch is stale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegionEpoch {
    pub conf_ver: u64,
    pub version: u64,
}

impl RegionEpoch {
    /// The epoch regions start with.
    pub const INITIAL: RegionEpoch = RegionEpoch {
        conf_ver: 1,
        version: 1,
    };

    /// Whether `self` is older than `other` in either number (TinyKV's `IsEpochStale`).
    pub fn is_stale_against(&self, other: &RegionEpoch) -> bool {
        self.version < other.version || self.conf_ver < other.conf_ver
    }
}

/// One replica of a region: its raft id and the store it lives on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Peer {
    pub id: u64,
    pub store_id: u64,
}

/// A contiguous key range `[start_key, end_key)` (an empty `end_key` is unbounded) replicated
/// by one raft group.
///
/// **Which keys.** The keys a region holds are the engine keys of the data column families as
/// Percolator writes them (`percolator::key`): a user key in memcomparable form, followed in
/// `write` and `default` by 8 bytes of inverted timestamp. Region boundaries are always
/// encoded user keys *without* a timestamp (a split key is chosen as one). Because no
/// memcomparable encoding is a prefix of another's, every version `encode(k) ++ ts` of a user
/// key sorts after `encode(k)` and before `encode(k')` for every user key `k' > k`: so
/// [`Region::contains`] answers the same for all versions of a key and for its lock, and a
/// split never separates them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Region {
    pub id: u64,
    pub start_key: Vec<u8>,
    pub end_key: Vec<u8>,
    pub epoch: RegionEpoch,
    pub peers: Vec<Peer>,
}

impl Region {
    /// Whether the engine key `key` lies in `[start_key, end_key)` (see the type's docs for
    /// why all of a user key's versions answer alike).
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start_key.as_slice() && (self.end_key.is_empty() || key < self.end_key.as_slice())
    }

    pub fn peer_on_store(&self, store_id: u64) -> Option<Peer> {
        self.peers.iter().copied().find(|p| p.store_id == store_id)
    }
}

/// Where the raft log is compacted to: entries up to `index` are gone, and `term` is the term
/// of entry `index`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TruncatedState {
    pub index: u64,
    pub term: u64,
}

/// The raft side of a peer's persisted state (raft column family).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaftLocalState {
    pub hard_state: HardState,
    pub last_index: u64,
    pub last_term: u64,
}

/// The state machine side of a peer's persisted state, written in the same batch as the data
/// it describes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaftApplyState {
    pub applied_index: u64,
    pub truncated: TruncatedState,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PeerState {
    #[default]
    Normal,
    /// Being replaced by a snapshot.
    Applying,
    /// Removed: its data is gone; messages to it are answered with a tombstone.
    Tombstone,
}

/// The region a peer belongs to, and whether the peer is alive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegionLocalState {
    pub state: PeerState,
    pub region: Region,
}

/// Appends the encodings' primitives; shared with the command encoding (`cmd.rs`).
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(&(b.len() as u32).to_be_bytes());
        self.0.extend_from_slice(b);
        self
    }
}

/// Reads what [`Writer`] wrote, rejecting truncated or trailing input.
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn error(&self, detail: &str) -> DecodeError {
        DecodeError {
            what: self.what,
            detail: detail.to_string(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(self.error("truncated"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        Ok(self.take(len)?.to_vec())
    }

    pub(crate) fn finish<T>(self, value: T) -> Result<T, DecodeError> {
        if self.bytes.is_empty() {
            Ok(value)
        } else {
            Err(self.error("trailing bytes"))
        }
    }
}

pub(crate) fn put_region(w: &mut Writer, region: &Region) {
    w.u64(region.id)
        .bytes(&region.start_key)
        .bytes(&region.end_key)
        .u64(region.epoch.conf_ver)
        .u64(region.epoch.version)
        .u64(region.peers.len() as u64);
    for peer in &region.peers {
        w.u64(peer.id).u64(peer.store_id);
    }
}

pub(crate) fn read_region(r: &mut Reader<'_>) -> Result<Region, DecodeError> {
    let id = r.u64()?;
    let start_key = r.bytes()?;
    let end_key = r.bytes()?;
    let epoch = RegionEpoch {
        conf_ver: r.u64()?,
        version: r.u64()?,
    };
    let count = r.u64()?;
    if count > 1_000 {
        return Err(r.error("implausible peer count"));
    }
    let mut peers = Vec::with_capacity(count as usize);
    for _ in 0..count {
        peers.push(Peer {
            id: r.u64()?,
            store_id: r.u64()?,
        });
    }
    Ok(Region {
        id,
        start_key,
        end_key,
        epoch,
        peers,
    })
}

impl Region {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        put_region(&mut w, self);
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<Region, DecodeError> {
        let mut r = Reader {
            bytes,
            what: "region",
        };
        let region = read_region(&mut r)?;
        r.finish(region)
    }
}

impl RaftLocalState {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(40));
        w.u64(self.hard_state.term)
            .u64(self.hard_state.vote)
            .u64(self.hard_state.commit)
            .u64(self.last_index)
            .u64(self.last_term);
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<RaftLocalState, DecodeError> {
        let mut r = Reader {
            bytes,
            what: "raft local state",
        };
        let state = RaftLocalState {
            hard_state: HardState {
                term: r.u64()?,
                vote: r.u64()?,
                commit: r.u64()?,
            },
            last_index: r.u64()?,
            last_term: r.u64()?,
        };
        r.finish(state)
    }
}

impl RaftApplyState {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(24));
        w.u64(self.applied_index)
            .u64(self.truncated.index)
            .u64(self.truncated.term);
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<RaftApplyState, DecodeError> {
        let mut r = Reader {
            bytes,
            what: "raft apply state",
        };
        let state = RaftApplyState {
            applied_index: r.u64()?,
            truncated: TruncatedState {
                index: r.u64()?,
                term: r.u64()?,
            },
        };
        r.finish(state)
    }
}

impl RegionLocalState {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(vec![match self.state {
            PeerState::Normal => 0,
            PeerState::Applying => 1,
            PeerState::Tombstone => 2,
        }]);
        put_region(&mut w, &self.region);
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<RegionLocalState, DecodeError> {
        let mut r = Reader {
            bytes,
            what: "region local state",
        };
        let state = match r.u8()? {
            0 => PeerState::Normal,
            1 => PeerState::Applying,
            2 => PeerState::Tombstone,
            _ => return Err(r.error("unknown peer state")),
        };
        let region = read_region(&mut r)?;
        r.finish(RegionLocalState { state, region })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region() -> Region {
        Region {
            id: 7,
            start_key: b"a".to_vec(),
            end_key: b"m".to_vec(),
            epoch: RegionEpoch {
                conf_ver: 3,
                version: 2,
            },
            peers: vec![Peer { id: 1, store_id: 1 }, Peer { id: 9, store_id: 2 }],
        }
    }

    #[test]
    fn states_round_trip() {
        let r = region();
        assert_eq!(Region::decode(&r.encode()).unwrap(), r);
        let local = RegionLocalState {
            state: PeerState::Tombstone,
            region: r,
        };
        assert_eq!(RegionLocalState::decode(&local.encode()).unwrap(), local);
        let raft = RaftLocalState {
            hard_state: HardState {
                term: 5,
                vote: 2,
                commit: 9,
            },
            last_index: 12,
            last_term: 5,
        };
        assert_eq!(RaftLocalState::decode(&raft.encode()).unwrap(), raft);
        let apply = RaftApplyState {
            applied_index: 9,
            truncated: TruncatedState { index: 5, term: 5 },
        };
        assert_eq!(RaftApplyState::decode(&apply.encode()).unwrap(), apply);
    }

    #[test]
    fn malformed_bytes_are_errors() {
        let bytes = region().encode();
        assert!(Region::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Region::decode(&longer).is_err());
        assert!(RegionLocalState::decode(&[9]).is_err());
        assert!(RaftApplyState::decode(&[0; 23]).is_err());
    }

    #[test]
    fn ranges_and_epochs() {
        let r = region();
        assert!(r.contains(b"a") && r.contains(b"lzz") && !r.contains(b"m") && !r.contains(b""));
        let unbounded = Region {
            end_key: Vec::new(),
            ..region()
        };
        assert!(unbounded.contains(b"zzzz"));
        assert_eq!(r.peer_on_store(2), Some(Peer { id: 9, store_id: 2 }));
        let epoch = RegionEpoch {
            conf_ver: 2,
            version: 3,
        };
        assert!(epoch.is_stale_against(&RegionEpoch {
            conf_ver: 3,
            version: 3
        }));
        assert!(epoch.is_stale_against(&RegionEpoch {
            conf_ver: 2,
            version: 4
        }));
        assert!(!epoch.is_stale_against(&RegionEpoch {
            conf_ver: 1,
            version: 3
        }));
    }
}
