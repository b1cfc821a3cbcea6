//! Lists as job queues use them: pushes and pops from many clients, and blocked consumers
//! woken by producers on other connections.

use std::time::{Duration, Instant};

use redis::{Commands, Value};

use crate::harness::TestServer;

#[test]
fn pushes_pops_ranges_and_edits_behave_as_in_redis() {
    let server = TestServer::start();
    let mut con = server.client();
    assert_eq!(con.rpush::<_, _, i64>("l", &["b", "c"]).unwrap(), 2);
    assert_eq!(con.lpush::<_, _, i64>("l", &["a", "z"]).unwrap(), 4);
    let all: Vec<String> = con.lrange("l", 0, -1).unwrap();
    assert_eq!(all, ["z", "a", "b", "c"]);
    assert_eq!(con.lindex::<_, String>("l", -1).unwrap(), "c");
    let _: () = con.lset("l", 0, "y").unwrap();
    assert_eq!(
        con.lpop::<_, Vec<String>>("l", std::num::NonZeroUsize::new(2))
            .unwrap(),
        ["y", "a"]
    );
    assert_eq!(con.rpop::<_, String>("l", None).unwrap(), "c");
    assert_eq!(con.linsert_before::<_, _, _, i64>("l", "b", "x").unwrap(), 2);
    assert_eq!(con.rpush::<_, _, i64>("l", &["x", "b", "x"]).unwrap(), 5);
    assert_eq!(con.lrem::<_, _, i64>("l", -2, "x").unwrap(), 2);
    let all: Vec<String> = con.lrange("l", 0, -1).unwrap();
    assert_eq!(all, ["x", "b", "b"]);
    let _: () = con.ltrim("l", 1, -1).unwrap();
    assert_eq!(con.llen::<_, i64>("l").unwrap(), 2);
    let moved: String = redis::cmd("LMOVE")
        .arg("l")
        .arg("m")
        .arg("LEFT")
        .arg("RIGHT")
        .query(&mut con)
        .unwrap();
    assert_eq!(moved, "b");
    assert_eq!(con.rpoplpush::<_, _, String>("l", "m").unwrap(), "b");
    assert!(!con.exists::<_, bool>("l").unwrap(), "an emptied list is gone");
    assert_eq!(
        redis::cmd("TYPE").arg("m").query::<String>(&mut con).unwrap(),
        "list"
    );
    let _: () = con.set("s", "string").unwrap();
    let err = con.lpush::<_, _, i64>("s", "x").unwrap_err();
    assert_eq!(err.code(), Some("WRONGTYPE"));
    // A list keeps its timeout across pushes, and expires whole.
    let _: bool = con.pexpire("m", 100_000).unwrap();
    let _: i64 = con.rpush("m", "c").unwrap();
    assert!(con.pttl::<_, i64>("m").unwrap() > 0);
}

#[test]
fn concurrent_pushes_from_many_clients_lose_nothing() {
    let server = TestServer::start();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let mut con = server.client();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let end_left = i % 2 == 0;
                    let element = format!("{t}:{i}");
                    let _: i64 = if end_left {
                        con.lpush("queue", element).unwrap()
                    } else {
                        con.rpush("queue", element).unwrap()
                    };
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut con = server.client();
    let mut all: Vec<String> = con.lrange("queue", 0, -1).unwrap();
    assert_eq!(all.len(), 400);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 400, "every element once");
}

#[test]
fn a_blocked_pop_is_woken_by_a_push_on_another_connection() {
    let server = TestServer::start();
    let mut consumer = server.client();
    let mut producer = server.client();
    let waiting = std::thread::spawn(move || {
        let started = Instant::now();
        let got: (String, String) = consumer.brpop("jobs", 5.0).unwrap();
        (got, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let _: i64 = producer.lpush("jobs", "job-1").unwrap();
    let pushed = Instant::now();
    let ((key, job), waited) = waiting.join().unwrap();
    assert_eq!((key.as_str(), job.as_str()), ("jobs", "job-1"));
    assert!(
        waited >= Duration::from_millis(250),
        "it blocked first: {waited:?}"
    );
    assert!(
        pushed.elapsed() < Duration::from_secs(5),
        "woken by the push, not the timeout"
    );

    // A timeout answers nil; inside MULTI a blocking pop does not block.
    let started = Instant::now();
    let reply: Value = redis::cmd("BLPOP")
        .arg("empty")
        .arg(0.2)
        .query(&mut producer)
        .unwrap();
    assert_eq!(reply, Value::Nil);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let replies: Value = redis::pipe()
        .atomic()
        .cmd("BLPOP")
        .arg("empty")
        .arg(0)
        .query(&mut producer)
        .unwrap();
    assert_eq!(replies, Value::Array(vec![Value::Nil]));
}

#[test]
fn blocked_clients_are_served_in_the_order_they_blocked() {
    let server = TestServer::start();
    let waiters: Vec<_> = (0..3)
        .map(|i| {
            let mut con = server.client();
            let handle = std::thread::spawn(move || {
                let got: (String, String) = con.blpop("fifo", 10.0).unwrap();
                got.1
            });
            // Block one after the other.
            std::thread::sleep(Duration::from_millis(150));
            (i, handle)
        })
        .collect();
    let mut producer = server.client();
    let _: i64 = producer.rpush("fifo", &["first", "second", "third"]).unwrap();
    let got: Vec<String> = waiters.into_iter().map(|(_, h)| h.join().unwrap()).collect();
    assert_eq!(got, ["first", "second", "third"]);
}

#[test]
fn a_client_that_leaves_or_is_unblocked_stops_waiting() {
    let server = TestServer::start();
    let mut admin = server.client();
    let blocked_clients = |con: &mut redis::Connection| -> i64 {
        let info: String = redis::cmd("INFO").arg("clients").query(con).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .unwrap()
            .parse()
            .unwrap()
    };
    let wait_for = |con: &mut redis::Connection, n: i64| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while blocked_clients(con) != n {
            assert!(Instant::now() < deadline, "blocked_clients never became {n}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // A client that closes its connection while blocked leaves the queue.
    let mut raw = server.raw();
    raw.send(&crate::harness::request(&[b"BLPOP", b"never", b"0"]));
    wait_for(&mut admin, 1);
    drop(raw);
    wait_for(&mut admin, 0);

    // CLIENT UNBLOCK ends a wait as a timeout would, or with an error.
    for (mode, expect_error) in [("TIMEOUT", false), ("ERROR", true)] {
        let mut con = server.client();
        let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut con).unwrap();
        let waiting =
            std::thread::spawn(move || redis::cmd("BLPOP").arg("never").arg(0).query::<Value>(&mut con));
        wait_for(&mut admin, 1);
        let unblocked: i64 = redis::cmd("CLIENT")
            .arg("UNBLOCK")
            .arg(id)
            .arg(mode)
            .query(&mut admin)
            .unwrap();
        assert_eq!(unblocked, 1);
        match waiting.join().unwrap() {
            Ok(reply) => assert!(!expect_error && reply == Value::Nil, "{reply:?}"),
            Err(e) => assert!(expect_error && e.code() == Some("UNBLOCKED"), "{e:?}"),
        }
        wait_for(&mut admin, 0);
    }
    let none: i64 = redis::cmd("CLIENT")
        .arg("UNBLOCK")
        .arg(99_999)
        .query(&mut admin)
        .unwrap();
    assert_eq!(none, 0);
}

#[test]
fn rename_moves_collections_with_their_timeout_and_sort_stores_a_list() {
    let server = TestServer::start();
    let mut con = server.client();
    let _: i64 = con.rpush("src", &["3", "1", "2"]).unwrap();
    let _: bool = con.expire("src", 100).unwrap();
    let _: () = con.set("dst", "replaced").unwrap();
    let _: () = con.rename("src", "dst").unwrap();
    assert!(!con.exists::<_, bool>("src").unwrap());
    let moved: Vec<String> = con.lrange("dst", 0, -1).unwrap();
    assert_eq!(moved, ["3", "1", "2"]);
    assert!(
        con.ttl::<_, i64>("dst").unwrap() > 0,
        "the timeout moves with the key"
    );
    let _: () = con.hset("h", "f", "v").unwrap();
    assert_eq!(con.rename_nx::<_, _, i64>("h", "dst").unwrap(), 0);
    assert_eq!(con.rename_nx::<_, _, i64>("h", "h2").unwrap(), 1);
    assert_eq!(con.hget::<_, _, String>("h2", "f").unwrap(), "v");
    let err = con.rename::<_, _, ()>("missing", "x").unwrap_err();
    assert_eq!(err.detail(), Some("no such key"));

    let sorted: Vec<i64> = redis::cmd("SORT").arg("dst").query(&mut con).unwrap();
    assert_eq!(sorted, [1, 2, 3]);
    let stored: i64 = redis::cmd("SORT")
        .arg("dst")
        .arg("DESC")
        .arg("STORE")
        .arg("out")
        .query(&mut con)
        .unwrap();
    assert_eq!(stored, 3);
    let out: Vec<String> = con.lrange("out", 0, -1).unwrap();
    assert_eq!(out, ["3", "2", "1"]);
}
