//! The per-number send caps (per minute, hour and day) as sliding windows: the record of a
//! number's recent sends and the earliest moment one more send stays within every window.
//!
//! Sliding windows, not calendar buckets: a bucket per clock minute lets a number send its whole
//! minute's cap in the last second of one minute and again in the first second of the next.

use std::collections::VecDeque;

use super::warming::DAY_MS;
use crate::Limits;

/// One minute in milliseconds.
pub const MINUTE_MS: i64 = 60_000;
/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// The caps in force for one number right now: its limits, with the day cap reduced by warming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub per_minute: u32,
    pub per_hour: u32,
    pub per_day: u32,
}

impl Caps {
    /// The number's caps given its `limits` and its warming `day_cap`: the day cap is the lower
    /// of the two, the hour cap never exceeds the day cap and the minute cap never exceeds the
    /// hour cap, so the windows stay ordered as `Limits::check` requires of a client's values.
    pub fn effective(limits: &Limits, day_cap: u32) -> Caps {
        let per_day = limits.per_day.min(day_cap);
        let per_hour = limits.per_hour.min(per_day);
        let per_minute = limits.per_minute.min(per_hour);
        Caps { per_minute, per_hour, per_day }
    }

    fn windows(&self) -> [(i64, u32); 3] {
        [(MINUTE_MS, self.per_minute), (HOUR_MS, self.per_hour), (DAY_MS, self.per_day)]
    }
}

/// The times of one number's recent sends (Unix ms, ascending), kept for 24 h.
///
/// A send at `t` counts against a window of length `W` at time `now` when `t > now − W`. A new
/// send is within the cap `c` of that window when fewer than `c` sends count, which is the same
/// as: any two sends `c` places apart are at least `W` ms apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendLog {
    times: VecDeque<i64>,
}

impl SendLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a send at `at_ms`, and forgets sends more than 24 h older than the newest one
    /// (no window is longer). Out-of-order records are placed where they belong.
    pub fn record(&mut self, at_ms: i64) {
        let pos = self.times.partition_point(|&t| t <= at_ms);
        self.times.insert(pos, at_ms);
        let newest = *self.times.back().expect("just inserted");
        while self.times.front().is_some_and(|&t| t <= newest - DAY_MS) {
            self.times.pop_front();
        }
    }

    /// Moves one send recorded at `from_ms` to `to_ms` when that is later, wherever it is in the
    /// log (records `to_ms` when the send was already forgotten): the dispatcher records a send
    /// when it hands it out, at the earliest moment it can happen, and moves it to when it was
    /// reported finished, the latest moment it can have happened. Counting every send at its
    /// latest possible time keeps the caps true whatever the send really took.
    pub(crate) fn settle(&mut self, from_ms: i64, to_ms: i64) {
        if to_ms > from_ms {
            self.remove_one(from_ms);
            self.record(to_ms);
        }
    }

    /// Forgets one send recorded at `at_ms` (a send that did not happen). False when none.
    pub(crate) fn remove_one(&mut self, at_ms: i64) -> bool {
        let pos = self.times.partition_point(|&t| t < at_ms);
        let found = self.times.get(pos) == Some(&at_ms);
        if found {
            self.times.remove(pos);
        }
        found
    }

    /// Forgets every send at or before `at_ms`.
    pub(crate) fn forget_until(&mut self, at_ms: i64) {
        while self.times.front().is_some_and(|&t| t <= at_ms) {
            self.times.pop_front();
        }
    }

    /// The newest recorded send.
    pub fn newest(&self) -> Option<i64> {
        self.times.back().copied()
    }

    /// The earliest time from which one more send keeps at most `cap` sends in every window of
    /// `window_ms` (`i64::MIN` when it is not full, `i64::MAX` when `cap` is 0), assuming none
    /// is recorded meanwhile: [`SendLog::earliest_allowed_ms`] for a single window.
    pub fn earliest_within(&self, window_ms: i64, cap: u32) -> i64 {
        if cap == 0 {
            return i64::MAX;
        }
        let (n, cap) = (self.times.len(), cap as usize);
        if n >= cap {
            self.times[n - cap].saturating_add(window_ms)
        } else {
            i64::MIN
        }
    }

    /// How many recorded sends happened at or after `since_ms`.
    pub fn count_since(&self, since_ms: i64) -> usize {
        self.times.len() - self.times.partition_point(|&t| t < since_ms)
    }

    /// The sends that count in the last `window_ms` at `now_ms`.
    pub fn count_in_window(&self, now_ms: i64, window_ms: i64) -> usize {
        self.count_since(now_ms.saturating_sub(window_ms).saturating_add(1))
    }

    /// The earliest time from which one more send stays within every window, assuming no send
    /// is recorded in the meantime: `i64::MIN` when no window is full, `i64::MAX` when a cap is
    /// 0. Exact for any time at or after the newest recorded send.
    pub fn earliest_allowed_ms(&self, caps: &Caps) -> i64 {
        let n = self.times.len();
        let mut earliest = i64::MIN;
        for (window, cap) in caps.windows() {
            if cap == 0 {
                return i64::MAX;
            }
            let cap = cap as usize;
            if n >= cap {
                // The new send is allowed once the cap-th newest send has left the window.
                earliest = earliest.max(self.times[n - cap].saturating_add(window));
            }
        }
        earliest
    }

    /// The earliest time at or after `now_ms` when one more send stays within every sliding
    /// window (60 s, 3600 s, 86400 s) of `caps`; `i64::MAX` when a cap is 0.
    pub fn next_allowed_ms(&self, now_ms: i64, caps: &Caps) -> i64 {
        self.earliest_allowed_ms(caps).max(now_ms)
    }

    /// How many sends are kept (those of the last 24 h before the newest).
    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn caps(per_minute: u32, per_hour: u32, per_day: u32) -> Caps {
        Caps { per_minute, per_hour, per_day }
    }

    #[test]
    fn effective_caps_take_warming_into_account() {
        let l = Limits::default();
        assert_eq!(Caps::effective(&l, 5_000), caps(8, 200, 1500));
        assert_eq!(Caps::effective(&l, 633), caps(8, 200, 633));
        assert_eq!(Caps::effective(&l, 112), caps(8, 112, 112));
        assert_eq!(Caps::effective(&l, 5), caps(5, 5, 5));
    }

    #[test]
    fn next_allowed_waits_for_the_oldest_send_to_leave_the_window() {
        let c = caps(2, 3, 10);
        let mut log = SendLog::new();
        assert_eq!(log.next_allowed_ms(0, &c), 0);
        log.record(0);
        assert_eq!(log.next_allowed_ms(10, &c), 10);
        log.record(1_000);
        // Two in the last minute: the third waits until the send at 0 is a minute old.
        assert_eq!(log.next_allowed_ms(1_000, &c), MINUTE_MS);
        log.record(MINUTE_MS);
        assert_eq!(log.count_in_window(MINUTE_MS, MINUTE_MS), 2);
        // Three in the hour: the fourth waits for the hour.
        assert_eq!(log.next_allowed_ms(MINUTE_MS + 1, &c), HOUR_MS);
        assert_eq!(log.next_allowed_ms(HOUR_MS + 5, &c), HOUR_MS + 5);
        assert_eq!(log.count_since(1_000), 2);
        // A zero cap never allows anything.
        assert_eq!(log.next_allowed_ms(0, &caps(0, 0, 0)), i64::MAX);
    }

    #[test]
    fn old_sends_are_forgotten_after_a_day() {
        let mut log = SendLog::new();
        for i in 0..100 {
            log.record(i * HOUR_MS);
        }
        assert_eq!(log.len(), 24);
        // Out of order: lands in place.
        log.record(98 * HOUR_MS + 1);
        assert_eq!(log.count_since(98 * HOUR_MS + 1), 2);
    }

    /// Every window of every length in `windows` holds at most its cap, checked by brute force.
    fn violations(times: &[i64], c: &Caps) -> usize {
        let mut v = 0;
        for (w, cap) in c.windows() {
            let cap = cap as usize;
            for i in 0..times.len() {
                let in_window = times[i..].iter().take_while(|&&t| t < times[i] + w).count();
                if in_window > cap {
                    v += 1;
                }
            }
        }
        v
    }

    #[test]
    fn caps_are_never_exceeded_over_a_long_random_run() {
        let mut rng = StdRng::seed_from_u64(7);
        for c in [caps(3, 20, 100), caps(8, 200, 1500), caps(1, 1, 1), caps(5, 5, 30)] {
            let mut log = SendLog::new();
            let mut sent = vec![];
            let mut now = 0i64;
            // Three simulated days of eager senders arriving every 0–20 s.
            while now < 3 * DAY_MS {
                now += rng.gen_range(0..20_000);
                let at = log.next_allowed_ms(now, &c);
                if at == now {
                    log.record(now);
                    sent.push(now);
                } else {
                    assert!(at > now);
                }
            }
            assert_eq!(violations(&sent, &c), 0, "{c:?}");
            // And the caps are actually reached: a day's worth is sent each day.
            assert!(sent.len() as u32 >= 2 * c.per_day, "{c:?}: {}", sent.len());
        }
    }

    #[test]
    fn single_windows_removal_and_settling_anywhere() {
        let mut log = SendLog::new();
        assert_eq!(log.earliest_within(HOUR_MS, 2), i64::MIN);
        for t in [0, 10, 20] {
            log.record(t);
        }
        assert_eq!(log.earliest_within(HOUR_MS, 2), 10 + HOUR_MS);
        assert_eq!(log.earliest_within(HOUR_MS, 0), i64::MAX);
        assert!(log.remove_one(10));
        assert!(!log.remove_one(10));
        assert_eq!(log.earliest_within(HOUR_MS, 2), HOUR_MS);
        log.settle(0, 30);
        assert_eq!((log.count_since(21), log.newest()), (1, Some(30)));
        log.settle(30, 5);
        assert_eq!(log.newest(), Some(30), "never earlier");
        log.forget_until(20);
        assert_eq!(log.len(), 1);
    }

    #[test]
    fn settling_moves_the_newest_send_later_only() {
        let mut log = SendLog::new();
        log.record(1_000);
        log.settle(1_000, 500);
        assert_eq!(log.count_since(1_000), 1);
        log.settle(1_000, 4_000);
        assert_eq!(log.count_since(4_000), 1);
    }
}
