//! `ZUNION`, `ZINTER` and `ZDIFF` over sorted sets and plain sets.

use super::*;
/// The members of the sorted set or set at `key` with their scores (a set's score 1); `None`
/// if absent; `WRONGTYPE` for another type.
pub(super) async fn scored_members<T: Transaction>(
    txn: &mut T,
    key: &[u8],
) -> CommandResult<Option<Vec<(Bytes, f64)>>> {
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
pub(super) async fn combine<T: Transaction>(
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
