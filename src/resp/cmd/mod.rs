//! The command table and the commands, one file per family.
//!
//! [`execute`] is the single entry point: it looks the command up, checks its arity, counts it,
//! and hands it to its family. Connection and server commands act on the session or the
//! server; data commands are parsed into a [`DataCommand`] and run as one transaction (see
//! [`run_data_command`]).

mod client;
mod connection;
pub mod docs;
mod hashes;
mod keys;
mod server;
mod strings;
pub mod table;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::error::{CommandError, CommandResult};
use super::reply::Reply;
use super::scan_cursors::ScanCursors;
use super::server::Server;
use super::session::Session;
use crate::percolator::{Transaction, TxnClient};
use table::CommandSpec;

/// How many times a data command runs again after a write conflict before giving up.
const MAX_CONFLICT_RETRIES: u32 = 64;

/// Executes one request (`args[0]` is the command name) and returns its reply.
pub async fn execute<C: TxnClient>(args: Vec<Bytes>, session: &mut Session, server: &Server<C>) -> Reply {
    server.stats.commands_processed.fetch_add(1, Ordering::Relaxed);
    session.client.commands_processed.fetch_add(1, Ordering::Relaxed);
    let Some(spec) = table::lookup(&args[0]) else {
        return CommandError::UnknownCommand {
            name: args[0].clone(),
            args: args[1..].to_vec(),
        }
        .into_reply();
    };
    if !spec.arity_ok(args.len()) {
        return CommandError::WrongArity {
            name: spec.name.to_string(),
        }
        .into_reply();
    }
    *session.client.last_command.lock() = spec.name;
    let result = match spec.name {
        "ping" => connection::ping(&args),
        "echo" => Ok(Reply::Bulk(args[1].clone())),
        "quit" => {
            session.closing = true;
            Ok(Reply::OK)
        }
        "select" => connection::select(&args),
        "hello" => connection::hello(&args, session),
        "client" => client::client(spec, &args, session, server),
        "command" => server::command(spec, &args),
        "config" => server::config(spec, &args, server),
        "info" => server::info(&args, server).await,
        "flushdb" | "flushall" => server::flush(&args, server).await,
        _ => match DataCommand::parse(spec, &args[1..]) {
            Ok(command) => {
                // Same-key writers queue here instead of conflicting (see `latches`).
                let _latches = if spec.is_write() {
                    Some(server.latches.acquire(spec.keys(&args)).await)
                } else {
                    None
                };
                Ok(run_data_command(&command, server).await)
            }
            Err(e) => Err(e),
        },
    };
    result.unwrap_or_else(CommandError::into_reply)
}

/// A command that reads or writes the keyspace, parsed and ready to run in a transaction.
pub enum DataCommand {
    String(strings::StringCommand),
    Hash(hashes::HashCommand),
    Key(keys::KeyCommand),
}

impl DataCommand {
    /// Parses the arguments (after the name) of the data command `spec`.
    pub fn parse(spec: &CommandSpec, args: &[Bytes]) -> CommandResult<DataCommand> {
        if let Some(command) = strings::StringCommand::parse(spec.name, args)? {
            return Ok(DataCommand::String(command));
        }
        if let Some(command) = hashes::HashCommand::parse(spec.name, args)? {
            return Ok(DataCommand::Hash(command));
        }
        if let Some(command) = keys::KeyCommand::parse(spec.name, args)? {
            return Ok(DataCommand::Key(command));
        }
        unreachable!("command {} is in the table but has no implementation", spec.name)
    }

    /// Runs the command inside `txn`. An error leaves `txn`'s writes uncommitted.
    pub async fn exec<T: Transaction>(&self, txn: &mut T, ctx: &mut ExecContext<'_>) -> CommandResult {
        match self {
            DataCommand::String(command) => command.exec(txn, ctx).await,
            DataCommand::Hash(command) => command.exec(txn, ctx).await,
            DataCommand::Key(command) => command.exec(txn, ctx).await,
        }
    }
}

/// What a data command may use besides its transaction.
pub struct ExecContext<'a> {
    /// Longest string a command may create (`proto-max-bulk-len`).
    pub max_string_bytes: usize,
    pub cursors: &'a ScanCursors,
    /// Key lookups that found a key / found none, for `INFO stats`.
    pub hits: u64,
    pub misses: u64,
}

/// Runs `command` as one transaction, starting over after a write conflict, so that it takes
/// effect exactly once and atomically. A command error (wrong type, syntax) commits nothing.
pub async fn run_data_command<C: TxnClient>(command: &DataCommand, server: &Server<C>) -> Reply {
    let mut ctx = ExecContext {
        max_string_bytes: server.config.max_bulk_bytes,
        cursors: &server.cursors,
        hits: 0,
        misses: 0,
    };
    let mut attempt = 0;
    let outcome = loop {
        ctx.hits = 0;
        ctx.misses = 0;
        let result: CommandResult = async {
            let mut txn = server.store.begin().await?;
            let reply = command.exec(&mut txn, &mut ctx).await?;
            txn.commit().await?;
            Ok(reply)
        }
        .await;
        match result {
            Err(CommandError::Txn(e)) if e.is_retryable() && attempt < MAX_CONFLICT_RETRIES => {
                attempt += 1;
                // Contention on one key: back off a little more each time, up to a few ms.
                if attempt > 2 {
                    tokio::time::sleep(Duration::from_micros(50 * u64::from(attempt.min(64)))).await;
                }
            }
            other => break other,
        }
    };
    server.stats.keyspace_hits.fetch_add(ctx.hits, Ordering::Relaxed);
    server
        .stats
        .keyspace_misses
        .fetch_add(ctx.misses, Ordering::Relaxed);
    outcome.unwrap_or_else(CommandError::into_reply)
}
