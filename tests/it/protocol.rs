//! The wire: pipelines, inline commands, framing errors, hostile headers, limits.

use std::io::{Read, Write};
use std::time::Duration;

use ferrokv::config::RespConfig;

use crate::harness::{RawClient, TestServer, request};

#[test]
fn pipelined_replies_come_back_in_order() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for i in 0..200 {
        batch.extend(request(&[
            b"SET",
            format!("k{i}").as_bytes(),
            format!("{i}").as_bytes(),
        ]));
        expected.extend_from_slice(b"+OK\r\n");
        batch.extend(request(&[b"INCR", format!("k{i}").as_bytes()]));
        expected.extend(format!(":{}\r\n", i + 1).into_bytes());
        batch.extend(request(&[b"GET", format!("k{i}").as_bytes()]));
        let value = (i + 1).to_string();
        expected.extend(format!("${}\r\n{value}\r\n", value.len()).into_bytes());
    }
    raw.roundtrip(&batch, &expected);
}

#[test]
fn requests_split_across_many_writes_are_reassembled() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let message = request(&[b"SET", b"split", &vec![b'x'; 100_000]]);
    for chunk in message.chunks(997) {
        raw.send(chunk);
        std::thread::sleep(Duration::from_micros(200));
    }
    raw.expect(b"+OK\r\n");
    raw.roundtrip(&request(&[b"STRLEN", b"split"]), b":100000\r\n");
}

#[test]
fn inline_commands_work_as_in_telnet() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.roundtrip(b"PING\r\n", b"+PONG\r\n");
    raw.roundtrip(b"set greeting \"hello world\"\n", b"+OK\r\n");
    raw.roundtrip(b"GET greeting\r\n", b"$11\r\nhello world\r\n");
    raw.roundtrip(b"\r\n\r\nEXISTS greeting\r\n", b":1\r\n");
    // Inline and multibulk can be mixed in one pipeline.
    let mut mixed = b"INCR n\r\n".to_vec();
    mixed.extend(request(&[b"INCR", b"n"]));
    mixed.extend_from_slice(b"INCR n\r\n");
    raw.roundtrip(&mixed, b":1\r\n:2\r\n:3\r\n");
}

/// Redis answers a framing error and closes; replies to the requests before it still arrive.
fn assert_protocol_error(input: &[u8], error: &str) {
    let server = TestServer::start();
    let mut raw = server.raw();
    let mut sent = request(&[b"PING"]);
    sent.extend_from_slice(input);
    raw.send(&sent);
    raw.expect(b"+PONG\r\n");
    raw.expect(format!("-ERR Protocol error: {error}\r\n").as_bytes());
    assert!(raw.is_closed(), "the connection closes after a protocol error");
    // The server itself keeps serving.
    let mut other = server.raw();
    other.roundtrip(&request(&[b"PING"]), b"+PONG\r\n");
}

#[test]
fn malformed_multibulk_length() {
    assert_protocol_error(b"*x\r\n", "invalid multibulk length");
}

#[test]
fn malformed_bulk_length() {
    assert_protocol_error(b"*1\r\n$-5\r\n", "invalid bulk length");
}

#[test]
fn non_bulk_element() {
    assert_protocol_error(b"*1\r\n:12\r\n", "expected '$', got ':'");
}

#[test]
fn bulk_longer_than_the_limit() {
    assert_protocol_error(b"*1\r\n$536870913\r\n", "invalid bulk length");
}

#[test]
fn unbalanced_inline_quotes() {
    assert_protocol_error(b"SET a \"b\r\n", "unbalanced quotes in request");
}

#[test]
fn inline_line_longer_than_the_limit() {
    assert_protocol_error(&vec![b'a'; 70_000], "too big inline request");
}

/// Headers announcing huge sizes cost nothing until the bytes arrive, and other clients are
/// served meanwhile.
#[test]
fn hostile_headers_do_not_reserve_memory() {
    let server = TestServer::start();
    let mut hostile = Vec::new();
    for _ in 0..50 {
        let mut raw = server.raw();
        raw.send(b"*1048576\r\n$536870912\r\nabc");
        hostile.push(raw);
    }
    let mut con = server.client();
    let _: () = redis::cmd("SET").arg("fine").arg("yes").query(&mut con).unwrap();
    let info: String = redis::cmd("INFO").arg("memory").query(&mut con).unwrap();
    let rss: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory_rss:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // 50 × 512 MiB announced; the process must stay small (a generous bound).
    assert!(rss < 1 << 30, "resident memory {rss} after hostile headers");
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    assert!(clients.lines().any(|l| l.contains("qbuf=")), "{clients}");
}

#[test]
fn query_buffer_limit_closes_only_that_client() {
    let config = RespConfig {
        max_query_buffer_bytes: 1 << 20,
        ..RespConfig::default()
    };
    let server = TestServer::start_with(config);
    let mut greedy = server.raw();
    greedy.send(b"*1\r\n$104857600\r\n");
    let chunk = vec![b'x'; 64 * 1024];
    let mut closed = false;
    for _ in 0..64 {
        if greedy.stream.write_all(&chunk).is_err() {
            closed = true;
            break;
        }
    }
    assert!(
        closed || greedy.is_closed(),
        "a client past the query buffer limit is closed"
    );
    server.raw().roundtrip(&request(&[b"PING"]), b"+PONG\r\n");
}

#[test]
fn max_clients_refuses_with_redis_error() {
    let config = RespConfig {
        max_clients: 3,
        ..RespConfig::default()
    };
    let server = TestServer::start_with(config);
    let mut held: Vec<RawClient> = (0..3).map(|_| server.raw()).collect();
    for raw in &mut held {
        raw.roundtrip(&request(&[b"PING"]), b"+PONG\r\n");
    }
    let mut refused = server.raw();
    let mut reply = String::new();
    refused.stream.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "-ERR max number of clients reached\r\n");
    drop(held.pop());
    // A slot frees up once a client leaves.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut raw = server.raw();
        raw.send(&request(&[b"PING"]));
        let mut buf = [0u8; 7];
        if raw.stream.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no slot freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_thousand_concurrent_connections() {
    let server = TestServer::start();
    let mut clients: Vec<RawClient> = (0..1000).map(|_| server.raw()).collect();
    for (i, raw) in clients.iter_mut().enumerate() {
        raw.send(&request(&[
            b"SET",
            format!("c{i}").as_bytes(),
            format!("{i}").as_bytes(),
        ]));
    }
    for raw in clients.iter_mut() {
        raw.expect(b"+OK\r\n");
    }
    for (i, raw) in clients.iter_mut().enumerate() {
        let value = i.to_string();
        raw.roundtrip(
            &request(&[b"GET", format!("c{i}").as_bytes()]),
            format!("${}\r\n{value}\r\n", value.len()).as_bytes(),
        );
    }
    let mut con = server.client();
    let info: String = redis::cmd("INFO").arg("clients").query(&mut con).unwrap();
    assert!(info.contains("connected_clients:1001"), "{info}");
}

#[test]
fn a_client_that_stops_reading_its_replies_is_cut_off() {
    let server = TestServer::start_with(RespConfig {
        output_stall_timeout_ms: 500,
        ..RespConfig::default()
    });
    let mut con = server.client();
    let big = "x".repeat(1 << 20);
    let _: () = redis::cmd("SET").arg("big").arg(&big).query(&mut con).unwrap();
    // 64 replies of 1 MiB, far more than the sockets' buffers hold, and never read.
    let mut raw = server.raw();
    raw.send(&b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(64));
    std::thread::sleep(Duration::from_millis(2_000));
    // Other clients are served meanwhile.
    let len: usize = redis::cmd("STRLEN").arg("big").query(&mut con).unwrap();
    assert_eq!(len, 1 << 20);
    // The stalled connection is gone: what the kernel had buffered drains, then end of stream.
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match raw.stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => panic!("the connection was not closed: {e} after {total} bytes"),
        }
    }
    assert!(
        total < 64 << 20,
        "every reply arrived ({total} bytes): the client was not cut off"
    );
}
