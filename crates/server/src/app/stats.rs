//! Reading the dashboard's time series (`GET /v1/stats/series`): which stored tier answers a
//! step, the checks on the range, and the series of the tenant's numbers or pools, each named.
//! The sampling itself is `runtime::series`.

use std::collections::HashMap;
use std::sync::Arc;

use bzapper_store::{SeriesRange, Store};
use chrono::{DateTime, Duration, Utc};

use crate::app::error::{AppError, AppResult};
use crate::model::ids::TenantId;
use crate::runtime::series::settings::{SeriesSettings, HOUR_TIER};

/// Most points a series may have (`(to - from) / step`).
pub const MAX_POINTS: i64 = 5000;
/// The longest range one read may cover.
pub const MAX_RANGE_DAYS: i64 = 400;
/// A range without `from` covers this much before `to`.
pub const DEFAULT_RANGE_HOURS: i64 = 24;
/// Ranges up to this long default to the fine tier's step; longer ones to the hour.
const FINE_DEFAULT_UP_TO_HOURS: i64 = 6;

/// Which figure a series shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Messages each number sent per step.
    Sends,
    /// Each number's lowest health score in each step.
    Health,
    /// Each pool's highest queue depth in each step.
    QueueDepth,
}

impl Metric {
    pub fn parse(s: &str) -> Option<Metric> {
        match s {
            "sends" => Some(Metric::Sends),
            "health" => Some(Metric::Health),
            "queue_depth" => Some(Metric::QueueDepth),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Sends => "sends",
            Metric::Health => "health",
            Metric::QueueDepth => "queue_depth",
        }
    }
}

/// What to read.
#[derive(Debug, Clone)]
pub struct SeriesQuery {
    pub metric: Metric,
    /// One number (sends, health) of the tenant's.
    pub instance_id: Option<String>,
    /// One pool (queue depth).
    pub pool: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Seconds per point.
    pub step: Option<u32>,
}

/// One series: a number's (with its name, `None` once deleted) or a pool's.
#[derive(Debug, Clone)]
pub struct Line {
    pub instance_id: Option<String>,
    pub name: Option<String>,
    pub pool: Option<String>,
    pub points: Vec<(DateTime<Utc>, u64)>,
}

/// The answer: the range as aligned, the step, and the series.
#[derive(Debug, Clone)]
pub struct SeriesAnswer {
    pub metric: Metric,
    pub step: u32,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub series: Vec<Line>,
}

pub struct Stats {
    store: Arc<dyn Store>,
    settings: SeriesSettings,
}

fn invalid(message: impl Into<String>) -> AppError {
    AppError::unprocessable("invalid_request", message)
}

/// The stored tier a step reads (the hour tier for whole hours, else the fine tier), or why
/// none can.
pub fn tier_for(step: u32, settings: &SeriesSettings) -> AppResult<u32> {
    let fine = settings.fine_tier();
    if step > 0 && step.is_multiple_of(HOUR_TIER) {
        Ok(HOUR_TIER)
    } else if step > 0 && step.is_multiple_of(fine) {
        Ok(fine)
    } else {
        Err(invalid(format!(
            "`step` must be a multiple of {fine} (the sample interval, in seconds) or of {HOUR_TIER}"
        )))
    }
}

/// The range and step of `q` checked and aligned: `from` down to a multiple of the step.
pub fn plan(
    q: &SeriesQuery,
    settings: &SeriesSettings,
    now: DateTime<Utc>,
) -> AppResult<SeriesRange> {
    let to = q.to.unwrap_or(now);
    let from = q.from.unwrap_or(to - Duration::hours(DEFAULT_RANGE_HOURS));
    if from >= to {
        return Err(invalid("`from` must be before `to`"));
    }
    if to - from > Duration::days(MAX_RANGE_DAYS) {
        return Err(invalid(format!("a range covers at most {MAX_RANGE_DAYS} days")));
    }
    let step = match q.step {
        Some(s) => s,
        None if to - from <= Duration::hours(FINE_DEFAULT_UP_TO_HOURS) => settings.fine_tier(),
        None => HOUR_TIER,
    };
    let tier_secs = tier_for(step, settings)?;
    let step_ms = i64::from(step) * 1000;
    let points = (to - from).num_milliseconds().div_euclid(step_ms) + 1;
    if points > MAX_POINTS {
        return Err(invalid(format!(
            "{points} points of {step} s: at most {MAX_POINTS}; take a larger `step` or a \
             shorter range"
        )));
    }
    let aligned = from.timestamp_millis().div_euclid(step_ms) * step_ms;
    let from = DateTime::from_timestamp_millis(aligned).unwrap_or(from);
    Ok(SeriesRange { tier_secs, step_secs: step, from, to })
}

impl Stats {
    pub fn new(store: Arc<dyn Store>, settings: SeriesSettings) -> Self {
        Stats { store, settings }
    }

    /// The tenant's series. An `instance_id` that is not the tenant's is a 404, like any id.
    pub async fn series(&self, tenant: &TenantId, q: &SeriesQuery) -> AppResult<SeriesAnswer> {
        let range = plan(q, &self.settings, crate::model::time::now())?;
        let instances = self.store.list_instances(tenant).await?;
        if let Some(id) = &q.instance_id {
            if !instances.iter().any(|i| &i.id == id) {
                return Err(AppError::no_such_resource());
            }
        }
        let series = match q.metric {
            Metric::QueueDepth => {
                let points = self.store.pool_series(tenant, &range, q.pool.as_deref()).await?;
                let mut lines: Vec<Line> = Vec::new();
                for p in points {
                    if lines.last().and_then(|l| l.pool.as_ref()) != Some(&p.pool) {
                        lines.push(Line {
                            instance_id: None,
                            name: None,
                            pool: Some(p.pool.clone()),
                            points: Vec::new(),
                        });
                    }
                    if let Some(l) = lines.last_mut() {
                        l.points.push((p.at, p.queue_depth));
                    }
                }
                lines
            }
            Metric::Sends | Metric::Health => {
                let names: HashMap<&str, (&str, &str)> = instances
                    .iter()
                    .map(|i| (i.id.as_str(), (i.name.as_str(), i.pool.as_str())))
                    .collect();
                let points =
                    self.store.number_series(tenant, &range, q.instance_id.as_deref()).await?;
                let mut lines: Vec<Line> = Vec::new();
                for p in points {
                    let value = match q.metric {
                        Metric::Sends => Some(p.sends),
                        _ => p.health.map(u64::from),
                    };
                    if lines.last().and_then(|l| l.instance_id.as_ref()) != Some(&p.instance_id) {
                        let known = names.get(p.instance_id.as_str());
                        lines.push(Line {
                            name: known.map(|(n, _)| n.to_string()),
                            pool: known.map(|(_, p)| p.to_string()),
                            instance_id: Some(p.instance_id.clone()),
                            points: Vec::new(),
                        });
                    }
                    if let (Some(l), Some(v)) = (lines.last_mut(), value) {
                        l.points.push((p.at, v));
                    }
                }
                // A pool filter on number series keeps the pool's numbers.
                if let Some(pool) = &q.pool {
                    lines.retain(|l| l.pool.as_ref() == Some(pool));
                }
                lines
            }
        };
        Ok(SeriesAnswer {
            metric: q.metric,
            step: range.step_secs,
            from: range.from,
            to: range.to,
            series,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn query(from: Option<&str>, to: Option<&str>, step: Option<u32>) -> SeriesQuery {
        SeriesQuery {
            metric: Metric::Sends,
            instance_id: None,
            pool: None,
            from: from.map(at),
            to: to.map(at),
            step,
        }
    }

    #[test]
    fn a_range_is_checked_aligned_and_read_from_the_right_tier() {
        let s = SeriesSettings::default();
        let now = at("2026-03-04T10:30:00Z");
        // No range: the last 24 h, hourly, from the whole hour.
        let r = plan(&query(None, None, None), &s, now).unwrap();
        assert_eq!((r.tier_secs, r.step_secs), (3600, 3600));
        assert_eq!((r.from, r.to), (at("2026-03-03T10:00:00Z"), now));
        // A short range: minute steps from the minute tier; 5 minutes grouped from it too.
        let r = plan(&query(Some("2026-03-04T09:00:30Z"), None, None), &s, now).unwrap();
        assert_eq!((r.tier_secs, r.step_secs, r.from), (60, 60, at("2026-03-04T09:00:00Z")));
        assert_eq!(plan(&query(None, None, Some(300)), &s, now).unwrap().tier_secs, 60);
        assert_eq!(plan(&query(None, None, Some(7200)), &s, now).unwrap().tier_secs, 3600);
        // Refused: a step off the tiers, a backward range, too many points, too long.
        let bad = |q: SeriesQuery| plan(&q, &s, now).unwrap_err().to_string();
        assert!(bad(query(None, None, Some(90))).contains("multiple of 60"));
        assert!(bad(query(None, None, Some(0))).contains("multiple of 60"));
        assert!(bad(query(Some("2026-03-05T00:00:00Z"), None, None)).contains("before"));
        assert!(bad(query(Some("2026-01-01T00:00:00Z"), None, Some(60))).contains("at most"));
        assert!(bad(query(Some("2024-01-01T00:00:00Z"), None, Some(86400))).contains("400 days"));
    }
}
