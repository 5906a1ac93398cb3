//! Keeps this node's numbers. Every renewal period it heartbeats (which renews every lease
//! it holds), lets go at once of any number whose lease another node took, resumes numbers
//! it holds that should run, takes its fair share of numbers nobody holds (those of a node
//! that died or shut down; a number waiting for a temporary ban to end counts, and is
//! connected by its new holder when the ban ends) and hands its excess to nodes below their
//! share. It also places the numbers API calls on this node act on (`place`).
//!
//! Two nodes never run one number's connection: a node starts a connection only under an
//! unexpired lease of its own, and a node that cannot renew stops all its connections
//! (`fence`) before its leases can expire, measured on its own monotonic clock from the
//! start of its last successful renewal.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bzapper_core::{Reason, Status};
use bzapper_store::{Acquired, NodeRef, Signal, Store, StoreError};
use futures::StreamExt;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::runtime::scheduler::Scheduler;
use crate::runtime::supervisor::Supervisor;

/// Most numbers a node hands to others per round when it holds more than its share: the
/// cluster evens out within a few rounds without dropping many numbers at once.
const HANDOVER_PER_ROUND: usize = 5;

/// Numbers a node connects at once when it takes over a dead node's share.
const TAKEOVER_CONCURRENCY: usize = 16;

/// Where an instance's connection lives.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    Here,
    Elsewhere(NodeRef),
}

pub struct LeaseKeeper {
    cluster: Arc<Cluster>,
    store: Arc<dyn Store>,
    supervisor: Arc<Supervisor>,
    scheduler: Arc<Scheduler>,
    /// The instances whose lease this node holds. Its lock also orders renewals against
    /// acquisitions, so that a renewal never reads as lost a lease taken while it ran.
    held: Mutex<HashSet<String>>,
    started: Instant,
    /// Held for the whole of each round, so that `stop` can wait for the current one.
    round: Mutex<()>,
    stopping: std::sync::atomic::AtomicBool,
    stopped: tokio::sync::Notify,
}

impl LeaseKeeper {
    /// Creates the keeper and starts its renewal loop.
    pub fn spawn(
        cluster: Arc<Cluster>,
        store: Arc<dyn Store>,
        supervisor: Arc<Supervisor>,
        scheduler: Arc<Scheduler>,
    ) -> Arc<Self> {
        let keeper = Arc::new(LeaseKeeper {
            cluster,
            store,
            supervisor,
            scheduler,
            held: Mutex::new(HashSet::new()),
            started: Instant::now(),
            round: Mutex::new(()),
            stopping: Default::default(),
            stopped: tokio::sync::Notify::new(),
        });
        tokio::spawn(keeper.clone().run());
        keeper
    }

    /// Where the instance's connection is, taking its lease here when no node holds one
    /// (the calling API request then acts on it here).
    pub async fn place(&self, instance_id: &str) -> Result<Placement, StoreError> {
        let mut held = self.held.lock().await;
        if held.contains(instance_id) {
            return Ok(Placement::Here);
        }
        match self.acquire(instance_id).await? {
            Acquired::Yes { .. } => {
                held.insert(instance_id.to_string());
                drop(held);
                if let Some(rec) = self.store.get_instance_by_id(instance_id).await? {
                    self.scheduler.adopt_number(&rec).await?;
                }
                Ok(Placement::Here)
            }
            Acquired::HeldBy(node) => Ok(Placement::Elsewhere(node)),
        }
    }

    /// Ends the renewal loop, waiting for a round under way: from now on this node takes,
    /// resumes and hands over nothing. Its leases stay until `leave` or their expiry.
    pub async fn stop(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        self.stopped.notify_one();
        let _round = self.round.lock().await;
    }

    /// Gives every lease up, for the other nodes to take at once. Call after `stop` and once
    /// this node's connections are closed.
    pub async fn leave(&self) {
        self.held.lock().await.clear();
        if let Err(e) = self.cluster.store.leave(self.cluster.node_id()).await {
            tracing::warn!(error = %e, "leaving the cluster failed; the leases will expire");
        }
    }

    async fn acquire(&self, instance_id: &str) -> Result<Acquired, StoreError> {
        let c = &self.cluster;
        c.store.acquire(instance_id, c.node_id(), c.ttl).await
    }

    async fn run(self: Arc<Self>) {
        let mut signals = self.cluster.signals();
        let every = self.cluster.renew_every();
        // `Cluster::join` heartbeated just now.
        let mut last_renewal = Instant::now();
        loop {
            let round = self.round.lock().await;
            if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let began = Instant::now();
            match self.renew().await {
                Ok(()) => {
                    last_renewal = began;
                    if let Err(e) = self.balance().await {
                        tracing::warn!(error = %e, "taking or handing over numbers failed");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "renewing this node's leases failed");
                    if last_renewal.elapsed() >= fence_after(self.cluster.ttl, every) {
                        self.fence().await;
                    }
                }
            }
            drop(round);
            let wake = async {
                loop {
                    match signals.recv().await {
                        Ok(Signal::Leases | Signal::Resync) | Err(RecvError::Lagged(_)) => break,
                        Ok(_) => {}
                        Err(RecvError::Closed) => std::future::pending::<()>().await,
                    }
                }
            };
            tokio::select! {
                _ = wake => {}
                _ = tokio::time::sleep(every) => {}
                _ = self.stopped.notified() => {}
            }
        }
    }

    /// Heartbeats, lets go of lost numbers, and resumes held ones that should run.
    async fn renew(&self) -> Result<(), StoreError> {
        let c = &self.cluster;
        let mut held = self.held.lock().await;
        let renewed = tokio::time::timeout(c.renew_every(), c.store.heartbeat(&c.node, c.ttl))
            .await
            .map_err(|_| StoreError::Database("the heartbeat timed out".into()))??;
        let renewed: HashSet<String> = renewed.into_iter().collect();
        let lost: Vec<String> = held.difference(&renewed).cloned().collect();
        *held = renewed;
        let resume: Vec<String> = held.iter().cloned().collect();
        drop(held);
        for id in lost {
            if self.supervisor.release(&id).await {
                tracing::warn!(instance = %id, "another node took this number over; its connection here is closed");
            }
        }
        for id in resume {
            if self.supervisor.is_running(&id).await || self.supervisor.waits_for_ban_end(&id) {
                continue;
            }
            // Held but not running: this node stopped it while it could not renew, or its
            // start failed. Active numbers run, and a number waiting for a temporary ban to end
            // runs when it ends; the others wait for an operator.
            match self.store.get_instance_by_id(&id).await? {
                Some(rec) if rec.state.is_active() || rec.state.reason == Some(Reason::Banned) => {
                    if let Err(e) = self.supervisor.take_over(&rec, None, c.node_id()).await {
                        tracing::warn!(instance = %id, error = %e, "resuming a held number failed");
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Takes numbers nobody holds up to this node's share; hands numbers above it to nodes
    /// below theirs.
    async fn balance(&self) -> Result<(), StoreError> {
        let c = &self.cluster;
        let placement = c.store.placement(c.ttl).await?;
        let fair = placement.active_instances.div_ceil(placement.live_nodes.max(1));
        let mine = placement.held_active.get(c.node_id()).copied().unwrap_or(0);
        if mine < fair {
            self.adopt_orphans((fair - mine) as usize).await?;
        } else if mine > fair && self.started.elapsed() >= c.ttl {
            // Someone is below its share only if a live node holds less than `fair`; nodes
            // that just joined count, which is the point.
            let someone_below = placement.live_nodes as usize > placement.held_active.len()
                || placement.held_active.values().any(|&n| n < fair);
            if someone_below {
                self.hand_over(((mine - fair) as usize).min(HANDOVER_PER_ROUND)).await?;
            }
        }
        Ok(())
    }

    async fn adopt_orphans(&self, mut quota: usize) -> Result<(), StoreError> {
        let c = &self.cluster;
        // A few more than the quota: other nodes are taking some at the same moment.
        let want = u32::try_from(quota * 2 + 4).unwrap_or(u32::MAX);
        let mut taken = Vec::new();
        for orphan in c.store.orphans(want).await? {
            if quota == 0 {
                break;
            }
            let rec = orphan.instance;
            let mut held = self.held.lock().await;
            match self.acquire(&rec.id).await? {
                Acquired::Yes { previous } => {
                    held.insert(rec.id.clone());
                    quota -= 1;
                    taken.push((rec, previous));
                }
                Acquired::HeldBy(_) => continue,
            }
        }
        // Connected several at a time: a dead node's hundreds of numbers must not come back
        // one after another.
        futures::stream::iter(taken)
            .for_each_concurrent(TAKEOVER_CONCURRENCY, |(rec, previous)| async move {
                tracing::info!(instance = %rec.id, previous = ?previous, "taking this number over");
                if let Err(e) = self.scheduler.adopt_number(&rec).await {
                    tracing::warn!(instance = %rec.id, error = %e, "reading a taken-over number failed");
                }
                if let Err(e) =
                    self.supervisor.take_over(&rec, previous.as_deref(), c.node_id()).await
                {
                    tracing::warn!(instance = %rec.id, error = %e, "connecting a taken-over number failed");
                }
            })
            .await;
        Ok(())
    }

    /// Lets `n` connected numbers go for nodes below their share to take.
    async fn hand_over(&self, n: usize) -> Result<(), StoreError> {
        let c = &self.cluster;
        let candidates: Vec<String> = self.held.lock().await.iter().cloned().collect();
        let mut given = 0;
        for id in candidates {
            if given == n {
                break;
            }
            // Only connected numbers move: one being paired would lose its QR code.
            match self.store.get_instance_by_id(&id).await? {
                Some(rec) if rec.state.status == Status::Connected => {}
                _ => continue,
            }
            let mut held = self.held.lock().await;
            if !held.remove(&id) {
                continue;
            }
            self.supervisor.release(&id).await;
            c.store.release(&id, c.node_id()).await?;
            drop(held);
            tracing::info!(instance = %id, "handing this number to a node below its share");
            given += 1;
        }
        Ok(())
    }

    /// This node could not renew for nearly a lease time: its leases may expire and other
    /// nodes take its numbers, so it closes every connection first. It keeps its list: if
    /// the renewals resume before expiry, the numbers are still its own and start again.
    async fn fence(&self) {
        let held: Vec<String> = self.held.lock().await.iter().cloned().collect();
        let mut closed = 0;
        for id in held {
            if self.supervisor.release(&id).await {
                closed += 1;
            }
        }
        if closed > 0 {
            tracing::error!(
                closed,
                "cannot renew this node's leases: closed its connections before they expire"
            );
        }
    }
}

/// How long after the start of its last successful renewal a node stops its connections:
/// before its leases (renewed for `ttl` at that moment or later) can expire, with half a
/// renewal period to spare for closing them.
pub fn fence_after(ttl: Duration, renew_every: Duration) -> Duration {
    ttl.saturating_sub(renew_every / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_fences_before_its_leases_expire() {
        let ttl = Duration::from_secs(15);
        let every = ttl / 3;
        let f = fence_after(ttl, every);
        assert!(f < ttl && f > every * 2, "{f:?}");
        assert_eq!(
            fence_after(Duration::from_secs(3), Duration::from_secs(1)),
            Duration::from_millis(2500)
        );
    }
}
