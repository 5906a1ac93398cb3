//! Webhook deliveries: a fan-out task turns logged events into durable delivery rows (one per
//! matching webhook), and a delivery task POSTs each due delivery, signed, retrying with
//! backoff and jitter until it is delivered or given up (dead-lettered). Recording an event
//! never waits on a receiver, and a restart resumes where they stopped.
//!
//! The fan-out hands the deliveries it has just committed straight to the delivery task, so a
//! healthy receiver gets each event without the store being read for it; retries, deliveries
//! left by a previous run, re-sends asked for by API and anything that did not fit in memory
//! are found by scanning the store for due deliveries (at a retry's time, at a re-send, and
//! every second). No delivery is sent twice: one is held at most once in memory (a fresh one
//! from the moment its id is made, before it is committed, so a scan cannot take it too), and
//! one that came from a scan, which may be older than an attempt that has just ended, is read
//! back before its attempt and sent only if it is still pending with the attempts seen.
//!
//! In a cluster both tasks run only on the node holding the `webhooks` role (see
//! [`crate::cluster::role`]): the fan-out cursor and the deliveries are in the shared store, so
//! a node that gains the role goes on where the previous holder stopped. A node that loses it
//! starts no new attempt and forgets what it held in memory; an attempt already under way at
//! that moment may be made again by the next holder (at least once, as after a crash).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bzapper_core::retry::RetryPolicy;
use bzapper_store::{
    DeliveryAttempt, DeliveryRecord, DeliveryStatus, Signal, Store, WebhookRecord,
};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::SeedableRng;
use sha2::Sha256;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::cluster::role::{self, Role};
use crate::cluster::Cluster;
use crate::events::recorder::Recorder;
use crate::events::{Envelope, Filter};
use crate::model::ids::new_ordered_id;
use crate::model::time::now;

/// How many requests to one webhook may be in flight: a slow receiver holds at most this
/// many slots, never the others'. (Recording an attempt's outcome does not hold a slot.)
const PER_WEBHOOK_IN_FLIGHT: usize = 4;
/// How long a receiver may take to answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most deliveries waiting in memory; past it, new ones wait in the store for a scan.
const MAX_QUEUED: usize = 10_000;
/// Most deliveries one scan of the store returns.
const SCAN_LIMIT: u32 = 256;
/// The store is scanned at least this often (deliveries this task was not told about).
const SCAN_EVERY: Duration = Duration::from_secs(1);
/// Scans are at least this far apart, so a backlog is never rescanned in a loop.
const SCAN_GAP: Duration = Duration::from_millis(20);
/// How long a webhook read from the store is used before it is read again (to notice that
/// it was deleted).
const HOOK_TTL: Duration = Duration::from_secs(1);

/// `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
pub fn signature(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// What the delivery task holds in memory.
#[derive(Default)]
struct Dispatch {
    /// Due deliveries not yet started, per webhook, oldest first.
    queued: HashMap<String, VecDeque<Queued>>,
    queued_len: usize,
    /// Every delivery reserved, queued or claimed: one is never held twice.
    known: HashSet<String>,
    /// Deliveries being attempted, from their claim until their outcome is on disk.
    claimed: HashSet<String>,
    /// Requests in flight, by webhook.
    sending: HashMap<String, usize>,
    /// Scan the store as soon as scans may follow each other (a re-send was asked for, a
    /// scan failed).
    scan_soon: bool,
    /// The store holds due deliveries that are not here (memory was full, or a scan was full
    /// and brought new ones): scan once the queues have room.
    more_in_store: bool,
    /// When the retries this task scheduled are due, earliest first.
    retries: BinaryHeap<Reverse<DateTime<Utc>>>,
    /// Counts the times this node let go of what it held ([`Dispatch::forget_queued`]): the
    /// fan-out queues what it reserved only in the term it reserved it in.
    term: u64,
}

/// A delivery waiting for a request slot.
struct Queued {
    delivery: DeliveryRecord,
    /// Read it back before the attempt (it came from a scan, so it may be stale).
    verify: bool,
}

impl Dispatch {
    /// Queues a due delivery found in the store, unless it is already held. True when queued.
    fn offer_scanned(&mut self, d: DeliveryRecord) -> bool {
        if self.known.contains(&d.id) {
            return false;
        }
        if self.queued_len >= MAX_QUEUED {
            self.more_in_store = true;
            return false;
        }
        self.known.insert(d.id.clone());
        self.push(Queued { delivery: d, verify: true });
        true
    }

    /// Whether the store should be scanned now (scans being far enough apart).
    fn wants_scan(&self, at: DateTime<Utc>) -> bool {
        self.scan_soon
            || self.next_retry().is_some_and(|t| t <= at)
            || (self.more_in_store && self.queued_len < SCAN_LIMIT as usize / 2)
    }

    /// Holds the ids of deliveries about to be committed, so no scan takes them meanwhile.
    /// Returns the term to queue them in.
    fn reserve(&mut self, ds: &[DeliveryRecord]) -> u64 {
        self.known.extend(ds.iter().map(|d| d.id.clone()));
        self.term
    }

    /// Queues reserved deliveries once committed (`fresh`: exactly as written, never tried).
    /// Not when the term has changed since: the role may have moved meanwhile, and another
    /// node sent them, so they are left to a scan (which reads each back before its attempt).
    fn queue_reserved(&mut self, ds: Vec<DeliveryRecord>, fresh: bool, term: u64) {
        if term != self.term {
            return;
        }
        for d in ds {
            if self.queued_len >= MAX_QUEUED {
                self.known.remove(&d.id);
                self.more_in_store = true;
            } else {
                self.push(Queued { delivery: d, verify: !fresh });
            }
        }
    }

    /// Lets go of reserved deliveries that were not committed. (After a change of term they
    /// are no longer held, and a scan may hold them now.)
    fn unreserve(&mut self, ds: &[DeliveryRecord], term: u64) {
        if term != self.term {
            return;
        }
        for d in ds {
            self.known.remove(&d.id);
        }
    }

    fn push(&mut self, q: Queued) {
        self.queued.entry(q.delivery.webhook_id.clone()).or_default().push_back(q);
        self.queued_len += 1;
    }

    /// Claims every queued delivery whose webhook has a free request slot.
    fn take_ready(&mut self) -> Vec<Queued> {
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
    fn next_retry(&self) -> Option<DateTime<Utc>> {
        self.retries.peek().map(|r| r.0)
    }

    /// Gives the webhook's request slot back (its request is over).
    fn end_request(&mut self, webhook_id: &str) {
        if let Some(n) = self.sending.get_mut(webhook_id) {
            *n = n.saturating_sub(1);
        }
    }

    /// The delivery is no longer held (its outcome is on disk, or it was not sent).
    fn settle(&mut self, id: &str) {
        self.claimed.remove(id);
        self.known.remove(id);
    }

    /// Lets go of every delivery not being attempted and starts a new term, for when this
    /// node loses or gains the sender's role: what it held may have been sent by another node
    /// since, so all is found again by scanning the store. Attempts under way stay held until
    /// they end.
    fn forget_queued(&mut self) {
        self.term += 1;
        self.queued.clear();
        self.queued_len = 0;
        self.known = self.claimed.clone();
        self.retries.clear();
        self.more_in_store = false;
        self.scan_soon = true;
    }
}

pub struct WebhookWorker {
    store: Arc<dyn Store>,
    metrics: Arc<crate::events::metrics::Metrics>,
    http: reqwest::Client,
    policy: RetryPolicy,
    wake: Notify,
    dispatch: Mutex<Dispatch>,
    /// Webhooks by id, with when each was read (a webhook never changes, but it may be
    /// deleted: it is read again after [`HOOK_TTL`]).
    hooks: Mutex<HashMap<String, (Arc<WebhookRecord>, Instant)>>,
    /// Set at shutdown: no new attempt starts.
    closing: std::sync::atomic::AtomicBool,
    /// Whether this node sends (always on a single node).
    role: Role,
    cluster: Option<Arc<Cluster>>,
}

impl WebhookWorker {
    /// Starts the fan-out and delivery tasks; with a `cluster`, they work while this node
    /// holds the `webhooks` role.
    pub fn spawn(
        store: Arc<dyn Store>,
        recorder: Arc<Recorder>,
        policy: RetryPolicy,
        cluster: Option<Arc<Cluster>>,
    ) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .user_agent(concat!("bzapper/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with default TLS");
        let w = Arc::new(WebhookWorker {
            store,
            metrics: recorder.metrics().clone(),
            http,
            policy,
            wake: Notify::new(),
            dispatch: Mutex::new(Dispatch { scan_soon: true, ..Dispatch::default() }),
            hooks: Mutex::default(),
            closing: std::sync::atomic::AtomicBool::new(false),
            role: match &cluster {
                Some(c) => Role::hold(c.clone(), role::WEBHOOKS),
                None => Role::always(),
            },
            cluster,
        });
        let fan = w.clone();
        tokio::spawn(async move { fan.fan_out(recorder).await });
        let del = w.clone();
        tokio::spawn(async move { del.deliver_loop().await });
        if let Some(c) = &w.cluster {
            tokio::spawn(w.clone().hear_pokes(c.signals()));
        }
        w
    }

    /// Whether this node sends webhooks (and alerts): the role the alerts follow too.
    pub fn role(&self) -> Role {
        self.role.clone()
    }

    /// Wakes the delivery loop to look in the store (a re-send was asked for), on whichever
    /// node sends.
    pub fn poke(&self) {
        self.scan_now();
        if let Some(c) = &self.cluster {
            let c = c.clone();
            tokio::spawn(async move {
                if let Err(e) = c.store.signal(Signal::Webhooks).await {
                    // The sender's periodic scan finds the delivery all the same.
                    tracing::warn!(error = %e, "signalling a webhook re-send failed");
                }
            });
        }
    }

    fn scan_now(&self) {
        self.dispatch().scan_soon = true;
        self.wake.notify_one();
    }

    /// Scans at once when any node asks (a re-send made on it), or when signals may have
    /// been missed.
    async fn hear_pokes(self: Arc<Self>, mut signals: tokio::sync::broadcast::Receiver<Signal>) {
        loop {
            match signals.recv().await {
                Ok(Signal::Webhooks | Signal::Resync) | Err(RecvError::Lagged(_)) => {
                    self.scan_now();
                }
                Ok(_) => {}
                Err(RecvError::Closed) => return,
            }
        }
    }

    fn dispatch(&self) -> std::sync::MutexGuard<'_, Dispatch> {
        self.dispatch.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn fan_out(self: Arc<Self>, recorder: Arc<Recorder>) {
        let mut doorbell = recorder.subscribe();
        let mut role = self.role.clone();
        loop {
            // The cursor is read from the store at each gain of the role: the previous holder
            // may have moved it.
            role.gained().await;
            let Some(mut cursor) = self.pin_cursor().await else { continue };
            while role.is_held() {
                match self.fan_out_once(&mut cursor).await {
                    Ok(true) => continue, // more may be waiting
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "webhook fan-out failed; retrying"),
                }
                // New events ring the bell (in a cluster, every node's); the timeout covers a
                // bell missed.
                tokio::select! {
                    _ = tokio::time::timeout(Duration::from_secs(2), doorbell.recv()) => {}
                    _ = role.lost() => {}
                }
                // Every event announced so far is already in the log, so the next read covers
                // them all: one pass per burst, not one per event.
                while !matches!(
                    doorbell.try_recv(),
                    Err(TryRecvError::Empty | TryRecvError::Closed)
                ) {}
            }
        }
    }

    /// Pins the fan-out's starting point: on a data dir that never had one, the fan-out
    /// starts at the newest event, and must not move along with new events before it has read
    /// them. `None` when the role was lost meanwhile.
    async fn pin_cursor(&self) -> Option<i64> {
        loop {
            if !self.role.is_held() {
                return None;
            }
            let pinned = match self.store.fanout_cursor().await {
                Ok(c) => self.store.enqueue_deliveries(&[], c).await.map(|_| c),
                Err(e) => Err(e),
            };
            match pinned {
                Ok(c) => return Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "starting the webhook fan-out failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Turns the next page of logged events after `cursor` into deliveries and hands them to
    /// the delivery task. True when a full page was read. Only this task moves the cursor.
    async fn fan_out_once(&self, cursor: &mut i64) -> Result<bool, bzapper_store::StoreError> {
        const PAGE: u32 = 500;
        let events = self.store.all_events_after(*cursor, PAGE).await?;
        let Some(last) = events.last().map(|e| e.id) else { return Ok(false) };
        let hooks = self.store.all_webhooks().await?;
        let mut by_tenant: HashMap<&str, Vec<(&WebhookRecord, Filter)>> = HashMap::new();
        for h in &hooks {
            let f = Filter::parse(None, Some(&h.events.join(","))).unwrap_or_default();
            by_tenant.entry(h.tenant_id.as_str()).or_default().push((h, f));
        }
        let at = now();
        let mut deliveries = Vec::new();
        for e in &events {
            for (h, f) in by_tenant.get(e.tenant_id.as_str()).into_iter().flatten() {
                if f.matches(e) {
                    deliveries.push(DeliveryRecord {
                        id: new_ordered_id("dlv"),
                        webhook_id: h.id.clone(),
                        tenant_id: e.tenant_id.clone(),
                        event_id: e.id,
                        event_type: e.kind.clone(),
                        payload: serde_json::to_string(&Envelope::from(e)).unwrap_or_default(),
                        status: DeliveryStatus::Pending,
                        attempts: 0,
                        next_attempt_at: at,
                        last_status: None,
                        last_error: None,
                        created_at: at,
                        updated_at: at,
                        delivered_at: None,
                    });
                }
            }
        }
        let term = self.dispatch().reserve(&deliveries);
        let stored = match self.store.enqueue_deliveries(&deliveries, last).await {
            Ok(n) => n,
            Err(e) => {
                self.dispatch().unreserve(&deliveries, term);
                return Err(e);
            }
        };
        *cursor = last;
        if !deliveries.is_empty() {
            // Committed: they may be sent. Had the store left some out (a page already fanned
            // out), the rest are read back before their attempts like scanned ones.
            let fresh = stored == deliveries.len() as u64;
            self.dispatch().queue_reserved(deliveries, fresh, term);
            self.wake.notify_one();
        }
        Ok(events.len() == PAGE as usize)
    }

    async fn deliver_loop(self: Arc<Self>) {
        let mut role = self.role.clone();
        loop {
            if !role.is_held() {
                // Another node sends now (or nobody, until a node gains the role).
                self.dispatch().forget_queued();
                role.gained().await;
                // Anything learnt while not holding the role is stale: start from the store.
                self.dispatch().forget_queued();
            }
            self.deliver_while_held(&mut role).await;
        }
    }

    /// Sends due deliveries until the role is lost (on a single node, forever).
    async fn deliver_while_held(self: &Arc<Self>, role: &mut Role) {
        let mut last_scan: Option<Instant> = None;
        while role.is_held() {
            let at = now();
            let since_scan = last_scan.map(|t| t.elapsed());
            let scan = {
                let asked = self.dispatch().wants_scan(at);
                match since_scan {
                    None => true,
                    Some(e) => e >= SCAN_EVERY || (asked && e >= SCAN_GAP),
                }
            };
            if scan {
                self.scan().await;
                last_scan = Some(Instant::now());
            }
            if !self.closing.load(std::sync::atomic::Ordering::SeqCst) && role.is_held() {
                let ready = self.dispatch().take_ready();
                for q in ready {
                    let me = self.clone();
                    tokio::spawn(async move { me.attempt(q.delivery, q.verify).await });
                }
            }
            // Sleep until woken (new deliveries, a free slot, a re-send) or a scan is due.
            let since_scan = last_scan.map(|t| t.elapsed()).unwrap_or_default();
            let mut wait = SCAN_EVERY.saturating_sub(since_scan);
            {
                let q = self.dispatch();
                if q.wants_scan(now()) {
                    wait = wait.min(SCAN_GAP.saturating_sub(since_scan));
                }
                if let Some(t) = q.next_retry() {
                    let until = (t - now()).to_std().unwrap_or(Duration::ZERO);
                    wait = wait.min(until.max(SCAN_GAP.saturating_sub(since_scan)));
                }
            }
            tokio::select! {
                _ = tokio::time::timeout(wait, self.wake.notified()) => {}
                _ = role.lost() => {}
            }
        }
    }

    /// Queues the store's due deliveries that are not held already.
    async fn scan(&self) {
        let at = now();
        {
            let mut q = self.dispatch();
            q.scan_soon = false;
            q.more_in_store = false;
            while q.next_retry().is_some_and(|t| t <= at) {
                q.retries.pop();
            }
        }
        match self.store.due_deliveries(at, SCAN_LIMIT).await {
            Ok(due) => {
                let full = due.len() == SCAN_LIMIT as usize;
                let mut q = self.dispatch();
                let mut new = 0;
                for d in due {
                    new += usize::from(q.offer_scanned(d));
                }
                // More may be due than one scan returns. (A full scan of deliveries all held
                // here already is not repeated before the periodic one: it would find them
                // again.)
                q.more_in_store |= full && new > 0;
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading due webhook deliveries failed");
                self.dispatch().scan_soon = true;
            }
        }
    }

    /// Starts no new attempt and waits (at most one attempt's timeout) for those under way
    /// to record their outcome, so that a delivery the receiver accepted is not sent again
    /// after a restart.
    pub async fn shutdown(&self) {
        self.closing.store(true, std::sync::atomic::Ordering::SeqCst);
        // In a cluster, the next holder takes over once this node's lease is let go.
        self.role.give_up();
        let deadline = tokio::time::Instant::now() + ATTEMPT_TIMEOUT + Duration::from_secs(1);
        while tokio::time::Instant::now() < deadline {
            if self.dispatch().claimed.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Ends a claim that sent nothing.
    fn abandon(&self, d: &DeliveryRecord) {
        let mut q = self.dispatch();
        q.end_request(&d.webhook_id);
        q.settle(&d.id);
        drop(q);
        self.wake.notify_one();
    }

    /// The delivery's webhook, read at most once per [`HOOK_TTL`]. `None` once it has been
    /// deleted (with its deliveries: what is left of them in memory is dropped unsent).
    async fn webhook(&self, d: &DeliveryRecord) -> Option<Arc<WebhookRecord>> {
        let hooks = || self.hooks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((h, at)) = hooks().get(&d.webhook_id) {
            if at.elapsed() < HOOK_TTL {
                return Some(h.clone());
            }
        }
        match self.store.get_webhook(&d.tenant_id, &d.webhook_id).await {
            Ok(Some(h)) => {
                let h = Arc::new(h);
                hooks().insert(h.id.clone(), (h.clone(), Instant::now()));
                Some(h)
            }
            Ok(None) => {
                hooks().remove(&d.webhook_id);
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading a webhook failed");
                None
            }
        }
    }

    async fn attempt(self: Arc<Self>, d: DeliveryRecord, verify: bool) {
        // A scan may predate an attempt that has just finished: go on only if the delivery is
        // still pending with the attempts seen, or it would be sent twice.
        if verify {
            match self.store.get_delivery(&d.webhook_id, &d.id).await {
                Ok(Some(cur))
                    if cur.status == DeliveryStatus::Pending && cur.attempts == d.attempts => {}
                _ => return self.abandon(&d),
            }
        }
        let Some(hook) = self.webhook(&d).await else { return self.abandon(&d) };
        // The role may have moved while the delivery was read: the next holder sends it.
        if !self.role.is_held() {
            return self.abandon(&d);
        }
        let ts = Utc::now().timestamp().to_string();
        let res = self
            .http
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-bzapper-event", &d.event_type)
            .header("x-bzapper-delivery", &d.id)
            .header("x-bzapper-timestamp", &ts)
            .header("x-bzapper-signature", signature(&hook.secret, &ts, &d.payload))
            .body(d.payload.clone())
            .send()
            .await;
        // The receiver has answered: its slot may serve the next delivery while this outcome
        // is written (the delivery itself stays claimed until then, so it is not sent again).
        self.dispatch().end_request(&d.webhook_id);
        self.wake.notify_one();
        let attempts = d.attempts + 1;
        let at = now();
        let (ok, last_status, last_error) = match res {
            Ok(r) if r.status().is_success() => (true, Some(r.status().as_u16()), None),
            Ok(r) => (
                false,
                Some(r.status().as_u16()),
                Some(format!("the receiver answered {}", r.status())),
            ),
            Err(e) if e.is_timeout() => {
                (false, None, Some("the receiver did not answer in time".into()))
            }
            Err(e) => (false, None, Some(format!("the receiver could not be reached: {e}"))),
        };
        let attempt = if ok {
            DeliveryAttempt {
                status: DeliveryStatus::Delivered,
                attempts,
                next_attempt_at: at,
                last_status,
                last_error,
                at,
            }
        } else {
            let mut rng = rand::rngs::StdRng::from_entropy();
            let next = self.policy.next_attempt_ms(
                d.created_at.timestamp_millis(),
                at.timestamp_millis(),
                attempts,
                &mut rng,
            );
            match next.and_then(chrono::DateTime::from_timestamp_millis) {
                Some(next) => DeliveryAttempt {
                    status: DeliveryStatus::Pending,
                    attempts,
                    next_attempt_at: next,
                    last_status,
                    last_error,
                    at,
                },
                None => DeliveryAttempt {
                    status: DeliveryStatus::Dead,
                    attempts,
                    next_attempt_at: at,
                    last_status,
                    last_error,
                    at,
                },
            }
        };
        let outcome = match attempt.status {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Pending => "retry",
            DeliveryStatus::Dead => "dead",
        };
        self.metrics.webhook_attempt(&d.tenant_id, outcome);
        let recorded = self.store.record_attempt(&d.id, &attempt).await;
        let mut q = self.dispatch();
        match recorded {
            Ok(()) if attempt.status == DeliveryStatus::Pending => {
                q.retries.push(Reverse(attempt.next_attempt_at));
            }
            Ok(()) => {}
            Err(e) => {
                // Still pending in the store as before this attempt: a scan finds it again.
                tracing::warn!(delivery = %d.id, error = %e, "recording a webhook attempt failed");
            }
        }
        q.settle(&d.id);
        drop(q);
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Reference value computed independently (Python: hmac.new(b"k", b"1.{}", sha256)).
        assert_eq!(
            signature("k", "1", "{}"),
            "sha256=3dd49b2593d0f9a349e9e71c4bde3e2b862c2be4003fe9b4ba81332029310158"
        );
    }

    fn delivery(id: &str, webhook_id: &str) -> DeliveryRecord {
        let at = now();
        DeliveryRecord {
            id: id.into(),
            webhook_id: webhook_id.into(),
            tenant_id: "t".into(),
            event_id: 1,
            event_type: "instance.qr".into(),
            payload: "{}".into(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: at,
            last_status: None,
            last_error: None,
            created_at: at,
            updated_at: at,
            delivered_at: None,
        }
    }

    fn ids(ready: &[Queued]) -> Vec<(&str, bool)> {
        ready.iter().map(|q| (q.delivery.id.as_str(), q.verify)).collect()
    }

    #[test]
    fn a_delivery_is_held_once_and_each_webhook_has_its_own_slots() {
        let mut d = Dispatch::default();
        let fresh: Vec<_> = (0..6).map(|n| delivery(&format!("a{n}"), "slow")).collect();
        // Reserved before its commit: a scan that sees it meanwhile does not take it too.
        let term = d.reserve(&fresh);
        d.offer_scanned(delivery("a0", "slow"));
        d.queue_reserved(fresh, true, term);
        d.offer_scanned(delivery("b0", "other"));
        d.offer_scanned(delivery("b0", "other"));
        let ready = d.take_ready();
        let mut got = ids(&ready);
        got.sort();
        // Four slots for `slow`, fresh ones unverified; the scanned one verified, once.
        assert_eq!(got, [("a0", false), ("a1", false), ("a2", false), ("a3", false), ("b0", true)]);
        assert!(d.take_ready().is_empty(), "`slow` is at its cap");
        // While its outcome is written, a delivery stays held though its slot is free.
        d.end_request("slow");
        d.offer_scanned(delivery("a0", "slow"));
        assert_eq!(ids(&d.take_ready()), [("a4", false)]);
        d.settle("a0");
        // Settled: a later scan may take it again (and its attempt reads it back first).
        d.end_request("slow");
        d.offer_scanned(delivery("a0", "slow"));
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
        let many: Vec<_> = (0..MAX_QUEUED + 2).map(|n| delivery(&format!("d{n}"), "h")).collect();
        let term = d.reserve(&many);
        d.queue_reserved(many, true, term);
        assert_eq!(d.queued_len, MAX_QUEUED);
        assert!(d.more_in_store);
        assert!(!d.wants_scan(now()), "not before the queues have room");
        while d.queued_len >= SCAN_LIMIT as usize / 2 {
            let ready = d.take_ready();
            for q in &ready {
                d.end_request("h");
                d.settle(&q.delivery.id);
            }
        }
        assert!(d.wants_scan(now()));
        assert!(!d.known.contains(&format!("d{}", MAX_QUEUED + 1)), "a scan may take it");
        let failed: Vec<_> = (0..2).map(|n| delivery(&format!("x{n}"), "h")).collect();
        let term = d.reserve(&failed);
        d.unreserve(&failed, term);
        assert!(!d.known.contains("x0"));
    }

    /// What the receiving endpoint got: (delivery id, event id), in arrival order.
    type Got = Arc<Mutex<Vec<(String, String)>>>;

    /// An HTTP endpoint answering 200 to every delivery.
    async fn receiver() -> (Got, String) {
        let got: Got = Arc::default();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let log = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let log = log.clone();
                async move {
                    let delivery = headers["x-bzapper-delivery"].to_str().unwrap().to_string();
                    let env: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let event = env["id"].as_str().unwrap().to_string();
                    log.lock().unwrap().push((delivery, event));
                    axum::http::StatusCode::OK
                }
            }),
        );
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (got, url)
    }

    async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "{what} within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Two nodes on one PostgreSQL schema, one webhook: the node holding the role sends every
    /// delivery once; a re-send asked for on the other node goes out from the holder; when the
    /// holder dies (its runtime, with every task of it, is dropped) and its role is let go, the
    /// other node sends what is left, and nothing twice.
    #[tokio::test]
    async fn in_a_cluster_one_node_sends_each_delivery_once_and_another_takes_over() {
        use bzapper_store::{ApiKeyRecord, ClusterStore, Tenant, TenantStore, WebhookStore};

        use crate::cluster::test_support::{join, Schema};

        let Some(schema) = Schema::new().await else { return };
        let schema = Arc::new(schema);
        // Long: renewal ticks (every 20 s) play no part; the role moves on the signal.
        let ttl = Duration::from_secs(60);
        let policy = RetryPolicy::default();
        let (got, url) = receiver().await;

        // Node A first, on a runtime of its own: dropping it is killing the node.
        let rt_a = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let on_a = schema.clone();
        let (rec_a, hooks_a) = rt_a
            .spawn(async move {
                let (c, s) = join(&on_a, "A", ttl).await;
                let r = Recorder::new(s.clone(), Some(c.clone()));
                let w = WebhookWorker::spawn(s, r.clone(), policy, Some(c));
                let mut role = w.role();
                role.gained().await;
                (r, w)
            })
            .await
            .unwrap();
        let (cb, sb) = join(&schema, "B", ttl).await;
        let at = now();
        sb.create_tenant(
            &Tenant { id: "t1".into(), name: "t1".into(), created_at: at },
            &ApiKeyRecord {
                id: "k1".into(),
                tenant_id: "t1".into(),
                secret_hash: [7; 32],
                created_at: at,
            },
        )
        .await
        .unwrap();
        sb.create_webhook(&WebhookRecord {
            id: "wh1".into(),
            tenant_id: "t1".into(),
            url,
            events: vec!["message.*".into()],
            secret: "s".into(),
            created_at: at,
        })
        .await
        .unwrap();
        let rec_b = Recorder::new(sb.clone(), Some(cb.clone()));
        let hooks_b = WebhookWorker::spawn(sb.clone(), rec_b.clone(), policy, Some(cb));
        assert!(hooks_a.role().is_held() && !hooks_b.role().is_held());

        let mut recorded = Vec::new();
        let record_on_b = |n: usize| {
            let r = rec_b.clone();
            async move {
                let mut ids = Vec::new();
                for i in 0..n {
                    let e = r.record_raw("t1", Some("i1"), "message.received", json!({"i": i}));
                    ids.push(e.await.unwrap().id.to_string());
                }
                ids
            }
        };
        let r = rec_a.clone();
        let on_a = rt_a.spawn(async move {
            let mut ids = Vec::new();
            for i in 0..10 {
                let e = r.record_raw("t1", Some("i1"), "message.received", json!({"a": i}));
                ids.push(e.await.unwrap().id.to_string());
            }
            ids
        });
        recorded.extend(record_on_b(10).await);
        recorded.extend(on_a.await.unwrap());
        eventually("the first 20 deliveries", || got.lock().unwrap().len() >= 20).await;
        // Every attempt's outcome is on disk: none is under way when A dies below.
        let delivered = || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM deliveries WHERE status = 'delivered'",
            )
            .fetch_one(&schema.raw)
            .await
            .unwrap()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while delivered().await < 20 {
            assert!(Instant::now() < deadline, "20 attempts recorded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // A re-send asked for on B, which does not send: A, the sender, sends it again.
        let again = got.lock().unwrap()[0].0.clone();
        sb.requeue_delivery(&again, now()).await.unwrap();
        hooks_b.poke();
        eventually("the re-send", || got.lock().unwrap().len() >= 21).await;
        assert_eq!(got.lock().unwrap()[20].0, again);
        let deadline = Instant::now() + Duration::from_secs(10);
        while delivered().await < 20
            || sb.get_delivery("wh1", &again).await.unwrap().unwrap().attempts < 2
        {
            assert!(Instant::now() < deadline, "the re-send recorded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // A dies. Its lease is still live: nobody sends what is recorded meanwhile.
        rt_a.shutdown_background();
        recorded.extend(record_on_b(5).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(got.lock().unwrap().len(), 21, "sent while no node held the role");
        assert!(!hooks_b.role().is_held());

        // A's lease ends (as when it expires, or A leaves): B takes the role on the signal and
        // goes on from the fan-out cursor A left in the database.
        sqlx::query("UPDATE roles SET lease_until = bz_now_ms() - 1")
            .execute(&schema.raw)
            .await
            .unwrap();
        sb.signal(Signal::Leases).await.unwrap();
        eventually("the deliveries recorded while nobody sent", || got.lock().unwrap().len() >= 26)
            .await;
        assert!(hooks_b.role().is_held());
        recorded.extend(record_on_b(5).await);
        eventually("the deliveries recorded after the handover", || {
            got.lock().unwrap().len() >= 31
        })
        .await;
        // Scans and periodic reads after that send nothing again.
        tokio::time::sleep(SCAN_EVERY + Duration::from_millis(500)).await;

        let got = got.lock().unwrap().clone();
        let mut per_event: HashMap<String, usize> = HashMap::new();
        let mut per_delivery: HashMap<String, usize> = HashMap::new();
        for (delivery, event) in &got {
            *per_event.entry(event.clone()).or_default() += 1;
            *per_delivery.entry(delivery.clone()).or_default() += 1;
        }
        assert_eq!(got.len(), 31, "{got:?}");
        assert_eq!(per_event.len(), 30);
        for id in &recorded {
            let n = per_event.get(id).copied().unwrap_or(0);
            let want = if got[0].1 == *id { 2 } else { 1 };
            assert_eq!(n, want, "event {id} arrived {n} times");
        }
        assert_eq!(per_delivery.len(), 30, "one delivery per event");
        assert_eq!(per_delivery[&again], 2, "the re-send reused its delivery id");
    }

    #[test]
    fn a_change_of_role_forgets_all_but_the_attempts_under_way() {
        let mut d = Dispatch::default();
        let fresh: Vec<_> = (0..5).map(|n| delivery(&format!("a{n}"), "h")).collect();
        let term = d.reserve(&fresh);
        d.queue_reserved(fresh, true, term);
        let started = d.take_ready();
        assert_eq!(started.len(), PER_WEBHOOK_IN_FLIGHT);
        // A fan-out page is being committed when the role moves.
        let late: Vec<_> = (0..2).map(|n| delivery(&format!("late{n}"), "h")).collect();
        let old_term = d.reserve(&late);
        d.forget_queued();
        assert_eq!(d.queued_len, 0);
        assert!(d.wants_scan(now()), "the store is the source after a change");
        // The attempts under way stay held: a scan does not take them again.
        assert!(!d.offer_scanned(delivery("a0", "h")));
        // What was queued, or reserved in the old term, may be taken by a scan (read back
        // before its attempt)...
        assert!(d.offer_scanned(delivery("a4", "h")));
        assert!(d.offer_scanned(delivery("late0", "h")));
        // ... and the old term's fan-out neither queues it unverified nor lets go of it.
        d.queue_reserved(late.clone(), true, old_term);
        d.unreserve(&late, old_term);
        assert_eq!(d.queued_len, 2);
        assert!(d.known.contains("late0"));
        assert!(!d.offer_scanned(delivery("late0", "h")));
    }
}
