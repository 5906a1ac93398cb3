//! A crash loses no accepted message and sends none twice: the gateway is killed with SIGKILL
//! while messages are queued and being sent, then restarted on the same data dir; the shared
//! simulated network (its own process, so it outlives the gateway) must have received every
//! accepted message exactly once, counted by WhatsApp message id.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;

use support::start;

const ADMIN: &str = "crash-admin-token-0123456789";

fn gateway(data: &Path, sim_url: &str) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bzapper"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--sim-url", sim_url, "--data-dir"])
        .arg(data)
        .env("BZAPPER_ADMIN_TOKEN", ADMIN)
        // Receivers and media servers of the tests listen on loopback.
        .env("BZAPPER_OUTBOUND_ALLOW", "127.0.0.0/8,::1,localhost")
        .env_remove("BZAPPER_MASTER_KEY")
        .env_remove("DATABASE_URL");
    start(cmd, "bZapper listening on ")
}

struct Killer(Vec<Child>);

impl Drop for Killer {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> Value {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_queue_sends_every_accepted_message_exactly_once() {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let mut simnet = Command::new(env!("CARGO_BIN_EXE_bzapper"));
    simnet.args(["simnet", "--listen", "127.0.0.1:0"]);
    let (sim, sim_url) = start(simnet, "bZapper simnet listening on ");
    let mut children = Killer(vec![sim]);
    let (gw, base) = gateway(dir.path(), &sim_url);
    children.0.push(gw);
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
    let limits = json!({"min_gap_ms": 0, "max_gap_ms": 20, "per_minute": 60, "per_hour": 600, "per_day": 6000});
    let mut numbers = Vec::new();
    for i in 0..3 {
        let v = call(
            &http,
            Method::POST,
            format!("{base}/v1/instances"),
            &key,
            Some(json!({"name": format!("n{i}"), "limits": limits, "warming_days": 0})),
        )
        .await;
        let id = v["id"].as_str().unwrap().to_string();
        call(&http, Method::GET, format!("{base}/v1/instances/{id}/qr"), &key, None).await;
        call(
            &http,
            Method::POST,
            format!("{base}/v1/sim/instances/{id}/scan"),
            ADMIN,
            Some(json!({"phone": format!("+55119000001{i:02}")})),
        )
        .await;
        numbers.push(id);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = call(&http, Method::GET, format!("{base}/v1/instances"), &key, None).await;
        if v["items"].as_array().unwrap().iter().all(|i| i["status"] == "connected") {
            break;
        }
        assert!(Instant::now() < deadline, "numbers never connected: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let total = 24;
    let mut accepted = Vec::new();
    for i in 0..total {
        let v = call(
            &http,
            Method::POST,
            format!("{base}/v1/messages"),
            &key,
            Some(json!({"to": format!("+551198888{i:04}"), "text": format!("crash test {i}")})),
        )
        .await;
        accepted.push(v["id"].as_str().unwrap().to_string());
    }
    // Kill the gateway once some messages went out and others are still queued.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = call(&http, Method::GET, format!("{base}/v1/messages?limit=500"), &key, None).await;
        let gone_out = |m: &&Value| m["status"] == "sent" || m["status"] == "delivered";
        let sent = v["items"].as_array().unwrap().iter().filter(gone_out).count();
        if sent >= 4 {
            assert!(sent < total, "everything was sent before the crash; the test proves nothing");
            break;
        }
        assert!(Instant::now() < deadline, "nothing was sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = Instant::now();
    let mut gw = children.0.pop().unwrap();
    gw.kill().unwrap(); // SIGKILL
    gw.wait().unwrap();

    let (gw, base) = gateway(dir.path(), &sim_url);
    children.0.push(gw);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut wa_ids = HashMap::new();
    for mid in &accepted {
        loop {
            let v = call(&http, Method::GET, format!("{base}/v1/messages/{mid}"), &key, None).await;
            if v["status"] == "sent" || v["status"] == "delivered" {
                wa_ids.insert(v["whatsapp_id"].as_str().unwrap().to_string(), mid.clone());
                break;
            }
            assert!(Instant::now() < deadline, "message {mid} never sent after the restart: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    eprintln!("after the restart, everything was sent in {:?}", t0.elapsed());
    // Count by message id on the network's outboxes.
    let mut counts: HashMap<String, usize> = HashMap::new();
    for n in &numbers {
        let v =
            call(&http, Method::GET, format!("{sim_url}/v1/sim/instances/{n}/outbox"), ADMIN, None)
                .await;
        for e in v["items"].as_array().unwrap() {
            if let Some(id) = e.get("id").and_then(Value::as_str) {
                *counts.entry(id.to_string()).or_default() += 1;
            }
        }
    }
    assert_eq!(counts.len(), total, "every accepted message reached the network");
    for (id, n) in &counts {
        assert_eq!(*n, 1, "{id} was sent {n} times");
        assert!(wa_ids.contains_key(id), "{id} is not one of the accepted messages");
    }
}
