//! How many messages each tenant, and each of its pools, has waiting or being sent: kept
//! beside the queue (counted when a message is accepted, uncounted when it ends sent or
//! failed, and reset from the store's own count now and then), so that `POST /v1/messages`
//! reads its quota without a store round-trip while the queue itself is paged from the store.
//! Campaign messages are not counted: campaigns have their own quota on their recipients.

use std::collections::HashMap;

#[derive(Default)]
pub(super) struct QueueCounts {
    per_tenant: HashMap<String, u64>,
    per_pool: HashMap<(String, String), u64>,
}

/// What the quota check needs: the tenant's count and the pool's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Queued {
    pub tenant: u64,
    pub pool: u64,
}

impl QueueCounts {
    pub(super) fn joined(&mut self, tenant_id: &str, pool: &str, in_campaign: bool) {
        if in_campaign {
            return;
        }
        *self.per_tenant.entry(tenant_id.to_string()).or_default() += 1;
        *self.per_pool.entry((tenant_id.to_string(), pool.to_string())).or_default() += 1;
    }

    pub(super) fn left(&mut self, tenant_id: &str, pool: &str, in_campaign: bool) {
        if in_campaign {
            return;
        }
        down(&mut self.per_tenant, tenant_id.to_string());
        down(&mut self.per_pool, (tenant_id.to_string(), pool.to_string()));
    }

    /// Replaces every count with the store's (tenant, pool, messages outside campaigns).
    pub(super) fn reset(&mut self, counts: impl IntoIterator<Item = (String, String, u64)>) {
        self.per_tenant.clear();
        self.per_pool.clear();
        for (tenant, pool, n) in counts.into_iter().filter(|c| c.2 > 0) {
            *self.per_tenant.entry(tenant.clone()).or_default() += n;
            self.per_pool.insert((tenant, pool), n);
        }
    }

    pub(super) fn of(&self, tenant_id: &str, pool: &str) -> Queued {
        Queued {
            tenant: self.per_tenant.get(tenant_id).copied().unwrap_or(0),
            pool: self
                .per_pool
                .get(&(tenant_id.to_string(), pool.to_string()))
                .copied()
                .unwrap_or(0),
        }
    }
}

fn down<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u64>, key: K) {
    if let Some(n) = map.get_mut(&key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_messages_in_and_out_per_tenant_and_pool() {
        let mut c = QueueCounts::default();
        c.joined("ten_a", "default", false);
        c.joined("ten_a", "sales", false);
        c.joined("ten_b", "default", false);
        c.joined("ten_a", "default", true);
        assert_eq!(c.of("ten_a", "default"), Queued { tenant: 2, pool: 1 });
        assert_eq!(c.of("ten_a", "sales"), Queued { tenant: 2, pool: 1 });
        assert_eq!(c.of("ten_b", "default"), Queued { tenant: 1, pool: 1 });
        c.left("ten_a", "default", false);
        c.left("ten_a", "default", true);
        assert_eq!(c.of("ten_a", "default"), Queued { tenant: 1, pool: 0 });
        // Leaving twice never goes below zero.
        c.left("ten_a", "default", false);
        c.left("ten_a", "sales", false);
        c.left("ten_a", "sales", false);
        assert_eq!(c.of("ten_a", "sales"), Queued::default());
        assert!(!c.per_pool.contains_key(&("ten_a".into(), "default".into())));
    }

    #[test]
    fn a_reset_takes_the_stores_counts_over_what_drifted() {
        let mut c = QueueCounts::default();
        for _ in 0..5 {
            c.joined("ten_a", "default", false);
        }
        c.reset([
            ("ten_a".to_string(), "default".to_string(), 2),
            ("ten_a".to_string(), "sales".to_string(), 3),
            ("ten_b".to_string(), "default".to_string(), 0),
        ]);
        assert_eq!(c.of("ten_a", "default"), Queued { tenant: 5, pool: 2 });
        assert_eq!(c.of("ten_a", "sales"), Queued { tenant: 5, pool: 3 });
        assert_eq!(c.of("ten_b", "default"), Queued::default());
    }
}
