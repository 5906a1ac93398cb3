//! The real WhatsApp driver's connect path, offline: the gateway's websocket URL points at a
//! loopback port that refuses, or at a listener that accepts and hangs up. Either way the
//! number shows `connecting` with reason `transient`, keeps retrying, and the gateway stays up.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bzapper_server::DriverKind;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{config, TestApp};

async fn real_driver_app(ws_url: String) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut c = config(dir.path());
    c.driver = DriverKind::WhatsApp;
    c.wa_url = Some(ws_url);
    // No version fetch over the internet.
    c.wa_version = Some((2, 3000, 1_000_000_000));
    TestApp::spawn_with(dir, c).await
}

fn is_transient(v: &Value) -> bool {
    v["status"] == "connecting" && v["reason"] == "transient"
}

#[tokio::test]
async fn a_refused_dial_shows_connecting_transient_and_the_gateway_stays_up() {
    // Bind then drop: the port is closed, so every dial is refused at once.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = real_driver_app(format!("ws://127.0.0.1:{port}/ws/chat")).await;
    let (_, key) = app.tenant("acme").await;
    let inst = app.instance(&key, "real-1").await;
    let id = inst["id"].as_str().unwrap();
    let v = app.wait_for(&key, id, "a transient drop", is_transient).await;
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains("could not reach WhatsApp"), "{detail}");

    // Sending finds no connected number: the API says so instead of failing.
    let (s, body) =
        app.post("/v1/messages", &key, json!({"to": "+5511999990001", "text": "hi"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "no_number_available");

    // Disconnect, reconnect, delete: every operator command still works.
    let (s, v) = app.post(&format!("/v1/instances/{id}/disconnect"), &key, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["reason"], "stopped");
    let (s, _) = app.post(&format!("/v1/instances/{id}/connect"), &key, json!({})).await;
    assert_eq!(s, StatusCode::OK);
    app.wait_for(&key, id, "transient again", is_transient).await;
    let (s, _) =
        app.call(reqwest::Method::DELETE, &format!("/v1/instances/{id}"), Some(&key), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.get("/healthz", &key).await;
    assert_eq!(s, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn a_listener_that_hangs_up_is_retried_with_backoff() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU32::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            drop(sock); // hang up before the websocket upgrade
        }
    });
    let app = real_driver_app(format!("ws://{addr}/ws/chat")).await;
    let (_, key) = app.tenant("acme").await;
    let inst = app.instance(&key, "real-2").await;
    let id = inst["id"].as_str().unwrap();
    app.wait_for(&key, id, "a transient drop", is_transient).await;

    // The library's backoff is 1 s, 1 s, 2 s …: within 6 s it dials at least three times.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(8);
    while accepted.load(Ordering::SeqCst) < 3 {
        assert!(tokio::time::Instant::now() < deadline, "the driver stopped retrying");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let v = app.wait_for(&key, id, "still transient", is_transient).await;
    assert!(v["detail"].as_str().unwrap().contains("could not reach WhatsApp"), "{v}");
    server.abort();
    app.stop().await;
}
