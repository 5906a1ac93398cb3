//! `GET /metrics` (Prometheus text, admin token) and `GET /v1/metrics` (the tenant's own
//! figures as JSON, per number and in total).

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json as JsonOut;
use bzapper_core::Status;
use serde::Serialize;
use utoipa::ToSchema;

use crate::events::metrics::{escape, Counts};
use crate::http::auth::{Admin, Tenant};
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::state::AppState;

/// Every tenant's figures in the Prometheus text format: message counters, send latency,
/// webhook deliveries by outcome, and, read at scrape time, each number's status and health
/// and each pool's queue depth.
#[utoipa::path(get, path = "/metrics", tag = "metrics", security(("bearer" = [])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn prometheus(_: Admin, State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let mut out = String::new();
    state.recorder.metrics().render(&mut out);
    let instances = state.store.list_all_instances().await?;
    out.push_str("# HELP bzapper_instance_status 1 for the number's current status.\n# TYPE bzapper_instance_status gauge\n");
    for i in &instances {
        for s in Status::ALL {
            let v = u8::from(i.state.status == s);
            let _ = writeln!(
                out,
                "bzapper_instance_status{{tenant=\"{}\",instance=\"{}\",status=\"{}\"}} {v}",
                escape(&i.tenant_id),
                escape(&i.id),
                s.as_str()
            );
        }
    }
    out.push_str("# HELP bzapper_instance_health_score The number's health score (0-100).\n# TYPE bzapper_instance_health_score gauge\n");
    for i in &instances {
        let score = state.scheduler.health(&i.id).map(|h| h.0).unwrap_or(i.health_score);
        let _ = writeln!(
            out,
            "bzapper_instance_health_score{{tenant=\"{}\",instance=\"{}\"}} {score}",
            escape(&i.tenant_id),
            escape(&i.id)
        );
    }
    out.push_str("# HELP bzapper_queue_depth Messages waiting to be sent, by pool.\n# TYPE bzapper_queue_depth gauge\n");
    for ((t, pool), n) in state.scheduler.queue_depths() {
        let _ = writeln!(
            out,
            "bzapper_queue_depth{{tenant=\"{}\",pool=\"{}\"}} {n}",
            escape(&t),
            escape(&pool)
        );
    }
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out))
}

#[derive(Serialize, ToSchema)]
pub struct NumberFigures {
    pub id: String,
    pub name: String,
    pub status: String,
    pub health_score: u8,
    /// Since the gateway started.
    pub counts: Counts,
}

#[derive(Serialize, ToSchema)]
pub struct TenantFigures {
    pub instances: Vec<NumberFigures>,
    pub total: Counts,
    /// Messages waiting to be sent, by pool.
    pub queued: BTreeMap<String, u64>,
}

/// The tenant's own figures, per number and in total.
#[utoipa::path(get, path = "/v1/metrics", tag = "metrics", security(("bearer" = [])),
    responses((status = 200, body = TenantFigures), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn tenant(
    tenant: Tenant,
    State(state): State<AppState>,
) -> ApiResult<JsonOut<TenantFigures>> {
    let counts = state.recorder.metrics().counts(&tenant.tenant_id);
    let mut total = Counts::default();
    let mut instances = Vec::new();
    for i in state.store.list_instances(&tenant.tenant_id).await? {
        let c = counts.get(&i.id).cloned().unwrap_or_default();
        total.sent += c.sent;
        total.delivered += c.delivered;
        total.read += c.read;
        total.failed += c.failed;
        total.received += c.received;
        instances.push(NumberFigures {
            health_score: state.scheduler.health(&i.id).map(|h| h.0).unwrap_or(i.health_score),
            status: i.state.status.as_str().into(),
            name: i.name,
            id: i.id,
            counts: c,
        });
    }
    let queued = state
        .scheduler
        .queue_depths()
        .into_iter()
        .filter(|((t, _), _)| *t == tenant.tenant_id)
        .map(|((_, pool), n)| (pool, n))
        .collect();
    Ok(JsonOut(TenantFigures { instances, total, queued }))
}
