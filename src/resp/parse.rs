//! Turning the bytes a client sends into commands.
//!
//! Two request forms exist, as in Redis:
//!
//! - **Multibulk**: `*<n>\r\n` then `n` bulk strings `$<len>\r\n<bytes>\r\n`. This is what every
//!   client library sends. Frames are decoded by the `redis-protocol` crate's RESP2 codec.
//! - **Inline**: a line of space-separated words, with Redis's quoting rules, ending in `\n`
//!   (`PING` typed into telnet).
//!
//! Before the codec sees a multibulk frame, a guard walks its headers and enforces the limits:
//! element count, bulk length, header length. It never reserves memory from a header (a client
//! announcing `$536870912` and sending nothing costs nothing), it rejects nested or non-bulk
//! elements (which Redis never accepts in a request, and which would let a client drive the
//! codec's recursion), and it remembers how far it has checked, so a large frame arriving in
//! small pieces is not re-walked from its start each time.
//!
//! Every error here is a framing error: Redis answers `-ERR Protocol error: ...` and closes the
//! connection, because it can no longer tell where the next request starts.

use bytes::{Buf, Bytes, BytesMut};
use redis_protocol::codec::Resp2;
use redis_protocol::resp2::types::{BytesFrame, Resp2Frame};
use tokio_util::codec::Decoder;

use super::args::parse_i64;

/// The request-size limits (see `RespConfig`).
#[derive(Clone, Copy, Debug)]
pub struct ParseLimits {
    pub max_bulk_bytes: usize,
    pub max_multibulk_len: usize,
    pub max_inline_bytes: usize,
}

/// A framing error. The texts are Redis's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("invalid bulk length")]
    InvalidBulkLength,
    #[error("expected '$', got '{}'", *.0 as char)]
    ExpectedBulk(u8),
    #[error("too big inline request")]
    TooBigInline,
    #[error("too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("too big bulk count string")]
    TooBigBulkCount,
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    /// The codec disagreed with the guard; should not happen, but is not trusted not to.
    #[error("{0}")]
    Codec(String),
}

/// Progress through a multibulk frame whose end has not arrived yet.
#[derive(Clone, Copy, Debug)]
struct Partial {
    /// Elements not yet seen in full.
    elements_left: usize,
    /// Bytes of the buffer checked so far (the start of the next element's header).
    checked: usize,
}

/// Splits a connection's input into requests. One per connection.
pub struct RequestParser {
    limits: ParseLimits,
    partial: Option<Partial>,
    codec: Resp2,
}

impl RequestParser {
    pub fn new(limits: ParseLimits) -> Self {
        RequestParser {
            limits,
            partial: None,
            codec: Resp2::default(),
        }
    }

    /// The next complete request in `buf`, removing it from `buf`; `Ok(None)` when more bytes
    /// are needed. Empty requests (`*0`, a blank line) are skipped, as Redis skips them.
    pub fn next_request(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            if buf.is_empty() {
                return Ok(None);
            }
            let request = if buf[0] == b'*' {
                self.next_multibulk(buf)?
            } else {
                self.next_inline(buf)?
            };
            match request {
                None => return Ok(None),
                Some(args) if args.is_empty() => continue,
                Some(args) => return Ok(Some(args)),
            }
        }
    }

    /// `Some(vec![])` for an empty request that was consumed.
    fn next_multibulk(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let mut partial = match self.partial {
            Some(partial) => partial,
            None => {
                let Some(line_end) = find_crlf(buf, 1) else {
                    if buf.len() > self.limits.max_inline_bytes {
                        return Err(ProtocolError::TooBigMultibulkCount);
                    }
                    return Ok(None);
                };
                let count = parse_i64(&buf[1..line_end]).ok_or(ProtocolError::InvalidMultibulkLength)?;
                if count > self.limits.max_multibulk_len as i64 {
                    return Err(ProtocolError::InvalidMultibulkLength);
                }
                if count <= 0 {
                    buf.advance(line_end + 2);
                    return Ok(Some(Vec::new()));
                }
                Partial {
                    elements_left: count as usize,
                    checked: line_end + 2,
                }
            }
        };
        while partial.elements_left > 0 {
            let at = partial.checked;
            if at >= buf.len() {
                self.partial = Some(partial);
                return Ok(None);
            }
            if buf[at] != b'$' {
                return Err(ProtocolError::ExpectedBulk(buf[at]));
            }
            let Some(line_end) = find_crlf(buf, at + 1) else {
                if buf.len() - at > self.limits.max_inline_bytes {
                    return Err(ProtocolError::TooBigBulkCount);
                }
                self.partial = Some(partial);
                return Ok(None);
            };
            let len = parse_i64(&buf[at + 1..line_end]).ok_or(ProtocolError::InvalidBulkLength)?;
            if len < 0 || len as u64 > self.limits.max_bulk_bytes as u64 {
                return Err(ProtocolError::InvalidBulkLength);
            }
            let element_end = line_end + 2 + len as usize + 2;
            if element_end > buf.len() {
                self.partial = Some(partial);
                return Ok(None);
            }
            partial.checked = element_end;
            partial.elements_left -= 1;
        }
        self.partial = None;
        let frame_len = partial.checked;
        let before = buf.len();
        let frame = self
            .codec
            .decode(buf)
            .map_err(|e| ProtocolError::Codec(e.to_string()))?
            .ok_or_else(|| ProtocolError::Codec("incomplete frame after the guard saw all of it".into()))?;
        debug_assert_eq!(
            before - buf.len(),
            frame_len,
            "the codec and the guard agree on the frame"
        );
        match frame {
            BytesFrame::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    BytesFrame::BulkString(bytes) => Ok(bytes),
                    other => Err(ProtocolError::Codec(format!(
                        "unexpected {:?} element",
                        other.kind()
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            other => Err(ProtocolError::Codec(format!(
                "unexpected {:?} frame",
                other.kind()
            ))),
        }
    }

    fn next_inline(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
            if buf.len() > self.limits.max_inline_bytes {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(None);
        };
        if newline > self.limits.max_inline_bytes {
            return Err(ProtocolError::TooBigInline);
        }
        let line = buf.split_to(newline + 1);
        let mut line = &line[..newline];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        split_inline_args(line).map(Some)
    }
}

/// The index of the first `\r\n` at or after `from`.
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

/// Splits an inline command into arguments with Redis's rules (`sdssplitargs`): words split on
/// whitespace; `"..."` understands `\n \r \t \b \a \\ \" \xHH`; `'...'` understands `\'`; a
/// closing quote must be followed by whitespace or the end of the line.
pub fn split_inline_args(line: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Ok(args);
        }
        let mut word = Vec::new();
        match line[i] {
            b'"' => {
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err(ProtocolError::UnbalancedQuotes),
                        Some(b'\\') if i + 3 < line.len() && line[i + 1] == b'x' => {
                            match (hex_value(line[i + 2]), hex_value(line[i + 3])) {
                                (Some(hi), Some(lo)) => {
                                    word.push(hi * 16 + lo);
                                    i += 4;
                                }
                                _ => {
                                    word.push(b'x');
                                    i += 2;
                                }
                            }
                        }
                        Some(b'\\') if i + 1 < line.len() => {
                            word.push(match line[i + 1] {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'b' => 0x08,
                                b'a' => 0x07,
                                other => other,
                            });
                            i += 2;
                        }
                        Some(b'"') => {
                            i += 1;
                            if line.get(i).is_some_and(|b| !b.is_ascii_whitespace()) {
                                return Err(ProtocolError::UnbalancedQuotes);
                            }
                            break;
                        }
                        Some(&b) => {
                            word.push(b);
                            i += 1;
                        }
                    }
                }
            }
            b'\'' => {
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err(ProtocolError::UnbalancedQuotes),
                        Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                            word.push(b'\'');
                            i += 2;
                        }
                        Some(b'\'') => {
                            i += 1;
                            if line.get(i).is_some_and(|b| !b.is_ascii_whitespace()) {
                                return Err(ProtocolError::UnbalancedQuotes);
                            }
                            break;
                        }
                        Some(&b) => {
                            word.push(b);
                            i += 1;
                        }
                    }
                }
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    word.push(line[i]);
                    i += 1;
                }
            }
        }
        args.push(Bytes::from(word));
    }
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ParseLimits = ParseLimits {
        max_bulk_bytes: 512 << 20,
        max_multibulk_len: i32::MAX as usize,
        max_inline_bytes: 64 << 10,
    };

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<String>>, ProtocolError> {
        let mut parser = RequestParser::new(LIMITS);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(args) = parser.next_request(&mut buf)? {
            out.push(
                args.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect(),
            );
        }
        Ok(out)
    }

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn multibulk_pipeline() {
        let got = parse_all(b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$0\r\n\r\n").unwrap();
        assert_eq!(got, vec![words(&["PING"]), words(&["SET", "a", ""])]);
    }

    #[test]
    fn binary_safe_values() {
        let got = parse_all(b"*2\r\n$4\r\nECHO\r\n$4\r\n\r\n\0\xff\r\n").unwrap();
        assert_eq!(got[0][1].as_bytes(), "\r\n\0\u{FFFD}".as_bytes());
    }

    #[test]
    fn byte_at_a_time_arrival() {
        let input = b"*2\r\n$4\r\nECHO\r\n$11\r\nhello world\r\nPING\r\n";
        let mut parser = RequestParser::new(LIMITS);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            while let Some(args) = parser.next_request(&mut buf).unwrap() {
                got.push(args);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(&got[0][1][..], b"hello world");
        assert_eq!(&got[1][0][..], b"PING");
        assert!(buf.is_empty());
    }

    #[test]
    fn empty_requests_are_skipped() {
        assert_eq!(
            parse_all(b"*0\r\n*-1\r\n\r\n  \r\nPING\r\n").unwrap(),
            vec![words(&["PING"])]
        );
    }

    #[test]
    fn hostile_headers_wait_without_reserving() {
        let mut parser = RequestParser::new(LIMITS);
        let mut buf = BytesMut::from(&b"*1048576\r\n$536870912\r\nabc"[..]);
        assert_eq!(parser.next_request(&mut buf).unwrap(), None);
        assert!(
            buf.capacity() < 4096,
            "no allocation from a header: {}",
            buf.capacity()
        );
    }

    #[test]
    fn framing_errors_use_redis_texts() {
        let err = |input: &[u8]| parse_all(input).unwrap_err().to_string();
        assert_eq!(err(b"*abc\r\n"), "invalid multibulk length");
        assert_eq!(err(b"*3000000000\r\n"), "invalid multibulk length");
        assert_eq!(err(b"*1\r\n$-1\r\n"), "invalid bulk length");
        assert_eq!(err(b"*1\r\n$536870913\r\n"), "invalid bulk length");
        assert_eq!(err(b"*1\r\n$+1\r\nx\r\n"), "invalid bulk length");
        assert_eq!(err(b"*1\r\n:1\r\n"), "expected '$', got ':'");
        assert_eq!(err(b"*1\r\n*1\r\n$1\r\na\r\n"), "expected '$', got '*'");
        assert_eq!(err(b"\"unterminated\r\n"), "unbalanced quotes in request");
        let long = vec![b'a'; (64 << 10) + 1];
        assert_eq!(err(&long), "too big inline request");
        let mut long_count = b"*".to_vec();
        long_count.extend(vec![b'1'; (64 << 10) + 1]);
        assert_eq!(err(&long_count), "too big mbulk count string");
    }

    #[test]
    fn limits_are_configurable() {
        let limits = ParseLimits {
            max_bulk_bytes: 3,
            max_multibulk_len: 2,
            max_inline_bytes: 8,
        };
        let mut parser = RequestParser::new(limits);
        assert_eq!(
            parser.next_request(&mut BytesMut::from(&b"*3\r\n"[..])),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        let mut parser = RequestParser::new(limits);
        assert_eq!(
            parser.next_request(&mut BytesMut::from(&b"*1\r\n$4\r\n"[..])),
            Err(ProtocolError::InvalidBulkLength)
        );
        let mut parser = RequestParser::new(limits);
        assert_eq!(
            parser.next_request(&mut BytesMut::from(&b"123456789"[..])),
            Err(ProtocolError::TooBigInline)
        );
    }

    /// A tiny seeded generator, so any failure replays from its seed.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Arbitrary bytes, fed in arbitrary pieces, never panic the parser: each piece yields
    /// non-empty requests, waits for more, or fails with a protocol error; and an unfinished
    /// inline line never grows past the inline limit unnoticed.
    #[test]
    fn arbitrary_input_never_panics() {
        let alphabet: &[u8] = b"*$:+-\r\n0123456789-abc \"'\\x";
        let limits = ParseLimits {
            max_bulk_bytes: 1 << 20,
            max_multibulk_len: 1 << 10,
            max_inline_bytes: 1 << 10,
        };
        for seed in 1..=2_000u64 {
            let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut parser = RequestParser::new(limits);
            let mut buf = BytesMut::new();
            for _ in 0..(next(&mut state) % 20) {
                let len = (next(&mut state) % 64) as usize;
                for _ in 0..len {
                    let byte = if next(&mut state).is_multiple_of(4) {
                        next(&mut state) as u8
                    } else {
                        alphabet[(next(&mut state) % alphabet.len() as u64) as usize]
                    };
                    buf.extend_from_slice(&[byte]);
                }
                match parser.next_request(&mut buf) {
                    Ok(Some(args)) => assert!(!args.is_empty(), "seed {seed}: an empty request"),
                    Ok(None) => {
                        if buf.first().is_some_and(|&b| b != b'*') {
                            assert!(
                                buf.len() <= limits.max_inline_bytes,
                                "seed {seed}: inline past the limit"
                            );
                        }
                    }
                    Err(_) => break, // the connection would close here
                }
            }
        }
    }

    /// Well-formed requests of random arguments round-trip through the parser, however the
    /// bytes are split.
    #[test]
    fn random_requests_round_trip_in_random_pieces() {
        for seed in 1..=500u64 {
            let mut state = seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
            let mut requests = Vec::new();
            let mut wire = Vec::new();
            for _ in 0..(1 + next(&mut state) % 8) {
                let args: Vec<Vec<u8>> = (0..1 + next(&mut state) % 5)
                    .map(|_| {
                        (0..next(&mut state) % 40)
                            .map(|_| next(&mut state) as u8)
                            .collect()
                    })
                    .collect();
                wire.extend(format!("*{}\r\n", args.len()).into_bytes());
                for arg in &args {
                    wire.extend(format!("${}\r\n", arg.len()).into_bytes());
                    wire.extend_from_slice(arg);
                    wire.extend_from_slice(b"\r\n");
                }
                requests.push(args);
            }
            let mut parser = RequestParser::new(LIMITS);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut at = 0;
            while at < wire.len() {
                let piece = (1 + next(&mut state) % 17) as usize;
                let end = (at + piece).min(wire.len());
                buf.extend_from_slice(&wire[at..end]);
                at = end;
                while let Some(args) = parser.next_request(&mut buf).unwrap() {
                    got.push(args.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
                }
            }
            assert_eq!(got, requests, "seed {seed}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn inline_quoting_follows_redis() {
        let got = parse_all(b"SET \"a b\" 'c\\'d' \"\\x41\\n\" plain\r\n").unwrap();
        assert_eq!(got, vec![words(&["SET", "a b", "c'd", "A\n", "plain"])]);
        assert_eq!(parse_all(b"ECHO \"a\"b\n"), Err(ProtocolError::UnbalancedQuotes));
        assert_eq!(parse_all(b"ECHO 'a\n"), Err(ProtocolError::UnbalancedQuotes));
        assert_eq!(parse_all(b"PING\n").unwrap(), vec![words(&["PING"])]);
    }
}
