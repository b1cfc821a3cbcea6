//! Hash commands: `HSET HSETNX HMSET HGET HMGET HDEL HLEN HEXISTS HGETALL HKEYS HVALS HINCRBY
//! HSTRLEN`.
//!
//! A hash is a meta entry holding its field count plus one store entry per field (see
//! `keyspace`), so reading or writing one field touches two entries however large the hash.
//! Every command that changes a hash rewrites its meta entry, even when the count stays the
//! same, because `WATCH` watches meta entries.

use bytes::Bytes;

use super::ExecContext;
use crate::percolator::Transaction;
use crate::resp::args::{int_arg, parse_i64};
use crate::resp::error::{CommandError, CommandResult};
use crate::resp::keyspace::{Value, data_key, hash_field_key, hash_field_prefix, prefix_end, read_value};
use crate::resp::reply::Reply;

pub enum HashCommand {
    /// `HSET` answers the number of new fields, `HMSET` answers `OK`.
    Set {
        key: Bytes,
        pairs: Vec<(Bytes, Bytes)>,
        reply_ok: bool,
    },
    SetNx(Bytes, Bytes, Bytes),
    Get(Bytes, Bytes),
    MGet(Bytes, Vec<Bytes>),
    Del(Bytes, Vec<Bytes>),
    Len(Bytes),
    Exists(Bytes, Bytes),
    GetAll(Bytes),
    Keys(Bytes),
    Vals(Bytes),
    IncrBy(Bytes, Bytes, i64),
    StrLen(Bytes, Bytes),
}

impl HashCommand {
    pub fn parse(name: &str, args: &[Bytes]) -> CommandResult<Option<HashCommand>> {
        let key = || args[0].clone();
        Ok(Some(match name {
            "hset" | "hmset" => {
                let rest = &args[1..];
                if !rest.len().is_multiple_of(2) {
                    return Err(CommandError::WrongArity {
                        name: name.to_string(),
                    });
                }
                HashCommand::Set {
                    key: key(),
                    pairs: rest.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect(),
                    reply_ok: name == "hmset",
                }
            }
            "hsetnx" => HashCommand::SetNx(key(), args[1].clone(), args[2].clone()),
            "hget" => HashCommand::Get(key(), args[1].clone()),
            "hmget" => HashCommand::MGet(key(), args[1..].to_vec()),
            "hdel" => HashCommand::Del(key(), args[1..].to_vec()),
            "hlen" => HashCommand::Len(key()),
            "hexists" => HashCommand::Exists(key(), args[1].clone()),
            "hgetall" => HashCommand::GetAll(key()),
            "hkeys" => HashCommand::Keys(key()),
            "hvals" => HashCommand::Vals(key()),
            "hincrby" => HashCommand::IncrBy(key(), args[1].clone(), int_arg(&args[2])?),
            "hstrlen" => HashCommand::StrLen(key(), args[1].clone()),
            _ => return Ok(None),
        }))
    }

    pub async fn exec<T: Transaction>(&self, txn: &mut T, ctx: &mut ExecContext<'_>) -> CommandResult {
        match self {
            HashCommand::Set { key, pairs, reply_ok } => {
                let mut len = hash_len(txn, key).await?.unwrap_or(0);
                let mut added = 0;
                for (field, value) in pairs {
                    let field_key = hash_field_key(key, field);
                    if txn.get(&field_key).await?.is_none() {
                        added += 1;
                        len += 1;
                    }
                    txn.put(field_key, value.clone());
                }
                txn.put(data_key(key), Value::encode_hash(len));
                Ok(if *reply_ok {
                    Reply::OK
                } else {
                    Reply::Integer(added)
                })
            }
            HashCommand::SetNx(key, field, value) => {
                let len = hash_len(txn, key).await?.unwrap_or(0);
                let field_key = hash_field_key(key, field);
                if txn.get(&field_key).await?.is_some() {
                    return Ok(Reply::Integer(0));
                }
                txn.put(field_key, value.clone());
                txn.put(data_key(key), Value::encode_hash(len + 1));
                Ok(Reply::Integer(1))
            }
            HashCommand::Get(key, field) => {
                if lookup(txn, ctx, key).await?.is_none() {
                    return Ok(Reply::Nil);
                }
                Ok(Reply::bulk_or_nil(txn.get(&hash_field_key(key, field)).await?))
            }
            HashCommand::MGet(key, fields) => {
                let exists = lookup(txn, ctx, key).await?.is_some();
                let mut values = Vec::with_capacity(fields.len());
                for field in fields {
                    let value = if exists {
                        txn.get(&hash_field_key(key, field)).await?
                    } else {
                        None
                    };
                    values.push(Reply::bulk_or_nil(value));
                }
                Ok(Reply::Array(values))
            }
            HashCommand::Del(key, fields) => {
                let Some(mut len) = hash_len(txn, key).await? else {
                    return Ok(Reply::Integer(0));
                };
                let mut removed = 0;
                for field in fields {
                    let field_key = hash_field_key(key, field);
                    if txn.get(&field_key).await?.is_some() {
                        txn.delete(field_key);
                        removed += 1;
                        len -= 1;
                    }
                }
                // A hash with no fields does not exist.
                if len == 0 {
                    txn.delete(data_key(key));
                } else if removed > 0 {
                    txn.put(data_key(key), Value::encode_hash(len));
                }
                Ok(Reply::Integer(removed))
            }
            HashCommand::Len(key) => Ok(Reply::Integer(lookup(txn, ctx, key).await?.unwrap_or(0) as i64)),
            HashCommand::Exists(key, field) => {
                if lookup(txn, ctx, key).await?.is_none() {
                    return Ok(Reply::Integer(0));
                }
                let found = txn.get(&hash_field_key(key, field)).await?.is_some();
                Ok(Reply::Integer(found.into()))
            }
            HashCommand::GetAll(key) => {
                let fields = all_fields(txn, ctx, key).await?;
                Ok(Reply::Map(
                    fields
                        .into_iter()
                        .map(|(f, v)| (Reply::Bulk(f), Reply::Bulk(v)))
                        .collect(),
                ))
            }
            HashCommand::Keys(key) => {
                let fields = all_fields(txn, ctx, key).await?;
                Ok(Reply::Array(
                    fields.into_iter().map(|(f, _)| Reply::Bulk(f)).collect(),
                ))
            }
            HashCommand::Vals(key) => {
                let fields = all_fields(txn, ctx, key).await?;
                Ok(Reply::Array(
                    fields.into_iter().map(|(_, v)| Reply::Bulk(v)).collect(),
                ))
            }
            HashCommand::IncrBy(key, field, delta) => {
                let len = hash_len(txn, key).await?.unwrap_or(0);
                let field_key = hash_field_key(key, field);
                let (current, new_field) = match txn.get(&field_key).await? {
                    Some(text) => (
                        parse_i64(&text)
                            .ok_or_else(|| CommandError::Other("hash value is not an integer".into()))?,
                        false,
                    ),
                    None => (0, true),
                };
                let result = current.checked_add(*delta).ok_or(CommandError::Overflow)?;
                txn.put(field_key, Bytes::from(result.to_string()));
                // The meta entry is rewritten even when the count stays: every change to a
                // hash is a change of its meta entry, which is what WATCH looks at.
                let len = if new_field { len + 1 } else { len };
                txn.put(data_key(key), Value::encode_hash(len));
                Ok(Reply::Integer(result))
            }
            HashCommand::StrLen(key, field) => {
                if lookup(txn, ctx, key).await?.is_none() {
                    return Ok(Reply::Integer(0));
                }
                let len = txn.get(&hash_field_key(key, field)).await?.map_or(0, |v| v.len());
                Ok(Reply::Integer(len as i64))
            }
        }
    }
}

/// The field count of hash `key` (`None` if absent); `WRONGTYPE` if it is not a hash.
async fn hash_len<T: Transaction>(txn: &mut T, key: &[u8]) -> CommandResult<Option<u64>> {
    match read_value(txn, key).await? {
        Some(Value::Hash { len }) => Ok(Some(len)),
        Some(_) => Err(CommandError::WrongType),
        None => Ok(None),
    }
}

/// [`hash_len`] for a read command, counted as a keyspace hit or miss.
async fn lookup<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    key: &[u8],
) -> CommandResult<Option<u64>> {
    let len = hash_len(txn, key).await?;
    if len.is_some() {
        ctx.hits += 1;
    } else {
        ctx.misses += 1;
    }
    Ok(len)
}

/// Every (field, value) of hash `key`, in field order.
async fn all_fields<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    key: &[u8],
) -> CommandResult<Vec<(Bytes, Bytes)>> {
    if lookup(txn, ctx, key).await?.is_none() {
        return Ok(Vec::new());
    }
    let prefix = hash_field_prefix(key);
    let end = prefix_end(&prefix);
    let entries = txn.scan(&prefix, end.as_deref(), usize::MAX).await?;
    Ok(entries
        .into_iter()
        .map(|(store_key, value)| (store_key.slice(prefix.len()..), value))
        .collect())
}
