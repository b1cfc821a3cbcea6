//! Sorted set commands: `ZADD ZINCRBY ZREM ZSCORE ZMSCORE ZCARD ZCOUNT ZLEXCOUNT ZRANGE
//! ZRANGEBYSCORE ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZREVRANGE ZRANGESTORE ZRANK ZREVRANK
//! ZPOPMIN ZPOPMAX ZMPOP BZPOPMIN BZPOPMAX BZMPOP ZUNION ZINTER ZDIFF ZUNIONSTORE ZINTERSTORE
//! ZDIFFSTORE ZINTERCARD ZREMRANGEBYSCORE ZREMRANGEBYRANK ZREMRANGEBYLEX ZRANDMEMBER ZSCAN`.
//!
//! A sorted set is a meta entry holding its member count, plus for each member its score under
//! the member and an entry in each of two order indexes, by (score, member) ascending and
//! descending, and a rank index counting the ascending one (see `keyspace` and [`rank`]). So
//! a score lookup is one read, an add or a score change a few writes and a seek per rank-index
//! level, a range by score one seek and a read of what it returns, from either end, and a range
//! by rank, or a rank, a read from the nearer end when it is close to one, else a descent of
//! the rank index (a few hundred entries whatever the set's size) and a seek. Lex ranges read
//! the member entries, which are in member order: that is the order Redis defines lex ranges
//! by, for members of equal score.
//!
//! Commands that take several sets (`ZUNION`, `ZINTER`, `ZDIFF` and their `STORE` forms) also
//! take plain sets, whose members score 1, as Redis does.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use super::ExecContext;
use super::keys::{ScanArgs, scan_parts};
use super::sets::{check_repeats, scan_reply, set_members};
use crate::percolator::Transaction;
use crate::resp::args::{ArgReader, int_arg, is_keyword, parse_f64, parse_i64};
use crate::resp::error::{CommandError, CommandResult};
use crate::resp::keyspace::{
    CollectionMeta, Entry, Value, Version, decode_score, encode_score, key_after, parse_zset_order_key,
    prefix_end, read_value, remove_key, rewrite_value, score_order, write_entry, zset_member_key,
    zset_member_prefix, zset_order_key, zset_order_key_at, zset_order_prefix,
};
use crate::resp::reply::Reply;

mod algebra;
mod parse;
mod ranges;
mod rank;
#[cfg(test)]
mod test_txn;

use algebra::combine;
pub use parse::parse_blocking;
use parse::*;
use ranges::{by_rank, rank_of, select, whole};
use rank::RankIndex;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LexBound {
    /// `-`: below every member.
    Min,
    /// `+`: above every member.
    Max,
    Inclusive(Bytes),
    Exclusive(Bytes),
}

/// What a range command selects. Bounds are in ascending order (`min`, `max`) whatever order
/// the command took them in.
#[derive(Clone, Debug, PartialEq)]
pub enum Range {
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

/// A range query: what, in which order, and which slice of it (`LIMIT offset count`; a
/// negative count: all).
#[derive(Clone, Debug)]
pub struct RangeQuery {
    pub range: Range,
    pub rev: bool,
    pub limit: Option<(i64, i64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    Sum,
    Min,
    Max,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// How a pop answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PopShape {
    /// `ZPOPMIN key`: `[member, score]`; `ZPOPMIN key count`: pairs.
    Plain { counted: bool },
    /// `ZMPOP`/`BZMPOP`: `[key, pairs]`, or a null array.
    KeyAndPairs,
    /// `BZPOPMIN`/`BZPOPMAX`: `[key, member, score]`, or a null array.
    KeyMemberScore,
}

#[derive(Clone)]
pub enum ZSetCommand {
    Add {
        key: Bytes,
        flags: AddFlags,
        pairs: Vec<(f64, Bytes)>,
    },
    Rem(Bytes, Vec<Bytes>),
    Score(Bytes, Bytes),
    MScore(Bytes, Vec<Bytes>),
    Card(Bytes),
    /// `ZCOUNT`/`ZLEXCOUNT`.
    Count(Bytes, Range),
    Range {
        key: Bytes,
        query: RangeQuery,
        with_scores: bool,
    },
    RangeStore {
        destination: Bytes,
        source: Bytes,
        query: RangeQuery,
    },
    Rank {
        key: Bytes,
        member: Bytes,
        rev: bool,
    },
    Pop {
        keys: Vec<Bytes>,
        max: bool,
        count: u64,
        shape: PopShape,
        /// A blocked client's retry: a key of another type counts as empty.
        waiting: bool,
    },
    Combine {
        op: SetOp,
        keys: Vec<Bytes>,
        weights: Vec<f64>,
        aggregate: Aggregate,
        with_scores: bool,
        store: Option<Bytes>,
    },
    InterCard(Vec<Bytes>, u64),
    RemRange(Bytes, Range),
    RandMember {
        key: Bytes,
        count: Option<i64>,
        with_scores: bool,
    },
    Scan(Bytes, ScanArgs),
}

impl ZSetCommand {
    pub fn parse(name: &str, args: &[Bytes]) -> CommandResult<Option<ZSetCommand>> {
        let key = || args[0].clone();
        Ok(Some(match name {
            "zadd" => parse_zadd(args)?,
            "zincrby" => ZSetCommand::Add {
                key: key(),
                flags: AddFlags {
                    incr: true,
                    ..AddFlags::default()
                },
                pairs: vec![(score_arg(&args[1])?, args[2].clone())],
            },
            "zrem" => ZSetCommand::Rem(key(), args[1..].to_vec()),
            "zscore" => ZSetCommand::Score(key(), args[1].clone()),
            "zmscore" => ZSetCommand::MScore(key(), args[1..].to_vec()),
            "zcard" => ZSetCommand::Card(key()),
            "zcount" => ZSetCommand::Count(
                key(),
                Range::Score(score_bound(&args[1])?, score_bound(&args[2])?),
            ),
            "zlexcount" => ZSetCommand::Count(key(), Range::Lex(lex_bound(&args[1])?, lex_bound(&args[2])?)),
            "zrange" => {
                let (query, with_scores) = parse_zrange(&args[1..], None, true)?;
                ZSetCommand::Range {
                    key: key(),
                    query,
                    with_scores,
                }
            }
            "zrangestore" => {
                let (query, _) = parse_zrange(&args[2..], None, false)?;
                ZSetCommand::RangeStore {
                    destination: key(),
                    source: args[1].clone(),
                    query,
                }
            }
            "zrevrange" | "zrangebyscore" | "zrevrangebyscore" | "zrangebylex" | "zrevrangebylex" => {
                let (query, with_scores) = parse_zrange(&args[1..], Some(name), true)?;
                ZSetCommand::Range {
                    key: key(),
                    query,
                    with_scores,
                }
            }
            "zrank" | "zrevrank" => ZSetCommand::Rank {
                key: key(),
                member: args[1].clone(),
                rev: name == "zrevrank",
            },
            "zpopmin" | "zpopmax" => {
                if args.len() > 2 {
                    return Err(CommandError::Syntax);
                }
                let count = match args.get(1) {
                    Some(count) => {
                        let count = int_arg(count)?;
                        if count < 0 {
                            return Err(CommandError::Other(
                                "value is out of range, must be positive".into(),
                            ));
                        }
                        count as u64
                    }
                    None => 1,
                };
                ZSetCommand::Pop {
                    keys: vec![key()],
                    max: name == "zpopmax",
                    count,
                    shape: PopShape::Plain {
                        counted: args.len() == 2,
                    },
                    waiting: false,
                }
            }
            "zmpop" => parse_zmpop(args)?,
            "zunion" | "zinter" | "zdiff" => parse_combine(name, args, None)?,
            "zunionstore" | "zinterstore" | "zdiffstore" => {
                parse_combine(name.trim_end_matches("store"), &args[1..], Some(key()))?
            }
            "zintercard" => parse_intercard(args)?,
            "zremrangebyscore" => ZSetCommand::RemRange(
                key(),
                Range::Score(score_bound(&args[1])?, score_bound(&args[2])?),
            ),
            "zremrangebyrank" => {
                ZSetCommand::RemRange(key(), Range::Rank(int_arg(&args[1])?, int_arg(&args[2])?))
            }
            "zremrangebylex" => {
                ZSetCommand::RemRange(key(), Range::Lex(lex_bound(&args[1])?, lex_bound(&args[2])?))
            }
            "zrandmember" => parse_randmember(args)?,
            "zscan" => ZSetCommand::Scan(key(), ScanArgs::parse(&args[1..], false)?),
            // A blocking pop inside MULTI (or EXEC) pops what is there, without blocking.
            _ => match parse_blocking(name, args)? {
                Some((command, timeout)) => {
                    super::lists::parse_timeout(&timeout)?;
                    command
                }
                None => return Ok(None),
            },
        }))
    }

    /// The sorted sets the command may add members to (what blocked clients wait for).
    pub fn filled_keys(&self) -> Vec<Bytes> {
        match self {
            ZSetCommand::Add { key, .. } => vec![key.clone()],
            ZSetCommand::RangeStore { destination, .. }
            | ZSetCommand::Combine {
                store: Some(destination),
                ..
            } => vec![destination.clone()],
            _ => Vec::new(),
        }
    }

    /// The keys a blocking pop takes from, in its order.
    pub fn sources(&self) -> Vec<Bytes> {
        match self {
            ZSetCommand::Pop { keys, .. } => keys.clone(),
            _ => Vec::new(),
        }
    }

    /// The same pop, taking only from `keys` (see `ListCommand::only_sources`).
    pub fn only_sources(&self, keys: &[Bytes], waiting: bool) -> ZSetCommand {
        let mut command = self.clone();
        if let ZSetCommand::Pop {
            keys: mine,
            waiting: w,
            ..
        } = &mut command
        {
            mine.retain(|k| keys.contains(k));
            *w = waiting;
        }
        command
    }

    pub async fn exec<T: Transaction>(&self, txn: &mut T, ctx: &mut ExecContext<'_>) -> CommandResult {
        match self {
            ZSetCommand::Add { key, flags, pairs } => add(txn, ctx, key, *flags, pairs).await,
            ZSetCommand::Rem(key, members) => {
                let Some(mut meta) = zset_meta(txn, key).await? else {
                    return Ok(Reply::Integer(0));
                };
                let mut removed = 0;
                for member in members {
                    if let Some(score) = score_of(txn, key, &meta, member).await? {
                        delete_member(txn, key, &mut meta, member, score).await?;
                        removed += 1;
                    }
                }
                if removed > 0 {
                    store_meta(txn, key, meta).await?;
                }
                Ok(Reply::Integer(removed))
            }
            ZSetCommand::Score(key, member) => {
                let score = match lookup(txn, ctx, key).await? {
                    Some(meta) => score_of(txn, key, &meta, member).await?,
                    None => None,
                };
                Ok(score.map_or(Reply::Nil, Reply::Double))
            }
            ZSetCommand::MScore(key, members) => {
                let meta = lookup(txn, ctx, key).await?;
                let mut scores = Vec::with_capacity(members.len());
                for member in members {
                    let score = match &meta {
                        Some(meta) => score_of(txn, key, meta, member).await?,
                        None => None,
                    };
                    scores.push(score.map_or(Reply::Nil, Reply::Double));
                }
                Ok(Reply::Array(scores))
            }
            ZSetCommand::Card(key) => Ok(Reply::Integer(
                lookup(txn, ctx, key).await?.map_or(0, |m| m.len) as i64
            )),
            ZSetCommand::Count(key, range) => {
                let Some(meta) = lookup(txn, ctx, key).await? else {
                    return Ok(Reply::Integer(0));
                };
                let query = RangeQuery {
                    range: range.clone(),
                    rev: false,
                    limit: None,
                };
                Ok(Reply::Integer(select(txn, key, &meta, &query).await?.len() as i64))
            }
            ZSetCommand::Range {
                key,
                query,
                with_scores,
            } => {
                let found = match lookup(txn, ctx, key).await? {
                    Some(meta) => select(txn, key, &meta, query).await?,
                    None => Vec::new(),
                };
                Ok(members_reply(found, *with_scores))
            }
            ZSetCommand::RangeStore {
                destination,
                source,
                query,
            } => {
                let found = match zset_meta(txn, source).await? {
                    Some(meta) => select(txn, source, &meta, query).await?,
                    None => Vec::new(),
                };
                let stored = found.len();
                store_zset(txn, ctx, destination, found).await?;
                Ok(Reply::Integer(stored as i64))
            }
            ZSetCommand::Rank { key, member, rev } => {
                let Some(meta) = lookup(txn, ctx, key).await? else {
                    return Ok(Reply::Nil);
                };
                let Some(score) = score_of(txn, key, &meta, member).await? else {
                    return Ok(Reply::Nil);
                };
                let rank = rank_of(txn, key, &meta, member, score).await?;
                Ok(Reply::Integer(
                    if *rev { meta.len - 1 - rank } else { rank } as i64
                ))
            }
            ZSetCommand::Pop {
                keys,
                max,
                count,
                shape,
                waiting,
            } => pop(txn, keys, *max, *count, *shape, *waiting).await,
            ZSetCommand::Combine {
                op,
                keys,
                weights,
                aggregate,
                with_scores,
                store,
            } => {
                let result = combine(txn, ctx, *op, keys, weights, *aggregate).await?;
                match store {
                    Some(destination) => {
                        let stored = result.len();
                        store_zset(txn, ctx, destination, result).await?;
                        Ok(Reply::Integer(stored as i64))
                    }
                    None => Ok(members_reply(result, *with_scores)),
                }
            }
            ZSetCommand::InterCard(keys, limit) => {
                let found = combine(txn, ctx, SetOp::Inter, keys, &[], Aggregate::Sum).await?;
                let found = found.len() as u64;
                Ok(Reply::Integer(
                    if *limit > 0 { found.min(*limit) } else { found } as i64
                ))
            }
            ZSetCommand::RemRange(key, range) => {
                let Some(mut meta) = zset_meta(txn, key).await? else {
                    return Ok(Reply::Integer(0));
                };
                let query = RangeQuery {
                    range: range.clone(),
                    rev: false,
                    limit: None,
                };
                let len = meta.len as i64;
                // Whether the range reaches the bottom or the top of the set.
                let (bottom, top) = match range {
                    Range::Rank(start, stop) => {
                        (*start <= -len || *start == 0, *stop == -1 || *stop >= len - 1)
                    }
                    Range::Score(min, max) => (
                        min.value == f64::NEG_INFINITY && !min.exclusive,
                        max.value == f64::INFINITY && !max.exclusive,
                    ),
                    Range::Lex(..) => (false, false),
                };
                let doomed = select(txn, key, &meta, &query).await?;
                for (member, score) in &doomed {
                    delete_member(txn, key, &mut meta, member, *score).await?;
                }
                if bottom {
                    narrow_after(txn, key, &meta, doomed.last(), false).await?;
                } else if top {
                    narrow_after(txn, key, &meta, doomed.first(), true).await?;
                }
                if !doomed.is_empty() {
                    store_meta(txn, key, meta).await?;
                }
                Ok(Reply::Integer(doomed.len() as i64))
            }
            ZSetCommand::RandMember {
                key,
                count,
                with_scores,
            } => {
                let Some(meta) = lookup(txn, ctx, key).await? else {
                    return Ok(match count {
                        None => Reply::Nil,
                        Some(_) => Reply::Array(Vec::new()),
                    });
                };
                let all = select(txn, key, &meta, &whole()).await?;
                let Some(count) = count else {
                    let (member, _) = &all[fastrand::usize(..all.len())];
                    return Ok(Reply::Bulk(member.clone()));
                };
                let picked = if *count >= 0 {
                    let mut all = all;
                    let wanted = (*count as usize).min(all.len());
                    for i in 0..wanted {
                        let j = fastrand::usize(i..all.len());
                        all.swap(i, j);
                    }
                    all.truncate(wanted);
                    all
                } else {
                    (0..count.unsigned_abs())
                        .map(|_| all[fastrand::usize(..all.len())].clone())
                        .collect()
                };
                Ok(members_reply(picked, *with_scores))
            }
            ZSetCommand::Scan(key, args) => {
                let Some(meta) = lookup(txn, ctx, key).await? else {
                    return Ok(scan_reply(0, Vec::new()));
                };
                let prefix = zset_member_prefix(key, &meta.version);
                let (cursor, parts) = scan_parts(txn, ctx, &prefix, args).await?;
                let mut found = Vec::new();
                for (store_key, score) in parts {
                    let member = store_key.slice(prefix.len()..);
                    if args.matches(&member) {
                        found.push(Reply::Bulk(member));
                        found.push(Reply::Double(decode_score(&score)?));
                    }
                }
                Ok(scan_reply(cursor, found))
            }
        }
    }
}

/// Members, with their scores if asked.
fn members_reply(found: Vec<(Bytes, f64)>, with_scores: bool) -> Reply {
    if with_scores {
        Reply::Pairs(
            found
                .into_iter()
                .map(|(member, score)| (Reply::Bulk(member), Reply::Double(score)))
                .collect(),
        )
    } else {
        Reply::Array(found.into_iter().map(|(member, _)| Reply::Bulk(member)).collect())
    }
}

/// The meta of sorted set `key` (`None` if absent); `WRONGTYPE` if it is not a sorted set.
async fn zset_meta<T: Transaction>(txn: &mut T, key: &[u8]) -> CommandResult<Option<CollectionMeta>> {
    match read_value(txn, key).await? {
        Some(Value::ZSet(meta)) => Ok(Some(meta)),
        Some(_) => Err(CommandError::WrongType),
        None => Ok(None),
    }
}

/// [`zset_meta`] for a read command, counted as a keyspace hit or miss.
async fn lookup<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    key: &[u8],
) -> CommandResult<Option<CollectionMeta>> {
    Ok(ctx.counted(zset_meta(txn, key).await?))
}

fn new_meta<T: Transaction>(txn: &T, ctx: &mut ExecContext<'_>) -> CollectionMeta {
    CollectionMeta {
        len: 0,
        version: ctx.new_version(txn),
    }
}

/// Writes the changed meta of an existing sorted set, or deletes it if it is now empty.
async fn store_meta<T: Transaction>(txn: &mut T, key: &[u8], meta: CollectionMeta) -> CommandResult<()> {
    if meta.len == 0 {
        remove_key(txn, key).await?;
        Ok(())
    } else {
        rewrite_value(txn, key, Value::ZSet(meta)).await
    }
}

async fn score_of<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &CollectionMeta,
    member: &[u8],
) -> CommandResult<Option<f64>> {
    txn.get(&zset_member_key(key, &meta.version, member))
        .await?
        .map(|raw| decode_score(&raw))
        .transpose()
}

/// `member`'s keys at `score` in the ascending and the descending order index.
fn order_keys(key: &[u8], version: &Version, member: &[u8], score: f64) -> [Bytes; 2] {
    [false, true].map(|descending| {
        let prefix = zset_order_prefix(key, version, descending);
        zset_order_key(&prefix, score, member, descending)
    })
}

/// Writes `member`'s score and order-index entries, without the rank index; returns its
/// ascending order-index key.
fn write_member<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    version: &Version,
    member: &Bytes,
    score: f64,
) -> Bytes {
    let score = if score == 0.0 { 0.0 } else { score };
    txn.put(zset_member_key(key, version, member), encode_score(score));
    let [ascending, descending] = order_keys(key, version, member, score);
    txn.put(descending, Bytes::new());
    txn.put(ascending.clone(), Bytes::new());
    ascending
}

/// Deletes `member`'s order-index entries at `score`, without the rank index; returns its
/// ascending order-index key.
fn unindex_member<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    version: &Version,
    member: &[u8],
    score: f64,
) -> Bytes {
    let [ascending, descending] = order_keys(key, version, member, score);
    txn.delete(descending);
    txn.delete(ascending.clone());
    ascending
}

/// Gives `member` the score `score`; `old` is its current score, if it has one.
async fn put_member<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &mut CollectionMeta,
    member: &Bytes,
    score: f64,
    old: Option<f64>,
) -> CommandResult<()> {
    let rank = RankIndex::new(key, &meta.version);
    match old {
        Some(old) => {
            let old_key = unindex_member(txn, key, &meta.version, member, old);
            rank.remove(txn, rank.position(&old_key)).await?;
        }
        None => meta.len += 1,
    }
    let new_key = write_member(txn, key, &meta.version, member, score);
    rank.insert(txn, rank.position(&new_key)).await
}

/// Writes the members of a new sorted set (none of them repeated) and its rank index.
pub fn write_new_members<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &mut CollectionMeta,
    members: &[(Bytes, f64)],
) {
    let mut order_keys: Vec<Bytes> = members
        .iter()
        .map(|(member, score)| write_member(txn, key, &meta.version, member, *score))
        .collect();
    meta.len += members.len() as u64;
    order_keys.sort();
    let rank = RankIndex::new(key, &meta.version);
    let positions: Vec<Bytes> = order_keys.iter().map(|k| rank.position_of(k)).collect();
    rank.build(txn, &positions);
}

async fn delete_member<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &mut CollectionMeta,
    member: &[u8],
    score: f64,
) -> CommandResult<()> {
    txn.delete(zset_member_key(key, &meta.version, member));
    let order_key = unindex_member(txn, key, &meta.version, member, score);
    meta.len -= 1;
    let rank = RankIndex::new(key, &meta.version);
    rank.remove(txn, rank.position(&order_key)).await
}

/// Records in the rank index's live span that every member on one side of `removed`, the
/// member last removed from the bottom of the set (from the top, if `top`), is gone, so that
/// the next reads from that end start there, not at the removed members' versions.
async fn narrow_after<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &CollectionMeta,
    removed: Option<&(Bytes, f64)>,
    top: bool,
) -> CommandResult<()> {
    let Some((member, score)) = removed.filter(|_| meta.len > 0) else {
        return Ok(());
    };
    let rank = RankIndex::new(key, &meta.version);
    let order_key = zset_order_key(
        &zset_order_prefix(key, &meta.version, false),
        *score,
        member,
        false,
    );
    let position = rank.position_of(&order_key);
    if top {
        rank.narrow(txn, None, Some(&position)).await
    } else {
        rank.narrow(txn, Some(&position), None).await
    }
}

/// `ZADD`/`ZINCRBY`, as Redis's `zsetAdd` decides each member.
async fn add<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    key: &[u8],
    flags: AddFlags,
    pairs: &[(f64, Bytes)],
) -> CommandResult {
    let existing = zset_meta(txn, key).await?;
    if existing.is_none() && flags.xx {
        return Ok(if flags.incr { Reply::Nil } else { Reply::Integer(0) });
    }
    let mut meta = match existing {
        Some(meta) => meta,
        None => new_meta(txn, ctx),
    };
    let (mut added, mut changed) = (0, 0);
    let mut incr_result = None;
    for (score, member) in pairs {
        let current = score_of(txn, key, &meta, member).await?;
        let new = match current {
            Some(current) => {
                if flags.nx {
                    continue;
                }
                let new = if flags.incr { current + score } else { *score };
                if new.is_nan() {
                    return Err(CommandError::Other(
                        "resulting score is not a number (NaN)".into(),
                    ));
                }
                if (flags.lt && new >= current) || (flags.gt && new <= current) {
                    continue;
                }
                if new != current {
                    put_member(txn, key, &mut meta, member, new, Some(current)).await?;
                    changed += 1;
                }
                new
            }
            None => {
                if flags.xx {
                    continue;
                }
                put_member(txn, key, &mut meta, member, *score, None).await?;
                added += 1;
                *score
            }
        };
        incr_result = Some(new);
    }
    if added + changed > 0 {
        rewrite_value(txn, key, Value::ZSet(meta)).await?;
    }
    Ok(if flags.incr {
        incr_result.map_or(Reply::Nil, Reply::Double)
    } else if flags.ch {
        Reply::Integer(added + changed)
    } else {
        Reply::Integer(added)
    })
}

/// `ZPOPMIN`/`ZPOPMAX`/`ZMPOP` and the blocking forms' attempt: from the first non-empty key.
async fn pop<T: Transaction>(
    txn: &mut T,
    keys: &[Bytes],
    max: bool,
    count: u64,
    shape: PopShape,
    waiting: bool,
) -> CommandResult {
    for key in keys {
        let meta = match zset_meta(txn, key).await {
            Ok(Some(meta)) => meta,
            Ok(None) | Err(CommandError::WrongType) if waiting => continue,
            Ok(None) => continue,
            Err(e) => return Err(e),
        };
        if count == 0 {
            break;
        }
        let mut meta = meta;
        let stop = count.min(meta.len) - 1;
        let popped = by_rank(txn, key, &meta, 0, stop, max).await?;
        for (member, score) in &popped {
            delete_member(txn, key, &mut meta, member, *score).await?;
        }
        narrow_after(txn, key, &meta, popped.last(), max).await?;
        store_meta(txn, key, meta).await?;
        return Ok(match shape {
            PopShape::Plain { counted: false } => {
                let (member, score) = popped.into_iter().next().expect("a non-empty set");
                Reply::Array(vec![Reply::Bulk(member), Reply::Double(score)])
            }
            PopShape::Plain { counted: true } => members_reply(popped, true),
            PopShape::KeyAndPairs => Reply::Array(vec![
                Reply::Bulk(key.clone()),
                Reply::Array(
                    popped
                        .into_iter()
                        .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
                        .collect(),
                ),
            ]),
            PopShape::KeyMemberScore => {
                let (member, score) = popped.into_iter().next().expect("a non-empty set");
                Reply::Array(vec![
                    Reply::Bulk(key.clone()),
                    Reply::Bulk(member),
                    Reply::Double(score),
                ])
            }
        });
    }
    Ok(match shape {
        PopShape::Plain { .. } => Reply::Array(Vec::new()),
        PopShape::KeyAndPairs | PopShape::KeyMemberScore => Reply::NilArray,
    })
}

/// Makes `destination` a new sorted set of `members`, whatever it held; no key if there are
/// none. It gets no timeout.
async fn store_zset<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    destination: &[u8],
    members: Vec<(Bytes, f64)>,
) -> CommandResult<()> {
    remove_key(txn, destination).await?;
    if members.is_empty() {
        return Ok(());
    }
    let mut meta = new_meta(txn, ctx);
    write_new_members(txn, destination, &mut meta, &members);
    write_entry(txn, destination, &Entry::new(Value::ZSet(meta), None), None);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::test_txn::MapTxn;
    use super::*;
    use crate::resp::scan_cursors::ScanCursors;

    const KEY: &str = "queue";

    /// Runs one command (`ZSetCommand`s only) and answers its reply and how many stored
    /// entries its scans passed.
    async fn run(txn: &mut MapTxn, line: &str) -> (Reply, usize) {
        let mut words = line.split(' ').map(|w| Bytes::copy_from_slice(w.as_bytes()));
        let name = String::from_utf8(words.next().unwrap().to_vec()).unwrap();
        let args: Vec<Bytes> = words.collect();
        let command = ZSetCommand::parse(&name, &args).unwrap().unwrap();
        let cursors = ScanCursors::default();
        let mut ctx = ExecContext {
            max_string_bytes: 1 << 20,
            cursors: &cursors,
            hits: 0,
            misses: 0,
            incarnations: 0,
        };
        txn.examined = 0;
        let reply = command.exec(txn, &mut ctx).await.unwrap();
        (reply, txn.examined)
    }

    /// A sorted set of members `m0..m{n}` with scores `0..n`.
    async fn queue(txn: &mut MapTxn, n: u64) {
        let mut line = format!("zadd {KEY}");
        for i in 0..n {
            line += &format!(" {i} m{i}");
        }
        run(txn, &line).await;
    }

    /// `ZPOPMIN`/`ZPOPMAX` of one member: its name, and the stored entries passed.
    async fn pop_one(txn: &mut MapTxn, max: bool) -> (String, usize) {
        let line = format!("{} {KEY}", if max { "zpopmax" } else { "zpopmin" });
        match run(txn, &line).await {
            (Reply::Array(pair), examined) => match &pair[..] {
                [Reply::Bulk(member), Reply::Double(_)] => {
                    (String::from_utf8(member.to_vec()).unwrap(), examined)
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn pops_start_past_the_members_popped_before() {
        // Popped members' versions stay until garbage collection: each pop must not read
        // them all again (it did: the thousandth pop passed a thousand deleted entries).
        let mut txn = MapTxn::default();
        queue(&mut txn, 3_000).await;
        let mut most = 0;
        for i in 0..1_000 {
            let (low, low_examined) = pop_one(&mut txn, false).await;
            let (high, high_examined) = pop_one(&mut txn, true).await;
            assert_eq!((low, high), (format!("m{i}"), format!("m{}", 2_999 - i)));
            most = most.max(low_examined).max(high_examined);
        }
        assert!(most < 50, "a pop passed {most} stored entries");
        // Members added below and above what was popped are found again.
        run(&mut txn, &format!("zadd {KEY} -1 low 5000 high")).await;
        assert_eq!(pop_one(&mut txn, false).await.0, "low");
        assert_eq!(pop_one(&mut txn, true).await.0, "high");
        assert_eq!(pop_one(&mut txn, false).await.0, "m1000");
        assert_eq!(pop_one(&mut txn, true).await.0, "m1999");
        assert_eq!(
            run(&mut txn, &format!("zrank {KEY} m1500")).await.0,
            Reply::Integer(499)
        );
        assert_eq!(
            run(&mut txn, &format!("zrevrank {KEY} m1500")).await.0,
            Reply::Integer(498)
        );
    }

    #[tokio::test]
    async fn removing_a_range_from_an_end_moves_reads_past_it() {
        // A sliding window: old entries go by score from the bottom, new ones come on top.
        let mut txn = MapTxn::default();
        queue(&mut txn, 100).await;
        let mut most = 0;
        for i in 100..1_100u64 {
            run(&mut txn, &format!("zadd {KEY} {i} m{i}")).await;
            let line = format!("zremrangebyscore {KEY} -inf {}", i - 100);
            let (removed, examined) = run(&mut txn, &line).await;
            assert_eq!(removed, Reply::Integer(1));
            let (first, examined_range) =
                run(&mut txn, &format!("zrangebyscore {KEY} -inf +inf limit 0 1")).await;
            assert_eq!(
                first,
                Reply::Array(vec![Reply::Bulk(Bytes::from(format!("m{}", i - 99)))])
            );
            most = most.max(examined).max(examined_range);
        }
        // And by rank from the top.
        for i in (1_050..1_100u64).rev() {
            let (removed, examined) = run(&mut txn, &format!("zremrangebyrank {KEY} -1 -1")).await;
            assert_eq!(removed, Reply::Integer(1));
            let (last, _) = run(&mut txn, &format!("zrange {KEY} -1 -1")).await;
            assert_eq!(
                last,
                Reply::Array(vec![Reply::Bulk(Bytes::from(format!("m{}", i - 1)))])
            );
            most = most.max(examined);
        }
        // The window's 100 members may be read ahead; the 1,000 removed ones must not be.
        assert!(most < 150, "a command passed {most} stored entries");
        assert_eq!(run(&mut txn, &format!("zcard {KEY}")).await.0, Reply::Integer(50));
    }
}
