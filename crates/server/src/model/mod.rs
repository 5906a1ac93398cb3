//! The server's own types and small helpers, below every other layer: ids, the clock, a queued
//! message's stored content.

pub mod content;
pub mod ids;
pub mod time;
