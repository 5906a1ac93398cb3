//! A tenant's pools of numbers and their rotation strategy: listing them, and creating one or
//! changing its strategy (which the scheduler takes at once).

use std::sync::Arc;

use bzapper_store::{Pool, Store, Strategy};

use bzapper_core::quota::Limit;

use crate::app::error::AppResult;
use crate::app::quotas;
use crate::model::ids::TenantId;
use crate::runtime::scheduler::Scheduler;

pub struct Pools {
    store: Arc<dyn Store>,
    scheduler: Arc<Scheduler>,
    limit: Limit,
    /// One pool creation at a time, so that two cannot both take the last place.
    creating: tokio::sync::Mutex<()>,
}

impl Pools {
    pub fn new(store: Arc<dyn Store>, scheduler: Arc<Scheduler>, q: quotas::QuotaLimits) -> Self {
        Pools { store, scheduler, limit: q.pools, creating: Default::default() }
    }

    /// The tenant's pools.
    pub async fn list(&self, tenant: &TenantId) -> AppResult<Vec<Pool>> {
        Ok(self.store.list_pools(tenant).await?)
    }

    /// Creates the pool (a checked name) or changes its strategy; the stored pool.
    pub async fn put(&self, tenant: &TenantId, name: &str, strategy: Strategy) -> AppResult<Pool> {
        let _one_at_a_time = self.creating.lock().await;
        check_pool_room(&*self.store, self.limit, tenant, name).await?;
        let p = self.store.put_pool(tenant, name, strategy).await?;
        // The scheduler keeps its own copy of the strategy: the next pick uses the new one.
        self.scheduler.set_strategy(tenant, &p.name, p.strategy);
        Ok(p)
    }
}

/// Refuses a pool name the tenant does not have yet when it already has `limit` pools (a pool
/// exists once named by `PUT /v1/pools/{name}` or an instance's `pool`; `default` always).
pub async fn check_pool_room(
    store: &dyn Store,
    limit: Limit,
    tenant: &TenantId,
    name: &str,
) -> AppResult<()> {
    if limit.is_unlimited() {
        return Ok(());
    }
    let pools = store.list_pools(tenant).await?;
    if pools.iter().any(|p| p.name == name) {
        return Ok(());
    }
    quotas::check(limit, pools.len() as u64, 1, "pools per tenant", None)
}
