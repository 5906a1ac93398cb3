//! The supervisor's rules on their own: how driver events become states and `instance.*`
//! events. Real SQLite store, simulated network, paused clock.

use std::time::Duration;

use bzapper_core::{Reason, Status};
use bzapper_driver::sim::DropRequest;
use bzapper_driver::DropKind;
use bzapper_store::InstanceStore;

use crate::model::time::now;
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

/// The network bans the number for a minute; returns once it is `disconnected/banned` with
/// the ban's end stored.
async fn ban_for_a_minute(rig: &Rig, id: &str) -> chrono::DateTime<chrono::Utc> {
    let until = now() + chrono::Duration::seconds(60);
    let reason = DropKind::TemporarilyBanned { until };
    rig.net.drop_connection(id, DropRequest { reason }).await.unwrap();
    rig.until_status(id, Status::Disconnected).await;
    assert_eq!(rig.instance(id).await.state.reason, Some(Reason::Banned));
    assert_eq!(rig.store.ban_expiry(id).await.unwrap(), Some(until));
    until
}

/// A temporary ban whose end the network gives to the nanosecond (the simulated network over
/// HTTP, WhatsApp's own clock) ends in a reconnect on the same run: the timer's end is the
/// stored one (whole milliseconds), not one that never matches it (found by the fault test).
#[tokio::test(start_paused = true)]
async fn a_temporary_ban_ending_at_a_sub_millisecond_instant_ends_in_a_reconnect() {
    let rig = Rig::new().await;
    let a = rig.connected("a", "+5511999990014").await;
    // The simulated network ends its bans on the wall clock, which the paused clock does not
    // move: a ban already over by the time it is reported (as a late report would be), so
    // that only the gateway's own rule decides whether the number comes back.
    let until = now() - chrono::Duration::milliseconds(5) + chrono::Duration::nanoseconds(123_456);
    let reason = DropKind::TemporarilyBanned { until };
    rig.net.drop_connection(&a.id, DropRequest { reason }).await.unwrap();
    rig.until_status(&a.id, Status::Disconnected).await;
    rig.advance(Duration::from_secs(1)).await;
    rig.until_status(&a.id, Status::Connected).await;
    assert_eq!(rig.store.ban_expiry(&a.id).await.unwrap(), None, "cleared by the reconnect");
}

/// Issue 18: the reconnect at a temporary ban's end was a timer in memory only; a restart
/// lost it and the number stayed disconnected for good. The end is stored with the number,
/// so the restarted gateway connects it when the ban ends (not before).
#[tokio::test(start_paused = true)]
async fn a_temporary_ban_ends_in_a_reconnect_after_a_restart_too() {
    let rig = Rig::new().await;
    let a = rig.connected("a", "+5511999990012").await;
    ban_for_a_minute(&rig, &a.id).await;
    rig.advance(Duration::from_secs(10)).await;

    let before = std::sync::Arc::downgrade(&rig.supervisor);
    let rig = rig.restart().await;
    assert!(before.upgrade().is_none(), "the supervisor before the restart is gone");
    rig.supervisor.resume_all().await.unwrap();
    rig.advance(Duration::from_secs(45)).await;
    let rec = rig.instance(&a.id).await;
    assert_eq!((rec.state.status, rec.state.reason), (Status::Disconnected, Some(Reason::Banned)));

    rig.advance(Duration::from_secs(6)).await;
    rig.until_status(&a.id, Status::Connected).await;
    assert_eq!(rig.instance(&a.id).await.state.reason, None);
    assert_eq!(rig.store.ban_expiry(&a.id).await.unwrap(), None, "cleared by the reconnect");
}

/// An operator who disconnects a number during its temporary ban keeps it disconnected: the
/// ban's end no longer connects it, on this run or after a restart.
#[tokio::test(start_paused = true)]
async fn an_operators_disconnect_during_a_ban_cancels_the_reconnect() {
    let rig = Rig::new().await;
    let a = rig.connected("a", "+5511999990013").await;
    ban_for_a_minute(&rig, &a.id).await;
    let rec = rig.instance(&a.id).await;
    rig.supervisor.stop(&rec).await.unwrap();
    assert_eq!(rig.store.ban_expiry(&a.id).await.unwrap(), None);
    rig.advance(Duration::from_secs(120)).await;
    let rec = rig.instance(&a.id).await;
    assert_eq!((rec.state.status, rec.state.reason), (Status::Disconnected, Some(Reason::Banned)));
    assert!(!rig.supervisor.is_running(&a.id).await);

    let rig = rig.restart().await;
    rig.supervisor.resume_all().await.unwrap();
    rig.advance(Duration::from_secs(10)).await;
    assert_eq!(rig.instance(&a.id).await.state.status, Status::Disconnected);
}

/// A driver whose starts wait until the test lets them through, and that refuses to start
/// the numbers named in `fail`.
struct HeldDriver {
    inner: bzapper_driver::sim::SimDriver,
    entered: std::sync::atomic::AtomicUsize,
    gate: tokio::sync::Semaphore,
    fail: Vec<String>,
}

impl HeldDriver {
    fn entered(&self) -> usize {
        self.entered.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl bzapper_driver::Driver for HeldDriver {
    fn name(&self) -> &'static str {
        "sim"
    }

    async fn start(
        &self,
        opts: bzapper_driver::ConnectOptions,
    ) -> Result<std::sync::Arc<dyn bzapper_driver::Connection>, bzapper_driver::DriverError> {
        self.entered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.gate.acquire().await.unwrap().forget();
        if self.fail.contains(&opts.instance_id) {
            return Err(bzapper_driver::DriverError::Transport("refused by the test".into()));
        }
        self.inner.start(opts).await
    }
}

/// Restarts the rig on a [`HeldDriver`] that refuses `fail`.
async fn restart_held(rig: Rig, fail: Vec<String>) -> (Rig, std::sync::Arc<HeldDriver>) {
    let mut held = None;
    let rig = rig
        .restart_with(|inner| {
            let d = std::sync::Arc::new(HeldDriver {
                inner,
                entered: Default::default(),
                gate: tokio::sync::Semaphore::new(0),
                fail,
            });
            held = Some(d.clone());
            d
        })
        .await;
    (rig, held.unwrap())
}

/// Issue 21: a restart resumed the numbers one after another before the listener served.
/// Now the claim marks them all `connecting` and running first; then at most `concurrency`
/// starts are under way at once, a number the driver cannot start ends `stopped` with the
/// cause without holding up the others, and a temporary ban's timer is armed as before.
#[tokio::test(start_paused = true)]
async fn a_restart_resumes_every_number_with_a_bounded_number_of_starts_at_once() {
    let rig = Rig::new().await;
    let mut numbers = Vec::new();
    for i in 0..6 {
        numbers.push(rig.connected(&format!("n{i}"), &format!("+55119999901{i:02}")).await);
    }
    let banned = rig.connected("b", "+5511999990199").await;
    ban_for_a_minute(&rig, &banned.id).await;
    let failing = numbers[5].id.clone();
    let (rig, held) = restart_held(rig, vec![failing.clone()]).await;

    let claim = rig.supervisor.claim_for_resume().await.unwrap();
    assert_eq!(claim.len(), 6);
    for n in &numbers {
        assert_eq!(rig.instance(&n.id).await.state.status, Status::Connecting);
        assert!(rig.supervisor.is_running(&n.id).await, "claimed numbers count as running");
    }
    assert!(rig.supervisor.waits_for_ban_end(&banned.id), "the ban's timer is armed again");
    assert_eq!(held.entered(), 0, "the claim starts nothing");

    let sup = rig.supervisor.clone();
    let resume = tokio::spawn(async move { sup.start_claimed(claim, 2).await });
    rig.until("two starts under way", || async { held.entered() == 2 }).await;
    rig.advance(Duration::from_secs(1)).await;
    assert_eq!(held.entered(), 2, "no third start while two are under way");
    assert_eq!(rig.supervisor.resume_progress().pending(), 6);

    // The six resumed numbers, and the banned one's reconnect at the ban's end.
    held.gate.add_permits(7);
    rig.until("every start settled", || async { resume.is_finished() }).await;
    assert_eq!(rig.supervisor.resume_progress().peak_in_flight(), 2);
    assert_eq!(rig.supervisor.resume_progress().pending(), 0);
    for n in &numbers[..5] {
        rig.until_status(&n.id, Status::Connected).await;
    }
    let f = rig.instance(&failing).await;
    assert_eq!((f.state.status, f.state.reason), (Status::Disconnected, Some(Reason::Stopped)));
    assert!(f.state.detail.unwrap_or_default().contains("refused by the test"));
    assert!(!rig.supervisor.is_running(&failing).await);

    // The temporary ban still ends in a reconnect.
    rig.advance(Duration::from_secs(61)).await;
    rig.until_status(&banned.id, Status::Connected).await;
}

/// An operator who disconnects a claimed number before its driver start has run keeps it
/// disconnected: the connection the start makes is closed at once, and its events dropped.
#[tokio::test(start_paused = true)]
async fn a_number_stopped_while_its_resume_waits_stays_stopped() {
    let rig = Rig::new().await;
    let a = rig.connected("a", "+5511999990201").await;
    let (rig, held) = restart_held(rig, Vec::new()).await;
    let claim = rig.supervisor.claim_for_resume().await.unwrap();
    let sup = rig.supervisor.clone();
    let resume = tokio::spawn(async move { sup.start_claimed(claim, 4).await });
    rig.until("the start is under way", || async { held.entered() == 1 }).await;

    let rec = rig.instance(&a.id).await;
    rig.supervisor.stop(&rec).await.unwrap();
    held.gate.add_permits(1);
    rig.until("the start settled", || async { resume.is_finished() }).await;
    assert!(resume.await.is_ok());
    assert_eq!(rig.supervisor.resume_progress().pending(), 0, "its start counts as settled");
    rig.advance(Duration::from_secs(5)).await;
    let rec = rig.instance(&a.id).await;
    assert_eq!((rec.state.status, rec.state.reason), (Status::Disconnected, Some(Reason::Stopped)));
    assert!(!rig.supervisor.is_running(&a.id).await);
    assert_eq!(
        instance_events(&rig, &a.id).await.last().map(String::as_str),
        Some("instance.disconnected disconnected/stopped")
    );
}

/// Issue 21: the event loop writes the `Connected` events that queued up together in one
/// transaction. Each number still gets its own transitions and events, in the order its driver
/// sent them: a number's second event in the same pass (here a drop, then `Connected` again)
/// applies after its first, a `Connected` the state machine refuses (the number is connected
/// already) changes nothing, and one of a connection that no longer exists is dropped.
#[tokio::test(start_paused = true)]
async fn connected_events_queued_together_apply_together_and_in_order() {
    use bzapper_driver::DriverEvent;
    let rig = Rig::new().await;
    let a = rig.connected("a", "+5511999990301").await;
    let b = rig.connected("b", "+5511999990302").await;
    let c = rig.connected("c", "+5511999990303").await;
    let tag = |id: &str| {
        let sup = rig.supervisor.clone();
        let id = id.to_string();
        async move {
            let generation = sup.running.lock().await[&id].generation;
            format!("{id}#{generation}")
        }
    };
    let (ta, tb, tc) = (tag(&a.id).await, tag(&b.id).await, tag(&c.id).await);
    let dropped = || DriverEvent::Disconnected { kind: DropKind::Transient, detail: "x".into() };
    rig.supervisor
        .handle_driver_events(vec![
            (ta.clone(), dropped()),
            (tb.clone(), dropped()),
            (ta.clone(), DriverEvent::Connected),
            (tb.clone(), DriverEvent::Connected),
            (tc.clone(), DriverEvent::Connected),
            (ta.clone(), dropped()),
            (ta.clone(), DriverEvent::Connected),
            ("ins_gone#1".into(), DriverEvent::Connected),
        ])
        .await;
    for n in [&a, &b, &c] {
        assert_eq!(rig.instance(&n.id).await.state.status, Status::Connected, "{}", n.name);
    }
    let after_link = |events: Vec<String>| events[2..].to_vec();
    assert_eq!(
        after_link(instance_events(&rig, &a.id).await),
        [
            "instance.connecting connecting/transient",
            "instance.connected connected/-",
            "instance.connecting connecting/transient",
            "instance.connected connected/-",
        ]
    );
    assert_eq!(
        after_link(instance_events(&rig, &b.id).await),
        ["instance.connecting connecting/transient", "instance.connected connected/-"]
    );
    assert!(after_link(instance_events(&rig, &c.id).await).is_empty(), "nothing changed for c");
}
