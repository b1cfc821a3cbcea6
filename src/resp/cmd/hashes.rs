//! Hash commands: `HSET HSETNX HMSET HGET HMGET HDEL HLEN HEXISTS HGETALL HKEYS HVALS HINCRBY
//! HINCRBYFLOAT HSTRLEN HSCAN HRANDFIELD`.
//!
//! A hash is a meta entry holding its field count plus one store entry per field (see
//! `keyspace`), so reading or writing one field touches two entries however large the hash.
//! Every command that changes a hash rewrites its meta entry, even when the count stays the
//! same, because `WATCH` watches meta entries. Fields are keyed by the hash's version, so a
//! hash created after another of the same name was replaced starts empty (see `keyspace`).
//!
//! `HRANDFIELD` reads the whole hash and picks uniformly, as Redis does: fields are stored in
//! field order, which a seek to a random key would sample very unevenly (unlike a set's
//! members, ordered by their hash), so a pick costs O(size of the hash) here.

use bytes::Bytes;

use super::ExecContext;
use super::keys::{ScanArgs, scan_parts};
use super::sets::{check_repeats, scan_reply};
use crate::percolator::Transaction;
use crate::resp::args::{float_arg, int_arg, is_keyword, parse_f64, parse_i64};
use crate::resp::error::{CommandError, CommandResult};
use crate::resp::keyspace::{
    CollectionMeta, Value, data_key, hash_field_key, hash_field_prefix, prefix_end, read_value, rewrite_value,
};
use crate::resp::reply::{Reply, format_double};

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
    IncrByFloat(Bytes, Bytes, f64),
    StrLen(Bytes, Bytes),
    Scan(Bytes, ScanArgs),
    /// `HRANDFIELD key [count [WITHVALUES]]`: no count answers one field (or nil).
    RandField {
        key: Bytes,
        count: Option<i64>,
        with_values: bool,
    },
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
            "hincrbyfloat" => {
                let delta = float_arg(&args[2])?;
                if !delta.is_finite() {
                    return Err(CommandError::Other("value is NaN or Infinity".into()));
                }
                HashCommand::IncrByFloat(key(), args[1].clone(), delta)
            }
            "hstrlen" => HashCommand::StrLen(key(), args[1].clone()),
            "hrandfield" => parse_randfield(args)?,
            "hscan" => HashCommand::Scan(key(), ScanArgs::parse(&args[1..], false)?),
            _ => return Ok(None),
        }))
    }

    pub async fn exec<T: Transaction>(&self, txn: &mut T, ctx: &mut ExecContext<'_>) -> CommandResult {
        match self {
            HashCommand::Set { key, pairs, reply_ok } => {
                let mut meta = meta_for_write(txn, ctx, key).await?;
                let mut added = 0;
                for (field, value) in pairs {
                    let field_key = hash_field_key(key, &meta.version, field);
                    if txn.get(&field_key).await?.is_none() {
                        added += 1;
                        meta.len += 1;
                    }
                    txn.put(field_key, value.clone());
                }
                rewrite_value(txn, key, Value::Hash(meta)).await?;
                Ok(if *reply_ok {
                    Reply::OK
                } else {
                    Reply::Integer(added)
                })
            }
            HashCommand::SetNx(key, field, value) => {
                let mut meta = meta_for_write(txn, ctx, key).await?;
                let field_key = hash_field_key(key, &meta.version, field);
                if txn.get(&field_key).await?.is_some() {
                    return Ok(Reply::Integer(0));
                }
                txn.put(field_key, value.clone());
                meta.len += 1;
                rewrite_value(txn, key, Value::Hash(meta)).await?;
                Ok(Reply::Integer(1))
            }
            HashCommand::Get(key, field) => {
                let Some(meta) = lookup(txn, ctx, key).await? else {
                    return Ok(Reply::Nil);
                };
                Ok(Reply::bulk_or_nil(
                    txn.get(&hash_field_key(key, &meta.version, field)).await?,
                ))
            }
            HashCommand::MGet(key, fields) => {
                let meta = lookup(txn, ctx, key).await?;
                let mut values = Vec::with_capacity(fields.len());
                for field in fields {
                    let value = match &meta {
                        Some(meta) => txn.get(&hash_field_key(key, &meta.version, field)).await?,
                        None => None,
                    };
                    values.push(Reply::bulk_or_nil(value));
                }
                Ok(Reply::Array(values))
            }
            HashCommand::Del(key, fields) => {
                let Some(mut meta) = hash_meta(txn, key).await? else {
                    return Ok(Reply::Integer(0));
                };
                let mut removed = 0;
                for field in fields {
                    let field_key = hash_field_key(key, &meta.version, field);
                    if txn.get(&field_key).await?.is_some() {
                        txn.delete(field_key);
                        removed += 1;
                        meta.len -= 1;
                    }
                }
                // A hash with no fields does not exist.
                if meta.len == 0 {
                    txn.delete(data_key(key));
                } else if removed > 0 {
                    rewrite_value(txn, key, Value::Hash(meta)).await?;
                }
                Ok(Reply::Integer(removed))
            }
            HashCommand::Len(key) => Ok(Reply::Integer(
                lookup(txn, ctx, key).await?.map_or(0, |m| m.len) as i64
            )),
            HashCommand::Exists(key, field) => {
                let Some(meta) = lookup(txn, ctx, key).await? else {
                    return Ok(Reply::Integer(0));
                };
                let found = txn
                    .get(&hash_field_key(key, &meta.version, field))
                    .await?
                    .is_some();
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
                let result = update_field(txn, ctx, key, field, |current| {
                    let current = match current {
                        Some(text) => parse_i64(&text)
                            .ok_or_else(|| CommandError::Other("hash value is not an integer".into()))?,
                        None => 0,
                    };
                    let result = current.checked_add(*delta).ok_or(CommandError::Overflow)?;
                    Ok((Bytes::from(result.to_string()), result))
                })
                .await?;
                Ok(Reply::Integer(result))
            }
            HashCommand::IncrByFloat(key, field, delta) => {
                let text = update_field(txn, ctx, key, field, |current| {
                    let current = match current {
                        Some(text) => parse_f64(&text)
                            .ok_or_else(|| CommandError::Other("hash value is not a float".into()))?,
                        None => 0.0,
                    };
                    let result = current + delta;
                    if !result.is_finite() {
                        return Err(CommandError::NanOrInfinity);
                    }
                    let text = Bytes::from(format_double(result));
                    Ok((text.clone(), text))
                })
                .await?;
                Ok(Reply::Bulk(text))
            }
            HashCommand::RandField {
                key,
                count,
                with_values,
            } => {
                let fields = all_fields(txn, ctx, key).await?;
                let Some(count) = count else {
                    return Ok(Reply::bulk_or_nil(
                        (!fields.is_empty()).then(|| fields[fastrand::usize(..fields.len())].0.clone()),
                    ));
                };
                let picked = pick(fields, *count);
                Ok(if *with_values {
                    Reply::Pairs(
                        picked
                            .into_iter()
                            .map(|(f, v)| (Reply::Bulk(f), Reply::Bulk(v)))
                            .collect(),
                    )
                } else {
                    Reply::Array(picked.into_iter().map(|(f, _)| Reply::Bulk(f)).collect())
                })
            }
            HashCommand::StrLen(key, field) => {
                let Some(meta) = lookup(txn, ctx, key).await? else {
                    return Ok(Reply::Integer(0));
                };
                let len = txn
                    .get(&hash_field_key(key, &meta.version, field))
                    .await?
                    .map_or(0, |v| v.len());
                Ok(Reply::Integer(len as i64))
            }
            HashCommand::Scan(key, args) => {
                let Some(meta) = lookup(txn, ctx, key).await? else {
                    return Ok(scan_reply(0, Vec::new()));
                };
                let prefix = hash_field_prefix(key, &meta.version);
                let (cursor, parts) = scan_parts(txn, ctx, &prefix, args).await?;
                let mut found = Vec::new();
                for (store_key, value) in parts {
                    let field = store_key.slice(prefix.len()..);
                    if args.matches(&field) {
                        found.push(Reply::Bulk(field));
                        found.push(Reply::Bulk(value));
                    }
                }
                Ok(scan_reply(cursor, found))
            }
        }
    }
}

/// Sets `field` of hash `key` (creating either) to what `update` makes of its current value
/// (`None` if absent), and passes on the rest of `update`'s answer.
async fn update_field<T: Transaction, R>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    key: &[u8],
    field: &[u8],
    update: impl FnOnce(Option<Bytes>) -> CommandResult<(Bytes, R)>,
) -> CommandResult<R> {
    let mut meta = meta_for_write(txn, ctx, key).await?;
    let field_key = hash_field_key(key, &meta.version, field);
    let current = txn.get(&field_key).await?;
    if current.is_none() {
        meta.len += 1;
    }
    let (value, result) = update(current)?;
    txn.put(field_key, value);
    // The meta entry is rewritten even when the count stays: every change to a hash is a
    // change of its meta entry, which is what WATCH looks at.
    rewrite_value(txn, key, Value::Hash(meta)).await?;
    Ok(result)
}

/// `HRANDFIELD`'s arguments after the key.
fn parse_randfield(args: &[Bytes]) -> CommandResult<HashCommand> {
    let key = args[0].clone();
    let Some(count) = args.get(1) else {
        return Ok(HashCommand::RandField {
            key,
            count: None,
            with_values: false,
        });
    };
    let count = int_arg(count)?;
    let with_values = match &args[2..] {
        [] => false,
        [option] if is_keyword(option, "WITHVALUES") => true,
        _ => return Err(CommandError::Syntax),
    };
    // Redis takes counts whose absolute value (twice it, with values) fits in a long.
    let limit = if with_values { i64::MAX / 2 } else { i64::MAX };
    if count < -limit {
        return Err(CommandError::Other("value is out of range".into()));
    }
    if count < 0 {
        check_repeats(count.unsigned_abs())?;
    }
    Ok(HashCommand::RandField {
        key,
        count: Some(count),
        with_values,
    })
}

/// `count` of `fields` picked at random: distinct ones (all of them if there are fewer) for a
/// positive count, with repeats for a negative one.
fn pick(mut fields: Vec<(Bytes, Bytes)>, count: i64) -> Vec<(Bytes, Bytes)> {
    if fields.is_empty() || count == 0 {
        return Vec::new();
    }
    if count < 0 {
        return (0..count.unsigned_abs())
            .map(|_| fields[fastrand::usize(..fields.len())].clone())
            .collect();
    }
    let count = (count as u64).min(fields.len() as u64) as usize;
    // A partial Fisher-Yates shuffle: the first `count` are a uniform sample.
    for i in 0..count {
        let j = fastrand::usize(i..fields.len());
        fields.swap(i, j);
    }
    fields.truncate(count);
    fields
}

/// The meta of hash `key` (`None` if absent); `WRONGTYPE` if it is not a hash.
async fn hash_meta<T: Transaction>(txn: &mut T, key: &[u8]) -> CommandResult<Option<CollectionMeta>> {
    match read_value(txn, key).await? {
        Some(Value::Hash(meta)) => Ok(Some(meta)),
        Some(_) => Err(CommandError::WrongType),
        None => Ok(None),
    }
}

/// The meta of hash `key` for a write: its own, or that of a new, empty incarnation.
async fn meta_for_write<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    key: &[u8],
) -> CommandResult<CollectionMeta> {
    if let Some(meta) = hash_meta(txn, key).await? {
        return Ok(meta);
    }
    Ok(CollectionMeta {
        len: 0,
        version: ctx.new_version(txn),
    })
}

/// [`hash_meta`] for a read command, counted as a keyspace hit or miss.
async fn lookup<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    key: &[u8],
) -> CommandResult<Option<CollectionMeta>> {
    Ok(ctx.counted(hash_meta(txn, key).await?))
}

/// Every (field, value) of hash `key`, in field order.
async fn all_fields<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    key: &[u8],
) -> CommandResult<Vec<(Bytes, Bytes)>> {
    let Some(meta) = lookup(txn, ctx, key).await? else {
        return Ok(Vec::new());
    };
    let prefix = hash_field_prefix(key, &meta.version);
    let end = prefix_end(&prefix);
    let entries = txn.scan(&prefix, end.as_deref(), usize::MAX).await?;
    Ok(entries
        .into_iter()
        .map(|(store_key, value)| (store_key.slice(prefix.len()..), value))
        .collect())
}
