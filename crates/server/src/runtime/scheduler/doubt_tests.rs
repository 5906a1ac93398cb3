//! What waits for a number banned or logged out for good is handed back, however it came to
//! wait: a forced send in flight when the ban came back to the queue after the ban had handed
//! back the rest; after a restart, a send in doubt (or forced) for a number banned before it.
//! A forced send fails with the reason; one that only waited for the number goes back to the
//! pool. Both found by the seeded fault test (crates/cli/tests/fault.rs), which saw such sends
//! stay `queued` for ever. Real SQLite store, simulated network, paused clock.

use bzapper_core::{InstanceState, Reason};
use bzapper_driver::sim::{DropRequest, OutboxEntry};
use bzapper_driver::{ChatState, DropKind};
use bzapper_store::{InstanceStore, MessageStatus, MessageStore, StateChange};

use crate::runtime::test_support::{
    hold_clock, store_in, stored_number, text_message, Rig, TENANT,
};

#[tokio::test(start_paused = true)]
async fn after_a_restart_what_waited_for_a_number_banned_before_it_is_handed_back() {
    let hold = hold_clock();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir).await;
    // The previous run: number `gone` was banned while one pool send was in flight on it
    // (in doubt now) and a forced one was in flight or queued for it.
    let gone = stored_number(store.as_ref(), "gone").await;
    let banned =
        InstanceState::disconnected(Reason::Banned, Some("banned before the crash".into()));
    let change = StateChange {
        state: banned,
        identity: None,
        connected_at: None,
        clear_identity: false,
        ban_until: None,
    };
    store.update_instance_state(&gone.id, &change).await.unwrap();
    let mut in_doubt = text_message(TENANT, "5511988880202", "in doubt");
    in_doubt.instance_id = Some(gone.id.clone());
    in_doubt.status = MessageStatus::Sending;
    let mut forced_in_doubt = text_message(TENANT, "5511988880203", "forced, in doubt");
    forced_in_doubt.instance_id = Some(gone.id.clone());
    forced_in_doubt.forced = true;
    forced_in_doubt.status = MessageStatus::Sending;
    let mut forced_queued = text_message(TENANT, "5511988880204", "forced, queued");
    forced_queued.instance_id = Some(gone.id.clone());
    forced_queued.forced = true;
    for m in [&in_doubt, &forced_in_doubt, &forced_queued] {
        store.insert_message(m).await.unwrap();
    }

    let rig = Rig::on_store(hold, dir, store, 256).await;
    let b = rig.connected("b", "+5511999990202").await;
    // Back in the pool: the documented rare case of a message in doubt whose number was
    // banned (docs/sending.md, "Crashes").
    let sent = rig.until_sent(&in_doubt.id).await;
    assert_eq!(sent.instance_id.as_deref(), Some(b.id.as_str()));
    assert_eq!(sent.wa_id, in_doubt.wa_id, "the same WhatsApp id");
    for m in [&forced_in_doubt, &forced_queued] {
        let failed = rig.until_message(&m.id, MessageStatus::Failed).await;
        assert_eq!(failed.error.as_deref(), Some("the instance was banned by WhatsApp"));
    }
    assert_eq!(rig.sent_texts(&b.id).await, ["in doubt"]);
}

/// The number is typing a forced send (`composing` shown, the send not made yet) when WhatsApp
/// bans it: the ban hands back what waits for the number, then the send finds the connection
/// gone and comes back to the number's queue. It must fail there too, not wait for a number
/// that will not send again.
#[tokio::test(start_paused = true)]
async fn a_forced_send_in_flight_when_its_number_is_banned_fails_instead_of_waiting_forever() {
    let rig = Rig::new().await;
    let a = rig.connected("a", "+5511999990201").await;
    let mut m = text_message(TENANT, "5511988880201", "typing when the ban comes");
    m.instance_id = Some(a.id.clone());
    m.forced = true;
    rig.store.insert_message(&m).await.unwrap();
    rig.scheduler.accept(m.clone()).await;
    rig.until("composing shown", || async {
        rig.net
            .outbox(&a.id)
            .await
            .unwrap_or_default()
            .iter()
            .any(|e| matches!(e, OutboxEntry::Presence { presence: ChatState::Composing, .. }))
    })
    .await;
    rig.net.drop_connection(&a.id, DropRequest { reason: DropKind::Banned }).await.unwrap();
    let failed = rig.until_message(&m.id, MessageStatus::Failed).await;
    assert_eq!(failed.error.as_deref(), Some("the instance was banned by WhatsApp"));
    assert!(rig.sent_texts(&a.id).await.is_empty());
    assert_eq!(rig.scheduler.held_len(), 0, "nothing waits for the banned number");
}
