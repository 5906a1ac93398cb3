//! The instance lifecycle on the simulated network: drops of every kind, operator commands,
//! QR timeout and pairing codes.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{config, id, TestApp, ADMIN};

async fn drop_it(app: &TestApp, iid: &str, reason: &str) {
    let (s, v) =
        app.post(&format!("/v1/sim/instances/{iid}/drop"), ADMIN, json!({"reason": reason})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn a_transient_drop_reconnects_by_itself() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let iid = id(&app.connected_instance(&key, "n1", "+5511999990001").await);
    drop_it(&app, &iid, "transient").await;
    let v = app.wait_for(&key, &iid, "connecting/transient", |v| v["status"] == "connecting").await;
    assert_eq!(v["reason"], "transient");
    assert_eq!(v["health"]["in_rotation"], false);
    let v = app.wait_status(&key, &iid, "connected").await;
    assert_eq!(v["reason"], serde_json::Value::Null);
}

#[tokio::test]
async fn logged_out_needs_a_new_scan() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let iid = id(&app.connected_instance(&key, "n1", "+5511999990002").await);
    drop_it(&app, &iid, "logged_out").await;
    let v = app.wait_status(&key, &iid, "disconnected").await;
    assert_eq!(v["reason"], "logged_out");
    assert!(v["detail"].is_string());
    // Connecting again asks for a QR code: the session is gone.
    let (s, v) = app.post(&format!("/v1/instances/{iid}/connect"), &key, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "qr_pending");
    let (s, _) = app.get(&format!("/v1/instances/{iid}/qr"), &key).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn a_ban_takes_the_number_out_of_rotation_with_a_reason() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let iid = id(&app.connected_instance(&key, "n1", "+5511999990003").await);
    drop_it(&app, &iid, "banned").await;
    let v = app.wait_status(&key, &iid, "disconnected").await;
    assert_eq!(v["reason"], "banned");
    assert!(v["detail"].as_str().unwrap().contains("101"), "{v}");
    assert_eq!(v["health"]["in_rotation"], false);
    // Still banned when it tries again.
    app.post(&format!("/v1/instances/{iid}/connect"), &key, json!({})).await;
    let v = app
        .wait_for(&key, &iid, "banned again", |v| {
            v["reason"] == "banned" && v["status"] == "disconnected"
        })
        .await;
    assert_eq!(v["phone"], "+5511999990003");
}

#[tokio::test]
async fn a_temporary_ban_reconnects_by_itself_when_it_expires() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let iid = id(&app.connected_instance(&key, "n1", "+5511999990013").await);
    let (s, v) = app
        .post(
            &format!("/v1/sim/instances/{iid}/drop"),
            ADMIN,
            json!({"reason": "banned", "ban_seconds": 2}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let v = app.wait_status(&key, &iid, "disconnected").await;
    assert_eq!(v["reason"], "banned");
    assert!(v["detail"].as_str().unwrap().contains("expires"), "{v}");
    assert_eq!(v["health"]["in_rotation"], false);
    // Still banned a moment later: nothing reconnects before the expiry.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, v) = app.get(&format!("/v1/instances/{iid}"), &key).await;
    assert_eq!(
        (v["status"].as_str(), v["reason"].as_str()),
        (Some("disconnected"), Some("banned"))
    );
    // After the expiry the gateway connects it again by itself.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let v = loop {
        let (_, v) = app.get(&format!("/v1/instances/{iid}"), &key).await;
        if v["status"] == "connected" {
            break v;
        }
        assert!(tokio::time::Instant::now() < deadline, "not reconnected after the ban: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(v["reason"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_replaced_session_stops_with_what_to_do() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let iid = id(&app.connected_instance(&key, "n1", "+5511999990014").await);
    drop_it(&app, &iid, "replaced").await;
    let v = app.wait_status(&key, &iid, "disconnected").await;
    assert_eq!(v["reason"], "stopped");
    assert!(v["detail"].as_str().unwrap().contains("another session"), "{v}");
    // ban_seconds only goes with a ban.
    let (s, v) = app
        .post(
            &format!("/v1/sim/instances/{iid}/drop"),
            ADMIN,
            json!({"reason": "transient", "ban_seconds": 5}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

#[tokio::test]
async fn disconnect_keeps_the_session_and_connect_resumes_it() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let iid = id(&app.connected_instance(&key, "n1", "+5511999990004").await);
    let (s, v) = app.post(&format!("/v1/instances/{iid}/disconnect"), &key, json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (v["status"].as_str(), v["reason"].as_str()),
        (Some("disconnected"), Some("stopped"))
    );
    // Disconnecting again changes nothing.
    let (s, v) = app.post(&format!("/v1/instances/{iid}/disconnect"), &key, json!({})).await;
    assert_eq!((s, v["reason"].as_str()), (StatusCode::OK, Some("stopped")));
    let (_, v) = app.post(&format!("/v1/instances/{iid}/connect"), &key, json!({})).await;
    // With its stored session it logs in without a QR code (the in-process network may have
    // finished the login before the answer is read).
    assert!(v["status"] == "connecting" || v["status"] == "connected", "{v}");
    app.wait_status(&key, &iid, "connected").await;
    // Connecting a connected number changes nothing.
    let (s, v) = app.post(&format!("/v1/instances/{iid}/connect"), &key, json!({})).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("connected")));
}

#[tokio::test]
async fn logout_wipes_the_session() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let iid = id(&app.connected_instance(&key, "n1", "+5511999990005").await);
    let (s, v) = app.post(&format!("/v1/instances/{iid}/logout"), &key, json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (v["status"].as_str(), v["reason"].as_str()),
        (Some("disconnected"), Some("logged_out"))
    );
    let (_, v) = app.post(&format!("/v1/instances/{iid}/connect"), &key, json!({})).await;
    assert_eq!(v["status"], "qr_pending");
}

#[tokio::test]
async fn delete_logs_out_and_removes_the_instance() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let iid = id(&app.connected_instance(&key, "n1", "+5511999990006").await);
    let (s, _) =
        app.call(reqwest::Method::DELETE, &format!("/v1/instances/{iid}"), Some(&key), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/v1/instances/{iid}"), &key).await.0, StatusCode::NOT_FOUND);
    // The name is free again.
    app.instance(&key, "n1").await;
}

#[tokio::test]
async fn an_unscanned_qr_times_out() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut c = config(dir.path());
    c.test_hooks.sim_qr_first = Duration::from_millis(300);
    c.test_hooks.sim_qr_next = Duration::from_millis(100);
    let app = TestApp::spawn_with(dir, c).await;
    let (_, key) = app.tenant("acme").await;
    let iid = id(&app.instance(&key, "n1").await);
    // The exact schedule is tested on the simulator with a paused clock; here, the gateway
    // follows the rotation and the timeout end to end.
    let (_, first) = app.get(&format!("/v1/instances/{iid}/qr"), &key).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (s, now) = app.get(&format!("/v1/instances/{iid}/qr"), &key).await;
        if s == StatusCode::OK && now["code"] != first["code"] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the QR code never rotated");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let v = app.wait_status(&key, &iid, "disconnected").await;
    assert_eq!(v["reason"], "qr_timeout");
    let (s, e) = app.get(&format!("/v1/instances/{iid}/qr"), &key).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("not_pending")));
}

#[tokio::test]
async fn a_pairing_code_is_given_while_pending_only() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let iid = id(&app.instance(&key, "n1").await);
    let path = format!("/v1/instances/{iid}/pair-code");
    let (s, v) = app.post(&path, &key, json!({"phone": "not a phone"})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_phone"))
    );
    let (s, v) = app.post(&path, &key, json!({"phone": "+55 11 99999-0007"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let code = v["code"].as_str().unwrap();
    assert_eq!(code.len(), 9);
    assert_eq!(&code[4..5], "-");
    assert!(v["expires_at"].is_string());
    app.post(&format!("/v1/sim/instances/{iid}/scan"), ADMIN, json!({"phone": "+5511999990007"}))
        .await;
    app.wait_status(&key, &iid, "connected").await;
    let (s, v) = app.post(&path, &key, json!({"phone": "+5511999990007"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("not_pending")));
}

/// Issue 21: a tenant with 10,000 numbers pages the list; a client that does not page still
/// gets every number in one answer.
#[tokio::test]
async fn the_instance_list_pages_by_keyset_and_is_whole_without_limit_or_cursor() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    for i in 0..5 {
        app.instance(&key, &format!("n{i}")).await;
    }
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().into()).collect()
    };
    let (s, whole) = app.get("/v1/instances", &key).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(names(&whole), ["n0", "n1", "n2", "n3", "n4"]);
    assert!(whole["next_cursor"].is_null());

    let mut paged = Vec::new();
    let mut url = "/v1/instances?limit=2".to_string();
    loop {
        let (s, page) = app.get(&url, &key).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(page["items"].as_array().unwrap().len() <= 2);
        paged.extend(names(&page));
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("/v1/instances?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, names(&whole));

    for bad in ["/v1/instances?limit=0", "/v1/instances?limit=1001", "/v1/instances?cursor=nope"] {
        let (s, v) = app.get(bad, &key).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
    }
}
