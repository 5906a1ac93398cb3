//! The content of an inbound (`POST /v1/sim/instances/{id}/inbound`): the spec checked with
//! the rules of `bzapper_core::content`, so that a test cannot inject a message WhatsApp would
//! never deliver, and a media file decoded (or made up) and hashed before the network's lock
//! is taken.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use bzapper_core::content::{check_reaction_emoji, MAX_CAPTION_CHARS, MAX_FILE_NAME_CHARS};
use bzapper_core::{ContactCard, Location, MediaKind};

use super::control::{InboundMediaSpec, InboundSpec};
use super::media::{MediaBytes, SyntheticHashes, MAX_INBOUND_MEDIA_BYTES};
use super::transport::SimError;

/// What the message carries besides its text, checked.
pub(crate) enum Prepared {
    Text,
    Media(PreparedMedia),
    Location(Location),
    Contact(ContactCard),
    Reaction { target_id: String, emoji: String },
}

pub(crate) struct PreparedMedia {
    pub kind: MediaKind,
    pub mime: String,
    pub file_name: Option<String>,
    pub voice: bool,
    pub bytes: MediaBytes,
    /// Lower-case hex.
    pub sha256: String,
}

fn invalid<T>(message: impl Into<String>) -> Result<T, SimError> {
    Err(SimError::InvalidRequest(message.into()))
}

/// Checks everything of `spec` but its addresses (which need the network's state).
pub(crate) async fn prepare(
    spec: &InboundSpec,
    hashes: &SyntheticHashes,
) -> Result<Prepared, SimError> {
    let kinds = [
        spec.media.is_some(),
        spec.location.is_some(),
        spec.contact.is_some(),
        spec.reaction.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        return invalid("give at most one of media, location, contact and reaction");
    }
    if spec.reply_to.as_deref().is_some_and(|r| r.trim().is_empty()) {
        return invalid("reply_to: must not be empty");
    }
    // Only a media file has a caption; WhatsApp shows no text on the other kinds.
    let no_text = |what: &str| {
        if spec.text.is_empty() {
            Ok(())
        } else {
            invalid(format!("text: a {what} has no text (only media has a caption)"))
        }
    };
    if let Some(media) = &spec.media {
        if spec.text.chars().count() > MAX_CAPTION_CHARS {
            return invalid(format!("text: a caption is at most {MAX_CAPTION_CHARS} characters"));
        }
        let bytes = media_bytes(media)?;
        let sha256 = hashes.sha256(&bytes).await?;
        return Ok(Prepared::Media(PreparedMedia {
            kind: media.kind,
            mime: media.mime.clone(),
            file_name: media.file_name.clone(),
            voice: media.voice,
            bytes,
            sha256,
        }));
    }
    if let Some(location) = &spec.location {
        no_text("location")?;
        location.check().map_err(|e| SimError::InvalidRequest(format!("location: {e}")))?;
        return Ok(Prepared::Location(location.clone()));
    }
    if let Some(contact) = &spec.contact {
        no_text("contact card")?;
        let card = ContactCard::new(&contact.vcard, contact.display_name.as_deref())
            .map_err(|e| SimError::InvalidRequest(format!("contact: {e}")))?;
        return Ok(Prepared::Contact(card));
    }
    if let Some(reaction) = &spec.reaction {
        no_text("reaction")?;
        if spec.reply_to.is_some() {
            return invalid("reply_to: a reaction does not quote");
        }
        if reaction.message_id.trim().is_empty() {
            return invalid("reaction.message_id: must not be empty");
        }
        check_reaction_emoji(&reaction.emoji)
            .map_err(|e| SimError::InvalidRequest(format!("reaction.emoji: {e}")))?;
        return Ok(Prepared::Reaction {
            target_id: reaction.message_id.clone(),
            emoji: reaction.emoji.clone(),
        });
    }
    if spec.text.is_empty() {
        return invalid("text: must not be empty");
    }
    Ok(Prepared::Text)
}

/// The file's bytes: decoded from base64, or made up to the given size.
fn media_bytes(media: &InboundMediaSpec) -> Result<MediaBytes, SimError> {
    let kind = media.kind.as_str();
    if !media.kind.accepts(&media.mime) {
        return invalid(format!("media.mime: a {kind} cannot be of type `{}`", media.mime));
    }
    if media.voice && media.kind != MediaKind::Audio {
        return invalid("media.voice: only an audio can be a voice note");
    }
    if media.file_name.as_ref().is_some_and(|n| n.chars().count() > MAX_FILE_NAME_CHARS) {
        return invalid(format!("media.file_name: at most {MAX_FILE_NAME_CHARS} characters"));
    }
    let cap = media.kind.cap_bytes(MAX_INBOUND_MEDIA_BYTES);
    let too_big = || invalid(format!("media: a {kind} is at most {cap} bytes"));
    match (&media.data_base64, media.size) {
        (Some(_), Some(_)) => invalid("media: give data_base64 or size, not both"),
        (None, None) => invalid("media: give data_base64 or size"),
        (None, Some(0)) => invalid("media.size: must be at least 1"),
        (None, Some(n)) if n > cap => too_big(),
        (None, Some(n)) => Ok(MediaBytes::Synthetic(n)),
        (Some(data), None) => {
            // Four characters carry three bytes: refuse an oversized file before decoding it.
            if (data.len() as u64 / 4).saturating_mul(3) > cap {
                return too_big();
            }
            let engine = GeneralPurpose::new(
                &alphabet::STANDARD,
                GeneralPurposeConfig::new()
                    .with_decode_padding_mode(DecodePaddingMode::Indifferent),
            );
            let bytes = engine
                .decode(data)
                .map_err(|e| SimError::InvalidRequest(format!("media.data_base64: {e}")))?;
            match bytes.len() as u64 {
                0 => invalid("media.data_base64: the file is empty"),
                n if n > cap => too_big(),
                _ => Ok(MediaBytes::Data(bytes.into())),
            }
        }
    }
}
