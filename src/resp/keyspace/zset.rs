//! The sorted set layout (see the parent module's table): the member entries, the two order
//! indexes and the rank index's nodes, with the score encodings they share.

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    Version, ZSET_ASCENDING_PREFIX, ZSET_DESCENDING_PREFIX, ZSET_MEMBER_PREFIX, ZSET_RANK_PREFIX, corrupt,
    part_prefix,
};
use crate::percolator::key::Key;
use crate::resp::error::CommandResult;

/// The store-key prefix of every member (→ score) of one incarnation of sorted set `key`.
pub fn zset_member_prefix(key: &[u8], version: &Version) -> Vec<u8> {
    part_prefix(ZSET_MEMBER_PREFIX, key, version)
}

/// The store key of `member`'s score in one incarnation of sorted set `key`.
pub fn zset_member_key(key: &[u8], version: &Version, member: &[u8]) -> Bytes {
    let mut store_key = zset_member_prefix(key, version);
    store_key.extend_from_slice(member);
    Bytes::from(store_key)
}

/// The store-key prefix of one of the order indexes of one incarnation of sorted set `key`.
pub fn zset_order_prefix(key: &[u8], version: &Version, descending: bool) -> Vec<u8> {
    let kind = if descending {
        ZSET_DESCENDING_PREFIX
    } else {
        ZSET_ASCENDING_PREFIX
    };
    part_prefix(kind, key, version)
}

/// A score's bits, ordered as the scores are (see the module docs).
pub fn score_order(score: f64) -> u64 {
    let bits = score.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | 1 << 63 }
}

fn score_from_order(order: u64) -> f64 {
    f64::from_bits(if order >> 63 == 1 {
        order & !(1 << 63)
    } else {
        !order
    })
}

/// The order-index key prefix of every entry with score `score` (`descending`: in the
/// descending index), after which members follow.
pub fn zset_score_seek(prefix: &[u8], score: f64, descending: bool) -> Vec<u8> {
    let order = score_order(score);
    let mut seek = prefix.to_vec();
    seek.extend_from_slice(&if descending { !order } else { order }.to_be_bytes());
    seek
}

/// The key of (`score`, `member`) in the order index under `prefix`.
pub fn zset_order_key(prefix: &[u8], score: f64, member: &[u8], descending: bool) -> Bytes {
    let mut key = zset_score_seek(prefix, score, descending);
    if descending {
        key.extend(Key::from_raw(member).as_encoded().iter().map(|byte| !byte));
    } else {
        key.extend_from_slice(member);
    }
    Bytes::from(key)
}

/// The key in the order index under `prefix` (`descending` or not) of the ascending index's
/// position `position` (see [`RankNode`]).
pub fn zset_order_key_at(prefix: &[u8], position: &[u8], descending: bool) -> CommandResult<Bytes> {
    let order = position.get(..8).ok_or_else(corrupt)?;
    let order = u64::from_be_bytes(order.try_into().expect("8 bytes"));
    let member = &position[8..];
    Ok(zset_order_key(
        prefix,
        score_from_order(order),
        member,
        descending,
    ))
}

/// The score and member of an order-index key under `prefix`.
pub fn parse_zset_order_key(
    prefix: &[u8],
    store_key: &[u8],
    descending: bool,
) -> CommandResult<(f64, Bytes)> {
    let order = store_key
        .get(prefix.len()..prefix.len() + 8)
        .ok_or_else(corrupt)?;
    let order = u64::from_be_bytes(order.try_into().expect("8 bytes"));
    let rest = &store_key[prefix.len() + 8..];
    if !descending {
        return Ok((score_from_order(order), Bytes::copy_from_slice(rest)));
    }
    let encoded: Vec<u8> = rest.iter().map(|byte| !byte).collect();
    let member = Key::from_encoded(encoded).to_raw().map_err(|_| corrupt())?;
    Ok((score_from_order(!order), Bytes::from(member)))
}

/// The store-key prefix of the rank index of one incarnation of sorted set `key`.
pub fn zset_rank_prefix(key: &[u8], version: &Version) -> Vec<u8> {
    part_prefix(ZSET_RANK_PREFIX, key, version)
}

/// About how many members (or nodes) a rank-index node covers: how full an index built whole
/// fills its nodes, and the mean a grown one tends to.
pub const RANK_NODE_CHILDREN: u64 = 192;

/// The bound of the last node of every level of a rank index: above every position (the
/// first two bytes of a position are at most `FF F0`, the order of `+inf`).
pub const RANK_BOUND_END: &[u8] = &[0xFF, 0xFF];

/// The prefix of the nodes of `level` (1 and up) in the rank index under `rank_prefix`: the
/// level's bits are flipped, so that the top level sorts first.
pub fn zset_rank_level_prefix(rank_prefix: &[u8], level: u8) -> Vec<u8> {
    let mut prefix = rank_prefix.to_vec();
    prefix.push(!level);
    prefix
}

/// The level of a rank-index node's store key under `rank_prefix`.
pub fn zset_rank_level(rank_prefix: &[u8], store_key: &[u8]) -> CommandResult<u8> {
    store_key
        .get(rank_prefix.len())
        .map(|flipped| !flipped)
        .filter(|level| *level > 0)
        .ok_or_else(corrupt)
}

/// A node of a sorted set's rank index: it covers the positions `[lower, bound)` of the
/// ascending order index (a position is an order-index key without its prefix), and is stored
/// under its level and `bound`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankNode {
    pub level: u8,
    pub bound: Bytes,
    pub lower: Bytes,
    /// Members in `[lower, bound)`.
    pub count: u64,
    /// Nodes of the level below in `[lower, bound)`, or members for level 1.
    pub children: u32,
    /// The root's [`LiveSpan`]; `None` on every other node.
    pub span: Option<LiveSpan>,
}

/// Where a sorted set's members can be: every member's position `p` has `first <= p <= last`.
/// The bounds need not be members (a pop leaves them at the last member it removed): they
/// spare a read from either end the removed members' versions, which stay in the store until
/// garbage collection, just before the live ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSpan {
    pub first: Bytes,
    pub last: Bytes,
}

impl LiveSpan {
    /// The span of the one position `position`.
    pub fn at(position: &Bytes) -> Self {
        LiveSpan {
            first: position.clone(),
            last: position.clone(),
        }
    }

    /// Widens the span to hold `position`.
    pub fn cover(&mut self, position: &[u8]) {
        if position < &self.first[..] {
            self.first = Bytes::copy_from_slice(position);
        }
        if position > &self.last[..] {
            self.last = Bytes::copy_from_slice(position);
        }
    }
}

impl RankNode {
    pub fn store_key(&self, rank_prefix: &[u8]) -> Bytes {
        let mut key = zset_rank_level_prefix(rank_prefix, self.level);
        key.extend_from_slice(&self.bound);
        Bytes::from(key)
    }

    /// `count` u64, `children` u32, `lower` (its length u32 first), and for the root its span:
    /// `first` (its length u32 first), `last`.
    pub fn encode(&self) -> Bytes {
        let span_len = self.span.as_ref().map_or(0, |s| 4 + s.first.len() + s.last.len());
        let mut out = BytesMut::with_capacity(16 + self.lower.len() + span_len);
        out.put_u64(self.count);
        out.put_u32(self.children);
        put_sized(&mut out, &self.lower);
        if let Some(span) = &self.span {
            put_sized(&mut out, &span.first);
            out.put_slice(&span.last);
        }
        out.freeze()
    }

    pub fn decode(rank_prefix: &[u8], store_key: &Bytes, raw: &Bytes) -> CommandResult<RankNode> {
        let level = zset_rank_level(rank_prefix, store_key)?;
        if raw.len() < 16 {
            return Err(corrupt());
        }
        let (lower, rest) = take_sized(&raw.slice(12..))?;
        let span = if rest.is_empty() {
            None
        } else {
            let (first, last) = take_sized(&rest)?;
            Some(LiveSpan { first, last })
        };
        Ok(RankNode {
            level,
            bound: store_key.slice(rank_prefix.len() + 1..),
            lower,
            count: u64::from_be_bytes(raw[..8].try_into().expect("8 bytes")),
            children: u32::from_be_bytes(raw[8..12].try_into().expect("4 bytes")),
            span,
        })
    }
}

fn put_sized(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u32(bytes.len() as u32);
    out.put_slice(bytes);
}

/// A length-prefixed piece of `raw` and what follows it.
fn take_sized(raw: &Bytes) -> CommandResult<(Bytes, Bytes)> {
    let len = raw.get(..4).ok_or_else(corrupt)?;
    let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
    if raw.len() < 4 + len {
        return Err(corrupt());
    }
    Ok((raw.slice(4..4 + len), raw.slice(4 + len..)))
}

/// A score as stored under its member; `-0` is stored as `0`.
pub fn encode_score(score: f64) -> Bytes {
    let score = if score == 0.0 { 0.0 } else { score };
    Bytes::copy_from_slice(&score.to_bits().to_be_bytes())
}

pub fn decode_score(raw: &[u8]) -> CommandResult<f64> {
    let bits: [u8; 8] = raw.try_into().map_err(|_| corrupt())?;
    Ok(f64::from_bits(u64::from_be_bytes(bits)))
}

#[cfg(test)]
mod tests {
    use super::super::{
        CollectionMeta, Entry, ZSET_RANK_PREFIX, all_data_range, parse_part_key, parts_expected,
        parts_prefixes,
    };
    use super::*;
    use crate::resp::keyspace::Value;
    use crate::scheduler::tso::TimeStamp;

    const VERSION: Version = Version {
        created_at: TimeStamp::new(99),
        seq: 0,
    };

    #[test]
    fn sorted_set_order_keys_sort_by_score_then_member_both_ways_and_round_trip() {
        let scores = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -0.0,
            0.0,
            1e-300,
            3.0,
            3.0,
            f64::INFINITY,
        ];
        let members: [&[u8]; 9] = [b"z", b"a", b"m", b"n", b"n", b"x", b"b", b"ba", b"a"];
        for descending in [false, true] {
            let prefix = zset_order_prefix(b"zs", &VERSION, descending);
            let keys: Vec<Bytes> = scores
                .iter()
                .zip(members)
                .map(|(score, member)| zset_order_key(&prefix, *score, member, descending))
                .collect();
            for (i, key) in keys.iter().enumerate() {
                let (score, member) = parse_zset_order_key(&prefix, key, descending).unwrap();
                assert_eq!((score.to_bits(), &member[..]), (scores[i].to_bits(), members[i]));
            }
            for pair in keys.windows(2) {
                assert_eq!(pair[0] < pair[1], !descending, "{pair:?}");
            }
        }
        // "b" sorts before "ba" ascending, and after it descending: no member is a prefix of
        // another's encoding.
        let desc = zset_order_prefix(b"zs", &VERSION, true);
        assert!(zset_order_key(&desc, 3.0, b"ba", true) < zset_order_key(&desc, 3.0, b"b", true));
        assert_eq!(
            decode_score(&encode_score(-0.0)).unwrap().to_bits(),
            0.0f64.to_bits()
        );
        assert_eq!(decode_score(&encode_score(2.5)).unwrap(), 2.5);
        assert!(decode_score(b"short").is_err());
        let zset = Entry::new(
            Value::ZSet(CollectionMeta {
                len: 2,
                version: VERSION,
            }),
            Some(7),
        );
        assert_eq!(Entry::decode(zset.encode()).unwrap(), zset);
        assert_eq!(zset.encode()[0], 0x84);
        let (start, end) = all_data_range();
        for part in parts_prefixes(b"zs", &zset.value) {
            assert!(part.as_slice() >= start && part.as_slice() < end);
        }
    }

    #[test]
    fn rank_index_nodes_are_laid_out_as_documented() {
        let prefix = zset_rank_prefix(b"zs", &VERSION);
        assert!(prefix.starts_with(b"n"));
        assert_eq!(
            parse_part_key(ZSET_RANK_PREFIX, &prefix),
            Some((&b"zs"[..], VERSION))
        );
        let node = RankNode {
            level: 2,
            bound: Bytes::from_static(b"\x80\0\0\0\0\0\0\x01m"),
            lower: Bytes::from_static(b"\x7f\0\0\0\0\0\0\0a"),
            count: 300,
            children: 3,
            span: None,
        };
        let key = node.store_key(&prefix);
        assert_eq!(
            key[prefix.len()],
            !2u8,
            "the level, flipped: the root sorts first"
        );
        assert_eq!(&key[prefix.len() + 1..], &node.bound[..]);
        let value = node.encode();
        assert_eq!(&value[..8], &300u64.to_be_bytes());
        assert_eq!(&value[8..12], &3u32.to_be_bytes());
        assert_eq!(&value[12..16], &(node.lower.len() as u32).to_be_bytes());
        assert_eq!(&value[16..], &node.lower[..]);
        assert_eq!(RankNode::decode(&prefix, &key, &value).unwrap(), node);
        let root = RankNode {
            level: 3,
            lower: Bytes::new(),
            bound: Bytes::from_static(RANK_BOUND_END),
            span: Some(LiveSpan {
                first: Bytes::from_static(b"\x7f\0\0\0\0\0\0\0a"),
                last: Bytes::from_static(b"\x80\0\0\0\0\0\0\x01m"),
            }),
            ..node.clone()
        };
        let (root_key, root_value) = (root.store_key(&prefix), root.encode());
        assert!(root_key < key);
        assert_eq!(&root_value[12..16], &0u32.to_be_bytes());
        assert_eq!(&root_value[16..20], &9u32.to_be_bytes());
        assert_eq!(&root_value[20..29], b"\x7f\0\0\0\0\0\0\0a");
        assert_eq!(RankNode::decode(&prefix, &root_key, &root_value).unwrap(), root);
        assert!(RankNode::decode(&prefix, &key, &value.slice(..11)).is_err());
        assert!(RankNode::decode(&prefix, &key, &value.slice(..18)).is_err());
        assert!(RankNode::decode(&prefix, &root_key, &root_value.slice(..22)).is_err());
        // The last bound is past every position: +inf's order starts FF F0.
        let top = zset_order_key(&[], f64::INFINITY, b"\xff\xff", false);
        assert!(&top[..] < RANK_BOUND_END);
        let (start, end) = all_data_range();
        assert!(key.as_ref() >= start && key.as_ref() < end);
        assert_eq!(parts_expected(&prefix, 1_000), 6);
        assert_eq!(parts_expected(&zset_member_prefix(b"zs", &VERSION), 1_000), 1_000);
    }
}
