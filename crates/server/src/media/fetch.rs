//! Downloading a media URL for a send: bounded in time and size, refused as soon as the
//! answer shows it cannot be sent as the kind asked for, streamed to disk like an upload.

use std::time::Duration;

use bzapper_core::content::MediaKind;
use tokio::time::{timeout_at, Instant};

use axum::body::Bytes;
use futures::stream::BoxStream;

use crate::outbound::{self, OutboundClient};

use super::error::MediaError;
use super::record::MediaLimits;
use super::sniff;

/// The longest wait for the answer's headers: a server that accepts and says nothing fails
/// in this time even when the whole download may take longer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// Downloads `url` for a send of `kind`:
/// - http and https only;
/// - through the outbound guard: an address it refuses, first or on a redirect hop
///   → `NotAllowed`;
/// - no connection, or no answer's headers within `min(fetch_timeout, 20 s)` → `NoAnswer`;
/// - the whole file within `fetch_timeout` → `Timeout`;
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
    http: &OutboundClient,
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

    let request = http.get(url).map_err(|_| MediaError::NotAllowed)?;
    let answer = timeout_at(answer_deadline, request.send())
        .await
        .map_err(|_| {
            tracing::debug!(host = url.host_str(), "a media URL gave no answer in time");
            MediaError::NoAnswer
        })?
        .map_err(|e| request_error(url, e))?;
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

/// What a failed request tells the tenant: that the guard refused the address, or only that
/// there was no answer (the reason, which would tell a refused port from a timeout, goes to the
/// debug log).
fn request_error(url: &url::Url, e: reqwest::Error) -> MediaError {
    if outbound::is_blocked(&e) {
        return MediaError::NotAllowed;
    }
    tracing::debug!(host = url.host_str(), error = %outbound::detail(e), "a media URL could not be fetched");
    MediaError::NoAnswer
}
