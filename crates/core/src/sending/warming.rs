//! The warming schedule: the daily cap of a fresh number, growing day by day from a low start to
//! the full `per_day` once `warming_days` have passed since it first connected.
//!
//! A brand-new number that sends hundreds of messages on its first day is the classic ban
//! trigger; a number whose volume grows gradually looks like a person who started using it.

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
}

impl Default for WarmingSchedule {
    fn default() -> Self {
        WarmingSchedule { first_day_cap: 20 }
    }
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
        if warming_days == 0 {
            return full_per_day;
        }
        let first = self.first_day_cap.max(1).min(full_per_day);
        let Some(start) = first_connected_at_ms else {
            return first;
        };
        let day = day_number(start, now_ms);
        if day > i64::from(warming_days) || first == full_per_day {
            return full_per_day;
        }
        let growth = f64::from(full_per_day) / f64::from(first);
        let cap = f64::from(first) * growth.powf((day - 1) as f64 / f64::from(warming_days));
        (cap.round() as u32).clamp(first, full_per_day)
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
            let s = WarmingSchedule { first_day_cap: first };
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
        assert_eq!(WarmingSchedule { first_day_cap: 50 }.day_cap(30, 5, Some(T0), T0), 30);
        // A zero first-day cap still lets one message a day through.
        assert_eq!(WarmingSchedule { first_day_cap: 0 }.day_cap(1500, 5, Some(T0), T0), 1);
        // A clock behind the first connection counts as day 1.
        assert_eq!(s.day_cap(1500, 5, Some(T0), T0 - 5_000), 20);
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
