//! Memory of the gateway holding many numbers on the real WhatsApp driver (`whatsapp-rust`),
//! each loaded from its stored, sealed session.
//!
//! `cargo bench -p bzapper --bench real_driver_rss` (env `BZAPPER_BENCH_INSTANCES`, default
//! 200). These machines cannot reach WhatsApp, so the driver's websocket URL points at a local
//! listener that accepts every connection and never answers: each client sits in its connect
//! attempt (20 s timeout), then retries with backoff, like a number whose network is down.
//!
//! Steps: start the release `bzapper serve` (real driver), create N numbers (each mints its
//! device keys and stores them sealed), stop it, start it again on the same data dir (every
//! number is resumed from its stored session), let it settle, then read VmRSS/VmHWM.

use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

#[path = "../tests/support/mod.rs"]
mod support;

const ADMIN: &str = "bench-admin-token-0123456789";

/// Accepts every connection and holds it open without a byte in answer.
async fn silent_listener(accepted: Arc<AtomicU64>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::Relaxed);
            held.push(sock);
        }
    });
    format!("ws://{addr}/ws/chat")
}

async fn count_status(http: &reqwest::Client, base: &str, key: &str, status: &str) -> usize {
    let v: Value = http
        .get(format!("{base}/v1/instances?limit=1000"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["items"].as_array().unwrap().iter().filter(|i| i["status"] == status).count()
}

fn spawn(data: &Path, ws_url: &str) -> (Child, String) {
    support::serve_real(data, ADMIN, ws_url)
}

#[tokio::main]
async fn main() {
    let n: usize =
        std::env::var("BZAPPER_BENCH_INSTANCES").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let accepted = Arc::new(AtomicU64::new(0));
    let ws_url = silent_listener(accepted.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();

    let (mut child, base) = spawn(dir.path(), &ws_url);
    let t: Value = http
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = t["api_key"].as_str().unwrap().to_string();
    let created = Instant::now();
    stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let (http, base, key) = (http.clone(), base.clone(), key.clone());
            async move {
                let res = http
                    .post(format!("{base}/v1/instances"))
                    .bearer_auth(&key)
                    .json(&json!({"name": format!("n{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert!(res.status().is_success(), "{}", res.text().await.unwrap());
            }
        })
        .await;
    let create_time = created.elapsed();
    // Let every client build its device and dial once before stopping.
    tokio::time::sleep(Duration::from_secs(3)).await;
    support::terminate(&mut child);

    let before = accepted.load(Ordering::Relaxed);
    let restarted = Instant::now();
    let (mut child, base) = spawn(dir.path(), &ws_url);
    let (empty_like, _) = support::rss_kib(child.id());
    // Every number resumes and dials the listener again.
    while accepted.load(Ordering::Relaxed) < before + n as u64 {
        assert!(restarted.elapsed() < Duration::from_secs(120), "numbers did not all dial");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_dialing = restarted.elapsed();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (idle, peak) = support::rss_kib(child.id());
    let connecting = count_status(&http, &base, &key, "connecting").await;
    let qr_pending = count_status(&http, &base, &key, "qr_pending").await;
    support::terminate(&mut child);

    // The same gateway with no numbers, for the baseline.
    let empty = tempfile::tempdir().unwrap();
    let (mut bare, _) = spawn(empty.path(), &ws_url);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (baseline, _) = support::rss_kib(bare.id());
    support::terminate(&mut bare);

    println!("numbers (real driver):          {n}");
    println!("create {n} numbers (device keys minted, sealed): {:.2} s", create_time.as_secs_f64());
    println!(
        "restart → all {n} dialing again from stored sessions: {:.2} s",
        all_dialing.as_secs_f64()
    );
    println!("  status after restart: {connecting} connecting, {qr_pending} qr_pending");
    println!("RSS empty gateway:              {:.1} MiB", baseline as f64 / 1024.0);
    println!("RSS right after restart:        {:.1} MiB", empty_like as f64 / 1024.0);
    println!(
        "RSS with {n} numbers loaded:    {:.1} MiB (peak {:.1} MiB)",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!(
        "per number:                     {:.1} KiB",
        idle.saturating_sub(baseline) as f64 / n as f64
    );
}
