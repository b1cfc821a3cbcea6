//! [`Admin`]: the cluster administration `CLUSTER` offers over RESP, from any node. What the
//! cluster looks like comes from the scheduler. A change (split, leader transfer, peer added
//! or removed) goes to the scheduler's leader as a manual operator (`rpc::operators`), which
//! runs its steps with the functions here: each asks the store that leads the region concerned
//! (the scheduler's last word on who leads, then every store holding a peer, since that word
//! may be a heartbeat old), and is done once the scheduler's picture shows the change, so a
//! client that reads the picture after `+OK` sees it.

use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use super::convert::peer_to_proto;
use super::proto;
use super::proto::kv_client::KvClient;
use crate::percolator::key::Key;
use crate::raftstore::meta::Peer;
use crate::resp::admin::ClusterAdmin;
use crate::scheduler::board::SchedulerStatus;
use crate::scheduler::checkers::Step;
use crate::scheduler::service::{RegionInfo, RegionQuery, SchedulerApi, StoreInfo};

/// How long a split or a leader transfer may take before the command gives up.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);
/// The start of every error that says an operation ran out of time ([`is_timeout`]).
const TIMED_OUT: &str = "timed out";

/// An error saying `what` did not happen in time.
fn timed_out(what: impl std::fmt::Display) -> String {
    format!("{TIMED_OUT}: {what}")
}

/// Whether an error of [`Admin`] says an operation ran out of time (rather than was refused).
pub fn is_timeout(error: &str) -> bool {
    error.starts_with(TIMED_OUT)
}

/// Between looks at whether it is done.
const POLL: Duration = Duration::from_millis(100);

/// What [`Admin`] asks of a region's leader.
enum LeaderRequest {
    Split(Vec<u8>),
    TransferLeader { store: u64 },
    ChangePeer { remove: bool, peer: Peer },
}

/// See the module docs.
pub struct Admin<S: SchedulerApi> {
    scheduler: S,
}

impl<S: SchedulerApi> Admin<S> {
    pub fn new(scheduler: S) -> Self {
        Admin { scheduler }
    }

    async fn region(&self, query: RegionQuery) -> Result<Option<RegionInfo>, String> {
        let regions = self.scheduler.regions(query).await.map_err(|e| e.to_string())?;
        Ok(regions.into_iter().next())
    }

    /// The peer addresses of the stores holding `info`'s region, its reported leader first.
    async fn candidates(&self, info: &RegionInfo) -> Result<Vec<String>, String> {
        let stores = self.scheduler.stores().await.map_err(|e| e.to_string())?;
        let leader = info.leader.map(|p| p.store_id);
        let others = info
            .region
            .peers
            .iter()
            .map(|p| p.store_id)
            .filter(|id| Some(*id) != leader);
        Ok(leader
            .into_iter()
            .chain(others)
            .filter_map(|id| stores.iter().find(|s| s.meta.id == id))
            .map(|s| format!("http://{}", s.meta.peer_addr))
            .collect())
    }

    pub async fn split_at(&self, raw: Vec<u8>) -> Result<u64, String> {
        let encoded = Key::from_raw(&raw).as_encoded().to_vec();
        let deadline = Instant::now() + OPERATION_TIMEOUT;
        let mut proposed = false;
        // The region split, once asked: done when both halves are reported.
        let mut split: Option<u64> = None;
        loop {
            let found = self.region(RegionQuery::Key(encoded.clone())).await?;
            let Some(info) = found else {
                // Between the reports of a split's two halves the directory has a gap.
                if !proposed {
                    return Err("no region holds that key".into());
                }
                if Instant::now() >= deadline {
                    return Err(timed_out("the split region was not reported"));
                }
                tokio::time::sleep(POLL).await;
                continue;
            };
            if info.region.start_key == encoded {
                let left_reported = match split {
                    Some(left) => self
                        .region(RegionQuery::Id(left))
                        .await?
                        .is_some_and(|l| l.region.end_key == encoded),
                    None => true,
                };
                if left_reported {
                    return Ok(info.region.id);
                }
            } else if !proposed {
                proposed = self.ask_leader(&info, &LeaderRequest::Split(raw.clone())).await;
                split = Some(info.region.id);
            }
            if Instant::now() >= deadline {
                return Err(timed_out(format!(
                    "region {} was not split within {} s",
                    info.region.id,
                    OPERATION_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn move_leader(&self, region_id: u64, store_id: u64) -> Result<(), String> {
        self.known_store(store_id).await?;
        let deadline = Instant::now() + OPERATION_TIMEOUT;
        let mut asked = Instant::now() - Duration::from_secs(1);
        loop {
            let info = self.known_region(region_id).await?;
            if !info.region.peers.iter().any(|p| p.store_id == store_id) {
                return Err(format!("store {store_id} has no peer of region {region_id}"));
            }
            if info.leader.is_some_and(|l| l.store_id == store_id) {
                return Ok(());
            }
            // Ask again each second: a transfer to a peer that lags is dropped by raft.
            if asked.elapsed() >= Duration::from_secs(1) {
                asked = Instant::now();
                self.ask_leader(&info, &LeaderRequest::TransferLeader { store: store_id })
                    .await;
            }
            if Instant::now() >= deadline {
                return Err(timed_out(format!(
                    "store {store_id} did not take the lead of region {region_id} within {} s",
                    OPERATION_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn known_store(&self, store_id: u64) -> Result<(), String> {
        let stores = self.scheduler.stores().await.map_err(|e| e.to_string())?;
        if stores.iter().any(|s| s.meta.id == store_id) {
            Ok(())
        } else {
            Err(format!("unknown store {store_id}"))
        }
    }

    async fn known_region(&self, region_id: u64) -> Result<RegionInfo, String> {
        self.region(RegionQuery::Id(region_id))
            .await?
            .ok_or_else(|| format!("unknown region {region_id}"))
    }

    /// Sends `request` to the store leading `info`'s region (trying its peers' stores);
    /// whether one took it.
    async fn ask_leader(&self, info: &RegionInfo, request: &LeaderRequest) -> bool {
        let region_id = info.region.id;
        for addr in self.candidates(info).await.unwrap_or_default() {
            let Ok(mut client) = KvClient::connect(addr).await else {
                continue;
            };
            let error = match request {
                LeaderRequest::Split(key) => client
                    .split_region(proto::SplitRegionRequest { key: key.clone() })
                    .await
                    .map(|reply| reply.into_inner().error),
                LeaderRequest::TransferLeader { store } => client
                    .transfer_leader(proto::TransferLeaderRequest {
                        region_id,
                        to_store: *store,
                    })
                    .await
                    .map(|reply| reply.into_inner().error),
                LeaderRequest::ChangePeer { remove, peer } => client
                    .change_peer(proto::ChangePeerRequest {
                        region_id,
                        remove: *remove,
                        peer: Some(peer_to_proto(*peer)),
                    })
                    .await
                    .map(|reply| reply.into_inner().error),
            };
            if matches!(error, Ok(None)) {
                return true;
            }
        }
        false
    }

    /// Proposes a membership change at the region's leader until one takes it.
    async fn propose_change(&self, region_id: u64, remove: bool, peer: Peer) -> Result<(), String> {
        let deadline = Instant::now() + OPERATION_TIMEOUT;
        let request = LeaderRequest::ChangePeer { remove, peer };
        while !self
            .ask_leader(&self.known_region(region_id).await?, &request)
            .await
        {
            if Instant::now() >= deadline {
                let verb = if remove { "remove" } else { "add" };
                return Err(timed_out(format!(
                    "region {region_id} did not {verb} its peer on store {}",
                    peer.store_id
                )));
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    /// Runs `steps` as a manual operator at the scheduler's leader (`rpc::operators`).
    async fn run_operator(&self, region_id: u64, steps: Vec<Step>) -> Result<(), String> {
        self.scheduler
            .run_operator(region_id, steps)
            .await
            .map_err(|e| e.to_string())
    }

    /// Waits until the scheduler's picture of the region satisfies `done`.
    async fn until(
        &self,
        region_id: u64,
        what: &str,
        done: impl Fn(&RegionInfo) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + OPERATION_TIMEOUT;
        loop {
            if done(&self.known_region(region_id).await?) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(timed_out(format!(
                    "{what} within {} s",
                    OPERATION_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn add_peer(&self, region_id: u64, store_id: u64) -> Result<(), String> {
        self.known_store(store_id).await?;
        let info = self.known_region(region_id).await?;
        if info.region.peers.iter().any(|p| p.store_id == store_id) {
            return Err(format!(
                "store {store_id} already has a peer of region {region_id}"
            ));
        }
        let id = self.scheduler.alloc_ids(1).await.map_err(|e| e.to_string())?;
        let peer = Peer { id, store_id };
        self.propose_change(region_id, false, peer).await?;
        self.until(region_id, "the new peer was not reported", |info| {
            info.region.peers.contains(&peer)
        })
        .await
    }

    pub async fn remove_peer(&self, region_id: u64, store_id: u64) -> Result<(), String> {
        self.known_store(store_id).await?;
        let info = self.known_region(region_id).await?;
        let Some(peer) = info.region.peers.iter().copied().find(|p| p.store_id == store_id) else {
            return Err(format!("store {store_id} has no peer of region {region_id}"));
        };
        if info.region.peers.len() == 1 {
            return Err(format!(
                "the peer on store {store_id} is the last replica of region {region_id}"
            ));
        }
        // A leader does not remove itself: hand the lead to another peer first.
        if info.leader.is_some_and(|l| l.store_id == store_id) {
            let other = info
                .region
                .peers
                .iter()
                .find(|p| p.store_id != store_id)
                .expect("more than one peer");
            self.move_leader(region_id, other.store_id).await?;
        }
        self.propose_change(region_id, true, peer).await?;
        self.until(region_id, "the removal was not reported", |info| {
            !info.region.peers.contains(&peer)
        })
        .await
    }
}

impl<S: SchedulerApi> ClusterAdmin for Admin<S> {
    fn regions(&self, query: RegionQuery) -> BoxFuture<'_, Result<Vec<RegionInfo>, String>> {
        Box::pin(async move { self.scheduler.regions(query).await.map_err(|e| e.to_string()) })
    }

    fn stores(&self) -> BoxFuture<'_, Result<Vec<StoreInfo>, String>> {
        Box::pin(async move { self.scheduler.stores().await.map_err(|e| e.to_string()) })
    }

    fn split(&self, key: Vec<u8>) -> BoxFuture<'_, Result<u64, String>> {
        Box::pin(async move {
            let encoded = Key::from_raw(&key).as_encoded().to_vec();
            let info = self
                .region(RegionQuery::Key(encoded.clone()))
                .await?
                .ok_or_else(|| "no region holds that key".to_string())?;
            if info.region.start_key != encoded {
                self.run_operator(info.region.id, vec![Step::Split { key }])
                    .await?;
            }
            let info = self
                .region(RegionQuery::Key(encoded))
                .await?
                .ok_or_else(|| "no region holds that key".to_string())?;
            Ok(info.region.id)
        })
    }

    fn transfer_leader(&self, region_id: u64, store_id: u64) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.run_operator(region_id, vec![Step::TransferLeader { store: store_id }]))
    }

    fn add_peer(&self, region_id: u64, store_id: u64) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.run_operator(region_id, vec![Step::AddPeer { store: store_id }]))
    }

    fn remove_peer(&self, region_id: u64, store_id: u64) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.run_operator(region_id, vec![Step::RemovePeer { store: store_id }]))
    }

    fn remove_store(&self, store_id: u64) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.scheduler
                .remove_store(store_id)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn scheduler_status(&self) -> BoxFuture<'_, Result<SchedulerStatus, String>> {
        Box::pin(async move { self.scheduler.status().await.map_err(|e| e.to_string()) })
    }

    fn pause_scheduler(&self, name: String, paused: bool) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.scheduler
                .pause_scheduler(name, paused)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
