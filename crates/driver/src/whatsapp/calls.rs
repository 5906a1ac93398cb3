//! Calls on the real network: a call offer as the library reports it (`Event::IncomingCall`
//! with a `CallAction::Offer`) becomes our [`IncomingCall`]. Pure, so the mapping is unit
//! tested. Only offers that ring now are reported: the library turns an offer replayed from
//! the offline queue into `Event::MissedCall` (the call is long over), which is ignored, as
//! are the other call actions (accept, terminate, relay signalling, group notices).

use chrono::{DateTime, Utc};
use whatsapp_rust::wacore::types::call::{CallAction, IncomingCall as WaIncomingCall};

use super::events::convert_jid;
use crate::IncomingCall;

/// Our call for the library's offer; `None` for any other call action, or an offer with a
/// caller we cannot read.
pub(crate) fn incoming_call(c: &WaIncomingCall) -> Option<IncomingCall> {
    let CallAction::Offer { call_id, call_creator, caller_pn, is_video, group_jid, .. } = &c.action
    else {
        return None;
    };
    let from = convert_jid(&c.from.to_string())?;
    let creator = convert_jid(&call_creator.to_string()).unwrap_or_else(|| from.clone());
    // A caller addressed by LID may come with their phone number (`caller_pn`).
    let from_alt = caller_pn
        .as_ref()
        .and_then(|p| convert_jid(&p.to_string()))
        .map(|p| p.to_non_device())
        .filter(|p| from.is_lid() && !p.is_lid());
    let group = group_jid.as_ref().and_then(|g| convert_jid(&g.to_string()));
    Some(IncomingCall {
        id: call_id.clone(),
        is_group: group.is_some() || c.group.is_some(),
        from,
        creator,
        from_alt,
        video: *is_video,
        group,
        at: at_or_now(c.timestamp),
    })
}

/// The offer's time; a zero timestamp (a stanza without one) reads as now.
fn at_or_now(t: DateTime<Utc>) -> DateTime<Utc> {
    if t.timestamp() <= 0 {
        Utc::now()
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use whatsapp_rust::wacore::stanza::call::parse_call_stanza;
    use whatsapp_rust::{Jid as WaJid, NodeBuilder};

    use super::*;

    /// A `<call>` stanza as the server sends it, read by the library's own parser.
    fn offer(from: &str, extra: &[(&'static str, &str)], video: bool) -> WaIncomingCall {
        let mut o = NodeBuilder::new("offer")
            .attr("call-id", "5A1C0FFEE")
            .attr("call-creator", from.parse::<WaJid>().unwrap());
        for (k, v) in extra {
            o = match *k {
                "caller_pn" | "group-jid" => o.attr(k, v.parse::<WaJid>().unwrap()),
                _ => o.attr(k, v.to_string()),
            };
        }
        let mut children =
            vec![NodeBuilder::new("audio").attr("enc", "opus").attr("rate", "16000").build()];
        if video {
            children.push(NodeBuilder::new("video").attr("enc", "vp8").build());
        }
        let call = NodeBuilder::new("call")
            .attr("from", from.parse::<WaJid>().unwrap())
            .attr("id", "STANZA1")
            .attr("t", "1764158400")
            .children(vec![o.children(children).build()])
            .build();
        parse_call_stanza(&call.as_node_ref()).unwrap().unwrap()
    }

    #[test]
    fn a_voice_offer_from_a_phone_rings_with_its_caller() {
        let c = incoming_call(&offer("5511988880002:0@s.whatsapp.net", &[], false)).unwrap();
        assert_eq!(c.id, "5A1C0FFEE");
        assert_eq!(c.from.to_non_device().to_string(), "5511988880002@s.whatsapp.net");
        assert_eq!(c.creator.to_non_device(), c.from.to_non_device());
        assert_eq!((c.video, c.is_group, c.from_alt, c.group), (false, false, None, None));
        assert_eq!(c.at.timestamp(), 1_764_158_400);
    }

    #[test]
    fn a_video_group_offer_by_lid_carries_the_phone_and_the_group() {
        let extra = [
            ("caller_pn", "5511988880003@s.whatsapp.net"),
            ("group-jid", "120363000000000001@g.us"),
        ];
        let c = incoming_call(&offer("123456789012345:2@lid", &extra, true)).unwrap();
        assert!(c.from.is_lid() && c.video && c.is_group, "{c:?}");
        assert_eq!(c.from_alt.unwrap().to_string(), "5511988880003@s.whatsapp.net");
        assert_eq!(c.group.unwrap().to_string(), "120363000000000001@g.us");
    }

    #[test]
    fn other_call_actions_are_not_calls() {
        let terminate = NodeBuilder::new("call")
            .attr("from", "5511988880002@s.whatsapp.net".parse::<WaJid>().unwrap())
            .attr("id", "STANZA2")
            .attr("t", "1764158400")
            .children(vec![NodeBuilder::new("terminate")
                .attr("call-id", "5A1C0FFEE")
                .attr("call-creator", "5511988880002@s.whatsapp.net".parse::<WaJid>().unwrap())
                .build()])
            .build();
        let parsed = parse_call_stanza(&terminate.as_node_ref()).unwrap().unwrap();
        assert_eq!(incoming_call(&parsed), None);
    }
}
