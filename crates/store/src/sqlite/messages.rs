//! The durable send queue on SQLite: outbound messages, their idempotency keys and statuses.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use tokio::sync::{mpsc, oneshot};

use super::{col, db, opt_ts, ts, write_err, SqliteStore};
use crate::time::to_millis;
use crate::{
    LidStore, MessageFilter, MessageRecord, MessageStatus, MessageStore, MessageUpdate, Result,
    StoreError,
};

const COLUMNS: &str = "id, tenant_id, wa_id, instance_id, forced, pool, to_jid, body, \
     mentions_json, menu_json, status, error, idempotency_key, created_at, updated_at, sent_at, \
     campaign_id, content_json";

fn message_from_row(row: &SqliteRow) -> Result<MessageRecord> {
    let id: String = col(row, "id")?;
    let corrupt = |what: String| StoreError::Database(format!("message {id}: {what}"));
    let status: String = col(row, "status")?;
    let status = MessageStatus::parse(&status)
        .ok_or_else(|| corrupt(format!("unknown status `{status}`")))?;
    let mentions: String = col(row, "mentions_json")?;
    let mentions: Vec<String> =
        serde_json::from_str(&mentions).map_err(|e| corrupt(format!("bad mentions: {e}")))?;
    let menu = col::<Option<String>>(row, "menu_json")?
        .map(|m| serde_json::from_str(&m).map_err(|e| corrupt(format!("bad menu: {e}"))))
        .transpose()?;
    let content = col::<Option<String>>(row, "content_json")?
        .map(|c| serde_json::from_str(&c).map_err(|e| corrupt(format!("bad content: {e}"))))
        .transpose()?;
    Ok(MessageRecord {
        tenant_id: col(row, "tenant_id")?,
        wa_id: col(row, "wa_id")?,
        instance_id: col(row, "instance_id")?,
        forced: col::<i64>(row, "forced")? != 0,
        pool: col(row, "pool")?,
        to: col(row, "to_jid")?,
        body: col(row, "body")?,
        mentions,
        menu,
        status,
        error: col(row, "error")?,
        idempotency_key: col(row, "idempotency_key")?,
        created_at: ts(col(row, "created_at")?)?,
        updated_at: ts(col(row, "updated_at")?)?,
        sent_at: opt_ts(col(row, "sent_at")?)?,
        campaign_id: col(row, "campaign_id")?,
        content,
        id,
    })
}

/// Most messages committed in one transaction.
const MAX_BATCH: usize = 512;

type Pending = (MessageRecord, oneshot::Sender<Result<()>>);

/// Group commit: accepted messages from concurrent requests are written by one task, as many
/// as are waiting in one transaction, so one fsync covers a whole batch. Each caller still
/// gets its answer only after its row is committed (accepting is persisting), but the write
/// rate is no longer bounded by one fsync per message. Written by hand because sqlx has no
/// batching of its own; it is a channel, a loop and a transaction.
#[derive(Debug, Clone)]
pub(super) struct MessageWriter {
    tx: mpsc::Sender<Pending>,
}

impl MessageWriter {
    pub(super) fn spawn(pool: SqlitePool) -> Self {
        let (tx, mut rx) = mpsc::channel::<Pending>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let results = write_batch(&pool, &batch).await;
                for ((_, reply), r) in batch.drain(..).zip(results) {
                    let _ = reply.send(r);
                }
            }
        });
        MessageWriter { tx }
    }

    pub(super) async fn insert(&self, m: MessageRecord) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        let closed = || StoreError::Database("the store is closed".into());
        self.tx.send((m, reply)).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

/// Writes a batch in one transaction. A row refused by a constraint (a duplicate idempotency
/// key) fails alone: SQLite backs out only that statement and the transaction goes on.
async fn write_batch(pool: &SqlitePool, batch: &[Pending]) -> Vec<Result<()>> {
    let fail_all = |e: &sqlx::Error| batch.iter().map(|_| Err(db_ref(e))).collect::<Vec<_>>();
    let mut tx = match pool.begin().await {
        Ok(t) => t,
        Err(e) => return fail_all(&e),
    };
    // One statement for the whole batch (one round trip to SQLite's thread); when it is
    // refused (a duplicate idempotency key in the batch), row by row so that only the
    // duplicate fails.
    let results = match insert_rows(&mut tx, batch).await {
        Ok(()) => batch.iter().map(|_| Ok(())).collect(),
        Err(_) => {
            let mut results = Vec::with_capacity(batch.len());
            for (m, _) in batch {
                results.push(insert_row(&mut tx, m).await);
            }
            results
        }
    };
    match tx.commit().await {
        Ok(()) => results,
        Err(e) => fail_all(&e),
    }
}

/// Inserts every message of the batch with one multi-row `INSERT`.
async fn insert_rows(conn: &mut sqlx::SqliteConnection, batch: &[Pending]) -> Result<()> {
    let mut qb: sqlx::QueryBuilder<sqlx::Sqlite> =
        sqlx::QueryBuilder::new(format!("INSERT INTO messages ({COLUMNS}) "));
    let mut encoded = Vec::with_capacity(batch.len());
    let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
    for (m, _) in batch {
        let mentions =
            serde_json::to_string(&m.mentions).map_err(|e| StoreError::Database(e.to_string()))?;
        encoded.push((m, mentions, json(&m.menu), json(&m.content)));
    }
    qb.push_values(encoded, |mut row, (m, mentions, menu, content)| {
        row.push_bind(m.id.clone())
            .push_bind(m.tenant_id.clone())
            .push_bind(m.wa_id.clone())
            .push_bind(m.instance_id.clone())
            .push_bind(i64::from(m.forced))
            .push_bind(m.pool.clone())
            .push_bind(m.to.clone())
            .push_bind(m.body.clone())
            .push_bind(mentions)
            .push_bind(menu)
            .push_bind(m.status.as_str())
            .push_bind(m.error.clone())
            .push_bind(m.idempotency_key.clone())
            .push_bind(to_millis(m.created_at))
            .push_bind(to_millis(m.updated_at))
            .push_bind(m.sent_at.map(to_millis))
            .push_bind(m.campaign_id.clone())
            .push_bind(content);
    });
    qb.build().execute(conn).await.map_err(db)?;
    Ok(())
}

fn db_ref(e: &sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

async fn insert_row(conn: &mut sqlx::SqliteConnection, m: &MessageRecord) -> Result<()> {
    let mentions =
        serde_json::to_string(&m.mentions).map_err(|e| StoreError::Database(e.to_string()))?;
    let menu = m.menu.as_ref().map(|v| v.to_string());
    let content = m.content.as_ref().map(|v| v.to_string());
    sqlx::query(&format!(
        "INSERT INTO messages ({COLUMNS}) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&m.id)
    .bind(&m.tenant_id)
    .bind(&m.wa_id)
    .bind(&m.instance_id)
    .bind(i64::from(m.forced))
    .bind(&m.pool)
    .bind(&m.to)
    .bind(&m.body)
    .bind(mentions)
    .bind(menu)
    .bind(m.status.as_str())
    .bind(&m.error)
    .bind(&m.idempotency_key)
    .bind(to_millis(m.created_at))
    .bind(to_millis(m.updated_at))
    .bind(m.sent_at.map(to_millis))
    .bind(&m.campaign_id)
    .bind(content)
    .execute(conn)
    .await
    .map_err(|e| write_err(e, |_| "a message with this idempotency key".to_string()))?;
    Ok(())
}

impl SqliteStore {
    async fn query_messages(&self, filter: &str, binds: Vec<String>) -> Result<Vec<MessageRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM messages {filter}");
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(message_from_row).collect()
    }
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn insert_message(&self, m: &MessageRecord) -> Result<()> {
        self.writer.insert(m.clone()).await
    }

    async fn find_by_idempotency_key(
        &self,
        tenant_id: &str,
        key: &str,
    ) -> Result<Option<MessageRecord>> {
        let mut v = self
            .query_messages(
                "WHERE tenant_id = ? AND idempotency_key = ?",
                vec![tenant_id.into(), key.into()],
            )
            .await?;
        Ok(v.pop())
    }

    async fn release_idempotency_key(&self, tenant_id: &str, key: &str) -> Result<()> {
        sqlx::query(
            "UPDATE messages SET idempotency_key = NULL WHERE tenant_id = ? AND idempotency_key = ?",
        )
        .bind(tenant_id)
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn get_message(&self, tenant_id: &str, id: &str) -> Result<Option<MessageRecord>> {
        let mut v = self
            .query_messages("WHERE tenant_id = ? AND id = ?", vec![tenant_id.into(), id.into()])
            .await?;
        Ok(v.pop())
    }

    async fn get_message_by_id(&self, id: &str) -> Result<Option<MessageRecord>> {
        let mut v = self.query_messages("WHERE id = ?", vec![id.into()]).await?;
        Ok(v.pop())
    }

    async fn list_messages(
        &self,
        tenant_id: &str,
        f: &MessageFilter,
    ) -> Result<Vec<MessageRecord>> {
        let mut sql = String::from("WHERE tenant_id = ?");
        let mut binds = vec![tenant_id.to_string()];
        if let Some(i) = &f.instance_id {
            sql.push_str(" AND instance_id = ?");
            binds.push(i.clone());
        }
        if let Some(s) = f.status {
            sql.push_str(" AND status = ?");
            binds.push(s.as_str().into());
        }
        if let Some((at, id)) = &f.before {
            sql.push_str(" AND (created_at < CAST(? AS INTEGER) OR (created_at = CAST(? AS INTEGER) AND id < ?))");
            binds.push(at.to_string());
            binds.push(at.to_string());
            binds.push(id.clone());
        }
        sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT {}", f.limit.max(1)));
        self.query_messages(&sql, binds).await
    }

    async fn update_message(&self, id: &str, u: &MessageUpdate) -> Result<bool> {
        let at = to_millis(u.at);
        let done = sqlx::query(
            "UPDATE messages SET status = ?1, instance_id = ?2, error = ?3, updated_at = ?4, \
             sent_at = CASE WHEN ?1 IN ('sent', 'delivered', 'read') \
                 THEN COALESCE(sent_at, ?4) ELSE sent_at END \
             WHERE id = ?5 AND NOT ( \
                 status IN ('sent', 'delivered', 'read') AND ?1 IN ('sent', 'delivered', 'read') \
                 AND (CASE ?1 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 ELSE 3 END) \
                  <= (CASE status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 ELSE 3 END))",
        )
        .bind(u.status.as_str())
        .bind(&u.instance_id)
        .bind(&u.error)
        .bind(at)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn find_message_by_wa_id(
        &self,
        instance_id: &str,
        wa_id: &str,
    ) -> Result<Option<MessageRecord>> {
        let mut v = self
            .query_messages(
                "WHERE instance_id = ? AND wa_id = ?",
                vec![instance_id.into(), wa_id.into()],
            )
            .await?;
        Ok(v.pop())
    }

    async fn find_message_by_wa_id_for_tenant(
        &self,
        tenant_id: &str,
        wa_id: &str,
    ) -> Result<Option<MessageRecord>> {
        let mut v = self
            .query_messages(
                "WHERE tenant_id = ? AND wa_id = ? ORDER BY created_at DESC, id DESC LIMIT 1",
                vec![tenant_id.into(), wa_id.into()],
            )
            .await?;
        Ok(v.pop())
    }

    async fn pending_messages(&self) -> Result<Vec<MessageRecord>> {
        self.query_messages(
            "WHERE status IN ('queued', 'sending') ORDER BY created_at, id",
            Vec::new(),
        )
        .await
    }

    async fn count_sent_since(&self, instance_id: &str, since: DateTime<Utc>) -> Result<u64> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM messages WHERE instance_id = ? AND sent_at >= ?")
                .bind(instance_id)
                .bind(to_millis(since))
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        Ok(n.max(0) as u64)
    }

    async fn count_sent_by_instance(
        &self,
        tenant_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT instance_id, COUNT(*) FROM messages WHERE tenant_id = ? AND sent_at >= ? \
             AND instance_id IS NOT NULL GROUP BY instance_id",
        )
        .bind(tenant_id)
        .bind(to_millis(since))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows.into_iter().map(|(i, n)| (i, n.max(0) as u64)).collect())
    }

    async fn sent_times_since(
        &self,
        instance_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT sent_at FROM messages WHERE instance_id = ? AND sent_at >= ? ORDER BY sent_at",
        )
        .bind(instance_id)
        .bind(to_millis(since))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(|(t,)| ts(t)).collect()
    }
}

#[async_trait]
impl LidStore for SqliteStore {
    async fn learn_lid(&self, lid: &str, phone_jid: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO lid_map (lid, phone_jid, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (lid) DO UPDATE SET phone_jid = excluded.phone_jid, \
             updated_at = excluded.updated_at",
        )
        .bind(lid)
        .bind(phone_jid)
        .bind(to_millis(crate::now_millis()))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn phone_for_lid(&self, lid: &str) -> Result<Option<String>> {
        let r: Option<(String,)> = sqlx::query_as("SELECT phone_jid FROM lid_map WHERE lid = ?")
            .bind(lid)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(r.map(|(p,)| p))
    }

    async fn lid_for_phone(&self, phone_jid: &str) -> Result<Option<String>> {
        let r: Option<(String,)> = sqlx::query_as(
            "SELECT lid FROM lid_map WHERE phone_jid = ? ORDER BY updated_at DESC LIMIT 1",
        )
        .bind(phone_jid)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        Ok(r.map(|(l,)| l))
    }

    async fn last_menu_to(&self, instance_id: &str, chat: &str) -> Result<Option<MessageRecord>> {
        Ok(self
            .query_messages(
                "WHERE instance_id = ? AND to_jid = ? AND menu_json IS NOT NULL \
                 AND status IN ('sent', 'delivered', 'read') ORDER BY created_at DESC LIMIT 1",
                vec![instance_id.into(), chat.into()],
            )
            .await?
            .pop())
    }
}
