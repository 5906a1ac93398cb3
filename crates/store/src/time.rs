//! Timestamps as the store keeps them: UTC with millisecond precision.
//!
//! The SQLite store writes every timestamp as INTEGER Unix milliseconds, so anything finer is
//! dropped on the way in. A record built in memory with `Utc::now()` (nanoseconds) would then
//! differ from the same record read back, and an API answer given at creation would show a
//! different `created_at` than a later GET. Build every timestamp that goes into a record with
//! [`now_millis`] (or pass outside values through [`truncate_to_millis`]) and both agree.

use chrono::{DateTime, Utc};

/// The current time, truncated to whole milliseconds: use it for every timestamp that is
/// stored (`created_at`, `connected_at`, event times).
pub fn now_millis() -> DateTime<Utc> {
    truncate_to_millis(Utc::now())
}

/// `t` without its sub-millisecond part, exactly as the store will give it back.
pub fn truncate_to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    from_millis(t.timestamp_millis()).unwrap_or(t)
}

pub(crate) fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_round_trips() {
        let t = DateTime::parse_from_rfc3339("2026-03-04T05:06:07.123456789Z").unwrap().to_utc();
        let m = truncate_to_millis(t);
        assert_eq!(m.to_rfc3339(), "2026-03-04T05:06:07.123+00:00");
        assert_eq!(from_millis(to_millis(m)), Some(m));
        let n = now_millis();
        assert_eq!(n.timestamp_subsec_micros() * 1000, n.timestamp_subsec_nanos());
        assert_eq!(n.timestamp_subsec_millis() * 1000, n.timestamp_subsec_micros());
        // Before the epoch too (floor, not toward zero).
        let old = DateTime::parse_from_rfc3339("1969-12-31T23:59:59.9996Z").unwrap().to_utc();
        assert_eq!(from_millis(to_millis(truncate_to_millis(old))), Some(truncate_to_millis(old)));
        assert!(truncate_to_millis(old) <= old);
    }
}
