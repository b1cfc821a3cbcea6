//! # Raftstore: the multi-raft store (in progress)
//!
//! One `Store` per node will hold many region peers, each a raft group driven through
//! [`crate::raft::RawNode`], with proposals, apply, routing, epochs, conf changes, splits,
//! leader transfers and the background workers (log GC, snapshots, split checks, scheduler
//! heartbeats), as DESIGN.md describes.
//!
//! What exists so far is its foundation on the engine:
//!
//! - [`meta`]: regions, peers, epochs, and the per-peer states (raft, apply, region) with
//!   their byte encodings;
//! - [`keys`]: where those states and each region's raft log live in the `raft` column family;
//! - [`peer_storage`]: `PeerStorage`, a region peer's log and states on the engine, which the
//!   raft core reads through its `Storage` trait.
//!
//! ## Caveats
//!
//! - `PeerStorage::snapshot` answers "temporarily unavailable" until the region worker that
//!   generates snapshots exists.

pub mod keys;
pub mod meta;
pub mod peer_storage;
