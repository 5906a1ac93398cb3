//! The rich parts of `POST /v1/messages` — media (by URL or upload), location, contact card,
//! reaction, quoted reply — checked and turned into the stored [`StoredContent`]. What can be
//! checked without I/O is checked here; the caller then resolves the uploads and the messages
//! named by id ([`Pending`]).

use axum::http::StatusCode;
use bzapper_core::content::{check_reaction_emoji, MAX_CAPTION_CHARS, MAX_FILE_NAME_CHARS};
use bzapper_core::{ContactCard, Location, MediaKind};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::app::messages::Pending;
use crate::http::error::{ApiError, ApiResult};
use crate::model::content::{MediaSource, StoredContent};

/// A media file to send: give exactly one of `url` and `media_id`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaInput {
    /// An `http(s)` URL the gateway downloads when the message goes out (size-capped, its type
    /// checked); a download that fails marks the message `failed` with the reason.
    pub url: Option<String>,
    /// A file uploaded with `POST /v1/media`.
    pub media_id: Option<String>,
    /// Shown under the file (not for audio and stickers). `text` may be used instead.
    pub caption: Option<String>,
    /// The name a document shows.
    pub file_name: Option<String>,
    /// Audio only: send as a voice note (default) or, with `false`, as an audio file.
    pub voice: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationInput {
    /// -90 to 90.
    pub latitude: f64,
    /// -180 to 180.
    pub longitude: f64,
    /// The place's name (at most 256 characters).
    pub name: Option<String>,
    /// The place's address (at most 512 characters).
    pub address: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    /// A vCard (`BEGIN:VCARD` … `END:VCARD` with `VERSION` and `FN`).
    pub vcard: String,
    /// The name on the bubble; the vCard's `FN` by default.
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactionInput {
    /// The gateway id (`msg_…`) of a message sent here, or the `message_id` of a
    /// `message.received` event.
    pub message_id: String,
    /// One emoji; empty removes the reaction.
    pub emoji: String,
}

/// The rich fields of a send request, as the client gave them.
#[derive(Debug, Default)]
pub struct RichInput {
    pub image: Option<MediaInput>,
    pub video: Option<MediaInput>,
    pub audio: Option<MediaInput>,
    pub document: Option<MediaInput>,
    pub sticker: Option<MediaInput>,
    pub location: Option<LocationInput>,
    pub contact: Option<ContactInput>,
    pub reaction: Option<ReactionInput>,
    pub reply_to: Option<String>,
}

/// Checked rich content: what is stored, the text (caption) that goes with it, and what is
/// left to resolve.
#[derive(Debug)]
pub struct Checked {
    pub content: StoredContent,
    /// The caption of a media file (it becomes the message's text).
    pub caption: Option<String>,
    pub pending: Pending,
}

fn invalid_media(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_media", message)
}

/// Checks the rich fields against each other and against `has_text` (a `text` or `menu` was
/// given) and `has_mentions`.
pub fn check(input: RichInput, has_text: bool, has_mentions: bool) -> ApiResult<Checked> {
    let medias = [
        (MediaKind::Image, input.image),
        (MediaKind::Video, input.video),
        (MediaKind::Audio, input.audio),
        (MediaKind::Document, input.document),
        (MediaKind::Sticker, input.sticker),
    ];
    let mut medias = medias.into_iter().filter_map(|(k, m)| m.map(|m| (k, m)));
    let media = medias.next();
    let kinds = usize::from(media.is_some())
        + medias.count()
        + usize::from(input.location.is_some())
        + usize::from(input.contact.is_some())
        + usize::from(input.reaction.is_some());
    if kinds > 1 {
        return Err(ApiError::invalid(
            "give at most one of `image`, `video`, `audio`, `document`, `sticker`, `location`, \
             `contact` and `reaction`",
        ));
    }
    let mut checked =
        Checked { content: StoredContent::default(), caption: None, pending: Pending::default() };
    if let Some((kind, m)) = media {
        let (source, caption, media_id) = check_media(kind, m, has_text)?;
        checked.content.media = Some(source);
        checked.caption = caption;
        checked.pending.media_id = media_id.map(|id| (id, kind));
    } else if kinds == 1 && has_text {
        return Err(ApiError::invalid(
            "`text` goes with a media file (as its caption), not with a location, contact or \
             reaction",
        ));
    }
    if let Some(l) = input.location {
        let l = Location {
            latitude: l.latitude,
            longitude: l.longitude,
            name: l.name,
            address: l.address,
        };
        l.check()
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_location", e))?;
        checked.content.location = Some(l);
    }
    if let Some(c) = input.contact {
        let card = ContactCard::new(&c.vcard, c.display_name.as_deref())
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_vcard", e))?;
        checked.content.contact = Some(card);
    }
    if let Some(r) = input.reaction {
        check_reaction_emoji(&r.emoji)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_reaction", e))?;
        if input.reply_to.is_some() {
            return Err(ApiError::invalid("a reaction cannot quote a message (`reply_to`)"));
        }
        check_message_id(&r.message_id, "reaction.message_id")?;
        checked.pending.reaction = Some((r.message_id, r.emoji));
    }
    let has_caption = checked.caption.is_some();
    if has_mentions && !has_text && !has_caption {
        return Err(ApiError::invalid("`mentions` need a `text` or a caption that names them"));
    }
    if let Some(q) = input.reply_to {
        check_message_id(&q, "reply_to")?;
        checked.pending.reply_to = Some(q);
    }
    Ok(checked)
}

fn check_message_id(id: &str, field: &str) -> ApiResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!("`{field}` is not a message id")))
    }
}

type MediaChecked = (MediaSource, Option<String>, Option<String>);

fn check_media(kind: MediaKind, m: MediaInput, has_text: bool) -> ApiResult<MediaChecked> {
    let field = kind.as_str();
    let source = match (&m.url, &m.media_id) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(invalid_media(format!(
                "`{field}` needs exactly one of `url` and `media_id`"
            )))
        }
        (Some(u), None) => {
            let url = url::Url::parse(u)
                .map_err(|e| invalid_media(format!("`{field}.url` is not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(invalid_media(format!("`{field}.url` must be an http(s) URL")));
            }
            Some(url.to_string())
        }
        (None, Some(id)) => {
            check_message_id(id, &format!("{field}.media_id"))?;
            None
        }
    };
    if m.caption.is_some() && has_text {
        return Err(ApiError::invalid(format!(
            "give the caption once: `{field}.caption` or `text`, not both"
        )));
    }
    if m.caption.is_some() && matches!(kind, MediaKind::Audio | MediaKind::Sticker) {
        return Err(ApiError::invalid(format!("a{} {field} has no caption", article(kind))));
    }
    if let Some(c) = &m.caption {
        if c.chars().count() > MAX_CAPTION_CHARS {
            return Err(ApiError::invalid(format!(
                "the caption is longer than {MAX_CAPTION_CHARS} characters"
            )));
        }
    }
    if let Some(n) = &m.file_name {
        let bad = n.trim().is_empty()
            || n.chars().count() > MAX_FILE_NAME_CHARS
            || n.contains(['/', '\\'])
            || n.chars().any(char::is_control);
        if bad {
            return Err(invalid_media(format!(
                "`{field}.file_name` must be a plain file name of at most {MAX_FILE_NAME_CHARS} \
                 characters"
            )));
        }
    }
    if m.voice.is_some() && kind != MediaKind::Audio {
        return Err(ApiError::invalid(format!("`voice` is for audio, not {field}")));
    }
    let voice = kind == MediaKind::Audio && m.voice.unwrap_or(true);
    let media_id = m.media_id.clone();
    let src =
        MediaSource { kind, media_id: m.media_id, url: source, file_name: m.file_name, voice };
    Ok((src, m.caption, media_id))
}

fn article(kind: MediaKind) -> &'static str {
    if kind == MediaKind::Audio {
        "n"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(url: Option<&str>, id: Option<&str>) -> MediaInput {
        MediaInput {
            url: url.map(Into::into),
            media_id: id.map(Into::into),
            caption: None,
            file_name: None,
            voice: None,
        }
    }

    fn code(r: ApiResult<Checked>) -> &'static str {
        r.unwrap_err().code
    }

    #[test]
    fn a_plain_text_has_no_content() {
        let c = check(RichInput::default(), true, true).unwrap();
        assert_eq!(c.content, StoredContent::default());
        assert_eq!(c.pending, Pending::default());
    }

    #[test]
    fn one_kind_at_most() {
        let input = RichInput {
            image: Some(media(Some("https://x/a.png"), None)),
            video: Some(media(Some("https://x/a.mp4"), None)),
            ..Default::default()
        };
        assert_eq!(code(check(input, false, false)), "invalid_request");
        let input = RichInput {
            image: Some(media(Some("https://x/a.png"), None)),
            location: Some(LocationInput {
                latitude: 1.0,
                longitude: 1.0,
                name: None,
                address: None,
            }),
            ..Default::default()
        };
        assert_eq!(code(check(input, false, false)), "invalid_request");
    }

    #[test]
    fn media_needs_one_source_and_a_web_url() {
        for m in [
            media(None, None),
            media(Some("https://x/a"), Some("med_1")),
            media(Some("ftp://x/a"), None),
            media(Some("not a url"), None),
        ] {
            let input = RichInput { image: Some(m), ..Default::default() };
            assert_eq!(code(check(input, false, false)), "invalid_media");
        }
        let input = RichInput { document: Some(media(None, Some("med_1"))), ..Default::default() };
        let c = check(input, true, false).unwrap();
        assert_eq!(c.pending.media_id, Some(("med_1".into(), MediaKind::Document)));
        assert_eq!(c.content.kind(), "document");
    }

    #[test]
    fn captions_come_once_and_not_on_audio() {
        let mut m = media(Some("https://x/a.png"), None);
        m.caption = Some("hello".into());
        let input = RichInput { image: Some(m.clone()), ..Default::default() };
        assert_eq!(check(input, false, false).unwrap().caption.as_deref(), Some("hello"));
        let input = RichInput { image: Some(m.clone()), ..Default::default() };
        assert_eq!(code(check(input, true, false)), "invalid_request");
        let input = RichInput { audio: Some(m), ..Default::default() };
        assert_eq!(code(check(input, false, false)), "invalid_request");
    }

    #[test]
    fn audio_is_a_voice_note_unless_told() {
        let input = RichInput { audio: Some(media(None, Some("med_1"))), ..Default::default() };
        assert!(check(input, false, false).unwrap().content.media.unwrap().voice);
        let mut m = media(None, Some("med_1"));
        m.voice = Some(false);
        let input = RichInput { audio: Some(m), ..Default::default() };
        assert!(!check(input, false, false).unwrap().content.media.unwrap().voice);
        let mut m = media(None, Some("med_1"));
        m.voice = Some(true);
        let input = RichInput { video: Some(m), ..Default::default() };
        assert_eq!(code(check(input, false, false)), "invalid_request");
    }

    #[test]
    fn file_names_are_plain() {
        let mut m = media(None, Some("med_1"));
        m.file_name = Some("../etc/passwd".into());
        let input = RichInput { document: Some(m), ..Default::default() };
        assert_eq!(code(check(input, false, false)), "invalid_media");
    }

    #[test]
    fn locations_contacts_and_reactions_are_checked() {
        let loc = |lat| LocationInput { latitude: lat, longitude: 0.0, name: None, address: None };
        let input = RichInput { location: Some(loc(91.0)), ..Default::default() };
        assert_eq!(code(check(input, false, false)), "invalid_location");
        let input = RichInput { location: Some(loc(10.0)), ..Default::default() };
        assert_eq!(code(check(input, true, false)), "invalid_request");
        let input = RichInput {
            contact: Some(ContactInput { vcard: "nope".into(), display_name: None }),
            ..Default::default()
        };
        assert_eq!(code(check(input, false, false)), "invalid_vcard");
        let input = RichInput {
            reaction: Some(ReactionInput { message_id: "msg_1".into(), emoji: "yes".into() }),
            ..Default::default()
        };
        assert_eq!(code(check(input, false, false)), "invalid_reaction");
        let input = RichInput {
            reaction: Some(ReactionInput { message_id: "msg_1".into(), emoji: "👍".into() }),
            reply_to: Some("msg_0".into()),
            ..Default::default()
        };
        assert_eq!(code(check(input, false, false)), "invalid_request");
        let input = RichInput {
            reaction: Some(ReactionInput { message_id: "msg_1".into(), emoji: "👍".into() }),
            ..Default::default()
        };
        let c = check(input, false, false).unwrap();
        assert_eq!(c.pending.reaction, Some(("msg_1".into(), "👍".into())));
    }

    #[test]
    fn mentions_need_words_to_sit_in() {
        let input = RichInput { image: Some(media(None, Some("med_1"))), ..Default::default() };
        assert_eq!(code(check(input, false, true)), "invalid_request");
        let mut m = media(None, Some("med_1"));
        m.caption = Some("@5511".into());
        let input = RichInput { image: Some(m), ..Default::default() };
        assert!(check(input, false, true).is_ok());
    }
}
