//! Turns an inbound message into its `message.received` event: learns LID ↔ phone mappings
//! from it, normalises the sender, chat and mentions with every mapping the store knows,
//! recognises a numbered reply to the last menu this number sent to the chat, keeps the
//! number's conversation with a 1:1 contact (by its phone JID when known), and queues the
//! event on the recorder with the message's dedupe key.

use std::sync::{Arc, LazyLock};

use bzapper_core::menu::{Menu, MenuOption, MAX_OPTIONS};
use bzapper_core::Jid;
use bzapper_driver::{InboundContent, InboundMessage};
use bzapper_store::{InboundRecord, StartedBy, Store, StoreError};

use crate::events::message::{MenuReply, MessageReceived};
use crate::events::received::{message_received_data, rich_fields, Resolved};
use crate::events::recorder::{Recorder, Recording};
use crate::events::Event;
use crate::model::ids::MessageId;
use crate::runtime::unread::Unread;

/// An inbound message to resolve and record as `message.received`.
pub struct InboundJob {
    pub tenant_id: String,
    pub instance_id: String,
    /// The number's own JID and LID, for `mentions_me`.
    pub own: (Option<String>, Option<String>),
    pub message: InboundMessage,
}

/// What resolving and recording a message needs.
pub(super) struct Parts {
    pub store: Arc<dyn Store>,
    pub recorder: Arc<Recorder>,
    pub public_url: PublicUrl,
    /// Where a contact's unread messages are noted, for "seen before reply".
    pub unread: Arc<Unread>,
}

/// The gateway's own URL (`http://host:port`, no trailing slash), which media links in events
/// start with; empty makes them paths.
pub(super) type PublicUrl = Arc<str>;

/// Resolves the message and queues its `message.received`, with its dedupe key, on the
/// recorder without waiting for the disk (events keep the order they are queued in).
pub(super) async fn submit(parts: &Parts, job: &InboundJob) -> Result<Recording, StoreError> {
    let store = parts.store.as_ref();
    let own = (job.own.0.as_deref(), job.own.1.as_deref());
    let mut data =
        received_data(store, &job.tenant_id, &job.instance_id, own, &job.message).await?;
    let base: &str = &parts.public_url;
    let link = format!(
        "{base}/v1/instances/{}/media/{}",
        job.instance_id,
        percent_encoding::utf8_percent_encode(&job.message.id, PATH_SEGMENT)
    );
    // A contact's message in a direct chat is unread until the number reads it or replies
    // (a reaction is not something one reads).
    if data.chat.kind == "direct" && !matches!(job.message.content, InboundContent::Reaction { .. })
    {
        parts.unread.note(&job.instance_id, &data.chat.jid, &job.message.chat, &job.message.id);
    }
    if data.chat.kind == "direct" {
        // The contact wrote: the conversation starts (their side) or goes on. A failure costs
        // only a sticky choice or a pre-check later.
        let (t, at) = (&job.tenant_id, job.message.at);
        let r = store.touch_conversation(t, &job.instance_id, &data.chat.jid, StartedBy::In, at);
        if let Err(e) = r.await {
            tracing::warn!(error = %e, "storing a conversation failed");
        }
    }
    let quoted = quoted_gateway_id(store, job).await;
    rich_fields(&mut data, &job.message, &link, quoted);
    // The index entry goes in the event's own commit: a client answering the event can quote
    // it at once, and a burst costs no commit more than its events.
    let index = Some(index_record(job, &data));
    let event = Event::MessageReceived(Box::new(data));
    let key = dedupe_key(&job.instance_id, &job.message);
    Ok(parts.recorder.submit_received(&job.tenant_id, &job.instance_id, event, index, key).await)
}

/// What names a received message across WhatsApp's redeliveries: the number, and the chat,
/// sender and id as the network addressed them (a stanza id is unique only within its chat
/// and sender).
fn dedupe_key(instance_id: &str, m: &InboundMessage) -> String {
    format!("{instance_id}\n{}\n{}\n{}", m.chat, m.sender, m.id)
}

/// Characters escaped in a URL path segment (a WhatsApp id is usually plain hex).
const PATH_SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// The longest text kept in the index (a quote's preview needs only its start).
const INDEXED_TEXT_CHARS: usize = 1024;

/// What keeps the message findable by id (a reply or reaction may name it, its media may be
/// fetched) and shows it in its chat: by the chat and sender as resolved for the event
/// (phone JIDs where known). A reaction is indexed too, for its chat (its text is the emoji,
/// `reply_to` the message it reacts to); the index's look-up by id skips it.
fn index_record(job: &InboundJob, data: &MessageReceived) -> InboundRecord {
    let m = &job.message;
    let (kind, media, text, reply_to) = match &m.content {
        InboundContent::Reaction { target_id, emoji } => {
            ("reaction", None, emoji.clone(), Some(target_id.clone()))
        }
        InboundContent::Text => ("text", None, m.text.clone(), m.reply_to.clone()),
        InboundContent::Media(media) => (
            media.media_kind.as_str(),
            serde_json::to_value(media).ok(),
            m.text.clone(),
            m.reply_to.clone(),
        ),
        InboundContent::Location(_) => ("location", None, m.text.clone(), m.reply_to.clone()),
        InboundContent::Contact(_) => ("contact", None, m.text.clone(), m.reply_to.clone()),
    };
    InboundRecord {
        tenant_id: job.tenant_id.clone(),
        instance_id: job.instance_id.clone(),
        wa_id: m.id.clone(),
        chat: m.chat.to_string(),
        sender: m.sender.to_string(),
        text: text.chars().take(INDEXED_TEXT_CHARS).collect(),
        kind: kind.to_string(),
        media,
        received_at: m.at,
        chat_jid: data.chat.jid.clone(),
        sender_jid: data.sender.jid.clone(),
        sender_lid: data.sender.lid.clone(),
        push_name: data.sender.push_name.clone(),
        reply_to,
    }
}

/// The gateway id of the message this one quotes or reacts to, when this number sent it.
async fn quoted_gateway_id(store: &dyn Store, job: &InboundJob) -> Option<String> {
    let target = match (&job.message.content, &job.message.reply_to) {
        (InboundContent::Reaction { target_id, .. }, _) => target_id,
        (_, Some(q)) => q,
        _ => return None,
    };
    store.find_message_by_wa_id(&job.instance_id, target).await.ok().flatten().map(|m| m.id)
}

async fn phone_of(store: &dyn Store, tenant_id: &str, j: &Jid) -> Result<Option<Jid>, StoreError> {
    if !j.is_lid() {
        return Ok(j.phone().map(|p| p.jid()));
    }
    let found = store.phone_for_lid(tenant_id, &j.to_non_device().to_string()).await?;
    Ok(found.and_then(|p| Jid::parse(&p).ok()))
}

/// A contact's phone JID and LID (each when known, without device parts), from the address
/// the network used and the other one it gave beside it (`alt`). A LID given with its phone
/// teaches the tenant's `lid_map`; otherwise the map fills in what the network left out.
/// Shared by `message.received` (the sender) and `call.received` (the caller).
pub async fn contact_addresses(
    store: &dyn Store,
    tenant_id: &str,
    addr: &Jid,
    alt: Option<&Jid>,
) -> Result<(Option<Jid>, Option<Jid>), StoreError> {
    // Learn: a LID contact with its phone beside it (or the other way round).
    let (lid, phone) = match (addr, alt) {
        (s, Some(a)) if s.is_lid() && !a.is_lid() => (Some(s.clone()), Some(a.clone())),
        (s, Some(a)) if !s.is_lid() && a.is_lid() => (Some(a.clone()), Some(s.clone())),
        _ => (None, None),
    };
    if let (Some(l), Some(p)) = (&lid, &phone) {
        let (l, p) = (l.to_non_device().to_string(), p.to_non_device().to_string());
        // Most messages repeat a mapping already known: reading it back is far cheaper than a
        // durable write per message. Both directions, since the newest LID of a phone wins.
        let known = store.phone_for_lid(tenant_id, &l).await?.as_deref() == Some(p.as_str())
            && store.lid_for_phone(tenant_id, &p).await?.as_deref() == Some(l.as_str());
        if !known {
            store.learn_lid(tenant_id, &l, &p).await?;
        }
    }
    let phone = match phone {
        Some(p) => Some(p.to_non_device()),
        None => phone_of(store, tenant_id, addr).await?,
    };
    let lid = match lid {
        Some(l) => Some(l.to_non_device()),
        None if addr.is_lid() => Some(addr.to_non_device()),
        None => match &phone {
            Some(p) => store
                .lid_for_phone(tenant_id, &p.to_string())
                .await?
                .and_then(|l| Jid::parse(&l).ok()),
            None => None,
        },
    };
    Ok((phone, lid))
}

pub async fn received_data(
    store: &dyn Store,
    tenant_id: &str,
    instance_id: &str,
    own: (Option<&str>, Option<&str>),
    m: &InboundMessage,
) -> Result<MessageReceived, StoreError> {
    let (sender_phone, sender_lid) =
        contact_addresses(store, tenant_id, &m.sender, m.sender_alt.as_ref()).await?;
    let chat = if m.chat.is_group() {
        m.chat.clone()
    } else {
        phone_of(store, tenant_id, &m.chat).await?.unwrap_or_else(|| m.chat.to_non_device())
    };
    let mut mentions = Vec::with_capacity(m.mentions.len());
    for x in &m.mentions {
        mentions.push(phone_of(store, tenant_id, x).await?.unwrap_or_else(|| x.to_non_device()));
    }
    let menu_reply = menu_reply(store, instance_id, &chat, &m.chat, &m.text).await?;
    let r = Resolved { sender_phone, sender_lid, chat, mentions };
    Ok(message_received_data(m, &r, own, menu_reply))
}

/// A menu with every option a menu may have: a text that picks none of its options picks
/// none of any menu's, and needs no look-up of the chat's last menu.
static LARGEST_MENU: LazyLock<Menu> = LazyLock::new(|| Menu {
    text: None,
    options: (1..=MAX_OPTIONS)
        .map(|n| MenuOption { id: n.to_string(), title: n.to_string() })
        .collect(),
});

/// `{"message_id", "option", "option_id"}` when `text` picks an option of the last menu this
/// number sent to the chat (by its phone JID or as the chat was addressed).
async fn menu_reply(
    store: &dyn Store,
    instance_id: &str,
    chat: &Jid,
    as_addressed: &Jid,
    text: &str,
) -> Result<Option<MenuReply>, StoreError> {
    if LARGEST_MENU.match_reply(text).is_none() {
        return Ok(None);
    }
    let mut last = store.last_menu_to(instance_id, &chat.to_string()).await?;
    if last.is_none() && as_addressed != chat {
        last = store.last_menu_to(instance_id, &as_addressed.to_non_device().to_string()).await?;
    }
    let Some(sent) = last else { return Ok(None) };
    let Some(menu) = sent.menu.and_then(|v| serde_json::from_value::<Menu>(v).ok()) else {
        return Ok(None);
    };
    Ok(menu.match_reply(text).map(|(n, o)| MenuReply {
        message_id: MessageId::from(sent.id),
        option: n,
        option_id: o.id.clone(),
    }))
}
