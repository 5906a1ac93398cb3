//! The number's own device: identity keys, registration, pairing result and the counters the
//! library keeps on it. `PersistenceManager` reads it once at start and saves it on change.

use async_trait::async_trait;
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::DeviceStore;
use whatsapp_rust::wacore::store::Device;

use super::{codec, keys, SessionBackend, DEVICE_ID};
use crate::{SessionError, SessionStore};

impl SessionBackend {
    /// Whether `store` holds a session this backend can open: the device row decodes, or there
    /// is none yet (a number never linked). Run it before building the client to report an
    /// unreadable session as such; the build would fail anyway (`exists` decodes), but with
    /// the cause buried in a library error. A row that opens but does not decode is reported
    /// as [`SessionError::Unreadable`] too.
    pub async fn check_readable(store: &dyn SessionStore) -> std::result::Result<(), SessionError> {
        let Some(value) = store.load(keys::DEVICE).await? else { return Ok(()) };
        codec::from_json::<Device>(keys::DEVICE, &value)
            .map(drop)
            .map_err(|e| SessionError::Unreadable(error_chain(&e)))
    }
}

/// `StoreError`'s own message is generic; the detail is in its sources.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

#[async_trait]
impl DeviceStore for SessionBackend {
    async fn save(&self, device: &Device) -> Result<()> {
        let _guard = self.lock().await;
        self.put(keys::DEVICE.to_string(), codec::to_json(device)?).await
    }

    async fn load(&self) -> Result<Option<Device>> {
        match self.get(keys::DEVICE).await? {
            Some(value) => Ok(Some(codec::from_json(keys::DEVICE, &value)?)),
            None => Ok(None),
        }
    }

    /// Decodes the row rather than only checking it is there, so an unreadable device fails
    /// here, at client build time, instead of being replaced.
    async fn exists(&self) -> Result<bool> {
        Ok(DeviceStore::load(self).await?.is_some())
    }

    /// Persists fresh keys at once (as the library's SQLite store does), so that a restart
    /// before pairing keeps the same identity. There is one device per number: when it already
    /// exists it is left alone and its id returned.
    async fn create(&self) -> Result<i32> {
        let _guard = self.lock().await;
        if self.get(keys::DEVICE).await?.is_none() {
            self.put(keys::DEVICE.to_string(), codec::to_json(&Device::new())?).await?;
        }
        Ok(DEVICE_ID)
    }
}
