//! Regions split by themselves once their data outgrows `region.max_size_bytes`.

use std::time::{Duration, Instant};

use ferrokv::config::{ClusterConfig, RegionConfig};
use redis::Commands;

use crate::harness::TestServer;

/// `(start_key, end_key)` of every region, in key order.
fn regions(con: &mut redis::Connection) -> Vec<(Vec<u8>, Vec<u8>)> {
    let reply: redis::Value = redis::cmd("CLUSTER").arg("REGIONS").query(con).unwrap();
    let redis::Value::Array(regions) = reply else {
        panic!("CLUSTER REGIONS answered {reply:?}");
    };
    regions
        .iter()
        .map(|region| {
            let redis::Value::Array(fields) = region else {
                panic!("a region is not a field list: {region:?}");
            };
            let field = |name: &str| {
                let at = fields
                    .chunks(2)
                    .position(|pair| redis::from_redis_value::<String>(pair[0].clone()).unwrap() == name)
                    .unwrap();
                redis::from_redis_value::<Vec<u8>>(fields[at * 2 + 1].clone()).unwrap()
            };
            (field("start_key"), field("end_key"))
        })
        .collect()
}

#[test]
fn a_region_over_the_size_limit_splits_by_itself_and_loses_nothing() {
    let server = TestServer::start_with_cluster(ClusterConfig {
        region: RegionConfig {
            max_size_bytes: 64 << 10,
            split_size_bytes: 32 << 10,
            split_check_interval_secs: 1,
        },
        ..ClusterConfig::default()
    });
    let mut con = server.client();
    assert_eq!(regions(&mut con).len(), 1);
    let value = |i: usize| format!("{i:04}-{}", "v".repeat(1_000));
    for i in 0..400 {
        let _: () = con.set(format!("key{i:04}"), value(i)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let layout = loop {
        let layout = regions(&mut con);
        if layout.len() >= 2 {
            break layout;
        }
        assert!(Instant::now() < deadline, "no split: {layout:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    // The regions tile the key space: each ends where the next starts, the ends are open.
    assert_eq!(layout.first().unwrap().0, b"");
    assert_eq!(layout.last().unwrap().1, b"");
    for pair in layout.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "{layout:?}");
    }
    // The first split leaves about split_size_bytes on the left: some of the keys, not all.
    let first_end = String::from_utf8_lossy(&layout[0].1).into_owned();
    assert!(first_end.contains("key0"), "split inside the data: {first_end:?}");
    // Nothing lost, through point reads and a scan across regions.
    for i in 0..400 {
        let got: String = con.get(format!("key{i:04}")).unwrap();
        assert_eq!(got, value(i));
    }
    let count: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(count, 400);
    // Writes on both sides of the split go on.
    let _: () = con.set("key0000", "left").unwrap();
    let _: () = con.set("key0399", "right").unwrap();
    let got: Vec<String> = con.mget(&["key0000", "key0399"]).unwrap();
    assert_eq!(got, ["left", "right"]);
}
