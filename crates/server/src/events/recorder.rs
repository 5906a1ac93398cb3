//! Records events: appends each to the event log first (the source SSE, webhooks and alerts
//! read from), then announces it on an in-process bus for live subscribers.
//!
//! Group commit: one task writes every event queued while the previous batch was being
//! written in one transaction (one multi-row `INSERT`, one fsync), then announces the batch in
//! id order and answers each caller. Ids are assigned in the order events were queued, and a
//! batch becomes visible to readers all at once, so SSE resume by id stays exact. A caller that
//! must not wait for the disk, but must keep its events in order (the inbound-message path),
//! queues with [`Recorder::submit`] and lets the returned [`Recording`] go. A received message
//! carries a dedupe key ([`Recorder::submit_received`]): WhatsApp delivers again what the
//! gateway had not acknowledged, and the append skips a key the log already holds, in the
//! same transaction, so each message is recorded once ([`Recording::durable`] tells which).
//!
//! In a cluster the bus carries every node's events, so that SSE, webhooks and alerts on any
//! node see all of them: the writer no longer announces its own batches; a tail task follows
//! the shared log from a cursor instead, reading on every node's append signal (and this
//! node's own appends, and once a second in case a signal was lost), and announces what it
//! reads. Appends are serialized across nodes, so ids become visible in increasing order and
//! the cursor never steps over an event: each event is announced once, in id order.

use std::sync::Arc;
use std::time::Duration;

use bzapper_store::{Event, InboundRecord, KeyedEvent, NewEvent, Signal, Store, StoreError};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot, Notify};

use crate::cluster::Cluster;
use crate::events::kinds::{self, EventType};
use crate::events::metrics::Metrics;
use crate::model::time::now;

/// Most events written in one transaction.
const MAX_BATCH: usize = 512;
/// Most events the cluster tail reads at a time.
const TAIL_PAGE: u32 = 1000;
/// The cluster tail reads the log at least this often, should a signal be lost.
const TAIL_EVERY: Duration = Duration::from_secs(1);

/// The answer to a queued event: the event once on disk, or `None` when its dedupe key was
/// already in the log (it was recorded before).
type Outcome = Result<Option<Arc<Event>>, StoreError>;
type Reply = oneshot::Sender<Outcome>;

/// An event waiting for the writer: the event with its dedupe key, the received message it
/// indexes, its reply.
type Queued = (KeyedEvent, Option<InboundRecord>, Reply);

pub struct Recorder {
    queue: mpsc::Sender<Queued>,
    bus: broadcast::Sender<Arc<Event>>,
    metrics: Arc<Metrics>,
}

/// An event queued for the log: [`Recording::wait`] returns it once it is on disk (and, on a
/// single node, announced). Dropping it does not cancel the write (a failure is then logged).
#[must_use = "dropping a Recording does not wait for the event to be on disk"]
pub struct Recording(oneshot::Receiver<Outcome>);

impl Recording {
    pub async fn wait(self) -> Result<Arc<Event>, StoreError> {
        self.durable().await?.ok_or_else(|| {
            // Only an event with a dedupe key can be skipped, and its caller asks `durable`.
            StoreError::Database("the event was recorded before".into())
        })
    }

    /// Once the event is on disk: `Some` with it when this append wrote it, `None` when an
    /// event with its dedupe key was already in the log (see [`Recorder::submit_received`]).
    pub async fn durable(self) -> Result<Option<Arc<Event>>, StoreError> {
        self.0.await.map_err(|_| closed())?
    }
}

fn closed() -> StoreError {
    StoreError::Database("the event recorder has stopped".into())
}

/// Who announces events on the bus.
enum Announce {
    /// The writer, each batch once written (a single node: its log is all there is).
    Writer(broadcast::Sender<Arc<Event>>),
    /// The cluster tail. The writer rings `written` after each batch (so this node's events
    /// do not wait for the database's signal to come back) and starts writing only once
    /// `started` says the tail has pinned its cursor (so none of them falls before it).
    Tail { written: Arc<Notify>, started: oneshot::Receiver<()> },
}

impl Recorder {
    /// Creates the recorder and spawns its writer task, and with a `cluster`, the task that
    /// announces every node's events.
    pub fn new(store: Arc<dyn Store>, cluster: Option<Arc<Cluster>>) -> Arc<Self> {
        let (bus, _) = broadcast::channel(4096);
        let metrics: Arc<Metrics> = Arc::default();
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        let (announce, stop_tail) = match cluster {
            None => (Announce::Writer(bus.clone()), None),
            Some(cluster) => {
                let written = Arc::new(Notify::new());
                let (started_tx, started) = oneshot::channel();
                let (stop, stopped) = oneshot::channel::<()>();
                tokio::spawn(tail(
                    store.clone(),
                    cluster,
                    bus.clone(),
                    written.clone(),
                    started_tx,
                    stopped,
                ));
                (Announce::Tail { written, started }, Some(stop))
            }
        };
        // The writer keeps `stop_tail`: the tail ends with the writer, when the recorder is
        // dropped.
        tokio::spawn(write_loop(store, rx, announce, metrics.clone(), stop_tail));
        Arc::new(Recorder { queue, bus, metrics })
    }

    /// Appends the event to the log, then announces it. Never waits on a receiver.
    pub async fn record(
        &self,
        tenant_id: &str,
        instance_id: Option<&str>,
        event: kinds::Event,
    ) -> Result<Arc<Event>, StoreError> {
        self.submit(tenant_id, instance_id, event).await.wait().await
    }

    /// Queues the event behind every event queued before it and returns without waiting for
    /// the disk (only for room in the queue, so a writer that falls behind slows its callers
    /// rather than growing without bound). The event gets a larger id than every event queued
    /// before it. Nothing sees it before it is durable.
    pub async fn submit(
        &self,
        tenant_id: &str,
        instance_id: Option<&str>,
        event: kinds::Event,
    ) -> Recording {
        self.submit_indexed(tenant_id, instance_id, event, None).await
    }

    /// [`Recorder::submit`] for a `message.received`, with the message's index entry written
    /// in the same commit as the event (see `InboundStore`).
    pub async fn submit_indexed(
        &self,
        tenant_id: &str,
        instance_id: Option<&str>,
        event: kinds::Event,
        index: Option<InboundRecord>,
    ) -> Recording {
        // The log keeps the type and the payload apart, as the envelope shows them.
        self.enqueue(tenant_id, instance_id, event.kind(), event.data(), index, None).await
    }

    /// [`Recorder::submit_indexed`] for a message WhatsApp may deliver more than once:
    /// `dedupe_key` names it (number, chat, sender, WhatsApp id), and the append skips it when
    /// the log already holds that key ([`Recording::durable`] then answers `None`).
    pub async fn submit_received(
        &self,
        tenant_id: &str,
        instance_id: &str,
        event: kinds::Event,
        index: Option<InboundRecord>,
        dedupe_key: String,
    ) -> Recording {
        let (kind, data) = (event.kind(), event.data());
        self.enqueue(tenant_id, Some(instance_id), kind, data, index, Some(dedupe_key)).await
    }

    async fn enqueue(
        &self,
        tenant_id: &str,
        instance_id: Option<&str>,
        kind: &str,
        data: serde_json::Value,
        index: Option<InboundRecord>,
        dedupe_key: Option<String>,
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
        let _ = self.queue.send((KeyedEvent { event, dedupe_key }, index, reply)).await;
        Recording(rx)
    }

    /// Queues an event of any type and payload: for tests of the log's mechanics, which do
    /// not care what their events say.
    #[cfg(test)]
    pub(crate) async fn submit_raw(
        &self,
        tenant_id: &str,
        instance_id: Option<&str>,
        kind: &str,
        data: serde_json::Value,
    ) -> Recording {
        self.enqueue(tenant_id, instance_id, kind, data, None, None).await
    }

    /// [`Recorder::submit_raw`], waiting for the disk.
    #[cfg(test)]
    pub(crate) async fn record_raw(
        &self,
        tenant_id: &str,
        instance_id: Option<&str>,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<Arc<Event>, StoreError> {
        self.submit_raw(tenant_id, instance_id, kind, data).await.wait().await
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Live feed of every recorded event (in a cluster: of every node), in id order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.bus.subscribe()
    }
}

/// The writer: takes every queued event, writes them in one transaction, then counts them
/// (each node counts its own), announces them or has the tail do it, and answers their
/// callers. Ends when the recorder is dropped.
async fn write_loop(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Queued>,
    announce: Announce,
    metrics: Arc<Metrics>,
    _stop_tail_when_done: Option<oneshot::Sender<()>>,
) {
    let (bus, written) = match announce {
        Announce::Writer(bus) => (Some(bus), None),
        Announce::Tail { written, started } => {
            // An `Err` means the tail is gone: nothing would be announced either way.
            let _ = started.await;
            (None, Some(written))
        }
    };
    let mut batch: Vec<Queued> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut events = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut index = Vec::new();
        for (event, indexed, reply) in batch.drain(..) {
            events.push(event);
            replies.push(reply);
            index.extend(indexed);
        }
        match store.append_events_once(&events, &index).await {
            Ok(written_events) => {
                for (ev, reply) in written_events.into_iter().zip(replies) {
                    // A duplicate was counted and announced when it was first recorded.
                    let Some(ev) = ev else {
                        let _ = reply.send(Ok(None));
                        continue;
                    };
                    count(&metrics, &ev);
                    let ev = Arc::new(ev);
                    if let Some(bus) = &bus {
                        let _ = bus.send(ev.clone());
                    }
                    let _ = reply.send(Ok(Some(ev)));
                }
                if let Some(w) = &written {
                    w.notify_one();
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

/// The cluster tail: announces every node's events from the newest one at start-up on, each
/// once and in id order. Ends when `stop` resolves (the writer has ended).
async fn tail(
    store: Arc<dyn Store>,
    cluster: Arc<Cluster>,
    bus: broadcast::Sender<Arc<Event>>,
    written: Arc<Notify>,
    started: oneshot::Sender<()>,
    mut stop: oneshot::Receiver<()>,
) {
    // Listening before the cursor is pinned: an append committed after the pin signals a
    // listener that already hears.
    let mut signals = Some(cluster.signals());
    let mut cursor = loop {
        match store.latest_event_id_all().await {
            Ok(id) => break id,
            Err(e) => {
                tracing::warn!(error = %e, "starting the cluster event feed failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(TAIL_EVERY) => {}
                    _ = &mut stop => return,
                }
            }
        }
    };
    let _ = started.send(());
    loop {
        // Every page up to the end of the log: a burst is one pass, not one per signal.
        loop {
            match store.all_events_after(cursor, TAIL_PAGE).await {
                Ok(page) => {
                    let full = page.len() == TAIL_PAGE as usize;
                    for e in page {
                        cursor = e.id;
                        let _ = bus.send(Arc::new(e));
                    }
                    if !full {
                        break;
                    }
                }
                Err(e) => {
                    // The next wake-up (at the latest the periodic one) reads again.
                    tracing::warn!(error = %e, "reading the event log for the cluster feed failed");
                    break;
                }
            }
        }
        let deadline = tokio::time::Instant::now() + TAIL_EVERY;
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = written.notified() => break,
                _ = tokio::time::sleep_until(deadline) => break,
                s = next_signal(&mut signals) => match s {
                    // A lag or a reconnection may have lost an `Events`: read anyway.
                    Ok(Signal::Events | Signal::Resync) | Err(RecvError::Lagged(_)) => break,
                    Ok(_) => {}
                    // The cluster feed is gone: the periodic read goes on alone.
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

/// Counts what the event tells (every message status and inbound message is recorded here,
/// so this is the one place that sees them all).
fn count(metrics: &Metrics, ev: &Event) {
    let Some(instance) = ev.instance_id.as_deref() else { return };
    match EventType::parse(&ev.kind) {
        Some(EventType::MessageStatus) => {
            if let Some(s @ ("sent" | "delivered" | "read" | "failed")) = ev.data["status"].as_str()
            {
                metrics.message_status(&ev.tenant_id, instance, s);
            }
        }
        Some(EventType::MessageReceived) => metrics.message_received(&ev.tenant_id, instance),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use bzapper_store::{EventLog, MasterKey, Sealer, SqliteStore, WebhookStore};
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
        let recorder = Recorder::new(store.clone(), None);
        let mut live = recorder.subscribe();
        // Queued without waiting, so that they share transactions.
        let mut queued = Vec::new();
        for n in 0..300 {
            queued.push(
                recorder.submit_raw("t1", Some("i1"), "message.received", json!({"n": n})).await,
            );
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

    /// Two nodes on one PostgreSQL schema record at once: each node's bus carries the events
    /// of both, each once and in increasing id order, from the node's start on.
    #[tokio::test]
    async fn in_a_cluster_every_node_announces_every_event_once_in_id_order() {
        use std::collections::BTreeSet;

        use crate::cluster::test_support::{join, Schema};

        let Some(schema) = Schema::new().await else { return };
        let ttl = std::time::Duration::from_secs(15);
        let (ca, sa) = join(&schema, "A", ttl).await;
        let (cb, sb) = join(&schema, "B", ttl).await;
        // From before the nodes started: history (for SSE resume), not news.
        let old = sa.append_event(&new_event("t0", 0)).await.unwrap();
        let nodes = [Recorder::new(sa.clone(), Some(ca)), Recorder::new(sb.clone(), Some(cb))];
        let mut buses: Vec<_> = nodes.iter().map(|r| r.subscribe()).collect();
        // Once an event of its own is on disk, a node's feed has pinned its start.
        for r in &nodes {
            r.record_raw("t0", None, "warm-up", json!({})).await.unwrap();
        }
        // Both nodes at once, several writers each, so that batches of the two interleave.
        const PER_WRITER: usize = 150;
        let mut writers = Vec::new();
        for (n, r) in nodes.iter().enumerate() {
            for w in 0..3 {
                let r = r.clone();
                writers.push(tokio::spawn(async move {
                    let mut queued = Vec::new();
                    for i in 0..PER_WRITER {
                        let tenant = format!("t{}", (n + w + i) % 3);
                        queued.push(
                            r.submit_raw(&tenant, Some("i1"), "message.received", json!({"i": i}))
                                .await,
                        );
                    }
                    let mut ids = Vec::new();
                    for q in queued {
                        ids.push(q.wait().await.unwrap().id);
                    }
                    ids
                }));
            }
        }
        let mut recorded = BTreeSet::new();
        for w in writers {
            recorded.extend(w.await.unwrap());
        }
        assert_eq!(recorded.len(), 2 * 3 * PER_WRITER);
        let logged: BTreeSet<i64> =
            sa.all_events_after(0, 10_000).await.unwrap().iter().map(|e| e.id).collect();
        for (node, bus) in ["A", "B"].iter().zip(&mut buses) {
            let mut seen = Vec::new();
            while !recorded.iter().all(|id| seen.binary_search(id).is_ok()) {
                let ev = tokio::time::timeout(std::time::Duration::from_secs(10), bus.recv())
                    .await
                    .unwrap_or_else(|_| panic!("node {node} saw {} events", seen.len()))
                    .unwrap();
                if let Some(last) = seen.last() {
                    assert!(ev.id > *last, "node {node}: {} after {last}", ev.id);
                }
                assert!(logged.contains(&ev.id), "node {node} announced {} not in the log", ev.id);
                seen.push(ev.id);
            }
            assert!(!seen.contains(&old.id), "node {node} announced an event from before it");
        }
        // Nothing comes twice later either: not on a signal, not on the periodic read.
        tokio::time::sleep(TAIL_EVERY + std::time::Duration::from_millis(300)).await;
        for bus in &mut buses {
            assert!(matches!(bus.try_recv(), Err(broadcast::error::TryRecvError::Empty)));
        }
        // Each node counted its own events only.
        let counted: u64 = ["t0", "t1", "t2"]
            .iter()
            .flat_map(|t| nodes[0].metrics().counts(t).into_values())
            .map(|c| c.received)
            .sum();
        assert_eq!(counted, 3 * PER_WRITER as u64);
    }

    fn new_event(tenant: &str, n: u32) -> NewEvent {
        NewEvent {
            tenant_id: tenant.into(),
            instance_id: None,
            kind: "message.received".into(),
            data: json!({"n": n}),
            created_at: now(),
        }
    }

    /// A received message delivered again (the gateway had not acknowledged it) is recorded,
    /// counted and announced once, whether the copies share a batch or come later.
    #[tokio::test]
    async fn a_message_with_a_dedupe_key_is_recorded_once() {
        use crate::events::kinds::Event as Kind;

        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let recorder = Recorder::new(store.clone(), None);
        let mut live = recorder.subscribe();
        let received = || -> Kind {
            use crate::events::received::{message_received_data, Resolved};
            let jid = bzapper_core::Jid::parse("5511988880001@s.whatsapp.net").unwrap();
            let m = bzapper_driver::InboundMessage {
                id: "3EB0AA".into(),
                chat: jid.clone(),
                sender: jid.clone(),
                sender_alt: None,
                push_name: None,
                text: "hi".into(),
                mentions: vec![],
                content: Default::default(),
                reply_to: None,
                at: now(),
            };
            let r = Resolved {
                sender_phone: Some(jid.clone()),
                sender_lid: None,
                chat: jid,
                mentions: vec![],
            };
            Kind::MessageReceived(Box::new(message_received_data(&m, &r, (None, None), None)))
        };
        let key = || "i1\n5511988880001@s.whatsapp.net\n5511988880001@s.whatsapp.net\n3EB0AA";
        // Two copies queued at once (one batch), then a third later.
        let a = recorder.submit_received("t1", "i1", received(), None, key().into()).await;
        let b = recorder.submit_received("t1", "i1", received(), None, key().into()).await;
        let (a, b) = (a.durable().await.unwrap(), b.durable().await.unwrap());
        assert!(a.is_some() && b.is_none(), "{a:?} {b:?}");
        let c = recorder.submit_received("t1", "i1", received(), None, key().into()).await;
        assert!(c.durable().await.unwrap().is_none());
        // Another message (another id) is another key.
        let other =
            recorder.submit_received("t1", "i1", received(), None, key().replace("AA", "BB")).await;
        let other = other.durable().await.unwrap().unwrap();
        assert_eq!(store.events_after("t1", 0, 10).await.unwrap().len(), 2);
        assert_eq!(live.recv().await.unwrap().id, a.unwrap().id);
        assert_eq!(live.recv().await.unwrap().id, other.id, "announced once");
        assert_eq!(recorder.metrics().counts("t1")["i1"].received, 2, "counted once");
        store.close().await;
    }

    #[tokio::test]
    async fn a_failed_write_reaches_its_callers() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let recorder = Recorder::new(store.clone(), None);
        recorder.record_raw("t1", None, "instance.qr", json!({})).await.unwrap();
        store.close().await;
        let err = recorder.record_raw("t1", None, "instance.qr", json!({})).await;
        assert!(err.is_err(), "{err:?}");
    }
}
