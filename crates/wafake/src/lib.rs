//! A fake WhatsApp server that speaks the real wire protocol — WebSocket, Noise XX/IK with a
//! certificate chain of the checked shape, binary nodes, Signal-encrypted messages — so the
//! real driver (whatsapp-rust) can be tested end to end and measured at scale offline.
//!
//! Test and simulation use only: a client must have the certificate signature check off
//! (`danger-skip-cert-chain-verify`) to accept this server, and the release `bzapper` does not.
//! What the server must say, with source references: `docs/wire-fake.md`.
//!
//! ```ignore
//! let server = WireServer::start("127.0.0.1:0".parse()?).await?;
//! // client: TokioWebSocketTransportFactory::new().with_url(server.ws_url()), with_version(..)
//! let paired = server.scan(&qr_code_from_the_client, "15550001111").await?;
//! server.fail(&paired.jid, Failure::LoggedOut)?;
//! ```

pub mod calls;
mod conn;
pub mod control;
pub mod directory;
mod frame;
mod hooks;
mod iq;
pub mod media;
pub mod net;
mod noise;
mod offline;
mod pairing;
pub mod rich;
mod server;
pub mod signal;

pub use hooks::{IqAnswer, SignalHooks};
pub use net::{InboundSent, OutboxItem, WireNet};
pub use rich::{OutboxMessage, WireInbound};
pub use server::{ChatState, Failure, Paired, WireServer};
