//! The harness of the wire tests: `bzapper simnet --wire` and `bzapper serve --sim-wire-url`
//! as child processes (the gateway with the REAL WhatsApp driver), driven through the
//! gateway's HTTP API only. Every wait is bounded by [`STEP`] and a failure shows the tail of
//! the gateway's log.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{self, start_logged};

pub const ADMIN: &str = "wire-admin-token-0123456789";
/// The longest any single step may take (pairing on the real client includes a grace period).
pub const STEP: Duration = Duration::from_secs(60);

/// Kills the children still running when the test ends (also on failure).
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The fake network and one gateway on it, with their data and logs in a temp dir.
pub struct Wire {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub log: PathBuf,
    pub wire_url: String,
    pub base: String,
    pub children: Children,
    pub http: reqwest::Client,
    /// The extra `serve` arguments, for restarts.
    serve_args: Vec<String>,
}

/// `bzapper serve --sim-wire-url URL [args]` on a free loopback port with `data` as its data
/// dir.
pub fn serve_wire(data: &Path, wire_url: &str, log: &Path, args: &[String]) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bzapper"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--sim-wire-url", wire_url, "--data-dir"])
        .arg(data)
        .args(args)
        .env("BZAPPER_ADMIN_TOKEN", ADMIN)
        // Receivers and media servers of the tests listen on loopback.
        .env("BZAPPER_OUTBOUND_ALLOW", "127.0.0.0/8,::1,localhost")
        .env_remove("BZAPPER_MASTER_KEY")
        .env_remove("BZAPPER_WA_URL")
        .env_remove("DATABASE_URL");
    start_logged(cmd, "bZapper listening on ", log)
}

impl Wire {
    /// Starts the fake, then the gateway on it.
    pub fn start() -> Wire {
        Wire::start_with(&[])
    }

    /// Like [`Wire::start`], with more arguments for `bzapper serve`.
    pub fn start_with(serve_args: &[&str]) -> Wire {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let log = dir.path().join("gateway.log");
        let mut fake = Command::new(env!("CARGO_BIN_EXE_bzapper"));
        fake.args(["simnet", "--wire", "--listen", "127.0.0.1:0"]);
        let (fake, wire_url) =
            start_logged(fake, "bZapper wire simnet listening on ", &dir.path().join("fake.log"));
        let mut children = Children(vec![fake]);
        let serve_args: Vec<String> = serve_args.iter().map(|a| a.to_string()).collect();
        let (gw, base) = serve_wire(&data, &wire_url, &log, &serve_args);
        children.0.push(gw);
        let http = reqwest::Client::new();
        Wire { dir, data, log, wire_url, base, children, http, serve_args }
    }

    /// Stops the gateway (SIGTERM) and starts it again on the same data dir.
    pub fn restart_gateway(&mut self) {
        let mut gw = self.children.0.pop().expect("the gateway runs");
        support::terminate(&mut gw);
        let (gw, base) = serve_wire(&self.data, &self.wire_url, &self.log, &self.serve_args);
        self.children.0.push(gw);
        self.base = base;
    }

    /// Kills the gateway with SIGKILL (no shutdown of any kind), then starts it again on the
    /// same data dir.
    pub fn kill_and_restart_gateway(&mut self) {
        let mut gw = self.children.0.pop().expect("the gateway runs");
        gw.kill().expect("SIGKILL");
        gw.wait().expect("the gateway ends");
        let (gw, base) = serve_wire(&self.data, &self.wire_url, &self.log, &self.serve_args);
        self.children.0.push(gw);
        self.base = base;
    }

    /// The ids of the messages the fake handed to the device of `phone` (digits) that it has
    /// not acknowledged yet (`GET /wire/devices/{phone}/inbound` of the fake).
    pub async fn unacked(&self, phone: &str) -> Vec<String> {
        let url = format!("{}/wire/devices/{phone}/inbound", self.wire_url);
        let v: Value = self.http.get(url).send().await.unwrap().json().await.unwrap();
        let ids = v["unacked"].as_array().unwrap_or_else(|| panic!("{v}"));
        ids.iter().map(|i| i.as_str().unwrap().to_string()).collect()
    }

    pub fn gateway_log(&self) -> String {
        support::tail(&self.log, 40)
    }

    /// Fails the test if the gateway or the fake panicked anywhere (a task's panic does not
    /// stop the process, so nothing else would show it).
    pub fn assert_no_panics(&self) {
        for log in [self.log.clone(), self.dir.path().join("fake.log")] {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(at) = text.find("panicked at") {
                let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                let end = text[at..].char_indices().nth(2000).map_or(text.len(), |(i, _)| at + i);
                panic!("{} has a panic:\n{}", log.display(), &text[start..end]);
            }
        }
    }

    /// `method path` on the gateway with a bearer token; (status, JSON body or null).
    pub async fn call(
        &self,
        method: Method,
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
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Polls `GET path` until `done` accepts its answer; panics with the last answer after
    /// [`STEP`].
    pub async fn until(
        &self,
        path: &str,
        token: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let (s, v) = self.get(path, token).await;
            if s == 200 && done(&v) {
                return v;
            }
            if started.elapsed() > STEP {
                panic!(
                    "no {what} within {STEP:?}; last answer {s}: {v}\ngateway log:\n{}",
                    self.gateway_log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new tenant; its API key.
    pub async fn tenant(&self, name: &str) -> String {
        let (s, t) = self.post("/v1/tenants", ADMIN, json!({"name": name})).await;
        assert_eq!(s, 201, "{t}");
        t["api_key"].as_str().unwrap().to_string()
    }

    /// A number with quick limits and no warming, linked by QR scan to `phone` and connected;
    /// its instance id.
    pub async fn linked_number(&self, key: &str, name: &str, phone: &str) -> String {
        let limits = json!({"min_gap_ms": 0, "max_gap_ms": 20, "per_minute": 60,
                            "per_hour": 600, "per_day": 6000});
        let (s, inst) = self
            .post("/v1/instances", key, json!({"name": name, "limits": limits, "warming_days": 0}))
            .await;
        assert_eq!(s, 201, "{inst}");
        let iid = inst["id"].as_str().unwrap().to_string();
        self.until(&format!("/v1/instances/{iid}/qr"), key, "QR code", |v| {
            v["code"].as_str().is_some_and(|c| !c.is_empty())
        })
        .await;
        let (s, scanned) = self
            .post(&format!("/v1/sim/instances/{iid}/scan"), ADMIN, json!({"phone": phone}))
            .await;
        assert_eq!(s, 200, "{scanned}");
        assert_eq!(scanned["phone"], phone, "{scanned}");
        self.until(&format!("/v1/instances/{iid}"), key, "connected after the scan", |v| {
            v["status"] == "connected"
        })
        .await;
        iid
    }

    /// `POST /v1/messages`, accepted; the gateway message id.
    pub async fn send(&self, key: &str, body: Value) -> String {
        let (s, m) = self.post("/v1/messages", key, body).await;
        assert_eq!(s, 202, "{m}");
        m["id"].as_str().unwrap().to_string()
    }

    /// The message once its status is one of `statuses`.
    pub async fn wait_message(&self, key: &str, id: &str, statuses: &[&str]) -> Value {
        self.until(&format!("/v1/messages/{id}"), key, &format!("message {id} {statuses:?}"), |v| {
            statuses.iter().any(|s| v["status"] == *s)
        })
        .await
    }

    /// What the fake received from the number, oldest first.
    pub async fn outbox(&self, iid: &str) -> Vec<Value> {
        let (s, v) = self.get(&format!("/v1/sim/instances/{iid}/outbox"), ADMIN).await;
        assert_eq!(s, 200, "{v}");
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// The outbox once it has an entry `found` accepts; that entry and the one before it.
    pub async fn outbox_entry(
        &self,
        iid: &str,
        what: &str,
        found: impl Fn(&Value) -> bool,
    ) -> (Value, Value) {
        let v = self
            .until(&format!("/v1/sim/instances/{iid}/outbox"), ADMIN, what, |v| {
                v["items"].as_array().is_some_and(|i| i.iter().any(&found))
            })
            .await;
        let items = v["items"].as_array().unwrap();
        let i = items.iter().position(&found).unwrap();
        (items[i].clone(), items[i.saturating_sub(1)].clone())
    }

    /// A contact writes to the number (`POST /v1/sim/instances/{iid}/inbound`); the answer.
    pub async fn inbound(&self, iid: &str, body: Value) -> Value {
        let (s, v) = self.post(&format!("/v1/sim/instances/{iid}/inbound"), ADMIN, body).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// Uploads `bytes` as multipart part `file`; (status, body).
    pub async fn upload(&self, key: &str, name: &str, mime: &str, bytes: &[u8]) -> (u16, Value) {
        let boundary = "bzapper-wire-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"{name}\"\r\nContent-Type: {mime}\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let res = self
            .http
            .post(format!("{}/v1/media", self.base))
            .bearer_auth(key)
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// The gateway's event stream (`GET /v1/events?{query}`), opened now.
    pub async fn events(&self, key: &str, query: &str) -> Events {
        let res = self
            .http
            .get(format!("{}/v1/events?{query}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        Events { stream: Box::pin(res.bytes_stream()), seen: String::new(), consumed: 0 }
    }
}

type ByteStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>>;

/// An open SSE stream, read event by event.
pub struct Events {
    stream: ByteStream,
    seen: String,
    /// How much of `seen` earlier calls have looked at.
    consumed: usize,
}

impl Events {
    /// The data of the next event (after those already returned) whose `data:` line contains
    /// `needle`; panics after [`STEP`].
    pub async fn next(&mut self, needle: &str, wire: &Wire) -> Value {
        let started = Instant::now();
        loop {
            if let Some(found) = self.find(needle) {
                return found;
            }
            let left = STEP.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                _ => panic!(
                    "no event with {needle}; the stream said:\n{}\ngateway log:\n{}",
                    &self.seen[self.consumed..],
                    wire.gateway_log()
                ),
            }
        }
    }

    /// Everything received so far (for checks on the order of events).
    pub async fn read_until(&mut self, wire: &Wire, done: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        while !done(&self.seen) {
            let left = STEP.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                _ => panic!(
                    "the stream never got there; it said:\n{}\ngateway log:\n{}",
                    self.seen,
                    wire.gateway_log()
                ),
            }
        }
        self.seen.clone()
    }

    fn find(&mut self, needle: &str) -> Option<Value> {
        let rest = &self.seen[self.consumed..];
        let mut offset = 0;
        for line in rest.split_inclusive('\n') {
            offset += line.len();
            if !line.ends_with('\n') {
                break; // not complete yet
            }
            if let Some(data) = line.strip_prefix("data:") {
                if data.contains(needle) {
                    self.consumed += offset;
                    return Some(serde_json::from_str(data.trim()).expect("event data is JSON"));
                }
            }
        }
        None
    }
}
