//! Groups and contact checks with the real whatsapp-rust client, through the library calls
//! the gateway's driver makes (`groups().get_participating()`, `get_metadata`,
//! `contacts().is_on_whatsapp`), set up over the HTTP control API. One pairing (the
//! client's 10 s grace).

mod common;

use bzapper_wafake::{control, OutboxItem, WireNet};
use common::{paired, server};
use serde_json::{json, Value};
use whatsapp_rust::{ErrorChainExt, Jid};

const ME: &str = "5511999990001";
const PEER: &str = "5511988880002";
const OTHER: &str = "5511977770003";
const NOBODY: &str = "5511966660004";

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.expect("GET");
        (r.status().as_u16(), r.json().await.expect("JSON"))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r =
            self.http.post(format!("{}{path}", self.base)).json(&body).send().await.expect("POST");
        (r.status().as_u16(), r.json().await.expect("JSON"))
    }
}

fn pn(phone: &str) -> String {
    format!("{phone}@s.whatsapp.net")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_contact_checks() {
    let server = server().await;
    let net = WireNet::new(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(control::serve(listener, net.clone(), std::future::pending()));
    let api = Api { base, http: reqwest::Client::new() };

    // The control API refuses bad groups and contacts with 422.
    for bad in [
        json!({"participants": [ME], "admins": [PEER]}),
        json!({"participants": []}),
        json!({"participants": ["+55 11 9"]}),
        json!({"subject": "  ", "participants": [ME]}),
        json!({"participants": [ME], "extra": 1}),
        json!({"subject": "no participants"}),
    ] {
        let (status, err) = api.post("/wire/groups", bad.clone()).await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (422, Some("invalid_request")),
            "{bad}"
        );
    }
    for bad in [
        json!({"phone": "12", "on_whatsapp": false}),
        json!({"phone": NOBODY}),
        json!({"phone": NOBODY, "on_whatsapp": "no"}),
    ] {
        let (status, err) = api.post("/wire/contacts", bad.clone()).await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (422, Some("invalid_request")),
            "{bad}"
        );
    }

    // Groups: one where this phone is admin (phones in any notation, or JIDs), one where it
    // is a member, one it is not in.
    let (status, ops) = api
        .post(
            "/wire/groups",
            json!({"subject": "Ops", "participants": ["+55 (11) 99999-0001", pn(PEER)],
                   "admins": [format!("+{ME}")]}),
        )
        .await;
    assert_eq!(status, 200, "{ops}");
    let ops = ops["jid"].as_str().unwrap().to_string();
    assert!(ops.starts_with("120363") && ops.ends_with("@g.us"), "{ops}");
    let plain = net
        .create_group(None, vec![PEER.into(), ME.into(), OTHER.into()], vec![PEER.into()])
        .unwrap();
    let plain_subject = format!("Group {}", &plain[14..18]);
    let elsewhere = net.create_group(None, vec![PEER.into(), OTHER.into()], vec![]).unwrap();
    let (status, ok) = api
        .post("/wire/contacts", json!({"phone": format!("+{NOBODY}"), "on_whatsapp": false}))
        .await;
    assert_eq!((status, ok), (200, json!({"ok": true})));

    let (client, _store, _paired) = paired(&server, ME).await;
    let c = client.handle.client();

    // The participating groups, with subjects and admin flags.
    let groups = c.groups().get_participating().await.expect("get_participating");
    let mut got: Vec<(String, String, bool)> = groups
        .values()
        .map(|m| {
            let me_admin =
                m.participants.iter().any(|p| p.jid.user == ME && p.participant_type.is_admin());
            (m.id.to_string(), m.subject.clone(), me_admin)
        })
        .collect();
    got.sort();
    let mut want =
        vec![(ops.clone(), "Ops".to_string(), true), (plain.clone(), plain_subject, false)];
    want.sort();
    assert_eq!(got, want);

    // One group's metadata: participants by phone JID, each with its LID.
    let meta = c.groups().get_metadata(&ops.parse::<Jid>().unwrap()).await.expect("get_metadata");
    assert_eq!(meta.subject, "Ops");
    let members: Vec<(String, Option<String>, bool)> = meta
        .participants
        .iter()
        .map(|p| (p.jid.to_string(), p.lid.as_ref().map(ToString::to_string), p.is_admin()))
        .collect();
    assert_eq!(
        members,
        vec![
            (pn(ME), Some(format!("{}@lid", net.lid_of_phone(ME))), true),
            (pn(PEER), Some(format!("{}@lid", net.lid_of_phone(PEER))), false),
        ]
    );
    let meta = c.groups().get_metadata(&plain.parse::<Jid>().unwrap()).await.expect("plain");
    assert_eq!(meta.participants.len(), 3);
    assert!(meta.participants.iter().any(|p| p.jid.user == PEER && p.is_admin()));

    // A group this phone is not in, and one that does not exist: a 404 rejection.
    for missing in [elsewhere.as_str(), "120363000000000001@g.us"] {
        let err = c.groups().get_metadata(&missing.parse::<Jid>().unwrap()).await.unwrap_err();
        let rejection = err.server_rejection().unwrap_or_else(|| panic!("{missing}: {err}"));
        assert_eq!(rejection.code, 404, "{missing}: {err}");
    }

    // Contact checks: a registered phone and one marked as not on WhatsApp.
    let results = c
        .contacts()
        .is_on_whatsapp(&[Jid::pn(PEER), Jid::pn(NOBODY)])
        .await
        .expect("is_on_whatsapp");
    let got: Vec<(String, bool, Option<String>)> = results
        .iter()
        .map(|r| (r.jid.to_string(), r.is_registered, r.lid.as_ref().map(ToString::to_string)))
        .collect();
    assert_eq!(
        got,
        vec![
            (pn(PEER), true, Some(format!("{}@lid", net.lid_of_phone(PEER)))),
            (pn(NOBODY), false, None),
        ]
    );
    // Marked back: registered again.
    let (status, _) =
        api.post("/wire/contacts", json!({"phone": NOBODY, "on_whatsapp": true})).await;
    assert_eq!(status, 200);
    let results = c.contacts().is_on_whatsapp(&[Jid::pn(NOBODY)]).await.expect("again");
    assert!(results.len() == 1 && results[0].is_registered, "{results:?}");

    // The outbox shows both checks, in order.
    let checks: Vec<Vec<String>> = net
        .outbox(ME)
        .into_iter()
        .filter_map(|i| match i {
            OutboxItem::Check { check, .. } => Some(check),
            _ => None,
        })
        .collect();
    assert_eq!(
        checks,
        vec![vec![format!("+{PEER}"), format!("+{NOBODY}")], vec![format!("+{NOBODY}")]]
    );
    let (status, outbox) = api.get(&format!("/wire/devices/{ME}/outbox")).await;
    assert_eq!(status, 200);
    let items = outbox["items"].as_array().unwrap();
    let check = items.iter().find(|i| i.get("check").is_some()).expect("a check item");
    assert_eq!(check["check"], json!([format!("+{PEER}"), format!("+{NOBODY}")]));
    assert!(check["at"].is_string(), "{check}");

    client.stop().await;
}
