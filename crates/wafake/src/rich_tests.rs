//! The outbox mapping of each kind, and the inbound builders, without a client.

use super::*;

fn at() -> DateTime<Utc> {
    "2024-05-01T12:00:00Z".parse().unwrap()
}

fn entry(m: &wa::Message) -> serde_json::Value {
    let e = outbox_message(m, "5511900000001@s.whatsapp.net".into(), "3EB0X".into(), at(), |_| {
        Some(Plaintext { size: 5, sha256: [0xab; 32] })
    });
    serde_json::to_value(e).unwrap()
}

fn context(mentions: &[&str], quoted: Option<&str>) -> wa::ContextInfo {
    wa::ContextInfo {
        mentioned_jid: mentions.iter().map(|s| s.to_string()).collect(),
        stanza_id: quoted.map(str::to_string),
        ..Default::default()
    }
}

#[test]
fn a_plain_text_keeps_the_first_shape() {
    let m = wa::Message { conversation: Some("hi".into()), ..Default::default() };
    assert_eq!(
        entry(&m),
        serde_json::json!({"to": "5511900000001@s.whatsapp.net", "text": "hi", "id": "3EB0X",
                           "at": "2024-05-01T12:00:00Z", "mentions": []})
    );
}

#[test]
fn a_quoted_text_with_mentions() {
    let m = wa::Message {
        extended_text_message: wa::message::ExtendedTextMessage {
            text: Some("yes @5511".into()),
            context_info: context(&["5511@s.whatsapp.net"], Some("3EB0Q")).into(),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let e = entry(&m);
    assert_eq!(
        (&e["text"], &e["reply_to"]),
        (&serde_json::json!("yes @5511"), &serde_json::json!("3EB0Q"))
    );
    assert_eq!(e["mentions"], serde_json::json!(["5511@s.whatsapp.net"]));
    assert!(e.get("kind").is_none() && e.get("location").is_none(), "{e}");
}

#[test]
fn media_of_each_kind() {
    let image = wa::Message {
        image_message: wa::message::ImageMessage {
            mimetype: Some("image/png".into()),
            caption: Some("logo @5511".into()),
            context_info: context(&["5511@s.whatsapp.net"], None).into(),
            direct_path: Some("/v/x".into()),
            media_key: Some(vec![1; 32]),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let e = entry(&image);
    assert_eq!(e["kind"], "image");
    assert_eq!(e["mime"], "image/png");
    assert_eq!(e["size"], 5);
    assert_eq!(e["sha256"], "ab".repeat(32));
    assert_eq!(e["caption"], "logo @5511");
    assert_eq!(e["text"], "logo @5511");
    assert_eq!(e["file_name"], serde_json::Value::Null);
    assert_eq!(e["voice"], false);
    assert_eq!(e["mentions"], serde_json::json!(["5511@s.whatsapp.net"]));

    // A captioned document comes wrapped (as WhatsApp Web and the gateway send it).
    let doc = wa::Message {
        document_with_caption_message: wa::message::FutureProofMessage {
            message: wa::Message {
                document_message: wa::message::DocumentMessage {
                    mimetype: Some("application/pdf".into()),
                    file_name: Some("r.pdf".into()),
                    caption: Some("the report".into()),
                    ..Default::default()
                }
                .into(),
                ..Default::default()
            }
            .into(),
        }
        .into(),
        ..Default::default()
    };
    let e = entry(&doc);
    assert_eq!(
        (&e["kind"], &e["file_name"]),
        (&serde_json::json!("document"), &serde_json::json!("r.pdf"))
    );
    assert_eq!(e["caption"], "the report");

    let voice = wa::Message {
        audio_message: wa::message::AudioMessage {
            mimetype: Some("audio/ogg".into()),
            ptt: Some(true),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let e = entry(&voice);
    assert_eq!(
        (&e["kind"], &e["voice"], &e["caption"]),
        (&serde_json::json!("audio"), &serde_json::json!(true), &serde_json::Value::Null)
    );
    assert_eq!(e["text"], "");

    let video = wa::Message {
        video_message: wa::message::VideoMessage {
            mimetype: Some("video/mp4".into()),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    assert_eq!(entry(&video)["kind"], "video");
    let sticker = wa::Message {
        sticker_message: wa::message::StickerMessage {
            mimetype: Some("image/webp".into()),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    assert_eq!(entry(&sticker)["kind"], "sticker");
}

#[test]
fn media_falls_back_to_what_the_message_declares() {
    let m = wa::Message {
        image_message: wa::message::ImageMessage {
            file_length: Some(42),
            file_sha256: Some(vec![0x0f; 32]),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let e = outbox_message(&m, "x@s.whatsapp.net".into(), "i".into(), at(), |_| None);
    let media = e.media.unwrap();
    assert_eq!((media.size, media.sha256), (42, "0f".repeat(32)));
    assert_eq!(media.mime, "application/octet-stream");
}

#[test]
fn location_contact_and_reaction() {
    let loc = wa::Message {
        location_message: wa::message::LocationMessage {
            degrees_latitude: Some(-23.5),
            degrees_longitude: Some(-46.6),
            name: Some("Office".into()),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let e = entry(&loc);
    assert_eq!(
        e["location"],
        serde_json::json!({"latitude": -23.5, "longitude": -46.6, "name": "Office"})
    );
    assert_eq!(e["text"], "");
    let card = wa::Message {
        contact_message: wa::message::ContactMessage {
            display_name: Some("Ana".into()),
            vcard: Some("BEGIN:VCARD\nFN:Ana\nEND:VCARD".into()),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    assert_eq!(entry(&card)["contact"]["display_name"], "Ana");
    let key = wa::MessageKey { id: Some("3EB0T".into()), ..Default::default() };
    let r = wacore::proto_helpers::build_reaction_message(key, "👍", 1);
    assert_eq!(entry(&r)["reaction"], serde_json::json!({"message_id": "3EB0T", "emoji": "👍"}));
}

#[test]
fn inbound_specs_are_checked() {
    let spec = |v: serde_json::Value| -> WireInbound { serde_json::from_value(v).unwrap() };
    let ok = prepare(&spec(serde_json::json!({"from": "1", "text": "hi"}))).unwrap();
    assert_eq!(ok, Content::Text);
    for bad in [
        serde_json::json!({"from": "1"}),
        serde_json::json!({"from": "1", "location": {"latitude": 1, "longitude": 2}, "contact": {"vcard": "x"}}),
        serde_json::json!({"from": "1", "text": "x", "location": {"latitude": 1, "longitude": 2}}),
        serde_json::json!({"from": "1", "location": {"latitude": 91, "longitude": 2}}),
        serde_json::json!({"from": "1", "contact": {"vcard": "nope"}}),
        serde_json::json!({"from": "1", "reaction": {"message_id": "a", "emoji": "x"}, "reply_to": "b"}),
        serde_json::json!({"from": "1", "media": {"kind": "image", "mime": "image/png"}}),
        serde_json::json!({"from": "1", "media": {"kind": "image", "mime": "image/png", "size": 0}}),
        serde_json::json!({"from": "1", "media": {"kind": "image", "mime": "image/png", "voice": true, "size": 3}}),
        serde_json::json!({"from": "1", "media": {"kind": "image", "mime": "image/png", "size": MAX_INBOUND_MEDIA_BYTES + 1}}),
        serde_json::json!({"from": "1", "media": {"kind": "image", "mime": "image/png", "size": 3, "data_base64": "AAAA"}}),
        serde_json::json!({"from": "1", "text": "x", "reply_to": " "}),
    ] {
        assert!(prepare(&spec(bad.clone())).is_err(), "{bad}");
    }
    let card = prepare(&spec(serde_json::json!({"from": "1",
        "contact": {"vcard": "BEGIN:VCARD\nVERSION:3.0\nFN:Ana Souza\nEND:VCARD"}})))
    .unwrap();
    assert!(matches!(card, Content::Contact(c) if c.display_name == "Ana Souza"));
    let media = prepare(&spec(serde_json::json!({"from": "1",
        "media": {"kind": "image", "mime": "image/png", "data_base64": "AQID"}})))
    .unwrap();
    assert!(
        matches!(media, Content::Media { bytes: MediaBytes::Data(ref d), .. } if d == &[1, 2, 3])
    );
}

#[test]
fn senders_and_mentions() {
    let lids = |lid: &str| (lid == "123456789012345").then(|| "5511999990000".to_string());
    for raw in ["+55 11 99999-0000", "5511999990000@s.whatsapp.net", "123456789012345@lid"] {
        assert_eq!(sender_phone(raw, lids).unwrap(), "5511999990000", "{raw}");
    }
    assert!(sender_phone("999@lid", lids).is_err());
    assert!(sender_phone("1-2", lids).is_err());
    assert_eq!(mention_jid("+5511999990000").unwrap(), "5511999990000@s.whatsapp.net");
    assert_eq!(mention_jid("123@lid").unwrap(), "123@lid");
}

#[test]
fn inbound_messages_carry_context_and_quote() {
    let quote = Quote {
        id: "3EB0Q".into(),
        participant: Some("1@s.whatsapp.net".into()),
        text: "q".into(),
    };
    let m = inbound_message("hi", &[], None, &Content::Text, None, None);
    assert_eq!(m.conversation.as_deref(), Some("hi"));
    let m = inbound_message("hi", &[], Some(&quote), &Content::Text, None, None);
    let c = m.extended_text_message.context_info.as_option().unwrap();
    assert_eq!(c.stanza_id.as_deref(), Some("3EB0Q"));
    assert_eq!(c.participant.as_deref(), Some("1@s.whatsapp.net"));
    assert_eq!(c.quoted_message.conversation.as_deref(), Some("q"));
    let loc =
        Content::Location(Location { latitude: 1.5, longitude: 2.5, name: None, address: None });
    let m = inbound_message("", &["2@s.whatsapp.net".into()], None, &loc, None, None);
    assert_eq!(m.location_message.degrees_longitude, Some(2.5));
    assert_eq!(m.location_message.context_info.mentioned_jid, ["2@s.whatsapp.net"]);
    let stored = StoredMedia {
        url: "https://h/v/p".into(),
        direct_path: "/v/p".into(),
        media_key: [1; 32],
        file_sha256: [2; 32],
        file_enc_sha256: [3; 32],
        file_length: 9,
    };
    let voice = Content::Media {
        kind: MediaKind::Audio,
        mime: "audio/ogg".into(),
        file_name: None,
        voice: true,
        bytes: MediaBytes::Synthetic(9),
    };
    let m = inbound_message("", &[], None, &voice, Some(&stored), None);
    let a = m.audio_message.as_option().unwrap();
    assert_eq!(
        (a.ptt, a.file_length, a.direct_path.as_deref()),
        (Some(true), Some(9), Some("/v/p"))
    );
    // And the outbox reads it back as it came.
    let e = outbox_message(&m, "t".into(), "i".into(), at(), |_| None);
    assert!(e.media.unwrap().voice);
}

#[test]
fn made_up_bytes_match_the_simulated_networks() {
    // The first words of SplitMix64 from index 0 (seed + 1), little-endian.
    let mut all = Vec::new();
    Synthetic { offset: 0, total: 20 }.read_to_end(&mut all).unwrap();
    assert_eq!(all.len(), 20);
    assert_eq!(&all[..8], &splitmix64(0).to_le_bytes());
    assert_eq!(&all[8..16], &splitmix64(1).to_le_bytes());
    // Reading in odd pieces gives the same bytes.
    let mut r = Synthetic { offset: 0, total: 20 };
    let mut pieces = Vec::new();
    let mut buf = [0u8; 3];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        pieces.extend_from_slice(&buf[..n]);
    }
    assert_eq!(pieces, all);
}
