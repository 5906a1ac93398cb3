//! The README quick start, through HTTP: tenant, instance, QR, scan, connected.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{id, TestApp, ADMIN};

#[tokio::test]
async fn the_quick_start_links_a_number() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;

    let inst = app.instance(&key, "sales-1").await;
    assert_eq!(inst["status"], "qr_pending");
    assert_eq!(inst["reason"], serde_json::Value::Null);
    assert_eq!(inst["pool"], "default");
    assert_eq!(inst["warming"]["days"], 5);
    assert_eq!(inst["warming"]["active"], true);
    assert_eq!(inst["warming"]["until"], serde_json::Value::Null);
    let iid = id(&inst);

    // The QR code as JSON, with a PNG of it.
    let (s, qr) = app.get(&format!("/v1/instances/{iid}/qr"), &key).await;
    assert_eq!(s, StatusCode::OK, "{qr}");
    assert!(qr["code"].as_str().unwrap().starts_with("2@"), "{qr}");
    assert!(qr["expires_at"].is_string());
    let png = base64::engine::general_purpose::STANDARD
        .decode(qr["png_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(&png[..4], b"\x89PNG");

    // And as an image when asked.
    let res = app
        .http
        .get(format!("{}/v1/instances/{iid}/qr", app.base))
        .bearer_auth(&key)
        .header("accept", "image/png")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(&res.bytes().await.unwrap()[..4], b"\x89PNG");

    // A phone scans it.
    let (s, scan) = app
        .post(
            &format!("/v1/sim/instances/{iid}/scan"),
            ADMIN,
            json!({"phone": "+55 11 99999-0001"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{scan}");
    let inst = app.wait_status(&key, &iid, "connected").await;
    assert_eq!(inst["reason"], serde_json::Value::Null);
    assert_eq!(inst["phone"], "+5511999990001");
    assert_eq!(inst["jid"], "5511999990001@s.whatsapp.net");
    assert!(inst["lid"].as_str().unwrap().ends_with("@lid"));
    assert!(inst["connected_at"].is_string());
    assert_eq!(inst["warming"]["active"], true);
    assert!(inst["warming"]["until"].is_string());
    assert_eq!(inst["health"]["in_rotation"], true);

    // No QR once connected.
    let (s, e) = app.get(&format!("/v1/instances/{iid}/qr"), &key).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(e["error"]["code"], "not_pending");

    // It is listed.
    let (s, list) = app.get("/v1/instances", &key).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn probes_and_the_openapi_document_answer() {
    let app = TestApp::spawn().await;
    let (s, v) = app.call(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, v) = app.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["driver"], "sim");
    let (s, doc) = app.call(reqwest::Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/healthz",
        "/readyz",
        "/v1/tenants",
        "/v1/tenants/{id}",
        "/v1/tenants/{id}/keys",
        "/v1/tenants/{id}/keys/{key_id}",
        "/v1/instances",
        "/v1/instances/{id}",
        "/v1/instances/{id}/connect",
        "/v1/instances/{id}/disconnect",
        "/v1/instances/{id}/logout",
        "/v1/instances/{id}/qr",
        "/v1/instances/{id}/pair-code",
        "/v1/pools",
        "/v1/pools/{name}",
        "/v1/messages/forward",
        "/v1/labels",
        "/v1/calls",
        "/v1/sim/instances/{id}/scan",
        "/v1/sim/instances/{id}/drop",
        "/v1/sim/instances/{id}/inbound",
        "/v1/sim/instances/{id}/outbox",
        "/v1/sim/instances/{id}/restrict",
        "/v1/messages",
        "/v1/messages/{id}",
        "/v1/events",
    ] {
        assert!(paths.contains_key(p), "openapi.json lacks {p}");
    }
}

#[tokio::test]
async fn experimental_features_answer_501() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    for p in ["/v1/messages/forward", "/v1/labels", "/v1/calls"] {
        let (s, v) = app.post(p, &key, json!({})).await;
        assert_eq!(s, StatusCode::NOT_IMPLEMENTED, "{p}");
        assert_eq!(v["error"]["code"], "not_implemented");
        assert!(v["error"]["message"].as_str().unwrap().contains("experimental"));
    }
}
