//! The runtime without HTTP, for its own unit tests: a real SQLite store in a temp dir, the
//! recorder, the scheduler and the supervisor on the in-process simulated network, wired the
//! way start-up wires them.
//!
//! Tests run on a paused tokio clock that moves only when the test moves it
//! ([`Rig::until`], [`Rig::advance`]). Tokio would otherwise jump the paused clock ahead
//! whenever every task waits, and SQLite works on threads of its own under the pool's
//! acquire timeout: the jump would fire that timeout while a query runs. A blocking task held
//! for the rig's life stops the jumps (tokio does not auto-advance while one runs).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bzapper_core::sending::{WarmingSchedule, DEFAULT_THRESHOLD};
use bzapper_core::{InstanceState, LimitsPatch, Status};
use bzapper_driver::sim::{ScanRequest, SimConfig, SimDriver, SimNet, SimNetwork};
use bzapper_store::{
    ApiKeyRecord, Event, InstanceRecord, InstanceStore, MasterKey, MessageRecord, MessageStatus,
    MessageStore, Sealer, SqliteStore, Store, Tenant,
};
use tempfile::TempDir;

use crate::events::recorder::Recorder;
use crate::media::{http_client, MediaLimits, MediaStore};
use crate::model::ids::{new_id, new_message_id, new_ordered_id};
use crate::model::time::now;
use crate::runtime::scheduler::{Scheduler, SchedulerParts};
use crate::runtime::supervisor::Supervisor;

pub(crate) const TENANT: &str = "t1";

pub(crate) struct Rig {
    pub store: Arc<SqliteStore>,
    pub scheduler: Arc<Scheduler>,
    pub supervisor: Arc<Supervisor>,
    /// The simulated network's control side: scan, drop, restrict, inbound, outbox.
    pub net: Arc<dyn SimNet>,
    _dir: TempDir,
    /// Dropping it ends the blocking task that keeps the clock from jumping.
    _hold_clock: std::sync::mpsc::Sender<()>,
}

/// Keeps tokio from auto-advancing the paused clock until the sender is dropped.
pub(crate) fn hold_clock() -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = rx.recv();
    });
    tx
}

/// Waits until `check` holds, moving the paused clock 10 ms at a time, so every timer due
/// meanwhile fires in order; panics with `what` after 20 wall-clock seconds (the store works
/// on real threads, so virtual time alone cannot bound the wait).
pub(crate) async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::advance(Duration::from_millis(10)).await;
    }
}

/// A SQLite store in `dir` with one tenant, [`TENANT`].
pub(crate) async fn store_in(dir: &TempDir) -> Arc<SqliteStore> {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bzapper.db").display());
    let store =
        Arc::new(SqliteStore::open(&url, Sealer::new(MasterKey::generate())).await.unwrap());
    add_tenant(store.as_ref(), TENANT).await;
    store
}

/// Stores one more tenant.
pub(crate) async fn add_tenant(store: &dyn Store, id: &str) {
    let tenant = Tenant { id: id.into(), name: format!("tenant {id}"), created_at: now() };
    let key = ApiKeyRecord {
        id: new_id("key"),
        tenant_id: id.into(),
        secret_hash: [0; 32],
        created_at: now(),
    };
    store.create_tenant(&tenant, &key).await.unwrap();
}

impl Rig {
    /// Call on a paused clock (`#[tokio::test(start_paused = true)]`).
    pub async fn new() -> Rig {
        Self::with_window(256).await
    }

    /// A rig whose scheduler holds at most `window` queued messages of a queue in memory.
    pub async fn with_window(window: usize) -> Rig {
        let hold = hold_clock();
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir).await;
        Self::on_store(hold, dir, store, window).await
    }

    /// A rig started on a store that already holds data (as after a restart); `hold` is the
    /// [`hold_clock`] taken before the store was opened.
    pub async fn on_store(
        hold: std::sync::mpsc::Sender<()>,
        dir: TempDir,
        store: Arc<SqliteStore>,
        window: usize,
    ) -> Rig {
        Self::on_store_with(hold, dir, store, window, |d| Arc::new(d)).await
    }

    /// [`Rig::on_store`] with the simulated driver wrapped by `wrap` (a test's driver that
    /// holds or fails starts).
    pub async fn on_store_with(
        hold: std::sync::mpsc::Sender<()>,
        dir: TempDir,
        store: Arc<SqliteStore>,
        window: usize,
        wrap: impl FnOnce(SimDriver) -> Arc<dyn bzapper_driver::Driver>,
    ) -> Rig {
        let dyn_store: Arc<dyn Store> = store.clone();
        let recorder = Recorder::new(dyn_store.clone(), None);
        let limits = MediaLimits {
            max_bytes: 1 << 20,
            retention: Duration::from_secs(3600),
            fetch_timeout: Duration::from_secs(10),
        };
        // The tests' media servers listen on loopback.
        let loopback = crate::outbound::Guard::new("127.0.0.0/8,::1,localhost".parse().unwrap());
        let media =
            MediaStore::new(dir.path().join("media"), limits, http_client(&loopback).unwrap());
        let scheduler = Scheduler::new(SchedulerParts {
            store: dyn_store.clone(),
            recorder: recorder.clone(),
            warming: WarmingSchedule { first_day_cap: 20, ..WarmingSchedule::default() },
            threshold: DEFAULT_THRESHOLD,
            media: Arc::new(media.unwrap()),
            cluster: None,
            queue_window: window,
            contacts: Arc::new(crate::runtime::contact_checks::ContactChecker::new(
                dyn_store.clone(),
            )),
            first_contact_check: true,
            rewarm: crate::runtime::scheduler::Rewarm {
                after: Duration::from_secs(72 * 3600),
                days: 2,
            },
        });
        scheduler.start().await.unwrap();
        let driver = SimDriver::local(Arc::new(SimNetwork::new(SimConfig::default())));
        let net = driver.control();
        let supervisor = Supervisor::spawn(
            dyn_store,
            wrap(driver),
            recorder.clone(),
            scheduler.clone(),
            "http://gateway.test",
        );
        Rig { store, scheduler, supervisor, net, _dir: dir, _hold_clock: hold }
    }

    /// The gateway restarts on the same data: this rig's supervisor closes its connections
    /// and goes, with whatever it held in memory; a new rig starts on the same store, with a
    /// new in-process network (which logs stored sessions back in). Nothing is resumed yet:
    /// call `supervisor.resume_all()` as start-up does.
    pub async fn restart(self) -> Rig {
        self.restart_with(|d| Arc::new(d)).await
    }

    /// [`Rig::restart`] with the new rig's driver wrapped by `wrap`.
    pub async fn restart_with(
        self,
        wrap: impl FnOnce(SimDriver) -> Arc<dyn bzapper_driver::Driver>,
    ) -> Rig {
        self.supervisor.shutdown().await;
        let Rig { store, _dir, _hold_clock, .. } = self;
        Rig::on_store_with(_hold_clock, _dir, store, 256, wrap).await
    }

    /// See [`until`].
    pub async fn until<F, Fut>(&self, what: &str, check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        until(what, check).await
    }

    /// Moves the paused clock `by`, 100 ms at a time (each step lets the tasks run).
    pub async fn advance(&self, by: Duration) {
        let step = Duration::from_millis(100);
        let mut left = by;
        while !left.is_zero() {
            let d = left.min(step);
            tokio::time::advance(d).await;
            tokio::task::yield_now().await;
            left -= d;
        }
    }

    /// Lets the number send as fast as its typing allows (no minute or hour caps, short
    /// gaps); `warmed` also ends its warming (`warming_days` 0).
    pub async fn fast(&self, instance_id: &str, warmed: bool) {
        let mut rec = self.instance(instance_id).await;
        rec.limits = bzapper_core::LimitsPatch {
            per_minute: Some(1_000),
            per_hour: Some(10_000),
            per_day: Some(10_000),
            min_gap_ms: Some(10),
            max_gap_ms: Some(20),
            ..bzapper_core::LimitsPatch::default()
        };
        if warmed {
            rec.warming_days = 0;
        }
        self.store.update_instance_settings(&rec).await.unwrap();
        self.scheduler.number_changed(&rec, None).await;
    }

    /// A number of the `default` pool, started (showing a QR code), not yet linked.
    pub async fn number(&self, name: &str) -> InstanceRecord {
        let rec = stored_number(self.store.as_ref(), name).await;
        self.supervisor.start(&rec).await.unwrap();
        rec
    }

    /// A phone scans the number's QR code; returns once the number is connected.
    pub async fn link(&self, rec: &InstanceRecord, phone: &str) {
        self.until("a QR code", || async {
            self.supervisor.qr(&rec.id, Duration::ZERO).await.is_some()
        })
        .await;
        self.net.scan(&rec.id, ScanRequest { phone: phone.into() }).await.unwrap();
        self.until_status(&rec.id, Status::Connected).await;
    }

    /// A number of the `default` pool, linked to `phone` and connected.
    pub async fn connected(&self, name: &str, phone: &str) -> InstanceRecord {
        self.connected_as(TENANT, name, phone).await
    }

    /// [`Rig::connected`] for another tenant.
    pub async fn connected_as(&self, tenant_id: &str, name: &str, phone: &str) -> InstanceRecord {
        let rec = stored_number_of(self.store.as_ref(), tenant_id, name).await;
        self.supervisor.start(&rec).await.unwrap();
        self.link(&rec, phone).await;
        self.instance(&rec.id).await
    }

    pub async fn instance(&self, id: &str) -> InstanceRecord {
        self.store.get_instance_by_id(id).await.unwrap().expect("the instance exists")
    }

    pub async fn until_status(&self, id: &str, status: Status) {
        self.until(&format!("{id} {status:?}"), || async {
            self.instance(id).await.state.status == status
        })
        .await;
    }

    /// A text to `to` (a phone), stored and queued in the `default` pool, as the API does.
    pub async fn send(&self, to: &str, text: &str) -> MessageRecord {
        self.send_as(TENANT, to, text).await
    }

    /// [`Rig::send`] for another tenant.
    pub async fn send_as(&self, tenant_id: &str, to: &str, text: &str) -> MessageRecord {
        let m = text_message(tenant_id, to, text);
        self.store.insert_message(&m).await.unwrap();
        self.scheduler.accept(m.clone()).await;
        m
    }

    pub async fn message(&self, id: &str) -> MessageRecord {
        self.store.get_message_by_id(id).await.unwrap().expect("the message exists")
    }

    pub async fn until_message(&self, id: &str, status: MessageStatus) -> MessageRecord {
        self.until(&format!("{id} {status:?}"), || async {
            self.message(id).await.status == status
        })
        .await;
        self.message(id).await
    }

    /// Waits until the message went out (`sent`, or already `delivered`/`read`).
    pub async fn until_sent(&self, id: &str) -> MessageRecord {
        use MessageStatus::*;
        self.until(&format!("{id} sent"), || async {
            matches!(self.message(id).await.status, Sent | Delivered | Read)
        })
        .await;
        self.message(id).await
    }

    /// The texts the network received from the number, oldest first.
    pub async fn sent_texts(&self, id: &str) -> Vec<String> {
        let entries = self.net.outbox(id).await.unwrap_or_default();
        entries
            .into_iter()
            .filter_map(|e| match e {
                bzapper_driver::sim::OutboxEntry::Message(m) => Some(m.text),
                _ => None,
            })
            .collect()
    }

    /// Every event recorded for the tenant, oldest first.
    pub async fn events(&self) -> Vec<Event> {
        events_of(self.store.as_ref()).await
    }
}

/// A number of the `default` pool, stored (stopped), never started.
pub(crate) async fn stored_number(store: &dyn Store, name: &str) -> InstanceRecord {
    stored_number_of(store, TENANT, name).await
}

/// [`stored_number`] of another tenant.
pub(crate) async fn stored_number_of(
    store: &dyn Store,
    tenant_id: &str,
    name: &str,
) -> InstanceRecord {
    let rec = InstanceRecord {
        id: new_id("ins"),
        tenant_id: tenant_id.into(),
        name: name.into(),
        pool: "default".into(),
        state: InstanceState::new_stopped(),
        phone: None,
        jid: None,
        lid: None,
        warming_days: 0,
        proxy: None,
        limits: LimitsPatch::default(),
        first_connected_at: None,
        connected_at: None,
        created_at: now(),
        health_score: 100,
        read_receipts: Default::default(),
        reject_calls: false,
        reject_call_message: None,
        always_online: false,
        quiet_hours: None,
        rewarm_from: None,
    };
    store.create_instance(&rec).await.unwrap();
    rec
}

pub(crate) async fn events_of(store: &dyn Store) -> Vec<Event> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events_after(TENANT, after, 500).await.unwrap();
        let Some(last) = page.last() else { return all };
        after = last.id;
        all.extend(page);
    }
}

/// A queued text of the tenant to `to` (a phone) in the `default` pool, as the API stores it.
pub(crate) fn text_message(tenant_id: &str, to: &str, text: &str) -> MessageRecord {
    MessageRecord {
        id: new_ordered_id("msg"),
        tenant_id: tenant_id.into(),
        wa_id: new_message_id(),
        instance_id: None,
        forced: false,
        pool: "default".into(),
        to: bzapper_core::Jid::parse(&format!("{to}@s.whatsapp.net")).unwrap(),
        body: text.into(),
        mentions: vec![],
        menu: None,
        status: MessageStatus::Queued,
        error: None,
        idempotency_key: None,
        created_at: now(),
        updated_at: now(),
        sent_at: None,
        campaign_id: None,
        content: None,
        send_at: None,
        expires_at: None,
        chosen_by: None,
    }
}
