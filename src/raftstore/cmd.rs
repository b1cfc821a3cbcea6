//! Commands a region's raft group replicates, their results, and the errors a store answers
//! with (TinyKV's `raft_cmdpb` and `errorpb`, in our own types).
//!
//! A [`RaftCommand`] is proposed by the region's leader and, once committed, applied by every
//! peer in log order. Its header names the region, the peer it was sent to, and the region epoch
//! the sender believed in; the store refuses a command whose epoch is stale, so a write routed
//! with an old view of the region (before a split) never lands in the wrong place.
//!
//! The entry data is `header body`, with `body = 1 count (mutation)*` for a write and
//! `body = 2 admin` for an admin command; integers big-endian, byte strings length-prefixed
//! (see `meta.rs`).

use super::meta::{DecodeError, Peer, Reader, Region, RegionEpoch, Writer};
use crate::raft::ConfChangeType;
use crate::storage::{Cf, SharedStorageError, StorageError};

/// Who a command is for, and what its sender knew.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommandHeader {
    pub region_id: u64,
    /// The peer the sender believes leads the region.
    pub peer: Peer,
    pub epoch: RegionEpoch,
    /// The term the sender saw the leader in; 0 skips the check.
    pub term: u64,
}

/// One change to the store's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    Put { cf: Cf, key: Vec<u8>, value: Vec<u8> },
    Delete { cf: Cf, key: Vec<u8> },
}

impl Mutation {
    pub fn key(&self) -> &[u8] {
        match self {
            Mutation::Put { key, .. } | Mutation::Delete { key, .. } => key,
        }
    }
}

/// Commands that change the region or its log rather than the data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    /// Drop the raft log through `index` (whose term is `term`).
    CompactLog { index: u64, term: u64 },
    /// Add or remove one peer of the region (a raft membership change).
    ChangePeer { change_type: ConfChangeType, peer: Peer },
    /// Split the region at `split_key`: the region keeps `[start, split_key)`, and a new
    /// region `new_region_id` takes `[split_key, end)`, with one new peer (of id
    /// `new_peer_ids[i]`) on the store of each of the region's peers (in the order of
    /// `Region::peers`). Both regions' `version` grows by one.
    Split {
        split_key: Vec<u8>,
        new_region_id: u64,
        new_peer_ids: Vec<u64>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandBody {
    /// Mutations applied atomically, in one batch with the new applied index.
    Write(Vec<Mutation>),
    Admin(AdminCommand),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftCommand {
    pub header: CommandHeader,
    pub body: CommandBody,
}

/// What applying a command produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandResponse {
    Written,
    Admin,
    /// A read may go ahead: everything committed when it arrived is applied, and this peer
    /// was the leader then (ReadIndex). Read the engine now.
    Readable,
}

/// Why a store refused or could not finish a command. The client layer reacts to each:
/// retry at the named leader, refresh its region cache, or give up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaftstoreError {
    #[error("region {region_id}: not the leader (leader: {leader:?})")]
    NotLeader { region_id: u64, leader: Option<Peer> },
    #[error("region {0} is not on this store")]
    RegionNotFound(u64),
    #[error("key {key:?} is not in region {region_id} [{start_key:?}, {end_key:?})")]
    KeyNotInRegion {
        key: Vec<u8>,
        region_id: u64,
        start_key: Vec<u8>,
        end_key: Vec<u8>,
    },
    #[error("region epoch does not match; the region is now {current:?}")]
    EpochNotMatch { current: Vec<Region> },
    /// The command's term is over, or another entry took its log slot: it was not applied.
    #[error("stale command")]
    StaleCommand,
    /// The command may or may not have been applied (a snapshot replaced the log it was in);
    /// the client must read to find out, or retry only if the command is idempotent.
    #[error("the command's outcome is unknown")]
    Undetermined,
    #[error("command for store {requested}, this is store {actual}")]
    StoreNotMatch { requested: u64, actual: u64 },
    #[error("command for peer {requested}, this is peer {actual}")]
    PeerNotMatch { requested: u64, actual: u64 },
    /// A command no store would accept (a client bug, not a routing problem).
    #[error("invalid command: {0}")]
    InvalidCommand(String),
    /// The engine failed; the store stops.
    #[error("storage: {0}")]
    Storage(SharedStorageError),
    /// Metadata on the engine does not decode.
    #[error("corrupt store metadata: {0}")]
    Corrupt(super::meta::DecodeError),
    /// A snapshot from the leader could not be applied.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// This peer leads the region but has not applied an entry of its own term yet, so its
    /// engine may lack what earlier leaders committed. Retry shortly.
    #[error("region {region_id}: the new leader is not ready yet")]
    LeaderNotReady { region_id: u64 },
    /// The store's driver stopped (the node is shutting down, or its engine failed).
    #[error("the store is stopped")]
    StoreStopped,
    /// A client could not reach the store it routed a request to (before the request could
    /// have been served, or for a request that is safe to send again).
    #[error("store {store_id} is unreachable: {reason}")]
    StoreUnreachable { store_id: u64, reason: String },
    /// A remote store failed in a way this node cannot represent more precisely.
    #[error("remote store: {0}")]
    Remote(String),
}

impl RaftstoreError {
    /// Whether the same request, sent again (after refreshing where the region is and who
    /// leads it), may succeed. `Undetermined` is not: the first attempt may have applied.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            RaftstoreError::NotLeader { .. }
                | RaftstoreError::RegionNotFound(_)
                | RaftstoreError::KeyNotInRegion { .. }
                | RaftstoreError::EpochNotMatch { .. }
                | RaftstoreError::StaleCommand
                | RaftstoreError::LeaderNotReady { .. }
                | RaftstoreError::StoreNotMatch { .. }
                | RaftstoreError::PeerNotMatch { .. }
                | RaftstoreError::StoreUnreachable { .. }
        )
    }
}

impl From<StorageError> for RaftstoreError {
    fn from(e: StorageError) -> Self {
        RaftstoreError::Storage(e.into())
    }
}

pub type CommandResult = Result<CommandResponse, RaftstoreError>;

const BODY_WRITE: u8 = 1;
const BODY_ADMIN: u8 = 2;
const MUTATION_PUT: u8 = 1;
const MUTATION_DELETE: u8 = 2;
const ADMIN_COMPACT_LOG: u8 = 1;
const ADMIN_CHANGE_PEER: u8 = 2;
const ADMIN_SPLIT: u8 = 3;
/// More new peers than this in a split is corrupt input.
const MAX_SPLIT_PEERS: u64 = 1_000;
/// More mutations than this in one command is corrupt input, not a command.
const MAX_MUTATIONS: u64 = 1 << 24;

fn cf_byte(cf: Cf) -> u8 {
    cf as u8
}

fn cf_of(r: &Reader<'_>, byte: u8) -> Result<Cf, DecodeError> {
    Cf::ALL
        .get(byte as usize)
        .copied()
        .ok_or_else(|| r.error("unknown column family"))
}

impl RaftCommand {
    pub fn encode(&self) -> Vec<u8> {
        let h = &self.header;
        let mut w = Writer(Vec::with_capacity(64));
        w.u64(h.region_id)
            .u64(h.peer.id)
            .u64(h.peer.store_id)
            .u64(h.epoch.conf_ver)
            .u64(h.epoch.version)
            .u64(h.term);
        match &self.body {
            CommandBody::Write(mutations) => {
                w.u8(BODY_WRITE).u64(mutations.len() as u64);
                for m in mutations {
                    match m {
                        Mutation::Put { cf, key, value } => {
                            w.u8(MUTATION_PUT).u8(cf_byte(*cf)).bytes(key).bytes(value);
                        }
                        Mutation::Delete { cf, key } => {
                            w.u8(MUTATION_DELETE).u8(cf_byte(*cf)).bytes(key);
                        }
                    }
                }
            }
            CommandBody::Admin(AdminCommand::CompactLog { index, term }) => {
                w.u8(BODY_ADMIN).u8(ADMIN_COMPACT_LOG).u64(*index).u64(*term);
            }
            CommandBody::Admin(AdminCommand::Split {
                split_key,
                new_region_id,
                new_peer_ids,
            }) => {
                w.u8(BODY_ADMIN)
                    .u8(ADMIN_SPLIT)
                    .bytes(split_key)
                    .u64(*new_region_id)
                    .u64(new_peer_ids.len() as u64);
                for id in new_peer_ids {
                    w.u64(*id);
                }
            }
            CommandBody::Admin(AdminCommand::ChangePeer { change_type, peer }) => {
                let kind = match change_type {
                    ConfChangeType::AddNode => 0,
                    ConfChangeType::RemoveNode => 1,
                };
                w.u8(BODY_ADMIN)
                    .u8(ADMIN_CHANGE_PEER)
                    .u8(kind)
                    .u64(peer.id)
                    .u64(peer.store_id);
            }
        }
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<RaftCommand, DecodeError> {
        let mut r = Reader {
            bytes,
            what: "raft command",
        };
        let header = CommandHeader {
            region_id: r.u64()?,
            peer: Peer {
                id: r.u64()?,
                store_id: r.u64()?,
            },
            epoch: RegionEpoch {
                conf_ver: r.u64()?,
                version: r.u64()?,
            },
            term: r.u64()?,
        };
        let body = match r.u8()? {
            BODY_WRITE => {
                let count = r.u64()?;
                if count > MAX_MUTATIONS {
                    return Err(r.error("implausible mutation count"));
                }
                let mut mutations = Vec::with_capacity(count.min(1024) as usize);
                for _ in 0..count {
                    let kind = r.u8()?;
                    let cf_byte = r.u8()?;
                    let cf = cf_of(&r, cf_byte)?;
                    mutations.push(match kind {
                        MUTATION_PUT => Mutation::Put {
                            cf,
                            key: r.bytes()?,
                            value: r.bytes()?,
                        },
                        MUTATION_DELETE => Mutation::Delete { cf, key: r.bytes()? },
                        _ => return Err(r.error("unknown mutation")),
                    });
                }
                CommandBody::Write(mutations)
            }
            BODY_ADMIN => match r.u8()? {
                ADMIN_COMPACT_LOG => CommandBody::Admin(AdminCommand::CompactLog {
                    index: r.u64()?,
                    term: r.u64()?,
                }),
                ADMIN_CHANGE_PEER => {
                    let change_type = match r.u8()? {
                        0 => ConfChangeType::AddNode,
                        1 => ConfChangeType::RemoveNode,
                        _ => return Err(r.error("unknown peer change")),
                    };
                    CommandBody::Admin(AdminCommand::ChangePeer {
                        change_type,
                        peer: Peer {
                            id: r.u64()?,
                            store_id: r.u64()?,
                        },
                    })
                }
                ADMIN_SPLIT => {
                    let split_key = r.bytes()?;
                    let new_region_id = r.u64()?;
                    let count = r.u64()?;
                    if count > MAX_SPLIT_PEERS {
                        return Err(r.error("implausible peer count"));
                    }
                    let new_peer_ids = (0..count).map(|_| r.u64()).collect::<Result<_, _>>()?;
                    CommandBody::Admin(AdminCommand::Split {
                        split_key,
                        new_region_id,
                        new_peer_ids,
                    })
                }
                _ => return Err(r.error("unknown admin command")),
            },
            _ => return Err(r.error("unknown command body")),
        };
        r.finish(RaftCommand { header, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> CommandHeader {
        CommandHeader {
            region_id: 7,
            peer: Peer { id: 3, store_id: 2 },
            epoch: RegionEpoch {
                conf_ver: 4,
                version: 5,
            },
            term: 9,
        }
    }

    #[test]
    fn commands_round_trip() {
        let commands = [
            RaftCommand {
                header: header(),
                body: CommandBody::Write(vec![
                    Mutation::Put {
                        cf: Cf::Write,
                        key: b"k".to_vec(),
                        value: vec![0, 255, 1],
                    },
                    Mutation::Delete {
                        cf: Cf::Lock,
                        key: Vec::new(),
                    },
                ]),
            },
            RaftCommand {
                header: header(),
                body: CommandBody::Write(Vec::new()),
            },
            RaftCommand {
                header: CommandHeader::default(),
                body: CommandBody::Admin(AdminCommand::CompactLog { index: 10, term: 3 }),
            },
            RaftCommand {
                header: header(),
                body: CommandBody::Admin(AdminCommand::ChangePeer {
                    change_type: ConfChangeType::RemoveNode,
                    peer: Peer { id: 4, store_id: 9 },
                }),
            },
            RaftCommand {
                header: header(),
                body: CommandBody::Admin(AdminCommand::Split {
                    split_key: b"m".to_vec(),
                    new_region_id: 8,
                    new_peer_ids: vec![11, 12, 13],
                }),
            },
        ];
        for command in commands {
            assert_eq!(RaftCommand::decode(&command.encode()).unwrap(), command);
        }
    }

    #[test]
    fn malformed_commands_are_errors() {
        let good = RaftCommand {
            header: header(),
            body: CommandBody::Write(vec![Mutation::Put {
                cf: Cf::Default,
                key: b"key".to_vec(),
                value: b"value".to_vec(),
            }]),
        }
        .encode();
        for len in 0..good.len() {
            assert!(RaftCommand::decode(&good[..len]).is_err(), "truncated to {len}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(RaftCommand::decode(&trailing).is_err());
        // The column family byte of the first mutation (header 48, body tag 1, count 8, kind 1).
        let mut bad_cf = good.clone();
        bad_cf[58] = 9;
        assert_eq!(
            RaftCommand::decode(&bad_cf).unwrap_err().detail,
            "unknown column family"
        );
        let mut bad_body = good;
        bad_body[48] = 7;
        assert_eq!(
            RaftCommand::decode(&bad_body).unwrap_err().detail,
            "unknown command body"
        );
    }
}
