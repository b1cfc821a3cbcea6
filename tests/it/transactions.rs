//! MULTI / EXEC / DISCARD / WATCH with Redis's semantics, on Percolator transactions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use redis::{Commands, Value};

use crate::harness::{TestServer, request};

#[test]
fn queued_commands_run_atomically_and_reply_in_one_array() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.roundtrip(&request(&[b"MULTI"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"SET", b"a", b"1"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"INCR", b"a"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"GET", b"a"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"PING"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"EXEC"]), b"*4\r\n+OK\r\n:2\r\n$1\r\n2\r\n+PONG\r\n");
    raw.roundtrip(&request(&[b"MULTI"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"EXEC"]), b"*0\r\n");
}

#[test]
fn a_command_refused_while_queueing_aborts_exec() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.roundtrip(&request(&[b"MULTI"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"SET", b"a", b"1"]), b"+QUEUED\r\n");
    raw.roundtrip(
        &request(&[b"NOSUCH", b"x"]),
        b"-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n",
    );
    raw.roundtrip(
        &request(&[b"GET"]),
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    raw.roundtrip(
        &request(&[b"EXEC"]),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    raw.roundtrip(&request(&[b"GET", b"a"]), b"$-1\r\n");
    // The transaction is over: EXEC again is an error.
    raw.roundtrip(&request(&[b"EXEC"]), b"-ERR EXEC without MULTI\r\n");
}

#[test]
fn runtime_errors_are_inline_and_the_rest_still_applies() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.roundtrip(&request(&[b"HSET", b"h", b"f", b"v"]), b":1\r\n");
    raw.roundtrip(&request(&[b"MULTI"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"SET", b"a", b"1"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"INCR", b"h"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"SET", b"b", b"2", b"NX", b"XX"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"INCR", b"a"]), b"+QUEUED\r\n");
    raw.roundtrip(
        &request(&[b"EXEC"]),
        b"*4\r\n+OK\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n-ERR syntax error\r\n:2\r\n",
    );
    raw.roundtrip(&request(&[b"GET", b"a"]), b"$1\r\n2\r\n");
    raw.roundtrip(&request(&[b"EXISTS", b"b"]), b":0\r\n");
}

#[test]
fn transaction_command_errors_match_redis() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.roundtrip(&request(&[b"EXEC"]), b"-ERR EXEC without MULTI\r\n");
    raw.roundtrip(&request(&[b"DISCARD"]), b"-ERR DISCARD without MULTI\r\n");
    raw.roundtrip(&request(&[b"MULTI"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"MULTI"]), b"-ERR MULTI calls can not be nested\r\n");
    raw.roundtrip(
        &request(&[b"WATCH", b"k"]),
        b"-ERR WATCH inside MULTI is not allowed\r\n",
    );
    raw.roundtrip(&request(&[b"SET", b"k", b"v"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"DISCARD"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"GET", b"k"]), b"$-1\r\n");
    // Nested MULTI and WATCH inside MULTI do not doom the transaction.
    raw.roundtrip(&request(&[b"MULTI"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"MULTI"]), b"-ERR MULTI calls can not be nested\r\n");
    raw.roundtrip(&request(&[b"SET", b"k", b"v"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"EXEC"]), b"*1\r\n+OK\r\n");
}

#[test]
fn watch_aborts_exec_when_another_client_changed_the_key() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let mut other = server.client();
    raw.roundtrip(&request(&[b"SET", b"k", b"1"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"WATCH", b"k", b"unrelated"]), b"+OK\r\n");
    let _: () = other.set("k", "2").unwrap();
    raw.roundtrip(&request(&[b"MULTI"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"SET", b"k", b"3"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"SET", b"side", b"effect"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"EXEC"]), b"*-1\r\n");
    raw.roundtrip(&request(&[b"GET", b"k"]), b"$1\r\n2\r\n");
    raw.roundtrip(&request(&[b"EXISTS", b"side"]), b":0\r\n");
    // EXEC cleared the watch: the next transaction goes through.
    raw.roundtrip(&request(&[b"MULTI"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"SET", b"k", b"4"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"EXEC"]), b"*1\r\n+OK\r\n");
}

#[test]
fn watch_semantics_own_writes_unwatch_discard_and_resp3_null() {
    let server = TestServer::start();
    let mut raw = server.raw();
    // The client's own change after WATCH aborts too, as in Redis.
    raw.roundtrip(&request(&[b"WATCH", b"k"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"SET", b"k", b"mine"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"MULTI"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"GET", b"k"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"EXEC"]), b"*-1\r\n");
    // UNWATCH forgets.
    raw.roundtrip(&request(&[b"WATCH", b"k"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"SET", b"k", b"again"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"UNWATCH"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"MULTI"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"EXEC"]), b"*0\r\n");
    // DISCARD forgets too.
    raw.roundtrip(&request(&[b"WATCH", b"k"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"MULTI"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"DISCARD"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"SET", b"k", b"after-discard"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"MULTI"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"EXEC"]), b"*0\r\n");
    // A watched hash changes when any field changes; an unchanged key passes.
    raw.roundtrip(&request(&[b"HSET", b"h", b"f", b"1"]), b":1\r\n");
    raw.roundtrip(&request(&[b"WATCH", b"h", b"k"]), b"+OK\r\n");
    server.client().hincr::<_, _, _, i64>("h", "f", 1).unwrap();
    raw.roundtrip(&request(&[b"MULTI"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"EXEC"]), b"*-1\r\n");
    // In RESP3 the aborted EXEC is the null type.
    raw.send(&request(&[b"HELLO", b"3"]));
    std::thread::sleep(std::time::Duration::from_millis(50));
    let _ = raw.stream.set_nonblocking(true);
    let mut sink = [0u8; 4096];
    let _ = std::io::Read::read(&mut raw.stream, &mut sink);
    raw.stream.set_nonblocking(false).unwrap();
    raw.roundtrip(&request(&[b"WATCH", b"k"]), b"+OK\r\n");
    server.client().set::<_, _, ()>("k", "changed").unwrap();
    raw.roundtrip(&request(&[b"MULTI"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"EXEC"]), b"_\r\n");
}

#[test]
fn flushdb_inside_multi_is_part_of_the_transaction() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.roundtrip(&request(&[b"SET", b"a", b"1"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"HSET", b"h", b"f", b"1"]), b":1\r\n");
    raw.roundtrip(&request(&[b"MULTI"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"FLUSHDB"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"SET", b"b", b"2"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"DBSIZE"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"EXEC"]), b"*3\r\n+OK\r\n+OK\r\n:1\r\n");
    raw.roundtrip(&request(&[b"KEYS", b"*"]), b"*1\r\n$1\r\nb\r\n");
}

#[test]
fn twenty_clients_incr_one_key_five_hundred_times_each() {
    let server = TestServer::start();
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let mut con = server.client();
            thread::spawn(move || {
                for _ in 0..500 {
                    let _: i64 = con.incr("counter", 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut con = server.client();
    assert_eq!(con.get::<_, i64>("counter").unwrap(), 10_000);
}

/// The classic optimistic-locking loop: WATCH, GET, MULTI, SET, EXEC, retry on nil.
#[test]
fn twenty_clients_watch_retry_loops_count_exactly() {
    let server = TestServer::start();
    let retries = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let mut con = server.client();
            let retries = retries.clone();
            thread::spawn(move || {
                for _ in 0..50 {
                    loop {
                        let _: () = redis::cmd("WATCH").arg("counter").query(&mut con).unwrap();
                        let current: Option<i64> = con.get("counter").unwrap();
                        let next = current.unwrap_or(0) + 1;
                        let result: Option<(String,)> = redis::pipe()
                            .atomic()
                            .set("counter", next)
                            .query(&mut con)
                            .unwrap();
                        if result.is_some() {
                            break;
                        }
                        retries.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut con = server.client();
    assert_eq!(con.get::<_, i64>("counter").unwrap(), 1_000);
    assert!(
        retries.load(Ordering::Relaxed) > 0,
        "20 clients on one key must have collided at least once"
    );
}

/// Transfers between 10 accounts inside MULTI, while other clients read all accounts inside
/// MULTI: every read sees one snapshot, so every sum is the initial total.
#[test]
fn bank_transfers_keep_every_snapshot_consistent() {
    const ACCOUNTS: usize = 10;
    const TOTAL: i64 = 10 * 1_000;
    let server = TestServer::start();
    let mut setup = server.client();
    for i in 0..ACCOUNTS {
        let _: () = setup.set(format!("acct:{i}"), 1_000).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let movers: Vec<_> = (0..6)
        .map(|t| {
            let mut con = server.client();
            thread::spawn(move || {
                let mut seed = t as u64 * 7919 + 1;
                for _ in 0..150 {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let from = (seed >> 33) as usize % ACCOUNTS;
                    let to = (from + 1 + (seed >> 40) as usize % (ACCOUNTS - 1)) % ACCOUNTS;
                    let amount = (seed >> 50) as i64 % 50 + 1;
                    let _: (i64, i64) = redis::pipe()
                        .atomic()
                        .decr(format!("acct:{from}"), amount)
                        .incr(format!("acct:{to}"), amount)
                        .query(&mut con)
                        .unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let mut con = server.client();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) || reads < 20 {
                    let mut pipe = redis::pipe();
                    pipe.atomic();
                    for i in 0..ACCOUNTS {
                        pipe.get(format!("acct:{i}"));
                    }
                    let balances: Vec<i64> = pipe.query(&mut con).unwrap();
                    assert_eq!(
                        balances.iter().sum::<i64>(),
                        TOTAL,
                        "an inconsistent snapshot: {balances:?}"
                    );
                    reads += 1;
                    if reads > 5_000 {
                        break;
                    }
                }
                reads
            })
        })
        .collect();
    for mover in movers {
        mover.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().unwrap() >= 20);
    }
    let mut con = server.client();
    let mut total = 0;
    for i in 0..ACCOUNTS {
        total += con.get::<_, i64>(format!("acct:{i}")).unwrap();
    }
    assert_eq!(total, TOTAL);
}

#[test]
fn exec_reads_one_snapshot_even_across_keys_written_meanwhile() {
    let server = TestServer::start();
    let mut con = server.client();
    let _: () = con.set("x", 1).unwrap();
    let _: () = con.set("y", 1).unwrap();
    // x and y are always written together; a MULTI read must never see them differ.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut con = server.client();
        let stop = stop.clone();
        thread::spawn(move || {
            let mut n = 1;
            while !stop.load(Ordering::Relaxed) && n < 3_000 {
                n += 1;
                let _: () = redis::cmd("MSET")
                    .arg("x")
                    .arg(n)
                    .arg("y")
                    .arg(n)
                    .query(&mut con)
                    .unwrap();
            }
        })
    };
    for _ in 0..300 {
        let (x, y): (i64, i64) = redis::pipe().atomic().get("x").get("y").query(&mut con).unwrap();
        assert_eq!(x, y);
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let v: Value = redis::cmd("MGET").arg("x").arg("y").query(&mut con).unwrap();
    let Value::Array(items) = v else { panic!() };
    assert_eq!(items[0], items[1]);
}

/// Garbage collection removes delete records older than its safe point, so a watch older
/// than half of `gc.life_time_secs` could miss a deletion: its `EXEC` fails.
#[test]
fn a_watch_older_than_the_gc_horizon_fails_exec() {
    let mut cluster = ferrokv::config::ClusterConfig::default();
    cluster.gc.life_time_secs = 1;
    let server = TestServer::start_with_cluster(cluster);
    let mut con = server.client();
    let _: () = con.set("k", "v").unwrap();
    let _: () = redis::cmd("WATCH").arg("k").query(&mut con).unwrap();
    let fresh: Option<Vec<String>> = redis::pipe().atomic().get("k").query(&mut con).unwrap();
    assert_eq!(fresh, Some(vec!["v".to_string()]), "a fresh watch passes");
    let _: () = redis::cmd("WATCH").arg("k").query(&mut con).unwrap();
    thread::sleep(std::time::Duration::from_millis(700));
    let stale: Option<Vec<String>> = redis::pipe().atomic().get("k").query(&mut con).unwrap();
    assert_eq!(stale, None, "a watch past the horizon (500 ms) fails");
}

/// UNWATCH is queued in a MULTI like any command and answers OK at EXEC (it used to reach a
/// panic: the dispatch of queued connection commands had no arm for it).
#[test]
fn unwatch_inside_multi_is_queued_and_answers_ok() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.roundtrip(&request(&[b"MULTI"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"UNWATCH"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"SET", b"a", b"1"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"EXEC"]), b"*2\r\n+OK\r\n+OK\r\n");
    raw.roundtrip(&request(&[b"GET", b"a"]), b"$1\r\n1\r\n");
}

#[test]
fn a_multi_queue_past_its_byte_limit_discards_the_transaction() {
    let server = crate::harness::TestServer::start_with(ferrokv::config::RespConfig {
        max_multi_queue_bytes: 1_000,
        ..Default::default()
    });
    let mut con = server.client();
    let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
    let queued: String = redis::cmd("SET")
        .arg("a")
        .arg("x".repeat(500))
        .query(&mut con)
        .unwrap();
    assert_eq!(queued, "QUEUED");
    let full = redis::cmd("SET")
        .arg("b")
        .arg("x".repeat(600))
        .query::<String>(&mut con)
        .unwrap_err();
    assert!(full.to_string().contains("max_multi_queue_bytes"), "{full}");
    // Later commands are answered as queued, but nothing runs.
    let queued: String = redis::cmd("SET").arg("c").arg("1").query(&mut con).unwrap();
    assert_eq!(queued, "QUEUED");
    let exec = redis::cmd("EXEC").query::<redis::Value>(&mut con).unwrap_err();
    assert_eq!(exec.code(), Some("EXECABORT"), "{exec}");
    let found: Vec<Option<String>> = redis::cmd("MGET")
        .arg("a")
        .arg("b")
        .arg("c")
        .query(&mut con)
        .unwrap();
    assert_eq!(found, [None, None, None]);
    // The connection goes on, and a transaction within the limit runs.
    let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
    let _: String = redis::cmd("SET")
        .arg("a")
        .arg("x".repeat(500))
        .query(&mut con)
        .unwrap();
    let _: redis::Value = redis::cmd("EXEC").query(&mut con).unwrap();
    let a: String = redis::cmd("GET").arg("a").query(&mut con).unwrap();
    assert_eq!(a.len(), 500);
}
