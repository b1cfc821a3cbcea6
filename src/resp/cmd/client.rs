//! `CLIENT SETNAME | GETNAME | ID | INFO | LIST | SETINFO | HELP`.

use bytes::Bytes;

use super::table::CommandSpec;
use crate::percolator::TxnClient;
use crate::resp::args::{ArgReader, is_keyword, parse_i64};
use crate::resp::blocked::Unblock;
use crate::resp::error::{CommandError, CommandResult};
use crate::resp::reply::Reply;
use crate::resp::server::Server;
use crate::resp::session::Session;

const HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "LIST [TYPE normal|master|replica|pubsub] [ID <id> [<id> ...]]",
    "    Return information about client connections.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "HELP",
    "    Print this help.",
];

/// Client names and library attributes may not contain spaces, newlines or other characters
/// outside `!`..`~`, because `CLIENT LIST` separates fields with spaces.
pub fn validate_client_name(name: &[u8]) -> CommandResult<()> {
    if name.iter().all(|&b| (b'!'..=b'~').contains(&b)) {
        Ok(())
    } else {
        Err(CommandError::Other(
            "Client names cannot contain spaces, newlines or special characters.".into(),
        ))
    }
}

pub fn client<C: TxnClient>(
    spec: &'static CommandSpec,
    args: &[Bytes],
    session: &mut Session,
    server: &Server<C>,
) -> CommandResult {
    let sub = spec.resolve_subcommand(args)?;
    *session.client.last_command.lock() = sub.name;
    match sub.name {
        "client|setname" => {
            validate_client_name(&args[2])?;
            *session.client.name.lock() = (!args[2].is_empty()).then(|| args[2].clone());
            Ok(Reply::OK)
        }
        "client|getname" => Ok(Reply::bulk_or_nil(session.client.name.lock().clone())),
        "client|id" => Ok(Reply::Integer(session.client.id as i64)),
        "client|unblock" => {
            let id = crate::resp::args::int_arg(&args[2])?;
            let how = match args.get(3) {
                None => Unblock::Timeout,
                Some(mode) if is_keyword(mode, "TIMEOUT") => Unblock::Timeout,
                Some(mode) if is_keyword(mode, "ERROR") => Unblock::Error,
                Some(_) => {
                    return Err(CommandError::Other(
                        "CLIENT UNBLOCK reason should be TIMEOUT or ERROR".into(),
                    ));
                }
            };
            Ok(Reply::Integer(server.blocked.unblock(id as u64, how).into()))
        }
        "client|info" => Ok(Reply::Verbatim(format!("{}\n", session.client.info_line()))),
        "client|list" => list(&args[2..], server),
        "client|setinfo" => {
            let value = &args[3];
            let field = if is_keyword(&args[2], "LIB-NAME") {
                validate_client_name(value).map_err(|_| {
                    CommandError::Other(
                        "lib-name cannot contain spaces, newlines or special characters.".into(),
                    )
                })?;
                &session.client.lib_name
            } else if is_keyword(&args[2], "LIB-VER") {
                validate_client_name(value).map_err(|_| {
                    CommandError::Other(
                        "lib-ver cannot contain spaces, newlines or special characters.".into(),
                    )
                })?;
                &session.client.lib_version
            } else {
                return Err(CommandError::Other(format!(
                    "Unrecognized option '{}'",
                    String::from_utf8_lossy(&args[2])
                )));
            };
            *field.lock() = (!value.is_empty()).then(|| value.clone());
            Ok(Reply::OK)
        }
        "client|help" => Ok(Reply::Array(
            HELP.iter().map(|line| Reply::Simple(line)).collect(),
        )),
        other => Err(CommandError::Other(format!(
            "{other} has no implementation (a command table error)"
        ))),
    }
}

/// `CLIENT LIST [TYPE type] [ID id...]`.
fn list<C: TxnClient>(options: &[Bytes], server: &Server<C>) -> CommandResult {
    let mut reader = ArgReader::new(options);
    let mut only_ids: Option<Vec<u64>> = None;
    while let Some(option) = reader.next() {
        if is_keyword(option, "TYPE") {
            let kind = reader.value()?;
            if is_keyword(kind, "normal") {
                continue;
            }
            if ["master", "replica", "slave", "pubsub"]
                .iter()
                .any(|k| is_keyword(kind, k))
            {
                // No such connections exist on this server.
                only_ids = Some(Vec::new());
                continue;
            }
            return Err(CommandError::Other(format!(
                "Unknown client type '{}'",
                String::from_utf8_lossy(kind)
            )));
        } else if is_keyword(option, "ID") {
            let mut ids = Vec::new();
            while let Some(id) = reader.next() {
                match parse_i64(id) {
                    Some(id) if id > 0 => ids.push(id as u64),
                    _ => return Err(CommandError::Other("Invalid client ID".into())),
                }
            }
            if ids.is_empty() {
                return Err(CommandError::Syntax);
            }
            only_ids = Some(ids);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let mut clients: Vec<_> = server.clients.iter().map(|entry| entry.value().clone()).collect();
    clients.sort_by_key(|client| client.id);
    let mut text = String::new();
    for client in clients {
        if only_ids.as_ref().is_some_and(|ids| !ids.contains(&client.id)) {
            continue;
        }
        text.push_str(&client.info_line());
        text.push('\n');
    }
    Ok(Reply::Verbatim(text))
}
