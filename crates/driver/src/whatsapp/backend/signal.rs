//! Signal protocol state: identities, sessions, one-time and signed pre-keys, sender keys.

use std::sync::Arc;

use async_trait::async_trait;
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::SignalStore;

use super::{codec, keys, put, SessionBackend};

#[async_trait]
impl SignalStore for SessionBackend {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.put(keys::identity(address), key.to_vec()).await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        let writes = identities.iter().map(|(a, k)| put(keys::identity(a), k.to_vec())).collect();
        self.apply(writes).await
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        let key = keys::identity(address);
        self.get(&key).await?.map(|v| codec::identity(&key, &v)).transpose()
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.delete(keys::identity(address)).await
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        Ok(self.get(&keys::session(address)).await?.map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.put(keys::session(address), session.to_vec()).await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        let writes = sessions.iter().map(|(a, s)| put(keys::session(a), s.to_vec())).collect();
        self.apply(writes).await
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.delete(keys::session(address)).await
    }

    /// Addresses are `user@server` or `user:device@server`: scan the rows starting with the
    /// user and keep those where the user part ends there (`123` must not match `1234@…`).
    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        for prefix in [keys::session(user), keys::identity(user)] {
            let rows = self.scan(&prefix).await?;
            if rows.iter().any(|(k, _)| k[prefix.len()..].starts_with(['@', ':'])) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        let _guard = self.lock().await;
        self.put(keys::prekey(id), codec::prekey(uploaded, record)).await
    }

    async fn store_prekeys_batch(&self, prekeys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        let _guard = self.lock().await;
        let writes = prekeys
            .iter()
            .map(|(id, record)| put(keys::prekey(*id), codec::prekey(uploaded, record)))
            .collect();
        self.apply(writes).await
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        let key = keys::prekey(id);
        match self.get(&key).await? {
            Some(value) => Ok(Some(Bytes::copy_from_slice(codec::unprekey(&key, &value)?.1))),
            None => Ok(None),
        }
    }

    /// Rewrites only the rows still there: a key consumed since the upload snapshot must stay
    /// deleted. Under the write lock so that neither a removal nor a new record slips in between
    /// the read and the rewrite.
    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        let _guard = self.lock().await;
        let mut writes = Vec::new();
        for &id in ids {
            let key = keys::prekey(id);
            if let Some(value) = self.get(&key).await? {
                let (uploaded, record) = codec::unprekey(&key, &value)?;
                if !uploaded {
                    writes.push(put(key, codec::prekey(true, record)));
                }
            }
        }
        self.apply(writes).await
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        let _guard = self.lock().await;
        self.delete(keys::prekey(id)).await
    }

    /// The last key of the namespace, which is the largest id thanks to the zero padding. The
    /// store has no reverse or key-only scan, so this reads the whole namespace: a few hundred
    /// small rows, on each upload and each retry-receipt pre-key. An in-memory id set kept under
    /// the write lock would remove the scan if it ever shows up in profiles.
    async fn get_max_prekey_id(&self) -> Result<u32> {
        let rows = self.scan(keys::PREKEYS).await?;
        Ok(rows.last().and_then(|(k, _)| keys::numeric_id(k, keys::PREKEYS)).unwrap_or(0))
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        self.put(keys::signed_prekey(id), record.to_vec()).await
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        self.get(&keys::signed_prekey(id)).await
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        let rows = self.scan(keys::SIGNED_PREKEYS).await?;
        rows.into_iter()
            .map(|(k, v)| match keys::numeric_id(&k, keys::SIGNED_PREKEYS) {
                Some(id) => Ok((id, v)),
                None => Err(codec::malformed(&k, "not a signed pre-key id")),
            })
            .collect()
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.delete(keys::signed_prekey(id)).await
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.put(keys::sender_key(address), record.to_vec()).await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        let writes =
            sender_keys.iter().map(|(a, r)| put(keys::sender_key(a), r.to_vec())).collect();
        self.apply(writes).await
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        self.get(&keys::sender_key(address)).await
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.delete(keys::sender_key(address)).await
    }
}
