//! Human-like pacing of one number: how long it "types" before a send and how long it pauses
//! after one. Both are random draws from an injected RNG so that tests can replay them.

use rand::Rng;

use crate::Limits;

/// The shortest `composing` time: even a one-word reply takes a moment to type.
pub const TYPING_MIN_MS: u64 = 800;
/// The longest `composing` time: nobody waits longer than this for a long text to appear, and a
/// send slot should not be held for minutes.
pub const TYPING_MAX_MS: u64 = 8_000;
/// Typing time before the first character (reading, thinking, opening the chat).
pub const TYPING_BASE_MS: u64 = 1_200;
/// Typing time per character of text (about 22 characters a second, a quick phone typist).
pub const TYPING_PER_CHAR_MS: u64 = 45;
/// Relative spread of the typing time around its nominal value (±15 %), so that two texts of the
/// same length do not take exactly the same time.
pub const TYPING_JITTER: f64 = 0.15;

/// The typing time before nominal jitter: base + per character, before the bounds.
fn typing_nominal_ms(text_chars: usize) -> u64 {
    let chars = u64::try_from(text_chars).unwrap_or(u64::MAX);
    // Saturate well above the cap so the multiplication cannot overflow.
    TYPING_BASE_MS.saturating_add(chars.min(1_000_000).saturating_mul(TYPING_PER_CHAR_MS))
}

fn scaled(nominal: u64, factor: f64) -> u64 {
    ((nominal as f64 * factor).round() as u64).clamp(TYPING_MIN_MS, TYPING_MAX_MS)
}

/// How long to show `composing` before sending a text of `text_chars` characters:
/// `TYPING_BASE_MS + TYPING_PER_CHAR_MS × chars`, scaled by a uniform factor in
/// `1 ± TYPING_JITTER`, bounded to `[TYPING_MIN_MS, TYPING_MAX_MS]`.
///
/// The caller must really wait this long before the send: the caps rely on the send happening
/// no earlier than `assignment time + typing_ms` (see [`typing_floor_ms`]).
pub fn typing_ms(text_chars: usize, rng: &mut impl Rng) -> u64 {
    let factor = rng.gen_range((1.0 - TYPING_JITTER)..=(1.0 + TYPING_JITTER));
    scaled(typing_nominal_ms(text_chars), factor)
}

/// The smallest value [`typing_ms`] can return for this length. The dispatcher lets a number
/// start typing this long before its caps allow the next send, because the send itself cannot
/// happen earlier than that.
pub fn typing_floor_ms(text_chars: usize) -> u64 {
    scaled(typing_nominal_ms(text_chars), 1.0 - TYPING_JITTER)
}

/// The pause after a send, in `[limits.min_gap_ms, limits.max_gap_ms]`.
///
/// Drawn from a Beta(2, 5) distribution mapped onto the range: right-skewed, with its mode at
/// 1/5 and its mean at 2/7 of the way from min to max (5.6 s for the default 3–12 s), and a thin
/// tail toward the max. People reply in short bursts with the occasional longer pause; a
/// uniform draw would be both slower on average and a recognisable flat signature.
/// `min == max` returns `min`.
pub fn gap_ms(limits: &Limits, rng: &mut impl Rng) -> u64 {
    let (lo, hi) = (limits.min_gap_ms, limits.max_gap_ms.max(limits.min_gap_ms));
    if lo == hi {
        return lo;
    }
    let x = beta_2_5(rng);
    // x < 1, so the result stays below `hi` except by rounding, which the min() catches.
    (lo + ((hi - lo) as f64 * x).round() as u64).min(hi)
}

/// A Beta(2, 5) sample: the second smallest of six uniforms in [0, 1) (the k-th order statistic
/// of n uniforms is Beta(k, n + 1 − k)). Exact, and needs nothing beyond uniform draws.
fn beta_2_5(rng: &mut impl Rng) -> f64 {
    let (mut first, mut second) = (f64::MAX, f64::MAX);
    for _ in 0..6 {
        let u: f64 = rng.gen();
        if u < first {
            second = first;
            first = u;
        } else if u < second {
            second = u;
        }
    }
    second
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn typing_grows_with_length_and_stays_bounded() {
        let mut rng = StdRng::seed_from_u64(1);
        let mean = |chars: usize, rng: &mut StdRng| {
            (0..2_000).map(|_| typing_ms(chars, rng)).sum::<u64>() / 2_000
        };
        let short = mean(5, &mut rng);
        let medium = mean(60, &mut rng);
        let long = mean(120, &mut rng);
        assert!(short < medium && medium < long, "{short} {medium} {long}");
        for chars in [0, 1, 10, 100, 500, 10_000, usize::MAX] {
            for _ in 0..500 {
                let t = typing_ms(chars, &mut rng);
                assert!((TYPING_MIN_MS..=TYPING_MAX_MS).contains(&t), "{chars}: {t}");
                assert!(t >= typing_floor_ms(chars), "{chars}: {t} below its floor");
            }
        }
        // Long texts hit the cap; empty ones still type for a while.
        assert_eq!(typing_ms(10_000, &mut rng), TYPING_MAX_MS);
        assert!(typing_ms(0, &mut rng) >= 1_000);
    }

    #[test]
    fn typing_is_jittered() {
        let mut rng = StdRng::seed_from_u64(2);
        let draws: std::collections::BTreeSet<u64> =
            (0..100).map(|_| typing_ms(40, &mut rng)).collect();
        assert!(draws.len() > 20, "{draws:?}");
        // 1200 + 45 × 40 = 3000 nominal, ±15 %.
        assert!(draws.iter().all(|t| (2_550..=3_450).contains(t)), "{draws:?}");
        assert_eq!(typing_floor_ms(40), 2_550);
    }

    #[test]
    fn gaps_stay_in_bounds_and_are_right_skewed() {
        let mut rng = StdRng::seed_from_u64(3);
        let l = Limits::default();
        let n = 50_000;
        let mut bins = [0u32; 10];
        let mut sum = 0u64;
        for _ in 0..n {
            let g = gap_ms(&l, &mut rng);
            assert!((l.min_gap_ms..=l.max_gap_ms).contains(&g), "{g}");
            sum += g;
            let bin = ((g - l.min_gap_ms) * 10 / (l.max_gap_ms - l.min_gap_ms + 1)) as usize;
            bins[bin] += 1;
        }
        let mean = sum as f64 / n as f64;
        let mid = (l.min_gap_ms + l.max_gap_ms) as f64 / 2.0;
        // Beta(2, 5) mean: min + 2/7 of the span = 5571 ms.
        assert!((mean - 5_571.0).abs() < 60.0, "mean {mean}");
        assert!(mean < mid - 1_500.0, "mean {mean} not clearly below the midpoint {mid}");
        // Not flat: the busiest tenth holds far more than the last one, and the tail is thin
        // but present.
        // (Beta(2, 5) puts 23.5 % in the busiest tenth and 0.17 % in the last two.)
        let flat = n / 10;
        assert!(*bins.iter().max().unwrap() > 2 * flat, "{bins:?}");
        assert!(bins[8] + bins[9] > 0 && bins[8] + bins[9] < n / 200, "{bins:?}");
        assert!(bins[1] > bins[0] && bins[1] > bins[5], "{bins:?}");
        assert!(bins.windows(2).skip(2).all(|w| w[0] > w[1]), "{bins:?}");
    }

    #[test]
    fn equal_bounds_give_that_gap() {
        let mut rng = StdRng::seed_from_u64(4);
        let l = Limits { min_gap_ms: 7_000, max_gap_ms: 7_000, ..Limits::default() };
        assert!((0..100).all(|_| gap_ms(&l, &mut rng) == 7_000));
        let l = Limits { min_gap_ms: 0, max_gap_ms: 0, ..Limits::default() };
        assert_eq!(gap_ms(&l, &mut rng), 0);
    }
}
