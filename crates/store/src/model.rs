//! The records the store reads and writes.

use bzapper_core::{InstanceState, LimitsPatch, ProxyUrl};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// An API key as stored: its public id and the SHA-256 of its secret part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant_id: String,
    pub secret_hash: [u8; 32],
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub pool: String,
    pub state: InstanceState,
    pub phone: Option<String>,
    pub jid: Option<String>,
    pub lid: Option<String>,
    pub warming_days: u32,
    /// Sealed at rest (credentials).
    pub proxy: Option<ProxyUrl>,
    /// Only the fields the client set; merged over the defaults when used.
    pub limits: LimitsPatch,
    pub first_connected_at: Option<DateTime<Utc>>,
    pub connected_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Who the number turned out to be when a phone linked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub phone: String,
    pub jid: String,
    pub lid: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub state: InstanceState,
    /// Set on pairing.
    pub identity: Option<Identity>,
    /// Set when the number connects; also fills `first_connected_at` the first time.
    pub connected_at: Option<DateTime<Utc>>,
    /// Set on logout: the number no longer has an identity.
    pub clear_identity: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    RoundRobin,
    LeastUsed,
    HealthWeighted,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::LeastUsed => "least_used",
            Strategy::HealthWeighted => "health_weighted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "round_robin" => Strategy::RoundRobin,
            "least_used" => Strategy::LeastUsed,
            "health_weighted" => Strategy::HealthWeighted,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub strategy: Strategy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub tenant_id: String,
    pub instance_id: Option<String>,
    pub kind: String,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    pub tenant_id: String,
    pub instance_id: Option<String>,
    pub kind: String,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}
