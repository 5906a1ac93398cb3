//! [`InstanceStore`]: instances (numbers), their state and settings; proxy URLs sealed.

use async_trait::async_trait;
use bzapper_core::{InstanceState, LimitsPatch, ProxyUrl, ReadReceipts, Reason, Status};
use chrono::{DateTime, Utc};

use super::{count, db, json_err, opt_ts, q, ts, Backend, SqlStore};
use crate::time::to_millis;
use crate::{InstanceKey, InstanceRecord, InstanceStore, Result, StateChange, StoreError};

pub(crate) const INSTANCE_COLUMNS: &str = "id, tenant_id, name, pool, status, reason, detail, \
     phone, jid, lid, warming_days, proxy_sealed, limits_json, first_connected_at, \
     connected_at, created_at, health_score, quiet_hours_json, rewarm_from, read_receipts, \
     reject_calls, reject_call_message, always_online";

fn proxy_aad(instance_id: &str) -> Vec<u8> {
    [b"proxy:", instance_id.as_bytes()].concat()
}

/// What a unique violation on `instances` means (`detail` names the constraint or columns).
fn instance_conflict(detail: &str, rec: &InstanceRecord) -> String {
    if detail.contains("instances.name") || detail == "instances_name_unique" {
        format!("an instance named `{}` already exists", rec.name)
    } else {
        format!("an instance with id {} already exists", rec.id)
    }
}

fn quiet_hours_json(rec: &InstanceRecord) -> Result<Option<String>> {
    rec.quiet_hours.as_ref().map(serde_json::to_string).transpose().map_err(json_err)
}

impl<DB: Backend> SqlStore<DB> {
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
        let proxy = std::str::from_utf8(&plain).ok().and_then(|s| ProxyUrl::parse(s).ok());
        if proxy.is_none() {
            tracing::warn!(instance_id, "the stored proxy is not a valid proxy URL; ignoring it");
        }
        proxy
    }

    pub(crate) fn instance_from_row(&self, row: &DB::Row) -> Result<InstanceRecord> {
        let id: String = DB::col(row, "id")?;
        let corrupt = |what: String| StoreError::Database(format!("instance {id}: {what}"));
        let status: String = DB::col(row, "status")?;
        let status =
            Status::parse(&status).ok_or_else(|| corrupt(format!("unknown status `{status}`")))?;
        let reason = DB::col::<Option<String>>(row, "reason")?
            .map(|r| Reason::parse(&r).ok_or_else(|| corrupt(format!("unknown reason `{r}`"))))
            .transpose()?;
        let warming_days: i64 = DB::col(row, "warming_days")?;
        let warming_days = u32::try_from(warming_days)
            .map_err(|_| corrupt(format!("bad warming_days {warming_days}")))?;
        let limits: String = DB::col(row, "limits_json")?;
        let limits: LimitsPatch =
            serde_json::from_str(&limits).map_err(|e| corrupt(format!("bad limits: {e}")))?;
        let quiet_hours = DB::col::<Option<String>>(row, "quiet_hours_json")?
            .map(|j| serde_json::from_str(&j).map_err(|e| corrupt(format!("bad quiet hours: {e}"))))
            .transpose()?;
        let proxy = DB::col::<Option<Vec<u8>>>(row, "proxy_sealed")?
            .and_then(|blob| self.open_proxy(&id, &blob));
        let read_receipts: String = DB::col(row, "read_receipts")?;
        let read_receipts = ReadReceipts::parse(&read_receipts).map_err(corrupt)?;
        Ok(InstanceRecord {
            tenant_id: DB::col(row, "tenant_id")?,
            name: DB::col(row, "name")?,
            pool: DB::col(row, "pool")?,
            state: InstanceState { status, reason, detail: DB::col(row, "detail")? },
            phone: DB::col(row, "phone")?,
            jid: DB::col(row, "jid")?,
            lid: DB::col(row, "lid")?,
            warming_days,
            proxy,
            limits,
            first_connected_at: opt_ts(DB::col(row, "first_connected_at")?)?,
            connected_at: opt_ts(DB::col(row, "connected_at")?)?,
            created_at: ts(DB::col(row, "created_at")?)?,
            health_score: u8::try_from(DB::col::<i64>(row, "health_score")?.clamp(0, 100))
                .unwrap_or(100),
            quiet_hours,
            rewarm_from: opt_ts(DB::col(row, "rewarm_from")?)?,
            read_receipts,
            reject_calls: DB::col(row, "reject_calls")?,
            reject_call_message: DB::col(row, "reject_call_message")?,
            always_online: DB::col(row, "always_online")?,
            id,
        })
    }

    /// `filter` uses `$1`, `$2`… for `binds`, in order.
    async fn query_instances(&self, filter: &str, binds: &[&str]) -> Result<Vec<InstanceRecord>> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances {filter}");
        let mut query = q::<DB>(&sql);
        for b in binds {
            query = query.bind(*b);
        }
        let rows = query.fetch_all(&mut *self.conn().await?).await?;
        rows.iter().map(|r| self.instance_from_row(r)).collect()
    }
}

#[async_trait]
impl<DB: Backend> InstanceStore for SqlStore<DB> {
    async fn create_instance(&self, rec: &InstanceRecord) -> Result<()> {
        let limits = serde_json::to_string(&rec.limits).map_err(json_err)?;
        q::<DB>(
            "INSERT INTO instances (id, tenant_id, name, pool, status, reason, detail, phone, jid, \
             lid, warming_days, proxy_sealed, limits_json, first_connected_at, connected_at, \
             created_at, health_score, quiet_hours_json, rewarm_from, read_receipts, \
             reject_calls, reject_call_message, always_online) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19, $20, $21, $22, $23)",
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
        .bind(quiet_hours_json(rec)?)
        .bind(rec.rewarm_from.map(to_millis))
        .bind(rec.read_receipts.as_str())
        .bind(rec.reject_calls)
        .bind(&rec.reject_call_message)
        .bind(rec.always_online)
        .write(&mut *self.conn().await?, |d| instance_conflict(d, rec))
        .await?;
        Ok(())
    }

    async fn get_instance(&self, tenant_id: &str, id: &str) -> Result<Option<InstanceRecord>> {
        let mut v =
            self.query_instances("WHERE tenant_id = $1 AND id = $2", &[tenant_id, id]).await?;
        Ok(v.pop())
    }

    async fn get_instance_by_id(&self, id: &str) -> Result<Option<InstanceRecord>> {
        Ok(self.query_instances("WHERE id = $1", &[id]).await?.pop())
    }

    async fn list_instances(&self, tenant_id: &str) -> Result<Vec<InstanceRecord>> {
        self.query_instances("WHERE tenant_id = $1 ORDER BY created_at, id", &[tenant_id]).await
    }

    async fn count_instances(&self, tenant_id: &str) -> Result<u64> {
        let n: i64 = q::<DB>("SELECT COUNT(*) FROM instances WHERE tenant_id = $1")
            .bind(tenant_id)
            .scalar(&mut *self.conn().await?)
            .await?;
        Ok(count(n))
    }

    async fn list_instances_page(
        &self,
        tenant_id: &str,
        after: Option<&InstanceKey>,
        limit: u32,
    ) -> Result<Vec<InstanceRecord>> {
        let (at, id) = after.map_or((i64::MIN, ""), |k| (to_millis(k.created_at), k.id.as_str()));
        let sql = format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances WHERE tenant_id = $1 \
             AND (created_at > $2 OR (created_at = $2 AND id > $3)) \
             ORDER BY created_at, id LIMIT $4"
        );
        let rows = q::<DB>(&sql)
            .bind(tenant_id)
            .bind(at)
            .bind(id)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.iter().map(|r| self.instance_from_row(r)).collect()
    }

    async fn list_all_instances(&self) -> Result<Vec<InstanceRecord>> {
        self.query_instances("ORDER BY created_at, id", &[]).await
    }

    async fn update_instance_settings(&self, rec: &InstanceRecord) -> Result<bool> {
        let limits = serde_json::to_string(&rec.limits).map_err(json_err)?;
        let n = q::<DB>(
            "UPDATE instances SET name = $1, pool = $2, warming_days = $3, proxy_sealed = $4, \
             limits_json = $5, quiet_hours_json = $6, read_receipts = $7, reject_calls = $8, \
             reject_call_message = $9, always_online = $10 WHERE id = $11 AND tenant_id = $12",
        )
        .bind(&rec.name)
        .bind(&rec.pool)
        .bind(i64::from(rec.warming_days))
        .bind(self.seal_proxy(&rec.id, rec.proxy.as_ref()))
        .bind(limits)
        .bind(quiet_hours_json(rec)?)
        .bind(rec.read_receipts.as_str())
        .bind(rec.reject_calls)
        .bind(&rec.reject_call_message)
        .bind(rec.always_online)
        .bind(&rec.id)
        .bind(&rec.tenant_id)
        .write(&mut *self.conn().await?, |d| instance_conflict(d, rec))
        .await?;
        Ok(n > 0)
    }

    async fn update_instance_state(&self, id: &str, change: &StateChange) -> Result<()> {
        // Through the SQLite write gate: a number's state change (a ban leaving rotation)
        // must not wait in SQLite's busy handler behind the event pipeline's writes.
        let _gate = DB::gate(self).await;
        write_state::<DB>(&mut *self.conn().await?, id, change).await
    }

    async fn update_instance_states(&self, changes: &[(String, StateChange)]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let _gate = DB::gate(self).await;
        let mut tx = self.begin().await?;
        for (id, change) in changes {
            write_state::<DB>(&mut tx, id, change).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn delete_instance(&self, tenant_id: &str, id: &str) -> Result<bool> {
        // session_values and received messages (inbound) follow by ON DELETE CASCADE.
        let n = q::<DB>("DELETE FROM instances WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(n > 0)
    }

    async fn set_instance_health(&self, id: &str, score: u8) -> Result<()> {
        // Under the write gate: one of these follows sends, beside the group commits.
        let _gate = DB::gate(self).await;
        q::<DB>("UPDATE instances SET health_score = $1 WHERE id = $2")
            .bind(i64::from(score.min(100)))
            .bind(id)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    async fn ban_expiry(&self, id: &str) -> Result<Option<DateTime<Utc>>> {
        let row = q::<DB>("SELECT ban_until FROM instances WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        match row {
            Some(row) => opt_ts(DB::col(&row, "ban_until")?),
            None => Ok(None),
        }
    }

    async fn ban_expiries(&self) -> Result<Vec<(String, DateTime<Utc>)>> {
        let rows = q::<DB>(
            "SELECT id, ban_until FROM instances WHERE ban_until IS NOT NULL \
             ORDER BY ban_until, id",
        )
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(|r| Ok((DB::col(r, "id")?, ts(DB::col(r, "ban_until")?)?))).collect()
    }

    async fn clear_ban_expiry(&self, id: &str) -> Result<bool> {
        let _gate = DB::gate(self).await;
        let n = q::<DB>(
            "UPDATE instances SET ban_until = NULL WHERE id = $1 AND ban_until IS NOT NULL",
        )
        .bind(id)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(n > 0)
    }

    async fn set_rewarm_from(&self, id: &str, from: Option<DateTime<Utc>>) -> Result<bool> {
        let _gate = DB::gate(self).await;
        let n = q::<DB>("UPDATE instances SET rewarm_from = $1 WHERE id = $2")
            .bind(from.map(to_millis))
            .bind(id)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(n > 0)
    }
}

/// One number's state change on `c` (a pooled connection or an open transaction).
async fn write_state<DB: Backend>(
    c: &mut DB::Connection,
    id: &str,
    change: &StateChange,
) -> Result<()> {
    // Same rules as `apply_state_change`: identity is set on pairing and wiped on logout
    // (the wipe wins when both come together); `first_connected_at` is set only once.
    let (touch_identity, phone, jid, lid) = if change.clear_identity {
        (true, None, None, None)
    } else if let Some(i) = &change.identity {
        (true, Some(i.phone.as_str()), Some(i.jid.as_str()), i.lid.as_deref())
    } else {
        (false, None, None, None)
    };
    q::<DB>(
        "UPDATE instances SET status = $1, reason = $2, detail = $3, \
         phone = CASE WHEN $4 THEN $5 ELSE phone END, \
         jid = CASE WHEN $4 THEN $6 ELSE jid END, \
         lid = CASE WHEN $4 THEN $7 ELSE lid END, \
         connected_at = COALESCE($8, connected_at), \
         first_connected_at = COALESCE(first_connected_at, $8), \
         ban_until = $10 \
         WHERE id = $9",
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
    .bind(change.ban_until.map(to_millis))
    .execute(c)
    .await?;
    Ok(())
}
