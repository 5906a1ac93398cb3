//! The protobuf of an outgoing message, built from our [`OutgoingMessage`]. Pure: no client,
//! no I/O (a media file arrives already uploaded, as [`Uploaded`]), so every kind is checked
//! field by field in `outgoing_tests.rs`.
//!
//! What the other clients rely on, and why it is built this way:
//! - a mention is highlighted from `context_info.mentioned_jid`, never from the text, so a
//!   text with mentions or a reply must be an `ExtendedTextMessage` (a bare `conversation`
//!   has no context);
//! - a quote is `stanza_id` + `participant` (who wrote the quoted message: phones look it up
//!   by both) + `quoted_message`, the preview shown above the reply;
//! - a reaction names its target by `MessageKey`, with the participant in a group, since a
//!   message id is only unique per sender there.

use bzapper_core::{ContactCard, Jid, Location, MediaKind};
use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::wacore::proto_helpers::build_reaction_message;
use whatsapp_rust::waproto::whatsapp as wa;

use crate::{DriverError, MessageRef, OutgoingContent, OutgoingMedia, OutgoingMessage};

/// A media file on WhatsApp's CDN: where it is and the keys to read it. The library's
/// `UploadResponse` cannot be built outside it, so this is the form the builders take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Uploaded {
    pub url: String,
    pub direct_path: String,
    pub media_key: Vec<u8>,
    pub file_enc_sha256: Vec<u8>,
    pub file_sha256: Vec<u8>,
    pub file_length: u64,
    pub media_key_timestamp: i64,
    /// Per-64 KiB MACs that let audio and video play while they download.
    pub streaming_sidecar: Option<Vec<u8>>,
}

impl From<whatsapp_rust::upload::UploadResponse> for Uploaded {
    fn from(r: whatsapp_rust::upload::UploadResponse) -> Self {
        Uploaded {
            url: r.url,
            direct_path: r.direct_path,
            media_key: r.media_key.to_vec(),
            file_enc_sha256: r.file_enc_sha256.to_vec(),
            file_sha256: r.file_sha256.to_vec(),
            file_length: r.file_length,
            media_key_timestamp: r.media_key_timestamp,
            streaming_sidecar: r.streaming_sidecar,
        }
    }
}

/// The protobuf for `msg`. `media` is the uploaded file of a media message; `own` is this
/// number's JID as the chat addresses it (phone JID or LID), named as the author of its own
/// quoted or reacted-to messages; `now_ms` stamps a reaction.
pub(crate) fn build_message(
    msg: &OutgoingMessage,
    media: Option<&Uploaded>,
    own: Option<&Jid>,
    now_ms: i64,
) -> Result<wa::Message, DriverError> {
    let context = context_info(msg, own);
    Ok(match &msg.content {
        OutgoingContent::Text { text } => text_message(text, context),
        OutgoingContent::Media(m) => {
            let Some(up) = media else {
                // The driver uploads before it builds; reaching this is a bug, not the
                // message's fault, so it must not be retried forever either.
                return Err(DriverError::rejected("the media file was not uploaded"));
            };
            media_message(m, up, context)
        }
        OutgoingContent::Location(l) => location_message(l, context),
        OutgoingContent::Contact(c) => contact_message(c, context),
        OutgoingContent::Reaction { target, emoji } => {
            build_reaction_message(message_key(target, own), emoji.as_str(), now_ms)
        }
    })
}

/// The context every kind but a reaction carries: the mentioned JIDs and the quote. `None`
/// when there is neither, so that a plain text stays a `conversation`.
fn context_info(msg: &OutgoingMessage, own: Option<&Jid>) -> Option<wa::ContextInfo> {
    if msg.mentions.is_empty() && msg.reply_to.is_none() {
        return None;
    }
    let mut context = match &msg.reply_to {
        Some(quoted) => quote_context(quoted, &msg.to, own),
        None => wa::ContextInfo::default(),
    };
    // Mentions compare on the account, not on one of its devices.
    context.mentioned_jid = msg.mentions.iter().map(|j| j.to_non_device().to_string()).collect();
    Some(context)
}

/// The quote of `quoted` in a message to `to`.
fn quote_context(quoted: &MessageRef, to: &Jid, own: Option<&Jid>) -> wa::ContextInfo {
    wa::ContextInfo {
        stanza_id: Some(quoted.id.clone()),
        participant: author(quoted, own).map(|j| j.to_non_device().to_string()),
        // Only a quote from another chat names its chat (as WhatsApp Web does); a same-chat
        // reply leaves it out.
        remote_jid: (quoted.chat.to_non_device() != to.to_non_device())
            .then(|| quoted.chat.to_non_device().to_string()),
        // The preview: we keep only the quoted text, which is what the bubble shows.
        quoted_message: wa::Message {
            conversation: Some(quoted.text.clone().unwrap_or_default()),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    }
}

/// Who wrote `m`: this number for its own messages, the sender given in a group, the other
/// party in a direct chat.
fn author<'a>(m: &'a MessageRef, own: Option<&'a Jid>) -> Option<&'a Jid> {
    if m.from_me {
        return own.or(m.sender.as_ref());
    }
    m.sender.as_ref().or((!m.chat.is_group()).then_some(&m.chat))
}

/// The key of the message a reaction targets. The participant is set in groups only: in a
/// direct chat the chat already says who wrote it.
fn message_key(target: &MessageRef, own: Option<&Jid>) -> wa::MessageKey {
    wa::MessageKey {
        remote_jid: Some(target.chat.to_non_device().to_string()),
        from_me: Some(target.from_me),
        id: Some(target.id.clone()),
        participant: target
            .chat
            .is_group()
            .then(|| author(target, own).map(|j| j.to_non_device().to_string()))
            .flatten(),
    }
}

/// A text: a bare `conversation` without context, an extended text with it.
fn text_message(text: &str, context: Option<wa::ContextInfo>) -> wa::Message {
    let Some(context) = context else {
        return wa::Message { conversation: Some(text.to_string()), ..Default::default() };
    };
    wa::Message {
        extended_text_message: wa::message::ExtendedTextMessage {
            text: Some(text.to_string()),
            context_info: context.into(),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    }
}

fn location_message(l: &Location, context: Option<wa::ContextInfo>) -> wa::Message {
    wa::Message {
        location_message: wa::message::LocationMessage {
            degrees_latitude: Some(l.latitude),
            degrees_longitude: Some(l.longitude),
            name: l.name.clone(),
            address: l.address.clone(),
            context_info: context.into(),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    }
}

fn contact_message(c: &ContactCard, context: Option<wa::ContextInfo>) -> wa::Message {
    wa::Message {
        contact_message: wa::message::ContactMessage {
            display_name: Some(c.display_name.clone()),
            vcard: Some(c.vcard.clone()),
            context_info: context.into(),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    }
}

/// An uploaded image, video, audio, document or sticker. Audio and stickers carry no caption
/// (WhatsApp shows none); a captioned document is wrapped the way WhatsApp Web sends it.
fn media_message(
    m: &OutgoingMedia,
    up: &Uploaded,
    context: Option<wa::ContextInfo>,
) -> wa::Message {
    let caption = m.caption.clone().filter(|c| !c.is_empty());
    let context_info: MessageField<wa::ContextInfo> = context.into();
    let mime = Some(m.mime.clone());
    let url = Some(up.url.clone());
    let direct_path = Some(up.direct_path.clone());
    let media_key = Some(up.media_key.clone());
    let file_sha256 = Some(up.file_sha256.clone());
    let file_enc_sha256 = Some(up.file_enc_sha256.clone());
    let file_length = Some(up.file_length);
    let media_key_timestamp = Some(up.media_key_timestamp);
    match m.media_kind {
        MediaKind::Image => wa::Message {
            image_message: wa::message::ImageMessage {
                url,
                mimetype: mime,
                caption,
                file_sha256,
                file_length,
                media_key,
                file_enc_sha256,
                direct_path,
                media_key_timestamp,
                context_info,
                ..Default::default()
            }
            .into(),
            ..Default::default()
        },
        MediaKind::Video => wa::Message {
            video_message: wa::message::VideoMessage {
                url,
                mimetype: mime,
                caption,
                file_sha256,
                file_length,
                seconds: m.seconds,
                media_key,
                file_enc_sha256,
                direct_path,
                media_key_timestamp,
                context_info,
                streaming_sidecar: up.streaming_sidecar.clone(),
                ..Default::default()
            }
            .into(),
            ..Default::default()
        },
        MediaKind::Audio => wa::Message {
            audio_message: wa::message::AudioMessage {
                url,
                mimetype: mime,
                file_sha256,
                file_length,
                seconds: m.seconds,
                ptt: Some(m.voice),
                media_key,
                file_enc_sha256,
                direct_path,
                media_key_timestamp,
                context_info,
                streaming_sidecar: up.streaming_sidecar.clone(),
                ..Default::default()
            }
            .into(),
            ..Default::default()
        },
        MediaKind::Document => {
            // A document needs a name to be saved under on the phone.
            let file_name = m
                .file_name
                .clone()
                .or_else(|| m.path.file_name().map(|n| n.to_string_lossy().into_owned()));
            let document = wa::message::DocumentMessage {
                url,
                mimetype: mime,
                title: file_name.clone(),
                file_sha256,
                file_length,
                media_key,
                file_name,
                file_enc_sha256,
                direct_path,
                media_key_timestamp,
                context_info,
                caption: caption.clone(),
                ..Default::default()
            };
            let inner = wa::Message { document_message: document.into(), ..Default::default() };
            if caption.is_none() {
                return inner;
            }
            wa::Message {
                document_with_caption_message: wa::message::FutureProofMessage {
                    message: inner.into(),
                }
                .into(),
                ..Default::default()
            }
        }
        MediaKind::Sticker => wa::Message {
            sticker_message: wa::message::StickerMessage {
                url,
                file_sha256,
                file_enc_sha256,
                media_key,
                mimetype: mime,
                direct_path,
                file_length,
                media_key_timestamp,
                context_info,
                ..Default::default()
            }
            .into(),
            ..Default::default()
        },
    }
}

#[cfg(test)]
#[path = "outgoing_tests.rs"]
mod tests;
