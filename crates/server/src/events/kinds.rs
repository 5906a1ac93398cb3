//! Every kind of event, once: [`Event`] (one variant per type string, holding its typed
//! payload) and [`EVENT_TYPES`] come from the same list, so a kind cannot be recorded under a
//! name the filters do not know, nor its payload drift from the documented schema.

use serde::Serialize;
use utoipa::ToSchema;

use crate::events::campaign::CampaignSnapshot;
use crate::events::instance::{InstanceConnected, InstanceHealth, InstanceQr, InstanceStateChanged};
use crate::events::message::{MessageReceived, MessageStatusChanged};

/// Declares [`Event`] and [`EVENT_TYPES`] from one list of `Variant(Payload) = "type"`.
macro_rules! event_kinds {
    ($($(#[$doc:meta])* $variant:ident($payload:ty) = $kind:literal,)*) => {
        /// An event to record, as its type and payload. Serialised (and documented in the
        /// OpenAPI document) as `{"type", "data"}`, the two fields the envelope carries.
        #[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
        #[serde(tag = "type", content = "data")]
        pub enum Event {
            $($(#[$doc])* #[serde(rename = $kind)] $variant($payload),)*
        }

        /// Event types a filter may name (a `prefix.*` pattern must match one of these
        /// prefixes).
        pub const EVENT_TYPES: &[&str] = &[$($kind),*];

        impl Event {
            /// The event's type, e.g. `instance.qr`.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Event::$variant(_) => $kind,)*
                }
            }

            /// The event's `data`, as the log stores it.
            pub fn data(&self) -> serde_json::Value {
                let data = match self {
                    $(Event::$variant(p) => serde_json::to_value(p),)*
                };
                // Plain structs with string keys: serialising them cannot fail.
                data.expect("an event payload serialises to JSON")
            }
        }
    };
}

event_kinds! {
    /// A QR code to scan.
    InstanceQr(InstanceQr) = "instance.qr",
    InstanceConnecting(InstanceStateChanged) = "instance.connecting",
    InstanceConnected(InstanceConnected) = "instance.connected",
    InstanceDisconnected(InstanceStateChanged) = "instance.disconnected",
    /// The number went out of (or back into) rotation.
    InstanceHealth(InstanceHealth) = "instance.health",
    MessageReceived(MessageReceived) = "message.received",
    MessageStatus(MessageStatusChanged) = "message.status",
    CampaignCreated(CampaignSnapshot) = "campaign.created",
    CampaignProgress(CampaignSnapshot) = "campaign.progress",
    CampaignPaused(CampaignSnapshot) = "campaign.paused",
    CampaignResumed(CampaignSnapshot) = "campaign.resumed",
    CampaignCanceled(CampaignSnapshot) = "campaign.canceled",
    CampaignFinished(CampaignSnapshot) = "campaign.finished",
}
