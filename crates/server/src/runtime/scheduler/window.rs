//! The part of the durable queue held in memory: per queue (a tenant's pool, or one number's
//! forced sends) a window of the next messages in accept order, refilled from the store a
//! page at a time when it runs low, so that memory does not grow with the backlog and one
//! tenant's backlog never stands in front of another's (each queue has its own window).
//!
//! A window's `cursor` is the last position read into memory: refills read after it. A message
//! just accepted joins its window directly only while nothing of its queue waits in the store
//! and the window has room; otherwise it stays in the store and a later refill reads it. The
//! refill and the accept decisions take one async lock, so a page read and an accept never
//! interleave; an accept that arrives after a refill read past its position (the store may
//! commit two accepts out of their order) is checked against the store before it is queued.
//!
//! Pages hold only messages that are due: one scheduled for later (`send_at`) stays in the
//! store, and its queue's timer (`due_at_ms`, see `validity`) marks the window behind when it
//! falls due, so the next refill reads it. The order is `(queue_at, id)`, so a scheduled
//! message falls due after every position the cursor has passed.

use bzapper_store::{MessageRecord, MessageStatus, QueueKey, QueuedRef, StoreError};

use super::{hold, Scheduler, Window};

impl Scheduler {
    /// At start: the first page of every queue holding queued messages.
    pub(super) async fn open_windows(&self) -> Result<(), StoreError> {
        let mut windows = self.windows.lock().await;
        for key in self.store.queued_queues().await? {
            let win = windows.entry(key.clone()).or_default();
            win.behind = true;
            self.refill(&key, win).await?;
        }
        Ok(())
    }

    /// Refills every window that holds half of its size or less while the store has more.
    pub(super) async fn refill_low_windows(&self) {
        let mut windows = self.windows.lock().await;
        let now_ms = self.now_ms();
        for (key, win) in windows.iter_mut() {
            if win.due_at_ms.is_some_and(|t| t <= now_ms) {
                // A scheduled message fell due: the store holds it behind the cursor's
                // position, and the queue's next one sets the timer again.
                win.behind = true;
                win.due_at_ms = self.next_due_of(key).await;
            }
            if !win.behind || self.depth(key) > self.window_size / 2 {
                continue;
            }
            if let Err(e) = self.refill(key, win).await {
                // The messages stay in the store; the next round tries again.
                tracing::warn!(error = %e, queue = ?key, "reading the next page of a queue failed");
            }
        }
    }

    /// Reads the queue's next page, up to the window's size, into the dispatcher.
    async fn refill(&self, key: &QueueKey, win: &mut Window) -> Result<(), StoreError> {
        let want = self.window_size.saturating_sub(self.depth(key));
        if want == 0 {
            return Ok(());
        }
        let limit = u32::try_from(want).unwrap_or(u32::MAX);
        let due_by = super::validity::at_ms(self.now_ms());
        let page = self.store.queued_page(key, win.cursor.as_ref(), due_by, limit).await?;
        win.behind = page.len() >= want;
        if let Some(last) = page.last() {
            win.cursor = Some(last.position.clone());
            win.read_through = win.cursor.clone();
        }
        if !page.is_empty() {
            let mut g = self.lock();
            for r in page {
                // Already held (accepted meanwhile, or in doubt after a crash): kept as is.
                hold(&mut g, r, None);
            }
            drop(g);
            self.wake.notify_one();
        }
        Ok(())
    }

    /// A message just stored: queued in memory now, or left for a refill to read.
    pub(super) async fn admit(&self, m: &MessageRecord) {
        let r = QueuedRef::of(m);
        let key = r.queue();
        let mut windows = self.windows.lock().await;
        let win = windows.entry(key.clone()).or_default();
        if self.lock().held.contains_key(&r.id) {
            return; // a refill read it already
        }
        if !self.is_due(m) {
            // Scheduled for later: it waits in the store, and its queue is read again then.
            let t = r.position.queue_at_ms;
            win.due_at_ms = Some(win.due_at_ms.map_or(t, |d| d.min(t)));
            drop(windows);
            self.wake.notify_one();
            return;
        }
        if win.due_at_ms.is_some_and(|t| t <= self.now_ms()) {
            // A scheduled one fell due and waits in the store, ahead of this one.
            win.behind = true;
        }
        let past_cursor = win.cursor.as_ref().is_none_or(|c| r.position > *c);
        if past_cursor {
            if win.behind || self.depth(&key) >= self.window_size {
                // Older messages wait in the store, or there is no room: a refill reads it.
                win.behind = true;
                return;
            }
            win.cursor = Some(r.position.clone());
        } else if win.read_through.as_ref().is_some_and(|t| r.position <= *t) {
            // Stored after a refill read past its position, or read by it and already sent:
            // the store tells which.
            match self.store.get_message_by_id(&r.id).await {
                Ok(Some(stored)) if stored.status == MessageStatus::Queued => {}
                Ok(_) => return,
                Err(e) => {
                    tracing::error!(message = %r.id, error = %e,
                        "checking an accepted message failed; it is sent after a restart");
                    return;
                }
            }
        }
        hold(&mut self.lock(), r, None);
        self.wake.notify_one();
    }

    /// How many messages of the queue are queued in memory.
    fn depth(&self, key: &QueueKey) -> usize {
        let g = self.lock();
        match key {
            QueueKey::Pool { tenant_id, pool } => g.dispatcher.queue_depth(tenant_id, pool),
            QueueKey::Forced { instance_id } => g.dispatcher.forced_depth(instance_id),
        }
    }

    /// Fails the number's forced sends that are still in the store only (the number was
    /// banned, logged out or deleted), a page at a time.
    pub(super) async fn fail_forced_backlog(&self, instance_id: &str, why: &str) {
        let key = QueueKey::Forced { instance_id: instance_id.to_string() };
        let mut windows = self.windows.lock().await;
        let Some(win) = windows.get_mut(&key) else { return };
        if win.due_at_ms.take().is_some() {
            win.behind = true; // scheduled ones wait in the store
        }
        while win.behind {
            let limit = u32::try_from(self.window_size).unwrap_or(u32::MAX);
            // Scheduled ones too: the number will never send them.
            let all = super::validity::at_ms(super::validity::FOREVER_MS);
            let page = match self.store.queued_page(&key, win.cursor.as_ref(), all, limit).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, instance = instance_id,
                        "reading the forced sends to fail failed");
                    return;
                }
            };
            win.behind = page.len() >= self.window_size;
            for r in &page {
                self.set_status(
                    &r.id,
                    &r.tenant_id,
                    MessageStatus::Failed,
                    r.instance_id.clone(),
                    Some(why.into()),
                )
                .await;
            }
            if let Some(last) = page.last() {
                win.cursor = Some(last.position.clone());
                win.read_through = win.cursor.clone();
            }
        }
    }

    /// Drops the windows of the tenant's pools (the tenant is gone).
    pub(super) async fn close_windows(&self, tenant_id: &str) {
        self.windows.lock().await.retain(|key, _| match key {
            QueueKey::Pool { tenant_id: t, .. } => t != tenant_id,
            QueueKey::Forced { .. } => true,
        });
    }

    /// Drops the window of the number's forced sends (the number is gone).
    pub(super) async fn close_number_window(&self, instance_id: &str) {
        self.windows
            .lock()
            .await
            .remove(&QueueKey::Forced { instance_id: instance_id.to_string() });
    }
}
