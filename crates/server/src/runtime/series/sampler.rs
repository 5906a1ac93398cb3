//! The sampler task: every `--series-sample-secs` it records what each number sent since the
//! previous sample, each number's health score and each pool's queue depth, all of it in one
//! store call (one transaction, one multi-row upsert per table and tier chunk), never one
//! statement per number.
//!
//! On several nodes (PostgreSQL) each node samples only what is its own, so nothing is counted
//! twice: the sends its recorder counted (the node holding a number records its sends), and
//! the health of the numbers whose connection runs here (`Scheduler::health` answers only
//! for those on a node of a cluster). Queue depths are read from the shared store, the same
//! figure on every node, and stored as the highest value of the bucket, so several nodes
//! writing it changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bzapper_store::{NumberSample, PoolSample, Store, StoreError};
use tokio::sync::{watch, Mutex};

use super::sends::SendBaseline;
use super::settings::SeriesSettings;
use crate::events::recorder::Recorder;
use crate::model::time::now;
use crate::runtime::scheduler::Scheduler;

pub struct Sampler {
    store: Arc<dyn Store>,
    recorder: Arc<Recorder>,
    scheduler: Arc<Scheduler>,
    settings: SeriesSettings,
    /// On a node of a cluster, numbers held elsewhere are not sampled here.
    clustered: bool,
    /// Held for a whole sample: two samples never interleave their counts.
    baseline: Mutex<SendBaseline>,
}

/// What one sample stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampled {
    pub numbers: usize,
    pub pools: usize,
    pub sends: u64,
}

impl Sampler {
    /// The sampler; its task runs (when sampling is on) until `closing` turns true.
    pub fn spawn(
        store: Arc<dyn Store>,
        recorder: Arc<Recorder>,
        scheduler: Arc<Scheduler>,
        settings: SeriesSettings,
        clustered: bool,
        closing: watch::Receiver<bool>,
    ) -> Arc<Sampler> {
        let sampler = Arc::new(Sampler {
            store,
            recorder,
            scheduler,
            settings,
            clustered,
            baseline: Mutex::new(SendBaseline::default()),
        });
        if settings.sampling() {
            tokio::spawn(sampler.clone().run(closing));
        }
        sampler
    }

    async fn run(self: Arc<Self>, mut closing: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.settings.sample_every);
        // A slow store delays the next sample rather than bunching several.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.sample().await {
                        // The sends are kept for the next sample (the baseline did not move).
                        tracing::warn!(error = %e, "sampling the series failed");
                    }
                }
                changed = closing.changed() => {
                    if changed.is_err() || *closing.borrow() {
                        return;
                    }
                }
            }
        }
    }

    /// Takes one sample now and stores it.
    pub async fn sample(&self) -> Result<Sampled, StoreError> {
        let mut baseline = self.baseline.lock().await;
        let counts = self.recorder.metrics().sent_counts();
        let mut sends: HashMap<String, (String, u64)> = baseline
            .deltas(&counts)
            .into_iter()
            .map(|d| (d.instance_id, (d.tenant_id, d.sends)))
            .collect();
        let instances = self.store.list_all_instances().await?;
        let mut numbers = Vec::with_capacity(instances.len());
        // Every pool of a number sampled here has a depth, zero when nothing waits.
        let mut pools: BTreeMap<(String, String), u64> = BTreeMap::new();
        for i in &instances {
            let live = self.scheduler.health(&i.id).map(|(score, _)| score);
            let health = if self.clustered { live } else { live.or(Some(i.health_score)) };
            let sent = sends.remove(&i.id).map_or(0, |(_, n)| n);
            if health.is_none() && sent == 0 {
                continue;
            }
            if health.is_some() {
                pools.entry((i.tenant_id.clone(), i.pool.clone())).or_insert(0);
            }
            numbers.push(NumberSample {
                tenant_id: i.tenant_id.clone(),
                instance_id: i.id.clone(),
                sends: sent,
                health,
            });
        }
        // Sends of numbers deleted since (their history stays until pruned).
        for (instance_id, (tenant_id, sent)) in sends {
            numbers.push(NumberSample { tenant_id, instance_id, sends: sent, health: None });
        }
        pools.extend(self.scheduler.queue_depths().await?);
        let pools: Vec<PoolSample> = pools
            .into_iter()
            .map(|((tenant_id, pool), queue_depth)| PoolSample { tenant_id, pool, queue_depth })
            .collect();
        self.store.record_samples(now(), &self.settings.tiers(), &numbers, &pools).await?;
        baseline.advance(&counts);
        Ok(Sampled {
            numbers: numbers.len(),
            pools: pools.len(),
            sends: numbers.iter().map(|n| n.sends).sum(),
        })
    }

    pub fn settings(&self) -> &SeriesSettings {
        &self.settings
    }
}
