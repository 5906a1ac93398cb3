//! What each number received in its direct chats and has not marked read, for "seen before
//! reply" (`read_receipts: auto`): the inbound path notes each message, a send to the contact
//! takes them (and marks them read first when the number is set to), an explicit read
//! forgets one. In memory only: after a restart nothing is unread, so the first reply to a
//! contact marks nothing read (the rules are `bzapper_core::read_receipts`).
//!
//! Kept per node: a number's inbound messages and its sends both run on the node holding it.

use std::sync::Mutex;

use bzapper_core::read_receipts::{UnreadBatch, UnreadInbound};
use bzapper_core::Jid;

/// The tracker the inbound path, the scheduler and the explicit read share.
#[derive(Default)]
pub struct Unread {
    inner: Mutex<UnreadInbound<Jid>>,
    /// (number, contact) of each direct message since the scheduler last looked: a contact
    /// who writes lifts the per-contact pace (a live conversation is not capped).
    wrote: Mutex<Vec<(String, String)>>,
}

impl Unread {
    fn lock(&self) -> std::sync::MutexGuard<'_, UnreadInbound<Jid>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number `instance_id` received message `id` from `contact` (the contact's phone JID
    /// where known, as a reply addresses it) in the direct chat the network addressed as
    /// `chat`.
    pub fn note(&self, instance_id: &str, contact: &str, chat: &Jid, id: &str) {
        self.lock().note(instance_id, contact, chat, id);
        let mut wrote = self.wrote.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: the scheduler drains it on every round; a flood between two rounds keeps
        // the newest.
        if wrote.len() >= 10_000 {
            wrote.remove(0);
        }
        wrote.push((instance_id.to_string(), contact.to_string()));
    }

    /// Takes the (number, contact) of each direct message noted since the last call.
    pub fn take_wrote(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.wrote.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Takes what `instance_id` has not read from `contact`, by chat address.
    pub fn take(&self, instance_id: &str, contact: &str) -> Vec<UnreadBatch<Jid>> {
        self.lock().take(instance_id, contact)
    }

    /// Whether `instance_id` has unread messages from `contact`.
    pub fn has(&self, instance_id: &str, contact: &str) -> bool {
        self.lock().has(instance_id, contact)
    }

    /// Message `id` was marked read another way (`POST …/read`).
    pub fn forget_message(&self, instance_id: &str, id: &str) {
        self.lock().forget_message(instance_id, id);
    }

    /// The number is gone (deleted).
    pub fn forget_number(&self, instance_id: &str) {
        self.lock().forget_number(instance_id);
    }
}
