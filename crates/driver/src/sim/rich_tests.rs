//! Tests of rich messages on the simulated network, both ways: media (with real files read
//! and hashed), locations, contact cards, reactions and quoted replies; media downloads;
//! groups; contact checks. In-process on a paused clock, then the same through the HTTP
//! service with `RemoteSimNet`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bzapper_core::{ContactCard, Jid, Location, MediaKind};
use rand::Rng;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::media::hex;
use super::tests::{local, next, next_real, paired, phone, start, text, MemStore};
use super::*;
use crate::{
    ChatState, ContactStatus, DriverError, DriverEvent, GroupParticipant, GroupSummary,
    InboundContent, InboundMedia, InboundMessage, MessageRef, OutgoingContent, OutgoingMedia,
    OutgoingMessage, ReceiptStatus,
};

const CARD: &str = "BEGIN:VCARD\nVERSION:3.0\nFN:Ana Souza\nTEL:+5511988887777\nEND:VCARD";
const ME: &str = "+5511999990001";
const PEER: &str = "+5511988880002";

/// A file in the system's temp directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new() -> Self {
        let tag: u64 = rand::thread_rng().gen();
        Self(std::env::temp_dir().join(format!("bzapper-sim-{}-{tag:016x}", std::process::id())))
    }

    fn with(bytes: &[u8]) -> Self {
        let f = Self::new();
        std::fs::write(&f.0, bytes).unwrap();
        f
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn sha(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn to(number: &str) -> Jid {
    phone(number).jid()
}

fn message(id: &str, content: OutgoingContent) -> OutgoingMessage {
    OutgoingMessage { id: id.into(), to: to(PEER), content, mentions: vec![], reply_to: None }
}

fn media_of(file: &Path, bytes: &[u8], kind: MediaKind, mime: &str) -> OutgoingMedia {
    OutgoingMedia {
        media_kind: kind,
        path: file.to_path_buf(),
        mime: mime.into(),
        size: bytes.len() as u64,
        sha256: sha(bytes),
        file_name: None,
        caption: None,
        voice: false,
        seconds: None,
    }
}

fn quote(id: &str) -> MessageRef {
    MessageRef { id: id.into(), chat: to(PEER), from_me: false, sender: None, text: None }
}

fn spec(text: &str) -> InboundSpec {
    InboundSpec { from: PEER.into(), text: text.into(), ..Default::default() }
}

fn media_spec(kind: MediaKind, mime: &str) -> InboundMediaSpec {
    InboundMediaSpec {
        kind,
        mime: mime.into(),
        file_name: None,
        voice: false,
        data_base64: None,
        size: None,
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn inbound_message(rx: &mut super::tests::Events) -> InboundMessage {
    match next(rx).await {
        DriverEvent::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn delivered(rx: &mut super::tests::Events, id: &str) {
    assert_eq!(
        next(rx).await,
        DriverEvent::Receipt { message_id: id.into(), status: ReceiptStatus::Delivered }
    );
}

#[tokio::test(start_paused = true)]
async fn every_kind_goes_out_and_lands_in_the_outbox() {
    let (net, driver) = local();
    let (conn, mut rx, _store, _) = paired(&driver, "i1", ME).await;

    let jpeg = b"\xFF\xD8\xFF\xE0 not really a cat".to_vec();
    let jpeg_file = TempFile::with(&jpeg);
    let mut image = media_of(&jpeg_file.0, &jpeg, MediaKind::Image, "image/jpeg");
    image.caption = Some("a cat".into());
    let mut with_quote = message("3EB0IMG1", OutgoingContent::Media(image));
    with_quote.reply_to = Some(quote("3EB0QUOTED"));
    with_quote.mentions = vec![to("+5511977770003")];

    let ogg = vec![7u8; 3000];
    let ogg_file = TempFile::with(&ogg);
    let mut voice = media_of(&ogg_file.0, &ogg, MediaKind::Audio, "audio/ogg; codecs=opus");
    voice.voice = true;
    let pdf = b"%PDF-1.4 tiny".to_vec();
    let pdf_file = TempFile::with(&pdf);
    let mut document = media_of(&pdf_file.0, &pdf, MediaKind::Document, "application/pdf");
    document.file_name = Some("invoice.pdf".into());
    let webp = b"RIFF....WEBPVP8 ".to_vec();
    let webp_file = TempFile::with(&webp);
    let sticker = media_of(&webp_file.0, &webp, MediaKind::Sticker, "image/webp");
    let mp4 = vec![0u8; 10_000];
    let mp4_file = TempFile::with(&mp4);
    let video = media_of(&mp4_file.0, &mp4, MediaKind::Video, "video/mp4");

    let location = Location {
        latitude: -23.5614,
        longitude: -46.6559,
        name: Some("Paulista".into()),
        address: None,
    };
    let card = ContactCard::new(CARD, None).unwrap();
    let mut reply = message("3EB0TXT1", OutgoingContent::Text { text: "yes".into() });
    reply.reply_to = Some(quote("3EB0QUOTED"));

    let sends = [
        with_quote,
        message("3EB0VOICE", OutgoingContent::Media(voice)),
        message("3EB0DOC", OutgoingContent::Media(document)),
        message("3EB0STK", OutgoingContent::Media(sticker)),
        message("3EB0VID", OutgoingContent::Media(video)),
        message("3EB0LOC", OutgoingContent::Location(location.clone())),
        message("3EB0VCF", OutgoingContent::Contact(card.clone())),
        message(
            "3EB0REACT",
            OutgoingContent::Reaction { target: quote("3EB0QUOTED"), emoji: "👍".into() },
        ),
        reply,
    ];
    conn.set_chat_state(&to(PEER), ChatState::Recording).await.unwrap();
    for msg in sends.clone() {
        let id = msg.id.clone();
        assert_eq!(conn.send(msg).await.unwrap().id, id);
        // Every kind reaches the recipient's phone.
        delivered(&mut rx, &id).await;
    }
    // A resend is acked again and recorded once, media included.
    conn.send(sends[0].clone()).await.unwrap();

    let items = net.outbox("i1").await.unwrap();
    assert_eq!(items.len(), 1 + sends.len());
    let json = serde_json::to_value(OutboxPage { items: items.clone() }).unwrap();
    let items_json = json["items"].as_array().unwrap();
    let at = |i: usize| items_json[i]["at"].clone();
    let peer = "5511988880002@s.whatsapp.net";
    assert_eq!(items_json[0], json!({"presence": "recording", "to": peer, "at": at(0)}));
    assert_eq!(
        items_json[1],
        json!({"to": peer, "text": "a cat", "id": "3EB0IMG1", "at": at(1),
            "mentions": ["5511977770003@s.whatsapp.net"], "reply_to": "3EB0QUOTED",
            "kind": "image", "mime": "image/jpeg", "size": jpeg.len(), "sha256": sha(&jpeg),
            "file_name": null, "caption": "a cat", "voice": false})
    );
    assert_eq!(
        items_json[2],
        json!({"to": peer, "text": "", "id": "3EB0VOICE", "at": at(2), "mentions": [],
            "kind": "audio", "mime": "audio/ogg; codecs=opus", "size": 3000, "sha256": sha(&ogg),
            "file_name": null, "caption": null, "voice": true})
    );
    assert_eq!(items_json[3]["file_name"], "invoice.pdf");
    assert_eq!(items_json[3]["kind"], "document");
    assert_eq!(items_json[4]["kind"], "sticker");
    assert_eq!(
        (items_json[5]["kind"].as_str(), items_json[5]["size"].as_u64()),
        (Some("video"), Some(10_000))
    );
    assert_eq!(
        items_json[6],
        json!({"to": peer, "text": "", "id": "3EB0LOC", "at": at(6), "mentions": [],
            "location": {"latitude": -23.5614, "longitude": -46.6559, "name": "Paulista"}})
    );
    assert_eq!(
        items_json[7],
        json!({"to": peer, "text": "", "id": "3EB0VCF", "at": at(7), "mentions": [],
            "contact": {"display_name": "Ana Souza", "vcard": CARD}})
    );
    assert_eq!(
        items_json[8],
        json!({"to": peer, "text": "", "id": "3EB0REACT", "at": at(8), "mentions": [],
            "reaction": {"message_id": "3EB0QUOTED", "emoji": "👍"}})
    );
    assert_eq!(
        items_json[9],
        json!({"to": peer, "text": "yes", "id": "3EB0TXT1", "at": at(9), "mentions": [],
            "reply_to": "3EB0QUOTED"})
    );
    // Every entry reads back into the same value.
    let back: OutboxPage = serde_json::from_value(json).unwrap();
    assert_eq!(back.items, items);
    match &items[7] {
        OutboxEntry::Message(m) => assert_eq!(m.contact.as_ref(), Some(&card)),
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_media_send_reads_the_file_and_refuses_what_does_not_match() {
    let (net, driver) = local();
    let (conn, _rx, _store, _) = paired(&driver, "i1", ME).await;
    let bytes = vec![42u8; 100_000];
    let file = TempFile::with(&bytes);
    let good = media_of(&file.0, &bytes, MediaKind::Document, "application/zip");
    let send = |m: OutgoingMedia| conn.send(message("3EB0F", OutgoingContent::Media(m)));

    let shorter = OutgoingMedia { size: 99_999, ..good.clone() };
    let r = send(shorter).await;
    assert!(
        matches!(&r, Err(DriverError::Rejected { message: m, .. }) if m.contains("larger than the declared")),
        "{r:?}"
    );
    let longer = OutgoingMedia { size: 100_001, ..good.clone() };
    let r = send(longer).await;
    assert!(
        matches!(&r, Err(DriverError::Rejected { message: m, .. }) if m.contains("100000 bytes")),
        "{r:?}"
    );
    let wrong_hash = OutgoingMedia { sha256: sha(b"something else"), ..good.clone() };
    let r = send(wrong_hash).await;
    assert!(
        matches!(&r, Err(DriverError::Rejected { message: m, .. }) if m.contains("SHA-256")),
        "{r:?}"
    );
    let missing = OutgoingMedia { path: TempFile::new().0.clone(), ..good.clone() };
    let r = send(missing).await;
    assert!(matches!(&r, Err(DriverError::NotFound(m)) if m.contains("does not exist")), "{r:?}");
    // What the network itself checks: a kind's types, voice notes, sticker size.
    let as_image = OutgoingMedia { media_kind: MediaKind::Image, ..good.clone() };
    assert!(matches!(send(as_image).await, Err(DriverError::Rejected { .. })));
    let voice_doc = OutgoingMedia { voice: true, ..good.clone() };
    assert!(matches!(send(voice_doc).await, Err(DriverError::Rejected { .. })));
    let far = Location { latitude: 91.0, longitude: 0.0, name: None, address: None };
    let r = conn.send(message("3EB0L", OutgoingContent::Location(far))).await;
    assert!(matches!(r, Err(DriverError::Rejected { .. })), "{r:?}");
    let word = OutgoingContent::Reaction { target: quote("3EB0Q"), emoji: "ok".into() };
    assert!(matches!(conn.send(message("3EB0R", word)).await, Err(DriverError::Rejected { .. })));
    assert!(net.outbox("i1").await.unwrap().is_empty(), "nothing refused was recorded");

    // An upper-case hash is the same hash.
    let upper = OutgoingMedia { sha256: good.sha256.to_ascii_uppercase(), ..good };
    send(upper).await.unwrap();
    match &net.outbox("i1").await.unwrap()[0] {
        OutboxEntry::Message(m) => assert_eq!(m.media.as_ref().unwrap().sha256, sha(&bytes)),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// A file bigger than any buffer: read and hashed in pieces.
#[tokio::test]
async fn a_twenty_megabyte_file_is_hashed_in_pieces() {
    let (net, driver) = local();
    let (conn, _rx, _store, _) = paired(&driver, "i1", ME).await;
    let bytes: Vec<u8> = (0..21 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let file = TempFile::with(&bytes);
    let video = media_of(&file.0, &bytes, MediaKind::Video, "video/mp4");
    conn.send(message("3EB0BIG", OutgoingContent::Media(video))).await.unwrap();
    let items = net.outbox("i1").await.unwrap();
    let OutboxEntry::Message(m) = &items[0] else { panic!("{items:?}") };
    assert_eq!(m.media.as_ref().unwrap().size, bytes.len() as u64);
}

#[tokio::test(start_paused = true)]
async fn inbound_media_arrives_with_a_handle_that_downloads_it() {
    let (net, driver) = local();
    let (conn, mut rx, _store, _) = paired(&driver, "i1", ME).await;

    let png = b"\x89PNG\r\n\x1a\n a tiny image".to_vec();
    let mut image = media_spec(MediaKind::Image, "image/png");
    image.data_base64 = Some(b64(&png));
    image.file_name = Some("tiny.png".into());
    let sent = net
        .inbound(
            "i1",
            InboundSpec { media: Some(image), reply_to: Some("3EB0MINE".into()), ..spec("look") },
        )
        .await
        .unwrap();
    assert_eq!(sent.sha256.as_deref(), Some(sha(&png).as_str()));
    let m = inbound_message(&mut rx).await;
    assert_eq!((m.id.as_str(), m.text.as_str()), (sent.message_id.as_str(), "look"));
    assert_eq!(m.reply_to.as_deref(), Some("3EB0MINE"));
    let media = match &m.content {
        InboundContent::Media(media) => media.clone(),
        other => panic!("expected media, got {other:?}"),
    };
    assert_eq!(media.media_kind, MediaKind::Image);
    assert_eq!((media.mime.as_str(), media.size), ("image/png", png.len() as u64));
    assert_eq!(media.file_name.as_deref(), Some("tiny.png"));
    assert!(media.handle["sim_media"].as_str().is_some_and(|t| t.len() == 48), "{}", media.handle);

    let dest = TempFile::new();
    assert_eq!(conn.download_media(&media, &dest.0).await.unwrap(), png.len() as u64);
    assert_eq!(std::fs::read(&dest.0).unwrap(), png);
    // Downloading again overwrites.
    conn.download_media(&media, &dest.0).await.unwrap();
    assert_eq!(std::fs::read(&dest.0).unwrap(), png);

    // A made-up voice note by size, with no caption.
    let mut voice = media_spec(MediaKind::Audio, "audio/ogg");
    voice.voice = true;
    voice.size = Some(300_000);
    let sent = net.inbound("i1", InboundSpec { media: Some(voice), ..spec("") }).await.unwrap();
    let m = inbound_message(&mut rx).await;
    assert_eq!(m.text, "");
    let InboundContent::Media(media) = &m.content else { panic!("{m:?}") };
    assert!(media.voice && media.size == 300_000);
    assert_eq!(conn.download_media(media, &dest.0).await.unwrap(), 300_000);
    let got = std::fs::read(&dest.0).unwrap();
    assert_eq!(Some(sha(&got)), sent.sha256);
    // The same size makes the same bytes.
    let mut again = media_spec(MediaKind::Document, "application/octet-stream");
    again.size = Some(300_000);
    let twin = net.inbound("i1", InboundSpec { media: Some(again), ..spec("") }).await.unwrap();
    assert_eq!(twin.sha256, sent.sha256);
    inbound_message(&mut rx).await;

    let unknown = InboundMedia { handle: json!({"sim_media": "feedbeef"}), ..media.clone() };
    let r = conn.download_media(&unknown, &dest.0).await;
    assert!(matches!(r, Err(DriverError::NotFound(_))), "{r:?}");
    let foreign =
        InboundMedia { handle: json!({"url": "https://mmg.whatsapp.net/x"}), ..media.clone() };
    assert!(matches!(
        conn.download_media(&foreign, &dest.0).await,
        Err(DriverError::Rejected { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn inbound_locations_cards_reactions_and_replies() {
    let (net, driver) = local();
    let (_conn, mut rx, _store, _) = paired(&driver, "i1", ME).await;

    let here =
        Location { latitude: -22.9, longitude: -43.2, name: None, address: Some("Rio".into()) };
    let r =
        net.inbound("i1", InboundSpec { location: Some(here.clone()), ..spec("") }).await.unwrap();
    assert_eq!(r.sha256, None);
    let m = inbound_message(&mut rx).await;
    assert_eq!((m.content, m.text), (InboundContent::Location(here), String::new()));

    let card = InboundContactSpec { vcard: CARD.into(), display_name: None };
    net.inbound("i1", InboundSpec { contact: Some(card), ..spec("") }).await.unwrap();
    let m = inbound_message(&mut rx).await;
    assert_eq!(m.content, InboundContent::Contact(ContactCard::new(CARD, None).unwrap()));

    let reaction = InboundReactionSpec { message_id: "3EB0MINE".into(), emoji: "❤️".into() };
    net.inbound("i1", InboundSpec { reaction: Some(reaction), ..spec("") }).await.unwrap();
    let m = inbound_message(&mut rx).await;
    assert_eq!(
        m.content,
        InboundContent::Reaction { target_id: "3EB0MINE".into(), emoji: "❤️".into() }
    );

    net.inbound("i1", InboundSpec { reply_to: Some("3EB0MINE".into()), ..spec("agreed") })
        .await
        .unwrap();
    let m = inbound_message(&mut rx).await;
    assert_eq!((m.reply_to.as_deref(), m.content), (Some("3EB0MINE"), InboundContent::Text));

    let with_data = |kind, mime: &str, data: &[u8]| InboundMediaSpec {
        data_base64: Some(b64(data)),
        ..media_spec(kind, mime)
    };
    let sized =
        |kind, mime: &str, size| InboundMediaSpec { size: Some(size), ..media_spec(kind, mime) };
    let reaction =
        || Some(InboundReactionSpec { message_id: "3EB0MINE".into(), emoji: "👍".into() });
    let far = Location { latitude: 0.0, longitude: 181.0, name: None, address: None };
    for (why, bad) in [
        ("no text, no content", spec("")),
        (
            "a png is no video",
            InboundSpec { media: Some(sized(MediaKind::Video, "image/png", 10)), ..spec("") },
        ),
        (
            "a png is no sticker",
            InboundSpec { media: Some(sized(MediaKind::Sticker, "image/png", 10)), ..spec("") },
        ),
        (
            "a voice image",
            InboundSpec {
                media: Some(InboundMediaSpec {
                    voice: true,
                    ..sized(MediaKind::Image, "image/png", 10)
                }),
                ..spec("")
            },
        ),
        (
            "data and size",
            InboundSpec {
                media: Some(InboundMediaSpec {
                    size: Some(3),
                    ..with_data(MediaKind::Image, "image/png", b"abc")
                }),
                ..spec("")
            },
        ),
        (
            "neither data nor size",
            InboundSpec { media: Some(media_spec(MediaKind::Image, "image/png")), ..spec("") },
        ),
        (
            "an empty file",
            InboundSpec { media: Some(sized(MediaKind::Document, "text/plain", 0)), ..spec("") },
        ),
        (
            "over 100 MiB",
            InboundSpec {
                media: Some(sized(MediaKind::Document, "text/plain", MAX_INBOUND_MEDIA_BYTES + 1)),
                ..spec("")
            },
        ),
        (
            "a 2 MiB sticker",
            InboundSpec {
                media: Some(sized(MediaKind::Sticker, "image/webp", 2 << 20)),
                ..spec("")
            },
        ),
        (
            "not base64",
            InboundSpec {
                media: Some(InboundMediaSpec {
                    data_base64: Some("%%%".into()),
                    ..media_spec(MediaKind::Image, "image/png")
                }),
                ..spec("")
            },
        ),
        ("off the map", InboundSpec { location: Some(far), ..spec("") }),
        (
            "text on a location",
            InboundSpec {
                location: Some(Location {
                    latitude: 1.0,
                    longitude: 1.0,
                    name: None,
                    address: None,
                }),
                ..spec("hello")
            },
        ),
        (
            "a broken vCard",
            InboundSpec {
                contact: Some(InboundContactSpec { vcard: "hello".into(), display_name: None }),
                ..spec("")
            },
        ),
        (
            "a word as a reaction",
            InboundSpec {
                reaction: Some(InboundReactionSpec {
                    message_id: "3EB0MINE".into(),
                    emoji: "ok".into(),
                }),
                ..spec("")
            },
        ),
        (
            "a reaction that quotes",
            InboundSpec { reaction: reaction(), reply_to: Some("x".into()), ..spec("") },
        ),
        (
            "two kinds",
            InboundSpec {
                reaction: reaction(),
                media: Some(sized(MediaKind::Document, "text/plain", 5)),
                ..spec("")
            },
        ),
        ("an empty quote", InboundSpec { reply_to: Some(" ".into()), ..spec("hi") }),
    ] {
        let r = net.inbound("i1", bad).await;
        assert!(matches!(r, Err(SimError::InvalidRequest(_))), "{why}: {r:?}");
    }
    // The old body shape (text only) still reads.
    let old: InboundSpec =
        serde_json::from_value(json!({"from": PEER, "text": "hi", "mentions": []})).unwrap();
    assert_eq!(old, spec("hi"));
    assert_eq!(serde_json::to_value(&old).unwrap().as_object().unwrap().len(), 6);
}

#[tokio::test(start_paused = true)]
async fn groups_list_the_numbers_groups_with_their_participants() {
    let (net, driver) = local();
    let (conn, _rx, _store, me) = paired(&driver, "i1", ME).await;
    let (other, _orx, _ostore, _) = paired(&driver, "i2", PEER).await;

    let created = net
        .create_group(CreateGroupRequest {
            subject: Some("  Launch team ".into()),
            participants: vec![ME.into(), "+55 11 98888-0002".into(), "+5511977770003".into()],
            admins: vec!["5511999990001@s.whatsapp.net".into()],
        })
        .await
        .unwrap();
    let gid = created.jid.clone();
    assert!(gid.is_group() && gid.user().starts_with("120363") && gid.user().len() == 18, "{gid}");
    assert_eq!(serde_json::to_value(&created).unwrap(), json!({"jid": gid.to_string()}));

    // A group a contact wrote in exists too, under a default subject.
    let touched = Jid::parse("120363000000004321@g.us").unwrap();
    net.inbound("i1", InboundSpec { chat: Some(touched.to_string()), ..spec("hi all") })
        .await
        .unwrap();

    let mine = conn.groups().await.unwrap();
    let mut expected = vec![
        GroupSummary { jid: gid.clone(), subject: "Launch team".into(), size: 3, is_admin: true },
        GroupSummary {
            jid: touched.clone(),
            subject: "Group 4321".into(),
            size: 2,
            is_admin: false,
        },
    ];
    expected.sort_by(|a, b| a.jid.cmp(&b.jid));
    assert_eq!(mine, expected);
    // The contact who wrote in the other group is in it too.
    let theirs = other.groups().await.unwrap();
    assert_eq!(
        theirs.iter().map(|g| &g.jid).collect::<Vec<_>>(),
        expected.iter().map(|g| &g.jid).collect::<Vec<_>>()
    );
    assert!(theirs.iter().all(|g| !g.is_admin));

    let info = conn.group(&gid).await.unwrap();
    assert_eq!(info.summary, expected.iter().find(|g| g.jid == gid).unwrap().clone());
    assert_eq!(info.participants.len(), 3);
    let me_in = info.participants.iter().find(|p| p.jid.as_ref() == Some(&me.jid)).unwrap();
    assert_eq!(
        me_in,
        &GroupParticipant { jid: Some(me.jid.clone()), lid: Some(me.lid.clone()), is_admin: true }
    );
    assert!(info.participants.iter().all(|p| p.lid.as_ref().is_some_and(Jid::is_lid)));
    assert_eq!(info.participants.iter().filter(|p| p.is_admin).count(), 1);

    // Groups the number is not in are not its business.
    let outsider = net
        .create_group(CreateGroupRequest {
            participants: vec!["+5511977770003".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .jid;
    assert!(matches!(conn.group(&outsider).await, Err(DriverError::NotFound(_))));
    let nowhere = Jid::parse("120363999999999999@g.us").unwrap();
    assert!(matches!(conn.group(&nowhere).await, Err(DriverError::NotFound(_))));
    // The network answers the same without the driver in between.
    assert_eq!(
        net.group("i1", &gid).await.map(|g| g.summary.subject),
        Ok("Launch team".to_string())
    );

    for bad in [
        CreateGroupRequest { participants: vec![], ..Default::default() },
        CreateGroupRequest { participants: vec!["nobody".into()], ..Default::default() },
        CreateGroupRequest {
            participants: vec!["123456789012345@lid".into()],
            ..Default::default()
        },
        CreateGroupRequest {
            subject: Some(" ".into()),
            participants: vec![ME.into()],
            ..Default::default()
        },
        CreateGroupRequest {
            participants: vec![ME.into()],
            admins: vec![PEER.into()],
            ..Default::default()
        },
    ] {
        let r = net.create_group(bad.clone()).await;
        assert!(matches!(r, Err(SimError::InvalidRequest(_))), "{bad:?}: {r:?}");
    }
    conn.stop().await;
    assert_eq!(conn.groups().await, Err(DriverError::NotConnected));
    assert_eq!(net.groups("i1").await, Err(SimError::NotConnected));
}

#[tokio::test(start_paused = true)]
async fn contact_checks_answer_by_phone_and_are_counted() {
    let (net, driver) = local();
    let (conn, _rx, _store, _) = paired(&driver, "i1", ME).await;
    net.set_contact(ContactRequest { phone: "+55 11 97777-0003".into(), on_whatsapp: false })
        .await
        .unwrap();
    let phones = [phone(PEER), phone("+5511977770003")];
    let statuses = conn.check_contacts(&phones).await.unwrap();
    let peer_lid = match &statuses[0] {
        ContactStatus { on_whatsapp: true, jid: Some(j), lid: Some(l), .. } if *j == to(PEER) => {
            l.clone()
        }
        other => panic!("expected a WhatsApp user, got {other:?}"),
    };
    assert!(peer_lid.is_lid());
    assert_eq!(
        statuses[1],
        ContactStatus { phone: phones[1].clone(), on_whatsapp: false, jid: None, lid: None }
    );
    // The LID stays the same, and a phone can come back.
    net.set_contact(ContactRequest { phone: "+5511977770003".into(), on_whatsapp: true })
        .await
        .unwrap();
    let again = conn.check_contacts(&phones).await.unwrap();
    assert_eq!(again[0].lid, Some(peer_lid));
    assert!(again[1].on_whatsapp);
    // An empty list asks the network nothing.
    assert_eq!(conn.check_contacts(&[]).await.unwrap(), vec![]);

    assert_eq!(net.check_calls("i1"), 2);
    let json = serde_json::to_value(net.outbox("i1").await.unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[0]["check"], json!([PEER, "+5511977770003"]));
    assert!(json[0]["at"].is_string());
    let bad = net.set_contact(ContactRequest { phone: "x".into(), on_whatsapp: false }).await;
    assert!(matches!(bad, Err(SimError::InvalidRequest(_))));
    assert_eq!(net.check_contacts("i9", &phones).await, Err(SimError::NotConnected));
}

/// Real time and real sockets: everything above through the HTTP service.
#[tokio::test]
async fn rich_messages_groups_and_contacts_through_the_http_service() {
    let net = Arc::new(SimNetwork::new(SimConfig::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, net.clone(), std::future::pending()));
    let driver = SimDriver::remote(&base).unwrap();
    let control = driver.control();

    let store = Arc::new(MemStore::default());
    let (conn, mut rx) = start(&driver, "r1", &store).await;
    assert!(matches!(next_real(&mut rx).await, DriverEvent::Qr { .. }));
    let me = control.scan("r1", ScanRequest { phone: ME.into() }).await.unwrap();
    assert!(matches!(next_real(&mut rx).await, DriverEvent::Paired { .. }));
    assert_eq!(next_real(&mut rx).await, DriverEvent::Connected);

    // Out: a media file (checked here, metadata over the wire), a location, a reply.
    let bytes = vec![9u8; 70_000];
    let file = TempFile::with(&bytes);
    let mut doc = media_of(&file.0, &bytes, MediaKind::Document, "application/pdf");
    doc.caption = Some("the deck".into());
    conn.send(message("3EB0R1", OutgoingContent::Media(doc.clone()))).await.unwrap();
    let here = Location { latitude: 1.5, longitude: 2.5, name: None, address: None };
    conn.send(message("3EB0R2", OutgoingContent::Location(here.clone()))).await.unwrap();
    let mut reply = text("3EB0R3", PEER);
    reply.text = "ok".into();
    let mut reply: OutgoingMessage = reply.into();
    reply.reply_to = Some(quote("3EB0Q"));
    conn.send(reply).await.unwrap();
    let bad = OutgoingMedia { sha256: sha(b"x"), ..doc };
    let r = conn.send(message("3EB0R4", OutgoingContent::Media(bad))).await;
    assert!(matches!(r, Err(DriverError::Rejected { .. })), "{r:?}");
    let far = Location { latitude: 100.0, ..here.clone() };
    let r = conn.send(message("3EB0R5", OutgoingContent::Location(far))).await;
    assert!(matches!(r, Err(DriverError::Rejected { .. })), "refused by the remote network: {r:?}");
    for id in ["3EB0R1", "3EB0R2", "3EB0R3"] {
        assert_eq!(
            next_real(&mut rx).await,
            DriverEvent::Receipt { message_id: id.into(), status: ReceiptStatus::Delivered }
        );
    }
    let http = reqwest::Client::new();
    let page: serde_json::Value = http
        .get(format!("{base}/v1/sim/instances/r1/outbox"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(
        (items[0]["kind"].as_str(), items[0]["text"].as_str()),
        (Some("document"), Some("the deck"))
    );
    assert_eq!(items[0]["sha256"], sha(&bytes));
    assert_eq!(items[1]["location"], json!({"latitude": 1.5, "longitude": 2.5}));
    assert_eq!(items[2]["reply_to"], "3EB0Q");
    assert_eq!(control.outbox("r1").await.unwrap().len(), 3, "the outbox reads back remotely");

    // In: a 20 MiB file by size (the JSON body stays tiny), downloaded through the service.
    let answer: serde_json::Value = http
        .post(format!("{base}/v1/sim/instances/r1/inbound"))
        .json(&json!({"from": PEER, "media": {"kind": "video", "mime": "video/mp4", "size": 20 << 20}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hash = answer["sha256"].as_str().unwrap().to_string();
    let m = match next_real(&mut rx).await {
        DriverEvent::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    };
    assert_eq!(answer["message_id"], m.id.as_str());
    let InboundContent::Media(media) = &m.content else { panic!("{m:?}") };
    let dest = TempFile::new();
    assert_eq!(conn.download_media(media, &dest.0).await.unwrap(), 20 << 20);
    assert_eq!(sha(&std::fs::read(&dest.0).unwrap()), hash);
    let unknown = InboundMedia { handle: json!({"sim_media": "0000"}), ..media.clone() };
    assert!(matches!(conn.download_media(&unknown, &dest.0).await, Err(DriverError::NotFound(_))));
    // Through the control trait, with data and a reaction.
    let mut png = media_spec(MediaKind::Sticker, "image/webp");
    png.data_base64 = Some(b64(b"RIFFxxxxWEBP"));
    let r = control.inbound("r1", InboundSpec { media: Some(png), ..spec("") }).await.unwrap();
    assert_eq!(r.sha256, Some(sha(b"RIFFxxxxWEBP")));
    assert!(matches!(next_real(&mut rx).await, DriverEvent::Message(_)));
    let bad = control
        .inbound(
            "r1",
            InboundSpec {
                reaction: Some(InboundReactionSpec { message_id: "x".into(), emoji: "no".into() }),
                ..spec("")
            },
        )
        .await;
    assert!(matches!(bad, Err(SimError::InvalidRequest(_))), "{bad:?}");

    // Groups: created over raw HTTP, read through the connection.
    let created: serde_json::Value = http
        .post(format!("{base}/v1/sim/groups"))
        .json(&json!({"subject": "Ops", "participants": [ME, PEER], "admins": [PEER]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let gid = Jid::parse(created["jid"].as_str().unwrap()).unwrap();
    let groups = conn.groups().await.unwrap();
    assert_eq!(
        groups,
        vec![GroupSummary { jid: gid.clone(), subject: "Ops".into(), size: 2, is_admin: false }]
    );
    let info = conn.group(&gid).await.unwrap();
    assert!(info.participants.contains(&GroupParticipant {
        jid: Some(me.jid.clone()),
        lid: Some(me.lid.clone()),
        is_admin: false
    }));
    let not_mine = control
        .create_group(CreateGroupRequest { participants: vec![PEER.into()], ..Default::default() })
        .await
        .unwrap();
    assert!(matches!(conn.group(&not_mine.jid).await, Err(DriverError::NotFound(_))));
    let resp = http
        .post(format!("{base}/v1/sim/groups"))
        .json(&json!({"participants": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);

    // Contacts.
    let resp = http
        .post(format!("{base}/v1/sim/contacts"))
        .json(&json!({"phone": "+5511977770003", "on_whatsapp": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let statuses = conn.check_contacts(&[phone(PEER), phone("+5511977770003")]).await.unwrap();
    assert!(statuses[0].on_whatsapp && statuses[0].lid.is_some());
    assert!(!statuses[1].on_whatsapp);
    control
        .set_contact(ContactRequest { phone: "+5511977770003".into(), on_whatsapp: true })
        .await
        .unwrap();
    assert!(conn.check_contacts(&[phone("+5511977770003")]).await.unwrap()[0].on_whatsapp);
    assert_eq!(net.check_calls("r1"), 2);
    conn.stop().await;
}
