//! Webhook deliveries: a fan-out task turns logged events into durable delivery rows (one per
//! matching webhook), and a delivery task POSTs each due delivery, signed, retrying with
//! backoff and jitter until it is delivered or given up (dead-lettered). Both read only the
//! store, so a restart resumes where they stopped, and recording an event never waits on a
//! receiver.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bzapper_core::retry::RetryPolicy;
use bzapper_store::{DeliveryAttempt, DeliveryRecord, DeliveryStatus, Store, WebhookRecord};
use chrono::Utc;
use hmac::{Hmac, Mac};
use rand::SeedableRng;
use sha2::Sha256;
use tokio::sync::Notify;

use crate::ids::new_ordered_id;
use crate::recorder::Recorder;
use crate::routes::events::{Envelope, Filter};
use crate::time::now;

/// How many deliveries of one webhook may be in flight: a slow receiver holds at most this
/// many slots, never the others'.
const PER_WEBHOOK_IN_FLIGHT: usize = 4;
/// How long a receiver may take to answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
pub fn signature(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

pub struct WebhookWorker {
    store: Arc<dyn Store>,
    metrics: Arc<crate::metrics::Metrics>,
    http: reqwest::Client,
    policy: RetryPolicy,
    wake: Notify,
    /// Deliveries being attempted, by webhook.
    in_flight: Mutex<HashMap<String, HashSet<String>>>,
    /// Set at shutdown: no new attempt starts.
    closing: std::sync::atomic::AtomicBool,
}

impl WebhookWorker {
    pub fn spawn(store: Arc<dyn Store>, recorder: Arc<Recorder>, policy: RetryPolicy) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .user_agent(concat!("bzapper/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with default TLS");
        let w = Arc::new(WebhookWorker {
            store,
            metrics: recorder.metrics().clone(),
            http,
            policy,
            wake: Notify::new(),
            in_flight: Mutex::new(HashMap::new()),
            closing: std::sync::atomic::AtomicBool::new(false),
        });
        let fan = w.clone();
        tokio::spawn(async move { fan.fan_out(recorder).await });
        let del = w.clone();
        tokio::spawn(async move { del.deliver_loop().await });
        w
    }

    /// Wakes the delivery loop (a re-send was asked for).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    async fn fan_out(self: Arc<Self>, recorder: Arc<Recorder>) {
        let mut doorbell = recorder.subscribe();
        // Pin the starting point: on a data dir that never had one, the fan-out starts at the
        // newest event, and must not move along with new events before it has read them.
        loop {
            let pinned = match self.store.fanout_cursor().await {
                Ok(c) => self.store.enqueue_deliveries(&[], c).await,
                Err(e) => Err(e),
            };
            match pinned {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "starting the webhook fan-out failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        loop {
            match self.fan_out_once().await {
                Ok(true) => continue, // more may be waiting
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "webhook fan-out failed; retrying"),
            }
            // New events ring the bell; the timeout covers events written by other nodes.
            let _ = tokio::time::timeout(Duration::from_secs(2), doorbell.recv()).await;
        }
    }

    /// Turns the next page of logged events into deliveries. True when a full page was read.
    async fn fan_out_once(&self) -> Result<bool, bzapper_store::StoreError> {
        const PAGE: u32 = 500;
        let cursor = self.store.fanout_cursor().await?;
        let events = self.store.all_events_after(cursor, PAGE).await?;
        let Some(last) = events.last().map(|e| e.id) else { return Ok(false) };
        let hooks = self.store.all_webhooks().await?;
        let mut by_tenant: HashMap<&str, Vec<(&WebhookRecord, Filter)>> = HashMap::new();
        for h in &hooks {
            let f = Filter::parse(None, Some(&h.events.join(","))).unwrap_or_default();
            by_tenant.entry(h.tenant_id.as_str()).or_default().push((h, f));
        }
        let at = now();
        let mut deliveries = Vec::new();
        for e in &events {
            for (h, f) in by_tenant.get(e.tenant_id.as_str()).into_iter().flatten() {
                if f.matches(e) {
                    deliveries.push(DeliveryRecord {
                        id: new_ordered_id("dlv"),
                        webhook_id: h.id.clone(),
                        tenant_id: e.tenant_id.clone(),
                        event_id: e.id,
                        event_type: e.kind.clone(),
                        payload: serde_json::to_string(&Envelope::from(e)).unwrap_or_default(),
                        status: DeliveryStatus::Pending,
                        attempts: 0,
                        next_attempt_at: at,
                        last_status: None,
                        last_error: None,
                        created_at: at,
                        updated_at: at,
                        delivered_at: None,
                    });
                }
            }
        }
        self.store.enqueue_deliveries(&deliveries, last).await?;
        if !deliveries.is_empty() {
            self.wake.notify_one();
        }
        Ok(events.len() == PAGE as usize)
    }

    async fn deliver_loop(self: Arc<Self>) {
        loop {
            let due = match self.store.due_deliveries(now(), 256).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "reading due webhook deliveries failed");
                    Vec::new()
                }
            };
            for d in due {
                if !self.claim(&d) {
                    continue;
                }
                let me = self.clone();
                tokio::spawn(async move { me.attempt(d).await });
            }
            let wait = match self.store.next_due_at().await {
                Ok(Some(t)) => (t - Utc::now()).to_std().unwrap_or(Duration::ZERO),
                _ => Duration::from_secs(5),
            };
            let wait = wait.clamp(Duration::from_millis(20), Duration::from_secs(5));
            let _ = tokio::time::timeout(wait, self.wake.notified()).await;
        }
    }

    /// Starts no new attempt and waits (at most one attempt's timeout) for those under way
    /// to record their outcome, so that a delivery the receiver accepted is not sent again
    /// after a restart.
    pub async fn shutdown(&self) {
        self.closing.store(true, std::sync::atomic::Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + ATTEMPT_TIMEOUT + Duration::from_secs(1);
        while tokio::time::Instant::now() < deadline {
            let busy = {
                let f = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
                f.values().any(|s| !s.is_empty())
            };
            if !busy {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Marks the delivery in flight unless it already is, its webhook is at its cap, or the
    /// gateway is shutting down.
    fn claim(&self, d: &DeliveryRecord) -> bool {
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return false;
        }
        let mut f = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let set = f.entry(d.webhook_id.clone()).or_default();
        if set.contains(&d.id) || set.len() >= PER_WEBHOOK_IN_FLIGHT {
            return false;
        }
        set.insert(d.id.clone());
        true
    }

    fn release(&self, d: &DeliveryRecord) {
        let mut f = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = f.get_mut(&d.webhook_id) {
            set.remove(&d.id);
        }
    }

    async fn attempt(self: Arc<Self>, d: DeliveryRecord) {
        // The list this delivery came from may predate an attempt that has just finished:
        // go on only if it is still pending with the attempts seen, or it would be sent twice.
        match self.store.get_delivery(&d.webhook_id, &d.id).await {
            Ok(Some(cur))
                if cur.status == DeliveryStatus::Pending && cur.attempts == d.attempts => {}
            _ => return self.release(&d),
        }
        let hook = match self.store.get_webhook(&d.tenant_id, &d.webhook_id).await {
            Ok(Some(h)) => h,
            Ok(None) => return self.release(&d), // deleted with its deliveries
            Err(e) => {
                tracing::warn!(error = %e, "reading a webhook failed");
                return self.release(&d);
            }
        };
        let ts = Utc::now().timestamp().to_string();
        let res = self
            .http
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-bzapper-event", &d.event_type)
            .header("x-bzapper-delivery", &d.id)
            .header("x-bzapper-timestamp", &ts)
            .header("x-bzapper-signature", signature(&hook.secret, &ts, &d.payload))
            .body(d.payload.clone())
            .send()
            .await;
        let attempts = d.attempts + 1;
        let at = now();
        let (ok, last_status, last_error) = match res {
            Ok(r) if r.status().is_success() => (true, Some(r.status().as_u16()), None),
            Ok(r) => (
                false,
                Some(r.status().as_u16()),
                Some(format!("the receiver answered {}", r.status())),
            ),
            Err(e) if e.is_timeout() => {
                (false, None, Some("the receiver did not answer in time".into()))
            }
            Err(e) => (false, None, Some(format!("the receiver could not be reached: {e}"))),
        };
        let attempt = if ok {
            DeliveryAttempt {
                status: DeliveryStatus::Delivered,
                attempts,
                next_attempt_at: at,
                last_status,
                last_error,
                at,
            }
        } else {
            let mut rng = rand::rngs::StdRng::from_entropy();
            let next = self.policy.next_attempt_ms(
                d.created_at.timestamp_millis(),
                at.timestamp_millis(),
                attempts,
                &mut rng,
            );
            match next.and_then(chrono::DateTime::from_timestamp_millis) {
                Some(next) => DeliveryAttempt {
                    status: DeliveryStatus::Pending,
                    attempts,
                    next_attempt_at: next,
                    last_status,
                    last_error,
                    at,
                },
                None => DeliveryAttempt {
                    status: DeliveryStatus::Dead,
                    attempts,
                    next_attempt_at: at,
                    last_status,
                    last_error,
                    at,
                },
            }
        };
        let outcome = match attempt.status {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Pending => "retry",
            DeliveryStatus::Dead => "dead",
        };
        self.metrics.webhook_attempt(&d.tenant_id, outcome);
        if let Err(e) = self.store.record_attempt(&d.id, &attempt).await {
            tracing::warn!(delivery = %d.id, error = %e, "recording a webhook attempt failed");
        }
        self.release(&d);
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Reference value computed independently (Python: hmac.new(b"k", b"1.{}", sha256)).
        assert_eq!(
            signature("k", "1", "{}"),
            "sha256=3dd49b2593d0f9a349e9e71c4bde3e2b862c2be4003fe9b4ba81332029310158"
        );
    }
}
