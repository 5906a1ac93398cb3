//! Managing numbers: the use cases behind `/v1/instances` — create and start, read with live
//! figures, change settings, connect, disconnect, log out, delete, the QR code and the pairing
//! code. The HTTP layer has already checked the request; the state machine is the supervisor's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bzapper_core::{Phone, Status};
use bzapper_driver::PairCode;
use bzapper_store::{InstanceRecord, Store, StoreError};
use chrono::{DateTime, Utc};

use crate::app::error::{AppError, AppResult};
use crate::app::pools::check_pool_room;
use crate::app::quotas::{self, QuotaLimits};
use crate::events::EventType;
use crate::model::ids::{InstanceId, TenantId};
use crate::runtime::leases::LeaseKeeper;
use crate::runtime::scheduler::Scheduler;
use crate::runtime::supervisor::{QrCode, Supervisor, SupervisorError};

/// How long a QR request waits for the first code of a number that is just starting.
const QR_WAIT: Duration = Duration::from_secs(5);

/// Live figures of a number that the record alone does not hold.
#[derive(Default, Clone, Copy)]
pub struct Live {
    pub health: Option<(u8, bool)>,
    pub sent_today: u64,
    pub received_today: u64,
    /// When its re-warm ends, while it is re-warming.
    pub rewarm_until: Option<DateTime<Utc>>,
    /// Why it could not send now (see `Scheduler::resting`); `None` when it could.
    pub resting: Option<&'static str>,
}

pub struct Instances {
    store: Arc<dyn Store>,
    supervisor: Arc<Supervisor>,
    scheduler: Arc<Scheduler>,
    /// Which node holds which number (a cluster node only).
    leases: Option<Arc<LeaseKeeper>>,
    quotas: QuotaLimits,
    /// One creation at a time (check, then insert), so that two cannot both take the last
    /// place of a quota. Creating a number is rare; its start runs outside the lock.
    creating: tokio::sync::Mutex<()>,
}

impl Instances {
    pub fn new(
        store: Arc<dyn Store>,
        supervisor: Arc<Supervisor>,
        scheduler: Arc<Scheduler>,
        leases: Option<Arc<LeaseKeeper>>,
        quotas: QuotaLimits,
    ) -> Self {
        Instances { store, supervisor, scheduler, leases, quotas, creating: Default::default() }
    }

    /// Stores a new number and starts it (`qr_pending` until a phone links it); the record
    /// with its state after the start.
    pub async fn create(&self, mut rec: InstanceRecord) -> AppResult<InstanceRecord> {
        {
            let _one_at_a_time = self.creating.lock().await;
            let tenant = TenantId::new(rec.tenant_id.as_str());
            let limit = self.quotas.instances;
            if !limit.is_unlimited() {
                let n = self.store.count_instances(&tenant).await?;
                quotas::check(limit, n, 1, "instances per tenant", None)?;
            }
            check_pool_room(&*self.store, self.quotas.pools, &tenant, &rec.pool).await?;
            self.store.create_instance(&rec).await.map_err(name_taken)?;
        }
        if let Some(leases) = &self.leases {
            // Nobody else knows the number yet: this node takes it.
            leases.place(&rec.id).await?;
        }
        rec.state = self.supervisor.start(&rec).await.map_err(supervisor_error)?;
        Ok(rec)
    }

    /// The tenant's number `id`.
    pub async fn get(&self, tenant_id: &TenantId, id: &InstanceId) -> AppResult<InstanceRecord> {
        self.store.get_instance(tenant_id, id).await?.ok_or_else(AppError::no_such_resource)
    }

    pub async fn list(&self, tenant_id: &TenantId) -> AppResult<Vec<InstanceRecord>> {
        Ok(self.store.list_instances(tenant_id).await?)
    }

    /// A page of [`Instances::list`]: at most `limit` numbers after `after`.
    pub async fn list_page(
        &self,
        tenant_id: &TenantId,
        after: Option<&bzapper_store::InstanceKey>,
        limit: u32,
    ) -> AppResult<Vec<InstanceRecord>> {
        Ok(self.store.list_instances_page(tenant_id, after, limit).await?)
    }

    /// Live figures of the tenant's numbers (all, or those given), by instance id: health,
    /// re-warming and why it rests in the scheduler, and today's sent and received counts.
    pub async fn live(
        &self,
        tenant_id: &TenantId,
        recs: &[InstanceRecord],
    ) -> AppResult<HashMap<String, Live>> {
        let now = Utc::now();
        let day_start = now.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let rewarm = self.scheduler.rewarm();
        let mut out: HashMap<String, Live> = recs
            .iter()
            .map(|r| {
                let live = Live {
                    health: self.scheduler.health(&r.id),
                    rewarm_until: rewarm.active_until(r.rewarm_from, now),
                    resting: self.scheduler.resting(&r.id),
                    ..Live::default()
                };
                (r.id.clone(), live)
            })
            .collect();
        for (id, n) in self.store.count_sent_by_instance(tenant_id, day_start).await? {
            if let Some(l) = out.get_mut(&id) {
                l.sent_today = n;
            }
        }
        for (id, n) in self
            .store
            .count_events_by_instance(tenant_id, EventType::MessageReceived.as_str(), day_start)
            .await?
        {
            if let Some(l) = out.get_mut(&id) {
                l.received_today = n;
            }
        }
        Ok(out)
    }

    /// Stores changed settings (checked by the caller); a new pool or limits take effect for
    /// the next send, a new proxy at the next connect, the call settings at the next call.
    /// `always_online` turned on announces a connected number `available` at once.
    pub async fn update_settings(&self, rec: &InstanceRecord) -> AppResult<()> {
        let tenant = TenantId::new(rec.tenant_id.as_str());
        check_pool_room(&*self.store, self.quotas.pools, &tenant, &rec.pool).await?;
        let was_online = self.store.get_instance(&tenant, &rec.id).await?.map(|r| r.always_online);
        if !self.store.update_instance_settings(rec).await.map_err(name_taken)? {
            return Err(AppError::no_such_resource());
        }
        self.scheduler.number_changed(rec, None).await;
        if rec.always_online && was_online == Some(false) {
            self.supervisor.announce_online_now(&rec.id).await;
        }
        Ok(())
    }

    /// Logs the number out, wipes its session and deletes it.
    pub async fn delete(&self, rec: &InstanceRecord) -> AppResult<()> {
        self.supervisor.delete(rec).await.map_err(supervisor_error)
    }

    /// Connects the number (a QR code when it has no session); a running number is left as it is.
    pub async fn connect(&self, rec: &InstanceRecord) -> AppResult<()> {
        self.supervisor.start(rec).await.map(|_| ()).map_err(supervisor_error)
    }

    /// Disconnects the number and keeps its session.
    pub async fn disconnect(&self, rec: &InstanceRecord) -> AppResult<()> {
        self.supervisor.stop(rec).await.map(|_| ()).map_err(supervisor_error)
    }

    /// Unlinks the number and wipes its session.
    pub async fn logout(&self, rec: &InstanceRecord) -> AppResult<()> {
        self.supervisor.logout(rec).await.map(|_| ()).map_err(supervisor_error)
    }

    /// The current QR code of a number waiting to be linked.
    pub async fn qr(&self, rec: &InstanceRecord) -> AppResult<QrCode> {
        if rec.state.status != Status::QrPending {
            return Err(not_pending(rec));
        }
        self.supervisor.qr(&rec.id, QR_WAIT).await.ok_or_else(|| not_pending(rec))
    }

    /// A pairing code to link a number waiting to be linked, without scanning.
    pub async fn pair_code(&self, rec: &InstanceRecord, phone: &Phone) -> AppResult<PairCode> {
        if rec.state.status != Status::QrPending {
            return Err(not_pending(rec));
        }
        self.supervisor.pair_code(&rec.id, phone).await.map_err(supervisor_error)
    }
}

fn not_pending(rec: &InstanceRecord) -> AppError {
    AppError::conflict(
        "not_pending",
        format!("the instance is {}, not qr_pending", rec.state.status.as_str()),
    )
}

fn name_taken(e: StoreError) -> AppError {
    match e {
        StoreError::Conflict(_) => AppError::conflict(
            "name_taken",
            "an instance with this name already exists in this tenant",
        ),
        other => other.into(),
    }
}

fn supervisor_error(e: SupervisorError) -> AppError {
    match e {
        SupervisorError::Refused(r) => AppError::conflict("invalid_state", r.to_string()),
        SupervisorError::NotRunning
        | SupervisorError::Driver(bzapper_driver::DriverError::NotPairing) => {
            AppError::conflict("not_pending", "the instance is not waiting to be linked")
        }
        // WhatsApp refused or could not be reached (a pairing code it would not give): the
        // network's answer, never the gateway's own failure.
        SupervisorError::Driver(e) => AppError::Driver(e),
        other => AppError::internal(other),
    }
}

#[cfg(test)]
mod tests {
    use bzapper_driver::DriverError;

    use super::*;

    #[test]
    fn a_refusal_from_whatsapp_is_the_networks_answer_not_an_internal_error() {
        let refused = supervisor_error(SupervisorError::Driver(DriverError::rejected("no")));
        assert!(matches!(refused, AppError::Driver(DriverError::Rejected { .. })), "{refused:?}");
        let unreachable =
            supervisor_error(SupervisorError::Driver(DriverError::Transport("down".into())));
        assert!(matches!(unreachable, AppError::Driver(DriverError::Transport(_))));
        let not_pairing = supervisor_error(SupervisorError::Driver(DriverError::NotPairing));
        assert!(matches!(not_pairing, AppError::Conflict { code: "not_pending", .. }));
        let store = supervisor_error(SupervisorError::Store(StoreError::Database("x".into())));
        assert!(matches!(store, AppError::Internal(_)));
    }
}
