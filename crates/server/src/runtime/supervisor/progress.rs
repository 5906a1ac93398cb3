//! How far the resume at start has come (`resume.rs` moves it; `GET /readyz` reads it), and
//! its settings.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Stored numbers handshaking at once while a start resumes them (`--resume-concurrency`).
pub const DEFAULT_RESUME_CONCURRENCY: usize = 64;

/// How long a resumed number may hold its handshake slot without any state event: a network
/// that does not answer must not stall the numbers behind it.
pub const HANDSHAKE_WAIT: Duration = Duration::from_secs(20);

/// How far the resume has come, for `/readyz` and the logs.
#[derive(Debug, Default)]
pub struct ResumeProgress {
    /// Numbers claimed at start.
    claimed: AtomicUsize,
    /// Of those, the ones whose start has settled (a first state event, a failure, or
    /// [`HANDSHAKE_WAIT`] passed).
    settled: AtomicUsize,
    /// Handshakes under way now (a start until its first state event), and the most there
    /// ever were at once.
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
}

impl ResumeProgress {
    /// The claimed numbers whose start has not settled yet (0 once the resume is done).
    pub fn pending(&self) -> usize {
        self.claimed.load(Ordering::SeqCst).saturating_sub(self.settled.load(Ordering::SeqCst))
    }

    /// The most starts that were under way at once.
    pub fn peak_in_flight(&self) -> usize {
        self.peak_in_flight.load(Ordering::SeqCst)
    }

    pub(super) fn claimed(&self, n: usize) {
        self.claimed.fetch_add(n, Ordering::SeqCst);
    }

    pub(super) fn enter(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::SeqCst);
    }

    /// A start's handshake has an outcome (its slot is free).
    pub(super) fn handshaken(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// A start has settled: the supervisor applied its outcome, or it failed, or it waited
    /// [`HANDSHAKE_WAIT`].
    pub(super) fn leave(&self) {
        self.settled.fetch_add(1, Ordering::SeqCst);
    }
}
