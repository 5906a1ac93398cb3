//! Spawning the gateway for a test and talking to it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bzapper_server::{Application, Config, DriverKind};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN: &str = "test-admin-token-0123456789";

pub struct TestApp {
    pub base: String,
    pub dir: Arc<TempDir>,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

pub fn config(dir: &Path) -> Config {
    let mut c = Config::new(dir);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.driver = DriverKind::Sim;
    c.admin_token = Some(ADMIN.into());
    // The tests' media servers and webhook receivers listen on loopback, which the outbound
    // guard refuses unless allowed.
    c.outbound_allow = LOOPBACK.parse().unwrap();
    c
}

/// `--outbound-allow` for tests whose receivers listen on this machine.
pub const LOOPBACK: &str = "127.0.0.0/8,::1,localhost";

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_in(Arc::new(tempfile::tempdir().unwrap())).await
    }

    pub async fn spawn_in(dir: Arc<TempDir>) -> TestApp {
        let c = config(dir.path());
        Self::spawn_with(dir, c).await
    }

    pub async fn spawn_with(dir: Arc<TempDir>, config: Config) -> TestApp {
        let app = Application::build(config).await.expect("the app builds");
        let base = format!("http://{}", app.local_addr());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            app.run(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestApp {
            base,
            dir,
            http: reqwest::Client::new(),
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops the gateway gracefully and waits until it has closed its store.
    pub async fn stop(mut self) -> Arc<TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap();
        }
        self.dir.clone()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Creates a tenant; returns (tenant id, API key).
    pub async fn tenant(&self, name: &str) -> (String, String) {
        let (s, v) = self.post("/v1/tenants", ADMIN, json!({"name": name})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (v["id"].as_str().unwrap().into(), v["api_key"].as_str().unwrap().into())
    }

    pub async fn instance(&self, key: &str, name: &str) -> Value {
        let (s, v) = self.post("/v1/instances", key, json!({"name": name})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    /// Polls the instance until `pred` holds (10 s at most).
    pub async fn wait_for(
        &self,
        key: &str,
        id: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (s, v) = self.get(&format!("/v1/instances/{id}"), key).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            if pred(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; last: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_status(&self, key: &str, id: &str, status: &str) -> Value {
        self.wait_for(key, id, status, |v| v["status"] == status).await
    }

    /// Creates an instance and links it with the simulated phone; returns it connected.
    pub async fn connected_instance(&self, key: &str, name: &str, phone: &str) -> Value {
        let inst = self.instance(key, name).await;
        let id = inst["id"].as_str().unwrap();
        // Wait for the first QR code: the phone scans what the network showed.
        let (s, v) = self.get(&format!("/v1/instances/{id}/qr"), key).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = self
            .post(&format!("/v1/sim/instances/{id}/scan"), ADMIN, json!({"phone": phone}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        self.wait_status(key, id, "connected").await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

pub fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// Limits that keep the anti-ban pacing but make tests quick: no gap between sends.
pub fn fast_limits() -> Value {
    json!({"min_gap_ms": 0, "max_gap_ms": 20, "per_minute": 60, "per_hour": 600, "per_day": 6000})
}

impl TestApp {
    /// A connected number with quick limits, in `pool`.
    pub async fn fast_number(&self, key: &str, name: &str, phone: &str, pool: &str) -> String {
        let (s, v) = self
            .post(
                "/v1/instances",
                key,
                json!({"name": name, "pool": pool, "limits": fast_limits(), "warming_days": 0}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let iid = id(&v);
        let (s, v) = self.get(&format!("/v1/instances/{iid}/qr"), key).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = self
            .post(&format!("/v1/sim/instances/{iid}/scan"), ADMIN, json!({"phone": phone}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        self.wait_status(key, &iid, "connected").await;
        iid
    }

    /// Polls a message until its status is one of `statuses` (20 s at most).
    pub async fn wait_message(&self, key: &str, mid: &str, statuses: &[&str]) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (s, v) = self.get(&format!("/v1/messages/{mid}"), key).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            if statuses.iter().any(|st| v["status"] == *st) {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "message {mid} stuck: {v}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn outbox(&self, iid: &str) -> Vec<Value> {
        let (s, v) = self.get(&format!("/v1/sim/instances/{iid}/outbox"), ADMIN).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["items"].as_array().unwrap().clone()
    }
}

/// The tenant's event log, read from the store of a stopped gateway's data dir.
pub async fn event_log(dir: &Path, tenant_id: &str) -> Vec<bzapper_store::Event> {
    use bzapper_store::EventLog;
    let key = std::fs::read_to_string(dir.join("master.key")).unwrap();
    let store = bzapper_store::SqliteStore::open(
        &format!("sqlite://{}", dir.join("bzapper.db").display()),
        bzapper_store::Sealer::new(bzapper_store::MasterKey::from_base64(key.trim()).unwrap()),
    )
    .await
    .unwrap();
    let events = store.events_after(tenant_id, 0, 10_000).await.unwrap();
    store.close().await;
    events
}

/// Where a test's gateway keeps media: its data dir, or the S3-compatible test server
/// (`BZAPPER_TEST_S3_URL`, keys under a prefix of the test's own).
#[derive(Clone)]
pub enum Backend {
    Local,
    S3(bzapper_server::media::S3Settings),
}

impl Backend {
    /// The S3 test server; `None`, with a message, when `BZAPPER_TEST_S3_URL` is unset.
    pub fn s3(test: &str) -> Option<Backend> {
        let Ok(url) = std::env::var("BZAPPER_TEST_S3_URL") else {
            eprintln!(
                "{test} on S3 SKIPPED: set BZAPPER_TEST_S3_URL \
                 (http://KEY:SECRET@host:port/bucket; .ci/s3.sh starts a server) to run it"
            );
            return None;
        };
        let prefix = format!("api-{}", rand_suffix());
        let s = bzapper_server::media::S3Settings::from_endpoint_url(&url, &prefix).unwrap();
        Some(Backend::S3(s))
    }

    /// The test configuration with this backend's media store.
    pub fn config(&self, dir: &Path) -> Config {
        let mut c = config(dir);
        if let Backend::S3(s) = self {
            c.media_storage = bzapper_server::media::MediaStorage::S3(s.clone());
        }
        c
    }

    pub async fn spawn(&self) -> TestApp {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let c = self.config(dir.path());
        TestApp::spawn_with(dir, c).await
    }

    /// Every stored media object (files, records, cached received files; on the local disk
    /// also files being written), by path or key.
    pub async fn media_objects(&self, app: &TestApp) -> Vec<String> {
        match self {
            Backend::Local => {
                fn walk(dir: &Path, out: &mut Vec<String>) {
                    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                        if e.path().is_dir() {
                            walk(&e.path(), out);
                        } else {
                            out.push(e.path().display().to_string());
                        }
                    }
                }
                let mut out = Vec::new();
                walk(&app.dir.path().join("media"), &mut out);
                out
            }
            Backend::S3(s) => {
                use bzapper_server::media::blobs::Blobs;
                let blobs = bzapper_server::media::blobs::s3::S3Blobs::new(s).unwrap();
                blobs.list("").await.unwrap().into_iter().map(|m| m.key).collect()
            }
        }
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{nanos:x}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Runs the test function `$name(Backend)` twice: `$name::local` on the data dir and
/// `$name::s3` on the S3 test server (skipped with a message without one).
#[macro_export]
macro_rules! on_both_media_stores {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn local() {
                super::$name($crate::helpers::Backend::Local).await
            }

            #[tokio::test]
            async fn s3() {
                let Some(b) = $crate::helpers::Backend::s3(stringify!($name)) else { return };
                super::$name(b).await
            }
        }
    )+};
}

/// Drops a test's PostgreSQL schema. A stopped node's last queries may still hold a lock on
/// one of its tables for a moment (a task of the node finishing its statement after the stop
/// returned), and `DROP SCHEMA … CASCADE` then meets them in a deadlock that PostgreSQL breaks
/// by failing the drop: the drop is tried again, a few times.
pub async fn drop_schema(admin: &mut sqlx::PgConnection, schema: &str) {
    let mut tries = 0;
    loop {
        match sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&mut *admin).await {
            Ok(_) => return,
            Err(e) if tries < 10 && e.to_string().contains("deadlock") => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("dropping the test schema {schema}: {e}"),
        }
    }
}
