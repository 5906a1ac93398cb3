//! When to try a failed webhook delivery again: exponential backoff with jitter, capped, and
//! a time after which the delivery is given up (dead-lettered).

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failed attempt.
    pub first_delay_ms: u64,
    /// The longest wait between two attempts.
    pub max_delay_ms: u64,
    /// No attempt is made later than this after the delivery was created.
    pub give_up_after_ms: u64,
}

impl Default for RetryPolicy {
    /// 2 s, 4 s, 8 s … capped at one hour, for up to a day.
    fn default() -> Self {
        RetryPolicy { first_delay_ms: 2_000, max_delay_ms: 3_600_000, give_up_after_ms: 86_400_000 }
    }
}

/// ±20 %: receivers that failed together do not all get their retries at the same instant.
const JITTER: f64 = 0.2;

impl RetryPolicy {
    /// The wait after `failed_attempts` failures (1 for the first), with jitter.
    pub fn delay_ms(&self, failed_attempts: u32, rng: &mut impl Rng) -> u64 {
        let exp = failed_attempts.saturating_sub(1).min(40);
        let base = self.first_delay_ms.saturating_mul(1u64 << exp).min(self.max_delay_ms);
        let factor = rng.gen_range(1.0 - JITTER..=1.0 + JITTER);
        ((base as f64) * factor).round() as u64
    }

    /// When to try again after `failed_attempts` failures of a delivery created at
    /// `created_ms`, or `None` when it is to be given up.
    pub fn next_attempt_ms(
        &self,
        created_ms: i64,
        now_ms: i64,
        failed_attempts: u32,
        rng: &mut impl Rng,
    ) -> Option<i64> {
        let next = now_ms.saturating_add(self.delay_ms(failed_attempts, rng) as i64);
        (next <= created_ms.saturating_add(self.give_up_after_ms as i64)).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn delays_double_with_jitter_and_are_capped() {
        let p = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(1);
        for (n, base) in
            [(1u32, 2_000u64), (2, 4_000), (3, 8_000), (12, 3_600_000), (40, 3_600_000)]
        {
            for _ in 0..100 {
                let d = p.delay_ms(n, &mut rng) as f64;
                assert!(d >= base as f64 * 0.8 - 1.0 && d <= base as f64 * 1.2 + 1.0, "{n}: {d}");
            }
        }
        // Not all equal: there is jitter.
        let ds: std::collections::HashSet<u64> = (0..20).map(|_| p.delay_ms(3, &mut rng)).collect();
        assert!(ds.len() > 10);
    }

    #[test]
    fn a_delivery_is_given_up_after_a_day() {
        let p = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(2);
        let created = 1_000_000;
        assert!(p.next_attempt_ms(created, created + 10_000, 1, &mut rng).is_some());
        // An hour before the end, an hour's wait would overshoot: give up.
        let late = created + 86_400_000 - 60_000;
        assert_eq!(p.next_attempt_ms(created, late, 20, &mut rng), None);
        // Counting the attempts of a day of failures: about 30, not hundreds.
        let (mut now, mut n) = (created, 0);
        while let Some(next) = p.next_attempt_ms(created, now, n + 1, &mut rng) {
            now = next;
            n += 1;
        }
        assert!((20..40).contains(&n), "{n} attempts");
    }
}
