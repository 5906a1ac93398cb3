//! Conversations: the chats of the tenant's numbers, newest first, and one chat's messages in
//! both directions, newest first. What a chat is addressed by: its contact's phone JID (also
//! for a contact that wrote by LID, once the LID's phone is known; the store moves such a
//! chat to the phone JID when it learns it, and a chat's history reads both addresses), or
//! the group's JID. Only what is within the chat retention window shows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bzapper_core::Jid;
use bzapper_store::{
    ChatEntry, ChatEntryPosition, ChatPosition, ChatQuery, ChatRecord, InstanceRecord, Store,
};
use chrono::{DateTime, Utc};

use crate::app::error::{AppError, AppResult};
use crate::model::ids::{InstanceId, TenantId};
use crate::runtime::supervisor::Supervisor;

/// A chat as listed: the stored chat, its newest message and, for a group, its subject.
pub struct ChatSummary {
    pub chat: ChatRecord,
    pub last_message: Option<ChatEntry>,
    /// A group's subject, when its number is connected on this node to say it.
    pub subject: Option<String>,
}

/// A page of something listed newest first, and where the next page starts.
pub struct Page<T, P> {
    pub items: Vec<T>,
    /// `None` on the last page.
    pub next: Option<P>,
}

pub struct Chats {
    store: Arc<dyn Store>,
    supervisor: Arc<Supervisor>,
    /// `None`: kept forever.
    retention: Option<Duration>,
}

impl Chats {
    pub fn new(
        store: Arc<dyn Store>,
        supervisor: Arc<Supervisor>,
        retention: Option<Duration>,
    ) -> Self {
        Chats { store, supervisor, retention }
    }

    /// The oldest moment shown.
    fn since(&self) -> DateTime<Utc> {
        match self.retention.and_then(|r| chrono::Duration::from_std(r).ok()) {
            Some(r) => crate::model::time::now() - r,
            None => DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    /// The tenant's instance, `not_found` otherwise.
    async fn instance(&self, tenant_id: &TenantId, id: &InstanceId) -> AppResult<InstanceRecord> {
        self.store.get_instance(tenant_id, id).await?.ok_or_else(AppError::no_such_resource)
    }

    /// The tenant's chats (one number's with `instance_id`), newest first, `limit` a page.
    pub async fn list(
        &self,
        tenant_id: &TenantId,
        instance_id: Option<&InstanceId>,
        after: Option<&ChatPosition>,
        limit: u32,
    ) -> AppResult<Page<ChatSummary, ChatPosition>> {
        if let Some(id) = instance_id {
            self.instance(tenant_id, id).await?;
        }
        let number = instance_id.map(|i| i.as_str());
        let since = self.since();
        let mut chats =
            self.store.list_chats(tenant_id, number, since, after, limit.saturating_add(1)).await?;
        let next = more(&mut chats, limit).map(|c| c.position());
        let subjects = self.subjects(tenant_id, &chats).await;
        let mut items = Vec::with_capacity(chats.len());
        for mut chat in chats {
            if chat.lid.is_none() && !chat.jid.ends_with("@g.us") && !chat.jid.ends_with("@lid") {
                chat.lid = self.store.lid_for_phone(tenant_id, &chat.jid).await?;
            }
            let jids = addresses(&chat.jid, chat.lid.as_deref());
            let query = ChatQuery {
                tenant_id,
                instance_id: Some(&chat.instance_id),
                jids: &jids,
                since,
                before: None,
                limit: 1,
            };
            let last_message = self.store.chat_entries(&query).await?.pop();
            let subject = subjects.get(&(chat.instance_id.clone(), chat.jid.clone())).cloned();
            items.push(ChatSummary { chat, last_message, subject });
        }
        Ok(Page { items, next })
    }

    /// The subjects of the groups among `chats`, from their numbers' live connections on this
    /// node (one look-up per number; a number not connected here gives none).
    async fn subjects(
        &self,
        tenant_id: &TenantId,
        chats: &[ChatRecord],
    ) -> HashMap<(String, String), String> {
        let mut out = HashMap::new();
        let mut numbers: Vec<&str> = chats
            .iter()
            .filter(|c| c.jid.ends_with("@g.us"))
            .map(|c| c.instance_id.as_str())
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        for number in numbers {
            let Some(conn) = self.supervisor.connection(&InstanceId::from(number)).await else {
                continue;
            };
            match conn.groups().await {
                Ok(groups) => {
                    for g in groups {
                        out.insert((number.to_string(), g.jid.to_string()), g.subject);
                    }
                }
                Err(e) => {
                    tracing::debug!(tenant = %tenant_id, instance = number, error = %e, "no group subjects")
                }
            }
        }
        out
    }

    /// One chat's messages, newest first, before `before`, `limit` a page. `jid` is what
    /// the client named the chat by: a phone JID or number, a LID, or a group JID.
    pub async fn messages(
        &self,
        tenant_id: &TenantId,
        jid: &Jid,
        instance_id: Option<&InstanceId>,
        before: Option<&ChatEntryPosition>,
        limit: u32,
    ) -> AppResult<Page<ChatEntry, ChatEntryPosition>> {
        if let Some(id) = instance_id {
            self.instance(tenant_id, id).await?;
        }
        let jids = self.chat_addresses(tenant_id, jid).await?;
        let query = ChatQuery {
            tenant_id,
            instance_id: instance_id.map(|i| i.as_str()),
            jids: &jids,
            since: self.since(),
            before,
            limit: limit.saturating_add(1),
        };
        let mut entries = self.store.chat_entries(&query).await?;
        let next = more(&mut entries, limit).map(ChatEntry::position);
        Ok(Page { items: entries, next })
    }

    /// Every address a chat's messages may be stored under: the contact's phone JID and LID
    /// (whichever are known), or the group's JID.
    async fn chat_addresses(&self, tenant_id: &TenantId, jid: &Jid) -> AppResult<Vec<String>> {
        let jid = jid.to_non_device();
        if jid.is_group() {
            return Ok(vec![jid.to_string()]);
        }
        let (phone, lid) = if jid.is_lid() {
            let phone = self.store.phone_for_lid(tenant_id, &jid.to_string()).await?;
            (phone, Some(jid.to_string()))
        } else {
            let lid = self.store.lid_for_phone(tenant_id, &jid.to_string()).await?;
            (Some(jid.to_string()), lid)
        };
        Ok(addresses(phone.as_deref().or(lid.as_deref()).unwrap_or_default(), lid.as_deref()))
    }
}

/// `jid`, and `lid` when it is another address.
fn addresses(jid: &str, lid: Option<&str>) -> Vec<String> {
    let mut out = vec![jid.to_string()];
    if let Some(l) = lid.filter(|l| *l != jid) {
        out.push(l.to_string());
    }
    out
}

/// Cuts `items` (read with one more than a page) to `limit`; the last kept item when there is
/// more to read.
fn more<T>(items: &mut Vec<T>, limit: u32) -> Option<&T> {
    if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last()
    } else {
        None
    }
}
