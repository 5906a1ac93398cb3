//! App-state sync: sync keys, collection versions and mutation MACs.

use async_trait::async_trait;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{AppStateSyncKey, AppSyncStore};

use super::{codec, delete, delete_prefix, keys, put, SessionBackend};

#[async_trait]
impl AppSyncStore for SessionBackend {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        let key = keys::sync_key(key_id);
        self.get(&key).await?.map(|v| codec::from_json(&key, &v)).transpose()
    }

    /// The key and the "latest" pointer change together, so the pointer never names a key that
    /// is not stored.
    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        self.apply(vec![
            put(keys::sync_key(key_id), codec::to_json(&key)?),
            put(keys::LATEST_SYNC_KEY.to_string(), key_id.to_vec()),
        ])
        .await
    }

    /// A collection never synced starts from the default (version 0) state.
    async fn get_version(&self, name: &str) -> Result<HashState> {
        let key = keys::app_state_version(name);
        match self.get(&key).await? {
            Some(value) => codec::from_json(&key, &value),
            None => Ok(HashState::default()),
        }
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        self.put(keys::app_state_version(name), codec::to_json(&state)?).await
    }

    /// The version is not kept: nothing reads a MAC by version, and a snapshot re-sync clears
    /// the whole collection anyway (`clear_mutation_macs`).
    async fn put_mutation_macs(
        &self,
        name: &str,
        _version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        let writes = mutations
            .iter()
            .map(|m| put(keys::mutation_mac(name, &m.index_mac), m.value_mac.clone()))
            .collect();
        self.apply(writes).await
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(&keys::mutation_mac(name, index_mac)).await
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        let writes = index_macs.iter().map(|m| delete(keys::mutation_mac(name, m))).collect();
        self.apply(writes).await
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        self.apply(vec![delete_prefix(keys::mutation_macs(name))]).await
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        self.get(keys::LATEST_SYNC_KEY).await
    }
}
