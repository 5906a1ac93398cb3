//! `GET /v1/stats/series`: the tenant's time series for charts: sends per number, each
//! number's health, each pool's queue depth, in steps over a range (`app::stats`).

use axum::extract::State;
use axum::Json as JsonOut;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::stats::{Line, Metric, SeriesQuery};
use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::Query;
use crate::http::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    /// `sends` (messages each number sent per step), `health` (each number's lowest health
    /// score in the step) or `queue_depth` (each pool's highest number of queued messages in
    /// the step).
    pub metric: String,
    /// Only this number (`sends`, `health`); one of another tenant's answers 404.
    pub instance_id: Option<String>,
    /// Only this pool (`queue_depth`), or only this pool's numbers (`sends`, `health`).
    pub pool: Option<String>,
    /// RFC 3339; the range's start, moved back to a multiple of `step` (default: 24 h before
    /// `to`).
    pub from: Option<String>,
    /// RFC 3339; the range's end, excluded (default: now).
    pub to: Option<String>,
    /// Seconds per point: a multiple of the sample interval (`--series-sample-secs`, 60 by
    /// default; such steps reach back 48 h) or of 3600 (hourly, kept
    /// `--series-retention-days`). Default: the sample interval for ranges up to 6 h, else
    /// 3600. At most 5,000 points.
    #[param(minimum = 1)]
    pub step: Option<u32>,
}

/// One step of a series.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// The step's start.
    pub at: DateTime<Utc>,
    /// The metric over the step.
    pub value: u64,
}

/// One number's series (`sends`, `health`) or one pool's (`queue_depth`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesLine {
    /// The number (`sends`, `health`); absent for pools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The number's name; absent once the number was deleted (its history stays until pruned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The pool (of the number, or the pool whose queue it is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Oldest first; steps with no sample are absent.
    pub points: Vec<SeriesPoint>,
}

/// A metric's series over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesView {
    /// `sends`, `health` or `queue_depth`.
    pub metric: String,
    /// Seconds per point.
    pub step: u32,
    /// The range as read: `from` aligned to the step, `to` excluded.
    pub from: DateTime<Utc>,
    /// The end of the range (excluded).
    pub to: DateTime<Utc>,
    /// One per number (by id) or per pool (by name) with at least one point.
    pub series: Vec<SeriesLine>,
}

fn time(name: &str, v: Option<&str>) -> ApiResult<Option<DateTime<Utc>>> {
    v.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.to_utc())
            .map_err(|_| ApiError::invalid(format!("`{name}` is not an RFC 3339 time")))
    })
    .transpose()
}

fn line(l: Line) -> SeriesLine {
    SeriesLine {
        instance_id: l.instance_id,
        name: l.name,
        pool: l.pool,
        points: l.points.into_iter().map(|(at, value)| SeriesPoint { at, value }).collect(),
    }
}

/// Time series for charts
///
/// The tenant's time series: messages sent per number, health per number or queue depth per
/// pool, in steps over a range. Sampled every `--series-sample-secs` (per-step figures reach
/// back 48 h) and hourly (kept `--series-retention-days`); see docs/api.md "Stats".
#[utoipa::path(get, path = "/v1/stats/series", tag = "stats", security(("bearer" = [])),
    params(SeriesParams),
    responses(
        (status = 200, body = SeriesView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`instance_id` names no number of the tenant's"),
        (status = 422, body = ErrorBody, description = "`invalid_request`: an unknown metric, a time that is not RFC 3339, `from` not before `to`, a step off the sample interval and the hour, or too many points"),
    ))]
pub async fn series(
    tenant: Tenant,
    State(state): State<AppState>,
    Query(p): Query<SeriesParams>,
) -> ApiResult<JsonOut<SeriesView>> {
    let metric = Metric::parse(&p.metric)
        .ok_or_else(|| ApiError::invalid("`metric` must be `sends`, `health` or `queue_depth`"))?;
    let q = SeriesQuery {
        metric,
        instance_id: p.instance_id,
        pool: p.pool,
        from: time("from", p.from.as_deref())?,
        to: time("to", p.to.as_deref())?,
        step: p.step,
    };
    let a = state.app.stats.series(&tenant.tenant_id, &q).await?;
    Ok(JsonOut(SeriesView {
        metric: a.metric.as_str().to_string(),
        step: a.step,
        from: a.from,
        to: a.to,
        series: a.series.into_iter().map(line).collect(),
    }))
}
