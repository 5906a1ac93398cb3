//! Turns an inbound message into its `message.received` data: learns LID ↔ phone mappings
//! from it, normalises the sender, chat and mentions with every mapping the store knows, and
//! recognises a numbered reply to the last menu this number sent to the chat.

use bzapper_core::menu::Menu;
use bzapper_core::Jid;
use bzapper_driver::InboundMessage;
use bzapper_store::{Store, StoreError};
use serde_json::{json, Value};

use crate::events::{message_received_data, Resolved};

async fn phone_of(store: &dyn Store, j: &Jid) -> Result<Option<Jid>, StoreError> {
    if !j.is_lid() {
        return Ok(j.phone().map(|p| p.jid()));
    }
    let found = store.phone_for_lid(&j.to_non_device().to_string()).await?;
    Ok(found.and_then(|p| Jid::parse(&p).ok()))
}

pub async fn received_data(
    store: &dyn Store,
    instance_id: &str,
    own: (Option<&str>, Option<&str>),
    m: &InboundMessage,
) -> Result<Value, StoreError> {
    // Learn: a LID sender with its phone beside it (or the other way round).
    let (lid, phone) = match (&m.sender, &m.sender_alt) {
        (s, Some(a)) if s.is_lid() && !a.is_lid() => (Some(s.clone()), Some(a.clone())),
        (s, Some(a)) if !s.is_lid() && a.is_lid() => (Some(a.clone()), Some(s.clone())),
        _ => (None, None),
    };
    if let (Some(l), Some(p)) = (&lid, &phone) {
        store.learn_lid(&l.to_non_device().to_string(), &p.to_non_device().to_string()).await?;
    }
    let sender_phone = match phone {
        Some(p) => Some(p.to_non_device()),
        None => phone_of(store, &m.sender).await?,
    };
    let sender_lid = match lid {
        Some(l) => Some(l.to_non_device()),
        None if m.sender.is_lid() => Some(m.sender.to_non_device()),
        None => match &sender_phone {
            Some(p) => store.lid_for_phone(&p.to_string()).await?.and_then(|l| Jid::parse(&l).ok()),
            None => None,
        },
    };
    let chat = if m.chat.is_group() {
        m.chat.clone()
    } else {
        phone_of(store, &m.chat).await?.unwrap_or_else(|| m.chat.to_non_device())
    };
    let mut mentions = Vec::with_capacity(m.mentions.len());
    for x in &m.mentions {
        mentions.push(phone_of(store, x).await?.unwrap_or_else(|| x.to_non_device()));
    }
    let menu_reply = menu_reply(store, instance_id, &chat, &m.chat, &m.text).await?;
    let r = Resolved { sender_phone, sender_lid, chat, mentions };
    Ok(message_received_data(m, &r, own, menu_reply))
}

/// `{"message_id", "option", "option_id"}` when `text` picks an option of the last menu this
/// number sent to the chat (by its phone JID or as the chat was addressed).
async fn menu_reply(
    store: &dyn Store,
    instance_id: &str,
    chat: &Jid,
    as_addressed: &Jid,
    text: &str,
) -> Result<Option<Value>, StoreError> {
    let mut last = store.last_menu_to(instance_id, &chat.to_string()).await?;
    if last.is_none() && as_addressed != chat {
        last = store.last_menu_to(instance_id, &as_addressed.to_non_device().to_string()).await?;
    }
    let Some(sent) = last else { return Ok(None) };
    let Some(menu) = sent.menu.and_then(|v| serde_json::from_value::<Menu>(v).ok()) else {
        return Ok(None);
    };
    Ok(menu
        .match_reply(text)
        .map(|(n, o)| json!({"message_id": sent.id, "option": n, "option_id": o.id})))
}
