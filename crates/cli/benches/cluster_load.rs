//! Accept throughput of `POST /v1/messages` on PostgreSQL, with one gateway node and with
//! three: messages per second (202s) and p50/p90/p99 latency, from a load generator on
//! loopback keeping the same number of requests in flight in both runs (spread round robin
//! over the nodes when there are several).
//!
//! `BZAPPER_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p bzapper
//! --bench cluster_load` (or `DATABASE_URL`; each run uses a fresh schema, dropped after; env
//! `BZAPPER_BENCH_SECS`, default 10; `BZAPPER_BENCH_CONCURRENCY`, default 64;
//! `BZAPPER_BENCH_NODES`, default `1,3`; `BZAPPER_BENCH_BIN`, another build's binary to
//! measure, e.g. the one before a change). It runs the release `bzapper serve` nodes and one
//! `bzapper simnet` as child processes; the nodes, PostgreSQL and this load generator share the
//! machine's cores.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "../tests/support/mod.rs"]
mod support;

const ADMIN: &str = "bench-admin-token-0123456789";
/// Numbers in the pool, spread over the nodes (creating each on node `i % nodes`).
const NUMBERS: usize = 3;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Figures {
    nodes: usize,
    accepted: usize,
    errors: u64,
    secs: f64,
    lat_ms: Vec<f64>,
}

impl Figures {
    fn pct(&self, p: f64) -> f64 {
        self.lat_ms[((self.lat_ms.len() as f64 * p) as usize).min(self.lat_ms.len() - 1)]
    }
}

async fn post(http: &reqwest::Client, url: String, token: &str, body: Value) -> Value {
    let res = http.post(&url).bearer_auth(token).json(&body).send().await.unwrap();
    let status = res.status();
    let v = res.json::<Value>().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status}: {v}");
    v
}

async fn run(base_db: &str, nodes: usize, secs: u64, concurrency: usize) -> Figures {
    let schema = support::PgSchema::create(base_db).await;
    let db_url = schema.url();
    let dir = tempfile::tempdir().unwrap();
    let key = Command::new(support::bzapper_bin()).arg("keygen").output().unwrap();
    let master_key = String::from_utf8(key.stdout).unwrap().trim().to_string();
    let mut simnet = Command::new(support::bzapper_bin());
    simnet.args(["simnet", "--listen", "127.0.0.1:0"]);
    let (sim, sim_url) = support::start(simnet, "bZapper simnet listening on ");
    let mut procs = Procs(vec![sim]);
    let mut bases = Vec::new();
    for i in 0..nodes {
        let data = dir.path().join(format!("node-{i}"));
        let mut cmd = Command::new(support::bzapper_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--sim-url", &sim_url, "--data-dir"])
            .arg(&data)
            .args(["--node-id", &format!("node-{i}")])
            .args(support::LOAD_FLAGS)
            .env("DATABASE_URL", &db_url)
            .env("BZAPPER_MASTER_KEY", &master_key)
            .env("BZAPPER_ADMIN_TOKEN", ADMIN)
            // Receivers and media servers of the benchmarks listen on loopback.
            .env("BZAPPER_OUTBOUND_ALLOW", "127.0.0.0/8,::1,localhost")
            .env_remove("BZAPPER_ADVERTISE_URL")
            .env_remove("BZAPPER_LEASE_SECONDS");
        let (child, base) = support::start(cmd, "bZapper listening on ");
        procs.0.push(child);
        bases.push(base);
    }
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();

    let t = post(&http, format!("{}/v1/tenants", bases[0]), ADMIN, json!({"name": "bench"})).await;
    let key = t["api_key"].as_str().unwrap().to_string();
    for i in 0..NUMBERS {
        let base = &bases[i % nodes];
        let inst =
            post(&http, format!("{base}/v1/instances"), &key, json!({"name": format!("n{i}")}))
                .await;
        let id = inst["id"].as_str().unwrap().to_string();
        http.get(format!("{base}/v1/instances/{id}/qr")).bearer_auth(&key).send().await.unwrap();
        let phone = format!("+55119000000{i:02}");
        post(&http, format!("{base}/v1/sim/instances/{id}/scan"), ADMIN, json!({"phone": phone}))
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = http
            .get(format!("{}/v1/instances", bases[0]))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = v["items"].as_array().unwrap();
        if items.len() == NUMBERS && items.iter().all(|i| i["status"] == "connected") {
            break;
        }
        assert!(Instant::now() < deadline, "the numbers never connected: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let urls: Vec<String> = bases.iter().map(|b| format!("{b}/v1/messages")).collect();
    let run = support::send_load(&http, &urls, &key, concurrency, secs).await;
    let (errors, secs) = (run.errors, run.secs);
    assert!(!run.latencies.is_empty(), "{nodes} node(s): nothing was accepted ({errors} errors)");
    let lat_ms: Vec<f64> = run.latencies.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    drop(procs);
    drop(schema);
    Figures { nodes, accepted: lat_ms.len(), errors, secs, lat_ms }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(db) = support::pg_test_url(true) else {
        println!(
            "cluster_load: skipped: set BZAPPER_TEST_DATABASE_URL (or DATABASE_URL) to a \
             postgres:// URL, e.g. postgres://postgres@127.0.0.1:5432/test"
        );
        return;
    };
    let secs = env_or("BZAPPER_BENCH_SECS", 10);
    let concurrency = env_or("BZAPPER_BENCH_CONCURRENCY", 64) as usize;
    let node_counts: Vec<usize> = std::env::var("BZAPPER_BENCH_NODES")
        .unwrap_or_else(|_| "1,3".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .filter(|&n| n > 0)
        .collect();
    let mut rows = Vec::new();
    for &nodes in &node_counts {
        let f = run(&db, nodes, secs, concurrency).await;
        println!(
            "{} node(s): {} accepted in {:.1} s ({} errors), concurrency {concurrency}: \
             {:.0} messages/s, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            f.nodes,
            f.accepted,
            f.secs,
            f.errors,
            f.accepted as f64 / f.secs,
            f.pct(0.50),
            f.pct(0.90),
            f.pct(0.99),
            f.pct(1.0)
        );
        rows.push(f);
    }
    println!();
    println!("| nodes | concurrency | accepted/s | p50 | p90 | p99 | max | errors |");
    println!("|---|---|---|---|---|---|---|---|");
    for f in &rows {
        println!(
            "| {} | {concurrency} | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} ms | {} |",
            f.nodes,
            f.accepted as f64 / f.secs,
            f.pct(0.50),
            f.pct(0.90),
            f.pct(0.99),
            f.pct(1.0),
            f.errors
        );
    }
}
