//! The fan-out: logged events after the stored cursor become delivery rows, one per matching
//! webhook, the cursor moving in the same transaction; fresh deliveries go straight to the
//! delivery task.

use std::collections::HashMap;

use bzapper_store::{DeliveryRecord, DeliveryStatus, StoreError, WebhookRecord};

use crate::events::{Envelope, Filter};
use crate::model::ids::new_ordered_id;
use crate::runtime::delivery::follow::PAGE;
use crate::runtime::delivery::LogReader;

use super::WebhookWorker;

impl LogReader for WebhookWorker {
    const WHAT: &'static str = "webhook fan-out";

    async fn pin_cursor(&self) -> Result<i64, StoreError> {
        let c = self.store.fanout_cursor().await?;
        self.store.enqueue_deliveries(&[], c).await?;
        Ok(c)
    }

    /// Turns the next page of logged events after `cursor` into deliveries and hands them to
    /// the delivery task. Only this task moves the cursor.
    async fn read_page(&self, cursor: &mut i64) -> Result<bool, StoreError> {
        let events = self.store.all_events_after(*cursor, PAGE).await?;
        let Some(last) = events.last().map(|e| e.id) else { return Ok(false) };
        let hooks = self.store.all_webhooks().await?;
        let mut by_tenant: HashMap<&str, Vec<(&WebhookRecord, Filter)>> = HashMap::new();
        for h in &hooks {
            let f = Filter::parse(None, Some(&h.events.join(","))).unwrap_or_default();
            by_tenant.entry(h.tenant_id.as_str()).or_default().push((h, f));
        }
        let at = self.engine.now();
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
        let term = self.engine.dispatch().reserve(&deliveries);
        let stored = match self.store.enqueue_deliveries(&deliveries, last).await {
            Ok(n) => n,
            Err(e) => {
                self.engine.dispatch().unreserve(&deliveries, term);
                return Err(e);
            }
        };
        *cursor = last;
        // Committed: they may be sent. Had the store left some out (a page already fanned
        // out), the rest are read back before their attempts like scanned ones.
        let fresh = stored == deliveries.len() as u64;
        self.engine.queue_fresh(deliveries, fresh, term);
        Ok(events.len() == PAGE as usize)
    }
}
