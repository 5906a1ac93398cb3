//! `GET /v1/instances/{id}/media/{message_id}`: the media file of a received message (the
//! `media_url` of its `message.received` event). The gateway downloads and decrypts it from
//! WhatsApp on the first request, through the number that received it, and serves later
//! requests from the media store's cache until the media retention time passes.

use axum::extract::State;
use axum::response::Response;

use crate::http::auth::Tenant;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::Path;
use crate::http::routes::media::stream_file;
use crate::http::state::AppState;
use crate::model::ids::InstanceId;

/// Download received media
///
/// The file of a received media message: the `media_url` of its `message.received` event,
/// `message_id` being that event's. The first request downloads and decrypts the file from WhatsApp
/// through the number; later ones are served from a disk cache kept for the media retention. The
/// answer's `Content-Type` is the file's.
#[utoipa::path(get, path = "/v1/instances/{id}/media/{message_id}", tag = "messages", operation_id = "get_received_media", security(("bearer" = [])),
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
    Path((id, message_id)): Path<(InstanceId, String)>,
) -> ApiResult<Response> {
    let (read, media) = state.app.live.received_media(&tenant.tenant_id, &id, &message_id).await?;
    stream_file(read, &media.mime, media.file_name.as_deref(), None)
}
