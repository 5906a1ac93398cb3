//! Chats: each number's conversation with one contact or group, newest first, and the
//! messages of one chat in both directions, newest first. A chat's messages are the rows the
//! gateway keeps anyway — received ones in the inbound index ([`crate::InboundStore`]), sent
//! ones in `messages` — read together; the `chats` table only lists the chats (kept by
//! triggers in the statements that write those rows, so no path gains a statement or a
//! commit). Pages are keyset pages: each continues strictly after the position the previous
//! one ended at.

use std::cmp::Ordering;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{InboundRecord, MessageRecord, Result};

/// One number's chat with one contact (or group), as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRecord {
    pub tenant_id: String,
    pub instance_id: String,
    /// The contact's phone JID, the group's JID, or the contact's LID while its phone is
    /// unknown.
    pub jid: String,
    /// The contact's LID, when known.
    pub lid: Option<String>,
    /// The name the contact gave itself, from its latest message that carried one.
    pub push_name: Option<String>,
    /// The newest message either way.
    pub last_at: DateTime<Utc>,
    /// Received messages (reactions aside) newer than the last read receipt or reply.
    pub unread: u64,
}

impl ChatRecord {
    /// Where a page ending with this chat ends.
    pub fn position(&self) -> ChatPosition {
        ChatPosition {
            last_at: self.last_at,
            instance_id: self.instance_id.clone(),
            jid: self.jid.clone(),
        }
    }
}

/// A place in the chat list (newest first: by `last_at`, then number, then JID, each
/// descending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatPosition {
    pub last_at: DateTime<Utc>,
    pub instance_id: String,
    pub jid: String,
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEntry {
    Received(InboundRecord),
    Sent(MessageRecord),
}

impl ChatEntry {
    pub fn position(&self) -> ChatEntryPosition {
        match self {
            ChatEntry::Received(r) => ChatEntryPosition::Received {
                at: r.received_at,
                instance_id: r.instance_id.clone(),
                wa_id: r.wa_id.clone(),
            },
            ChatEntry::Sent(m) => ChatEntryPosition::Sent { at: m.created_at, id: m.id.clone() },
        }
    }
}

/// A place in a chat's history. Messages are ordered by time (a received message by when it
/// was sent to the number, a sent one by when it was accepted), then a sent message after a
/// received one of the same millisecond, then by id (bytes): newest first is the reverse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEntryPosition {
    Received { at: DateTime<Utc>, instance_id: String, wa_id: String },
    Sent { at: DateTime<Utc>, id: String },
}

impl ChatEntryPosition {
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            ChatEntryPosition::Received { at, .. } | ChatEntryPosition::Sent { at, .. } => *at,
        }
    }

    fn key(&self) -> (DateTime<Utc>, u8, &str, &str) {
        match self {
            ChatEntryPosition::Received { at, instance_id, wa_id } => (*at, 0, instance_id, wa_id),
            ChatEntryPosition::Sent { at, id } => (*at, 1, id, ""),
        }
    }
}

impl Ord for ChatEntryPosition {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for ChatEntryPosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Which messages of a chat to read.
#[derive(Debug, Clone)]
pub struct ChatQuery<'a> {
    pub tenant_id: &'a str,
    /// One number's messages only; every number of the tenant when `None` (a sent message
    /// still waiting in its pool's queue, with no number yet, shows then only).
    pub instance_id: Option<&'a str>,
    /// Every address the chat's messages may be stored under: its phone JID and the
    /// contact's LID (messages that arrived before the LID's phone was known), or a group's
    /// JID.
    pub jids: &'a [String],
    /// Nothing older (the retention window).
    pub since: DateTime<Utc>,
    /// Only messages before this position (the previous page's last); from the newest when
    /// `None`.
    pub before: Option<&'a ChatEntryPosition>,
    pub limit: u32,
}

#[async_trait]
pub trait ChatStore: Send + Sync {
    /// The tenant's chats (one number's when `instance_id` is given) with a message at or
    /// after `since`, newest first, after `after`, at most `limit`, with their unread counts.
    async fn list_chats(
        &self,
        tenant_id: &str,
        instance_id: Option<&str>,
        since: DateTime<Utc>,
        after: Option<&ChatPosition>,
        limit: u32,
    ) -> Result<Vec<ChatRecord>>;
    /// The chat of one number with one contact or group: by its JID or the contact's LID.
    async fn get_chat(&self, instance_id: &str, jid: &str) -> Result<Option<ChatRecord>>;
    /// One chat's messages, both directions, newest first (see [`ChatEntryPosition`]).
    /// Reactions are messages of their own (kind `reaction`).
    async fn chat_entries(&self, query: &ChatQuery<'_>) -> Result<Vec<ChatEntry>>;
    /// Every message the number received in the chat (by its JID or the contact's LID) up to
    /// `up_to` counts as read. Returns whether the chat exists.
    async fn mark_chat_read(
        &self,
        instance_id: &str,
        jid: &str,
        up_to: DateTime<Utc>,
    ) -> Result<bool>;
    /// Removes the chats with no message since `before`; returns how many. (Their received
    /// messages go with [`crate::InboundStore::prune_inbound`]; sent ones stay in
    /// `messages`, outside the chat view's window.)
    async fn prune_chats(&self, before: DateTime<Utc>) -> Result<u64>;
}
