//! What the gateway and the network report once a fault run has settled, read from their
//! APIs into plain structs for the checks: messages, campaigns, the event log, the numbers,
//! each number's outbox on the network, and what each receiver got.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::receivers::Got;

/// `GET /v1/messages` items.
#[derive(Clone, Debug)]
pub struct Message {
    pub id: String,
    pub status: String,
    pub instance_id: Option<String>,
    pub whatsapp_id: String,
    pub text: String,
    pub error: Option<String>,
    pub campaign_id: Option<String>,
}

impl Message {
    pub fn from_json(v: &Value) -> Message {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let opt = |k: &str| v[k].as_str().map(str::to_string);
        Message {
            id: s("id"),
            status: s("status"),
            instance_id: opt("instance_id"),
            whatsapp_id: s("whatsapp_id"),
            text: s("text"),
            error: opt("error").filter(|e| !e.is_empty()),
            campaign_id: opt("campaign_id"),
        }
    }

    pub fn gone_out(&self) -> bool {
        matches!(self.status.as_str(), "sent" | "delivered" | "read")
    }
}

/// `GET /v1/campaigns` items.
#[derive(Clone, Debug)]
pub struct Campaign {
    pub id: String,
    pub status: String,
    pub recipients: u64,
    /// `totals` by bucket.
    pub totals: Value,
}

impl Campaign {
    pub fn from_json(v: &Value) -> Campaign {
        Campaign {
            id: v["id"].as_str().unwrap_or_default().to_string(),
            status: v["status"].as_str().unwrap_or_default().to_string(),
            recipients: v["totals"]["recipients"].as_u64().unwrap_or(0),
            totals: v["totals"].clone(),
        }
    }

    pub fn total(&self, bucket: &str) -> u64 {
        self.totals[bucket].as_u64().unwrap_or(0)
    }
}

/// One event of the log (the SSE envelope).
#[derive(Clone, Debug)]
pub struct Event {
    pub id: u64,
    pub kind: String,
    pub instance_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub data: Value,
}

impl Event {
    pub fn from_json(v: &Value) -> Option<Event> {
        Some(Event {
            id: v["id"].as_str()?.parse().ok()?,
            kind: v["type"].as_str()?.to_string(),
            instance_id: v["instance_id"].as_str().map(str::to_string),
            created_at: v["created_at"].as_str()?.parse().ok()?,
            data: v["data"].clone(),
        })
    }
}

/// A message on a number's outbox on the network (chat states and checks left out).
#[derive(Clone, Debug)]
pub struct NetMessage {
    pub instance_id: String,
    pub whatsapp_id: String,
    pub text: String,
    pub at: DateTime<Utc>,
}

impl NetMessage {
    /// The message entries of `GET /v1/sim/instances/{id}/outbox`.
    pub fn from_outbox(instance_id: &str, page: &Value) -> Vec<NetMessage> {
        let items = page["items"].as_array().map(Vec::as_slice).unwrap_or_default();
        items
            .iter()
            .filter(|e| e.get("id").is_some() && e.get("presence").is_none())
            .filter_map(|e| {
                Some(NetMessage {
                    instance_id: instance_id.to_string(),
                    whatsapp_id: e["id"].as_str()?.to_string(),
                    text: e["text"].as_str().unwrap_or_default().to_string(),
                    at: e["at"].as_str()?.parse().ok()?,
                })
            })
            .collect()
    }
}

/// `GET /v1/instances` items.
#[derive(Clone, Debug)]
pub struct Instance {
    pub id: String,
    pub status: String,
    pub reason: Option<String>,
    pub detail: Option<String>,
}

impl Instance {
    pub fn from_json(v: &Value) -> Instance {
        Instance {
            id: v["id"].as_str().unwrap_or_default().to_string(),
            status: v["status"].as_str().unwrap_or_default().to_string(),
            reason: v["reason"].as_str().map(str::to_string),
            detail: v["detail"].as_str().map(str::to_string),
        }
    }
}

/// A webhook, its filter, and what its receiver got.
#[derive(Clone, Debug)]
pub struct WebhookSeen {
    pub id: String,
    pub events: Vec<String>,
    pub got: Vec<Got>,
}

#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub messages: Vec<Message>,
    pub campaigns: Vec<Campaign>,
    /// In id order.
    pub events: Vec<Event>,
    pub instances: Vec<Instance>,
    pub network: Vec<NetMessage>,
    pub webhooks: Vec<WebhookSeen>,
    pub alerts: Vec<Got>,
}

/// Whether an event type matches a webhook's `events` entry (a type, or a prefix ending in `*`).
pub fn matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

/// The alert an event calls for (docs/api.md, "What is posted").
pub fn alert_kind(e: &Event) -> Option<&'static str> {
    match e.kind.as_str() {
        "instance.disconnected" => match e.data["reason"].as_str() {
            Some("logged_out") => Some("logged_out"),
            Some("banned") => Some("banned"),
            _ => None,
        },
        "instance.health" => {
            let low = e.data["in_rotation"] == false
                && e.data["score"].as_u64() < e.data["threshold"].as_u64();
            low.then_some("health_low")
        }
        _ => None,
    }
}
