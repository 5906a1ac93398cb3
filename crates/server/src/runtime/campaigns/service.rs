//! The campaigns service, shared by the routes and the runner: status changes with their
//! events, cancelling, the counts and what the pool can do now.

use std::sync::Arc;

use bzapper_core::sending::WarmingSchedule;
use bzapper_core::{Limits, Reason, Status};
use bzapper_store::{
    CampaignRecord, CampaignStatus, InstanceRecord, MessageStatus, Store, StoreError,
};
use chrono::{DateTime, Utc};

use super::clock::Clock;

use super::estimate::NumberCapacity;
use super::progress::{self, NumberTotals, Totals};
use super::window::{ScheduleSpec, Window};
use crate::events::campaign::CampaignSnapshot;
use crate::events::message::MessageStatusChanged;
use crate::events::recorder::Recorder;
use crate::events::{CampaignKind, Event};
use crate::model::ids::{CampaignId, MessageId};
use crate::runtime::scheduler::Scheduler;

/// The role of the node that runs campaigns, when there are several.
pub const ROLE: &str = "campaigns";
/// The most recipients one campaign takes.
pub const MAX_RECIPIENTS: usize = 100_000;
/// The error of a queued message that a cancel took back.
pub const CANCELED_ERROR: &str = "campaign canceled";

/// What the API answers for a campaign's status: the stored one, except that a running
/// campaign outside its schedule window is `scheduled`.
pub fn reported_status(
    c: &CampaignRecord,
    window: Option<&Window>,
    now: DateTime<Utc>,
) -> &'static str {
    match c.status {
        CampaignStatus::Running if window.is_some_and(|w| !w.is_open(now)) => "scheduled",
        s => s.as_str(),
    }
}

/// The campaign's schedule window; a stored window that no longer parses (it was checked
/// when the campaign was accepted) counts as none, with a warning.
pub fn window_of(c: &CampaignRecord) -> Option<Window> {
    let v = c.schedule.as_ref()?;
    let parsed = serde_json::from_value::<ScheduleSpec>(v.clone())
        .map_err(|e| e.to_string())
        .and_then(|s| Window::parse(&s));
    match parsed {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(campaign = %c.id, error = %e, "the stored schedule is unreadable; ignoring it");
            None
        }
    }
}

/// A status change asked for by the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Cancel,
}

/// What became of an [`Action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done (and its event recorded).
    Changed,
    /// The campaign already was where the action leads.
    Already,
    /// The campaign has ended (canceled or finished); nothing changes it any more.
    Ended(CampaignStatus),
}

/// The campaigns service: shared by the routes and the runner.
pub struct Campaigns {
    pub store: Arc<dyn Store>,
    pub recorder: Arc<Recorder>,
    pub scheduler: Arc<Scheduler>,
    pub clock: Arc<dyn Clock>,
    warming: WarmingSchedule,
}

impl Campaigns {
    pub fn new(
        store: Arc<dyn Store>,
        recorder: Arc<Recorder>,
        scheduler: Arc<Scheduler>,
        clock: Arc<dyn Clock>,
        warming: WarmingSchedule,
    ) -> Arc<Self> {
        Arc::new(Campaigns { store, recorder, scheduler, clock, warming })
    }

    /// The campaign's totals and its numbers' counts, read now.
    pub async fn totals(
        &self,
        c: &CampaignRecord,
    ) -> Result<(Totals, Vec<NumberTotals>), StoreError> {
        let counts = self.store.campaign_message_counts(&c.id).await?;
        Ok(progress::totals(c, &counts))
    }

    /// The numbers of the pool that can take its messages now (connected, not banned, in
    /// rotation), from the tenant's `instances`.
    pub fn usable_numbers<'a>(
        &self,
        instances: &'a [InstanceRecord],
        pool: &str,
    ) -> Vec<&'a InstanceRecord> {
        instances
            .iter()
            .filter(|r| {
                r.pool == pool
                    && r.state.status == Status::Connected
                    && r.state.reason != Some(Reason::Banned)
                    // As the instance view: the scheduler's verdict, or the stored score when
                    // another node holds the number.
                    && self.scheduler.health(&r.id).is_none_or(|(_, healthy)| healthy)
            })
            .collect()
    }

    /// What each usable number of the pool can send (limits and today's warming cap).
    pub fn capacity(&self, numbers: &[&InstanceRecord], now: DateTime<Utc>) -> Vec<NumberCapacity> {
        numbers
            .iter()
            .map(|r| {
                let limits = Limits::default().merged(&r.limits).unwrap_or_default();
                let day_cap = self.warming.day_cap(
                    limits.per_day,
                    r.warming_days,
                    r.first_connected_at.map(|t| t.timestamp_millis()),
                    now.timestamp_millis(),
                );
                NumberCapacity { limits, day_cap }
            })
            .collect()
    }

    /// Pauses, resumes or cancels `c`, recording `campaign.paused` / `.resumed` / `.canceled`
    /// with the totals after the change. A cancel also takes the campaign's queued messages
    /// back: they fail with [`CANCELED_ERROR`].
    pub async fn apply(&self, c: &CampaignRecord, action: Action) -> Result<Outcome, StoreError> {
        use CampaignStatus::*;
        let (from, to, kind): (&[CampaignStatus], _, CampaignKind) = match action {
            Action::Pause => (&[Running], Paused, Event::CampaignPaused),
            Action::Resume => (&[Paused], Running, Event::CampaignResumed),
            Action::Cancel => (&[Running, Paused], Canceled, Event::CampaignCanceled),
        };
        let now = crate::model::time::now();
        if !self.store.set_campaign_status(&c.id, from, to, now).await? {
            let current = self.store.get_campaign(&c.tenant_id, &c.id).await?;
            let status = current.map_or(c.status, |c| c.status);
            if status == to {
                if to == Canceled {
                    // Harmless to repeat; finishes a cancel cut short by a crash.
                    self.withdraw_canceled(&c.tenant_id, &c.id).await?;
                }
                return Ok(Outcome::Already);
            }
            return match status {
                Running | Paused => {
                    // Moved between our read and our write (another request): try again on
                    // what is there now.
                    let fresh = CampaignRecord { status, ..c.clone() };
                    Box::pin(self.apply(&fresh, action)).await
                }
                ended => Ok(Outcome::Ended(ended)),
            };
        }
        if to == Canceled {
            self.withdraw_canceled(&c.tenant_id, &c.id).await?;
        }
        let changed = self.store.get_campaign(&c.tenant_id, &c.id).await?;
        let changed = changed.unwrap_or_else(|| CampaignRecord { status: to, ..c.clone() });
        self.record(&changed, kind).await;
        Ok(Outcome::Changed)
    }

    /// Records a `campaign.*` event (`kind` is its variant, e.g. `Event::CampaignCreated`)
    /// with the campaign's status and totals now.
    pub(crate) async fn record(&self, c: &CampaignRecord, kind: CampaignKind) {
        let totals = match self.totals(c).await {
            Ok((t, _)) => t,
            Err(e) => {
                tracing::warn!(campaign = %c.id, error = %e, "counting a campaign's messages failed");
                return;
            }
        };
        self.record_totals(c, kind, &totals).await;
    }

    pub(crate) async fn record_totals(
        &self,
        c: &CampaignRecord,
        kind: CampaignKind,
        totals: &Totals,
    ) {
        let status = reported_status(c, window_of(c).as_ref(), self.clock.now());
        let event = kind(CampaignSnapshot {
            campaign_id: CampaignId::new(c.id.as_str()),
            name: c.name.clone(),
            status,
            totals: totals.clone(),
        });
        let what = event.kind();
        if let Err(e) = self.recorder.record(&c.tenant_id, None, event).await {
            tracing::warn!(campaign = %c.id, error = %e, "recording {what} failed");
        }
    }

    /// Takes a canceled campaign's queued messages out of this node's queue and fails every
    /// queued one in the store (recording their `message.status`). Safe to repeat; every node
    /// does it when it sees `campaign.canceled`.
    pub(crate) async fn withdraw_canceled(
        &self,
        tenant_id: &str,
        campaign_id: &str,
    ) -> Result<(), StoreError> {
        self.scheduler.withdraw_campaign(campaign_id);
        let now = crate::model::time::now();
        let failed =
            self.store.fail_queued_campaign_messages(campaign_id, CANCELED_ERROR, now).await?;
        let mut recordings = Vec::with_capacity(failed.len());
        for id in failed {
            let event = Event::MessageStatus(MessageStatusChanged {
                message_id: MessageId::from(id),
                status: MessageStatus::Failed.as_str(),
                instance_id: None,
                error: Some(CANCELED_ERROR.to_string()),
            });
            recordings.push(self.recorder.submit(tenant_id, None, event).await);
        }
        for r in recordings {
            if let Err(e) = r.wait().await {
                tracing::warn!(error = %e, "recording message.status failed");
            }
        }
        Ok(())
    }
}
