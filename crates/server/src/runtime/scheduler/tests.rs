//! The scheduler's rules on their own: which number sends, what happens when one goes down,
//! what a refusal costs. Real SQLite store, simulated network, paused clock.

use bzapper_core::Status;
use bzapper_driver::sim::{DropRequest, RestrictRequest};
use bzapper_driver::DropKind;
use bzapper_store::MessageStatus;

use crate::runtime::test_support::{Rig, TENANT};

#[tokio::test(start_paused = true)]
async fn a_queued_message_goes_out_only_through_a_connected_number_and_becomes_sent() {
    let rig = Rig::new().await;
    // Same pool: one number linked, one still showing its QR code.
    let up = rig.connected("up", "+5511999990001").await;
    let pending = rig.number("pending").await;
    let mut sent = Vec::new();
    for n in 0..3 {
        sent.push(rig.send("5511988880000", &format!("hello {n}")).await);
    }
    for m in &sent {
        let m = rig.until_sent(&m.id).await;
        assert_eq!(m.instance_id.as_deref(), Some(up.id.as_str()), "sent by the connected one");
        assert!(m.sent_at.is_some());
    }
    assert_eq!(rig.sent_texts(&up.id).await, ["hello 0", "hello 1", "hello 2"]);
    assert!(rig.sent_texts(&pending.id).await.is_empty(), "nothing through a number not linked");
    // Each status change is an event, in order.
    let statuses: Vec<_> = rig
        .events()
        .await
        .into_iter()
        .filter(|e| e.kind == "message.status" && e.data["message_id"] == sent[0].id.as_str())
        .map(|e| e.data["status"].as_str().unwrap_or_default().to_string())
        .collect();
    // (The simulated contact's phone then reports it delivered.)
    assert_eq!(statuses[..2], ["sending", "sent"], "{statuses:?}");
}

#[tokio::test(start_paused = true)]
async fn a_number_that_goes_down_leaves_rotation_and_its_queue_waits_for_another() {
    let rig = Rig::new().await;
    let a = rig.connected("a", "+5511999990002").await;
    rig.until("a in rotation", || rig.scheduler.has_number_available(TENANT, "default")).await;

    rig.net.drop_connection(&a.id, DropRequest { reason: DropKind::Banned }).await.unwrap();
    rig.until_status(&a.id, Status::Disconnected).await;
    rig.until("a out of rotation", || async {
        !rig.scheduler.has_number_available(TENANT, "default").await
    })
    .await;

    // Queued while no number can send: it waits, however long.
    let m = rig.send("5511988880001", "waits").await;
    rig.advance(std::time::Duration::from_secs(600)).await;
    let waiting = rig.message(&m.id).await;
    assert_eq!(waiting.status, MessageStatus::Queued);
    assert!(rig.sent_texts(&a.id).await.is_empty());

    // Another number of the pool comes up: the message goes out through it.
    let b = rig.connected("b", "+5511999990003").await;
    let m = rig.until_sent(&m.id).await;
    assert_eq!(m.instance_id.as_deref(), Some(b.id.as_str()));
    assert_eq!(rig.sent_texts(&b.id).await, ["waits"]);
    assert!(rig.sent_texts(&a.id).await.is_empty(), "never through the banned number");
}

#[tokio::test(start_paused = true)]
async fn a_reach_out_refusal_fails_the_message_and_lowers_health() {
    let rig = Rig::new().await;
    let a = rig.connected("a", "+5511999990004").await;
    assert_eq!(rig.scheduler.health(&a.id), Some((100, true)));
    // WhatsApp's reach-out restriction: a contact that never wrote is refused (463).
    rig.net.restrict(&a.id, RestrictRequest { reach_out: true }).await.unwrap();
    let m = rig.send("5511988880002", "cold").await;
    let m = rig.until_message(&m.id, MessageStatus::Failed).await;
    assert_eq!(m.instance_id.as_deref(), Some(a.id.as_str()));
    assert!(m.error.as_deref().unwrap_or_default().contains("463"), "{:?}", m.error);
    // A refusal costs more than an ordinary failure (15 points, not 10), stored as well.
    rig.until("health stored", || async { rig.instance(&a.id).await.health_score < 100 }).await;
    assert_eq!(rig.instance(&a.id).await.health_score, 85);
    assert_eq!(rig.scheduler.health(&a.id), Some((85, true)));
    assert!(rig.sent_texts(&a.id).await.is_empty(), "the network took nothing");
}

#[test]
fn passes_are_spaced_from_a_thousand_numbers_up_in_proportion() {
    use std::time::Duration;
    assert_eq!(super::pass_spacing(0), Duration::ZERO);
    assert_eq!(super::pass_spacing(999), Duration::ZERO);
    assert_eq!(super::pass_spacing(1_000), Duration::from_millis(1));
    assert_eq!(super::pass_spacing(10_000), Duration::from_millis(10));
}
