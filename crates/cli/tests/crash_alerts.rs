//! A crash loses no alert: a number is banned while the tenant's alert target is down; the
//! gateway is killed with SIGKILL as soon as the ban's event is in its log (before its alert
//! could be posted: at that moment the alert fan-out may not have read the event yet, or its
//! delivery waits for a retry), then restarted on the same data dir with the target back up;
//! the alert is posted, once. Before alerts were durable, it was lost: alerts followed the
//! live feed from the gateway's start.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

mod support;

use support::serve_sim;

const ADMIN: &str = "crash-alerts-admin-token-0123456789";

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> Value {
    let mut req = http.request(method, &url).bearer_auth(token).timeout(Duration::from_secs(10));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = res.status();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status}: {v}");
    v
}

/// Kills the gateway (SIGKILL) when dropped, also when the test fails.
struct Killer(Option<std::process::Child>);

impl Killer {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }
}

impl Drop for Killer {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The first event the SSE stream at `url` delivers, as JSON.
async fn first_event(http: reqwest::Client, url: String, key: String) -> Value {
    let res = http.get(url).bearer_auth(&key).send().await.unwrap();
    assert!(res.status().is_success(), "SSE: {}", res.status());
    let mut body = res.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buf.drain(..end + 2).collect();
            let data: String = String::from_utf8_lossy(&block)
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect::<Vec<_>>()
                .join("\n");
            if let Ok(v) = serde_json::from_str::<Value>(&data) {
                return v;
            }
        }
    }
    panic!("the event stream ended without an event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_due_when_the_gateway_is_killed_is_posted_after_the_restart() {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    // The alert target's port, not listening until after the restart: every post before the
    // crash is refused.
    let spot = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target_addr = spot.local_addr().unwrap();
    drop(spot);
    let (gw, base) = serve_sim(dir.path(), ADMIN);
    let mut gw = Killer(Some(gw));
    let http = reqwest::Client::new();

    let t = call(
        &http,
        Method::POST,
        format!("{base}/v1/tenants"),
        ADMIN,
        Some(json!({"name": "acme"})),
    )
    .await;
    let key = t["api_key"].as_str().unwrap().to_string();
    let target =
        json!({"url": format!("http://{target_addr}/alert"), "format": "slack", "on": ["banned"]});
    call(&http, Method::PUT, format!("{base}/v1/alerts"), &key, Some(target)).await;
    let v = call(
        &http,
        Method::POST,
        format!("{base}/v1/instances"),
        &key,
        Some(json!({"name": "sales-1"})),
    )
    .await;
    let iid = v["id"].as_str().unwrap().to_string();
    call(&http, Method::GET, format!("{base}/v1/instances/{iid}/qr"), &key, None).await;
    let scan = json!({"phone": "+5511900004000"});
    call(&http, Method::POST, format!("{base}/v1/sim/instances/{iid}/scan"), ADMIN, Some(scan))
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = call(&http, Method::GET, format!("{base}/v1/instances/{iid}"), &key, None).await;
        if v["status"] == "connected" {
            break;
        }
        assert!(Instant::now() < deadline, "the number never connected: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The ban; the gateway dies the moment its event is in the log.
    let banned = tokio::spawn(first_event(
        http.clone(),
        format!("{base}/v1/events?types=instance.disconnected"),
        key.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await; // the stream is open
    let ban = json!({"reason": "banned"});
    call(&http, Method::POST, format!("{base}/v1/sim/instances/{iid}/drop"), ADMIN, Some(ban))
        .await;
    let event = tokio::time::timeout(Duration::from_secs(10), banned).await.unwrap().unwrap();
    gw.kill();
    assert_eq!(event["data"]["reason"], "banned", "{event}");

    // The target comes up, then the gateway, on the same data dir.
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let log = got.clone();
    let app = axum::Router::new().route(
        "/alert",
        axum::routing::post(move |body: String| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(serde_json::from_str(&body).unwrap_or(Value::Null));
                axum::http::StatusCode::OK
            }
        }),
    );
    let l = tokio::net::TcpListener::bind(target_addr).await.unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let restarted = std::time::Instant::now();
    let (gw2, base) = serve_sim(dir.path(), ADMIN);
    let _gw2 = Killer(Some(gw2));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = call(&http, Method::GET, format!("{base}/v1/alerts/deliveries"), &key, None).await;
        if v["items"][0]["status"] == "delivered" {
            break;
        }
        assert!(Instant::now() < deadline, "the alert was not posted after the restart: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("the alert was posted {:?} after the restart", restarted.elapsed());
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "posted once: {got:?}");
    let text = got[0]["text"].as_str().unwrap();
    assert!(text.starts_with("Number +5511900004000 (sales-1) was banned: "), "{text}");
}
