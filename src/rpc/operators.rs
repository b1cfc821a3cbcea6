//! The operator runner: on the node whose scheduler replica leads, every
//! `scheduler.schedule_interval_ms` it takes a snapshot of the cluster (regions with their
//! leaders and sizes, stores with their states), asks the decisions of
//! `scheduler::checkers` what to do, and runs each answer as an operator, a sequence of steps
//! done through [`Admin`] (add a peer, remove a peer, move a lead).
//!
//! - **One operator per region** at a time (`scheduler::board`), at most
//!   [`MAX_REPLICA_OPERATORS`] from the replica checker and one from each balance scheduler.
//! - **Steps with a timeout.** Each step is done once the scheduler's picture shows it; a step
//!   not done within `Admin`'s 20 s ends the operator as timed out (the next round decides
//!   afresh).
//! - **Cancelled when the region moves.** Before each step the region's epoch must be what the
//!   operator expects: the version it started with (no split since) and the `conf_ver` it
//!   started with plus one per membership step it did. Anything else (another operator, a
//!   manual `CLUSTER ADD-PEER`, a split) cancels it, as does the region vanishing or this node
//!   ceasing to lead the scheduler.
//! - **Paused schedulers** (the replicated set `CLUSTER SCHEDULER PAUSE` writes) start nothing;
//!   their running operators finish.
//! - **Incomplete pictures wait.** Regions no leader has reported to this scheduler leader yet
//!   are left alone, and the balance schedulers skip a round while any region is unreported
//!   (just after a scheduler leader change, sizes are unknown).
//! - **Store removal.** The replica checker moves replicas off `Offline` stores like off `Down`
//!   ones; an `Offline` store no region has a replica on is marked `Tombstone`.

use std::sync::Arc;
use std::time::Duration;

use super::admin::Admin;
use crate::raftstore::meta::RegionEpoch;
use crate::scheduler::board::{BALANCE_LEADER, BALANCE_REGION, Outcome, REPLICA_CHECKER};
use crate::scheduler::checkers::{self, Proposal, Step};
use crate::scheduler::service::{RegionInfo, RegionQuery, Scheduler, SchedulerApi, StoreInfo, StoreState};

/// Most replica-checker operators running at once.
pub const MAX_REPLICA_OPERATORS: usize = 4;

/// See the module docs.
pub struct OperatorRunner<S: SchedulerApi> {
    local: Arc<Scheduler>,
    admin: Arc<Admin<S>>,
    interval: Duration,
}

impl<S: SchedulerApi> OperatorRunner<S> {
    /// `local`: this node's scheduler replica; `admin` does the steps.
    pub fn new(local: Arc<Scheduler>, admin: Admin<S>, interval: Duration) -> Self {
        OperatorRunner {
            local,
            admin: Arc::new(admin),
            interval,
        }
    }

    /// Runs rounds until the task is dropped.
    pub async fn run(self) {
        let mut interval = tokio::time::interval(self.interval.max(Duration::from_millis(10)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if self.local.replica().status().ready_leader {
                self.round().await;
            }
        }
    }

    async fn round(&self) {
        let (Ok(paused), Ok(stores), Ok(regions)) = (
            self.local.paused().await,
            self.local.stores().await,
            self.local
                .regions(RegionQuery::From {
                    from: Vec::new(),
                    limit: usize::MAX,
                })
                .await,
        ) else {
            return;
        };
        self.bury_empty_stores(&stores, &regions).await;
        let board = self.local.board();
        let max_replicas = self.local.max_replicas();
        let reported: Vec<RegionInfo> = regions.iter().filter(|i| i.leader.is_some()).cloned().collect();
        if !paused.contains(REPLICA_CHECKER) {
            for info in &reported {
                if board.running_of(REPLICA_CHECKER) >= MAX_REPLICA_OPERATORS {
                    break;
                }
                if board.is_busy(info.region.id) {
                    continue;
                }
                if let Some(proposal) = checkers::replica_check(info, &regions, &stores, max_replicas) {
                    self.start(REPLICA_CHECKER, proposal, info.region.epoch);
                }
            }
        }
        if reported.len() < regions.len() || regions.iter().any(|i| i.stats.is_none()) {
            return;
        }
        let balance = |name: &str| !paused.contains(name) && board.running_of(name) == 0;
        if balance(BALANCE_LEADER)
            && let Some(proposal) = checkers::balance_leader(&regions, &stores)
        {
            self.start_on(BALANCE_LEADER, proposal, &regions);
        }
        if balance(BALANCE_REGION)
            && let Some(proposal) = checkers::balance_region(&regions, &stores, max_replicas)
        {
            self.start_on(BALANCE_REGION, proposal, &regions);
        }
    }

    /// Marks `Tombstone` each `Offline` store no region has a replica on.
    async fn bury_empty_stores(&self, stores: &[StoreInfo], regions: &[RegionInfo]) {
        for store in stores.iter().filter(|s| s.state == StoreState::Offline) {
            let id = store.meta.id;
            if regions.iter().any(|i| i.region.peer_on_store(id).is_some()) {
                continue;
            }
            match self.local.bury_store(id).await {
                Ok(()) => tracing::info!(
                    store = id,
                    "store removed: it holds no replica and is now Tombstone"
                ),
                Err(e) => tracing::debug!(store = id, error = %e, "store not buried yet"),
            }
        }
    }

    fn start_on(&self, scheduler: &'static str, proposal: Proposal, regions: &[RegionInfo]) {
        if let Some(info) = regions.iter().find(|i| i.region.id == proposal.region_id) {
            self.start(scheduler, proposal, info.region.epoch);
        }
    }

    /// Starts `proposal` as an operator unless its region is busy.
    fn start(&self, scheduler: &'static str, proposal: Proposal, epoch: RegionEpoch) {
        let region_id = proposal.region_id;
        if !self
            .local
            .board()
            .start(region_id, scheduler, proposal.steps.clone())
        {
            return;
        }
        tracing::info!(region = region_id, scheduler, steps = ?proposal.steps, "operator started");
        let local = self.local.clone();
        let admin = self.admin.clone();
        tokio::spawn(async move {
            let outcome = execute(&local, &admin, region_id, epoch, &proposal.steps).await;
            tracing::info!(region = region_id, scheduler, ?outcome, "operator ended");
            local.board().end(region_id, outcome);
        });
    }
}

/// Does `steps` on region `region_id` in order; see the module docs.
async fn execute<S: SchedulerApi>(
    local: &Scheduler,
    admin: &Admin<S>,
    region_id: u64,
    epoch: RegionEpoch,
    steps: &[Step],
) -> Outcome {
    let mut conf_ver = epoch.conf_ver;
    for (i, step) in steps.iter().enumerate() {
        local.board().advance(region_id, i);
        if !local.replica().status().ready_leader {
            return Outcome::Cancelled;
        }
        let now = match local.regions(RegionQuery::Id(region_id)).await {
            Ok(found) => found.into_iter().next(),
            Err(_) => return Outcome::Cancelled,
        };
        let Some(now) = now else {
            return Outcome::Cancelled;
        };
        if now.region.epoch.version != epoch.version || now.region.epoch.conf_ver != conf_ver {
            tracing::info!(
                region = region_id,
                expected = ?RegionEpoch { conf_ver, version: epoch.version },
                found = ?now.region.epoch,
                "operator cancelled: the region changed under it"
            );
            return Outcome::Cancelled;
        }
        let result = match *step {
            Step::AddPeer { store } => admin.add_peer(region_id, store).await,
            Step::RemovePeer { store } => admin.remove_peer(region_id, store).await,
            Step::TransferLeader { store } => admin.move_leader(region_id, store).await,
        };
        match result {
            Ok(()) => {}
            Err(e) if e.starts_with("timed out") => {
                tracing::info!(region = region_id, step = ?step, error = %e, "operator step timed out");
                return Outcome::TimedOut;
            }
            Err(e) => {
                tracing::info!(region = region_id, step = ?step, error = %e, "operator step refused; cancelled");
                return Outcome::Cancelled;
            }
        }
        if !matches!(step, Step::TransferLeader { .. }) {
            conf_ver += 1;
        }
    }
    Outcome::Finished
}
