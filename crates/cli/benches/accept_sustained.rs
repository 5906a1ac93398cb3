//! Sustained accept load of `POST /v1/messages` (issue 21): the tail latency over a long run
//! while the queue grows, on SQLite with the simulated network and several linked numbers.
//!
//! `cargo bench -p bzapper --bench accept_sustained` — env `BZAPPER_BENCH_SECS` (measured
//! seconds, 60), `BZAPPER_BENCH_WARMUP_SECS` (2), `BZAPPER_BENCH_CONCURRENCY` (keep-alive
//! connections, 64), `BZAPPER_BENCH_NUMBERS` (linked numbers, 20), `BZAPPER_BENCH_INTERVAL_SECS`
//! (the width of the per-interval rows, 5); `BZAPPER_BENCH_BIN` runs another build.
//!
//! It runs the release `bzapper serve --sim` as a child process. This process is the load
//! generator and shares the same 2 cores, so it is kept light: one thread, raw HTTP/1.1 over
//! keep-alive connections (each request is a preformatted buffer with a new recipient; the
//! answer is read up to its `Content-Length` and only the status line is parsed). It reports
//! throughput and latency percentiles over the measured part, the same per interval (so that a
//! stall shows when it happened), the gateway's RSS and its SQLite WAL size sampled each
//! second, the CPU time both processes used, and the queue depth at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "../tests/support/mod.rs"]
mod support;

const ADMIN: &str = "bench-admin-token-0123456789";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One answered request: when it ended and how long it took, in microseconds from the start.
#[derive(Clone, Copy)]
struct Sample {
    end_us: u64,
    lat_us: u32,
}

/// What one connection saw.
#[derive(Default)]
struct ConnRun {
    samples: Vec<Sample>,
    errors: u64,
}

/// One sample of the gateway per second.
struct Probe {
    at_s: f64,
    rss_kib: u64,
    wal_bytes: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let secs = env_or("BZAPPER_BENCH_SECS", 60);
    let warmup = env_or("BZAPPER_BENCH_WARMUP_SECS", 2);
    let concurrency = env_or("BZAPPER_BENCH_CONCURRENCY", 64) as usize;
    let numbers = env_or("BZAPPER_BENCH_NUMBERS", 20) as usize;
    let interval = env_or("BZAPPER_BENCH_INTERVAL_SECS", 5).max(1);

    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = support::serve_sim_with(dir.path(), ADMIN, &support::LOAD_FLAGS);
    let http = reqwest::Client::new();
    let key = link_numbers(&http, &base, numbers).await;
    let addr = base.trim_start_matches("http://").to_string();

    // The gateway's RSS and WAL, once a second, from a thread of its own.
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let probes = Arc::new(Mutex::new(Vec::<Probe>::new()));
    let sampler = {
        let (stop, probes, pid) = (stop.clone(), probes.clone(), child.id());
        let wal = dir.path().join("bzapper.db-wal");
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (rss_kib, _) = support::rss_kib(pid);
                let wal_bytes = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
                let at_s = started.elapsed().as_secs_f64();
                probes.lock().unwrap().push(Probe { at_s, rss_kib, wal_bytes });
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let cpu_before = (cpu_secs("self"), cpu_secs(&child.id().to_string()));

    let total = Duration::from_secs(warmup + secs);
    let mut conns = Vec::new();
    for c in 0..concurrency {
        conns.push(tokio::spawn(connection(addr.clone(), key.clone(), c, started, total)));
    }
    let mut runs = Vec::new();
    for c in conns {
        runs.push(c.await.expect("a connection task panicked"));
    }
    let elapsed = started.elapsed();
    let cpu_after = (cpu_secs("self"), cpu_secs(&child.id().to_string()));
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    let depth = queue_depth(&http, &base).await;
    let warm_us = warmup * 1_000_000;
    let errors: u64 = runs.iter().map(|r| r.errors).sum();
    let mut all: Vec<Sample> = runs
        .iter()
        .flat_map(|r| r.samples.iter().copied())
        .filter(|s| s.end_us >= warm_us)
        .collect();
    all.sort_by_key(|s| s.end_us);
    let measured = (elapsed.as_secs_f64() - warmup as f64).max(0.001);

    println!(
        "numbers {numbers}, connections {concurrency}, warm-up {warmup} s, measured {measured:.1} s"
    );
    let mut lat: Vec<u32> = all.iter().map(|s| s.lat_us).collect();
    lat.sort_unstable();
    println!(
        "accepted:    {} ({:.0}/s), {errors} errors (whole run, warm-up included)",
        lat.len(),
        lat.len() as f64 / measured
    );
    println!("latency:     {}", percentiles(&lat));
    println!("per {interval} s:");
    let width = interval * 1_000_000;
    let mut from = warm_us;
    while from < warm_us + secs * 1_000_000 {
        let mut l: Vec<u32> = all
            .iter()
            .filter(|s| s.end_us >= from && s.end_us < from + width)
            .map(|s| s.lat_us)
            .collect();
        l.sort_unstable();
        let pct = |p: f64| pct_ms(&l, p);
        println!(
            "  {:>4}-{:<4} s  {:>7.0}/s  p50 {:>6.2}  p99 {:>7.2}  max {:>7.2} ms",
            (from - warm_us) / 1_000_000,
            (from - warm_us + width) / 1_000_000,
            l.len() as f64 / interval as f64,
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );
        from += width;
    }
    let probes = probes.lock().unwrap();
    let rss: Vec<u64> = probes.iter().map(|p| p.rss_kib).collect();
    let mib = |k: u64| k as f64 / 1024.0;
    if let (Some(first), Some(last)) = (rss.first(), rss.last()) {
        println!(
            "gateway RSS: start {:.1} MiB, max {:.1} MiB, end {:.1} MiB",
            mib(*first),
            mib(*rss.iter().max().unwrap()),
            mib(*last)
        );
    }
    let wal_max = probes.iter().map(|p| p.wal_bytes).max().unwrap_or(0);
    let wal_end = probes.last().map_or(0, |p| p.wal_bytes);
    println!(
        "SQLite WAL:  max {:.1} MiB, end {:.1} MiB",
        wal_max as f64 / 1048576.0,
        wal_end as f64 / 1048576.0
    );
    if std::env::var_os("BZAPPER_BENCH_PROBES").is_some() {
        for p in probes.iter() {
            println!(
                "  t={:>5.1}s rss {:>6.1} MiB wal {:>7.1} MiB",
                p.at_s,
                mib(p.rss_kib),
                p.wal_bytes as f64 / 1048576.0
            );
        }
    }
    let run_s = elapsed.as_secs_f64();
    println!(
        "CPU:         load generator {:.2} cores, gateway {:.2} cores (whole run)",
        (cpu_after.0 - cpu_before.0) / run_s,
        (cpu_after.1 - cpu_before.1) / run_s
    );
    println!("queue depth: {depth} at the end (bzapper_queue_depth, summed)");
    support::terminate(&mut child);
}

/// p50 … max of sorted latencies in microseconds, in ms.
fn percentiles(l: &[u32]) -> String {
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        pct_ms(l, 0.5),
        pct_ms(l, 0.9),
        pct_ms(l, 0.99),
        pct_ms(l, 0.999),
        pct_ms(l, 1.0)
    )
}

fn pct_ms(l: &[u32], p: f64) -> f64 {
    if l.is_empty() {
        return 0.0;
    }
    l[((l.len() as f64 * p) as usize).min(l.len() - 1)] as f64 / 1000.0
}

/// User + system CPU seconds of a process (`self` or a pid), from `/proc/<pid>/stat`.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

/// One keep-alive connection posting sends, each to a new recipient, until `total` has passed.
async fn connection(
    addr: String,
    key: String,
    c: usize,
    started: Instant,
    total: Duration,
) -> ConnRun {
    let mut run = ConnRun { samples: Vec::with_capacity(400_000), errors: 0 };
    let mut stream = open(&addr).await;
    let mut buf = vec![0u8; 8192];
    let mut i = 0u64;
    while started.elapsed() < total {
        // 0-padded so that every body has the same length: one Content-Length.
        let to = format!("+55{:011}", 10_000_000_000u64 + c as u64 * 100_000_000 + i);
        i += 1;
        let body = format!(r#"{{"to":"{to}","text":"load test"}}"#);
        let req = format!(
            "POST /v1/messages HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let t = Instant::now();
        match exchange(&mut stream, req.as_bytes(), &mut buf).await {
            Ok(202) => {
                let end = started.elapsed();
                run.samples.push(Sample {
                    end_us: end.as_micros() as u64,
                    lat_us: t.elapsed().as_micros().min(u32::MAX as u128) as u32,
                });
            }
            Ok(_) => run.errors += 1,
            Err(_) => {
                run.errors += 1;
                stream = open(&addr).await;
            }
        }
    }
    run
}

async fn open(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).await.expect("the gateway accepts connections");
    s.set_nodelay(true).unwrap();
    s
}

/// Writes one request and reads its whole answer; returns the status code.
async fn exchange(s: &mut TcpStream, req: &[u8], buf: &mut [u8]) -> std::io::Result<u16> {
    s.write_all(req).await?;
    let mut len = 0;
    let head_end = loop {
        let n = s.read(&mut buf[len..]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        len += n;
        if let Some(p) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if len == buf.len() {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    };
    let head =
        std::str::from_utf8(&buf[..head_end]).map_err(|_| std::io::ErrorKind::InvalidData)?;
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body_len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or(0);
    let mut have = len - head_end;
    while have < body_len {
        let n = s.read(buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        have += n;
    }
    Ok(status)
}

/// Creates a tenant with `n` numbers in its default pool, links each on the simulated network
/// and waits until all are connected; returns the tenant's API key.
async fn link_numbers(http: &reqwest::Client, base: &str, n: usize) -> String {
    let post = |url: String, token: String, body: Value| {
        let req = http.post(url).bearer_auth(token).json(&body);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let t = post(format!("{base}/v1/tenants"), ADMIN.into(), json!({"name": "bench"})).await;
    let key = t["api_key"].as_str().unwrap().to_string();
    let mut ids = Vec::new();
    for i in 0..n {
        let inst =
            post(format!("{base}/v1/instances"), key.clone(), json!({"name": format!("n{i}")}))
                .await;
        let id = inst["id"].as_str().unwrap().to_string();
        http.get(format!("{base}/v1/instances/{id}/qr")).bearer_auth(&key).send().await.unwrap();
        let phone = format!("+55119{:08}", i + 1);
        post(format!("{base}/v1/sim/instances/{id}/scan"), ADMIN.into(), json!({"phone": phone}))
            .await;
        ids.push(id);
    }
    for id in &ids {
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
    }
    key
}

/// The queue depth the gateway reports on `/metrics` (`bzapper_queue_depth`, summed).
async fn queue_depth(http: &reqwest::Client, base: &str) -> u64 {
    let text = http
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
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
