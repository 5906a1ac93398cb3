//! [`AlertStore`]: alert deliveries and the alert fan-out's cursor.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::meta::{log_cursor, set_log_cursor};
use super::{cut_millis, db, opt_ts, q, ts, values, Backend, SqlStore};
use crate::time::to_millis;
use crate::{
    AlertAttempt, AlertDeliveryFilter, AlertDeliveryRecord, AlertStatus, AlertStore, Result,
    StoreError,
};

const META_ALERT_CURSOR: &str = "alert_fanout_cursor";
const ALERT_COLUMNS: &str = "id, tenant_id, instance_id, event_id, kind, text, payload, status, \
     attempts, next_attempt_at, last_status, last_error, created_at, updated_at, delivered_at";
/// Most alerts in one `INSERT` (15 parameters each; SQLite allows 32,766 per statement).
const ALERTS_PER_INSERT: usize = 500;

fn alert_from_row<DB: Backend>(row: &DB::Row) -> Result<AlertDeliveryRecord> {
    let id: String = DB::col(row, "id")?;
    let status: String = DB::col(row, "status")?;
    let status = AlertStatus::parse(&status)
        .ok_or_else(|| StoreError::Database(format!("alert {id}: unknown status {status}")))?;
    Ok(AlertDeliveryRecord {
        tenant_id: DB::col(row, "tenant_id")?,
        instance_id: DB::col(row, "instance_id")?,
        event_id: DB::col(row, "event_id")?,
        kind: DB::col(row, "kind")?,
        text: DB::col(row, "text")?,
        payload: DB::col(row, "payload")?,
        status,
        attempts: DB::col::<i64>(row, "attempts")?.clamp(0, i64::from(u32::MAX)) as u32,
        next_attempt_at: ts(DB::col(row, "next_attempt_at")?)?,
        last_status: DB::col::<Option<i64>>(row, "last_status")?
            .and_then(|s| u16::try_from(s).ok()),
        last_error: DB::col(row, "last_error")?,
        created_at: ts(DB::col(row, "created_at")?)?,
        updated_at: ts(DB::col(row, "updated_at")?)?,
        delivered_at: opt_ts(DB::col(row, "delivered_at")?)?,
        id,
    })
}

#[async_trait]
impl<DB: Backend> AlertStore for SqlStore<DB> {
    async fn alert_cursor(&self) -> Result<i64> {
        log_cursor::<DB>(&mut *self.conn().await?, META_ALERT_CURSOR).await
    }

    async fn enqueue_alerts(&self, alerts: &[AlertDeliveryRecord], cursor: i64) -> Result<u64> {
        let _gate = DB::gate(self).await;
        let mut tx = self.begin().await?;
        let mut stored = 0;
        for chunk in alerts.chunks(ALERTS_PER_INSERT) {
            // An event that already has its alert (a replayed page) is left out.
            let sql = format!(
                "INSERT INTO alert_deliveries ({ALERT_COLUMNS}) VALUES {} ON CONFLICT DO NOTHING",
                values::<DB>(chunk.len(), 15)
            );
            let mut query = q::<DB>(&sql);
            for a in chunk {
                query = query
                    .bind(&a.id)
                    .bind(&a.tenant_id)
                    .bind(&a.instance_id)
                    .bind(a.event_id)
                    .bind(&a.kind)
                    .bind(&a.text)
                    .bind(&a.payload)
                    .bind(a.status.as_str())
                    .bind(i64::from(a.attempts))
                    .bind(to_millis(a.next_attempt_at))
                    .bind(a.last_status.map(i64::from))
                    .bind(&a.last_error)
                    .bind(to_millis(a.created_at))
                    .bind(to_millis(a.updated_at))
                    .bind(a.delivered_at.map(to_millis));
            }
            stored += query.execute(&mut tx).await?;
        }
        set_log_cursor::<DB>(&mut tx, META_ALERT_CURSOR, cursor).await?;
        tx.commit().await.map_err(db)?;
        Ok(stored)
    }

    async fn due_alerts(
        &self,
        now: DateTime<Utc>,
        per_tenant: u32,
        limit: u32,
    ) -> Result<Vec<AlertDeliveryRecord>> {
        // Numbered by turn within each tenant, then ordered by turn: every tenant's oldest due
        // alert before any tenant's second. Alerts are few (a number's bans, logouts and
        // health drops), so one window over the due rows is cheap.
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM (SELECT {ALERT_COLUMNS}, ROW_NUMBER() OVER \
             (PARTITION BY tenant_id ORDER BY next_attempt_at, id) AS turn \
             FROM alert_deliveries WHERE status = 'pending' AND next_attempt_at <= $1) AS due \
             WHERE turn <= $2 ORDER BY turn, next_attempt_at, id LIMIT $3"
        );
        let rows = q::<DB>(&sql)
            .bind(to_millis(now))
            .bind(i64::from(per_tenant))
            .bind(i64::from(limit))
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.iter().map(alert_from_row::<DB>).collect()
    }

    async fn get_alert_delivery(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<AlertDeliveryRecord>> {
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alert_deliveries WHERE tenant_id = $1 AND id = $2"
        );
        let row =
            q::<DB>(&sql).bind(tenant_id).bind(id).fetch_optional(&mut *self.conn().await?).await?;
        row.as_ref().map(alert_from_row::<DB>).transpose()
    }

    async fn list_alert_deliveries(
        &self,
        tenant_id: &str,
        f: &AlertDeliveryFilter,
    ) -> Result<Vec<AlertDeliveryRecord>> {
        let mut sql = format!("SELECT {ALERT_COLUMNS} FROM alert_deliveries WHERE tenant_id = $1");
        let mut n = 1;
        let mut next = || {
            n += 1;
            n
        };
        if f.status.is_some() {
            sql.push_str(&format!(" AND status = ${}", next()));
        }
        if f.before.is_some() {
            sql.push_str(&format!(" AND id < ${}", next()));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", next()));
        let mut query = q::<DB>(&sql).bind(tenant_id);
        if let Some(s) = f.status {
            query = query.bind(s.as_str());
        }
        if let Some(before) = &f.before {
            query = query.bind(before);
        }
        let rows = query.bind(i64::from(f.limit)).fetch_all(&mut *self.conn().await?).await?;
        rows.iter().map(alert_from_row::<DB>).collect()
    }

    async fn record_alert_attempt(&self, id: &str, a: &AlertAttempt) -> Result<()> {
        let _gate = DB::gate(self).await;
        q::<DB>(
            "UPDATE alert_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, \
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
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn requeue_alert(&self, tenant_id: &str, id: &str, now: DateTime<Utc>) -> Result<bool> {
        let _gate = DB::gate(self).await;
        let n = q::<DB>(
            "UPDATE alert_deliveries SET status = 'pending', next_attempt_at = $1, \
             updated_at = $1 WHERE tenant_id = $2 AND id = $3",
        )
        .bind(to_millis(now))
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(n > 0)
    }

    async fn prune_alert_deliveries(&self, before: DateTime<Utc>) -> Result<u64> {
        let _gate = DB::gate(self).await;
        q::<DB>("DELETE FROM alert_deliveries WHERE status <> 'pending' AND updated_at < $1")
            .bind(cut_millis(before))
            .execute(&mut *self.conn().await?)
            .await
    }
}
