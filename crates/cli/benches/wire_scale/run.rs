//! The steps of `wire_scale` (and of each point of `cost_curve`): the fake and the gateway as
//! child processes, N numbers linked, idle figures, a restart, optionally an accept burst.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

use super::support;

pub const ADMIN: &str = "bench-admin-token-0123456789";
/// How long all N numbers may take to be `connected` (after linking, after the restart) by
/// default; 0.5 s a number when that is more.
const ALL_CONNECTED: Duration = Duration::from_secs(900);
/// How long one number's QR code may take to appear.
const QR_WAIT: Duration = Duration::from_secs(120);

/// The processes this bench started; killed when it ends (also when a step fails).
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Logs {
    fake: PathBuf,
    gateway: PathBuf,
}

impl Logs {
    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\n--- gateway log (tail) ---\n{}\n--- fake log (tail) ---\n{}",
            support::tail(&self.gateway, 40),
            support::tail(&self.fake, 20)
        );
    }
}

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The gateway as this bench started it: `child` is `heaptrack` when the gateway runs under it
/// (`BZAPPER_BENCH_HEAPTRACK`), `pid` the gateway itself (what RSS and CPU are read of).
struct Gateway {
    child: Child,
    pid: u32,
}

impl Gateway {
    /// SIGTERM to the gateway, then waits for what was started (heaptrack writes its file
    /// after the gateway ends).
    fn terminate(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status();
        let _ = self.child.wait();
        self.pid = 0;
    }
}

/// Killed when a step fails (a clean stop is [`Gateway::terminate`]).
impl Drop for Gateway {
    fn drop(&mut self) {
        if self.pid != 0 {
            let _ = Command::new("kill").arg("-KILL").arg(self.pid.to_string()).status();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The child of `pid` running `bin` (the gateway `heaptrack` runs beside its own
/// `heaptrack_interpret`), waited for up to 10 s.
fn child_running(pid: u32, bin: &str) -> Option<u32> {
    let bin = std::fs::canonicalize(bin).ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for c in children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
            if std::fs::read_link(format!("/proc/{c}/exe")).is_ok_and(|exe| exe == bin) {
                return Some(c);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// `phase` names the heaptrack file (`gateway-linked`, `gateway-restarted`) when the gateway
/// runs under heaptrack: `BZAPPER_BENCH_HEAPTRACK=DIR` writes `DIR/<phase>.zst`.
fn serve_wire(data: &Path, wire_url: &str, log: &Path, phase: &str) -> (Gateway, String) {
    let bin = env!("CARGO_BIN_EXE_bzapper");
    let heaptrack = std::env::var_os("BZAPPER_BENCH_HEAPTRACK").map(PathBuf::from);
    let mut cmd = match &heaptrack {
        Some(dir) => {
            let mut c = Command::new("heaptrack");
            c.arg("-o").arg(dir.join(phase)).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    for kv in std::env::var("BZAPPER_BENCH_GATEWAY_ENV").unwrap_or_default().split(',') {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k.trim(), v.trim());
        }
    }
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--sim-wire-url", wire_url, "--data-dir"])
        .arg(data)
        // No rate limit or queue cap in the way of an accept burst (`cost_curve`).
        .args(support::LOAD_FLAGS)
        .env("BZAPPER_ADMIN_TOKEN", ADMIN)
        // Receivers and media servers of the benchmarks listen on loopback.
        .env("BZAPPER_OUTBOUND_ALLOW", "127.0.0.0/8,::1,localhost")
        .env_remove("BZAPPER_MASTER_KEY")
        .env_remove("BZAPPER_WA_URL")
        .env_remove("DATABASE_URL");
    let (child, url) = support::start_logged(cmd, "bZapper listening on ", log);
    let pid = match heaptrack {
        Some(_) => child_running(child.id(), bin).expect("heaptrack starts the gateway"),
        None => child.id(),
    };
    (Gateway { child, pid }, url)
}

/// `perf record` of the gateway over one phase, when `BZAPPER_BENCH_PERF=DIR` is set: call
/// graphs by DWARF (a release build has no frame pointers) at 199 Hz into `DIR/<phase>.data`.
/// Stopped by SIGINT, so that perf writes its file.
struct Perf(Option<Child>);

impl Perf {
    fn start(pid: u32, phase: &str) -> Perf {
        let Some(dir) = std::env::var_os("BZAPPER_BENCH_PERF").map(PathBuf::from) else {
            return Perf(None);
        };
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("perf")
            .args(["record", "-q", "-F", "199", "--call-graph", "dwarf,16384", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(dir.join(format!("{phase}.data")))
            .spawn()
            .expect("perf starts (Debian package linux-perf)");
        Perf(Some(child))
    }

    fn stop(mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name is in parentheses and may hold spaces: count fields after the last ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is f[0]; utime is field 14, stime field 15.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn threads(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("Threads:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Percent of one core each pid used over `window`.
async fn cpu_percent(pids: &[u32], window: Duration) -> Vec<f64> {
    let hz = clk_tck();
    let before: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect();
    let t = Instant::now();
    tokio::time::sleep(window).await;
    let secs = t.elapsed().as_secs_f64();
    pids.iter().zip(before).map(|(p, b)| (cpu_ticks(*p) - b) as f64 / hz / secs * 100.0).collect()
}

/// How many of the tenant's numbers are in each status.
async fn statuses(http: &reqwest::Client, base: &str, key: &str) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    let res = http.get(format!("{base}/v1/instances")).bearer_auth(key).send().await;
    let Ok(res) = res else { return by };
    let Ok(v) = res.json::<Value>().await else { return by };
    for i in v["items"].as_array().into_iter().flatten() {
        *by.entry(i["status"].as_str().unwrap_or("?").to_string()).or_insert(0) += 1;
    }
    by
}

/// How many stored numbers the gateway is still resuming (`GET /readyz`), `None` when it
/// does not answer.
async fn resuming(http: &reqwest::Client, base: &str) -> Option<u64> {
    let v: Value = http.get(format!("{base}/readyz")).send().await.ok()?.json().await.ok()?;
    v["resuming"].as_u64()
}

/// Polls until all `n` are connected; prints progress every 10 s; fails after `limit`. The
/// whole list is read at most every `n / 4000` s (at least every 250 ms): at 10,000 numbers it
/// is a few MB of JSON, which polled too often would load the gateway being measured.
async fn wait_all(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    n: usize,
    what: &str,
    logs: &Logs,
    limit: Duration,
) -> Duration {
    let t = Instant::now();
    let mut last_print = Instant::now();
    let every = Duration::from_millis(250).max(Duration::from_secs_f64(n as f64 / 4000.0));
    loop {
        let by = statuses(http, base, key).await;
        if by.get("connected").copied().unwrap_or(0) >= n {
            return t.elapsed();
        }
        if last_print.elapsed() >= Duration::from_secs(10) {
            eprintln!("[{what}] {:>5.1} s: {by:?}", t.elapsed().as_secs_f64());
            last_print = Instant::now();
        }
        if t.elapsed() > limit {
            logs.fail(&format!("{what}: not all {n} connected within {limit:?}; statuses {by:?}"));
        }
        // Between two reads of the list, the cheap probe: once no number is left resuming,
        // read the list at once.
        let next = Instant::now() + every;
        while Instant::now() < next {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if what == "restart" && resuming(http, base).await == Some(0) {
                break;
            }
        }
    }
}

/// How long a GET takes to answer in full, and how many bytes it answered.
async fn timed_get(http: &reqwest::Client, url: &str, token: &str) -> (Duration, usize) {
    let t = Instant::now();
    let body = http.get(url).bearer_auth(token).send().await.unwrap().bytes().await.unwrap();
    (t.elapsed(), body.len())
}

/// The process's anonymous resident memory (`RssAnon`, KiB): its heap and stacks, without the
/// pages of its binary it has touched, which grow with the code paths run (a fixed cost that
/// `(RSS − empty) / N` would otherwise spread over the numbers).
fn anon_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Everything one run measured (see the module's steps).
pub struct Figures {
    pub n: usize,
    pub empty: u64,
    /// `RssAnon` of the empty gateway, N linked (settled), and after the restart (+10 s).
    pub anon: [u64; 3],
    pub link_time: Duration,
    pub scanned: Duration,
    pub idle: u64,
    pub peak: u64,
    pub gw_threads: u64,
    pub cpu: Vec<f64>,
    pub still: BTreeMap<String, usize>,
    pub metrics: (Duration, usize),
    pub list: (Duration, usize),
    pub page: (Duration, usize),
    pub fake_empty: u64,
    pub fake_idle: u64,
    pub fake_peak: u64,
    pub fake_end: u64,
    pub stop_time: Duration,
    pub resume: Duration,
    /// Cores used over the restart (process start → all connected): gateway, fake.
    pub restart_cpu: [f64; 2],
    pub listening: Duration,
    pub rss_resumed: u64,
    pub idle_after: u64,
    pub peak_after: u64,
    pub cpu_after: Vec<f64>,
    pub still_after: BTreeMap<String, usize>,
    /// Sends accepted by `POST /v1/messages` with all N connected, when asked for.
    pub accepts: Option<Accepts>,
}

/// A burst of `POST /v1/messages` (64 in flight, a new recipient each, no `instance_id`).
pub struct Accepts {
    pub per_sec: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

/// Runs the steps of the module doc for `n` numbers; with `accept_secs`, ends with that many
/// seconds of accepts against the restarted gateway holding all `n`.
pub async fn measure(n: usize, accept_secs: Option<u64>) -> Figures {
    let link_at_once: usize = env_or("BZAPPER_BENCH_LINK_CONCURRENCY", 32);
    let limit = Duration::from_secs(env_or(
        "BZAPPER_BENCH_TIMEOUT_SECS",
        ALL_CONNECTED.as_secs().max(n as u64 / 2),
    ));
    if std::env::var_os("RUST_LOG").is_none() {
        // The children's log level (`support::start_logged` passes this process's on).
        std::env::set_var("RUST_LOG", "warn");
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // `BZAPPER_BENCH_LOGS=DIR` keeps the logs after the run (e.g. with `RUST_LOG=info`).
    let log_dir =
        std::env::var_os("BZAPPER_BENCH_LOGS").map_or(dir.path().to_path_buf(), PathBuf::from);
    let logs = Logs { fake: log_dir.join("fake.log"), gateway: log_dir.join("gateway.log") };

    let mut fake = Command::new(env!("CARGO_BIN_EXE_bzapper"));
    fake.args(["simnet", "--wire", "--listen", "127.0.0.1:0"]);
    let (fake, wire_url) =
        support::start_logged(fake, "bZapper wire simnet listening on ", &logs.fake);
    let fake_pid = fake.id();
    let children = Children(vec![fake]);
    let (gw, base) = serve_wire(&data, &wire_url, &logs.gateway, "gateway-linked");
    let gw_pid = gw.pid;
    let mut gateway = Some(gw);
    let http = reqwest::Client::new();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (empty, _) = support::rss_kib(gw_pid);
    let anon_empty = anon_kib(gw_pid);
    let (fake_empty, _) = support::rss_kib(fake_pid);

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

    // Link N numbers, `link_at_once` at a time.
    let started = Instant::now();
    let scanned_in = std::sync::Mutex::new(Duration::ZERO);
    let scanned_count = std::sync::atomic::AtomicUsize::new(0);
    let progress = async {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let done = scanned_count.load(std::sync::atomic::Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64();
            let (rss, _) = support::rss_kib(gw_pid);
            let (fake_rss, _) = support::rss_kib(fake_pid);
            eprintln!(
                "[link] {secs:>6.1} s: {done}/{n} scanned ({:.1}/s); RSS gateway {:.0} MiB, fake {:.0} MiB",
                done as f64 / secs,
                mib(rss),
                mib(fake_rss)
            );
        }
    };
    let linking = stream::iter(0..n).for_each_concurrent(link_at_once, |i| {
        let (http, base, key, logs, scanned_in) = (&http, &base, &key, &logs, &scanned_in);
        let scanned_count = &scanned_count;
        async move {
            let res = http
                .post(format!("{base}/v1/instances"))
                .bearer_auth(key)
                .json(&json!({"name": format!("n{i}")}))
                .send()
                .await
                .unwrap();
            if res.status().as_u16() != 201 {
                logs.fail(&format!("number {i}: create answered {}", res.status()));
            }
            let inst: Value = res.json().await.unwrap();
            let id = inst["id"].as_str().unwrap().to_string();
            // The QR code: the route waits up to 5 s and answers 409 until there is one.
            let t = Instant::now();
            loop {
                let r = http
                    .get(format!("{base}/v1/instances/{id}/qr"))
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap();
                let s = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if s == 200 && v["code"].as_str().is_some_and(|c| !c.is_empty()) {
                    break;
                }
                if t.elapsed() > QR_WAIT {
                    logs.fail(&format!("number {i}: no QR code within {QR_WAIT:?}: {s} {v}"));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let phone = format!("+5511{:09}", 900_000_000 + i);
            let scan = http
                .post(format!("{base}/v1/sim/instances/{id}/scan"))
                .bearer_auth(ADMIN)
                .json(&json!({"phone": phone}))
                .send()
                .await
                .unwrap();
            if !scan.status().is_success() {
                let s = scan.status();
                let body = scan.text().await.unwrap_or_default();
                logs.fail(&format!("number {i}: scan answered {s}: {body}"));
            }
            *scanned_in.lock().unwrap() = started.elapsed();
            scanned_count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    tokio::select! {
        () = linking => {}
        () = progress => unreachable!(),
    }
    let scanned = *scanned_in.lock().unwrap();
    eprintln!("[link] all {n} scanned after {:.1} s", scanned.as_secs_f64());
    wait_all(&http, &base, &key, n, "link", &logs, limit).await;
    let link_time = started.elapsed();

    tokio::time::sleep(Duration::from_secs(10)).await;
    let (idle, peak) = support::rss_kib(gw_pid);
    let anon_idle = anon_kib(gw_pid);
    let (fake_idle, fake_peak) = support::rss_kib(fake_pid);
    let gw_threads = threads(gw_pid);
    let perf = Perf::start(gw_pid, "idle-linked");
    let cpu = cpu_percent(&[gw_pid, fake_pid], Duration::from_secs(10)).await;
    perf.stop();
    let still = statuses(&http, &base, &key).await;
    // What a monitoring scrape and a client listing every number cost at this size.
    let metrics = timed_get(&http, &format!("{base}/metrics"), ADMIN).await;
    let list = timed_get(&http, &format!("{base}/v1/instances"), &key).await;
    let page = timed_get(&http, &format!("{base}/v1/instances?limit=100"), &key).await;

    // Restart on the same data dir against the same fake: every number comes back by itself.
    let stopping = Instant::now();
    gateway.take().unwrap().terminate();
    let stop_time = stopping.elapsed();
    let restarted = Instant::now();
    let fake_ticks = cpu_ticks(fake_pid);
    let (gw, base) = serve_wire(&data, &wire_url, &logs.gateway, "gateway-restarted");
    let gw_pid = gw.pid;
    gateway = Some(gw);
    let listening = restarted.elapsed();
    let perf = Perf::start(gw_pid, "restart");
    wait_all(&http, &base, &key, n, "restart", &logs, limit).await;
    let resume = restarted.elapsed();
    // The new process's own ticks are all spent since its start.
    let cores = |ticks: u64| ticks as f64 / clk_tck() / resume.as_secs_f64();
    let restart_cpu = [cores(cpu_ticks(gw_pid)), cores(cpu_ticks(fake_pid) - fake_ticks)];
    perf.stop();
    let (rss_resumed, _) = support::rss_kib(gw_pid);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (idle_after, peak_after) = support::rss_kib(gw_pid);
    let anon_after = anon_kib(gw_pid);
    let perf = Perf::start(gw_pid, "idle-restarted");
    let cpu_after = cpu_percent(&[gw_pid, fake_pid], Duration::from_secs(10)).await;
    perf.stop();
    let (fake_end, _) = support::rss_kib(fake_pid);
    let still_after = statuses(&http, &base, &key).await;
    let accepts = match accept_secs {
        Some(secs) => {
            let url = format!("{base}/v1/messages");
            let run = support::send_load(&http, &[url], &key, 64, secs).await;
            let lat = &run.latencies;
            let p99 = lat
                .get(((lat.len() as f64 * 0.99) as usize).min(lat.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
            Some(Accepts { per_sec: lat.len() as f64 / run.secs, p99_ms: p99, errors: run.errors })
        }
        None => None,
    };
    // A clean stop, so that heaptrack (when used) writes its profile.
    gateway.take().unwrap().terminate();
    drop(children);
    Figures {
        n,
        empty,
        anon: [anon_empty, anon_idle, anon_after],
        link_time,
        scanned,
        idle,
        peak,
        gw_threads,
        cpu,
        still,
        metrics,
        list,
        page,
        fake_empty,
        fake_idle,
        fake_peak,
        fake_end,
        stop_time,
        resume,
        restart_cpu,
        listening,
        rss_resumed,
        idle_after,
        peak_after,
        cpu_after,
        still_after,
        accepts,
    }
}

impl Figures {
    /// Memory per connected number over the empty gateway, just linked and after the restart
    /// (KiB).
    pub fn per_number_kib(&self) -> (f64, f64) {
        let per = |rss: u64| rss.saturating_sub(self.empty) as f64 / self.n as f64;
        (per(self.idle), per(self.idle_after))
    }

    /// [`Figures::per_number_kib`] counting anonymous memory only (`RssAnon`).
    pub fn per_number_anon_kib(&self) -> (f64, f64) {
        let [empty, idle, after] = self.anon;
        let per = |rss: u64| rss.saturating_sub(empty) as f64 / self.n as f64;
        (per(idle), per(after))
    }

    /// Prints the figures, one per line.
    pub fn print(&self) {
        let Figures {
            n,
            empty,
            anon: _,
            link_time,
            scanned,
            idle,
            peak,
            gw_threads,
            cpu,
            still,
            metrics,
            list,
            page,
            fake_empty,
            fake_idle,
            fake_peak,
            fake_end,
            stop_time,
            resume,
            restart_cpu,
            listening,
            rss_resumed,
            idle_after,
            peak_after,
            cpu_after,
            still_after,
            accepts,
        } = self;
        let (per, per_after) = self.per_number_kib();
        let (empty, idle, peak, fake_empty, fake_idle, fake_peak, fake_end) =
            (*empty, *idle, *peak, *fake_empty, *fake_idle, *fake_peak, *fake_end);
        let (rss_resumed, idle_after, peak_after) = (*rss_resumed, *idle_after, *peak_after);
        let (metrics, list, page) = (*metrics, *list, *page);
        println!("== real driver against the wire-level fake: {n} numbers ==");
        println!("RSS empty gateway:                         {:.1} MiB", mib(empty));
        println!(
        "link {n} numbers (create+QR+scan → all connected): {:.1} s (all scanned after {:.1} s)",
        link_time.as_secs_f64(),
        scanned.as_secs_f64()
    );
        println!(
        "RSS idle, {n} connected (10 s settle):      {:.1} MiB (peak {:.1} MiB), {gw_threads} threads",
        mib(idle),
        mib(peak)
    );
        let (anon, anon_after) = self.per_number_anon_kib();
        println!("per connected number:                      {per:.1} KiB");
        println!("  of it anonymous (heap, stacks):          {anon:.1} KiB (after the restart {anon_after:.1} KiB)");
        println!(
            "CPU at idle over 10 s: gateway {:.1} % of one core, fake {:.1} %",
            cpu[0], cpu[1]
        );
        println!("statuses at idle:                          {still:?}");
        for (what, (took, bytes)) in [
            ("GET /metrics", metrics),
            ("GET /v1/instances", list),
            ("GET /v1/instances?limit=100", page),
        ] {
            println!(
                "{what:<42} {:.1} ms, {:.0} KiB",
                took.as_secs_f64() * 1000.0,
                bytes as f64 / 1024.0
            );
        }
        println!(
            "fake RSS: empty {:.1} MiB, {n} connected {:.1} MiB (peak {:.1} MiB), end {:.1} MiB",
            mib(fake_empty),
            mib(fake_idle),
            mib(fake_peak),
            mib(fake_end)
        );
        println!("gateway stop (SIGTERM → exit):             {:.2} s", stop_time.as_secs_f64());
        println!(
            "restart (process start → all {n} connected): {:.2} s (listening after {:.2} s)",
            resume.as_secs_f64(),
            listening.as_secs_f64()
        );
        println!(
            "CPU over the restart:                      gateway {:.2} cores, fake {:.2} cores",
            restart_cpu[0], restart_cpu[1]
        );
        println!(
        "RSS after restart: at all connected {:.1} MiB; +10 s {:.1} MiB (peak {:.1} MiB), {per_after:.1} KiB/number",
        mib(rss_resumed),
        mib(idle_after),
        mib(peak_after)
    );
        println!(
            "CPU at idle after restart: gateway {:.1} % of one core, fake {:.1} %",
            cpu_after[0], cpu_after[1]
        );
        println!("statuses after restart:                    {still_after:?}");
        if let Some(a) = accepts {
            println!(
                "accepted with all {n} connected:          {:.0}/s, p99 {:.1} ms, {} errors",
                a.per_sec, a.p99_ms, a.errors
            );
        }
    }
}
