//! The data Raft deals in: log entries, persisted state, snapshots, and messages.
//!
//! Messages are plain structs (no protobuf here); the transport that carries them between
//! nodes encodes them. Every message type documents its **delivery contract**. Raft itself
//! tolerates any message being dropped, delayed, duplicated or reordered: safety never depends
//! on delivery, only liveness does. "Local" messages never cross the network.

/// A node's id within one raft group. `NONE` (0) means "nobody".
pub type NodeId = u64;

/// No node.
pub const NONE: NodeId = 0;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EntryType {
    #[default]
    Normal,
    /// `data` is an encoded [`ConfChange`].
    ConfChange,
}

/// One log entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub entry_type: EntryType,
    pub term: u64,
    pub index: u64,
    pub data: Vec<u8>,
}

impl Entry {
    pub fn new(term: u64, index: u64) -> Self {
        Entry {
            term,
            index,
            ..Default::default()
        }
    }

    /// Roughly the bytes the entry takes in a message, for size limits.
    pub fn size(&self) -> u64 {
        self.data.len() as u64 + 24
    }
}

/// The state that must be persisted before messages that depend on it are sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: u64,
    /// Who this node voted for in `term` (`NONE` if nobody).
    pub vote: NodeId,
    pub commit: u64,
}

impl HardState {
    pub fn is_empty(&self) -> bool {
        *self == HardState::default()
    }
}

/// The voters of a group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfState {
    /// Sorted, without duplicates.
    pub voters: Vec<NodeId>,
}

impl ConfState {
    pub fn new(mut voters: Vec<NodeId>) -> Self {
        voters.sort_unstable();
        voters.dedup();
        ConfState { voters }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfChangeType {
    AddNode,
    RemoveNode,
}

/// A membership change of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfChange {
    pub change_type: ConfChangeType,
    pub node_id: NodeId,
}

impl ConfChange {
    /// 9 bytes: type (0 add, 1 remove), node id big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9);
        out.push(match self.change_type {
            ConfChangeType::AddNode => 0,
            ConfChangeType::RemoveNode => 1,
        });
        out.extend_from_slice(&self.node_id.to_be_bytes());
        out
    }

    /// The entry data of a change that carries the application's `context` after it.
    pub fn encode_with_context(&self, context: &[u8]) -> Vec<u8> {
        let mut out = self.encode();
        out.extend_from_slice(context);
        out
    }

    /// Splits entry data into the change and the context after it.
    pub fn decode_with_context(data: &[u8]) -> Option<(ConfChange, &[u8])> {
        if data.len() < 9 {
            return None;
        }
        let (change, context) = data.split_at(9);
        Some((ConfChange::decode(change)?, context))
    }

    pub fn decode(data: &[u8]) -> Option<ConfChange> {
        let (&kind, id) = data.split_first()?;
        let node_id = u64::from_be_bytes(id.try_into().ok()?);
        let change_type = match kind {
            0 => ConfChangeType::AddNode,
            1 => ConfChangeType::RemoveNode,
            _ => return None,
        };
        Some(ConfChange { change_type, node_id })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMetadata {
    /// The last entry the snapshot covers, and its term.
    pub index: u64,
    pub term: u64,
    /// Membership as of `index`.
    pub conf_state: ConfState,
}

/// A point-in-time image of the state machine, replacing the log up to `metadata.index`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub metadata: SnapshotMetadata,
    /// Opaque to Raft.
    pub data: Vec<u8>,
}

impl Snapshot {
    pub fn is_empty(&self) -> bool {
        self.metadata.index == 0
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Local: start an election. No term.
    #[default]
    Hup,
    /// Local: the leader's heartbeat timer fired. No term.
    Beat,
    /// Local (or forwarded): append `entries` to the log. May be dropped: the caller learns it
    /// from `propose`'s error or by the entry never committing.
    Propose,
    /// Leader → follower: entries after (`index`, `log_term`), and the leader's commit. May be
    /// dropped, duplicated or reordered; the leader retries from the follower's responses.
    Append,
    /// Follower → leader: `index` is the follower's last matching index, or with `reject` the
    /// index that did not match and a hint (`reject_hint`, `log_term`) for backing up faster.
    AppendResponse,
    /// Candidate → all: vote for me in `term`; my log ends at (`index`, `log_term`).
    RequestVote,
    RequestVoteResponse,
    /// Pre-candidate → all: would you vote for me in `term`? Changes nobody's term.
    RequestPreVote,
    RequestPreVoteResponse,
    /// Leader → follower: install `snapshot`. May be dropped; the leader sends again after
    /// the follower reports it (`Unreachable`/`SnapStatus`) or it times out.
    Snapshot,
    /// Leader → follower: I am alive; `commit` is min(your match, my commit). Carries
    /// `context` for read-index rounds and `round` for lease timing.
    Heartbeat,
    /// Echoes the heartbeat's `context` and `round`.
    HeartbeatResponse,
    /// Local or forwarded to the leader: hand leadership to `from`.
    TransferLeader,
    /// Leader → transferee: campaign now, skipping pre-vote and leases.
    TimeoutNow,
    /// Local or forwarded to the leader: at what index may a read with `entries[0].data` as
    /// its context be served?
    ReadIndex,
    /// Leader → follower: the answer to a forwarded `ReadIndex` (`index`).
    ReadIndexResponse,
    /// Local, leader: check that a quorum was active in the last election timeout.
    CheckQuorum,
    /// Local, from the application: the transport could not reach `from`.
    Unreachable,
    /// Local, from the application: a snapshot to `from` finished (`reject`: it failed).
    SnapStatus,
}

impl MessageType {
    /// Messages created on this node that never carry a term.
    pub fn is_local(self) -> bool {
        matches!(
            self,
            MessageType::Hup
                | MessageType::Beat
                | MessageType::Unreachable
                | MessageType::SnapStatus
                | MessageType::CheckQuorum
        )
    }

    /// The response type of a request, for the vote family.
    pub fn vote_response(self) -> MessageType {
        match self {
            MessageType::RequestVote => MessageType::RequestVoteResponse,
            MessageType::RequestPreVote => MessageType::RequestPreVoteResponse,
            other => panic!("{other:?} is not a vote request"),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub msg_type: MessageType,
    pub to: NodeId,
    pub from: NodeId,
    pub term: u64,
    pub log_term: u64,
    pub index: u64,
    pub entries: Vec<Entry>,
    pub commit: u64,
    pub snapshot: Option<Snapshot>,
    pub reject: bool,
    pub reject_hint: u64,
    /// Read-index request context; also marks a leader-transfer election.
    pub context: Vec<u8>,
    /// Heartbeat round, for lease timing.
    pub round: u64,
}

impl Message {
    pub fn new(msg_type: MessageType, from: NodeId, to: NodeId) -> Self {
        Message {
            msg_type,
            from,
            to,
            ..Default::default()
        }
    }
}

/// The context of a vote request sent because of a leader transfer: voters skip their lease
/// check for it.
pub const CAMPAIGN_TRANSFER: &[u8] = b"CampaignTransfer";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_change_round_trips() {
        for change in [
            ConfChange {
                change_type: ConfChangeType::AddNode,
                node_id: 7,
            },
            ConfChange {
                change_type: ConfChangeType::RemoveNode,
                node_id: u64::MAX,
            },
        ] {
            assert_eq!(ConfChange::decode(&change.encode()), Some(change));
        }
        assert_eq!(ConfChange::decode(&[9, 0, 0, 0, 0, 0, 0, 0, 1]), None);
        assert_eq!(ConfChange::decode(&[0, 1]), None);
        let change = ConfChange {
            change_type: ConfChangeType::AddNode,
            node_id: 7,
        };
        let data = change.encode_with_context(b"ctx");
        assert_eq!(
            ConfChange::decode_with_context(&data),
            Some((change, &b"ctx"[..]))
        );
        assert_eq!(ConfChange::decode_with_context(&data[..8]), None);
    }
}
