//! A number's call and presence settings on the simulated network: `reject_calls`,
//! `reject_call_message` and `always_online` through create, PATCH and GET (and refused when
//! malformed); a call rejected at once with its reply queued to the caller through the
//! number's own queue; a call left ringing when the setting is off; `call.received` either
//! way; `available` announced at connect, at a reconnect and when turned on.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::events::SseReader;
use crate::helpers::{id, TestApp, ADMIN};

/// The next `call.received` on `sse` (20 s at most).
async fn next_call(sse: &mut SseReader) -> Value {
    let (_, kind, envelope) =
        sse.next(Duration::from_secs(20)).await.expect("no call.received within 20 s");
    assert_eq!(kind, "call.received", "{envelope}");
    envelope
}

impl TestApp {
    /// A contact calls number `n`; the call's id.
    async fn rings(&self, n: &str, body: Value) -> String {
        let (s, v) = self.post(&format!("/v1/sim/instances/{n}/call"), ADMIN, body).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["call_id"].as_str().unwrap().to_string()
    }

    async fn patch_instance(&self, key: &str, n: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, &format!("/v1/instances/{n}"), Some(key), Some(body)).await
    }

    /// Polls the number's outbox until `pred` holds for an entry (20 s at most).
    async fn outbox_until(&self, n: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(e) = self.outbox(n).await.into_iter().find(|e| pred(e)) {
                return e;
            }
            assert!(tokio::time::Instant::now() < deadline, "no {what} in the outbox");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn is_available(e: &Value) -> bool {
    e["presence"] == "available" && e.get("to").is_none()
}

#[tokio::test]
async fn the_settings_round_trip_through_create_patch_and_get_and_bad_ones_are_refused() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    // Off by default.
    let v = app.instance(&key, "plain").await;
    assert_eq!(
        (&v["reject_calls"], &v["reject_call_message"], &v["always_online"]),
        (&json!(false), &Value::Null, &json!(false)),
        "{v}"
    );
    // Set at creation.
    let body = json!({"name": "calls", "reject_calls": true, "always_online": true,
        "reject_call_message": "Este número não atende ligações — escreva para nós!"});
    let (s, v) = app.post("/v1/instances", &key, body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let n = id(&v);
    assert_eq!(v["reject_calls"], true);
    assert_eq!(v["reject_call_message"], "Este número não atende ligações — escreva para nós!");
    assert_eq!(v["always_online"], true);
    // Each changed alone through PATCH; a `null` message removes it; GET shows the same.
    let (s, v) = app.patch_instance(&key, &n, json!({"always_online": false})).await;
    assert_eq!(
        (s, &v["always_online"], &v["reject_calls"]),
        (StatusCode::OK, &json!(false), &json!(true))
    );
    let (s, v) = app.patch_instance(&key, &n, json!({"reject_call_message": null})).await;
    assert_eq!((s, &v["reject_call_message"]), (StatusCode::OK, &Value::Null), "{v}");
    let (s, v) = app
        .patch_instance(&key, &n, json!({"reject_calls": false, "reject_call_message": "Write!"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, got) = app.get(&format!("/v1/instances/{n}"), &key).await;
    assert_eq!(
        (&got["reject_calls"], &got["reject_call_message"], &got["always_online"]),
        (&json!(false), &json!("Write!"), &json!(false)),
        "{got}"
    );

    // Wrong types, a blank or too long reply: 4xx in the error shape, nothing changed.
    for bad in [
        json!({"reject_calls": "yes"}),
        json!({"always_online": 1}),
        json!({"reject_call_message": 42}),
        json!({"reject_call_message": "   "}),
        json!({"reject_call_message": "x".repeat(4097)}),
        json!({"reject_calls": true, "reject_call_message": ""}),
    ] {
        let (s, v) = app.patch_instance(&key, &n, bad.clone()).await;
        assert!(s.is_client_error(), "{bad}: {s} {v}");
        assert!(v["error"]["code"].is_string() && v["error"]["message"].is_string(), "{v}");
    }
    let (s, v) = app
        .post(
            "/v1/instances",
            &key,
            json!({"name": "bad", "reject_call_message": "x".repeat(4097)}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("4096"), "{v}");
    let (_, after) = app.get(&format!("/v1/instances/{n}"), &key).await;
    assert_eq!(after["reject_calls"], false);
    assert_eq!(after["reject_call_message"], "Write!");
    // The longest reply is taken.
    let (s, _) =
        app.patch_instance(&key, &n, json!({"reject_call_message": "é".repeat(4096)})).await;
    assert_eq!(s, StatusCode::OK);

    // Another tenant's key sees nothing and changes nothing.
    let (_, other) = app.tenant("other").await;
    let (s, v) = app.patch_instance(&other, &n, json!({"reject_calls": true})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (_, after) = app.get(&format!("/v1/instances/{n}"), &key).await;
    assert_eq!(after["reject_calls"], false);
}

#[tokio::test]
async fn a_call_is_rejected_and_the_caller_gets_the_reply_through_the_numbers_queue() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant("acme").await;
    let n = app.fast_number(&key, "support", "+5511900000081", "default").await;
    // A second number in the pool: the reply must still go out from the one that was called.
    app.fast_number(&key, "other", "+5511900000082", "default").await;
    let reply = "This number does not take calls — write to us here.";
    let (s, v) = app
        .patch_instance(&key, &n, json!({"reject_calls": true, "reject_call_message": reply}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut sse = SseReader::open(&app, "?types=call.received", &key, None).await;

    let call_id = app.rings(&n, json!({"from": "+55 11 96666-0081"})).await;
    let e = next_call(&mut sse).await;
    assert_eq!((e["tenant_id"].as_str(), e["instance_id"].as_str()), (Some(&*tenant), Some(&*n)));
    let d = &e["data"];
    assert_eq!(d["call_id"], call_id.as_str());
    assert_eq!(d["from"]["jid"], "5511966660081@s.whatsapp.net");
    assert_eq!(d["from"]["phone"], "+5511966660081");
    // The network called by phone and no LID of it is known yet (as `message.received`).
    assert_eq!(d["from"]["lid"], Value::Null, "{d}");
    assert_eq!(
        (&d["video"], &d["group"], &d["group_jid"]),
        (&json!(false), &json!(false), &Value::Null)
    );
    assert_eq!(d["rejected"], true);
    // The network saw the rejection, once.
    let outbox = app.outbox(&n).await;
    let rejections: Vec<&Value> =
        outbox.iter().filter(|e| e.get("rejected_call").is_some()).collect();
    assert_eq!(rejections.len(), 1, "{outbox:?}");
    assert_eq!(rejections[0]["rejected_call"], call_id.as_str());
    assert_eq!(rejections[0]["to"], "5511966660081@s.whatsapp.net");

    // The reply is an ordinary message, forced to the called number, paced like any send.
    let mid = d["reply_message_id"].as_str().expect("a reply was queued").to_string();
    let m = app.wait_message(&key, &mid, &["sent", "delivered", "read"]).await;
    assert_eq!((m["instance_id"].as_str(), m["text"].as_str()), (Some(&*n), Some(reply)), "{m}");
    assert_eq!(m["to"], "5511966660081@s.whatsapp.net");
    let sent = app.outbox_until(&n, "the reply", |e| e["text"] == reply).await;
    assert_eq!(sent["to"], "5511966660081@s.whatsapp.net");
    // Typed before it went out, as every send is.
    let outbox = app.outbox(&n).await;
    let typed = outbox.iter().position(|e| e["presence"] == "composing");
    let replied = outbox.iter().position(|e| e["text"] == reply);
    assert!(typed.is_some() && typed < replied, "{outbox:?}");
    let (_, listed) = app.get(&format!("/v1/messages?instance_id={n}"), &key).await;
    let items = listed["items"].as_array().unwrap();
    assert!(items.iter().any(|i| i["id"] == mid.as_str()), "{listed}");

    // A caller by LID is reported by phone with the LID beside, and a video call says so.
    let call_id =
        app.rings(&n, json!({"from": "+5511966660083", "as_lid": true, "video": true})).await;
    let d = next_call(&mut sse).await["data"].clone();
    assert_eq!((d["call_id"].as_str(), d["video"].as_bool()), (Some(&*call_id), Some(true)));
    assert_eq!(d["from"]["jid"], "5511966660083@s.whatsapp.net");
    assert!(d["from"]["lid"].as_str().unwrap().ends_with("@lid"), "{d}");
    assert_eq!(d["rejected"], true);
    // Its reply goes to the phone JID too.
    let mid = d["reply_message_id"].as_str().unwrap().to_string();
    let m = app.wait_message(&key, &mid, &["sent", "delivered", "read"]).await;
    assert_eq!(m["to"], "5511966660083@s.whatsapp.net");

    // Another tenant's stream never shows the calls.
    let (_, other) = app.tenant("other").await;
    let mut theirs = SseReader::open(&app, "?types=call.received", &other, Some("0")).await;
    assert!(theirs.next(Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn with_reject_calls_off_a_call_rings_on_is_reported_and_gets_no_reply() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let n = app.fast_number(&key, "sales", "+5511900000091", "default").await;
    // A reply without `reject_calls` is never sent: the call was not rejected.
    let (s, _) = app.patch_instance(&key, &n, json!({"reject_call_message": "Write to us"})).await;
    assert_eq!(s, StatusCode::OK);
    let mut sse = SseReader::open(&app, "?types=call.received", &key, None).await;
    let call_id =
        app.rings(&n, json!({"from": "+5511966660091", "group": "120363000000000091@g.us"})).await;
    let d = next_call(&mut sse).await["data"].clone();
    assert_eq!(d["call_id"], call_id.as_str());
    assert_eq!((&d["rejected"], &d["reply_message_id"]), (&json!(false), &Value::Null), "{d}");
    assert_eq!((&d["group"], &d["group_jid"]), (&json!(true), &json!("120363000000000091@g.us")));
    let outbox = app.outbox(&n).await;
    assert!(
        outbox.iter().all(|e| e.get("rejected_call").is_none() && e.get("text").is_none()),
        "{outbox:?}"
    );
    let (_, listed) = app.get(&format!("/v1/messages?instance_id={n}"), &key).await;
    assert_eq!(listed["items"], json!([]), "{listed}");

    // Turned on while connected: the next call is rejected, without a reconnect.
    let (s, _) = app.patch_instance(&key, &n, json!({"reject_calls": true})).await;
    assert_eq!(s, StatusCode::OK);
    let second = app.rings(&n, json!({"from": "+5511966660091"})).await;
    let d = next_call(&mut sse).await["data"].clone();
    assert_eq!((d["call_id"].as_str(), d["rejected"].as_bool()), (Some(&*second), Some(true)));
    app.outbox_until(&n, "the rejection", |e| e["rejected_call"] == second.as_str()).await;
    assert!(d["reply_message_id"].is_string(), "{d}");
}

#[tokio::test]
async fn always_online_announces_available_at_connect_at_a_reconnect_and_when_turned_on() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    // Off (the default): the gateway announces nothing (checked at the end, seconds later).
    let plain = app.fast_number(&key, "plain", "+5511900000103", "default").await;
    let off = app.fast_number(&key, "quiet", "+5511900000101", "default").await;
    // Turned on while connected: announced at once.
    let (s, v) = app.patch_instance(&key, &off, json!({"always_online": true})).await;
    assert_eq!((s, &v["always_online"]), (StatusCode::OK, &json!(true)));
    app.outbox_until(&off, "available after the PATCH", is_available).await;

    // On from creation: announced when it connects.
    let (s, v) = app
        .post(
            "/v1/instances",
            &key,
            json!({"name": "online", "always_online": true, "warming_days": 0}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let n = id(&v);
    let (s, _) = app.get(&format!("/v1/instances/{n}/qr"), &key).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .post(&format!("/v1/sim/instances/{n}/scan"), ADMIN, json!({"phone": "+5511900000102"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    app.wait_status(&key, &n, "connected").await;
    app.outbox_until(&n, "available at connect", is_available).await;

    // Again after a transient drop and the reconnect.
    let (s, _) = app
        .post(&format!("/v1/sim/instances/{n}/drop"), ADMIN, json!({"reason": "transient"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    app.wait_for(&key, &n, "the drop", |v| v["status"] != "connected").await;
    app.wait_status(&key, &n, "connected").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while app.outbox(&n).await.iter().filter(|e| is_available(e)).count() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "not announced again after the reconnect");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // A number left off never announced itself, nor does a PATCH of another setting.
    let (s, _) = app.patch_instance(&key, &plain, json!({"name": "plain-2"})).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!app.outbox(&plain).await.iter().any(is_available));
}
