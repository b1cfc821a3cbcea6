//! Numbered databases: `SELECT`, each database its own keyspace, and the commands that span
//! them (`MOVE`, `COPY … DB`, `SWAPDB`, `FLUSHALL`).

use std::time::{Duration, Instant};

use redis::{Commands, Value};

use crate::expiry::info_field;
use crate::harness::TestServer;

fn select(con: &mut redis::Connection, db: i64) {
    let _: () = redis::cmd("SELECT").arg(db).query(con).unwrap();
}

fn dbsize(con: &mut redis::Connection) -> i64 {
    redis::cmd("DBSIZE").query(con).unwrap()
}

#[test]
fn each_database_is_its_own_keyspace() {
    let server = TestServer::start();
    let mut con = server.client();
    let _: () = con.set("k", "zero").unwrap();
    let _: i64 = con.rpush("list", &["a", "b"]).unwrap();
    select(&mut con, 1);
    assert_eq!(con.get::<_, Option<String>>("k").unwrap(), None);
    assert_eq!(con.llen::<_, i64>("list").unwrap(), 0);
    let _: () = con.set("k", "one").unwrap();
    let _: i64 = con.sadd("only-in-1", "m").unwrap();
    assert_eq!(dbsize(&mut con), 2);
    let mut keys: Vec<String> = con.keys("*").unwrap();
    keys.sort();
    assert_eq!(keys, ["k", "only-in-1"]);
    let (cursor, scanned): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("COUNT")
        .arg(100)
        .query(&mut con)
        .unwrap();
    assert_eq!((cursor, scanned.len()), (0, 2));
    select(&mut con, 0);
    assert_eq!(con.get::<_, String>("k").unwrap(), "zero");
    assert_eq!(dbsize(&mut con), 2);
    assert_eq!(
        info_field(&mut con, "keyspace", "db0").unwrap(),
        "keys=2,expires=0,avg_ttl=0"
    );
    assert_eq!(
        info_field(&mut con, "keyspace", "db1").unwrap(),
        "keys=2,expires=0,avg_ttl=0"
    );
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    assert!(clients.contains(" db=0 "), "{clients}");

    // FLUSHDB empties one database, FLUSHALL all of them.
    select(&mut con, 1);
    let _: () = redis::cmd("FLUSHDB").query(&mut con).unwrap();
    assert_eq!(dbsize(&mut con), 0);
    select(&mut con, 0);
    assert_eq!(dbsize(&mut con), 2);
    select(&mut con, 15);
    let _: () = con.set("k", "fifteen").unwrap();
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    assert_eq!(dbsize(&mut con), 0);
    select(&mut con, 0);
    assert_eq!(dbsize(&mut con), 0);

    for (bad, error) in [
        ("16", "DB index is out of range"),
        ("-1", "DB index is out of range"),
        ("x", "not an integer"),
    ] {
        let err = redis::cmd("SELECT").arg(bad).query::<()>(&mut con).unwrap_err();
        assert!(err.to_string().contains(error), "SELECT {bad}: {err}");
    }
}

#[test]
fn move_copy_and_swapdb_carry_values_between_databases() {
    let server = TestServer::start();
    let mut con = server.client();
    let _: i64 = con.zadd("board", "alice", 10).unwrap();
    let _: bool = con.pexpire("board", 100_000).unwrap();
    let moved: i64 = redis::cmd("MOVE").arg("board").arg(2).query(&mut con).unwrap();
    assert_eq!(moved, 1);
    assert!(!con.exists::<_, bool>("board").unwrap());
    let moved: i64 = redis::cmd("MOVE").arg("board").arg(2).query(&mut con).unwrap();
    assert_eq!(moved, 0, "nothing left to move");
    let err = redis::cmd("MOVE")
        .arg("board")
        .arg(0)
        .query::<i64>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("the same"), "{err}");
    select(&mut con, 2);
    assert_eq!(con.zscore::<_, _, f64>("board", "alice").unwrap(), 10.0);
    assert!(
        con.pttl::<_, i64>("board").unwrap() > 0,
        "the timeout moves along"
    );

    // A key that exists in the target is not overwritten by MOVE.
    let _: () = con.set("k", "two").unwrap();
    select(&mut con, 0);
    let _: () = con.set("k", "zero").unwrap();
    let moved: i64 = redis::cmd("MOVE").arg("k").arg(2).query(&mut con).unwrap();
    assert_eq!(moved, 0);

    // COPY … DB leaves the source.
    let copied: i64 = redis::cmd("COPY")
        .arg("k")
        .arg("k")
        .arg("DB")
        .arg(3)
        .query(&mut con)
        .unwrap();
    assert_eq!(copied, 1);
    let copied: i64 = redis::cmd("COPY")
        .arg("k")
        .arg("k")
        .arg("DB")
        .arg(2)
        .query(&mut con)
        .unwrap();
    assert_eq!(copied, 0, "the destination exists");
    let copied: i64 = redis::cmd("COPY")
        .arg("k")
        .arg("k")
        .arg("DB")
        .arg(2)
        .arg("REPLACE")
        .query(&mut con)
        .unwrap();
    assert_eq!(copied, 1);
    assert_eq!(con.get::<_, String>("k").unwrap(), "zero");
    select(&mut con, 2);
    assert_eq!(con.get::<_, String>("k").unwrap(), "zero");

    // SWAPDB exchanges whole databases.
    let _: () = redis::cmd("SWAPDB").arg(2).arg(5).query(&mut con).unwrap();
    assert_eq!(dbsize(&mut con), 0);
    select(&mut con, 5);
    assert_eq!(dbsize(&mut con), 2);
    assert_eq!(con.zscore::<_, _, f64>("board", "alice").unwrap(), 10.0);
    let err = redis::cmd("SWAPDB")
        .arg(0)
        .arg(16)
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
}

#[test]
fn transactions_watches_and_blocked_clients_keep_to_their_database() {
    let server = TestServer::start();
    let mut con = server.client();
    let mut other = server.client();

    // A SELECT queued in MULTI moves the commands after it, and the session.
    let replies: Value = redis::pipe()
        .atomic()
        .set("a", "in-0")
        .cmd("SELECT")
        .arg(1)
        .set("a", "in-1")
        .query(&mut con)
        .unwrap();
    assert_eq!(replies, Value::Array(vec![Value::Okay, Value::Okay, Value::Okay]));
    assert_eq!(con.get::<_, String>("a").unwrap(), "in-1");
    select(&mut con, 0);
    assert_eq!(con.get::<_, String>("a").unwrap(), "in-0");

    // WATCH watches the key of the database it was given in.
    let _: () = redis::cmd("WATCH").arg("a").query(&mut con).unwrap();
    select(&mut other, 1);
    let _: () = other.set("a", "changed-in-1").unwrap();
    let replies: Option<Vec<String>> = redis::pipe().atomic().get("a").query(&mut con).unwrap();
    assert_eq!(
        replies,
        Some(vec!["in-0".to_string()]),
        "another database's key is another key"
    );
    let _: () = redis::cmd("WATCH").arg("a").query(&mut con).unwrap();
    select(&mut other, 0);
    let _: () = other.set("a", "changed-in-0").unwrap();
    let replies: Option<Vec<String>> = redis::pipe().atomic().get("a").query(&mut con).unwrap();
    assert_eq!(replies, None, "the watched key changed");

    // A client blocked in database 9 is not served by a push in database 0, but is by a
    // SWAPDB that brings it a list.
    let mut waiter = server.client();
    select(&mut waiter, 9);
    let blocked = std::thread::spawn(move || {
        let started = Instant::now();
        let got: Option<(String, String)> = waiter.brpop("jobs", 5.0).unwrap();
        (got, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let _: i64 = other.lpush("jobs", "in-0").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    select(&mut other, 1);
    let _: i64 = other.lpush("jobs", "in-1").unwrap();
    let _: () = redis::cmd("SWAPDB").arg(1).arg(9).query(&mut other).unwrap();
    let (got, waited) = blocked.join().unwrap();
    assert_eq!(got, Some(("jobs".to_string(), "in-1".to_string())));
    assert!(waited < Duration::from_secs(4), "woken by SWAPDB: {waited:?}");
    select(&mut other, 0);
    assert_eq!(
        other.llen::<_, i64>("jobs").unwrap(),
        1,
        "database 0's list is untouched"
    );
}

#[test]
fn keys_expire_in_every_database() {
    let server = TestServer::start();
    let mut con = server.client();
    select(&mut con, 7);
    for i in 0..20 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .arg("PX")
            .arg(1500)
            .query(&mut con)
            .unwrap();
    }
    assert!(
        info_field(&mut con, "keyspace", "db7")
            .unwrap()
            .starts_with("keys=20,expires=20,")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let expired: u64 = info_field(&mut con, "stats", "expired_keys")
            .unwrap()
            .parse()
            .unwrap();
        if expired == 20 {
            break;
        }
        assert!(Instant::now() < deadline, "the sweeper deleted {expired} of 20");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(dbsize(&mut con), 0);
}
