//! The scheduler's replicated state: what every scheduler node agrees on, as a deterministic
//! state machine of [`SchedulerCommand`]s.
//!
//! The scheduler's raft group replicates commands; every replica applies them in log order to
//! its [`SchedulerState`] and ends in the same state. The state is small (a few numbers, the
//! stores, the region directory), so a snapshot is the whole state, encoded.
//!
//! - **Timestamps.** `tso_bound_ms` is the bound the oracle persists ahead of the clock
//!   (`tso.rs`): a leader issues timestamps only below a bound it has committed, and a new
//!   leader starts above the old bound, so timestamps never go back across a leader change.
//!   The bound only grows.
//! - **Ids.** `next_id` is the next unused id for stores, regions and peers; allocation hands
//!   out ranges and only grows it.
//! - **Stores.** Every store that joined, by id, with its node name and addresses. A name keeps
//!   its store id for life.
//! - **Store removal.** A store being emptied (`CLUSTER STORE DELETE`) is `Offline` until no
//!   region has a replica on it, then `Tombstone` for good; the other states (up, down...) come
//!   from heartbeats and are not replicated.
//! - **Paused schedulers.** The names of the schedulers an operator paused, so that a new
//!   scheduler leader keeps them paused.
//! - **Regions.** The region directory, by id and by range, with TinyKV's rules for
//!   heartbeats (`reference/tinykv.md` §6): a report whose epoch is older than what is known
//!   for that region, or for any region it overlaps, is stale and changes nothing; a newer one
//!   replaces what it overlaps.
//!
//! Encoding: the primitives of `raftstore::meta` (big-endian integers, length-prefixed bytes);
//! every decoder refuses truncated or trailing input.

use std::collections::{BTreeMap, BTreeSet};

use crate::raftstore::meta::{DecodeError, Reader, Region, Writer, put_region, read_region};

/// A store as the scheduler knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreMeta {
    pub id: u64,
    /// The node's name in `cluster.yaml`.
    pub name: String,
    /// Where other nodes reach it (raft, KV and scheduler RPC).
    pub peer_addr: String,
    /// Where Redis clients reach it.
    pub resp_addr: String,
}

/// A change to the replicated state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchedulerCommand {
    /// Makes the cluster: its id, the stores it starts with, its first region and the first
    /// id left free. Refused (changing nothing) once the cluster exists.
    Bootstrap {
        cluster_id: u64,
        stores: Vec<StoreMeta>,
        first_region: Region,
        next_id: u64,
    },
    /// Raises the timestamp bound to at least `bound_ms`.
    AdvanceTso { bound_ms: u64 },
    /// Reserves `count` consecutive ids.
    AllocIds { count: u64 },
    /// Adds a store, or updates its addresses. Its name must be new, or already its own.
    PutStore(StoreMeta),
    /// A region's layout as its leader reports it.
    PutRegion(Region),
    /// Starts emptying a store: it becomes `Offline`.
    RemoveStore { id: u64 },
    /// An `Offline` store that no region has a replica on becomes `Tombstone`.
    BuryStore { id: u64 },
    /// Pauses or resumes the scheduler named `name`.
    PauseScheduler { name: String, paused: bool },
}

/// Where a store is in its removal; a store not in [`SchedulerState::removals`] serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// Its replicas are being moved away.
    Offline,
    /// Empty and gone for good: it gets no replicas and its id is never reused.
    Tombstone,
}

/// What applying a command answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchedulerResponse {
    Bootstrapped,
    /// The cluster already existed; its id.
    AlreadyBootstrapped {
        cluster_id: u64,
    },
    TsoBound {
        bound_ms: u64,
    },
    /// Ids `first..first + count`.
    Ids {
        first: u64,
        count: u64,
    },
    StorePut,
    /// Another store already has this name.
    StoreNameTaken {
        name: String,
        store_id: u64,
    },
    RegionPut,
    /// The report is older than what is known (for this region or one it overlaps).
    RegionStale {
        current: Region,
    },
    /// The command needs a bootstrapped cluster.
    NotBootstrapped,
    StoreNotFound {
        id: u64,
    },
    /// The store's removal is already at (or past) the state asked for.
    StoreRemoval {
        id: u64,
        removal: Removal,
    },
    /// The store still holds replicas of these many regions.
    StoreNotEmpty {
        id: u64,
        replicas: usize,
    },
    /// A store's removal changed, or a scheduler was paused or resumed.
    Done,
}

/// See the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerState {
    /// Zero until bootstrapped.
    pub cluster_id: u64,
    pub tso_bound_ms: u64,
    pub next_id: u64,
    pub stores: BTreeMap<u64, StoreMeta>,
    pub regions: BTreeMap<u64, Region>,
    /// Stores being removed, or removed.
    pub removals: BTreeMap<u64, Removal>,
    /// Schedulers paused by name.
    pub paused: BTreeSet<String>,
    /// Region ids by start key. Invariant: the ranges of `regions` do not overlap, and this
    /// maps each one's start key to its id.
    by_start: BTreeMap<Vec<u8>, u64>,
}

/// Most ids one allocation may take.
pub const MAX_ALLOC_IDS: u64 = 1 << 20;

impl SchedulerState {
    pub fn is_bootstrapped(&self) -> bool {
        self.cluster_id != 0
    }

    /// Applies `command`; deterministic, so every replica answers and ends alike.
    pub fn apply(&mut self, command: &SchedulerCommand) -> SchedulerResponse {
        match command {
            SchedulerCommand::Bootstrap {
                cluster_id,
                stores,
                first_region,
                next_id,
            } => {
                if self.is_bootstrapped() {
                    return SchedulerResponse::AlreadyBootstrapped {
                        cluster_id: self.cluster_id,
                    };
                }
                assert_ne!(*cluster_id, 0, "a cluster id is never zero");
                self.cluster_id = *cluster_id;
                self.next_id = self.next_id.max(*next_id);
                for store in stores {
                    self.stores.insert(store.id, store.clone());
                }
                self.insert_region(first_region.clone());
                SchedulerResponse::Bootstrapped
            }
            SchedulerCommand::AdvanceTso { bound_ms } => {
                self.tso_bound_ms = self.tso_bound_ms.max(*bound_ms);
                SchedulerResponse::TsoBound {
                    bound_ms: self.tso_bound_ms,
                }
            }
            SchedulerCommand::AllocIds { count } => {
                let count = (*count).clamp(1, MAX_ALLOC_IDS);
                let first = self.next_id.max(1);
                self.next_id = first + count;
                SchedulerResponse::Ids { first, count }
            }
            SchedulerCommand::PutStore(store) => {
                if !self.is_bootstrapped() {
                    return SchedulerResponse::NotBootstrapped;
                }
                if let Some(other) = self
                    .stores
                    .values()
                    .find(|s| s.name == store.name && s.id != store.id)
                {
                    return SchedulerResponse::StoreNameTaken {
                        name: store.name.clone(),
                        store_id: other.id,
                    };
                }
                self.stores.insert(store.id, store.clone());
                self.next_id = self.next_id.max(store.id + 1);
                SchedulerResponse::StorePut
            }
            SchedulerCommand::PutRegion(region) => {
                if !self.is_bootstrapped() {
                    return SchedulerResponse::NotBootstrapped;
                }
                if let Some(current) = self.stale_against(region) {
                    return SchedulerResponse::RegionStale { current };
                }
                self.insert_region(region.clone());
                SchedulerResponse::RegionPut
            }
            SchedulerCommand::RemoveStore { id } => {
                if !self.stores.contains_key(id) {
                    return SchedulerResponse::StoreNotFound { id: *id };
                }
                if let Some(removal) = self.removals.get(id) {
                    return SchedulerResponse::StoreRemoval {
                        id: *id,
                        removal: *removal,
                    };
                }
                self.removals.insert(*id, Removal::Offline);
                SchedulerResponse::Done
            }
            SchedulerCommand::BuryStore { id } => {
                match self.removals.get(id) {
                    None if !self.stores.contains_key(id) => {
                        return SchedulerResponse::StoreNotFound { id: *id };
                    }
                    Some(Removal::Offline) => {}
                    // A serving store is not buried without being emptied first.
                    None | Some(Removal::Tombstone) => {
                        return SchedulerResponse::StoreRemoval {
                            id: *id,
                            removal: self.removals.get(id).copied().unwrap_or(Removal::Offline),
                        };
                    }
                }
                let replicas = self.replicas_on(*id);
                if replicas > 0 {
                    return SchedulerResponse::StoreNotEmpty { id: *id, replicas };
                }
                self.removals.insert(*id, Removal::Tombstone);
                SchedulerResponse::Done
            }
            SchedulerCommand::PauseScheduler { name, paused } => {
                if *paused {
                    self.paused.insert(name.clone());
                } else {
                    self.paused.remove(name);
                }
                SchedulerResponse::Done
            }
        }
    }

    /// How many regions have a replica on store `id`.
    pub fn replicas_on(&self, id: u64) -> usize {
        self.regions
            .values()
            .filter(|r| r.peer_on_store(id).is_some())
            .count()
    }

    /// The known region `region` is older than (the same region, or one it overlaps), if any.
    fn stale_against(&self, region: &Region) -> Option<Region> {
        let known = self.regions.get(&region.id).into_iter();
        known
            .chain(self.overlapping(region))
            .find(|known| region.epoch.is_stale_against(&known.epoch))
            .cloned()
    }

    /// The regions whose ranges overlap `region`'s (other than itself).
    fn overlapping<'a>(&'a self, region: &'a Region) -> impl Iterator<Item = &'a Region> + 'a {
        // Every region starting before `region` ends, whose own end is past `region`'s start.
        let upper = if region.end_key.is_empty() {
            std::ops::Bound::Unbounded
        } else {
            std::ops::Bound::Excluded(region.end_key.as_slice())
        };
        self.by_start
            .range::<[u8], _>((std::ops::Bound::Unbounded, upper))
            .rev()
            .map(|(_, id)| &self.regions[id])
            .take_while(move |r| r.end_key.is_empty() || r.end_key.as_slice() > region.start_key.as_slice())
            .filter(move |r| r.id != region.id)
    }

    /// Records `region`, replacing its old layout and every region it overlaps.
    fn insert_region(&mut self, region: Region) {
        let replaced: Vec<u64> = self
            .overlapping(&region)
            .map(|r| r.id)
            .chain(self.regions.get(&region.id).map(|r| r.id))
            .collect();
        for id in replaced {
            if let Some(old) = self.regions.remove(&id) {
                self.by_start.remove(&old.start_key);
            }
        }
        self.next_id = self.next_id.max(region.id + 1);
        for peer in &region.peers {
            self.next_id = self.next_id.max(peer.id + 1);
        }
        self.by_start.insert(region.start_key.clone(), region.id);
        self.regions.insert(region.id, region);
    }

    /// The region whose range holds `key`, if known.
    pub fn region_by_key(&self, key: &[u8]) -> Option<&Region> {
        let (_, id) = self
            .by_start
            .range::<[u8], _>((std::ops::Bound::Unbounded, std::ops::Bound::Included(key)))
            .next_back()?;
        let region = &self.regions[id];
        region.contains(key).then_some(region)
    }

    /// Up to `limit` regions in key order, starting with the one holding `from` (or the first
    /// after it, where the directory has a gap).
    pub fn regions_from(&self, from: &[u8], limit: usize) -> Vec<Region> {
        let first = self
            .region_by_key(from)
            .map_or_else(|| from.to_vec(), |region| region.start_key.clone());
        self.by_start
            .range::<[u8], _>((
                std::ops::Bound::Included(first.as_slice()),
                std::ops::Bound::Unbounded,
            ))
            .take(limit)
            .map(|(_, id)| self.regions[id].clone())
            .collect()
    }

    /// The store named `name`, if it joined.
    pub fn store_by_name(&self, name: &str) -> Option<&StoreMeta> {
        self.stores.values().find(|s| s.name == name)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        w.u64(self.cluster_id)
            .u64(self.tso_bound_ms)
            .u64(self.next_id)
            .u64(self.stores.len() as u64);
        for store in self.stores.values() {
            put_store(&mut w, store);
        }
        w.u64(self.regions.len() as u64);
        for region in self.regions.values() {
            put_region(&mut w, region);
        }
        w.u64(self.removals.len() as u64);
        for (id, removal) in &self.removals {
            w.u64(*id).u8(removal_code(*removal));
        }
        w.u64(self.paused.len() as u64);
        for name in &self.paused {
            w.bytes(name.as_bytes());
        }
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<SchedulerState, DecodeError> {
        let mut r = Reader {
            bytes,
            what: "scheduler state",
        };
        let mut state = SchedulerState {
            cluster_id: r.u64()?,
            tso_bound_ms: r.u64()?,
            next_id: r.u64()?,
            ..SchedulerState::default()
        };
        for _ in 0..count(&mut r)? {
            let store = read_store(&mut r)?;
            state.stores.insert(store.id, store);
        }
        for _ in 0..count(&mut r)? {
            let region = read_region(&mut r)?;
            if state.by_start.contains_key(&region.start_key) || state.regions.contains_key(&region.id) {
                return Err(r.error("overlapping regions"));
            }
            state.by_start.insert(region.start_key.clone(), region.id);
            state.regions.insert(region.id, region);
        }
        for _ in 0..count(&mut r)? {
            let id = r.u64()?;
            let removal = read_removal(&mut r)?;
            state.removals.insert(id, removal);
        }
        for _ in 0..count(&mut r)? {
            state.paused.insert(read_string(&mut r)?);
        }
        r.finish(state)
    }
}

fn removal_code(removal: Removal) -> u8 {
    match removal {
        Removal::Offline => 1,
        Removal::Tombstone => 2,
    }
}

fn read_removal(r: &mut Reader<'_>) -> Result<Removal, DecodeError> {
    match r.u8()? {
        1 => Ok(Removal::Offline),
        2 => Ok(Removal::Tombstone),
        _ => Err(r.error("unknown store removal state")),
    }
}

/// A collection's length, refusing counts no real state has.
fn count(r: &mut Reader<'_>) -> Result<u64, DecodeError> {
    let n = r.u64()?;
    if n > 1 << 32 {
        return Err(r.error("implausible count"));
    }
    Ok(n)
}

fn put_store(w: &mut Writer, store: &StoreMeta) {
    w.u64(store.id)
        .bytes(store.name.as_bytes())
        .bytes(store.peer_addr.as_bytes())
        .bytes(store.resp_addr.as_bytes());
}

fn read_string(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    String::from_utf8(r.bytes()?).map_err(|_| r.error("a name or address that is not UTF-8"))
}

fn read_store(r: &mut Reader<'_>) -> Result<StoreMeta, DecodeError> {
    Ok(StoreMeta {
        id: r.u64()?,
        name: read_string(r)?,
        peer_addr: read_string(r)?,
        resp_addr: read_string(r)?,
    })
}

const CMD_BOOTSTRAP: u8 = 1;
const CMD_ADVANCE_TSO: u8 = 2;
const CMD_ALLOC_IDS: u8 = 3;
const CMD_PUT_STORE: u8 = 4;
const CMD_PUT_REGION: u8 = 5;
const CMD_REMOVE_STORE: u8 = 6;
const CMD_BURY_STORE: u8 = 7;
const CMD_PAUSE_SCHEDULER: u8 = 8;

impl SchedulerCommand {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        match self {
            SchedulerCommand::Bootstrap {
                cluster_id,
                stores,
                first_region,
                next_id,
            } => {
                w.u8(CMD_BOOTSTRAP)
                    .u64(*cluster_id)
                    .u64(*next_id)
                    .u64(stores.len() as u64);
                for store in stores {
                    put_store(&mut w, store);
                }
                put_region(&mut w, first_region);
            }
            SchedulerCommand::AdvanceTso { bound_ms } => {
                w.u8(CMD_ADVANCE_TSO).u64(*bound_ms);
            }
            SchedulerCommand::AllocIds { count } => {
                w.u8(CMD_ALLOC_IDS).u64(*count);
            }
            SchedulerCommand::PutStore(store) => {
                w.u8(CMD_PUT_STORE);
                put_store(&mut w, store);
            }
            SchedulerCommand::PutRegion(region) => {
                w.u8(CMD_PUT_REGION);
                put_region(&mut w, region);
            }
            SchedulerCommand::RemoveStore { id } => {
                w.u8(CMD_REMOVE_STORE).u64(*id);
            }
            SchedulerCommand::BuryStore { id } => {
                w.u8(CMD_BURY_STORE).u64(*id);
            }
            SchedulerCommand::PauseScheduler { name, paused } => {
                w.u8(CMD_PAUSE_SCHEDULER)
                    .bytes(name.as_bytes())
                    .u8(u8::from(*paused));
            }
        }
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<SchedulerCommand, DecodeError> {
        let mut r = Reader {
            bytes,
            what: "scheduler command",
        };
        let command = match r.u8()? {
            CMD_BOOTSTRAP => {
                let cluster_id = r.u64()?;
                let next_id = r.u64()?;
                let n = count(&mut r)?;
                let stores = (0..n).map(|_| read_store(&mut r)).collect::<Result<_, _>>()?;
                SchedulerCommand::Bootstrap {
                    cluster_id,
                    stores,
                    first_region: read_region(&mut r)?,
                    next_id,
                }
            }
            CMD_ADVANCE_TSO => SchedulerCommand::AdvanceTso { bound_ms: r.u64()? },
            CMD_ALLOC_IDS => SchedulerCommand::AllocIds { count: r.u64()? },
            CMD_PUT_STORE => SchedulerCommand::PutStore(read_store(&mut r)?),
            CMD_PUT_REGION => SchedulerCommand::PutRegion(read_region(&mut r)?),
            CMD_REMOVE_STORE => SchedulerCommand::RemoveStore { id: r.u64()? },
            CMD_BURY_STORE => SchedulerCommand::BuryStore { id: r.u64()? },
            CMD_PAUSE_SCHEDULER => SchedulerCommand::PauseScheduler {
                name: read_string(&mut r)?,
                paused: match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(r.error("a pause flag that is neither 0 nor 1")),
                },
            },
            _ => return Err(r.error("unknown command")),
        };
        r.finish(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raftstore::meta::{Peer, RegionEpoch};

    fn region(id: u64, start: &[u8], end: &[u8], version: u64, conf_ver: u64) -> Region {
        Region {
            id,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            epoch: RegionEpoch { conf_ver, version },
            peers: vec![Peer {
                id: id * 10,
                store_id: 1,
            }],
        }
    }

    fn store(id: u64, name: &str) -> StoreMeta {
        StoreMeta {
            id,
            name: name.into(),
            peer_addr: format!("127.0.0.1:2016{id}"),
            resp_addr: format!("127.0.0.1:638{id}"),
        }
    }

    fn bootstrapped() -> SchedulerState {
        let mut state = SchedulerState::default();
        let answer = state.apply(&SchedulerCommand::Bootstrap {
            cluster_id: 77,
            stores: vec![store(1, "n1"), store(2, "n2")],
            first_region: region(1, b"", b"", 1, 1),
            next_id: 100,
        });
        assert_eq!(answer, SchedulerResponse::Bootstrapped);
        state
    }

    #[test]
    fn bootstrap_happens_once() {
        let mut state = bootstrapped();
        let again = state.apply(&SchedulerCommand::Bootstrap {
            cluster_id: 99,
            stores: Vec::new(),
            first_region: region(5, b"", b"", 1, 1),
            next_id: 1,
        });
        assert_eq!(again, SchedulerResponse::AlreadyBootstrapped { cluster_id: 77 });
        assert_eq!(state.region_by_key(b"k").map(|r| r.id), Some(1));
        assert_eq!(
            SchedulerState::default().apply(&SchedulerCommand::PutRegion(region(1, b"", b"", 1, 1))),
            SchedulerResponse::NotBootstrapped
        );
    }

    #[test]
    fn ids_and_timestamp_bounds_only_grow() {
        let mut state = bootstrapped();
        assert_eq!(
            state.apply(&SchedulerCommand::AllocIds { count: 3 }),
            SchedulerResponse::Ids { first: 100, count: 3 }
        );
        assert_eq!(
            state.apply(&SchedulerCommand::AllocIds { count: 1 }),
            SchedulerResponse::Ids { first: 103, count: 1 }
        );
        assert_eq!(
            state.apply(&SchedulerCommand::AdvanceTso { bound_ms: 50 }),
            SchedulerResponse::TsoBound { bound_ms: 50 }
        );
        assert_eq!(
            state.apply(&SchedulerCommand::AdvanceTso { bound_ms: 40 }),
            SchedulerResponse::TsoBound { bound_ms: 50 }
        );
        // A region reported with larger ids than allocated keeps the allocator above them.
        state.apply(&SchedulerCommand::PutRegion(Region {
            peers: vec![Peer { id: 500, store_id: 1 }],
            ..region(1, b"", b"", 2, 1)
        }));
        assert_eq!(
            state.apply(&SchedulerCommand::AllocIds { count: 1 }),
            SchedulerResponse::Ids { first: 501, count: 1 }
        );
    }

    #[test]
    fn store_names_are_unique() {
        let mut state = bootstrapped();
        assert_eq!(
            state.apply(&SchedulerCommand::PutStore(store(3, "n3"))),
            SchedulerResponse::StorePut
        );
        assert_eq!(
            state.apply(&SchedulerCommand::PutStore(store(4, "n3"))),
            SchedulerResponse::StoreNameTaken {
                name: "n3".into(),
                store_id: 3
            }
        );
        // A store may update its own addresses.
        let mut moved = store(3, "n3");
        moved.resp_addr = "127.0.0.1:7000".into();
        assert_eq!(
            state.apply(&SchedulerCommand::PutStore(moved.clone())),
            SchedulerResponse::StorePut
        );
        assert_eq!(state.store_by_name("n3"), Some(&moved));
    }

    /// TinyKV's `TestHeartbeatSplit3C` and the stale-epoch rules of §6.
    #[test]
    fn region_reports_follow_the_epoch_rules() {
        let mut state = bootstrapped();
        // Region 2 [.., m) arrives first, v2: it replaces region 1, so "z" is unknown...
        assert_eq!(
            state.apply(&SchedulerCommand::PutRegion(region(2, b"", b"m", 2, 1))),
            SchedulerResponse::RegionPut
        );
        assert_eq!(state.region_by_key(b"a").map(|r| r.id), Some(2));
        assert_eq!(state.region_by_key(b"z"), None);
        // ...until region 1 [m, ..) v2 arrives.
        state.apply(&SchedulerCommand::PutRegion(region(1, b"m", b"", 2, 1)));
        assert_eq!(state.region_by_key(b"z").map(|r| r.id), Some(1));
        // A stale report of region 1 (old version, even with a newer conf_ver) changes nothing.
        let stale = state.apply(&SchedulerCommand::PutRegion(region(1, b"", b"", 1, 5)));
        assert!(
            matches!(stale, SchedulerResponse::RegionStale { .. }),
            "{stale:?}"
        );
        assert_eq!(state.region_by_key(b"a").map(|r| r.id), Some(2));
        // A report overlapping a newer region is stale too.
        let overlapping = state.apply(&SchedulerCommand::PutRegion(region(9, b"a", b"n", 1, 1)));
        assert!(matches!(overlapping, SchedulerResponse::RegionStale { .. }));
        // Region 1 splits again, [q, ..) reported before [m, q) exists: "n" is unknown for now.
        state.apply(&SchedulerCommand::PutRegion(region(1, b"q", b"", 3, 1)));
        assert_eq!(state.region_by_key(b"n"), None);
        state.apply(&SchedulerCommand::PutRegion(region(3, b"m", b"q", 3, 1)));
        assert_eq!(state.region_by_key(b"n").map(|r| r.id), Some(3));
        // The same epoch with other peers is stored (a peer set change reported again).
        let mut moved = region(3, b"m", b"q", 3, 1);
        moved.peers.push(Peer { id: 31, store_id: 2 });
        assert_eq!(
            state.apply(&SchedulerCommand::PutRegion(moved.clone())),
            SchedulerResponse::RegionPut
        );
        assert_eq!(state.regions[&3], moved);
    }

    #[test]
    fn state_and_commands_round_trip_and_malformed_input_is_refused() {
        let mut state = bootstrapped();
        state.apply(&SchedulerCommand::PutRegion(region(2, b"", b"m", 2, 1)));
        state.apply(&SchedulerCommand::PutRegion(region(1, b"m", b"", 2, 1)));
        state.apply(&SchedulerCommand::AdvanceTso { bound_ms: 1234 });
        state.apply(&SchedulerCommand::RemoveStore { id: 2 });
        state.apply(&SchedulerCommand::PauseScheduler {
            name: "balance-region".into(),
            paused: true,
        });
        let bytes = state.encode();
        assert_eq!(SchedulerState::decode(&bytes).unwrap(), state);
        for len in [0, 8, bytes.len() - 1] {
            assert!(SchedulerState::decode(&bytes[..len]).is_err());
        }
        let commands = [
            SchedulerCommand::Bootstrap {
                cluster_id: 5,
                stores: vec![store(1, "n1")],
                first_region: region(1, b"", b"", 1, 1),
                next_id: 10,
            },
            SchedulerCommand::AdvanceTso { bound_ms: 9 },
            SchedulerCommand::AllocIds { count: 4 },
            SchedulerCommand::PutStore(store(2, "n2")),
            SchedulerCommand::PutRegion(region(3, b"a", b"b", 2, 2)),
            SchedulerCommand::RemoveStore { id: 3 },
            SchedulerCommand::BuryStore { id: 3 },
            SchedulerCommand::PauseScheduler {
                name: "split-checker".into(),
                paused: false,
            },
        ];
        for command in commands {
            let bytes = command.encode();
            assert_eq!(SchedulerCommand::decode(&bytes).unwrap(), command);
            assert!(SchedulerCommand::decode(&bytes[..bytes.len() - 1]).is_err());
        }
        assert!(SchedulerCommand::decode(&[42]).is_err());
    }

    #[test]
    fn a_store_is_buried_only_once_offline_and_empty() {
        let mut state = bootstrapped();
        // Region 1 has its replica on store 1.
        assert_eq!(
            state.apply(&SchedulerCommand::BuryStore { id: 2 }),
            SchedulerResponse::StoreRemoval {
                id: 2,
                removal: Removal::Offline
            },
            "a serving store is not buried"
        );
        assert_eq!(
            state.apply(&SchedulerCommand::RemoveStore { id: 9 }),
            SchedulerResponse::StoreNotFound { id: 9 }
        );
        assert_eq!(
            state.apply(&SchedulerCommand::RemoveStore { id: 1 }),
            SchedulerResponse::Done
        );
        assert_eq!(
            state.apply(&SchedulerCommand::RemoveStore { id: 1 }),
            SchedulerResponse::StoreRemoval {
                id: 1,
                removal: Removal::Offline
            }
        );
        assert_eq!(
            state.apply(&SchedulerCommand::BuryStore { id: 1 }),
            SchedulerResponse::StoreNotEmpty { id: 1, replicas: 1 }
        );
        // Its replica moves to store 2.
        let mut moved = region(1, b"", b"", 1, 3);
        moved.peers = vec![Peer { id: 12, store_id: 2 }];
        state.apply(&SchedulerCommand::PutRegion(moved));
        assert_eq!(
            state.apply(&SchedulerCommand::BuryStore { id: 1 }),
            SchedulerResponse::Done
        );
        assert_eq!(state.removals[&1], Removal::Tombstone);
        assert_eq!(
            state.apply(&SchedulerCommand::RemoveStore { id: 1 }),
            SchedulerResponse::StoreRemoval {
                id: 1,
                removal: Removal::Tombstone
            }
        );
    }

    #[test]
    fn pauses_are_part_of_the_state() {
        let mut state = bootstrapped();
        let pause = |paused| SchedulerCommand::PauseScheduler {
            name: "balance-leader".into(),
            paused,
        };
        state.apply(&pause(true));
        state.apply(&pause(true));
        assert!(state.paused.contains("balance-leader"));
        let restored = SchedulerState::decode(&state.encode()).unwrap();
        assert!(restored.paused.contains("balance-leader"));
        state.apply(&pause(false));
        assert!(state.paused.is_empty());
    }
}
