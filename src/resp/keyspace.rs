//! How Redis keys and values are laid out in the transactional store.
//!
//! A Redis key `K` is the store key `k` ++ `K`; its value is a one-byte type tag followed by
//! the payload. Everything under other prefixes is reserved for later use (per-type
//! sub-keys, metadata), so a scan of the keyspace is a scan of `[k, l)`.
//!
//! | tag | type | payload |
//! |---|---|---|
//! | `0x00` | string | the bytes of the string |

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{CommandError, CommandResult};

const DATA_PREFIX: u8 = b'k';
const TAG_STRING: u8 = 0x00;

/// The store key of a Redis key.
pub fn data_key(user_key: &[u8]) -> Bytes {
    let mut key = BytesMut::with_capacity(user_key.len() + 1);
    key.put_u8(DATA_PREFIX);
    key.put_slice(user_key);
    key.freeze()
}

/// The Redis key of a store key from the keyspace.
pub fn user_key(data_key: &Bytes) -> Bytes {
    debug_assert_eq!(
        data_key.first(),
        Some(&DATA_PREFIX),
        "a key from the keyspace range"
    );
    data_key.slice(1..)
}

/// The store range that holds every Redis key: `[start, end)`.
pub fn keyspace_range() -> (&'static [u8], &'static [u8]) {
    (&[DATA_PREFIX], &[DATA_PREFIX + 1])
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

/// A stored Redis value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    String(Bytes),
}

impl Value {
    pub fn encode_string(payload: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(payload.len() + 1);
        out.put_u8(TAG_STRING);
        out.put_slice(payload);
        out.freeze()
    }

    pub fn decode(raw: Bytes) -> CommandResult<Value> {
        match raw.first() {
            Some(&TAG_STRING) => Ok(Value::String(raw.slice(1..))),
            _ => Err(CommandError::Other("corrupt value in the store".into())),
        }
    }

    /// The name `TYPE` answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
        }
    }
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
        assert!(Value::decode(Bytes::new()).is_err());
        assert!(Value::decode(Bytes::from_static(b"\x7fx")).is_err());
    }
}
