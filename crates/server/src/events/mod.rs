//! Events: the [`recorder`] (event log first, then the live bus), the envelope and filter
//! every consumer shares, the `message.received` payload and the metrics counted from events.

mod envelope;
mod filter;
pub mod metrics;
pub mod received;
pub mod recorder;

pub use envelope::Envelope;
pub use filter::{Filter, EVENT_TYPES};
