//! The send queue read from the store a page at a time: a backlog far larger than a window
//! drains whole and in order, never holds more than a window in memory, never delays another
//! tenant, survives a restart, and a message canceled or failed while it waits in the store
//! only never goes out. Real SQLite store, simulated network, paused clock.

use std::time::Duration;

use bzapper_core::LimitsPatch;
use bzapper_driver::sim::DropRequest;
use bzapper_driver::DropKind;
use bzapper_store::{CampaignStore, InstanceStore, MessageRecord, MessageStatus, MessageStore};

use crate::runtime::test_support::{add_tenant, hold_clock, store_in, text_message, Rig, TENANT};

const WINDOW: usize = 3;

/// Waits until `check` holds, moving the paused clock half a second at a time (sends are
/// paced by seconds: 10 ms steps would take too long for a backlog).
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::advance(Duration::from_millis(500)).await;
        tokio::task::yield_now().await;
    }
}

/// Lets the number send as fast as its typing allows (no minute or hour caps, short gaps).
async fn fast(rig: &Rig, instance_id: &str) {
    rig.fast(instance_id, false).await;
}

fn texts(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix} {i:02}")).collect()
}

#[tokio::test(start_paused = true)]
async fn a_backlog_larger_than_the_window_drains_completely_and_in_order() {
    let rig = Rig::with_window(WINDOW).await;
    // Accepted while no number is up: only the first window is held in memory.
    let all = texts(12, "backlog");
    let mut ids = Vec::new();
    for t in &all {
        ids.push(rig.send("5511988880000", t).await.id);
    }
    assert_eq!(rig.scheduler.held_len(), WINDOW, "the rest waits in the store only");
    let depth = rig.scheduler.queue_depths().await.unwrap();
    assert_eq!(depth[&(TENANT.to_string(), "default".to_string())], 12, "the gauge counts all");

    let a = rig.connected("a", "+5511999990101").await;
    fast(&rig, &a.id).await;
    let most_held = std::cell::Cell::new(0);
    until("the backlog sent", || async {
        most_held.set(most_held.get().max(rig.scheduler.held_len()));
        rig.sent_texts(&a.id).await.len() == all.len()
    })
    .await;
    let most_held = most_held.get();
    assert_eq!(rig.sent_texts(&a.id).await, all, "in accept order, each once");
    // A window of queued messages, and the one being sent.
    assert!(most_held <= WINDOW + 1, "never more than a window in memory: {most_held}");
    for id in &ids {
        rig.until_sent(id).await;
    }
    assert_eq!(rig.scheduler.held_len(), 0);
}

#[tokio::test(start_paused = true)]
async fn another_tenants_message_goes_out_while_the_first_has_a_large_backlog() {
    let rig = Rig::with_window(WINDOW).await;
    // Tenant 1's number is not linked: its backlog cannot move.
    let a = rig.number("a").await;
    for t in texts(200, "flood") {
        rig.send("5511988880001", &t).await;
    }
    add_tenant(rig.store.as_ref(), "t2").await;
    let b = rig.connected_as("t2", "b", "+5511999990103").await;
    let m = rig.send_as("t2", "5511988880002", "from tenant 2").await;
    let sent = rig.until_sent(&m.id).await;
    assert_eq!(sent.instance_id.as_deref(), Some(b.id.as_str()));
    assert!(rig.sent_texts(&a.id).await.is_empty());
    assert!(rig.scheduler.held_len() <= WINDOW + 1, "tenant 1 holds one window");
}

#[tokio::test(start_paused = true)]
async fn a_restart_with_a_backlog_reads_its_first_page_and_resumes_from_the_store() {
    let hold = hold_clock();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir).await;
    // Left queued by the previous run.
    let all = texts(8, "before the restart");
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(5);
    for (i, t) in all.iter().enumerate() {
        let mut m = text_message(TENANT, "5511988880003", t);
        m.created_at = t0 + chrono::Duration::milliseconds(i as i64);
        store.insert_message(&m).await.unwrap();
    }
    let rig = Rig::on_store(hold, dir, store, WINDOW).await;
    assert_eq!(rig.scheduler.held_len(), WINDOW, "only the first page is read at start");

    let a = rig.connected("a", "+5511999990104").await;
    fast(&rig, &a.id).await;
    // Accepted after the restart: behind the backlog.
    let late = rig.send("5511988880003", "after the restart").await;
    rig.until_sent(&late.id).await;
    let mut expected = all.clone();
    expected.push("after the restart".into());
    until("all sent", || async { rig.sent_texts(&a.id).await.len() == expected.len() }).await;
    assert_eq!(rig.sent_texts(&a.id).await, expected);
}

#[tokio::test(start_paused = true)]
async fn a_message_accepted_behind_a_page_already_read_still_goes_out_once() {
    let rig = Rig::with_window(WINDOW).await;
    let t0 = chrono::Utc::now();
    let stamped = |text: &str, ms: i64| {
        let mut m = text_message(TENANT, "5511988880004", text);
        m.created_at = t0 + chrono::Duration::milliseconds(ms);
        m
    };
    // A backlog the window is behind on…
    for i in 0..6 {
        let m = stamped(&format!("queued {i}"), 10 * (i + 1));
        rig.store.insert_message(&m).await.unwrap();
        rig.scheduler.accept(m).await;
    }
    let a = rig.connected("a", "+5511999990105").await;
    fast(&rig, &a.id).await;
    until("a page read past 30 ms", || async { rig.sent_texts(&a.id).await.len() >= 4 }).await;
    // …then a message stamped before what the refill read, committed only now (two accepts
    // can commit out of their order): the store says it is still queued, so it is sent.
    let late = stamped("committed late", 15);
    rig.store.insert_message(&late).await.unwrap();
    rig.scheduler.accept(late.clone()).await;
    rig.until_sent(&late.id).await;
    until("all sent", || async { rig.sent_texts(&a.id).await.len() == 7 }).await;
    let sent = rig.sent_texts(&a.id).await;
    assert_eq!(sent.iter().filter(|t| *t == "committed late").count(), 1, "{sent:?}");
    // Accepting it again (a repeated hand-off) sends nothing more.
    rig.scheduler.accept(late).await;
    rig.advance(Duration::from_secs(5)).await;
    assert_eq!(rig.sent_texts(&a.id).await.len(), 7);
}

#[tokio::test(start_paused = true)]
async fn a_canceled_campaigns_messages_waiting_in_the_store_never_go_out() {
    let rig = Rig::with_window(WINDOW).await;
    let mut campaign = Vec::new();
    for t in texts(10, "campaign") {
        let mut m = text_message(TENANT, "5511988880005", &t);
        m.campaign_id = Some("cmp_1".into());
        rig.store.insert_message(&m).await.unwrap();
        rig.scheduler.accept(m.clone()).await;
        campaign.push(m);
    }
    // What the campaign service does on cancel: withdraw from memory, fail in the store.
    let withdrawn = rig.scheduler.withdraw_campaign("cmp_1");
    assert_eq!(withdrawn.len(), WINDOW, "the window");
    let failed =
        rig.store.fail_queued_campaign_messages("cmp_1", "canceled", crate::model::time::now());
    assert_eq!(failed.await.unwrap().len(), 10, "the window and the store's backlog");

    let a = rig.connected("a", "+5511999990106").await;
    fast(&rig, &a.id).await;
    let after = rig.send("5511988880005", "after the cancel").await;
    rig.until_sent(&after.id).await;
    rig.advance(Duration::from_secs(10)).await;
    assert_eq!(rig.sent_texts(&a.id).await, ["after the cancel"]);
    for m in &campaign {
        assert_eq!(rig.message(&m.id).await.status, MessageStatus::Failed);
    }
}

#[tokio::test(start_paused = true)]
async fn a_banned_numbers_forced_sends_fail_also_those_waiting_in_the_store() {
    let rig = Rig::with_window(WINDOW).await;
    let a = rig.connected("a", "+5511999990107").await;
    // One send a day, made: its forced sends wait.
    let mut rec = rig.instance(&a.id).await;
    rec.limits = LimitsPatch {
        per_minute: Some(1),
        per_hour: Some(1),
        per_day: Some(1),
        ..LimitsPatch::default()
    };
    rig.store.update_instance_settings(&rec).await.unwrap();
    rig.scheduler.number_changed(&rec, None).await;
    let first = rig.send("5511988880006", "the day's one send").await;
    rig.until_sent(&first.id).await;
    let mut forced: Vec<MessageRecord> = Vec::new();
    for t in texts(8, "forced") {
        let mut m = text_message(TENANT, "5511988880006", &t);
        m.instance_id = Some(a.id.clone());
        m.forced = true;
        rig.store.insert_message(&m).await.unwrap();
        rig.scheduler.accept(m.clone()).await;
        forced.push(m);
    }
    assert_eq!(rig.scheduler.held_len(), WINDOW);
    rig.net.drop_connection(&a.id, DropRequest { reason: DropKind::Banned }).await.unwrap();
    for m in &forced {
        let m = rig.until_message(&m.id, MessageStatus::Failed).await;
        assert_eq!(m.error.as_deref(), Some("the instance was banned by WhatsApp"));
    }
    assert_eq!(rig.scheduler.held_len(), 0);
}
