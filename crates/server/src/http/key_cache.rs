//! A short-lived in-memory cache of API key records, so that authenticating a request does not
//! read the store every time (it is on the hot path of `POST /v1/messages`). Revocations on
//! this node take effect at once; so do those on other nodes of a cluster, which [`follow`]
//! hears as [`Revoked::Elsewhere`] (the whole cache is dropped). Entries also expire after
//! `TTL`, which bounds how long a key revoked elsewhere keeps working here should that signal
//! be lost.
//!
//! [`follow`]: KeyCache::follow

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bzapper_store::ApiKeyRecord;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::app::revocations::Revoked;

const TTL: Duration = Duration::from_secs(30);

type Entries = Mutex<HashMap<String, (ApiKeyRecord, Instant)>>;

#[derive(Default)]
pub struct KeyCache {
    entries: Arc<Entries>,
}

impl KeyCache {
    /// Forgets every key as it is revoked (here or, as `Elsewhere`, on another node) until
    /// the revocations end with the gateway.
    pub fn follow(&self, mut revocations: broadcast::Receiver<Revoked>) {
        let entries = self.entries.clone();
        tokio::spawn(async move {
            loop {
                let heard = match revocations.recv().await {
                    Err(RecvError::Closed) => return,
                    Ok(r) => Some(r),
                    // Some were missed: forget everything (it costs a look-up per key).
                    Err(RecvError::Lagged(_)) => None,
                };
                let mut map = entries.lock().unwrap_or_else(|p| p.into_inner());
                match heard {
                    Some(Revoked::Key(id)) => {
                        map.remove(&id);
                    }
                    Some(Revoked::Tenant(t)) => map.retain(|_, (r, _)| r.tenant_id != t.as_str()),
                    Some(Revoked::Elsewhere) | None => map.clear(),
                }
            }
        });
    }

    pub fn get(&self, key_id: &str) -> Option<ApiKeyRecord> {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match e.get(key_id) {
            Some((rec, at)) if at.elapsed() < TTL => Some(rec.clone()),
            Some(_) => {
                e.remove(key_id);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, rec: ApiKeyRecord) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.insert(rec.id.clone(), (rec, Instant::now()));
    }

    pub fn forget_key(&self, key_id: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(key_id);
    }

    pub fn forget_tenant(&self, tenant_id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (r, _)| r.tenant_id != tenant_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, tenant: &str) -> ApiKeyRecord {
        ApiKeyRecord {
            id: id.into(),
            tenant_id: tenant.into(),
            secret_hash: [0; 32],
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn keys_are_forgotten_by_id_and_by_tenant() {
        let c = KeyCache::default();
        c.put(rec("k1", "t1"));
        c.put(rec("k2", "t1"));
        c.put(rec("k3", "t2"));
        assert!(c.get("k1").is_some());
        c.forget_key("k1");
        assert!(c.get("k1").is_none());
        c.forget_tenant("t1");
        assert!(c.get("k2").is_none());
        assert!(c.get("k3").is_some());
    }
}
