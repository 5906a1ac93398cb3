//! The gateway's notion of "now": UTC truncated to milliseconds, the precision the store keeps,
//! so that a value read back equals the value written.

use chrono::{DateTime, DurationRound, SubsecRound, TimeDelta, Utc};

pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t)
}

/// `t` at the store's precision, rounded up: the first whole millisecond at or after it. For
/// an instant given by someone else (a network's ban end, in nanoseconds) that is compared
/// later with the value read back: both must be the same instant, and rounding up, never
/// down, keeps what waits for it from acting before it.
pub fn at_store_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    let whole = t.trunc_subsecs(3);
    if whole < t {
        whole + TimeDelta::milliseconds(1)
    } else {
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::at_store_precision;
    use chrono::{TimeDelta, TimeZone, Utc};

    #[test]
    fn an_instant_is_rounded_up_to_the_stores_whole_millisecond() {
        let whole = Utc.timestamp_millis_opt(1_765_000_000_123).unwrap();
        assert_eq!(at_store_precision(whole), whole);
        let later = whole + TimeDelta::nanoseconds(456);
        assert_eq!(at_store_precision(later), whole + TimeDelta::milliseconds(1));
    }
}
