//! Builds the `data` of the events the gateway records, in the shapes API.md fixes.

use bzapper_driver::InboundMessage;
use serde_json::{json, Value};

/// `message.received` data. The sender is reported by phone JID whenever the network gave
/// one (as the sender or its alternate address), with the LID beside it; mentions compare
/// JIDs with the number's own phone JID and LID, never text.
pub fn message_received_data(
    m: &InboundMessage,
    own_jid: Option<&str>,
    own_lid: Option<&str>,
) -> Value {
    let (phone_jid, lid) = if m.sender.is_lid() {
        (m.sender_alt.clone().filter(|a| !a.is_lid()), Some(m.sender.clone()))
    } else {
        (Some(m.sender.clone()), m.sender_alt.clone().filter(|a| a.is_lid()))
    };
    let sender_jid = phone_jid.clone().unwrap_or_else(|| m.sender.clone());
    let mentions: Vec<String> = m.mentions.iter().map(|j| j.to_non_device().to_string()).collect();
    let mentions_me =
        mentions.iter().any(|j| Some(j.as_str()) == own_jid || Some(j.as_str()) == own_lid);
    json!({
        "message_id": m.id,
        "chat": {
            "jid": m.chat.to_string(),
            "type": if m.chat.is_group() { "group" } else { "direct" },
        },
        "sender": {
            "jid": sender_jid.to_non_device().to_string(),
            "phone": phone_jid.and_then(|j| j.phone()).map(|p| p.e164()),
            "lid": lid.map(|l| l.to_non_device().to_string()),
            "push_name": m.push_name,
        },
        "text": m.text,
        "mentions": mentions,
        "mentions_me": mentions_me,
        "at": m.at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bzapper_core::Jid;

    fn msg(sender: &str, alt: Option<&str>, mentions: &[&str]) -> InboundMessage {
        InboundMessage {
            id: "3EB0AA".into(),
            chat: Jid::parse(sender).unwrap(),
            sender: Jid::parse(sender).unwrap(),
            sender_alt: alt.map(|a| Jid::parse(a).unwrap()),
            push_name: Some("Ana".into()),
            text: "hi @5511".into(),
            mentions: mentions.iter().map(|m| Jid::parse(m).unwrap()).collect(),
            at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_lid_sender_is_reported_by_phone_with_the_lid_beside() {
        let d = message_received_data(
            &msg("99887766554433@lid", Some("5511988887777@s.whatsapp.net"), &[]),
            None,
            None,
        );
        assert_eq!(d["sender"]["jid"], "5511988887777@s.whatsapp.net");
        assert_eq!(d["sender"]["phone"], "+5511988887777");
        assert_eq!(d["sender"]["lid"], "99887766554433@lid");
    }

    #[test]
    fn mentions_me_compares_jids_not_text() {
        let own = Some("5511911112222@s.whatsapp.net");
        let own_lid = Some("11112222333344@lid");
        let m = msg("5511988887777@s.whatsapp.net", None, &["11112222333344@lid"]);
        assert_eq!(message_received_data(&m, own, own_lid)["mentions_me"], true);
        // The text names the number, but no JID of it is mentioned.
        let m = msg("5511988887777@s.whatsapp.net", None, &["5511900000000@s.whatsapp.net"]);
        assert_eq!(message_received_data(&m, own, own_lid)["mentions_me"], false);
    }
}
