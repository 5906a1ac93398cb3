//! Resuming the stored numbers at start, in two phases, so that the listener serves at once and
//! 10,000 numbers come back in seconds rather than one after another:
//!
//! 1. Claim (before the listener serves; one pass under the supervisor's lock): every number
//!    that was active is marked `connecting` (or `qr_pending`) in ONE store transaction, its
//!    `instance.connecting` events are appended by group commit, and it is entered as running
//!    with a [`Starting`] handle, so operator commands and sends see it from the first request
//!    on. Numbers waiting for a temporary ban to end get their timer armed again.
//! 2. Start (on its own task, after the listener serves): the driver starts each claimed
//!    number, at most `concurrency` of them handshaking at once. A number holds its slot from
//!    its start until its driver emits its first state event (connected, a QR code, a drop,
//!    ...) or [`HANDSHAKE_WAIT`], whichever comes first. A number the driver cannot start ends
//!    `disconnected`/`stopped` with the cause; the others go on.
//!
//! `ResumeProgress` (`progress.rs`) counts the numbers still to settle (`GET /readyz` shows it).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bzapper_core::{InstanceState, Reason, Transition, Trigger};
use bzapper_store::{apply_state_change, InstanceRecord, StateChange};
use chrono::{DateTime, Utc};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};

use super::progress::{DEFAULT_RESUME_CONCURRENCY, HANDSHAKE_WAIT};
use super::starting::Starting;
use super::{state_changed, Running, Supervisor, SupervisorError};
use crate::events::Event;
use crate::runtime::inbound::OwnIds;

/// A number entered as running by the claim, waiting for its driver start.
pub struct Claimed {
    rec: InstanceRecord,
    generation: u64,
    own: OwnIds,
    starting: Arc<Starting>,
    /// Resolves (sent or dropped) at the number's first state event or when it stops running.
    settled: oneshot::Receiver<()>,
}

/// The numbers claimed by [`Supervisor::claim_for_resume`], to start with
/// [`Supervisor::start_claimed`].
pub struct Claim(Vec<Claimed>);

impl Claim {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Supervisor {
    /// Starts every instance that was active when the gateway last stopped, at most
    /// `concurrency` handshaking at once, and arms the reconnect of every number waiting for
    /// a temporary ban to end; returns how many were resumed once every start has settled.
    pub async fn resume_all_with(&self, concurrency: usize) -> Result<usize, SupervisorError> {
        let claim = self.claim_for_resume().await?;
        let n = claim.len();
        self.start_claimed(claim, concurrency).await;
        Ok(n)
    }

    /// [`Supervisor::resume_all_with`] at the default concurrency.
    pub async fn resume_all(&self) -> Result<usize, SupervisorError> {
        self.resume_all_with(DEFAULT_RESUME_CONCURRENCY).await
    }

    /// How far the resume has come.
    pub fn resume_progress(&self) -> &super::progress::ResumeProgress {
        &self.resume
    }

    /// Phase 1: marks every active number as starting again, in one transaction, and enters
    /// it as running; arms the timers of temporary bans.
    pub async fn claim_for_resume(&self) -> Result<Claim, SupervisorError> {
        let ban_ends: std::collections::HashMap<String, DateTime<Utc>> =
            self.store.ban_expiries().await?.into_iter().collect();
        let records = self.store.list_all_instances().await?;
        let with_session = self.store.instances_with_session().await?;
        let mut running = self.running.lock().await;
        let mut changes = Vec::new();
        let mut starts = Vec::new();
        for rec in records {
            if !rec.state.is_active() {
                if let Some(until) = ban_ends.get(&rec.id) {
                    if rec.state.reason == Some(Reason::Banned) {
                        self.reconnect_when_ban_ends(&rec.id, *until);
                    }
                }
                continue;
            }
            if running.contains_key(&rec.id) {
                continue;
            }
            self.ban_timers.disarm(&rec.id);
            let has_session = with_session.contains(&rec.id);
            // An instance that was active when the gateway stopped starts again from scratch.
            let from =
                InstanceState::disconnected(Reason::Stopped, Some("gateway restarted".into()));
            let t = match from.apply(&Trigger::Start { has_session }) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(instance = %rec.id, error = %e, "cannot resume the number");
                    continue;
                }
            };
            changes.push((rec.id.clone(), StateChange::state(t.to.clone())));
            starts.push((rec, t));
        }
        self.store.update_instance_states(&changes).await?;
        let mut recordings = Vec::with_capacity(starts.len());
        let mut claimed = Vec::with_capacity(starts.len());
        for ((mut rec, t), (_, change)) in starts.into_iter().zip(&changes) {
            apply_state_change(&mut rec, change);
            self.scheduler.number_changed(&rec, Some(&t)).await;
            if let Some(event) = resume_event(&t) {
                recordings.push(self.recorder.submit(&rec.tenant_id, Some(&rec.id), event).await);
            }
            claimed.push(self.enter_starting(&mut running, rec, &t));
        }
        // Every event in as few commits as the recorder's batches allow.
        for r in recordings {
            r.wait().await?;
        }
        self.resume.claimed(claimed.len());
        Ok(Claim(claimed))
    }

    /// Enters a claimed number as running, with a handle its driver start fills in later.
    fn enter_starting(
        &self,
        running: &mut std::collections::HashMap<String, Running>,
        rec: InstanceRecord,
        t: &Transition,
    ) -> Claimed {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let own: OwnIds = Arc::new(std::sync::RwLock::new((rec.jid.clone(), rec.lid.clone())));
        let starting = Starting::new();
        let (settled_tx, settled) = oneshot::channel();
        self.scheduler.attach_connection(&rec.id, starting.clone());
        running.insert(
            rec.id.clone(),
            Running {
                generation,
                tenant_id: rec.tenant_id.clone(),
                state: t.to.clone(),
                conn: starting.clone(),
                qr: watch::channel(None).0,
                own: own.clone(),
                settled: Some(settled_tx),
            },
        );
        Claimed { rec, generation, own, starting, settled }
    }

    /// Phase 2: starts the claimed numbers, at most `concurrency` handshaking at once, each on
    /// its own task (the driver's start decrypts the stored session: CPU work both cores
    /// share). Returns once every start has settled.
    ///
    /// A slot is freed the moment the driver emits the number's first state event, not when
    /// the supervisor's event loop gets to it, so the handshakes in flight do not depend on
    /// how fast that loop writes. (Measured: this alone did not shorten a 2,000-number
    /// restart; the handshakes were the slow part, see `TCP_NODELAY` in the driver's dial.)
    pub async fn start_claimed(&self, claim: Claim, concurrency: usize) {
        let Some(me) = self.me.upgrade() else { return };
        let slots = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut starts = Vec::with_capacity(claim.len());
        for c in claim.0 {
            let Ok(slot) = slots.clone().acquire_owned().await else { break };
            let me = me.clone();
            starts.push(tokio::spawn(async move { me.start_one_claimed(c, slot).await }));
        }
        for task in starts {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a resumed number's start task failed");
            }
        }
    }

    /// Starts one claimed number holding `slot` until its handshake has an outcome, then
    /// waits (within [`HANDSHAKE_WAIT`] in all) until the supervisor has applied it.
    async fn start_one_claimed(&self, c: Claimed, slot: OwnedSemaphorePermit) {
        let Claimed { rec, generation, own, starting, mut settled } = c;
        let deadline = tokio::time::Instant::now() + HANDSHAKE_WAIT;
        self.resume.enter();
        let (told, mut handshaken) = oneshot::channel();
        let mut opts = self.connect_options(&rec, generation, own);
        opts.events = opts.events.on_first_state_event(told);
        match self.driver.start(opts).await {
            Ok(conn) => {
                starting.started(conn).await;
                // The first state event, or the number stopped running meanwhile (then
                // `settled` has resolved and must not be awaited again).
                let settled_already = tokio::time::timeout_at(deadline, async {
                    tokio::select! {
                        _ = &mut handshaken => false,
                        _ = &mut settled => true,
                    }
                })
                .await
                .unwrap_or(false);
                self.resume.handshaken();
                drop(slot);
                if !settled_already {
                    let _ = tokio::time::timeout_at(deadline, settled).await;
                }
            }
            Err(e) => {
                self.resume.handshaken();
                drop(slot);
                starting.failed();
                tracing::warn!(instance = %rec.id, error = %e, "the driver could not resume the number");
                if let Err(e) = self.resume_failed(&rec, generation, e.to_string()).await {
                    tracing::error!(instance = %rec.id, error = %e, "recording a failed resume failed");
                }
            }
        }
        self.resume.leave();
    }

    /// A claimed number the driver could not start: it ends `disconnected`/`stopped`, its
    /// detail the cause, unless something else replaced or stopped it meanwhile.
    async fn resume_failed(
        &self,
        rec: &InstanceRecord,
        generation: u64,
        cause: String,
    ) -> Result<(), SupervisorError> {
        let mut running = self.running.lock().await;
        let Some(run) = running.get(&rec.id).filter(|r| r.generation == generation) else {
            return Ok(());
        };
        let detail = format!("the gateway could not start the number again: {cause}");
        let t = run.state.apply(&Trigger::Ended { detail })?;
        running.remove(&rec.id);
        self.scheduler.detach_connection(&rec.id);
        self.persist(&rec.tenant_id, &rec.id, &t, StateChange::state(t.to.clone())).await?;
        Ok(())
    }
}

/// The event a claim records, as `persist` would (a QR code is recorded when it arrives).
fn resume_event(t: &Transition) -> Option<Event> {
    use bzapper_core::Status;
    match t.to.status {
        Status::Connecting if t.changed() => Some(Event::InstanceConnecting(state_changed(&t.to))),
        _ => None,
    }
}
