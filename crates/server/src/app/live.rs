//! The use cases that talk to WhatsApp through a number's live connection on this node: the
//! number's groups (participants by phone JID where the LID's phone is known), the file of a
//! received media message, and picking the number that asks WhatsApp about contacts.

use std::sync::Arc;

use bzapper_core::{Jid, Status};
use bzapper_driver::{Connection, GroupInfo, GroupSummary, InboundMedia};
use bzapper_store::{InstanceRecord, Store};
use rand::seq::SliceRandom;

use crate::app::error::{AppError, AppResult};
use crate::media::blobs::BlobRead;
use crate::media::MediaStore;
use crate::model::ids::{InstanceId, TenantId};
use crate::runtime::supervisor::Supervisor;

/// A group participant, addressed by phone JID where known.
pub struct Participant {
    pub jid: Option<Jid>,
    pub lid: Option<Jid>,
    pub is_admin: bool,
}

pub struct LiveNumbers {
    store: Arc<dyn Store>,
    supervisor: Arc<Supervisor>,
    media: Arc<MediaStore>,
}

fn unavailable(rec: &InstanceRecord) -> AppError {
    AppError::conflict(
        "instance_unavailable",
        format!(
            "the instance is {}; it must be connected to ask WhatsApp",
            rec.state.status.as_str()
        ),
    )
}

impl LiveNumbers {
    pub fn new(store: Arc<dyn Store>, supervisor: Arc<Supervisor>, media: Arc<MediaStore>) -> Self {
        LiveNumbers { store, supervisor, media }
    }

    /// The tenant's instance `id` and its live connection; `not_found` for an unknown
    /// instance, `instance_unavailable` when it is not connected (here).
    pub async fn connection(
        &self,
        tenant_id: &TenantId,
        id: &InstanceId,
    ) -> AppResult<(InstanceRecord, Arc<dyn Connection>)> {
        let rec =
            self.store.get_instance(tenant_id, id).await?.ok_or_else(AppError::no_such_resource)?;
        if rec.state.status != Status::Connected {
            return Err(unavailable(&rec));
        }
        let conn = self.supervisor.connection(id).await.ok_or_else(|| unavailable(&rec))?;
        Ok((rec, conn))
    }

    /// Marks a message the number received read (WhatsApp's read receipt: the contact sees
    /// blue ticks). `message` is its WhatsApp id, as `message.received` gives it.
    /// `not_found` for an unknown instance or a message this number did not receive (or
    /// one no longer indexed), `instance_unavailable` when the number is not connected here.
    pub async fn mark_read(
        &self,
        tenant_id: &TenantId,
        id: &InstanceId,
        message: &str,
    ) -> AppResult<()> {
        let rec =
            self.store.get_instance(tenant_id, id).await?.ok_or_else(AppError::no_such_resource)?;
        let received = self
            .store
            .find_inbound(tenant_id.as_str(), message)
            .await?
            .filter(|r| r.instance_id == rec.id)
            .ok_or_else(AppError::no_such_resource)?;
        let (_, conn) = self.connection(tenant_id, id).await?;
        let chat = Jid::parse(&received.chat)
            .map_err(|e| AppError::internal(format!("a stored chat is not a JID: {e}")))?;
        // In a group the receipt names who wrote the message; in a direct chat the chat does.
        let sender =
            match chat.is_group() {
                true => Some(Jid::parse(&received.sender).map_err(|e| {
                    AppError::internal(format!("a stored sender is not a JID: {e}"))
                })?),
                false => None,
            };
        conn.mark_read(&chat, sender.as_ref(), std::slice::from_ref(&received.wa_id)).await?;
        self.supervisor.unread().forget_message(&rec.id, &received.wa_id);
        // Its chat counts everything received up to it as read (a failure only leaves the
        // chat's unread count as it was).
        let read = self.store.mark_chat_read(&rec.id, &received.chat_jid, received.received_at);
        if let Err(e) = read.await {
            tracing::warn!(error = %e, "storing a chat's read position failed");
        }
        Ok(())
    }

    /// The groups the number is in.
    pub async fn groups(
        &self,
        tenant_id: &TenantId,
        id: &InstanceId,
    ) -> AppResult<Vec<GroupSummary>> {
        let (_, conn) = self.connection(tenant_id, id).await?;
        Ok(conn.groups().await?)
    }

    /// One group with its participants. Every LID ↔ phone pair the network tells is learned
    /// (it serves every later LID message); a participant known only by LID gets its phone
    /// from what was learned before.
    pub async fn group(
        &self,
        tenant_id: &TenantId,
        id: &InstanceId,
        group: &Jid,
    ) -> AppResult<(GroupSummary, Vec<Participant>)> {
        let (_, conn) = self.connection(tenant_id, id).await?;
        let GroupInfo { summary, participants: members } = conn.group(group).await?;
        let mut participants = Vec::with_capacity(members.len());
        for p in members {
            let (mut phone_jid, lid) = (p.jid, p.lid.map(|l| l.to_non_device()));
            if let (Some(pj), Some(l)) = (&phone_jid, &lid) {
                let (l, pj) = (l.to_string(), pj.to_non_device().to_string());
                let _ = self.store.learn_lid(tenant_id, &l, &pj).await;
            }
            if phone_jid.is_none() {
                if let Some(l) = &lid {
                    let known = self.store.phone_for_lid(tenant_id, &l.to_string()).await?;
                    phone_jid = known.and_then(|p| Jid::parse(&p).ok());
                }
            }
            participants.push(Participant {
                jid: phone_jid.map(|j| j.to_non_device()),
                lid,
                is_admin: p.is_admin,
            });
        }
        Ok((summary, participants))
    }

    /// The file of a message number `id` received, from the media store's cache or, the first
    /// time, downloaded and decrypted through the number into a local file, then stored in the
    /// cache (until the media retention) and read back from it.
    pub async fn received_media(
        &self,
        tenant_id: &TenantId,
        id: &InstanceId,
        message_id: &str,
    ) -> AppResult<(BlobRead, InboundMedia)> {
        let no_media = |why: &str| AppError::not_found(why.to_string());
        let rec = self.store.find_inbound(tenant_id, message_id).await?;
        let rec = rec.filter(|r| *id == *r.instance_id).ok_or_else(|| {
            no_media("this instance received no message with that id (or it is past retention)")
        })?;
        let media = rec
            .media
            .and_then(|v| serde_json::from_value::<InboundMedia>(v).ok())
            .ok_or_else(|| no_media("that message has no media file"))?;
        let cached = self.media.inbound_cached(tenant_id, id, &rec.wa_id).await;
        if let Some(read) = cached.map_err(AppError::internal)? {
            return Ok((read, media));
        }
        let (_, conn) = self.connection(tenant_id, id).await?;
        // Downloaded to a file of its own, stored whole: a reader never sees half a file.
        let part = self.media.download_file();
        conn.download_media(&media, part.path()).await?;
        self.media
            .cache_inbound(tenant_id, id, &rec.wa_id, part)
            .await
            .map_err(AppError::internal)?;
        let read = self.media.inbound_cached(tenant_id, id, &rec.wa_id).await;
        let read = read.map_err(AppError::internal)?.ok_or_else(|| {
            AppError::internal("the received file was stored but cannot be read back")
        })?;
        Ok((read, media))
    }

    /// The number that asks WhatsApp about contacts: the one named, or a connected, healthy
    /// number of the tenant (of the pool, when named) whose connection runs on this node.
    pub async fn pick_asker(
        &self,
        tenant_id: &TenantId,
        instance_id: Option<&InstanceId>,
        pool: Option<&str>,
    ) -> AppResult<(InstanceRecord, Arc<dyn Connection>)> {
        if let Some(id) = instance_id {
            return self.connection(tenant_id, id).await;
        }
        let mut candidates: Vec<InstanceRecord> = self
            .store
            .list_instances(tenant_id)
            .await?
            .into_iter()
            .filter(|r| r.state.status == Status::Connected)
            .filter(|r| pool.is_none_or(|p| p == r.pool))
            .collect();
        // Healthy numbers first; a number out of rotation is asked only when nothing else is up.
        candidates.shuffle(&mut rand::thread_rng());
        candidates.sort_by_key(|r| std::cmp::Reverse(r.health_score));
        for rec in candidates {
            if let Some(conn) = self.supervisor.connection(&rec.id).await {
                return Ok((rec, conn));
            }
        }
        Err(AppError::conflict(
            "no_number_available",
            "no connected number of this tenant (on this node) can ask WhatsApp",
        ))
    }

    /// Remembers a LID ↔ phone pair the network told (a failure is logged: it only costs a
    /// later look-up).
    pub async fn learn_lid(&self, tenant_id: &TenantId, lid: &Jid, phone: &Jid) {
        let (j, l) = (phone.to_non_device().to_string(), lid.to_non_device().to_string());
        if let Err(e) = self.store.learn_lid(tenant_id, &l, &j).await {
            tracing::warn!(error = %e, "storing a learned LID failed");
        }
    }
}
