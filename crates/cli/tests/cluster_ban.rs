//! A temporary ban's end survives the node that saw the ban: two gateway nodes on one
//! PostgreSQL and one shared simulated network; the node holding the number sees the network
//! ban it for a few seconds and is killed with SIGKILL; the other node takes the number over
//! while it is still banned and connects it again when the ban ends (not before: the network
//! would refuse it, for good).
//!
//! Needs `BZAPPER_TEST_DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`); skipped
//! with a message when it is unset. The nodes' logs are printed when the test fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{json, Value};

mod support;

use support::{pg_test_url, start_logged, tail, PgSchema};

const ADMIN: &str = "cluster-ban-admin-token-0123456789";
const LEASE_SECS: u64 = 3;
/// Long enough for the survivor to take the number over (the lease time and a renewal round)
/// before the ban ends.
const BAN_SECS: i64 = 8;

/// The processes by name, killed (SIGKILL) on drop; their logs printed when the test fails.
struct Procs(Vec<(String, Option<Child>, PathBuf)>);

impl Procs {
    fn kill(&mut self, name: &str) {
        let p = self.0.iter_mut().find(|(n, ..)| n == name).expect("a started process");
        let mut c = p.1.take().expect("running");
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c, _) in &mut self.0 {
            if let Some(c) = c {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            for (name, _, log) in &self.0 {
                eprintln!("---- last lines of {name}'s log ----\n{}", tail(log, 60));
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
        .env_remove("BZAPPER_ADVERTISE_URL")
        .env_remove("BZAPPER_NODE_ID")
        .env_remove("BZAPPER_LEASE_SECONDS");
    let log = dir.join(format!("node-{i}.log"));
    let (child, url) = start_logged(cmd, "bZapper listening on ", &log);
    (child, url, log)
}

/// The live node holding the instance, per `GET /v1/cluster`.
async fn holder(http: &reqwest::Client, base: &str, iid: &str) -> Option<String> {
    let v = call(http, Method::GET, format!("{base}/v1/cluster"), ADMIN, None).await;
    v["nodes"].as_array()?.iter().find_map(|n| {
        let holds = n["instances"].as_array()?.iter().any(|i| i == iid);
        (holds && n["live"] == true).then(|| n["id"].as_str().unwrap_or_default().to_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_ban_ends_in_a_reconnect_on_the_node_that_took_the_number_over() {
    let Some(base_url) = pg_test_url(false) else {
        eprintln!(
            "cluster ban test SKIPPED: set BZAPPER_TEST_DATABASE_URL (for example \
             postgres://postgres@127.0.0.1:5432/test) to run it"
        );
        return;
    };
    // Declared first, dropped last: after the processes are gone.
    let schema = PgSchema::create(&base_url).await;
    let tmp = tempfile::Builder::new().prefix("bzapper-cluster-ban-").tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let key = Command::new(env!("CARGO_BIN_EXE_bzapper")).arg("keygen").output().unwrap();
    let master_key = String::from_utf8(key.stdout).unwrap().trim().to_string();
    let mut simnet = Command::new(env!("CARGO_BIN_EXE_bzapper"));
    simnet.args(["simnet", "--listen", "127.0.0.1:0"]);
    let sim_log = dir.join("simnet.log");
    let (sim, sim_url) = start_logged(simnet, "bZapper simnet listening on ", &sim_log);
    let mut procs = Procs(vec![("simnet".into(), Some(sim), sim_log)]);
    let mut nodes = HashMap::new(); // node id → base URL
    for i in 0..2 {
        let (child, url, log) = start_node(i, &sim_url, &schema.url(), &master_key, &dir);
        procs.0.push((format!("node-{i}"), Some(child), log));
        nodes.insert(format!("node-{i}"), url);
    }
    let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(2)).build().unwrap();
    let any = nodes["node-0"].clone();
    let t =
        call(&http, Method::POST, format!("{any}/v1/tenants"), ADMIN, Some(json!({"name": "b"})))
            .await;
    let key = t["api_key"].as_str().unwrap().to_string();
    let v =
        call(&http, Method::POST, format!("{any}/v1/instances"), &key, Some(json!({"name": "n"})))
            .await;
    let iid = v["id"].as_str().unwrap().to_string();
    call(&http, Method::GET, format!("{any}/v1/instances/{iid}/qr"), &key, None).await;
    let scan = json!({"phone": "+5511900003000"});
    call(&http, Method::POST, format!("{any}/v1/sim/instances/{iid}/scan"), ADMIN, Some(scan))
        .await;
    let instance = |base: String| {
        let (http, key, iid) = (&http, &key, &iid);
        async move { call(http, Method::GET, format!("{base}/v1/instances/{iid}"), key, None).await }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let (victim, survivor) = loop {
        let v = instance(any.clone()).await;
        if let (Some(h), "connected") =
            (holder(&http, &any, &iid).await, v["status"].as_str().unwrap_or_default())
        {
            let other = nodes.keys().find(|n| **n != h).unwrap().clone();
            break (h, other);
        }
        assert!(Instant::now() < deadline, "the number never connected: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let at_survivor = nodes[&survivor].clone();

    // The network bans it for a few seconds; its holder records the ban, then dies.
    let asked = Utc::now();
    let drop = json!({"reason": "banned", "ban_seconds": BAN_SECS});
    call(&http, Method::POST, format!("{any}/v1/sim/instances/{iid}/drop"), ADMIN, Some(drop))
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = instance(at_survivor.clone()).await;
        if v["status"] == "disconnected" && v["reason"] == "banned" {
            break;
        }
        assert!(Instant::now() < deadline, "the ban was not recorded: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    procs.kill(&victim);
    let killed = Instant::now();
    eprintln!("{victim}, holding {iid}, killed during its ban");

    // The survivor takes the number over while it is banned, and connects it when the ban
    // ends.
    let ends = asked + chrono::Duration::seconds(BAN_SECS);
    let deadline = killed + Duration::from_secs(BAN_SECS as u64 + LEASE_SECS + 15);
    let mut held_during_the_ban = false;
    let v = loop {
        let v = instance(at_survivor.clone()).await;
        let held_by = holder(&http, &at_survivor, &iid).await;
        if v["status"] == "disconnected" && held_by.as_deref() == Some(survivor.as_str()) {
            held_during_the_ban = true;
        }
        match v["status"].as_str() {
            Some("connected") => break v,
            // Still banned, or being connected again.
            Some("disconnected") => assert_eq!(v["reason"], "banned", "{v}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "not connected again after the ban ended: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let connected_at: DateTime<Utc> = v["connected_at"].as_str().unwrap().parse().unwrap();
    assert!(connected_at >= ends, "connected at {connected_at}, before the ban's end {ends}");
    assert!(held_during_the_ban, "{survivor} took the number over before the ban ended");
    assert_eq!(holder(&http, &at_survivor, &iid).await.as_deref(), Some(survivor.as_str()));
    eprintln!(
        "{survivor} connected {iid} again {:?} after the ban's end",
        (connected_at - ends).to_std().unwrap_or_default()
    );
}
