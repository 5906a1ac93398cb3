//! Control of the simulated WhatsApp network (admin token; only when the gateway runs on it):
//! a phone scanning the QR, injected drops, inbound messages of every kind, groups, which
//! phones have WhatsApp, and what the network received.
//!
//! The routes go through [`SimControl`], so they drive the simulated network (`--sim`,
//! `--sim-url`) and the wire-level fake (`--sim-wire-url`, real driver) alike. The fake has
//! scan, drop, direct text inbound and outbox only: the rest answers 501 `not_implemented`.
//!
//! The bodies mirror the simulated network's own control types (`bzapper_driver::sim`) with
//! OpenAPI schemas; the outbox is passed through as the network wrote it, so that the gateway
//! and a standalone `bzapper simnet` answer the same JSON.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json as JsonOut;
use bzapper_core::{Location, MediaKind, Phone};
use bzapper_driver::sim::{
    AgeRequest, CallSpec, ContactRequest, CreateGroupRequest, InboundContactSpec, InboundMediaSpec,
    InboundReactionSpec, InboundSpec, Reactions, RestrictRequest, SimError, SimNet,
};
use bzapper_driver::DropKind;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

use crate::app::sim::{ControlError, SimControl, Target};
use crate::http::auth::Admin;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path};
use crate::http::state::AppState;
use crate::model::ids::InstanceId;

/// The control of the network the gateway runs on (the simulated network or the wire fake).
fn control(state: &AppState) -> ApiResult<Arc<dyn SimControl>> {
    state.app.simulator.control().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the simulated network is not enabled; start the gateway with --sim, --sim-url or \
             --sim-wire-url",
        )
    })
}

/// The whole simulated network, for the controls the wire fake does not have (501 there).
fn net(state: &AppState) -> ApiResult<Arc<dyn SimNet>> {
    control(state)?.sim_net().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_implemented",
            "the wire-level fake network (--sim-wire-url) has no such control",
        )
    })
}

/// The instance's linked phone (E.164), when it has one: the wire fake addresses devices by
/// phone.
async fn linked_phone(state: &AppState, id: &InstanceId) -> ApiResult<Option<String>> {
    state.app.simulator.linked_phone(id).await.map_err(ApiError::internal)
}

fn control_error(e: ControlError) -> ApiError {
    match e {
        ControlError::Sim(e) => sim_error(e),
        ControlError::NotImplemented(m) => {
            ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_implemented", m)
        }
    }
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
    /// The phone that scanned, E.164 with `+`.
    pub phone: String,
    /// Its phone-number JID.
    pub jid: String,
    /// Its LID on the simulated network.
    pub lid: Option<String>,
}

/// Simulator: scan the QR code
///
/// Simulated network only (admin token, `--sim`). A phone scans the instance's current QR code: the
/// number links and connects. 409 `not_pairing` when there is no QR code to scan.
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
    Path(id): Path<InstanceId>,
    Json(body): Json<ScanBody>,
) -> ApiResult<JsonOut<ScanView>> {
    let phone = Phone::parse(&body.phone).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_phone", e.to_string())
    })?;
    let net = control(&state)?;
    // A number created a moment ago may not show its first QR code yet: wait for it (briefly)
    // so that a scan right after create works, as a person scans what they see.
    let qr = state.app.simulator.current_qr(&id).await;
    let target = Target { id: &id, phone: None };
    let r = net
        .scan(target, qr.as_ref().map(|q| q.code.as_str()), &phone.e164())
        .await
        .map_err(control_error)?;
    Ok(JsonOut(ScanView { phone: r.phone, jid: r.jid, lid: r.lid }))
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
    /// `transient` (the number reconnects by itself), `logged_out` (the device is unlinked),
    /// `banned`, or `replaced` (another session took the number over).
    pub reason: DropReason,
    /// With `banned`: a temporary ban that ends after this many seconds (the gateway
    /// reconnects the number then). Without it the ban has no announced end.
    #[schema(minimum = 1, maximum = 31_536_000)]
    pub ban_seconds: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct Done {
    /// Always `true`.
    pub ok: bool,
}

/// Simulator: drop the connection
///
/// Simulated network only (admin token). The network drops the instance's connection for the given
/// reason: `transient` (it reconnects by itself), `logged_out` (the device is unlinked) or `banned`
/// (refused for 24 h, or `ban_seconds`).
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
    Path(id): Path<InstanceId>,
    Json(body): Json<DropBody>,
) -> ApiResult<JsonOut<Done>> {
    let kind = match (body.reason, body.ban_seconds) {
        (DropReason::Banned, Some(secs)) if (1..=31_536_000).contains(&secs) => {
            DropKind::TemporarilyBanned {
                until: crate::model::time::now() + chrono::Duration::seconds(i64::from(secs)),
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
    let net = control(&state)?;
    let phone = linked_phone(&state, &id).await?;
    let target = Target { id: &id, phone: phone.as_deref() };
    net.drop_connection(target, kind).await.map_err(control_error)?;
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
    /// The text; the caption of `media`. Required unless `media`, `location`, `contact` or
    /// `reaction` is given (only media has a caption).
    #[serde(default)]
    pub text: String,
    /// Phones or JIDs mentioned.
    #[serde(default)]
    pub mentions: Vec<String>,
    /// The name the contact set on their phone.
    pub push_name: Option<String>,
    /// A media file the contact sends.
    pub media: Option<InboundMediaBody>,
    /// A location the contact shares.
    pub location: Option<LocationBody>,
    /// A contact card the contact shares.
    pub contact: Option<InboundContactBody>,
    /// A reaction to a message of the chat.
    pub reaction: Option<InboundReactionBody>,
    /// The WhatsApp id of a message this one quotes.
    pub reply_to: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaKindBody {
    Image,
    Video,
    Audio,
    Document,
    Sticker,
}

impl From<MediaKindBody> for MediaKind {
    fn from(k: MediaKindBody) -> Self {
        match k {
            MediaKindBody::Image => MediaKind::Image,
            MediaKindBody::Video => MediaKind::Video,
            MediaKindBody::Audio => MediaKind::Audio,
            MediaKindBody::Document => MediaKind::Document,
            MediaKindBody::Sticker => MediaKind::Sticker,
        }
    }
}

/// A media file the contact sends: its bytes, or only a size for made-up (deterministic)
/// bytes, so a large test file needs no large body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundMediaBody {
    /// `image`, `video`, `audio`, `document` or `sticker`.
    pub kind: MediaKindBody,
    /// Must suit `kind` (a sticker is `image/webp`; a document may be anything).
    pub mime: String,
    /// A document's file name.
    pub file_name: Option<String>,
    /// An audio sent as a voice note.
    #[serde(default)]
    pub voice: bool,
    /// The file in base64 (the gateway's body limit applies: use `size` for large files).
    pub data_base64: Option<String>,
    /// Instead of `data_base64`: the size of a made-up file, at most 100 MiB.
    #[schema(minimum = 1, maximum = 104_857_600)]
    pub size: Option<u64>,
}

#[derive(Deserialize, Serialize, ToSchema)]
pub struct LocationBody {
    /// -90 to 90.
    #[schema(minimum = -90, maximum = 90)]
    pub latitude: f64,
    /// -180 to 180.
    #[schema(minimum = -180, maximum = 180)]
    pub longitude: f64,
    /// The place's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The place's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundContactBody {
    /// A vCard (`BEGIN:VCARD` … `END:VCARD`, with `VERSION` and `FN`).
    pub vcard: String,
    /// Defaults to the vCard's `FN`.
    pub display_name: Option<String>,
}

/// An emoji on one of the chat's messages (empty: the contact's reaction is removed).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundReactionBody {
    /// The WhatsApp id of the message reacted to.
    pub message_id: String,
    /// The emoji; empty removes the reaction.
    pub emoji: String,
}

#[derive(Serialize, ToSchema)]
pub struct InboundView {
    /// The WhatsApp id the message is delivered with.
    pub message_id: String,
    /// The SHA-256 (lower-case hex) of the media file, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Simulator: receive a message
///
/// Simulated network only (admin token). A contact sends the instance a message: a text, a media
/// file, a location, a contact card or a reaction, optionally quoting a message. Answers the
/// WhatsApp id it is delivered with; it arrives as a `message.received` event.
#[utoipa::path(post, path = "/v1/sim/instances/{id}/inbound", tag = "sim", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    request_body = InboundBody,
    responses(
        (status = 200, body = InboundView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 501, body = ErrorBody),
    ))]
pub async fn inbound(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<InstanceId>,
    Json(body): Json<InboundBody>,
) -> ApiResult<JsonOut<InboundView>> {
    let spec = InboundSpec {
        from: body.from,
        as_lid: body.as_lid,
        chat: body.chat,
        text: body.text,
        mentions: body.mentions,
        push_name: body.push_name,
        media: body.media.map(|m| InboundMediaSpec {
            kind: m.kind.into(),
            mime: m.mime,
            file_name: m.file_name,
            voice: m.voice,
            data_base64: m.data_base64,
            size: m.size,
        }),
        location: body.location.map(|l| Location {
            latitude: l.latitude,
            longitude: l.longitude,
            name: l.name,
            address: l.address,
        }),
        contact: body
            .contact
            .map(|c| InboundContactSpec { vcard: c.vcard, display_name: c.display_name }),
        reaction: body
            .reaction
            .map(|r| InboundReactionSpec { message_id: r.message_id, emoji: r.emoji }),
        reply_to: body.reply_to,
    };
    let net = control(&state)?;
    let phone = linked_phone(&state, &id).await?;
    let target = Target { id: &id, phone: phone.as_deref() };
    let r = net.inbound(target, spec).await.map_err(control_error)?;
    Ok(JsonOut(InboundView { message_id: r.message_id, sha256: r.sha256 }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallBody {
    /// The caller: a phone number in any notation, a phone JID or a `@lid` JID.
    #[schema(min_length = 1, max_length = 128)]
    pub from: String,
    /// A video call (default: voice).
    #[serde(default)]
    pub video: bool,
    /// The call comes from the caller's LID, with the phone beside (as WhatsApp does for
    /// hidden numbers).
    #[serde(default)]
    pub as_lid: bool,
    /// A group call placed in this group (`<id>@g.us`).
    pub group: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CallView {
    /// The id the call rings with (`call.received`'s `call_id`).
    pub call_id: String,
}

/// A contact calls the number
///
/// A contact calls the instance. The call rings until the number rejects it (its
/// `reject_calls` setting); either way the gateway records `call.received`.
#[utoipa::path(post, path = "/v1/sim/instances/{id}/call", tag = "sim", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    request_body = CallBody,
    responses(
        (status = 200, body = CallView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`not_connected`: the number is not logged in"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn call(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<InstanceId>,
    Json(body): Json<CallBody>,
) -> ApiResult<JsonOut<CallView>> {
    let spec =
        CallSpec { from: body.from, video: body.video, as_lid: body.as_lid, group: body.group };
    let net = control(&state)?;
    let phone = linked_phone(&state, &id).await?;
    let target = Target { id: &id, phone: phone.as_deref() };
    let r = net.call(target, spec).await.map_err(control_error)?;
    Ok(JsonOut(CallView { call_id: r.call_id }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestrictBody {
    /// While true, WhatsApp refuses (error 463) this number's messages to contacts that never
    /// wrote to it.
    pub reach_out: bool,
}

/// Simulator: restrict reach-out
///
/// Simulated network only (admin token). Turns WhatsApp's reach-out restriction on or off for a
/// number: while on, messages to contacts that never wrote to it fail with error 463 (to exercise
/// that error and the health score).
#[utoipa::path(post, path = "/v1/sim/instances/{id}/restrict", tag = "sim", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    request_body = RestrictBody,
    responses(
        (status = 200, body = Done),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 501, body = ErrorBody),
    ))]
pub async fn restrict(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<InstanceId>,
    Json(body): Json<RestrictBody>,
) -> ApiResult<JsonOut<Done>> {
    let req = RestrictRequest { reach_out: body.reach_out };
    net(&state)?.restrict(&id, req).await.map_err(sim_error)?;
    Ok(JsonOut(Done { ok: true }))
}

/// One thing the network received from a number: a message of any kind, a presence update,
/// a contact check, a read receipt, the number's own presence or a call rejection. (The schema of the entries; the route passes on what the network
/// recorded.)
// Only the OpenAPI schema of the entries: never built, so its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum OutboxItem {
    Message(OutboxMessageItem),
    Presence {
        /// `composing`, `recording` or `paused`.
        presence: String,
        /// The chat it was shown in.
        to: String,
        /// When the network received it.
        at: chrono::DateTime<chrono::Utc>,
    },
    /// One call asking which of these phones have WhatsApp.
    Check {
        /// The phones asked about.
        check: Vec<String>,
        /// When the network received it.
        at: chrono::DateTime<chrono::Utc>,
    },
    /// A read receipt for messages the number received in `chat` (`sender`: who wrote them,
    /// in a group).
    Read {
        /// The WhatsApp ids of the messages marked read.
        read: Vec<String>,
        /// The chat they were received in.
        chat: String,
        /// Who wrote them, in a group; `null` in a direct chat.
        sender: Option<String>,
        /// When the network received it.
        at: chrono::DateTime<chrono::Utc>,
    },
    /// The number announced its own presence (`available` or `unavailable`; no `to`).
    Availability {
        /// `available` or `unavailable`.
        presence: String,
        /// When the network received it.
        at: chrono::DateTime<chrono::Utc>,
    },
    /// The number rejected a call ringing on it (`to`: the caller).
    CallRejected {
        /// The call's id.
        rejected_call: String,
        /// The caller.
        to: String,
        /// When the network received it.
        at: chrono::DateTime<chrono::Utc>,
    },
}

/// A message. A media file adds `kind`, `mime`, `size`, `sha256`, `file_name`, `caption` and
/// `voice` (its caption is also the `text`); a location adds `location`, a contact card
/// `contact`, a reaction `reaction` (their `text` is empty).
#[derive(Serialize, ToSchema)]
pub struct OutboxMessageItem {
    /// The WhatsApp id it was sent with.
    pub id: String,
    /// The recipient JID.
    pub to: String,
    /// The text (a media message's caption is in `caption`).
    pub text: String,
    /// The mentioned JIDs.
    pub mentions: Vec<String>,
    /// When the network received it.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The WhatsApp id of the quoted message.
    pub reply_to: Option<String>,
    /// For media: `image`, `video`, `audio`, `document` or `sticker`.
    pub kind: Option<MediaKindBody>,
    /// For media: the file's MIME type.
    pub mime: Option<String>,
    /// For media: the file's size in bytes.
    pub size: Option<u64>,
    /// Lower-case hex.
    pub sha256: Option<String>,
    /// For a document: its file name.
    pub file_name: Option<String>,
    /// For media: its caption.
    pub caption: Option<String>,
    /// An audio sent as a voice note.
    pub voice: Option<bool>,
    /// A location pin.
    pub location: Option<LocationBody>,
    /// A contact card.
    pub contact: Option<OutboxContactItem>,
    /// A reaction.
    pub reaction: Option<OutboxReactionItem>,
}

#[derive(Serialize, ToSchema)]
pub struct OutboxContactItem {
    /// The name shown for the card.
    pub display_name: String,
    /// The vCard text.
    pub vcard: String,
}

#[derive(Serialize, ToSchema)]
pub struct OutboxReactionItem {
    /// The WhatsApp id of the message reacted to.
    pub message_id: String,
    /// Empty when the reaction was removed.
    pub emoji: String,
}

#[derive(Serialize, ToSchema)]
pub struct OutboxView {
    /// Oldest first.
    #[schema(value_type = Vec<OutboxItem>)]
    pub items: Vec<serde_json::Value>,
}

/// Simulator: what a number sent
///
/// Simulated network only (admin token). What the network received from the instance, in order:
/// texts, media, locations, contacts, reactions and presences.
#[utoipa::path(get, path = "/v1/sim/instances/{id}/outbox", tag = "sim", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    responses((status = 200, body = OutboxView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn outbox(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<InstanceId>,
) -> ApiResult<JsonOut<OutboxView>> {
    let net = control(&state)?;
    let phone = linked_phone(&state, &id).await?;
    let target = Target { id: &id, phone: phone.as_deref() };
    let items = net.outbox(target).await.map_err(control_error)?;
    Ok(JsonOut(OutboxView { items }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroupBody {
    /// Defaults to `Group <last 4 digits of the id>`.
    #[schema(max_length = 100)]
    pub subject: Option<String>,
    /// Phone numbers (or phone JIDs); an instance takes part through its linked phone.
    #[schema(min_items = 1, max_items = 1024)]
    pub participants: Vec<String>,
    /// Some of `participants`.
    #[serde(default)]
    pub admins: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct GroupCreatedView {
    /// `<id>@g.us`.
    pub jid: String,
}

/// Simulator: create a group
///
/// Simulated network only (admin token). A group with these phones in it (and these admins, under
/// this subject) exists on the network.
#[utoipa::path(post, path = "/v1/sim/groups", tag = "sim", security(("bearer" = [])),
    request_body = CreateGroupBody,
    responses(
        (status = 200, body = GroupCreatedView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 501, body = ErrorBody),
    ))]
pub async fn create_group(
    _: Admin,
    State(state): State<AppState>,
    Json(body): Json<CreateGroupBody>,
) -> ApiResult<JsonOut<GroupCreatedView>> {
    let req = CreateGroupRequest {
        subject: body.subject,
        participants: body.participants,
        admins: body.admins,
    };
    let r = control(&state)?.create_group(req).await.map_err(control_error)?;
    Ok(JsonOut(GroupCreatedView { jid: r.jid.to_string() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    /// The phone, in any common notation.
    #[schema(min_length = 8, max_length = 32)]
    pub phone: String,
    /// `false`: contact checks answer that the phone has no WhatsApp account. Every phone has
    /// one until marked otherwise.
    pub on_whatsapp: bool,
}

/// Simulator: set a contact's account
///
/// Simulated network only (admin token). Marks whether a phone has a WhatsApp account: what contact
/// checks answer for it.
#[utoipa::path(post, path = "/v1/sim/contacts", tag = "sim", security(("bearer" = [])),
    request_body = ContactBody,
    responses(
        (status = 200, body = Done),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 501, body = ErrorBody),
    ))]
pub async fn set_contact(
    _: Admin,
    State(state): State<AppState>,
    Json(body): Json<ContactBody>,
) -> ApiResult<JsonOut<Done>> {
    let phone = Phone::parse(&body.phone).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_phone", e.to_string())
    })?;
    let req = ContactRequest { phone: phone.e164(), on_whatsapp: body.on_whatsapp };
    control(&state)?.set_contact(req).await.map_err(control_error)?;
    Ok(JsonOut(Done { ok: true }))
}

/// The simulated network's reaction model (docs/sending.md, "The simulated network's reaction
/// model"). In a `PUT`, a rule left out takes its default and a rule set to `null` is off.
#[derive(Serialize, ToSchema)]
pub struct ReactionsBody {
    /// The model runs at all (off unless switched on).
    pub enabled: bool,
    /// Refuse a young account's first contacts past a rate (error 463).
    pub first_contacts: Option<FirstContactRuleBody>,
    /// Ban a number that keeps writing to phones without WhatsApp.
    pub not_on_whatsapp: Option<AbsentRuleBody>,
    /// Ban a number that sends one text to many different people.
    pub identical_texts: Option<IdenticalRuleBody>,
}

/// A number younger than `young_days` that starts more than `per_hour` chats with new contacts
/// within an hour has the next ones refused with error 463.
#[derive(Serialize, ToSchema)]
pub struct FirstContactRuleBody {
    /// Default 7.
    pub young_days: u32,
    /// Default 10.
    #[schema(minimum = 1)]
    pub per_hour: u32,
}

/// Messages to phones without WhatsApp: `temporary_ban_after` of them within
/// `window_seconds` ban the number for `ban_seconds`; `ban_after` over its life, for good.
#[derive(Serialize, ToSchema)]
pub struct AbsentRuleBody {
    /// Default 86400.
    #[schema(minimum = 1)]
    pub window_seconds: u64,
    /// Default 20.
    #[schema(minimum = 1)]
    pub temporary_ban_after: u32,
    /// Default 60.
    #[schema(minimum = 1)]
    pub ban_after: u32,
    /// Default 86400.
    #[schema(minimum = 1)]
    pub ban_seconds: u64,
}

/// One text to `recipients` different people within `window_seconds` bans the number for
/// `ban_seconds`.
#[derive(Serialize, ToSchema)]
pub struct IdenticalRuleBody {
    /// Default 50.
    #[schema(minimum = 1)]
    pub recipients: u32,
    /// Default 3600.
    #[schema(minimum = 1)]
    pub window_seconds: u64,
    /// Default 86400.
    #[schema(minimum = 1)]
    pub ban_seconds: u64,
}

fn reactions_view(r: &Reactions) -> ApiResult<JsonOut<serde_json::Value>> {
    serde_json::to_value(r).map(JsonOut).map_err(ApiError::internal)
}

/// Simulator: the reaction model
///
/// Simulated network only (admin token). The reaction model's settings: the rules by which the
/// network refuses a number's sends like WhatsApp does (too many first contacts for a young
/// account, recipients not on WhatsApp, identical texts), answering error 463.
#[utoipa::path(get, path = "/v1/sim/reactions", tag = "sim", security(("bearer" = [])),
    responses(
        (status = 200, body = ReactionsBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 501, body = ErrorBody),
    ))]
pub async fn get_reactions(
    _: Admin,
    State(state): State<AppState>,
) -> ApiResult<JsonOut<serde_json::Value>> {
    let r = net(&state)?.get_reactions().await.map_err(sim_error)?;
    reactions_view(&r)
}

/// Simulator: set the reaction model
///
/// Simulated network only (admin token). Switches the reaction model on or off and sets its rules;
/// answers the settings in force.
#[utoipa::path(put, path = "/v1/sim/reactions", tag = "sim", security(("bearer" = [])),
    request_body = ReactionsBody,
    responses(
        (status = 200, body = ReactionsBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 501, body = ErrorBody),
    ))]
pub async fn put_reactions(
    _: Admin,
    State(state): State<AppState>,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<JsonOut<serde_json::Value>> {
    let r: Reactions =
        serde_json::from_value(body).map_err(|e| ApiError::invalid(format!("reactions: {e}")))?;
    r.validate().map_err(|e| ApiError::invalid(format!("reactions: {e}")))?;
    let net = net(&state)?;
    net.put_reactions(r).await.map_err(sim_error)?;
    reactions_view(&net.get_reactions().await.map_err(sim_error)?)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgeBody {
    /// How many days old the number's account is on the network (it counts from the pairing
    /// otherwise); the reaction model holds numbers younger than `young_days` back.
    #[schema(maximum = 36500)]
    pub days: u32,
}

/// Simulator: set an account's age
///
/// Simulated network only (admin token). Sets how old the account of the instance's linked phone is
/// on the simulated network (what the reaction model's first-contact rule looks at).
#[utoipa::path(post, path = "/v1/sim/instances/{id}/age", tag = "sim", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    request_body = AgeBody,
    responses(
        (status = 200, body = Done),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 501, body = ErrorBody),
    ))]
pub async fn set_age(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<InstanceId>,
    Json(body): Json<AgeBody>,
) -> ApiResult<JsonOut<Done>> {
    if body.days > 36_500 {
        return Err(ApiError::invalid("days is at most 36500"));
    }
    net(&state)?.set_age(&id, AgeRequest { days: body.days }).await.map_err(sim_error)?;
    Ok(JsonOut(Done { ok: true }))
}
