//! Each number's health: what a send outcome costs or earns, the slow recovery, and recording
//! the score (store, then `instance.health`) when it moves.

use bzapper_core::sending::HealthEvent;
use bzapper_driver::{DriverError, REACH_OUT_RESTRICTED};

use crate::events::instance::InstanceHealth;
use crate::events::Event;

use super::Scheduler;

impl Scheduler {
    pub(super) async fn health_event(&self, instance_id: &str, ev: HealthEvent) {
        let (changed_rotation, score) = {
            let mut g = self.lock();
            let Some(n) = g.numbers.get_mut(instance_id) else { return };
            let before = n.health.score();
            let flipped = n.health.apply(ev, self.threshold);
            let score = n.health.score();
            if score == before {
                return;
            }
            (flipped, score)
        };
        if let Err(e) = self.store.set_instance_health(instance_id, score).await {
            tracing::warn!(instance = %instance_id, error = %e, "saving the health score failed");
        }
        if changed_rotation {
            // Out of (or back in) rotation at once: the next routing decision sees it.
            if let Ok(Some(rec)) = self.store.get_instance_by_id(instance_id).await {
                self.update_number(&rec);
            }
            self.record_health(instance_id).await;
        }
    }

    pub(super) async fn record_health(&self, instance_id: &str) {
        let Some((score, in_rotation)) = self.rotation_verdict(instance_id) else { return };
        let tenant = self.lock().numbers.get(instance_id).map(|n| n.tenant_id.clone());
        if let Some(t) = tenant {
            let event = InstanceHealth { score, in_rotation, threshold: self.threshold };
            if let Err(e) =
                self.recorder.record(&t, Some(instance_id), Event::InstanceHealth(event)).await
            {
                tracing::warn!(error = %e, "recording instance.health failed");
            }
        }
    }

    /// Time-based health recovery: a number pushed out of rotation comes back after a quiet
    /// period (see `Health::recover`).
    pub(super) async fn recover_health(&self) {
        let now_ms = self.now_ms();
        let changed: Vec<(String, u8, bool)> = {
            let mut g = self.lock();
            let mut changed = Vec::new();
            for (id, n) in g.numbers.iter_mut() {
                let elapsed = (now_ms - n.health_at_ms).max(0) as u64;
                n.health_at_ms = now_ms;
                let before = n.health.score();
                let flipped = n.health.recover(elapsed, self.threshold);
                if n.health.score() != before {
                    changed.push((id.clone(), n.health.score(), flipped));
                }
            }
            changed
        };
        for (id, score, flipped) in changed {
            if let Err(e) = self.store.set_instance_health(&id, score).await {
                tracing::warn!(instance = %id, error = %e, "saving the health score failed");
            }
            if flipped {
                if let Ok(Some(rec)) = self.store.get_instance_by_id(&id).await {
                    self.update_number(&rec);
                }
                self.record_health(&id).await;
            }
        }
    }
}

/// What a send the network refused costs the number's health: WhatsApp's reach-out
/// restriction (463, read from the error's code, never from its text) more than any other
/// refusal, since it says the network distrusts the number.
pub(super) fn health_cost(e: &DriverError) -> HealthEvent {
    if e.wa_code() == Some(REACH_OUT_RESTRICTED) {
        HealthEvent::ReachOutRefused
    } else {
        HealthEvent::SendFailed
    }
}

#[cfg(test)]
#[path = "health_cost_tests.rs"]
mod tests;
