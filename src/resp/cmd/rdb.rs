//! The payload of `DUMP` and `RESTORE`: one value in Redis's RDB serialization, then the RDB
//! version (2 bytes, little-endian) and a CRC-64 (Jones polynomial, as Redis computes it, 8
//! bytes little-endian) of everything before it. So a payload `DUMP`ed here can be `RESTORE`d
//! into Redis, and Redis's into ferrokv.
//!
//! [`encode`] writes the plain RDB types every Redis since 5.0 loads: a string (type 0), a list
//! of strings (1), a set (2), a hash (4), a sorted set with binary scores (5), with RDB version
//! 9. [`decode`] reads those, the older sorted set with text scores (3), and the compact
//! encodings Redis 7 itself dumps: intsets (11), hash, sorted set and set listpacks (16, 17,
//! 20) and quicklists of listpacks (18); strings stored as integers or LZF-compressed. It
//! refuses payloads of a later RDB version than Redis 7.2's (11), a wrong checksum, the
//! ziplist encodings of RDB files older than Redis 7 (which `DUMP` never produced for a
//! Redis 7 server), and streams and modules, which ferrokv does not have.

use bytes::{BufMut, Bytes, BytesMut};
use crc::{CRC_64_REDIS, Crc};

use super::contents::Contents;
use crate::resp::args::parse_f64;

/// The RDB version written after a payload: the oldest that has every type [`encode`] uses.
const WRITTEN_VERSION: u16 = 9;
/// The newest RDB version [`decode`] accepts (Redis 7.2's).
const NEWEST_VERSION: u16 = 11;

const TYPE_STRING: u8 = 0;
const TYPE_LIST: u8 = 1;
const TYPE_SET: u8 = 2;
const TYPE_ZSET: u8 = 3;
const TYPE_HASH: u8 = 4;
const TYPE_ZSET_2: u8 = 5;
const TYPE_SET_INTSET: u8 = 11;
const TYPE_HASH_LISTPACK: u8 = 16;
const TYPE_ZSET_LISTPACK: u8 = 17;
const TYPE_LIST_QUICKLIST_2: u8 = 18;
const TYPE_SET_LISTPACK: u8 = 20;

/// A quicklist node holding one element as it is rather than in a listpack.
const QUICKLIST_NODE_PLAIN: u64 = 1;

static CRC64: Crc<u64> = Crc::<u64>::new(&CRC_64_REDIS);

/// Why a payload cannot be restored; the text is Redis's error (after `ERR `).
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Too short, a version after Redis 7.2's, or a checksum that does not match.
    VersionOrChecksum,
    /// The value inside is malformed or of a type ferrokv does not have.
    BadFormat,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DecodeError::VersionOrChecksum => "DUMP payload version or checksum are wrong",
            DecodeError::BadFormat => "Bad data format",
        })
    }
}

/// The `DUMP` payload of `contents`.
pub fn encode(contents: &Contents) -> Bytes {
    let mut out = BytesMut::new();
    match contents {
        Contents::String(payload) => {
            out.put_u8(TYPE_STRING);
            put_string(&mut out, payload);
        }
        Contents::List(elements) => {
            out.put_u8(TYPE_LIST);
            put_len(&mut out, elements.len() as u64);
            elements.iter().for_each(|e| put_string(&mut out, e));
        }
        Contents::Set(members) => {
            out.put_u8(TYPE_SET);
            put_len(&mut out, members.len() as u64);
            members.iter().for_each(|m| put_string(&mut out, m));
        }
        Contents::ZSet(members) => {
            out.put_u8(TYPE_ZSET_2);
            put_len(&mut out, members.len() as u64);
            for (member, score) in members {
                put_string(&mut out, member);
                out.put_f64_le(*score);
            }
        }
        Contents::Hash(pairs) => {
            out.put_u8(TYPE_HASH);
            put_len(&mut out, pairs.len() as u64);
            for (field, value) in pairs {
                put_string(&mut out, field);
                put_string(&mut out, value);
            }
        }
    }
    out.put_u16_le(WRITTEN_VERSION);
    let checksum = CRC64.checksum(&out);
    out.put_u64_le(checksum);
    out.freeze()
}

/// The value a `DUMP` payload holds.
pub fn decode(payload: &[u8]) -> Result<Contents, DecodeError> {
    let Some(body_len) = payload.len().checked_sub(10) else {
        return Err(DecodeError::VersionOrChecksum);
    };
    let (body, footer) = payload.split_at(body_len);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let checksum = u64::from_le_bytes(footer[2..].try_into().expect("8 bytes"));
    // Redis skips the check for a zero checksum (a payload made with checksums turned off).
    if version > NEWEST_VERSION || (checksum != 0 && checksum != CRC64.checksum(&payload[..body_len + 2])) {
        return Err(DecodeError::VersionOrChecksum);
    }
    let mut reader = Reader { input: body };
    let contents = reader.value()?;
    if !reader.input.is_empty() {
        return Err(DecodeError::BadFormat);
    }
    Ok(contents)
}

/// An RDB length: 6 bits, 14 bits, or a marker and 32 or 64 bits big-endian.
fn put_len(out: &mut BytesMut, len: u64) {
    if len < 1 << 6 {
        out.put_u8(len as u8);
    } else if len < 1 << 14 {
        out.put_u16(0x4000 | len as u16);
    } else if len <= u64::from(u32::MAX) {
        out.put_u8(0x80);
        out.put_u32(len as u32);
    } else {
        out.put_u8(0x81);
        out.put_u64(len);
    }
}

/// A string as its length and its bytes (Redis also reads this for strings it would have
/// stored as integers or compressed).
fn put_string(out: &mut BytesMut, value: &[u8]) {
    put_len(out, value.len() as u64);
    out.put_slice(value);
}

/// A length, or a special string encoding (the 6 bits after a `11` marker).
enum Len {
    Plain(u64),
    Encoded(u8),
}

struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.input.len() < n {
            return Err(DecodeError::BadFormat);
        }
        let (taken, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn len_or_encoding(&mut self) -> Result<Len, DecodeError> {
        let first = self.byte()?;
        Ok(match first >> 6 {
            0 => Len::Plain(u64::from(first & 0x3f)),
            1 => Len::Plain(u64::from(first & 0x3f) << 8 | u64::from(self.byte()?)),
            2 => match first {
                0x80 => Len::Plain(u64::from(u32::from_be_bytes(
                    self.take(4)?.try_into().expect("4 bytes"),
                ))),
                0x81 => Len::Plain(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes"))),
                _ => return Err(DecodeError::BadFormat),
            },
            _ => Len::Encoded(first & 0x3f),
        })
    }

    fn len(&mut self) -> Result<usize, DecodeError> {
        match self.len_or_encoding()? {
            // No element count can exceed the bytes left (each element takes at least one).
            Len::Plain(len) if len <= self.input.len() as u64 => Ok(len as usize),
            _ => Err(DecodeError::BadFormat),
        }
    }

    fn string(&mut self) -> Result<Bytes, DecodeError> {
        match self.len_or_encoding()? {
            Len::Plain(len) => {
                let len = usize::try_from(len).map_err(|_| DecodeError::BadFormat)?;
                Ok(Bytes::copy_from_slice(self.take(len)?))
            }
            Len::Encoded(0) => Ok(Bytes::from((self.byte()? as i8).to_string())),
            Len::Encoded(1) => Ok(Bytes::from(
                i16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")).to_string(),
            )),
            Len::Encoded(2) => Ok(Bytes::from(
                i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")).to_string(),
            )),
            Len::Encoded(3) => {
                let compressed_len = self.len()?;
                let len = match self.len_or_encoding()? {
                    Len::Plain(len) => usize::try_from(len).map_err(|_| DecodeError::BadFormat)?,
                    Len::Encoded(_) => return Err(DecodeError::BadFormat),
                };
                lzf_decompress(self.take(compressed_len)?, len).map(Bytes::from)
            }
            Len::Encoded(_) => Err(DecodeError::BadFormat),
        }
    }

    /// A sorted set score of the old text form: a length byte, or 253/254/255 for NaN, +inf
    /// and -inf.
    fn text_score(&mut self) -> Result<f64, DecodeError> {
        match self.byte()? {
            253 => Err(DecodeError::BadFormat),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            len => parse_f64(self.take(usize::from(len))?).ok_or(DecodeError::BadFormat),
        }
    }

    fn value(&mut self) -> Result<Contents, DecodeError> {
        let kind = self.byte()?;
        Ok(match kind {
            TYPE_STRING => Contents::String(self.string()?),
            TYPE_LIST => Contents::List(self.strings()?),
            TYPE_SET => Contents::Set(self.strings()?),
            TYPE_ZSET | TYPE_ZSET_2 => {
                let len = self.len()?;
                let mut members = Vec::with_capacity(len);
                for _ in 0..len {
                    let member = self.string()?;
                    let score = if kind == TYPE_ZSET {
                        self.text_score()?
                    } else {
                        f64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"))
                    };
                    members.push((member, score));
                }
                Contents::ZSet(members)
            }
            TYPE_HASH => {
                let len = self.len()?;
                let mut pairs = Vec::with_capacity(len);
                for _ in 0..len {
                    pairs.push((self.string()?, self.string()?));
                }
                Contents::Hash(pairs)
            }
            TYPE_SET_INTSET => Contents::Set(intset(&self.string()?)?),
            TYPE_SET_LISTPACK => Contents::Set(listpack(&self.string()?)?),
            TYPE_HASH_LISTPACK => Contents::Hash(pairs(listpack(&self.string()?)?)?),
            TYPE_ZSET_LISTPACK => {
                let members = pairs(listpack(&self.string()?)?)?;
                Contents::ZSet(
                    members
                        .into_iter()
                        .map(|(m, s)| parse_f64(&s).map(|s| (m, s)).ok_or(DecodeError::BadFormat))
                        .collect::<Result<_, _>>()?,
                )
            }
            TYPE_LIST_QUICKLIST_2 => {
                let nodes = self.len()?;
                let mut elements = Vec::new();
                for _ in 0..nodes {
                    let container = match self.len_or_encoding()? {
                        Len::Plain(container) => container,
                        Len::Encoded(_) => return Err(DecodeError::BadFormat),
                    };
                    let node = self.string()?;
                    if container == QUICKLIST_NODE_PLAIN {
                        elements.push(node);
                    } else {
                        elements.extend(listpack(&node)?);
                    }
                }
                Contents::List(elements)
            }
            _ => return Err(DecodeError::BadFormat),
        })
    }

    fn strings(&mut self) -> Result<Vec<Bytes>, DecodeError> {
        let len = self.len()?;
        (0..len).map(|_| self.string()).collect()
    }
}

/// Alternate elements as (field, value) pairs.
fn pairs(elements: Vec<Bytes>) -> Result<Vec<(Bytes, Bytes)>, DecodeError> {
    if !elements.len().is_multiple_of(2) {
        return Err(DecodeError::BadFormat);
    }
    let mut elements = elements.into_iter();
    let mut out = Vec::new();
    while let (Some(first), Some(second)) = (elements.next(), elements.next()) {
        out.push((first, second));
    }
    Ok(out)
}

/// The members of an intset: encoding (bytes per integer: 2, 4 or 8) and count, u32
/// little-endian each, then the integers, little-endian.
fn intset(blob: &[u8]) -> Result<Vec<Bytes>, DecodeError> {
    let header = blob.get(..8).ok_or(DecodeError::BadFormat)?;
    let width = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let count = u32::from_le_bytes(header[4..].try_into().expect("4 bytes")) as usize;
    if ![2, 4, 8].contains(&width) || blob.len() != 8 + width * count {
        return Err(DecodeError::BadFormat);
    }
    Ok(blob[8..]
        .chunks(width)
        .map(|raw| {
            let value = match width {
                2 => i64::from(i16::from_le_bytes(raw.try_into().expect("2 bytes"))),
                4 => i64::from(i32::from_le_bytes(raw.try_into().expect("4 bytes"))),
                _ => i64::from_le_bytes(raw.try_into().expect("8 bytes")),
            };
            Bytes::from(value.to_string())
        })
        .collect())
}

/// The elements of a listpack: total bytes (u32) and count (u16), little-endian, then each
/// element as an encoding byte, its data and its length backwards (1 to 5 bytes), then 0xff.
/// Integers come out as their decimal text, as Redis answers them.
fn listpack(blob: &[u8]) -> Result<Vec<Bytes>, DecodeError> {
    let bad = || DecodeError::BadFormat;
    let total = u32::from_le_bytes(blob.get(..4).ok_or_else(bad)?.try_into().expect("4 bytes")) as usize;
    if total != blob.len() || blob.len() < 7 || blob[blob.len() - 1] != 0xff {
        return Err(bad());
    }
    let mut at = 6;
    let mut elements = Vec::new();
    let field = |from: usize, len: usize| blob.get(from..from + len).ok_or_else(bad);
    let int_le = |raw: &[u8]| {
        let mut bytes = [0u8; 8];
        bytes[..raw.len()].copy_from_slice(raw);
        // Sign-extend from the top bit of the raw integer.
        let shift = 64 - 8 * raw.len() as u32;
        (i64::from_le_bytes(bytes) << shift) >> shift
    };
    while blob[at] != 0xff {
        let encoding = blob[at];
        let (element, entry_len) = if encoding & 0x80 == 0 {
            (Bytes::from((encoding & 0x7f).to_string()), 1)
        } else if encoding & 0xc0 == 0x80 {
            let len = usize::from(encoding & 0x3f);
            (Bytes::copy_from_slice(field(at + 1, len)?), 1 + len)
        } else if encoding & 0xe0 == 0xc0 {
            let raw =
                (u16::from(encoding & 0x1f) << 8 | u16::from(*blob.get(at + 1).ok_or_else(bad)?)) as i16;
            // A 13-bit two's complement integer.
            (Bytes::from(((raw << 3) >> 3).to_string()), 2)
        } else if encoding & 0xf0 == 0xe0 {
            let len = usize::from(encoding & 0x0f) << 8 | usize::from(*blob.get(at + 1).ok_or_else(bad)?);
            (Bytes::copy_from_slice(field(at + 2, len)?), 2 + len)
        } else {
            let int_width = match encoding {
                0xf0 => 0,
                0xf1 => 2,
                0xf2 => 3,
                0xf3 => 4,
                0xf4 => 8,
                _ => return Err(bad()),
            };
            if int_width == 0 {
                let len = u32::from_le_bytes(field(at + 1, 4)?.try_into().expect("4 bytes")) as usize;
                (Bytes::copy_from_slice(field(at + 5, len)?), 5 + len)
            } else {
                let value = int_le(field(at + 1, int_width)?);
                (Bytes::from(value.to_string()), 1 + int_width)
            }
        };
        let backlen_bytes = match entry_len {
            0..128 => 1,
            128..16_384 => 2,
            16_384..2_097_152 => 3,
            2_097_152..268_435_456 => 4,
            _ => 5,
        };
        at += entry_len + backlen_bytes;
        if at >= blob.len() {
            return Err(bad());
        }
        elements.push(element);
    }
    if at != blob.len() - 1 {
        return Err(bad());
    }
    Ok(elements)
}

/// LZF decompression (Marc Lehmann's format, as Redis uses it) of `input` into exactly `len`
/// bytes. A control byte below 32 starts a literal run of that many plus one bytes; above, its
/// top three bits are a back-reference's length minus two (7: a length byte follows) and its
/// low five bits with the next byte the distance back minus one.
fn lzf_decompress(input: &[u8], len: usize) -> Result<Vec<u8>, DecodeError> {
    let bad = || DecodeError::BadFormat;
    let mut out = Vec::with_capacity(len);
    let mut at = 0;
    while at < input.len() {
        let control = usize::from(input[at]);
        at += 1;
        if control < 32 {
            let run = input.get(at..at + control + 1).ok_or_else(bad)?;
            out.extend_from_slice(run);
            at += control + 1;
        } else {
            let mut copy = control >> 5;
            if copy == 7 {
                copy += usize::from(*input.get(at).ok_or_else(bad)?);
                at += 1;
            }
            let distance = ((control & 0x1f) << 8 | usize::from(*input.get(at).ok_or_else(bad)?)) + 1;
            at += 1;
            let from = out.len().checked_sub(distance).ok_or_else(bad)?;
            // The source may overlap what this copy writes (a run), so byte by byte.
            for i in 0..copy + 2 {
                let byte = out[from + i];
                out.push(byte);
            }
        }
        if out.len() > len {
            return Err(bad());
        }
    }
    if out.len() != len {
        return Err(bad());
    }
    Ok(out)
}

/// A score as Redis's old text form would write it (for tests of that form).
#[cfg(test)]
fn text_score(score: f64) -> Vec<u8> {
    let text = crate::resp::reply::format_double(score);
    let mut out = vec![text.len() as u8];
    out.extend_from_slice(text.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn b(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    /// Payloads `DUMP` returned from redis-server 7.0.15 (Debian's package), each value made
    /// by the commands in the comment.
    #[test]
    fn restores_what_redis_7_dumps() {
        // SET s1 hello
        assert_eq!(
            decode(&hex("000568656c6c6f0a006372df766534200a")),
            Ok(Contents::String(b("hello")))
        );
        // SET s2 12345 (an integer-encoded string)
        assert_eq!(
            decode(&hex("00c139300a009d94ea2793fc08b9")),
            Ok(Contents::String(b("12345")))
        );
        // SET s3 -70000
        assert_eq!(
            decode(&hex("00c290eefeff0a002875de7b13eb2800")),
            Ok(Contents::String(b("-70000")))
        );
        // SET s4 <60 times x>abc (LZF-compressed)
        assert_eq!(
            decode(&hex("00c30a3f017878e03100026162630a0086f7b6c9fe8a5a92")),
            Ok(Contents::String(Bytes::from(format!("{}abc", "x".repeat(60)))))
        );
        // RPUSH l1 a bb 7 -300 100000 (a quicklist of one listpack)
        assert_eq!(
            decode(&hex(
                "12010218180000000500816102826262030701ded402f2a0860104ff0a00be5a035bc7b40048"
            )),
            Ok(Contents::List(vec![
                b("a"),
                b("bb"),
                b("7"),
                b("-300"),
                b("100000")
            ]))
        );
        // SADD i1 1 5 -3 (an intset)
        assert_eq!(
            decode(&hex("0b0e0200000003000000fdff010005000a007e2b589563748fa4")),
            Ok(Contents::Set(vec![b("-3"), b("1"), b("5")]))
        );
        // SADD ss a b c (a hash table set)
        assert_eq!(
            decode(&hex("02030162016101630a0099cc80dd5982d255")),
            Ok(Contents::Set(vec![b("b"), b("a"), b("c")]))
        );
        // HSET h1 f1 v1 f2 2 (a listpack)
        assert_eq!(
            decode(&hex(
                "10151500000004008266310382763103826632030201ff0a005c5ea813feec1ff5"
            )),
            Ok(Contents::Hash(vec![(b("f1"), b("v1")), (b("f2"), b("2"))]))
        );
        // ZADD z1 1.5 a -2 b inf c (a listpack)
        assert_eq!(
            decode(&hex(
                "111d1d0000000600816202dffe0281610283312e350481630283696e6604ff0a007356ad6cc2484ad0"
            )),
            Ok(Contents::ZSet(vec![
                (b("b"), -2.0),
                (b("a"), 1.5),
                (b("c"), f64::INFINITY)
            ]))
        );
    }

    #[test]
    fn what_is_dumped_restores() {
        let values = [
            Contents::String(b("hello")),
            Contents::String(Bytes::from(vec![0u8; 70_000])),
            Contents::List((0..300).map(|i| Bytes::from(format!("e{i}"))).collect()),
            Contents::Set(vec![b("a"), b(""), b("1")]),
            Contents::ZSet(vec![(b("a"), 1.5), (b("b"), f64::NEG_INFINITY), (b("c"), -0.25)]),
            Contents::Hash(vec![(b("f"), b("v")), (b("g"), b(""))]),
        ];
        for value in values {
            assert_eq!(decode(&encode(&value)), Ok(value));
        }
    }

    #[test]
    fn a_string_dumps_as_redis_dumps_it_but_for_the_version() {
        let ours = encode(&Contents::String(b("hello")));
        let redis = hex("000568656c6c6f0a006372df766534200a");
        assert_eq!(ours[..7], redis[..7], "type and string");
        assert_eq!(ours[7..9], [9, 0], "RDB version 9");
    }

    #[test]
    fn damaged_payloads_are_refused() {
        let good = encode(&Contents::List(vec![b("a"), b("b")]));
        let mut flipped = good.to_vec();
        flipped[3] ^= 1;
        assert_eq!(decode(&flipped), Err(DecodeError::VersionOrChecksum));
        assert_eq!(decode(&good[..5]), Err(DecodeError::VersionOrChecksum));
        let mut future = good.to_vec();
        let body = future.len() - 10;
        future[body] = 12;
        assert_eq!(decode(&future), Err(DecodeError::VersionOrChecksum));

        // Well-formed checksums around malformed bodies.
        let seal = |body: &[u8]| {
            let mut out = body.to_vec();
            out.extend_from_slice(&9u16.to_le_bytes());
            let checksum = CRC64.checksum(&out);
            out.extend_from_slice(&checksum.to_le_bytes());
            out
        };
        assert_eq!(
            decode(&seal(&[TYPE_LIST, 5, 1, b'a'])),
            Err(DecodeError::BadFormat)
        );
        assert_eq!(decode(&seal(&[15, 0])), Err(DecodeError::BadFormat), "a stream");
        assert_eq!(
            decode(&seal(&[TYPE_STRING, 1, b'a', b'b'])),
            Err(DecodeError::BadFormat)
        );
        assert_eq!(
            decode(&seal(&[TYPE_HASH_LISTPACK, 3, 1, 2, 3])),
            Err(DecodeError::BadFormat)
        );
        // An LZF back-reference before the start.
        assert_eq!(
            decode(&seal(&[TYPE_STRING, 0xc3, 2, 4, 0x20, 0x05])),
            Err(DecodeError::BadFormat)
        );
        let mut old_zset = vec![TYPE_ZSET, 1, 1, b'm'];
        old_zset.extend(text_score(2.5));
        assert_eq!(decode(&seal(&old_zset)), Ok(Contents::ZSet(vec![(b("m"), 2.5)])));
    }
}
