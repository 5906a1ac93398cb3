//! A campaign's schedule window: the local hours (in an IANA time zone) and week days during
//! which its messages may be queued. The API's form of it (`ScheduleSpec`, with its OpenAPI
//! schema) lives here; the rules (overnight windows, daylight-saving changes, when it opens
//! and closes) are `bzapper_core::hours`, shared with the numbers' active hours.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use bzapper_core::hours;
#[cfg(test)]
use bzapper_core::hours::DAY_NAMES;

/// A window as clients give it and as it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// An IANA time zone, e.g. `America/Sao_Paulo`.
    pub timezone: String,
    /// Local opening time, `HH:MM` (24 h).
    pub start: String,
    /// Local closing time, `HH:MM`; earlier than `start` for an overnight window.
    pub end: String,
    /// Days the window opens on (`mon` … `sun`); every day when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<Vec<String>>,
}

/// A checked campaign window: `bzapper_core::hours::Window` read from a `ScheduleSpec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window(hours::Window);

impl Window {
    /// Checks a client's window; the error is the sentence the API answers with.
    pub fn parse(spec: &ScheduleSpec) -> Result<Window, String> {
        let days = spec.days.as_deref();
        hours::Window::parse("schedule", &spec.timezone, &spec.start, &spec.end, days).map(Window)
    }

    /// The canonical form, as stored and shown: the zone's own name, `HH:MM`, days in week
    /// order (absent when every day).
    pub fn spec(&self) -> ScheduleSpec {
        ScheduleSpec {
            timezone: self.0.timezone().to_string(),
            start: self.0.start_hhmm(),
            end: self.0.end_hhmm(),
            days: self.0.day_names(),
        }
    }

    /// The rules' own form.
    pub fn hours(&self) -> &hours::Window {
        &self.0
    }

    /// Every opening from the one that may contain `at` on, as `[open, close)` in UTC.
    pub fn intervals_from(
        &self,
        at: DateTime<Utc>,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        self.0.intervals_from(at)
    }

    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        self.0.is_open(at)
    }

    /// When the window next opens: `at` itself while it is open.
    pub fn next_open(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.next_open(at)
    }

    /// When the window closes, while it is open.
    pub fn closes_at(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.closes_at(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tz: &str, start: &str, end: &str, days: Option<&[&str]>) -> ScheduleSpec {
        ScheduleSpec {
            timezone: tz.into(),
            start: start.into(),
            end: end.into(),
            days: days.map(|d| d.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn office_hours_in_sao_paulo() {
        // São Paulo is UTC−3 all year (no daylight saving since 2019).
        let w = Window::parse(&spec("America/Sao_Paulo", "09:00", "18:00", None)).unwrap();
        assert!(!w.is_open(at("2026-03-02T11:59:59Z")), "08:59:59 local");
        assert!(w.is_open(at("2026-03-02T12:00:00Z")), "09:00 local");
        assert!(w.is_open(at("2026-03-02T20:59:59Z")));
        assert!(!w.is_open(at("2026-03-02T21:00:00Z")), "18:00 local: closed");
        assert_eq!(w.next_open(at("2026-03-02T10:00:00Z")), Some(at("2026-03-02T12:00:00Z")));
        assert_eq!(w.next_open(at("2026-03-02T13:00:00Z")), Some(at("2026-03-02T13:00:00Z")));
        assert_eq!(w.next_open(at("2026-03-02T22:00:00Z")), Some(at("2026-03-03T12:00:00Z")));
        assert_eq!(w.closes_at(at("2026-03-02T13:00:00Z")), Some(at("2026-03-02T21:00:00Z")));
        assert_eq!(w.closes_at(at("2026-03-02T22:00:00Z")), None);
    }

    #[test]
    fn week_days_only() {
        // 2026-03-06 is a Friday.
        let w = Window::parse(&spec(
            "UTC",
            "09:00",
            "17:00",
            Some(&["mon", "Tue", "wed", "thu", "fri"]),
        ))
        .unwrap();
        assert!(w.is_open(at("2026-03-06T10:00:00Z")));
        assert!(!w.is_open(at("2026-03-07T10:00:00Z")), "Saturday");
        assert_eq!(w.next_open(at("2026-03-06T18:00:00Z")), Some(at("2026-03-09T09:00:00Z")));
        assert_eq!(w.spec().days.unwrap(), ["mon", "tue", "wed", "thu", "fri"]);
    }

    #[test]
    fn overnight_windows_belong_to_the_day_they_open() {
        // Only Friday night: 22:00 Friday to 06:00 Saturday.
        let w = Window::parse(&spec("UTC", "22:00", "06:00", Some(&["fri"]))).unwrap();
        assert!(w.is_open(at("2026-03-06T23:00:00Z")));
        assert!(w.is_open(at("2026-03-07T05:59:00Z")), "Saturday early: Friday's window");
        assert!(!w.is_open(at("2026-03-07T23:00:00Z")), "Saturday night is not open");
        assert_eq!(w.closes_at(at("2026-03-07T01:00:00Z")), Some(at("2026-03-07T06:00:00Z")));
        assert_eq!(w.next_open(at("2026-03-07T07:00:00Z")), Some(at("2026-03-13T22:00:00Z")));
        // End at midnight.
        let w = Window::parse(&spec("UTC", "20:00", "00:00", None)).unwrap();
        assert_eq!(w.closes_at(at("2026-03-06T21:00:00Z")), Some(at("2026-03-07T00:00:00Z")));
    }

    #[test]
    fn daylight_saving_changes() {
        // New York springs forward on 2026-03-08 at 02:00 (to 03:00) and falls back on
        // 2026-11-01 at 02:00 (to 01:00).
        let w = Window::parse(&spec("America/New_York", "02:30", "09:00", None)).unwrap();
        // 02:30 does not exist on the 8th: the window opens at 03:00 EDT = 07:00Z.
        assert_eq!(w.next_open(at("2026-03-08T05:00:00Z")), Some(at("2026-03-08T07:00:00Z")));
        assert_eq!(w.closes_at(at("2026-03-08T08:00:00Z")), Some(at("2026-03-08T13:00:00Z")));
        let w = Window::parse(&spec("America/New_York", "01:30", "09:00", None)).unwrap();
        // 01:30 happens twice on 1 November: the first one (EDT, 05:30Z) opens the window.
        assert_eq!(w.next_open(at("2026-11-01T04:00:00Z")), Some(at("2026-11-01T05:30:00Z")));
    }

    #[test]
    fn bad_windows_are_refused_with_a_reason() {
        let e = Window::parse(&spec("Mars/Olympus", "09:00", "18:00", None)).unwrap_err();
        assert!(e.contains("time zone"), "{e}");
        let e = Window::parse(&spec("UTC", "09:00", "09:00", None)).unwrap_err();
        assert!(e.contains("differ"), "{e}");
        for bad in ["9:00", "24:00", "09:60", "0900", "09:00:00", "noon"] {
            let e = Window::parse(&spec("UTC", bad, "18:00", None)).unwrap_err();
            assert!(e.contains("HH:MM"), "{bad}: {e}");
        }
        assert!(Window::parse(&spec("UTC", "09:00", "18:00", Some(&[]))).is_err());
        let e = Window::parse(&spec("UTC", "09:00", "18:00", Some(&["funday"]))).unwrap_err();
        assert!(e.contains("funday"), "{e}");
        let w = Window::parse(&spec(" UTC ", "09:00", "18:00", Some(&["sun", "mon"]))).unwrap();
        assert_eq!(w.spec(), spec("UTC", "09:00", "18:00", Some(&["mon", "sun"])));
        let all = Window::parse(&spec("UTC", "09:00", "18:00", Some(&DAY_NAMES))).unwrap();
        assert_eq!(all.spec().days, None);
    }
}
