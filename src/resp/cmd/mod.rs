//! The command table and the commands, one file per family.
//!
//! [`execute`] is the single entry point: it looks the command up, checks its arity, counts it,
//! and hands it to its family. Connection and server commands act on the session or the
//! server; data commands are parsed into a [`DataCommand`] and run as one transaction (see
//! [`run_in_transaction`]). Inside `MULTI`, commands are queued instead, and `EXEC` runs them
//! together (`transactions.rs`).

mod client;
mod cluster;
mod connection;
mod contents;
pub mod docs;
mod emulated;
mod expire;
mod hashes;
mod keys;
mod lists;
mod rdb;
mod server;
mod sets;
mod strings;
pub mod table;
mod transactions;
mod zsets;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::db::{DbIndex, InDb, qualify, unqualify};
use super::error::{CommandError, CommandResult};
use super::keyspace;
use super::reply::Reply;
use super::scan_cursors::ScanCursors;
use super::server::Server;
use super::session::Session;
use crate::percolator::{Commit, Transaction, TxnClient};
use table::{CommandSpec, Control, Family, Handler, Local};

/// How many times a data command runs again after a write conflict before giving up.
const MAX_CONFLICT_RETRIES: u32 = 64;

/// Whether a command runs at once even inside `MULTI` instead of being queued.
fn runs_at_once(spec: &CommandSpec) -> bool {
    matches!(spec.handler, Handler::Control(_) | Handler::Local(Local::Quit))
}

/// Executes one request (`args[0]` is the command name) and returns its reply.
pub async fn execute<C: TxnClient>(args: Vec<Bytes>, session: &mut Session, server: &Server<C>) -> Reply {
    server.stats.commands_processed.fetch_add(1, Ordering::Relaxed);
    session.client.commands_processed.fetch_add(1, Ordering::Relaxed);
    let spec = match check(&args) {
        Ok(spec) => spec,
        Err(e) => {
            if let Some(spec) = table::lookup(&args[0]) {
                server.stats.command_rejected(spec.name);
            }
            // A command refused while queueing dooms the transaction, as in Redis.
            session.refuse_multi();
            return e.into_reply();
        }
    };
    let started = std::time::Instant::now();
    let reply = execute_checked(spec, args, session, server).await;
    server
        .stats
        .command_ran(spec.name, 1, started.elapsed(), u64::from(reply.is_error()));
    reply
}

/// [`execute`] of a command that passed [`check`].
async fn execute_checked<C: TxnClient>(
    spec: &'static CommandSpec,
    args: Vec<Bytes>,
    session: &mut Session,
    server: &Server<C>,
) -> Reply {
    if !session.authenticated && !spec.flags.contains(&"no_auth") {
        return CommandError::NoAuth.into_reply();
    }
    *session.client.last_command.lock() = spec.name;
    if session.in_multi() && !runs_at_once(spec) {
        return match session.queue(args, server.config.max_multi_queue_bytes) {
            Ok(()) => Reply::Simple("QUEUED"),
            Err(_) => Reply::Error(format!(
                "ERR the MULTI queue went past resp.max_multi_queue_bytes ({} bytes): the transaction is discarded and EXEC will fail",
                server.config.max_multi_queue_bytes
            )),
        };
    }
    let result = match spec.handler {
        Handler::Control(Control::Multi) => transactions::multi(session),
        Handler::Control(Control::Exec) => Ok(transactions::exec(session, server).await),
        Handler::Control(Control::Discard) => transactions::discard(session),
        Handler::Control(Control::Watch) => transactions::watch(&args, session, server).await,
        Handler::Local(local) => execute_local(local, spec, &args, session, server).await,
        Handler::Data(Family::Flush) => server::flush(&args, session.db, server).await,
        Handler::Data(_) if spec.flags.contains(&"blocking") => {
            run_blocking(spec, &args, session, server).await
        }
        Handler::Data(family) => match DataCommand::parse(spec, family, &args[1..], scope(session, server)) {
            Ok(command) => {
                if let Some(key) = single_write_key(spec, &args, session.db) {
                    // A write of one key runs with the other writes of that key waiting now,
                    // in one transaction (see `combiner`).
                    let reply = server.combiner.run(key, vec![command], server).await.pop();
                    return reply.unwrap_or(Reply::NilArray);
                }
                // Same-key writers queue here instead of conflicting (see `latches`).
                let _latches = if spec.is_write() {
                    Some(
                        server
                            .latches
                            .acquire(qualified_keys(spec, &args, session.db).iter().map(|k| k.as_ref()))
                            .await,
                    )
                } else {
                    None
                };
                Ok(run_in_transaction(std::slice::from_ref(&command), server)
                    .await
                    .pop()
                    .unwrap_or(Reply::NilArray))
            }
            Err(e) => Err(e),
        },
    };
    result.unwrap_or_else(CommandError::into_reply)
}

/// Whether `args` is a command that may block (a blocking list pop outside `MULTI`).
pub fn blocks(args: &[Bytes], session: &Session) -> bool {
    !session.in_multi() && table::lookup(&args[0]).is_some_and(|spec| spec.flags.contains(&"blocking"))
}

/// The database a session's commands act on, and how many there are.
fn scope<C: TxnClient>(session: &Session, server: &Server<C>) -> DbScope {
    DbScope {
        db: session.db,
        databases: server.config.databases,
    }
}

/// A data command taken out of a pipeline, to run in one transaction with its neighbours.
pub struct Batched {
    spec: &'static CommandSpec,
    args: Vec<Bytes>,
    command: DataCommand,
}

impl Batched {
    /// The key, if the command writes exactly one (the combiner's case).
    fn single_write_key(&self) -> Option<Bytes> {
        single_write_key(self.spec, &self.args, self.command.db)
    }
}

/// The key every command of `batch` writes, if each writes that key and no other.
fn one_write_key(batch: &[Batched]) -> Option<Bytes> {
    let (first, rest) = batch.split_first()?;
    let key = first.single_write_key()?;
    rest.iter()
        .all(|b| b.single_write_key().as_ref() == Some(&key))
        .then_some(key)
}

/// The key (qualified by database) of a command that writes exactly one key.
fn single_write_key(spec: &CommandSpec, args: &[Bytes], db: DbIndex) -> Option<Bytes> {
    if !spec.is_write() {
        return None;
    }
    let mut keys = spec.keys(args);
    let key = keys.next()?;
    if keys.next().is_some() {
        return None;
    }
    Some(qualify(db, key))
}

/// The key arguments of a request, qualified by database (for latches).
fn qualified_keys(spec: &CommandSpec, args: &[Bytes], db: DbIndex) -> Vec<Bytes> {
    spec.keys(args).map(|key| qualify(db, key)).collect()
}

/// Whether `args` can join a pipelined batch: a well-formed data command outside `MULTI`.
/// Anything else (connection commands, `MULTI`, errors) runs on its own through [`execute`].
pub fn batchable<C: TxnClient>(
    args: Vec<Bytes>,
    session: &Session,
    server: &Server<C>,
) -> Result<Batched, Vec<Bytes>> {
    // A client that has yet to authenticate gets its answer from `execute`.
    if session.in_multi() || !session.authenticated {
        return Err(args);
    }
    let Ok(spec) = check(&args) else { return Err(args) };
    // A flush runs in chunks of its own; a blocking command waits on its own.
    let Handler::Data(family) = spec.handler else {
        return Err(args);
    };
    if family == Family::Flush || spec.flags.contains(&"blocking") {
        return Err(args);
    }
    match DataCommand::parse(spec, family, &args[1..], scope(session, server)) {
        Ok(command) => Ok(Batched { spec, args, command }),
        Err(_) => Err(args),
    }
}

/// Runs pipelined data commands in one transaction, replies in order. Redis runs a client's
/// pipelined commands back to back too; here they also share one snapshot and one durable
/// commit, which is what makes pipelining pay. Each command's error is its own reply.
pub async fn execute_batch<C: TxnClient>(
    batch: Vec<Batched>,
    session: &mut Session,
    server: &Server<C>,
) -> Vec<Reply> {
    server
        .stats
        .commands_processed
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    session
        .client
        .commands_processed
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    if let Some(last) = batch.last() {
        *session.client.last_command.lock() = last.spec.name;
    }
    let started = std::time::Instant::now();
    let names: Vec<&'static str> = batch.iter().map(|b| b.spec.name).collect();
    let replies = run_batched(batch, server).await;
    // The batch's time, shared evenly.
    let share = started.elapsed() / names.len().max(1) as u32;
    for (name, reply) in names.iter().zip(&replies) {
        server
            .stats
            .command_ran(name, 1, share, u64::from(reply.is_error()));
    }
    replies
}

async fn run_batched<C: TxnClient>(batch: Vec<Batched>, server: &Server<C>) -> Vec<Reply> {
    if let Some(key) = one_write_key(&batch) {
        // Every command writes this one key: the batch queues with the key's other writers
        // as one unit (see `combiner`).
        let commands = batch.into_iter().map(|b| b.command).collect();
        return server.combiner.run(key, commands, server).await;
    }
    let write_keys: Vec<Bytes> = batch
        .iter()
        .filter(|b| b.spec.is_write())
        .flat_map(|b| qualified_keys(b.spec, &b.args, b.command.db))
        .collect();
    let _latches = server
        .latches
        .acquire(write_keys.iter().map(|k| k.as_ref()))
        .await;
    let commands: Vec<DataCommand> = batch.into_iter().map(|b| b.command).collect();
    run_in_transaction(&commands, server).await
}

/// A blocking list command outside `MULTI`: its pop, tried again whenever an element may have
/// arrived (see `blocked`), until it takes one or its timeout passes (null array).
async fn run_blocking<C: TxnClient>(
    spec: &'static CommandSpec,
    args: &[Bytes],
    session: &Session,
    server: &Server<C>,
) -> CommandResult {
    let client = session.client.id;
    let (command, timeout) = parse_blocking(spec, &args[1..], session.db)?;
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    let mut waiter = server.blocked.block(client, &command.sources(), session.arrived);
    // Let connections this worker has already woken run first: one of them may hold a blocking
    // command that arrived before this one and belongs ahead of it in the queue (`arrival`).
    tokio::task::yield_now().await;
    let mut first_try = true;
    loop {
        let turn = waiter.turn();
        if !turn.is_empty() {
            let command = command.only_sources(&turn, !first_try);
            // No latches: a push that woke this client holds its key's latch while it waits
            // for this attempt (see `blocked`), and only a key's first waiter pops from it.
            let reply = waiter
                .attempt(run_in_transaction(std::slice::from_ref(&command), server))
                .await
                .pop()
                .unwrap_or(Reply::NilArray);
            if !matches!(reply, Reply::NilArray | Reply::Nil) {
                return Ok(reply);
            }
            first_try = false;
        }
        let now = std::time::Instant::now();
        let limit = match deadline {
            Some(deadline) if deadline <= now => return Ok(Reply::NilArray),
            Some(deadline) => (deadline - now).min(super::blocked::POLL_INTERVAL),
            None => super::blocked::POLL_INTERVAL,
        };
        match waiter.wait(limit).await {
            Some(super::blocked::Unblock::Timeout) => return Ok(Reply::NilArray),
            Some(super::blocked::Unblock::Error) => {
                return Ok(Reply::Error(
                    "UNBLOCKED client unblocked via CLIENT UNBLOCK".into(),
                ));
            }
            None => {}
        }
    }
}

/// What a blocking command pops, and in which database.
struct BlockingPop {
    db: DbIndex,
    pop: Pop,
}

enum Pop {
    List(lists::ListCommand),
    ZSet(zsets::ZSetCommand),
}

impl BlockingPop {
    /// The keys it takes from, in its order, qualified by database (as `blocked` knows them).
    fn sources(&self) -> Vec<Bytes> {
        let keys = match &self.pop {
            Pop::List(command) => command.sources(),
            Pop::ZSet(command) => command.sources(),
        };
        keys.iter().map(|key| qualify(self.db, key)).collect()
    }

    /// An attempt taking only from `keys` (qualified); `waiting`: a retry after blocking.
    fn only_sources(&self, keys: &[Bytes], waiting: bool) -> DataCommand {
        let keys: Vec<Bytes> = keys.iter().map(|key| unqualify(key).1).collect();
        let op = match &self.pop {
            Pop::List(command) => DbOp::List(command.only_sources(&keys, waiting)),
            Pop::ZSet(command) => DbOp::ZSet(command.only_sources(&keys, waiting)),
        };
        DataCommand {
            db: self.db,
            op: DataOp::InDb(op),
        }
    }
}

/// A blocking command's pop and its timeout (`None`: forever).
fn parse_blocking(
    spec: &CommandSpec,
    args: &[Bytes],
    db: DbIndex,
) -> CommandResult<(BlockingPop, Option<Duration>)> {
    if let Some(blocking) = lists::parse_blocking(spec.name, args)? {
        let pop = Pop::List(blocking.command);
        return Ok((BlockingPop { db, pop }, blocking.timeout));
    }
    if let Some((command, timeout)) = zsets::parse_blocking(spec.name, args)? {
        let pop = Pop::ZSet(command);
        return Ok((BlockingPop { db, pop }, lists::parse_timeout(&timeout)?));
    }
    Err(CommandError::Other(format!(
        "{} is not a blocking command",
        spec.name
    )))
}

/// Looks the command up and checks its arity.
fn check(args: &[Bytes]) -> CommandResult<&'static CommandSpec> {
    let spec = table::lookup(&args[0]).ok_or_else(|| CommandError::UnknownCommand {
        name: args[0].clone(),
        args: args[1..].to_vec(),
    })?;
    if !spec.arity_ok(args.len()) {
        return Err(CommandError::WrongArity {
            name: spec.name.to_string(),
        });
    }
    Ok(spec)
}

/// Runs a command that does not touch the keyspace: connection and server commands, and
/// `UNWATCH` (queued in a `MULTI`, they run after its commit).
async fn execute_local<C: TxnClient>(
    local: Local,
    spec: &'static CommandSpec,
    args: &[Bytes],
    session: &mut Session,
    server: &Server<C>,
) -> CommandResult {
    match local {
        Local::Ping => connection::ping(args),
        Local::Echo => Ok(Reply::Bulk(args[1].clone())),
        Local::Quit => {
            session.closing = true;
            Ok(Reply::OK)
        }
        Local::Select => connection::select(args, session, server.config.databases),
        Local::Auth => connection::auth(args, session, server.config.requirepass.as_ref()),
        Local::Hello => connection::hello(args, session, server.config.requirepass.as_ref()),
        Local::Client => client::client(spec, args, session, server),
        Local::Command => server::command(spec, args),
        Local::Config => server::config(spec, args, server),
        Local::Function => server::function(spec, args),
        Local::Time => Ok(server::time()),
        Local::Info => server::info(args, server).await,
        Local::Cluster => {
            let sub = spec.resolve_subcommand(args)?;
            if emulated::is_redis_cluster_subcommand(sub.name) {
                emulated::cluster(
                    sub.name,
                    args,
                    server.config.cluster_mode,
                    &server.node.node_name,
                    server.admin.as_deref(),
                )
                .await
            } else {
                cluster::cluster(spec, args, session.db, server.admin.as_deref()).await
            }
        }
        Local::ClusterFlag => emulated::connection_flag(server.config.cluster_mode),
        Local::Unwatch => {
            session.unwatch();
            Ok(Reply::OK)
        }
    }
}

/// A command that reads or writes the keyspace, parsed and ready to run in a transaction, in
/// the database it was given in.
pub struct DataCommand {
    db: DbIndex,
    op: DataOp,
}

/// The command itself.
enum DataOp {
    /// A command of one database, by family: it sees that database's view of the transaction.
    InDb(DbOp),
    /// A command that spans databases (`MOVE`, `SWAPDB`...): it sees the whole transaction.
    Across(keys::AcrossCommand),
}

enum DbOp {
    String(strings::StringCommand),
    Hash(hashes::HashCommand),
    Key(keys::KeyCommand),
    Expire(expire::ExpireCommand),
    List(lists::ListCommand),
    Set(sets::SetCommand),
    ZSet(zsets::ZSetCommand),
}

/// Where a command is given: the session's database, and how many there are.
#[derive(Clone, Copy, Debug)]
pub struct DbScope {
    pub db: DbIndex,
    pub databases: usize,
}

impl DataCommand {
    /// Parses the arguments (after the name) of `spec`, a command of `family`, for the
    /// database `scope.db`.
    pub fn parse(
        spec: &CommandSpec,
        family: Family,
        args: &[Bytes],
        scope: DbScope,
    ) -> CommandResult<DataCommand> {
        let name = spec.name;
        let in_db = |op: Option<DbOp>| {
            op.map(DataOp::InDb).ok_or_else(|| {
                CommandError::Other(format!(
                    "the {family:?} commands have no '{name}' (a command table error)"
                ))
            })
        };
        let op = match family {
            Family::Strings => in_db(strings::StringCommand::parse(name, args)?.map(DbOp::String))?,
            Family::Hashes => in_db(hashes::HashCommand::parse(name, args)?.map(DbOp::Hash))?,
            Family::Keys => in_db(keys::KeyCommand::parse(spec, args)?.map(DbOp::Key))?,
            Family::Expire => in_db(expire::ExpireCommand::parse(name, args)?.map(DbOp::Expire))?,
            Family::Lists => in_db(lists::ListCommand::parse(name, args)?.map(DbOp::List))?,
            Family::Sets => in_db(sets::SetCommand::parse(name, args)?.map(DbOp::Set))?,
            Family::ZSets => in_db(zsets::ZSetCommand::parse(name, args)?.map(DbOp::ZSet))?,
            Family::Across => match keys::AcrossCommand::parse(name, args, scope)? {
                Some(command) => DataOp::Across(command),
                None => in_db(None)?,
            },
            Family::Flush => return DataCommand::parse_flush(spec, args, scope),
        };
        Ok(DataCommand { db: scope.db, op })
    }

    /// A flush inside `MULTI` (`FLUSHDB` of `scope.db`, or `FLUSHALL`): part of the
    /// transaction, all at once.
    pub fn parse_flush(spec: &CommandSpec, args: &[Bytes], scope: DbScope) -> CommandResult<DataCommand> {
        keys::KeyCommand::parse_flush(args)?;
        let op = if spec.name == "flushall" {
            DataOp::Across(keys::AcrossCommand::FlushAll {
                databases: scope.databases,
            })
        } else {
            DataOp::InDb(DbOp::Key(keys::KeyCommand::Flush))
        };
        Ok(DataCommand { db: scope.db, op })
    }

    /// Runs the command inside `txn`. An error leaves `txn`'s writes uncommitted.
    pub async fn exec<T: Transaction>(&self, txn: &mut T, ctx: &mut ExecContext<'_>) -> CommandResult {
        let op = match &self.op {
            DataOp::Across(command) => return command.exec(txn, self.db, ctx).await,
            DataOp::InDb(op) => op,
        };
        let db = &mut InDb::new(txn, self.db);
        match op {
            DbOp::String(command) => command.exec(db, ctx).await,
            DbOp::Hash(command) => command.exec(db, ctx).await,
            DbOp::Key(command) => command.exec(db, ctx).await,
            DbOp::Expire(command) => command.exec(db, ctx).await,
            DbOp::List(command) => command.exec(db, ctx).await,
            DbOp::Set(command) => command.exec(db, ctx).await,
            DbOp::ZSet(command) => command.exec(db, ctx).await,
        }
    }

    /// The keys (qualified by database) of lists or sorted sets the command may add to, which
    /// blocked clients wait for (see `blocked`).
    fn filled_keys(&self, blocked: &super::blocked::BlockedClients) -> Vec<Bytes> {
        let keys = match &self.op {
            DataOp::InDb(DbOp::List(command)) => command.filled_keys(),
            DataOp::InDb(DbOp::ZSet(command)) => command.filled_keys(),
            DataOp::Across(command) => return command.filled_keys(self.db, blocked),
            DataOp::InDb(_) => Vec::new(),
        };
        keys.iter().map(|key| qualify(self.db, key)).collect()
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
    /// Collections created so far in the current transaction (their version's sequence
    /// number).
    pub incarnations: u32,
}

impl ExecContext<'_> {
    /// The version of a collection created now: the transaction's start and the next
    /// sequence number within it (see `keyspace`).
    pub fn new_version<T: Transaction>(&mut self, txn: &T) -> keyspace::Version {
        self.incarnations += 1;
        keyspace::Version {
            created_at: txn.start_ts(),
            seq: self.incarnations,
        }
    }

    /// Counts a read command's lookup of a key as a keyspace hit or miss (Redis counts read
    /// lookups, not the reads a write command does) and passes its result on.
    pub fn counted<V>(&mut self, found: Option<V>) -> Option<V> {
        if found.is_some() {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        found
    }
}

/// Runs `commands` as one transaction, starting over after a write conflict, so that they take
/// effect exactly once and atomically, and returns one reply each. A command's error (wrong
/// type, syntax) is its reply; it writes nothing, and the others still apply.
pub async fn run_in_transaction<C: TxnClient>(commands: &[DataCommand], server: &Server<C>) -> Vec<Reply> {
    match run_watched(commands, &std::collections::BTreeMap::new(), server).await {
        Ok(replies) => replies,
        Err(e) => vec![e.into_reply(); commands.len()],
    }
}

/// [`run_in_transaction`], failing with [`crate::percolator::TxnError::WatchedKeyChanged`] if a
/// watched key (Redis key qualified by database → watch timestamp) changed after its watch.
pub async fn run_watched<C: TxnClient>(
    commands: &[DataCommand],
    watches: &std::collections::BTreeMap<Bytes, crate::scheduler::tso::TimeStamp>,
    server: &Server<C>,
) -> CommandResult<Vec<Reply>> {
    let mut ctx = ExecContext {
        max_string_bytes: server.config.max_bulk_bytes,
        cursors: &server.cursors,
        hits: 0,
        misses: 0,
        incarnations: 0,
    };
    let mut attempt = 0;
    let outcome = loop {
        ctx.hits = 0;
        ctx.misses = 0;
        ctx.incarnations = 0;
        let result: CommandResult<Vec<Reply>> = async {
            let mut txn = server.store.begin().await?;
            let now = keyspace::now_ms(&txn);
            for (qualified, since) in watches {
                let (db, key) = unqualify(qualified);
                // A watch older than GC's horizon may have missed a deletion whose record GC
                // has removed since (see `percolator::gc`): it counts as changed.
                if since.physical().saturating_add(server.node.watch_horizon_ms) < now {
                    return Err(crate::percolator::TxnError::WatchedKeyChanged { key }.into());
                }
                let mut txn = InDb::new(&mut txn, db);
                txn.watch(keyspace::data_key(&key), *since);
                // A key that expired after its WATCH has changed (Redis 7); one that had
                // already expired then has not.
                if let Some(entry) = keyspace::read_raw_entry(&mut txn, &key).await?
                    && entry.is_expired(now)
                    && !entry.is_expired(since.physical())
                {
                    return Err(crate::percolator::TxnError::WatchedKeyChanged { key }.into());
                }
            }
            let mut replies = Vec::with_capacity(commands.len());
            for command in commands {
                let reply = match command.exec(&mut txn, &mut ctx).await {
                    Ok(reply) => reply,
                    // A transaction failure (not a command error) ends the attempt.
                    Err(CommandError::Txn(e)) => return Err(e.into()),
                    Err(e) => e.into_reply(),
                };
                replies.push(reply);
            }
            txn.commit().await?;
            Ok(replies)
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
    if let Ok(replies) = &outcome {
        // A command that answered nil (a move or pop that found nothing) or an error added
        // nothing; waking for it would only make blocked clients wake each other.
        let filled: Vec<Bytes> = commands
            .iter()
            .zip(replies)
            .filter(|(_, reply)| !matches!(reply, Reply::Nil | Reply::NilArray | Reply::Error(_)))
            .flat_map(|(command, _)| command.filled_keys(&server.blocked))
            .collect();
        if !filled.is_empty() {
            server.blocked.wake_and_settle(&filled).await;
        }
    }
    server.stats.keyspace_hits.fetch_add(ctx.hits, Ordering::Relaxed);
    server
        .stats
        .keyspace_misses
        .fetch_add(ctx.misses, Ordering::Relaxed);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every data command in the table is one its family parses: a table entry naming the wrong
    /// family would answer "a command table error" to every call.
    #[test]
    fn every_data_command_is_parsed_by_the_family_the_table_names() {
        let scope = DbScope { db: 0, databases: 16 };
        let mut checked = 0;
        for spec in table::COMMANDS {
            let Handler::Data(family) = spec.handler else {
                continue;
            };
            // Enough arguments for any arity; most commands then refuse them as a syntax
            // error, which is a parse by the right family.
            let argc = spec.arity.unsigned_abs().max(8) as usize;
            let mut args = vec![Bytes::from_static(b"1"); argc - 1];
            if !spec.subcommands.is_empty() {
                args[0] = Bytes::from(spec.subcommands[0].name.rsplit('|').next().unwrap());
            }
            if let Err(CommandError::Other(message)) = DataCommand::parse(spec, family, &args, scope) {
                assert!(
                    !message.contains("command table error"),
                    "{}: {message}",
                    spec.name
                );
            }
            checked += 1;
        }
        assert!(checked > 100, "{checked} data commands");
    }
}
