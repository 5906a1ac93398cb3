//! Rotation: which of a pool's ready numbers takes the next message, by the pool's strategy,
//! preferring warmed numbers over warming ones.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// A pool's rotation strategy, as `PUT /v1/pools/{name}` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Each number in turn, in a stable order (by instance id).
    #[default]
    RoundRobin,
    /// The number with the fewest sends in the last 24 h.
    LeastUsed,
    /// At random, in proportion to the health score.
    HealthWeighted,
}

impl Strategy {
    pub const ALL: [Strategy; 3] =
        [Strategy::RoundRobin, Strategy::LeastUsed, Strategy::HealthWeighted];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::LeastUsed => "least_used",
            Strategy::HealthWeighted => "health_weighted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A number that could take the message now. Borrowed: a pick looks at every ready number of
/// the pool, ten thousand on a full node, for each message it hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// The instance id: the stable order of round robin.
    pub key: &'a str,
    /// Past its warming period.
    pub warmed: bool,
    /// Health score 0..=100.
    pub health: u8,
    /// Sends in the last 24 h.
    pub used: u64,
}

/// What a pool's rotation remembers between picks: the last key picked, from which round robin
/// continues. Keyed by instance id rather than by position, so that numbers joining or leaving
/// the pool (or being busy) do not make it skip or repeat anyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationState {
    last: Option<String>,
}

/// Picks the candidate that takes the next message and returns its index in `candidates`;
/// `None` when there is none.
///
/// Warmed candidates are considered first; warming ones only when no warmed one is among the
/// candidates. Then:
/// - `round_robin`: the first key after the last picked one in key order, wrapping around, so a
///   fixed set of candidates is cycled exactly;
/// - `least_used`: the lowest `used` (ties: the lowest key);
/// - `health_weighted`: at random with probability `health / Σ health`; a candidate with health
///   0 is never picked (and `None` when all have 0).
pub fn pick(
    strategy: Strategy,
    candidates: &[Candidate<'_>],
    state: &mut RotationState,
    rng: &mut impl Rng,
) -> Option<usize> {
    let any_warmed = candidates.iter().any(|c| c.warmed);
    let tier = || candidates.iter().enumerate().filter(move |(_, c)| c.warmed == any_warmed);
    let chosen = match strategy {
        Strategy::RoundRobin => {
            let after_last = |c: &Candidate| state.last.as_deref().is_none_or(|l| c.key > l);
            tier()
                .filter(|(_, c)| after_last(c))
                .min_by(|a, b| a.1.key.cmp(b.1.key))
                .or_else(|| tier().min_by(|a, b| a.1.key.cmp(b.1.key)))
                .map(|(i, _)| i)
        }
        Strategy::LeastUsed => {
            tier().min_by(|a, b| (a.1.used, &a.1.key).cmp(&(b.1.used, &b.1.key))).map(|(i, _)| i)
        }
        Strategy::HealthWeighted => {
            let total: u64 = tier().map(|(_, c)| u64::from(c.health)).sum();
            if total == 0 {
                None
            } else {
                let mut r = rng.gen_range(0..total);
                tier().find_map(|(i, c)| {
                    let h = u64::from(c.health);
                    if r < h {
                        Some(i)
                    } else {
                        r -= h;
                        None
                    }
                })
            }
        }
    };
    if let Some(i) = chosen {
        state.last = Some(candidates[i].key.to_string());
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn c(key: &str, warmed: bool, health: u8, used: u64) -> Candidate<'_> {
        Candidate { key, warmed, health, used }
    }

    fn keys(s: Strategy, cands: &[Candidate], n: usize, seed: u64) -> Vec<String> {
        let mut st = RotationState::default();
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| cands[pick(s, cands, &mut st, &mut rng).unwrap()].key.to_string()).collect()
    }

    #[test]
    fn names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(Strategy::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<Strategy>(&json).unwrap(), s);
        }
        assert_eq!(Strategy::parse("random"), None);
        assert_eq!(Strategy::default(), Strategy::RoundRobin);
    }

    #[test]
    fn round_robin_cycles_exactly_in_key_order() {
        // Given in scrambled order: the cycle follows the keys.
        let cands = [c("b", true, 90, 0), c("c", true, 50, 0), c("a", true, 100, 0)];
        let got = keys(Strategy::RoundRobin, &cands, 7, 1);
        assert_eq!(got, ["a", "b", "c", "a", "b", "c", "a"]);
    }

    #[test]
    fn round_robin_continues_after_the_last_key_when_the_set_changes() {
        let mut st = RotationState::default();
        let mut rng = StdRng::seed_from_u64(1);
        let all = [c("a", true, 100, 0), c("b", true, 100, 0), c("c", true, 100, 0)];
        assert_eq!(pick(Strategy::RoundRobin, &all, &mut st, &mut rng), Some(0));
        // "b" is busy: "c" is next after "a", then the cycle wraps to "a".
        let without_b = [all[0].clone(), all[2].clone()];
        assert_eq!(pick(Strategy::RoundRobin, &without_b, &mut st, &mut rng), Some(1));
        assert_eq!(pick(Strategy::RoundRobin, &all, &mut st, &mut rng), Some(0));
        assert_eq!(pick(Strategy::RoundRobin, &all, &mut st, &mut rng), Some(1));
    }

    #[test]
    fn least_used_picks_the_least_used() {
        let cands = [c("a", true, 100, 30), c("b", true, 100, 4), c("c", true, 100, 9)];
        assert_eq!(keys(Strategy::LeastUsed, &cands, 3, 1), ["b", "b", "b"]);
        let tie = [c("z", true, 100, 4), c("m", true, 100, 4), c("q", true, 100, 8)];
        assert_eq!(keys(Strategy::LeastUsed, &tie, 1, 1), ["m"]);
    }

    #[test]
    fn health_weighted_follows_the_health_proportions() {
        let cands = [c("a", true, 100, 0), c("b", true, 60, 0), c("c", true, 40, 0)];
        let n = 10_000;
        let got = keys(Strategy::HealthWeighted, &cands, n, 42);
        for (key, health) in [("a", 100.0), ("b", 60.0), ("c", 40.0)] {
            let share = got.iter().filter(|k| *k == key).count() as f64 / n as f64;
            let expected = health / 200.0;
            assert!((share - expected).abs() < 0.02, "{key}: {share} vs {expected}");
        }
    }

    #[test]
    fn health_weighted_never_picks_a_zero_health_number() {
        let cands = [c("a", true, 0, 0), c("b", true, 10, 0)];
        assert!(keys(Strategy::HealthWeighted, &cands, 1_000, 3).iter().all(|k| k == "b"));
        let dead = [c("a", true, 0, 0)];
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(
            pick(Strategy::HealthWeighted, &dead, &mut RotationState::default(), &mut rng),
            None
        );
    }

    #[test]
    fn warmed_numbers_come_first_and_warming_ones_are_the_fallback() {
        let mixed = [
            c("a", false, 100, 0),
            c("b", true, 50, 500),
            c("c", false, 100, 0),
            c("d", true, 60, 900),
        ];
        for s in Strategy::ALL {
            let got = keys(s, &mixed, 200, 9);
            assert!(got.iter().all(|k| k == "b" || k == "d"), "{s:?}: {got:?}");
        }
        let warming_only = [c("a", false, 100, 0), c("c", false, 100, 0)];
        for s in Strategy::ALL {
            assert!(!keys(s, &warming_only, 10, 9).is_empty());
        }
        assert_eq!(
            pick(
                Strategy::RoundRobin,
                &[],
                &mut RotationState::default(),
                &mut StdRng::seed_from_u64(0)
            ),
            None
        );
    }
}
