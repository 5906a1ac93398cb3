//! Tests of what only the PostgreSQL store has: the master-key check on a shared database,
//! reopening, and event appends from several nodes at once. They run when
//! `BZAPPER_TEST_DATABASE_URL` is set, each in its own schema (see `crate::conformance`).

use std::collections::BTreeSet;

use super::*;
use crate::conformance::{event, instance, pg_schema, with_tenant};
use crate::{EventLog, InstanceStore, NewEvent, SessionStore, StoreError};
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
