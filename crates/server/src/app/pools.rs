//! A tenant's pools of numbers, their rotation strategy and sending settings: listing them,
//! and creating one or changing some of its settings (which the scheduler takes at once).

use std::sync::Arc;

use bzapper_store::{Pool, PoolSettings, Store, Strategy};

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

    /// Creates the pool (a checked name) or changes the settings `patch` gives (checked by the
    /// caller), keeping the others; the stored pool.
    pub async fn put(&self, tenant: &TenantId, name: &str, patch: PoolPatch) -> AppResult<Pool> {
        // Also makes read-change-write of one tenant's pools one at a time on this node.
        let _one_at_a_time = self.creating.lock().await;
        check_pool_room(&*self.store, self.limit, tenant, name).await?;
        let current = self.store.list_pools(tenant).await?.into_iter().find(|p| p.name == name);
        let mut p = current.unwrap_or_else(|| Pool {
            name: name.to_string(),
            strategy: Strategy::RoundRobin,
            settings: PoolSettings::default(),
        });
        patch.apply(&mut p);
        self.store.save_pool(tenant, &p).await?;
        // The scheduler keeps its own copy of the strategy and settings: the next pick uses
        // the new ones.
        self.scheduler.set_strategy(tenant, &p.name, p.strategy);
        self.scheduler.set_pool_settings(tenant, &p.name, &p.settings);
        Ok(p)
    }
}

/// The settings a `PUT /v1/pools/{name}` changes; `None` keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolPatch {
    pub strategy: Option<Strategy>,
    pub sticky: Option<bool>,
    pub sticky_window_days: Option<u32>,
    pub prefer_country: Option<bool>,
    pub per_contact_per_hour: Option<u32>,
    /// `Some(None)` removes the quiet hours; the value is the validated window's JSON.
    pub quiet_hours: Option<Option<serde_json::Value>>,
}

impl PoolPatch {
    fn apply(self, p: &mut Pool) {
        let s = &mut p.settings;
        if let Some(v) = self.strategy {
            p.strategy = v;
        }
        if let Some(v) = self.sticky {
            s.sticky = v;
        }
        if let Some(v) = self.sticky_window_days {
            s.sticky_window_days = v;
        }
        if let Some(v) = self.prefer_country {
            s.prefer_country = v;
        }
        if let Some(v) = self.per_contact_per_hour {
            s.per_contact_per_hour = v;
        }
        if let Some(v) = self.quiet_hours {
            s.quiet_hours = v;
        }
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
