//! The dispatcher: the pure scheduler that hands queued messages to numbers.
//!
//! Late binding: a message is not bound to a number when it is accepted. It waits in its pool's
//! queue (or in the queue of the number it was forced to), and the dispatcher hands it to a
//! number at the moment that number is ready: connected, not sending, its gap elapsed and one
//! more send within its caps. So a number that drops, is banned or hits its cap never holds
//! messages that another number could send, and nothing has to be "handed back".
//!
//! The caller (the server's send loop) drives it:
//! 1. keeps the numbers current with [`Dispatcher::upsert_number`] (status, health, limits),
//!    and feeds accepted messages with [`Dispatcher::enqueue`];
//! 2. calls [`Dispatcher::poll`] and, for each [`Assignment`], shows `composing` for
//!    `typing_ms`, sends, shows `paused`, then calls [`Dispatcher::finished`] — or
//!    [`Dispatcher::requeue`] when the number dropped before the send went out;
//! 3. sleeps until [`Dispatcher::next_wakeup_ms`], a finished send, or a new message.
//!
//! How the caps stay true whatever the send takes: each send is recorded in the number's
//! [`SendLog`] when it is handed out, at the earliest moment it can reach WhatsApp (now +
//! typing), and moved to the moment it is reported finished, the latest moment it can have gone
//! out. A number may start typing before its caps allow a send, by at most the shortest typing
//! time the head message can get, because its send cannot happen sooner than that.

use std::collections::{BTreeMap, HashMap, VecDeque};

use rand::Rng;

use super::caps::{Caps, SendLog, HOUR_MS, MINUTE_MS};
#[cfg(test)]
use super::pacing::TYPING_MIN_MS;
use super::pacing::{gap_ms, typing_floor_ms, typing_ms};
use super::rotation::{pick, Candidate, RotationState, Strategy};
use super::warming::{WarmingSchedule, DAY_MS};
use crate::Limits;

/// What the dispatcher needs to know about one number. Upsert it whenever one of these changes.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// A message waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: String,
    pub tenant_id: String,
    pub pool: String,
    /// The instance the client named: only that number sends it, even while warming.
    pub forced_instance: Option<String>,
    /// Length of the text actually sent, in characters: decides the typing time.
    pub text_chars: usize,
}

/// A message handed to a number: show `composing` for `typing_ms`, then send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub message_id: String,
    pub number_id: String,
    /// How long to show `composing` before the send. The send must not happen earlier.
    pub typing_ms: u64,
}

/// What the dispatcher knows about one number at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberStats {
    /// Sending right now (between an assignment and `finished`/`requeue`).
    pub busy: bool,
    /// When its gap after the last send ends.
    pub ready_at_ms: i64,
    /// The earliest time at or after now when its caps allow one more send.
    pub next_allowed_ms: i64,
    pub warmed: bool,
    /// Its caps now (day cap reduced by warming).
    pub caps: Caps,
    pub sent_last_minute: usize,
    pub sent_last_hour: usize,
    pub sent_last_day: usize,
    /// Messages forced to it and still queued.
    pub forced_queued: usize,
}

/// One number's state: what the caller told about it and what sending did to it.
#[derive(Debug)]
struct Slot {
    info: NumberInfo,
    log: SendLog,
    /// Not before this time may the number start its next send (its gap).
    ready_at_ms: i64,
    /// The message it is sending.
    current: Option<String>,
}

impl Slot {
    /// Free to start a send at `now`, caps aside.
    fn idle(&self, now_ms: i64) -> bool {
        self.info.online && self.current.is_none() && self.ready_at_ms <= now_ms
    }

    fn warmed(&self, now_ms: i64) -> bool {
        WarmingSchedule::is_warmed(self.info.warming_days, self.info.first_connected_at_ms, now_ms)
    }

    fn caps(&self, schedule: &WarmingSchedule, now_ms: i64) -> Caps {
        let i = &self.info;
        let day_cap =
            schedule.day_cap(i.limits.per_day, i.warming_days, i.first_connected_at_ms, now_ms);
        Caps::effective(&i.limits, day_cap)
    }

    /// The earliest time at which the number may start typing `head` as far as its caps go
    /// (`None`: never, a cap is 0), and before the gap: see the module comment.
    fn cap_start_ms(&self, schedule: &WarmingSchedule, now_ms: i64, head: &Entry) -> Option<i64> {
        let earliest = self.log.earliest_allowed_ms(&self.caps(schedule, now_ms));
        (earliest != i64::MAX).then(|| earliest.saturating_sub(head.floor_ms()))
    }
}

/// A queued message with its place in line: queues stay sorted by `seq`, so that a message put
/// back after a failed attempt returns to exactly where it was.
#[derive(Debug, Clone)]
struct Entry {
    seq: i64,
    msg: QueuedMessage,
}

impl Entry {
    fn floor_ms(&self) -> i64 {
        typing_floor_ms(self.msg.text_chars) as i64
    }
}

type Queue = VecDeque<Entry>;

fn insert_sorted(queue: &mut Queue, entry: Entry) {
    let pos = queue.partition_point(|e| e.seq < entry.seq);
    queue.insert(pos, entry);
}

#[derive(Debug, Default)]
struct PoolState {
    queue: Queue,
    strategy: Strategy,
    rotation: RotationState,
}

/// Where a known message is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    Queued,
    /// Handed to this number.
    InFlight(String),
}

/// A ready number of a pool, as seen at the start of a poll.
struct Ready {
    id: String,
    warmed: bool,
    health: u8,
    used: u64,
    earliest_allowed_ms: i64,
}

/// The scheduler of every pool and number. See the module documentation.
#[derive(Debug, Default)]
pub struct Dispatcher {
    schedule: WarmingSchedule,
    /// By instance id; ordered so that a poll visits numbers in a reproducible order.
    numbers: BTreeMap<String, Slot>,
    /// Tenant → pool name → queue and rotation.
    pools: BTreeMap<String, BTreeMap<String, PoolState>>,
    /// Instance id → the messages forced to it (entries are removed when empty).
    forced: BTreeMap<String, Queue>,
    /// Message id → the message being sent, with its place in line.
    in_flight: HashMap<String, Entry>,
    places: HashMap<String, Place>,
    next_seq: i64,
    /// Decreasing sequence numbers for `enqueue_front`.
    front_seq: i64,
}

impl Dispatcher {
    /// A dispatcher that computes warming day caps with `schedule`.
    pub fn new(schedule: WarmingSchedule) -> Self {
        Dispatcher { schedule, ..Self::default() }
    }

    /// Adds a number or updates what is known about it. Its send log, its current send and its
    /// gap are kept across updates (a number that reconnects does not get a fresh allowance).
    pub fn upsert_number(&mut self, info: NumberInfo) {
        match self.numbers.get_mut(&info.id) {
            Some(slot) => slot.info = info,
            None => {
                let slot = Slot { info, log: SendLog::new(), ready_at_ms: i64::MIN, current: None };
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

    /// Sets the rotation strategy of a pool (the default is round robin).
    pub fn set_strategy(&mut self, tenant_id: &str, pool: &str, strategy: Strategy) {
        self.pool_mut(tenant_id, pool).strategy = strategy;
    }

    pub fn strategy(&self, tenant_id: &str, pool: &str) -> Strategy {
        self.pool(tenant_id, pool).map(|p| p.strategy).unwrap_or_default()
    }

    /// Queues a message at the end of its pool's queue, or of its forced number's queue. Returns
    /// false (and changes nothing) when a message with that id is already known.
    pub fn enqueue(&mut self, msg: QueuedMessage) -> bool {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.add(Entry { seq, msg })
    }

    /// Queues a message ahead of everything in its queue (for example a message that was being
    /// sent when the gateway stopped). Returns false when the id is already known.
    pub fn enqueue_front(&mut self, msg: QueuedMessage) -> bool {
        self.front_seq -= 1;
        let seq = self.front_seq;
        self.add(Entry { seq, msg })
    }

    /// Removes a queued message (cancelled, expired). False when it is not queued, including
    /// while it is being sent.
    pub fn remove_message(&mut self, message_id: &str) -> bool {
        if self.places.get(message_id) != Some(&Place::Queued) {
            return false;
        }
        self.places.remove(message_id);
        let found = |q: &mut Queue| {
            let pos = q.iter().position(|e| e.msg.id == message_id)?;
            q.remove(pos)
        };
        let mut pools = self.pools.values_mut().flat_map(|p| p.values_mut());
        if pools.any(|p| found(&mut p.queue).is_some()) {
            return true;
        }
        let mut emptied = None;
        for (number, q) in self.forced.iter_mut() {
            if found(q).is_some() {
                if q.is_empty() {
                    emptied = Some(number.clone());
                }
                break;
            }
        }
        if let Some(number) = emptied {
            self.forced.remove(&number);
        }
        true
    }

    /// The ids of the messages forced to this number and still queued, in order.
    pub fn queued_for_number(&self, number_id: &str) -> Vec<String> {
        self.forced
            .get(number_id)
            .map(|q| q.iter().map(|e| e.msg.id.clone()).collect())
            .unwrap_or_default()
    }

    /// Takes the messages forced to this number out of the queue, in order (to fail them when
    /// the number is banned or logged out).
    pub fn take_forced(&mut self, number_id: &str) -> Vec<QueuedMessage> {
        let q = self.forced.remove(number_id).unwrap_or_default();
        q.into_iter()
            .map(|e| {
                self.places.remove(&e.msg.id);
                e.msg
            })
            .collect()
    }

    /// Hands out as many messages as can start at `now_ms`.
    ///
    /// A number is ready when it is online, not sending, past its gap, and its caps allow one
    /// more send once the head message's typing is over. A ready number with messages forced
    /// to it sends those first (in rotation or not); otherwise, if it is in rotation, it may
    /// take the head of its pool's queue, the pool's strategy choosing among the ready numbers
    /// (warmed ones first). Each number gets at most one message, and is busy until
    /// [`Dispatcher::finished`] or [`Dispatcher::requeue`].
    pub fn poll(&mut self, now_ms: i64, rng: &mut impl Rng) -> Vec<Assignment> {
        let mut out = Vec::new();
        let schedule = self.schedule;

        // Forced messages first: only their number can send them.
        let mut emptied = Vec::new();
        for (number, queue) in self.forced.iter_mut() {
            let (Some(slot), Some(head)) = (self.numbers.get_mut(number), queue.front()) else {
                continue;
            };
            if !slot.idle(now_ms)
                || slot.cap_start_ms(&schedule, now_ms, head).is_none_or(|t| t > now_ms)
            {
                continue;
            }
            let entry = queue.pop_front().expect("has a head");
            if queue.is_empty() {
                emptied.push(number.clone());
            }
            out.push(start(slot, entry, now_ms, rng, &mut self.in_flight, &mut self.places));
        }
        for number in emptied {
            self.forced.remove(&number);
        }

        // Then the pools: gather each pool's ready numbers once.
        let mut ready: BTreeMap<(String, String), Vec<Ready>> = BTreeMap::new();
        for (id, slot) in &self.numbers {
            let info = &slot.info;
            if !slot.idle(now_ms)
                || self.forced.contains_key(id)
                || self.pool_head_for(slot).is_none()
            {
                continue;
            }
            let earliest = slot.log.earliest_allowed_ms(&slot.caps(&schedule, now_ms));
            if earliest == i64::MAX {
                continue;
            }
            ready.entry((info.tenant_id.clone(), info.pool.clone())).or_default().push(Ready {
                id: id.clone(),
                warmed: slot.warmed(now_ms),
                health: info.health,
                used: slot.log.count_in_window(now_ms, DAY_MS) as u64,
                earliest_allowed_ms: earliest,
            });
        }
        for ((tenant, pool), mut numbers) in ready {
            let state = self.pools.get_mut(&tenant).and_then(|p| p.get_mut(&pool));
            let state = state.expect("a pool with work exists");
            // Strict FIFO: when no ready number can take the head now, nothing behind it jumps.
            while let Some(head) = state.queue.front() {
                let limit = now_ms.saturating_add(head.floor_ms());
                let eligible: Vec<usize> = (0..numbers.len())
                    .filter(|&i| numbers[i].earliest_allowed_ms <= limit)
                    .collect();
                let candidates: Vec<Candidate> = eligible
                    .iter()
                    .map(|&i| Candidate {
                        key: numbers[i].id.clone(),
                        warmed: numbers[i].warmed,
                        health: numbers[i].health,
                        used: numbers[i].used,
                    })
                    .collect();
                let Some(k) = pick(state.strategy, &candidates, &mut state.rotation, rng) else {
                    break;
                };
                let chosen = numbers.swap_remove(eligible[k]);
                let entry = state.queue.pop_front().expect("has a head");
                let slot = self.numbers.get_mut(&chosen.id).expect("a ready number exists");
                out.push(start(slot, entry, now_ms, rng, &mut self.in_flight, &mut self.places));
            }
        }
        out
    }

    /// The send of `number_id` is over (typing, send and `paused` done; whether it succeeded or
    /// failed for good): the number is free again after a gap, which is drawn, applied and
    /// returned. Its send is counted at `now_ms` from now on.
    pub fn finished(&mut self, number_id: &str, now_ms: i64, rng: &mut impl Rng) -> u64 {
        let Some(slot) = self.numbers.get_mut(number_id) else {
            // Removed while sending: forget what it was sending.
            let places = &mut self.places;
            self.in_flight.retain(|id, _| {
                let ours = places.get(id) == Some(&Place::InFlight(number_id.to_string()));
                if ours {
                    places.remove(id);
                }
                !ours
            });
            return 0;
        };
        if let Some(message_id) = slot.current.take() {
            self.in_flight.remove(&message_id);
            self.places.remove(&message_id);
            slot.log.settle_newest(now_ms);
        }
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
                if slot.current.as_deref() == Some(entry.msg.id.as_str()) {
                    slot.current = None;
                    slot.log.settle_newest(now_ms);
                }
            }
        }
        self.add(entry)
    }

    /// Records a send that happened outside this dispatcher (for example before a restart, read
    /// back from the store) so that the caps count it. False for an unknown number.
    pub fn record_send(&mut self, number_id: &str, at_ms: i64) -> bool {
        match self.numbers.get_mut(number_id) {
            Some(slot) => {
                slot.log.record(at_ms);
                true
            }
            None => false,
        }
    }

    /// When to poll next: the earliest time at which a number that has work (forced messages,
    /// or a pool queue while in rotation) could take it, if nothing else changes. `Some(now)`
    /// when a poll could assign something right away; `None` when nothing is queued, or no
    /// number that could take what is queued is online and idle (then only an outside event —
    /// a finished send, a number connecting, a new message — can change that).
    ///
    /// It wakes a capped warming number at the start of its next warming day, when its cap
    /// grows.
    pub fn next_wakeup_ms(&self, now_ms: i64) -> Option<i64> {
        let mut best: Option<i64> = None;
        for (id, slot) in &self.numbers {
            if !slot.info.online || slot.current.is_some() {
                continue;
            }
            let forced_head = self.forced.get(id).and_then(|q| q.front());
            let Some(head) = forced_head.or_else(|| self.pool_head_for(slot)) else {
                continue;
            };
            let mut at = slot.cap_start_ms(&self.schedule, now_ms, head).unwrap_or(i64::MAX);
            if at > now_ms {
                let i = &slot.info;
                if let Some(change) =
                    WarmingSchedule::next_change_ms(i.warming_days, i.first_connected_at_ms, now_ms)
                {
                    at = at.min(change);
                }
            }
            if at == i64::MAX {
                continue;
            }
            let at = at.max(slot.ready_at_ms).max(now_ms);
            best = Some(best.map_or(at, |b| b.min(at)));
        }
        best
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

    /// Messages waiting in the pool's queue (not counting those forced to a number).
    pub fn queue_depth(&self, tenant_id: &str, pool: &str) -> usize {
        self.pool(tenant_id, pool).map_or(0, |p| p.queue.len())
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
        let caps = slot.caps(&self.schedule, now_ms);
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
        })
    }

    /// The head of the number's pool queue, if the number may take pool messages: in rotation,
    /// and with some health when the pool weighs by health (a pick never lands on health 0, so
    /// such a number must not count as able to take the message either).
    fn pool_head_for(&self, slot: &Slot) -> Option<&Entry> {
        let pool = self.pool(&slot.info.tenant_id, &slot.info.pool)?;
        let weightless = pool.strategy == Strategy::HealthWeighted && slot.info.health == 0;
        if !slot.info.in_rotation || weightless {
            return None;
        }
        pool.queue.front()
    }

    fn pool(&self, tenant_id: &str, pool: &str) -> Option<&PoolState> {
        self.pools.get(tenant_id)?.get(pool)
    }

    fn pool_mut(&mut self, tenant_id: &str, pool: &str) -> &mut PoolState {
        self.pools.entry(tenant_id.to_string()).or_default().entry(pool.to_string()).or_default()
    }

    /// Puts an entry in its queue at its place in line, unless its id is already known.
    fn add(&mut self, entry: Entry) -> bool {
        if self.places.contains_key(&entry.msg.id) {
            return false;
        }
        self.places.insert(entry.msg.id.clone(), Place::Queued);
        let queue = match &entry.msg.forced_instance {
            Some(number) => self.forced.entry(number.clone()).or_default(),
            None => {
                let (tenant, pool) = (entry.msg.tenant_id.clone(), entry.msg.pool.clone());
                &mut self.pool_mut(&tenant, &pool).queue
            }
        };
        insert_sorted(queue, entry);
        true
    }
}

/// Hands `entry` to the number of `slot`: draws the typing time and records the send at the
/// earliest moment it can happen.
fn start(
    slot: &mut Slot,
    entry: Entry,
    now_ms: i64,
    rng: &mut impl Rng,
    in_flight: &mut HashMap<String, Entry>,
    places: &mut HashMap<String, Place>,
) -> Assignment {
    let typing = typing_ms(entry.msg.text_chars, rng);
    slot.log.record(now_ms.saturating_add(typing as i64));
    slot.current = Some(entry.msg.id.clone());
    places.insert(entry.msg.id.clone(), Place::InFlight(slot.info.id.clone()));
    let assignment = Assignment {
        message_id: entry.msg.id.clone(),
        number_id: slot.info.id.clone(),
        typing_ms: typing,
    };
    in_flight.insert(entry.msg.id.clone(), entry);
    assignment
}

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
        }
    }

    fn msg(id: &str) -> QueuedMessage {
        QueuedMessage {
            id: id.into(),
            tenant_id: "t1".into(),
            pool: "default".into(),
            forced_instance: None,
            text_chars: 40,
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
