//! Three gateway nodes on one PostgreSQL and one shared simulated network, all on loopback:
//! 30 numbers spread over the nodes; sends accepted on every node while one node is killed
//! with SIGKILL; its numbers come back on the survivors within the lease time plus a reconnect
//! allowance; every accepted message is sent exactly once (counted by WhatsApp message id on
//! the network's outboxes); an SSE client on a surviving node sees each moved number's
//! `instance.disconnected` and then `instance.connected`.
//!
//! Needs `BZAPPER_TEST_DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`); skipped
//! with a message when it is unset. Runs in a schema of its own, dropped at the end. The nodes'
//! logs (`RUST_LOG`, default `info`) are printed when the test fails.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

mod support;

use support::{pg_test_url, start_logged, tail, PgSchema};

const ADMIN: &str = "cluster-admin-token-0123456789";
const NODES: usize = 3;
const INSTANCES: usize = 30;
const LEASE_SECS: u64 = 3;
/// Beyond the lease time: the survivors' next renewal round (a third of the lease), reading
/// the sealed sessions and connecting to the network again.
const RECONNECT_ALLOWANCE: Duration = Duration::from_secs(10);
/// The node killed; the SSE client and the final checks use node 0.
const VICTIM: usize = 2;

/// The processes, killed (SIGKILL) on drop; when the test is failing, their logs are printed.
struct Cluster {
    procs: Vec<(String, Option<Child>, PathBuf)>,
}

impl Cluster {
    fn kill(&mut self, i: usize) {
        let mut c = self.procs[i].1.take().expect("running");
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, c, _) in &mut self.procs {
            if let Some(c) = c {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            for (name, _, log) in &self.procs {
                eprintln!(
                    "---- last lines of {name}'s log ({}) ----\n{}",
                    log.display(),
                    tail(log, 60)
                );
            }
        }
    }
}

async fn call(
    http: &reqwest::Client,
    method: Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> Value {
    let mut req = http.request(method, &url).bearer_auth(token).timeout(Duration::from_secs(10));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = res.status();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status}: {v}");
    v
}

/// `bzapper serve` as node `node-<i>` of the cluster.
fn start_node(
    i: usize,
    sim_url: &str,
    db_url: &str,
    master_key: &str,
    dir: &Path,
) -> (Child, String, PathBuf) {
    let data = dir.join(format!("node-{i}"));
    std::fs::create_dir_all(&data).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bzapper"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--sim-url", sim_url])
        .args(["--lease-seconds", &LEASE_SECS.to_string(), "--node-id", &format!("node-{i}")])
        .arg("--data-dir")
        .arg(&data)
        .env("DATABASE_URL", db_url)
        .env("BZAPPER_MASTER_KEY", master_key)
        .env("BZAPPER_ADMIN_TOKEN", ADMIN)
        // Receivers and media servers of the tests listen on loopback.
        .env("BZAPPER_OUTBOUND_ALLOW", "127.0.0.0/8,::1,localhost")
        .env_remove("BZAPPER_ADVERTISE_URL")
        .env_remove("BZAPPER_NODE_ID")
        .env_remove("BZAPPER_LEASE_SECONDS");
    let log = dir.join(format!("node-{i}.log"));
    let (child, url) = start_logged(cmd, "bZapper listening on ", &log);
    (child, url, log)
}

/// Who holds what, per `GET /v1/cluster`: live node id → its instances, and the dead ones'.
struct Placement {
    live: HashMap<String, Vec<String>>,
    dead: HashMap<String, Vec<String>>,
}

async fn placement(http: &reqwest::Client, base: &str) -> Placement {
    let v = call(http, Method::GET, format!("{base}/v1/cluster"), ADMIN, None).await;
    assert_eq!(v["mode"], "cluster", "{v}");
    assert_eq!(v["lease_seconds"], LEASE_SECS, "{v}");
    let mut p = Placement { live: HashMap::new(), dead: HashMap::new() };
    for n in v["nodes"].as_array().unwrap() {
        let ids: Vec<String> = n["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_string())
            .collect();
        let side = if n["live"] == true { &mut p.live } else { &mut p.dead };
        side.insert(n["id"].as_str().unwrap().to_string(), ids);
    }
    p
}

/// Every instance is on at most one node; returns instance → node.
fn holders(p: &Placement) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (node, ids) in p.live.iter().chain(p.dead.iter()) {
        for id in ids {
            if let Some(other) = out.insert(id.clone(), node.clone()) {
                panic!("{id} is held by both {node} and {other}");
            }
        }
    }
    out
}

/// id: status (reason, connected_at) of each instance in a `GET /v1/instances` answer.
fn statuses(list: &Value) -> Vec<String> {
    let items = list["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    items
        .iter()
        .map(|i| format!("{}: {} ({}, {})", i["id"], i["status"], i["reason"], i["connected_at"]))
        .collect()
}

/// Sent, and perhaps already delivered or read.
fn gone_out(m: &Value) -> bool {
    matches!(m["status"].as_str(), Some("sent" | "delivered" | "read"))
}

#[derive(Debug)]
#[allow(dead_code)] // the fields are read through Debug, in failure messages
enum Outcome {
    Accepted(String),
    Refused(u16, String),
    Failed(String),
}

struct Sent {
    seq: usize,
    node: usize,
    at: Instant,
    outcome: Outcome,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_its_numbers_to_the_survivors_and_no_send_is_lost_or_doubled() {
    let Some(base_url) = pg_test_url(false) else {
        eprintln!(
            "cluster test SKIPPED: set BZAPPER_TEST_DATABASE_URL (for example \
             postgres://postgres@127.0.0.1:5432/test) to run it"
        );
        return;
    };
    let started = Instant::now();
    // Declared first, dropped last: after the processes are gone.
    let schema = PgSchema::create(&base_url).await;
    let db_url = schema.url();
    // The processes' data dirs and logs; kept (and named) with BZAPPER_TEST_KEEP_LOGS set.
    let tmp = tempfile::Builder::new().prefix("bzapper-cluster-").tempdir().unwrap();
    let (_tmp, dir) = match std::env::var_os("BZAPPER_TEST_KEEP_LOGS") {
        Some(_) => {
            let kept = tmp.keep();
            eprintln!("the processes' logs are kept in {}", kept.display());
            (None, kept)
        }
        None => {
            let path = tmp.path().to_path_buf();
            (Some(tmp), path)
        }
    };
    let key = Command::new(env!("CARGO_BIN_EXE_bzapper")).arg("keygen").output().unwrap();
    let master_key = String::from_utf8(key.stdout).unwrap().trim().to_string();

    let mut simnet = Command::new(env!("CARGO_BIN_EXE_bzapper"));
    simnet.args(["simnet", "--listen", "127.0.0.1:0"]);
    let sim_log = dir.join("simnet.log");
    let (sim, sim_url) = start_logged(simnet, "bZapper simnet listening on ", &sim_log);
    let mut cluster = Cluster { procs: vec![("simnet".into(), Some(sim), sim_log)] };
    let mut nodes = Vec::new();
    for i in 0..NODES {
        let (child, url, log) = start_node(i, &sim_url, &db_url, &master_key, &dir);
        cluster.procs.push((format!("node-{i}"), Some(child), log));
        nodes.push(url);
    }
    let victim_id = format!("node-{VICTIM}");
    let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(2)).build().unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = placement(&http, &nodes[0]).await;
        if p.live.len() == NODES {
            break;
        }
        assert!(Instant::now() < deadline, "not every node joined: {:?}", p.live.keys());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A tenant, and 30 numbers created, linked and scanned round robin over the nodes.
    let t = call(
        &http,
        Method::POST,
        format!("{}/v1/tenants", nodes[0]),
        ADMIN,
        Some(json!({"name": "acme"})),
    )
    .await;
    let key = t["api_key"].as_str().unwrap().to_string();
    let limits = json!({"min_gap_ms": 0, "max_gap_ms": 20, "per_minute": 600, "per_hour": 6000, "per_day": 60000});
    let instances: Vec<String> = futures::stream::iter(0..INSTANCES)
        .map(|i| {
            let (http, key, limits) = (&http, &key, &limits);
            let base = nodes[i % NODES].clone();
            async move {
                let v = call(
                    http,
                    Method::POST,
                    format!("{base}/v1/instances"),
                    key,
                    Some(json!({"name": format!("n{i:02}"), "limits": limits, "warming_days": 0})),
                )
                .await;
                let id = v["id"].as_str().unwrap().to_string();
                call(http, Method::GET, format!("{base}/v1/instances/{id}/qr"), key, None).await;
                call(
                    http,
                    Method::POST,
                    format!("{base}/v1/sim/instances/{id}/scan"),
                    ADMIN,
                    Some(json!({"phone": format!("+5511900001{i:03}")})),
                )
                .await;
                id
            }
        })
        .buffered(10)
        .collect()
        .await;

    // All connected, each held by one live node, every node holding some.
    let deadline = Instant::now() + Duration::from_secs(20);
    let before = loop {
        let v = call(&http, Method::GET, format!("{}/v1/instances", nodes[0]), &key, None).await;
        let all_connected = v["items"].as_array().unwrap().len() == INSTANCES
            && v["items"].as_array().unwrap().iter().all(|i| i["status"] == "connected");
        let p = placement(&http, &nodes[0]).await;
        let held = holders(&p);
        let spread = p.live.len() == NODES && p.live.values().all(|ids| !ids.is_empty());
        if all_connected && held.len() == INSTANCES && p.dead.is_empty() && spread {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the numbers never all connected and spread: {:?}\nheld: {:?}",
            statuses(&v),
            p.live
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut spread: Vec<(String, usize)> =
        before.live.iter().map(|(n, ids)| (n.clone(), ids.len())).collect();
    spread.sort();
    eprintln!("{INSTANCES} numbers connected in {:?}, spread {spread:?}", started.elapsed());
    let moved: HashSet<String> = before.live[&victim_id].iter().cloned().collect();

    // An SSE client on a node that survives, noting every instance event.
    let events: Arc<Mutex<Vec<Value>>> = Arc::default();
    let res = http
        .get(format!("{}/v1/events?types=instance.*", nodes[0]))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "SSE: {}", res.status());
    let seen = events.clone();
    let sse = tokio::spawn(async move {
        let mut body = res.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(Ok(chunk)) = body.next().await {
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = buf.drain(..end + 2).collect();
                let data: String = String::from_utf8_lossy(&block)
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect::<Vec<_>>()
                    .join("\n");
                if let Ok(v) = serde_json::from_str::<Value>(&data) {
                    seen.lock().unwrap().push(v);
                }
            }
        }
    });

    // Sends without instance_id, round robin over the nodes still up, ten a second.
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let victim_down = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (http, key, nodes) = (http.clone(), key.clone(), nodes.clone());
        let (sent, victim_down, stop) = (sent.clone(), victim_down.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seq = 0;
            let mut turn = 0;
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                // Stamped before the victim's flag is read: a call the flag let through to the
                // victim is then stamped before the kill (the flag is set before `killed`).
                let at = Instant::now();
                let mut n = turn % NODES;
                turn += 1;
                if n == VICTIM && victim_down.load(Ordering::SeqCst) {
                    n = turn % NODES;
                    turn += 1;
                }
                let res = http
                    .post(format!("{}/v1/messages", nodes[n]))
                    .bearer_auth(&key)
                    .timeout(Duration::from_secs(5))
                    .json(&json!({"to": format!("+5511988{seq:06}"), "text": format!("c{seq}")}))
                    .send()
                    .await;
                let outcome = match res {
                    Ok(r) if r.status().as_u16() == 202 => match r.json::<Value>().await {
                        Ok(v) => Outcome::Accepted(v["id"].as_str().unwrap_or_default().into()),
                        Err(e) => Outcome::Failed(format!("202 without a body: {e}")),
                    },
                    Ok(r) => {
                        let status = r.status().as_u16();
                        Outcome::Refused(status, r.text().await.unwrap_or_default())
                    }
                    Err(e) => Outcome::Failed(e.to_string()),
                };
                sent.lock().unwrap().push(Sent { seq, node: n, at, outcome });
                seq += 1;
            }
        })
    };
    let accepted_on = |node: usize| {
        sent.lock()
            .unwrap()
            .iter()
            .filter(|s| s.node == node && matches!(s.outcome, Outcome::Accepted(_)))
            .count()
    };

    // Kill the victim once it accepted some sends and some messages already went out, so that
    // it dies with sends queued, claimed and typing.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = call(&http, Method::GET, format!("{}/v1/messages?limit=500", nodes[0]), &key, None)
            .await;
        let out = v["items"].as_array().unwrap().iter().filter(|m| gone_out(m)).count();
        if out >= 3 && (0..NODES).all(|n| accepted_on(n) >= 4) {
            break;
        }
        let per_node: Vec<usize> = (0..NODES).map(accepted_on).collect();
        assert!(
            Instant::now() < deadline,
            "sends did not get going: {out} out, accepted {per_node:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed_wall = Utc::now();
    // No call goes to the victim from here on; one already let through is stamped before
    // `killed` (the kill itself takes a while, during which the sender goes on).
    victim_down.store(true, Ordering::SeqCst);
    let killed = Instant::now();
    cluster.kill(VICTIM + 1); // procs[0] is the simulated network
    eprintln!(
        "killed {victim_id} (holding {} numbers) after {} sends",
        moved.len(),
        sent.lock().unwrap().len()
    );

    // Failover: every number connected again (connected after the kill for the moved ones)
    // and held by a live node.
    let deadline = killed + Duration::from_secs(LEASE_SECS) + RECONNECT_ALLOWANCE * 2;
    let failover = loop {
        let v = call(&http, Method::GET, format!("{}/v1/instances", nodes[0]), &key, None).await;
        let items = v["items"].as_array().unwrap();
        let back = |i: &Value| {
            let reconnected = || {
                let at: Option<DateTime<Utc>> =
                    i["connected_at"].as_str().and_then(|s| s.parse().ok());
                at.is_some_and(|at| at > killed_wall)
            };
            i["status"] == "connected"
                && (!moved.contains(i["id"].as_str().unwrap()) || reconnected())
        };
        let all_back = items.len() == INSTANCES && items.iter().all(back);
        let p = placement(&http, &nodes[0]).await;
        let held = holders(&p);
        let by_live = held.values().filter(|n| p.live.contains_key(*n)).count();
        if all_back && by_live == INSTANCES && !p.live.contains_key(&victim_id) {
            break (killed.elapsed(), p);
        }
        assert!(
            Instant::now() < deadline,
            "the killed node's numbers did not come back: {:?}\nlive: {:?}\ndead: {:?}",
            statuses(&v),
            p.live,
            p.dead
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (failover, after) = failover;
    let mut spread: Vec<(String, usize)> =
        after.live.iter().map(|(n, ids)| (n.clone(), ids.len())).collect();
    spread.sort();
    eprintln!(
        "FAILOVER: all {INSTANCES} numbers connected again {failover:?} after the SIGKILL \
         (lease {LEASE_SECS} s); spread now {spread:?}"
    );
    assert!(
        failover <= Duration::from_secs(LEASE_SECS) + RECONNECT_ALLOWANCE,
        "failover took {failover:?}"
    );

    // Keep sending to the survivors for a while, then stop.
    let accepted_at_failover = sent.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while sent.lock().unwrap().len() < accepted_at_failover + 20 {
        assert!(Instant::now() < deadline, "sends stalled after the failover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    sender.await.unwrap();
    let sent = std::mem::take(&mut *sent.lock().unwrap());

    // Every call to a live node was accepted; only calls to the victim around its death failed.
    let mut accepted: HashMap<String, usize> = HashMap::new(); // message id → seq
    let mut lost_calls = Vec::new();
    for s in &sent {
        match &s.outcome {
            Outcome::Accepted(id) => {
                accepted.insert(id.clone(), s.seq);
            }
            other => {
                let at_the_kill = s.node == VICTIM && s.at <= killed;
                assert!(
                    at_the_kill,
                    "send {} to node-{} ({:?} after the kill) was not accepted: {other:?}",
                    s.seq,
                    s.node,
                    s.at.checked_duration_since(killed)
                );
                lost_calls.push(s.seq);
            }
        }
    }
    let per_node: Vec<usize> = (0..NODES)
        .map(|n| {
            sent.iter().filter(|s| s.node == n && matches!(s.outcome, Outcome::Accepted(_))).count()
        })
        .collect();
    eprintln!(
        "{} sends accepted (per node {per_node:?}), {} calls to the victim failed as it died",
        accepted.len(),
        lost_calls.len()
    );

    // Every accepted message goes out, read on a survivor.
    let deadline = Instant::now() + Duration::from_secs(30);
    let wa_ids: HashMap<String, String> = loop {
        let mut statuses: HashMap<String, Value> = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{}/v1/messages?limit=500", nodes[1]);
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let v = call(&http, Method::GET, url, &key, None).await;
            for m in v["items"].as_array().unwrap() {
                statuses.insert(m["id"].as_str().unwrap().to_string(), m.clone());
            }
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        for (id, m) in &statuses {
            assert_ne!(m["status"], "failed", "message {id} failed: {m}");
        }
        let pending: Vec<&String> =
            accepted.keys().filter(|id| !statuses.get(*id).is_some_and(gone_out)).collect();
        if pending.is_empty() {
            let at =
                |m: &Value, f: &str| m[f].as_str().and_then(|s| s.parse::<DateTime<Utc>>().ok());
            let waited = accepted
                .keys()
                .filter(|id| {
                    let m = &statuses[*id];
                    at(m, "created_at").is_some_and(|c| c < killed_wall)
                        && at(m, "sent_at").is_some_and(|s| s > killed_wall)
                })
                .count();
            eprintln!("{waited} messages accepted before the kill went out after it");
            break accepted
                .keys()
                .map(|id| (statuses[id]["whatsapp_id"].as_str().unwrap().to_string(), id.clone()))
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "{} accepted messages were never sent, e.g. {:?}",
            pending.len(),
            statuses.get(pending[0])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("every accepted message was sent {:?} after the kill", killed.elapsed());

    // Exactly once on the network, by WhatsApp message id (and by text, so that a second send
    // under another id is caught too).
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut by_text: HashMap<String, usize> = HashMap::new();
    for n in &instances {
        let v =
            call(&http, Method::GET, format!("{sim_url}/v1/sim/instances/{n}/outbox"), ADMIN, None)
                .await;
        for e in v["items"].as_array().unwrap() {
            if let Some(id) = e.get("id").and_then(Value::as_str) {
                *by_id.entry(id.to_string()).or_default() += 1;
                *by_text.entry(e["text"].as_str().unwrap_or_default().to_string()).or_default() +=
                    1;
            }
        }
    }
    for (wa, mid) in &wa_ids {
        let n = by_id.get(wa).copied().unwrap_or(0);
        assert_eq!(
            n, 1,
            "accepted message {mid} (send c{}, {wa}) reached the network {n} times",
            accepted[mid]
        );
    }
    for (id, n) in &by_id {
        assert_eq!(*n, 1, "{id} reached the network {n} times");
    }
    for (text, n) in &by_text {
        assert_eq!(*n, 1, "the text {text:?} reached the network {n} times");
    }
    let extra: Vec<&String> = by_id.keys().filter(|id| !wa_ids.contains_key(*id)).collect();
    assert!(
        extra.len() <= lost_calls.len(),
        "the network received {} messages nobody had accepted (only {} calls were cut)",
        extra.len(),
        lost_calls.len()
    );

    // The SSE client on a survivor saw, for every moved number, the drop (naming the dead
    // node) and then the reconnection.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let missing: Vec<String> = {
            let events = events.lock().unwrap();
            moved
                .iter()
                .filter(|id| {
                    let mine = events.iter().filter(|e| e["instance_id"] == id.as_str());
                    let mut dropped = false;
                    for e in mine {
                        if e["type"] == "instance.disconnected"
                            && e["data"]["reason"] == "transient"
                            && e["data"]["detail"].as_str().is_some_and(|d| d.contains(&victim_id))
                        {
                            dropped = true;
                        } else if dropped && e["type"] == "instance.connected" {
                            return false;
                        }
                    }
                    true
                })
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let events = events.lock().unwrap();
            let of: Vec<&Value> =
                events.iter().filter(|e| e["instance_id"] == missing[0].as_str()).collect();
            panic!(
                "the SSE stream on node-0 missed the disconnected/connected pair of {} moved \
                 numbers, e.g. {}: {of:#?}",
                missing.len(),
                missing[0]
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sse.abort();
    eprintln!(
        "SSE on node-0 saw instance.disconnected then instance.connected for all {} moved \
         numbers; the test took {:?}",
        moved.len(),
        started.elapsed()
    );
    drop(cluster);
    drop(schema);
}

/// A PNG of `len` bytes (signature and IHDR start, then filler).
fn png(len: usize, fill: u8) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    v.resize(len, fill);
    v
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

async fn upload(http: &reqwest::Client, base: &str, key: &str, bytes: &[u8]) -> Value {
    let boundary = "bzapper-cluster-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
         filename=\"p.png\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let res = http
        .post(format!("{base}/v1/media"))
        .bearer_auth(key)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 201, "upload: {v}");
    v
}

/// An upload lives on the node that received it; a send naming it, accepted or claimed by
/// another node, gets a copy from that node (`GET /v1/cluster/media/…`), and so does the
/// tenant's read-back on another node; a `DELETE` on any node removes it from every node
/// (`DELETE /v1/cluster/media/…`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_on_another_node_finds_the_upload_on_the_node_that_received_it() {
    let Some(base_url) = pg_test_url(false) else {
        eprintln!(
            "cluster media test SKIPPED: set BZAPPER_TEST_DATABASE_URL (for example \
             postgres://postgres@127.0.0.1:5432/test) to run it"
        );
        return;
    };
    let schema = PgSchema::create(&base_url).await;
    let db_url = schema.url();
    let tmp = tempfile::Builder::new().prefix("bzapper-cluster-media-").tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let key = Command::new(env!("CARGO_BIN_EXE_bzapper")).arg("keygen").output().unwrap();
    let master_key = String::from_utf8(key.stdout).unwrap().trim().to_string();
    let mut simnet = Command::new(env!("CARGO_BIN_EXE_bzapper"));
    simnet.args(["simnet", "--listen", "127.0.0.1:0"]);
    let sim_log = dir.join("simnet.log");
    let (sim, sim_url) = start_logged(simnet, "bZapper simnet listening on ", &sim_log);
    let mut cluster = Cluster { procs: vec![("simnet".into(), Some(sim), sim_log)] };
    let mut nodes = HashMap::new(); // node id → base URL
    for i in 0..2 {
        let (child, url, log) = start_node(i, &sim_url, &db_url, &master_key, &dir);
        cluster.procs.push((format!("node-{i}"), Some(child), log));
        nodes.insert(format!("node-{i}"), url);
    }
    let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(2)).build().unwrap();
    let any = nodes["node-0"].clone();

    let t =
        call(&http, Method::POST, format!("{any}/v1/tenants"), ADMIN, Some(json!({"name": "m"})))
            .await;
    let key = t["api_key"].as_str().unwrap().to_string();
    let limits = json!({"min_gap_ms": 0, "max_gap_ms": 20, "per_minute": 600, "per_hour": 6000, "per_day": 60000});
    let v = call(
        &http,
        Method::POST,
        format!("{any}/v1/instances"),
        &key,
        Some(json!({"name": "only", "limits": limits, "warming_days": 0})),
    )
    .await;
    let iid = v["id"].as_str().unwrap().to_string();
    call(&http, Method::GET, format!("{any}/v1/instances/{iid}/qr"), &key, None).await;
    call(
        &http,
        Method::POST,
        format!("{any}/v1/sim/instances/{iid}/scan"),
        ADMIN,
        Some(json!({"phone": "+5511900002000"})),
    )
    .await;

    // Both nodes live, the one number connected on one of them: the holder.
    let deadline = Instant::now() + Duration::from_secs(20);
    let holder = loop {
        let p = placement(&http, &any).await;
        let v = call(&http, Method::GET, format!("{any}/v1/instances/{iid}"), &key, None).await;
        if let (2, Some(h), "connected") =
            (p.live.len(), holders(&p).get(&iid), v["status"].as_str().unwrap_or_default())
        {
            break h.clone();
        }
        assert!(Instant::now() < deadline, "the number never connected: {v} {:?}", p.live);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let other = nodes.keys().find(|n| **n != holder).unwrap().clone();
    let (at_holder, at_other) = (nodes[&holder].clone(), nodes[&other].clone());
    eprintln!("{iid} is held by {holder}; uploads go to {other}");

    // Two uploads on the node without the number.
    let (a, b) = (png(300 * 1024, 1), png(200 * 1024, 2));
    let up_a = upload(&http, &at_other, &key, &a).await;
    let up_b = upload(&http, &at_other, &key, &b).await;

    // (a) accepted by the holder: it copies the upload when it accepts the send.
    let sent_a = call(
        &http,
        Method::POST,
        format!("{at_holder}/v1/messages"),
        &key,
        Some(json!({"to": "+5511988000001", "image": {"media_id": up_a["id"], "caption": "a"}})),
    )
    .await;
    // (b) accepted by the node that has it; the holder claims the send and copies the upload
    // when it prepares it.
    let sent_b = call(
        &http,
        Method::POST,
        format!("{at_other}/v1/messages"),
        &key,
        Some(json!({"to": "+5511988000002", "image": {"media_id": up_b["id"], "caption": "b"}})),
    )
    .await;

    let deadline = Instant::now() + Duration::from_secs(20);
    for m in [&sent_a, &sent_b] {
        let id = m["id"].as_str().unwrap();
        loop {
            let v = call(&http, Method::GET, format!("{any}/v1/messages/{id}"), &key, None).await;
            assert_ne!(v["status"], "failed", "{v}");
            if gone_out(&v) {
                break;
            }
            assert!(Instant::now() < deadline, "{id} was never sent: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let outbox =
        call(&http, Method::GET, format!("{sim_url}/v1/sim/instances/{iid}/outbox"), ADMIN, None)
            .await;
    for (caption, bytes) in [("a", &a), ("b", &b)] {
        let e = outbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["caption"] == caption)
            .unwrap_or_else(|| panic!("no image `{caption}` in the outbox: {outbox}"));
        assert_eq!(e["sha256"], hex_sha256(bytes), "{e}");
        assert_eq!(e["size"], bytes.len(), "{e}");
    }
    // The holder now has its own copies, same record.
    for up in [&up_a, &up_b] {
        let id = up["id"].as_str().unwrap();
        let v = call(&http, Method::GET, format!("{at_holder}/v1/media/{id}"), &key, None).await;
        assert_eq!(&v, up);
    }

    // An upload no node has is refused as before.
    for base in [&at_holder, &at_other] {
        let res = http
            .post(format!("{base}/v1/messages"))
            .bearer_auth(&key)
            .json(&json!({"to": "+5511988000003", "image": {"media_id": "med_none"}}))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let v: Value = res.json().await.unwrap();
        assert_eq!((status, v["error"]["code"].as_str()), (422, Some("unknown_media")), "{v}");
    }
    // The peer route: admin token only, 404 when the file is not there.
    let tenant = t["id"].as_str().unwrap();
    let url = format!("{at_other}/v1/cluster/media/{tenant}/{}", up_a["id"].as_str().unwrap());
    let res = http.get(&url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let res = http.get(&url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers().contains_key("x-bzapper-media"));
    assert_eq!(res.bytes().await.unwrap().as_ref(), a.as_slice());
    let res = http
        .get(format!("{at_other}/v1/cluster/media/{tenant}/med_none"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);

    // The tenant's own routes reach the upload on whichever node is asked: an upload on one
    // node is read back (record and bytes) on the other...
    let c = png(150 * 1024, 3);
    let up_c = upload(&http, &at_other, &key, &c).await;
    let cid = up_c["id"].as_str().unwrap().to_string();
    let v = call(&http, Method::GET, format!("{at_holder}/v1/media/{cid}"), &key, None).await;
    assert_eq!(v, up_c);
    let res = http
        .get(format!("{at_holder}/v1/media/{cid}/content"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(res.bytes().await.unwrap().as_ref(), c.as_slice());
    // ... and deleted there everywhere, the original and the copies: `a` is on both nodes (the
    // original on one, a copy on the holder), `c` too now; the delete goes to the node without
    // the original for `c` and with it for `a`.
    for (id, at) in [(cid.as_str(), &at_holder), (up_a["id"].as_str().unwrap(), &at_other)] {
        let res =
            http.delete(format!("{at}/v1/media/{id}")).bearer_auth(&key).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 204, "DELETE {id}");
        for base in [&at_holder, &at_other] {
            for path in [format!("{base}/v1/media/{id}"), format!("{base}/v1/media/{id}/content")] {
                let res = http.get(&path).bearer_auth(&key).send().await.unwrap();
                assert_eq!(res.status().as_u16(), 404, "{path} after the delete");
            }
            let res = http
                .post(format!("{base}/v1/messages"))
                .bearer_auth(&key)
                .json(&json!({"to": "+5511988000004", "image": {"media_id": id}}))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let v: Value = res.json().await.unwrap();
            assert_eq!((status, v["error"]["code"].as_str()), (422, Some("unknown_media")), "{v}");
        }
        // No node has it any more.
        let res =
            http.delete(format!("{at}/v1/media/{id}")).bearer_auth(&key).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 404, "DELETE {id} again");
    }
    // The peer delete route: admin token only, this node only, 404 when the file is not there.
    let bid = up_b["id"].as_str().unwrap();
    let url = format!("{at_other}/v1/cluster/media/{tenant}/{bid}");
    let res = http.delete(&url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let res = http.delete(&url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 204);
    let res = http.delete(&url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 404);
    // The holder's copy of `b` was not touched.
    let v = call(&http, Method::GET, format!("{at_holder}/v1/media/{bid}"), &key, None).await;
    assert_eq!(&v, &up_b);
    drop(cluster);
    drop(schema);
}
