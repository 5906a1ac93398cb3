//! What the store keeps in `meta`: the master-key check (a value sealed with the key the
//! database was created with, so that a wrong key is refused before anything is written), and
//! the cursors of the event log's readers.

use super::{q, Backend, SqlStore};
use crate::{Result, SealError, Sealer, StoreError};

/// `meta` key of the sealed value that proves which master key this database belongs to.
const META_KEY_CHECK: &str = "master_key_check";
/// `meta` key of that master key's id, kept in clear to name it in error messages.
const META_KEY_ID: &str = "master_key_id";
const KEY_CHECK_AAD: &[u8] = b"bzapper-master-key-check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"bzapper master key check, format 1";

/// Checks the database's sealed check value, when it has one, against `sealer`'s key.
/// Returns whether the check value exists. Only reads.
pub(crate) async fn verify_master_key<DB: Backend>(
    conn: &mut DB::Connection,
    sealer: &Sealer,
) -> Result<bool> {
    if !q::<DB>(DB::HAS_META).scalar::<bool>(conn).await? {
        return Ok(false);
    }
    let rows = q::<DB>("SELECT key, value FROM meta WHERE key = $1 OR key = $2")
        .bind(META_KEY_CHECK)
        .bind(META_KEY_ID)
        .fetch_all(conn)
        .await?;
    let mut check = None;
    let mut stored_id = None;
    for row in &rows {
        let value: Vec<u8> = DB::col(row, "value")?;
        match DB::col::<String>(row, "key")?.as_str() {
            META_KEY_CHECK => check = Some(value),
            _ => stored_id = Some(String::from_utf8_lossy(&value).into_owned()),
        }
    }
    let Some(check) = check else { return Ok(false) };
    judge_master_key_check(sealer, &check, stored_id)
}

/// Whether `check` (the database's sealed key check value) opens with `sealer`'s key:
/// `Ok(true)`, or `WrongMasterKey` saying why not (`stored_id` names the expected key).
fn judge_master_key_check(
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

impl<DB: Backend> SqlStore<DB> {
    /// Records which key this database belongs to, on its first open.
    pub(crate) async fn init_master_key_check(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        if verify_master_key::<DB>(&mut conn, &self.sealer).await? {
            return Ok(());
        }
        let check = self.sealer.seal(KEY_CHECK_AAD, KEY_CHECK_PLAINTEXT);
        // On the same connection: an in-memory SQLite database has only this one.
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(super::db)?;
        // DO NOTHING: if another process or node initialised the database meanwhile, its
        // value stands and the verification below decides.
        for (key, value) in
            [(META_KEY_CHECK, check), (META_KEY_ID, self.sealer.key_id().into_bytes())]
        {
            q::<DB>("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(key)
                .bind(value)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await.map_err(super::db)?;
        verify_master_key::<DB>(&mut conn, &self.sealer).await.map(|_| ())
    }
}

/// The cursor of a reader of the event log (the webhook and alert fan-outs), kept in `meta`
/// under `key`. On a database that never had one, the newest event's id: a reader sees what
/// happens from its first start.
pub(crate) async fn log_cursor<DB: Backend>(conn: &mut DB::Connection, key: &str) -> Result<i64> {
    let row =
        q::<DB>("SELECT value FROM meta WHERE key = $1").bind(key).fetch_optional(conn).await?;
    match row {
        Some(row) => String::from_utf8_lossy(&DB::col::<Vec<u8>>(&row, "value")?)
            .parse()
            .map_err(|_| StoreError::Database(format!("the cursor `{key}` is damaged"))),
        None => {
            let max: Option<i64> = q::<DB>("SELECT MAX(id) FROM events").scalar(conn).await?;
            Ok(max.unwrap_or(0))
        }
    }
}

/// Stores a log reader's cursor (see [`log_cursor`]), on `conn` (the transaction that writes
/// what the reader made of the events up to it).
pub(crate) async fn set_log_cursor<DB: Backend>(
    conn: &mut DB::Connection,
    key: &str,
    cursor: i64,
) -> Result<()> {
    q::<DB>(
        "INSERT INTO meta (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(key)
    .bind(cursor.to_string().into_bytes())
    .execute(conn)
    .await?;
    Ok(())
}
