//! Fair-share rules: a per-tenant limit (a count against a ceiling, 0 meaning unlimited) and
//! the token bucket behind the per-key request rate. Pure: the caller passes the counts and
//! the time, so both are tested without a store or a clock.

use std::time::Duration;

/// A ceiling on something a tenant holds (numbers, webhooks, queued messages, bytes …).
/// `0` means unlimited, as the operator's flags document it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub u64);

impl Limit {
    pub const UNLIMITED: Limit = Limit(0);

    /// Whether `adding` more fit beside the `current` ones.
    pub fn admits(self, current: u64, adding: u64) -> bool {
        self.0 == 0 || current.saturating_add(adding) <= self.0
    }

    pub fn is_unlimited(self) -> bool {
        self.0 == 0
    }
}

/// A token bucket: `rate` tokens a second, holding at most `burst`. A request takes one token;
/// with none left it is told how long until one is there.
///
/// Hand-written rather than `governor`: that crate (not in Cargo.lock) brings `dashmap`,
/// `quanta`, `spinning_top`, `portable-atomic` and `nonzero_ext` for a rule of a few lines,
/// and its clock is not tokio's, which the tests pause.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_sec: u32,
    burst: u32,
    /// Tokens left, in millionths of a token (integers: no drift over a long run).
    micro_tokens: u64,
    /// When `micro_tokens` was last brought up to date (time since any fixed origin).
    updated: Duration,
}

const MICRO: u64 = 1_000_000;

impl TokenBucket {
    /// A full bucket at `now`. `rate_per_sec` must be above 0 (0 is "no limit", which the
    /// caller handles by not keeping a bucket); a `burst` of 0 is taken as 1.
    pub fn new(rate_per_sec: u32, burst: u32, now: Duration) -> Self {
        let burst = burst.max(1);
        TokenBucket {
            rate_per_sec: rate_per_sec.max(1),
            burst,
            micro_tokens: u64::from(burst) * MICRO,
            updated: now,
        }
    }

    fn refill(&mut self, now: Duration) {
        let elapsed = now.saturating_sub(self.updated);
        // rate (≤ 2^32) × µs elapsed stays far below u128's range.
        let gained = elapsed.as_micros() * u128::from(self.rate_per_sec);
        let cap = u64::from(self.burst) * MICRO;
        let topped = u128::from(self.micro_tokens).saturating_add(gained).min(u128::from(cap));
        self.micro_tokens = topped as u64;
        self.updated = self.updated.max(now);
    }

    /// Takes one token at `now`, or answers how long until one is available.
    pub fn take(&mut self, now: Duration) -> Result<(), Duration> {
        self.refill(now);
        if self.micro_tokens >= MICRO {
            self.micro_tokens -= MICRO;
            return Ok(());
        }
        let missing = MICRO - self.micro_tokens;
        // µs until `missing` millionths of a token have dripped in at `rate` tokens/s.
        let micros = missing.div_ceil(u64::from(self.rate_per_sec));
        Err(Duration::from_micros(micros))
    }

    /// Whether the bucket is full at `now` (an idle caller: forgetting it loses nothing).
    pub fn is_full(&mut self, now: Duration) -> bool {
        self.refill(now);
        self.micro_tokens >= u64::from(self.burst) * MICRO
    }
}

/// A wait as the `Retry-After` header gives it: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn zero_is_unlimited_and_a_limit_admits_up_to_itself() {
        assert!(Limit(0).admits(u64::MAX, 1));
        assert!(Limit::UNLIMITED.is_unlimited());
        assert!(Limit(3).admits(2, 1));
        assert!(!Limit(3).admits(3, 1));
        assert!(!Limit(3).admits(0, 4), "one request bigger than the limit");
        assert!(Limit(3).admits(3, 0));
    }

    #[test]
    fn a_bucket_gives_its_burst_at_once_then_the_rate() {
        let mut b = TokenBucket::new(10, 5, MS(0));
        for _ in 0..5 {
            assert!(b.take(MS(0)).is_ok());
        }
        // Empty: one token comes every 100 ms.
        assert_eq!(b.take(MS(0)), Err(MS(100)));
        assert_eq!(b.take(MS(40)), Err(MS(60)));
        assert!(b.take(MS(100)).is_ok());
        assert!(b.take(MS(100)).is_err());
        // A long idle time refills up to the burst, never beyond.
        for _ in 0..5 {
            assert!(b.take(MS(60_000)).is_ok());
        }
        assert!(b.take(MS(60_000)).is_err());
    }

    #[test]
    fn a_sustained_rate_at_the_limit_is_never_refused() {
        // 1,000/s, one request every millisecond for ten seconds, after the burst is spent.
        let mut b = TokenBucket::new(1_000, 2_000, MS(0));
        for _ in 0..2_000 {
            b.take(MS(0)).unwrap();
        }
        for ms in 1..=10_000 {
            assert!(b.take(MS(ms)).is_ok(), "refused at {ms} ms");
        }
    }

    #[test]
    fn time_going_backwards_neither_refills_nor_panics() {
        let mut b = TokenBucket::new(1, 1, MS(5_000));
        b.take(MS(5_000)).unwrap();
        assert!(b.take(MS(1_000)).is_err());
        assert!(b.take(MS(6_000)).is_ok());
    }

    #[test]
    fn fullness_tells_an_idle_bucket() {
        let mut b = TokenBucket::new(2, 2, MS(0));
        assert!(b.is_full(MS(0)));
        b.take(MS(0)).unwrap();
        assert!(!b.is_full(MS(100)));
        assert!(b.is_full(MS(500)));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(MS(1)), 1);
        assert_eq!(retry_after_secs(MS(0)), 1);
        assert_eq!(retry_after_secs(MS(1_000)), 1);
        assert_eq!(retry_after_secs(MS(1_001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(30)), 30);
    }
}
