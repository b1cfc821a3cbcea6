//! What `CLUSTER`'s administration subcommands ask of the cluster: the scheduler's picture of
//! regions and stores, and changes to them (`rpc::admin` does them from any node). Object
//! safe, so the RESP server need not be generic over the scheduler client.

use futures_util::future::BoxFuture;

use crate::scheduler::board::SchedulerStatus;
use crate::scheduler::service::{RegionInfo, RegionQuery, StoreInfo};

pub trait ClusterAdmin: Send + Sync + 'static {
    fn regions(&self, query: RegionQuery) -> BoxFuture<'_, Result<Vec<RegionInfo>, String>>;
    fn stores(&self) -> BoxFuture<'_, Result<Vec<StoreInfo>, String>>;
    /// Splits the region holding the store key `key` (raw) at it; done once the scheduler
    /// shows a region starting there, whose id it returns.
    fn split(&self, key: Vec<u8>) -> BoxFuture<'_, Result<u64, String>>;
    /// Moves the lead of a region to its peer on a store; done once the scheduler shows it.
    fn transfer_leader(&self, region_id: u64, store_id: u64) -> BoxFuture<'_, Result<(), String>>;
    /// Adds a peer of a region on a store; done once the scheduler shows it.
    fn add_peer(&self, region_id: u64, store_id: u64) -> BoxFuture<'_, Result<(), String>>;
    /// Removes a region's peer on a store (moving the lead away first if it is there); done
    /// once the scheduler shows it.
    fn remove_peer(&self, region_id: u64, store_id: u64) -> BoxFuture<'_, Result<(), String>>;
    /// Starts emptying a store (`Offline`; `Tombstone` once empty).
    fn remove_store(&self, store_id: u64) -> BoxFuture<'_, Result<(), String>>;
    /// The schedulers, their counters and running operators.
    fn scheduler_status(&self) -> BoxFuture<'_, Result<SchedulerStatus, String>>;
    /// Pauses or resumes a scheduler by name.
    fn pause_scheduler(&self, name: String, paused: bool) -> BoxFuture<'_, Result<(), String>>;
}
