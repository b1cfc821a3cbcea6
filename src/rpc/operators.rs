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
//! - **Manual operators.** `CLUSTER SPLIT`, `TRANSFER-LEADER`, `ADD-PEER` and `REMOVE-PEER`,
//!   from any node, reach the scheduler's leader (`SchedulerApi::run_operator`) and run here
//!   as operators of `admin`: one per region with the schedulers' own (a busy region refuses
//!   them, naming the operator that holds it), visible in `CLUSTER SCHEDULER`, answered when
//!   done.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::admin::Admin;
use crate::raftstore::meta::RegionEpoch;
use crate::scheduler::board::{BALANCE_LEADER, BALANCE_REGION, OperatorExecutor, Outcome, REPLICA_CHECKER};
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
    /// `local`: this node's scheduler replica; `admin` does the steps. Registers itself with
    /// `local` as the runner of manual operators.
    pub fn new(local: Arc<Scheduler>, admin: Admin<S>, interval: Duration) -> Self {
        let admin = Arc::new(admin);
        local.set_executor(Arc::new(ManualOperators {
            local: local.clone(),
            admin: admin.clone(),
        }));
        OperatorRunner {
            local,
            admin,
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
            let (outcome, why) = execute(&local, &admin, region_id, epoch, &proposal.steps).await;
            tracing::info!(region = region_id, scheduler, ?outcome, why, "operator ended");
            local.board().end(region_id, outcome);
        });
    }
}

/// Runs manual operators on the board of the scheduler's leader.
struct ManualOperators<S: SchedulerApi> {
    local: Arc<Scheduler>,
    admin: Arc<Admin<S>>,
}

impl<S: SchedulerApi> OperatorExecutor for ManualOperators<S> {
    fn run(
        &self,
        scheduler: &'static str,
        region_id: u64,
        steps: Vec<Step>,
    ) -> BoxFuture<'static, Result<(), String>> {
        let (local, admin) = (self.local.clone(), self.admin.clone());
        Box::pin(async move {
            let found = local
                .regions(RegionQuery::Id(region_id))
                .await
                .map_err(|e| e.to_string())?;
            let Some(info) = found.into_iter().next() else {
                return Err(format!("unknown region {region_id}"));
            };
            if let Err(holder) = local.board().try_start(region_id, scheduler, steps.clone()) {
                return Err(format!(
                    "region {region_id} is busy: an operator of {holder} runs on it (see CLUSTER SCHEDULER)"
                ));
            }
            let (outcome, why) = execute(&local, &admin, region_id, info.region.epoch, &steps).await;
            local.board().end(region_id, outcome);
            match outcome {
                Outcome::Finished => Ok(()),
                _ => Err(why.unwrap_or_else(|| format!("{outcome:?}"))),
            }
        })
    }
}

/// Does `steps` on region `region_id` in order; see the module docs. When it does not finish,
/// also says why.
async fn execute<S: SchedulerApi>(
    local: &Scheduler,
    admin: &Admin<S>,
    region_id: u64,
    epoch: RegionEpoch,
    steps: &[Step],
) -> (Outcome, Option<String>) {
    let mut expected = epoch;
    for (i, step) in steps.iter().enumerate() {
        local.board().advance(region_id, i);
        if !local.replica().status().ready_leader {
            return (
                Outcome::Cancelled,
                Some("cancelled: this node stopped leading the scheduler".into()),
            );
        }
        let now = match local.regions(RegionQuery::Id(region_id)).await {
            Ok(found) => found.into_iter().next(),
            Err(e) => return (Outcome::Cancelled, Some(format!("cancelled: {e}"))),
        };
        let Some(now) = now else {
            return (
                Outcome::Cancelled,
                Some(format!("cancelled: region {region_id} is gone")),
            );
        };
        if now.region.epoch != expected {
            let why = format!(
                "cancelled: region {region_id} changed under the operator (epoch {:?}, expected {expected:?})",
                now.region.epoch
            );
            tracing::info!(region = region_id, why, "operator cancelled");
            return (Outcome::Cancelled, Some(why));
        }
        let result = match step {
            Step::AddPeer { store } => admin.add_peer(region_id, *store).await,
            Step::RemovePeer { store } => admin.remove_peer(region_id, *store).await,
            Step::TransferLeader { store } => admin.move_leader(region_id, *store).await,
            Step::Split { key } => admin.split_at(key.clone()).await.map(|_| ()),
        };
        if let Err(e) = result {
            let outcome = if super::admin::is_timeout(&e) {
                Outcome::TimedOut
            } else {
                Outcome::Cancelled
            };
            tracing::info!(region = region_id, step = ?step, error = %e, ?outcome, "operator step failed");
            return (outcome, Some(e));
        }
        match step {
            Step::AddPeer { .. } | Step::RemovePeer { .. } => expected.conf_ver += 1,
            Step::Split { .. } => expected.version += 1,
            Step::TransferLeader { .. } => {}
        }
    }
    (Outcome::Finished, None)
}
