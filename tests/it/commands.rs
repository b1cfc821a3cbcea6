//! Command semantics through the `redis` crate, as an application sees them, and error replies
//! byte for byte.

use redis::{Commands, Value};

use crate::harness::{TestServer, request};

fn cmd(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<Value> {
    let mut c = redis::cmd(args[0]);
    for arg in &args[1..] {
        c.arg(*arg);
    }
    c.query(con)
}

fn error_text(con: &mut redis::Connection, args: &[&str]) -> String {
    let err = cmd(con, args).expect_err("an error reply");
    // The crate splits the code off; put the line back together as the server sent it.
    match err.code() {
        Some(code) => format!("{code} {}", err.detail().unwrap_or_default()),
        None => err.to_string(),
    }
}

#[test]
fn set_get_and_conditions() {
    let server = TestServer::start();
    let mut con = server.client();
    let _: () = con.set("a", "1").unwrap();
    assert_eq!(con.get::<_, String>("a").unwrap(), "1");
    assert_eq!(con.get::<_, Option<String>>("missing").unwrap(), None);
    // NX / XX / GET
    assert_eq!(cmd(&mut con, &["SET", "a", "2", "NX"]).unwrap(), Value::Nil);
    assert_eq!(cmd(&mut con, &["SET", "b", "2", "XX"]).unwrap(), Value::Nil);
    assert_eq!(cmd(&mut con, &["SET", "a", "3", "XX"]).unwrap(), Value::Okay);
    assert_eq!(
        cmd(&mut con, &["SET", "a", "4", "GET"]).unwrap(),
        Value::BulkString(b"3".to_vec())
    );
    assert_eq!(
        cmd(&mut con, &["SET", "new", "x", "NX", "GET"]).unwrap(),
        Value::Nil
    );
    assert_eq!(con.get::<_, String>("new").unwrap(), "x");
    assert_eq!(con.get::<_, String>("a").unwrap(), "4");
    // Binary-safe keys and values.
    let key = b"k\x00\r\n\xff".to_vec();
    let value = vec![0u8, 13, 10, 255, 1];
    let _: () = con.set(&key, &value).unwrap();
    assert_eq!(con.get::<_, Vec<u8>>(&key).unwrap(), value);
    // An empty value is a value.
    let _: () = con.set("empty", "").unwrap();
    assert_eq!(
        con.get::<_, Option<String>>("empty").unwrap(),
        Some(String::new())
    );
    assert!(con.exists::<_, bool>("empty").unwrap());
}

#[test]
fn setnx_getset_getdel_mget_mset_msetnx() {
    let server = TestServer::start();
    let mut con = server.client();
    assert_eq!(cmd(&mut con, &["SETNX", "a", "1"]).unwrap(), Value::Int(1));
    assert_eq!(cmd(&mut con, &["SETNX", "a", "2"]).unwrap(), Value::Int(0));
    assert_eq!(
        cmd(&mut con, &["GETSET", "a", "3"]).unwrap(),
        Value::BulkString(b"1".to_vec())
    );
    assert_eq!(cmd(&mut con, &["GETSET", "fresh", "v"]).unwrap(), Value::Nil);
    assert_eq!(
        cmd(&mut con, &["GETDEL", "a"]).unwrap(),
        Value::BulkString(b"3".to_vec())
    );
    assert_eq!(cmd(&mut con, &["GETDEL", "a"]).unwrap(), Value::Nil);
    assert_eq!(cmd(&mut con, &["MSET", "x", "1", "y", "2"]).unwrap(), Value::Okay);
    let got: Vec<Option<String>> = con.mget(&["x", "nope", "y"]).unwrap();
    assert_eq!(got, vec![Some("1".into()), None, Some("2".into())]);
    assert_eq!(
        cmd(&mut con, &["MSETNX", "y", "9", "z", "9"]).unwrap(),
        Value::Int(0)
    );
    assert_eq!(
        con.get::<_, Option<String>>("z").unwrap(),
        None,
        "MSETNX is all or nothing"
    );
    assert_eq!(
        cmd(&mut con, &["MSETNX", "z", "9", "w", "9"]).unwrap(),
        Value::Int(1)
    );
    assert_eq!(con.get::<_, String>("w").unwrap(), "9");
    assert_eq!(
        error_text(&mut con, &["MSET", "a", "1", "b"]),
        "ERR wrong number of arguments for 'mset' command"
    );
}

#[test]
fn counters_and_their_errors() {
    let server = TestServer::start();
    let mut con = server.client();
    assert_eq!(con.incr::<_, _, i64>("n", 1).unwrap(), 1);
    assert_eq!(cmd(&mut con, &["INCR", "n"]).unwrap(), Value::Int(2));
    assert_eq!(cmd(&mut con, &["INCRBY", "n", "10"]).unwrap(), Value::Int(12));
    assert_eq!(cmd(&mut con, &["DECR", "n"]).unwrap(), Value::Int(11));
    assert_eq!(cmd(&mut con, &["DECRBY", "n", "20"]).unwrap(), Value::Int(-9));
    let _: () = con.set("big", i64::MAX.to_string()).unwrap();
    assert_eq!(
        error_text(&mut con, &["INCR", "big"]),
        "ERR increment or decrement would overflow"
    );
    assert_eq!(
        con.get::<_, String>("big").unwrap(),
        i64::MAX.to_string(),
        "a failed INCR writes nothing"
    );
    assert_eq!(
        error_text(&mut con, &["DECRBY", "n", "-9223372036854775808"]),
        "ERR decrement would overflow"
    );
    let _: () = con.set("text", "abc").unwrap();
    assert_eq!(
        error_text(&mut con, &["INCR", "text"]),
        "ERR value is not an integer or out of range"
    );
    let _: () = con.set("spaced", " 1").unwrap();
    assert_eq!(
        error_text(&mut con, &["INCR", "spaced"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        error_text(&mut con, &["INCRBY", "n", "1.5"]),
        "ERR value is not an integer or out of range"
    );
    // Floats
    assert_eq!(
        cmd(&mut con, &["INCRBYFLOAT", "f", "10.5"]).unwrap(),
        Value::BulkString(b"10.5".to_vec())
    );
    assert_eq!(
        cmd(&mut con, &["INCRBYFLOAT", "f", "0.1"]).unwrap(),
        Value::BulkString(b"10.6".to_vec())
    );
    assert_eq!(
        cmd(&mut con, &["INCRBYFLOAT", "f", "-5.0e3"]).unwrap(),
        Value::BulkString(b"-4989.4".to_vec())
    );
    assert_eq!(
        error_text(&mut con, &["INCRBYFLOAT", "f", "x"]),
        "ERR value is not a valid float"
    );
    assert_eq!(
        error_text(&mut con, &["INCRBYFLOAT", "text", "1"]),
        "ERR value is not a valid float"
    );
    assert_eq!(
        error_text(&mut con, &["INCRBYFLOAT", "f", "inf"]),
        "ERR increment would produce NaN or Infinity"
    );
}

#[test]
fn append_strlen_getrange_setrange() {
    let server = TestServer::start();
    let mut con = server.client();
    assert_eq!(cmd(&mut con, &["APPEND", "s", "Hello"]).unwrap(), Value::Int(5));
    assert_eq!(cmd(&mut con, &["APPEND", "s", " World"]).unwrap(), Value::Int(11));
    assert_eq!(cmd(&mut con, &["STRLEN", "s"]).unwrap(), Value::Int(11));
    assert_eq!(cmd(&mut con, &["STRLEN", "nope"]).unwrap(), Value::Int(0));
    assert_eq!(
        cmd(&mut con, &["GETRANGE", "s", "0", "4"]).unwrap(),
        Value::BulkString(b"Hello".to_vec())
    );
    assert_eq!(
        cmd(&mut con, &["GETRANGE", "s", "-5", "-1"]).unwrap(),
        Value::BulkString(b"World".to_vec())
    );
    assert_eq!(
        cmd(&mut con, &["GETRANGE", "nope", "0", "-1"]).unwrap(),
        Value::BulkString(vec![])
    );
    assert_eq!(
        cmd(&mut con, &["SETRANGE", "s", "6", "Redis"]).unwrap(),
        Value::Int(11)
    );
    assert_eq!(con.get::<_, String>("s").unwrap(), "Hello Redis");
    assert_eq!(
        cmd(&mut con, &["SETRANGE", "pad", "3", "x"]).unwrap(),
        Value::Int(4)
    );
    assert_eq!(con.get::<_, Vec<u8>>("pad").unwrap(), b"\0\0\0x");
    assert_eq!(
        cmd(&mut con, &["SETRANGE", "absent", "5", ""]).unwrap(),
        Value::Int(0)
    );
    assert!(
        !con.exists::<_, bool>("absent").unwrap(),
        "an empty SETRANGE creates nothing"
    );
    assert_eq!(
        error_text(&mut con, &["SETRANGE", "s", "-1", "x"]),
        "ERR offset is out of range"
    );
    assert_eq!(
        error_text(&mut con, &["SETRANGE", "s", "536870912", "x"]),
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    );
}

#[test]
fn del_exists_type_keys_dbsize_flushdb() {
    let server = TestServer::start();
    let mut con = server.client();
    for key in ["user:1", "user:2", "order:1", "x"] {
        let _: () = con.set(key, "v").unwrap();
    }
    assert_eq!(
        cmd(&mut con, &["EXISTS", "x", "x", "nope"]).unwrap(),
        Value::Int(2)
    );
    assert_eq!(
        cmd(&mut con, &["TYPE", "x"]).unwrap(),
        Value::SimpleString("string".into())
    );
    assert_eq!(
        cmd(&mut con, &["TYPE", "nope"]).unwrap(),
        Value::SimpleString("none".into())
    );
    let mut keys: Vec<String> = con.keys("user:*").unwrap();
    keys.sort();
    assert_eq!(keys, ["user:1", "user:2"]);
    assert_eq!(con.keys::<_, Vec<String>>("*").unwrap().len(), 4);
    assert_eq!(con.keys::<_, Vec<String>>("nomatch*").unwrap().len(), 0);
    assert_eq!(cmd(&mut con, &["DBSIZE"]).unwrap(), Value::Int(4));
    assert_eq!(
        cmd(&mut con, &["DEL", "x", "x", "nope", "order:1"]).unwrap(),
        Value::Int(2)
    );
    assert_eq!(cmd(&mut con, &["DBSIZE"]).unwrap(), Value::Int(2));
    assert_eq!(cmd(&mut con, &["FLUSHDB"]).unwrap(), Value::Okay);
    assert_eq!(cmd(&mut con, &["DBSIZE"]).unwrap(), Value::Int(0));
    let _: () = con.set("again", "v").unwrap();
    assert_eq!(cmd(&mut con, &["FLUSHALL", "ASYNC"]).unwrap(), Value::Okay);
    assert_eq!(cmd(&mut con, &["DBSIZE"]).unwrap(), Value::Int(0));
    assert_eq!(error_text(&mut con, &["FLUSHDB", "LATER"]), "ERR syntax error");
}

#[test]
fn flushdb_of_more_than_one_chunk() {
    let server = TestServer::start();
    let mut con = server.client();
    let mut pipe = redis::pipe();
    for i in 0..2_500 {
        pipe.set(format!("k{i}"), i).ignore();
    }
    let _: () = pipe.query(&mut con).unwrap();
    assert_eq!(cmd(&mut con, &["DBSIZE"]).unwrap(), Value::Int(2_500));
    assert_eq!(cmd(&mut con, &["FLUSHDB"]).unwrap(), Value::Okay);
    assert_eq!(cmd(&mut con, &["DBSIZE"]).unwrap(), Value::Int(0));
}

/// `COUNT` bounds the keys a `SCAN` call looks at, also deleted ones whose records garbage
/// collection has not removed yet: a call over a run of recent deletes answers quickly with
/// few or no keys and a cursor to go on from, as Redis's does over empty buckets.
#[test]
fn scan_count_bounds_the_work_over_recently_deleted_keys() {
    let server = TestServer::start();
    let mut con = server.client();
    let mut pipe = redis::pipe();
    for i in 0..2_000 {
        pipe.set(format!("k{i:04}"), i).ignore();
    }
    let _: () = pipe.query(&mut con).unwrap();
    let mut del = redis::cmd("DEL");
    for i in 0..1_990 {
        del.arg(format!("k{i:04}"));
    }
    let deleted: i64 = del.query(&mut con).unwrap();
    assert_eq!(deleted, 1_990);
    let (cursor, keys): (String, Vec<String>) =
        redis::from_redis_value(cmd(&mut con, &["SCAN", "0", "COUNT", "10"]).unwrap()).unwrap();
    assert!(keys.is_empty(), "ten deleted keys looked at, none live: {keys:?}");
    assert_ne!(cursor, "0");
    let mut cursor = "0".to_string();
    let mut live = Vec::new();
    let mut calls = 0;
    loop {
        let reply = cmd(&mut con, &["SCAN", &cursor, "COUNT", "10"]).unwrap();
        let (next, keys): (String, Vec<String>) = redis::from_redis_value(reply).unwrap();
        live.extend(keys);
        calls += 1;
        if next == "0" {
            break;
        }
        cursor = next;
    }
    live.sort();
    let expected: Vec<String> = (1_990..2_000).map(|i| format!("k{i:04}")).collect();
    assert_eq!(live, expected);
    assert!(calls >= 200, "2,000 stored keys, 10 per call: {calls} calls");
}

/// Listing, counting and flushing keys read no values, and do not depend on them: strings far
/// longer than a record holds, and collections, are listed, typed and flushed alike.
#[test]
fn keys_are_listed_and_flushed_whatever_their_values() {
    let server = TestServer::start();
    let mut con = server.client();
    let big = "x".repeat(1 << 20);
    let _: () = con.set("big", &big).unwrap();
    let _: () = con.set_ex("big-ttl", &big, 100).unwrap();
    let _: () = con.hset("h", "f", "v").unwrap();
    let _: () = con.rpush("l", &["a", "b"]).unwrap();
    let _: () = con.zadd("z", "m", 1).unwrap();
    let mut keys: Vec<String> = con.keys("*").unwrap();
    keys.sort();
    assert_eq!(keys, vec!["big", "big-ttl", "h", "l", "z"]);
    let reply = cmd(&mut con, &["SCAN", "0", "TYPE", "string", "COUNT", "100"]).unwrap();
    let (_, mut strings): (String, Vec<String>) = redis::from_redis_value(reply).unwrap();
    strings.sort();
    assert_eq!(strings, vec!["big", "big-ttl"]);
    assert_eq!(cmd(&mut con, &["DBSIZE"]).unwrap(), Value::Int(5));
    assert_eq!(cmd(&mut con, &["FLUSHDB"]).unwrap(), Value::Okay);
    assert_eq!(cmd(&mut con, &["DBSIZE"]).unwrap(), Value::Int(0));
    // Collections made again under the same names start empty: the flushed elements are
    // orphans, left to garbage collection.
    let _: () = con.rpush("l", "c").unwrap();
    let list: Vec<String> = con.lrange("l", 0, -1).unwrap();
    assert_eq!(list, vec!["c"]);
    let _: () = con.hset("h", "g", "w").unwrap();
    assert_eq!(con.hgetall::<_, Vec<String>>("h").unwrap(), vec!["g", "w"]);
    assert_eq!(cmd(&mut con, &["TTL", "big-ttl"]).unwrap(), Value::Int(-2));
}

/// A full SCAN iteration returns every key present throughout, however COUNT and MATCH are set.
#[test]
fn scan_iterates_everything_with_match_count_and_type() {
    let server = TestServer::start();
    let mut con = server.client();
    let mut pipe = redis::pipe();
    for i in 0..500 {
        pipe.set(format!("key:{i:03}"), i).ignore();
        pipe.set(format!("other:{i:03}"), i).ignore();
    }
    let _: () = pipe.query(&mut con).unwrap();
    let full_scan = |con: &mut redis::Connection, extra: &[&str]| -> (Vec<String>, usize) {
        let mut cursor = "0".to_string();
        let mut seen = Vec::new();
        let mut calls = 0;
        loop {
            let mut args = vec!["SCAN", cursor.as_str()];
            args.extend_from_slice(extra);
            let (next, keys): (String, Vec<String>) =
                redis::from_redis_value(cmd(con, &args).unwrap()).unwrap();
            seen.extend(keys);
            calls += 1;
            assert!(calls < 10_000, "SCAN must terminate");
            if next == "0" {
                break;
            }
            cursor = next;
        }
        seen.sort();
        seen.dedup();
        (seen, calls)
    };
    let (all, calls) = full_scan(&mut con, &[]);
    assert_eq!(all.len(), 1000);
    assert!(
        calls >= 100,
        "COUNT defaults to 10 keys of work per call, got {calls} calls"
    );
    let (matched, _) = full_scan(&mut con, &["MATCH", "key:*", "COUNT", "37"]);
    assert_eq!(matched.len(), 500);
    assert!(matched.iter().all(|k| k.starts_with("key:")));
    let (suffix, _) = full_scan(&mut con, &["MATCH", "*:00?", "COUNT", "100"]);
    assert_eq!(suffix.len(), 20);
    let (strings, _) = full_scan(&mut con, &["TYPE", "string", "COUNT", "1000"]);
    assert_eq!(strings.len(), 1000);
    let (hashes, _) = full_scan(&mut con, &["TYPE", "hash"]);
    assert!(hashes.is_empty());
    assert_eq!(error_text(&mut con, &["SCAN", "abc"]), "ERR invalid cursor");
    assert_eq!(
        error_text(&mut con, &["SCAN", "0", "COUNT", "0"]),
        "ERR syntax error"
    );
    assert_eq!(error_text(&mut con, &["SCAN", "0", "BOGUS"]), "ERR syntax error");
    // An unknown cursor does not crash the server; it restarts the iteration.
    let reply = cmd(&mut con, &["SCAN", "987654321", "COUNT", "5"]).unwrap();
    let (_, keys): (String, Vec<String>) = redis::from_redis_value(reply).unwrap();
    assert_eq!(keys.len(), 5);
}

#[test]
fn error_replies_are_byte_exact_and_keep_the_connection() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.roundtrip(
        &request(&[b"NOSUCH", b"a", b"b"]),
        b"-ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' \r\n",
    );
    raw.roundtrip(
        &request(&[b"GET"]),
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    raw.roundtrip(
        &request(&[b"get", b"a", b"b"]),
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    raw.roundtrip(
        &request(&[b"SET", b"k", b"v", b"NX", b"XX"]),
        b"-ERR syntax error\r\n",
    );
    raw.roundtrip(
        &request(&[b"SELECT", b"16"]),
        b"-ERR DB index is out of range\r\n",
    );
    raw.roundtrip(
        &request(&[b"SELECT", b"x"]),
        b"-ERR value is not an integer or out of range\r\n",
    );
    raw.roundtrip(&request(&[b"SELECT", b"0"]), b"+OK\r\n");
    raw.roundtrip(
        &request(&[b"CLIENT", b"NOPE"]),
        b"-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n",
    );
    raw.roundtrip(
        &request(&[b"CLIENT", b"SETNAME"]),
        b"-ERR wrong number of arguments for 'client|setname' command\r\n",
    );
    raw.roundtrip(
        &request(&[b"HELLO", b"4"]),
        b"-NOPROTO unsupported protocol version\r\n",
    );
    // Still serving on the same connection.
    raw.roundtrip(&request(&[b"PING"]), b"+PONG\r\n");
}

#[test]
fn connection_commands() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.roundtrip(b"PING\r\n", b"+PONG\r\n");
    raw.roundtrip(&request(&[b"PING", b"hi"]), b"$2\r\nhi\r\n");
    raw.roundtrip(&request(&[b"ECHO", b"a\r\nb"]), b"$4\r\na\r\nb\r\n");
    raw.roundtrip(&request(&[b"CLIENT", b"GETNAME"]), b"$-1\r\n");
    raw.roundtrip(&request(&[b"CLIENT", b"SETNAME", b"worker-1"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"CLIENT", b"GETNAME"]), b"$8\r\nworker-1\r\n");
    raw.roundtrip(
        &request(&[b"CLIENT", b"SETNAME", b"has space"]),
        b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
    );
    raw.roundtrip(&request(&[b"QUIT"]), b"+OK\r\n");
    assert!(raw.is_closed());

    let mut con = server.client();
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut con).unwrap();
    assert!(id > 0);
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    assert!(list.contains(&format!("id={id} ")), "{list}");
    let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut con).unwrap();
    assert!(
        info.starts_with(&format!("id={id} ")) && info.contains("cmd=client|info"),
        "{info}"
    );
}

#[test]
fn hello_switches_protocol_and_answers_like_redis() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.send(&request(&[b"HELLO", b"3", b"SETNAME", b"me"]));
    let mut expected = b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.0\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:".to_vec();
    raw.expect(&expected);
    // The id varies; read up to the end of its line, then the rest is fixed.
    let mut byte = [0u8; 1];
    let mut id = Vec::new();
    loop {
        std::io::Read::read_exact(&mut raw.stream, &mut byte).unwrap();
        if byte[0] == b'\n' {
            break;
        }
        id.push(byte[0]);
    }
    expected =
        b"$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n".to_vec();
    raw.expect(&expected);
    // RESP3 nulls and maps from here on.
    raw.roundtrip(&request(&[b"GET", b"missing"]), b"_\r\n");
    raw.roundtrip(&request(&[b"CLIENT", b"GETNAME"]), b"$2\r\nme\r\n");
    raw.roundtrip(&request(&[b"HELLO", b"2"]), b"*14\r\n");
    drop(raw);
    let mut raw = server.raw();
    raw.roundtrip(
        &request(&[b"HELLO", b"3", b"AUTH", b"bob", b"pw"]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    raw.roundtrip(&request(&[b"GET", b"missing"]), b"$-1\r\n");
}

#[test]
fn info_reports_the_sections_redis_clients_read() {
    let server = TestServer::start();
    let mut con = server.client();
    let _: () = con.set("a", "1").unwrap();
    let _: Option<String> = con.get("a").unwrap();
    let _: Option<String> = con.get("missing").unwrap();
    let info: String = redis::cmd("INFO").query(&mut con).unwrap();
    for needle in [
        "# Server",
        "redis_version:7.2.0",
        "# Clients",
        "connected_clients:",
        "# Persistence",
        "# Stats",
        "keyspace_hits:",
        "# Keyspace",
        "db0:keys=1,expires=0,avg_ttl=0",
    ] {
        assert!(info.contains(needle), "INFO lacks {needle:?}:\n{info}");
    }
    assert!(info.contains("\r\n"), "INFO lines end in CRLF");
    let keyspace: String = redis::cmd("INFO").arg("keyspace").query(&mut con).unwrap();
    assert_eq!(keyspace, "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n");
    let stats: String = redis::cmd("INFO").arg("STATS").query(&mut con).unwrap();
    assert!(
        stats.contains("keyspace_hits:1") && stats.contains("keyspace_misses:1"),
        "{stats}"
    );
    let nothing: String = redis::cmd("INFO").arg("nosuchsection").query(&mut con).unwrap();
    assert_eq!(nothing, "");
}

/// `INFO commandstats` and `errorstats` in Redis's formats, and the ferrokv section.
#[test]
fn info_counts_calls_and_errors_per_command_and_kind() {
    let server = TestServer::start();
    let mut con = server.client();
    for i in 0..3 {
        let _: () = con.set(format!("k{i}"), i).unwrap();
    }
    let _: () = con.lpush("list", "x").unwrap();
    // A WRONGTYPE failure, a refused arity, an unknown command.
    assert!(con.incr::<_, _, i64>("list", 1).is_err());
    assert!(redis::cmd("GET").query::<String>(&mut con).is_err());
    assert!(redis::cmd("NOSUCH").query::<String>(&mut con).is_err());
    let stats: String = redis::cmd("INFO").arg("commandstats").query(&mut con).unwrap();
    let line = |name: &str| {
        stats
            .lines()
            .find(|l| l.starts_with(&format!("cmdstat_{name}:")))
            .unwrap_or_else(|| panic!("no {name} in {stats}"))
            .to_string()
    };
    let set = line("set");
    assert!(set.starts_with("cmdstat_set:calls=3,usec="), "{set}");
    assert!(
        set.contains(",usec_per_call=") && set.ends_with("rejected_calls=0,failed_calls=0"),
        "{set}"
    );
    assert!(line("incrby").contains("calls=1,") && line("incrby").ends_with("failed_calls=1"));
    assert!(line("get").contains("calls=0,") && line("get").contains("rejected_calls=1,"));
    assert!(stats.starts_with("# Commandstats\r\n"), "{stats}");
    assert!(!stats.contains("nosuch"));
    let errors: String = redis::cmd("INFO").arg("errorstats").query(&mut con).unwrap();
    assert!(errors.contains("errorstat_WRONGTYPE:count=1\r\n"), "{errors}");
    assert!(errors.contains("errorstat_ERR:count=2\r\n"), "{errors}");
    let all: String = redis::cmd("INFO").arg("all").query(&mut con).unwrap();
    assert!(all.contains("# Commandstats") && all.contains("# Errorstats"));
    let plain: String = redis::cmd("INFO").query(&mut con).unwrap();
    assert!(
        !plain.contains("# Commandstats"),
        "commandstats only when asked, as in Redis"
    );
    let ours: String = redis::cmd("INFO").arg("ferrokv").query(&mut con).unwrap();
    for needle in [
        "ferrokv_store_id:1\r\n",
        "ferrokv_regions:1\r\n",
        "ferrokv_leaders:1\r\n",
        "ferrokv_pending_peers:0\r\n",
        "ferrokv_down_peers:0\r\n",
        "ferrokv_max_apply_lag:",
        "ferrokv_max_follower_lag:0\r\n",
        "ferrokv_scheduler_leader:",
    ] {
        assert!(ours.contains(needle), "{needle} not in {ours}");
    }
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut con).unwrap();
    let stats: String = redis::cmd("INFO").arg("commandstats").query(&mut con).unwrap();
    assert!(!stats.contains("cmdstat_set"), "{stats}");
}

/// By default ferrokv is a Redis without cluster support, to tools that ask.
#[test]
fn standalone_mode_answers_as_a_redis_with_cluster_support_disabled() {
    let server = TestServer::start();
    let mut con = server.client();
    for args in [
        &["CLUSTER", "SLOTS"][..],
        &["CLUSTER", "NODES"],
        &["CLUSTER", "KEYSLOT", "k"],
        &["READONLY"],
        &["ASKING"],
    ] {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        let error = cmd.query::<Value>(&mut con).unwrap_err().to_string();
        assert!(error.contains("cluster support disabled"), "{args:?}: {error}");
    }
    let info: String = redis::cmd("INFO").query(&mut con).unwrap();
    assert!(info.contains("redis_mode:standalone\r\n") && info.contains("cluster_enabled:0\r\n"));
    let help: Vec<String> = redis::cmd("CLUSTER").arg("HELP").query(&mut con).unwrap();
    for sub in [
        "REGIONS",
        "STORE id:integer | DELETE id:integer",
        "SCHEDULER",
        "SLOTS",
    ] {
        assert!(help.iter().any(|l| l.starts_with(sub)), "{sub} not in {help:?}");
    }
}

#[test]
fn command_introspection_for_client_hints() {
    let server = TestServer::start();
    let mut con = server.client();
    let count: i64 = redis::cmd("COMMAND").arg("COUNT").query(&mut con).unwrap();
    let all: Vec<Value> = redis::cmd("COMMAND").query(&mut con).unwrap();
    assert_eq!(all.len() as i64, count);
    let info: Vec<Value> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("get")
        .arg("nosuch")
        .query(&mut con)
        .unwrap();
    assert_eq!(info[1], Value::Nil);
    let Value::Array(get) = &info[0] else {
        panic!("{info:?}")
    };
    assert_eq!(get[0], Value::BulkString(b"get".to_vec()));
    assert_eq!(get[1], Value::Int(2));
    let docs: Value = redis::cmd("COMMAND")
        .arg("DOCS")
        .arg("set")
        .query(&mut con)
        .unwrap();
    let text = format!("{docs:?}");
    assert!(
        text.contains("summary") && text.contains("arguments") && text.contains("NX"),
        "{text}"
    );
}

#[test]
fn config_get_reports_redis_parameter_names() {
    let server = TestServer::start();
    let mut con = server.client();
    let pairs: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("save")
        .arg("append*")
        .query(&mut con)
        .unwrap();
    assert_eq!(pairs, ["save", "", "appendonly", "no", "appendfsync", "always"]);
    let port: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("PORT")
        .query(&mut con)
        .unwrap();
    assert_eq!(port, ["port".to_string(), server.addr.port().to_string()]);
    let text = error_text(&mut con, &["CONFIG", "SET", "maxclients", "5"]);
    assert!(text.starts_with("ERR CONFIG SET failed"), "{text}");
    // Encoding parameters are accepted (and change nothing), under either name; setting a
    // parameter to its current value is accepted; one refused pair refuses the whole call.
    assert_eq!(
        cmd(
            &mut con,
            &["CONFIG", "SET", "list-max-ziplist-size", "4", "save", ""]
        )
        .unwrap(),
        Value::Okay
    );
    let sizes: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("list-max-*-size")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        sizes,
        ["list-max-listpack-size", "4", "list-max-ziplist-size", "4"]
    );
    let text = error_text(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "zset-max-ziplist-entries",
            "1",
            "appendonly",
            "yes",
        ],
    );
    assert!(text.contains("'appendonly'"), "{text}");
    let entries: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("zset-max-listpack-entries")
        .query(&mut con)
        .unwrap();
    assert_eq!(entries, ["zset-max-listpack-entries", "128"], "nothing was set");
    assert_eq!(cmd(&mut con, &["CONFIG", "RESETSTAT"]).unwrap(), Value::Okay);
}

#[test]
fn hashes_store_fields_and_count_them() {
    let server = TestServer::start();
    let mut con = server.client();
    assert_eq!(
        cmd(&mut con, &["HSET", "h", "a", "1", "b", "2", "a", "3"]).unwrap(),
        Value::Int(2)
    );
    assert_eq!(cmd(&mut con, &["HSET", "h", "c", "3"]).unwrap(), Value::Int(1));
    assert_eq!(
        cmd(&mut con, &["HGET", "h", "a"]).unwrap(),
        Value::BulkString(b"3".to_vec())
    );
    assert_eq!(cmd(&mut con, &["HGET", "h", "zz"]).unwrap(), Value::Nil);
    assert_eq!(cmd(&mut con, &["HLEN", "h"]).unwrap(), Value::Int(3));
    assert_eq!(cmd(&mut con, &["HSETNX", "h", "a", "x"]).unwrap(), Value::Int(0));
    assert_eq!(cmd(&mut con, &["HSETNX", "h", "d", "4"]).unwrap(), Value::Int(1));
    assert_eq!(cmd(&mut con, &["HEXISTS", "h", "d"]).unwrap(), Value::Int(1));
    assert_eq!(cmd(&mut con, &["HSTRLEN", "h", "d"]).unwrap(), Value::Int(1));
    let all: std::collections::BTreeMap<String, String> = con.hgetall("h").unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all["b"], "2");
    let keys: Vec<String> = con.hkeys("h").unwrap();
    assert_eq!(keys, ["a", "b", "c", "d"]);
    let vals: Vec<String> = con.hvals("h").unwrap();
    assert_eq!(vals, ["3", "2", "3", "4"]);
    let some: Vec<Option<String>> = redis::cmd("HMGET")
        .arg("h")
        .arg("a")
        .arg("nope")
        .query(&mut con)
        .unwrap();
    assert_eq!(some, vec![Some("3".into()), None]);
    assert_eq!(cmd(&mut con, &["HINCRBY", "h", "n", "5"]).unwrap(), Value::Int(5));
    assert_eq!(
        cmd(&mut con, &["HINCRBY", "h", "n", "-7"]).unwrap(),
        Value::Int(-2)
    );
    assert_eq!(
        error_text(&mut con, &["HINCRBY", "h", "b", "x"]),
        "ERR value is not an integer or out of range"
    );
    let _: () = con.hset("h", "word", "abc").unwrap();
    assert_eq!(
        error_text(&mut con, &["HINCRBY", "h", "word", "1"]),
        "ERR hash value is not an integer"
    );
    assert_eq!(
        cmd(&mut con, &["HDEL", "h", "a", "a", "zz"]).unwrap(),
        Value::Int(1)
    );
    assert_eq!(cmd(&mut con, &["HLEN", "h"]).unwrap(), Value::Int(5));
    assert_eq!(
        cmd(&mut con, &["TYPE", "h"]).unwrap(),
        Value::SimpleString("hash".into())
    );
    assert_eq!(cmd(&mut con, &["HMSET", "h2", "x", "1"]).unwrap(), Value::Okay);
    assert_eq!(
        error_text(&mut con, &["HSET", "h", "lonely"]),
        "ERR wrong number of arguments for 'hset' command"
    );
    // Removing the last field removes the hash.
    assert_eq!(cmd(&mut con, &["HDEL", "h2", "x"]).unwrap(), Value::Int(1));
    assert_eq!(cmd(&mut con, &["EXISTS", "h2"]).unwrap(), Value::Int(0));
    // Fields of a hash whose name extends another's stay apart.
    let _: () = con.hset("h2x", "f", "v").unwrap();
    assert_eq!(cmd(&mut con, &["HLEN", "h2"]).unwrap(), Value::Int(0));
}

#[test]
fn wrong_type_is_refused_and_set_replaces_any_type() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.roundtrip(&request(&[b"HSET", b"h", b"f", b"v"]), b":1\r\n");
    raw.roundtrip(&request(&[b"SET", b"s", b"v"]), b"+OK\r\n");
    let wrongtype = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    for req in [
        request(&[b"GET", b"h"]),
        request(&[b"INCR", b"h"]),
        request(&[b"APPEND", b"h", b"x"]),
        request(&[b"GETSET", b"h", b"x"]),
        request(&[b"SET", b"h", b"x", b"GET"]),
        request(&[b"STRLEN", b"h"]),
        request(&[b"HGET", b"s", b"f"]),
        request(&[b"HSET", b"s", b"f", b"v"]),
        request(&[b"HLEN", b"s"]),
        request(&[b"HGETALL", b"s"]),
    ] {
        raw.roundtrip(&req, wrongtype);
    }
    // MGET answers nil for a key of another type.
    raw.roundtrip(&request(&[b"MGET", b"h", b"s"]), b"*2\r\n$-1\r\n$1\r\nv\r\n");
    // A refused command changed nothing.
    raw.roundtrip(&request(&[b"HGET", b"h", b"f"]), b"$1\r\nv\r\n");
    // SET replaces a hash, fields and all; DEL removes a hash with its fields.
    raw.roundtrip(&request(&[b"SET", b"h", b"now-a-string"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"TYPE", b"h"]), b"+string\r\n");
    raw.roundtrip(&request(&[b"HSET", b"h3", b"a", b"1", b"b", b"2"]), b":2\r\n");
    raw.roundtrip(&request(&[b"DEL", b"h3"]), b":1\r\n");
    raw.roundtrip(&request(&[b"HSET", b"h3", b"c", b"3"]), b":1\r\n");
    raw.roundtrip(&request(&[b"HLEN", b"h3"]), b":1\r\n");
    raw.roundtrip(&request(&[b"HGET", b"h3", b"a"]), b"$-1\r\n");
    // SCAN's TYPE filter and FLUSHDB see hashes too.
    raw.roundtrip(
        &request(&[b"SCAN", b"0", b"TYPE", b"hash"]),
        b"*2\r\n$1\r\n0\r\n*1\r\n$2\r\nh3\r\n",
    );
    raw.roundtrip(&request(&[b"FLUSHDB"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"HSET", b"h3", b"z", b"1"]), b":1\r\n");
    raw.roundtrip(&request(&[b"HGETALL", b"h3"]), b"*2\r\n$1\r\nz\r\n$1\r\n1\r\n");
}

#[test]
fn a_replaced_or_deleted_hash_leaves_no_fields_behind_for_its_successor() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.roundtrip(&request(&[b"HSET", b"h", b"a", b"1", b"b", b"2"]), b":2\r\n");
    raw.roundtrip(&request(&[b"SET", b"h", b"string now"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"DEL", b"h"]), b":1\r\n");
    raw.roundtrip(&request(&[b"HSET", b"h", b"c", b"3"]), b":1\r\n");
    raw.roundtrip(&request(&[b"HGETALL", b"h"]), b"*2\r\n$1\r\nc\r\n$1\r\n3\r\n");
    raw.roundtrip(&request(&[b"HGET", b"h", b"a"]), b"$-1\r\n");
    // Within one transaction too: the second incarnation does not see the first's fields.
    raw.roundtrip(&request(&[b"MULTI"]), b"+OK\r\n");
    raw.roundtrip(&request(&[b"HSET", b"t", b"old", b"1"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"DEL", b"t"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"HSET", b"t", b"new", b"2"]), b"+QUEUED\r\n");
    raw.roundtrip(&request(&[b"HGETALL", b"t"]), b"+QUEUED\r\n");
    raw.roundtrip(
        &request(&[b"EXEC"]),
        b"*4\r\n:1\r\n:1\r\n:1\r\n*2\r\n$3\r\nnew\r\n$1\r\n2\r\n",
    );
    raw.roundtrip(&request(&[b"HLEN", b"t"]), b":1\r\n");
}
