//! Sets as applications use them: membership from many clients at once, set algebra, and
//! random members.

use std::collections::BTreeSet;

use redis::Commands;

use crate::harness::TestServer;

#[test]
fn members_algebra_and_moves_behave_as_in_redis() {
    let server = TestServer::start();
    let mut con = server.client();
    assert_eq!(con.sadd::<_, _, i64>("a", &["1", "2", "3", "x"]).unwrap(), 4);
    assert_eq!(con.sadd::<_, _, i64>("a", &["x", "y"]).unwrap(), 1);
    assert_eq!(con.sadd::<_, _, i64>("b", &["2", "3", "4"]).unwrap(), 3);
    assert_eq!(con.scard::<_, i64>("a").unwrap(), 5);
    assert!(con.sismember::<_, _, bool>("a", "y").unwrap());
    let inter: BTreeSet<String> = con.sinter(&["a", "b"]).unwrap();
    assert_eq!(inter, BTreeSet::from(["2".into(), "3".into()]));
    let union: BTreeSet<String> = con.sunion(&["a", "b", "missing"]).unwrap();
    assert_eq!(union.len(), 6);
    let diff: BTreeSet<String> = con.sdiff(&["a", "b"]).unwrap();
    assert_eq!(diff, BTreeSet::from(["1".into(), "x".into(), "y".into()]));
    assert_eq!(con.sdiffstore::<_, _, i64>("d", &["a", "b"]).unwrap(), 3);
    assert_eq!(
        redis::cmd("TYPE").arg("d").query::<String>(&mut con).unwrap(),
        "set"
    );
    assert!(con.smove::<_, _, _, bool>("d", "b", "x").unwrap());
    assert!(!con.smove::<_, _, _, bool>("d", "b", "x").unwrap());
    assert_eq!(con.srem::<_, _, i64>("d", &["1", "y", "nope"]).unwrap(), 2);
    assert!(!con.exists::<_, bool>("d").unwrap(), "an emptied set is gone");
    let _: () = con.set("s", "string").unwrap();
    let err = con.sadd::<_, _, i64>("s", "x").unwrap_err();
    assert_eq!(err.code(), Some("WRONGTYPE"));
    let err = con.sunion::<_, BTreeSet<String>>(&["missing", "s"]).unwrap_err();
    assert_eq!(err.code(), Some("WRONGTYPE"), "every key is type-checked");
    // A set keeps its timeout across adds.
    let _: bool = con.pexpire("b", 100_000).unwrap();
    let _: i64 = con.sadd("b", "z").unwrap();
    assert!(con.pttl::<_, i64>("b").unwrap() > 0);
}

#[test]
fn concurrent_adds_from_many_clients_lose_nothing() {
    let server = TestServer::start();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let mut con = server.client();
            std::thread::spawn(move || {
                let mut added = 0;
                for i in 0..50 {
                    // Every member twice, from two threads: each is new exactly once.
                    added += con
                        .sadd::<_, _, i64>("members", format!("{}:{i}", t / 2))
                        .unwrap();
                }
                added
            })
        })
        .collect();
    let added: i64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let mut con = server.client();
    assert_eq!(added, 200, "each member counted new once");
    assert_eq!(con.scard::<_, i64>("members").unwrap(), 200);
    let members: BTreeSet<String> = con.smembers("members").unwrap();
    assert_eq!(members.len(), 200);
}

#[test]
fn random_members_come_from_the_set_and_pops_take_them_out() {
    let server = TestServer::start();
    let mut con = server.client();
    // Larger than the exactly-sampled size, so picks seek to random hashes.
    let all: Vec<String> = (0..3_000).map(|i| format!("user:{i:05}")).collect();
    for chunk in all.chunks(500) {
        let _: i64 = con.sadd("big", chunk).unwrap();
    }
    let all: BTreeSet<String> = all.into_iter().collect();
    let picked: Vec<String> = con.srandmember_multiple("big", 200).unwrap();
    assert_eq!(picked.len(), 200);
    assert_eq!(picked.iter().collect::<BTreeSet<_>>().len(), 200, "distinct");
    assert!(picked.iter().all(|m| all.contains(m)));
    // The picks spread over the set rather than clustering at one place in it.
    let first_half = picked.iter().filter(|m| m.as_str() < "user:01500").count();
    assert!(
        (40..=160).contains(&first_half),
        "{first_half} of 200 in the first half"
    );
    let popped: Vec<String> = redis::cmd("SPOP").arg("big").arg(100).query(&mut con).unwrap();
    assert_eq!(popped.iter().collect::<BTreeSet<_>>().len(), 100);
    assert_eq!(con.scard::<_, i64>("big").unwrap(), 2_900);
    for member in &popped {
        assert!(!con.sismember::<_, _, bool>("big", member).unwrap());
    }
    // SSCAN visits every member once the cursor comes back to 0.
    let mut seen = BTreeSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SSCAN")
            .arg("big")
            .arg(cursor)
            .arg("COUNT")
            .arg(700)
            .query(&mut con)
            .unwrap();
        seen.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), 2_900);
}
