//! What a queued message carries besides its text, as stored in the message's `content`
//! column: where its media file comes from, a location, a contact card, a reaction, the message
//! it quotes. The send path turns it into the driver's [`OutgoingContent`].

use bzapper_core::{ContactCard, Location, MediaKind};
use bzapper_driver::{ChatState, MessageRef, OutgoingContent, OutgoingMedia};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The stored `content` of a message; every part is optional, at most one of `media`,
/// `location`, `contact` and `reaction` is set (the accept path checks it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<ContactCard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction: Option<Reaction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageRef>,
}

/// A media file to send: an upload (`media_id`) or a URL downloaded when the message goes out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaSource {
    pub kind: MediaKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    #[serde(default)]
    pub voice: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reaction {
    pub target: MessageRef,
    pub emoji: String,
}

/// A media file ready on disk, for [`StoredContent::outgoing`].
pub struct ReadyMedia {
    pub path: std::path::PathBuf,
    pub mime: String,
    pub size: u64,
    pub sha256: String,
    pub file_name: Option<String>,
}

impl StoredContent {
    /// Reads a message's `content` column; `None` (a plain text) reads as empty.
    pub fn from_column(v: Option<&Value>) -> Result<StoredContent, serde_json::Error> {
        match v {
            Some(v) => serde_json::from_value(v.clone()),
            None => Ok(StoredContent::default()),
        }
    }

    /// The value for the `content` column: `None` for a plain text.
    pub fn to_column(&self) -> Option<Value> {
        (*self != StoredContent::default()).then(|| serde_json::to_value(self).unwrap_or_default())
    }

    /// `text`, `image`, …, `location`, `contact` or `reaction`.
    pub fn kind(&self) -> &'static str {
        match (&self.media, &self.location, &self.contact, &self.reaction) {
            (Some(m), ..) => m.kind.as_str(),
            (_, Some(_), ..) => "location",
            (_, _, Some(_), _) => "contact",
            (.., Some(_)) => "reaction",
            _ => "text",
        }
    }

    /// What the contact sees while the message is prepared.
    pub fn chat_state(&self) -> ChatState {
        match &self.media {
            Some(m) if m.kind.is_recorded(m.voice) => ChatState::Recording,
            _ => ChatState::Composing,
        }
    }

    /// The driver's content for this message with body `text`; `media` is the file on disk
    /// when the message has one.
    pub fn outgoing(&self, text: &str, media: Option<ReadyMedia>) -> Option<OutgoingContent> {
        if let Some(src) = &self.media {
            let file = media?;
            let caption = (!text.is_empty()).then(|| text.to_string());
            return Some(OutgoingContent::Media(OutgoingMedia {
                media_kind: src.kind,
                path: file.path,
                mime: file.mime,
                size: file.size,
                sha256: file.sha256,
                file_name: src.file_name.clone().or(file.file_name),
                caption,
                voice: src.voice,
                // Read from the file by the scheduler, off the async threads.
                seconds: None,
            }));
        }
        if let Some(l) = &self.location {
            return Some(OutgoingContent::Location(l.clone()));
        }
        if let Some(c) = &self.contact {
            return Some(OutgoingContent::Contact(c.clone()));
        }
        if let Some(r) = &self.reaction {
            return Some(OutgoingContent::Reaction {
                target: r.target.clone(),
                emoji: r.emoji.clone(),
            });
        }
        Some(OutgoingContent::Text { text: text.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bzapper_core::Jid;

    fn target() -> MessageRef {
        MessageRef {
            id: "3EB0X".into(),
            chat: Jid::parse("5511999999999@s.whatsapp.net").unwrap(),
            from_me: false,
            sender: None,
            text: Some("hi".into()),
        }
    }

    #[test]
    fn a_plain_text_stores_nothing_and_reads_back_empty() {
        let c = StoredContent::default();
        assert_eq!(c.to_column(), None);
        assert_eq!(StoredContent::from_column(None).unwrap(), c);
        assert_eq!(c.kind(), "text");
        assert_eq!(c.outgoing("hello", None), Some(OutgoingContent::Text { text: "hello".into() }));
    }

    #[test]
    fn content_round_trips_through_the_column() {
        let c = StoredContent {
            media: Some(MediaSource {
                kind: MediaKind::Audio,
                media_id: Some("med_1".into()),
                url: None,
                file_name: None,
                voice: true,
            }),
            reply_to: Some(target()),
            ..Default::default()
        };
        let back = StoredContent::from_column(c.to_column().as_ref()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.kind(), "audio");
        assert_eq!(back.chat_state(), ChatState::Recording);
    }

    #[test]
    fn media_needs_its_file_and_takes_the_text_as_caption() {
        let c = StoredContent {
            media: Some(MediaSource {
                kind: MediaKind::Image,
                media_id: None,
                url: Some("https://x/y.png".into()),
                file_name: None,
                voice: false,
            }),
            ..Default::default()
        };
        assert_eq!(c.chat_state(), ChatState::Composing);
        assert_eq!(c.outgoing("look", None), None);
        let ready = ReadyMedia {
            path: "/tmp/f".into(),
            mime: "image/png".into(),
            size: 3,
            sha256: "ab".into(),
            file_name: Some("y.png".into()),
        };
        let Some(OutgoingContent::Media(m)) = c.outgoing("look", Some(ready)) else {
            panic!("not media")
        };
        assert_eq!(m.caption.as_deref(), Some("look"));
        assert_eq!(m.file_name.as_deref(), Some("y.png"));
        assert_eq!(m.media_kind, MediaKind::Image);
    }

    #[test]
    fn reactions_carry_their_target() {
        let c = StoredContent {
            reaction: Some(Reaction { target: target(), emoji: "👍".into() }),
            ..Default::default()
        };
        assert_eq!(c.kind(), "reaction");
        assert_eq!(
            c.outgoing("", None),
            Some(OutgoingContent::Reaction { target: target(), emoji: "👍".into() })
        );
    }
}
