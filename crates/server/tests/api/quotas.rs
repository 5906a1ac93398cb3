//! Fair shares: each per-tenant quota answers 429 `quota_exceeded` (naming the limit), leaves
//! nothing of the refused request behind, and does not touch another tenant; the per-key
//! request rate answers 429 `rate_limited` with `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use bzapper_server::startup::config::{Limit, QuotaLimits, RateLimit};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{config, id, TestApp, ADMIN};

async fn app_with(set: impl FnOnce(&mut QuotaLimits, &mut RateLimit)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut c = config(dir.path());
    set(&mut c.quotas, &mut c.rate_limit);
    TestApp::spawn_with(dir, c).await
}

/// Asserts a 429 `quota_exceeded` whose message names `what` and the limit's value.
fn assert_quota(s: StatusCode, v: &Value, what: &str, limit: u64) {
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("quota_exceeded")),
        "{v}"
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains(what) && msg.contains(&format!("at most {limit} ")), "{msg}");
}

fn text_to(n: u32) -> Value {
    json!({"to": format!("+55119777{n:05}"), "text": "hello"})
}

async fn messages_of(app: &TestApp, key: &str) -> usize {
    let (s, v) = app.get("/v1/messages?limit=100", key).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn the_queue_quota_refuses_with_retry_after_and_stores_nothing() {
    let app = app_with(|q, _| q.queued_per_tenant = Limit(3)).await;
    let (_, key) = app.tenant("acme").await;
    let (_, other) = app.tenant("other").await;
    // Default limits: a warming number sends a few a minute, so these stay queued.
    app.connected_instance(&key, "n1", "+5511900000001").await;
    app.connected_instance(&other, "o1", "+5511900000002").await;
    for n in 0..3 {
        let (s, v) = app.post("/v1/messages", &key, text_to(n)).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    }
    let res = app
        .http
        .post(format!("{}/v1/messages", app.base))
        .bearer_auth(&key)
        .json(&text_to(3))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers().get("retry-after").unwrap(), "30");
    let (s, v) = (res.status(), res.json::<Value>().await.unwrap());
    assert_quota(s, &v, "queued messages per tenant", 3);
    assert_eq!(messages_of(&app, &key).await, 3, "the refused message is not stored");
    // Another tenant sends as before.
    let (s, v) = app.post("/v1/messages", &other, text_to(9)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
}

#[tokio::test]
async fn the_pool_queue_quota_is_per_pool() {
    let app = app_with(|q, _| q.queued_per_pool = Limit(2)).await;
    let (_, key) = app.tenant("acme").await;
    for (name, pool, phone) in
        [("a", "default", "+5511900000011"), ("b", "sales", "+5511900000012")]
    {
        let (s, v) = app.post("/v1/instances", &key, json!({"name": name, "pool": pool})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let iid = id(&v);
        app.get(&format!("/v1/instances/{iid}/qr"), &key).await;
        app.post(&format!("/v1/sim/instances/{iid}/scan"), ADMIN, json!({"phone": phone})).await;
        app.wait_status(&key, &iid, "connected").await;
    }
    for n in 0..2 {
        let (s, v) = app.post("/v1/messages", &key, text_to(n)).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    }
    let (s, v) = app.post("/v1/messages", &key, text_to(2)).await;
    assert_quota(s, &v, "queued messages per pool", 2);
    // The other pool has room.
    let mut to_sales = text_to(3);
    to_sales["pool"] = json!("sales");
    let (s, v) = app.post("/v1/messages", &key, to_sales).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(messages_of(&app, &key).await, 3);
}

#[tokio::test]
async fn the_instance_quota_refuses_the_next_number_and_creates_nothing() {
    let app = app_with(|q, _| q.instances = Limit(2)).await;
    let (_, key) = app.tenant("acme").await;
    let (_, other) = app.tenant("other").await;
    app.instance(&key, "n1").await;
    app.instance(&key, "n2").await;
    let (s, v) = app.post("/v1/instances", &key, json!({"name": "n3"})).await;
    assert_quota(s, &v, "instances per tenant", 2);
    let (_, list) = app.get("/v1/instances", &key).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    app.instance(&other, "o1").await;
}

#[tokio::test]
async fn the_pool_quota_counts_named_pools_and_default() {
    let app = app_with(|q, _| q.pools = Limit(2)).await;
    let (_, key) = app.tenant("acme").await;
    let put = |name: &str| {
        let path = format!("/v1/pools/{name}");
        let key = key.clone();
        let app = &app;
        async move {
            app.call(
                reqwest::Method::PUT,
                &path,
                Some(&key),
                Some(json!({"strategy": "least_used"})),
            )
            .await
        }
    };
    let (s, v) = put("sales").await; // `default` and `sales`
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = put("support").await;
    assert_quota(s, &v, "pools per tenant", 2);
    // Changing an existing pool is no new pool.
    let (s, v) = put("sales").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Nor can a number name a third pool.
    let (s, v) = app.post("/v1/instances", &key, json!({"name": "n", "pool": "support"})).await;
    assert_quota(s, &v, "pools per tenant", 2);
    let (_, pools) = app.get("/v1/pools", &key).await;
    assert_eq!(pools["items"].as_array().unwrap().len(), 2, "{pools}");
    let (_, list) = app.get("/v1/instances", &key).await;
    assert!(list["items"].as_array().unwrap().is_empty(), "{list}");
}

#[tokio::test]
async fn the_webhook_quota_refuses_the_next_webhook() {
    let app = app_with(|q, _| q.webhooks = Limit(1)).await;
    let (_, key) = app.tenant("acme").await;
    let (_, other) = app.tenant("other").await;
    let hook = json!({"url": "https://hooks.example.com/in", "events": ["instance.*"]});
    let (s, v) = app.post("/v1/webhooks", &key, hook.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = app.post("/v1/webhooks", &key, hook.clone()).await;
    assert_quota(s, &v, "webhooks per tenant", 1);
    let (_, list) = app.get("/v1/webhooks", &key).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let (s, v) = app.post("/v1/webhooks", &other, hook).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

fn campaign(recipients: u32) -> Value {
    let rs: Vec<Value> = (0..recipients)
        .map(|n| json!({"to": format!("+55119888{n:05}"), "fields": {"name": "Ana"}}))
        .collect();
    json!({"name": "promo", "template": "Hi {{name}}", "recipients": rs})
}

#[tokio::test]
async fn the_campaign_quotas_count_campaigns_and_recipients_in_flight() {
    let app = app_with(|q, _| {
        q.campaigns_in_flight = Limit(2);
        q.campaign_recipients = Limit(5);
    })
    .await;
    let (_, key) = app.tenant("acme").await;
    let (_, other) = app.tenant("other").await;
    let (s, v) = app.post("/v1/campaigns", &key, campaign(6)).await;
    assert_quota(s, &v, "campaign recipients in flight per tenant", 5);
    let (s, first) = app.post("/v1/campaigns", &key, campaign(3)).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    let (s, v) = app.post("/v1/campaigns", &key, campaign(3)).await;
    assert_quota(s, &v, "campaign recipients in flight per tenant", 5);
    let (s, v) = app.post("/v1/campaigns", &key, campaign(1)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = app.post("/v1/campaigns", &key, campaign(1)).await;
    assert_quota(s, &v, "campaigns in flight per tenant", 2);
    let (_, list) = app.get("/v1/campaigns", &key).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "refused campaigns are not stored");
    // A canceled campaign no longer counts.
    let (s, v) = app.post(&format!("/v1/campaigns/{}/cancel", id(&first)), &key, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app.post("/v1/campaigns", &key, campaign(4)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = app.post("/v1/campaigns", &other, campaign(5)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

async fn upload(app: &TestApp, key: &str, bytes: &[u8]) -> (StatusCode, Value) {
    let boundary = "bzapper-quota-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let res = app
        .http
        .post(format!("{}/v1/media", app.base))
        .bearer_auth(key)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn stored_files(app: &TestApp, tenant: &str) -> usize {
    let dir = app.dir.path().join("media").join(tenant);
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "bin")).count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn the_media_quota_refuses_an_upload_past_it_and_deletes_the_file() {
    let app = app_with(|q, _| q.media_bytes = Limit(1_000)).await;
    let (tenant, key) = app.tenant("acme").await;
    let (other_tenant, other) = app.tenant("other").await;
    let (s, first) = upload(&app, &key, &[b'a'; 600]).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    let (s, v) = upload(&app, &key, &[b'b'; 600]).await;
    assert_quota(s, &v, "bytes of stored media per tenant", 1_000);
    assert_eq!(stored_files(&app, &tenant), 1, "the refused upload left no file");
    let (s, v) = upload(&app, &other, &[b'c'; 600]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(stored_files(&app, &other_tenant), 1);
    // Deleting a file gives its room back.
    let path = format!("/v1/media/{}", id(&first));
    let (s, _) = app.call(reqwest::Method::DELETE, &path, Some(&key), None).await;
    assert!(s.is_success(), "{s}");
    let (s, v) = upload(&app, &key, &[b'b'; 600]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn the_stream_quota_refuses_a_stream_past_it_until_one_closes() {
    let app = app_with(|q, _| q.sse_streams = Limit(2)).await;
    let (_, key) = app.tenant("acme").await;
    let (_, other) = app.tenant("other").await;
    let open = |token: String| {
        let req = app.http.get(format!("{}/v1/events", app.base)).bearer_auth(token);
        async move { req.send().await.unwrap() }
    };
    let first = open(key.clone()).await;
    let second = open(key.clone()).await;
    assert_eq!((first.status(), second.status()), (StatusCode::OK, StatusCode::OK));
    let third = open(key.clone()).await;
    let s = third.status();
    assert!(third.headers().get("retry-after").is_none());
    assert_quota(s, &third.json().await.unwrap(), "open event streams per tenant", 2);
    let theirs = open(other.clone()).await;
    assert_eq!(theirs.status(), StatusCode::OK);
    // Closing a stream gives its place back (the server sees the close at its next write,
    // a heartbeat at the latest; poll until then).
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let again = open(key.clone()).await;
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed stream's place never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(second);
}

#[tokio::test]
async fn a_key_past_its_rate_gets_rate_limited_with_retry_after_and_others_do_not() {
    let app = app_with(|_, r| *r = RateLimit { per_sec: 1, burst: 3 }).await;
    let (tenant, key) = app.tenant("acme").await;
    let (_, other) = app.tenant("other").await;
    for _ in 0..3 {
        let (s, v) = app.get("/v1/instances", &key).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let res =
        app.http.get(format!("{}/v1/instances", app.base)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = res.headers().get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert_eq!(wait, 1, "one token a second");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited", "{v}");
    // Another tenant's key, a second key of the same tenant and the admin token are not held.
    let (s, _) = app.get("/v1/instances", &other).await;
    assert_eq!(s, StatusCode::OK);
    let (s, second) = app.post(&format!("/v1/tenants/{tenant}/keys"), ADMIN, json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{second}");
    let (s, _) = app.get("/v1/instances", second["api_key"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    for _ in 0..10 {
        let (s, _) = app.get("/v1/tenants", ADMIN).await;
        assert_eq!(s, StatusCode::OK);
    }
    // The refill after the advertised wait is tested on a paused clock (`http::rate_limit`).
}
