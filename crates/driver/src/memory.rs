//! An in-memory [`SessionStore`], for tests and benchmarks of drivers without a database.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::{SessionError, SessionStore, SessionWrite};

/// Values in a sorted map, so prefix reads behave like the store's ordered key scans.
#[derive(Default)]
pub struct MemorySessionStore {
    values: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemorySessionStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many values are stored.
    pub fn len(&self) -> usize {
        self.values.lock().expect("poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value under `key` (for tests that look inside without an async context).
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.values.lock().expect("poisoned").get(key).cloned()
    }

    /// Stores `value` under `key` directly.
    pub fn insert(&self, key: &str, value: Vec<u8>) {
        self.values.lock().expect("poisoned").insert(key.to_string(), value);
    }

    /// Every stored key, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.values.lock().expect("poisoned").keys().cloned().collect()
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn load(&self, key: &str) -> Result<Option<Vec<u8>>, SessionError> {
        Ok(self.values.lock().expect("poisoned").get(key).cloned())
    }

    async fn load_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, SessionError> {
        let values = self.values.lock().expect("poisoned");
        Ok(values
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn write(&self, writes: Vec<SessionWrite>) -> Result<(), SessionError> {
        let mut values = self.values.lock().expect("poisoned");
        for write in writes {
            match write {
                SessionWrite::Put { key, value } => {
                    values.insert(key, value);
                }
                SessionWrite::Delete { key } => {
                    values.remove(&key);
                }
                SessionWrite::DeletePrefix { prefix } => {
                    values.retain(|k, _| !k.starts_with(&prefix));
                }
            }
        }
        Ok(())
    }

    async fn clear(&self) -> Result<(), SessionError> {
        self.values.lock().expect("poisoned").clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prefix_reads_and_batched_writes() {
        let s = MemorySessionStore::new();
        let put = |k: &str| SessionWrite::Put { key: k.into(), value: k.as_bytes().to_vec() };
        s.write(vec![put("a/1"), put("a/2"), put("ab"), put("b")]).await.unwrap();
        let keys: Vec<String> =
            s.load_prefix("a/").await.unwrap().into_iter().map(|e| e.0).collect();
        assert_eq!(keys, ["a/1", "a/2"]);
        s.write(vec![SessionWrite::DeletePrefix { prefix: "a".into() }, put("a/3")]).await.unwrap();
        assert_eq!(s.keys(), ["a/3", "b"]);
        s.write(vec![SessionWrite::Delete { key: "b".into() }]).await.unwrap();
        assert_eq!(s.keys(), ["a/3"]);
        s.clear().await.unwrap();
        assert!(s.is_empty());
    }
}
