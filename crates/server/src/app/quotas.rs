//! Per-tenant quotas: the operator's ceilings (`QuotaLimits`, each 0 for unlimited) and the
//! refusals the use cases answer with when a tenant would pass one (429 `quota_exceeded`,
//! naming the limit and its value). Also the count of each tenant's open event streams, the
//! one quota kept only in memory (a stream lives no longer than the process).
//!
//! Counts are read where they are cheap: numbers, webhooks, pools and campaigns from the
//! store at their (rare) creation, under one lock per kind so that two concurrent creations
//! cannot both take the last place; queued messages from the scheduler's in-memory counters
//! (never a store round-trip on `POST /v1/messages`); media bytes from the tenant's files.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bzapper_core::quota::Limit;

use crate::app::error::AppError;
use crate::model::ids::TenantId;

/// The operator's ceilings (`bzapper serve --max-*`); `Limit(0)` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaLimits {
    /// Messages `queued` or `sending` per tenant (campaign messages excepted: see
    /// `campaign_recipients`).
    pub queued_per_tenant: Limit,
    /// The same per pool of a tenant.
    pub queued_per_pool: Limit,
    pub instances: Limit,
    pub webhooks: Limit,
    /// Pools a tenant names (by `PUT /v1/pools/{name}` or an instance's `pool`), `default`
    /// included.
    pub pools: Limit,
    /// Campaigns running, scheduled or paused per tenant.
    pub campaigns_in_flight: Limit,
    /// Recipients of those campaigns, together.
    pub campaign_recipients: Limit,
    /// Bytes of media files stored for a tenant (uploads, and files being sent).
    pub media_bytes: Limit,
    /// Open `GET /v1/events` streams per tenant (all its keys together).
    pub sse_streams: Limit,
}

impl QuotaLimits {
    /// No ceiling at all.
    pub fn unlimited() -> Self {
        let u = Limit::UNLIMITED;
        QuotaLimits {
            queued_per_tenant: u,
            queued_per_pool: u,
            instances: u,
            webhooks: u,
            pools: u,
            campaigns_in_flight: u,
            campaign_recipients: u,
            media_bytes: u,
            sse_streams: u,
        }
    }
}

/// How long a client refused for a full queue is asked to wait (`Retry-After`): the queue
/// drains at the numbers' human pace, a few sends a minute each, so sooner is pointless.
pub const QUEUE_RETRY_AFTER_SECS: u64 = 30;

/// The refusal for passing `limit`: which limit, its value, and (`retry_after`) whether
/// waiting helps.
pub fn exceeded(what: &str, limit: Limit, retry_after: Option<u64>) -> AppError {
    AppError::QuotaExceeded {
        message: format!("quota exceeded: at most {} {what}", limit.0),
        retry_after_secs: retry_after,
    }
}

/// Refuses unless `adding` more fit beside `current` under `limit`.
pub fn check(
    limit: Limit,
    current: u64,
    adding: u64,
    what: &str,
    retry_after: Option<u64>,
) -> Result<(), AppError> {
    match limit.admits(current, adding) {
        true => Ok(()),
        false => Err(exceeded(what, limit, retry_after)),
    }
}

/// Each tenant's open event streams.
pub struct StreamSlots {
    limit: Limit,
    open: Arc<Mutex<HashMap<String, u64>>>,
}

/// One open stream: its place is given back when the stream ends (the guard is dropped).
pub struct StreamSlot {
    tenant: String,
    open: Arc<Mutex<HashMap<String, u64>>>,
}

impl StreamSlots {
    pub fn new(limit: Limit) -> Self {
        StreamSlots { limit, open: Arc::default() }
    }

    /// A place for one more stream of the tenant, or `quota_exceeded` (no `Retry-After`: a
    /// place frees only when the client closes one of its own streams).
    pub fn open(&self, tenant: &TenantId) -> Result<StreamSlot, AppError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(tenant.as_str().to_string()).or_default();
        check(self.limit, *n, 1, "open event streams per tenant", None)?;
        *n += 1;
        Ok(StreamSlot { tenant: tenant.as_str().to_string(), open: self.open.clone() })
    }

    /// The tenant's open streams now.
    pub fn count(&self, tenant: &TenantId) -> u64 {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(tenant.as_str()).copied().unwrap_or(0)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_names_the_limit_and_its_value() {
        let e = check(Limit(25), 25, 1, "webhooks per tenant", None).unwrap_err();
        match e {
            AppError::QuotaExceeded { message, retry_after_secs } => {
                assert_eq!(message, "quota exceeded: at most 25 webhooks per tenant");
                assert_eq!(retry_after_secs, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(check(Limit(25), 24, 1, "webhooks per tenant", None).is_ok());
        assert!(check(Limit(0), 1_000_000, 1, "webhooks per tenant", None).is_ok());
    }

    #[test]
    fn stream_slots_are_per_tenant_and_given_back_on_drop() {
        let slots = StreamSlots::new(Limit(2));
        let a = TenantId::new("ten_a");
        let b = TenantId::new("ten_b");
        let first = slots.open(&a).unwrap();
        let _second = slots.open(&a).unwrap();
        assert!(matches!(slots.open(&a), Err(AppError::QuotaExceeded { .. })));
        // Another tenant is not affected.
        let _other = slots.open(&b).unwrap();
        drop(first);
        assert_eq!(slots.count(&a), 1);
        let _again = slots.open(&a).unwrap();
        assert_eq!(slots.count(&a), 2);
    }
}
