//! Receipts and group messages with the real whatsapp-rust client, over a `WireNet` and its
//! control API:
//! - `receipts_for_sent_messages`: a text the client sends to a contact comes back with a
//!   delivery receipt from it; the `read` route sends the read receipt.
//! - `group_messages_both_ways`: the client sends two texts to a group of two fake
//!   contacts (the first distributes its sender key, the second is skmsg only), and each is
//!   one outbox item to the group, delivered by both; fake contacts post in the group (the
//!   first with their sender key, the rest skmsg only), with a mention of the device.
//!
//! One pairing each (the client's 10 s grace); they run in parallel.

mod common;

use bzapper_wafake::{control, WireNet};
use common::{paired, server, until, Client, WAIT};
use serde_json::{json, Value};
use wacore_binary::Jid;
use waproto::whatsapp as wa;
use whatsapp_rust::wacore::types::events::{Event, Receipt};
use whatsapp_rust::wacore::types::message::MessageInfo;
use whatsapp_rust::wacore::types::presence::ReceiptType;

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn start(net: &std::sync::Arc<WireNet>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(control::serve(listener, net.clone(), std::future::pending()));
        Self { base, http: reqwest::Client::new() }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r =
            self.http.post(format!("{}{path}", self.base)).json(&body).send().await.expect("POST");
        (r.status().as_u16(), r.json().await.expect("JSON"))
    }

    async fn outbox(&self, phone: &str) -> Vec<Value> {
        let url = format!("{}/wire/devices/{phone}/outbox", self.base);
        let v: Value = self.http.get(url).send().await.unwrap().json().await.unwrap();
        v["items"].as_array().cloned().unwrap_or_default()
    }
}

fn text(body: &str) -> wa::Message {
    wa::Message { conversation: Some(body.to_string()), ..Default::default() }
}

async fn send(client: &Client, to: &Jid, message: wa::Message) -> String {
    tokio::time::timeout(WAIT, client.handle.client().send_message(to.clone(), message))
        .await
        .expect("send_message hung")
        .expect("send_message failed")
        .message_id
        .to_string()
}

/// The next receipt of `kind` for message `id`.
async fn receipt(client: &Client, what: &str, id: &str, kind: ReceiptType) -> Receipt {
    let (r, _) = client
        .wait(what, |e| match e {
            Event::Receipt(r) if r.r#type == kind && r.message_ids.iter().any(|m| *m == id) => {
                Some(r.clone())
            }
            _ => None,
        })
        .await;
    r
}

/// The next message the client receives.
async fn received(client: &Client, what: &str) -> (wa::Message, MessageInfo) {
    let (got, _) = client
        .wait(what, |e| match e {
            Event::Messages(batch) => {
                batch.iter().next().map(|m| ((*m.message).clone(), (*m.info).clone()))
            }
            Event::UndecryptableMessage(u) => panic!("{what}: undecryptable: {u:?}"),
            _ => None,
        })
        .await;
    got
}

fn text_of(m: &wa::Message) -> Option<String> {
    m.conversation
        .clone()
        .or_else(|| m.extended_text_message.as_option().and_then(|x| x.text.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_for_sent_messages() {
    const ME: &str = "5511987650031";
    const ANA: &str = "5511912340041";
    const BOB: &str = "5511912340042";
    let server = server().await;
    let net = WireNet::new(server.clone());
    let api = Api::start(&net).await;
    let (client, _store, _) = paired(&server, ME).await;
    let ana: Jid = format!("{ANA}@s.whatsapp.net").parse().unwrap();

    // Sent, then delivered: the receipt comes from the contact after the server's ack.
    let id = send(&client, &ana, text("are you there?")).await;
    let r = receipt(&client, "the delivery receipt", &id, ReceiptType::Delivered).await;
    assert_eq!(r.source.chat, ana);
    assert_eq!(r.source.sender, ana);
    assert_eq!(api.outbox(ME).await[0]["id"], id.as_str());

    // Read, when the contact says so.
    let path = format!("/wire/devices/{ME}/read");
    let (s, b) = api.post(&path, json!({"message_id": id, "from": format!("+{ANA}")})).await;
    assert_eq!((s, &b), (200, &json!({"ok": true})));
    let r = receipt(&client, "the read receipt", &id, ReceiptType::Read).await;
    assert_eq!(r.source.chat, ana);

    // Refused: an unknown message, a contact it was not sent to, a bad body, no device.
    let (s, b) = api.post(&path, json!({"message_id": "3EB0NOPE", "from": ANA})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("unknown_message")), "{b}");
    let (s, b) = api.post(&path, json!({"message_id": id, "from": BOB})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (422, Some("invalid_request")), "{b}");
    let (s, b) = api.post(&path, json!({"message_id": id})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (422, Some("invalid_request")), "{b}");
    let (s, b) = api
        .post(&format!("/wire/devices/{BOB}/read"), json!({"message_id": id, "from": ANA}))
        .await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_connected")), "{b}");
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_messages_both_ways() {
    const ME: &str = "5511987650032";
    const ANA: &str = "5511912340051";
    const BOB: &str = "5511912340052";
    const CARL: &str = "5511912340053";
    let server = server().await;
    let net = WireNet::new(server.clone());
    let api = Api::start(&net).await;
    let (client, _store, _) = paired(&server, ME).await;
    let ana: Jid = format!("{ANA}@s.whatsapp.net").parse().unwrap();
    let bob: Jid = format!("{BOB}@s.whatsapp.net").parse().unwrap();
    let me_jid = format!("{ME}@s.whatsapp.net");
    let (s, b) = api
        .post(
            "/wire/groups",
            json!({"subject": "Team", "participants": [ME, ANA, BOB], "admins": [ME]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let group: Jid = b["jid"].as_str().unwrap().parse().unwrap();
    let (_, b) = api.post("/wire/groups", json!({"participants": [ANA, CARL]})).await;
    let other_group = b["jid"].as_str().unwrap().to_string();

    // Out: the first send distributes the sender key, the second uses the cached one; each
    // is one outbox item to the group, delivered by both participants.
    let first = send(&client, &group, text("hello team")).await;
    let mut from = Vec::new();
    for _ in 0..2 {
        let r = receipt(&client, "a group delivery receipt", &first, ReceiptType::Delivered).await;
        assert_eq!(r.source.chat, group);
        from.push(r.source.sender.to_string());
    }
    from.sort();
    assert_eq!(from, [ana.to_string(), bob.to_string()]);
    let second = wa::Message {
        extended_text_message: buffa::MessageField::some(wa::message::ExtendedTextMessage {
            text: Some(format!("@{ANA} second")),
            context_info: buffa::MessageField::some(wa::ContextInfo {
                mentioned_jid: vec![ana.to_string()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let second = send(&client, &group, second).await;
    until("both group sends in the outbox", || net.outbox(ME).len() == 2).await;
    let items = api.outbox(ME).await;
    let got: Vec<_> =
        items.iter().map(|i| (i["to"].clone(), i["text"].clone(), i["id"].clone())).collect();
    assert_eq!(
        got,
        [
            (json!(group.to_string()), json!("hello team"), json!(first)),
            (json!(group.to_string()), json!(format!("@{ANA} second")), json!(second)),
        ]
    );
    assert_eq!(items[1]["mentions"], json!([ana.to_string()]));
    receipt(&client, "the second's delivery receipt", &second, ReceiptType::Delivered).await;

    // Read in the group by Ana.
    let path = format!("/wire/devices/{ME}/read");
    let (s, b) = api.post(&path, json!({"message_id": first, "from": ANA})).await;
    assert_eq!(s, 200, "{b}");
    let r = receipt(&client, "the group read receipt", &first, ReceiptType::Read).await;
    assert_eq!((r.source.chat.clone(), r.source.sender.clone()), (group.clone(), ana.clone()));
    let (s, b) = api.post(&path, json!({"message_id": first, "from": CARL})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (422, Some("invalid_request")), "{b}");

    // In: Ana posts twice (the second skmsg only), with a mention of the device; Bob once.
    let inbound = format!("/wire/devices/{ME}/inbound");
    let (s, b) =
        api.post(&inbound, json!({"from": ANA, "chat": group.to_string(), "text": "hi all"})).await;
    assert_eq!(s, 200, "{b}");
    let (m, info) = received(&client, "Ana's first group message").await;
    assert_eq!(text_of(&m).as_deref(), Some("hi all"));
    assert_eq!(info.id.to_string(), b["message_id"].as_str().unwrap());
    assert_eq!(
        (info.source.chat.clone(), info.source.sender.clone()),
        (group.clone(), ana.clone())
    );
    assert!(info.source.is_group);
    let (s, b) = api
        .post(
            &inbound,
            json!({"from": ANA, "chat": group.to_string(), "text": "@me look", "mentions": [ME],
                "reply_to": first}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (m, info) = received(&client, "Ana's second group message").await;
    assert_eq!(text_of(&m).as_deref(), Some("@me look"));
    assert_eq!(
        (info.source.chat.clone(), info.source.sender.clone()),
        (group.clone(), ana.clone())
    );
    let ctx = m.extended_text_message.as_option().unwrap().context_info.as_option().unwrap();
    assert_eq!(ctx.mentioned_jid, std::slice::from_ref(&me_jid));
    assert_eq!(ctx.stanza_id.as_deref(), Some(first.as_str()));
    assert_eq!(ctx.participant.as_deref(), Some(me_jid.as_str()));
    let (s, b) = api
        .post(
            &inbound,
            json!({"from": BOB, "chat": group.to_string(), "location":
            {"latitude": -23.5, "longitude": -46.6, "name": "Office"}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (m, info) = received(&client, "Bob's group location").await;
    assert_eq!(m.location_message.as_option().unwrap().name.as_deref(), Some("Office"));
    assert_eq!(
        (info.source.chat.clone(), info.source.sender.clone()),
        (group.clone(), bob.clone())
    );
    let (s, b) =
        api.post(&inbound, json!({"from": ANA, "chat": group.to_string(), "text": "third"})).await;
    assert_eq!(s, 200, "{b}");
    let (m, _) = received(&client, "Ana's third group message").await;
    assert_eq!(text_of(&m).as_deref(), Some("third"));
    // Bob by his LID (skmsg only: his sender key came with the location), then a reaction
    // to the client's first group message.
    let (s, b) = api
        .post(
            &inbound,
            json!({"from": BOB, "chat": group.to_string(), "text": "lid", "as_lid": true}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (m, info) = received(&client, "Bob's group message by LID").await;
    assert_eq!(text_of(&m).as_deref(), Some("lid"));
    let bob_lid = format!("{}@lid", net.lid_of_phone(BOB));
    assert_eq!(info.source.chat, group);
    assert_eq!(info.source.sender.to_string(), bob_lid);
    assert_eq!(info.source.sender_alt.as_ref(), Some(&bob));
    let (s, b) = api
        .post(
            &inbound,
            json!({"from": BOB, "chat": group.to_string(),
            "reaction": {"message_id": first, "emoji": "👍"}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (m, info) = received(&client, "Bob's reaction in the group").await;
    assert_eq!(info.source.chat, group);
    let re = m.reaction_message.as_option().expect("a reaction");
    assert_eq!(re.text.as_deref(), Some("👍"));
    assert_eq!(re.key.id.as_deref(), Some(first.as_str()));
    assert_eq!(re.key.remote_jid.as_deref(), Some(group.to_string().as_str()));
    assert_eq!(re.key.participant.as_deref(), Some(me_jid.as_str()));

    // The client answers in the group: decrypted on the sender key it already distributed.
    let third = send(&client, &group, text("ok")).await;
    until("the third group send in the outbox", || net.outbox(ME).len() == 3).await;
    assert_eq!(api.outbox(ME).await[2]["id"], third.as_str());

    // Refused: not a group, an unknown group, a sender or a device outside the group.
    for (body, why) in [
        (json!({"from": ANA, "chat": format!("{BOB}@s.whatsapp.net"), "text": "x"}), "not a group"),
        (json!({"from": ANA, "chat": "120363000000000001@g.us", "text": "x"}), "unknown group"),
        (json!({"from": CARL, "chat": group.to_string(), "text": "x"}), "sender outside"),
        (json!({"from": ANA, "chat": other_group, "text": "x"}), "device outside"),
    ] {
        let (s, b) = api.post(&inbound, body).await;
        assert_eq!((s, b["error"]["code"].as_str()), (422, Some("invalid_request")), "{why}: {b}");
    }
    client.stop().await;
}
