//! # ferrokv
//!
//! A Redis-protocol server whose data lives in a transactional key-value store built the way
//! TiKV is built. See `docs/ARCHITECTURE.md` for the layers and threads; each module's own
//! docs say the rest.

pub mod config;
pub mod node;
pub mod percolator;
pub mod raft;
pub mod raftstore;
pub mod resp;
pub mod rpc;
pub mod scheduler;
pub mod storage;
