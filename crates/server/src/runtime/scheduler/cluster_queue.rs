//! The scheduler's share of a queue several nodes serve: it claims the sends its own numbers
//! can make (a number's forced sends only on the node holding the number, pool sends on any
//! node with a number of that pool) a bounded batch at a time, so that a big queue spreads
//! over the nodes, and hands back what it can no longer send (its numbers of that pool went
//! to other nodes, were banned or deleted). The sends of a node that died are claimed by the
//! others once its heartbeat is older than the lease time.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bzapper_store::Signal;
use tokio::sync::broadcast::error::RecvError;

use super::Scheduler;
use crate::cluster::Cluster;

/// Queued sends a node keeps per number it holds before it stops claiming: enough to keep
/// every number busy between two claim rounds, small enough that a long campaign stays
/// spread over the nodes.
const CLAIM_PER_NUMBER: usize = 50;
/// Most sends one claim round takes: a node holding thousands of numbers has room for
/// far more (50 each), and takes it in rounds of this size, one after another, so that no
/// statement returns an unbounded list of messages.
const CLAIM_BATCH: usize = 2_000;
/// Claim rounds happen on every signal and at least this often.
const CLAIM_EVERY: Duration = Duration::from_secs(1);
/// Pool strategies are set through any node; each node reads them again this often.
const POOLS_EVERY: Duration = Duration::from_secs(5);

impl Scheduler {
    pub(super) async fn claim_loop(self: Arc<Self>, cluster: Arc<Cluster>) {
        let mut signals = cluster.signals();
        let mut last_pools = tokio::time::Instant::now();
        loop {
            self.hand_back_stranded(&cluster).await;
            let full = match self.claim_round(&cluster).await {
                Ok(full) => full,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming queued sends failed");
                    false
                }
            };
            if last_pools.elapsed() >= POOLS_EVERY {
                last_pools = tokio::time::Instant::now();
                self.reload_strategies().await;
            }
            if full {
                // More may be waiting, and there is room for it: the next round at once.
                tokio::task::yield_now().await;
                continue;
            }
            let relevant = async {
                loop {
                    match signals.recv().await {
                        Ok(Signal::Queue | Signal::Leases | Signal::Resync)
                        | Err(RecvError::Lagged(_)) => break,
                        Ok(_) => {}
                        Err(RecvError::Closed) => std::future::pending::<()>().await,
                    }
                }
            };
            tokio::select! {
                _ = relevant => {}
                _ = self.claim_wake.notified() => {}
                _ = tokio::time::sleep(CLAIM_EVERY) => {}
            }
        }
    }

    /// One claim: as many sends as this node has room for (at most [`CLAIM_BATCH`]), of
    /// its numbers and their pools, in one statement for all of them. True when it took a
    /// full batch and had room for more.
    async fn claim_round(&self, cluster: &Cluster) -> Result<bool, bzapper_store::StoreError> {
        let (held, pools, room) = {
            let g = self.lock();
            let held: Vec<String> = g.connections.keys().cloned().collect();
            let pools: BTreeSet<(String, String)> = held
                .iter()
                .filter_map(|id| g.numbers.get(id))
                .map(|n| (n.tenant_id.clone(), n.pool.clone()))
                .collect();
            let room = (CLAIM_PER_NUMBER * held.len()).saturating_sub(g.held.len());
            (held, pools, room)
        };
        if room == 0 || held.is_empty() {
            return Ok(false);
        }
        let pools: Vec<(String, String)> = pools.into_iter().collect();
        let batch = room.min(CLAIM_BATCH);
        let limit = u32::try_from(batch).unwrap_or(u32::MAX);
        let claimed = cluster
            .store
            .claim_messages(cluster.node_id(), cluster.ttl, &held, &pools, limit)
            .await?;
        let full = claimed.len() == batch && room > batch;
        self.enqueue_all_pending(claimed).await?;
        Ok(full)
    }

    /// Gives back queued (not in-flight) sends no number held here can make.
    async fn hand_back_stranded(&self, cluster: &Cluster) {
        let stranded: Vec<(bzapper_store::QueuedRef, bool)> = {
            let mut g = self.lock();
            let held: HashSet<&String> = g.connections.keys().collect();
            let pools: HashSet<(&str, &str)> = held
                .iter()
                .filter_map(|id| g.numbers.get(*id))
                .map(|n| (n.tenant_id.as_str(), n.pool.as_str()))
                .collect();
            // Forced (or held-in-doubt) sends wait in their number's own queue.
            let mut pinned: HashSet<String> = HashSet::new();
            let mut out: Vec<String> = Vec::new();
            for id in g.numbers.keys() {
                let queued = g.dispatcher.queued_for_number(id);
                if !held.contains(id) {
                    out.extend(queued.iter().cloned());
                }
                pinned.extend(queued);
            }
            // (`remove_message` below keeps only those still queued, not those being sent.)
            out.extend(
                g.held
                    .values()
                    .filter(|m| !pinned.contains(&m.id))
                    .filter(|m| !pools.contains(&(m.tenant_id.as_str(), m.pool.as_str())))
                    .map(|m| m.id.clone()),
            );
            // Only what is still waiting: a send in flight finishes here.
            out.retain(|id| g.dispatcher.remove_message(id));
            out.into_iter()
                .filter_map(|id| g.held.remove(&id).map(|m| (m, pinned.contains(&id))))
                .collect()
        };
        if stranded.is_empty() {
            return;
        }
        tracing::info!(count = stranded.len(), "handing queued sends back to the other nodes");
        let ids: Vec<String> = stranded.iter().map(|(m, _)| m.id.clone()).collect();
        if let Err(e) = cluster.store.release_messages(cluster.node_id(), &ids).await {
            // Still claimed by this node, so no other node may take them: they go back into
            // this scheduler, and the next round tries again.
            tracing::warn!(error = %e, count = ids.len(), "handing sends back failed");
            let mut g = self.lock();
            for (m, pinned) in stranded {
                let hold_for = if pinned && !m.forced { m.instance_id.clone() } else { None };
                // Back as they were, without their contact's history: they go by rotation.
                super::hold(&mut g, m, hold_for, None);
            }
        }
    }

    async fn reload_strategies(&self) {
        let tenants: BTreeSet<String> = {
            let g = self.lock();
            g.connections
                .keys()
                .filter_map(|id| g.numbers.get(id))
                .map(|n| n.tenant_id.clone())
                .collect()
        };
        for t in tenants {
            match self.store.list_pools(&t).await {
                Ok(pools) => {
                    let mut g = self.lock();
                    for p in pools {
                        g.dispatcher.set_strategy(&t, &p.name, p.strategy);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading pool strategies failed"),
            }
        }
    }
}
