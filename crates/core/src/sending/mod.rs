//! Sending through a pool of numbers without getting them banned: human-like pacing, sliding
//! caps, warming and re-warming, health scoring, rotation over a pool, sticky senders, care with
//! first contacts, per-contact pace, and the dispatcher that ties them together. Pure: time comes in as Unix milliseconds, randomness as an `Rng`.

mod caps;
mod contacts;
mod dispatcher;
mod health;
mod pacing;
mod policy;
mod queue;
mod rotation;
mod warming;

pub use caps::{Caps, SendLog, HOUR_MS, MINUTE_MS};
pub use dispatcher::{Assignment, Dispatcher, NumberInfo, NumberStats, QueuedMessage};
pub use health::{Health, HealthEvent, DEFAULT_THRESHOLD, RECOVERY_INTERVAL_MS};
pub use pacing::{
    gap_ms, typing_floor_ms, typing_ms, TYPING_BASE_MS, TYPING_JITTER, TYPING_MAX_MS,
    TYPING_MIN_MS, TYPING_PER_CHAR_MS,
};
pub use policy::{
    Choice, PoolPolicy, Rest, DEFAULT_PER_CONTACT_PER_HOUR, RECOMMENDED_PER_CONTACT_PER_HOUR,
};
pub use queue::LOOKAHEAD;
pub use rotation::{pick, Candidate, RotationState, Strategy};
pub use warming::{
    WarmingSchedule, DAY_MS, DEFAULT_FIRST_DAY_NEW_CONTACTS, DEFAULT_REWARM_AFTER_MS,
    DEFAULT_REWARM_DAYS,
};
