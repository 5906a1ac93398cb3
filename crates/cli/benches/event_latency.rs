//! Event latency: with inbound messages flowing at a fixed rate, the time from the driver's
//! event (the simulated network's message time) to an SSE client and to a webhook receiver on
//! loopback; and the time from a `banned` drop to the number being out of rotation, both for a
//! second number banned halfway through the flow and for the flooded number after it.
//!
//! `cargo bench -p bzapper --bench event_latency` (env `BZAPPER_BENCH_RATE`, default 1000
//! events/s; `BZAPPER_BENCH_SECS`, default 10). Runs the release `bzapper serve --sim`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{json, Value};

#[path = "../tests/support/mod.rs"]
mod support;

const ADMIN: &str = "bench-admin-token-0123456789";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ms_since(at: &str) -> f64 {
    let at: DateTime<Utc> = at.parse().unwrap();
    (Utc::now() - at).num_microseconds().unwrap_or(0) as f64 / 1000.0
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rate = env_or("BZAPPER_BENCH_RATE", 1000);
    let secs = env_or("BZAPPER_BENCH_SECS", 10);
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = support::serve_sim(dir.path(), ADMIN);
    let http = reqwest::Client::new();
    let post = |url: String, token: &str, body: Value| {
        let req = http.post(url).bearer_auth(token).json(&body);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap_or(Value::Null) }
    };
    let t = post(format!("{base}/v1/tenants"), ADMIN, json!({"name": "bench"})).await;
    let key = t["api_key"].as_str().unwrap().to_string();

    // A webhook receiver on loopback that notes when each message arrives.
    let webhook_lat: Arc<Mutex<Vec<f64>>> = Arc::default();
    let wl = webhook_lat.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let wl = wl.clone();
            async move {
                let v: Value = serde_json::from_str(&body).unwrap();
                if let Some(at) = v["data"]["at"].as_str() {
                    wl.lock().unwrap().push(ms_since(at));
                }
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    post(
        format!("{base}/v1/webhooks"),
        &key,
        json!({"url": hook_url, "events": ["message.received"]}),
    )
    .await;

    // Two numbers: `id` receives the flow, `other` is banned halfway through it.
    let mut ids = Vec::new();
    for (name, phone) in [("n1", "+5511900000001"), ("n2", "+5511900000002")] {
        let inst = post(format!("{base}/v1/instances"), &key, json!({"name": name})).await;
        let id = inst["id"].as_str().unwrap().to_string();
        http.get(format!("{base}/v1/instances/{id}/qr")).bearer_auth(&key).send().await.unwrap();
        post(format!("{base}/v1/sim/instances/{id}/scan"), ADMIN, json!({"phone": phone})).await;
        ids.push(id);
    }
    let (id, other) = (ids[0].clone(), ids[1].clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    // An SSE client noting when each message arrives, and when each number leaves rotation.
    let sse_lat: Arc<Mutex<Vec<f64>>> = Arc::default();
    let out_of_rotation: Arc<Mutex<std::collections::HashMap<String, Instant>>> = Arc::default();
    let res = http
        .get(format!("{base}/v1/events?types=message.received,instance.health"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let (sl, oor) = (sse_lat.clone(), out_of_rotation.clone());
    tokio::spawn(async move {
        let mut body = res.bytes_stream();
        let mut buf = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) else {
                    continue;
                };
                let v: Value = serde_json::from_str(data.trim()).unwrap();
                if v["type"] == "message.received" {
                    sl.lock().unwrap().push(ms_since(v["data"]["at"].as_str().unwrap()));
                } else if v["type"] == "instance.health" && v["data"]["in_rotation"] == false {
                    let inst = v["instance_id"].as_str().unwrap_or_default().to_string();
                    oor.lock().unwrap().entry(inst).or_insert_with(Instant::now);
                }
            }
        }
    });

    // Inbound messages at `rate` per second.
    let total = rate * secs;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut tick = tokio::time::interval(interval);
    let mut sent = 0u64;
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut banned_during = None;
    while sent < total {
        tick.tick().await;
        if sent == total / 2 {
            let req = http
                .post(format!("{base}/v1/sim/instances/{other}/drop"))
                .bearer_auth(ADMIN)
                .json(&json!({"reason": "banned"}));
            banned_during = Some(Instant::now());
            tokio::spawn(req.send());
        }
        let req =
            http.post(format!("{base}/v1/sim/instances/{id}/inbound")).bearer_auth(ADMIN).json(
                &json!({"from": format!("+5511{:09}", 300_000_000 + sent % 1000), "text": "hello"}),
            );
        in_flight.push(async move {
            req.send().await.map(|r| r.status().is_success()).unwrap_or(false)
        });
        sent += 1;
        while let Some(Some(_)) = futures::FutureExt::now_or_never(in_flight.next()) {}
    }
    while in_flight.next().await.is_some() {}
    let offered = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (sse_lat.lock().unwrap().len() as u64) < total
        || (webhook_lat.lock().unwrap().len() as u64) < total
    {
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A ban, and how long until the number is out of rotation.
    let t0 = Instant::now();
    post(format!("{base}/v1/sim/instances/{id}/drop"), ADMIN, json!({"reason": "banned"})).await;
    while !out_of_rotation.lock().unwrap().contains_key(&id)
        && t0.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ms_from = |inst: &str, t0: Instant| {
        out_of_rotation.lock().unwrap().get(inst).map(|t| (*t - t0).as_secs_f64() * 1000.0)
    };
    let ban_ms = ms_from(&id, t0);
    let ban_during_ms = banned_during.and_then(|t0| ms_from(&other, t0));

    let mut s = sse_lat.lock().unwrap().clone();
    let mut w = webhook_lat.lock().unwrap().clone();
    println!("events:        {total} message.received offered at {rate}/s over {offered:.1} s");
    println!(
        "SSE:           {} received, p50 {:.1} ms, p99 {:.1} ms",
        s.len(),
        pct(&mut s, 0.5),
        pct(&mut s, 0.99)
    );
    println!(
        "webhook:       {} received, p50 {:.1} ms, p99 {:.1} ms",
        w.len(),
        pct(&mut w, 0.5),
        pct(&mut w, 0.99)
    );
    for (when, ms) in [("during the flow, another number", ban_during_ms), ("after it", ban_ms)] {
        match ms {
            Some(ms) => println!(
                "banned → out of rotation ({when}; drop request to instance.health on SSE): \
                 {ms:.1} ms"
            ),
            None => println!("banned → out of rotation ({when}): not seen within 10 s"),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
