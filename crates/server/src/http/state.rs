//! The state every handler shares.

use std::ops::Deref;
use std::sync::Arc;

use bzapper_store::Store;

use crate::cluster::Cluster;
use crate::events::recorder::Recorder;
use crate::http::key_cache::KeyCache;
use crate::media::MediaStore;
use crate::runtime::campaigns::Campaigns;
use crate::runtime::leases::LeaseKeeper;
use crate::runtime::scheduler::Scheduler;
use crate::runtime::supervisor::Supervisor;
use crate::runtime::webhooks::WebhookWorker;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Arc<dyn Store>,
    pub supervisor: Arc<Supervisor>,
    pub scheduler: Arc<Scheduler>,
    pub recorder: Arc<Recorder>,
    pub webhooks: Arc<WebhookWorker>,
    /// Campaigns: status changes, counts, capacity (the runner is its own task).
    pub campaigns: Arc<Campaigns>,
    /// API key records recently used (see `key_cache`).
    pub keys: KeyCache,
    /// SHA-256 of the admin token; the token itself is not kept.
    pub admin_token_hash: [u8; 32],
    /// Turns true when the gateway shuts down: open streams (SSE) end so that the graceful
    /// shutdown does not wait for them forever.
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// The simulated network's control, when the gateway runs on one (the simulated network,
    /// or the wire-level fake through its control API).
    pub sim: Option<Arc<dyn crate::app::sim::SimControl>>,
    /// This node among several (PostgreSQL); `None` when the gateway is the only node.
    pub cluster: Option<Arc<Cluster>>,
    /// Which node holds which number (with `cluster`).
    pub leases: Option<Arc<LeaseKeeper>>,
    /// Passes calls about a number on to the node holding it.
    pub forwarder: reqwest::Client,
    /// Media files on disk (uploads, fetched URLs, the inbound cache).
    pub media: Arc<MediaStore>,
    /// What goes through a number's live connection (groups, received media, contact checks).
    pub live: crate::app::live::LiveNumbers,
    /// Managing numbers.
    pub instances: crate::app::instances::Instances,
    /// Accepting and reading messages.
    pub messages: crate::app::messages::Messages,
    /// Managing webhooks and their deliveries.
    pub webhook_use_cases: crate::app::webhooks::WebhookUseCases,
    /// Tenants and their API keys (admin).
    pub tenants: crate::app::tenants::Tenants,
    /// The tenant's alert target.
    pub alerts: crate::app::alerts::Alerts,
    /// Pools and their rotation strategy.
    pub pools: crate::app::pools::Pools,
    /// Creating, reading, pausing, resuming and canceling campaigns.
    pub campaign_use_cases: crate::app::campaigns::CampaignUseCases,
    /// Which phones are on WhatsApp: the paced look-ups and their day-long cache.
    pub contacts: Arc<crate::app::contacts::ContactChecker>,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        AppState(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
