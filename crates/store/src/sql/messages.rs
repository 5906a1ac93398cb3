//! [`MessageStore`] and [`LidStore`]: outbound messages (the durable send queue), their
//! idempotency keys and statuses, and the LID ↔ phone map. Accepted messages are stored by
//! group commit (`message_writer.rs`); the multi-row `INSERT` here is SQLite's batch
//! statement (PostgreSQL inserts a batch from arrays, `postgres/accepted.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::message_writer::Accepted;
use super::{count, jid_col, json_err, opt_ts, q, ts, values, Backend, SqlStore};
use crate::time::to_millis;
use crate::{
    ExpiredRef, LidStore, MessageFilter, MessageRecord, MessageStatus, MessageStore, MessageUpdate,
    QueueKey, QueuePosition, QueuedRef, Result, StoreError,
};

pub(crate) const MESSAGE_COLUMNS: &str = "id, tenant_id, wa_id, instance_id, forced, pool, \
     to_jid, body, mentions_json, menu_json, status, error, idempotency_key, created_at, \
     updated_at, sent_at, campaign_id, content_json, send_at, expires_at, queue_at, chosen_by";

pub(crate) fn message_from_row<DB: Backend>(row: &DB::Row) -> Result<MessageRecord> {
    let id: String = DB::col(row, "id")?;
    let corrupt = |what: String| StoreError::Database(format!("message {id}: {what}"));
    let status: String = DB::col(row, "status")?;
    let status = MessageStatus::parse(&status)
        .ok_or_else(|| corrupt(format!("unknown status `{status}`")))?;
    let mentions: String = DB::col(row, "mentions_json")?;
    let mentions: Vec<String> =
        serde_json::from_str(&mentions).map_err(|e| corrupt(format!("bad mentions: {e}")))?;
    let menu = DB::col::<Option<String>>(row, "menu_json")?
        .map(|m| serde_json::from_str(&m).map_err(|e| corrupt(format!("bad menu: {e}"))))
        .transpose()?;
    let content = DB::col::<Option<String>>(row, "content_json")?
        .map(|c| serde_json::from_str(&c).map_err(|e| corrupt(format!("bad content: {e}"))))
        .transpose()?;
    Ok(MessageRecord {
        tenant_id: DB::col(row, "tenant_id")?,
        wa_id: DB::col(row, "wa_id")?,
        instance_id: DB::col(row, "instance_id")?,
        forced: DB::col(row, "forced")?,
        pool: DB::col(row, "pool")?,
        to: jid_col(DB::col(row, "to_jid")?, "to_jid")?,
        body: DB::col(row, "body")?,
        mentions,
        menu,
        status,
        error: DB::col(row, "error")?,
        idempotency_key: DB::col(row, "idempotency_key")?,
        created_at: ts(DB::col(row, "created_at")?)?,
        updated_at: ts(DB::col(row, "updated_at")?)?,
        sent_at: opt_ts(DB::col(row, "sent_at")?)?,
        campaign_id: DB::col(row, "campaign_id")?,
        content,
        send_at: opt_ts(DB::col(row, "send_at")?)?,
        expires_at: opt_ts(DB::col(row, "expires_at")?)?,
        chosen_by: DB::col(row, "chosen_by")?,
        id,
    })
}

/// Stores a status change of message `id` in `c` (a connection or an open transaction);
/// false when the stored message does not take it (see [`crate::MessageStore::update_message`]).
pub(crate) async fn update_message_row<DB: Backend>(
    c: &mut DB::Connection,
    id: &str,
    u: &MessageUpdate,
) -> Result<bool> {
    let n = q::<DB>(
        "UPDATE messages SET status = $1, instance_id = $2, error = $3, updated_at = $4, \
         sent_at = CASE WHEN $1 IN ('sent', 'delivered', 'read') \
             THEN COALESCE(sent_at, $4) ELSE sent_at END, \
         chosen_by = CASE WHEN $1 = 'queued' THEN NULL ELSE COALESCE($6, chosen_by) END \
         WHERE id = $5 AND status <> 'expired' \
         AND NOT (status = 'failed' AND $1 IN ('queued', 'sending')) AND NOT ( \
             status IN ('sent', 'delivered', 'read') AND $1 IN ('sent', 'delivered', 'read') \
             AND (CASE $1 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 ELSE 3 END) \
              <= (CASE status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 ELSE 3 END))",
    )
    .bind(u.status.as_str())
    .bind(&u.instance_id)
    .bind(&u.error)
    .bind(to_millis(u.at))
    .bind(id)
    .bind(&u.chosen_by)
    .execute(c)
    .await?;
    Ok(n > 0)
}

/// Inserts every message with one multi-row `INSERT`. A duplicate idempotency key is
/// `Conflict` (and, on SQLite, backs out this statement only).
pub(crate) async fn insert_messages<DB: Backend>(
    c: &mut DB::Connection,
    ms: &[&MessageRecord],
) -> Result<()> {
    let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
    let mut mentions = Vec::with_capacity(ms.len());
    for m in ms {
        mentions.push(serde_json::to_string(&m.mentions).map_err(json_err)?);
    }
    let sql =
        format!("INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES {}", values::<DB>(ms.len(), 22));
    let mut query = q::<DB>(&sql);
    for (m, mentions) in ms.iter().zip(mentions) {
        query = query
            .bind(&m.id)
            .bind(&m.tenant_id)
            .bind(&m.wa_id)
            .bind(&m.instance_id)
            .bind(m.forced)
            .bind(&m.pool)
            .bind(m.to.to_string())
            .bind(&m.body)
            .bind(mentions)
            .bind(json(&m.menu))
            .bind(m.status.as_str())
            .bind(&m.error)
            .bind(&m.idempotency_key)
            .bind(to_millis(m.created_at))
            .bind(to_millis(m.updated_at))
            .bind(m.sent_at.map(to_millis))
            .bind(&m.campaign_id)
            .bind(json(&m.content))
            .bind(m.send_at.map(to_millis))
            .bind(m.expires_at.map(to_millis))
            .bind(to_millis(m.queue_at()))
            .bind(&m.chosen_by);
    }
    query.write(c, |_| "a message with this idempotency key".to_string()).await?;
    Ok(())
}

impl<DB: Backend> SqlStore<DB> {
    /// `filter` uses `$1`, `$2`… for `binds`, in order.
    async fn query_messages(&self, filter: &str, binds: &[&str]) -> Result<Vec<MessageRecord>> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages {filter}");
        let mut query = q::<DB>(&sql);
        for b in binds {
            query = query.bind(*b);
        }
        let rows = query.fetch_all(&mut *self.conn().await?).await?;
        rows.iter().map(message_from_row::<DB>).collect()
    }

    async fn one_message(&self, filter: &str, binds: &[&str]) -> Result<Option<MessageRecord>> {
        Ok(self.query_messages(filter, binds).await?.pop())
    }
}

#[async_trait]
impl<DB: Backend> MessageStore for SqlStore<DB> {
    async fn insert_message(&self, m: &MessageRecord) -> Result<()> {
        DB::message_writer(self).insert(Accepted::plain(m.clone())).await
    }

    async fn find_by_idempotency_key(
        &self,
        tenant_id: &str,
        key: &str,
    ) -> Result<Option<MessageRecord>> {
        self.one_message("WHERE tenant_id = $1 AND idempotency_key = $2", &[tenant_id, key]).await
    }

    async fn release_idempotency_key(&self, tenant_id: &str, key: &str) -> Result<()> {
        q::<DB>(
            "UPDATE messages SET idempotency_key = NULL \
             WHERE tenant_id = $1 AND idempotency_key = $2",
        )
        .bind(tenant_id)
        .bind(key)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn get_message(&self, tenant_id: &str, id: &str) -> Result<Option<MessageRecord>> {
        self.one_message("WHERE tenant_id = $1 AND id = $2", &[tenant_id, id]).await
    }

    async fn get_message_by_id(&self, id: &str) -> Result<Option<MessageRecord>> {
        self.one_message("WHERE id = $1", &[id]).await
    }

    async fn list_messages(
        &self,
        tenant_id: &str,
        f: &MessageFilter,
    ) -> Result<Vec<MessageRecord>> {
        let mut sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant_id = $1");
        let mut n = 1;
        let mut next = || {
            n += 1;
            n
        };
        if f.instance_id.is_some() {
            sql.push_str(&format!(" AND instance_id = ${}", next()));
        }
        if f.status.is_some() {
            sql.push_str(&format!(" AND status = ${}", next()));
        }
        if f.before.is_some() {
            let (at, id) = (next(), next());
            sql.push_str(&format!(
                " AND (created_at < ${at} OR (created_at = ${at} AND id < ${id}))"
            ));
        }
        sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT ${}", next()));
        let mut query = q::<DB>(&sql).bind(tenant_id);
        if let Some(i) = &f.instance_id {
            query = query.bind(i);
        }
        if let Some(s) = f.status {
            query = query.bind(s.as_str());
        }
        if let Some((at, id)) = &f.before {
            query = query.bind(*at).bind(id);
        }
        let rows =
            query.bind(i64::from(f.limit.max(1))).fetch_all(&mut *self.conn().await?).await?;
        rows.iter().map(message_from_row::<DB>).collect()
    }

    async fn update_message(&self, id: &str, u: &MessageUpdate) -> Result<bool> {
        DB::update_message(self, id, u).await
    }

    async fn find_message_by_wa_id(
        &self,
        instance_id: &str,
        wa_id: &str,
    ) -> Result<Option<MessageRecord>> {
        self.one_message("WHERE instance_id = $1 AND wa_id = $2", &[instance_id, wa_id]).await
    }

    async fn find_message_by_wa_id_for_tenant(
        &self,
        tenant_id: &str,
        wa_id: &str,
    ) -> Result<Option<MessageRecord>> {
        self.one_message(
            "WHERE tenant_id = $1 AND wa_id = $2 ORDER BY created_at DESC, id DESC LIMIT 1",
            &[tenant_id, wa_id],
        )
        .await
    }

    async fn pending_messages(&self) -> Result<Vec<MessageRecord>> {
        self.query_messages("WHERE status IN ('queued', 'sending') ORDER BY created_at, id", &[])
            .await
    }

    async fn queued_page(
        &self,
        queue: &QueueKey,
        after: Option<&QueuePosition>,
        due_by: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<QueuedRef>> {
        // Each filter matches an index of the `queue_pages` migration (partial on `status = 'queued'`),
        // so a page costs the same whatever the backlog.
        let (filter, keys): (&str, Vec<&str>) = match queue {
            QueueKey::Pool { tenant_id, pool } => {
                ("tenant_id = $1 AND pool = $2 AND forced = FALSE", vec![tenant_id, pool])
            }
            QueueKey::Forced { instance_id } => {
                ("instance_id = $1 AND forced = TRUE", vec![instance_id])
            }
        };
        let (after_ms, after_id) = match after {
            Some(p) => (p.queue_at_ms, p.id.as_str()),
            None => (i64::MIN, ""),
        };
        let n = keys.len();
        let sql = format!(
            "SELECT id, tenant_id, pool, forced, instance_id, campaign_id, queue_at, expires_at, \
             to_jid, CAST(LENGTH(body) AS BIGINT) AS text_chars FROM messages \
             WHERE status = 'queued' AND {filter} AND (queue_at, id) > (${}, ${}) \
             AND (send_at IS NULL OR queue_at <= ${}) \
             ORDER BY queue_at, id LIMIT ${}",
            n + 1,
            n + 2,
            n + 3,
            n + 4
        );
        let mut query = q::<DB>(&sql);
        for k in keys {
            query = query.bind(k);
        }
        let rows = query
            .bind(after_ms)
            .bind(after_id)
            .bind(to_millis(due_by))
            .bind(i64::from(limit))
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = DB::col(r, "id")?;
                let chars: i64 = DB::col(r, "text_chars")?;
                Ok(QueuedRef {
                    tenant_id: DB::col(r, "tenant_id")?,
                    pool: DB::col(r, "pool")?,
                    forced: DB::col(r, "forced")?,
                    instance_id: DB::col(r, "instance_id")?,
                    campaign_id: DB::col(r, "campaign_id")?,
                    position: QueuePosition {
                        queue_at_ms: DB::col(r, "queue_at")?,
                        id: id.clone(),
                    },
                    text_chars: u32::try_from(chars).unwrap_or(u32::MAX),
                    expires_at_ms: DB::col(r, "expires_at")?,
                    to: DB::col(r, "to_jid")?,
                    id,
                })
            })
            .collect()
    }

    async fn scheduled_queues(
        &self,
        after: DateTime<Utc>,
    ) -> Result<Vec<(QueueKey, DateTime<Utc>)>> {
        let rows = q::<DB>(
            "SELECT tenant_id, pool, forced, instance_id, MIN(queue_at) AS due FROM messages \
             WHERE status = 'queued' AND send_at IS NOT NULL AND queue_at > $1 \
             GROUP BY tenant_id, pool, forced, instance_id",
        )
        .bind(to_millis(after))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        let mut earliest: std::collections::BTreeMap<QueueKey, i64> = Default::default();
        for r in &rows {
            let forced: bool = DB::col(r, "forced")?;
            let instance_id: Option<String> = DB::col(r, "instance_id")?;
            let key = match (forced, instance_id) {
                (true, Some(instance_id)) => QueueKey::Forced { instance_id },
                _ => QueueKey::Pool {
                    tenant_id: DB::col(r, "tenant_id")?,
                    pool: DB::col(r, "pool")?,
                },
            };
            let due: i64 = DB::col(r, "due")?;
            let e = earliest.entry(key).or_insert(due);
            *e = (*e).min(due);
        }
        earliest.into_iter().map(|(k, at)| Ok((k, ts(at)?))).collect()
    }

    async fn expire_due(&self, now: DateTime<Utc>) -> Result<Vec<ExpiredRef>> {
        let rows = q::<DB>(
            "UPDATE messages SET status = 'expired', updated_at = $1, chosen_by = NULL \
             WHERE status = 'queued' AND expires_at IS NOT NULL AND expires_at <= $1 \
             RETURNING id, tenant_id, instance_id",
        )
        .bind(to_millis(now))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ExpiredRef {
                    id: DB::col(r, "id")?,
                    tenant_id: DB::col(r, "tenant_id")?,
                    instance_id: DB::col(r, "instance_id")?,
                })
            })
            .collect()
    }

    async fn next_expiry(&self) -> Result<Option<DateTime<Utc>>> {
        let at: Option<i64> = q::<DB>(
            "SELECT MIN(expires_at) FROM messages \
             WHERE status = 'queued' AND expires_at IS NOT NULL",
        )
        .scalar(&mut *self.conn().await?)
        .await?;
        at.map(ts).transpose()
    }

    async fn queued_queues(&self) -> Result<Vec<QueueKey>> {
        let mut conn = self.conn().await?;
        let pools = q::<DB>(
            "SELECT DISTINCT tenant_id, pool FROM messages \
             WHERE status = 'queued' AND forced = FALSE",
        )
        .fetch_all(&mut *conn)
        .await?;
        let numbers = q::<DB>(
            "SELECT DISTINCT instance_id FROM messages \
             WHERE status = 'queued' AND forced = TRUE",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut out = Vec::with_capacity(pools.len() + numbers.len());
        for r in &pools {
            out.push(QueueKey::Pool {
                tenant_id: DB::col(r, "tenant_id")?,
                pool: DB::col(r, "pool")?,
            });
        }
        for r in &numbers {
            if let Some(instance_id) = DB::col::<Option<String>>(r, "instance_id")? {
                out.push(QueueKey::Forced { instance_id });
            }
        }
        Ok(out)
    }

    async fn queued_counts(&self) -> Result<Vec<(String, String, u64)>> {
        // One count per index of the `queue_pages` migration (the pools' covers the count).
        let mut counts: std::collections::BTreeMap<(String, String), u64> = Default::default();
        let mut conn = self.conn().await?;
        for forced in ["FALSE", "TRUE"] {
            let sql = format!(
                "SELECT tenant_id, pool, COUNT(*) AS n FROM messages \
                 WHERE status = 'queued' AND forced = {forced} GROUP BY tenant_id, pool"
            );
            for r in q::<DB>(&sql).fetch_all(&mut *conn).await? {
                let key = (DB::col(&r, "tenant_id")?, DB::col(&r, "pool")?);
                *counts.entry(key).or_default() += count(DB::col(&r, "n")?);
            }
        }
        Ok(counts.into_iter().map(|((t, p), n)| (t, p, n)).collect())
    }

    async fn unfinished_direct_counts(&self) -> Result<Vec<(String, String, u64)>> {
        let mut conn = self.conn().await?;
        let sql = "SELECT tenant_id, pool, COUNT(*) AS n FROM messages \
                   WHERE status IN ('queued', 'sending') AND campaign_id IS NULL \
                   GROUP BY tenant_id, pool";
        let mut out = Vec::new();
        for r in q::<DB>(sql).fetch_all(&mut *conn).await? {
            out.push((DB::col(&r, "tenant_id")?, DB::col(&r, "pool")?, count(DB::col(&r, "n")?)));
        }
        Ok(out)
    }

    async fn sending_messages(&self) -> Result<Vec<MessageRecord>> {
        self.query_messages("WHERE status = 'sending' ORDER BY created_at, id", &[]).await
    }

    async fn count_sent_since(&self, instance_id: &str, since: DateTime<Utc>) -> Result<u64> {
        let n: i64 =
            q::<DB>("SELECT COUNT(*) FROM messages WHERE instance_id = $1 AND sent_at >= $2")
                .bind(instance_id)
                .bind(to_millis(since))
                .scalar(&mut *self.conn().await?)
                .await?;
        Ok(count(n))
    }

    async fn sent_times_since(
        &self,
        instance_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>> {
        let times: Vec<i64> = q::<DB>(
            "SELECT sent_at FROM messages WHERE instance_id = $1 AND sent_at >= $2 \
             ORDER BY sent_at",
        )
        .bind(instance_id)
        .bind(to_millis(since))
        .scalars(&mut *self.conn().await?)
        .await?;
        times.into_iter().map(ts).collect()
    }

    async fn last_sent_at(&self, instance_id: &str) -> Result<Option<DateTime<Utc>>> {
        // `messages_by_instance_sent` answers it from the index's end.
        let last: Vec<i64> = q::<DB>(
            "SELECT sent_at FROM messages WHERE instance_id = $1 AND sent_at IS NOT NULL \
             ORDER BY sent_at DESC LIMIT 1",
        )
        .bind(instance_id)
        .scalars(&mut *self.conn().await?)
        .await?;
        last.into_iter().next().map(ts).transpose()
    }

    async fn count_sent_by_instance(
        &self,
        tenant_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, u64)>> {
        let rows = q::<DB>(
            "SELECT instance_id, COUNT(*) AS n FROM messages WHERE tenant_id = $1 \
             AND sent_at >= $2 AND instance_id IS NOT NULL GROUP BY instance_id",
        )
        .bind(tenant_id)
        .bind(to_millis(since))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(|r| Ok((DB::col(r, "instance_id")?, count(DB::col(r, "n")?)))).collect()
    }
}

#[async_trait]
impl<DB: Backend> LidStore for SqlStore<DB> {
    async fn learn_lid(&self, tenant_id: &str, lid: &str, phone_jid: &str) -> Result<()> {
        let _gate = DB::gate(self).await;
        let mut tx = self.begin().await?;
        q::<DB>(
            "INSERT INTO lid_map (tenant_id, lid, phone_jid, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, lid) DO UPDATE SET phone_jid = excluded.phone_jid, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant_id)
        .bind(lid)
        .bind(phone_jid)
        .bind(to_millis(crate::now_millis()))
        .execute(&mut tx)
        .await?;
        // A chat known by the LID alone becomes the phone's chat (merged into it when the
        // number has both); its received messages stay stored under the LID, and a chat's
        // history reads both addresses.
        q::<DB>(
            "INSERT INTO chats (instance_id, jid, tenant_id, lid, push_name, last_at, read_at) \
             SELECT instance_id, $1, tenant_id, $2, push_name, last_at, read_at FROM chats \
             WHERE tenant_id = $3 AND jid = $2 \
             ON CONFLICT (instance_id, jid) DO UPDATE SET lid = excluded.lid, \
             push_name = COALESCE(chats.push_name, excluded.push_name), \
             last_at = CASE WHEN excluded.last_at > chats.last_at \
                 THEN excluded.last_at ELSE chats.last_at END, \
             read_at = CASE WHEN excluded.read_at > chats.read_at \
                 THEN excluded.read_at ELSE chats.read_at END",
        )
        .bind(phone_jid)
        .bind(lid)
        .bind(tenant_id)
        .execute(&mut tx)
        .await?;
        q::<DB>("DELETE FROM chats WHERE tenant_id = $1 AND jid = $2")
            .bind(tenant_id)
            .bind(lid)
            .execute(&mut tx)
            .await?;
        q::<DB>("UPDATE chats SET lid = $1 WHERE tenant_id = $2 AND jid = $3")
            .bind(lid)
            .bind(tenant_id)
            .bind(phone_jid)
            .execute(&mut tx)
            .await?;
        tx.commit().await.map_err(super::db)?;
        Ok(())
    }

    async fn phone_for_lid(&self, tenant_id: &str, lid: &str) -> Result<Option<String>> {
        let row = q::<DB>("SELECT phone_jid FROM lid_map WHERE tenant_id = $1 AND lid = $2")
            .bind(tenant_id)
            .bind(lid)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        row.map(|r| DB::col_at(&r, 0)).transpose()
    }

    async fn lid_for_phone(&self, tenant_id: &str, phone_jid: &str) -> Result<Option<String>> {
        let row = q::<DB>(
            "SELECT lid FROM lid_map WHERE tenant_id = $1 AND phone_jid = $2 \
             ORDER BY updated_at DESC LIMIT 1",
        )
        .bind(tenant_id)
        .bind(phone_jid)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.map(|r| DB::col_at(&r, 0)).transpose()
    }

    async fn last_menu_to(&self, instance_id: &str, chat: &str) -> Result<Option<MessageRecord>> {
        self.one_message(
            "WHERE instance_id = $1 AND to_jid = $2 AND menu_json IS NOT NULL \
             AND status IN ('sent', 'delivered', 'read') ORDER BY created_at DESC LIMIT 1",
            &[instance_id, chat],
        )
        .await
    }
}
