//! Delivery options and the first-contact pre-check over HTTP on the simulated network:
//! `ttl_seconds` and `send_at` are checked (422), shown and kept across a restart; a
//! recipient not on WhatsApp fails with `not_on_whatsapp` without a send, and a campaign
//! counts it `skipped`. (The exact timing rules run on a paused clock in the scheduler's own
//! tests, `runtime::scheduler::validity_tests`.)

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{id, TestApp, ADMIN};

fn ts(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .to_utc()
}

async fn refused(app: &TestApp, key: &str, path: &str, body: Value, mentions: &str) {
    let (s, v) = app.post(path, key, body).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "invalid_request", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains(mentions), "{msg}");
}

#[tokio::test]
async fn delivery_options_are_checked_and_shown_and_the_chosen_number_is_explained() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let iid = app.fast_number(&key, "n1", "+5511999990201", "default").await;
    let to = "+5511988880201";
    let send = |extra: Value| {
        let mut b = json!({"to": to, "text": "hi"});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    let a_year_on = (Utc::now() + chrono::Duration::days(400)).to_rfc3339();
    for (extra, mentions) in [
        (json!({"ttl_seconds": 0}), "ttl_seconds"),
        (json!({"ttl_seconds": 2_592_001}), "ttl_seconds"),
        (json!({"send_at": "tomorrow"}), "send_at"),
        (json!({"send_at": a_year_on}), "send_at"),
    ] {
        refused(&app, &key, "/v1/messages", send(extra), mentions).await;
    }
    let (s, v) = app.post("/v1/messages", &key, send(json!({"ttl_seconds": "ten"}))).await;
    assert!(s.is_client_error(), "{s} {v}");
    let campaign = json!({"name": "c", "template": "hi", "recipients": [
        {"to": "+5511988880202"}, {"to": "+5511988880203", "ttl_seconds": 0}]});
    refused(&app, &key, "/v1/campaigns", campaign, "recipients[1].ttl_seconds").await;

    // A past send_at means now; the TTL counts from acceptance then.
    let past = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let (s, v) =
        app.post("/v1/messages", &key, send(json!({"ttl_seconds": 600, "send_at": past}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["send_at"], Value::Null);
    let created = ts(&v["created_at"]);
    assert_eq!(ts(&v["expires_at"]), created + chrono::Duration::seconds(600));
    let m = app.wait_message(&key, &id(&v), &["sent", "delivered", "read"]).await;
    assert_eq!(m["chosen_by"], "rotation");
    assert_eq!(ts(&m["expires_at"]), created + chrono::Duration::seconds(600));

    // Scheduled: shown with its time, and the TTL counts from it; no number yet.
    let at = Utc::now() + chrono::Duration::hours(2);
    let body = send(json!({"send_at": at.to_rfc3339(), "ttl_seconds": 60, "instance_id": iid}));
    let (s, v) = app.post("/v1/messages", &key, body).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let due = ts(&v["send_at"]);
    assert!((due - at).num_milliseconds().abs() <= 1, "{v}");
    assert_eq!(ts(&v["expires_at"]), due + chrono::Duration::seconds(60));
    let (_, m) = app.get(&format!("/v1/messages/{}", id(&v)), &key).await;
    assert_eq!((m["status"].as_str(), &m["chosen_by"]), (Some("queued"), &Value::Null));
    assert_eq!(ts(&m["send_at"]), due);

    // A forced send says so; `expired` is a status the list filters on.
    let (_, v) = app.post("/v1/messages", &key, send(json!({"instance_id": iid}))).await;
    let m = app.wait_message(&key, &id(&v), &["sent", "delivered", "read"]).await;
    assert_eq!(m["chosen_by"], "forced");
    let (s, v) = app.get("/v1/messages?status=expired", &key).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["items"], json!([]));

    // The OpenAPI document describes them.
    let (s, doc) = app.call(reqwest::Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("SendMessage", "ttl_seconds"),
        ("SendMessage", "send_at"),
        ("Accepted", "send_at"),
        ("Accepted", "expires_at"),
        ("MessageView", "expires_at"),
        ("MessageView", "chosen_by"),
        ("RecipientInput", "ttl_seconds"),
        ("CreateCampaign", "send_at"),
        ("Totals", "expired"),
    ] {
        assert!(schemas[schema]["properties"][field].is_object(), "{schema}.{field}");
    }
}

#[tokio::test]
async fn a_scheduled_and_an_expiring_message_keep_their_times_across_a_restart() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    // A number allowed one message a minute, and one in another pool for the scheduled send.
    let (s, v) = app
        .post(
            "/v1/instances",
            &key,
            json!({"name": "capped", "warming_days": 0,
                   "limits": {"per_minute": 1, "min_gap_ms": 0, "max_gap_ms": 20}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let capped = id(&v);
    app.get(&format!("/v1/instances/{capped}/qr"), &key).await;
    app.post(
        &format!("/v1/sim/instances/{capped}/scan"),
        ADMIN,
        json!({"phone": "+5511999990211"}),
    )
    .await;
    app.wait_status(&key, &capped, "connected").await;
    let later_number = app.fast_number(&key, "later", "+5511999990212", "later").await;

    let (_, first) =
        app.post("/v1/messages", &key, json!({"to": "+5511988880211", "text": "first"})).await;
    app.wait_message(&key, &id(&first), &["sent", "delivered", "read"]).await;
    let (s, expiring) = app
        .post(
            "/v1/messages",
            &key,
            json!({"to": "+5511988880212", "text": "expiring", "ttl_seconds": 3}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{expiring}");
    let send_at = Utc::now() + chrono::Duration::seconds(4);
    let (s, scheduled) = app
        .post(
            "/v1/messages",
            &key,
            json!({"to": "+5511988880213", "text": "scheduled", "pool": "later",
                   "send_at": send_at.to_rfc3339()}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{scheduled}");

    let dir = app.stop().await;
    let app = TestApp::spawn_in(dir).await;
    app.wait_status(&key, &capped, "connected").await;
    app.wait_status(&key, &later_number, "connected").await;
    let (_, m) = app.get(&format!("/v1/messages/{}", id(&scheduled)), &key).await;
    if Utc::now() < send_at - chrono::Duration::milliseconds(500) {
        assert_eq!(m["status"], "queued", "not before its time: {m}");
    }
    let m = app.wait_message(&key, &id(&expiring), &["expired"]).await;
    assert_eq!(m["sent_at"], Value::Null);
    let m = app.wait_message(&key, &id(&scheduled), &["sent", "delivered", "read"]).await;
    assert!(ts(&m["sent_at"]) >= ts(&m["send_at"]), "{m}");
    let texts: Vec<Value> =
        app.outbox(&capped).await.into_iter().map(|e| e["text"].clone()).collect();
    assert!(!texts.contains(&json!("expiring")), "never sent late: {texts:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let texts: Vec<Value> =
        app.outbox(&capped).await.into_iter().map(|e| e["text"].clone()).collect();
    assert!(!texts.contains(&json!("expiring")), "never sent late: {texts:?}");
}

#[tokio::test]
async fn a_recipient_not_on_whatsapp_fails_unsent_and_a_campaign_counts_it_skipped() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let iid = app.fast_number(&key, "n1", "+5511999990221", "default").await;
    let absent = "+5511977770221";
    let (s, v) =
        app.post("/v1/sim/contacts", ADMIN, json!({"phone": absent, "on_whatsapp": false})).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let (_, v) = app.post("/v1/messages", &key, json!({"to": absent, "text": "hello?"})).await;
    let m = app.wait_message(&key, &id(&v), &["failed", "sent", "delivered", "read"]).await;
    assert_eq!(
        (m["status"].as_str(), m["error"].as_str()),
        (Some("failed"), Some("not_on_whatsapp"))
    );
    let to_absent = |outbox: &[Value]| {
        outbox
            .iter()
            .filter(|e| e["to"].as_str().is_some_and(|t| t.starts_with("5511977770221")))
            .count()
    };
    assert_eq!(
        to_absent(&app.outbox(&iid).await),
        0,
        "nothing typed or sent: {:?}",
        app.outbox(&iid).await
    );
    let (_, n) = app.get(&format!("/v1/instances/{iid}"), &key).await;
    assert_eq!(n["health"]["score"], 100, "no health cost: {n}");

    let (s, c) = app
        .post(
            "/v1/campaigns",
            &key,
            json!({"name": "c", "template": "hi {{name}}", "recipients": [
                {"to": "+5511988880221", "fields": {"name": "A"}},
                {"to": absent, "fields": {"name": "B"}},
                {"to": "+5511988880222", "fields": {"name": "C"}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let cid = id(&c);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let v = loop {
        let (_, v) = app.get(&format!("/v1/campaigns/{cid}"), &key).await;
        if v["status"] == "finished" {
            break v;
        }
        assert!(tokio::time::Instant::now() < deadline, "campaign stuck: {v}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let t = &v["totals"];
    assert_eq!(
        (t["skipped"].as_u64(), t["failed"].as_u64(), t["expired"].as_u64()),
        (Some(1), Some(0), Some(0)),
        "{t}"
    );
    let out = t["sent"].as_u64().unwrap()
        + t["delivered"].as_u64().unwrap()
        + t["read"].as_u64().unwrap();
    assert_eq!(out, 2, "{t}");
    assert_eq!(to_absent(&app.outbox(&iid).await), 0);
}
