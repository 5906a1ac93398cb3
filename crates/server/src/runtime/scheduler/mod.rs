//! The send scheduler: the runtime around `bzapper_core::sending::Dispatcher`. It keeps the
//! dispatcher's picture of every number up to date (connected, health, warming, limits), feeds
//! it the durable queue, and runs each send the dispatcher assigns: `composing` for a time that
//! grows with the text, the send, `paused`, then the number rests for a human-like gap.
//!
//! Every decision (who sends next, caps, gaps, warming, health) is the dispatcher's, a pure
//! function of state and clock; this module only does the I/O around it. Time comes from
//! `tokio::time`, so tests can pause and advance it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as SyncMutex};

use bzapper_core::sending::{
    Assignment, Dispatcher, Health, HealthEvent, NumberInfo, QueuedMessage, Strategy,
    WarmingSchedule,
};
use bzapper_core::{Jid, Limits, Reason, Status, Transition};
use bzapper_driver::{ChatState, Connection, DriverError, ReceiptStatus, REACH_OUT_RESTRICTED};
use bzapper_store::{
    InstanceRecord, MessageRecord, MessageStatus, MessageUpdate, Store, StoreError,
};
use chrono::Utc;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::events::instance::InstanceHealth;
use crate::events::message::MessageStatusChanged;
use crate::events::recorder::Recorder;
use crate::events::Event;
use crate::media::MediaStore;
use crate::model::ids::{InstanceId, MessageId};
use crate::model::time::now;

mod cluster_queue;
#[cfg(test)]
mod health_cost_tests;
mod outgoing;

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
}

/// The longest a number stays suspended without news from its connection.
const SUSPENSION_MS: i64 = 5_000;

struct Inner {
    dispatcher: Dispatcher,
    rng: StdRng,
    numbers: HashMap<String, Number>,
    connections: HashMap<String, Arc<dyn Connection>>,
    /// Every queued or in-flight message, by id.
    messages: HashMap<String, MessageRecord>,
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
}

impl Scheduler {
    pub fn new(parts: SchedulerParts) -> Arc<Self> {
        let SchedulerParts { store, recorder, warming, threshold, media, cluster } = parts;
        Arc::new(Scheduler {
            status_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
            store,
            recorder,
            inner: SyncMutex::new(Inner {
                dispatcher: Dispatcher::new(warming),
                rng: StdRng::from_entropy(),
                numbers: HashMap::new(),
                connections: HashMap::new(),
                messages: HashMap::new(),
            }),
            wake: Notify::new(),
            threshold,
            epoch: Instant::now(),
            epoch_ms: Utc::now().timestamp_millis(),
            cluster,
            claim_wake: Notify::new(),
            media,
        })
    }

    fn now_ms(&self) -> i64 {
        self.epoch_ms + self.epoch.elapsed().as_millis() as i64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads pools, numbers and the pending queue from the store, then starts the loop. On a
    /// node of several, the queue is not loaded but claimed, piece by piece, by the claim loop.
    pub async fn start(self: &Arc<Self>) -> Result<(), StoreError> {
        let day_ago = now() - chrono::Duration::days(1);
        for mut rec in self.store.list_all_instances().await? {
            // The stored state is from before the restart; until the supervisor reports the
            // live one, the number sends nothing.
            rec.state = bzapper_core::InstanceState::new_stopped();
            self.update_number(&rec);
            // Sends before the restart still count against the caps.
            let sent = self.store.sent_times_since(&rec.id, day_ago).await?;
            self.record_past_sends(&rec.id, &sent);
            for p in self.store.list_pools(&rec.tenant_id).await? {
                self.set_strategy(&rec.tenant_id, &p.name, p.strategy);
            }
        }
        if let Some(cluster) = self.cluster.clone() {
            let me = self.clone();
            tokio::spawn(async move { me.claim_loop(cluster).await });
            let me = self.clone();
            tokio::spawn(async move { me.run().await });
            return Ok(());
        }
        for m in self.store.pending_messages().await? {
            self.enqueue_pending(m).await?;
        }
        let me = self.clone();
        tokio::spawn(async move { me.run().await });
        Ok(())
    }

    /// Queues a stored pending message: one loaded at start, or claimed from the shared
    /// queue. One found `sending` is in doubt (it may have gone out before a crash or before
    /// its node died): it goes out again only from the same number, with the same WhatsApp
    /// id, which WhatsApp accepts once.
    pub(crate) async fn enqueue_pending(&self, mut m: MessageRecord) -> Result<(), StoreError> {
        let mut hold_for = None;
        if m.status == MessageStatus::Sending {
            hold_for = m.instance_id.clone();
            m.status = MessageStatus::Queued;
            self.store
                .update_message(&m.id, &update(MessageStatus::Queued, m.instance_id.clone(), None))
                .await?;
        }
        self.enqueue_record(m, hold_for);
        self.wake.notify_one();
        Ok(())
    }

    fn record_past_sends(&self, instance_id: &str, sent: &[chrono::DateTime<Utc>]) {
        let mut g = self.lock();
        for at in sent {
            g.dispatcher.record_send(instance_id, at.timestamp_millis());
        }
    }

    pub fn set_strategy(&self, tenant_id: &str, pool: &str, strategy: Strategy) {
        self.lock().dispatcher.set_strategy(tenant_id, pool, strategy);
        self.wake.notify_one();
    }

    /// True when the pool has a connected number in rotation (API.md: 409
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

    /// Queues a message just accepted (stored). On a node of several, it is claimed here
    /// when one of this node's numbers can send it; otherwise the other nodes are told.
    pub async fn accept(&self, m: MessageRecord) {
        let Some(c) = &self.cluster else {
            self.enqueue(m);
            return;
        };
        let here = self.can_send_here(&m);
        let claimed = here
            && match c.store.claim_message(&m.id, c.node_id()).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(message = %m.id, error = %e, "claiming an accepted send failed");
                    false
                }
            };
        if claimed {
            self.enqueue(m);
        } else if let Err(e) = c.store.signal(bzapper_store::Signal::Queue).await {
            // The other nodes also look at the queue every second.
            tracing::warn!(error = %e, "telling the other nodes about a send failed");
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

    /// A number was taken over from another node: what this node knew of it may be stale,
    /// so its health and today's sends are read again from the store.
    pub async fn adopt_number(&self, rec: &InstanceRecord) -> Result<(), StoreError> {
        let sent = self.store.sent_times_since(&rec.id, now() - chrono::Duration::days(1)).await?;
        {
            let mut g = self.lock();
            g.numbers.remove(&rec.id);
            let forced = g.dispatcher.remove_number(&rec.id);
            for q in forced {
                g.dispatcher.enqueue(q);
            }
        }
        let mut fresh = rec.clone();
        fresh.state = bzapper_core::InstanceState::new_stopped();
        self.update_number(&fresh);
        self.record_past_sends(&rec.id, &sent);
        self.claim_wake.notify_one();
        Ok(())
    }

    /// The number's live health: (score, score at or above the threshold). Whether it is in
    /// rotation also depends on its status, which the caller reads from the record.
    pub fn health(&self, instance_id: &str) -> Option<(u8, bool)> {
        let g = self.lock();
        if self.cluster.is_some() && !g.connections.contains_key(instance_id) {
            // Another node holds it: the stored score is the one that node keeps up to date.
            return None;
        }
        let n = g.numbers.get(instance_id)?;
        Some((n.health.score(), n.health.in_rotation(self.threshold)))
    }

    /// (score, in rotation) as the scheduler sees the number now.
    fn rotation_verdict(&self, instance_id: &str) -> Option<(u8, bool)> {
        let g = self.lock();
        let n = g.numbers.get(instance_id)?;
        Some((n.health.score(), self.in_rotation(n)))
    }

    fn in_rotation(&self, n: &Number) -> bool {
        n.status == Status::Connected
            && n.reason != Some(Reason::Banned)
            && n.health.in_rotation(self.threshold)
    }

    /// Accepts a stored message into the queue.
    pub fn enqueue(&self, m: MessageRecord) {
        self.enqueue_record(m, None);
        self.wake.notify_one();
    }

    /// Queues `m`; `hold_for` keeps a message that is not client-forced with one number (a
    /// message in doubt after a crash).
    fn enqueue_record(&self, m: MessageRecord, hold_for: Option<String>) {
        let mut g = self.lock();
        let q = QueuedMessage {
            id: m.id.clone(),
            tenant_id: m.tenant_id.clone(),
            pool: m.pool.clone(),
            forced_instance: if m.forced { m.instance_id.clone() } else { hold_for },
            text_chars: m.body.chars().count(),
        };
        g.messages.insert(m.id.clone(), m);
        g.dispatcher.enqueue(q);
    }

    /// The number's connection is up (or replaced): sends go through it.
    pub fn attach_connection(&self, instance_id: &str, conn: Arc<dyn Connection>) {
        self.lock().connections.insert(instance_id.to_string(), conn);
        // On a node of several, sends for this number (or its pool) can now be claimed here.
        self.claim_wake.notify_one();
    }

    pub fn detach_connection(&self, instance_id: &str) {
        self.lock().connections.remove(instance_id);
    }

    /// Brings the dispatcher's view of a number in line with its stored record, after any
    /// state change. A drop costs health; a ban or logout hands the number's forced messages
    /// back (failed) and takes it out of rotation at once.
    pub async fn number_changed(&self, rec: &InstanceRecord, transition: Option<&Transition>) {
        let mut health_event = None;
        let mut fail_forced = None;
        if let Some(t) = transition {
            match (t.to.status, t.to.reason) {
                (Status::Connecting, Some(Reason::Transient))
                    if t.from.status == Status::Connected =>
                {
                    health_event = Some(HealthEvent::Dropped);
                }
                (Status::Disconnected, Some(Reason::Banned)) => {
                    fail_forced = Some("the instance was banned by WhatsApp")
                }
                (Status::Disconnected, Some(Reason::LoggedOut)) => {
                    fail_forced = Some("the instance was logged out")
                }
                _ => {}
            }
        }
        let before = self.rotation_verdict(&rec.id).map(|h| h.1);
        if let Some(n) = self.lock().numbers.get_mut(&rec.id) {
            n.suspended = false;
        }
        self.update_number(rec);
        if let Some(ev) = health_event {
            self.health_event(&rec.id, ev).await;
        }
        let after = self.rotation_verdict(&rec.id).map(|h| h.1);
        if before.is_some() && before != after {
            self.record_health(rec.id.as_str()).await;
        }
        if let Some(why) = fail_forced {
            self.hand_back(&rec.id, why).await;
        }
        self.wake.notify_one();
    }

    /// The number was deleted: its forced messages fail, the others stay in the pool.
    pub async fn number_removed(&self, instance_id: &str) {
        self.hand_back(instance_id, "the instance was deleted").await;
        let mut g = self.lock();
        g.dispatcher.remove_number(instance_id);
        g.numbers.remove(instance_id);
        g.connections.remove(instance_id);
    }

    /// Queued messages by (tenant, pool), for the queue-depth gauge.
    pub fn queue_depths(&self) -> std::collections::BTreeMap<(String, String), u64> {
        let mut out = std::collections::BTreeMap::new();
        for m in self.lock().messages.values().filter(|m| m.status == MessageStatus::Queued) {
            *out.entry((m.tenant_id.clone(), m.pool.clone())).or_default() += 1;
        }
        out
    }

    /// The tenant is gone (its messages with it): drops its queued messages from memory.
    pub fn forget_tenant(&self, tenant_id: &str) {
        let mut g = self.lock();
        let ids: Vec<String> = g
            .messages
            .values()
            .filter(|m| m.tenant_id == tenant_id)
            .map(|m| m.id.clone())
            .collect();
        for id in ids {
            if g.dispatcher.remove_message(&id) {
                g.messages.remove(&id);
            }
        }
    }

    /// Takes the campaign's queued messages that are bound to no number out of the queue
    /// (not those being sent, nor those held for their number after a crash, which may have
    /// gone out) and returns their ids. Their stored status is the caller's to change.
    pub fn withdraw_campaign(&self, campaign_id: &str) -> Vec<String> {
        let mut g = self.lock();
        let ids: Vec<String> = g
            .messages
            .values()
            .filter(|m| m.campaign_id.as_deref() == Some(campaign_id) && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        let mut withdrawn = Vec::with_capacity(ids.len());
        for id in ids {
            if g.dispatcher.remove_message(&id) {
                g.messages.remove(&id);
                withdrawn.push(id);
            }
        }
        withdrawn
    }

    fn update_number(&self, rec: &InstanceRecord) {
        let now_ms = self.now_ms();
        let mut g = self.lock();
        let n = g.numbers.entry(rec.id.clone()).or_insert_with(|| Number {
            tenant_id: rec.tenant_id.clone(),
            pool: rec.pool.clone(),
            health: Health::with_score(rec.health_score),
            health_at_ms: now_ms,
            status: rec.state.status,
            reason: rec.state.reason,
            suspended: false,
            suspended_at_ms: 0,
        });
        n.status = rec.state.status;
        n.reason = rec.state.reason;
        n.pool.clone_from(&rec.pool);
        let suspended = n.suspended;
        let in_rotation = self.in_rotation(n);
        let health = n.health.score();
        g.dispatcher.upsert_number(NumberInfo {
            id: rec.id.clone(),
            tenant_id: rec.tenant_id.clone(),
            pool: rec.pool.clone(),
            online: rec.state.status == Status::Connected
                && rec.state.reason != Some(Reason::Banned)
                && !suspended,
            in_rotation,
            health,
            limits: Limits::default().merged(&rec.limits).unwrap_or_default(),
            warming_days: rec.warming_days,
            first_connected_at_ms: rec.first_connected_at.map(|t| t.timestamp_millis()),
        });
    }

    /// Fails the number's client-forced queued messages with `why`; messages that were only
    /// held for it (in doubt after a crash) go back to the pool.
    async fn hand_back(&self, instance_id: &str, why: &str) {
        let taken = {
            let mut g = self.lock();
            let taken = g.dispatcher.take_forced(instance_id);
            taken
                .into_iter()
                .filter_map(|q| g.messages.get(&q.id).cloned().map(|m| (q, m)))
                .collect::<Vec<_>>()
        };
        for (q, m) in taken {
            if m.forced {
                self.lock().messages.remove(&m.id);
                self.set_status(&m, MessageStatus::Failed, m.instance_id.clone(), Some(why.into()))
                    .await;
            } else {
                self.lock().dispatcher.enqueue_front(QueuedMessage { forced_instance: None, ..q });
            }
        }
    }

    async fn health_event(&self, instance_id: &str, ev: HealthEvent) {
        let (changed_rotation, score) = {
            let mut g = self.lock();
            let Some(n) = g.numbers.get_mut(instance_id) else { return };
            let before = n.health.score();
            let flipped = n.health.apply(ev, self.threshold);
            let score = n.health.score();
            if score == before {
                return;
            }
            (flipped, score)
        };
        if let Err(e) = self.store.set_instance_health(instance_id, score).await {
            tracing::warn!(instance = %instance_id, error = %e, "saving the health score failed");
        }
        if changed_rotation {
            // Out of (or back in) rotation at once: the next routing decision sees it.
            if let Ok(Some(rec)) = self.store.get_instance_by_id(instance_id).await {
                self.update_number(&rec);
            }
            self.record_health(instance_id).await;
        }
    }

    async fn record_health(&self, instance_id: &str) {
        let Some((score, in_rotation)) = self.rotation_verdict(instance_id) else { return };
        let tenant = self.lock().numbers.get(instance_id).map(|n| n.tenant_id.clone());
        if let Some(t) = tenant {
            let event = InstanceHealth { score, in_rotation, threshold: self.threshold };
            if let Err(e) =
                self.recorder.record(&t, Some(instance_id), Event::InstanceHealth(event)).await
            {
                tracing::warn!(error = %e, "recording instance.health failed");
            }
        }
    }

    /// Time-based health recovery: a number pushed out of rotation comes back after a quiet
    /// period (see `Health::recover`).
    async fn recover_health(&self) {
        let now_ms = self.now_ms();
        let changed: Vec<(String, u8, bool)> = {
            let mut g = self.lock();
            let mut changed = Vec::new();
            for (id, n) in g.numbers.iter_mut() {
                let elapsed = (now_ms - n.health_at_ms).max(0) as u64;
                n.health_at_ms = now_ms;
                let before = n.health.score();
                let flipped = n.health.recover(elapsed, self.threshold);
                if n.health.score() != before {
                    changed.push((id.clone(), n.health.score(), flipped));
                }
            }
            changed
        };
        for (id, score, flipped) in changed {
            if let Err(e) = self.store.set_instance_health(&id, score).await {
                tracing::warn!(instance = %id, error = %e, "saving the health score failed");
            }
            if flipped {
                if let Ok(Some(rec)) = self.store.get_instance_by_id(&id).await {
                    self.update_number(&rec);
                }
                self.record_health(&id).await;
            }
        }
    }

    /// Lifts suspensions older than `SUSPENSION_MS`; returns whether any remain.
    async fn end_suspensions(&self, now_ms: i64) -> bool {
        let (expired, remaining): (Vec<String>, bool) = {
            let mut g = self.lock();
            let mut expired = Vec::new();
            let mut remaining = false;
            for (id, n) in g.numbers.iter_mut() {
                if n.suspended && now_ms - n.suspended_at_ms >= SUSPENSION_MS {
                    n.suspended = false;
                    expired.push(id.clone());
                } else if n.suspended {
                    remaining = true;
                }
            }
            (expired, remaining)
        };
        for id in expired {
            if let Ok(Some(rec)) = self.store.get_instance_by_id(&id).await {
                self.update_number(&rec);
            }
        }
        remaining
    }

    /// A delivery or read receipt for a message this number sent.
    pub async fn receipt(&self, instance_id: &str, wa_id: &str, status: ReceiptStatus) {
        let msg = match self.store.find_message_by_wa_id(instance_id, wa_id).await {
            Ok(Some(m)) => m,
            Ok(None) => return, // not one of ours (sent from the phone itself)
            Err(e) => {
                tracing::warn!(error = %e, "looking up a receipt's message failed");
                return;
            }
        };
        let status = match status {
            ReceiptStatus::Delivered => MessageStatus::Delivered,
            ReceiptStatus::Read => MessageStatus::Read,
        };
        self.set_status(&msg, status, Some(instance_id.to_string()), None).await;
    }

    async fn run(self: Arc<Self>) {
        let mut last_recovery = self.now_ms();
        loop {
            let now_ms = self.now_ms();
            if now_ms - last_recovery >= 60_000 {
                last_recovery = now_ms;
                self.recover_health().await;
            }
            let any_suspended = self.end_suspensions(now_ms).await;
            let (assignments, wake_at) = {
                let mut g = self.lock();
                let Inner { dispatcher, rng, .. } = &mut *g;
                let a = dispatcher.poll(now_ms, rng);
                (a, dispatcher.next_wakeup_ms(now_ms))
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
        }
    }

    /// One send: composing, the text, paused; then the number rests.
    async fn deliver(self: Arc<Self>, a: Assignment) {
        let (msg, conn) = {
            let g = self.lock();
            (g.messages.get(&a.message_id).cloned(), g.connections.get(&a.number_id).cloned())
        };
        let Some(msg) = msg else {
            self.finish(&a.number_id);
            return;
        };
        let Some(conn) = conn else {
            self.retry(&a, &msg).await;
            return;
        };
        self.set_status(&msg, MessageStatus::Sending, Some(a.number_id.clone()), None).await;
        let to = match Jid::parse(&msg.to) {
            Ok(j) => j,
            Err(e) => {
                self.done(&a, &msg, Err(DriverError::rejected(e.to_string()))).await;
                return;
            }
        };
        // A media file is found or downloaded before the contact sees anything: a download
        // that fails is the message's fault, not the number's.
        let prepared = match outgoing::prepare(&msg, to.clone(), &self.media).await {
            Ok(p) => p,
            Err(reason) => {
                self.fail_unsendable(&a, &msg, reason).await;
                return;
            }
        };
        if let Err(e) = conn.set_chat_state(&to, prepared.chat_state).await {
            if matches!(e, DriverError::NotConnected | DriverError::Transport(_)) {
                self.discard_download(&prepared.downloaded).await;
                self.retry(&a, &msg).await;
                return;
            }
        }
        let handed_at = Instant::now();
        tokio::time::sleep(tokio::time::Duration::from_millis(a.typing_ms)).await;
        let result = conn.send(prepared.message).await;
        self.discard_download(&prepared.downloaded).await;
        if result.is_ok() {
            let secs = handed_at.elapsed().as_secs_f64();
            self.recorder.metrics().send_latency(&msg.tenant_id, &a.number_id, secs);
            let _ = conn.set_chat_state(&to, ChatState::Paused).await;
        }
        self.done(&a, &msg, result.map(drop)).await;
    }

    /// Deletes a file downloaded for one send (a retry downloads it again).
    async fn discard_download(&self, downloaded: &Option<crate::media::StoredMedia>) {
        if let Some(file) = downloaded {
            if let Err(e) = self.media.delete(&file.tenant_id, &file.id).await {
                tracing::warn!(media = %file.id, error = %e, "deleting a downloaded file failed");
            }
        }
    }

    /// The message can never be sent as it is (its media could not be downloaded, its upload
    /// expired): it fails with the reason, and the number, which did nothing wrong, moves on.
    async fn fail_unsendable(&self, a: &Assignment, msg: &MessageRecord, reason: String) {
        self.lock().messages.remove(&msg.id);
        self.set_status(msg, MessageStatus::Failed, Some(a.number_id.clone()), Some(reason)).await;
        self.finish(&a.number_id);
    }

    async fn done(&self, a: &Assignment, msg: &MessageRecord, result: Result<(), DriverError>) {
        match result {
            Ok(()) => {
                self.lock().messages.remove(&msg.id);
                self.set_status(msg, MessageStatus::Sent, Some(a.number_id.clone()), None).await;
                self.health_event(&a.number_id, HealthEvent::SendOk).await;
                self.finish(&a.number_id);
            }
            Err(DriverError::NotConnected | DriverError::Transport(_)) => self.retry(a, msg).await,
            Err(e) => {
                let cost = health_cost(&e);
                self.lock().messages.remove(&msg.id);
                self.set_status(
                    msg,
                    MessageStatus::Failed,
                    Some(a.number_id.clone()),
                    Some(e.to_string()),
                )
                .await;
                self.health_event(&a.number_id, cost).await;
                self.finish(&a.number_id);
            }
        }
    }

    /// The number dropped before the send: the message goes back to the head of its queue
    /// (its number's, when forced; the pool's otherwise) and waits, and the number takes
    /// nothing more until its state changes (the supervisor reports the drop or the reconnect).
    async fn retry(&self, a: &Assignment, msg: &MessageRecord) {
        let keep = msg.forced.then(|| a.number_id.clone());
        let now_ms = self.now_ms();
        self.lock().dispatcher.requeue(a, now_ms);
        let rec = self.store.get_instance_by_id(&a.number_id).await.ok().flatten();
        if let Some(n) = self.lock().numbers.get_mut(&a.number_id) {
            n.suspended = true;
            n.suspended_at_ms = now_ms;
        }
        if let Some(rec) = rec {
            self.update_number(&rec);
        }
        self.set_status(msg, MessageStatus::Queued, keep, None).await;
        self.wake.notify_one();
    }

    fn finish(&self, number_id: &str) {
        let now_ms = self.now_ms();
        {
            let mut g = self.lock();
            let Inner { dispatcher, rng, .. } = &mut *g;
            dispatcher.finished(number_id, now_ms, rng);
        }
        self.wake.notify_one();
    }

    async fn set_status(
        &self,
        msg: &MessageRecord,
        status: MessageStatus,
        instance_id: Option<String>,
        error: Option<String>,
    ) {
        if let Some(m) = self.lock().messages.get_mut(&msg.id) {
            m.status = status;
            m.instance_id = instance_id.clone();
        }
        let stripe = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            msg.id.hash(&mut h);
            (h.finish() % self.status_locks.len() as u64) as usize
        };
        let _order = self.status_locks[stripe].lock().await;
        let u = update(status, instance_id.clone(), error.clone());
        match self.store.update_message(&msg.id, &u).await {
            Ok(true) => {}
            // A receipt already moved it further (delivered before the ack was stored).
            Ok(false) => return,
            Err(e) => {
                tracing::error!(message = %msg.id, error = %e, "saving a message status failed")
            }
        }
        let event = Event::MessageStatus(MessageStatusChanged {
            message_id: MessageId::new(msg.id.as_str()),
            status: status.as_str(),
            instance_id: instance_id.map(InstanceId::from),
            error,
        });
        let inst = u.instance_id.as_deref();
        if let Err(e) = self.recorder.record(&msg.tenant_id, inst, event).await {
            tracing::warn!(error = %e, "recording message.status failed");
        }
    }
}

/// What a send the network refused costs the number's health: WhatsApp's reach-out
/// restriction (463, read from the error's code, never from its text) more than any other
/// refusal, since it says the network distrusts the number.
fn health_cost(e: &DriverError) -> HealthEvent {
    if e.wa_code() == Some(REACH_OUT_RESTRICTED) {
        HealthEvent::ReachOutRefused
    } else {
        HealthEvent::SendFailed
    }
}

fn update(
    status: MessageStatus,
    instance_id: Option<String>,
    error: Option<String>,
) -> MessageUpdate {
    MessageUpdate { status, instance_id, error, at: now() }
}

#[cfg(test)]
mod tests;
