//! Webhook deliveries: a fan-out task turns logged events into durable delivery rows (one per
//! matching webhook), and a delivery task POSTs each due delivery, signed, retrying with
//! backoff and jitter until it is delivered or given up (dead-lettered). Recording an event
//! never waits on a receiver, and a restart resumes where they stopped.
//!
//! The fan-out hands the deliveries it has just committed straight to the delivery task, so a
//! healthy receiver gets each event without the store being read for it; retries, deliveries
//! left by a previous run, re-sends asked for by API and anything that did not fit in memory
//! are found by scanning the store for due deliveries (at a retry's time, at a re-send, and
//! every second). No delivery is sent twice: one is held at most once in memory (a fresh one
//! from the moment its id is made, before it is committed, so a scan cannot take it too), and
//! one that came from a scan, which may be older than an attempt that has just ended, is read
//! back before its attempt and sent only if it is still pending with the attempts seen.
//!
//! In a cluster both tasks run only on the node holding the `webhooks` role (see
//! [`crate::cluster::role`]): the fan-out cursor and the deliveries are in the shared store, so
//! a node that gains the role goes on where the previous holder stopped. A node that loses it
//! starts no new attempt and forgets what it held in memory; an attempt already under way at
//! that moment may be made again by the next holder (at least once, as after a crash).

mod delivery;
mod dispatch;
mod fanout;
mod signature;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bzapper_core::retry::RetryPolicy;
use bzapper_store::{Signal, Store, WebhookRecord};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::cluster::role::{self, Role};
use crate::cluster::Cluster;
use crate::events::recorder::Recorder;
use crate::outbound::{Guard, OutboundClient, Redirects};

pub use signature::signature;

use dispatch::Dispatch;

/// How long a receiver may take to answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The store is scanned at least this often (deliveries this task was not told about).
const SCAN_EVERY: Duration = Duration::from_secs(1);
/// Scans are at least this far apart, so a backlog is never rescanned in a loop.
const SCAN_GAP: Duration = Duration::from_millis(20);
/// How long a webhook read from the store is used before it is read again (to notice that
/// it was deleted).
const HOOK_TTL: Duration = Duration::from_secs(1);

pub struct WebhookWorker {
    store: Arc<dyn Store>,
    metrics: Arc<crate::events::metrics::Metrics>,
    http: OutboundClient,
    policy: RetryPolicy,
    wake: Notify,
    dispatch: Mutex<Dispatch>,
    /// Webhooks by id, with when each was read (a webhook never changes, but it may be
    /// deleted: it is read again after [`HOOK_TTL`]).
    hooks: Mutex<HashMap<String, (Arc<WebhookRecord>, Instant)>>,
    /// Set at shutdown: no new attempt starts.
    closing: std::sync::atomic::AtomicBool,
    /// Whether this node sends (always on a single node).
    role: Role,
    cluster: Option<Arc<Cluster>>,
}

impl WebhookWorker {
    /// Starts the fan-out and delivery tasks; with a `cluster`, they work while this node
    /// holds the `webhooks` role. Deliveries go through the outbound `guard`, redirects off (a
    /// 3xx is a failed attempt: following it would turn the POST into a GET that still carries
    /// the `X-Bzapper-*` headers, to wherever the receiver points).
    pub fn spawn(
        store: Arc<dyn Store>,
        recorder: Arc<Recorder>,
        policy: RetryPolicy,
        guard: &Guard,
        cluster: Option<Arc<Cluster>>,
    ) -> reqwest::Result<Arc<Self>> {
        let http = guard.client(Redirects::Off, |b| {
            b.timeout(ATTEMPT_TIMEOUT).user_agent(concat!("bzapper/", env!("CARGO_PKG_VERSION")))
        })?;
        let w = Arc::new(WebhookWorker {
            store,
            metrics: recorder.metrics().clone(),
            http,
            policy,
            wake: Notify::new(),
            dispatch: Mutex::new(Dispatch { scan_soon: true, ..Dispatch::default() }),
            hooks: Mutex::default(),
            closing: std::sync::atomic::AtomicBool::new(false),
            role: match &cluster {
                Some(c) => Role::hold(c.clone(), role::WEBHOOKS),
                None => Role::always(),
            },
            cluster,
        });
        let fan = w.clone();
        tokio::spawn(async move { fan.fan_out(recorder).await });
        let del = w.clone();
        tokio::spawn(async move { del.deliver_loop().await });
        if let Some(c) = &w.cluster {
            tokio::spawn(w.clone().hear_pokes(c.signals()));
        }
        Ok(w)
    }

    /// Whether this node sends webhooks (and alerts): the role the alerts follow too.
    pub fn role(&self) -> Role {
        self.role.clone()
    }

    /// Wakes the delivery loop to look in the store (a re-send was asked for), on whichever
    /// node sends.
    pub fn poke(&self) {
        self.scan_now();
        if let Some(c) = &self.cluster {
            let c = c.clone();
            tokio::spawn(async move {
                if let Err(e) = c.store.signal(Signal::Webhooks).await {
                    // The sender's periodic scan finds the delivery all the same.
                    tracing::warn!(error = %e, "signalling a webhook re-send failed");
                }
            });
        }
    }

    fn scan_now(&self) {
        self.dispatch().scan_soon = true;
        self.wake.notify_one();
    }

    /// Scans at once when any node asks (a re-send made on it), or when signals may have
    /// been missed.
    async fn hear_pokes(self: Arc<Self>, mut signals: tokio::sync::broadcast::Receiver<Signal>) {
        loop {
            match signals.recv().await {
                Ok(Signal::Webhooks | Signal::Resync) | Err(RecvError::Lagged(_)) => {
                    self.scan_now();
                }
                Ok(_) => {}
                Err(RecvError::Closed) => return,
            }
        }
    }

    fn dispatch(&self) -> std::sync::MutexGuard<'_, Dispatch> {
        self.dispatch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts no new attempt and waits (at most one attempt's timeout) for those under way
    /// to record their outcome, so that a delivery the receiver accepted is not sent again
    /// after a restart.
    pub async fn shutdown(&self) {
        self.closing.store(true, std::sync::atomic::Ordering::SeqCst);
        // In a cluster, the next holder takes over once this node's lease is let go.
        self.role.give_up();
        let deadline = tokio::time::Instant::now() + ATTEMPT_TIMEOUT + Duration::from_secs(1);
        while tokio::time::Instant::now() < deadline {
            if self.dispatch().claimed.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::dispatch::{
        Dispatch, Queued, MAX_QUEUED, PER_WEBHOOK_IN_FLIGHT, PER_WEBHOOK_QUEUED,
    };
    use crate::model::time::now;
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

    fn ids(ready: &[Queued]) -> Vec<(&str, bool)> {
        ready.iter().map(|q| (q.delivery.id.as_str(), q.verify)).collect()
    }

    #[test]
    fn a_delivery_is_held_once_and_each_webhook_has_its_own_slots() {
        let mut d = Dispatch::default();
        let fresh: Vec<_> = (0..6).map(|n| delivery(&format!("a{n}"), "slow")).collect();
        // Reserved before its commit: a scan that sees it meanwhile does not take it too.
        let term = d.reserve(&fresh);
        d.offer_scanned(delivery("a0", "slow"));
        d.queue_reserved(fresh, true, term);
        d.offer_scanned(delivery("b0", "other"));
        d.offer_scanned(delivery("b0", "other"));
        let ready = d.take_ready();
        let mut got = ids(&ready);
        got.sort();
        // Four slots for `slow`, fresh ones unverified; the scanned one verified, once.
        assert_eq!(got, [("a0", false), ("a1", false), ("a2", false), ("a3", false), ("b0", true)]);
        assert!(d.take_ready().is_empty(), "`slow` is at its cap");
        // While its outcome is written, a delivery stays held though its slot is free.
        d.end_request("slow");
        d.offer_scanned(delivery("a0", "slow"));
        assert_eq!(ids(&d.take_ready()), [("a4", false)]);
        d.settle("a0");
        // Settled: a later scan may take it again (and its attempt reads it back first).
        d.end_request("slow");
        d.offer_scanned(delivery("a0", "slow"));
        assert_eq!(ids(&d.take_ready()), [("a5", false)]);
        for id in ["a1", "a2", "a3"] {
            d.end_request("slow");
            d.settle(id);
        }
        assert_eq!(ids(&d.take_ready()), [("a0", true)]);
    }

    #[test]
    fn what_does_not_fit_in_memory_is_left_to_a_scan() {
        let mut d = Dispatch::default();
        // One webhook's flood fills its own share only.
        let many: Vec<_> =
            (0..PER_WEBHOOK_QUEUED + 2).map(|n| delivery(&format!("d{n}"), "h")).collect();
        let term = d.reserve(&many);
        d.queue_reserved(many, true, term);
        assert_eq!(d.queued_len, PER_WEBHOOK_QUEUED);
        assert!(d.left_in_store.contains("h"));
        assert!(!d.wants_scan(now()), "not before its queue has room");
        assert!(!d.known.contains(&format!("d{}", PER_WEBHOOK_QUEUED + 1)), "a scan may take it");
        // Another webhook still has its whole share, from the fan-out as from a scan.
        let other: Vec<_> = (0..3).map(|n| delivery(&format!("o{n}"), "other")).collect();
        let term = d.reserve(&other);
        d.queue_reserved(other, true, term);
        assert!(d.offer_scanned(delivery("o3", "other")));
        assert_eq!(d.queued_of("other"), 4);
        while d.queued_of("h") >= PER_WEBHOOK_QUEUED / 2 {
            for q in d.take_ready() {
                d.end_request(&q.delivery.webhook_id);
                d.settle(&q.delivery.id);
            }
        }
        assert!(d.wants_scan(now()));

        // Memory as a whole is bounded too, but a webhook with (nearly) nothing queued may
        // still queue a request slot's worth past it.
        let mut d = Dispatch::default();
        let hooks = MAX_QUEUED / PER_WEBHOOK_QUEUED + 1;
        for h in 0..hooks {
            let ds: Vec<_> = (0..PER_WEBHOOK_QUEUED)
                .map(|n| delivery(&format!("h{h}-{n}"), &format!("h{h}")))
                .collect();
            let term = d.reserve(&ds);
            d.queue_reserved(ds, true, term);
        }
        assert_eq!(d.queued_len, MAX_QUEUED);
        for n in 0..PER_WEBHOOK_IN_FLIGHT {
            assert!(d.offer_scanned(delivery(&format!("late{n}"), "late")));
        }
        assert!(!d.offer_scanned(delivery("late-too-many", "late")));
        assert!(d.left_in_store.contains("late"));

        let failed: Vec<_> = (0..2).map(|n| delivery(&format!("x{n}"), "h")).collect();
        let term = d.reserve(&failed);
        d.unreserve(&failed, term);
        assert!(!d.known.contains("x0"));
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
        let last = futures::future::join_all(flood)
            .await
            .into_iter()
            .map(|e| e.unwrap().id)
            .max()
            .unwrap();
        // The flood is fanned out (every delivery in the store) and A's receiver holds every
        // request slot of A's webhooks.
        let saturated = || async {
            store.fanout_cursor().await.unwrap() >= last
                && held.load(std::sync::atomic::Ordering::SeqCst) >= 20 * PER_WEBHOOK_IN_FLIGHT
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
            tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(5)))
                .await
                .unwrap();
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
            tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(5)))
                .await
                .unwrap();
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
        let rt_a = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
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
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM deliveries WHERE status = 'delivered'",
            )
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
        eventually("the deliveries recorded after the handover", || {
            got.lock().unwrap().len() >= 31
        })
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

    #[test]
    fn a_change_of_role_forgets_all_but_the_attempts_under_way() {
        let mut d = Dispatch::default();
        let fresh: Vec<_> = (0..5).map(|n| delivery(&format!("a{n}"), "h")).collect();
        let term = d.reserve(&fresh);
        d.queue_reserved(fresh, true, term);
        let started = d.take_ready();
        assert_eq!(started.len(), PER_WEBHOOK_IN_FLIGHT);
        // A fan-out page is being committed when the role moves.
        let late: Vec<_> = (0..2).map(|n| delivery(&format!("late{n}"), "h")).collect();
        let old_term = d.reserve(&late);
        d.forget_queued();
        assert_eq!(d.queued_len, 0);
        assert!(d.wants_scan(now()), "the store is the source after a change");
        // The attempts under way stay held: a scan does not take them again.
        assert!(!d.offer_scanned(delivery("a0", "h")));
        // What was queued, or reserved in the old term, may be taken by a scan (read back
        // before its attempt)...
        assert!(d.offer_scanned(delivery("a4", "h")));
        assert!(d.offer_scanned(delivery("late0", "h")));
        // ... and the old term's fan-out neither queues it unverified nor lets go of it.
        d.queue_reserved(late.clone(), true, old_term);
        d.unreserve(&late, old_term);
        assert_eq!(d.queued_len, 2);
        assert!(d.known.contains("late0"));
        assert!(!d.offer_scanned(delivery("late0", "h")));
    }
}
