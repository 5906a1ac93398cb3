//! The use cases the HTTP layer calls: accepting a message, managing numbers, campaigns,
//! webhooks and contacts, driving the simulated network. Nothing here knows HTTP.

pub mod contacts;
pub mod sim;
