//! This process as one node of several on one PostgreSQL database: its identity, the lease
//! time, and the signals of every node fanned out to the parts that wait on them (event feed,
//! lease keeper, send claims). On SQLite there is no `Cluster`: the gateway is one node.

pub mod role;
#[cfg(test)]
pub(crate) mod test_support;

pub mod forward;
pub mod leases;

use std::sync::Arc;
use std::time::Duration;

use bzapper_store::{ClusterStore, NodeInfo, Signal, StoreError};
use tokio::sync::broadcast;

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
