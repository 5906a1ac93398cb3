//! Why a media operation failed, in words a user can act on.

use bzapper_core::content::MediaKind;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("the file is larger than the limit of {}", human_size(*cap))]
    TooLarge { cap: u64 },
    #[error("the file is {got}, which cannot be sent as {} ({})", article(*expected), hint(*expected))]
    WrongType { expected: MediaKind, got: String },
    #[error("the media could not be fetched: {0}")]
    Unreachable(String),
    /// The URL's host is, or resolves to, an address the outbound guard refuses (loopback,
    /// private, metadata, ...; see `crate::outbound`).
    #[error("the media URL's address is not allowed")]
    NotAllowed,
    /// No answer from the URL: no connection, no answer in time, a name that does not
    /// resolve, a failed TLS handshake, too many redirects. One text for all of them, so the
    /// tenant cannot tell a closed port from a silent one (the detail is logged at debug).
    #[error("the media URL could not be fetched (no connection, or no answer in time)")]
    NoAnswer,
    #[error("the media URL did not deliver the file in time")]
    Timeout,
    #[error("the media URL answered HTTP {0}")]
    Status(u16),
    #[error("no such media")]
    NotFound,
    #[error("the media store failed: {0}")]
    Io(String),
}

pub(super) fn io(e: std::io::Error) -> MediaError {
    MediaError::Io(e.to_string())
}

fn human_size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

fn article(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "an image",
        MediaKind::Video => "a video",
        MediaKind::Audio => "audio",
        MediaKind::Document => "a document",
        MediaKind::Sticker => "a sticker",
    }
}

fn hint(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "JPEG, PNG, WebP or GIF",
        MediaKind::Video => "a video/* type",
        MediaKind::Audio => "an audio/* type or application/ogg",
        MediaKind::Document => "any non-empty file",
        MediaKind::Sticker => "WebP, at most 1 MiB",
    }
}
