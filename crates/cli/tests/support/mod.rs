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

/// `bzapper serve --sim` on a free loopback port with `data` as its data dir.
pub fn serve_sim(data: &Path, admin_token: &str) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bzapper"));
    cmd.args(["serve", "--sim", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("BZAPPER_ADMIN_TOKEN", admin_token)
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
        .env_remove("BZAPPER_MASTER_KEY")
        .env_remove("DATABASE_URL");
    start(cmd, "bZapper listening on ")
}
