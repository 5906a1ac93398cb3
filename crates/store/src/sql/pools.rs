//! [`PoolStore`]: pools, their rotation strategy and sending settings (`default` is always
//! there).

use async_trait::async_trait;

use super::{json_err, q, Backend, SqlStore};
use crate::{Pool, PoolSettings, PoolStore, Result, StoreError, Strategy};

fn implied(name: String) -> Pool {
    Pool { name, strategy: Strategy::RoundRobin, settings: PoolSettings::default() }
}

fn pool_from_row<DB: Backend>(row: &DB::Row) -> Result<Pool> {
    let name: String = DB::col(row, "name")?;
    let corrupt = |what: String| StoreError::Database(format!("pool {name}: {what}"));
    let strategy: String = DB::col(row, "strategy")?;
    let strategy = Strategy::parse(&strategy)
        .ok_or_else(|| corrupt(format!("unknown strategy `{strategy}`")))?;
    let days: i64 = DB::col(row, "sticky_window_days")?;
    let per_contact: i64 = DB::col(row, "per_contact_per_hour")?;
    let quiet_hours = DB::col::<Option<String>>(row, "quiet_hours_json")?
        .map(|j| serde_json::from_str(&j).map_err(|e| corrupt(format!("bad quiet hours: {e}"))))
        .transpose()?;
    let settings = PoolSettings {
        sticky: DB::col(row, "sticky")?,
        sticky_window_days: u32::try_from(days)
            .map_err(|_| corrupt(format!("bad sticky_window_days {days}")))?,
        prefer_country: DB::col(row, "prefer_country")?,
        per_contact_per_hour: u32::try_from(per_contact)
            .map_err(|_| corrupt(format!("bad per_contact_per_hour {per_contact}")))?,
        quiet_hours,
    };
    Ok(Pool { name, strategy, settings })
}

#[async_trait]
impl<DB: Backend> PoolStore for SqlStore<DB> {
    async fn list_pools(&self, tenant_id: &str) -> Result<Vec<Pool>> {
        let mut conn = self.conn().await?;
        let mut pools = std::collections::BTreeMap::new();
        pools.insert("default".to_string(), implied("default".into()));
        let named: Vec<String> =
            q::<DB>("SELECT DISTINCT pool FROM instances WHERE tenant_id = $1")
                .bind(tenant_id)
                .scalars(&mut conn)
                .await?;
        for name in named {
            pools.entry(name.clone()).or_insert_with(|| implied(name));
        }
        let stored = q::<DB>(
            "SELECT name, strategy, sticky, sticky_window_days, prefer_country, \
             per_contact_per_hour, quiet_hours_json FROM pools WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_all(&mut conn)
        .await?;
        for row in stored {
            let pool = pool_from_row::<DB>(&row)?;
            pools.insert(pool.name.clone(), pool);
        }
        Ok(pools.into_values().collect())
    }

    async fn put_pool(&self, tenant_id: &str, name: &str, strategy: Strategy) -> Result<Pool> {
        let mut conn = self.conn().await?;
        q::<DB>(
            "INSERT INTO pools (tenant_id, name, strategy) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET strategy = excluded.strategy",
        )
        .bind(tenant_id)
        .bind(name)
        .bind(strategy.as_str())
        .execute(&mut *conn)
        .await?;
        let row = q::<DB>(
            "SELECT name, strategy, sticky, sticky_window_days, prefer_country, \
             per_contact_per_hour, quiet_hours_json FROM pools WHERE tenant_id = $1 AND name = $2",
        )
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
        match row {
            Some(row) => pool_from_row::<DB>(&row),
            // Deleted with its tenant meanwhile.
            None => Ok(Pool { strategy, ..implied(name.to_string()) }),
        }
    }

    async fn save_pool(&self, tenant_id: &str, pool: &Pool) -> Result<()> {
        let s = &pool.settings;
        let quiet_hours =
            s.quiet_hours.as_ref().map(serde_json::to_string).transpose().map_err(json_err)?;
        q::<DB>(
            "INSERT INTO pools (tenant_id, name, strategy, sticky, sticky_window_days, \
             prefer_country, per_contact_per_hour, quiet_hours_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET strategy = excluded.strategy, \
             sticky = excluded.sticky, sticky_window_days = excluded.sticky_window_days, \
             prefer_country = excluded.prefer_country, \
             per_contact_per_hour = excluded.per_contact_per_hour, \
             quiet_hours_json = excluded.quiet_hours_json",
        )
        .bind(tenant_id)
        .bind(&pool.name)
        .bind(pool.strategy.as_str())
        .bind(s.sticky)
        .bind(i64::from(s.sticky_window_days))
        .bind(s.prefer_country)
        .bind(i64::from(s.per_contact_per_hour))
        .bind(quiet_hours)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }
}
