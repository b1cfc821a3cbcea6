//! # Raft: a deterministic consensus state machine
//!
//! This module is the Raft algorithm and nothing else: no I/O, no clock, no threads, and no
//! randomness except what it draws from the seed in its [`Config`]. It moves only when its
//! driver calls [`RawNode::tick`] (a logical clock) or [`RawNode::step`] (a message from a
//! peer), and it asks for I/O by handing back a [`Ready`]: entries and state to persist,
//! messages to send, entries to apply. The multi-raft store drives one instance per region;
//! tests drive it through an in-memory network and a seeded simulation.
//!
//! ## The protocol
//!
//! **Terms and roles.** Time is divided into terms; each term has at most one leader. Every
//! node starts as a follower at term 0. A follower that hears from no leader for its election
//! timeout (random in `[election_tick, 2 × election_tick)`, from the seed) becomes a candidate:
//! it increments its term, votes for itself, and asks the others for votes. A node grants at
//! most one vote per term, first come first served, and only to a candidate whose log is at
//! least as up to date as its own (later last term, or same term and at least as long). A
//! candidate with votes from a majority becomes leader and appends an empty entry of its term.
//! Any message with a higher term makes its receiver adopt that term and become a follower;
//! messages with a lower term are ignored (or answered, so that a stale leader learns of the
//! newer term).
//!
//! **Replication.** The leader appends proposals to its log and sends each follower the
//! entries after the point where their logs match, identified by the index and term of the
//! entry before them. A follower whose log does not match there rejects, with a hint (the
//! last index at or below the probe whose term is no greater than the leader's there) so the
//! leader can skip a whole term at once. Per follower, the leader probes one message at a time
//! until it finds the match, then streams entries with at most `max_inflight_msgs` in flight
//! and `max_size_per_msg` bytes each (see [`progress`]). An entry is committed once a majority
//! stores it, but the leader counts replicas only for entries of its own term; earlier ones
//! commit with them (§5.4.2). Heartbeats carry `min(follower's match, leader's commit)`, which
//! can never make a follower commit an entry it does not share with the leader.
//!
//! **Snapshots.** When the entries a follower needs are compacted, the leader sends a
//! snapshot instead. The follower installs it unless it already has everything it covers, and
//! adopts the membership recorded in it. A follower asked to match at an index it has already
//! committed (and may have compacted, so it cannot check the term) answers with its commit
//! index instead of failing.
//!
//! **Pre-vote and check-quorum.** With `pre_vote`, a would-be candidate first asks whether it
//! *would* get votes, without changing any term; a node cut off from the group therefore
//! cannot disrupt it with a higher term when it returns. With `check_quorum`, a leader that has
//! not heard from a majority for an election timeout steps down, and a follower that heard
//! from a leader within an election timeout ignores vote requests.
//!
//! **Leader transfer** (thesis §3.10). The leader catches the transferee up (refusing new
//! proposals meanwhile) and then sends it `TimeoutNow`, upon which it campaigns at once,
//! skipping pre-vote and the voters' lease. A transfer not done within an election timeout is
//! abandoned. Transfers to itself or to a non-member are ignored; a second transfer to another
//! node replaces the first.
//!
//! **Membership changes**, one node at a time (thesis §4.1): a conf change is an entry; it
//! takes effect when applied ([`RawNode::apply_conf_change`]). A leader accepts a new one only
//! after the previous one is applied. Removing a node may shrink the quorum, so the leader
//! re-checks its commit index. A leader that applies its own removal hands leadership to a
//! caught-up member (if any) and steps down. A node joining an existing group starts with an
//! empty log and must be brought in by the leader's snapshot, which carries the membership;
//! groups are therefore bootstrapped with their log starting after an initial snapshot (as
//! TinyKV starts at index 5), so no node is ever fed the history from index 1 without it.
//!
//! **Linearizable reads.** ReadIndex (thesis §6.4): the leader records its commit index,
//! confirms it still leads with a round of heartbeats acknowledged by a majority, and then
//! answers; the read is served once the state machine has applied that index. A new leader
//! answers only after committing its no-op. With [`ReadOnlyOption::LeaseBased`] (which needs
//! `check_quorum`), the leader skips the round while its lease holds: a majority acknowledged
//! a heartbeat sent less than an election timeout ago, so no other leader can have been
//! elected since.
//!
//! ## Shortcuts this implementation takes knowingly
//!
//! - No joint consensus, no learners: one voter added or removed at a time.
//! - Proposals on a follower are refused, not forwarded.
//! - The lease assumes every node's tick lasts about as long; one tick of margin is kept.
//! - Messages are plain structs; the transport encodes them.

pub mod core;
pub mod log;
pub mod message;
pub mod progress;
pub mod raw_node;
pub mod storage;

#[cfg(test)]
mod tests;

pub use self::core::read_only::{ReadOnlyOption, ReadState};
pub use self::core::{Config, Raft, RaftError, SoftState, StateRole};
pub use message::{
    ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, Message, MessageType, NodeId,
};
pub use raw_node::{RawNode, Ready, Status};
pub use storage::{MemStorage, Storage, StorageError};
