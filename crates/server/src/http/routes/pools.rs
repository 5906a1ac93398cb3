//! Pools of numbers: their rotation strategy and sending settings (sticky sender, country
//! match, per-contact pacing, quiet hours). Pool `default` always exists.

use axum::extract::State;
use axum::Json as JsonOut;
use bzapper_core::validate;
use bzapper_store::{Pool, Strategy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::pools::PoolPatch;
use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Json, Path};
use crate::http::routes::quiet_hours;
use crate::http::state::AppState;
use crate::runtime::campaigns::window::ScheduleSpec;

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

/// Only the fields given change; the others keep their stored values (a new pool starts
/// from the defaults).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPool {
    /// Default `round_robin`.
    pub strategy: Option<StrategyName>,
    /// Sticky sender: a contact in conversation with a number of the pool gets later messages
    /// from that number (default `true`).
    pub sticky: Option<bool>,
    /// How long a conversation (a message sent or received) keeps its number, in days (1 to
    /// 365, default 30).
    #[schema(minimum = 1, maximum = 365)]
    pub sticky_window_days: Option<i64>,
    /// Prefer numbers with the recipient's country calling code (default `false`).
    pub prefer_country: Option<bool>,
    /// At most this many messages an hour to one contact, across the pool (0 to 60; 0: no
    /// limit; default 4).
    #[schema(minimum = 0, maximum = 60)]
    pub per_contact_per_hour: Option<i64>,
    /// The pool's active hours: messages wait outside them. `null` removes them (default: no
    /// quiet hours).
    #[serde(default, deserialize_with = "quiet_hours::present")]
    #[schema(value_type = Option<ScheduleSpec>)]
    pub quiet_hours: Option<Option<ScheduleSpec>>,
}

/// Bounds of the pool settings (docs/api.md).
const STICKY_WINDOW_DAYS: std::ops::RangeInclusive<i64> = 1..=365;
const PER_CONTACT_PER_HOUR: std::ops::RangeInclusive<i64> = 0..=60;

impl PutPool {
    /// The change it asks for, checked: 422 `invalid_request` for a value out of bounds.
    fn patch(self) -> ApiResult<PoolPatch> {
        let in_range = |field: &str, v: i64, r: std::ops::RangeInclusive<i64>| {
            if r.contains(&v) {
                Ok(v as u32)
            } else {
                Err(ApiError::invalid(format!(
                    "`{field}` must be between {} and {}, not {v}",
                    r.start(),
                    r.end()
                )))
            }
        };
        Ok(PoolPatch {
            strategy: self.strategy.map(Into::into),
            sticky: self.sticky,
            sticky_window_days: self
                .sticky_window_days
                .map(|v| in_range("sticky_window_days", v, STICKY_WINDOW_DAYS))
                .transpose()?,
            prefer_country: self.prefer_country,
            per_contact_per_hour: self
                .per_contact_per_hour
                .map(|v| in_range("per_contact_per_hour", v, PER_CONTACT_PER_HOUR))
                .transpose()?,
            quiet_hours: self
                .quiet_hours
                .map(|q| q.map(|spec| quiet_hours::check("quiet_hours", &spec)).transpose())
                .transpose()?,
        })
    }
}

/// A pool with every setting's effective value.
#[derive(Serialize, ToSchema)]
pub struct PoolView {
    /// The pool's name.
    pub name: String,
    /// `round_robin`, `least_used` or `health_weighted`.
    pub strategy: String,
    /// Sticky sender: a contact in conversation with a number of the pool gets later messages from
    /// that number.
    pub sticky: bool,
    /// How long a conversation keeps its number, in days.
    pub sticky_window_days: u32,
    /// Prefer numbers with the recipient's country calling code.
    pub prefer_country: bool,
    /// 0: no limit.
    pub per_contact_per_hour: u32,
    /// The pool's active hours; `null`: none (messages go out at any hour).
    pub quiet_hours: Option<ScheduleSpec>,
}

impl From<Pool> for PoolView {
    fn from(p: Pool) -> Self {
        let s = p.settings;
        PoolView {
            name: p.name,
            strategy: p.strategy.as_str().into(),
            sticky: s.sticky,
            sticky_window_days: s.sticky_window_days,
            prefer_country: s.prefer_country,
            per_contact_per_hour: s.per_contact_per_hour,
            quiet_hours: quiet_hours::show(s.quiet_hours.as_ref()),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PoolList {
    /// The pools, sorted by name.
    pub items: Vec<PoolView>,
}

/// List pools
///
/// The tenant's pools, sorted by name, each with its effective settings: always `default`, every
/// pool an instance names and every pool set with `PUT`.
#[utoipa::path(get, path = "/v1/pools", tag = "pools", security(("bearer" = [])),
    responses((status = 200, body = PoolList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(tenant: Tenant, State(state): State<AppState>) -> ApiResult<JsonOut<PoolList>> {
    let items =
        state.app.pools.list(&tenant.tenant_id).await?.into_iter().map(PoolView::from).collect();
    Ok(JsonOut(PoolList { items }))
}

/// Create or change a pool
///
/// Creates the pool or changes its strategy and settings (`strategy`, `sticky`,
/// `sticky_window_days`, `prefer_country`, `per_contact_per_hour`, `quiet_hours`): only the fields
/// given change, a new pool starting from the defaults. `"quiet_hours": null` removes the quiet
/// hours. A value out of range answers 422 `invalid_request` naming the field, and nothing changes.
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
    let p = state.app.pools.put(&tenant.tenant_id, &name, body.patch()?).await?;
    Ok(JsonOut(p.into()))
}
