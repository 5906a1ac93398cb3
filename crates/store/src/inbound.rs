//! The index of received messages: what a reply or a reaction names by WhatsApp id (a quote
//! needs its sender and a preview of its text) and where a received media file is described
//! so it can be fetched later — and the received half of each chat's history. Kept for a while,
//! then pruned.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Result;

/// One received message, as the index keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundRecord {
    pub tenant_id: String,
    pub instance_id: String,
    /// The WhatsApp message id.
    pub wa_id: String,
    /// The chat and the sender as the network addressed them (JID strings).
    pub chat: String,
    pub sender: String,
    /// The chat as chats are keyed: the contact's phone JID when its LID's phone is known,
    /// the group's JID, else as addressed (without a device).
    pub chat_jid: String,
    /// The sender by phone JID when known, else as addressed.
    pub sender_jid: String,
    /// The sender's LID, when known.
    pub sender_lid: Option<String>,
    pub push_name: Option<String>,
    /// The WhatsApp id of the message this one quotes, or, for a reaction, reacts to.
    pub reply_to: Option<String>,
    /// The text or caption (the server trims it), for a quote's preview.
    pub text: String,
    /// `text`, `image`, `video`, `audio`, `document`, `sticker`, `location`, `contact`,
    /// `reaction` (its `text` is the emoji, empty when the reaction was removed).
    pub kind: String,
    /// The driver's media description (JSON), when it is a media file.
    pub media: Option<serde_json::Value>,
    pub received_at: DateTime<Utc>,
}

/// Received messages by WhatsApp id. Rows go with their instance and their tenant.
#[async_trait]
pub trait InboundStore: Send + Sync {
    /// Records received messages, all in one statement (a burst costs one commit). A repeat
    /// of (`instance_id`, `wa_id`) is ignored (the first record stands), not an error.
    async fn record_inbound(&self, rs: &[InboundRecord]) -> Result<()>;
    /// The message any number of the tenant received with this WhatsApp id; the newest when
    /// several of its numbers got the same id. Reactions are not found (nothing quotes one).
    async fn find_inbound(&self, tenant_id: &str, wa_id: &str) -> Result<Option<InboundRecord>>;
    /// Removes the messages received before `before`; returns how many.
    async fn prune_inbound(&self, before: DateTime<Utc>) -> Result<u64>;
}
