//! Records events: appends each to the event log first (the source SSE, webhooks and alerts
//! read from), then announces it on an in-process bus for live subscribers.

use std::sync::Arc;

use bzapper_store::{Event, NewEvent, Store, StoreError};
use tokio::sync::broadcast;

use crate::metrics::Metrics;
use crate::time::now;

pub struct Recorder {
    store: Arc<dyn Store>,
    bus: broadcast::Sender<Arc<Event>>,
    metrics: Arc<Metrics>,
}

impl Recorder {
    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        let (bus, _) = broadcast::channel(4096);
        Arc::new(Recorder { store, bus, metrics: Arc::default() })
    }

    /// Appends the event to the log, then announces it. Never waits on a receiver.
    pub async fn record(
        &self,
        tenant_id: &str,
        instance_id: Option<&str>,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<Arc<Event>, StoreError> {
        let ev = self
            .store
            .append_event(&NewEvent {
                tenant_id: tenant_id.to_string(),
                instance_id: instance_id.map(str::to_string),
                kind: kind.to_string(),
                data,
                created_at: now(),
            })
            .await?;
        self.count(&ev);
        let ev = Arc::new(ev);
        let _ = self.bus.send(ev.clone());
        Ok(ev)
    }

    /// Counts what the event tells (every message status and inbound message is recorded
    /// here, so this is the one place that sees them all).
    fn count(&self, ev: &Event) {
        let Some(instance) = ev.instance_id.as_deref() else { return };
        match ev.kind.as_str() {
            "message.status" => {
                if let Some(s @ ("sent" | "delivered" | "read" | "failed")) =
                    ev.data["status"].as_str()
                {
                    self.metrics.message_status(&ev.tenant_id, instance, s);
                }
            }
            "message.received" => self.metrics.message_received(&ev.tenant_id, instance),
            _ => {}
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Live feed of every recorded event.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.bus.subscribe()
    }
}
