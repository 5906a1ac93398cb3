//! The gateway's resolved configuration. The `bzapper` binary fills it from flags and env
//! vars; tests build it directly.
//!
//! Every default lives here once, as a `DEFAULT_*` constant: [`Config::new`] uses them and so
//! do the CLI's flags (`default_value_t = config::DEFAULT_…`), so `bzapper serve --help` and a
//! test's `Config::new` can never disagree.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

/// How many queued messages of one queue (a tenant's pool, or one number's forced sends) the
/// scheduler holds in memory; the rest of a backlog waits in the store and is read a page at a
/// time. Far more than a pool's numbers send between two refills.
pub const DEFAULT_QUEUE_WINDOW: usize = 256;
// The settings' types, here where the CLI and tests find every setting.
pub use crate::app::quotas::QuotaLimits;
pub use crate::http::rate_limit::RateLimit;
pub use bzapper_core::quota::Limit;

/// `--listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// `--data-dir` (the CLI's; a [`Config`] is always given its data dir).
pub const DEFAULT_DATA_DIR: &str = "./data";
/// `--body-limit`, in bytes (docs/api.md: 1 MiB).
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 1024 * 1024;
/// `--warming-first-day-cap`.
pub const DEFAULT_WARMING_FIRST_DAY_CAP: u32 = 20;
/// `--rewarm-after-hours`: a number idle this long re-warms before full volume again.
pub const DEFAULT_REWARM_AFTER_HOURS: u64 = 72;
/// `--rewarm-days`: how long a re-warm lasts.
pub const DEFAULT_REWARM_DAYS: u32 = 2;
/// `--health-threshold`.
pub const DEFAULT_HEALTH_THRESHOLD: u8 = bzapper_core::sending::DEFAULT_THRESHOLD;
/// `--event-retention-hours`.
pub const DEFAULT_EVENT_RETENTION_HOURS: u64 = 24;
/// `--chat-retention-days`: how long chats and their received messages are kept (0: forever).
pub const DEFAULT_CHAT_RETENTION_DAYS: u64 = 90;
/// `--series-sample-secs`: how often the dashboard's time series are sampled (0: never).
pub const DEFAULT_SERIES_SAMPLE_SECS: u64 = crate::runtime::series::settings::DEFAULT_SAMPLE_SECS;
/// `--series-retention-days`: how long the hourly series are kept.
pub const DEFAULT_SERIES_RETENTION_DAYS: u64 =
    crate::runtime::series::settings::DEFAULT_RETENTION_DAYS;
/// `--lease-seconds`.
pub const DEFAULT_LEASE_SECONDS: u64 = 15;
/// `--resume-concurrency`: stored numbers handshaking with the network at once while a start
/// resumes them (each holds its slot until its first state event, at most
/// `runtime::supervisor::HANDSHAKE_WAIT`). Enough to keep both cores of a small box busy with
/// 10,000 numbers without a burst of thousands of handshakes at WhatsApp.
pub const DEFAULT_RESUME_CONCURRENCY: usize =
    crate::runtime::supervisor::DEFAULT_RESUME_CONCURRENCY;
/// `--media-max-mb`.
pub const DEFAULT_MEDIA_MAX_MB: u64 = 64;
/// `--media-retention-hours`.
pub const DEFAULT_MEDIA_RETENTION_HOURS: u64 = 24;
/// `--media-fetch-timeout-secs`.
pub const DEFAULT_MEDIA_FETCH_TIMEOUT_SECS: u64 = 60;
/// `--outbound-allow`: no exception to the outbound guard (only public addresses are reached).
pub const DEFAULT_OUTBOUND_ALLOW: &str = "";
/// `--header-read-timeout-secs`: how long a client may take to send a request's head (from
/// connecting, or from its first byte on a kept-alive connection).
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// `--body-read-timeout-secs`: the longest pause while a request body is being read.
pub const DEFAULT_BODY_READ_TIMEOUT_SECS: u64 = 30;
/// `--idle-timeout-secs`: how long a kept-alive connection may wait for its next request.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// `--max-connections`: open client connections; more wait in the listen backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// `--sim-qr-first-secs` (and `bzapper simnet --qr-first-secs`).
pub const DEFAULT_SIM_QR_FIRST_SECS: u64 = 60;
/// `--sim-qr-next-secs` (and `bzapper simnet --qr-next-secs`).
pub const DEFAULT_SIM_QR_NEXT_SECS: u64 = 20;

// Fair shares (docs/api.md "Limits"). Generous: a normal client, the load benchmarks and the
// scale goal (10,000 numbers on one node, often of one tenant) never meet them; they stop one
// tenant from filling the server's memory or disk or holding every connection. 0 = unlimited.
/// `--max-queued-per-tenant`: messages `queued`/`sending` per tenant (a day's sending of 66
/// numbers at the default 1,500 a day).
pub const DEFAULT_MAX_QUEUED_PER_TENANT: u64 = 100_000;
/// `--max-queued-per-pool`.
pub const DEFAULT_MAX_QUEUED_PER_POOL: u64 = 100_000;
/// `--max-instances-per-tenant`: the scale goal's 10,000 numbers per node, all of one tenant.
pub const DEFAULT_MAX_INSTANCES_PER_TENANT: u64 = 10_000;
/// `--max-webhooks-per-tenant`: every event is written once per matching webhook.
pub const DEFAULT_MAX_WEBHOOKS_PER_TENANT: u64 = 25;
/// `--max-pools-per-tenant`.
pub const DEFAULT_MAX_POOLS_PER_TENANT: u64 = 1_000;
/// `--max-campaigns-in-flight`: campaigns running, scheduled or paused per tenant.
pub const DEFAULT_MAX_CAMPAIGNS_IN_FLIGHT: u64 = 20;
/// `--max-campaign-recipients-in-flight`: their recipients together.
pub const DEFAULT_MAX_CAMPAIGN_RECIPIENTS_IN_FLIGHT: u64 = 1_000_000;
/// `--max-media-mb-per-tenant`: 2 GiB of stored media per tenant (32 files at the 64 MiB cap).
pub const DEFAULT_MAX_MEDIA_MB_PER_TENANT: u64 = 2_048;
/// `--max-sse-streams-per-tenant`.
pub const DEFAULT_MAX_SSE_STREAMS_PER_TENANT: u64 = 100;
/// `--rate-limit`: requests a second per API key (the accept benchmark sends ~20,000/s from
/// one key and sets its own value).
pub const DEFAULT_RATE_LIMIT_PER_SEC: u32 = 1_000;
/// `--rate-limit-burst`: requests a key may send at once above its rate.
pub const DEFAULT_RATE_LIMIT_BURST: u32 = 2_000;

const HOUR: u64 = 3600;
const MIB: u64 = 1024 * 1024;

/// Which WhatsApp network the gateway talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverKind {
    /// The real WhatsApp network (whatsapp-rust).
    WhatsApp,
    /// The simulated network, in this process.
    Sim,
    /// A simulated network process shared by several gateways (`bzapper simnet`).
    SimRemote(String),
    /// The wire-level fake WhatsApp server (`bzapper simnet --wire`), whose HTTP control API is
    /// at this URL: the real driver connects to the fake's websocket (from `GET {url}/wire`)
    /// and the `/v1/sim` routes drive the fake through that API. Test builds only accept the
    /// fake (its certificate chain is zero-signed).
    SimWire(String),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://…` (or a path); `None` means `<data_dir>/bzapper.db`.
    pub database_url: Option<String>,
    pub driver: DriverKind,
    /// Base64 of 32 bytes; `None` means the key file in the data dir. A `SecretString`, so
    /// `{:?}` of the configuration (a log line, a panic) never shows it.
    pub master_key: Option<SecretString>,
    /// `None` means the token file in the data dir. Redacted in `{:?}` like the key.
    pub admin_token: Option<SecretString>,
    /// The largest request body accepted (docs/api.md: 1 MiB).
    pub body_limit_bytes: usize,
    /// Warming: the daily cap of a number on its first day (it grows geometrically to the
    /// number's full `per_day` over its `warming_days`).
    pub warming_first_day_cap: u32,
    /// Re-warming: a number idle longer than this goes through a shorter warm-up again.
    pub rewarm_after: Duration,
    /// Re-warming: how many days that warm-up lasts.
    pub rewarm_days: u32,
    /// How long events are kept (SSE resumes within this window).
    pub event_retention: Duration,
    /// How long chats show their messages (`GET /v1/chats`); received messages are indexed
    /// this long (or the event retention, when longer). `None`: forever.
    pub chat_retention: Option<Duration>,
    /// The dashboard's time series: how often they are sampled, how long they are kept.
    pub series: crate::runtime::series::settings::SeriesSettings,
    /// Webhook retries: first wait, longest wait, and when to give up (dead-letter).
    pub webhook_retry: bzapper_core::retry::RetryPolicy,
    /// Health score below which a number leaves rotation.
    pub health_threshold: u8,
    /// Before a number's first message to a 1:1 contact, check (cached) that the contact is on
    /// WhatsApp; one who is not fails with `not_on_whatsapp`, nothing sent.
    pub first_contact_check: bool,
    /// The real driver's websocket URL; `None` is WhatsApp's own (tests point it elsewhere).
    pub wa_url: Option<String>,
    /// The WhatsApp Web version the real driver announces; `None` fetches the current one.
    pub wa_version: Option<(u32, u32, u32)>,
    /// Several nodes (PostgreSQL only): this process's node id; `None` makes a fresh one.
    pub node_id: Option<String>,
    /// Where the other nodes reach this one's API; `None` is `http://<listen address>`.
    pub advertise_url: Option<String>,
    /// How long a node's hold on a number lasts without renewal (failover time).
    pub lease: Duration,
    /// Stored numbers handshaking at once while a start resumes them.
    pub resume_concurrency: usize,
    /// The largest media file (uploads and fetched URLs), in bytes.
    pub media_max_bytes: u64,
    /// How long stored media files and cached inbound media are kept.
    pub media_retention: Duration,
    /// The longest a media URL download may take.
    pub media_fetch_timeout: Duration,
    /// Where media bytes are kept: `<data_dir>/media` (the default), or an S3-compatible
    /// object store every node of a cluster shares (checked at start).
    pub media_storage: crate::media::MediaStorage,
    /// Hosts, addresses and ranges that media URLs, webhooks and alerts may reach although
    /// they are loopback, private or otherwise refused by the outbound guard.
    pub outbound_allow: crate::outbound::AllowList,
    /// Timeouts and the connection cap of the HTTP server.
    pub server_limits: ServerLimits,
    /// Per-tenant ceilings (each 0 for unlimited).
    pub quotas: QuotaLimits,
    /// Requests a second per API key, and the burst (a rate of 0 turns it off).
    pub rate_limit: RateLimit,
    /// What tests and the simulator change and an operator of the real network never needs.
    pub test_hooks: TestHooks,
}

/// What one client connection may take of the server: how slowly it may send, how long it
/// may sit idle, and how many connections are served at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// A request's head must be complete this long after the connection opened or, on a
    /// kept-alive connection, after its first byte arrived; otherwise the connection closes.
    pub header_read_timeout: Duration,
    /// A request body that sends nothing for this long is refused (408) and its connection
    /// closed.
    pub body_read_timeout: Duration,
    /// A kept-alive connection with no request for this long is closed. A response being
    /// sent (an SSE stream) is never idle.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECS),
            body_read_timeout: Duration::from_secs(DEFAULT_BODY_READ_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Knobs for tests and the simulated networks, kept apart from the operator's settings: none
/// of them changes how the gateway behaves on the real WhatsApp network.
#[derive(Debug, Clone)]
pub struct TestHooks {
    /// QR timing of the in-process simulated network (`--sim-qr-first-secs`,
    /// `--sim-qr-next-secs`; tests shorten it).
    pub sim_qr_first: Duration,
    pub sim_qr_next: Duration,
    /// The time of day campaign schedule windows go by; `None` is the wall clock (tests set
    /// a [`crate::runtime::campaigns::FakeClock`]).
    pub campaign_clock: Option<Arc<dyn crate::runtime::campaigns::Clock>>,
    /// The in-process simulated network's reaction model (`--sim-reactions`; off by default).
    pub sim_reactions: bzapper_driver::sim::Reactions,
    /// What the in-process simulated network's bans, account ages and reactions go by; `None`
    /// is the wall clock (a benchmark on a paused runtime sets a `TokioClock`).
    pub sim_clock: Option<Arc<dyn bzapper_driver::sim::NetClock>>,
}

impl Default for TestHooks {
    fn default() -> Self {
        TestHooks {
            sim_qr_first: Duration::from_secs(DEFAULT_SIM_QR_FIRST_SECS),
            sim_qr_next: Duration::from_secs(DEFAULT_SIM_QR_NEXT_SECS),
            campaign_clock: None,
            sim_reactions: bzapper_driver::sim::Reactions::default(),
            sim_clock: None,
        }
    }
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("DEFAULT_LISTEN is an address"),
            data_dir: data_dir.into(),
            database_url: None,
            driver: DriverKind::WhatsApp,
            master_key: None,
            admin_token: None,
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            warming_first_day_cap: DEFAULT_WARMING_FIRST_DAY_CAP,
            rewarm_after: Duration::from_secs(DEFAULT_REWARM_AFTER_HOURS * HOUR),
            rewarm_days: DEFAULT_REWARM_DAYS,
            event_retention: Duration::from_secs(DEFAULT_EVENT_RETENTION_HOURS * HOUR),
            chat_retention: Some(Duration::from_secs(DEFAULT_CHAT_RETENTION_DAYS * 24 * HOUR)),
            series: Default::default(),
            webhook_retry: bzapper_core::retry::RetryPolicy::default(),
            health_threshold: DEFAULT_HEALTH_THRESHOLD,
            first_contact_check: true,
            wa_url: None,
            wa_version: None,
            node_id: None,
            advertise_url: None,
            lease: Duration::from_secs(DEFAULT_LEASE_SECONDS),
            resume_concurrency: DEFAULT_RESUME_CONCURRENCY,
            media_max_bytes: DEFAULT_MEDIA_MAX_MB * MIB,
            media_retention: Duration::from_secs(DEFAULT_MEDIA_RETENTION_HOURS * HOUR),
            media_fetch_timeout: Duration::from_secs(DEFAULT_MEDIA_FETCH_TIMEOUT_SECS),
            media_storage: crate::media::MediaStorage::Local,
            outbound_allow: DEFAULT_OUTBOUND_ALLOW
                .parse()
                .expect("DEFAULT_OUTBOUND_ALLOW is a valid list"),
            server_limits: ServerLimits::default(),
            quotas: default_quotas(),
            rate_limit: RateLimit {
                per_sec: DEFAULT_RATE_LIMIT_PER_SEC,
                burst: DEFAULT_RATE_LIMIT_BURST,
            },
            test_hooks: TestHooks::default(),
        }
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("bzapper.db").display()),
        }
    }
}

/// The `DEFAULT_MAX_*` ceilings.
pub fn default_quotas() -> QuotaLimits {
    QuotaLimits {
        queued_per_tenant: Limit(DEFAULT_MAX_QUEUED_PER_TENANT),
        queued_per_pool: Limit(DEFAULT_MAX_QUEUED_PER_POOL),
        instances: Limit(DEFAULT_MAX_INSTANCES_PER_TENANT),
        webhooks: Limit(DEFAULT_MAX_WEBHOOKS_PER_TENANT),
        pools: Limit(DEFAULT_MAX_POOLS_PER_TENANT),
        campaigns_in_flight: Limit(DEFAULT_MAX_CAMPAIGNS_IN_FLIGHT),
        campaign_recipients: Limit(DEFAULT_MAX_CAMPAIGN_RECIPIENTS_IN_FLIGHT),
        media_bytes: Limit(DEFAULT_MAX_MEDIA_MB_PER_TENANT * MIB),
        sse_streams: Limit(DEFAULT_MAX_SSE_STREAMS_PER_TENANT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_master_key_or_the_admin_token() {
        let key = "c2VjcmV0LW1hc3Rlci1rZXktYnl0ZXMtMzItbG9uZyE=";
        let token = "admin-token-that-must-not-leak";
        let mut c = Config::new("/tmp/x");
        c.master_key = Some(key.into());
        c.admin_token = Some(token.into());
        let shown = format!("{c:?}");
        assert!(!shown.contains(key), "{shown}");
        assert!(!shown.contains(token), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
        // Also the pretty form a panic message or `dbg!` would use.
        let pretty = format!("{c:#?}");
        assert!(!pretty.contains(key) && !pretty.contains(token));
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::new("d");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.body_limit_bytes, 1_048_576);
        assert_eq!(c.health_threshold, 40);
        assert_eq!(c.rewarm_after, Duration::from_secs(72 * 3600));
        assert_eq!(c.rewarm_days, 2);
        assert_eq!(c.media_max_bytes, 64 * 1024 * 1024);
        assert_eq!(c.lease, Duration::from_secs(15));
        assert!(c.outbound_allow.is_empty(), "only public addresses by default");
        assert_eq!(c.server_limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.server_limits.body_read_timeout, Duration::from_secs(30));
        assert_eq!(c.server_limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.server_limits.max_connections, 4096);
        assert_eq!(c.quotas.queued_per_tenant, Limit(100_000));
        assert_eq!(c.quotas.media_bytes, Limit(2 * 1024 * 1024 * 1024));
        assert_eq!(c.quotas.sse_streams, Limit(100));
        assert_eq!(c.rate_limit, RateLimit { per_sec: 1_000, burst: 2_000 });
        assert_eq!(c.test_hooks.sim_qr_first, Duration::from_secs(60));
        assert_eq!(c.test_hooks.sim_qr_next, Duration::from_secs(20));
    }
}
