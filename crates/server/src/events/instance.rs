//! The payloads of the `instance.*` events: a number's QR code, its state changes and its
//! health verdict.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// `instance.qr`: a QR code to scan, until it expires.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InstanceQr {
    pub code: String,
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
    pub detail: Option<String>,
}

/// `instance.connected`: the state with the number's identity.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InstanceConnected {
    /// `connected`.
    pub status: &'static str,
    pub reason: Option<&'static str>,
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
    pub jid: Option<String>,
    pub lid: Option<String>,
}

/// `instance.health`: the number went out of (or back into) rotation.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InstanceHealth {
    /// 0–100.
    pub score: u8,
    pub in_rotation: bool,
    /// The score below which a number leaves rotation.
    pub threshold: u8,
}
