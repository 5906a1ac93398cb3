//! The durable queues on PostgreSQL: outbound messages, LID mappings, webhooks and their
//! deliveries, alert targets. Unlike the SQLite store there is no group-commit writer: each
//! write is its own statement, and PostgreSQL's own group commit batches the WAL flushes of
//! concurrent transactions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder};

use super::{and, col, db, event_from_row, write_err, PgStore};
use crate::sqlite::{opt_ts, secret_aad, ts};
use crate::time::to_millis;
use crate::{
    AlertConfig, DeliveryAttempt, DeliveryRecord, DeliveryStatus, Event, LidStore, MessageFilter,
    MessageRecord, MessageStatus, MessageStore, MessageUpdate, Result, StoreError, WebhookRecord,
    WebhookStore,
};

pub(super) const MESSAGE_COLUMNS: &str =
    "id, tenant_id, wa_id, instance_id, forced, pool, to_jid, body, \
     mentions_json, menu_json, status, error, idempotency_key, created_at, updated_at, sent_at, \
     campaign_id, content_json";
const META_FANOUT_CURSOR: &str = "webhook_fanout_cursor";
const DELIVERY_COLUMNS: &str = "id, webhook_id, tenant_id, event_id, event_type, payload, status, \
     attempts, next_attempt_at, last_status, last_error, created_at, updated_at, delivered_at";
/// Most deliveries in one `INSERT` (14 parameters each; PostgreSQL allows 65,535).
const DELIVERIES_PER_INSERT: usize = 1000;

pub(super) fn message_from_row(row: &PgRow) -> Result<MessageRecord> {
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
        forced: col(row, "forced")?,
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

fn delivery_from_row(row: &PgRow) -> Result<DeliveryRecord> {
    let id: String = col(row, "id")?;
    let status: String = col(row, "status")?;
    let status = DeliveryStatus::parse(&status)
        .ok_or_else(|| StoreError::Database(format!("delivery {id}: unknown status {status}")))?;
    Ok(DeliveryRecord {
        webhook_id: col(row, "webhook_id")?,
        tenant_id: col(row, "tenant_id")?,
        event_id: col(row, "event_id")?,
        event_type: col(row, "event_type")?,
        payload: col(row, "payload")?,
        status,
        attempts: col::<i64>(row, "attempts")?.clamp(0, i64::from(u32::MAX)) as u32,
        next_attempt_at: ts(col(row, "next_attempt_at")?)?,
        last_status: col::<Option<i64>>(row, "last_status")?.and_then(|s| u16::try_from(s).ok()),
        last_error: col(row, "last_error")?,
        created_at: ts(col(row, "created_at")?)?,
        updated_at: ts(col(row, "updated_at")?)?,
        delivered_at: opt_ts(col(row, "delivered_at")?)?,
        id,
    })
}

/// A `SELECT … FROM messages` whose conditions are `(column, value)` equalities, then `tail`.
async fn query_messages(
    store: &PgStore,
    conditions: &[(&str, &str)],
    tail: &str,
) -> Result<Vec<MessageRecord>> {
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {MESSAGE_COLUMNS} FROM messages"));
    let mut first = true;
    for (column, value) in conditions {
        and(&mut qb, &mut first);
        qb.push(*column).push(" = ").push_bind(value.to_string());
    }
    qb.push(" ").push(tail);
    let rows = qb.build().fetch_all(&store.pool).await.map_err(db)?;
    rows.iter().map(message_from_row).collect()
}

#[async_trait]
impl MessageStore for PgStore {
    async fn insert_message(&self, m: &MessageRecord) -> Result<()> {
        let mentions =
            serde_json::to_string(&m.mentions).map_err(|e| StoreError::Database(e.to_string()))?;
        sqlx::query(&format!(
            "INSERT INTO messages ({MESSAGE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18)"
        ))
        .bind(&m.id)
        .bind(&m.tenant_id)
        .bind(&m.wa_id)
        .bind(&m.instance_id)
        .bind(m.forced)
        .bind(&m.pool)
        .bind(&m.to)
        .bind(&m.body)
        .bind(mentions)
        .bind(m.menu.as_ref().map(|v| v.to_string()))
        .bind(m.status.as_str())
        .bind(&m.error)
        .bind(&m.idempotency_key)
        .bind(to_millis(m.created_at))
        .bind(to_millis(m.updated_at))
        .bind(m.sent_at.map(to_millis))
        .bind(&m.campaign_id)
        .bind(m.content.as_ref().map(|v| v.to_string()))
        .execute(&self.pool)
        .await
        .map_err(|e| write_err(e, |_| "a message with this idempotency key".to_string()))?;
        Ok(())
    }

    async fn find_by_idempotency_key(
        &self,
        tenant_id: &str,
        key: &str,
    ) -> Result<Option<MessageRecord>> {
        Ok(query_messages(self, &[("tenant_id", tenant_id), ("idempotency_key", key)], "")
            .await?
            .pop())
    }

    async fn release_idempotency_key(&self, tenant_id: &str, key: &str) -> Result<()> {
        sqlx::query(
            "UPDATE messages SET idempotency_key = NULL \
             WHERE tenant_id = $1 AND idempotency_key = $2",
        )
        .bind(tenant_id)
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn get_message(&self, tenant_id: &str, id: &str) -> Result<Option<MessageRecord>> {
        Ok(query_messages(self, &[("tenant_id", tenant_id), ("id", id)], "").await?.pop())
    }

    async fn get_message_by_id(&self, id: &str) -> Result<Option<MessageRecord>> {
        Ok(query_messages(self, &[("id", id)], "").await?.pop())
    }

    async fn list_messages(
        &self,
        tenant_id: &str,
        f: &MessageFilter,
    ) -> Result<Vec<MessageRecord>> {
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant_id = "));
        qb.push_bind(tenant_id);
        if let Some(i) = &f.instance_id {
            qb.push(" AND instance_id = ").push_bind(i);
        }
        if let Some(s) = f.status {
            qb.push(" AND status = ").push_bind(s.as_str());
        }
        if let Some((at, id)) = &f.before {
            qb.push(" AND (created_at < ")
                .push_bind(*at)
                .push(" OR (created_at = ")
                .push_bind(*at)
                .push(" AND id < ")
                .push_bind(id)
                .push("))");
        }
        qb.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(i64::from(f.limit.max(1)));
        let rows = qb.build().fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(message_from_row).collect()
    }

    async fn update_message(&self, id: &str, u: &MessageUpdate) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE messages SET status = $1, instance_id = $2, error = $3, updated_at = $4, \
             sent_at = CASE WHEN $1 IN ('sent', 'delivered', 'read') \
                 THEN COALESCE(sent_at, $4) ELSE sent_at END \
             WHERE id = $5 AND NOT ( \
                 status IN ('sent', 'delivered', 'read') AND $1 IN ('sent', 'delivered', 'read') \
                 AND (CASE $1 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 ELSE 3 END) \
                  <= (CASE status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 ELSE 3 END))",
        )
        .bind(u.status.as_str())
        .bind(&u.instance_id)
        .bind(&u.error)
        .bind(to_millis(u.at))
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
        Ok(query_messages(self, &[("instance_id", instance_id), ("wa_id", wa_id)], "").await?.pop())
    }

    async fn find_message_by_wa_id_for_tenant(
        &self,
        tenant_id: &str,
        wa_id: &str,
    ) -> Result<Option<MessageRecord>> {
        Ok(query_messages(
            self,
            &[("tenant_id", tenant_id), ("wa_id", wa_id)],
            "ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .await?
        .pop())
    }

    async fn pending_messages(&self) -> Result<Vec<MessageRecord>> {
        query_messages(self, &[], "WHERE status IN ('queued', 'sending') ORDER BY created_at, id")
            .await
    }

    async fn count_sent_since(&self, instance_id: &str, since: DateTime<Utc>) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE instance_id = $1 AND sent_at >= $2",
        )
        .bind(instance_id)
        .bind(to_millis(since))
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(n.max(0) as u64)
    }

    async fn sent_times_since(
        &self,
        instance_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>> {
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT sent_at FROM messages WHERE instance_id = $1 AND sent_at >= $2 \
             ORDER BY sent_at",
        )
        .bind(instance_id)
        .bind(to_millis(since))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(ts).collect()
    }

    async fn count_sent_by_instance(
        &self,
        tenant_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT instance_id, COUNT(*) FROM messages WHERE tenant_id = $1 AND sent_at >= $2 \
             AND instance_id IS NOT NULL GROUP BY instance_id",
        )
        .bind(tenant_id)
        .bind(to_millis(since))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows.into_iter().map(|(i, n)| (i, n.max(0) as u64)).collect())
    }
}

#[async_trait]
impl LidStore for PgStore {
    async fn learn_lid(&self, lid: &str, phone_jid: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO lid_map (lid, phone_jid, updated_at) VALUES ($1, $2, $3) \
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
        sqlx::query_scalar("SELECT phone_jid FROM lid_map WHERE lid = $1")
            .bind(lid)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
    }

    async fn lid_for_phone(&self, phone_jid: &str) -> Result<Option<String>> {
        sqlx::query_scalar(
            "SELECT lid FROM lid_map WHERE phone_jid = $1 ORDER BY updated_at DESC LIMIT 1",
        )
        .bind(phone_jid)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)
    }

    async fn last_menu_to(&self, instance_id: &str, chat: &str) -> Result<Option<MessageRecord>> {
        Ok(query_messages(
            self,
            &[("instance_id", instance_id), ("to_jid", chat)],
            "AND menu_json IS NOT NULL AND status IN ('sent', 'delivered', 'read') \
             ORDER BY created_at DESC LIMIT 1",
        )
        .await?
        .pop())
    }
}

impl PgStore {
    fn webhook_from_row(&self, row: &PgRow) -> Result<WebhookRecord> {
        let id: String = col(row, "id")?;
        let events: String = col(row, "events_json")?;
        let events = serde_json::from_str(&events)
            .map_err(|e| StoreError::Database(format!("webhook {id}: bad events: {e}")))?;
        let sealed: Vec<u8> = col(row, "secret_sealed")?;
        let secret = self
            .sealer
            .open(&secret_aad(&id), &sealed)
            .map_err(|e| StoreError::Unsealable(format!("webhook {id}: {e}")))?;
        Ok(WebhookRecord {
            tenant_id: col(row, "tenant_id")?,
            url: col(row, "url")?,
            events,
            secret: String::from_utf8_lossy(&secret).into_owned(),
            created_at: ts(col(row, "created_at")?)?,
            id,
        })
    }

    /// `filter` uses `$1`, `$2`… for `binds`, in order.
    async fn query_webhooks(&self, filter: &str, binds: &[&str]) -> Result<Vec<WebhookRecord>> {
        let sql = format!(
            "SELECT id, tenant_id, url, events_json, secret_sealed, created_at FROM webhooks {filter}"
        );
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(*b);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(|r| self.webhook_from_row(r)).collect()
    }

    async fn query_deliveries(
        &self,
        filter: &str,
        binds: &[&str],
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries {filter} LIMIT {}",
            i64::from(limit)
        );
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(*b);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(delivery_from_row).collect()
    }
}

#[async_trait]
impl WebhookStore for PgStore {
    async fn create_webhook(&self, w: &WebhookRecord) -> Result<()> {
        let events =
            serde_json::to_string(&w.events).map_err(|e| StoreError::Database(e.to_string()))?;
        sqlx::query(
            "INSERT INTO webhooks (id, tenant_id, url, events_json, secret_sealed, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&w.id)
        .bind(&w.tenant_id)
        .bind(&w.url)
        .bind(events)
        .bind(self.sealer.seal(&secret_aad(&w.id), w.secret.as_bytes()))
        .bind(to_millis(w.created_at))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn list_webhooks(&self, tenant_id: &str) -> Result<Vec<WebhookRecord>> {
        self.query_webhooks("WHERE tenant_id = $1 ORDER BY created_at, id", &[tenant_id]).await
    }

    async fn all_webhooks(&self) -> Result<Vec<WebhookRecord>> {
        self.query_webhooks("ORDER BY created_at, id", &[]).await
    }

    async fn get_webhook(&self, tenant_id: &str, id: &str) -> Result<Option<WebhookRecord>> {
        Ok(self.query_webhooks("WHERE tenant_id = $1 AND id = $2", &[tenant_id, id]).await?.pop())
    }

    async fn delete_webhook(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn all_events_after(&self, after_id: i64, limit: u32) -> Result<Vec<Event>> {
        // Safe to page with `id > after_id`: appends are serialized, so ids commit in order
        // (see `append_events`).
        let rows = sqlx::query(
            "SELECT id, tenant_id, instance_id, kind, data, created_at FROM events \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn fanout_cursor(&self) -> Result<i64> {
        let v: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(META_FANOUT_CURSOR)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        match v {
            Some(bytes) => String::from_utf8_lossy(&bytes)
                .parse()
                .map_err(|_| StoreError::Database("the webhook fan-out cursor is damaged".into())),
            // The first start begins at the newest event: webhooks see what happens from now.
            None => {
                let max: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM events")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db)?;
                Ok(max.unwrap_or(0))
            }
        }
    }

    async fn enqueue_deliveries(&self, deliveries: &[DeliveryRecord], cursor: i64) -> Result<u64> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let mut stored = 0;
        for chunk in deliveries.chunks(DELIVERIES_PER_INSERT) {
            let mut qb: QueryBuilder<Postgres> =
                QueryBuilder::new(format!("INSERT INTO deliveries ({DELIVERY_COLUMNS}) "));
            qb.push_values(chunk, |mut row, d| {
                row.push_bind(&d.id)
                    .push_bind(&d.webhook_id)
                    .push_bind(&d.tenant_id)
                    .push_bind(d.event_id)
                    .push_bind(&d.event_type)
                    .push_bind(&d.payload)
                    .push_bind(d.status.as_str())
                    .push_bind(i64::from(d.attempts))
                    .push_bind(to_millis(d.next_attempt_at))
                    .push_bind(d.last_status.map(i64::from))
                    .push_bind(&d.last_error)
                    .push_bind(to_millis(d.created_at))
                    .push_bind(to_millis(d.updated_at))
                    .push_bind(d.delivered_at.map(to_millis));
            });
            // Like SQLite's INSERT OR IGNORE: a (webhook, event) pair that already has a
            // delivery (a replayed fan-out page) is left out.
            qb.push(" ON CONFLICT DO NOTHING");
            stored += qb.build().execute(&mut *tx).await.map_err(db)?.rows_affected();
        }
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(META_FANOUT_CURSOR)
        .bind(cursor.to_string().into_bytes())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(stored)
    }

    async fn due_deliveries(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<DeliveryRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries \
             WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT $2"
        ))
        .bind(to_millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>> {
        let t: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        opt_ts(t)
    }

    async fn record_attempt(&self, id: &str, a: &DeliveryAttempt) -> Result<()> {
        // Outcomes recorded at once run on separate connections and may commit in any order;
        // `attempts` only grows, so an older attempt's outcome never overwrites a newer one.
        sqlx::query(
            "UPDATE deliveries SET status = $1, attempts = $2, next_attempt_at = $3, \
             last_status = $4, last_error = $5, updated_at = $6, \
             delivered_at = CASE WHEN $1 = 'delivered' THEN $6 ELSE delivered_at END \
             WHERE id = $7 AND attempts <= $2",
        )
        .bind(a.status.as_str())
        .bind(i64::from(a.attempts))
        .bind(to_millis(a.next_attempt_at))
        .bind(a.last_status.map(i64::from))
        .bind(&a.last_error)
        .bind(to_millis(a.at))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn list_deliveries(&self, webhook_id: &str, limit: u32) -> Result<Vec<DeliveryRecord>> {
        self.query_deliveries(
            "WHERE webhook_id = $1 ORDER BY created_at DESC, id DESC",
            &[webhook_id],
            limit,
        )
        .await
    }

    async fn get_delivery(&self, webhook_id: &str, id: &str) -> Result<Option<DeliveryRecord>> {
        Ok(self
            .query_deliveries("WHERE webhook_id = $1 AND id = $2", &[webhook_id, id], 1)
            .await?
            .pop())
    }

    async fn requeue_delivery(&self, id: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $1, updated_at = $1 \
             WHERE id = $2",
        )
        .bind(to_millis(now))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn put_alert(&self, a: &AlertConfig) -> Result<()> {
        let on = serde_json::to_string(&a.on).map_err(|e| StoreError::Database(e.to_string()))?;
        sqlx::query(
            "INSERT INTO alerts (tenant_id, url, format, on_json, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id) DO UPDATE SET url = excluded.url, format = excluded.format, \
             on_json = excluded.on_json, updated_at = excluded.updated_at",
        )
        .bind(&a.tenant_id)
        .bind(&a.url)
        .bind(&a.format)
        .bind(on)
        .bind(to_millis(a.updated_at))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn get_alert(&self, tenant_id: &str) -> Result<Option<AlertConfig>> {
        let row: Option<(String, String, String, i64)> = sqlx::query_as(
            "SELECT url, format, on_json, updated_at FROM alerts WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(|(url, format, on, at)| {
            Ok(AlertConfig {
                tenant_id: tenant_id.to_string(),
                url,
                format,
                on: serde_json::from_str(&on).map_err(|e| StoreError::Database(e.to_string()))?,
                updated_at: ts(at)?,
            })
        })
        .transpose()
    }

    async fn delete_alert(&self, tenant_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM alerts WHERE tenant_id = $1")
            .bind(tenant_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }
}
