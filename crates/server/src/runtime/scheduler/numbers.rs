//! The scheduler's view of each number: its connection, its state and pool, whether it is in
//! rotation, suspensions after a failed hand-off, and handing its queue back when it leaves.

use std::sync::Arc;

use bzapper_core::sending::{Health, HealthEvent, QueuedMessage};
use bzapper_core::{InstanceState, Limits, Reason, Status, Transition};
use bzapper_driver::Connection;
use bzapper_store::{InstanceRecord, MessageStatus, StoreError};

use crate::model::time::now;

use super::{Number, Scheduler, SUSPENSION_MS};

/// Why a number in this state sends nothing until an operator acts (banned or logged out),
/// in the words its failed forced sends carry; `None` for any other state.
fn gone_for_good(status: Status, reason: Option<Reason>) -> Option<&'static str> {
    match (status, reason) {
        (Status::Disconnected, Some(Reason::Banned)) => Some("the instance was banned by WhatsApp"),
        (Status::Disconnected, Some(Reason::LoggedOut)) => Some("the instance was logged out"),
        _ => None,
    }
}

impl Scheduler {
    /// A number was taken over from another node: what this node knew of it may be stale,
    /// so its health and today's sends are read again from the store.
    pub async fn adopt_number(&self, rec: &InstanceRecord) -> Result<(), StoreError> {
        let sent = self.store.sent_times_since(&rec.id, now() - chrono::Duration::days(1)).await?;
        {
            let mut g = self.lock();
            g.numbers.remove(&rec.id);
            let forced = g.dispatcher.remove_number(&rec.id);
            for q in forced {
                g.dispatcher.enqueue(q);
            }
        }
        let mut fresh = rec.clone();
        fresh.state = bzapper_core::InstanceState::new_stopped();
        self.update_number(&fresh);
        self.record_past_sends(&rec.id, &sent);
        self.load_history(&rec.id).await?;
        self.claim_wake.notify_one();
        Ok(())
    }

    /// The number's live health: (score, score at or above the threshold). Whether it is in
    /// rotation also depends on its status, which the caller reads from the record.
    pub fn health(&self, instance_id: &str) -> Option<(u8, bool)> {
        let g = self.lock();
        if self.cluster.is_some() && !g.connections.contains_key(instance_id) {
            // Another node holds it: the stored score is the one that node keeps up to date.
            return None;
        }
        let n = g.numbers.get(instance_id)?;
        Some((n.health.score(), n.health.in_rotation(self.threshold)))
    }

    /// (score, in rotation) as the scheduler sees the number now.
    pub(super) fn rotation_verdict(&self, instance_id: &str) -> Option<(u8, bool)> {
        let g = self.lock();
        let n = g.numbers.get(instance_id)?;
        Some((n.health.score(), self.in_rotation(n)))
    }

    pub(super) fn in_rotation(&self, n: &Number) -> bool {
        n.status == Status::Connected
            && n.reason != Some(Reason::Banned)
            && n.health.in_rotation(self.threshold)
    }

    /// The number's connection is up (or replaced): sends go through it.
    pub fn attach_connection(&self, instance_id: &str, conn: Arc<dyn Connection>) {
        self.lock().connections.insert(instance_id.to_string(), conn);
        // On a node of several, sends for this number (or its pool) can now be claimed here.
        self.claim_wake.notify_one();
    }

    pub fn detach_connection(&self, instance_id: &str) {
        self.lock().connections.remove(instance_id);
    }

    /// Brings the dispatcher's view of a number in line with its stored record, after any
    /// state change. A drop costs health; a ban or logout hands the number's forced messages
    /// back (failed) and takes it out of rotation at once.
    pub async fn number_changed(&self, rec: &InstanceRecord, transition: Option<&Transition>) {
        let mut health_event = None;
        let mut fail_forced = None;
        if let Some(t) = transition {
            if let (Status::Connecting, Some(Reason::Transient)) = (t.to.status, t.to.reason) {
                if t.from.status == Status::Connected {
                    health_event = Some(HealthEvent::Dropped);
                }
            }
            fail_forced = gone_for_good(t.to.status, t.to.reason);
        }
        let before = self.rotation_verdict(&rec.id).map(|h| h.1);
        if let Some(n) = self.lock().numbers.get_mut(&rec.id) {
            n.suspended = false;
        }
        self.update_number(rec);
        if let Some(ev) = health_event {
            self.health_event(&rec.id, ev).await;
        }
        let after = self.rotation_verdict(&rec.id).map(|h| h.1);
        if before.is_some() && before != after {
            self.record_health(rec.id.as_str()).await;
        }
        if let Some(why) = fail_forced {
            self.hand_back(&rec.id, why).await;
        }
        self.wake.notify_one();
    }

    /// The number was deleted: its forced messages fail, the others stay in the pool.
    pub async fn number_removed(&self, instance_id: &str) {
        self.hand_back(instance_id, "the instance was deleted").await;
        self.close_number_window(instance_id).await;
        self.unread.forget_number(instance_id);
        let mut g = self.lock();
        g.dispatcher.remove_number(instance_id);
        g.numbers.remove(instance_id);
        g.connections.remove(instance_id);
    }

    pub(super) fn update_number(&self, rec: &InstanceRecord) {
        let now_ms = self.now_ms();
        let mut g = self.lock();
        let n = g.numbers.entry(rec.id.clone()).or_insert_with(|| Number {
            tenant_id: rec.tenant_id.clone(),
            pool: rec.pool.clone(),
            health: Health::with_score(rec.health_score),
            health_at_ms: now_ms,
            status: rec.state.status,
            reason: rec.state.reason,
            suspended: false,
            suspended_at_ms: 0,
            limits: Limits::default(),
            record: None,
            last_sent_ms: None,
        });
        n.limits = Limits::default().merged(&rec.limits).unwrap_or_default();
        n.status = rec.state.status;
        n.reason = rec.state.reason;
        n.pool.clone_from(&rec.pool);
        n.record = Some(rec.clone());
        if let Some(info) = self.number_info(&g, &rec.id) {
            g.dispatcher.upsert_number(info);
        }
    }

    /// Hands back what waits for the number when `state` (its stored state, read at start)
    /// is banned or logged out: it will not connect again by itself.
    pub(super) async fn hand_back_if_gone(&self, instance_id: &str, state: &InstanceState) {
        if let Some(why) = gone_for_good(state.status, state.reason) {
            self.hand_back(instance_id, why).await;
        }
    }

    /// Why the number, as this scheduler last saw it, sends nothing until an operator acts;
    /// `None` when it may send again by itself.
    pub(super) fn gone_for_good_now(&self, instance_id: &str) -> Option<&'static str> {
        let g = self.lock();
        g.numbers.get(instance_id).and_then(|n| gone_for_good(n.status, n.reason))
    }

    /// Fails the number's client-forced queued messages with `why`; messages that were only
    /// held for it (in doubt after a crash) go back to the pool.
    pub(super) async fn hand_back(&self, instance_id: &str, why: &str) {
        self.hand_back_held(instance_id, why).await;
        // Those still in the store only fail too (a shared queue's stay for the node that
        // holds the number).
        if self.cluster.is_none() {
            self.fail_forced_backlog(instance_id, why).await;
            // A refill that ran between the first pass and the backlog's (the first pass
            // empties the window, which asks for more) moved messages from the store into
            // memory, behind the backlog's cursor: they are failed here, or they would wait
            // for a number that never sends.
            self.hand_back_held(instance_id, why).await;
        }
    }

    /// [`Scheduler::hand_back`] for the messages held in memory.
    async fn hand_back_held(&self, instance_id: &str, why: &str) {
        let taken = {
            let mut g = self.lock();
            let taken = g.dispatcher.take_forced(instance_id);
            taken
                .into_iter()
                .filter_map(|q| g.held.get(&q.id).cloned().map(|r| (q, r)))
                .collect::<Vec<_>>()
        };
        for (q, r) in taken {
            if r.forced {
                let (status, instance) = (MessageStatus::Failed, r.instance_id.clone());
                self.end(&r.id, &r.tenant_id, status, instance, Some(why.into())).await;
            } else {
                self.lock().dispatcher.enqueue_front(QueuedMessage { forced_instance: None, ..q });
            }
        }
    }

    /// Lifts suspensions older than `SUSPENSION_MS`; returns whether any remain.
    pub(super) async fn end_suspensions(&self, now_ms: i64) -> bool {
        let (expired, remaining): (Vec<String>, bool) = {
            let mut g = self.lock();
            let mut expired = Vec::new();
            let mut remaining = false;
            for (id, n) in g.numbers.iter_mut() {
                if n.suspended && now_ms - n.suspended_at_ms >= SUSPENSION_MS {
                    n.suspended = false;
                    expired.push(id.clone());
                } else if n.suspended {
                    remaining = true;
                }
            }
            (expired, remaining)
        };
        for id in expired {
            if let Ok(Some(rec)) = self.store.get_instance_by_id(&id).await {
                self.update_number(&rec);
            }
        }
        remaining
    }
}
