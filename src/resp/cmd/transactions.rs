//! `MULTI EXEC DISCARD WATCH` (`UNWATCH` is a one-liner in `execute`), with Redis's semantics
//! on a transactional store.
//!
//! - Between `MULTI` and `EXEC` commands are queued (`+QUEUED`). A command refused while
//!   queueing (unknown, wrong arity) dooms the transaction: `EXEC` answers `EXECABORT`.
//! - `EXEC` runs every queued data command in **one Percolator transaction**: all reads see
//!   one snapshot, and all writes commit together or not at all. A command's runtime error
//!   (`WRONGTYPE`, a syntax error) is its reply and the others still apply, as in Redis. If the
//!   transaction loses a write conflict it runs again from a fresh snapshot, so `EXEC` never
//!   fails for contention: the result is as if the commands ran alone, at commit time.
//! - `WATCH` takes a timestamp from the oracle. `EXEC` then commits only if no watched key was
//!   changed (by anyone, this client included) after that timestamp; otherwise it answers the
//!   null array and applies nothing. The check is part of the commit (a watched key is
//!   prewritten as a lock-only mutation with that timestamp), so a change that lands while
//!   `EXEC` runs is caught too.
//! - Connection and server commands queued in a `MULTI` (`PING`, `INFO`...) run after the
//!   transaction commits; their replies keep their places.

use bytes::Bytes;

use super::connection::valid_db;
use super::table::{CommandSpec, Handler, Local};
use super::{DataCommand, DbScope, check, execute_local, run_watched};
use crate::percolator::{TxnClient, TxnError};
use crate::resp::db::qualify;
use crate::resp::error::{CommandError, CommandResult};
use crate::resp::reply::Reply;
use crate::resp::server::Server;
use crate::resp::session::Session;

pub fn multi(session: &mut Session) -> CommandResult {
    if session.in_multi() {
        return Err(CommandError::Other("MULTI calls can not be nested".into()));
    }
    session.begin_multi();
    Ok(Reply::OK)
}

pub fn discard(session: &mut Session) -> CommandResult {
    if session.end_multi().is_none() {
        return Err(CommandError::Other("DISCARD without MULTI".into()));
    }
    Ok(Reply::OK)
}

pub async fn watch<C: TxnClient>(args: &[Bytes], session: &mut Session, server: &Server<C>) -> CommandResult {
    if session.in_multi() {
        return Err(CommandError::Other("WATCH inside MULTI is not allowed".into()));
    }
    let since = server.store.timestamp().await?;
    for key in &args[1..] {
        session.watch(qualify(session.db, key), since);
    }
    Ok(Reply::OK)
}

/// What one queued command becomes at `EXEC`.
enum Step {
    /// Runs in the transaction; its reply is the next of the transaction's replies.
    Data,
    /// Runs after the commit.
    Local(Local, &'static CommandSpec, Vec<Bytes>),
    /// Failed to parse: this is its reply.
    Failed(Reply),
}

pub async fn exec<C: TxnClient>(session: &mut Session, server: &Server<C>) -> Reply {
    if !session.in_multi() {
        return CommandError::Other("EXEC without MULTI".into()).into_reply();
    }
    let watches = session.watches().clone();
    let multi = session.end_multi().expect("checked above");
    if multi.refused {
        return Reply::Error("EXECABORT Transaction discarded because of previous errors.".into());
    }

    let mut steps = Vec::with_capacity(multi.queued.len());
    let mut data = Vec::new();
    let mut write_keys: Vec<Bytes> = Vec::new();
    // A queued SELECT changes the database of the commands after it (and the session's,
    // when it runs after the commit).
    let mut scope = DbScope {
        db: session.db,
        databases: server.config.databases,
    };
    for args in &multi.queued {
        let spec = check(args).expect("queued commands passed the table checks");
        if spec.handler == Handler::Local(Local::Select)
            && let Some(db) = valid_db(&args[1], scope.databases)
        {
            scope.db = db;
        }
        match spec.handler {
            // Inside a transaction a flush is part of it, all at once (see `Family::Flush`).
            Handler::Data(family) => match DataCommand::parse(spec, family, &args[1..], scope) {
                Ok(command) => {
                    if spec.is_write() {
                        write_keys.extend(spec.keys(args).map(|key| qualify(scope.db, key)));
                    }
                    data.push(command);
                    steps.push(Step::Data);
                }
                Err(e) => steps.push(Step::Failed(e.into_reply())),
            },
            Handler::Local(local) => steps.push(Step::Local(local, spec, args.clone())),
            // MULTI, EXEC, DISCARD and WATCH run at once, never queued (see `execute`).
            Handler::Control(_) => steps.push(Step::Failed(
                CommandError::Other(format!("{} cannot be queued", spec.name)).into_reply(),
            )),
        }
    }

    let replies = {
        let _latches = server
            .latches
            .acquire(write_keys.iter().map(|k| k.as_ref()))
            .await;
        match run_watched(&data, &watches, server).await {
            Ok(replies) => replies,
            Err(CommandError::Txn(TxnError::WatchedKeyChanged { .. })) => return Reply::NilArray,
            Err(e) => return e.into_reply(),
        }
    };

    let mut data_replies = replies.into_iter();
    let mut out = Vec::with_capacity(steps.len());
    for step in steps {
        let reply = match step {
            Step::Data => data_replies.next().expect("one reply per data command"),
            Step::Local(local, spec, args) => execute_local(local, spec, &args, session, server)
                .await
                .unwrap_or_else(CommandError::into_reply),
            Step::Failed(reply) => reply,
        };
        if let Reply::Error(message) = &reply {
            server.stats.error_replied(message);
        }
        out.push(reply);
    }
    Reply::Array(out)
}
