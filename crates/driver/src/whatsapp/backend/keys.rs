//! Builds the session-store keys of every namespace (the layout is documented on the parent
//! module). Keys are not sealed, so they hold addresses, JIDs and ids only, never key material.

use std::borrow::Cow;
use std::fmt::Write;

pub(super) const DEVICE: &str = "device";

pub(super) const PREKEYS: &str = "prekey/";
pub(super) const SIGNED_PREKEYS: &str = "signed_prekey/";
pub(super) const LATEST_SYNC_KEY: &str = "appsync/latest_key";
pub(super) const SENDER_KEY_DEVICES: &str = "skdev/";
pub(super) const LIDS: &str = "lid/";
pub(super) const TC_TOKENS: &str = "tctoken/";
pub(super) const SENT: &str = "sent/";
pub(super) const PENDING_INBOUND: &str = "pending_inbound/";
pub(super) const MSG_SECRETS: &str = "msgsecret/";

/// Escapes one key component so it can never contain the `/` separator: a prefix scan of
/// `ns/<a>/` must not see `ns/<a>/<b>/…` rows of a component that itself held a slash. `%` is
/// escaped too so the mapping stays reversible. JIDs and ids never contain either character, so
/// in practice keys read exactly like the values the library passed.
pub(super) fn esc(component: &str) -> Cow<'_, str> {
    if !component.contains(['/', '%']) {
        return Cow::Borrowed(component);
    }
    Cow::Owned(component.replace('%', "%25").replace('/', "%2F"))
}

/// Reverses [`esc`]. Anything that is not one of its two escapes is kept as it is.
pub(super) fn unesc(component: &str) -> String {
    if !component.contains('%') {
        return component.to_string();
    }
    let mut out = String::with_capacity(component.len());
    let mut rest = component;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("%2F") {
            out.push('/');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("%25") {
            out.push('%');
            rest = after;
        } else {
            out.push('%');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Binary ids (app-state key ids, index MACs) as lowercase hex, which sorts and prints well.
fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

pub(super) fn identity(address: &str) -> String {
    format!("identity/{}", esc(address))
}

pub(super) fn session(address: &str) -> String {
    format!("session/{}", esc(address))
}

/// Zero-padded to the width of `u32::MAX` so that key order is numeric order.
pub(super) fn prekey(id: u32) -> String {
    format!("{PREKEYS}{id:010}")
}

pub(super) fn signed_prekey(id: u32) -> String {
    format!("{SIGNED_PREKEYS}{id:010}")
}

/// The id of a `prekey/…` or `signed_prekey/…` key.
pub(super) fn numeric_id(key: &str, namespace: &str) -> Option<u32> {
    key.strip_prefix(namespace)?.parse().ok()
}

pub(super) fn sender_key(address: &str) -> String {
    format!("sender_key/{}", esc(address))
}

pub(super) fn sync_key(key_id: &[u8]) -> String {
    format!("appsync/key/{}", hex(key_id))
}

pub(super) fn app_state_version(name: &str) -> String {
    format!("appsync/version/{}", esc(name))
}

pub(super) fn mutation_macs(name: &str) -> String {
    format!("appsync/mac/{}/", esc(name))
}

pub(super) fn mutation_mac(name: &str, index_mac: &[u8]) -> String {
    format!("{}{}", mutation_macs(name), hex(index_mac))
}

pub(super) fn sender_key_devices(group: &str) -> String {
    format!("{SENDER_KEY_DEVICES}{}/", esc(group))
}

pub(super) fn sender_key_device(group: &str, device: &str) -> String {
    format!("{}{}", sender_key_devices(group), esc(device))
}

pub(super) fn lid(lid: &str) -> String {
    format!("{LIDS}{}", esc(lid))
}

/// The reverse index of one phone number: one empty row per LID mapped to it.
pub(super) fn lids_of_phone(phone: &str) -> String {
    format!("pn/{}/", esc(phone))
}

pub(super) fn phone_index(phone: &str, lid: &str) -> String {
    format!("{}{}", lids_of_phone(phone), esc(lid))
}

pub(super) fn base_key(address: &str, message_id: &str) -> String {
    format!("basekey/{}/{}", esc(address), esc(message_id))
}

pub(super) fn device_list(user: &str) -> String {
    format!("devices/{}", esc(user))
}

pub(super) fn group_metadata(group: &str) -> String {
    format!("group_meta/{}", esc(group))
}

pub(super) fn tc_token(jid: &str) -> String {
    format!("{TC_TOKENS}{}", esc(jid))
}

pub(super) fn sent_message(chat: &str, message_id: &str) -> String {
    format!("{SENT}{}/{}", esc(chat), esc(message_id))
}

pub(super) fn pending_inbound(chat: &str, sender: &str, id: &str) -> String {
    format!("{PENDING_INBOUND}{}/{}/{}", esc(chat), esc(sender), esc(id))
}

pub(super) fn msg_secret(chat: &str, sender: &str, message_id: &str) -> String {
    format!("{MSG_SECRETS}{}/{}/{}", esc(chat), esc(sender), esc(message_id))
}

/// The last component of a key, unescaped (the device JID of a `skdev/` row, the LID of a
/// `pn/` row, the JID of a `tctoken/` row).
pub(super) fn last_component(key: &str) -> String {
    unesc(key.rsplit('/').next().unwrap_or(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_keeps_plain_jids_readable() {
        for raw in ["5511987650001:3@s.whatsapp.net", "a/b", "50%", "%2F", "/%/", ""] {
            assert_eq!(unesc(&esc(raw)), raw);
            assert!(!esc(raw).contains('/'));
        }
        assert_eq!(esc("120363021033254949@g.us"), "120363021033254949@g.us");
        assert_eq!(unesc("100%"), "100%");
    }

    #[test]
    fn prekey_keys_sort_numerically() {
        let mut keys = [prekey(10), prekey(9), prekey(u32::MAX), prekey(100), prekey(0)];
        keys.sort();
        let ids: Vec<u32> = keys.iter().map(|k| numeric_id(k, PREKEYS).unwrap()).collect();
        assert_eq!(ids, [0, 9, 10, 100, u32::MAX]);
    }

    #[test]
    fn components_cannot_reach_into_a_neighbour_namespace() {
        assert_eq!(sender_key_device("g/1", "d"), "skdev/g%2F1/d");
        assert!(!sender_key_device("g/1", "d").starts_with(&sender_key_devices("g")));
        assert_eq!(mutation_mac("regular", &[0xab, 0x01]), "appsync/mac/regular/ab01");
        assert_eq!(last_component(&tc_token("a/b@lid")), "a/b@lid");
    }
}
