//! [`CampaignStore`]: campaigns, their recipients, and the counts of their messages.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{count, db, jid_col, json_err, opt_ts, q, ts, values, Backend, SqlStore};
use crate::time::to_millis;
use crate::{
    CampaignCount, CampaignRecipient, CampaignRecord, CampaignStatus, CampaignStore, MessageStatus,
    Result, StoreError,
};

const COLUMNS: &str = "id, tenant_id, name, template, pool, schedule_json, status, recipients, \
     next_index, skipped, created_at, updated_at, ended_at, idempotency_key";
/// Most recipients in one `INSERT` (6 parameters each; SQLite allows 32,766 per statement).
const RECIPIENTS_PER_INSERT: usize = 1000;

fn count_u32(v: i64, what: &str, id: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| StoreError::Database(format!("campaign {id}: bad {what} {v}")))
}

fn campaign_from_row<DB: Backend>(row: &DB::Row) -> Result<CampaignRecord> {
    let id: String = DB::col(row, "id")?;
    let status: String = DB::col(row, "status")?;
    let status = CampaignStatus::parse(&status)
        .ok_or_else(|| StoreError::Database(format!("campaign {id}: unknown status `{status}`")))?;
    let schedule = DB::col::<Option<String>>(row, "schedule_json")?
        .map(|s| {
            serde_json::from_str(&s)
                .map_err(|e| StoreError::Database(format!("campaign {id}: bad schedule: {e}")))
        })
        .transpose()?;
    Ok(CampaignRecord {
        tenant_id: DB::col(row, "tenant_id")?,
        name: DB::col(row, "name")?,
        template: DB::col(row, "template")?,
        pool: DB::col(row, "pool")?,
        schedule,
        status,
        recipients: count_u32(DB::col(row, "recipients")?, "recipients", &id)?,
        next_index: count_u32(DB::col(row, "next_index")?, "next_index", &id)?,
        skipped: count_u32(DB::col(row, "skipped")?, "skipped", &id)?,
        created_at: ts(DB::col(row, "created_at")?)?,
        updated_at: ts(DB::col(row, "updated_at")?)?,
        ended_at: opt_ts(DB::col(row, "ended_at")?)?,
        idempotency_key: DB::col(row, "idempotency_key")?,
        id,
    })
}

fn recipient_from_row<DB: Backend>(campaign_id: &str, row: &DB::Row) -> Result<CampaignRecipient> {
    let index: i64 = DB::col(row, "idx")?;
    let fields: String = DB::col(row, "fields_json")?;
    let fields = serde_json::from_str(&fields).map_err(|e| {
        StoreError::Database(format!("campaign {campaign_id}: recipient {index}: bad fields: {e}"))
    })?;
    Ok(CampaignRecipient {
        index: count_u32(index, "recipient index", campaign_id)?,
        to: jid_col(DB::col(row, "to_jid")?, "to_jid")?,
        fields,
        send_at: super::opt_ts(DB::col(row, "send_at")?)?,
        ttl_seconds: DB::col::<Option<i64>>(row, "ttl_seconds")?
            .map(|t| count_u32(t, "ttl_seconds", campaign_id))
            .transpose()?,
    })
}

impl<DB: Backend> SqlStore<DB> {
    /// `filter` uses `$1`, `$2`… for `binds`, in order.
    async fn query_campaigns(&self, filter: &str, binds: &[&str]) -> Result<Vec<CampaignRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM campaigns {filter}");
        let mut query = q::<DB>(&sql);
        for b in binds {
            query = query.bind(*b);
        }
        let rows = query.fetch_all(&mut *self.conn().await?).await?;
        rows.iter().map(campaign_from_row::<DB>).collect()
    }
}

#[async_trait]
impl<DB: Backend> CampaignStore for SqlStore<DB> {
    async fn create_campaign(
        &self,
        c: &CampaignRecord,
        recipients: &[CampaignRecipient],
    ) -> Result<()> {
        let mut fields = Vec::with_capacity(recipients.len());
        for r in recipients {
            fields.push(serde_json::to_string(&r.fields).map_err(json_err)?);
        }
        let mut tx = self.begin().await?;
        let sql = format!("INSERT INTO campaigns ({COLUMNS}) VALUES {}", values::<DB>(1, 14));
        q::<DB>(&sql)
            .bind(&c.id)
            .bind(&c.tenant_id)
            .bind(&c.name)
            .bind(&c.template)
            .bind(&c.pool)
            .bind(c.schedule.as_ref().map(|v| v.to_string()))
            .bind(c.status.as_str())
            .bind(i64::from(c.recipients))
            .bind(i64::from(c.next_index))
            .bind(i64::from(c.skipped))
            .bind(to_millis(c.created_at))
            .bind(to_millis(c.updated_at))
            .bind(c.ended_at.map(to_millis))
            .bind(&c.idempotency_key)
            .write(&mut tx, |detail| {
                if detail.contains("idempotency_key") {
                    "a campaign with this idempotency key already exists".to_string()
                } else {
                    format!("a campaign with id {} already exists", c.id)
                }
            })
            .await?;
        for (chunk, fields) in
            recipients.chunks(RECIPIENTS_PER_INSERT).zip(fields.chunks(RECIPIENTS_PER_INSERT))
        {
            let sql = format!(
                "INSERT INTO campaign_recipients \
                 (campaign_id, idx, to_jid, fields_json, send_at, ttl_seconds) VALUES {}",
                values::<DB>(chunk.len(), 6)
            );
            let mut query = q::<DB>(&sql);
            for (r, f) in chunk.iter().zip(fields) {
                query = query
                    .bind(&c.id)
                    .bind(i64::from(r.index))
                    .bind(r.to.to_string())
                    .bind(f)
                    .bind(r.send_at.map(to_millis))
                    .bind(r.ttl_seconds.map(i64::from));
            }
            query
                .write(&mut tx, |_| format!("campaign {}: two recipients share an index", c.id))
                .await?;
        }
        // Dropping the transaction on any error above rolls everything back.
        tx.commit().await.map_err(db)
    }

    async fn get_campaign(&self, tenant_id: &str, id: &str) -> Result<Option<CampaignRecord>> {
        Ok(self.query_campaigns("WHERE tenant_id = $1 AND id = $2", &[tenant_id, id]).await?.pop())
    }

    async fn find_campaign_by_key(
        &self,
        tenant_id: &str,
        key: &str,
    ) -> Result<Option<CampaignRecord>> {
        let filter = "WHERE tenant_id = $1 AND idempotency_key = $2";
        Ok(self.query_campaigns(filter, &[tenant_id, key]).await?.pop())
    }

    async fn list_campaigns(&self, tenant_id: &str) -> Result<Vec<CampaignRecord>> {
        self.query_campaigns("WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC", &[tenant_id])
            .await
    }

    async fn active_campaigns(&self) -> Result<Vec<CampaignRecord>> {
        self.query_campaigns("WHERE status IN ('running', 'paused') ORDER BY created_at, id", &[])
            .await
    }

    async fn set_campaign_status(
        &self,
        id: &str,
        from: &[CampaignStatus],
        to: CampaignStatus,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        if from.is_empty() {
            return Ok(false);
        }
        let ended = if to.is_ended() { ", ended_at = $2" } else { "" };
        let list: Vec<String> = (0..from.len()).map(|i| format!("${}", i + 4)).collect();
        let sql = format!(
            "UPDATE campaigns SET status = $1, updated_at = $2{ended} \
             WHERE id = $3 AND status IN ({})",
            list.join(", ")
        );
        let mut query = q::<DB>(&sql).bind(to.as_str()).bind(to_millis(at)).bind(id);
        for s in from {
            query = query.bind(s.as_str());
        }
        Ok(query.execute(&mut *self.conn().await?).await? > 0)
    }

    async fn campaign_recipients(
        &self,
        campaign_id: &str,
        from: u32,
        limit: u32,
    ) -> Result<Vec<CampaignRecipient>> {
        let rows = q::<DB>(
            "SELECT idx, to_jid, fields_json, send_at, ttl_seconds FROM campaign_recipients \
             WHERE campaign_id = $1 AND idx >= $2 ORDER BY idx LIMIT $3",
        )
        .bind(campaign_id)
        .bind(i64::from(from))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(|r| recipient_from_row::<DB>(campaign_id, r)).collect()
    }

    async fn advance_campaign(
        &self,
        campaign_id: &str,
        next_index: u32,
        at: DateTime<Utc>,
    ) -> Result<()> {
        q::<DB>(
            "UPDATE campaigns SET next_index = $1, updated_at = $2 \
             WHERE id = $3 AND next_index < $1",
        )
        .bind(i64::from(next_index))
        .bind(to_millis(at))
        .bind(campaign_id)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn campaign_message_counts(&self, campaign_id: &str) -> Result<Vec<CampaignCount>> {
        let rows = q::<DB>(
            "SELECT instance_id, status, \
             CAST(CASE WHEN status = 'failed' AND error = 'not_on_whatsapp' THEN 1 ELSE 0 END \
                 AS BIGINT) AS skipped, \
             COUNT(*) AS n FROM messages WHERE campaign_id = $1 \
             GROUP BY instance_id, status, \
             CASE WHEN status = 'failed' AND error = 'not_on_whatsapp' THEN 1 ELSE 0 END",
        )
        .bind(campaign_id)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter()
            .map(|r| {
                let status: String = DB::col(r, "status")?;
                let status = MessageStatus::parse(&status).ok_or_else(|| {
                    StoreError::Database(format!(
                        "campaign {campaign_id}: a message has unknown status `{status}`"
                    ))
                })?;
                Ok(CampaignCount {
                    instance_id: DB::col(r, "instance_id")?,
                    status,
                    skipped: DB::col::<i64>(r, "skipped")? == 1,
                    count: count(DB::col(r, "n")?),
                })
            })
            .collect()
    }

    async fn fail_queued_campaign_messages(
        &self,
        campaign_id: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        q::<DB>(
            "UPDATE messages SET status = 'failed', error = $1, updated_at = $2 \
             WHERE campaign_id = $3 AND status = 'queued' AND instance_id IS NULL RETURNING id",
        )
        .bind(error)
        .bind(to_millis(at))
        .bind(campaign_id)
        .scalars(&mut *self.conn().await?)
        .await
    }
}
