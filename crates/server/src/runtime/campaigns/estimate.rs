//! The estimated finish time of a campaign from its pool's capacity now. Pure.
//!
//! Each connected number of the pool that is in rotation sends, on average, one message per
//! *cycle*: the typing time for the campaign's text (1.2 s + 45 ms per character, bounded to
//! 0.8–8 s) plus the mean gap after a send (the Beta(2,5) draw's mean, 2/7 of the way from
//! `min_gap_ms` to `max_gap_ms`). Its sustained rate is that, limited by its hourly cap and 60
//! times its per-minute cap (each lowered by its warming day cap, as the dispatcher does).
//! Its daily cap limits it too: over a day it sends at most its day cap, so its rate is also
//! at most `day cap / hours the window is open per day` (24 without a window). The pool's rate
//! is the sum over its numbers.
//!
//! The messages still to send (pending, queued, sending) then go out at that rate during the
//! window's openings, from now on. What it does not know: other traffic on the same numbers,
//! sends already made today, numbers that connect or drop later, and the randomness of the
//! gaps. No connected number: no estimate.

use bzapper_core::sending::{
    Caps, HOUR_MS, TYPING_BASE_MS, TYPING_MAX_MS, TYPING_MIN_MS, TYPING_PER_CHAR_MS,
};
use bzapper_core::Limits;
use chrono::{DateTime, Duration, Utc};

use super::window::Window;

/// A number's limits and its warming day cap today.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberCapacity {
    pub limits: Limits,
    pub day_cap: u32,
}

/// Sends per hour one number sustains for texts of `text_chars` characters, before its day
/// cap (see the module documentation).
pub fn hourly_rate(n: &NumberCapacity, text_chars: usize) -> f64 {
    let typing = (TYPING_BASE_MS + TYPING_PER_CHAR_MS * text_chars.min(1_000_000) as u64)
        .clamp(TYPING_MIN_MS, TYPING_MAX_MS);
    let (lo, hi) = (n.limits.min_gap_ms, n.limits.max_gap_ms.max(n.limits.min_gap_ms));
    let gap = lo as f64 + (hi - lo) as f64 * 2.0 / 7.0;
    let cycle_ms = typing as f64 + gap;
    let caps = Caps::effective(&n.limits, n.day_cap);
    (HOUR_MS as f64 / cycle_ms).min(f64::from(caps.per_hour)).min(60.0 * f64::from(caps.per_minute))
}

/// Hours the window is open in an average day (24 without a window), over the next week.
pub fn open_hours_per_day(window: Option<&Window>, now: DateTime<Utc>) -> f64 {
    let Some(w) = window else { return 24.0 };
    let week_end = now + Duration::days(7);
    let open: i64 = w
        .intervals_from(now)
        .take_while(|(open, _)| *open < week_end)
        .map(|(open, close)| (close.min(week_end) - open.max(now)).num_milliseconds())
        .sum();
    open as f64 / HOUR_MS as f64 / 7.0
}

/// The pool's rate in sends per hour while the window is open.
pub fn pool_rate(
    numbers: &[NumberCapacity],
    text_chars: usize,
    window: Option<&Window>,
    now: DateTime<Utc>,
) -> f64 {
    let hours = open_hours_per_day(window, now);
    if hours <= 0.0 {
        return 0.0;
    }
    numbers
        .iter()
        .map(|n| {
            let day = Caps::effective(&n.limits, n.day_cap).per_day;
            hourly_rate(n, text_chars).min(f64::from(day) / hours)
        })
        .sum()
}

/// When `remaining` sends are done at `rate` per hour, sending only while `window` is open.
/// `None` when nothing can be sent (no rate), or when it would take more than ten years.
pub fn finish_at(
    now: DateTime<Utc>,
    remaining: u64,
    rate_per_hour: f64,
    window: Option<&Window>,
) -> Option<DateTime<Utc>> {
    if remaining == 0 {
        return Some(now);
    }
    if rate_per_hour.is_nan() || rate_per_hour <= 0.0 {
        return None;
    }
    let mut need_ms = remaining as f64 / rate_per_hour * HOUR_MS as f64;
    let limit = now + Duration::days(3650);
    let Some(w) = window else {
        let t = now + Duration::milliseconds(need_ms.ceil() as i64);
        return (t <= limit).then_some(t);
    };
    for (open, close) in w.intervals_from(now) {
        let from = open.max(now);
        if from > limit {
            return None;
        }
        let span = (close - from).num_milliseconds() as f64;
        if need_ms <= span {
            return Some(from + Duration::milliseconds(need_ms.ceil() as i64));
        }
        need_ms -= span;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::window::ScheduleSpec;
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn number(min_gap_ms: u64, max_gap_ms: u64) -> NumberCapacity {
        NumberCapacity {
            limits: Limits {
                per_minute: 1_000,
                per_hour: 100_000,
                per_day: 1_000_000,
                min_gap_ms,
                max_gap_ms,
                ..Limits::default()
            },
            day_cap: 1_000_000,
        }
    }

    #[test]
    fn a_number_sends_one_message_per_typing_and_mean_gap() {
        // 20 characters: 1.2 s + 0.9 s typing; gap 3 s + 9 s × 2/7 = 5.571 s; 7.671 s a cycle.
        let r = hourly_rate(&number(3_000, 12_000), 20);
        assert!((r - 3_600_000.0 / 7_671.43).abs() < 0.01, "{r}");
        // Caps bind: the hour cap, the minute cap, and a warming day cap below both.
        let mut n = number(0, 0);
        n.limits.per_hour = 200;
        assert_eq!(hourly_rate(&n, 20), 200.0);
        n.limits.per_minute = 2;
        assert_eq!(hourly_rate(&n, 20), 120.0);
        n.day_cap = 20;
        assert_eq!(hourly_rate(&n, 20), 20.0);
    }

    #[test]
    fn the_day_cap_spreads_over_the_open_hours() {
        let now = at("2026-03-02T00:00:00Z");
        let mut n = number(0, 0);
        n.limits.per_hour = 1_000;
        n.limits.per_day = 1_200;
        n.day_cap = 1_200;
        // All day: 1200 a day is 50 an hour.
        assert_eq!(pool_rate(&[n.clone()], 10, None, now), 50.0);
        // Open 8 h a day: 150 an hour while open.
        let w = Window::parse(&ScheduleSpec {
            timezone: "UTC".into(),
            start: "09:00".into(),
            end: "17:00".into(),
            days: None,
        })
        .unwrap();
        assert!((open_hours_per_day(Some(&w), now) - 8.0).abs() < 1e-9);
        assert!((pool_rate(&[n.clone(), n], 10, Some(&w), now) - 300.0).abs() < 1e-9);
    }

    #[test]
    fn the_finish_time_skips_closed_hours() {
        let w = Window::parse(&ScheduleSpec {
            timezone: "UTC".into(),
            start: "09:00".into(),
            end: "17:00".into(),
            days: Some(vec!["mon".into(), "tue".into()]),
        })
        .unwrap();
        // Monday 16:00, 100 an hour, 250 to go: 100 by 17:00, the rest by Tuesday 10:30.
        let now = at("2026-03-02T16:00:00Z");
        assert_eq!(finish_at(now, 250, 100.0, Some(&w)), Some(at("2026-03-03T10:30:00Z")));
        // 1000 to go: Monday 1 h + Tuesday 8 h = 900, the last 100 next Monday by 10:00.
        assert_eq!(finish_at(now, 1_000, 100.0, Some(&w)), Some(at("2026-03-09T10:00:00Z")));
        // Sunday: waits for Monday's opening.
        assert_eq!(
            finish_at(at("2026-03-01T12:00:00Z"), 50, 100.0, Some(&w)),
            Some(at("2026-03-02T09:30:00Z"))
        );
        assert_eq!(finish_at(now, 30, 60.0, None), Some(at("2026-03-02T16:30:00Z")));
        assert_eq!(finish_at(now, 0, 0.0, None), Some(now));
        assert_eq!(finish_at(now, 1, 0.0, None), None, "no number, no estimate");
        assert_eq!(finish_at(now, u64::MAX, 1.0, Some(&w)), None, "beyond ten years");
    }
}
