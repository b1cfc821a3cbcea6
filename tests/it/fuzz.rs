//! Fuzzing on stable Rust, as tests with a time budget: mutation of the seed inputs kept in
//! `tests/fuzz-corpus/` (see its README).
//!
//! - **Request parser**: each mutated byte stream is parsed whole and again in random chunks;
//!   both must give the same requests and the same error (the parser may not depend on how the
//!   bytes arrive), every request must survive re-encoding, and with tiny limits nothing may
//!   panic.
//! - **Command layer**: random requests (command names from `COMMAND`, arguments from a pool
//!   of keys, numbers, keywords and bytes) to a running server; every one must be answered
//!   (a reply or an error reply, never a dropped connection or a hang), and the server must
//!   answer `PING` at the end.
//!
//! `FERROKV_FUZZ_SECS` (default 5) is each harness's budget, `FERROKV_FUZZ_SEED` fixes the
//! random seed (printed at the start, so a failure can be replayed), `FERROKV_FUZZ_SAVE=1`
//! adds inputs with new outcomes to the corpus.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ferrokv::resp::parse::{ParseLimits, ProtocolError, RequestParser};

use crate::harness::TestServer;

fn budget() -> Duration {
    let secs = std::env::var("FERROKV_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    Duration::from_secs(secs)
}

fn rng(what: &str) -> fastrand::Rng {
    let seed = std::env::var("FERROKV_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("fuzz {what}: FERROKV_FUZZ_SEED={seed}");
    fastrand::Rng::with_seed(seed)
}

fn corpus_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(name)
}

fn corpus(name: &str) -> Vec<Vec<u8>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(corpus_dir(name))
        .expect("the corpus directory")
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    entries.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Keeps `input` in the corpus when a campaign asks for it.
fn save(name: &str, input: &[u8]) {
    if std::env::var("FERROKV_FUZZ_SAVE").is_ok_and(|v| v == "1") {
        let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        std::fs::write(corpus_dir(name).join(format!("found-{hash:016x}.bin")), input).unwrap();
    }
}

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"*",
    b"$",
    b"*2\r\n",
    b"*1\r\n",
    b"$3\r\n",
    b"$0\r\n",
    b"$-1\r\n",
    b"*-1\r\n",
    b"*0\r\n",
    b"$536870913\r\n",
    b"*1048577\r\n",
    b"\"",
    b"'",
    b"\\x4",
    b"\\x41",
    b"\\",
    b" ",
    b":1\r\n",
    b"+OK\r\n",
];
const NUMBERS: &[&[u8]] = &[
    b"0",
    b"-1",
    b"1",
    b"-0",
    b"2147483648",
    b"9223372036854775807",
    b"9223372036854775808",
    b"99999999999999999999",
    b"18446744073709551616",
    b"+3",
    b" 3",
    b"0x10",
];

/// One to four random edits of `input`, some splicing in another corpus entry.
fn mutate(rng: &mut fastrand::Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let at = rng.usize(..=out.len());
        match rng.u8(..7) {
            0 if !out.is_empty() => {
                let i = rng.usize(..out.len());
                out[i] ^= 1 << rng.u8(..8);
            }
            1 => out
                .splice(at..at, TOKENS[rng.usize(..TOKENS.len())].iter().copied())
                .for_each(drop),
            2 if !out.is_empty() => {
                let end = (at + rng.usize(..16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 if !out.is_empty() => {
                let start = rng.usize(..out.len());
                let end = (start + rng.usize(..32)).min(out.len());
                let copy = out[start..end].to_vec();
                out.splice(at..at, copy).for_each(drop);
            }
            4 => {
                let other = &corpus[rng.usize(..corpus.len())];
                let from = rng.usize(..=other.len());
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            5 => {
                // A run of digits becomes an interesting number.
                if let Some(start) = (at..out.len()).find(|&i| out[i].is_ascii_digit()) {
                    let end = (start..out.len())
                        .find(|&i| !out[i].is_ascii_digit())
                        .unwrap_or(out.len());
                    out.splice(start..end, NUMBERS[rng.usize(..NUMBERS.len())].iter().copied())
                        .for_each(drop);
                }
            }
            _ => out.insert(at.min(out.len()), rng.u8(..)),
        }
    }
    out.truncate(64 << 10);
    out
}

/// What parsing a stream came to: its requests in order, then the error that stopped it.
#[derive(Debug, PartialEq)]
struct Parsed {
    requests: Vec<Vec<Bytes>>,
    error: Option<ProtocolError>,
}

/// Parses `input` arriving in the given chunk sizes (cycled); one chunk of everything when
/// `chunks` is empty.
fn parse(limits: ParseLimits, input: &[u8], chunks: &[usize]) -> Parsed {
    let mut parser = RequestParser::new(limits);
    let mut buf = BytesMut::new();
    let mut parsed = Parsed {
        requests: Vec::new(),
        error: None,
    };
    let mut fed = 0;
    let mut turn = 0;
    while fed < input.len() {
        let size = if chunks.is_empty() {
            input.len()
        } else {
            chunks[turn % chunks.len()].max(1)
        };
        turn += 1;
        let end = (fed + size).min(input.len());
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
        loop {
            match parser.next_request(&mut buf) {
                Ok(Some(request)) => parsed.requests.push(request),
                Ok(None) => break,
                Err(e) => {
                    parsed.error = Some(e);
                    return parsed;
                }
            }
        }
    }
    parsed
}

fn encode(request: &[Bytes]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", request.len()).into_bytes();
    for arg in request {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[test]
fn the_request_parser_does_not_depend_on_how_bytes_arrive() {
    let roomy = ParseLimits {
        max_bulk_bytes: 512 << 20,
        max_multibulk_len: 1 << 20,
        max_inline_bytes: 1 << 20,
    };
    let tiny = ParseLimits {
        max_bulk_bytes: 64,
        max_multibulk_len: 8,
        max_inline_bytes: 16,
    };
    let mut corpus = corpus("resp");
    let mut rng = rng("parser");
    let deadline = Instant::now() + budget();
    let mut seen: HashSet<String> = HashSet::new();
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let base = corpus[rng.usize(..corpus.len())].clone();
        let input = mutate(&mut rng, &base, &corpus);
        let whole = parse(roomy, &input, &[]);
        let chunks: Vec<usize> = (0..rng.usize(1..6)).map(|_| rng.usize(1..40)).collect();
        let pieces = parse(roomy, &input, &chunks);
        assert_eq!(
            whole,
            pieces,
            "whole and in chunks {chunks:?} differ on {:?}",
            String::from_utf8_lossy(&input)
        );
        for request in &whole.requests {
            let again = parse(roomy, &encode(request), &[]);
            assert_eq!(
                again.requests,
                vec![request.clone()],
                "re-encoding changed {request:?}"
            );
        }
        // Tiny limits: only that nothing panics and errors are errors.
        let _ = parse(tiny, &input, &chunks);
        let signature = format!(
            "{}:{:?}",
            whole.requests.len().min(4),
            whole.error.as_ref().map(std::mem::discriminant)
        );
        if seen.insert(signature) {
            save("resp", &input);
            corpus.push(input);
        }
        runs += 1;
    }
    eprintln!("fuzz parser: {runs} inputs, {} outcome classes", seen.len());
    assert!(runs > 0);
}

/// Arguments the command harness draws from.
const KEYS: &[&str] = &["k", "l", "h", "s", "z", "n", "f", "k2", "{t}a", "{t}b"];
const WORDS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "10",
    "-100",
    "1.5",
    "-2.5e3",
    "inf",
    "-inf",
    "+inf",
    "nan",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "",
    " ",
    "x",
    "a",
    "b",
    "c",
    "*",
    "[a",
    "(1",
    "-",
    "+",
    "EX",
    "PX",
    "EXAT",
    "NX",
    "XX",
    "GT",
    "LT",
    "CH",
    "INCR",
    "GET",
    "KEEPTTL",
    "WITHSCORES",
    "LIMIT",
    "COUNT",
    "MATCH",
    "TYPE",
    "BYSCORE",
    "BYLEX",
    "REV",
    "LEFT",
    "RIGHT",
    "BEFORE",
    "AFTER",
    "AGGREGATE",
    "SUM",
    "MIN",
    "MAX",
    "WEIGHTS",
    "ASYNC",
    "SYNC",
    "REPLACE",
    "ABSTTL",
    "ENCODING",
    "WITHVALUES",
    "RANK",
    "MAXLEN",
    "IDX",
    "LEN",
    "DB",
    "FREQ",
    "IDLETIME",
    "0.01",
];
/// Commands the harness leaves out: they end or change the connection, block, or reconfigure
/// the cluster.
const SKIPPED: &[&str] = &[
    "quit",
    "reset",
    "hello",
    "client",
    "cluster",
    "shutdown",
    "debug",
    "monitor",
    "sync",
    "psync",
    "subscribe",
    "psubscribe",
    "ssubscribe",
    "auth",
];

fn arg(rng: &mut fastrand::Rng) -> Vec<u8> {
    match rng.u8(..10) {
        0..=3 => KEYS[rng.usize(..KEYS.len())].as_bytes().to_vec(),
        4..=7 => WORDS[rng.usize(..WORDS.len())].as_bytes().to_vec(),
        8 => (0..rng.usize(..12)).map(|_| rng.u8(..)).collect(),
        _ => rng.i64(..).to_string().into_bytes(),
    }
}

#[test]
fn every_random_command_is_answered_and_the_server_keeps_serving() {
    let server = TestServer::start();
    let mut con = server.client();
    con.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // Names, arities and flags from the server's own table.
    let table: Vec<redis::Value> = redis::cmd("COMMAND").query(&mut con).unwrap();
    let mut commands: Vec<(String, i64)> = Vec::new();
    let mut left_out: Vec<String> = SKIPPED.iter().map(|s| s.to_string()).collect();
    for entry in &table {
        let redis::Value::Array(info) = entry else {
            continue;
        };
        let name: String = redis::from_redis_value(info[0].clone()).unwrap();
        let arity: i64 = redis::from_redis_value(info[1].clone()).unwrap();
        let flags: Vec<String> = redis::from_redis_value(info[2].clone()).unwrap_or_default();
        if SKIPPED.contains(&name.as_str()) || flags.iter().any(|f| f == "blocking") {
            left_out.push(name);
            continue;
        }
        commands.push((name, arity));
    }
    assert!(commands.len() > 100, "{} commands", commands.len());
    let seeds: Vec<Vec<String>> = String::from_utf8(corpus("commands").concat())
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect();
    let mut rng = rng("commands");
    let deadline = Instant::now() + budget();
    let (mut answered, mut errors) = (0u64, 0u64);
    while Instant::now() < deadline {
        let words: Vec<Vec<u8>> = if rng.u8(..4) == 0 {
            // A seed with one argument changed.
            let mut words: Vec<Vec<u8>> = seeds[rng.usize(..seeds.len())]
                .iter()
                .map(|w| w.as_bytes().to_vec())
                .collect();
            if words.len() > 1 {
                let i = rng.usize(1..words.len());
                words[i] = arg(&mut rng);
            }
            words
        } else {
            let (name, arity) = &commands[rng.usize(..commands.len())];
            let count = if *arity >= 0 && rng.u8(..4) != 0 {
                *arity as usize - 1
            } else {
                rng.usize(arity.unsigned_abs() as usize - 1..arity.unsigned_abs() as usize + 5)
            };
            std::iter::once(name.as_bytes().to_vec())
                .chain((0..count).map(|_| arg(&mut rng)))
                .collect()
        };
        if left_out
            .iter()
            .any(|s| s.as_bytes().eq_ignore_ascii_case(&words[0]))
        {
            continue;
        }
        let mut cmd = redis::cmd(std::str::from_utf8(&words[0]).unwrap_or("PING"));
        for word in &words[1..] {
            cmd.arg(word.as_slice());
        }
        match cmd.query::<redis::Value>(&mut con) {
            Ok(_) => answered += 1,
            Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => panic!(
                "no answer to {:?}: {e}",
                words
                    .iter()
                    .map(|w| String::from_utf8_lossy(w).into_owned())
                    .collect::<Vec<_>>()
            ),
            Err(_) => errors += 1,
        }
    }
    // Whatever state the connection is in (a MULTI left open), a fresh one is served.
    let mut fresh = server.client();
    let pong: String = redis::cmd("PING").query(&mut fresh).unwrap();
    assert_eq!(pong, "PONG");
    eprintln!("fuzz commands: {answered} replies, {errors} error replies");
    assert!(answered > 0 && errors > 0, "{answered} replies, {errors} errors");
}
