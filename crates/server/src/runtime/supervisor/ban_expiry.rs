//! A temporary ban's end: the number is connected again then, by whichever node holds it.
//!
//! The expiry is stored with the number, with its `banned` state (any other state change
//! clears it), so it outlives this process: the single node arms its timer again at start
//! (`Supervisor::resume_all`), and in a cluster the node that holds the number, or takes it
//! over after its holder died, arms it (`Supervisor::take_over`). An operator's command
//! (connect, disconnect, logout, delete) clears the stored expiry and the timer. When the
//! timer fires, the store decides: the number is started only if the expiry it was armed for
//! is still the one stored, under the supervisor's lock, so an operator's command and the
//! reconnect never cross. A node that lets the number go (its lease was lost or handed over)
//! disarms the timer.

use std::time::Duration;

use bzapper_core::Reason;
use bzapper_store::InstanceRecord;
use chrono::{DateTime, Utc};

use super::{Supervisor, SupervisorError};
use crate::model::time::now;

/// How long to wait before trying again when the store could not be read at the ban's end.
const RETRY_AFTER_STORE_ERROR: Duration = Duration::from_secs(5);

impl Supervisor {
    /// Starts the number once its temporary ban ends, `until` (at once when it has ended),
    /// unless an operator acts on it meanwhile or this node lets it go. It re-enters rotation
    /// only when that connection comes up. Arming it again for the same end changes nothing.
    pub fn reconnect_when_ban_ends(&self, id: &str, until: DateTime<Utc>) {
        if !self.ban_timers.arm(id, until) {
            return;
        }
        let me = self.me.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let mut wait = (until - now()).to_std().unwrap_or_default();
            loop {
                tokio::time::sleep(wait).await;
                let Some(sup) = me.upgrade() else { return };
                match sup.reconnect_after_ban(&id, until).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(instance = %id, error = %e, "reconnecting after a temporary ban failed; trying again");
                        wait = RETRY_AFTER_STORE_ERROR;
                    }
                }
            }
        });
    }

    /// At the ban's end: starts the number if the timer is still armed for `until` and the
    /// store still holds that expiry (no operator, no other state change since).
    async fn reconnect_after_ban(
        &self,
        id: &str,
        until: DateTime<Utc>,
    ) -> Result<(), SupervisorError> {
        let mut running = self.running.lock().await;
        if !self.ban_timers.armed_for(id, until) {
            return Ok(());
        }
        let rec = self.store.get_instance_by_id(id).await?;
        let stored = self.store.ban_expiry(id).await?;
        self.ban_timers.disarm(id);
        let Some(rec) = rec else { return Ok(()) };
        if stored != Some(until) || rec.state.reason != Some(Reason::Banned) {
            return Ok(());
        }
        tracing::info!(instance = %id, "the temporary ban has ended; connecting the number again");
        self.start_in(&mut running, &rec).await.map(|_| ())
    }

    /// Whether a timer here waits for the number's ban to end.
    pub fn waits_for_ban_end(&self, id: &str) -> bool {
        self.ban_timers.is_armed(id)
    }

    /// For a number that does not run here and should not now: arms its timer when it waits
    /// for a temporary ban to end (stored with it). Returns whether it does.
    pub(super) async fn watch_ban(&self, rec: &InstanceRecord) -> Result<bool, SupervisorError> {
        if rec.state.reason != Some(Reason::Banned) {
            return Ok(false);
        }
        if self.ban_timers.is_armed(&rec.id) {
            return Ok(true);
        }
        match self.store.ban_expiry(&rec.id).await? {
            Some(until) => {
                self.reconnect_when_ban_ends(&rec.id, until);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Forgets the number's ban expiry, here and in the store: an operator acted on it.
    pub(super) async fn cancel_ban_end(&self, id: &str) -> Result<(), SupervisorError> {
        self.ban_timers.disarm(id);
        self.store.clear_ban_expiry(id).await?;
        Ok(())
    }
}
