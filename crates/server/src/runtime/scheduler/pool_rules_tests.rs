//! The pool's rules through the scheduler and the store, on a paused clock: a reply goes out
//! from the number the contact wrote to, and keeps going there across a restart; a number
//! out of rotation hands its contacts to another; a number idle past the threshold re-warms,
//! and the re-warm is stored; a first contact waits one more gap than a known contact.

use std::time::Duration;

use bzapper_driver::sim::{DropRequest, InboundSpec};
use bzapper_driver::DropKind;
use bzapper_store::{
    ConversationStore, InstanceRecord, MessageRecord, MessageStatus, PoolSettings,
};

use crate::runtime::test_support::{Rig, TENANT};

/// Small gaps, high caps, warmed: every number is ready again within a few tens of ms.
async fn fast(rig: &Rig, rec: &InstanceRecord) {
    rig.fast(&rec.id, true).await;
}

/// `from` writes to `number`, and the conversation is stored.
async fn writes(rig: &Rig, number: &InstanceRecord, from: &str) {
    let spec = InboundSpec { from: from.into(), text: "hello?".into(), ..InboundSpec::default() };
    rig.net.inbound(&number.id, spec).await.unwrap();
    let contact = format!("{}@s.whatsapp.net", from.trim_start_matches('+'));
    rig.until("the contact's conversation", || async {
        rig.store.get_conversation(&number.id, &contact).await.unwrap().is_some()
    })
    .await;
}

async fn sent(rig: &Rig, to: &str, text: &str) -> MessageRecord {
    let m = rig.send(to, text).await;
    rig.until_sent(&m.id).await
}

#[tokio::test(start_paused = true)]
async fn a_reply_goes_out_from_the_number_the_contact_wrote_to_even_after_a_restart() {
    let rig = Rig::new().await;
    let mut numbers = Vec::new();
    for (name, phone) in [("a", "+5511999990301"), ("b", "+5511999990302"), ("c", "+5511999990303")]
    {
        let n = rig.connected(name, phone).await;
        fast(&rig, &n).await;
        numbers.push(n);
    }
    let b = numbers[1].clone();
    writes(&rig, &b, "+5511988880301").await;
    // Round robin alone would spread these over a, b and c.
    for i in 0..4 {
        let m = sent(&rig, "5511988880301", &format!("reply {i}")).await;
        assert_eq!(m.instance_id.as_deref(), Some(b.id.as_str()), "reply {i}");
        assert_eq!(m.chosen_by.as_deref(), Some("sticky"), "reply {i}");
    }
    let stranger = sent(&rig, "5511988880302", "hello stranger").await;
    assert_eq!(stranger.chosen_by.as_deref(), Some("rotation"));

    let rig = rig.restart().await;
    rig.supervisor.resume_all().await.unwrap();
    for n in &numbers {
        rig.until_status(&n.id, bzapper_core::Status::Connected).await;
    }
    let m = sent(&rig, "5511988880301", "after the restart").await;
    assert_eq!(m.instance_id.as_deref(), Some(b.id.as_str()), "still the contact's number");
    assert_eq!(m.chosen_by.as_deref(), Some("sticky"));
}

#[tokio::test(start_paused = true)]
async fn a_contacts_number_out_of_rotation_hands_the_contact_to_another_which_keeps_it() {
    let rig = Rig::new().await;
    let a = rig.connected("a", "+5511999990311").await;
    let b = rig.connected("b", "+5511999990312").await;
    fast(&rig, &a).await;
    fast(&rig, &b).await;
    writes(&rig, &a, "+5511988880311").await;
    let first = sent(&rig, "5511988880311", "from a").await;
    assert_eq!(first.instance_id.as_deref(), Some(a.id.as_str()));
    // a drops for good: b takes the contact over, by rotation, then keeps it.
    let logged_out = DropRequest { reason: DropKind::LoggedOut };
    rig.net.drop_connection(&a.id, logged_out).await.unwrap();
    rig.until_status(&a.id, bzapper_core::Status::Disconnected).await;
    let moved = sent(&rig, "5511988880311", "from b").await;
    assert_eq!(moved.instance_id.as_deref(), Some(b.id.as_str()));
    assert_eq!(moved.chosen_by.as_deref(), Some("rotation"));
    let kept = sent(&rig, "5511988880311", "still b").await;
    assert_eq!(kept.instance_id.as_deref(), Some(b.id.as_str()));
    assert_eq!(kept.chosen_by.as_deref(), Some("sticky"));
}

#[tokio::test(start_paused = true)]
async fn a_number_idle_past_the_threshold_re_warms_and_the_re_warm_is_stored() {
    let rig = Rig::new().await;
    let a = rig.connected("a", "+5511999990321").await;
    fast(&rig, &a).await;
    sent(&rig, "5511988880321", "before the idle").await;
    assert_eq!(rig.instance(&a.id).await.rewarm_from, None, "no re-warm without an idle");
    // The send is over (its `paused` shown) before the clock jumps.
    rig.until("the number is free", || async {
        rig.scheduler.stats_of(&a.id).is_some_and(|s| !s.busy)
    })
    .await;
    // Three days and an hour without a send (the default threshold is 72 h).
    tokio::time::advance(Duration::from_secs(73 * 3600)).await;
    sent(&rig, "5511988880321", "after the idle").await;
    let rec = rig.instance(&a.id).await;
    assert!(rec.rewarm_from.is_some(), "the re-warm's start is stored: {rec:?}");
    let stats = rig.scheduler.stats_of(&a.id).expect("a known number");
    assert!(stats.rewarming, "{stats:?}");
    // Its day cap is a re-warm's first day's, not the full one.
    assert!(stats.caps.per_day < 10_000, "{stats:?}");
}

/// `HH:MM` of the wall-clock instant `ms` in UTC.
fn hh_mm(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().format("%H:%M").to_string()
}

#[tokio::test(start_paused = true)]
async fn outside_the_pools_active_hours_a_message_waits_for_the_opening() {
    let rig = Rig::new().await;
    let a = rig.connected("a", "+5511999990331").await;
    fast(&rig, &a).await;
    // Active from two hours from now, for two hours (UTC, overnight windows included).
    let now_ms = chrono::Utc::now().timestamp_millis();
    let opens = now_ms + 2 * 3_600_000;
    let hours = serde_json::json!({
        "timezone": "UTC", "start": hh_mm(opens), "end": hh_mm(opens + 2 * 3_600_000)
    });
    let settings = PoolSettings { quiet_hours: Some(hours), ..PoolSettings::default() };
    rig.scheduler.set_pool_settings(TENANT, "default", &settings);
    let m = rig.send("5511988880331", "good morning").await;
    rig.advance(Duration::from_secs(60)).await;
    assert_eq!(rig.message(&m.id).await.status, MessageStatus::Queued, "not in quiet hours");
    assert_eq!(rig.scheduler.resting(&a.id), Some("quiet_hours"));
    // Still waiting two minutes before the opening (the window's minute is rounded down)…
    tokio::time::advance(Duration::from_secs(2 * 3600 - 60 - 120)).await;
    rig.advance(Duration::from_secs(1)).await;
    assert_eq!(rig.message(&m.id).await.status, MessageStatus::Queued, "not before the opening");
    // …and sent once it opens.
    tokio::time::advance(Duration::from_secs(180)).await;
    rig.until_sent(&m.id).await;
}

#[tokio::test(start_paused = true)]
async fn a_contact_at_the_pools_per_contact_pace_waits_until_it_writes() {
    let rig = Rig::new().await;
    let a = rig.connected("a", "+5511999990341").await;
    fast(&rig, &a).await;
    let settings = PoolSettings { per_contact_per_hour: 2, ..PoolSettings::default() };
    rig.scheduler.set_pool_settings(TENANT, "default", &settings);
    let first = sent(&rig, "5511988880341", "one").await;
    let second = sent(&rig, "5511988880341", "two").await;
    let third = rig.send("5511988880341", "three").await;
    let other = sent(&rig, "5511988880342", "another contact is not held up").await;
    assert!(other.sent_at > second.sent_at && first.sent_at < second.sent_at);
    rig.advance(Duration::from_secs(120)).await;
    assert_eq!(rig.message(&third.id).await.status, MessageStatus::Queued, "the pace holds it");
    // The contact writes: a live conversation is not paced.
    writes(&rig, &a, "+5511988880341").await;
    // The scheduler sees it at its next round; a new message wakes it.
    sent(&rig, "5511988880343", "a round").await;
    rig.until_sent(&third.id).await;
}
