//! Sending through HTTP on the simulated network: rotation, typing before every text, menus
//! and mentions, forced numbers, 409s, idempotency, and a ban in the middle of a queue.

use std::collections::{HashMap, HashSet};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{id, TestApp, ADMIN};

/// Every text in the outbox is preceded by `composing` to the same recipient and followed by
/// `paused`.
fn assert_typing_before_each_text(outbox: &[Value]) {
    for (i, e) in outbox.iter().enumerate() {
        if e.get("text").is_some() {
            assert!(i > 0, "a text with nothing before it: {outbox:?}");
            let before = &outbox[i - 1];
            assert_eq!(before["presence"], "composing", "no typing before {e}");
            assert_eq!(before["to"], e["to"]);
            let after = outbox.get(i + 1).expect("paused follows a text");
            assert_eq!(after["presence"], "paused", "{after}");
        }
    }
}

#[tokio::test]
async fn sends_without_a_number_rotate_over_the_pool() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let numbers = [
        app.fast_number(&key, "a", "+5511900000001", "default").await,
        app.fast_number(&key, "b", "+5511900000002", "default").await,
        app.fast_number(&key, "c", "+5511900000003", "default").await,
    ];
    let mut ids = Vec::new();
    for i in 0..9 {
        let (s, v) = app
            .post(
                "/v1/messages",
                &key,
                json!({"to": format!("+55 11 98888-00{i:02}"), "text": format!("hello {i}")}),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        assert_eq!(v["status"], "queued");
        assert_eq!(v["to"], format!("55119888800{i:02}@s.whatsapp.net"));
        assert!(v["created_at"].is_string());
        ids.push(id(&v));
    }
    let mut by_number: HashMap<String, usize> = HashMap::new();
    for mid in &ids {
        // The simulated recipient's phone is online: every message ends delivered.
        let m = app.wait_message(&key, mid, &["delivered"]).await;
        assert!(m["sent_at"].is_string(), "{m}");
        *by_number.entry(m["instance_id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(by_number.len(), 3, "all three numbers sent: {by_number:?}");
    for n in &numbers {
        let outbox = app.outbox(n).await;
        assert_typing_before_each_text(&outbox);
        let texts = outbox.iter().filter(|e| e.get("text").is_some()).count();
        assert_eq!(texts, by_number[n]);
    }
    // Listing: newest first, filters, pages.
    let (s, page) = app.get("/v1/messages?limit=4&status=delivered", &key).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, page2) =
        app.get(&format!("/v1/messages?limit=10&status=delivered&cursor={cursor}"), &key).await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 5);
    assert_eq!(page2["next_cursor"], Value::Null);
    let (_, by_inst) = app.get(&format!("/v1/messages?instance_id={}", numbers[0]), &key).await;
    assert_eq!(by_inst["items"].as_array().unwrap().len(), by_number[&numbers[0]]);
    let (s, v) = app.get("/v1/messages?limit=0", &key).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request"))
    );
    let (s, _) = app.get("/v1/messages?cursor=garbage", &key).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn menus_go_out_as_numbered_text_and_mentions_as_jids() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let n = app.fast_number(&key, "a", "+5511900000011", "default").await;
    let (s, v) = app
        .post(
            "/v1/messages",
            &key,
            json!({"to": "120363012345678901@g.us", "text": "Hi @ana", "mentions": ["+55 11 97777-0001"],
                   "buttons": {"text": "Choose:", "options": [{"id": "a", "title": "Pay"}, {"id": "b", "title": "Cancel"}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let m = app.wait_message(&key, &id(&v), &["sent", "delivered"]).await;
    assert_eq!(m["instance_id"], n.as_str());
    let outbox = app.outbox(&n).await;
    let text = outbox.iter().find(|e| e.get("text").is_some()).unwrap();
    assert_eq!(text["text"], "Hi @ana\n\nChoose:\n1. Pay\n2. Cancel");
    assert_eq!(text["to"], "120363012345678901@g.us");
    assert_eq!(text["mentions"], json!(["5511977770001@s.whatsapp.net"]));
    assert_eq!(text["id"], m["whatsapp_id"]);
}

#[tokio::test]
async fn refusals_are_409_404_and_422_as_written() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    // No connected number at all.
    let (s, v) = app.post("/v1/messages", &key, json!({"to": "+5511988880001", "text": "x"})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("no_number_available"))
    );
    // A forced number that is not connected.
    let pending = id(&app.instance(&key, "pending").await);
    let (s, v) = app
        .post(
            "/v1/messages",
            &key,
            json!({"to": "+5511988880001", "text": "x", "instance_id": pending}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("instance_unavailable"))
    );
    let (s, _) = app
        .post(
            "/v1/messages",
            &key,
            json!({"to": "+5511988880001", "text": "x", "instance_id": "ins_nope"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for (body, code) in [
        (json!({"to": "hello", "text": "x"}), "invalid_recipient"),
        (json!({"to": "123@example.com", "text": "x"}), "invalid_recipient"),
        (json!({"to": "+5511988880001", "text": "x", "mentions": ["nobody"]}), "invalid_recipient"),
        (json!({"to": "+5511988880001"}), "invalid_request"),
        (json!({"to": "+5511988880001", "text": "x", "menu": {"options": []}}), "invalid_request"),
        (json!({"to": "+5511988880001", "text": "x", "colour": 1}), "invalid_request"),
        (json!({"to": "+5511988880001", "text": "x", "pool": "Bad Pool"}), "invalid_request"),
    ] {
        let (s, v) = app.post("/v1/messages", &key, body.clone()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
            "{body}"
        );
    }
    let (_, list) = app.get("/v1/messages", &key).await;
    assert!(list["items"].as_array().unwrap().is_empty(), "nothing refused was stored");
    // A connected number in another pool does not serve the default pool.
    app.fast_number(&key, "other", "+5511900000021", "other").await;
    let (s, _) = app.post("/v1/messages", &key, json!({"to": "+5511988880001", "text": "x"})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = app
        .post("/v1/messages", &key, json!({"to": "+5511988880001", "text": "x", "pool": "other"}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn an_idempotent_retry_returns_the_first_answer_and_sends_once() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let n = app.fast_number(&key, "a", "+5511900000031", "default").await;
    let send = || async {
        let res = app
            .http
            .post(format!("{}/v1/messages", app.base))
            .bearer_auth(&key)
            .header("idempotency-key", "order-42")
            .json(&json!({"to": "+5511988880001", "text": "your order"}))
            .send()
            .await
            .unwrap();
        (res.status(), res.json::<Value>().await.unwrap())
    };
    let (s1, first) = send().await;
    let (s2, second) = send().await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(first, second);
    app.wait_message(&key, &id(&first), &["sent", "delivered"]).await;
    let (s3, third) = send().await;
    assert_eq!((s3, id(&third)), (StatusCode::ACCEPTED, id(&first)));
    let texts = app.outbox(&n).await.into_iter().filter(|e| e.get("text").is_some()).count();
    assert_eq!(texts, 1);
    let (_, list) = app.get("/v1/messages", &key).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_ban_mid_queue_moves_the_rest_to_other_numbers() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let a = app.fast_number(&key, "a", "+5511900000041", "default").await;
    let b = app.fast_number(&key, "b", "+5511900000042", "default").await;
    let mut pooled = Vec::new();
    for i in 0..8 {
        let (s, v) = app
            .post(
                "/v1/messages",
                &key,
                json!({"to": format!("+551198888{i:04}"), "text": format!("m{i}")}),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        pooled.push(id(&v));
    }
    let mut forced = Vec::new();
    for i in 0..3 {
        let (s, v) = app
            .post("/v1/messages", &key, json!({"to": format!("+551197777{i:04}"), "text": format!("f{i}"), "instance_id": a}))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        assert_eq!(v["instance_id"], a.as_str());
        forced.push(id(&v));
    }
    // Ban A as soon as it has sent something.
    app.wait_message(&key, &pooled[0], &["sending", "sent", "delivered"]).await;
    let (s, _) =
        app.post(&format!("/v1/sim/instances/{a}/drop"), ADMIN, json!({"reason": "banned"})).await;
    assert!(s.is_success());
    app.wait_for(&key, &a, "banned", |v| v["reason"] == "banned").await;

    for mid in &pooled {
        app.wait_message(&key, mid, &["sent", "delivered"]).await;
    }
    let mut failed = 0;
    for mid in &forced {
        let m = app.wait_message(&key, mid, &["sent", "delivered", "failed"]).await;
        if m["status"] == "failed" {
            assert!(m["error"].as_str().unwrap().contains("banned"), "{m}");
            failed += 1;
        }
    }
    assert!(failed >= 1, "forced messages of a banned number fail");
    // Nothing lost, nothing sent twice: each pooled message once over both outboxes.
    let mut seen = HashSet::new();
    let mut total = 0;
    for n in [&a, &b] {
        for e in app.outbox(n).await {
            if let Some(wid) = e.get("id") {
                total += 1;
                seen.insert(wid.as_str().unwrap().to_string());
            }
        }
    }
    assert_eq!(total, seen.len(), "a message went out twice");
    assert_eq!(total, pooled.len() + forced.len() - failed);
    let v =
        app.wait_for(&key, &a, "out of rotation", |v| v["health"]["in_rotation"] == false).await;
    assert_eq!(v["status"], "disconnected");
    let (_, v) = app.get(&format!("/v1/instances/{b}"), &key).await;
    assert!(v["stats"]["sent_today"].as_u64().unwrap() >= 1, "{v}");
    let _ = app.call(Method::GET, "/healthz", None, None).await;
}

#[tokio::test]
async fn reach_out_refusals_lower_health_until_the_number_leaves_rotation() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant("acme").await;
    let n = app.fast_number(&key, "a", "+5511900000051", "default").await;
    let (s, _) = app
        .post(&format!("/v1/sim/instances/{n}/restrict"), ADMIN, json!({"reach_out": true}))
        .await;
    assert!(s.is_success());
    // A contact that writes first may still be answered.
    app.post(
        &format!("/v1/sim/instances/{n}/inbound"),
        ADMIN,
        json!({"from": "+5511966660001", "text": "hi"}),
    )
    .await;

    // Each refusal (error 463) costs 15 points: 100 → 85 → 70 → 55 → 40 → 25.
    let mut scores = Vec::new();
    for i in 0..5 {
        let (s, v) = app
            .post(
                "/v1/messages",
                &key,
                json!({"to": format!("+55119555500{i:02}"), "text": "promo"}),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "refusal {i}: {v}");
        let m = app.wait_message(&key, &id(&v), &["failed"]).await;
        assert!(m["error"].as_str().unwrap().contains("463"), "{m}");
        let inst = app
            .wait_for(&key, &n, "the score to fall", |v| {
                v["health"]["score"].as_u64().unwrap() <= 85 - 15 * i
            })
            .await;
        scores.push(inst["health"]["score"].as_u64().unwrap());
    }
    assert_eq!(scores, vec![85, 70, 55, 40, 25]);
    let (_, v) = app.get(&format!("/v1/instances/{n}"), &key).await;
    assert_eq!(v["health"]["in_rotation"], false, "{v}");
    assert_eq!(v["status"], "connected");
    // Out of rotation at once: the pool has no healthy number left.
    let (s, e) = app.post("/v1/messages", &key, json!({"to": "+5511955550099", "text": "x"})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("no_number_available"))
    );
    // A forced message still goes, to the contact that wrote first.
    let (s, v) = app
        .post(
            "/v1/messages",
            &key,
            json!({"to": "+5511966660001", "text": "hello again", "instance_id": n}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let forced = id(&app.wait_message(&key, &id(&v), &["delivered"]).await);

    // The event log holds the whole story: the number leaving rotation, and every status.
    let dir = app.stop().await;
    let events = crate::helpers::event_log(dir.path(), &tenant).await;
    let health: Vec<&Value> =
        events.iter().filter(|e| e.kind == "instance.health").map(|e| &e.data).collect();
    // Into rotation when it connected; out of it at the fifth refusal, and nothing between.
    assert_eq!(
        health,
        vec![
            &json!({"score": 100, "in_rotation": true, "threshold": 40}),
            &json!({"score": 25, "in_rotation": false, "threshold": 40})
        ]
    );
    let statuses: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "message.status" && e.data["message_id"] == forced.as_str())
        .map(|e| e.data["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["sending", "sent", "delivered"]);
    let failed = events
        .iter()
        .filter(|e| e.kind == "message.status" && e.data["status"] == "failed")
        .filter(|e| e.data["error"].as_str().is_some_and(|m| m.contains("463")))
        .count();
    assert_eq!(failed, 5);
}

#[tokio::test]
async fn inbound_lids_are_normalised_and_numbered_replies_recognised() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant("acme").await;
    let n = app.fast_number(&key, "a", "+5511900000061", "default").await;
    let (_, v) = app
        .post(
            "/v1/messages",
            &key,
            json!({"to": "+5511977770001", "text": "Pay now?",
                   "menu": {"options": [{"id": "a", "title": "Yes"}, {"id": "b", "title": "Later"}]}}),
        )
        .await;
    let menu_msg = id(&v);
    app.wait_message(&key, &menu_msg, &["delivered"]).await;

    // The contact answers "2." as a LID (with its phone beside it, as WhatsApp does).
    let (s, r) = app
        .post(
            &format!("/v1/sim/instances/{n}/inbound"),
            ADMIN,
            json!({"from": "+5511977770001", "as_lid": true, "text": " 2. "}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    // Someone else writes in a group, by LID, mentioning that contact and this number.
    app.post(
        &format!("/v1/sim/instances/{n}/inbound"),
        ADMIN,
        json!({"from": "+5511977770002", "as_lid": true, "chat": "120363000000000001@g.us",
               "text": "@contact @you", "mentions": ["+5511977770001", "+5511900000061"]}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, v) = app.get(&format!("/v1/instances/{n}"), &key).await;
        if v["stats"]["received_today"] == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let dir = app.stop().await;
    let events = crate::helpers::event_log(dir.path(), &tenant).await;
    let received: Vec<&Value> =
        events.iter().filter(|e| e.kind == "message.received").map(|e| &e.data).collect();
    assert_eq!(received.len(), 2);
    let reply = received[0];
    assert_eq!(reply["sender"]["jid"], "5511977770001@s.whatsapp.net");
    assert_eq!(reply["sender"]["phone"], "+5511977770001");
    assert!(reply["sender"]["lid"].as_str().unwrap().ends_with("@lid"));
    assert_eq!(reply["chat"], json!({"jid": "5511977770001@s.whatsapp.net", "type": "direct"}));
    assert_eq!(reply["menu_reply"], json!({"message_id": menu_msg, "option": 2, "option_id": "b"}));
    let group = received[1];
    assert_eq!(group["chat"]["type"], "group");
    assert_eq!(group["sender"]["jid"], "5511977770002@s.whatsapp.net");
    // Mentions arrived as LIDs and are reported by phone, from mappings learned earlier
    // (the contact's reply, the number's own pairing).
    assert_eq!(
        group["mentions"],
        json!(["5511977770001@s.whatsapp.net", "5511900000061@s.whatsapp.net"])
    );
    assert_eq!(group["mentions_me"], true);
    assert!(group.get("menu_reply").is_none());
}

/// Issue 17: the LID ↔ phone map is per tenant. Tenant A's number learns a contact's LID; a
/// message to tenant B's number that mentions the same contact by LID shows the LID, not
/// the phone only A was told.
#[tokio::test]
async fn one_tenants_lid_mappings_never_show_in_another_tenants_events() {
    let app = TestApp::spawn().await;
    let (ta, ka) = app.tenant("a").await;
    let (tb, kb) = app.tenant("b").await;
    let na = app.fast_number(&ka, "a", "+5511900000081", "default").await;
    let nb = app.fast_number(&kb, "b", "+5511900000082", "default").await;
    // The contact writes to A's number by LID, its phone beside: A learns the mapping.
    let (s, r) = app
        .post(
            &format!("/v1/sim/instances/{na}/inbound"),
            ADMIN,
            json!({"from": "+5511977770091", "as_lid": true, "text": "hi"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let received = |n: String, key: String| {
        let app = &app;
        async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let (_, v) = app.get(&format!("/v1/instances/{n}"), &key).await;
                if v["stats"]["received_today"] == 1 {
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "{v}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    received(na.clone(), ka.clone()).await;
    // In B's group, someone mentions that contact (by LID, as WhatsApp does).
    let (s, r) = app
        .post(
            &format!("/v1/sim/instances/{nb}/inbound"),
            ADMIN,
            json!({"from": "+5511977770092", "as_lid": true, "chat": "120363000000000002@g.us",
                   "text": "@contact", "mentions": ["+5511977770091"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    received(nb.clone(), kb.clone()).await;

    let dir = app.stop().await;
    let of = |events: Vec<bzapper_store::Event>| -> Vec<Value> {
        events.into_iter().filter(|e| e.kind == "message.received").map(|e| e.data).collect()
    };
    let a = of(crate::helpers::event_log(dir.path(), &ta).await);
    assert_eq!(a[0]["sender"]["jid"], "5511977770091@s.whatsapp.net", "{a:?}");
    let lid = a[0]["sender"]["lid"].as_str().unwrap().to_string();
    let b = of(crate::helpers::event_log(dir.path(), &tb).await);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0]["mentions"], json!([lid]), "B was never told that LID's phone: {b:?}");
    assert!(!b[0].to_string().contains("5511977770091"), "{b:?}");
}

#[tokio::test]
async fn metrics_count_per_number_and_per_tenant() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant("acme").await;
    let n = app.fast_number(&key, "a", "+5511900000071", "default").await;
    for i in 0..2 {
        let (_, v) = app
            .post("/v1/messages", &key, json!({"to": format!("+55119444400{i:02}"), "text": "hi"}))
            .await;
        app.wait_message(&key, &id(&v), &["delivered"]).await;
    }
    app.post(
        &format!("/v1/sim/instances/{n}/inbound"),
        ADMIN,
        json!({"from": "+5511944440000", "text": "thanks"}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let figures = loop {
        let (s, v) = app.get("/v1/metrics", &key).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if v["total"]["received"] == 1 {
            break v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(
        figures["total"],
        json!({"sent": 2, "delivered": 2, "read": 0, "failed": 0, "received": 1})
    );
    assert_eq!(figures["instances"][0]["id"], n.as_str());
    assert_eq!(figures["instances"][0]["status"], "connected");

    let res =
        app.http.get(format!("{}/metrics", app.base)).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = res.text().await.unwrap();
    let l = format!("tenant=\"{tenant}\",instance=\"{n}\"");
    for line in [
        format!("bzapper_messages_total{{{l},status=\"delivered\"}} 2"),
        format!("bzapper_messages_total{{{l},status=\"sent\"}} 2"),
        format!("bzapper_messages_received_total{{{l}}} 1"),
        format!("bzapper_send_latency_seconds_count{{{l}}} 2"),
        format!("bzapper_instance_status{{{l},status=\"connected\"}} 1"),
        format!("bzapper_instance_health_score{{{l}}} 100"),
    ] {
        assert!(text.lines().any(|x| x == line), "missing `{line}` in:\n{text}");
    }
    assert_eq!(app.get("/metrics", &key).await.0, StatusCode::FORBIDDEN);
}
