//! The prekey fetch as the server sees it: which JIDs the client asks for, and the answer.
//!
//! Request (`PreKeyUtils::build_fetch_prekeys_request`, `wacore/src/prekeys.rs:127`):
//! `<iq xmlns="encrypt" type="get"><key><user jid=… [reason=…]/>…</key></iq>`.
//! Answer (parsed by `PreKeyUtils::parse_prekeys_response`, `wacore/src/prekeys.rs:196`):
//! `<iq from="s.whatsapp.net" id=… type="result"><list><user jid=…>…</user>…</list></iq>`,
//! one `<user>` per device (see `FakeContact::prekey_user_node`); a device the server does
//! not know may instead get `<user jid=…><error code="406"/></user>` (`prekeys.rs:237-262`).

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, NodeRef, SERVER_JID};

/// The JIDs a fetch asks for, in order (those with an unreadable `jid` are skipped).
pub fn requested_prekey_jids(request: &NodeRef<'_>) -> Vec<Jid> {
    let Some(key) = request.get_optional_child("key") else {
        return Vec::new();
    };
    key.get_children_by_tag("user").filter_map(|user| user.attrs().optional_jid("jid")).collect()
}

/// `<list>users…</list>`: the answer's only child (what `SignalHooks::prekey_bundles`
/// returns, wrapped in a `Vec`).
pub fn prekey_list_node(users: impl IntoIterator<Item = Node>) -> Node {
    NodeBuilder::new("list").children(users).build()
}

/// `<user jid=…><error code="406" text="not-acceptable"/></user>`: the answer for a device the
/// server does not know, which the client takes as "this device is gone".
pub fn prekey_user_error_node(jid: &Jid) -> Node {
    NodeBuilder::new("user")
        .attr("jid", jid.clone())
        .children([NodeBuilder::new("error")
            .attr("code", "406")
            .attr("text", "not-acceptable")
            .build()])
        .build()
}

/// `<iq from="s.whatsapp.net" id=… type="result"><list>users…</list></iq>`: the whole answer.
pub fn prekey_fetch_result_node(request_id: &str, users: impl IntoIterator<Item = Node>) -> Node {
    NodeBuilder::new("iq")
        .attr("from", SERVER_JID)
        .attr("id", request_id.to_string())
        .attr("type", "result")
        .children([prekey_list_node(users)])
        .build()
}
