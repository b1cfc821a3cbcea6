//! Parsing the sorted set commands' arguments: scores, ranges, options and key lists.

use super::*;
/// A score argument (`ZADD`, `ZINCRBY`): a float, `inf`, `-inf`, never NaN.
pub(super) fn score_arg(arg: &[u8]) -> CommandResult<f64> {
    parse_score(arg).ok_or(CommandError::NotFloat)
}

/// Scores as Redis's `strtod` reads them: also `+inf` and `+5`.
pub(super) fn parse_score(arg: &[u8]) -> Option<f64> {
    match arg.strip_prefix(b"+") {
        Some(rest) if !rest.starts_with(b"-") && !rest.starts_with(b"+") => parse_f64(rest),
        _ => parse_f64(arg),
    }
}

pub(super) fn score_bound(arg: &[u8]) -> CommandResult<ScoreBound> {
    let (text, exclusive) = match arg.strip_prefix(b"(") {
        Some(rest) => (rest, true),
        None => (arg, false),
    };
    let value = parse_score(text).ok_or_else(|| CommandError::Other("min or max is not a float".into()))?;
    Ok(ScoreBound { value, exclusive })
}

pub(super) fn lex_bound(arg: &Bytes) -> CommandResult<LexBound> {
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
pub(super) fn parse_zadd(args: &[Bytes]) -> CommandResult<ZSetCommand> {
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
pub(super) fn parse_zrange(
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
pub(super) fn numkeys_and_keys<'a>(
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
pub(super) fn parse_zmpop(args: &[Bytes]) -> CommandResult<ZSetCommand> {
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
pub(super) fn parse_combine(name: &str, args: &[Bytes], store: Option<Bytes>) -> CommandResult<ZSetCommand> {
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
pub(super) fn parse_intercard(args: &[Bytes]) -> CommandResult<ZSetCommand> {
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
pub(super) fn parse_randmember(args: &[Bytes]) -> CommandResult<ZSetCommand> {
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
