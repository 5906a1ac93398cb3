//! [`InboundStore`]: the index of received messages.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{cut_millis, q, ts, values, Backend, SqlStore};
use crate::time::to_millis;
use crate::{InboundRecord, InboundStore, Result, StoreError};

pub(crate) const INBOUND_COLUMNS: &str = "instance_id, wa_id, tenant_id, chat, sender, body, \
     kind, media_json, received_at, chat_jid, sender_jid, sender_lid, push_name, reply_to";
/// Fourteen binds a row: chunks stay well under either database's bind limit.
const PER_INSERT: usize = 1000;

pub(crate) fn inbound_from_row<DB: Backend>(row: &DB::Row) -> Result<InboundRecord> {
    let wa_id: String = DB::col(row, "wa_id")?;
    let media = DB::col::<Option<String>>(row, "media_json")?
        .map(|m| {
            serde_json::from_str(&m).map_err(|e| {
                StoreError::Database(format!("received message {wa_id}: bad media: {e}"))
            })
        })
        .transpose()?;
    Ok(InboundRecord {
        tenant_id: DB::col(row, "tenant_id")?,
        instance_id: DB::col(row, "instance_id")?,
        chat: DB::col(row, "chat")?,
        sender: DB::col(row, "sender")?,
        text: DB::col(row, "body")?,
        kind: DB::col(row, "kind")?,
        media,
        received_at: ts(DB::col(row, "received_at")?)?,
        chat_jid: DB::col(row, "chat_jid")?,
        sender_jid: DB::col(row, "sender_jid")?,
        sender_lid: DB::col(row, "sender_lid")?,
        push_name: DB::col(row, "push_name")?,
        reply_to: DB::col(row, "reply_to")?,
        wa_id,
    })
}

/// Inserts `rs` on `c` (a pooled connection or an open transaction); repeats are ignored.
/// Their chats follow in the same statement (the `inbound_into_chats` trigger).
pub(crate) async fn insert_inbound<DB: Backend>(
    c: &mut DB::Connection,
    rs: &[InboundRecord],
) -> Result<()> {
    for chunk in rs.chunks(PER_INSERT) {
        let sql = format!(
            "INSERT INTO inbound ({INBOUND_COLUMNS}) VALUES {} ON CONFLICT (instance_id, wa_id) DO NOTHING",
            values::<DB>(chunk.len(), 14)
        );
        let mut query = q::<DB>(&sql);
        for r in chunk {
            query = query
                .bind(&r.instance_id)
                .bind(&r.wa_id)
                .bind(&r.tenant_id)
                .bind(&r.chat)
                .bind(&r.sender)
                .bind(&r.text)
                .bind(&r.kind)
                .bind(r.media.as_ref().map(|v| v.to_string()))
                .bind(to_millis(r.received_at))
                .bind(&r.chat_jid)
                .bind(&r.sender_jid)
                .bind(&r.sender_lid)
                .bind(&r.push_name)
                .bind(&r.reply_to);
        }
        query.execute(c).await?;
    }
    Ok(())
}

#[async_trait]
impl<DB: Backend> InboundStore for SqlStore<DB> {
    async fn record_inbound(&self, rs: &[InboundRecord]) -> Result<()> {
        let _gate = DB::gate(self).await;
        insert_inbound::<DB>(&mut *self.conn().await?, rs).await
    }

    async fn find_inbound(&self, tenant_id: &str, wa_id: &str) -> Result<Option<InboundRecord>> {
        let sql = format!(
            "SELECT {INBOUND_COLUMNS} FROM inbound WHERE tenant_id = $1 AND wa_id = $2 \
             AND kind <> 'reaction' ORDER BY received_at DESC, instance_id DESC LIMIT 1"
        );
        let row = q::<DB>(&sql)
            .bind(tenant_id)
            .bind(wa_id)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        row.as_ref().map(inbound_from_row::<DB>).transpose()
    }

    async fn prune_inbound(&self, before: DateTime<Utc>) -> Result<u64> {
        q::<DB>("DELETE FROM inbound WHERE received_at < $1")
            .bind(cut_millis(before))
            .execute(&mut *self.conn().await?)
            .await
    }
}
