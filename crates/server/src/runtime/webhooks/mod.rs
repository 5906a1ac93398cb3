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
//!
//! Following the log, the delivery task and the fair shares are [`crate::runtime::delivery`]'s,
//! shared with the alerts; what is the webhooks' own is here: which events a webhook gets
//! (`fanout`), and the signed POST (`delivery`).

mod delivery;
mod fanout;
mod signature;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bzapper_core::retry::RetryPolicy;
use bzapper_store::{DeliveryRecord, Signal, Store, WebhookRecord};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::cluster::role::{self, Role};
use crate::cluster::Cluster;
use crate::events::recorder::Recorder;
use crate::outbound::{Guard, OutboundClient, Redirects};
use crate::runtime::campaigns::SystemClock;
use crate::runtime::delivery::{engine, follow, Deliverable, Engine};

pub use signature::signature;

/// How long a receiver may take to answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a webhook read from the store is used before it is read again (to notice that
/// it was deleted).
const HOOK_TTL: Duration = Duration::from_secs(1);

/// A webhook's deliveries share its request slots and its memory share.
impl Deliverable for DeliveryRecord {
    fn id(&self) -> &str {
        &self.id
    }
    fn lane(&self) -> &str {
        &self.webhook_id
    }
}

pub struct WebhookWorker {
    store: Arc<dyn Store>,
    metrics: Arc<crate::events::metrics::Metrics>,
    http: OutboundClient,
    policy: RetryPolicy,
    engine: Engine<DeliveryRecord>,
    /// Webhooks by id, with when each was read (a webhook never changes, but it may be
    /// deleted: it is read again after [`HOOK_TTL`]).
    hooks: Mutex<HashMap<String, (Arc<WebhookRecord>, Instant)>>,
    cluster: Option<Arc<Cluster>>,
}

impl WebhookWorker {
    /// Starts the fan-out and delivery tasks; with a `cluster`, they work while this node
    /// holds the `webhooks` role. Deliveries go through the outbound `guard`, redirects off (a
    /// 3xx is a failed attempt: following it would turn the POST into a GET that still carries
    /// the `X-Bzapper-*` headers, to wherever the receiver points).
    pub fn spawn(
        store: Arc<dyn Store>,
        recorder: Arc<Recorder>,
        policy: RetryPolicy,
        guard: &Guard,
        cluster: Option<Arc<Cluster>>,
    ) -> reqwest::Result<Arc<Self>> {
        let http = guard.client(Redirects::Off, |b| {
            b.timeout(ATTEMPT_TIMEOUT).user_agent(concat!("bzapper/", env!("CARGO_PKG_VERSION")))
        })?;
        let role = match &cluster {
            Some(c) => Role::hold(c.clone(), role::WEBHOOKS),
            None => Role::always(),
        };
        let w = Arc::new(WebhookWorker {
            store,
            metrics: recorder.metrics().clone(),
            http,
            policy,
            engine: Engine::new(role.clone(), Arc::new(SystemClock)),
            hooks: Mutex::default(),
            cluster,
        });
        tokio::spawn(follow(w.clone(), recorder, role));
        tokio::spawn(engine::run(w.clone()));
        if let Some(c) = &w.cluster {
            tokio::spawn(w.clone().hear_pokes(c.signals()));
        }
        Ok(w)
    }

    /// Whether this node sends webhooks (and alerts): the role the alerts follow too.
    pub fn role(&self) -> Role {
        self.engine.role()
    }

    /// Wakes the delivery loop to look in the store (a re-send was asked for), on whichever
    /// node sends.
    pub fn poke(&self) {
        self.engine.scan_now();
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

    /// Scans at once when any node asks (a re-send made on it), or when signals may have
    /// been missed.
    async fn hear_pokes(self: Arc<Self>, mut signals: tokio::sync::broadcast::Receiver<Signal>) {
        loop {
            match signals.recv().await {
                Ok(Signal::Webhooks | Signal::Resync) | Err(RecvError::Lagged(_)) => {
                    self.engine.scan_now();
                }
                Ok(_) => {}
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Starts no new attempt and waits (at most one attempt's timeout) for those under way
    /// to record their outcome, so that a delivery the receiver accepted is not sent again
    /// after a restart. In a cluster, the next holder takes over once this node's lease is
    /// let go.
    pub async fn shutdown(&self) {
        self.engine.shutdown(ATTEMPT_TIMEOUT).await;
    }
}

#[cfg(test)]
mod tests;
