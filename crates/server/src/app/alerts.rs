//! A tenant's alert target (where a short message goes when a number drops): setting, reading
//! and removing it; and the alerts made for it (their deliveries), listed and sent again. The
//! HTTP layer has checked the URL, the alert kinds and the list's query.

use std::sync::Arc;

use bzapper_store::{AlertConfig, AlertDeliveryFilter, AlertDeliveryRecord, Store};

use crate::app::error::{AppError, AppResult};
use crate::model::ids::TenantId;
use crate::model::time::now;
use crate::runtime::alerts::AlertWorker;

pub struct Alerts {
    store: Arc<dyn Store>,
    /// Woken when an alert is queued again, so that it goes out now rather than at the next
    /// scan.
    worker: Arc<AlertWorker>,
}

impl Alerts {
    pub fn new(store: Arc<dyn Store>, worker: Arc<AlertWorker>) -> Self {
        Alerts { store, worker }
    }

    /// Sets (or replaces) the tenant's alert target.
    pub async fn put(&self, config: &AlertConfig) -> AppResult<()> {
        Ok(self.store.put_alert(config).await?)
    }

    /// The tenant's alert target.
    pub async fn get(&self, tenant: &TenantId) -> AppResult<AlertConfig> {
        self.store.get_alert(tenant).await?.ok_or_else(AppError::no_such_resource)
    }

    /// Stops the tenant's alerts.
    pub async fn delete(&self, tenant: &TenantId) -> AppResult<()> {
        match self.store.delete_alert(tenant).await? {
            true => Ok(()),
            false => Err(AppError::no_such_resource()),
        }
    }

    /// The tenant's alerts, newest first.
    pub async fn deliveries(
        &self,
        tenant: &TenantId,
        filter: &AlertDeliveryFilter,
    ) -> AppResult<Vec<AlertDeliveryRecord>> {
        Ok(self.store.list_alert_deliveries(tenant, filter).await?)
    }

    /// Queues one of the tenant's alerts again, due now (a failed one included), and wakes
    /// the sender; the alert as it stands after that.
    pub async fn retry(&self, tenant: &TenantId, id: &str) -> AppResult<AlertDeliveryRecord> {
        if !self.store.requeue_alert(tenant, id, now()).await? {
            return Err(AppError::no_such_resource());
        }
        self.worker.poke();
        self.store.get_alert_delivery(tenant, id).await?.ok_or_else(AppError::no_such_resource)
    }
}
