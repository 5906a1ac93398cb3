//! Rich messages end to end over HTTP on the simulated network, both ways: media by upload and
//! by URL (a 20 MB document, a voice note with "recording", a URL that never answers),
//! locations, contact cards, reactions and quoted replies; inbound media fetched through its
//! `media_url`; groups; contact checks. And the bad input of each, answered 4xx. Media sends
//! and the received-media cache run on the local disk and on the S3 test server.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::events::SseReader;
use crate::helpers::{id, Backend, TestApp, ADMIN};
use crate::media_files::{hex_sha256, mp4, ogg, pdf, webp, PNG, VCARD};

/// Serves `/doc.pdf` (20 MB), `/voice.ogg`, `/page.html` and `/slow` (never answers) on
/// loopback; returns its base URL.
async fn file_server() -> String {
    let doc = Arc::new(pdf(20 * 1024 * 1024));
    let voice = Arc::new(ogg());
    let app = axum::Router::new()
        .route(
            "/doc.pdf",
            get(move || {
                let doc = doc.clone();
                async move { ([("content-type", "application/pdf")], doc.as_ref().clone()) }
            }),
        )
        .route(
            "/voice.ogg",
            get(move || {
                let v = voice.clone();
                async move { ([("content-type", "audio/ogg")], v.as_ref().clone()) }
            }),
        )
        .route(
            "/page.html",
            get(|| async { ([("content-type", "text/html")], "<html>not an image</html>") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "never"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn spawn() -> TestApp {
    spawn_on(&Backend::Local).await
}

async fn spawn_on(b: &Backend) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut c = b.config(dir.path());
    c.media_fetch_timeout = Duration::from_millis(1500);
    TestApp::spawn_with(dir, c).await
}

/// Uploads `bytes` as multipart part `file`; returns (status, body).
async fn upload(
    app: &TestApp,
    key: &str,
    name: &str,
    mime: &str,
    bytes: &[u8],
) -> (StatusCode, Value) {
    let boundary = "bzapper-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {mime}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let res = app
        .http
        .post(format!("{}/v1/media", app.base))
        .bearer_auth(key)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn send(app: &TestApp, key: &str, body: Value) -> String {
    let (s, v) = app.post("/v1/messages", key, body).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    id(&v)
}

async fn refused(app: &TestApp, key: &str, body: Value) -> (StatusCode, String) {
    let (s, v) = app.post("/v1/messages", key, body).await;
    (s, v["error"]["code"].as_str().unwrap_or_default().to_string())
}

/// The outbox entry of the message with WhatsApp id `wa_id`, and the entry before it.
fn entry<'a>(outbox: &'a [Value], wa_id: &str) -> (&'a Value, &'a Value) {
    let i = outbox.iter().position(|e| e["id"] == wa_id).expect("the message is in the outbox");
    (&outbox[i], &outbox[i.saturating_sub(1)])
}

// Sends and the received-media cache through each media store.
crate::on_both_media_stores!(
    media_goes_out_by_upload_and_by_url_with_the_right_presence,
    inbound_media_is_fetched_through_its_media_url,
);

async fn media_goes_out_by_upload_and_by_url_with_the_right_presence(b: Backend) {
    let app = spawn_on(&b).await;
    let files = file_server().await;
    let (_, key) = app.tenant("acme").await;
    let iid = app.fast_number(&key, "a", "+5511900000001", "default").await;

    // An upload is stored once and sent twice.
    let (s, up) = upload(&app, &key, "dot.png", "image/png", PNG).await;
    assert_eq!(s, StatusCode::CREATED, "{up}");
    assert_eq!(up["mime"], "image/png");
    assert_eq!(up["sha256"], hex_sha256(PNG));
    let media_id = id(&up);
    let mut sent = Vec::new();
    for to in ["+5511988880001", "+5511988880002"] {
        let mid = send(
            &app,
            &key,
            json!({"to": to, "image": {"media_id": media_id, "caption": "our logo"}}),
        )
        .await;
        sent.push(app.wait_message(&key, &mid, &["delivered"]).await);
    }
    assert_eq!(sent[0]["kind"], "image");
    assert_eq!(sent[0]["text"], "our logo");

    // A 20 MB document and a voice note, downloaded from URLs when they go out.
    let doc = send(
        &app,
        &key,
        json!({"to": "+5511988880003", "document": {"url": format!("{files}/doc.pdf"), "file_name": "contract.pdf"}, "text": "sign here"}),
    )
    .await;
    let doc = app.wait_message(&key, &doc, &["delivered", "failed"]).await;
    assert_eq!(doc["status"], "delivered", "{doc}");
    let voice = send(
        &app,
        &key,
        json!({"to": "+5511988880004", "audio": {"url": format!("{files}/voice.ogg")}}),
    )
    .await;
    let voice = app.wait_message(&key, &voice, &["delivered", "failed"]).await;
    assert_eq!(voice["status"], "delivered", "{voice}");

    let outbox = app.outbox(&iid).await;
    for m in &sent {
        let (e, before) = entry(&outbox, m["whatsapp_id"].as_str().unwrap());
        assert_eq!(e["kind"], "image");
        assert_eq!(e["sha256"], hex_sha256(PNG));
        assert_eq!(e["caption"], "our logo");
        assert_eq!(before["presence"], "composing");
    }
    let (e, before) = entry(&outbox, doc["whatsapp_id"].as_str().unwrap());
    assert_eq!(e["kind"], "document");
    assert_eq!(e["size"], 20 * 1024 * 1024);
    assert_eq!(e["sha256"], hex_sha256(&pdf(20 * 1024 * 1024)));
    assert_eq!(e["file_name"], "contract.pdf");
    assert_eq!(e["caption"], "sign here");
    assert_eq!(before["presence"], "composing");
    let (e, before) = entry(&outbox, voice["whatsapp_id"].as_str().unwrap());
    assert_eq!(e["kind"], "audio");
    assert_eq!(e["voice"], true);
    assert_eq!(e["seconds"], 8, "the duration read from the Ogg, rounded up: {e}");
    assert_eq!(before["presence"], "recording", "a voice note is recorded, not typed");
}

#[tokio::test]
async fn a_url_that_fails_fails_its_message_and_not_the_number() {
    let app = spawn().await;
    let files = file_server().await;
    let (_, key) = app.tenant("acme").await;
    app.fast_number(&key, "a", "+5511900000001", "default").await;

    let slow = send(
        &app,
        &key,
        json!({"to": "+5511988880001", "image": {"url": format!("{files}/slow")}}),
    )
    .await;
    let html = send(
        &app,
        &key,
        json!({"to": "+5511988880002", "image": {"url": format!("{files}/page.html")}}),
    )
    .await;
    let missing = send(
        &app,
        &key,
        json!({"to": "+5511988880003", "video": {"url": format!("{files}/nothing.mp4")}}),
    )
    .await;
    let slow = app.wait_message(&key, &slow, &["failed", "delivered"]).await;
    assert_eq!(slow["status"], "failed");
    assert!(slow["error"].as_str().unwrap().contains("time"), "{slow}");
    let html = app.wait_message(&key, &html, &["failed", "delivered"]).await;
    assert_eq!(html["status"], "failed");
    assert!(html["error"].as_str().unwrap().contains("text/html"), "{html}");
    let missing = app.wait_message(&key, &missing, &["failed", "delivered"]).await;
    assert_eq!(missing["status"], "failed");
    assert!(missing["error"].as_str().unwrap().contains("404"), "{missing}");
    // The queue is not stuck and the number is still in rotation.
    let text = send(&app, &key, json!({"to": "+5511988880004", "text": "still here"})).await;
    app.wait_message(&key, &text, &["delivered"]).await;
}

#[tokio::test]
async fn locations_contacts_reactions_and_replies_both_ways() {
    let app = spawn().await;
    let (_, key) = app.tenant("acme").await;
    let iid = app.fast_number(&key, "a", "+5511900000001", "default").await;
    let mut sse = SseReader::open(&app, "?types=message.received", &key, None).await;

    let loc = send(
        &app,
        &key,
        json!({"to": "+5511988880001", "location": {"latitude": -23.5614, "longitude": -46.6559, "name": "Office", "address": "Av. Paulista 1000"}}),
    )
    .await;
    let card = send(&app, &key, json!({"to": "+5511988880001", "contact": {"vcard": VCARD}})).await;
    let loc = app.wait_message(&key, &loc, &["delivered"]).await;
    let card = app.wait_message(&key, &card, &["delivered"]).await;
    assert_eq!(loc["kind"], "location");
    // A reaction to one of our own messages, named by its gateway id.
    let react = send(
        &app,
        &key,
        json!({"to": "+5511988880001", "reaction": {"message_id": loc["id"], "emoji": "👍"}}),
    )
    .await;
    let react = app.wait_message(&key, &react, &["delivered", "sent"]).await;
    assert_eq!(react["instance_id"], iid);

    // A contact writes; we quote them.
    let (s, v) = app
        .post(
            &format!("/v1/sim/instances/{iid}/inbound"),
            ADMIN,
            json!({"from": "+5511988880001", "text": "where are you?"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let asked = v["message_id"].as_str().unwrap().to_string();
    let (_, ev) = sse.until("message.received").await;
    assert_eq!(ev["data"]["kind"], "text");
    let reply =
        send(&app, &key, json!({"to": "+5511988880001", "text": "here", "reply_to": asked})).await;
    let reply = app.wait_message(&key, &reply, &["delivered"]).await;

    let outbox = app.outbox(&iid).await;
    let (e, _) = entry(&outbox, loc["whatsapp_id"].as_str().unwrap());
    assert_eq!(e["location"]["latitude"], -23.5614);
    assert_eq!(e["location"]["name"], "Office");
    let (e, _) = entry(&outbox, card["whatsapp_id"].as_str().unwrap());
    assert_eq!(e["contact"]["display_name"], "Ana Souza");
    let (e, _) = entry(&outbox, react["whatsapp_id"].as_str().unwrap());
    assert_eq!(e["reaction"]["message_id"], loc["whatsapp_id"]);
    assert_eq!(e["reaction"]["emoji"], "👍");
    let (e, _) = entry(&outbox, reply["whatsapp_id"].as_str().unwrap());
    assert_eq!(e["text"], "here");
    assert_eq!(e["reply_to"], asked.as_str());

    // The contact answers with a location quoting our reply, a card, and a reaction to our
    // location: each reported with its data, the quoted message named by our id too.
    let inbound = |body: Value| {
        let app = &app;
        let iid = iid.clone();
        async move {
            let (s, v) = app.post(&format!("/v1/sim/instances/{iid}/inbound"), ADMIN, body).await;
            assert_eq!(s, StatusCode::OK, "{v}");
        }
    };
    inbound(json!({"from": "+5511988880001", "location": {"latitude": 1.5, "longitude": 2.5}, "reply_to": reply["whatsapp_id"]})).await;
    let (_, ev) = sse.until("message.received").await;
    assert_eq!(ev["data"]["kind"], "location");
    assert_eq!(ev["data"]["location"]["longitude"], 2.5);
    assert_eq!(ev["data"]["reply_to"]["message_id"], reply["whatsapp_id"]);
    assert_eq!(ev["data"]["reply_to"]["gateway_message_id"], reply["id"]);
    inbound(json!({"from": "+5511988880001", "contact": {"vcard": VCARD}})).await;
    let (_, ev) = sse.until("message.received").await;
    assert_eq!(ev["data"]["kind"], "contact");
    assert_eq!(ev["data"]["contact"]["display_name"], "Ana Souza");
    inbound(json!({"from": "+5511988880001", "reaction": {"message_id": loc["whatsapp_id"], "emoji": "❤️"}})).await;
    let (_, ev) = sse.until("message.received").await;
    assert_eq!(ev["data"]["kind"], "reaction");
    assert_eq!(ev["data"]["reaction"]["emoji"], "❤️");
    assert_eq!(ev["data"]["reaction"]["gateway_message_id"], loc["id"]);
}

async fn inbound_media_is_fetched_through_its_media_url(b: Backend) {
    let app = spawn_on(&b).await;
    let (_, key) = app.tenant("acme").await;
    let (_, other_key) = app.tenant("other").await;
    let iid = app.fast_number(&key, "a", "+5511900000001", "default").await;
    let mut sse = SseReader::open(&app, "?types=message.received", &key, None).await;

    let size = 20 * 1024 * 1024;
    let (s, v) = app
        .post(
            &format!("/v1/sim/instances/{iid}/inbound"),
            ADMIN,
            json!({"from": "+5511988880001", "text": "the report @5511900000001",
                   "mentions": ["+5511900000001"],
                   "media": {"kind": "document", "mime": "application/pdf", "file_name": "r.pdf", "size": size}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let sha = v["sha256"].as_str().unwrap().to_string();
    let (_, ev) = sse.until("message.received").await;
    let data = &ev["data"];
    assert_eq!(data["kind"], "document");
    assert_eq!(data["caption"], "the report @5511900000001");
    assert_eq!(data["media"]["mime"], "application/pdf");
    assert_eq!(data["media"]["size"], size);
    assert_eq!(data["mentions_me"], true, "a caption mentions like a text");
    let url = data["media_url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&app.base), "{url}");

    for _ in 0..2 {
        // The first request downloads from the network, the second reads the cache.
        let res = app.http.get(&url).bearer_auth(&key).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "application/pdf");
        let body = res.bytes().await.unwrap();
        assert_eq!(body.len(), size);
        assert_eq!(hex_sha256(&body), sha);
    }
    // Cached in the media store (the bucket, on S3), not only on this node's disk.
    let cached = b.media_objects(&app).await;
    assert!(cached.iter().any(|k| k.contains("/inbound/")), "{cached:?}");
    let res = app.http.get(&url).bearer_auth(&other_key).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "another tenant cannot fetch it");
    let res = app.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn groups_and_contact_checks() {
    let app = spawn().await;
    let (_, key) = app.tenant("acme").await;
    let iid = app.fast_number(&key, "a", "+5511900000001", "default").await;
    let (s, g) = app
        .post(
            "/v1/sim/groups",
            ADMIN,
            json!({"subject": "Sales", "participants": ["+5511900000001", "+5511988880001", "+5511988880002"], "admins": ["+5511900000001"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{g}");
    let gjid = g["jid"].as_str().unwrap().to_string();
    let (s, list) = app.get(&format!("/v1/instances/{iid}/groups"), &key).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let item = list["items"].as_array().unwrap().iter().find(|i| i["jid"] == gjid).unwrap();
    assert_eq!(item["subject"], "Sales");
    assert_eq!(item["size"], 3);
    assert_eq!(item["is_admin"], true);
    let (s, one) = app.get(&format!("/v1/instances/{iid}/groups/{gjid}"), &key).await;
    assert_eq!(s, StatusCode::OK, "{one}");
    let parts = one["participants"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert!(parts.iter().all(|p| p["lid"].as_str().unwrap().ends_with("@lid")));
    assert!(parts.iter().any(|p| p["phone"] == "+5511988880002" && p["is_admin"] == false));
    let (s, v) = app.get(&format!("/v1/instances/{iid}/groups/123@g.us"), &key).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = app.get(&format!("/v1/instances/{iid}/groups/nonsense"), &key).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    let (s, _) = app
        .post("/v1/sim/contacts", ADMIN, json!({"phone": "+5511977770000", "on_whatsapp": false}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let phones = json!({"phones": ["+55 11 97777-0000", "+5511977770001", "5511977770001"]});
    let (s, v) = app.post("/v1/contacts/check", &key, phones.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "duplicates are asked once: {v}");
    assert_eq!(items[0]["phone"], "+5511977770000");
    assert_eq!(items[0]["on_whatsapp"], false);
    assert_eq!(items[1]["on_whatsapp"], true);
    assert_eq!(items[1]["jid"], "5511977770001@s.whatsapp.net");
    assert!(items[1]["lid"].as_str().unwrap().ends_with("@lid"));
    assert_eq!(items[1]["cached"], false);
    assert_eq!(v["instance_id"], iid);
    let (_, again) = app.post("/v1/contacts/check", &key, phones).await;
    assert!(again["items"].as_array().unwrap().iter().all(|i| i["cached"] == true), "{again}");
    let checks = app.outbox(&iid).await.into_iter().filter(|e| e.get("check").is_some()).count();
    assert_eq!(checks, 1, "the second check came from the cache");
    let (s, v) = app.post("/v1/contacts/check", &key, json!({"phones": ["abc"]})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_phone"))
    );
    let (s, _) = app.post("/v1/contacts/check", &key, json!({"phones": []})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn bad_rich_input_is_refused_at_accept_time() {
    let app = spawn().await;
    let (_, key) = app.tenant("acme").await;
    let (_, other) = app.tenant("other").await;
    app.fast_number(&key, "a", "+5511900000001", "default").await;
    let to = "+5511988880001";
    let cases = [
        (
            json!({"to": to, "reaction": {"message_id": "msg_nope", "emoji": "👍"}}),
            "unknown_message",
        ),
        (json!({"to": to, "text": "hi", "reply_to": "3EB0NOTHING"}), "unknown_message"),
        (
            json!({"to": to, "reaction": {"message_id": "msg_nope", "emoji": "nice"}}),
            "invalid_reaction",
        ),
        (json!({"to": to, "location": {"latitude": 95, "longitude": 0}}), "invalid_location"),
        (json!({"to": to, "contact": {"vcard": "hello"}}), "invalid_vcard"),
        (json!({"to": to, "image": {"media_id": "med_missing"}}), "unknown_media"),
        (json!({"to": to, "image": {"url": "ftp://example.com/a.png"}}), "invalid_media"),
        (json!({"to": to, "image": {}}), "invalid_media"),
        (
            json!({"to": to, "image": {"url": "http://x/a.png"}, "location": {"latitude": 1, "longitude": 1}}),
            "invalid_request",
        ),
        (
            json!({"to": to, "location": {"latitude": 1, "longitude": 1}, "text": "hi"}),
            "invalid_request",
        ),
        (
            json!({"to": to, "sticker": {"url": "http://x/a.webp", "caption": "no"}}),
            "invalid_request",
        ),
    ];
    for (body, code) in cases {
        let (s, got) = refused(&app, &key, body.clone()).await;
        assert!(s.is_client_error(), "{body} → {s}");
        assert_eq!(got, code, "{body}");
    }
    // An upload of one kind is not another; another tenant's upload does not exist here.
    let (_, up) = upload(&app, &key, "dot.png", "image/png", PNG).await;
    let (s, got) = refused(&app, &key, json!({"to": to, "video": {"media_id": up["id"]}})).await;
    assert_eq!((s, got.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_media"));
    let (s, got) = refused(&app, &key, json!({"to": to, "sticker": {"media_id": up["id"]}})).await;
    assert_eq!((s, got.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_media"));
    app.fast_number(&other, "b", "+5511900000002", "default").await;
    let (s, got) = refused(&app, &other, json!({"to": to, "image": {"media_id": up["id"]}})).await;
    assert_eq!((s, got.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_media"));
    // A queued message cannot be reacted to yet is covered by `unknown_message` above; a
    // message of another tenant cannot be named at all.
    let mid = send(&app, &key, json!({"to": to, "text": "hello"})).await;
    app.wait_message(&key, &mid, &["delivered"]).await;
    let (s, got) =
        refused(&app, &other, json!({"to": to, "reaction": {"message_id": mid, "emoji": "👍"}}))
            .await;
    assert_eq!((s, got.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_message"));
}

#[tokio::test]
async fn every_media_kind_goes_both_ways() {
    let app = spawn().await;
    let (_, key) = app.tenant("acme").await;
    let iid = app.fast_number(&key, "a", "+5511900000001", "default").await;
    let mut sse = SseReader::open(&app, "?types=message.received", &key, None).await;

    let files = [
        ("image", "dot.png", "image/png", PNG.to_vec(), json!({})),
        ("video", "clip.mp4", "video/mp4", mp4(), json!({"caption": "watch"})),
        ("audio", "song.ogg", "audio/ogg", ogg(), json!({"voice": false})),
        ("sticker", "s.webp", "image/webp", webp(), json!({})),
        ("document", "r.pdf", "application/pdf", pdf(4096), json!({"file_name": "report.pdf"})),
    ];
    for (kind, name, mime, bytes, extra) in &files {
        let (s, up) = upload(&app, &key, name, mime, bytes).await;
        assert_eq!(s, StatusCode::CREATED, "{kind}: {up}");
        let mut media = extra.clone();
        media["media_id"] = up["id"].clone();
        let mid = send(&app, &key, json!({"to": "+5511988880001", *kind: media})).await;
        let m = app.wait_message(&key, &mid, &["delivered", "failed"]).await;
        assert_eq!(m["status"], "delivered", "{kind}: {m}");
        assert_eq!(m["kind"], *kind);
        let outbox = app.outbox(&iid).await;
        let (e, before) = entry(&outbox, m["whatsapp_id"].as_str().unwrap());
        assert_eq!(e["kind"], *kind);
        assert_eq!(e["sha256"], hex_sha256(bytes), "{kind}");
        assert_eq!(e["size"], bytes.len());
        assert_eq!(before["presence"], "composing", "an audio file is not a voice note");
        if *kind == "audio" {
            assert_eq!(e["voice"], false);
            assert_eq!(e["seconds"], 8, "{e}");
        }
        if *kind == "video" {
            assert_eq!(e["caption"], "watch");
            // This MP4 has no `moov`: it goes out without a duration rather than not at all.
            assert!(e.get("seconds").is_none(), "{e}");
        }
        if *kind == "image" || *kind == "document" {
            assert!(e.get("seconds").is_none(), "{e}");
        }
        if *kind == "document" {
            assert_eq!(e["file_name"], "report.pdf");
        }
    }

    let inbound = [
        ("image", "image/jpeg", json!({})),
        ("video", "video/mp4", json!({})),
        ("audio", "audio/ogg; codecs=opus", json!({"voice": true})),
        ("sticker", "image/webp", json!({})),
    ];
    for (kind, mime, extra) in inbound {
        let mut media = extra.clone();
        media["kind"] = json!(kind);
        media["mime"] = json!(mime);
        media["size"] = json!(3000);
        let (s, v) = app
            .post(
                &format!("/v1/sim/instances/{iid}/inbound"),
                ADMIN,
                json!({"from": "+5511988880001", "media": media}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{kind}: {v}");
        let (_, ev) = sse.until("message.received").await;
        let data = &ev["data"];
        assert_eq!(data["kind"], kind);
        assert_eq!(data["media"]["mime"], mime);
        assert_eq!(data["media"]["voice"], kind == "audio");
        let res = app
            .http
            .get(data["media_url"].as_str().unwrap())
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{kind}");
        let body = res.bytes().await.unwrap();
        assert_eq!(hex_sha256(&body), v["sha256"].as_str().unwrap(), "{kind}");
    }
}

/// Contact-check answers live in the store: after a restart the same phones are answered from
/// the cache, and WhatsApp is not asked again.
#[tokio::test]
async fn contact_check_answers_survive_a_restart() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("acme").await;
    let iid = id(&app.connected_instance(&key, "n1", "+5511999990301").await);
    let phones = json!({"phones": ["+5511977770101", "+5511977770102"]});
    let (s, v) = app.post("/v1/contacts/check", &key, phones.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["items"].as_array().unwrap().iter().all(|i| i["cached"] == false), "{v}");
    assert_eq!(v["instance_id"], iid);
    let dir = app.stop().await;

    let app = TestApp::spawn_in(dir).await;
    let (s, again) = app.post("/v1/contacts/check", &key, phones).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    let items = again["items"].as_array().unwrap();
    assert!(items.iter().all(|i| i["cached"] == true), "{again}");
    assert_eq!(items[0]["jid"], "5511977770101@s.whatsapp.net");
    assert!(items[0]["lid"].as_str().unwrap().ends_with("@lid"), "{again}");
    assert_eq!(again["instance_id"], Value::Null, "nobody asked WhatsApp");
}
