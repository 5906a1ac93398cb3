//! Running the `bzapper` binary as a child process, shared by the process-level tests and the
//! benches (each includes this file and uses part of it).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `cmd` and returns it with the URL it prints after `prefix` ("bZapper listening on ").
/// Its stdout keeps being drained so that the child never blocks on a full pipe.
pub fn start(mut cmd: Command, prefix: &str) -> (Child, String) {
    let mut child =
        cmd.stdout(Stdio::piped()).env("RUST_LOG", "warn").spawn().expect("bzapper starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let url = loop {
        let line = lines.next().expect("bzapper prints its address").expect("readable stdout");
        if let Some(u) = line.strip_prefix(prefix) {
            break u.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

/// The `bzapper` binary to run: this build's, or `BZAPPER_BENCH_BIN` (a bench measures another
/// build, e.g. the one before a change, with the same load).
pub fn bzapper_bin() -> std::path::PathBuf {
    std::env::var_os("BZAPPER_BENCH_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_bzapper").into())
}

/// `bzapper serve --sim` on a free loopback port with `data` as its data dir.
pub fn serve_sim(data: &Path, admin_token: &str) -> (Child, String) {
    serve_sim_with(data, admin_token, &[])
}

/// The settings of the load benchmarks, which send tens of thousands of messages a second
/// from one key: the request rate and queue quotas stay on (so their cost is measured) but
/// far above what a run sends.
pub const LOAD_FLAGS: [&str; 8] = [
    "--rate-limit",
    "10000000",
    "--rate-limit-burst",
    "10000000",
    "--max-queued-per-tenant",
    "100000000",
    "--max-queued-per-pool",
    "100000000",
];

/// [`serve_sim`] with more flags.
pub fn serve_sim_with(data: &Path, admin_token: &str, flags: &[&str]) -> (Child, String) {
    let mut cmd = Command::new(bzapper_bin());
    cmd.args(["serve", "--sim", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(flags)
        .env("BZAPPER_ADMIN_TOKEN", admin_token)
        // Receivers and media servers of the tests listen on loopback.
        .env("BZAPPER_OUTBOUND_ALLOW", "127.0.0.0/8,::1,localhost")
        .env_remove("BZAPPER_MASTER_KEY")
        .env_remove("DATABASE_URL");
    start(cmd, "bZapper listening on ")
}

/// `bzapper serve` with the real WhatsApp driver, its websocket pointed at `ws_url` (a local
/// listener: these machines cannot reach WhatsApp) and a fixed version (no fetch).
pub fn serve_real(data: &Path, admin_token: &str, ws_url: &str) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bzapper"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--wa-url", ws_url])
        .args(["--wa-version", "2.3000.1000000000", "--data-dir"])
        .arg(data)
        .env("BZAPPER_ADMIN_TOKEN", admin_token)
        // Receivers and media servers of the tests listen on loopback.
        .env("BZAPPER_OUTBOUND_ALLOW", "127.0.0.0/8,::1,localhost")
        .env_remove("BZAPPER_MASTER_KEY")
        .env_remove("DATABASE_URL");
    start(cmd, "bZapper listening on ")
}

/// Like [`start`], but everything the child prints (its log goes to stdout, panics to
/// stderr) is written to the file `log`, at the level of this process's `RUST_LOG` or else
/// `info` (a multi-process test shows it when it fails).
pub fn start_logged(mut cmd: Command, prefix: &str, log: &Path) -> (Child, String) {
    use std::io::Write as _;
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info,sqlx=warn".into());
    let mut file = std::fs::File::create(log).expect("the log file can be created");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(file.try_clone().expect("the log file can be shared"))
        .env("RUST_LOG", level)
        .spawn()
        .expect("bzapper starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let url = loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.wait();
            panic!("bzapper ended before printing its address; its output:\n{}", tail(log, 40));
        };
        let _ = writeln!(file, "{line}");
        if let Some(u) = line.strip_prefix(prefix) {
            break u.to_string();
        }
    };
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = writeln!(file, "{line}");
        }
    });
    (child, url)
}

/// The last `n` lines of a text file (empty when it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The PostgreSQL test database of `BZAPPER_TEST_DATABASE_URL` (else `DATABASE_URL` when
/// `also_database_url`), or `None` when unset.
pub fn pg_test_url(also_database_url: bool) -> Option<String> {
    std::env::var("BZAPPER_TEST_DATABASE_URL")
        .ok()
        .or_else(|| also_database_url.then(|| std::env::var("DATABASE_URL").ok()).flatten())
        .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
}

/// A fresh schema in a PostgreSQL database, dropped with everything in it when this is dropped
/// (also when the test fails). Drop the processes using it first.
pub struct PgSchema {
    base: String,
    pub name: String,
}

impl PgSchema {
    /// Creates `bzt_<pid>_<random>` in the database at `base`.
    pub async fn create(base: &str) -> PgSchema {
        use sqlx::Connection as _;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let name = format!("bzt_{}_{:08x}", std::process::id(), nanos ^ 0x5bd1_e995);
        let mut conn =
            sqlx::PgConnection::connect(base).await.expect("connecting to the test database");
        sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        PgSchema { base: base.to_string(), name }
    }

    /// `base` with `search_path` set to this schema, for `DATABASE_URL`.
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.base, self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop cannot await and may run inside the test's runtime: a thread with its own.
        let (base, name) = (self.base.clone(), self.name.clone());
        let done = std::thread::spawn(move || {
            use sqlx::Connection as _;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&base).await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(done, Ok(Ok(()))) {
            eprintln!("could not drop the test schema {}: {done:?}", self.name);
        }
    }
}

/// What a load run measured: the latency of each accepted send, sorted; calls that were not
/// accepted; and how long the run took, in seconds.
pub struct LoadRun {
    pub latencies: Vec<std::time::Duration>,
    pub errors: u64,
    pub secs: f64,
}

/// `concurrency` workers post sends to distinct recipients, worker `w` to `urls[w % len]`
/// (`…/v1/messages`), for `secs` seconds; a send counts when it gets a 202.
pub async fn send_load(
    http: &reqwest::Client,
    urls: &[String],
    key: &str,
    concurrency: usize,
    secs: u64,
) -> LoadRun {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (http, key, stop) = (http.clone(), key.to_string(), stop.clone());
        let url = urls[w % urls.len()].clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let to = format!("+5511{:09}", 100_000_000 + w as u64 * 1_000_000 + i);
                let res = http
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&serde_json::json!({"to": to, "text": "load test"}))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().as_u16() == 202 => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
                i += 1;
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut run = LoadRun { latencies: Vec::new(), errors: 0, secs: 0.0 };
    for w in workers {
        let (l, e) = w.await.expect("a load worker panicked");
        run.latencies.extend(l);
        run.errors += e;
    }
    run.secs = started.elapsed().as_secs_f64();
    run.latencies.sort();
    run
}

/// The child's resident memory now and at its peak (VmRSS, VmHWM), in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Stops the child gracefully (SIGTERM) and waits for it.
pub fn terminate(child: &mut Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
}
