//! Accepting and reading outbound messages: the use case behind `POST /v1/messages` (the
//! idempotency window, the upload and quoted-message look-ups, the number or pool check, the
//! durable insert and its race, the hand-off to the scheduler) and the two reads. The HTTP
//! layer has already checked the request's shape and built the record.

use std::sync::Arc;

use bzapper_core::content::MediaKind;
use bzapper_core::{Jid, Status};
use bzapper_driver::MessageRef;
use bzapper_store::{MessageFilter, MessageRecord, MessageStatus, Store, StoreError};
use chrono::{DateTime, Duration, Utc};

use crate::app::error::{AppError, AppResult};
use crate::app::quotas::{self, QuotaLimits, QUEUE_RETRY_AFTER_SECS};
use crate::media::MediaStore;
use crate::model::content::{Reaction, StoredContent};
use crate::model::ids::{MessageId, TenantId};
use crate::model::time::now;
use crate::runtime::scheduler::Scheduler;

/// How long an `Idempotency-Key` holds.
pub const IDEMPOTENCY_HOURS: i64 = 24;

/// What the accept path must still look up before the message can be stored.
#[derive(Debug, Default, PartialEq)]
pub struct Pending {
    /// An uploaded file to find, with the kind it must fit.
    pub media_id: Option<(String, MediaKind)>,
    /// The message a reaction targets, and the emoji.
    pub reaction: Option<(String, String)>,
    /// The message a reply quotes.
    pub reply_to: Option<String>,
}

/// A checked send request: the record to store (status `queued`), the pool the client named
/// (if any), its content and what is left to look up.
pub struct NewMessage {
    pub record: MessageRecord,
    pub pool: Option<String>,
    pub content: StoredContent,
    pub pending: Pending,
    pub idempotency_key: Option<String>,
}

/// What the caller learns of an accepted message: the record itself goes on to the scheduler
/// without being copied (its text may be 16 KiB, and this is the hot path).
pub struct Receipt {
    pub id: String,
    /// The number the client forced, if it did.
    pub forced_instance: Option<String>,
    pub to: Jid,
    pub created_at: DateTime<Utc>,
    pub send_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Receipt {
    fn of(m: &MessageRecord) -> Self {
        Receipt {
            id: m.id.clone(),
            forced_instance: m.forced.then(|| m.instance_id.clone()).flatten(),
            to: m.to.clone(),
            created_at: m.created_at,
            send_at: m.send_at,
            expires_at: m.expires_at,
        }
    }
}

pub struct Messages {
    store: Arc<dyn Store>,
    scheduler: Arc<Scheduler>,
    media: Arc<MediaStore>,
    quotas: QuotaLimits,
}

impl Messages {
    pub fn new(
        store: Arc<dyn Store>,
        scheduler: Arc<Scheduler>,
        media: Arc<MediaStore>,
        quotas: QuotaLimits,
    ) -> Self {
        Messages { store, scheduler, media, quotas }
    }

    /// Stores the message and hands it to the scheduler (`Scheduler::submit`: one group
    /// commit with the concurrent accepts). A repeated idempotency key within the window
    /// answers with the first message and stores nothing.
    pub async fn accept(&self, tenant_id: &TenantId, new: NewMessage) -> AppResult<Receipt> {
        let NewMessage { record: mut rec, pool, content, pending, idempotency_key: key } = new;
        if let Some(k) = &key {
            if let Some(first) = self.store.find_by_idempotency_key(tenant_id, k).await? {
                if now() - first.created_at < Duration::hours(IDEMPOTENCY_HOURS) {
                    return Ok(Receipt::of(&first));
                }
                self.store.release_idempotency_key(tenant_id, k).await?;
            }
        }
        rec.idempotency_key = key.clone();
        self.resolve(tenant_id, &mut rec, content, pending).await?;
        if let Some(iid) = rec.instance_id.clone() {
            let inst = self
                .store
                .get_instance(tenant_id, &iid)
                .await?
                .ok_or_else(|| AppError::not_found("no such instance"))?;
            if inst.state.status != Status::Connected {
                return Err(AppError::conflict(
                    "instance_unavailable",
                    format!(
                        "the instance is {}{}; it can send once it is connected",
                        inst.state.status.as_str(),
                        inst.state.reason.map(|r| format!(" ({})", r.as_str())).unwrap_or_default()
                    ),
                ));
            }
            rec.pool = pool.unwrap_or(inst.pool);
        } else if !self.scheduler.has_number_available(tenant_id, &rec.pool).await {
            return Err(AppError::conflict(
                "no_number_available",
                format!("pool `{}` has no connected, healthy number", rec.pool),
            ));
        }
        self.check_queue_room(tenant_id, &rec.pool)?;
        let receipt = Receipt::of(&rec);
        match self.scheduler.submit(rec).await {
            Ok(()) => Ok(receipt),
            // The same key raced in from another request: answer what that one stored.
            Err(StoreError::Conflict(_)) if key.is_some() => {
                let k = key.as_deref().unwrap_or_default();
                let first = self.store.find_by_idempotency_key(tenant_id, k).await?;
                let first =
                    first.ok_or_else(|| AppError::internal("an idempotency key vanished"))?;
                Ok(Receipt::of(&first))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Refuses a message the tenant's queue (or its pool's) has no room for, from the
    /// scheduler's in-memory counts: no store round-trip on the hot path. Concurrent accepts
    /// may pass a limit by the requests in flight at that moment. On a node of several, the
    /// counts are this node's (what it has claimed), so the limits hold per node.
    fn check_queue_room(&self, tenant_id: &TenantId, pool: &str) -> AppResult<()> {
        let (per_tenant, per_pool) = (self.quotas.queued_per_tenant, self.quotas.queued_per_pool);
        if per_tenant.is_unlimited() && per_pool.is_unlimited() {
            return Ok(());
        }
        let queued = self.scheduler.queued(tenant_id, pool);
        let wait = Some(QUEUE_RETRY_AFTER_SECS);
        quotas::check(per_tenant, queued.tenant, 1, "queued messages per tenant", wait)?;
        quotas::check(per_pool, queued.pool, 1, "queued messages per pool", wait)
    }

    /// One of the tenant's messages.
    pub async fn get(&self, tenant_id: &TenantId, id: &MessageId) -> AppResult<MessageRecord> {
        self.store.get_message(tenant_id, id).await?.ok_or_else(AppError::no_such_resource)
    }

    /// The tenant's messages, newest first, as the filter pages them.
    pub async fn list(
        &self,
        tenant_id: &TenantId,
        filter: &MessageFilter,
    ) -> AppResult<Vec<MessageRecord>> {
        Ok(self.store.list_messages(tenant_id, filter).await?)
    }

    /// Looks up what the accept path could not check alone: the upload a media message names,
    /// the message a reaction targets or a reply quotes (which pins the number whose chat holds
    /// it). Fills `rec.content`.
    async fn resolve(
        &self,
        tenant_id: &TenantId,
        rec: &mut MessageRecord,
        mut content: StoredContent,
        pending: Pending,
    ) -> AppResult<()> {
        if let Some((id, kind)) = &pending.media_id {
            // Uploaded here, or on another node of the cluster (copied here then).
            let media = self.media.find(tenant_id, id).await.map_err(AppError::internal)?;
            let Some(media) = media else {
                return Err(AppError::unprocessable(
                    "unknown_media",
                    format!(
                        "no upload `{id}` (it may have expired); upload it with POST /v1/media"
                    ),
                ));
            };
            // Its size against the kind's cap and its bytes against the kind (413 or 422).
            self.media.check_kind(&media, *kind).await?;
        }
        let target_id = pending.reaction.as_ref().map(|r| r.0.clone()).or(pending.reply_to.clone());
        if let Some(target_id) = &target_id {
            let (target, holder) = self.find_target(tenant_id, target_id).await?;
            match &rec.instance_id {
                Some(given) if *given != holder => {
                    return Err(unknown_message(
                        target_id,
                        &format!("is in a chat of instance `{holder}`, not `{given}`"),
                    ))
                }
                _ => {
                    rec.instance_id = Some(holder);
                    rec.forced = true;
                }
            }
            match pending.reaction {
                Some((_, emoji)) => {
                    // A reaction goes to the chat that holds the message.
                    let chat = target.chat.to_non_device();
                    if chat != rec.to && !self.same_contact(tenant_id, &chat, &rec.to).await? {
                        return Err(unknown_message(target_id, &format!("is in chat `{chat}`")));
                    }
                    rec.to = chat;
                    content.reaction = Some(Reaction { target, emoji });
                }
                None => content.reply_to = Some(target),
            }
        }
        rec.content = content.to_column();
        Ok(())
    }

    /// Whether `lid_chat` (a LID) and `to` (a phone JID) are the same contact.
    async fn same_contact(&self, tenant_id: &str, lid_chat: &Jid, to: &Jid) -> AppResult<bool> {
        if !lid_chat.is_lid() {
            return Ok(false);
        }
        let phone = self.store.phone_for_lid(tenant_id, &lid_chat.to_string()).await?;
        Ok(phone.is_some_and(|p| p == to.to_string()))
    }

    /// The message `id` names — one sent here (gateway or WhatsApp id) or one received — and
    /// the number whose chat holds it.
    async fn find_target(&self, tenant_id: &TenantId, id: &str) -> AppResult<(MessageRef, String)> {
        let mut sent = self.store.get_message(tenant_id, id).await?;
        if sent.is_none() {
            sent = self.store.find_message_by_wa_id_for_tenant(tenant_id, id).await?;
        }
        if let Some(m) = sent {
            let went_out = matches!(
                m.status,
                MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Read
            );
            let (true, Some(holder)) = (went_out, m.instance_id.clone()) else {
                return Err(unknown_message(id, &format!("is {}, not sent", m.status.as_str())));
            };
            let chat = m.to;
            let text = (!m.body.is_empty()).then(|| m.body.clone());
            return Ok((
                MessageRef { id: m.wa_id, chat, from_me: true, sender: None, text },
                holder,
            ));
        }
        let Some(r) = self.store.find_inbound(tenant_id, id).await? else {
            return Err(unknown_message(id, "is not one this gateway sent or received"));
        };
        let chat = Jid::parse(&r.chat).map_err(AppError::internal)?;
        let sender = match chat.is_group() {
            true => Some(Jid::parse(&r.sender).map_err(AppError::internal)?),
            false => None,
        };
        let text = (!r.text.is_empty()).then(|| r.text.clone());
        Ok((MessageRef { id: r.wa_id, chat, from_me: false, sender, text }, r.instance_id))
    }
}

fn unknown_message(id: &str, why: &str) -> AppError {
    AppError::unprocessable("unknown_message", format!("message `{id}` {why}"))
}
