//! Records events: appends each to the event log first (the source SSE, webhooks and alerts
//! read from), then announces it on an in-process bus for live subscribers.
//!
//! Group commit: one task writes every event queued while the previous batch was being
//! written in one transaction (one multi-row `INSERT`, one fsync), then announces the batch in
//! id order and answers each caller. Ids are assigned in the order events were queued, and a
//! batch becomes visible to readers all at once, so SSE resume by id stays exact. A caller that
//! must not wait for the disk, but must keep its events in order (the inbound-message path),
//! queues with [`Recorder::submit`] and lets the returned [`Recording`] go.

use std::sync::Arc;

use bzapper_store::{Event, NewEvent, Store, StoreError};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::metrics::Metrics;
use crate::time::now;

/// Most events written in one transaction.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<Arc<Event>, StoreError>>;

pub struct Recorder {
    queue: mpsc::Sender<(NewEvent, Reply)>,
    bus: broadcast::Sender<Arc<Event>>,
    metrics: Arc<Metrics>,
}

/// An event queued for the log: [`Recording::wait`] returns it once it is on disk and
/// announced. Dropping it does not cancel the write (a failure is then logged).
#[must_use = "dropping a Recording does not wait for the event to be on disk"]
pub struct Recording(oneshot::Receiver<Result<Arc<Event>, StoreError>>);

impl Recording {
    pub async fn wait(self) -> Result<Arc<Event>, StoreError> {
        self.0.await.map_err(|_| closed())?
    }
}

fn closed() -> StoreError {
    StoreError::Database("the event recorder has stopped".into())
}

impl Recorder {
    /// Creates the recorder and spawns its writer task.
    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        let (bus, _) = broadcast::channel(4096);
        let metrics: Arc<Metrics> = Arc::default();
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_loop(store, rx, bus.clone(), metrics.clone()));
        Arc::new(Recorder { queue, bus, metrics })
    }

    /// Appends the event to the log, then announces it. Never waits on a receiver.
    pub async fn record(
        &self,
        tenant_id: &str,
        instance_id: Option<&str>,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<Arc<Event>, StoreError> {
        self.submit(tenant_id, instance_id, kind, data).await.wait().await
    }

    /// Queues the event behind every event queued before it and returns without waiting for
    /// the disk (only for room in the queue, so a writer that falls behind slows its callers
    /// rather than growing without bound). The event gets a larger id than every event queued
    /// before it. Nothing sees it before it is durable.
    pub async fn submit(
        &self,
        tenant_id: &str,
        instance_id: Option<&str>,
        kind: &str,
        data: serde_json::Value,
    ) -> Recording {
        let event = NewEvent {
            tenant_id: tenant_id.to_string(),
            instance_id: instance_id.map(str::to_string),
            kind: kind.to_string(),
            data,
            created_at: now(),
        };
        let (reply, rx) = oneshot::channel();
        // On a closed queue the reply is dropped, and `wait` reports the recorder stopped.
        let _ = self.queue.send((event, reply)).await;
        Recording(rx)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Live feed of every recorded event, in id order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.bus.subscribe()
    }
}

/// The writer: takes every queued event, writes them in one transaction, then counts and
/// announces them and answers their callers. Ends when the recorder is dropped.
async fn write_loop(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<(NewEvent, Reply)>,
    bus: broadcast::Sender<Arc<Event>>,
    metrics: Arc<Metrics>,
) {
    let mut batch: Vec<(NewEvent, Reply)> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (events, replies): (Vec<NewEvent>, Vec<Reply>) = batch.drain(..).unzip();
        match store.append_events(&events).await {
            Ok(written) => {
                for (ev, reply) in written.into_iter().zip(replies) {
                    count(&metrics, &ev);
                    let ev = Arc::new(ev);
                    let _ = bus.send(ev.clone());
                    let _ = reply.send(Ok(ev));
                }
            }
            Err(e) => {
                let why = e.to_string();
                let unheard = replies
                    .into_iter()
                    .map(|reply| reply.send(Err(StoreError::Database(why.clone()))).is_err())
                    .filter(|&unheard| unheard)
                    .count();
                if unheard > 0 {
                    tracing::error!(error = %why, events = unheard, "recording events failed");
                }
            }
        }
    }
}

/// Counts what the event tells (every message status and inbound message is recorded here,
/// so this is the one place that sees them all).
fn count(metrics: &Metrics, ev: &Event) {
    let Some(instance) = ev.instance_id.as_deref() else { return };
    match ev.kind.as_str() {
        "message.status" => {
            if let Some(s @ ("sent" | "delivered" | "read" | "failed")) = ev.data["status"].as_str()
            {
                metrics.message_status(&ev.tenant_id, instance, s);
            }
        }
        "message.received" => metrics.message_received(&ev.tenant_id, instance),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use bzapper_store::{EventLog, MasterKey, Sealer, SqliteStore};
    use serde_json::json;

    use super::*;

    async fn store(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
        let path = dir.path().join("bzapper.db");
        let sealer = Sealer::new(MasterKey::generate());
        Arc::new(SqliteStore::open(path.to_str().unwrap(), sealer).await.unwrap())
    }

    #[tokio::test]
    async fn events_get_ids_in_the_order_queued_and_are_announced_only_once_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let recorder = Recorder::new(store.clone());
        let mut live = recorder.subscribe();
        // Queued without waiting, so that they share transactions.
        let mut queued = Vec::new();
        for n in 0..300 {
            queued
                .push(recorder.submit("t1", Some("i1"), "message.received", json!({"n": n})).await);
        }
        let mut ids = Vec::new();
        for (n, q) in queued.into_iter().enumerate() {
            let ev = q.wait().await.unwrap();
            assert_eq!(ev.data["n"], n);
            ids.push(ev.id);
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids follow the queue order");
        // Each announcement comes in id order, and is already readable from the log.
        for id in &ids {
            let ev = live.recv().await.unwrap();
            assert_eq!(ev.id, *id);
            let stored = store.events_after("t1", ev.id - 1, 1).await.unwrap();
            assert_eq!(stored.first().map(|e| e.id), Some(ev.id));
        }
        let metrics = recorder.metrics().counts("t1");
        assert_eq!(metrics["i1"].received, 300);
        store.close().await;
    }

    #[tokio::test]
    async fn a_failed_write_reaches_its_callers() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let recorder = Recorder::new(store.clone());
        recorder.record("t1", None, "instance.qr", json!({})).await.unwrap();
        store.close().await;
        let err = recorder.record("t1", None, "instance.qr", json!({})).await;
        assert!(err.is_err(), "{err:?}");
    }
}
