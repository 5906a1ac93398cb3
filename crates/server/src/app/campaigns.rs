//! Campaigns as use cases: creating one (the idempotency key, the pools it may name, the
//! insert with every recipient and its race, waking the runner), reading them with their
//! progress and finish estimate, and pausing, resuming or canceling. The HTTP layer checks the
//! body and shapes the answer; the sending is the runner's (`runtime::campaigns`), and the
//! status changes and counts are its [`Campaigns`] service's.

use std::sync::Arc;

use bzapper_store::{
    CampaignRecipient, CampaignRecord, CampaignStatus, InstanceRecord, Store, StoreError,
};
use chrono::{DateTime, Utc};

use crate::app::error::{AppError, AppResult};
use crate::app::quotas::{self, QuotaLimits};
use crate::events::Event;
use crate::model::ids::{CampaignId, TenantId};
use crate::runtime::campaigns::estimate;
use crate::runtime::campaigns::progress::{NumberTotals, Totals};
use crate::runtime::campaigns::window::Window;
use crate::runtime::campaigns::{reported_status, window_of, Action, Campaigns, Outcome};

pub struct CampaignUseCases {
    store: Arc<dyn Store>,
    campaigns: Arc<Campaigns>,
    quotas: QuotaLimits,
    /// One creation at a time (count, then insert), so that two cannot both take the last
    /// place of a quota.
    creating: tokio::sync::Mutex<()>,
}

/// Where a campaign stands now: what the API reports about it.
pub struct CampaignReport {
    pub campaign: CampaignRecord,
    /// The stored status, except `scheduled` for a running campaign outside its window.
    pub status: &'static str,
    /// Its schedule window, when it has one.
    pub window: Option<Window>,
    /// The time (of the campaigns' clock) the report is for.
    pub now: DateTime<Utc>,
    pub totals: Totals,
    pub numbers: Vec<NumberTotals>,
    /// `None` unless running (and a number can send).
    pub estimated_finish_at: Option<DateTime<Utc>>,
    /// Connected numbers of the pool that are in rotation.
    pub usable_numbers: u32,
    /// What those numbers send per hour while the window is open.
    pub per_hour: f64,
}

/// What a create request came to.
pub enum Created {
    /// A new campaign, stored with its recipients.
    New(CampaignReport),
    /// The campaign an earlier request with the same idempotency key created.
    Earlier(CampaignReport),
}

/// A campaign as the client checked and built it: the record and its recipients.
pub type Draft = (CampaignRecord, Vec<CampaignRecipient>);

impl CampaignUseCases {
    pub fn new(store: Arc<dyn Store>, campaigns: Arc<Campaigns>, quotas: QuotaLimits) -> Self {
        CampaignUseCases { store, campaigns, quotas, creating: Default::default() }
    }

    /// Creates a campaign. An idempotency key already used answers the campaign it created,
    /// and nothing is checked or stored. Otherwise `build` checks the request against the
    /// tenant's pool names and builds the campaign (its failures come back as they are: the
    /// caller's checks run in its own order, between the key and the insert).
    pub async fn create<E: From<AppError>>(
        &self,
        tenant: &TenantId,
        key: Option<String>,
        build: impl FnOnce(&[String]) -> Result<Draft, E>,
    ) -> Result<Created, E> {
        if let Some(k) = &key {
            if let Some(first) = self.find_by_key(tenant, k).await? {
                return Ok(Created::Earlier(self.report_one(first).await?));
            }
        }
        let pools: Vec<String> = self
            .store
            .list_pools(tenant)
            .await
            .map_err(AppError::from)?
            .into_iter()
            .map(|p| p.name)
            .collect();
        let (mut campaign, recipients) = build(&pools)?;
        campaign.idempotency_key = key.clone();
        let one_at_a_time = self.creating.lock().await;
        self.check_room(tenant, recipients.len() as u64).await?;
        let created = self.store.create_campaign(&campaign, &recipients).await;
        drop(one_at_a_time);
        match created {
            Ok(()) => {}
            // The same key raced in from another request: answer what that one created.
            Err(StoreError::Conflict(_)) if key.is_some() => {
                let k = key.as_deref().unwrap_or_default();
                let first = self.find_by_key(tenant, k).await?;
                let first =
                    first.ok_or_else(|| AppError::internal("an idempotency key vanished"))?;
                return Ok(Created::Earlier(self.report_one(first).await?));
            }
            Err(e) => return Err(AppError::from(e).into()),
        }
        // Wakes the runner (on whichever node runs campaigns).
        self.campaigns.record(&campaign, Event::CampaignCreated).await;
        Ok(Created::New(self.report_one(campaign).await?))
    }

    /// Refuses a campaign of `recipients` the tenant has no room for: at most
    /// `campaigns_in_flight` campaigns running, scheduled or paused, and at most
    /// `campaign_recipients` recipients in those together (a campaign's recipients count
    /// until it finishes or is canceled).
    async fn check_room(&self, tenant: &TenantId, recipients: u64) -> AppResult<()> {
        let (campaigns, total) = (self.quotas.campaigns_in_flight, self.quotas.campaign_recipients);
        if campaigns.is_unlimited() && total.is_unlimited() {
            return Ok(());
        }
        let in_flight: Vec<CampaignRecord> = self
            .store
            .list_campaigns(tenant)
            .await?
            .into_iter()
            .filter(|c| matches!(c.status, CampaignStatus::Running | CampaignStatus::Paused))
            .collect();
        let held: u64 = in_flight.iter().map(|c| u64::from(c.recipients)).sum();
        quotas::check(
            campaigns,
            in_flight.len() as u64,
            1,
            "campaigns in flight per tenant",
            None,
        )?;
        quotas::check(total, held, recipients, "campaign recipients in flight per tenant", None)
    }

    /// The tenant's campaigns, newest first.
    pub async fn list(&self, tenant: &TenantId) -> AppResult<Vec<CampaignReport>> {
        let campaigns = self.store.list_campaigns(tenant).await?;
        let instances = self.store.list_instances(tenant).await?;
        let mut reports = Vec::with_capacity(campaigns.len());
        for c in campaigns {
            reports.push(self.report(c, &instances).await?);
        }
        Ok(reports)
    }

    /// One of the tenant's campaigns.
    pub async fn get(&self, tenant: &TenantId, id: &CampaignId) -> AppResult<CampaignReport> {
        let c = self.find(tenant, id).await?;
        self.report_one(c).await
    }

    /// Pauses, resumes or cancels one of the tenant's campaigns; the campaign after that. An
    /// action already done is no error; an ended campaign is a 409 `campaign_ended`.
    pub async fn apply(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        action: Action,
    ) -> AppResult<CampaignReport> {
        let c = self.find(tenant, id).await?;
        if let Outcome::Ended(status) = self.campaigns.apply(&c, action).await? {
            return Err(AppError::conflict(
                "campaign_ended",
                format!("the campaign is {}; it can no longer change", status.as_str()),
            ));
        }
        // Read again: the change (or a concurrent one) moved its status and times.
        let c = self.find(tenant, id).await?;
        self.report_one(c).await
    }

    async fn find(&self, tenant: &TenantId, id: &CampaignId) -> AppResult<CampaignRecord> {
        self.store.get_campaign(tenant, id).await?.ok_or_else(AppError::no_such_resource)
    }

    async fn find_by_key(&self, tenant: &TenantId, key: &str) -> AppResult<Option<CampaignRecord>> {
        Ok(self.store.find_campaign_by_key(tenant, key).await?)
    }

    async fn report_one(&self, c: CampaignRecord) -> AppResult<CampaignReport> {
        let instances = self.store.list_instances(&c.tenant_id).await?;
        self.report(c, &instances).await
    }

    /// The report on `c`, with `instances` (the tenant's) for the capacity and estimate.
    async fn report(
        &self,
        c: CampaignRecord,
        instances: &[InstanceRecord],
    ) -> AppResult<CampaignReport> {
        let (totals, numbers) = self.campaigns.totals(&c).await?;
        let now = self.campaigns.clock.now();
        let window = window_of(&c);
        let usable = self.campaigns.usable_numbers(instances, &c.pool);
        let capacity = self.campaigns.capacity(&usable, now);
        let per_hour =
            estimate::pool_rate(&capacity, c.template.chars().count(), window.as_ref(), now);
        let estimated_finish_at = match c.status {
            CampaignStatus::Running => {
                estimate::finish_at(now, totals.remaining(), per_hour, window.as_ref())
            }
            _ => None,
        };
        Ok(CampaignReport {
            status: reported_status(&c, window.as_ref(), now),
            usable_numbers: usable.len() as u32,
            campaign: c,
            window,
            now,
            totals,
            numbers,
            estimated_finish_at,
            per_hour,
        })
    }
}
