//! The storage `Backend` of `whatsapp-rust` (wacore's store traits) over one number's
//! [`SessionStore`], so every piece of protocol state lands, sealed, in the server's store.
//!
//! # Key scheme
//!
//! One namespace per kind of state. Keys are not sealed, so they hold only addresses, JIDs and
//! ids; every value is opaque to the server. A component that could contain `/` or `%` is
//! percent-escaped (see `keys::esc`), so a prefix scan of a namespace never leaks into another.
//!
//! | key | value |
//! |-----|-------|
//! | `device` | JSON of wacore's `Device` (the one device of this number) |
//! | `identity/<address>` | the 32-byte identity key |
//! | `session/<address>` | the Signal session record |
//! | `prekey/<id, 10 digits>` | uploaded flag byte + pre-key record (key order = id order) |
//! | `signed_prekey/<id, 10 digits>` | signed pre-key record |
//! | `sender_key/<address>` | sender key record |
//! | `appsync/key/<hex key id>` | JSON `AppStateSyncKey` |
//! | `appsync/latest_key` | the id of the last sync key stored |
//! | `appsync/version/<collection>` | JSON `HashState` |
//! | `appsync/mac/<collection>/<hex index MAC>` | value MAC |
//! | `skdev/<group>/<device JID>` | flag byte: the device has our sender key |
//! | `lid/<lid>` | JSON `LidPnMappingEntry` |
//! | `pn/<phone>/<lid>` | empty: reverse index of `lid/`, checked against it on read |
//! | `basekey/<address>/<message id>` | base key saved for retry collision detection |
//! | `devices/<user>` | JSON `DeviceListRecord` |
//! | `group_meta/<group>` | the library's serialized group metadata |
//! | `tctoken/<jid>` | JSON `TcTokenEntry` |
//! | `sent/<chat>/<message id>` | 8-byte send time + message payload (for retries) |
//! | `pending_inbound/<chat>/<sender>/<id>` | 8-byte arrival time + decrypted message |
//! | `msgsecret/<chat>/<sender>/<message id>` | 8-byte expiry + 8-byte message time + secret |
//!
//! Every change goes through one [`SessionStore::write`] (atomic and durable before it
//! returns), batches included, so the library can rely on what it stored surviving a crash.
//! Operations that read before they write (merges, atomic takes, expiry sweeps, flag updates)
//! hold [`SessionBackend`]'s write lock, which is why one number must have one backend at a time.
//!
//! Errors: a value the store cannot open ([`SessionError::Unreadable`]) and a value this module
//! cannot decode become `StoreError::Serialization`; a failing store becomes
//! `StoreError::Database`. The [`SessionError`] stays in the source chain, and
//! [`session_error`] finds it again.

mod appsync;
mod codec;
#[doc(hidden)]
pub mod conformance;
mod device;
mod keys;
mod msg_secret;
mod protocol;
mod signal;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use tokio::sync::{Mutex, MutexGuard};
use whatsapp_rust::wacore::store::error::{Result, StoreError};

pub use codec::MalformedValue;

use crate::{SessionError, SessionStore, SessionWrite};

/// The id [`DeviceStore::create`](whatsapp_rust::wacore::store::traits::DeviceStore::create)
/// returns: this backend holds exactly one device per number.
pub const DEVICE_ID: i32 = 1;

/// wacore's storage backend for one number, over that number's [`SessionStore`].
pub struct SessionBackend {
    store: Arc<dyn SessionStore>,
    /// Serializes the read-then-write operations (and the plain writes of the namespaces they
    /// touch), which the store's single-call atomicity does not cover. The hot paths (sessions,
    /// identities, sender keys) never take it.
    write_lock: Mutex<()>,
}

impl SessionBackend {
    pub fn new(store: Arc<dyn SessionStore>) -> Self {
        Self { store, write_lock: Mutex::new(()) }
    }

    /// Whether the one-time pre-key `id` is marked uploaded (`None` when it is not stored). The
    /// store traits never read the flag back; this is for diagnostics and tests.
    pub async fn prekey_uploaded(&self, id: u32) -> Result<Option<bool>> {
        let key = keys::prekey(id);
        match self.get(&key).await? {
            Some(value) => Ok(Some(codec::unprekey(&key, &value)?.0)),
            None => Ok(None),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.store.load(key).await.map_err(store_error)
    }

    /// Every row under `prefix`, in key order.
    async fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.store.load_prefix(prefix).await.map_err(store_error)
    }

    /// Applies `writes` as one transaction; an empty batch does not reach the store.
    async fn apply(&self, writes: Vec<SessionWrite>) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        self.store.write(writes).await.map_err(store_error)
    }

    async fn put(&self, key: String, value: Vec<u8>) -> Result<()> {
        self.apply(vec![put(key, value)]).await
    }

    async fn delete(&self, key: String) -> Result<()> {
        self.apply(vec![delete(key)]).await
    }

    async fn lock(&self) -> MutexGuard<'_, ()> {
        self.write_lock.lock().await
    }
}

fn put(key: String, value: Vec<u8>) -> SessionWrite {
    SessionWrite::Put { key, value }
}

fn delete(key: String) -> SessionWrite {
    SessionWrite::Delete { key }
}

fn delete_prefix(prefix: String) -> SessionWrite {
    SessionWrite::DeletePrefix { prefix }
}

/// Keeps the [`SessionError`] as the typed source so that the driver can tell a session it
/// cannot open (report `SessionUnreadable`, stop) from a store outage (retry later).
fn store_error(err: SessionError) -> StoreError {
    match err {
        SessionError::Unreadable(_) => StoreError::Serialization(Box::new(err)),
        SessionError::Io(_) => StoreError::Database(Box::new(err)),
    }
}

/// The [`SessionError`] somewhere in `err`'s source chain (`err` included), if a store failure
/// caused it; works through the `anyhow` wrappers of the library as well.
pub fn session_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a SessionError> {
    let mut layer = Some(err);
    while let Some(e) = layer {
        if let Some(found) = e.downcast_ref::<SessionError>() {
            return Some(found);
        }
        layer = e.source();
    }
    None
}
