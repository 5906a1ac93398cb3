//! Downloading a media URL for a send: bounded in time and size, refused as soon as the
//! answer shows it cannot be sent as the kind asked for, streamed to disk like an upload.

use std::time::Duration;

use bzapper_core::content::MediaKind;
use tokio::time::{timeout_at, Instant};

use axum::body::Bytes;
use futures::stream::BoxStream;

use super::error::MediaError;
use super::record::MediaLimits;
use super::sniff;

/// The longest wait for the answer's headers: a server that accepts and says nothing fails
/// in this time even when the whole download may take longer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// Downloads `url` for a send of `kind`:
/// - http and https only;
/// - the answer's headers within `min(fetch_timeout, 20 s)`, the whole file within
///   `fetch_timeout` → `Timeout`;
/// - a non-2xx answer → `Status`;
/// - `kind.cap_bytes(max_bytes)`, from `Content-Length` before reading and while streaming
///   → `TooLarge`;
/// - the `Content-Type` (unless absent or `application/octet-stream`) and the sniffed bytes
///   must suit `kind` → `WrongType`.
///
/// With no `file_name`, the URL's last path segment names the file.
///
/// Returns the answer's body still to be read: the store streams it to disk, and must finish
/// by [`Download::deadline`].
pub(super) async fn download(
    http: &reqwest::Client,
    limits: &MediaLimits,
    url: &url::Url,
    kind: MediaKind,
    file_name: Option<String>,
) -> Result<Download, MediaError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(MediaError::Unreachable(format!(
            "only http:// and https:// URLs are fetched, not {}:",
            url.scheme()
        )));
    }
    let cap = kind.cap_bytes(limits.max_bytes);
    let started = Instant::now();
    let deadline = started + limits.fetch_timeout;
    let answer_deadline = started + limits.fetch_timeout.min(ANSWER_TIMEOUT);

    let answer = timeout_at(answer_deadline, http.get(url.clone()).send())
        .await
        .map_err(|_| MediaError::Timeout)?
        .map_err(request_error)?;
    let status = answer.status();
    if !status.is_success() {
        return Err(MediaError::Status(status.as_u16()));
    }
    if answer.content_length().is_some_and(|len| len > cap) {
        return Err(MediaError::TooLarge { cap });
    }
    let header = answer
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| sniff::declared(Some(v)));
    if let Some(h) = &header {
        if !kind.accepts(h) {
            return Err(MediaError::WrongType {
                expected: kind,
                got: bzapper_core::content::mime_essence(h),
            });
        }
    }
    let file_name = file_name.or_else(|| sniff::file_name_from_url(url));
    Ok(Download {
        declared_mime: header,
        file_name,
        cap,
        deadline,
        body: Box::pin(answer.bytes_stream()),
    })
}

/// An answer whose headers passed the checks, its body not yet read.
pub(super) struct Download {
    /// The `Content-Type` it declared (when one that means something).
    pub declared_mime: Option<String>,
    pub file_name: Option<String>,
    /// The most bytes the file may have.
    pub cap: u64,
    /// When the whole file must be in.
    pub deadline: Instant,
    pub body: BoxStream<'static, reqwest::Result<Bytes>>,
}

/// A failed request in words: the error and its causes (reqwest's own message alone says
/// little more than "error sending request").
fn request_error(e: reqwest::Error) -> MediaError {
    if e.is_timeout() {
        return MediaError::Timeout;
    }
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    MediaError::Unreachable(msg)
}
