//! Conformance of the device store, in the order `PersistenceManager` uses it: `exists`,
//! `create` when missing, `load`, then `save` on every change.

use whatsapp_rust::wacore::store::error::StoreError;
use whatsapp_rust::wacore::store::traits::DeviceStore;
use whatsapp_rust::wacore::store::Device;

use super::super::DEVICE_ID;
use super::*;

/// A device as a pairing leaves it, identical in both backends. `Device` has neither
/// `PartialEq` nor `Debug`, so devices are compared through their JSON.
pub(super) fn paired_device() -> Device {
    let mut device = Device::new();
    device.pn = Some(ADDR.parse().expect("a valid JID"));
    device.lid = Some(LID_ADDR.parse().expect("a valid JID"));
    device.push_name = "Conformance".to_string();
    device.next_pre_key_id = 812;
    device.login_counter = 3;
    device
}

pub(super) fn json(device: &Device) -> serde_json::Value {
    serde_json::to_value(device).expect("a device serializes")
}

pub(super) async fn run(h: &Harness) {
    assert!(!same!(h, "no device yet", |b| b.exists()));
    let nothing = same!(h, "load before create", |b| async {
        Ok::<_, StoreError>(b.load().await?.is_none())
    });
    assert!(nothing);

    assert_eq!(same!(h, "create", |b| b.create()), DEVICE_ID);
    assert!(same!(h, "exists after create", |b| b.exists()));
    // Fresh keys, different in each backend: only check that one is there.
    let created = h.ours.load().await.unwrap().expect("create stores a device");
    assert!(created.pn.is_none(), "a created device is not paired");

    let paired = paired_device();
    same!(h, "save", |b| b.save(&paired));
    let loaded = h.ours.load().await.unwrap().expect("saved");
    assert_eq!(json(&loaded), json(&paired));
    let reference = h.reference.load().await.unwrap().expect("saved");
    assert_eq!(json(&loaded), json(&reference), "differs from InMemoryBackend");

    // One device per number: creating again returns its id and leaves it alone
    // (InMemoryBackend hands out a new id).
    assert_eq!(h.ours.create().await.unwrap(), DEVICE_ID);
    assert_eq!(json(&h.ours.load().await.unwrap().unwrap()), json(&paired));
}
