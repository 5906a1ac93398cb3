//! The request rate per API key: one token bucket per key (`bzapper_core::quota::TokenBucket`),
//! taken by the tenant extractors right after authentication, so every tenant route counts and
//! the admin token never does. Per node: in a cluster each node gives a key its own rate.
//! Time is tokio's, so a test that pauses the clock controls the refill.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bzapper_core::quota::{retry_after_secs, TokenBucket};
use tokio::time::Instant;

use crate::http::error::ApiError;

/// `--rate-limit` and `--rate-limit-burst`: requests a second per key, and how many may come
/// at once. A rate of 0 turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_sec: u32,
    pub burst: u32,
}

/// Buckets kept before idle (full) ones are forgotten: keys are few, but revoked ones would
/// otherwise stay forever.
const PRUNE_ABOVE: usize = 10_000;

pub struct RateLimiter {
    limit: RateLimit,
    origin: Instant,
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter { limit, origin: Instant::now(), buckets: Mutex::default() }
    }

    /// Takes one request of `key_id`'s rate now, or answers 429 `rate_limited` with
    /// `Retry-After`.
    pub fn check(&self, key_id: &str) -> Result<(), ApiError> {
        self.check_at(key_id, self.origin.elapsed())
    }

    fn check_at(&self, key_id: &str, now: Duration) -> Result<(), ApiError> {
        let RateLimit { per_sec, burst } = self.limit;
        if per_sec == 0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > PRUNE_ABOVE && !buckets.contains_key(key_id) {
            buckets.retain(|_, b| !b.is_full(now));
        }
        if !buckets.contains_key(key_id) {
            buckets.insert(key_id.to_string(), TokenBucket::new(per_sec, burst, now));
        }
        let Some(bucket) = buckets.get_mut(key_id) else { return Ok(()) };
        bucket
            .take(now)
            .map_err(|wait| ApiError::rate_limited(per_sec, burst, retry_after_secs(wait)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_key_past_its_burst_waits_for_the_rate_and_another_key_does_not() {
        let limiter = RateLimiter::new(RateLimit { per_sec: 2, burst: 3 });
        for _ in 0..3 {
            limiter.check("key_a").unwrap();
        }
        let refused = limiter.check("key_a").unwrap_err();
        assert_eq!(refused.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.code, "rate_limited");
        // One token every 500 ms: rounded up to a whole second.
        assert_eq!(refused.retry_after_secs, Some(1));
        assert!(refused.message.contains("2 requests a second"), "{}", refused.message);
        // Another key has its own bucket.
        limiter.check("key_b").unwrap();
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(limiter.check("key_a").is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        limiter.check("key_a").unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_of_zero_is_no_limit() {
        let limiter = RateLimiter::new(RateLimit { per_sec: 0, burst: 0 });
        for _ in 0..100_000 {
            limiter.check("key_a").unwrap();
        }
    }

    #[test]
    fn idle_buckets_are_forgotten_once_there_are_many() {
        let limiter = RateLimiter::new(RateLimit { per_sec: 1, burst: 1 });
        for i in 0..=PRUNE_ABOVE {
            limiter.check_at(&format!("key_{i}"), Duration::ZERO).unwrap();
        }
        // An hour later every bucket is full again: the next new key prunes them.
        limiter.check_at("key_new", Duration::from_secs(3600)).unwrap();
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1);
    }
}
