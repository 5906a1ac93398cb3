//! The simulated WhatsApp network: an offline stand-in for WhatsApp as a client sees it, for
//! tests, demos and benchmarks.
//!
//! - [`network`]: [`SimNetwork`], the world (connections, devices, bans, LIDs, outboxes).
//!   [`reactions`]: how the network reacts to spammy sending (off by default); [`clock`]:
//!   the time bans, account ages and reactions go by.
//!   Its parts: `groups`, [`media`] (inbound files held in memory, outgoing files checked),
//!   and the checks of what comes in (`inbound`) and goes out ([`outbox`]); `unacked`, the
//!   messages handed to a number that it has not acknowledged (delivered again at its login);
//!   `calls`, the calls ringing on each number until it rejects them.
//! - [`transport`]: the [`SimNet`] trait every client and operator uses, and
//!   [`RemoteSimNet`], the same over HTTP; [`control`]: the bodies of the control ops.
//! - [`service`]: the HTTP face of a [`SimNetwork`] (`bzapper simnet --listen ADDR`).
//! - [`driver`]: [`SimDriver`], the [`Driver`](crate::Driver) backed by any [`SimNet`];
//!   `commit`, each connection's inbound messages recorded through the gateway's sink, then
//!   acknowledged to the network.
//!
//! In-process (`--sim`): `SimDriver::local(Arc::new(SimNetwork::new(SimConfig::default())))`.
//! Shared by several gateway nodes: run [`serve`] in one process and give each node
//! `SimDriver::remote(url)`.

mod calls;
pub mod clock;
mod commit;
pub mod control;
pub mod driver;
mod groups;
mod inbound;
pub mod media;
pub mod network;
pub mod outbox;
pub mod reactions;
#[cfg(test)]
mod reactions_tests;
pub mod service;
pub mod transport;
mod unacked;

#[cfg(test)]
mod ack_tests;
#[cfg(test)]
mod calls_tests;
#[cfg(test)]
mod rich_tests;
#[cfg(test)]
mod tests;

pub use clock::{NetClock, TokioClock, WallClock};
pub use control::{
    AgeRequest, CallResult, CallSpec, ContactRequest, CreateGroupRequest, CreateGroupResult,
    DropRequest, InboundContactSpec, InboundMediaSpec, InboundReactionSpec, InboundResult,
    InboundSpec, RestrictRequest, ScanRequest, ScanResult,
};
pub use driver::{SimDriver, SESSION_KEY};
pub use media::MAX_INBOUND_MEDIA_BYTES;
pub use network::{SessionBlob, SimConfig, SimNetwork};
pub use outbox::{OutboxEntry, OutboxMedia, OutboxMessage, OutboxPage, OutboxReaction};
pub use reactions::{AbsentRule, FirstContactRule, IdenticalRule, Reactions};
pub use service::{router, serve};
pub use transport::{
    ErrorBody, ErrorDetail, MediaStream, NetEvent, RemoteSimNet, SimError, SimNet,
};
