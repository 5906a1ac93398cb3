//! The alert worker against a real SQLite store and real HTTP targets on loopback, on a
//! paused tokio clock (moved by hand) and a [`FakeClock`] for the times alerts are due by.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Mutex;

use bzapper_core::{InstanceState, Reason};
use bzapper_store::{
    AlertConfig, AlertDeliveryFilter, AlertStatus, AlertStore, EventLog, InstanceStore, NewEvent,
    SqliteStore, StateChange, WebhookStore,
};
use serde_json::{json, Value};

use super::*;
use crate::model::time::now;
use crate::runtime::campaigns::FakeClock;
use crate::runtime::test_support::{
    add_tenant, hold_clock, store_in, stored_number, until, TENANT,
};

/// The bodies an alert target received, and the status it answers (settable).
#[derive(Clone)]
struct Target {
    got: Arc<Mutex<Vec<Value>>>,
    answer: Arc<AtomicU16>,
    url: String,
}

impl Target {
    async fn start(path: &str) -> Target {
        let got: Arc<Mutex<Vec<Value>>> = Arc::default();
        let answer = Arc::new(AtomicU16::new(200));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{path}", l.local_addr().unwrap());
        let (log, status) = (got.clone(), answer.clone());
        let app = axum::Router::new().route(
            path,
            axum::routing::post(move |body: String| {
                let (log, status) = (log.clone(), status.clone());
                async move {
                    log.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                    axum::http::StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap()
                }
            }),
        );
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        Target { got, answer, url }
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

/// A target that takes every connection and never answers; returns its URL and how many
/// connections it holds.
async fn black_hole() -> (String, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alert", l.local_addr().unwrap());
    let open = Arc::new(AtomicUsize::new(0));
    let count = open.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = l.accept().await {
            held.push(socket);
            count.store(held.len(), Ordering::SeqCst);
        }
    });
    (url, open)
}

fn loopback() -> Guard {
    Guard::new("127.0.0.0/8".parse().unwrap())
}

fn target_of(tenant: &str, url: &str, format: &str) -> AlertConfig {
    AlertConfig {
        tenant_id: tenant.into(),
        url: url.into(),
        format: format.into(),
        on: vec!["banned".into(), "logged_out".into()],
        updated_at: now(),
    }
}

/// Starts the worker on `store`, its cursor pinned first (on a data dir that never had one,
/// the fan-out starts at the newest event: events a test records right after would race it).
async fn spawn_worker(
    store: &Arc<SqliteStore>,
    clock: Arc<FakeClock>,
) -> (Arc<Recorder>, Arc<AlertWorker>) {
    let cursor = store.alert_cursor().await.unwrap();
    store.enqueue_alerts(&[], cursor).await.unwrap();
    let store: Arc<dyn Store> = store.clone();
    let recorder = Recorder::new(store.clone(), None);
    let parts = AlertParts {
        store,
        recorder: recorder.clone(),
        policy: RetryPolicy::default(),
        role: Role::always(),
        clock,
        cluster: None,
    };
    (recorder, AlertWorker::spawn(parts, &loopback()).unwrap())
}

/// The number was banned: its state stored and `instance.disconnected` in the log, as the
/// supervisor records it.
fn banned_event(instance_id: &str) -> NewEvent {
    NewEvent {
        tenant_id: TENANT.into(),
        instance_id: Some(instance_id.into()),
        kind: "instance.disconnected".into(),
        data: json!({"status": "disconnected", "reason": "banned", "detail": "code 101"}),
        created_at: now(),
    }
}

async fn alerts_of(store: &SqliteStore, tenant: &str) -> Vec<AlertDeliveryRecord> {
    let f = AlertDeliveryFilter { limit: 100, ..AlertDeliveryFilter::default() };
    store.list_alert_deliveries(tenant, &f).await.unwrap()
}

/// Issue 18: an alert due while its target is down was lost after two quick retries. Now it
/// waits in the store, retried by the webhooks' backoff, and is posted once the target is
/// back: here ten minutes later (on the alerts' clock), exactly once, with the body of
/// docs/api.md.
#[tokio::test(start_paused = true)]
async fn an_alert_due_while_the_target_is_down_is_posted_once_it_is_back() {
    let _hold = hold_clock();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir).await;
    let n = stored_number(store.as_ref(), "sales-1").await;
    let target = Target::start("/alert").await;
    target.answer.store(503, Ordering::SeqCst);
    store.put_alert(&target_of(TENANT, &target.url, "json")).await.unwrap();
    let clock = FakeClock::new(now());
    let (recorder, _worker) = spawn_worker(&store, clock.clone()).await;

    let banned = InstanceState::disconnected(Reason::Banned, Some("code 101".into()));
    store.update_instance_state(&n.id, &StateChange::state(banned)).await.unwrap();
    let e = banned_event(&n.id);
    let e = recorder.record_raw(TENANT, Some(&n.id), &e.kind, e.data.clone()).await.unwrap();
    until("the first attempt recorded", || async {
        alerts_of(&store, TENANT).await.first().is_some_and(|a| a.attempts == 1)
    })
    .await;
    let a = alerts_of(&store, TENANT).await.remove(0);
    assert_eq!((a.status, a.last_status), (AlertStatus::Pending, Some(503)), "{a:?}");
    assert_eq!(a.last_error.as_deref(), Some("the receiver answered 503 Service Unavailable"));

    // The target comes back. Nothing is posted before the retry's time on the alerts' clock,
    // however many scans run meanwhile...
    target.answer.store(200, Ordering::SeqCst);
    for _ in 0..50 {
        tokio::time::advance(Duration::from_millis(100)).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(target.count(), 1, "posted again before its retry was due");
    // ... and it is posted once that time has passed.
    clock.advance(chrono::Duration::minutes(10));
    until("the alert delivered", || async {
        alerts_of(&store, TENANT).await[0].status == AlertStatus::Delivered
    })
    .await;
    let a = alerts_of(&store, TENANT).await.remove(0);
    assert_eq!((a.attempts, a.last_status, a.last_error), (2, Some(200), None));
    for _ in 0..20 {
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    let got = target.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "one failed attempt, one delivery: {got:?}");
    let text = "Number sales-1 was banned: code 101. It is out of rotation.";
    assert_eq!(
        got[1],
        json!({"text": text, "alert": "banned", "tenant_id": TENANT, "instance_id": n.id,
               "event": {"id": e.id.to_string(), "type": "instance.disconnected",
                         "created_at": e.created_at, "data": e.data}})
    );
    assert_eq!(got[0], got[1], "every attempt posts the same body");
}

/// Issue 18: an event appended just before the gateway died, before any alert was posted for
/// it, was never alerted (alerts followed the live feed from the next start). Now the fan-out
/// reads on from its stored cursor: the event, appended while no worker ran, gets its alert.
#[tokio::test(start_paused = true)]
async fn an_event_appended_before_a_restart_gets_its_alert_after_it() {
    let _hold = hold_clock();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir).await;
    let n = stored_number(store.as_ref(), "sales-1").await;
    let target = Target::start("/alert").await;
    store.put_alert(&target_of(TENANT, &target.url, "slack")).await.unwrap();
    // The previous run had read the log up to here...
    let qr = NewEvent { kind: "instance.qr".into(), ..banned_event(&n.id) };
    let before = store.append_event(&qr).await.unwrap();
    store.enqueue_alerts(&[], before.id).await.unwrap();
    // ... then the ban was appended and the gateway died before its alert.
    store.append_event(&banned_event(&n.id)).await.unwrap();

    let (_recorder, _worker) = spawn_worker(&store, FakeClock::new(now())).await;
    until("the alert posted", || async { target.count() == 1 }).await;
    assert_eq!(
        target.got.lock().unwrap()[0],
        json!({"text": "Number sales-1 was banned: code 101. It is out of rotation."})
    );
    until("the delivery recorded", || async {
        alerts_of(&store, TENANT).await[0].status == AlertStatus::Delivered
    })
    .await;
    // The event before the cursor, read by the previous run, is not read again.
    assert_eq!(alerts_of(&store, TENANT).await.len(), 1);
}

/// A tenant whose target never answers holds only its own request slots: another tenant's
/// alert goes out while the first tenant's backlog waits. The tokio clock stands still while
/// it is awaited, so the hung requests never time out.
#[tokio::test(start_paused = true)]
async fn a_dead_target_delays_no_other_tenants_alert() {
    let _hold = hold_clock();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir).await;
    add_tenant(store.as_ref(), "t2").await;
    let (dead, held) = black_hole().await;
    let live = Target::start("/alert").await;
    store.put_alert(&target_of(TENANT, &dead, "slack")).await.unwrap();
    store.put_alert(&target_of("t2", &live.url, "slack")).await.unwrap();
    let (recorder, _worker) = spawn_worker(&store, FakeClock::new(now())).await;
    let data = json!({"status": "disconnected", "reason": "banned", "detail": "code 101"});
    for _ in 0..30 {
        recorder.record_raw(TENANT, None, "instance.disconnected", data.clone()).await.unwrap();
    }
    until("the dead target's slots taken", || async { held.load(Ordering::SeqCst) >= 4 }).await;
    recorder.record_raw("t2", None, "instance.disconnected", data.clone()).await.unwrap();
    let started = std::time::Instant::now();
    while live.count() == 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "tenant 2's alert still waiting");
        tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(5))).await.unwrap();
    }
    assert_eq!(held.load(Ordering::SeqCst), 4, "at most four requests to one tenant's target");
    assert_eq!(alerts_of(&store, TENANT).await.len(), 30);
}

/// What a test's logs say: a subscriber for the current thread writing into a buffer.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A failed post logs the host, never the URL's path (the secret of a Slack URL), and the
/// delivery's `last_error` does not carry it either.
#[tokio::test(start_paused = true)]
async fn a_failed_alert_logs_the_host_only() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber =
        tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _on = tracing::subscriber::set_default(subscriber);
    let _hold = hold_clock();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir).await;
    // A port nothing listens on: each attempt fails to connect.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let url = format!("http://127.0.0.1:{port}/services/T000/B000/XXXXSECRET");
    store.put_alert(&target_of(TENANT, &url, "slack")).await.unwrap();
    let clock = FakeClock::new(now());
    let (recorder, _worker) = spawn_worker(&store, clock.clone()).await;
    let data = json!({"status": "disconnected", "reason": "banned", "detail": "code 101"});
    recorder.record_raw(TENANT, None, "instance.disconnected", data).await.unwrap();
    for n in 1..=3 {
        until("an attempt recorded", || async {
            alerts_of(&store, TENANT).await.first().is_some_and(|a| a.attempts == n)
        })
        .await;
        clock.advance(chrono::Duration::minutes(1));
    }
    let a = alerts_of(&store, TENANT).await.remove(0);
    let error = a.last_error.unwrap();
    assert_eq!(error, "the receiver could not be reached (no connection, or no answer in time)");
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.matches("an alert could not be posted").count() >= 3, "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("XXXXSECRET") && !text.contains("/services"), "{text}");
}

/// Two nodes on one PostgreSQL schema: the node holding the `webhooks` role posts every alert,
/// once, whichever node recorded its event; when it dies (its runtime, with every task of it,
/// is dropped) and its role is let go, the other node posts the alerts raised meanwhile, from
/// the cursor the first left in the database, and none twice.
#[tokio::test]
async fn in_a_cluster_one_node_posts_each_alert_and_another_takes_over() {
    use crate::cluster::test_support::{join, Schema};
    use bzapper_store::{ApiKeyRecord, ClusterStore, Tenant, TenantStore};

    let Some(schema) = Schema::new().await else { return };
    let schema = Arc::new(schema);
    // Long: renewal ticks play no part; the role moves on the signal.
    let ttl = Duration::from_secs(60);
    let target = Target::start("/alert").await;
    let spawn_on = |c: Arc<Cluster>, s: Arc<dyn Store>| {
        let recorder = Recorder::new(s.clone(), Some(c.clone()));
        let parts = AlertParts {
            store: s,
            recorder: recorder.clone(),
            policy: RetryPolicy::default(),
            role: Role::hold(c.clone(), crate::cluster::role::WEBHOOKS),
            clock: Arc::new(crate::runtime::campaigns::SystemClock),
            cluster: Some(c),
        };
        (recorder, AlertWorker::spawn(parts, &loopback()).unwrap())
    };

    // Node A first, on a runtime of its own: dropping it is killing the node.
    let rt_a =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let on_a = schema.clone();
    let (rec_a, alerts_a) = rt_a
        .spawn(async move {
            let (c, s) = join(&on_a, "A", ttl).await;
            // The cursor pinned before any event (see `spawn_worker`).
            s.enqueue_alerts(&[], s.alert_cursor().await.unwrap()).await.unwrap();
            let (r, w) = spawn_on(c, s);
            let mut role = w.engine.role();
            role.gained().await;
            (r, w)
        })
        .await
        .unwrap();
    let (cb, sb) = join(&schema, "B", ttl).await;
    let at = now();
    let key = ApiKeyRecord {
        id: "k1".into(),
        tenant_id: "t1".into(),
        secret_hash: [7; 32],
        created_at: at,
    };
    sb.create_tenant(&Tenant { id: "t1".into(), name: "t1".into(), created_at: at }, &key)
        .await
        .unwrap();
    sb.put_alert(&target_of("t1", &target.url, "json")).await.unwrap();
    let (rec_b, alerts_b) = spawn_on(cb, sb.clone());
    assert!(alerts_a.engine.role().is_held() && !alerts_b.engine.role().is_held());

    let ban = |n: usize| json!({"status": "disconnected", "reason": "banned", "detail": format!("ban {n}")});
    let mut recorded = Vec::new();
    for n in 0..3 {
        let e = rec_b.record_raw("t1", None, "instance.disconnected", ban(n)).await.unwrap();
        recorded.push(e.id.to_string());
    }
    let r = rec_a.clone();
    let on_a = rt_a.spawn(async move {
        r.record_raw("t1", None, "instance.disconnected", ban(3)).await.unwrap().id.to_string()
    });
    recorded.push(on_a.await.unwrap());
    let delivered = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM alert_deliveries WHERE status = 'delivered'",
        )
        .fetch_one(&schema.raw)
        .await
        .unwrap()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while delivered().await < 4 {
        assert!(tokio::time::Instant::now() < deadline, "the first four alerts delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A dies; its lease is still live, so nobody posts what is recorded meanwhile.
    rt_a.shutdown_background();
    for n in 4..6 {
        let e = rec_b.record_raw("t1", None, "instance.disconnected", ban(n)).await.unwrap();
        recorded.push(e.id.to_string());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(target.count(), 4, "posted while no node held the role");
    // A's role lease ends: B takes the role on the signal and reads on from A's cursor.
    sqlx::query("UPDATE roles SET lease_until = bz_now_ms() - 1")
        .execute(&schema.raw)
        .await
        .unwrap();
    sb.signal(bzapper_store::Signal::Leases).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while target.count() < 6 {
        assert!(tokio::time::Instant::now() < deadline, "the alerts raised while nobody posted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(alerts_b.engine.role().is_held());
    tokio::time::sleep(Duration::from_millis(1500)).await; // scans after that post nothing again
    let got = target.got.lock().unwrap().clone();
    let mut posted: Vec<String> =
        got.iter().map(|b| b["event"]["id"].as_str().unwrap().to_string()).collect();
    posted.sort();
    recorded.sort();
    assert_eq!(posted, recorded, "each alert posted once");
}
