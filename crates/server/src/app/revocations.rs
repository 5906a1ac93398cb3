//! What a key revoke or a tenant delete ends, at once and on every node: the keys cached for
//! authentication and the open event streams (SSE) of that key or tenant.
//!
//! On this node a revoke is announced in-process the moment the store has committed it. Other
//! nodes of a cluster hear [`Signal::Keys`] (PostgreSQL NOTIFY) and, since a signal carries no
//! key, each open stream re-reads its own key from the store; a lost connection to the
//! database ([`Signal::Resync`]) triggers the same re-check, and streams on a cluster also
//! re-check every [`CLUSTER_RECHECK`] in case a signal was lost at its sender.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bzapper_store::{Signal, Store};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::cluster::Cluster;
use crate::model::ids::TenantId;

/// How often a stream on a cluster node re-reads its key even without a signal.
pub const CLUSTER_RECHECK: Duration = Duration::from_secs(60);

/// One revocation, as the other parts of this node hear it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// This key (its id) no longer authenticates.
    Key(String),
    /// This tenant and all its keys are gone.
    Tenant(TenantId),
    /// Another node revoked something (which is not said): re-check what you hold.
    Elsewhere,
}

pub struct Revocations {
    tx: broadcast::Sender<Revoked>,
    store: Arc<dyn Store>,
    cluster: Option<Arc<Cluster>>,
}

impl Revocations {
    /// On a cluster, also relays the other nodes' [`Signal::Keys`] as [`Revoked::Elsewhere`].
    pub fn new(store: Arc<dyn Store>, cluster: Option<Arc<Cluster>>) -> Arc<Self> {
        let (tx, _) = broadcast::channel(64);
        if let Some(c) = &cluster {
            let mut signals = c.signals();
            // Weak: the relay ends with the gateway (its last strong sender).
            let relay = tx.downgrade();
            tokio::spawn(async move {
                loop {
                    let heard = match signals.recv().await {
                        Ok(Signal::Keys | Signal::Resync) | Err(RecvError::Lagged(_)) => true,
                        Ok(_) => false,
                        Err(RecvError::Closed) => return,
                    };
                    if heard {
                        let Some(tx) = relay.upgrade() else { return };
                        let _ = tx.send(Revoked::Elsewhere);
                    }
                }
            });
        }
        Arc::new(Revocations { tx, store, cluster })
    }

    /// Tells this node's parts, then the other nodes. Called after the store committed it.
    pub async fn announce(&self, r: Revoked) {
        let _ = self.tx.send(r);
        if let Some(c) = &self.cluster {
            if let Err(e) = c.store.signal(Signal::Keys).await {
                // The other nodes still catch it: their key caches expire, and their streams
                // re-check every CLUSTER_RECHECK.
                tracing::warn!(error = %e, "telling the other nodes of a revoked key failed");
            }
        }
    }

    /// Every revocation from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Revoked> {
        self.tx.subscribe()
    }

    /// Resolves once the key `key_id` of `tenant` stops authenticating (revoked, or its tenant
    /// deleted), here or on another node. It listens from the moment it is called, then
    /// re-reads the key once, so a revoke that raced the caller's authentication is caught too.
    pub fn until_revoked(
        &self,
        tenant: &TenantId,
        key_id: &str,
    ) -> impl Future<Output = ()> + Send + 'static {
        let mut heard = self.subscribe();
        let store = self.store.clone();
        let recheck_every = self.cluster.is_some().then_some(CLUSTER_RECHECK);
        let (tenant, key_id) = (tenant.clone(), key_id.to_string());
        async move {
            let mut recheck = true;
            loop {
                if recheck && gone(&*store, &tenant, &key_id).await {
                    return;
                }
                let next = async {
                    match recheck_every {
                        Some(every) => tokio::time::timeout(every, heard.recv()).await.ok(),
                        None => Some(heard.recv().await),
                    }
                };
                recheck = match next.await {
                    None => true,
                    Some(Ok(Revoked::Key(k))) if k == key_id => return,
                    Some(Ok(Revoked::Tenant(t))) if t == tenant => return,
                    Some(Ok(Revoked::Elsewhere)) | Some(Err(RecvError::Lagged(_))) => true,
                    Some(Ok(_)) => false,
                    // The gateway is going away; its shutdown ends the streams.
                    Some(Err(RecvError::Closed)) => std::future::pending().await,
                };
            }
        }
    }
}

/// Whether the key no longer exists for this tenant. A store failure keeps the stream (the
/// next signal or re-check tries again).
async fn gone(store: &dyn Store, tenant: &TenantId, key_id: &str) -> bool {
    match store.find_api_key(key_id).await {
        Ok(Some(rec)) => rec.tenant_id != tenant.as_str(),
        Ok(None) => true,
        Err(e) => {
            tracing::warn!(error = %e, "re-checking an event stream's key failed");
            false
        }
    }
}
