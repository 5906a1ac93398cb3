//! Conformance of the protocol store: sender-key devices, LID mappings, base keys, device
//! lists, group metadata and trusted-contact tokens.

use whatsapp_rust::wacore::store::error::StoreError;
use whatsapp_rust::wacore::store::traits::{
    DeviceInfo, DeviceListRecord, LidPnMappingEntry, ProtocolStore, TcTokenEntry,
};

use super::*;

pub(super) const DEVICE_1: &str = "5511987650001:3@s.whatsapp.net";
pub(super) const DEVICE_2: &str = "5511999990002:1@s.whatsapp.net";
pub(super) const DEVICE_3: &str = "100000012345678:7@lid";
pub(super) const PHONE_1: &str = "5511987650001";
pub(super) const PHONE_2: &str = "5511999990002";
pub(super) const PHONE_3: &str = "5511999990003";
pub(super) const LID_1: &str = "100000012345678";
pub(super) const LID_2: &str = "100000087654321";
pub(super) const LID_3: &str = "100000011111111";
pub(super) const LID_4: &str = "100000022222222";
pub(super) const USERS: [&str; 3] = [PHONE_1, PHONE_2, LID_1];
pub(super) const TC_JIDS: [&str; 5] =
    ["1@lid", "2@lid", ODD, "4@lid", "5511987650001@s.whatsapp.net"];

fn mapping(lid: &str, phone: &str, created_at: i64, updated_at: i64) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: lid.to_string(),
        phone_number: phone.to_string(),
        created_at,
        updated_at,
        learning_source: "usync".to_string(),
    }
}

fn device_list(user: &str, devices: &[u32], timestamp: i64) -> DeviceListRecord {
    DeviceListRecord {
        user: user.to_string(),
        devices: devices
            .iter()
            .map(|&d| DeviceInfo::new(d, Some(d + 1)).with_hosting(d == 99))
            .collect(),
        timestamp,
        phash: Some(format!("2:{timestamp}")),
        raw_id: Some(7),
    }
}

fn token(token: &[u8], token_timestamp: i64, sender_timestamp: Option<i64>) -> TcTokenEntry {
    TcTokenEntry { token: token.to_vec(), token_timestamp, sender_timestamp }
}

/// Sorted, since neither backend promises an order for these.
async fn devices_of(b: &dyn Backend, group: &str) -> Result<Vec<(String, bool)>, StoreError> {
    let mut devices = b.get_sender_key_devices(group).await?;
    devices.sort();
    Ok(devices)
}

pub(super) async fn run(h: &Harness) {
    sender_key_devices(h).await;
    lid_mappings(h).await;
    base_keys(h).await;
    device_lists(h).await;
    group_metadata(h).await;
    tc_tokens(h).await;
}

async fn sender_key_devices(h: &Harness) {
    assert!(same!(h, "no devices", |b| devices_of(b, GROUP)).is_empty());
    one_write!(h, "set status", |b| b
        .set_sender_key_status(GROUP, &[(DEVICE_1, true), (DEVICE_2, false)]));
    same!(h, "set status in another group", |b| b
        .set_sender_key_status(GROUP2, &[(DEVICE_1, true), (DEVICE_3, true)]));
    let devices = same!(h, "devices", |b| devices_of(b, GROUP));
    assert_eq!(devices, [(DEVICE_1.to_string(), true), (DEVICE_2.to_string(), false)]);
    same!(h, "update status", |b| b.set_sender_key_status(GROUP, &[(DEVICE_2, true)]));

    one_write!(h, "delete device rows", |b| b.delete_sender_key_device_rows(&[DEVICE_1]));
    let devices = same!(h, "devices after row delete", |b| devices_of(b, GROUP));
    assert_eq!(devices, [(DEVICE_2.to_string(), true)]);
    let devices = same!(h, "other group after row delete", |b| devices_of(b, GROUP2));
    assert_eq!(devices, [(DEVICE_3.to_string(), true)]);
    let before = h.writes();
    same!(h, "delete no rows", |b| b.delete_sender_key_device_rows(&[]));
    assert_eq!(h.writes(), before, "deleting no rows writes nothing");

    // A group and a device with the separator in them stay apart from their neighbours.
    same!(h, "odd group", |b| b.set_sender_key_status(ODD, &[(ODD, true), (DEVICE_2, true)]));
    let devices = same!(h, "odd group devices", |b| devices_of(b, ODD));
    assert_eq!(devices, [(DEVICE_2.to_string(), true), (ODD.to_string(), true)]);
    same!(h, "delete odd device", |b| b.delete_sender_key_device_rows(&[ODD]));
    let devices = same!(h, "odd device deleted", |b| devices_of(b, ODD));
    assert_eq!(devices, [(DEVICE_2.to_string(), true)]);
    assert_eq!(same!(h, "other groups kept", |b| devices_of(b, GROUP)).len(), 1);

    same!(h, "clear group", |b| b.clear_sender_key_devices(GROUP));
    assert!(same!(h, "cleared group", |b| devices_of(b, GROUP)).is_empty());
    assert_eq!(same!(h, "clear keeps other groups", |b| devices_of(b, GROUP2)).len(), 1);
    same!(h, "clear all", |b| b.clear_all_sender_key_devices());
    assert!(same!(h, "cleared all", |b| devices_of(b, GROUP2)).is_empty());
    same!(h, "status after clear", |b| b.set_sender_key_status(GROUP2, &[(DEVICE_3, false)]));
}

async fn lid_mappings(h: &Harness) {
    assert!(same!(h, "missing LID", |b| b.get_lid_mapping(LID_1)).is_none());
    assert!(same!(h, "missing phone", |b| b.get_pn_mapping(PHONE_1)).is_none());
    same!(h, "put mapping", |b| b.put_lid_mapping(&mapping(LID_1, PHONE_1, 100, 100)));
    let by_lid = same!(h, "by LID", |b| b.get_lid_mapping(LID_1)).expect("mapped");
    assert_eq!((by_lid.phone_number.as_str(), by_lid.created_at), (PHONE_1, 100));
    let by_phone = same!(h, "by phone", |b| b.get_pn_mapping(PHONE_1)).expect("mapped");
    assert_eq!(by_phone.lid, LID_1);

    // A newer LID for the same phone becomes its current one; re-learning the old one makes
    // it current again.
    same!(h, "second LID", |b| b.put_lid_mapping(&mapping(LID_2, PHONE_1, 200, 200)));
    assert_eq!(same!(h, "newest LID", |b| b.get_pn_mapping(PHONE_1)).unwrap().lid, LID_2);
    same!(h, "re-learn", |b| b.put_lid_mapping(&mapping(LID_1, PHONE_1, 300, 300)));
    assert_eq!(same!(h, "re-learned LID", |b| b.get_pn_mapping(PHONE_1)).unwrap().lid, LID_1);

    let batch = [mapping(LID_3, PHONE_3, 400, 400), mapping(LID_4, PHONE_3, 10, 10)];
    one_write!(h, "mapping batch", |b| b.put_lid_mappings(&batch));
    // The whole entry is replaced, created_at included (the library chose it).
    same!(h, "overwrite mapping", |b| b.put_lid_mapping(&mapping(LID_3, PHONE_3, 5, 500)));
    let entry = same!(h, "overwritten mapping", |b| b.get_lid_mapping(LID_3)).unwrap();
    assert_eq!((entry.created_at, entry.updated_at), (5, 500));

    // LID_2 moves to another phone. Both backends answer for the new phone alike; for the
    // old phone only ours still finds LID_1 (InMemoryBackend drops the phone's entry).
    same!(h, "move LID", |b| b.put_lid_mapping(&mapping(LID_2, PHONE_2, 600, 600)));
    assert_eq!(same!(h, "moved LID", |b| b.get_pn_mapping(PHONE_2)).unwrap().lid, LID_2);
    let old_phone = h.ours.get_pn_mapping(PHONE_1).await.unwrap().expect("still mapped");
    assert_eq!(old_phone.lid, LID_1, "the other LID of the old phone is still found");

    let all = same!(h, "all mappings", |b| async {
        let mut all = b.get_all_lid_mappings().await?;
        all.sort_by(|a, b| a.lid.cmp(&b.lid));
        Ok::<_, StoreError>(all)
    });
    let lids: Vec<&str> = all.iter().map(|e| e.lid.as_str()).collect();
    assert_eq!(lids, [LID_3, LID_1, LID_4, LID_2]);
}

async fn base_keys(h: &Harness) {
    let (msg, key) = ("3EB0AA", &b"base-1"[..]);
    assert!(!same!(h, "no base key", |b| b.has_same_base_key(ADDR, msg, key)));
    same!(h, "save base key", |b| b.save_base_key(ADDR, msg, key));
    assert!(same!(h, "same base key", |b| b.has_same_base_key(ADDR, msg, key)));
    assert!(!same!(h, "other base key", |b| b.has_same_base_key(ADDR, msg, b"base-2")));
    assert!(!same!(h, "other message", |b| b.has_same_base_key(ADDR, "3EB0BB", key)));
    assert!(!same!(h, "other address", |b| b.has_same_base_key(OTHER_ADDR, msg, key)));
    same!(h, "overwrite base key", |b| b.save_base_key(ADDR, msg, b"base-2"));
    assert!(same!(h, "overwritten base key", |b| b.has_same_base_key(ADDR, msg, b"base-2")));
    same!(h, "delete base key", |b| b.delete_base_key(ADDR, msg));
    assert!(!same!(h, "deleted base key", |b| b.has_same_base_key(ADDR, msg, b"base-2")));
    same!(h, "keep a base key", |b| b.save_base_key(ODD, "3EB0CC", b"base-3"));
}

async fn device_lists(h: &Harness) {
    assert!(same!(h, "no device list", |b| b.get_devices(PHONE_1)).is_none());
    same!(h, "update device list", |b| b.update_device_list(device_list(PHONE_1, &[0, 3], 10)));
    let got = same!(h, "device list", |b| b.get_devices(PHONE_1)).unwrap();
    assert_eq!((got.devices.len(), got.timestamp, got.raw_id), (2, 10, Some(7)));
    same!(h, "replace device list", |b| b.update_device_list(device_list(PHONE_1, &[0, 99], 20)));
    let got = same!(h, "replaced device list", |b| b.get_devices(PHONE_1)).unwrap();
    assert!(got.devices[1].is_hosted && got.timestamp == 20);

    let batch = vec![device_list(PHONE_2, &[0], 30), device_list(LID_1, &[0, 1, 2], 30)];
    one_write!(h, "device list batch", |b| b.update_device_lists(batch.clone()));
    same!(h, "delete device list", |b| b.delete_devices(PHONE_2));
    assert!(same!(h, "deleted device list", |b| b.get_devices(PHONE_2)).is_none());
    assert_eq!(same!(h, "batched list", |b| b.get_devices(LID_1)).unwrap().devices.len(), 3);
}

async fn group_metadata(h: &Harness) {
    assert_eq!(same!(h, "no metadata", |b| b.get_group_metadata(GROUP)), None);
    same!(h, "put metadata", |b| b.put_group_metadata(GROUP, b"meta-1"));
    same!(h, "overwrite metadata", |b| b.put_group_metadata(GROUP, b"meta-2"));
    assert_eq!(same!(h, "metadata", |b| b.get_group_metadata(GROUP)), Some(b"meta-2".to_vec()));
    same!(h, "delete metadata", |b| b.delete_group_metadata(GROUP));
    assert_eq!(same!(h, "deleted metadata", |b| b.get_group_metadata(GROUP)), None);
    same!(h, "keep metadata", |b| b.put_group_metadata(GROUP2, b"meta-3"));
}

async fn tc_tokens(h: &Harness) {
    let [j1, j2, j3, j4, j5] = TC_JIDS;
    assert!(same!(h, "no token", |b| b.get_tc_token(j1)).is_none());
    same!(h, "put token", |b| b.put_tc_token(j1, &token(&[1, 2], 100, None)));

    // Newer wins; an older real token does not replace a newer one.
    same!(h, "older token", |b| b.store_received_tc_token(j1, &[9], 50));
    assert_eq!(same!(h, "kept newer token", |b| b.get_tc_token(j1)).unwrap().token, [1, 2]);
    same!(h, "newer token", |b| b.store_received_tc_token(j1, &[3], 150));
    same!(h, "sender touch", |b| b.touch_tc_token_sender_timestamp(j1, 120));
    same!(h, "older sender touch", |b| b.touch_tc_token_sender_timestamp(j1, 110));
    let got = same!(h, "merged token", |b| b.get_tc_token(j1)).unwrap();
    assert_eq!((got.token, got.token_timestamp, got.sender_timestamp), (vec![3], 150, Some(120)));

    // A touch on an unknown contact leaves a placeholder, which never blocks a real token.
    same!(h, "placeholder", |b| b.touch_tc_token_sender_timestamp(j2, 130));
    let got = same!(h, "placeholder token", |b| b.get_tc_token(j2)).unwrap();
    assert_eq!((got.token, got.token_timestamp, got.sender_timestamp), (vec![], 130, Some(130)));
    same!(h, "token over placeholder", |b| b.store_received_tc_token(j2, &[5], 10));
    let got = same!(h, "real token", |b| b.get_tc_token(j2)).unwrap();
    assert_eq!((got.token, got.token_timestamp, got.sender_timestamp), (vec![5], 10, Some(130)));
    same!(h, "received on unknown contact", |b| b.store_received_tc_token(j3, &[7], 10));

    let jids = same!(h, "all token JIDs", |b| async {
        let mut jids = b.get_all_tc_token_jids().await?;
        jids.sort();
        Ok::<_, StoreError>(jids)
    });
    assert_eq!(jids, [j1, j2, j3]);

    // j1 has a live token, j2 a live sender bucket, j3 neither.
    assert_eq!(same!(h, "expire tokens", |b| b.delete_expired_tc_tokens(100, 125)), 1);
    assert!(same!(h, "expired token", |b| b.get_tc_token(j3)).is_none());
    assert_eq!(same!(h, "expire the rest", |b| b.delete_expired_tc_tokens(200, 200)), 2);
    same!(h, "put another token", |b| b.put_tc_token(j4, &token(&[4], 400, Some(400))));
    same!(h, "delete token", |b| b.delete_tc_token(j4));
    assert!(same!(h, "deleted token", |b| b.get_tc_token(j4)).is_none());
    same!(h, "keep a token", |b| b.put_tc_token(j5, &token(&[5], 500, None)));
}
