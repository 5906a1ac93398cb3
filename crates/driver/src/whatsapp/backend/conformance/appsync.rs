//! Conformance of the app-state sync store: sync keys, collection versions, mutation MACs.

use std::collections::{BTreeMap, HashMap};

use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::error::StoreError;
use whatsapp_rust::wacore::store::traits::AppStateSyncKey;

use super::*;

pub(super) const KEY_1: &[u8] = &[0, 0, 0, 1, 0x7f];
pub(super) const KEY_2: &[u8] = &[0, 0, 0, 2, 0xff];
pub(super) const REGULAR: &str = "regular";
pub(super) const CRITICAL: &str = "critical_block";

pub(super) fn index_mac(n: u8) -> [u8; 32] {
    [n; 32]
}

fn sync_key(n: u8) -> AppStateSyncKey {
    AppStateSyncKey { key_data: vec![n; 32], fingerprint: vec![n, 1, 2], timestamp: 1_700_000_000 }
}

fn mac(index: u8, value: u8) -> AppStateMutationMAC {
    AppStateMutationMAC { index_mac: index_mac(index).to_vec(), value_mac: vec![value; 32] }
}

pub(super) async fn run(h: &Harness) {
    sync_keys(h).await;
    versions(h).await;
    mutation_macs(h).await;
}

async fn sync_keys(h: &Harness) {
    assert!(same!(h, "missing sync key", |b| b.get_sync_key(KEY_1)).is_none());
    assert_eq!(same!(h, "no latest sync key", |b| b.get_latest_sync_key_id()), None);
    one_write!(h, "set sync key", |b| b.set_sync_key(KEY_1, sync_key(1)));
    assert_eq!(same!(h, "latest sync key", |b| b.get_latest_sync_key_id()), Some(KEY_1.to_vec()));
    same!(h, "set second sync key", |b| b.set_sync_key(KEY_2, sync_key(2)));
    assert_eq!(same!(h, "latest moves", |b| b.get_latest_sync_key_id()), Some(KEY_2.to_vec()));
    let first = same!(h, "get sync key", |b| b.get_sync_key(KEY_1));
    assert_eq!(first.map(|k| k.key_data), Some(vec![1; 32]));
    // Re-setting an older key makes it the latest again, in both backends.
    same!(h, "overwrite sync key", |b| b.set_sync_key(KEY_1, sync_key(3)));
    assert_eq!(same!(h, "latest follows", |b| b.get_latest_sync_key_id()), Some(KEY_1.to_vec()));
    let first = same!(h, "get overwritten sync key", |b| b.get_sync_key(KEY_1));
    assert_eq!(first.map(|k| k.key_data), Some(vec![3; 32]));
}

async fn versions(h: &Harness) {
    let fresh = same!(h, "version of a new collection", |b| b.get_version(REGULAR));
    assert_eq!((fresh.version, fresh.hash), (0, [0; 128]));
    let state = HashState {
        version: 5,
        hash: [7; 128],
        index_value_map: HashMap::from([("index".to_string(), vec![1, 2, 3])]),
        mac_mismatch_fatal: true,
    };
    same!(h, "set version", |b| b.set_version(REGULAR, state.clone()));
    let got = same!(h, "get version", |b| b.get_version(REGULAR));
    assert_eq!((got.version, got.hash, got.mac_mismatch_fatal), (5, [7; 128], true));
    assert_eq!(got.index_value_map, state.index_value_map);
    let next = HashState { version: 6, hash: [8; 128], ..HashState::default() };
    same!(h, "overwrite version", |b| b.set_version(REGULAR, next.clone()));
    assert_eq!(same!(h, "get new version", |b| b.get_version(REGULAR)).version, 6);
    same!(h, "set other collection", |b| b.set_version(CRITICAL, state.clone()));
}

async fn mutation_macs(h: &Harness) {
    one_write!(h, "put MACs", |b| b.put_mutation_macs(REGULAR, 6, &[mac(1, 10), mac(2, 20)]));
    assert_eq!(
        same!(h, "get MAC", |b| b.get_mutation_mac(REGULAR, &index_mac(1))),
        Some(vec![10; 32])
    );
    assert_eq!(same!(h, "missing MAC", |b| b.get_mutation_mac(REGULAR, &index_mac(9))), None);
    let found = same!(h, "get MACs", |b| async {
        let map = b.get_mutation_macs(REGULAR, &[index_mac(2), index_mac(9)]).await?;
        Ok::<_, StoreError>(map.into_iter().collect::<BTreeMap<_, _>>())
    });
    assert_eq!(found, BTreeMap::from([(index_mac(2), vec![20; 32])]));

    same!(h, "same index in another collection", |b| b.put_mutation_macs(
        CRITICAL,
        1,
        &[mac(1, 11)]
    ));
    same!(h, "overwrite MAC", |b| b.put_mutation_macs(REGULAR, 7, &[mac(2, 21)]));
    assert_eq!(
        same!(h, "overwritten MAC", |b| b.get_mutation_mac(REGULAR, &index_mac(2))),
        Some(vec![21; 32])
    );

    let delete = [index_mac(1).to_vec(), index_mac(9).to_vec()];
    one_write!(h, "delete MACs", |b| b.delete_mutation_macs(REGULAR, &delete));
    assert_eq!(same!(h, "deleted MAC", |b| b.get_mutation_mac(REGULAR, &index_mac(1))), None);
    assert_eq!(
        same!(h, "other collection untouched", |b| b.get_mutation_mac(CRITICAL, &index_mac(1))),
        Some(vec![11; 32])
    );

    same!(h, "put before clear", |b| b.put_mutation_macs(REGULAR, 8, &[mac(3, 30)]));
    same!(h, "clear collection", |b| b.clear_mutation_macs(REGULAR));
    for n in [2, 3] {
        assert_eq!(same!(h, "cleared MAC", |b| b.get_mutation_mac(REGULAR, &index_mac(n))), None);
    }
    assert_eq!(
        same!(h, "clear keeps other collections", |b| b.get_mutation_mac(CRITICAL, &index_mac(1))),
        Some(vec![11; 32])
    );
    same!(h, "MAC after clear", |b| b.put_mutation_macs(REGULAR, 9, &[mac(4, 40)]));
}
