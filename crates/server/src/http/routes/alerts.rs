//! The tenant's alert target: where a short human message goes when a number drops.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json as JsonOut;
use bzapper_store::AlertConfig;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::Json;
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
    pub format: AlertFormat,
    /// Any of `logged_out`, `banned`, `health_low`.
    pub on: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AlertsView {
    pub url: String,
    pub format: String,
    pub on: Vec<String>,
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

/// Sets where alerts go and for which drops.
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

/// The alert target, if one is set.
#[utoipa::path(get, path = "/v1/alerts", tag = "alerts", security(("bearer" = [])),
    responses((status = 200, body = AlertsView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(tenant: Tenant, State(state): State<AppState>) -> ApiResult<JsonOut<AlertsView>> {
    let a = state.app.alerts.get(&tenant.tenant_id).await?;
    Ok(JsonOut(view(&a)))
}

/// Stops alerts.
#[utoipa::path(delete, path = "/v1/alerts", tag = "alerts", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(tenant: Tenant, State(state): State<AppState>) -> ApiResult<StatusCode> {
    state.app.alerts.delete(&tenant.tenant_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
