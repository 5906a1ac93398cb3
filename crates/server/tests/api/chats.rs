//! Conversations: `GET /v1/chats` and `GET /v1/chats/{jid}/messages` — both directions in one
//! chat, newest first; a LID contact and a group; keyset pages; unread counts and reads;
//! tenant isolation; bad input.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{id, TestApp, ADMIN};

const CONTACT: &str = "+5511966661001";
const CONTACT_JID: &str = "5511966661001@s.whatsapp.net";

impl TestApp {
    /// Polls `path` until `pred` holds on its answer (20 s at most).
    async fn poll(&self, key: &str, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (s, v) = self.get(path, key).await;
            assert_eq!(s, StatusCode::OK, "{path}: {v}");
            if pred(&v) {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out on {path}; last: {v}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The simulated contact writes to number `n`; returns the WhatsApp id once its chat
    /// shows it.
    async fn writes(&self, key: &str, n: &str, body: Value) -> String {
        let (s, v) = self.post(&format!("/v1/sim/instances/{n}/inbound"), ADMIN, body).await;
        assert!(s.is_success(), "{v}");
        let wa = v["message_id"].as_str().unwrap().to_string();
        let path = format!("/v1/chats?instance_id={n}&limit=200");
        self.poll(key, &path, |v| {
            v["items"].as_array().unwrap().iter().any(|c| c["last_message"]["whatsapp_id"] == *wa)
        })
        .await;
        wa
    }

    /// Number `n` sends `text` to `to`; returns the message once it went out.
    async fn sends(&self, key: &str, n: &str, to: &str, text: &str) -> Value {
        let body = json!({"to": to, "text": text, "instance_id": n});
        let (s, v) = self.post("/v1/messages", key, body).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        self.wait_message(key, &id(&v), &["sent", "delivered", "read"]).await
    }

    async fn chat(&self, key: &str, n: &str, jid: &str) -> Value {
        let (s, v) = self.get(&format!("/v1/chats?instance_id={n}"), key).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let items = v["items"].as_array().unwrap();
        items
            .iter()
            .find(|c| c["jid"] == jid)
            .cloned()
            .unwrap_or_else(|| panic!("no chat {jid}: {v}"))
    }

    async fn history(&self, key: &str, path: &str) -> Vec<Value> {
        let (s, v) = self.get(path, key).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        v["items"].as_array().unwrap().clone()
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_chat_holds_both_directions_newest_first_and_counts_unread_until_read() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let n = app.fast_number(&key, "a", "+5511900001001", "default").await;

    let w1 = app.writes(&key, &n, json!({"from": CONTACT, "text": "hi", "push_name": "Ana"})).await;
    let chat = app.chat(&key, &n, CONTACT_JID).await;
    assert_eq!(chat["type"], "direct");
    assert_eq!(chat["phone"], CONTACT);
    assert_eq!(chat["push_name"], "Ana");
    assert_eq!(chat["unread_count"], 1);
    assert_eq!(chat["subject"], Value::Null);
    assert_eq!(chat["last_message"]["direction"], "in");
    assert_eq!(chat["last_message"]["sender"]["jid"], CONTACT_JID);

    // The number replies: the chat is read, and both directions show, newest first.
    let sent = app.sends(&key, &n, CONTACT, "Hello Ana").await;
    let chat = app.chat(&key, &n, CONTACT_JID).await;
    assert_eq!(chat["unread_count"], 0, "{chat}");
    assert_eq!(chat["last_message"]["id"], sent["id"]);
    let path = format!("/v1/chats/{CONTACT_JID}/messages");
    let items = app.history(&key, &path).await;
    assert_eq!(ids(&items), [sent["id"].as_str().unwrap(), w1.as_str()]);
    assert_eq!(items[0]["direction"], "out");
    assert_eq!(items[0]["instance_id"], json!(n));
    assert!(["sent", "delivered", "read"].contains(&items[0]["status"].as_str().unwrap()));
    assert_eq!(items[0]["text"], "Hello Ana");
    assert_eq!(items[1]["direction"], "in");
    assert_eq!(items[1]["status"], Value::Null);
    assert_eq!(items[1]["text"], "hi");

    // A reply quoting the number's message and a reaction to it; two unread now.
    let out_wa = sent["whatsapp_id"].as_str().unwrap().to_string();
    let w2 =
        app.writes(&key, &n, json!({"from": CONTACT, "text": "thanks", "reply_to": out_wa})).await;
    let w3 = app
        .writes(
            &key,
            &n,
            json!({"from": CONTACT, "text": "",
                                  "reaction": {"message_id": out_wa, "emoji": "👍"}}),
        )
        .await;
    let w4 = app.writes(&key, &n, json!({"from": CONTACT, "text": "one more"})).await;
    let items = app.history(&key, &path).await;
    assert_eq!(ids(&items)[..3], [w4.clone(), w3.clone(), w2.clone()]);
    assert_eq!(items[2]["reply_to"], json!(out_wa));
    assert_eq!(items[1]["kind"], "reaction");
    assert_eq!(items[1]["reaction"], json!({"whatsapp_id": out_wa, "emoji": "👍"}));
    assert_eq!(
        app.chat(&key, &n, CONTACT_JID).await["unread_count"],
        2,
        "a reaction is not unread"
    );

    // Reading the older one leaves the newer unread; reading the newest reads all.
    let read = |m: String| {
        let (app, key, n) = (&app, &key, &n);
        async move { app.post(&format!("/v1/instances/{n}/messages/{m}/read"), key, json!({})).await }
    };
    assert_eq!(read(w2).await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.chat(&key, &n, CONTACT_JID).await["unread_count"], 1);
    assert_eq!(read(w4).await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.chat(&key, &n, CONTACT_JID).await["unread_count"], 0);
}

#[tokio::test]
async fn a_lid_contact_is_a_chat_by_phone_and_a_group_shows_its_subject() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let phone = "+5511900001002";
    let n = app.fast_number(&key, "a", phone, "default").await;

    // The contact writes by LID, its phone beside: the chat is the phone JID's.
    let from = "+5511966661002";
    let jid = "5511966661002@s.whatsapp.net";
    let w1 = app.writes(&key, &n, json!({"from": from, "as_lid": true, "text": "by lid"})).await;
    let chat = app.chat(&key, &n, jid).await;
    let lid = chat["lid"].as_str().expect("the LID beside").to_string();
    assert!(lid.ends_with("@lid"), "{chat}");
    assert_eq!(chat["unread_count"], 1);
    let sent = app.sends(&key, &n, &lid, "answered to the LID").await;
    // Every way of naming the chat finds both messages, in one chat.
    for name in [
        jid.to_string(),
        jid.replace('@', "%40"),
        from.to_string(),
        from[1..].to_string(),
        lid.clone(),
    ] {
        let items = app.history(&key, &format!("/v1/chats/{name}/messages")).await;
        assert_eq!(ids(&items), [sent["id"].as_str().unwrap(), w1.as_str()], "as {name}");
        assert_eq!(items[1]["sender"]["jid"], jid);
        assert_eq!(items[1]["sender"]["lid"], json!(lid));
    }
    let (_, all) = app.get(&format!("/v1/chats?instance_id={n}"), &key).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "one chat: {all}");

    // A group, with the subject its number tells.
    let (s, g) = app
        .post(
            "/v1/sim/groups",
            ADMIN,
            json!({"subject": "Launch team", "participants": [phone, from]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{g}");
    let group = g["jid"].as_str().unwrap().to_string();
    let wg = app.writes(&key, &n, json!({"from": from, "chat": group, "text": "hello all"})).await;
    let chat = app.chat(&key, &n, &group).await;
    assert_eq!(chat["type"], "group");
    assert_eq!(chat["subject"], "Launch team");
    assert_eq!(chat["phone"], Value::Null);
    assert_eq!(chat["last_message"]["sender"]["jid"], jid);
    let items = app.history(&key, &format!("/v1/chats/{group}/messages")).await;
    assert_eq!(ids(&items), [wg]);
    // Newest first: the group is the first chat.
    let (_, all) = app.get("/v1/chats", &key).await;
    assert_eq!(all["items"][0]["jid"], json!(group), "{all}");
}

#[tokio::test]
async fn chats_and_messages_are_paged_without_gaps_and_stay_within_their_tenant() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let (_, other) = app.tenant("other").await;
    let n = app.fast_number(&key, "a", "+5511900001003", "default").await;
    let n2 = app.fast_number(&key, "b", "+5511900001004", "default").await;
    for i in 0..4 {
        app.writes(&key, &n, json!({"from": CONTACT, "text": format!("in {i}")})).await;
        app.sends(&key, &n, CONTACT, &format!("out {i}")).await;
    }
    for c in ["+5511966661011", "+5511966661012", "+5511966661013"] {
        app.writes(&key, &n, json!({"from": c, "text": "hello"})).await;
    }
    app.writes(&key, &n2, json!({"from": CONTACT, "text": "to the second number"})).await;

    // One chat's 8 messages, by pages of 3: the same as one page, nothing twice, nothing lost.
    let path = format!("/v1/chats/{CONTACT_JID}/messages?instance_id={n}");
    let whole = ids(&app.history(&key, &format!("{path}&limit=200")).await);
    assert_eq!(whole.len(), 8);
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = match &cursor {
            Some(c) => format!("{path}&limit=3&cursor={c}"),
            None => format!("{path}&limit=3"),
        };
        let (s, v) = app.get(&page, &key).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        paged.extend(ids(v["items"].as_array().unwrap()));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(paged, whole);
    // Without the number filter, the second number's message is in the same contact's chat.
    let both = app.history(&key, &format!("/v1/chats/{CONTACT_JID}/messages")).await;
    assert_eq!(both.len(), 9);
    assert_eq!(both[0]["instance_id"], json!(n2));

    // Chats by pages of one: five chats, newest first.
    let mut chats = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = match &cursor {
            Some(c) => format!("/v1/chats?limit=1&cursor={c}"),
            None => "/v1/chats?limit=1".to_string(),
        };
        let (s, v) = app.get(&page, &key).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        for c in v["items"].as_array().unwrap() {
            chats.push((
                c["instance_id"].as_str().unwrap().to_string(),
                c["jid"].as_str().unwrap().to_string(),
            ));
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(chats.len(), 5, "{chats:?}");
    assert_eq!(chats[0], (n2.clone(), CONTACT_JID.to_string()));
    let (_, only) = app.get(&format!("/v1/chats?instance_id={n2}"), &key).await;
    assert_eq!(only["items"].as_array().unwrap().len(), 1, "{only}");

    // Another tenant sees nothing of it.
    let (s, v) = app.get("/v1/chats", &other).await;
    assert_eq!((s, v["items"].as_array().unwrap().len()), (StatusCode::OK, 0), "{v}");
    let items = app.history(&other, &format!("/v1/chats/{CONTACT_JID}/messages")).await;
    assert!(items.is_empty());
    for path in [
        format!("/v1/chats?instance_id={n}"),
        format!("/v1/chats/{CONTACT_JID}/messages?instance_id={n}"),
    ] {
        let (s, v) = app.get(&path, &other).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{v}"
        );
    }
}

#[tokio::test]
async fn bad_chat_queries_are_refused_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    for path in [
        "/v1/chats?limit=0",
        "/v1/chats?limit=201",
        "/v1/chats?limit=many",
        "/v1/chats?cursor=bad!",
        "/v1/chats?cursor=WyJvdXQiLDEsIngiXQ",
        "/v1/chats?colour=blue",
        "/v1/chats/not-a-chat/messages",
        "/v1/chats/5511966661001@s.whatsapp.net/messages?cursor=bad!",
        "/v1/chats/5511966661001@s.whatsapp.net/messages?limit=0",
    ] {
        let (s, v) = app.get(path, &key).await;
        assert!(s.is_client_error(), "{path}: {s} {v}");
        assert!(v["error"]["code"].is_string(), "{path}: {v}");
    }
    let (s, _) = app.call(reqwest::Method::GET, "/v1/chats", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
