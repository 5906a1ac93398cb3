//! `GET /v1/instances/{id}/media/{message_id}`: the media file of a received message (the
//! `media_url` of its `message.received` event). The gateway downloads and decrypts it from
//! WhatsApp on the first request, through the number that received it, and serves later
//! requests from its disk cache until the media retention time passes.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bzapper_driver::InboundMedia;

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::routes::live::{connection, driver_error};
use crate::http::routes::media::stream_file;
use crate::http::state::AppState;

fn no_media(why: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", why.to_string())
}

/// The file of a received media message.
#[utoipa::path(get, path = "/v1/instances/{id}/media/{message_id}", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id"), ("message_id" = String, Path, description = "the `message_id` of the `message.received` event")),
    responses(
        (status = 200, description = "the file, with its MIME type", content_type = "application/octet-stream"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`instance_unavailable`: not cached and the number is not connected"),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn get(
    tenant: Tenant,
    State(state): State<AppState>,
    Path((id, message_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let rec = state.store.find_inbound(&tenant.tenant_id, &message_id).await?;
    let rec = rec.filter(|r| r.instance_id == id).ok_or_else(|| {
        no_media("this instance received no message with that id (or it is past retention)")
    })?;
    let media = rec
        .media
        .and_then(|v| serde_json::from_value::<InboundMedia>(v).ok())
        .ok_or_else(|| no_media("that message has no media file"))?;
    let path = state.media.inbound_cache_path(&tenant.tenant_id, &id, &rec.wa_id);
    if tokio::fs::metadata(&path).await.is_err() {
        let (_, conn) = connection(&state, &tenant, &id).await?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(ApiError::internal)?;
        }
        // Downloaded beside and renamed, so a reader never sees half a file.
        let part = path.with_extension(format!("part-{}", rand::random::<u32>()));
        let got = conn.download_media(&media, &part).await;
        if let Err(e) = got {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(driver_error(e));
        }
        tokio::fs::rename(&part, &path).await.map_err(ApiError::internal)?;
    }
    stream_file(&path, &media.mime, media.file_name.as_deref(), None).await
}
