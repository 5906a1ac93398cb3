//! The real driver's storage backend over the gateway's real, sealed SQLite store: the
//! conformance suite of `bzapper_driver::whatsapp::backend` passes through `InstanceSession`
//! (the bridge the supervisor gives each number), and the database file holds no key material
//! in clear.

use std::sync::Arc;

use bzapper_core::{InstanceState, LimitsPatch};
use bzapper_driver::whatsapp::backend::conformance;
use bzapper_driver::SessionStore;
use bzapper_server::session_bridge::InstanceSession;
use bzapper_store::{
    now_millis, ApiKeyRecord, InstanceRecord, InstanceStore, MasterKey, Sealer, SqliteStore, Store,
    Tenant, TenantStore,
};

async fn store_with_instance(dir: &std::path::Path, id: &str) -> Arc<dyn Store> {
    let path = dir.join("bzapper.db");
    let store = SqliteStore::open(path.to_str().unwrap(), Sealer::new(MasterKey::generate()))
        .await
        .unwrap();
    let tenant = Tenant { id: "t1".into(), name: "t".into(), created_at: now_millis() };
    let key = ApiKeyRecord {
        id: "k1".into(),
        tenant_id: "t1".into(),
        secret_hash: [7; 32],
        created_at: now_millis(),
    };
    store.create_tenant(&tenant, &key).await.unwrap();
    store
        .create_instance(&InstanceRecord {
            id: id.into(),
            tenant_id: "t1".into(),
            name: id.into(),
            pool: "default".into(),
            state: InstanceState::new_stopped(),
            phone: None,
            jid: None,
            lid: None,
            warming_days: 5,
            proxy: None,
            limits: LimitsPatch::default(),
            first_connected_at: None,
            connected_at: None,
            created_at: now_millis(),
            health_score: 100,
            read_receipts: Default::default(),
            reject_calls: false,
            reject_call_message: None,
            always_online: false,
            quiet_hours: None,
            rewarm_from: None,
        })
        .await
        .unwrap();
    Arc::new(store)
}

#[tokio::test]
async fn the_backend_conforms_over_the_sealed_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_instance(dir.path(), "i1").await;
    let session: Arc<dyn SessionStore> = Arc::new(InstanceSession::new(store, "i1".into()));
    conformance::run(session).await;
}

#[tokio::test]
async fn the_database_holds_no_key_material_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_instance(dir.path(), "i1").await;
    let session: Arc<dyn SessionStore> = Arc::new(InstanceSession::new(store.clone(), "i1".into()));
    let secrets = conformance::device_secrets(session.clone()).await;
    assert_eq!(secrets.len(), 4);
    // Every file of the database (main file, WAL) as it is on disk right now.
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(bytes.len() > 10_000, "the database was written");
    for secret in &secrets {
        assert_eq!(secret.len(), 32);
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_slice()),
            "a 32-byte secret of the device is in the database in clear"
        );
    }
    // Control: the same search finds a value stored in clear (the instance's name column).
    let marker = b"i1";
    assert!(bytes.windows(marker.len()).any(|w| w == marker));
    // And the device is readable back through the seal.
    let again = conformance::device_secrets(session).await;
    assert_eq!(again, secrets, "create keeps the stored device");
}
