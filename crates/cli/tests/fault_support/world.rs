//! A fault world and how a schedule is carried out in it: the simulated network, the gateway
//! (one on SQLite, or three nodes on PostgreSQL), a tenant with numbers, webhooks and an alert
//! target of the run's own; the workload and the faults of each round; then the settle phase
//! and the reading of everything the checks compare.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::api::{self, Reply};
use super::checks::{self, Checks, Violation};
use super::ledger::{CampaignCall, Fate, InboundCall, Ledger, Number, Outage, Outcome, SendCall};
use super::observed::{Campaign, Event, Instance, Message, NetMessage, Observed, WebhookSeen};
use super::plan::{Action, Fault, Planner, Round, Shape, Topology, RECEIVERS};
use super::procs::{self, Gateway, GatewaySpec, SimNet, ADMIN};
use super::receivers::{Mode, Receiver};
use super::report::Report;
use crate::support::PgSchema;

/// What a world is made of and how hard it is driven.
#[derive(Clone, Debug)]
pub struct WorldConfig {
    pub topology: Topology,
    pub seed: u64,
    pub shape: Shape,
    pub checks: Checks,
    /// Numbers linked at the start; the operator adds one whenever fewer than `min_linked`
    /// are left linked.
    pub numbers: usize,
    pub min_linked: usize,
    /// The PostgreSQL server of a cluster world (a schema of its own is made and dropped).
    pub pg_url: Option<String>,
    /// Keep the processes' logs and data dirs even when nothing was violated.
    pub keep_logs: bool,
    /// The longest the settle phase waits for the world to come to rest.
    pub settle_limit: Duration,
}

/// The webhooks' filters, one per receiver.
const WEBHOOK_EVENTS: [&[&str]; RECEIVERS] =
    [&["*"], &["message.*"], &["instance.*", "campaign.*"]];
/// Lease time of the cluster nodes: short, so a killed node's numbers move quickly.
const LEASE_SECS: u64 = 3;

/// Everything a step needs; cheap to clone into a task.
#[derive(Clone)]
struct Ctx {
    name: &'static str,
    topology: Topology,
    http: reqwest::Client,
    key: String,
    sim_url: String,
    urls: Vec<String>,
    up: Arc<Vec<AtomicBool>>,
    gateways: Vec<Arc<Mutex<Gateway>>>,
    receivers: Vec<Receiver>,
    alert_target: Receiver,
    ledger: Arc<Mutex<Ledger>>,
    /// The PostgreSQL admin URL and the `application_name` prefix of this world's nodes.
    pg: Option<(String, String)>,
    checks: Checks,
    started: Instant,
}

impl Ctx {
    fn log(&self, what: impl std::fmt::Display) {
        eprintln!("[fault {} {:>7.1}s] {what}", self.name, self.started.elapsed().as_secs_f64());
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node `via` names, or the next one up; `None` while every node is down.
    fn node(&self, via: u32) -> Option<usize> {
        let n = self.urls.len();
        (0..n).map(|k| (via as usize + k) % n).find(|&i| self.up[i].load(Ordering::SeqCst))
    }

    fn base(&self, via: u32) -> Option<(usize, String)> {
        self.node(via).map(|i| (i, self.urls[i].clone()))
    }

    /// The linked numbers that can send again by themselves: while the ban-expiry check is
    /// off, a number whose temporary ban spanned a kill stays down (issue 18, item 3), and
    /// the operator replaces it as it would a banned one.
    fn usable(&self) -> usize {
        let l = self.ledger();
        let stuck = checks::stuck_numbers(&l, self.checks);
        l.linked().iter().filter(|n| !stuck.contains(&n.id)).count()
    }

    /// A linked number chosen by `pick`.
    fn linked(&self, pick: u32) -> Option<Number> {
        let linked = self.ledger().linked();
        (!linked.is_empty()).then(|| linked[pick as usize % linked.len()].clone())
    }
}

/// A running world. Dropping it kills its processes, then drops its PostgreSQL schema.
pub struct World {
    cfg: WorldConfig,
    ctx: Ctx,
    planner: Planner,
    webhooks: Vec<(String, Vec<String>)>,
    /// Every violation any settle found so far.
    seen: BTreeSet<Violation>,
    _sim: SimNet,
    dir: PathBuf,
    tmp: Option<tempfile::TempDir>,
    // Last: dropped after the processes using it.
    _pg: Option<PgSchema>,
}

impl World {
    pub async fn create(cfg: WorldConfig) -> World {
        let started = Instant::now();
        let name = cfg.topology.name();
        let tmp =
            tempfile::Builder::new().prefix(&format!("bzapper-fault-{name}-")).tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let sim = SimNet::start(&dir);
        let (pg, schema) = match cfg.topology {
            Topology::Single => (None, None),
            Topology::Cluster => {
                let base = cfg.pg_url.clone().expect("a cluster world needs PostgreSQL");
                let schema = PgSchema::create(&base).await;
                let prefix = format!("bzf_{}_n", schema.name);
                (Some((base, prefix)), Some(schema))
            }
        };
        let master_key = (cfg.topology == Topology::Cluster).then(procs::master_key);
        let mut gateways = Vec::new();
        let mut urls = Vec::new();
        for i in 0..cfg.topology.nodes() {
            let spec = GatewaySpec {
                name: format!("{name}-gw{i}"),
                port: procs::free_port(),
                data: dir.join(format!("gw{i}")),
                sim_url: sim.url.clone(),
                database_url: schema.as_ref().map(|s| {
                    procs::with_param(&s.url(), &format!("application_name=bzf_{}_n{i}", s.name))
                }),
                master_key: master_key.clone(),
                node: (cfg.topology == Topology::Cluster)
                    .then(|| (LEASE_SECS, format!("node-{i}"))),
            };
            urls.push(spec.url());
            let g = tokio::task::block_in_place(|| Gateway::start(spec, &dir));
            gateways.push(Arc::new(Mutex::new(g)));
        }
        let mut receivers = Vec::new();
        for _ in 0..RECEIVERS {
            receivers.push(Receiver::start("/hook").await);
        }
        let alert_target = Receiver::start("/alert").await;
        let http = api::client();
        let up = Arc::new((0..urls.len()).map(|_| AtomicBool::new(true)).collect::<Vec<_>>());
        let mut ctx = Ctx {
            name,
            topology: cfg.topology,
            http,
            key: String::new(),
            sim_url: sim.url.clone(),
            urls,
            up,
            gateways,
            receivers,
            alert_target,
            ledger: Arc::default(),
            pg,
            checks: cfg.checks,
            started,
        };
        if cfg.topology == Topology::Cluster {
            wait_for_nodes(&ctx).await;
        }

        // The tenant, its webhooks and alert target first: every event of the tenant then
        // matches from the first one on.
        let base = ctx.urls[0].clone();
        let t = api::must(
            &ctx.http,
            Method::POST,
            &format!("{base}/v1/tenants"),
            ADMIN,
            Some(&json!({"name": "fault"})),
        )
        .await
        .unwrap();
        ctx.key = t["api_key"].as_str().unwrap().to_string();
        let mut webhooks = Vec::new();
        for (r, events) in ctx.receivers.iter().zip(WEBHOOK_EVENTS) {
            let body = json!({"url": r.url, "events": events});
            let w = api::must(
                &ctx.http,
                Method::POST,
                &format!("{base}/v1/webhooks"),
                &ctx.key,
                Some(&body),
            )
            .await
            .unwrap();
            webhooks.push((
                w["id"].as_str().unwrap().to_string(),
                events.iter().map(|s| s.to_string()).collect(),
            ));
        }
        let alerts = json!({"url": ctx.alert_target.url, "format": "json", "on": ["logged_out", "banned", "health_low"]});
        api::must(&ctx.http, Method::PUT, &format!("{base}/v1/alerts"), &ctx.key, Some(&alerts))
            .await
            .unwrap();

        for _ in 0..cfg.numbers {
            add_number(&ctx).await;
        }
        wait_until(Duration::from_secs(60), || async {
            let linked = ctx.ledger().linked();
            let v =
                api::must(&ctx.http, Method::GET, &format!("{base}/v1/instances"), &ctx.key, None)
                    .await
                    .ok()?;
            let items = v["items"].as_array()?;
            let connected =
                |id: &str| items.iter().any(|i| i["id"] == id && i["status"] == "connected");
            linked.iter().all(|n| connected(&n.id)).then_some(())
        })
        .await
        .expect("the numbers never all connected at the start");
        ctx.log(format!(
            "ready: {} node(s), {} numbers, data and logs in {}",
            ctx.urls.len(),
            cfg.numbers,
            dir.display()
        ));
        let planner = Planner::new(cfg.seed, cfg.topology, cfg.shape.clone());
        World {
            cfg,
            ctx,
            planner,
            webhooks,
            seen: BTreeSet::new(),
            _sim: sim,
            dir,
            tmp: Some(tmp),
            _pg: schema,
        }
    }

    /// Runs `rounds` rounds of workload and faults, then settles and checks everything since
    /// the world was created.
    pub async fn cycle(&mut self, rounds: usize) -> Report {
        for _ in 0..rounds {
            let round = self.planner.next_round();
            self.run_round(round).await;
        }
        self.settle_and_check().await
    }

    async fn run_round(&mut self, round: Round) {
        let ctx = self.ctx.clone();
        let start = tokio::time::Instant::now();
        let faults_count =
            round.steps.iter().filter(|s| matches!(s.action, Action::Fault(_))).count();
        ctx.log(format!(
            "round {} ({} ms, {} steps, {faults_count} faults)",
            round.index,
            round.len_ms,
            round.steps.len()
        ));
        let (lane_tx, mut lane_rx) = tokio::sync::mpsc::unbounded_channel::<Fault>();
        let lane_ctx = ctx.clone();
        // Faults one after another: a kill and its restart finish before the next fault.
        let lane = tokio::spawn(async move {
            while let Some(f) = lane_rx.recv().await {
                apply_fault(&lane_ctx, f).await;
            }
        });
        let mut tasks = JoinSet::new();
        for step in round.steps {
            tokio::time::sleep_until(start + Duration::from_millis(step.at_ms)).await;
            match step.action {
                Action::Operator { relink } => operator(&ctx, relink, self.cfg.min_linked).await,
                Action::Send { forced, via } => {
                    tasks.spawn(send(ctx.clone(), forced, via));
                }
                Action::Inbound { number } => {
                    tasks.spawn(inbound(ctx.clone(), number));
                }
                Action::Campaign { recipients, via, cancel_after_ms } => {
                    tasks.spawn(campaign(ctx.clone(), recipients, via, cancel_after_ms));
                }
                Action::Fault(f) => {
                    let _ = lane_tx.send(f);
                }
            }
        }
        tokio::time::sleep_until(start + Duration::from_millis(round.len_ms)).await;
        drop(lane_tx);
        let _ = lane.await;
        while tasks.join_next().await.is_some() {}
        ctx.ledger().rounds += 1;
    }

    /// Stops the faults, waits for the world to come to rest (within the limit), reads
    /// everything and checks it.
    async fn settle_and_check(&mut self) -> Report {
        let ctx = self.ctx.clone();
        let settle_started = Instant::now();
        for r in ctx.receivers.iter().chain([&ctx.alert_target]) {
            r.heal();
        }
        let exempt = {
            let l = ctx.ledger();
            checks::stuck_numbers(&l, self.cfg.checks)
        };
        let ban_end = ctx.ledger().last_ban_end;
        let limit = self.cfg.settle_limit
            + ban_end.and_then(|t| (t - Utc::now()).to_std().ok()).unwrap_or_default();
        let rest = wait_until(limit, || at_rest(&ctx, &exempt)).await;
        ctx.log(format!(
            "settle: {} after {:.1}s",
            if rest.is_some() { "at rest" } else { "NOT at rest within the limit" },
            settle_started.elapsed().as_secs_f64()
        ));

        let base = ctx.base(0).map(|(_, b)| b).expect("every node is up after the faults");
        let events: Vec<Event> =
            api::read_event_log(&ctx.http, &base, &ctx.key, Duration::from_secs(2))
                .await
                .unwrap_or_else(|e| panic!("reading the event log: {e}"))
                .iter()
                .filter_map(Event::from_json)
                .collect();
        // Webhook retries back off (2 s, 4 s, 8 s, …): after an outage of T the next attempt
        // comes within about 2T.
        let longest = Duration::from_millis(ctx.ledger().longest_outage_ms);
        let patience = Duration::from_secs(30) + longest * 2;
        let caught_up = wait_until(patience, || async {
            let all = self.webhooks.iter().zip(&ctx.receivers).all(|((_, filter), r)| {
                let got: std::collections::HashSet<u64> =
                    r.got().iter().map(|g| g.event_id).collect();
                events
                    .iter()
                    .filter(|e| filter.iter().any(|p| super::observed::matches(p, &e.kind)))
                    .all(|e| got.contains(&e.id))
            });
            all.then_some(())
        })
        .await;
        if caught_up.is_none() {
            ctx.log("webhooks: not every event was delivered within the limit");
        }
        if self.cfg.checks.alerts_durable {
            let _ = wait_until(patience, || async {
                let got: std::collections::HashSet<u64> =
                    ctx.alert_target.got().iter().map(|g| g.event_id).collect();
                events
                    .iter()
                    .filter(|e| super::observed::alert_kind(e).is_some())
                    .all(|e| got.contains(&e.id))
                    .then_some(())
            })
            .await;
        } else {
            // Not durable yet: the few seconds of its own retries, no more.
            tokio::time::sleep(Duration::from_secs(3)).await;
        }

        let obs = self.observe(&base, events).await;
        let verdict = {
            let l = ctx.ledger();
            checks::check(&l, &obs, ctx.topology, self.cfg.checks)
        };
        let fresh: Vec<Violation> =
            verdict.violations.iter().filter(|v| !self.seen.contains(*v)).cloned().collect();
        self.seen.extend(fresh);
        let logs = if !self.seen.is_empty() || self.cfg.keep_logs {
            if let Some(t) = self.tmp.take() {
                let _ = t.keep();
            }
            Some(self.dir.clone())
        } else {
            None
        };
        let l = ctx.ledger();
        let report = Report::new(
            ctx.topology,
            self.cfg.seed,
            self.cfg.checks,
            &l,
            verdict,
            self.seen.iter().cloned().collect(),
            ctx.started.elapsed(),
            settle_started.elapsed(),
            logs,
        );
        if report.logs.is_some() {
            let _ = std::fs::write(self.dir.join("report.txt"), report.to_string());
        }
        report
    }

    async fn observe(&self, base: &str, events: Vec<Event>) -> Observed {
        let ctx = &self.ctx;
        let get = |path: &str| {
            let url = format!("{base}{path}");
            async move { api::must(&ctx.http, Method::GET, &url, &ctx.key, None).await.unwrap() }
        };
        let messages =
            api::all_pages(&ctx.http, &format!("{base}/v1/messages?limit=500"), &ctx.key)
                .await
                .unwrap()
                .iter()
                .map(Message::from_json)
                .collect();
        let items = |v: Value| v["items"].as_array().cloned().unwrap_or_default();
        let campaigns = items(get("/v1/campaigns").await).iter().map(Campaign::from_json).collect();
        let instances = items(get("/v1/instances").await).iter().map(Instance::from_json).collect();
        let numbers: Vec<String> = ctx.ledger().numbers.iter().map(|n| n.id.clone()).collect();
        let mut network = Vec::new();
        for id in numbers {
            let url = format!("{}/v1/sim/instances/{id}/outbox", ctx.sim_url);
            let page = api::must(&ctx.http, Method::GET, &url, ADMIN, None).await.unwrap();
            network.extend(NetMessage::from_outbox(&id, &page));
        }
        let webhooks = self
            .webhooks
            .iter()
            .zip(&ctx.receivers)
            .map(|((id, events), r)| WebhookSeen {
                id: id.clone(),
                events: events.clone(),
                got: r.got(),
            })
            .collect();
        Observed {
            messages,
            campaigns,
            events,
            instances,
            network,
            webhooks,
            alerts: ctx.alert_target.got(),
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // The processes go first (field order); a violation keeps the database schema too,
        // next to the kept logs.
        if !self.seen.is_empty() {
            if let Some(schema) = self._pg.take() {
                eprintln!(
                    "[fault {}] PostgreSQL schema {} kept for inspection",
                    self.ctx.name, schema.name
                );
                std::mem::forget(schema);
            }
        }
    }
}

/// Polls `f` every 250 ms until it answers `Some`, for at most `limit`.
async fn wait_until<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Nothing queued or sending, every campaign ended, every linked number connected (but the
/// ones only a stored ban expiry would bring back, while that check is off).
async fn at_rest(ctx: &Ctx, exempt: &std::collections::HashSet<String>) -> Option<()> {
    let (_, base) = ctx.base(0)?;
    for status in ["queued", "sending"] {
        let url = format!("{base}/v1/messages?status={status}&limit=500");
        let v = api::must(&ctx.http, Method::GET, &url, &ctx.key, None).await.ok()?;
        let waits_for_exempt =
            |m: &Value| m["instance_id"].as_str().is_some_and(|i| exempt.contains(i));
        if !v["items"].as_array()?.iter().all(waits_for_exempt) {
            return None;
        }
    }
    let v = api::must(&ctx.http, Method::GET, &format!("{base}/v1/campaigns"), &ctx.key, None)
        .await
        .ok()?;
    if v["items"]
        .as_array()?
        .iter()
        .any(|c| !matches!(c["status"].as_str(), Some("finished" | "canceled")))
    {
        return None;
    }
    let v = api::must(&ctx.http, Method::GET, &format!("{base}/v1/instances"), &ctx.key, None)
        .await
        .ok()?;
    let items = v["items"].as_array()?;
    let linked = ctx.ledger().linked();
    let connected = |id: &str| items.iter().any(|i| i["id"] == id && i["status"] == "connected");
    linked.iter().filter(|n| !exempt.contains(&n.id)).all(|n| connected(&n.id)).then_some(())
}

/// Every node has joined the cluster.
async fn wait_for_nodes(ctx: &Ctx) {
    let url = format!("{}/v1/cluster", ctx.urls[0]);
    wait_until(Duration::from_secs(30), || async {
        let v = api::must(&ctx.http, Method::GET, &url, ADMIN, None).await.ok()?;
        let live = v["nodes"].as_array()?.iter().filter(|n| n["live"] == true).count();
        (live == ctx.urls.len()).then_some(())
    })
    .await
    .expect("the cluster's nodes never all joined");
}

/// The operator: links logged-out (or never linked) numbers again when `relink`, and adds
/// numbers while fewer than `min_linked` linked ones can send (see [`Ctx::usable`]).
async fn operator(ctx: &Ctx, relink: bool, min_linked: usize) {
    if relink {
        let out: Vec<Number> =
            ctx.ledger().numbers.iter().filter(|n| n.fate == Fate::LoggedOut).cloned().collect();
        for n in out {
            if link(ctx, &n.id, &n.phone, true).await {
                let mut l = ctx.ledger();
                l.relinks += 1;
                if let Some(m) = l.number_mut(&n.id) {
                    m.fate = Fate::Linked;
                    m.relinks += 1;
                }
                drop(l);
                ctx.log(format!("operator: {} ({}) scanned again", n.id, n.phone));
            }
        }
    }
    while ctx.usable() < min_linked {
        if !add_number(ctx).await {
            break;
        }
    }
}

/// Creates a number and links it; answers whether it is linked. One that could not be
/// linked is kept as logged out (a later operator turn scans it).
async fn add_number(ctx: &Ctx) -> bool {
    let Some((_, base)) = ctx.base(0) else { return false };
    let k = {
        let mut l = ctx.ledger();
        l.next_phone += 1;
        l.next_phone
    };
    let phone = format!("+55119{k:08}");
    let limits = json!({"min_gap_ms": 0, "max_gap_ms": 200, "per_minute": 1000, "per_hour": 60000, "per_day": 600000});
    let body = json!({"name": format!("n{k}"), "limits": limits, "warming_days": 0});
    let Ok(v) =
        api::must(&ctx.http, Method::POST, &format!("{base}/v1/instances"), &ctx.key, Some(&body))
            .await
    else {
        return false;
    };
    let id = v["id"].as_str().unwrap().to_string();
    let linked = link(ctx, &id, &phone, false).await;
    let fate = if linked { Fate::Linked } else { Fate::LoggedOut };
    let mut l = ctx.ledger();
    l.numbers.push(Number {
        id: id.clone(),
        phone: phone.clone(),
        fate,
        temp_bans: Vec::new(),
        relinks: 0,
    });
    if l.rounds > 0 {
        l.numbers_added += 1;
    }
    drop(l);
    ctx.log(format!("number {id} ({phone}) added{}", if linked { "" } else { ", NOT linked yet" }));
    linked
}

/// Shows a QR code for the number (after `connect` when `reconnect`) and has `phone` scan it.
async fn link(ctx: &Ctx, id: &str, phone: &str, reconnect: bool) -> bool {
    let Some((_, base)) = ctx.base(0) else { return false };
    if reconnect {
        let url = format!("{base}/v1/instances/{id}/connect");
        if api::call(&ctx.http, Method::POST, &url, &ctx.key, None).await.ok().is_none() {
            return false;
        }
    }
    let qr = format!("{base}/v1/instances/{id}/qr");
    let shown = wait_until(Duration::from_secs(10), || async {
        api::call(&ctx.http, Method::GET, &qr, &ctx.key, None).await.ok().map(drop)
    })
    .await;
    if shown.is_none() {
        return false;
    }
    let scan = format!("{}/v1/sim/instances/{id}/scan", ctx.sim_url);
    api::call(&ctx.http, Method::POST, &scan, ADMIN, Some(&json!({"phone": phone})))
        .await
        .ok()
        .is_some()
}

fn outcome(reply: &Reply, id_key: &str) -> Outcome {
    match reply {
        Reply::Answered(s, v) if (200..300).contains(s) => {
            Outcome::Accepted(v[id_key].as_str().unwrap_or_default().to_string())
        }
        Reply::Answered(s, v) => {
            Outcome::Refused(*s, v["error"]["code"].as_str().unwrap_or_default().to_string())
        }
        Reply::NoAnswer(_) => Outcome::NoAnswer,
    }
}

async fn send(ctx: Ctx, forced: Option<u32>, via: u32) {
    let forced = forced.and_then(|p| ctx.linked(p)).map(|n| n.id);
    let seq = {
        let mut l = ctx.ledger();
        l.next_seq += 1;
        l.next_seq
    };
    let text = format!("s{seq}");
    let mut body = json!({"to": format!("+55219{seq:08}"), "text": text});
    if let Some(id) = &forced {
        body["instance_id"] = json!(id);
    }
    let (node, outcome) = match ctx.base(via) {
        Some((node, base)) => {
            let r = api::call(
                &ctx.http,
                Method::POST,
                &format!("{base}/v1/messages"),
                &ctx.key,
                Some(&body),
            )
            .await;
            (node, outcome(&r, "id"))
        }
        None => (usize::MAX, Outcome::NoAnswer),
    };
    ctx.ledger().sends.push(SendCall { seq, text, forced, node, outcome });
}

async fn inbound(ctx: Ctx, pick: u32) {
    let Some(n) = ctx.linked(pick) else { return };
    let seq = {
        let mut l = ctx.ledger();
        l.next_seq += 1;
        l.next_seq
    };
    let body = json!({"from": format!("+55419{seq:08}"), "text": format!("i{seq}")});
    let url = format!("{}/v1/sim/instances/{}/inbound", ctx.sim_url, n.id);
    let r = api::call(&ctx.http, Method::POST, &url, ADMIN, Some(&body)).await;
    ctx.ledger()
        .inbound
        .push(InboundCall { instance_id: n.id, outcome: outcome(&r, "message_id") });
}

async fn campaign(ctx: Ctx, recipients: usize, via: u32, cancel_after_ms: Option<u64>) {
    let k = {
        let mut l = ctx.ledger();
        l.next_campaign += 1;
        l.next_campaign
    };
    let name = format!("fc{k}");
    let list: Vec<Value> = (0..recipients)
        .map(|i| json!({"to": format!("+55319{k:04}{i:04}"), "fields": {"i": i}}))
        .collect();
    let body = json!({"name": name, "template": format!("c{k}r{{{{i}}}}"), "recipients": list});
    let Some((_, base)) = ctx.base(via) else {
        ctx.ledger().campaigns.push(CampaignCall {
            name,
            recipients,
            outcome: Outcome::NoAnswer,
            canceled: false,
        });
        return;
    };
    let r =
        api::call(&ctx.http, Method::POST, &format!("{base}/v1/campaigns"), &ctx.key, Some(&body))
            .await;
    let outcome = outcome(&r, "id");
    let mut canceled = false;
    if let (Outcome::Accepted(id), Some(after)) = (&outcome, cancel_after_ms) {
        tokio::time::sleep(Duration::from_millis(after)).await;
        if let Some((_, base)) = ctx.base(via) {
            let url = format!("{base}/v1/campaigns/{id}/cancel");
            canceled =
                api::call(&ctx.http, Method::POST, &url, &ctx.key, None).await.ok().is_some();
        }
    }
    ctx.ledger().campaigns.push(CampaignCall { name, recipients, outcome, canceled });
}

/// The network drops the number's connection for `reason` (a `DropKind` as JSON); answers
/// whether it applied (the number was connected).
async fn sim_drop(ctx: &Ctx, id: &str, reason: Value) -> bool {
    let url = format!("{}/v1/sim/instances/{id}/drop", ctx.sim_url);
    api::call(&ctx.http, Method::POST, &url, ADMIN, Some(&json!({"reason": reason})))
        .await
        .ok()
        .is_some()
}

async fn apply_fault(ctx: &Ctx, f: Fault) {
    let kind = f.kind();
    let applied = match f {
        Fault::KillGateway { down_ms } => {
            kill_and_restart(ctx, 0, down_ms).await;
            true
        }
        Fault::KillNode { node, down_ms } => {
            kill_and_restart(ctx, node, down_ms).await;
            true
        }
        Fault::Drop { number } => match ctx.linked(number) {
            Some(n) => sim_drop(ctx, &n.id, json!("transient")).await,
            None => false,
        },
        Fault::Logout { number } => match ctx.linked(number) {
            Some(n) => {
                let ok = sim_drop(ctx, &n.id, json!("logged_out")).await;
                if ok {
                    if let Some(m) = ctx.ledger().number_mut(&n.id) {
                        m.fate = Fate::LoggedOut;
                    }
                    ctx.log(format!("logout of {}", n.id));
                }
                ok
            }
            None => false,
        },
        Fault::TempBan { number, secs } => match ctx.linked(number) {
            Some(n) => {
                let from = Utc::now();
                let until = from + chrono::Duration::seconds(secs as i64);
                let ok =
                    sim_drop(ctx, &n.id, json!({"temporarily_banned": {"until": until}})).await;
                if ok {
                    let mut l = ctx.ledger();
                    if let Some(m) = l.number_mut(&n.id) {
                        m.temp_bans.push((from, until));
                    }
                    l.last_ban_end = l.last_ban_end.max(Some(until));
                    drop(l);
                    ctx.log(format!("temporary ban of {} for {secs} s", n.id));
                }
                ok
            }
            None => false,
        },
        Fault::PermBan { number } => match ctx.linked(number) {
            Some(n) => {
                let ok = sim_drop(ctx, &n.id, json!("banned")).await;
                if ok {
                    if let Some(m) = ctx.ledger().number_mut(&n.id) {
                        m.fate = Fate::PermBanned;
                    }
                    ctx.log(format!("permanent ban of {}", n.id));
                }
                ok
            }
            None => false,
        },
        Fault::ReceiverDown { receiver, ms } => {
            ctx.receivers[receiver].set_for(Mode::Down, Duration::from_millis(ms));
            let mut l = ctx.ledger();
            l.longest_outage_ms = l.longest_outage_ms.max(ms);
            true
        }
        Fault::ReceiverSlow { receiver, ms, delay_ms } => {
            let delay = Duration::from_millis(delay_ms);
            ctx.receivers[receiver].set_for(Mode::Slow(delay), Duration::from_millis(ms));
            true
        }
        Fault::AlertTargetDown { ms } => {
            ctx.alert_target.set_for(Mode::Down, Duration::from_millis(ms));
            let mut l = ctx.ledger();
            l.longest_outage_ms = l.longest_outage_ms.max(ms);
            true
        }
        Fault::PgTerminate { node } => match &ctx.pg {
            Some((admin, prefix)) => {
                let prefix = match node {
                    Some(i) => format!("{prefix}{i}"),
                    None => prefix.clone(),
                };
                match procs::pg_terminate(admin, &prefix).await {
                    Ok(n) => {
                        ctx.ledger().pg_terminations.push((Utc::now(), n));
                        ctx.log(format!("PostgreSQL ended {n} connections of {prefix}*"));
                        true
                    }
                    Err(e) => {
                        ctx.log(format!("pg_terminate_backend failed: {e}"));
                        false
                    }
                }
            }
            None => false,
        },
    };
    let mut l = ctx.ledger();
    if applied {
        l.applied(kind);
    } else {
        l.skip(kind);
    }
}

/// `kill -9` of gateway `node`, down for `down_ms`, then started again on the same data dir
/// and port.
async fn kill_and_restart(ctx: &Ctx, node: usize, down_ms: u64) {
    let gw = ctx.gateways[node].clone();
    ctx.up[node].store(false, Ordering::SeqCst);
    let from = Utc::now();
    tokio::task::block_in_place(|| gw.lock().unwrap().kill());
    ctx.log(format!("kill -9 of gateway {node}, down for {down_ms} ms"));
    tokio::time::sleep(Duration::from_millis(down_ms)).await;
    tokio::task::block_in_place(|| gw.lock().unwrap().restart());
    let to = Utc::now();
    ctx.up[node].store(true, Ordering::SeqCst);
    ctx.log(format!("gateway {node} started again"));
    ctx.ledger().outages.push(Outage { node, from, to });
}
