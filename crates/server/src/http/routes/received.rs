//! `POST /v1/instances/{id}/messages/{message_id}/read`: marks a message the number received
//! read (WhatsApp's read receipt, the contact's blue ticks). `message_id` is the WhatsApp id
//! the `message.received` event carries; it goes through the number that received it.

use axum::extract::State;
use axum::http::StatusCode;

use crate::http::auth::Tenant;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::Path;
use crate::http::state::AppState;
use crate::model::ids::InstanceId;

/// Mark a received message read
///
/// Sends WhatsApp's read receipt for a message the number received (the contact sees blue ticks,
/// unless the account hides read receipts). `message_id` is the `message_id` of its
/// `message.received` event. 404 when the number received no message with that id; 409
/// `instance_unavailable` when it is not connected.
#[utoipa::path(post, path = "/v1/instances/{id}/messages/{message_id}/read", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id"), ("message_id" = String, Path, description = "the `message_id` of the `message.received` event")),
    responses(
        (status = 204, description = "the read receipt was sent"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`not_found`: no such instance, or the number received no message with that id (a reaction, or one older than the inbound retention, is not known)"),
        (status = 409, body = ErrorBody, description = "`instance_unavailable`: the number is not connected"),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn read(
    tenant: Tenant,
    State(state): State<AppState>,
    Path((id, message_id)): Path<(InstanceId, String)>,
) -> ApiResult<StatusCode> {
    state.app.live.mark_read(&tenant.tenant_id, &id, &message_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
