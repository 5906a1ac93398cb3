//! Tests of what only the PostgreSQL store has: the master-key check on a shared database,
//! reopening, and event appends from several nodes at once. They run when
//! `BZAPPER_TEST_DATABASE_URL` is set, each in its own schema (see `crate::conformance`).

use std::collections::BTreeSet;

use super::*;
use crate::conformance::{event, instance, pg_schema, with_tenant};
use sqlx::postgres::PgPoolOptions;

use crate::{EventLog, InstanceStore, NewEvent, SessionStore, StoreError, TenantStore};
use crate::{MasterKey, WebhookStore};

#[tokio::test]
async fn a_wrong_master_key_is_refused_and_a_reopen_keeps_everything() {
    let Some((options, _schema)) = pg_schema().await else { return };
    let (k1, k2) = (MasterKey::generate(), MasterKey::generate());
    let s = PgStore::open_with(options.clone(), Sealer::new(k1.clone())).await.unwrap();
    with_tenant(&s, "t1").await;
    s.create_instance(&instance("i1", "t1", "a")).await.unwrap();
    s.save_session_value("i1", "creds", b"kept").await.unwrap();
    let ev = s.append_event(&event("t1", None, "instance.qr")).await.unwrap();
    s.close().await;

    match PgStore::open_with(options.clone(), Sealer::new(k2.clone())).await.unwrap_err() {
        StoreError::WrongMasterKey(m) => {
            assert!(m.contains(&k2.key_id()) && m.contains(&k1.key_id()), "{m}");
        }
        other => panic!("expected WrongMasterKey, got {other:?}"),
    }

    let s = PgStore::open_with(options, Sealer::new(k1)).await.unwrap();
    assert_eq!(s.load_session_value("i1", "creds").await.unwrap(), Some(b"kept".to_vec()));
    assert_eq!(s.events_after("t1", 0, 10).await.unwrap(), vec![ev.clone()]);
    assert!(s.append_event(&event("t1", None, "x")).await.unwrap().id > ev.id);
    s.close().await;
}

/// Two stores on one schema stand for two nodes. Whatever interleaving their appends take, a
/// reader that pages with `id > cursor` while they run sees every event exactly once.
#[tokio::test]
async fn concurrent_appends_from_two_nodes_commit_in_id_order() {
    let Some((options, _schema)) = pg_schema().await else { return };
    let key = MasterKey::generate();
    let a = PgStore::open_with(options.clone(), Sealer::new(key.clone())).await.unwrap();
    let b = PgStore::open_with(options, Sealer::new(key)).await.unwrap();
    let writer = |s: PgStore, tag: &'static str| {
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..40 {
                let batch: Vec<NewEvent> =
                    (0..(1 + n % 5)).map(|_| event("t1", None, tag)).collect();
                ids.extend(s.append_events(&batch).await.unwrap().into_iter().map(|e| e.id));
            }
            ids
        })
    };
    let (wa, wb) = (writer(a.clone(), "a"), writer(b.clone(), "b"));
    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let done = wa.is_finished() && wb.is_finished();
        let page = a.all_events_after(cursor, 1000).await.unwrap();
        if let Some(last) = page.last() {
            cursor = last.id;
        }
        seen.extend(page.into_iter().map(|e| e.id));
        if done && a.all_events_after(cursor, 1).await.unwrap().is_empty() {
            break;
        }
    }
    let written: BTreeSet<i64> = wa.await.unwrap().into_iter().chain(wb.await.unwrap()).collect();
    assert_eq!(seen.len(), written.len(), "every event seen once");
    assert_eq!(seen.iter().copied().collect::<BTreeSet<_>>(), written);
    a.close().await;
    b.close().await;
}

/// Builds the old migration set in `dir`, as the first `n` old files: the old `0001_init`
/// (a fixture) and today's files, unchanged in their bytes, under their old numbers.
fn old_migrations(dir: &std::path::Path, n: usize) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = [
        ("fixtures/legacy-postgres/0001_init.sql", "0001_init.sql"),
        ("migrations/postgres/0008_cluster.sql", "0002_cluster.sql"),
        ("migrations/postgres/0005_campaigns.sql", "0003_campaigns.sql"),
        ("migrations/postgres/0006_content_and_inbound.sql", "0004_content_and_inbound.sql"),
        ("migrations/postgres/0007_contact_checks.sql", "0005_contact_checks.sql"),
    ];
    for (from, to) in &files[..n] {
        std::fs::copy(root.join(from), dir.join(to)).unwrap();
    }
}

/// A database migrated by the old numbering (whole, or stopped part way as an older release
/// left it) opens: its history is rewritten to the new numbering, the rest is migrated, its
/// data is kept, and the history then matches the embedded migrations exactly.
#[tokio::test]
async fn a_database_with_the_old_migration_numbering_opens_and_is_renumbered() {
    for n in [5, 2, 1] {
        let Some((options, _schema)) = pg_schema().await else { return };
        let dir = tempfile::tempdir().unwrap();
        old_migrations(dir.path(), n);
        let old = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
        let init = old.iter().find(|m| m.version == 1).unwrap();
        assert_eq!(legacy::OLD_INIT_CHECKSUM, legacy_hex(&init.checksum), "the fixture's checksum");
        let pool = PgPoolOptions::new().connect_with(options.clone()).await.unwrap();
        old.run(&pool).await.unwrap();
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ('t0', 'old', 1)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;

        let key = MasterKey::generate();
        let s = PgStore::open_with(options.clone(), Sealer::new(key.clone())).await.unwrap();
        let history: Vec<(i64, String, Vec<u8>, bool)> = sqlx::query_as(
            "SELECT version, description, checksum, success FROM _sqlx_migrations ORDER BY version",
        )
        .fetch_all(s.raw_pool())
        .await
        .unwrap();
        let expected: Vec<(i64, String, Vec<u8>, bool)> = MIGRATOR
            .iter()
            .map(|m| (m.version, m.description.to_string(), m.checksum.to_vec(), true))
            .collect();
        assert_eq!(history, expected, "after {n} old migrations");
        assert_eq!(s.get_tenant("t0").await.unwrap().unwrap().name, "old");
        with_tenant(&s, "t1").await;
        s.create_instance(&instance("i1", "t1", "a")).await.unwrap();
        s.close().await;
        // A second open finds the new numbering and changes nothing.
        let s = PgStore::open_with(options, Sealer::new(key)).await.unwrap();
        assert!(s.get_instance("t1", "i1").await.unwrap().is_some());
        s.close().await;
    }
}

fn legacy_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
