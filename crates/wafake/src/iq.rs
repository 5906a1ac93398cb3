//! Answers to what a logged-in client asks: the passive iq (followed by the offline backlog,
//! `offline.rs`), prekey uploads (kept per device) and counts, app-state sync
//! (every collection empty at version 0), usync device lists (`<device id="0"/>` per user),
//! and an empty result for everything else. Outbound messages and receipts are acked.

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, NodeValue};

use crate::conn::Session;
use crate::hooks::IqAnswer;
use crate::pairing::server_jid;

fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs.get(key).map(NodeValue::as_str).map(|s| s.into_owned())
}

fn result(id: &str, children: Vec<Node>) -> Node {
    let mut b =
        NodeBuilder::new("iq").attr("from", server_jid()).attr("type", "result").attr("id", id);
    if !children.is_empty() {
        b = b.children(children);
    }
    b.build()
}

fn error(id: &str, code: u16, text: &str) -> Node {
    NodeBuilder::new("iq")
        .attr("from", server_jid())
        .attr("type", "error")
        .attr("id", id)
        .children([NodeBuilder::new("error")
            .attr("code", code.to_string())
            .attr("text", text)
            .build()])
        .build()
}

/// Handles one `<iq>` from the client.
pub(crate) fn handle_iq(session: &mut Session, node: &Node) {
    let id = attr(node, "id").unwrap_or_default();
    let kind = attr(node, "type").unwrap_or_default();
    if kind == "result" || kind == "error" {
        // An answer to an iq the server sent (pair-device ack, pair-device-sign, …).
        if let Some(waiter) = session.server.state().waiters.remove(&id) {
            let _ = waiter.send(node.clone());
        }
        return;
    }
    let xmlns = attr(node, "xmlns").unwrap_or_default();
    let child = |tag: &str| node.get_optional_child(tag);
    let device = session.device.clone();
    if let (Some(hooks), Some(jid)) = (session.server.hooks(), &device) {
        if let Some(answer) = hooks.answer_iq(jid, node) {
            session.conn.send(match answer {
                IqAnswer::Result(children) => result(&id, children),
                IqAnswer::Error { code, text } => error(&id, code, &text),
            });
            return;
        }
    }
    match (xmlns.as_str(), kind.as_str()) {
        ("passive", _) => {
            session.conn.send(result(&id, vec![]));
            if child("active").is_some() {
                session.start_offline_drain();
            }
        }
        ("encrypt", "set") if child("list").is_some() || child("registration").is_some() => {
            if let Some(jid) = &device {
                let wire = crate::frame::encode_node(node);
                if let Some(d) = session.server.state().devices.get_mut(jid) {
                    d.prekey_upload = wire;
                }
            }
            session.conn.send(result(&id, vec![]));
        }
        ("encrypt", "get") if child("count").is_some() => {
            let count = device
                .as_ref()
                .and_then(|jid| session.server.prekey_upload(jid))
                .and_then(|up| {
                    up.get_optional_child("list").and_then(Node::children).map(<[Node]>::len)
                })
                .unwrap_or(0);
            session.conn.send(result(
                &id,
                vec![NodeBuilder::new("count").attr("value", count.to_string()).build()],
            ));
        }
        ("encrypt", "get") if child("key").is_some() => {
            let children = match (session.server.hooks(), &device) {
                (Some(hooks), Some(jid)) => hooks.prekey_bundles(jid, node).unwrap_or_default(),
                _ => vec![],
            };
            session.conn.send(result(&id, children));
        }
        ("w:sync:app:state", _) => {
            let answer = app_state_answer(node);
            if let (Some(jid), Some(collections)) = (&device, answer.children()) {
                if let Some(d) = session.server.state().devices.get_mut(jid) {
                    d.app_state.extend(collections.iter().filter_map(|c| attr(c, "name")));
                }
            }
            session.conn.send(result(&id, vec![answer]));
        }
        ("usync", _) => session.conn.send(result(&id, usync_answer(node))),
        _ => session.conn.send(result(&id, vec![])),
    }
}

/// `<sync>` with every requested collection at version 0 and nothing more to fetch.
fn app_state_answer(request: &Node) -> Node {
    let collections = request
        .get_optional_child("sync")
        .and_then(Node::children)
        .unwrap_or_default()
        .iter()
        .filter(|c| c.tag == "collection")
        .map(|c| {
            NodeBuilder::new("collection")
                .attr("name", attr(c, "name").unwrap_or_default())
                .attr("version", "0")
                .build()
        })
        .collect::<Vec<_>>();
    NodeBuilder::new("sync").children(collections).build()
}

/// A usync answer: every listed user with the one device `0` (their phone).
fn usync_answer(request: &Node) -> Vec<Node> {
    let Some(usync) = request.get_optional_child("usync") else { return vec![] };
    let users = usync
        .get_optional_child("list")
        .and_then(Node::children)
        .unwrap_or_default()
        .iter()
        .filter_map(|u| u.attrs.get("jid").and_then(NodeValue::to_jid))
        .map(|jid: Jid| {
            let devices = NodeBuilder::new("devices")
                .children([NodeBuilder::new("device-list")
                    .children([NodeBuilder::new("device").attr("id", "0").build()])
                    .build()])
                .build();
            NodeBuilder::new("user").attr("jid", jid.to_non_ad()).children([devices]).build()
        })
        .collect::<Vec<_>>();
    let mut answer = NodeBuilder::new("usync");
    for key in ["sid", "index", "last", "mode", "context"] {
        if let Some(v) = attr(usync, key) {
            answer = answer.attr(key, v);
        }
    }
    vec![answer.children([NodeBuilder::new("list").children(users).build()]).build()]
}

/// Handles an outbound `<message>`: shows it to the Signal hooks, acks it, then sends what
/// the hooks have for after the ack (delivery receipts).
pub(crate) fn handle_message(session: &mut Session, node: &Node) {
    let Some(device) = session.device.clone() else { return };
    let hooks = session.server.hooks();
    if let Some(hooks) = &hooks {
        hooks.on_message(&device, node);
    }
    let mut ack = NodeBuilder::new("ack").attr("class", "message");
    if let Some(id) = attr(node, "id") {
        ack = ack.attr("id", id);
    }
    if let Some(to) = node.attrs.get("to").and_then(NodeValue::to_jid) {
        ack = ack.attr("from", to);
    }
    ack = ack.attr("t", crate::pairing::now_secs().to_string());
    session.conn.send(ack.build());
    for after in hooks.map(|h| h.after_ack(&device, node)).unwrap_or_default() {
        session.conn.send(after);
    }
}

/// Handles a `<receipt>`: shows it to the Signal hooks, then acks it
/// (`<ack class="receipt" id from [type]/>`, as the real server does).
pub(crate) fn handle_receipt(session: &mut Session, node: &Node) {
    let Some(device) = session.device.clone() else { return };
    if let Some(hooks) = session.server.hooks() {
        hooks.on_receipt(&device, node);
    }
    session.acknowledged(node);
    let mut ack = NodeBuilder::new("ack").attr("class", "receipt");
    if let Some(id) = attr(node, "id") {
        ack = ack.attr("id", id);
    }
    if let Some(to) = node.attrs.get("to").and_then(NodeValue::to_jid) {
        ack = ack.attr("from", to);
    }
    if let Some(kind) = attr(node, "type") {
        ack = ack.attr("type", kind);
    }
    session.conn.send(ack.build());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_state_answers_every_collection_at_version_zero() {
        let request = NodeBuilder::new("iq")
            .children([NodeBuilder::new("sync")
                .children(["critical_block", "regular"].map(|n| {
                    NodeBuilder::new("collection")
                        .attr("name", n)
                        .attr("version", "7")
                        .attr("return_snapshot", "false")
                        .build()
                }))
                .build()])
            .build();
        let answer = app_state_answer(&request);
        let got: Vec<(String, String)> = answer
            .children()
            .unwrap()
            .iter()
            .map(|c| (attr(c, "name").unwrap(), attr(c, "version").unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("critical_block".to_string(), "0".to_string()),
                ("regular".to_string(), "0".to_string())
            ]
        );
    }

    #[test]
    fn usync_lists_device_zero_per_user_and_parses_back() {
        let users = ["111@s.whatsapp.net", "222:3@s.whatsapp.net"]
            .map(|j| NodeBuilder::new("user").attr("jid", j.parse::<Jid>().unwrap()).build());
        let request = NodeBuilder::new("iq")
            .children([NodeBuilder::new("usync")
                .attr("sid", "s1")
                .children([
                    NodeBuilder::new("query")
                        .children([NodeBuilder::new("devices").build()])
                        .build(),
                    NodeBuilder::new("list").children(users).build(),
                ])
                .build()])
            .build();
        let answer = NodeBuilder::new("iq").children(usync_answer(&request)).build();
        let devices = wacore::usync::parse_get_user_devices_response(&answer).unwrap();
        let got: Vec<String> = devices.iter().map(ToString::to_string).collect();
        assert_eq!(got, vec!["111@s.whatsapp.net", "222@s.whatsapp.net"]);
    }
}
