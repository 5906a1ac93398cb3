//! The state the scenarios leave behind, read back through the store traits: it must be the
//! same in both backends, and the same again in a backend re-created over the store (a
//! process restart), which proves every write reached the store and nothing lives only in
//! memory.

use whatsapp_rust::wacore::store::error::StoreError;
use whatsapp_rust::wacore::store::traits::ProtocolStore;

use super::super::SessionBackend;
use super::*;
use super::{appsync as a, buffers as buf, device, msg_secret as ms, protocol as p};

/// `(what was read, its Debug form)`, in a fixed order.
type Snapshot = Vec<(String, String)>;

pub(super) async fn check_restart(h: &Harness) {
    let ours = snapshot(&h.ours).await;
    let reference = snapshot(&h.reference).await;
    assert_same(&ours, &reference, "InMemoryBackend");

    let restarted = h.restarted();
    assert_same(&snapshot(&restarted).await, &ours, "the backend before the restart");
    ours_only_after_restart(h, &restarted).await;
}

fn assert_same(got: &Snapshot, expected: &Snapshot, against: &str) {
    assert_eq!(got.len(), expected.len());
    for ((what, got), (_, expected)) in got.iter().zip(expected) {
        assert_eq!(got, expected, "{what}: differs from {against}");
    }
}

/// What the snapshot cannot compare with `InMemoryBackend` (see the suite's doc).
async fn ours_only_after_restart(h: &Harness, restarted: &SessionBackend) {
    for (id, uploaded) in [(9, Some(true)), (10, Some(false)), (11, Some(true)), (12, None)] {
        assert_eq!(restarted.prekey_uploaded(id).await.unwrap(), uploaded, "pre-key {id}");
    }
    let old_phone = restarted.get_pn_mapping(p::PHONE_1).await.unwrap().expect("mapped");
    assert_eq!(old_phone.lid, p::LID_1);
    // Sent messages can only be read by taking them.
    let taken = restarted.take_sent_message(buf::CHAT, buf::KEPT_SENT).await.unwrap();
    assert_eq!(taken.as_deref(), Some(&b"payload-k"[..]));
    let reference = h.reference.take_sent_message(buf::CHAT, buf::KEPT_SENT).await.unwrap();
    assert_eq!(taken, reference);
}

async fn snapshot(b: &dyn Backend) -> Snapshot {
    let mut s = Snapshot::new();
    macro_rules! note {
        ($what:expr, $call:expr) => {{
            let what = $what.to_string();
            let value = $call.await.unwrap_or_else(|e| panic!("{what}: {e:?}"));
            s.push((what, format!("{value:?}")));
        }};
    }

    let device = b.load().await.unwrap().map(|d| device::json(&d));
    s.push(("device".into(), format!("{device:?}")));

    for addr in [ADDR, ADDR_PRIMARY, OTHER_ADDR, LID_ADDR, ODD, SESSION_ONLY_ADDR] {
        note!(format!("identity {addr}"), b.load_identity(addr));
        note!(format!("session {addr}"), b.get_session(addr));
    }
    for user in [USER, USER_PREFIX, LID_USER, SESSION_ONLY_USER] {
        note!(format!("signal state of {user}"), b.has_signal_state_for_user(user));
    }
    note!("max pre-key id", b.get_max_prekey_id());
    note!("pre-keys", b.load_prekeys_batch(&[9, 10, 11, 12, 100, 16_777_215]));
    note!("signed pre-keys", async {
        let mut all = b.load_all_signed_prekeys().await?;
        all.sort();
        Ok::<_, StoreError>(all)
    });
    for name in [format!("{GROUP}::{ADDR}"), format!("{GROUP2}::{ADDR}"), ODD.to_string()] {
        note!(format!("sender key {name}"), b.get_sender_key(&name));
    }

    for key_id in [a::KEY_1, a::KEY_2] {
        note!(format!("sync key {key_id:?}"), b.get_sync_key(key_id));
    }
    note!("latest sync key", b.get_latest_sync_key_id());
    for name in [a::REGULAR, a::CRITICAL] {
        note!(format!("version {name}"), b.get_version(name));
        for n in 1..=4 {
            note!(format!("MAC {name} {n}"), b.get_mutation_mac(name, &a::index_mac(n)));
        }
    }

    for group in [GROUP, GROUP2] {
        note!(format!("sender key devices {group}"), async {
            let mut devices = b.get_sender_key_devices(group).await?;
            devices.sort();
            Ok::<_, StoreError>(devices)
        });
        note!(format!("metadata {group}"), b.get_group_metadata(group));
    }
    note!("LID mappings", async {
        let mut all = b.get_all_lid_mappings().await?;
        all.sort_by(|x, y| x.lid.cmp(&y.lid));
        Ok::<_, StoreError>(all)
    });
    for phone in [p::PHONE_2, p::PHONE_3] {
        note!(format!("LID of {phone}"), b.get_pn_mapping(phone));
    }
    note!("base key", b.has_same_base_key(ODD, "3EB0CC", b"base-3"));
    note!("deleted base key", b.has_same_base_key(ADDR, "3EB0AA", b"base-2"));
    for user in p::USERS {
        note!(format!("devices of {user}"), b.get_devices(user));
    }
    note!("token JIDs", async {
        let mut jids = b.get_all_tc_token_jids().await?;
        jids.sort();
        Ok::<_, StoreError>(jids)
    });
    for jid in p::TC_JIDS {
        note!(format!("token {jid}"), b.get_tc_token(jid));
    }

    for id in buf::PENDING_IDS {
        note!(format!("pending {id}"), b.get_pending_inbound(buf::CHAT, buf::SENDER, id));
    }
    for id in ms::IDS {
        note!(format!("secret {id}"), b.get_msg_secret_with_ts(ms::CHAT, ms::SENDER, id));
    }
    s
}
