//! A fake WhatsApp server that speaks the real wire protocol — WebSocket, Noise XX/IK with a
//! certificate chain of the checked shape, binary nodes, Signal-encrypted messages — so the
//! real driver (whatsapp-rust) can be tested end to end and measured at scale offline.
//!
//! Test and simulation use only: a client must have the certificate signature check off
//! (`danger-skip-cert-chain-verify`) to accept this server, and the release `bzapper` does not.
//! What the server must say, with source references: `docs/wire-fake.md`.

pub mod signal;
