//! Webhooks: signed deliveries that survive a receiver outage, are dead-lettered after the
//! last try, can be re-sent, and never let one slow receiver delay another.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode as AxStatus};
use bzapper_core::retry::RetryPolicy;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{config, id, TestApp};

/// A receiver on loopback that fails its first `fail_first` requests with 500 and records
/// every request.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    fail_first: Arc<AtomicUsize>,
    delay: Duration,
}

impl Receiver {
    async fn start(fail_first: usize, delay: Duration) -> (Receiver, String) {
        let r = Receiver {
            fail_first: Arc::new(AtomicUsize::new(fail_first)),
            delay,
            ..Default::default()
        };
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        r.clone().serve(l, std::future::pending());
        (r, url)
    }

    /// Serves on `l` until `stop` resolves.
    fn serve(
        self,
        l: tokio::net::TcpListener,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let state = self;
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    tokio::time::sleep(state.delay).await;
                    state.got.lock().unwrap().push((headers, body));
                    let left = state.fail_first.load(Ordering::SeqCst);
                    if left > 0 {
                        state.fail_first.store(left - 1, Ordering::SeqCst);
                        AxStatus::INTERNAL_SERVER_ERROR
                    } else {
                        AxStatus::OK
                    }
                }
            }),
        );
        tokio::spawn(
            async move { axum::serve(l, app).with_graceful_shutdown(stop).await.unwrap() },
        );
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

async fn app_with(policy: RetryPolicy) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut c = config(dir.path());
    c.webhook_retry = policy;
    TestApp::spawn_with(dir, c).await
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn deliveries_are_signed_and_retried_through_an_outage() {
    let app =
        app_with(RetryPolicy { first_delay_ms: 50, max_delay_ms: 200, give_up_after_ms: 60_000 })
            .await;
    let (_, key) = app.tenant("acme").await;
    let (rx, url) = Receiver::start(2, Duration::ZERO).await;
    let (s, hook) = app
        .post(
            "/v1/webhooks",
            &key,
            json!({"url": url, "events": ["instance.*"], "secret": "a-secret-of-16+chars"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hook}");
    assert_eq!(hook["secret"], "a-secret-of-16+chars");
    let hid = id(&hook);
    let (_, listed) = app.get("/v1/webhooks", &key).await;
    assert!(!listed.to_string().contains("a-secret-of-16"), "the secret is shown once");

    let iid = id(&app.instance(&key, "n1").await); // records instance.qr
    wait_until("the delivery after two failures", || rx.count() >= 3).await;
    let got = rx.got.lock().unwrap().clone();
    let (headers, body) = &got[2];
    let envelope: Value = serde_json::from_str(body).unwrap();
    assert_eq!(envelope["type"], "instance.qr");
    assert_eq!(envelope["instance_id"], iid.as_str());
    assert_eq!(headers["x-bzapper-event"], "instance.qr");
    let ts = headers["x-bzapper-timestamp"].to_str().unwrap();
    let expected = bzapper_server::webhooks::signature("a-secret-of-16+chars", ts, body);
    assert_eq!(headers["x-bzapper-signature"].to_str().unwrap(), expected);
    // All three attempts carried the same delivery id and body.
    assert!(got
        .iter()
        .all(|(h, b)| h["x-bzapper-delivery"] == headers["x-bzapper-delivery"] && b == body));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, d) = app.get(&format!("/v1/webhooks/{hid}/deliveries"), &key).await;
        let first = &d["items"][0];
        if first["status"] == "delivered" {
            assert_eq!(first["attempts"], 3);
            assert_eq!(first["last_status"], 200);
            assert_eq!(first["event_type"], "instance.qr");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{d}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_dead_receiver_is_dead_lettered_and_delays_no_other_receiver() {
    let app =
        app_with(RetryPolicy { first_delay_ms: 50, max_delay_ms: 100, give_up_after_ms: 600 })
            .await;
    let (_, key) = app.tenant("acme").await;
    // A receiver that never answers in time, one that always fails, and a healthy one.
    let (slow, slow_url) = Receiver::start(0, Duration::from_secs(30)).await;
    let (_, dead_url) = Receiver::start(usize::MAX, Duration::ZERO).await;
    let (good, good_url) = Receiver::start(0, Duration::ZERO).await;
    for url in [&slow_url, &dead_url, &good_url] {
        let (s, v) =
            app.post("/v1/webhooks", &key, json!({"url": url, "events": ["instance.qr"]})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert!(v["secret"].as_str().unwrap().starts_with("whsec_"));
    }
    let (_, hooks) = app.get("/v1/webhooks", &key).await;
    let dead_id = hooks["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["url"] == dead_url.as_str())
        .map(id)
        .unwrap();

    for i in 0..6 {
        app.instance(&key, &format!("n{i}")).await;
    }
    // The healthy receiver gets all six promptly, while the slow one still holds its requests.
    wait_until("the healthy receiver", || good.count() >= 6).await;
    assert!(slow.count() == 0, "the slow receiver never answered yet");

    // The failing one is given up after its window and shows as dead.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let dead = loop {
        let (_, d) = app.get(&format!("/v1/webhooks/{dead_id}/deliveries"), &key).await;
        let items = d["items"].as_array().unwrap().clone();
        if items.len() == 6 && items.iter().all(|i| i["status"] == "dead") {
            break items;
        }
        assert!(tokio::time::Instant::now() < deadline, "{d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(dead[0]["attempts"].as_u64().unwrap() >= 2);
    assert_eq!(dead[0]["last_status"], 500);

    // A re-send by API makes it pending again.
    let did = dead[0]["id"].as_str().unwrap();
    let (s, v) =
        app.post(&format!("/v1/webhooks/{dead_id}/deliveries/{did}/retry"), &key, json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["status"], "pending");
    let (s, _) = app
        .post(&format!("/v1/webhooks/{dead_id}/deliveries/dlv_nope/retry"), &key, json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_webhooks_are_refused_and_tenants_are_isolated() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let (_, other) = app.tenant("other").await;
    for (body, code) in [
        (json!({"url": "ftp://x/y", "events": ["instance.*"]}), "invalid_url"),
        (json!({"url": "not a url", "events": ["instance.*"]}), "invalid_url"),
        (json!({"url": "http://127.0.0.1:1/x", "events": []}), "invalid_request"),
        (json!({"url": "http://127.0.0.1:1/x", "events": ["nope.*"]}), "invalid_request"),
        (
            json!({"url": "http://127.0.0.1:1/x", "events": ["instance.*"], "secret": "short"}),
            "invalid_request",
        ),
        (
            json!({"url": "http://127.0.0.1:1/x", "events": ["instance.*"], "extra": 1}),
            "invalid_request",
        ),
    ] {
        let (s, v) = app.post("/v1/webhooks", &key, body.clone()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
            "{body}"
        );
    }
    let (_, h) = app
        .post("/v1/webhooks", &key, json!({"url": "http://127.0.0.1:1/x", "events": ["message.*"]}))
        .await;
    let hid = id(&h);
    assert_eq!(app.get(&format!("/v1/webhooks/{hid}"), &other).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.call(Method::DELETE, &format!("/v1/webhooks/{hid}"), Some(&other), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/v1/webhooks/{hid}/deliveries"), &other).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call(Method::DELETE, &format!("/v1/webhooks/{hid}"), Some(&key), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(&format!("/v1/webhooks/{hid}"), &key).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_operator_is_alerted_when_a_number_is_banned() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let (rx, url) = Receiver::start(0, Duration::ZERO).await;
    for (body, code) in [
        (json!({"url": url, "format": "slack", "on": ["exploded"]}), "invalid_request"),
        (json!({"url": url, "format": "xml", "on": ["banned"]}), "invalid_request"),
        (json!({"url": "gopher://x", "format": "slack", "on": ["banned"]}), "invalid_url"),
    ] {
        let (s, v) = app.call(Method::PUT, "/v1/alerts", Some(&key), Some(body)).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code))
        );
    }
    assert_eq!(app.get("/v1/alerts", &key).await.0, StatusCode::NOT_FOUND);
    let (s, v) = app
        .call(
            Method::PUT,
            "/v1/alerts",
            Some(&key),
            Some(json!({"url": url, "format": "slack", "on": ["banned", "logged_out"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(app.get("/v1/alerts", &key).await.1["on"], json!(["banned", "logged_out"]));

    let a = id(&app.connected_instance(&key, "sales-1", "+5511999993001").await);
    let b = id(&app.connected_instance(&key, "sales-2", "+5511999993002").await);
    // A stop by an operator is not alerted; a ban is.
    app.post(&format!("/v1/instances/{b}/disconnect"), &key, json!({})).await;
    app.post(
        &format!("/v1/sim/instances/{a}/drop"),
        crate::helpers::ADMIN,
        json!({"reason": "banned"}),
    )
    .await;
    wait_until("the alert", || rx.count() >= 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "one alert: {got:?}");
    let body: Value = serde_json::from_str(&got[0].1).unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("Number +5511999993001 (sales-1) was banned: temporary ban (code 101)"),
        "{text}"
    );
    assert_eq!(
        app.call(Method::DELETE, "/v1/alerts", Some(&key), None).await.0,
        StatusCode::NO_CONTENT
    );
}

/// Alerts have delivery records: listed newest first, paged and filtered by status, each
/// with its sentence and outcome (a failure first, retried until delivered), sent again on
/// request; bad query input is a 422 in the error shape, and another tenant sees none.
#[tokio::test]
async fn alert_deliveries_are_listed_paged_filtered_and_sent_again() {
    let app =
        app_with(RetryPolicy { first_delay_ms: 50, max_delay_ms: 200, give_up_after_ms: 60_000 })
            .await;
    let (_, key) = app.tenant("acme").await;
    let (_, other) = app.tenant("other").await;
    // The first post fails: its alert is retried.
    let (rx, url) = Receiver::start(1, Duration::ZERO).await;
    let body = json!({"url": url, "format": "slack", "on": ["banned"]});
    assert_eq!(app.call(Method::PUT, "/v1/alerts", Some(&key), Some(body)).await.0, StatusCode::OK);
    for i in 1..=3 {
        let n = id(&app
            .connected_instance(&key, &format!("sales-{i}"), &format!("+551199999400{i}"))
            .await);
        app.post(
            &format!("/v1/sim/instances/{n}/drop"),
            crate::helpers::ADMIN,
            json!({"reason": "banned"}),
        )
        .await;
        app.wait_status(&key, &n, "disconnected").await;
    }
    wait_until("three alerts delivered, one after a failure", || rx.count() >= 4).await;
    let delivered = || async {
        let (s, v) = app.get("/v1/alerts/deliveries?status=delivered", &key).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["items"].as_array().unwrap().len()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while delivered().await < 3 {
        assert!(tokio::time::Instant::now() < deadline, "the outcomes recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (_, all) = app.get("/v1/alerts/deliveries", &key).await;
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{all}");
    assert_eq!(all["next_cursor"], Value::Null);
    // Newest first: sales-3's alert.
    let text = items[0]["text"].as_str().unwrap();
    assert!(text.starts_with("Number +5511999994003 (sales-3) was banned: "), "{text}");
    assert_eq!(items[0]["alert"], "banned");
    assert_eq!(items[0]["status"], "delivered");
    assert_eq!(items[0]["next_attempt_at"], Value::Null);
    assert!(items[0]["delivered_at"].is_string());
    let attempts: Vec<u64> = items.iter().map(|a| a["attempts"].as_u64().unwrap()).collect();
    assert_eq!(attempts.iter().sum::<u64>(), 4, "one alert took two attempts: {all}");
    let retried = items.iter().find(|a| a["attempts"] == 2).unwrap();
    assert_eq!(retried["last_status"], 200);
    // Paged.
    let (_, page) = app.get("/v1/alerts/deliveries?limit=2", &key).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = app.get(&format!("/v1/alerts/deliveries?limit=2&cursor={cursor}"), &key).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["items"][0]["id"], items[2]["id"]);
    assert_eq!(rest["next_cursor"], Value::Null);
    let (_, pending) = app.get("/v1/alerts/deliveries?status=pending", &key).await;
    assert_eq!(pending["items"], json!([]));
    // Another tenant sees none of them, and cannot re-send one.
    let (_, theirs) = app.get("/v1/alerts/deliveries", &other).await;
    assert_eq!(theirs["items"], json!([]));
    let aid = items[0]["id"].as_str().unwrap();
    let retry = format!("/v1/alerts/deliveries/{aid}/retry");
    assert_eq!(app.post(&retry, &other, json!({})).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.post("/v1/alerts/deliveries/alr_nope/retry", &key, json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    // Sent again on request.
    let (s, v) = app.post(&retry, &key, json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["id"], aid);
    wait_until("the re-sent alert", || rx.count() >= 5).await;
    let (_, body) = rx.got.lock().unwrap()[4].clone();
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"text": text}));

    for query in ["status=bogus", "limit=0", "limit=501", "cursor=garbage!", "nope=1"] {
        let (s, v) = app.get(&format!("/v1/alerts/deliveries?{query}"), &key).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request")),
            "{query}: {v}"
        );
    }
}

#[tokio::test]
async fn every_event_arrives_once_through_failures_an_outage_and_a_restart() {
    let policy = RetryPolicy { first_delay_ms: 50, max_delay_ms: 300, give_up_after_ms: 120_000 };
    let app = app_with(policy).await;
    let (_, key) = app.tenant("acme").await;
    // The receiver answers 500 for a while...
    let rx = Receiver { fail_first: Arc::new(AtomicUsize::new(4)), ..Default::default() };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    rx.clone().serve(l, async {
        let _ = stop_rx.await;
    });
    let secret = "restart-test-secret-0123";
    let (s, h) = app
        .post("/v1/webhooks", &key, json!({"url": format!("http://{addr}/hook"), "events": ["instance.qr"], "secret": secret}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    for i in 0..3 {
        app.instance(&key, &format!("before-{i}")).await;
    }
    wait_until("the failures", || rx.count() >= 4).await;
    // ...then is shut down while more events happen...
    let _ = stop_tx.send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..3 {
        app.instance(&key, &format!("during-{i}")).await;
    }
    // ...and comes back after a gateway restart.
    let dir = app.stop().await;
    let dir2 = dir.clone();
    let mut c = config(dir2.path());
    c.webhook_retry = policy;
    let app = TestApp::spawn_with(dir, c).await;
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    rx.clone().serve(l, std::future::pending());
    // Every QR event of the six numbers (one or more each: codes rotate only after 60 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let delivered = loop {
        let got = rx.got.lock().unwrap().clone();
        let mut ok_ids = std::collections::HashMap::<String, usize>::new();
        let mut instances = std::collections::HashSet::new();
        for (headers, body) in &got {
            let ts = headers["x-bzapper-timestamp"].to_str().unwrap();
            let sig = bzapper_server::webhooks::signature(secret, ts, body);
            assert_eq!(
                headers["x-bzapper-signature"].to_str().unwrap(),
                sig,
                "every signature verifies"
            );
            let env: Value = serde_json::from_str(body).unwrap();
            instances.insert(env["instance_id"].as_str().unwrap().to_string());
            *ok_ids
                .entry(headers["x-bzapper-delivery"].to_str().unwrap().to_string())
                .or_default() += 1;
        }
        if instances.len() >= 6 && rx.fail_first.load(Ordering::SeqCst) == 0 {
            let (_, hooks) = app.get("/v1/webhooks", &key).await;
            let hid = hooks["items"][0]["id"].as_str().unwrap().to_string();
            let (_, d) = app.get(&format!("/v1/webhooks/{hid}/deliveries"), &key).await;
            let items = d["items"].as_array().unwrap().clone();
            if items.iter().all(|i| i["status"] == "delivered") {
                break (items, got);
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all delivered: {} requests",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Read the receiver's log again: requests may have landed between the snapshot above and
    // the deliveries listing (the receiver logs a request before it answers, so once every
    // delivery is `delivered`, the log has all of them).
    let (items, _) = delivered;
    let got = rx.got.lock().unwrap().clone();
    // None twice: each delivery id got exactly one 2xx (the receiver's log has the failed
    // attempts too; the successful one is the last request of each id).
    let mut last_by_id = std::collections::HashMap::new();
    for (i, (headers, _)) in got.iter().enumerate() {
        last_by_id.insert(headers["x-bzapper-delivery"].to_str().unwrap().to_string(), i);
    }
    assert_eq!(last_by_id.len(), items.len(), "one delivery id per event");
    let successes = got.len() - 4; // the first four requests failed with 500
    assert_eq!(successes, items.len(), "each delivery succeeded exactly once");
}

#[tokio::test]
async fn a_tenants_webhook_never_carries_another_tenants_events() {
    let app = TestApp::spawn().await;
    let (_, a) = app.tenant("a").await;
    let (_, b) = app.tenant("b").await;
    let (rx_a, url_a) = Receiver::start(0, Duration::ZERO).await;
    let (rx_b, url_b) = Receiver::start(0, Duration::ZERO).await;
    app.post("/v1/webhooks", &a, json!({"url": url_a, "events": ["instance.*"]})).await;
    app.post("/v1/webhooks", &b, json!({"url": url_b, "events": ["instance.*"]})).await;
    let ia = id(&app.instance(&a, "mine").await);
    let ib = id(&app.instance(&b, "theirs").await);
    wait_until("both receivers", || rx_a.count() >= 1 && rx_b.count() >= 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (rx, own) in [(&rx_a, &ia), (&rx_b, &ib)] {
        for (_, body) in rx.got.lock().unwrap().iter() {
            let v: Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["instance_id"], own.as_str(), "{body}");
        }
    }
}

#[tokio::test]
async fn a_burst_of_events_is_delivered_once_each_through_failures() {
    let policy = RetryPolicy { first_delay_ms: 50, max_delay_ms: 300, give_up_after_ms: 120_000 };
    let app = app_with(policy).await;
    let (_, key) = app.tenant("acme").await;
    let (rx, url) = Receiver::start(3, Duration::ZERO).await;
    let (s, h) =
        app.post("/v1/webhooks", &key, json!({"url": url, "events": ["message.received"]})).await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    let n = id(&app.connected_instance(&key, "n1", "+5511999993101").await);
    let total = 200;
    for i in 0..total {
        let (s, v) = app
            .post(
                &format!("/v1/sim/instances/{n}/inbound"),
                crate::helpers::ADMIN,
                json!({"from": "+5511977771234", "text": format!("m{i:03}")}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    // Every event, the first three after a failure and a retry.
    wait_until("every delivery", || rx.count() >= total + 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), total + 3, "nothing sent twice once accepted");
    let mut texts = std::collections::BTreeSet::new();
    let mut delivery_ids = std::collections::HashSet::new();
    for (headers, body) in &got {
        let v: Value = serde_json::from_str(body).unwrap();
        texts.insert(v["data"]["text"].as_str().unwrap().to_string());
        delivery_ids.insert(headers["x-bzapper-delivery"].to_str().unwrap().to_string());
    }
    assert_eq!(texts.len(), total, "every message");
    assert_eq!(delivery_ids.len(), total, "one delivery per event");
}

/// A rotated secret: the new one signs `X-Bzapper-Signature`, the replaced one signs
/// `X-Bzapper-Signature-Previous` until its overlap ends; the secret is shown once.
#[tokio::test]
async fn a_rotated_secret_signs_alongside_the_new_one_until_its_overlap_ends() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let (_, other) = app.tenant("other").await;
    let (rx, url) = Receiver::start(0, Duration::ZERO).await;
    let (_, hook) = app
        .post(
            "/v1/webhooks",
            &key,
            json!({"url": url, "events": ["instance.*"], "secret": "the-first-secret-1"}),
        )
        .await;
    let hid = id(&hook);
    let path = format!("/v1/webhooks/{hid}/secret");

    for body in [
        json!({"secret": "short"}),
        json!({"previous_valid_for_secs": 604_801}),
        json!({"previous_valid_for_secs": -1}),
        json!({"extra": 1}),
    ] {
        let (s, v) = app.post(&path, &key, body.clone()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request")),
            "{body}"
        );
    }
    assert_eq!(app.post(&path, &other, json!({})).await.0, StatusCode::NOT_FOUND);

    let before = chrono::Utc::now();
    let (s, rotated) = app
        .post(&path, &key, json!({"secret": "the-second-secret", "previous_valid_for_secs": 3600}))
        .await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["secret"], "the-second-secret");
    let until: chrono::DateTime<chrono::Utc> =
        rotated["previous_secret_expires_at"].as_str().unwrap().parse().unwrap();
    assert!(until >= before + chrono::Duration::seconds(3599), "{until}");
    let (_, shown) = app.get(&format!("/v1/webhooks/{hid}"), &key).await;
    assert_eq!(shown["previous_secret_expires_at"], rotated["previous_secret_expires_at"]);
    assert!(!shown.to_string().contains("secret\""), "no secret shown again: {shown}");

    app.instance(&key, "n1").await; // records instance.qr
    wait_until("the delivery", || rx.count() >= 1).await;
    let (headers, body) = rx.got.lock().unwrap()[0].clone();
    let ts = headers["x-bzapper-timestamp"].to_str().unwrap();
    let sign = |secret| bzapper_server::webhooks::signature(secret, ts, &body);
    assert_eq!(headers["x-bzapper-signature"].to_str().unwrap(), sign("the-second-secret"));
    assert_eq!(
        headers["x-bzapper-signature-previous"].to_str().unwrap(),
        sign("the-first-secret-1")
    );

    // With no overlap (and no body: a generated secret), only the new secret signs.
    let (_, h2) =
        app.post("/v1/webhooks", &key, json!({"url": url, "events": ["instance.*"]})).await;
    let h2 = id(&h2);
    let (s, rotated) =
        app.call(Method::POST, &format!("/v1/webhooks/{h2}/secret"), Some(&key), None).await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let generated = rotated["secret"].as_str().unwrap().to_string();
    assert!(generated.starts_with("whsec_"), "{generated}");
    let (s, rotated) = app
        .post(&format!("/v1/webhooks/{h2}/secret"), &key, json!({"previous_valid_for_secs": 0}))
        .await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let newest = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(newest, generated);
    let (_, shown) = app.get(&format!("/v1/webhooks/{h2}"), &key).await;
    assert!(shown.get("previous_secret_expires_at").is_none(), "{shown}");
    app.instance(&key, "n2").await;
    // Both webhooks get n2's events: h2's are those signed with `newest`.
    let signed_newest = |got: &[(HeaderMap, String)]| {
        got.iter()
            .find(|(h, b)| {
                let ts = h["x-bzapper-timestamp"].to_str().unwrap();
                h["x-bzapper-signature"].to_str().unwrap()
                    == bzapper_server::webhooks::signature(&newest, ts, b)
            })
            .cloned()
    };
    wait_until("a delivery signed with the newest secret", || {
        signed_newest(&rx.got.lock().unwrap()).is_some()
    })
    .await;
    let (h, _) = signed_newest(&rx.got.lock().unwrap()).unwrap();
    assert!(h.get("x-bzapper-signature-previous").is_none());
}
