//! Whole values moved as one: `DUMP`/`RESTORE`, `COPY`, `RENAME`, and what `MEMORY USAGE`
//! and the hash commands that read or rewrite a field as a number answer.

use std::collections::{BTreeMap, BTreeSet};

use redis::Commands;

use crate::harness::TestServer;

fn dump(con: &mut redis::Connection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("DUMP").arg(key).query(con).unwrap()
}

#[test]
fn every_type_dumps_and_restores_with_its_timeout() {
    let server = TestServer::start();
    let mut con = server.client();
    let _: () = con.set("str", "x".repeat(100)).unwrap();
    let _: i64 = con.rpush("list", &["a", "b", "c", "b"]).unwrap();
    let _: i64 = con.sadd("set", &["m1", "m2"]).unwrap();
    let _: i64 = con
        .hset_multiple("hash", &[("f", "1"), ("g", "2")])
        .map(|()| 2)
        .unwrap();
    let _: i64 = con.zadd_multiple("zset", &[(1.5, "a"), (-2.0, "b")]).unwrap();
    for key in ["str", "list", "set", "hash", "zset"] {
        let payload = dump(&mut con, key).expect("an existing key dumps");
        let copy = format!("{key}:copy");
        let reply: String = redis::cmd("RESTORE")
            .arg(&copy)
            .arg(100_000)
            .arg(&payload)
            .query(&mut con)
            .unwrap();
        assert_eq!(reply, "OK");
        assert_eq!(dump(&mut con, &copy), Some(payload.clone()), "{key}: same value");
        let ttl: i64 = con.pttl(&copy).unwrap();
        assert!(ttl > 90_000 && ttl <= 100_000, "{key}: ttl {ttl}");
        // The key exists now: only REPLACE overwrites it.
        let err = redis::cmd("RESTORE")
            .arg(&copy)
            .arg(0)
            .arg(&payload)
            .query::<String>(&mut con)
            .unwrap_err();
        assert_eq!(err.code(), Some("BUSYKEY"));
        let _: String = redis::cmd("RESTORE")
            .arg(&copy)
            .arg(0)
            .arg(&payload)
            .arg("REPLACE")
            .query(&mut con)
            .unwrap();
        assert_eq!(con.pttl::<_, i64>(&copy).unwrap(), -1, "{key}: no timeout");
    }
    let list: Vec<String> = con.lrange("list:copy", 0, -1).unwrap();
    assert_eq!(list, ["a", "b", "c", "b"]);
    let zset: Vec<(String, f64)> = con.zrange_withscores("zset:copy", 0, -1).unwrap();
    assert_eq!(zset, [("b".to_string(), -2.0), ("a".to_string(), 1.5)]);

    // An absolute deadline already passed restores nothing (and removes what was there).
    let payload = dump(&mut con, "str").unwrap();
    let _: String = redis::cmd("RESTORE")
        .arg("str:copy")
        .arg(1_000)
        .arg(&payload)
        .arg("ABSTTL")
        .arg("REPLACE")
        .query(&mut con)
        .unwrap();
    assert!(!con.exists::<_, bool>("str:copy").unwrap());

    // A damaged payload is refused with Redis's error and writes nothing.
    let mut damaged = payload.clone();
    damaged[2] ^= 0x40;
    let err = redis::cmd("RESTORE")
        .arg("bad")
        .arg(0)
        .arg(&damaged)
        .query::<String>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    assert!(!con.exists::<_, bool>("bad").unwrap());
    assert_eq!(dump(&mut con, "missing"), None);
}

#[test]
fn a_copy_is_independent_of_its_source() {
    let server = TestServer::start();
    let mut con = server.client();
    let _: i64 = con.sadd("a", &["x", "y"]).unwrap();
    let _: bool = con.pexpire("a", 100_000).unwrap();
    let copied: i64 = redis::cmd("COPY").arg("a").arg("b").query(&mut con).unwrap();
    assert_eq!(copied, 1);
    assert!(con.pttl::<_, i64>("b").unwrap() > 0, "the timeout is copied");
    let _: i64 = con.srem("b", "y").unwrap();
    let a: BTreeSet<String> = con.smembers("a").unwrap();
    let b: BTreeSet<String> = con.smembers("b").unwrap();
    assert_eq!(a, BTreeSet::from(["x".into(), "y".into()]));
    assert_eq!(b, BTreeSet::from(["x".into()]));
    // An existing destination is kept unless REPLACE.
    let copied: i64 = redis::cmd("COPY").arg("a").arg("b").query(&mut con).unwrap();
    assert_eq!(copied, 0);
    let copied: i64 = redis::cmd("COPY")
        .arg("a")
        .arg("b")
        .arg("REPLACE")
        .query(&mut con)
        .unwrap();
    assert_eq!(copied, 1);
    assert_eq!(con.scard::<_, i64>("b").unwrap(), 2);
    let copied: i64 = redis::cmd("COPY")
        .arg("missing")
        .arg("c")
        .query(&mut con)
        .unwrap();
    assert_eq!(copied, 0);
    let err = redis::cmd("COPY")
        .arg("a")
        .arg("a")
        .query::<i64>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("the same"), "{err}");
}

/// A collection renamed away and back must not pick up the parts it left behind under its
/// old name (they wait for garbage collection): each copy gets a new version.
#[test]
fn renaming_a_collection_away_and_back_keeps_only_its_members() {
    let server = TestServer::start();
    let mut con = server.client();
    let _: i64 = con.sadd("a", &["x", "y"]).unwrap();
    let _: i64 = con
        .hset_multiple("h", &[("f", "1"), ("g", "2")])
        .map(|()| 2)
        .unwrap();
    let _: () = con.rename("a", "b").unwrap();
    let _: () = con.rename("h", "i").unwrap();
    let _: i64 = con.srem("b", "y").unwrap();
    let _: i64 = con.hdel("i", "g").unwrap();
    let _: () = con.rename("b", "a").unwrap();
    let _: () = con.rename("i", "h").unwrap();
    let a: Vec<String> = con.smembers("a").unwrap();
    assert_eq!(a, ["x"]);
    let h: BTreeMap<String, String> = con.hgetall("h").unwrap();
    assert_eq!(h, BTreeMap::from([("f".to_string(), "1".to_string())]));
}

#[test]
fn memory_usage_grows_with_the_value() {
    let server = TestServer::start();
    let mut con = server.client();
    let usage = |con: &mut redis::Connection, key: &str, samples: u64| -> Option<i64> {
        redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(samples)
            .query(con)
            .unwrap()
    };
    assert_eq!(usage(&mut con, "missing", 5), None);
    let _: () = con.set("small", "x").unwrap();
    let _: () = con.set("big", "x".repeat(10_000)).unwrap();
    assert!(usage(&mut con, "big", 5).unwrap() > usage(&mut con, "small", 5).unwrap() + 9_000);
    let members: Vec<String> = (0..1_000).map(|i| format!("member:{i:04}")).collect();
    let _: i64 = con.sadd("set", &members).unwrap();
    let exact = usage(&mut con, "set", 0).unwrap();
    let sampled = usage(&mut con, "set", 5).unwrap();
    // Each member entry holds the prefix, the key, the version, a hash and the member.
    assert!(exact > 1_000 * 30, "{exact}");
    assert!((sampled - exact).abs() < exact / 10, "{sampled} vs {exact}");
}

#[test]
fn hash_random_fields_and_float_increments_behave_as_in_redis() {
    let server = TestServer::start();
    let mut con = server.client();
    let pairs: Vec<(String, String)> = (0..10).map(|i| (format!("f{i}"), format!("v{i}"))).collect();
    let _: () = con.hset_multiple("h", &pairs).unwrap();
    let all: BTreeMap<String, String> = pairs.iter().cloned().collect();
    let distinct: Vec<String> = redis::cmd("HRANDFIELD").arg("h").arg(5).query(&mut con).unwrap();
    assert_eq!(distinct.iter().collect::<BTreeSet<_>>().len(), 5);
    let everything: Vec<String> = redis::cmd("HRANDFIELD").arg("h").arg(50).query(&mut con).unwrap();
    assert_eq!(everything.len(), 10, "at most the whole hash");
    let repeated: Vec<(String, String)> = redis::cmd("HRANDFIELD")
        .arg("h")
        .arg(-40)
        .arg("WITHVALUES")
        .query(&mut con)
        .unwrap();
    assert_eq!(repeated.len(), 40);
    assert!(repeated.iter().all(|(f, v)| all.get(f) == Some(v)));
    let one: Option<String> = redis::cmd("HRANDFIELD").arg("missing").query(&mut con).unwrap();
    assert_eq!(one, None);

    let result: String = redis::cmd("HINCRBYFLOAT")
        .arg("n")
        .arg("x")
        .arg("1.23")
        .query(&mut con)
        .unwrap();
    assert_eq!(result, "1.23");
    let result: String = redis::cmd("HINCRBYFLOAT")
        .arg("n")
        .arg("x")
        .arg("0.77")
        .query(&mut con)
        .unwrap();
    assert_eq!(result, "2");
    let err = redis::cmd("HINCRBYFLOAT")
        .arg("h")
        .arg("f1")
        .arg("1")
        .query::<String>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("not a float"), "{err}");
    let err = redis::cmd("HINCRBYFLOAT")
        .arg("n")
        .arg("x")
        .arg("inf")
        .query::<String>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("NaN or Infinity"), "{err}");
}

#[test]
fn object_touch_and_randomkey_answer_for_what_is_stored() {
    let server = TestServer::start();
    let mut con = server.client();
    let encoding = |con: &mut redis::Connection, key: &str| -> Option<String> {
        redis::cmd("OBJECT").arg("ENCODING").arg(key).query(con).unwrap()
    };
    assert_eq!(encoding(&mut con, "missing"), None);
    let _: () = con.set("s", "12").unwrap();
    let _: i64 = con.hset("h", "f", "v").unwrap();
    let _: i64 = con.rpush("l", "e").unwrap();
    let _: i64 = con.sadd("set", "m").unwrap();
    let _: i64 = con.zadd("z", "m", 1).unwrap();
    for (key, name) in [
        ("s", "raw"),
        ("h", "hashtable"),
        ("l", "quicklist"),
        ("set", "hashtable"),
        ("z", "skiplist"),
    ] {
        assert_eq!(encoding(&mut con, key).as_deref(), Some(name), "{key}");
    }
    let refcount: i64 = redis::cmd("OBJECT")
        .arg("REFCOUNT")
        .arg("s")
        .query(&mut con)
        .unwrap();
    assert_eq!(refcount, 1);
    let err = redis::cmd("OBJECT")
        .arg("FREQ")
        .arg("s")
        .query::<i64>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("no access times"), "{err}");

    let touched: i64 = redis::cmd("TOUCH")
        .arg("s")
        .arg("h")
        .arg("missing")
        .query(&mut con)
        .unwrap();
    assert_eq!(touched, 2);

    let keys = ["s", "h", "l", "set", "z"];
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        let key: String = redis::cmd("RANDOMKEY").query(&mut con).unwrap();
        assert!(keys.contains(&key.as_str()), "{key}");
        seen.insert(key);
    }
    assert!(seen.len() >= 2, "picks vary: {seen:?}");
    let _: () = redis::cmd("FLUSHDB").query(&mut con).unwrap();
    let none: Option<String> = redis::cmd("RANDOMKEY").query(&mut con).unwrap();
    assert_eq!(none, None);
}
