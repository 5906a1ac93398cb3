//! Why a number rests (`Scheduler::resting`): offline, health, cap and gap, each read from
//! the scheduler's own view on a paused clock.

use std::time::Duration;

use bzapper_core::sending::HealthEvent;
use bzapper_core::LimitsPatch;
use bzapper_store::InstanceStore;

use crate::runtime::test_support::Rig;

#[tokio::test(start_paused = true)]
async fn a_number_rests_offline_for_health_at_its_cap_and_in_its_gap() {
    let rig = Rig::new().await;
    // Not linked yet, or unknown: it cannot send.
    let pending = rig.number("pending").await;
    assert_eq!(rig.scheduler.resting(&pending.id), Some("offline"));
    assert_eq!(rig.scheduler.resting("ins_unknown"), None, "nothing to say of a stranger");

    let a = rig.connected("a", "+5511999990501").await;
    rig.until("a ready", || async { rig.scheduler.resting(&a.id).is_none() }).await;

    // One send: the number then waits its human gap (3 to 12 s by default).
    let m = rig.send("5511988880501", "one").await;
    rig.until_sent(&m.id).await;
    rig.until("a resting", || async { rig.scheduler.resting(&a.id).is_some() }).await;
    assert_eq!(rig.scheduler.resting(&a.id), Some("gap"));
    rig.advance(Duration::from_secs(13)).await;
    assert_eq!(rig.scheduler.resting(&a.id), None, "the gap is over");

    // A cap of one a minute, already spent: its cap binds.
    let mut rec = rig.instance(&a.id).await;
    rec.limits = LimitsPatch { per_minute: Some(1), ..LimitsPatch::default() };
    rig.store.update_instance_settings(&rec).await.unwrap();
    rig.scheduler.number_changed(&rec, None).await;
    assert_eq!(rig.scheduler.resting(&a.id), Some("cap"));
    rig.advance(Duration::from_secs(60)).await;
    assert_eq!(rig.scheduler.resting(&a.id), None, "a minute later the cap allows one more");

    // Health below the threshold: out of rotation.
    for _ in 0..5 {
        rig.scheduler.health_event(&a.id, HealthEvent::ReachOutRefused).await;
    }
    assert_eq!(rig.scheduler.health(&a.id).map(|h| h.1), Some(false));
    assert_eq!(rig.scheduler.resting(&a.id), Some("health"));

    // Disconnected: offline comes first.
    rig.supervisor.stop(&rig.instance(&a.id).await).await.unwrap();
    rig.until("a stopped", || async { rig.scheduler.resting(&a.id) == Some("offline") }).await;
}
