//! Webhooks per tenant: create (the secret is shown once), list, read, delete, rotate the
//! secret (the old one kept valid for an overlap), their recent deliveries, and re-sending one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json as JsonOut;
use bzapper_store::{DeliveryRecord, WebhookRecord};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::events::Filter;
use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path, Query};
use crate::http::state::AppState;
use crate::model::ids::{new_id, new_secret, WebhookId};
use crate::model::time::now;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `http://` or `https://`.
    #[schema(min_length = 8, max_length = 2048)]
    pub url: String,
    /// Event types or `prefix.*` patterns, e.g. `["instance.*", "message.received"]`.
    #[schema(min_items = 1, max_items = 20)]
    pub events: Vec<String>,
    /// 16 to 128 characters; generated when absent (and shown once).
    pub secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookCreated {
    /// The webhook's id (`whk_…`).
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// The event types or `prefix.*` patterns it takes.
    pub events: Vec<String>,
    /// Shown only here.
    pub secret: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    /// The webhook's id (`whk_…`).
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// The event types or `prefix.*` patterns it takes.
    pub events: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Until when the secret replaced by the latest rotation still signs deliveries
    /// (`X-Bzapper-Signature-Previous`); absent when none does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

/// How long the replaced secret stays valid after a rotation by default: a day.
pub const DEFAULT_PREVIOUS_SECRET_VALID_SECS: u64 = 24 * 3600;
/// The longest overlap a rotation may ask for: a week.
pub const MAX_PREVIOUS_SECRET_VALID_SECS: u64 = 7 * 24 * 3600;

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// The new secret, 16 to 128 characters; generated when absent (and shown once).
    pub secret: Option<String>,
    /// How long the replaced secret keeps signing deliveries, in seconds: 0 (at once) to
    /// 604800 (a week); default 86400 (a day).
    #[schema(minimum = 0, maximum = 604800)]
    pub previous_valid_for_secs: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct SecretRotated {
    /// The webhook's id.
    pub id: String,
    /// The new secret: `X-Bzapper-Signature` uses it from now on. Shown only here.
    pub secret: String,
    /// Until when the replaced secret's signature is sent too, as `X-Bzapper-Signature-Previous`.
    pub previous_secret_expires_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    /// The tenant's webhooks.
    pub items: Vec<WebhookView>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    /// The delivery's id, for re-sending it.
    pub id: String,
    /// The event delivered (its `id` in the envelope).
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    /// How many POSTs were tried.
    pub attempts: u32,
    /// When the next attempt is due; `null` unless `pending`.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's last HTTP status.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, in words; `null` when none did.
    pub last_error: Option<String>,
    /// When the delivery was made for the event.
    pub created_at: DateTime<Utc>,
    /// When the receiver answered 2xx; `null` until then.
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    /// The recent deliveries, newest first.
    pub items: Vec<DeliveryView>,
}

fn view(w: &WebhookRecord) -> WebhookView {
    WebhookView {
        id: w.id.clone(),
        url: w.url.clone(),
        events: w.events.clone(),
        created_at: w.created_at,
        previous_secret_expires_at: w
            .previous_secret
            .as_ref()
            .map(|p| p.expires_at)
            .filter(|&at| at > now()),
    }
}

/// A webhook secret given by the client (16 to 128 characters), or a generated one.
fn secret_or_new(given: Option<String>) -> ApiResult<String> {
    match given {
        Some(s) if (16..=128).contains(&s.chars().count()) => Ok(s),
        Some(_) => Err(ApiError::invalid("`secret` must be 16 to 128 characters")),
        None => Ok(format!("whsec_{}", new_secret())),
    }
}

fn delivery_view(d: &DeliveryRecord) -> DeliveryView {
    DeliveryView {
        id: d.id.clone(),
        event_id: d.event_id.to_string(),
        event_type: d.event_type.clone(),
        status: d.status.as_str().into(),
        attempts: d.attempts,
        next_attempt_at: (d.status == bzapper_store::DeliveryStatus::Pending)
            .then_some(d.next_attempt_at),
        last_status: d.last_status,
        last_error: d.last_error.clone(),
        created_at: d.created_at,
        delivered_at: d.delivered_at,
    }
}

/// Checks an outbound URL (webhooks, alerts): http or https with a host, and not an IP
/// address the outbound guard refuses (a host name is checked when it is resolved, at each
/// delivery, since its addresses can change).
pub fn check_url(u: &str, guard: &crate::outbound::Guard) -> ApiResult<String> {
    let bad = || {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_url",
            "`url` must be an http:// or https:// URL with a host",
        )
    };
    if u.len() > 2048 {
        return Err(bad());
    }
    let parsed = url::Url::parse(u.trim()).map_err(|_| bad())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad());
    }
    guard.check_url(&parsed).map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_url",
            "`url` is a loopback, private, link-local or reserved address, which the gateway \
             does not reach (the operator can allow it with --outbound-allow)",
        )
    })?;
    Ok(parsed.to_string())
}

/// Add a webhook
///
/// Adds a webhook: every matching event of the tenant (`events`: types or `prefix.*` patterns) is
/// POSTed to its URL, durably and in order, signed with `X-Bzapper-Signature: sha256=<hex
/// HMAC-SHA256(secret, timestamp + "." + body)>`. A failed delivery is retried with backoff (2 s, 4
/// s, 8 s … up to 1 h) for a day. The secret is shown only in this answer (or is the one given).
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body = CreateWebhook,
    responses(
        (status = 201, body = WebhookCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "`quota_exceeded`: webhooks per tenant; or `rate_limited` (`Retry-After`)"),
    ))]
pub async fn create(
    tenant: Tenant,
    State(state): State<AppState>,
    Json(body): Json<CreateWebhook>,
) -> ApiResult<(StatusCode, JsonOut<WebhookCreated>)> {
    let url = check_url(&body.url, &state.outbound)?;
    if body.events.is_empty() || body.events.len() > 20 {
        return Err(ApiError::invalid("`events` needs 1 to 20 types or patterns"));
    }
    Filter::parse(None, Some(&body.events.join(","))).map_err(ApiError::invalid)?;
    if body.events.iter().any(|e| e.contains(',')) {
        return Err(ApiError::invalid("one event type or pattern per entry of `events`"));
    }
    let secret = secret_or_new(body.secret)?;
    let w = WebhookRecord {
        id: new_id("whk"),
        tenant_id: tenant.tenant_id.into_string(),
        url,
        events: body.events,
        secret,
        created_at: now(),
        previous_secret: None,
    };
    state.app.webhooks.create(&w).await?;
    Ok((
        StatusCode::CREATED,
        JsonOut(WebhookCreated {
            id: w.id,
            url: w.url,
            events: w.events,
            secret: w.secret,
            created_at: w.created_at,
        }),
    ))
}

/// List webhooks
///
/// The tenant's webhooks (secrets are never shown again).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = WebhookList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    tenant: Tenant,
    State(state): State<AppState>,
) -> ApiResult<JsonOut<WebhookList>> {
    let tenant = tenant.tenant_id;
    let items = state.app.webhooks.list(&tenant).await?.iter().map(view).collect();
    Ok(JsonOut(WebhookList { items }))
}

/// Get a webhook
///
/// One webhook: its URL, the events it takes and when its previous secret stops signing.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 200, body = WebhookView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<JsonOut<WebhookView>> {
    let w = state.app.webhooks.get(&tenant.tenant_id, &WebhookId::new(id)).await?;
    Ok(JsonOut(view(&w)))
}

/// Delete a webhook
///
/// Removes a webhook and its deliveries; nothing more is posted to it.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.app.webhooks.delete(&tenant.tenant_id, &WebhookId::new(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate a webhook's secret
///
/// Replaces the webhook's secret. The replaced secret keeps signing deliveries (as
/// `X-Bzapper-Signature-Previous`) until `previous_secret_expires_at`, so receivers can switch over
/// without a gap; a secret replaced earlier stops at once.
#[utoipa::path(post, path = "/v1/webhooks/{id}/secret", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id")),
    request_body(content = RotateSecret, description = "optional: an empty body generates the secret"),
    responses((status = 200, body = SecretRotated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn rotate_secret(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Option<Json<RotateSecret>>,
) -> ApiResult<JsonOut<SecretRotated>> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let valid_for = body.previous_valid_for_secs.unwrap_or(DEFAULT_PREVIOUS_SECRET_VALID_SECS);
    if valid_for > MAX_PREVIOUS_SECRET_VALID_SECS {
        return Err(ApiError::invalid(
            "`previous_valid_for_secs` must be between 0 and 604800 (a week)",
        ));
    }
    let secret = secret_or_new(body.secret)?;
    let expires_at = now() + chrono::Duration::seconds(valid_for as i64);
    let w = state
        .app
        .webhooks
        .rotate_secret(&tenant.tenant_id, &WebhookId::new(id), &secret, expires_at)
        .await?;
    Ok(JsonOut(SecretRotated { id: w.id, secret, previous_secret_expires_at: expires_at }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveryParams {
    /// 1 to 500 (default 100), newest first.
    pub limit: Option<u32>,
}

/// List a webhook's deliveries
///
/// The webhook's recent deliveries, newest first: the event, status (`pending`, `delivered`,
/// `dead`), attempts, last error and next attempt.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id"), DeliveryParams),
    responses((status = 200, body = DeliveryList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn deliveries(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<DeliveryParams>,
) -> ApiResult<JsonOut<DeliveryList>> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("`limit` must be between 1 and 500"));
    }
    let (tenant, id) = (tenant.tenant_id, WebhookId::new(id));
    let deliveries = state.app.webhooks.deliveries(&tenant, &id, limit).await?;
    let items = deliveries.iter().map(delivery_view).collect();
    Ok(JsonOut(DeliveryList { items }))
}

/// Re-send a delivery
///
/// Sends a delivery again now, a dead-lettered one included. 202: the attempt is made in the
/// background; its outcome shows in the deliveries list.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id"), ("delivery_id" = String, Path, description = "delivery id")),
    responses((status = 202, body = DeliveryView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn retry(
    tenant: Tenant,
    State(state): State<AppState>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, JsonOut<DeliveryView>)> {
    let (tenant, id) = (tenant.tenant_id, WebhookId::new(id));
    let d = state.app.webhooks.retry(&tenant, &id, &delivery_id).await?;
    Ok((StatusCode::ACCEPTED, JsonOut(delivery_view(&d))))
}
