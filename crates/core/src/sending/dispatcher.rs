//! The dispatcher: the pure scheduler that hands queued messages to numbers.
//!
//! Late binding: a message is not bound to a number when it is accepted. It waits in its pool's
//! queue (or in the queue of the number it was forced to), and the dispatcher hands it to a
//! number at the moment that number is ready: connected, inside its active hours, not sending,
//! its gap elapsed and one more send within its caps. So a number that drops, is banned or hits
//! its cap never holds messages that another number could send, and nothing has to be "handed
//! back".
//!
//! The caller (the server's send loop) drives it:
//! 1. keeps the numbers current with [`Dispatcher::upsert_number`] (status, health, limits,
//!    active hours), sets each pool's [`PoolPolicy`], and feeds accepted messages with
//!    [`Dispatcher::enqueue`]; calls [`Dispatcher::contact_replied`] on inbound messages;
//! 2. calls [`Dispatcher::take_expired`] and marks those `expired`, then calls
//!    [`Dispatcher::poll`] and, for each [`Assignment`], waits `pre_delay_ms`, checks the
//!    recipient is on WhatsApp when `first_contact` (or else [`Dispatcher::abandon`]s it),
//!    shows `composing` for `typing_ms`, sends, shows `paused`, then calls
//!    [`Dispatcher::finished`] — or [`Dispatcher::requeue`] when the number dropped before the
//!    send went out;
//! 3. sleeps until [`Dispatcher::next_wakeup_ms`], a finished send, or a new message.
//!
//! Which message goes to which number, per pool queue, in accept order:
//! - a message whose contact has a conversation with a number of the pool (its `sticky_to`,
//!   or the number this dispatcher last handed that contact to) goes only to that number while
//!   it is online and in rotation, waiting for it when it is busy, resting or capped; otherwise
//!   rotation picks among the ready numbers (those of the recipient's country first with
//!   `prefer_country`, then warmed before warming, then the pool's strategy);
//! - a first contact (see [`QueuedMessage::known_to`]) goes only to a number under its
//!   first-contact cap, after an extra human delay;
//! - at most `per_contact_per_hour` sends to one contact in any hour since it last wrote;
//! - a contact's messages go in their order: one that must wait holds back the later ones to
//!   the same contact, and nothing else.
//!
//! A message that cannot go now does not block those behind it, within a look-ahead of
//! [`LOOKAHEAD`] waiting messages per queue and poll (so a poll's cost stays bounded whatever
//! the backlog): among messages any number could take, the queue stays first in, first out.
//! Messages scheduled for later (`not_before_ms`) wait aside and join the queue at their place
//! in line when due.
//!
//! How the caps stay true whatever the send takes: each send is recorded in the number's
//! [`SendLog`] (and in its first-contact log, and in its contact's log) when it is handed out,
//! at the earliest moment it can reach WhatsApp (now + pre-delay + typing), and moved to the
//! moment it is reported finished, the latest moment it can have gone out. A number may start
//! a send before its caps allow one, by at most the shortest typing time the message can get,
//! because its send cannot happen sooner than that.

use std::collections::{BTreeMap, HashMap, HashSet};

use rand::Rng;

use super::caps::{Caps, SendLog, HOUR_MS, MINUTE_MS};
use super::contacts::{recipient_code, ContactBook, Handed};
#[cfg(test)]
use super::pacing::typing_floor_ms;
#[cfg(test)]
use super::pacing::TYPING_MIN_MS;
use super::pacing::{gap_ms, typing_ms};
use super::policy::{Choice, PoolPolicy, Rest};
use super::queue::{Entry, Line, LOOKAHEAD};
use super::rotation::{pick, Candidate, RotationState, Strategy};
use super::warming::{WarmingSchedule, DAY_MS};
use crate::hours::Window;
use crate::Limits;

/// What the dispatcher needs to know about one number. Upsert it whenever one of these changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberInfo {
    /// The instance id.
    pub id: String,
    pub tenant_id: String,
    pub pool: String,
    /// Connected. A banned or logged-out number is not online: nothing is sent through it, not
    /// even messages forced to it.
    pub online: bool,
    /// Healthy enough for rotation ([`super::Health::in_rotation`]). Out of rotation, a number
    /// still sends the messages forced to it.
    pub in_rotation: bool,
    /// Health score 0..=100, the weight of `health_weighted`.
    pub health: u8,
    pub limits: Limits,
    pub warming_days: u32,
    /// When the number first connected; its warming days count from there.
    pub first_connected_at_ms: Option<i64>,
    /// The number's country calling code (e.g. 55), for `prefer_country`.
    pub country_code: Option<u16>,
    /// Its last send before this dispatcher knew it (from the store): decides a re-warm.
    pub last_sent_ms: Option<i64>,
    /// When its current re-warm started (from the store, after a restart): it continues.
    pub rewarm_from_ms: Option<i64>,
    /// Its active hours (the number's own, or its pool's): outside them it takes nothing, not
    /// even messages forced to it. `None`: always.
    pub active_hours: Option<Window>,
}

/// A message waiting to be sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: String,
    pub tenant_id: String,
    pub pool: String,
    /// The instance the client named: only that number sends it, even while warming.
    pub forced_instance: Option<String>,
    /// Length of the text actually sent, in characters: decides the typing time.
    pub text_chars: usize,
    /// The recipient, as its normalised JID text; `None` for a group (per-contact rules then
    /// skip it; a `…@g.us` JID counts as a group too).
    pub contact: Option<String>,
    /// The number of the pool the contact has a conversation with (within the pool's sticky
    /// window), as the runtime read it from the store.
    pub sticky_to: Option<String>,
    /// Numbers of the pool that ever had a conversation with the contact: for them (and for
    /// `sticky_to`) the message is not a first contact.
    pub known_to: Vec<String>,
    /// Not handed out before this time (`send_at`).
    pub not_before_ms: Option<i64>,
    /// Not handed out from this time on (`ttl_seconds`): [`Dispatcher::take_expired`] returns it.
    pub expires_at_ms: Option<i64>,
}

/// A message handed to a number: wait `pre_delay_ms`, show `composing` for `typing_ms`, then
/// send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub message_id: String,
    pub number_id: String,
    /// How long to show `composing` before the send. The send must not happen earlier.
    pub typing_ms: u64,
    /// Why this number.
    pub choice: Choice,
    /// A first contact for this number: check the recipient is on WhatsApp before writing
    /// (and [`Dispatcher::abandon`] the assignment when it is not).
    pub first_contact: bool,
    /// An extra pause before a first contact, before the typing (0 otherwise).
    pub pre_delay_ms: u64,
    /// This send starts a re-warm of the number at this time: persist it.
    pub rewarm_started: Option<i64>,
}

/// What the dispatcher knows about one number at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberStats {
    /// Sending right now (between an assignment and `finished`/`requeue`/`abandon`).
    pub busy: bool,
    /// When its gap after the last send ends.
    pub ready_at_ms: i64,
    /// The earliest time at or after now when its caps allow one more send.
    pub next_allowed_ms: i64,
    pub warmed: bool,
    /// Its caps now (day cap reduced by warming and re-warming).
    pub caps: Caps,
    pub sent_last_minute: usize,
    pub sent_last_hour: usize,
    pub sent_last_day: usize,
    /// Messages forced to it and still queued.
    pub forced_queued: usize,
    /// Its first-contact cap now (reduced by warming and re-warming), and first contacts in
    /// the last 24 h.
    pub new_contacts_cap: u32,
    pub new_contacts_last_day: usize,
    /// In a re-warm after idling, until `rewarm_until_ms`.
    pub rewarming: bool,
    pub rewarm_until_ms: Option<i64>,
    /// Why it takes nothing now; `None` when it could (or is sending).
    pub resting: Option<Rest>,
}

/// The send a number is making.
#[derive(Debug, Clone)]
struct Current {
    message_id: String,
    /// When the send was recorded in the logs.
    send_at_ms: i64,
    first_contact: bool,
    /// (tenant, contact) and what handing it out changed there.
    contact: Option<(String, String, Handed)>,
}

/// One number's state: what the caller told about it and what sending did to it.
#[derive(Debug, Clone)]
struct Slot {
    info: NumberInfo,
    log: SendLog,
    /// Its first contacts, for the first-contact cap.
    first_contacts: SendLog,
    /// Not before this time may the number start its next send (its gap).
    ready_at_ms: i64,
    current: Option<Current>,
    /// Its last send, known or recorded.
    last_send_ms: Option<i64>,
    rewarm_from_ms: Option<i64>,
}

impl Slot {
    fn warmed(&self, now_ms: i64) -> bool {
        WarmingSchedule::is_warmed(self.info.warming_days, self.info.first_connected_at_ms, now_ms)
    }

    fn warming_day_cap(&self, schedule: &WarmingSchedule, now_ms: i64) -> u32 {
        let i = &self.info;
        schedule.day_cap(i.limits.per_day, i.warming_days, i.first_connected_at_ms, now_ms)
    }

    fn rewarm_day_cap(&self, schedule: &WarmingSchedule, now_ms: i64) -> u32 {
        let full = self.info.limits.per_day;
        schedule.rewarm_cap(schedule.first_day_cap, full, self.rewarm_from_ms, now_ms)
    }

    fn caps(&self, schedule: &WarmingSchedule, now_ms: i64) -> Caps {
        let day_cap =
            self.warming_day_cap(schedule, now_ms).min(self.rewarm_day_cap(schedule, now_ms));
        Caps::effective(&self.info.limits, day_cap)
    }

    fn new_contacts_cap(&self, schedule: &WarmingSchedule, now_ms: i64) -> u32 {
        let i = &self.info;
        let full = i.limits.new_contacts_per_day;
        let warming =
            schedule.new_contacts_cap(full, i.warming_days, i.first_connected_at_ms, now_ms);
        let rewarm =
            schedule.rewarm_cap(schedule.first_day_new_contacts, full, self.rewarm_from_ms, now_ms);
        warming.min(rewarm)
    }

    fn hours_open(&self, now_ms: i64) -> bool {
        self.info.active_hours.as_ref().is_none_or(|w| w.is_open_ms(now_ms))
    }

    /// When its day caps change next (a warming or re-warming day starts).
    fn next_cap_change_ms(&self, schedule: &WarmingSchedule, now_ms: i64) -> Option<i64> {
        let i = &self.info;
        let warming =
            WarmingSchedule::next_change_ms(i.warming_days, i.first_connected_at_ms, now_ms);
        let rewarm = schedule.rewarm_next_change_ms(self.rewarm_from_ms, now_ms);
        match (warming, rewarm) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn note_send(&mut self, at_ms: i64) {
        self.last_send_ms = Some(self.last_send_ms.map_or(at_ms, |l| l.max(at_ms)));
    }
}

/// A number as one poll (or wake-up computation) sees it: what decides when it can start a
/// send, computed once.
struct View {
    id: String,
    ready_at_ms: i64,
    /// From its caps: `i64::MIN` free, `i64::MAX` never.
    caps_earliest_ms: i64,
    /// From its first-contact cap.
    first_contact_earliest_ms: i64,
    /// Its active hours' current or next opening `[open, close)`; `None`: no active hours.
    hours: Option<(i64, i64)>,
    warmed: bool,
    health: u8,
    used: u64,
    country_code: Option<u16>,
}

impl View {
    fn new(slot: &Slot, schedule: &WarmingSchedule, now_ms: i64) -> View {
        let caps = slot.caps(schedule, now_ms);
        let fc_cap = slot.new_contacts_cap(schedule, now_ms);
        View {
            id: slot.info.id.clone(),
            ready_at_ms: slot.ready_at_ms,
            caps_earliest_ms: slot.log.earliest_allowed_ms(&caps),
            first_contact_earliest_ms: slot.first_contacts.earliest_within(DAY_MS, fc_cap),
            hours: slot.info.active_hours.as_ref().map(|w| {
                // A window opens at least weekly; `None` only for a broken zone: never open.
                w.current_or_next_ms(now_ms).unwrap_or((i64::MAX, i64::MAX))
            }),
            warmed: slot.warmed(now_ms),
            health: slot.info.health,
            used: slot.log.count_in_window(now_ms, DAY_MS) as u64,
            country_code: slot.info.country_code,
        }
    }

    /// The earliest time it could start a message whose shortest typing is `floor_ms`, that
    /// may not start before `entry_earliest_ms`, as far as its gap and caps go (active hours
    /// aside); `None`: never.
    fn start_ms(&self, floor_ms: i64, entry_earliest_ms: i64, first_contact: bool) -> Option<i64> {
        let mut t = self.ready_at_ms.max(entry_earliest_ms);
        let mut cap = |earliest: i64| {
            if earliest == i64::MAX {
                return false;
            }
            t = t.max(earliest.saturating_sub(floor_ms));
            true
        };
        if !cap(self.caps_earliest_ms) || (first_contact && !cap(self.first_contact_earliest_ms)) {
            return None;
        }
        Some(t)
    }

    /// Whether it can start now a message it could start at `t` (active hours included).
    fn can_start_now(&self, t: i64, now_ms: i64) -> bool {
        t <= now_ms && self.hours.is_none_or(|(open, _)| open <= now_ms)
    }
}

/// A pool's ready numbers as views, each beside its slot (same index).
type ViewsAndSlots<'a> = (Vec<View>, Vec<&'a Slot>);

#[derive(Debug, Clone, Default)]
struct PoolState {
    line: Line,
    policy: PoolPolicy,
    rotation: RotationState,
}

/// Where a known message is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    Queued,
    /// Handed to this number.
    InFlight(String),
}

/// Which queue a message waits in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum LineKey {
    Pool(String, String),
    Forced(String),
}

impl LineKey {
    fn of(msg: &QueuedMessage) -> LineKey {
        match &msg.forced_instance {
            Some(number) => LineKey::Forced(number.clone()),
            None => LineKey::Pool(msg.tenant_id.clone(), msg.pool.clone()),
        }
    }
}

/// What a poll decided for one message of a queue.
enum Verdict {
    /// Hand it to this number (an index into the poll's views) for this reason.
    Take(usize, Choice),
    /// Not now: later messages to the same contact wait too.
    Wait,
    /// Expired: skipped, and blocks nothing.
    Skip,
}

/// The scheduler of every pool and number. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Dispatcher {
    schedule: WarmingSchedule,
    /// By instance id; ordered so that a poll visits numbers in a reproducible order.
    numbers: BTreeMap<String, Slot>,
    /// Tenant → pool name → queue, policy and rotation.
    pools: BTreeMap<String, BTreeMap<String, PoolState>>,
    /// Instance id → the messages forced to it (entries are removed when empty).
    forced: BTreeMap<String, Line>,
    /// Message id → the message being sent, with its place in line.
    in_flight: HashMap<String, Entry>,
    places: HashMap<String, Place>,
    /// (expires at, message id) → its queue, for every queued message with a validity.
    expiries: BTreeMap<(i64, String), LineKey>,
    contacts: ContactBook,
    next_seq: i64,
    /// Decreasing sequence numbers for `enqueue_front`.
    front_seq: i64,
}

impl Dispatcher {
    /// A dispatcher that computes warming and re-warming caps with `schedule`.
    pub fn new(schedule: WarmingSchedule) -> Self {
        Dispatcher { schedule, ..Self::default() }
    }

    /// Adds a number or updates what is known about it. Its send logs, its current send and
    /// its gap are kept across updates (a number that reconnects does not get a fresh
    /// allowance); a later `last_sent_ms` or `rewarm_from_ms` than the one known replaces it.
    pub fn upsert_number(&mut self, info: NumberInfo) {
        let later = |a: Option<i64>, b: Option<i64>| a.max(b);
        match self.numbers.get_mut(&info.id) {
            Some(slot) => {
                slot.last_send_ms = later(slot.last_send_ms, info.last_sent_ms);
                slot.rewarm_from_ms = later(slot.rewarm_from_ms, info.rewarm_from_ms);
                slot.info = info;
            }
            None => {
                let slot = Slot {
                    last_send_ms: info.last_sent_ms,
                    rewarm_from_ms: info.rewarm_from_ms,
                    info,
                    log: SendLog::new(),
                    first_contacts: SendLog::new(),
                    ready_at_ms: i64::MIN,
                    current: None,
                };
                self.numbers.insert(slot.info.id.clone(), slot);
            }
        }
    }

    /// Forgets a number (the instance was deleted) and returns the messages forced to it, which
    /// nothing else may send. A send it has in flight is still settled by `finished`/`requeue`.
    pub fn remove_number(&mut self, number_id: &str) -> Vec<QueuedMessage> {
        self.numbers.remove(number_id);
        self.take_forced(number_id)
    }

    /// Sets the rotation strategy of a pool (the default is round robin), keeping the rest of
    /// its policy.
    pub fn set_strategy(&mut self, tenant_id: &str, pool: &str, strategy: Strategy) {
        self.pool_mut(tenant_id, pool).policy.strategy = strategy;
    }

    pub fn strategy(&self, tenant_id: &str, pool: &str) -> Strategy {
        self.pool_policy(tenant_id, pool).strategy
    }

    /// Sets a pool's whole policy (strategy, sticky sender, country preference, per-contact
    /// pace).
    pub fn set_pool_policy(&mut self, tenant_id: &str, pool: &str, policy: PoolPolicy) {
        self.pool_mut(tenant_id, pool).policy = policy;
    }

    pub fn pool_policy(&self, tenant_id: &str, pool: &str) -> PoolPolicy {
        self.pool(tenant_id, pool).map(|p| p.policy).unwrap_or_default()
    }

    /// Queues a message at the end of its pool's queue, or of its forced number's queue. Returns
    /// false (and changes nothing) when a message with that id is already known.
    pub fn enqueue(&mut self, msg: QueuedMessage) -> bool {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.add(Entry { seq, msg }, true)
    }

    /// Queues a message ahead of everything in its queue (for example a message that was being
    /// sent when the gateway stopped). Returns false when the id is already known.
    pub fn enqueue_front(&mut self, msg: QueuedMessage) -> bool {
        self.front_seq -= 1;
        let seq = self.front_seq;
        self.add(Entry { seq, msg }, true)
    }

    /// Removes a queued message (cancelled, expired). False when it is not queued, including
    /// while it is being sent.
    pub fn remove_message(&mut self, message_id: &str) -> bool {
        if self.places.get(message_id) != Some(&Place::Queued) {
            return false;
        }
        let mut pools = self.pools.values_mut().flat_map(|p| p.values_mut());
        let mut found = pools.find_map(|p| p.line.remove(message_id));
        if found.is_none() {
            let mut emptied = None;
            for (number, line) in self.forced.iter_mut() {
                found = line.remove(message_id);
                if found.is_some() {
                    if line.is_empty() {
                        emptied = Some(number.clone());
                    }
                    break;
                }
            }
            if let Some(number) = emptied {
                self.forced.remove(&number);
            }
        }
        match found {
            Some(entry) => {
                self.leave(&entry.msg);
                true
            }
            None => false,
        }
    }

    /// The ids of the messages forced to this number and still queued, in order.
    pub fn queued_for_number(&self, number_id: &str) -> Vec<String> {
        self.forced
            .get(number_id)
            .map(|q| q.entries().into_iter().map(|e| e.msg.id.clone()).collect())
            .unwrap_or_default()
    }

    /// Takes the messages forced to this number out of the queue, in order (to fail them when
    /// the number is banned or logged out).
    pub fn take_forced(&mut self, number_id: &str) -> Vec<QueuedMessage> {
        let entries = self.forced.remove(number_id).map(|mut q| q.drain()).unwrap_or_default();
        entries
            .into_iter()
            .map(|e| {
                self.leave(&e.msg);
                e.msg
            })
            .collect()
    }

    /// Takes out every queued message whose validity is over at `now_ms` (its
    /// `expires_at_ms` is at or before it), in expiry order: the caller marks them `expired`.
    /// A message being sent is not expired: it was handed out in time.
    pub fn take_expired(&mut self, now_ms: i64) -> Vec<QueuedMessage> {
        let mut out = Vec::new();
        while let Some(((at, id), key)) = self.expiries.pop_first() {
            if at > now_ms {
                self.expiries.insert((at, id), key);
                break;
            }
            let entry = match &key {
                LineKey::Pool(tenant, pool) => self
                    .pools
                    .get_mut(tenant)
                    .and_then(|p| p.get_mut(pool))
                    .and_then(|p| p.line.remove(&id)),
                LineKey::Forced(number) => {
                    let line = self.forced.get_mut(number);
                    let entry = line.and_then(|l| l.remove(&id));
                    if self.forced.get(number).is_some_and(Line::is_empty) {
                        self.forced.remove(number);
                    }
                    entry
                }
            };
            if let Some(entry) = entry {
                self.leave(&entry.msg);
                out.push(entry.msg);
            }
        }
        out
    }

    /// The contact wrote (an inbound message at `at_ms`): the sends to it before do not count
    /// against the pool's per-contact pace any more (a live conversation is not capped).
    pub fn contact_replied(&mut self, tenant_id: &str, contact: &str, at_ms: i64) {
        self.contacts.replied(tenant_id, contact, at_ms);
    }

    /// Hands out as many messages as can start at `now_ms`.
    ///
    /// A number is ready when it is online, inside its active hours, not sending, past its gap,
    /// and its caps allow one more send once the message's typing is over. A ready number with
    /// messages forced to it that can go sends those first (in rotation or not); otherwise, if
    /// it is in rotation, it may take a message of its pool's queue (see the module
    /// documentation for which). Each number gets at most one message, and is busy until
    /// [`Dispatcher::finished`], [`Dispatcher::requeue`] or [`Dispatcher::abandon`].
    pub fn poll(&mut self, now_ms: i64, rng: &mut impl Rng) -> Vec<Assignment> {
        let mut out = Vec::new();
        let schedule = self.schedule;
        self.contacts.maybe_sweep(now_ms);
        for line in self.forced.values_mut() {
            line.promote(now_ms);
        }
        for state in self.pools.values_mut().flat_map(|p| p.values_mut()) {
            state.line.promote(now_ms);
        }

        // Forced messages first: only their number can send them.
        let forced_numbers: Vec<String> = self.forced.keys().cloned().collect();
        for number in forced_numbers {
            let Some(slot) = self.numbers.get(&number) else { continue };
            if !slot.info.online || slot.current.is_some() || !slot.hours_open(now_ms) {
                continue;
            }
            let view = View::new(slot, &schedule, now_ms);
            let mut line = self.forced.remove(&number).expect("listed");
            let ids = [number.clone()];
            out.extend(self.scan(&mut line, &ids, now_ms, rng, |d, entry, _| {
                d.forced_verdict(entry, &view, now_ms)
            }));
            if !line.is_empty() {
                self.forced.insert(number, line);
            }
        }

        // Then the pools: each pool's ready numbers, gathered once.
        let mut ready: BTreeMap<(&str, &str), Vec<View>> = BTreeMap::new();
        for slot in self.numbers.values() {
            let info = &slot.info;
            if slot.current.is_some()
                || slot.ready_at_ms > now_ms
                || !self.takes_pool_work(slot)
                || !slot.hours_open(now_ms)
            {
                continue;
            }
            let view = View::new(slot, &schedule, now_ms);
            if view.caps_earliest_ms == i64::MAX {
                continue;
            }
            ready.entry((&info.tenant_id, &info.pool)).or_default().push(view);
        }
        // Owned keys once per pool, not once per number (the loop below changes `self`).
        let ready: Vec<((String, String), Vec<View>)> = ready
            .into_iter()
            .map(|((t, p), views)| ((t.to_string(), p.to_string()), views))
            .collect();
        for ((tenant, pool), views) in ready {
            let Some(state) = self.pools.get_mut(&tenant).and_then(|p| p.get_mut(&pool)) else {
                continue;
            };
            let mut line = std::mem::take(&mut state.line);
            let policy = state.policy;
            let mut rotation = std::mem::take(&mut state.rotation);
            let mut free: Vec<bool> = vec![true; views.len()];
            let ids: Vec<String> = views.iter().map(|v| v.id.clone()).collect();
            // Messages alike for every number that found none wait until one is handed out.
            let mut waiting_alike: HashSet<(i64, i64, bool)> = HashSet::new();
            out.extend(self.scan(&mut line, &ids, now_ms, rng, |d, entry, rng| {
                if entry.expired(now_ms) {
                    return Verdict::Skip;
                }
                let floor = entry.floor_ms();
                let key = d
                    .contacts
                    .first_contacts_of(&entry.msg)
                    .same_for_all()
                    .map(|fc| (floor, d.pace_earliest(&entry.msg, floor), fc));
                if key.is_some_and(|k| waiting_alike.contains(&k)) {
                    return Verdict::Wait;
                }
                let verdict =
                    d.pool_verdict(entry, &views, &free, policy, &mut rotation, now_ms, rng);
                match verdict {
                    Verdict::Take(k, _) => {
                        free[k] = false;
                        waiting_alike.clear();
                    }
                    Verdict::Wait => waiting_alike.extend(key),
                    Verdict::Skip => {}
                }
                verdict
            }));
            let state = self.pools.get_mut(&tenant).and_then(|p| p.get_mut(&pool)).expect("kept");
            state.line = line;
            state.rotation = rotation;
        }
        out
    }

    /// Walks a queue's messages in order, asking `verdict` about each, and hands out at once
    /// those it gives a number (so the next verdicts see their sends), until [`LOOKAHEAD`]
    /// messages were left in place, every number (`ids`) got one, or the queue ends.
    fn scan<R: Rng>(
        &mut self,
        line: &mut Line,
        ids: &[String],
        now_ms: i64,
        rng: &mut R,
        mut verdict: impl FnMut(&Self, &Entry, &mut R) -> Verdict,
    ) -> Vec<Assignment> {
        let mut out = Vec::new();
        let mut waiting: HashSet<String> = HashSet::new();
        let (mut i, mut left) = (0, 0);
        while i < line.ready.len() && left < LOOKAHEAD && out.len() < ids.len() {
            let entry = &line.ready[i];
            let contact = entry.msg.contact.as_deref();
            let held_back = contact.is_some_and(|c| waiting.contains(c));
            let v = if held_back { Verdict::Wait } else { verdict(self, entry, rng) };
            match v {
                Verdict::Take(k, choice) => {
                    let entry = line.ready.remove(i).expect("in range");
                    out.push(self.start(&ids[k], entry, choice, now_ms, rng));
                }
                Verdict::Wait => {
                    if let Some(c) = contact {
                        waiting.insert(c.to_string());
                    }
                    i += 1;
                    left += 1;
                }
                Verdict::Skip => {
                    i += 1;
                    left += 1;
                }
            }
        }
        out
    }

    /// The earliest a message may start as far as its contact's pace goes (its shortest
    /// typing taken off, as for the caps).
    fn pace_earliest(&self, msg: &QueuedMessage, floor_ms: i64) -> i64 {
        let Some(contact) = msg.contact.as_deref() else { return i64::MIN };
        let per_hour = self.pool_policy(&msg.tenant_id, &msg.pool).per_contact_per_hour;
        let at = self.contacts.pace_earliest(&msg.tenant_id, contact, per_hour);
        if at == i64::MIN {
            at
        } else {
            at.saturating_sub(floor_ms)
        }
    }

    fn forced_verdict(&self, entry: &Entry, view: &View, now_ms: i64) -> Verdict {
        if entry.expired(now_ms) {
            return Verdict::Skip;
        }
        let floor = entry.floor_ms();
        let fc = self.contacts.first_contact(&entry.msg, &view.id);
        match view.start_ms(floor, self.pace_earliest(&entry.msg, floor), fc) {
            Some(t) if view.can_start_now(t, now_ms) => Verdict::Take(0, Choice::Forced),
            _ => Verdict::Wait,
        }
    }

    /// The number a pool message must go to, when its contact sticks to one that is online
    /// and in rotation in its pool.
    fn sticky_number<'a>(&'a self, msg: &'a QueuedMessage, policy: PoolPolicy) -> Option<&'a str> {
        if !policy.sticky {
            return None;
        }
        let contact = msg.contact.as_deref()?;
        let number = self
            .contacts
            .sticky_in(&msg.tenant_id, contact, &msg.pool)
            .or(msg.sticky_to.as_deref())?;
        let slot = self.numbers.get(number)?;
        let i = &slot.info;
        let here = i.tenant_id == msg.tenant_id && i.pool == msg.pool;
        (here && i.online && self.takes_pool_work(slot)).then_some(number)
    }

    #[allow(clippy::too_many_arguments)]
    fn pool_verdict(
        &self,
        entry: &Entry,
        views: &[View],
        free: &[bool],
        policy: PoolPolicy,
        rotation: &mut RotationState,
        now_ms: i64,
        rng: &mut impl Rng,
    ) -> Verdict {
        if entry.expired(now_ms) {
            return Verdict::Skip;
        }
        let msg = &entry.msg;
        let floor = entry.floor_ms();
        let earliest = self.pace_earliest(msg, floor);
        if earliest > now_ms {
            return Verdict::Wait;
        }
        let firsts = self.contacts.first_contacts_of(msg);
        let can = |k: usize| {
            let v = &views[k];
            let fc = firsts.is_first(&v.id);
            free[k] && v.start_ms(floor, earliest, fc).is_some_and(|t| v.can_start_now(t, now_ms))
        };
        if let Some(sticky) = self.sticky_number(msg, policy) {
            return match views.iter().position(|v| v.id == sticky) {
                Some(k) if can(k) => Verdict::Take(k, Choice::Sticky),
                _ => Verdict::Wait,
            };
        }
        let mut eligible: Vec<usize> = (0..views.len()).filter(|&k| can(k)).collect();
        let mut choice = Choice::Rotation;
        if policy.prefer_country {
            if let Some(code) = msg.contact.as_deref().and_then(recipient_code) {
                let local: Vec<usize> = eligible
                    .iter()
                    .copied()
                    .filter(|&k| views[k].country_code == Some(code))
                    .collect();
                if !local.is_empty() && local.len() < eligible.len() {
                    eligible = local;
                    choice = Choice::Geo;
                }
            }
        }
        let candidates: Vec<Candidate> = eligible
            .iter()
            .map(|&k| Candidate {
                key: &views[k].id,
                warmed: views[k].warmed,
                health: views[k].health,
                used: views[k].used,
            })
            .collect();
        match pick(policy.strategy, &candidates, rotation, rng) {
            Some(c) => Verdict::Take(eligible[c], choice),
            None => Verdict::Wait,
        }
    }

    /// Hands `entry` to `number`: draws the typing time (and the pre-delay of a first
    /// contact), starts a re-warm when the number was idle, and records the send at the
    /// earliest moment it can happen.
    fn start(
        &mut self,
        number: &str,
        entry: Entry,
        choice: Choice,
        now_ms: i64,
        rng: &mut impl Rng,
    ) -> Assignment {
        let first_contact = self.contacts.first_contact(&entry.msg, number);
        let slot = self.numbers.get_mut(number).expect("a ready number exists");
        let pre_delay = if first_contact { gap_ms(&slot.info.limits, rng) } else { 0 };
        let typing = typing_ms(entry.msg.text_chars, rng);
        let send_at = now_ms.saturating_add(pre_delay as i64).saturating_add(typing as i64);
        let rewarm_started = self.schedule.starts_rewarm(slot.last_send_ms, now_ms).then(|| {
            slot.rewarm_from_ms = Some(now_ms);
            now_ms
        });
        slot.log.record(send_at);
        if first_contact {
            slot.first_contacts.record(send_at);
        }
        slot.note_send(send_at);
        let msg = &entry.msg;
        let contact = msg.contact.as_ref().map(|c| {
            self.contacts.record_send(&msg.tenant_id, c, send_at);
            let pool = &slot.info.pool;
            let handed = self.contacts.handed(&msg.tenant_id, c, pool, number);
            (msg.tenant_id.clone(), c.clone(), handed)
        });
        slot.current = Some(Current {
            message_id: msg.id.clone(),
            send_at_ms: send_at,
            first_contact,
            contact,
        });
        if let Some(at) = msg.expires_at_ms {
            self.expiries.remove(&(at, msg.id.clone()));
        }
        self.places.insert(msg.id.clone(), Place::InFlight(number.to_string()));
        let assignment = Assignment {
            message_id: msg.id.clone(),
            number_id: number.to_string(),
            typing_ms: typing,
            choice,
            first_contact,
            pre_delay_ms: pre_delay,
            rewarm_started,
        };
        self.in_flight.insert(msg.id.clone(), entry);
        assignment
    }

    /// The send of `number_id` is over (pre-delay, typing, send and `paused` done; whether it
    /// succeeded or failed for good): the number is free again after a gap, which is drawn,
    /// applied and returned. Its send is counted at `now_ms` from now on.
    pub fn finished(&mut self, number_id: &str, now_ms: i64, rng: &mut impl Rng) -> u64 {
        let Some(slot) = self.numbers.get_mut(number_id) else {
            // Removed while sending: forget what it was sending.
            let ours: Vec<String> = self
                .places
                .iter()
                .filter(|(_, p)| **p == Place::InFlight(number_id.to_string()))
                .map(|(id, _)| id.clone())
                .collect();
            for id in ours {
                self.places.remove(&id);
                if let Some(entry) = self.in_flight.remove(&id) {
                    self.leave_contact(&entry.msg);
                }
            }
            return 0;
        };
        if let Some(cur) = slot.current.take() {
            slot.log.settle(cur.send_at_ms, now_ms);
            if cur.first_contact {
                slot.first_contacts.settle(cur.send_at_ms, now_ms);
            }
            slot.note_send(now_ms);
            if let Some((tenant, contact, _)) = &cur.contact {
                self.contacts.settle_send(tenant, contact, cur.send_at_ms, now_ms);
            }
            self.places.remove(&cur.message_id);
            if let Some(entry) = self.in_flight.remove(&cur.message_id) {
                self.leave_contact(&entry.msg);
            }
        }
        let slot = self.numbers.get_mut(number_id).expect("still there");
        let gap = gap_ms(&slot.info.limits, rng);
        slot.ready_at_ms = now_ms.saturating_add(gap as i64);
        gap
    }

    /// The attempt of `assignment` failed in a way another attempt may fix (typically the number
    /// dropped): the message goes back to exactly where it was in its queue (its pool's, or its
    /// forced number's), ahead of everything queued after it, and the number is free. The
    /// attempt stays counted against the number's caps (it may have gone out), at `now_ms`.
    /// No gap is drawn: the number is usually offline by then. False when the message is not
    /// being sent.
    pub fn requeue(&mut self, assignment: &Assignment, now_ms: i64) -> bool {
        let Some(entry) = self.in_flight.remove(&assignment.message_id) else {
            return false;
        };
        if let Some(Place::InFlight(number)) = self.places.remove(&entry.msg.id) {
            if let Some(slot) = self.numbers.get_mut(&number) {
                if slot.current.as_ref().is_some_and(|c| c.message_id == entry.msg.id) {
                    let cur = slot.current.take().expect("checked");
                    slot.log.settle(cur.send_at_ms, now_ms);
                    if cur.first_contact {
                        slot.first_contacts.settle(cur.send_at_ms, now_ms);
                    }
                    if let Some((tenant, contact, _)) = &cur.contact {
                        self.contacts.settle_send(tenant, contact, cur.send_at_ms, now_ms);
                    }
                }
            }
        }
        self.add(entry, false)
    }

    /// Ends an assignment whose send did not happen and will not (the recipient is not on
    /// WhatsApp): the number is free again at once, with no gap, and neither the send nor the
    /// first contact counts against any cap (nor against the contact's pace); the contact does
    /// not stick to the number. The message leaves the dispatcher (the caller fails it). A
    /// re-warm the assignment started stays. False when the message is not being sent.
    pub fn abandon(&mut self, assignment: &Assignment, now_ms: i64) -> bool {
        let _ = now_ms;
        let Some(entry) = self.in_flight.remove(&assignment.message_id) else {
            return false;
        };
        if let Some(Place::InFlight(number)) = self.places.remove(&entry.msg.id) {
            if let Some(slot) = self.numbers.get_mut(&number) {
                if slot.current.as_ref().is_some_and(|c| c.message_id == entry.msg.id) {
                    let cur = slot.current.take().expect("checked");
                    slot.log.remove_one(cur.send_at_ms);
                    if cur.first_contact {
                        slot.first_contacts.remove_one(cur.send_at_ms);
                    }
                    if let Some((tenant, contact, handed)) = cur.contact {
                        self.contacts.unrecord_send(&tenant, &contact, cur.send_at_ms);
                        self.contacts.unhand(&tenant, &contact, &number, handed);
                    }
                }
            }
        }
        self.leave_contact(&entry.msg);
        true
    }

    /// Records a send that happened outside this dispatcher (for example before a restart, read
    /// back from the store) so that the caps count it. False for an unknown number.
    pub fn record_send(&mut self, number_id: &str, at_ms: i64) -> bool {
        match self.numbers.get_mut(number_id) {
            Some(slot) => {
                slot.log.record(at_ms);
                slot.note_send(at_ms);
                true
            }
            None => false,
        }
    }

    /// Records a first contact the number made outside this dispatcher (history replayed after
    /// a restart) so that its first-contact cap counts it. Record the send itself with
    /// [`Dispatcher::record_send`]. False for an unknown number.
    pub fn record_first_contact(&mut self, number_id: &str, at_ms: i64) -> bool {
        match self.numbers.get_mut(number_id) {
            Some(slot) => {
                slot.first_contacts.record(at_ms);
                true
            }
            None => false,
        }
    }

    /// Records a send to a contact made outside this dispatcher (history replayed after a
    /// restart) so that the per-contact pace counts it. Replay the contact's last inbound
    /// message afterwards with [`Dispatcher::contact_replied`].
    pub fn record_contact_send(&mut self, tenant_id: &str, contact: &str, at_ms: i64) {
        self.contacts.record_send(tenant_id, contact, at_ms);
    }

    /// When to poll next: the earliest time at which a number could take a message (forced
    /// to it, or of its pool's queue while in rotation), a scheduled message is due, or a
    /// queued message expires, if nothing else changes. `Some(now)` when a poll could assign
    /// something right away, or when a message is due or expired (call
    /// [`Dispatcher::take_expired`] and [`Dispatcher::poll`]); `None` when nothing is queued,
    /// or no number that could take what is queued is online and idle (then only an outside
    /// event — a finished send, a number connecting, a new message — can change that).
    ///
    /// It wakes a capped warming (or re-warming) number at the start of its next day, when its
    /// cap grows, and a number outside its active hours when they open.
    pub fn next_wakeup_ms(&self, now_ms: i64) -> Option<i64> {
        let mut best: Option<i64> = None;
        let mut consider = |t: i64| {
            let t = t.max(now_ms);
            best = Some(best.map_or(t, |b: i64| b.min(t)));
        };
        if let Some(((at, _), _)) = self.expiries.first_key_value() {
            consider(*at);
        }
        let pools = self.pools.values().flat_map(|p| p.values());
        for line in pools.map(|p| &p.line).chain(self.forced.values()) {
            if let Some(at) = line.next_due_ms() {
                consider(at);
            }
        }

        // Per number: the earliest it could start one of the messages a poll would look at.
        let schedule = &self.schedule;
        for (number, line) in &self.forced {
            let Some(slot) = self.numbers.get(number) else { continue };
            if !slot.info.online || slot.current.is_some() {
                continue;
            }
            let view = View::new(slot, schedule, now_ms);
            let mut min = None;
            self.walk(line, now_ms, |entry| {
                if entry.expired(now_ms) {
                    return None;
                }
                let floor = entry.floor_ms();
                let fc = self.contacts.first_contact(&entry.msg, number);
                let t = view.start_ms(floor, self.pace_earliest(&entry.msg, floor), fc);
                let m: &mut i64 = min.get_or_insert(i64::MAX);
                *m = (*m).min(t.unwrap_or(i64::MAX));
                Some(t.is_some_and(|t| view.can_start_now(t, now_ms)))
            });
            if let Some(at) = min.and_then(|t| self.wake_of(slot, t, now_ms)) {
                consider(at);
            }
        }
        // Each view beside its slot: no lookup by id for its wake-up below.
        let mut by_pool: BTreeMap<(&str, &str), ViewsAndSlots> = BTreeMap::new();
        for slot in self.numbers.values() {
            if slot.current.is_some() || !self.takes_pool_work(slot) {
                continue;
            }
            let i = &slot.info;
            let (views, slots) = by_pool.entry((&i.tenant_id, &i.pool)).or_default();
            views.push(View::new(slot, schedule, now_ms));
            slots.push(slot);
        }
        for ((tenant, pool), (views, slots)) in &by_pool {
            let Some(state) = self.pool(tenant, pool) else { continue };
            let policy = state.policy;
            let mut mins: Vec<Option<i64>> = vec![None; views.len()];
            // Messages alike for every number (same shortest typing and pace, no sticky
            // number, first contact for all or for none) give the same answers: asked once.
            let mut alike: HashMap<(i64, i64, bool), bool> = HashMap::new();
            self.walk(&state.line, now_ms, |entry| {
                if entry.expired(now_ms) {
                    return None;
                }
                let msg = &entry.msg;
                let floor = entry.floor_ms();
                let earliest = self.pace_earliest(msg, floor);
                let firsts = self.contacts.first_contacts_of(msg);
                let key = firsts.same_for_all().map(|fc| (floor, earliest, fc));
                if let Some(seen) = key.and_then(|k| alike.get(&k)) {
                    return Some(*seen);
                }
                let sticky = self.sticky_number(msg, policy);
                let mut now_possible = false;
                for (k, v) in views.iter().enumerate() {
                    if sticky.is_some_and(|s| s != v.id) {
                        continue;
                    }
                    let t = v.start_ms(floor, earliest, firsts.is_first(&v.id));
                    now_possible |= t.is_some_and(|t| v.can_start_now(t, now_ms));
                    let m = mins[k].get_or_insert(i64::MAX);
                    *m = (*m).min(t.unwrap_or(i64::MAX));
                }
                if let Some(k) = key {
                    alike.insert(k, now_possible);
                }
                Some(now_possible)
            });
            for (slot, min) in slots.iter().zip(mins) {
                if let Some(at) = min.and_then(|t| self.wake_of(slot, t, now_ms)) {
                    consider(at);
                }
            }
        }
        best
    }

    /// When to wake for a number that could start a message at `t` at the earliest (gap and
    /// caps; `i64::MAX`: not under its current caps): the first instant from then inside its
    /// active hours, or sooner the next start of a warming or re-warming day, when its caps
    /// grow. `None`: never by itself.
    fn wake_of(&self, slot: &Slot, t: i64, now_ms: i64) -> Option<i64> {
        let mut at = if t == i64::MAX {
            i64::MAX
        } else {
            let t = t.max(now_ms);
            match slot.info.active_hours.as_ref() {
                Some(w) => w.next_open_ms(t).unwrap_or(i64::MAX),
                None => t,
            }
        };
        if at > now_ms {
            if let Some(change) = slot.next_cap_change_ms(&self.schedule, now_ms) {
                at = at.min(change.max(slot.ready_at_ms));
            }
        }
        (at != i64::MAX).then_some(at)
    }

    /// Walks the messages of a queue a poll would look at, in order: `f` answers whether the
    /// message could go now (`None`: it is skipped without holding back its contact), and
    /// stops at [`LOOKAHEAD`] messages that could not, as a poll does. Later messages to a
    /// contact whose earlier one cannot go now are not asked about.
    fn walk(&self, line: &Line, now_ms: i64, mut f: impl FnMut(&Entry) -> Option<bool>) {
        let _ = now_ms;
        let mut waiting: HashSet<&str> = HashSet::new();
        for entry in line.ready.iter().take(LOOKAHEAD) {
            let contact = entry.msg.contact.as_deref();
            if contact.is_some_and(|c| waiting.contains(c)) {
                continue;
            }
            if f(entry) == Some(false) {
                if let Some(c) = contact {
                    waiting.insert(c);
                }
            }
        }
    }

    /// True when the pool has a number that is online and in rotation, whether or not it is
    /// under its caps right now: a message accepted then waits for capacity. False is what
    /// answers 409 `no_number_available`.
    pub fn has_capacity_somewhere(&self, tenant_id: &str, pool: &str) -> bool {
        self.numbers.values().any(|s| {
            s.info.tenant_id == tenant_id
                && s.info.pool == pool
                && s.info.online
                && s.info.in_rotation
        })
    }

    /// Messages waiting in the pool's queue, scheduled ones included (not counting those forced
    /// to a number).
    pub fn queue_depth(&self, tenant_id: &str, pool: &str) -> usize {
        self.pool(tenant_id, pool).map_or(0, |p| p.line.len())
    }

    /// Messages forced to this number and still queued.
    pub fn forced_depth(&self, number_id: &str) -> usize {
        self.forced.get(number_id).map_or(0, |q| q.len())
    }

    /// Every queued message (pools and forced), not counting those being sent.
    pub fn queued_total(&self) -> usize {
        self.places.values().filter(|p| **p == Place::Queued).count()
    }

    /// What the dispatcher knows about a number at `now_ms`; `None` for an unknown number.
    pub fn number_stats(&self, number_id: &str, now_ms: i64) -> Option<NumberStats> {
        let slot = self.numbers.get(number_id)?;
        let s = &self.schedule;
        let caps = slot.caps(s, now_ms);
        let new_contacts_cap = slot.new_contacts_cap(s, now_ms);
        Some(NumberStats {
            busy: slot.current.is_some(),
            ready_at_ms: slot.ready_at_ms,
            next_allowed_ms: slot.log.next_allowed_ms(now_ms, &caps),
            warmed: slot.warmed(now_ms),
            caps,
            sent_last_minute: slot.log.count_in_window(now_ms, MINUTE_MS),
            sent_last_hour: slot.log.count_in_window(now_ms, HOUR_MS),
            sent_last_day: slot.log.count_in_window(now_ms, DAY_MS),
            forced_queued: self.forced.get(number_id).map_or(0, |q| q.len()),
            new_contacts_cap,
            new_contacts_last_day: slot.first_contacts.count_in_window(now_ms, DAY_MS),
            rewarming: s.is_rewarming(slot.rewarm_from_ms, now_ms),
            rewarm_until_ms: s
                .rewarm_until_ms(slot.rewarm_from_ms)
                .filter(|_| s.is_rewarming(slot.rewarm_from_ms, now_ms)),
            resting: self.resting(slot, now_ms),
        })
    }

    /// Why a number takes nothing now: the first reason that applies, in [`Rest`]'s order.
    fn resting(&self, slot: &Slot, now_ms: i64) -> Option<Rest> {
        let s = &self.schedule;
        let i = &slot.info;
        if !i.online {
            return Some(Rest::Offline);
        }
        if !slot.hours_open(now_ms) {
            return Some(Rest::QuietHours);
        }
        if !i.in_rotation {
            return Some(Rest::Health);
        }
        if slot.current.is_some() {
            return None;
        }
        if slot.ready_at_ms > now_ms {
            return Some(Rest::Gap);
        }
        if slot.log.earliest_allowed_ms(&slot.caps(s, now_ms)) > now_ms {
            let full = Caps::effective(&i.limits, i.limits.per_day);
            if slot.log.earliest_allowed_ms(&full) > now_ms {
                return Some(Rest::Cap);
            }
            let rewarm_lower = slot.rewarm_day_cap(s, now_ms) < slot.warming_day_cap(s, now_ms);
            return Some(if rewarm_lower { Rest::Rewarming } else { Rest::Warming });
        }
        let fc_cap = slot.new_contacts_cap(s, now_ms);
        if slot.first_contacts.earliest_within(DAY_MS, fc_cap) > now_ms {
            return Some(Rest::FirstContactCap);
        }
        None
    }

    /// Whether the number may take its pool's messages: online, in rotation, and with some
    /// health when the pool weighs by health (a pick never lands on health 0, so such a number
    /// must not count as able to take a message either).
    fn takes_pool_work(&self, slot: &Slot) -> bool {
        let i = &slot.info;
        // The pool's policy is looked up only for a number at zero health (a map lookup per
        // number and poll otherwise).
        let weightless = || {
            i.health == 0
                && self.pool_policy(&i.tenant_id, &i.pool).strategy == Strategy::HealthWeighted
        };
        i.online && i.in_rotation && !weightless()
    }

    fn pool(&self, tenant_id: &str, pool: &str) -> Option<&PoolState> {
        self.pools.get(tenant_id)?.get(pool)
    }

    fn pool_mut(&mut self, tenant_id: &str, pool: &str) -> &mut PoolState {
        self.pools.entry(tenant_id.to_string()).or_default().entry(pool.to_string()).or_default()
    }

    /// Puts an entry in its queue at its place in line, unless its id is already known.
    /// `fresh`: new to the dispatcher (not a requeue), so its contact gains a pending message.
    fn add(&mut self, entry: Entry, fresh: bool) -> bool {
        if self.places.contains_key(&entry.msg.id) {
            return false;
        }
        let msg = &entry.msg;
        self.places.insert(msg.id.clone(), Place::Queued);
        if let Some(at) = msg.expires_at_ms {
            self.expiries.insert((at, msg.id.clone()), LineKey::of(msg));
        }
        if fresh {
            if let Some(c) = &msg.contact {
                self.contacts.pending_add(&msg.tenant_id, c);
            }
        }
        let line = match LineKey::of(msg) {
            LineKey::Forced(number) => self.forced.entry(number).or_default(),
            LineKey::Pool(tenant, pool) => &mut self.pool_mut(&tenant, &pool).line,
        };
        line.insert(entry);
        true
    }

    /// A queued message leaves the dispatcher (removed, taken, expired).
    fn leave(&mut self, msg: &QueuedMessage) {
        self.places.remove(&msg.id);
        if let Some(at) = msg.expires_at_ms {
            self.expiries.remove(&(at, msg.id.clone()));
        }
        self.leave_contact(msg);
    }

    fn leave_contact(&mut self, msg: &QueuedMessage) {
        if let Some(c) = &msg.contact {
            self.contacts.pending_sub(&msg.tenant_id, c);
        }
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod rules_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    const SEC: i64 = 1_000;

    fn number(id: &str, warmed: bool) -> NumberInfo {
        NumberInfo {
            id: id.into(),
            tenant_id: "t1".into(),
            pool: "default".into(),
            online: true,
            in_rotation: true,
            health: 100,
            limits: Limits::default(),
            warming_days: 5,
            // Warmed: connected a month ago. Warming: connected just now (day 1).
            first_connected_at_ms: Some(if warmed { T0 - 30 * DAY_MS } else { T0 }),
            ..NumberInfo::default()
        }
    }

    fn msg(id: &str) -> QueuedMessage {
        QueuedMessage {
            id: id.into(),
            tenant_id: "t1".into(),
            pool: "default".into(),
            forced_instance: None,
            text_chars: 40,
            ..QueuedMessage::default()
        }
    }

    fn forced(id: &str, to: &str) -> QueuedMessage {
        QueuedMessage { forced_instance: Some(to.into()), ..msg(id) }
    }

    fn rng() -> StdRng {
        StdRng::seed_from_u64(11)
    }

    /// Drives a dispatcher like the server's send loop: each send goes out `latency` after its
    /// typing and is then reported finished. Returns (message, number, send time) in send order.
    struct Sim {
        d: Dispatcher,
        rng: StdRng,
        now: i64,
        latency: i64,
        in_flight: Vec<(i64, Assignment)>,
        sent: Vec<(String, String, i64)>,
    }

    impl Sim {
        fn new(d: Dispatcher) -> Self {
            Sim { d, rng: rng(), now: T0, latency: 300, in_flight: vec![], sent: vec![] }
        }

        /// Runs until `until` or until nothing more can happen.
        fn run_until(&mut self, until: i64) {
            loop {
                let busy: BTreeSet<String> =
                    self.in_flight.iter().map(|(_, a)| a.number_id.clone()).collect();
                let new = self.d.poll(self.now, &mut self.rng);
                for a in new {
                    assert!(!busy.contains(&a.number_id), "two sends at once: {a:?}");
                    let done = self.now + a.typing_ms as i64 + self.latency;
                    self.in_flight.push((done, a));
                }
                let next_done = self.in_flight.iter().map(|(t, _)| *t).min();
                let next = match (next_done, self.d.next_wakeup_ms(self.now)) {
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => match a.or(b) {
                        Some(t) => t,
                        None => return,
                    },
                };
                assert!(next > self.now || next_done == Some(self.now), "no progress at {next}");
                if next > until {
                    self.now = until;
                    return;
                }
                self.now = next;
                let (done, pending): (Vec<_>, Vec<_>) =
                    self.in_flight.drain(..).partition(|(t, _)| *t <= self.now);
                self.in_flight = pending;
                for (t, a) in done {
                    self.d.finished(&a.number_id, t, &mut self.rng);
                    self.sent.push((a.message_id, a.number_id, t));
                }
            }
        }
    }

    #[test]
    fn round_robin_cycles_exactly_over_three_ready_numbers() {
        let mut d = Dispatcher::default();
        for id in ["c", "a", "b"] {
            d.upsert_number(number(id, true));
        }
        let mut r = rng();
        let mut got = vec![];
        // One message at a time, each time with every number ready again.
        for i in 0..9 {
            let now = T0 + i * 30 * SEC;
            d.enqueue(msg(&format!("m{i}")));
            let a = d.poll(now, &mut r);
            assert_eq!(a.len(), 1);
            d.finished(&a[0].number_id, now + 10 * SEC, &mut r);
            got.push(a[0].number_id.clone());
        }
        assert_eq!(got, ["a", "b", "c", "a", "b", "c", "a", "b", "c"]);
        // Several at once: one each, in order.
        for i in 0..4 {
            d.enqueue(msg(&format!("n{i}")));
        }
        let a = d.poll(T0 + HOUR_MS, &mut r);
        let order: Vec<&str> = a.iter().map(|a| a.number_id.as_str()).collect();
        assert_eq!(order, ["a", "b", "c"]);
        assert_eq!(d.queue_depth("t1", "default"), 1);
    }

    #[test]
    fn least_used_picks_the_least_used_number() {
        let mut d = Dispatcher::default();
        d.set_strategy("t1", "default", Strategy::LeastUsed);
        for (id, sent) in [("a", 5), ("b", 2), ("c", 7)] {
            d.upsert_number(number(id, true));
            for k in 0..sent {
                assert!(d.record_send(id, T0 - HOUR_MS - k * MINUTE_MS));
            }
        }
        let mut r = rng();
        let mut got = vec![];
        for i in 0..6 {
            let now = T0 + i * MINUTE_MS;
            d.enqueue(msg(&format!("m{i}")));
            let a = d.poll(now, &mut r);
            d.finished(&a[0].number_id, now + 10 * SEC, &mut r);
            got.push(a[0].number_id.clone());
        }
        // b catches up with a (2 → 5, then ties go by id), then both reach c.
        assert_eq!(got, ["b", "b", "b", "a", "b", "a"]);
    }

    #[test]
    fn health_weighted_sends_in_proportion_to_health() {
        let mut d = Dispatcher::default();
        d.set_strategy("t1", "default", Strategy::HealthWeighted);
        for (id, health) in [("a", 90), ("b", 45)] {
            d.upsert_number(NumberInfo { health, ..number(id, true) });
        }
        let mut r = rng();
        let mut a_count = 0;
        let n = 3_000;
        for i in 0..n {
            // Far enough apart that both numbers are always ready and under their caps.
            let now = T0 + i * 10 * MINUTE_MS;
            d.enqueue(msg(&format!("m{i}")));
            let a = d.poll(now, &mut r);
            d.finished(&a[0].number_id, now + 10 * SEC, &mut r);
            a_count += usize::from(a[0].number_id == "a");
        }
        let share = a_count as f64 / n as f64;
        assert!((share - 2.0 / 3.0).abs() < 0.03, "{share}");
    }

    #[test]
    fn health_weighted_never_waits_on_a_zero_health_number() {
        // With a threshold of 0 a number at health 0 stays in rotation; health_weighted never
        // picks it, so it must not be reported as able to take anything either.
        let mut d = Dispatcher::default();
        d.set_strategy("t1", "default", Strategy::HealthWeighted);
        d.upsert_number(NumberInfo { health: 0, ..number("zero", true) });
        d.upsert_number(NumberInfo { health: 10, ..number("weak", false) });
        for i in 0..5 {
            d.enqueue(msg(&format!("m{i}")));
        }
        let mut sim = Sim::new(d);
        sim.run_until(T0 + DAY_MS);
        assert_eq!(sim.sent.len(), 5);
        assert!(sim.sent.iter().all(|(_, n, _)| n == "weak"));
    }

    #[test]
    fn warming_numbers_are_only_the_fallback() {
        let mut d = Dispatcher::default();
        let w = NumberInfo {
            limits: Limits { per_minute: 2, ..Limits::default() },
            ..number("w", true)
        };
        d.upsert_number(w);
        d.upsert_number(number("f1", false));
        d.upsert_number(number("f2", false));
        let mut r = rng();
        // With the warmed number ready, the warming ones get nothing.
        for i in 0..10 {
            let now = T0 + i * 2 * MINUTE_MS;
            d.enqueue(msg(&format!("m{i}")));
            let a = d.poll(now, &mut r);
            assert_eq!(a[0].number_id, "w");
            d.finished("w", now + 10 * SEC, &mut r);
        }
        // The warmed number busy: a warming one sends.
        let now = T0 + HOUR_MS;
        d.enqueue(msg("x1"));
        d.enqueue(msg("x2"));
        let a = d.poll(now, &mut r);
        assert_eq!((a[0].number_id.as_str(), a[1].number_id.as_str()), ("w", "f1"));
        d.finished("w", now + 5 * SEC, &mut r);
        d.finished("f1", now + 5 * SEC, &mut r);
        // The warmed number at its cap (2 a minute) but past its gap: a warming one sends.
        let now = now + 20 * SEC;
        d.enqueue(msg("y1"));
        let a = d.poll(now, &mut r);
        assert_eq!(a[0].number_id, "w");
        d.finished("w", now + 5 * SEC, &mut r);
        let now = now + 20 * SEC;
        let stats = d.number_stats("w", now).unwrap();
        assert!(stats.next_allowed_ms > now && stats.ready_at_ms <= now, "{stats:?}");
        d.enqueue(msg("y2"));
        let a = d.poll(now, &mut r);
        assert!(a[0].number_id.starts_with('f'), "{a:?}");
    }

    #[test]
    fn a_number_out_of_rotation_is_never_picked_but_sends_what_is_forced_to_it() {
        let mut d = Dispatcher::default();
        d.upsert_number(number("a", true));
        d.upsert_number(NumberInfo { in_rotation: false, health: 30, ..number("sick", true) });
        for i in 0..40 {
            d.enqueue(msg(&format!("m{i}")));
        }
        d.enqueue(forced("f", "sick"));
        let mut sim = Sim::new(d);
        sim.run_until(T0 + DAY_MS);
        assert_eq!(sim.sent.len(), 41);
        for (m, n, _) in &sim.sent {
            assert_eq!(n == "sick", m == "f", "{m} went to {n}");
        }
    }

    #[test]
    fn forced_messages_go_only_to_their_number_even_while_warming() {
        let mut d = Dispatcher::default();
        d.upsert_number(number("w1", true));
        d.upsert_number(number("w2", true));
        d.upsert_number(number("fresh", false));
        for i in 0..30 {
            d.enqueue(forced(&format!("f{i}"), "fresh"));
            d.enqueue(msg(&format!("p{i}")));
        }
        assert_eq!(d.queued_for_number("fresh").len(), 30);
        let mut sim = Sim::new(d);
        sim.run_until(T0 + 2 * DAY_MS);
        let forced_senders: BTreeSet<&str> = sim
            .sent
            .iter()
            .filter(|(m, _, _)| m.starts_with('f'))
            .map(|(_, n, _)| n.as_str())
            .collect();
        assert_eq!(forced_senders, BTreeSet::from(["fresh"]));
        // The pool's messages all went to the warmed numbers: the fresh one was busy with its
        // own. And its day-1 cap (20) held the forced ones back until day 2 (47).
        let fresh: Vec<i64> =
            sim.sent.iter().filter(|(_, n, _)| n == "fresh").map(|(_, _, t)| *t).collect();
        assert_eq!(fresh.len(), 30);
        assert!(fresh[19] < T0 + DAY_MS && fresh[20] >= T0 + DAY_MS, "{fresh:?}");
        assert!(sim
            .sent
            .iter()
            .filter(|(m, _, _)| m.starts_with('p'))
            .all(|(_, n, _)| n != "fresh"));
    }

    #[test]
    fn a_forced_message_waits_for_its_offline_number() {
        let mut d = Dispatcher::default();
        d.upsert_number(number("a", true));
        d.upsert_number(NumberInfo { online: false, ..number("b", true) });
        d.enqueue(forced("f", "b"));
        let mut r = rng();
        assert!(d.poll(T0, &mut r).is_empty());
        assert_eq!(d.next_wakeup_ms(T0), None);
        d.upsert_number(number("b", true));
        assert_eq!(d.next_wakeup_ms(T0), Some(T0));
        let a = d.poll(T0, &mut r);
        assert_eq!((a[0].message_id.as_str(), a[0].number_id.as_str()), ("f", "b"));
        // Banned with forced messages queued: the caller takes them out to fail them.
        d.enqueue(forced("g", "b"));
        d.enqueue(forced("h", "b"));
        assert_eq!(d.queued_for_number("b"), ["g", "h"]);
        let taken: Vec<String> = d.take_forced("b").into_iter().map(|m| m.id).collect();
        assert_eq!(taken, ["g", "h"]);
        assert!(d.queued_for_number("b").is_empty());
        assert_eq!(d.queued_total(), 0);
    }

    #[test]
    fn requeue_keeps_fifo_order() {
        let mut d = Dispatcher::default();
        for id in ["a", "b", "c"] {
            d.upsert_number(number(id, true));
        }
        for i in 0..6 {
            d.enqueue(msg(&format!("m{i}")));
        }
        let mut r = rng();
        let first = d.poll(T0, &mut r);
        let ids: Vec<&str> = first.iter().map(|a| a.message_id.as_str()).collect();
        assert_eq!(ids, ["m0", "m1", "m2"]);
        // Two numbers drop mid-send, reported in any order: their messages return to where they
        // were, ahead of m3.
        for a in [&first[2], &first[0]] {
            assert!(d.requeue(a, T0 + 2 * SEC));
            d.upsert_number(NumberInfo { online: false, ..number(&a.number_id, true) });
        }
        assert!(!d.requeue(&first[0], T0 + 2 * SEC), "already requeued");
        d.finished("b", T0 + 3 * SEC, &mut r);
        // Only b is online: it takes them in the original order.
        let mut order = vec![];
        let mut now = T0 + 3 * SEC;
        while let Some(t) = d.next_wakeup_ms(now) {
            now = t;
            for a in d.poll(now, &mut r) {
                order.push(a.message_id.clone());
                now += 5 * SEC;
                d.finished(&a.number_id, now, &mut r);
            }
        }
        assert_eq!(order, ["m0", "m2", "m3", "m4", "m5"]);
    }

    #[test]
    fn enqueue_front_and_remove() {
        let mut d = Dispatcher::default();
        assert!(d.enqueue(msg("m1")));
        assert!(d.enqueue(msg("m2")));
        assert!(!d.enqueue(msg("m1")), "duplicate ids are refused");
        assert!(d.enqueue_front(msg("urgent")));
        assert!(d.enqueue(forced("f1", "x")));
        assert_eq!(d.queue_depth("t1", "default"), 3);
        assert_eq!(d.queued_total(), 4);
        assert!(d.remove_message("m1"));
        assert!(!d.remove_message("m1"));
        assert!(d.remove_message("f1"));
        assert!(d.queued_for_number("x").is_empty());
        d.upsert_number(number("a", true));
        let mut r = rng();
        let a = d.poll(T0, &mut r);
        assert_eq!(a[0].message_id, "urgent");
        assert!(!d.remove_message("urgent"), "being sent");
        d.finished("a", T0 + 5 * SEC, &mut r);
        let a = d.poll(T0 + MINUTE_MS, &mut r);
        assert_eq!(a[0].message_id, "m2");
    }

    #[test]
    fn a_number_at_its_cap_makes_messages_wait_and_wakes_up_when_the_cap_frees() {
        let mut d = Dispatcher::default();
        let limits = Limits { per_minute: 1, min_gap_ms: 0, max_gap_ms: 0, ..Limits::default() };
        d.upsert_number(NumberInfo { limits, ..number("a", true) });
        d.enqueue(msg("m1"));
        d.enqueue(msg("m2"));
        let mut r = rng();
        let a = d.poll(T0, &mut r);
        assert_eq!(a.len(), 1);
        assert_eq!(d.next_wakeup_ms(T0), None, "busy: only `finished` can free it");
        let sent_at = T0 + a[0].typing_ms as i64 + 300;
        d.finished("a", sent_at, &mut r);
        assert!(d.has_capacity_somewhere("t1", "default"), "at its cap, but it counts");
        // The next send may happen a minute after the first one, so typing may start up to the
        // shortest typing time (40 chars: 2550 ms) before that.
        let wake = d.next_wakeup_ms(sent_at).unwrap();
        assert_eq!(wake, sent_at + MINUTE_MS - typing_floor_ms(40) as i64);
        assert!(d.poll(wake - 1, &mut r).is_empty());
        let a = d.poll(wake, &mut r);
        assert_eq!(a[0].message_id, "m2");
        assert!(wake + a[0].typing_ms as i64 >= sent_at + MINUTE_MS);
        // Nothing queued: no wakeup.
        d.finished("a", wake + 5 * SEC, &mut r);
        assert_eq!(d.next_wakeup_ms(wake + 5 * SEC), None);
    }

    #[test]
    fn a_capped_warming_number_wakes_up_on_its_next_day() {
        let mut d = Dispatcher::default();
        d.upsert_number(number("fresh", false));
        for i in 0..21 {
            d.enqueue(msg(&format!("m{i}")));
        }
        let mut sim = Sim::new(d);
        sim.run_until(T0 + DAY_MS - 1);
        assert_eq!(sim.sent.len(), 20, "day 1 cap");
        assert_eq!(sim.d.next_wakeup_ms(sim.now), Some(T0 + DAY_MS));
        sim.run_until(T0 + DAY_MS + HOUR_MS);
        assert_eq!(sim.sent.len(), 21);
        assert!(sim.sent[20].2 >= T0 + DAY_MS);
    }

    #[test]
    fn capacity_means_online_and_in_rotation_not_under_the_caps() {
        let mut d = Dispatcher::default();
        assert!(!d.has_capacity_somewhere("t1", "default"));
        d.upsert_number(NumberInfo { online: false, ..number("a", true) });
        d.upsert_number(NumberInfo { in_rotation: false, ..number("b", true) });
        assert!(!d.has_capacity_somewhere("t1", "default"));
        d.upsert_number(number("c", false));
        assert!(d.has_capacity_somewhere("t1", "default"));
        assert!(!d.has_capacity_somewhere("t2", "default"));
        assert!(!d.has_capacity_somewhere("t1", "other"));
    }

    #[test]
    fn tenants_and_pools_do_not_share_numbers() {
        let mut d = Dispatcher::default();
        d.upsert_number(number("a", true));
        d.upsert_number(NumberInfo { pool: "sales".into(), ..number("s", true) });
        d.upsert_number(NumberInfo { tenant_id: "t2".into(), ..number("other", true) });
        for i in 0..10 {
            d.enqueue(msg(&format!("d{i}")));
            d.enqueue(QueuedMessage { pool: "sales".into(), ..msg(&format!("s{i}")) });
        }
        let mut sim = Sim::new(d);
        sim.run_until(T0 + DAY_MS);
        assert_eq!(sim.sent.len(), 20);
        for (m, n, _) in &sim.sent {
            assert_eq!(n, if m.starts_with('d') { "a" } else { "s" });
        }
    }

    #[test]
    fn updates_keep_a_number_busy_and_its_history() {
        let mut d = Dispatcher::default();
        d.upsert_number(number("a", true));
        d.enqueue(msg("m1"));
        d.enqueue(msg("m2"));
        let mut r = rng();
        assert_eq!(d.poll(T0, &mut r).len(), 1);
        d.upsert_number(NumberInfo { health: 80, ..number("a", true) });
        assert!(d.poll(T0 + MINUTE_MS, &mut r).is_empty(), "still sending m1");
        let stats = d.number_stats("a", T0 + MINUTE_MS).unwrap();
        assert!(stats.busy && stats.sent_last_day == 1);
        let gap = d.finished("a", T0 + MINUTE_MS, &mut r);
        assert!((3_000..=12_000).contains(&gap));
        assert_eq!(
            d.number_stats("a", T0 + MINUTE_MS).unwrap().ready_at_ms,
            T0 + MINUTE_MS + gap as i64
        );
        // Removing a number hands back only what was forced to it.
        d.enqueue(forced("f", "a"));
        let back: Vec<String> = d.remove_number("a").into_iter().map(|m| m.id).collect();
        assert_eq!(back, ["f"]);
        assert_eq!(d.queue_depth("t1", "default"), 1);
    }

    /// The most sends that count in a window of `w` ms ending at a send, for each send, minus
    /// the cap in force at that send: positive means a cap was exceeded. By brute force.
    fn excess(times: &[i64], w: i64, cap_at: impl Fn(i64) -> u32) -> i64 {
        (0..times.len())
            .map(|i| {
                let counted = times[..=i].iter().filter(|&&t| t > times[i] - w).count() as i64;
                counted - i64::from(cap_at(times[i]))
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn caps_and_gaps_hold_over_a_long_run() {
        let mut d = Dispatcher::default();
        let tight = Limits {
            per_minute: 3,
            per_hour: 40,
            per_day: 150,
            min_gap_ms: 1_000,
            max_gap_ms: 20_000,
            ..Limits::default()
        };
        // Numbers connected 0..6 days ago, half with tight limits, and some forced traffic.
        let mut numbers = BTreeMap::new();
        for i in 0..8i64 {
            let limits = if i % 2 == 0 { tight } else { Limits::default() };
            let first = T0 - (i % 7) * DAY_MS;
            let info = NumberInfo {
                limits,
                first_connected_at_ms: Some(first),
                ..number(&format!("n{i}"), true)
            };
            numbers.insert(info.id.clone(), (limits, first));
            d.upsert_number(info);
        }
        let mut r = StdRng::seed_from_u64(5);
        for i in 0..6_000 {
            let mut m = msg(&format!("m{i}"));
            m.text_chars = r.gen_range(1..400);
            if i % 10 == 0 {
                m.forced_instance = Some(format!("n{}", i % 8));
            }
            d.enqueue(m);
        }
        let mut sim = Sim::new(d);
        sim.latency = 1_500;
        sim.run_until(T0 + 3 * DAY_MS);
        assert!(sim.sent.len() > 3_000, "{}", sim.sent.len());
        // The checker's own warming schedule: the documented formula, 20 × (full / 20)^((d − 1) / 5)
        // on days d = 1..=5.
        let day_cap = |full: u32, first: i64, t: i64| -> u32 {
            let d = (t - first) / DAY_MS + 1;
            if d > 5 {
                return full;
            }
            (20.0 * (f64::from(full) / 20.0).powf((d - 1) as f64 / 5.0)).round() as u32
        };
        for (id, (limits, first)) in numbers {
            let times: Vec<i64> =
                sim.sent.iter().filter(|(_, n, _)| *n == id).map(|(_, _, t)| *t).collect();
            assert!(times.len() > 90, "{id} sent {}", times.len());
            let day = |t| day_cap(limits.per_day, first, t);
            let hour = |t| limits.per_hour.min(day(t));
            let minute = |t| limits.per_minute.min(hour(t));
            assert!(excess(&times, MINUTE_MS, minute) <= 0, "{id}: minute cap");
            assert!(excess(&times, HOUR_MS, hour) <= 0, "{id}: hour cap");
            assert!(excess(&times, DAY_MS, day) <= 0, "{id}: day cap");
            // One at a time, with at least the shortest gap and typing between sends.
            let min_spacing = (limits.min_gap_ms + TYPING_MIN_MS) as i64;
            assert!(times.windows(2).all(|w| w[1] - w[0] >= min_spacing), "{id}");
        }
    }
}
