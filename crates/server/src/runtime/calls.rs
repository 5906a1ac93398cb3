//! What a number does when a contact calls it: with `reject_calls` on it rejects the call at
//! once and, with a `reject_call_message`, queues that text to the caller as an ordinary
//! message forced to the same number (paced, typed and recorded like any send); either way it
//! records `call.received`. The settings are read from the store at each call, so a change
//! applies to the next call without a reconnect.
//!
//! Each call is handled on its own task, off the supervisor's event loop: rejecting is a round
//! trip to the network, and a number's state events must not wait on it.

use std::sync::Arc;

use bzapper_core::Jid;
use bzapper_driver::{Connection, IncomingCall};
use bzapper_store::{InstanceRecord, MessageRecord, MessageStatus, Store, StoreError};

use crate::events::call::{CallFrom, CallReceived};
use crate::events::recorder::Recorder;
use crate::events::Event;
use crate::model::ids::{new_message_id, new_ordered_id, MessageId};
use crate::model::time::now;
use crate::runtime::inbound::contact_addresses;
use crate::runtime::scheduler::Scheduler;

/// A call that rang on a number, with the connection it rang on.
pub struct CallJob {
    pub tenant_id: String,
    pub instance_id: String,
    pub conn: Arc<dyn Connection>,
    pub call: IncomingCall,
}

/// Handles the calls of every number (see the module's documentation).
#[derive(Clone)]
pub struct Calls {
    store: Arc<dyn Store>,
    recorder: Arc<Recorder>,
    scheduler: Arc<Scheduler>,
}

impl Calls {
    pub fn new(store: Arc<dyn Store>, recorder: Arc<Recorder>, scheduler: Arc<Scheduler>) -> Self {
        Calls { store, recorder, scheduler }
    }

    /// Handles `job` on its own task.
    pub fn ring(&self, job: CallJob) {
        let calls = self.clone();
        tokio::spawn(async move {
            let (instance, call) = (job.instance_id.clone(), job.call.id.clone());
            if let Err(e) = calls.handle(job).await {
                tracing::error!(%instance, %call, error = %e, "handling an incoming call failed");
            }
        });
    }

    async fn handle(&self, job: CallJob) -> Result<(), StoreError> {
        let CallJob { tenant_id, instance_id, conn, call } = job;
        // Deleted meanwhile: nobody to report to.
        let Some(rec) = self.store.get_instance(&tenant_id, &instance_id).await? else {
            return Ok(());
        };
        let (phone, lid) =
            contact_addresses(&*self.store, &tenant_id, &call.from, call.from_alt.as_ref()).await?;
        let rejected = rec.reject_calls && reject(&*conn, &instance_id, &call).await;
        let reply = match (&rec.reject_call_message, rejected) {
            (Some(text), true) => {
                let to = phone.clone().or_else(|| lid.clone()).unwrap_or(call.from.to_non_device());
                self.queue_reply(&rec, &call.id, to, text).await?
            }
            _ => None,
        };
        let event = CallReceived {
            call_id: call.id.clone(),
            from: caller(&call.from, phone.as_ref(), lid.as_ref()),
            video: call.video,
            group: call.is_group || call.group.is_some(),
            group_jid: call.group.as_ref().map(ToString::to_string),
            rejected,
            reply_message_id: reply,
            at: call.at,
        };
        // WhatsApp may deliver an offer again (a reconnect while it rings): the event log's
        // dedupe key records the call once, as it does a redelivered message.
        let key = call_dedupe_key(&instance_id, &call.id);
        self.recorder
            .submit_received(&tenant_id, &instance_id, Event::CallReceived(event), None, key)
            .await
            .durable()
            .await?;
        Ok(())
    }

    /// Queues the reply to a rejected call, forced to the number that rejected it. A call
    /// delivered twice (same id) queues one reply: the idempotency key `call:<number>:<call
    /// id>` finds the first.
    async fn queue_reply(
        &self,
        rec: &InstanceRecord,
        call_id: &str,
        to: Jid,
        text: &str,
    ) -> Result<Option<MessageId>, StoreError> {
        let key = format!("call:{}:{call_id}", rec.id);
        let at = now();
        let m = MessageRecord {
            id: new_ordered_id("msg"),
            tenant_id: rec.tenant_id.clone(),
            wa_id: new_message_id(),
            instance_id: Some(rec.id.clone()),
            forced: true,
            pool: rec.pool.clone(),
            to,
            body: text.to_string(),
            mentions: Vec::new(),
            menu: None,
            status: MessageStatus::Queued,
            error: None,
            idempotency_key: Some(key.clone()),
            created_at: at,
            updated_at: at,
            sent_at: None,
            campaign_id: None,
            content: None,
            send_at: None,
            expires_at: None,
            chosen_by: None,
        };
        let id = MessageId::new(m.id.as_str());
        match self.scheduler.submit(m).await {
            Ok(()) => Ok(Some(id)),
            Err(StoreError::Conflict(_)) => {
                let first = self.store.find_by_idempotency_key(&rec.tenant_id, &key).await?;
                Ok(first.map(|m| MessageId::new(m.id)))
            }
            Err(e) => Err(e),
        }
    }
}

/// Rejects the call; whether the network took the rejection (a failure is logged, and the
/// call is then reported as not rejected: it went on ringing).
async fn reject(conn: &dyn Connection, instance_id: &str, call: &IncomingCall) -> bool {
    match conn.reject_call(call).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(instance = %instance_id, call = %call.id, error = %e, "rejecting a call failed");
            false
        }
    }
}

/// What names a call across redeliveries: the number and the call's id (a call id is unique
/// per call). Its first line cannot be a message's key, which starts with the number's id.
fn call_dedupe_key(instance_id: &str, call_id: &str) -> String {
    format!("call\n{instance_id}\n{call_id}")
}

/// The caller as `call.received` shows it: by phone JID when known, with the LID beside.
fn caller(from: &Jid, phone: Option<&Jid>, lid: Option<&Jid>) -> CallFrom {
    let jid = phone.or(lid).cloned().unwrap_or_else(|| from.to_non_device());
    CallFrom {
        jid: jid.to_string(),
        phone: phone.and_then(Jid::phone).map(|p| p.e164()),
        lid: lid.map(ToString::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bzapper_store::MessageStore;

    use crate::runtime::test_support::{Rig, TENANT};

    #[tokio::test(start_paused = true)]
    async fn a_call_delivered_twice_is_recorded_and_answered_once() {
        let rig = Rig::new().await;
        let rec = rig.connected("sales-1", "+5511911110000").await;
        let store: Arc<dyn Store> = rig.store.clone();
        let calls = Calls::new(store.clone(), Recorder::new(store, None), rig.scheduler.clone());
        let conn = rig.supervisor.connection(&rec.id).await.expect("connected");
        let from = Jid::parse("5511977770000@s.whatsapp.net").unwrap();
        let call = IncomingCall {
            id: "CALL1".into(),
            from: from.clone(),
            creator: from.clone(),
            from_alt: None,
            video: false,
            is_group: false,
            group: None,
            at: now(),
        };
        // `reject_calls` is off, so nothing is asked of the network: only the record counts.
        for _ in 0..2 {
            let job = CallJob {
                tenant_id: TENANT.into(),
                instance_id: rec.id.clone(),
                conn: conn.clone(),
                call: call.clone(),
            };
            calls.handle(job).await.unwrap();
        }
        let received: Vec<_> =
            rig.events().await.into_iter().filter(|e| e.kind == "call.received").collect();
        assert_eq!(received.len(), 1, "{received:?}");
        assert_eq!(received[0].data["call_id"], "CALL1");
        // The reply of a call rejected twice is queued once.
        let first = calls.queue_reply(&rec, "CALL1", from.clone(), "No calls").await.unwrap();
        let again = calls.queue_reply(&rec, "CALL1", from, "No calls").await.unwrap();
        assert!(first.is_some());
        assert_eq!(first, again);
        let filter = bzapper_store::MessageFilter { limit: 100, ..Default::default() };
        let all = rig.store.list_messages(TENANT, &filter).await.unwrap();
        assert_eq!(all.iter().filter(|m| m.body == "No calls").count(), 1);
    }

    #[test]
    fn the_caller_is_shown_by_phone_with_the_lid_beside_or_by_lid_alone() {
        let phone = Jid::parse("5511988887777@s.whatsapp.net").unwrap();
        let lid = Jid::parse("123456789012345@lid").unwrap();
        let device = Jid::parse("123456789012345:3@lid").unwrap();
        let both = caller(&device, Some(&phone), Some(&lid));
        assert_eq!(both.jid, "5511988887777@s.whatsapp.net");
        assert_eq!(both.phone.as_deref(), Some("+5511988887777"));
        assert_eq!(both.lid.as_deref(), Some("123456789012345@lid"));
        let lid_only = caller(&device, None, Some(&lid));
        assert_eq!((lid_only.jid.as_str(), lid_only.phone), ("123456789012345@lid", None));
        let bare = caller(&device, None, None);
        assert_eq!(bare.jid, "123456789012345@lid");
    }
}
