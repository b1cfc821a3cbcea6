//! Read-modify-write commands stay atomic under concurrent clients.

use std::thread;

use redis::Commands;

use crate::harness::TestServer;

#[test]
fn concurrent_incr_loses_no_update() {
    let server = TestServer::start();
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let mut con = server.client();
            thread::spawn(move || {
                for _ in 0..200 {
                    let _: i64 = con.incr("counter", 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut con = server.client();
    assert_eq!(con.get::<_, i64>("counter").unwrap(), 4_000);
}

#[test]
fn concurrent_append_and_msetnx_are_atomic() {
    let server = TestServer::start();
    let threads: Vec<_> = (0..10)
        .map(|t| {
            let mut con = server.client();
            thread::spawn(move || {
                let mut won = 0;
                for i in 0..50 {
                    let _: i64 = redis::cmd("APPEND").arg("log").arg("ab").query(&mut con).unwrap();
                    // Every thread races for the same pairs; exactly one may win each.
                    let set: i64 = redis::cmd("MSETNX")
                        .arg(format!("p{i}:a"))
                        .arg(t)
                        .arg(format!("p{i}:b"))
                        .arg(t)
                        .query(&mut con)
                        .unwrap();
                    won += set;
                }
                won
            })
        })
        .collect();
    let won: i64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(won, 50, "each MSETNX pair is won exactly once");
    let mut con = server.client();
    let log: String = con.get("log").unwrap();
    assert_eq!(log.len(), 10 * 50 * 2);
    assert!(
        log.as_bytes().chunks(2).all(|c| c == b"ab"),
        "appends never interleave"
    );
    for i in 0..50 {
        let a: String = con.get(format!("p{i}:a")).unwrap();
        let b: String = con.get(format!("p{i}:b")).unwrap();
        assert_eq!(a, b, "both keys of a pair come from one MSETNX");
    }
}

/// Concurrent writes of one key run together (the combiner): every client still gets its own
/// command's reply, a command that fails writes nothing while the others apply, and each
/// append sees a distinct length (none lost, none doubled).
#[test]
fn same_key_writers_each_get_their_own_reply() {
    let server = TestServer::start();
    let threads: Vec<_> = (0..12)
        .map(|t| {
            let mut con = server.client();
            thread::spawn(move || {
                let mut lengths = Vec::new();
                for _ in 0..100 {
                    if t % 3 == 0 {
                        // Runs, fails (past proto-max-bulk-len), and must write nothing.
                        let err = redis::cmd("SETRANGE")
                            .arg("log")
                            .arg(600_000_000)
                            .arg("x")
                            .query::<i64>(&mut con)
                            .unwrap_err();
                        assert!(err.to_string().contains("maximum allowed size"), "{err}");
                    } else {
                        let len: i64 = redis::cmd("APPEND").arg("log").arg("ab").query(&mut con).unwrap();
                        lengths.push(len);
                    }
                }
                lengths
            })
        })
        .collect();
    let mut lengths: Vec<i64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    lengths.sort_unstable();
    let expected: Vec<i64> = (1..=800).map(|i| i * 2).collect();
    assert_eq!(lengths, expected, "every append saw its own, distinct length");
    let mut con = server.client();
    let log: String = con.get("log").unwrap();
    assert_eq!(log, "ab".repeat(800));
}

/// Pipelines of same-key writes from many clients run together (see `combiner`), yet each
/// pipeline still runs back to back: its `INCR`s see consecutive values, every increment
/// counts once, and a pipeline of pushes lands contiguous and in its order.
#[test]
fn same_key_pipelines_stay_whole_and_in_order() {
    let server = TestServer::start();
    let threads: Vec<_> = (0..10)
        .map(|t| {
            let mut con = server.client();
            thread::spawn(move || {
                for round in 0..20 {
                    let mut pipe = redis::pipe();
                    for _ in 0..16 {
                        pipe.incr("hot", 1);
                    }
                    let values: Vec<i64> = pipe.query(&mut con).unwrap();
                    let first = values[0];
                    assert_eq!(
                        values,
                        (first..first + 16).collect::<Vec<_>>(),
                        "a pipeline split"
                    );

                    let mut pipe = redis::pipe();
                    for i in 0..8 {
                        pipe.rpush("queue", format!("{t}:{round}:{i}"));
                    }
                    let lengths: Vec<i64> = pipe.query(&mut con).unwrap();
                    let first = lengths[0];
                    assert_eq!(lengths, (first..first + 8).collect::<Vec<_>>(), "pushes split");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut con = server.client();
    assert_eq!(con.get::<_, i64>("hot").unwrap(), 10 * 20 * 16);
    let queue: Vec<String> = con.lrange("queue", 0, -1).unwrap();
    assert_eq!(queue.len(), 10 * 20 * 8);
    for run in queue.chunks(8) {
        let prefix = run[0].rsplit_once(':').unwrap().0;
        let expected: Vec<String> = (0..8).map(|i| format!("{prefix}:{i}")).collect();
        assert_eq!(run, expected, "one pipeline's pushes, contiguous and in order");
    }
}
