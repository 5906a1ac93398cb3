//! How the gateway is doing, for operators: readiness, the Prometheus figures, a tenant's own
//! figures, and the cluster as this node sees it.

use std::collections::BTreeMap;
use std::sync::Arc;

use bzapper_store::{InstanceRecord, NodeView, Store, StoreError};

use crate::app::error::AppResult;
use crate::cluster::Cluster;
use crate::events::metrics::Counts;
use crate::events::recorder::Recorder;
use crate::events::scrape_gauges::{NumberGauge, ScrapeGauges};
use crate::model::ids::TenantId;
use crate::runtime::scheduler::Scheduler;
use crate::runtime::supervisor::Supervisor;

/// Nodes silent for longer than this are left out of the cluster view.
const FORGET_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// A number's figures since the gateway started, with its live health score.
pub struct NumberFigures {
    pub instance: InstanceRecord,
    pub health_score: u8,
    pub counts: Counts,
}

/// What `GET /v1/cluster` shows: this node's view of the nodes, or the one node on SQLite.
pub enum ClusterView {
    Single { instances: Vec<String> },
    Cluster { node_id: String, lease_seconds: u64, nodes: Vec<NodeView> },
}

pub struct GatewayStatus {
    store: Arc<dyn Store>,
    supervisor: Arc<Supervisor>,
    scheduler: Arc<Scheduler>,
    recorder: Arc<Recorder>,
    cluster: Option<Arc<Cluster>>,
}

impl GatewayStatus {
    pub fn new(
        store: Arc<dyn Store>,
        supervisor: Arc<Supervisor>,
        scheduler: Arc<Scheduler>,
        recorder: Arc<Recorder>,
        cluster: Option<Arc<Cluster>>,
    ) -> Self {
        GatewayStatus { store, supervisor, scheduler, recorder, cluster }
    }

    /// Whether the store answers; the driver's name when it does, and how many stored
    /// numbers this start is still resuming.
    pub async fn ready(&self) -> Result<(&'static str, usize), StoreError> {
        self.store.ping().await?;
        Ok((self.supervisor.driver_name(), self.supervisor.resume_progress().pending()))
    }

    /// Every tenant's figures in the Prometheus text format: message counters, send latency,
    /// webhook deliveries by outcome, and, read now, each number's status and health and each
    /// pool's queue depth.
    pub async fn prometheus_text(&self) -> AppResult<String> {
        let instances = self.store.list_all_instances().await?;
        let queues = self.scheduler.queue_depths().await?;
        let numbers = instances
            .into_iter()
            .map(|i| NumberGauge {
                health_score: self.health_score(&i),
                status: i.state.status,
                tenant: i.tenant_id,
                instance: i.id,
            })
            .collect();
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.recorder.metrics().render(&mut out);
        let _ = ScrapeGauges { numbers, queues }.render(&mut out);
        Ok(out)
    }

    /// The tenant's figures per number, and its queued messages by pool.
    pub async fn tenant_figures(
        &self,
        tenant_id: &TenantId,
    ) -> AppResult<(Vec<NumberFigures>, BTreeMap<String, u64>)> {
        let counts = self.recorder.metrics().counts(tenant_id);
        let numbers = self
            .store
            .list_instances(tenant_id)
            .await?
            .into_iter()
            .map(|i| NumberFigures {
                health_score: self.health_score(&i),
                counts: counts.get(&i.id).cloned().unwrap_or_default(),
                instance: i,
            })
            .collect();
        let queued = self
            .scheduler
            .queue_depths()
            .await?
            .into_iter()
            .filter(|((t, _), _)| t == tenant_id.as_str())
            .map(|((_, pool), n)| (pool, n))
            .collect();
        Ok((numbers, queued))
    }

    /// The nodes, their last heartbeat and the numbers each holds.
    pub async fn cluster(&self) -> AppResult<ClusterView> {
        let Some(c) = &self.cluster else {
            return Ok(ClusterView::Single { instances: self.supervisor.running_ids().await });
        };
        Ok(ClusterView::Cluster {
            node_id: c.node_id().to_string(),
            lease_seconds: c.ttl.as_secs(),
            nodes: c.store.nodes(c.ttl, FORGET_AFTER).await?,
        })
    }

    /// The live score when the scheduler knows the number, else the stored one.
    fn health_score(&self, i: &InstanceRecord) -> u8 {
        self.scheduler.health(&i.id).map(|h| h.0).unwrap_or(i.health_score)
    }
}
