//! What `CLUSTER`'s administration subcommands ask of the cluster: the scheduler's picture of
//! regions and stores, wherever its leader runs. [`ClusterAdmin`] is the object-safe face of
//! any [`SchedulerApi`], so the RESP server need not be generic over the scheduler client.

use futures_util::future::BoxFuture;

use crate::scheduler::service::{RegionInfo, RegionQuery, SchedulerApi, StoreInfo};

pub trait ClusterAdmin: Send + Sync + 'static {
    fn regions(&self, query: RegionQuery) -> BoxFuture<'_, Result<Vec<RegionInfo>, String>>;
    fn stores(&self) -> BoxFuture<'_, Result<Vec<StoreInfo>, String>>;
}

impl<S: SchedulerApi> ClusterAdmin for S {
    fn regions(&self, query: RegionQuery) -> BoxFuture<'_, Result<Vec<RegionInfo>, String>> {
        Box::pin(async move {
            SchedulerApi::regions(self, query)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn stores(&self) -> BoxFuture<'_, Result<Vec<StoreInfo>, String>> {
        Box::pin(async move { SchedulerApi::stores(self).await.map_err(|e| e.to_string()) })
    }
}
