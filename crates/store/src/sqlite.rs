//! The SQLite implementation of every storage trait: one database file (WAL journal, full
//! fsync on commit), migrations run at open, a master-key check that refuses a wrong key
//! before anything is written, and secrets sealed with [`Sealer`] before they reach the disk.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use bzapper_core::{InstanceState, LimitsPatch, ProxyUrl, Reason, Status};
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row, Sqlite};

use crate::time::{from_millis, to_millis, truncate_to_millis};
use crate::{
    ApiKeyRecord, Event, EventLog, InstanceRecord, InstanceStore, NewEvent, Pool, PoolStore,
    Result, SealError, Sealer, SessionStore, SessionWrite, StateChange, Store, StoreError,
    Strategy, Tenant, TenantStore,
};

mod campaigns;
mod contacts;
mod inbound;
mod messages;
#[cfg(test)]
mod tests;
mod webhooks;

pub(crate) use campaigns::{
    counts_from_rows, encode_fields, encode_schedule, recipient_from_parts,
};
pub(crate) use webhooks::secret_aad;

/// `meta` key of the sealed value that proves which master key this database belongs to.
pub(crate) const META_KEY_CHECK: &str = "master_key_check";
/// `meta` key of that master key's id, kept in clear to name it in error messages.
pub(crate) const META_KEY_ID: &str = "master_key_id";
pub(crate) const KEY_CHECK_AAD: &[u8] = b"bzapper-master-key-check";
pub(crate) const KEY_CHECK_PLAINTEXT: &[u8] = b"bzapper master key check, format 1";

/// Connections in the pool of a file database. SQLite allows one writer at a time, so more
/// connections only help concurrent readers; a few are plenty on a single node.
const MAX_CONNECTIONS: u32 = 4;
/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const INSTANCE_COLUMNS: &str = "id, tenant_id, name, pool, status, reason, detail, phone, jid, \
     lid, warming_days, proxy_sealed, limits_json, first_connected_at, connected_at, created_at, \
     health_score";

/// The store on one SQLite database. Cloning is cheap and shares the connection pool.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    sealer: Sealer,
    /// Kept to open a lone connection at close (see [`SqliteStore::close`]).
    options: SqliteConnectOptions,
    in_memory: bool,
    /// Group commit of accepted messages (see `messages::MessageWriter`).
    writer: messages::MessageWriter,
    /// Group commit of webhook attempt outcomes (see `webhooks::AttemptWriter`).
    attempts: webhooks::AttemptWriter,
    /// Taken around the event pipeline's write transactions (event appends, delivery rows,
    /// attempt outcomes) and instance state changes, so that they queue here and each starts
    /// the moment the previous one ends, rather than meeting at SQLite's write lock, whose
    /// busy handler retries after sleeps of 1, 2, 5, 10 … ms.
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `database_url_or_path`: a URL such as
    /// `sqlite://data/bzapper.db?mode=rwc` or `sqlite:data/bzapper.db`, a bare file path, or
    /// `sqlite::memory:` for a throwaway database. Missing parent directories are created.
    ///
    /// On a database that was created with another master key this returns
    /// [`StoreError::WrongMasterKey`] before running migrations or writing anything.
    ///
    /// Durability: WAL journal with `synchronous=FULL`, so every commit is fsynced to the WAL
    /// before it returns; an accepted message survives a power cut, not only a process crash
    /// (with `NORMAL`, the last commits before a power cut may be lost).
    pub async fn open(database_url_or_path: &str, sealer: Sealer) -> Result<SqliteStore> {
        let in_memory = database_url_or_path.contains(":memory:")
            || database_url_or_path.contains("mode=memory");
        let options = if database_url_or_path.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(database_url_or_path).map_err(|e| {
                StoreError::Database(format!("bad database URL `{database_url_or_path}`: {e}"))
            })?
        } else {
            SqliteConnectOptions::new().filename(database_url_or_path)
        };
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        if !in_memory {
            create_parent_dir(options.get_filename())?;
        }
        let cannot_open = |e: sqlx::Error| {
            StoreError::Database(format!("cannot open the database `{database_url_or_path}`: {e}"))
        };

        // The key is checked first, on a lone connection, so that a wrong key changes nothing:
        // no migration, no write, and (being the only connection, its close folds and removes
        // the -wal and -shm files) the directory is left as it was found.
        let mut conn = options.connect().await.map_err(cannot_open)?;
        let verdict = verify_master_key(&mut conn, &sealer).await;
        if let Err(e) = conn.close().await {
            tracing::warn!(error = %e, "closing the key-check connection failed");
        }
        verdict?;

        let pool_options = if in_memory {
            // An in-memory database lives as long as its last connection: keep exactly one,
            // forever (several would also trip over shared-cache table locks).
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            // No ping before handing out a connection: a connection to a local file does not
            // go stale, and the ping is a round trip to the connection's thread per query.
            SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS).test_before_acquire(false)
        };
        let pool = pool_options.connect_with(options.clone()).await.map_err(cannot_open)?;
        let writer = messages::MessageWriter::spawn(pool.clone());
        let write_gate = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        let attempts = webhooks::AttemptWriter::spawn(pool.clone(), write_gate.clone());
        let store = SqliteStore { pool, sealer, options, in_memory, writer, attempts, write_gate };
        let ready = match sqlx::migrate!("./migrations/sqlite").run(&store.pool).await {
            Ok(()) => store.init_master_key_check().await,
            Err(e) => Err(StoreError::Database(format!("database migrations failed: {e}"))),
        };
        if let Err(e) = ready {
            store.close().await;
            return Err(e);
        }
        Ok(store)
    }

    /// The sealer this store seals with (its key id names the master key in logs).
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    #[cfg(test)]
    pub(crate) fn raw_pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Folds the WAL into the main file and closes every connection, returning once they are
    /// all closed. Call it at shutdown; the store must not be used afterwards. After it, the
    /// database file alone holds all the data (safe to copy as a backup).
    pub async fn close(&self) {
        // Best effort: on failure the WAL stays and SQLite replays it at the next open.
        // PASSIVE never waits for other connections (background tasks may still be reading);
        // the last connection to close checkpoints the rest and removes the WAL.
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&self.pool).await {
            tracing::warn!(error = %e, "WAL checkpoint at close failed");
        }
        close_pool(&self.pool).await;
        if self.in_memory {
            return;
        }
        // The pool's connections may close at the same moment, and then none of them sees
        // itself as the last one, which is what deletes the -wal and -shm files. One more lone
        // connection, opened and closed after them, settles the files.
        match self.options.connect().await {
            Ok(conn) => {
                if let Err(e) = conn.close().await {
                    tracing::warn!(error = %e, "closing the database failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "reopening the database to settle it failed"),
        }
    }

    /// Records which key this database belongs to, on its first open.
    async fn init_master_key_check(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        if verify_master_key(&mut conn, &self.sealer).await? {
            return Ok(());
        }
        let check = self.sealer.seal(KEY_CHECK_AAD, KEY_CHECK_PLAINTEXT);
        let mut tx = conn.begin().await.map_err(db)?;
        // OR IGNORE: if another process initialised the database meanwhile, its value stands
        // and the verification below decides.
        for (key, value) in
            [(META_KEY_CHECK, check), (META_KEY_ID, self.sealer.key_id().into_bytes())]
        {
            sqlx::query("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)")
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        verify_master_key(&mut conn, &self.sealer).await.map(|_| ())
    }

    fn seal_proxy(&self, instance_id: &str, proxy: Option<&ProxyUrl>) -> Option<Vec<u8>> {
        proxy.map(|p| self.sealer.seal(&proxy_aad(instance_id), p.to_url_string().as_bytes()))
    }

    /// Opens a stored proxy URL. A proxy that cannot be opened is dropped with a warning
    /// rather than failing: one bad row must not hide every instance from listings.
    fn open_proxy(&self, instance_id: &str, blob: &[u8]) -> Option<ProxyUrl> {
        let plain = match self.sealer.open(&proxy_aad(instance_id), blob) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(instance_id, error = %e, "the stored proxy cannot be opened; ignoring it");
                return None;
            }
        };
        match std::str::from_utf8(&plain).ok().and_then(|s| ProxyUrl::parse(s).ok()) {
            Some(p) => Some(p),
            None => {
                tracing::warn!(
                    instance_id,
                    "the stored proxy is not a valid proxy URL; ignoring it"
                );
                None
            }
        }
    }

    fn instance_from_row(&self, row: &SqliteRow) -> Result<InstanceRecord> {
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

    async fn query_instances(&self, filter: &str, binds: &[&str]) -> Result<Vec<InstanceRecord>> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances {filter}");
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(*b);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(|r| self.instance_from_row(r)).collect()
    }
}

/// Checks the database's sealed check value, when it has one, against `sealer`'s key.
/// Returns whether the check value exists. Only reads.
async fn verify_master_key(conn: &mut SqliteConnection, sealer: &Sealer) -> Result<bool> {
    let has_meta: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    if !has_meta {
        return Ok(false);
    }
    let check: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
        .bind(META_KEY_CHECK)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    let Some(check) = check else { return Ok(false) };
    let stored_id: Option<String> =
        sqlx::query_scalar("SELECT CAST(value AS TEXT) FROM meta WHERE key = ?")
            .bind(META_KEY_ID)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
    judge_master_key_check(sealer, &check, stored_id)
}

/// Whether `check` (the database's sealed key check value) opens with `sealer`'s key:
/// `Ok(true)`, or `WrongMasterKey` saying why not (`stored_id` names the expected key).
pub(crate) fn judge_master_key_check(
    sealer: &Sealer,
    check: &[u8],
    stored_id: Option<String>,
) -> Result<bool> {
    let ours = sealer.key_id();
    let refuse = |msg: String| Err(StoreError::WrongMasterKey(msg));
    match sealer.open(KEY_CHECK_AAD, check) {
        Ok(plain) if plain == KEY_CHECK_PLAINTEXT => Ok(true),
        Err(SealError::OtherKey { blob_key_id }) => refuse(format!(
            "the master key does not match the one this data directory was created with \
             (key id {ours}, expected {}); nothing was changed",
            stored_id.unwrap_or(blob_key_id)
        )),
        Ok(_) | Err(SealError::Tampered) => refuse(format!(
            "the master key (key id {ours}) has the expected id but does not open this data \
             directory's key check value, which looks damaged; nothing was changed"
        )),
        Err(e) => refuse(format!(
            "this data directory's master key check value is unreadable ({e}); \
             nothing was changed"
        )),
    }
}

/// Closes every connection of the pool and returns only once SQLite has closed them all.
///
/// `Pool::close` alone can return while a connection that was just used is still on its way
/// back to the pool (sqlx hands it back on a spawned task); that connection is closed a moment
/// later. [`SqliteStore::close`] settles the files with one more connection after these, which
/// only works once they are really gone, so wait for the pool to be empty.
async fn close_pool(pool: &SqlitePool) {
    pool.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while pool.size() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn create_parent_dir(file: &Path) -> Result<()> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => std::fs::create_dir_all(dir)
            .map_err(|e| {
                StoreError::Database(format!("cannot create the directory {}: {e}", dir.display()))
            }),
        _ => Ok(()),
    }
}

pub(crate) fn proxy_aad(instance_id: &str) -> Vec<u8> {
    [b"proxy:", instance_id.as_bytes()].concat()
}

pub(crate) fn session_aad(instance_id: &str, key: &str) -> Vec<u8> {
    // The 0x00 separator keeps ("a", "b\0c") and ("a\0b", "c") apart; ids never contain it.
    [instance_id.as_bytes(), &[0], key.as_bytes()].concat()
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// Maps a unique violation to `Conflict` (with `what` saying what already exists).
fn write_err(e: sqlx::Error, what: impl FnOnce(&str) -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(what(d.message()))
        }
        _ => db(e),
    }
}

fn col<'r, T>(row: &'r SqliteRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(name).map_err(db)
}

pub(crate) fn ts(ms: i64) -> Result<DateTime<Utc>> {
    from_millis(ms).ok_or_else(|| StoreError::Database(format!("timestamp {ms} is out of range")))
}

pub(crate) fn opt_ts(ms: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    ms.map(ts).transpose()
}

fn event_from_row(row: &SqliteRow) -> Result<Event> {
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

fn tenant_from_row(row: &SqliteRow) -> Result<Tenant> {
    Ok(Tenant {
        id: col(row, "id")?,
        name: col(row, "name")?,
        created_at: ts(col(row, "created_at")?)?,
    })
}

#[async_trait]
impl TenantStore for SqliteStore {
    async fn create_tenant(&self, tenant: &Tenant, first_key: &ApiKeyRecord) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)")
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
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    async fn delete_tenant(&self, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Events carry no foreign key (they outlive instances), so they go explicitly; keys,
        // instances, their sessions and pools follow the tenant by ON DELETE CASCADE.
        sqlx::query("DELETE FROM events WHERE tenant_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let deleted = sqlx::query("DELETE FROM tenants WHERE id = ?")
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
        let done = sqlx::query("DELETE FROM api_keys WHERE id = ? AND tenant_id = ?")
            .bind(key_id)
            .bind(tenant_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn find_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>> {
        let row =
            sqlx::query("SELECT id, tenant_id, secret_hash, created_at FROM api_keys WHERE id = ?")
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

async fn insert_api_key<'e, E>(executor: E, key: &ApiKeyRecord) -> Result<()>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, secret_hash, created_at) VALUES (?, ?, ?, ?)",
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
impl InstanceStore for SqliteStore {
    async fn create_instance(&self, rec: &InstanceRecord) -> Result<()> {
        let limits =
            serde_json::to_string(&rec.limits).map_err(|e| StoreError::Database(e.to_string()))?;
        sqlx::query(
            "INSERT INTO instances (id, tenant_id, name, pool, status, reason, detail, phone, jid, \
             lid, warming_days, proxy_sealed, limits_json, first_connected_at, connected_at, \
             created_at, health_score) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .map_err(|e| write_err(e, |msg| instance_conflict(msg, rec)))?;
        Ok(())
    }

    async fn get_instance(&self, tenant_id: &str, id: &str) -> Result<Option<InstanceRecord>> {
        let mut v =
            self.query_instances("WHERE tenant_id = ? AND id = ?", &[tenant_id, id]).await?;
        Ok(v.pop())
    }

    async fn get_instance_by_id(&self, id: &str) -> Result<Option<InstanceRecord>> {
        let mut v = self.query_instances("WHERE id = ?", &[id]).await?;
        Ok(v.pop())
    }

    async fn list_instances(&self, tenant_id: &str) -> Result<Vec<InstanceRecord>> {
        self.query_instances("WHERE tenant_id = ? ORDER BY created_at, id", &[tenant_id]).await
    }

    async fn list_all_instances(&self) -> Result<Vec<InstanceRecord>> {
        self.query_instances("ORDER BY created_at, id", &[]).await
    }

    async fn update_instance_settings(&self, rec: &InstanceRecord) -> Result<bool> {
        let limits =
            serde_json::to_string(&rec.limits).map_err(|e| StoreError::Database(e.to_string()))?;
        let done = sqlx::query(
            "UPDATE instances SET name = ?, pool = ?, warming_days = ?, proxy_sealed = ?, \
             limits_json = ? WHERE id = ? AND tenant_id = ?",
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
        .map_err(|e| write_err(e, |msg| instance_conflict(msg, rec)))?;
        Ok(done.rows_affected() > 0)
    }

    async fn update_instance_state(&self, id: &str, change: &StateChange) -> Result<()> {
        // Same rules as `apply_state_change`: identity is set on pairing and wiped on logout
        // (the wipe wins when both come together); `first_connected_at` is set only once.
        let (touch_identity, phone, jid, lid) = if change.clear_identity {
            (true, None, None, None)
        } else if let Some(i) = &change.identity {
            (true, Some(i.phone.as_str()), Some(i.jid.as_str()), i.lid.as_deref())
        } else {
            (false, None, None, None)
        };
        // Through the write gate: a number's state change (a ban leaving rotation) must not
        // wait in SQLite's busy handler behind the event pipeline's writes.
        let _gate = self.write_gate.lock().await;
        sqlx::query(
            "UPDATE instances SET status = ?1, reason = ?2, detail = ?3, \
             phone = CASE WHEN ?4 THEN ?5 ELSE phone END, \
             jid = CASE WHEN ?4 THEN ?6 ELSE jid END, \
             lid = CASE WHEN ?4 THEN ?7 ELSE lid END, \
             connected_at = COALESCE(?8, connected_at), \
             first_connected_at = COALESCE(first_connected_at, ?8) \
             WHERE id = ?9",
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

    async fn set_instance_health(&self, id: &str, score: u8) -> Result<()> {
        self.set_health(id, score).await
    }

    async fn delete_instance(&self, tenant_id: &str, id: &str) -> Result<bool> {
        // session_values and received messages (inbound) follow by ON DELETE CASCADE.
        let done = sqlx::query("DELETE FROM instances WHERE id = ? AND tenant_id = ?")
            .bind(id)
            .bind(tenant_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }
}

impl SqliteStore {
    async fn set_health(&self, id: &str, score: u8) -> Result<()> {
        sqlx::query("UPDATE instances SET health_score = ? WHERE id = ?")
            .bind(i64::from(score.min(100)))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}

fn instance_conflict(db_message: &str, rec: &InstanceRecord) -> String {
    if db_message.contains("instances.name") {
        format!("an instance named `{}` already exists", rec.name)
    } else {
        format!("an instance with id {} already exists", rec.id)
    }
}

impl SqliteStore {
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

/// The smallest string greater than every string starting with `prefix` (keys compare as
/// UTF-8 bytes, and no key character sorts after U+10FFFF).
pub(crate) fn prefix_upper_bound(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn load_session_value(&self, instance_id: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let blob: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT value FROM session_values WHERE instance_id = ? AND key = ?",
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
        sqlx::query(
            "INSERT INTO session_values (instance_id, key, value) VALUES (?, ?, ?) \
             ON CONFLICT (instance_id, key) DO UPDATE SET value = excluded.value",
        )
        .bind(instance_id)
        .bind(key)
        .bind(self.sealer.seal(&session_aad(instance_id, key), value))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn load_session_values_with_prefix(
        &self,
        instance_id: &str,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT key, value FROM session_values \
             WHERE instance_id = ? AND key >= ? AND key < ? ORDER BY key",
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
                    sqlx::query(
                        "INSERT INTO session_values (instance_id, key, value) VALUES (?, ?, ?) \
                         ON CONFLICT (instance_id, key) DO UPDATE SET value = excluded.value",
                    )
                    .bind(instance_id)
                    .bind(key)
                    .bind(self.sealer.seal(&session_aad(instance_id, key), value))
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                }
                SessionWrite::Delete { key } => {
                    sqlx::query("DELETE FROM session_values WHERE instance_id = ? AND key = ?")
                        .bind(instance_id)
                        .bind(key)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                }
                SessionWrite::DeletePrefix { prefix } => {
                    sqlx::query(
                        "DELETE FROM session_values \
                         WHERE instance_id = ? AND key >= ? AND key < ?",
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
        sqlx::query("DELETE FROM session_values WHERE instance_id = ?")
            .bind(instance_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn has_session(&self, instance_id: &str) -> Result<bool> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM session_values WHERE instance_id = ?)")
            .bind(instance_id)
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }
}

#[async_trait]
impl PoolStore for SqliteStore {
    async fn list_pools(&self, tenant_id: &str) -> Result<Vec<Pool>> {
        let mut pools = std::collections::BTreeMap::new();
        pools.insert("default".to_string(), Strategy::RoundRobin);
        let named: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT pool FROM instances WHERE tenant_id = ?")
                .bind(tenant_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        for name in named {
            pools.entry(name).or_insert(Strategy::RoundRobin);
        }
        let stored = sqlx::query("SELECT name, strategy FROM pools WHERE tenant_id = ?")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        for row in stored {
            let name: String = col(&row, "name")?;
            let strategy: String = col(&row, "strategy")?;
            let strategy = Strategy::parse(&strategy).ok_or_else(|| {
                StoreError::Database(format!("pool {name}: unknown strategy `{strategy}`"))
            })?;
            pools.insert(name, strategy);
        }
        Ok(pools.into_iter().map(|(name, strategy)| Pool { name, strategy }).collect())
    }

    async fn put_pool(&self, tenant_id: &str, name: &str, strategy: Strategy) -> Result<Pool> {
        sqlx::query(
            "INSERT INTO pools (tenant_id, name, strategy) VALUES (?, ?, ?) \
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

/// Most events in one `INSERT` (5 parameters each; SQLite allows 32,766 per statement).
const EVENTS_PER_INSERT: usize = 1000;

#[async_trait]
impl EventLog for SqliteStore {
    async fn append_events_indexed(
        &self,
        events: &[NewEvent],
        inbound: &[crate::InboundRecord],
    ) -> Result<Vec<Event>> {
        if events.is_empty() && inbound.is_empty() {
            return Ok(Vec::new());
        }
        let mut encoded = Vec::with_capacity(events.len());
        for e in events {
            let data =
                serde_json::to_string(&e.data).map_err(|e| StoreError::Database(e.to_string()))?;
            encoded.push((e, data));
        }
        let mut out = Vec::with_capacity(events.len());
        let _gate = self.write_gate.lock().await;
        let mut tx = self.pool.begin().await.map_err(db)?;
        inbound::insert_inbound(&mut tx, inbound).await?;
        for chunk in encoded.chunks(EVENTS_PER_INSERT) {
            let mut qb: sqlx::QueryBuilder<Sqlite> = sqlx::QueryBuilder::new(
                "INSERT INTO events (tenant_id, instance_id, kind, data, created_at) ",
            );
            qb.push_values(chunk, |mut row, (e, data)| {
                row.push_bind(&e.tenant_id)
                    .push_bind(&e.instance_id)
                    .push_bind(&e.kind)
                    .push_bind(data.as_str())
                    .push_bind(to_millis(e.created_at));
            });
            let done = qb.build().execute(&mut *tx).await.map_err(db)?;
            // The rows of one INSERT take consecutive ids in the order of its VALUES (the
            // transaction holds the write lock, and AUTOINCREMENT never reuses an id), so the
            // last id tells every id.
            let n = chunk.len() as i64;
            if done.rows_affected() != n as u64 {
                return Err(StoreError::Database(format!(
                    "appending {n} events inserted {} rows",
                    done.rows_affected()
                )));
            }
            let first = done.last_insert_rowid() - n + 1;
            for (i, (e, _)) in chunk.iter().enumerate() {
                out.push(Event {
                    id: first + i as i64,
                    tenant_id: e.tenant_id.clone(),
                    instance_id: e.instance_id.clone(),
                    kind: e.kind.clone(),
                    data: e.data.clone(),
                    // As `events_after` will return it.
                    created_at: truncate_to_millis(e.created_at),
                });
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(out)
    }

    async fn events_after(&self, tenant_id: &str, after_id: i64, limit: u32) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, instance_id, kind, data, created_at FROM events \
             WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?",
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
            "SELECT instance_id, COUNT(*) FROM events WHERE tenant_id = ? AND kind = ? \
             AND created_at >= ? AND instance_id IS NOT NULL GROUP BY instance_id",
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
        let (id,): (Option<i64>,) =
            sqlx::query_as("SELECT MAX(id) FROM events WHERE tenant_id = ?")
                .bind(tenant_id)
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        Ok(id.unwrap_or(0))
    }

    async fn latest_event_id_all(&self) -> Result<i64> {
        let (id,): (Option<i64>,) =
            sqlx::query_as("SELECT MAX(id) FROM events").fetch_one(&self.pool).await.map_err(db)?;
        Ok(id.unwrap_or(0))
    }

    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64> {
        // Stored times are whole milliseconds: an event at 10 ms is older than a cut at
        // 10.5 ms, so a cut with a fraction rounds up.
        let mut cut = to_millis(before);
        if truncate_to_millis(before) != before {
            cut += 1;
        }
        let done = sqlx::query("DELETE FROM events WHERE created_at < ?")
            .bind(cut)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db)?;
        Ok(())
    }
}
