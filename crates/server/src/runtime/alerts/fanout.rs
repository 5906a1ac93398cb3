//! The alert fan-out: logged events after the stored cursor that call for an alert the tenant
//! asked for become alert deliveries (the sentence and the body written once, then posted as
//! they are on every attempt), the cursor moving in the same transaction; fresh ones go
//! straight to the delivery task.

use std::collections::HashMap;

use bzapper_store::{AlertConfig, AlertDeliveryRecord, AlertStatus, Event, StoreError};

use crate::model::ids::new_ordered_id;
use crate::runtime::delivery::follow::PAGE;
use crate::runtime::delivery::LogReader;

use super::kinds::{alert_kind, body, sentence};
use super::AlertWorker;

impl LogReader for AlertWorker {
    const WHAT: &'static str = "alert fan-out";

    async fn pin_cursor(&self) -> Result<i64, StoreError> {
        let c = self.store.alert_cursor().await?;
        self.store.enqueue_alerts(&[], c).await?;
        Ok(c)
    }

    async fn read_page(&self, cursor: &mut i64) -> Result<bool, StoreError> {
        let events = self.store.all_events_after(*cursor, PAGE).await?;
        let Some(last) = events.last().map(|e| e.id) else { return Ok(false) };
        // Each tenant's target read once per page.
        let mut targets: HashMap<String, Option<AlertConfig>> = HashMap::new();
        let mut alerts = Vec::new();
        for e in &events {
            let Some(kind) = alert_kind(e) else { continue };
            if !targets.contains_key(&e.tenant_id) {
                let target = self.target(&e.tenant_id).await?;
                targets.insert(e.tenant_id.clone(), target);
            }
            let Some(cfg) = &targets[&e.tenant_id] else { continue };
            if !cfg.on.iter().any(|k| k == kind) {
                continue;
            }
            alerts.push(self.alert(cfg, kind, e).await?);
        }
        let term = self.engine.dispatch().reserve(&alerts);
        let stored = match self.store.enqueue_alerts(&alerts, last).await {
            Ok(n) => n,
            Err(e) => {
                self.engine.dispatch().unreserve(&alerts, term);
                return Err(e);
            }
        };
        *cursor = last;
        // Had the store left some out (a page already read), the rest are read back before
        // their attempts like scanned ones.
        let fresh = stored == alerts.len() as u64;
        self.engine.queue_fresh(alerts, fresh, term);
        Ok(events.len() == PAGE as usize)
    }
}

impl AlertWorker {
    /// The tenant's alert target. One whose URL cannot be opened (another master key) is
    /// skipped with a warning rather than holding up every tenant's alerts.
    async fn target(&self, tenant_id: &str) -> Result<Option<AlertConfig>, StoreError> {
        match self.store.get_alert(tenant_id).await {
            Err(StoreError::Unsealable(why)) => {
                tracing::warn!(tenant = %tenant_id, %why, "the alert URL cannot be opened; no alert is made for this tenant");
                Ok(None)
            }
            other => other,
        }
    }

    /// The alert `e` calls for, naming its number as it is now.
    async fn alert(
        &self,
        cfg: &AlertConfig,
        kind: &str,
        e: &Event,
    ) -> Result<AlertDeliveryRecord, StoreError> {
        let inst = match e.instance_id.as_deref() {
            Some(id) => self.store.get_instance_by_id(id).await?,
            None => None,
        };
        let name = inst.as_ref().map_or("?", |i| i.name.as_str());
        let phone = inst.as_ref().and_then(|i| i.phone.as_deref());
        let text = sentence(kind, name, phone, e);
        let payload = body(cfg, kind, &text, e).to_string();
        let at = self.engine.now();
        Ok(AlertDeliveryRecord {
            id: new_ordered_id("alr"),
            tenant_id: e.tenant_id.clone(),
            instance_id: e.instance_id.clone(),
            event_id: e.id,
            kind: kind.to_string(),
            text,
            payload,
            status: AlertStatus::Pending,
            attempts: 0,
            next_attempt_at: at,
            last_status: None,
            last_error: None,
            created_at: at,
            updated_at: at,
            delivered_at: None,
        })
    }
}
