//! The simulated WhatsApp network: an offline stand-in for WhatsApp as a client sees it, for
//! tests, demos and benchmarks.
//!
//! - [`network`]: [`SimNetwork`], the world (connections, devices, bans, LIDs, outboxes).
//! - [`transport`]: the [`SimNet`] trait every client and operator uses, and
//!   [`RemoteSimNet`], the same over HTTP.
//! - [`service`]: the HTTP face of a [`SimNetwork`] (`bzapper simnet --listen ADDR`).
//! - [`driver`]: [`SimDriver`], the [`Driver`](crate::Driver) backed by any [`SimNet`].
//!
//! In-process (`--sim`): `SimDriver::local(Arc::new(SimNetwork::new(SimConfig::default())))`.
//! Shared by several gateway nodes: run [`serve`] in one process and give each node
//! `SimDriver::remote(url)`.

pub mod driver;
pub mod network;
pub mod service;
pub mod transport;

#[cfg(test)]
mod tests;

pub use driver::{SimDriver, SESSION_KEY};
pub use network::{SessionBlob, SimConfig, SimNetwork};
pub use service::{router, serve};
pub use transport::{
    DropRequest, ErrorBody, ErrorDetail, InboundResult, InboundSpec, NetEvent, OutboxEntry,
    OutboxPage, RemoteSimNet, RestrictRequest, ScanRequest, ScanResult, SimError, SimNet,
};
