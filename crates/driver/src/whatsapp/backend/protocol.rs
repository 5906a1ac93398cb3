//! WhatsApp protocol bookkeeping: sender-key distribution per group device, LID ↔ phone
//! mappings, retry base keys, device lists, group metadata and trusted-contact tokens. The
//! message buffers of the same trait (sent messages, pending inbound) live in `buffers`.

use async_trait::async_trait;
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{
    DeviceListRecord, LidPnMappingEntry, PendingInboundKey, PendingInboundRow, ProtocolStore,
    TcTokenEntry,
};

use super::{codec, delete, delete_prefix, keys, put, SessionBackend};

mod buffers;

#[async_trait]
impl ProtocolStore for SessionBackend {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        let rows = self.scan(&keys::sender_key_devices(group_jid)).await?;
        rows.iter().map(|(k, v)| Ok((keys::last_component(k), codec::unflag(k, v)?))).collect()
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        let _guard = self.lock().await;
        let writes = entries
            .iter()
            .map(|(device, has)| put(keys::sender_key_device(group_jid, device), codec::flag(*has)))
            .collect();
        self.apply(writes).await
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        let _guard = self.lock().await;
        self.apply(vec![delete_prefix(keys::sender_key_devices(group_jid))]).await
    }

    /// Rows are keyed by group first, so finding one device's rows scans the whole namespace
    /// (every tracked device of every group). This runs on device removal and identity change
    /// only, and the lock keeps a concurrent status write from landing between scan and delete.
    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        let _guard = self.lock().await;
        let rows = self.scan(keys::SENDER_KEY_DEVICES).await?;
        let writes = rows
            .into_iter()
            .filter(|(k, _)| device_jids.contains(&keys::last_component(k).as_str()))
            .map(|(k, _)| delete(k))
            .collect();
        self.apply(writes).await
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        let _guard = self.lock().await;
        self.apply(vec![delete_prefix(keys::SENDER_KEY_DEVICES.to_string())]).await
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        let key = keys::lid(lid);
        self.get(&key).await?.map(|v| codec::from_json(&key, &v)).transpose()
    }

    /// The reverse index may name a LID that has since moved to another phone number (writes
    /// do not read the old mapping to clean it up), so each candidate is checked against its
    /// `lid/` row. Among the LIDs still mapped to the phone, the most recently updated wins,
    /// as in the library's SQLite store.
    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        let mut best: Option<LidPnMappingEntry> = None;
        for (index_key, _) in self.scan(&keys::lids_of_phone(phone)).await? {
            let lid = keys::last_component(&index_key);
            let Some(entry) = self.get_lid_mapping(&lid).await? else { continue };
            if entry.phone_number == phone
                && best.as_ref().is_none_or(|b| entry.updated_at >= b.updated_at)
            {
                best = Some(entry);
            }
        }
        Ok(best)
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.put_lid_mappings(std::slice::from_ref(entry)).await
    }

    /// The whole entry is replaced, `created_at` included: the library ranks mappings by the
    /// `created_at` it chose (0 for stale sources), so the store keeps what it was given.
    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        let mut writes = Vec::with_capacity(entries.len() * 2);
        for entry in entries {
            writes.push(put(keys::lid(&entry.lid), codec::to_json(entry)?));
            writes.push(put(keys::phone_index(&entry.phone_number, &entry.lid), Vec::new()));
        }
        self.apply(writes).await
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        let rows = self.scan(keys::LIDS).await?;
        rows.iter().map(|(k, v)| codec::from_json(k, v)).collect()
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.put(keys::base_key(address, message_id), base_key.to_vec()).await
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        let saved = self.get(&keys::base_key(address, message_id)).await?;
        Ok(saved.is_some_and(|saved| saved == current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.delete(keys::base_key(address, message_id)).await
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.update_device_lists(vec![record]).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        let writes = records
            .iter()
            .map(|r| Ok(put(keys::device_list(&r.user), codec::to_json(r)?)))
            .collect::<Result<Vec<_>>>()?;
        self.apply(writes).await
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        let key = keys::device_list(user);
        self.get(&key).await?.map(|v| codec::from_json(&key, &v)).transpose()
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.delete(keys::device_list(user)).await
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        self.get(&keys::group_metadata(group_jid)).await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        self.put(keys::group_metadata(group_jid), blob.to_vec()).await
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.delete(keys::group_metadata(group_jid)).await
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        let key = keys::tc_token(jid);
        self.get(&key).await?.map(|v| codec::from_json(&key, &v)).transpose()
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        let _guard = self.lock().await;
        self.put(keys::tc_token(jid), codec::to_json(entry)?).await
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        let _guard = self.lock().await;
        self.delete(keys::tc_token(jid)).await
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        let rows = self.scan(keys::TC_TOKENS).await?;
        Ok(rows.iter().map(|(k, _)| keys::last_component(k)).collect())
    }

    /// Reads every token to check its timestamps (one row per contact we exchanged tokens
    /// with); the library runs this from its periodic sweep, not per message.
    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        let _guard = self.lock().await;
        let mut writes = Vec::new();
        for (key, value) in self.scan(keys::TC_TOKENS).await? {
            let entry: TcTokenEntry = codec::from_json(&key, &value)?;
            let token_live = !entry.token.is_empty() && entry.token_timestamp >= token_cutoff;
            let sender_live = entry.sender_timestamp.is_some_and(|ts| ts >= sender_cutoff);
            if !token_live && !sender_live {
                writes.push(delete(key));
            }
        }
        let deleted = writes.len() as u32;
        self.apply(writes).await?;
        Ok(deleted)
    }

    /// Overridden so the read-modify-write runs under the write lock, as the trait requires
    /// (the notification writer touches the same row).
    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> Result<()> {
        let _guard = self.lock().await;
        let entry = match self.get_tc_token(jid).await? {
            Some(existing) => TcTokenEntry {
                sender_timestamp: Some(
                    existing.sender_timestamp.map_or(sender_timestamp, |e| e.max(sender_timestamp)),
                ),
                ..existing
            },
            None => TcTokenEntry {
                token: Vec::new(),
                token_timestamp: sender_timestamp,
                sender_timestamp: Some(sender_timestamp),
            },
        };
        self.put(keys::tc_token(jid), codec::to_json(&entry)?).await
    }

    /// Newer wins, and a placeholder never blocks the first real token; the sender bucket is
    /// kept. Under the write lock for the same reason as the sender-side touch.
    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> Result<()> {
        let _guard = self.lock().await;
        let existing = self.get_tc_token(jid).await?;
        if let Some(existing) = &existing {
            if !existing.token.is_empty() && token_timestamp < existing.token_timestamp {
                return Ok(());
            }
        }
        let entry = TcTokenEntry {
            token: token.to_vec(),
            token_timestamp,
            sender_timestamp: existing.and_then(|e| e.sender_timestamp),
        };
        self.put(keys::tc_token(jid), codec::to_json(&entry)?).await
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<()> {
        self.store_sent(chat_jid, message_id, payload).await
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        self.take_sent(chat_jid, message_id).await
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.expire_sent(cutoff_timestamp).await
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> Result<()> {
        self.store_pending(&[PendingInboundRow { chat, sender, id, message }]).await
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.get_pending(chat, sender, id).await
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.delete_pending(&[PendingInboundKey { chat, sender, id }]).await
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.expire_pending(cutoff_timestamp).await
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        self.store_pending(rows).await
    }

    async fn delete_pending_inbound_batch(&self, rows: &[PendingInboundKey<'_>]) -> Result<()> {
        self.delete_pending(rows).await
    }
}
