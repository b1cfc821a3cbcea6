//! The scheduler's working picture of its own work: which operators run on which regions, and
//! what each scheduler has done since this node last became the scheduler's leader. Soft
//! state, kept by the leader's operator runner (`rpc::operators`) and shown by `CLUSTER
//! SCHEDULER`; what must outlive a leader change (which schedulers are paused, which stores
//! are being removed) is in the replicated state instead.

use std::collections::BTreeMap;
use std::time::Instant;

use parking_lot::Mutex;

use super::checkers::Step;

pub const BALANCE_LEADER: &str = "balance-leader";
pub const BALANCE_REGION: &str = "balance-region";
pub const REPLICA_CHECKER: &str = "replica-checker";
pub const SPLIT_CHECKER: &str = "split-checker";

/// Every scheduler, in the order `CLUSTER SCHEDULER` lists them.
pub const SCHEDULERS: [&str; 4] = [BALANCE_LEADER, BALANCE_REGION, REPLICA_CHECKER, SPLIT_CHECKER];

/// The names `CLUSTER SCHEDULER` shows counters for: the schedulers, then manual operators.
pub const SHOWN: [&str; 5] = [
    BALANCE_LEADER,
    BALANCE_REGION,
    REPLICA_CHECKER,
    SPLIT_CHECKER,
    ADMIN,
];

/// How one operator ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every step done.
    Finished,
    /// The region's epoch moved past it, or the region went away, or this node stopped
    /// leading the scheduler.
    Cancelled,
    /// A step did not finish within its time.
    TimedOut,
}

/// What one scheduler's operators came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub created: u64,
    pub finished: u64,
    pub cancelled: u64,
    pub timed_out: u64,
}

/// A running operator.
#[derive(Clone, Debug)]
pub struct Running {
    pub scheduler: &'static str,
    pub steps: Vec<Step>,
    /// The step under way (index into `steps`).
    pub step: usize,
    pub started: Instant,
}

/// See the module docs.
#[derive(Default)]
pub struct Board {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    running: BTreeMap<u64, Running>,
    counters: BTreeMap<&'static str, Counters>,
}

impl Board {
    /// Registers an operator on `region_id` unless one runs there; whether it was registered.
    pub fn start(&self, region_id: u64, scheduler: &'static str, steps: Vec<Step>) -> bool {
        self.try_start(region_id, scheduler, steps).is_ok()
    }

    /// [`Board::start`], answering which scheduler's operator holds the region when busy.
    pub fn try_start(
        &self,
        region_id: u64,
        scheduler: &'static str,
        steps: Vec<Step>,
    ) -> Result<(), &'static str> {
        let mut inner = self.inner.lock();
        if let Some(running) = inner.running.get(&region_id) {
            return Err(running.scheduler);
        }
        inner.running.insert(
            region_id,
            Running {
                scheduler,
                steps,
                step: 0,
                started: Instant::now(),
            },
        );
        inner.counters.entry(scheduler).or_default().created += 1;
        Ok(())
    }

    /// The operator on `region_id` moves on to step `step`.
    pub fn advance(&self, region_id: u64, step: usize) {
        if let Some(running) = self.inner.lock().running.get_mut(&region_id) {
            running.step = step;
        }
    }

    /// The operator on `region_id` ended.
    pub fn end(&self, region_id: u64, outcome: Outcome) {
        let mut inner = self.inner.lock();
        let Some(running) = inner.running.remove(&region_id) else {
            return;
        };
        let counters = inner.counters.entry(running.scheduler).or_default();
        match outcome {
            Outcome::Finished => counters.finished += 1,
            Outcome::Cancelled => counters.cancelled += 1,
            Outcome::TimedOut => counters.timed_out += 1,
        }
    }

    pub fn is_busy(&self, region_id: u64) -> bool {
        self.inner.lock().running.contains_key(&region_id)
    }

    /// How many operators of `scheduler` run.
    pub fn running_of(&self, scheduler: &str) -> usize {
        self.inner
            .lock()
            .running
            .values()
            .filter(|r| r.scheduler == scheduler)
            .count()
    }

    pub fn running(&self) -> Vec<(u64, Running)> {
        self.inner
            .lock()
            .running
            .iter()
            .map(|(id, r)| (*id, r.clone()))
            .collect()
    }

    pub fn counters(&self, scheduler: &str) -> Counters {
        self.inner
            .lock()
            .counters
            .get(scheduler)
            .copied()
            .unwrap_or_default()
    }
}

/// One step as `CLUSTER SCHEDULER` shows it.
pub fn describe(step: &Step) -> String {
    match step {
        Step::AddPeer { store } => format!("add peer on store {store}"),
        Step::RemovePeer { store } => format!("remove peer on store {store}"),
        Step::TransferLeader { store } => format!("transfer leader to store {store}"),
        Step::Split { key } => format!("split at {}", String::from_utf8_lossy(key).escape_debug()),
    }
}

/// The scheduler name manual operators (`CLUSTER SPLIT`, `TRANSFER-LEADER`, `ADD-PEER`,
/// `REMOVE-PEER`) run under.
pub const ADMIN: &str = "admin";

/// Runs an operator to its end on the scheduler's leader: what the scheduler service hands
/// manual operators to (implemented by `rpc::operators`, registered by the node).
pub trait OperatorExecutor: Send + Sync + 'static {
    /// Runs `steps` on `region_id` as one operator of `scheduler`; `Err` says why it did not
    /// finish (the region busy with another operator, a step refused, timed out, cancelled).
    fn run(
        &self,
        scheduler: &'static str,
        region_id: u64,
        steps: Vec<Step>,
    ) -> futures_util::future::BoxFuture<'static, Result<(), String>>;
}

/// What `CLUSTER SCHEDULER` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerStatus {
    /// The node whose replica leads the scheduler (and answered).
    pub leader: String,
    pub schedulers: Vec<SchedulerSummary>,
    pub operators: Vec<OperatorSummary>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulerSummary {
    pub name: String,
    pub paused: bool,
    /// Named counters, in a fixed order.
    pub counters: Vec<(String, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorSummary {
    pub region_id: u64,
    pub scheduler: String,
    pub steps: Vec<String>,
    /// The step under way, from 0.
    pub step: u64,
    pub age_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_operator_per_region_and_every_end_is_counted() {
        let board = Board::default();
        let steps = vec![Step::AddPeer { store: 4 }, Step::RemovePeer { store: 1 }];
        assert!(board.start(7, BALANCE_REGION, steps.clone()));
        assert!(
            !board.start(7, REPLICA_CHECKER, steps.clone()),
            "region 7 is busy"
        );
        assert_eq!(
            board.try_start(7, ADMIN, steps.clone()),
            Err(BALANCE_REGION),
            "and says by whom"
        );
        assert!(board.is_busy(7));
        board.advance(7, 1);
        assert_eq!(board.running()[0].1.step, 1);
        assert_eq!(board.running_of(BALANCE_REGION), 1);
        board.end(7, Outcome::TimedOut);
        board.end(7, Outcome::Finished); // Already ended: not counted twice.
        assert!(board.start(7, BALANCE_REGION, steps));
        board.end(7, Outcome::Cancelled);
        assert_eq!(
            board.counters(BALANCE_REGION),
            Counters {
                created: 2,
                finished: 0,
                cancelled: 1,
                timed_out: 1
            }
        );
        assert_eq!(board.counters(REPLICA_CHECKER), Counters::default());
    }
}
