//! Tests of the SQLite store, each on its own database in its own temporary directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bzapper_core::ProxyUrl;

use super::*;
use crate::conformance::{event, instance, with_tenant};
use crate::MasterKey;
use crate::{
    EventLog, InstanceStore, PoolStore, SessionStore, Store, StoreError, Strategy, TenantStore,
};

fn db_path(dir: &Path) -> PathBuf {
    dir.join("bzapper.db")
}

async fn open(dir: &Path, key: &MasterKey) -> SqliteStore {
    SqliteStore::open(db_path(dir).to_str().unwrap(), Sealer::new(key.clone())).await.unwrap()
}

async fn count(store: &SqliteStore, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&store.pool)
        .await
        .unwrap()
}

/// Every file of the directory (database, -wal, -shm) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let k1 = MasterKey::generate();
    let k2 = MasterKey::generate();
    let s = open(dir.path(), &k1).await;
    with_tenant(&s, "t1").await;
    s.create_instance(&instance("i1", "t1", "a")).await.unwrap();
    s.save_session_value("i1", "creds", b"kept").await.unwrap();
    s.close().await;
    let before = snapshot(dir.path());
    // A clean close leaves the data in the database file alone.
    assert_eq!(before.keys().collect::<Vec<_>>(), ["bzapper.db"]);

    let err = SqliteStore::open(db_path(dir.path()).to_str().unwrap(), Sealer::new(k2.clone()))
        .await
        .unwrap_err();
    match err {
        StoreError::WrongMasterKey(m) => {
            assert!(m.contains("does not match"), "{m}");
            assert!(m.contains(&k2.key_id()) && m.contains(&k1.key_id()), "{m}");
            assert!(m.contains("nothing was changed"), "{m}");
        }
        other => panic!("expected WrongMasterKey, got {other:?}"),
    }
    let after = snapshot(dir.path());
    assert_eq!(after.keys().collect::<Vec<_>>(), before.keys().collect::<Vec<_>>());
    assert!(after == before, "the data directory changed");

    // The right key still opens it, with everything in place.
    let s = open(dir.path(), &k1).await;
    assert!(s.get_tenant("t1").await.unwrap().is_some());
    assert_eq!(s.load_session_value("i1", "creds").await.unwrap(), Some(b"kept".to_vec()));
    s.close().await;
}

#[tokio::test]
async fn data_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate();
    let s = open(dir.path(), &key).await;
    with_tenant(&s, "t1").await;
    let mut a = instance("i1", "t1", "a");
    a.proxy = Some(ProxyUrl::parse("socks5://user:pw@10.0.0.1:1080").unwrap());
    s.create_instance(&a).await.unwrap();
    s.put_pool("t1", "default", Strategy::LeastUsed).await.unwrap();
    let ev = s.append_event(&event("t1", None, "instance.qr")).await.unwrap();
    s.close().await;
    drop(s);

    // Same key, from a key parsed back from its text form.
    let key = MasterKey::from_base64(&key.to_base64()).unwrap();
    let s = open(dir.path(), &key).await;
    assert_eq!(s.get_instance("t1", "i1").await.unwrap(), Some(a));
    assert_eq!(s.list_pools("t1").await.unwrap()[0].strategy, Strategy::LeastUsed);
    assert_eq!(s.events_after("t1", 0, 10).await.unwrap(), vec![ev.clone()]);
    // Ids keep growing after a reopen.
    let ev2 = s.append_event(&event("t1", None, "instance.qr")).await.unwrap();
    assert!(ev2.id > ev.id);
}

/// Alert URLs written in clear by an earlier version are sealed at the next open.
#[tokio::test]
async fn clear_alert_urls_are_sealed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate();
    let s = open(dir.path(), &key).await;
    with_tenant(&s, "t1").await;
    sqlx::query(
        "INSERT INTO alerts (tenant_id, url, format, on_json, updated_at) \
         VALUES ('t1', 'https://hooks.slack.com/services/OLD-CLEAR-SECRET', 'slack', '[]', 0)",
    )
    .execute(s.raw_pool())
    .await
    .unwrap();
    s.close().await;
    let s = open(dir.path(), &key).await;
    let (clear, sealed): (String, Option<Vec<u8>>) =
        sqlx::query_as("SELECT url, url_sealed FROM alerts WHERE tenant_id = 't1'")
            .fetch_one(s.raw_pool())
            .await
            .unwrap();
    assert_eq!((clear.as_str(), sealed.is_some()), ("", true));
    let a = crate::WebhookStore::get_alert(&s, "t1").await.unwrap().unwrap();
    assert_eq!(a.url, "https://hooks.slack.com/services/OLD-CLEAR-SECRET");
    s.close().await;
}

#[tokio::test]
async fn secrets_never_reach_the_disk_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), &MasterKey::generate()).await;
    with_tenant(&s, "t1").await;
    let mut a = instance("i1", "t1", "a");
    a.proxy = Some(ProxyUrl::parse("socks5://alice:hunter2-proxy-pass@10.0.0.1:1080").unwrap());
    s.create_instance(&a).await.unwrap();
    s.save_session_value("i1", "creds", b"SECRET-SESSION-MATERIAL-1234567890").await.unwrap();
    let alert = crate::AlertConfig {
        tenant_id: "t1".into(),
        url: "https://hooks.slack.com/services/T0/B0/alert-url-secret-path".into(),
        format: "slack".into(),
        on: vec!["banned".into()],
        updated_at: crate::now_millis(),
    };
    crate::WebhookStore::put_alert(&s, &alert).await.unwrap();
    assert_eq!(crate::WebhookStore::get_alert(&s, "t1").await.unwrap(), Some(alert));
    // Read back while open, so the test proves the values were really written.
    assert_eq!(s.get_instance("t1", "i1").await.unwrap(), Some(a));
    // Look at the files while the WAL still holds the writes, and again after closing.
    let open_files = snapshot(dir.path());
    s.close().await;
    let closed_files = snapshot(dir.path());
    assert!(closed_files.contains_key("bzapper.db"));
    for (name, bytes) in open_files.iter().chain(closed_files.iter()) {
        for secret in
            [&b"SECRET-SESSION-MATERIAL"[..], b"hunter2-proxy-pass", b"alert-url-secret-path"]
        {
            assert!(
                !contains(bytes, secret),
                "{} in clear in {name}",
                String::from_utf8_lossy(secret)
            );
        }
    }
    // Sanity check of the search itself: unsealed names are plainly there.
    assert!(closed_files.values().any(|b| contains(b, b"tenant t1")));
}

#[tokio::test]
async fn every_way_of_naming_the_database_works() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let key = MasterKey::generate();
    for location in [
        format!("sqlite://{d}/url.db?mode=rwc"),
        format!("sqlite:{d}/short.db"),
        format!("{d}/nested/dirs/bare.db"),
        "sqlite::memory:".to_string(),
    ] {
        let s = SqliteStore::open(&location, Sealer::new(key.clone())).await.unwrap();
        with_tenant(&s, "t1").await;
        assert_eq!(s.list_tenants().await.unwrap().len(), 1, "{location}");
        s.ping().await.unwrap();
        let mode: String =
            sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&s.pool).await.unwrap();
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&s.pool).await.unwrap();
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(&s.pool).await.unwrap();
        if location != "sqlite::memory:" {
            assert_eq!(mode, "wal", "{location}");
        }
        assert_eq!((sync, fk), (2, 1), "{location}: synchronous=FULL, foreign_keys=ON");
        s.close().await;
    }
    for file in ["url.db", "short.db", "nested/dirs/bare.db"] {
        assert!(dir.path().join(file).exists(), "{file}");
    }
    // A reopen with the same key does not re-initialise the key check.
    let s =
        SqliteStore::open(&format!("sqlite:{d}/short.db"), Sealer::new(key.clone())).await.unwrap();
    assert_eq!(s.list_tenants().await.unwrap().len(), 1);
    assert_eq!(count(&s, "meta").await, 2);
    assert_eq!(s.sealer().key_id(), key.key_id());
}
