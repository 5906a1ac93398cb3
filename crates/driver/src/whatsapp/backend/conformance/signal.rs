//! Conformance of the Signal store: identities, sessions, pre-keys, signed pre-keys, sender keys.

use std::sync::Arc;

use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::wacore::store::error::StoreError;
use whatsapp_rust::wacore::store::traits::SignalStore;

use super::*;

pub(super) async fn run(h: &Harness) {
    identities(h).await;
    sessions(h).await;
    user_lookup(h).await;
    prekeys(h).await;
    signed_prekeys(h).await;
    sender_keys(h).await;
}

async fn identities(h: &Harness) {
    assert_eq!(same!(h, "missing identity", |b| b.load_identity(ADDR)), None);
    same!(h, "put identity", |b| b.put_identity(ADDR, [1; 32]));
    assert_eq!(same!(h, "load identity", |b| b.load_identity(ADDR)), Some([1; 32]));
    same!(h, "overwrite identity", |b| b.put_identity(ADDR, [2; 32]));
    assert_eq!(same!(h, "load overwritten identity", |b| b.load_identity(ADDR)), Some([2; 32]));

    let batch: Vec<(Arc<str>, [u8; 32])> =
        vec![(OTHER_ADDR.into(), [3; 32]), (LID_ADDR.into(), [4; 32]), (ODD.into(), [5; 32])];
    one_write!(h, "identity batch", |b| b.put_identities_batch(&batch));
    assert_eq!(same!(h, "batched identity", |b| b.load_identity(LID_ADDR)), Some([4; 32]));
    assert_eq!(same!(h, "escaped identity", |b| b.load_identity(ODD)), Some([5; 32]));

    same!(h, "delete identity", |b| b.delete_identity(OTHER_ADDR));
    assert_eq!(same!(h, "deleted identity", |b| b.load_identity(OTHER_ADDR)), None);
    same!(h, "delete a missing identity", |b| b.delete_identity(OTHER_ADDR));
}

async fn sessions(h: &Harness) {
    assert_eq!(same!(h, "missing session", |b| b.get_session(ADDR)), None);
    assert!(!same!(h, "has missing session", |b| b.has_session(ADDR)));
    same!(h, "put session", |b| b.put_session(ADDR, b"session-1"));
    assert_eq!(
        same!(h, "get session", |b| b.get_session(ADDR)),
        Some(Bytes::from_static(b"session-1"))
    );
    assert!(same!(h, "has session", |b| b.has_session(ADDR)));
    same!(h, "overwrite session", |b| b.put_session(ADDR, b"session-2"));
    assert_eq!(
        same!(h, "get overwritten session", |b| b.get_session(ADDR)),
        Some(Bytes::from_static(b"session-2"))
    );

    let batch: Vec<(Arc<str>, Bytes)> = vec![
        (SESSION_ONLY_ADDR.into(), Bytes::from_static(b"session-3")),
        (OTHER_ADDR.into(), Bytes::from_static(b"session-4")),
        (ADDR.into(), Bytes::from_static(b"session-5")),
    ];
    one_write!(h, "session batch", |b| b.put_sessions_batch(&batch));
    assert_eq!(
        same!(h, "session overwritten by a batch", |b| b.get_session(ADDR)),
        Some(Bytes::from_static(b"session-5"))
    );
    same!(h, "delete session", |b| b.delete_session(OTHER_ADDR));
    assert!(!same!(h, "has deleted session", |b| b.has_session(OTHER_ADDR)));
    assert!(same!(h, "batched session", |b| b.has_session(SESSION_ONLY_ADDR)));
}

async fn user_lookup(h: &Harness) {
    assert!(same!(h, "user with session+identity", |b| b.has_signal_state_for_user(USER)));
    assert!(same!(h, "LID user with identity", |b| b.has_signal_state_for_user(LID_USER)));
    assert!(same!(h, "user with session only", |b| b.has_signal_state_for_user(SESSION_ONLY_USER)));
    assert!(!same!(h, "prefix of a user", |b| b.has_signal_state_for_user(USER_PREFIX)));
    assert!(!same!(h, "unknown user", |b| b.has_signal_state_for_user("5511999990002")));
}

async fn prekeys(h: &Harness) {
    assert_eq!(same!(h, "max pre-key id of no pre-keys", |b| b.get_max_prekey_id()), 0);
    same!(h, "store pre-key", |b| b.store_prekey(9, b"pk-9", false));
    let batch: Vec<(u32, Bytes)> = [10, 100, 11]
        .into_iter()
        .map(|id| (id, Bytes::from(format!("pk-{id}").into_bytes())))
        .collect();
    one_write!(h, "pre-key batch", |b| b.store_prekeys_batch(&batch, false));
    // 9 < 10 < 100 numerically but not as unpadded strings.
    assert_eq!(same!(h, "max pre-key id", |b| b.get_max_prekey_id()), 100);
    assert_eq!(same!(h, "load pre-key", |b| b.load_prekey(10)), Some(Bytes::from_static(b"pk-10")));
    assert_eq!(same!(h, "missing pre-key", |b| b.load_prekey(12)), None);
    let loaded = same!(h, "pre-key batch load", |b| b.load_prekeys_batch(&[12, 100, 9]));
    let ids: Vec<u32> = loaded.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [100, 9], "only the stored ids, in the order asked");

    same!(h, "remove highest pre-key", |b| b.remove_prekey(100));
    assert_eq!(same!(h, "max pre-key id after removal", |b| b.get_max_prekey_id()), 11);
    // WhatsApp pre-key ids are 24-bit; the top of the range still sorts last.
    same!(h, "store top pre-key", |b| b.store_prekey(16_777_215, b"pk-top", true));
    assert_eq!(same!(h, "max pre-key id at the top", |b| b.get_max_prekey_id()), 16_777_215);
    same!(h, "remove top pre-key", |b| b.remove_prekey(16_777_215));
    assert_eq!(same!(h, "max pre-key id after wrap", |b| b.get_max_prekey_id()), 11);

    // Marking is an update: 12 was never stored and must not appear.
    one_write!(h, "mark uploaded", |b| b.mark_prekeys_uploaded(&[9, 10, 12]));
    assert_eq!(same!(h, "marking does not insert", |b| b.load_prekey(12)), None);
    assert_eq!(
        same!(h, "marking keeps the record", |b| b.load_prekey(9)),
        Some(Bytes::from_static(b"pk-9"))
    );
    let flags = [(9, Some(true)), (10, Some(true)), (11, Some(false)), (12, None)];
    for (id, expected) in flags {
        assert_eq!(h.ours.prekey_uploaded(id).await.unwrap(), expected, "uploaded flag of {id}");
    }
    // Already uploaded: nothing to rewrite, nothing written.
    let before = h.writes();
    h.ours.mark_prekeys_uploaded(&[9, 10]).await.unwrap();
    assert_eq!(h.writes(), before, "re-marking uploaded keys writes nothing");

    // A store is an upsert of record and flag together.
    same!(h, "overwrite pre-key", |b| b.store_prekey(11, b"pk-11b", true));
    assert_eq!(
        same!(h, "load overwritten pre-key", |b| b.load_prekey(11)),
        Some(Bytes::from_static(b"pk-11b"))
    );
    assert_eq!(h.ours.prekey_uploaded(11).await.unwrap(), Some(true));
    same!(h, "re-store pre-key as not uploaded", |b| b.store_prekey(10, b"pk-10", false));
    assert_eq!(h.ours.prekey_uploaded(10).await.unwrap(), Some(false));
}

async fn signed_prekeys(h: &Harness) {
    assert_eq!(same!(h, "no signed pre-keys", |b| b.load_all_signed_prekeys()), vec![]);
    same!(h, "store signed pre-key 2", |b| b.store_signed_prekey(2, b"spk-2"));
    same!(h, "store signed pre-key 1", |b| b.store_signed_prekey(1, b"spk-1"));
    same!(h, "store signed pre-key 3", |b| b.store_signed_prekey(3, b"spk-3"));
    same!(h, "overwrite signed pre-key", |b| b.store_signed_prekey(1, b"spk-1b"));
    assert_eq!(
        same!(h, "load signed pre-key", |b| b.load_signed_prekey(1)),
        Some(b"spk-1b".to_vec())
    );
    assert_eq!(same!(h, "missing signed pre-key", |b| b.load_signed_prekey(4)), None);
    same!(h, "remove signed pre-key", |b| b.remove_signed_prekey(3));
    let all = same!(h, "all signed pre-keys", |b| async {
        let mut all = b.load_all_signed_prekeys().await?;
        all.sort();
        Ok::<_, StoreError>(all)
    });
    assert_eq!(all, vec![(1, b"spk-1b".to_vec()), (2, b"spk-2".to_vec())]);
}

async fn sender_keys(h: &Harness) {
    let name = format!("{GROUP}::{ADDR}");
    assert_eq!(same!(h, "missing sender key", |b| b.get_sender_key(&name)), None);
    same!(h, "put sender key", |b| b.put_sender_key(&name, b"sk-1"));
    same!(h, "overwrite sender key", |b| b.put_sender_key(&name, b"sk-2"));
    assert_eq!(same!(h, "get sender key", |b| b.get_sender_key(&name)), Some(b"sk-2".to_vec()));

    let batch: Vec<(Arc<str>, Bytes)> = vec![
        (format!("{GROUP2}::{ADDR}").into(), Bytes::from_static(b"sk-3")),
        (ODD.into(), Bytes::from_static(b"sk-4")),
    ];
    one_write!(h, "sender key batch", |b| b.put_sender_keys_batch(&batch));
    assert_eq!(same!(h, "escaped sender key", |b| b.get_sender_key(ODD)), Some(b"sk-4".to_vec()));
    same!(h, "delete sender key", |b| b.delete_sender_key(ODD));
    assert_eq!(same!(h, "deleted sender key", |b| b.get_sender_key(ODD)), None);
}
