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
    /// The gateway id of the message (`msg_…`).
    #[schema(value_type = String)]
    pub message_id: MessageId,
    /// `queued` (handed back to the queue), `sending`, `sent`, `delivered`, `read`, `failed` or
    /// `expired`.
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
    /// The chat it was written in: the contact's direct chat or a group.
    pub chat: ReceivedChat,
    /// Who wrote it.
    pub sender: ReceivedSender,
    /// The text (a media file's caption; empty for a location, contact card or reaction).
    pub text: String,
    /// Mentioned JIDs, by phone JID where the mapping is known.
    pub mentions: Vec<String>,
    /// Whether this number (its phone JID or LID) is mentioned.
    pub mentions_me: bool,
    /// When the sender sent it, by WhatsApp's timestamp.
    pub at: DateTime<Utc>,
    /// The text picks an option of the last menu this number sent to the chat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub menu_reply: Option<MenuReply>,
    /// The media file, for an image, video, audio, document or sticker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<ReceivedMedia>,
    /// Where the media file is fetched from (as `media.url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    /// A media file's caption (the message's text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// A shared location: `latitude`, `longitude`, and `name` and `address` when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub location: Option<bzapper_core::Location>,
    /// A shared contact card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<ReceivedContact>,
    /// A reaction to a message of the chat.
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
    /// The chat's JID: the contact's phone JID in a direct chat (when known), `<id>@g.us` for a
    /// group.
    pub jid: String,
    /// `direct` or `group`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// Who sent an inbound message: `jid` by phone whenever known, `lid` beside it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReceivedSender {
    /// The sender's JID, by phone JID whenever the mapping is known.
    pub jid: String,
    /// The sender's phone, E.164 with `+`, when known.
    pub phone: Option<String>,
    /// The sender's LID, when known.
    pub lid: Option<String>,
    /// The name the sender set on their phone, when WhatsApp sent it.
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
    /// The `id` the option was sent with.
    pub option_id: String,
}

/// An inbound media file (the driver's download handle never leaves the gateway).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReceivedMedia {
    /// `image`, `video`, `audio`, `document` or `sticker`.
    pub kind: &'static str,
    /// The file's MIME type.
    pub mime: String,
    /// The file's size in bytes.
    pub size: u64,
    /// A document's file name, when it has one.
    pub file_name: Option<String>,
    /// An audio recorded as a voice note.
    pub voice: bool,
    /// The gateway link the file is fetched from.
    pub url: String,
}

/// A shared contact card.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReceivedContact {
    /// The name shown for the card.
    pub display_name: String,
    /// The vCard text.
    pub vcard: String,
}

/// A reaction to a message.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReceivedReaction {
    /// WhatsApp's id of the message reacted to.
    pub message_id: String,
    /// The emoji; empty when a reaction was removed.
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
