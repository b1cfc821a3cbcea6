//! Nothing acknowledged is lost: the real binary is killed with SIGKILL (no shutdown code runs)
//! and restarted on the same data directory.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use redis::Commands;

use crate::harness::ServerProcess;

#[test]
fn kill_9_after_acknowledged_writes_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let mut con = server.client();
    for i in 0..1_000 {
        let _: () = con.set(format!("key:{i}"), format!("value:{i}")).unwrap();
    }
    server.kill_hard();

    let server = ServerProcess::start(dir.path());
    let mut con = server.client();
    for i in 0..1_000 {
        let value: Option<String> = con.get(format!("key:{i}")).unwrap();
        assert_eq!(
            value,
            Some(format!("value:{i}")),
            "key:{i} was acknowledged, then lost"
        );
    }
    let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 1_000);
}

#[test]
fn kill_9_during_a_write_load_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let acks = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let mut con = server.client();
            let acknowledged = acknowledged.clone();
            let acks = acks.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                for i in 0..20_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let key = format!("w{w}:{i}");
                    let value = format!("v{i}");
                    let result: redis::RedisResult<()> = con.set(&key, &value);
                    match result {
                        Ok(()) => {
                            acknowledged.lock().unwrap().push((key, value));
                            acks.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => break, // the server died mid-request: not acknowledged
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acks.load(Ordering::Relaxed) < 2_000 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    server.kill_hard();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 2_000,
        "the load ran ({} acks)",
        acknowledged.len()
    );

    let server = ServerProcess::start(dir.path());
    let mut con = server.client();
    for chunk in acknowledged.chunks(500) {
        let keys: Vec<&str> = chunk.iter().map(|(k, _)| k.as_str()).collect();
        let values: Vec<Option<String>> = con.mget(&keys).unwrap();
        for ((key, expected), got) in chunk.iter().zip(values) {
            assert_eq!(
                got.as_deref(),
                Some(expected.as_str()),
                "{key} was acknowledged, then lost"
            );
        }
    }
}

#[test]
fn sigterm_shuts_down_cleanly_and_data_survives() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let mut con = server.client();
    let _: () = con.set("kept", "yes").unwrap();
    let status = server.terminate();
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    let server = ServerProcess::start(dir.path());
    let mut con = server.client();
    assert_eq!(con.get::<_, String>("kept").unwrap(), "yes");
}

/// Each transaction writes three keys in one MULTI/EXEC. After a SIGKILL mid-load and a
/// restart, every acknowledged transaction is there whole, and no transaction is there in part.
#[test]
fn kill_9_during_multi_exec_load_keeps_transactions_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let attempted = Arc::new(Mutex::new(Vec::<String>::new()));
    let acks = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let mut con = server.client();
            let (acknowledged, attempted, acks) = (acknowledged.clone(), attempted.clone(), acks.clone());
            thread::spawn(move || {
                for i in 0..10_000 {
                    let id = format!("t{w}:{i}");
                    attempted.lock().unwrap().push(id.clone());
                    let result: redis::RedisResult<()> = redis::pipe()
                        .atomic()
                        .set(format!("{id}:a"), &id)
                        .ignore()
                        .set(format!("{id}:b"), &id)
                        .ignore()
                        .hset(format!("{id}:h"), "f", &id)
                        .ignore()
                        .query(&mut con);
                    match result {
                        Ok(()) => {
                            acknowledged.lock().unwrap().push(id);
                            acks.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acks.load(Ordering::Relaxed) < 1_500 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    server.kill_hard();
    for writer in writers {
        writer.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let attempted = attempted.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 1_500,
        "the load ran ({} acks)",
        acknowledged.len()
    );

    let server = ServerProcess::start(dir.path());
    let mut con = server.client();
    let acked: std::collections::HashSet<&String> = acknowledged.iter().collect();
    for id in &attempted {
        let a: Option<String> = con.get(format!("{id}:a")).unwrap();
        let b: Option<String> = con.get(format!("{id}:b")).unwrap();
        let h: Option<String> = con.hget(format!("{id}:h"), "f").unwrap();
        let present = [a.is_some(), b.is_some(), h.is_some()];
        assert!(
            present.iter().all(|p| *p) || present.iter().all(|p| !p),
            "transaction {id} is partly there: {present:?}"
        );
        if acked.contains(id) {
            assert_eq!(
                a.as_deref(),
                Some(id.as_str()),
                "acknowledged transaction {id} was lost"
            );
        }
    }
}
