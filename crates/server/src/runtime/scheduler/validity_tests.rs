//! Delivery options through the scheduler, on a paused clock: a message not sent within its
//! TTL expires and never goes out; one scheduled for later is not sent before its time (and
//! stands in no one's way); both hold across a restart. And the first-contact pre-check.

use std::time::Duration;

use bzapper_core::LimitsPatch;
use bzapper_driver::sim::ContactRequest;
use bzapper_store::ConversationStore;
use bzapper_store::{InstanceStore, MessageRecord, MessageStatus, MessageStore, StartedBy};

use crate::model::time::now;
use crate::runtime::test_support::{text_message, Rig, TENANT};

/// A text like [`Rig::send`]'s, with delivery options, stored and queued.
async fn send_with(
    rig: &Rig,
    to: &str,
    text: &str,
    send_in: Option<Duration>,
    ttl: Option<Duration>,
) -> MessageRecord {
    let mut m = text_message(TENANT, to, text);
    m.send_at = send_in.map(|d| m.created_at + chrono::Duration::from_std(d).unwrap());
    let due = m.queue_at();
    m.expires_at = ttl.map(|d| due + chrono::Duration::from_std(d).unwrap());
    rig.store.insert_message(&m).await.unwrap();
    rig.scheduler.accept(m.clone()).await;
    m
}

fn statuses(events: &[bzapper_store::Event], id: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.kind == "message.status" && e.data["message_id"] == id)
        .map(|e| e.data["status"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_message_a_capped_number_cannot_send_within_its_ttl_expires_and_never_goes_out() {
    let rig = Rig::new().await;
    let a = rig.connected("a", "+5511999990101").await;
    // One message a minute.
    let mut capped = rig.instance(&a.id).await;
    capped.limits = LimitsPatch { per_minute: Some(1), ..LimitsPatch::default() };
    rig.store.update_instance_settings(&capped).await.unwrap();
    rig.scheduler.number_changed(&capped, None).await;

    let first = rig.send("5511988880101", "first").await;
    let late =
        send_with(&rig, "5511988880102", "too late", None, Some(Duration::from_secs(20))).await;
    let kept =
        send_with(&rig, "5511988880103", "in time", None, Some(Duration::from_secs(600))).await;
    rig.until_sent(&first.id).await;
    let late = rig.until_message(&late.id, MessageStatus::Expired).await;
    assert_eq!(late.sent_at, None);
    assert_eq!(late.chosen_by, None);
    // A minute on, the number sends again: the one still valid, never the expired one.
    let kept = rig.until_sent(&kept.id).await;
    assert_eq!(kept.chosen_by.as_deref(), Some("rotation"));
    rig.advance(Duration::from_secs(120)).await;
    assert_eq!(rig.sent_texts(&a.id).await, ["first", "in time"]);
    let events = rig.events().await;
    assert_eq!(statuses(&events, &late.id), ["expired"]);
    assert_eq!(rig.message(&late.id).await.status, MessageStatus::Expired, "for good");
}

#[tokio::test(start_paused = true)]
async fn a_scheduled_message_is_not_sent_before_its_time_and_blocks_nothing() {
    let rig = Rig::new().await;
    let a = rig.connected("a", "+5511999990102").await;
    let hour = Duration::from_secs(3600);
    let later = send_with(&rig, "5511988880111", "at nine", Some(hour), None).await;
    let now_one = rig.send("5511988880112", "right away").await;
    rig.until_sent(&now_one.id).await;
    rig.advance(Duration::from_secs(59 * 60)).await;
    assert_eq!(rig.message(&later.id).await.status, MessageStatus::Queued);
    assert_eq!(rig.sent_texts(&a.id).await, ["right away"]);
    // Its time comes (the scheduler's timer, nothing else, wakes the queue).
    rig.advance(Duration::from_secs(2 * 60)).await;
    rig.until_sent(&later.id).await;
    assert_eq!(rig.sent_texts(&a.id).await, ["right away", "at nine"]);
}

#[tokio::test(start_paused = true)]
async fn scheduled_and_expiring_messages_keep_their_times_across_a_restart() {
    let rig = Rig::new().await;
    // No number yet: both wait in the queue.
    let min = |m: u64| Duration::from_secs(60 * m);
    let later = send_with(&rig, "5511988880121", "later", Some(min(10)), None).await;
    let expiring = send_with(&rig, "5511988880122", "expiring", None, Some(min(5))).await;
    let rig = rig.restart().await;
    rig.supervisor.resume_all().await.unwrap();
    rig.advance(min(6)).await;
    rig.until_message(&expiring.id, MessageStatus::Expired).await;
    let a = rig.connected("a", "+5511999990103").await;
    rig.advance(min(2)).await;
    assert_eq!(rig.message(&later.id).await.status, MessageStatus::Queued, "not before its time");
    rig.advance(min(3)).await;
    rig.until_sent(&later.id).await;
    assert_eq!(rig.sent_texts(&a.id).await, ["later"]);
}

#[tokio::test(start_paused = true)]
async fn a_first_contact_not_on_whatsapp_fails_without_a_send_and_a_known_one_is_kept() {
    let rig = Rig::new().await;
    let a = rig.connected("a", "+5511999990104").await;
    let absent = ContactRequest { phone: "+5511988880131".into(), on_whatsapp: false };
    rig.net.set_contact(absent).await.unwrap();
    let m = rig.send("5511988880131", "anyone there?").await;
    let m = rig.until_message(&m.id, MessageStatus::Failed).await;
    assert_eq!(m.error.as_deref(), Some("not_on_whatsapp"));
    let ok = rig.send("5511988880132", "hello").await;
    rig.until_sent(&ok.id).await;
    assert_eq!(rig.sent_texts(&a.id).await, ["hello"], "nothing typed or sent to the absent one");
    assert_eq!(rig.scheduler.health(&a.id), Some((100, true)), "no health cost");
    // The send kept the conversation: a first contact of this number.
    let contact = "5511988880132@s.whatsapp.net";
    rig.until("the conversation kept", || async {
        rig.store.get_conversation(&a.id, contact).await.unwrap().is_some()
    })
    .await;
    let conv = rig.store.get_conversation(&a.id, contact).await.unwrap();
    assert_eq!(conv.map(|c| c.started_by), Some(StartedBy::Out));
    assert_eq!(
        rig.store
            .first_contacts_since(&a.id, now() - chrono::Duration::days(1))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_contact_who_wrote_first_is_known_and_no_pre_check_comes_before_the_reply() {
    use bzapper_driver::sim::{InboundSpec, OutboxEntry};
    let rig = Rig::new().await;
    let a = rig.connected("a", "+5511999990105").await;
    // The contact writes by LID; the conversation is kept under its phone JID.
    let spec = InboundSpec {
        from: "+5511988880141".into(),
        as_lid: true,
        text: "hi there".into(),
        ..InboundSpec::default()
    };
    rig.net.inbound(&a.id, spec).await.unwrap();
    let contact = "5511988880141@s.whatsapp.net";
    rig.until("the contact's conversation", || async {
        rig.store.get_conversation(&a.id, contact).await.unwrap().is_some()
    })
    .await;
    let checks = || async {
        let outbox = rig.net.outbox(&a.id).await.unwrap();
        outbox.iter().filter(|e| matches!(e, OutboxEntry::Check { .. })).count()
    };
    let reply = rig.send("5511988880141", "hello back").await;
    rig.until_sent(&reply.id).await;
    assert_eq!(checks().await, 0, "a known contact is not checked");
    let first = rig.send("5511988880142", "nice to meet you").await;
    rig.until_sent(&first.id).await;
    assert_eq!(checks().await, 1, "a first contact is");
    let conv = rig.store.get_conversation(&a.id, contact).await.unwrap().unwrap();
    assert_eq!(conv.started_by, StartedBy::In, "the contact started it");
    assert!(conv.last_at >= conv.first_at);
}
