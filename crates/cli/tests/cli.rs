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
