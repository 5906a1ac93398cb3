//! What a message carries besides plain text — a media file, a location, a contact card, a
//! reaction — and the rules that check each one when a send is accepted.

use serde::{Deserialize, Serialize};

/// The kinds of media file WhatsApp carries.
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

/// The largest sticker WhatsApp shows.
pub const MAX_STICKER_BYTES: u64 = 1024 * 1024;
/// The longest caption, in characters (WhatsApp cuts longer ones).
pub const MAX_CAPTION_CHARS: usize = 1024;
/// The longest file name, in characters.
pub const MAX_FILE_NAME_CHARS: usize = 255;
/// The largest contact card, in bytes.
pub const MAX_VCARD_BYTES: usize = 64 * 1024;

impl MediaKind {
    pub const ALL: [MediaKind; 5] = [
        MediaKind::Image,
        MediaKind::Video,
        MediaKind::Audio,
        MediaKind::Document,
        MediaKind::Sticker,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Document => "document",
            MediaKind::Sticker => "sticker",
        }
    }

    pub fn parse(s: &str) -> Option<MediaKind> {
        MediaKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether a file of MIME type `mime` may go out as this kind. A document may be anything;
    /// the others must be what they claim, or WhatsApp shows a broken bubble.
    pub fn accepts(self, mime: &str) -> bool {
        let essence = mime_essence(mime);
        match self {
            MediaKind::Image => {
                matches!(essence.as_str(), "image/jpeg" | "image/png" | "image/webp" | "image/gif")
            }
            MediaKind::Video => essence.starts_with("video/"),
            MediaKind::Audio => essence.starts_with("audio/") || essence == "application/ogg",
            MediaKind::Document => !essence.is_empty(),
            MediaKind::Sticker => essence == "image/webp",
        }
    }

    /// The largest file of this kind, given the gateway's general cap.
    pub fn cap_bytes(self, general_cap: u64) -> u64 {
        match self {
            MediaKind::Sticker => general_cap.min(MAX_STICKER_BYTES),
            _ => general_cap,
        }
    }

    /// The chat state a contact sees while this kind is being prepared: "recording" before a
    /// voice note, "typing" before everything else.
    pub fn is_recorded(self, voice: bool) -> bool {
        self == MediaKind::Audio && voice
    }
}

/// `type/subtype` in lower case, without parameters (`Text/Plain; charset=x` → `text/plain`).
pub fn mime_essence(mime: &str) -> String {
    mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// A point on the map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

impl Location {
    /// Why these coordinates or labels cannot be sent, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if !self.latitude.is_finite() || !(-90.0..=90.0).contains(&self.latitude) {
            return Err(format!("latitude {} is not between -90 and 90", self.latitude));
        }
        if !self.longitude.is_finite() || !(-180.0..=180.0).contains(&self.longitude) {
            return Err(format!("longitude {} is not between -180 and 180", self.longitude));
        }
        if self.name.as_ref().is_some_and(|n| n.chars().count() > 256) {
            return Err("the location's name is longer than 256 characters".into());
        }
        if self.address.as_ref().is_some_and(|a| a.chars().count() > 512) {
            return Err("the location's address is longer than 512 characters".into());
        }
        Ok(())
    }
}

/// The longest name shown on a contact card's bubble.
pub const MAX_DISPLAY_NAME_CHARS: usize = 256;

/// A contact card: a vCard and the name shown on its bubble.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactCard {
    pub display_name: String,
    pub vcard: String,
}

impl ContactCard {
    /// Checks `vcard` (RFC 6350 framing, a `VERSION` and an `FN` line) and names the card
    /// after `display_name`, or the vCard's `FN` when none is given.
    pub fn new(vcard: &str, display_name: Option<&str>) -> Result<ContactCard, String> {
        if vcard.len() > MAX_VCARD_BYTES {
            return Err(format!("the vCard is larger than {MAX_VCARD_BYTES} bytes"));
        }
        // Folded lines (RFC 6350 §3.2) are joined first so that a long FN is read whole.
        let unfolded = vcard.replace("\r\n ", "").replace("\n ", "").replace("\r\n\t", "");
        let lines: Vec<&str> =
            unfolded.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
        let first = lines.first().map(|l| l.trim().to_ascii_uppercase());
        let last = lines.last().map(|l| l.trim().to_ascii_uppercase());
        if first.as_deref() != Some("BEGIN:VCARD") || last.as_deref() != Some("END:VCARD") {
            return Err("the vCard must start with BEGIN:VCARD and end with END:VCARD".into());
        }
        let property = |name: &str| {
            lines.iter().find_map(|l| {
                let (key, value) = l.split_once(':')?;
                let key = key.split(';').next()?.trim();
                // Grouped properties (`item1.TEL`) count too.
                let key = key.rsplit('.').next()?;
                key.eq_ignore_ascii_case(name).then(|| value.trim().to_string())
            })
        };
        if property("VERSION").is_none() {
            return Err("the vCard has no VERSION line".into());
        }
        let full_name = property("FN").filter(|n| !n.is_empty());
        let Some(full_name) = full_name else {
            return Err("the vCard has no FN (formatted name) line".into());
        };
        let display_name = match display_name.map(str::trim) {
            Some("") => return Err("the contact's display name is empty".into()),
            Some(n) => n.to_string(),
            None => full_name,
        };
        if display_name.chars().nth(MAX_DISPLAY_NAME_CHARS).is_some() {
            return Err(format!(
                "the contact's display name (or the vCard's FN) is longer than \
                 {MAX_DISPLAY_NAME_CHARS} characters"
            ));
        }
        Ok(ContactCard { display_name, vcard: vcard.to_string() })
    }
}

/// Why an emoji cannot be a reaction. An empty string is allowed: it removes a reaction.
pub fn check_reaction_emoji(emoji: &str) -> Result<(), String> {
    // The longest emoji sequences (families, flags with tags) stay well under 32 bytes.
    if emoji.len() > 32 {
        return Err("a reaction is one emoji".into());
    }
    if emoji.chars().any(|c| c.is_ascii_alphanumeric() || c.is_whitespace()) {
        return Err(format!("`{emoji}` is not an emoji"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_accept_their_own_types_only() {
        assert!(MediaKind::Image.accepts("image/jpeg"));
        assert!(MediaKind::Image.accepts("Image/PNG; q=1"));
        assert!(!MediaKind::Image.accepts("video/mp4"));
        assert!(MediaKind::Video.accepts("video/mp4"));
        assert!(!MediaKind::Video.accepts("image/gif"));
        assert!(MediaKind::Audio.accepts("audio/ogg; codecs=opus"));
        assert!(MediaKind::Audio.accepts("application/ogg"));
        assert!(!MediaKind::Audio.accepts("text/plain"));
        assert!(MediaKind::Document.accepts("application/pdf"));
        assert!(!MediaKind::Document.accepts(""));
        assert!(MediaKind::Sticker.accepts("image/webp"));
        assert!(!MediaKind::Sticker.accepts("image/png"));
    }

    #[test]
    fn stickers_have_their_own_cap() {
        assert_eq!(MediaKind::Sticker.cap_bytes(64 << 20), MAX_STICKER_BYTES);
        assert_eq!(MediaKind::Sticker.cap_bytes(1000), 1000);
        assert_eq!(MediaKind::Video.cap_bytes(64 << 20), 64 << 20);
    }

    #[test]
    fn only_voice_notes_are_recorded() {
        assert!(MediaKind::Audio.is_recorded(true));
        assert!(!MediaKind::Audio.is_recorded(false));
        assert!(!MediaKind::Video.is_recorded(true));
    }

    #[test]
    fn parse_round_trips() {
        for k in MediaKind::ALL {
            assert_eq!(MediaKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(MediaKind::parse("gif"), None);
    }

    fn at(latitude: f64, longitude: f64) -> Location {
        Location { latitude, longitude, name: None, address: None }
    }

    #[test]
    fn coordinates_must_be_on_earth() {
        assert!(at(-23.55, -46.63).check().is_ok());
        assert!(at(90.0, 180.0).check().is_ok());
        assert!(at(90.5, 0.0).check().unwrap_err().contains("latitude"));
        assert!(at(0.0, -180.1).check().unwrap_err().contains("longitude"));
        assert!(at(f64::NAN, 0.0).check().is_err());
        let mut named = at(1.0, 1.0);
        named.name = Some("x".repeat(257));
        assert!(named.check().unwrap_err().contains("name"));
    }

    const CARD: &str =
        "BEGIN:VCARD\nVERSION:3.0\nFN:Ana Souza\nTEL;type=CELL:+5511988887777\nEND:VCARD";

    #[test]
    fn a_valid_vcard_is_named_after_its_fn() {
        let c = ContactCard::new(CARD, None).unwrap();
        assert_eq!(c.display_name, "Ana Souza");
        let long = "n".repeat(MAX_DISPLAY_NAME_CHARS + 1);
        let err = ContactCard::new(CARD, Some(&long)).unwrap_err();
        assert!(err.contains("256") && !err.contains("nnnn"), "{err}");
        assert!(ContactCard::new(CARD, Some(&long[1..])).is_ok());
        assert_eq!(ContactCard::new(CARD, Some("Ana")).unwrap().display_name, "Ana");
        let crlf = CARD.replace('\n', "\r\n");
        assert!(ContactCard::new(&crlf, None).is_ok());
        let grouped = CARD.replace("FN:", "item1.FN:");
        assert_eq!(ContactCard::new(&grouped, None).unwrap().display_name, "Ana Souza");
    }

    #[test]
    fn broken_vcards_are_refused_with_the_reason() {
        assert!(ContactCard::new("hello", None).unwrap_err().contains("BEGIN:VCARD"));
        let no_fn = CARD.replace("FN:Ana Souza\n", "");
        assert!(ContactCard::new(&no_fn, None).unwrap_err().contains("FN"));
        let no_version = CARD.replace("VERSION:3.0\n", "");
        assert!(ContactCard::new(&no_version, None).unwrap_err().contains("VERSION"));
        assert!(ContactCard::new(CARD, Some("  ")).is_err());
        let huge = format!("BEGIN:VCARD\nVERSION:3.0\nFN:{}\nEND:VCARD", "a".repeat(70_000));
        assert!(ContactCard::new(&huge, None).unwrap_err().contains("larger"));
    }

    #[test]
    fn reactions_are_emoji_or_empty() {
        assert!(check_reaction_emoji("👍").is_ok());
        assert!(check_reaction_emoji("👨‍👩‍👧‍👦").is_ok());
        assert!(check_reaction_emoji("").is_ok());
        assert!(check_reaction_emoji("ok").is_err());
        assert!(check_reaction_emoji(&"👍".repeat(20)).is_err());
    }
}
