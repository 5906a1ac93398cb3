//! A tenant's webhooks: storing, reading and removing them, their recent deliveries, and
//! sending one again now. The HTTP layer has already checked the URL, the event patterns and
//! the secret, and built the record.

use std::sync::Arc;

use bzapper_store::{DeliveryRecord, Store, WebhookRecord};

use crate::app::error::{AppError, AppResult};
use crate::app::quotas::{self, QuotaLimits};
use crate::model::ids::{TenantId, WebhookId};
use crate::model::time::now;
use crate::runtime::webhooks::WebhookWorker;

pub struct WebhookUseCases {
    store: Arc<dyn Store>,
    /// Woken when a delivery is queued again, so that it goes out now rather than at the next
    /// poll.
    worker: Arc<WebhookWorker>,
    quotas: QuotaLimits,
    /// One creation at a time (count, then insert), so that two cannot both take the last
    /// place.
    creating: tokio::sync::Mutex<()>,
}

impl WebhookUseCases {
    pub fn new(store: Arc<dyn Store>, worker: Arc<WebhookWorker>, quotas: QuotaLimits) -> Self {
        WebhookUseCases { store, worker, quotas, creating: Default::default() }
    }

    /// Stores a new webhook; matching events are delivered to it from now on. A tenant with
    /// `--max-webhooks-per-tenant` of them already is refused (every event is written and
    /// posted once per matching webhook).
    pub async fn create(&self, webhook: &WebhookRecord) -> AppResult<()> {
        let _one_at_a_time = self.creating.lock().await;
        let limit = self.quotas.webhooks;
        if !limit.is_unlimited() {
            let tenant = TenantId::new(webhook.tenant_id.as_str());
            let n = self.store.list_webhooks(&tenant).await?.len() as u64;
            quotas::check(limit, n, 1, "webhooks per tenant", None)?;
        }
        Ok(self.store.create_webhook(webhook).await?)
    }

    /// The tenant's webhooks.
    pub async fn list(&self, tenant: &TenantId) -> AppResult<Vec<WebhookRecord>> {
        Ok(self.store.list_webhooks(tenant).await?)
    }

    /// One of the tenant's webhooks.
    pub async fn get(&self, tenant: &TenantId, id: &WebhookId) -> AppResult<WebhookRecord> {
        self.store.get_webhook(tenant, id).await?.ok_or_else(AppError::no_such_resource)
    }

    /// Replaces the webhook's secret; the replaced one stays valid until `previous_expires_at`.
    pub async fn rotate_secret(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        secret: &str,
        previous_expires_at: chrono::DateTime<chrono::Utc>,
    ) -> AppResult<WebhookRecord> {
        self.store
            .rotate_webhook_secret(tenant, id, secret, previous_expires_at)
            .await?
            .ok_or_else(AppError::no_such_resource)
    }

    /// Removes one of the tenant's webhooks (the store drops its deliveries with it).
    pub async fn delete(&self, tenant: &TenantId, id: &WebhookId) -> AppResult<()> {
        match self.store.delete_webhook(tenant, id).await? {
            true => Ok(()),
            false => Err(AppError::no_such_resource()),
        }
    }

    /// The webhook's latest `limit` deliveries, newest first.
    pub async fn deliveries(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        limit: u32,
    ) -> AppResult<Vec<DeliveryRecord>> {
        // Deliveries are keyed by webhook only: the webhook must be the tenant's.
        self.get(tenant, id).await?;
        Ok(self.store.list_deliveries(id, limit).await?)
    }

    /// Queues a delivery of the webhook again, due now (a dead-lettered one included), and
    /// wakes the worker; the delivery as it stands after that.
    pub async fn retry(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        delivery_id: &str,
    ) -> AppResult<DeliveryRecord> {
        self.get(tenant, id).await?;
        self.store.get_delivery(id, delivery_id).await?.ok_or_else(AppError::no_such_resource)?;
        self.store.requeue_delivery(delivery_id, now()).await?;
        self.worker.poke();
        self.store.get_delivery(id, delivery_id).await?.ok_or_else(AppError::no_such_resource)
    }
}
