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
