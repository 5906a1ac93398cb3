//! Groups and contact checks: the mapping of the library's answers, LID and phone-number
//! groups alike, and what each failure means.

use super::*;
use whatsapp_rust::features::ParticipantType;
use whatsapp_rust::request::IqError;

fn wa(s: &str) -> WaJid {
    s.parse().unwrap()
}

fn jid(s: &str) -> Jid {
    Jid::parse(s).unwrap()
}

fn member(jid: &str, pn: Option<&str>, lid: Option<&str>, t: ParticipantType) -> WaParticipant {
    WaParticipant {
        jid: wa(jid),
        phone_number: pn.map(wa),
        lid: lid.map(wa),
        username: None,
        participant_type: t,
        details: None,
    }
}

fn own() -> Own {
    Own { pn: Some(wa("5511999990001:4@s.whatsapp.net")), lid: Some(wa("900001:4@lid")) }
}

#[test]
fn a_phone_addressed_group_gives_phone_jids_and_finds_us_admin_by_phone() {
    let meta = GroupMetadata {
        id: wa("120363000000000001@g.us"),
        subject: "Sales".into(),
        participants: vec![
            member("5511999990001@s.whatsapp.net", None, None, ParticipantType::Admin),
            member("5511988887777@s.whatsapp.net", None, Some("777@lid"), ParticipantType::Member),
        ],
        ..Default::default()
    };
    let info = info(&meta, &own()).unwrap();
    assert_eq!(info.summary.jid, jid("120363000000000001@g.us"));
    assert_eq!((info.summary.subject.as_str(), info.summary.size), ("Sales", 2));
    assert!(info.summary.is_admin);
    assert_eq!(
        info.participants,
        vec![
            GroupParticipant {
                jid: Some(jid("5511999990001@s.whatsapp.net")),
                lid: None,
                is_admin: true
            },
            GroupParticipant {
                jid: Some(jid("5511988887777@s.whatsapp.net")),
                lid: Some(jid("777@lid")),
                is_admin: false
            },
        ]
    );
}

#[test]
fn a_lid_group_gives_lids_with_phone_jids_when_known_and_finds_us_by_lid() {
    let meta = GroupMetadata {
        id: wa("120363000000000002@g.us"),
        subject: "Support".into(),
        participants: vec![
            member("900001@lid", None, None, ParticipantType::SuperAdmin),
            member("777@lid", Some("5511988887777@s.whatsapp.net"), None, ParticipantType::Member),
        ],
        ..Default::default()
    };
    let info = info(&meta, &own()).unwrap();
    assert!(info.summary.is_admin, "the creator (superadmin) is an admin");
    assert_eq!(info.participants[0].jid, None, "our phone JID was not given");
    assert_eq!(info.participants[0].lid, Some(jid("900001@lid")));
    assert_eq!(info.participants[1].jid, Some(jid("5511988887777@s.whatsapp.net")));
    assert_eq!(info.participants[1].lid, Some(jid("777@lid")));
}

#[test]
fn a_member_is_not_admin_and_a_list_without_participants_uses_the_size() {
    let mut meta = GroupMetadata {
        id: wa("120363000000000003@g.us"),
        participants: vec![member(
            "5511999990001@s.whatsapp.net",
            None,
            None,
            ParticipantType::Member,
        )],
        ..Default::default()
    };
    assert!(!summary(&meta, &own()).unwrap().is_admin);
    meta.participants.clear();
    meta.size = Some(57);
    assert_eq!(summary(&meta, &own()).unwrap().size, 57);
    // Another admin is not us.
    meta.participants =
        vec![member("5511900000000@s.whatsapp.net", None, None, ParticipantType::Admin)];
    assert!(!summary(&meta, &own()).unwrap().is_admin);
}

#[test]
fn not_being_in_a_group_is_not_found_and_other_failures_keep_their_kind() {
    let rejected = |code: u16| {
        GroupError::Iq(IqError::ServerError {
            code,
            text: "forbidden".into(),
            error_type: None,
            backoff: None,
        })
    };
    assert!(matches!(group_error(&rejected(403)), DriverError::NotFound(m) if m.contains("403")));
    assert!(matches!(group_error(&rejected(404)), DriverError::NotFound(_)));
    assert!(matches!(group_error(&rejected(406)), DriverError::Rejected { .. }));
    assert!(matches!(group_error(&rejected(503)), DriverError::Transport(_)));
    assert_eq!(group_error(&GroupError::Iq(IqError::NotConnected)), DriverError::NotConnected);
    assert!(matches!(group_error(&GroupError::Iq(IqError::Timeout)), DriverError::Transport(_)));
}

#[test]
fn contacts_are_matched_by_number_in_the_order_asked() {
    let phones: Vec<Phone> = ["+5511988887777", "+5511977776666", "+5511966665555"]
        .iter()
        .map(|p| Phone::parse(p).unwrap())
        .collect();
    let found = vec![
        // Answered out of order, one LID-first.
        Found { pn: Some(wa("5511977776666@s.whatsapp.net")), lid: None, registered: false },
        Found {
            pn: Some(wa("5511988887777@s.whatsapp.net")),
            lid: Some(wa("777@lid")),
            registered: true,
        },
    ];
    let got = match_contacts(&phones, &found);
    assert_eq!(
        got[0],
        Some(ContactStatus {
            phone: phones[0].clone(),
            on_whatsapp: true,
            jid: Some(jid("5511988887777@s.whatsapp.net")),
            lid: Some(jid("777@lid")),
        })
    );
    assert_eq!(
        got[1],
        Some(ContactStatus { phone: phones[1].clone(), on_whatsapp: false, jid: None, lid: None })
    );
    assert_eq!(got[2], None, "no answer names it: it is asked alone");
}

#[test]
fn a_canonical_number_answered_alone_is_the_asked_phones() {
    // Asked with the ninth digit, answered without it.
    let phone = Phone::parse("+5511988887777").unwrap();
    let f = Found {
        pn: Some(wa("551188887777@s.whatsapp.net")),
        lid: Some(wa("777@lid")),
        registered: true,
    };
    assert_eq!(match_contacts(std::slice::from_ref(&phone), std::slice::from_ref(&f)), vec![None]);
    let s = status(&phone, &f);
    assert!(s.on_whatsapp);
    assert_eq!(s.phone, phone);
    assert_eq!(s.jid, Some(jid("551188887777@s.whatsapp.net")));
}
