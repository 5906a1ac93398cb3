//! What the dispatcher's pool rules need from outside it: each queued message's contact and
//! that contact's history in the pool (its sticky number, the numbers that know it), each
//! number's country, active hours and last send, and each pool's policy. The store is read
//! here, a page of messages at a time, before the messages join the dispatcher (which is pure
//! and never waits).

use std::collections::{BTreeMap, HashMap};

use bzapper_core::calling_codes::calling_code;
use bzapper_core::sending::{NumberInfo, PoolPolicy};
use bzapper_core::{hours, Status};
use bzapper_store::{ContactHistory, InstanceRecord, QueuedRef, StoreError};

use super::queued::contact_key;
use super::{Inner, Number, Scheduler};
use crate::runtime::campaigns::window::{ScheduleSpec, Window};

/// A number's own quiet hours, as stored on it (checked when they were set).
fn own_hours(rec: &InstanceRecord) -> Option<hours::Window> {
    let v = rec.quiet_hours.as_ref()?;
    let spec = serde_json::from_value::<ScheduleSpec>(v.clone()).ok()?;
    match Window::parse(&spec) {
        Ok(w) => Some(w.hours().clone()),
        Err(e) => {
            tracing::warn!(instance = %rec.id, error = %e, "a number's stored quiet hours are not valid; ignoring them");
            None
        }
    }
}

/// The number's calling code, from its phone (set once it paired).
fn country_of(rec: &InstanceRecord) -> Option<u16> {
    let phone = rec.phone.as_deref()?;
    calling_code(phone.trim_start_matches('+'))
}

impl Scheduler {
    /// Each message's contact history in its pool (the sticky window is the pool's), one
    /// store query per pool of the page. A failed read leaves the messages without history:
    /// they go by rotation, which is what happened before stickiness existed.
    pub(super) async fn histories(&self, refs: &[QueuedRef]) -> HashMap<String, ContactHistory> {
        let mut by_pool: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
        for r in refs {
            if let Some(c) = contact_key(r) {
                by_pool.entry((r.tenant_id.as_str(), r.pool.as_str())).or_default().push(c);
            }
        }
        let mut found: HashMap<(String, String, String), ContactHistory> = HashMap::new();
        for ((tenant, pool), mut contacts) in by_pool {
            contacts.sort();
            contacts.dedup();
            let days = self.pool_rules(tenant, pool).settings.sticky_window_days;
            let since = crate::model::time::now() - chrono::Duration::days(i64::from(days));
            match self.store.contact_histories(tenant, pool, &contacts, since).await {
                Ok(h) => found.extend(
                    h.into_iter().map(|(c, h)| ((tenant.to_string(), pool.to_string(), c), h)),
                ),
                Err(e) => tracing::warn!(error = %e, "reading contact histories failed"),
            }
        }
        refs.iter()
            .filter_map(|r| {
                let key = (r.tenant_id.clone(), r.pool.clone(), contact_key(r)?);
                Some((r.id.clone(), found.get(&key)?.clone()))
            })
            .collect()
    }

    /// Reads what the rules keep of a number's past from the store: when it last sent
    /// (re-warming after a long idle counts from there) and the first contacts it made in the
    /// last day (its first-contact cap counts them after a restart).
    pub(super) async fn load_history(&self, instance_id: &str) -> Result<(), StoreError> {
        let last = self.store.last_sent_at(instance_id).await?;
        let day_ago = crate::model::time::now() - chrono::Duration::days(1);
        let firsts = self.store.first_contacts_since(instance_id, day_ago).await?;
        let mut g = self.lock();
        if let Some(n) = g.numbers.get_mut(instance_id) {
            n.last_sent_ms = last.map(|t| t.timestamp_millis());
        }
        for at in firsts {
            g.dispatcher.record_first_contact(instance_id, at.timestamp_millis());
        }
        if let Some(info) = self.number_info(&g, instance_id) {
            g.dispatcher.upsert_number(info);
        }
        Ok(())
    }

    /// Contacts who wrote to a number since the last round: their pace counts afresh.
    pub(super) fn contacts_wrote(&self) {
        let wrote = self.unread().take_wrote();
        if wrote.is_empty() {
            return;
        }
        // On the dispatcher's clock (the moment seen, at most a round late): its sends are
        // recorded on it too.
        let at = self.now_ms();
        let mut g = self.lock();
        for (number, contact) in wrote {
            let Some(tenant) = g.numbers.get(&number).map(|n| n.tenant_id.clone()) else {
                continue;
            };
            g.dispatcher.contact_replied(&tenant, &contact, at);
        }
    }

    /// The pool's policy for the dispatcher, from its stored settings and its strategy.
    pub(super) fn apply_pool_policy(&self, g: &mut Inner, tenant_id: &str, pool: &str) {
        let rules =
            g.pools.get(&(tenant_id.to_string(), pool.to_string())).cloned().unwrap_or_default();
        let s = &rules.settings;
        let policy = PoolPolicy {
            strategy: g.dispatcher.strategy(tenant_id, pool),
            sticky: s.sticky,
            prefer_country: s.prefer_country,
            per_contact_per_hour: s.per_contact_per_hour,
        };
        g.dispatcher.set_pool_policy(tenant_id, pool, policy);
        // The pool's active hours reach its numbers that have none of their own.
        let ids: Vec<String> = g
            .numbers
            .iter()
            .filter(|(_, n)| n.tenant_id == tenant_id && n.pool == pool)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(info) = self.number_info(g, &id) {
                g.dispatcher.upsert_number(info);
            }
        }
    }

    /// What the dispatcher is told about a number, from what the scheduler keeps of it.
    pub(super) fn number_info(&self, g: &Inner, id: &str) -> Option<NumberInfo> {
        let n: &Number = g.numbers.get(id)?;
        let rec = n.record.as_ref()?;
        let pool_hours = g
            .pools
            .get(&(n.tenant_id.clone(), n.pool.clone()))
            .and_then(|r| r.active_hours.as_ref().map(|w| w.hours().clone()));
        Some(NumberInfo {
            id: id.to_string(),
            tenant_id: n.tenant_id.clone(),
            pool: n.pool.clone(),
            online: n.status == Status::Connected
                && n.reason != Some(bzapper_core::Reason::Banned)
                && !n.suspended,
            in_rotation: self.in_rotation(n),
            health: n.health.score(),
            limits: n.limits,
            warming_days: rec.warming_days,
            first_connected_at_ms: rec.first_connected_at.map(|t| t.timestamp_millis()),
            country_code: country_of(rec),
            last_sent_ms: n.last_sent_ms,
            rewarm_from_ms: rec.rewarm_from.map(|t| t.timestamp_millis()),
            active_hours: own_hours(rec).or(pool_hours),
        })
    }
}
