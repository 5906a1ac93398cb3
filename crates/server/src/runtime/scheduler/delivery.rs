//! One send, from the dispatcher's assignment to its outcome: `composing`, the message,
//! `paused`; then success, a retry when the number dropped, or a failure with its health cost.
//! Before anything is shown to the contact: the message's validity (an expired one is never
//! sent) and, before a number's first message to a contact, the pre-check (see
//! `first_contact`); after typing, the validity once more, so nothing goes out late.

use std::sync::Arc;

use bzapper_core::sending::{Assignment, Choice, HealthEvent};
use bzapper_driver::{ChatState, DriverError};
use bzapper_store::{MessageRecord, MessageStatus};
use tokio::time::Instant;

use super::chosen::ChosenBy;
use super::first_contact::{PreCheck, NOT_ON_WHATSAPP};
use super::health::health_cost;
use super::validity::expired;
use super::{outgoing, Inner, Scheduler};

impl Scheduler {
    /// One send: composing, the text, paused; then the number rests.
    pub(super) async fn deliver(self: Arc<Self>, a: Assignment) {
        let (held, conn) = {
            let g = self.lock();
            (g.held.contains_key(&a.message_id), g.connections.get(&a.number_id).cloned())
        };
        if !held {
            self.finish(&a.number_id);
            return;
        }
        // Only what places the message was kept in memory: the message itself is read now,
        // and its stored status is the last word (a campaign canceled meanwhile failed it).
        let msg = match self.store.get_message_by_id(&a.message_id).await {
            Ok(Some(m)) if m.status.is_pending() => m,
            Ok(_) => {
                self.lock().held.remove(&a.message_id);
                self.finish(&a.number_id);
                return;
            }
            Err(e) => {
                tracing::warn!(message = %a.message_id, error = %e, "reading a message to send failed");
                self.put_back(&a).await;
                self.wake.notify_one();
                return;
            }
        };
        if self.expired_now(&msg) {
            self.expire(&msg).await;
            // The number did nothing: no send, no gap.
            self.abandon(&a);
            return;
        }
        let Some(conn) = conn else {
            self.retry(&a, &msg).await;
            return;
        };
        if self.first_contact_check(&a.number_id, &msg, conn.as_ref()).await
            == PreCheck::NotOnWhatsApp
        {
            // Nothing shown or sent, no health cost.
            let (status, number) = (MessageStatus::Failed, Some(a.number_id.clone()));
            let error = Some(NOT_ON_WHATSAPP.to_string());
            self.end(&msg.id, &msg.tenant_id, status, number, error).await;
            // Neither the send nor the first contact counts against the number's caps.
            self.abandon(&a);
            return;
        }
        if let Some(at) = a.rewarm_started {
            self.rewarm_started(&a.number_id, at).await;
        }
        if a.pre_delay_ms > 0 {
            // A first contact: one more human pause before the number starts typing.
            tokio::time::sleep(tokio::time::Duration::from_millis(a.pre_delay_ms)).await;
            if self.expired_now(&msg) {
                self.expire(&msg).await;
                self.abandon(&a);
                return;
            }
        }
        if !self.took(&a, &msg, self.choice_of(&a, &msg)).await {
            // It expired meanwhile (the sweep stored it) or a campaign cancel failed it:
            // nothing is sent.
            self.lock().finished(&msg.id);
            self.abandon(&a);
            return;
        }
        let to = msg.to.clone();
        // A media file is found or downloaded before the contact sees anything: a download
        // that fails is the message's fault, not the number's.
        let prepared = match outgoing::prepare(&msg, to.clone(), &self.media).await {
            Ok(p) => p,
            Err(reason) => {
                self.fail_unsendable(&a, &msg, reason).await;
                return;
            }
        };
        // A contact who wrote to the number sees their messages read before the reply is typed.
        self.seen_before_reply(&a.number_id, &to, conn.as_ref()).await;
        if let Err(e) = conn.set_chat_state(&to, prepared.chat_state).await {
            if matches!(e, DriverError::NotConnected | DriverError::Transport(_)) {
                self.discard_download(&prepared.downloaded).await;
                self.retry(&a, &msg).await;
                return;
            }
        }
        let handed_at = Instant::now();
        tokio::time::sleep(tokio::time::Duration::from_millis(a.typing_ms)).await;
        if self.expired_now(&msg) {
            // Its time ran out while the number typed: never sent late.
            let _ = conn.set_chat_state(&to, ChatState::Paused).await;
            drop(prepared.local_file);
            self.discard_download(&prepared.downloaded).await;
            self.expire(&msg).await;
            self.finish(&a.number_id);
            return;
        }
        let result = conn.send(prepared.message).await;
        // The driver has read the file: a copy made for it goes now.
        drop(prepared.local_file);
        self.discard_download(&prepared.downloaded).await;
        if result.is_ok() {
            let secs = handed_at.elapsed().as_secs_f64();
            self.recorder.metrics().send_latency(&msg.tenant_id, &a.number_id, secs);
            let _ = conn.set_chat_state(&to, ChatState::Paused).await;
        }
        self.done(&a, &msg, result.map(drop)).await;
    }

    /// Whether `msg`'s time is up now: it may no longer be sent.
    fn expired_now(&self, msg: &MessageRecord) -> bool {
        expired(msg.expires_at.map(|t| t.timestamp_millis()), self.now_ms())
    }

    /// Why `a`'s number sends `msg`, as the dispatcher decided it (a message held for its
    /// number after a crash counts as forced: it must go out from that number).
    fn choice_of(&self, a: &Assignment, msg: &MessageRecord) -> ChosenBy {
        if msg.forced {
            return ChosenBy::Forced;
        }
        match a.choice {
            Choice::Sticky => ChosenBy::Sticky,
            Choice::Rotation => ChosenBy::Rotation,
            Choice::Forced => ChosenBy::Forced,
            Choice::Geo => ChosenBy::Geo,
        }
    }

    /// `a`'s number takes `msg`: it is `sending`, with why the number was chosen. False when
    /// the stored message refused (it expired, or a campaign cancel failed it, meanwhile).
    pub(super) async fn took(&self, a: &Assignment, msg: &MessageRecord, chosen: ChosenBy) -> bool {
        let number = Some(a.number_id.clone());
        let (id, tenant) = (&msg.id, &msg.tenant_id);
        self.set_status_chosen(id, tenant, MessageStatus::Sending, number, None, Some(chosen)).await
    }

    /// Deletes a file downloaded for one send (a retry downloads it again).
    pub(super) async fn discard_download(&self, downloaded: &Option<crate::media::StoredMedia>) {
        if let Some(file) = downloaded {
            if let Err(e) = self.media.delete(&file.tenant_id, &file.id).await {
                tracing::warn!(media = %file.id, error = %e, "deleting a downloaded file failed");
            }
        }
    }

    /// The message can never be sent as it is (its media could not be downloaded, its upload
    /// expired): it fails with the reason, and the number, which did nothing wrong, moves on.
    pub(super) async fn fail_unsendable(
        &self,
        a: &Assignment,
        msg: &MessageRecord,
        reason: String,
    ) {
        self.end(
            &msg.id,
            &msg.tenant_id,
            MessageStatus::Failed,
            Some(a.number_id.clone()),
            Some(reason),
        )
        .await;
        self.finish(&a.number_id);
    }

    pub(super) async fn done(
        &self,
        a: &Assignment,
        msg: &MessageRecord,
        result: Result<(), DriverError>,
    ) {
        match result {
            Ok(()) => {
                self.end(
                    &msg.id,
                    &msg.tenant_id,
                    MessageStatus::Sent,
                    Some(a.number_id.clone()),
                    None,
                )
                .await;
                // After `sent` is stored: a delivery receipt may follow the ack at once, and
                // `sent` must be stored (and its event recorded) before it.
                self.sent_to_contact(&a.number_id, msg).await;
                self.health_event(&a.number_id, HealthEvent::SendOk).await;
                self.finish(&a.number_id);
            }
            Err(DriverError::NotConnected | DriverError::Transport(_)) => self.retry(a, msg).await,
            Err(e) => {
                let cost = health_cost(&e);
                self.end(
                    &msg.id,
                    &msg.tenant_id,
                    MessageStatus::Failed,
                    Some(a.number_id.clone()),
                    Some(e.to_string()),
                )
                .await;
                self.health_event(&a.number_id, cost).await;
                self.finish(&a.number_id);
            }
        }
    }

    /// The number dropped before the send: the message goes back to the head of its queue
    /// (its number's, when forced; the pool's otherwise) and waits, and the number takes
    /// nothing more until its state changes (the supervisor reports the drop or the reconnect).
    ///
    /// A number banned or logged out while the send was on its way handed back what waited
    /// for it before this send came back: this one is handed back too (a forced send fails).
    /// Its status is stored before it rejoins the queue, so that a hand-back racing with this
    /// one always writes last.
    pub(super) async fn retry(&self, a: &Assignment, msg: &MessageRecord) {
        let keep = msg.forced.then(|| a.number_id.clone());
        self.set_status(&msg.id, &msg.tenant_id, MessageStatus::Queued, keep, None).await;
        self.put_back(a).await;
        if let Some(why) = self.gone_for_good_now(&a.number_id) {
            self.hand_back(&a.number_id, why).await;
        }
        self.wake.notify_one();
    }

    /// The message goes back to its place in its queue, and the number takes nothing more
    /// until its state changes (or its suspension ends).
    async fn put_back(&self, a: &Assignment) {
        let now_ms = self.now_ms();
        self.lock().dispatcher.requeue(a, now_ms);
        let rec = self.store.get_instance_by_id(&a.number_id).await.ok().flatten();
        if let Some(n) = self.lock().numbers.get_mut(&a.number_id) {
            n.suspended = true;
            n.suspended_at_ms = now_ms;
        }
        if let Some(rec) = rec {
            self.update_number(&rec);
        }
    }

    /// `a` ended without a send (an expired message, a recipient not on WhatsApp): the number
    /// is free at once, and nothing of it counts against any cap.
    pub(super) fn abandon(&self, a: &Assignment) {
        let now_ms = self.now_ms();
        self.lock().dispatcher.abandon(a, now_ms);
        self.wake.notify_one();
    }

    /// A send of `number_id` after a long idle started its re-warm at `at_ms`: kept in the
    /// store (it lasts across a restart, and the instance view shows it).
    async fn rewarm_started(&self, number_id: &str, at_ms: i64) {
        let at = chrono::DateTime::from_timestamp_millis(at_ms);
        if let Some(n) = self.lock().numbers.get_mut(number_id) {
            if let Some(rec) = n.record.as_mut() {
                rec.rewarm_from = at;
            }
        }
        if let Err(e) = self.store.set_rewarm_from(number_id, at).await {
            tracing::warn!(number = number_id, error = %e, "storing a re-warm's start failed");
        }
    }

    pub(super) fn finish(&self, number_id: &str) {
        let now_ms = self.now_ms();
        {
            let mut g = self.lock();
            let Inner { dispatcher, rng, .. } = &mut *g;
            dispatcher.finished(number_id, now_ms, rng);
        }
        self.wake.notify_one();
    }
}
