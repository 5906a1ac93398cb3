//! The fan-out: logged events after the stored cursor become delivery rows, one per matching
//! webhook, the cursor moving in the same transaction; fresh deliveries go straight to the
//! delivery task.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bzapper_store::{DeliveryRecord, DeliveryStatus, WebhookRecord};
use tokio::sync::broadcast::error::TryRecvError;

use crate::events::recorder::Recorder;
use crate::events::{Envelope, Filter};
use crate::model::ids::new_ordered_id;
use crate::model::time::now;

use super::WebhookWorker;

impl WebhookWorker {
    pub(super) async fn fan_out(self: Arc<Self>, recorder: Arc<Recorder>) {
        let mut doorbell = recorder.subscribe();
        let mut role = self.role.clone();
        loop {
            // The cursor is read from the store at each gain of the role: the previous holder
            // may have moved it.
            role.gained().await;
            let Some(mut cursor) = self.pin_cursor().await else { continue };
            while role.is_held() {
                match self.fan_out_once(&mut cursor).await {
                    Ok(true) => continue, // more may be waiting
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "webhook fan-out failed; retrying"),
                }
                // New events ring the bell (in a cluster, every node's); the timeout covers a
                // bell missed.
                tokio::select! {
                    _ = tokio::time::timeout(Duration::from_secs(2), doorbell.recv()) => {}
                    _ = role.lost() => {}
                }
                // Every event announced so far is already in the log, so the next read covers
                // them all: one pass per burst, not one per event.
                while !matches!(
                    doorbell.try_recv(),
                    Err(TryRecvError::Empty | TryRecvError::Closed)
                ) {}
            }
        }
    }

    /// Pins the fan-out's starting point: on a data dir that never had one, the fan-out
    /// starts at the newest event, and must not move along with new events before it has read
    /// them. `None` when the role was lost meanwhile.
    pub(super) async fn pin_cursor(&self) -> Option<i64> {
        loop {
            if !self.role.is_held() {
                return None;
            }
            let pinned = match self.store.fanout_cursor().await {
                Ok(c) => self.store.enqueue_deliveries(&[], c).await.map(|_| c),
                Err(e) => Err(e),
            };
            match pinned {
                Ok(c) => return Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "starting the webhook fan-out failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Turns the next page of logged events after `cursor` into deliveries and hands them to
    /// the delivery task. True when a full page was read. Only this task moves the cursor.
    pub(super) async fn fan_out_once(
        &self,
        cursor: &mut i64,
    ) -> Result<bool, bzapper_store::StoreError> {
        const PAGE: u32 = 500;
        let events = self.store.all_events_after(*cursor, PAGE).await?;
        let Some(last) = events.last().map(|e| e.id) else { return Ok(false) };
        let hooks = self.store.all_webhooks().await?;
        let mut by_tenant: HashMap<&str, Vec<(&WebhookRecord, Filter)>> = HashMap::new();
        for h in &hooks {
            let f = Filter::parse(None, Some(&h.events.join(","))).unwrap_or_default();
            by_tenant.entry(h.tenant_id.as_str()).or_default().push((h, f));
        }
        let at = now();
        let mut deliveries = Vec::new();
        for e in &events {
            for (h, f) in by_tenant.get(e.tenant_id.as_str()).into_iter().flatten() {
                if f.matches(e) {
                    deliveries.push(DeliveryRecord {
                        id: new_ordered_id("dlv"),
                        webhook_id: h.id.clone(),
                        tenant_id: e.tenant_id.clone(),
                        event_id: e.id,
                        event_type: e.kind.clone(),
                        payload: serde_json::to_string(&Envelope::from(e)).unwrap_or_default(),
                        status: DeliveryStatus::Pending,
                        attempts: 0,
                        next_attempt_at: at,
                        last_status: None,
                        last_error: None,
                        created_at: at,
                        updated_at: at,
                        delivered_at: None,
                    });
                }
            }
        }
        let term = self.dispatch().reserve(&deliveries);
        let stored = match self.store.enqueue_deliveries(&deliveries, last).await {
            Ok(n) => n,
            Err(e) => {
                self.dispatch().unreserve(&deliveries, term);
                return Err(e);
            }
        };
        *cursor = last;
        if !deliveries.is_empty() {
            // Committed: they may be sent. Had the store left some out (a page already fanned
            // out), the rest are read back before their attempts like scanned ones.
            let fresh = stored == deliveries.len() as u64;
            self.dispatch().queue_reserved(deliveries, fresh, term);
            self.wake.notify_one();
        }
        Ok(events.len() == PAGE as usize)
    }
}
