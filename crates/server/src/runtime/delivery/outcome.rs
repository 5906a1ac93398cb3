//! What one attempt's answer makes of an item: delivered, tried again later (by the retry
//! policy, from the item's creation), or given up; and the `last_error` a tenant reads.

use bzapper_core::retry::RetryPolicy;
use chrono::{DateTime, Utc};
use rand::SeedableRng;

/// Why an attempt got no answer.
pub(crate) enum Failure {
    /// The outbound guard refused the receiver's address.
    Blocked,
    /// Any network failure: no connection, no answer in time, a name that does not resolve.
    Network(reqwest::Error),
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Self {
        if crate::outbound::is_blocked(&e) {
            Failure::Blocked
        } else {
            Failure::Network(e)
        }
    }
}

impl From<crate::outbound::Blocked> for Failure {
    fn from(_: crate::outbound::Blocked) -> Self {
        Failure::Blocked
    }
}

/// A receiver's answer to one attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// A 2xx.
    pub ok: bool,
    /// The receiver's HTTP status, when it answered.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

impl Answer {
    /// The answer to a request (`what` names the item in the debug log: "webhook", "alert").
    /// One sentence for every network failure, so a tenant cannot tell a closed port from a
    /// silent one or a missing name (the reason goes to the debug log), and another for an
    /// address the gateway does not reach.
    pub(crate) fn of(res: Result<reqwest::Response, Failure>, what: &str, id: &str) -> Answer {
        match res {
            Ok(r) if r.status().is_success() => {
                Answer { ok: true, last_status: Some(r.status().as_u16()), last_error: None }
            }
            Ok(r) => Answer {
                ok: false,
                last_status: Some(r.status().as_u16()),
                last_error: Some(format!("the receiver answered {}", r.status())),
            },
            Err(Failure::Blocked) => Answer {
                ok: false,
                last_status: None,
                last_error: Some("the receiver's address is not allowed".into()),
            },
            Err(Failure::Network(e)) => {
                tracing::debug!(
                    what, id, error = %crate::outbound::detail(e),
                    "a receiver could not be reached"
                );
                Answer {
                    ok: false,
                    last_status: None,
                    last_error: Some(
                        "the receiver could not be reached (no connection, or no answer in time)"
                            .into(),
                    ),
                }
            }
        }
    }
}

/// What comes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    Delivered,
    /// Pending, tried again at this time.
    RetryAt(DateTime<Utc>),
    /// The retry window has ended.
    GiveUp,
}

/// What follows the `attempts`-th attempt, made at `at`, of an item created at `created_at`.
pub(crate) fn next(
    policy: &RetryPolicy,
    ok: bool,
    created_at: DateTime<Utc>,
    at: DateTime<Utc>,
    attempts: u32,
) -> Next {
    if ok {
        return Next::Delivered;
    }
    let mut rng = rand::rngs::StdRng::from_entropy();
    let next_ms = policy.next_attempt_ms(
        created_at.timestamp_millis(),
        at.timestamp_millis(),
        attempts,
        &mut rng,
    );
    match next_ms.and_then(DateTime::from_timestamp_millis) {
        Some(t) => Next::RetryAt(t),
        None => Next::GiveUp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_retried_by_the_policy_until_its_window_ends() {
        let policy =
            RetryPolicy { first_delay_ms: 1_000, max_delay_ms: 4_000, give_up_after_ms: 60_000 };
        let created = crate::model::time::now();
        let at = created + chrono::Duration::seconds(1);
        assert_eq!(next(&policy, true, created, at, 1), Next::Delivered);
        match next(&policy, false, created, at, 1) {
            Next::RetryAt(t) => {
                let wait = (t - at).num_milliseconds();
                assert!((800..=1_200).contains(&wait), "{wait}");
            }
            other => panic!("{other:?}"),
        }
        let late = created + chrono::Duration::seconds(59);
        assert_eq!(next(&policy, false, created, late, 9), Next::GiveUp);
    }
}
