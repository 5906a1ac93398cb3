//! Conversations and first contacts: every message a number sends to a 1:1 contact, and every
//! one it receives from one, keeps their conversation (what sticky sender and the first-contact
//! rules read); before a number's first message to a contact (no conversation of that number
//! with it), the pre-check asks the cached contact checks whether the contact is on WhatsApp.
//! `first_contact_check` is its one entry point, so that the dispatcher's `first_contact`
//! flag can drive it later.

use bzapper_core::{Jid, Phone};
use bzapper_driver::Connection;
use bzapper_store::{MessageRecord, StartedBy};

use super::Scheduler;
use crate::model::time::now;

/// What the pre-check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PreCheck {
    /// Send it: the contact is on WhatsApp, the number knows it already, the check is off or
    /// not possible (a group, a LID), or it failed (a failed check never stops a send).
    Go,
    /// The contact is not on WhatsApp: nothing is sent.
    NotOnWhatsApp,
}

/// The error code a message carries when its recipient is not on WhatsApp.
pub(super) const NOT_ON_WHATSAPP: &str = "not_on_whatsapp";

impl Scheduler {
    /// The conversation key of a 1:1 recipient: its phone JID (a LID mapped to its phone when
    /// the tenant knows it, else the LID); `None` for a group.
    pub(super) async fn contact_of(&self, tenant_id: &str, to: &Jid) -> Option<String> {
        if to.is_group() {
            return None;
        }
        let to = to.to_non_device();
        if to.is_lid() {
            if let Ok(Some(phone)) = self.store.phone_for_lid(tenant_id, &to.to_string()).await {
                return Some(phone);
            }
        }
        Some(to.to_string())
    }

    /// Whether `number_id` has ever talked with `contact` (a failed read counts as yes: the
    /// pre-check is skipped, never the send).
    async fn knows(&self, number_id: &str, contact: &str) -> bool {
        match self.store.get_conversation(number_id, contact).await {
            Ok(c) => c.is_some(),
            Err(e) => {
                tracing::warn!(error = %e, "reading a conversation failed; no pre-check");
                true
            }
        }
    }

    /// The pre-check before `number_id` sends `msg` through `conn`: only for a first contact
    /// with a phone number, and only while the check is on (the dispatcher's `first_contact`
    /// flag will drive this later). A cached answer costs nothing; otherwise the number asks
    /// WhatsApp, paced like its other look-ups.
    pub(super) async fn first_contact_check(
        &self,
        number_id: &str,
        msg: &MessageRecord,
        conn: &dyn Connection,
    ) -> PreCheck {
        if !self.first_contact_check {
            return PreCheck::Go;
        }
        let Some(phone) = msg.to.phone() else { return PreCheck::Go };
        let Some(contact) = self.contact_of(&msg.tenant_id, &msg.to).await else {
            return PreCheck::Go;
        };
        if self.knows(number_id, &contact).await {
            return PreCheck::Go;
        }
        match self.is_on_whatsapp(number_id, &msg.tenant_id, &phone, conn).await {
            Some(false) => PreCheck::NotOnWhatsApp,
            _ => PreCheck::Go,
        }
    }

    /// The cached answer, or the number's look-up (spaced by its sends, not by the look-up
    /// gate); `None` when neither could tell.
    async fn is_on_whatsapp(
        &self,
        number_id: &str,
        tenant_id: &str,
        phone: &Phone,
        conn: &dyn Connection,
    ) -> Option<bool> {
        let phones = std::slice::from_ref(phone);
        match self.contacts.cached(tenant_id, phones).await {
            Ok(cached) => {
                if let Some(s) = cached.get(phone) {
                    return Some(s.on_whatsapp);
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the contact-check cache failed"),
        }
        let limits = self.lock().numbers.get(number_id).map(|n| n.limits).unwrap_or_default();
        match self.contacts.check_before_send(tenant_id, number_id, &limits, conn, phones).await {
            Ok(answers) => answers.iter().find(|a| a.phone == *phone).map(|a| a.on_whatsapp),
            Err(e) => {
                tracing::warn!(error = %e, number = number_id, "the first-contact check failed; sending anyway");
                None
            }
        }
    }

    /// `number_id` sent `msg`: their conversation starts (a first contact) or goes on.
    pub(super) async fn sent_to_contact(&self, number_id: &str, msg: &MessageRecord) {
        let Some(contact) = self.contact_of(&msg.tenant_id, &msg.to).await else { return };
        self.touch(&msg.tenant_id, number_id, &contact, StartedBy::Out).await;
    }

    /// Keeps the conversation of `number_id` with `contact`; a failure is logged (it costs a
    /// pre-check, or a sticky choice, later).
    async fn touch(&self, tenant_id: &str, number_id: &str, contact: &str, side: StartedBy) {
        let r = self.store.touch_conversation(tenant_id, number_id, contact, side, now()).await;
        if let Err(e) = r {
            tracing::warn!(error = %e, number = number_id, "storing a conversation failed");
        }
    }
}
