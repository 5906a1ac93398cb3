//! The webhook worker against a real SQLite store (PostgreSQL for the cluster case) and real
//! HTTP receivers on loopback.

use crate::model::time::now;
use crate::runtime::delivery::dispatch::PER_LANE_IN_FLIGHT;
use crate::runtime::delivery::engine::SCAN_EVERY;
use bzapper_store::{DeliveryRecord, DeliveryStatus};
use serde_json::json;

use super::*;

#[test]
fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
    // Reference value computed independently (Python: hmac.new(b"k", b"1.{}", sha256)).
    assert_eq!(
        signature("k", "1", "{}"),
        "sha256=3dd49b2593d0f9a349e9e71c4bde3e2b862c2be4003fe9b4ba81332029310158"
    );
}

fn delivery(id: &str, webhook_id: &str) -> DeliveryRecord {
    let at = now();
    DeliveryRecord {
        id: id.into(),
        webhook_id: webhook_id.into(),
        tenant_id: "t".into(),
        event_id: 1,
        event_type: "instance.qr".into(),
        payload: "{}".into(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: at,
        last_status: None,
        last_error: None,
        created_at: at,
        updated_at: at,
        delivered_at: None,
    }
}

/// What the receiving endpoint got: (delivery id, event id), in arrival order.
type Got = Arc<Mutex<Vec<(String, String)>>>;

/// An HTTP endpoint answering 200 to every delivery.
/// The receivers of these tests listen on loopback.
fn loopback() -> Guard {
    Guard::new("127.0.0.0/8".parse().unwrap())
}

async fn receiver() -> (Got, String) {
    let got: Got = Arc::default();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let log = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let log = log.clone();
            async move {
                let delivery = headers["x-bzapper-delivery"].to_str().unwrap().to_string();
                let env: serde_json::Value = serde_json::from_str(&body).unwrap();
                let event = env["id"].as_str().unwrap().to_string();
                log.lock().unwrap().push((delivery, event));
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (got, url)
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "{what} within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An HTTP endpoint that takes every connection and never answers. Returns its URL and
/// how many connections it holds.
async fn black_hole() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = open.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = l.accept().await {
            held.push(socket);
            count.store(held.len(), std::sync::atomic::Ordering::SeqCst);
        }
    });
    (url, open)
}

/// Issue 17, finding 4: tenant A has 20 webhooks at a receiver that never answers and
/// floods them with 1,000 events (20,000 deliveries, twice what memory holds); tenant B's
/// one event is still delivered within 2 s. On a paused clock that does not move while B's
/// delivery is awaited: A's hung requests never time out and no periodic scan runs, so
/// B's delivery cannot be waiting for A's slots or A's backlog to clear.
#[tokio::test(start_paused = true)]
async fn a_flood_at_a_dead_receiver_does_not_delay_another_tenants_delivery() {
    use bzapper_store::{ApiKeyRecord, Tenant, TenantStore, WebhookStore};

    use crate::runtime::test_support::{hold_clock, store_in, TENANT};

    let _hold = hold_clock();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir).await;
    let at = now();
    store
        .create_tenant(
            &Tenant { id: "tb".into(), name: "b".into(), created_at: at },
            &ApiKeyRecord {
                id: "kb".into(),
                tenant_id: "tb".into(),
                secret_hash: [1; 32],
                created_at: at,
            },
        )
        .await
        .unwrap();
    let (dead, held) = black_hole().await;
    let (got, live) = receiver().await;
    let hook = |id: String, tenant: &str, url: &str| WebhookRecord {
        id,
        tenant_id: tenant.into(),
        url: url.into(),
        events: vec!["message.*".into()],
        secret: "s".into(),
        created_at: at,
        previous_secret: None,
    };
    for n in 0..20 {
        store.create_webhook(&hook(format!("a{n:02}"), TENANT, &dead)).await.unwrap();
    }
    store.create_webhook(&hook("b".into(), "tb", &live)).await.unwrap();
    let dyn_store: Arc<dyn Store> = store.clone();
    let recorder = Recorder::new(dyn_store.clone(), None);
    let _worker = WebhookWorker::spawn(
        dyn_store,
        recorder.clone(),
        RetryPolicy::default(),
        &loopback(),
        None,
    )
    .unwrap();

    let flood: Vec<_> = (0..1_000)
        .map(|i| recorder.record_raw(TENANT, None, "message.received", json!({"i": i})))
        .collect();
    let last =
        futures::future::join_all(flood).await.into_iter().map(|e| e.unwrap().id).max().unwrap();
    // The flood is fanned out (every delivery in the store) and A's receiver holds every
    // request slot of A's webhooks.
    let saturated = || async {
        store.fanout_cursor().await.unwrap() >= last
            && held.load(std::sync::atomic::Ordering::SeqCst) >= 20 * PER_LANE_IN_FLIGHT
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !saturated().await {
        assert!(std::time::Instant::now() < deadline, "the flood fanned out and sent");
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    assert!(got.lock().unwrap().is_empty());

    // The clock stands still from here: A's requests never time out and no periodic scan
    // runs, so B's delivery must go out on its own, within 2 s of real time.
    let started = std::time::Instant::now();
    let b = recorder.record_raw("tb", None, "message.received", json!({"b": 1})).await;
    let b = b.unwrap().id.to_string();
    while got.lock().unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "tenant B's delivery still waiting after 2 s behind tenant A's flood"
        );
        // A real pause (the paused clock does not move), leaving the runtime free.
        tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(5))).await.unwrap();
    }
    assert_eq!(got.lock().unwrap()[0].1, b);
    // A's flood is still pending behind its dead receiver: B did not wait for it to clear.
    let pending = store.due_deliveries(now(), 1, 100).await.unwrap();
    assert!(pending.iter().any(|d| d.tenant_id == TENANT));
}

/// A restart with a backlog: 20,000 due deliveries of tenant A's 20 dead webhooks, older
/// than tenant B's one, are in the store before the worker starts. The first scan takes
/// deliveries round-robin across webhooks, so B's goes out at once (an oldest-first scan
/// would return only A's). The clock stands still, as above.
#[tokio::test(start_paused = true)]
async fn a_backlog_in_the_store_does_not_hide_another_webhooks_delivery_from_a_scan() {
    use bzapper_store::{ApiKeyRecord, Tenant, TenantStore, WebhookStore};

    use crate::runtime::test_support::{hold_clock, store_in, TENANT};

    let _hold = hold_clock();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir).await;
    let at = now();
    store
        .create_tenant(
            &Tenant { id: "tb".into(), name: "b".into(), created_at: at },
            &ApiKeyRecord {
                id: "kb".into(),
                tenant_id: "tb".into(),
                secret_hash: [1; 32],
                created_at: at,
            },
        )
        .await
        .unwrap();
    let (dead, _held) = black_hole().await;
    let (got, live) = receiver().await;
    let hook = |id: String, tenant: &str, url: &str| WebhookRecord {
        id,
        tenant_id: tenant.into(),
        url: url.into(),
        events: vec!["message.*".into()],
        secret: "s".into(),
        created_at: at,
        previous_secret: None,
    };
    let mut backlog = Vec::new();
    for n in 0..20 {
        store.create_webhook(&hook(format!("a{n:02}"), TENANT, &dead)).await.unwrap();
        for e in 0..1_000 {
            let mut d = delivery(&format!("dlv_a{n:02}_{e:04}"), &format!("a{n:02}"));
            d.tenant_id = TENANT.into();
            d.event_id = e;
            d.payload = format!("{{\"id\":\"{e}\"}}");
            d.next_attempt_at = at - chrono::Duration::seconds(60);
            backlog.push(d);
        }
    }
    store.create_webhook(&hook("b".into(), "tb", &live)).await.unwrap();
    let mut d = delivery("dlv_b", "b");
    d.tenant_id = "tb".into();
    d.event_id = 5_000;
    d.payload = "{\"id\":\"5000\"}".into();
    backlog.push(d);
    store.enqueue_deliveries(&backlog, 0).await.unwrap();

    let dyn_store: Arc<dyn Store> = store.clone();
    let recorder = Recorder::new(dyn_store.clone(), None);
    let started = std::time::Instant::now();
    let _worker =
        WebhookWorker::spawn(dyn_store, recorder, RetryPolicy::default(), &loopback(), None)
            .unwrap();
    while got.lock().unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "tenant B's delivery still waiting after 2 s behind tenant A's backlog"
        );
        tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(5))).await.unwrap();
    }
    assert_eq!(got.lock().unwrap()[0], ("dlv_b".to_string(), "5000".to_string()));
}

/// Two nodes on one PostgreSQL schema, one webhook: the node holding the role sends every
/// delivery once; a re-send asked for on the other node goes out from the holder; when the
/// holder dies (its runtime, with every task of it, is dropped) and its role is let go, the
/// other node sends what is left, and nothing twice.
#[tokio::test]
async fn in_a_cluster_one_node_sends_each_delivery_once_and_another_takes_over() {
    use bzapper_store::{ApiKeyRecord, ClusterStore, Tenant, TenantStore, WebhookStore};

    use crate::cluster::test_support::{join, Schema};

    let Some(schema) = Schema::new().await else { return };
    let schema = Arc::new(schema);
    // Long: renewal ticks (every 20 s) play no part; the role moves on the signal.
    let ttl = Duration::from_secs(60);
    let policy = RetryPolicy::default();
    let (got, url) = receiver().await;

    // Node A first, on a runtime of its own: dropping it is killing the node.
    let rt_a =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let on_a = schema.clone();
    let (rec_a, hooks_a) = rt_a
        .spawn(async move {
            let (c, s) = join(&on_a, "A", ttl).await;
            let r = Recorder::new(s.clone(), Some(c.clone()));
            let w = WebhookWorker::spawn(s, r.clone(), policy, &loopback(), Some(c)).unwrap();
            let mut role = w.role();
            role.gained().await;
            (r, w)
        })
        .await
        .unwrap();
    let (cb, sb) = join(&schema, "B", ttl).await;
    let at = now();
    sb.create_tenant(
        &Tenant { id: "t1".into(), name: "t1".into(), created_at: at },
        &ApiKeyRecord {
            id: "k1".into(),
            tenant_id: "t1".into(),
            secret_hash: [7; 32],
            created_at: at,
        },
    )
    .await
    .unwrap();
    sb.create_webhook(&WebhookRecord {
        id: "wh1".into(),
        tenant_id: "t1".into(),
        url,
        events: vec!["message.*".into()],
        secret: "s".into(),
        created_at: at,
        previous_secret: None,
    })
    .await
    .unwrap();
    let rec_b = Recorder::new(sb.clone(), Some(cb.clone()));
    let hooks_b =
        WebhookWorker::spawn(sb.clone(), rec_b.clone(), policy, &loopback(), Some(cb)).unwrap();
    assert!(hooks_a.role().is_held() && !hooks_b.role().is_held());

    let mut recorded = Vec::new();
    let record_on_b = |n: usize| {
        let r = rec_b.clone();
        async move {
            let mut ids = Vec::new();
            for i in 0..n {
                let e = r.record_raw("t1", Some("i1"), "message.received", json!({"i": i}));
                ids.push(e.await.unwrap().id.to_string());
            }
            ids
        }
    };
    let r = rec_a.clone();
    let on_a = rt_a.spawn(async move {
        let mut ids = Vec::new();
        for i in 0..10 {
            let e = r.record_raw("t1", Some("i1"), "message.received", json!({"a": i}));
            ids.push(e.await.unwrap().id.to_string());
        }
        ids
    });
    recorded.extend(record_on_b(10).await);
    recorded.extend(on_a.await.unwrap());
    eventually("the first 20 deliveries", || got.lock().unwrap().len() >= 20).await;
    // Every attempt's outcome is on disk: none is under way when A dies below.
    let delivered = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM deliveries WHERE status = 'delivered'")
            .fetch_one(&schema.raw)
            .await
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while delivered().await < 20 {
        assert!(Instant::now() < deadline, "20 attempts recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A re-send asked for on B, which does not send: A, the sender, sends it again.
    let again = got.lock().unwrap()[0].0.clone();
    sb.requeue_delivery(&again, now()).await.unwrap();
    hooks_b.poke();
    eventually("the re-send", || got.lock().unwrap().len() >= 21).await;
    assert_eq!(got.lock().unwrap()[20].0, again);
    let deadline = Instant::now() + Duration::from_secs(10);
    while delivered().await < 20
        || sb.get_delivery("wh1", &again).await.unwrap().unwrap().attempts < 2
    {
        assert!(Instant::now() < deadline, "the re-send recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A dies. Its lease is still live: nobody sends what is recorded meanwhile.
    rt_a.shutdown_background();
    recorded.extend(record_on_b(5).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(got.lock().unwrap().len(), 21, "sent while no node held the role");
    assert!(!hooks_b.role().is_held());

    // A's lease ends (as when it expires, or A leaves): B takes the role on the signal and
    // goes on from the fan-out cursor A left in the database.
    sqlx::query("UPDATE roles SET lease_until = bz_now_ms() - 1")
        .execute(&schema.raw)
        .await
        .unwrap();
    sb.signal(Signal::Leases).await.unwrap();
    eventually("the deliveries recorded while nobody sent", || got.lock().unwrap().len() >= 26)
        .await;
    assert!(hooks_b.role().is_held());
    recorded.extend(record_on_b(5).await);
    eventually("the deliveries recorded after the handover", || got.lock().unwrap().len() >= 31)
        .await;
    // Scans and periodic reads after that send nothing again.
    tokio::time::sleep(SCAN_EVERY + Duration::from_millis(500)).await;

    let got = got.lock().unwrap().clone();
    let mut per_event: HashMap<String, usize> = HashMap::new();
    let mut per_delivery: HashMap<String, usize> = HashMap::new();
    for (delivery, event) in &got {
        *per_event.entry(event.clone()).or_default() += 1;
        *per_delivery.entry(delivery.clone()).or_default() += 1;
    }
    assert_eq!(got.len(), 31, "{got:?}");
    assert_eq!(per_event.len(), 30);
    for id in &recorded {
        let n = per_event.get(id).copied().unwrap_or(0);
        let want = if got[0].1 == *id { 2 } else { 1 };
        assert_eq!(n, want, "event {id} arrived {n} times");
    }
    assert_eq!(per_delivery.len(), 30, "one delivery per event");
    assert_eq!(per_delivery[&again], 2, "the re-send reused its delivery id");
}
