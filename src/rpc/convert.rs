//! Between our in-memory types and their protobuf forms. Every decoder refuses what it cannot
//! represent (an unknown message or entry type, a missing field) with an error naming it: a
//! peer running other code must not be able to make a store act on a guess.

use super::proto;
use crate::raft::message::{ConfState, Snapshot, SnapshotMetadata};
use crate::raft::{Entry, EntryType, Message, MessageType};
use crate::raftstore::meta::{Peer, Region, RegionEpoch};
use crate::raftstore::store::RaftMessage;

/// A protobuf message that does not describe one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}: {detail}")]
pub struct ConvertError {
    pub what: &'static str,
    pub detail: String,
}

fn malformed(what: &'static str, detail: impl Into<String>) -> ConvertError {
    ConvertError {
        what,
        detail: detail.into(),
    }
}

/// Message types that cross the network, and their numbers on the wire. Local types (`Hup`,
/// `Beat`, ...) never do.
const WIRE_TYPES: [(MessageType, u32); 14] = [
    (MessageType::Propose, 1),
    (MessageType::Append, 2),
    (MessageType::AppendResponse, 3),
    (MessageType::RequestVote, 4),
    (MessageType::RequestVoteResponse, 5),
    (MessageType::RequestPreVote, 6),
    (MessageType::RequestPreVoteResponse, 7),
    (MessageType::Snapshot, 8),
    (MessageType::Heartbeat, 9),
    (MessageType::HeartbeatResponse, 10),
    (MessageType::TransferLeader, 11),
    (MessageType::TimeoutNow, 12),
    (MessageType::ReadIndex, 13),
    (MessageType::ReadIndexResponse, 14),
];

fn type_number(msg_type: MessageType) -> u32 {
    WIRE_TYPES
        .iter()
        .find(|(t, _)| *t == msg_type)
        .map(|(_, n)| *n)
        .unwrap_or_else(|| panic!("{msg_type:?} is local and never sent"))
}

fn type_of(number: u32) -> Result<MessageType, ConvertError> {
    WIRE_TYPES
        .iter()
        .find(|(_, n)| *n == number)
        .map(|(t, _)| *t)
        .ok_or_else(|| malformed("raft message", format!("unknown message type {number}")))
}

fn entry_to_proto(entry: &Entry) -> proto::Entry {
    proto::Entry {
        entry_type: match entry.entry_type {
            EntryType::Normal => 0,
            EntryType::ConfChange => 1,
        },
        term: entry.term,
        index: entry.index,
        data: entry.data.clone(),
    }
}

fn entry_from_proto(entry: proto::Entry) -> Result<Entry, ConvertError> {
    Ok(Entry {
        entry_type: match entry.entry_type {
            0 => EntryType::Normal,
            1 => EntryType::ConfChange,
            other => return Err(malformed("raft entry", format!("unknown entry type {other}"))),
        },
        term: entry.term,
        index: entry.index,
        data: entry.data,
    })
}

pub fn peer_to_proto(peer: Peer) -> proto::Peer {
    proto::Peer {
        id: peer.id,
        store_id: peer.store_id,
    }
}

pub fn peer_from_proto(peer: Option<proto::Peer>, what: &'static str) -> Result<Peer, ConvertError> {
    let peer = peer.ok_or_else(|| malformed(what, "no peer"))?;
    Ok(Peer {
        id: peer.id,
        store_id: peer.store_id,
    })
}

pub fn region_to_proto(region: &Region) -> proto::Region {
    proto::Region {
        id: region.id,
        start_key: region.start_key.clone(),
        end_key: region.end_key.clone(),
        epoch: Some(proto::RegionEpoch {
            conf_ver: region.epoch.conf_ver,
            version: region.epoch.version,
        }),
        peers: region.peers.iter().copied().map(peer_to_proto).collect(),
    }
}

pub fn region_from_proto(region: proto::Region) -> Result<Region, ConvertError> {
    let epoch = region.epoch.ok_or_else(|| malformed("region", "no epoch"))?;
    Ok(Region {
        id: region.id,
        start_key: region.start_key,
        end_key: region.end_key,
        epoch: RegionEpoch {
            conf_ver: epoch.conf_ver,
            version: epoch.version,
        },
        peers: region
            .peers
            .into_iter()
            .map(|p| Peer {
                id: p.id,
                store_id: p.store_id,
            })
            .collect(),
    })
}

/// The wire form of `message`, without a snapshot's data (which travels in chunks).
pub fn raft_message_to_proto(message: &RaftMessage) -> proto::RaftMessage {
    let m = &message.message;
    proto::RaftMessage {
        region_id: message.region_id,
        from_peer: Some(peer_to_proto(message.from_peer)),
        to_peer: Some(peer_to_proto(message.to_peer)),
        epoch: Some(proto::RegionEpoch {
            conf_ver: message.epoch.conf_ver,
            version: message.epoch.version,
        }),
        message: Some(proto::Message {
            msg_type: type_number(m.msg_type),
            to: m.to,
            from: m.from,
            term: m.term,
            log_term: m.log_term,
            index: m.index,
            entries: m.entries.iter().map(entry_to_proto).collect(),
            commit: m.commit,
            reject: m.reject,
            reject_hint: m.reject_hint,
            context: m.context.clone(),
            round: m.round,
            snapshot: m.snapshot.as_ref().map(|s| proto::SnapshotMetadata {
                index: s.metadata.index,
                term: s.metadata.term,
                voters: s.metadata.conf_state.voters.clone(),
            }),
        }),
    }
}

/// Our form of a wire message; `snapshot_data` is the reassembled data of a snapshot message.
pub fn raft_message_from_proto(
    message: proto::RaftMessage,
    snapshot_data: Option<Vec<u8>>,
) -> Result<RaftMessage, ConvertError> {
    let epoch = message
        .epoch
        .ok_or_else(|| malformed("raft message", "no epoch"))?;
    let m = message
        .message
        .ok_or_else(|| malformed("raft message", "no message"))?;
    let msg_type = type_of(m.msg_type)?;
    let snapshot = match (msg_type, m.snapshot, snapshot_data) {
        (MessageType::Snapshot, Some(meta), Some(data)) => Some(Snapshot {
            metadata: SnapshotMetadata {
                index: meta.index,
                term: meta.term,
                conf_state: ConfState::new(meta.voters),
            },
            data,
        }),
        (MessageType::Snapshot, _, _) => {
            return Err(malformed(
                "raft message",
                "a snapshot message without its snapshot",
            ));
        }
        (_, None, None) => None,
        _ => {
            return Err(malformed(
                "raft message",
                "a snapshot on a message of another type",
            ));
        }
    };
    Ok(RaftMessage {
        region_id: message.region_id,
        from_peer: peer_from_proto(message.from_peer, "raft message")?,
        to_peer: peer_from_proto(message.to_peer, "raft message")?,
        epoch: RegionEpoch {
            conf_ver: epoch.conf_ver,
            version: epoch.version,
        },
        message: Message {
            msg_type,
            to: m.to,
            from: m.from,
            term: m.term,
            log_term: m.log_term,
            index: m.index,
            entries: m
                .entries
                .into_iter()
                .map(entry_from_proto)
                .collect::<Result<_, _>>()?,
            commit: m.commit,
            snapshot,
            reject: m.reject,
            reject_hint: m.reject_hint,
            context: m.context,
            round: m.round,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(msg_type: MessageType) -> RaftMessage {
        let mut message = Message::new(msg_type, 1, 2);
        message.term = 7;
        message.log_term = 6;
        message.index = 41;
        message.commit = 40;
        message.reject = true;
        message.reject_hint = 39;
        message.context = b"ctx".to_vec();
        message.round = 3;
        message.entries = vec![
            Entry {
                entry_type: EntryType::ConfChange,
                term: 7,
                index: 42,
                data: vec![0, 1, 2],
            },
            Entry::new(7, 43),
        ];
        if msg_type == MessageType::Snapshot {
            message.snapshot = Some(Snapshot {
                metadata: SnapshotMetadata {
                    index: 40,
                    term: 6,
                    conf_state: ConfState::new(vec![1, 2, 3]),
                },
                data: b"region data".to_vec(),
            });
        }
        RaftMessage {
            region_id: 9,
            from_peer: Peer { id: 1, store_id: 11 },
            to_peer: Peer { id: 2, store_id: 12 },
            epoch: RegionEpoch {
                conf_ver: 4,
                version: 5,
            },
            message,
        }
    }

    #[test]
    fn every_wire_type_round_trips() {
        for (msg_type, _) in WIRE_TYPES {
            let message = sample(msg_type);
            let data = message.message.snapshot.as_ref().map(|s| s.data.clone());
            let wire = raft_message_to_proto(&message);
            assert_eq!(
                raft_message_from_proto(wire, data).unwrap(),
                message,
                "{msg_type:?}"
            );
        }
    }

    #[test]
    fn malformed_messages_are_refused() {
        let mut wire = raft_message_to_proto(&sample(MessageType::Append));
        wire.message.as_mut().unwrap().msg_type = 99;
        assert!(raft_message_from_proto(wire, None).is_err());
        let mut wire = raft_message_to_proto(&sample(MessageType::Append));
        wire.message.as_mut().unwrap().entries[0].entry_type = 5;
        assert!(raft_message_from_proto(wire, None).is_err());
        let mut wire = raft_message_to_proto(&sample(MessageType::Append));
        wire.to_peer = None;
        assert!(raft_message_from_proto(wire, None).is_err());
        // A snapshot message needs its data, and only a snapshot message may carry one.
        let wire = raft_message_to_proto(&sample(MessageType::Snapshot));
        assert!(raft_message_from_proto(wire, None).is_err());
        let wire = raft_message_to_proto(&sample(MessageType::Heartbeat));
        assert!(raft_message_from_proto(wire, Some(Vec::new())).is_err());
    }
}
