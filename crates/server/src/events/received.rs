//! Builds the `data` of `message.received` in the shape docs/api.md fixes, from an inbound message
//! whose addresses the caller has already resolved (LID ↔ phone).

use bzapper_core::Jid;
use bzapper_driver::{InboundContent, InboundMessage};

use crate::events::message::{
    MenuReply, MessageReceived, ReceivedChat, ReceivedContact, ReceivedMedia, ReceivedReaction,
    ReceivedSender, ReplyTo,
};
use crate::model::ids::MessageId;

/// The addresses of an inbound message after LID normalisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The sender's phone-number JID, when known.
    pub sender_phone: Option<Jid>,
    /// The sender's LID, when known.
    pub sender_lid: Option<Jid>,
    /// The chat, by phone JID when it is a direct chat with a known phone.
    pub chat: Jid,
    /// Mentions, by phone JID where the mapping is known, else as given.
    pub mentions: Vec<Jid>,
}

/// `message.received` data: `sender.jid` is the phone JID whenever known, `sender.lid` the
/// LID; `mentions_me` compares JIDs (the number's own phone JID or LID, given or resolved),
/// never text. What the message carries besides text is added by [`rich_fields`] (until
/// then it reads as a text message).
pub fn message_received_data(
    m: &InboundMessage,
    r: &Resolved,
    own: (Option<&str>, Option<&str>),
    menu_reply: Option<MenuReply>,
) -> MessageReceived {
    let sender_jid = r.sender_phone.clone().unwrap_or_else(|| m.sender.clone());
    let is_me = |j: &Jid| {
        let s = j.to_non_device().to_string();
        Some(s.as_str()) == own.0 || Some(s.as_str()) == own.1
    };
    let mentions_me = r.mentions.iter().chain(&m.mentions).any(is_me);
    MessageReceived {
        message_id: m.id.clone(),
        chat: ReceivedChat {
            jid: r.chat.to_string(),
            kind: if r.chat.is_group() { "group" } else { "direct" },
        },
        sender: ReceivedSender {
            jid: sender_jid.to_non_device().to_string(),
            phone: r.sender_phone.as_ref().and_then(Jid::phone).map(|p| p.e164()),
            lid: r.sender_lid.as_ref().map(|l| l.to_non_device().to_string()),
            push_name: m.push_name.clone(),
        },
        text: m.text.clone(),
        mentions: r.mentions.iter().map(|j| j.to_non_device().to_string()).collect(),
        mentions_me,
        at: m.at,
        menu_reply,
        media: None,
        media_url: None,
        caption: None,
        location: None,
        contact: None,
        reaction: None,
        kind: "text",
        reply_to: None,
    }
}

/// Adds to `message.received` data what the message carries besides text: `kind` always;
/// `media` (with `url`, the gateway link `media_url` it is fetched from) and `caption` for a
/// media file; `location`; `contact`; `reaction` on a message; `reply_to` for a quote. A
/// `gateway_message_id` names the quoted or reacted-to message when this number sent it.
pub fn rich_fields(
    data: &mut MessageReceived,
    m: &InboundMessage,
    media_url: &str,
    quoted: Option<String>,
) {
    let quoted = quoted.map(MessageId::from);
    data.kind = match &m.content {
        InboundContent::Text => "text",
        InboundContent::Media(media) => {
            data.media = Some(ReceivedMedia {
                kind: media.media_kind.as_str(),
                mime: media.mime.clone(),
                size: media.size,
                file_name: media.file_name.clone(),
                voice: media.voice,
                url: media_url.to_string(),
            });
            data.media_url = Some(media_url.to_string());
            data.caption = Some(m.text.clone());
            media.media_kind.as_str()
        }
        InboundContent::Location(l) => {
            data.location = Some(l.clone());
            "location"
        }
        InboundContent::Contact(c) => {
            data.contact = Some(ReceivedContact {
                display_name: c.display_name.clone(),
                vcard: c.vcard.clone(),
            });
            "contact"
        }
        InboundContent::Reaction { target_id, emoji } => {
            data.reaction = Some(ReceivedReaction {
                message_id: target_id.clone(),
                emoji: emoji.clone(),
                gateway_message_id: quoted.clone(),
            });
            "reaction"
        }
    };
    if let Some(q) = &m.reply_to {
        let gateway_id = match m.content {
            InboundContent::Reaction { .. } => None,
            _ => quoted,
        };
        data.reply_to = Some(ReplyTo { message_id: q.clone(), gateway_message_id: gateway_id });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// `message.received` data as JSON, as the log stores it.
    fn received(m: &InboundMessage, media_url: &str, quoted: Option<String>) -> Value {
        let r = Resolved {
            sender_phone: None,
            sender_lid: None,
            chat: m.chat.clone(),
            mentions: vec![],
        };
        let mut data = message_received_data(m, &r, (None, None), None);
        rich_fields(&mut data, m, media_url, quoted);
        serde_json::to_value(&data).unwrap()
    }

    fn j(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    fn msg(sender: &str, mentions: &[&str]) -> InboundMessage {
        InboundMessage {
            content: Default::default(),
            reply_to: None,
            id: "3EB0AA".into(),
            chat: j(sender),
            sender: j(sender),
            sender_alt: None,
            push_name: Some("Ana".into()),
            text: "hi @5511".into(),
            mentions: mentions.iter().map(|m| j(m)).collect(),
            at: chrono::Utc::now(),
        }
    }

    #[test]
    fn media_locations_reactions_and_quotes_are_reported_with_their_data() {
        let mut m = msg("5511988887777@s.whatsapp.net", &[]);
        m.text = "the invoice".into();
        m.reply_to = Some("3EB0Q".into());
        m.content = InboundContent::Media(bzapper_driver::InboundMedia {
            media_kind: bzapper_core::MediaKind::Document,
            mime: "application/pdf".into(),
            size: 2048,
            file_name: Some("inv.pdf".into()),
            voice: false,
            handle: serde_json::json!({"k": 1}),
        });
        let data = received(&m, "http://gw/v1/instances/i/media/3EB0AA", Some("msg_1".into()));
        assert_eq!(data["kind"], "document");
        assert_eq!(data["media"]["mime"], "application/pdf");
        assert_eq!(data["media"]["size"], 2048);
        assert_eq!(data["media_url"], "http://gw/v1/instances/i/media/3EB0AA");
        assert_eq!(data["caption"], "the invoice");
        assert_eq!(data["reply_to"]["message_id"], "3EB0Q");
        assert_eq!(data["reply_to"]["gateway_message_id"], "msg_1");
        // The driver's download handle never leaves the gateway.
        assert!(!data.to_string().contains("\"k\""));

        m.reply_to = None;
        m.content = InboundContent::Reaction { target_id: "3EB0R".into(), emoji: "👍".into() };
        let data = received(&m, "x", None);
        assert_eq!(data["kind"], "reaction");
        assert_eq!(data["reaction"]["message_id"], "3EB0R");
        assert_eq!(data["reaction"]["emoji"], "👍");
        assert!(data.get("reply_to").is_none());

        m.content = InboundContent::Location(bzapper_core::Location {
            latitude: -23.5,
            longitude: -46.6,
            name: Some("Office".into()),
            address: None,
        });
        let data = received(&m, "x", None);
        assert_eq!(data["kind"], "location");
        assert_eq!(data["location"]["latitude"], -23.5);
        assert!(data.get("media_url").is_none());
    }

    #[test]
    fn a_lid_sender_is_reported_by_phone_with_the_lid_beside() {
        let m = msg("99887766554433@lid", &[]);
        let r = Resolved {
            sender_phone: Some(j("5511988887777@s.whatsapp.net")),
            sender_lid: Some(j("99887766554433@lid")),
            chat: j("5511988887777@s.whatsapp.net"),
            mentions: vec![],
        };
        let d = serde_json::to_value(message_received_data(&m, &r, (None, None), None)).unwrap();
        assert_eq!(d["sender"]["jid"], "5511988887777@s.whatsapp.net");
        assert_eq!(d["sender"]["phone"], "+5511988887777");
        assert_eq!(d["sender"]["lid"], "99887766554433@lid");
        assert_eq!(d["chat"]["jid"], "5511988887777@s.whatsapp.net");
        assert!(d.get("menu_reply").is_none());
    }

    #[test]
    fn mentions_me_compares_jids_not_text() {
        let own = (Some("5511911112222@s.whatsapp.net"), Some("11112222333344@lid"));
        let r = |mentions: Vec<Jid>| Resolved {
            sender_phone: Some(j("5511988887777@s.whatsapp.net")),
            sender_lid: None,
            chat: j("5511988887777@s.whatsapp.net"),
            mentions,
        };
        let m = msg("5511988887777@s.whatsapp.net", &["11112222333344@lid"]);
        let d = message_received_data(&m, &r(vec![j("5511911112222@s.whatsapp.net")]), own, None);
        let d = serde_json::to_value(d).unwrap();
        assert_eq!(d["mentions_me"], true);
        assert_eq!(d["mentions"], json!(["5511911112222@s.whatsapp.net"]));
        // The text names the number, but no JID of it is mentioned.
        let m = msg("5511988887777@s.whatsapp.net", &["5511900000000@s.whatsapp.net"]);
        let d = message_received_data(&m, &r(vec![j("5511900000000@s.whatsapp.net")]), own, None);
        let d = serde_json::to_value(d).unwrap();
        assert_eq!(d["mentions_me"], false);
    }

    /// The builders as they were, with `json!`: the typed payload must serialise to exactly
    /// what they built (same fields, same `null`s, same absences).
    mod before {
        use bzapper_core::Jid;
        use bzapper_driver::{InboundContent, InboundMessage};
        use serde_json::{json, Value};

        use super::super::Resolved;

        pub(super) fn message_received_data(
            m: &InboundMessage,
            r: &Resolved,
            own: (Option<&str>, Option<&str>),
            menu_reply: Option<Value>,
        ) -> Value {
            let sender_jid = r.sender_phone.clone().unwrap_or_else(|| m.sender.clone());
            let is_me = |j: &Jid| {
                let s = j.to_non_device().to_string();
                Some(s.as_str()) == own.0 || Some(s.as_str()) == own.1
            };
            let mentions_me = r.mentions.iter().chain(&m.mentions).any(is_me);
            let mut data = json!({
                "message_id": m.id,
                "chat": {
                    "jid": r.chat.to_string(),
                    "type": if r.chat.is_group() { "group" } else { "direct" },
                },
                "sender": {
                    "jid": sender_jid.to_non_device().to_string(),
                    "phone": r.sender_phone.as_ref().and_then(Jid::phone).map(|p| p.e164()),
                    "lid": r.sender_lid.as_ref().map(|l| l.to_non_device().to_string()),
                    "push_name": m.push_name,
                },
                "text": m.text,
                "mentions": r.mentions.iter().map(|j| j.to_non_device().to_string()).collect::<Vec<_>>(),
                "mentions_me": mentions_me,
                "at": m.at,
            });
            if let Some(reply) = menu_reply {
                data["menu_reply"] = reply;
            }
            data
        }

        /// Adds to `message.received` data what the message carries besides text: `kind` always;
        /// `media` (with `url`, the gateway link `media_url` it is fetched from) and `caption` for a
        /// media file; `location`; `contact`; `reaction` on a message; `reply_to` for a quote. A
        /// `gateway_message_id` names the quoted or reacted-to message when this number sent it.
        pub(super) fn rich_fields(
            data: &mut Value,
            m: &InboundMessage,
            media_url: &str,
            quoted: Option<String>,
        ) {
            let kind = match &m.content {
                InboundContent::Text => "text",
                InboundContent::Media(media) => {
                    data["media"] = json!({
                        "kind": media.media_kind.as_str(),
                        "mime": media.mime,
                        "size": media.size,
                        "file_name": media.file_name,
                        "voice": media.voice,
                        "url": media_url,
                    });
                    data["media_url"] = json!(media_url);
                    data["caption"] = json!(m.text);
                    media.media_kind.as_str()
                }
                InboundContent::Location(l) => {
                    data["location"] = json!(l);
                    "location"
                }
                InboundContent::Contact(c) => {
                    data["contact"] = json!({"display_name": c.display_name, "vcard": c.vcard});
                    "contact"
                }
                InboundContent::Reaction { target_id, emoji } => {
                    data["reaction"] = json!({
                        "message_id": target_id,
                        "emoji": emoji,
                        "gateway_message_id": quoted.clone(),
                    });
                    "reaction"
                }
            };
            data["kind"] = json!(kind);
            if let Some(q) = &m.reply_to {
                let gateway_id = match m.content {
                    InboundContent::Reaction { .. } => None,
                    _ => quoted,
                };
                data["reply_to"] = json!({"message_id": q, "gateway_message_id": gateway_id});
            }
        }
    }

    #[test]
    fn the_typed_payload_is_the_json_built_before() {
        let own = (Some("5511911112222@s.whatsapp.net"), Some("11112222333344@lid"));
        let resolved = |m: &InboundMessage, phone: Option<&str>, lid: Option<&str>| Resolved {
            sender_phone: phone.map(j),
            sender_lid: lid.map(j),
            chat: m.chat.clone(),
            mentions: m.mentions.clone(),
        };
        let media = |kind, voice| {
            InboundContent::Media(bzapper_driver::InboundMedia {
                media_kind: kind,
                mime: "audio/ogg".into(),
                size: 77,
                file_name: None,
                voice,
                handle: json!({"k": 1}),
            })
        };
        let mut cases = Vec::new();
        let plain = msg("5511988887777@s.whatsapp.net", &["11112222333344@lid"]);
        cases.push((plain.clone(), resolved(&plain, None, None), None, None));
        let mut lid = msg("99887766554433@lid", &[]);
        lid.push_name = None;
        lid.reply_to = Some("3EB0Q".into());
        let r = resolved(&lid, Some("5511988887777@s.whatsapp.net"), Some("99887766554433@lid"));
        cases.push((lid.clone(), r.clone(), Some("msg_q".to_string()), None));
        cases.push((lid.clone(), r, None, None));
        let mut group = msg("5511988887777@s.whatsapp.net", &[]);
        group.chat = j("120363000000000000@g.us");
        group.content = media(bzapper_core::MediaKind::Audio, true);
        group.reply_to = Some("3EB0Q".into());
        cases.push((group.clone(), resolved(&group, None, None), Some("msg_q".into()), None));
        let mut doc = plain.clone();
        doc.content = InboundContent::Media(bzapper_driver::InboundMedia {
            media_kind: bzapper_core::MediaKind::Document,
            mime: "application/pdf".into(),
            size: 2048,
            file_name: Some("inv.pdf".into()),
            voice: false,
            handle: json!("h"),
        });
        cases.push((doc.clone(), resolved(&doc, None, None), None, None));
        for (name, address) in [(Some("Office"), None), (None, Some("Av. Paulista"))] {
            let mut at = plain.clone();
            at.content = InboundContent::Location(bzapper_core::Location {
                latitude: -23.5,
                longitude: -46.6,
                name: name.map(Into::into),
                address: address.map(Into::into),
            });
            cases.push((at.clone(), resolved(&at, None, None), None, None));
        }
        let mut card = plain.clone();
        card.content = InboundContent::Contact(bzapper_core::ContactCard {
            display_name: "Bia".into(),
            vcard: "BEGIN:VCARD\nEND:VCARD".into(),
        });
        cases.push((card.clone(), resolved(&card, None, None), None, None));
        let mut reaction = plain.clone();
        reaction.content =
            InboundContent::Reaction { target_id: "3EB0R".into(), emoji: "👍".into() };
        reaction.reply_to = Some("3EB0R".into());
        cases.push((reaction.clone(), resolved(&reaction, None, None), Some("msg_r".into()), None));
        cases.push((reaction.clone(), resolved(&reaction, None, None), None, None));
        let mut menu = plain.clone();
        menu.text = "2".into();
        let reply = (MessageId::new("msg_menu"), 2usize, "opt-b".to_string());
        cases.push((menu.clone(), resolved(&menu, None, None), None, Some(reply)));

        for (m, r, quoted, menu) in cases {
            let url = format!("http://gw/v1/instances/i/media/{}", m.id);
            let typed_menu = menu.clone().map(|(message_id, option, option_id)| MenuReply {
                message_id,
                option,
                option_id,
            });
            let mut typed = message_received_data(&m, &r, own, typed_menu);
            rich_fields(&mut typed, &m, &url, quoted.clone());
            // As `inbound::menu_reply` built it.
            let old_menu =
                menu.map(|(id, n, o)| json!({"message_id": id, "option": n, "option_id": o}));
            let mut expected = before::message_received_data(&m, &r, own, old_menu);
            before::rich_fields(&mut expected, &m, &url, quoted);
            assert_eq!(serde_json::to_value(&typed).unwrap(), expected, "{m:?}");
        }
    }
}
