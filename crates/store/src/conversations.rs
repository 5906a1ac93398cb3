//! Conversations: which of the tenant's numbers has talked with which 1:1 contact, since
//! when, lately, and who wrote first. What sticky sender (a contact keeps its number) and the
//! first-contact rules (a number writing to someone for the first time) read. Rows go with
//! their number and tenant.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Result;

/// Who wrote first in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StartedBy {
    /// The contact wrote to the number.
    In,
    /// The number wrote to the contact: a first contact.
    Out,
}

impl StartedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            StartedBy::In => "in",
            StartedBy::Out => "out",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "in" => Some(StartedBy::In),
            "out" => Some(StartedBy::Out),
            _ => None,
        }
    }
}

/// One number's conversation with one contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRecord {
    pub tenant_id: String,
    pub instance_id: String,
    /// The contact's phone JID (`<n>@s.whatsapp.net`), or its LID when the phone is unknown.
    pub contact: String,
    pub started_by: StartedBy,
    /// The first message either way (whole milliseconds).
    pub first_at: DateTime<Utc>,
    /// The latest message either way.
    pub last_at: DateTime<Utc>,
}

/// What a pool knows of one contact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactHistory {
    /// The pool's number with the latest conversation at or after the `since` asked for.
    pub sticky_to: Option<String>,
    /// Every number of the pool that has a conversation with the contact, however old.
    pub known_to: Vec<String>,
}

#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Records a message between the number and the contact at `at`: the conversation starts
    /// (`started_by` the side that wrote) or its `last_at` moves forward (never back).
    async fn touch_conversation(
        &self,
        tenant_id: &str,
        instance_id: &str,
        contact: &str,
        started_by: StartedBy,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// The number's conversation with the contact, if they ever talked.
    async fn get_conversation(
        &self,
        instance_id: &str,
        contact: &str,
    ) -> Result<Option<ConversationRecord>>;
    /// For each of `contacts` that some number of the tenant's `pool` talked with (pool by
    /// the instances' `pool` column), its history: one query per call.
    async fn contact_histories(
        &self,
        tenant_id: &str,
        pool: &str,
        contacts: &[String],
        since: DateTime<Utc>,
    ) -> Result<HashMap<String, ContactHistory>>;
    /// When the conversations the number started (first contacts) at or after `since`
    /// began, oldest first.
    async fn first_contacts_since(
        &self,
        instance_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>>;
}
