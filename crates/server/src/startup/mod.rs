//! Builds the running gateway from a [`Config`]: secrets, store, driver, supervisor, router and
//! the bound listener, in that order, failing early and plainly on anything misconfigured.

pub mod config;
pub mod fd_limit;
pub mod secrets;
pub mod serve;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use bzapper_core::sending::WarmingSchedule;
use bzapper_driver::sim::{Reactions, SimConfig, SimDriver, SimNetwork, WallClock};
use bzapper_driver::whatsapp::{WhatsAppDriver, WhatsAppOptions};
use bzapper_driver::Driver;
use bzapper_store::{
    ClusterStore, ContactCheckStore, NodeInfo, PgStore, Sealer, SqliteStore, Store,
};
use tokio::net::TcpListener;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::app::sim::{SimControl, SimNetControl, WireControl};
use crate::cluster::Cluster;
use crate::events::recorder::Recorder;
use crate::http::auth::sha256;
use crate::http::state::{AppState, Inner};
use crate::model::ids::new_id;
use crate::runtime::alerts::{AlertParts, AlertWorker};
use crate::runtime::campaigns::SystemClock;
use crate::runtime::leases::LeaseKeeper;
use crate::runtime::scheduler::{Scheduler, SchedulerParts};
use crate::runtime::supervisor::Supervisor;
use crate::runtime::webhooks::WebhookWorker;
use config::{Config, DriverKind};
use secrets::{ExposeSecret, SecretString, Source};

/// The WhatsApp Web version the real driver announces to the wire-level fake unless
/// `--wa-version` says otherwise (any version will do; a fixed one fetches nothing).
pub const WIRE_WA_VERSION: (u32, u32, u32) = (2, 3000, 1_000_000_000);
/// How long a gateway on `--sim-wire-url` waits at start for the fake to answer.
const WIRE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(15);

pub struct Application {
    listener: TcpListener,
    router: Router,
    supervisor: Arc<Supervisor>,
    leases: Option<Arc<LeaseKeeper>>,
    store: OpenStore,
    admin_token: SecretString,
    admin_token_source: Source,
    closing: tokio::sync::watch::Sender<bool>,
    webhooks: Arc<WebhookWorker>,
    alerts: Arc<AlertWorker>,
    limits: config::ServerLimits,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let driver: Arc<dyn Driver>;
        let sim: Option<Arc<dyn SimControl>>;
        match &config.driver {
            DriverKind::WhatsApp => {
                driver = Arc::new(WhatsAppDriver::new(WhatsAppOptions {
                    ws_url: config.wa_url.clone(),
                    version: config.wa_version,
                    media_over_plain_http: false,
                }));
                sim = None;
            }
            DriverKind::SimWire(url) => {
                let control = WireControl::new(url).context("the --sim-wire-url is not valid")?;
                let ws_url = control.ws_url(WIRE_PATIENCE).await.with_context(|| {
                    format!("asking the wire fake at {url} for its websocket URL")
                })?;
                tracing::info!(%ws_url, "real driver on the wire-level fake WhatsApp server");
                driver = Arc::new(WhatsAppDriver::new(WhatsAppOptions {
                    ws_url: Some(ws_url),
                    // A fixed version: nothing is fetched from WhatsApp.
                    version: Some(config.wa_version.unwrap_or(WIRE_WA_VERSION)),
                    // The fake's media host speaks plain HTTP.
                    media_over_plain_http: true,
                }));
                sim = Some(Arc::new(control));
            }
            DriverKind::Sim => {
                let sim_config = SimConfig {
                    qr_first: config.test_hooks.sim_qr_first,
                    qr_next: config.test_hooks.sim_qr_next,
                    ..SimConfig::default()
                };
                let clock =
                    config.test_hooks.sim_clock.clone().unwrap_or_else(|| Arc::new(WallClock));
                let net = Arc::new(SimNetwork::with_clock(sim_config, clock));
                net.set_reactions(config.test_hooks.sim_reactions.clone())
                    .map_err(|e| anyhow::anyhow!("--sim-reactions: {e}"))?;
                let d = SimDriver::local(net);
                sim = Some(Arc::new(SimNetControl(d.control())));
                driver = Arc::new(d);
            }
            DriverKind::SimRemote(url) => {
                let d = SimDriver::remote(url).context("the --sim-url is not a valid URL")?;
                sim = Some(Arc::new(SimNetControl(d.control())));
                driver = Arc::new(d);
            }
        }

        create_private_dir(&config.data_dir)?;
        let (master_key, key_source) = secrets::master_key(
            config.master_key.as_ref().map(|k| k.expose_secret()),
            &config.data_dir,
        )?;
        if let Source::Created(p) = &key_source {
            tracing::info!(path = %p.display(), "created a new master key; back it up: sessions cannot be opened without it");
        }
        let url = config.database_url();
        let sealer = Sealer::new(master_key);
        let store = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            // Not in the context: the URL may carry a password.
            OpenStore::Postgres(Arc::new(
                PgStore::open(&url, sealer).await.context("opening the PostgreSQL store")?,
            ))
        } else {
            make_sqlite_private(&url)?;
            let store = SqliteStore::open(&url, sealer)
                .await
                .with_context(|| format!("opening the store at {url}"))?;
            // The -wal and -shm files the open made (SQLite gives them the database's mode).
            make_sqlite_private(&url)?;
            OpenStore::Sqlite(Arc::new(store))
        };
        let (admin_token, admin_token_source) = secrets::admin_token(
            config.admin_token.as_ref().map(|t| t.expose_secret()),
            &config.data_dir,
        )?;

        // Bound first: a node advertises the address it actually got (port 0 in tests), and
        // media links in events are absolute (webhook receivers fetch them as they are).
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let public_url = config.advertise_url.clone().unwrap_or_else(|| {
            format!("http://{}", listener.local_addr().expect("a bound listener"))
        });
        // Wiring order: everything a part is built from exists before it (store, listener,
        // cluster, media, recorder, scheduler, supervisor); nothing is set on a part after.
        let cluster = match store.cluster() {
            Some(cs) => {
                let node = NodeInfo {
                    id: config.node_id.clone().unwrap_or_else(|| new_id("node")),
                    url: public_url.clone(),
                    started_at: crate::model::time::now(),
                };
                tracing::info!(node = %node.id, url = %node.url, lease = ?config.lease, "joining the cluster");
                if config.advertise_url.is_none() && config.listen.ip().is_unspecified() {
                    tracing::warn!(url = %node.url, "listening on all addresses without --advertise-url: other nodes cannot reach this node at that URL; set --advertise-url");
                }
                Some(Cluster::join(cs, node, config.lease).await.context("joining the cluster")?)
            }
            None => None,
        };
        // Every URL fetched or posted to for a tenant goes through it.
        let outbound = crate::outbound::Guard::new(config.outbound_allow.clone());
        let media = crate::media::open(
            &config.data_dir,
            &config.media_storage,
            crate::media::MediaLimits {
                max_bytes: config.media_max_bytes,
                retention: config.media_retention,
                fetch_timeout: config.media_fetch_timeout,
            },
            &outbound,
            // On local disks, uploads received by another node are fetched from it, with the
            // shared token.
            cluster.clone().map(|c| (c, admin_token.clone())),
        )
        .await
        .context("opening the media store")?;
        let dyn_store: Arc<dyn Store> = store.as_dyn();
        let recorder = Recorder::new(dyn_store.clone(), cluster.clone());
        let contacts =
            Arc::new(crate::runtime::contact_checks::ContactChecker::new(store.contact_checks()));
        let scheduler = Scheduler::new(SchedulerParts {
            store: dyn_store.clone(),
            recorder: recorder.clone(),
            warming: warming_schedule(&config),
            threshold: config.health_threshold,
            media: media.clone(),
            cluster: cluster.clone(),
            queue_window: config::DEFAULT_QUEUE_WINDOW,
            contacts: contacts.clone(),
            first_contact_check: config.first_contact_check,
            rewarm: crate::runtime::scheduler::Rewarm {
                after: config.rewarm_after,
                days: config.rewarm_days,
            },
        });
        scheduler.start().await.context("loading the send queue")?;
        let supervisor = Supervisor::spawn(
            dyn_store.clone(),
            driver,
            recorder.clone(),
            scheduler.clone(),
            &public_url,
        );
        spawn_event_pruning(
            dyn_store.clone(),
            config.event_retention,
            config.chat_retention,
            config.series,
        );
        let webhooks = WebhookWorker::spawn(
            dyn_store.clone(),
            recorder.clone(),
            config.webhook_retry,
            &outbound,
            cluster.clone(),
        )
        .context("building the webhook client")?;
        let alerts = AlertWorker::spawn(
            AlertParts {
                store: dyn_store.clone(),
                recorder: recorder.clone(),
                // Alerts are retried on the webhooks' schedule, by the node sending webhooks.
                policy: config.webhook_retry,
                role: webhooks.role(),
                clock: Arc::new(SystemClock),
                cluster: cluster.clone(),
            },
            &outbound,
        )
        .context("building the alert client")?;
        let leases = match &cluster {
            // The lease keeper resumes this node's share of the numbers.
            Some(c) => Some(LeaseKeeper::spawn(
                c.clone(),
                dyn_store.clone(),
                supervisor.clone(),
                scheduler.clone(),
            )),
            None => {
                // Before the listener serves: every stored number is `connecting` (one
                // transaction) and known as running; the handshakes follow on their own task.
                let claim = supervisor.claim_for_resume().await.context("resuming instances")?;
                match fd_limit::current() {
                    Ok(limit) => {
                        if let Some(why) = fd_limit::shortfall(limit, claim.len()) {
                            tracing::error!("{why}");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not read the open-file limit"),
                }
                spawn_resume(supervisor.clone(), claim, config.resume_concurrency);
                None
            }
        };

        let (closing, closing_rx) = tokio::sync::watch::channel(false);
        crate::runtime::series::sampler::Sampler::spawn(
            dyn_store.clone(),
            recorder.clone(),
            scheduler.clone(),
            config.series,
            cluster.is_some(),
            closing_rx.clone(),
        );
        let campaigns = crate::runtime::campaigns::spawn(
            config.test_hooks.campaign_clock.clone().unwrap_or_else(|| Arc::new(SystemClock)),
            warming_schedule(&config),
            dyn_store.clone(),
            recorder.clone(),
            scheduler.clone(),
            cluster.clone(),
            closing_rx.clone(),
        );
        let app = crate::app::App::new(crate::app::Parts {
            store: dyn_store,
            contacts,
            supervisor: supervisor.clone(),
            scheduler,
            recorder,
            media,
            webhooks: webhooks.clone(),
            alerts: alerts.clone(),
            campaigns,
            cluster: cluster.clone(),
            leases: leases.clone(),
            sim,
            quotas: config.quotas,
            chat_retention: config.chat_retention,
            series: config.series,
        });
        let keys = crate::http::key_cache::KeyCache::default();
        keys.follow(app.revocations.subscribe());
        let state = AppState::new(Inner {
            app,
            closing: closing_rx,
            keys,
            rate_limiter: crate::http::rate_limit::RateLimiter::new(config.rate_limit),
            admin_token_hash: sha256(admin_token.expose_secret().as_bytes()),
            cluster,
            leases: leases.clone(),
            outbound,
            forwarder: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .context("building the HTTP client")?,
        });
        let router = crate::http::routes::router(&state)
            .layer(DefaultBodyLimit::max(config.body_limit_bytes))
            // A 5xx the gateway means to send (501) is not a failure of the gateway; real internal
            // errors are logged at ERROR where they happen (`ApiError::internal`).
            .layer(
                TraceLayer::new_for_http()
                    // The URI without `?access_token=`'s value.
                    .make_span_with(crate::http::trace::request_span)
                    .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
            )
            .with_state(state);
        Ok(Application {
            listener,
            router,
            supervisor,
            leases,
            store,
            admin_token,
            admin_token_source,
            closing,
            webhooks,
            alerts,
            limits: config.server_limits,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn admin_token(&self) -> &str {
        self.admin_token.expose_secret()
    }

    /// Where the admin token came from (the start-up message prints a created file's path).
    pub fn admin_token_source(&self) -> &Source {
        &self.admin_token_source
    }

    /// Serves until `shutdown` resolves, then closes every connection (keeping each number's
    /// state so the next start resumes it) and the store.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let closing = self.closing;
        let shutdown = async move {
            shutdown.await;
            closing.send_replace(true);
        };
        serve::serve(self.listener, self.router, self.limits, shutdown).await;
        if let Some(leases) = &self.leases {
            // No more renewals, takeovers or restarts of numbers while this node stops.
            leases.stop().await;
        }
        self.supervisor.shutdown().await;
        // Before leaving: the webhooks role keeper must not renew the role after `leave`.
        // Both senders of the role let their attempts under way record their outcome.
        tokio::join!(self.webhooks.shutdown(), self.alerts.shutdown());
        if let Some(leases) = &self.leases {
            // Connections are closed: the other nodes may take the numbers at once.
            leases.leave().await;
        }
        self.store.close().await;
        Ok(())
    }
}

/// The store the gateway runs on, kept by its concrete type for `close` at shutdown.
enum OpenStore {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

impl OpenStore {
    fn as_dyn(&self) -> Arc<dyn Store> {
        match self {
            OpenStore::Sqlite(s) => s.clone(),
            OpenStore::Postgres(s) => s.clone(),
        }
    }

    /// The contact-check cache (the same store, seen through that one trait).
    fn contact_checks(&self) -> Arc<dyn ContactCheckStore> {
        match self {
            OpenStore::Sqlite(s) => s.clone(),
            OpenStore::Postgres(s) => s.clone(),
        }
    }

    /// The cluster side of the store, when several nodes can share it.
    fn cluster(&self) -> Option<Arc<dyn ClusterStore>> {
        match self {
            OpenStore::Sqlite(_) => None,
            OpenStore::Postgres(s) => Some(s.clone()),
        }
    }

    async fn close(&self) {
        match self {
            OpenStore::Sqlite(s) => s.close().await,
            OpenStore::Postgres(s) => s.close().await,
        }
    }
}

/// Starts the claimed numbers on their own task, so that the listener serves meanwhile.
fn spawn_resume(
    supervisor: Arc<Supervisor>,
    claim: crate::runtime::supervisor::resume::Claim,
    concurrency: usize,
) {
    let n = claim.len();
    tracing::info!(numbers = n, concurrency, "resuming the stored numbers");
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        supervisor.start_claimed(claim, concurrency).await;
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(resumed = n, secs, "instances resumed");
    });
}

/// Removes events older than the retention window (with the ended alert deliveries of that
/// age), chats idle longer than the chat retention, received messages older than both,
/// contact-check answers older than a day, and each tier of the time series past its
/// retention, now and every ten minutes.
fn spawn_event_pruning(
    store: Arc<dyn Store>,
    retention: std::time::Duration,
    chat_retention: Option<std::time::Duration>,
    series: crate::runtime::series::settings::SeriesSettings,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            tick.tick().await;
            let cutoff = chrono::Utc::now()
                - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(1));
            match store.prune_events(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "old events removed"),
                Err(e) => tracing::warn!(error = %e, "pruning the event log failed"),
            }
            // A received message stays quotable (and its media fetchable) as long as its
            // event is kept, and shows in its chat as long as chats keep it.
            let chat_cutoff = chat_retention.map(|r| {
                chrono::Utc::now()
                    - chrono::Duration::from_std(r).unwrap_or(chrono::Duration::days(90))
            });
            if let Some(chat_cutoff) = chat_cutoff {
                match store.prune_chats(chat_cutoff).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(pruned = n, "idle chats removed"),
                    Err(e) => tracing::warn!(error = %e, "pruning the chats failed"),
                }
                match store.prune_inbound(cutoff.min(chat_cutoff)).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(pruned = n, "old received-message index entries removed")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "pruning the received-message index failed")
                    }
                }
            }
            // Alerts that were delivered or given up are kept as long as their events.
            match store.prune_alert_deliveries(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "old alert deliveries removed"),
                Err(e) => tracing::warn!(error = %e, "pruning the alert deliveries failed"),
            }
            // Contact-check answers are reused for a day, whatever the event retention.
            match store.prune_contact_checks(crate::app::contacts::cache_cutoff()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "expired contact-check answers removed"),
                Err(e) => tracing::warn!(error = %e, "pruning the contact-check cache failed"),
            }
            let now = crate::model::time::now();
            match crate::runtime::series::retention::prune(&*store, &series, now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "old series buckets removed"),
                Err(e) => tracing::warn!(error = %e, "pruning the time series failed"),
            }
        }
    });
}

fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating the data dir {}", dir.display()))?;
    }
    Ok(())
}

/// The file a SQLite URL names (`sqlite://path?…`, `sqlite:path`, or a plain path), if any.
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.contains("mode=memory") {
        return None;
    }
    Some(path.into())
}

/// Keeps the SQLite database (sessions, keys' hashes, messages) readable by the gateway's user
/// only, whatever the umask and whatever an older version left: a database the URL lets SQLite
/// create (`mode=rwc`) is created here first with mode 0600, and the database and its `-wal`,
/// `-shm` and `-journal` files are set to 0600. SQLite creates its `-wal` and `-shm` files with
/// the database file's mode, so they stay private after.
fn make_sqlite_private(url: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let Some(db) = sqlite_path(url) else { return Ok(()) };
    if url.contains("mode=rwc") && !db.exists() {
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&db) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", db.display())),
        }
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.clone().into_os_string();
        name.push(suffix);
        let file = std::path::PathBuf::from(name);
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("making {} private", file.display())),
        }
    }
    Ok(())
}

/// Runs the simulated WhatsApp network as its own process, shared by gateways over loopback.
pub async fn serve_simnet(
    listen: SocketAddr,
    config: SimConfig,
    reactions: Reactions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let net = Arc::new(SimNetwork::new(config));
    net.set_reactions(reactions).map_err(|e| anyhow::anyhow!("--reactions: {e}"))?;
    let listener = TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    println!("bZapper simnet listening on http://{}", listener.local_addr()?);
    bzapper_driver::sim::serve(listener, net, shutdown).await?;
    Ok(())
}

/// The warming and re-warming schedule the settings ask for (the send scheduler and the
/// campaigns' estimates share it).
fn warming_schedule(config: &Config) -> WarmingSchedule {
    WarmingSchedule {
        first_day_cap: config.warming_first_day_cap,
        rewarm_after_ms: i64::try_from(config.rewarm_after.as_millis()).unwrap_or(i64::MAX),
        rewarm_days: config.rewarm_days,
        ..WarmingSchedule::default()
    }
}
