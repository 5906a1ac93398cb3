//! [`SessionStore`]: one number's protocol state, each value sealed with the instance id and
//! its key as associated data. Writes are sealed here and applied by the backend's session
//! writer ([`Backend::write_session`]: a group commit on SQLite).

use async_trait::async_trait;

use super::{q, Backend, SqlStore};
use crate::{Result, SealError, SessionStore, SessionWrite, StoreError};

pub(crate) fn session_aad(instance_id: &str, key: &str) -> Vec<u8> {
    // The 0x00 separator keeps ("a", "b\0c") and ("a\0b", "c") apart; ids never contain it.
    [instance_id.as_bytes(), &[0], key.as_bytes()].concat()
}

/// The smallest string greater than every string starting with `prefix` (keys compare as
/// UTF-8 bytes, and no key character sorts after U+10FFFF). On PostgreSQL `key` is
/// COLLATE "C", so the range is exactly the prefix's keys there too.
fn prefix_upper_bound(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

impl<DB: Backend> SqlStore<DB> {
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

    /// `writes` with every value sealed for `instance_id` (done before a writer takes the
    /// write gate: sealing is CPU work that need not hold up other writers).
    pub(crate) fn seal_writes(&self, instance_id: &str, writes: &[SessionWrite]) -> SealedWrites {
        let writes = writes
            .iter()
            .map(|w| match w {
                SessionWrite::Put { key, value } => SessionWrite::Put {
                    key: key.clone(),
                    value: self.sealer.seal(&session_aad(instance_id, key), value),
                },
                other => other.clone(),
            })
            .collect();
        SealedWrites { instance_id: instance_id.to_string(), writes }
    }
}

/// One number's session changes, each `Put` value already sealed, as a writer applies them.
#[derive(Debug, Clone)]
pub struct SealedWrites {
    pub instance_id: String,
    pub writes: Vec<SessionWrite>,
}

/// Applies sealed `w` in order on `c` (a connection in an open transaction).
pub(crate) async fn apply_sealed_writes<DB: Backend>(
    c: &mut DB::Connection,
    w: &SealedWrites,
) -> Result<()> {
    let id = w.instance_id.as_str();
    for write in &w.writes {
        match write {
            SessionWrite::Put { key, value } => {
                q::<DB>(
                    "INSERT INTO session_values (instance_id, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (instance_id, key) DO UPDATE SET value = excluded.value",
                )
                .bind(id)
                .bind(key.as_str())
                .bind(value.as_slice())
                .execute(&mut *c)
                .await?;
            }
            SessionWrite::Delete { key } => {
                q::<DB>("DELETE FROM session_values WHERE instance_id = $1 AND key = $2")
                    .bind(id)
                    .bind(key.as_str())
                    .execute(&mut *c)
                    .await?;
            }
            SessionWrite::DeletePrefix { prefix } => {
                q::<DB>(
                    "DELETE FROM session_values \
                     WHERE instance_id = $1 AND key >= $2 AND key < $3",
                )
                .bind(id)
                .bind(prefix.as_str())
                .bind(prefix_upper_bound(prefix))
                .execute(&mut *c)
                .await?;
            }
        }
    }
    Ok(())
}

#[async_trait]
impl<DB: Backend> SessionStore for SqlStore<DB> {
    async fn load_session_value(&self, instance_id: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let row = q::<DB>("SELECT value FROM session_values WHERE instance_id = $1 AND key = $2")
            .bind(instance_id)
            .bind(key)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        let Some(row) = row else { return Ok(None) };
        self.open_session_value(instance_id, key, &DB::col::<Vec<u8>>(&row, "value")?).map(Some)
    }

    async fn save_session_value(&self, instance_id: &str, key: &str, value: &[u8]) -> Result<()> {
        let put = SessionWrite::Put { key: key.to_string(), value: value.to_vec() };
        DB::write_session(self, self.seal_writes(instance_id, &[put])).await
    }

    async fn load_session_values_with_prefix(
        &self,
        instance_id: &str,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let rows = q::<DB>(
            "SELECT key, value FROM session_values \
             WHERE instance_id = $1 AND key >= $2 AND key < $3 ORDER BY key",
        )
        .bind(instance_id)
        .bind(prefix)
        .bind(prefix_upper_bound(prefix))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter()
            .map(|row| {
                let key: String = DB::col(row, "key")?;
                let value =
                    self.open_session_value(instance_id, &key, &DB::col::<Vec<u8>>(row, "value")?)?;
                Ok((key, value))
            })
            .collect()
    }

    async fn write_session_values(&self, instance_id: &str, writes: &[SessionWrite]) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        DB::write_session(self, self.seal_writes(instance_id, writes)).await
    }

    async fn clear_session(&self, instance_id: &str) -> Result<()> {
        // Under the write gate, as every other writer on SQLite: outside it, a write meets the
        // group commits at SQLite's write lock, whose busy handler sleeps (1, 2, 5 … 100 ms).
        let _gate = DB::gate(self).await;
        q::<DB>("DELETE FROM session_values WHERE instance_id = $1")
            .bind(instance_id)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    async fn has_session(&self, instance_id: &str) -> Result<bool> {
        q::<DB>("SELECT EXISTS (SELECT 1 FROM session_values WHERE instance_id = $1)")
            .bind(instance_id)
            .scalar(&mut *self.conn().await?)
            .await
    }

    async fn instances_with_session(&self) -> Result<std::collections::HashSet<String>> {
        // One index probe per number, not a scan of every stored value.
        let rows = q::<DB>(
            "SELECT id FROM instances i \
             WHERE EXISTS (SELECT 1 FROM session_values s WHERE s.instance_id = i.id)",
        )
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(|r| DB::col::<String>(r, "id")).collect()
    }
}
