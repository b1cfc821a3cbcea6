//! Real multi-node clusters: three `ferrokv` processes on loopback from one `cluster.yaml`,
//! killed with SIGKILL and restarted.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Commands;

use crate::harness::connect;

struct Node {
    name: String,
    resp: SocketAddr,
    peer: SocketAddr,
    child: Option<Child>,
    /// Every line the process logged, all its lives.
    log: Arc<Mutex<Vec<String>>>,
}

struct TestCluster {
    _dir: tempfile::TempDir,
    config: PathBuf,
    nodes: Vec<Node>,
    /// YAML appended to the generated configuration.
    extra: String,
}

/// `n` distinct ports free right now (all held open while choosing, so none repeats).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

impl TestCluster {
    fn start(count: usize) -> TestCluster {
        TestCluster::start_with(count, "")
    }

    /// `count` nodes from one `cluster.yaml` with `extra` appended to it.
    fn start_with(count: usize, extra: &str) -> TestCluster {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("cluster.yaml");
        let mut cluster = TestCluster {
            _dir: dir,
            config,
            nodes: Vec::new(),
            extra: extra.to_string(),
        };
        for _ in 0..count {
            cluster.add_node();
        }
        cluster.write_config();
        for i in 0..count {
            cluster.spawn(i);
        }
        for i in 0..count {
            cluster.wait_ready(i);
        }
        cluster
    }

    /// Adds a node to the configuration (not started); its index. Its ports are free now
    /// and none of the other nodes' (all chosen while held open together).
    fn add_node(&mut self) -> usize {
        let taken: Vec<u16> = self
            .nodes
            .iter()
            .flat_map(|n| [n.resp.port(), n.peer.port()])
            .collect();
        let ports: Vec<u16> = free_ports(2 * self.nodes.len() + 2)
            .into_iter()
            .filter(|p| !taken.contains(p))
            .take(2)
            .collect();
        let i = self.nodes.len() + 1;
        self.nodes.push(Node {
            name: format!("n{i}"),
            resp: format!("127.0.0.1:{}", ports[0]).parse().unwrap(),
            peer: format!("127.0.0.1:{}", ports[1]).parse().unwrap(),
            child: None,
            log: Arc::default(),
        });
        i - 1
    }

    fn write_config(&self) {
        let mut yaml = String::from("nodes:\n");
        for node in &self.nodes {
            yaml.push_str(&format!(
                "  - {{name: {0}, resp_addr: {1}, peer_addr: {2}, data_dir: {0}}}\n",
                node.name, node.resp, node.peer
            ));
        }
        // Short raft timings so that elections after a kill take well under a second.
        yaml.push_str("raft:\n  tick_ms: 20\n  election_timeout_ticks: 10\n  heartbeat_ticks: 2\n");
        yaml.push_str(&self.extra);
        std::fs::write(&self.config, yaml).unwrap();
    }

    /// A node added to `cluster.yaml` of a running cluster, and started.
    fn grow(&mut self) -> usize {
        let i = self.add_node();
        self.write_config();
        self.spawn(i);
        self.wait_ready(i);
        i
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferrokv"))
            .arg("--config")
            .arg(&self.config)
            .args(["--node", &node.name])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ferrokv");
        let stderr = child.stderr.take().unwrap();
        let log = node.log.clone();
        let name = node.name.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push(format!("{name}: {line}"));
            }
        });
        node.child = Some(child);
    }

    fn wait_ready(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.ready_count(i) == 0 {
            assert!(
                Instant::now() < deadline,
                "{} never became ready; its log:\n{}",
                self.nodes[i].name,
                self.nodes[i].log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no shutdown of any kind.
    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn restart(&mut self, i: usize) {
        let before = self.ready_count(i);
        self.spawn(i);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.ready_count(i) == before {
            assert!(
                Instant::now() < deadline,
                "{} did not restart",
                self.nodes[i].name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ready_count(&self, i: usize) -> usize {
        self.nodes[i]
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("ferrokv is ready"))
            .count()
    }

    /// Splits the region holding `key` at it (the internal split RPC, sent to each live node
    /// until the region's leader takes it); returns the new region's id.
    fn split(&self, key: &[u8]) -> u64 {
        use ferrokv::rpc::proto::SplitRegionRequest;
        use ferrokv::rpc::proto::kv_client::KvClient;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for node in self.nodes.iter().filter(|n| n.child.is_some()) {
                let addr = format!("http://{}", node.peer);
                let reply = runtime.block_on(async {
                    let mut client = KvClient::connect(addr).await.ok()?;
                    let request = SplitRegionRequest { key: key.to_vec() };
                    client.split_region(request).await.ok().map(|r| r.into_inner())
                });
                if let Some(reply) = reply
                    && reply.error.is_none()
                {
                    return reply.region_id;
                }
            }
            assert!(Instant::now() < deadline, "no node split the region at {key:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn client(&self, i: usize) -> redis::Connection {
        connect(self.nodes[i].resp)
    }

    /// The node whose store most recently reported leading `region` (from the logs), waiting
    /// for one.
    fn leader_of(&self, region: u64) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut latest: Option<(String, usize)> = None;
            for (i, node) in self.nodes.iter().enumerate() {
                if node.child.is_none() {
                    continue;
                }
                let log = node.log.lock().unwrap();
                let pattern = format!("region={region} ");
                for line in log.iter() {
                    if line.contains("leading region") && line.contains(&pattern) {
                        // "nX: <rfc3339 timestamp> ..." sorts by time.
                        let stamp = line.split_whitespace().nth(1).unwrap_or("").to_string();
                        let leads = !line.contains("no longer leading");
                        if latest.as_ref().is_none_or(|(t, _)| stamp > *t) {
                            latest = Some((stamp, if leads { i } else { usize::MAX }));
                        }
                    }
                }
            }
            if let Some((_, i)) = latest
                && i != usize::MAX
            {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "no leader of region {region} in the logs"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Lines of each node's log shown when a test fails.
const LOG_TAIL_ON_FAILURE: usize = 200;

impl Drop for TestCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        // A failed test shows what the nodes said last: the scheduler's operators, elections,
        // errors (libtest prints this with the failure).
        if std::thread::panicking() {
            for node in &self.nodes {
                let log = node.log.lock().unwrap();
                eprintln!(
                    "--- the last {LOG_TAIL_ON_FAILURE} lines of {}'s log ---",
                    node.name
                );
                for line in &log[log.len().saturating_sub(LOG_TAIL_ON_FAILURE)..] {
                    eprintln!("{line}");
                }
            }
        }
    }
}

#[test]
fn any_node_serves_any_key_and_a_counter_through_every_node_is_exact() {
    let cluster = TestCluster::start(3);
    for i in 0..3 {
        let mut writer = cluster.client(i);
        let key = format!("key-from-n{}", i + 1);
        let _: () = writer.set(&key, i).unwrap();
        for j in 0..3 {
            let value: i64 = cluster.client(j).get(&key).unwrap();
            assert_eq!(value, i as i64, "{key} read through n{}", j + 1);
        }
    }
    let threads: Vec<_> = (0..3)
        .map(|i| {
            let mut con = cluster.client(i);
            std::thread::spawn(move || {
                for _ in 0..100 {
                    let _: i64 = con.incr("counter", 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for i in 0..3 {
        let total: i64 = cluster.client(i).get("counter").unwrap();
        assert_eq!(total, 300, "the counter read through n{}", i + 1);
    }
    // A timeout set through one node holds, and ends, alike through every node (each
    // transaction decides expiry at its timestamp from the cluster's oracle).
    let _: () = redis::cmd("SET")
        .arg("temp")
        .arg("v")
        .arg("PX")
        .arg(1500)
        .query(&mut cluster.client(0))
        .unwrap();
    for j in 0..3 {
        let ttl: i64 = cluster.client(j).pttl("temp").unwrap();
        assert!((1..=1500).contains(&ttl), "PTTL {ttl} through n{}", j + 1);
    }
    std::thread::sleep(Duration::from_millis(1600));
    for j in 0..3 {
        let ttl: i64 = cluster.client(j).pttl("temp").unwrap();
        assert_eq!(ttl, -2, "through n{}", j + 1);
    }
}

/// A reply map of `CLUSTER REGION(S)`/`STORE(S)` (RESP2: a flat field/value array).
/// Values above gRPC's default message limit (4 MiB) once broke the raft stream that had to
/// carry their log entry (the region then took no more writes) and the forwarded command.
#[test]
fn values_larger_than_a_default_grpc_message_replicate_and_forward() {
    let cluster = TestCluster::start(3);
    for i in 0..3u8 {
        let value = vec![b'a' + i; 6 << 20];
        let key = format!("big-from-n{}", i + 1);
        let _: () = cluster.client(usize::from(i)).set(&key, &value).unwrap();
        for j in 0..3 {
            let read: Vec<u8> = cluster.client(j).get(&key).unwrap();
            assert!(
                read == value,
                "{key} read through n{}: {} bytes",
                j + 1,
                read.len()
            );
        }
    }
    // The region still takes writes after them.
    let _: () = cluster.client(0).set("after", 1).unwrap();
    let after: i64 = cluster.client(2).get("after").unwrap();
    assert_eq!(after, 1);
}

fn fields(value: &redis::Value) -> HashMap<String, redis::Value> {
    let redis::Value::Array(items) = value else {
        panic!("not a field/value array: {value:?}");
    };
    items
        .chunks(2)
        .map(|pair| {
            (
                redis::from_redis_value::<String>(pair[0].clone()).unwrap(),
                pair[1].clone(),
            )
        })
        .collect()
}

fn int(value: &redis::Value) -> Option<i64> {
    redis::from_redis_value::<Option<i64>>(value.clone()).unwrap()
}

fn text(value: &redis::Value) -> Vec<u8> {
    redis::from_redis_value::<Vec<u8>>(value.clone()).unwrap()
}

/// Polls `CLUSTER <what>` through `con` until `done` accepts the listed entries.
fn cluster_list(
    con: &mut redis::Connection,
    what: &str,
    done: impl Fn(&[HashMap<String, redis::Value>]) -> bool,
) -> Vec<HashMap<String, redis::Value>> {
    cluster_list_within(con, what, Duration::from_secs(30), done)
}

fn cluster_list_within(
    con: &mut redis::Connection,
    what: &str,
    within: Duration,
    done: impl Fn(&[HashMap<String, redis::Value>]) -> bool,
) -> Vec<HashMap<String, redis::Value>> {
    let deadline = Instant::now() + within;
    loop {
        let reply: redis::Value = redis::cmd("CLUSTER").arg(what).query(con).unwrap();
        let redis::Value::Array(items) = reply else {
            panic!("CLUSTER {what} answered {reply:?}");
        };
        let entries: Vec<_> = items.iter().map(fields).collect();
        if done(&entries) {
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "CLUSTER {what} never settled: {entries:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `CLUSTER <args>`, answered `+OK` or an error's text.
fn admin(con: &mut redis::Connection, args: &[&str]) -> Result<(), String> {
    let mut cmd = redis::cmd("CLUSTER");
    for arg in args {
        cmd.arg(*arg);
    }
    cmd.query::<()>(con).map_err(|e| e.to_string())
}

/// Pauses the schedulers that move replicas and leads, for tests that move them by hand.
fn pause_scheduling(con: &mut redis::Connection) {
    for name in ["balance-leader", "balance-region", "replica-checker"] {
        admin(con, &["SCHEDULER", "PAUSE", name]).unwrap();
    }
}

/// `CLUSTER SCHEDULER`: the leader's name, each scheduler's fields by name.
fn scheduler_status(con: &mut redis::Connection) -> (String, HashMap<String, HashMap<String, redis::Value>>) {
    let reply: redis::Value = redis::cmd("CLUSTER").arg("SCHEDULER").query(con).unwrap();
    let top = fields(&reply);
    let redis::Value::Array(schedulers) = &top["schedulers"] else {
        panic!("schedulers: {reply:?}");
    };
    let by_name = schedulers
        .iter()
        .map(fields)
        .map(|f| (String::from_utf8(text(&f["name"])).unwrap(), f))
        .collect();
    (String::from_utf8(text(&top["leader"])).unwrap(), by_name)
}

#[test]
fn cluster_commands_show_the_schedulers_picture_of_regions_and_stores() {
    let cluster = TestCluster::start(3);
    let mut con = cluster.client(1);
    // Leads stay where this test puts them.
    admin(&mut con, &["SCHEDULER", "PAUSE", "balance-leader"]).unwrap();
    for i in 0..50 {
        let _: () = con.set(format!("key{i:02}"), "x".repeat(100)).unwrap();
    }

    // Every store reports: up, with its region and disk figures.
    let stores = cluster_list(&mut con, "STORES", |stores| {
        // Every store has reported its replica, and the leader its leadership.
        stores.len() == 3
            && stores
                .iter()
                .all(|s| s.get("region_count").and_then(int) == Some(1))
            && stores
                .iter()
                .filter_map(|s| s.get("leader_count").and_then(int))
                .sum::<i64>()
                == 1
    });
    let mut names: Vec<String> = stores
        .iter()
        .map(|s| String::from_utf8(text(&s["name"])).unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["n1", "n2", "n3"]);
    for store in &stores {
        assert_eq!(text(&store["state"]), b"Up");
        let capacity = int(&store["capacity"]).unwrap();
        let available = int(&store["available"]).unwrap();
        assert!(
            capacity > 0 && available > 0 && available <= capacity,
            "{store:?}"
        );
        assert!(int(&store["used"]).unwrap() > 0);
    }
    let ids: Vec<i64> = stores.iter().map(|s| int(&s["id"]).unwrap()).collect();
    let one: redis::Value = redis::cmd("CLUSTER")
        .arg("STORE")
        .arg(ids[0])
        .query(&mut con)
        .unwrap();
    assert_eq!(int(&fields(&one)["id"]), Some(ids[0]));
    let unknown = redis::cmd("CLUSTER")
        .arg("STORE")
        .arg(4_000_000_000u64)
        .query::<redis::Value>(&mut con);
    assert!(
        unknown
            .unwrap_err()
            .to_string()
            .contains("unknown store 4000000000")
    );

    // One region over everything, on all three stores, with a leader and a size.
    let regions = cluster_list(&mut con, "REGIONS", |regions| {
        regions.len() == 1 && int(&regions[0]["approximate_size"]).is_some_and(|size| size > 0)
    });
    let region = &regions[0];
    assert_eq!(text(&region["start_key"]), b"");
    assert_eq!(text(&region["end_key"]), b"");
    let redis::Value::Array(peers) = &region["peers"] else {
        panic!("peers: {region:?}");
    };
    let mut peers: Vec<i64> = peers.iter().map(|p| int(p).unwrap()).collect();
    peers.sort();
    let mut sorted_ids = ids.clone();
    sorted_ids.sort();
    assert_eq!(peers, sorted_ids);
    assert!(ids.contains(&int(&region["leader"]).unwrap()));
    assert!(int(&region["approximate_keys"]).unwrap() > 0);
    // Every replica is current and heard from.
    assert_eq!(
        region["pending_peers"],
        redis::Value::Array(Vec::new()),
        "{region:?}"
    );
    assert_eq!(
        region["down_peers"],
        redis::Value::Array(Vec::new()),
        "{region:?}"
    );
    assert!(int(&region["written_bytes"]).is_some());

    // CLUSTER SPLIT at key30's meta entry: +OK once the picture shows it, so the next
    // CLUSTER REGION KEY on this connection sees the new region; each key finds its own.
    let store_key = |key: &str| [&[0u8, b'k'][..], key.as_bytes()].concat();
    let holding = |key: &str, con: &mut redis::Connection| -> HashMap<String, redis::Value> {
        let reply: redis::Value = redis::cmd("CLUSTER")
            .arg("REGION")
            .arg("KEY")
            .arg(key)
            .query(con)
            .unwrap();
        fields(&reply)
    };
    let _: () = redis::cmd("CLUSTER")
        .arg("SPLIT")
        .arg("key30")
        .query(&mut con)
        .unwrap();
    let new_region = holding("key30", &mut con);
    assert_eq!(text(&new_region["start_key"]), b"key30", "shown as the user key");
    assert_eq!(int(&new_region["start_db"]), Some(0));
    assert_eq!(text(&new_region["start_store_key"]), store_key("key30"));
    assert_eq!(new_region["end_db"], redis::Value::Nil, "an open end");
    let right = int(&new_region["id"]).unwrap() as u64;
    assert_ne!(right, 1);
    // Splitting where a region already starts changes nothing.
    let _: () = redis::cmd("CLUSTER")
        .arg("SPLIT")
        .arg("key30")
        .query(&mut con)
        .unwrap();
    let regions = cluster_list(&mut con, "REGIONS", |regions| regions.len() == 2);
    assert_eq!(text(&regions[0]["end_key"]), b"key30");
    assert_eq!(text(&regions[0]["end_store_key"]), store_key("key30"));
    assert_eq!(int(&regions[1]["id"]), Some(right as i64));
    assert_eq!(int(&holding("key31", &mut con)["id"]), Some(right as i64));
    assert_ne!(int(&holding("key29", &mut con)["id"]), Some(right as i64));

    // CLUSTER TRANSFER-LEADER: +OK once the new leader has reported; writes go on.
    let leader = int(&holding("key31", &mut con)["leader"]).unwrap();
    let target = *ids.iter().find(|id| **id != leader).unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg("TRANSFER-LEADER")
        .arg(right)
        .arg(target)
        .query(&mut con)
        .unwrap();
    assert_eq!(int(&holding("key31", &mut con)["leader"]), Some(target));
    let _: () = con.set("key31", "after the transfer").unwrap();
    let read: String = cluster.client(2).get("key31").unwrap();
    assert_eq!(read, "after the transfer");
    let error = |args: &[&str], con: &mut redis::Connection| {
        let mut cmd = redis::cmd("CLUSTER");
        for arg in args {
            cmd.arg(*arg);
        }
        cmd.query::<redis::Value>(con).unwrap_err().to_string()
    };
    assert!(error(&["TRANSFER-LEADER", "424242", "1"], &mut con).contains("unknown region 424242"));
    let region = right.to_string();
    assert!(
        error(&["TRANSFER-LEADER", &region, "4000000000"], &mut con).contains("unknown store 4000000000")
    );
    assert!(error(&["TRANSFER-LEADER", &region], &mut con).contains("wrong number of arguments"));
    let by_id: redis::Value = redis::cmd("CLUSTER")
        .arg("REGION")
        .arg(right)
        .query(&mut con)
        .unwrap();
    assert_eq!(int(&fields(&by_id)["version"]), int(&regions[1]["version"]));
    let unknown = redis::cmd("CLUSTER")
        .arg("REGION")
        .arg(424242)
        .query::<redis::Value>(&mut con);
    assert!(unknown.unwrap_err().to_string().contains("unknown region 424242"));
    let wrong = redis::cmd("CLUSTER")
        .arg("REGIONS")
        .arg("LIMIT")
        .arg(1)
        .query::<redis::Value>(&mut con);
    assert!(wrong.unwrap_err().to_string().contains("syntax error"));
    let first: redis::Value = redis::cmd("CLUSTER")
        .arg("REGIONS")
        .arg("COUNT")
        .arg(1)
        .query(&mut con)
        .unwrap();
    assert!(matches!(first, redis::Value::Array(ref r) if r.len() == 1));
}

#[test]
fn peers_move_between_stores_on_request_and_the_data_goes_with_them() {
    let mut cluster = TestCluster::start(4);
    let mut con = cluster.client(0);
    // Replicas stay where this test puts them (four replicas of one region are one too many
    // for the replica checker).
    pause_scheduling(&mut con);
    for i in 0..20 {
        let _: () = con.set(format!("key{i:02}"), i).unwrap();
    }
    let stores = cluster_list(&mut con, "STORES", |stores| stores.len() == 4);
    let id_of = |name: &str| {
        stores
            .iter()
            .find(|s| text(&s["name"]) == name.as_bytes())
            .map(|s| int(&s["id"]).unwrap())
            .unwrap()
    };
    let (n1, n4) = (id_of("n1"), id_of("n4"));
    let region_peers = |con: &mut redis::Connection| {
        let reply: redis::Value = redis::cmd("CLUSTER").arg("REGION").arg(1).query(con).unwrap();
        let redis::Value::Array(peers) = fields(&reply)["peers"].clone() else {
            panic!("no peers in {reply:?}");
        };
        let mut peers: Vec<i64> = peers.iter().map(|p| int(p).unwrap()).collect();
        peers.sort();
        peers
    };
    assert_eq!(region_peers(&mut con), [id_of("n1"), id_of("n2"), id_of("n3")]);
    let admin = |args: &[String], con: &mut redis::Connection| {
        let mut cmd = redis::cmd("CLUSTER");
        for arg in args {
            cmd.arg(arg);
        }
        cmd.query::<()>(con).map_err(|e| e.to_string())
    };
    let args = |sub: &str, store: i64| vec![sub.to_string(), "1".into(), store.to_string()];

    // A replica on n4, reported before +OK.
    admin(&args("ADD-PEER", n4), &mut con).unwrap();
    assert!(region_peers(&mut con).contains(&n4));
    let again = admin(&args("ADD-PEER", n4), &mut con).unwrap_err();
    assert!(again.contains("already has a peer"), "{again}");
    // n1's replica goes (its lead, if it has it, moves first).
    admin(&args("REMOVE-PEER", n1), &mut con).unwrap();
    assert_eq!(region_peers(&mut con), [id_of("n2"), id_of("n3"), n4]);
    let gone = admin(&args("REMOVE-PEER", n1), &mut con).unwrap_err();
    assert!(gone.contains("has no peer"), "{gone}");
    let unknown = admin(&args("ADD-PEER", 4_000_000_000), &mut con).unwrap_err();
    assert!(unknown.contains("unknown store 4000000000"), "{unknown}");
    // Each change ran as a manual operator at the scheduler's leader.
    let (_, schedulers) = scheduler_status(&mut con);
    assert!(
        int(&schedulers["admin"]["finished"]).unwrap() >= 2,
        "{:?}",
        schedulers["admin"]
    );

    // With n2 down, n3 and n4 are a majority of the region: n4 holds a real, current replica.
    cluster.kill(1);
    let mut reader = cluster.client(3);
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..20 {
        loop {
            match reader.get::<_, i64>(format!("key{i:02}")) {
                Ok(value) => {
                    assert_eq!(value, i);
                    break;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "key{i:02} unreadable: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
    let _: () = reader.set("after", "the move").unwrap();
}

/// The store ids by node name, once every store of `names` has reported.
fn store_ids(con: &mut redis::Connection, names: &[&str]) -> HashMap<String, i64> {
    let stores = cluster_list(con, "STORES", |stores| {
        names
            .iter()
            .all(|n| stores.iter().any(|s| text(&s["name"]) == n.as_bytes()))
    });
    stores
        .iter()
        .map(|s| {
            (
                String::from_utf8(text(&s["name"])).unwrap(),
                int(&s["id"]).unwrap(),
            )
        })
        .collect()
}

fn peers_of(region: &HashMap<String, redis::Value>) -> Vec<i64> {
    let redis::Value::Array(peers) = &region["peers"] else {
        panic!("peers: {region:?}");
    };
    let mut peers: Vec<i64> = peers.iter().map(|p| int(p).unwrap()).collect();
    peers.sort();
    peers
}

/// The scheduler at work with real processes: writes split the data into regions whose leads
/// spread over the three stores; a fourth node added to `cluster.yaml` receives regions;
/// `CLUSTER STORE DELETE` empties a store and buries it; nothing written is lost.
#[test]
fn regions_split_spread_to_a_new_node_and_leave_a_deleted_store() {
    let mut cluster = TestCluster::start_with(
        3,
        "region:\n  max_size_bytes: 262144\n  split_size_bytes: 131072\n  split_check_interval_secs: 1\n\
         scheduler:\n  schedule_interval_ms: 200\n",
    );
    let mut con = cluster.client(0);
    let value = |i: usize| format!("{i:04}-{}", "v".repeat(4_000));
    for i in 0..500 {
        let _: () = con.set(format!("key{i:04}"), value(i)).unwrap();
    }
    // About 2 MB: several regions, their leads on all three stores.
    let regions = cluster_list_within(&mut con, "REGIONS", Duration::from_secs(90), |regions| {
        let leaders: std::collections::HashSet<i64> = regions
            .iter()
            .filter_map(|r| r.get("leader").and_then(int))
            .collect();
        regions.len() >= 4 && leaders.len() == 3
    });
    let ids = store_ids(&mut con, &["n1", "n2", "n3"]);
    for region in &regions {
        assert_eq!(peers_of(region).len(), 3, "{region:?}");
    }
    let (leader, schedulers) = scheduler_status(&mut con);
    assert!(["n1", "n2", "n3"].contains(&leader.as_str()), "{leader}");
    assert!(int(&schedulers["split-checker"]["splits"]).unwrap() >= 3);

    // A fourth node, added to cluster.yaml and started, joins and receives regions.
    let n4 = cluster.grow();
    let ids4 = store_ids(&mut con, &["n4"]);
    let n4_id = ids4["n4"];
    cluster_list_within(&mut con, "STORES", Duration::from_secs(120), |stores| {
        stores.iter().any(|s| {
            int(&s["id"]) == Some(n4_id) && s.get("region_count").and_then(int).is_some_and(|n| n >= 2)
        })
    });
    let (_, schedulers) = scheduler_status(&mut con);
    assert!(int(&schedulers["balance-region"]["created"]).unwrap() >= 2);
    // Leads moved by the scheduler: to spread the split regions' leads (which start on the
    // store that led their parent), or, if elections under a busy machine happened to spread
    // them first, to give the new store its share.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, schedulers) = scheduler_status(&mut con);
        if int(&schedulers["balance-leader"]["finished"]).unwrap() >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "balance-leader moved no lead: {:?}",
            schedulers["balance-leader"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Deleting n1's store moves every replica off it, then marks it Tombstone.
    let n1_id = ids["n1"];
    admin(&mut con, &["STORE", "DELETE", &n1_id.to_string()]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let reply: redis::Value = redis::cmd("CLUSTER")
            .arg("STORE")
            .arg(n1_id)
            .query(&mut con)
            .unwrap();
        let state = text(&fields(&reply)["state"]);
        if state == b"Tombstone" {
            break;
        }
        assert_eq!(state, b"Offline");
        assert!(
            Instant::now() < deadline,
            "store {n1_id} never emptied: {reply:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let regions = cluster_list(&mut con, "REGIONS", |_| true);
    for region in &regions {
        let peers = peers_of(region);
        assert!(!peers.contains(&n1_id), "{region:?}");
        assert_eq!(peers.len(), 3, "{region:?}");
    }
    let again = admin(&mut con, &["STORE", "DELETE", &n1_id.to_string()]).unwrap_err();
    assert!(again.contains("already removed"), "{again}");
    let too_few = admin(&mut con, &["STORE", "DELETE", &ids["n2"].to_string()]).unwrap_err();
    assert!(too_few.contains("would leave 2 stores"), "{too_few}");
    // Store ids come from the allocator regions and peers draw from too, so a small number
    // may well be a store by now (n4 took id 99 in one run): this one is out of its reach.
    let unknown = admin(&mut con, &["STORE", "DELETE", "4000000000"]).unwrap_err();
    assert!(unknown.contains("unknown store 4000000000"), "{unknown}");

    // Everything written is there, read through the new node.
    let mut reader = cluster.client(n4);
    for i in 0..500 {
        let read: String = reader.get(format!("key{i:04}")).unwrap();
        assert_eq!(read, value(i));
    }

    // Pausing is shown, and refused for names that are no scheduler.
    admin(&mut con, &["SCHEDULER", "PAUSE", "balance-region"]).unwrap();
    let (_, schedulers) = scheduler_status(&mut reader);
    assert_eq!(text(&schedulers["balance-region"]["state"]), b"paused");
    assert_eq!(text(&schedulers["balance-leader"]["state"]), b"running");
    admin(&mut con, &["SCHEDULER", "RESUME", "balance-region"]).unwrap();
    let (_, schedulers) = scheduler_status(&mut reader);
    assert_eq!(text(&schedulers["balance-region"]["state"]), b"running");
    let unknown = admin(&mut con, &["SCHEDULER", "PAUSE", "balance-hotness"]).unwrap_err();
    assert!(unknown.contains("unknown scheduler"), "{unknown}");
}

/// A store silent past `scheduler.max_store_down_time_secs` is Down, and the replica checker
/// re-creates its replicas on a store that has none: the new replica holds the data (it can
/// lead the region and serve it).
#[test]
fn a_store_down_past_the_down_time_has_its_replicas_recreated_elsewhere() {
    let mut cluster = TestCluster::start_with(
        4,
        "scheduler:\n  max_store_down_time_secs: 5\n  schedule_interval_ms: 200\n",
    );
    let mut con = cluster.client(0);
    for i in 0..50 {
        let _: () = con.set(format!("key{i:02}"), i).unwrap();
    }
    let ids = store_ids(&mut con, &["n1", "n2", "n3", "n4"]);
    let region = cluster_list(&mut con, "REGIONS", |r| {
        r.len() == 1 && r[0].get("leader").and_then(int).is_some()
    });
    assert_eq!(peers_of(&region[0]), [ids["n1"], ids["n2"], ids["n3"]]);

    cluster.kill(2);
    let regions = cluster_list_within(&mut con, "REGIONS", Duration::from_secs(90), |r| {
        r.len() == 1 && peers_of(&r[0]) == [ids["n1"], ids["n2"], ids["n4"]]
    });
    assert_eq!(peers_of(&regions[0]).len(), 3);
    let down: redis::Value = redis::cmd("CLUSTER")
        .arg("STORE")
        .arg(ids["n3"])
        .query(&mut con)
        .unwrap();
    assert_eq!(text(&fields(&down)["state"]), b"Down");
    // The operator ends a moment after the scheduler's picture shows its last step.
    let deadline = Instant::now() + Duration::from_secs(10);
    while int(&scheduler_status(&mut con).1["replica-checker"]["finished"]).unwrap() < 1 {
        assert!(
            Instant::now() < deadline,
            "the replica checker's operator never finished"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The new replica is a real one: it takes the lead and serves every key.
    let n4 = ids["n4"].to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = admin(&mut con, &["TRANSFER-LEADER", "1", &n4]) {
        assert!(Instant::now() < deadline, "n4 never took the lead: {e}");
    }
    let mut reader = cluster.client(3);
    for i in 0..50 {
        let read: i64 = reader.get(format!("key{i:02}")).unwrap();
        assert_eq!(read, i as i64);
    }
}

/// redis-py's `RedisCluster`, through the node at `addr`: it must find `nodes` nodes, route
/// keys to every one of them, and read back what it wrote.
const REDIS_PY_CLUSTER: &str = r#"
import sys
from redis.cluster import RedisCluster
host, port, expected = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rc = RedisCluster(host=host, port=port, decode_responses=True)
nodes = rc.get_nodes()
assert len(nodes) == expected, nodes
for i in range(200):
    assert rc.set(f"py{i}", i)
for i in range(200):
    assert rc.get(f"py{i}") == str(i), i
served = {rc.get_node_from_key(f"py{i}").name for i in range(200)}
assert len(served) == expected, served
print("ok", len(served))
"#;

/// Regions split by themselves while clients write through every node and move money between
/// accounts in `MULTI`s (the schedulers moving leads and replicas meanwhile): every write
/// acknowledged is there afterwards, and no `MULTI` read ever sees a transfer half done,
/// although the accounts end up in several regions.
#[test]
fn automatic_splits_under_load_lose_nothing_and_keep_transactions_atomic() {
    let cluster = TestCluster::start_with(
        3,
        "region:\n  max_size_bytes: 65536\n  split_size_bytes: 32768\n  split_check_interval_secs: 1\n\
         scheduler:\n  schedule_interval_ms: 200\n",
    );
    {
        let mut con = cluster.client(0);
        let mut mset = redis::cmd("MSET");
        for i in 0..ACCOUNTS {
            mset.arg(account(i)).arg(BALANCE);
        }
        let _: () = mset.query(&mut con).unwrap();
    }
    let total = ACCOUNTS as i64 * BALANCE;
    let stop = Arc::new(AtomicBool::new(false));
    let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.resp).collect();
    // Fillers: keys between the accounts' ("acct3-…" sorts after "acct3"), so that splits fall
    // between accounts; each thread returns what was acknowledged.
    let mut fillers = Vec::new();
    for (t, &addr) in addrs.iter().enumerate().take(2) {
        let stop = stop.clone();
        fillers.push(std::thread::spawn(move || {
            let mut con = connect(addr);
            let mut acknowledged = Vec::new();
            let mut j = 0usize;
            while !stop.load(Ordering::Relaxed) && j < 2_000 {
                let key = format!("{}-{t}-{j:05}", account(j % ACCOUNTS));
                if con
                    .set::<_, _, ()>(&key, format!("{j}{}", "f".repeat(2_000)))
                    .is_ok()
                {
                    acknowledged.push((key, j));
                }
                j += 1;
            }
            acknowledged
        }));
    }
    let mut movers = Vec::new();
    for t in 0..2usize {
        let (stop, addr) = (stop.clone(), addrs[(t + 1) % 3]);
        movers.push(std::thread::spawn(move || {
            let mut con = connect(addr);
            let mut seed = t as u64 * 13 + 5;
            let mut done = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let from = (seed >> 33) as usize % ACCOUNTS;
                let to = (from + 1 + (seed >> 40) as usize % (ACCOUNTS - 1)) % ACCOUNTS;
                let moved: redis::RedisResult<(i64, i64)> = redis::pipe()
                    .atomic()
                    .cmd("DECRBY")
                    .arg(account(from))
                    .arg(3)
                    .cmd("INCRBY")
                    .arg(account(to))
                    .arg(3)
                    .query(&mut con);
                if moved.is_ok() {
                    done += 1;
                }
            }
            done
        }));
    }
    let reader = {
        let (stop, addr) = (stop.clone(), addrs[2]);
        std::thread::spawn(move || {
            let mut con = connect(addr);
            let mut checked = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(values) = balances(&mut con) {
                    assert_eq!(values.iter().sum::<i64>(), total, "a MULTI read saw {values:?}");
                    checked += 1;
                }
            }
            checked
        })
    };
    // Until the accounts lie in at least two regions (and a little longer).
    let mut con = cluster.client(0);
    // `None` while the directory has a gap (between the reports of a split's two halves).
    let region_of = |con: &mut redis::Connection, key: &str| match redis::cmd("CLUSTER")
        .arg("REGION")
        .arg("KEY")
        .arg(key)
        .query::<redis::Value>(con)
    {
        Ok(reply) => int(&fields(&reply)["id"]),
        Err(e) if e.to_string().contains("no region holds that key") => None,
        Err(e) => panic!("CLUSTER REGION KEY {key}: {e}"),
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let regions: std::collections::HashSet<Option<i64>> =
            (0..ACCOUNTS).map(|i| region_of(&mut con, &account(i))).collect();
        if regions.len() >= 2 && !regions.contains(&None) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the accounts never spanned two regions"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let acknowledged: Vec<(String, usize)> = fillers.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let transfers: u64 = movers.into_iter().map(|t| t.join().unwrap()).sum();
    let checked = reader.join().unwrap();
    assert!(
        transfers > 0 && checked > 0,
        "{transfers} transfers, {checked} reads"
    );
    let regions = cluster_list(&mut con, "REGIONS", |_| true);
    assert!(regions.len() >= 3, "{} regions", regions.len());
    for (i, addr) in addrs.iter().enumerate() {
        let mut con = connect(*addr);
        assert_eq!(
            balances(&mut con).unwrap().iter().sum::<i64>(),
            total,
            "through n{}",
            i + 1
        );
    }
    let mut con = connect(addrs[2]);
    for (key, j) in &acknowledged {
        let value: String = con.get(key).unwrap();
        assert!(
            value.starts_with(&j.to_string()) && value.len() == j.to_string().len() + 2_000,
            "{key}"
        );
    }
    eprintln!(
        "{} regions, {} acknowledged writes, {transfers} transfers, {checked} MULTI reads",
        regions.len(),
        acknowledged.len()
    );
}

/// Clients in Redis Cluster mode against `resp.cluster_mode: emulated`: every node gives the
/// same map of the slots (full coverage, every node), the cluster clients of redis-py and of
/// the `redis` crate work through it, and nothing is redirected.
#[test]
fn cluster_clients_see_one_cluster_covering_every_slot() {
    let cluster = TestCluster::start_with(3, "resp:\n  cluster_mode: emulated\n");
    let slots_from = |i: usize| -> redis::Value {
        let mut con = cluster.client(i);
        redis::cmd("CLUSTER").arg("SLOTS").query(&mut con).unwrap()
    };
    // Every store has reported before the map is complete.
    let deadline = Instant::now() + Duration::from_secs(30);
    let slots = loop {
        let slots = slots_from(0);
        if matches!(&slots, redis::Value::Array(ranges) if ranges.len() == 3) {
            break slots;
        }
        assert!(
            Instant::now() < deadline,
            "CLUSTER SLOTS never listed three nodes: {slots:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(slots_from(1), slots);
    assert_eq!(slots_from(2), slots);
    let redis::Value::Array(ranges) = &slots else {
        unreachable!()
    };
    let mut next = 0;
    let mut ports = Vec::new();
    for range in ranges {
        let redis::Value::Array(parts) = range else {
            panic!("{range:?}")
        };
        assert_eq!(int(&parts[0]), Some(next));
        next = int(&parts[1]).unwrap() + 1;
        let redis::Value::Array(node) = &parts[2] else {
            panic!("{range:?}")
        };
        ports.push(int(&node[1]).unwrap() as u16);
        assert_eq!(text(&node[2]).len(), 40);
    }
    assert_eq!(next, 16384, "every slot covered");
    ports.sort();
    let mut expected: Vec<u16> = cluster.nodes.iter().map(|n| n.resp.port()).collect();
    expected.sort();
    assert_eq!(ports, expected, "every node listed");

    let mut con = cluster.client(1);
    let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut con).unwrap();
    assert!(
        info.contains("cluster_state:ok\r\n") && info.contains("cluster_known_nodes:3\r\n"),
        "{info}"
    );
    let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut con).unwrap();
    assert_eq!(nodes.lines().count(), 3);
    let myid: String = redis::cmd("CLUSTER").arg("MYID").query(&mut con).unwrap();
    let mine = nodes.lines().find(|l| l.contains("myself")).unwrap();
    assert!(mine.starts_with(&myid), "{mine} vs {myid}");
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("somekey")
        .query(&mut con)
        .unwrap();
    assert_eq!(slot, 11058);
    let tagged: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("{user1000}.following")
        .query(&mut con)
        .unwrap();
    assert_eq!(tagged, 3443);
    let _: () = redis::cmd("READONLY").query(&mut con).unwrap();
    let _: () = redis::cmd("READWRITE").query(&mut con).unwrap();
    let server: String = redis::cmd("INFO").arg("cluster").query(&mut con).unwrap();
    assert!(server.contains("cluster_enabled:1"), "{server}");

    // The redis crate's cluster client.
    let client =
        redis::cluster::ClusterClient::new(vec![format!("redis://{}", cluster.nodes[0].resp)]).unwrap();
    let mut rc = client.get_connection().unwrap();
    for i in 0..100 {
        let _: () = rc.set(format!("rs{i}"), i).unwrap();
    }
    for i in 0..100 {
        let read: i64 = rc.get(format!("rs{i}")).unwrap();
        assert_eq!(read, i);
    }

    // redis-py's RedisCluster.
    let addr = cluster.nodes[2].resp;
    let out = Command::new("python3")
        .args([
            "-c",
            REDIS_PY_CLUSTER,
            &addr.ip().to_string(),
            &addr.port().to_string(),
            "3",
        ])
        .output()
        .expect("python3 runs (scripts/setup.sh installs it and redis-py)");
    assert!(
        out.status.success(),
        "redis-py's RedisCluster failed (scripts/setup.sh installs redis-py):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // What both wrote is one database, read through any node.
    let mut plain = cluster.client(0);
    let read: String = plain.get("py7").unwrap();
    assert_eq!(read, "7");
    let read: i64 = plain.get("rs42").unwrap();
    assert_eq!(read, 42);
}

/// Writers on every node; the node leading the data's region is killed with SIGKILL midway.
/// Every write a client saw acknowledged is there afterwards, read through every node, and
/// writes through the survivors resume.
#[test]
fn killing_the_region_leader_under_writes_loses_nothing_acknowledged() {
    let mut cluster = TestCluster::start(3);
    let stop = Arc::new(AtomicBool::new(false));
    let killed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let acked: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let resumed: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let writers: Vec<_> = (0..3)
        .map(|i| {
            let addr = cluster.nodes[i].resp;
            let (stop, acked, killed_at, resumed) =
                (stop.clone(), acked.clone(), killed_at.clone(), resumed.clone());
            std::thread::spawn(move || {
                let mut con = connect(addr);
                let _ = con.set_read_timeout(Some(Duration::from_secs(15)));
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let key = format!("w{i}:{n}");
                    let value = format!("v{n}");
                    match con.set::<_, _, ()>(&key, &value) {
                        Ok(()) => {
                            acked.lock().unwrap().insert(key, value);
                            if let Some(at) = *killed_at.lock().unwrap() {
                                resumed.lock().unwrap().push(at.elapsed());
                            }
                        }
                        Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                            // Our node was the one killed (or a reply was lost): stop here;
                            // an unacknowledged write may or may not be there.
                            return;
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1_500));
    let leader = cluster.leader_of(1);
    cluster.kill(leader);
    *killed_at.lock().unwrap() = Some(Instant::now());
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let resumed = resumed.lock().unwrap().clone();
    assert!(
        !resumed.is_empty(),
        "no write succeeded through the survivors after the leader (n{}) was killed",
        leader + 1
    );
    eprintln!(
        "killed n{}; first write after it acknowledged {:?} later",
        leader + 1,
        resumed.iter().min().unwrap()
    );
    cluster.restart(leader);
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "too little load to mean anything: {}",
        acked.len()
    );
    for i in 0..3 {
        let mut con = cluster.client(i);
        let keys: Vec<&String> = acked.keys().collect();
        for chunk in keys.chunks(500) {
            let values: Vec<Option<String>> = redis::cmd("MGET").arg(chunk).query(&mut con).unwrap();
            for (key, value) in chunk.iter().zip(values) {
                assert_eq!(
                    value.as_ref(),
                    Some(&acked[*key]),
                    "acknowledged {key} read through n{}",
                    i + 1
                );
            }
        }
    }
}

const ACCOUNTS: usize = 10;
const BALANCE: i64 = 100;

fn account(i: usize) -> String {
    format!("acct{i}")
}

/// Whether an error means the node behind the connection is gone.
fn is_node_down(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error() || e.is_connection_refusal()
}

/// After its node went down: connects to the next node of `addrs` (keeping `con` if that
/// fails too; the next error moves on again).
fn move_on(addrs: &[SocketAddr], n: &mut usize, con: &mut redis::Connection) {
    std::thread::sleep(Duration::from_millis(50));
    *n = (*n + 1) % addrs.len();
    if let Ok(client) = redis::Client::open(format!("redis://{}/", addrs[*n]))
        && let Ok(c) = client.get_connection_with_timeout(Duration::from_secs(2))
    {
        *con = c;
    }
}

/// Every account's balance in one `MULTI`, through `con`.
fn balances(con: &mut redis::Connection) -> redis::RedisResult<Vec<i64>> {
    let keys: Vec<String> = (0..ACCOUNTS).map(account).collect();
    let (values,): (Vec<i64>,) = redis::pipe().atomic().cmd("MGET").arg(&keys).query(con)?;
    Ok(values)
}

/// Bank transfers between accounts in two regions (split at `acct5`), as `MULTI`/`EXEC`
/// through every node, while readers check in `MULTI`s that the balances always sum to the
/// total; the leader of a region is killed with SIGKILL and restarted midway.
#[test]
fn bank_transfers_across_regions_keep_the_total_through_a_kill_and_restart() {
    let mut cluster = TestCluster::start(3);
    {
        let mut con = cluster.client(0);
        let mut mset = redis::cmd("MSET");
        for i in 0..ACCOUNTS {
            mset.arg(account(i)).arg(BALANCE);
        }
        let _: () = mset.query(&mut con).unwrap();
    }
    let right = cluster.split(b"acct5");
    assert_ne!(right, 1, "the split made no new region");
    let total = ACCOUNTS as i64 * BALANCE;
    let stop = Arc::new(AtomicBool::new(false));
    let transfers = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.resp).collect();
    let mut threads = Vec::new();
    for t in 0..3usize {
        let (stop, transfers, addrs) = (stop.clone(), transfers.clone(), addrs.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = t;
            let mut con = connect(addrs[n]);
            let mut seed = t as u64 * 7 + 1;
            while !stop.load(Ordering::Relaxed) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let from = (seed >> 33) as usize % 5;
                let to = 5 + (seed >> 40) as usize % 5;
                let amount = 1 + (seed >> 50) as i64 % 5;
                let (from, to) = if seed & 1 == 0 { (from, to) } else { (to, from) };
                let done: redis::RedisResult<(i64, i64)> = redis::pipe()
                    .atomic()
                    .cmd("DECRBY")
                    .arg(account(from))
                    .arg(amount)
                    .cmd("INCRBY")
                    .arg(account(to))
                    .arg(amount)
                    .query(&mut con);
                match done {
                    Ok(_) => {
                        transfers.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if is_node_down(&e) => move_on(&addrs, &mut n, &mut con),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }));
    }
    let mut readers = Vec::new();
    for r in 0..2usize {
        let (stop, addrs) = (stop.clone(), addrs.clone());
        readers.push(std::thread::spawn(move || {
            let mut n = r + 1;
            let mut con = connect(addrs[n]);
            let mut checked = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match balances(&mut con) {
                    Ok(values) => {
                        let sum: i64 = values.iter().sum();
                        assert_eq!(sum, total, "a MULTI read saw balances {values:?}");
                        checked += 1;
                    }
                    Err(e) if is_node_down(&e) => move_on(&addrs, &mut n, &mut con),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            checked
        }));
    }
    std::thread::sleep(Duration::from_millis(1_500));
    let victim = cluster.leader_of(right);
    cluster.kill(victim);
    let before_restart = transfers.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(2));
    cluster.restart(victim);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    for r in readers {
        assert!(r.join().unwrap() > 0, "a reader never completed a read");
    }
    let after = transfers.load(Ordering::Relaxed);
    assert!(after > before_restart, "no transfer after the kill");
    for i in 0..3 {
        let values = balances(&mut cluster.client(i)).unwrap();
        assert_eq!(
            values.iter().sum::<i64>(),
            total,
            "balances through n{}: {values:?}",
            i + 1
        );
    }
    eprintln!("{after} transfers; killed and restarted n{}", victim + 1);
}

/// Runs `ferrokv` with `args` until it exits (within `limit`); its exit success and stderr.
fn run_to_exit(args: &[&str], limit: Duration) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrokv"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ferrokv");
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return (status.success(), stderr);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("ferrokv {args:?} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn two_node_yaml(dir: &std::path::Path, data: [&str; 2], ports: &[u16; 4], extra: &str) -> PathBuf {
    let yaml = format!(
        "nodes:\n  - {{name: n1, resp_addr: 127.0.0.1:{}, peer_addr: 127.0.0.1:{}, data_dir: {}}}\n  - {{name: n2, resp_addr: 127.0.0.1:{}, peer_addr: 127.0.0.1:{}, data_dir: {}}}\nscheduler_nodes: [n1]\nraft:\n  tick_ms: 20\n{extra}",
        ports[0], ports[1], data[0], ports[2], ports[3], data[1]
    );
    let path = dir.join(format!("{}-{}.yaml", data[0], data[1]));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A name not in the file, a scheduler that never answers, and a data directory from another
/// cluster each stop a node at start-up with an error that says so.
#[test]
fn start_up_errors_name_their_cause() {
    let dir = tempfile::tempdir().unwrap();
    let ports: [u16; 4] = free_ports(4).try_into().unwrap();
    let config = two_node_yaml(
        dir.path(),
        ["a1", "a2"],
        &ports,
        "scheduler:\n  startup_timeout_secs: 2\n",
    );
    let config = config.to_str().unwrap();

    let (ok, stderr) = run_to_exit(&["--config", config, "--node", "n9"], Duration::from_secs(30));
    assert!(!ok && stderr.contains("no node named \"n9\""), "{stderr}");

    // n2 alone: the only scheduler node, n1, is not running.
    let (ok, stderr) = run_to_exit(&["--config", config, "--node", "n2"], Duration::from_secs(60));
    assert!(
        !ok && stderr.contains("no scheduler leader reachable"),
        "{stderr}"
    );
    assert!(
        stderr.contains("waiting for the scheduler"),
        "no progress was logged: {stderr}"
    );

    // Cluster A: n1 and n2 on a1, a2. Then cluster B: n1 on a fresh directory (a new
    // cluster), n2 on A's directory.
    let mut a: Vec<Child> = ["n1", "n2"]
        .iter()
        .map(|node| {
            Command::new(env!("CARGO_BIN_EXE_ferrokv"))
                .args(["--config", config, "--node", node])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let ready = |port: u16| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                && let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(1))
                && con.set::<_, _, ()>("probe", 1).is_ok()
            {
                return;
            }
            assert!(Instant::now() < deadline, "the node on {port} never served");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    ready(ports[0]);
    ready(ports[2]);
    for child in &mut a {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let other = two_node_yaml(dir.path(), ["b1", "a2"], &ports, "");
    let other = other.to_str().unwrap();
    let mut b1 = Command::new(env!("CARGO_BIN_EXE_ferrokv"))
        .args(["--config", other, "--node", "n1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (ok, stderr) = run_to_exit(&["--config", other, "--node", "n2"], Duration::from_secs(60));
    b1.kill().unwrap();
    b1.wait().unwrap();
    assert!(!ok && stderr.contains("belongs to cluster"), "{stderr}");
}
