//! The client subcommands, one module per group, each talking to a running gateway through its
//! public HTTP API only (`docs/api.md`), never to its store.

pub mod campaign;
pub mod cluster;
pub mod events;
pub mod healthcheck;
pub mod instances;
pub mod send;

use std::fmt::Display;
use std::io::Write;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Writes `text` and a newline to stdout. A closed pipe (`bzapper events tail | head -3`) ends
/// the program quietly with success, the way `cat` does, instead of a panic.
pub fn print(text: impl Display) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(e.into()),
    }
}

/// A JSON answer, pretty, for `--json`.
pub fn print_json(v: &Value) -> anyhow::Result<()> {
    print(serde_json::to_string_pretty(v)?)
}

/// `2026-11-26T14:00:00.123Z` → `2026-11-26 14:00:00Z`; anything unparsable as given.
pub fn short_time(ts: &str) -> String {
    match DateTime::parse_from_rfc3339(ts) {
        Ok(t) => t.with_timezone(&Utc).format("%Y-%m-%d %H:%M:%SZ").to_string(),
        Err(_) => ts.to_string(),
    }
}

/// How long ago `ts` was, as `5s ago`, `3m ago`, `2h ago`, `4d ago`.
pub fn age(ts: &str, now: DateTime<Utc>) -> String {
    let Ok(t) = DateTime::parse_from_rfc3339(ts) else { return ts.to_string() };
    let secs = (now - t.with_timezone(&Utc)).num_seconds().max(0);
    match secs {
        0..=119 => format!("{secs}s ago"),
        120..=7199 => format!("{}m ago", secs / 60),
        7200..=172_799 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// `-` for an absent value, so that table cells are never empty.
pub fn or_dash(v: Option<&str>) -> String {
    v.filter(|s| !s.is_empty()).unwrap_or("-").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_short_and_ages_readable() {
        assert_eq!(short_time("2026-11-26T14:00:00.123Z"), "2026-11-26 14:00:00Z");
        assert_eq!(short_time("soon"), "soon");
        let now = DateTime::parse_from_rfc3339("2026-11-26T14:00:00Z").unwrap().to_utc();
        assert_eq!(age("2026-11-26T13:59:55Z", now), "5s ago");
        assert_eq!(age("2026-11-26T13:50:00Z", now), "10m ago");
        assert_eq!(age("2026-11-26T11:00:00Z", now), "3h ago");
        assert_eq!(age("2026-11-20T14:00:00Z", now), "6d ago");
        assert_eq!(age("2026-11-26T14:00:09Z", now), "0s ago");
    }
}
