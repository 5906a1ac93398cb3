//! The payloads of the `message.*` events: an outbound message's status, and an inbound
//! message in the shape docs/api.md fixes (built by [`crate::events::received`]).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::model::ids::{InstanceId, MessageId};

/// `message.status`: an accepted message moved on (`queued`, `sending`, `sent`,
/// `delivered`, `read`, `failed`, `expired`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MessageStatusChanged {
    #[schema(value_type = String)]
    pub message_id: MessageId,
    pub status: &'static str,
    /// The number carrying it; `null` while no number has it.
    #[schema(value_type = Option<String>)]
    pub instance_id: Option<InstanceId>,
    /// Why it failed (`not_on_whatsapp` for a recipient not on WhatsApp); absent unless it
    /// did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `message.received`: a message that reached one of the tenant's numbers. The optional
/// parts are absent (not `null`) when the message has none.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MessageReceived {
    /// WhatsApp's id of the message.
    pub message_id: String,
    pub chat: ReceivedChat,
    pub sender: ReceivedSender,
    pub text: String,
    /// Mentioned JIDs, by phone JID where the mapping is known.
    pub mentions: Vec<String>,
    /// Whether this number (its phone JID or LID) is mentioned.
    pub mentions_me: bool,
    pub at: DateTime<Utc>,
    /// The text picks an option of the last menu this number sent to the chat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub menu_reply: Option<MenuReply>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<ReceivedMedia>,
    /// Where the media file is fetched from (as `media.url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    /// A media file's caption (the message's text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub location: Option<bzapper_core::Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<ReceivedContact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reaction: Option<ReceivedReaction>,
    /// `text`, a media kind (`image`, `video`, `audio`, `document`, `sticker`), `location`,
    /// `contact` or `reaction`.
    pub kind: &'static str,
    /// The message this one quotes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ReplyTo>,
}

/// The chat a message arrived in.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReceivedChat {
    pub jid: String,
    /// `direct` or `group`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// Who sent an inbound message: `jid` by phone whenever known, `lid` beside it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReceivedSender {
    pub jid: String,
    pub phone: Option<String>,
    pub lid: Option<String>,
    pub push_name: Option<String>,
}

/// A numbered reply to a menu this number sent.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MenuReply {
    /// The gateway id of the menu message.
    #[schema(value_type = String)]
    pub message_id: MessageId,
    /// The option's number, from 1.
    pub option: usize,
    pub option_id: String,
}

/// An inbound media file (the driver's download handle never leaves the gateway).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReceivedMedia {
    pub kind: &'static str,
    pub mime: String,
    pub size: u64,
    pub file_name: Option<String>,
    pub voice: bool,
    /// The gateway link the file is fetched from.
    pub url: String,
}

/// A shared contact card.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReceivedContact {
    pub display_name: String,
    pub vcard: String,
}

/// A reaction to a message.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReceivedReaction {
    /// WhatsApp's id of the message reacted to.
    pub message_id: String,
    pub emoji: String,
    /// The gateway id of that message when this number sent it, else `null`.
    #[schema(value_type = Option<String>)]
    pub gateway_message_id: Option<MessageId>,
}

/// The message an inbound message quotes.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReplyTo {
    /// WhatsApp's id of the quoted message.
    pub message_id: String,
    /// The gateway id of that message when this number sent it, else `null`.
    #[schema(value_type = Option<String>)]
    pub gateway_message_id: Option<MessageId>,
}
