//! Every kind of event, once: [`Event`] (one variant per type string, holding its typed
//! payload) and [`EVENT_TYPES`] come from the same list, so a kind cannot be recorded under a
//! name the filters do not know, nor its payload drift from the documented schema.

use serde::Serialize;
use utoipa::ToSchema;

use crate::events::call::CallReceived;
use crate::events::campaign::CampaignSnapshot;
use crate::events::instance::{
    InstanceConnected, InstanceHealth, InstanceQr, InstanceStateChanged,
};
use crate::events::message::{MessageReceived, MessageStatusChanged};

/// Declares [`Event`] and [`EVENT_TYPES`] from one list of `Variant(Payload) = "type"`. The
/// type is taken as a token tree, not a `literal` fragment: utoipa does not see through the
/// group a fragment is wrapped in, and would document the variant's name instead.
macro_rules! event_kinds {
    ($($(#[$doc:meta])* $variant:ident($payload:ty) = $kind:tt,)*) => {
        /// An event to record, as its type and payload. Serialised (and documented in the
        /// OpenAPI document) as `{"type", "data"}`, the two fields the envelope carries.
        #[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
        #[serde(tag = "type", content = "data")]
        pub enum Event {
            $($(#[$doc])* #[serde(rename = $kind)] $variant($payload),)*
        }

        /// Event types a filter may name (a `prefix.*` pattern must match one of these
        /// prefixes).
        pub const EVENT_TYPES: &[&str] = &[$($kind),*];

        /// An event's type without its payload, for the code that reads logged events back
        /// (the log keeps the type as text): matched as a type, never as a string.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $($variant,)*
        }

        impl EventType {
            /// The type as the log and the API write it, e.g. `instance.qr`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $kind,)*
                }
            }

            /// The type of a logged event; `None` for a type this gateway does not write.
            pub fn parse(kind: &str) -> Option<Self> {
                match kind {
                    $($kind => Some(EventType::$variant),)*
                    _ => None,
                }
            }
        }

        impl Event {
            /// The event's type, e.g. `instance.qr`.
            pub fn kind(&self) -> &'static str {
                self.event_type().as_str()
            }

            /// The event's type without its payload.
            pub fn event_type(&self) -> EventType {
                match self {
                    $(Event::$variant(_) => EventType::$variant,)*
                }
            }

            /// The event's `data`, as the log stores it.
            pub fn data(&self) -> serde_json::Value {
                let data = match self {
                    $(Event::$variant(p) => serde_json::to_value(p),)*
                };
                // Plain structs with string keys: serialising them cannot fail.
                data.expect("an event payload serialises to JSON")
            }
        }
    };
}

/// Which `campaign.*` event to record: its variant, e.g. `Event::CampaignPaused`.
pub type CampaignKind = fn(CampaignSnapshot) -> Event;

// Each variant's doc comment is its description in the OpenAPI document (the `Event` schema).
event_kinds! {
    /// A QR code to scan (a new one replaces the last while the number is `qr_pending`).
    InstanceQr(InstanceQr) = "instance.qr",
    /// The number is connecting: at start, after a scan, or reconnecting after a drop
    /// (`reason: transient`).
    InstanceConnecting(InstanceStateChanged) = "instance.connecting",
    /// The number is connected and can send, with its phone and JIDs.
    InstanceConnected(InstanceConnected) = "instance.connected",
    /// The number is disconnected: `reason` says why (`logged_out`, `banned`, `stopped`,
    /// `qr_timeout`) and `detail` the cause in words.
    InstanceDisconnected(InstanceStateChanged) = "instance.disconnected",
    /// The number went out of (or back into) rotation.
    InstanceHealth(InstanceHealth) = "instance.health",
    /// A contact wrote to the number: a text, media, location, contact card or reaction.
    // Boxed: by far the largest payload, it would size every event.
    MessageReceived(Box<MessageReceived>) = "message.received",
    /// An outbound message changed status (`sending`, `sent`, `delivered`, `read`, `failed`,
    /// `expired`, or `queued` when handed back to the queue).
    MessageStatus(MessageStatusChanged) = "message.status",
    /// A campaign was accepted.
    CampaignCreated(CampaignSnapshot) = "campaign.created",
    /// A campaign's totals or status changed (at most every 2 s per campaign, while running or
    /// paused).
    CampaignProgress(CampaignSnapshot) = "campaign.progress",
    /// A campaign was paused.
    CampaignPaused(CampaignSnapshot) = "campaign.paused",
    /// A paused campaign was resumed.
    CampaignResumed(CampaignSnapshot) = "campaign.resumed",
    /// A campaign was canceled.
    CampaignCanceled(CampaignSnapshot) = "campaign.canceled",
    /// Every message of a campaign was sent or failed.
    CampaignFinished(CampaignSnapshot) = "campaign.finished",
    /// A contact called one of the numbers (rejected or not).
    CallReceived(CallReceived) = "call.received",
}

#[cfg(test)]
mod type_tests {
    use super::*;

    #[test]
    fn every_type_parses_back_from_its_text_and_nothing_else_does() {
        for kind in EVENT_TYPES {
            let t = EventType::parse(kind).expect("a listed type parses");
            assert_eq!(t.as_str(), *kind);
        }
        assert_eq!(EventType::parse("instance.*"), None);
        assert_eq!(EventType::parse("message.receive"), None);
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::events::call::CallFrom;
    use crate::events::campaign::Totals;
    use crate::events::instance::ConnectedIdentity;
    use crate::model::ids::{CampaignId, InstanceId, MessageId};

    /// Each case: the typed event, and the `json!` its call site built before (copied from
    /// it), which the typed payload must equal exactly (`null`s and absent fields alike).
    fn cases() -> Vec<(Event, serde_json::Value)> {
        let at = Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap();
        let mut cases = Vec::new();

        // supervisor.rs, `instance.qr`.
        let qr = InstanceQr { code: "2@abc".into(), expires_at: at };
        cases.push((
            Event::InstanceQr(qr.clone()),
            json!({
                "code": qr.code, "expires_at": qr.expires_at,
            }),
        ));

        // supervisor.rs, `state_data` (connecting, disconnected).
        for (status, reason, detail) in [
            ("connecting", None, None),
            ("disconnected", Some("banned"), Some("code 101".to_string())),
            ("disconnected", Some("stopped"), None),
        ] {
            let typed = InstanceStateChanged { status, reason, detail: detail.clone() };
            let old = json!({
                "status": status,
                "reason": reason,
                "detail": detail,
            });
            let event = match status {
                "connecting" => Event::InstanceConnecting(typed),
                _ => Event::InstanceDisconnected(typed),
            };
            cases.push((event, old));
        }

        // supervisor.rs, `instance.connected`: the state, then the record's identity if read.
        let identities = [
            Some(ConnectedIdentity {
                phone: Some("+5511988887777".into()),
                jid: Some("5511988887777@s.whatsapp.net".into()),
                lid: None,
            }),
            Some(ConnectedIdentity { phone: None, jid: None, lid: None }),
            None,
        ];
        for identity in identities {
            let mut d = json!({
                "status": "connected",
                "reason": Option::<&str>::None,
                "detail": Option::<String>::None,
            });
            if let Some(r) = &identity {
                d["phone"] = json!(r.phone);
                d["jid"] = json!(r.jid);
                d["lid"] = json!(r.lid);
            }
            let typed =
                InstanceConnected { status: "connected", reason: None, detail: None, identity };
            cases.push((Event::InstanceConnected(typed), d));
        }

        // scheduler/mod.rs, `record_health`.
        let (score, in_rotation, threshold) = (25u8, false, 40u8);
        cases.push((
            Event::InstanceHealth(InstanceHealth { score, in_rotation, threshold }),
            json!({"score": score, "in_rotation": in_rotation, "threshold": threshold}),
        ));

        // scheduler/mod.rs, `set_status`.
        for (instance_id, error) in
            [(Some("ins_1".to_string()), None), (None, Some("WhatsApp refused: no".to_string()))]
        {
            let id = "msg_1".to_string();
            let status = "failed";
            let mut data = json!({"message_id": id, "status": status, "instance_id": instance_id});
            if let Some(e) = error.clone() {
                data["error"] = json!(e);
            }
            let typed = MessageStatusChanged {
                message_id: MessageId::new(id),
                status,
                instance_id: instance_id.map(InstanceId::from),
                error,
            };
            cases.push((Event::MessageStatus(typed), data));
        }

        // campaigns/service.rs, `withdraw_canceled`.
        let id = "msg_2".to_string();
        cases.push((
            Event::MessageStatus(MessageStatusChanged {
                message_id: MessageId::new(id.as_str()),
                status: "failed",
                instance_id: None,
                error: Some("campaign canceled".into()),
            }),
            json!({
                "message_id": id,
                "status": "failed",
                "instance_id": null,
                "error": "campaign canceled",
            }),
        ));

        // campaigns/service.rs, `record_totals`.
        let totals = Totals { recipients: 3, pending: 1, sent: 1, failed: 1, ..Totals::default() };
        let kinds: [CampaignKind; 6] = [
            Event::CampaignCreated,
            Event::CampaignProgress,
            Event::CampaignPaused,
            Event::CampaignResumed,
            Event::CampaignCanceled,
            Event::CampaignFinished,
        ];
        for kind in kinds {
            let (id, name, status) = ("cmp_1".to_string(), "Promo".to_string(), "scheduled");
            let typed = CampaignSnapshot {
                campaign_id: CampaignId::new(id.as_str()),
                name: name.clone(),
                status,
                totals: totals.clone(),
            };
            let old = json!({
                "campaign_id": id,
                "name": name,
                "status": status,
                "totals": totals,
            });
            cases.push((kind(typed), old));
        }

        // runtime/calls.rs: a rejected call with its reply, and one that rang.
        let from = CallFrom {
            jid: "5511988887777@s.whatsapp.net".into(),
            phone: Some("+5511988887777".into()),
            lid: Some("123456789012345@lid".into()),
        };
        cases.push((
            Event::CallReceived(CallReceived {
                call_id: "C0FFEE".into(),
                from: from.clone(),
                video: false,
                group: false,
                group_jid: None,
                rejected: true,
                reply_message_id: Some(MessageId::new("msg_1")),
                at,
            }),
            json!({
                "call_id": "C0FFEE",
                "from": {
                    "jid": "5511988887777@s.whatsapp.net",
                    "phone": "+5511988887777",
                    "lid": "123456789012345@lid",
                },
                "video": false, "group": false, "group_jid": null,
                "rejected": true, "reply_message_id": "msg_1", "at": at,
            }),
        ));
        cases.push((
            Event::CallReceived(CallReceived {
                call_id: "C0FFEF".into(),
                from: CallFrom { jid: "123456789012345@lid".into(), phone: None, ..from },
                video: true,
                group: true,
                group_jid: Some("120363000000000001@g.us".into()),
                rejected: false,
                reply_message_id: None,
                at,
            }),
            json!({
                "call_id": "C0FFEF",
                "from": {"jid": "123456789012345@lid", "phone": null, "lid": "123456789012345@lid"},
                "video": true, "group": true, "group_jid": "120363000000000001@g.us",
                "rejected": false, "reply_message_id": null, "at": at,
            }),
        ));
        cases
    }

    #[test]
    fn every_payload_is_the_json_its_call_site_built_before() {
        for (event, expected) in cases() {
            assert_eq!(event.data(), expected, "{}", event.kind());
        }
        // `message.received` is compared in `events::received`.
    }

    #[test]
    fn the_type_is_the_one_the_filters_know_and_the_schema_shows() {
        // The list as it was written out before.
        assert_eq!(
            EVENT_TYPES,
            [
                "instance.qr",
                "instance.connecting",
                "instance.connected",
                "instance.disconnected",
                "instance.health",
                "message.received",
                "message.status",
                "campaign.created",
                "campaign.progress",
                "campaign.paused",
                "campaign.resumed",
                "campaign.canceled",
                "campaign.finished",
                "call.received",
            ]
        );
        for (event, _) in cases() {
            let tagged = serde_json::to_value(&event).unwrap();
            assert_eq!(tagged["type"], event.kind());
            assert_eq!(tagged["data"], event.data());
            assert!(EVENT_TYPES.contains(&event.kind()));
        }
    }
}
