//! The delivery task of a durable sender (webhooks, alerts): while this node holds the role,
//! it queues due items (handed over fresh by the fan-out, or found by scanning the store at a
//! retry's time, at a re-send, and every second) and starts their attempts, a few per lane at
//! a time (see [`Dispatch`]). The sender itself makes each attempt and records its outcome.
//!
//! Times that are stored (when an item is due) are read from an injected [`Clock`], so that a
//! test can move past a retry's wait; the scan cadence is tokio's.

use std::cmp::Reverse;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bzapper_store::StoreError;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::dispatch::{Deliverable, Dispatch, SCAN_LIMIT, SCAN_PER_LANE};
use crate::cluster::role::Role;
use crate::runtime::campaigns::Clock;

/// The store is scanned at least this often (items this task was not told about).
pub(crate) const SCAN_EVERY: Duration = Duration::from_secs(1);
/// Scans are at least this far apart, so a backlog is never rescanned in a loop.
pub(crate) const SCAN_GAP: Duration = Duration::from_millis(20);

/// A durable sender, as the delivery task drives it.
pub(crate) trait Courier: Send + Sync + 'static {
    type Item: Deliverable;
    /// Names the items in logs ("webhook delivery").
    const WHAT: &'static str;

    fn engine(&self) -> &Engine<Self::Item>;

    /// Pending items due at `at`, round-robin across lanes, at most `per_lane` of each and
    /// `limit` in all.
    fn due(
        &self,
        at: DateTime<Utc>,
        per_lane: u32,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Self::Item>, StoreError>> + Send;

    /// Makes one attempt at a claimed item (`verify`: read it back first, it came from a
    /// scan), and ends its claim: [`Engine::abandon`] when nothing was sent, else
    /// [`Engine::request_ended`] once the receiver answered and [`Engine::settled`] once
    /// the outcome is recorded.
    fn attempt(self: Arc<Self>, item: Self::Item, verify: bool) -> impl Future<Output = ()> + Send;
}

/// What the delivery task holds and how it is woken.
pub(crate) struct Engine<D> {
    dispatch: Mutex<Dispatch<D>>,
    wake: Notify,
    /// Set at shutdown: no new attempt starts.
    closing: AtomicBool,
    /// Whether this node sends (always on a single node).
    role: Role,
    clock: Arc<dyn Clock>,
}

impl<D: Deliverable> Engine<D> {
    pub(crate) fn new(role: Role, clock: Arc<dyn Clock>) -> Self {
        Engine {
            dispatch: Mutex::new(Dispatch { scan_soon: true, ..Dispatch::default() }),
            wake: Notify::new(),
            closing: AtomicBool::new(false),
            role,
            clock,
        }
    }

    pub(crate) fn role(&self) -> Role {
        self.role.clone()
    }

    /// The time to stamp and compare stored times with, in whole milliseconds (as stored).
    pub(crate) fn now(&self) -> DateTime<Utc> {
        let t = self.clock.now();
        t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t)
    }

    pub(crate) fn dispatch(&self) -> MutexGuard<'_, Dispatch<D>> {
        self.dispatch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Scans the store as soon as scans may follow each other (a re-send was asked for).
    pub(crate) fn scan_now(&self) {
        self.dispatch().scan_soon = true;
        self.wake.notify_one();
    }

    /// Queues items committed by the fan-out (reserved before, in `term`).
    pub(crate) fn queue_fresh(&self, items: Vec<D>, fresh: bool, term: u64) {
        if !items.is_empty() {
            self.dispatch().queue_reserved(items, fresh, term);
            self.wake.notify_one();
        }
    }

    /// Ends a claim that sent nothing.
    pub(crate) fn abandon(&self, id: &str, lane: &str) {
        let mut q = self.dispatch();
        q.end_request(lane);
        q.settle(id);
        drop(q);
        self.wake.notify_one();
    }

    /// The receiver has answered: the lane's slot may serve the next item while this outcome
    /// is written (the item itself stays claimed until then, so it is not sent again).
    pub(crate) fn request_ended(&self, lane: &str) {
        self.dispatch().end_request(lane);
        self.wake.notify_one();
    }

    /// The outcome is recorded (or could not be: a scan finds the item again); `retry_at`
    /// when it is pending again, for the task to scan at that time.
    pub(crate) fn settled(&self, id: &str, retry_at: Option<DateTime<Utc>>) {
        let mut q = self.dispatch();
        if let Some(t) = retry_at {
            q.retries.push(Reverse(t));
        }
        q.settle(id);
        drop(q);
        self.wake.notify_one();
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Starts no new attempt and waits (at most `attempt_timeout` and a second) for those
    /// under way to record their outcome, so that an item the receiver accepted is not sent
    /// again after a restart. Gives up the role (in a cluster, the next holder takes over once
    /// this node's lease is let go).
    pub(crate) async fn shutdown(&self, attempt_timeout: Duration) {
        self.closing.store(true, Ordering::SeqCst);
        self.role.give_up();
        let deadline = Instant::now() + attempt_timeout + Duration::from_secs(1);
        while Instant::now() < deadline {
            if self.dispatch().claimed.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The delivery task: sends while this node holds the role, forgets what it held when the
/// role goes (another node sends then), and starts from the store when it comes back.
pub(crate) async fn run<C: Courier>(courier: Arc<C>) {
    let mut role = courier.engine().role();
    loop {
        if !role.is_held() {
            courier.engine().dispatch().forget_queued();
            role.gained().await;
            // Anything learnt while not holding the role is stale: start from the store.
            courier.engine().dispatch().forget_queued();
        }
        deliver_while_held(&courier, &mut role).await;
    }
}

/// Sends due items until the role is lost (on a single node, forever).
async fn deliver_while_held<C: Courier>(courier: &Arc<C>, role: &mut Role) {
    let engine = courier.engine();
    let mut last_scan: Option<Instant> = None;
    while role.is_held() {
        let since_scan = last_scan.map(|t| t.elapsed());
        let scan = {
            let asked = engine.dispatch().wants_scan(engine.now());
            match since_scan {
                None => true,
                Some(e) => e >= SCAN_EVERY || (asked && e >= SCAN_GAP),
            }
        };
        if scan {
            scan_store(courier.as_ref()).await;
            last_scan = Some(Instant::now());
        }
        if !engine.is_closing() && role.is_held() {
            let ready = engine.dispatch().take_ready();
            for q in ready {
                tokio::spawn(courier.clone().attempt(q.item, q.verify));
            }
        }
        // Sleep until woken (new items, a free slot, a re-send), a scan is due, or the next
        // retry's time comes (on the clock).
        let since_scan = last_scan.map(|t| t.elapsed()).unwrap_or_default();
        let mut wait = SCAN_EVERY.saturating_sub(since_scan);
        let at = engine.now();
        let retry = {
            let q = engine.dispatch();
            if q.wants_scan(at) {
                // A retry that is due waits only for the gap between scans.
                wait = wait.min(SCAN_GAP.saturating_sub(since_scan));
            }
            q.next_retry().filter(|t| *t > at)
        };
        let clock = engine.clock.clone();
        let retry_due = async move {
            match retry {
                Some(t) => clock.sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::timeout(wait, engine.wake.notified()) => {}
            _ = retry_due => {}
            _ = role.lost() => {}
        }
    }
}

/// Queues the store's due items that are not held already.
async fn scan_store<C: Courier>(courier: &C) {
    let engine = courier.engine();
    let at = engine.now();
    {
        let mut q = engine.dispatch();
        q.scan_soon = false;
        q.more_in_store = false;
        // What this scan leaves out for want of room is noted again.
        q.left_in_store.clear();
        while q.next_retry().is_some_and(|t| t <= at) {
            q.retries.pop();
        }
    }
    match courier.due(at, SCAN_PER_LANE, SCAN_LIMIT).await {
        Ok(due) => {
            let full = due.len() == SCAN_LIMIT as usize;
            let mut q = engine.dispatch();
            let mut new = 0;
            for d in due {
                new += usize::from(q.offer_scanned(d));
            }
            // More may be due than one scan returns. (A full scan of items all held here
            // already is not repeated before the periodic one: it would find them again.)
            q.more_in_store |= full && new > 0;
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading due {}s failed", C::WHAT);
            engine.dispatch().scan_soon = true;
        }
    }
}
