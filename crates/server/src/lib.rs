//! The bZapper gateway as a library: [`Application::build`] opens the store, starts the
//! driver and the instance supervisor and binds the HTTP listener; [`Application::run`] serves
//! until the shutdown future resolves. The `bzapper` binary is a thin shell around it.
//!
//! The folders are the layers, from the top down (docs/architecture.md; `tests/layers.rs`
//! checks the rule): [`startup`] builds everything; [`http`] parses, checks and shapes
//! requests; [`app`] holds the use cases the routes call; [`runtime`] the long-running parts
//! (scheduler, supervisor, inbound, leases, alerts, webhooks, campaigns); [`events`],
//! [`cluster`], [`media`] and [`outbound`] (the guard on every URL fetched for a tenant) the
//! services they share; [`model`] the server's own types. A
//! module imports only its own layer and those below it.

pub mod app;
pub mod cluster;
pub mod events;
pub mod http;
pub mod media;
pub mod model;
pub mod outbound;
pub mod runtime;
pub mod startup;

pub use bzapper_driver::sim::{Reactions as SimReactions, SimConfig};
pub use http::auth;
pub use runtime::{campaigns, session_bridge, webhooks};
pub use startup::config::{Config, DriverKind};
pub use startup::{secrets, serve_simnet, Application};
