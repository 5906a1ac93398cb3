//! Pools of numbers and their rotation strategy. Pool `default` always exists.

use axum::extract::State;
use axum::Json as JsonOut;
use bzapper_core::validate;
use bzapper_store::Strategy;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path};
use crate::http::state::AppState;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StrategyName {
    RoundRobin,
    LeastUsed,
    HealthWeighted,
}

impl From<StrategyName> for Strategy {
    fn from(s: StrategyName) -> Self {
        match s {
            StrategyName::RoundRobin => Strategy::RoundRobin,
            StrategyName::LeastUsed => Strategy::LeastUsed,
            StrategyName::HealthWeighted => Strategy::HealthWeighted,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPool {
    pub strategy: StrategyName,
}

#[derive(Serialize, ToSchema)]
pub struct PoolView {
    pub name: String,
    /// `round_robin`, `least_used` or `health_weighted`.
    pub strategy: String,
}

#[derive(Serialize, ToSchema)]
pub struct PoolList {
    pub items: Vec<PoolView>,
}

/// The tenant's pools.
#[utoipa::path(get, path = "/v1/pools", tag = "pools", security(("bearer" = [])),
    responses((status = 200, body = PoolList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(tenant: Tenant, State(state): State<AppState>) -> ApiResult<JsonOut<PoolList>> {
    let items = state
        .app
        .pools
        .list(&tenant.tenant_id)
        .await?
        .into_iter()
        .map(|p| PoolView { name: p.name, strategy: p.strategy.as_str().into() })
        .collect();
    Ok(JsonOut(PoolList { items }))
}

/// Creates the pool or changes its strategy.
#[utoipa::path(put, path = "/v1/pools/{name}", tag = "pools", security(("bearer" = [])),
    params(("name" = String, Path, description = "pool name: a-z, 0-9, '-', '_'")),
    request_body = PutPool,
    responses(
        (status = 200, body = PoolView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "`quota_exceeded`: pools per tenant; or `rate_limited` (`Retry-After`)"),
    ))]
pub async fn put(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<PutPool>,
) -> ApiResult<JsonOut<PoolView>> {
    let name = validate::pool_name(&name).map_err(ApiError::invalid)?;
    let p = state.app.pools.put(&tenant.tenant_id, &name, body.strategy.into()).await?;
    Ok(JsonOut(PoolView { name: p.name, strategy: p.strategy.as_str().into() }))
}
