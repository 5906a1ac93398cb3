//! Turns an inbound message into its `message.received` event: learns LID ↔ phone mappings
//! from it, normalises the sender, chat and mentions with every mapping the store knows, and
//! recognises a numbered reply to the last menu this number sent to the chat.
//!
//! [`Inbound`] does this off the supervisor's loop, so a burst of inbound messages never holds
//! up a number's state events (a ban must leave rotation at once). Each number's messages are
//! handled by one task, in arrival order, and queued on the recorder without waiting for the
//! disk: the recorder's group commit then writes a burst in a few transactions, keeping their
//! order in the event ids.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use bzapper_core::menu::{Menu, MenuOption, MAX_OPTIONS};
use bzapper_core::Jid;
use bzapper_driver::{InboundContent, InboundMessage};
use bzapper_store::{InboundRecord, Store, StoreError};
use tokio::sync::mpsc;

use crate::events::message::{MenuReply, MessageReceived};
use crate::events::received::{message_received_data, rich_fields, Resolved};
use crate::events::recorder::Recorder;
use crate::events::Event;
use crate::model::ids::MessageId;

/// Tasks resolving inbound messages; a number always goes to the same one.
const SHARDS: usize = 4;

/// An inbound message to resolve and record as `message.received`.
pub struct InboundJob {
    pub tenant_id: String,
    pub instance_id: String,
    /// The number's own JID and LID, for `mentions_me`.
    pub own: (Option<String>, Option<String>),
    pub message: InboundMessage,
}

/// Resolves and records inbound messages, in order per number, off the caller's task.
pub struct Inbound {
    shards: Vec<mpsc::UnboundedSender<InboundJob>>,
}

/// The gateway's own URL (`http://host:port`, no trailing slash), which media links in events
/// start with; empty makes them paths.
type PublicUrl = Arc<str>;

impl Inbound {
    /// `public_url` is the gateway's own URL (start-up binds the listener first, so it is
    /// known); media links in `message.received` start with it.
    pub fn spawn(store: Arc<dyn Store>, recorder: Arc<Recorder>, public_url: &str) -> Self {
        let public_url: PublicUrl = public_url.trim_end_matches('/').into();
        let shards = (0..SHARDS)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(run(store.clone(), recorder.clone(), public_url.clone(), rx));
                tx
            })
            .collect();
        Inbound { shards }
    }

    /// Hands the message over and returns at once.
    pub fn push(&self, job: InboundJob) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        job.instance_id.hash(&mut h);
        let shard = (h.finish() % self.shards.len() as u64) as usize;
        if self.shards[shard].send(job).is_err() {
            tracing::error!("the inbound message task has stopped; a message was not recorded");
        }
    }
}

async fn run(
    store: Arc<dyn Store>,
    recorder: Arc<Recorder>,
    public_url: PublicUrl,
    mut rx: mpsc::UnboundedReceiver<InboundJob>,
) {
    while let Some(job) = rx.recv().await {
        record_event(store.as_ref(), &recorder, &public_url, job).await;
    }
}

async fn record_event(
    store: &dyn Store,
    recorder: &Recorder,
    public_url: &PublicUrl,
    job: InboundJob,
) {
    let own = (job.own.0.as_deref(), job.own.1.as_deref());
    match received_data(store, &job.tenant_id, &job.instance_id, own, &job.message).await {
        Ok(mut data) => {
            let base: &str = public_url;
            let link = format!(
                "{base}/v1/instances/{}/media/{}",
                job.instance_id,
                percent_encoding::utf8_percent_encode(&job.message.id, PATH_SEGMENT)
            );
            let quoted = quoted_gateway_id(store, &job).await;
            rich_fields(&mut data, &job.message, &link, quoted);
            // Queued in order; the recorder logs a write that fails. The index entry goes in
            // the event's own commit: a client answering the event can quote it at once, and a
            // burst costs no commit more than its events.
            let index = index_record(&job);
            let queued = recorder
                .submit_indexed(
                    &job.tenant_id,
                    Some(&job.instance_id),
                    Event::MessageReceived(Box::new(data)),
                    index,
                )
                .await;
            drop(queued);
        }
        Err(e) => tracing::error!(
            instance = %job.instance_id, error = %e, "resolving an inbound message failed"
        ),
    }
}

/// Characters escaped in a URL path segment (a WhatsApp id is usually plain hex).
const PATH_SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// The longest text kept in the index (a quote's preview needs only its start).
const INDEXED_TEXT_CHARS: usize = 1024;

/// What keeps the message findable by id: a reply or reaction may name it, its media may be
/// fetched. A reaction is not indexed (nothing quotes a reaction).
fn index_record(job: &InboundJob) -> Option<InboundRecord> {
    let m = &job.message;
    let (kind, media) = match &m.content {
        InboundContent::Reaction { .. } => return None,
        InboundContent::Text => ("text", None),
        InboundContent::Media(media) => {
            (media.media_kind.as_str(), serde_json::to_value(media).ok())
        }
        InboundContent::Location(_) => ("location", None),
        InboundContent::Contact(_) => ("contact", None),
    };
    Some(InboundRecord {
        tenant_id: job.tenant_id.clone(),
        instance_id: job.instance_id.clone(),
        wa_id: m.id.clone(),
        chat: m.chat.to_string(),
        sender: m.sender.to_string(),
        text: m.text.chars().take(INDEXED_TEXT_CHARS).collect(),
        kind: kind.to_string(),
        media,
        received_at: m.at,
    })
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

pub async fn received_data(
    store: &dyn Store,
    tenant_id: &str,
    instance_id: &str,
    own: (Option<&str>, Option<&str>),
    m: &InboundMessage,
) -> Result<MessageReceived, StoreError> {
    // Learn: a LID sender with its phone beside it (or the other way round).
    let (lid, phone) = match (&m.sender, &m.sender_alt) {
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
    let sender_phone = match phone {
        Some(p) => Some(p.to_non_device()),
        None => phone_of(store, tenant_id, &m.sender).await?,
    };
    let sender_lid = match lid {
        Some(l) => Some(l.to_non_device()),
        None if m.sender.is_lid() => Some(m.sender.to_non_device()),
        None => match &sender_phone {
            Some(p) => store
                .lid_for_phone(tenant_id, &p.to_string())
                .await?
                .and_then(|l| Jid::parse(&l).ok()),
            None => None,
        },
    };
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

#[cfg(test)]
mod tests;
