//! The processes of a fault world: the simulated network (its own process, outliving every
//! gateway) and the gateway processes, each on a fixed loopback port so that a restarted one
//! is found where it was. Every start writes a fresh log file next to the data dirs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::support::{start_logged, tail};

/// The admin token of every fault world.
pub const ADMIN: &str = "fault-admin-token-0123456789";

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// How to start one gateway process again and again.
#[derive(Clone, Debug)]
pub struct GatewaySpec {
    pub name: String,
    pub port: u16,
    pub data: PathBuf,
    pub sim_url: String,
    /// `None`: SQLite in the data dir.
    pub database_url: Option<String>,
    pub master_key: Option<String>,
    /// `--lease-seconds` and `--node-id` of a cluster node.
    pub node: Option<(u64, String)>,
}

impl GatewaySpec {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(crate::support::bzapper_bin());
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--sim-url", &self.sim_url, "--data-dir"])
            .arg(&self.data)
            .env("BZAPPER_ADMIN_TOKEN", ADMIN)
            // The fault run's receivers listen on loopback.
            .env("BZAPPER_OUTBOUND_ALLOW", "127.0.0.0/8,::1,localhost")
            .env_remove("BZAPPER_ADVERTISE_URL")
            .env_remove("BZAPPER_NODE_ID")
            .env_remove("BZAPPER_LEASE_SECONDS");
        match &self.database_url {
            Some(u) => cmd.env("DATABASE_URL", u),
            None => cmd.env_remove("DATABASE_URL"),
        };
        match &self.master_key {
            Some(k) => cmd.env("BZAPPER_MASTER_KEY", k),
            None => cmd.env_remove("BZAPPER_MASTER_KEY"),
        };
        if let Some((lease, id)) = &self.node {
            cmd.args(["--lease-seconds", &lease.to_string(), "--node-id", id]);
        }
        cmd
    }
}

/// A gateway process, started again after each kill; killed (SIGKILL) when dropped.
pub struct Gateway {
    pub spec: GatewaySpec,
    child: Option<Child>,
    starts: usize,
    logs: PathBuf,
}

impl Gateway {
    pub fn start(spec: GatewaySpec, logs: &Path) -> Gateway {
        std::fs::create_dir_all(&spec.data).unwrap();
        let mut g = Gateway { spec, child: None, starts: 0, logs: logs.to_path_buf() };
        g.restart();
        g
    }

    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    /// `kill -9`, and waits for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the process (again) and waits until it listens. A killed cluster node's id
    /// stays taken until its lease runs out, and its port may still be held for a moment:
    /// a start refused for either is tried again, for up to 20 s.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.spec.name);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let log = self.log_path();
            self.starts += 1;
            match start_quietly(self.spec.command(), "bZapper listening on ", &log) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(250));
                }
                Err(e) => panic!("{} could not start again: {e}", self.spec.name),
            }
        }
    }

    /// The log of the next start: `<name>.log`, then `<name>.<n>.log`.
    fn log_path(&self) -> PathBuf {
        match self.starts {
            0 => self.logs.join(format!("{}.log", self.spec.name)),
            n => self.logs.join(format!("{}.{n}.log", self.spec.name)),
        }
    }

    /// Every log this gateway wrote, oldest first.
    pub fn log_paths(&self) -> Vec<PathBuf> {
        (0..self.starts)
            .map(|n| match n {
                0 => self.logs.join(format!("{}.log", self.spec.name)),
                n => self.logs.join(format!("{}.{n}.log", self.spec.name)),
            })
            .collect()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `bzapper simnet`, killed when dropped.
pub struct SimNet {
    pub url: String,
    child: Child,
}

impl SimNet {
    pub fn start(logs: &Path) -> SimNet {
        let mut cmd = Command::new(crate::support::bzapper_bin());
        cmd.args(["simnet", "--listen", "127.0.0.1:0"]);
        let (child, url) =
            start_logged(cmd, "bZapper simnet listening on ", &logs.join("simnet.log"));
        SimNet { url, child }
    }
}

impl Drop for SimNet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh master key from `bzapper keygen` (cluster nodes share one).
pub fn master_key() -> String {
    let out = Command::new(crate::support::bzapper_bin()).arg("keygen").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `url` with one more query parameter.
pub fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// Ends the PostgreSQL connections whose `application_name` starts with `prefix`, from an
/// administrator's own connection; answers how many were ended.
pub async fn pg_terminate(admin_url: &str, prefix: &str) -> Result<i64, String> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(admin_url).await.map_err(|e| e.to_string())?;
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name LIKE $1 || '%' AND pid <> pg_backend_pid()) ended",
    )
    .bind(prefix)
    .fetch_one(&mut conn)
    .await
    .map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(n)
}

/// Like `support::start_logged`, but a process that ends before it listens is an `Err` with
/// the end of its log, not a panic.
fn start_quietly(mut cmd: Command, prefix: &str, log: &Path) -> Result<Child, String> {
    use std::io::{BufRead, BufReader, Write as _};
    use std::process::Stdio;
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info,sqlx=warn".into());
    let mut file = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(file.try_clone().map_err(|e| e.to_string())?)
        .env("RUST_LOG", level)
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.wait();
            return Err(tail(log, 5));
        };
        let _ = writeln!(file, "{line}");
        if line.starts_with(prefix) {
            break;
        }
    }
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = writeln!(file, "{line}");
        }
    });
    Ok(child)
}
