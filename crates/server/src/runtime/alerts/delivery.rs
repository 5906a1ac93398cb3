//! An alert's attempt: read back when it came from a scan, posted to the tenant's target as
//! it is now, its outcome recorded and a failure retried with backoff until it is given up.
//! Logs name the target's host only: a Slack URL's path is its secret.

use std::sync::Arc;

use bzapper_store::{AlertAttempt, AlertConfig, AlertDeliveryRecord, AlertStatus, StoreError};
use chrono::{DateTime, Utc};

use crate::runtime::delivery::outcome::{self, Answer, Failure, Next};
use crate::runtime::delivery::{Courier, Engine};

use super::kinds::log_host;
use super::AlertWorker;

/// What stands between an alert and its target.
enum Target {
    Post(AlertConfig),
    /// The tenant removed its target, or no longer wants this kind: the alert fails.
    Gone(&'static str),
    /// The target could not be read now: the alert is left for a later scan.
    Unknown,
}

impl Courier for AlertWorker {
    type Item = AlertDeliveryRecord;
    const WHAT: &'static str = "alert";

    fn engine(&self) -> &Engine<AlertDeliveryRecord> {
        &self.engine
    }

    async fn due(
        &self,
        at: DateTime<Utc>,
        per_lane: u32,
        limit: u32,
    ) -> Result<Vec<AlertDeliveryRecord>, StoreError> {
        self.store.due_alerts(at, per_lane, limit).await
    }

    async fn attempt(self: Arc<Self>, a: AlertDeliveryRecord, verify: bool) {
        let abandon = || self.engine.abandon(&a.id, &a.tenant_id);
        // A scan may predate an attempt that has just finished: go on only if the alert is
        // still pending with the attempts seen, or it would be posted twice.
        if verify {
            match self.store.get_alert_delivery(&a.tenant_id, &a.id).await {
                Ok(Some(cur))
                    if cur.status == AlertStatus::Pending && cur.attempts == a.attempts => {}
                _ => return abandon(),
            }
        }
        // The role may have moved while the alert was read: the next holder posts it.
        if !self.engine.role().is_held() {
            return abandon();
        }
        let cfg = match self.target_now(&a).await {
            Target::Post(cfg) => cfg,
            Target::Unknown => return abandon(),
            Target::Gone(why) => {
                let at = self.engine.now();
                let given_up = AlertAttempt {
                    status: AlertStatus::Failed,
                    attempts: a.attempts,
                    next_attempt_at: at,
                    last_status: None,
                    last_error: Some(why.into()),
                    at,
                };
                self.engine.request_ended(&a.tenant_id);
                return self.record(&a, given_up).await;
            }
        };
        let res = self.post(&cfg.url, &a).await;
        self.engine.request_ended(&a.tenant_id);
        let answer = Answer::of(res, "alert", &a.id);
        if let Some(error) = &answer.last_error {
            tracing::warn!(
                tenant = %a.tenant_id, host = %log_host(&cfg.url), alert = %a.id, %error,
                "an alert could not be posted"
            );
        }
        let attempts = a.attempts + 1;
        let at = self.engine.now();
        let (status, next_attempt_at) =
            match outcome::next(&self.policy, answer.ok, a.created_at, at, attempts) {
                Next::Delivered => (AlertStatus::Delivered, at),
                Next::RetryAt(t) => (AlertStatus::Pending, t),
                Next::GiveUp => (AlertStatus::Failed, at),
            };
        let attempt = AlertAttempt {
            status,
            attempts,
            next_attempt_at,
            last_status: answer.last_status,
            last_error: answer.last_error,
            at,
        };
        self.record(&a, attempt).await;
    }
}

impl AlertWorker {
    /// The tenant's target as it is now (the tenant may have changed its URL since the alert
    /// was made).
    async fn target_now(&self, a: &AlertDeliveryRecord) -> Target {
        match self.store.get_alert(&a.tenant_id).await {
            Ok(Some(cfg)) if cfg.on.contains(&a.kind) => Target::Post(cfg),
            Ok(Some(_)) => Target::Gone("alerts of this kind were turned off"),
            Ok(None) => Target::Gone("the tenant's alert target was removed"),
            Err(e) => {
                tracing::warn!(tenant = %a.tenant_id, error = %e, "reading an alert target failed");
                Target::Unknown
            }
        }
    }

    /// The alert's body, posted as JSON.
    async fn post(&self, url: &str, a: &AlertDeliveryRecord) -> Result<reqwest::Response, Failure> {
        let request = self.http.post(url)?;
        let req = request.header("content-type", "application/json").body(a.payload.clone());
        Ok(req.send().await?)
    }

    /// Records the attempt's outcome and ends the alert's claim.
    async fn record(&self, a: &AlertDeliveryRecord, attempt: AlertAttempt) {
        let retry_at = match self.store.record_alert_attempt(&a.id, &attempt).await {
            Ok(()) => (attempt.status == AlertStatus::Pending).then_some(attempt.next_attempt_at),
            Err(e) => {
                // Still pending in the store as before this attempt: a scan finds it again.
                tracing::warn!(alert = %a.id, error = %e, "recording an alert attempt failed");
                None
            }
        };
        self.engine.settled(&a.id, retry_at);
    }
}
