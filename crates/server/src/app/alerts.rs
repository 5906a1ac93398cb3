//! A tenant's alert target (where a short message goes when a number drops): setting, reading
//! and removing it. The HTTP layer has checked the URL and the alert kinds.

use std::sync::Arc;

use bzapper_store::{AlertConfig, Store};

use crate::app::error::{AppError, AppResult};
use crate::model::ids::TenantId;

pub struct Alerts {
    store: Arc<dyn Store>,
}

impl Alerts {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Alerts { store }
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
}
