//! Hours of the week during which something may happen, in an IANA time zone: a campaign's
//! schedule window, a number's active (waking) hours. Pure: every answer is a function of the
//! window and the instant asked about, so it is tested without waiting.
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

/// A checked window. Build it with [`Window::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    tz: Tz,
    start: NaiveTime,
    end: NaiveTime,
    /// Indexed by `Weekday::num_days_from_monday`.
    days: [bool; 7],
}

/// The day names a window takes and shows, Monday first.
pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_time(field: &str, name: &str, v: &str) -> Result<NaiveTime, String> {
    let ok = v.len() == 5 && v.as_bytes()[2] == b':';
    ok.then(|| NaiveTime::parse_from_str(v, "%H:%M").ok())
        .flatten()
        .ok_or_else(|| format!("`{field}.{name}` must be a time of day as HH:MM (24 h), not `{v}`"))
}

impl Window {
    /// Checks a client's window. `field` names it in the error, which is the sentence an API
    /// answers with (e.g. `schedule` gives "`schedule.timezone` … is not a known IANA time
    /// zone"). `days`: the days it opens on (`mon` … `sun`, any case), every day when `None`.
    pub fn parse(
        field: &str,
        timezone: &str,
        start: &str,
        end: &str,
        days: Option<&[String]>,
    ) -> Result<Window, String> {
        let tz = Tz::from_str(timezone.trim()).map_err(|_| {
            format!(
                "`{field}.timezone` `{timezone}` is not a known IANA time zone \
                 (e.g. America/Sao_Paulo)"
            )
        })?;
        let start = parse_time(field, "start", start.trim())?;
        let end = parse_time(field, "end", end.trim())?;
        if start == end {
            return Err(format!("`{field}.start` and `{field}.end` must differ"));
        }
        let days = match days {
            None => [true; 7],
            Some(list) => {
                if list.is_empty() {
                    return Err(format!(
                        "`{field}.days` must name at least one day (or be left out)"
                    ));
                }
                let mut days = [false; 7];
                for d in list {
                    let w = Weekday::from_str(d.trim()).map_err(|_| {
                        format!("`{field}.days`: `{d}` is not a day (mon, tue, … sun)")
                    })?;
                    days[w.num_days_from_monday() as usize] = true;
                }
                days
            }
        };
        Ok(Window { tz, start, end, days })
    }

    /// The zone's canonical name.
    pub fn timezone(&self) -> &'static str {
        self.tz.name()
    }

    /// The opening time as `HH:MM`.
    pub fn start_hhmm(&self) -> String {
        self.start.format("%H:%M").to_string()
    }

    /// The closing time as `HH:MM`.
    pub fn end_hhmm(&self) -> String {
        self.end.format("%H:%M").to_string()
    }

    /// The days it opens on, in week order; `None` when every day.
    pub fn day_names(&self) -> Option<Vec<String>> {
        (self.days != [true; 7]).then(|| {
            DAY_NAMES
                .iter()
                .zip(self.days)
                .filter(|(_, on)| *on)
                .map(|(n, _)| n.to_string())
                .collect()
        })
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

    /// [`Window::is_open`] at a Unix time in milliseconds.
    pub fn is_open_ms(&self, at_ms: i64) -> bool {
        utc(at_ms).is_some_and(|at| self.is_open(at))
    }

    /// [`Window::next_open`] at a Unix time in milliseconds: `at_ms` itself while open.
    pub fn next_open_ms(&self, at_ms: i64) -> Option<i64> {
        self.next_open(utc(at_ms)?).map(|t| t.timestamp_millis().max(at_ms))
    }

    /// The current or next opening as `[open, close)` in Unix milliseconds, `close > at_ms`.
    pub fn current_or_next_ms(&self, at_ms: i64) -> Option<(i64, i64)> {
        let (open, close) = self.current_or_next(utc(at_ms)?)?;
        Some((open.timestamp_millis(), close.timestamp_millis()))
    }

    /// [`Window::closes_at`] at a Unix time in milliseconds.
    pub fn closes_at_ms(&self, at_ms: i64) -> Option<i64> {
        self.closes_at(utc(at_ms)?).map(|t| t.timestamp_millis())
    }
}

fn utc(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(tz: &str, start: &str, end: &str, days: Option<&[&str]>) -> Window {
        try_window(tz, start, end, days).unwrap()
    }

    fn try_window(
        tz: &str,
        start: &str,
        end: &str,
        days: Option<&[&str]>,
    ) -> Result<Window, String> {
        let days: Option<Vec<String>> = days.map(|d| d.iter().map(|s| s.to_string()).collect());
        Window::parse("active_hours", tz, start, end, days.as_deref())
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn ms(s: &str) -> i64 {
        at(s).timestamp_millis()
    }

    #[test]
    fn office_hours_in_sao_paulo() {
        // São Paulo is UTC−3 all year (no daylight saving since 2019).
        let w = window("America/Sao_Paulo", "09:00", "18:00", None);
        assert!(!w.is_open(at("2026-03-02T11:59:59Z")), "08:59:59 local");
        assert!(w.is_open(at("2026-03-02T12:00:00Z")), "09:00 local");
        assert!(!w.is_open(at("2026-03-02T21:00:00Z")), "18:00 local: closed");
        assert_eq!(w.next_open(at("2026-03-02T22:00:00Z")), Some(at("2026-03-03T12:00:00Z")));
        assert_eq!(w.closes_at(at("2026-03-02T13:00:00Z")), Some(at("2026-03-02T21:00:00Z")));
        assert_eq!(w.next_open_ms(ms("2026-03-02T10:00:00Z")), Some(ms("2026-03-02T12:00:00Z")));
        assert_eq!(
            w.next_open_ms(ms("2026-03-02T13:00:00Z") + 7),
            Some(ms("2026-03-02T13:00:00Z") + 7)
        );
        assert!(w.is_open_ms(ms("2026-03-02T13:00:00Z")));
        assert_eq!(w.closes_at_ms(ms("2026-03-02T13:00:00Z")), Some(ms("2026-03-02T21:00:00Z")));
    }

    #[test]
    fn overnight_hours_in_a_zone_with_daylight_saving() {
        // Berlin: CET (UTC+1) until 2026-03-29 02:00, then CEST (UTC+2). 22:00–07:00 on
        // week nights only (Sunday to Thursday).
        let w =
            window("Europe/Berlin", "22:00", "07:00", Some(&["sun", "mon", "tue", "wed", "thu"]));
        // Thursday 2026-03-26 23:30 CET = 22:30Z: open (Thursday's night).
        assert!(w.is_open_ms(ms("2026-03-26T22:30:00Z")));
        // Friday 06:59 CET = 05:59Z: still Thursday's night; 07:00 CET closes it.
        assert!(w.is_open_ms(ms("2026-03-27T05:59:00Z")));
        assert!(!w.is_open_ms(ms("2026-03-27T06:00:00Z")));
        // Friday and Saturday nights are off: next opening Sunday 22:00, which is CEST
        // after the change of 29 March: 20:00Z.
        assert!(!w.is_open_ms(ms("2026-03-27T22:30:00Z")));
        assert_eq!(w.next_open_ms(ms("2026-03-27T06:00:00Z")), Some(ms("2026-03-29T20:00:00Z")));
        assert_eq!(w.closes_at_ms(ms("2026-03-29T21:00:00Z")), Some(ms("2026-03-30T05:00:00Z")));
        assert_eq!(w.day_names().unwrap(), ["mon", "tue", "wed", "thu", "sun"]);
    }

    #[test]
    fn daylight_saving_changes() {
        // New York springs forward on 2026-03-08 at 02:00 (to 03:00) and falls back on
        // 2026-11-01 at 02:00 (to 01:00).
        let w = window("America/New_York", "02:30", "09:00", None);
        assert_eq!(w.next_open(at("2026-03-08T05:00:00Z")), Some(at("2026-03-08T07:00:00Z")));
        let w = window("America/New_York", "01:30", "09:00", None);
        assert_eq!(w.next_open(at("2026-11-01T04:00:00Z")), Some(at("2026-11-01T05:30:00Z")));
    }

    #[test]
    fn bad_windows_are_refused_with_a_reason_naming_the_field() {
        let e = try_window("Mars/Olympus", "09:00", "18:00", None).unwrap_err();
        assert!(e.contains("`active_hours.timezone`"), "{e}");
        let e = try_window("UTC", "09:00", "09:00", None).unwrap_err();
        assert!(e.contains("differ"), "{e}");
        for bad in ["9:00", "24:00", "09:60", "0900", "09:00:00", "noon"] {
            let e = try_window("UTC", bad, "18:00", None).unwrap_err();
            assert!(e.contains("`active_hours.start`") && e.contains("HH:MM"), "{bad}: {e}");
        }
        assert!(try_window("UTC", "09:00", "18:00", Some(&[])).is_err());
        let w = window(" UTC ", "09:00", "18:00", Some(&DAY_NAMES));
        assert_eq!(
            (w.timezone(), w.start_hhmm(), w.end_hhmm(), w.day_names()),
            ("UTC", "09:00".into(), "18:00".into(), None)
        );
    }
}
