//! [`SeriesStore`]: the dashboard's time series (`number_series`, `pool_series`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{count, cut_millis, db, q, ts, values, Backend, SqlStore};
use crate::series::{bucket_start, merge_numbers, merge_pools};
use crate::time::to_millis;
use crate::{NumberPoint, NumberSample, PoolPoint, PoolSample, Result, SeriesRange, SeriesStore};

/// Rows per upsert statement (six parameters each): far below either database's bind limit,
/// so 10,000 numbers in two tiers are 20 statements in one transaction.
const ROWS_PER_STATEMENT: usize = 1000;

/// Sends add up; the lowest health is kept (a sample without one keeps the stored one).
const UPSERT_NUMBERS: &str = "ON CONFLICT (tenant_id, instance_id, tier, bucket_at) DO UPDATE SET \
     sends = number_series.sends + excluded.sends, \
     health = CASE WHEN excluded.health IS NULL THEN number_series.health \
                   WHEN number_series.health IS NULL OR excluded.health < number_series.health \
                   THEN excluded.health ELSE number_series.health END";

/// The highest queue depth is kept.
const UPSERT_POOLS: &str = "ON CONFLICT (tenant_id, pool, tier, bucket_at) DO UPDATE SET \
     queue_depth = CASE WHEN excluded.queue_depth > pool_series.queue_depth \
                   THEN excluded.queue_depth ELSE pool_series.queue_depth END";

fn range_binds(r: &SeriesRange) -> (i64, i64, i64, i64) {
    let step = i64::from(r.step_secs.max(1)) * 1000;
    (i64::from(r.tier_secs), step, to_millis(r.from), cut_millis(r.to))
}

#[async_trait]
impl<DB: Backend> SeriesStore for SqlStore<DB> {
    async fn record_samples(
        &self,
        at: DateTime<Utc>,
        tiers: &[u32],
        numbers: &[NumberSample],
        pools: &[PoolSample],
    ) -> Result<()> {
        let (numbers, pools) = (merge_numbers(numbers), merge_pools(pools));
        let mut tiers: Vec<u32> = tiers.to_vec();
        tiers.sort_unstable();
        tiers.dedup();
        // (tier, bucket start) of each tier.
        let buckets: Vec<(i64, i64)> =
            tiers.iter().map(|&t| (i64::from(t), bucket_start(at, t))).collect();
        if buckets.is_empty() || (numbers.is_empty() && pools.is_empty()) {
            return Ok(());
        }
        let number_rows: Vec<(&NumberSample, (i64, i64))> =
            buckets.iter().flat_map(|b| numbers.iter().map(move |n| (n, *b))).collect();
        let pool_rows: Vec<(&PoolSample, (i64, i64))> =
            buckets.iter().flat_map(|b| pools.iter().map(move |p| (p, *b))).collect();
        let _gate = DB::gate(self).await;
        let mut tx = self.begin().await?;
        for chunk in number_rows.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO number_series (tenant_id, instance_id, tier, bucket_at, sends, \
                 health) VALUES {} {UPSERT_NUMBERS}",
                values::<DB>(chunk.len(), 6)
            );
            let mut query = q::<DB>(&sql);
            for (n, (tier, bucket)) in chunk {
                query = query
                    .bind(&n.tenant_id)
                    .bind(&n.instance_id)
                    .bind(*tier)
                    .bind(*bucket)
                    .bind(i64::try_from(n.sends).unwrap_or(i64::MAX))
                    .bind(n.health.map(i64::from));
            }
            query.execute(&mut tx).await?;
        }
        for chunk in pool_rows.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO pool_series (tenant_id, pool, tier, bucket_at, queue_depth) \
                 VALUES {} {UPSERT_POOLS}",
                values::<DB>(chunk.len(), 5)
            );
            let mut query = q::<DB>(&sql);
            for (p, (tier, bucket)) in chunk {
                query = query
                    .bind(&p.tenant_id)
                    .bind(&p.pool)
                    .bind(*tier)
                    .bind(*bucket)
                    .bind(i64::try_from(p.queue_depth).unwrap_or(i64::MAX));
            }
            query.execute(&mut tx).await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn number_series(
        &self,
        tenant_id: &str,
        range: &SeriesRange,
        instance_id: Option<&str>,
    ) -> Result<Vec<NumberPoint>> {
        let (tier, step, from, to) = range_binds(range);
        let one = if instance_id.is_some() { "AND instance_id = $6" } else { "" };
        // Positional GROUP BY: the step expression is written once.
        let sql = format!(
            "SELECT instance_id, (bucket_at / $3) * $3 AS at, \
             CAST(SUM(sends) AS BIGINT) AS sends, MIN(health) AS health \
             FROM number_series WHERE tenant_id = $1 AND tier = $2 \
             AND bucket_at >= $4 AND bucket_at < $5 {one} GROUP BY 1, 2 ORDER BY 1, 2"
        );
        let mut query = q::<DB>(&sql).bind(tenant_id).bind(tier).bind(step).bind(from).bind(to);
        if let Some(i) = instance_id {
            query = query.bind(i);
        }
        let rows = query.fetch_all(&mut *self.conn().await?).await?;
        rows.iter()
            .map(|row| {
                Ok(NumberPoint {
                    instance_id: DB::col(row, "instance_id")?,
                    at: ts(DB::col(row, "at")?)?,
                    sends: count(DB::col(row, "sends")?),
                    health: DB::col::<Option<i64>>(row, "health")?
                        .map(|h| h.clamp(0, i64::from(u8::MAX)) as u8),
                })
            })
            .collect()
    }

    async fn pool_series(
        &self,
        tenant_id: &str,
        range: &SeriesRange,
        pool: Option<&str>,
    ) -> Result<Vec<PoolPoint>> {
        let (tier, step, from, to) = range_binds(range);
        let one = if pool.is_some() { "AND pool = $6" } else { "" };
        let sql = format!(
            "SELECT pool, (bucket_at / $3) * $3 AS at, MAX(queue_depth) AS queue_depth \
             FROM pool_series WHERE tenant_id = $1 AND tier = $2 \
             AND bucket_at >= $4 AND bucket_at < $5 {one} GROUP BY 1, 2 ORDER BY 1, 2"
        );
        let mut query = q::<DB>(&sql).bind(tenant_id).bind(tier).bind(step).bind(from).bind(to);
        if let Some(p) = pool {
            query = query.bind(p);
        }
        let rows = query.fetch_all(&mut *self.conn().await?).await?;
        rows.iter()
            .map(|row| {
                Ok(PoolPoint {
                    pool: DB::col(row, "pool")?,
                    at: ts(DB::col(row, "at")?)?,
                    queue_depth: count(DB::col(row, "queue_depth")?),
                })
            })
            .collect()
    }

    async fn prune_series(&self, tier_secs: u32, before: DateTime<Utc>) -> Result<u64> {
        let _gate = DB::gate(self).await;
        let mut tx = self.begin().await?;
        let mut n = 0;
        for table in ["number_series", "pool_series"] {
            n += q::<DB>(&format!("DELETE FROM {table} WHERE tier = $1 AND bucket_at < $2"))
                .bind(i64::from(tier_secs))
                .bind(cut_millis(before))
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(n)
    }
}
