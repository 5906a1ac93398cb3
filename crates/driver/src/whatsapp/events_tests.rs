//! The event-mapping table, row by row: each library event is built with the library's own
//! builders and fed to `map_event`, and the status, reason and detail it leads to are checked;
//! then each kind of inbound message, with what it carries (media and its handle, location,
//! contact card, reaction, mentions, quote).

use std::sync::Arc;
use std::time::Duration;

use bzapper_core::{InstanceState, Reason, Status, Trigger};
use chrono::TimeZone;
use whatsapp_rust::types::events as ev;
use whatsapp_rust::types::message::{MessageInfo, MessageSource};
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::Jid as WaJid;

use super::*;
use crate::InboundMessage;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

fn wa_jid(s: &str) -> WaJid {
    s.parse().unwrap()
}

/// The one driver event a row must produce.
fn single(event: Event) -> DriverEvent {
    match map_event(&event, now()) {
        Mapped::Emit(mut v) if v.len() == 1 => v.remove(0),
        other => panic!("expected one event, got {other:?}"),
    }
}

/// What the server's state machine makes of a drop, starting from `connected`.
fn after_drop(event: Event) -> (InstanceState, DropKind) {
    let DriverEvent::Disconnected { kind, detail } = single(event) else {
        panic!("expected a drop");
    };
    let trigger = match kind {
        DropKind::Transient => Trigger::Dropped { detail },
        DropKind::LoggedOut => Trigger::LoggedOut { detail },
        DropKind::Banned | DropKind::TemporarilyBanned { .. } => Trigger::Banned { detail },
        DropKind::Ended => Trigger::Ended { detail },
    };
    (InstanceState::connected().apply(&trigger).unwrap().to, kind)
}

#[test]
fn qr_codes_expire_after_their_timeout_and_run_out_as_qr_timeout() {
    let qr =
        ev::PairingQrCode::builder().code("2@abc".into()).timeout(Duration::from_secs(60)).build();
    assert_eq!(
        single(Event::PairingQrCode(qr)),
        DriverEvent::Qr { code: "2@abc".into(), expires_at: now() + chrono::Duration::seconds(60) }
    );
    let gone = ev::PairingQrCodesExhausted::builder().disconnected(true).build();
    assert_eq!(single(Event::PairingQrCodesExhausted(gone)), DriverEvent::QrTimeout);
}

#[test]
fn pair_success_gives_phone_jid_and_lid_without_device_parts() {
    let p = ev::PairSuccess::builder()
        .id(wa_jid("5511999990001:7@s.whatsapp.net"))
        .lid(wa_jid("123456789:7@lid"))
        .business_name(String::new())
        .platform("android".into())
        .build();
    assert_eq!(
        single(Event::PairSuccess(p)),
        DriverEvent::Paired {
            phone: Phone::parse("+5511999990001").unwrap(),
            jid: Jid::parse("5511999990001@s.whatsapp.net").unwrap(),
            lid: Some(Jid::parse("123456789@lid").unwrap()),
        }
    );
}

#[test]
fn connected_and_a_network_drop_are_connected_then_connecting_transient() {
    assert_eq!(single(Event::Connected(ev::Connected::builder().build())), DriverEvent::Connected);
    let d = ev::Disconnected::builder()
        .reason(whatsapp_rust::wacore::net::DisconnectReason::StreamEnded)
        .build();
    let (state, kind) = after_drop(Event::Disconnected(d));
    assert_eq!(kind, DropKind::Transient);
    assert_eq!((state.status, state.reason), (Status::Connecting, Some(Reason::Transient)));
    assert!(state.detail.unwrap().contains("connection lost"));
}

#[test]
fn logged_out_is_disconnected_logged_out_with_the_code_and_the_server_message() {
    let l = ev::LoggedOut::builder()
        .on_connect(true)
        .reason(ConnectFailureReason::LoggedOut)
        .logout_message(
            ev::LogoutMessage::builder()
                .header("Device removed".into())
                .subtext("Log in again".into())
                .build(),
        )
        .build();
    let (state, kind) = after_drop(Event::LoggedOut(l));
    assert_eq!(kind, DropKind::LoggedOut);
    assert_eq!((state.status, state.reason), (Status::Disconnected, Some(Reason::LoggedOut)));
    let detail = state.detail.unwrap();
    assert!(detail.contains("code 401"), "{detail}");
    assert!(detail.contains("Device removed: Log in again"), "{detail}");
}

#[test]
fn a_temporary_ban_is_banned_with_code_and_expiry_and_can_reconnect_after_it() {
    let b = ev::TemporaryBan::builder()
        .code(ev::TempBanReason::SentToTooManyPeople)
        .expire(chrono::Duration::hours(24))
        .build();
    let (state, kind) = after_drop(Event::TemporaryBan(b));
    assert_eq!(kind, DropKind::TemporarilyBanned { until: now() + chrono::Duration::hours(24) });
    assert_eq!((state.status, state.reason), (Status::Disconnected, Some(Reason::Banned)));
    let detail = state.detail.unwrap();
    assert!(detail.contains("code 101"), "{detail}");
    assert!(detail.contains("until 2026-11-27T12:00:00Z"), "{detail}");

    // Without an expiry the ban has no end the driver could wait for.
    let b = ev::TemporaryBan::builder()
        .code(ev::TempBanReason::Unknown(199))
        .expire(chrono::Duration::zero())
        .build();
    assert_eq!(after_drop(Event::TemporaryBan(b)).1, DropKind::Banned);
}

#[test]
fn replaced_and_outdated_end_the_connection_with_what_to_do() {
    let (state, kind) = after_drop(Event::StreamReplaced(ev::StreamReplaced::builder().build()));
    assert_eq!(kind, DropKind::Ended);
    assert_eq!((state.status, state.reason), (Status::Disconnected, Some(Reason::Stopped)));
    assert!(state.detail.unwrap().contains("another session took over"));

    let (state, _) = after_drop(Event::ClientOutdated(ev::ClientOutdated::builder().build()));
    assert!(state.detail.unwrap().contains("outdated"));
}

#[test]
fn a_connect_failure_retries_on_5xx_and_ends_otherwise() {
    let f = ev::ConnectFailure::builder().reason(ConnectFailureReason::ServiceUnavailable).build();
    let (state, kind) = after_drop(Event::ConnectFailure(f));
    assert_eq!(kind, DropKind::Transient);
    assert!(state.detail.unwrap().contains("code 503"));

    let f = ev::ConnectFailure::builder()
        .reason(ConnectFailureReason::BadUserAgent)
        .message("bad ua".into())
        .build();
    let (state, kind) = after_drop(Event::ConnectFailure(f));
    assert_eq!(kind, DropKind::Ended);
    let detail = state.detail.unwrap();
    assert!(detail.contains("BadUserAgent, code 409): bad ua"), "{detail}");
}

fn info(sender: &str, alt: Option<&str>, from_me: bool) -> MessageInfo {
    MessageInfo {
        source: MessageSource {
            chat: wa_jid(sender),
            sender: wa_jid(sender),
            is_from_me: from_me,
            sender_alt: alt.map(wa_jid),
            ..Default::default()
        },
        id: "3EB0AAA".into(),
        push_name: "Ana".into(),
        timestamp: now(),
        ..Default::default()
    }
}

fn batch(items: Vec<(wa::Message, MessageInfo)>) -> Event {
    let messages: Vec<ev::InboundMessage> = items
        .into_iter()
        .map(|(m, i)| ev::InboundMessage::builder().message(Arc::new(m)).info(Arc::new(i)).build())
        .collect();
    Event::Messages(
        ev::MessageBatch::builder().messages(messages.into()).origin(ev::BatchOrigin::Live).build(),
    )
}

#[test]
fn inbound_messages_carry_text_sender_alt_and_mentions_by_jid() {
    let mentioned = wa::Message {
        extended_text_message: wa::message::ExtendedTextMessage {
            text: Some("hi @someone".into()),
            context_info: wa::ContextInfo {
                mentioned_jid: vec!["777@lid".into(), "5511999990001@s.whatsapp.net".into()],
                ..Default::default()
            }
            .into(),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let plain = wa::Message { conversation: Some("plain".into()), ..Default::default() };
    let echo = wa::Message { conversation: Some("mine".into()), ..Default::default() };
    let Mapped::Emit(events) = map_event(
        &batch(vec![
            (mentioned, info("555@lid", Some("5511988887777@s.whatsapp.net"), false)),
            (plain, info("5511988887777@s.whatsapp.net", None, false)),
            (echo, info("5511988887777@s.whatsapp.net", None, true)),
        ]),
        now(),
    ) else {
        panic!("messages are emitted");
    };
    assert_eq!(events.len(), 2, "our own echo is skipped");
    let DriverEvent::Message(m) = &events[0] else { panic!() };
    assert_eq!(m.text, "hi @someone");
    assert_eq!(m.sender, Jid::parse("555@lid").unwrap());
    assert_eq!(m.sender_alt, Some(Jid::parse("5511988887777@s.whatsapp.net").unwrap()));
    assert_eq!(
        m.mentions,
        vec![Jid::parse("777@lid").unwrap(), Jid::parse("5511999990001@s.whatsapp.net").unwrap()]
    );
    assert_eq!(m.push_name.as_deref(), Some("Ana"));
    let DriverEvent::Message(m) = &events[1] else { panic!() };
    assert_eq!((m.text.as_str(), m.mentions.len()), ("plain", 0));
}

#[test]
fn a_caption_is_the_text_of_a_media_message() {
    let image = wa::Message {
        image_message: wa::message::ImageMessage {
            caption: Some("look".into()),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let Mapped::Emit(events) =
        map_event(&batch(vec![(image, info("5511988887777@s.whatsapp.net", None, false))]), now())
    else {
        panic!()
    };
    let DriverEvent::Message(m) = &events[0] else { panic!() };
    assert_eq!(m.text, "look");
}

#[test]
fn a_batch_the_durability_hook_committed_is_not_reported_again() {
    let plain = wa::Message { conversation: Some("plain".into()), ..Default::default() };
    let item = (plain, info("5511988887777@s.whatsapp.net", None, false));
    let Event::Messages(b) = batch(vec![item]) else { unreachable!() };
    let committed = ev::MessageBatch::builder()
        .messages(b.messages.clone())
        .origin(ev::BatchOrigin::Live)
        .hook_committed(true)
        .build();
    assert_eq!(map_event(&Event::Messages(committed), now()), Mapped::Ignore);
    // One the library dispatched without the hook (a recovered placeholder) still is.
    assert!(matches!(map_event(&Event::Messages(b), now()), Mapped::Emit(e) if e.len() == 1));
}

#[test]
fn receipts_become_delivered_and_read_and_acks_resolve_sends() {
    let receipt = |t: ReceiptType, from_me: bool| {
        Event::Receipt(
            ev::Receipt::builder()
                .source(info("5511988887777@s.whatsapp.net", None, from_me).source)
                .message_ids(vec!["A".into(), "B".into()])
                .timestamp(now())
                .r#type(t)
                .offline(false)
                .build(),
        )
    };
    assert_eq!(
        map_event(&receipt(ReceiptType::Delivered, false), now()),
        Mapped::Emit(vec![
            DriverEvent::Receipt { message_id: "A".into(), status: ReceiptStatus::Delivered },
            DriverEvent::Receipt { message_id: "B".into(), status: ReceiptStatus::Delivered },
        ])
    );
    let Mapped::Emit(read) = map_event(&receipt(ReceiptType::Played, false), now()) else {
        panic!()
    };
    assert!(read
        .iter()
        .all(|e| matches!(e, DriverEvent::Receipt { status: ReceiptStatus::Read, .. })));
    assert_eq!(map_event(&receipt(ReceiptType::ReadSelf, true), now()), Mapped::Ignore);
    assert_eq!(map_event(&receipt(ReceiptType::Retry, false), now()), Mapped::Ignore);

    let nack = ev::ServerAck::builder()
        .id("M1".into())
        .class("message".into())
        .error("463".into())
        .build();
    assert_eq!(
        map_event(&Event::ServerAck(nack), now()),
        Mapped::Ack { id: "M1".into(), error: Some("463".into()) }
    );
    let receipt_ack = ev::ServerAck::builder().id("R1".into()).class("receipt".into()).build();
    assert_eq!(map_event(&Event::ServerAck(receipt_ack), now()), Mapped::Ignore);
}

/// The one message a batch of one maps to.
fn one(message: wa::Message, info: MessageInfo) -> InboundMessage {
    match map_event(&batch(vec![(message, info)]), now()) {
        Mapped::Emit(mut v) if v.len() == 1 => match v.remove(0) {
            DriverEvent::Message(m) => m,
            other => panic!("expected a message, got {other:?}"),
        },
        other => panic!("expected one message, got {other:?}"),
    }
}

fn group_info(sender: &str) -> MessageInfo {
    let mut i = info(sender, None, false);
    i.source.chat = wa_jid("120363000000000001@g.us");
    i.source.is_group = true;
    i
}

/// The media of a message, with its handle read back.
fn media_of(m: &InboundMessage) -> (&crate::InboundMedia, serde_json::Value) {
    let crate::InboundContent::Media(media) = &m.content else {
        panic!("expected media, got {:?}", m.content);
    };
    (media, media.handle.clone())
}

fn quote(mentions: &[&str]) -> wa::ContextInfo {
    wa::ContextInfo {
        stanza_id: Some("3EB0QUOTED".into()),
        participant: Some("777@lid".into()),
        quoted_message: wa::Message { conversation: Some("before".into()), ..Default::default() }
            .into(),
        mentioned_jid: mentions.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn an_image_is_media_with_its_caption_mentions_quote_and_a_handle_to_fetch_it() {
    let image = wa::Message {
        image_message: wa::message::ImageMessage {
            url: Some("https://mmg.whatsapp.net/v/t62.7118-24/abc".into()),
            direct_path: Some("/v/t62.7118-24/abc".into()),
            mimetype: Some("image/jpeg".into()),
            caption: Some("look @777".into()),
            media_key: Some(vec![1; 32]),
            file_enc_sha256: Some(vec![2; 32]),
            file_sha256: Some(vec![3; 32]),
            file_length: Some(48213),
            context_info: quote(&["777@lid"]).into(),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let m = one(image, group_info("555@lid"));
    assert_eq!(m.text, "look @777");
    assert_eq!(m.mentions, vec![Jid::parse("777@lid").unwrap()]);
    assert_eq!(m.reply_to.as_deref(), Some("3EB0QUOTED"));
    assert_eq!(m.chat, Jid::parse("120363000000000001@g.us").unwrap());
    let (media, handle) = media_of(&m);
    assert_eq!(media.media_kind, bzapper_core::MediaKind::Image);
    assert_eq!((media.mime.as_str(), media.size, media.voice), ("image/jpeg", 48213, false));
    assert_eq!(media.file_name, None);
    assert_eq!(handle["media_type"], "image");
    assert_eq!(handle["direct_path"], "/v/t62.7118-24/abc");
    assert_eq!(handle["url"], "https://mmg.whatsapp.net/v/t62.7118-24/abc");
    assert_eq!(handle["media_key"], "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=");
    assert_eq!(handle["file_length"], 48213);
    // Which message it was, so the sender's phone can be asked for it again once expired.
    assert_eq!(handle["message"]["id"], "3EB0AAA");
    assert_eq!(handle["message"]["chat"], "120363000000000001@g.us");
    assert_eq!(handle["message"]["participant"], "555@lid");
}

#[test]
fn a_voice_note_is_audio_with_voice_and_no_text() {
    let audio = wa::Message {
        audio_message: wa::message::AudioMessage {
            mimetype: Some("audio/ogg; codecs=opus".into()),
            ptt: Some(true),
            file_length: Some(9000),
            direct_path: Some("/v/t62.7117-24/ptt".into()),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let m = one(audio, info("5511988887777@s.whatsapp.net", None, false));
    assert_eq!(m.text, "", "a media message without caption is still reported");
    let (media, handle) = media_of(&m);
    assert_eq!(media.media_kind, bzapper_core::MediaKind::Audio);
    assert!(media.voice);
    assert_eq!(handle["media_type"], "audio");
    assert!(handle["message"].get("participant").is_none(), "no participant in a direct chat");
}

#[test]
fn video_document_and_sticker_map_to_their_kinds() {
    let video = wa::Message {
        video_message: wa::message::VideoMessage {
            mimetype: Some("video/mp4".into()),
            caption: Some("clip".into()),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let m = one(video, info("5511988887777@s.whatsapp.net", None, false));
    assert_eq!(
        (m.text.as_str(), media_of(&m).0.media_kind),
        ("clip", bzapper_core::MediaKind::Video)
    );

    // A captioned document comes wrapped; the wrapper is looked through.
    let document = wa::Message {
        document_with_caption_message: wa::message::FutureProofMessage {
            message: wa::Message {
                document_message: wa::message::DocumentMessage {
                    mimetype: Some("application/pdf".into()),
                    file_name: Some("invoice.pdf".into()),
                    caption: Some("the invoice".into()),
                    context_info: quote(&[]).into(),
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
    let m = one(document, info("5511988887777@s.whatsapp.net", None, false));
    assert_eq!(m.text, "the invoice");
    assert_eq!(m.reply_to.as_deref(), Some("3EB0QUOTED"));
    let (media, handle) = media_of(&m);
    assert_eq!(media.media_kind, bzapper_core::MediaKind::Document);
    assert_eq!(media.file_name.as_deref(), Some("invoice.pdf"));
    assert_eq!(handle["media_type"], "document");

    let sticker = wa::Message {
        sticker_message: wa::message::StickerMessage {
            mimetype: Some("image/webp".into()),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let m = one(sticker, info("5511988887777@s.whatsapp.net", None, false));
    let (media, _) = media_of(&m);
    assert_eq!(
        (media.media_kind, media.mime.as_str()),
        (bzapper_core::MediaKind::Sticker, "image/webp")
    );
}

#[test]
fn a_location_and_a_contact_card_are_their_content() {
    let location = wa::Message {
        location_message: wa::message::LocationMessage {
            degrees_latitude: Some(-23.5613),
            degrees_longitude: Some(-46.6565),
            name: Some("MASP".into()),
            address: Some("Av. Paulista, 1578".into()),
            context_info: quote(&[]).into(),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let m = one(location, info("5511988887777@s.whatsapp.net", None, false));
    assert_eq!(
        m.content,
        crate::InboundContent::Location(bzapper_core::Location {
            latitude: -23.5613,
            longitude: -46.6565,
            name: Some("MASP".into()),
            address: Some("Av. Paulista, 1578".into()),
        })
    );
    assert_eq!(m.reply_to.as_deref(), Some("3EB0QUOTED"));

    let vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Ana\nEND:VCARD";
    let contact = wa::Message {
        contact_message: wa::message::ContactMessage {
            display_name: Some("Ana".into()),
            vcard: Some(vcard.into()),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let m = one(contact, info("5511988887777@s.whatsapp.net", None, false));
    assert_eq!(
        m.content,
        crate::InboundContent::Contact(bzapper_core::ContactCard {
            display_name: "Ana".into(),
            vcard: vcard.into()
        })
    );
}

#[test]
fn a_reaction_names_its_target_and_an_empty_one_is_a_removal() {
    let reaction = |emoji: &str| wa::Message {
        reaction_message: wa::message::ReactionMessage {
            key: wa::MessageKey {
                remote_jid: Some("120363000000000001@g.us".into()),
                from_me: Some(true),
                id: Some("3EB0OURS".into()),
                participant: None,
            }
            .into(),
            text: Some(emoji.into()),
            sender_timestamp_ms: Some(1),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let m = one(reaction("👍"), group_info("555@lid"));
    assert_eq!(
        m.content,
        crate::InboundContent::Reaction { target_id: "3EB0OURS".into(), emoji: "👍".into() }
    );
    assert_eq!(m.text, "");
    let m = one(reaction(""), group_info("555@lid"));
    assert_eq!(
        m.content,
        crate::InboundContent::Reaction { target_id: "3EB0OURS".into(), emoji: String::new() }
    );
}

#[test]
fn a_quoted_text_reply_names_the_quoted_id_and_nothing_reportable_is_skipped() {
    let reply = wa::Message {
        extended_text_message: wa::message::ExtendedTextMessage {
            text: Some("yes".into()),
            context_info: quote(&[]).into(),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let m = one(reply, info("5511988887777@s.whatsapp.net", None, false));
    assert_eq!((m.text.as_str(), m.reply_to.as_deref()), ("yes", Some("3EB0QUOTED")));
    assert_eq!(m.content, crate::InboundContent::Text);

    // A protocol message (here: a key share) carries nothing for a client.
    let protocol = wa::Message {
        protocol_message: wa::message::ProtocolMessage::default().into(),
        ..Default::default()
    };
    assert_eq!(
        map_event(
            &batch(vec![(protocol, info("5511988887777@s.whatsapp.net", None, false))]),
            now()
        ),
        Mapped::Emit(vec![])
    );
}
