//! Control of the simulated WhatsApp network (admin token; only when the gateway runs on it):
//! a phone scanning the QR, injected drops, inbound messages, and what the network received.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json as JsonOut;
use bzapper_core::Phone;
use bzapper_driver::sim::{
    DropRequest, InboundSpec, OutboxEntry, RestrictRequest, ScanRequest, SimError, SimNet,
};
use bzapper_driver::{ChatState, DropKind};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::state::AppState;

fn net(state: &AppState) -> ApiResult<Arc<dyn SimNet>> {
    state.sim.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the simulated network is not enabled; start the gateway with --sim or --sim-url",
        )
    })
}

fn sim_error(e: SimError) -> ApiError {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::CONFLICT);
    if status.is_server_error() {
        return ApiError::internal(e);
    }
    ApiError::new(status, e.code(), e.to_string())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanBody {
    /// The phone that scans, e.g. `+5511999999999`.
    #[schema(min_length = 8, max_length = 32)]
    pub phone: String,
}

#[derive(Serialize, ToSchema)]
pub struct ScanView {
    pub phone: String,
    pub jid: String,
    pub lid: Option<String>,
}

/// A phone scans the instance's current QR code.
#[utoipa::path(post, path = "/v1/sim/instances/{id}/scan", tag = "sim", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    request_body = ScanBody,
    responses(
        (status = 200, body = ScanView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    ))]
pub async fn scan(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<ScanBody>,
) -> ApiResult<JsonOut<ScanView>> {
    let phone = Phone::parse(&body.phone).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_phone", e.to_string())
    })?;
    let net = net(&state)?;
    // A number created a moment ago may not show its first QR code yet: wait for it (briefly)
    // so that a scan right after create works, as a person scans what they see.
    state.supervisor.qr(&id, std::time::Duration::from_secs(5)).await;
    let r = net.scan(&id, ScanRequest { phone: phone.e164() }).await.map_err(sim_error)?;
    Ok(JsonOut(ScanView { phone: r.phone, jid: r.jid.to_string(), lid: Some(r.lid.to_string()) }))
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    Transient,
    LoggedOut,
    Banned,
    /// Another session took the number over (WhatsApp's `conflict type="replaced"`).
    Replaced,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DropBody {
    pub reason: DropReason,
    /// With `banned`: a temporary ban that ends after this many seconds (the gateway
    /// reconnects the number then). Without it the ban has no announced end.
    #[schema(minimum = 1, maximum = 31_536_000)]
    pub ban_seconds: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct Done {
    pub ok: bool,
}

/// The network drops the instance's connection for the given reason.
#[utoipa::path(post, path = "/v1/sim/instances/{id}/drop", tag = "sim", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    request_body = DropBody,
    responses(
        (status = 200, body = Done),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    ))]
pub async fn drop_connection(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<DropBody>,
) -> ApiResult<JsonOut<Done>> {
    let kind = match (body.reason, body.ban_seconds) {
        (DropReason::Banned, Some(secs)) if (1..=31_536_000).contains(&secs) => {
            DropKind::TemporarilyBanned {
                until: crate::time::now() + chrono::Duration::seconds(i64::from(secs)),
            }
        }
        (_, Some(_)) => {
            return Err(ApiError::invalid(
                "ban_seconds goes with reason `banned` and is 1 to 31536000",
            ))
        }
        (DropReason::Transient, None) => DropKind::Transient,
        (DropReason::LoggedOut, None) => DropKind::LoggedOut,
        (DropReason::Banned, None) => DropKind::Banned,
        (DropReason::Replaced, None) => DropKind::Ended,
    };
    net(&state)?.drop_connection(&id, DropRequest { reason: kind }).await.map_err(sim_error)?;
    Ok(JsonOut(Done { ok: true }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundBody {
    /// The contact writing: a phone number or JID.
    #[schema(min_length = 8, max_length = 64)]
    pub from: String,
    /// Address the contact by LID, as WhatsApp increasingly does.
    #[serde(default)]
    pub as_lid: bool,
    /// A group JID (`<id>@g.us`) to write in; a direct chat when absent.
    pub chat: Option<String>,
    pub text: String,
    /// Phones or JIDs mentioned.
    #[serde(default)]
    pub mentions: Vec<String>,
    pub push_name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct InboundView {
    pub message_id: String,
}

/// A contact sends the instance a message.
#[utoipa::path(post, path = "/v1/sim/instances/{id}/inbound", tag = "sim", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    request_body = InboundBody,
    responses(
        (status = 200, body = InboundView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    ))]
pub async fn inbound(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<InboundBody>,
) -> ApiResult<JsonOut<InboundView>> {
    let spec = InboundSpec {
        from: body.from,
        as_lid: body.as_lid,
        chat: body.chat,
        text: body.text,
        mentions: body.mentions,
        push_name: body.push_name,
    };
    let r = net(&state)?.inbound(&id, spec).await.map_err(sim_error)?;
    Ok(JsonOut(InboundView { message_id: r.message_id }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestrictBody {
    /// While true, WhatsApp refuses (error 463) this number's messages to contacts that never
    /// wrote to it.
    pub reach_out: bool,
}

/// Turns WhatsApp's reach-out restriction on or off for a number (to exercise error 463 and
/// the health score).
#[utoipa::path(post, path = "/v1/sim/instances/{id}/restrict", tag = "sim", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    request_body = RestrictBody,
    responses(
        (status = 200, body = Done),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn restrict(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<RestrictBody>,
) -> ApiResult<JsonOut<Done>> {
    let req = RestrictRequest { reach_out: body.reach_out };
    net(&state)?.restrict(&id, req).await.map_err(sim_error)?;
    Ok(JsonOut(Done { ok: true }))
}

/// One thing the network received from a number: a text or a presence update.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum OutboxItem {
    Text {
        id: String,
        to: String,
        text: String,
        mentions: Vec<String>,
        at: chrono::DateTime<chrono::Utc>,
    },
    Presence {
        /// `composing` or `paused`.
        presence: String,
        to: String,
        at: chrono::DateTime<chrono::Utc>,
    },
}

#[derive(Serialize, ToSchema)]
pub struct OutboxView {
    pub items: Vec<OutboxItem>,
}

/// What the network received from the instance, in order.
#[utoipa::path(get, path = "/v1/sim/instances/{id}/outbox", tag = "sim", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    responses((status = 200, body = OutboxView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn outbox(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<JsonOut<OutboxView>> {
    let entries = net(&state)?.outbox(&id).await.map_err(sim_error)?;
    let items = entries.into_iter().map(outbox_item).collect();
    Ok(JsonOut(OutboxView { items }))
}

fn outbox_item(e: OutboxEntry) -> OutboxItem {
    match e {
        OutboxEntry::Text { id, to, text, mentions, at } => OutboxItem::Text {
            id,
            to: to.to_string(),
            text,
            mentions: mentions.iter().map(ToString::to_string).collect(),
            at,
        },
        OutboxEntry::Presence { presence, to, at } => OutboxItem::Presence {
            presence: match presence {
                ChatState::Composing => "composing".into(),
                ChatState::Recording => "recording".into(),
                ChatState::Paused => "paused".into(),
            },
            to: to.to_string(),
            at,
        },
    }
}
