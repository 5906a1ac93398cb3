//! The PostgreSQL implementation of every storage trait, for several nodes sharing one
//! database: the same semantics as [`crate::SqliteStore`] (same sealing and associated data,
//! same error mapping, same timestamps as BIGINT Unix milliseconds), its own migrations
//! (`migrations/postgres`), and the same master-key check before anything is written.
//!
//! It also implements [`crate::ClusterStore`] (`postgres/cluster.rs`): leases, claims and
//! signals between the nodes. Every event append signals [`crate::Signal::Events`] on commit.

use std::str::FromStr;

use async_trait::async_trait;
use bzapper_core::{InstanceState, LimitsPatch, ProxyUrl, Reason, Status};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};

use crate::sqlite::{
    judge_master_key_check, opt_ts, prefix_upper_bound, proxy_aad, session_aad, ts, KEY_CHECK_AAD,
    KEY_CHECK_PLAINTEXT, META_KEY_CHECK, META_KEY_ID,
};
use crate::time::{to_millis, truncate_to_millis};
use crate::{
    ApiKeyRecord, Event, EventLog, InstanceRecord, InstanceStore, NewEvent, Pool, PoolStore,
    Result, SealError, Sealer, SessionStore, SessionWrite, StateChange, Store, StoreError,
    Strategy, Tenant, TenantStore,
};

mod campaigns;
mod cluster;
#[cfg(test)]
mod cluster_tests;
mod contacts;
mod inbound;
mod queue;
#[cfg(test)]
mod tests;

/// Connections in the pool of one node.
const MAX_CONNECTIONS: u32 = 10;

/// First key of the advisory lock that serializes event appends (the second is the hash of
/// the schema, so that stores in different schemas of one database do not wait on each
/// other). Any constant works; this one spells "bzev".
const EVENT_APPEND_LOCK: i32 = 0x627a_6576;

const INSTANCE_COLUMNS: &str = "id, tenant_id, name, pool, status, reason, detail, phone, jid, \
     lid, warming_days, proxy_sealed, limits_json, first_connected_at, connected_at, created_at, \
     health_score";

/// The store on one PostgreSQL database (schema: the connection's `search_path`). Cloning is
/// cheap and shares the connection pool.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    sealer: Sealer,
    /// The `NOTIFY` channel of this schema's nodes.
    channel: String,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`, any libpq-style parameter sqlx
    /// understands, such as `options=-c search_path=bzapper`), refuses a database sealed with
    /// another master key before changing anything, then runs the migrations.
    pub async fn open(url: &str, sealer: Sealer) -> Result<PgStore> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("bad database URL: {e}")))?;
        Self::open_with(options, sealer).await
    }

    /// [`PgStore::open`] with options built in code.
    pub async fn open_with(options: PgConnectOptions, sealer: Sealer) -> Result<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Database(format!("cannot connect to the database: {e}")))?;
        let schema: String =
            match sqlx::query_scalar("SELECT current_schema()").fetch_one(&pool).await {
                Ok(s) => s,
                Err(e) => {
                    pool.close().await;
                    return Err(db(e));
                }
            };
        let store = PgStore { pool, sealer, channel: format!("bzapper:{schema}") };
        let ready = async {
            // Checked before the migrations, so that a wrong key changes nothing.
            store.verify_master_key().await?;
            sqlx::migrate!("./migrations/postgres")
                .run(&store.pool)
                .await
                .map_err(|e| StoreError::Database(format!("database migrations failed: {e}")))?;
            store.init_master_key_check().await
        };
        if let Err(e) = ready.await {
            store.close().await;
            return Err(e);
        }
        Ok(store)
    }

    /// The sealer this store seals with.
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// Closes every connection. The store must not be used afterwards.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    #[cfg(test)]
    pub(crate) fn raw_pool(&self) -> &PgPool {
        &self.pool
    }

    /// Checks the database's sealed check value, when it has one, against our key. Returns
    /// whether it exists. Only reads.
    async fn verify_master_key(&self) -> Result<bool> {
        let has_meta: bool = sqlx::query_scalar("SELECT to_regclass('meta') IS NOT NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        if !has_meta {
            return Ok(false);
        }
        let rows: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT key, value FROM meta WHERE key = $1 OR key = $2")
                .bind(META_KEY_CHECK)
                .bind(META_KEY_ID)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        let find = |k: &str| rows.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let Some(check) = find(META_KEY_CHECK) else { return Ok(false) };
        let stored_id = find(META_KEY_ID).map(|v| String::from_utf8_lossy(&v).into_owned());
        judge_master_key_check(&self.sealer, &check, stored_id)
    }

    /// Records which key this database belongs to, on its first open.
    async fn init_master_key_check(&self) -> Result<()> {
        if self.verify_master_key().await? {
            return Ok(());
        }
        let check = self.sealer.seal(KEY_CHECK_AAD, KEY_CHECK_PLAINTEXT);
        let mut tx = self.pool.begin().await.map_err(db)?;
        // DO NOTHING: if another node initialised the database meanwhile, its value stands
        // and the verification below decides.
        for (key, value) in
            [(META_KEY_CHECK, check), (META_KEY_ID, self.sealer.key_id().into_bytes())]
        {
            sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        self.verify_master_key().await.map(|_| ())
    }

    fn seal_proxy(&self, instance_id: &str, proxy: Option<&ProxyUrl>) -> Option<Vec<u8>> {
        proxy.map(|p| self.sealer.seal(&proxy_aad(instance_id), p.to_url_string().as_bytes()))
    }

    /// Opens a stored proxy URL; one that cannot be opened is dropped with a warning (as in
    /// the SQLite store: one bad row must not hide every instance from listings).
    fn open_proxy(&self, instance_id: &str, blob: &[u8]) -> Option<ProxyUrl> {
        let plain = match self.sealer.open(&proxy_aad(instance_id), blob) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(instance_id, error = %e, "the stored proxy cannot be opened; ignoring it");
                return None;
            }
        };
        let proxy = std::str::from_utf8(&plain).ok().and_then(|s| ProxyUrl::parse(s).ok());
        if proxy.is_none() {
            tracing::warn!(instance_id, "the stored proxy is not a valid proxy URL; ignoring it");
        }
        proxy
    }

    fn instance_from_row(&self, row: &PgRow) -> Result<InstanceRecord> {
        let id: String = col(row, "id")?;
        let corrupt = |what: String| StoreError::Database(format!("instance {id}: {what}"));
        let status: String = col(row, "status")?;
        let status =
            Status::parse(&status).ok_or_else(|| corrupt(format!("unknown status `{status}`")))?;
        let reason = col::<Option<String>>(row, "reason")?
            .map(|r| Reason::parse(&r).ok_or_else(|| corrupt(format!("unknown reason `{r}`"))))
            .transpose()?;
        let warming_days: i64 = col(row, "warming_days")?;
        let warming_days = u32::try_from(warming_days)
            .map_err(|_| corrupt(format!("bad warming_days {warming_days}")))?;
        let limits: String = col(row, "limits_json")?;
        let limits: LimitsPatch =
            serde_json::from_str(&limits).map_err(|e| corrupt(format!("bad limits: {e}")))?;
        let proxy = col::<Option<Vec<u8>>>(row, "proxy_sealed")?
            .and_then(|blob| self.open_proxy(&id, &blob));
        Ok(InstanceRecord {
            tenant_id: col(row, "tenant_id")?,
            name: col(row, "name")?,
            pool: col(row, "pool")?,
            state: InstanceState { status, reason, detail: col(row, "detail")? },
            phone: col(row, "phone")?,
            jid: col(row, "jid")?,
            lid: col(row, "lid")?,
            warming_days,
            proxy,
            limits,
            first_connected_at: opt_ts(col(row, "first_connected_at")?)?,
            connected_at: opt_ts(col(row, "connected_at")?)?,
            created_at: ts(col(row, "created_at")?)?,
            health_score: u8::try_from(col::<i64>(row, "health_score")?.clamp(0, 100))
                .unwrap_or(100),
            id,
        })
    }

    /// `filter` uses `$1`, `$2`… for `binds`, in order.
    async fn query_instances(&self, filter: &str, binds: &[&str]) -> Result<Vec<InstanceRecord>> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances {filter}");
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(*b);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(|r| self.instance_from_row(r)).collect()
    }

    fn open_session_value(&self, instance_id: &str, key: &str, blob: &[u8]) -> Result<Vec<u8>> {
        self.sealer.open(&session_aad(instance_id, key), blob).map_err(|e| {
            let why = match e {
                SealError::OtherKey { blob_key_id } => format!(
                    "was sealed with another master key (key id {blob_key_id}, ours is {})",
                    self.sealer.key_id()
                ),
                SealError::Tampered => "was tampered with or is corrupted".to_string(),
                other => format!("is malformed ({other})"),
            };
            StoreError::Unsealable(format!(
                "the session of instance {instance_id} (value `{key}`) {why}"
            ))
        })
    }
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// Maps a unique violation to `Conflict` (`what` gets the violated constraint's name), as
/// the SQLite store does.
fn write_err(e: sqlx::Error, what: impl FnOnce(&str) -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(what(d.constraint().unwrap_or_default()))
        }
        _ => db(e),
    }
}

fn col<'r, T>(row: &'r PgRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(name).map_err(db)
}

fn event_from_row(row: &PgRow) -> Result<Event> {
    let id: i64 = col(row, "id")?;
    let data: String = col(row, "data")?;
    let data = serde_json::from_str(&data)
        .map_err(|e| StoreError::Database(format!("event {id}: bad data: {e}")))?;
    Ok(Event {
        id,
        tenant_id: col(row, "tenant_id")?,
        instance_id: col(row, "instance_id")?,
        kind: col(row, "kind")?,
        data,
        created_at: ts(col(row, "created_at")?)?,
    })
}

fn tenant_from_row(row: &PgRow) -> Result<Tenant> {
    Ok(Tenant {
        id: col(row, "id")?,
        name: col(row, "name")?,
        created_at: ts(col(row, "created_at")?)?,
    })
}

async fn insert_api_key<'e, E>(executor: E, key: &ApiKeyRecord) -> Result<()>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, secret_hash, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&key.id)
    .bind(&key.tenant_id)
    .bind(&key.secret_hash[..])
    .bind(to_millis(key.created_at))
    .execute(executor)
    .await
    .map_err(|e| write_err(e, |_| format!("an API key with id {} already exists", key.id)))?;
    Ok(())
}

#[async_trait]
impl TenantStore for PgStore {
    async fn create_tenant(&self, tenant: &Tenant, first_key: &ApiKeyRecord) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&tenant.id)
            .bind(&tenant.name)
            .bind(to_millis(tenant.created_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                write_err(e, |_| format!("a tenant with id {} already exists", tenant.id))
            })?;
        insert_api_key(&mut *tx, first_key).await?;
        tx.commit().await.map_err(db)
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let rows = sqlx::query("SELECT id, name, created_at FROM tenants ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(tenant_from_row).collect()
    }

    async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    async fn delete_tenant(&self, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Events carry no foreign key (they outlive instances), so they go explicitly; the
        // rest follows the tenant by ON DELETE CASCADE.
        sqlx::query("DELETE FROM events WHERE tenant_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let deleted = sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        tx.commit().await.map_err(db)?;
        Ok(deleted > 0)
    }

    async fn add_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        insert_api_key(&self.pool, key).await
    }

    async fn revoke_api_key(&self, tenant_id: &str, key_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = $1 AND tenant_id = $2")
            .bind(key_id)
            .bind(tenant_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn find_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, secret_hash, created_at FROM api_keys WHERE id = $1",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let hash: Vec<u8> = col(&row, "secret_hash")?;
        let secret_hash = hash.as_slice().try_into().map_err(|_| {
            StoreError::Database(format!("api key {key_id}: hash is {} bytes, not 32", hash.len()))
        })?;
        Ok(Some(ApiKeyRecord {
            id: col(&row, "id")?,
            tenant_id: col(&row, "tenant_id")?,
            secret_hash,
            created_at: ts(col(&row, "created_at")?)?,
        }))
    }
}

fn instance_conflict(constraint: &str, rec: &InstanceRecord) -> String {
    if constraint == "instances_name_unique" {
        format!("an instance named `{}` already exists", rec.name)
    } else {
        format!("an instance with id {} already exists", rec.id)
    }
}

#[async_trait]
impl InstanceStore for PgStore {
    async fn create_instance(&self, rec: &InstanceRecord) -> Result<()> {
        let limits =
            serde_json::to_string(&rec.limits).map_err(|e| StoreError::Database(e.to_string()))?;
        sqlx::query(
            "INSERT INTO instances (id, tenant_id, name, pool, status, reason, detail, phone, jid, \
             lid, warming_days, proxy_sealed, limits_json, first_connected_at, connected_at, \
             created_at, health_score) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(&rec.id)
        .bind(&rec.tenant_id)
        .bind(&rec.name)
        .bind(&rec.pool)
        .bind(rec.state.status.as_str())
        .bind(rec.state.reason.map(Reason::as_str))
        .bind(&rec.state.detail)
        .bind(&rec.phone)
        .bind(&rec.jid)
        .bind(&rec.lid)
        .bind(i64::from(rec.warming_days))
        .bind(self.seal_proxy(&rec.id, rec.proxy.as_ref()))
        .bind(limits)
        .bind(rec.first_connected_at.map(to_millis))
        .bind(rec.connected_at.map(to_millis))
        .bind(to_millis(rec.created_at))
        .bind(i64::from(rec.health_score))
        .execute(&self.pool)
        .await
        .map_err(|e| write_err(e, |c| instance_conflict(c, rec)))?;
        Ok(())
    }

    async fn get_instance(&self, tenant_id: &str, id: &str) -> Result<Option<InstanceRecord>> {
        let mut v =
            self.query_instances("WHERE tenant_id = $1 AND id = $2", &[tenant_id, id]).await?;
        Ok(v.pop())
    }

    async fn get_instance_by_id(&self, id: &str) -> Result<Option<InstanceRecord>> {
        Ok(self.query_instances("WHERE id = $1", &[id]).await?.pop())
    }

    async fn list_instances(&self, tenant_id: &str) -> Result<Vec<InstanceRecord>> {
        self.query_instances("WHERE tenant_id = $1 ORDER BY created_at, id", &[tenant_id]).await
    }

    async fn list_all_instances(&self) -> Result<Vec<InstanceRecord>> {
        self.query_instances("ORDER BY created_at, id", &[]).await
    }

    async fn update_instance_settings(&self, rec: &InstanceRecord) -> Result<bool> {
        let limits =
            serde_json::to_string(&rec.limits).map_err(|e| StoreError::Database(e.to_string()))?;
        let done = sqlx::query(
            "UPDATE instances SET name = $1, pool = $2, warming_days = $3, proxy_sealed = $4, \
             limits_json = $5 WHERE id = $6 AND tenant_id = $7",
        )
        .bind(&rec.name)
        .bind(&rec.pool)
        .bind(i64::from(rec.warming_days))
        .bind(self.seal_proxy(&rec.id, rec.proxy.as_ref()))
        .bind(limits)
        .bind(&rec.id)
        .bind(&rec.tenant_id)
        .execute(&self.pool)
        .await
        .map_err(|e| write_err(e, |c| instance_conflict(c, rec)))?;
        Ok(done.rows_affected() > 0)
    }

    async fn update_instance_state(&self, id: &str, change: &StateChange) -> Result<()> {
        // Same rules as `apply_state_change` (see the SQLite store).
        let (touch_identity, phone, jid, lid) = if change.clear_identity {
            (true, None, None, None)
        } else if let Some(i) = &change.identity {
            (true, Some(i.phone.as_str()), Some(i.jid.as_str()), i.lid.as_deref())
        } else {
            (false, None, None, None)
        };
        sqlx::query(
            "UPDATE instances SET status = $1, reason = $2, detail = $3, \
             phone = CASE WHEN $4 THEN $5 ELSE phone END, \
             jid = CASE WHEN $4 THEN $6 ELSE jid END, \
             lid = CASE WHEN $4 THEN $7 ELSE lid END, \
             connected_at = COALESCE($8, connected_at), \
             first_connected_at = COALESCE(first_connected_at, $8) \
             WHERE id = $9",
        )
        .bind(change.state.status.as_str())
        .bind(change.state.reason.map(Reason::as_str))
        .bind(&change.state.detail)
        .bind(touch_identity)
        .bind(phone)
        .bind(jid)
        .bind(lid)
        .bind(change.connected_at.map(to_millis))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn delete_instance(&self, tenant_id: &str, id: &str) -> Result<bool> {
        // session_values and received messages (inbound) follow by ON DELETE CASCADE.
        let done = sqlx::query("DELETE FROM instances WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_instance_health(&self, id: &str, score: u8) -> Result<()> {
        sqlx::query("UPDATE instances SET health_score = $1 WHERE id = $2")
            .bind(i64::from(score.min(100)))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}

/// Inserts or replaces one sealed session value (on the pool or in a transaction).
async fn put_session_value<'e, E>(
    executor: E,
    sealer: &Sealer,
    instance_id: &str,
    key: &str,
    value: &[u8],
) -> Result<()>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    sqlx::query(
        "INSERT INTO session_values (instance_id, key, value) VALUES ($1, $2, $3) \
         ON CONFLICT (instance_id, key) DO UPDATE SET value = excluded.value",
    )
    .bind(instance_id)
    .bind(key)
    .bind(sealer.seal(&session_aad(instance_id, key), value))
    .execute(executor)
    .await
    .map_err(db)?;
    Ok(())
}

#[async_trait]
impl SessionStore for PgStore {
    async fn load_session_value(&self, instance_id: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let blob: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT value FROM session_values WHERE instance_id = $1 AND key = $2",
        )
        .bind(instance_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let Some(blob) = blob else { return Ok(None) };
        self.open_session_value(instance_id, key, &blob).map(Some)
    }

    async fn save_session_value(&self, instance_id: &str, key: &str, value: &[u8]) -> Result<()> {
        put_session_value(&self.pool, &self.sealer, instance_id, key, value).await
    }

    async fn load_session_values_with_prefix(
        &self,
        instance_id: &str,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        // `key` is COLLATE "C": byte order, so the range is exactly the prefix's keys.
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT key, value FROM session_values \
             WHERE instance_id = $1 AND key >= $2 AND key < $3 ORDER BY key",
        )
        .bind(instance_id)
        .bind(prefix)
        .bind(prefix_upper_bound(prefix))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|(key, blob)| {
                let value = self.open_session_value(instance_id, &key, &blob)?;
                Ok((key, value))
            })
            .collect()
    }

    async fn write_session_values(&self, instance_id: &str, writes: &[SessionWrite]) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        for write in writes {
            match write {
                SessionWrite::Put { key, value } => {
                    put_session_value(&mut *tx, &self.sealer, instance_id, key, value).await?;
                }
                SessionWrite::Delete { key } => {
                    sqlx::query("DELETE FROM session_values WHERE instance_id = $1 AND key = $2")
                        .bind(instance_id)
                        .bind(key)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                }
                SessionWrite::DeletePrefix { prefix } => {
                    sqlx::query(
                        "DELETE FROM session_values \
                         WHERE instance_id = $1 AND key >= $2 AND key < $3",
                    )
                    .bind(instance_id)
                    .bind(prefix)
                    .bind(prefix_upper_bound(prefix))
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                }
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn clear_session(&self, instance_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM session_values WHERE instance_id = $1")
            .bind(instance_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn has_session(&self, instance_id: &str) -> Result<bool> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM session_values WHERE instance_id = $1)")
            .bind(instance_id)
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }
}

#[async_trait]
impl PoolStore for PgStore {
    async fn list_pools(&self, tenant_id: &str) -> Result<Vec<Pool>> {
        let mut pools = std::collections::BTreeMap::new();
        pools.insert("default".to_string(), Strategy::RoundRobin);
        let named: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT pool FROM instances WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        for name in named {
            pools.entry(name).or_insert(Strategy::RoundRobin);
        }
        let stored: Vec<(String, String)> =
            sqlx::query_as("SELECT name, strategy FROM pools WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        for (name, strategy) in stored {
            let strategy = Strategy::parse(&strategy).ok_or_else(|| {
                StoreError::Database(format!("pool {name}: unknown strategy `{strategy}`"))
            })?;
            pools.insert(name, strategy);
        }
        Ok(pools.into_iter().map(|(name, strategy)| Pool { name, strategy }).collect())
    }

    async fn put_pool(&self, tenant_id: &str, name: &str, strategy: Strategy) -> Result<Pool> {
        sqlx::query(
            "INSERT INTO pools (tenant_id, name, strategy) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET strategy = excluded.strategy",
        )
        .bind(tenant_id)
        .bind(name)
        .bind(strategy.as_str())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(Pool { name: name.to_string(), strategy })
    }
}

#[async_trait]
impl EventLog for PgStore {
    /// Why appends are serialized: a sequence hands out ids at `nextval`, not at commit. With
    /// two concurrent writers, the one holding id 11 may commit before the one holding id 10,
    /// and a reader that saw 11 and moved its cursor past 10 would never see 10 (SSE resumes
    /// and the webhook fan-out page with `id > cursor`). The two known cures are (a) readers
    /// only trust ids below the oldest in-flight transaction's, or (b) one appender at a time.
    /// This store does (b), the simple safe one: each append transaction first takes a
    /// transaction-scoped advisory lock (released at commit or rollback), so commit order is
    /// id order and `id > cursor` readers never skip an event. The cost is one appender at a
    /// time per schema, across every node; appends are batched, so that is rarely the limit.
    async fn append_events_indexed(
        &self,
        events: &[NewEvent],
        inbound: &[crate::InboundRecord],
    ) -> Result<Vec<Event>> {
        if events.is_empty() {
            crate::InboundStore::record_inbound(self, inbound).await?;
            return Ok(Vec::new());
        }
        let n = events.len();
        let mut tenant_ids = Vec::with_capacity(n);
        let mut instance_ids = Vec::with_capacity(n);
        let mut kinds = Vec::with_capacity(n);
        let mut datas = Vec::with_capacity(n);
        let mut created = Vec::with_capacity(n);
        for e in events {
            tenant_ids.push(e.tenant_id.clone());
            instance_ids.push(e.instance_id.clone());
            kinds.push(e.kind.clone());
            datas.push(
                serde_json::to_string(&e.data).map_err(|e| StoreError::Database(e.to_string()))?,
            );
            created.push(to_millis(e.created_at));
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Before the lock: the index rows need no ordering, so they take none of its time.
        inbound::insert_inbound(&mut tx, inbound).await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
            .bind(EVENT_APPEND_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        // The ids are taken first and given out in order, so that they increase in the order
        // of `events` whatever order the INSERT processes its rows in. Under the lock no
        // other append takes ids meanwhile, so they are also consecutive.
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "SELECT nextval(pg_get_serial_sequence('events', 'id')) FROM generate_series(1, $1)",
        )
        .bind(n as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        ids.sort_unstable();
        if ids.len() != n {
            return Err(StoreError::Database(format!(
                "asked for {n} event ids, got {}",
                ids.len()
            )));
        }
        sqlx::query(
            "INSERT INTO events (id, tenant_id, instance_id, kind, data, created_at) \
             SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::int8[])",
        )
        .bind(&ids)
        .bind(&tenant_ids)
        .bind(&instance_ids)
        .bind(&kinds)
        .bind(&datas)
        .bind(&created)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        // Wakes the other nodes' event feeds when (and only if) the batch commits.
        self.notify_in(&mut tx, crate::Signal::Events).await?;
        tx.commit().await.map_err(db)?;
        Ok(events
            .iter()
            .zip(ids)
            .map(|(e, id)| Event {
                id,
                tenant_id: e.tenant_id.clone(),
                instance_id: e.instance_id.clone(),
                kind: e.kind.clone(),
                data: e.data.clone(),
                created_at: truncate_to_millis(e.created_at),
            })
            .collect())
    }

    async fn events_after(&self, tenant_id: &str, after_id: i64, limit: u32) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, instance_id, kind, data, created_at FROM events \
             WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(tenant_id)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn count_events_by_instance(
        &self,
        tenant_id: &str,
        kind: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT instance_id, COUNT(*) FROM events WHERE tenant_id = $1 AND kind = $2 \
             AND created_at >= $3 AND instance_id IS NOT NULL GROUP BY instance_id",
        )
        .bind(tenant_id)
        .bind(kind)
        .bind(to_millis(since))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows.into_iter().map(|(i, n)| (i, n.max(0) as u64)).collect())
    }

    async fn latest_event_id(&self, tenant_id: &str) -> Result<i64> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM events WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(id.unwrap_or(0))
    }

    async fn latest_event_id_all(&self) -> Result<i64> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(id.unwrap_or(0))
    }

    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64> {
        // Stored times are whole milliseconds: a cut with a fraction rounds up.
        let mut cut = to_millis(before);
        if truncate_to_millis(before) != before {
            cut += 1;
        }
        let done = sqlx::query("DELETE FROM events WHERE created_at < $1")
            .bind(cut)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db)?;
        Ok(())
    }
}

/// Pushes `WHERE`/`AND` before each condition of a dynamic filter.
fn and(qb: &mut QueryBuilder<'_, Postgres>, first: &mut bool) {
    qb.push(if std::mem::take(first) { " WHERE " } else { " AND " });
}
