//! The envelope every event has, on SSE, webhooks and alerts alike.

use bzapper_store::Event;
use serde::Serialize;
use utoipa::ToSchema;

/// The envelope every event has, on SSE and webhooks alike.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope {
    /// Monotonic event id (a decimal string).
    pub id: String,
    /// The event type, e.g. `message.received` (see `Event` for every type).
    #[serde(rename = "type")]
    pub kind: String,
    /// The tenant the event belongs to.
    pub tenant_id: String,
    /// The number the event is about; `null` for events of no number (`campaign.*`).
    pub instance_id: Option<String>,
    /// When the event was recorded.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The event's payload: its shape is the `data` of the `Event` variant of this `type`.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<&Event> for Envelope {
    fn from(e: &Event) -> Self {
        Envelope {
            id: e.id.to_string(),
            kind: e.kind.clone(),
            tenant_id: e.tenant_id.clone(),
            instance_id: e.instance_id.clone(),
            created_at: e.created_at,
            data: e.data.clone(),
        }
    }
}
