//! Rich messages on the REAL WhatsApp driver against the wire-level fake, through the
//! gateway's HTTP API only, both ways: media uploaded to and downloaded from the fake's media
//! host (encrypted as WhatsApp does; the fake decrypts what it receives and checks the hashes),
//! a voice note with "recording", locations, contact cards, reactions, quoted replies, delivery
//! receipts; groups (listed, and messages both ways with sender keys) and contact checks
//! answered over the wire.

use serde_json::{json, Value};

#[path = "../../server/tests/api/media_files.rs"]
mod media_files;
mod support;
mod wire_support;

use media_files::{hex_sha256, mp4, ogg, pdf, webp, PNG, VCARD};

use wire_support::{Wire, ADMIN};

const ME: &str = "+5511987650011";
const ANA: &str = "+5511912340021";

/// Uploads a file and sends it as `kind` with the `extra` fields; the message once sent.
async fn send_file(
    wire: &Wire,
    key: &str,
    (kind, name, mime, bytes): (&str, &str, &str, &[u8]),
    extra: Value,
) -> Value {
    let (s, up) = wire.upload(key, name, mime, bytes).await;
    assert_eq!(s, 201, "{kind}: {up}");
    let mut media = extra;
    media["media_id"] = up["id"].clone();
    let mentions = media.as_object_mut().unwrap().remove("mentions").unwrap_or(json!([]));
    let mid = wire.send(key, json!({"to": ANA, kind: media, "mentions": mentions})).await;
    let m = wire.wait_message(key, &mid, &["sent", "delivered", "failed"]).await;
    assert_ne!(m["status"], "failed", "{kind}: {m}\n{}", wire.gateway_log());
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rich_messages_groups_and_contact_checks_on_the_real_driver() {
    let wire = Wire::start();
    let key = wire.tenant("rich").await;
    let iid = wire.linked_number(&key, "rich", ME).await;
    let mut events = wire.events(&key, "types=message.received").await;

    // Media out: the fake decrypts each upload and reports the plaintext's size and hash.
    let image = send_file(
        &wire,
        &key,
        ("image", "dot.png", "image/png", PNG),
        json!({"caption": "our logo @5511912340021", "mentions": [ANA]}),
    )
    .await;
    let doc_bytes = pdf(2 * 1024 * 1024);
    let doc = send_file(
        &wire,
        &key,
        ("document", "r.pdf", "application/pdf", &doc_bytes),
        json!({"file_name": "report.pdf"}),
    )
    .await;
    let voice =
        send_file(&wire, &key, ("audio", "v.ogg", "audio/ogg", &ogg()), json!({"voice": true}))
            .await;
    let clip = mp4();
    let video =
        send_file(&wire, &key, ("video", "c.mp4", "video/mp4", &clip), json!({"caption": "watch"}))
            .await;
    let sticker_bytes = webp();
    let sticker =
        send_file(&wire, &key, ("sticker", "s.webp", "image/webp", &sticker_bytes), json!({}))
            .await;
    let wa = |m: &Value| m["whatsapp_id"].as_str().unwrap().to_string();
    for (m, kind, bytes) in [(&video, "video", &clip), (&sticker, "sticker", &sticker_bytes)] {
        let (e, _) = wire.outbox_entry(&iid, kind, |e| e["id"] == wa(m)).await;
        assert_eq!((&e["kind"], &e["size"]), (&json!(kind), &json!(bytes.len())), "{e}");
        assert_eq!(e["sha256"], hex_sha256(bytes), "{e}");
    }
    let (e, _) = wire.outbox_entry(&iid, "the video", |e| e["id"] == wa(&video)).await;
    assert_eq!(e["caption"], "watch", "{e}");
    // This MP4 has no `moov`: it goes out without a duration rather than not at all.
    assert!(e.get("seconds").is_none(), "{e}");
    let (e, _) = wire.outbox_entry(&iid, "the image", |e| e["id"] == wa(&image)).await;
    assert_eq!(
        (&e["kind"], &e["mime"], &e["size"], &e["sha256"]),
        (&json!("image"), &json!("image/png"), &json!(PNG.len()), &json!(hex_sha256(PNG))),
        "{e}"
    );
    assert_eq!(e["caption"], "our logo @5511912340021", "{e}");
    assert_eq!(e["mentions"], json!(["5511912340021@s.whatsapp.net"]), "{e}");
    let (e, _) = wire.outbox_entry(&iid, "the document", |e| e["id"] == wa(&doc)).await;
    assert_eq!(e["kind"], "document", "{e}");
    assert_eq!(e["file_name"], "report.pdf", "{e}");
    assert_eq!(e["size"], doc_bytes.len(), "{e}");
    assert_eq!(e["sha256"], hex_sha256(&doc_bytes), "{e}");
    let (e, before) = wire.outbox_entry(&iid, "the voice note", |e| e["id"] == wa(&voice)).await;
    assert_eq!((&e["kind"], &e["voice"]), (&json!("audio"), &json!(true)), "{e}");
    assert_eq!(e["seconds"], 8, "the AudioMessage carries the Ogg's duration: {e}");
    assert_eq!(before["presence"], "recording", "recording before a voice note: {before}");

    // A location, a contact card, a reaction to our image by its gateway id.
    let loc = wire
        .send(
            &key,
            json!({"to": ANA, "location": {"latitude": -23.5614, "longitude": -46.6559,
                   "name": "Office", "address": "Av. Paulista 1000"}}),
        )
        .await;
    let card = wire.send(&key, json!({"to": ANA, "contact": {"vcard": VCARD}})).await;
    let react = wire
        .send(&key, json!({"to": ANA, "reaction": {"message_id": image["id"], "emoji": "👍"}}))
        .await;
    // The fake's contact acknowledges receipt, as a phone does: `delivered`.
    let loc = wire.wait_message(&key, &loc, &["delivered"]).await;
    let card = wire.wait_message(&key, &card, &["sent", "delivered"]).await;
    let react = wire.wait_message(&key, &react, &["sent", "delivered"]).await;
    let (e, _) = wire.outbox_entry(&iid, "the location", |e| e["id"] == wa(&loc)).await;
    assert_eq!(e["location"]["latitude"], -23.5614, "{e}");
    assert_eq!(e["location"]["name"], "Office", "{e}");
    assert_eq!(e["location"]["address"], "Av. Paulista 1000", "{e}");
    let (e, _) = wire.outbox_entry(&iid, "the card", |e| e["id"] == wa(&card)).await;
    assert_eq!(e["contact"]["display_name"], "Ana Souza", "{e}");
    assert!(e["contact"]["vcard"].as_str().unwrap().contains("TEL;type=CELL"), "{e}");
    let (e, _) = wire.outbox_entry(&iid, "the reaction", |e| e["id"] == wa(&react)).await;
    assert_eq!(e["reaction"], json!({"message_id": wa(&image), "emoji": "👍"}), "{e}");

    // Ana writes; we quote her.
    let asked = wire.inbound(&iid, json!({"from": ANA, "text": "where are you?"})).await;
    let asked = asked["message_id"].as_str().unwrap().to_string();
    let ev = events.next("where are you?", &wire).await;
    assert_eq!(ev["data"]["kind"], "text", "{ev}");
    let reply = wire.send(&key, json!({"to": ANA, "text": "here", "reply_to": asked})).await;
    let reply = wire.wait_message(&key, &reply, &["sent", "delivered"]).await;
    let (e, _) = wire.outbox_entry(&iid, "the reply", |e| e["id"] == wa(&reply)).await;
    assert_eq!((&e["text"], &e["reply_to"]), (&json!("here"), &json!(asked)), "{e}");

    // Ana answers with a location quoting our reply, a card, and a reaction to our location.
    wire.inbound(
        &iid,
        json!({"from": ANA, "location": {"latitude": 1.5, "longitude": 2.5, "name": "Cafe"},
               "reply_to": wa(&reply)}),
    )
    .await;
    let ev = events.next("\"kind\":\"location\"", &wire).await;
    assert_eq!(ev["data"]["location"]["longitude"], 2.5, "{ev}");
    assert_eq!(ev["data"]["location"]["name"], "Cafe", "{ev}");
    assert_eq!(ev["data"]["reply_to"]["message_id"], wa(&reply), "{ev}");
    assert_eq!(ev["data"]["reply_to"]["gateway_message_id"], reply["id"], "{ev}");
    wire.inbound(&iid, json!({"from": ANA, "contact": {"vcard": VCARD}})).await;
    let ev = events.next("\"kind\":\"contact\"", &wire).await;
    assert_eq!(ev["data"]["contact"]["display_name"], "Ana Souza", "{ev}");
    wire.inbound(&iid, json!({"from": ANA, "reaction": {"message_id": wa(&loc), "emoji": "❤️"}}))
        .await;
    let ev = events.next("\"kind\":\"reaction\"", &wire).await;
    assert_eq!(ev["data"]["reaction"]["emoji"], "❤️", "{ev}");
    assert_eq!(ev["data"]["reaction"]["gateway_message_id"], loc["id"], "{ev}");

    // Media in: the gateway downloads and decrypts it from the fake's media host on the first
    // request of its `media_url`, and serves the exact bytes.
    let inbound_files = [
        json!({"kind": "image", "mime": "image/png", "data_base64": b64(PNG)}),
        json!({"kind": "audio", "mime": "audio/ogg; codecs=opus", "voice": true, "size": 3000}),
        json!({"kind": "video", "mime": "video/mp4", "size": 50_000}),
        json!({"kind": "sticker", "mime": "image/webp", "size": 2000}),
        json!({"kind": "document", "mime": "application/pdf", "file_name": "big.pdf",
               "size": 3 * 1024 * 1024}),
    ];
    for media in inbound_files {
        let kind = media["kind"].as_str().unwrap().to_string();
        // WhatsApp audio and stickers have no caption.
        let caption =
            if kind == "audio" || kind == "sticker" { "" } else { "see this @5511987650011" };
        let sent = wire
            .inbound(&iid, json!({"from": ANA, "text": caption, "mentions": [ME], "media": media}))
            .await;
        let ev = events.next(&format!("\"kind\":\"{kind}\""), &wire).await;
        let data = &ev["data"];
        assert_eq!(data["caption"], caption, "{ev}");
        assert_eq!(data["mentions_me"], true, "a caption mentions like a text: {ev}");
        assert_eq!(data["media"]["mime"], media["mime"], "{ev}");
        assert_eq!(data["media"]["voice"], kind == "audio", "{ev}");
        if kind == "document" {
            assert_eq!(data["media"]["file_name"], "big.pdf", "{ev}");
        }
        let url = data["media_url"].as_str().unwrap();
        for _ in 0..2 {
            // The first request downloads from the fake, the second reads the cache.
            let res = wire.http.get(url).bearer_auth(&key).send().await.unwrap();
            assert_eq!(res.status().as_u16(), 200, "{kind}\n{}", wire.gateway_log());
            let body = res.bytes().await.unwrap();
            assert_eq!(hex_sha256(&body), sent["sha256"].as_str().unwrap(), "{kind}");
        }
    }

    // Groups, asked over the wire.
    let (s, g) = wire
        .post(
            "/v1/sim/groups",
            ADMIN,
            json!({"subject": "Sales", "participants": [ME, ANA, "+5511912340022"],
                   "admins": [ME]}),
        )
        .await;
    assert_eq!(s, 200, "{g}");
    let gjid = g["jid"].as_str().unwrap().to_string();
    let (s, g2) = wire
        .post("/v1/sim/groups", ADMIN, json!({"subject": "Alumni", "participants": [ANA, ME]}))
        .await;
    assert_eq!(s, 200, "{g2}");
    let (s, _) = wire
        .post("/v1/sim/groups", ADMIN, json!({"subject": "Not ours", "participants": [ANA]}))
        .await;
    assert_eq!(s, 200);
    let (s, list) = wire.get(&format!("/v1/instances/{iid}/groups"), &key).await;
    assert_eq!(s, 200, "{list}\n{}", wire.gateway_log());
    let items = list["items"].as_array().unwrap();
    let subjects: Vec<&str> = items.iter().map(|i| i["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["Alumni", "Sales"], "{list}");
    let sales = items.iter().find(|i| i["jid"] == gjid).unwrap();
    assert_eq!((&sales["size"], &sales["is_admin"]), (&json!(3), &json!(true)), "{list}");
    assert_eq!(items[0]["is_admin"], false, "{list}");
    let (s, one) = wire.get(&format!("/v1/instances/{iid}/groups/{gjid}"), &key).await;
    assert_eq!(s, 200, "{one}");
    let parts = one["participants"].as_array().unwrap();
    assert_eq!(parts.len(), 3, "{one}");
    assert!(parts.iter().all(|p| p["lid"].as_str().is_some_and(|l| l.ends_with("@lid"))), "{one}");
    assert!(parts.iter().any(|p| p["phone"] == ANA && p["is_admin"] == false), "{one}");
    assert!(parts.iter().any(|p| p["phone"] == ME && p["is_admin"] == true), "{one}");
    let (s, v) =
        wire.get(&format!("/v1/instances/{iid}/groups/120363999999999999@g.us"), &key).await;
    assert_eq!(s, 404, "{v}");

    // Group messages, both ways, with sender keys as WhatsApp has them.
    let team = wire
        .send(
            &key,
            json!({"to": gjid, "text": "hi team @5511912340021", "mentions": [ANA],
                   "instance_id": iid}),
        )
        .await;
    let team = wire.wait_message(&key, &team, &["sent", "delivered"]).await;
    let (e, _) = wire.outbox_entry(&iid, "the group message", |e| e["id"] == wa(&team)).await;
    assert_eq!((&e["to"], &e["text"]), (&json!(gjid), &json!("hi team @5511912340021")), "{e}");
    assert_eq!(e["mentions"], json!(["5511912340021@s.whatsapp.net"]), "{e}");
    wire.inbound(
        &iid,
        json!({"from": ANA, "as_lid": true, "chat": gjid, "text": "welcome @5511987650011",
               "mentions": [ME], "reply_to": wa(&team)}),
    )
    .await;
    let ev = events.next("welcome @5511987650011", &wire).await;
    let data = &ev["data"];
    assert_eq!(data["chat"], json!({"jid": gjid, "type": "group"}), "{ev}");
    assert_eq!(data["sender"]["jid"], "5511912340021@s.whatsapp.net", "{ev}");
    assert_eq!(data["mentions_me"], true, "{ev}");
    assert_eq!(data["reply_to"]["gateway_message_id"], team["id"], "{ev}");

    // Contact checks, asked over the wire (and recorded by the fake).
    let (s, _) = wire
        .post("/v1/sim/contacts", ADMIN, json!({"phone": "+5511977770000", "on_whatsapp": false}))
        .await;
    assert_eq!(s, 200);
    let phones = json!({"phones": ["+55 11 97777-0000", "+5511977770001"]});
    let (s, v) = wire.post("/v1/contacts/check", &key, phones).await;
    assert_eq!(s, 200, "{v}\n{}", wire.gateway_log());
    let items = v["items"].as_array().unwrap();
    assert_eq!(items[0]["phone"], "+5511977770000", "{v}");
    assert_eq!(items[0]["on_whatsapp"], false, "{v}");
    assert_eq!(items[1]["on_whatsapp"], true, "{v}");
    assert_eq!(items[1]["jid"], "5511977770001@s.whatsapp.net", "{v}");
    assert!(items[1]["lid"].as_str().is_some_and(|l| l.ends_with("@lid")), "{v}");
    // (The first-contact pre-check of the sends above is recorded as a check too.)
    let asked_here = |e: &Value| {
        e.get("check")
            .and_then(Value::as_array)
            .is_some_and(|c| c.contains(&json!("+5511977770001")))
    };
    let (check, _) = wire.outbox_entry(&iid, "the contact check", asked_here).await;
    let asked: Vec<&str> =
        check["check"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(asked.contains(&"+5511977770001"), "{check}");
    wire.assert_no_panics();
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
