//! The protobuf of each outgoing kind, field by field: what other clients read to show it.

use std::path::PathBuf;

use super::*;

fn jid(s: &str) -> Jid {
    Jid::parse(s).unwrap()
}

const CONTACT: &str = "5511988887777@s.whatsapp.net";
const GROUP: &str = "120363000000000001@g.us";

fn message(to: &str, content: OutgoingContent) -> OutgoingMessage {
    OutgoingMessage { id: "3EB0BZ1".into(), to: jid(to), content, mentions: vec![], reply_to: None }
}

fn text(to: &str, t: &str) -> OutgoingMessage {
    message(to, OutgoingContent::Text { text: t.into() })
}

fn build(msg: &OutgoingMessage) -> wa::Message {
    build_message(msg, Some(&uploaded()), Some(&jid("5511999990001@s.whatsapp.net")), 1_700_000)
        .unwrap()
}

fn uploaded() -> Uploaded {
    Uploaded {
        url: "https://mmg.whatsapp.net/v/t62.7118-24/abc".into(),
        direct_path: "/v/t62.7118-24/abc".into(),
        media_key: vec![1; 32],
        file_enc_sha256: vec![2; 32],
        file_sha256: vec![3; 32],
        file_length: 48213,
        media_key_timestamp: 1_700_000_000,
        streaming_sidecar: Some(vec![4; 10]),
    }
}

fn file(kind: MediaKind, mime: &str) -> OutgoingMedia {
    OutgoingMedia {
        media_kind: kind,
        path: PathBuf::from("/var/lib/bzapper/media/t1/m1"),
        mime: mime.into(),
        size: 48213,
        sha256: "03".repeat(32),
        file_name: None,
        caption: Some("look @5511977776666".into()),
        voice: false,
        seconds: None,
    }
}

fn quoted(from_me: bool, chat: &str, sender: Option<&str>) -> MessageRef {
    MessageRef {
        id: "3EB0QUOTED".into(),
        chat: jid(chat),
        from_me,
        sender: sender.map(jid),
        text: Some("the original".into()),
    }
}

#[test]
fn a_plain_text_is_a_conversation() {
    let m = build(&text(CONTACT, "hi"));
    assert_eq!(m.conversation.as_deref(), Some("hi"));
    assert!(m.extended_text_message.is_unset());
}

#[test]
fn mentions_make_an_extended_text_with_the_mentioned_jids_without_devices() {
    let mut msg = text(GROUP, "hi @5511999990001");
    msg.mentions = vec![jid("5511999990001:3@s.whatsapp.net"), jid("777@lid")];
    let m = build(&msg);
    assert!(m.conversation.is_none());
    let ext = m.extended_text_message.as_option().unwrap();
    assert_eq!(ext.text.as_deref(), Some("hi @5511999990001"));
    let ctx = ext.context_info.as_option().unwrap();
    assert_eq!(ctx.mentioned_jid, vec!["5511999990001@s.whatsapp.net", "777@lid"]);
    assert!(ctx.stanza_id.is_none(), "no quote without reply_to");
}

#[test]
fn a_reply_quotes_the_message_id_its_author_and_its_text() {
    let mut msg = text(CONTACT, "answer");
    msg.reply_to = Some(quoted(false, CONTACT, None));
    let m = build(&msg);
    let ctx = m.extended_text_message.as_option().unwrap().context_info.as_option().unwrap();
    assert_eq!(ctx.stanza_id.as_deref(), Some("3EB0QUOTED"));
    // In a direct chat the other party wrote it.
    assert_eq!(ctx.participant.as_deref(), Some(CONTACT));
    assert_eq!(
        ctx.quoted_message.as_option().unwrap().conversation.as_deref(),
        Some("the original")
    );
    assert!(ctx.remote_jid.is_none(), "a same-chat reply names no chat");
}

#[test]
fn a_reply_in_a_group_names_the_sender_and_one_to_our_own_message_names_us() {
    let mut msg = text(GROUP, "answer");
    msg.reply_to = Some(quoted(false, GROUP, Some("777:2@lid")));
    let ctx = build(&msg).extended_text_message.unwrap().context_info.unwrap();
    assert_eq!(ctx.participant.as_deref(), Some("777@lid"));

    msg.reply_to = Some(quoted(true, GROUP, None));
    let ctx = build(&msg).extended_text_message.unwrap().context_info.unwrap();
    assert_eq!(ctx.participant.as_deref(), Some("5511999990001@s.whatsapp.net"));
}

#[test]
fn a_quote_from_another_chat_names_that_chat() {
    let mut msg = text(CONTACT, "see this");
    msg.reply_to = Some(quoted(false, GROUP, Some("777@lid")));
    let ctx = build(&msg).extended_text_message.unwrap().context_info.unwrap();
    assert_eq!(ctx.remote_jid.as_deref(), Some(GROUP));
}

#[test]
fn an_image_carries_the_cdn_fields_its_caption_and_context() {
    let mut msg = message(GROUP, OutgoingContent::Media(file(MediaKind::Image, "image/jpeg")));
    msg.mentions = vec![jid("5511977776666@s.whatsapp.net")];
    msg.reply_to = Some(quoted(false, GROUP, Some("777@lid")));
    let m = build(&msg);
    let img = m.image_message.as_option().unwrap();
    let up = uploaded();
    assert_eq!(img.url.as_deref(), Some(up.url.as_str()));
    assert_eq!(img.direct_path.as_deref(), Some(up.direct_path.as_str()));
    assert_eq!(img.media_key.as_deref(), Some(&up.media_key[..]));
    assert_eq!(img.file_enc_sha256.as_deref(), Some(&up.file_enc_sha256[..]));
    assert_eq!(img.file_sha256.as_deref(), Some(&up.file_sha256[..]));
    assert_eq!(img.file_length, Some(48213));
    assert_eq!(img.media_key_timestamp, Some(1_700_000_000));
    assert_eq!(img.mimetype.as_deref(), Some("image/jpeg"));
    assert_eq!(img.caption.as_deref(), Some("look @5511977776666"));
    let ctx = img.context_info.as_option().unwrap();
    assert_eq!(ctx.mentioned_jid, vec!["5511977776666@s.whatsapp.net"]);
    assert_eq!(ctx.stanza_id.as_deref(), Some("3EB0QUOTED"));
    assert_eq!(ctx.participant.as_deref(), Some("777@lid"));
}

#[test]
fn a_media_file_without_mentions_or_reply_has_no_context() {
    let mut f = file(MediaKind::Video, "video/mp4");
    f.caption = None;
    let m = build(&message(CONTACT, OutgoingContent::Media(f)));
    let video = m.video_message.as_option().unwrap();
    assert!(video.context_info.is_unset());
    assert!(video.caption.is_none());
    assert_eq!(video.streaming_sidecar.as_deref(), Some(&[4u8; 10][..]));
    assert_eq!(video.seconds, None, "no duration unless the gateway read one");
}

#[test]
fn audio_and_video_carry_their_duration_so_the_bubble_shows_it() {
    let mut f = file(MediaKind::Audio, "audio/ogg; codecs=opus");
    f.voice = true;
    f.seconds = Some(8);
    let m = build(&message(CONTACT, OutgoingContent::Media(f)));
    assert_eq!(m.audio_message.as_option().unwrap().seconds, Some(8));
    let mut f = file(MediaKind::Video, "video/mp4");
    f.seconds = Some(61);
    let m = build(&message(CONTACT, OutgoingContent::Media(f)));
    assert_eq!(m.video_message.as_option().unwrap().seconds, Some(61));
}

#[test]
fn audio_is_a_voice_note_when_asked_and_never_has_a_caption() {
    let mut f = file(MediaKind::Audio, "audio/ogg; codecs=opus");
    f.voice = true;
    let m = build(&message(CONTACT, OutgoingContent::Media(f.clone())));
    let audio = m.audio_message.as_option().unwrap();
    assert_eq!(audio.ptt, Some(true));
    assert_eq!(audio.mimetype.as_deref(), Some("audio/ogg; codecs=opus"));
    assert_eq!(audio.streaming_sidecar.as_deref(), Some(&[4u8; 10][..]));
    assert_eq!(audio.seconds, None);
    f.voice = false;
    let m = build(&message(CONTACT, OutgoingContent::Media(f)));
    assert_eq!(m.audio_message.as_option().unwrap().ptt, Some(false));
}

#[test]
fn a_document_has_its_name_as_title_and_a_caption_wraps_it() {
    let mut f = file(MediaKind::Document, "application/pdf");
    f.file_name = Some("invoice.pdf".into());
    let m = build(&message(CONTACT, OutgoingContent::Media(f.clone())));
    let inner = m.document_with_caption_message.as_option().unwrap().message.as_option().unwrap();
    let doc = inner.document_message.as_option().unwrap();
    assert_eq!(doc.file_name.as_deref(), Some("invoice.pdf"));
    assert_eq!(doc.title.as_deref(), Some("invoice.pdf"));
    assert_eq!(doc.caption.as_deref(), Some("look @5511977776666"));
    assert_eq!(doc.media_key.as_deref(), Some(&[1u8; 32][..]));

    // Without a caption it is a bare document; without a name, the file's own.
    f.caption = None;
    f.file_name = None;
    let m = build(&message(CONTACT, OutgoingContent::Media(f)));
    assert!(m.document_with_caption_message.is_unset());
    let doc = m.document_message.as_option().unwrap();
    assert_eq!(doc.file_name.as_deref(), Some("m1"));
}

#[test]
fn a_sticker_has_no_caption_but_keeps_a_reply() {
    let mut msg = message(GROUP, OutgoingContent::Media(file(MediaKind::Sticker, "image/webp")));
    msg.reply_to = Some(quoted(false, GROUP, Some("777@lid")));
    let m = build(&msg);
    let s = m.sticker_message.as_option().unwrap();
    assert_eq!(s.mimetype.as_deref(), Some("image/webp"));
    assert_eq!(s.direct_path.as_deref(), Some("/v/t62.7118-24/abc"));
    assert_eq!(s.context_info.as_option().unwrap().stanza_id.as_deref(), Some("3EB0QUOTED"));
}

#[test]
fn media_that_was_not_uploaded_is_refused_rather_than_sent_empty() {
    let msg = message(CONTACT, OutgoingContent::Media(file(MediaKind::Image, "image/png")));
    assert!(matches!(build_message(&msg, None, None, 0), Err(DriverError::Rejected { .. })));
}

#[test]
fn a_location_carries_its_coordinates_and_labels() {
    let mut msg = message(
        CONTACT,
        OutgoingContent::Location(Location {
            latitude: -23.5613,
            longitude: -46.6565,
            name: Some("MASP".into()),
            address: Some("Av. Paulista, 1578".into()),
        }),
    );
    let m = build(&msg);
    let l = m.location_message.as_option().unwrap();
    assert_eq!((l.degrees_latitude, l.degrees_longitude), (Some(-23.5613), Some(-46.6565)));
    assert_eq!(l.name.as_deref(), Some("MASP"));
    assert_eq!(l.address.as_deref(), Some("Av. Paulista, 1578"));
    assert!(l.context_info.is_unset());

    msg.reply_to = Some(quoted(false, CONTACT, None));
    let m = build(&msg);
    let ctx = m.location_message.as_option().unwrap().context_info.as_option().unwrap();
    assert_eq!(ctx.stanza_id.as_deref(), Some("3EB0QUOTED"));
}

#[test]
fn a_contact_card_carries_its_name_and_vcard() {
    let vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Ana\nTEL:+5511988887777\nEND:VCARD";
    let mut msg = message(
        CONTACT,
        OutgoingContent::Contact(ContactCard { display_name: "Ana".into(), vcard: vcard.into() }),
    );
    msg.reply_to = Some(quoted(false, CONTACT, None));
    let m = build(&msg);
    let c = m.contact_message.as_option().unwrap();
    assert_eq!(c.display_name.as_deref(), Some("Ana"));
    assert_eq!(c.vcard.as_deref(), Some(vcard));
    assert_eq!(c.context_info.as_option().unwrap().stanza_id.as_deref(), Some("3EB0QUOTED"));
}

#[test]
fn a_reaction_keys_its_target_with_the_participant_in_groups_only() {
    let react = |target: MessageRef, emoji: &str| {
        build(&message(
            target.chat.to_string().as_str(),
            OutgoingContent::Reaction { target, emoji: emoji.into() },
        ))
    };
    let m = react(quoted(false, GROUP, Some("777:5@lid")), "👍");
    let r = m.reaction_message.as_option().unwrap();
    assert_eq!(r.text.as_deref(), Some("👍"));
    assert_eq!(r.sender_timestamp_ms, Some(1_700_000));
    let key = r.key.as_option().unwrap();
    assert_eq!(key.remote_jid.as_deref(), Some(GROUP));
    assert_eq!(key.from_me, Some(false));
    assert_eq!(key.id.as_deref(), Some("3EB0QUOTED"));
    assert_eq!(key.participant.as_deref(), Some("777@lid"));

    // Our own group message: we are the participant.
    let m = react(quoted(true, GROUP, None), "❤");
    let key = m.reaction_message.as_option().unwrap().key.as_option().unwrap().clone();
    assert_eq!(
        (key.from_me, key.participant.as_deref()),
        (Some(true), Some("5511999990001@s.whatsapp.net"))
    );

    // A direct chat needs no participant; an empty emoji removes the reaction.
    let m = react(quoted(false, CONTACT, None), "");
    let r = m.reaction_message.as_option().unwrap();
    assert_eq!(r.text.as_deref(), Some(""));
    assert!(r.key.as_option().unwrap().participant.is_none());
}
