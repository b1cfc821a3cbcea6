//! `CLUSTER`'s administration subcommands: the cluster as the scheduler sees it, in pd-ctl's
//! words (see the README). Each reply is a map (RESP3), or a flat field/value array (RESP2),
//! as `HGETALL` and `XINFO` answer.
//!
//! Region boundaries are shown as user keys (`start_key`, `end_key`: the Redis key whose
//! entries the boundary starts at, `""` for an open end), with their database (`start_db`,
//! `end_db`) and as store keys (`start_store_key`, `end_store_key`: the raw keys of the
//! transactional store, a database byte, then the keyspace layout's key, see `keyspace`);
//! `CLUSTER REGION KEY <key>` finds the region holding the meta entry of the Redis key `<key>`
//! in the client's database, and `CLUSTER SPLIT <key>` splits there.
//!
//! `CLUSTER SPLIT`, `TRANSFER-LEADER`, `ADD-PEER` and `REMOVE-PEER` answer `+OK` once the
//! scheduler's picture shows the change (a following `CLUSTER REGION` from this connection
//! sees it), or an error that says why not (unknown region or store, peer already there, no
//! peer there, the last replica, timed out). `CLUSTER STORE DELETE <id>` answers `+OK` once
//! the store is `Offline` (as pd-ctl's `store delete`): the scheduler then moves its replicas
//! away and marks it `Tombstone`, which `CLUSTER STORE <id>` shows. `CLUSTER SCHEDULER PAUSE`
//! and `RESUME` are replicated, so they hold across scheduler leader changes.

use bytes::Bytes;

use super::super::admin::ClusterAdmin;
use super::super::args::{int_arg, is_keyword};
use super::super::db::DbIndex;
use super::super::error::{CommandError, CommandResult};
use super::super::keyspace::{data_key, owner_of};
use super::super::reply::Reply;
use super::table::{CLUSTER_SUBCOMMANDS, CommandSpec};
use crate::percolator::key::Key;
use crate::scheduler::board::SchedulerStatus;
use crate::scheduler::service::{RegionInfo, RegionQuery, StoreInfo};

/// Regions `CLUSTER REGIONS` lists unless told a `COUNT`.
const DEFAULT_REGION_COUNT: usize = 1_000;

pub async fn cluster(
    spec: &'static CommandSpec,
    args: &[Bytes],
    db: DbIndex,
    admin: Option<&dyn ClusterAdmin>,
) -> CommandResult {
    let sub = spec.resolve_subcommand(args)?;
    let admin =
        admin.ok_or_else(|| CommandError::Other("cluster administration is not available here".into()))?;
    let failed = |e: String| CommandError::Other(format!("the scheduler did not answer: {e}"));
    match sub.name {
        "cluster|regions" => {
            let limit = match &args[2..] {
                [] => DEFAULT_REGION_COUNT,
                [word, count] if is_keyword(word, "COUNT") => usize::try_from(int_arg(count)?)
                    .map_err(|_| CommandError::Other("COUNT must be positive".into()))?,
                _ => return Err(CommandError::Syntax),
            };
            let regions = admin
                .regions(RegionQuery::From {
                    from: Vec::new(),
                    limit,
                })
                .await
                .map_err(failed)?;
            Ok(Reply::Array(regions.iter().map(region_reply).collect()))
        }
        "cluster|region" => {
            let query = match &args[2..] {
                [word, key] if is_keyword(word, "KEY") => {
                    RegionQuery::Key(Key::from_raw(&store_key(db, key)).as_encoded().to_vec())
                }
                [id] => RegionQuery::Id(id_arg(id, "region")?),
                _ => return Err(CommandError::Syntax),
            };
            let what = query.clone();
            let regions = admin.regions(query).await.map_err(failed)?;
            match regions.first() {
                Some(region) => Ok(region_reply(region)),
                None => Err(CommandError::Other(match what {
                    RegionQuery::Id(id) => format!("unknown region {id}"),
                    _ => "no region holds that key".into(),
                })),
            }
        }
        "cluster|stores" => {
            let stores = admin.stores().await.map_err(failed)?;
            Ok(Reply::Array(stores.iter().map(store_reply).collect()))
        }
        "cluster|store" if args.len() == 4 && is_keyword(&args[2], "DELETE") => {
            let id = id_arg(&args[3], "store")?;
            admin.remove_store(id).await.map_err(CommandError::Other)?;
            Ok(Reply::OK)
        }
        "cluster|store" => {
            if args.len() != 3 {
                return Err(CommandError::Syntax);
            }
            let id = id_arg(&args[2], "store")?;
            let stores = admin.stores().await.map_err(failed)?;
            stores
                .iter()
                .find(|store| store.meta.id == id)
                .map(store_reply)
                .ok_or_else(|| CommandError::Other(format!("unknown store {id}")))
        }
        "cluster|split" => {
            admin
                .split(store_key(db, &args[2]))
                .await
                .map_err(CommandError::Other)?;
            Ok(Reply::OK)
        }
        "cluster|transfer-leader" => {
            let region = id_arg(&args[2], "region")?;
            let store = id_arg(&args[3], "store")?;
            admin
                .transfer_leader(region, store)
                .await
                .map_err(CommandError::Other)?;
            Ok(Reply::OK)
        }
        "cluster|add-peer" | "cluster|remove-peer" => {
            let region = id_arg(&args[2], "region")?;
            let store = id_arg(&args[3], "store")?;
            let done = if sub.name == "cluster|add-peer" {
                admin.add_peer(region, store).await
            } else {
                admin.remove_peer(region, store).await
            };
            done.map_err(CommandError::Other)?;
            Ok(Reply::OK)
        }
        "cluster|scheduler" => {
            let paused = match &args[2..] {
                [] => {
                    let status = admin.scheduler_status().await.map_err(failed)?;
                    return Ok(scheduler_reply(&status));
                }
                [word, _] if is_keyword(word, "PAUSE") => true,
                [word, _] if is_keyword(word, "RESUME") => false,
                _ => return Err(CommandError::Syntax),
            };
            let name = String::from_utf8_lossy(&args[3]).to_lowercase();
            admin
                .pause_scheduler(name, paused)
                .await
                .map_err(CommandError::Other)?;
            Ok(Reply::OK)
        }
        "cluster|help" => {
            let mut lines = vec![Reply::bulk_str(
                "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            )];
            for sub in CLUSTER_SUBCOMMANDS {
                let name = sub.name.trim_start_matches("cluster|").to_uppercase();
                lines.push(Reply::bulk_str(format!("{name} {}", sub.syntax).trim_end()));
                lines.push(Reply::bulk_str(&format!("    {}", sub.summary)));
            }
            Ok(Reply::Array(lines))
        }
        other => unreachable!("CLUSTER has no subcommand {other} in its table"),
    }
}

/// A region or store id: a positive integer.
fn id_arg(arg: &[u8], what: &str) -> CommandResult<u64> {
    u64::try_from(int_arg(arg)?)
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| CommandError::Other(format!("unknown {what} {}", String::from_utf8_lossy(arg))))
}

/// The store key of the meta entry of `key` in database `db`.
fn store_key(db: DbIndex, key: &[u8]) -> Vec<u8> {
    let mut out = vec![db];
    out.extend_from_slice(&data_key(key));
    out
}

/// A region boundary as a store key (a database byte, then the keyspace layout's key); `""`
/// for an open end.
fn boundary(encoded: &[u8]) -> Vec<u8> {
    if encoded.is_empty() {
        return Vec::new();
    }
    // Not a key of the encoding (never written by this server): shown as it is.
    Key::from_encoded(encoded.to_vec())
        .to_raw()
        .unwrap_or_else(|_| encoded.to_vec())
}

/// A boundary as a user key: the Redis key whose entries it starts at (a collection may span
/// two regions, so its key can start one region and be in the one before), `""` for an open
/// end; a boundary in no key's entries (the expiry index) shows its store key.
fn user_boundary(store_key: &[u8]) -> Reply {
    let owner = store_key.split_first().and_then(|(_, rest)| owner_of(rest));
    Reply::Bulk(Bytes::copy_from_slice(owner.unwrap_or(store_key)))
}

/// The database of a boundary; nil for an open end.
fn boundary_db(store_key: &[u8]) -> Reply {
    store_key
        .first()
        .map_or(Reply::Nil, |db| Reply::Integer(i64::from(*db)))
}

fn field(name: &str, value: Reply) -> (Reply, Reply) {
    (Reply::bulk_str(name), value)
}

fn count(n: u64) -> Reply {
    Reply::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn region_reply(info: &RegionInfo) -> Reply {
    let region = &info.region;
    let (start, end) = (boundary(&region.start_key), boundary(&region.end_key));
    let stats = info.stats.as_ref();
    let peers = |peers: &[crate::raftstore::meta::Peer]| {
        Reply::Array(peers.iter().map(|p| count(p.store_id)).collect())
    };
    Reply::Map(vec![
        field("id", count(region.id)),
        field("start_key", user_boundary(&start)),
        field("end_key", user_boundary(&end)),
        field("start_db", boundary_db(&start)),
        field("end_db", boundary_db(&end)),
        field("start_store_key", Reply::Bulk(Bytes::from(start.clone()))),
        field("end_store_key", Reply::Bulk(Bytes::from(end.clone()))),
        field("conf_ver", count(region.epoch.conf_ver)),
        field("version", count(region.epoch.version)),
        field(
            "peers",
            Reply::Array(region.peers.iter().map(|peer| count(peer.store_id)).collect()),
        ),
        field(
            "leader",
            info.leader.map_or(Reply::Nil, |peer| count(peer.store_id)),
        ),
        field(
            "approximate_size",
            stats.map_or(Reply::Nil, |s| count(s.approximate_size)),
        ),
        field(
            "approximate_keys",
            stats.map_or(Reply::Nil, |s| count(s.approximate_keys)),
        ),
        field(
            "written_bytes",
            stats.map_or(Reply::Nil, |s| count(s.written_bytes)),
        ),
        field(
            "written_keys",
            stats.map_or(Reply::Nil, |s| count(s.written_keys)),
        ),
        field(
            "pending_peers",
            stats.map_or(Reply::Nil, |s| peers(&s.pending_peers)),
        ),
        field("down_peers", stats.map_or(Reply::Nil, |s| peers(&s.down_peers))),
    ])
}

fn store_reply(info: &StoreInfo) -> Reply {
    let stats = info.stats;
    let stat = |value: fn(&crate::scheduler::service::StoreStats) -> u64| {
        stats.as_ref().map_or(Reply::Nil, |s| count(value(s)))
    };
    Reply::Map(vec![
        field("id", count(info.meta.id)),
        field("name", Reply::bulk_str(&info.meta.name)),
        field("address", Reply::bulk_str(&info.meta.peer_addr)),
        field("resp_address", Reply::bulk_str(&info.meta.resp_addr)),
        field("state", Reply::bulk_str(info.state.name())),
        field("region_count", stat(|s| s.region_count)),
        field("leader_count", stat(|s| s.leader_count)),
        field("capacity", stat(|s| s.capacity_bytes)),
        field("available", stat(|s| s.available_bytes)),
        field("used", stat(|s| s.used_bytes)),
    ])
}

fn scheduler_reply(status: &SchedulerStatus) -> Reply {
    let schedulers = status
        .schedulers
        .iter()
        .map(|s| {
            let mut fields = vec![
                field("name", Reply::bulk_str(&s.name)),
                field(
                    "state",
                    Reply::bulk_str(if s.paused { "paused" } else { "running" }),
                ),
            ];
            fields.extend(s.counters.iter().map(|(name, value)| field(name, count(*value))));
            Reply::Map(fields)
        })
        .collect();
    let operators = status
        .operators
        .iter()
        .map(|o| {
            Reply::Map(vec![
                field("region", count(o.region_id)),
                field("scheduler", Reply::bulk_str(&o.scheduler)),
                field(
                    "steps",
                    Reply::Array(o.steps.iter().map(|s| Reply::bulk_str(s)).collect()),
                ),
                field("step", count(o.step)),
                field("age_ms", count(o.age_ms)),
            ])
        })
        .collect();
    Reply::Map(vec![
        field("leader", Reply::bulk_str(&status.leader)),
        field("schedulers", Reply::Array(schedulers)),
        field("operators", Reply::Array(operators)),
    ])
}
