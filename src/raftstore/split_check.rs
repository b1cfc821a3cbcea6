//! Where a region that has grown too big splits.
//!
//! A region's leader looks at its region every `region.split_check_interval_secs` (the node's
//! split checker). It reads the region only when that may find it too big: when its estimated
//! size (`RocksEngine::approximate_range`, from file metadata: no data read) exceeds
//! `region.max_size_bytes`, when more than a sixteenth of `max_size_bytes` was written to it
//! since its last check (data still in memtables has no file to be estimated from; TiKV
//! triggers its check on written bytes the same way), or when the region is new to this
//! leader (split off, or its lead moved here): its size is then unknown.
//!
//! The read goes in key order, adding up the keys and values of the data column families,
//! and finds a split key wherever `region.split_size_bytes` lay to the left of it (or of the
//! split key before): [`find_split_keys`] cuts the region into pieces of that size in one pass
//! (at most a few dozen per check), and the checker splits at those keys from the last to the
//! first, so the region it keeps splitting is always the one it leads already. A region no
//! bigger than `max_size_bytes` is not split. A split key is a user key (the encoded key
//! without a version), so every version of one key stays in one region (`Region::contains`),
//! and it lies strictly inside the region.

use super::meta::Region;
use crate::storage::{Cf, Cursor, IterOptions, Snapshot, VERSION_SUFFIX_BYTES};

/// The user key of a data-CF key: versioned keys (write and default CFs) lose their version,
/// lock-CF keys are user keys already.
fn user_key(cf: Cf, key: &[u8]) -> &[u8] {
    match cf {
        Cf::Lock => key,
        _ => &key[..key.len().saturating_sub(VERSION_SUFFIX_BYTES)],
    }
}

/// The key at which `region` splits so that about `split_size` bytes of data (keys and values
/// of the lock, write and default column families) lie to its left, if the region holds more
/// than `max_size` bytes; `None` if it holds no more, or if no user key boundary inside it
/// qualifies (one huge key). Reads at most about `max_size` bytes.
pub fn find_split_key<S: Snapshot>(
    snapshot: &S,
    region: &Region,
    split_size: u64,
    max_size: u64,
) -> crate::storage::Result<Option<Vec<u8>>> {
    Ok(find_split_keys(snapshot, region, split_size, max_size, 1)?
        .into_iter()
        .next())
}

/// The keys that cut `region` into pieces of about `split_size` bytes each, in key order, if
/// it holds more than `max_size` bytes (none otherwise): at most `limit` of them, read in one
/// pass that stops once `limit` keys are found and the region is known to exceed `max_size`.
/// A last piece of less than half the split size joins the one before it. Splitting at all of
/// them at once, rather than one piece per check, is what lets a region that grew far past
/// the limit (its data still in memtables, where no estimate sees it) come back within it in
/// one round of the split checker.
pub fn find_split_keys<S: Snapshot>(
    snapshot: &S,
    region: &Region,
    split_size: u64,
    max_size: u64,
    limit: usize,
) -> crate::storage::Result<Vec<Vec<u8>>> {
    let bounds = IterOptions {
        lower: Some(region.start_key.clone()),
        upper: (!region.end_key.is_empty()).then(|| region.end_key.clone()),
        ..Default::default()
    };
    let cfs = [Cf::Lock, Cf::Write, Cf::Default];
    let mut cursors: Vec<Box<dyn Cursor + Send + '_>> = cfs
        .iter()
        .map(|&cf| snapshot.cursor(cf, bounds.clone()))
        .collect();
    let mut valid = Vec::with_capacity(cfs.len());
    for cursor in &mut cursors {
        valid.push(cursor.seek(&region.start_key)?);
    }
    let mut size = 0u64;
    // The size read when the last key was found.
    let mut at_last = 0u64;
    let mut found: Vec<Vec<u8>> = Vec::new();
    // The cursor at the smallest user key goes next (a three-way merge in key order).
    while let Some(next) = (0..cfs.len())
        .filter(|&i| valid[i])
        .min_by(|&a, &b| user_key(cfs[a], cursors[a].key()).cmp(user_key(cfs[b], cursors[b].key())))
    {
        let key = user_key(cfs[next], cursors[next].key());
        let boundary = found.last().map_or(region.start_key.as_slice(), Vec::as_slice);
        if found.len() < limit && size - at_last >= split_size && key > boundary {
            found.push(key.to_vec());
            at_last = size;
        }
        if found.len() == limit && size > max_size {
            return Ok(found);
        }
        size += (cursors[next].key().len() + cursors[next].value().len()) as u64;
        valid[next] = cursors[next].next()?;
    }
    if size <= max_size {
        return Ok(Vec::new());
    }
    if found.len() > 1 && size - at_last < split_size / 2 {
        found.pop();
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::percolator::key::Key;
    use crate::raftstore::meta::RegionEpoch;
    use crate::scheduler::tso::TimeStamp;
    use crate::storage::{Engine, MemoryEngine, WriteBatch, WriteOptions};

    fn region(start: &[u8], end: &[u8]) -> Region {
        Region {
            id: 1,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            epoch: RegionEpoch::INITIAL,
            peers: Vec::new(),
        }
    }

    /// The split key for a region that splits once it holds more than `split_size`.
    fn split(engine: &MemoryEngine, region: &Region, split_size: u64) -> Option<Vec<u8>> {
        find_split_key(&engine.snapshot(), region, split_size, split_size).unwrap()
    }

    fn encoded(raw: &str) -> Vec<u8> {
        Key::from_raw(raw.as_bytes()).as_encoded().to_vec()
    }

    /// Keys k000..k099, each with `versions` write records of 100-byte values.
    fn engine(versions: u64) -> MemoryEngine {
        let engine = MemoryEngine::default();
        let mut batch = WriteBatch::new();
        for i in 0..100 {
            let key = Key::from_raw(format!("k{i:03}").as_bytes());
            for v in 0..versions {
                batch.put(Cf::Write, key.append_ts(TimeStamp::new(10 + v)), vec![0u8; 100]);
            }
        }
        engine.write(&batch, WriteOptions::NO_SYNC).unwrap();
        engine
    }

    #[test]
    fn the_split_key_leaves_the_split_size_on_its_left_at_a_user_key() {
        let engine = engine(3);
        let whole = region(b"", b"");
        // Each key: 3 versions of (encoded key + version) + 100 bytes.
        let per_key = 3 * (encoded("k000").len() as u64 + 8 + 100);
        let key = split(&engine, &whole, 10 * per_key);
        assert_eq!(
            key,
            Some(encoded("k010")),
            "ten keys on the left, none cut between versions"
        );
        // A size crossed half-way through a key's versions splits before that key: its
        // versions go right, whole.
        let key = split(&engine, &whole, 10 * per_key + 1);
        assert_eq!(key, Some(encoded("k010")));
        let key = split(&engine, &whole, 11 * per_key);
        assert_eq!(key, Some(encoded("k011")));
        // A region holding less than the split size does not split.
        assert_eq!(split(&engine, &whole, 1_000 * per_key), None);
    }

    #[test]
    fn a_region_splits_only_past_the_max_size() {
        let engine = engine(1);
        let whole = region(b"", b"");
        let per_key = encoded("k000").len() as u64 + 8 + 100;
        // A hundred keys: more than 50 keys' worth splits at the tenth key...
        let key = find_split_key(&engine.snapshot(), &whole, 10 * per_key, 50 * per_key).unwrap();
        assert_eq!(key, Some(encoded("k010")));
        // ...no more than 100 keys' worth does not split at all.
        let key = find_split_key(&engine.snapshot(), &whole, 10 * per_key, 100 * per_key).unwrap();
        assert_eq!(key, None);
    }

    #[test]
    fn only_the_regions_own_data_counts_and_the_key_lies_inside_it() {
        let engine = engine(1);
        let part = region(&encoded("k050"), &encoded("k060"));
        let per_key = encoded("k000").len() as u64 + 8 + 100;
        let key = split(&engine, &part, 3 * per_key);
        assert_eq!(key, Some(encoded("k053")));
        // Never at the region's own start, even with a split size of zero.
        let key = split(&engine, &part, 0);
        assert_eq!(key, Some(encoded("k051")));
        // Ten keys inside: a split size past them finds nothing.
        assert_eq!(split(&engine, &part, 10 * per_key), None);
    }

    #[test]
    fn one_pass_finds_every_piece_and_a_small_last_piece_joins_the_one_before() {
        let engine = engine(1);
        let whole = region(b"", b"");
        let per_key = encoded("k000").len() as u64 + 8 + 100;
        let keys = find_split_keys(&engine.snapshot(), &whole, 30 * per_key, 50 * per_key, 10).unwrap();
        // Pieces of 30 keys: k030, k060, k090; the last (ten keys) is less than half a piece.
        assert_eq!(keys, vec![encoded("k030"), encoded("k060")]);
        let keys = find_split_keys(&engine.snapshot(), &whole, 20 * per_key, 50 * per_key, 10).unwrap();
        assert_eq!(keys, ["k020", "k040", "k060", "k080"].map(encoded).to_vec());
        // At most `limit`, and only past the max size.
        let keys = find_split_keys(&engine.snapshot(), &whole, 20 * per_key, 50 * per_key, 2).unwrap();
        assert_eq!(keys, vec![encoded("k020"), encoded("k040")]);
        let keys = find_split_keys(&engine.snapshot(), &whole, 20 * per_key, 100 * per_key, 10).unwrap();
        assert!(keys.is_empty());
    }
}
