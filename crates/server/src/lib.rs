//! The bZapper gateway as a library: [`Application::build`] opens the store, starts the
//! driver and the instance supervisor and binds the HTTP listener; [`Application::run`] serves
//! until the shutdown future resolves. The `bzapper` binary is a thin shell around it.

pub mod alerts;
pub mod auth;
pub mod campaigns;
pub mod cluster;
pub mod config;
pub mod contacts;
pub mod content;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod extract;
pub mod ids;
pub mod inbound;
pub mod key_cache;
pub mod media;
pub mod metrics;
pub mod openapi;
pub mod qr;
pub mod recorder;
pub mod routes;
pub mod scheduler;
pub mod secrets;
pub mod session_bridge;
pub mod startup;
pub mod state;
pub mod supervisor;
pub mod time;
pub mod webhooks;
pub mod wire_control;

pub use bzapper_driver::sim::SimConfig;
pub use config::{Config, DriverKind};
pub use startup::{serve_simnet, Application};
