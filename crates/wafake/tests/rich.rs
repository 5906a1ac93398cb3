//! Every kind of message both ways with the real whatsapp-rust client, over a `WireNet` and
//! its media host: the client uploads an image and a document (through `media_conn`, the
//! upload and the resumable probe) and sends them, a quote, a reaction, a location and a
//! contact card, and the outbox shows each one with its data (media by the plaintext's size
//! and hash, which the fake decrypts). Inbound through the control API: an image the client
//! downloads byte for byte, a made-up document, a location quoting the client, a contact
//! card and a reaction. One pairing (the client's 10 s grace).

mod common;

use bzapper_wafake::{control, WireNet};
use common::{paired, server, until, Client, WAIT};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wacore_binary::Jid;
use waproto::whatsapp as wa;
use whatsapp_rust::download::MediaType;
use whatsapp_rust::upload::{UploadOptions, UploadResponse};
use whatsapp_rust::wacore::types::events::Event;
use whatsapp_rust::wacore::types::message::MessageInfo;

const ME: &str = "5511987650011";
const ANA: &str = "5511912340021";
const VCARD: &str =
    "BEGIN:VCARD\nVERSION:3.0\nFN:Ana Souza\nTEL;type=CELL:+5511988887777\nEND:VCARD";

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A PNG-looking image.
fn png() -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend((0..5000u32).map(|i| (i * 7 % 256) as u8));
    v
}

/// A PDF-looking file of `size` bytes.
fn pdf(size: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.4\n".to_vec();
    v.extend((0..size - v.len()).map(|i| (i % 251) as u8));
    v
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn inbound(&self, body: Value) -> (u16, Value) {
        let url = format!("{}/wire/devices/{ME}/inbound", self.base);
        let r = self.http.post(url).json(&body).send().await.expect("POST");
        (r.status().as_u16(), r.json().await.expect("JSON"))
    }

    async fn outbox(&self) -> Vec<Value> {
        let url = format!("{}/wire/devices/{ME}/outbox", self.base);
        let v: Value = self.http.get(url).send().await.unwrap().json().await.unwrap();
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// The outbox entry with message id `id`, once it is there.
    async fn entry(&self, net: &WireNet, id: &str) -> Value {
        until(&format!("{id} in the outbox"), || {
            net.outbox(ME).iter().any(|i| serde_json::to_value(i).unwrap()["id"] == id)
        })
        .await;
        self.outbox().await.into_iter().find(|e| e["id"] == id).unwrap()
    }
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

async fn send(client: &Client, to: &Jid, message: wa::Message) -> String {
    tokio::time::timeout(WAIT, client.handle.client().send_message(to.clone(), message))
        .await
        .expect("send_message hung")
        .expect("send_message failed")
        .message_id
        .to_string()
}

async fn upload(client: &Client, data: Vec<u8>, kind: MediaType) -> UploadResponse {
    tokio::time::timeout(WAIT, client.handle.client().upload(data, kind, UploadOptions::new()))
        .await
        .expect("upload hung")
        .expect("upload failed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rich_messages_both_ways() {
    let server = server().await;
    let net = WireNet::new(server.clone());
    assert_eq!(net.media_addr().ip(), server.addr().ip());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(control::serve(listener, net.clone(), std::future::pending()));
    let api = Api { base, http: reqwest::Client::new() };
    let (client, _store, _) = paired(&server, ME).await;
    let ana: Jid = format!("{ANA}@s.whatsapp.net").parse().unwrap();
    let me_jid = format!("{ME}@s.whatsapp.net");

    // Out: an image with a caption and a mention, a 6 MB document (which takes the resumable
    // upload's probe first).
    let image = png();
    let up = upload(&client, image.clone(), MediaType::Image).await;
    let msg = wa::Message {
        image_message: wa::message::ImageMessage {
            url: Some(up.url.clone()),
            direct_path: Some(up.direct_path.clone()),
            media_key: Some(up.media_key.to_vec()),
            file_sha256: Some(up.file_sha256.to_vec()),
            file_enc_sha256: Some(up.file_enc_sha256.to_vec()),
            file_length: Some(up.file_length),
            mimetype: Some("image/png".into()),
            caption: Some(format!("our logo @{ANA}")),
            context_info: wa::ContextInfo {
                mentioned_jid: vec![ana.to_string()],
                ..Default::default()
            }
            .into(),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let image_id = send(&client, &ana, msg).await;
    let doc = pdf(6 * 1024 * 1024);
    let up = upload(&client, doc.clone(), MediaType::Document).await;
    let msg = wa::Message {
        document_message: wa::message::DocumentMessage {
            url: Some(up.url.clone()),
            direct_path: Some(up.direct_path.clone()),
            media_key: Some(up.media_key.to_vec()),
            file_sha256: Some(up.file_sha256.to_vec()),
            file_enc_sha256: Some(up.file_enc_sha256.to_vec()),
            file_length: Some(up.file_length),
            mimetype: Some("application/pdf".into()),
            file_name: Some("report.pdf".into()),
            title: Some("report.pdf".into()),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let doc_id = send(&client, &ana, msg).await;

    let e = api.entry(&net, &image_id).await;
    assert_eq!(
        (&e["kind"], &e["mime"], &e["size"], &e["sha256"]),
        (&json!("image"), &json!("image/png"), &json!(image.len()), &json!(hex_sha256(&image))),
        "{e}"
    );
    assert_eq!((&e["caption"], &e["text"]), (&json!(format!("our logo @{ANA}")), &e["caption"]));
    assert_eq!(e["mentions"], json!([ana.to_string()]), "{e}");
    assert_eq!(
        (&e["voice"], &e["file_name"], &e["to"]),
        (&json!(false), &Value::Null, &json!(ana.to_string()))
    );
    let e = api.entry(&net, &doc_id).await;
    assert_eq!((&e["kind"], &e["file_name"]), (&json!("document"), &json!("report.pdf")), "{e}");
    assert_eq!((&e["size"], &e["sha256"]), (&json!(doc.len()), &json!(hex_sha256(&doc))), "{e}");

    // In: Ana writes; the client quotes her, reacts to her, sends a location and a card.
    let device = net.online_device(ME).unwrap();
    until("the prekey upload", || server.prekey_upload(&device).is_some()).await;
    let (s, r) = api.inbound(json!({"from": format!("+{ANA}"), "text": "where are you?"})).await;
    assert_eq!(s, 200, "{r}");
    assert!(r.get("sha256").is_none(), "{r}");
    let asked = r["message_id"].as_str().unwrap().to_string();
    let (m, info) = received(&client, "the question").await;
    assert_eq!(m.conversation.as_deref(), Some("where are you?"));
    assert_eq!(info.id.to_string(), asked);

    let reply = wa::Message {
        extended_text_message: wa::message::ExtendedTextMessage {
            text: Some("here".into()),
            context_info: wa::ContextInfo {
                stanza_id: Some(asked.clone()),
                participant: Some(ana.to_string()),
                quoted_message: wa::Message {
                    conversation: Some("where are you?".into()),
                    ..Default::default()
                }
                .into(),
                ..Default::default()
            }
            .into(),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let reply_id = send(&client, &ana, reply).await;
    let key = wa::MessageKey {
        remote_jid: Some(ana.to_string()),
        from_me: Some(false),
        id: Some(asked.clone()),
        participant: None,
    };
    let react_id = send(
        &client,
        &ana,
        whatsapp_rust::wacore::proto_helpers::build_reaction_message(key, "👍", 1),
    )
    .await;
    let loc = wa::Message {
        location_message: wa::message::LocationMessage {
            degrees_latitude: Some(-23.5614),
            degrees_longitude: Some(-46.6559),
            name: Some("Office".into()),
            address: Some("Av. Paulista 1000".into()),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let loc_id = send(&client, &ana, loc).await;
    let card = wa::Message {
        contact_message: wa::message::ContactMessage {
            display_name: Some("Ana Souza".into()),
            vcard: Some(VCARD.into()),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let card_id = send(&client, &ana, card).await;

    let e = api.entry(&net, &reply_id).await;
    assert_eq!((&e["text"], &e["reply_to"]), (&json!("here"), &json!(asked)), "{e}");
    assert!(e.get("kind").is_none(), "{e}");
    let e = api.entry(&net, &react_id).await;
    assert_eq!(e["reaction"], json!({"message_id": asked, "emoji": "👍"}), "{e}");
    assert_eq!(e["text"], "", "{e}");
    let e = api.entry(&net, &loc_id).await;
    assert_eq!(
        e["location"],
        json!({"latitude": -23.5614, "longitude": -46.6559, "name": "Office",
               "address": "Av. Paulista 1000"}),
        "{e}"
    );
    let e = api.entry(&net, &card_id).await;
    assert_eq!(e["contact"], json!({"display_name": "Ana Souza", "vcard": VCARD}), "{e}");

    // In: an image with a caption, a mention and a push name; the client downloads it.
    let (s, r) = api
        .inbound(json!({
            "from": ANA, "text": format!("see this @{ME}"), "mentions": [format!("+{ME}")],
            "push_name": "Ana S.",
            "media": {"kind": "image", "mime": "image/png", "data_base64": b64(&image)},
        }))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["sha256"], hex_sha256(&image), "{r}");
    let (m, info) = received(&client, "the inbound image").await;
    assert_eq!(info.id.to_string(), r["message_id"].as_str().unwrap());
    assert_eq!(info.push_name, "Ana S.");
    let img = m.image_message.as_option().expect("an image message");
    assert_eq!(img.mimetype.as_deref(), Some("image/png"));
    assert_eq!(img.caption.as_deref(), Some(format!("see this @{ME}").as_str()));
    assert_eq!(img.file_length, Some(image.len() as u64));
    assert_eq!(img.context_info.mentioned_jid, std::slice::from_ref(&me_jid));
    let got = tokio::time::timeout(WAIT, client.handle.client().download(img))
        .await
        .expect("download hung")
        .expect("download failed");
    assert_eq!(hex_sha256(&got), r["sha256"].as_str().unwrap());
    assert_eq!(got, image);

    // A made-up 3 MB document, a voice note.
    let (s, r) = api
        .inbound(json!({"from": ANA, "media": {"kind": "document", "mime": "application/pdf",
                        "file_name": "big.pdf", "size": 3 * 1024 * 1024}}))
        .await;
    assert_eq!(s, 200, "{r}");
    let (m, _) = received(&client, "the inbound document").await;
    let d = m.document_message.as_option().expect("a document message");
    assert_eq!(d.file_name.as_deref(), Some("big.pdf"));
    let got = client.handle.client().download(d).await.expect("download the document");
    assert_eq!(
        (got.len(), hex_sha256(&got)),
        (3 * 1024 * 1024, r["sha256"].as_str().unwrap().into())
    );
    let (s, r) = api
        .inbound(json!({"from": ANA, "media": {"kind": "audio", "mime": "audio/ogg; codecs=opus",
                        "voice": true, "size": 3000}}))
        .await;
    assert_eq!(s, 200, "{r}");
    let (m, _) = received(&client, "the inbound voice note").await;
    let a = m.audio_message.as_option().expect("an audio message");
    assert_eq!((a.ptt, a.file_length), (Some(true), Some(3000)));

    // A location quoting the client's image, a card, a reaction to the client's location.
    let (s, r) = api
        .inbound(
            json!({"from": ANA, "location": {"latitude": 1.5, "longitude": 2.5, "name": "Cafe"},
                        "reply_to": image_id}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (m, _) = received(&client, "the inbound location").await;
    let l = m.location_message.as_option().expect("a location message");
    assert_eq!((l.degrees_latitude, l.degrees_longitude), (Some(1.5), Some(2.5)));
    assert_eq!(l.name.as_deref(), Some("Cafe"));
    assert_eq!(l.context_info.stanza_id.as_deref(), Some(image_id.as_str()));
    assert_eq!(l.context_info.participant.as_deref(), Some(me_jid.as_str()));
    assert_eq!(
        l.context_info.quoted_message.conversation.as_deref(),
        Some(format!("our logo @{ANA}").as_str())
    );
    let (s, r) = api.inbound(json!({"from": ANA, "contact": {"vcard": VCARD}})).await;
    assert_eq!(s, 200, "{r}");
    let (m, _) = received(&client, "the inbound card").await;
    let c = m.contact_message.as_option().expect("a contact message");
    assert_eq!((c.display_name.as_deref(), c.vcard.as_deref()), (Some("Ana Souza"), Some(VCARD)));
    let (s, r) =
        api.inbound(json!({"from": ANA, "reaction": {"message_id": loc_id, "emoji": "❤️"}})).await;
    assert_eq!(s, 200, "{r}");
    let (m, _) = received(&client, "the inbound reaction").await;
    let re = m.reaction_message.as_option().expect("a reaction message");
    assert_eq!(re.text.as_deref(), Some("❤️"));
    assert_eq!(re.key.id.as_deref(), Some(loc_id.as_str()));
    assert_eq!(re.key.from_me, Some(false));

    // Refused: a message to an unknown group, two kinds at once, a bad sender.
    for (body, why) in [
        (json!({"from": ANA, "text": "hi", "chat": "120363000000000001@g.us"}), "group"),
        (
            json!({"from": ANA, "location": {"latitude": 1, "longitude": 2},
                "contact": {"vcard": VCARD}}),
            "two kinds",
        ),
        (json!({"from": "nope", "text": "hi"}), "bad sender"),
    ] {
        let (s, r) = api.inbound(body).await;
        assert_eq!((s, r["error"]["code"].as_str()), (422, Some("invalid_request")), "{why}: {r}");
    }
    let (_, r) = api.inbound(json!({"from": ANA, "text": "x", "chat": "1@g.us"})).await;
    assert!(r["error"]["message"].as_str().unwrap().contains("no group 1@g.us"), "{r}");
    client.stop().await;
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
