//! The index of received messages on PostgreSQL (see [`crate::InboundStore`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;

use super::{col, db, PgStore};
use crate::sqlite::ts;
use crate::time::{to_millis, truncate_to_millis};
use crate::{InboundRecord, InboundStore, Result, StoreError};

const COLUMNS: &str =
    "instance_id, wa_id, tenant_id, chat, sender, body, kind, media_json, received_at";

fn inbound_from_row(row: &PgRow) -> Result<InboundRecord> {
    let wa_id: String = col(row, "wa_id")?;
    let media = col::<Option<String>>(row, "media_json")?
        .map(|m| {
            serde_json::from_str(&m).map_err(|e| {
                StoreError::Database(format!("received message {wa_id}: bad media: {e}"))
            })
        })
        .transpose()?;
    Ok(InboundRecord {
        tenant_id: col(row, "tenant_id")?,
        instance_id: col(row, "instance_id")?,
        chat: col(row, "chat")?,
        sender: col(row, "sender")?,
        text: col(row, "body")?,
        kind: col(row, "kind")?,
        media,
        received_at: ts(col(row, "received_at")?)?,
        wa_id,
    })
}

/// Inserts `rs` on `conn` (a pooled connection or an open transaction); repeats are ignored.
pub(crate) async fn insert_inbound(
    conn: &mut sqlx::PgConnection,
    rs: &[InboundRecord],
) -> Result<()> {
    // Nine binds a row: chunks stay well under either database's bind limit.
    for chunk in rs.chunks(1000) {
        let mut qb: sqlx::QueryBuilder<sqlx::Postgres> =
            sqlx::QueryBuilder::new(format!("INSERT INTO inbound ({COLUMNS}) "));
        qb.push_values(chunk, |mut row, r| {
            row.push_bind(r.instance_id.clone())
                .push_bind(r.wa_id.clone())
                .push_bind(r.tenant_id.clone())
                .push_bind(r.chat.clone())
                .push_bind(r.sender.clone())
                .push_bind(r.text.clone())
                .push_bind(r.kind.clone())
                .push_bind(r.media.as_ref().map(|v| v.to_string()))
                .push_bind(to_millis(r.received_at));
        });
        qb.push(" ON CONFLICT (instance_id, wa_id) DO NOTHING");
        qb.build().execute(&mut *conn).await.map_err(db)?;
    }
    Ok(())
}

#[async_trait]
impl InboundStore for PgStore {
    async fn record_inbound(&self, rs: &[InboundRecord]) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        insert_inbound(&mut conn, rs).await
    }

    async fn find_inbound(&self, tenant_id: &str, wa_id: &str) -> Result<Option<InboundRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM inbound WHERE tenant_id = $1 AND wa_id = $2 \
             ORDER BY received_at DESC, instance_id DESC LIMIT 1"
        ))
        .bind(tenant_id)
        .bind(wa_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(inbound_from_row).transpose()
    }

    async fn prune_inbound(&self, before: DateTime<Utc>) -> Result<u64> {
        // Stored times are whole milliseconds: a cut with a fraction rounds up.
        let mut cut = to_millis(before);
        if truncate_to_millis(before) != before {
            cut += 1;
        }
        let done = sqlx::query("DELETE FROM inbound WHERE received_at < $1")
            .bind(cut)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}
