//! A tenant's pools of numbers and their rotation strategy: listing them, and creating one or
//! changing its strategy (which the scheduler takes at once).

use std::sync::Arc;

use bzapper_store::{Pool, Store, Strategy};

use crate::app::error::AppResult;
use crate::model::ids::TenantId;
use crate::runtime::scheduler::Scheduler;

pub struct Pools {
    store: Arc<dyn Store>,
    scheduler: Arc<Scheduler>,
}

impl Pools {
    pub fn new(store: Arc<dyn Store>, scheduler: Arc<Scheduler>) -> Self {
        Pools { store, scheduler }
    }

    /// The tenant's pools.
    pub async fn list(&self, tenant: &TenantId) -> AppResult<Vec<Pool>> {
        Ok(self.store.list_pools(tenant).await?)
    }

    /// Creates the pool (a checked name) or changes its strategy; the stored pool.
    pub async fn put(&self, tenant: &TenantId, name: &str, strategy: Strategy) -> AppResult<Pool> {
        let p = self.store.put_pool(tenant, name, strategy).await?;
        // The scheduler keeps its own copy of the strategy: the next pick uses the new one.
        self.scheduler.set_strategy(tenant, &p.name, p.strategy);
        Ok(p)
    }
}
