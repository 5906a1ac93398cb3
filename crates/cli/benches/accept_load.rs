//! Accept throughput of `POST /v1/messages`: messages per second and p50/p99 latency, on
//! SQLite with the simulated network, from a load generator on loopback.
//!
//! `cargo bench -p bzapper --bench accept_load` (env `BZAPPER_BENCH_SECS`, default 10;
//! `BZAPPER_BENCH_CONCURRENCY`, default 64). It runs the release `bzapper serve --sim` as a
//! child process; this process is the load generator, sharing the same 2 cores.

use std::time::Duration;

use serde_json::{json, Value};

#[path = "../tests/support/mod.rs"]
mod support;

const ADMIN: &str = "bench-admin-token-0123456789";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs = env_or("BZAPPER_BENCH_SECS", 10);
    let concurrency = env_or("BZAPPER_BENCH_CONCURRENCY", 64) as usize;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = support::serve_sim_with(dir.path(), ADMIN, &support::LOAD_FLAGS);
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();

    let post = |url: String, token: &str, body: Value| {
        let req = http.post(url).bearer_auth(token).json(&body);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let t = post(format!("{base}/v1/tenants"), ADMIN, json!({"name": "bench"})).await;
    let key = t["api_key"].as_str().unwrap().to_string();
    let inst = post(format!("{base}/v1/instances"), &key, json!({"name": "n1"})).await;
    let id = inst["id"].as_str().unwrap().to_string();
    http.get(format!("{base}/v1/instances/{id}/qr")).bearer_auth(&key).send().await.unwrap();
    post(format!("{base}/v1/sim/instances/{id}/scan"), ADMIN, json!({"phone": "+5511900000001"}))
        .await;
    loop {
        let v: Value = http
            .get(format!("{base}/v1/instances/{id}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"] == "connected" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let run =
        support::send_load(&http, &[format!("{base}/v1/messages")], &key, concurrency, secs).await;
    let (lat, errors, elapsed) = (run.latencies, run.errors, run.secs);
    let pct =
        |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "accepted:    {} in {:.1} s ({} errors), concurrency {concurrency}",
        lat.len(),
        elapsed,
        errors
    );
    println!("throughput:  {:.0} messages/s", lat.len() as f64 / elapsed);
    println!(
        "latency:     p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
    let _ = child.kill();
    let _ = child.wait();
}
