//! Sorted set commands: `ZADD ZINCRBY ZREM ZSCORE ZMSCORE ZCARD ZCOUNT ZLEXCOUNT ZRANGE
//! ZRANGEBYSCORE ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZREVRANGE ZRANGESTORE ZRANK ZREVRANK
//! ZPOPMIN ZPOPMAX ZMPOP BZPOPMIN BZPOPMAX BZMPOP ZUNION ZINTER ZDIFF ZUNIONSTORE ZINTERSTORE
//! ZDIFFSTORE ZINTERCARD ZREMRANGEBYSCORE ZREMRANGEBYRANK ZREMRANGEBYLEX ZRANDMEMBER ZSCAN`.
//!
//! A sorted set is a meta entry holding its member count, plus for each member its score under
//! the member and an entry in each of two order indexes, by (score, member) ascending and
//! descending (see `keyspace`). So a score lookup is one read, an add or a score change a few
//! writes, a range by score one seek and a read of what it returns, from either end, and a
//! range by rank a read from the nearer end of the set. Ranks in the middle of a large set
//! cost a walk to them (Redis's skiplist finds them in O(log N)): there is no order statistics
//! index yet. Lex ranges read the member entries, which are in member order: that is the
//! order Redis defines lex ranges by, for members of equal score.
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
    CollectionMeta, Entry, Value, Version, decode_score, encode_score, parse_zset_order_key, prefix_end,
    read_value, remove_key, rewrite_value, score_order, write_entry, zset_member_key, zset_member_prefix,
    zset_order_key, zset_order_prefix,
};
use crate::resp::reply::Reply;

/// Index entries read per store round trip when walking a range of unknown length.
const WALK_CHUNK: usize = 256;

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
                        delete_member(txn, key, &mut meta, member, score);
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
                let doomed = select(txn, key, &meta, &query).await?;
                for (member, score) in &doomed {
                    delete_member(txn, key, &mut meta, member, *score);
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

/// A score argument (`ZADD`, `ZINCRBY`): a float, `inf`, `-inf`, never NaN.
fn score_arg(arg: &[u8]) -> CommandResult<f64> {
    parse_score(arg).ok_or(CommandError::NotFloat)
}

/// Scores as Redis's `strtod` reads them: also `+inf` and `+5`.
fn parse_score(arg: &[u8]) -> Option<f64> {
    match arg.strip_prefix(b"+") {
        Some(rest) if !rest.starts_with(b"-") && !rest.starts_with(b"+") => parse_f64(rest),
        _ => parse_f64(arg),
    }
}

fn score_bound(arg: &[u8]) -> CommandResult<ScoreBound> {
    let (text, exclusive) = match arg.strip_prefix(b"(") {
        Some(rest) => (rest, true),
        None => (arg, false),
    };
    let value = parse_score(text).ok_or_else(|| CommandError::Other("min or max is not a float".into()))?;
    Ok(ScoreBound { value, exclusive })
}

fn lex_bound(arg: &Bytes) -> CommandResult<LexBound> {
    match arg.first() {
        Some(b'-') if arg.len() == 1 => Ok(LexBound::Min),
        Some(b'+') if arg.len() == 1 => Ok(LexBound::Max),
        Some(b'[') => Ok(LexBound::Inclusive(arg.slice(1..))),
        Some(b'(') => Ok(LexBound::Exclusive(arg.slice(1..))),
        _ => Err(CommandError::Other(
            "min or max not valid string range item".into(),
        )),
    }
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`.
fn parse_zadd(args: &[Bytes]) -> CommandResult<ZSetCommand> {
    let mut flags = AddFlags::default();
    let mut at = 1;
    while let Some(arg) = args.get(at) {
        let flag = match arg.to_ascii_uppercase().as_slice() {
            b"NX" => &mut flags.nx,
            b"XX" => &mut flags.xx,
            b"GT" => &mut flags.gt,
            b"LT" => &mut flags.lt,
            b"CH" => &mut flags.ch,
            b"INCR" => &mut flags.incr,
            _ => break,
        };
        *flag = true;
        at += 1;
    }
    let rest = &args[at..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CommandError::Syntax);
    }
    if flags.nx && flags.xx {
        return Err(CommandError::Other(
            "XX and NX options at the same time are not compatible".into(),
        ));
    }
    if (flags.gt && flags.lt) || ((flags.gt || flags.lt) && flags.nx) {
        return Err(CommandError::Other(
            "GT, LT, and/or NX options at the same time are not compatible".into(),
        ));
    }
    if flags.incr && rest.len() > 2 {
        return Err(CommandError::Other(
            "INCR option supports a single increment-element pair".into(),
        ));
    }
    // Every score is checked before anything is written.
    let pairs = rest
        .chunks(2)
        .map(|pair| Ok((score_arg(&pair[0])?, pair[1].clone())))
        .collect::<CommandResult<Vec<_>>>()?;
    Ok(ZSetCommand::Add {
        key: args[0].clone(),
        flags,
        pairs,
    })
}

/// The range arguments after the key: `ZRANGE`'s `start stop [BYSCORE|BYLEX] [REV] [LIMIT
/// offset count] [WITHSCORES]` (`legacy: None`), or the older commands' forms; and whether
/// scores are wanted. `ZRANGESTORE` takes no `WITHSCORES` (`scores_allowed`).
fn parse_zrange(
    args: &[Bytes],
    legacy: Option<&str>,
    scores_allowed: bool,
) -> CommandResult<(RangeQuery, bool)> {
    #[derive(PartialEq)]
    enum By {
        Rank,
        Score,
        Lex,
    }
    let (mut by, mut rev) = match legacy {
        None => (By::Rank, false),
        Some("zrevrange") => (By::Rank, true),
        Some("zrangebyscore") => (By::Score, false),
        Some("zrevrangebyscore") => (By::Score, true),
        Some("zrangebylex") => (By::Lex, false),
        _ => (By::Lex, true),
    };
    let (mut limit, mut with_scores) = (None, false);
    let mut reader = ArgReader::new(&args[2..]);
    while let Some(option) = reader.next() {
        if is_keyword(option, "WITHSCORES") && scores_allowed && !(legacy.is_some() && by == By::Lex) {
            with_scores = true;
        } else if is_keyword(option, "LIMIT") && legacy != Some("zrevrange") {
            let offset = int_arg(reader.value()?)?;
            let count = int_arg(reader.value()?)?;
            limit = Some((offset, count));
        } else if legacy.is_none() && is_keyword(option, "BYSCORE") {
            by = By::Score;
        } else if legacy.is_none() && is_keyword(option, "BYLEX") {
            by = By::Lex;
        } else if legacy.is_none() && is_keyword(option, "REV") {
            rev = true;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if limit.is_some() && by == By::Rank {
        return Err(CommandError::Other(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX".into(),
        ));
    }
    if with_scores && by == By::Lex {
        return Err(CommandError::Other(
            "syntax error, WITHSCORES not supported in combination with BYLEX".into(),
        ));
    }
    // The reverse forms take the bounds high first.
    let (low, high) = if rev && by != By::Rank {
        (&args[1], &args[0])
    } else {
        (&args[0], &args[1])
    };
    let range = match by {
        By::Rank => Range::Rank(int_arg(low)?, int_arg(high)?),
        By::Score => Range::Score(score_bound(low)?, score_bound(high)?),
        By::Lex => Range::Lex(lex_bound(low)?, lex_bound(high)?),
    };
    Ok((RangeQuery { range, rev, limit }, with_scores))
}

/// `numkeys key...`, the keys checked against the arguments there are. Redis words a bad
/// `numkeys` two ways: `ZUNION` and its kin name the command (`command`), the pops do not.
fn numkeys_and_keys<'a>(
    args: &'a [Bytes],
    command: Option<&str>,
) -> CommandResult<(Vec<Bytes>, &'a [Bytes])> {
    let Some(numkeys) = parse_i64(&args[0]).filter(|n| *n > 0) else {
        return Err(match (command, parse_i64(&args[0])) {
            (Some(name), Some(_)) => {
                CommandError::Other(format!("at least 1 input key is needed for '{name}' command"))
            }
            (Some(_), None) => CommandError::NotInteger,
            (None, _) => CommandError::Other("numkeys should be greater than 0".into()),
        });
    };
    let numkeys = numkeys as u64;
    if numkeys > (args.len() - 1) as u64 {
        return Err(CommandError::Other(
            "Number of keys can't be greater than number of args".into(),
        ));
    }
    let n = numkeys as usize;
    Ok((args[1..=n].to_vec(), &args[1 + n..]))
}

/// `ZMPOP numkeys key... MIN|MAX [COUNT count]`.
pub fn parse_zmpop(args: &[Bytes]) -> CommandResult<ZSetCommand> {
    let (keys, rest) = numkeys_and_keys(args, None)?;
    let mut reader = ArgReader::new(rest);
    let max = match reader.next() {
        Some(end) if is_keyword(end, "MIN") => false,
        Some(end) if is_keyword(end, "MAX") => true,
        _ => return Err(CommandError::Syntax),
    };
    let mut count = None;
    while let Some(option) = reader.next() {
        if is_keyword(option, "COUNT") && count.is_none() {
            let n = parse_i64(reader.value()?)
                .filter(|n| *n > 0)
                .ok_or_else(|| CommandError::Other("count should be greater than 0".into()))?;
            count = Some(n as u64);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(ZSetCommand::Pop {
        keys,
        max,
        count: count.unwrap_or(1),
        shape: PopShape::KeyAndPairs,
        waiting: false,
    })
}

/// `BZPOPMIN`/`BZPOPMAX key... timeout` and `BZMPOP timeout numkeys key... MIN|MAX [COUNT
/// count]`: the pop and its timeout argument.
pub fn parse_blocking(name: &str, args: &[Bytes]) -> CommandResult<Option<(ZSetCommand, Bytes)>> {
    Ok(Some(match name {
        "bzpopmin" | "bzpopmax" => {
            let (keys, timeout) = args.split_at(args.len() - 1);
            let command = ZSetCommand::Pop {
                keys: keys.to_vec(),
                max: name == "bzpopmax",
                count: 1,
                shape: PopShape::KeyMemberScore,
                waiting: false,
            };
            (command, timeout[0].clone())
        }
        "bzmpop" => (parse_zmpop(&args[1..])?, args[0].clone()),
        _ => return Ok(None),
    }))
}

/// `ZUNION|ZINTER|ZDIFF numkeys key... [WEIGHTS weight...] [AGGREGATE SUM|MIN|MAX]
/// [WITHSCORES]`, and the `STORE` forms (no `WITHSCORES`); `ZDIFF` takes neither `WEIGHTS` nor
/// `AGGREGATE`.
fn parse_combine(name: &str, args: &[Bytes], store: Option<Bytes>) -> CommandResult<ZSetCommand> {
    let op = match name {
        "zunion" => SetOp::Union,
        "zinter" => SetOp::Inter,
        _ => SetOp::Diff,
    };
    let command = format!("{name}{}", if store.is_some() { "store" } else { "" });
    let (keys, rest) = numkeys_and_keys(args, Some(&command))?;
    let mut weights = Vec::new();
    let mut aggregate = Aggregate::Sum;
    let mut with_scores = false;
    let mut at = 0;
    while at < rest.len() {
        let option = &rest[at];
        at += 1;
        if op != SetOp::Diff && is_keyword(option, "WEIGHTS") {
            if rest.len() - at < keys.len() {
                return Err(CommandError::Syntax);
            }
            weights = rest[at..at + keys.len()]
                .iter()
                .map(|w| {
                    parse_score(w).ok_or_else(|| CommandError::Other("weight value is not a float".into()))
                })
                .collect::<CommandResult<Vec<_>>>()?;
            at += keys.len();
        } else if op != SetOp::Diff && is_keyword(option, "AGGREGATE") {
            let Some(how) = rest.get(at) else {
                return Err(CommandError::Syntax);
            };
            at += 1;
            aggregate = if is_keyword(how, "SUM") {
                Aggregate::Sum
            } else if is_keyword(how, "MIN") {
                Aggregate::Min
            } else if is_keyword(how, "MAX") {
                Aggregate::Max
            } else {
                return Err(CommandError::Syntax);
            };
        } else if store.is_none() && is_keyword(option, "WITHSCORES") {
            with_scores = true;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(ZSetCommand::Combine {
        op,
        keys,
        weights,
        aggregate,
        with_scores,
        store,
    })
}

/// `ZINTERCARD numkeys key... [LIMIT limit]`.
fn parse_intercard(args: &[Bytes]) -> CommandResult<ZSetCommand> {
    let (keys, rest) = numkeys_and_keys(args, Some("zintercard"))?;
    let mut limit = 0;
    let mut reader = ArgReader::new(rest);
    while let Some(option) = reader.next() {
        if !is_keyword(option, "LIMIT") {
            return Err(CommandError::Syntax);
        }
        limit = parse_i64(reader.value()?)
            .filter(|n| *n >= 0)
            .ok_or_else(|| CommandError::Other("LIMIT can't be negative".into()))? as u64;
    }
    Ok(ZSetCommand::InterCard(keys, limit))
}

/// `ZRANDMEMBER key [count [WITHSCORES]]`.
fn parse_randmember(args: &[Bytes]) -> CommandResult<ZSetCommand> {
    let count = match args.get(1) {
        None => None,
        Some(count) => {
            let count = int_arg(count)?;
            if count == i64::MIN {
                return Err(CommandError::Other("value is out of range".into()));
            }
            Some(count)
        }
    };
    let with_scores = match args.get(2) {
        None => false,
        Some(arg) if is_keyword(arg, "WITHSCORES") && args.len() == 3 => true,
        Some(_) => return Err(CommandError::Syntax),
    };
    // Redis's own bound (the reply has twice as many entries), then ours (see `sets`).
    if let Some(count) = count
        && count < 0
    {
        if with_scores && count.unsigned_abs() > (i64::MAX / 2) as u64 {
            return Err(CommandError::Other("value is out of range".into()));
        }
        check_repeats(count.unsigned_abs())?;
    }
    Ok(ZSetCommand::RandMember {
        key: args[0].clone(),
        count,
        with_scores,
    })
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
    ctx.incarnations += 1;
    CollectionMeta {
        len: 0,
        version: Version {
            created_at: txn.start_ts(),
            seq: ctx.incarnations,
        },
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

/// Gives `member` the score `score`; `old` is its current score, if it has one.
fn put_member<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &mut CollectionMeta,
    member: &Bytes,
    score: f64,
    old: Option<f64>,
) {
    let score = if score == 0.0 { 0.0 } else { score };
    match old {
        Some(old) => {
            for descending in [false, true] {
                let prefix = zset_order_prefix(key, &meta.version, descending);
                txn.delete(zset_order_key(&prefix, old, member, descending));
            }
        }
        None => meta.len += 1,
    }
    txn.put(zset_member_key(key, &meta.version, member), encode_score(score));
    for descending in [false, true] {
        let prefix = zset_order_prefix(key, &meta.version, descending);
        txn.put(zset_order_key(&prefix, score, member, descending), Bytes::new());
    }
}

fn delete_member<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &mut CollectionMeta,
    member: &[u8],
    score: f64,
) {
    txn.delete(zset_member_key(key, &meta.version, member));
    for descending in [false, true] {
        let prefix = zset_order_prefix(key, &meta.version, descending);
        txn.delete(zset_order_key(&prefix, score, member, descending));
    }
    meta.len -= 1;
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
                    put_member(txn, key, &mut meta, member, new, Some(current));
                    changed += 1;
                }
                new
            }
            None => {
                if flags.xx {
                    continue;
                }
                put_member(txn, key, &mut meta, member, *score, None);
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

fn whole() -> RangeQuery {
    RangeQuery {
        range: Range::Rank(0, -1),
        rev: false,
        limit: None,
    }
}

/// The (member, score) pairs `query` selects, in its order.
async fn select<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &CollectionMeta,
    query: &RangeQuery,
) -> CommandResult<Vec<(Bytes, f64)>> {
    let (offset, count) = match query.limit {
        None => (0, None),
        Some((offset, _)) if offset < 0 => return Ok(Vec::new()),
        Some((offset, count)) => (offset as usize, (count >= 0).then_some(count as usize)),
    };
    match &query.range {
        Range::Rank(start, stop) => {
            let len = meta.len as i64;
            let start = if *start < 0 { (len + start).max(0) } else { *start };
            let stop = if *stop < 0 {
                len + stop
            } else {
                (*stop).min(len - 1)
            };
            if start > stop || start >= len {
                return Ok(Vec::new());
            }
            by_rank(txn, key, meta, start as u64, stop as u64, query.rev).await
        }
        Range::Score(min, max) => {
            let (from, to) = if query.rev { (max, min) } else { (min, max) };
            if min.value > max.value || (min.value == max.value && (min.exclusive || max.exclusive)) {
                return Ok(Vec::new());
            }
            let prefix = zset_order_prefix(key, &meta.version, query.rev);
            let mut order = score_order(from.value);
            if query.rev {
                order = !order;
            }
            if from.exclusive {
                order = match order.checked_add(1) {
                    Some(next) => next,
                    None => return Ok(Vec::new()),
                };
            }
            let mut seek = prefix.clone();
            seek.extend_from_slice(&order.to_be_bytes());
            let past_end = |score: f64| match (query.rev, to.exclusive) {
                (false, false) => score > to.value,
                (false, true) => score >= to.value,
                (true, false) => score < to.value,
                (true, true) => score <= to.value,
            };
            let hint = count.map_or(WALK_CHUNK, |c| offset + c + 1);
            let mut found = Vec::new();
            let mut skipped = 0;
            walk_order(txn, &prefix, query.rev, seek, hint, |score, member| {
                if past_end(score) || count.is_some_and(|c| found.len() >= c) {
                    return false;
                }
                if skipped < offset {
                    skipped += 1;
                } else {
                    found.push((member, score));
                }
                true
            })
            .await?;
            Ok(found)
        }
        Range::Lex(min, max) => {
            let mut found = by_lex(txn, key, meta, min, max).await?;
            if query.rev {
                found.reverse();
            }
            Ok(found
                .into_iter()
                .skip(offset)
                .take(count.unwrap_or(usize::MAX))
                .collect())
        }
    }
}

/// Ranks `start..=stop` (valid, ascending; from the top when `rev`), read from the nearer end.
async fn by_rank<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &CollectionMeta,
    start: u64,
    stop: u64,
    rev: bool,
) -> CommandResult<Vec<(Bytes, f64)>> {
    let wanted = (stop - start + 1) as usize;
    // From this end: `stop + 1` entries read; from the other: `len - start`.
    let (descending, skip, flip) = if stop < meta.len - start {
        (rev, start, false)
    } else {
        (!rev, meta.len - 1 - stop, true)
    };
    let prefix = zset_order_prefix(key, &meta.version, descending);
    let mut found = Vec::with_capacity(wanted);
    let mut skipped = 0;
    let seek = prefix.clone();
    walk_order(
        txn,
        &prefix,
        descending,
        seek,
        skip as usize + wanted,
        |score, member| {
            if skipped < skip {
                skipped += 1;
                return true;
            }
            found.push((member, score));
            found.len() < wanted
        },
    )
    .await?;
    if flip {
        found.reverse();
    }
    Ok(found)
}

/// Members in `[min, max]` by member order, with their scores.
async fn by_lex<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &CollectionMeta,
    min: &LexBound,
    max: &LexBound,
) -> CommandResult<Vec<(Bytes, f64)>> {
    let prefix = zset_member_prefix(key, &meta.version);
    let mut start = prefix.clone();
    match min {
        LexBound::Max => return Ok(Vec::new()),
        LexBound::Min => {}
        LexBound::Inclusive(m) => start.extend_from_slice(m),
        LexBound::Exclusive(m) => {
            start.extend_from_slice(m);
            start.push(0);
        }
    }
    let mut end = prefix.clone();
    match max {
        LexBound::Min => return Ok(Vec::new()),
        LexBound::Max => end = prefix_end(&prefix).unwrap_or_default(),
        LexBound::Inclusive(m) => {
            end.extend_from_slice(m);
            end.push(0);
        }
        LexBound::Exclusive(m) => end.extend_from_slice(m),
    }
    if end.is_empty() || start >= end {
        return Ok(Vec::new());
    }
    let entries = txn.scan(&start, Some(&end), usize::MAX).await?;
    entries
        .into_iter()
        .map(|(store_key, raw)| Ok((store_key.slice(prefix.len()..), decode_score(&raw)?)))
        .collect()
}

/// Calls `visit` with the (score, member) of each order-index entry under `prefix` from `seek`
/// on, in index order, until it answers `false` or the index ends. `hint`: how many entries the
/// caller expects to need, the size of the first read.
async fn walk_order<T: Transaction>(
    txn: &mut T,
    prefix: &[u8],
    descending: bool,
    seek: Vec<u8>,
    hint: usize,
    mut visit: impl FnMut(f64, Bytes) -> bool,
) -> CommandResult<()> {
    let end = prefix_end(prefix);
    let mut start = seek;
    let mut chunk_size = hint.clamp(1, 4 * WALK_CHUNK);
    loop {
        let chunk = txn.scan(&start, end.as_deref(), chunk_size).await?;
        let done = chunk.len() < chunk_size;
        if let Some((last, _)) = chunk.last() {
            start = last.to_vec();
            start.push(0);
        }
        for (store_key, _) in chunk {
            let (score, member) = parse_zset_order_key(prefix, &store_key, descending)?;
            if !visit(score, member) {
                return Ok(());
            }
        }
        if done {
            return Ok(());
        }
        chunk_size = WALK_CHUNK * 4;
    }
}

/// The 0-based ascending rank of `member` (score `score`): the entries before it, counted from
/// both ends at once so that the walk stops at the nearer one.
async fn rank_of<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &CollectionMeta,
    member: &[u8],
    score: f64,
) -> CommandResult<u64> {
    let mut before = [0u64; 2];
    let mut from: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut targets: [Bytes; 2] = [Bytes::new(), Bytes::new()];
    for (side, descending) in [false, true].into_iter().enumerate() {
        let prefix = zset_order_prefix(key, &meta.version, descending);
        targets[side] = zset_order_key(&prefix, score, member, descending);
        from[side] = prefix;
    }
    loop {
        for side in 0..2 {
            let chunk = txn.scan(&from[side], Some(&targets[side]), WALK_CHUNK).await?;
            before[side] += chunk.len() as u64;
            if chunk.len() < WALK_CHUNK {
                return Ok(if side == 0 {
                    before[0]
                } else {
                    meta.len - 1 - before[1]
                });
            }
            let (last, _) = chunk.last().expect("a full chunk");
            from[side] = last.to_vec();
            from[side].push(0);
        }
    }
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
            delete_member(txn, key, &mut meta, member, *score);
        }
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

/// The members of the sorted set or set at `key` with their scores (a set's score 1); `None`
/// if absent; `WRONGTYPE` for another type.
async fn scored_members<T: Transaction>(txn: &mut T, key: &[u8]) -> CommandResult<Option<Vec<(Bytes, f64)>>> {
    match read_value(txn, key).await? {
        Some(Value::ZSet(meta)) => Ok(Some(select(txn, key, &meta, &whole()).await?)),
        Some(Value::Set(meta)) => Ok(Some(
            set_members(txn, key, &meta)
                .await?
                .into_iter()
                .map(|member| (member, 1.0))
                .collect(),
        )),
        Some(_) => Err(CommandError::WrongType),
        None => Ok(None),
    }
}

/// `ZUNION`/`ZINTER`/`ZDIFF` over `keys`, sorted by (score, member).
async fn combine<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    op: SetOp,
    keys: &[Bytes],
    weights: &[f64],
    aggregate: Aggregate,
) -> CommandResult<Vec<(Bytes, f64)>> {
    let mut inputs = Vec::with_capacity(keys.len());
    for key in keys {
        inputs.push(ctx.counted(scored_members(txn, key).await?).unwrap_or_default());
    }
    let weight = |i: usize| weights.get(i).copied().unwrap_or(1.0);
    let weighted = |score: f64, w: f64| {
        let product = score * w;
        // inf * 0 is 0 here, as in Redis, not NaN.
        if product.is_nan() { 0.0 } else { product }
    };
    let fold = |a: f64, b: f64| match aggregate {
        Aggregate::Sum => {
            let sum = a + b;
            if sum.is_nan() { 0.0 } else { sum }
        }
        Aggregate::Min => a.min(b),
        Aggregate::Max => a.max(b),
    };
    let mut result: Vec<(Bytes, f64)> = match op {
        SetOp::Union => {
            let mut scores: HashMap<Bytes, f64> = HashMap::new();
            let mut order = Vec::new();
            for (i, input) in inputs.into_iter().enumerate() {
                for (member, score) in input {
                    let score = weighted(score, weight(i));
                    match scores.get_mut(&member) {
                        Some(total) => *total = fold(*total, score),
                        None => {
                            order.push(member.clone());
                            scores.insert(member, score);
                        }
                    }
                }
            }
            order
                .into_iter()
                .map(|m| {
                    let s = scores[&m];
                    (m, s)
                })
                .collect()
        }
        SetOp::Inter => {
            let mut inputs: Vec<(usize, Vec<(Bytes, f64)>)> = inputs.into_iter().enumerate().collect();
            inputs.sort_by_key(|(_, input)| input.len());
            let lookups: Vec<(usize, HashMap<Bytes, f64>)> = inputs[1..]
                .iter()
                .map(|(i, input)| (*i, input.iter().cloned().collect()))
                .collect();
            let (first, smallest) = &inputs[0];
            smallest
                .iter()
                .filter_map(|(member, score)| {
                    let mut total = weighted(*score, weight(*first));
                    for (i, other) in &lookups {
                        total = fold(total, weighted(*other.get(member)?, weight(*i)));
                    }
                    Some((member.clone(), total))
                })
                .collect()
        }
        SetOp::Diff => {
            let mut inputs = inputs.into_iter();
            let first = inputs.next().unwrap_or_default();
            let removed: HashSet<Bytes> = inputs.flatten().map(|(member, _)| member).collect();
            first
                .into_iter()
                .filter(|(member, _)| !removed.contains(member))
                .collect()
        }
    };
    result.sort_by(|(ma, sa), (mb, sb)| sa.total_cmp(sb).then_with(|| ma.cmp(mb)));
    Ok(result)
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
    for (member, score) in &members {
        put_member(txn, destination, &mut meta, member, *score, None);
    }
    write_entry(txn, destination, &Entry::new(Value::ZSet(meta), None), None);
    Ok(())
}
