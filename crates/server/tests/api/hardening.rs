//! Issue 17, the server's side: connection limits and timeouts (on real sockets, with short
//! configured timeouts), revoked keys and deleted tenants ending their event streams (here and
//! on another node of a cluster), authentication before a cluster places a number, the error
//! shape for undecodable paths, and private modes for the database and media files.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bzapper_server::startup::config::ServerLimits;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::events::SseReader;
use crate::helpers::{config, id, TestApp, ADMIN};

fn limits(header_ms: u64, body_ms: u64, idle_ms: u64, max_connections: usize) -> ServerLimits {
    ServerLimits {
        header_read_timeout: Duration::from_millis(header_ms),
        body_read_timeout: Duration::from_millis(body_ms),
        idle_timeout: Duration::from_millis(idle_ms),
        max_connections,
    }
}

async fn spawn_limited(l: ServerLimits) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut c = config(dir.path());
    c.server_limits = l;
    TestApp::spawn_with(dir, c).await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap()
}

/// Everything the server sends until it closes the connection (or `wait` passes: `None`).
async fn read_to_close(tcp: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_connection_trickling_its_head_is_closed_after_the_header_timeout() {
    let app = spawn_limited(limits(300, 10_000, 10_000, 100)).await;
    let mut tcp = connect(&app).await;
    let opened = Instant::now();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // One header line every 50 ms, never the blank line that ends the head.
    let (mut rd, mut wr) = tcp.split();
    let trickle = async {
        for i in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if wr.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes()).await.is_err() {
                return;
            }
        }
    };
    let closed = async {
        let mut buf = [0u8; 256];
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => opened.elapsed(),
            Ok(_) => panic!("a head that never ended got an answer"),
        }
    };
    let after = tokio::select! {
        t = closed => t,
        _ = trickle => panic!("still open after 5 s of trickling"),
    };
    assert!(after >= Duration::from_millis(250), "closed too early: {after:?}");
    assert!(after < Duration::from_secs(2), "closed long after the 300 ms timeout: {after:?}");
    // A prompt client is served as before.
    let (s, _) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn a_silent_connection_and_an_idle_kept_alive_one_are_closed() {
    let app = spawn_limited(limits(300, 10_000, 600, 100)).await;
    // Connected, nothing sent: the head deadline.
    let mut silent = connect(&app).await;
    let t0 = Instant::now();
    assert_eq!(read_to_close(&mut silent, Duration::from_secs(3)).await.as_deref(), Some(""));
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(2), "{took:?}");

    // One request answered, then nothing: the idle timeout (longer than the head's).
    let mut kept = connect(&app).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let t1 = Instant::now();
    let rest = read_to_close(&mut kept, Duration::from_secs(4)).await;
    assert_eq!(rest.as_deref(), Some(""), "closed without another answer");
    let idle = t1.elapsed();
    assert!(idle >= Duration::from_millis(550), "the idle timeout, not the head's: {idle:?}");
    assert!(idle < Duration::from_secs(3), "{idle:?}");
}

#[tokio::test]
async fn a_stalled_body_gets_408_and_the_connection_closes() {
    let app = spawn_limited(limits(5_000, 300, 10_000, 100)).await;
    let mut tcp = connect(&app).await;
    let head = format!(
        "POST /v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let t0 = Instant::now();
    let answer = read_to_close(&mut tcp, Duration::from_secs(5)).await.expect("closed in time");
    let took = t0.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(3), "{took:?}");
    // Nothing was created from half a body.
    let (_, v) = app.get("/v1/tenants", ADMIN).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 0, "{v}");
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let app = spawn_limited(limits(10_000, 10_000, 10_000, 2)).await;
    let first = connect(&app).await;
    let _second = connect(&app).await;
    // Give the server time to accept both.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = connect(&app).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(700), third.read(&mut buf)).await;
    assert!(early.is_err(), "the third connection was served while two were open: {early:?}");
    drop(first);
    let answer = read_to_close(&mut third, Duration::from_secs(3)).await.expect("served");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn an_sse_stream_outlives_the_idle_and_read_timeouts() {
    let app = spawn_limited(limits(200, 200, 200, 100)).await;
    let (_, key) = app.tenant("acme").await;
    let mut sse = SseReader::open(&app, "?types=instance.*", &key, None).await;
    // Several idle timeouts pass with nothing to send.
    assert!(!sse.ends_within(Duration::from_millis(1200)).await, "the stream was cut");
    let iid = id(&app.instance(&key, "n1").await);
    let (_, qr) = sse.until("instance.qr").await;
    assert_eq!(qr["instance_id"], iid.as_str());
}

#[tokio::test]
async fn a_revoked_key_s_stream_ends_at_once_and_gets_nothing_after() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant("acme").await;
    let (s, second) = app.post(&format!("/v1/tenants/{tenant}/keys"), ADMIN, json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{second}");
    let (second_id, second_key) = (id(&second), second["api_key"].as_str().unwrap().to_string());
    let mut kept = SseReader::open(&app, "?types=instance.*", &key, None).await;
    let mut revoked = SseReader::open(&app, "?types=instance.*", &second_key, None).await;
    // Both streams are live.
    let first = id(&app.instance(&key, "before").await);
    assert_eq!(kept.until("instance.qr").await.1["instance_id"], first.as_str());
    assert_eq!(revoked.until("instance.qr").await.1["instance_id"], first.as_str());

    let (s, _) = app
        .call(Method::DELETE, &format!("/v1/tenants/{tenant}/keys/{second_id}"), Some(ADMIN), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // An event recorded after the revoke reaches the other key's stream only.
    let later = id(&app.instance(&key, "after").await);
    assert!(revoked.ends_within(Duration::from_secs(2)).await, "the revoked key's stream ended");
    assert_eq!(kept.until("instance.qr").await.1["instance_id"], later.as_str());
    // And the key is refused from now on, query token included.
    let (s, _) = app.get(&format!("/v1/events?access_token={second_key}"), "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_deleted_tenant_s_streams_end_at_once() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant("acme").await;
    let (_, other_key) = app.tenant("other").await;
    let mut gone = SseReader::open(&app, "", &key, None).await;
    let mut other = SseReader::open(&app, "?types=instance.*", &other_key, None).await;
    app.instance(&key, "n1").await;
    let (s, _) =
        app.call(Method::DELETE, &format!("/v1/tenants/{tenant}"), Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // Drain what the tenant's number recorded before its deletion, then the end.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "the deleted tenant's stream is still open");
        match gone.next(Duration::from_millis(200)).await {
            Some(_) => continue,
            None => break,
        }
    }
    assert!(gone.ends_within(Duration::from_secs(1)).await);
    // Another tenant's stream goes on.
    let iid = id(&app.instance(&other_key, "n2").await);
    assert_eq!(other.until("instance.qr").await.1["instance_id"], iid.as_str());
}

#[tokio::test]
async fn an_undecodable_path_answers_the_error_shape() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    for (method, path) in [
        (Method::GET, "/v1/instances/%FF"),
        (Method::POST, "/v1/instances/%FF/connect"),
        (Method::GET, "/v1/instances/%FF/groups/%FE"),
        (Method::GET, "/v1/messages/%FF"),
        (Method::GET, "/v1/webhooks/%C3%28"),
        (Method::DELETE, "/v1/media/%FF"),
    ] {
        let (s, v) = app.call(method.clone(), path, Some(&key), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}: {v}");
        assert_eq!(v["error"]["code"], "not_found", "{method} {path}: {v}");
    }
    let (s, v) = app.call(Method::DELETE, "/v1/tenants/%FF", Some(ADMIN), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_database_and_media_files_are_private_even_in_an_existing_data_dir() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    // A data dir the operator made, open to others, with a database an older version left 0644.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let app = TestApp::spawn_in(dir.clone()).await;
    let (_, key) = app.tenant("acme").await;
    let png = crate::media::png(100);
    let (s, v) = crate::media::upload(&app, &key, &[crate::media::file(&png)]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let db = dir.path().join("bzapper.db");
    for f in ["bzapper.db", "bzapper.db-wal", "bzapper.db-shm"] {
        let p = dir.path().join(f);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{f}");
        }
    }
    assert_eq!(mode(&db), 0o600);
    let media_files = walk(&dir.path().join("media"));
    assert!(media_files.iter().any(|(_, is_dir)| !is_dir), "the upload is on disk");
    for (p, is_dir) in &media_files {
        assert_eq!(mode(p), if *is_dir { 0o700 } else { 0o600 }, "{}", p.display());
    }
    app.stop().await;

    // Modes loosened behind its back are tightened at the next start.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    for (p, is_dir) in &media_files {
        let loose = if *is_dir { 0o755 } else { 0o644 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(loose)).unwrap();
    }
    let app = TestApp::spawn_in(dir.clone()).await;
    assert_eq!(mode(&db), 0o600);
    for (p, is_dir) in &media_files {
        if p.exists() {
            assert_eq!(mode(p), if *is_dir { 0o700 } else { 0o600 }, "{}", p.display());
        }
    }
    app.stop().await;
}

fn walk(root: &Path) -> Vec<(std::path::PathBuf, bool)> {
    let mut out = vec![(root.to_path_buf(), true)];
    let mut i = 0;
    while i < out.len() {
        let (p, is_dir) = out[i].clone();
        if is_dir {
            for e in std::fs::read_dir(&p).unwrap() {
                let e = e.unwrap();
                out.push((e.path(), e.file_type().unwrap().is_dir()));
            }
        }
        i += 1;
    }
    out
}

/// Two in-process nodes on one PostgreSQL schema. Needs `BZAPPER_TEST_DATABASE_URL`.
struct TwoNodes {
    a: TestApp,
    b: TestApp,
    admin: sqlx::PgConnection,
    schema: String,
}

impl TwoNodes {
    async fn start() -> Option<TwoNodes> {
        use sqlx::Connection;
        let Ok(url) = std::env::var("BZAPPER_TEST_DATABASE_URL") else {
            eprintln!("skipped: set BZAPPER_TEST_DATABASE_URL to run it");
            return None;
        };
        let schema = format!("bzh_{}_{:08x}", std::process::id(), rand::random::<u32>());
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut admin).await.unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let node_url = format!("{url}{sep}options=-c%20search_path%3D{schema}");
        let mut nodes = Vec::new();
        // One cluster, one master key.
        let master_key = bzapper_server::secrets::new_master_key_base64();
        for name in ["node-a", "node-b"] {
            let dir = Arc::new(tempfile::tempdir().unwrap());
            let mut c = config(dir.path());
            c.database_url = Some(node_url.clone());
            c.node_id = Some(name.into());
            c.master_key = Some(master_key.clone().into());
            nodes.push(TestApp::spawn_with(dir, c).await);
        }
        let b = nodes.pop().unwrap();
        let a = nodes.pop().unwrap();
        Some(TwoNodes { a, b, admin, schema })
    }

    async fn lease_node(&mut self, instance: &str) -> Option<String> {
        sqlx::query_scalar(&format!(
            "SELECT lease_node FROM {}.instances WHERE id = $1",
            self.schema
        ))
        .bind(instance)
        .fetch_one(&mut self.admin)
        .await
        .unwrap()
    }

    async fn set_lease(&mut self, instance: &str, node: Option<&str>) {
        let until = match node {
            Some(_) => format!("{}.bz_now_ms() + 600000", self.schema),
            None => "NULL".into(),
        };
        sqlx::query(&format!(
            "UPDATE {s}.instances SET lease_node = $2, lease_until = {until} WHERE id = $1",
            s = self.schema
        ))
        .bind(instance)
        .bind(node)
        .execute(&mut self.admin)
        .await
        .unwrap();
    }

    async fn stop(mut self) {
        use sqlx::Connection;
        self.b.stop().await;
        self.a.stop().await;
        crate::helpers::drop_schema(&mut self.admin, &self.schema).await;
        self.admin.close().await.unwrap();
    }
}

#[tokio::test]
async fn on_a_cluster_a_revoke_on_one_node_ends_streams_and_cached_keys_on_another() {
    let Some(n) = TwoNodes::start().await else { return };
    let (tenant, key) = n.a.tenant("acme").await;
    let (_, second) = n.a.post(&format!("/v1/tenants/{tenant}/keys"), ADMIN, json!({})).await;
    let (second_id, second_key) = (id(&second), second["api_key"].as_str().unwrap().to_string());
    // Node B has the key cached, and a stream open with it.
    let (s, _) = n.b.get("/v1/instances", &second_key).await;
    assert_eq!(s, StatusCode::OK);
    let mut on_b = SseReader::open(&n.b, "", &second_key, None).await;
    let mut tenant_on_b = SseReader::open(&n.b, "?types=instance.*", &key, None).await;

    let (s, _) = n
        .a
        .call(Method::DELETE, &format!("/v1/tenants/{tenant}/keys/{second_id}"), Some(ADMIN), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(on_b.ends_within(Duration::from_secs(3)).await, "node B's stream ended");
    // Node B refuses the key at once, not when its cache entry expires (30 s).
    let (s, _) = n.b.get("/v1/instances", &second_key).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Deleting the tenant on A ends its other stream on B.
    let (s, _) =
        n.a.call(Method::DELETE, &format!("/v1/tenants/{tenant}"), Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(tenant_on_b.ends_within(Duration::from_secs(3)).await, "node B's stream ended");
    n.stop().await;
}

#[tokio::test]
async fn on_a_cluster_a_number_is_placed_only_for_its_authenticated_tenant() {
    let Some(mut n) = TwoNodes::start().await else { return };
    let (_, key) = n.a.tenant("acme").await;
    let (_, stranger) = n.a.tenant("stranger").await;
    let iid = id(&n.a.instance(&key, "n1").await);
    // Nobody holds it (as after a node's death).
    n.set_lease(&iid, None).await;
    for (token, want) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("bzk_aaaaaaaaaaaaaaaaaaaa_wrong"), StatusCode::UNAUTHORIZED),
        (Some(stranger.as_str()), StatusCode::NOT_FOUND),
    ] {
        let (s, v) =
            n.b.call(Method::POST, &format!("/v1/instances/{iid}/connect"), token, None).await;
        assert_eq!(s, want, "{v}");
        assert_eq!(
            v["error"]["code"],
            if want == StatusCode::NOT_FOUND { "not_found" } else { "unauthorized" }
        );
        assert_ne!(n.lease_node(&iid).await.as_deref(), Some("node-b"), "B took the number");
    }
    // Held by A: B passes the authenticated call on, with its key, and returns A's answer.
    n.set_lease(&iid, Some("node-a")).await;
    let (s, v) = n.b.get(&format!("/v1/instances/{iid}/qr"), &key).await;
    assert_ne!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_ne!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let (s_direct, _) = n.a.get(&format!("/v1/instances/{iid}/qr"), &key).await;
    assert_eq!(s, s_direct, "B answers what A answers: {v}");
    assert_eq!(n.lease_node(&iid).await.as_deref(), Some("node-a"));
    let _: Value = v;
    n.stop().await;
}
