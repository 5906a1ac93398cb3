//! [`TenantStore`]: tenants and their API keys (kept as SHA-256 hashes only).

use async_trait::async_trait;

use super::{db, q, ts, Backend, SqlStore};
use crate::time::to_millis;
use crate::{ApiKeyRecord, Result, StoreError, Tenant, TenantStore};

fn tenant_from_row<DB: Backend>(row: &DB::Row) -> Result<Tenant> {
    Ok(Tenant {
        id: DB::col(row, "id")?,
        name: DB::col(row, "name")?,
        created_at: ts(DB::col(row, "created_at")?)?,
    })
}

async fn insert_api_key<DB: Backend>(c: &mut DB::Connection, key: &ApiKeyRecord) -> Result<()> {
    q::<DB>(
        "INSERT INTO api_keys (id, tenant_id, secret_hash, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&key.id)
    .bind(&key.tenant_id)
    .bind(&key.secret_hash[..])
    .bind(to_millis(key.created_at))
    .write(c, |_| format!("an API key with id {} already exists", key.id))
    .await?;
    Ok(())
}

#[async_trait]
impl<DB: Backend> TenantStore for SqlStore<DB> {
    async fn create_tenant(&self, tenant: &Tenant, first_key: &ApiKeyRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        q::<DB>("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&tenant.id)
            .bind(&tenant.name)
            .bind(to_millis(tenant.created_at))
            .write(&mut tx, |_| format!("a tenant with id {} already exists", tenant.id))
            .await?;
        insert_api_key::<DB>(&mut tx, first_key).await?;
        tx.commit().await.map_err(db)
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let rows = q::<DB>("SELECT id, name, created_at FROM tenants ORDER BY created_at, id")
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.iter().map(tenant_from_row::<DB>).collect()
    }

    async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let row = q::<DB>("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        row.as_ref().map(tenant_from_row::<DB>).transpose()
    }

    async fn delete_tenant(&self, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        // Events carry no foreign key (they outlive instances), so they go explicitly; keys,
        // instances, their sessions and pools follow the tenant by ON DELETE CASCADE.
        q::<DB>("DELETE FROM events WHERE tenant_id = $1").bind(id).execute(&mut tx).await?;
        // The series carry none either (a sample must not fail for a number deleted meanwhile).
        for table in ["number_series", "pool_series"] {
            q::<DB>(&format!("DELETE FROM {table} WHERE tenant_id = $1"))
                .bind(id)
                .execute(&mut tx)
                .await?;
        }
        let deleted =
            q::<DB>("DELETE FROM tenants WHERE id = $1").bind(id).execute(&mut tx).await?;
        tx.commit().await.map_err(db)?;
        Ok(deleted > 0)
    }

    async fn add_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        insert_api_key::<DB>(&mut *self.conn().await?, key).await
    }

    async fn revoke_api_key(&self, tenant_id: &str, key_id: &str) -> Result<bool> {
        let n = q::<DB>("DELETE FROM api_keys WHERE id = $1 AND tenant_id = $2")
            .bind(key_id)
            .bind(tenant_id)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(n > 0)
    }

    async fn find_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>> {
        let row =
            q::<DB>("SELECT id, tenant_id, secret_hash, created_at FROM api_keys WHERE id = $1")
                .bind(key_id)
                .fetch_optional(&mut *self.conn().await?)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let hash: Vec<u8> = DB::col(&row, "secret_hash")?;
        let secret_hash = hash.as_slice().try_into().map_err(|_| {
            StoreError::Database(format!("api key {key_id}: hash is {} bytes, not 32", hash.len()))
        })?;
        Ok(Some(ApiKeyRecord {
            id: DB::col(&row, "id")?,
            tenant_id: DB::col(&row, "tenant_id")?,
            secret_hash,
            created_at: ts(DB::col(&row, "created_at")?)?,
        }))
    }
}
