//! Connection commands: `PING`, `SELECT`, `HELLO` (`ECHO` and `QUIT` are one-liners in
//! `execute`).

use bytes::Bytes;

use super::client::validate_client_name;
use crate::resp::args::{ArgReader, is_keyword, parse_i64};
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

pub fn select(args: &[Bytes]) -> CommandResult {
    match parse_i64(&args[1]) {
        None => Err(CommandError::NotInteger),
        Some(0) => Ok(Reply::OK),
        Some(_) => Err(CommandError::DbIndexOutOfRange),
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`.
pub fn hello(args: &[Bytes], session: &mut Session) -> CommandResult {
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
    while let Some(option) = reader.next() {
        if is_keyword(option, "AUTH") {
            let user = reader.value()?;
            let _password = reader.value()?;
            // There is no ACL: the default user has no password, as in a fresh Redis, and
            // accepts any; other users do not exist.
            if !is_keyword(user, "default") {
                return Err(CommandError::WrongPass);
            }
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
