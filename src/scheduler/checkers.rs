//! The scheduler's decisions: pure functions over a snapshot of the cluster (regions with
//! their leaders and sizes, stores with their states), each answering which steps, if any,
//! one region should go through. Running them is `rpc::operators`.
//!
//! - [`replica_check`] keeps every region at `replication.max_replicas` replicas on stores
//!   that are not down: a replica on a `Down`, `Offline` (being removed) or unknown store is
//!   replaced (add the new one first, then remove the old), a missing one is added, an extra
//!   one removed. A `Disconnected` store's replicas stay (it may be back soon).
//! - [`balance_region`] (TinyKV 3C's rules): among suitable stores (`Up`), move a replica from
//!   the store with the most region data to the one with the least that lacks it, only when
//!   the difference exceeds twice the region's size, so nothing moves back and forth. On the
//!   source, a region whose replica there is pending goes first, then one it follows, then
//!   one it leads (its lead is handed over when the removal step runs). Sizes
//!   count at least [`MIN_REGION_SIZE`] (1 MiB, PD's unit), so that empty regions spread too.
//! - [`balance_leader`]: move a lead from the store leading the most regions to one leading
//!   at least two fewer that holds a replica.
//!
//! A new replica goes to the suitable store holding the fewest regions (then the lowest id).

use std::collections::HashMap;

use super::service::{RegionInfo, StoreInfo, StoreState};

/// The least a region weighs in balance-region's sums.
pub const MIN_REGION_SIZE: u64 = 1 << 20;

/// One step of an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    AddPeer {
        store: u64,
    },
    RemovePeer {
        store: u64,
    },
    TransferLeader {
        store: u64,
    },
    /// Split at a store key (raw), as `CLUSTER SPLIT` asks; the decisions never propose it
    /// (regions over the size limit are split by their leaders' split checkers).
    Split {
        key: Vec<u8>,
    },
}

/// What one decision wants done to one region, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub region_id: u64,
    pub steps: Vec<Step>,
}

fn up(stores: &[StoreInfo], id: u64) -> bool {
    stores
        .iter()
        .any(|s| s.meta.id == id && s.state == StoreState::Up)
}

/// Regions with a replica on each store.
fn region_counts(regions: &[RegionInfo]) -> HashMap<u64, usize> {
    let mut counts = HashMap::new();
    for info in regions {
        for peer in &info.region.peers {
            *counts.entry(peer.store_id).or_default() += 1;
        }
    }
    counts
}

/// The `Up` store without a replica of `info` that holds the fewest regions.
fn best_new_home(info: &RegionInfo, regions: &[RegionInfo], stores: &[StoreInfo]) -> Option<u64> {
    let counts = region_counts(regions);
    stores
        .iter()
        .filter(|s| s.state == StoreState::Up)
        .filter(|s| !info.region.peers.iter().any(|p| p.store_id == s.meta.id))
        .min_by_key(|s| (counts.get(&s.meta.id).copied().unwrap_or(0), s.meta.id))
        .map(|s| s.meta.id)
}

/// See the module docs.
pub fn replica_check(
    info: &RegionInfo,
    regions: &[RegionInfo],
    stores: &[StoreInfo],
    max_replicas: usize,
) -> Option<Proposal> {
    let peers = &info.region.peers;
    let proposal = |steps| {
        Some(Proposal {
            region_id: info.region.id,
            steps,
        })
    };
    if let Some(down) = peers
        .iter()
        .find(|p| !up(stores, p.store_id) && !disconnected(stores, p.store_id))
    {
        return match best_new_home(info, regions, stores) {
            Some(store) => proposal(vec![
                Step::AddPeer { store },
                Step::RemovePeer { store: down.store_id },
            ]),
            None if peers.len() > max_replicas => proposal(vec![Step::RemovePeer { store: down.store_id }]),
            None => None,
        };
    }
    if peers.len() < max_replicas {
        return best_new_home(info, regions, stores)
            .and_then(|store| proposal(vec![Step::AddPeer { store }]));
    }
    if peers.len() > max_replicas {
        // The replica on the busiest store goes; the leader's last.
        let counts = region_counts(regions);
        let leader = info.leader.map(|l| l.store_id);
        let extra = peers.iter().max_by_key(|p| {
            (
                Some(p.store_id) != leader,
                counts.get(&p.store_id).copied().unwrap_or(0),
                p.store_id,
            )
        })?;
        return proposal(vec![Step::RemovePeer {
            store: extra.store_id,
        }]);
    }
    None
}

/// A store that is silent but not yet down: its replicas stay where they are.
fn disconnected(stores: &[StoreInfo], id: u64) -> bool {
    stores
        .iter()
        .any(|s| s.meta.id == id && s.state == StoreState::Disconnected)
}

/// See the module docs. `max_replicas`: regions with another replica count are left to the
/// replica checker.
pub fn balance_region(regions: &[RegionInfo], stores: &[StoreInfo], max_replicas: usize) -> Option<Proposal> {
    let suitable: Vec<u64> = stores
        .iter()
        .filter(|s| s.state == StoreState::Up)
        .map(|s| s.meta.id)
        .collect();
    if suitable.len() < 2 {
        return None;
    }
    let size_of = |info: &RegionInfo| {
        info.stats
            .as_ref()
            .map_or(0, |s| s.approximate_size)
            .max(MIN_REGION_SIZE)
    };
    let mut store_size: HashMap<u64, u64> = suitable.iter().map(|id| (*id, 0)).collect();
    for info in regions {
        for peer in &info.region.peers {
            if let Some(size) = store_size.get_mut(&peer.store_id) {
                *size += size_of(info);
            }
        }
    }
    // Sources from the biggest down; for each, its regions, followers before leaders.
    let mut sources = suitable.clone();
    sources.sort_by_key(|id| (std::cmp::Reverse(store_size[id]), *id));
    for source in sources {
        let mut candidates: Vec<&RegionInfo> = regions
            .iter()
            .filter(|info| info.region.peers.len() == max_replicas)
            .filter(|info| info.region.peers.iter().any(|p| p.store_id == source))
            .filter(|info| info.region.peers.iter().all(|p| up(stores, p.store_id)))
            .collect();
        // A region whose replica here lags (pending) moves first, then followers, then leaders.
        candidates.sort_by_key(|info| {
            let pending = info
                .stats
                .as_ref()
                .is_some_and(|s| s.pending_peers.iter().any(|p| p.store_id == source));
            (
                !pending,
                info.leader.map(|l| l.store_id) == Some(source),
                info.region.id,
            )
        });
        for info in candidates {
            let target = suitable
                .iter()
                .filter(|id| !info.region.peers.iter().any(|p| p.store_id == **id))
                .min_by_key(|id| (store_size[*id], **id));
            let Some(&target) = target else {
                continue;
            };
            if store_size[&source].saturating_sub(store_size[&target]) > 2 * size_of(info) {
                return Some(Proposal {
                    region_id: info.region.id,
                    steps: vec![
                        Step::AddPeer { store: target },
                        Step::RemovePeer { store: source },
                    ],
                });
            }
        }
    }
    None
}

/// See the module docs.
pub fn balance_leader(regions: &[RegionInfo], stores: &[StoreInfo]) -> Option<Proposal> {
    let mut leaders: HashMap<u64, usize> = stores
        .iter()
        .filter(|s| s.state == StoreState::Up)
        .map(|s| (s.meta.id, 0))
        .collect();
    for info in regions {
        if let Some(count) = info.leader.and_then(|l| leaders.get_mut(&l.store_id)) {
            *count += 1;
        }
    }
    let (&source, &most) = leaders
        .iter()
        .max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id)))?;
    let mut best: Option<(usize, u64, u64)> = None;
    for info in regions
        .iter()
        .filter(|i| i.leader.is_some_and(|l| l.store_id == source))
    {
        for peer in &info.region.peers {
            if let Some(&count) = leaders.get(&peer.store_id)
                && peer.store_id != source
                && most >= count + 2
                && best.is_none_or(|(c, s, _)| (count, peer.store_id) < (c, s))
            {
                best = Some((count, peer.store_id, info.region.id));
            }
        }
    }
    best.map(|(_, store, region_id)| Proposal {
        region_id,
        steps: vec![Step::TransferLeader { store }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raftstore::meta::{Peer, Region, RegionEpoch};
    use crate::scheduler::service::RegionStats;
    use crate::scheduler::state::StoreMeta;

    fn store(id: u64, state: StoreState) -> StoreInfo {
        StoreInfo {
            meta: StoreMeta {
                id,
                name: format!("n{id}"),
                peer_addr: String::new(),
                resp_addr: String::new(),
            },
            state,
            stats: None,
        }
    }

    fn up_stores(n: u64) -> Vec<StoreInfo> {
        (1..=n).map(|id| store(id, StoreState::Up)).collect()
    }

    /// Region `id` with replicas on `on` (peer ids = 100 * region + store), led from `leader`.
    fn region(id: u64, on: &[u64], leader: u64, size: u64) -> RegionInfo {
        let peers: Vec<Peer> = on
            .iter()
            .map(|&s| Peer {
                id: 100 * id + s,
                store_id: s,
            })
            .collect();
        RegionInfo {
            leader: peers.iter().copied().find(|p| p.store_id == leader),
            region: Region {
                id,
                start_key: vec![id as u8],
                end_key: vec![id as u8 + 1],
                epoch: RegionEpoch::INITIAL,
                peers,
            },
            stats: Some(RegionStats {
                approximate_size: size,
                approximate_keys: size / 100,
                ..RegionStats::default()
            }),
        }
    }

    fn steps(p: Option<Proposal>) -> Option<Vec<Step>> {
        p.map(|p| p.steps)
    }

    #[test]
    fn replica_checker_table() {
        use Step::*;
        let mut down3 = up_stores(4);
        down3[2].state = StoreState::Down;
        let mut silent3 = up_stores(4);
        silent3[2].state = StoreState::Disconnected;
        type Case = (&'static str, RegionInfo, Vec<StoreInfo>, Option<Vec<Step>>);
        let cases: Vec<Case> = vec![
            ("complete", region(1, &[1, 2, 3], 1, 10), up_stores(4), None),
            (
                "one missing goes to the free store",
                region(1, &[1, 2], 1, 10),
                up_stores(4),
                Some(vec![AddPeer { store: 3 }]),
            ),
            (
                "no store to add to",
                region(1, &[1, 2], 1, 10),
                up_stores(2),
                None,
            ),
            (
                "down replaced: add first, then remove",
                region(1, &[1, 2, 3], 1, 10),
                down3.clone(),
                Some(vec![AddPeer { store: 4 }, RemovePeer { store: 3 }]),
            ),
            (
                "disconnected is left alone",
                region(1, &[1, 2, 3], 1, 10),
                silent3,
                None,
            ),
            (
                "down with nowhere to go, not extra: kept",
                region(1, &[1, 2, 3], 1, 10),
                down3[..3].to_vec(),
                None,
            ),
            (
                "down and extra: removed",
                region(1, &[1, 2, 3, 4], 1, 10),
                vec![
                    store(1, StoreState::Up),
                    store(2, StoreState::Up),
                    store(3, StoreState::Down),
                    store(4, StoreState::Up),
                ],
                Some(vec![RemovePeer { store: 3 }]),
            ),
            (
                "extra: a follower goes, not the leader",
                region(1, &[1, 2, 3, 4], 4, 10),
                up_stores(4),
                Some(vec![RemovePeer { store: 3 }]),
            ),
            (
                "offline (being removed) replaced like down",
                region(1, &[1, 2, 3], 1, 10),
                vec![
                    store(1, StoreState::Up),
                    store(2, StoreState::Up),
                    store(3, StoreState::Offline),
                    store(4, StoreState::Up),
                    store(5, StoreState::Tombstone),
                ],
                Some(vec![AddPeer { store: 4 }, RemovePeer { store: 3 }]),
            ),
            (
                "unknown store counts as down",
                region(1, &[1, 2, 9], 1, 10),
                up_stores(3),
                Some(vec![AddPeer { store: 3 }, RemovePeer { store: 9 }]),
            ),
        ];
        for (name, info, stores, want) in cases {
            let regions = vec![info.clone()];
            assert_eq!(steps(replica_check(&info, &regions, &stores, 3)), want, "{name}");
        }
    }

    #[test]
    fn a_new_replica_goes_to_the_store_with_the_fewest_regions() {
        let regions = vec![
            region(1, &[1, 2], 1, 10),
            region(2, &[3, 4], 3, 10),
            region(3, &[3, 4], 3, 10),
            region(4, &[1, 4], 1, 10),
        ];
        let want = Some(vec![Step::AddPeer { store: 3 }]);
        assert_eq!(
            steps(replica_check(&regions[0], &regions, &up_stores(4), 3)),
            want
        );
    }

    #[test]
    fn balance_region_moves_only_past_twice_the_regions_size() {
        use Step::*;
        // Store 4 is new and empty; stores 1-3 hold three regions of 100 each.
        let regions: Vec<RegionInfo> = (1..=3).map(|id| region(id, &[1, 2, 3], 1, 100)).collect();
        let moved = balance_region(&regions, &up_stores(4), 3).unwrap();
        // 300 on store 1 against 0 on store 4; store 1 leads every region, so a led one moves
        // (its lead is handed over first, when the step runs).
        assert_eq!(moved.steps, vec![AddPeer { store: 4 }, RemovePeer { store: 1 }]);
        // A follower region of the source moves before a led one.
        let regions = vec![
            region(1, &[1, 2, 3], 1, 100),
            region(2, &[1, 2, 3], 2, 100),
            region(3, &[1, 2, 3], 3, 100),
        ];
        let moved = balance_region(&regions, &up_stores(4), 3).unwrap();
        assert_eq!(moved.region_id, 2);
        assert_eq!(moved.steps, vec![AddPeer { store: 4 }, RemovePeer { store: 1 }]);
        // 300 vs 200 is not more than twice 100 apart: nothing moves.
        let regions = vec![
            region(1, &[1, 2, 3], 1, 100),
            region(2, &[1, 2, 3], 1, 100),
            region(3, &[1, 2, 4], 1, 100),
            region(4, &[3, 4, 1], 1, 100),
        ];
        // Sizes: 1 = 400, 2 = 300, 3 = 300, 4 = 200: 400 - 200 = 200 is not > 200.
        assert_eq!(balance_region(&regions, &up_stores(4), 3), None);
        // A down store is neither source nor target, and regions it holds do not move.
        let mut stores = up_stores(4);
        stores[3].state = StoreState::Down;
        let regions: Vec<RegionInfo> = (1..=3).map(|id| region(id, &[1, 2, 3], 1, 100)).collect();
        assert_eq!(balance_region(&regions, &stores, 3), None);
        // Empty regions weigh 1 MiB each: six of them against none moves one.
        let regions: Vec<RegionInfo> = (1..=6).map(|id| region(id, &[1, 2, 3], id % 3 + 1, 0)).collect();
        let moved = balance_region(&regions, &up_stores(4), 3).unwrap();
        assert_eq!(moved.steps[0], AddPeer { store: 4 });
        // Neither an offline nor a tombstone store receives a replica.
        let mut stores = up_stores(5);
        stores[3].state = StoreState::Offline;
        stores[4].state = StoreState::Tombstone;
        assert_eq!(balance_region(&regions, &stores, 3), None);
        // Regions short of replicas are the replica checker's.
        let regions: Vec<RegionInfo> = (1..=3).map(|id| region(id, &[1, 2], 1, 100)).collect();
        assert_eq!(balance_region(&regions, &up_stores(4), 3), None);
    }

    #[test]
    fn balance_leader_moves_a_lead_only_two_or_more_apart() {
        let all_on_1: Vec<RegionInfo> = (1..=3).map(|id| region(id, &[1, 2, 3], 1, 10)).collect();
        let moved = balance_leader(&all_on_1, &up_stores(3)).unwrap();
        assert_eq!(moved.steps, vec![Step::TransferLeader { store: 2 }]);
        let spread: Vec<RegionInfo> = (1..=3).map(|id| region(id, &[1, 2, 3], id, 10)).collect();
        assert_eq!(balance_leader(&spread, &up_stores(3)), None, "one each");
        let close = vec![
            region(1, &[1, 2, 3], 1, 10),
            region(2, &[1, 2, 3], 1, 10),
            region(3, &[1, 2, 3], 2, 10),
            region(4, &[1, 2, 3], 3, 10),
        ];
        assert_eq!(balance_leader(&close, &up_stores(3)), None, "2, 1, 1: one apart");
        // Only to a store holding a replica of the region.
        let elsewhere: Vec<RegionInfo> = (1..=3).map(|id| region(id, &[1], 1, 10)).collect();
        assert_eq!(balance_leader(&elsewhere, &up_stores(3)), None);
    }

    const MIB: u64 = 1 << 20;

    /// TinyKV 3C's mock cluster: each store `(id, size in units of 10 MiB, state)` holds a
    /// region of its own making up its size (beside the regions under test, whose sizes count
    /// too), led from it.
    fn cluster(
        stores: &[(u64, u64, StoreState)],
        regions: &[RegionInfo],
    ) -> (Vec<RegionInfo>, Vec<StoreInfo>) {
        let mut all = regions.to_vec();
        for &(id, units, _) in stores {
            let held: u64 = regions
                .iter()
                .filter(|r| r.region.peers.iter().any(|p| p.store_id == id))
                .map(|r| r.stats.as_ref().unwrap().approximate_size)
                .sum();
            let rest = (units * 10 * MIB).saturating_sub(held);
            if rest > 0 {
                all.push(region(1_000 + id, &[id], id, rest));
            }
        }
        let stores = stores.iter().map(|&(id, _, state)| store(id, state)).collect();
        (all, stores)
    }

    fn moved(proposal: Option<Proposal>) -> Option<(u64, u64, u64)> {
        let p = proposal?;
        match p.steps[..] {
            [Step::AddPeer { store: to }, Step::RemovePeer { store: from }] => Some((p.region_id, from, to)),
            ref other => panic!("unexpected steps {other:?}"),
        }
    }

    /// `TestReplicas13C`, `TestReplicas33C`, `TestReplicas53C` (first parts) and
    /// `TestReplacePendingRegion3C`, on sizes in MiB.
    #[test]
    fn tinykv_3c_balance_region_scenarios() {
        use StoreState::{Down, Offline, Up};
        // 13C, MaxReplicas = 1: region 1 (10 MiB) led on store 4 moves to the smallest store.
        let r1 = region(1, &[4], 4, 10 * MIB);
        let (regions, stores) = cluster(
            &[(1, 6, Up), (2, 8, Up), (3, 8, Up), (4, 16, Up)],
            std::slice::from_ref(&r1),
        );
        assert_eq!(moved(balance_region(&regions, &stores, 1)), Some((1, 4, 1)));
        let (regions, stores) = cluster(
            &[(1, 6, Offline), (2, 6, Up), (3, 8, Up), (4, 16, Up)],
            std::slice::from_ref(&r1),
        );
        assert_eq!(moved(balance_region(&regions, &stores, 1)), Some((1, 4, 2)));
        assert_eq!(
            balance_region(&regions, &stores, 3),
            None,
            "fewer peers than max_replicas"
        );

        // 33C.
        let r1 = region(1, &[1, 2, 3], 1, 10 * MIB);
        let mut layout = vec![(1, 16, Up), (2, 15, Up), (3, 14, Up)];
        let run = |layout: &[(u64, u64, StoreState)]| {
            let (regions, stores) = cluster(layout, std::slice::from_ref(&r1));
            moved(balance_region(&regions, &stores, 3))
        };
        assert_eq!(run(&layout), None, "no store lacks the region");
        layout.push((4, 2, Up));
        assert_eq!(run(&layout), Some((1, 1, 4)));
        layout.push((5, 1, Up));
        assert_eq!(run(&layout), Some((1, 1, 5)));
        layout.push((6, 0, Up));
        assert_eq!(run(&layout), Some((1, 1, 6)));
        layout[5].2 = Down;
        assert_eq!(run(&layout), Some((1, 1, 5)));
        for store in &mut layout[3..] {
            store.2 = Down;
        }
        layout.push((7, 20, Up));
        assert_eq!(run(&layout), None, "not worth moving to a bigger store");

        // 53C, five replicas.
        let r1 = region(1, &[1, 2, 3, 4, 5], 1, 10 * MIB);
        let mut layout = vec![
            (1, 4, Up),
            (2, 5, Up),
            (3, 6, Up),
            (4, 7, Up),
            (5, 28, Up),
            (6, 1, Up),
        ];
        let (regions, stores) = cluster(&layout, std::slice::from_ref(&r1));
        assert_eq!(moved(balance_region(&regions, &stores, 5)), Some((1, 5, 6)));
        layout.push((7, 5, Up));
        let (regions, stores) = cluster(&layout, std::slice::from_ref(&r1));
        assert_eq!(moved(balance_region(&regions, &stores, 5)), Some((1, 5, 6)));
        let r1 = region(1, &[2, 3, 4, 5, 6], 2, 10 * MIB);
        let (regions, stores) = cluster(&layout, std::slice::from_ref(&r1));
        assert_eq!(moved(balance_region(&regions, &stores, 5)), Some((1, 5, 1)));

        // Pending first: of three regions on {1, 2, 3}, the one whose replica on the source
        // (store 1) is pending moves.
        let mut under_test: Vec<RegionInfo> = (1..=3).map(|id| region(id, &[1, 2, 3], 2, 10 * MIB)).collect();
        let lagging = under_test[2].region.peers[0];
        under_test[2].stats.as_mut().unwrap().pending_peers.push(lagging);
        let (regions, stores) = cluster(&[(1, 16, Up), (2, 7, Up), (3, 15, Up), (4, 10, Up)], &under_test);
        assert_eq!(moved(balance_region(&regions, &stores, 3)), Some((3, 1, 4)));
    }
}
