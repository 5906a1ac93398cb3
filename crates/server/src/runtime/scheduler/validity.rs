//! Delivery options in the queue: messages scheduled for later (`send_at`) stay in the store
//! until due — each queue keeps a timer for its earliest one and is read again then — and
//! messages not sent within their `ttl_seconds` become `expired`, never sent late: a sweep at
//! the earliest expiry (in memory or in the store only), and a check just before the send.
//!
//! Every comparison uses the scheduler's clock (`now_ms`), so a paused tokio clock in tests
//! moves due times and expiries with it.

use bzapper_store::{MessageRecord, MessageStatus, QueueKey, StoreError};
use chrono::{DateTime, TimeZone, Utc};

use super::Scheduler;

/// A moment every scheduled message is due by (the last millisecond of year 9999).
pub(super) const FOREVER_MS: i64 = 253_402_300_799_999;

/// The scheduler's milliseconds as a timestamp.
pub(super) fn at_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_else(Utc::now)
}

/// Whether a message expiring at `expires_at_ms` may no longer be sent at `now_ms`.
pub(super) fn expired(expires_at_ms: Option<i64>, now_ms: i64) -> bool {
    expires_at_ms.is_some_and(|t| t <= now_ms)
}

impl Scheduler {
    /// Whether `m` may be sent now (it has no `send_at`, or that moment has come).
    pub(super) fn is_due(&self, m: &MessageRecord) -> bool {
        m.send_at.is_none() || m.queue_at().timestamp_millis() <= self.now_ms()
    }

    /// A message expiring at `expires_at` is queued: the sweep runs by then.
    pub(super) fn expires_then(&self, expires_at: Option<DateTime<Utc>>) {
        let Some(t) = expires_at.map(|t| t.timestamp_millis()) else { return };
        let mut g = self.lock();
        g.next_expiry_ms = Some(g.next_expiry_ms.map_or(t, |n| n.min(t)));
        drop(g);
        self.wake.notify_one();
    }

    /// At start: when the first queued message expires.
    pub(super) async fn load_expiry(&self) -> Result<(), StoreError> {
        let next = self.store.next_expiry().await?;
        self.lock().next_expiry_ms = next.map(|t| t.timestamp_millis());
        Ok(())
    }

    /// At start (one node alone): each queue's earliest scheduled message.
    pub(super) async fn load_schedules(&self) -> Result<(), StoreError> {
        let due = self.store.scheduled_queues(at_ms(self.now_ms())).await?;
        let mut windows = self.windows.lock().await;
        for (key, at) in due {
            let win = windows.entry(key).or_default();
            let t = at.timestamp_millis();
            win.due_at_ms = Some(win.due_at_ms.map_or(t, |d| d.min(t)));
        }
        Ok(())
    }

    /// The earliest moment a scheduled message of any queue falls due.
    pub(super) async fn next_due_ms(&self) -> Option<i64> {
        if self.cluster.is_some() {
            return None; // the claim loop looks every second
        }
        self.windows.lock().await.values().filter_map(|w| w.due_at_ms).min()
    }

    /// After a queue's timer fired: its next scheduled message, if any.
    pub(super) async fn next_due_of(&self, key: &QueueKey) -> Option<i64> {
        match self.store.scheduled_queues(at_ms(self.now_ms())).await {
            Ok(due) => due.into_iter().find(|(k, _)| k == key).map(|(_, t)| t.timestamp_millis()),
            Err(e) => {
                tracing::warn!(error = %e, queue = ?key, "reading a queue's next scheduled send failed");
                // Looked at again shortly.
                Some(self.now_ms() + 1_000)
            }
        }
    }

    /// Expires every queued message whose time is up, held in memory or in the store only:
    /// one statement in the store, then each leaves memory and gets its `message.status`.
    pub(super) async fn sweep_expired(&self, now_ms: i64) {
        let due = self.lock().next_expiry_ms.is_some_and(|t| t <= now_ms);
        if !due {
            return;
        }
        let gone = match self.store.expire_due(at_ms(now_ms)).await {
            Ok(gone) => gone,
            Err(e) => {
                tracing::warn!(error = %e, "expiring queued messages failed; trying again shortly");
                self.lock().next_expiry_ms = Some(now_ms + 1_000);
                return;
            }
        };
        for e in &gone {
            let mut g = self.lock();
            // One being sent at this moment is dropped by its send, which finds it expired.
            if g.dispatcher.remove_message(&e.id) {
                g.finished(&e.id);
            }
        }
        for e in gone {
            self.record_status(&e.id, &e.tenant_id, MessageStatus::Expired, e.instance_id, None)
                .await;
        }
        match self.store.next_expiry().await {
            Ok(next) => self.lock().next_expiry_ms = next.map(|t| t.timestamp_millis()),
            Err(e) => {
                tracing::warn!(error = %e, "reading the next expiry failed");
                self.lock().next_expiry_ms = Some(now_ms + 1_000);
            }
        }
    }
}
