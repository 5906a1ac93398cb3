//! Connects a driver's [`bzapper_driver::SessionStore`] for one instance to the store, where
//! every value is sealed with the instance id as associated data.

use std::sync::Arc;

use async_trait::async_trait;
use bzapper_driver::{SessionError, SessionWrite};
use bzapper_store::{SessionWrite as StoreWrite, Store, StoreError};

pub struct InstanceSession {
    store: Arc<dyn Store>,
    instance_id: String,
}

impl InstanceSession {
    pub fn new(store: Arc<dyn Store>, instance_id: String) -> Self {
        Self { store, instance_id }
    }
}

fn map(e: StoreError) -> SessionError {
    match e {
        StoreError::Unsealable(detail) => SessionError::Unreadable(detail),
        other => SessionError::Io(other.to_string()),
    }
}

#[async_trait]
impl bzapper_driver::SessionStore for InstanceSession {
    async fn load(&self, key: &str) -> Result<Option<Vec<u8>>, SessionError> {
        self.store.load_session_value(&self.instance_id, key).await.map_err(map)
    }

    async fn save(&self, key: &str, value: &[u8]) -> Result<(), SessionError> {
        self.store.save_session_value(&self.instance_id, key, value).await.map_err(map)
    }

    async fn load_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, SessionError> {
        self.store.load_session_values_with_prefix(&self.instance_id, prefix).await.map_err(map)
    }

    async fn write(&self, writes: Vec<SessionWrite>) -> Result<(), SessionError> {
        let writes: Vec<StoreWrite> = writes
            .into_iter()
            .map(|w| match w {
                SessionWrite::Put { key, value } => StoreWrite::Put { key, value },
                SessionWrite::Delete { key } => StoreWrite::Delete { key },
                SessionWrite::DeletePrefix { prefix } => StoreWrite::DeletePrefix { prefix },
            })
            .collect();
        self.store.write_session_values(&self.instance_id, &writes).await.map_err(map)
    }

    async fn clear(&self) -> Result<(), SessionError> {
        self.store.clear_session(&self.instance_id).await.map_err(map)
    }
}
