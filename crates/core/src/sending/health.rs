//! The health score of one number (0–100): it falls on signs that WhatsApp dislikes what the
//! number does and rises slowly while the number behaves, and below a threshold the number
//! leaves rotation until it has recovered.
//!
//! The point is to back off *before* a ban: refusals and failures usually come first.

/// Below this score a number leaves rotation (it still serves messages forced to it).
pub const DEFAULT_THRESHOLD: u8 = 40;

/// Quiet time (no failure, refusal or drop) that earns one recovery point.
pub const RECOVERY_INTERVAL_MS: u64 = 15 * 60_000;

/// What can move the score. The deltas are in [`HealthEvent::delta`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthEvent {
    /// A send went through: +1. Slow on purpose, so that a burst of clean sends cannot cancel
    /// a refusal quickly.
    SendOk,
    /// A send failed for a reason on WhatsApp's side (not a bad recipient): −10.
    SendFailed,
    /// WhatsApp refused to let the number reach out to a contact (error 463), the strongest sign
    /// that the number is seen as a spammer: −15.
    ReachOutRefused,
    /// The connection dropped: −5.
    Dropped,
    /// One recovery tick, earned by [`RECOVERY_INTERVAL_MS`] without incident: +1. Apply it
    /// through [`Health::recover`], which counts the quiet time.
    Recovered,
}

impl HealthEvent {
    /// The change of the score for this event.
    pub fn delta(self) -> i16 {
        match self {
            HealthEvent::SendOk => 1,
            HealthEvent::SendFailed => -10,
            HealthEvent::ReachOutRefused => -15,
            HealthEvent::Dropped => -5,
            HealthEvent::Recovered => 1,
        }
    }

    /// Failures, refusals and drops: they restart the quiet period recovery counts.
    pub fn is_incident(self) -> bool {
        self.delta() < 0
    }
}

/// A number's health: a score in 0..=100, starting at 100.
///
/// Scale of things with the defaults: four 463 refusals in a row take a fresh number from 100 to
/// 40, still in rotation; a fifth puts it out (25). It comes back after 15 quiet intervals of
/// 15 minutes (3 h 45 min) — or sooner with forced sends that go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    score: u8,
    /// Quiet time since the last incident not yet turned into recovery points.
    quiet_ms: u64,
}

impl Default for Health {
    fn default() -> Self {
        Health { score: Health::MAX, quiet_ms: 0 }
    }
}

impl Health {
    pub const MAX: u8 = 100;

    /// A fresh number: 100.
    pub fn new() -> Self {
        Self::default()
    }

    /// A stored score (values above 100 count as 100).
    pub fn with_score(score: u8) -> Self {
        Health { score: score.min(Self::MAX), quiet_ms: 0 }
    }

    pub fn score(&self) -> u8 {
        self.score
    }

    /// True when the score is at or above `threshold`. Whether the number is logged out or
    /// banned is the caller's other half of the rotation verdict.
    pub fn in_rotation(&self, threshold: u8) -> bool {
        self.score >= threshold
    }

    /// Applies `event` (clamped to 0..=100) and returns true when the in-rotation verdict for
    /// `threshold` changed, so that the caller records an `instance.health` event.
    pub fn apply(&mut self, event: HealthEvent, threshold: u8) -> bool {
        let before = self.in_rotation(threshold);
        let score = (i16::from(self.score) + event.delta()).clamp(0, i16::from(Self::MAX));
        self.score = score as u8;
        if event.is_incident() {
            self.quiet_ms = 0;
        }
        before != self.in_rotation(threshold)
    }

    /// Time-based recovery: adds one point ([`HealthEvent::Recovered`]) per
    /// [`RECOVERY_INTERVAL_MS`] of quiet time. Call it with the time elapsed since the previous
    /// call, as often as convenient: the remainder is carried over, and any incident in between
    /// restarts the count. Returns true when the in-rotation verdict changed.
    pub fn recover(&mut self, elapsed_ms: u64, threshold: u8) -> bool {
        let before = self.in_rotation(threshold);
        self.quiet_ms = self.quiet_ms.saturating_add(elapsed_ms);
        let ticks = self.quiet_ms / RECOVERY_INTERVAL_MS;
        self.quiet_ms %= RECOVERY_INTERVAL_MS;
        let points = ticks.min(u64::from(Self::MAX)) as u8;
        self.score = self.score.saturating_add(points).min(Self::MAX);
        before != self.in_rotation(threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_and_bounds() {
        let mut h = Health::new();
        assert_eq!(h.score(), 100);
        h.apply(HealthEvent::SendOk, DEFAULT_THRESHOLD);
        assert_eq!(h.score(), 100, "clamped at 100");
        h.apply(HealthEvent::SendFailed, DEFAULT_THRESHOLD);
        assert_eq!(h.score(), 90);
        h.apply(HealthEvent::ReachOutRefused, DEFAULT_THRESHOLD);
        assert_eq!(h.score(), 75);
        h.apply(HealthEvent::Dropped, DEFAULT_THRESHOLD);
        assert_eq!(h.score(), 70);
        h.apply(HealthEvent::SendOk, DEFAULT_THRESHOLD);
        h.apply(HealthEvent::Recovered, DEFAULT_THRESHOLD);
        assert_eq!(h.score(), 72);
        for _ in 0..20 {
            h.apply(HealthEvent::ReachOutRefused, DEFAULT_THRESHOLD);
        }
        assert_eq!(h.score(), 0, "clamped at 0");
        assert_eq!(Health::with_score(250).score(), 100);
    }

    #[test]
    fn apply_reports_when_the_verdict_changes() {
        let mut h = Health::with_score(45);
        assert!(h.in_rotation(DEFAULT_THRESHOLD));
        assert!(h.apply(HealthEvent::SendFailed, DEFAULT_THRESHOLD), "45 → 35 leaves rotation");
        assert!(!h.in_rotation(DEFAULT_THRESHOLD));
        assert!(!h.apply(HealthEvent::Dropped, DEFAULT_THRESHOLD), "still out");
        let mut h = Health::with_score(39);
        assert!(h.apply(HealthEvent::SendOk, DEFAULT_THRESHOLD), "39 → 40 is back in");
        assert!(!h.apply(HealthEvent::SendOk, DEFAULT_THRESHOLD));
    }

    #[test]
    fn four_refusals_keep_a_fresh_number_in_rotation_five_do_not() {
        let mut h = Health::new();
        let changed: Vec<bool> =
            (0..5).map(|_| h.apply(HealthEvent::ReachOutRefused, DEFAULT_THRESHOLD)).collect();
        assert_eq!(changed, [false, false, false, false, true]);
        assert_eq!(h.score(), 25);
    }

    #[test]
    fn a_quiet_period_brings_a_number_back() {
        let mut h = Health::with_score(25);
        // Ticks every minute for 3 h 44 min: not back yet.
        let mut back_at = None;
        for minute in 1..=300u64 {
            if h.recover(60_000, DEFAULT_THRESHOLD) {
                back_at = Some(minute);
            }
        }
        assert_eq!(back_at, Some(15 * 15), "back in rotation after 15 quiet intervals");
        assert_eq!(h.score(), 25 + 20);
    }

    #[test]
    fn an_incident_restarts_the_quiet_period() {
        let mut h = Health::with_score(50);
        h.recover(14 * 60_000, DEFAULT_THRESHOLD);
        h.apply(HealthEvent::Dropped, DEFAULT_THRESHOLD);
        h.recover(14 * 60_000, DEFAULT_THRESHOLD);
        assert_eq!(h.score(), 45, "28 minutes, but never 15 in a row");
        h.recover(60_000, DEFAULT_THRESHOLD);
        assert_eq!(h.score(), 46);
        // A clean send is not an incident.
        h.recover(10 * 60_000, DEFAULT_THRESHOLD);
        h.apply(HealthEvent::SendOk, DEFAULT_THRESHOLD);
        h.recover(5 * 60_000, DEFAULT_THRESHOLD);
        assert_eq!(h.score(), 48);
        // One long call counts every interval at once.
        h.recover(10 * RECOVERY_INTERVAL_MS, DEFAULT_THRESHOLD);
        assert_eq!(h.score(), 58);
        h.recover(u64::MAX, DEFAULT_THRESHOLD);
        assert_eq!(h.score(), 100);
    }
}
