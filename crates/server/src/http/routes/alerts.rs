//! The tenant's alert target (where a short human message goes when a number drops), and the
//! alerts made for it: listed with their delivery status, and sent again.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json as JsonOut;
use base64::Engine;
use bzapper_core::validate::shown;
use bzapper_store::{AlertConfig, AlertDeliveryFilter, AlertDeliveryRecord, AlertStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path, Query};
use crate::http::state::AppState;
use crate::model::time::now;
use crate::runtime::alerts::ALERT_KINDS;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertFormat {
    /// `{"text": "..."}`: Slack incoming webhooks and compatible chat tools.
    Slack,
    /// The text with the alert kind and the event.
    Json,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutAlerts {
    /// `http://` or `https://`.
    pub url: String,
    /// `slack` posts `{"text"}` (Slack incoming webhooks and compatible chat tools); `json` posts
    /// the text with the alert kind and the event.
    pub format: AlertFormat,
    /// Any of `logged_out`, `banned`, `health_low`.
    pub on: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AlertsView {
    /// Where alerts are posted.
    pub url: String,
    /// `slack` or `json`.
    pub format: String,
    /// The drops alerted: any of `logged_out`, `banned`, `health_low`.
    pub on: Vec<String>,
    /// When the target was last set.
    pub updated_at: DateTime<Utc>,
}

fn view(a: &AlertConfig) -> AlertsView {
    AlertsView {
        url: a.url.clone(),
        format: a.format.clone(),
        on: a.on.clone(),
        updated_at: a.updated_at,
    }
}

/// Set the alert target
///
/// Sets where alerts go and for which drops: one Slack-compatible (`{"text"}`) or JSON target per
/// tenant. An alert is posted when a number is banned or logged out (`instance.disconnected`) or
/// leaves rotation below the health threshold (`instance.health`); each is a durable delivery,
/// retried like a webhook's. The URL must be http(s) to a host the gateway may reach (422
/// `invalid_url`).
#[utoipa::path(put, path = "/v1/alerts", tag = "alerts", security(("bearer" = [])),
    request_body = PutAlerts,
    responses(
        (status = 200, body = AlertsView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    ))]
pub async fn put(
    tenant: Tenant,
    State(state): State<AppState>,
    Json(body): Json<PutAlerts>,
) -> ApiResult<JsonOut<AlertsView>> {
    let url = crate::http::routes::webhooks::check_url(&body.url, &state.outbound)?;
    if body.on.is_empty() || body.on.iter().any(|k| !ALERT_KINDS.contains(&k.as_str())) {
        return Err(ApiError::invalid("`on` needs one or more of logged_out, banned, health_low"));
    }
    let mut on = body.on;
    on.sort();
    on.dedup();
    let format = match body.format {
        AlertFormat::Slack => "slack",
        AlertFormat::Json => "json",
    };
    let cfg = AlertConfig {
        tenant_id: tenant.tenant_id.into_string(),
        url,
        format: format.into(),
        on,
        updated_at: now(),
    };
    state.app.alerts.put(&cfg).await?;
    Ok(JsonOut(view(&cfg)))
}

/// Get the alert target
///
/// The tenant's alert target: its URL, format and the drops it is told of. 404 when none is set.
#[utoipa::path(get, path = "/v1/alerts", tag = "alerts", security(("bearer" = [])),
    responses((status = 200, body = AlertsView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(tenant: Tenant, State(state): State<AppState>) -> ApiResult<JsonOut<AlertsView>> {
    let a = state.app.alerts.get(&tenant.tenant_id).await?;
    Ok(JsonOut(view(&a)))
}

/// Remove the alert target
///
/// Stops alerts: no alert is written for later drops. 404 when none is set.
#[utoipa::path(delete, path = "/v1/alerts", tag = "alerts", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(tenant: Tenant, State(state): State<AppState>) -> ApiResult<StatusCode> {
    state.app.alerts.delete(&tenant.tenant_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One alert and where its delivery stands.
#[derive(Serialize, ToSchema)]
pub struct AlertDeliveryView {
    /// The alert's id (`alr_…`), for re-sending it.
    pub id: String,
    /// `logged_out`, `banned` or `health_low`.
    pub alert: String,
    /// The sentence posted.
    pub text: String,
    /// The number the alert is about.
    pub instance_id: Option<String>,
    /// The event that raised it.
    pub event_id: String,
    /// `pending`, `delivered` or `failed` (given up).
    pub status: String,
    /// How many posts were tried.
    pub attempts: u32,
    /// Only while `pending`.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The target's last HTTP status (`null` when it did not answer).
    pub last_status: Option<u16>,
    /// Why the last post failed, in words; `null` when none did.
    pub last_error: Option<String>,
    /// When the alert was raised.
    pub created_at: DateTime<Utc>,
    /// When the target took it; `null` until then.
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct AlertDeliveryList {
    /// The alerts of this page, newest first.
    pub items: Vec<AlertDeliveryView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

fn delivery_view(a: &AlertDeliveryRecord) -> AlertDeliveryView {
    AlertDeliveryView {
        id: a.id.clone(),
        alert: a.kind.clone(),
        text: a.text.clone(),
        instance_id: a.instance_id.clone(),
        event_id: a.event_id.to_string(),
        status: a.status.as_str().into(),
        attempts: a.attempts,
        next_attempt_at: (a.status == AlertStatus::Pending).then_some(a.next_attempt_at),
        last_status: a.last_status,
        last_error: a.last_error.clone(),
        created_at: a.created_at,
        delivered_at: a.delivered_at,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveryParams {
    /// `pending`, `delivered` or `failed`.
    pub status: Option<String>,
    /// 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
}

fn encode_cursor(a: &AlertDeliveryRecord) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&a.id)
}

/// The alert id a cursor names: one this API gave (an `alr_` id).
fn decode_cursor(c: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    let id = String::from_utf8(raw).ok()?;
    id.strip_prefix("alr_").is_some_and(|t| !t.is_empty() && t.len() <= 64).then_some(id)
}

/// List alert deliveries
///
/// The tenant's alerts, newest first, each with its sentence, its delivery status (`pending`,
/// `delivered`, `failed`), attempts and last error. Paged with `limit` and `cursor` (the
/// `next_cursor` of the previous page).
#[utoipa::path(get, path = "/v1/alerts/deliveries", tag = "alerts", security(("bearer" = [])),
    params(DeliveryParams),
    responses((status = 200, body = AlertDeliveryList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn deliveries(
    tenant: Tenant,
    State(state): State<AppState>,
    Query(p): Query<DeliveryParams>,
) -> ApiResult<JsonOut<AlertDeliveryList>> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("`limit` must be between 1 and 500"));
    }
    let status = match p.status.as_deref() {
        Some(s) => Some(
            AlertStatus::parse(s)
                .ok_or_else(|| ApiError::invalid(format!("unknown status `{}`", shown(s))))?,
        ),
        None => None,
    };
    let before = match p.cursor.as_deref() {
        Some(c) => Some(
            decode_cursor(c)
                .ok_or_else(|| ApiError::invalid("`cursor` is not one this API gave"))?,
        ),
        None => None,
    };
    let filter = AlertDeliveryFilter { status, before, limit: limit + 1 };
    let mut items = state.app.alerts.deliveries(&tenant.tenant_id, &filter).await?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(encode_cursor)
    } else {
        None
    };
    Ok(JsonOut(AlertDeliveryList { items: items.iter().map(delivery_view).collect(), next_cursor }))
}

/// Re-send an alert
///
/// Posts an alert again now, a failed one included, to the target as it is set now. 202: the
/// attempt is made in the background; its outcome shows in the deliveries list.
#[utoipa::path(post, path = "/v1/alerts/deliveries/{id}/retry", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path, description = "alert delivery id")),
    responses((status = 202, body = AlertDeliveryView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn retry(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, JsonOut<AlertDeliveryView>)> {
    let a = state.app.alerts.retry(&tenant.tenant_id, &id).await?;
    Ok((StatusCode::ACCEPTED, JsonOut(delivery_view(&a))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        assert_eq!(decode_cursor(&enc("alr_0ABC")), Some("alr_0ABC".into()));
        assert_eq!(decode_cursor("bad!"), None);
        assert_eq!(decode_cursor(&enc("msg_0ABC")), None);
        assert_eq!(decode_cursor(&enc("alr_")), None);
    }
}
