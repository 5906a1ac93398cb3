//! The reconnect timers armed on this node for numbers waiting for a temporary ban to end,
//! each with the end it waits for (see `ban_expiry`). Pure bookkeeping, no I/O.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// The timers armed here: each number waiting for its ban to end, with that end.
#[derive(Default)]
pub(crate) struct BanTimers(Mutex<HashMap<String, DateTime<Utc>>>);

impl BanTimers {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, DateTime<Utc>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arms the number's timer for `until`; false when it is armed for that already.
    pub(super) fn arm(&self, id: &str, until: DateTime<Utc>) -> bool {
        self.map().insert(id.to_string(), until) != Some(until)
    }

    /// Whether the timer is still armed for `until` (not disarmed, not armed again since).
    pub(super) fn armed_for(&self, id: &str, until: DateTime<Utc>) -> bool {
        self.map().get(id) == Some(&until)
    }

    pub(super) fn is_armed(&self, id: &str) -> bool {
        self.map().contains_key(id)
    }

    pub(super) fn disarm(&self, id: &str) {
        self.map().remove(id);
    }

    pub(super) fn disarm_all(&self) {
        self.map().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::now;

    #[test]
    fn a_timer_is_armed_once_per_expiry_and_a_later_one_replaces_it() {
        let t = BanTimers::default();
        let until = now();
        assert!(t.arm("i1", until));
        assert!(!t.arm("i1", until), "the same end again: no second timer");
        assert!(t.armed_for("i1", until));
        let later = until + chrono::Duration::seconds(5);
        assert!(t.arm("i1", later));
        assert!(!t.armed_for("i1", until), "the first timer finds itself replaced");
        t.disarm("i1");
        assert!(!t.is_armed("i1") && !t.armed_for("i1", later));
        t.arm("i2", until);
        t.disarm_all();
        assert!(!t.is_armed("i2"));
    }
}
