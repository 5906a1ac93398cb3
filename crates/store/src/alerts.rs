//! Durable alerts: one delivery record per alert an event of the log calls for, made after a
//! stored cursor (so an event appended just before a crash still gets its alert) and retried
//! until delivered or given up. The alert target itself (URL, format, kinds) is
//! [`crate::AlertConfig`], kept by [`crate::WebhookStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Result;

/// Where an alert delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertStatus {
    /// Waiting for its next attempt.
    Pending,
    Delivered,
    /// Given up: retried until the retry window ended, or the tenant's alert target was
    /// removed. Can be sent again by API.
    Failed,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Pending => "pending",
            AlertStatus::Delivered => "delivered",
            AlertStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => AlertStatus::Pending,
            "delivered" => AlertStatus::Delivered,
            "failed" => AlertStatus::Failed,
            _ => return None,
        })
    }
}

/// One alert, as posted to the tenant's alert target.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertDeliveryRecord {
    /// Time-ordered (`alr_…`): newer alerts have greater ids.
    pub id: String,
    pub tenant_id: String,
    pub instance_id: Option<String>,
    /// The event that called for it: one alert per event.
    pub event_id: i64,
    /// `logged_out`, `banned` or `health_low`.
    pub kind: String,
    /// The human sentence.
    pub text: String,
    /// The exact body posted on every attempt.
    pub payload: String,
    pub status: AlertStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The outcome of one attempt at an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertAttempt {
    pub status: AlertStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub at: DateTime<Utc>,
}

/// Which of a tenant's alert deliveries to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertDeliveryFilter {
    pub status: Option<AlertStatus>,
    /// Only those with an id below this one (the previous page's last).
    pub before: Option<String>,
    pub limit: u32,
}

/// Alert deliveries and the cursor of the alert fan-out. Rows go with their tenant.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// The last event id the alert fan-out has read; on a database that never had one, the
    /// newest event's (alerts start from the first start of a version that has them).
    async fn alert_cursor(&self) -> Result<i64>;
    /// Stores new alert deliveries and moves the alert cursor, in one transaction (a crash
    /// between the two neither loses nor doubles an alert). An alert of an event that already
    /// has one is left out; returns how many were stored.
    async fn enqueue_alerts(&self, alerts: &[AlertDeliveryRecord], cursor: i64) -> Result<u64>;
    /// Pending alerts due at `now`, taken round-robin across tenants: each tenant's oldest
    /// first, at most `per_tenant` of each, ordered by turn (every tenant's oldest, then
    /// every tenant's second…), at most `limit` in all.
    async fn due_alerts(
        &self,
        now: DateTime<Utc>,
        per_tenant: u32,
        limit: u32,
    ) -> Result<Vec<AlertDeliveryRecord>>;
    /// The alert delivery, if it is the tenant's.
    async fn get_alert_delivery(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<AlertDeliveryRecord>>;
    /// The tenant's alert deliveries, newest first.
    async fn list_alert_deliveries(
        &self,
        tenant_id: &str,
        filter: &AlertDeliveryFilter,
    ) -> Result<Vec<AlertDeliveryRecord>>;
    /// Records one attempt's outcome. An outcome whose attempt number is below the stored one
    /// changes nothing.
    async fn record_alert_attempt(&self, id: &str, attempt: &AlertAttempt) -> Result<()>;
    /// Makes the tenant's alert delivery pending again, due at `now` (a re-send asked for by
    /// API). False when it is not the tenant's.
    async fn requeue_alert(&self, tenant_id: &str, id: &str, now: DateTime<Utc>) -> Result<bool>;
    /// Removes delivered and failed alerts last changed before `before`; returns how many.
    async fn prune_alert_deliveries(&self, before: DateTime<Utc>) -> Result<u64>;
}
