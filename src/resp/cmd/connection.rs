//! Connection commands: `PING`, `SELECT`, `AUTH`, `HELLO` (`ECHO` and `QUIT` are one-liners in
//! `execute`).
//!
//! **Authentication.** There is one user, `default`, as in a Redis without ACLs. With
//! `resp.requirepass` set, a new connection may only run `AUTH`, `HELLO` (with its `AUTH`
//! option) and `QUIT` (the commands flagged `no_auth`) until it gives the password; anything
//! else answers `-NOAUTH`. A wrong password answers `-WRONGPASS` and changes nothing. The
//! password is compared by digest in constant time (`config::Password`) and is never logged
//! or shown (`CLIENT LIST`, `INFO`, `CONFIG GET` do not have it).

use bytes::Bytes;

use super::client::validate_client_name;
use crate::config::Password;
use crate::resp::args::{ArgReader, is_keyword, parse_i64};
use crate::resp::db::DbIndex;
use crate::resp::error::{CommandError, CommandResult};
use crate::resp::reply::{Protocol, Reply};
use crate::resp::session::Session;

/// The Redis version ferrokv answers as: clients gate features on it.
pub const REDIS_VERSION: &str = "7.2.0";

pub fn ping(args: &[Bytes]) -> CommandResult {
    match args.len() {
        1 => Ok(Reply::Simple("PONG")),
        2 => Ok(Reply::Bulk(args[1].clone())),
        _ => Err(CommandError::WrongArity { name: "ping".into() }),
    }
}

pub fn select(args: &[Bytes], session: &mut Session, databases: usize) -> CommandResult {
    parse_i64(&args[1]).ok_or(CommandError::NotInteger)?;
    let db = valid_db(&args[1], databases).ok_or(CommandError::DbIndexOutOfRange)?;
    session.db = db;
    session.client.db.store(db, std::sync::atomic::Ordering::Relaxed);
    Ok(Reply::OK)
}

/// `arg` as a database index, if it names one of `databases`.
pub fn valid_db(arg: &[u8], databases: usize) -> Option<DbIndex> {
    let index = parse_i64(arg)?;
    (0..databases as i64).contains(&index).then_some(index as DbIndex)
}

/// `AUTH [username] password`.
pub fn auth(args: &[Bytes], session: &mut Session, requirepass: Option<&Password>) -> CommandResult {
    match &args[1..] {
        [password] => {
            if requirepass.is_none() {
                return Err(CommandError::Other(
                    "AUTH <password> called without any password configured for the default user. \
                     Are you sure your configuration is correct?"
                        .into(),
                ));
            }
            check_password(b"default", password, session, requirepass)?;
        }
        [user, password] => check_password(user, password, session, requirepass)?,
        _ => return Err(CommandError::Syntax),
    }
    Ok(Reply::OK)
}

/// Authenticates `session` as `user` if `password` is right: `default` is the only user, and
/// without `requirepass` it takes any password (Redis's `nopass`).
fn check_password(
    user: &[u8],
    password: &[u8],
    session: &mut Session,
    requirepass: Option<&Password>,
) -> CommandResult<()> {
    let right = user == b"default" && requirepass.is_none_or(|p| p.matches(password));
    if !right {
        return Err(CommandError::WrongPass);
    }
    session.authenticated = true;
    Ok(())
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`.
pub fn hello(args: &[Bytes], session: &mut Session, requirepass: Option<&Password>) -> CommandResult {
    let mut reader = ArgReader::new(&args[1..]);
    let mut protocol = session.protocol();
    if let Some(version) = reader.next() {
        protocol = match parse_i64(version) {
            None => {
                return Err(CommandError::Other(
                    "Protocol version is not an integer or out of range".into(),
                ));
            }
            Some(2) => Protocol::Resp2,
            Some(3) => Protocol::Resp3,
            Some(_) => return Err(CommandError::NoProto),
        };
    }
    let mut new_name = None;
    let mut credentials = None;
    while let Some(option) = reader.next() {
        if is_keyword(option, "AUTH") {
            credentials = Some((reader.value()?, reader.value()?));
        } else if is_keyword(option, "SETNAME") {
            let name = reader.value()?;
            validate_client_name(name)?;
            new_name = Some(name.clone());
        } else {
            return Err(CommandError::Other(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(option)
            )));
        }
    }
    match credentials {
        Some((user, password)) => check_password(user, password, session, requirepass)?,
        None if !session.authenticated => {
            return Ok(Reply::Error(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
                 HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
                 select the RESP protocol version at the same time"
                    .into(),
            ));
        }
        None => {}
    }
    if let Some(name) = new_name {
        *session.client.name.lock() = (!name.is_empty()).then_some(name);
    }
    session.set_protocol(protocol);
    Ok(Reply::Map(vec![
        (Reply::bulk_str("server"), Reply::bulk_str("redis")),
        (Reply::bulk_str("version"), Reply::bulk_str(REDIS_VERSION)),
        (Reply::bulk_str("proto"), Reply::Integer(protocol.number())),
        (Reply::bulk_str("id"), Reply::Integer(session.client.id as i64)),
        (Reply::bulk_str("mode"), Reply::bulk_str("standalone")),
        (Reply::bulk_str("role"), Reply::bulk_str("master")),
        (Reply::bulk_str("modules"), Reply::Array(Vec::new())),
    ]))
}
