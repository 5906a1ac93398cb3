//! Groups and contact checks on the fake network: what `client.groups()` and
//! `client.contacts().is_on_whatsapp` ask, answered from state the control API sets.
//!
//! - **Groups** ([`Directory::create_group`]): `<id>@g.us` with a subject, phone members and
//!   admins. The `w:g2` participating-groups list answers the groups the asking device's
//!   phone is in; the single-group query (`to` = the group) answers it, or 404
//!   `item-not-found` when it does not exist or the phone is not in it. Groups are
//!   phone-number addressed: each `<participant jid="PHONE@s.whatsapp.net" lid="LID@lid"
//!   [type="superadmin"|"admin"]/>`, the first admin a superadmin (the creator).
//! - **Contact checks**: a `usync` iq whose query has the `<contact>` protocol (the
//!   existence check) gets each user `in` (with its LID, when `<lid>` was asked) or `out`,
//!   as [`Directory::set_contact`] says (every phone is on WhatsApp until marked otherwise),
//!   and is recorded in the asking phone's outbox as a [`OutboxItem::Check`]. Other usync
//!   queries (device lists) are left to the server.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use chrono::Utc;
use rand::Rng;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, NodeContent, NodeValue, Server};

use crate::hooks::IqAnswer;
use crate::net::{phone_of, OutboxItem};

/// WhatsApp's limits on a group's subject and size (as the simulated network's).
const MAX_SUBJECT_CHARS: usize = 100;
const MAX_PARTICIPANTS: usize = 1024;

/// The LID (digits) of a phone (digits), as the server assigns it.
pub(crate) type LidOf<'a> = &'a (dyn Fn(&str) -> Option<String> + Send + Sync);

/// Why [`Directory::create_group`] refused a group.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidGroup(pub String);

/// A group on the fake network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeGroup {
    pub subject: String,
    /// Phones (digits), in the order given, without repeats.
    pub participants: Vec<String>,
    /// Some of `participants`; the first is the creator and a superadmin.
    pub admins: Vec<String>,
    /// When it was made (Unix seconds).
    pub creation: u64,
}

#[derive(Default)]
struct State {
    /// By id (the digits before `@g.us`).
    groups: BTreeMap<String, FakeGroup>,
    /// Phones (digits) marked as not on WhatsApp.
    off_whatsapp: HashSet<String>,
}

/// The groups and the contacts' registration of a network; see the module docs.
#[derive(Default)]
pub(crate) struct Directory {
    state: Mutex<State>,
}

fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs.get(key).map(|v| v.as_str().into_owned())
}

fn digits_only(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Unique in order.
fn dedup(list: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    list.into_iter().filter(|p| seen.insert(p.clone())).collect()
}

impl Directory {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("poisoned")
    }

    /// Makes a group of `participants` (phone digits), `admins` among them; returns its
    /// JID `120363…@g.us`. The subject defaults to `Group <last 4 digits of the id>`.
    pub(crate) fn create_group(
        &self,
        subject: Option<String>,
        participants: Vec<String>,
        admins: Vec<String>,
    ) -> Result<String, InvalidGroup> {
        let subject = match subject.as_deref().map(str::trim) {
            None => None,
            Some("") => return Err(InvalidGroup("subject: must not be empty".into())),
            Some(s) if s.chars().count() > MAX_SUBJECT_CHARS => {
                return Err(InvalidGroup(format!(
                    "subject: longer than {MAX_SUBJECT_CHARS} characters"
                )))
            }
            Some(s) => Some(s.to_string()),
        };
        let participants = dedup(participants);
        let admins = dedup(admins);
        if let Some(bad) = participants.iter().chain(&admins).find(|p| !digits_only(p)) {
            return Err(InvalidGroup(format!("not a phone number: {bad:?}")));
        }
        if participants.is_empty() {
            return Err(InvalidGroup("participants: a group needs at least one".into()));
        }
        if participants.len() > MAX_PARTICIPANTS {
            return Err(InvalidGroup(format!("participants: at most {MAX_PARTICIPANTS}")));
        }
        if let Some(outsider) = admins.iter().find(|a| !participants.contains(a)) {
            return Err(InvalidGroup(format!("admins: +{outsider} is not a participant")));
        }
        let mut state = self.state();
        let mut rng = rand::thread_rng();
        let id = loop {
            let id = format!("120363{:012}", rng.gen_range(0..1_000_000_000_000u64));
            if !state.groups.contains_key(&id) {
                break id;
            }
        };
        let subject =
            subject.unwrap_or_else(|| format!("Group {}", &id[id.len().saturating_sub(4)..]));
        let creation = crate::pairing::now_secs();
        state.groups.insert(id.clone(), FakeGroup { subject, participants, admins, creation });
        Ok(format!("{id}@g.us"))
    }

    /// The group of `jid` (`<id>@g.us` or the id).
    pub(crate) fn group(&self, jid: &str) -> Option<FakeGroup> {
        self.state().groups.get(jid.trim_end_matches("@g.us")).cloned()
    }

    /// Marks `phone` (digits) as on WhatsApp or not.
    pub(crate) fn set_contact(&self, phone: &str, on_whatsapp: bool) {
        let mut state = self.state();
        if on_whatsapp {
            state.off_whatsapp.remove(phone);
        } else {
            state.off_whatsapp.insert(phone.to_string());
        }
    }

    /// Whether `phone` (digits) has an account: yes until marked otherwise.
    pub(crate) fn on_whatsapp(&self, phone: &str) -> bool {
        !self.state().off_whatsapp.contains(phone)
    }

    /// Answers the group and contact-check iqs of `device` (see the module docs); `None`
    /// leaves the iq to the server. A contact check is passed to `record` as an outbox item.
    pub(crate) fn answer_iq(
        &self,
        device: &str,
        iq: &Node,
        lid_of: LidOf<'_>,
        record: &dyn Fn(OutboxItem),
    ) -> Option<IqAnswer> {
        let xmlns = attr(iq, "xmlns").unwrap_or_default();
        let kind = attr(iq, "type").unwrap_or_default();
        let phone = phone_of(device);
        match (xmlns.as_str(), kind.as_str()) {
            ("w:g2", "get") if iq.get_optional_child("participating").is_some() => {
                let groups: Vec<(String, FakeGroup)> = self
                    .state()
                    .groups
                    .iter()
                    .filter(|(_, g)| g.participants.iter().any(|p| p == phone))
                    .map(|(id, g)| (id.clone(), g.clone()))
                    .collect();
                Some(IqAnswer::Result(vec![participating_answer(&groups, lid_of)]))
            }
            ("w:g2", "get") if iq.get_optional_child("query").is_some() => {
                let to = iq.attrs.get("to").and_then(NodeValue::to_jid)?;
                if to.server != Server::Group {
                    return None;
                }
                let group = self
                    .group(&to.user)
                    .filter(|g| g.participants.iter().any(|p| p == phone))
                    .map(|g| group_node(&to.user, &g, lid_of));
                Some(match group {
                    Some(node) => IqAnswer::Result(vec![node]),
                    None => IqAnswer::Error { code: 404, text: "item-not-found".into() },
                })
            }
            ("usync", _) if asks_contact(iq) => {
                let (phones, answer) = contacts_answer(iq, &|p| self.on_whatsapp(p), lid_of);
                record(OutboxItem::Check {
                    check: phones.iter().map(|p| format!("+{p}")).collect(),
                    at: Utc::now(),
                });
                Some(IqAnswer::Result(vec![answer]))
            }
            _ => None,
        }
    }
}

/// One `<group>`: phone-number addressed, every participant with its LID beside it.
pub(crate) fn group_node(id: &str, group: &FakeGroup, lid_of: LidOf<'_>) -> Node {
    let participants = group.participants.iter().map(|p| {
        let mut node = NodeBuilder::new("participant").attr("jid", Jid::pn(p.as_str()));
        if let Some(lid) = lid_of(p) {
            node = node.attr("lid", Jid::lid(lid.as_str()));
        }
        match group.admins.iter().position(|a| a == p) {
            Some(0) => node = node.attr("type", "superadmin"),
            Some(_) => node = node.attr("type", "admin"),
            None => {}
        }
        node.build()
    });
    let mut node = NodeBuilder::new("group")
        .attr("id", id)
        .attr("subject", group.subject.as_str())
        .attr("s_t", group.creation.to_string())
        .attr("creation", group.creation.to_string())
        .attr("size", group.participants.len().to_string())
        .attr("addressing_mode", "pn");
    if let Some(creator) = group.admins.first() {
        node = node.attr("creator", Jid::pn(creator.as_str()));
    }
    node.children(participants).build()
}

/// `<groups>` with every group given.
pub(crate) fn participating_answer(groups: &[(String, FakeGroup)], lid_of: LidOf<'_>) -> Node {
    NodeBuilder::new("groups")
        .children(groups.iter().map(|(id, g)| group_node(id, g, lid_of)))
        .build()
}

/// Whether a usync iq is an existence check: its `<query>` has the `<contact>` protocol.
fn asks_contact(iq: &Node) -> bool {
    iq.get_optional_child("usync")
        .and_then(|u| u.get_optional_child("query"))
        .is_some_and(|q| q.get_optional_child("contact").is_some())
}

/// The phone (digits) a usync `<user>` names: its `<contact>+PHONE</contact>`, or a phone
/// `jid`.
fn user_phone(user: &Node) -> Option<String> {
    let from_contact = user.get_optional_child("contact").and_then(|c| match &c.content {
        Some(NodeContent::String(s)) => Some(s.to_string()),
        Some(NodeContent::Bytes(b)) => String::from_utf8(b.to_vec()).ok(),
        _ => None,
    });
    let raw = match from_contact {
        Some(s) => s,
        None => {
            let jid = user.attrs.get("jid").and_then(NodeValue::to_jid)?;
            if jid.server != Server::Pn {
                return None;
            }
            jid.user.to_string()
        }
    };
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    digits_only(&digits).then_some(digits)
}

/// The answer to an existence check: every asked phone (in order; returned too) as
/// `<user jid="PHONE@s.whatsapp.net"><contact type="in"|"out">+PHONE</contact>[<lid
/// val="LID@lid"/>]</user>`, the LID only for registered phones, and only when the query
/// asked for `<lid>`.
pub(crate) fn contacts_answer(
    request: &Node,
    registered: &dyn Fn(&str) -> bool,
    lid_of: LidOf<'_>,
) -> (Vec<String>, Node) {
    let usync = request.get_optional_child("usync");
    let wants_lid = usync
        .and_then(|u| u.get_optional_child("query"))
        .is_some_and(|q| q.get_optional_child("lid").is_some());
    let phones: Vec<String> = usync
        .and_then(|u| u.get_optional_child("list"))
        .map(|l| l.get_children_by_tag("user").filter_map(user_phone).collect())
        .unwrap_or_default();
    let users = phones.iter().map(|p| {
        let on = registered(p);
        let contact = NodeBuilder::new("contact")
            .attr("type", if on { "in" } else { "out" })
            .string_content(format!("+{p}"))
            .build();
        let mut children = vec![contact];
        if on && wants_lid {
            if let Some(lid) = lid_of(p) {
                children.push(NodeBuilder::new("lid").attr("val", Jid::lid(lid.as_str())).build());
            }
        }
        NodeBuilder::new("user").attr("jid", Jid::pn(p.as_str())).children(children).build()
    });
    let list = NodeBuilder::new("list").children(users).build();
    let mut answer = NodeBuilder::new("usync");
    if let Some(usync) = usync {
        for key in ["sid", "index", "last", "mode", "context"] {
            if let Some(v) = attr(usync, key) {
                answer = answer.attr(key, v);
            }
        }
    }
    (phones, answer.children([list]).build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use wacore::iq::groups::{GroupInfoOutcome, GroupParticipatingIq, GroupQueryIq};
    use wacore::iq::spec::IqSpec;
    use wacore::iq::usync::{IsOnWhatsAppQueryType, IsOnWhatsAppSpec, IsOnWhatsAppUser};
    use wacore::request::RequestUtils;

    const ME: &str = "5511999990001";
    const DEVICE: &str = "5511999990001:3@s.whatsapp.net";
    const PEER: &str = "5511988880002";
    const OTHER: &str = "5511977770003";

    fn lid(phone: &str) -> Option<String> {
        Some(format!("9{}", &phone[phone.len() - 6..]))
    }

    /// The iq the library sends for `spec`, as the server receives it.
    fn request<S: IqSpec>(spec: &S) -> Node {
        RequestUtils::new("test".into()).build_iq_node(spec.build_iq(), Some("1.1".into()))
    }

    /// An answer as the client gets it: the result iq, or the error's code and text.
    type Answer = Option<Result<Node, (u16, String)>>;

    /// Asks `dir` as `DEVICE`; returns the answer and the outbox items recorded.
    fn ask(dir: &Directory, iq: &Node) -> (Answer, Vec<OutboxItem>) {
        let recorded = RefCell::new(Vec::new());
        let answer = dir.answer_iq(DEVICE, iq, &lid, &|item| recorded.borrow_mut().push(item));
        let answer = answer.map(|a| match a {
            IqAnswer::Result(children) => Ok(NodeBuilder::new("iq")
                .attr("type", "result")
                .attr("id", "1.1")
                .children(children)
                .build()),
            IqAnswer::Error { code, text } => Err((code, text)),
        });
        (answer, recorded.into_inner())
    }

    #[test]
    fn groups_parse_back_with_the_library_parsers() {
        let dir = Directory::default();
        let ops = dir
            .create_group(Some("Ops".into()), vec![ME.into(), PEER.into()], vec![ME.into()])
            .unwrap();
        let plain = dir.create_group(None, vec![PEER.into(), ME.into()], vec![]).unwrap();
        let elsewhere = dir.create_group(None, vec![PEER.into(), OTHER.into()], vec![]).unwrap();
        for jid in [&ops, &plain, &elsewhere] {
            assert!(
                jid.starts_with("120363") && jid.ends_with("@g.us") && jid.len() == 23,
                "{jid}"
            );
        }
        let plain_id = plain.trim_end_matches("@g.us");
        assert_eq!(dir.group(&plain).unwrap().subject, format!("Group {}", &plain_id[14..]));

        let spec = GroupParticipatingIq::new();
        let (answer, recorded) = ask(&dir, &request(&spec));
        assert!(recorded.is_empty());
        let parsed = spec.parse_response(&answer.unwrap().unwrap().as_node_ref()).unwrap();
        let mut got: Vec<(String, String)> =
            parsed.groups.iter().map(|g| (g.id.to_string(), g.subject.to_string())).collect();
        got.sort();
        let mut want = vec![
            (ops.clone(), "Ops".to_string()),
            (plain.clone(), dir.group(&plain).unwrap().subject),
        ];
        want.sort();
        assert_eq!(got, want, "only the groups the phone is in");
        let g = parsed.groups.iter().find(|g| g.id.to_string() == ops).unwrap();
        let members: Vec<(String, Option<String>, bool)> = g
            .participants
            .iter()
            .map(|p| {
                (
                    p.jid.to_string(),
                    p.lid.as_ref().map(ToString::to_string),
                    p.participant_type.is_admin(),
                )
            })
            .collect();
        assert_eq!(
            members,
            vec![
                (format!("{ME}@s.whatsapp.net"), Some(format!("{}@lid", lid(ME).unwrap())), true),
                (
                    format!("{PEER}@s.whatsapp.net"),
                    Some(format!("{}@lid", lid(PEER).unwrap())),
                    false
                ),
            ]
        );
        assert_eq!(g.size, Some(2));

        let spec = GroupQueryIq::new(&ops.parse().unwrap());
        let (answer, _) = ask(&dir, &request(&spec));
        let GroupInfoOutcome::Full(info) =
            spec.parse_response(&answer.unwrap().unwrap().as_node_ref()).unwrap()
        else {
            panic!("not modified")
        };
        assert_eq!((info.id.to_string(), info.subject.to_string()), (ops.clone(), "Ops".into()));
        assert_eq!(info.participants.len(), 2);
        assert_eq!(
            info.creator.as_ref().map(ToString::to_string),
            Some(format!("{ME}@s.whatsapp.net"))
        );

        for missing in [elsewhere.as_str(), "120363000000000000@g.us"] {
            let spec = GroupQueryIq::new(&missing.parse().unwrap());
            let (answer, _) = ask(&dir, &request(&spec));
            assert_eq!(answer.unwrap().unwrap_err(), (404, "item-not-found".into()), "{missing}");
        }
    }

    #[test]
    fn group_requests_are_checked() {
        let dir = Directory::default();
        let bad = [
            (Some(" ".to_string()), vec![ME], vec![]),
            (Some("x".repeat(101)), vec![ME], vec![]),
            (None, vec![], vec![]),
            (None, vec![ME], vec![PEER]),
            (None, vec!["55a1"], vec![]),
        ];
        for (subject, participants, admins) in bad {
            let r = dir.create_group(
                subject.clone(),
                participants.iter().map(|s| s.to_string()).collect(),
                admins.iter().map(|s| s.to_string()).collect(),
            );
            assert!(r.is_err(), "{subject:?} {participants:?} {admins:?}");
        }
        let jid = dir.create_group(None, vec![ME.into(), ME.into()], vec![ME.into()]).unwrap();
        assert_eq!(dir.group(&jid).unwrap().participants, vec![ME.to_string()]);
    }

    #[test]
    fn contact_checks_parse_back_and_are_recorded() {
        let dir = Directory::default();
        dir.set_contact(OTHER, false);
        dir.set_contact(PEER, false);
        dir.set_contact(PEER, true);
        let users =
            [PEER, OTHER].map(|p| IsOnWhatsAppUser { jid: Jid::pn(p), known_lid: None }).to_vec();
        let spec = IsOnWhatsAppSpec::new(users, "sid-1", IsOnWhatsAppQueryType::Pn);
        let (answer, recorded) = ask(&dir, &request(&spec));
        let results = spec.parse_response(&answer.unwrap().unwrap().as_node_ref()).unwrap();
        let got: Vec<(String, bool, Option<String>)> = results
            .iter()
            .map(|r| (r.jid.to_string(), r.is_registered, r.lid.as_ref().map(ToString::to_string)))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    format!("{PEER}@s.whatsapp.net"),
                    true,
                    Some(format!("{}@lid", lid(PEER).unwrap()))
                ),
                (format!("{OTHER}@s.whatsapp.net"), false, None),
            ]
        );
        assert!(results.iter().all(|r| !r.is_business));
        match recorded.as_slice() {
            [OutboxItem::Check { check, .. }] => {
                assert_eq!(check, &vec![format!("+{PEER}"), format!("+{OTHER}")])
            }
            other => panic!("{other:?}"),
        }
        let json = serde_json::to_value(&recorded[0]).unwrap();
        assert_eq!(json["check"], serde_json::json!([format!("+{PEER}"), format!("+{OTHER}")]));
        assert!(json["at"].is_string());
    }

    #[test]
    fn other_iqs_are_left_to_the_server() {
        let dir = Directory::default();
        // A device-list usync (no contact protocol), and a LID existence check.
        let devices = NodeBuilder::new("iq")
            .attr("xmlns", "usync")
            .attr("type", "get")
            .children([NodeBuilder::new("usync")
                .children([
                    NodeBuilder::new("query")
                        .children([NodeBuilder::new("devices").build()])
                        .build(),
                    NodeBuilder::new("list").build(),
                ])
                .build()])
            .build();
        let lid_check = request(&IsOnWhatsAppSpec::new(
            vec![IsOnWhatsAppUser { jid: Jid::lid("100000001"), known_lid: None }],
            "sid",
            IsOnWhatsAppQueryType::Lid,
        ));
        let create = NodeBuilder::new("iq")
            .attr("xmlns", "w:g2")
            .attr("type", "set")
            .children([NodeBuilder::new("create").build()])
            .build();
        for iq in [devices, lid_check, create] {
            let (answer, recorded) = ask(&dir, &iq);
            assert!(answer.is_none() && recorded.is_empty(), "{iq:?}");
        }
    }
}
