//! Redis Cluster's own commands, for clients that speak to a Redis Cluster
//! (`resp.cluster_mode: emulated`): `CLUSTER SLOTS`, `SHARDS`, `NODES`, `INFO`, `MYID`,
//! `KEYSLOT`, and `READONLY`, `READWRITE`, `ASKING`.
//!
//! The emulated cluster is the live nodes (stores the scheduler counts `Up`), in store id
//! order, each the master of an even share of the 16384 slots: full coverage, every live node
//! listed, and the same map from every node, since it is computed from the scheduler's one
//! picture. Any node serves any key, so a client that routes by this map is never redirected
//! (no `MOVED`, no `ASK`) and one that routes elsewhere is served all the same. A node's id
//! is derived from its name (40 hex digits), so it is stable across restarts and the same
//! from every node. The addresses are the nodes' RESP addresses as they registered them.
//!
//! In the default `standalone` mode these answer Redis's "cluster support disabled" error,
//! as a Redis with `cluster-enabled no` does.

use bytes::Bytes;

use super::super::admin::ClusterAdmin;
use super::super::error::{CommandError, CommandResult};
use super::super::reply::Reply;
use crate::config::ClusterMode;
use crate::scheduler::service::{StoreInfo, StoreState};

/// Slots in a Redis Cluster.
pub const SLOTS: u32 = 16_384;

fn disabled() -> CommandError {
    CommandError::Other("This instance has cluster support disabled".into())
}

/// `READONLY`, `READWRITE`, `ASKING`.
pub fn connection_flag(mode: ClusterMode) -> CommandResult {
    match mode {
        ClusterMode::Standalone => Err(disabled()),
        ClusterMode::Emulated => Ok(Reply::OK),
    }
}

/// Whether `CLUSTER`'s subcommand `name` is one of Redis Cluster's (this module's).
pub fn is_redis_cluster_subcommand(name: &str) -> bool {
    matches!(
        name,
        "cluster|slots"
            | "cluster|shards"
            | "cluster|nodes"
            | "cluster|info"
            | "cluster|myid"
            | "cluster|keyslot"
    )
}

/// A node of the emulated cluster.
struct SlotOwner {
    id: String,
    name: String,
    ip: String,
    port: u16,
    first: u32,
    last: u32,
}

/// A stable 40-hex-digit node id for the node named `name` (FNV-1a, three ways salted).
pub fn node_id(name: &str) -> String {
    let hash = |salt: u64| {
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ salt;
        for b in name.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    };
    format!("{:016x}{:016x}{:08x}", hash(1), hash(2), hash(3) as u32)
}

/// The live stores, each with its slot range.
fn slot_map(stores: &[StoreInfo]) -> Vec<SlotOwner> {
    let mut live: Vec<&StoreInfo> = stores.iter().filter(|s| s.state == StoreState::Up).collect();
    live.sort_by_key(|s| s.meta.id);
    let n = live.len() as u32;
    live.iter()
        .enumerate()
        .map(|(i, store)| {
            let i = i as u32;
            let (ip, port) = match store.meta.resp_addr.parse::<std::net::SocketAddr>() {
                Ok(addr) => (addr.ip().to_string(), addr.port()),
                Err(_) => (store.meta.resp_addr.clone(), 0),
            };
            SlotOwner {
                id: node_id(&store.meta.name),
                name: store.meta.name.clone(),
                ip,
                port,
                first: i * SLOTS / n,
                last: (i + 1) * SLOTS / n - 1,
            }
        })
        .collect()
}

fn int(n: impl Into<i64>) -> Reply {
    Reply::Integer(n.into())
}

fn field(name: &str, value: Reply) -> (Reply, Reply) {
    (Reply::bulk_str(name), value)
}

/// `CLUSTER <sub>` for the Redis Cluster subcommands; `me` is this node's name.
pub async fn cluster(
    sub: &str,
    args: &[Bytes],
    mode: ClusterMode,
    me: &str,
    admin: Option<&dyn ClusterAdmin>,
) -> CommandResult {
    if mode == ClusterMode::Standalone {
        return Err(disabled());
    }
    match sub {
        "cluster|keyslot" => return Ok(int(redis_protocol::redis_keyslot(&args[2]))),
        "cluster|myid" => return Ok(Reply::bulk_str(&node_id(me))),
        _ => {}
    }
    let admin =
        admin.ok_or_else(|| CommandError::Other("cluster administration is not available here".into()))?;
    let stores = admin
        .stores()
        .await
        .map_err(|e| CommandError::Other(format!("the scheduler did not answer: {e}")))?;
    let map = slot_map(&stores);
    if map.is_empty() {
        return Err(CommandError::Other("CLUSTERDOWN no live node is known".into()));
    }
    match sub {
        "cluster|slots" => Ok(Reply::Array(
            map.iter()
                .map(|o| {
                    Reply::Array(vec![
                        int(o.first),
                        int(o.last),
                        Reply::Array(vec![Reply::bulk_str(&o.ip), int(o.port), Reply::bulk_str(&o.id)]),
                    ])
                })
                .collect(),
        )),
        "cluster|shards" => Ok(Reply::Array(
            map.iter()
                .map(|o| {
                    let node = Reply::Map(vec![
                        field("id", Reply::bulk_str(&o.id)),
                        field("port", int(o.port)),
                        field("ip", Reply::bulk_str(&o.ip)),
                        field("endpoint", Reply::bulk_str(&o.ip)),
                        field("role", Reply::bulk_str("master")),
                        field("replication-offset", int(0)),
                        field("health", Reply::bulk_str("online")),
                    ]);
                    Reply::Map(vec![
                        field("slots", Reply::Array(vec![int(o.first), int(o.last)])),
                        field("nodes", Reply::Array(vec![node])),
                    ])
                })
                .collect(),
        )),
        "cluster|nodes" => {
            let mut text = String::new();
            for (epoch, o) in map.iter().enumerate() {
                let flags = if o.name == me { "myself,master" } else { "master" };
                let bus = o.port.checked_add(10_000).unwrap_or(0);
                text.push_str(&format!(
                    "{} {}:{}@{bus} {flags} - 0 0 {} connected {}-{}\n",
                    o.id,
                    o.ip,
                    o.port,
                    epoch + 1,
                    o.first,
                    o.last
                ));
            }
            Ok(Reply::Verbatim(text))
        }
        "cluster|info" => {
            let n = map.len();
            let my_epoch = map.iter().position(|o| o.name == me).map_or(0, |i| i + 1);
            Ok(Reply::Verbatim(format!(
                "cluster_state:ok\r\ncluster_slots_assigned:{SLOTS}\r\ncluster_slots_ok:{SLOTS}\r\n\
                 cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:{n}\r\n\
                 cluster_size:{n}\r\ncluster_current_epoch:{n}\r\ncluster_my_epoch:{my_epoch}\r\n\
                 cluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n\
                 total_cluster_links_buffer_limit_exceeded:0\r\n"
            )))
        }
        other => unreachable!("{other} is not a Redis Cluster subcommand"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::state::StoreMeta;

    fn store(id: u64, state: StoreState) -> StoreInfo {
        StoreInfo {
            meta: StoreMeta {
                id,
                name: format!("n{id}"),
                peer_addr: String::new(),
                resp_addr: format!("127.0.0.1:{}", 7000 + id),
            },
            state,
            stats: None,
        }
    }

    #[test]
    fn live_nodes_share_every_slot_in_store_order() {
        let stores = vec![
            store(3, StoreState::Up),
            store(1, StoreState::Up),
            store(2, StoreState::Down),
            store(4, StoreState::Up),
            store(5, StoreState::Tombstone),
        ];
        let map = slot_map(&stores);
        let names: Vec<&str> = map.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["n1", "n3", "n4"]);
        assert_eq!(map[0].first, 0);
        for pair in map.windows(2) {
            assert_eq!(pair[0].last + 1, pair[1].first, "no gap, no overlap");
        }
        assert_eq!(map.last().unwrap().last, SLOTS - 1);
        assert_eq!((map[1].ip.as_str(), map[1].port), ("127.0.0.1", 7003));
    }

    #[test]
    fn node_ids_are_forty_hex_digits_stable_and_distinct() {
        let id = node_id("n1");
        assert_eq!(id.len(), 40);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(id, node_id("n1"));
        assert_ne!(id, node_id("n2"));
    }
}
