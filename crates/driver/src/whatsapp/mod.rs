//! The real WhatsApp backend, built on the `whatsapp-rust` library.

pub mod backend;
mod calls;
mod directory;
mod driver;
mod durable;
mod events;
mod inbound;
mod media;
mod outgoing;
pub mod transport;

pub use driver::{WhatsAppConnection, WhatsAppDriver, WhatsAppOptions};
