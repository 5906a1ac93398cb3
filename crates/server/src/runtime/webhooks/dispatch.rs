//! What the delivery task holds in memory: due deliveries per webhook (each held once), the
//! request slots of each webhook, retries by time, and when to scan the store for the rest.
//! Pure bookkeeping, no I/O.
//!
//! Fair across webhooks: each has its own request slots and its own share of memory, and the
//! store is scanned round-robin across webhooks, so one webhook's backlog (a receiver that
//! never answers, a flood of events) never holds another webhook's deliveries back.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};

use bzapper_store::DeliveryRecord;
use chrono::{DateTime, Utc};

/// How many requests to one webhook may be in flight: a slow receiver holds at most this
/// many slots, never the others'. (Recording an attempt's outcome does not hold a slot.)
pub(super) const PER_WEBHOOK_IN_FLIGHT: usize = 4;
/// Most deliveries of one webhook waiting in memory; past it, its new ones wait in the store
/// for a scan. A webhook's share: a backlog of one does not take the others' room.
pub(super) const PER_WEBHOOK_QUEUED: usize = 64;
/// Most deliveries waiting in memory in all. A webhook with fewer than
/// [`PER_WEBHOOK_IN_FLIGHT`] queued may still queue that many past it, so a full memory never
/// keeps a webhook from sending at all.
pub(super) const MAX_QUEUED: usize = 10_000;
/// Most deliveries of one webhook one scan of the store returns: enough to refill its share
/// past those it holds already (the oldest, which a scan returns first).
pub(super) const SCAN_PER_WEBHOOK: u32 = (PER_WEBHOOK_QUEUED + 2 * PER_WEBHOOK_IN_FLIGHT) as u32;
/// Most deliveries one scan of the store returns (round-robin across webhooks: every
/// webhook's oldest due delivery comes before any webhook's second).
pub(super) const SCAN_LIMIT: u32 = 1024;

/// What the delivery task holds in memory.
#[derive(Default)]
pub(super) struct Dispatch {
    /// Due deliveries not yet started, per webhook, oldest first.
    pub(super) queued: HashMap<String, VecDeque<Queued>>,
    pub(super) queued_len: usize,
    /// Every delivery reserved, queued or claimed: one is never held twice.
    pub(super) known: HashSet<String>,
    /// Deliveries being attempted, from their claim until their outcome is on disk.
    pub(super) claimed: HashSet<String>,
    /// Requests in flight, by webhook.
    pub(super) sending: HashMap<String, usize>,
    /// Scan the store as soon as scans may follow each other (a re-send was asked for, a
    /// scan failed).
    pub(super) scan_soon: bool,
    /// The store holds due deliveries that are not here (a scan was full and brought new
    /// ones, or memory was full): scan once the queues have room.
    pub(super) more_in_store: bool,
    /// Webhooks whose due deliveries were left in the store for want of room in their share:
    /// scan once one of them has room again.
    pub(super) left_in_store: HashSet<String>,
    /// When the retries this task scheduled are due, earliest first.
    pub(super) retries: BinaryHeap<Reverse<DateTime<Utc>>>,
    /// Counts the times this node let go of what it held ([`Dispatch::forget_queued`]): the
    /// fan-out queues what it reserved only in the term it reserved it in.
    pub(super) term: u64,
}

/// A delivery waiting for a request slot.
pub(super) struct Queued {
    pub(super) delivery: DeliveryRecord,
    /// Read it back before the attempt (it came from a scan, so it may be stale).
    pub(super) verify: bool,
}

impl Dispatch {
    /// Queues a due delivery found in the store, unless it is already held. True when queued.
    pub(super) fn offer_scanned(&mut self, d: DeliveryRecord) -> bool {
        if self.known.contains(&d.id) {
            return false;
        }
        if !self.has_room(&d.webhook_id) {
            return false;
        }
        self.known.insert(d.id.clone());
        self.push(Queued { delivery: d, verify: true });
        true
    }

    /// Whether the store should be scanned now (scans being far enough apart).
    pub(super) fn wants_scan(&self, at: DateTime<Utc>) -> bool {
        self.scan_soon
            || self.next_retry().is_some_and(|t| t <= at)
            || (self.more_in_store && self.queued_len < SCAN_LIMIT as usize / 2)
            || self.left_in_store.iter().any(|h| self.wants_more(h))
    }

    /// Whether a webhook that has due deliveries in the store has room enough in memory to
    /// make a scan for them worth it.
    fn wants_more(&self, webhook_id: &str) -> bool {
        let mine = self.queued_of(webhook_id);
        mine < PER_WEBHOOK_IN_FLIGHT
            || (mine < PER_WEBHOOK_QUEUED / 2 && self.queued_len < MAX_QUEUED - SCAN_LIMIT as usize)
    }

    /// How many of the webhook's deliveries wait in memory.
    pub(super) fn queued_of(&self, webhook_id: &str) -> usize {
        self.queued.get(webhook_id).map_or(0, VecDeque::len)
    }

    /// Whether one more of the webhook's deliveries may wait in memory; when not, notes that
    /// the store holds some of its due deliveries.
    fn has_room(&mut self, webhook_id: &str) -> bool {
        let mine = self.queued_of(webhook_id);
        let room = mine < PER_WEBHOOK_QUEUED
            && (self.queued_len < MAX_QUEUED || mine < PER_WEBHOOK_IN_FLIGHT);
        if !room {
            self.left_in_store.insert(webhook_id.to_string());
        }
        room
    }

    /// Holds the ids of deliveries about to be committed, so no scan takes them meanwhile.
    /// Returns the term to queue them in.
    pub(super) fn reserve(&mut self, ds: &[DeliveryRecord]) -> u64 {
        self.known.extend(ds.iter().map(|d| d.id.clone()));
        self.term
    }

    /// Queues reserved deliveries once committed (`fresh`: exactly as written, never tried).
    /// Not when the term has changed since: the role may have moved meanwhile, and another
    /// node sent them, so they are left to a scan (which reads each back before its attempt).
    pub(super) fn queue_reserved(&mut self, ds: Vec<DeliveryRecord>, fresh: bool, term: u64) {
        if term != self.term {
            return;
        }
        for d in ds {
            if !self.has_room(&d.webhook_id) {
                self.known.remove(&d.id);
            } else {
                self.push(Queued { delivery: d, verify: !fresh });
            }
        }
    }

    /// Lets go of reserved deliveries that were not committed. (After a change of term they
    /// are no longer held, and a scan may hold them now.)
    pub(super) fn unreserve(&mut self, ds: &[DeliveryRecord], term: u64) {
        if term != self.term {
            return;
        }
        for d in ds {
            self.known.remove(&d.id);
        }
    }

    pub(super) fn push(&mut self, q: Queued) {
        self.queued.entry(q.delivery.webhook_id.clone()).or_default().push_back(q);
        self.queued_len += 1;
    }

    /// Claims every queued delivery whose webhook has a free request slot.
    pub(super) fn take_ready(&mut self) -> Vec<Queued> {
        let mut ready = Vec::new();
        for (hook, queue) in self.queued.iter_mut() {
            let sending = self.sending.entry(hook.clone()).or_default();
            while *sending < PER_WEBHOOK_IN_FLIGHT {
                let Some(q) = queue.pop_front() else { break };
                *sending += 1;
                self.claimed.insert(q.delivery.id.clone());
                ready.push(q);
            }
        }
        self.queued_len -= ready.len();
        self.queued.retain(|_, q| !q.is_empty());
        self.sending.retain(|_, n| *n > 0);
        ready
    }

    /// When the earliest retry this task scheduled is due.
    pub(super) fn next_retry(&self) -> Option<DateTime<Utc>> {
        self.retries.peek().map(|r| r.0)
    }

    /// Gives the webhook's request slot back (its request is over).
    pub(super) fn end_request(&mut self, webhook_id: &str) {
        if let Some(n) = self.sending.get_mut(webhook_id) {
            *n = n.saturating_sub(1);
        }
    }

    /// The delivery is no longer held (its outcome is on disk, or it was not sent).
    pub(super) fn settle(&mut self, id: &str) {
        self.claimed.remove(id);
        self.known.remove(id);
    }

    /// Lets go of every delivery not being attempted and starts a new term, for when this
    /// node loses or gains the sender's role: what it held may have been sent by another node
    /// since, so all is found again by scanning the store. Attempts under way stay held until
    /// they end.
    pub(super) fn forget_queued(&mut self) {
        self.term += 1;
        self.queued.clear();
        self.queued_len = 0;
        self.known = self.claimed.clone();
        self.retries.clear();
        self.more_in_store = false;
        self.left_in_store.clear();
        self.scan_soon = true;
    }
}
