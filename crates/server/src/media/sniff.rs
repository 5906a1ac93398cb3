//! What a file is: its MIME type sniffed from its first bytes (the `infer` crate), the
//! declared type as a fallback, and whether it may go out as a given [`MediaKind`].

use bzapper_core::content::{mime_essence, MediaKind, MAX_FILE_NAME_CHARS};

use super::error::MediaError;

/// How many leading bytes are kept for sniffing. Every signature `infer` knows lies well
/// within this (the deepest, tar's, at byte 257).
pub const HEAD_LEN: usize = 8 * 1024;

/// The type told by the bytes themselves, when they are recognisable.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    if head.is_empty() {
        return None;
    }
    infer::get(head).map(|t| t.mime_type())
}

/// A declared type (a `Content-Type` header, a multipart part's type) made safe to keep and to
/// send back as a header: `type/subtype` in lower case with token characters only, plus its
/// parameters when they are plain visible ASCII. `None` when it is not a MIME type at all, or
/// says nothing (`application/octet-stream`).
pub fn declared(mime: Option<&str>) -> Option<String> {
    let mime = mime?.trim();
    let essence = mime_essence(mime);
    let (ty, sub) = essence.split_once('/')?;
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    if !token(ty) || !token(sub) || is_unspecific(&essence) {
        return None;
    }
    let params = mime.split_once(';').map(|(_, p)| p.trim()).unwrap_or("");
    let params_ok = params.len() <= 200 && params.bytes().all(|b| (0x20..0x7f).contains(&b));
    if params.is_empty() || !params_ok {
        Some(essence)
    } else {
        Some(format!("{essence}; {params}"))
    }
}

/// Types that only say "some bytes": servers answer them for anything (object stores do), so
/// they neither contradict nor confirm a kind.
fn is_unspecific(essence: &str) -> bool {
    matches!(essence, "application/octet-stream" | "binary/octet-stream" | "application/unknown")
}

/// The type a stored file gets: the sniffed one (the bytes do not lie), keeping the declared
/// one's parameters (`audio/ogg; codecs=opus`) when both agree; else the declared one; else
/// `application/octet-stream`.
pub fn choose(sniffed: Option<&str>, declared: Option<&str>) -> String {
    match (sniffed, declared) {
        (Some(s), Some(d)) if mime_essence(d) == s => d.to_string(),
        (Some(s), _) => s.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) => "application/octet-stream".to_string(),
    }
}

/// Whether a file may go out as `kind`. Images and stickers must be recognised from their
/// bytes (every format WhatsApp shows for them is, so unrecognised bytes are a broken picture);
/// the other kinds go by the sniffed type when there is one, else by `mime`.
pub fn check_kind(
    kind: MediaKind,
    sniffed: Option<&str>,
    mime: &str,
    size: u64,
) -> Result<(), MediaError> {
    let wrong = |got: String| Err(MediaError::WrongType { expected: kind, got });
    if size == 0 {
        return wrong("empty".into());
    }
    match sniffed {
        Some(s) if kind.accepts(s) => Ok(()),
        Some(s) => wrong(s.to_string()),
        None if matches!(kind, MediaKind::Image | MediaKind::Sticker) => {
            wrong("in a format that is not recognised".into())
        }
        None if kind.accepts(mime) => Ok(()),
        None => wrong(mime_essence(mime)),
    }
}

/// A file name kept as metadata (it never becomes a path): its last path component, without
/// control characters, at most 255 characters; `None` when nothing is left.
pub fn clean_file_name(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String =
        base.chars().filter(|c| !c.is_control()).take(MAX_FILE_NAME_CHARS).collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty() && cleaned != "." && cleaned != "..").then(|| cleaned.to_string())
}

/// The file name a URL suggests: its last path segment, percent-decoded.
pub fn file_name_from_url(url: &url::Url) -> Option<String> {
    let last = url.path_segments()?.rev().find(|s| !s.is_empty())?;
    clean_file_name(&percent_decode(last))
}

/// `%XX` escapes decoded (invalid UTF-8 replaced), the rest kept as it is.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn declared_types_are_cleaned() {
        assert_eq!(declared(Some("Image/PNG")).as_deref(), Some("image/png"));
        assert_eq!(
            declared(Some("audio/ogg;codecs=opus")).as_deref(),
            Some("audio/ogg; codecs=opus")
        );
        assert_eq!(declared(Some("application/octet-stream")), None);
        assert_eq!(declared(Some("nonsense")), None);
        assert_eq!(declared(Some("text/plain\r\nX-Evil: 1")), None);
        assert_eq!(declared(Some("text/plain; x=\"\r\n\"")).as_deref(), Some("text/plain"));
        assert_eq!(declared(Some("te xt/plain")), None);
        assert_eq!(declared(None), None);
    }

    #[test]
    fn the_bytes_win_over_the_declared_type() {
        assert_eq!(sniff(PNG), Some("image/png"));
        assert_eq!(choose(sniff(PNG), Some("text/plain")), "image/png");
        assert_eq!(choose(None, Some("text/plain")), "text/plain");
        assert_eq!(choose(None, None), "application/octet-stream");
        assert_eq!(
            choose(Some("audio/ogg"), Some("audio/ogg; codecs=opus")),
            "audio/ogg; codecs=opus"
        );
        assert_eq!(sniff(b"<!DOCTYPE html><html></html>"), Some("text/html"));
    }

    #[test]
    fn kinds_are_checked_against_the_bytes() {
        assert!(check_kind(MediaKind::Image, Some("image/png"), "image/png", 10).is_ok());
        assert!(check_kind(MediaKind::Image, Some("text/html"), "image/png", 10).is_err());
        assert!(check_kind(MediaKind::Image, None, "image/png", 10).is_err());
        assert!(check_kind(MediaKind::Sticker, Some("image/png"), "image/png", 10).is_err());
        assert!(check_kind(MediaKind::Audio, None, "audio/ogg", 10).is_ok());
        assert!(check_kind(MediaKind::Video, None, "application/octet-stream", 10).is_err());
        assert!(check_kind(MediaKind::Document, None, "application/octet-stream", 10).is_ok());
        assert!(check_kind(MediaKind::Document, None, "text/plain", 0).is_err());
    }

    #[test]
    fn file_names_are_metadata_only() {
        assert_eq!(clean_file_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(clean_file_name("C:\\fakepath\\a b.pdf").as_deref(), Some("a b.pdf"));
        assert_eq!(clean_file_name("x\u{0}y\n"), Some("xy".into()));
        assert_eq!(clean_file_name(".."), None);
        assert_eq!(clean_file_name("  "), None);
        assert_eq!(clean_file_name(&"a".repeat(300)).unwrap().chars().count(), 255);
        let u = url::Url::parse("https://h/files/Relat%C3%B3rio%20final.pdf?x=1").unwrap();
        assert_eq!(file_name_from_url(&u).as_deref(), Some("Relatório final.pdf"));
        assert_eq!(file_name_from_url(&url::Url::parse("https://h/").unwrap()), None);
    }
}
