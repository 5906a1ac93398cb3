//! Memory and start-up time of the gateway with a large send queue waiting: the queue is read
//! from the store a page at a time, so neither should grow with the backlog.
//!
//! `cargo bench -p bzapper --bench queue_backlog` (env `BZAPPER_BENCH_MESSAGES`, default
//! 1,000,000, spread over `BZAPPER_BENCH_TENANTS`, default 10; `BZAPPER_BENCH_BODY` characters
//! of text each, default 200). It creates the tenants, each with one number that is never
//! linked (so nothing drains), through the release `bzapper serve --sim`, stops it, writes the
//! queued messages straight into its SQLite file (accepting a million through the API would
//! take minutes and measure the accept path, which `accept_load` does), then starts the
//! gateway twice on that data: the time from the process start to `/readyz` answering, and
//! its resident memory a few seconds later.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

#[path = "../tests/support/mod.rs"]
mod support;

const ADMIN: &str = "bench-admin-token-0123456789";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Creates `n` tenants, each with one number (never linked); returns their ids.
async fn tenants(base: &str, n: usize) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let t: Value = http
            .post(format!("{base}/v1/tenants"))
            .bearer_auth(ADMIN)
            .json(&json!({"name": format!("tenant {i}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key = t["api_key"].as_str().unwrap();
        let inst = http
            .post(format!("{base}/v1/instances"))
            .bearer_auth(key)
            .json(&json!({"name": "n1"}))
            .send()
            .await
            .unwrap();
        assert!(inst.status().is_success(), "creating a number: {}", inst.status());
        ids.push(t["id"].as_str().unwrap().to_string());
    }
    ids
}

/// Writes `per_tenant` queued messages of `body` characters for each tenant, in accept order.
async fn fill(db: &Path, tenants: &[String], per_tenant: usize, body: usize) {
    let opts = SqliteConnectOptions::new().filename(db).pragma("synchronous", "OFF");
    let pool = SqlitePool::connect_with(opts).await.unwrap();
    let t0 = chrono::Utc::now().timestamp_millis() - 86_400_000;
    for (ti, tenant) in tenants.iter().enumerate() {
        // One statement per tenant: SQLite generates the rows itself.
        sqlx::query(
            "INSERT INTO messages (id, tenant_id, wa_id, instance_id, forced, pool, to_jid, \
             body, mentions_json, status, created_at, updated_at) \
             WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < $1) \
             SELECT printf('msg_bench_%02d_%08d', $2, n), $3, printf('3EB0BENCH%02d%08d', $2, n), \
             NULL, 0, 'default', printf('55119%08d@s.whatsapp.net', n), \
             substr(replace(hex(zeroblob($4)), '00', 'ab'), 1, $4), '[]', 'queued', $5 + n, $5 + n \
             FROM seq",
        )
        .bind(per_tenant as i64)
        .bind(ti as i64)
        .bind(tenant)
        .bind(body as i64)
        .bind(t0)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
}

/// Starts the gateway on `data`; returns it with the time from the process start to `/readyz`
/// answering 200.
async fn start(data: &Path) -> (std::process::Child, String, Duration) {
    let t = Instant::now();
    let (child, base) = support::serve_sim(data, ADMIN);
    let http = reqwest::Client::new();
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(t.elapsed() < Duration::from_secs(600), "the gateway never became ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (child, base, t.elapsed())
}

/// The gateway's queue-depth gauge, summed: what it reports waiting.
async fn reported_depth(base: &str) -> u64 {
    let text = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("bzapper_queue_depth{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let total = env_or("BZAPPER_BENCH_MESSAGES", 1_000_000);
    let n_tenants = env_or("BZAPPER_BENCH_TENANTS", 10).max(1);
    let body = env_or("BZAPPER_BENCH_BODY", 200);
    let per_tenant = total / n_tenants;
    let dir = tempfile::tempdir().unwrap();

    let (mut child, base, empty_start) = start(dir.path()).await;
    std::thread::sleep(Duration::from_secs(2));
    let (empty_rss, _) = support::rss_kib(child.id());
    let ids = tenants(&base, n_tenants).await;
    support::terminate(&mut child);

    let filling = Instant::now();
    fill(&dir.path().join("bzapper.db"), &ids, per_tenant, body).await;
    let fill_time = filling.elapsed();

    let mut runs = Vec::new();
    for _ in 0..2 {
        let (mut child, base, ready) = start(dir.path()).await;
        std::thread::sleep(Duration::from_secs(3));
        let depth = reported_depth(&base).await;
        let (rss, peak) = support::rss_kib(child.id());
        support::terminate(&mut child);
        runs.push((ready, rss, peak, depth));
    }

    println!(
        "queued messages:               {} ({n_tenants} tenants, {body} chars each)",
        per_tenant * n_tenants
    );
    println!(
        "empty gateway: ready in {:.2} s, RSS {:.1} MiB",
        empty_start.as_secs_f64(),
        mib(empty_rss)
    );
    println!("writing the backlog:           {:.1} s", fill_time.as_secs_f64());
    for (i, (ready, rss, peak, depth)) in runs.iter().enumerate() {
        let which = if i == 0 { "start with the backlog" } else { "restart" };
        println!(
            "{which:<22}: ready in {:.2} s, RSS {:.1} MiB (peak {:.1} MiB), queue depth reported {depth}",
            ready.as_secs_f64(),
            mib(*rss),
            mib(*peak)
        );
    }
}
