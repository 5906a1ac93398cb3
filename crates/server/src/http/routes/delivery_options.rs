//! The delivery options of a send (`POST /v1/messages`, and each campaign recipient):
//! `ttl_seconds` (not sent within that time after it falls due → `expired`, never sent late)
//! and `send_at` (RFC 3339; not sent before). Checked here into what is stored.

use bzapper_core::validate::shown;
use chrono::{DateTime, Duration, Utc};

use crate::http::error::{ApiError, ApiResult};

/// The longest `ttl_seconds`: 30 days.
pub const MAX_TTL_SECONDS: u32 = 30 * 24 * 3600;
/// The furthest ahead a `send_at` may be.
pub const MAX_SEND_AHEAD_DAYS: i64 = 365;

/// The checked options of one send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// Not sent before (`None`: at once; a past moment is kept as `None`).
    pub send_at: Option<DateTime<Utc>>,
    pub ttl_seconds: Option<u32>,
}

impl DeliveryOptions {
    /// Checks `ttl_seconds` and `send_at` as given (`what` prefixes the field names in
    /// messages, e.g. `recipients[3].`), as of `now`.
    pub fn check(
        what: &str,
        ttl_seconds: Option<i64>,
        send_at: Option<&str>,
        now: DateTime<Utc>,
    ) -> ApiResult<Self> {
        let ttl_seconds = match ttl_seconds {
            None => None,
            Some(t) if (1..=i64::from(MAX_TTL_SECONDS)).contains(&t) => Some(t as u32),
            Some(t) => {
                return Err(ApiError::invalid(format!(
                    "`{what}ttl_seconds` must be between 1 and {MAX_TTL_SECONDS} (30 days), \
                     not {t}"
                )))
            }
        };
        let send_at = match send_at {
            None => None,
            Some(raw) => {
                let t = DateTime::parse_from_rfc3339(raw).map_err(|e| {
                    ApiError::invalid(format!(
                        "`{what}send_at` must be an RFC 3339 time such as \
                         2030-01-31T09:00:00Z, not `{}`: {e}",
                        shown(raw)
                    ))
                })?;
                let t = crate::model::time::at_store_precision(t.with_timezone(&Utc));
                if t > now + Duration::days(MAX_SEND_AHEAD_DAYS) {
                    return Err(ApiError::invalid(format!(
                        "`{what}send_at` is more than {MAX_SEND_AHEAD_DAYS} days ahead"
                    )));
                }
                // A moment already past means now.
                (t > now).then_some(t)
            }
        };
        Ok(DeliveryOptions { send_at, ttl_seconds })
    }

    /// Fills in unset options from `defaults` (a campaign's).
    pub fn or(self, defaults: DeliveryOptions) -> Self {
        DeliveryOptions {
            send_at: self.send_at.or(defaults.send_at),
            ttl_seconds: self.ttl_seconds.or(defaults.ttl_seconds),
        }
    }

    /// When a send accepted (or queued) at `at` with these options expires: its TTL counted
    /// from when it falls due (the later of `at` and `send_at`).
    pub fn expires_at(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let due = self.send_at.filter(|s| *s > at).unwrap_or(at);
        self.ttl_seconds.map(|t| due + Duration::seconds(i64::from(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn ttls_and_times_are_checked_and_a_past_time_means_now() {
        let ok = DeliveryOptions::check("", Some(60), Some("2030-01-01T01:00:00+01:00"), now());
        assert_eq!(ok.unwrap(), DeliveryOptions { send_at: None, ttl_seconds: Some(60) });
        let later = DeliveryOptions::check("", None, Some("2030-01-02T00:00:00Z"), now()).unwrap();
        assert_eq!(later.send_at, Some(now() + Duration::days(1)));
        assert_eq!(later.expires_at(now()), None);
        let both = DeliveryOptions { ttl_seconds: Some(30), ..later };
        assert_eq!(both.expires_at(now()), Some(now() + Duration::days(1) + Duration::seconds(30)));
        for (ttl, at) in [
            (Some(0), None),
            (Some(-1), None),
            (Some(i64::from(MAX_TTL_SECONDS) + 1), None),
            (None, Some("tomorrow")),
            (None, Some("2031-01-02T00:00:00Z")),
        ] {
            let e = DeliveryOptions::check("x.", ttl, at, now()).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY, "{ttl:?} {at:?}");
        }
    }
}
