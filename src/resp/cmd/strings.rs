//! String commands: `GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX MGET MSET MSETNX INCR INCRBY
//! DECR DECRBY INCRBYFLOAT APPEND STRLEN GETRANGE SETRANGE`.
//!
//! Timeouts as Redis treats them: `SET` (without `KEEPTTL`), `GETSET` and `MSET` replace a key
//! and drop its timeout; `INCR`, `APPEND`, `SETRANGE` and the like change the value and keep it.
//!
//! Each parses its arguments up front (syntax errors before touching the store) and then runs
//! inside the transaction it is given; a read-modify-write reads and writes in that one
//! transaction, so it is atomic.

use bytes::{Bytes, BytesMut};

use super::ExecContext;
use super::expire::Timeout;
use crate::percolator::Transaction;
use crate::resp::args::{ArgReader, float_arg, int_arg, is_keyword, parse_f64, parse_i64};
use crate::resp::error::{CommandError, CommandResult};
use crate::resp::keyspace::{
    Entry, Value, delete_entry, now_ms, read_entry, read_value, remove_key, rewrite_value, write_entry,
    write_string,
};
use crate::resp::reply::{Reply, format_double};

/// What `SET` does to the key's timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetExpiry {
    /// None: the new value has no timeout.
    Clear,
    /// `KEEPTTL`.
    Keep,
    /// `EX`, `PX`, `EXAT`, `PXAT`.
    Set(Timeout),
}

/// What `GETEX` does to the key's timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetExChange {
    Persist,
    Set(Timeout),
}

/// When `SET` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetCondition {
    Always,
    /// `NX`: only if the key does not exist.
    IfAbsent,
    /// `XX`: only if the key exists.
    IfPresent,
}

pub enum StringCommand {
    Get(Bytes),
    Set {
        key: Bytes,
        value: Bytes,
        condition: SetCondition,
        get: bool,
        expiry: SetExpiry,
        /// The command's name, for its errors (`set`, `setex`, `psetex`).
        name: &'static str,
    },
    GetEx(Bytes, Option<GetExChange>),
    SetNx(Bytes, Bytes),
    GetSet(Bytes, Bytes),
    GetDel(Bytes),
    MGet(Vec<Bytes>),
    MSet(Vec<(Bytes, Bytes)>),
    MSetNx(Vec<(Bytes, Bytes)>),
    IncrBy(Bytes, i64),
    /// `DECRBY key n` is kept apart because `n = i64::MIN` has no negation.
    DecrBy(Bytes, i64),
    IncrByFloat(Bytes, f64),
    Append(Bytes, Bytes),
    StrLen(Bytes),
    GetRange(Bytes, i64, i64),
    SetRange(Bytes, i64, Bytes),
}

impl StringCommand {
    /// Parses `name`'s arguments; `Ok(None)` if `name` is not a string command.
    pub fn parse(name: &str, args: &[Bytes]) -> CommandResult<Option<StringCommand>> {
        let key = || args[0].clone();
        Ok(Some(match name {
            "get" => StringCommand::Get(key()),
            "set" => parse_set(args)?,
            "setnx" => StringCommand::SetNx(key(), args[1].clone()),
            "setex" | "psetex" => {
                let (unit, name) = if name == "setex" {
                    ("EX", "setex")
                } else {
                    ("PX", "psetex")
                };
                StringCommand::Set {
                    key: key(),
                    value: args[2].clone(),
                    condition: SetCondition::Always,
                    get: false,
                    expiry: SetExpiry::Set(Timeout::positive(unit, &args[1], name)?),
                    name,
                }
            }
            "getex" => parse_getex(args)?,
            "getset" => StringCommand::GetSet(key(), args[1].clone()),
            "getdel" => StringCommand::GetDel(key()),
            "mget" => StringCommand::MGet(args.to_vec()),
            "mset" => StringCommand::MSet(pairs(name, args)?),
            "msetnx" => StringCommand::MSetNx(pairs(name, args)?),
            "incr" => StringCommand::IncrBy(key(), 1),
            "decr" => StringCommand::IncrBy(key(), -1),
            "incrby" => StringCommand::IncrBy(key(), int_arg(&args[1])?),
            "decrby" => StringCommand::DecrBy(key(), int_arg(&args[1])?),
            "incrbyfloat" => StringCommand::IncrByFloat(key(), float_arg(&args[1])?),
            "append" => StringCommand::Append(key(), args[1].clone()),
            "strlen" => StringCommand::StrLen(key()),
            "getrange" => StringCommand::GetRange(key(), int_arg(&args[1])?, int_arg(&args[2])?),
            "setrange" => StringCommand::SetRange(key(), int_arg(&args[1])?, args[2].clone()),
            _ => return Ok(None),
        }))
    }

    pub async fn exec<T: Transaction>(&self, txn: &mut T, ctx: &mut ExecContext<'_>) -> CommandResult {
        match self {
            StringCommand::Get(key) => Ok(Reply::bulk_or_nil(get_string(txn, ctx, key).await?)),
            StringCommand::Set {
                key,
                value,
                condition,
                get,
                expiry,
                name,
            } => {
                if !*get && *condition == SetCondition::Always && *expiry != SetExpiry::Keep {
                    // A plain SET replaces any value: no need to read what was there.
                    set_string(txn, key, value, *expiry, name).await?;
                    return Ok(Reply::OK);
                }
                // GET must read a string; NX and XX only ask whether the key exists.
                let old = if *get {
                    get_value(txn, ctx, key).await?
                } else {
                    read_value(txn, key).await?
                };
                let old_string = match &old {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(_) if *get => return Err(CommandError::WrongType),
                    _ => None,
                };
                let allowed = match condition {
                    SetCondition::Always => true,
                    SetCondition::IfAbsent => old.is_none(),
                    SetCondition::IfPresent => old.is_some(),
                };
                if allowed {
                    set_string(txn, key, value, *expiry, name).await?;
                }
                Ok(match (get, allowed) {
                    (true, _) => Reply::bulk_or_nil(old_string),
                    (false, true) => Reply::OK,
                    (false, false) => Reply::Nil,
                })
            }
            StringCommand::SetNx(key, value) => {
                if exists(txn, key).await? {
                    return Ok(Reply::Integer(0));
                }
                write_string(txn, key, value);
                Ok(Reply::Integer(1))
            }
            StringCommand::GetSet(key, value) => {
                let old = get_string(txn, ctx, key).await?;
                write_string(txn, key, value);
                Ok(Reply::bulk_or_nil(old))
            }
            StringCommand::GetDel(key) => {
                let old = get_string(txn, ctx, key).await?;
                if old.is_some() {
                    remove_key(txn, key).await?;
                }
                Ok(Reply::bulk_or_nil(old))
            }
            StringCommand::GetEx(key, change) => {
                let Some(entry) = ctx.counted(read_entry(txn, key).await?) else {
                    return Ok(Reply::Nil);
                };
                let Value::String(current) = &entry.value else {
                    return Err(CommandError::WrongType);
                };
                let current = current.clone();
                match change {
                    Some(GetExChange::Persist) if entry.expires_at.is_some() => {
                        write_entry(txn, key, &Entry::new(entry.value.clone(), None), Some(&entry));
                    }
                    None | Some(GetExChange::Persist) => {}
                    Some(GetExChange::Set(timeout)) => {
                        let deadline = timeout.stored_deadline(now_ms(txn), "getex")?;
                        if matches!(timeout, Timeout::At(_)) && deadline <= now_ms(txn) {
                            // An instant already past deletes the key, as in Redis.
                            delete_entry(txn, key, &entry);
                        } else {
                            let updated = Entry::new(entry.value.clone(), Some(deadline));
                            write_entry(txn, key, &updated, Some(&entry));
                        }
                    }
                }
                Ok(Reply::Bulk(current))
            }
            StringCommand::MGet(keys) => {
                let mut values = Vec::with_capacity(keys.len());
                for key in keys {
                    // MGET answers nil for a key of another type instead of failing.
                    let value = match get_value(txn, ctx, key).await? {
                        Some(Value::String(s)) => Reply::Bulk(s),
                        Some(_) | None => Reply::Nil,
                    };
                    values.push(value);
                }
                Ok(Reply::Array(values))
            }
            StringCommand::MSet(pairs) => {
                // Blind writes: a string replaces any value without reading it.
                for (key, value) in pairs {
                    write_string(txn, key, value);
                }
                Ok(Reply::OK)
            }
            StringCommand::MSetNx(pairs) => {
                for (key, _) in pairs {
                    if exists(txn, key).await? {
                        return Ok(Reply::Integer(0));
                    }
                }
                for (key, value) in pairs {
                    write_string(txn, key, value);
                }
                Ok(Reply::Integer(1))
            }
            StringCommand::IncrBy(key, delta) => incr_by(txn, key, *delta).await,
            StringCommand::DecrBy(key, delta) => match delta.checked_neg() {
                Some(delta) => incr_by(txn, key, delta).await,
                None => Err(CommandError::Other("decrement would overflow".into())),
            },
            StringCommand::IncrByFloat(key, delta) => {
                let current = match read_string(txn, key).await? {
                    Some(text) => parse_f64(&text).ok_or(CommandError::NotFloat)?,
                    None => 0.0,
                };
                let result = current + delta;
                if !result.is_finite() {
                    return Err(CommandError::NanOrInfinity);
                }
                let text = Bytes::from(format_double(result));
                change_string(txn, key, &text).await?;
                Ok(Reply::Bulk(text))
            }
            StringCommand::Append(key, suffix) => {
                let current = read_string(txn, key).await?.unwrap_or_default();
                let len = current.len() + suffix.len();
                if len > ctx.max_string_bytes {
                    return Err(CommandError::StringTooLong);
                }
                let mut joined = BytesMut::with_capacity(len);
                joined.extend_from_slice(&current);
                joined.extend_from_slice(suffix);
                change_string(txn, key, &joined).await?;
                Ok(Reply::Integer(len as i64))
            }
            StringCommand::StrLen(key) => {
                let len = get_string(txn, ctx, key).await?.map_or(0, |s| s.len());
                Ok(Reply::Integer(len as i64))
            }
            StringCommand::GetRange(key, start, end) => {
                let value = get_string(txn, ctx, key).await?.unwrap_or_default();
                Ok(Reply::Bulk(substring(&value, *start, *end)))
            }
            StringCommand::SetRange(key, offset, patch) => set_range(txn, ctx, key, *offset, patch).await,
        }
    }
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ts|KEEPTTL]`.
fn parse_set(args: &[Bytes]) -> CommandResult<StringCommand> {
    let mut reader = ArgReader::new(&args[2..]);
    let mut condition = SetCondition::Always;
    let mut get = false;
    let mut expiry: Option<&'static str> = None;
    let mut timeout = SetExpiry::Clear;
    while let Some(option) = reader.next() {
        if is_keyword(option, "NX") && condition != SetCondition::IfPresent {
            condition = SetCondition::IfAbsent;
        } else if is_keyword(option, "XX") && condition != SetCondition::IfAbsent {
            condition = SetCondition::IfPresent;
        } else if is_keyword(option, "GET") {
            get = true;
        } else if is_keyword(option, "KEEPTTL") && expiry.is_none_or(|e| e == "KEEPTTL") {
            expiry = Some("KEEPTTL");
            timeout = SetExpiry::Keep;
        } else if let Some(unit) = ["EX", "PX", "EXAT", "PXAT"]
            .into_iter()
            .find(|unit| is_keyword(option, unit))
            && expiry.is_none_or(|e| e == unit)
        {
            timeout = SetExpiry::Set(Timeout::positive(unit, reader.value()?, "set")?);
            expiry = Some(unit);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(StringCommand::Set {
        key: args[0].clone(),
        value: args[1].clone(),
        condition,
        get,
        expiry: timeout,
        name: "set",
    })
}

/// `GETEX key [EX s | PX ms | EXAT ts | PXAT ts | PERSIST]`.
fn parse_getex(args: &[Bytes]) -> CommandResult<StringCommand> {
    let mut reader = ArgReader::new(&args[1..]);
    let mut change = None;
    while let Some(option) = reader.next() {
        if change.is_some() {
            return Err(CommandError::Syntax);
        }
        if is_keyword(option, "PERSIST") {
            change = Some(GetExChange::Persist);
        } else if let Some(unit) = ["EX", "PX", "EXAT", "PXAT"]
            .into_iter()
            .find(|unit| is_keyword(option, unit))
        {
            change = Some(GetExChange::Set(Timeout::positive(
                unit,
                reader.value()?,
                "getex",
            )?));
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(StringCommand::GetEx(args[0].clone(), change))
}

/// Writes `value` at `key` as `SET` does, with the timeout `expiry` says.
async fn set_string<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    value: &[u8],
    expiry: SetExpiry,
    command: &str,
) -> CommandResult<()> {
    match expiry {
        SetExpiry::Clear => write_string(txn, key, value),
        SetExpiry::Keep => rewrite_value(txn, key, Value::String(Bytes::copy_from_slice(value))).await?,
        SetExpiry::Set(timeout) => {
            let deadline = timeout.stored_deadline(now_ms(txn), command)?;
            let entry = Entry::new(Value::String(Bytes::copy_from_slice(value)), Some(deadline));
            // Blind: an index entry of the replaced value's deadline is left to the sweeper.
            write_entry(txn, key, &entry, None);
        }
    }
    Ok(())
}

/// `key value [key value ...]`, or the command's arity error.
fn pairs(name: &str, args: &[Bytes]) -> CommandResult<Vec<(Bytes, Bytes)>> {
    if !args.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity {
            name: name.to_string(),
        });
    }
    Ok(args
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect())
}

/// The value stored at `key`, counting the lookup as a keyspace hit or miss (as Redis counts
/// read lookups, not the reads a write command does).
async fn get_value<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    key: &[u8],
) -> CommandResult<Option<Value>> {
    Ok(ctx.counted(read_value(txn, key).await?))
}

/// The string at `key` for a read command (counted); `WRONGTYPE` if the key holds another type.
async fn get_string<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    key: &[u8],
) -> CommandResult<Option<Bytes>> {
    match get_value(txn, ctx, key).await? {
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(CommandError::WrongType),
        None => Ok(None),
    }
}

/// The string at `key` for a write command (not counted); `WRONGTYPE` for another type.
async fn read_string<T: Transaction>(txn: &mut T, key: &[u8]) -> CommandResult<Option<Bytes>> {
    match read_value(txn, key).await? {
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(CommandError::WrongType),
        None => Ok(None),
    }
}

async fn exists<T: Transaction>(txn: &mut T, key: &[u8]) -> CommandResult<bool> {
    Ok(read_entry(txn, key).await?.is_some())
}

/// Changes the string at a key known to hold a string or nothing, keeping its timeout.
async fn change_string<T: Transaction>(txn: &mut T, key: &[u8], value: &[u8]) -> CommandResult<()> {
    rewrite_value(txn, key, Value::String(Bytes::copy_from_slice(value))).await
}

async fn incr_by<T: Transaction>(txn: &mut T, key: &[u8], delta: i64) -> CommandResult {
    let current = match read_string(txn, key).await? {
        Some(text) => parse_i64(&text).ok_or(CommandError::NotInteger)?,
        None => 0,
    };
    let result = current.checked_add(delta).ok_or(CommandError::Overflow)?;
    change_string(txn, key, result.to_string().as_bytes()).await?;
    Ok(Reply::Integer(result))
}

/// `GETRANGE`'s slice: negative indexes count from the end, both ends inclusive, clamped.
fn substring(value: &Bytes, start: i64, end: i64) -> Bytes {
    let len = value.len() as i64;
    if len == 0 || (start < 0 && end < 0 && start > end) {
        return Bytes::new();
    }
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 {
        (len + end).max(0)
    } else {
        end.min(len - 1)
    };
    if start > end {
        return Bytes::new();
    }
    value.slice(start as usize..=end as usize)
}

async fn set_range<T: Transaction>(
    txn: &mut T,
    ctx: &ExecContext<'_>,
    key: &[u8],
    offset: i64,
    patch: &Bytes,
) -> CommandResult {
    if offset < 0 {
        return Err(CommandError::OffsetOutOfRange);
    }
    let current = read_string(txn, key).await?;
    if patch.is_empty() {
        // Nothing to write: answer the current length and create nothing.
        return Ok(Reply::Integer(current.map_or(0, |s| s.len() as i64)));
    }
    let offset = offset as u64;
    let needed = offset + patch.len() as u64;
    if needed > ctx.max_string_bytes as u64 {
        return Err(CommandError::StringTooLong);
    }
    let current = current.unwrap_or_default();
    let len = (needed as usize).max(current.len());
    let mut value = BytesMut::zeroed(len);
    value[..current.len()].copy_from_slice(&current);
    value[offset as usize..needed as usize].copy_from_slice(patch);
    change_string(txn, key, &value).await?;
    Ok(Reply::Integer(len as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getrange_matches_redis() {
        let v = Bytes::from_static(b"This is a string");
        let s = |a, b| String::from_utf8(substring(&v, a, b).to_vec()).unwrap();
        assert_eq!(s(0, 3), "This");
        assert_eq!(s(-3, -1), "ing");
        assert_eq!(s(0, -1), "This is a string");
        assert_eq!(s(10, 100), "string");
        assert_eq!(s(5, 3), "");
        assert_eq!(s(-1, -5), "");
        assert_eq!(s(-100, 2), "Thi");
        assert_eq!(substring(&Bytes::new(), 0, -1), Bytes::new());
    }

    #[test]
    fn set_options_parse_like_redis() {
        let args = |list: &[&str]| {
            list.iter()
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect::<Vec<_>>()
        };
        assert!(matches!(
            parse_set(&args(&["k", "v", "nx", "GET"])),
            Ok(StringCommand::Set {
                condition: SetCondition::IfAbsent,
                get: true,
                ..
            })
        ));
        assert!(matches!(
            parse_set(&args(&["k", "v", "NX", "XX"])),
            Err(CommandError::Syntax)
        ));
        assert!(matches!(
            parse_set(&args(&["k", "v", "EX"])),
            Err(CommandError::Syntax)
        ));
        assert!(matches!(
            parse_set(&args(&["k", "v", "EX", "x"])),
            Err(CommandError::NotInteger)
        ));
        assert!(matches!(
            parse_set(&args(&["k", "v", "EX", "0"])),
            Err(CommandError::Other(_))
        ));
        assert!(matches!(
            parse_set(&args(&["k", "v", "EX", "5", "PX", "5"])),
            Err(CommandError::Syntax)
        ));
        assert!(matches!(
            parse_set(&args(&["k", "v", "EX", "5"])),
            Ok(StringCommand::Set {
                expiry: SetExpiry::Set(Timeout::After(5000)),
                ..
            })
        ));
        assert!(matches!(
            parse_set(&args(&["k", "v", "KEEPTTL"])),
            Ok(StringCommand::Set {
                expiry: SetExpiry::Keep,
                ..
            })
        ));
        assert!(matches!(
            parse_set(&args(&["k", "v", "KEEPTTL", "PX", "5"])),
            Err(CommandError::Syntax)
        ));
        assert!(matches!(
            parse_set(&args(&["k", "v", "bogus"])),
            Err(CommandError::Syntax)
        ));
    }
}
