//! An inbound WhatsApp message in our terms: its text (or caption), what it carries besides
//! (a media file with the handle to fetch it later, a location, a contact card, a reaction),
//! whom it mentions and what it quotes. Pure, tested through the event table in
//! `events_tests.rs`.

use bzapper_core::{ContactCard, Location, MediaKind};
use whatsapp_rust::download::Downloadable;
use whatsapp_rust::types::message::MessageInfo;
use whatsapp_rust::wacore::proto_helpers::MessageExt;
use whatsapp_rust::waproto::whatsapp as wa;

use super::events::convert_jid;
use super::media::{MediaHandle, MediaOrigin};
use crate::{InboundContent, InboundMedia, InboundMessage};

/// An inbound message, or `None` for our own echoes and for messages with nothing we report
/// (protocol messages, polls, edits, an empty text).
pub(crate) fn inbound(message: &wa::Message, info: &MessageInfo) -> Option<InboundMessage> {
    if info.source.is_from_me {
        return None;
    }
    let base = message.get_base_message();
    let content = content(base, info);
    let text = message
        .text_content()
        .or_else(|| message.get_caption())
        .or_else(|| base.live_location_message.as_option().and_then(|m| m.caption.as_deref()))
        .unwrap_or_default()
        .to_string();
    if text.is_empty() && content == InboundContent::Text {
        return None;
    }
    let chat = convert_jid(&info.source.chat.to_string())?.to_non_device();
    let sender = convert_jid(&info.source.sender.to_string())?.to_non_device();
    let sender_alt = info
        .source
        .sender_alt
        .as_ref()
        .and_then(|j| convert_jid(&j.to_string()))
        .map(|j| j.to_non_device());
    let context = context_info(base);
    Some(InboundMessage {
        id: info.id.to_string(),
        chat,
        sender,
        sender_alt,
        push_name: (!info.push_name.is_empty()).then(|| info.push_name.clone()),
        text,
        // Mentions come from the context, never from the text.
        mentions: context
            .map(|c| c.mentioned_jid.iter().filter_map(|j| convert_jid(j)).collect())
            .unwrap_or_default(),
        content,
        reply_to: context.and_then(|c| c.stanza_id.clone()).filter(|id| !id.is_empty()),
        at: info.timestamp,
    })
}

/// What the message carries besides text.
fn content(m: &wa::Message, info: &MessageInfo) -> InboundContent {
    if let Some(file) = media_file(m) {
        return media(file, info);
    }
    if let Some(l) = m.location_message.as_option() {
        return InboundContent::Location(Location {
            latitude: l.degrees_latitude.unwrap_or_default(),
            longitude: l.degrees_longitude.unwrap_or_default(),
            name: l.name.clone().filter(|n| !n.is_empty()),
            address: l.address.clone().filter(|a| !a.is_empty()),
        });
    }
    // A live location starts with where the contact is; its updates are not followed.
    if let Some(l) = m.live_location_message.as_option() {
        return InboundContent::Location(Location {
            latitude: l.degrees_latitude.unwrap_or_default(),
            longitude: l.degrees_longitude.unwrap_or_default(),
            name: None,
            address: None,
        });
    }
    if let Some(c) = m.contact_message.as_option() {
        return contact(c);
    }
    // Several cards at once: the first one (our content holds one card).
    if let Some(c) = m.contacts_array_message.as_option().and_then(|a| a.contacts.first()) {
        return contact(c);
    }
    if let Some(r) = m.reaction_message.as_option() {
        if let Some(id) = r.key.as_option().and_then(|k| k.id.clone()) {
            return InboundContent::Reaction {
                target_id: id,
                emoji: r.text.clone().unwrap_or_default(),
            };
        }
    }
    InboundContent::Text
}

fn contact(c: &wa::message::ContactMessage) -> InboundContent {
    InboundContent::Contact(ContactCard {
        display_name: c.display_name.clone().unwrap_or_default(),
        vcard: c.vcard.clone().unwrap_or_default(),
    })
}

/// The media file a message carries, whichever kind it is.
struct MediaFile<'a> {
    kind: MediaKind,
    file: &'a dyn Downloadable,
    url: Option<&'a str>,
    mime: Option<&'a str>,
    file_name: Option<&'a str>,
    voice: bool,
}

fn media_file(m: &wa::Message) -> Option<MediaFile<'_>> {
    fn file<'a>(
        kind: MediaKind,
        file: &'a dyn Downloadable,
        url: &'a Option<String>,
        mime: &'a Option<String>,
    ) -> MediaFile<'a> {
        let (url, mime) = (url.as_deref(), mime.as_deref());
        MediaFile { kind, file, url, mime, file_name: None, voice: false }
    }
    if let Some(i) = m.image_message.as_option() {
        return Some(file(MediaKind::Image, i, &i.url, &i.mimetype));
    }
    // A round video note is a video too.
    if let Some(v) = m.video_message.as_option().or(m.ptv_message.as_option()) {
        return Some(file(MediaKind::Video, v, &v.url, &v.mimetype));
    }
    if let Some(a) = m.audio_message.as_option() {
        let voice = a.ptt.unwrap_or(false);
        return Some(MediaFile { voice, ..file(MediaKind::Audio, a, &a.url, &a.mimetype) });
    }
    if let Some(d) = m.document_message.as_option() {
        let file_name = d.file_name.as_deref().or(d.title.as_deref()).filter(|n| !n.is_empty());
        return Some(MediaFile { file_name, ..file(MediaKind::Document, d, &d.url, &d.mimetype) });
    }
    if let Some(s) = m.sticker_message.as_option() {
        return Some(file(MediaKind::Sticker, s, &s.url, &s.mimetype));
    }
    None
}

/// A media file, with the handle that fetches it later.
fn media(f: MediaFile<'_>, info: &MessageInfo) -> InboundContent {
    let mut handle = MediaHandle::of(f.kind, f.file, f.url);
    handle.message = Some(MediaOrigin {
        id: info.id.to_string(),
        chat: info.source.chat.to_string(),
        from_me: info.source.is_from_me,
        participant: info.source.is_group.then(|| info.source.sender.to_non_ad().to_string()),
    });
    InboundContent::Media(InboundMedia {
        media_kind: f.kind,
        mime: f.mime.filter(|m| !m.is_empty()).unwrap_or("application/octet-stream").to_string(),
        size: f.file.file_length().unwrap_or(0),
        file_name: f.file_name.map(str::to_string),
        voice: f.voice,
        handle: handle.to_value(),
    })
}

/// The context of whichever kind the message is: its mentions and its quote.
fn context_info(m: &wa::Message) -> Option<&wa::ContextInfo> {
    m.extended_text_message
        .as_option()
        .and_then(|x| x.context_info.as_option())
        .or_else(|| m.image_message.as_option().and_then(|x| x.context_info.as_option()))
        .or_else(|| m.video_message.as_option().and_then(|x| x.context_info.as_option()))
        .or_else(|| m.ptv_message.as_option().and_then(|x| x.context_info.as_option()))
        .or_else(|| m.audio_message.as_option().and_then(|x| x.context_info.as_option()))
        .or_else(|| m.document_message.as_option().and_then(|x| x.context_info.as_option()))
        .or_else(|| m.sticker_message.as_option().and_then(|x| x.context_info.as_option()))
        .or_else(|| m.location_message.as_option().and_then(|x| x.context_info.as_option()))
        .or_else(|| m.live_location_message.as_option().and_then(|x| x.context_info.as_option()))
        .or_else(|| m.contact_message.as_option().and_then(|x| x.context_info.as_option()))
        .or_else(|| m.contacts_array_message.as_option().and_then(|x| x.context_info.as_option()))
}
