//! Sorted sets as leaderboards and delay queues use them: scores from many clients at once,
//! ranges from either end, and consumers blocked until a member arrives.

use std::time::{Duration, Instant};

use redis::Commands;

use crate::harness::TestServer;

#[test]
fn a_leaderboard_answers_ranks_and_ranges_like_a_model() {
    let server = TestServer::start();
    let mut con = server.client();
    // 2,000 players with distinct scores, some negative, and ties broken by name.
    let mut model: Vec<(f64, String)> = (0..2_000)
        .map(|i| (f64::from((i * 7919) % 2_000) - 1_000.0, format!("p{i}")))
        .collect();
    model.push((5.0, "tie-a".into()));
    model.push((5.0, "tie-b".into()));
    for chunk in model.chunks(250) {
        let pairs: Vec<(f64, &str)> = chunk.iter().map(|(s, m)| (*s, m.as_str())).collect();
        let _: i64 = con.zadd_multiple("board", &pairs).unwrap();
    }
    model.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let names = |slice: &[(f64, String)]| slice.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>();
    assert_eq!(con.zcard::<_, usize>("board").unwrap(), model.len());
    let top: Vec<String> = con.zrevrange("board", 0, 9).unwrap();
    let mut expected = names(&model[model.len() - 10..]);
    expected.reverse();
    assert_eq!(top, expected, "top ten, highest first");
    let bottom: Vec<String> = con.zrange("board", 0, 4).unwrap();
    assert_eq!(bottom, names(&model[..5]));
    let middle: Vec<String> = con.zrange("board", 1_000, 1_004).unwrap();
    assert_eq!(middle, names(&model[1_000..1_005]));
    for probe in ["p0", "p1234", "tie-a", "tie-b", "p1999"] {
        let rank = model.iter().position(|(_, m)| m == probe).unwrap();
        assert_eq!(con.zrank::<_, _, usize>("board", probe).unwrap(), rank, "{probe}");
        assert_eq!(
            con.zrevrank::<_, _, usize>("board", probe).unwrap(),
            model.len() - 1 - rank
        );
    }
    let in_range: Vec<String> = con.zrangebyscore("board", "(-10", 10).unwrap();
    let expected: Vec<String> = model
        .iter()
        .filter(|(s, _)| *s > -10.0 && *s <= 10.0)
        .map(|(_, m)| m.clone())
        .collect();
    assert_eq!(in_range, expected);
    let limited: Vec<String> = con.zrevrangebyscore_limit("board", "+inf", 0, 2, 3).unwrap();
    let mut positive: Vec<String> = model
        .iter()
        .filter(|(s, _)| *s >= 0.0)
        .map(|(_, m)| m.clone())
        .collect();
    positive.reverse();
    assert_eq!(limited, positive[2..5]);
    assert_eq!(
        con.zcount::<_, _, _, usize>("board", 0, "+inf").unwrap(),
        positive.len()
    );
    // Changing a score moves the member in both directions' order.
    let _: f64 = con.zincr("board", "p0", 1e6).unwrap();
    let top: Vec<(String, f64)> = con.zrevrange_withscores("board", 0, 0).unwrap();
    assert_eq!(top[0].0, "p0");
    let _: () = con.set("s", "string").unwrap();
    assert_eq!(
        con.zadd::<_, _, _, i64>("s", "m", 1).unwrap_err().code(),
        Some("WRONGTYPE")
    );
}

/// Ranks far from both ends come from the rank index (see `zsets::rank`): it must follow
/// every way members arrive, move and leave, and travel with the set.
#[test]
fn middle_ranks_stay_exact_through_adds_moves_removals_and_renames() {
    let server = TestServer::start();
    let mut con = server.client();
    let mut rng = fastrand::Rng::with_seed(5);
    let mut model: Vec<(f64, String)> = Vec::new();
    let mut pipe = redis::pipe();
    for i in 0..3_000 {
        let score = f64::from(rng.u32(..1_000));
        pipe.zadd("big", format!("m{i}"), score).ignore();
        model.push((score, format!("m{i}")));
    }
    let _: () = pipe.query(&mut con).unwrap();
    let sort = |model: &mut Vec<(f64, String)>| {
        model.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    };
    sort(&mut model);
    let check = |con: &mut redis::Connection, key: &str, model: &[(f64, String)]| {
        assert_eq!(con.zcard::<_, usize>(key).unwrap(), model.len());
        for start in [300, 777, model.len() / 2, model.len() - 400] {
            let got: Vec<String> = con.zrange(key, start as isize, start as isize + 4).unwrap();
            let want: Vec<String> = model[start..start + 5].iter().map(|(_, m)| m.clone()).collect();
            assert_eq!(got, want, "ZRANGE {start}");
            let rev: Vec<String> = con.zrevrange(key, start as isize, start as isize + 2).unwrap();
            let at = model.len() - 1 - start;
            let want: Vec<String> = model[at - 2..=at].iter().rev().map(|(_, m)| m.clone()).collect();
            assert_eq!(rev, want, "ZREVRANGE {start}");
            let (_, member) = &model[start];
            assert_eq!(
                con.zrank::<_, _, usize>(key, member).unwrap(),
                start,
                "ZRANK {member}"
            );
        }
    };
    check(&mut con, "big", &model);
    // Moves: scores change in both directions.
    for _ in 0..200 {
        let at = rng.usize(..model.len());
        let by = f64::from(rng.i32(-500..500));
        let member = model[at].1.clone();
        let _: f64 = con.zincr("big", &member, by).unwrap();
        model[at].0 += by;
    }
    sort(&mut model);
    check(&mut con, "big", &model);
    // Removals: single members, a block of ranks in the middle, the lowest ones.
    for _ in 0..300 {
        let (_, member) = model.remove(rng.usize(..model.len()));
        let _: i64 = con.zrem("big", member).unwrap();
    }
    let _: i64 = con.zremrangebyrank("big", 1_000, 1_499).unwrap();
    model.drain(1_000..1_500);
    let popped: Vec<(String, f64)> = redis::cmd("ZPOPMIN").arg("big").arg(300).query(&mut con).unwrap();
    assert_eq!(popped.len(), 300);
    model.drain(..300);
    check(&mut con, "big", &model);
    let _: () = con.rename("big", "moved").unwrap();
    check(&mut con, "moved", &model);
    let stored: i64 = redis::cmd("ZRANGESTORE")
        .arg("copy")
        .arg("moved")
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(stored as usize, model.len());
    check(&mut con, "copy", &model);
}

#[test]
fn concurrent_increments_from_many_clients_lose_nothing() {
    let server = TestServer::start();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let mut con = server.client();
            std::thread::spawn(move || {
                for i in 0..40 {
                    let member = format!("m{}", (t + i) % 5);
                    let _: f64 = con.zincr("scores", member, 1.5).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut con = server.client();
    let all: Vec<(String, f64)> = con.zrange_withscores("scores", 0, -1).unwrap();
    assert_eq!(all.len(), 5);
    let total: f64 = all.iter().map(|(_, s)| s).sum();
    assert_eq!(total, 8.0 * 40.0 * 1.5, "every increment counted once");
}

#[test]
fn a_blocked_bzpopmin_is_woken_by_a_zadd_from_another_client() {
    let server = TestServer::start();
    let mut consumer = server.client();
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let popped: (String, String, f64) = redis::cmd("BZPOPMIN")
            .arg("delayed")
            .arg(5)
            .query(&mut consumer)
            .unwrap();
        (popped, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut producer = server.client();
    let _: i64 = producer
        .zadd_multiple("delayed", &[(2.0, "later"), (1.0, "soon")])
        .unwrap();
    let ((key, member, score), waited) = waiter.join().unwrap();
    assert_eq!((key.as_str(), member.as_str(), score), ("delayed", "soon", 1.0));
    assert!(
        waited < Duration::from_secs(5),
        "woken, not timed out: {waited:?}"
    );
    assert_eq!(producer.zcard::<_, i64>("delayed").unwrap(), 1);
    // Inside MULTI it does not block: an empty set answers nil at once.
    let mut con = server.client();
    let (reply,): (Option<Vec<String>>,) = redis::pipe()
        .atomic()
        .cmd("BZPOPMAX")
        .arg("empty")
        .arg(0)
        .query(&mut con)
        .unwrap();
    assert_eq!(reply, None);
}
