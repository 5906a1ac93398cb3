//! The gateway with the REAL WhatsApp driver against the wire-level fake WhatsApp server
//! (`bzapper simnet --wire`), driven only through the gateway's HTTP API (`/v1/sim/...` maps
//! onto the fake's control API): link by QR scan, send a text, receive one, survive a restart
//! without a new scan, and be logged out.
//!
//! The fake's certificate chain is zero-signed: the `bzapper` binary built for these tests has
//! whatsapp-rust's `danger-skip-cert-chain-verify` on (a dev-dependency of this crate).

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

mod support;

use support::start_logged;

const ADMIN: &str = "wire-admin-token-0123456789";
/// The longest any single step may take (pairing on the real client includes a grace period).
const STEP: Duration = Duration::from_secs(60);

/// `bzapper serve --sim-wire-url URL` on a free loopback port with `data` as its data dir.
fn serve_wire(data: &Path, wire_url: &str, log: &Path) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bzapper"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--sim-wire-url", wire_url, "--data-dir"])
        .arg(data)
        .env("BZAPPER_ADMIN_TOKEN", ADMIN)
        .env_remove("BZAPPER_MASTER_KEY")
        .env_remove("BZAPPER_WA_URL")
        .env_remove("DATABASE_URL");
    start_logged(cmd, "bZapper listening on ", log)
}

/// Kills the children still running when the test ends (also on failure).
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// SIGTERM, then waits (at most `STEP`) for the process to end.
fn terminate(child: &mut Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill -TERM failed");
    let started = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        assert!(started.elapsed() < STEP, "the gateway did not stop within {STEP:?} of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("the gateway answers");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Polls `get` until `done` accepts its answer; panics with the last answer after `STEP`.
async fn until(
    http: &reqwest::Client,
    url: String,
    token: &str,
    what: &str,
    log: &Path,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let (s, v) = call(http, reqwest::Method::GET, url.clone(), token, None).await;
        if s == 200 && done(&v) {
            return v;
        }
        if started.elapsed() > STEP {
            panic!(
                "no {what} within {STEP:?}; last answer {s}: {v}\ngateway log:\n{}",
                support::tail(log, 40)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_driver_links_sends_receives_drops_resumes_and_is_banned_on_the_wire_fake() {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("gateway.log");
    let mut fake = Command::new(env!("CARGO_BIN_EXE_bzapper"));
    fake.args(["simnet", "--wire", "--listen", "127.0.0.1:0"]);
    let (fake, wire_url) =
        start_logged(fake, "bZapper wire simnet listening on ", &dir.path().join("fake.log"));
    let mut children = Children(vec![fake]);
    let (gw, base) = serve_wire(&data, &wire_url, &log);
    children.0.push(gw);
    let http = reqwest::Client::new();

    // A tenant and a number with quick limits; its QR code; a phone scans it.
    let (s, t) =
        call(&http, Method::POST, format!("{base}/v1/tenants"), ADMIN, Some(json!({"name": "w"})))
            .await;
    assert_eq!(s, 201, "{t}");
    let key = t["api_key"].as_str().unwrap().to_string();
    let limits = json!({"min_gap_ms": 0, "max_gap_ms": 20, "per_minute": 60, "per_hour": 600, "per_day": 6000});
    let (s, inst) = call(
        &http,
        Method::POST,
        format!("{base}/v1/instances"),
        &key,
        Some(json!({"name": "wire", "limits": limits, "warming_days": 0})),
    )
    .await;
    assert_eq!(s, 201, "{inst}");
    let iid = inst["id"].as_str().unwrap().to_string();
    let qr = until(&http, format!("{base}/v1/instances/{iid}/qr"), &key, "QR code", &log, |v| {
        v["code"].as_str().is_some_and(|c| !c.is_empty())
    })
    .await;
    assert!(qr["code"].as_str().unwrap().contains(','), "{qr}");
    let (s, scanned) = call(
        &http,
        Method::POST,
        format!("{base}/v1/sim/instances/{iid}/scan"),
        ADMIN,
        Some(json!({"phone": "+5511987650001"})),
    )
    .await;
    assert_eq!(s, 200, "{scanned}");
    assert_eq!(scanned["phone"], "+5511987650001", "{scanned}");
    assert!(scanned["jid"].as_str().unwrap().starts_with("5511987650001"), "{scanned}");
    let inst_url = format!("{base}/v1/instances/{iid}");
    let v = until(&http, inst_url.clone(), &key, "connected after the scan", &log, |v| {
        v["status"] == "connected"
    })
    .await;
    assert_eq!(v["phone"], "+5511987650001", "{v}");
    assert!(v["jid"].as_str().is_some_and(|j| j.starts_with("5511987650001")), "{v}");
    assert!(v["lid"].as_str().is_some_and(|l| l.ends_with("@lid")), "{v}");

    // A text goes out: `sent`, and the fake received `composing` and then the text.
    let (s, m) = call(
        &http,
        Method::POST,
        format!("{base}/v1/messages"),
        &key,
        Some(json!({"to": "+5511912340002", "text": "hello over the wire", "instance_id": iid})),
    )
    .await;
    assert_eq!(s, 202, "{m}");
    let mid = m["id"].as_str().unwrap().to_string();
    until(&http, format!("{base}/v1/messages/{mid}"), &key, "sent message", &log, |v| {
        v["status"] == "sent"
    })
    .await;
    let outbox = until(
        &http,
        format!("{base}/v1/sim/instances/{iid}/outbox"),
        ADMIN,
        "the text in the outbox",
        &log,
        |v| {
            v["items"]
                .as_array()
                .is_some_and(|i| i.iter().any(|e| e["text"] == "hello over the wire"))
        },
    )
    .await;
    let items = outbox["items"].as_array().unwrap();
    let text_at = items.iter().position(|e| e["text"] == "hello over the wire").unwrap();
    let composing_at = items.iter().position(|e| e["presence"] == "composing");
    assert!(composing_at.is_some_and(|c| c < text_at), "composing before the text: {outbox}");

    // A contact writes: `message.received` on the event stream.
    let events = http
        .get(format!("{base}/v1/events?types=message.received"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status().as_u16(), 200);
    let (s, r) = call(
        &http,
        Method::POST,
        format!("{base}/v1/sim/instances/{iid}/inbound"),
        ADMIN,
        Some(json!({"from": "+5511912340002", "text": "hi back over the wire"})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let mut stream = events.bytes_stream();
    let mut seen = String::new();
    let mut next_event = async |needle: &str| {
        let got = tokio::time::timeout(STEP, async {
            while let Some(chunk) = stream.next().await {
                seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
                let line = seen.lines().find(|l| l.starts_with("data:") && l.contains(needle));
                if let Some(l) = line {
                    return Some(serde_json::from_str::<Value>(&l["data:".len()..]).unwrap());
                }
            }
            None
        })
        .await;
        match got {
            Ok(Some(v)) => v,
            _ => panic!(
                "no message.received with {needle}; the stream said:\n{seen}\ngateway log:\n{}",
                support::tail(&log, 40)
            ),
        }
    };
    let plain = next_event("hi back over the wire").await;
    assert_eq!(plain["data"]["sender"]["jid"], "5511912340002@s.whatsapp.net", "{plain}");
    assert_eq!(plain["data"]["chat"]["type"], "direct");

    // A contact that hides its number writes by LID and mentions this number by JID: the
    // sender is reported by phone with the LID beside, and `mentions_me` compares JIDs.
    let (s, r) = call(
        &http,
        Method::POST,
        format!("{base}/v1/sim/instances/{iid}/inbound"),
        ADMIN,
        Some(json!({"from": "+5511912340003", "text": "by lid, hey @5511987650001",
                    "as_lid": true, "mentions": ["+5511987650001"]})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let by_lid = next_event("by lid, hey").await;
    let got = &by_lid["data"];
    assert_eq!(got["sender"]["jid"], "5511912340003@s.whatsapp.net", "{by_lid}");
    assert_eq!(got["sender"]["phone"], "+5511912340003", "{by_lid}");
    assert!(got["sender"]["lid"].as_str().is_some_and(|l| l.ends_with("@lid")), "{by_lid}");
    assert_eq!(got["mentions"], json!(["5511987650001@s.whatsapp.net"]), "{by_lid}");
    assert_eq!(got["mentions_me"], true, "{by_lid}");
    drop(stream);

    // A transient drop: `connecting/transient` while the driver reconnects by itself, then
    // `connected` again.
    let lifecycle = http
        .get(format!("{base}/v1/events?types=instance.*"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(lifecycle.status().as_u16(), 200);
    let (s, d) = call(
        &http,
        Method::POST,
        format!("{base}/v1/sim/instances/{iid}/drop"),
        ADMIN,
        Some(json!({"reason": "transient"})),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    let mut lifecycle = lifecycle.bytes_stream();
    let mut said = String::new();
    let back = tokio::time::timeout(STEP, async {
        while let Some(chunk) = lifecycle.next().await {
            said.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            let dropped = said.find("\"reason\":\"transient\"");
            let connected = said.rfind("event: instance.connected");
            if matches!((dropped, connected), (Some(d), Some(c)) if c > d) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(back, Ok(true)),
        "no transient drop then reconnect; events:\n{said}\ngateway log:\n{}",
        support::tail(&log, 40)
    );
    drop(lifecycle);

    // A restart on the same data dir: connected again with the stored session, no scan.
    let mut gw = children.0.pop().unwrap();
    terminate(&mut gw);
    let (gw, base) = serve_wire(&data, &wire_url, &log);
    children.0.push(gw);
    let inst_url = format!("{base}/v1/instances/{iid}");
    until(&http, inst_url.clone(), &key, "connected after the restart", &log, |v| {
        v["status"] == "connected"
    })
    .await;

    // Logged out by the network: disconnected/logged_out.
    let (s, d) = call(
        &http,
        Method::POST,
        format!("{base}/v1/sim/instances/{iid}/drop"),
        ADMIN,
        Some(json!({"reason": "logged_out"})),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    until(&http, inst_url, &key, "disconnected/logged_out", &log, |v| {
        v["status"] == "disconnected" && v["reason"] == "logged_out"
    })
    .await;

    // A second number, banned by the network: disconnected/banned, out of rotation.
    let (s, b) = call(
        &http,
        Method::POST,
        format!("{base}/v1/instances"),
        &key,
        Some(json!({"name": "wire-b", "warming_days": 0})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let bid = b["id"].as_str().unwrap().to_string();
    until(&http, format!("{base}/v1/instances/{bid}/qr"), &key, "the second QR", &log, |v| {
        v["code"].as_str().is_some_and(|c| !c.is_empty())
    })
    .await;
    let (s, v) = call(
        &http,
        Method::POST,
        format!("{base}/v1/sim/instances/{bid}/scan"),
        ADMIN,
        Some(json!({"phone": "+5511987650002"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let b_url = format!("{base}/v1/instances/{bid}");
    until(&http, b_url.clone(), &key, "the second number connected", &log, |v| {
        v["status"] == "connected"
    })
    .await;
    let (s, d) = call(
        &http,
        Method::POST,
        format!("{base}/v1/sim/instances/{bid}/drop"),
        ADMIN,
        Some(json!({"reason": "banned"})),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    until(&http, b_url, &key, "disconnected/banned", &log, |v| {
        v["status"] == "disconnected" && v["reason"] == "banned"
    })
    .await;

    // Controls the wire fake does not have.
    let (s, v) = call(
        &http,
        Method::POST,
        format!("{base}/v1/sim/contacts"),
        ADMIN,
        Some(json!({"phone": "+5511912340002", "on_whatsapp": false})),
    )
    .await;
    assert_eq!((s, v["error"]["code"].as_str()), (501, Some("not_implemented")), "{v}");
    let (s, v) = call(
        &http,
        Method::POST,
        format!("{base}/v1/sim/instances/{iid}/inbound"),
        ADMIN,
        Some(json!({"from": "+5511912340002", "location": {"latitude": 1.0, "longitude": 2.0}})),
    )
    .await;
    assert_eq!((s, v["error"]["code"].as_str()), (501, Some("not_implemented")), "{v}");
}
