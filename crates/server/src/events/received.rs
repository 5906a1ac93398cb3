//! Builds the `data` of `message.received` in the shape API.md fixes, from an inbound message
//! whose addresses the caller has already resolved (LID ↔ phone).

use bzapper_core::Jid;
use bzapper_driver::{InboundContent, InboundMessage};
use serde_json::{json, Value};

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
/// never text.
pub fn message_received_data(
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
pub fn rich_fields(data: &mut Value, m: &InboundMessage, media_url: &str, quoted: Option<String>) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut data = json!({});
        rich_fields(&mut data, &m, "http://gw/v1/instances/i/media/3EB0AA", Some("msg_1".into()));
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
        let mut data = json!({});
        rich_fields(&mut data, &m, "x", None);
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
        let mut data = json!({});
        rich_fields(&mut data, &m, "x", None);
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
        let d = message_received_data(&m, &r, (None, None), None);
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
        assert_eq!(d["mentions_me"], true);
        assert_eq!(d["mentions"], json!(["5511911112222@s.whatsapp.net"]));
        // The text names the number, but no JID of it is mentioned.
        let m = msg("5511988887777@s.whatsapp.net", &["5511900000000@s.whatsapp.net"]);
        let d = message_received_data(&m, &r(vec![j("5511900000000@s.whatsapp.net")]), own, None);
        assert_eq!(d["mentions_me"], false);
    }
}
