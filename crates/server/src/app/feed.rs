//! A tenant's event feed, read for `GET /v1/events`: the log is the source, the live bus only
//! rings the bell (see the SSE route for the loop that joins them).

use std::sync::Arc;

use bzapper_store::{Event, Store, StoreError};
use tokio::sync::broadcast;

use crate::events::recorder::Recorder;
use crate::model::ids::TenantId;

pub struct EventFeed {
    store: Arc<dyn Store>,
    recorder: Arc<Recorder>,
}

impl EventFeed {
    pub fn new(store: Arc<dyn Store>, recorder: Arc<Recorder>) -> Self {
        EventFeed { store, recorder }
    }

    /// Every event as it is recorded (subscribe before reading the log, so that nothing
    /// recorded in between is missed; the ids tell duplicates apart).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.recorder.subscribe()
    }

    /// The tenant's newest event id (a new stream starts after it).
    pub async fn latest_id(&self, tenant_id: &TenantId) -> Result<i64, StoreError> {
        self.store.latest_event_id(tenant_id).await
    }

    /// Up to `limit` of the tenant's logged events after `cursor`, in id order.
    pub async fn after(
        &self,
        tenant_id: &TenantId,
        cursor: i64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        self.store.events_after(tenant_id, cursor, limit).await
    }
}
