//! How the gateway is doing, for operators: readiness, the Prometheus figures, a tenant's own
//! figures, and the cluster as this node sees it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use bzapper_core::Status;
use bzapper_store::{InstanceRecord, NodeView, Store, StoreError};

use crate::app::error::AppResult;
use crate::cluster::Cluster;
use crate::events::metrics::{escape, Counts};
use crate::events::recorder::Recorder;
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

    /// Whether the store answers; the driver's name when it does.
    pub async fn ready(&self) -> Result<&'static str, StoreError> {
        self.store.ping().await.map(|()| self.supervisor.driver_name())
    }

    /// Every tenant's figures in the Prometheus text format: message counters, send latency,
    /// webhook deliveries by outcome, and, read now, each number's status and health and each
    /// pool's queue depth.
    pub async fn prometheus_text(&self) -> AppResult<String> {
        let mut out = String::new();
        self.recorder.metrics().render(&mut out);
        let instances = self.store.list_all_instances().await?;
        out.push_str("# HELP bzapper_instance_status 1 for the number's current status.\n# TYPE bzapper_instance_status gauge\n");
        for i in &instances {
            for s in Status::ALL {
                let v = u8::from(i.state.status == s);
                let _ = writeln!(
                    out,
                    "bzapper_instance_status{{tenant=\"{}\",instance=\"{}\",status=\"{}\"}} {v}",
                    escape(&i.tenant_id),
                    escape(&i.id),
                    s.as_str()
                );
            }
        }
        out.push_str("# HELP bzapper_instance_health_score The number's health score (0-100).\n# TYPE bzapper_instance_health_score gauge\n");
        for i in &instances {
            let _ = writeln!(
                out,
                "bzapper_instance_health_score{{tenant=\"{}\",instance=\"{}\"}} {}",
                escape(&i.tenant_id),
                escape(&i.id),
                self.health_score(i)
            );
        }
        out.push_str("# HELP bzapper_queue_depth Messages waiting to be sent, by pool.\n# TYPE bzapper_queue_depth gauge\n");
        for ((t, pool), n) in self.scheduler.queue_depths().await? {
            let _ = writeln!(
                out,
                "bzapper_queue_depth{{tenant=\"{}\",pool=\"{}\"}} {n}",
                escape(&t),
                escape(&pool)
            );
        }
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
