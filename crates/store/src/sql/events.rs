//! [`EventLog`]: the append-only event log. Reads are shared; an append is per database
//! ([`Backend::append_events`]): each has its own way of committing ids in order.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{count, cut_millis, json_err, q, ts, Backend, SqlStore};
use crate::time::{to_millis, truncate_to_millis};
use crate::{Event, EventLog, InboundRecord, NewEvent, Result, StoreError};

pub(crate) const EVENT_COLUMNS: &str = "id, tenant_id, instance_id, kind, data, created_at";

pub(crate) fn event_from_row<DB: Backend>(row: &DB::Row) -> Result<Event> {
    let id: i64 = DB::col(row, "id")?;
    let data: String = DB::col(row, "data")?;
    let data = serde_json::from_str(&data)
        .map_err(|e| StoreError::Database(format!("event {id}: bad data: {e}")))?;
    Ok(Event {
        id,
        tenant_id: DB::col(row, "tenant_id")?,
        instance_id: DB::col(row, "instance_id")?,
        kind: DB::col(row, "kind")?,
        data,
        created_at: ts(DB::col(row, "created_at")?)?,
    })
}

/// The events as stored (data as JSON text), to be bound in an append.
pub(crate) fn encode(events: &[NewEvent]) -> Result<Vec<(&NewEvent, String)>> {
    events.iter().map(|e| Ok((e, serde_json::to_string(&e.data).map_err(json_err)?))).collect()
}

/// `e` as the log returns it once it has id `id` (times as stored: whole milliseconds).
pub(crate) fn appended(e: &NewEvent, id: i64) -> Event {
    Event {
        id,
        tenant_id: e.tenant_id.clone(),
        instance_id: e.instance_id.clone(),
        kind: e.kind.clone(),
        data: e.data.clone(),
        created_at: truncate_to_millis(e.created_at),
    }
}

#[async_trait]
impl<DB: Backend> EventLog for SqlStore<DB> {
    async fn append_events_indexed(
        &self,
        events: &[NewEvent],
        inbound: &[InboundRecord],
    ) -> Result<Vec<Event>> {
        DB::append_events(self, events, inbound).await
    }

    async fn events_after(&self, tenant_id: &str, after_id: i64, limit: u32) -> Result<Vec<Event>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events \
             WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        );
        let rows = q::<DB>(&sql)
            .bind(tenant_id)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.conn().await?)
            .await?;
        rows.iter().map(event_from_row::<DB>).collect()
    }

    async fn count_events_by_instance(
        &self,
        tenant_id: &str,
        kind: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, u64)>> {
        let rows = q::<DB>(
            "SELECT instance_id, COUNT(*) AS n FROM events WHERE tenant_id = $1 AND kind = $2 \
             AND created_at >= $3 AND instance_id IS NOT NULL GROUP BY instance_id",
        )
        .bind(tenant_id)
        .bind(kind)
        .bind(to_millis(since))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(|r| Ok((DB::col(r, "instance_id")?, count(DB::col(r, "n")?)))).collect()
    }

    async fn latest_event_id(&self, tenant_id: &str) -> Result<i64> {
        let id: Option<i64> = q::<DB>("SELECT MAX(id) FROM events WHERE tenant_id = $1")
            .bind(tenant_id)
            .scalar(&mut *self.conn().await?)
            .await?;
        Ok(id.unwrap_or(0))
    }

    async fn latest_event_id_all(&self) -> Result<i64> {
        let id: Option<i64> =
            q::<DB>("SELECT MAX(id) FROM events").scalar(&mut *self.conn().await?).await?;
        Ok(id.unwrap_or(0))
    }

    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64> {
        q::<DB>("DELETE FROM events WHERE created_at < $1")
            .bind(cut_millis(before))
            .execute(&mut *self.conn().await?)
            .await
    }
}
