//! Every kind of message both ways, as pure functions: what a client sent, read into an
//! outbox entry of the shape the gateway's simulated network writes (`crates/driver/src/sim/
//! outbox.rs`, `OutboxMessage`), and what a contact sends, from a [`WireInbound`] (the
//! simulated network's `InboundSpec` JSON) into the protobuf the gateway's
//! driver reads (`crates/driver/src/whatsapp/inbound.rs`).

use std::io::Read;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use wacore::download::MediaType;
use wacore::proto_helpers::MessageExt as _;
use waproto::whatsapp as wa;

use crate::media::{Plaintext, StoredMedia};

/// The largest inbound media file, given by bytes or by size (as the simulated network's).
pub const MAX_INBOUND_MEDIA_BYTES: u64 = 100 * 1024 * 1024;

/// The kinds of media file WhatsApp carries (`bzapper_core::MediaKind`'s JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
    /// A voice note (`voice: true`) or an audio file.
    Audio,
    Document,
    Sticker,
}

impl MediaKind {
    /// The library's media type: it picks the key derivation and the upload path.
    pub fn media_type(self) -> MediaType {
        match self {
            MediaKind::Image => MediaType::Image,
            MediaKind::Video => MediaType::Video,
            MediaKind::Audio => MediaType::Audio,
            MediaKind::Document => MediaType::Document,
            MediaKind::Sticker => MediaType::Sticker,
        }
    }
}

/// A point on the map (`bzapper_core::Location`'s JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A contact card (`bzapper_core::ContactCard`'s JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactCard {
    pub display_name: String,
    pub vcard: String,
}

/// What the network learned of a media file a client sent: `kind`, `mime`, `size`, `sha256`
/// (lower-case hex, of the plaintext), `file_name`, `caption`, `voice` and, when declared,
/// `seconds`, at the top level of the message entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxMedia {
    pub kind: MediaKind,
    pub mime: String,
    pub size: u64,
    pub sha256: String,
    pub file_name: Option<String>,
    pub caption: Option<String>,
    pub voice: bool,
    /// How long an audio or video plays, as the message declares; absent when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u32>,
}

/// `{"message_id","emoji"}`: the emoji put on (empty: taken off) a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxReaction {
    pub message_id: String,
    pub emoji: String,
}

/// A message a client sent, as the simulated network's outbox writes it:
/// `{"to","text","id","at","mentions"}` and, by kind, `reply_to`, the media keys,
/// `location`, `contact` or `reaction`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxMessage {
    /// The JID the client addressed.
    pub to: String,
    /// The text; a media file's caption (empty when none); empty for the other kinds.
    pub text: String,
    /// The stanza's id (the client's message id).
    pub id: String,
    pub at: DateTime<Utc>,
    pub mentions: Vec<String>,
    /// The WhatsApp id of the quoted message (`context_info.stanza_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(flatten)]
    pub media: Option<OutboxMedia>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<ContactCard>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reaction: Option<OutboxReaction>,
}

/// A media file a message points at, as the fake needs it to read the file back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRef {
    pub kind: MediaKind,
    pub direct_path: Option<String>,
    pub media_key: Option<Vec<u8>>,
    /// What the message declares of the plaintext.
    pub file_length: Option<u64>,
    pub file_sha256: Option<Vec<u8>>,
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The context of whichever kind the message is: its mentions and its quote (the kinds the
/// gateway's driver reads it from).
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
        .or_else(|| m.contact_message.as_option().and_then(|x| x.context_info.as_option()))
        .or_else(|| m.contacts_array_message.as_option().and_then(|x| x.context_info.as_option()))
}

/// The media file of a message, whichever kind.
struct MediaOf {
    file: MediaRef,
    mime: Option<String>,
    file_name: Option<String>,
    caption: Option<String>,
    voice: bool,
    seconds: Option<u32>,
}

fn media_of(m: &wa::Message) -> Option<MediaOf> {
    macro_rules! file {
        ($kind:expr, $x:expr, $name:expr, $caption:expr, $voice:expr, $seconds:expr) => {
            MediaOf {
                file: MediaRef {
                    kind: $kind,
                    direct_path: $x.direct_path.clone(),
                    media_key: $x.media_key.clone(),
                    file_length: $x.file_length,
                    file_sha256: $x.file_sha256.clone(),
                },
                mime: $x.mimetype.clone(),
                file_name: $name,
                caption: $caption,
                voice: $voice,
                seconds: $seconds,
            }
        };
    }
    if let Some(x) = m.image_message.as_option() {
        return Some(file!(MediaKind::Image, x, None, x.caption.clone(), false, None));
    }
    if let Some(x) = m.video_message.as_option().or(m.ptv_message.as_option()) {
        return Some(file!(MediaKind::Video, x, None, x.caption.clone(), false, x.seconds));
    }
    if let Some(x) = m.audio_message.as_option() {
        return Some(file!(MediaKind::Audio, x, None, None, x.ptt.unwrap_or(false), x.seconds));
    }
    if let Some(x) = m.document_message.as_option() {
        let name = x.file_name.clone().or_else(|| x.title.clone()).filter(|n| !n.is_empty());
        return Some(file!(MediaKind::Document, x, name, x.caption.clone(), false, None));
    }
    if let Some(x) = m.sticker_message.as_option() {
        return Some(file!(MediaKind::Sticker, x, None, None, false, None));
    }
    None
}

/// The outbox entry of a message a client sent to `to`. `plaintext` reads a media file back
/// (from the media host, decrypted); when it cannot, the message's declared `file_length`
/// and `file_sha256` are used instead.
pub fn outbox_message(
    message: &wa::Message,
    to: String,
    id: String,
    at: DateTime<Utc>,
    plaintext: impl FnOnce(&MediaRef) -> Option<Plaintext>,
) -> OutboxMessage {
    let m = message.get_base_message();
    let context = context_info(m);
    let mut entry = OutboxMessage {
        to,
        text: String::new(),
        id,
        at,
        mentions: context.map(|c| c.mentioned_jid.clone()).unwrap_or_default(),
        reply_to: context.and_then(|c| c.stanza_id.clone()).filter(|s| !s.is_empty()),
        media: None,
        location: None,
        contact: None,
        reaction: None,
    };
    if let Some(t) = message.text_content() {
        entry.text = t.to_string();
    } else if let Some(MediaOf { file, mime, file_name, caption, voice, seconds }) = media_of(m) {
        let caption = caption.filter(|c| !c.is_empty());
        let (size, sha256) = match plaintext(&file) {
            Some(p) => (p.size, hex(&p.sha256)),
            None => (
                file.file_length.unwrap_or(0),
                file.file_sha256.as_deref().map(hex).unwrap_or_default(),
            ),
        };
        entry.text = caption.clone().unwrap_or_default();
        entry.media = Some(OutboxMedia {
            kind: file.kind,
            mime: mime.filter(|m| !m.is_empty()).unwrap_or("application/octet-stream".into()),
            size,
            sha256,
            file_name,
            caption,
            voice,
            seconds: seconds.filter(|&s| s > 0),
        });
    } else if let Some(l) = m.location_message.as_option() {
        entry.location = Some(Location {
            latitude: l.degrees_latitude.unwrap_or_default(),
            longitude: l.degrees_longitude.unwrap_or_default(),
            name: l.name.clone().filter(|n| !n.is_empty()),
            address: l.address.clone().filter(|a| !a.is_empty()),
        });
    } else if let Some(c) = m
        .contact_message
        .as_option()
        .or_else(|| m.contacts_array_message.as_option().and_then(|a| a.contacts.first()))
    {
        entry.contact = Some(ContactCard {
            display_name: c.display_name.clone().unwrap_or_default(),
            vcard: c.vcard.clone().unwrap_or_default(),
        });
    } else if let Some(r) = m.reaction_message.as_option() {
        entry.reaction = Some(OutboxReaction {
            message_id: r.key.as_option().and_then(|k| k.id.clone()).unwrap_or_default(),
            emoji: r.text.clone().unwrap_or_default(),
        });
    }
    entry
}

// ---- inbound ----

/// What a contact sends (`POST /wire/devices/{phone}/inbound`): the simulated network's
/// `InboundSpec` JSON. At most one of `media`, `location`, `contact`, `reaction`; `text` is
/// the text, or the caption of `media`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireInbound {
    /// The sender: a phone number in any notation, a phone JID, or the `@lid` JID of a
    /// contact the network knows.
    pub from: String,
    /// From the contact's `LID@lid`, with `sender_pn` = its phone JID.
    #[serde(default)]
    pub as_lid: bool,
    #[serde(default)]
    pub text: String,
    /// Phone numbers (any notation) or phone JIDs; they go out as phone JIDs.
    #[serde(default)]
    pub mentions: Vec<String>,
    /// The stanza's `notify` (the contact's push name); none when absent.
    #[serde(default)]
    pub push_name: Option<String>,
    #[serde(default)]
    pub media: Option<WireMedia>,
    #[serde(default)]
    pub location: Option<Location>,
    #[serde(default)]
    pub contact: Option<WireContact>,
    #[serde(default)]
    pub reaction: Option<WireReaction>,
    /// The WhatsApp id of a message the device sent or received, quoted.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// A group (`<id>@g.us`) the contact posts in instead of writing to the device; both
    /// must be participants.
    #[serde(default)]
    pub chat: Option<String>,
}

/// An inbound media file: its bytes in `data_base64`, or only a `size`, for which the fake
/// makes up deterministic bytes (the simulated network's, so the same size has the same
/// SHA-256 on both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireMedia {
    pub kind: MediaKind,
    pub mime: String,
    #[serde(default)]
    pub file_name: Option<String>,
    /// An audio sent as a voice note.
    #[serde(default)]
    pub voice: bool,
    #[serde(default)]
    pub data_base64: Option<String>,
    /// 1 to [`MAX_INBOUND_MEDIA_BYTES`].
    #[serde(default)]
    pub size: Option<u64>,
}

/// An inbound contact card; `display_name` defaults to the vCard's `FN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireContact {
    pub vcard: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// An inbound reaction: `emoji` (empty: taken off) on the message `message_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireReaction {
    pub message_id: String,
    pub emoji: String,
}

/// What an inbound carries besides its text, checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Content {
    Text,
    Media {
        kind: MediaKind,
        mime: String,
        file_name: Option<String>,
        voice: bool,
        bytes: MediaBytes,
    },
    Location(Location),
    Contact(ContactCard),
    Reaction {
        target: String,
        emoji: String,
    },
}

/// An inbound file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MediaBytes {
    Data(Vec<u8>),
    /// `n` made-up bytes (see [`Synthetic`]).
    Synthetic(u64),
}

impl MediaBytes {
    pub(crate) fn reader(&self) -> Box<dyn Read + '_> {
        match self {
            MediaBytes::Data(d) => Box::new(&d[..]),
            MediaBytes::Synthetic(n) => Box::new(Synthetic { offset: 0, total: *n }),
        }
    }
}

/// Checks an inbound's content (not its addresses) and decodes its file.
pub(crate) fn prepare(spec: &WireInbound) -> Result<Content, String> {
    let kinds = [
        spec.media.is_some(),
        spec.location.is_some(),
        spec.contact.is_some(),
        spec.reaction.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        return Err("give at most one of media, location, contact and reaction".into());
    }
    if spec.reply_to.as_deref().is_some_and(|r| r.trim().is_empty()) {
        return Err("reply_to: must not be empty".into());
    }
    let no_text = |what: &str| match spec.text.is_empty() {
        true => Ok(()),
        false => Err(format!("text: a {what} has no text (only media has a caption)")),
    };
    if let Some(m) = &spec.media {
        if m.mime.trim().is_empty() {
            return Err("media.mime: must not be empty".into());
        }
        if m.voice && m.kind != MediaKind::Audio {
            return Err("media.voice: only an audio can be a voice note".into());
        }
        let bytes = match (&m.data_base64, m.size) {
            (Some(_), Some(_)) => return Err("media: give data_base64 or size, not both".into()),
            (None, None) => return Err("media: give data_base64 or size".into()),
            (None, Some(0)) => return Err("media.size: must be at least 1".into()),
            (None, Some(n)) if n > MAX_INBOUND_MEDIA_BYTES => {
                return Err(format!("media: at most {MAX_INBOUND_MEDIA_BYTES} bytes"))
            }
            (None, Some(n)) => MediaBytes::Synthetic(n),
            (Some(data), None) => {
                if (data.len() as u64 / 4).saturating_mul(3) > MAX_INBOUND_MEDIA_BYTES {
                    return Err(format!("media: at most {MAX_INBOUND_MEDIA_BYTES} bytes"));
                }
                let engine = GeneralPurpose::new(
                    &alphabet::STANDARD,
                    GeneralPurposeConfig::new()
                        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
                );
                let bytes = engine
                    .decode(data.trim())
                    .map_err(|e| format!("media.data_base64: not base64: {e}"))?;
                if bytes.is_empty() {
                    return Err("media.data_base64: the file is empty".into());
                }
                MediaBytes::Data(bytes)
            }
        };
        return Ok(Content::Media {
            kind: m.kind,
            mime: m.mime.clone(),
            file_name: m.file_name.clone(),
            voice: m.voice,
            bytes,
        });
    }
    if let Some(l) = &spec.location {
        no_text("location")?;
        if !(-90.0..=90.0).contains(&l.latitude) || !(-180.0..=180.0).contains(&l.longitude) {
            return Err("location: latitude -90..90, longitude -180..180".into());
        }
        return Ok(Content::Location(l.clone()));
    }
    if let Some(c) = &spec.contact {
        no_text("contact card")?;
        return contact_card(&c.vcard, c.display_name.as_deref()).map(Content::Contact);
    }
    if let Some(r) = &spec.reaction {
        no_text("reaction")?;
        if spec.reply_to.is_some() {
            return Err("reply_to: a reaction does not quote".into());
        }
        if r.message_id.trim().is_empty() {
            return Err("reaction.message_id: must not be empty".into());
        }
        return Ok(Content::Reaction { target: r.message_id.clone(), emoji: r.emoji.clone() });
    }
    if spec.text.is_empty() {
        return Err("text: must not be empty".into());
    }
    Ok(Content::Text)
}

/// The card of `vcard`, named `display_name` or after the vCard's `FN`.
fn contact_card(vcard: &str, display_name: Option<&str>) -> Result<ContactCard, String> {
    let lines: Vec<&str> = vcard.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if !lines.first().is_some_and(|l| l.eq_ignore_ascii_case("BEGIN:VCARD"))
        || !lines.last().is_some_and(|l| l.eq_ignore_ascii_case("END:VCARD"))
    {
        return Err("contact: the vCard must start with BEGIN:VCARD and end with END:VCARD".into());
    }
    let fname = lines.iter().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        let key = key.split(';').next()?.trim();
        let key = key.rsplit('.').next()?;
        key.eq_ignore_ascii_case("FN").then(|| value.trim().to_string())
    });
    let display_name = display_name.map(str::to_string).or(fname).unwrap_or_default();
    if display_name.trim().is_empty() {
        return Err("contact: no display_name and no FN in the vCard".into());
    }
    Ok(ContactCard { display_name, vcard: vcard.to_string() })
}

/// A phone in any notation (`+5511…`, `5511…`, with spaces, dashes, dots or parentheses)
/// as digits: 8 to 15 of them, not starting with 0.
pub fn phone_digits(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let rest = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let mut digits = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err(format!("not a phone number: {raw:?}")),
        }
    }
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return Err(format!("not a phone number: {raw:?} (8 to 15 digits)"));
    }
    Ok(digits)
}

/// The phone (digits) of an inbound's sender: a phone in any notation, a phone JID, or a
/// `@lid` JID that `lid_phone` (LID digits → phone digits) knows.
pub(crate) fn sender_phone(
    raw: &str,
    lid_phone: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let raw = raw.trim();
    if let Some((user, server)) = raw.split_once('@') {
        let user = user.split(':').next().unwrap_or_default();
        return match server {
            "s.whatsapp.net" | "c.us" => phone_digits(user).map_err(|e| format!("from: {e}")),
            "lid" => lid_phone(user).ok_or_else(|| format!("from: no contact has the LID {raw}")),
            _ => Err(format!("from: not a phone or a contact's JID: {raw:?}")),
        };
    }
    phone_digits(raw).map_err(|e| format!("from: {e}"))
}

/// A mention as the JID it goes out as: a phone (any notation) becomes its phone JID; a JID
/// stays as written.
pub(crate) fn mention_jid(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.contains('@') {
        return raw
            .parse::<wacore_binary::Jid>()
            .map(|j| j.to_string())
            .map_err(|e| format!("mentions: {raw:?} is not a JID: {e}"));
    }
    phone_digits(raw).map(|p| format!("{p}@s.whatsapp.net")).map_err(|e| format!("mentions: {e}"))
}

/// The quoted message of a reply: its id, its author's JID and its text when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Quote {
    pub id: String,
    pub participant: Option<String>,
    pub text: String,
}

/// The protobuf a contact sends. `mentions` are JIDs; `media` is the stored file of
/// `Content::Media`; `reaction_key` the key of a reaction's target.
pub(crate) fn inbound_message(
    text: &str,
    mentions: &[String],
    quote: Option<&Quote>,
    content: &Content,
    media: Option<&StoredMedia>,
    reaction_key: Option<wa::MessageKey>,
) -> wa::Message {
    let context = (!mentions.is_empty() || quote.is_some()).then(|| wa::ContextInfo {
        mentioned_jid: mentions.to_vec(),
        stanza_id: quote.map(|q| q.id.clone()),
        participant: quote.and_then(|q| q.participant.clone()),
        quoted_message: match quote {
            Some(q) => {
                wa::Message { conversation: Some(q.text.clone()), ..Default::default() }.into()
            }
            None => Default::default(),
        },
        ..Default::default()
    });
    match content {
        Content::Text => match context {
            None => wa::Message { conversation: Some(text.to_string()), ..Default::default() },
            Some(c) => wa::Message {
                extended_text_message: wa::message::ExtendedTextMessage {
                    text: Some(text.to_string()),
                    context_info: c.into(),
                    ..Default::default()
                }
                .into(),
                ..Default::default()
            },
        },
        Content::Location(l) => wa::Message {
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
        },
        Content::Contact(c) => wa::Message {
            contact_message: wa::message::ContactMessage {
                display_name: Some(c.display_name.clone()),
                vcard: Some(c.vcard.clone()),
                context_info: context.into(),
                ..Default::default()
            }
            .into(),
            ..Default::default()
        },
        Content::Reaction { emoji, .. } => wacore::proto_helpers::build_reaction_message(
            reaction_key.unwrap_or_default(),
            emoji.as_str(),
            Utc::now().timestamp_millis(),
        ),
        Content::Media { kind, mime, file_name, voice, .. } => {
            let up = media.expect("a media inbound is stored before it is built");
            media_message(*kind, mime, file_name.clone(), *voice, text, up, context)
        }
    }
}

fn media_message(
    kind: MediaKind,
    mime: &str,
    file_name: Option<String>,
    voice: bool,
    caption: &str,
    up: &StoredMedia,
    context: Option<wa::ContextInfo>,
) -> wa::Message {
    let caption = Some(caption.to_string()).filter(|c| !c.is_empty());
    let context_info = context.into();
    let mimetype = Some(mime.to_string());
    let url = Some(up.url.clone());
    let direct_path = Some(up.direct_path.clone());
    let media_key = Some(up.media_key.to_vec());
    let file_sha256 = Some(up.file_sha256.to_vec());
    let file_enc_sha256 = Some(up.file_enc_sha256.to_vec());
    let file_length = Some(up.file_length);
    let media_key_timestamp = Some(Utc::now().timestamp());
    match kind {
        MediaKind::Image => wa::Message {
            image_message: wa::message::ImageMessage {
                url,
                mimetype,
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
                mimetype,
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
        // Audio carries no caption (WhatsApp shows none).
        MediaKind::Audio => wa::Message {
            audio_message: wa::message::AudioMessage {
                url,
                mimetype,
                file_sha256,
                file_length,
                ptt: Some(voice),
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
        MediaKind::Document => wa::Message {
            document_message: wa::message::DocumentMessage {
                url,
                mimetype,
                title: file_name.clone(),
                file_sha256,
                file_length,
                media_key,
                file_name,
                file_enc_sha256,
                direct_path,
                media_key_timestamp,
                context_info,
                caption,
                ..Default::default()
            }
            .into(),
            ..Default::default()
        },
        MediaKind::Sticker => wa::Message {
            sticker_message: wa::message::StickerMessage {
                url,
                file_sha256,
                file_enc_sha256,
                media_key,
                mimetype,
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

// ---- made-up files ----

/// `total` made-up bytes: each 8-byte word is SplitMix64 of its index (little-endian), the
/// simulated network's scheme (`crates/driver/src/sim/media.rs`), so a size gives the same
/// file, and SHA-256, on both networks.
pub(crate) struct Synthetic {
    offset: u64,
    total: u64,
}

impl Read for Synthetic {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.total - self.offset).min(buf.len() as u64) as usize;
        let mut i = 0;
        while i < n {
            let at = self.offset + i as u64;
            let word = splitmix64(at / 8).to_le_bytes();
            let from = (at % 8) as usize;
            let take = (8 - from).min(n - i);
            buf[i..i + take].copy_from_slice(&word[from..from + take]);
            i += take;
        }
        self.offset += n as u64;
        Ok(n)
    }
}

fn splitmix64(index: u64) -> u64 {
    let mut z = index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
#[path = "rich_tests.rs"]
mod tests;
