//! Tests of the backend over the in-memory session store: the conformance suite, a restart,
//! the key layout, error mapping and the atomicity of read-modify-write operations.

use std::result::Result;
use std::sync::Arc;

use async_trait::async_trait;
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::wacore::store::error::StoreError;
use whatsapp_rust::wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceStore, LidPnMappingEntry, MsgSecretStore, ProtocolStore,
    SignalStore,
};

use super::*;
use crate::memory::MemorySessionStore;

#[tokio::test]
async fn conformance_over_the_memory_store() {
    conformance::run(Arc::new(MemorySessionStore::new())).await;
}

#[tokio::test]
async fn a_backend_recreated_over_the_same_store_sees_everything() {
    let store = Arc::new(MemorySessionStore::new());
    let device_json = {
        let backend = SessionBackend::new(store.clone());
        assert_eq!(backend.create().await.unwrap(), DEVICE_ID);
        let mut device = backend.load().await.unwrap().unwrap();
        device.push_name = "Before restart".into();
        backend.save(&device).await.unwrap();
        backend.put_identity("1@s.whatsapp.net", [9; 32]).await.unwrap();
        let sessions: Vec<(Arc<str>, Bytes)> = vec![("1@s.whatsapp.net".into(), "s".into())];
        backend.put_sessions_batch(&sessions).await.unwrap();
        backend.store_prekeys_batch(&[(7, "pk".into()), (8, "pk8".into())], false).await.unwrap();
        backend.mark_prekeys_uploaded(&[7]).await.unwrap();
        let key = AppStateSyncKey { key_data: vec![1], fingerprint: vec![2], timestamp: 3 };
        backend.set_sync_key(&[0xab], key).await.unwrap();
        backend.put_lid_mapping(&mapping("100", "55")).await.unwrap();
        backend.store_sent_message("g@g.us", "ID1", b"payload").await.unwrap();
        backend
            .put_msg_secret("c@s.whatsapp.net", "c@s.whatsapp.net", "M", &[4; 32])
            .await
            .unwrap();
        serde_json::to_string(&device).unwrap()
    };

    let backend = SessionBackend::new(store);
    assert!(backend.exists().await.unwrap());
    let device = backend.load().await.unwrap().unwrap();
    assert_eq!(serde_json::to_string(&device).unwrap(), device_json);
    assert_eq!(backend.load_identity("1@s.whatsapp.net").await.unwrap(), Some([9; 32]));
    assert_eq!(backend.get_session("1@s.whatsapp.net").await.unwrap().unwrap(), "s");
    assert_eq!(backend.get_max_prekey_id().await.unwrap(), 8);
    assert_eq!(backend.prekey_uploaded(7).await.unwrap(), Some(true));
    assert_eq!(backend.prekey_uploaded(8).await.unwrap(), Some(false));
    assert_eq!(backend.get_latest_sync_key_id().await.unwrap(), Some(vec![0xab]));
    assert_eq!(backend.get_pn_mapping("55").await.unwrap().unwrap().lid, "100");
    let sent = backend.take_sent_message("g@g.us", "ID1").await.unwrap();
    assert_eq!(sent.as_deref(), Some(&b"payload"[..]));
    let secret = backend.get_msg_secret("c@s.whatsapp.net", "c@s.whatsapp.net", "M").await;
    assert_eq!(secret.unwrap(), Some(vec![4; 32]));
}

#[tokio::test]
async fn keys_follow_the_documented_scheme() {
    let store = Arc::new(MemorySessionStore::new());
    let backend = SessionBackend::new(store.clone());
    backend.create().await.unwrap();
    backend.put_identity("5511:2@s.whatsapp.net", [1; 32]).await.unwrap();
    backend.put_session("5511:2@s.whatsapp.net", b"s").await.unwrap();
    backend.store_prekey(42, b"p", false).await.unwrap();
    backend.store_signed_prekey(1, b"sp").await.unwrap();
    backend.put_sender_key("g@g.us::5511:2@s.whatsapp.net", b"sk").await.unwrap();
    let key = AppStateSyncKey::default();
    backend.set_sync_key(&[0x01, 0xfe], key).await.unwrap();
    backend.set_version("regular", Default::default()).await.unwrap();
    let mac = whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC {
        index_mac: vec![0xaa, 0x0b],
        value_mac: vec![1],
    };
    backend.put_mutation_macs("regular", 1, &[mac]).await.unwrap();
    backend.set_sender_key_status("g@g.us", &[("5511:2@s.whatsapp.net", true)]).await.unwrap();
    backend.put_lid_mapping(&mapping("100", "5511")).await.unwrap();
    backend.save_base_key("5511:2@s.whatsapp.net", "ID", b"bk").await.unwrap();
    backend.put_group_metadata("g@g.us", b"meta").await.unwrap();
    backend.touch_tc_token_sender_timestamp("100@lid", 5).await.unwrap();
    backend.store_sent_message("g@g.us", "ID", b"m").await.unwrap();
    backend.store_pending_inbound("g@g.us", "5511@s.whatsapp.net", "ID", b"m").await.unwrap();
    backend.put_msg_secret("g@g.us", "5511@s.whatsapp.net", "ID", &[0; 32]).await.unwrap();

    assert_eq!(
        store.keys(),
        [
            "appsync/key/01fe",
            "appsync/latest_key",
            "appsync/mac/regular/aa0b",
            "appsync/version/regular",
            "basekey/5511:2@s.whatsapp.net/ID",
            "device",
            "group_meta/g@g.us",
            "identity/5511:2@s.whatsapp.net",
            "lid/100",
            "msgsecret/g@g.us/5511@s.whatsapp.net/ID",
            "pending_inbound/g@g.us/5511@s.whatsapp.net/ID",
            "pn/5511/100",
            "prekey/0000000042",
            "sender_key/g@g.us::5511:2@s.whatsapp.net",
            "sent/g@g.us/ID",
            "session/5511:2@s.whatsapp.net",
            "signed_prekey/0000000001",
            "skdev/g@g.us/5511:2@s.whatsapp.net",
            "tctoken/100@lid",
        ]
    );
}

#[tokio::test]
async fn store_failures_map_to_store_errors_that_keep_their_cause() {
    let unreadable =
        SessionBackend::new(Arc::new(FailingStore(SessionError::Unreadable("tampered".into()))));
    let err = unreadable.load().await.err().expect("fails");
    assert!(matches!(err, StoreError::Serialization(_)), "{err:?}");
    assert!(matches!(session_error(&err), Some(SessionError::Unreadable(_))));
    // `exists` decodes too, so an unreadable device stops the client build.
    assert!(unreadable.exists().await.is_err());

    let down = SessionBackend::new(Arc::new(FailingStore(SessionError::Io("disk".into()))));
    let err = down.put_session("a@s.whatsapp.net", b"s").await.unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    assert!(matches!(session_error(&err), Some(SessionError::Io(_))));
    // Through an anyhow wrapper, as the library reports it.
    let wrapped = anyhow_like(err);
    assert!(matches!(session_error(&*wrapped), Some(SessionError::Io(_))));
}

#[tokio::test]
async fn check_readable_tells_an_unreadable_session_from_a_new_or_sound_one() {
    let store = Arc::new(MemorySessionStore::new());
    assert!(SessionBackend::check_readable(store.as_ref()).await.is_ok(), "never linked");
    SessionBackend::new(store.clone()).create().await.unwrap();
    assert!(SessionBackend::check_readable(store.as_ref()).await.is_ok(), "sound device");

    store.save("device", b"{\"pn\":").await.unwrap();
    let err = SessionBackend::check_readable(store.as_ref()).await.unwrap_err();
    assert!(matches!(&err, SessionError::Unreadable(d) if d.contains("`device`")), "{err}");

    let sealed_elsewhere = FailingStore(SessionError::Unreadable("wrong master key".into()));
    let err = SessionBackend::check_readable(&sealed_elsewhere).await.unwrap_err();
    assert!(matches!(err, SessionError::Unreadable(_)));
    let down = FailingStore(SessionError::Io("disk".into()));
    let err = SessionBackend::check_readable(&down).await.unwrap_err();
    assert!(matches!(err, SessionError::Io(_)), "an outage is not an unreadable session");
}

#[tokio::test]
async fn a_malformed_value_is_a_serialization_error_naming_its_key() {
    let store = Arc::new(MemorySessionStore::new());
    store.save("identity/a@s.whatsapp.net", &[1, 2, 3]).await.unwrap();
    store.save("lid/100", b"not json").await.unwrap();
    let backend = SessionBackend::new(store);

    let err = backend.load_identity("a@s.whatsapp.net").await.unwrap_err();
    let StoreError::Serialization(source) = &err else { panic!("{err:?}") };
    let malformed = source.downcast_ref::<MalformedValue>().expect("a MalformedValue");
    assert_eq!(malformed.key, "identity/a@s.whatsapp.net");
    assert!(matches!(backend.get_all_lid_mappings().await, Err(StoreError::Serialization(_))));
    assert!(session_error(&err).is_none(), "not a store failure");
}

/// Many retry receipts for one message, interleaving at every store call: exactly one gets
/// the payload. Same for merges racing on one message secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_modify_write_operations_are_atomic() {
    let store = Arc::new(YieldingStore(MemorySessionStore::new()));
    let backend = Arc::new(SessionBackend::new(store));
    backend.store_sent_message("g@g.us", "ID", b"payload").await.unwrap();

    let takers: Vec<_> = (0..16)
        .map(|_| {
            let backend = backend.clone();
            tokio::spawn(async move { backend.take_sent_message("g@g.us", "ID").await.unwrap() })
        })
        .collect();
    let mut taken = 0;
    for t in takers {
        taken += usize::from(t.await.unwrap().is_some());
    }
    assert_eq!(taken, 1);

    let touches: Vec<_> = (1..=16)
        .map(|ts| {
            let backend = backend.clone();
            tokio::spawn(async move {
                backend.touch_tc_token_sender_timestamp("1@lid", ts).await.unwrap();
                backend.store_received_tc_token("1@lid", &[ts as u8], ts).await.unwrap();
            })
        })
        .collect();
    for t in touches {
        t.await.unwrap();
    }
    let token = backend.get_tc_token("1@lid").await.unwrap().unwrap();
    assert_eq!((token.sender_timestamp, token.token_timestamp), (Some(16), 16));
}

fn mapping(lid: &str, phone: &str) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: lid.into(),
        phone_number: phone.into(),
        created_at: 1,
        updated_at: 1,
        learning_source: "pairing".into(),
    }
}

/// Wraps an error in another layer, the way `anyhow` context does.
fn anyhow_like(err: StoreError) -> Box<dyn std::error::Error + Send + Sync> {
    #[derive(Debug, thiserror::Error)]
    #[error("store call failed")]
    struct Context(#[source] StoreError);
    Box::new(Context(err))
}

struct FailingStore(SessionError);

#[async_trait]
impl SessionStore for FailingStore {
    async fn load(&self, _: &str) -> Result<Option<Vec<u8>>, SessionError> {
        Err(self.0.clone())
    }
    async fn load_prefix(&self, _: &str) -> Result<Vec<(String, Vec<u8>)>, SessionError> {
        Err(self.0.clone())
    }
    async fn write(&self, _: Vec<SessionWrite>) -> Result<(), SessionError> {
        Err(self.0.clone())
    }
    async fn clear(&self) -> Result<(), SessionError> {
        Err(self.0.clone())
    }
}

/// Yields to the scheduler before every call, so concurrent operations interleave the way
/// they do over a real database.
struct YieldingStore(MemorySessionStore);

#[async_trait]
impl SessionStore for YieldingStore {
    async fn load(&self, key: &str) -> Result<Option<Vec<u8>>, SessionError> {
        tokio::task::yield_now().await;
        self.0.load(key).await
    }
    async fn load_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, SessionError> {
        tokio::task::yield_now().await;
        self.0.load_prefix(prefix).await
    }
    async fn write(&self, writes: Vec<SessionWrite>) -> Result<(), SessionError> {
        tokio::task::yield_now().await;
        self.0.write(writes).await
    }
    async fn clear(&self) -> Result<(), SessionError> {
        self.0.clear().await
    }
}
