//! List commands: `LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LLEN LRANGE LINDEX LSET LREM LTRIM
//! LINSERT LPOS LMOVE RPOPLPUSH LMPOP`, the pops that block: `BLPOP BRPOP BLMOVE BRPOPLPUSH
//! BLMPOP`, and `SORT`/`SORT_RO` of a list (without `BY` and `GET` patterns).
//!
//! A list is a meta entry (length, head position, version) plus one store entry per element at
//! consecutive positions (see `keyspace`): a push or pop at either end touches the meta entry
//! and one element, `LINDEX`/`LSET` one element, `LRANGE` one contiguous scan of what it
//! returns. `LREM` and `LINSERT` rewrite the elements after the change (O(N), as in Redis).
//!
//! A blocking pop is the same command run as a transaction again whenever a push may have
//! filled one of its keys (`blocking`); inside `MULTI` it does not block, as in Redis.

use bytes::Bytes;

use super::ExecContext;
use crate::percolator::Transaction;
use crate::resp::args::{int_arg, is_keyword, parse_f64};
use crate::resp::error::{CommandError, CommandResult};
use crate::resp::keyspace::{
    ListMeta, Value, list_element_key, list_element_prefix, prefix_end, read_value, remove_key, rewrite_value,
};
use crate::resp::reply::Reply;

/// Which end of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Left,
    Right,
}

impl End {
    fn parse(arg: &[u8]) -> CommandResult<End> {
        if is_keyword(arg, "LEFT") {
            Ok(End::Left)
        } else if is_keyword(arg, "RIGHT") {
            Ok(End::Right)
        } else {
            Err(CommandError::Syntax)
        }
    }
}

#[derive(Clone)]
pub enum ListCommand {
    Push {
        key: Bytes,
        end: End,
        elements: Vec<Bytes>,
        /// `LPUSHX`/`RPUSHX`: only onto an existing list.
        only_existing: bool,
    },
    /// `LPOP`/`RPOP`; `count` `None` answers one element, `Some` an array.
    Pop {
        key: Bytes,
        end: End,
        count: Option<u64>,
    },
    Len(Bytes),
    Range(Bytes, i64, i64),
    Index(Bytes, i64),
    Set(Bytes, i64, Bytes),
    Rem(Bytes, i64, Bytes),
    Trim(Bytes, i64, i64),
    Insert {
        key: Bytes,
        after: bool,
        pivot: Bytes,
        element: Bytes,
    },
    Pos {
        key: Bytes,
        element: Bytes,
        rank: i64,
        count: Option<u64>,
        max_len: u64,
    },
    Move {
        source: Bytes,
        destination: Bytes,
        from: End,
        to: End,
        /// A blocked client's retry: a source holding another type counts as empty.
        waiting: bool,
    },
    Sort {
        key: Bytes,
        /// `LIMIT offset count`.
        limit: Option<(i64, i64)>,
        descending: bool,
        alpha: bool,
        store: Option<Bytes>,
    },
    /// `LMPOP` (and `BLPOP`/`BRPOP`/`BLMPOP`, which answer in their own shapes).
    MPop {
        keys: Vec<Bytes>,
        end: End,
        count: u64,
        shape: MPopShape,
        /// As for `Move`.
        waiting: bool,
    },
}

/// How a multi-key pop answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MPopShape {
    /// `LMPOP`/`BLMPOP`: `[key, [elements]]`.
    KeyAndElements,
    /// `BLPOP`/`BRPOP`: `[key, element]`.
    KeyAndElement,
}

/// A blocking command: the pop to try, and how long to wait for it (`None`: forever).
pub struct Blocking {
    pub command: ListCommand,
    pub timeout: Option<std::time::Duration>,
}

impl ListCommand {
    /// The lists the command may add elements to (what blocked clients wait for).
    pub fn filled_keys(&self) -> Vec<Bytes> {
        match self {
            ListCommand::Push { key, .. } | ListCommand::Insert { key, .. } => vec![key.clone()],
            ListCommand::Move { destination, .. }
            | ListCommand::Sort {
                store: Some(destination),
                ..
            } => vec![destination.clone()],
            _ => Vec::new(),
        }
    }

    /// The keys a blocking pop takes from, in its order.
    pub fn sources(&self) -> Vec<Bytes> {
        match self {
            ListCommand::MPop { keys, .. } => keys.clone(),
            ListCommand::Move { source, .. } => vec![source.clone()],
            _ => Vec::new(),
        }
    }

    /// The same pop, taking only from `keys` (a subset of [`ListCommand::sources`]); for a
    /// client already blocked (`waiting`), a source of another type counts as empty (Redis
    /// wakes a blocked client only for a list).
    pub fn only_sources(&self, keys: &[Bytes], waiting: bool) -> ListCommand {
        let mut command = self.clone();
        match &mut command {
            ListCommand::MPop {
                keys: mine,
                waiting: w,
                ..
            } => {
                mine.retain(|k| keys.contains(k));
                *w = waiting;
            }
            ListCommand::Move { waiting: w, .. } => *w = waiting,
            _ => {}
        }
        command
    }

    pub fn parse(name: &str, args: &[Bytes]) -> CommandResult<Option<ListCommand>> {
        let key = || args[0].clone();
        Ok(Some(match name {
            "lpush" | "rpush" | "lpushx" | "rpushx" => ListCommand::Push {
                key: key(),
                end: if name.starts_with('l') {
                    End::Left
                } else {
                    End::Right
                },
                elements: args[1..].to_vec(),
                only_existing: name.ends_with('x'),
            },
            "lpop" | "rpop" => ListCommand::Pop {
                key: key(),
                end: if name == "lpop" { End::Left } else { End::Right },
                count: match args.get(1) {
                    None => None,
                    Some(_) if args.len() > 2 => {
                        return Err(CommandError::WrongArity {
                            name: name.to_string(),
                        });
                    }
                    Some(n) => Some(non_negative(n)?),
                },
            },
            "llen" => ListCommand::Len(key()),
            "lrange" => ListCommand::Range(key(), int_arg(&args[1])?, int_arg(&args[2])?),
            "lindex" => ListCommand::Index(key(), int_arg(&args[1])?),
            "lset" => ListCommand::Set(key(), int_arg(&args[1])?, args[2].clone()),
            "lrem" => ListCommand::Rem(key(), int_arg(&args[1])?, args[2].clone()),
            "ltrim" => ListCommand::Trim(key(), int_arg(&args[1])?, int_arg(&args[2])?),
            "linsert" => {
                let after = if is_keyword(&args[1], "AFTER") {
                    true
                } else if is_keyword(&args[1], "BEFORE") {
                    false
                } else {
                    return Err(CommandError::Syntax);
                };
                ListCommand::Insert {
                    key: key(),
                    after,
                    pivot: args[2].clone(),
                    element: args[3].clone(),
                }
            }
            "lpos" => parse_lpos(args)?,
            "lmove" => ListCommand::Move {
                source: key(),
                destination: args[1].clone(),
                from: End::parse(&args[2])?,
                to: End::parse(&args[3])?,
                waiting: false,
            },
            "rpoplpush" => ListCommand::Move {
                source: key(),
                destination: args[1].clone(),
                from: End::Right,
                to: End::Left,
                waiting: false,
            },
            "lmpop" => parse_mpop(args)?,
            "sort" | "sort_ro" => parse_sort(args, name == "sort")?,
            _ => match parse_blocking(name, args)? {
                Some(blocking) => blocking.command,
                None => return Ok(None),
            },
        }))
    }

    pub async fn exec<T: Transaction>(&self, txn: &mut T, ctx: &mut ExecContext<'_>) -> CommandResult {
        match self {
            ListCommand::Push {
                key,
                end,
                elements,
                only_existing,
            } => {
                let meta = match list_meta(txn, key).await? {
                    Some(meta) => meta,
                    None if *only_existing => return Ok(Reply::Integer(0)),
                    None => new_list(txn, ctx),
                };
                let meta = push(txn, key, meta, *end, elements);
                rewrite_value(txn, key, Value::List(meta)).await?;
                Ok(Reply::Integer(meta.len as i64))
            }
            ListCommand::Pop { key, end, count } => {
                let Some(meta) = lookup(txn, ctx, key).await? else {
                    return Ok(if count.is_some() {
                        Reply::NilArray
                    } else {
                        Reply::Nil
                    });
                };
                let popped = pop(txn, key, meta, *end, count.unwrap_or(1)).await?;
                Ok(match count {
                    None => Reply::bulk_or_nil(popped.into_iter().next()),
                    Some(_) => Reply::Array(popped.into_iter().map(Reply::Bulk).collect()),
                })
            }
            ListCommand::Len(key) => Ok(Reply::Integer(
                lookup(txn, ctx, key).await?.map_or(0, |m| m.len) as i64
            )),
            ListCommand::Range(key, start, stop) => {
                let Some(meta) = lookup(txn, ctx, key).await? else {
                    return Ok(Reply::Array(Vec::new()));
                };
                let elements = match clamp_range(meta.len, *start, *stop) {
                    Some((first, last)) => read_range(txn, key, &meta, first, last).await?,
                    None => Vec::new(),
                };
                Ok(Reply::Array(elements.into_iter().map(Reply::Bulk).collect()))
            }
            ListCommand::Index(key, index) => {
                let Some(meta) = lookup(txn, ctx, key).await? else {
                    return Ok(Reply::Nil);
                };
                match resolve_index(meta.len, *index) {
                    Some(i) => Ok(Reply::bulk_or_nil(
                        txn.get(&list_element_key(key, &meta.version, meta.position(i)))
                            .await?,
                    )),
                    None => Ok(Reply::Nil),
                }
            }
            ListCommand::Set(key, index, element) => {
                let Some(meta) = list_meta(txn, key).await? else {
                    return Err(CommandError::Other("no such key".into()));
                };
                let Some(i) = resolve_index(meta.len, *index) else {
                    return Err(CommandError::Other("index out of range".into()));
                };
                txn.put(
                    list_element_key(key, &meta.version, meta.position(i)),
                    element.clone(),
                );
                rewrite_value(txn, key, Value::List(meta)).await?;
                Ok(Reply::OK)
            }
            ListCommand::Rem(key, count, element) => {
                let Some(meta) = list_meta(txn, key).await? else {
                    return Ok(Reply::Integer(0));
                };
                let mut elements = read_range(txn, key, &meta, 0, meta.len - 1).await?;
                let limit = if *count == 0 {
                    usize::MAX
                } else {
                    count.unsigned_abs().min(usize::MAX as u64) as usize
                };
                let mut matches: Vec<usize> = elements
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| *e == element)
                    .map(|(i, _)| i)
                    .collect();
                if *count < 0 {
                    matches.reverse();
                }
                matches.truncate(limit);
                if matches.is_empty() {
                    return Ok(Reply::Integer(0));
                }
                matches.sort_unstable();
                for i in matches.iter().rev() {
                    elements.remove(*i);
                }
                rewrite_list(txn, key, meta, elements).await?;
                Ok(Reply::Integer(matches.len() as i64))
            }
            ListCommand::Trim(key, start, stop) => {
                let Some(mut meta) = list_meta(txn, key).await? else {
                    return Ok(Reply::OK);
                };
                let Some((first, last)) = clamp_range(meta.len, *start, *stop) else {
                    remove_key(txn, key).await?;
                    return Ok(Reply::OK);
                };
                for i in (0..first).chain(last + 1..meta.len) {
                    txn.delete(list_element_key(key, &meta.version, meta.position(i)));
                }
                meta.head = meta.position(first);
                meta.len = last - first + 1;
                rewrite_value(txn, key, Value::List(meta)).await?;
                Ok(Reply::OK)
            }
            ListCommand::Insert {
                key,
                after,
                pivot,
                element,
            } => {
                let Some(meta) = list_meta(txn, key).await? else {
                    return Ok(Reply::Integer(0));
                };
                let mut elements = read_range(txn, key, &meta, 0, meta.len - 1).await?;
                let Some(at) = elements.iter().position(|e| e == pivot) else {
                    return Ok(Reply::Integer(-1));
                };
                elements.insert(if *after { at + 1 } else { at }, element.clone());
                let len = elements.len();
                rewrite_list(txn, key, meta, elements).await?;
                Ok(Reply::Integer(len as i64))
            }
            ListCommand::Pos {
                key,
                element,
                rank,
                count,
                max_len,
            } => {
                let Some(meta) = lookup(txn, ctx, key).await? else {
                    return Ok(if count.is_some() {
                        Reply::Array(Vec::new())
                    } else {
                        Reply::Nil
                    });
                };
                let elements = read_range(txn, key, &meta, 0, meta.len - 1).await?;
                let scan_len = if *max_len == 0 {
                    elements.len()
                } else {
                    (*max_len as usize).min(elements.len())
                };
                let order: Box<dyn Iterator<Item = usize>> = if *rank > 0 {
                    Box::new(0..scan_len)
                } else {
                    Box::new((elements.len() - scan_len..elements.len()).rev())
                };
                let wanted = match count {
                    Some(0) => usize::MAX,
                    Some(n) => *n as usize,
                    None => 1,
                };
                let mut skip = rank.unsigned_abs() - 1;
                let mut found = Vec::new();
                for i in order {
                    if elements[i] != *element {
                        continue;
                    }
                    if skip > 0 {
                        skip -= 1;
                        continue;
                    }
                    found.push(Reply::Integer(i as i64));
                    if found.len() >= wanted {
                        break;
                    }
                }
                Ok(match count {
                    Some(_) => Reply::Array(found),
                    None => found.pop().unwrap_or(Reply::Nil),
                })
            }
            ListCommand::Move {
                source,
                destination,
                from,
                to,
                waiting,
            } => {
                let Some(meta) = source_meta(txn, ctx, source, *waiting).await? else {
                    return Ok(Reply::Nil);
                };
                // The destination's type is checked before anything moves.
                let target = list_meta(txn, destination).await?;
                let element = pop(txn, source, meta, *from, 1).await?.remove(0);
                // Popping may have emptied (and deleted) the destination itself.
                let target = if source == destination {
                    list_meta(txn, destination).await?
                } else {
                    target
                };
                let target = target.unwrap_or_else(|| new_list(txn, ctx));
                let target = push(txn, destination, target, *to, std::slice::from_ref(&element));
                rewrite_value(txn, destination, Value::List(target)).await?;
                Ok(Reply::Bulk(element))
            }
            ListCommand::Sort {
                key,
                limit,
                descending,
                alpha,
                store,
            } => {
                let mut elements = match ctx.counted(read_value(txn, key).await?) {
                    Some(Value::List(meta)) => read_range(txn, key, &meta, 0, meta.len - 1).await?,
                    Some(Value::Set(meta)) => super::sets::set_members(txn, key, &meta).await?,
                    Some(_) => return Err(CommandError::WrongType),
                    None => Vec::new(),
                };
                sort_elements(&mut elements, *alpha, *descending)?;
                if let Some((offset, count)) = limit {
                    let start = (*offset).clamp(0, elements.len() as i64) as usize;
                    let count = if *count < 0 {
                        elements.len()
                    } else {
                        *count as usize
                    };
                    elements = elements.into_iter().skip(start).take(count).collect();
                }
                let Some(destination) = store else {
                    return Ok(Reply::Array(elements.into_iter().map(Reply::Bulk).collect()));
                };
                // STORE replaces the destination, whatever it held, with a list (or nothing).
                let stored = elements.len();
                remove_key(txn, destination).await?;
                if !elements.is_empty() {
                    let meta = push(txn, destination, new_list(txn, ctx), End::Right, &elements);
                    rewrite_value(txn, destination, Value::List(meta)).await?;
                }
                Ok(Reply::Integer(stored as i64))
            }
            ListCommand::MPop {
                keys,
                end,
                count,
                shape,
                waiting,
            } => {
                for key in keys {
                    let Some(meta) = source_meta(txn, ctx, key, *waiting).await? else {
                        continue;
                    };
                    let popped = pop(txn, key, meta, *end, *count).await?;
                    return Ok(match shape {
                        MPopShape::KeyAndElements => Reply::Array(vec![
                            Reply::Bulk(key.clone()),
                            Reply::Array(popped.into_iter().map(Reply::Bulk).collect()),
                        ]),
                        MPopShape::KeyAndElement => Reply::Array(vec![
                            Reply::Bulk(key.clone()),
                            Reply::Bulk(popped.into_iter().next().expect("a non-empty list")),
                        ]),
                    });
                }
                Ok(Reply::NilArray)
            }
        }
    }
}

/// Parses a blocking list command (`None` if `name` is not one).
pub fn parse_blocking(name: &str, args: &[Bytes]) -> CommandResult<Option<Blocking>> {
    let (command, timeout) = match name {
        "blpop" | "brpop" => {
            let (keys, timeout) = args.split_at(args.len() - 1);
            let command = ListCommand::MPop {
                keys: keys.to_vec(),
                end: if name == "blpop" { End::Left } else { End::Right },
                count: 1,
                shape: MPopShape::KeyAndElement,
                waiting: false,
            };
            (command, &timeout[0])
        }
        "brpoplpush" => (
            ListCommand::Move {
                source: args[0].clone(),
                destination: args[1].clone(),
                from: End::Right,
                to: End::Left,
                waiting: false,
            },
            &args[2],
        ),
        "blmove" => (
            ListCommand::Move {
                source: args[0].clone(),
                destination: args[1].clone(),
                from: End::parse(&args[2])?,
                to: End::parse(&args[3])?,
                waiting: false,
            },
            &args[4],
        ),
        "blmpop" => {
            let timeout = parse_timeout(&args[0])?;
            return Ok(Some(Blocking {
                command: parse_mpop(&args[1..])?,
                timeout,
            }));
        }
        _ => return Ok(None),
    };
    Ok(Some(Blocking {
        command,
        timeout: parse_timeout(timeout)?,
    }))
}

/// A blocking command's timeout in seconds (fractions allowed); 0 waits forever.
pub fn parse_timeout(arg: &[u8]) -> CommandResult<Option<std::time::Duration>> {
    let seconds = parse_f64(arg)
        .filter(|s| s.is_finite())
        .ok_or_else(|| CommandError::Other("timeout is not a float or out of range".into()))?;
    if seconds < 0.0 {
        return Err(CommandError::Other("timeout is negative".into()));
    }
    Ok((seconds > 0.0).then(|| std::time::Duration::from_secs_f64(seconds)))
}

/// `numkeys key [key ...] LEFT|RIGHT [COUNT count]`.
fn parse_mpop(args: &[Bytes]) -> CommandResult<ListCommand> {
    let numkeys = crate::resp::args::parse_i64(&args[0])
        .filter(|n| *n > 0)
        .ok_or_else(|| CommandError::Other("numkeys should be greater than 0".into()))?
        as usize;
    if args.len() < numkeys + 2 {
        return Err(CommandError::Syntax);
    }
    let keys = args[1..=numkeys].to_vec();
    let end = End::parse(&args[numkeys + 1])?;
    let mut count = 1;
    match &args[numkeys + 2..] {
        [] => {}
        [word, n] if is_keyword(word, "COUNT") => {
            count = crate::resp::args::parse_i64(n)
                .filter(|n| *n > 0)
                .ok_or_else(|| CommandError::Other("count should be greater than 0".into()))?
                as u64;
        }
        _ => return Err(CommandError::Syntax),
    }
    Ok(ListCommand::MPop {
        keys,
        end,
        count,
        shape: MPopShape::KeyAndElements,
        waiting: false,
    })
}

/// `SORT key [LIMIT offset count] [ASC|DESC] [ALPHA] [STORE destination]` (`SORT_RO` without
/// `STORE`). `BY` and `GET` patterns read other keys by name and are refused.
fn parse_sort(args: &[Bytes], may_store: bool) -> CommandResult<ListCommand> {
    let (mut limit, mut descending, mut alpha, mut store) = (None, false, false, None);
    let mut i = 1;
    while i < args.len() {
        let word = &args[i];
        if is_keyword(word, "ASC") {
            descending = false;
        } else if is_keyword(word, "DESC") {
            descending = true;
        } else if is_keyword(word, "ALPHA") {
            alpha = true;
        } else if is_keyword(word, "LIMIT") && i + 2 < args.len() {
            limit = Some((int_arg(&args[i + 1])?, int_arg(&args[i + 2])?));
            i += 2;
        } else if is_keyword(word, "STORE") && may_store && i + 1 < args.len() {
            store = Some(args[i + 1].clone());
            i += 1;
        } else if (is_keyword(word, "BY") || is_keyword(word, "GET")) && i + 1 < args.len() {
            return Err(CommandError::Other(
                "SORT BY and GET patterns are not supported by ferrokv".into(),
            ));
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    Ok(ListCommand::Sort {
        key: args[0].clone(),
        limit,
        descending,
        alpha,
        store,
    })
}

/// Sorts as `SORT` does: by numeric value, or bytewise with `ALPHA`.
fn sort_elements(elements: &mut [Bytes], alpha: bool, descending: bool) -> CommandResult<()> {
    if alpha {
        elements.sort();
    } else {
        let mut scores = Vec::with_capacity(elements.len());
        for element in elements.iter() {
            let score = parse_f64(element).filter(|s| !s.is_nan()).ok_or_else(|| {
                CommandError::Other("One or more scores can't be converted into double".into())
            })?;
            scores.push(score);
        }
        let mut order: Vec<usize> = (0..elements.len()).collect();
        order.sort_by(|a, b| {
            scores[*a]
                .total_cmp(&scores[*b])
                .then_with(|| elements[*a].cmp(&elements[*b]))
        });
        let sorted: Vec<Bytes> = order.iter().map(|i| elements[*i].clone()).collect();
        elements.clone_from_slice(&sorted);
    }
    if descending {
        elements.reverse();
    }
    Ok(())
}

/// `LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]`.
fn parse_lpos(args: &[Bytes]) -> CommandResult<ListCommand> {
    let (mut rank, mut count, mut max_len) = (1i64, None, 0u64);
    let mut options = args[2..].chunks(2);
    for option in &mut options {
        let [word, value] = option else {
            return Err(CommandError::Syntax);
        };
        if is_keyword(word, "RANK") {
            rank = int_arg(value)?;
            if rank == 0 {
                return Err(CommandError::Other(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"
                        .into(),
                ));
            }
            if rank == i64::MIN {
                return Err(CommandError::Other(
                    "value is out of range, value must between -9223372036854775807 and 9223372036854775807"
                        .into(),
                ));
            }
        } else if is_keyword(word, "COUNT") {
            let n = int_arg(value)?;
            if n < 0 {
                return Err(CommandError::Other("COUNT can't be negative".into()));
            }
            count = Some(n as u64);
        } else if is_keyword(word, "MAXLEN") {
            let n = int_arg(value)?;
            if n < 0 {
                return Err(CommandError::Other("MAXLEN can't be negative".into()));
            }
            max_len = n as u64;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(ListCommand::Pos {
        key: args[0].clone(),
        element: args[1].clone(),
        rank,
        count,
        max_len,
    })
}

/// A count argument that must not be negative (`LPOP key count`).
fn non_negative(arg: &[u8]) -> CommandResult<u64> {
    match int_arg(arg) {
        Ok(n) if n >= 0 => Ok(n as u64),
        _ => Err(CommandError::Other(
            "value is out of range, must be positive".into(),
        )),
    }
}

/// The meta of list `key` (`None` if absent); `WRONGTYPE` if it is not a list.
async fn list_meta<T: Transaction>(txn: &mut T, key: &[u8]) -> CommandResult<Option<ListMeta>> {
    match read_value(txn, key).await? {
        Some(Value::List(meta)) => Ok(Some(meta)),
        Some(_) => Err(CommandError::WrongType),
        None => Ok(None),
    }
}

/// [`list_meta`] for a read, counted as a keyspace hit or miss.
async fn lookup<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    key: &[u8],
) -> CommandResult<Option<ListMeta>> {
    Ok(ctx.counted(list_meta(txn, key).await?))
}

/// The list a pop takes from; for a blocked client's retry (`waiting`), a key of another type
/// is no list rather than an error.
async fn source_meta<T: Transaction>(
    txn: &mut T,
    ctx: &mut ExecContext<'_>,
    key: &[u8],
    waiting: bool,
) -> CommandResult<Option<ListMeta>> {
    match lookup(txn, ctx, key).await {
        Err(CommandError::WrongType) if waiting => Ok(None),
        other => other,
    }
}

/// An empty list's meta, a new incarnation.
fn new_list<T: Transaction>(txn: &T, ctx: &mut ExecContext<'_>) -> ListMeta {
    ListMeta {
        len: 0,
        head: 0,
        version: ctx.new_version(txn),
    }
}

/// Pushes `elements` one by one at `end`; returns the new meta (not yet written).
fn push<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    mut meta: ListMeta,
    end: End,
    elements: &[Bytes],
) -> ListMeta {
    for element in elements {
        let position = match end {
            End::Left => {
                meta.head = meta.head.wrapping_sub(1);
                meta.head
            }
            End::Right => meta.position(meta.len),
        };
        txn.put(list_element_key(key, &meta.version, position), element.clone());
        meta.len += 1;
    }
    meta
}

/// Pops up to `count` elements from `end` (in pop order), writing the meta, or deleting the
/// key if the list is left empty.
async fn pop<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    mut meta: ListMeta,
    end: End,
    count: u64,
) -> CommandResult<Vec<Bytes>> {
    let n = count.min(meta.len);
    if n == 0 {
        return Ok(Vec::new());
    }
    let (first, last) = match end {
        End::Left => (0, n - 1),
        End::Right => (meta.len - n, meta.len - 1),
    };
    let mut popped = read_range(txn, key, &meta, first, last).await?;
    for i in first..=last {
        txn.delete(list_element_key(key, &meta.version, meta.position(i)));
    }
    if end == End::Right {
        popped.reverse();
    } else {
        meta.head = meta.position(n);
    }
    meta.len -= n;
    if meta.len == 0 {
        remove_key(txn, key).await?;
    } else {
        rewrite_value(txn, key, Value::List(meta)).await?;
    }
    Ok(popped)
}

/// The elements `first..=last` (0-based from the left, within the list), in one scan.
async fn read_range<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &ListMeta,
    first: u64,
    last: u64,
) -> CommandResult<Vec<Bytes>> {
    let start = list_element_key(key, &meta.version, meta.position(first));
    let end = if last + 1 == meta.len {
        prefix_end(&list_element_prefix(key, &meta.version)).map(Bytes::from)
    } else {
        Some(list_element_key(key, &meta.version, meta.position(last + 1)))
    };
    let count = (last - first + 1) as usize;
    let pairs = txn.scan(&start, end.as_deref(), count).await?;
    if pairs.len() != count {
        return Err(CommandError::Other("corrupt list in the store".into()));
    }
    Ok(pairs.into_iter().map(|(_, v)| v).collect())
}

/// Replaces every element of the list with `elements` (from the same head), deleting the key
/// if none are left.
async fn rewrite_list<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    mut meta: ListMeta,
    elements: Vec<Bytes>,
) -> CommandResult<()> {
    for i in 0..meta.len {
        txn.delete(list_element_key(key, &meta.version, meta.position(i)));
    }
    meta.len = 0;
    if elements.is_empty() {
        return remove_key(txn, key).await.map(|_| ());
    }
    let meta = push(txn, key, meta, End::Right, &elements);
    rewrite_value(txn, key, Value::List(meta)).await
}

/// `LINDEX`/`LSET`'s index (negative from the end) as a 0-based index, if inside the list.
fn resolve_index(len: u64, index: i64) -> Option<u64> {
    let i = if index < 0 { len as i64 + index } else { index };
    (0..len as i64).contains(&i).then_some(i as u64)
}

/// `LRANGE`/`LTRIM`'s `start stop` as an inclusive 0-based range, if not empty.
fn clamp_range(len: u64, start: i64, stop: i64) -> Option<(u64, u64)> {
    let len = len as i64;
    let start = if start < 0 { (len + start).max(0) } else { start };
    let stop = if stop < 0 { len + stop } else { stop.min(len - 1) };
    (start <= stop && start < len).then_some((start as u64, stop as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_indexes_normalize_as_in_redis() {
        assert_eq!(clamp_range(5, 0, -1), Some((0, 4)));
        assert_eq!(clamp_range(5, -2, 100), Some((3, 4)));
        assert_eq!(clamp_range(5, -100, 1), Some((0, 1)));
        assert_eq!(clamp_range(5, 3, 2), None);
        assert_eq!(clamp_range(5, 5, 10), None);
        assert_eq!(clamp_range(5, 0, -6), None);
        assert_eq!(resolve_index(3, -1), Some(2));
        assert_eq!(resolve_index(3, 3), None);
        assert_eq!(resolve_index(3, -4), None);
    }

    #[test]
    fn blocking_timeouts_parse_as_in_redis() {
        assert_eq!(parse_timeout(b"0").unwrap(), None);
        assert_eq!(
            parse_timeout(b"0.5").unwrap(),
            Some(std::time::Duration::from_millis(500))
        );
        assert!(matches!(parse_timeout(b"-1"), Err(CommandError::Other(e)) if e == "timeout is negative"));
        assert!(
            matches!(parse_timeout(b"x"), Err(CommandError::Other(e)) if e.starts_with("timeout is not a float"))
        );
    }
}
