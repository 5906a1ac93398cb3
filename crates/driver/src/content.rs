//! What a message carries besides text, in both directions: media files, locations, contact
//! cards, reactions and quoted replies; and what a number can tell about groups and contacts.

use std::path::PathBuf;

use bzapper_core::{ContactCard, Jid, Location, MediaKind, Phone};
use serde::{Deserialize, Serialize};

/// A message to send. `id` is the WhatsApp message id, fixed by the caller before the first
/// attempt so that a resend after a crash reuses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutgoingMessage {
    pub id: String,
    pub to: Jid,
    pub content: OutgoingContent,
    /// JIDs mentioned in the text or caption.
    #[serde(default)]
    pub mentions: Vec<Jid>,
    /// The message this one quotes.
    #[serde(default)]
    pub reply_to: Option<MessageRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutgoingContent {
    Text {
        text: String,
    },
    Media(OutgoingMedia),
    Location(Location),
    Contact(ContactCard),
    /// An emoji on `target` (an empty emoji removes this number's reaction).
    Reaction {
        target: MessageRef,
        emoji: String,
    },
}

/// A media file on the gateway's disk, checked and ready to upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutgoingMedia {
    pub media_kind: MediaKind,
    /// The file; the driver streams or reads it when it sends.
    pub path: PathBuf,
    pub mime: String,
    pub size: u64,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
    #[serde(default)]
    pub file_name: Option<String>,
    #[serde(default)]
    pub caption: Option<String>,
    /// An audio sent as a voice note (push-to-talk) rather than as a file.
    #[serde(default)]
    pub voice: bool,
    /// How long an audio or video plays, in whole seconds rounded up, when its container
    /// says; WhatsApp shows it on the bubble before the file is downloaded.
    #[serde(default)]
    pub seconds: Option<u32>,
}

/// A message already in one of this number's chats, which a reply quotes or a reaction targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRef {
    /// The WhatsApp message id.
    pub id: String,
    /// The chat it is in, as the network addresses it.
    pub chat: Jid,
    /// This number wrote it.
    pub from_me: bool,
    /// Who wrote it, in a group (WhatsApp needs the participant to find a group message).
    #[serde(default)]
    pub sender: Option<Jid>,
    /// Its text or caption, shown in the quote's preview.
    #[serde(default)]
    pub text: Option<String>,
}

/// A media file a contact sent. `handle` is the driver's own note of where and how to fetch it
/// (opaque to the server, which stores it and hands it back to [`crate::Connection::download_media`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMedia {
    pub media_kind: MediaKind,
    pub mime: String,
    pub size: u64,
    #[serde(default)]
    pub file_name: Option<String>,
    #[serde(default)]
    pub voice: bool,
    pub handle: serde_json::Value,
}

/// What an inbound message carries besides its text (which holds the caption of a media file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InboundContent {
    #[default]
    Text,
    Media(InboundMedia),
    Location(Location),
    Contact(ContactCard),
    /// An emoji on the message with WhatsApp id `target_id` (empty: a reaction was removed).
    Reaction {
        target_id: String,
        emoji: String,
    },
}

/// One of the number's groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub jid: Jid,
    pub subject: String,
    /// How many participants it has.
    pub size: u32,
    /// This number is an admin (or the creator) of the group.
    pub is_admin: bool,
}

/// A group with its participants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub summary: GroupSummary,
    pub participants: Vec<GroupParticipant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupParticipant {
    /// The phone JID when the network gave it (or it is known), else `None`.
    pub jid: Option<Jid>,
    pub lid: Option<Jid>,
    pub is_admin: bool,
}

/// Whether a phone number has a WhatsApp account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactStatus {
    pub phone: Phone,
    pub on_whatsapp: bool,
    pub jid: Option<Jid>,
    pub lid: Option<Jid>,
}
