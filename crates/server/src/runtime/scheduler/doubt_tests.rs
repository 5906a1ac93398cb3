//! After a restart, what waits for a number banned or logged out before it (a send in doubt
//! after the crash, a forced send) is handed back, as the ban or logout itself hands back what
//! waits then: a forced send fails with the reason, one that only waited for the number goes
//! back to the pool. Found by the seeded fault test (crates/cli/tests/fault.rs): a gateway
//! killed just after a ban, while the banned number was typing a send, kept that send
//! `queued` for ever. Real SQLite store, simulated network, paused clock.

use bzapper_core::{InstanceState, Reason};
use bzapper_store::{InstanceStore, MessageStatus, MessageStore, StateChange};

use crate::runtime::test_support::{hold_clock, store_in, stored_number, text_message, Rig, TENANT};

#[tokio::test(start_paused = true)]
async fn after_a_restart_what_waited_for_a_number_banned_before_it_is_handed_back() {
    let hold = hold_clock();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir).await;
    // The previous run: number `gone` was banned while one pool send was in flight on it
    // (in doubt now) and a forced one was in flight or queued for it.
    let gone = stored_number(store.as_ref(), "gone").await;
    let banned = InstanceState::disconnected(Reason::Banned, Some("banned before the crash".into()));
    let change =
        StateChange { state: banned, identity: None, connected_at: None, clear_identity: false };
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
