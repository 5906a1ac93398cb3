//! Idle memory of the gateway holding many connected numbers on the simulated network, and
//! how long it takes to link them and to bring them all back after a restart.
//!
//! `cargo bench -p bzapper --bench idle_rss` (env `BZAPPER_BENCH_INSTANCES`, default 1000).
//! It runs the release `bzapper serve --sim` as a child process and reads its VmRSS/VmHWM.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

#[path = "../tests/support/mod.rs"]
mod support;

const ADMIN: &str = "bench-admin-token-0123456789";

fn spawn(data: &Path) -> (Child, String) {
    support::serve_sim(data, ADMIN)
}

async fn connected(http: &reqwest::Client, base: &str, key: &str) -> usize {
    let v: Value = http
        .get(format!("{base}/v1/instances"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["items"].as_array().unwrap().iter().filter(|i| i["status"] == "connected").count()
}

async fn wait_all(http: &reqwest::Client, base: &str, key: &str, n: usize) -> Duration {
    let t = Instant::now();
    while connected(http, base, key).await < n {
        assert!(t.elapsed() < Duration::from_secs(300), "numbers did not all connect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.elapsed()
}

#[tokio::main]
async fn main() {
    let n: usize =
        std::env::var("BZAPPER_BENCH_INSTANCES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = spawn(dir.path());
    let http = reqwest::Client::new();
    let (idle0, _) = support::rss_kib(child.id());

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

    let started = Instant::now();
    stream::iter(0..n)
        .for_each_concurrent(32, |i| {
            let (http, base, key) = (http.clone(), base.clone(), key.clone());
            async move {
                let inst: Value = http
                    .post(format!("{base}/v1/instances"))
                    .bearer_auth(&key)
                    .json(&json!({"name": format!("n{i}")}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let id = inst["id"].as_str().unwrap();
                let qr = http.get(format!("{base}/v1/instances/{id}/qr")).bearer_auth(&key).send();
                assert!(qr.await.unwrap().status().is_success());
                let scan = http
                    .post(format!("{base}/v1/sim/instances/{id}/scan"))
                    .bearer_auth(ADMIN)
                    .json(&json!({"phone": format!("+5511{:09}", 100_000_000 + i)}))
                    .send()
                    .await
                    .unwrap();
                assert!(scan.status().is_success());
            }
        })
        .await;
    wait_all(&http, &base, &key, n).await;
    let link_time = started.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (idle, peak) = support::rss_kib(child.id());

    // Restart on the same data dir: every number comes back by itself.
    support::terminate(&mut child);
    let restarted = Instant::now();
    let (mut child, base) = spawn(dir.path());
    wait_all(&http, &base, &key, n).await;
    let resume = restarted.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (idle_after, _) = support::rss_kib(child.id());
    support::terminate(&mut child);

    println!("instances:                     {n}");
    println!("RSS empty gateway:             {:.1} MiB", idle0 as f64 / 1024.0);
    println!("link {n} numbers (create+QR+scan): {:.2} s", link_time.as_secs_f64());
    println!(
        "RSS idle, {n} connected:       {:.1} MiB (peak {:.1} MiB)",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!(
        "per connected number:          {:.1} KiB",
        (idle.saturating_sub(idle0)) as f64 / n as f64
    );
    println!("restart (process start) → all connected again: {:.2} s", resume.as_secs_f64());
    println!("RSS idle after restart:        {:.1} MiB", idle_after as f64 / 1024.0);
}
