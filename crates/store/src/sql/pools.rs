//! [`PoolStore`]: pools and their rotation strategy (`default` is always there).

use async_trait::async_trait;

use super::{q, Backend, SqlStore};
use crate::{Pool, PoolStore, Result, StoreError, Strategy};

#[async_trait]
impl<DB: Backend> PoolStore for SqlStore<DB> {
    async fn list_pools(&self, tenant_id: &str) -> Result<Vec<Pool>> {
        let mut conn = self.conn().await?;
        let mut pools = std::collections::BTreeMap::new();
        pools.insert("default".to_string(), Strategy::RoundRobin);
        let named: Vec<String> =
            q::<DB>("SELECT DISTINCT pool FROM instances WHERE tenant_id = $1")
                .bind(tenant_id)
                .scalars(&mut conn)
                .await?;
        for name in named {
            pools.entry(name).or_insert(Strategy::RoundRobin);
        }
        let stored = q::<DB>("SELECT name, strategy FROM pools WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_all(&mut conn)
            .await?;
        for row in stored {
            let name: String = DB::col(&row, "name")?;
            let strategy: String = DB::col(&row, "strategy")?;
            let strategy = Strategy::parse(&strategy).ok_or_else(|| {
                StoreError::Database(format!("pool {name}: unknown strategy `{strategy}`"))
            })?;
            pools.insert(name, strategy);
        }
        Ok(pools.into_iter().map(|(name, strategy)| Pool { name, strategy }).collect())
    }

    async fn put_pool(&self, tenant_id: &str, name: &str, strategy: Strategy) -> Result<Pool> {
        q::<DB>(
            "INSERT INTO pools (tenant_id, name, strategy) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET strategy = excluded.strategy",
        )
        .bind(tenant_id)
        .bind(name)
        .bind(strategy.as_str())
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(Pool { name: name.to_string(), strategy })
    }
}
