//! The HTTP control API (`bzapper simnet --wire`) end to end, with the real whatsapp-rust
//! client: scan by the QR it shows, its messages and chat states in the outbox, inbound
//! messages by phone and by LID, and a logout. One pairing (the client's 10 s grace).

mod common;

use std::sync::Arc;

use bzapper_wafake::{control, WireNet};
use common::{server, until, Client, WAIT};
use serde_json::{json, Value};
use wacore_binary::Jid;
use waproto::whatsapp as wa;
use whatsapp_rust::wacore::store::InMemoryBackend;
use whatsapp_rust::wacore::types::events::Event;

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.expect("GET");
        (r.status().as_u16(), r.json().await.expect("JSON"))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r =
            self.http.post(format!("{}{path}", self.base)).json(&body).send().await.expect("POST");
        (r.status().as_u16(), r.json().await.expect("JSON"))
    }
}

/// The text of the first inbound message; panics on an undecryptable one.
async fn inbound_text(client: &Client, what: &str) -> (String, String) {
    let (got, _) = client
        .wait(what, |e| match e {
            Event::Messages(batch) => batch.iter().find_map(|m| {
                let text = m.message.conversation.clone().or_else(|| {
                    m.message.extended_text_message.as_option().and_then(|x| x.text.clone())
                })?;
                Some((text, m.info.source.sender.to_string()))
            }),
            Event::UndecryptableMessage(u) => panic!("{what}: undecryptable: {u:?}"),
            _ => None,
        })
        .await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_api_end_to_end() {
    let server = server().await;
    let net = WireNet::new(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(control::serve(listener, net.clone(), std::future::pending()));
    let api = Api { base, http: reqwest::Client::new() };

    let (status, wire) = api.get("/wire").await;
    assert_eq!(status, 200);
    assert_eq!(wire["ws_url"], server.ws_url());

    // Scan with the QR the client shows.
    let store = Arc::new(InMemoryBackend::new());
    let client = Client::start(&server, store).await;
    let (qr, _) = client
        .wait("QR code", |e| match e {
            Event::PairingQrCode(q) => Some(q.code.clone()),
            _ => None,
        })
        .await;
    let (status, err) = api.post("/wire/scan", json!({"qr": qr, "phone": "+55 11 9"})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (422, Some("invalid_request")));
    let (status, err) =
        api.post("/wire/scan", json!({"qr": "2@nope,a,b,c", "phone": "+5511999990000"})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (404, Some("not_pairing")));
    let (status, paired) =
        api.post("/wire/scan", json!({"qr": qr, "phone": "+5511999990000"})).await;
    assert_eq!(status, 200, "{paired}");
    assert_eq!(paired["phone"], "+5511999990000");
    assert_eq!(paired["jid"], "5511999990000@s.whatsapp.net");
    let lid = paired["lid"].as_str().unwrap().to_string();
    assert!(lid.ends_with("@lid") && !lid.contains(':'), "{paired}");
    client.wait("PairSuccess", |e| matches!(e, Event::PairSuccess(_)).then_some(())).await;
    client.wait("Connected", |e| matches!(e, Event::Connected(_)).then_some(())).await;

    // Out: composing, a text, a text with a mention, all in the outbox in order.
    let c = client.handle.client();
    let bob: Jid = "5511988887777@s.whatsapp.net".parse().unwrap();
    c.chatstate().send_composing(&bob).await.unwrap();
    let text = wa::Message { conversation: Some("hello bob".into()), ..Default::default() };
    let sent = tokio::time::timeout(WAIT, c.send_message(bob.clone(), text))
        .await
        .expect("send_message hung")
        .expect("send_message failed");
    let mention = wa::Message {
        extended_text_message: wa::message::ExtendedTextMessage {
            text: Some("hi @5511977776666".into()),
            context_info: wa::ContextInfo {
                mentioned_jid: vec!["5511977776666@s.whatsapp.net".into()],
                ..Default::default()
            }
            .into(),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let sent2 = tokio::time::timeout(WAIT, c.send_message(bob.clone(), mention))
        .await
        .expect("send_message hung")
        .expect("send_message failed");
    until("two messages in the outbox", || net.outbox("5511999990000").len() >= 3).await;
    let (status, outbox) = api.get("/wire/devices/+5511999990000/outbox").await;
    assert_eq!(status, 200);
    let items = outbox["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{outbox}");
    assert_eq!(items[0]["presence"], "composing");
    assert_eq!(items[0]["to"], "5511988887777@s.whatsapp.net");
    assert!(items[0]["at"].is_string(), "{outbox}");
    assert_eq!(items[1]["text"], "hello bob");
    assert_eq!(items[1]["to"], "5511988887777@s.whatsapp.net");
    assert_eq!(items[1]["id"], sent.message_id.as_str());
    assert_eq!(items[1]["mentions"], json!([]));
    assert_eq!(items[2]["text"], "hi @5511977776666");
    assert_eq!(items[2]["id"], sent2.message_id.as_str());
    assert_eq!(items[2]["mentions"], json!(["5511977776666@s.whatsapp.net"]));

    // In: by phone number from the contact the client wrote to, then from a new contact by
    // LID, with a mention.
    let device = net.online_device("5511999990000").unwrap();
    until("the prekey upload", || server.prekey_upload(&device).is_some()).await;
    let (status, r) = api
        .post(
            "/wire/devices/5511999990000/inbound",
            json!({"from": "+5511988887777", "text": "hi back"}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert!(r["message_id"].as_str().is_some_and(|id| !id.is_empty()), "{r}");
    let (got, sender) = inbound_text(&client, "the inbound message").await;
    assert_eq!(got, "hi back");
    assert!(sender.starts_with("5511988887777"), "{sender}");

    let body = json!({
        "from": "+5511966665555",
        "text": "by lid @5511999990000",
        "mentions": ["+5511999990000"],
        "as_lid": true,
    });
    let (status, r) = api.post("/wire/devices/+5511999990000/inbound", body).await;
    assert_eq!(status, 200, "{r}");
    let (got, sender) = inbound_text(&client, "the inbound message by LID").await;
    assert_eq!(got, "by lid @5511999990000");
    let carol_lid = net.lid_of_phone("5511966665555");
    assert!(sender.starts_with(&carol_lid), "{sender} is not {carol_lid}@lid");
    // A reply to the contact that wrote by LID, on the session that message started.
    let carol: Jid = "5511966665555@s.whatsapp.net".parse().unwrap();
    let reply = wa::Message { conversation: Some("hi carol".into()), ..Default::default() };
    tokio::time::timeout(WAIT, c.send_message(carol, reply))
        .await
        .expect("send_message hung")
        .expect("send_message failed");
    until("the reply in the outbox", || net.outbox("5511999990000").len() >= 4).await;
    let (_, outbox) = api.get("/wire/devices/5511999990000/outbox").await;
    assert_eq!(outbox["items"][3]["text"], "hi carol", "{outbox}");
    assert_eq!(outbox["items"][3]["to"], "5511966665555@s.whatsapp.net", "{outbox}");

    // Failures: an unknown phone, a bad reason, then a logout.
    let (status, err) =
        api.post("/wire/devices/+5511000000001/fail", json!({"reason": "logged_out"})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (404, Some("not_connected")));
    let (status, err) =
        api.post("/wire/devices/+5511999990000/fail", json!({"reason": "sulking"})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (422, Some("invalid_request")));
    let (status, ok) =
        api.post("/wire/devices/5511999990000/fail", json!({"reason": "logged_out"})).await;
    assert_eq!((status, ok), (200, json!({"ok": true})));
    client.wait("LoggedOut", |e| matches!(e, Event::LoggedOut(_)).then_some(())).await;
    client.stop().await;
}

/// Stops `client` and connects a new one on the same store, expecting `Connected`.
async fn reconnect(
    server: &bzapper_wafake::WireServer,
    client: Client,
    store: Arc<InMemoryBackend>,
) -> Client {
    client.stop().await;
    until("the old socket to close", || server.connected().is_empty()).await;
    let again = Client::start(server, store).await;
    again.wait("Connected again", |e| matches!(e, Event::Connected(_)).then_some(())).await;
    again
}

/// `fail` with every other reason: transient, temporarily_banned (then over), replaced, and
/// banned, which the client reports as a `TemporaryBan` with a zero expiry, on every login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_api_failures() {
    let server = server().await;
    let net = WireNet::new(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(control::serve(listener, net.clone(), std::future::pending()));
    let api = Api { base, http: reqwest::Client::new() };

    let store = Arc::new(InMemoryBackend::new());
    let client = Client::start(&server, store.clone()).await;
    let (qr, _) = client
        .wait("QR code", |e| match e {
            Event::PairingQrCode(q) => Some(q.code.clone()),
            _ => None,
        })
        .await;
    let (status, paired) =
        api.post("/wire/scan", json!({"qr": qr, "phone": "5511999990001"})).await;
    assert_eq!(status, 200, "{paired}");
    client.wait("Connected", |e| matches!(e, Event::Connected(_)).then_some(())).await;
    let device = net.online_device("5511999990001").unwrap();
    until("the app-state bootstrap", || {
        let asked = server.app_state_requests(&device);
        ["regular", "regular_high", "regular_low"].iter().all(|c| asked.iter().any(|a| a == c))
    })
    .await;
    let fail = |reason: Value| api.post("/wire/devices/+5511999990001/fail", reason);

    assert_eq!(fail(json!({"reason": "transient"})).await, (200, json!({"ok": true})));
    client.wait("Disconnected", |e| matches!(e, Event::Disconnected(_)).then_some(())).await;
    client.wait("Connected again", |e| matches!(e, Event::Connected(_)).then_some(())).await;

    let r = fail(json!({"reason": "temporarily_banned", "expire_secs": 2})).await;
    assert_eq!(r, (200, json!({"ok": true})));
    let ((code, expire), _) = client
        .wait("TemporaryBan", |e| match e {
            Event::TemporaryBan(b) => Some((b.code.code(), b.expire.num_seconds())),
            _ => None,
        })
        .await;
    assert_eq!((code, expire), (101, 2));
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let client = reconnect(&server, client, store.clone()).await;

    assert_eq!(fail(json!({"reason": "replaced"})).await, (200, json!({"ok": true})));
    client.wait("StreamReplaced", |e| matches!(e, Event::StreamReplaced(_)).then_some(())).await;
    let client = reconnect(&server, client, store.clone()).await;

    assert_eq!(fail(json!({"reason": "banned"})).await, (200, json!({"ok": true})));
    let ban = |e: &Event| match e {
        Event::TemporaryBan(b) => Some((b.code.code(), b.expire.num_seconds())),
        Event::Connected(_) => panic!("a banned phone connected"),
        _ => None,
    };
    let (got, _) = client.wait("the ban", ban).await;
    assert_eq!(got, (control::BANNED_CODE as i32, 0));
    client.stop().await;
    let again = Client::start(&server, store).await;
    let (got, _) = again.wait("the ban on the next login", ban).await;
    assert_eq!(got, (control::BANNED_CODE as i32, 0));
    let (status, err) = fail(json!({"reason": "banned"})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (404, Some("not_connected")));
    again.stop().await;
}
