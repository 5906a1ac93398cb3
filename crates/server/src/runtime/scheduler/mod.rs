//! The send scheduler: the runtime around `bzapper_core::sending::Dispatcher`. It keeps the
//! dispatcher's picture of every number up to date (connected, health, warming, limits), feeds
//! it the durable queue, and runs each send the dispatcher assigns: `composing` for a time that
//! grows with the text, the send, `paused`, then the number rests for a human-like gap.
//!
//! Every decision (who sends next, caps, gaps, warming, health) is the dispatcher's, a pure
//! function of state and clock; this module only does the I/O around it. Time comes from
//! `tokio::time`, so tests can pause and advance it.
//!
//! The state (the queue in memory, each number's view) is here with the queue's entry points
//! and the loop that polls the dispatcher; the rest is split by job, each file adding to
//! `impl Scheduler`: `numbers` (connections, state, rotation, suspensions), `health` (scores,
//! recovery, what a refusal costs), `delivery` (one send and its outcome), `status` (status
//! changes, stored then recorded, and receipts), `outgoing` (a message made ready for the
//! driver), `window` (the part of the durable queue held in memory, read a page at a time),
//! `validity` (messages scheduled for later, and those that expire unsent), `first_contact`
//! (conversations, and the pre-check before a number's first message to a contact) and
//! `cluster_queue` (claims from the shared queue of a cluster).
//!
//! Memory does not grow with the backlog: the dispatcher holds at most a window of each queue,
//! and of each message only what places it (ids, pool, length of its text); the message itself
//! is read from the store when a number is assigned to send it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as SyncMutex};

use bzapper_core::sending::{Dispatcher, Health, Strategy, WarmingSchedule};
use bzapper_core::{Reason, Status};
use bzapper_driver::Connection;
use bzapper_store::{
    MessageRecord, MessageStatus, MessageUpdate, QueueKey, QueuePosition, QueuedRef, Store,
    StoreError,
};
use chrono::Utc;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::events::recorder::Recorder;
use crate::media::MediaStore;
use crate::model::time::now;
use crate::runtime::contact_checks::ContactChecker;
use crate::runtime::unread::Unread;

mod chosen;
mod cluster_queue;
mod delivery;
mod first_contact;
mod health;
mod numbers;
mod outgoing;
mod pool_rules;
mod pool_settings;
mod queue_counts;
mod queued;
mod resting;
mod rewarm;
mod rule_inputs;
mod seen;
mod status;
mod validity;
mod window;

pub use chosen::ChosenBy;
pub use pool_rules::PoolRules;
pub use rewarm::Rewarm;

/// One queue's window (see `window`, which alone reads and moves it).
#[derive(Debug, Default)]
struct Window {
    /// The last position read into memory, by a refill or an accept.
    cursor: Option<QueuePosition>,
    /// The last position a refill read: an accept at or before it may have been read already.
    read_through: Option<QueuePosition>,
    /// The store may hold queued messages of this queue after `cursor`.
    behind: bool,
    /// When the earliest message of this queue scheduled for later (`send_at`) falls due:
    /// the queue is read again then (see `validity`).
    due_at_ms: Option<i64>,
}

type Windows = HashMap<QueueKey, Window>;

use queue_counts::QueueCounts;
pub use queue_counts::Queued;

/// What the scheduler knows of one number besides what the dispatcher holds.
struct Number {
    tenant_id: String,
    pool: String,
    health: Health,
    /// When the last recovery sweep looked at this number.
    health_at_ms: i64,
    status: Status,
    reason: Option<Reason>,
    /// A send found the number unusable (no connection, or the network said it is not
    /// connected): it takes nothing more until its state changes again, instead of burning
    /// its caps on attempts that cannot succeed.
    /// Suspensions end by themselves after `SUSPENSION_MS`, in case no state change comes.
    suspended: bool,
    suspended_at_ms: i64,
    /// Its limits merged over the defaults (what warming's day cap is compared with; the
    /// first-contact pre-check spaces its look-ups by them too).
    limits: bzapper_core::Limits,
    /// Its stored record as last seen (country, warming, quiet hours, re-warm state).
    record: Option<bzapper_store::InstanceRecord>,
    /// When it last sent, read from the store when it is loaded (re-warming after an idle).
    last_sent_ms: Option<i64>,
}

/// How often the queue quota's counts are reset from the store (see `recount_queued`).
const QUEUE_RECOUNT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The longest a number stays suspended without news from its connection.
const SUSPENSION_MS: i64 = 5_000;

/// The least time between the starts of two passes of the run loop, per thousand numbers
/// held. A pass looks at every number, and every accept, connect and finished send wakes the
/// loop: at 10,000 numbers, passes back to back took a whole core and held the lock that
/// accepts need (822 accepts/s on the simulator). Spaced, the wakes that come meanwhile are
/// served by one pass; a send starts at most this late, next to seconds of human pacing.
/// Under a thousand numbers passes are not spaced at all.
const PASS_SPACING_PER_THOUSAND_NUMBERS: std::time::Duration = std::time::Duration::from_millis(1);

/// [`PASS_SPACING_PER_THOUSAND_NUMBERS`] for `numbers` numbers.
fn pass_spacing(numbers: usize) -> std::time::Duration {
    PASS_SPACING_PER_THOUSAND_NUMBERS * u32::try_from(numbers / 1_000).unwrap_or(u32::MAX)
}

struct Inner {
    dispatcher: Dispatcher,
    rng: StdRng,
    numbers: HashMap<String, Number>,
    connections: HashMap<String, Arc<dyn Connection>>,
    /// What is kept of every message the dispatcher holds (queued in a window, or being
    /// sent), by id: no text or content, which are read from the store at the send.
    held: HashMap<String, QueuedRef>,
    /// How many messages outside campaigns each tenant and pool has queued or being sent, in
    /// the whole durable queue (the queue quota reads it): counted at accept, uncounted when a
    /// message ends sent or failed, and re-read from the store now and then for what leaves
    /// the queue elsewhere (a cancel, a message failed while in the store only).
    queued: QueueCounts,
    /// The earliest `expires_at` of a queued message (ms), when the expiry sweep runs next.
    next_expiry_ms: Option<i64>,
    /// Each pool's settings, by (tenant, pool), as last set (see `pool_settings`).
    pools: HashMap<(String, String), PoolRules>,
}

impl Inner {
    /// The message has ended (sent or failed): it leaves memory and the quota's count.
    fn finished(&mut self, id: &str) {
        if let Some(r) = self.held.remove(id) {
            self.queued.left(&r.tenant_id, &r.pool, r.campaign_id.is_some());
        }
    }
}

pub struct Scheduler {
    /// A message's status change (store, then event) happens under its stripe's lock, so that
    /// a delivery receipt racing the send's own ack cannot record its event out of order.
    status_locks: Vec<tokio::sync::Mutex<()>>,
    store: Arc<dyn Store>,
    recorder: Arc<Recorder>,
    inner: SyncMutex<Inner>,
    wake: Notify,
    threshold: u8,
    /// The instant `epoch_ms` refers to: `now_ms` is wall-clock ms at start plus tokio time
    /// elapsed since, so pausing tokio's clock in tests pauses the scheduler too.
    epoch: Instant,
    epoch_ms: i64,
    /// Set when this node is one of several: the queue is then shared, and this scheduler
    /// claims from it only what its own numbers can send (see `cluster_queue`).
    cluster: Option<Arc<Cluster>>,
    /// Wakes the claim loop (a number came up here).
    claim_wake: Notify,
    /// Where media files are found and downloaded to.
    media: Arc<MediaStore>,
    /// Each queue's window of the durable queue (see `window`); on a node of several the
    /// claims are bounded instead, and no window is used.
    windows: tokio::sync::Mutex<Windows>,
    /// How many messages of one queue the dispatcher holds at most (a window's size).
    window_size: usize,
    /// What each number received and has not marked read ("seen before reply", `seen`).
    unread: Arc<Unread>,
    /// The cached contact checks, for the first-contact pre-check.
    contacts: Arc<ContactChecker>,
    /// Whether a number's first message to a contact is preceded by the pre-check.
    first_contact_check: bool,
    /// When an idle number re-warms, and for how long.
    rewarm: Rewarm,
}

/// Everything a [`Scheduler`] is built from, known before it is: start-up opens the media
/// store and joins the cluster first, so nothing is wired in after construction.
pub struct SchedulerParts {
    pub store: Arc<dyn Store>,
    pub recorder: Arc<Recorder>,
    pub warming: WarmingSchedule,
    /// Health score below which a number leaves rotation.
    pub threshold: u8,
    /// Where media messages' files are read from and downloaded to.
    pub media: Arc<MediaStore>,
    /// This node's cluster, when it is one of several (the queue is then shared).
    pub cluster: Option<Arc<Cluster>>,
    /// How many queued messages of one queue (a tenant's pool, or one number's forced sends)
    /// are held in memory; the rest wait in the store until there is room.
    pub queue_window: usize,
    /// The cached contact checks (shared with `POST /v1/contacts/check`).
    pub contacts: Arc<ContactChecker>,
    /// Check that a contact is on WhatsApp before a number's first message to it.
    pub first_contact_check: bool,
    /// When an idle number re-warms, and for how long (`--rewarm-after-hours`,
    /// `--rewarm-days`).
    pub rewarm: Rewarm,
}

impl Scheduler {
    pub fn new(parts: SchedulerParts) -> Arc<Self> {
        let SchedulerParts {
            store,
            recorder,
            warming,
            threshold,
            media,
            cluster,
            queue_window,
            contacts,
            first_contact_check,
            rewarm,
        } = parts;
        Arc::new(Scheduler {
            status_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
            store,
            recorder,
            inner: SyncMutex::new(Inner {
                dispatcher: Dispatcher::new(warming),
                rng: StdRng::from_entropy(),
                numbers: HashMap::new(),
                connections: HashMap::new(),
                held: HashMap::new(),
                queued: QueueCounts::default(),
                next_expiry_ms: None,
                pools: HashMap::new(),
            }),
            wake: Notify::new(),
            threshold,
            epoch: Instant::now(),
            epoch_ms: Utc::now().timestamp_millis(),
            cluster,
            claim_wake: Notify::new(),
            media,
            windows: tokio::sync::Mutex::new(Windows::new()),
            window_size: queue_window.max(1),
            unread: Arc::default(),
            contacts,
            first_contact_check,
            rewarm,
        })
    }

    fn now_ms(&self) -> i64 {
        self.epoch_ms + self.epoch.elapsed().as_millis() as i64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads pools and numbers from the store, the messages in doubt after a crash and the
    /// first page of every queue, then starts the loop. On a node of several, the queue is not
    /// loaded but claimed, piece by piece, by the claim loop.
    pub async fn start(self: &Arc<Self>) -> Result<(), StoreError> {
        self.recount_queued().await?;
        let me = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(QUEUE_RECOUNT_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                if let Err(e) = me.recount_queued().await {
                    tracing::warn!(error = %e, "recounting the queue for its quota failed");
                }
            }
        });
        let day_ago = now() - chrono::Duration::days(1);
        let mut stored_states = Vec::new();
        let mut tenants = std::collections::BTreeSet::new();
        let mut records = self.store.list_all_instances().await?;
        for rec in &mut records {
            stored_states.push((rec.id.clone(), rec.state.clone()));
            // The stored state is from before the restart; until the supervisor reports the
            // live one, the number sends nothing.
            rec.state = bzapper_core::InstanceState::new_stopped();
            self.update_number(rec);
            tenants.insert(rec.tenant_id.clone());
        }
        // Once per pool, after its numbers: setting a pool's rules updates every number of it,
        // so doing it per number was quadratic (98 s before the listener at 10,000 numbers).
        for tenant_id in &tenants {
            for p in self.store.list_pools(tenant_id).await? {
                self.set_strategy(tenant_id, &p.name, p.strategy);
                self.set_pool_settings(tenant_id, &p.name, &p.settings);
            }
        }
        // The pools' rules are in place before the histories that they keep (a contact's
        // number for the sticky sender) are loaded.
        for rec in &records {
            // Sends before the restart still count against the caps.
            let sent = self.store.sent_times_since(&rec.id, day_ago).await?;
            self.record_past_sends(&rec.id, &sent);
            self.load_history(&rec.id).await?;
        }
        self.load_expiry().await?;
        if let Some(cluster) = self.cluster.clone() {
            let me = self.clone();
            tokio::spawn(async move { me.claim_loop(cluster).await });
            let me = self.clone();
            tokio::spawn(async move { me.run().await });
            return Ok(());
        }
        for m in self.store.sending_messages().await? {
            self.enqueue_pending(m).await?;
        }
        self.open_windows().await?;
        self.load_schedules().await?;
        // A number banned or logged out before the restart sends nothing until an operator
        // acts: what waits for it (in doubt after the crash, or forced) is handed back now, as
        // the ban or logout handed back what waited then.
        for (id, state) in stored_states {
            self.hand_back_if_gone(&id, &state).await;
        }
        let me = self.clone();
        tokio::spawn(async move { me.run().await });
        Ok(())
    }

    /// Queues a stored pending message: one loaded at start, or claimed from the shared
    /// queue. One found `sending` is in doubt (it may have gone out before a crash or before
    /// its node died): it goes out again only from the same number, with the same WhatsApp
    /// id, which WhatsApp accepts once.
    pub(crate) async fn enqueue_pending(&self, m: MessageRecord) -> Result<(), StoreError> {
        self.enqueue_all_pending(vec![m]).await
    }

    /// [`Scheduler::enqueue_pending`] for many at once: their contacts' histories are read
    /// together (one query per pool, not one per message), as a claim round brings them.
    pub(crate) async fn enqueue_all_pending(
        &self,
        ms: Vec<MessageRecord>,
    ) -> Result<(), StoreError> {
        let mut refs = Vec::with_capacity(ms.len());
        for mut m in ms {
            let mut hold_for = None;
            if m.status == MessageStatus::Sending {
                hold_for = m.instance_id.clone();
                m.status = MessageStatus::Queued;
                self.store
                    .update_message(
                        &m.id,
                        &update(MessageStatus::Queued, m.instance_id.clone(), None),
                    )
                    .await?;
            }
            self.expires_then(m.expires_at);
            refs.push((QueuedRef::of(&m), hold_for));
        }
        let queued: Vec<QueuedRef> = refs.iter().map(|(r, _)| r.clone()).collect();
        let mut histories = self.histories(&queued).await;
        let mut g = self.lock();
        for (r, hold_for) in refs {
            let history = histories.remove(&r.id);
            hold(&mut g, r, hold_for, history);
        }
        drop(g);
        self.wake.notify_one();
        Ok(())
    }

    fn record_past_sends(&self, instance_id: &str, sent: &[chrono::DateTime<Utc>]) {
        let mut g = self.lock();
        for at in sent {
            g.dispatcher.record_send(instance_id, at.timestamp_millis());
        }
    }

    /// The re-warm rule's settings.
    pub fn rewarm(&self) -> Rewarm {
        self.rewarm
    }

    pub fn set_strategy(&self, tenant_id: &str, pool: &str, strategy: Strategy) {
        self.lock().dispatcher.set_strategy(tenant_id, pool, strategy);
        self.wake.notify_one();
    }

    /// True when the pool has a connected number in rotation (docs/api.md: 409
    /// `no_number_available` only when it has none). A number at its cap still counts. On a
    /// node of several, numbers held by the other nodes count too.
    pub async fn has_number_available(&self, tenant_id: &str, pool: &str) -> bool {
        if self.lock().dispatcher.has_capacity_somewhere(tenant_id, pool) {
            return true;
        }
        let Some(c) = &self.cluster else { return false };
        match c.store.pool_has_connected_number(tenant_id, pool, self.threshold).await {
            Ok(yes) => yes,
            Err(e) => {
                // Accepting is the safer mistake: the message waits in the durable queue.
                tracing::warn!(error = %e, "checking the pool on other nodes failed");
                true
            }
        }
    }

    /// Stores a new send and queues it: how a send enters the queue (the accept use case,
    /// campaign feeds, the reply to a call). On a node of several it is claimed in the very
    /// statement that stores it when one of this node's numbers can send it, else the other
    /// nodes are told once it is committed: one commit, shared with the concurrent accepts
    /// (group commit), either way. A duplicate idempotency key is the store's `Conflict`, and
    /// nothing is queued.
    pub async fn submit(&self, m: MessageRecord) -> Result<(), StoreError> {
        let Some(c) = &self.cluster else {
            self.store.insert_message(&m).await?;
            self.accept(m).await;
            return Ok(());
        };
        let (r, history, here) = self.placement(&m).await;
        c.store.insert_accepted(&m, here.then(|| c.node_id())).await?;
        self.queue_accepted(&m, r, history, here);
        Ok(())
    }

    /// Queues a message the caller has stored. On a node of several, it is claimed here
    /// when one of this node's numbers can send it; otherwise the other nodes are told.
    pub async fn accept(&self, m: MessageRecord) {
        let Some(c) = &self.cluster else {
            self.lock().queued.joined(&m.tenant_id, &m.pool, m.campaign_id.is_some());
            self.expires_then(m.expires_at);
            self.admit(&m).await;
            return;
        };
        let (r, history, here) = self.placement(&m).await;
        let claimed = here
            && match c.store.claim_message(&m.id, c.node_id()).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(message = %m.id, error = %e, "claiming an accepted send failed");
                    false
                }
            };
        if !claimed {
            if let Err(e) = c.store.signal(bzapper_store::Signal::Queue).await {
                // The other nodes also look at the queue every second.
                tracing::warn!(error = %e, "telling the other nodes about a send failed");
            }
        }
        self.queue_accepted(&m, r, history, claimed);
    }

    /// Where a new send goes on a node of several: its queue entry, its contact's history in
    /// the pool (none for a forced send), and whether this node takes it. It does when one of
    /// its numbers can send it now, unless the contact is sticky to a number another node
    /// holds (that node claims it, see `claim_messages`); one scheduled for later is claimed
    /// by whichever node once due.
    async fn placement(
        &self,
        m: &MessageRecord,
    ) -> (QueuedRef, Option<bzapper_store::ContactHistory>, bool) {
        let r = QueuedRef::of(m);
        let history = if m.forced {
            None
        } else {
            self.histories(std::slice::from_ref(&r)).await.remove(&r.id)
        };
        let sticky_elsewhere = history
            .as_ref()
            .and_then(|h| h.sticky_to.as_ref())
            .is_some_and(|n| !self.lock().connections.contains_key(n));
        let here = self.can_send_here(m) && self.is_due(m) && !sticky_elsewhere;
        (r, history, here)
    }

    /// Counts a stored send into the queue and, when this node has claimed it, holds it
    /// (claims are bounded per number, `cluster_queue`: no window to wait for).
    fn queue_accepted(
        &self,
        m: &MessageRecord,
        r: QueuedRef,
        history: Option<bzapper_store::ContactHistory>,
        claimed: bool,
    ) {
        self.lock().queued.joined(&m.tenant_id, &m.pool, m.campaign_id.is_some());
        self.expires_then(m.expires_at);
        if claimed {
            hold(&mut self.lock(), r, None, history);
            self.wake.notify_one();
        }
    }

    /// Whether a number held here can send `m` (its own number, or one of its pool's).
    fn can_send_here(&self, m: &MessageRecord) -> bool {
        let g = self.lock();
        if m.forced {
            return m.instance_id.as_ref().is_some_and(|i| g.connections.contains_key(i));
        }
        g.numbers.iter().any(|(id, n)| {
            n.tenant_id == m.tenant_id && n.pool == m.pool && g.connections.contains_key(id)
        })
    }

    /// Queued messages by (tenant, pool), for the queue-depth gauge: the whole durable
    /// queue, not only the windows held in memory.
    pub async fn queue_depths(
        &self,
    ) -> Result<std::collections::BTreeMap<(String, String), u64>, StoreError> {
        let counts = self.store.queued_counts().await?;
        Ok(counts.into_iter().map(|(t, p, n)| ((t, p), n)).collect())
    }

    /// What the dispatcher knows of a number now.
    #[cfg(test)]
    pub(crate) fn stats_of(&self, instance_id: &str) -> Option<bzapper_core::sending::NumberStats> {
        self.lock().dispatcher.number_stats(instance_id, self.now_ms())
    }

    /// How many messages the dispatcher holds (queued in windows, or being sent).
    #[cfg(test)]
    pub(crate) fn held_len(&self) -> usize {
        self.lock().held.len()
    }

    /// Resets the queue quota's counts from the store: what left the queue without passing
    /// through a send here (a cancel, a failure while in the store only, another node's send)
    /// stops counting.
    async fn recount_queued(&self) -> Result<(), StoreError> {
        let counts = self.store.unfinished_direct_counts().await?;
        self.lock().queued.reset(counts);
        Ok(())
    }

    /// The tenant's messages queued or being sent (campaign messages apart), in all and in
    /// `pool`: what the queue quota is checked against, from memory.
    pub fn queued(&self, tenant_id: &str, pool: &str) -> Queued {
        self.lock().queued.of(tenant_id, pool)
    }

    /// The tenant is gone (its messages with it): drops its queued messages from memory.
    pub async fn forget_tenant(&self, tenant_id: &str) {
        self.close_windows(tenant_id).await;
        let mut g = self.lock();
        let ids: Vec<String> =
            g.held.values().filter(|m| m.tenant_id == tenant_id).map(|m| m.id.clone()).collect();
        for id in ids {
            if g.dispatcher.remove_message(&id) {
                g.held.remove(&id);
            }
        }
    }

    /// Takes the campaign's queued messages that are bound to no number out of the queue
    /// (not those being sent, nor those held for their number after a crash, which may have
    /// gone out) and returns their ids. Their stored status is the caller's to change (those
    /// still in the store only are the caller's alone; one a refill reads before the caller
    /// fails it is dropped at its send, which reads its stored status first).
    pub fn withdraw_campaign(&self, campaign_id: &str) -> Vec<String> {
        let mut g = self.lock();
        let ids: Vec<String> = g
            .held
            .values()
            .filter(|m| m.campaign_id.as_deref() == Some(campaign_id) && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        let mut withdrawn = Vec::with_capacity(ids.len());
        for id in ids {
            if g.dispatcher.remove_message(&id) {
                g.held.remove(&id);
                withdrawn.push(id);
            }
        }
        withdrawn
    }

    async fn run(self: Arc<Self>) {
        let mut last_recovery = self.now_ms();
        loop {
            let pass_started = tokio::time::Instant::now();
            let now_ms = self.now_ms();
            if now_ms - last_recovery >= 60_000 {
                last_recovery = now_ms;
                self.recover_health().await;
            }
            let any_suspended = self.end_suspensions(now_ms).await;
            self.contacts_wrote();
            {
                // The dispatcher holds back what has expired (it is never handed out); the
                // store's sweep below marks it, now.
                let mut g = self.lock();
                let gone = g.dispatcher.take_expired(now_ms);
                if !gone.is_empty() {
                    for m in &gone {
                        g.finished(&m.id);
                    }
                    g.next_expiry_ms = Some(now_ms);
                }
            }
            self.sweep_expired(now_ms).await;
            if self.cluster.is_none() {
                self.refill_low_windows().await;
            }
            let (assignments, wake_at) = {
                let mut g = self.lock();
                let Inner { dispatcher, rng, next_expiry_ms, .. } = &mut *g;
                let a = dispatcher.poll(now_ms, rng);
                let wake = dispatcher.next_wakeup_ms(now_ms);
                // The expiry sweep's time is a wake-up too.
                let wake = match (wake, *next_expiry_ms) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                (a, wake)
            };
            // And so is the earliest scheduled message falling due.
            let wake_at = match (wake_at, self.next_due_ms().await) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            for a in assignments {
                let me = self.clone();
                tokio::spawn(async move { me.deliver(a).await });
            }
            let sleep = match wake_at {
                Some(at) => tokio::time::Duration::from_millis((at - now_ms).max(1) as u64),
                // Nothing can be sent until something changes; look again now and then for
                // time-based changes (warming days, health recovery).
                None => tokio::time::Duration::from_secs(60),
            };
            let sleep = if any_suspended {
                sleep.min(tokio::time::Duration::from_millis(SUSPENSION_MS as u64))
            } else {
                sleep
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
            let spacing = pass_spacing(self.lock().numbers.len());
            if !spacing.is_zero() {
                tokio::time::sleep_until(pass_started + spacing).await;
            }
        }
    }
}

/// Queues `r` in the dispatcher and keeps it in `held`, unless the dispatcher knows it already;
/// `hold_for` keeps a message that is not client-forced with one number (a message in doubt
/// after a crash).
fn hold(
    g: &mut Inner,
    r: QueuedRef,
    hold_for: Option<String>,
    history: Option<bzapper_store::ContactHistory>,
) -> bool {
    let q = queued::queued_message(&r, hold_for, history);
    if !g.dispatcher.enqueue(q) {
        return false;
    }
    g.held.insert(r.id.clone(), r);
    true
}

/// A status change as the store takes it, stamped now.
fn update(
    status: MessageStatus,
    instance_id: Option<String>,
    error: Option<String>,
) -> MessageUpdate {
    MessageUpdate { status, instance_id, error, at: now(), chosen_by: None }
}

#[cfg(test)]
mod doubt_tests;
#[cfg(test)]
mod pool_rules_tests;
#[cfg(test)]
mod rejoin_tests;
#[cfg(test)]
mod resting_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod validity_tests;
#[cfg(test)]
mod window_tests;
