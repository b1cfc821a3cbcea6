//! MVCC keys: user keys in memcomparable form, with an inverted timestamp appended.
//!
//! **Memcomparable bytes.** A user key is cut into groups of 8 bytes; the last group is padded
//! with zeros; each group is followed by a marker byte `0xFF - padding`. So `[]` encodes as
//! `[0 ×8, 0xF7]` and `[1, 2, 3]` as `[1, 2, 3, 0, 0, 0, 0, 0, 0xFA]`. Encoded keys compare in
//! the same order as the user keys, and no encoded key is a prefix of another, so a timestamp
//! can follow without upsetting the order.
//!
//! **Timestamps.** `encode(key) ++ big-endian(!ts)`: inverted, so for one user key the newest
//! version sorts first, and a seek to `(key, ts)` lands on the newest version at or below `ts`.

use super::MvccError;
use crate::scheduler::tso::TimeStamp;

const GROUP_BYTES: usize = 8;
const MARKER: u8 = 0xFF;
const TS_BYTES: usize = 8;

/// A user key in memcomparable form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(Vec<u8>);

impl Key {
    /// Encodes a user key.
    pub fn from_raw(user_key: &[u8]) -> Key {
        let mut out = Vec::with_capacity((user_key.len() / GROUP_BYTES + 1) * (GROUP_BYTES + 1));
        let mut chunks = user_key.chunks_exact(GROUP_BYTES);
        for chunk in &mut chunks {
            out.extend_from_slice(chunk);
            out.push(MARKER);
        }
        let rest = chunks.remainder();
        let padding = GROUP_BYTES - rest.len();
        out.extend_from_slice(rest);
        out.extend(std::iter::repeat_n(0, padding));
        out.push(MARKER - padding as u8);
        Key(out)
    }

    /// Wraps bytes that are already an encoded key (without a timestamp).
    pub fn from_encoded(encoded: Vec<u8>) -> Key {
        Key(encoded)
    }

    pub fn as_encoded(&self) -> &[u8] {
        &self.0
    }

    /// The user key back.
    pub fn to_raw(&self) -> Result<Vec<u8>, MvccError> {
        let (raw, used) = decode_bytes(&self.0)?;
        if used != self.0.len() {
            return Err(MvccError::BadFormat("trailing bytes after an encoded key".into()));
        }
        Ok(raw)
    }

    /// `self ++ !ts`: the key of this user key's version at `ts`.
    pub fn append_ts(&self, ts: TimeStamp) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() + TS_BYTES);
        out.extend_from_slice(&self.0);
        out.extend_from_slice(&(!ts.into_inner()).to_be_bytes());
        out
    }

    /// The first store key after every version of this user key.
    pub fn versions_end(&self) -> Vec<u8> {
        let mut out = self.append_ts(TimeStamp::ZERO);
        out.push(0);
        out
    }
}

/// Splits a versioned key into the encoded user key and the timestamp.
pub fn split_ts(versioned: &[u8]) -> Result<(Key, TimeStamp), MvccError> {
    let (key, ts) = split_ts_ref(versioned)?;
    Ok((Key(key.to_vec()), ts))
}

/// [`split_ts`] without copying: the encoded user key as a slice of `versioned`.
pub fn split_ts_ref(versioned: &[u8]) -> Result<(&[u8], TimeStamp), MvccError> {
    if versioned.len() < TS_BYTES + GROUP_BYTES + 1 {
        return Err(MvccError::BadFormat(format!(
            "versioned key of {} bytes is too short",
            versioned.len()
        )));
    }
    let (key, ts) = versioned.split_at(versioned.len() - TS_BYTES);
    let ts = !u64::from_be_bytes(ts.try_into().expect("8 bytes"));
    Ok((key, TimeStamp::new(ts)))
}

/// Decodes one memcomparable key from the front of `encoded`: the user key and the bytes used.
fn decode_bytes(encoded: &[u8]) -> Result<(Vec<u8>, usize), MvccError> {
    let mut out = Vec::with_capacity(encoded.len() / (GROUP_BYTES + 1) * GROUP_BYTES);
    let mut at = 0;
    loop {
        let group = encoded
            .get(at..at + GROUP_BYTES + 1)
            .ok_or_else(|| MvccError::BadFormat("truncated memcomparable key".into()))?;
        at += GROUP_BYTES + 1;
        let padding = (MARKER - group[GROUP_BYTES]) as usize;
        if padding == 0 {
            out.extend_from_slice(&group[..GROUP_BYTES]);
            continue;
        }
        if padding > GROUP_BYTES || group[GROUP_BYTES - padding..GROUP_BYTES].iter().any(|&b| b != 0) {
            return Err(MvccError::BadFormat("bad padding in a memcomparable key".into()));
        }
        out.extend_from_slice(&group[..GROUP_BYTES - padding]);
        return Ok((out, at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Region boundaries are encoded user keys; every version of a user key falls on the same
    /// side of any boundary as the key itself (see `raftstore::meta::Region`).
    #[test]
    fn a_region_boundary_never_separates_a_keys_versions() {
        let keys: [&[u8]; 6] = [b"", b"a", b"a\x00", b"abcdefgh", b"abcdefgh\x00", b"b"];
        for boundary in keys {
            let boundary = Key::from_raw(boundary);
            for key in keys {
                let key = Key::from_raw(key);
                let below = key < boundary;
                for ts in [TimeStamp::ZERO, TimeStamp::new(42), TimeStamp::MAX] {
                    assert_eq!(
                        key.append_ts(ts).as_slice() < boundary.as_encoded(),
                        below,
                        "{key:?} at {ts} against {boundary:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn encoding_matches_the_documented_examples() {
        assert_eq!(Key::from_raw(&[]).as_encoded(), &[0, 0, 0, 0, 0, 0, 0, 0, 0xF7]);
        assert_eq!(
            Key::from_raw(&[1, 2, 3]).as_encoded(),
            &[1, 2, 3, 0, 0, 0, 0, 0, 0xFA]
        );
        assert_eq!(Key::from_raw(&[42]).append_ts(TimeStamp::ZERO), {
            let mut v = vec![42, 0, 0, 0, 0, 0, 0, 0, 0xF8];
            v.extend([0xFF; 8]);
            v
        });
        let eight = Key::from_raw(&[9; 8]);
        assert_eq!(
            eight.as_encoded().len(),
            18,
            "a full group is followed by an empty one"
        );
    }

    #[test]
    fn round_trips() {
        for raw in [
            &b""[..],
            b"a",
            b"12345678",
            b"123456789",
            b"\x00\xff\x00",
            &[0xff; 20],
        ] {
            let key = Key::from_raw(raw);
            assert_eq!(key.to_raw().unwrap(), raw);
            let versioned = key.append_ts(TimeStamp::new(12345));
            let (back, ts) = split_ts(&versioned).unwrap();
            assert_eq!(back, key);
            assert_eq!(ts, TimeStamp::new(12345));
        }
    }

    #[test]
    fn order_is_key_ascending_then_ts_descending() {
        let raws: [&[u8]; 7] = [b"", b"\x00", b"a", b"a\x00", b"ab", b"abcdefgh", b"abcdefgh\x00"];
        for pair in raws.windows(2) {
            assert!(Key::from_raw(pair[0]) < Key::from_raw(pair[1]), "{pair:?}");
            // All versions of the smaller key sort before any version of the larger one.
            assert!(
                Key::from_raw(pair[0]).append_ts(TimeStamp::ZERO)
                    < Key::from_raw(pair[1]).append_ts(TimeStamp::MAX)
            );
        }
        let key = Key::from_raw(b"k");
        assert!(key.append_ts(TimeStamp::new(10)) < key.append_ts(TimeStamp::new(9)));
        assert!(key.append_ts(TimeStamp::ZERO) < key.versions_end());
        assert!(key.versions_end() < Key::from_raw(b"k\x00").append_ts(TimeStamp::MAX));
    }

    #[test]
    fn malformed_keys_are_errors_not_panics() {
        assert!(Key::from_encoded(vec![1, 2, 3]).to_raw().is_err());
        assert!(
            Key::from_encoded(vec![1, 0, 0, 0, 0, 0, 0, 5, 0xF8])
                .to_raw()
                .is_err()
        );
        assert!(split_ts(&[1, 2]).is_err());
    }
}
