//! Tenants and their API keys (the admin's use cases): creating a tenant with its first key,
//! listing them, deleting one with everything it has, adding and revoking keys. The HTTP layer
//! makes the keys (it owns the token format); a revoke or delete is announced to whatever the
//! key or tenant still holds open ([`Revocations`]).

use std::sync::Arc;

use bzapper_store::{ApiKeyRecord, Store, Tenant};

use crate::app::error::{AppError, AppResult};
use crate::app::revocations::{Revocations, Revoked};
use crate::model::ids::TenantId;
use crate::runtime::scheduler::Scheduler;
use crate::runtime::supervisor::Supervisor;

pub struct Tenants {
    store: Arc<dyn Store>,
    /// Logs out and drops a deleted tenant's numbers.
    supervisor: Arc<Supervisor>,
    /// Holds per-tenant pool state, dropped with the tenant.
    scheduler: Arc<Scheduler>,
    /// Ends a revoked key's or deleted tenant's cached keys and event streams.
    revocations: Arc<Revocations>,
}

impl Tenants {
    pub fn new(
        store: Arc<dyn Store>,
        supervisor: Arc<Supervisor>,
        scheduler: Arc<Scheduler>,
        revocations: Arc<Revocations>,
    ) -> Self {
        Tenants { store, supervisor, scheduler, revocations }
    }

    /// Stores the tenant and its first key together.
    pub async fn create(&self, tenant: &Tenant, first_key: &ApiKeyRecord) -> AppResult<()> {
        Ok(self.store.create_tenant(tenant, first_key).await?)
    }

    /// Every tenant.
    pub async fn list(&self) -> AppResult<Vec<Tenant>> {
        Ok(self.store.list_tenants().await?)
    }

    /// Deletes the tenant with its keys and instances, each instance logged out first.
    pub async fn delete(&self, id: &TenantId) -> AppResult<()> {
        if self.store.get_tenant(id).await?.is_none() {
            return Err(AppError::no_such_resource());
        }
        for rec in self.store.list_instances(id).await? {
            self.supervisor.delete(&rec).await.map_err(AppError::internal)?;
        }
        let deleted = self.store.delete_tenant(id).await?;
        self.scheduler.forget_tenant(id).await;
        self.revocations.announce(Revoked::Tenant(id.clone())).await;
        match deleted {
            true => Ok(()),
            // Deleted meanwhile by another request.
            false => Err(AppError::no_such_resource()),
        }
    }

    /// Adds a key to an existing tenant (`key.tenant_id`).
    /// The API key with this public id, with its hash (the caller compares in constant time).
    pub async fn find_key(&self, key_id: &str) -> AppResult<Option<ApiKeyRecord>> {
        Ok(self.store.find_api_key(key_id).await?)
    }

    pub async fn add_key(&self, key: &ApiKeyRecord) -> AppResult<()> {
        if self.store.get_tenant(&key.tenant_id).await?.is_none() {
            return Err(AppError::no_such_resource());
        }
        Ok(self.store.add_api_key(key).await?)
    }

    /// Revokes one of the tenant's keys.
    pub async fn revoke_key(&self, tenant: &TenantId, key_id: &str) -> AppResult<()> {
        match self.store.revoke_api_key(tenant, key_id).await? {
            true => {
                self.revocations.announce(Revoked::Key(key_id.to_string())).await;
                Ok(())
            }
            false => Err(AppError::no_such_resource()),
        }
    }
}
