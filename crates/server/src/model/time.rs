//! The gateway's notion of "now": UTC truncated to milliseconds, the precision the store keeps,
//! so that a value read back equals the value written.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t)
}
