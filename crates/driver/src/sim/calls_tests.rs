//! Calls on the simulated network: a contact's call reaches the number's driver as
//! [`DriverEvent::Call`], addressed like an inbound message's sender; the number rejects it
//! once, and the outbox shows the rejection; the number's own presence is recorded.

use super::tests::{local, next, paired, phone};
use super::*;
use crate::{DriverError, DriverEvent, Presence};

#[tokio::test(start_paused = true)]
async fn a_call_rings_on_the_number_and_its_rejection_is_recorded() {
    let (net, driver) = local();
    let (conn, mut rx, _store, _) = paired(&driver, "i1", "+5511999990001").await;
    let spec = CallSpec { from: "+55 11 98888-0002".into(), ..Default::default() };
    let call_id = net.call("i1", spec).await.unwrap().call_id;
    let DriverEvent::Call(call) = next(&mut rx).await else { panic!("expected a call") };
    let caller = phone("+5511988880002").jid();
    assert_eq!(call.id, call_id);
    assert_eq!((&call.from, &call.creator, &call.from_alt), (&caller, &caller, &None));
    assert!(!call.video && !call.is_group && call.group.is_none());

    conn.reject_call(&call).await.unwrap();
    let items = net.outbox("i1").await.unwrap();
    assert!(
        matches!(&items[..], [OutboxEntry::CallRejected { rejected_call, to, .. }] if *rejected_call == call_id && *to == caller),
        "{items:?}"
    );
    // Rejected once: a second rejection names a call that no longer rings.
    assert!(matches!(conn.reject_call(&call).await, Err(DriverError::NotFound(_))));
    // The outbox entry reads back as what it is.
    let json = serde_json::to_value(&items[0]).unwrap();
    assert_eq!(json["rejected_call"], call_id.as_str());
    assert_eq!(serde_json::from_value::<OutboxEntry>(json).unwrap(), items[0]);
}

#[tokio::test(start_paused = true)]
async fn a_call_by_lid_carries_the_phone_beside_and_a_group_call_its_group() {
    let (net, driver) = local();
    let (_conn, mut rx, _store, _) = paired(&driver, "i1", "+5511999990001").await;
    let spec = CallSpec {
        from: "+5511988880003".into(),
        as_lid: true,
        video: true,
        group: Some("120363000000000001@g.us".into()),
    };
    net.call("i1", spec).await.unwrap();
    let DriverEvent::Call(call) = next(&mut rx).await else { panic!("expected a call") };
    assert!(call.from.is_lid(), "{call:?}");
    assert_eq!(call.from_alt, Some(phone("+5511988880003").jid()));
    assert!(call.video && call.is_group);
    assert_eq!(call.group.unwrap().to_string(), "120363000000000001@g.us");
}

#[tokio::test(start_paused = true)]
async fn a_call_needs_a_connected_number_and_a_contact_as_caller() {
    let (net, driver) = local();
    let spec = || CallSpec { from: "+5511988880002".into(), ..Default::default() };
    assert_eq!(net.call("nobody", spec()).await, Err(SimError::NotConnected));
    let (_conn, _rx, _store, _) = paired(&driver, "i1", "+5511999990001").await;
    let from_group = CallSpec { from: "120363000000000001@g.us".into(), ..Default::default() };
    assert!(matches!(net.call("i1", from_group).await, Err(SimError::InvalidRequest(_))));
    let bad_group = CallSpec { group: Some("+5511988880009".into()), ..spec() };
    assert!(matches!(net.call("i1", bad_group).await, Err(SimError::InvalidRequest(_))));
}

#[tokio::test(start_paused = true)]
async fn the_numbers_own_presence_is_recorded_while_connected() {
    let (net, driver) = local();
    let (conn, _rx, _store, _) = paired(&driver, "i1", "+5511999990001").await;
    conn.set_presence(Presence::Available).await.unwrap();
    let items = net.outbox("i1").await.unwrap();
    assert!(matches!(
        &items[..],
        [OutboxEntry::Availability { presence: Presence::Available, .. }]
    ));
    let json = serde_json::to_value(&items[0]).unwrap();
    assert_eq!(json["presence"], "available");
    assert!(json.get("to").is_none(), "{json}");
    assert_eq!(serde_json::from_value::<OutboxEntry>(json).unwrap(), items[0]);
    conn.stop().await;
    assert_eq!(conn.set_presence(Presence::Available).await, Err(DriverError::NotConnected));
}
