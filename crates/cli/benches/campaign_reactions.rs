//! A campaign scenario on the simulated network with its reaction model on (issue 19): 20
//! numbers of mixed age, 5,000 recipients of whom 10 % have no WhatsApp and 30 % already wrote
//! to one of the numbers. It reports the restrictions (463 refusals) and bans the numbers
//! suffered, the messages sent, failed, expired and skipped, and the makespan — with the
//! gateway's defaults, with the defaults plus the recommended per-contact pacing, and with the
//! new rules off (no sticky sender, no per-contact pacing, no first-contact pre-check, the
//! first-contact cap at the largest value the API takes).
//!
//! `cargo bench -p bzapper --bench campaign_reactions` (env `BZAPPER_BENCH_RECIPIENTS`,
//! default 5000; `BZAPPER_BENCH_NUMBERS`, default 20; `BZAPPER_BENCH_SPEED`, default 100:
//! virtual milliseconds per real millisecond while the network is busy;
//! `BZAPPER_BENCH_MAX_STEP_MS`, default 10000: the largest step of virtual time per real
//! millisecond while it is idle; `BZAPPER_BENCH_MAX_HOURS`, default 72: virtual hours after
//! which a run stops; `BZAPPER_BENCH_RULES`, e.g. `defaults,pacing,off`: the runs to make).
//!
//! Everything runs in this process on a paused tokio clock that the bench moves by a step of
//! virtual time per real millisecond: the gateway's scheduler and the simulated network (its
//! clock: bans, account ages, the reaction model's windows) go by that clock, so days of
//! pacing take seconds. The store works on real threads; stepping (rather than jumping to the
//! next timer) leaves its queries the real time they need. The step is `SPEED` ms while the
//! network is busy and grows while it is idle (most of a capped campaign's time is numbers
//! waiting for their daily caps to free up), back to `SPEED` at the network's next read of its
//! clock (a send, a check, a pairing).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bzapper_driver::sim::{NetClock, Reactions, TokioClock};
use bzapper_server::{Application, Config, DriverKind};
use serde_json::{json, Value};

const ADMIN: &str = "bench-admin-token-0123456789";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Which of the pool's rules a run has on.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rules {
    /// The gateway's defaults: sticky sender, first-contact caps growing with warming, the
    /// first-contact pre-check; per-contact pacing off.
    Defaults,
    /// The defaults plus the recommended per-contact pacing (`per_contact_per_hour` 4).
    Pacing,
    /// The new rules off: no sticky sender, no per-contact pacing, no first-contact pre-check,
    /// and each number's `new_contacts_per_day` at the largest value the API takes.
    Off,
}

impl Rules {
    fn label(self) -> &'static str {
        match self {
            Rules::Defaults => "defaults",
            Rules::Pacing => "defaults + per_contact_per_hour 4",
            Rules::Off => "new rules off",
        }
    }
}

/// The network's clock, counting its reads: the network reads it at every send, check and
/// pairing, so an unchanged count means the network had nothing to do.
#[derive(Debug)]
struct CountingClock {
    inner: TokioClock,
    reads: Arc<AtomicU64>,
}

impl NetClock for CountingClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.now()
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("the gateway answers");
        let status = res.status().as_u16();
        let v = res.json::<Value>().await.unwrap_or(Value::Null);
        (status, v)
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        let (s, v) = self.call(reqwest::Method::GET, path, token, None).await;
        assert!(s < 300, "GET {path}: {s} {v}");
        v
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Value {
        let (s, v) = self.call(reqwest::Method::POST, path, token, Some(body)).await;
        assert!(s < 300, "POST {path}: {s} {v}");
        v
    }
}

/// Where the pacer's real time went: milliseconds with the network busy and idle.
#[derive(Debug, Default)]
struct PaceStats {
    busy_ms: AtomicU64,
    idle_ms: AtomicU64,
}

/// Moves the paused clock a step per real millisecond, for ever (the run drops it): `base`
/// after a millisecond in which the network read its clock, growing by a tenth per idle
/// millisecond up to `max`.
async fn pace(base: Duration, max: Duration, reads: Arc<AtomicU64>, stats: Arc<PaceStats>) {
    let mut step = base;
    let mut seen = reads.load(Ordering::Relaxed);
    loop {
        tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(1))).await.unwrap();
        let now = reads.load(Ordering::Relaxed);
        if now != seen {
            seen = now;
            step = base;
            stats.busy_ms.fetch_add(1, Ordering::Relaxed);
        } else {
            step = (step + step / 10).min(max);
            stats.idle_ms.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::advance(step).await;
    }
}

/// With the rules off the first-contact cap must not bind: each number's
/// `new_contacts_per_day` at the largest value `Limits::check` takes (`u32::MAX`; it bounds
/// the field only below). The API's `limits` object does not take this field (yet), so the
/// bench writes it into the stored limits and has an empty `PATCH` of the limits (which keeps
/// stored fields it does not name) apply them. The warming day-1 value (8) still applies.
async fn lift_first_contact_caps(dir: &std::path::Path, c: &Client, key: &str, ids: &[String]) {
    let url = format!("sqlite://{}", dir.join("bzapper.db").display());
    let db = sqlx::SqlitePool::connect(&url).await.expect("the gateway's SQLite store opens");
    let lifted = json!({"new_contacts_per_day": u32::MAX}).to_string();
    for id in ids {
        let done = sqlx::query("UPDATE instances SET limits_json = ? WHERE id = ?")
            .bind(&lifted)
            .bind(id)
            .execute(&db)
            .await
            .expect("the limits are written");
        assert_eq!(done.rows_affected(), 1, "instance {id} is stored");
        let (s, v) = c
            .call(
                reqwest::Method::PATCH,
                &format!("/v1/instances/{id}"),
                key,
                Some(json!({"limits": {}})),
            )
            .await;
        assert!(s < 300, "PATCH /v1/instances/{id}: {s} {v}");
        let stored: String = sqlx::query_scalar("SELECT limits_json FROM instances WHERE id = ?")
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap();
        assert!(stored.contains(&u32::MAX.to_string()), "{id} keeps the lifted cap: {stored}");
    }
    db.close().await;
}

fn recipient(i: usize) -> String {
    format!("+55219{i:08}")
}

#[derive(Debug, Default)]
struct Outcome {
    restrictions: u64,
    temporary_bans: u64,
    bans: u64,
    totals: Value,
    makespan: Option<Duration>,
    finished: bool,
}

async fn run(
    rules: Rules,
    recipients: usize,
    numbers: usize,
    reads: Arc<AtomicU64>,
    max_hours: u64,
) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.driver = DriverKind::Sim;
    config.admin_token = Some(ADMIN.to_string().into());
    config.test_hooks.sim_reactions = Reactions::on();
    config.test_hooks.sim_clock = Some(Arc::new(CountingClock { inner: TokioClock::new(), reads }));
    // Virtual time runs `speed` times faster than the real time a request takes.
    config.server_limits.header_read_timeout = Duration::from_secs(86_400);
    config.server_limits.body_read_timeout = Duration::from_secs(86_400);
    config.server_limits.idle_timeout = Duration::from_secs(86_400);
    config.rate_limit.per_sec = 0;
    // The first-contact pre-check is a gateway setting (`--first-contact-check`).
    config.first_contact_check = rules != Rules::Off;
    let app = Application::build(config).await.expect("the gateway starts");
    let base = format!("http://{}", app.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stop_rx.await;
    }));
    let c = Client { http: reqwest::Client::new(), base };
    let t = c.post("/v1/tenants", ADMIN, json!({"name": "bench"})).await;
    let key = t["api_key"].as_str().unwrap().to_string();

    let pool = match rules {
        Rules::Defaults => None,
        Rules::Pacing => Some(json!({"per_contact_per_hour": 4})),
        Rules::Off => Some(json!({"sticky": false, "per_contact_per_hour": 0})),
    };
    if let Some(body) = pool {
        let (s, v) = c.call(reqwest::Method::PUT, "/v1/pools/default", &key, Some(body)).await;
        assert!(s < 300, "PUT /v1/pools/default: {s} {v}");
    }

    // Numbers of mixed age: every third one is a month old or more, the others 0–6 days.
    let ages: Vec<u32> =
        (0..numbers).map(|i| if i % 3 == 0 { 30 + i as u32 } else { (i % 7) as u32 }).collect();
    let mut ids = Vec::new();
    for (i, age) in ages.iter().enumerate() {
        let warming = 5u32.saturating_sub(*age);
        let v = c
            .post("/v1/instances", &key, json!({"name": format!("n{i}"), "warming_days": warming}))
            .await;
        let id = v["id"].as_str().unwrap().to_string();
        c.get(&format!("/v1/instances/{id}/qr"), &key).await;
        c.post(
            &format!("/v1/sim/instances/{id}/scan"),
            ADMIN,
            json!({"phone": format!("+55119{i:08}")}),
        )
        .await;
        c.post(&format!("/v1/sim/instances/{id}/age"), ADMIN, json!({"days": age})).await;
        ids.push(id);
    }
    for id in &ids {
        loop {
            let v = c.get(&format!("/v1/instances/{id}"), &key).await;
            if v["status"] == "connected" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if rules == Rules::Off {
        lift_first_contact_caps(dir.path(), &c, &key, &ids).await;
    }
    // 10 % without WhatsApp; 30 % wrote to one of the numbers before.
    for i in (0..recipients).filter(|i| i % 10 == 9) {
        c.post("/v1/sim/contacts", ADMIN, json!({"phone": recipient(i), "on_whatsapp": false}))
            .await;
    }
    for i in (0..recipients).filter(|i| i % 10 < 3) {
        let id = &ids[(i / 10) % numbers];
        c.post(
            &format!("/v1/sim/instances/{id}/inbound"),
            ADMIN,
            json!({"from": recipient(i), "text": "hello, is this the shop?"}),
        )
        .await;
    }

    let list: Vec<Value> = (0..recipients)
        .map(|i| json!({"to": recipient(i), "fields": {"name": format!("Client {i}"), "code": i}}))
        .collect();
    let started = tokio::time::Instant::now();
    let body = json!({"name": "scenario", "template": "Hi {{name}}, your order {{code}} is ready.",
        "recipients": list});
    let cmp = c.post("/v1/campaigns", &key, body).await;
    let cid = cmp["id"].as_str().unwrap().to_string();

    let mut out = Outcome::default();
    let mut banned: HashMap<String, bool> = HashMap::new();
    let deadline = started + Duration::from_secs(max_hours * 3600);
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let v = c.get("/v1/instances", &key).await;
        for inst in v["items"].as_array().cloned().unwrap_or_default() {
            let id = inst["id"].as_str().unwrap_or_default().to_string();
            let now_banned = inst["reason"] == "banned";
            if now_banned && !banned.get(&id).copied().unwrap_or(false) {
                let detail = inst["detail"].as_str().unwrap_or_default();
                if detail.contains("banned (code") {
                    out.bans += 1;
                } else {
                    out.temporary_bans += 1;
                }
            }
            banned.insert(id, now_banned);
        }
        let cmp = c.get(&format!("/v1/campaigns/{cid}"), &key).await;
        out.totals = cmp["totals"].clone();
        if cmp["status"] == "finished" {
            out.finished = true;
            out.makespan = cmp["ended_at"].as_str().map(|_| started.elapsed());
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    // The 463 refusals: failed messages whose error carries WhatsApp's code.
    let mut cursor: Option<String> = None;
    let mut by_number: HashMap<String, u64> = HashMap::new();
    let mut to_known = 0u64;
    loop {
        let q = match &cursor {
            Some(cur) => format!("/v1/messages?status=failed&limit=500&cursor={cur}"),
            None => "/v1/messages?status=failed&limit=500".to_string(),
        };
        let page = c.get(&q, &key).await;
        for m in page["items"].as_array().cloned().unwrap_or_default() {
            if m["error"].as_str().is_some_and(|e| e.contains("463")) {
                out.restrictions += 1;
                let by = m["instance_id"].as_str().unwrap_or_default().to_string();
                *by_number.entry(by).or_insert(0u64) += 1;
                // Recipients `i % 10 < 3` wrote first (to the number `(i / 10) % numbers`).
                let to = m["to"].as_str().unwrap_or_default();
                let i: usize = to.get(5..13).and_then(|d| d.parse().ok()).unwrap_or(usize::MAX);
                if i % 10 < 3 {
                    to_known += 1;
                }
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    // Where the refusals fell: which numbers (age, warming days), and how many went to
    // contacts who had written to one of the numbers.
    let per_number: Vec<String> = ids
        .iter()
        .enumerate()
        .filter_map(|(i, id)| {
            let n = by_number.get(id)?;
            Some(format!(
                "n{i} (age {} d, warming {} d): {n}",
                ages[i],
                5u32.saturating_sub(ages[i])
            ))
        })
        .collect();
    eprintln!(
        "  ({rules:?}: 463s by number: {}; {to_known} of them to contacts who had written first)",
        if per_number.is_empty() { "none".to_string() } else { per_number.join(", ") }
    );
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(60), server).await;
    out
}

fn hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
}

fn main() {
    // The gateway's errors on stderr (a 500 says only "it has been logged"; its warnings at
    // shutdown, background loops finding the store closed, are noise here).
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::ERROR)
        .with_writer(std::io::stderr)
        .init();
    let recipients = env_or("BZAPPER_BENCH_RECIPIENTS", 5000) as usize;
    let numbers = env_or("BZAPPER_BENCH_NUMBERS", 20) as usize;
    let speed = env_or("BZAPPER_BENCH_SPEED", 100);
    let max_step = env_or("BZAPPER_BENCH_MAX_STEP_MS", 10_000).max(speed);
    let max_hours = env_or("BZAPPER_BENCH_MAX_HOURS", 72);
    let wanted = std::env::var("BZAPPER_BENCH_RULES").unwrap_or("defaults,pacing,off".into());
    let runs: Vec<Rules> = wanted
        .split(',')
        .map(|r| match r.trim() {
            "defaults" => Rules::Defaults,
            "pacing" => Rules::Pacing,
            "off" => Rules::Off,
            other => panic!("BZAPPER_BENCH_RULES: unknown run {other:?} (defaults, pacing, off)"),
        })
        .collect();
    println!(
        "campaign scenario: {numbers} numbers, {recipients} recipients (10 % without WhatsApp, \
         30 % in conversation), reaction model on, {speed} ms of virtual time per real ms while \
         the network is busy, up to {max_step} ms while it is idle"
    );
    println!("| pool rules | restrictions (463) | temporary bans | bans | sent+delivered+read | failed | expired | skipped | pending/queued | makespan |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for rules in runs {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let real = std::time::Instant::now();
        let stats = Arc::new(PaceStats::default());
        let out = rt.block_on(async {
            // A blocking task for the run's life keeps tokio from jumping the paused clock
            // (only `pace` moves it).
            let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
            tokio::task::spawn_blocking(move || {
                let _ = hold_rx.recv();
            });
            let reads = Arc::new(AtomicU64::new(0));
            let pacer = tokio::spawn(pace(
                Duration::from_millis(speed),
                Duration::from_millis(max_step),
                reads.clone(),
                stats.clone(),
            ));
            let out = run(rules, recipients, numbers, reads, max_hours).await;
            pacer.abort();
            drop(hold_tx);
            out
        });
        rt.shutdown_timeout(Duration::from_secs(5));
        let t = &out.totals;
        let n = |k: &str| t[k].as_u64().unwrap_or(0);
        let makespan = match (out.finished, out.makespan) {
            (true, Some(m)) => hms(m),
            _ => format!("not finished in {max_hours} h"),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            rules.label(),
            out.restrictions,
            out.temporary_bans,
            out.bans,
            n("sent") + n("delivered") + n("read"),
            n("failed"),
            t.get("expired").map_or("n/a".to_string(), |v| v.to_string()),
            n("skipped"),
            n("pending") + n("queued") + n("sending"),
            makespan,
        );
        eprintln!(
            "  ({rules:?}: {:.0} s of real time; pacer: {} ms with the network busy, {} ms idle)",
            real.elapsed().as_secs_f64(),
            stats.busy_ms.load(Ordering::Relaxed),
            stats.idle_ms.load(Ordering::Relaxed),
        );
    }
}
