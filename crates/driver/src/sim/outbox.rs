//! What the network received from each instance (`GET /v1/sim/instances/{id}/outbox`), and
//! the checks a message passes before the network takes it.
//!
//! Entries are untagged JSON objects told apart by their keys, so that the text entries of
//! the first API (`{"to","text","id","at","mentions"}`) read exactly as before and every
//! richer message only adds keys.

use bzapper_core::content::{
    check_reaction_emoji, MAX_CAPTION_CHARS, MAX_FILE_NAME_CHARS, MAX_STICKER_BYTES,
};
use bzapper_core::{ContactCard, Jid, Location, MediaKind, Phone};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::transport::SimError;
use crate::{ChatState, OutgoingContent, OutgoingMessage, Presence};

/// One thing the network received from an instance. The order of the variants matters for
/// reading JSON back: a message has `text` and `id`, a presence `presence`, a check `check`,
/// a read receipt `read`, the number's own presence `presence` without `to`, a rejected call
/// `rejected_call`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OutboxEntry {
    /// A message of any kind (see [`OutboxMessage`]); boxed, as it is ten times the others.
    Message(Box<OutboxMessage>),
    /// `{"presence": "composing" | "recording" | "paused", "to", "at"}`
    Presence { presence: ChatState, to: Jid, at: DateTime<Utc> },
    /// `{"check": ["+55…", …], "at"}`: one call asking which phones have WhatsApp, so tests
    /// can see how contact checks were paced through a number.
    Check { check: Vec<Phone>, at: DateTime<Utc> },
    /// `{"read": ["<wa id>", …], "chat", "sender"?, "at"}`: a read receipt the number sent
    /// for messages it received in `chat` (`sender`: who wrote them, in a group).
    Read {
        read: Vec<String>,
        chat: Jid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender: Option<Jid>,
        at: DateTime<Utc>,
    },
    /// `{"presence": "available" | "unavailable", "at"}`: the number announced its own
    /// presence to its contacts (online or not).
    Availability { presence: Presence, at: DateTime<Utc> },
    /// `{"rejected_call": "<call id>", "to", "at"}`: the number rejected a call ringing on it
    /// (`to`: the caller, as the call came).
    CallRejected { rejected_call: String, to: Jid, at: DateTime<Utc> },
}

/// `{"to","text","id","at","mentions"}` and, by kind, `reply_to`, the media keys, `location`,
/// `contact` or `reaction`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub to: Jid,
    /// The text; a media file's caption (empty when none); empty for the other kinds.
    pub text: String,
    pub id: String,
    pub at: DateTime<Utc>,
    pub mentions: Vec<Jid>,
    /// The WhatsApp id of the quoted message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// `kind`, `mime`, `size`, `sha256`, `file_name`, `caption`, `voice` (and `seconds` when
    /// known) at the top level.
    #[serde(flatten)]
    pub media: Option<OutboxMedia>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<ContactCard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction: Option<OutboxReaction>,
}

/// What the network learned of a media file: the metadata only. The bytes stay on the
/// gateway, which checked them against `size` and `sha256` before sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMedia {
    pub kind: MediaKind,
    pub mime: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
    pub file_name: Option<String>,
    pub caption: Option<String>,
    pub voice: bool,
    /// How long an audio or video plays, when the gateway could tell; absent otherwise, so
    /// entries without it read exactly as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u32>,
}

/// `{"message_id","emoji"}`: the emoji put on (empty: taken off) a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxReaction {
    pub message_id: String,
    pub emoji: String,
}

/// `GET /v1/sim/instances/{id}/outbox` → `{"items":[...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxPage {
    pub items: Vec<OutboxEntry>,
}

impl OutboxMessage {
    /// The entry of an accepted send.
    pub(crate) fn new(msg: OutgoingMessage, at: DateTime<Utc>) -> Self {
        let mut entry = OutboxMessage {
            to: msg.to,
            text: String::new(),
            id: msg.id,
            at,
            mentions: msg.mentions,
            reply_to: msg.reply_to.map(|r| r.id),
            media: None,
            location: None,
            contact: None,
            reaction: None,
        };
        match msg.content {
            OutgoingContent::Text { text } => entry.text = text,
            OutgoingContent::Media(m) => {
                entry.text = m.caption.clone().unwrap_or_default();
                entry.media = Some(OutboxMedia {
                    kind: m.media_kind,
                    mime: m.mime,
                    size: m.size,
                    sha256: m.sha256.to_ascii_lowercase(),
                    file_name: m.file_name,
                    caption: m.caption,
                    voice: m.voice,
                    seconds: m.seconds,
                });
            }
            OutgoingContent::Location(l) => entry.location = Some(l),
            OutgoingContent::Contact(c) => entry.contact = Some(c),
            OutgoingContent::Reaction { target, emoji } => {
                entry.reaction = Some(OutboxReaction { message_id: target.id, emoji });
            }
        }
        entry
    }
}

/// Why WhatsApp would refuse this message as built, if it would. The gateway checks the
/// same rules when it accepts a send; the network checks again so that a bug there shows up
/// in tests as a refusal instead of a message no phone could display.
pub(crate) fn check_outgoing(msg: &OutgoingMessage) -> Result<(), SimError> {
    let invalid = |m: String| Err(SimError::InvalidRequest(m));
    if msg.id.is_empty() {
        return invalid("the message has no id".into());
    }
    if msg.reply_to.as_ref().is_some_and(|r| r.id.is_empty()) {
        return invalid("the quoted message has no id".into());
    }
    match &msg.content {
        OutgoingContent::Text { .. } => Ok(()),
        OutgoingContent::Media(m) => {
            if !m.media_kind.accepts(&m.mime) {
                return invalid(format!(
                    "a file of type `{}` cannot go out as {}",
                    m.mime,
                    m.media_kind.as_str()
                ));
            }
            if m.voice && m.media_kind != MediaKind::Audio {
                return invalid("only an audio can be a voice note".into());
            }
            if m.size == 0 {
                return invalid("the media file is empty".into());
            }
            if m.media_kind == MediaKind::Sticker && m.size > MAX_STICKER_BYTES {
                return invalid(format!("a sticker is at most {MAX_STICKER_BYTES} bytes"));
            }
            if m.sha256.len() != 64 || !m.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return invalid(format!("`{}` is not a hex SHA-256", m.sha256));
            }
            if m.caption.as_ref().is_some_and(|c| c.chars().count() > MAX_CAPTION_CHARS) {
                return invalid(format!(
                    "the caption is longer than {MAX_CAPTION_CHARS} characters"
                ));
            }
            if m.file_name.as_ref().is_some_and(|n| n.chars().count() > MAX_FILE_NAME_CHARS) {
                return invalid(format!(
                    "the file name is longer than {MAX_FILE_NAME_CHARS} characters"
                ));
            }
            Ok(())
        }
        OutgoingContent::Location(l) => l.check().map_err(SimError::InvalidRequest),
        OutgoingContent::Contact(c) => ContactCard::new(&c.vcard, Some(&c.display_name))
            .map(drop)
            .map_err(SimError::InvalidRequest),
        OutgoingContent::Reaction { target, emoji } => {
            if target.id.is_empty() {
                return invalid("the reaction's target has no id".into());
            }
            check_reaction_emoji(emoji).map_err(SimError::InvalidRequest)
        }
    }
}
