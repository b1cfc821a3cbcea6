//! How Redis keys and values are laid out in the transactional store.
//!
//! Every Redis key has a *meta* entry: store key `k` ++ key, whose value is a one-byte type tag,
//! the key's deadline if it has one, and a payload. Types whose value has parts keep each part
//! under its own store key, so a command touches only the parts it needs:
//!
//! | tag | type | meta payload | parts |
//! |---|---|---|---|
//! | `0x00` | string | the bytes of the string | none |
//! | `0x01` | hash | field count u64, version (u64, u32) | `h` ++ len(key) u32 ++ key ++ version ++ field → value |
//! | `0x02` | list | length u64, head position (i64), version | `j` ++ len(key) u32 ++ key ++ version ++ position → element |
//! | `0x03` | set | member count u64, version | `s` ++ len(key) u32 ++ key ++ version ++ hash(member) u64 ++ member → empty |
//! | `0x04` | sorted set | member count u64, version | `z` ++ len(key) u32 ++ key ++ version ++ member → score; `o` ++ (the same) ++ order(score) ++ member → empty; `r` ++ (the same) ++ !order(score) ++ !bytes(member) → empty; `n` ++ (the same) ++ !level ++ bound → count u64, children u32, len u32 ++ lower, and on the root only: len u32 ++ first, last |
//!
//! A set's members are ordered by a 64-bit hash of the member (XXH3, a fixed algorithm, so every
//! node and every version of ferrokv agrees) before the member itself, so a seek to a random
//! hash lands on a member picked nearly uniformly whatever the members look like (`SPOP`,
//! `SRANDMEMBER` on large sets), and `SMEMBERS` answers in an order that, as in Redis, is not
//! the members' sorted order.
//!
//! A sorted set's members are kept three times: by member (`z`, for `ZSCORE` and for lex
//! ranges, which Redis defines over members of equal score), and in two order indexes, by
//! (score, member) ascending (`o`) and descending (`r`). `order(score)` is the score's IEEE 754
//! bits with the sign bit flipped for positive scores and every bit flipped for negative ones, so
//! that bytes sort as numbers; `!` flips every bit; `bytes(member)` is the member in the
//! store's memcomparable key encoding (groups of eight with a marker), which no member is a
//! prefix of another's, so flipping its bits exactly reverses the member order. A range by
//! score from either end is one seek and a forward read of what it returns. The descending
//! index exists because transactions read forward only. The rank index (`n`, [`RankNode`]) is
//! a tree of counted intervals over the ascending index's positions (its keys after the
//! prefix), stored level by level, each node under its level (bits flipped, so the root sorts
//! first) and its interval's exclusive upper bound ([`RANK_BOUND_END`] for the last); it finds
//! a rank in the middle of the set in a few hundred reads (`zsets::rank`).
//! The root also keeps the set's live span ([`LiveSpan`]): bounds on the positions members
//! can have, which reads from either end start at, past the members removed there.
//! A score is stored as its IEEE 754 bits, big-endian; `-0` is stored as `0`.
//!
//! A list's element `i` (from the left, 0-based) is at position `head + i`; a position is an
//! i64 stored with its sign bit flipped, so positions sort as numbers. A push on the left takes
//! position `head - 1`, one on the right `head + len`, so pushes, pops and indexing touch one
//! element, and a range is one contiguous scan.
//!
//! All integers are big-endian. The length prefix keeps one hash's fields from running into
//! another key's.
//!
//! **Expiry.** A key with a timeout has the tag's high bit (`0x80`) set, and its deadline
//! (milliseconds since the Unix epoch, u64) between the tag and the payload. Whether a key has
//! expired is decided by each transaction at its own clock, [`now_ms`]: the physical part of
//! its start timestamp, which comes from the cluster's timestamp oracle. So one transaction
//! sees one instant (every command of a `MULTI` agrees), and every node decides alike. An
//! expired key is absent to every read and write ([`read_entry`]). Each deadline also has an
//! entry in the *expiry index*, `i` ++ deadline (u64) ++ key → empty, ordered by deadline, from
//! which the sweeper (`resp::expiry`) deletes expired keys in bounded batches. An index entry
//! may outlive its deadline's key (a plain `SET` replaces a key without reading its deadline);
//! the sweeper drops such entries when it meets them.
//!
//! **Versions.** A collection's parts (a hash's fields, a list's elements, a set's or sorted
//! set's members) live under the version the collection got when it was created: the creating
//! transaction's `start_ts` (unique) and a sequence number within that transaction. Replacing
//! or deleting a collection therefore only rewrites its meta entry: the old parts become
//! unreachable at once (no command reads parts without first reading the meta, which names the
//! live version), so `SET`, `MSET` and `DEL` never scan parts, and a new collection under the
//! same name starts empty. Garbage collection removes the orphaned parts later
//! ([`HashFieldGcFilter`]).
//!
//! All data lives in `[h, {)`; the meta entries, one per Redis key, in `[k, l)`, so walking the
//! keyspace walks only meta entries; the expiry index in `[i, j)`. These are the keys of one
//! database: in the store each database's keys carry its index as a one-byte prefix (see
//! `db`), which this module never sees.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{CommandError, CommandResult};
use crate::percolator::gc::{GcFilter, LatestFn};
use crate::percolator::{MvccError, Transaction};
use crate::scheduler::tso::TimeStamp;

mod zset;
pub use zset::*;

const META_PREFIX: u8 = b'k';
const HASH_FIELD_PREFIX: u8 = b'h';
const EXPIRY_INDEX_PREFIX: u8 = b'i';
const LIST_ELEMENT_PREFIX: u8 = b'j';
const SET_MEMBER_PREFIX: u8 = b's';
const ZSET_MEMBER_PREFIX: u8 = b'z';
const ZSET_ASCENDING_PREFIX: u8 = b'o';
const ZSET_DESCENDING_PREFIX: u8 = b'r';
const ZSET_RANK_PREFIX: u8 = b'n';
/// One past the last prefix of Redis data.
#[cfg(test)]
const DATA_END: u8 = b'z' + 1;
const TAG_STRING: u8 = 0x00;
const TAG_HASH: u8 = 0x01;
const TAG_LIST: u8 = 0x02;
const TAG_SET: u8 = 0x03;
const TAG_ZSET: u8 = 0x04;
/// Set in the tag of a meta entry that carries a deadline.
const TAG_HAS_DEADLINE: u8 = 0x80;
const COLLECTION_PAYLOAD_BYTES: usize = 8 + 8 + 4;
const LIST_PAYLOAD_BYTES: usize = 8 + 8 + 8 + 4;

/// The meta (store) key of a Redis key.
pub fn data_key(user_key: &[u8]) -> Bytes {
    let mut key = BytesMut::with_capacity(user_key.len() + 1);
    key.put_u8(META_PREFIX);
    key.put_slice(user_key);
    key.freeze()
}

/// The Redis key of a meta key.
pub fn user_key(data_key: &Bytes) -> Bytes {
    debug_assert_eq!(
        data_key.first(),
        Some(&META_PREFIX),
        "a key from the keyspace range"
    );
    data_key.slice(1..)
}

/// The Redis key whose entries a store key (without its database byte) belongs to: the key of
/// a meta entry, or the owner of a collection's part; `None` for other entries (the expiry
/// index) and keys too short to say.
pub fn owner_of(store_key: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = store_key.split_first()?;
    match tag {
        META_PREFIX => Some(rest),
        HASH_FIELD_PREFIX
        | LIST_ELEMENT_PREFIX
        | SET_MEMBER_PREFIX
        | ZSET_MEMBER_PREFIX
        | ZSET_ASCENDING_PREFIX
        | ZSET_DESCENDING_PREFIX
        | ZSET_RANK_PREFIX => {
            let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            rest.get(4..4 + len)
        }
        _ => None,
    }
}

/// The store range of every meta entry, one per Redis key: `[start, end)`.
pub fn keyspace_range() -> (&'static [u8], &'static [u8]) {
    (&[META_PREFIX], &[META_PREFIX + 1])
}

/// The store ranges whose entries name keys: the meta entries and the expiry index. Deleting
/// every entry in them deletes every key; the parts of collections are then orphans, which
/// garbage collection removes as after a `DEL`.
pub fn key_naming_ranges() -> [(&'static [u8], &'static [u8]); 2] {
    [
        keyspace_range(),
        (&[EXPIRY_INDEX_PREFIX], &[EXPIRY_INDEX_PREFIX + 1]),
    ]
}

/// The store range of all Redis data, meta entries and parts: `[start, end)` (the tests check
/// every layout stays inside it).
#[cfg(test)]
pub fn all_data_range() -> (&'static [u8], &'static [u8]) {
    (&[HASH_FIELD_PREFIX], &[DATA_END])
}

/// Which incarnation of a collection (hash, list or set) its parts belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    pub created_at: TimeStamp,
    pub seq: u32,
}

impl Version {
    fn put(&self, out: &mut impl BufMut) {
        out.put_u64(self.created_at.into_inner());
        out.put_u32(self.seq);
    }
}

/// What a hash's or a set's meta entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollectionMeta {
    /// Fields in the hash, members in the set; at least one (an empty collection does not
    /// exist).
    pub len: u64,
    pub version: Version,
}

/// The store-key prefix of every part of one incarnation of a collection at `key`, the parts
/// of its type starting with `kind`.
fn part_prefix(kind: u8, key: &[u8], version: &Version) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(key.len() + 25);
    prefix.push(kind);
    prefix.extend_from_slice(&(key.len() as u32).to_be_bytes());
    prefix.extend_from_slice(key);
    version.put(&mut prefix);
    prefix
}

/// The store-key prefix of every field of one incarnation of hash `key`.
pub fn hash_field_prefix(key: &[u8], version: &Version) -> Vec<u8> {
    part_prefix(HASH_FIELD_PREFIX, key, version)
}

/// The store key of field `field` of one incarnation of hash `key`.
pub fn hash_field_key(key: &[u8], version: &Version, field: &[u8]) -> Bytes {
    let mut store_key = hash_field_prefix(key, version);
    store_key.extend_from_slice(field);
    Bytes::from(store_key)
}

/// What a list's meta entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListMeta {
    /// Elements in the list; at least one (an empty list does not exist).
    pub len: u64,
    /// The position of the leftmost element.
    pub head: i64,
    pub version: Version,
}

impl ListMeta {
    /// The position of element `index` (0-based from the left; must be below `len`).
    pub fn position(&self, index: u64) -> i64 {
        self.head.wrapping_add(index as i64)
    }
}

/// The store-key prefix of every element of one incarnation of list `key`.
pub fn list_element_prefix(key: &[u8], version: &Version) -> Vec<u8> {
    part_prefix(LIST_ELEMENT_PREFIX, key, version)
}

/// The store key of the element at `position` of one incarnation of list `key`.
pub fn list_element_key(key: &[u8], version: &Version, position: i64) -> Bytes {
    let mut store_key = list_element_prefix(key, version);
    store_key.extend_from_slice(&((position as u64) ^ (1 << 63)).to_be_bytes());
    Bytes::from(store_key)
}

/// The store-key prefix of every member of one incarnation of set `key`.
pub fn set_member_prefix(key: &[u8], version: &Version) -> Vec<u8> {
    part_prefix(SET_MEMBER_PREFIX, key, version)
}

/// Where `member` sorts within its set: the XXH3 hash the module docs describe.
pub fn member_hash(member: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(member)
}

/// The store key of `member` of one incarnation of set `key`.
pub fn set_member_key(key: &[u8], version: &Version, member: &[u8]) -> Bytes {
    let mut store_key = set_member_prefix(key, version);
    store_key.extend_from_slice(&member_hash(member).to_be_bytes());
    store_key.extend_from_slice(member);
    Bytes::from(store_key)
}

/// The member a set member's store key (under `prefix`) holds.
pub fn set_member(prefix: &[u8], store_key: &Bytes) -> Bytes {
    store_key.slice(prefix.len() + 8..)
}

/// The store-key prefixes of the parts of `value` held at `key` (none for a string).
pub fn parts_prefixes(key: &[u8], value: &Value) -> Vec<Vec<u8>> {
    match value {
        Value::String(_) => Vec::new(),
        Value::Hash(meta) => vec![hash_field_prefix(key, &meta.version)],
        Value::List(meta) => vec![list_element_prefix(key, &meta.version)],
        Value::Set(meta) => vec![set_member_prefix(key, &meta.version)],
        Value::ZSet(meta) => vec![
            zset_member_prefix(key, &meta.version),
            zset_order_prefix(key, &meta.version, false),
            zset_order_prefix(key, &meta.version, true),
            zset_rank_prefix(key, &meta.version),
        ],
    }
}

/// About how many entries a collection of `len` elements keeps under `prefix`, one of its
/// [`parts_prefixes`]: one per element, but one per node of a sorted set's rank index.
pub fn parts_expected(prefix: &[u8], len: u64) -> u64 {
    if prefix.first() == Some(&ZSET_RANK_PREFIX) {
        len.div_ceil(RANK_NODE_CHILDREN)
    } else {
        len
    }
}

/// The Redis key and version of a collection part's store key under `prefix`.
fn parse_part_key(prefix: u8, store_key: &[u8]) -> Option<(&[u8], Version)> {
    let rest = store_key.strip_prefix(&[prefix])?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let key = rest.get(4..4 + len)?;
    let version = rest.get(4 + len..4 + len + 12)?;
    Some((
        key,
        Version {
            created_at: TimeStamp::new(u64::from_be_bytes(version[..8].try_into().ok()?)),
            seq: u32::from_be_bytes(version[8..].try_into().ok()?),
        },
    ))
}

/// The smallest store key after every key that starts with `prefix` (`None`: no such key).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The smallest store key after `key` (and before every other key that starts with it):
/// where a scan for "strictly after `key`" starts.
pub fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// What a meta entry holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    String(Bytes),
    Hash(CollectionMeta),
    List(ListMeta),
    Set(CollectionMeta),
    ZSet(CollectionMeta),
}

impl Value {
    /// A meta entry holding the string `payload`, with no deadline.
    pub fn encode_string(payload: &[u8]) -> Bytes {
        Entry::encode_parts(TAG_STRING, None, payload)
    }

    fn decode_payload(tag: u8, payload: Bytes) -> CommandResult<Value> {
        match tag {
            TAG_STRING => Ok(Value::String(payload)),
            TAG_HASH | TAG_SET | TAG_ZSET if payload.len() == COLLECTION_PAYLOAD_BYTES => {
                let u64_at = |at: usize| u64::from_be_bytes(payload[at..at + 8].try_into().expect("8 bytes"));
                let meta = CollectionMeta {
                    len: u64_at(0),
                    version: Version {
                        created_at: TimeStamp::new(u64_at(8)),
                        seq: u32::from_be_bytes(payload[16..20].try_into().expect("4 bytes")),
                    },
                };
                Ok(match tag {
                    TAG_HASH => Value::Hash(meta),
                    TAG_SET => Value::Set(meta),
                    _ => Value::ZSet(meta),
                })
            }
            TAG_LIST if payload.len() == LIST_PAYLOAD_BYTES => {
                let u64_at = |at: usize| u64::from_be_bytes(payload[at..at + 8].try_into().expect("8 bytes"));
                Ok(Value::List(ListMeta {
                    len: u64_at(0),
                    head: u64_at(8) as i64,
                    version: Version {
                        created_at: TimeStamp::new(u64_at(16)),
                        seq: u32::from_be_bytes(payload[24..28].try_into().expect("4 bytes")),
                    },
                }))
            }
            _ => Err(corrupt()),
        }
    }

    /// The type tag of this value's meta entry.
    fn tag(&self) -> u8 {
        match self {
            Value::String(_) => TAG_STRING,
            Value::Hash(_) => TAG_HASH,
            Value::List(_) => TAG_LIST,
            Value::Set(_) => TAG_SET,
            Value::ZSet(_) => TAG_ZSET,
        }
    }

    /// The name `TYPE` answers.
    pub fn type_name(&self) -> &'static str {
        type_name(self.tag())
    }

    /// The same value under another version (a string has none and stays as it is).
    pub fn with_version(&self, version: Version) -> Value {
        match self {
            Value::String(_) => self.clone(),
            Value::Hash(meta) => Value::Hash(CollectionMeta { version, ..*meta }),
            Value::Set(meta) => Value::Set(CollectionMeta { version, ..*meta }),
            Value::ZSet(meta) => Value::ZSet(CollectionMeta { version, ..*meta }),
            Value::List(meta) => Value::List(ListMeta { version, ..*meta }),
        }
    }

    /// The version a collection's parts are keyed by (`None` for a string).
    pub fn version(&self) -> Option<Version> {
        match self {
            Value::String(_) => None,
            Value::Hash(meta) | Value::Set(meta) | Value::ZSet(meta) => Some(meta.version),
            Value::List(meta) => Some(meta.version),
        }
    }
}

/// The name `TYPE` answers for a type tag (without its deadline bit).
fn type_name(tag: u8) -> &'static str {
    match tag {
        TAG_STRING => "string",
        TAG_HASH => "hash",
        TAG_LIST => "list",
        TAG_SET => "set",
        _ => "zset",
    }
}

fn corrupt() -> CommandError {
    CommandError::Other("corrupt value in the store".into())
}

/// The leading bytes of a meta entry that hold the key's type and deadline: what a walk over
/// the keyspace reads of each key (`ScanLimits::heads`), so that listing, counting or
/// filtering keys never reads a string's bytes.
pub const ENTRY_HEAD_BYTES: usize = 9;

/// What the head of a meta entry says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryHead {
    tag: u8,
    /// As [`Entry::expires_at`].
    pub expires_at: Option<u64>,
}

impl EntryHead {
    /// Decodes the first [`ENTRY_HEAD_BYTES`] (or fewer, if the entry is shorter) of a meta
    /// entry.
    pub fn decode(raw: &[u8]) -> CommandResult<EntryHead> {
        let tag = *raw.first().ok_or_else(corrupt)?;
        let expires_at = if tag & TAG_HAS_DEADLINE == 0 {
            None
        } else {
            let deadline = raw.get(1..9).ok_or_else(corrupt)?;
            Some(u64::from_be_bytes(deadline.try_into().expect("8 bytes")))
        };
        let tag = tag & !TAG_HAS_DEADLINE;
        if tag > TAG_ZSET {
            return Err(corrupt());
        }
        Ok(EntryHead { tag, expires_at })
    }

    /// As [`Entry::is_expired`].
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at.is_some_and(|deadline| now_ms > deadline)
    }

    /// As [`Value::type_name`].
    pub fn type_name(&self) -> &'static str {
        type_name(self.tag)
    }
}

/// A key's meta entry: its value and its deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub value: Value,
    /// When the key expires, in milliseconds since the Unix epoch; `None`: never.
    pub expires_at: Option<u64>,
}

impl Entry {
    pub fn new(value: Value, expires_at: Option<u64>) -> Self {
        Entry { value, expires_at }
    }

    /// Whether the key is gone at `now_ms` (Redis: expired once the clock is past the deadline).
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at.is_some_and(|deadline| now_ms > deadline)
    }

    pub fn encode(&self) -> Bytes {
        match &self.value {
            Value::String(s) => Entry::encode_parts(TAG_STRING, self.expires_at, s),
            Value::Hash(meta) | Value::Set(meta) | Value::ZSet(meta) => {
                let mut payload = BytesMut::with_capacity(COLLECTION_PAYLOAD_BYTES);
                payload.put_u64(meta.len);
                meta.version.put(&mut payload);
                Entry::encode_parts(self.value.tag(), self.expires_at, &payload)
            }
            Value::List(meta) => {
                let mut payload = BytesMut::with_capacity(LIST_PAYLOAD_BYTES);
                payload.put_u64(meta.len);
                payload.put_u64(meta.head as u64);
                meta.version.put(&mut payload);
                Entry::encode_parts(TAG_LIST, self.expires_at, &payload)
            }
        }
    }

    fn encode_parts(tag: u8, expires_at: Option<u64>, payload: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(1 + 8 + payload.len());
        match expires_at {
            Some(deadline) => {
                out.put_u8(tag | TAG_HAS_DEADLINE);
                out.put_u64(deadline);
            }
            None => out.put_u8(tag),
        }
        out.put_slice(payload);
        out.freeze()
    }

    pub fn decode(raw: Bytes) -> CommandResult<Entry> {
        let tag = *raw.first().ok_or_else(corrupt)?;
        if tag & TAG_HAS_DEADLINE == 0 {
            return Ok(Entry::new(Value::decode_payload(tag, raw.slice(1..))?, None));
        }
        let deadline = raw.get(1..9).ok_or_else(corrupt)?;
        let deadline = u64::from_be_bytes(deadline.try_into().expect("8 bytes"));
        let value = Value::decode_payload(tag & !TAG_HAS_DEADLINE, raw.slice(9..))?;
        Ok(Entry::new(value, Some(deadline)))
    }
}

/// The instant at which `txn` decides expiry: the physical part (milliseconds since the Unix
/// epoch) of its start timestamp. See the module docs.
pub fn now_ms<T: Transaction>(txn: &T) -> u64 {
    txn.start_ts().physical()
}

/// The meta entry of Redis key `key` as `txn` sees it, whether or not it has expired.
pub async fn read_raw_entry<T: Transaction>(txn: &mut T, key: &[u8]) -> CommandResult<Option<Entry>> {
    txn.get(&data_key(key)).await?.map(Entry::decode).transpose()
}

/// The entry of Redis key `key`, if the key exists (has not expired at [`now_ms`]).
pub async fn read_entry<T: Transaction>(txn: &mut T, key: &[u8]) -> CommandResult<Option<Entry>> {
    let now = now_ms(txn);
    Ok(read_raw_entry(txn, key).await?.filter(|e| !e.is_expired(now)))
}

/// The value of Redis key `key`, if it exists.
pub async fn read_value<T: Transaction>(txn: &mut T, key: &[u8]) -> CommandResult<Option<Value>> {
    Ok(read_entry(txn, key).await?.map(|e| e.value))
}

/// Deletes Redis key `key`, whatever it holds (a hash's fields are orphaned, see the module
/// docs).
pub fn delete_key<T: Transaction>(txn: &mut T, key: &[u8]) {
    txn.delete(data_key(key));
}

/// Deletes the existing key whose entry is `entry`, with its expiry index entry.
pub fn delete_entry<T: Transaction>(txn: &mut T, key: &[u8], entry: &Entry) {
    if let Some(deadline) = entry.expires_at {
        txn.delete(expiry_index_key(deadline, key));
    }
    delete_key(txn, key);
}

/// Deletes Redis key `key` with its expiry index entry, if the key exists; whether it did.
pub async fn remove_key<T: Transaction>(txn: &mut T, key: &[u8]) -> CommandResult<bool> {
    let entry = read_entry(txn, key).await?;
    if let Some(entry) = &entry {
        delete_entry(txn, key, entry);
    }
    Ok(entry.is_some())
}

/// Makes `key` the string `value` with no timeout, whatever it held before.
pub fn write_string<T: Transaction>(txn: &mut T, key: &[u8], value: &[u8]) {
    txn.put(data_key(key), Value::encode_string(value));
}

/// Writes `key`'s entry, indexing its deadline. `replaced` is the entry it replaces, if known,
/// whose index entry goes.
pub fn write_entry<T: Transaction>(txn: &mut T, key: &[u8], entry: &Entry, replaced: Option<&Entry>) {
    if let Some(old) = replaced.and_then(|r| r.expires_at)
        && Some(old) != entry.expires_at
    {
        txn.delete(expiry_index_key(old, key));
    }
    if let Some(deadline) = entry.expires_at {
        txn.put(expiry_index_key(deadline, key), Bytes::new());
    }
    txn.put(data_key(key), entry.encode());
}

/// Gives `key` the value `value`, keeping the timeout it has (a changed string or hash keeps
/// its deadline, as `INCR`, `APPEND` and `HSET` do in Redis). A key that does not exist (or
/// has expired) gets none.
pub async fn rewrite_value<T: Transaction>(txn: &mut T, key: &[u8], value: Value) -> CommandResult<()> {
    // The deadline's index entry stays as it is.
    let expires_at = read_entry(txn, key).await?.and_then(|e| e.expires_at);
    txn.put(data_key(key), Entry::new(value, expires_at).encode());
    Ok(())
}

/// The expiry index entry of `key` expiring at `deadline_ms`.
pub fn expiry_index_key(deadline_ms: u64, key: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(1 + 8 + key.len());
    out.put_u8(EXPIRY_INDEX_PREFIX);
    out.put_u64(deadline_ms);
    out.put_slice(key);
    out.freeze()
}

/// The deadline and Redis key of an expiry index entry.
pub fn parse_expiry_index_key(index_key: &[u8]) -> Option<(u64, &[u8])> {
    let rest = index_key.strip_prefix(&[EXPIRY_INDEX_PREFIX])?;
    let deadline = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    Some((deadline, &rest[8..]))
}

/// The store range of the index entries of deadlines before `now_ms` (those whose keys have
/// expired at `now_ms`, since a key expires once the clock passes its deadline).
pub fn expired_index_range(now_ms: u64) -> (Bytes, Bytes) {
    (expiry_index_key(0, b""), expiry_index_key(now_ms, b""))
}

/// Tells garbage collection which collection parts (hash fields, list elements, set and sorted
/// set members) are orphans: their
/// collection's meta entry was replaced or deleted (by a commit old enough that no running
/// transaction reads the version) and names another version, or nothing.
pub struct HashFieldGcFilter;

impl GcFilter for HashFieldGcFilter {
    fn is_dead(
        &self,
        raw_key: &[u8],
        safe_point: TimeStamp,
        latest: &LatestFn<'_>,
    ) -> Result<bool, MvccError> {
        // Every store key starts with its database (see `db`).
        let Some((&db, raw_key)) = raw_key.split_first() else {
            return Ok(false);
        };
        let Some(&kind) = raw_key.first() else {
            return Ok(false);
        };
        let owner_tag = match kind {
            HASH_FIELD_PREFIX => TAG_HASH,
            LIST_ELEMENT_PREFIX => TAG_LIST,
            SET_MEMBER_PREFIX => TAG_SET,
            ZSET_MEMBER_PREFIX | ZSET_ASCENDING_PREFIX | ZSET_DESCENDING_PREFIX | ZSET_RANK_PREFIX => {
                TAG_ZSET
            }
            _ => return Ok(false),
        };
        let Some((key, version)) = parse_part_key(kind, raw_key) else {
            return Ok(false);
        };
        let Some(meta) = latest(&crate::resp::db::qualify(db, &data_key(key)))? else {
            // The key never had a meta entry it could be read through: nothing reads it.
            return Ok(true);
        };
        if meta.commit_ts > safe_point {
            return Ok(false);
        }
        let live = match meta.value.map(Bytes::from).map(Entry::decode) {
            Some(Ok(entry)) => entry.value.tag() == owner_tag && entry.value.version() == Some(version),
            None => false,
            Some(Err(_)) => true,
        };
        Ok(!live)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn every_store_key_names_its_owner() {
        let version = Version {
            created_at: TimeStamp::new(7),
            seq: 1,
        };
        assert_eq!(owner_of(&data_key(b"user:1")), Some(&b"user:1"[..]));
        assert_eq!(owner_of(&hash_field_key(b"h1", &version, b"f")), Some(&b"h1"[..]));
        assert_eq!(owner_of(&list_element_key(b"l1", &version, 7)), Some(&b"l1"[..]));
        assert_eq!(owner_of(&set_member_key(b"s1", &version, b"m")), Some(&b"s1"[..]));
        assert_eq!(
            owner_of(&zset_member_key(b"z1", &version, b"m")),
            Some(&b"z1"[..])
        );
        assert_eq!(owner_of(&expiry_index_key(5, b"k")), None);
        assert_eq!(owner_of(b"h\0\0"), None, "too short to say");
        assert_eq!(owner_of(b""), None);
    }
    use super::*;

    const VERSION: Version = Version {
        created_at: TimeStamp::new(99),
        seq: 0,
    };

    #[test]
    fn keys_round_trip_inside_the_keyspace_range() {
        let key = data_key(b"user:1");
        assert_eq!(&user_key(&key)[..], b"user:1");
        let (start, end) = keyspace_range();
        assert!(key.as_ref() >= start && key.as_ref() < end);
        assert!(data_key(b"\xff\xff").as_ref() < end);
        assert!(data_key(b"").as_ref() >= start);
        let (all_start, all_end) = all_data_range();
        assert!(all_start <= start && end <= all_end);
        let field = hash_field_key(b"h", &VERSION, b"f");
        assert!(
            field.as_ref() >= all_start && field.as_ref() < start,
            "fields are data, not keys"
        );
        assert_eq!(
            parse_part_key(HASH_FIELD_PREFIX, &field),
            Some((&b"h"[..], VERSION))
        );
        assert_eq!(parse_part_key(HASH_FIELD_PREFIX, b"kstring"), None);
    }

    #[test]
    fn one_hash_never_owns_another_keys_fields() {
        // Without the length prefix, hash "a" would own the fields of hash "ab".
        let a = hash_field_prefix(b"a", &VERSION);
        assert!(!hash_field_key(b"ab", &VERSION, b"x").starts_with(&a));
        assert!(hash_field_key(b"a", &VERSION, b"bx").starts_with(&a));
        let other = Version {
            created_at: TimeStamp::new(1),
            seq: 2,
        };
        assert!(
            !hash_field_key(b"a", &other, b"x").starts_with(&a),
            "versions keep incarnations apart"
        );
    }

    #[test]
    fn set_members_are_keyed_by_their_hash_inside_the_data_range() {
        let key = set_member_key(b"s", &VERSION, b"member");
        let prefix = set_member_prefix(b"s", &VERSION);
        assert!(key.starts_with(&prefix));
        assert_eq!(
            &key[prefix.len()..prefix.len() + 8],
            &member_hash(b"member").to_be_bytes()
        );
        assert_eq!(&set_member(&prefix, &key)[..], b"member");
        assert_eq!(
            parse_part_key(SET_MEMBER_PREFIX, &key),
            Some((&b"s"[..], VERSION))
        );
        // The hash is XXH3-64, fixed: stored data stays readable by every build.
        assert_eq!(member_hash(b""), 0x2d06800538d394c2);
        let (start, end) = all_data_range();
        let (keys_start, keys_end) = keyspace_range();
        assert!(key.as_ref() >= start && key.as_ref() < end);
        assert!(key.as_ref() >= keys_end || key.as_ref() < keys_start);
        let set = Entry::new(
            Value::Set(CollectionMeta {
                len: 3,
                version: VERSION,
            }),
            None,
        );
        assert_eq!(Entry::decode(set.encode()).unwrap(), set);
        assert_eq!(set.encode()[0], 0x03);
    }

    #[test]
    fn an_entry_head_says_type_and_deadline_from_its_first_bytes() {
        let long_string = Entry::new(Value::String(Bytes::from(vec![b'x'; 1000])), Some(1234));
        let list = Entry::new(
            Value::List(ListMeta {
                len: 1,
                head: -5,
                version: VERSION,
            }),
            None,
        );
        for (entry, name) in [(&long_string, "string"), (&list, "list")] {
            let encoded = entry.encode();
            let head = EntryHead::decode(&encoded[..ENTRY_HEAD_BYTES]).unwrap();
            assert_eq!(head.type_name(), name);
            assert_eq!(head.expires_at, entry.expires_at);
            assert_eq!(head.is_expired(1235), entry.is_expired(1235));
        }
        // A string without a deadline may be shorter than the head.
        let empty = Value::encode_string(b"");
        assert_eq!(EntryHead::decode(&empty).unwrap().expires_at, None);
        assert!(EntryHead::decode(b"").is_err());
        assert!(EntryHead::decode(&[0x80, 0, 0]).is_err(), "a deadline cut short");
        assert!(EntryHead::decode(&[0x07]).is_err(), "no such type");
    }

    #[test]
    fn prefix_end_skips_trailing_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }

    #[test]
    fn entries_round_trip_with_and_without_deadlines_and_corruption_is_an_error() {
        let meta = CollectionMeta {
            len: 7,
            version: VERSION,
        };
        for value in [Value::String(Bytes::from_static(b"hello")), Value::Hash(meta)] {
            for expires_at in [None, Some(1_700_000_000_123)] {
                let entry = Entry::new(value.clone(), expires_at);
                assert_eq!(Entry::decode(entry.encode()).unwrap(), entry);
            }
        }
        // The layout the module docs give, byte for byte.
        assert_eq!(&Value::encode_string(b"v")[..], b"\x00v");
        let with_deadline = Entry::new(Value::String(Bytes::from_static(b"v")), Some(0x0102));
        assert_eq!(&with_deadline.encode()[..], b"\x80\0\0\0\0\0\0\x01\x02v");
        assert_eq!(
            Entry::decode(Value::encode_string(b"")).unwrap().value,
            Value::String(Bytes::new())
        );
        for corrupt in [
            &b""[..],
            b"\x7fx",
            b"\x01short",
            b"\x80\0\0",
            b"\x81\0\0\0\0\0\0\0\x01short",
        ] {
            assert!(
                Entry::decode(Bytes::copy_from_slice(corrupt)).is_err(),
                "{corrupt:?}"
            );
        }
    }

    #[test]
    fn a_key_expires_once_the_clock_is_past_its_deadline() {
        let entry = Entry::new(Value::String(Bytes::new()), Some(1_000));
        assert!(!entry.is_expired(999));
        assert!(!entry.is_expired(1_000));
        assert!(entry.is_expired(1_001));
        assert!(!Entry::new(Value::String(Bytes::new()), None).is_expired(u64::MAX));
    }

    #[test]
    fn the_expiry_index_orders_by_deadline_and_its_due_range_is_exact() {
        let early = expiry_index_key(1_000, b"zzz");
        let late = expiry_index_key(1_001, b"aaa");
        assert!(early < late, "deadline first, then key");
        assert_eq!(parse_expiry_index_key(&early), Some((1_000, &b"zzz"[..])));
        assert_eq!(parse_expiry_index_key(b"k-not-an-index-key"), None);
        // At 1_001 the key of deadline 1_000 is due; the one of 1_001 is not yet.
        let (start, end) = expired_index_range(1_001);
        assert!(start <= early && early < end);
        assert!(late >= end);
        let (all_start, all_end) = all_data_range();
        let (keys_start, keys_end) = keyspace_range();
        assert!(
            early.as_ref() >= all_start && late.as_ref() < all_end,
            "FLUSHDB clears the index"
        );
        assert!(
            late.as_ref() < keys_start || early.as_ref() >= keys_end,
            "index entries are not keys"
        );
    }
}

#[cfg(test)]
mod gc_tests {
    use std::sync::Arc;

    use super::*;
    use crate::percolator::Commit;
    use crate::percolator::TxnClient;
    use crate::percolator::client::{ClientConfig, PercolatorClient};
    use crate::percolator::gc::version_count;
    use crate::percolator::key::Key;
    use crate::percolator::server::test_server;
    use crate::resp::db::{InDb, qualify};
    use crate::scheduler::tso::{EngineTsoStore, Tso, TsoClient, system_clock};
    use crate::storage::{Engine, MemoryEngine};

    /// Written in a database other than 0: the filter reads the database prefix.
    const DB: u8 = 3;

    #[tokio::test]
    async fn orphaned_fields_and_elements_are_collected_and_live_ones_kept() {
        let engine = MemoryEngine::new();
        let tso = TsoClient::start(Arc::new(
            Tso::open(EngineTsoStore(engine.clone()), system_clock(), 3_000).unwrap(),
        ));
        let (server, _driver) = test_server(engine.clone(), tso.clone());
        let server = Arc::new(
            Arc::into_inner(server)
                .expect("one owner")
                .with_gc_filter(HashFieldGcFilter),
        );
        let client = PercolatorClient::new(server, tso, ClientConfig::default());
        let version = |seq| Version {
            created_at: TimeStamp::new(1),
            seq,
        };
        // Two hashes and two lists; "gone" and "gone-list" are then replaced by strings, the
        // others stay. A list's element is not taken for a hash's field, or the reverse.
        let mut raw = client.begin().await.unwrap();
        let mut txn = InDb::new(&mut raw, DB);
        for (name, seq) in [(&b"gone-list"[..], 3), (b"kept-list", 4)] {
            txn.put(list_element_key(name, &version(seq), 0), Bytes::from_static(b"e"));
            let meta = ListMeta {
                len: 1,
                head: 0,
                version: version(seq),
            };
            txn.put(data_key(name), Entry::new(Value::List(meta), None).encode());
        }
        for (name, seq) in [(&b"gone"[..], 1), (b"kept", 2)] {
            txn.put(
                hash_field_key(name, &version(seq), b"f"),
                Bytes::from_static(b"v"),
            );
            txn.put(
                data_key(name),
                Entry::new(
                    Value::Hash(CollectionMeta {
                        len: 1,
                        version: version(seq),
                    }),
                    None,
                )
                .encode(),
            );
        }
        for (name, seq) in [(&b"gone-set"[..], 5), (b"kept-set", 6)] {
            txn.put(set_member_key(name, &version(seq), b"m"), Bytes::new());
            let meta = CollectionMeta {
                len: 1,
                version: version(seq),
            };
            txn.put(data_key(name), Entry::new(Value::Set(meta), None).encode());
        }
        for (name, seq) in [(&b"gone-zset"[..], 7), (b"kept-zset", 8)] {
            let version = version(seq);
            txn.put(zset_member_key(name, &version, b"m"), encode_score(1.0));
            for descending in [false, true] {
                let prefix = zset_order_prefix(name, &version, descending);
                txn.put(zset_order_key(&prefix, 1.0, b"m", descending), Bytes::new());
            }
            let meta = CollectionMeta { len: 1, version };
            txn.put(data_key(name), Entry::new(Value::ZSet(meta), None).encode());
        }
        raw.commit().await.unwrap();
        let mut raw = client.begin().await.unwrap();
        let mut txn = InDb::new(&mut raw, DB);
        write_string(&mut txn, b"gone", b"now a string");
        delete_key(&mut txn, b"gone-set");
        delete_key(&mut txn, b"gone-zset");
        write_string(&mut txn, b"gone-list", b"now a string");
        raw.commit().await.unwrap();

        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        client.gc(0).await.unwrap();
        let versions = |name: &[u8], seq| {
            version_count(
                &engine.snapshot(),
                &Key::from_raw(&qualify(DB, &hash_field_key(name, &version(seq), b"f"))),
            )
            .unwrap()
        };
        assert_eq!(versions(b"gone", 1), 0, "the orphaned field is gone");
        assert_eq!(versions(b"kept", 2), 1, "the live field stays");
        let elements = |name: &[u8], seq| {
            version_count(
                &engine.snapshot(),
                &Key::from_raw(&qualify(DB, &list_element_key(name, &version(seq), 0))),
            )
            .unwrap()
        };
        assert_eq!(elements(b"gone-list", 3), 0, "the orphaned element is gone");
        assert_eq!(elements(b"kept-list", 4), 1, "the live element stays");
        let members = |name: &[u8], seq| {
            version_count(
                &engine.snapshot(),
                &Key::from_raw(&qualify(DB, &set_member_key(name, &version(seq), b"m"))),
            )
            .unwrap()
        };
        assert_eq!(members(b"gone-set", 5), 0, "the deleted set's member is gone");
        assert_eq!(members(b"kept-set", 6), 1, "the live member stays");
        for (name, seq, kept) in [(&b"gone-zset"[..], 7, 0), (b"kept-zset", 8, 1)] {
            let version = version(seq);
            let mut parts = vec![zset_member_key(name, &version, b"m")];
            for descending in [false, true] {
                let prefix = zset_order_prefix(name, &version, descending);
                parts.push(zset_order_key(&prefix, 1.0, b"m", descending));
            }
            for part in parts {
                let count = version_count(&engine.snapshot(), &Key::from_raw(&qualify(DB, &part))).unwrap();
                assert_eq!(count, kept, "{part:?}");
            }
        }
    }
}
