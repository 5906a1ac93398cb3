//! Secrets of the messages we sent or received, kept so later add-ons referencing them (poll
//! votes, reactions, edits, bot replies) can be decrypted.

use std::collections::HashMap;

use async_trait::async_trait;
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{
    merge_msg_secret_expiry, merge_msg_secret_message_ts, MsgSecretEntry, MsgSecretStore,
};

use super::codec::SecretRow;
use super::{delete, keys, put, SessionBackend};

#[async_trait]
impl MsgSecretStore for SessionBackend {
    /// An upsert that merges with the stored row (and with earlier rows of the same batch):
    /// the later deadline wins, "never" (0) beats any deadline, and a known message time is
    /// never replaced by an unknown one. One read per entry, under the write lock so that a
    /// concurrent batch cannot interleave; history sync sends batches of a conversation's
    /// messages, so this costs one indexed read per message, then a single write.
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        let stored = entries.len();
        let _guard = self.lock().await;
        let mut merged: HashMap<String, SecretRow> = HashMap::with_capacity(entries.len());
        // Keys in first-seen order, so the write is deterministic.
        let mut order = Vec::with_capacity(entries.len());
        for entry in entries {
            let key = keys::msg_secret(&entry.chat, &entry.sender, &entry.msg_id);
            let existing = match merged.get(&key) {
                Some(row) => Some(*row),
                None => match self.get(&key).await? {
                    Some(value) => Some(SecretRow::decode(&key, &value)?),
                    None => None,
                },
            };
            let row = match existing {
                Some(old) => SecretRow {
                    secret: entry.secret,
                    expires_at: merge_msg_secret_expiry(old.expires_at, entry.expires_at),
                    message_ts: merge_msg_secret_message_ts(old.message_ts, entry.message_ts),
                },
                None => SecretRow {
                    secret: entry.secret,
                    expires_at: entry.expires_at,
                    message_ts: entry.message_ts,
                },
            };
            if merged.insert(key.clone(), row).is_none() {
                order.push(key);
            }
        }
        let writes = order
            .into_iter()
            .map(|key| {
                let value = merged[&key].encode();
                put(key, value)
            })
            .collect();
        self.apply(writes).await?;
        Ok(stored)
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self.get_msg_secret_with_ts(chat, sender, msg_id).await?.map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        let key = keys::msg_secret(chat, sender, msg_id);
        match self.get(&key).await? {
            Some(value) => {
                let row = SecretRow::decode(&key, &value)?;
                Ok(Some((row.secret.to_vec(), row.message_ts)))
            }
            None => Ok(None),
        }
    }

    /// Rows with a deadline at or before `cutoff_timestamp` go; "never" (0) rows stay. Reads the
    /// whole namespace (48 bytes a row) to see the deadlines; the library runs it from its
    /// keepalive sweep.
    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        let _guard = self.lock().await;
        let mut writes = Vec::new();
        for (key, value) in self.scan(keys::MSG_SECRETS).await? {
            let row = SecretRow::decode(&key, &value)?;
            if row.expires_at != 0 && row.expires_at <= cutoff_timestamp {
                writes.push(delete(key));
            }
        }
        let deleted = writes.len() as u32;
        self.apply(writes).await?;
        Ok(deleted)
    }
}
