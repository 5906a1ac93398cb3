//! A short-lived in-memory cache of API key records, so that authenticating a request does not
//! read the store every time (it is on the hot path of `POST /v1/messages`). Revocations on
//! this node take effect at once; entries expire after `TTL`, which bounds how long a key
//! revoked elsewhere (another node of a cluster) keeps working here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bzapper_store::ApiKeyRecord;

const TTL: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (ApiKeyRecord, Instant)>>,
}

impl KeyCache {
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
