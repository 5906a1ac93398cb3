//! Time series for the dashboard's charts: per number, what it sent and its lowest health
//! score; per pool, its highest queue depth; each per bucket of a fixed width (a *tier*, in
//! seconds). Samples are upserted, so a bucket sampled several times (several samples in it,
//! or several nodes) holds the sum of the sends and the extreme of each gauge: merging is
//! associative, and a node's samples never count another's sends. Kept for a while per tier,
//! then pruned.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Result;

/// What one number did since the previous sample, and its health score now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberSample {
    pub tenant_id: String,
    pub instance_id: String,
    /// Messages it sent since the previous sample.
    pub sends: u64,
    /// Its health score now; `None` when this node does not hold the number (only its sends
    /// were counted here).
    pub health: Option<u8>,
}

/// One pool's queue depth now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSample {
    pub tenant_id: String,
    pub pool: String,
    pub queue_depth: u64,
}

/// Which stored buckets a read covers and how it groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesRange {
    /// The stored tier read (its bucket width, in seconds).
    pub tier_secs: u32,
    /// The width of each returned point, in seconds: a multiple of `tier_secs`; points start
    /// at multiples of it since the Unix epoch.
    pub step_secs: u32,
    /// Buckets starting at or after `from` and before `to`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// A number's figures over one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberPoint {
    pub instance_id: String,
    /// The step's start.
    pub at: DateTime<Utc>,
    /// Messages sent in the step.
    pub sends: u64,
    /// The lowest health score sampled in the step, if it was sampled.
    pub health: Option<u8>,
}

/// A pool's highest queue depth over one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPoint {
    pub pool: String,
    pub at: DateTime<Utc>,
    pub queue_depth: u64,
}

/// The stored series. Rows go with their tenant (`delete_tenant`); a deleted number's rows
/// stay until pruned.
#[async_trait]
pub trait SeriesStore: Send + Sync {
    /// Adds one sample taken at `at` to its bucket in each of `tiers` (widths in seconds), in
    /// one transaction, one multi-row upsert per table (in chunks far below the databases'
    /// bind limits): sends add up, the lowest health and the highest queue depth are kept.
    async fn record_samples(
        &self,
        at: DateTime<Utc>,
        tiers: &[u32],
        numbers: &[NumberSample],
        pools: &[PoolSample],
    ) -> Result<()>;
    /// The tenant's number points in `range` (of one number when `instance_id` is given),
    /// ordered by number, then time. Steps with no stored bucket are absent.
    async fn number_series(
        &self,
        tenant_id: &str,
        range: &SeriesRange,
        instance_id: Option<&str>,
    ) -> Result<Vec<NumberPoint>>;
    /// The tenant's pool points in `range` (of one pool when `pool` is given), ordered by
    /// pool, then time.
    async fn pool_series(
        &self,
        tenant_id: &str,
        range: &SeriesRange,
        pool: Option<&str>,
    ) -> Result<Vec<PoolPoint>>;
    /// Removes every tenant's buckets of tier `tier_secs` that start before `before`; returns
    /// how many rows went.
    async fn prune_series(&self, tier_secs: u32, before: DateTime<Utc>) -> Result<u64>;
}

/// The start (Unix ms) of the `width_secs`-wide bucket holding `at`.
pub fn bucket_start(at: DateTime<Utc>, width_secs: u32) -> i64 {
    let width = i64::from(width_secs.max(1)) * 1000;
    at.timestamp_millis().div_euclid(width) * width
}

/// `numbers` with one sample per number (sends added, the lowest health kept), in
/// first-seen order: one upsert statement must not touch a row twice.
pub(crate) fn merge_numbers(numbers: &[NumberSample]) -> Vec<NumberSample> {
    let mut out: Vec<NumberSample> = Vec::with_capacity(numbers.len());
    let mut at: HashMap<(&str, &str), usize> = HashMap::with_capacity(numbers.len());
    for n in numbers {
        match at.get(&(n.tenant_id.as_str(), n.instance_id.as_str())) {
            Some(&i) => {
                let m = &mut out[i];
                m.sends += n.sends;
                m.health = lowest(m.health, n.health);
            }
            None => {
                at.insert((&n.tenant_id, &n.instance_id), out.len());
                out.push(n.clone());
            }
        }
    }
    out
}

/// `pools` with one sample per pool (the highest depth kept), in first-seen order.
pub(crate) fn merge_pools(pools: &[PoolSample]) -> Vec<PoolSample> {
    let mut out: Vec<PoolSample> = Vec::with_capacity(pools.len());
    let mut at: HashMap<(&str, &str), usize> = HashMap::with_capacity(pools.len());
    for p in pools {
        match at.get(&(p.tenant_id.as_str(), p.pool.as_str())) {
            Some(&i) => out[i].queue_depth = out[i].queue_depth.max(p.queue_depth),
            None => {
                at.insert((&p.tenant_id, &p.pool), out.len());
                out.push(p.clone());
            }
        }
    }
    out
}

fn lowest(a: Option<u8>, b: Option<u8>) -> Option<u8> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(instance: &str, sends: u64, health: Option<u8>) -> NumberSample {
        NumberSample { tenant_id: "t".into(), instance_id: instance.into(), sends, health }
    }

    #[test]
    fn samples_of_one_number_merge_like_the_upsert() {
        let got = merge_numbers(&[n("a", 2, Some(90)), n("b", 1, None), n("a", 3, Some(70))]);
        assert_eq!(got, vec![n("a", 5, Some(70)), n("b", 1, None)]);
        assert_eq!(
            merge_numbers(&[n("a", 0, None), n("a", 1, Some(50))]),
            vec![n("a", 1, Some(50))]
        );
        let p =
            |pool: &str, d| PoolSample { tenant_id: "t".into(), pool: pool.into(), queue_depth: d };
        assert_eq!(merge_pools(&[p("x", 3), p("y", 1), p("x", 2)]), vec![p("x", 3), p("y", 1)]);
    }

    #[test]
    fn buckets_start_at_multiples_of_their_width() {
        let t = DateTime::parse_from_rfc3339("2026-03-04T05:06:07.891Z").unwrap().to_utc();
        let hour = DateTime::parse_from_rfc3339("2026-03-04T05:00:00Z").unwrap().to_utc();
        assert_eq!(bucket_start(t, 3600), hour.timestamp_millis());
        assert_eq!(bucket_start(t, 60), hour.timestamp_millis() + 6 * 60_000);
        assert_eq!(bucket_start(t, 1), t.timestamp_millis() - 891);
    }
}
