//! Two gateway nodes on one PostgreSQL, one shared simulated network and one S3-compatible
//! media store (`--media-store s3://…`): a file uploaded on node A is sent from node B after A
//! was killed with SIGKILL, and the network receives it with its size and SHA-256 (the sim
//! driver hashes the file it sends and refuses one that differs from the upload's record).
//! On local disks the same send fails: B would ask A, which is gone, for the file.
//!
//! Needs `BZAPPER_TEST_DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`) and
//! `BZAPPER_TEST_S3_URL` (`http://KEY:SECRET@127.0.0.1:9000/bucket`, `.ci/s3.sh` starts a
//! server); skipped with a message when either is unset. Runs in a PostgreSQL schema and
//! under a bucket prefix of its own. The nodes' logs are printed when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

mod support;

use support::{pg_test_url, start_logged, tail, PgSchema};

const ADMIN: &str = "cluster-media-admin-token-0123456789";
const LEASE_SECS: u64 = 3;

/// The processes, killed (SIGKILL) on drop; their logs printed when the test is failing.
struct Procs(Vec<(String, Option<Child>, PathBuf)>);

impl Procs {
    fn kill(&mut self, name: &str) {
        let p = self.0.iter_mut().find(|p| p.0 == name).expect("a known process");
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

/// The S3 test server as `--media-store`, `--media-s3-endpoint` and credentials.
struct S3 {
    store: String,
    endpoint: String,
    key: String,
    secret: String,
}

fn s3_from_env(prefix: &str) -> Option<S3> {
    let url = url::Url::parse(&std::env::var("BZAPPER_TEST_S3_URL").ok()?).expect("an S3 URL");
    let bucket = url.path().trim_matches('/').to_string();
    let endpoint = format!("{}://{}:{}", url.scheme(), url.host_str()?, url.port()?);
    Some(S3 {
        store: format!("s3://{bucket}/{prefix}"),
        endpoint,
        key: url.username().to_string(),
        secret: url.password().unwrap_or_default().to_string(),
    })
}

fn start_node(
    name: &str,
    sim_url: &str,
    db_url: &str,
    key: &str,
    s3: &S3,
    dir: &Path,
) -> (Child, String, PathBuf) {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bzapper"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--sim-url", sim_url])
        .args(["--lease-seconds", &LEASE_SECS.to_string(), "--node-id", name])
        .args(["--media-store", &s3.store, "--media-s3-endpoint", &s3.endpoint])
        .arg("--data-dir")
        .arg(&data)
        .env("DATABASE_URL", db_url)
        .env("BZAPPER_MASTER_KEY", key)
        .env("BZAPPER_ADMIN_TOKEN", ADMIN)
        .env("AWS_ACCESS_KEY_ID", &s3.key)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret)
        .env_remove("BZAPPER_MEDIA_STORE")
        .env_remove("BZAPPER_ADVERTISE_URL")
        .env_remove("BZAPPER_NODE_ID");
    let log = dir.join(format!("{name}.log"));
    let (child, url) = start_logged(cmd, "bZapper listening on ", &log);
    (child, url, log)
}

async fn call(
    http: &reqwest::Client,
    method: Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, &url).bearer_auth(token).timeout(Duration::from_secs(20));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A PDF-looking file of `size` bytes.
fn pdf(size: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.4\n".to_vec();
    v.extend((0..size - v.len()).map(|i| (i * 7 % 251) as u8));
    v
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_taken_by_a_killed_node_is_sent_by_another_from_the_shared_store() {
    let Some(base_url) = pg_test_url(false) else {
        eprintln!("cluster media test SKIPPED: set BZAPPER_TEST_DATABASE_URL to run it");
        return;
    };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let prefix = format!("cluster-{}-{}", std::process::id(), nanos.as_nanos());
    let Some(s3) = s3_from_env(&prefix) else {
        eprintln!(
            "cluster media test SKIPPED: set BZAPPER_TEST_S3_URL (http://KEY:SECRET@host:port/bucket; \
             .ci/s3.sh starts a server) to run it"
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
    let mut procs = Procs(vec![("simnet".into(), Some(sim), sim_log)]);
    let (a, url_a, log_a) = start_node("node-a", &sim_url, &db_url, &master_key, &s3, &dir);
    procs.0.push(("node-a".into(), Some(a), log_a));
    let (b, url_b, log_b) = start_node("node-b", &sim_url, &db_url, &master_key, &s3, &dir);
    procs.0.push(("node-b".into(), Some(b), log_b));
    let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(2)).build().unwrap();

    // A tenant and one number, linked through node B.
    let (s, t) = call(
        &http,
        Method::POST,
        format!("{url_b}/v1/tenants"),
        ADMIN,
        Some(json!({"name": "acme"})),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    let key = t["api_key"].as_str().unwrap().to_string();
    let limits = json!({"min_gap_ms": 0, "max_gap_ms": 20, "per_minute": 600, "per_hour": 6000, "per_day": 60000});
    let (s, v) = call(
        &http,
        Method::POST,
        format!("{url_b}/v1/instances"),
        &key,
        Some(json!({"name": "n1", "limits": limits, "warming_days": 0})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let iid = v["id"].as_str().unwrap().to_string();
    let (s, v) =
        call(&http, Method::GET, format!("{url_b}/v1/instances/{iid}/qr"), &key, None).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = call(
        &http,
        Method::POST,
        format!("{url_b}/v1/sim/instances/{iid}/scan"),
        ADMIN,
        Some(json!({"phone": "+5511900002001"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");

    // A file larger than one part of a multipart upload, uploaded on node A.
    let file = pdf(6 * 1024 * 1024 + 123);
    let boundary = "bzapper-cluster-media-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"report.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let res = http
        .post(format!("{url_a}/v1/media"))
        .bearer_auth(&key)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let up: Value = res.json().await.unwrap();
    assert_eq!(up["sha256"], sha256_hex(&file), "{up}");
    let media_id = up["id"].as_str().unwrap().to_string();

    // Node A dies before the file is sent; B alone is left.
    procs.kill("node-a");

    // B reads the upload's record and bytes from the shared store: its record, its content,
    // and a send of it.
    let (s, v) = call(&http, Method::GET, format!("{url_b}/v1/media/{media_id}"), &key, None).await;
    assert_eq!((s, v["sha256"].as_str()), (200, Some(sha256_hex(&file).as_str())), "{v}");
    let res = http
        .get(format!("{url_b}/v1/media/{media_id}/content"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(sha256_hex(&res.bytes().await.unwrap()), sha256_hex(&file));

    // Connected (held by B, or moved to B once A's lease ran out) before the send.
    let deadline = Instant::now() + Duration::from_secs(LEASE_SECS * 2 + 20);
    loop {
        let (_, v) =
            call(&http, Method::GET, format!("{url_b}/v1/instances/{iid}"), &key, None).await;
        if v["status"] == "connected" {
            break;
        }
        assert!(Instant::now() < deadline, "the number never connected on B: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, v) = call(&http, Method::POST, format!("{url_b}/v1/messages"), &key,
        Some(json!({"to": "+5511988882001", "document": {"media_id": media_id}, "text": "the report"}))).await;
    assert_eq!(s, 202, "{v}");
    let mid = v["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(LEASE_SECS * 2 + 30);
    let sent = loop {
        let (_, v) =
            call(&http, Method::GET, format!("{url_b}/v1/messages/{mid}"), &key, None).await;
        if matches!(v["status"].as_str(), Some("sent" | "delivered" | "read" | "failed")) {
            break v;
        }
        assert!(Instant::now() < deadline, "the send never ended: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(sent["status"], "failed", "{sent}");

    // The network got the file: its size and SHA-256 (the driver hashed what it sent).
    let (s, out) =
        call(&http, Method::GET, format!("{url_b}/v1/sim/instances/{iid}/outbox"), ADMIN, None)
            .await;
    assert_eq!(s, 200, "{out}");
    let items = out["items"].as_array().unwrap();
    let entry = items
        .iter()
        .find(|e| e["id"] == sent["whatsapp_id"])
        .unwrap_or_else(|| panic!("the message is not in the outbox: {out}"));
    assert_eq!(entry["kind"], "document", "{entry}");
    assert_eq!(entry["size"], file.len() as u64, "{entry}");
    assert_eq!(entry["sha256"], sha256_hex(&file), "{entry}");
    assert_eq!(entry["caption"], "the report", "{entry}");
    // B kept no copy of its own: the bytes are in the bucket, and the send's local copy is gone.
    let spool = dir.join("node-b/media/.spool");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    assert!(!dir.join("node-b/media").join(t["id"].as_str().unwrap()).exists());
    drop(procs);
    drop(schema);
}
