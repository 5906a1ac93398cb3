//! Campaigns on PostgreSQL: the same rules as the SQLite store (`sqlite/campaigns.rs`); the
//! recipients of a campaign go in with one `INSERT … SELECT FROM UNNEST(…)` per chunk.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder};

use super::{col, db, write_err, PgStore};
use crate::sqlite::{
    counts_from_rows, encode_fields, encode_schedule, opt_ts, recipient_from_parts, ts,
};
use crate::time::to_millis;
use crate::{
    CampaignCount, CampaignRecipient, CampaignRecord, CampaignStatus, CampaignStore, Result,
    StoreError,
};

const COLUMNS: &str = "id, tenant_id, name, template, pool, schedule_json, status, recipients, \
     next_index, skipped, created_at, updated_at, ended_at, idempotency_key";

/// Recipients per `INSERT` (arrays of this many values; any size works, chunks keep each
/// statement's memory bounded).
const RECIPIENTS_PER_INSERT: usize = 10_000;

fn count_u32(v: i64, what: &str, id: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| StoreError::Database(format!("campaign {id}: bad {what} {v}")))
}

fn campaign_from_row(row: &PgRow) -> Result<CampaignRecord> {
    let id: String = col(row, "id")?;
    let status: String = col(row, "status")?;
    let status = CampaignStatus::parse(&status)
        .ok_or_else(|| StoreError::Database(format!("campaign {id}: unknown status `{status}`")))?;
    let schedule = col::<Option<String>>(row, "schedule_json")?
        .map(|s| {
            serde_json::from_str(&s)
                .map_err(|e| StoreError::Database(format!("campaign {id}: bad schedule: {e}")))
        })
        .transpose()?;
    Ok(CampaignRecord {
        tenant_id: col(row, "tenant_id")?,
        name: col(row, "name")?,
        template: col(row, "template")?,
        pool: col(row, "pool")?,
        schedule,
        status,
        recipients: count_u32(col(row, "recipients")?, "recipients", &id)?,
        next_index: count_u32(col(row, "next_index")?, "next_index", &id)?,
        skipped: count_u32(col(row, "skipped")?, "skipped", &id)?,
        created_at: ts(col(row, "created_at")?)?,
        updated_at: ts(col(row, "updated_at")?)?,
        ended_at: opt_ts(col(row, "ended_at")?)?,
        idempotency_key: col(row, "idempotency_key")?,
        id,
    })
}

#[async_trait]
impl CampaignStore for PgStore {
    async fn create_campaign(
        &self,
        c: &CampaignRecord,
        recipients: &[CampaignRecipient],
    ) -> Result<()> {
        let conflict = |e| {
            write_err(e, |constraint| {
                if constraint.contains("idempotency_key") {
                    "a campaign with this idempotency key already exists".to_string()
                } else {
                    format!("a campaign with id {} already exists", c.id)
                }
            })
        };
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(&format!(
            "INSERT INTO campaigns ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(&c.id)
        .bind(&c.tenant_id)
        .bind(&c.name)
        .bind(&c.template)
        .bind(&c.pool)
        .bind(encode_schedule(c))
        .bind(c.status.as_str())
        .bind(i64::from(c.recipients))
        .bind(i64::from(c.next_index))
        .bind(i64::from(c.skipped))
        .bind(to_millis(c.created_at))
        .bind(to_millis(c.updated_at))
        .bind(c.ended_at.map(to_millis))
        .bind(&c.idempotency_key)
        .execute(&mut *tx)
        .await
        .map_err(conflict)?;
        for chunk in recipients.chunks(RECIPIENTS_PER_INSERT) {
            let idx: Vec<i64> = chunk.iter().map(|r| i64::from(r.index)).collect();
            let to: Vec<&str> = chunk.iter().map(|r| r.to.as_str()).collect();
            let fields = chunk.iter().map(encode_fields).collect::<Result<Vec<String>>>()?;
            sqlx::query(
                "INSERT INTO campaign_recipients (campaign_id, idx, to_jid, fields_json) \
                 SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], $4::text[])",
            )
            .bind(&c.id)
            .bind(&idx)
            .bind(&to)
            .bind(&fields)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                write_err(e, |_| format!("campaign {}: two recipients share an index", c.id))
            })?;
        }
        // Dropping the transaction on any error above rolls everything back.
        tx.commit().await.map_err(db)
    }

    async fn get_campaign(&self, tenant_id: &str, id: &str) -> Result<Option<CampaignRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM campaigns WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(campaign_from_row).transpose()
    }

    async fn find_campaign_by_key(
        &self,
        tenant_id: &str,
        key: &str,
    ) -> Result<Option<CampaignRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM campaigns WHERE tenant_id = $1 AND idempotency_key = $2"
        ))
        .bind(tenant_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(campaign_from_row).transpose()
    }

    async fn list_campaigns(&self, tenant_id: &str) -> Result<Vec<CampaignRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM campaigns WHERE tenant_id = $1 \
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(campaign_from_row).collect()
    }

    async fn active_campaigns(&self) -> Result<Vec<CampaignRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM campaigns WHERE status IN ('running', 'paused') \
             ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(campaign_from_row).collect()
    }

    async fn set_campaign_status(
        &self,
        id: &str,
        from: &[CampaignStatus],
        to: CampaignStatus,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("UPDATE campaigns SET status = ");
        qb.push_bind(to.as_str()).push(", updated_at = ").push_bind(to_millis(at));
        if to.is_ended() {
            qb.push(", ended_at = ").push_bind(to_millis(at));
        }
        qb.push(" WHERE id = ").push_bind(id).push(" AND status = ANY(").push_bind(from).push(")");
        let done = qb.build().execute(&self.pool).await.map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn campaign_recipients(
        &self,
        campaign_id: &str,
        from: u32,
        limit: u32,
    ) -> Result<Vec<CampaignRecipient>> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT idx, to_jid, fields_json FROM campaign_recipients \
             WHERE campaign_id = $1 AND idx >= $2 ORDER BY idx LIMIT $3",
        )
        .bind(campaign_id)
        .bind(i64::from(from))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|(idx, to, fields)| recipient_from_parts(campaign_id, idx, to, &fields))
            .collect()
    }

    async fn advance_campaign(
        &self,
        campaign_id: &str,
        next_index: u32,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE campaigns SET next_index = $1, updated_at = $2 \
             WHERE id = $3 AND next_index < $1",
        )
        .bind(i64::from(next_index))
        .bind(to_millis(at))
        .bind(campaign_id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn campaign_message_counts(&self, campaign_id: &str) -> Result<Vec<CampaignCount>> {
        let rows: Vec<(Option<String>, String, i64)> = sqlx::query_as(
            "SELECT instance_id, status, COUNT(*) FROM messages WHERE campaign_id = $1 \
             GROUP BY instance_id, status",
        )
        .bind(campaign_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        counts_from_rows(campaign_id, rows)
    }

    async fn fail_queued_campaign_messages(
        &self,
        campaign_id: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "UPDATE messages SET status = 'failed', error = $1, updated_at = $2 \
             WHERE campaign_id = $3 AND status = 'queued' AND instance_id IS NULL RETURNING id",
        )
        .bind(error)
        .bind(to_millis(at))
        .bind(campaign_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)
    }
}
