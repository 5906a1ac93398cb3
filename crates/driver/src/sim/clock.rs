//! The simulated network's "now" for what it decides by the calendar (a ban's end, an
//! account's age, the reaction model's windows): the wall clock by default, or one that
//! follows tokio's clock, so that a run on a paused runtime ages accounts and ends bans in
//! virtual time.

use std::fmt::Debug;

use chrono::{DateTime, TimeDelta, Utc};

/// Where the network reads the time.
pub trait NetClock: Send + Sync + Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock (the default).
#[derive(Debug, Default, Clone, Copy)]
pub struct WallClock;

impl NetClock for WallClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The wall clock when it was made plus tokio's time elapsed since: on a paused runtime it
/// moves only when tokio's clock does (as the gateway's scheduler does). Make it inside a
/// runtime.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    epoch: tokio::time::Instant,
    epoch_utc: DateTime<Utc>,
}

impl TokioClock {
    pub fn new() -> Self {
        TokioClock { epoch: tokio::time::Instant::now(), epoch_utc: Utc::now() }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl NetClock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = TimeDelta::from_std(self.epoch.elapsed()).unwrap_or(TimeDelta::MAX);
        self.epoch_utc.checked_add_signed(elapsed).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}
