//! `GET /metrics` (Prometheus text, admin token) and `GET /v1/metrics` (the tenant's own
//! figures as JSON, per number and in total).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json as JsonOut;
use serde::Serialize;
use utoipa::ToSchema;

use crate::events::metrics::Counts;
use crate::http::auth::{Admin, Tenant};
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::state::AppState;

/// Prometheus metrics
///
/// Admin token. Every tenant's figures in the Prometheus text format: message counters, send
/// latency, webhook deliveries by outcome, and, read at scrape time, each number's status and
/// health and each pool's queue depth. Counters count from the gateway's start.
#[utoipa::path(get, path = "/metrics", tag = "metrics", security(("bearer" = [])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn prometheus(_: Admin, State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let out = state.app.status.prometheus_text().await?;
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out))
}

#[derive(Serialize, ToSchema)]
pub struct NumberFigures {
    /// The instance's id.
    pub id: String,
    /// The instance's name.
    pub name: String,
    /// `qr_pending`, `connecting`, `connected` or `disconnected`.
    pub status: String,
    /// The health score, 0 to 100.
    pub health_score: u8,
    /// Since the gateway started.
    pub counts: Counts,
}

#[derive(Serialize, ToSchema)]
pub struct TenantFigures {
    /// Each number's figures.
    pub instances: Vec<NumberFigures>,
    /// The figures of all the tenant's numbers together.
    pub total: Counts,
    /// Messages waiting to be sent, by pool.
    pub queued: BTreeMap<String, u64>,
}

/// Get the tenant's figures
///
/// The tenant's own figures as JSON, per number and in total: each number's status, health score
/// and message counts by status, the totals, and the messages queued per pool.
#[utoipa::path(get, path = "/v1/metrics", tag = "metrics", security(("bearer" = [])),
    responses((status = 200, body = TenantFigures), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn tenant(
    tenant: Tenant,
    State(state): State<AppState>,
) -> ApiResult<JsonOut<TenantFigures>> {
    let (numbers, queued) = state.app.status.tenant_figures(&tenant.tenant_id).await?;
    let mut total = Counts::default();
    let mut instances = Vec::new();
    for n in numbers {
        let c = n.counts;
        total.sent += c.sent;
        total.delivered += c.delivered;
        total.read += c.read;
        total.failed += c.failed;
        total.received += c.received;
        instances.push(NumberFigures {
            health_score: n.health_score,
            status: n.instance.state.status.as_str().into(),
            name: n.instance.name,
            id: n.instance.id,
            counts: c,
        });
    }
    Ok(JsonOut(TenantFigures { instances, total, queued }))
}
