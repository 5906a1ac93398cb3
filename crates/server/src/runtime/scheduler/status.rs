//! A message's status changes: stored first, then recorded as `message.status`, one stripe lock
//! per message so that a receipt racing the send's own ack cannot reorder its events.

use bzapper_driver::ReceiptStatus;
use bzapper_store::MessageStatus;

use crate::events::message::MessageStatusChanged;
use crate::events::Event;
use crate::model::ids::{InstanceId, MessageId};

use super::chosen::ChosenBy;
use super::{update, Scheduler};

impl Scheduler {
    /// A delivery or read receipt for a message this number sent.
    pub async fn receipt(&self, instance_id: &str, wa_id: &str, status: ReceiptStatus) {
        let msg = match self.store.find_message_by_wa_id(instance_id, wa_id).await {
            Ok(Some(m)) => m,
            Ok(None) => return, // not one of ours (sent from the phone itself)
            Err(e) => {
                tracing::warn!(error = %e, "looking up a receipt's message failed");
                return;
            }
        };
        let status = match status {
            ReceiptStatus::Delivered => MessageStatus::Delivered,
            ReceiptStatus::Read => MessageStatus::Read,
        };
        let instance_id = Some(instance_id.to_string());
        self.set_status(&msg.id, &msg.tenant_id, status, instance_id, None).await;
    }

    /// The message ends `sent`, `failed` or `expired`: it leaves memory and the queue quota's count, then
    /// its final status is stored and recorded.
    pub(super) async fn end(
        &self,
        id: &str,
        tenant_id: &str,
        status: MessageStatus,
        instance_id: Option<String>,
        error: Option<String>,
    ) {
        self.lock().finished(id);
        self.set_status(id, tenant_id, status, instance_id, error).await;
    }

    /// The message expired before its send: it ends `expired` (a forced one keeps its
    /// number).
    pub(super) async fn expire(&self, m: &bzapper_store::MessageRecord) {
        let instance = if m.forced { m.instance_id.clone() } else { None };
        self.end(&m.id, &m.tenant_id, MessageStatus::Expired, instance, None).await;
    }

    /// Stores the status of message `id` of `tenant_id`, then records it. False when the
    /// stored message did not take it (a receipt moved it further, or it expired).
    pub(super) async fn set_status(
        &self,
        id: &str,
        tenant_id: &str,
        status: MessageStatus,
        instance_id: Option<String>,
        error: Option<String>,
    ) -> bool {
        self.set_status_chosen(id, tenant_id, status, instance_id, error, None).await
    }

    /// [`Scheduler::set_status`], storing why the number was chosen with it.
    pub(super) async fn set_status_chosen(
        &self,
        id: &str,
        tenant_id: &str,
        status: MessageStatus,
        instance_id: Option<String>,
        error: Option<String>,
        chosen_by: Option<ChosenBy>,
    ) -> bool {
        if let Some(m) = self.lock().held.get_mut(id) {
            m.instance_id = instance_id.clone();
        }
        let _order = self.status_locks[self.stripe(id)].lock().await;
        let mut u = update(status, instance_id.clone(), error.clone());
        u.chosen_by = chosen_by.map(|c| c.as_str().to_string());
        match self.store.update_message(id, &u).await {
            Ok(true) => {}
            // A receipt already moved it further (delivered before the ack was stored), or
            // it expired or a campaign cancel failed it meanwhile.
            Ok(false) => return false,
            Err(e) => {
                tracing::error!(message = %id, error = %e, "saving a message status failed")
            }
        }
        self.record_event(id, tenant_id, status, instance_id, error).await;
        true
    }

    /// Records a status change already stored (the expiry sweep stores many at once).
    pub(super) async fn record_status(
        &self,
        id: &str,
        tenant_id: &str,
        status: MessageStatus,
        instance_id: Option<String>,
        error: Option<String>,
    ) {
        let _order = self.status_locks[self.stripe(id)].lock().await;
        self.record_event(id, tenant_id, status, instance_id, error).await;
    }

    fn stripe(&self, id: &str) -> usize {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        (h.finish() % self.status_locks.len() as u64) as usize
    }

    async fn record_event(
        &self,
        id: &str,
        tenant_id: &str,
        status: MessageStatus,
        instance_id: Option<String>,
        error: Option<String>,
    ) {
        let inst = instance_id.clone();
        let inst = inst.as_deref();
        let event = Event::MessageStatus(MessageStatusChanged {
            message_id: MessageId::new(id),
            status: status.as_str(),
            instance_id: instance_id.map(InstanceId::from),
            error,
        });
        if let Err(e) = self.recorder.record(tenant_id, inst, event).await {
            tracing::warn!(error = %e, "recording message.status failed");
        }
    }
}
