//! Reading ranges of a sorted set: by rank, by score and by member, and ranks.

use super::*;

/// Index entries read per store round trip when walking a range of unknown length.
const WALK_CHUNK: usize = 256;
pub(super) fn whole() -> RangeQuery {
    RangeQuery {
        range: Range::Rank(0, -1),
        rev: false,
        limit: None,
    }
}

/// The (member, score) pairs `query` selects, in its order.
pub(super) async fn select<T: Transaction>(
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
pub(super) async fn by_rank<T: Transaction>(
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
pub(super) async fn by_lex<T: Transaction>(
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
pub(super) async fn walk_order<T: Transaction>(
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
pub(super) async fn rank_of<T: Transaction>(
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
