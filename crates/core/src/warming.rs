//! Warming: how long a freshly connected number stays on reduced limits. The window starts the
//! first time the number connects and lasts `days`; until then the number is not warming yet.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// What docs/api.md shows as `warming`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warming {
    pub days: u32,
    /// When warming ends; `null` until the number first connects.
    pub until: Option<DateTime<Utc>>,
    /// True while the number is inside its warming window, or has never connected.
    pub active: bool,
}

impl Warming {
    pub fn at(days: u32, first_connected_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        let until = first_connected_at.map(|t| t + Duration::days(i64::from(days)));
        let active = match until {
            Some(u) => now < u,
            None => days > 0,
        };
        Warming { days, until, active }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warming_ends_after_the_configured_days() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().to_utc();
        let w = Warming::at(5, Some(t0), t0 + Duration::days(4));
        assert!(w.active);
        assert_eq!(w.until, Some(t0 + Duration::days(5)));
        assert!(!Warming::at(5, Some(t0), t0 + Duration::days(5)).active);
        assert!(!Warming::at(0, Some(t0), t0).active);
    }

    #[test]
    fn a_number_that_never_connected_is_warming_with_no_end_yet() {
        let now = Utc::now();
        let w = Warming::at(5, None, now);
        assert!(w.active);
        assert_eq!(w.until, None);
    }
}
