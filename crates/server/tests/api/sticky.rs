//! Sticky sender and country match through HTTP on the simulated network: a reply goes out
//! from the number the contact wrote to (`chosen_by: sticky`), a stranger's message by
//! rotation; with the pool's `sticky` off, rotation again; with `prefer_country`, a number
//! with the recipient's calling code (`geo`).

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{id, TestApp, ADMIN};

/// Sends a text without a number and waits until it went out; returns the message.
async fn sent(app: &TestApp, key: &str, to: &str, text: &str) -> Value {
    let (s, v) = app.post("/v1/messages", key, json!({"to": to, "text": text})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    app.wait_message(key, &id(&v), &["sent", "delivered", "read"]).await
}

/// Waits until the tenant's numbers have received `n` messages in all.
async fn received(app: &TestApp, key: &str, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (s, v) = app.get("/v1/metrics", key).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if v["total"]["received"] == n {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every number in `ids` could start a send now (`resting` is null).
async fn ready(app: &TestApp, key: &str, ids: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for iid in ids {
        loop {
            let (s, v) = app.get(&format!("/v1/instances/{iid}"), key).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            if v["resting"].is_null() {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Waits until the number shows the gap after its last send (`resting` is `gap`).
async fn resting_in_gap(app: &TestApp, key: &str, iid: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (s, v) = app.get(&format!("/v1/instances/{iid}"), key).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if v["resting"] == "gap" {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_reply_goes_out_from_the_number_the_contact_wrote_to_until_the_pool_turns_sticky_off() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let a = app.fast_number(&key, "a", "+5511900000401", "default").await;
    let b = app.fast_number(&key, "b", "+5511900000402", "default").await;
    let c = app.fast_number(&key, "c", "+5511900000403", "default").await;
    app.post(
        &format!("/v1/sim/instances/{b}/inbound"),
        ADMIN,
        json!({"from": "+5511977770401", "text": "is my order ready?"}),
    )
    .await;
    received(&app, &key, 1).await;

    // Round robin alone would spread these over a, b and c.
    for i in 0..3 {
        let m = sent(&app, &key, "+5511977770401", &format!("reply {i}")).await;
        assert_eq!(
            (m["instance_id"].as_str(), m["chosen_by"].as_str()),
            (Some(&*b), Some("sticky")),
            "{m}"
        );
    }
    let stranger = sent(&app, &key, "+5511977770402", "hello").await;
    assert_eq!(stranger["chosen_by"], "rotation", "{stranger}");

    // The pool turns stickiness off: rotation spreads the contact's messages again.
    let (s, v) = app
        .call(Method::PUT, "/v1/pools/default", Some(&key), Some(json!({"sticky": false})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["sticky"], false, "{v}");
    let mut used = BTreeSet::new();
    for i in 0..3 {
        let m = sent(&app, &key, "+5511977770401", &format!("rotated {i}")).await;
        assert_eq!(m["chosen_by"], "rotation", "{m}");
        used.insert(m["instance_id"].as_str().unwrap().to_string());
    }
    assert_eq!(used, BTreeSet::from([a, b, c]), "round robin over the pool");
}

#[tokio::test]
async fn a_pool_preferring_the_recipients_country_sends_from_a_number_with_its_calling_code() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let (s, v) = app
        .call(Method::PUT, "/v1/pools/default", Some(&key), Some(json!({"prefer_country": true})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let br = app.fast_number(&key, "br", "+5511900000411", "default").await;
    let us = app.fast_number(&key, "us", "+14155550411", "default").await;
    // A gap long enough to be seen: right after its send the number is still busy finishing
    // it (typing paused, receipts), when `resting` reads null although it cannot take the next
    // message; the gap after that busy moment is what tells the send is over.
    let mut limits = crate::helpers::fast_limits();
    limits["min_gap_ms"] = json!(500);
    limits["max_gap_ms"] = json!(500);
    let (s, v) = app
        .call(
            Method::PATCH,
            &format!("/v1/instances/{us}"),
            Some(&key),
            Some(json!({"limits": limits})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut choices = Vec::new();
    for i in 0..3 {
        // The preference is among the numbers ready to send: both are, before each send.
        ready(&app, &key, &[&br, &us]).await;
        let m = sent(&app, &key, &format!("+1415555{i:04}"), "hi from a local number").await;
        assert_eq!(m["instance_id"], us.as_str(), "{m}");
        choices.push(m["chosen_by"].as_str().unwrap().to_string());
        resting_in_gap(&app, &key, &us).await;
    }
    assert!(choices.iter().any(|c| c == "geo"), "{choices:?}");
}
