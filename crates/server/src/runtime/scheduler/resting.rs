//! Why a number is resting: the one reason, if any, it could not start a send now, in the
//! words the instance view and the dashboard show (`offline`, `health`, `quiet_hours`, `cap`,
//! `first_contact_cap`, `warming`, `rewarming`, `gap`). Read from the scheduler's view of the
//! number and the dispatcher's figures; nothing here decides anything.

use bzapper_core::sending::{Caps, Rest};
use bzapper_core::{Reason, Status};

use super::Scheduler;

impl Scheduler {
    /// Why the number could not start a send now; `None` when it could (or is sending, or
    /// another node holds it and this one cannot tell). The first reason that holds, in the
    /// order: offline, health, quiet hours, re-warming, the first-contact cap, caps (`warming`
    /// when the warming day cap is what binds), gap.
    pub fn resting(&self, instance_id: &str) -> Option<&'static str> {
        let now_ms = self.now_ms();
        let g = self.lock();
        if self.cluster.is_some() && !g.connections.contains_key(instance_id) {
            // Another node holds it, or it is not connected anywhere: only its holder knows.
            return None;
        }
        let n = g.numbers.get(instance_id)?;
        if n.status != Status::Connected || n.reason == Some(Reason::Banned) || n.suspended {
            return Some("offline");
        }
        if !self.in_rotation(n) {
            return Some("health");
        }
        let stats = g.dispatcher.number_stats(instance_id, now_ms)?;
        if stats.busy {
            return None;
        }
        // The rules only the dispatcher knows of: its active hours, re-warming, the
        // first-contact cap.
        if let Some(r @ (Rest::QuietHours | Rest::Rewarming | Rest::FirstContactCap)) =
            stats.resting
        {
            return Some(r.as_str());
        }
        if stats.next_allowed_ms > now_ms {
            // Without warming's lower day cap, would the caps allow a send now?
            let full = Caps::effective(&n.limits, u32::MAX);
            let warming_binds = !stats.warmed
                && stats.sent_last_minute < full.per_minute as usize
                && stats.sent_last_hour < full.per_hour as usize
                && stats.sent_last_day < full.per_day as usize;
            return Some(if warming_binds { "warming" } else { "cap" });
        }
        if stats.ready_at_ms > now_ms {
            return Some("gap");
        }
        None
    }
}
