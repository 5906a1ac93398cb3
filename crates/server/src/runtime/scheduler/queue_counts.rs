//! How many messages each tenant, and each of its pools, has waiting or being sent on this
//! node: kept beside the queue itself (each message counted when it joins the queue and
//! uncounted when it leaves it for good), so that `POST /v1/messages` reads its quota without
//! a store round-trip. Campaign messages are not counted: campaigns have their own quota on
//! their recipients.

use std::collections::HashMap;

use bzapper_store::MessageRecord;

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
    fn counts(m: &MessageRecord) -> bool {
        m.campaign_id.is_none()
    }

    pub(super) fn joined(&mut self, m: &MessageRecord) {
        if !Self::counts(m) {
            return;
        }
        *self.per_tenant.entry(m.tenant_id.clone()).or_default() += 1;
        *self.per_pool.entry((m.tenant_id.clone(), m.pool.clone())).or_default() += 1;
    }

    pub(super) fn left(&mut self, m: &MessageRecord) {
        if !Self::counts(m) {
            return;
        }
        down(&mut self.per_tenant, m.tenant_id.clone());
        down(&mut self.per_pool, (m.tenant_id.clone(), m.pool.clone()));
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

    fn msg(tenant: &str, pool: &str, campaign: Option<&str>) -> MessageRecord {
        MessageRecord {
            id: crate::model::ids::new_id("msg"),
            tenant_id: tenant.into(),
            wa_id: crate::model::ids::new_message_id(),
            instance_id: None,
            forced: false,
            pool: pool.into(),
            to: bzapper_core::Jid::parse("5511999999999@s.whatsapp.net").unwrap(),
            body: "hi".into(),
            mentions: vec![],
            menu: None,
            status: bzapper_store::MessageStatus::Queued,
            error: None,
            idempotency_key: None,
            created_at: crate::model::time::now(),
            updated_at: crate::model::time::now(),
            sent_at: None,
            campaign_id: campaign.map(Into::into),
            content: None,
        }
    }

    #[test]
    fn counts_follow_messages_in_and_out_per_tenant_and_pool() {
        let mut c = QueueCounts::default();
        let a1 = msg("ten_a", "default", None);
        let a2 = msg("ten_a", "sales", None);
        let b = msg("ten_b", "default", None);
        let campaign = msg("ten_a", "default", Some("cmp_1"));
        for m in [&a1, &a2, &b, &campaign] {
            c.joined(m);
        }
        assert_eq!(c.of("ten_a", "default"), Queued { tenant: 2, pool: 1 });
        assert_eq!(c.of("ten_a", "sales"), Queued { tenant: 2, pool: 1 });
        assert_eq!(c.of("ten_b", "default"), Queued { tenant: 1, pool: 1 });
        c.left(&a1);
        c.left(&campaign);
        assert_eq!(c.of("ten_a", "default"), Queued { tenant: 1, pool: 0 });
        // Leaving twice never goes below zero.
        c.left(&a1);
        c.left(&a2);
        c.left(&a2);
        assert_eq!(c.of("ten_a", "sales"), Queued::default());
        assert!(!c.per_pool.contains_key(&("ten_a".into(), "default".into())));
    }
}
