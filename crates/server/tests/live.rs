//! A live smoke test against the real WhatsApp network: link a real phone by QR, send one
//! message, wait for WhatsApp's ack. It needs internet and a person with a phone, so it runs
//! only when `BZAPPER_LIVE=1` is set (see docs/whatsapp.md):
//!
//! ```sh
//! BZAPPER_LIVE=1 BZAPPER_LIVE_TO=+5511999999999 \
//!   cargo test -p bzapper-server --test live -- --nocapture
//! ```

use std::time::Duration;

use bzapper_server::{Application, Config, DriverKind};
use serde_json::{json, Value};

const ADMIN: &str = "live-admin-token-0123456789";

#[tokio::test]
async fn link_a_real_phone_and_send_one_message() {
    if std::env::var("BZAPPER_LIVE").as_deref() != Ok("1") {
        eprintln!("skipped: set BZAPPER_LIVE=1 (and BZAPPER_LIVE_TO=+<number>) to run it");
        return;
    }
    let to = std::env::var("BZAPPER_LIVE_TO").expect("BZAPPER_LIVE_TO=+<number to message>");
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.driver = DriverKind::WhatsApp;
    config.admin_token = Some(ADMIN.into());
    let app = Application::build(config).await.expect("the gateway starts");
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(async move { app.run(std::future::pending::<()>()).await.unwrap() });
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, token: &str, body: Option<Value>| {
        let mut req = http.request(method, format!("{base}{path}")).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };

    let tenant =
        call(reqwest::Method::POST, "/v1/tenants", ADMIN, Some(json!({"name": "live"}))).await;
    let key = tenant["api_key"].as_str().unwrap().to_string();
    let inst =
        call(reqwest::Method::POST, "/v1/instances", &key, Some(json!({"name": "live-1"}))).await;
    let id = inst["id"].as_str().unwrap().to_string();

    let mut shown = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let v = call(reqwest::Method::GET, &format!("/v1/instances/{id}"), &key, None).await;
        if v["status"] == "connected" {
            println!("linked: {} ({})", v["phone"], v["jid"]);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not linked within 5 minutes: {v}");
        let qr = call(reqwest::Method::GET, &format!("/v1/instances/{id}/qr"), &key, None).await;
        if let Some(code) = qr["code"].as_str().filter(|c| *c != shown) {
            let image = qrcode::QrCode::new(code.as_bytes()).unwrap();
            let art = image.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build();
            println!("\nScan with WhatsApp → Linked devices:\n{art}");
            shown = code.to_string();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    let msg = call(
        reqwest::Method::POST,
        "/v1/messages",
        &key,
        Some(json!({"to": to, "text": "bZapper live smoke test", "instance_id": id})),
    )
    .await;
    let mid = msg["id"].as_str().expect("the message was accepted").to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let m = call(reqwest::Method::GET, &format!("/v1/messages/{mid}"), &key, None).await;
        match m["status"].as_str() {
            Some("sent" | "delivered" | "read") => {
                println!("message {mid}: {}", m["status"]);
                break;
            }
            Some("failed") => panic!("the message failed: {m}"),
            _ => {}
        }
        assert!(tokio::time::Instant::now() < deadline, "not sent within 2 minutes: {m}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
