//! # The Redis front end
//!
//! A tokio server in the shape of mini-redis: [`server::serve`] accepts connections (at most
//! `max_clients`, the rest refused with Redis's error) and runs one `connection::Connection`
//! task each; a connection splits its input into requests ([`parse`]), runs them one at a time
//! through [`cmd::execute`], and writes the replies in order ([`reply`]).
//!
//! - **Protocols.** RESP2 by default, RESP3 after `HELLO 3`. Requests are multibulk frames or
//!   inline lines; replies are encoded by the `redis-protocol` crate.
//! - **Limits.** Bulk length, multibulk element count, inline length, unparsed bytes per
//!   connection and connection count are configured in `cluster.yaml` (`resp:`) with Redis's
//!   defaults. No header makes the server reserve memory ahead of the bytes that back it.
//! - **Errors.** Unknown commands, wrong arity, syntax errors and wrong types get Redis's exact
//!   replies and the connection stays open; framing errors get `-ERR Protocol error: ...` and
//!   the connection closes. Error texts are built in one place, [`error`].
//! - **Data commands** run through the transaction interface of [`crate::percolator`], one
//!   transaction per command (one per `EXEC` for a `MULTI`), retried on write conflicts, so
//!   each is atomic; the reply is sent only after the commit is durable. Keys and values are
//!   laid out as `keyspace` says, in numbered databases as [`db`] says.
//!   Concurrent writes of one key from different clients run together in one transaction
//!   (`combiner`), so a hot key gets as many writes per fsync as clients wait for it.
//! - **Expiry.** A key's deadline is part of its meta entry and each transaction decides at
//!   its own timestamp's clock whether a key has expired (`keyspace`); [`expiry`] deletes
//!   expired keys in the background.
//! - **Shutdown.** The accept loop stops, each connection finishes the command it is running
//!   and closes, and [`server::serve`] returns after at most `shutdown_grace_ms`.
//!
//! ## Caveats
//!
//! - `SWAPDB` rewrites both databases (O(N)); `RENAME`, `COPY` and `MOVE` of a collection copy
//!   its parts (O(N)).
//! - `DBSIZE`, `KEYS` and `INFO keyspace` walk the whole keyspace: O(keys), reading each key's
//!   entry head, not its value (`percolator::ScanLimits`).
//! - `FLUSHDB` deletes in chunks of transactions: atomic per chunk, not as a whole.
//! - `SCAN` cursors are remembered per node (see `scan_cursors`).

pub mod admin;
mod args;
mod arrival;
pub(crate) mod blocked;
pub mod cmd;
mod combiner;
mod connection;
pub mod db;
pub mod error;
pub mod expiry;
mod glob;
mod keyspace;
pub mod parse;
pub mod reply;
mod scan_cursors;
pub mod server;
mod session;

pub use keyspace::HashFieldGcFilter;
pub use server::{NodeInfo, NodeProbe, Server, serve};
