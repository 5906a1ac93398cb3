//! "Seen before reply" and the explicit read of a received message, on the simulated
//! network: a number set to `read_receipts: auto` marks a contact's unread messages read
//! before it shows `composing` for its reply; one left `off` never does; `POST
//! /v1/instances/{id}/messages/{message_id}/read` sends the receipt on demand.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{id, TestApp, ADMIN};

fn at(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v["at"].as_str().unwrap()).unwrap().to_utc()
}

impl TestApp {
    /// A contact writes to number `n`; returns the message's WhatsApp id once the gateway has
    /// recorded it (the network holds nothing unacknowledged for the number).
    async fn contact_writes(&self, key: &str, n: &str, from: &str, text: &str) -> String {
        let received = |v: &Value| v["stats"]["received_today"].as_u64().unwrap();
        let (_, before) = self.get(&format!("/v1/instances/{n}"), key).await;
        let (s, v) = self
            .post(
                &format!("/v1/sim/instances/{n}/inbound"),
                ADMIN,
                json!({"from": from, "text": text}),
            )
            .await;
        assert!(s.is_success(), "{v}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, now) = self.get(&format!("/v1/instances/{n}"), key).await;
            if received(&now) > received(&before) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "never recorded: {now}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        v["message_id"].as_str().unwrap().to_string()
    }

    /// Sends `text` to `to` from number `n` and waits until it went out.
    async fn reply(&self, key: &str, n: &str, to: &str, text: &str) -> Value {
        let (s, v) =
            self.post("/v1/messages", key, json!({"to": to, "text": text, "instance_id": n})).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        self.wait_message(key, &id(&v), &["sent", "delivered", "read"]).await
    }
}

#[tokio::test]
async fn a_number_set_to_auto_marks_the_contacts_messages_read_before_typing_its_reply() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let n = app.fast_number(&key, "a", "+5511900000071", "default").await;
    // Off by default; `auto` through PATCH, shown in the view; a bad value is refused.
    let (_, v) = app.get(&format!("/v1/instances/{n}"), &key).await;
    assert_eq!(v["read_receipts"], "off");
    let path = format!("/v1/instances/{n}");
    let patch = |body: Value| app.call(Method::PATCH, &path, Some(&key), Some(body));
    let (s, v) = patch(json!({"read_receipts": "always"})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request"))
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("`off` or `auto`"), "{v}");
    let (s, v) = patch(json!({"read_receipts": "auto"})).await;
    assert_eq!((s, v["read_receipts"].as_str()), (StatusCode::OK, Some("auto")), "{v}");

    let contact = "5511966660071@s.whatsapp.net";
    let m1 = app.contact_writes(&key, &n, "+5511966660071", "hi").await;
    let m2 = app.contact_writes(&key, &n, "+5511966660071", "anyone there?").await;
    // Another contact's message is not read by a reply to this one.
    let other = app.contact_writes(&key, &n, "+5511966660072", "hello").await;
    let sent = app.reply(&key, &n, "+5511966660071", "Hello! How can I help?").await;

    let outbox = app.outbox(&n).await;
    let read: Vec<&Value> = outbox.iter().filter(|e| e.get("read").is_some()).collect();
    assert_eq!(read.len(), 1, "{outbox:?}");
    assert_eq!(read[0]["read"], json!([m1, m2]));
    assert_eq!(read[0]["chat"], contact);
    assert!(!read[0]["read"].as_array().unwrap().contains(&json!(other)));
    let pos = |pred: &dyn Fn(&Value) -> bool| outbox.iter().position(pred).unwrap();
    let read_at = pos(&|e| e.get("read").is_some());
    let composing = pos(&|e| e["presence"] == "composing" && e["to"] == contact);
    let message = pos(&|e| e["text"] == "Hello! How can I help?");
    assert!(read_at < composing && composing < message, "{outbox:?}");
    // After a human pause (at least a second) from when the reply was accepted.
    let accepted = DateTime::parse_from_rfc3339(sent["created_at"].as_str().unwrap()).unwrap();
    assert!(at(read[0]) - accepted.to_utc() >= chrono::Duration::milliseconds(1_000), "{outbox:?}");

    // Read once: the next reply marks nothing again.
    app.reply(&key, &n, "+5511966660071", "Anything else?").await;
    let again = app.outbox(&n).await;
    assert_eq!(again.iter().filter(|e| e.get("read").is_some()).count(), 1, "{again:?}");
}

#[tokio::test]
async fn a_number_left_off_never_marks_read_but_can_be_asked_to() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let n = app.fast_number(&key, "b", "+5511900000072", "default").await;
    let m1 = app.contact_writes(&key, &n, "+5511966660081", "hi").await;
    app.reply(&key, &n, "+5511966660081", "Hello").await;
    let outbox = app.outbox(&n).await;
    assert!(outbox.iter().all(|e| e.get("read").is_none()), "{outbox:?}");

    // The explicit read: 204, and the receipt on the network.
    let (app_ref, key_ref) = (&app, &key);
    let read = move |n: String, m: String| async move {
        app_ref.post(&format!("/v1/instances/{n}/messages/{m}/read"), key_ref, json!({})).await
    };
    let (s, v) = read(n.clone(), m1.clone()).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let outbox = app.outbox(&n).await;
    let entry = outbox.iter().find(|e| e.get("read").is_some()).expect("a read receipt");
    assert_eq!(entry["read"], json!([m1]));
    assert_eq!(entry["chat"], "5511966660081@s.whatsapp.net");

    // 404: a message no one received, another number's message, another tenant's number.
    let (s, v) = read(n.clone(), "3EB0NOSUCHMESSAGE".into()).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{v}");
    let other = app.fast_number(&key, "c", "+5511900000073", "default").await;
    let (s, _) = read(other.clone(), m1.clone()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, stranger) = app.tenant("other").await;
    let (s, _) =
        app.post(&format!("/v1/instances/{n}/messages/{m1}/read"), &stranger, json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // 409 while the number is not connected.
    let (s, v) = app.post(&format!("/v1/instances/{n}/disconnect"), &key, json!({})).await;
    assert!(s.is_success(), "{v}");
    app.wait_status(&key, &n, "disconnected").await;
    let (s, v) = read(n.clone(), m1.clone()).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("instance_unavailable")),
        "{v}"
    );
}

#[tokio::test]
async fn the_setting_is_given_at_creation() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let (s, v) =
        app.post("/v1/instances", &key, json!({"name": "x", "read_receipts": "auto"})).await;
    assert_eq!((s, v["read_receipts"].as_str()), (StatusCode::CREATED, Some("auto")), "{v}");
    let (_, v) = app.get(&format!("/v1/instances/{}", id(&v)), &key).await;
    assert_eq!(v["read_receipts"], "auto");
    let (s, v) = app.post("/v1/instances", &key, json!({"name": "y", "read_receipts": 1})).await;
    assert!(s.is_client_error(), "{v}");
}
