//! Media files per tenant: upload one (multipart, streamed to disk as it arrives), read its
//! record, stream its bytes back, delete it. Another tenant's file answers 404 like a missing
//! one. On a cluster node, reading an upload another node received copies it here first, and a
//! delete is passed on to the other live nodes.

use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json as JsonOut;
use bzapper_core::content::{mime_essence, MediaKind};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::auth::{Admin, Tenant};
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::Path;
use crate::http::state::AppState;
use crate::media::blobs::BlobRead;
use crate::media::{peers, MediaError, StoredMedia};

/// Room for the multipart framing and the small text parts around the file: the request
/// may be this much larger than the file cap.
const MULTIPART_HEADROOM: u64 = 1024 * 1024;
/// The longest text part (`kind`).
const MAX_TEXT_PART: usize = 64;
/// How long the rest of a refused upload is read (and dropped) so that the client gets the
/// answer rather than a reset connection.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A stored file.
#[derive(Serialize, ToSchema)]
pub struct MediaView {
    /// `med_…`
    pub id: String,
    /// Sniffed from the bytes when recognisable, else as declared by the upload.
    pub mime: String,
    /// The file's size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    /// The upload's file name, when it had one.
    pub file_name: Option<String>,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
    /// The file is deleted after this.
    pub expires_at: DateTime<Utc>,
}

impl From<StoredMedia> for MediaView {
    fn from(m: StoredMedia) -> Self {
        MediaView {
            id: m.id,
            mime: m.mime,
            size: m.size,
            sha256: m.sha256,
            file_name: m.file_name,
            created_at: m.created_at,
            expires_at: m.expires_at,
        }
    }
}

/// The upload form (`multipart/form-data`).
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the form in the OpenAPI document; the handler streams it.
pub struct MediaUpload {
    /// The file; its part's filename and content type are kept (the type sniffed from the
    /// bytes wins over a declared one).
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// When given, the file must be able to go out as this kind (422 `invalid_media`
    /// otherwise), and a sticker is capped at 1 MiB. Empty is the same as absent.
    #[schema(nullable = false)]
    pub kind: Option<UploadKind>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum UploadKind {
    Image,
    Video,
    Audio,
    Document,
    Sticker,
}

/// A file's bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct FileBytes(Vec<u8>);

/// What the form's parts gave so far.
#[derive(Default)]
struct Form {
    kind: Option<MediaKind>,
    /// The kind came after the file: the stored file is checked against it at the end.
    kind_after_file: bool,
    stored: Option<StoredMedia>,
}

/// Upload a media file
///
/// Stores a file (`multipart/form-data`, part `file`, optional text part `kind`: `image`, `video`,
/// `audio`, `document` or `sticker`) to send later by `media_id`. It is streamed to disk as it
/// arrives, never held in memory whole; over `--media-max-mb` is 413 `media_too_large`. Uploads are
/// kept for the media retention.
#[utoipa::path(post, path = "/v1/media", tag = "media", security(("bearer" = [])),
    request_body(content = MediaUpload, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = MediaView),
        (status = 400, description = "a malformed multipart body", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, description = "`media_too_large`", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "`quota_exceeded`: bytes of stored media per tenant; or `rate_limited` (`Retry-After`)"),
        (status = 422, description = "`invalid_media` (not of the kind asked for, or empty), or `invalid_request` (no `file` part, a bad `kind`, an unknown part)", body = ErrorBody),
    ))]
pub async fn upload(
    tenant: Tenant,
    State(state): State<AppState>,
    req: Request,
) -> ApiResult<(StatusCode, JsonOut<MediaView>)> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if mime_essence(content_type.unwrap_or("")) != "multipart/form-data" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be `multipart/form-data` with the file in a part named `file`",
        ));
    }
    // A tenant already at its media quota is refused before its body is read.
    state.app.media_quota.check_room(&tenant.tenant_id).await?;
    let max = state.app.media.limits().max_bytes;
    let limit = max.saturating_add(MULTIPART_HEADROOM);
    if content_length(req.headers()).is_some_and(|len| len > limit) {
        return Err(MediaError::TooLarge { cap: max }.into());
    }
    // The route lifts the API's small default body limit; this one fits the media cap.
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let req = req.map(|b| Body::new(http_body_util::Limited::new(b, limit)));
    let mut multipart = Multipart::from_request(req, &()).await.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_multipart",
            "the `multipart/form-data` Content-Type has no valid boundary",
        )
    })?;

    let mut form = Form::default();
    let read = read_form(&state, &tenant.tenant_id, &mut multipart, &mut form).await;
    let checked = match read {
        Ok(()) => finish(&state, &form).await,
        Err(e) => Err(e),
    };
    match checked {
        Ok(()) => {
            let m = form.stored.expect("finish checked that a file was stored");
            Ok((StatusCode::CREATED, JsonOut(m.into())))
        }
        Err(e) => {
            if let Some(m) = &form.stored {
                if let Err(e) = state.app.media.delete(&m.tenant_id, &m.id).await {
                    tracing::warn!(media = %m.id, error = %e, "removing a refused upload failed");
                }
            }
            drain(&mut multipart).await;
            Err(e)
        }
    }
}

async fn read_form(
    state: &AppState,
    tenant_id: &str,
    multipart: &mut Multipart,
    form: &mut Form,
) -> ApiResult<()> {
    let max = state.app.media.limits().max_bytes;
    let form_error = |e: MultipartError| multipart_error(e, max);
    while let Some(mut field) = multipart.next_field().await.map_err(form_error)? {
        match field.name() {
            Some("kind") => {
                if form.kind.is_some() {
                    return Err(ApiError::invalid("give `kind` once"));
                }
                let mut text = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(form_error)? {
                    text.extend_from_slice(&chunk);
                    if text.len() > MAX_TEXT_PART {
                        return Err(bad_kind());
                    }
                }
                let text = std::str::from_utf8(&text).map_err(|_| bad_kind())?.trim();
                // An empty field (a form's unselected choice) says nothing.
                if !text.is_empty() {
                    form.kind = Some(MediaKind::parse(text).ok_or_else(bad_kind)?);
                    form.kind_after_file = form.stored.is_some();
                }
            }
            Some("file") => {
                if form.stored.is_some() {
                    return Err(ApiError::invalid("one `file` part per upload"));
                }
                let declared = field.content_type().map(str::to_string);
                let file_name = field.file_name().map(str::to_string);
                // Which way the request body broke, if it did (the store only sees a failed
                // stream).
                let broke = AtomicU16::new(0);
                let body = field.map(|chunk| {
                    chunk.map_err(|e| {
                        broke.store(e.status().as_u16(), Ordering::Relaxed);
                        e.body_text()
                    })
                });
                let media = &state.app.media;
                let stored = match form.kind {
                    Some(kind) => {
                        media
                            .put_stream_as(tenant_id, kind, declared.as_deref(), file_name, body)
                            .await
                    }
                    None => {
                        media.put_stream(tenant_id, declared.as_deref(), file_name, max, body).await
                    }
                };
                match stored {
                    Ok(m) => form.stored = Some(m),
                    Err(MediaError::Unreachable(_)) => {
                        return Err(body_error(broke.load(Ordering::Relaxed), max))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Some(other) => {
                let other = other.chars().take(64).collect::<String>();
                return Err(ApiError::invalid(format!(
                    "unknown part `{other}`; the form takes `file` and `kind`"
                )));
            }
            None => return Err(ApiError::invalid("every part of the form needs a name")),
        }
    }
    Ok(())
}

/// The checks that need the whole form.
async fn finish(state: &AppState, form: &Form) -> ApiResult<()> {
    let Some(m) = &form.stored else {
        return Err(ApiError::invalid("the form needs a `file` part with the file"));
    };
    if m.size == 0 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_media",
            "the file is empty",
        ));
    }
    if let (Some(kind), true) = (form.kind, form.kind_after_file) {
        state.app.media.check_kind(m, kind).await?;
    }
    // Past the quota with this file: refused, and the caller deletes it.
    state.app.media_quota.check_stored(m).await?;
    Ok(())
}

fn bad_kind() -> ApiError {
    ApiError::invalid("`kind` must be one of image, video, audio, document, sticker")
}

/// The form could not be read: the body is over the limit, or malformed.
fn multipart_error(e: MultipartError, max: u64) -> ApiError {
    if crate::http::extract::body_timed_out(&e) {
        return ApiError::body_timeout();
    }
    body_error(e.status().as_u16(), max)
}

/// The request body failed: too large (413 `media_too_large`), else malformed or cut short
/// (400 `invalid_multipart`).
fn body_error(status: u16, max: u64) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE.as_u16() {
        MediaError::TooLarge { cap: max }.into()
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_multipart",
            "the multipart/form-data body is malformed or was cut short",
        )
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Reads the rest of a refused request (bounded by the body limit and [`DRAIN_TIMEOUT`]), so
/// that the connection is not reset under the client while it still sends, losing the answer.
async fn drain(multipart: &mut Multipart) {
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while let Ok(Some(mut field)) = multipart.next_field().await {
            while let Ok(Some(_)) = field.chunk().await {}
        }
    })
    .await;
}

/// Get a media file's record
///
/// A stored file's record: type, size, kind, name and expiry (on a cluster node, copied first from
/// the node that has it).
#[utoipa::path(get, path = "/v1/media/{id}", tag = "media", security(("bearer" = [])),
    params(("id" = String, Path, description = "media id")),
    responses((status = 200, body = MediaView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<JsonOut<MediaView>> {
    let m = state.app.media.find(&tenant.tenant_id, &id).await?.ok_or_else(ApiError::not_found)?;
    Ok(JsonOut(m.into()))
}

/// Download a media file
///
/// A stored file's bytes, streamed, with its type as `Content-Type` (on a cluster node, copied
/// first from the node that has it).
#[utoipa::path(get, path = "/v1/media/{id}/content", tag = "media", security(("bearer" = [])),
    params(("id" = String, Path, description = "media id")),
    responses(
        (status = 200, description = "the file, with its stored type as Content-Type", content_type = "*/*", body = FileBytes),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
pub async fn content(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let m = state.app.media.find(&tenant.tenant_id, &id).await?.ok_or_else(ApiError::not_found)?;
    stream_stored(&state, &m).await
}

/// A stored file streamed as the answer (never read whole), with its type, length, name
/// and, when given, its SHA-256 as ETag.
pub fn stream_file(
    read: BlobRead,
    mime: &str,
    file_name: Option<&str>,
    sha256: Option<&str>,
) -> ApiResult<Response> {
    let content_type =
        HeaderValue::from_str(mime).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut res = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, read.size)
        .header(header::CONTENT_DISPOSITION, disposition(file_name))
        // User content: never rendered as something other than what it is.
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if let Some(sha) = sha256 {
        res = res.header(header::ETAG, format!("\"{sha}\""));
    }
    res.body(Body::from_stream(read.body)).map_err(ApiError::internal)
}

/// The stored file `m` streamed; 404 when it is gone (deleted or swept since the record was
/// read).
async fn stream_stored(state: &AppState, m: &StoredMedia) -> ApiResult<Response> {
    let read = state.app.media.open(m).await?;
    stream_file(read, &m.mime, m.file_name.as_deref(), Some(&m.sha256))
}

/// `attachment`, with the file name (RFC 6266: an ASCII fallback and the UTF-8 original).
fn disposition(file_name: Option<&str>) -> String {
    let Some(name) = file_name else { return "attachment".into() };
    let ascii: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Delete a media file
///
/// Deletes a stored file. On a cluster node, every other live node is asked to delete its copy too;
/// 404 when no node had it. A node that cannot be reached keeps its copy until the retention ends.
#[utoipa::path(delete, path = "/v1/media/{id}", tag = "media", security(("bearer" = [])),
    params(("id" = String, Path, description = "media id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if state.app.media.delete_everywhere(&tenant.tenant_id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

/// Copy an upload between nodes
///
/// Cluster-internal (admin token): one node's upload for another node of the cluster: the file
/// streamed, its record in the `x-bzapper-media` header (the record's JSON, base64url). Only this
/// node's disk is looked at; 404 when the file is not here. Nodes ask each other this when a send
/// names an upload another node received.
#[utoipa::path(get, path = "/v1/cluster/media/{tenant_id}/{id}", tag = "cluster", security(("bearer" = [])),
    params(("tenant_id" = String, Path, description = "tenant id"), ("id" = String, Path, description = "media id")),
    responses(
        (status = 200, description = "the file; its record in the `x-bzapper-media` header", content_type = "*/*", body = FileBytes),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
pub async fn peer_copy(
    _: Admin,
    State(state): State<AppState>,
    Path((tenant_id, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let m = state.app.media.get(&tenant_id, &id).await?.ok_or_else(ApiError::not_found)?;
    let record = HeaderValue::from_str(&peers::encode_record(&m)).map_err(ApiError::internal)?;
    let mut res = stream_stored(&state, &m).await?;
    res.headers_mut().insert(peers::RECORD_HEADER, record);
    Ok(res)
}

/// Delete a node's copy of an upload
///
/// Cluster-internal (admin token): deletes one node's copy of an upload, for another node passing
/// on a tenant's `DELETE /v1/media/{id}`. Only this node's disk is touched (it is never passed on
/// again); 404 when the file is not here.
#[utoipa::path(delete, path = "/v1/cluster/media/{tenant_id}/{id}", tag = "cluster", security(("bearer" = [])),
    params(("tenant_id" = String, Path, description = "tenant id"), ("id" = String, Path, description = "media id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn peer_delete(
    _: Admin,
    State(state): State<AppState>,
    Path((tenant_id, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    if state.app.media.delete(&tenant_id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_quoted_safely() {
        assert_eq!(disposition(None), "attachment");
        assert_eq!(
            disposition(Some("a b.pdf")),
            "attachment; filename=\"a b.pdf\"; filename*=UTF-8''a%20b.pdf"
        );
        assert_eq!(
            disposition(Some("é\"x.png")),
            "attachment; filename=\"__x.png\"; filename*=UTF-8''%C3%A9%22x.png"
        );
    }
}
