//! Webhooks and their durable deliveries on SQLite.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Sqlite};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::{col, db, event_from_row, opt_ts, ts, SqliteStore};
use crate::time::to_millis;
use crate::{
    AlertConfig, DeliveryAttempt, DeliveryRecord, DeliveryStatus, Event, Result, StoreError,
    WebhookRecord, WebhookStore,
};

const META_FANOUT_CURSOR: &str = "webhook_fanout_cursor";
const DELIVERY_COLUMNS: &str = "id, webhook_id, tenant_id, event_id, event_type, payload, status, \
     attempts, next_attempt_at, last_status, last_error, created_at, updated_at, delivered_at";

pub(crate) fn secret_aad(id: &str) -> Vec<u8> {
    format!("webhook:{id}").into_bytes()
}

fn delivery_from_row(row: &SqliteRow) -> Result<DeliveryRecord> {
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

/// Most deliveries in one `INSERT` (14 parameters each; SQLite allows 32,766 per statement).
const DELIVERIES_PER_INSERT: usize = 500;
/// Most attempt outcomes committed in one transaction.
const MAX_OUTCOMES: usize = 512;

type PendingOutcome = (String, DeliveryAttempt, oneshot::Sender<Result<()>>);

/// Group commit of attempt outcomes, as `messages::MessageWriter` does for accepted messages:
/// the outcomes of every attempt that finished while the previous batch was being written go
/// into one transaction (one statement, one fsync). Each caller still returns only once its
/// outcome is on disk: the delivery worker must not forget a delivery the receiver accepted.
#[derive(Debug, Clone)]
pub(super) struct AttemptWriter {
    tx: mpsc::Sender<PendingOutcome>,
}

impl AttemptWriter {
    pub(super) fn spawn(pool: SqlitePool, write_gate: Arc<Mutex<()>>) -> Self {
        let (tx, mut rx) = mpsc::channel::<PendingOutcome>(4 * MAX_OUTCOMES);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_OUTCOMES);
            while rx.recv_many(&mut batch, MAX_OUTCOMES).await > 0 {
                let result = {
                    let _gate = write_gate.lock().await;
                    write_outcomes(&pool, &batch).await
                };
                for (_, _, reply) in batch.drain(..) {
                    let _ = reply.send(result.as_ref().map(|_| ()).map_err(|e| {
                        StoreError::Database(format!("recording a webhook attempt failed: {e}"))
                    }));
                }
            }
        });
        AttemptWriter { tx }
    }

    async fn record(&self, id: String, attempt: DeliveryAttempt) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        let closed = || StoreError::Database("the store is closed".into());
        self.tx.send((id, attempt, reply)).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

/// Applies a batch of outcomes in one transaction: one `UPDATE … FROM (VALUES …)` when every
/// delivery appears once (the usual case: a delivery has one attempt under way at a time),
/// else row by row in order.
async fn write_outcomes(pool: &SqlitePool, batch: &[PendingOutcome]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let distinct = batch.iter().map(|(id, _, _)| id.as_str()).collect::<HashSet<_>>().len();
    if distinct == batch.len() {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "WITH v (id, status, attempts, next_at, last_status, last_error, at) AS (",
        );
        qb.push_values(batch, |mut row, (id, a, _)| {
            row.push_bind(id.as_str())
                .push_bind(a.status.as_str())
                .push_bind(i64::from(a.attempts))
                .push_bind(to_millis(a.next_attempt_at))
                .push_bind(a.last_status.map(i64::from))
                .push_bind(a.last_error.as_deref())
                .push_bind(to_millis(a.at));
        });
        qb.push(
            ") UPDATE deliveries SET status = v.status, attempts = v.attempts, \
             next_attempt_at = v.next_at, last_status = v.last_status, \
             last_error = v.last_error, updated_at = v.at, \
             delivered_at = CASE WHEN v.status = 'delivered' THEN v.at \
                 ELSE deliveries.delivered_at END \
             FROM v WHERE deliveries.id = v.id",
        );
        qb.build().execute(&mut *tx).await?;
    } else {
        for (id, a, _) in batch {
            sqlx::query(
                "UPDATE deliveries SET status = ?1, attempts = ?2, next_attempt_at = ?3, \
                 last_status = ?4, last_error = ?5, updated_at = ?6, \
                 delivered_at = CASE WHEN ?1 = 'delivered' THEN ?6 ELSE delivered_at END \
                 WHERE id = ?7",
            )
            .bind(a.status.as_str())
            .bind(i64::from(a.attempts))
            .bind(to_millis(a.next_attempt_at))
            .bind(a.last_status.map(i64::from))
            .bind(&a.last_error)
            .bind(to_millis(a.at))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await
}

impl SqliteStore {
    fn webhook_from_row(&self, row: &SqliteRow) -> Result<WebhookRecord> {
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
        binds: Vec<String>,
    ) -> Result<Vec<DeliveryRecord>> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries {filter}");
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(delivery_from_row).collect()
    }
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_webhook(&self, w: &WebhookRecord) -> Result<()> {
        let events =
            serde_json::to_string(&w.events).map_err(|e| StoreError::Database(e.to_string()))?;
        sqlx::query(
            "INSERT INTO webhooks (id, tenant_id, url, events_json, secret_sealed, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
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
        self.query_webhooks("WHERE tenant_id = ? ORDER BY created_at, id", &[tenant_id]).await
    }

    async fn all_webhooks(&self) -> Result<Vec<WebhookRecord>> {
        self.query_webhooks("ORDER BY created_at, id", &[]).await
    }

    async fn get_webhook(&self, tenant_id: &str, id: &str) -> Result<Option<WebhookRecord>> {
        Ok(self.query_webhooks("WHERE tenant_id = ? AND id = ?", &[tenant_id, id]).await?.pop())
    }

    async fn delete_webhook(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM webhooks WHERE tenant_id = ? AND id = ?")
            .bind(tenant_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn all_events_after(&self, after_id: i64, limit: u32) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, instance_id, kind, data, created_at FROM events \
             WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn fanout_cursor(&self) -> Result<i64> {
        let v: Option<(Vec<u8>,)> = sqlx::query_as("SELECT value FROM meta WHERE key = ?")
            .bind(META_FANOUT_CURSOR)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        match v {
            Some((bytes,)) => String::from_utf8_lossy(&bytes)
                .parse()
                .map_err(|_| StoreError::Database("the webhook fan-out cursor is damaged".into())),
            // The first start begins at the newest event: webhooks see what happens from now.
            None => {
                let (max,): (Option<i64>,) = sqlx::query_as("SELECT MAX(id) FROM events")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db)?;
                Ok(max.unwrap_or(0))
            }
        }
    }

    async fn enqueue_deliveries(&self, deliveries: &[DeliveryRecord], cursor: i64) -> Result<u64> {
        let _gate = self.write_gate.lock().await;
        let mut tx = self.pool.begin().await.map_err(db)?;
        let mut stored = 0;
        // One statement per chunk rather than per row: the fan-out writes a page of events'
        // deliveries at a time, and each statement is a round trip to SQLite's thread.
        for chunk in deliveries.chunks(DELIVERIES_PER_INSERT) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
                "INSERT OR IGNORE INTO deliveries ({DELIVERY_COLUMNS}) "
            ));
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
            stored += qb.build().execute(&mut *tx).await.map_err(db)?.rows_affected();
        }
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(META_FANOUT_CURSOR)
            .bind(cursor.to_string().into_bytes())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(stored)
    }

    async fn due_deliveries(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<DeliveryRecord>> {
        self.query_deliveries(
            &format!(
                "WHERE status = 'pending' AND next_attempt_at <= CAST(? AS INTEGER) \
                 ORDER BY next_attempt_at, id LIMIT {limit}"
            ),
            vec![to_millis(now).to_string()],
        )
        .await
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>> {
        let (t,): (Option<i64>,) =
            sqlx::query_as("SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        opt_ts(t)
    }

    async fn record_attempt(&self, id: &str, a: &DeliveryAttempt) -> Result<()> {
        self.attempts.record(id.to_string(), a.clone()).await
    }

    async fn list_deliveries(&self, webhook_id: &str, limit: u32) -> Result<Vec<DeliveryRecord>> {
        self.query_deliveries(
            &format!("WHERE webhook_id = ? ORDER BY created_at DESC, id DESC LIMIT {limit}"),
            vec![webhook_id.into()],
        )
        .await
    }

    async fn get_delivery(&self, webhook_id: &str, id: &str) -> Result<Option<DeliveryRecord>> {
        Ok(self
            .query_deliveries("WHERE webhook_id = ? AND id = ?", vec![webhook_id.into(), id.into()])
            .await?
            .pop())
    }

    async fn requeue_delivery(&self, id: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ? WHERE id = ?",
        )
        .bind(to_millis(now))
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
            "INSERT INTO alerts (tenant_id, url, format, on_json, updated_at) VALUES (?, ?, ?, ?, ?) \
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
            "SELECT url, format, on_json, updated_at FROM alerts WHERE tenant_id = ?",
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
        let done = sqlx::query("DELETE FROM alerts WHERE tenant_id = ?")
            .bind(tenant_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }
}
