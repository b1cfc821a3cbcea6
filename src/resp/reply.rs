//! Replies, and their encoding in RESP2 or RESP3 through the `redis-protocol` crate.
//!
//! Commands build a [`Reply`], which says what to answer independently of the protocol
//! version; [`Reply::encode`] renders it for the connection's version. RESP3-only shapes fall
//! back the way Redis falls back: a map becomes a flat array, a set an array, a double a bulk
//! string, and both nulls become `$-1` or `*-1`.

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::types::BytesFrame as Frame2;
use redis_protocol::resp3::types::{BytesFrame as Frame3, FrameMap, FrameSet, VerbatimStringFormat};

/// The protocol version a connection speaks (`HELLO 2|3`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

impl Protocol {
    pub fn number(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// What a command answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// A simple string, such as `OK` or `QUEUED`.
    Simple(&'static str),
    /// A simple string built at run time (no CR or LF inside).
    Status(String),
    /// An error; the text starts with its code (`ERR ...`, `WRONGTYPE ...`).
    Error(String),
    Integer(i64),
    Bulk(Bytes),
    /// The null bulk string: a missing value.
    Nil,
    /// The null array: for example `EXEC` after a watched key changed.
    NilArray,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    /// Members with their scores (`WITHSCORES`): one flat array in RESP2, an array of pairs in
    /// RESP3, as Redis answers.
    Pairs(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Double(f64),
    /// Human-readable text (`INFO`, `CLIENT LIST`): verbatim in RESP3, bulk in RESP2.
    Verbatim(String),
}

impl Reply {
    pub const OK: Reply = Reply::Simple("OK");

    pub fn bulk(data: impl Into<Bytes>) -> Reply {
        Reply::Bulk(data.into())
    }

    pub fn bulk_str(text: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(text.as_bytes()))
    }

    /// A bulk string, or nil for `None`.
    pub fn bulk_or_nil(value: Option<Bytes>) -> Reply {
        value.map_or(Reply::Nil, Reply::Bulk)
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends this reply, encoded for `protocol`, to `out`.
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) {
        let result = match (protocol, self) {
            // The RESP2 frame type has no null array; it is a fixed string.
            (Protocol::Resp2, Reply::NilArray) => {
                out.extend_from_slice(b"*-1\r\n");
                return;
            }
            (Protocol::Resp2, reply) => {
                redis_protocol::resp2::encode::extend_encode(out, &reply.to_resp2(), false).map(drop)
            }
            (Protocol::Resp3, reply) => {
                redis_protocol::resp3::encode::complete::extend_encode(out, &reply.to_resp3(), false)
                    .map(drop)
            }
        };
        // Encoding into a growable buffer fails only on frames we never build (such as a
        // simple string with a CR in it); fail loudly in tests, answer an error otherwise.
        if let Err(e) = result {
            debug_assert!(false, "cannot encode {self:?}: {e}");
            out.extend_from_slice(b"-ERR internal error encoding the reply\r\n");
        }
    }

    fn to_resp2(&self) -> Frame2 {
        match self {
            Reply::Simple(s) => Frame2::SimpleString(Bytes::from_static(s.as_bytes())),
            Reply::Status(s) => Frame2::SimpleString(Bytes::copy_from_slice(s.as_bytes())),
            Reply::Error(e) => Frame2::Error(e.as_str().into()),
            Reply::Integer(i) => Frame2::Integer(*i),
            Reply::Bulk(b) => Frame2::BulkString(b.clone()),
            Reply::Nil | Reply::NilArray => Frame2::Null,
            Reply::Array(items) | Reply::Set(items) => {
                Frame2::Array(items.iter().map(Reply::to_resp2).collect())
            }
            Reply::Map(pairs) | Reply::Pairs(pairs) => Frame2::Array(
                pairs
                    .iter()
                    .flat_map(|(k, v)| [k.to_resp2(), v.to_resp2()])
                    .collect(),
            ),
            Reply::Double(d) => Frame2::BulkString(Bytes::from(format_score(*d))),
            Reply::Verbatim(text) => Frame2::BulkString(Bytes::copy_from_slice(text.as_bytes())),
        }
    }

    fn to_resp3(&self) -> Frame3 {
        match self {
            Reply::Simple(s) => Frame3::SimpleString {
                data: Bytes::from_static(s.as_bytes()),
                attributes: None,
            },
            Reply::Status(s) => Frame3::SimpleString {
                data: Bytes::copy_from_slice(s.as_bytes()),
                attributes: None,
            },
            Reply::Error(e) => Frame3::SimpleError {
                data: e.as_str().into(),
                attributes: None,
            },
            Reply::Integer(i) => Frame3::Number {
                data: *i,
                attributes: None,
            },
            Reply::Bulk(b) => Frame3::BlobString {
                data: b.clone(),
                attributes: None,
            },
            Reply::Nil | Reply::NilArray => Frame3::Null,
            Reply::Array(items) => Frame3::Array {
                data: items.iter().map(Reply::to_resp3).collect(),
                attributes: None,
            },
            Reply::Set(items) => {
                let mut data = FrameSet::default();
                data.extend(items.iter().map(Reply::to_resp3));
                Frame3::Set {
                    data,
                    attributes: None,
                }
            }
            Reply::Pairs(pairs) => Frame3::Array {
                data: pairs
                    .iter()
                    .map(|(k, v)| Frame3::Array {
                        data: vec![k.to_resp3(), v.to_resp3()],
                        attributes: None,
                    })
                    .collect(),
                attributes: None,
            },
            Reply::Map(pairs) => {
                let mut data = FrameMap::default();
                data.extend(pairs.iter().map(|(k, v)| (k.to_resp3(), v.to_resp3())));
                Frame3::Map {
                    data,
                    attributes: None,
                }
            }
            Reply::Double(d) => Frame3::Double {
                data: *d,
                attributes: None,
            },
            Reply::Verbatim(text) => Frame3::VerbatimString {
                data: Bytes::copy_from_slice(text.as_bytes()),
                format: VerbatimStringFormat::Text,
                attributes: None,
            },
        }
    }
}

/// Formats a double the way Redis prints one in RESP2: the shortest text that reads back as
/// the same number, and `inf` / `-inf` / `nan`.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        "nan".into()
    } else if d.is_infinite() {
        if d > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{d}")
    }
}

/// Formats a double reply (a score) for RESP2 as Redis 7.0 does, with C's `%.17g`: 17
/// significant digits without trailing zeros, in exponent notation when the exponent is below
/// -4 or above 16 (`0.10000000000000001`, `1.7976931348623157e+308`), and `inf` / `-inf`.
pub fn format_score(d: f64) -> String {
    if !d.is_finite() || d == 0.0 {
        return format_double(d);
    }
    let scientific = format!("{:.16e}", d.abs());
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` has an exponent");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let sign = if d < 0.0 { "-" } else { "" };
    if !(-4..17).contains(&exponent) {
        let (first, rest) = digits.split_at(1);
        let point = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!(
            "{sign}{first}{point}{rest}e{exp_sign}{:02}",
            exponent.unsigned_abs()
        );
    }
    if exponent < 0 {
        let zeros = "0".repeat(exponent.unsigned_abs() as usize - 1);
        return format!("{sign}0.{zeros}{digits}");
    }
    let whole = exponent as usize + 1;
    if digits.len() <= whole {
        format!("{sign}{digits}{}", "0".repeat(whole - digits.len()))
    } else {
        format!("{sign}{}.{}", &digits[..whole], &digits[whole..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(reply: Reply, protocol: Protocol) -> String {
        let mut out = BytesMut::new();
        reply.encode(protocol, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn resp2_shapes() {
        assert_eq!(wire(Reply::OK, Protocol::Resp2), "+OK\r\n");
        assert_eq!(wire(Reply::Error("ERR x".into()), Protocol::Resp2), "-ERR x\r\n");
        assert_eq!(wire(Reply::Integer(-7), Protocol::Resp2), ":-7\r\n");
        assert_eq!(wire(Reply::bulk_str("hi"), Protocol::Resp2), "$2\r\nhi\r\n");
        assert_eq!(wire(Reply::Nil, Protocol::Resp2), "$-1\r\n");
        assert_eq!(wire(Reply::NilArray, Protocol::Resp2), "*-1\r\n");
        assert_eq!(wire(Reply::Array(vec![]), Protocol::Resp2), "*0\r\n");
        assert_eq!(
            wire(
                Reply::Map(vec![(Reply::bulk_str("a"), Reply::Integer(1))]),
                Protocol::Resp2
            ),
            "*2\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(wire(Reply::Double(1.5), Protocol::Resp2), "$3\r\n1.5\r\n");
        assert_eq!(format_score(f64::MAX), "1.7976931348623157e+308");
        assert_eq!(format_score(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(format_score(2e-7), "1.9999999999999999e-07");
        assert_eq!(format_score(-0.0001), "-0.0001");
        assert_eq!(format_score(1e16), "10000000000000000");
        assert_eq!(format_score(1e17), "1e+17");
        assert_eq!(format_score(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_score(3.0), "3");
        assert_eq!(format_score(0.1), "0.10000000000000001");
        assert_eq!(format_score(-2.5), "-2.5");
        assert_eq!(format_score(123.456), "123.456");
        let pairs = Reply::Pairs(vec![(Reply::bulk_str("a"), Reply::Double(1.0))]);
        assert_eq!(
            wire(pairs.clone(), Protocol::Resp2),
            "*2\r\n$1\r\na\r\n$1\r\n1\r\n"
        );
        assert_eq!(wire(pairs, Protocol::Resp3), "*1\r\n*2\r\n$1\r\na\r\n,1\r\n");
    }

    #[test]
    fn resp3_shapes() {
        assert_eq!(wire(Reply::Nil, Protocol::Resp3), "_\r\n");
        assert_eq!(wire(Reply::NilArray, Protocol::Resp3), "_\r\n");
        assert_eq!(
            wire(
                Reply::Map(vec![(Reply::bulk_str("a"), Reply::Integer(1))]),
                Protocol::Resp3
            ),
            "%1\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(wire(Reply::Double(1.5), Protocol::Resp3), ",1.5\r\n");
        assert_eq!(
            wire(Reply::Verbatim("x".into()), Protocol::Resp3),
            "=5\r\ntxt:x\r\n"
        );
    }

    #[test]
    fn map_keeps_insertion_order() {
        let pairs: Vec<_> = ["z", "a", "m"]
            .iter()
            .map(|k| (Reply::bulk_str(k), Reply::Nil))
            .collect();
        let text = wire(Reply::Map(pairs), Protocol::Resp3);
        assert_eq!(text, "%3\r\n$1\r\nz\r\n_\r\n$1\r\na\r\n_\r\n$1\r\nm\r\n_\r\n");
    }
}
