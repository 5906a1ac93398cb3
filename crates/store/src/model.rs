//! The records the store reads and writes.

use bzapper_core::{InstanceState, Jid, LimitsPatch, ProxyUrl, ReadReceipts};
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
    /// 0 to 100; below the threshold the number leaves rotation.
    pub health_score: u8,
    /// Whether the number marks a contact's messages read before replying (default off).
    pub read_receipts: ReadReceipts,
    /// Whether an incoming call is rejected at once (default off: it rings).
    pub reject_calls: bool,
    /// The text sent to a caller after a rejected call (through the number's send queue);
    /// `None`: no reply.
    pub reject_call_message: Option<String>,
    /// Whether the number announces itself `available` at every connect (default off: the
    /// protocol library's own presence, unchanged).
    pub always_online: bool,
    /// The number's own active hours as the server validated them (opaque to the store: a
    /// schedule window's JSON); `None` takes its pool's.
    pub quiet_hours: Option<serde_json::Value>,
    /// When the number began re-warming after an idle spell; `None` when it is not
    /// re-warming. Written only by [`crate::InstanceStore::set_rewarm_from`].
    pub rewarm_from: Option<DateTime<Utc>>,
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
    /// When a temporary ban ends (set with the `banned` state it came with). Every state
    /// change stores it: any other change clears the stored expiry.
    pub ban_until: Option<DateTime<Utc>>,
}

/// A pool's rotation strategy (defined with the rest of the rotation rules in core).
pub use bzapper_core::sending::Strategy;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub strategy: Strategy,
    pub settings: PoolSettings,
}

/// A pool's sending settings besides its strategy. A pool without a stored row has
/// [`PoolSettings::default`] (the same defaults as the migration's columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// A contact keeps the number it last talked with (sticky sender).
    pub sticky: bool,
    /// How long a conversation keeps its number, in days (1 to 365).
    pub sticky_window_days: u32,
    /// Prefer numbers with the recipient's country calling code.
    pub prefer_country: bool,
    /// At most this many messages an hour to one contact across the pool (0: no limit).
    pub per_contact_per_hour: u32,
    /// The pool's active hours as the server validated them (opaque to the store: a schedule
    /// window's JSON); `None`: no quiet hours.
    pub quiet_hours: Option<serde_json::Value>,
}

impl PoolSettings {
    pub const DEFAULT_STICKY_WINDOW_DAYS: u32 = 30;
    /// Off by default (see `bzapper_core::sending::DEFAULT_PER_CONTACT_PER_HOUR`).
    pub const DEFAULT_PER_CONTACT_PER_HOUR: u32 = 0;
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            sticky: true,
            sticky_window_days: Self::DEFAULT_STICKY_WINDOW_DAYS,
            prefer_country: false,
            per_contact_per_hour: Self::DEFAULT_PER_CONTACT_PER_HOUR,
            quiet_hours: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub tenant_id: String,
    pub instance_id: Option<String>,
    pub kind: String,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// An event with the key that makes it recorded once (see [`crate::EventLog::append_events_once`]):
/// a received message carries `<instance>\n<chat>\n<sender>\n<WhatsApp id>`, so that WhatsApp
/// redelivering a message the gateway had not acknowledged does not record it twice.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedEvent {
    pub event: NewEvent,
    /// `None`: recorded however often it is appended, like [`crate::EventLog::append_events`].
    pub dedupe_key: Option<String>,
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

/// Where an outbound message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    Failed,
    /// Not sent within its `ttl_seconds`: it never goes out (terminal).
    Expired,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Failed => "failed",
            MessageStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => MessageStatus::Queued,
            "sending" => MessageStatus::Sending,
            "sent" => MessageStatus::Sent,
            "delivered" => MessageStatus::Delivered,
            "read" => MessageStatus::Read,
            "failed" => MessageStatus::Failed,
            "expired" => MessageStatus::Expired,
            _ => return None,
        })
    }

    /// Queued or being sent: the message is still the gateway's to deliver.
    pub fn is_pending(self) -> bool {
        matches!(self, MessageStatus::Queued | MessageStatus::Sending)
    }
}

/// An outbound message as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    pub id: String,
    pub tenant_id: String,
    /// The WhatsApp message id, fixed at accept time.
    pub wa_id: String,
    /// The forced number, or the number that took the message from its pool's queue.
    pub instance_id: Option<String>,
    /// The client named the number: only that number may send it.
    pub forced: bool,
    pub pool: String,
    /// The recipient, parsed and normalised once when the message was accepted (stored as its
    /// JID text, read back parsed).
    pub to: Jid,
    /// The text that goes out (a menu already rendered as numbered text).
    pub body: String,
    pub mentions: Vec<String>,
    /// The menu's options, kept to recognise a numbered reply later.
    pub menu: Option<serde_json::Value>,
    pub status: MessageStatus,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// The campaign this message is one recipient's share of, if any.
    pub campaign_id: Option<String>,
    /// What the message carries besides `body` (a media file, a location, a contact card, a
    /// reaction, the message it quotes), as the server's JSON; `None` for a plain text.
    pub content: Option<serde_json::Value>,
    /// Not sent before this moment (`None`: as soon as a number can).
    pub send_at: Option<DateTime<Utc>>,
    /// Not sent at or after this moment: it becomes `expired` instead (`None`: no limit).
    pub expires_at: Option<DateTime<Utc>>,
    /// Why the number that took it was chosen (`sticky`, `rotation`, `forced`, `geo`); `None`
    /// while queued.
    pub chosen_by: Option<String>,
}

impl MessageRecord {
    /// Where the message stands in its queue's order: accepted, or due (the later of the
    /// two), so a message scheduled for later never stands in front of one due now.
    pub fn queue_at(&self) -> DateTime<Utc> {
        match self.send_at {
            Some(t) if t > self.created_at => t,
            _ => self.created_at,
        }
    }
}

/// One queue of the send queue: a pool's (messages any of its numbers may send) or one
/// number's (messages the client forced to it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueKey {
    Pool { tenant_id: String, pool: String },
    Forced { instance_id: String },
}

impl QueueKey {
    /// The queue a message waits in.
    pub fn of(m: &MessageRecord) -> Self {
        match (&m.instance_id, m.forced) {
            (Some(instance_id), true) => QueueKey::Forced { instance_id: instance_id.clone() },
            _ => QueueKey::Pool { tenant_id: m.tenant_id.clone(), pool: m.pool.clone() },
        }
    }
}

/// A message's place in its queue: due order, `(queue_at ms, id)` (see
/// [`MessageRecord::queue_at`]: accept order for a message due at once).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueuePosition {
    pub queue_at_ms: i64,
    pub id: String,
}

impl QueuePosition {
    pub fn of(m: &MessageRecord) -> Self {
        QueuePosition { queue_at_ms: crate::time::to_millis(m.queue_at()), id: m.id.clone() }
    }
}

/// A queued message without what it carries (text, content): what the scheduler keeps of a
/// message until it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRef {
    pub id: String,
    pub tenant_id: String,
    pub pool: String,
    pub forced: bool,
    pub instance_id: Option<String>,
    pub campaign_id: Option<String>,
    pub position: QueuePosition,
    /// Length of the text, in characters (the typing time grows with it).
    pub text_chars: u32,
    /// When the message expires unsent (ms), if it does.
    pub expires_at_ms: Option<i64>,
    /// The recipient's JID as stored: the contact the per-contact rules and stickiness key on.
    pub to: String,
}

impl QueuedRef {
    pub fn of(m: &MessageRecord) -> Self {
        QueuedRef {
            id: m.id.clone(),
            tenant_id: m.tenant_id.clone(),
            pool: m.pool.clone(),
            forced: m.forced,
            instance_id: m.instance_id.clone(),
            campaign_id: m.campaign_id.clone(),
            position: QueuePosition::of(m),
            text_chars: u32::try_from(m.body.chars().count()).unwrap_or(u32::MAX),
            expires_at_ms: m.expires_at.map(crate::time::to_millis),
            to: m.to.to_string(),
        }
    }

    pub fn queue(&self) -> QueueKey {
        match (&self.instance_id, self.forced) {
            (Some(instance_id), true) => QueueKey::Forced { instance_id: instance_id.clone() },
            _ => QueueKey::Pool { tenant_id: self.tenant_id.clone(), pool: self.pool.clone() },
        }
    }
}

/// A message the expiry sweep marked `expired`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredRef {
    pub id: String,
    pub tenant_id: String,
    /// Its number, when it was forced (or held for one).
    pub instance_id: Option<String>,
}

/// Which messages `list_messages` returns, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    pub instance_id: Option<String>,
    pub status: Option<MessageStatus>,
    /// At most this many (the caller caps it).
    pub limit: u32,
    /// Only messages older than this `(created_at ms, id)` position (keyset pagination).
    pub before: Option<(i64, String)>,
}

/// A status change of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageUpdate {
    pub status: MessageStatus,
    /// Set when a number takes the message (or cleared back to `None` when it returns to the
    /// pool's queue).
    pub instance_id: Option<String>,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
    /// Why the number was chosen, stored with a status past `queued` (kept when `None`);
    /// a message back in the queue (`queued`) loses it.
    pub chosen_by: Option<String>,
}

/// A webhook: where a tenant's events are POSTed, which ones, and the signing secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRecord {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    /// Event types or `prefix.*` patterns.
    pub events: Vec<String>,
    /// Sealed at rest.
    pub secret: String,
    pub created_at: DateTime<Utc>,
    /// The secret replaced by the latest rotation, still signing deliveries until its expiry
    /// (sealed at rest too). `None` when never rotated.
    pub previous_secret: Option<PreviousSecret>,
}

/// A webhook secret kept valid for a while after a rotation, so that receivers can switch
/// over without a gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    pub secret: String,
    /// Deliveries stop carrying its signature from this moment.
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    Delivered,
    /// Gave up after the last try; can be re-sent by API.
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeliveryStatus::Pending,
            "delivered" => DeliveryStatus::Delivered,
            "dead" => DeliveryStatus::Dead,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: String,
    pub webhook_id: String,
    pub tenant_id: String,
    pub event_id: i64,
    pub event_type: String,
    /// The exact body POSTed on every attempt.
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub at: DateTime<Utc>,
}

/// Where a tenant's alerts go and which drops they are sent for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertConfig {
    pub tenant_id: String,
    pub url: String,
    /// `slack` (`{"text"}`) or `json` (the text with the event).
    pub format: String,
    /// `logged_out`, `banned`, `health_low`.
    pub on: Vec<String>,
    pub updated_at: DateTime<Utc>,
}

/// Where a campaign is, as stored. Whether a running campaign is inside its schedule window is
/// decided by the server from the clock, not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Running,
    Paused,
    Canceled,
    Finished,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Running => "running",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Canceled => "canceled",
            CampaignStatus::Finished => "finished",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => CampaignStatus::Running,
            "paused" => CampaignStatus::Paused,
            "canceled" => CampaignStatus::Canceled,
            "finished" => CampaignStatus::Finished,
            _ => return None,
        })
    }

    /// Canceled or finished: nothing more is queued for it, ever.
    pub fn is_ended(self) -> bool {
        matches!(self, CampaignStatus::Canceled | CampaignStatus::Finished)
    }
}

/// A bulk send: one template, many recipients, fed gradually into the send queue.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// The text with `{{field}}` placeholders.
    pub template: String,
    pub pool: String,
    /// The schedule window as the server validated it (opaque to the store).
    pub schedule: Option<serde_json::Value>,
    pub status: CampaignStatus,
    /// How many recipients it has (indexes `0..recipients`).
    pub recipients: u32,
    /// Every recipient below this index has been handed to the send queue (or skipped).
    pub next_index: u32,
    /// Recipients left out before sending (not on WhatsApp, where the driver can tell).
    pub skipped: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When it was canceled or finished.
    pub ended_at: Option<DateTime<Utc>>,
    /// The `Idempotency-Key` of the request that created it: unique within the tenant.
    pub idempotency_key: Option<String>,
}

/// One recipient of a campaign: its place in the list, its normalised JID and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRecipient {
    pub index: u32,
    /// The recipient, parsed and normalised when the campaign was accepted.
    pub to: Jid,
    pub fields: std::collections::BTreeMap<String, String>,
    /// Not sent before this moment (the campaign's default already applied).
    pub send_at: Option<DateTime<Utc>>,
    /// Not sent within this many seconds of falling due → `expired`.
    pub ttl_seconds: Option<u32>,
}

/// How many of a campaign's messages are in `status`, sent (or held) by `instance_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignCount {
    pub instance_id: Option<String>,
    pub status: MessageStatus,
    /// These messages failed with `not_on_whatsapp`: the recipients were left out before a
    /// first contact (the campaign counts them as `skipped`).
    pub skipped: bool,
    pub count: u64,
}
