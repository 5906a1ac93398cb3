//! Events: the typed kinds ([`Event`], one payload type per kind), the [`recorder`] (event
//! log first, then the live bus), the envelope and filter every consumer shares, the
//! `message.received` payload's builder, the metrics counted from events and the gauges a
//! Prometheus scrape reads.

pub mod call;
pub mod campaign;
mod envelope;
mod filter;
pub mod instance;
mod kinds;
pub mod message;
pub mod metrics;
pub mod received;
pub mod recorder;
pub mod scrape_gauges;

pub use envelope::Envelope;
pub use filter::Filter;
pub use kinds::{CampaignKind, Event, EventType, EVENT_TYPES};
