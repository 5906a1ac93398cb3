//! What a delivery task holds in memory: due items per lane (a webhook, a tenant's alert
//! target), each held once, the request slots of each lane, retries by time, and when to scan
//! the store for the rest. Pure bookkeeping, no I/O.
//!
//! Fair across lanes: each has its own request slots and its own share of memory, and the
//! store is scanned round-robin across lanes, so one lane's backlog (a receiver that never
//! answers, a flood of events) never holds another lane's items back.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};

/// How many requests to one lane may be in flight: a slow receiver holds at most this many
/// slots, never the others'. (Recording an attempt's outcome does not hold a slot.)
pub(crate) const PER_LANE_IN_FLIGHT: usize = 4;
/// Most items of one lane waiting in memory; past it, its new ones wait in the store for a
/// scan. A lane's share: a backlog of one does not take the others' room.
pub(crate) const PER_LANE_QUEUED: usize = 64;
/// Most items waiting in memory in all. A lane with fewer than [`PER_LANE_IN_FLIGHT`] queued
/// may still queue that many past it, so a full memory never keeps a lane from sending at all.
pub(crate) const MAX_QUEUED: usize = 10_000;
/// Most items of one lane one scan of the store returns: enough to refill its share past
/// those it holds already (the oldest, which a scan returns first).
pub(crate) const SCAN_PER_LANE: u32 = (PER_LANE_QUEUED + 2 * PER_LANE_IN_FLIGHT) as u32;
/// Most items one scan of the store returns (round-robin across lanes: every lane's oldest
/// due item comes before any lane's second).
pub(crate) const SCAN_LIMIT: u32 = 1024;

/// What a delivery task sends: each item is held once (by its id) and belongs to one lane,
/// the unit of fairness.
pub(crate) trait Deliverable: Send + 'static {
    fn id(&self) -> &str;
    fn lane(&self) -> &str;
}

/// What a delivery task holds in memory.
pub(crate) struct Dispatch<D> {
    /// Due items not yet started, per lane, oldest first.
    pub(crate) queued: HashMap<String, VecDeque<Queued<D>>>,
    pub(crate) queued_len: usize,
    /// Every item reserved, queued or claimed: one is never held twice.
    pub(crate) known: HashSet<String>,
    /// Items being attempted, from their claim until their outcome is on disk.
    pub(crate) claimed: HashSet<String>,
    /// Requests in flight, by lane.
    pub(crate) sending: HashMap<String, usize>,
    /// Scan the store as soon as scans may follow each other (a re-send was asked for, a
    /// scan failed).
    pub(crate) scan_soon: bool,
    /// The store holds due items that are not here (a scan was full and brought new ones, or
    /// memory was full): scan once the queues have room.
    pub(crate) more_in_store: bool,
    /// Lanes whose due items were left in the store for want of room in their share: scan
    /// once one of them has room again.
    pub(crate) left_in_store: HashSet<String>,
    /// When the retries this task scheduled are due, earliest first.
    pub(crate) retries: BinaryHeap<Reverse<DateTime<Utc>>>,
    /// Counts the times this node let go of what it held ([`Dispatch::forget_queued`]): the
    /// fan-out queues what it reserved only in the term it reserved it in.
    pub(crate) term: u64,
}

// By hand: a derive would ask `D` itself to have a default.
impl<D> Default for Dispatch<D> {
    fn default() -> Self {
        Dispatch {
            queued: HashMap::new(),
            queued_len: 0,
            known: HashSet::new(),
            claimed: HashSet::new(),
            sending: HashMap::new(),
            scan_soon: false,
            more_in_store: false,
            left_in_store: HashSet::new(),
            retries: BinaryHeap::new(),
            term: 0,
        }
    }
}

/// An item waiting for a request slot.
pub(crate) struct Queued<D> {
    pub(crate) item: D,
    /// Read it back before the attempt (it came from a scan, so it may be stale).
    pub(crate) verify: bool,
}

impl<D: Deliverable> Dispatch<D> {
    /// Queues a due item found in the store, unless it is already held. True when queued.
    pub(crate) fn offer_scanned(&mut self, d: D) -> bool {
        if self.known.contains(d.id()) {
            return false;
        }
        if !self.has_room(d.lane()) {
            return false;
        }
        self.known.insert(d.id().to_string());
        self.push(Queued { item: d, verify: true });
        true
    }

    /// Whether the store should be scanned now (scans being far enough apart).
    pub(crate) fn wants_scan(&self, at: DateTime<Utc>) -> bool {
        self.scan_soon
            || self.next_retry().is_some_and(|t| t <= at)
            || (self.more_in_store && self.queued_len < SCAN_LIMIT as usize / 2)
            || self.left_in_store.iter().any(|h| self.wants_more(h))
    }

    /// Whether a lane that has due items in the store has room enough in memory to make a
    /// scan for them worth it.
    fn wants_more(&self, lane: &str) -> bool {
        let mine = self.queued_of(lane);
        mine < PER_LANE_IN_FLIGHT
            || (mine < PER_LANE_QUEUED / 2 && self.queued_len < MAX_QUEUED - SCAN_LIMIT as usize)
    }

    /// How many of the lane's items wait in memory.
    pub(crate) fn queued_of(&self, lane: &str) -> usize {
        self.queued.get(lane).map_or(0, VecDeque::len)
    }

    /// Whether one more of the lane's items may wait in memory; when not, notes that the store
    /// holds some of its due items.
    fn has_room(&mut self, lane: &str) -> bool {
        let mine = self.queued_of(lane);
        let room =
            mine < PER_LANE_QUEUED && (self.queued_len < MAX_QUEUED || mine < PER_LANE_IN_FLIGHT);
        if !room {
            self.left_in_store.insert(lane.to_string());
        }
        room
    }

    /// Holds the ids of items about to be committed, so no scan takes them meanwhile.
    /// Returns the term to queue them in.
    pub(crate) fn reserve(&mut self, ds: &[D]) -> u64 {
        self.known.extend(ds.iter().map(|d| d.id().to_string()));
        self.term
    }

    /// Queues reserved items once committed (`fresh`: exactly as written, never tried). Not
    /// when the term has changed since: the role may have moved meanwhile, and another node
    /// sent them, so they are left to a scan (which reads each back before its attempt).
    pub(crate) fn queue_reserved(&mut self, ds: Vec<D>, fresh: bool, term: u64) {
        if term != self.term {
            return;
        }
        for d in ds {
            if !self.has_room(d.lane()) {
                self.known.remove(d.id());
            } else {
                self.push(Queued { item: d, verify: !fresh });
            }
        }
    }

    /// Lets go of reserved items that were not committed. (After a change of term they are no
    /// longer held, and a scan may hold them now.)
    pub(crate) fn unreserve(&mut self, ds: &[D], term: u64) {
        if term != self.term {
            return;
        }
        for d in ds {
            self.known.remove(d.id());
        }
    }

    pub(crate) fn push(&mut self, q: Queued<D>) {
        self.queued.entry(q.item.lane().to_string()).or_default().push_back(q);
        self.queued_len += 1;
    }

    /// Claims every queued item whose lane has a free request slot.
    pub(crate) fn take_ready(&mut self) -> Vec<Queued<D>> {
        let mut ready = Vec::new();
        for (lane, queue) in self.queued.iter_mut() {
            let sending = self.sending.entry(lane.clone()).or_default();
            while *sending < PER_LANE_IN_FLIGHT {
                let Some(q) = queue.pop_front() else { break };
                *sending += 1;
                self.claimed.insert(q.item.id().to_string());
                ready.push(q);
            }
        }
        self.queued_len -= ready.len();
        self.queued.retain(|_, q| !q.is_empty());
        self.sending.retain(|_, n| *n > 0);
        ready
    }
}

impl<D> Dispatch<D> {
    /// When the earliest retry this task scheduled is due.
    pub(crate) fn next_retry(&self) -> Option<DateTime<Utc>> {
        self.retries.peek().map(|r| r.0)
    }

    /// Gives the lane's request slot back (its request is over).
    pub(crate) fn end_request(&mut self, lane: &str) {
        if let Some(n) = self.sending.get_mut(lane) {
            *n = n.saturating_sub(1);
        }
    }

    /// The item is no longer held (its outcome is on disk, or it was not sent).
    pub(crate) fn settle(&mut self, id: &str) {
        self.claimed.remove(id);
        self.known.remove(id);
    }

    /// Lets go of every item not being attempted and starts a new term, for when this node
    /// loses or gains the sender's role: what it held may have been sent by another node
    /// since, so all is found again by scanning the store. Attempts under way stay held until
    /// they end.
    pub(crate) fn forget_queued(&mut self) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::now;

    /// An item of lane `lane`.
    struct Item(String, String);

    impl Deliverable for Item {
        fn id(&self) -> &str {
            &self.0
        }
        fn lane(&self) -> &str {
            &self.1
        }
    }

    fn item(id: &str, lane: &str) -> Item {
        Item(id.into(), lane.into())
    }

    fn items(n: usize, prefix: &str, lane: &str) -> Vec<Item> {
        (0..n).map(|i| item(&format!("{prefix}{i}"), lane)).collect()
    }

    fn ids(ready: &[Queued<Item>]) -> Vec<(&str, bool)> {
        ready.iter().map(|q| (q.item.id(), q.verify)).collect()
    }

    #[test]
    fn an_item_is_held_once_and_each_lane_has_its_own_slots() {
        let mut d = Dispatch::default();
        let fresh = items(6, "a", "slow");
        // Reserved before its commit: a scan that sees it meanwhile does not take it too.
        let term = d.reserve(&fresh);
        d.offer_scanned(item("a0", "slow"));
        d.queue_reserved(fresh, true, term);
        d.offer_scanned(item("b0", "other"));
        d.offer_scanned(item("b0", "other"));
        let ready = d.take_ready();
        let mut got = ids(&ready);
        got.sort();
        // Four slots for `slow`, fresh ones unverified; the scanned one verified, once.
        assert_eq!(got, [("a0", false), ("a1", false), ("a2", false), ("a3", false), ("b0", true)]);
        assert!(d.take_ready().is_empty(), "`slow` is at its cap");
        // While its outcome is written, an item stays held though its slot is free.
        d.end_request("slow");
        d.offer_scanned(item("a0", "slow"));
        assert_eq!(ids(&d.take_ready()), [("a4", false)]);
        d.settle("a0");
        // Settled: a later scan may take it again (and its attempt reads it back first).
        d.end_request("slow");
        d.offer_scanned(item("a0", "slow"));
        assert_eq!(ids(&d.take_ready()), [("a5", false)]);
        for id in ["a1", "a2", "a3"] {
            d.end_request("slow");
            d.settle(id);
        }
        assert_eq!(ids(&d.take_ready()), [("a0", true)]);
    }

    #[test]
    fn what_does_not_fit_in_memory_is_left_to_a_scan() {
        let mut d = Dispatch::default();
        // One lane's flood fills its own share only.
        let many = items(PER_LANE_QUEUED + 2, "d", "h");
        let term = d.reserve(&many);
        d.queue_reserved(many, true, term);
        assert_eq!(d.queued_len, PER_LANE_QUEUED);
        assert!(d.left_in_store.contains("h"));
        assert!(!d.wants_scan(now()), "not before its queue has room");
        assert!(!d.known.contains(&format!("d{}", PER_LANE_QUEUED + 1)), "a scan may take it");
        // Another lane still has its whole share, from the fan-out as from a scan.
        let other = items(3, "o", "other");
        let term = d.reserve(&other);
        d.queue_reserved(other, true, term);
        assert!(d.offer_scanned(item("o3", "other")));
        assert_eq!(d.queued_of("other"), 4);
        while d.queued_of("h") >= PER_LANE_QUEUED / 2 {
            for q in d.take_ready() {
                d.end_request(q.item.lane());
                d.settle(q.item.id());
            }
        }
        assert!(d.wants_scan(now()));

        // Memory as a whole is bounded too, but a lane with (nearly) nothing queued may still
        // queue a request slot's worth past it.
        let mut d = Dispatch::default();
        let lanes = MAX_QUEUED / PER_LANE_QUEUED + 1;
        for h in 0..lanes {
            let ds = items(PER_LANE_QUEUED, &format!("h{h}-"), &format!("h{h}"));
            let term = d.reserve(&ds);
            d.queue_reserved(ds, true, term);
        }
        assert_eq!(d.queued_len, MAX_QUEUED);
        for n in 0..PER_LANE_IN_FLIGHT {
            assert!(d.offer_scanned(item(&format!("late{n}"), "late")));
        }
        assert!(!d.offer_scanned(item("late-too-many", "late")));
        assert!(d.left_in_store.contains("late"));

        let failed = items(2, "x", "h");
        let term = d.reserve(&failed);
        d.unreserve(&failed, term);
        assert!(!d.known.contains("x0"));
    }

    #[test]
    fn a_change_of_role_forgets_all_but_the_attempts_under_way() {
        let mut d = Dispatch::default();
        let fresh = items(5, "a", "h");
        let term = d.reserve(&fresh);
        d.queue_reserved(fresh, true, term);
        let started = d.take_ready();
        assert_eq!(started.len(), PER_LANE_IN_FLIGHT);
        // A fan-out page is being committed when the role moves.
        let late = items(2, "late", "h");
        let old_term = d.reserve(&late);
        d.forget_queued();
        assert_eq!(d.queued_len, 0);
        assert!(d.wants_scan(now()), "the store is the source after a change");
        // The attempts under way stay held: a scan does not take them again.
        assert!(!d.offer_scanned(item("a0", "h")));
        // What was queued, or reserved in the old term, may be taken by a scan (read back
        // before its attempt)...
        assert!(d.offer_scanned(item("a4", "h")));
        assert!(d.offer_scanned(item("late0", "h")));
        // ... and the old term's fan-out neither queues it unverified nor lets go of it.
        let late_again = items(2, "late", "h");
        d.queue_reserved(late_again, true, old_term);
        d.unreserve(&late, old_term);
        assert_eq!(d.queued_len, 2);
        assert!(d.known.contains("late0"));
        assert!(!d.offer_scanned(item("late0", "h")));
    }
}
