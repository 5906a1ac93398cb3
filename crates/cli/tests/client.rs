//! The `bzapper` client subcommands against a real gateway (`bzapper serve --sim`, spawned):
//! every check runs the binary as an operator would and reads what it prints; the simulator API
//! plays the phone and tells what WhatsApp received.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;

const ADMIN: &str = "client-admin-token-0123456789";
const PHONE: &str = "+5511999999999";
/// Long enough for anything here on a loaded machine; every wait polls up to it.
const PATIENCE: Duration = Duration::from_secs(60);

/// A gateway with one tenant, killed when dropped.
struct Gateway {
    child: Child,
    url: String,
    key: String,
    dir: tempfile::TempDir,
}

impl Gateway {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (child, url) = support::serve_sim(&dir.path().join("data"), ADMIN);
        let tenant = admin(&url, "POST", "/v1/tenants", Some(json!({"name": "acme"})));
        let key = tenant["api_key"].as_str().unwrap().to_string();
        Gateway { child, url, key, dir }
    }

    /// Kills the gateway and starts it again on the same address and data dir.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let listen = self.url.strip_prefix("http://").unwrap().to_string();
        let (child, url) = serve_at(&self.dir.path().join("data"), &listen);
        assert_eq!(url, self.url);
        self.child = child;
    }

    /// `bzapper ARGS` pointed at this gateway with the tenant's key, and nothing from the
    /// environment of whoever runs the tests.
    fn bz(&self, args: &[&str]) -> Command {
        self.bz_as(&self.key, args)
    }

    fn bz_as(&self, token: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bzapper"));
        c.args(args)
            .env("BZAPPER_URL", &self.url)
            .env("BZAPPER_TOKEN", token)
            .env("NO_COLOR", "1")
            .env_remove("BZAPPER_ADMIN_TOKEN");
        c
    }

    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        admin(&self.url, method, path, body)
    }

    /// Polls the instance (through the API) until `status`.
    fn wait_for_status(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let v = call(&self.url, &self.key, "GET", &format!("/v1/instances/{id}"), None);
            if v["status"] == status {
                return v;
            }
            assert!(Instant::now() < deadline, "{id} never became {status}: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_at(data: &Path, listen: &str) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bzapper"));
    cmd.args(["serve", "--sim", "--listen", listen, "--data-dir"])
        .arg(data)
        .env("BZAPPER_ADMIN_TOKEN", ADMIN)
        // Receivers and media servers of the tests listen on loopback.
        .env("BZAPPER_OUTBOUND_ALLOW", "127.0.0.0/8,::1,localhost")
        .env_remove("BZAPPER_MASTER_KEY")
        .env_remove("DATABASE_URL");
    support::start(cmd, "bZapper listening on ")
}

fn admin(url: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    call(url, ADMIN, method, path, body)
}

/// One API call, outside the CLI (the test's own view of the gateway).
fn call(url: &str, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req =
            reqwest::Client::new().request(method, format!("{url}{path}")).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    })
}

/// What a finished command printed.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` to its end, failing the test (and killing it) if it takes longer than PATIENCE.
fn run(mut cmd: Command) -> Output {
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let status = wait(&mut child);
    Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() }
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

fn wait(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("bzapper did not finish within {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines a running child prints, as they come.
struct Lines(mpsc::Receiver<String>);

impl Lines {
    fn of(r: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines(rx)
    }

    /// The next line, or `None` at the end of the stream; fails the test after PATIENCE.
    fn next(&self) -> Option<String> {
        match self.0.recv_timeout(PATIENCE) {
            Ok(l) => Some(l),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("no line within {PATIENCE:?}"),
        }
    }

    /// Lines up to and including the first that satisfies `f`.
    fn until(&self, f: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let Some(l) = self.next() else { panic!("ended before the expected line: {seen:?}") };
            let done = f(&l);
            seen.push(l);
            if done {
                return seen;
            }
        }
    }
}

/// Kills a child left running when a test fails half-way.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(mut cmd: Command) -> (Reaper, Lines, Lines) {
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let out = Lines::of(child.stdout.take().unwrap());
    let err = Lines::of(child.stderr.take().unwrap());
    (Reaper(child), out, err)
}

fn is_qr_line(l: &str) -> bool {
    !l.is_empty() && l.chars().all(|c| matches!(c, '█' | '▀' | '▄' | ' '))
}

fn create(gw: &Gateway, name: &str) -> String {
    let out = run(gw.bz(&["instances", "create", "--name", name]));
    assert!(out.status.success(), "{}", out.stderr);
    let id = out.stdout.trim().to_string();
    assert!(!id.is_empty() && !id.contains(char::is_whitespace), "only the id: {:?}", out.stdout);
    id
}

#[test]
fn help_lists_the_client_commands_and_their_connection_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_bzapper")).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["instances", "send", "events", "cluster"] {
        assert!(text.contains(cmd), "{cmd} missing from --help");
    }
    for args in [&["instances", "list"][..], &["send"], &["events", "tail"], &["cluster"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_bzapper")).args(args).arg("--help").output();
        let text = String::from_utf8(out.unwrap().stdout).unwrap();
        for flag in ["--url", "BZAPPER_URL", "--token", "BZAPPER_TOKEN"] {
            assert!(text.contains(flag), "{flag} missing from {args:?} --help");
        }
    }
}

#[test]
fn a_number_is_created_linked_from_the_terminal_and_sends() {
    let gw = Gateway::start();

    let id = create(&gw, "sales-1");
    let list = run(gw.bz(&["instances", "list"]));
    assert!(list.status.success(), "{}", list.stderr);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", list.stdout);
    for col in ["ID", "NAME", "POOL", "STATUS", "REASON", "HEALTH", "SENT TODAY"] {
        assert!(lines[0].contains(col), "{col} missing: {}", lines[0]);
    }
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[..2], [id.as_str(), "sales-1"], "{}", lines[1]);
    assert!(row.contains(&"qr_pending"), "{}", lines[1]);

    // The QR code is drawn, the simulated phone scans it, and the command sees the link.
    let (mut qr, out, err) = spawn(gw.bz(&["instances", "qr", &id, "--timeout", "60"]));
    let drawn = out.until(|l| l.starts_with("Scan it"));
    let code: Vec<&String> = drawn.iter().filter(|l| is_qr_line(l)).collect();
    let width = code[0].chars().count();
    assert!(width >= 25, "{drawn:?}");
    assert!(code.iter().all(|l| l.chars().count() == width), "ragged: {drawn:?}");
    assert_eq!(code.len(), width.div_ceil(2), "two module rows per line: {drawn:?}");
    gw.admin("POST", &format!("/v1/sim/instances/{id}/scan"), Some(json!({"phone": PHONE})));
    let rest = out.until(|l| l.contains("is connected as"));
    assert!(rest.last().unwrap().contains(&format!("{id} is connected as {PHONE}")), "{rest:?}");
    assert!(out.next().is_none(), "it exits after the link");
    assert!(wait(&mut qr.0).success(), "{:?}", err.next());

    let list = run(gw.bz(&["instances", "list"]));
    let row = list.stdout.lines().find(|l| l.starts_with(&id)).unwrap().to_string();
    assert!(row.contains("connected") && row.contains(PHONE), "{row}");

    // Send through that number and wait: the simulated network has it.
    let sent = run(gw.bz(&[
        "send",
        "--to",
        "+55 11 98888-7777",
        "--text",
        "hello from the cli",
        "--instance",
        &id,
        "--wait",
        "--wait-timeout",
        "60",
    ]));
    assert!(sent.status.success(), "{}", sent.stderr);
    let lines: Vec<&str> = sent.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", sent.stdout);
    let message = call(&gw.url, &gw.key, "GET", &format!("/v1/messages/{}", lines[0]), None);
    assert_eq!(message["instance_id"], id.as_str());
    let (status, by) = lines[1].split_once(' ').unwrap();
    assert!(["sent", "delivered", "read"].contains(&status), "{}", lines[1]);
    assert_eq!(by, id);
    let outbox = gw.admin("GET", &format!("/v1/sim/instances/{id}/outbox"), None);
    let texts: Vec<&Value> =
        outbox["items"].as_array().unwrap().iter().filter(|e| e.get("text").is_some()).collect();
    assert_eq!(texts.len(), 1, "{outbox}");
    assert_eq!(texts[0]["text"], "hello from the cli");
    assert!(texts[0]["to"].as_str().unwrap().starts_with("5511988887777@"), "{outbox}");

    // The events so far, from the start of the log: the link is there, as a line and as JSON.
    let tail = run(gw.bz(&[
        "events",
        "tail",
        "--since",
        "0",
        "--types",
        "instance.connected",
        "--count",
        "1",
    ]));
    assert!(tail.status.success(), "{}", tail.stderr);
    let line = tail.stdout.trim();
    assert!(line.contains("instance.connected") && line.contains(&id), "{line}");
    assert!(line.contains(&format!("phone={PHONE}")), "{line}");
    let tail = run(gw.bz(&["events", "tail", "--since", "0", "--json", "--count", "3"]));
    let events: Vec<Value> = tail
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one envelope per line"))
        .collect();
    assert_eq!(events.len(), 3, "{}", tail.stdout);
    assert_eq!(events[0]["type"], "instance.qr");
    assert!(events.iter().all(|e| e["instance_id"] == id.as_str()));

    // Disconnect, connect again (the session is kept), delete.
    let out = run(gw.bz(&["instances", "disconnect", &id]));
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), format!("{id}  disconnected (stopped)"));
    let out = run(gw.bz(&["instances", "connect", &id]));
    assert!(out.status.success(), "{}", out.stderr);
    gw.wait_for_status(&id, "connected");
    let out = run(gw.bz(&["instances", "get", &id]));
    assert!(out.stdout.contains(&format!("phone:      {PHONE}")), "{}", out.stdout);
    let out = run(gw.bz(&["instances", "delete", &id]));
    assert!(out.status.success(), "{}", out.stderr);
    let list = run(gw.bz(&["instances", "list", "--json"]));
    let v: Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(v["items"], json!([]));
}

#[test]
fn events_tail_follows_live_and_resumes_after_a_gateway_restart() {
    let mut gw = Gateway::start();
    let id = create(&gw, "live-1");

    // Live: the tail is connected before the scan, and prints the link as it happens.
    let (mut tail, out, err) = spawn(gw.bz(&[
        "events",
        "tail",
        "--instance",
        &id,
        "--types",
        "instance.connected",
        "--count",
        "1",
    ]));
    err.until(|l| l.starts_with("following "));
    gw.admin("POST", &format!("/v1/sim/instances/{id}/scan"), Some(json!({"phone": PHONE})));
    let line = out.next().unwrap();
    assert!(line.contains("instance.connected") && line.contains(&id), "{line}");
    assert!(out.next().is_none());
    assert!(wait(&mut tail.0).success());

    // Across a restart: a number waiting for its QR gets a new code when the gateway comes
    // back; the tail reconnects by itself with Last-Event-ID and prints that one, and nothing
    // twice.
    let other = create(&gw, "waiting-1");
    let (mut tail, out, err) = spawn(gw.bz(&[
        "events",
        "tail",
        "--since",
        "0",
        "--instance",
        &other,
        "--types",
        "instance.qr",
        "--count",
        "2",
    ]));
    let first = out.next().unwrap();
    assert!(first.contains("instance.qr"), "{first}");
    let first_id: u64 = first.split_whitespace().next().unwrap().parse().unwrap();
    gw.restart();
    let second = out.next().unwrap();
    let second_id: u64 = second.split_whitespace().next().unwrap().parse().unwrap();
    assert!(second.contains("instance.qr") && second_id > first_id, "{first}\n{second}");
    assert!(wait(&mut tail.0).success());
    err.until(|l| l == format!("reconnected; resuming after event {first_id}"));
}

#[test]
fn failures_exit_non_zero_with_the_api_error_on_stderr() {
    let gw = Gateway::start();

    let out = run(gw.bz(&["instances", "get", "ins_does_not_exist"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("not_found"), "{}", out.stderr);
    assert!(out.stderr.contains("HTTP 404"), "{}", out.stderr);

    let out = run(gw.bz(&["send", "--to", "not a number", "--text", "x"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains("invalid_recipient") && out.stderr.contains("HTTP 422"),
        "{}",
        out.stderr
    );

    let out = run(gw.bz_as("not-a-key", &["instances", "list"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains("unauthorized"), "{}", out.stderr);

    let out = run(gw.bz(&["events", "tail", "--types", "instance.nope"]));
    assert_eq!(out.status.code(), Some(1), "a refused filter is not retried");
    assert!(out.stderr.contains("invalid_request"), "{}", out.stderr);

    let mut no_token = gw.bz(&["instances", "list"]);
    no_token.env_remove("BZAPPER_TOKEN");
    let out = run(no_token);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains("BZAPPER_TOKEN"), "{}", out.stderr);

    // Nothing listens there: the message names the URL.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let out = run(gw.bz(&["instances", "list", "--url", &closed]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr.contains(&format!("could not reach the gateway at {closed}")),
        "{}",
        out.stderr
    );
}

#[test]
fn cluster_shows_the_node_and_the_numbers_it_holds() {
    let gw = Gateway::start();
    let id = create(&gw, "held-1");

    let out = run(gw.bz_as(ADMIN, &["cluster"]));
    assert!(out.status.success(), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("answered by node "), "{}", out.stdout);
    assert!(lines[1].starts_with("NODE") && lines[1].contains("HEARTBEAT"), "{}", out.stdout);
    let node = lines.iter().skip(2).find(|l| l.contains(&id)).expect("the node holding it");
    assert!(node.contains(" * ") && node.contains("yes"), "{node}");

    let out = run(gw.bz(&["cluster"]));
    assert_eq!(out.status.code(), Some(1), "a tenant key may not see the cluster");
    assert!(out.stderr.contains("forbidden"), "{}", out.stderr);
}
