//! Key expiry as applications use it (caches with `EX`, rate limiters with `INCR` + `EXPIRE`),
//! and the transactional side Redis's own suite cannot see: one instant per transaction,
//! `WATCH`, the background sweeper.

use std::time::{Duration, Instant};

use redis::{Commands, Value};

use crate::harness::{TestServer, request};

pub fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> Option<String> {
    let text: String = redis::cmd("INFO").arg(section).query(con).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':').map(str::to_string))
}

#[test]
fn timeouts_are_set_read_kept_and_cleared_as_in_redis() {
    let server = TestServer::start();
    let mut con = server.client();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("EX")
        .arg(100)
        .query(&mut con)
        .unwrap();
    let ttl: i64 = con.ttl("k").unwrap();
    assert!((99..=100).contains(&ttl), "{ttl}");
    let pttl: i64 = con.pttl("k").unwrap();
    assert!((99_000..=100_000).contains(&pttl), "{pttl}");
    let at: i64 = redis::cmd("PEXPIRETIME").arg("k").query(&mut con).unwrap();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!((at - wall - 100_000).abs() < 5_000, "deadline {at}, clock {wall}");

    // Changing the value keeps the timeout; replacing it drops it, unless KEEPTTL.
    let _: () = con.set("n", 1).unwrap();
    let _: bool = con.expire("n", 100).unwrap();
    let _: i64 = con.incr("n", 5).unwrap();
    let _: usize = con.append("n", "0").unwrap();
    assert!(
        con.ttl::<_, i64>("n").unwrap() > 0,
        "INCR and APPEND keep the timeout"
    );
    let _: () = redis::cmd("SET")
        .arg("n")
        .arg(7)
        .arg("KEEPTTL")
        .query(&mut con)
        .unwrap();
    assert!(con.ttl::<_, i64>("n").unwrap() > 0, "KEEPTTL keeps it");
    let _: () = con.set("n", 8).unwrap();
    assert_eq!(con.ttl::<_, i64>("n").unwrap(), -1, "SET drops it");
    let _: () = con.hset("h", "f", "v").unwrap();
    let _: bool = con.pexpire("h", 100_000).unwrap();
    let _: () = con.hset("h", "g", "w").unwrap();
    assert!(con.pttl::<_, i64>("h").unwrap() > 0, "HSET keeps it");
    assert_eq!(con.persist::<_, i64>("h").unwrap(), 1);
    assert_eq!(con.persist::<_, i64>("h").unwrap(), 0);
    assert_eq!(con.ttl::<_, i64>("h").unwrap(), -1);

    // GETEX reads and changes the timeout; an instant already past deletes the key.
    let _: () = con.set("g", "x").unwrap();
    let v: String = redis::cmd("GETEX")
        .arg("g")
        .arg("PX")
        .arg(50_000)
        .query(&mut con)
        .unwrap();
    assert_eq!(v, "x");
    assert!(con.pttl::<_, i64>("g").unwrap() > 0);
    let _: String = redis::cmd("GETEX")
        .arg("g")
        .arg("PERSIST")
        .query(&mut con)
        .unwrap();
    assert_eq!(con.ttl::<_, i64>("g").unwrap(), -1);
    let _: String = redis::cmd("GETEX")
        .arg("g")
        .arg("EXAT")
        .arg(1)
        .query(&mut con)
        .unwrap();
    assert!(!con.exists::<_, bool>("g").unwrap());
    // So does a negative EXPIRE.
    let _: () = con.set("gone", 1).unwrap();
    assert_eq!(con.expire::<_, i64>("gone", -1).unwrap(), 1);
    assert!(!con.exists::<_, bool>("gone").unwrap());

    let mut raw = server.raw();
    for (args, reply) in [
        (&[&b"TTL"[..], b"nope"][..], &b":-2\r\n"[..]),
        (&[b"EXPIRE", b"nope", b"10"], b":0\r\n"),
        (
            &[b"EXPIRE", b"n", b"10", b"NX", b"XX"],
            b"-ERR NX and XX, GT or LT options at the same time are not compatible\r\n",
        ),
        (
            &[b"EXPIRE", b"n", b"10", b"GT", b"LT"],
            b"-ERR GT and LT options at the same time are not compatible\r\n",
        ),
        (
            &[b"PEXPIRE", b"n", b"10", b"BOGUS"],
            b"-ERR Unsupported option BOGUS\r\n",
        ),
        (
            &[b"EXPIRE", b"n", b"ten"],
            b"-ERR value is not an integer or out of range\r\n",
        ),
        (
            &[b"EXPIRE", b"n", b"9223372036854775807"],
            b"-ERR invalid expire time in 'expire' command\r\n",
        ),
        (
            &[b"SET", b"n", b"v", b"EX", b"0"],
            b"-ERR invalid expire time in 'set' command\r\n",
        ),
        (
            &[b"SET", b"n", b"v", b"EX", b"1", b"KEEPTTL"],
            b"-ERR syntax error\r\n",
        ),
        (
            &[b"SETEX", b"n", b"0", b"v"],
            b"-ERR invalid expire time in 'setex' command\r\n",
        ),
        (
            &[b"GETEX", b"n", b"PX", b"-1"],
            b"-ERR invalid expire time in 'getex' command\r\n",
        ),
        (
            &[b"GETEX", b"n", b"EX", b"1", b"PERSIST"],
            b"-ERR syntax error\r\n",
        ),
        (
            &[b"GETEX", b"h"],
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        ),
        (&[b"EXPIRE", b"n", b"100", b"XX"], b":0\r\n"),
        (&[b"EXPIRE", b"n", b"100", b"NX"], b":1\r\n"),
        (&[b"EXPIRE", b"n", b"50", b"GT"], b":0\r\n"),
        (&[b"EXPIRE", b"n", b"50", b"LT"], b":1\r\n"),
    ] {
        raw.roundtrip(&request(args), reply);
    }
}

#[test]
fn an_expired_key_is_absent_to_every_read_and_write() {
    let server = TestServer::start();
    let mut con = server.client();
    let _: () = redis::cmd("SET")
        .arg("s")
        .arg("41")
        .arg("PX")
        .arg(100)
        .query(&mut con)
        .unwrap();
    let _: () = con.hset_multiple("h", &[("a", 1), ("b", 2)]).unwrap();
    let _: bool = con.pexpire("h", 100).unwrap();
    let _: () = con.set("stays", 1).unwrap();
    std::thread::sleep(Duration::from_millis(150));

    assert_eq!(con.get::<_, Option<String>>("s").unwrap(), None);
    assert_eq!(con.exists::<_, i64>(&["s", "h", "stays"]).unwrap(), 1);
    assert_eq!(
        redis::cmd("TYPE").arg("h").query::<String>(&mut con).unwrap(),
        "none"
    );
    assert_eq!(con.ttl::<_, i64>("s").unwrap(), -2);
    let mut keys: Vec<String> = con.keys("*").unwrap();
    keys.sort();
    assert_eq!(keys, ["stays"]);
    // A write starts from nothing, with no timeout.
    assert_eq!(con.incr::<_, _, i64>("s", 1).unwrap(), 1);
    assert_eq!(con.ttl::<_, i64>("s").unwrap(), -1);
    assert_eq!(con.hset::<_, _, _, i64>("h", "c", 3).unwrap(), 1);
    assert_eq!(
        con.hlen::<_, i64>("h").unwrap(),
        1,
        "the expired hash's fields are gone"
    );
    assert_eq!(con.del::<_, i64>(&["s", "h"]).unwrap(), 2);
}

/// Every command of a `MULTI` decides expiry at one instant: around a key's deadline, an
/// `EXEC` sees it whole or not at all, never present to one command and gone to the next.
#[test]
fn a_transaction_decides_expiry_at_one_instant() {
    let server = TestServer::start();
    let mut con = server.client();
    let mut straddled = 0;
    for round in 0..5 {
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("v")
            .arg("PX")
            .arg(40)
            .query(&mut con)
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let (exists, value, ttl, also): (i64, Option<String>, i64, i64) = redis::pipe()
                .atomic()
                .exists("k")
                .get("k")
                .pttl("k")
                .exists("k")
                .query(&mut con)
                .unwrap();
            let present = exists == 1;
            assert_eq!(also, exists, "round {round}");
            assert_eq!(value.is_some(), present, "round {round}");
            assert_eq!(ttl >= 0, present, "round {round}: PTTL {ttl}");
            if !present {
                break;
            }
            straddled += 1;
            assert!(Instant::now() < deadline, "the key never expired");
        }
    }
    assert!(straddled > 0, "some EXEC ran while the key was alive");
}

#[test]
fn a_watched_key_that_expires_makes_exec_fail() {
    let server = TestServer::start();
    let mut con = server.client();
    let _: () = redis::cmd("SET")
        .arg("w")
        .arg("v")
        .arg("PX")
        .arg(100)
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("WATCH").arg("w").query(&mut con).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("side").arg(1).query(&mut con).unwrap();
    let reply: Value = redis::cmd("EXEC").query(&mut con).unwrap();
    assert_eq!(reply, Value::Nil, "EXEC after the watched key expired");
    assert!(!con.exists::<_, bool>("side").unwrap());

    // A key with a timeout that has not passed does not disturb EXEC.
    let _: () = redis::cmd("SET")
        .arg("w")
        .arg("v")
        .arg("EX")
        .arg(100)
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("WATCH").arg("w").query(&mut con).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("side").arg(1).query(&mut con).unwrap();
    let reply: Value = redis::cmd("EXEC").query(&mut con).unwrap();
    assert_ne!(reply, Value::Nil);
    assert!(con.exists::<_, bool>("side").unwrap());
}

/// Expired keys are deleted in the background (nobody reads them), and `INFO` counts keys with
/// timeouts and keys expired.
#[test]
fn the_sweeper_deletes_expired_keys_and_info_counts_them() {
    let server = TestServer::start();
    let mut con = server.client();
    for i in 0..300 {
        let _: () = redis::cmd("SET")
            .arg(format!("short:{i}"))
            .arg(i)
            .arg("PX")
            .arg(3000)
            .query(&mut con)
            .unwrap();
    }
    for i in 0..10 {
        let _: () = con.set_ex(format!("long:{i}"), i, 1000).unwrap();
    }
    let _: () = con.set("plain", 1).unwrap();
    let keyspace = info_field(&mut con, "keyspace", "db0").unwrap();
    assert!(keyspace.starts_with("keys=311,expires=310,"), "{keyspace}");

    // More than one sweep batch (256) is due: the sweeper takes them all.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let expired: u64 = info_field(&mut con, "stats", "expired_keys")
            .unwrap()
            .parse()
            .unwrap();
        if expired == 300 {
            break;
        }
        assert!(
            expired < 300,
            "only keys past their deadline are deleted: {expired}"
        );
        assert!(Instant::now() < deadline, "the sweeper deleted {expired} of 300");
        std::thread::sleep(Duration::from_millis(50));
    }
    let keyspace = info_field(&mut con, "keyspace", "db0").unwrap();
    assert!(keyspace.starts_with("keys=11,expires=10,"), "{keyspace}");
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 11);
}
