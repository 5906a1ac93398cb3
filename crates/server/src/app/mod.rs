//! The use cases the HTTP layer calls: accepting a message, checking contacts, campaigns,
//! webhooks, tenants and their keys, alerts, pools, driving the simulated network. Nothing here
//! knows HTTP; failures are [`AppError`]s.

pub mod alerts;
pub mod campaigns;
pub mod contacts;
mod error;
pub mod instances;
pub mod live;
pub mod messages;
pub mod pools;
pub mod sim;
pub mod tenants;
pub mod webhooks;

pub use error::{AppError, AppResult};
