//! The warming schedule: the daily cap of a fresh number, growing day by day from a low start to
//! the full `per_day` once `warming_days` have passed since it first connected.
//!
//! A brand-new number that sends hundreds of messages on its first day is the classic ban
//! trigger; a number whose volume grows gradually looks like a person who started using it.
//!
//! Re-warming: a number idle for longer than `rewarm_after_ms` (default 72 h) that starts
//! sending again goes through a shorter warm-up of `rewarm_days` (default 2) from that moment,
//! with the same geometric growth; while both apply the lower cap wins. The first-contact cap
//! (`Limits::new_contacts_per_day`) is reduced the same way from `first_day_new_contacts`.

/// One day in milliseconds: warming days are counted in whole 24 h periods from the first
/// connection, not in calendar days, so that the schedule does not depend on a time zone.
pub const DAY_MS: i64 = 86_400_000;

/// How the daily cap of a warming number grows.
///
/// Day `d` (1-based: day 1 is the first 24 h after the first connection) of a warming period of
/// `n` days has the cap `first × (full / first)^((d − 1) / n)`, rounded: geometric growth, the
/// same factor every day, so that day `n + 1` would reach `full` exactly. From day `n + 1` on the
/// number is warmed and its cap is `full`. The cap never exceeds `full`.
///
/// With the defaults (`first_day_cap` 20, `per_day` 1500, `warming_days` 5; a factor of about
/// 2.37 a day):
///
/// | day | 1  | 2  | 3   | 4   | 5   | 6 and later |
/// |-----|----|----|-----|-----|-----|-------------|
/// | cap | 20 | 47 | 112 | 267 | 633 | 1500        |
///
/// The per-hour and per-minute caps are clamped to the day cap (see `Caps::effective`), so a
/// day-1 number can also send at most 20 in any hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmingSchedule {
    /// The daily cap on day 1. Values below 1 count as 1, so a warming number can always send a
    /// message it was forced to, eventually.
    pub first_day_cap: u32,
    /// The daily first-contact cap on day 1 (of warming or re-warming); below 1 counts as 1.
    pub first_day_new_contacts: u32,
    /// A number whose last send is older than this when it starts a send is re-warmed.
    pub rewarm_after_ms: i64,
    /// How many days a re-warm lasts; 0 turns re-warming off.
    pub rewarm_days: u32,
}

/// Default `first_day_new_contacts`.
pub const DEFAULT_FIRST_DAY_NEW_CONTACTS: u32 = 8;
/// Default `rewarm_after_ms`: 72 hours.
pub const DEFAULT_REWARM_AFTER_MS: i64 = 3 * DAY_MS;
/// Default `rewarm_days`.
pub const DEFAULT_REWARM_DAYS: u32 = 2;

impl Default for WarmingSchedule {
    fn default() -> Self {
        WarmingSchedule {
            first_day_cap: 20,
            first_day_new_contacts: DEFAULT_FIRST_DAY_NEW_CONTACTS,
            rewarm_after_ms: DEFAULT_REWARM_AFTER_MS,
            rewarm_days: DEFAULT_REWARM_DAYS,
        }
    }
}

/// Day `d` (1-based) of a geometric warm-up of `days` days from `first` to `full`:
/// `first × (full / first)^((d − 1) / days)`, rounded, within `[first, full]`; `full` from day
/// `days + 1` on. `first` below 1 counts as 1 and never exceeds `full`.
fn geometric(first: u32, full: u32, days: u32, day: i64) -> u32 {
    let first = first.max(1).min(full);
    if days == 0 || day > i64::from(days) || first == full {
        return full;
    }
    let growth = f64::from(full) / f64::from(first);
    let cap = f64::from(first) * growth.powf((day - 1) as f64 / f64::from(days));
    (cap.round() as u32).clamp(first, full)
}

/// The 1-based warming day at `now_ms` (a clock that runs behind the first connection counts
/// as day 1).
fn day_number(first_connected_at_ms: i64, now_ms: i64) -> i64 {
    now_ms.saturating_sub(first_connected_at_ms).max(0) / DAY_MS + 1
}

impl WarmingSchedule {
    /// The number's daily cap at `now_ms`, given its full (warmed) `per_day` cap.
    ///
    /// Never connected: the day-1 cap (its first day has not started yet). `warming_days` 0:
    /// `full_per_day` from the start.
    pub fn day_cap(
        &self,
        full_per_day: u32,
        warming_days: u32,
        first_connected_at_ms: Option<i64>,
        now_ms: i64,
    ) -> u32 {
        self.grown(self.first_day_cap, full_per_day, warming_days, first_connected_at_ms, now_ms)
    }

    /// The number's daily first-contact cap at `now_ms` from warming alone, given its full
    /// `new_contacts_per_day`: the same growth as [`WarmingSchedule::day_cap`], from
    /// `first_day_new_contacts`.
    pub fn new_contacts_cap(
        &self,
        full: u32,
        warming_days: u32,
        first_connected_at_ms: Option<i64>,
        now_ms: i64,
    ) -> u32 {
        self.grown(self.first_day_new_contacts, full, warming_days, first_connected_at_ms, now_ms)
    }

    fn grown(&self, first: u32, full: u32, days: u32, start: Option<i64>, now_ms: i64) -> u32 {
        if days == 0 {
            return full;
        }
        match start {
            Some(start) => geometric(first, full, days, day_number(start, now_ms)),
            // Never connected: the day-1 cap (its first day has not started yet).
            None => first.max(1).min(full),
        }
    }

    /// The re-warm's reduction of a cap whose full value is `full` and whose day-1 value is
    /// `first` (`first_day_cap` or `first_day_new_contacts`), for a re-warm that started at
    /// `rewarm_from_ms`: `full` when there is none or it is over.
    pub fn rewarm_cap(
        &self,
        first: u32,
        full: u32,
        rewarm_from_ms: Option<i64>,
        now_ms: i64,
    ) -> u32 {
        match rewarm_from_ms {
            Some(from) => geometric(first, full, self.rewarm_days, day_number(from, now_ms)),
            None => full,
        }
    }

    /// When a re-warm that started at `rewarm_from_ms` ends; `None` when there is none.
    pub fn rewarm_until_ms(&self, rewarm_from_ms: Option<i64>) -> Option<i64> {
        let from = rewarm_from_ms?;
        (self.rewarm_days > 0)
            .then(|| from.saturating_add(i64::from(self.rewarm_days).saturating_mul(DAY_MS)))
    }

    /// True while a re-warm that started at `rewarm_from_ms` lasts at `now_ms`.
    pub fn is_rewarming(&self, rewarm_from_ms: Option<i64>, now_ms: i64) -> bool {
        self.rewarm_until_ms(rewarm_from_ms).is_some_and(|until| now_ms < until)
    }

    /// When a re-warm's caps change next (the start of its next day); `None` when none lasts.
    pub fn rewarm_next_change_ms(&self, rewarm_from_ms: Option<i64>, now_ms: i64) -> Option<i64> {
        let from = rewarm_from_ms?;
        if !self.is_rewarming(Some(from), now_ms) {
            return None;
        }
        Some(from.saturating_add(day_number(from, now_ms).saturating_mul(DAY_MS)))
    }

    /// Whether a send starting at `now_ms` starts a re-warm, given the number's last send: it
    /// does when that send is older than `rewarm_after_ms` (a number never sent from is warmed,
    /// not re-warmed) and re-warming is on.
    pub fn starts_rewarm(&self, last_send_ms: Option<i64>, now_ms: i64) -> bool {
        self.rewarm_days > 0
            && last_send_ms.is_some_and(|last| now_ms.saturating_sub(last) > self.rewarm_after_ms)
    }

    /// True once `warming_days` full days have passed since the first connection (always with
    /// `warming_days` 0, never for a number that never connected). The same rule as
    /// [`crate::Warming::at`]'s `active`, negated.
    pub fn is_warmed(warming_days: u32, first_connected_at_ms: Option<i64>, now_ms: i64) -> bool {
        warming_days == 0
            || first_connected_at_ms.is_some_and(|start| {
                now_ms.saturating_sub(start) >= i64::from(warming_days) * DAY_MS
            })
    }

    /// When the day cap changes next (the start of the next warming day), for a number that is
    /// still warming; `None` once warmed or before its first connection. The dispatcher wakes up
    /// then, because a number stopped by yesterday's cap may send again.
    pub fn next_change_ms(
        warming_days: u32,
        first_connected_at_ms: Option<i64>,
        now_ms: i64,
    ) -> Option<i64> {
        let start = first_connected_at_ms?;
        if Self::is_warmed(warming_days, Some(start), now_ms) {
            return None;
        }
        Some(start.saturating_add(day_number(start, now_ms).saturating_mul(DAY_MS)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    #[test]
    fn the_documented_default_schedule() {
        let s = WarmingSchedule::default();
        let caps: Vec<u32> =
            (0..8).map(|day| s.day_cap(1500, 5, Some(T0), T0 + day * DAY_MS + 3_600_000)).collect();
        assert_eq!(caps, [20, 47, 112, 267, 633, 1500, 1500, 1500]);
    }

    #[test]
    fn caps_grow_every_day_and_reach_the_full_cap_after_warming() {
        for (first, full, days) in [(20, 1500, 5), (10, 300, 3), (20, 1500, 1), (5, 100, 14)] {
            let s = WarmingSchedule { first_day_cap: first, ..Default::default() };
            let mut prev = 0;
            for day in 0..i64::from(days) {
                let cap = s.day_cap(full, days, Some(T0), T0 + day * DAY_MS);
                // Constant through the day, higher than the day before, below the full cap.
                assert_eq!(cap, s.day_cap(full, days, Some(T0), T0 + (day + 1) * DAY_MS - 1));
                assert!(cap > prev && cap < full, "day {}: {cap} after {prev}", day + 1);
                assert!(!WarmingSchedule::is_warmed(days, Some(T0), T0 + day * DAY_MS));
                prev = cap;
            }
            assert_eq!(s.day_cap(full, days, Some(T0), T0), first);
            let done = T0 + i64::from(days) * DAY_MS;
            assert_eq!(s.day_cap(full, days, Some(T0), done), full);
            assert!(WarmingSchedule::is_warmed(days, Some(T0), done));
            assert_eq!(s.day_cap(full, days, Some(T0), done + 100 * DAY_MS), full);
        }
    }

    #[test]
    fn edge_cases() {
        let s = WarmingSchedule::default();
        // Never connected: day 1, not warmed, no change scheduled.
        assert_eq!(s.day_cap(1500, 5, None, T0), 20);
        assert!(!WarmingSchedule::is_warmed(5, None, T0));
        assert_eq!(WarmingSchedule::next_change_ms(5, None, T0), None);
        // No warming at all.
        assert_eq!(s.day_cap(1500, 0, None, T0), 1500);
        assert!(WarmingSchedule::is_warmed(0, None, T0));
        // Never above the full cap, even when the first day's cap is larger.
        assert_eq!(
            WarmingSchedule { first_day_cap: 50, ..Default::default() }.day_cap(
                30,
                5,
                Some(T0),
                T0
            ),
            30
        );
        // A zero first-day cap still lets one message a day through.
        assert_eq!(
            WarmingSchedule { first_day_cap: 0, ..Default::default() }.day_cap(
                1500,
                5,
                Some(T0),
                T0
            ),
            1
        );
        // A clock behind the first connection counts as day 1.
        assert_eq!(s.day_cap(1500, 5, Some(T0), T0 - 5_000), 20);
    }

    #[test]
    fn first_contacts_warm_up_like_the_day_cap() {
        let s = WarmingSchedule::default();
        let caps: Vec<u32> =
            (0..7).map(|day| s.new_contacts_cap(40, 5, Some(T0), T0 + day * DAY_MS)).collect();
        // 8 × 5^((d − 1) / 5).
        assert_eq!(caps, [8, 11, 15, 21, 29, 40, 40]);
        assert_eq!(s.new_contacts_cap(40, 5, None, T0), 8);
        assert_eq!(s.new_contacts_cap(40, 0, None, T0), 40);
        assert_eq!(s.new_contacts_cap(5, 5, Some(T0), T0), 5, "never above the full cap");
    }

    #[test]
    fn a_rewarm_is_a_shorter_warm_up_from_its_start() {
        let s = WarmingSchedule::default();
        let from = T0 + 10 * DAY_MS;
        // Two days: 20, then 20 × 75^(1/2) ≈ 173, then full.
        let caps: Vec<u32> = [0, DAY_MS - 1, DAY_MS, 2 * DAY_MS - 1, 2 * DAY_MS]
            .iter()
            .map(|o| s.rewarm_cap(20, 1500, Some(from), from + o))
            .collect();
        assert_eq!(caps, [20, 20, 173, 173, 1500]);
        assert_eq!(s.rewarm_cap(8, 40, Some(from), from), 8);
        assert_eq!(s.rewarm_cap(20, 1500, None, from), 1500);
        assert!(s.is_rewarming(Some(from), from + 2 * DAY_MS - 1));
        assert!(!s.is_rewarming(Some(from), from + 2 * DAY_MS));
        assert_eq!(s.rewarm_until_ms(Some(from)), Some(from + 2 * DAY_MS));
        assert_eq!(s.rewarm_next_change_ms(Some(from), from + 5), Some(from + DAY_MS));
        assert_eq!(s.rewarm_next_change_ms(Some(from), from + 2 * DAY_MS), None);
        // Who starts one: idle for more than 72 h, and sent before.
        assert!(s.starts_rewarm(Some(from - 73 * 3_600_000), from));
        assert!(!s.starts_rewarm(Some(from - 3 * DAY_MS), from), "exactly 72 h is not idle");
        assert!(!s.starts_rewarm(None, from), "never sent: warming, not re-warming");
        let off = WarmingSchedule { rewarm_days: 0, ..s };
        assert!(!off.starts_rewarm(Some(from - 30 * DAY_MS), from));
        assert_eq!(off.rewarm_cap(20, 1500, Some(from), from), 1500);
    }

    #[test]
    fn the_next_change_is_the_next_day_start() {
        let at = T0 + DAY_MS + 5;
        assert_eq!(WarmingSchedule::next_change_ms(5, Some(T0), at), Some(T0 + 2 * DAY_MS));
        assert_eq!(WarmingSchedule::next_change_ms(5, Some(T0), T0), Some(T0 + DAY_MS));
        assert_eq!(WarmingSchedule::next_change_ms(5, Some(T0), T0 + 5 * DAY_MS), None);
    }

    #[test]
    fn agrees_with_the_instance_view() {
        use chrono::{DateTime, Utc};
        let t0 = DateTime::<Utc>::from_timestamp_millis(T0).unwrap();
        for offset in [0, DAY_MS - 1, 4 * DAY_MS, 5 * DAY_MS - 1, 5 * DAY_MS, 9 * DAY_MS] {
            let now = DateTime::<Utc>::from_timestamp_millis(T0 + offset).unwrap();
            for first in [Some(T0), None] {
                let view = crate::Warming::at(5, first.map(|_| t0), now);
                assert_eq!(
                    WarmingSchedule::is_warmed(5, first, T0 + offset),
                    !view.active,
                    "{offset} {first:?}"
                );
            }
        }
    }
}
