//! A crash loses no accepted message and sends none twice: the gateway is killed with SIGKILL
//! while messages are queued and being sent, then restarted on the same data dir; the shared
//! simulated network (its own process, so it outlives the gateway) must have received every
//! accepted message exactly once, counted by WhatsApp message id. The other way too: every
//! inbound message the network handed to the number across such a kill is in the event log
//! exactly once.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

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

/// The ids of the inbound messages the network handed to `instance` that the gateway has not
/// acknowledged yet.
async fn unacked(http: &reqwest::Client, sim_url: &str, instance: &str) -> Vec<String> {
    let url = format!("{sim_url}/v1/sim/instances/{instance}/inbound");
    let v = call(http, reqwest::Method::GET, url, ADMIN, None).await;
    let ids = v["unacked"].as_array().unwrap_or_else(|| panic!("{v}"));
    ids.iter().map(|i| i.as_str().unwrap().to_string()).collect()
}

/// Polls until the network holds nothing unacknowledged for `instance`.
async fn until_all_acknowledged(http: &reqwest::Client, sim_url: &str, instance: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = unacked(http, sim_url, instance).await;
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "never acknowledged: {left:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Contacts write to a number, four at a time, through the simulated network's own control
/// API; the gateway is killed with SIGKILL mid-burst and started again. Every message the
/// network handed over (the ids its control API answered) is then in the event log as
/// `message.received` exactly once: the gateway acknowledges a message only once its event is
/// on disk, the network delivers what was not acknowledged again at the next connect, and a
/// message recorded before is recognised by its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_burst_records_every_inbound_message_exactly_once() {
    use reqwest::Method;
    const TOTAL: usize = 600;
    const KILL_AFTER: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let mut simnet = Command::new(env!("CARGO_BIN_EXE_bzapper"));
    simnet.args(["simnet", "--listen", "127.0.0.1:0"]);
    let (sim, sim_url) = start(simnet, "bZapper simnet listening on ");
    let mut children = Killer(vec![sim]);
    let (gw, base) = gateway(dir.path(), &sim_url);
    children.0.push(gw);
    let http = reqwest::Client::new();

    let body = Some(json!({"name": "acme"}));
    let t = call(&http, Method::POST, format!("{base}/v1/tenants"), ADMIN, body).await;
    let key = t["api_key"].as_str().unwrap().to_string();
    let body = Some(json!({"name": "inbox"}));
    let v = call(&http, Method::POST, format!("{base}/v1/instances"), &key, body).await;
    let id = v["id"].as_str().unwrap().to_string();
    call(&http, Method::GET, format!("{base}/v1/instances/{id}/qr"), &key, None).await;
    let scan = Some(json!({"phone": "+5511900000200"}));
    call(&http, Method::POST, format!("{sim_url}/v1/sim/instances/{id}/scan"), ADMIN, scan).await;

    // Four contacts at a time; while the gateway is down the network refuses (the number is
    // not connected), and the contact tries again.
    let handed: Arc<Mutex<Vec<String>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let url = format!("{sim_url}/v1/sim/instances/{id}/inbound");
    let senders: Vec<_> = (0..4)
        .map(|w| {
            let (http, url, handed, next) =
                (http.clone(), url.clone(), handed.clone(), next.clone());
            tokio::spawn(async move {
                let mut n = next.fetch_add(1, Ordering::SeqCst);
                while n < TOTAL {
                    let body =
                        json!({"from": format!("+55119777700{w:02}"), "text": format!("in {n}")});
                    let res = http.post(&url).bearer_auth(ADMIN).json(&body).send().await.unwrap();
                    let status = res.status().as_u16();
                    let v: Value = res.json().await.unwrap_or(Value::Null);
                    match status {
                        200 => {
                            handed.lock().unwrap().push(v["message_id"].as_str().unwrap().into());
                            n = next.fetch_add(1, Ordering::SeqCst);
                        }
                        409 => tokio::time::sleep(Duration::from_millis(20)).await,
                        _ => panic!("{status}: {v}"),
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while handed.lock().unwrap().len() < KILL_AFTER {
        assert!(Instant::now() < deadline, "the burst did not start");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut gw = children.0.pop().unwrap();
    gw.kill().unwrap(); // SIGKILL
    gw.wait().unwrap();
    let unacked_at_kill = unacked(&http, &sim_url, &id).await.len();
    let (gw, base) = gateway(dir.path(), &sim_url);
    children.0.push(gw);
    for s in senders {
        s.await.unwrap();
    }
    let handed = handed.lock().unwrap().clone();
    assert_eq!(handed.len(), TOTAL);

    // Acknowledged means on disk; a last message then marks the end of what the log holds.
    until_all_acknowledged(&http, &sim_url, &id).await;
    let end = Some(json!({"from": "+5511977770099", "text": "the end"}));
    call(&http, Method::POST, url.clone(), ADMIN, end).await;
    until_all_acknowledged(&http, &sim_url, &id).await;
    let res = http
        .get(format!("{base}/v1/events?types=message.received&last_event_id=0"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    let mut said = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !said.find("\"the end\"").is_some_and(|at| said[at..].contains('\n')) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, stream.next()).await;
        let Ok(Some(Ok(chunk))) = chunk else { panic!("the log never showed the end: {said}") };
        said.push_str(&String::from_utf8_lossy(&chunk));
    }
    let mut recorded: HashMap<String, usize> = HashMap::new();
    let complete = said.split_inclusive('\n').filter(|l| l.ends_with('\n'));
    for line in complete.filter_map(|l| l.strip_prefix("data:")) {
        let v: Value = serde_json::from_str(line.trim()).unwrap();
        *recorded.entry(v["data"]["message_id"].as_str().unwrap().into()).or_default() += 1;
    }
    let missing: Vec<&String> = handed.iter().filter(|id| !recorded.contains_key(*id)).collect();
    let twice: Vec<(&String, &usize)> = recorded.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!(
        "{TOTAL} handed to the number ({unacked_at_kill} unacknowledged at the kill), {} \
         recorded, {} missing, {} recorded more than once",
        recorded.len() - 1,
        missing.len(),
        twice.len()
    );
    assert!(missing.is_empty(), "{} of {TOTAL} never recorded: {missing:?}", missing.len());
    assert!(twice.is_empty(), "recorded more than once: {twice:?}");
    assert_eq!(recorded.len(), TOTAL + 1, "nothing but the burst and its end");
}
