//! The payloads of the `instance.*` events: a number's QR code, its state changes and its
//! health verdict.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// `instance.qr`: a QR code to scan, until it expires.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InstanceQr {
    /// The raw QR payload to render and scan (`GET /v1/instances/{id}/qr` renders it).
    pub code: String,
    /// When this code stops working; a new one follows.
    pub expires_at: DateTime<Utc>,
}

/// `instance.connecting` and `instance.disconnected`: the number's new state. `reason` and
/// `detail` are `null` (not absent) when there is none.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InstanceStateChanged {
    /// `connecting` or `disconnected`.
    pub status: &'static str,
    /// Why it is disconnected (`logged_out`, `banned`, `stopped`, …).
    pub reason: Option<&'static str>,
    /// The underlying cause in words (e.g. a temporary ban's code and expiry), when known.
    pub detail: Option<String>,
}

/// `instance.connected`: the state with the number's identity.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InstanceConnected {
    /// `connected`.
    pub status: &'static str,
    /// Always `null` once connected.
    pub reason: Option<&'static str>,
    /// Always `null` once connected.
    pub detail: Option<String>,
    /// Absent only when the instance could not be read back after the change (it was
    /// deleted meanwhile): the event then says no more than the state.
    #[serde(flatten)]
    #[schema(value_type = ConnectedIdentity)]
    pub identity: Option<ConnectedIdentity>,
}

/// The number's identity in `instance.connected` (each `null` when not known yet).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ConnectedIdentity {
    /// E.164, `+5511…`.
    pub phone: Option<String>,
    /// The number's phone-number JID (`…@s.whatsapp.net`).
    pub jid: Option<String>,
    /// The number's LID (`…@lid`), when WhatsApp gave it.
    pub lid: Option<String>,
}

/// `instance.health`: the number went out of (or back into) rotation.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InstanceHealth {
    /// 0–100.
    pub score: u8,
    /// Whether rotation may pick the number (its score is at or above `threshold`).
    pub in_rotation: bool,
    /// The score below which a number leaves rotation.
    pub threshold: u8,
}
