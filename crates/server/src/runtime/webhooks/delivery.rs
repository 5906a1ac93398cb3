//! The delivery task: due deliveries POSTed, signed, at most a few per webhook at a time,
//! each outcome recorded and a failure retried with backoff until it is given up.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

use bzapper_store::{DeliveryAttempt, DeliveryRecord, DeliveryStatus, WebhookRecord};
use chrono::Utc;
use rand::SeedableRng;
use tokio::time::Instant;

use crate::cluster::role::Role;
use crate::model::time::now;

use super::dispatch::{SCAN_LIMIT, SCAN_PER_WEBHOOK};
use super::{signature, WebhookWorker, HOOK_TTL, SCAN_EVERY, SCAN_GAP};

impl WebhookWorker {
    pub(super) async fn deliver_loop(self: Arc<Self>) {
        let mut role = self.role.clone();
        loop {
            if !role.is_held() {
                // Another node sends now (or nobody, until a node gains the role).
                self.dispatch().forget_queued();
                role.gained().await;
                // Anything learnt while not holding the role is stale: start from the store.
                self.dispatch().forget_queued();
            }
            self.deliver_while_held(&mut role).await;
        }
    }

    /// Sends due deliveries until the role is lost (on a single node, forever).
    pub(super) async fn deliver_while_held(self: &Arc<Self>, role: &mut Role) {
        let mut last_scan: Option<Instant> = None;
        while role.is_held() {
            let at = now();
            let since_scan = last_scan.map(|t| t.elapsed());
            let scan = {
                let asked = self.dispatch().wants_scan(at);
                match since_scan {
                    None => true,
                    Some(e) => e >= SCAN_EVERY || (asked && e >= SCAN_GAP),
                }
            };
            if scan {
                self.scan().await;
                last_scan = Some(Instant::now());
            }
            if !self.closing.load(std::sync::atomic::Ordering::SeqCst) && role.is_held() {
                let ready = self.dispatch().take_ready();
                for q in ready {
                    let me = self.clone();
                    tokio::spawn(async move { me.attempt(q.delivery, q.verify).await });
                }
            }
            // Sleep until woken (new deliveries, a free slot, a re-send) or a scan is due.
            let since_scan = last_scan.map(|t| t.elapsed()).unwrap_or_default();
            let mut wait = SCAN_EVERY.saturating_sub(since_scan);
            {
                let q = self.dispatch();
                if q.wants_scan(now()) {
                    wait = wait.min(SCAN_GAP.saturating_sub(since_scan));
                }
                if let Some(t) = q.next_retry() {
                    let until = (t - now()).to_std().unwrap_or(Duration::ZERO);
                    wait = wait.min(until.max(SCAN_GAP.saturating_sub(since_scan)));
                }
            }
            tokio::select! {
                _ = tokio::time::timeout(wait, self.wake.notified()) => {}
                _ = role.lost() => {}
            }
        }
    }

    /// Queues the store's due deliveries that are not held already.
    pub(super) async fn scan(&self) {
        let at = now();
        {
            let mut q = self.dispatch();
            q.scan_soon = false;
            q.more_in_store = false;
            // What this scan leaves out for want of room is noted again.
            q.left_in_store.clear();
            while q.next_retry().is_some_and(|t| t <= at) {
                q.retries.pop();
            }
        }
        match self.store.due_deliveries(at, SCAN_PER_WEBHOOK, SCAN_LIMIT).await {
            Ok(due) => {
                let full = due.len() == SCAN_LIMIT as usize;
                let mut q = self.dispatch();
                let mut new = 0;
                for d in due {
                    new += usize::from(q.offer_scanned(d));
                }
                // More may be due than one scan returns. (A full scan of deliveries all held
                // here already is not repeated before the periodic one: it would find them
                // again.)
                q.more_in_store |= full && new > 0;
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading due webhook deliveries failed");
                self.dispatch().scan_soon = true;
            }
        }
    }

    /// Ends a claim that sent nothing.
    pub(super) fn abandon(&self, d: &DeliveryRecord) {
        let mut q = self.dispatch();
        q.end_request(&d.webhook_id);
        q.settle(&d.id);
        drop(q);
        self.wake.notify_one();
    }

    /// The delivery's webhook, read at most once per [`HOOK_TTL`]. `None` once it has been
    /// deleted (with its deliveries: what is left of them in memory is dropped unsent).
    pub(super) async fn webhook(&self, d: &DeliveryRecord) -> Option<Arc<WebhookRecord>> {
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

    pub(super) async fn attempt(self: Arc<Self>, d: DeliveryRecord, verify: bool) {
        // A scan may predate an attempt that has just finished: go on only if the delivery is
        // still pending with the attempts seen, or it would be sent twice.
        if verify {
            match self.store.get_delivery(&d.webhook_id, &d.id).await {
                Ok(Some(cur))
                    if cur.status == DeliveryStatus::Pending && cur.attempts == d.attempts => {}
                _ => return self.abandon(&d),
            }
        }
        let Some(hook) = self.webhook(&d).await else { return self.abandon(&d) };
        // The role may have moved while the delivery was read: the next holder sends it.
        if !self.role.is_held() {
            return self.abandon(&d);
        }
        let ts = Utc::now().timestamp().to_string();
        let res = match self.http.post(&hook.url) {
            Ok(request) => {
                let mut req = request
                    .header("content-type", "application/json")
                    .header("x-bzapper-event", &d.event_type)
                    .header("x-bzapper-delivery", &d.id)
                    .header("x-bzapper-timestamp", &ts)
                    .header("x-bzapper-signature", signature(&hook.secret, &ts, &d.payload));
                // During a rotation's overlap, the replaced secret signs too: a receiver still
                // on it keeps verifying until it switches.
                if let Some(previous) =
                    hook.previous_secret.as_ref().filter(|p| p.expires_at > now())
                {
                    req = req.header(
                        "x-bzapper-signature-previous",
                        signature(&previous.secret, &ts, &d.payload),
                    );
                }
                req.body(d.payload.clone()).send().await.map_err(Failure::from)
            }
            Err(crate::outbound::Blocked) => Err(Failure::Blocked),
        };
        // The receiver has answered: its slot may serve the next delivery while this outcome
        // is written (the delivery itself stays claimed until then, so it is not sent again).
        self.dispatch().end_request(&d.webhook_id);
        self.wake.notify_one();
        let attempts = d.attempts + 1;
        let at = now();
        let (ok, last_status, last_error) = match res {
            Ok(r) if r.status().is_success() => (true, Some(r.status().as_u16()), None),
            Ok(r) => (
                false,
                Some(r.status().as_u16()),
                Some(format!("the receiver answered {}", r.status())),
            ),
            Err(failure) => (false, None, Some(failure.into_last_error(&d.id))),
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
        let recorded = self.store.record_attempt(&d.id, &attempt).await;
        let mut q = self.dispatch();
        match recorded {
            Ok(()) if attempt.status == DeliveryStatus::Pending => {
                q.retries.push(Reverse(attempt.next_attempt_at));
            }
            Ok(()) => {}
            Err(e) => {
                // Still pending in the store as before this attempt: a scan finds it again.
                tracing::warn!(delivery = %d.id, error = %e, "recording a webhook attempt failed");
            }
        }
        q.settle(&d.id);
        drop(q);
        self.wake.notify_one();
    }
}

/// Why an attempt got no answer.
enum Failure {
    /// The outbound guard refused the receiver's address.
    Blocked,
    /// Any network failure: no connection, no answer in time, a name that does not resolve.
    Network(reqwest::Error),
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Self {
        if crate::outbound::is_blocked(&e) {
            Failure::Blocked
        } else {
            Failure::Network(e)
        }
    }
}

impl Failure {
    /// The delivery's `last_error`: one sentence for every network failure, so a tenant cannot
    /// tell a closed port from a silent one or a missing name (the reason goes to the debug
    /// log), and another for an address the gateway does not reach.
    fn into_last_error(self, delivery: &str) -> String {
        match self {
            Failure::Blocked => "the receiver's address is not allowed".into(),
            Failure::Network(e) => {
                tracing::debug!(
                    delivery, error = %crate::outbound::detail(e),
                    "a webhook receiver could not be reached"
                );
                "the receiver could not be reached (no connection, or no answer in time)".into()
            }
        }
    }
}
