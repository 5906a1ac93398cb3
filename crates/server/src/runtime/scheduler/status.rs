//! A message's status changes: stored first, then recorded as `message.status`, one stripe lock
//! per message so that a receipt racing the send's own ack cannot reorder its events.

use bzapper_driver::ReceiptStatus;
use bzapper_store::MessageStatus;

use crate::events::message::MessageStatusChanged;
use crate::events::Event;
use crate::model::ids::{InstanceId, MessageId};

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

    /// The message ends `sent` or `failed`: it leaves memory and the queue quota's count, then
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

    /// Stores the status of message `id` of `tenant_id`, then records it.
    pub(super) async fn set_status(
        &self,
        id: &str,
        tenant_id: &str,
        status: MessageStatus,
        instance_id: Option<String>,
        error: Option<String>,
    ) {
        if let Some(m) = self.lock().held.get_mut(id) {
            m.instance_id = instance_id.clone();
        }
        let stripe = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            id.hash(&mut h);
            (h.finish() % self.status_locks.len() as u64) as usize
        };
        let _order = self.status_locks[stripe].lock().await;
        let u = update(status, instance_id.clone(), error.clone());
        match self.store.update_message(id, &u).await {
            Ok(true) => {}
            // A receipt already moved it further (delivered before the ack was stored).
            Ok(false) => return,
            Err(e) => {
                tracing::error!(message = %id, error = %e, "saving a message status failed")
            }
        }
        let event = Event::MessageStatus(MessageStatusChanged {
            message_id: MessageId::new(id),
            status: status.as_str(),
            instance_id: instance_id.map(InstanceId::from),
            error,
        });
        let inst = u.instance_id.as_deref();
        if let Err(e) = self.recorder.record(tenant_id, inst, event).await {
            tracing::warn!(error = %e, "recording message.status failed");
        }
    }
}
