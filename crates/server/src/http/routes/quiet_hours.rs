//! Quiet hours as pools and numbers take them: a schedule window (`{timezone, start, end,
//! days?}`, the campaigns' shape) naming the *active* hours, checked once here and stored in
//! its canonical form.

use serde::{Deserialize, Deserializer};

use crate::http::error::ApiError;
use crate::runtime::campaigns::window::{ScheduleSpec, Window};

/// Checks a client's active hours; the canonical window's JSON, as stored. A bad window is
/// 422 `invalid_request` naming `field` (`quiet_hours`) in its message.
pub fn check(field: &str, spec: &ScheduleSpec) -> Result<serde_json::Value, ApiError> {
    let window = Window::parse(spec)
        .map_err(|e| ApiError::invalid(e.replace("`schedule.", &format!("`{field}."))))?;
    serde_json::to_value(window.spec()).map_err(ApiError::internal)
}

/// The stored window as shown; `None` when there is none (or a stored one no longer reads).
pub fn show(stored: Option<&serde_json::Value>) -> Option<ScheduleSpec> {
    stored.and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// Distinguishes an absent field (outer `None`: keep) from `null` (`Some(None)`: remove).
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<ScheduleSpec>>, D::Error> {
    Option::<ScheduleSpec>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tz: &str, start: &str, end: &str) -> ScheduleSpec {
        ScheduleSpec { timezone: tz.into(), start: start.into(), end: end.into(), days: None }
    }

    #[test]
    fn a_window_is_stored_canonical_and_a_bad_one_names_the_field() {
        let v = check("quiet_hours", &spec(" UTC ", "08:00", "18:00")).unwrap();
        assert_eq!(v, serde_json::json!({"timezone": "UTC", "start": "08:00", "end": "18:00"}));
        assert_eq!(show(Some(&v)), Some(spec("UTC", "08:00", "18:00")));
        let e = check("quiet_hours", &spec("Mars/Olympus", "08:00", "18:00")).unwrap_err();
        let text = format!("{e:?}");
        assert!(text.contains("quiet_hours.timezone"), "{text}");
        assert!(check("quiet_hours", &spec("UTC", "8", "18:00")).is_err());
    }
}
