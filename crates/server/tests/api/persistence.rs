//! What survives a restart, and what the data dir reveals: sessions come back by themselves,
//! a tampered session affects only its own instance, a wrong master key changes nothing, and
//! no secret is stored in clear.

use std::sync::Arc;

use bzapper_server::Application;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::helpers::{config, id, TestApp};

fn read_all(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("bzapper.db") {
            out.push((name, std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_restart_keeps_a_connected_number_connected() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let iid = id(&app.connected_instance(&key, "n1", "+5511999990101").await);
    let pending = id(&app.instance(&key, "n2").await);
    let stopped = id(&app.connected_instance(&key, "n3", "+5511999990103").await);
    app.post(&format!("/v1/instances/{stopped}/disconnect"), &key, serde_json::json!({})).await;
    let dir = app.stop().await;

    let app = TestApp::spawn_in(dir).await;
    let v = app.wait_status(&key, &iid, "connected").await;
    assert_eq!(v["phone"], "+5511999990101");
    // A number waiting for its QR scan waits again; a stopped one stays stopped.
    app.wait_status(&key, &pending, "qr_pending").await;
    let (_, v) = app.get(&format!("/v1/instances/{stopped}"), &key).await;
    assert_eq!(
        (v["status"].as_str(), v["reason"].as_str()),
        (Some("disconnected"), Some("stopped"))
    );
}

#[tokio::test]
async fn a_tampered_session_stops_only_its_own_instance() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let good = id(&app.connected_instance(&key, "good", "+5511999990201").await);
    let bad = id(&app.connected_instance(&key, "bad", "+5511999990202").await);
    let dir = app.stop().await;

    // Flip one byte of the bad instance's sealed session.
    let mut conn = SqliteConnectOptions::new()
        .filename(dir.path().join("bzapper.db"))
        .connect()
        .await
        .unwrap();
    let (blob,): (Vec<u8>,) =
        sqlx::query_as("SELECT value FROM session_values WHERE instance_id = ?")
            .bind(&bad)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let mut tampered = blob.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    sqlx::query("UPDATE session_values SET value = ? WHERE instance_id = ?")
        .bind(&tampered)
        .bind(&bad)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let app = TestApp::spawn_in(dir).await;
    app.wait_status(&key, &good, "connected").await;
    let v = app.wait_status(&key, &bad, "disconnected").await;
    assert_eq!(v["reason"], "logged_out");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains("session") && detail.contains("tampered"), "{detail}");
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    app.connected_instance(&key, "n1", "+5511999990301").await;
    let dir = app.stop().await;
    let before = read_all(dir.path());

    let mut c = config(dir.path());
    c.master_key = Some(bzapper_server::secrets::new_master_key_base64().into());
    let err = match Application::build(c).await {
        Ok(_) => panic!("a wrong master key must be refused"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("master key"), "{err}");
    assert_eq!(read_all(dir.path()), before, "a refused start must not write");

    // The right key still works.
    let app = TestApp::spawn_in(dir).await;
    assert_eq!(app.get("/v1/instances", &key).await.0, reqwest::StatusCode::OK);
}

#[tokio::test]
async fn no_secret_is_stored_in_clear() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let (s, v) = app
        .post(
            "/v1/instances",
            &key,
            serde_json::json!({"name": "p", "proxy": "socks5://user:hunter2-proxy-pass@127.0.0.1:1080"}),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::CREATED);
    assert!(!v.to_string().contains("hunter2"), "credentials echoed: {v}");
    let iid = id(&v);
    // The phone scans the QR code the network showed.
    assert_eq!(app.get(&format!("/v1/instances/{iid}/qr"), &key).await.0, reqwest::StatusCode::OK);
    app.post(
        &format!("/v1/sim/instances/{iid}/scan"),
        crate::helpers::ADMIN,
        serde_json::json!({"phone": "+5511999990401"}),
    )
    .await;
    app.wait_status(&key, &iid, "connected").await;
    let dir: Arc<tempfile::TempDir> = app.stop().await;

    // The session's device token, read back through the store with the key, must not be on
    // disk in clear; neither may the proxy password or the API key.
    let store = bzapper_store::SqliteStore::open(
        &format!("sqlite://{}", dir.path().join("bzapper.db").display()),
        bzapper_store::Sealer::new(
            bzapper_store::MasterKey::from_base64(
                std::fs::read_to_string(dir.path().join("master.key")).unwrap().trim(),
            )
            .unwrap(),
        ),
    )
    .await
    .unwrap();
    use bzapper_store::SessionStore;
    let session = store.load_session_value(&iid, "sim").await.unwrap().expect("a stored session");
    store.close().await;
    let session: serde_json::Value = serde_json::from_slice(&session).unwrap();
    let token = session["device_token"].as_str().expect("the sim session has a device token");
    assert!(token.len() >= 16);

    let files = read_all(dir.path());
    assert!(!files.is_empty());
    for (name, bytes) in &files {
        for secret in [token.as_bytes(), b"hunter2-proxy-pass".as_slice(), key.as_bytes()] {
            assert!(!contains(bytes, secret), "{name} holds a secret in clear");
        }
    }
}
