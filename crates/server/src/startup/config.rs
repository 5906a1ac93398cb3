//! The gateway's resolved configuration. The `bzapper` binary fills it from flags and env
//! vars; tests build it directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Base64 of 32 bytes; `None` means the key file in the data dir.
    pub master_key: Option<String>,
    /// `None` means the token file in the data dir.
    pub admin_token: Option<String>,
    /// The largest request body accepted (API.md: 1 MiB).
    pub body_limit_bytes: usize,
    /// Warming: the daily cap of a number on its first day (it grows geometrically to the
    /// number's full `per_day` over its `warming_days`).
    pub warming_first_day_cap: u32,
    /// How long events are kept (SSE resumes within this window).
    pub event_retention: Duration,
    /// Webhook retries: first wait, longest wait, and when to give up (dead-letter).
    pub webhook_retry: bzapper_core::retry::RetryPolicy,
    /// Health score below which a number leaves rotation.
    pub health_threshold: u8,
    /// QR timing of the in-process simulated network (tests shorten it).
    pub sim_qr_first: Duration,
    pub sim_qr_next: Duration,
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
    /// The largest media file (uploads and fetched URLs), in bytes.
    pub media_max_bytes: u64,
    /// How long stored media files and cached inbound media are kept.
    pub media_retention: Duration,
    /// The longest a media URL download may take.
    pub media_fetch_timeout: Duration,
    /// The time of day campaign schedule windows go by; `None` is the wall clock (tests set
    /// a [`crate::runtime::campaigns::FakeClock`]).
    pub campaign_clock: Option<std::sync::Arc<dyn crate::runtime::campaigns::Clock>>,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: data_dir.into(),
            database_url: None,
            driver: DriverKind::WhatsApp,
            master_key: None,
            admin_token: None,
            body_limit_bytes: 1024 * 1024,
            warming_first_day_cap: 20,
            event_retention: Duration::from_secs(24 * 3600),
            webhook_retry: bzapper_core::retry::RetryPolicy::default(),
            health_threshold: bzapper_core::sending::DEFAULT_THRESHOLD,
            sim_qr_first: Duration::from_secs(60),
            sim_qr_next: Duration::from_secs(20),
            wa_url: None,
            wa_version: None,
            node_id: None,
            advertise_url: None,
            lease: Duration::from_secs(15),
            campaign_clock: None,
            media_max_bytes: 64 * 1024 * 1024,
            media_retention: Duration::from_secs(24 * 3600),
            media_fetch_timeout: Duration::from_secs(60),
        }
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("bzapper.db").display()),
        }
    }
}
