//! Instances (one WhatsApp number each): create (which starts it), read, change, delete, and
//! the connection commands, QR code and pairing code.

use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use base64::Engine;
use bzapper_core::{
    validate, InstanceState, Limits, LimitsPatch, Phone, ProxyUrl, ReadReceipts, Reason, Status,
    Warming,
};
use bzapper_store::{InstanceKey, InstanceRecord};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::instances::Live;
use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path, Query};
use crate::http::qr::render_png;
use crate::http::routes::quiet_hours;
use crate::http::state::AppState;
use crate::model::ids::{new_id, InstanceId, TenantId};
use crate::model::time::now;
use crate::runtime::campaigns::window::ScheduleSpec;

/// Sending limits; any subset may be given, the rest keep their defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsInput {
    /// Sends per minute (default 8).
    #[schema(minimum = 1)]
    pub per_minute: Option<u32>,
    /// Sends per hour (default 200).
    #[schema(minimum = 1)]
    pub per_hour: Option<u32>,
    /// Sends per day once warmed (default 1500).
    #[schema(minimum = 1)]
    pub per_day: Option<u32>,
    /// Shortest pause between two sends, ms (default 3000).
    pub min_gap_ms: Option<u64>,
    /// Longest pause between two sends, ms (default 12000, at most 3600000).
    pub max_gap_ms: Option<u64>,
    /// First contacts (people the number never talked with) per day once warmed (default 40;
    /// lower while warming or re-warming).
    #[schema(minimum = 1)]
    pub new_contacts_per_day: Option<u32>,
}

impl From<LimitsInput> for LimitsPatch {
    fn from(l: LimitsInput) -> Self {
        LimitsPatch {
            per_minute: l.per_minute,
            per_hour: l.per_hour,
            per_day: l.per_day,
            min_gap_ms: l.min_gap_ms,
            max_gap_ms: l.max_gap_ms,
            new_contacts_per_day: l.new_contacts_per_day,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstance {
    /// 1 to 64 characters, unique within the tenant.
    #[schema(min_length = 1, max_length = 64, pattern = "\\S")]
    pub name: String,
    /// Pool name (default `default`).
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    pub pool: Option<String>,
    /// Days of warming after the first connection (0 to 60, default 5).
    #[schema(minimum = 0, maximum = 60)]
    pub warming_days: Option<i64>,
    /// `socks5://user:pass@host:port` or `http://host:port`.
    pub proxy: Option<String>,
    /// Sending limits: any of `per_minute`, `per_hour`, `per_day`, `min_gap_ms`, `max_gap_ms`,
    /// `new_contacts_per_day`; the rest keep their defaults (422 `invalid_limits` when they do not
    /// add up).
    pub limits: Option<LimitsInput>,
    /// `off` (default) or `auto`: mark a contact's unread messages read, after a human pause,
    /// before replying to them ("seen before reply").
    #[schema(value_type = Option<String>, example = "auto")]
    pub read_receipts: Option<String>,
    /// The number's own active hours, overriding its pool's (messages it would send wait
    /// outside them); absent or `null`: the pool's.
    pub quiet_hours: Option<ScheduleSpec>,
    /// Reject every incoming call at once (default `false`: calls ring unanswered).
    pub reject_calls: Option<bool>,
    /// Sent to the caller after a rejected call, through the number's send queue like any
    /// message (1 to 4096 characters; absent or `null`: no reply).
    #[schema(min_length = 1, max_length = 4096, pattern = "\\S")]
    pub reject_call_message: Option<String>,
    /// Announce the number `available` (online) at every connect and reconnect (default
    /// `false`: presence is left to the protocol library).
    pub always_online: Option<bool>,
}

/// Only the fields given change. `proxy: null` removes the proxy.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchInstance {
    /// A new name: 1 to 64 characters, unique within the tenant.
    #[schema(min_length = 1, max_length = 64, pattern = "\\S")]
    pub name: Option<String>,
    /// Move the number to this pool (applies to the next send).
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    pub pool: Option<String>,
    /// Days of warming after the first connection (0 to 60).
    #[schema(minimum = 0, maximum = 60)]
    pub warming_days: Option<i64>,
    /// `socks5://user:pass@host:port` or `http://host:port`; `null` removes the proxy. Applies at
    /// the next connect.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub proxy: Option<Option<String>>,
    /// Laid over the limits set before; the result is checked (422 `invalid_limits`).
    pub limits: Option<LimitsInput>,
    /// `off` or `auto` (see `CreateInstance`).
    #[schema(value_type = Option<String>, example = "auto")]
    pub read_receipts: Option<String>,
    /// The number's own active hours, overriding its pool's; `null`: the pool's again.
    #[serde(default, deserialize_with = "quiet_hours::present")]
    #[schema(value_type = Option<ScheduleSpec>)]
    pub quiet_hours: Option<Option<ScheduleSpec>>,
    /// Reject every incoming call at once (see `CreateInstance`). Applies to the next call.
    pub reject_calls: Option<bool>,
    /// The reply to a rejected call (1 to 4096 characters); `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 4096, pattern = "\\S")]
    pub reject_call_message: Option<Option<String>>,
    /// Announce the number `available` at every connect (see `CreateInstance`). Turned on,
    /// a connected number announces it at once.
    pub always_online: Option<bool>,
}

/// Distinguishes a field that is absent (outer `None`) from one that is `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Serialize, ToSchema)]
pub struct WarmingView {
    /// The warming period, in days.
    pub days: u32,
    /// When warming ends; `null` before the first connection.
    pub until: Option<DateTime<Utc>>,
    /// The number is warming now (rotation prefers warmed numbers).
    pub active: bool,
    /// Re-warming after an idle spell (a shorter warm-up, `--rewarm-days`).
    pub rewarming: bool,
    /// When the re-warm ends; `null` when not re-warming.
    pub rewarm_until: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct HealthView {
    /// 0 to 100.
    pub score: u8,
    /// Whether rotation may pick the number (its score is at or above the threshold).
    pub in_rotation: bool,
}

#[derive(Serialize, ToSchema)]
pub struct StatsView {
    /// Messages this number sent today.
    pub sent_today: u64,
    /// Messages this number received today.
    pub received_today: u64,
}

#[derive(Serialize, ToSchema)]
pub struct LimitsView {
    /// At most this many sends a minute.
    pub per_minute: u32,
    /// At most this many sends an hour.
    pub per_hour: u32,
    /// At most this many sends a day once warmed.
    pub per_day: u32,
    /// The shortest pause between two sends, in milliseconds.
    pub min_gap_ms: u64,
    /// The longest pause between two sends, in milliseconds.
    pub max_gap_ms: u64,
    /// First contacts per day once warmed.
    pub new_contacts_per_day: u32,
}

#[derive(Serialize, ToSchema)]
pub struct InstanceView {
    /// The instance's id (`ins_…`).
    pub id: String,
    /// Its name, unique within the tenant.
    pub name: String,
    /// The pool it sends for.
    pub pool: String,
    /// `qr_pending`, `connecting`, `connected` or `disconnected`.
    pub status: String,
    /// `null` while connected; else `transient`, `logged_out`, `banned`, `stopped`, `qr_timeout`.
    pub reason: Option<String>,
    /// The underlying cause in words (e.g. a temporary ban's code and expiry), when known.
    pub detail: Option<String>,
    /// The linked phone, E.164 with `+`; `null` before linking.
    pub phone: Option<String>,
    /// The number's phone-number JID; `null` before linking.
    pub jid: Option<String>,
    /// The number's LID, when WhatsApp gave it.
    pub lid: Option<String>,
    /// The warming period and whether it is on now.
    pub warming: WarmingView,
    /// The health score and whether rotation may pick the number.
    pub health: HealthView,
    /// The proxy without credentials.
    pub proxy: Option<String>,
    /// The sending limits in force.
    pub limits: LimitsView,
    /// `off` or `auto`: whether the number marks a contact's messages read before replying.
    pub read_receipts: &'static str,
    /// The number's own active hours; `null`: its pool's apply.
    pub quiet_hours: Option<ScheduleSpec>,
    /// Incoming calls are rejected at once (`call.received` reports each call either way).
    pub reject_calls: bool,
    /// The reply sent to a caller after a rejected call; `null`: none.
    pub reject_call_message: Option<String>,
    /// The number announces itself `available` at every connect.
    pub always_online: bool,
    /// Why the number could not send right now: `null` when it could (or is sending), else
    /// `offline`, `health`, `quiet_hours`, `cap`, `first_contact_cap`, `warming`,
    /// `rewarming` or `gap`.
    #[schema(example = "gap")]
    pub resting: Option<String>,
    /// Today's figures.
    pub stats: StatsView,
    /// When the instance was created.
    pub created_at: DateTime<Utc>,
    /// When it last connected; `null` if never.
    pub connected_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct InstanceList {
    /// The tenant's instances (all of them, or this page's), oldest first.
    pub items: Vec<InstanceView>,
    /// Pass as `cursor` for the next page; `null` on the last page and when the list was not
    /// paged.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListParams {
    /// Page size, 1 to 1000. Without `limit` and `cursor` the answer holds every instance.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (the page size is then `limit`, default 100).
    pub cursor: Option<String>,
}

/// The default page size when only `cursor` is given.
const DEFAULT_PAGE: u32 = 100;
/// The largest page.
const MAX_PAGE: u32 = 1_000;

fn encode_cursor(r: &InstanceRecord) -> String {
    let key = format!("{}:{}", r.created_at.timestamp_millis(), r.id);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

/// The position a cursor names: one this API gave (`<created_at ms>:<instance id>`).
fn decode_cursor(c: &str) -> Option<InstanceKey> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    let (ms, id) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
    let created_at = DateTime::from_timestamp_millis(ms.parse().ok()?)?;
    (!id.is_empty() && id.len() <= 64).then(|| InstanceKey { created_at, id: id.to_string() })
}

async fn full_view(state: &AppState, rec: &InstanceRecord) -> ApiResult<InstanceView> {
    let tenant = TenantId::new(rec.tenant_id.clone());
    let live = state.app.instances.live(&tenant, std::slice::from_ref(rec)).await?;
    Ok(view(rec, live.get(&rec.id).copied().unwrap_or_default()))
}

pub fn view(rec: &InstanceRecord, live: Live) -> InstanceView {
    let limits = Limits::default().merged(&rec.limits).unwrap_or_default();
    let w = Warming::at(rec.warming_days, rec.first_connected_at, Utc::now());
    let s = &rec.state;
    InstanceView {
        id: rec.id.clone(),
        name: rec.name.clone(),
        pool: rec.pool.clone(),
        status: s.status.as_str().into(),
        reason: s.reason.map(|r| r.as_str().into()),
        detail: s.detail.clone(),
        phone: rec.phone.clone(),
        jid: rec.jid.clone(),
        lid: rec.lid.clone(),
        warming: WarmingView {
            days: w.days,
            until: w.until,
            active: w.active,
            rewarming: live.rewarm_until.is_some(),
            rewarm_until: live.rewarm_until,
        },
        health: {
            // The record read here is the source of truth for the status; the scheduler's
            // verdict (score above the threshold) may trail it by a moment.
            let connected = s.status == Status::Connected && s.reason != Some(Reason::Banned);
            let (score, healthy) = live.health.unwrap_or((rec.health_score, true));
            HealthView { score, in_rotation: connected && healthy }
        },
        proxy: rec.proxy.as_ref().map(ProxyUrl::redacted),
        limits: LimitsView {
            per_minute: limits.per_minute,
            per_hour: limits.per_hour,
            per_day: limits.per_day,
            min_gap_ms: limits.min_gap_ms,
            max_gap_ms: limits.max_gap_ms,
            new_contacts_per_day: limits.new_contacts_per_day,
        },
        read_receipts: rec.read_receipts.as_str(),
        quiet_hours: quiet_hours::show(rec.quiet_hours.as_ref()),
        reject_calls: rec.reject_calls,
        reject_call_message: rec.reject_call_message.clone(),
        always_online: rec.always_online,
        resting: live.resting.map(Into::into),
        stats: StatsView { sent_today: live.sent_today, received_today: live.received_today },
        created_at: rec.created_at,
        connected_at: rec.connected_at,
    }
}

fn invalid_proxy(e: bzapper_core::ProxyError) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_proxy", e.to_string())
}

fn read_receipts(given: Option<&str>) -> ApiResult<Option<ReadReceipts>> {
    given.map(ReadReceipts::parse).transpose().map_err(ApiError::invalid)
}

fn call_reply(given: &str) -> ApiResult<String> {
    validate::call_reply(given).map_err(ApiError::invalid)
}

fn invalid_limits(e: bzapper_core::LimitsError) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_limits", e.to_string())
}

async fn load(state: &AppState, tenant: &Tenant, id: &InstanceId) -> ApiResult<InstanceRecord> {
    Ok(state.app.instances.get(&tenant.tenant_id, id).await?)
}

/// Create an instance
///
/// Creates an instance (one WhatsApp number) and starts it: `qr_pending` until a phone links it by
/// QR code or pairing code (`connecting` when a stored session exists). `name` is unique in the
/// tenant (409 `name_taken`); `pool`, `warming_days`, `proxy`, `limits`, `quiet_hours` and
/// `read_receipts` are optional.
#[utoipa::path(post, path = "/v1/instances", tag = "instances", security(("bearer" = [])),
    request_body = CreateInstance,
    responses(
        (status = 201, body = InstanceView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "`quota_exceeded`: instances or pools per tenant; or `rate_limited` (`Retry-After`)"),
    ))]
pub async fn create(
    tenant: Tenant,
    State(state): State<AppState>,
    Json(body): Json<CreateInstance>,
) -> ApiResult<(StatusCode, JsonOut<InstanceView>)> {
    let name = validate::name("name", &body.name).map_err(ApiError::invalid)?;
    let pool = validate::pool_name(body.pool.as_deref().unwrap_or("default"))
        .map_err(ApiError::invalid)?;
    let warming_days =
        validate::warming_days(body.warming_days.unwrap_or(5)).map_err(ApiError::invalid)?;
    let proxy = body.proxy.as_deref().map(ProxyUrl::parse).transpose().map_err(invalid_proxy)?;
    let limits: LimitsPatch = body.limits.map(Into::into).unwrap_or_default();
    Limits::default().merged(&limits).map_err(invalid_limits)?;
    let read_receipts = read_receipts(body.read_receipts.as_deref())?.unwrap_or_default();
    let quiet_hours =
        body.quiet_hours.as_ref().map(|q| quiet_hours::check("quiet_hours", q)).transpose()?;
    let reject_call_message = body.reject_call_message.as_deref().map(call_reply).transpose()?;
    let rec = InstanceRecord {
        id: new_id("ins"),
        tenant_id: tenant.tenant_id.into_string(),
        name,
        pool,
        state: InstanceState::new_stopped(),
        phone: None,
        jid: None,
        lid: None,
        warming_days,
        proxy,
        limits,
        first_connected_at: None,
        connected_at: None,
        created_at: now(),
        health_score: 100,
        read_receipts,
        reject_calls: body.reject_calls.unwrap_or(false),
        reject_call_message,
        always_online: body.always_online.unwrap_or(false),
        quiet_hours,
        rewarm_from: None,
    };
    let rec = state.app.instances.create(rec).await?;
    Ok((StatusCode::CREATED, JsonOut(full_view(&state, &rec).await?)))
}

/// List instances
///
/// The tenant's instances, oldest first, with their status, health, warming and today's
/// figures. Without `limit` and `cursor`, every instance in one answer; with either, a page
/// (`limit`, 1 to 1000, default 100) and `next_cursor` to pass as `cursor` for the next one.
#[utoipa::path(get, path = "/v1/instances", tag = "instances", security(("bearer" = [])),
    params(ListParams),
    responses((status = 200, body = InstanceList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    tenant: Tenant,
    State(state): State<AppState>,
    Query(p): Query<ListParams>,
) -> ApiResult<JsonOut<InstanceList>> {
    let (recs, next_cursor) = if p.limit.is_none() && p.cursor.is_none() {
        (state.app.instances.list(&tenant.tenant_id).await?, None)
    } else {
        let limit = p.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::invalid(format!("`limit` must be between 1 and {MAX_PAGE}")));
        }
        let after = match p.cursor.as_deref() {
            Some(c) => Some(
                decode_cursor(c)
                    .ok_or_else(|| ApiError::invalid("`cursor` is not one this API gave"))?,
            ),
            None => None,
        };
        let mut recs =
            state.app.instances.list_page(&tenant.tenant_id, after.as_ref(), limit + 1).await?;
        let next = if recs.len() > limit as usize {
            recs.truncate(limit as usize);
            recs.last().map(encode_cursor)
        } else {
            None
        };
        (recs, next)
    };
    let live = state.app.instances.live(&tenant.tenant_id, &recs).await?;
    let items =
        recs.iter().map(|r| view(r, live.get(&r.id).copied().unwrap_or_default())).collect();
    Ok(JsonOut(InstanceList { items, next_cursor }))
}

/// Get an instance
///
/// One instance with its status, reason and detail, phone and JIDs, warming, health, proxy (without
/// credentials), limits and today's figures.
#[utoipa::path(get, path = "/v1/instances/{id}", tag = "instances", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    responses((status = 200, body = InstanceView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<InstanceId>,
) -> ApiResult<JsonOut<InstanceView>> {
    Ok(JsonOut(full_view(&state, &load(&state, &tenant, &id).await?).await?))
}

/// Update an instance
///
/// Changes name, pool, warming days, proxy, limits, quiet hours, read receipts or the call and
/// presence settings; only the fields given change, and every field is checked before anything
/// changes. `"proxy": null` removes the proxy, `"quiet_hours": null` the number's own hours,
/// `"reject_call_message": null` the reply to a rejected call. A `limits` object is laid over
/// the limits set before. New pool and limits apply to the next send; a new proxy applies at
/// the next connect; the call settings at the next call; `always_online` turned on announces a
/// connected number `available` at once.
#[utoipa::path(patch, path = "/v1/instances/{id}", tag = "instances", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    request_body = PatchInstance,
    responses(
        (status = 200, body = InstanceView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "`quota_exceeded`: pools per tenant (a new `pool`); or `rate_limited` (`Retry-After`)"),
    ))]
pub async fn patch(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<InstanceId>,
    Json(body): Json<PatchInstance>,
) -> ApiResult<JsonOut<InstanceView>> {
    let mut rec = load(&state, &tenant, &id).await?;
    // Check everything before changing anything.
    if let Some(n) = &body.name {
        rec.name = validate::name("name", n).map_err(ApiError::invalid)?;
    }
    if let Some(p) = &body.pool {
        rec.pool = validate::pool_name(p).map_err(ApiError::invalid)?;
    }
    if let Some(d) = body.warming_days {
        rec.warming_days = validate::warming_days(d).map_err(ApiError::invalid)?;
    }
    if let Some(p) = &body.proxy {
        rec.proxy = p.as_deref().map(ProxyUrl::parse).transpose().map_err(invalid_proxy)?;
    }
    if let Some(r) = read_receipts(body.read_receipts.as_deref())? {
        rec.read_receipts = r;
    }
    if let Some(l) = body.limits {
        let merged = rec.limits.overlaid(&l.into());
        Limits::default().merged(&merged).map_err(invalid_limits)?;
        rec.limits = merged;
    }
    if let Some(q) = &body.quiet_hours {
        rec.quiet_hours = q.as_ref().map(|q| quiet_hours::check("quiet_hours", q)).transpose()?;
    }
    if let Some(r) = body.reject_calls {
        rec.reject_calls = r;
    }
    if let Some(m) = &body.reject_call_message {
        rec.reject_call_message = m.as_deref().map(call_reply).transpose()?;
    }
    if let Some(o) = body.always_online {
        rec.always_online = o;
    }
    state.app.instances.update_settings(&rec).await?;
    Ok(JsonOut(full_view(&state, &rec).await?))
}

/// Delete an instance
///
/// Logs the number out, wipes its session and deletes the instance.
#[utoipa::path(delete, path = "/v1/instances/{id}", tag = "instances", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<InstanceId>,
) -> ApiResult<StatusCode> {
    let rec = load(&state, &tenant, &id).await?;
    state.app.instances.delete(&rec).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn after(
    state: &AppState,
    tenant: &Tenant,
    id: &InstanceId,
) -> ApiResult<JsonOut<InstanceView>> {
    Ok(JsonOut(full_view(state, &load(state, tenant, id).await?).await?))
}

/// Connect a number
///
/// Starts the number: a QR code when it has no session, otherwise a reconnect. Connecting a running
/// number changes nothing. 409 `invalid_state` when the state machine refuses.
#[utoipa::path(post, path = "/v1/instances/{id}/connect", tag = "instances", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    responses((status = 200, body = InstanceView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn connect(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<InstanceId>,
) -> ApiResult<JsonOut<InstanceView>> {
    let rec = load(&state, &tenant, &id).await?;
    state.app.instances.connect(&rec).await?;
    after(&state, &tenant, &id).await
}

/// Disconnect a number
///
/// Stops the connection and keeps the session: `disconnected`, reason `stopped`. `connect` resumes
/// it without a new scan. Disconnecting a stopped number changes nothing.
#[utoipa::path(post, path = "/v1/instances/{id}/disconnect", tag = "instances", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    responses((status = 200, body = InstanceView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn disconnect(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<InstanceId>,
) -> ApiResult<JsonOut<InstanceView>> {
    let rec = load(&state, &tenant, &id).await?;
    state.app.instances.disconnect(&rec).await?;
    after(&state, &tenant, &id).await
}

/// Log a number out
///
/// Unlinks the number and wipes its session: `disconnected`, reason `logged_out`. `connect` then
/// shows a new QR code.
#[utoipa::path(post, path = "/v1/instances/{id}/logout", tag = "instances", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    responses((status = 200, body = InstanceView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn logout(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<InstanceId>,
) -> ApiResult<JsonOut<InstanceView>> {
    let rec = load(&state, &tenant, &id).await?;
    state.app.instances.logout(&rec).await?;
    after(&state, &tenant, &id).await
}

#[derive(Serialize, ToSchema)]
pub struct QrView {
    /// The raw QR payload.
    pub code: String,
    /// When this code stops working; a new one follows.
    pub expires_at: DateTime<Utc>,
    /// The QR code as a PNG image, base64.
    pub png_base64: String,
}

fn wants_png(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.split(',').any(|p| p.trim().starts_with("image/png")))
}

/// Get the QR code
///
/// The current QR code to link the number, as JSON (`code`, `expires_at`, `png_base64`) or, with
/// `Accept: image/png`, as the image. The code rotates; each new one is also an `instance.qr`
/// event. 409 `not_pending` unless the instance is `qr_pending` (or when no code shows up within 5
/// s).
#[utoipa::path(get, path = "/v1/instances/{id}/qr", tag = "instances", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    responses(
        (status = 200, content((QrView = "application/json"), ("image/png"))),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    ))]
pub async fn qr(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<InstanceId>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let rec = load(&state, &tenant, &id).await?;
    let code = state.app.instances.qr(&rec).await?;
    let png = render_png(&code.code).map_err(ApiError::internal)?;
    if wants_png(&headers) {
        return Ok(([(CONTENT_TYPE, "image/png")], png).into_response());
    }
    let png_base64 = base64::engine::general_purpose::STANDARD.encode(png);
    Ok(JsonOut(QrView { code: code.code, expires_at: code.expires_at, png_base64 }).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairCodeRequest {
    /// The number to link, e.g. `+5511999999999`.
    #[schema(min_length = 8, max_length = 32)]
    pub phone: String,
}

#[derive(Serialize, ToSchema)]
pub struct PairCodeView {
    /// Type this on the phone: WhatsApp → Linked devices → Link with phone number.
    pub code: String,
    /// When the code stops working.
    pub expires_at: DateTime<Utc>,
}

/// Get a pairing code
///
/// A pairing code (`ABCD-EFGH`) to link the number without scanning: typed on the phone under
/// WhatsApp → Linked devices → Link with phone number. Only while `qr_pending` (409 `not_pending`).
/// 502 `whatsapp_refused`, 503 `network_unavailable`.
#[utoipa::path(post, path = "/v1/instances/{id}/pair-code", tag = "instances", security(("bearer" = [])),
    params(("id" = String, Path, description = "instance id")),
    request_body = PairCodeRequest,
    responses(
        (status = 200, body = PairCodeView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    ))]
pub async fn pair_code(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<InstanceId>,
    Json(body): Json<PairCodeRequest>,
) -> ApiResult<JsonOut<PairCodeView>> {
    let rec = load(&state, &tenant, &id).await?;
    let phone = Phone::parse(&body.phone).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_phone", e.to_string())
    })?;
    let code = state.app.instances.pair_code(&rec, &phone).await?;
    Ok(JsonOut(PairCodeView { code: code.code, expires_at: code.expires_at }))
}
