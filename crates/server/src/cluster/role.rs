//! Jobs that one node of the cluster runs at a time (the webhook sender and alerts), each
//! held through a renewable role lease in the database. A node acts only while it holds the
//! role by its own clock as well: it lets go as soon as a renewal is refused and, when
//! renewals keep failing (or hang), a margin before the lease can expire and another node
//! can take the role over. A single node plays every role ([`Role::always`]).

use std::sync::Arc;

use bzapper_store::Signal;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::Cluster;

/// The role of the node that sends webhook deliveries and alerts.
pub const WEBHOOKS: &str = "webhooks";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// The only node: every role is its own.
    Always,
    /// Held until this instant: a margin before the lease in the database ends, counted from
    /// before the renewal was sent (so never later than the database's own expiry).
    Until(Instant),
    No,
}

impl Held {
    fn now(self) -> bool {
        match self {
            Held::Always => true,
            Held::Until(t) => Instant::now() < t,
            Held::No => false,
        }
    }
}

/// Whether this node plays a role now. Cheap to clone and to ask.
#[derive(Clone)]
pub struct Role {
    rx: watch::Receiver<Held>,
    /// Keeps the channel of [`Role::always`] open (a keeper task owns the others).
    _always: Option<Arc<watch::Sender<Held>>>,
    /// Rung by [`Role::give_up`].
    stop: Arc<Notify>,
}

impl Role {
    /// A role of the only node: always held.
    pub fn always() -> Role {
        let (tx, rx) = watch::channel(Held::Always);
        Role { rx, _always: Some(Arc::new(tx)), stop: Arc::default() }
    }

    /// Takes the named role for this node whenever nobody else holds it (at start, at every
    /// renewal tick, and at once when a node signals that leases were let go), and renews it
    /// while held. The keeper stops once every copy of the returned `Role` is dropped.
    pub fn hold(cluster: Arc<Cluster>, name: &'static str) -> Role {
        let (tx, rx) = watch::channel(Held::No);
        let stop = Arc::new(Notify::new());
        tokio::spawn(keep(cluster, name, tx, stop.clone()));
        Role { rx, _always: None, stop }
    }

    /// Stops taking and renewing the role (the node is shutting down): it counts as lost
    /// here at once, and another node takes it when its lease ends, or at once after the node
    /// leaves the cluster. No effect on [`Role::always`].
    pub fn give_up(&self) {
        self.stop.notify_one();
    }

    pub fn is_held(&self) -> bool {
        self.rx.borrow().now()
    }

    /// Returns once the role is held (at once when it is).
    pub async fn gained(&mut self) {
        loop {
            if self.rx.borrow_and_update().now() {
                return;
            }
            if self.rx.changed().await.is_err() {
                // The keeper is gone: the role can no longer be gained.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Returns once the role is lost: refused at a renewal, or its time ran out.
    pub async fn lost(&mut self) {
        loop {
            let held = *self.rx.borrow_and_update();
            match held {
                Held::No => return,
                Held::Until(t) if Instant::now() >= t => return,
                Held::Until(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t) => return,
                        changed = self.rx.changed() => {
                            if changed.is_err() {
                                tokio::time::sleep_until(t).await;
                                return;
                            }
                        }
                    }
                }
                Held::Always => {
                    if self.rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }
}

/// Tries for the role and renews it, publishing until when it is held.
async fn keep(
    cluster: Arc<Cluster>,
    name: &'static str,
    tx: watch::Sender<Held>,
    stop: Arc<Notify>,
) {
    let ttl = cluster.ttl;
    let every = cluster.renew_every();
    // Room between letting go here and the lease's end there, for clock drift and for an
    // attempt that was just starting.
    let margin = ttl / 5;
    let mut signals = Some(cluster.signals());
    loop {
        let held_until = match *tx.borrow() {
            Held::Until(t) => Some(t),
            _ => None,
        };
        let asked = Instant::now();
        // A renewal that hangs must not keep the role past the time it is held until.
        let limit = match held_until {
            Some(t) if t > asked => t - asked,
            _ => every,
        };
        let outcome =
            tokio::time::timeout(limit, cluster.store.hold_role(name, cluster.node_id(), ttl))
                .await;
        let next = match outcome {
            Ok(Ok(true)) => {
                if held_until.is_none() {
                    tracing::info!(
                        role = name,
                        node = cluster.node_id(),
                        "this node took the role"
                    );
                }
                Held::Until(asked + ttl.saturating_sub(margin))
            }
            Ok(Ok(false)) => {
                if held_until.is_some() {
                    tracing::warn!(role = name, "another node holds the role now");
                }
                Held::No
            }
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no answer in time".to_string(),
                };
                match held_until {
                    Some(t) if Instant::now() < t => {
                        tracing::warn!(role = name, error = %why, "renewing the role failed; retrying");
                        Held::Until(t)
                    }
                    Some(_) => {
                        tracing::warn!(role = name, error = %why, "renewals of the role failed for too long; letting it go");
                        Held::No
                    }
                    None => {
                        tracing::debug!(role = name, error = %why, "asking for the role failed");
                        Held::No
                    }
                }
            }
        };
        tx.send_replace(next);
        let wake_at = match next {
            Held::Until(t) => (Instant::now() + every).min(t),
            _ => Instant::now() + every,
        };
        let holding = matches!(next, Held::Until(_));
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake_at) => break,
                _ = tx.closed() => return,
                _ = stop.notified() => {
                    tx.send_replace(Held::No);
                    return;
                }
                // A node that left gave its roles up: ask at once rather than at the tick.
                s = next_signal(&mut signals), if !holding => match s {
                    Ok(Signal::Leases | Signal::Resync) | Err(RecvError::Lagged(_)) => break,
                    Ok(_) => {}
                    Err(RecvError::Closed) => signals = None,
                },
            }
        }
    }
}

/// The next cluster signal; never, once the feed has closed.
async fn next_signal(
    signals: &mut Option<broadcast::Receiver<Signal>>,
) -> Result<Signal, RecvError> {
    match signals {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cluster::test_support::{join, Schema};

    const NAME: &str = "test-role";

    async fn held_by(schema: &Schema) -> Option<(String, i64)> {
        sqlx::query_as("SELECT node_id, lease_until - bz_now_ms() FROM roles WHERE name = $1")
            .bind(NAME)
            .fetch_optional(&schema.raw)
            .await
            .unwrap()
    }

    async fn within<F: std::future::Future>(secs: u64, what: &str, f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(secs), f)
            .await
            .unwrap_or_else(|_| panic!("{what} within {secs} s"))
    }

    #[tokio::test]
    async fn one_node_holds_a_role_and_another_takes_it_at_once_when_it_is_let_go() {
        let Some(schema) = Schema::new().await else { return };
        // A long lease: renewal ticks (every 20 s) cannot be what moves the role here.
        let ttl = Duration::from_secs(60);
        let (a, _sa) = join(&schema, "A", ttl).await;
        let (b, sb) = join(&schema, "B", ttl).await;
        let mut on_a = Role::hold(a, NAME);
        within(5, "A takes the free role", on_a.gained()).await;
        let mut on_b = Role::hold(b, NAME);
        // B has asked (its first try is at once) and was refused.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(on_a.is_held() && !on_b.is_held());
        assert_eq!(held_by(&schema).await.map(|h| h.0), Some("A".to_string()));
        // A stops (its keeper ends with its last `Role`) and its lease is let go, as `leave`
        // does; the signal that comes with it makes B ask at once.
        drop(on_a);
        sqlx::query("UPDATE roles SET lease_until = bz_now_ms() - 1")
            .execute(&schema.raw)
            .await
            .unwrap();
        bzapper_store::ClusterStore::signal(&*sb, Signal::Leases).await.unwrap();
        within(5, "B takes the role on the signal", on_b.gained()).await;
        assert_eq!(held_by(&schema).await.map(|h| h.0), Some("B".to_string()));
    }

    #[tokio::test]
    async fn a_node_whose_renewals_fail_lets_go_before_its_lease_can_expire() {
        let Some(schema) = Schema::new().await else { return };
        let ttl = Duration::from_secs(3);
        let (a, sa) = join(&schema, "A", ttl).await;
        let mut on_a = Role::hold(a, NAME);
        within(5, "A takes the role", on_a.gained()).await;
        let since = Instant::now();
        // Its database is gone: every renewal fails from now on.
        sa.close().await;
        within(5, "A lets the role go", on_a.lost()).await;
        assert!(!on_a.is_held());
        let (_, left_ms) = held_by(&schema).await.unwrap();
        assert!(left_ms > 0, "let go {left_ms} ms before the lease ends, not after");
        assert!(since.elapsed() < ttl, "held {:?} without a renewal", since.elapsed());
    }

    #[tokio::test]
    async fn the_only_node_always_holds_its_roles() {
        let mut r = Role::always();
        assert!(r.is_held());
        within(1, "at once", r.gained()).await;
        let lost = tokio::time::timeout(Duration::from_millis(50), r.lost()).await;
        assert!(lost.is_err(), "never lost");
    }
}
