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
            let end_seek = &end_seeks(txn, key, meta).await?[usize::from(query.rev)];
            if *end_seek > seek {
                seek.clone_from(end_seek);
            }
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

/// Ranks `start..=stop` (valid, ascending; from the top when `rev`): read from the nearer end
/// when it is at most [`WALK_CHUNK`] entries away, else from where the rank index places
/// `start`.
pub(super) async fn by_rank<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &CollectionMeta,
    start: u64,
    stop: u64,
    rev: bool,
) -> CommandResult<Vec<(Bytes, f64)>> {
    let wanted = (stop - start + 1) as usize;
    // From this end, `start` entries are skipped; from the other, `len - 1 - stop`.
    let (descending, skip, flip) = if start <= meta.len - 1 - stop {
        (rev, start, false)
    } else {
        (!rev, meta.len - 1 - stop, true)
    };
    let (descending, skip, flip, seek) = if skip <= WALK_CHUNK as u64 {
        let [ascending_seek, descending_seek] = end_seeks(txn, key, meta).await?;
        let seek = if descending {
            descending_seek
        } else {
            ascending_seek
        };
        (descending, skip, flip, seek)
    } else {
        // The first wanted entry, in ascending order.
        let first = if rev { meta.len - 1 - stop } else { start };
        let rank = RankIndex::new(key, &meta.version);
        let (lower, skip) = rank.locate(txn, first).await?.ok_or_else(missing_index)?;
        let mut seek = zset_order_prefix(key, &meta.version, false);
        seek.extend_from_slice(&lower);
        (false, skip, rev, seek)
    };
    let prefix = zset_order_prefix(key, &meta.version, descending);
    let mut found = Vec::with_capacity(wanted);
    let mut skipped = 0;
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

/// Where reads of the ascending and of the descending order index from their start begin:
/// at the live span's ends (see `keyspace::LiveSpan`), past the members removed there.
async fn end_seeks<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &CollectionMeta,
) -> CommandResult<[Vec<u8>; 2]> {
    let span = RankIndex::new(key, &meta.version).span(txn).await?;
    let mut seeks = [false, true].map(|descending| zset_order_prefix(key, &meta.version, descending));
    if let Some(span) = span {
        seeks[0] = zset_order_key_at(&seeks[0], &span.first, false)?.to_vec();
        seeks[1] = zset_order_key_at(&seeks[1], &span.last, true)?.to_vec();
    }
    Ok(seeks)
}

fn missing_index() -> CommandError {
    CommandError::Other("corrupt sorted set: no rank index".into())
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
            start = key_after(last);
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

/// The 0-based ascending rank of `member` (score `score`): counted from both ends at once
/// when it is within [`WALK_CHUNK`] of one, else from the rank index.
pub(super) async fn rank_of<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    meta: &CollectionMeta,
    member: &[u8],
    score: f64,
) -> CommandResult<u64> {
    let seeks = end_seeks(txn, key, meta).await?;
    for (side, descending) in [false, true].into_iter().enumerate() {
        let prefix = zset_order_prefix(key, &meta.version, descending);
        let target = zset_order_key(&prefix, score, member, descending);
        let before = txn.scan(&seeks[side], Some(&target), WALK_CHUNK).await?.len();
        if before < WALK_CHUNK {
            return Ok(if side == 0 {
                before as u64
            } else {
                meta.len - 1 - before as u64
            });
        }
    }
    let rank = RankIndex::new(key, &meta.version);
    let prefix = zset_order_prefix(key, &meta.version, false);
    let target = zset_order_key(&prefix, score, member, false);
    rank.rank_of(txn, rank.position(&target))
        .await?
        .ok_or_else(missing_index)
}
