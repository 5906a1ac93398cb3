//! How often the series are sampled and how long each tier is kept (`--series-sample-secs`,
//! `--series-retention-days`).
//!
//! Two tiers are stored, so the row count stays bounded at any scale: the *fine* tier, one
//! bucket per sample interval (a minute by default), kept [`FINE_RETENTION`] for the recent
//! charts (health and queue depth minute by minute), and the *hour* tier, kept
//! `--series-retention-days` (30 by default) for sends per hour over weeks. Each sample
//! upserts both, so 10,000 numbers are 2 × 10,000 rows per sample and, at the defaults,
//! 10,000 × (2,880 + 720) rows in all.

use std::time::Duration;

/// The hour tier's bucket width, in seconds.
pub const HOUR_TIER: u32 = 3600;
/// How long the fine tier is kept.
pub const FINE_RETENTION: Duration = Duration::from_secs(48 * 3600);
/// `--series-sample-secs`.
pub const DEFAULT_SAMPLE_SECS: u64 = 60;
/// `--series-retention-days`.
pub const DEFAULT_RETENTION_DAYS: u64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesSettings {
    /// How often a sample is taken; zero turns sampling off (what is stored is still read).
    pub sample_every: Duration,
    /// How long the hour tier is kept.
    pub retention: Duration,
}

impl Default for SeriesSettings {
    fn default() -> Self {
        SeriesSettings {
            sample_every: Duration::from_secs(DEFAULT_SAMPLE_SECS),
            retention: Duration::from_secs(DEFAULT_RETENTION_DAYS * 24 * 3600),
        }
    }
}

impl SeriesSettings {
    /// The fine tier's bucket width in seconds: the sample interval, at least a second, at
    /// most an hour.
    pub fn fine_tier(&self) -> u32 {
        self.sample_every.as_secs().clamp(1, u64::from(HOUR_TIER)) as u32
    }

    /// The tiers each sample is added to (one when the interval is an hour).
    pub fn tiers(&self) -> Vec<u32> {
        let mut t = vec![self.fine_tier(), HOUR_TIER];
        t.dedup();
        t
    }

    /// Whether samples are taken at all.
    pub fn sampling(&self) -> bool {
        !self.sample_every.is_zero()
    }

    /// How long the buckets of `tier` are kept.
    pub fn retention_of(&self, tier: u32) -> Duration {
        if tier == HOUR_TIER {
            self.retention
        } else {
            FINE_RETENTION
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fine_tier_is_the_sample_interval_within_a_second_and_an_hour() {
        let s = |secs: u64| SeriesSettings {
            sample_every: Duration::from_millis(secs),
            ..Default::default()
        };
        assert_eq!(SeriesSettings::default().tiers(), vec![60, 3600]);
        assert_eq!(s(200).tiers(), vec![1, 3600]);
        assert_eq!(s(7_200_000).tiers(), vec![3600]);
        assert!(!s(0).sampling());
        let d = SeriesSettings::default();
        assert_eq!(d.retention_of(60), FINE_RETENTION);
        assert_eq!(d.retention_of(3600), Duration::from_secs(30 * 86_400));
    }
}
