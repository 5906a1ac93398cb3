//! The supervisor's rules on their own: how driver events become states and `instance.*`
//! events. Real SQLite store, simulated network, paused clock.

use bzapper_core::{Reason, Status};
use bzapper_driver::sim::DropRequest;
use bzapper_driver::DropKind;

use crate::runtime::test_support::Rig;

/// The `instance.*` events of one number, as `kind status/reason`, oldest first.
async fn instance_events(rig: &Rig, id: &str) -> Vec<String> {
    rig.events()
        .await
        .into_iter()
        .filter(|e| e.instance_id.as_deref() == Some(id) && e.kind.starts_with("instance."))
        .filter(|e| e.kind != "instance.qr" && e.kind != "instance.health")
        .map(|e| {
            let reason = e.data["reason"].as_str().unwrap_or("-");
            format!("{} {}/{reason}", e.kind, e.data["status"].as_str().unwrap_or("?"))
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_driver_drop_is_connecting_transient_then_connected_again() {
    let rig = Rig::new().await;
    let a = rig.connected("a", "+5511999990010").await;
    rig.net.drop_connection(&a.id, DropRequest { reason: DropKind::Transient }).await.unwrap();
    // The simulated driver reconnects by itself after its back-off.
    rig.until("connecting/transient, then connected", || async {
        instance_events(&rig, &a.id).await.len() >= 4
    })
    .await;
    assert_eq!(
        instance_events(&rig, &a.id).await,
        [
            "instance.connecting connecting/-",
            "instance.connected connected/-",
            "instance.connecting connecting/transient",
            "instance.connected connected/-",
        ]
    );
    rig.until_status(&a.id, Status::Connected).await;
    // A drop from connected costs health (5 points).
    rig.until("health stored", || async { rig.instance(&a.id).await.health_score < 100 }).await;
    assert_eq!(rig.instance(&a.id).await.health_score, 95);
}

#[tokio::test(start_paused = true)]
async fn a_ban_is_disconnected_banned_and_stays_so() {
    let rig = Rig::new().await;
    let a = rig.connected("a", "+5511999990011").await;
    rig.net.drop_connection(&a.id, DropRequest { reason: DropKind::Banned }).await.unwrap();
    rig.until_status(&a.id, Status::Disconnected).await;
    let rec = rig.instance(&a.id).await;
    assert_eq!(rec.state.reason, Some(Reason::Banned));
    // Recorded after the state is stored.
    rig.until("instance.disconnected", || async { instance_events(&rig, &a.id).await.len() >= 3 })
        .await;
    // Nothing brings it back by itself.
    rig.advance(std::time::Duration::from_secs(300)).await;
    assert_eq!(rig.instance(&a.id).await.state.status, Status::Disconnected);
    assert_eq!(
        instance_events(&rig, &a.id).await,
        [
            "instance.connecting connecting/-",
            "instance.connected connected/-",
            "instance.disconnected disconnected/banned",
        ]
    );
}
