//! What a number can tell about its groups and about phone numbers: the queries, and the pure
//! mapping of their answers into our types (unit-tested at the bottom).
//!
//! Groups come in two addressings. In a phone-number group a participant's `jid` is its
//! phone JID; in a LID group it is its LID, and the phone JID comes beside it (or from the
//! library's LID↔phone cache) when known. So "is this participant me" compares every address
//! a participant has with both of ours.

use std::collections::HashMap;

use bzapper_core::{Jid, Phone};
use whatsapp_rust::features::{GroupError, GroupMetadata, GroupParticipant as WaParticipant};
use whatsapp_rust::{Client, ErrorChainExt, Jid as WaJid, ServerRejection};

use super::events::convert_jid;
use crate::{ContactStatus, DriverError, GroupInfo, GroupParticipant, GroupSummary};

/// How many phone numbers go in one existence query.
const CONTACTS_PER_QUERY: usize = 100;

/// This number's addresses, to find it among a group's participants.
#[derive(Debug, Clone, Default)]
pub(crate) struct Own {
    pub pn: Option<WaJid>,
    pub lid: Option<WaJid>,
}

impl Own {
    pub(crate) fn of(client: &Client) -> Self {
        Own { pn: client.pn(), lid: client.lid() }
    }

    /// Whether `jid` is one of our addresses (any device).
    fn is(&self, jid: &WaJid) -> bool {
        [&self.pn, &self.lid]
            .into_iter()
            .flatten()
            .any(|own| own.server == jid.server && own.user == jid.user)
    }

    fn is_participant(&self, p: &WaParticipant) -> bool {
        [Some(&p.jid), p.phone_number.as_ref(), p.lid.as_ref()]
            .into_iter()
            .flatten()
            .any(|j| self.is(j))
    }
}

/// Our JID of the library's, without a device; `None` for servers we do not model.
fn ours(jid: &WaJid) -> Option<Jid> {
    convert_jid(&jid.to_non_ad().to_string()).map(|j| j.to_non_device())
}

/// One group in a list.
pub(crate) fn summary(meta: &GroupMetadata, own: &Own) -> Option<GroupSummary> {
    let size = match meta.participants.len() {
        // The list of participating groups may come without participants.
        0 => meta.size.unwrap_or(0),
        n => u32::try_from(n).unwrap_or(u32::MAX),
    };
    Some(GroupSummary {
        jid: ours(&meta.id)?,
        subject: meta.subject.clone(),
        size,
        is_admin: meta.participants.iter().any(|p| p.is_admin() && own.is_participant(p)),
    })
}

/// A group with its participants.
pub(crate) fn info(meta: &GroupMetadata, own: &Own) -> Option<GroupInfo> {
    Some(GroupInfo {
        summary: summary(meta, own)?,
        participants: meta.participants.iter().map(participant).collect(),
    })
}

/// A participant's phone JID and LID, whichever way the group addresses it.
pub(crate) fn participant(p: &WaParticipant) -> GroupParticipant {
    let (phone, lid) = if p.jid.is_lid() {
        (p.phone_number.as_ref(), Some(&p.jid))
    } else {
        (Some(&p.jid), p.lid.as_ref())
    };
    GroupParticipant {
        jid: phone.filter(|j| j.is_pn()).and_then(ours),
        lid: lid.filter(|j| j.is_lid()).and_then(ours),
        is_admin: p.is_admin(),
    }
}

/// What a failed group query means for the caller.
pub(crate) fn group_error(err: &GroupError) -> DriverError {
    if let Some(r) = err.server_rejection() {
        return match r.code {
            // item-not-found, forbidden (not a participant), not-authorized (left or removed).
            404 | 403 | 401 => DriverError::NotFound(format!(
                "this number is not in that group, or the group does not exist (WhatsApp error \
                 {}{})",
                r.code,
                if r.text.is_empty() { String::new() } else { format!(": {}", r.text) }
            )),
            _ => refusal(&r, "the group query"),
        };
    }
    if err.is_transport_unavailable() {
        return DriverError::NotConnected;
    }
    match err {
        GroupError::InvalidRequest(m) => DriverError::rejected(m.clone()),
        other => DriverError::Transport(other.to_string()),
    }
}

/// What a server's error answer to `what` means: a busy server (a 5xx, or an error of type
/// `wait`) is worth a retry, anything else is a refusal a retry would not change.
pub(crate) fn refusal(r: &ServerRejection<'_>, what: &str) -> DriverError {
    let text = if r.text.is_empty() { String::new() } else { format!(": {}", r.text) };
    if r.code >= 500 || r.error_type == Some("wait") {
        DriverError::Transport(format!("WhatsApp could not answer {what} (error {}{text})", r.code))
    } else {
        DriverError::refused(r.code, format!("WhatsApp refused {what} (error {}{text})", r.code))
    }
}

/// The groups this number is in, by subject.
pub(crate) async fn list_groups(client: &Client) -> Result<Vec<GroupSummary>, DriverError> {
    let groups = client.groups().get_participating().await.map_err(|e| group_error(&e))?;
    let own = Own::of(client);
    let mut list: Vec<GroupSummary> = groups.values().filter_map(|m| summary(m, &own)).collect();
    list.sort_by(|a, b| {
        a.subject.to_lowercase().cmp(&b.subject.to_lowercase()).then_with(|| a.jid.cmp(&b.jid))
    });
    Ok(list)
}

/// One group with its participants.
pub(crate) async fn group(client: &Client, jid: &Jid) -> Result<GroupInfo, DriverError> {
    if !jid.is_group() {
        return Err(DriverError::NotFound(format!("{jid} is not a group")));
    }
    let wa: WaJid = jid
        .to_string()
        .parse()
        .map_err(|e| DriverError::rejected(format!("bad group JID {jid}: {e}")))?;
    let meta = client.groups().get_metadata(&wa).await.map_err(|e| group_error(&e))?;
    info(&meta, &Own::of(client))
        .ok_or_else(|| DriverError::NotFound(format!("{jid} is not a group WhatsApp described")))
}

/// One answer of an existence query, in the shape the matching below needs (the library's
/// result cannot be built outside it).
#[derive(Debug, Clone, Default)]
pub(crate) struct Found {
    /// The account's phone JID.
    pub pn: Option<WaJid>,
    pub lid: Option<WaJid>,
    pub registered: bool,
}

impl From<&whatsapp_rust::features::IsOnWhatsAppResult> for Found {
    fn from(r: &whatsapp_rust::features::IsOnWhatsAppResult) -> Self {
        // A phone query answers with the phone JID first; a LID-first answer carries the
        // phone JID beside it.
        let (pn, lid) = if r.jid.is_lid() {
            (r.pn_jid.clone(), Some(r.jid.clone()))
        } else {
            (Some(r.jid.clone()), r.lid.clone())
        };
        Found { pn, lid, registered: r.is_registered }
    }
}

/// The status of each of `phones`, matched by number; `None` where no answer names it.
pub(crate) fn match_contacts(phones: &[Phone], found: &[Found]) -> Vec<Option<ContactStatus>> {
    let by_user: HashMap<&str, &Found> = found
        .iter()
        .filter_map(|f| Some((f.pn.as_ref().filter(|j| j.is_pn())?.user.as_str(), f)))
        .collect();
    phones.iter().map(|phone| by_user.get(phone.digits()).map(|f| status(phone, f))).collect()
}

/// The status of `phone` from its answer.
pub(crate) fn status(phone: &Phone, f: &Found) -> ContactStatus {
    if !f.registered {
        return ContactStatus { phone: phone.clone(), on_whatsapp: false, jid: None, lid: None };
    }
    ContactStatus {
        phone: phone.clone(),
        on_whatsapp: true,
        jid: f.pn.as_ref().filter(|j| j.is_pn()).and_then(ours),
        lid: f.lid.as_ref().filter(|j| j.is_lid()).and_then(ours),
    }
}

/// Which of `phones` have an account, in order. Phones go in batches; a phone no answer names
/// by its number (WhatsApp may answer with the account's canonical number, e.g. a Brazilian
/// mobile without its ninth digit) is asked alone, so that its answer, whatever the number
/// in it, is its own.
pub(crate) async fn check_contacts(
    client: &Client,
    phones: &[Phone],
) -> Result<Vec<ContactStatus>, DriverError> {
    let mut out = Vec::with_capacity(phones.len());
    for batch in phones.chunks(CONTACTS_PER_QUERY) {
        let found = query(client, batch).await?;
        for (phone, matched) in batch.iter().zip(match_contacts(batch, &found)) {
            let status = match matched {
                Some(s) => s,
                None => {
                    let alone = query(client, std::slice::from_ref(phone)).await?;
                    let best = alone.iter().find(|f| f.registered).or(alone.first());
                    match best {
                        Some(f) => status(phone, f),
                        None => ContactStatus {
                            phone: phone.clone(),
                            on_whatsapp: false,
                            jid: None,
                            lid: None,
                        },
                    }
                }
            };
            out.push(status);
        }
    }
    Ok(out)
}

async fn query(client: &Client, phones: &[Phone]) -> Result<Vec<Found>, DriverError> {
    let jids: Vec<WaJid> = phones.iter().map(|p| WaJid::pn(p.digits())).collect();
    let results = client.contacts().is_on_whatsapp(&jids).await.map_err(|e| {
        if let Some(r) = e.server_rejection() {
            refusal(&r, "the contact check")
        } else if e.is_transport_unavailable() {
            DriverError::NotConnected
        } else {
            DriverError::Transport(e.to_string())
        }
    })?;
    Ok(results.iter().map(Found::from).collect())
}

#[cfg(test)]
#[path = "directory_tests.rs"]
mod tests;
