//! A webhook delivery's attempt: read back when it came from a scan, POSTed signed, its
//! outcome recorded and a failure retried with backoff until it is given up.

use std::sync::Arc;

use bzapper_store::{DeliveryAttempt, DeliveryRecord, DeliveryStatus, StoreError, WebhookRecord};
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::runtime::delivery::outcome::{self, Answer, Failure, Next};
use crate::runtime::delivery::{Courier, Engine};

use super::{signature, WebhookWorker, HOOK_TTL};

impl Courier for WebhookWorker {
    type Item = DeliveryRecord;
    const WHAT: &'static str = "webhook delivery";

    fn engine(&self) -> &Engine<DeliveryRecord> {
        &self.engine
    }

    async fn due(
        &self,
        at: DateTime<Utc>,
        per_lane: u32,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.store.due_deliveries(at, per_lane, limit).await
    }

    async fn attempt(self: Arc<Self>, d: DeliveryRecord, verify: bool) {
        let abandon = || self.engine.abandon(&d.id, &d.webhook_id);
        // A scan may predate an attempt that has just finished: go on only if the delivery is
        // still pending with the attempts seen, or it would be sent twice.
        if verify {
            match self.store.get_delivery(&d.webhook_id, &d.id).await {
                Ok(Some(cur))
                    if cur.status == DeliveryStatus::Pending && cur.attempts == d.attempts => {}
                _ => return abandon(),
            }
        }
        let Some(hook) = self.webhook(&d).await else { return abandon() };
        // The role may have moved while the delivery was read: the next holder sends it.
        if !self.engine.role().is_held() {
            return abandon();
        }
        let res = self.post(&hook, &d).await;
        self.engine.request_ended(&d.webhook_id);
        let answer = Answer::of(res, "webhook", &d.id);
        let attempts = d.attempts + 1;
        let at = self.engine.now();
        let (status, next_attempt_at) =
            match outcome::next(&self.policy, answer.ok, d.created_at, at, attempts) {
                Next::Delivered => (DeliveryStatus::Delivered, at),
                Next::RetryAt(t) => (DeliveryStatus::Pending, t),
                Next::GiveUp => (DeliveryStatus::Dead, at),
            };
        let outcome = match status {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Pending => "retry",
            DeliveryStatus::Dead => "dead",
        };
        self.metrics.webhook_attempt(&d.tenant_id, outcome);
        let attempt = DeliveryAttempt {
            status,
            attempts,
            next_attempt_at,
            last_status: answer.last_status,
            last_error: answer.last_error,
            at,
        };
        let retry_at = match self.store.record_attempt(&d.id, &attempt).await {
            Ok(()) => (status == DeliveryStatus::Pending).then_some(next_attempt_at),
            Err(e) => {
                // Still pending in the store as before this attempt: a scan finds it again.
                tracing::warn!(delivery = %d.id, error = %e, "recording a webhook attempt failed");
                None
            }
        };
        self.engine.settled(&d.id, retry_at);
    }
}

impl WebhookWorker {
    /// The delivery's webhook, read at most once per [`HOOK_TTL`]. `None` once it has been
    /// deleted (with its deliveries: what is left of them in memory is dropped unsent).
    async fn webhook(&self, d: &DeliveryRecord) -> Option<Arc<WebhookRecord>> {
        let hooks = || self.hooks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((h, at)) = hooks().get(&d.webhook_id) {
            if at.elapsed() < HOOK_TTL {
                return Some(h.clone());
            }
        }
        match self.store.get_webhook(&d.tenant_id, &d.webhook_id).await {
            Ok(Some(h)) => {
                let h = Arc::new(h);
                hooks().insert(h.id.clone(), (h.clone(), Instant::now()));
                Some(h)
            }
            Ok(None) => {
                hooks().remove(&d.webhook_id);
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading a webhook failed");
                None
            }
        }
    }

    /// The signed POST of the delivery's payload.
    async fn post(
        &self,
        hook: &WebhookRecord,
        d: &DeliveryRecord,
    ) -> Result<reqwest::Response, Failure> {
        let request = self.http.post(&hook.url)?;
        let ts = Utc::now().timestamp().to_string();
        let mut req = request
            .header("content-type", "application/json")
            .header("x-bzapper-event", &d.event_type)
            .header("x-bzapper-delivery", &d.id)
            .header("x-bzapper-timestamp", &ts)
            .header("x-bzapper-signature", signature(&hook.secret, &ts, &d.payload));
        // During a rotation's overlap, the replaced secret signs too: a receiver still on it
        // keeps verifying until it switches.
        if let Some(previous) =
            hook.previous_secret.as_ref().filter(|p| p.expires_at > self.engine.now())
        {
            req = req.header(
                "x-bzapper-signature-previous",
                signature(&previous.secret, &ts, &d.payload),
            );
        }
        Ok(req.body(d.payload.clone()).send().await?)
    }
}
