//! Command errors, and the one place they become RESP error replies.
//!
//! The texts are Redis's own, byte for byte, because clients match on them (`WRONGTYPE`,
//! `EXECABORT`, "wrong number of arguments").

use bytes::Bytes;

use super::reply::Reply;
use crate::percolator::TxnError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command")]
    UnknownCommand { name: Bytes, args: Vec<Bytes> },
    #[error("unknown subcommand")]
    UnknownSubcommand {
        command: &'static str,
        subcommand: Bytes,
    },
    /// `name` is the command's full name in lower case (`get`, `client|setname`).
    #[error("wrong number of arguments")]
    WrongArity { name: String },
    #[error("syntax error")]
    Syntax,
    #[error("wrong type")]
    WrongType,
    #[error("not an integer")]
    NotInteger,
    #[error("not a float")]
    NotFloat,
    #[error("increment or decrement would overflow")]
    Overflow,
    #[error("increment would produce NaN or Infinity")]
    NanOrInfinity,
    #[error("offset is out of range")]
    OffsetOutOfRange,
    #[error("string exceeds maximum allowed size")]
    StringTooLong,
    #[error("invalid cursor")]
    InvalidCursor,
    #[error("DB index is out of range")]
    DbIndexOutOfRange,
    #[error("unsupported protocol version")]
    NoProto,
    #[error("wrong password")]
    WrongPass,
    #[error("authentication required")]
    NoAuth,
    #[error("target key exists")]
    BusyKey,
    /// Recognised but not offered yet; the text says what and why.
    #[error("{0}")]
    Unsupported(String),
    /// Any other error with Redis's `ERR` code.
    #[error("{0}")]
    Other(String),
    #[error(transparent)]
    Txn(#[from] TxnError),
}

pub type CommandResult<T = Reply> = Result<T, CommandError>;

impl CommandError {
    /// The RESP error text for this error (without the leading `-`).
    pub fn message(&self) -> String {
        match self {
            CommandError::UnknownCommand { name, args } => {
                // Redis quotes arguments while the quoted list is shorter than 128 bytes.
                let mut quoted = String::new();
                for arg in args {
                    if quoted.len() >= 128 {
                        break;
                    }
                    let shown = printable(arg, 128 - quoted.len());
                    quoted.push_str(&format!("'{shown}' "));
                }
                format!(
                    "ERR unknown command '{}', with args beginning with: {quoted}",
                    printable(name, 128)
                )
            }
            CommandError::UnknownSubcommand { command, subcommand } => format!(
                "ERR unknown subcommand '{}'. Try {} HELP.",
                printable(subcommand, 128),
                command.to_ascii_uppercase()
            ),
            CommandError::WrongArity { name } => {
                format!("ERR wrong number of arguments for '{name}' command")
            }
            CommandError::Syntax => "ERR syntax error".into(),
            CommandError::WrongType => {
                "WRONGTYPE Operation against a key holding the wrong kind of value".into()
            }
            CommandError::NotInteger => "ERR value is not an integer or out of range".into(),
            CommandError::NotFloat => "ERR value is not a valid float".into(),
            CommandError::Overflow => "ERR increment or decrement would overflow".into(),
            CommandError::NanOrInfinity => "ERR increment would produce NaN or Infinity".into(),
            CommandError::OffsetOutOfRange => "ERR offset is out of range".into(),
            CommandError::StringTooLong => {
                "ERR string exceeds maximum allowed size (proto-max-bulk-len)".into()
            }
            CommandError::InvalidCursor => "ERR invalid cursor".into(),
            CommandError::DbIndexOutOfRange => "ERR DB index is out of range".into(),
            CommandError::NoProto => "NOPROTO unsupported protocol version".into(),
            CommandError::NoAuth => "NOAUTH Authentication required.".into(),
            CommandError::BusyKey => "BUSYKEY Target key name already exists.".into(),
            CommandError::WrongPass => "WRONGPASS invalid username-password pair or user is disabled.".into(),
            CommandError::Unsupported(what) | CommandError::Other(what) => format!("ERR {what}"),
            CommandError::Txn(TxnError::WriteConflict { .. } | TxnError::Aborted(_)) => {
                "TRYAGAIN the transaction kept conflicting with concurrent writers; retry".into()
            }
            CommandError::Txn(TxnError::LockTimeout { .. }) => {
                "TRYAGAIN a key stayed locked by a running transaction; retry".into()
            }
            CommandError::Txn(TxnError::ShuttingDown) => "ERR the server is shutting down".into(),
            CommandError::Txn(TxnError::Unavailable(e)) => {
                format!("TRYAGAIN the data is unavailable right now ({e}); nothing was written")
            }
            CommandError::Txn(TxnError::Undetermined) => {
                "ERR the write's outcome is unknown (it may or may not have been applied); read the key to find out"
                    .into()
            }
            CommandError::Txn(
                e @ (TxnError::Storage(_)
                | TxnError::Timestamp(_)
                | TxnError::WatchedKeyChanged { .. }
                | TxnError::Internal(_)),
            ) => format!("ERR {e}"),
        }
    }

    pub fn into_reply(self) -> Reply {
        Reply::Error(self.message())
    }
}

impl From<CommandError> for Reply {
    fn from(e: CommandError) -> Reply {
        e.into_reply()
    }
}

/// A client-supplied name made safe to echo in an error line: at most `max` bytes, with CR and
/// LF shown as spaces, as Redis does.
fn printable(bytes: &[u8], max: usize) -> String {
    let shown = &bytes[..bytes.len().min(max)];
    String::from_utf8_lossy(shown).replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_match_redis() {
        let unknown = CommandError::UnknownCommand {
            name: Bytes::from_static(b"foo"),
            args: vec![Bytes::from_static(b"a"), Bytes::from_static(b"b c")],
        };
        assert_eq!(
            unknown.message(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b c' "
        );
        let bare = CommandError::UnknownCommand {
            name: Bytes::from_static(b"foo"),
            args: vec![],
        };
        assert_eq!(
            bare.message(),
            "ERR unknown command 'foo', with args beginning with: "
        );
        assert_eq!(
            CommandError::WrongArity { name: "get".into() }.message(),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            CommandError::UnknownSubcommand {
                command: "client",
                subcommand: Bytes::from_static(b"nope")
            }
            .message(),
            "ERR unknown subcommand 'nope'. Try CLIENT HELP."
        );
    }

    #[test]
    fn newlines_never_reach_the_wire() {
        let e = CommandError::UnknownCommand {
            name: Bytes::from_static(b"a\r\nb"),
            args: vec![Bytes::from_static(b"\n")],
        };
        assert!(!e.message().contains(['\r', '\n']));
    }
}
