//! [`EventLog`]: the append-only event log. Reads are shared; an append is per database
//! ([`Backend::append_events`]): each has its own way of committing ids in order.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{count, cut_millis, json_err, q, ts, values, Backend, SqlStore};
use crate::time::{to_millis, truncate_to_millis};
use std::collections::HashSet;

use crate::{Event, EventLog, InboundRecord, KeyedEvent, NewEvent, Result, StoreError};

pub(crate) const EVENT_COLUMNS: &str = "id, tenant_id, instance_id, kind, data, created_at";

/// One event to append and its dedupe key, as the per-database appends take them.
pub(crate) type Appending<'a> = (&'a NewEvent, Option<&'a str>);

/// Most keys looked up in one statement (well under either database's bind limit).
const KEYS_PER_LOOKUP: usize = 1000;

/// Which of `keys` are already on an event of the log, read on `c` (the append's own
/// transaction, after it took the append lock: no other append can add one meanwhile).
pub(crate) async fn existing_keys<DB: Backend>(
    c: &mut DB::Connection,
    keys: &[&str],
) -> Result<HashSet<String>> {
    let mut found = HashSet::new();
    for chunk in keys.chunks(KEYS_PER_LOOKUP) {
        let sql = format!(
            "SELECT dedupe_key FROM events \
             WHERE dedupe_key IS NOT NULL AND dedupe_key IN (VALUES {})",
            values::<DB>(chunk.len(), 1)
        );
        let mut query = q::<DB>(&sql);
        for key in chunk {
            query = query.bind(*key);
        }
        found.extend(query.scalars::<String>(c).await?);
    }
    Ok(found)
}

/// Which events of a batch to write: not those whose key the log already has (`existing`),
/// nor a later one with the key of an earlier one in the batch. Pure.
pub(crate) fn keep_once(events: &[Appending<'_>], existing: &HashSet<String>) -> Vec<bool> {
    let mut seen = HashSet::new();
    events
        .iter()
        .map(|(_, key)| match key {
            None => true,
            Some(k) => !existing.contains(*k) && seen.insert(*k),
        })
        .collect()
}

/// The keys of a batch, for [`existing_keys`].
pub(crate) fn keys_of<'a>(events: &[Appending<'a>]) -> Vec<&'a str> {
    events.iter().filter_map(|(_, k)| *k).collect()
}

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

/// The events as stored (data as JSON text), with their keys, to be bound in an append.
pub(crate) fn encode<'a>(
    events: impl IntoIterator<Item = Appending<'a>>,
) -> Result<Vec<(Appending<'a>, String)>> {
    events
        .into_iter()
        .map(|(e, key)| Ok(((e, key), serde_json::to_string(&e.data).map_err(json_err)?)))
        .collect()
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
        let appending: Vec<Appending<'_>> = events.iter().map(|e| (e, None)).collect();
        let written = DB::append_events(self, &appending, inbound).await?;
        // Without keys nothing is skipped: every slot holds its event.
        Ok(written.into_iter().flatten().collect())
    }

    async fn append_events_once(
        &self,
        events: &[KeyedEvent],
        inbound: &[InboundRecord],
    ) -> Result<Vec<Option<Event>>> {
        let appending: Vec<Appending<'_>> =
            events.iter().map(|e| (&e.event, e.dedupe_key.as_deref())).collect();
        DB::append_events(self, &appending, inbound).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_already_logged_or_earlier_in_the_batch_is_skipped_and_unkeyed_events_never_are() {
        let e = NewEvent {
            tenant_id: "t1".into(),
            instance_id: None,
            kind: "message.received".into(),
            data: serde_json::json!({}),
            created_at: chrono::Utc::now(),
        };
        let batch = [
            (&e, Some("a")),
            (&e, None),
            (&e, Some("b")),
            (&e, Some("a")),
            (&e, None),
            (&e, Some("c")),
        ];
        let existing: HashSet<String> = ["c".to_string()].into();
        assert_eq!(keep_once(&batch, &existing), [true, true, true, false, true, false]);
        assert_eq!(keys_of(&batch), ["a", "b", "a", "c"]);
    }
}
