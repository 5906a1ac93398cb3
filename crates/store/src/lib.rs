//! Storage of bZapper: one trait per concern (tenants and keys, instances, sealed sessions,
//! pools, the event log, messages, webhooks, campaigns, received messages, contact checks,
//! conversations, chats, alert deliveries, the dashboard's time series),
//! combined in the [`Store`] supertrait, implemented once over sqlx ([`SqlStore`], `src/sql`)
//! for SQLite ([`SqliteStore`]) and PostgreSQL ([`PgStore`], for several nodes), each with
//! its migrations (numbered alike) run at open.
//! Session values and proxy URLs are sealed with [`Sealer`] before they reach the disk.

mod alerts;
mod chats;
mod cluster;
#[cfg(test)]
mod conformance;
mod contacts;
mod conversations;
mod inbound;
mod model;
mod postgres;
mod seal;
mod series;
mod sql;
mod sqlite;
mod time;

pub use alerts::{AlertAttempt, AlertDeliveryFilter, AlertDeliveryRecord, AlertStatus, AlertStore};
pub use chats::{ChatEntry, ChatEntryPosition, ChatPosition, ChatQuery, ChatRecord, ChatStore};
pub use cluster::*;
pub use contacts::{ContactCheckRecord, ContactCheckStore};
pub use conversations::{ContactHistory, ConversationRecord, ConversationStore, StartedBy};
pub use inbound::{InboundRecord, InboundStore};
pub use model::*;
pub use postgres::{PgParts, PgStore};
pub use seal::{MasterKey, SealError, Sealer};
pub use series::{
    bucket_start, NumberPoint, NumberSample, PoolPoint, PoolSample, SeriesRange, SeriesStore,
};
pub use sql::{Backend, SqlStore};
pub use sqlite::{SqliteParts, SqliteStore};
pub use time::{now_millis, truncate_to_millis};

use async_trait::async_trait;
use bzapper_core::InstanceState;
use chrono::{DateTime, Utc};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write (for example a duplicate instance name).
    #[error("already exists: {0}")]
    Conflict(String),
    /// The master key cannot open what this data dir was sealed with.
    #[error("{0}")]
    WrongMasterKey(String),
    /// A sealed value could not be opened.
    #[error("a sealed value could not be opened: {0}")]
    Unsealable(String),
    #[error("database error: {0}")]
    Database(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Tenants and their API keys. Keys are stored as SHA-256 hashes only.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Creates the tenant together with its first key, atomically.
    async fn create_tenant(&self, tenant: &Tenant, first_key: &ApiKeyRecord) -> Result<()>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;
    async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>>;
    /// Deletes the tenant and everything it owns (keys, instances, sessions, pools, events).
    /// Returns false when it did not exist.
    async fn delete_tenant(&self, id: &str) -> Result<bool>;
    async fn add_api_key(&self, key: &ApiKeyRecord) -> Result<()>;
    /// Returns false when the key did not exist or belongs to another tenant.
    async fn revoke_api_key(&self, tenant_id: &str, key_id: &str) -> Result<bool>;
    /// The key with this public id, with its hash, for the caller to compare in constant time.
    async fn find_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>>;
}

/// Instances (numbers) and their state.
#[async_trait]
pub trait InstanceStore: Send + Sync {
    /// Inserts a new instance. A duplicate name within the tenant is `Conflict`.
    async fn create_instance(&self, instance: &InstanceRecord) -> Result<()>;
    /// The instance if it exists and belongs to `tenant_id`.
    async fn get_instance(&self, tenant_id: &str, id: &str) -> Result<Option<InstanceRecord>>;
    /// The instance by id alone (for the supervisor).
    async fn get_instance_by_id(&self, id: &str) -> Result<Option<InstanceRecord>>;
    async fn list_instances(&self, tenant_id: &str) -> Result<Vec<InstanceRecord>>;
    /// How many instances the tenant has (the quota check of every create: reading them all
    /// made linking ten thousand numbers quadratic).
    async fn count_instances(&self, tenant_id: &str) -> Result<u64>;
    /// A page of [`InstanceStore::list_instances`], in its order (`created_at`, then `id`):
    /// at most `limit` numbers after `after` (the last one of the previous page).
    async fn list_instances_page(
        &self,
        tenant_id: &str,
        after: Option<&InstanceKey>,
        limit: u32,
    ) -> Result<Vec<InstanceRecord>>;
    /// Every instance of every tenant (the supervisor resumes them at start).
    async fn list_all_instances(&self) -> Result<Vec<InstanceRecord>>;
    /// Replaces name, pool, warming_days, proxy, limits and quiet hours. Returns false when
    /// missing.
    async fn update_instance_settings(&self, instance: &InstanceRecord) -> Result<bool>;
    /// Records a state change and the identity facts that came with it.
    async fn update_instance_state(&self, id: &str, change: &StateChange) -> Result<()>;
    /// [`InstanceStore::update_instance_state`] for many numbers in one transaction (a
    /// restart marks every resumed number `connecting` at once: one commit, not one each).
    async fn update_instance_states(&self, changes: &[(String, StateChange)]) -> Result<()>;
    /// Deletes the instance and its session. Returns false when missing.
    async fn delete_instance(&self, tenant_id: &str, id: &str) -> Result<bool>;
    /// Records the number's health score.
    async fn set_instance_health(&self, id: &str, score: u8) -> Result<()>;
    /// When the number's temporary ban ends, while one is stored (see
    /// [`StateChange::ban_until`]).
    async fn ban_expiry(&self, id: &str) -> Result<Option<DateTime<Utc>>>;
    /// Every number with a stored ban expiry, as (instance id, expiry), soonest first.
    async fn ban_expiries(&self) -> Result<Vec<(String, DateTime<Utc>)>>;
    /// Forgets the number's ban expiry (an operator acted on it meanwhile), so that nothing
    /// connects it when the ban ends. Returns whether one was stored.
    async fn clear_ban_expiry(&self, id: &str) -> Result<bool>;
    /// Records when the number began re-warming (`None`: it is not re-warming). Returns false
    /// when the number does not exist.
    async fn set_rewarm_from(&self, id: &str, from: Option<DateTime<Utc>>) -> Result<bool>;
}

/// Outbound messages: the durable send queue.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Stores a newly accepted message. A second message with the same tenant and
    /// idempotency key is `Conflict`.
    async fn insert_message(&self, m: &MessageRecord) -> Result<()>;
    /// The message holding this idempotency key, if any.
    async fn find_by_idempotency_key(
        &self,
        tenant_id: &str,
        key: &str,
    ) -> Result<Option<MessageRecord>>;
    /// Frees an expired idempotency key so it can be used again.
    async fn release_idempotency_key(&self, tenant_id: &str, key: &str) -> Result<()>;
    async fn get_message(&self, tenant_id: &str, id: &str) -> Result<Option<MessageRecord>>;
    async fn get_message_by_id(&self, id: &str) -> Result<Option<MessageRecord>>;
    async fn list_messages(
        &self,
        tenant_id: &str,
        filter: &MessageFilter,
    ) -> Result<Vec<MessageRecord>>;
    /// Records a status change; `sent_at` is set when the message is first known to have gone
    /// out. An `expired` message never changes again (returns false), and a `failed` one is never
    /// taken again (`queued` or `sending` return false: a cancel may fail a message a number is
    /// about to take). Receipts only move forward: `sent`, `delivered` and `read` never replace a
    /// later one of the three (a delivery receipt may arrive before the send's own ack is stored).
    /// Returns whether the message changed.
    async fn update_message(&self, id: &str, update: &MessageUpdate) -> Result<bool>;
    /// The message this number sent with this WhatsApp id.
    async fn find_message_by_wa_id(
        &self,
        instance_id: &str,
        wa_id: &str,
    ) -> Result<Option<MessageRecord>>;
    /// The message any number of the tenant sent with this WhatsApp id (the newest, should
    /// two share it), including one still queued.
    async fn find_message_by_wa_id_for_tenant(
        &self,
        tenant_id: &str,
        wa_id: &str,
    ) -> Result<Option<MessageRecord>>;
    /// Every queued or sending message of every tenant, oldest first (resumed at start).
    async fn pending_messages(&self) -> Result<Vec<MessageRecord>>;
    /// The next queued messages of one queue in accept order, after `after` (from its start
    /// when `None`), at most `limit`: the scheduler reads the queue a page at a time.
    /// Only messages due by `due_by` are read (one without a `send_at` always is): a message
    /// scheduled for later stays in the store until then.
    async fn queued_page(
        &self,
        queue: &QueueKey,
        after: Option<&QueuePosition>,
        due_by: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<QueuedRef>>;
    /// Per queue holding queued messages scheduled after `after` (by `send_at`), the earliest
    /// such moment: when that queue must be read again.
    async fn scheduled_queues(
        &self,
        after: DateTime<Utc>,
    ) -> Result<Vec<(QueueKey, DateTime<Utc>)>>;
    /// Marks `expired` every queued message whose `expires_at` is at or before `now`, in one
    /// statement, and returns them.
    async fn expire_due(&self, now: DateTime<Utc>) -> Result<Vec<ExpiredRef>>;
    /// The earliest `expires_at` of a queued message, if any.
    async fn next_expiry(&self) -> Result<Option<DateTime<Utc>>>;
    /// Every queue holding at least one queued message.
    async fn queued_queues(&self) -> Result<Vec<QueueKey>>;
    /// Queued messages by (tenant, pool), forced ones counted in their pool.
    async fn queued_counts(&self) -> Result<Vec<(String, String, u64)>>;
    /// Messages outside campaigns still queued or being sent, by (tenant, pool): what the
    /// per-tenant and per-pool queue quotas count.
    async fn unfinished_direct_counts(&self) -> Result<Vec<(String, String, u64)>>;
    /// The messages left `sending` (in doubt after a crash), oldest first.
    async fn sending_messages(&self) -> Result<Vec<MessageRecord>>;
    /// How many messages the number sent since `since` (for `stats.sent_today`).
    async fn count_sent_since(&self, instance_id: &str, since: DateTime<Utc>) -> Result<u64>;
    /// When the number's sends since `since` went out (the caps count them after a restart).
    async fn sent_times_since(
        &self,
        instance_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>>;
    /// When the number last sent a message, if it ever did (re-warming after a long idle).
    async fn last_sent_at(&self, instance_id: &str) -> Result<Option<DateTime<Utc>>>;
    /// The same for every number of the tenant at once: (instance id, count).
    async fn count_sent_by_instance(
        &self,
        tenant_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, u64)>>;
}

/// Campaigns (bulk sends) and their recipients. A campaign's messages are ordinary messages
/// (see [`MessageStore`]) carrying its id in `campaign_id`.
#[async_trait]
pub trait CampaignStore: Send + Sync {
    /// Stores the campaign and every recipient in one transaction: all or nothing. A
    /// duplicate id (of the campaign, or of a recipient index) or idempotency key within the
    /// tenant is `Conflict`.
    async fn create_campaign(
        &self,
        campaign: &CampaignRecord,
        recipients: &[CampaignRecipient],
    ) -> Result<()>;
    /// The campaign if it exists and belongs to `tenant_id`.
    async fn get_campaign(&self, tenant_id: &str, id: &str) -> Result<Option<CampaignRecord>>;
    /// The tenant's campaign created with this idempotency key, if any.
    async fn find_campaign_by_key(
        &self,
        tenant_id: &str,
        key: &str,
    ) -> Result<Option<CampaignRecord>>;
    /// The tenant's campaigns, newest first.
    async fn list_campaigns(&self, tenant_id: &str) -> Result<Vec<CampaignRecord>>;
    /// Every tenant's campaigns that are running or paused, oldest first.
    async fn active_campaigns(&self) -> Result<Vec<CampaignRecord>>;
    /// Moves the campaign to `to` if its status is one of `from`; sets `ended_at` when `to`
    /// ends it. Returns whether it moved.
    async fn set_campaign_status(
        &self,
        id: &str,
        from: &[CampaignStatus],
        to: CampaignStatus,
        at: DateTime<Utc>,
    ) -> Result<bool>;
    /// Up to `limit` recipients from index `from` on, in index order.
    async fn campaign_recipients(
        &self,
        campaign_id: &str,
        from: u32,
        limit: u32,
    ) -> Result<Vec<CampaignRecipient>>;
    /// Records that every recipient below `next_index` was handed to the queue. Never moves
    /// back (a smaller value changes nothing).
    async fn advance_campaign(
        &self,
        campaign_id: &str,
        next_index: u32,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// The campaign's messages counted by (instance, status).
    async fn campaign_message_counts(&self, campaign_id: &str) -> Result<Vec<CampaignCount>>;
    /// Fails, with `error`, every message of the campaign that is `queued` and bound to no
    /// number (one held for its number after a crash may have gone out, and is left alone);
    /// returns their ids. Call it after the scheduler has withdrawn them from its queue.
    async fn fail_queued_campaign_messages(
        &self,
        campaign_id: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<String>>;
}

/// Webhooks and their durable deliveries.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn create_webhook(&self, w: &WebhookRecord) -> Result<()>;
    async fn list_webhooks(&self, tenant_id: &str) -> Result<Vec<WebhookRecord>>;
    /// Every webhook of every tenant (the fan-out matches events against them).
    async fn all_webhooks(&self) -> Result<Vec<WebhookRecord>>;
    async fn get_webhook(&self, tenant_id: &str, id: &str) -> Result<Option<WebhookRecord>>;
    /// Makes `secret` the webhook's secret and keeps the one it replaces as its previous
    /// secret until `previous_expires_at` (a previous one still kept is dropped). Returns the
    /// webhook as it stands after, `None` when missing.
    async fn rotate_webhook_secret(
        &self,
        tenant_id: &str,
        id: &str,
        secret: &str,
        previous_expires_at: DateTime<Utc>,
    ) -> Result<Option<WebhookRecord>>;
    /// Deletes the webhook and its deliveries. False when missing.
    async fn delete_webhook(&self, tenant_id: &str, id: &str) -> Result<bool>;
    /// Every tenant's events with id > `after_id`, oldest first (the fan-out's input).
    async fn all_events_after(&self, after_id: i64, limit: u32) -> Result<Vec<Event>>;
    /// The last event id the fan-out turned into deliveries.
    async fn fanout_cursor(&self) -> Result<i64>;
    /// Stores new deliveries and moves the fan-out cursor, in one transaction (a crash
    /// between the two neither loses nor doubles a delivery). A delivery of a (webhook, event)
    /// pair that already has one is left out; returns how many were stored.
    async fn enqueue_deliveries(&self, deliveries: &[DeliveryRecord], cursor: i64) -> Result<u64>;
    /// Pending deliveries due at `now`, taken round-robin across webhooks: each webhook's
    /// oldest first, at most `per_webhook` of each, ordered by turn (every webhook's oldest,
    /// then every webhook's second…), at most `limit` in all. So one webhook's backlog never
    /// hides another webhook's due delivery from a scan.
    async fn due_deliveries(
        &self,
        now: DateTime<Utc>,
        per_webhook: u32,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>>;
    /// When the next pending delivery is due, if any.
    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>>;
    async fn record_attempt(&self, id: &str, attempt: &DeliveryAttempt) -> Result<()>;
    async fn list_deliveries(&self, webhook_id: &str, limit: u32) -> Result<Vec<DeliveryRecord>>;
    async fn get_delivery(&self, webhook_id: &str, id: &str) -> Result<Option<DeliveryRecord>>;
    /// Makes a delivery pending again, due now (a re-send asked for by API).
    async fn requeue_delivery(&self, id: &str, now: DateTime<Utc>) -> Result<()>;
    async fn put_alert(&self, alert: &AlertConfig) -> Result<()>;
    async fn get_alert(&self, tenant_id: &str) -> Result<Option<AlertConfig>>;
    async fn delete_alert(&self, tenant_id: &str) -> Result<bool>;
}

/// LID ↔ phone mappings learned from every source the drivers offer, per tenant: what one
/// tenant's numbers learned (or its simulator said) never shows in another tenant's events.
#[async_trait]
pub trait LidStore: Send + Sync {
    /// Records that, for the tenant, `lid` (`<n>@lid`) is `phone_jid` (`<n>@s.whatsapp.net`).
    /// A chat known until now by the LID alone becomes the phone JID's chat (merged into it
    /// when both exist), in the same transaction.
    async fn learn_lid(&self, tenant_id: &str, lid: &str, phone_jid: &str) -> Result<()>;
    /// The phone JID of a LID, when the tenant knows it.
    async fn phone_for_lid(&self, tenant_id: &str, lid: &str) -> Result<Option<String>>;
    /// The LID of a phone JID, when the tenant knows it.
    async fn lid_for_phone(&self, tenant_id: &str, phone_jid: &str) -> Result<Option<String>>;
    /// The newest message with a menu that `instance_id` sent to `chat` (for numbered replies).
    async fn last_menu_to(&self, instance_id: &str, chat: &str) -> Result<Option<MessageRecord>>;
}

/// One number's protocol state, as opaque values under keys, each sealed with the instance id
/// (and key) as associated data.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// `Err(Unsealable)` when the value exists but cannot be opened.
    async fn load_session_value(&self, instance_id: &str, key: &str) -> Result<Option<Vec<u8>>>;
    async fn save_session_value(&self, instance_id: &str, key: &str, value: &[u8]) -> Result<()>;
    /// Every value whose key starts with `prefix`, ordered by key. One unsealable value fails
    /// the whole read (`Err(Unsealable)`).
    async fn load_session_values_with_prefix(
        &self,
        instance_id: &str,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>>;
    /// Applies `writes` in order, atomically and durably: after `Ok` all of them survive a
    /// crash, after `Err` none of them took effect.
    async fn write_session_values(&self, instance_id: &str, writes: &[SessionWrite]) -> Result<()>;
    async fn clear_session(&self, instance_id: &str) -> Result<()>;
    async fn has_session(&self, instance_id: &str) -> Result<bool>;
    /// The ids of every number with a stored session ([`SessionStore::has_session`] for all
    /// of them in one query: a restart resumes thousands).
    async fn instances_with_session(&self) -> Result<std::collections::HashSet<String>>;
}

/// Where a page of a tenant's numbers ends: the last number's `created_at` and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceKey {
    pub created_at: DateTime<Utc>,
    pub id: String,
}

/// One change to a number's protocol state, applied by [`SessionStore::write_session_values`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionWrite {
    Put {
        key: String,
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    /// Deletes every value whose key starts with `prefix`.
    DeletePrefix {
        prefix: String,
    },
}

/// Pools, their rotation strategy and sending settings. Pool `default` always exists (it is
/// implied).
#[async_trait]
pub trait PoolStore: Send + Sync {
    /// The tenant's pools: every pool with a stored row plus every pool an instance names,
    /// plus `default`; a pool without a row has `round_robin` and [`PoolSettings::default`].
    async fn list_pools(&self, tenant_id: &str) -> Result<Vec<Pool>>;
    /// Creates the pool or changes its strategy only (a new pool gets the default settings).
    async fn put_pool(&self, tenant_id: &str, name: &str, strategy: Strategy) -> Result<Pool>;
    /// Creates the pool or replaces its strategy and every setting with `pool`'s.
    async fn save_pool(&self, tenant_id: &str, pool: &Pool) -> Result<()>;
}

/// The append-only event log that SSE, webhooks and alerts read from.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends and returns the event with its monotonic id.
    async fn append_event(&self, event: &NewEvent) -> Result<Event> {
        let mut v = self.append_events(std::slice::from_ref(event)).await?;
        v.pop().ok_or_else(|| StoreError::Database("an append returned no event".into()))
    }
    /// Appends every event in one transaction (one fsync), all or none, and returns them with
    /// their ids, increasing in the order given. A reader sees the whole batch or none of it,
    /// and never a later id before an earlier one.
    async fn append_events(&self, events: &[NewEvent]) -> Result<Vec<Event>> {
        self.append_events_indexed(events, &[]).await
    }
    /// [`EventLog::append_events`], with the received messages the events report indexed
    /// in the same transaction (see [`InboundStore::record_inbound`]): one commit for both, and
    /// a `message.received` event is never seen before its message can be named.
    async fn append_events_indexed(
        &self,
        events: &[NewEvent],
        inbound: &[InboundRecord],
    ) -> Result<Vec<Event>>;
    /// [`EventLog::append_events_indexed`] for events that must be recorded once: an event
    /// whose `dedupe_key` is already in the log, or on an earlier event of `events`, is not
    /// appended (checked and written in one transaction, serialized with every other append,
    /// and backed by a unique index), so a message WhatsApp redelivers is recorded once
    /// however often and however concurrently it comes. Returns one entry per event, in the
    /// order given: the appended event with its id, or `None` for a duplicate. A key lasts as
    /// long as its event (pruning frees it).
    async fn append_events_once(
        &self,
        events: &[KeyedEvent],
        inbound: &[InboundRecord],
    ) -> Result<Vec<Option<Event>>>;
    /// The tenant's events with id > `after_id`, oldest first, at most `limit`.
    async fn events_after(&self, tenant_id: &str, after_id: i64, limit: u32) -> Result<Vec<Event>>;
    /// How many events of `kind` each of the tenant's numbers had since `since`.
    async fn count_events_by_instance(
        &self,
        tenant_id: &str,
        kind: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, u64)>>;
    /// The id of the tenant's newest event, 0 when it has none.
    async fn latest_event_id(&self, tenant_id: &str) -> Result<i64>;
    /// The id of the newest event of any tenant, 0 when the log is empty (where a node's
    /// cluster-wide event feed starts).
    async fn latest_event_id_all(&self) -> Result<i64>;
    /// Removes events older than `before`; returns how many.
    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// Everything the server needs from storage.
#[async_trait]
pub trait Store:
    TenantStore
    + InstanceStore
    + SessionStore
    + PoolStore
    + EventLog
    + MessageStore
    + WebhookStore
    + LidStore
    + CampaignStore
    + InboundStore
    + ContactCheckStore
    + ConversationStore
    + ChatStore
    + AlertStore
    + SeriesStore
{
    /// A trivial query, for `/readyz`.
    async fn ping(&self) -> Result<()>;
}

/// Applies a transition's outcome to a record in memory the way `update_instance_state` does
/// on disk (kept here so both stay in step).
pub fn apply_state_change(rec: &mut InstanceRecord, change: &StateChange) {
    rec.state = change.state.clone();
    if let Some(p) = &change.identity {
        rec.phone = Some(p.phone.clone());
        rec.jid = Some(p.jid.clone());
        rec.lid = p.lid.clone();
    }
    if let Some(t) = change.connected_at {
        rec.connected_at = Some(t);
        rec.first_connected_at.get_or_insert(t);
    }
    if change.clear_identity {
        rec.phone = None;
        rec.jid = None;
        rec.lid = None;
    }
}

impl StateChange {
    pub fn state(state: InstanceState) -> Self {
        StateChange {
            state,
            identity: None,
            connected_at: None,
            clear_identity: false,
            ban_until: None,
        }
    }
}
