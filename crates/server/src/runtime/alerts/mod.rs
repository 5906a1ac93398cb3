//! Alerts: a short human sentence posted to a tenant's Slack-compatible or JSON URL when one
//! of its numbers is logged out, banned, or leaves rotation for low health.
//!
//! Alerts are durable, the way webhooks are and on the same parts ([`crate::runtime::delivery`]):
//! a fan-out reads the event log after its cursor, kept in the store, and writes one alert
//! delivery per event that calls for one (`fanout`), moving the cursor in the same transaction,
//! so an event appended just before a crash still gets its alert after the restart. A delivery
//! task posts each due alert (`delivery`), unsigned as alerts always were, through the
//! outbound guard with redirects off, and retries a failure with the webhooks' backoff until
//! it is delivered or its retry window ends (`failed`). Each tenant's alerts are one lane: a
//! few in flight and a share of memory per tenant, so one tenant's dead target delays no
//! other tenant's alerts.
//!
//! In a cluster both tasks run on the node holding the `webhooks` role, with the cursor and
//! the deliveries in the shared store: a node that gains the role goes on where the previous
//! holder stopped. An attempt under way when the role moves may be made again by the next
//! holder (at least once); on one node, each alert is posted once.

mod delivery;
mod fanout;
mod kinds;

use std::sync::Arc;
use std::time::Duration;

use bzapper_core::retry::RetryPolicy;
use bzapper_store::{AlertDeliveryRecord, Signal, Store};
use tokio::sync::broadcast::error::RecvError;

use crate::cluster::role::Role;
use crate::cluster::Cluster;
use crate::events::recorder::Recorder;
use crate::outbound::{Guard, OutboundClient, Redirects};
use crate::runtime::campaigns::Clock;
use crate::runtime::delivery::{engine, follow, Deliverable, Engine};

pub use kinds::{alert_kind, log_host, sentence, ALERT_KINDS};

/// How long an alert target may take to answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// A tenant's alerts share its target's request slots and its memory share.
impl Deliverable for AlertDeliveryRecord {
    fn id(&self) -> &str {
        &self.id
    }
    fn lane(&self) -> &str {
        &self.tenant_id
    }
}

/// What an alert's parts are built from.
pub struct AlertParts {
    pub store: Arc<dyn Store>,
    pub recorder: Arc<Recorder>,
    /// When a failed alert is tried again, and when it is given up.
    pub policy: RetryPolicy,
    /// The role of the node that posts (the webhooks' role).
    pub role: Role,
    /// The time alerts are stamped and due by.
    pub clock: Arc<dyn Clock>,
    pub cluster: Option<Arc<Cluster>>,
}

pub struct AlertWorker {
    store: Arc<dyn Store>,
    http: OutboundClient,
    policy: RetryPolicy,
    engine: Engine<AlertDeliveryRecord>,
    cluster: Option<Arc<Cluster>>,
}

impl AlertWorker {
    /// Starts the alert fan-out and delivery tasks, which work while this node holds
    /// `parts.role`. Alerts go through the outbound `guard`, redirects off (a 3xx is a failed
    /// attempt).
    pub fn spawn(parts: AlertParts, guard: &Guard) -> reqwest::Result<Arc<Self>> {
        let http = guard.client(Redirects::Off, |b| b.timeout(ATTEMPT_TIMEOUT))?;
        let AlertParts { store, recorder, policy, role, clock, cluster } = parts;
        let w = Arc::new(AlertWorker {
            store,
            http,
            policy,
            engine: Engine::new(role.clone(), clock),
            cluster,
        });
        tokio::spawn(follow(w.clone(), recorder, role));
        tokio::spawn(engine::run(w.clone()));
        if let Some(c) = &w.cluster {
            tokio::spawn(w.clone().hear_pokes(c.signals()));
        }
        Ok(w)
    }

    /// Wakes the delivery task to look in the store (a re-send was asked for), on whichever
    /// node posts: in a cluster through the `webhooks` signal, which the holder of the role
    /// hears for both senders.
    pub fn poke(&self) {
        self.engine.scan_now();
        if let Some(c) = &self.cluster {
            let c = c.clone();
            tokio::spawn(async move {
                if let Err(e) = c.store.signal(Signal::Webhooks).await {
                    // The sender's periodic scan finds the alert all the same.
                    tracing::warn!(error = %e, "signalling an alert re-send failed");
                }
            });
        }
    }

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

    /// Starts no new attempt and waits (at most one attempt's timeout) for those under way to
    /// record their outcome, so that an alert the target accepted is not posted again after a
    /// restart.
    pub async fn shutdown(&self) {
        self.engine.shutdown(ATTEMPT_TIMEOUT).await;
    }
}

#[cfg(test)]
mod tests;
