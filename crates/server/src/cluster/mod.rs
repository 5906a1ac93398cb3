//! This process as one node of several on one PostgreSQL database: its identity, the lease
//! time, and the signals of every node fanned out to the parts that wait on them (event feed,
//! lease keeper, send claims). On SQLite there is no `Cluster`: the gateway is one node.

pub mod role;
#[cfg(test)]
pub(crate) mod test_support;

use std::sync::Arc;
use std::time::Duration;

use bzapper_store::{ClusterStore, NodeInfo, Signal, StoreError};
use tokio::sync::broadcast;

/// Marks a request passed on by another node, so that it is never passed on twice.
pub const FORWARDED_BY: &str = "x-bzapper-forwarded-by";

pub struct Cluster {
    pub store: Arc<dyn ClusterStore>,
    pub node: NodeInfo,
    /// How long a lease (a number, a role) lasts without renewal; a node that stops renewing
    /// loses what it held after this long.
    pub ttl: Duration,
    signals: broadcast::Sender<Signal>,
}

impl Cluster {
    /// Registers the node (first heartbeat) and starts listening for the other nodes.
    pub async fn join(
        store: Arc<dyn ClusterStore>,
        node: NodeInfo,
        ttl: Duration,
    ) -> Result<Arc<Self>, StoreError> {
        // Two live processes under one id would both renew, and so both run, its numbers.
        let taken = store.nodes(ttl, ttl).await?.into_iter().any(|n| {
            n.live
                && n.id == node.id
                && n.started_at != bzapper_store::truncate_to_millis(node.started_at)
        });
        if taken {
            return Err(StoreError::Conflict(format!(
                "a live node already uses the id {}; give this one another --node-id, or wait {} s \
                 if that node has just died",
                node.id,
                ttl.as_secs()
            )));
        }
        // A run that died under this id may have left sends claimed: being live again, the id
        // would hide them from every node, so they go back to the shared queue first.
        store.release_all_claims(&node.id).await?;
        store.heartbeat(&node, ttl).await?;
        let mut rx = store.listen().await?;
        let (signals, _) = broadcast::channel(256);
        let fan_out = signals.clone();
        tokio::spawn(async move {
            while let Some(s) = rx.recv().await {
                let _ = fan_out.send(s);
            }
        });
        Ok(Arc::new(Cluster { store, node, ttl, signals }))
    }

    /// Signals from every node (this one's too). A lagging receiver should act as on
    /// [`Signal::Resync`].
    pub fn signals(&self) -> broadcast::Receiver<Signal> {
        self.signals.subscribe()
    }

    /// How often leases and roles are renewed: a third of the lease time, so that two
    /// renewals can fail before anything is lost.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    pub fn node_id(&self) -> &str {
        &self.node.id
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{join, Schema};
    use super::*;

    #[tokio::test]
    async fn a_second_live_process_cannot_join_under_the_same_node_id() {
        let Some(schema) = Schema::new().await else { return };
        let ttl = Duration::from_secs(15);
        let (first, _store) = join(&schema, "node-a", ttl).await;
        let store = schema.store().await;
        let twin = NodeInfo {
            id: "node-a".into(),
            url: "http://elsewhere:8080".into(),
            started_at: first.node.started_at + chrono::Duration::seconds(1),
        };
        let refused = Cluster::join(store.clone(), twin.clone(), ttl).await.err();
        assert!(
            matches!(&refused, Some(StoreError::Conflict(m)) if m.contains("node-a")),
            "{refused:?}"
        );
        // Once the first one is gone (here: it left), the id is free again, and the view
        // shows the new process's start.
        first.store.leave("node-a").await.unwrap();
        let second = Cluster::join(store, twin.clone(), ttl).await.unwrap();
        let nodes = second.store.nodes(ttl, ttl).await.unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].started_at, bzapper_store::truncate_to_millis(twin.started_at));
    }
}
