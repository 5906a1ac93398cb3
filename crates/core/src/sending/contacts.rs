//! What the dispatcher remembers per contact (a tenant's recipient): its sends since it last
//! wrote, for the per-contact pace; and the numbers it handed the contact's messages to, so a
//! contact's next messages stick to the same number and count as known to it before the
//! runtime's view from the store catches up. Also: which messages are first contacts, and the
//! recipient's calling code.
//!
//! Memory: a contact is kept while messages to it are queued or being sent, or it had a send
//! in the last hour; the rest is swept once the book has doubled since the last sweep.

use std::collections::HashMap;

use super::caps::{SendLog, HOUR_MS};
use super::dispatcher::QueuedMessage;
use crate::calling_codes::calling_code;

#[derive(Debug, Clone, Default)]
pub(crate) struct ContactState {
    /// Sends to the contact since it last wrote (each at the moment it can reach WhatsApp,
    /// settled to when it was reported done).
    sends: SendLog,
    /// Pool → the number this dispatcher last handed a message to the contact from.
    sticky: Vec<(String, String)>,
    /// Numbers this dispatcher handed a message to the contact to: not first contacts for them.
    sent_from: Vec<String>,
    /// Messages to the contact queued or being sent.
    pending: u32,
}

impl ContactState {
    fn knows(&self, number: &str) -> bool {
        self.sent_from.iter().any(|n| n == number)
    }

    /// No number was handed a message to the contact (as for every contact queued for the
    /// first time: queuing alone gives it a state, for its pending count).
    fn knows_no_number(&self) -> bool {
        self.sent_from.is_empty() && self.sticky.is_empty()
    }

    fn sticky_in(&self, pool: &str) -> Option<&str> {
        self.sticky.iter().find(|(p, _)| p == pool).map(|(_, n)| n.as_str())
    }
}

/// What a hand-out changed in a contact's stickiness, to undo it when the send is abandoned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Handed {
    pool: String,
    previous_sticky: Option<String>,
    added_sent_from: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ContactBook {
    /// Tenant → contact → state.
    map: HashMap<String, HashMap<String, ContactState>>,
    len: usize,
    sweep_at: usize,
}

/// A group's JID: per-contact rules (first contacts) do not apply.
pub(crate) fn is_group(contact: &str) -> bool {
    contact.ends_with("@g.us")
}

/// The calling code of a phone JID's number (`5511…@s.whatsapp.net`, or bare digits).
pub(crate) fn recipient_code(contact: &str) -> Option<u16> {
    let (user, server) = contact.split_once('@').unwrap_or((contact, "s.whatsapp.net"));
    if server != "s.whatsapp.net" && server != "c.us" {
        return None;
    }
    calling_code(user.split(':').next().unwrap_or(user))
}

impl ContactBook {
    pub fn get(&self, tenant: &str, contact: &str) -> Option<&ContactState> {
        self.map.get(tenant)?.get(contact)
    }

    fn entry(&mut self, tenant: &str, contact: &str) -> &mut ContactState {
        let contacts = self.map.entry(tenant.to_string()).or_default();
        if !contacts.contains_key(contact) {
            self.len += 1;
        }
        contacts.entry(contact.to_string()).or_default()
    }

    /// The earliest time one more send to the contact keeps at most `per_hour` sends (since
    /// it last wrote) in any hour: `i64::MIN` when free or when the limit is off (0).
    pub fn pace_earliest(&self, tenant: &str, contact: &str, per_hour: u32) -> i64 {
        if per_hour == 0 {
            return i64::MIN;
        }
        self.get(tenant, contact).map_or(i64::MIN, |s| s.sends.earliest_within(HOUR_MS, per_hour))
    }

    /// The number a contact's messages in `pool` stick to as this dispatcher last handed one.
    pub fn sticky_in(&self, tenant: &str, contact: &str, pool: &str) -> Option<&str> {
        self.get(tenant, contact)?.sticky_in(pool)
    }

    pub fn record_send(&mut self, tenant: &str, contact: &str, at_ms: i64) {
        self.entry(tenant, contact).sends.record(at_ms);
    }

    pub fn settle_send(&mut self, tenant: &str, contact: &str, from_ms: i64, to_ms: i64) {
        if let Some(s) = self.map.get_mut(tenant).and_then(|m| m.get_mut(contact)) {
            s.sends.settle(from_ms, to_ms);
        }
    }

    pub fn unrecord_send(&mut self, tenant: &str, contact: &str, at_ms: i64) {
        if let Some(s) = self.map.get_mut(tenant).and_then(|m| m.get_mut(contact)) {
            s.sends.remove_one(at_ms);
        }
    }

    /// The contact wrote at `at_ms`: the sends before do not count against its pace any more.
    pub fn replied(&mut self, tenant: &str, contact: &str, at_ms: i64) {
        if let Some(s) = self.map.get_mut(tenant).and_then(|m| m.get_mut(contact)) {
            s.sends.forget_until(at_ms);
        }
    }

    /// A message to the contact was handed to `number` of `pool`.
    pub fn handed(&mut self, tenant: &str, contact: &str, pool: &str, number: &str) -> Handed {
        let s = self.entry(tenant, contact);
        let previous_sticky = match s.sticky.iter_mut().find(|(p, _)| p == pool) {
            Some((_, n)) => Some(std::mem::replace(n, number.to_string())),
            None => {
                s.sticky.push((pool.to_string(), number.to_string()));
                None
            }
        };
        let added_sent_from = !s.knows(number);
        if added_sent_from {
            s.sent_from.push(number.to_string());
        }
        Handed { pool: pool.to_string(), previous_sticky, added_sent_from }
    }

    /// Undoes a hand-out to `number` whose send did not happen.
    pub fn unhand(&mut self, tenant: &str, contact: &str, number: &str, h: Handed) {
        let Some(s) = self.map.get_mut(tenant).and_then(|m| m.get_mut(contact)) else { return };
        match h.previous_sticky {
            Some(prev) => {
                if let Some((_, n)) = s.sticky.iter_mut().find(|(p, _)| *p == h.pool) {
                    *n = prev;
                }
            }
            None => s.sticky.retain(|(p, _)| *p != h.pool),
        }
        if h.added_sent_from {
            s.sent_from.retain(|n| n != number);
        }
    }

    pub fn pending_add(&mut self, tenant: &str, contact: &str) {
        self.entry(tenant, contact).pending += 1;
    }

    pub fn pending_sub(&mut self, tenant: &str, contact: &str) {
        if let Some(s) = self.map.get_mut(tenant).and_then(|m| m.get_mut(contact)) {
            s.pending = s.pending.saturating_sub(1);
        }
    }

    /// Forgets contacts with nothing queued and no send in the hour before `now_ms`, once the
    /// book has doubled since the last sweep (amortised: a sweep costs what the growth did).
    pub fn maybe_sweep(&mut self, now_ms: i64) {
        if self.len < self.sweep_at.max(1_024) {
            return;
        }
        let horizon = now_ms.saturating_sub(HOUR_MS);
        let mut len = 0;
        for contacts in self.map.values_mut() {
            contacts.retain(|_, s| s.pending > 0 || s.sends.newest().is_some_and(|t| t > horizon));
            len += contacts.len();
        }
        self.map.retain(|_, c| !c.is_empty());
        self.len = len;
        self.sweep_at = len * 2;
    }

    /// Contacts remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether sending `msg` from `number` is a first contact: a message to a person (not a
    /// group) who has no conversation with the number as far as the runtime (`sticky_to`,
    /// `known_to`) or this dispatcher (numbers it handed the contact to) knows.
    pub fn first_contact(&self, msg: &QueuedMessage, number: &str) -> bool {
        self.first_contacts_of(msg).is_first(number)
    }

    /// What decides first contacts for `msg`, looked up once for asking about many numbers.
    pub fn first_contacts_of<'a>(&'a self, msg: &'a QueuedMessage) -> FirstContacts<'a> {
        let person = msg.contact.as_deref().filter(|c| !is_group(c));
        FirstContacts { msg, person, state: person.and_then(|c| self.get(&msg.tenant_id, c)) }
    }
}

/// Which numbers a message would be a first contact for.
pub(crate) struct FirstContacts<'a> {
    msg: &'a QueuedMessage,
    /// The recipient, unless a group (or none).
    person: Option<&'a str>,
    state: Option<&'a ContactState>,
}

impl FirstContacts<'_> {
    /// `Some(first contact?)` when the answer is the same for every number (no recipient, or
    /// one nobody knows and none sticks to); `None` when it depends on the number. The
    /// dispatcher asks about a message like this once for all numbers, not once per number
    /// (at 10,000 numbers, the difference between a poll of microseconds and one of a core).
    pub fn same_for_all(&self) -> Option<bool> {
        match self.person {
            None => Some(false),
            Some(_) => (self.msg.sticky_to.is_none()
                && self.msg.known_to.is_empty()
                && self.state.is_none_or(ContactState::knows_no_number))
            .then_some(true),
        }
    }

    pub fn is_first(&self, number: &str) -> bool {
        self.person.is_some()
            && self.msg.sticky_to.as_deref() != Some(number)
            && !self.msg.known_to.iter().any(|n| n == number)
            && !self.state.is_some_and(|s| s.knows(number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_codes_come_from_phone_jids_only() {
        assert_eq!(recipient_code("5511999999999@s.whatsapp.net"), Some(55));
        assert_eq!(recipient_code("14155550100@c.us"), Some(1));
        assert_eq!(recipient_code("447700900123:3@s.whatsapp.net"), Some(44));
        assert_eq!(recipient_code("351912345678"), Some(351));
        assert_eq!(recipient_code("120363021234567890@g.us"), None);
        assert_eq!(recipient_code("12345@lid"), None);
    }

    #[test]
    fn the_book_is_swept_of_idle_contacts_only() {
        let mut b = ContactBook::default();
        for i in 0..2_000 {
            b.record_send("t", &format!("c{i}"), 0);
        }
        b.pending_add("t", "c7");
        b.record_send("t", "c8", 2 * HOUR_MS);
        b.maybe_sweep(2 * HOUR_MS + 1);
        assert_eq!(b.len(), 2);
        assert!(b.get("t", "c7").is_some() && b.get("t", "c8").is_some());
    }

    #[test]
    fn a_contact_merely_queued_is_a_first_contact_for_every_number_alike() {
        let mut b = ContactBook::default();
        let msg = QueuedMessage {
            tenant_id: "t".into(),
            contact: Some("5511988880000@s.whatsapp.net".into()),
            ..QueuedMessage::default()
        };
        // Queuing gives the contact a state (its pending count): still nobody knows it.
        b.pending_add("t", "5511988880000@s.whatsapp.net");
        assert_eq!(b.first_contacts_of(&msg).same_for_all(), Some(true));
        // Once a number was handed one of its messages, the answer depends on the number.
        b.handed("t", "5511988880000@s.whatsapp.net", "p", "a");
        let firsts = b.first_contacts_of(&msg);
        assert_eq!(firsts.same_for_all(), None);
        assert!(!firsts.is_first("a") && firsts.is_first("b"));
    }

    #[test]
    fn hand_outs_are_undone_exactly() {
        let mut b = ContactBook::default();
        let h1 = b.handed("t", "c", "p", "a");
        let h2 = b.handed("t", "c", "p", "b");
        assert_eq!(b.sticky_in("t", "c", "p"), Some("b"));
        b.unhand("t", "c", "b", h2);
        assert_eq!(b.sticky_in("t", "c", "p"), Some("a"));
        let s = b.get("t", "c").unwrap();
        assert!(s.knows("a") && !s.knows("b"));
        b.unhand("t", "c", "a", h1);
        assert_eq!(b.sticky_in("t", "c", "p"), None);
    }
}
