//! The two message buffers of the protocol store: sent messages kept for retry receipts, and
//! decrypted inbound messages awaiting the durability hook. Both carry their write time, which
//! the periodic expiry sweeps compare against a cutoff.

use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{PendingInboundKey, PendingInboundRow};
use whatsapp_rust::wacore::time::now_secs;

use super::super::{codec, delete, keys, put, SessionBackend};

impl SessionBackend {
    /// Unlike wacore's in-memory backend there is no cap on the number of rows: the rows are on
    /// disk, and the library's keepalive sweep (`delete_expired_sent_messages`) bounds them.
    pub(super) async fn store_sent(&self, chat: &str, id: &str, payload: &[u8]) -> Result<()> {
        let _guard = self.lock().await;
        self.put(keys::sent_message(chat, id), codec::stamped(now_secs(), payload)).await
    }

    /// An atomic take: the lock keeps two retry receipts from both getting the payload.
    pub(super) async fn take_sent(&self, chat: &str, id: &str) -> Result<Option<Vec<u8>>> {
        let _guard = self.lock().await;
        let key = keys::sent_message(chat, id);
        let Some(value) = self.get(&key).await? else { return Ok(None) };
        let payload = codec::unstamp(&key, &value)?.1.to_vec();
        self.delete(key).await?;
        Ok(Some(payload))
    }

    /// Rows written before `cutoff` go. Reads every buffered payload to learn its time (the
    /// store has no index on values); the sweep runs periodically, and the buffer only holds
    /// the retry window's worth of messages.
    pub(super) async fn expire_sent(&self, cutoff: i64) -> Result<u32> {
        self.expire(keys::SENT, cutoff).await
    }

    pub(super) async fn store_pending(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        let _guard = self.lock().await;
        let now = now_secs();
        let writes = rows
            .iter()
            .map(|r| {
                put(keys::pending_inbound(r.chat, r.sender, r.id), codec::stamped(now, r.message))
            })
            .collect();
        self.apply(writes).await
    }

    pub(super) async fn get_pending(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        let key = keys::pending_inbound(chat, sender, id);
        match self.get(&key).await? {
            Some(value) => Ok(Some(codec::unstamp(&key, &value)?.1.to_vec())),
            None => Ok(None),
        }
    }

    pub(super) async fn delete_pending(&self, rows: &[PendingInboundKey<'_>]) -> Result<()> {
        let _guard = self.lock().await;
        let writes =
            rows.iter().map(|k| delete(keys::pending_inbound(k.chat, k.sender, k.id))).collect();
        self.apply(writes).await
    }

    /// Same cost as [`Self::expire_sent`]; the buffer holds only messages whose hook has not
    /// committed yet, normally a handful.
    pub(super) async fn expire_pending(&self, cutoff: i64) -> Result<u32> {
        self.expire(keys::PENDING_INBOUND, cutoff).await
    }

    /// Deletes, in one write, the stamped rows of `namespace` written before `cutoff`.
    async fn expire(&self, namespace: &str, cutoff: i64) -> Result<u32> {
        let _guard = self.lock().await;
        let mut writes = Vec::new();
        for (key, value) in self.scan(namespace).await? {
            if codec::unstamp(&key, &value)?.0 < cutoff {
                writes.push(delete(key));
            }
        }
        let deleted = writes.len() as u32;
        self.apply(writes).await?;
        Ok(deleted)
    }
}
