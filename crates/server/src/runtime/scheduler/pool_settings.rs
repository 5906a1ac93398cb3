//! Each pool's sending settings (sticky sender, country match, per-contact pacing, quiet
//! hours) as the scheduler keeps them: set at start-up from the store and again whenever a
//! pool is changed, read by the send rules.

use bzapper_store::PoolSettings;

use super::pool_rules::PoolRules;
use super::Scheduler;

impl Scheduler {
    /// The pool's settings changed (or were read at start): the next decision uses them.
    pub fn set_pool_settings(&self, tenant_id: &str, pool: &str, settings: &PoolSettings) {
        let rules = PoolRules::new(tenant_id, pool, settings);
        self.lock().pools.insert((tenant_id.to_string(), pool.to_string()), rules);
        self.wake.notify_one();
    }

    /// The pool's settings as last set; a pool never set has the defaults.
    pub fn pool_rules(&self, tenant_id: &str, pool: &str) -> PoolRules {
        self.lock()
            .pools
            .get(&(tenant_id.to_string(), pool.to_string()))
            .cloned()
            .unwrap_or_default()
    }
}
