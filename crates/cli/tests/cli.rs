//! The `bzapper` binary as an operator meets it: help, the default (real) driver, first start.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bzapper() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bzapper"));
    for v in [
        "BZAPPER_MASTER_KEY",
        "BZAPPER_ADMIN_TOKEN",
        "DATABASE_URL",
        "BZAPPER_SIM_URL",
        "BZAPPER_WA_URL",
    ] {
        c.env_remove(v);
    }
    c
}

#[test]
fn help_documents_every_option() {
    let out = bzapper().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "simnet", "keygen"] {
        assert!(text.contains(cmd), "{cmd} missing from --help");
    }
    let out = bzapper().args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--listen",
        "BZAPPER_LISTEN",
        "--data-dir",
        "BZAPPER_DATA_DIR",
        "--database-url",
        "DATABASE_URL",
        "--sim",
        "--sim-url",
        "BZAPPER_SIM_URL",
        "BZAPPER_MASTER_KEY",
        "BZAPPER_ADMIN_TOKEN",
        "--body-limit",
        "--wa-url",
        "BZAPPER_WA_VERSION",
        "--outbound-allow",
        "BZAPPER_OUTBOUND_ALLOW",
        "--log-format",
        "BZAPPER_LOG_FORMAT",
    ] {
        assert!(text.contains(opt), "{opt} missing from serve --help");
    }
}

#[test]
fn serve_uses_the_real_whatsapp_driver_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Nothing listens on port 9 of loopback: the driver must start and keep retrying.
    let mut child = bzapper()
        .args(["serve", "--listen", "127.0.0.1:0", "--wa-url", "ws://127.0.0.1:9/ws/chat"])
        .args(["--wa-version", "2.3000.1", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = lines
        .next()
        .and_then(|l| l.ok())
        .and_then(|l| l.strip_prefix("bZapper listening on http://").map(str::to_string))
        .expect("the listen address is printed");
    let ready = http_get(&format!("http://{addr}/readyz"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready.contains("\"driver\":\"whatsapp\""), "{ready}");

    let bad = bzapper().args(["serve", "--wa-version", "2.x"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a version"));
}

#[test]
fn a_bad_outbound_allow_entry_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let bad = bzapper()
        .args(["serve", "--sim", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--outbound-allow", "127.0.0.1,10.0.0.0/33"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("`10.0.0.0/33` is not a host name, an IP address or a CIDR range"),
        "{err}"
    );
    let bad = bzapper()
        .args(["serve", "--sim", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("BZAPPER_OUTBOUND_ALLOW", "http://hooks.internal")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`http://hooks.internal`"));
}

/// A GET over a plain TCP socket (keeps an HTTP client out of this test's dependencies).
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn keygen_prints_a_32_byte_key() {
    let out = bzapper().arg("keygen").output().unwrap();
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap();
    assert_eq!(key.trim().len(), 44, "{key}");
}

#[test]
fn the_first_start_creates_private_secrets_and_prints_the_token_path() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = bzapper()
        .args(["serve", "--sim", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut token_path = None;
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(p) = line.strip_prefix("admin token generated into ") {
            token_path = Some(p.to_string());
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let token_path = token_path.expect("the token path is printed");
    for f in [token_path.as_str(), data.join("master.key").to_str().unwrap()] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    assert!(data.join("bzapper.db").exists());
}

/// `--log-format json`: every line on stdout is a JSON object with the usual fields, requests
/// are logged inside their span with the URI redacted, and the bearer key is in no line.
#[test]
fn json_logs_are_one_object_per_line_and_never_show_a_key() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let token = "json-log-admin-token-0123456789";
    let mut child = bzapper()
        .args(["serve", "--sim", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("BZAPPER_LOG_FORMAT", "json")
        .env("BZAPPER_ADMIN_TOKEN", token)
        // Requests are logged at debug level.
        .env("RUST_LOG", "info,bzapper_server=debug,tower_http=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let addr = loop {
        let line = lines.next().expect("the gateway logs its address").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        seen.push(line);
        if let Some(a) =
            v["message"].as_str().and_then(|m| m.strip_prefix("bZapper listening on http://"))
        {
            break a.to_string();
        }
    };
    // The key in the query string (as `GET /v1/events` takes it) and in the header.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /v1/tenants?access_token={token}&limit=1 HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The response is logged once it is written: read until its line arrives.
    let finished = loop {
        let line = lines.next().expect("the request is logged").unwrap();
        seen.push(line.clone());
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        if v["message"] == "finished processing request" {
            break v;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    seen.extend(lines.map_while(Result::ok));
    let stderr = err.join().unwrap();

    for line in &seen {
        let v: serde_json::Value = serde_json::from_str(line).expect("every line is JSON");
        for field in ["timestamp", "level", "target", "message"] {
            assert!(v.get(field).is_some(), "no `{field}` in {line}");
        }
        assert!(!line.contains(token), "the key was logged: {line}");
    }
    assert!(!stderr.contains(token), "the key was logged: {stderr}");
    assert_eq!(finished["level"], "DEBUG");
    assert_eq!(finished["status"], 200);
    assert_eq!(finished["span"]["name"], "request");
    assert_eq!(finished["span"]["method"], "GET");
    assert_eq!(finished["span"]["uri"], "/v1/tenants?access_token=REDACTED&limit=1");
}

/// `bzapper healthcheck` (a container's HEALTHCHECK): 0 with a ready gateway, 1 without one.
#[test]
fn healthcheck_exits_0_when_the_gateway_is_ready_and_1_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = bzapper()
        .args(["serve", "--sim", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines
        .next()
        .and_then(|l| l.ok())
        .and_then(|l| l.strip_prefix("bZapper listening on ").map(str::to_string))
        .expect("the listen address is printed");
    let ok = bzapper().args(["healthcheck", "--url", &url]).output().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("\"status\":\"ok\""));

    // Nothing listens there any more.
    let down =
        bzapper().args(["healthcheck", "--url", &url, "--timeout-secs", "2"]).output().unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("/readyz did not answer"));
}
