//! Calls over the wire: the `<call><offer/></call>` stanza a fake contact rings a device with,
//! and the device's `<call><reject/></call>` read back into the outbox.
//!
//! The offer carries what whatsapp-rust's parser needs (`wacore::stanza::call`): the outer
//! `from`, `id` and `t`; the action's `call-id` and `call-creator`, `caller_pn` beside a LID
//! caller, `group-jid` for a group call; one `<audio enc rate/>` codec, and a `<video/>`
//! child for a video call. The client answers with `<receipt><offer/></receipt>` (acked like
//! any receipt) and reports `IncomingCall`; declining sends `<call to=CALLER><reject call-id
//! call-creator count="0"/></call>`, which the real server answers with nothing.

use chrono::Utc;
use rand::Rng;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, NodeValue};

use crate::net::OutboxItem;

/// A call ringing on a device, as [`offer`] builds it.
#[derive(Debug, Clone)]
pub struct Offer {
    /// The calling contact as the device sees it (phone JID, or LID with `caller_pn`).
    pub from: Jid,
    /// The caller's phone JID when `from` is a LID.
    pub caller_pn: Option<Jid>,
    pub video: bool,
    pub group: Option<Jid>,
}

/// `<call from id t><offer call-id call-creator [caller_pn] [group-jid]><audio/>[<video/>]
/// </offer></call>`, and the call's id.
pub fn offer(o: &Offer) -> (String, Node) {
    let call_id = hex_id(16);
    let mut action = NodeBuilder::new("offer")
        .attr("call-id", call_id.clone())
        .attr("call-creator", o.from.clone());
    if let Some(pn) = &o.caller_pn {
        action = action.attr("caller_pn", pn.clone());
    }
    if let Some(g) = &o.group {
        action = action.attr("group-jid", g.clone());
    }
    let mut media =
        vec![NodeBuilder::new("audio").attr("enc", "opus").attr("rate", "16000").build()];
    if o.video {
        media.push(NodeBuilder::new("video").attr("enc", "vp8").build());
    }
    let node = NodeBuilder::new("call")
        .attr("from", o.from.clone())
        .attr("id", hex_id(8))
        .attr("t", crate::pairing::now_secs().to_string())
        .children(vec![action.children(media).build()])
        .build();
    (call_id, node)
}

/// The outbox item of a `<call>` a device sent: `rejected_call` for a `<reject>`; `None` for
/// any other call action (the fake has no audio, so only rejections matter).
pub(crate) fn rejection(call: &Node) -> Option<OutboxItem> {
    let reject = call.get_optional_child("reject")?;
    let rejected_call = reject.attrs.get("call-id").map(|v| v.as_str().into_owned())?;
    let to = call
        .attrs
        .get("to")
        .and_then(NodeValue::to_jid)
        .map(|j| j.to_non_ad().to_string())
        .unwrap_or_default();
    Some(OutboxItem::CallRejected { rejected_call, to, at: Utc::now() })
}

/// `bytes` random bytes as upper-case hex, like WhatsApp's call and stanza ids.
fn hex_id(bytes: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..bytes).map(|_| format!("{:02X}", rng.gen::<u8>())).collect()
}

#[cfg(test)]
mod tests {
    use wacore::stanza::call::parse_call_stanza;
    use wacore::types::call::CallAction;

    use super::*;

    #[test]
    fn the_client_library_reads_the_offer_as_a_ringing_call() {
        let lid: Jid = "123456789012345@lid".parse().unwrap();
        let pn: Jid = "5511988880002@s.whatsapp.net".parse().unwrap();
        let group: Jid = "120363000000000001@g.us".parse().unwrap();
        let o = Offer {
            from: lid.clone(),
            caller_pn: Some(pn.clone()),
            video: true,
            group: Some(group.clone()),
        };
        let (call_id, node) = offer(&o);
        let call = parse_call_stanza(&node.as_node_ref()).unwrap().unwrap();
        assert_eq!(call.from, lid);
        assert!(!call.offline);
        match call.action {
            CallAction::Offer {
                call_id: id, call_creator, caller_pn, is_video, group_jid, ..
            } => {
                assert_eq!((id, call_creator, caller_pn), (call_id, lid, Some(pn)));
                assert!(is_video);
                assert_eq!(group_jid, Some(group));
            }
            other => panic!("not an offer: {other:?}"),
        }
    }

    #[test]
    fn a_reject_is_recorded_and_other_call_actions_are_not() {
        let to: Jid = "5511988880002:3@s.whatsapp.net".parse().unwrap();
        let creator: Jid = "5511988880002@s.whatsapp.net".parse().unwrap();
        let reject = wacore::stanza::call::build_reject("C0FFEE", &to, &creator, "R1");
        match rejection(&reject) {
            Some(OutboxItem::CallRejected { rejected_call, to, .. }) => {
                assert_eq!(
                    (rejected_call.as_str(), to.as_str()),
                    ("C0FFEE", "5511988880002@s.whatsapp.net")
                );
            }
            other => panic!("{other:?}"),
        }
        let (_, an_offer) =
            offer(&Offer { from: creator, caller_pn: None, video: false, group: None });
        assert!(rejection(&an_offer).is_none());
    }
}
