//! The supervisor's event loop takes what has queued up at once, and the `Connected` events in
//! it (ten thousand of them after a restart, 64 handshakes at a time) are written together:
//! one store transaction for their states and one wait for their `instance.connected` events,
//! instead of two fsynced commits per number, one number after another. Every other event, and
//! a second event of a number already in the batch, goes through `handle_driver_event` alone,
//! in arrival order, so each number's events still apply in the order its driver sent them.

use std::collections::HashSet;

use bzapper_core::{Status, Trigger};
use bzapper_driver::DriverEvent;
use bzapper_store::StateChange;

use super::{announce_online, visible_event, Supervisor};
use crate::model::time::now;

/// A batch slower than this (ms) is logged at `info`, with its phases.
const SLOW_BATCH_MS: f64 = 100.0;

impl Supervisor {
    /// Applies `events` (tag, event) in order, writing runs of `Connected` events together.
    pub(super) async fn handle_driver_events(&self, events: Vec<(String, DriverEvent)>) {
        let mut connected: Vec<String> = Vec::new();
        let mut ids: HashSet<String> = HashSet::new();
        for (tag, event) in events {
            if matches!(event, DriverEvent::Connected) {
                let id = tag.rsplit_once('#').map_or(tag.as_str(), |(id, _)| id).to_string();
                if ids.insert(id) {
                    connected.push(tag);
                    continue;
                }
            }
            // Whatever came before this event is applied first.
            self.connect_all(std::mem::take(&mut connected)).await;
            ids.clear();
            if let Err(e) = self.handle_driver_event(&tag, event).await {
                tracing::error!(%tag, error = %e, "applying a driver event failed");
            }
        }
        self.connect_all(connected).await;
    }

    /// The `Connected` events of distinct numbers (tags `<id>#<generation>`); the only path a
    /// `Connected` event takes, alone or with others: the state machine, the scheduler told,
    /// the states and `connected_at` stored in one transaction, `instance.connected` recorded.
    pub(super) async fn connect_all(&self, tags: Vec<String>) {
        if tags.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let mut running = self.running.lock().await;
        let at = now();
        let mut applied = Vec::with_capacity(tags.len());
        let mut changes = Vec::with_capacity(tags.len());
        for tag in &tags {
            let Some((id, generation)) = tag.rsplit_once('#') else { continue };
            let generation: u64 = generation.parse().unwrap_or(0);
            let Some(run) = running.get_mut(id).filter(|r| r.generation == generation) else {
                continue; // an event of a connection that no longer exists
            };
            // Its handshake has an outcome: a resumed number frees its slot for the next.
            run.settled.take();
            let t = match run.state.apply(&Trigger::Connected) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(instance = %id, error = %e, "driver event refused by the state machine");
                    continue;
                }
            };
            run.qr.send_replace(None);
            run.state = t.to.clone();
            let change = StateChange {
                state: t.to.clone(),
                identity: None,
                connected_at: Some(at),
                clear_identity: false,
                ban_until: None,
            };
            changes.push((id.to_string(), change));
            applied.push((id.to_string(), run.tenant_id.clone(), run.conn.clone(), t));
        }
        // The scheduler learns first: once the store shows a number connected, a client that
        // sends at once must find it in rotation (a contact's sticky number most of all), so
        // the stored records are read, brought to the new state and handed over before the
        // states are written. All numbers at once: each coming into rotation records an
        // `instance.health` event and waits for it to be on disk, and one after another those
        // waits held up a restart (resuming 2,000 numbers took 16 % less once they went
        // together).
        let recs = futures::future::join_all(applied.iter().map(|(id, _, _, t)| async move {
            let rec = match self.store.get_instance_by_id(id).await {
                Ok(rec) => rec.map(|mut rec| {
                    rec.state = t.to.clone();
                    rec.connected_at = Some(at);
                    rec.first_connected_at.get_or_insert(at);
                    rec
                }),
                Err(e) => {
                    tracing::error!(instance = %id, error = %e, "reading a connected number failed");
                    None
                }
            };
            if let Some(rec) = &rec {
                self.scheduler.number_changed(rec, Some(t)).await;
            }
            rec
        }))
        .await;
        let handed_over = started.elapsed();
        if let Err(e) = self.store.update_instance_states(&changes).await {
            tracing::error!(error = %e, numbers = changes.len(), "storing connected states failed");
            return;
        }
        let stored = started.elapsed();
        let mut recordings = Vec::with_capacity(applied.len());
        for ((id, tenant_id, conn, t), rec) in applied.into_iter().zip(recs) {
            if t.changed() {
                if let Some(event) = visible_event(&t.to, rec.as_ref()) {
                    recordings.push(self.recorder.submit(&tenant_id, Some(&id), event).await);
                }
            }
            if t.to.status == Status::Connected && rec.is_some_and(|r| r.always_online) {
                announce_online(&id, conn);
            }
        }
        for r in recordings {
            if let Err(e) = r.wait().await {
                tracing::error!(error = %e, "recording instance.connected failed");
            }
        }
        // The event loop waits for this batch before it takes the next events.
        let took = started.elapsed();
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        let (numbers, handed_over, stored, took) =
            (changes.len(), ms(handed_over), ms(stored), ms(took));
        if took > SLOW_BATCH_MS {
            tracing::info!(numbers, handed_over, stored, took, "a slow batch of connected numbers");
        } else {
            tracing::debug!(numbers, handed_over, stored, took, "a batch of connected numbers");
        }
    }
}
