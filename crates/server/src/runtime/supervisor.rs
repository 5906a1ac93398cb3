//! The instance supervisor: starts and stops each number's driver connection, feeds every
//! driver event and operator command through the core state machine, persists the outcome and
//! records it in the event log. It is the only writer of instance state.
//!
//! Events of a connection are tagged `<instance id>#<generation>`: a connection that was
//! stopped or replaced may still have events in flight, and the generation lets the supervisor
//! drop them instead of applying them to the connection that replaced it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bzapper_core::{InstanceState, Phone, Reason, Status, Transition, Trigger};
use bzapper_driver::{
    ConnectOptions, Connection, DriverError, DriverEvent, DropKind, EventSink, PairCode, Presence,
};
use bzapper_store::{Identity, InstanceRecord, StateChange, Store};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch, Mutex};

use crate::events::instance::{
    ConnectedIdentity, InstanceConnected, InstanceQr, InstanceStateChanged,
};
use crate::events::recorder::Recorder;
use crate::events::Event;
use crate::model::time::at_store_precision;
use crate::runtime::calls::{CallJob, Calls};
use crate::runtime::inbound::{Inbound, InboundJob, OwnIds};
use crate::runtime::scheduler::Scheduler;
use crate::runtime::session_bridge::InstanceSession;
use ban_timers::BanTimers;
pub use progress::{ResumeProgress, DEFAULT_RESUME_CONCURRENCY, HANDSHAKE_WAIT};

/// How many queued driver events one pass of the event loop takes at most (see
/// `supervisor/connected_batch.rs`).
const MOST_EVENTS_AT_ONCE: usize = 512;

/// The QR code currently shown for an instance.
#[derive(Debug, Clone, PartialEq)]
pub struct QrCode {
    pub code: String,
    pub expires_at: DateTime<Utc>,
}

struct Running {
    generation: u64,
    tenant_id: String,
    state: InstanceState,
    conn: Arc<dyn Connection>,
    qr: watch::Sender<Option<QrCode>>,
    /// The number's own JID and LID, for `mentions_me` (shared with its inbound sink).
    own: OwnIds,
    /// A resumed number's handshake slot: released (dropped) at its first state event, or
    /// when it stops running here (see `resume.rs`).
    settled: Option<tokio::sync::oneshot::Sender<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("{0}")]
    Store(#[from] bzapper_store::StoreError),
    #[error("{0}")]
    Driver(#[from] DriverError),
    #[error("the instance is not running")]
    NotRunning,
    #[error("{0}")]
    Refused(#[from] bzapper_core::TransitionError),
}

pub struct Supervisor {
    store: Arc<dyn Store>,
    driver: Arc<dyn bzapper_driver::Driver>,
    tx: mpsc::UnboundedSender<(String, DriverEvent)>,
    running: Mutex<HashMap<String, Running>>,
    next_generation: AtomicU64,
    recorder: Arc<Recorder>,
    scheduler: Arc<Scheduler>,
    /// Resolves and records inbound messages off this supervisor's event loop.
    inbound: Inbound,
    /// Rejects and reports incoming calls off this supervisor's event loop.
    calls: Calls,
    /// Itself, for the tasks it schedules (a reconnect when a temporary ban expires).
    me: Weak<Supervisor>,
    /// The numbers waiting here for a temporary ban to end.
    ban_timers: BanTimers,
    /// How far the resume at start has come.
    resume: ResumeProgress,
}

impl Supervisor {
    /// Creates the supervisor and spawns the task that applies driver events. `public_url` is
    /// the gateway's own URL: media links in events are absolute, so webhook receivers fetch
    /// them as they are.
    pub fn spawn(
        store: Arc<dyn Store>,
        driver: Arc<dyn bzapper_driver::Driver>,
        recorder: Arc<Recorder>,
        scheduler: Arc<Scheduler>,
        public_url: &str,
    ) -> Arc<Self> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let inbound =
            Inbound::spawn(store.clone(), recorder.clone(), public_url, scheduler.unread());
        let calls = Calls::new(store.clone(), recorder.clone(), scheduler.clone());
        let sup = Arc::new_cyclic(|me| Supervisor {
            store,
            inbound,
            calls,
            driver,
            tx,
            running: Mutex::new(HashMap::new()),
            next_generation: AtomicU64::new(1),
            recorder,
            scheduler,
            me: me.clone(),
            ban_timers: BanTimers::default(),
            resume: ResumeProgress::default(),
        });
        let weak = Arc::downgrade(&sup);
        tokio::spawn(async move {
            let mut events = Vec::with_capacity(MOST_EVENTS_AT_ONCE);
            while rx.recv_many(&mut events, MOST_EVENTS_AT_ONCE).await > 0 {
                let Some(sup) = weak.upgrade() else { break };
                sup.handle_driver_events(std::mem::take(&mut events)).await;
            }
        });
        sup
    }

    pub fn driver_name(&self) -> &'static str {
        self.driver.name()
    }

    /// Starts the instance's connection (create, `connect`, resume). Starting a running
    /// instance changes nothing and returns its state.
    pub async fn start(&self, rec: &InstanceRecord) -> Result<InstanceState, SupervisorError> {
        let mut running = self.running.lock().await;
        self.start_in(&mut running, rec).await
    }

    /// What the driver is given to start `rec`'s connection (a start or a resume).
    fn connect_options(
        &self,
        rec: &InstanceRecord,
        generation: u64,
        own: OwnIds,
    ) -> ConnectOptions {
        ConnectOptions {
            instance_id: rec.id.clone(),
            proxy: rec.proxy.clone(),
            session: Arc::new(InstanceSession::new(self.store.clone(), rec.id.clone())),
            events: EventSink::new(format!("{}#{generation}", rec.id), self.tx.clone()),
            // Messages go to the event log from the driver's own task, never through this
            // supervisor's loop: a burst must not hold up the number's state events.
            inbound: self.inbound.sink(&rec.tenant_id, &rec.id, own),
        }
    }

    /// [`Supervisor::start`] with the lock held.
    async fn start_in(
        &self,
        running: &mut HashMap<String, Running>,
        rec: &InstanceRecord,
    ) -> Result<InstanceState, SupervisorError> {
        if let Some(r) = running.get(&rec.id) {
            return Ok(r.state.clone());
        }
        // Started now: a ban's end no longer needs to (the stored expiry is cleared with the
        // state change below).
        self.ban_timers.disarm(&rec.id);
        let has_session = self.store.has_session(&rec.id).await?;
        // An instance that was active when the gateway stopped starts again from scratch.
        let from = if rec.state.is_active() {
            InstanceState::disconnected(Reason::Stopped, Some("gateway restarted".into()))
        } else {
            rec.state.clone()
        };
        let transition = from.apply(&Trigger::Start { has_session })?;
        self.persist(
            &rec.tenant_id,
            &rec.id,
            &transition,
            StateChange::state(transition.to.clone()),
        )
        .await?;
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let own: OwnIds = Arc::new(std::sync::RwLock::new((rec.jid.clone(), rec.lid.clone())));
        let conn = self.driver.start(self.connect_options(rec, generation, own.clone())).await?;
        self.scheduler.attach_connection(&rec.id, conn.clone());
        running.insert(
            rec.id.clone(),
            Running {
                generation,
                tenant_id: rec.tenant_id.clone(),
                state: transition.to.clone(),
                conn,
                qr: watch::channel(None).0,
                own,
                settled: None,
            },
        );
        Ok(transition.to)
    }

    /// Disconnects the instance and keeps its session (`reason: stopped`). A number waiting
    /// for a temporary ban to end stays `banned` and is no longer connected at its end.
    pub async fn stop(&self, rec: &InstanceRecord) -> Result<InstanceState, SupervisorError> {
        let mut running = self.running.lock().await;
        self.cancel_ban_end(&rec.id).await?;
        let from = match running.remove(&rec.id) {
            Some(r) => {
                self.scheduler.detach_connection(&rec.id);
                r.conn.stop().await;
                r.state
            }
            None => rec.state.clone(),
        };
        let t = from.apply(&Trigger::Stop)?;
        self.persist(&rec.tenant_id, &rec.id, &t, StateChange::state(t.to.clone())).await?;
        Ok(t.to)
    }

    /// Unlinks the number and wipes its session (`reason: logged_out`).
    pub async fn logout(&self, rec: &InstanceRecord) -> Result<InstanceState, SupervisorError> {
        let mut running = self.running.lock().await;
        self.cancel_ban_end(&rec.id).await?;
        let from = match running.remove(&rec.id) {
            Some(r) => {
                self.scheduler.detach_connection(&rec.id);
                if let Err(e) = r.conn.logout().await {
                    // The local session is wiped below whatever the network said.
                    tracing::warn!(instance = %rec.id, error = %e, "logout at the network failed");
                }
                r.conn.stop().await;
                r.state
            }
            None => rec.state.clone(),
        };
        self.store.clear_session(&rec.id).await?;
        let t = from.apply(&Trigger::LoggedOut { detail: "logged out by an operator".into() })?;
        self.persist(&rec.tenant_id, &rec.id, &t, StateChange::state(t.to.clone())).await?;
        Ok(t.to)
    }

    /// Logs the number out and deletes it with its session.
    pub async fn delete(&self, rec: &InstanceRecord) -> Result<(), SupervisorError> {
        let mut running = self.running.lock().await;
        self.ban_timers.disarm(&rec.id);
        if let Some(r) = running.remove(&rec.id) {
            if let Err(e) = r.conn.logout().await {
                tracing::warn!(instance = %rec.id, error = %e, "logout at the network failed");
            }
            r.conn.stop().await;
        }
        self.scheduler.number_removed(&rec.id).await;
        self.store.delete_instance(&rec.tenant_id, &rec.id).await?;
        Ok(())
    }

    /// The current QR code, waiting up to `wait` for the first one of a fresh connection.
    pub async fn qr(&self, id: &str, wait: Duration) -> Option<QrCode> {
        let mut rx = {
            let running = self.running.lock().await;
            running.get(id)?.qr.subscribe()
        };
        let current = rx.borrow().clone();
        if current.is_some() {
            return current;
        }
        let got = tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await;
        match got {
            Ok(Ok(v)) => v.clone(),
            _ => None,
        }
    }

    pub async fn pair_code(&self, id: &str, phone: &Phone) -> Result<PairCode, SupervisorError> {
        // A pairing code needs the pairing connection up, which the first QR code shows.
        self.qr(id, Duration::from_secs(5)).await.ok_or(SupervisorError::NotRunning)?;
        let conn = {
            let running = self.running.lock().await;
            let r = running.get(id).ok_or(SupervisorError::NotRunning)?;
            r.conn.clone()
        };
        Ok(conn.pair_code(phone).await?)
    }

    /// The connection of a running instance, for sending.
    /// What each number received and has not marked read (shared with the scheduler).
    pub fn unread(&self) -> Arc<crate::runtime::unread::Unread> {
        self.scheduler.unread()
    }

    /// Announces a connected number `available` now (its `always_online` was just turned
    /// on); a number not connected here announces it at its next connect.
    pub async fn announce_online_now(&self, id: &str) {
        let running = self.running.lock().await;
        if let Some(r) = running.get(id).filter(|r| r.state.status == Status::Connected) {
            announce_online(id, r.conn.clone());
        }
    }

    pub async fn connection(&self, id: &str) -> Option<Arc<dyn Connection>> {
        self.running.lock().await.get(id).map(|r| r.conn.clone())
    }

    /// The instances whose connection runs here, sorted.
    pub async fn running_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.running.lock().await.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Whether this process runs the instance's connection.
    pub async fn is_running(&self, id: &str) -> bool {
        self.running.lock().await.contains_key(id)
    }

    /// Closes the instance's connection and keeps its stored state as it is, for another
    /// node to resume (this node lost or handed over its lease); a ban's end is left to that
    /// node too. Returns whether it ran here.
    pub async fn release(&self, id: &str) -> bool {
        let mut running = self.running.lock().await;
        self.ban_timers.disarm(id);
        let Some(r) = running.remove(id) else { return false };
        drop(running);
        self.scheduler.detach_connection(id);
        r.conn.stop().await;
        true
    }

    /// Resumes a number whose previous node stopped holding it (died, lost its database, or
    /// shut down): the connection that node had is gone, which is recorded as
    /// `instance.disconnected` (`transient`: it reconnects by itself) before this node
    /// connects it again from its stored session. A number waiting for a temporary ban to end
    /// is connected when it ends; any other `disconnected` one is left as it is.
    pub async fn take_over(
        &self,
        rec: &InstanceRecord,
        previous_node: Option<&str>,
        this_node: &str,
    ) -> Result<InstanceState, SupervisorError> {
        if !rec.state.is_active() {
            self.watch_ban(rec).await?;
            return Ok(rec.state.clone());
        }
        let mut rec = rec.clone();
        if !self.is_running(&rec.id).await {
            let why = match previous_node {
                Some(n) => format!("node {n} stopped renewing its hold on this number"),
                None => "its node shut down".to_string(),
            };
            let dropped = InstanceState::disconnected(
                Reason::Transient,
                Some(format!("{why}; node {this_node} reconnects it")),
            );
            let t = Transition { from: rec.state.clone(), to: dropped.clone() };
            self.persist(&rec.tenant_id, &rec.id, &t, StateChange::state(dropped.clone())).await?;
            rec.state = dropped;
        }
        self.start(&rec).await
    }

    /// Closes every connection and keeps every state as it is, so that the next start resumes
    /// the same instances.
    pub async fn shutdown(&self) {
        let mut running = self.running.lock().await;
        // A ban's end is left to the next start (or, in a cluster, to the next holder).
        self.ban_timers.disarm_all();
        // All at once: a real-driver client may take a couple of seconds to flush and end, and
        // a gateway with hundreds of numbers must not stop them one after another.
        futures::future::join_all(running.drain().map(|(_, r)| async move { r.conn.stop().await }))
            .await;
    }

    async fn handle_driver_event(
        &self,
        tag: &str,
        event: DriverEvent,
    ) -> Result<(), SupervisorError> {
        let Some((id, generation)) = tag.rsplit_once('#') else { return Ok(()) };
        let generation: u64 = generation.parse().unwrap_or(0);
        if let DriverEvent::Receipt { message_id, status } = &event {
            // A receipt concerns a message, not the connection's state: even one that arrives
            // after its connection was replaced is true.
            self.scheduler.receipt(id, message_id, *status).await;
            return Ok(());
        }
        if matches!(event, DriverEvent::Connected) {
            self.connect_all(vec![tag.to_string()]).await;
            return Ok(());
        }
        let mut running = self.running.lock().await;
        let Some(run) = running.get_mut(id).filter(|r| r.generation == generation) else {
            return Ok(()); // an event of a connection that no longer exists
        };
        let tenant_id = run.tenant_id.clone();
        if !matches!(event, DriverEvent::Message(_) | DriverEvent::Call(_)) {
            // Its handshake has an outcome: a resumed number frees its slot for the next.
            run.settled.take();
        }
        let mut change_extra: Option<Identity> = None;
        let mut ban_expires = None;
        let trigger = match event {
            DriverEvent::Qr { code, expires_at } => {
                let qr = QrCode { code, expires_at };
                run.qr.send_replace(Some(qr.clone()));
                let event = InstanceQr { code: qr.code, expires_at: qr.expires_at };
                self.record(&tenant_id, id, Event::InstanceQr(event)).await?;
                Trigger::QrIssued
            }
            DriverEvent::QrTimeout => Trigger::QrTimeout,
            DriverEvent::Paired { phone, jid, lid } => {
                if let Some(l) = &lid {
                    let (l, j) = (l.to_string(), jid.to_non_device().to_string());
                    self.store.learn_lid(&tenant_id, &l, &j).await?;
                }
                *run.own.write().unwrap_or_else(|e| e.into_inner()) =
                    (Some(jid.to_string()), lid.as_ref().map(ToString::to_string));
                change_extra = Some(Identity {
                    phone: phone.e164(),
                    jid: jid.to_string(),
                    lid: lid.map(|l| l.to_string()),
                });
                Trigger::Paired
            }
            DriverEvent::Connected => return Ok(()), // handled above
            DriverEvent::Reconnecting { .. } => Trigger::Reconnecting,
            DriverEvent::Disconnected { kind, detail } => match kind {
                DropKind::Transient => Trigger::Dropped { detail },
                DropKind::LoggedOut => Trigger::LoggedOut { detail },
                DropKind::Banned => Trigger::Banned { detail },
                DropKind::TemporarilyBanned { until } => {
                    // The store keeps milliseconds; the timer compares its end with the stored one.
                    ban_expires = Some(at_store_precision(until));
                    Trigger::Banned { detail }
                }
                DropKind::Ended => Trigger::Ended { detail },
            },
            DriverEvent::SessionUnreadable { detail } => Trigger::SessionUnreadable { detail },
            DriverEvent::Receipt { .. } => return Ok(()), // handled above
            DriverEvent::Message(message) => {
                // One the driver's library acknowledged on its own (not through the sink):
                // resolved and recorded elsewhere, in order per number, so that a burst of them
                // does not hold up this loop's state events.
                self.inbound.push(InboundJob {
                    tenant_id,
                    instance_id: id.to_string(),
                    own: run.own.read().unwrap_or_else(|e| e.into_inner()).clone(),
                    message,
                });
                return Ok(());
            }
            DriverEvent::Call(call) => {
                let conn = run.conn.clone();
                self.calls.ring(CallJob { tenant_id, instance_id: id.to_string(), conn, call });
                return Ok(());
            }
        };
        let t = match run.state.apply(&trigger) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(instance = %id, error = %e, "driver event refused by the state machine");
                return Ok(());
            }
        };
        if t.to.status != Status::QrPending {
            run.qr.send_replace(None);
        }
        run.state = t.to.clone();
        let change = StateChange {
            state: t.to.clone(),
            identity: change_extra,
            connected_at: None,
            clear_identity: false,
            ban_until: ban_expires,
        };
        let rec = self.persist(&tenant_id, id, &t, change).await?;
        if t.to.status == Status::Connected && rec.is_some_and(|r| r.always_online) {
            announce_online(id, run.conn.clone());
        }
        if let Some(until) = ban_expires {
            self.reconnect_when_ban_ends(id, until);
        }
        if !t.to.is_active() {
            // The driver has ended this connection (logged out, banned, timed out, unreadable).
            if let Some(r) = running.remove(id) {
                self.scheduler.detach_connection(id);
                r.conn.stop().await;
            }
        }
        Ok(())
    }

    /// Writes a state change and, when it is visible, records its `instance.*` event. The
    /// record as it is after the change, when one was written.
    async fn persist(
        &self,
        tenant_id: &str,
        id: &str,
        t: &Transition,
        change: StateChange,
    ) -> Result<Option<InstanceRecord>, SupervisorError> {
        let identity_changed = change.identity.is_some() || change.connected_at.is_some();
        if !t.changed() && !identity_changed {
            return Ok(None);
        }
        self.store.update_instance_state(id, &change).await?;
        let rec = self.store.get_instance_by_id(id).await?;
        if let Some(rec) = &rec {
            self.scheduler.number_changed(rec, Some(t)).await;
        }
        if !t.changed() {
            return Ok(rec);
        }
        if let Some(event) = visible_event(&t.to, rec.as_ref()) {
            self.record(tenant_id, id, event).await?;
        }
        Ok(rec)
    }

    async fn record(
        &self,
        tenant_id: &str,
        instance_id: &str,
        event: Event,
    ) -> Result<(), SupervisorError> {
        self.recorder.record(tenant_id, Some(instance_id), event).await?;
        Ok(())
    }
}

/// Announces the number `available` on its own task (a round trip to the network that the
/// event loop must not wait on); a failure is logged, and the next connect tries again.
fn announce_online(id: &str, conn: Arc<dyn Connection>) {
    let id = id.to_string();
    tokio::spawn(async move {
        if let Err(e) = conn.set_presence(Presence::Available).await {
            tracing::warn!(instance = %id, error = %e, "announcing the number online failed");
        }
    });
}

/// The `instance.*` event a change to state `s` records (`rec` is the number as stored after
/// it); none for `qr_pending`, whose QR code is recorded as `instance.qr` when it arrives.
fn visible_event(s: &InstanceState, rec: Option<&InstanceRecord>) -> Option<Event> {
    Some(match s.status {
        Status::QrPending => return None,
        Status::Connecting => Event::InstanceConnecting(state_changed(s)),
        Status::Connected => Event::InstanceConnected(InstanceConnected {
            status: s.status.as_str(),
            reason: s.reason.map(Reason::as_str),
            detail: s.detail.clone(),
            identity: rec.map(|r| ConnectedIdentity {
                phone: r.phone.clone(),
                jid: r.jid.clone(),
                lid: r.lid.clone(),
            }),
        }),
        Status::Disconnected => Event::InstanceDisconnected(state_changed(s)),
    })
}

fn state_changed(s: &InstanceState) -> InstanceStateChanged {
    InstanceStateChanged {
        status: s.status.as_str(),
        reason: s.reason.map(Reason::as_str),
        detail: s.detail.clone(),
    }
}

mod ban_expiry;
mod ban_timers;
mod connected_batch;
mod progress;
pub mod resume;
mod starting;
#[cfg(test)]
mod tests;
