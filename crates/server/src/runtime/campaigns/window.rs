//! A campaign's schedule window: the local hours (in an IANA time zone) and week days during
//! which its messages may be queued. Pure: every answer is a function of the window and the
//! instant asked about, so it is tested without waiting.
//!
//! A window opens at `start` on each allowed day and closes at `end`, the same day when
//! `end` is later than `start`, or the next day when it is earlier (an overnight window such
//! as 22:00–06:00 belongs to the day it opens; `end` 00:00 is midnight). Local times that a
//! daylight-saving change skips move forward to the first instant that exists; times it
//! repeats take their first occurrence.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime};
use chrono::{TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    tz: Tz,
    start: NaiveTime,
    end: NaiveTime,
    /// Indexed by `Weekday::num_days_from_monday`.
    days: [bool; 7],
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_time(field: &str, v: &str) -> Result<NaiveTime, String> {
    let ok = v.len() == 5 && v.as_bytes()[2] == b':';
    ok.then(|| NaiveTime::parse_from_str(v, "%H:%M").ok()).flatten().ok_or_else(|| {
        format!("`schedule.{field}` must be a time of day as HH:MM (24 h), not `{v}`")
    })
}

impl Window {
    /// Checks a client's window; the error is the sentence the API answers with.
    pub fn parse(spec: &ScheduleSpec) -> Result<Window, String> {
        let tz = Tz::from_str(spec.timezone.trim()).map_err(|_| {
            format!(
                "`schedule.timezone` `{}` is not a known IANA time zone (e.g. America/Sao_Paulo)",
                spec.timezone
            )
        })?;
        let start = parse_time("start", spec.start.trim())?;
        let end = parse_time("end", spec.end.trim())?;
        if start == end {
            return Err("`schedule.start` and `schedule.end` must differ".into());
        }
        let days = match &spec.days {
            None => [true; 7],
            Some(list) => {
                if list.is_empty() {
                    return Err(
                        "`schedule.days` must name at least one day (or be left out)".into()
                    );
                }
                let mut days = [false; 7];
                for d in list {
                    let w = Weekday::from_str(d.trim()).map_err(|_| {
                        format!("`schedule.days`: `{d}` is not a day (mon, tue, … sun)")
                    })?;
                    days[w.num_days_from_monday() as usize] = true;
                }
                days
            }
        };
        Ok(Window { tz, start, end, days })
    }

    /// The canonical form, as stored and shown: the zone's own name, `HH:MM`, days in week
    /// order (absent when every day).
    pub fn spec(&self) -> ScheduleSpec {
        ScheduleSpec {
            timezone: self.tz.name().to_string(),
            start: self.start.format("%H:%M").to_string(),
            end: self.end.format("%H:%M").to_string(),
            days: (self.days != [true; 7]).then(|| {
                DAY_NAMES
                    .iter()
                    .zip(self.days)
                    .filter(|(_, on)| *on)
                    .map(|(n, _)| n.to_string())
                    .collect()
            }),
        }
    }

    fn to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            // Skipped by a daylight-saving change: the first minute after the gap.
            LocalResult::None => (1..=180)
                .find_map(|m| {
                    self.tz.from_local_datetime(&(local + Duration::minutes(m))).earliest()
                })
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| Utc.from_utc_datetime(&local)),
        }
    }

    /// The window that opens on local date `day` as `[open, close)` in UTC, if it opens then.
    fn on(&self, day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.days[day.weekday().num_days_from_monday() as usize] {
            return None;
        }
        let close_day = if self.end > self.start { day } else { day.succ_opt()? };
        let open = self.to_utc(day.and_time(self.start));
        let close = self.to_utc(close_day.and_time(self.end));
        (close > open).then_some((open, close))
    }

    /// Every opening from the one that may contain `at` on, as `[open, close)` in UTC, in
    /// order, skipping those already over at `at`. Endless: a window opens at least weekly.
    pub fn intervals_from(
        &self,
        at: DateTime<Utc>,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        // An overnight window that opened yesterday (local) may still be open.
        let first = at.with_timezone(&self.tz).date_naive().pred_opt().unwrap_or(NaiveDate::MIN);
        first.iter_days().filter_map(|d| self.on(d)).filter(move |(_, close)| *close > at)
    }

    /// The current or next opening: `(open, close)` with `close > at`.
    fn current_or_next(&self, at: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.intervals_from(at).next()
    }

    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        self.current_or_next(at).is_some_and(|(open, _)| open <= at)
    }

    /// When the window next opens: `at` itself while it is open.
    pub fn next_open(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.current_or_next(at).map(|(open, _)| open.max(at))
    }

    /// When the window closes, while it is open.
    pub fn closes_at(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.current_or_next(at).filter(|(open, _)| *open <= at).map(|(_, close)| close)
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
