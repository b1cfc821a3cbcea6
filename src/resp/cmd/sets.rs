//! Set commands: `SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD SPOP SRANDMEMBER SMOVE SINTER
//! SINTERCARD SUNION SDIFF SINTERSTORE SUNIONSTORE SDIFFSTORE SSCAN`.
//!
//! A set is a meta entry holding its member count plus one store entry per member, ordered by
//! the member's hash (see `keyspace`), so adding, removing or testing a member touches two
//! entries however large the set. A command that changes a set rewrites its meta entry (which
//! is what `WATCH` watches); one that changes nothing leaves it alone, as Redis signals no
//! change then.
//!
//! **Random members.** `SPOP` and `SRANDMEMBER` read every member of a set of up to
//! [`EXACT_SAMPLE_MAX`] members and pick uniformly, as Redis does. A larger set is sampled by
//! seeking to a random hash and taking the member found there: one seek per pick instead of a
//! read of the whole set. Member hashes are uniformly spread, so a member's chance is the gap
//! between its hash and the previous one: every member can be picked, whatever the members
//! look like, but the chances are not exactly equal.
//!
//! Reading a small set whole passes over the members removed from it lately too, whose
//! versions garbage collection keeps for its life time (ten minutes by default): a set that
//! held 40,000 members and was popped down to a few hundred would cost tens of thousands of
//! keys per `SPOP`. So the whole read stops after twice as many stored keys as the set has
//! members (plus [`EXACT_SAMPLE_SLACK`]), and such a set is sampled as a large one is, at a
//! cost of about one removed member per member for each pick.

use std::collections::HashSet;

use bytes::Bytes;

use super::ExecContext;
use super::keys::{ScanArgs, scan_parts};
use crate::percolator::{ScanLimits, Transaction};
use crate::resp::args::{ArgReader, int_arg, is_keyword, parse_i64};
use crate::resp::error::{CommandError, CommandResult};
use crate::resp::keyspace::{
    CollectionMeta, Entry, Value, prefix_end, read_value, remove_key, rewrite_value, set_member,
    set_member_key, set_member_prefix, write_entry,
};
use crate::resp::reply::Reply;

/// Sets up to this size are sampled exactly (see the module docs).
pub const EXACT_SAMPLE_MAX: u64 = 1_024;
/// An exact sample looks at no more than twice as many stored keys (members, and removed
/// members not yet collected) as the set has members, plus this many; past that, it samples
/// as a large set's does.
pub const EXACT_SAMPLE_SLACK: usize = 64;
/// The most members `SRANDMEMBER`/`ZRANDMEMBER` pick with repeats (a negative count). Redis has
/// no bound and tries to build any reply; this one keeps a reply within a few hundred MiB.
pub const MAX_REPEATED_PICKS: u64 = 1 << 22;

/// Refuses a count of picks with repeats above [`MAX_REPEATED_PICKS`].
pub fn check_repeats(count: u64) -> CommandResult<()> {
    if count > MAX_REPEATED_PICKS {
        return Err(CommandError::Other(format!(
            "value is out of range, at most {MAX_REPEATED_PICKS} members with repeats"
        )));
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algebra {
    Inter,
    Union,
    Diff,
}

pub enum SetCommand {
    Add(Bytes, Vec<Bytes>),
    Rem(Bytes, Vec<Bytes>),
    Members(Bytes),
    IsMember(Bytes, Bytes),
    MIsMember(Bytes, Vec<Bytes>),
    Card(Bytes),
    /// `SPOP key [count]`: `None` answers one member (or nil), a count an array.
    Pop(Bytes, Option<u64>),
    /// `SRANDMEMBER key [count]`: a negative count may repeat members.
    RandMember(Bytes, Option<i64>),
    Move {
        source: Bytes,
        destination: Bytes,
        member: Bytes,
    },
    /// `SINTER`/`SUNION`/`SDIFF`, with `STORE`'s destination if any.
    Combine {
        op: Algebra,
        keys: Vec<Bytes>,
        store: Option<Bytes>,
    },
    /// `SINTERCARD numkeys key... [LIMIT limit]` (`0`: no limit).
    InterCard(Vec<Bytes>, u64),
    Scan(Bytes, ScanArgs),
}

impl SetCommand {
    pub fn parse(name: &str, args: &[Bytes]) -> CommandResult<Option<SetCommand>> {
        let key = || args[0].clone();
        Ok(Some(match name {
            "sadd" => SetCommand::Add(key(), args[1..].to_vec()),
            "srem" => SetCommand::Rem(key(), args[1..].to_vec()),
            "smembers" => SetCommand::Members(key()),
            "sismember" => SetCommand::IsMember(key(), args[1].clone()),
            "smismember" => SetCommand::MIsMember(key(), args[1..].to_vec()),
            "scard" => SetCommand::Card(key()),
            "spop" => match args.get(1) {
                None => SetCommand::Pop(key(), None),
                Some(_) if args.len() > 2 => return Err(CommandError::Syntax),
                Some(count) => {
                    let count = int_arg(count)?;
                    if count < 0 {
                        return Err(CommandError::Other(
                            "value is out of range, must be positive".into(),
                        ));
                    }
                    SetCommand::Pop(key(), Some(count as u64))
                }
            },
            "srandmember" => match args.get(1) {
                None => SetCommand::RandMember(key(), None),
                Some(_) if args.len() > 2 => return Err(CommandError::Syntax),
                Some(count) => {
                    let count = int_arg(count)?;
                    // Redis takes counts in [-LONG_MAX, LONG_MAX]: its absolute value must fit.
                    if count == i64::MIN {
                        return Err(CommandError::Other("value is out of range".into()));
                    }
                    if count < 0 {
                        check_repeats(count.unsigned_abs())?;
                    }
                    SetCommand::RandMember(key(), Some(count))
                }
            },
            "smove" => SetCommand::Move {
                source: key(),
                destination: args[1].clone(),
                member: args[2].clone(),
            },
            "sinter" | "sunion" | "sdiff" => SetCommand::Combine {
                op: algebra(name),
                keys: args.to_vec(),
                store: None,
            },
            "sinterstore" | "sunionstore" | "sdiffstore" => SetCommand::Combine {
                op: algebra(name.trim_end_matches("store")),
                keys: args[1..].to_vec(),
                store: Some(key()),
            },
            "sintercard" => parse_intercard(args)?,
            "sscan" => SetCommand::Scan(key(), ScanArgs::parse(&args[1..], false)?),
            _ => return Ok(None),
        }))
    }

    pub async fn exec<T: Transaction>(&self, txn: &mut T, ctx: &mut ExecContext<'_>) -> CommandResult {
        match self {
            SetCommand::Add(key, members) => {
                let mut meta = meta_for_write(txn, ctx, key).await?;
                let added = add_members(txn, key, &mut meta, members).await?;
                if added > 0 {
                    rewrite_value(txn, key, Value::Set(meta)).await?;
                }
                Ok(Reply::Integer(added as i64))
            }
            SetCommand::Rem(key, members) => {
                let Some(mut meta) = set_meta(txn, key).await? else {
                    return Ok(Reply::Integer(0));
                };
                let mut removed = 0;
                for member in members {
                    if remove_member(txn, key, &mut meta, member).await? {
                        removed += 1;
                    }
                }
                if removed > 0 {
                    store_meta(txn, key, meta).await?;
                }
                Ok(Reply::Integer(removed))
            }
            SetCommand::Members(key) => {
                let members = match lookup(txn, ctx, key).await? {
                    Some(meta) => set_members(txn, key, &meta).await?,
                    None => Vec::new(),
                };
                Ok(Reply::Set(members.into_iter().map(Reply::Bulk).collect()))
            }
            SetCommand::IsMember(key, member) => {
                let found = match lookup(txn, ctx, key).await? {
                    Some(meta) => contains(txn, key, &meta, member).await?,
                    None => false,
                };
                Ok(Reply::Integer(found.into()))
            }
            SetCommand::MIsMember(key, members) => {
                let meta = lookup(txn, ctx, key).await?;
                let mut found = Vec::with_capacity(members.len());
                for member in members {
                    let here = match &meta {
                        Some(meta) => contains(txn, key, meta, member).await?,
                        None => false,
                    };
                    found.push(Reply::Integer(here.into()));
                }
                Ok(Reply::Array(found))
            }
            SetCommand::Card(key) => Ok(Reply::Integer(
                lookup(txn, ctx, key).await?.map_or(0, |m| m.len) as i64
            )),
            SetCommand::Pop(key, count) => {
                let Some(mut meta) = set_meta(txn, key).await? else {
                    return Ok(match count {
                        None => Reply::Nil,
                        Some(_) => Reply::Array(Vec::new()),
                    });
                };
                let wanted = count.unwrap_or(1);
                if wanted == 0 {
                    return Ok(Reply::Array(Vec::new()));
                }
                let popped = if wanted >= meta.len {
                    // Everything goes: the set with it.
                    let members = set_members(txn, key, &meta).await?;
                    remove_key(txn, key).await?;
                    members
                } else {
                    let members = sample(txn, key, &meta, wanted, true).await?;
                    for member in &members {
                        remove_member(txn, key, &mut meta, member).await?;
                    }
                    store_meta(txn, key, meta).await?;
                    members
                };
                Ok(match count {
                    None => Reply::bulk_or_nil(popped.into_iter().next()),
                    Some(_) => Reply::Array(popped.into_iter().map(Reply::Bulk).collect()),
                })
            }
            SetCommand::RandMember(key, count) => {
                let meta = lookup(txn, ctx, key).await?;
                let Some(count) = count else {
                    let Some(meta) = meta else { return Ok(Reply::Nil) };
                    let picked = sample(txn, key, &meta, 1, true).await?;
                    return Ok(Reply::bulk_or_nil(picked.into_iter().next()));
                };
                let (Some(meta), false) = (meta, *count == 0) else {
                    return Ok(Reply::Array(Vec::new()));
                };
                let picked = if *count > 0 {
                    sample(txn, key, &meta, *count as u64, true).await?
                } else {
                    sample(txn, key, &meta, count.unsigned_abs(), false).await?
                };
                Ok(Reply::Array(picked.into_iter().map(Reply::Bulk).collect()))
            }
            SetCommand::Move {
                source,
                destination,
                member,
            } => {
                let from = set_meta(txn, source).await?;
                let to = set_meta(txn, destination).await?;
                let Some(mut from) = from else {
                    return Ok(Reply::Integer(0));
                };
                if source == destination {
                    return Ok(Reply::Integer(contains(txn, source, &from, member).await?.into()));
                }
                if !remove_member(txn, source, &mut from, member).await? {
                    return Ok(Reply::Integer(0));
                }
                store_meta(txn, source, from).await?;
                let mut to = match to {
                    Some(meta) => meta,
                    None => new_meta(txn, ctx),
                };
                // The destination changes (and is rewritten) only if it gains the member.
                if add_members(txn, destination, &mut to, std::slice::from_ref(member)).await? > 0 {
                    rewrite_value(txn, destination, Value::Set(to)).await?;
                }
                Ok(Reply::Integer(1))
            }
            SetCommand::Combine { op, keys, store } => {
                let result = combine(txn, ctx, *op, keys, store.is_none()).await?;
                let Some(destination) = store else {
                    return Ok(Reply::Set(result.into_iter().map(Reply::Bulk).collect()));
                };
                let stored = result.len();
                store_set(txn, ctx, destination, &result).await?;
                Ok(Reply::Integer(stored as i64))
            }
            SetCommand::InterCard(keys, limit) => {
                let found = intersect(txn, ctx, keys, *limit, true).await?;
                Ok(Reply::Integer(found.len() as i64))
            }
            SetCommand::Scan(key, args) => {
                let Some(meta) = lookup(txn, ctx, key).await? else {
                    return Ok(scan_reply(0, Vec::new()));
                };
                let prefix = set_member_prefix(key, &meta.version);
                let (cursor, parts) = scan_parts(txn, ctx, &prefix, args).await?;
                let members = parts
                    .into_iter()
                    .map(|(store_key, _)| set_member(&prefix, &store_key))
                    .filter(|member| args.matches(member))
                    .map(Reply::Bulk)
                    .collect();
                Ok(scan_reply(cursor, members))
            }
        }
    }
}

fn algebra(name: &str) -> Algebra {
    match name {
        "sinter" => Algebra::Inter,
        "sunion" => Algebra::Union,
        _ => Algebra::Diff,
    }
}

/// A `*SCAN` reply: the next cursor and what this call found.
pub fn scan_reply(cursor: u64, found: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(cursor.to_string())),
        Reply::Array(found),
    ])
}

/// `SINTERCARD numkeys key... [LIMIT limit]`.
fn parse_intercard(args: &[Bytes]) -> CommandResult<SetCommand> {
    let numkeys = parse_i64(&args[0])
        .filter(|n| *n > 0)
        .ok_or_else(|| CommandError::Other("numkeys should be greater than 0".into()))?
        as u64;
    if numkeys > (args.len() - 1) as u64 {
        return Err(CommandError::Other(
            "Number of keys can't be greater than number of args".into(),
        ));
    }
    let keys = args[1..=numkeys as usize].to_vec();
    let mut limit = 0;
    let mut reader = ArgReader::new(&args[1 + numkeys as usize..]);
    while let Some(option) = reader.next() {
        if !is_keyword(option, "LIMIT") {
            return Err(CommandError::Syntax);
        }
        limit = parse_i64(reader.value()?)
            .filter(|n| *n >= 0)
            .ok_or_else(|| CommandError::Other("LIMIT can't be negative".into()))? as u64;
    }
    Ok(SetCommand::InterCard(keys, limit))
}

/// The meta of set `key` (`None` if absent); `WRONGTYPE` if it is not a set.
async fn set_meta<T: Transaction>(txn: &mut T, key: &[u8]) -> CommandResult<Option<CollectionMeta>> {
    match read_value(txn, key).await? {
        Some(Value::Set(meta)) => Ok(Some(meta)),
        Some(_) => Err(CommandError::WrongType),
        None => Ok(None),
    }
}

/// [`set_meta`] for a read command, counted as a keyspace hit or miss.
async fn lookup<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    key: &[u8],
) -> CommandResult<Option<CollectionMeta>> {
    Ok(ctx.counted(set_meta(txn, key).await?))
}

/// The meta of a new, empty incarnation of a set.
fn new_meta<T: Transaction>(txn: &T, ctx: &mut ExecContext<'_>) -> CollectionMeta {
    CollectionMeta {
        len: 0,
        version: ctx.new_version(txn),
    }
}

/// The meta of set `key` for a write: its own, or that of a new, empty incarnation.
async fn meta_for_write<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    key: &[u8],
) -> CommandResult<CollectionMeta> {
    match set_meta(txn, key).await? {
        Some(meta) => Ok(meta),
        None => Ok(new_meta(txn, ctx)),
    }
}

/// Writes the changed meta of an existing set, or deletes the set if it is now empty.
async fn store_meta<T: Transaction>(txn: &mut T, key: &[u8], meta: CollectionMeta) -> CommandResult<()> {
    if meta.len == 0 {
        remove_key(txn, key).await?;
        Ok(())
    } else {
        rewrite_value(txn, key, Value::Set(meta)).await
    }
}

/// Adds the members not yet in the set; how many.
async fn add_members<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &mut CollectionMeta,
    members: &[Bytes],
) -> CommandResult<u64> {
    let mut added = 0;
    for member in members {
        let member_key = set_member_key(key, &meta.version, member);
        if txn.get(&member_key).await?.is_none() {
            txn.put(member_key, Bytes::new());
            meta.len += 1;
            added += 1;
        }
    }
    Ok(added)
}

/// Removes `member` if the set has it; whether it did.
async fn remove_member<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &mut CollectionMeta,
    member: &[u8],
) -> CommandResult<bool> {
    let member_key = set_member_key(key, &meta.version, member);
    if txn.get(&member_key).await?.is_none() {
        return Ok(false);
    }
    txn.delete(member_key);
    meta.len -= 1;
    Ok(true)
}

async fn contains<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &CollectionMeta,
    member: &[u8],
) -> CommandResult<bool> {
    Ok(txn
        .get(&set_member_key(key, &meta.version, member))
        .await?
        .is_some())
}

/// Every member of the set, in the store's (hash) order.
pub async fn set_members<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &CollectionMeta,
) -> CommandResult<Vec<Bytes>> {
    set_members_within(txn, key, meta, usize::MAX)
        .await?
        .ok_or_else(|| CommandError::Other("a read of a whole set stopped short".into()))
}

/// Every member of the set, in the store's (hash) order, if no more than `examine` stored
/// keys have to be looked at.
async fn set_members_within<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &CollectionMeta,
    examine: usize,
) -> CommandResult<Option<Vec<Bytes>>> {
    let prefix = set_member_prefix(key, &meta.version);
    let end = prefix_end(&prefix);
    let page = txn
        .scan_page(&prefix, end.as_deref(), ScanLimits::heads(examine, 0))
        .await?;
    Ok(page.resume.is_none().then(|| {
        page.pairs
            .into_iter()
            .map(|(store_key, _)| set_member(&prefix, &store_key))
            .collect()
    }))
}

/// `count` members picked at random, `distinct` or with repeats (see the module docs). A
/// distinct sample of at least the whole set is the whole set.
async fn sample<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &CollectionMeta,
    count: u64,
    distinct: bool,
) -> CommandResult<Vec<Bytes>> {
    if distinct && count >= meta.len {
        return set_members(txn, key, meta).await;
    }
    // Reading the set is as cheap as sampling it when most of it is wanted, and few removed
    // members lie in the way (see the module docs).
    let exact = if meta.len <= EXACT_SAMPLE_MAX || (distinct && count.saturating_mul(2) >= meta.len) {
        let examine = usize::try_from(meta.len.saturating_mul(2))
            .unwrap_or(usize::MAX)
            .saturating_add(EXACT_SAMPLE_SLACK);
        set_members_within(txn, key, meta, examine).await?
    } else {
        None
    };
    if let Some(mut members) = exact {
        if distinct {
            // A partial Fisher-Yates shuffle: the first `count` are a uniform sample.
            for i in 0..count as usize {
                let j = fastrand::usize(i..members.len());
                members.swap(i, j);
            }
            members.truncate(count as usize);
            return Ok(members);
        }
        return Ok((0..count)
            .map(|_| members[fastrand::usize(..members.len())].clone())
            .collect());
    }
    let prefix = set_member_prefix(key, &meta.version);
    let end = prefix_end(&prefix);
    let mut picked = Vec::with_capacity(count.min(EXACT_SAMPLE_MAX) as usize);
    let mut seen = HashSet::new();
    // A distinct sample retries picks it already has; a bounded number of times, then it
    // takes the members that follow the last pick.
    let mut attempts = count.saturating_mul(4).saturating_add(64);
    while (picked.len() as u64) < count && attempts > 0 {
        attempts -= 1;
        let member = random_member(txn, &prefix, end.as_deref()).await?;
        if !distinct || seen.insert(member.clone()) {
            picked.push(member);
        }
    }
    if (picked.len() as u64) < count {
        for member in set_members(txn, key, meta).await? {
            if (picked.len() as u64) == count {
                break;
            }
            if seen.insert(member.clone()) {
                picked.push(member);
            }
        }
    }
    Ok(picked)
}

/// The member at or after a random hash (wrapping to the first member).
async fn random_member<T: Transaction>(
    txn: &mut T,
    prefix: &[u8],
    end: Option<&[u8]>,
) -> CommandResult<Bytes> {
    let mut seek = prefix.to_vec();
    seek.extend_from_slice(&fastrand::u64(..).to_be_bytes());
    let mut found = txn.scan(&seek, end, 1).await?;
    if found.is_empty() {
        found = txn.scan(prefix, end, 1).await?;
    }
    let (store_key, _) = found
        .pop()
        .ok_or_else(|| CommandError::Other("a set's count says it has members but none is stored".into()))?;
    Ok(set_member(prefix, &store_key))
}

/// The result of `op` over the sets at `keys` (absent keys are empty sets). Every key is checked
/// to hold a set, whatever the others hold.
async fn combine<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    op: Algebra,
    keys: &[Bytes],
    count_lookups: bool,
) -> CommandResult<Vec<Bytes>> {
    match op {
        Algebra::Inter => intersect(txn, ctx, keys, 0, count_lookups).await,
        Algebra::Union => {
            let metas = metas(txn, ctx, keys, count_lookups).await?;
            let mut result = Vec::new();
            let mut present = HashSet::new();
            for (key, meta) in keys.iter().zip(&metas) {
                let Some(meta) = meta else { continue };
                for member in set_members(txn, key, meta).await? {
                    if present.insert(member.clone()) {
                        result.push(member);
                    }
                }
            }
            Ok(result)
        }
        Algebra::Diff => {
            let metas = metas(txn, ctx, keys, count_lookups).await?;
            let Some(first) = metas[0] else {
                return Ok(Vec::new());
            };
            let mut result = set_members(txn, &keys[0], &first).await?;
            let others: Vec<(&Bytes, CollectionMeta)> = keys[1..]
                .iter()
                .zip(&metas[1..])
                .filter_map(|(key, meta)| meta.map(|m| (key, m)))
                .collect();
            // Like Redis, test each member against the other sets, or read the other sets
            // whole when that reads less.
            let probes = (result.len() as u64).saturating_mul(others.len() as u64);
            let reads: u64 = others.iter().map(|(_, meta)| meta.len).sum();
            if probes <= reads {
                let mut kept = Vec::with_capacity(result.len());
                'members: for member in result {
                    for (key, meta) in &others {
                        if contains(txn, key, meta, &member).await? {
                            continue 'members;
                        }
                    }
                    kept.push(member);
                }
                result = kept;
            } else {
                let mut removed = HashSet::new();
                for (key, meta) in &others {
                    removed.extend(set_members(txn, key, meta).await?);
                }
                result.retain(|member| !removed.contains(member));
            }
            Ok(result)
        }
    }
}

/// The members common to every set at `keys`, stopping at `limit` of them (`0`: no limit).
/// Like Redis, it walks the smallest set and tests each member against the others.
async fn intersect<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    keys: &[Bytes],
    limit: u64,
    count_lookups: bool,
) -> CommandResult<Vec<Bytes>> {
    let metas = metas(txn, ctx, keys, count_lookups).await?;
    let Some(mut sets) = keys
        .iter()
        .zip(metas)
        .map(|(key, meta)| meta.map(|m| (key, m)))
        .collect::<Option<Vec<_>>>()
    else {
        // An absent key is an empty set.
        return Ok(Vec::new());
    };
    sets.sort_by_key(|(_, meta)| meta.len);
    let (smallest, smallest_meta) = sets[0];
    let mut result = Vec::new();
    'members: for member in set_members(txn, smallest, &smallest_meta).await? {
        for (key, meta) in &sets[1..] {
            if !contains(txn, key, meta, &member).await? {
                continue 'members;
            }
        }
        result.push(member);
        if limit > 0 && result.len() as u64 >= limit {
            break;
        }
    }
    Ok(result)
}

/// The meta of each key's set, every key type-checked first.
async fn metas<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    keys: &[Bytes],
    count_lookups: bool,
) -> CommandResult<Vec<Option<CollectionMeta>>> {
    let mut metas = Vec::with_capacity(keys.len());
    for key in keys {
        let meta = set_meta(txn, key).await?;
        metas.push(if count_lookups { ctx.counted(meta) } else { meta });
    }
    Ok(metas)
}

/// Makes `destination` a new set of `members`, whatever it held; no set if there are none.
/// It gets no timeout.
async fn store_set<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    destination: &[u8],
    members: &[Bytes],
) -> CommandResult<()> {
    remove_key(txn, destination).await?;
    if members.is_empty() {
        return Ok(());
    }
    let mut meta = new_meta(txn, ctx);
    for member in members {
        txn.put(set_member_key(destination, &meta.version, member), Bytes::new());
    }
    meta.len = members.len() as u64;
    write_entry(txn, destination, &Entry::new(Value::Set(meta), None), None);
    Ok(())
}
