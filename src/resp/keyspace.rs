//! How Redis keys and values are laid out in the transactional store.
//!
//! Every Redis key has a *meta* entry: store key `k` ++ key, whose value is a one-byte type tag
//! and a payload. Types whose value has parts keep each part under its own store key, so a
//! command touches only the parts it needs:
//!
//! | tag | type | meta payload | parts |
//! |---|---|---|---|
//! | `0x00` | string | the bytes of the string | none |
//! | `0x01` | hash | field count, u64 big-endian | `h` ++ len(key) as u32 big-endian ++ key ++ field → value |
//!
//! The length prefix keeps one hash's fields from running into another key's: no key's field
//! range is a prefix of another's. All data lives in `[h, l)`; the meta entries, one per Redis
//! key, in `[k, l)`, so walking the keyspace walks only meta entries.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{CommandError, CommandResult};
use crate::percolator::Transaction;

const META_PREFIX: u8 = b'k';
const HASH_FIELD_PREFIX: u8 = b'h';
const TAG_STRING: u8 = 0x00;
const TAG_HASH: u8 = 0x01;

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

/// The store-key prefix of every field of hash `key`.
pub fn hash_field_prefix(key: &[u8]) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(key.len() + 5);
    prefix.push(HASH_FIELD_PREFIX);
    prefix.extend_from_slice(&(key.len() as u32).to_be_bytes());
    prefix.extend_from_slice(key);
    prefix
}

/// The store key of field `field` of hash `key`.
pub fn hash_field_key(key: &[u8], field: &[u8]) -> Bytes {
    let mut store_key = hash_field_prefix(key);
    store_key.extend_from_slice(field);
    Bytes::from(store_key)
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
    /// A hash with `len` fields (at least one: an empty hash does not exist).
    Hash {
        len: u64,
    },
}

impl Value {
    pub fn encode_string(payload: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(payload.len() + 1);
        out.put_u8(TAG_STRING);
        out.put_slice(payload);
        out.freeze()
    }

    pub fn encode_hash(len: u64) -> Bytes {
        let mut out = BytesMut::with_capacity(9);
        out.put_u8(TAG_HASH);
        out.put_u64(len);
        out.freeze()
    }

    pub fn decode(raw: Bytes) -> CommandResult<Value> {
        match raw.first() {
            Some(&TAG_STRING) => Ok(Value::String(raw.slice(1..))),
            Some(&TAG_HASH) if raw.len() == 9 => {
                let len = u64::from_be_bytes(raw[1..9].try_into().expect("8 bytes"));
                Ok(Value::Hash { len })
            }
            _ => Err(CommandError::Other("corrupt value in the store".into())),
        }
    }

    /// The name `TYPE` answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Hash { .. } => "hash",
        }
    }
}

/// The value of Redis key `key`, if it exists.
pub async fn read_value<T: Transaction>(txn: &mut T, key: &[u8]) -> CommandResult<Option<Value>> {
    txn.get(&data_key(key)).await?.map(Value::decode).transpose()
}

/// Deletes Redis key `key`, which holds `old`, with all its parts.
pub async fn delete_key<T: Transaction>(txn: &mut T, key: &[u8], old: &Value) -> CommandResult<()> {
    if let Value::Hash { .. } = old {
        let prefix = hash_field_prefix(key);
        let end = prefix_end(&prefix);
        let fields = txn.scan(&prefix, end.as_deref(), usize::MAX).await?;
        for (field_key, _) in fields {
            txn.delete(field_key);
        }
    }
    txn.delete(data_key(key));
    Ok(())
}

/// Makes `key` the string `value`, whatever it held before (`old`, as read in this
/// transaction).
pub async fn write_string<T: Transaction>(
    txn: &mut T,
    key: &[u8],
    value: &[u8],
    old: Option<&Value>,
) -> CommandResult<()> {
    if let Some(old @ Value::Hash { .. }) = old {
        delete_key(txn, key, old).await?;
    }
    txn.put(data_key(key), Value::encode_string(value));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let field = hash_field_key(b"h", b"f");
        assert!(
            field.as_ref() >= all_start && field.as_ref() < start,
            "fields are data, not keys"
        );
    }

    #[test]
    fn one_hash_never_owns_another_keys_fields() {
        // Without the length prefix, hash "a" would own the fields of hash "ab".
        let a = hash_field_prefix(b"a");
        assert!(!hash_field_key(b"ab", b"x").starts_with(&a));
        assert!(hash_field_key(b"a", b"bx").starts_with(&a));
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
        assert_eq!(
            Value::decode(Value::encode_hash(7)).unwrap(),
            Value::Hash { len: 7 }
        );
        assert!(Value::decode(Bytes::new()).is_err());
        assert!(Value::decode(Bytes::from_static(b"\x7fx")).is_err());
        assert!(Value::decode(Bytes::from_static(b"\x01short")).is_err());
    }
}
