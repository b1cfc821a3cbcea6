//! How Redis keys and values are laid out in the transactional store.
//!
//! Every Redis key has a *meta* entry: store key `k` ++ key, whose value is a one-byte type tag
//! and a payload. Types whose value has parts keep each part under its own store key, so a
//! command touches only the parts it needs:
//!
//! | tag | type | meta payload | parts |
//! |---|---|---|---|
//! | `0x00` | string | the bytes of the string | none |
//! | `0x01` | hash | field count u64, version (u64, u32) | `h` ++ len(key) u32 ++ key ++ version ++ field → value |
//!
//! All integers are big-endian. The length prefix keeps one hash's fields from running into
//! another key's.
//!
//! **Versions.** A hash's fields live under the version it got when it was created: the
//! creating transaction's `start_ts` (unique) and a sequence number within that transaction.
//! Replacing or deleting a hash therefore only rewrites its meta entry: the old fields become
//! unreachable at once (no command reads fields without first reading the meta, which names
//! the live version), so `SET`, `MSET` and `DEL` never scan fields, and a new hash under the
//! same name starts empty. Garbage collection removes the orphaned fields later
//! ([`HashFieldGcFilter`]).
//!
//! All data lives in `[h, l)`; the meta entries, one per Redis key, in `[k, l)`, so walking the
//! keyspace walks only meta entries.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{CommandError, CommandResult};
use crate::percolator::gc::{GcFilter, LatestFn};
use crate::percolator::{MvccError, Transaction};
use crate::scheduler::tso::TimeStamp;

const META_PREFIX: u8 = b'k';
const HASH_FIELD_PREFIX: u8 = b'h';
const TAG_STRING: u8 = 0x00;
const TAG_HASH: u8 = 0x01;
const HASH_META_BYTES: usize = 1 + 8 + 8 + 4;

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

/// The store range of every meta entry, one per Redis key: `[start, end)`.
pub fn keyspace_range() -> (&'static [u8], &'static [u8]) {
    (&[META_PREFIX], &[META_PREFIX + 1])
}

/// The store range of all Redis data, meta entries and parts: `[start, end)`.
pub fn all_data_range() -> (&'static [u8], &'static [u8]) {
    (&[HASH_FIELD_PREFIX], &[META_PREFIX + 1])
}

/// Which incarnation of a hash its fields belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashVersion {
    pub created_at: TimeStamp,
    pub seq: u32,
}

impl HashVersion {
    fn put(&self, out: &mut impl BufMut) {
        out.put_u64(self.created_at.into_inner());
        out.put_u32(self.seq);
    }
}

/// What a hash's meta entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashMeta {
    /// Fields in the hash; at least one (an empty hash does not exist).
    pub len: u64,
    pub version: HashVersion,
}

/// The store-key prefix of every field of one incarnation of hash `key`.
pub fn hash_field_prefix(key: &[u8], version: &HashVersion) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(key.len() + 17);
    prefix.push(HASH_FIELD_PREFIX);
    prefix.extend_from_slice(&(key.len() as u32).to_be_bytes());
    prefix.extend_from_slice(key);
    version.put(&mut prefix);
    prefix
}

/// The store key of field `field` of one incarnation of hash `key`.
pub fn hash_field_key(key: &[u8], version: &HashVersion, field: &[u8]) -> Bytes {
    let mut store_key = hash_field_prefix(key, version);
    store_key.extend_from_slice(field);
    Bytes::from(store_key)
}

/// The Redis key and version a field's store key belongs to, if it is a field key.
fn parse_hash_field_key(store_key: &[u8]) -> Option<(&[u8], HashVersion)> {
    let rest = store_key.strip_prefix(&[HASH_FIELD_PREFIX])?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let key = rest.get(4..4 + len)?;
    let version = rest.get(4 + len..4 + len + 12)?;
    Some((
        key,
        HashVersion {
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

/// What a meta entry holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    String(Bytes),
    Hash(HashMeta),
}

impl Value {
    pub fn encode_string(payload: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(payload.len() + 1);
        out.put_u8(TAG_STRING);
        out.put_slice(payload);
        out.freeze()
    }

    pub fn encode_hash(meta: &HashMeta) -> Bytes {
        let mut out = BytesMut::with_capacity(HASH_META_BYTES);
        out.put_u8(TAG_HASH);
        out.put_u64(meta.len);
        meta.version.put(&mut out);
        out.freeze()
    }

    pub fn decode(raw: Bytes) -> CommandResult<Value> {
        match raw.first() {
            Some(&TAG_STRING) => Ok(Value::String(raw.slice(1..))),
            Some(&TAG_HASH) if raw.len() == HASH_META_BYTES => {
                let u64_at = |at: usize| u64::from_be_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
                Ok(Value::Hash(HashMeta {
                    len: u64_at(1),
                    version: HashVersion {
                        created_at: TimeStamp::new(u64_at(9)),
                        seq: u32::from_be_bytes(raw[17..21].try_into().expect("4 bytes")),
                    },
                }))
            }
            _ => Err(CommandError::Other("corrupt value in the store".into())),
        }
    }

    /// The name `TYPE` answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Hash(_) => "hash",
        }
    }
}

/// The value of Redis key `key`, if it exists.
pub async fn read_value<T: Transaction>(txn: &mut T, key: &[u8]) -> CommandResult<Option<Value>> {
    txn.get(&data_key(key)).await?.map(Value::decode).transpose()
}

/// Deletes Redis key `key`, whatever it holds (a hash's fields are orphaned, see the module
/// docs).
pub fn delete_key<T: Transaction>(txn: &mut T, key: &[u8]) {
    txn.delete(data_key(key));
}

/// Makes `key` the string `value`, whatever it held before.
pub fn write_string<T: Transaction>(txn: &mut T, key: &[u8], value: &[u8]) {
    txn.put(data_key(key), Value::encode_string(value));
}

/// Tells garbage collection which hash fields are orphans: their hash's meta entry was replaced
/// or deleted (by a commit old enough that no running transaction reads the version) and names
/// another version, or nothing.
pub struct HashFieldGcFilter;

impl GcFilter for HashFieldGcFilter {
    fn is_dead(
        &self,
        raw_key: &[u8],
        safe_point: TimeStamp,
        latest: &LatestFn<'_>,
    ) -> Result<bool, MvccError> {
        let Some((key, version)) = parse_hash_field_key(raw_key) else {
            return Ok(false);
        };
        let Some(meta) = latest(&data_key(key))? else {
            // The key never had a meta entry it could be read through: nothing reads it.
            return Ok(true);
        };
        if meta.commit_ts > safe_point {
            return Ok(false);
        }
        let live = match meta.value.map(Bytes::from).map(Value::decode) {
            Some(Ok(Value::Hash(meta))) => meta.version == version,
            Some(Ok(Value::String(_))) | None => false,
            Some(Err(_)) => true,
        };
        Ok(!live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERSION: HashVersion = HashVersion {
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
        assert_eq!(parse_hash_field_key(&field), Some((&b"h"[..], VERSION)));
        assert_eq!(parse_hash_field_key(b"kstring"), None);
    }

    #[test]
    fn one_hash_never_owns_another_keys_fields() {
        // Without the length prefix, hash "a" would own the fields of hash "ab".
        let a = hash_field_prefix(b"a", &VERSION);
        assert!(!hash_field_key(b"ab", &VERSION, b"x").starts_with(&a));
        assert!(hash_field_key(b"a", &VERSION, b"bx").starts_with(&a));
        let other = HashVersion {
            created_at: TimeStamp::new(1),
            seq: 2,
        };
        assert!(
            !hash_field_key(b"a", &other, b"x").starts_with(&a),
            "versions keep incarnations apart"
        );
    }

    #[test]
    fn prefix_end_skips_trailing_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }

    #[test]
    fn values_round_trip_and_corruption_is_an_error() {
        let raw = Value::encode_string(b"hello");
        assert_eq!(
            Value::decode(raw).unwrap(),
            Value::String(Bytes::from_static(b"hello"))
        );
        let meta = HashMeta {
            len: 7,
            version: VERSION,
        };
        assert_eq!(
            Value::decode(Value::encode_hash(&meta)).unwrap(),
            Value::Hash(meta)
        );
        assert!(Value::decode(Bytes::new()).is_err());
        assert!(Value::decode(Bytes::from_static(b"\x7fx")).is_err());
        assert!(Value::decode(Bytes::from_static(b"\x01short")).is_err());
    }
}

#[cfg(test)]
mod gc_tests {
    use std::sync::Arc;

    use super::*;
    use crate::percolator::TxnClient;
    use crate::percolator::client::{ClientConfig, PercolatorClient};
    use crate::percolator::gc::version_count;
    use crate::percolator::key::Key;
    use crate::percolator::server::test_server;
    use crate::scheduler::tso::{EngineTsoStore, Tso, TsoClient, system_clock};
    use crate::storage::{Engine, MemoryEngine};

    #[tokio::test]
    async fn orphaned_fields_are_collected_and_live_ones_kept() {
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
        let version = |seq| HashVersion {
            created_at: TimeStamp::new(1),
            seq,
        };
        // Two hashes; "gone" is then replaced by a string, "kept" stays.
        let mut txn = client.begin().await.unwrap();
        for (name, seq) in [(&b"gone"[..], 1), (b"kept", 2)] {
            txn.put(
                hash_field_key(name, &version(seq), b"f"),
                Bytes::from_static(b"v"),
            );
            txn.put(
                data_key(name),
                Value::encode_hash(&HashMeta {
                    len: 1,
                    version: version(seq),
                }),
            );
        }
        txn.commit().await.unwrap();
        let mut txn = client.begin().await.unwrap();
        write_string(&mut txn, b"gone", b"now a string");
        txn.commit().await.unwrap();

        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        client.gc(0).await.unwrap();
        let versions = |name: &[u8], seq| {
            version_count(
                &engine.snapshot(),
                &Key::from_raw(&hash_field_key(name, &version(seq), b"f")),
            )
            .unwrap()
        };
        assert_eq!(versions(b"gone", 1), 0, "the orphaned field is gone");
        assert_eq!(versions(b"kept", 2), 1, "the live field stays");
    }
}
