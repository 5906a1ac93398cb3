//! The use cases the HTTP layer calls: accepting a message, managing numbers, what goes through
//! a number's live connection, contact checks, campaigns, webhooks, tenants and their keys,
//! alerts, pools, the event feed, the gateway's status and time series, the simulated network. Nothing here
//! knows HTTP; failures are [`AppError`]s. [`App`] holds one of each, built once at start.

pub mod alerts;
pub mod campaigns;
pub mod chats;
pub mod contacts;
mod error;
pub mod feed;
pub mod instances;
pub mod live;
pub mod media_quota;
pub mod messages;
pub mod pools;
pub mod quotas;
pub mod revocations;
pub mod sim;
pub mod simulator;
pub mod stats;
pub mod status;
pub mod tenants;
pub mod webhooks;

use std::sync::Arc;

use bzapper_store::Store;

pub use error::{AppError, AppResult};

use crate::cluster::Cluster;
use crate::events::recorder::Recorder;
use crate::media::MediaStore;
use crate::runtime::alerts::AlertWorker;
use crate::runtime::campaigns::Campaigns;
use crate::runtime::leases::LeaseKeeper;
use crate::runtime::scheduler::Scheduler;
use crate::runtime::supervisor::Supervisor;
use crate::runtime::webhooks::WebhookWorker;

/// Every use case, each holding just the handles it needs.
pub struct App {
    pub messages: messages::Messages,
    pub instances: instances::Instances,
    pub live: live::LiveNumbers,
    /// Conversations: the chats of the tenant's numbers and their messages.
    pub chats: chats::Chats,
    pub contacts: Arc<contacts::ContactChecker>,
    pub campaigns: campaigns::CampaignUseCases,
    pub webhooks: webhooks::WebhookUseCases,
    pub tenants: tenants::Tenants,
    /// What a revoked key or deleted tenant ends (cached keys, event streams), on every node.
    pub revocations: Arc<revocations::Revocations>,
    pub alerts: alerts::Alerts,
    pub pools: pools::Pools,
    pub feed: Arc<feed::EventFeed>,
    pub status: status::GatewayStatus,
    /// The dashboard's time series.
    pub stats: stats::Stats,
    pub simulator: simulator::Simulator,
    /// Media files (uploads, reads, deletes, peer copies): the media service is the use case.
    pub media: Arc<MediaStore>,
    /// Uploads within the tenant's media quota.
    pub media_quota: media_quota::MediaQuota,
    /// Each tenant's open event streams, within its quota.
    pub streams: quotas::StreamSlots,
}

/// What the use cases are built from: the runtime and services start-up built.
pub struct Parts {
    pub store: Arc<dyn Store>,
    /// The contact checker, shared with the scheduler's first-contact pre-check.
    pub contacts: Arc<contacts::ContactChecker>,
    pub supervisor: Arc<Supervisor>,
    pub scheduler: Arc<Scheduler>,
    pub recorder: Arc<Recorder>,
    pub media: Arc<MediaStore>,
    pub webhooks: Arc<WebhookWorker>,
    pub alerts: Arc<AlertWorker>,
    pub campaigns: Arc<Campaigns>,
    pub cluster: Option<Arc<Cluster>>,
    pub leases: Option<Arc<LeaseKeeper>>,
    pub sim: Option<Arc<dyn sim::SimControl>>,
    /// The per-tenant ceilings.
    pub quotas: quotas::QuotaLimits,
    /// How long chats and their messages show (`None`: forever).
    pub chat_retention: Option<std::time::Duration>,
    /// How the time series are sampled (their tiers answer reads).
    pub series: crate::runtime::series::settings::SeriesSettings,
}

impl App {
    pub fn new(p: Parts) -> Self {
        let store = &p.store;
        let revocations = revocations::Revocations::new(store.clone(), p.cluster.clone());
        let q = p.quotas;
        App {
            messages: messages::Messages::new(
                store.clone(),
                p.scheduler.clone(),
                p.media.clone(),
                q,
            ),
            instances: instances::Instances::new(
                store.clone(),
                p.supervisor.clone(),
                p.scheduler.clone(),
                p.leases.clone(),
                q,
            ),
            live: live::LiveNumbers::new(store.clone(), p.supervisor.clone(), p.media.clone()),
            chats: chats::Chats::new(store.clone(), p.supervisor.clone(), p.chat_retention),
            contacts: p.contacts.clone(),
            campaigns: campaigns::CampaignUseCases::new(store.clone(), p.campaigns.clone(), q),
            webhooks: webhooks::WebhookUseCases::new(store.clone(), p.webhooks.clone(), q),
            tenants: tenants::Tenants::new(
                store.clone(),
                p.supervisor.clone(),
                p.scheduler.clone(),
                revocations.clone(),
            ),
            revocations,
            alerts: alerts::Alerts::new(store.clone(), p.alerts.clone()),
            pools: pools::Pools::new(store.clone(), p.scheduler.clone(), q),
            feed: Arc::new(feed::EventFeed::new(store.clone(), p.recorder.clone())),
            status: status::GatewayStatus::new(
                store.clone(),
                p.supervisor.clone(),
                p.scheduler.clone(),
                p.recorder.clone(),
                p.cluster.clone(),
            ),
            stats: stats::Stats::new(store.clone(), p.series),
            simulator: simulator::Simulator::new(p.sim, store.clone(), p.supervisor),
            media_quota: media_quota::MediaQuota::new(p.media.clone(), q.media_bytes),
            streams: quotas::StreamSlots::new(q.sse_streams),
            media: p.media,
        }
    }
}
