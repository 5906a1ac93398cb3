//! Re-warming: a number idle longer than `after` goes through a shorter warm-up of `days`
//! again, counted from when it began (`rewarm_from`, stored on the number). Pure.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The re-warm rule's two settings (`--rewarm-after-hours`, `--rewarm-days`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewarm {
    /// Idle this long, a number re-warms.
    pub after: Duration,
    /// How long a re-warm lasts.
    pub days: u32,
}

impl Rewarm {
    /// When a re-warm that began at `from` ends.
    pub fn until(&self, from: DateTime<Utc>) -> DateTime<Utc> {
        from + chrono::Duration::days(i64::from(self.days))
    }

    /// When the number's re-warm ends, while it lasts at `now`; `None` when it is not
    /// re-warming.
    pub fn active_until(
        &self,
        from: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        from.map(|f| self.until(f)).filter(|until| now < *until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewarm_lasts_its_days_from_its_start() {
        let r = Rewarm { after: Duration::from_secs(72 * 3600), days: 2 };
        let from = DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z").unwrap().to_utc();
        let until = r.until(from);
        assert_eq!(until.to_rfc3339(), "2026-01-03T10:00:00+00:00");
        assert_eq!(r.active_until(Some(from), from), Some(until));
        assert_eq!(r.active_until(Some(from), until - chrono::Duration::seconds(1)), Some(until));
        assert_eq!(r.active_until(Some(from), until), None, "over at its end");
        assert_eq!(r.active_until(None, from), None);
    }
}
